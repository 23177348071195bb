# run.sh — `postnas run` end to end on a tiny model (tests/data/qwen3-tiny, 2
# layers, vocab 256) and small synthetic data: every stage's files, the report's
# tables, the exported hybrid reproducing the supernet subnet's logits (≤ 1e-5,
# read from run.json), an interrupted supernet training continued with --resume,
# and bad input exiting 2 with the key or file named.
. "$(dirname "$0")/../cli_lib/common.sh"
SRC=${POSTNAS_SRC:-.}
MODEL=$SRC/tests/data/qwen3-tiny
expect_ok "$PN" data synth --out "$TMP/syn" --seed 3 --train-tokens 20000 --valid-tokens 4000 --examples 12
cat >"$TMP/run.yaml" <<YAML
run: {name: run-test, out_dir: $TMP/out1, seed: 5, threads: 2}
model: {path: $MODEL}
data: {train: $TMP/syn/train.h5, valid: $TMP/syn/valid.h5, tasks_dir: $TMP/syn, seq_len: 32, batch_size: 2}
train: {mode: supernet, steps: 4, warmup_steps: 1, eval_every: 2, eval_batches: 1, ckpt_every: 2, log_every: 1}
supernet: {block: gated_deltanet, k_max: 1, swa_window: 4, distill: both}
search: {beam_width: 2, k_max: 2, max_examples: 6, swa_max: 1}
YAML
expect_ok "$PN" run "$TMP/run.yaml"
O=$TMP/out1
for f in config.resolved.yaml supernet/supernet.safetensors supernet/metrics.jsonl placement/trace.json \
    placement/trace.h5 model/config.json model/architecture.yaml report.md run.json; do
    check "run wrote $f" test -s "$O/$f"
done
check "report: k = 1 and k = 2 tables" bash -c "grep -q '^### k = 1 ' '$O/report.md' && grep -q '^### k = 2 ' '$O/report.md'"
check "report: searched, uniform, all-linear and teacher rows" bash -c \
    "grep -q '^| searched (task:retrieval) |' '$O/report.md' && grep -q '^| uniform placement |' '$O/report.md' && grep -q '^| all linear | none |' '$O/report.md' && grep -q '^| teacher (all attention) | 0, 1 |' '$O/report.md'"
check "report: uniform k=1 over 2 layers is layer 1" grep -q '^| uniform placement | 1 |' "$O/report.md"
check "exported model: jet_nemotron layout" grep -q '"model_type": "jet_nemotron"' "$O/model/config.json"
ERR=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['export_logits_rel_err'])" "$O/run.json" 2>/dev/null || echo nan)
check "exported logits = supernet subnet logits (rel err $ERR <= 1e-5)" python3 -c "import sys; e=float(sys.argv[1]); sys.exit(0 if e <= 1e-5 else 1)" "$ERR"
check "exported accuracy = supernet subnet accuracy" python3 -c "
import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r['exported_accuracy']==r['chosen_supernet_accuracy'] else 1)" "$O/run.json"
# `postnas eval` on the exported directory gives the run's numbers for the chosen hybrid
expect_ok "$PN" eval --model "$O/model" --tasks "$TMP/syn" --max-examples 6 --out "$TMP/ev.json"
check "postnas eval of the export = run.json's exported accuracy" python3 -c "
import json,sys
r=json.load(open(sys.argv[1])); e=json.load(open(sys.argv[2]))
acc={t['task']:t['accuracy'] for t in e['results']}
sys.exit(0 if all(abs(acc[n]-a)<1e-12 for n,a in zip(r['tasks'],r['exported_accuracy'])) else 1)" "$O/run.json" "$TMP/ev.json"

# a second run into the same folder needs --resume or --fresh
expect_fail 2 "with --resume, or start over with --fresh" "$PN" run "$TMP/run.yaml"
expect_ok "$PN" run "$TMP/run.yaml" --resume
check "resumed run rewrote the report" test -s "$O/report.md"
expect_ok "$PN" run "$TMP/run.yaml" --fresh --steps 2
check "--fresh --steps 2: metrics restart at step 2" bash -c "test \$(grep -c '\"loss\"' '$O/supernet/metrics.jsonl') -eq 2"

# bad input
expect_fail 2 "expected a config FILE" "$PN" run
expect_fail 2 "exclude each other" "$PN" run "$TMP/run.yaml" --resume --fresh
expect_fail 2 "--steps 'x'" "$PN" run "$TMP/run.yaml" --steps x
sed "s#train: $TMP/syn/train.h5#train: $TMP/nope.h5#" "$TMP/run.yaml" >"$TMP/bad1.yaml"
expect_fail 2 "data.train '.*nope.h5' not found .*postnas data synth" "$PN" run "$TMP/bad1.yaml" --out "$TMP/b1"
sed "s#tasks_dir: $TMP/syn#tasks_dir: $TMP#" "$TMP/run.yaml" >"$TMP/bad2.yaml"
expect_fail 2 "search.tasks\[0\] = retrieval: .*retrieval.jsonl not found" "$PN" run "$TMP/bad2.yaml" --out "$TMP/b2"
sed "s#supernet: {#supernet: {sampling: fixed, full_layers: [0], #" "$TMP/run.yaml" >"$TMP/bad3.yaml"
expect_fail 2 "supernet.sampling is fixed" "$PN" run "$TMP/bad3.yaml" --out "$TMP/b3"
sed "s#path: $MODEL#path: $TMP#" "$TMP/run.yaml" >"$TMP/bad4.yaml"
expect_fail 2 "has no config.json" "$PN" run "$TMP/bad4.yaml" --out "$TMP/b4"
expect_ok "$PN" run --help
check "run --help mentions --resume" grep -q -- "--resume" "$TMP/out"
finish
