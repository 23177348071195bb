#!/usr/bin/env bash
# gpu_decode_table.sh [ROW ...] — the H100 decode table, run on the GPU machine.
#
# Writes random-weight models with the published shapes into /tmp (postnas init-model
# --like jet-nemotron-2b / qwen3-1.7b, bf16), then runs `postnas bench decode --device
# cuda` for the target rows, merging each row into $OUT/h100-decode.json (and a copy
# of every run's output in $OUT/decode-ROW.log). Rows (default: all three, in this order):
#   jet128   Jet-Nemotron-2B shape, 64K context, batch 128   (target >= 10,000 tok/s)
#   qwenmax  Qwen3-1.7B shape, 64K context, --batch max      (target >= 70% of its floor)
#   jetmax   Jet-Nemotron-2B shape, 64K context, --batch max (ratio to qwenmax >= 45x)
# Prefill: every row prefills the same 8 sequences of 64K tokens (groups of 8, chunks
# of 1024) and reports prefill tokens/s (target: Jet-2B / Qwen3-1.7B >= 2.5x); the rest
# of the batch gets copies of their states. At the end the ratios are printed from the
# JSON when python3 is there.
#
# Environment: OUT (default results/bench), BUILD_DIR (default build-gpu: the build of
# scripts/gpu/run_gpu_tests.sh; built here with -DPOSTNAS_CUDA=ON when it has no
# postnas binary, PN_DEPS honoured as there), CTX (default 65536), STEPS (default 20),
# MODELS (default /tmp: where the model directories go; reused when present).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-results/bench}
BUILD_DIR=${BUILD_DIR:-build-gpu}
CTX=${CTX:-65536}
STEPS=${STEPS:-20}
MODELS=${MODELS:-/tmp}
ROWS=("$@")
[ ${#ROWS[@]} -eq 0 ] && ROWS=(jet128 qwenmax jetmax)
mkdir -p "$OUT"
JSON="$OUT/h100-decode.json"
BIN="$BUILD_DIR/postnas"

if [ -n "${PN_DEPS:-}" ]; then
    export PKG_CONFIG_PATH="$PN_DEPS/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$PN_DEPS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ ! -x "$BIN" ]; then
    echo "==== building $BIN"
    args=(-DCMAKE_BUILD_TYPE=Release -DPOSTNAS_CUDA=ON -DPOSTNAS_MPI=OFF)
    [ -n "${PN_DEPS:-}" ] && args+=(-DCMAKE_PREFIX_PATH="$PN_DEPS")
    cmake -S . -B "$BUILD_DIR" "${args[@]}" >/dev/null || exit $?
    cmake --build "$BUILD_DIR" -j16 --target postnas || exit $?
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.max.sm --format=csv

model() {  # model NAME -> writes $MODELS/NAME once
    local dir="$MODELS/$1"
    if [ ! -f "$dir/config.json" ]; then
        echo "==== init-model --like $1 -> $dir"
        local t0=$SECONDS
        "$BIN" init-model --like "$1" --out "$dir" --dtype bf16 || exit $?
        echo "==== wrote $dir in $((SECONDS - t0)) s"
    fi
}

run_row() {  # run_row ROW
    local row=$1 like batch label
    case "$row" in
    jet128) like=jet-nemotron-2b batch=128 label=jet-nemotron-2b ;;
    jetmax) like=jet-nemotron-2b batch=max label=jet-nemotron-2b ;;
    qwenmax) like=qwen3-1.7b batch=max label=qwen3-1.7b ;;
    *) echo "gpu_decode_table: unknown row '$row' (jet128, qwenmax, jetmax)"; return 2 ;;
    esac
    model "$like"
    echo "==== bench decode $row: $like, context $CTX, batch $batch"
    local t0=$SECONDS
    "$BIN" --log info bench decode --device cuda --model "$MODELS/$like" --label "$label" --context "$CTX" \
        --batch "$batch" --prefill-chunk 1024 --prefill-batch 8 --prefill-seqs 8 --steps "$STEPS" --warmup 3 \
        --out "$JSON" 2>&1 | tee "$OUT/decode-$row.log"
    local rc=${PIPESTATUS[0]}
    echo "==== $row done in $((SECONDS - t0)) s, exit $rc"
    return "$rc"
}

status=0
for r in "${ROWS[@]}"; do
    run_row "$r" || status=$?
done

if command -v python3 >/dev/null 2>&1 && [ -f "$JSON" ]; then
    python3 - "$JSON" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
def get(label, batch):
    for r in rows:
        if r["label"] == label and r["batch_requested"] == batch:
            return r
print("%-18s %-6s %6s %12s %12s %12s %8s %12s" % ("model", "batch", "B", "decode tok/s", "floor tok/s",
                                                   "% of floor", "ms/step", "prefill tok/s"))
for r in rows:
    print("%-18s %-6s %6d %12.0f %12.0f %11.1f%% %8.3f %12.0f" % (r["label"], r["batch_requested"], r["batch"],
          r["decode_tokens_per_s"], r["floor_tokens_per_s"], 100 * r["fraction_of_floor"],
          r["decode_step_ms_median"], r["prefill_tokens_per_s"]))
j128, jmax, qmax = get("jet-nemotron-2b", 128), get("jet-nemotron-2b", "max"), get("qwen3-1.7b", "max")
if j128:
    print("Jet-2B B128: %.0f tok/s (target >= 10000): %s" % (j128["decode_tokens_per_s"],
          "met" if j128["decode_tokens_per_s"] >= 10000 else "NOT met"))
if qmax:
    print("Qwen3-1.7B max batch: %.1f%% of floor (target >= 70%%): %s" % (100 * qmax["fraction_of_floor"],
          "met" if qmax["fraction_of_floor"] >= 0.7 else "NOT met"))
if jmax and qmax:
    r = jmax["decode_tokens_per_s"] / qmax["decode_tokens_per_s"]
    print("decode ratio at max batch Jet-2B / Qwen3-1.7B: %.1fx (target >= 45x): %s" % (r, "met" if r >= 45 else "NOT met"))
jp = jmax or j128
if jp and qmax:
    r = jp["prefill_tokens_per_s"] / qmax["prefill_tokens_per_s"]
    print("prefill ratio at 64K Jet-2B / Qwen3-1.7B: %.2fx (target >= 2.5x): %s" % (r, "met" if r >= 2.5 else "NOT met"))
EOF
fi
exit $status
