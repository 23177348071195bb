# init_model.sh — `postnas init-model`: writes a loadable directory; bad flags exit 2.
. "$(dirname "$0")/../cli_lib/common.sh"
expect_ok "$PN" init-model --like bench-6x256 --out "$TMP/m" --dtype f32
expect_ok "$PN" info "$TMP/m"
check "info shows the preset's width" grep -q "hidden size: *256" "$TMP/out"
expect_fail 2 "unknown model 'gpt-17'" "$PN" init-model --like gpt-17 --out "$TMP/x"
expect_fail 2 "missing required option --out" "$PN" init-model --like bench-6x256
expect_fail 2 "--dtype expects bf16 or f32" "$PN" init-model --like bench-6x256 --out "$TMP/y" --dtype f8
finish
