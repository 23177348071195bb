// cmd_export.c — `postnas export`: parse flags, call search/export.c (build the
// hybrid from a base model + layout + linear weights) and supernet/hybrid.c (write).
#include "args.h"
#include "commands.h"
#include "core/fileio.h"
#include "search/export.h"

int cmd_export(int argc, char **argv) {
    const char *cmd = "export";
    pn_opt opts[] = {
        {"--model", "DIR", "base HF model directory (qwen2 / llama / qwen3, or a jet_nemotron one)"},
        {"--layers", "SPEC|FILE", "layer layout: e.g. \"attn:14,19 swa:20-21 rest:jet\", or an architecture.yaml"},
        {"--block", "NAME", "type of the layers SPEC leaves out (default jet = jetblock)"},
        {"--out", "DIR", "output directory: config.json, model.safetensors, architecture.yaml"},
        {"--linear-weights", "FILE", "trained linear blocks (supernet checkpoint model.safetensors); default: init"},
        {"--set", "[TYPE.]KEY=VALUE", "a block dim, e.g. jet.num_heads=12, head_v_dim=256, swa.window_size=1152",
         .multi = 1},
        {"--dtype", "DT", "f32, bf16 or f16 (default: the base model's torch_dtype, else f32)"},
        {"--seed", "N", "seed of the linear blocks' init when they have no weights (default 1234)"},
    };
    pn_args_parse(cmd, "--model DIR --layers SPEC|FILE --out DIR [options]",
                  "Write a hybrid in the Jet-Nemotron layout (config.json with layer_types and\n"
                  "efficient_attention_config, model.safetensors, architecture.yaml). SPEC: items TYPE:LAYERS or\n"
                  "rest:TYPE separated by spaces or ';'; LAYERS = indices and ranges a-b, comma-separated; TYPE =\n"
                  "attn, swa, jet, gated_deltanet, deltanet, gla, retnet, mamba2, rwkv7. A FILE is read as an\n"
                  "architecture.yaml (as written by export). Backbone and attention weights come from --model.",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, NULL, 0);
    const char *model = pn_opt_require(cmd, &opts[0]);
    const char *layers = pn_opt_require(cmd, &opts[1]);
    const char *block = opts[2].present ? opts[2].value : "jet";
    const char *out = pn_opt_require(cmd, &opts[3]);
    const char *lw = opts[4].present ? opts[4].value : NULL;
    long long seed = pn_opt_int(cmd, &opts[7], 1234, 0, INT64_MAX);

    pn_hf_config base;
    pn_hybrid_layout *base_lay = pn_malloc(sizeof(*base_lay)), *lay = pn_malloc(sizeof(*lay));
    pn_hybrid_config_load(model, &base, base_lay);
    if (!pn_hybrid_type_find(block)) {
        fprintf(stderr, "postnas export: error: --block '%s' is not a layer type\n", block);
        return PN_EXIT_INPUT;
    }
    if (pn_file_exists(layers) && !pn_is_dir(layers))
        pn_hybrid_arch_load(layers, base.num_hidden_layers, lay);
    else
        pn_export_layout_parse(layers, base.num_hidden_layers, block, lay);
    for (int i = 0; i < opts[5].n_values; i++) pn_export_layout_set(lay, opts[5].values[i], block);

    pn_dtype dtype = PN_F32;
    const char *dt = opts[6].present ? opts[6].value : NULL;
    if (!dt) dt = strcmp(base.dtype, "bfloat16") == 0 ? "bf16" : strcmp(base.dtype, "float16") == 0 ? "f16" : "f32";
    if (strcmp(dt, "f32") == 0)
        dtype = PN_F32;
    else if (strcmp(dt, "bf16") == 0)
        dtype = PN_BF16;
    else if (strcmp(dt, "f16") == 0)
        dtype = PN_F16;
    else {
        fprintf(stderr, "postnas export: error: --dtype expects f32, bf16 or f16, got '%s'\n", dt);
        return PN_EXIT_INPUT;
    }

    pn_backbone *bb = pn_export_build(model, lay, lw, (uint64_t)seed);
    char source[4400];
    snprintf(source, sizeof source, "postnas export --model %.2000s%s%.2000s", model, lw ? " --linear-weights " : "",
             lw ? lw : "");
    pn_hybrid_save(bb, out, dtype, source);
    int counts[PN_HYBRID_MAX_TYPES] = {0};
    for (int l = 0; l < lay->n_layers; l++) counts[pn_hybrid_type_index(lay->type[l])]++;
    printf("wrote %s: %d layers (", out, lay->n_layers);
    int first = 1;
    for (int i = 0; i < pn_block_type_count(); i++) {
        if (!counts[i]) continue;
        printf("%s%s %d", first ? "" : ", ", pn_hybrid_type_name(pn_block_type_at(i)), counts[i]);
        first = 0;
    }
    printf("), %lld parameters\n", (long long)pn_backbone_numel(bb));
    pn_backbone_free(bb);
    free(lay);
    free(base_lay);
    return 0;
}
