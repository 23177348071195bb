# eval.sh — `postnas eval` on the synthetic task suites with a tiny model whose
# vocabulary (256) holds the synthetic layout: the table lists every task, the
# JSON matches it, --task selects, and bad input exits 2 naming what is wrong.
. "$(dirname "$0")/../cli_lib/common.sh"
MODEL=${POSTNAS_SRC:-.}/tests/data/qwen3-tiny
expect_ok "$PN" data synth --out "$TMP/syn" --seed 5 --train-tokens 2000 --valid-tokens 1000 --examples 12

expect_ok "$PN" eval --model "$MODEL" --tasks "$TMP/syn" --max-examples 6 --batch 4 --out "$TMP/r.json"
cp "$TMP/out" "$TMP/table"
check "table header" grep -Eq '^task +kind +n +accuracy +mean_nll' "$TMP/table"
check "knowledge row (mc, 6 examples, an NLL)" grep -Eq '^knowledge +mc +6 +[01]\.[0-9]{4} +[0-9]+\.[0-9]{4}' "$TMP/table"
check "math row (gen, 6 examples)" grep -Eq '^math +gen +6 +[01]\.[0-9]{4} +-' "$TMP/table"
check "retrieval row (gen, 6 examples)" grep -Eq '^retrieval +gen +6 +[01]\.[0-9]{4} +-' "$TMP/table"
check "JSON written" test -s "$TMP/r.json"
check "JSON has the three tasks" test "$(grep -c '"task":' "$TMP/r.json")" -eq 3
check "JSON: exact_match mode" grep -q '"gen_mode": "exact_match"' "$TMP/r.json"

# --task selects; a file works as --tasks; teacher-forced mode fills token accuracy
expect_ok "$PN" eval --model "$MODEL" --tasks "$TMP/syn" --task math --max-examples 4 --gen-mode teacher_forced
check "--task math: one row" test "$(grep -Ec '^(math|retrieval|knowledge) ' "$TMP/out")" -eq 1
check "teacher_forced: NLL and token accuracy" grep -Eq '^math +gen +4 +[01]\.[0-9]{4} +[0-9]+\.[0-9]{4} +[01]\.[0-9]{4}' "$TMP/out"
expect_ok "$PN" eval --model "$MODEL" --tasks "$TMP/syn/knowledge.jsonl" --max-examples 3
check "--tasks FILE" grep -Eq '^knowledge +mc +3 ' "$TMP/out"
# batch size does not change the counts (NLLs may differ in the last bits: rows
# are summed in another order, so only task, kind, n and accuracy are compared)
expect_ok "$PN" eval --model "$MODEL" --tasks "$TMP/syn" --max-examples 6 --batch 1
check "batch 1 gives the accuracies of batch 4" test "$(awk '{print $1, $2, $3, $4}' "$TMP/out")" = "$(awk '{print $1, $2, $3, $4}' "$TMP/table")"

# bad input
expect_fail 2 "no task named 'nope'" "$PN" eval --model "$MODEL" --tasks "$TMP/syn" --task nope
expect_fail 2 "missing required option --model|--model" "$PN" eval --tasks "$TMP/syn"
expect_fail 2 "gen-mode" "$PN" eval --model "$MODEL" --tasks "$TMP/syn" --gen-mode greedy
expect_fail 2 "missing.jsonl" "$PN" eval --model "$MODEL" --tasks "$TMP/missing.jsonl"
printf '{"prompt_ids": [3, 4], "answer_ids": [5]}\n{"prompt_ids": [3, 300], "answer_ids": [5]}\n' >"$TMP/big_id.jsonl"
expect_fail 2 "big_id.jsonl:2" "$PN" eval --model "$MODEL" --tasks "$TMP/big_id.jsonl"
printf '{"prompt_ids": [3, 4], "answer_ids": [5]}\nnot json\n' >"$TMP/broken.jsonl"
expect_fail 2 "broken.jsonl:2" "$PN" eval --model "$MODEL" --tasks "$TMP/broken.jsonl"
finish
