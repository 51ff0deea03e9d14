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
cp -f "$target/$dir/lib_native.so" python/zhllama/_native.abi3.so
echo "built python/zhllama/_native.abi3.so ($profile)"
