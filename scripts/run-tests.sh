#!/usr/bin/env bash
# run-tests.sh [--sanitize] — install deps, build, run the CPU test suite (ctest -L cpu).
# --sanitize builds a separate tree with AddressSanitizer + UndefinedBehaviorSanitizer
# (CUDA off) and runs the same tests there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
if [ "${1:-}" = "--sanitize" ]; then
    bash scripts/build.sh build-asan -DPOSTNAS_SANITIZE=ON -DPOSTNAS_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build-asan -L cpu --output-on-failure -j2
else
    bash scripts/build.sh build
    ctest --test-dir build -L cpu --output-on-failure -j2
fi
