# export.sh — `postnas export` writes a Jet-Nemotron-layout hybrid that `info`,
# `forward` and a second export read back; bad layouts and directories exit 2.
. "$(dirname "$0")/../cli_lib/common.sh"
BASE="$FX/qwen2-tiny"
IN="$BASE/reference.safetensors"

# A hybrid of the tiny qwen2 fixture: attn, swa, jet, gated_deltanet.
expect_ok "$PN" export --model "$BASE" --layers "attn:0 swa:1 gated_deltanet:3 rest:jet" \
    --set jet.num_heads=2 --set jet.head_dim=16 --set jet.head_v_dim=32 --set swa.window_size=4 \
    --set gated_deltanet.num_heads=2 --set gated_deltanet.head_dim=16 --out "$TMP/h"
check "export reports the layer counts" grep -q "attn 1, swa 1, jet 1, gated_deltanet 1" "$TMP/out"
for f in config.json model.safetensors architecture.yaml; do
    check "export wrote $f" test -s "$TMP/h/$f"
done
check "config.json: model_type jet_nemotron" grep -q '"model_type": "jet_nemotron"' "$TMP/h/config.json"
check "config.json: swa window" grep -q '"window_size": 4' "$TMP/h/config.json"
check "architecture.yaml: layer types" grep -q "layer_types: \[attn, swa, jet, gated_deltanet\]" "$TMP/h/architecture.yaml"

expect_ok "$PN" info "$TMP/h"
check "info prints per-layer types" grep -q "layer types: *0 attn, 1 swa, 2 jet, 3 gated_deltanet" "$TMP/out"
check "info prints the jet dims" grep -Eq "jet +1 layer, H=2 K=16 V=32" "$TMP/out"
expect_ok "$PN" forward --model "$TMP/h" --inputs "$IN" --out "$TMP/f_h.safetensors"

# The same layout from architecture.yaml gives byte-identical files (same seed, same source).
expect_ok "$PN" export --model "$BASE" --layers "$TMP/h/architecture.yaml" --out "$TMP/h2"
for f in config.json model.safetensors architecture.yaml; do
    check "architecture.yaml round trip: $f identical" cmp -s "$TMP/h/$f" "$TMP/h2/$f"
done

# Linear weights from a file (the first export's self_attn names), another seed: same forward.
expect_ok "$PN" export --model "$BASE" --layers "$TMP/h/architecture.yaml" --seed 77 \
    --linear-weights "$TMP/h/model.safetensors" --out "$TMP/h3"
expect_ok "$PN" forward --model "$TMP/h3" --inputs "$IN" --out "$TMP/f_h3.safetensors"
check "linear weights from a file: identical forward" cmp -s "$TMP/f_h.safetensors" "$TMP/f_h3.safetensors"
expect_ok "$PN" export --model "$BASE" --layers "$TMP/h/architecture.yaml" --seed 77 --out "$TMP/h4"
expect_ok "$PN" forward --model "$TMP/h4" --inputs "$IN" --out "$TMP/f_h4.safetensors"
check "another init seed changes the forward" test -n "$(cmp "$TMP/f_h.safetensors" "$TMP/f_h4.safetensors")"

# All attention in the Jet-Nemotron layout runs exactly like the plain model.
expect_ok "$PN" export --model "$BASE" --layers "rest:attn" --out "$TMP/a"
expect_ok "$PN" forward --model "$TMP/a" --inputs "$IN" --out "$TMP/f_a.safetensors"
expect_ok "$PN" forward --model "$BASE" --inputs "$IN" --out "$TMP/f_base.safetensors"
check "all-attn jet_nemotron = plain qwen2 forward, byte for byte" cmp -s "$TMP/f_a.safetensors" "$TMP/f_base.safetensors"

# Bad input.
expect_fail 2 "'lstm' is not a layer type" "$PN" export --model "$BASE" --layers "lstm:1" --out "$TMP/x"
expect_fail 2 "layer 1 is named twice" "$PN" export --model "$BASE" --layers "attn:1 swa:0-1" --out "$TMP/x"
expect_fail 2 "out of range \(the model has layers 0..3\)" "$PN" export --model "$BASE" --layers "attn:4" --out "$TMP/x"
expect_fail 2 "'heads' is not a dim of layer type jet" "$PN" export --model "$BASE" --layers "rest:jet" --set heads=2 --out "$TMP/x"
expect_fail 2 "expected an integer >= 1, got 'two'" "$PN" export --model "$BASE" --layers "rest:jet" --set num_heads=two --out "$TMP/x"
expect_fail 2 "linear_attn.q_proj.weight' \(or 'model.layers.2.self_attn.q_proj.weight'\) is missing" \
    "$PN" export --model "$BASE" --layers "rest:attn jet:2" --linear-weights "$TMP/f_base.safetensors" --out "$TMP/x"
expect_fail 2 "tensor model.layers.2.self_attn.q_proj.weight: expected shape \[96, 64\], found \[64, 64\]" \
    "$PN" export --model "$BASE" --layers "rest:attn jet:2" --linear-weights "$BASE/model.safetensors" --out "$TMP/x"
expect_fail 2 "missing required option --layers" "$PN" export --model "$BASE" --out "$TMP/x"
mkdir -p "$TMP/bad"
sed 's/"gated_deltanet"$/"lstm"/' "$TMP/h/config.json" >"$TMP/bad/config.json"
cp "$TMP/h/model.safetensors" "$TMP/bad/"
expect_fail 2 "config.json: layer_types\[3\] = 'lstm' is not a known layer type" "$PN" info "$TMP/bad"
sed 's/"window_size": 4/"window_size": 4, "depth": 2/' "$TMP/h/config.json" >"$TMP/bad/config.json"
expect_fail 2 "efficient_attention_config.swa.depth' is not known" "$PN" forward --model "$TMP/bad" --inputs "$IN" --out "$TMP/x.st"
finish
