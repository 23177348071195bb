// cmd_ablate.c — `postnas ablate --config FILE [--steps N] [--blocks a,b] [--out DIR]`:
// parse flags, load the job config, apply the overrides, call search/ablation.h.
// The table goes to stdout (the command's product); progress to stderr.
#include "args.h"
#include "commands.h"
#include "core/fileio.h"
#include "search/ablation.h"

#define ABLATE_CMD "ablate"

int cmd_ablate(int argc, char **argv) {
    pn_opt opts[] = {
        {"--config", "FILE", "YAML job config (model, data, train, supernet with sampling: fixed, ablation)"},
        {"--steps", "N", "override train.steps for every block (e.g. a quick CI-budget run)"},
        {"--blocks", "LIST", "override ablation.blocks: comma-separated, e.g. jetblock,gated_deltanet"},
        {"--out", "DIR", "override run.out_dir (per-block runs go to DIR/<block>/)"},
    };
    const char *pos[1];
    int npos = pn_args_parse(
        ABLATE_CMD, "[--config] FILE [--steps N] [--blocks LIST] [--out DIR]",
        "Block ablation (PostNAS step 3): train every linear block of ablation.blocks on the same fixed\n"
        "placement (supernet.full_layers / swa_layers) with the same budget, data and seed, then compare\n"
        "them with the teacher (all attention): accuracy per task (search.tasks in data.tasks_dir),\n"
        "trainable parameters, decode-state bytes per sequence at ablation.context, and measured CPU\n"
        "tokens/s (training loop; engine decode). Writes run.out_dir/ablation.{md,csv,json,png} and\n"
        "run.out_dir/<block>/ (training run: metrics.jsonl, checkpoints, supernet.safetensors); a block\n"
        "whose directory holds checkpoints of the same config continues from them.",
        opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 1);
    const char *path = opts[0].present ? opts[0].value : (npos ? pos[0] : NULL);
    if (!path || (opts[0].present && npos)) {
        fprintf(stderr, "postnas ablate: error: expected one config FILE (see 'postnas ablate --help')\n");
        return PN_EXIT_INPUT;
    }
    pn_job_config c;
    pn_job_config_load(&c, path);
    if (opts[1].present) c.train.steps = (int)pn_opt_int(ABLATE_CMD, &opts[1], 0, 1, 2147483647LL);
    if (opts[2].present) pn_ablation_set_blocks(&c, opts[2].value, "--blocks");
    if (opts[3].present) {
        if (!opts[3].value[0]) pn_die_input("--out", "expected a directory, got an empty string");
        free(c.run.out_dir);
        c.run.out_dir = pn_strdup(opts[3].value);
    }
    pn_ablation_result r;
    int rc = pn_ablation_run(&c, path, &r);
    char md[4200];
    pn_path_join(md, sizeof md, c.run.out_dir, "ablation.md");
    size_t n = 0;
    char *text = pn_read_file(md, &n);
    fwrite(text, 1, n, stdout);
    free(text);
    pn_ablation_result_free(&r);
    pn_job_config_free(&c);
    return rc;
}
