"""Sizes written by a user (``--shard-size 1GB``, ``--gpu-memory 141GiB``): the one parser.

SI units are powers of 10 and binary units powers of 2, as storage and GPU vendors print them:
``KB``/``MB``/``GB``/``TB`` = 10³/10⁶/10⁹/10¹², ``KiB``/``MiB``/``GiB``/``TiB`` = 2¹⁰/2²⁰/2³⁰/2⁴⁰.
A bare ``K``/``M``/``G``/``T`` is the SI unit; a bare number is in ``default_unit``.
"""

from __future__ import annotations

import re

UNITS = {"b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
         "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_size(text: str, flag: str, default_unit: str = "B") -> int:
    """``text`` in bytes; a ValueError naming ``flag`` for anything but a positive size."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = (m.group(2) or default_unit).lower() if m else ""
    if not m or unit not in UNITS or float(m.group(1)) <= 0:
        raise ValueError(f"{flag} {text!r}: expected a positive size such as 1GB (10^9 bytes), 512MiB (2^20) or "
                         f"a number of {default_unit}")
    return int(float(m.group(1)) * UNITS[unit])
