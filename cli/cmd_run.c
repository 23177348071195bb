// cmd_run.c — `postnas run [--config] FILE [--resume] [--fresh] [--steps N]`: parse
// flags, load the job config, call search/pipeline.c.
#include "args.h"
#include "commands.h"
#include "search/pipeline.h"
#include "supernet/job_config.h"
#include <stdlib.h>

int cmd_run(int argc, char **argv) {
    pn_opt opts[] = {
        {"--config", "FILE", "YAML job config (e.g. configs/demo.yaml)"},
        {"--resume", NULL, "continue a killed run (the supernet training resumes from its last checkpoint)"},
        {"--fresh", NULL, "delete the stage folders of an earlier run in run.out_dir first"},
        {"--steps", "N", "override train.steps of the supernet training"},
        {"--out", "DIR", "override run.out_dir"},
    };
    const char *pos[1];
    int npos = pn_args_parse("run", "[--config] FILE [--resume | --fresh] [--steps N] [--out DIR]",
                             "The whole PostNAS job: evaluate the teacher, distil the supernet's linear paths,\n"
                             "search where full attention (and SWA) stays, run the hardware search when\n"
                             "hw_search.enabled, export the chosen hybrid (Jet-Nemotron layout) and check it,\n"
                             "and write run.out_dir/report.md with plots.",
                             opts, 5, argc, argv, pos, 1);
    const char *path = opts[0].present ? opts[0].value : (npos ? pos[0] : NULL);
    if (!path) {
        fprintf(stderr, "postnas run: error: expected a config FILE (see 'postnas run --help')\n");
        return PN_EXIT_INPUT;
    }
    if (opts[1].present && opts[2].present) {
        fprintf(stderr, "postnas run: error: --resume and --fresh exclude each other\n");
        return PN_EXIT_INPUT;
    }
    pn_job_config c;
    pn_job_config_load(&c, path);
    if (opts[3].present) {
        char *end;
        long v = strtol(opts[3].value, &end, 10);
        if (*end || v < 1 || v > 100000000) {
            fprintf(stderr, "postnas run: error: --steps '%s': expected a positive integer\n", opts[3].value);
            return PN_EXIT_INPUT;
        }
        c.train.steps = (int)v;
    }
    if (opts[4].present) {
        free(c.run.out_dir);
        c.run.out_dir = pn_strdup(opts[4].value);
    }
    pn_pipeline_opts po = {.where = path, .resume = opts[1].present, .fresh = opts[2].present};
    int rc = pn_pipeline_run(&c, &po);
    pn_job_config_free(&c);
    return rc;
}
