#!/usr/bin/env bash
# trace_train_step.sh — where the device idles in a supernet step: builds the CUPTI tracer
# (scripts/gpu/cupti_trace.c), runs two steps of `postnas bench train-step` under it and
# prints scripts/gpu/trace_gaps.py's analysis of the last one. Run on the GPU machine.
#   POSTNAS=path/to/postnas MODEL=dir-from-init-model OUT=dir CUPTI_INC=dir CUPTI_LIB=dir \
#     bash scripts/gpu/trace_train_step.sh
# CUPTI_LIB must hold libcupti.so.13 (the toolkit's lib/ or extras/CUPTI/lib64); the
# tracer is built into $OUT with an rpath to it.
set -euo pipefail
: "${POSTNAS:?postnas binary}" "${MODEL:?model directory}" "${OUT:?output dir}"
: "${CUPTI_INC:?CUPTI headers}" "${CUPTI_LIB:?directory with libcupti.so.13}"
here=$(cd "$(dirname "$0")" && pwd)
cc -O2 -shared -fPIC -I"$CUPTI_INC" -o "$OUT/libpn_cupti_trace.so" "$here/cupti_trace.c" \
    -L"$CUPTI_LIB" -l:libcupti.so.13 -Wl,-rpath,"$CUPTI_LIB"
CUDA_INJECTION64_PATH="$OUT/libpn_cupti_trace.so" PN_TRACE_OUT="$OUT/cupti-trace.txt" \
    "$POSTNAS" bench train-step --model "$MODEL" --steps 1 --warmup 1 --subnet "${SUBNET:-all_linear}" \
    ${MLPKEEP:+--mlp-keep "$MLPKEEP"} --out "$OUT/trace-step.json" > "$OUT/trace-step.log" 2>&1
python3 "$here/trace_gaps.py" "$OUT/cupti-trace.txt" | tee "$OUT/trace-gaps.txt"
