# ablate.sh — `postnas ablate`: a reduced ablation through the CLI (2 blocks, 2
# steps, the tiny qwen3 test model, small synthetic data made here), the
# overrides (--blocks, --steps, --out), the table on stdout and the files, a
# run without python3 (no PNG, a warning, still exit 0), usage and config
# errors (exit 2 naming the key), and the CI-budget run of
# configs/ablation-demo.yaml with --steps 2 when its backbone is present.
. "$(dirname "$0")/../cli_lib/common.sh"
SRC=${POSTNAS_SRC:-.}
MODEL=$SRC/tests/data/qwen3-tiny   # 2 layers, vocab 256

expect_ok "$PN" ablate --help
check "ablate --help mentions --blocks" grep -q -- "--blocks LIST" "$TMP/out"
check "postnas --help lists ablate" bash -c "'$PN' --help | grep -q '^  ablate '"
expect_fail 2 "expected one config FILE" "$PN" ablate
expect_fail 2 "unknown option '--step'" "$PN" ablate x.yaml --step 3
expect_fail 2 "nope.yaml: cannot open" "$PN" ablate "$TMP/nope.yaml"

expect_ok "$PN" data synth --out "$TMP/syn" --seed 2 --train-tokens 20000 --valid-tokens 2000 --examples 6

cfg() {  # cfg SAMPLING BLOCKS > file
    cat <<EOF
run: {name: abl-test, out_dir: $TMP/unused, seed: 5}
model: {path: $MODEL}
data: {train: $TMP/syn/train.h5, tasks_dir: $TMP/syn, seq_len: 16, batch_size: 2}
train: {mode: supernet, steps: 50, warmup_steps: 1, eval_every: 0, ckpt_every: 0}
supernet: {sampling: $1, full_layers: [0], swa_window: 8}
ablation: {blocks: $2, context: 4096, throughput_batch: 2, throughput_prompt: 8, throughput_steps: 3, max_examples: 4}
EOF
}
cfg fixed "[jetblock]" >"$TMP/a.yaml"

# --blocks, --steps and --out override the file (50 steps, jetblock, unused dir)
expect_ok "$PN" ablate --config "$TMP/a.yaml" --blocks deltanet,retnet --steps 2 --out "$TMP/r"
cp "$TMP/out" "$TMP/table"
for f in ablation.md ablation.csv ablation.json ablation.png config.resolved.yaml deltanet/supernet.safetensors \
    retnet/metrics.jsonl; do
    check "wrote $f" test -s "$TMP/r/$f"
done
check "--out: nothing in run.out_dir" test ! -e "$TMP/unused"
check "--blocks: no jetblock run" test ! -e "$TMP/r/jetblock"
check "stdout: the teacher row" grep -Eq '^\| teacher \(all attention\) \| [01]\.[0-9]{3} \|' "$TMP/table"
check "stdout: deltanet and retnet rows" test "$(grep -Ec '^\| (deltanet|retnet) \| [01]\.[0-9]{3} \|' "$TMP/table")" -eq 2
check "stdout = ablation.md" cmp -s "$TMP/table" "$TMP/r/ablation.md"
check "--steps 2: each run logged 2 steps" test "$(grep -c '"loss"' "$TMP/r/retnet/metrics.jsonl")" -eq 2
check "csv: header + 3 rows" test "$(wc -l <"$TMP/r/ablation.csv")" -eq 4
check "csv: teacher, deltanet, retnet" test "$(cut -d, -f1 "$TMP/r/ablation.csv" | tr '\n' ' ')" = "block teacher deltanet retnet "
check "md states the state-bytes convention" grep -q "2 bytes/element (bf16" "$TMP/r/ablation.md"
check "no temp files left" bash -c "! ls '$TMP/r' | grep -q tmp"
# The same command again continues (nothing left to train); another budget is refused up front.
expect_ok "$PN" ablate --config "$TMP/a.yaml" --blocks deltanet,retnet --steps 2 --out "$TMP/r"
check "rerun: same table rows" test "$(grep -E '^\| (teacher|deltanet|retnet)' "$TMP/out" | cut -d'|' -f2-6)" = \
    "$(grep -E '^\| (teacher|deltanet|retnet)' "$TMP/table" | cut -d'|' -f2-6)"
expect_fail 2 "r/deltanet: holds checkpoints of another training config" \
    "$PN" ablate --config "$TMP/a.yaml" --blocks deltanet,retnet --steps 3 --out "$TMP/r"

# No python3 on PATH: the tables are still written, the PNG is skipped with a warning.
expect_ok env PATH=/nonexistent "$PN" ablate --config "$TMP/a.yaml" --blocks gla --steps 1 --out "$TMP/np"
check "no python3: warning" grep -q "python3 not found" "$TMP/err"
check "no python3: tables written" test -s "$TMP/np/ablation.csv" -a -s "$TMP/np/ablation.md"
check "no python3: no PNG" test ! -e "$TMP/np/ablation.png"

# Bad configs and flags exit 2 naming the key and the value.
cfg fixed "[gla, mamba]" >"$TMP/bad_block.yaml"
expect_fail 2 "bad_block.yaml: ablation.blocks\[1\] = 'mamba' is not a linear block \(expected one of: jetblock" \
    "$PN" ablate "$TMP/bad_block.yaml"
cfg uniform_k "[gla]" | sed 's/full_layers: \[0\], //' >"$TMP/bad_samp.yaml"
expect_fail 2 "bad_samp.yaml: supernet.sampling is 'uniform_k'.*sampling: fixed" "$PN" ablate "$TMP/bad_samp.yaml"
expect_fail 2 "--blocks: --blocks\[0\] = 'jet' is not a linear block" "$PN" ablate "$TMP/a.yaml" --blocks jet
expect_fail 2 "--blocks\[1\] = 'gla' is already listed" "$PN" ablate "$TMP/a.yaml" --blocks gla,gla
expect_fail 2 "--steps" "$PN" ablate "$TMP/a.yaml" --steps 0
sed 's/full_layers: \[0\]/full_layers: [0, 1]/' "$TMP/a.yaml" >"$TMP/bad_all.yaml"
expect_fail 2 "leaves no layer linear" "$PN" ablate "$TMP/bad_all.yaml"
sed 's/tasks_dir: [^,]*,/tasks_dir: "",/' "$TMP/a.yaml" >"$TMP/bad_tasks.yaml"
expect_fail 2 "data.tasks_dir is empty" "$PN" ablate "$TMP/bad_tasks.yaml"

# The CI-budget run of the committed demo config (all seven blocks, 2 steps each).
DEMO_MODEL=$(sed -n 's/^  path: \([^ ]*\).*/\1/p' "$SRC/configs/ablation-demo.yaml" | head -1)
if [ -f "$SRC/$DEMO_MODEL/config.json" ]; then
    DEMO_CFG=$SRC/configs/ablation-demo.yaml
    if [ ! -f "$SRC/data/synth/train.h5" ]; then  # the demo's data, made here when the checkout has none
        expect_ok "$PN" data synth --out "$TMP/synth" --seed 1
        sed "s#data/synth#$TMP/synth#g" "$DEMO_CFG" >"$TMP/demo.yaml"
        DEMO_CFG=$TMP/demo.yaml
    fi
    t0=$(date +%s)
    cd "$SRC" || exit 1  # the config's paths are relative to the repository root
    expect_ok "$PN" ablate --config "$DEMO_CFG" --steps 2 --out "$TMP/ci"
    echo "ablation-demo --steps 2: $(($(date +%s) - t0)) s"
    check "demo: teacher + 7 blocks in the CSV" test "$(wc -l <"$TMP/ci/ablation.csv")" -eq 9
else
    echo "NOT RUN: the CI-budget ablation of configs/ablation-demo.yaml needs its backbone $DEMO_MODEL (not in this checkout)"
fi
finish
