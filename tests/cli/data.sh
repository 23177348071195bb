# data.sh — `postnas data synth` is deterministic by seed and writes every file;
# `postnas data info` reads them back; bad files exit 2 naming the file.
. "$(dirname "$0")/../cli_lib/common.sh"
expect_ok "$PN" data synth --out "$TMP/a" --seed 7 --train-tokens 20000 --examples 20
expect_ok "$PN" data synth --out "$TMP/b" --seed 7 --train-tokens 20000 --examples 20
expect_ok "$PN" data synth --out "$TMP/c" --seed 8 --train-tokens 20000 --examples 20
for f in train.h5 valid.h5 retrieval.jsonl math.jsonl knowledge.jsonl synth.json; do
    check "wrote $f" test -s "$TMP/a/$f"
    check "$f identical for the same seed" cmp -s "$TMP/a/$f" "$TMP/b/$f"
done
check "another seed differs" sh -c "! cmp -s '$TMP/a/retrieval.jsonl' '$TMP/c/retrieval.jsonl'"
expect_ok "$PN" data info "$TMP/a/train.h5"
printf 'not hdf5 at all' > "$TMP/bad.h5"
expect_fail 2 "bad.h5" "$PN" data info "$TMP/bad.h5"
expect_fail 2 "missing required option --out|--out" "$PN" data synth --seed 1
finish
