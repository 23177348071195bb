#!/usr/bin/env bash
# run-demo.sh — install deps, build, and run the main job: the whole PostNAS
# method on the CPU (configs/demo.yaml) on the committed tiny backbone. The
# report lands in results/demo/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh build
./build/postnas data synth --out data/synth --seed 1   # the data the tiny backbone was trained on
./build/postnas run configs/demo.yaml --fresh
