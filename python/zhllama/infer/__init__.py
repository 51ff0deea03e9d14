"""Inference: ``generate`` and ``eval``."""
