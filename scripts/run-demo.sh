#!/usr/bin/env bash
# run-demo.sh — install deps, build, and run the main job (the CPU demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh build
./build/postnas demo --config configs/demo.yaml
