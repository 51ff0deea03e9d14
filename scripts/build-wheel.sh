#!/usr/bin/env bash
# Build the release wheel into dist/: `scripts/build-wheel.sh`.
#
# One abi3 wheel serves CPython 3.9+. It is linked with zig (`pip install ziglang`) against
# glibc 2.17, so its tag is manylinux2014 and it installs on any Linux from 2014 on; maturin
# checks the symbol versions (its built-in auditwheel) and fails the build otherwise.
# Without zig (ZHLLAMA_NO_ZIG=1) the wheel gets the build host's glibc tag instead.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist
args=(build --release --out dist --compatibility manylinux2014)
if [ "${ZHLLAMA_NO_ZIG:-0}" != 1 ] && python3 -c "import ziglang" 2>/dev/null; then
  args+=(--zig)
else
  args=(build --release --out dist)
  echo "note: building without zig; the wheel carries this machine's glibc tag" >&2
fi
maturin "${args[@]}"
ls dist/
