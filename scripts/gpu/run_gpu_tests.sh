#!/usr/bin/env bash
# run_gpu_tests.sh [BUILD_DIR] — the one call to make on the GPU machine: print the
# date and nvidia-smi, configure + build postnas with the CUDA backend (Release, -j16;
# the postnas binary and the gpu test programs only), run the gpu-labelled tests
# (ctest -L gpu --output-on-failure). Everything goes to stdout and, when $OUT is set,
# also to "$OUT/gpu-tests.log".
#
# The GPU machine has no libyaml (and may lack other -dev packages). Carry them in the
# checkout and point PN_DEPS at that prefix (PN_DEPS/include, PN_DEPS/lib,
# PN_DEPS/lib/pkgconfig/*.pc): it is passed as CMAKE_PREFIX_PATH and PKG_CONFIG_PATH,
# and PN_DEPS/lib goes on LD_LIBRARY_PATH. Without PN_DEPS the script checks what the
# build needs and names what is missing before it configures.
# Exit status: that of the first failing step (configure, build, ctest), else 0.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
BUILD_DIR=${1:-build-gpu}

run_all() {
    echo "==== postnas GPU tests  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  host $(hostname)"
    echo "==== commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ local changes)')"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi
    else
        echo "run_gpu_tests: nvidia-smi not found"
    fi
    local nvcc=${CUDACXX:-}
    if [ -z "$nvcc" ]; then
        if command -v nvcc >/dev/null 2>&1; then nvcc=$(command -v nvcc); else nvcc=/usr/local/cuda/bin/nvcc; fi
    fi
    if [ ! -x "$nvcc" ]; then
        echo "run_gpu_tests: no CUDA compiler (looked for \$CUDACXX, nvcc on PATH, /usr/local/cuda/bin/nvcc)"
        return 1
    fi
    "$nvcc" --version | tail -n 2

    local cmake_args=(-DCMAKE_BUILD_TYPE=Release -DPOSTNAS_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
    if [ -n "${PN_DEPS:-}" ]; then
        if [ ! -d "$PN_DEPS" ]; then
            echo "run_gpu_tests: PN_DEPS=$PN_DEPS is not a directory"
            return 1
        fi
        PN_DEPS=$(cd "$PN_DEPS" && pwd)
        echo "==== dependencies from PN_DEPS=$PN_DEPS"
        export PKG_CONFIG_PATH="$PN_DEPS/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
        export LD_LIBRARY_PATH="$PN_DEPS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        cmake_args+=(-DCMAKE_PREFIX_PATH="$PN_DEPS")
    fi
    # What CMakeLists.txt requires: pkg-config modules, HDF5, cmake, a C compiler.
    local missing=""
    command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
    command -v cc >/dev/null 2>&1 || missing="$missing cc"
    if command -v pkg-config >/dev/null 2>&1; then
        for m in yaml-0.1 jansson openblas; do
            pkg-config --exists "$m" || missing="$missing $m(pkg-config)"
        done
    else
        missing="$missing pkg-config"
    fi
    if ! command -v h5cc >/dev/null 2>&1 && ! pkg-config --exists hdf5 2>/dev/null &&
        ! ls /usr/include/hdf5/serial/hdf5.h /usr/include/hdf5.h ${PN_DEPS:+"$PN_DEPS/include/hdf5.h"} >/dev/null 2>&1; then
        missing="$missing hdf5"
    fi
    if [ -n "$missing" ]; then
        echo "run_gpu_tests: missing build dependencies:$missing"
        if [ -z "${PN_DEPS:-}" ]; then
            echo "run_gpu_tests: set PN_DEPS to a prefix that holds them (include/, lib/, lib/pkgconfig/)"
        else
            echo "run_gpu_tests: PN_DEPS=$PN_DEPS does not provide them (looked in $PN_DEPS/lib/pkgconfig)"
        fi
        return 1
    fi

    echo "==== configure ($BUILD_DIR)"
    cmake -S . -B "$BUILD_DIR" "${cmake_args[@]}" || return $?
    # Only what the gpu label runs (each tests/gpu/test_X.c is target gpu_test_X) and the
    # postnas binary: a CPU unit test that is mid-edit must not block the GPU run.
    local targets=(postnas)
    local src
    for src in tests/gpu/test_*.c; do
        [ -e "$src" ] && targets+=("gpu_$(basename "$src" .c)")
    done
    echo "==== build: ${targets[*]}"
    local t0=$SECONDS
    cmake --build "$BUILD_DIR" -j16 --target "${targets[@]}" || return $?
    echo "==== built in $((SECONDS - t0)) s"
    echo "==== ctest -L gpu"
    ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure
    local rc=$?
    echo "==== done $(date -u '+%Y-%m-%d %H:%M:%S UTC'), ctest exit $rc"
    return $rc
}

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    run_all 2>&1 | tee "$OUT/gpu-tests.log"
    exit "${PIPESTATUS[0]}"
else
    run_all 2>&1
fi
