// cmd_train.c — `postnas train --config FILE [--resume] [--steps N]`: parse flags,
// load the job config, call supernet/trainer.h.
#include "args.h"
#include "commands.h"
#include "supernet/trainer.h"

int cmd_train(int argc, char **argv) {
    pn_opt opts[] = {
        {"--config", "FILE", "YAML job config (train, data, model or arch sections)"},
        {"--resume", NULL, "continue from the newest checkpoint in run.out_dir/ckpt (bit-identical)"},
        {"--steps", "N", "override train.steps (the LR schedule follows it; --resume needs the same value)"},
    };
    const char *pos[1];
    int npos = pn_args_parse(
        "train", "[--config] FILE [--resume] [--steps N]",
        "Train what the config describes: train.mode backbone pretrains a model on next-token loss\n"
        "(model.path, or model.path \"\" and an arch section for random init), train.mode supernet\n"
        "distils the linear paths of the supernet from the pretrained model. Writes into run.out_dir:\n"
        "config.resolved.yaml, metrics.jsonl, ckpt/step_N/ checkpoints, and at the end model/ (backbone)\n"
        "or supernet.safetensors (supernet). A killed run continues with --resume.",
        opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 1);
    const char *path = opts[0].present ? opts[0].value : (npos ? pos[0] : NULL);
    if (!path || (opts[0].present && npos)) {
        fprintf(stderr, "postnas train: error: expected one config FILE (see 'postnas train --help')\n");
        return PN_EXIT_INPUT;
    }
    pn_job_config c;
    pn_job_config_load(&c, path);
    if (opts[2].present) c.train.steps = (int)pn_opt_int("train", &opts[2], 0, 0, 2147483647LL);
    pn_train_opts to = {.resume = opts[1].present, .stop_at = 0, .where = path};
    pn_train_result r;
    int rc = pn_train_run(&c, &to, &r);
    pn_job_config_free(&c);
    return rc;
}
