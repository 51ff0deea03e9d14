#!/usr/bin/env bash
# Build the extension in place for development: `scripts/dev-build.sh [--debug]`, then run
# tests from the source tree with `PYTHONPATH=python python -m pytest`.
# (CI and users install the wheel instead: scripts/build-wheel.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
[ "${1:-}" = "--debug" ] && profile=dev
cargo build -p zhllama-python --profile "$profile"
dir=$([ "$profile" = dev ] && echo debug || echo release)
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# Copy beside, then rename: overwriting the file in place would change the pages of every process
# that has it loaded (running tests crash with SIGSEGV/SIGILL); a rename leaves them the old inode.
cp -f "$target/$dir/lib_native.so" python/zhllama/.native.abi3.so.tmp
mv -f python/zhllama/.native.abi3.so.tmp python/zhllama/_native.abi3.so
echo "built python/zhllama/_native.abi3.so ($profile)"
