# search_hw.sh — `postnas search hw`: help, usage errors, bad configs (exit 2 with
# a message naming the problem), and a tiny end-to-end search through the binary
# (a 1-step backbone as the "pretrained" model, 2 candidates, 2 distillation
# steps) checking the files it writes and that its numbers are finite.
. "$(dirname "$0")/../cli_lib/common.sh"

expect_ok "$PN" search --help
check "search --help lists hw" grep -q "^  hw " "$TMP/out"
expect_ok "$PN" search hw --help
check "search hw --help mentions --steps" grep -q -- "--steps" "$TMP/out"
expect_fail 2 "usage: postnas search SUB" "$PN" search
expect_fail 2 "unknown search 'nope'" "$PN" search nope
expect_fail 2 "expected one config FILE" "$PN" search hw
expect_fail 2 "nope.yaml: cannot open" "$PN" search hw --config "$TMP/nope.yaml"
expect_fail 2 "unknown option '--stepz'" "$PN" search hw x.yaml --stepz 3

# Data and a tiny model (hidden 32, 2 layers, vocab 256): one backbone step.
expect_ok "$PN" data synth --out "$TMP/d" --seed 3 --train-tokens 20000 --valid-tokens 2000 --examples 4
cat >"$TMP/bb.yaml" <<EOF
run: {out_dir: $TMP/bb, seed: 1, log_level: warn}
model: {path: ""}
arch: {vocab_size: 256, hidden_size: 32, intermediate_size: 64, num_layers: 2, num_heads: 4, num_kv_heads: 2}
data: {train: $TMP/d/train.h5, seq_len: 32, batch_size: 2}
train: {mode: backbone, steps: 1, warmup_steps: 0, eval_every: 0}
EOF
expect_ok "$PN" train "$TMP/bb.yaml"
check "backbone written" test -f "$TMP/bb/model/model.safetensors"

cfg() {  # cfg OUT HW_EXTRA [SUPERNET_EXTRA] > file
    cat <<EOF
run: {out_dir: $1, seed: 9, log_level: warn}
model: {path: $TMP/bb/model}
data: {train: $TMP/d/train.h5, seq_len: 32, batch_size: 2, tasks_dir: $TMP/d}
train: {steps: 50, warmup_steps: 1, eval_every: 0, ckpt_every: 0}
supernet: {block: jetblock, sampling: fixed, full_layers: [1], heads: 1, key_dim: 16, value_dim: 16${3:-}}
search: {tasks: [retrieval, math, knowledge]}
hw_search: {context: 64, throughput_context: 8, throughput_batch: 2, throughput_steps: 3, throughput_warmup: 1,
            throughput_rounds: 1, max_examples: 3, $2}
EOF
}

# Bad configs: exit 2 naming the problem.
cfg "$TMP/bad" "key_dims: [64]" >"$TMP/over.yaml"
expect_fail 2 "over.yaml: no hw_search candidate fits the budget of [0-9]+ cache\+state bytes" \
    "$PN" search hw --config "$TMP/over.yaml"
cfg "$TMP/bad" "conv_sizes: [4]" ", block: gla" | sed 's/block: jetblock, //' >"$TMP/gla.yaml"
expect_fail 2 "gla.yaml: .*block gla has no short conv" "$PN" search hw --config "$TMP/gla.yaml"
cfg "$TMP/bad" "heads: [3]" | sed 's/block: jetblock/block: rwkv7/; s/, heads: 1, key_dim: 16, value_dim: 16//' \
    >"$TMP/rwkv.yaml"
expect_fail 2 "rwkv.yaml: .*rwkv7 derives key_dim = hidden_size / heads, but 32 is not a multiple of heads 3" \
    "$PN" search hw --config "$TMP/rwkv.yaml"
cfg "$TMP/bad" "key_dims: [8]" ", full_layers: [5]" | sed 's/full_layers: \[1\], //' >"$TMP/layer.yaml"
expect_fail 2 "supernet.full_layers\[0\] = 5, expected a layer index 0..1" "$PN" search hw --config "$TMP/layer.yaml"
cfg "$TMP/bad" "key_dims: [8]" | sed "s|tasks_dir: $TMP/d|tasks_dir: $TMP/none|" >"$TMP/notasks.yaml"
expect_fail 2 "retrieval.jsonl: task file not found" "$PN" search hw --config "$TMP/notasks.yaml"

# End to end: 2 candidates (K 8 and the base's 16), 2 steps each.
cfg "$TMP/unused" "key_dims: [8, 16]" >"$TMP/hw.yaml"
expect_ok "$PN" search hw --config "$TMP/hw.yaml" --out "$TMP/hw" --steps 2
check "stdout names the chosen design" grep -q "^chosen: #[01] heads 1, key_dim \(8\|16\)" "$TMP/out"
for f in hw_search.md hw_search.csv hw_search.json config.resolved.yaml cand_0/supernet.safetensors \
    cand_1/supernet.safetensors; do
    check "$f written" test -s "$TMP/hw/$f"
done
check "md table marks the chosen design" grep -q "\*\*chosen\*\*" "$TMP/hw/hw_search.md"
check "md states the bytes convention" grep -q "linear recurrent states at 4 bytes (fp32)" "$TMP/hw/hw_search.md"
check "csv: header + 2 rows" test "$(wc -l <"$TMP/hw/hw_search.csv")" -eq 3
check "--steps reached the trainer (2 steps)" test "$(grep -c '"loss"' "$TMP/hw/cand_0/metrics.jsonl")" -eq 2
if command -v python3 >/dev/null; then
    check "json: finite numbers, device cpu, a chosen design" python3 - "$TMP/hw/hw_search.json" <<'EOF'
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["format"] == "postnas-hw-search" and r["device"]["kind"] == "cpu"
assert len(r["candidates"]) == 2 and r["chosen"] is not None
for c in r["candidates"]:
    assert c["kept"]
    for k in ("decode_tokens_per_s", "accuracy", "train_loss", "state_bytes"):
        assert isinstance(c[k], (int, float)) and math.isfinite(c[k]), (k, c[k])
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in c["task_accuracy"].values())
EOF
fi
# Two halves: throughput only, then the accuracy with those numbers (as on two machines).
expect_fail 2 "exclude each other" "$PN" search hw --config "$TMP/hw.yaml" --throughput-only --throughput-from x.json
expect_fail 2 "--device gpu: expected cpu or cuda" "$PN" search hw --config "$TMP/hw.yaml" --device gpu
expect_ok "$PN" search hw --config "$TMP/hw.yaml" --out "$TMP/tp" --throughput-only
check "throughput only: no candidate trained" test ! -e "$TMP/tp/cand_0"
check "throughput only: the md says so" grep -q "accuracy: not measured" "$TMP/tp/hw_search.md"
expect_ok "$PN" search hw --config "$TMP/hw.yaml" --out "$TMP/acc" --steps 2 --throughput-from "$TMP/tp/hw_search.json"
check "throughput-from: candidates trained" test -s "$TMP/acc/cand_1/supernet.safetensors"
if command -v python3 >/dev/null; then
    check "throughput-from: the decode numbers are the first run's, accuracy added" \
        python3 - "$TMP/tp/hw_search.json" "$TMP/acc/hw_search.json" <<'EOF'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["accuracy_measured"] is False and b["accuracy_measured"] is True
assert b["throughput_from"].endswith("tp/hw_search.json") and b["date"] == a["date"]
for x, y in zip(a["candidates"], b["candidates"]):
    assert x["decode_tokens_per_s"] == y["decode_tokens_per_s"] and x["decode_step_ms"] == y["decode_step_ms"]
    assert x["accuracy"] is None and math.isfinite(y["accuracy"])
EOF
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); j['context']=128; json.dump(j,open(sys.argv[2],'w'))" \
        "$TMP/tp/hw_search.json" "$TMP/ctx.json"
    expect_fail 2 "ctx.json: context 128, this search's hw_search.context is 64" \
        "$PN" search hw --config "$TMP/hw.yaml" --out "$TMP/acc2" --throughput-from "$TMP/ctx.json"
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); j['candidates'][0]['state_bytes']+=2; json.dump(j,open(sys.argv[2],'w'))" \
        "$TMP/tp/hw_search.json" "$TMP/bytes.json"
    expect_fail 2 "bytes.json: candidates\[0\] .* state bytes, this search computes" \
        "$PN" search hw --config "$TMP/hw.yaml" --out "$TMP/acc3" --throughput-from "$TMP/bytes.json"
fi
expect_fail 2 "nope.json: unable to open" "$PN" search hw --config "$TMP/hw.yaml" --out "$TMP/acc4" \
    --throughput-from "$TMP/nope.json"

# A different training length over the same folder is refused before any work.
expect_fail 2 "cand_0: holds checkpoints of a different run" "$PN" search hw --config "$TMP/hw.yaml" --out "$TMP/hw" \
    --steps 3
finish
