# config_check.sh — `postnas config check`: resolved output, --out, errors with FILE:LINE:COL, --help.
. "$(dirname "$0")/../cli_lib/common.sh"
D=tests/data/configs

# A good file prints every key; defaults it did not set show up resolved.
expect_ok "$PN" config check configs/demo.yaml
check "demo: run.name from the file" grep -q '^  name: demo$' "$TMP/out"
check "demo: default supernet.block" grep -q '^  block: jetblock$' "$TMP/out"
check "demo: default search.tasks" grep -q '^  tasks: \[retrieval, math, knowledge\]$' "$TMP/out"
check "demo: default hw_search.context" grep -q '^  context: 65536$' "$TMP/out"
check "demo: train.lr from the file" grep -q '^  lr: 0.003$' "$TMP/out"
check "demo: default train.beta1" grep -q '^  beta1: 0.9$' "$TMP/out"
check "demo: nothing on stderr" test ! -s "$TMP/err"
expect_ok "$PN" config check configs/example-full.yaml
expect_ok "$PN" config check "$D/good_full.yaml"
check "good_full: seed" grep -q '^  seed: 9876543210$' "$TMP/out"

# --out writes DIR/config.resolved.yaml (creating DIR), identical to stdout, and it checks clean again.
expect_ok "$PN" config check "$D/good_full.yaml" --out "$TMP/run/a"
cp "$TMP/out" "$TMP/stdout1"
check "--out wrote the file" test -f "$TMP/run/a/config.resolved.yaml"
check "--out file = stdout" cmp -s "$TMP/stdout1" "$TMP/run/a/config.resolved.yaml"
check "no temp file left" bash -c "! ls '$TMP/run/a' | grep -q tmp"
expect_ok "$PN" config check "$TMP/run/a/config.resolved.yaml"
check "resolved file is a fixed point" cmp -s "$TMP/out" "$TMP/stdout1"

# Bad files: exit 2, FILE:LINE:COL and what was expected.
expect_fail 2 "bad_syntax.yaml:5:7: YAML syntax error" "$PN" config check "$D/bad_syntax.yaml"
expect_fail 2 "bad_unknown_key.yaml:5:3: unknown key 'k_mx' in section 'supernet' \(did you mean 'k_max'\?\)" \
    "$PN" config check "$D/bad_unknown_key.yaml"
expect_fail 2 "bad_duplicate.yaml:6:3: duplicate key run.seed \(first given at line 4\)" \
    "$PN" config check "$D/bad_duplicate.yaml"
expect_fail 2 "bad_type_int.yaml:4:12: expected an integer for data.seq_len, got 'abc'" \
    "$PN" config check "$D/bad_type_int.yaml"
expect_fail 2 "bad_range.yaml:4:15: value 0 out of range \[1, 4096\] for train.grad_accum" \
    "$PN" config check "$D/bad_range.yaml"
expect_fail 2 "bad_enum.yaml:4:10: bad value 'mamba' for supernet.block" "$PN" config check "$D/bad_enum.yaml"
expect_fail 2 "bad_missing_required.yaml:2:1: missing required key model.path" \
    "$PN" config check "$D/bad_missing_required.yaml"
expect_fail 2 "bad_top_sequence.yaml:1:1: the top level must be a mapping" \
    "$PN" config check "$D/bad_top_sequence.yaml"
expect_fail 2 "bad_unknown_section.yaml:3:1: unknown section 'saerch'" \
    "$PN" config check "$D/bad_unknown_section.yaml"
check "bad file writes no --out" bash -c "'$PN' config check '$D/bad_range.yaml' --out '$TMP/bad' 2>/dev/null; test ! -e '$TMP/bad'"
expect_fail 2 "nope.yaml: cannot open" "$PN" config check "$TMP/nope.yaml"

# Usage: --help exits 0; missing FILE, unknown action or option exit 2.
expect_ok "$PN" config --help
check "config --help mentions check" grep -q "check FILE" "$TMP/out"
expect_ok "$PN" config check --help
check "check --help mentions --out" grep -q -- "--out DIR" "$TMP/out"
expect_fail 2 "unknown action 'chek'" "$PN" config chek configs/demo.yaml
expect_fail 2 "missing action" "$PN" config
expect_fail 2 "expected one FILE" "$PN" config check
expect_fail 2 "unknown option '--outt'" "$PN" config check configs/demo.yaml --outt x
finish
