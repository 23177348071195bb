# bench_train_step.sh — `postnas bench train-step` usage and option errors, and the
# run.device: cuda checks of `postnas train`, in any build (the benchmark itself needs a
# GPU: the lead runs it on the H100). Checks that depend on the build being CPU-only
# are skipped in a CUDA build.
. "$(dirname "$0")/../cli_lib/common.sh"

expect_ok "$PN" bench --help
check "bench --help lists train-step" grep -q "train-step" "$TMP/out"
expect_ok "$PN" bench train-step --help
check "--help names the FLOPs rule" grep -q "student bwd" "$TMP/out"
check "--help lists --distill" grep -q -- "--distill" "$TMP/out"

# Bad options exit 2 naming the option (all are checked before any CUDA work).
expect_fail 2 "missing required option --model" "$PN" bench train-step
expect_fail 2 "unknown option '--bogus'" "$PN" bench train-step --model "$TMP/m" --bogus
expect_fail 2 "--batch expects an integer" "$PN" bench train-step --model "$TMP/m" --batch 0
expect_fail 2 "--seq expects an integer" "$PN" bench train-step --model "$TMP/m" --seq x
expect_fail 2 "--steps expects an integer" "$PN" bench train-step --model "$TMP/m" --steps -1
expect_fail 2 "--warmup expects an integer" "$PN" bench train-step --model "$TMP/m" --warmup -1
expect_fail 2 "--block 'nope' is not a linear block \(expected one of: jetblock" \
    "$PN" bench train-step --model "$TMP/m" --block nope
expect_fail 2 "--distill 'l2' is not a distillation loss" "$PN" bench train-step --model "$TMP/m" --distill l2
expect_fail 2 "--subnet 'some' is unknown" "$PN" bench train-step --model "$TMP/m" --subnet some
expect_fail 2 "--device cpu is not supported" "$PN" bench train-step --model "$TMP/m" --device cpu
expect_fail 2 "--gemm-autotune 1: expected 0 \(off\) or 2..8 candidates" \
    "$PN" bench train-step --model "$TMP/m" --gemm-autotune 1
expect_fail 2 "--gemm-autotune expects an integer" "$PN" bench train-step --model "$TMP/m" --gemm-autotune 9

# run.gemm_autotune: 0..8, checked with the rest of the config.
printf 'run: {device: cuda, gemm_autotune: 9}\nmodel: {path: ""}\n' >"$TMP/tune.yaml"
expect_fail 2 "tune.yaml:1:36: value 9 out of range \[0, 8\] for run.gemm_autotune" "$PN" config check "$TMP/tune.yaml"

# `postnas train` with run.device: cuda. Backbone pretraining is CPU-only in every build.
cat >"$TMP/bb.yaml" <<EOF
run: {out_dir: $TMP/bb, device: cuda}
model: {path: $TMP/no-model}
data: {train: $TMP/no-data.h5, seq_len: 16, batch_size: 2}
train: {mode: backbone, steps: 1}
EOF
expect_fail 2 "bb.yaml: run.device: cuda with train.mode: backbone: backbone pretraining is CPU-only" \
    "$PN" train "$TMP/bb.yaml"

# A CPU-only build: --device cuda and run.device: cuda exit 2 with a clear message.
"$PN" bench train-step --model "$TMP/m" >/dev/null 2>"$TMP/probe"
if grep -q "built without CUDA" "$TMP/probe"; then
    expect_fail 2 "bench train-step: --device cuda: postnas was built without CUDA" \
        "$PN" bench train-step --model "$TMP/m" --device cuda
    sed 's/mode: backbone/mode: supernet/' "$TMP/bb.yaml" >"$TMP/sn.yaml"
    expect_fail 2 "sn.yaml: run.device: cuda, but this postnas was built without CUDA" "$PN" train "$TMP/sn.yaml"
else
    echo "CUDA build: the CPU-only checks are skipped"
fi
finish
