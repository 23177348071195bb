# train_resume.sh — `postnas train` killed with SIGKILL at random points and
# continued with --resume ends with the same model, byte for byte, as a run that
# was never interrupted; plus the command's usage errors.
. "$(dirname "$0")/../cli_lib/common.sh"

expect_ok "$PN" train --help
check "train --help mentions --resume" grep -q -- "--resume" "$TMP/out"
expect_fail 2 "expected one config FILE" "$PN" train
expect_fail 2 "nope.yaml: cannot open" "$PN" train "$TMP/nope.yaml"
expect_fail 2 "unknown option '--resum'" "$PN" train x.yaml --resum

# Data: the synthetic stream (vocab 256), small.
expect_ok "$PN" data synth --out "$TMP/d" --seed 3 --train-tokens 30000 --valid-tokens 3000 --examples 4

cfg() {  # cfg OUT_DIR > file
    cat <<EOF
run: {out_dir: $1, seed: 11}
model: {path: ""}
arch: {vocab_size: 256, hidden_size: 32, intermediate_size: 64, num_layers: 2, num_heads: 4, num_kv_heads: 2}
data: {train: $TMP/d/train.h5, valid: $TMP/d/valid.h5, seq_len: 32, batch_size: 4}
train: {mode: backbone, steps: 150, lr: 3e-3, warmup_steps: 5, grad_accum: 2, eval_every: 20, eval_batches: 2,
        ckpt_every: 3, log_every: 1}
EOF
}
cfg "$TMP/ref" >"$TMP/ref.yaml"
cfg "$TMP/run" >"$TMP/run.yaml"

# The uninterrupted reference, timed to place the kills.
t0=$(date +%s%N)
expect_ok "$PN" --log warn train "$TMP/ref.yaml"
t1=$(date +%s%N)
ref_ms=$(((t1 - t0) / 1000000))
check "reference wrote model/" test -f "$TMP/ref/model/model.safetensors"
check "reference metrics: 150 train lines" test "$(grep -c '"loss"' "$TMP/ref/metrics.jsonl")" -eq 150

# Kill -9 at random points, resume, repeat. Each attempt lives for a random
# time below a fifth of the reference's, so most kills land mid-run, at
# different steps (or while a checkpoint or the init model is being written).
RANDOM=$$
first=1
kills=0
for i in 1 2 3 4 5; do
    flag=""
    [ $first -eq 0 ] && flag="--resume"
    "$PN" --log quiet train "$TMP/run.yaml" $flag >/dev/null 2>"$TMP/kill_err" &
    pid=$!
    ms=$((20 + RANDOM % (ref_ms > 50 ? ref_ms / 5 : 10)))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null
    at=$(ls "$TMP/run/ckpt" 2>/dev/null | grep '^step_[0-9]*$' | tail -1)
    echo "run $i: killed after ${ms} ms, newest checkpoint ${at:-none}"
    first=0
done
echo "killed $kills of 5 runs (reference took ${ref_ms} ms)"

# A fresh start over the checkpoints is refused; --resume finishes the run.
if [ -d "$TMP/run/ckpt" ] && ls "$TMP/run/ckpt" | grep -q '^step_[0-9]*$'; then
    expect_fail 2 "already holds checkpoints .*pass --resume" "$PN" train "$TMP/run.yaml"
fi
expect_ok "$PN" --log warn train "$TMP/run.yaml" --resume
check "final model.safetensors identical to the uninterrupted run" \
    cmp "$TMP/ref/model/model.safetensors" "$TMP/run/model/model.safetensors"
check "final config.json identical" cmp "$TMP/ref/model/config.json" "$TMP/run/model/config.json"
check "metrics: each of the 150 steps exactly once" \
    test "$(grep -o '"step": [0-9]*, "loss"' "$TMP/run/metrics.jsonl" | sort -u | wc -l)" -eq 150 -a \
    "$(grep -c '"loss"' "$TMP/run/metrics.jsonl")" -eq 150
check "at most ckpt_keep (2) checkpoints kept" \
    test "$(ls "$TMP/run/ckpt" | grep -c '^step_[0-9]*$')" -le 2

# A changed config cannot resume (the numbers would not match).
sed 's/lr: 3e-3/lr: 1e-3/' "$TMP/run.yaml" >"$TMP/run2.yaml"
expect_fail 2 "was written by a different config" "$PN" train "$TMP/run2.yaml" --resume
finish
