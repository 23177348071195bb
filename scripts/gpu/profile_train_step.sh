#!/usr/bin/env bash
# profile_train_step.sh — per-kernel device time of one supernet step (ncu, one metric),
# summed by kernel into a table (scripts/gpu/profile_table.py). Run on the GPU machine.
#   POSTNAS=path/to/postnas MODEL=dir-from-init-model OUT=dir bash scripts/gpu/profile_train_step.sh
# ncu serialises kernels, so the sum is device time without overlap. One step with no warm-up
# never reaches the auto choice of kept MLP products (made after the first backward): pass
# the count the timed run chose, MLPKEEP=23 for Qwen2.5-1.5B at 8x4096 on an 80 GB H100.
set -euo pipefail
: "${POSTNAS:?postnas binary}" "${MODEL:?model directory (postnas init-model --like qwen2.5-1.5b)}" "${OUT:?output dir}"
SUBNET=${SUBNET:-all_linear}
NCU=${NCU:-/usr/local/cuda/bin/ncu}
"$NCU" --metrics gpu__time_duration.sum --csv --print-units base --print-kernel-base function \
    "$POSTNAS" bench train-step --model "$MODEL" --steps 1 --warmup 0 --subnet "$SUBNET" \
    ${MLPKEEP:+--mlp-keep "$MLPKEEP"} --out "$OUT/profile-step.json" > "$OUT/ncu-train-step.csv" 2> "$OUT/ncu-train-step.err"
python3 "$(dirname "$0")/profile_table.py" "$OUT/ncu-train-step.csv" \
    --title "postnas bench train-step --model $MODEL --steps 1 --warmup 0 --subnet $SUBNET" > "$OUT/train-step-profile.txt"
head -40 "$OUT/train-step-profile.txt"
