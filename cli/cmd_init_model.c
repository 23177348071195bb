// cmd_init_model.c — `postnas init-model --like NAME --out DIR`: parse flags, call supernet/model_init.c.
#include "args.h"
#include "commands.h"
#include "core/tensor.h"
#include "supernet/model_init.h"

int cmd_init_model(int argc, char **argv) {
    pn_opt opts[] = {
        {"--like", "NAME", "preset: qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen3-1.7b, jet-nemotron-2b, jet-nemotron-4b, bench-6x256"},
        {"--out", "DIR", "output HF directory (config.json + model.safetensors)"},
        {"--dtype", "DT", "bf16 (default) or f32"},
        {"--seed", "N", "weight seed (default 1234)"},
    };
    const char *pos[1];
    pn_args_parse("init-model", "--like NAME --out DIR [options]",
                  "Write an HF-layout model with the published dimensions of NAME and random weights\n"
                  "(for benchmarks: throughput does not depend on weight values).",
                  opts, 4, argc, argv, pos, 0);
    const char *like = pn_opt_require("init-model", &opts[0]);
    const char *out = pn_opt_require("init-model", &opts[1]);
    const char *dt = opts[2].present ? opts[2].value : "bf16";
    long long seed = pn_opt_int("init-model", &opts[3], 1234, 0, INT64_MAX);
    pn_dtype dtype;
    if (strcmp(dt, "bf16") == 0)
        dtype = PN_BF16;
    else if (strcmp(dt, "f32") == 0)
        dtype = PN_F32;
    else {
        fprintf(stderr, "postnas init-model: error: --dtype expects bf16 or f32, got '%s'\n", dt);
        return PN_EXIT_INPUT;
    }
    pn_hf_config cfg;
    if (pn_model_preset(like, &cfg) != 0) {
        fprintf(stderr, "postnas init-model: error: unknown model '%s' (known:", like);
        for (const char *const *n = pn_model_preset_names(); *n; n++) fprintf(stderr, " %s", *n);
        fprintf(stderr, ")\n");
        return PN_EXIT_INPUT;
    }
    pn_model_init_write(&cfg, out, (uint64_t)seed, dtype);
    printf("wrote %s (%s, %d layers, hidden %d)\n", out, like, cfg.num_hidden_layers, cfg.hidden_size);
    return 0;
}
