// cmd_demo.c — `postnas demo [--config] FILE`: parse flags, load the job config, call search/demo.c.
#include "args.h"
#include "commands.h"
#include "search/demo.h"

int cmd_demo(int argc, char **argv) {
    pn_opt opts[] = {{"--config", "FILE", "YAML job config (e.g. configs/demo.yaml)"}};
    const char *pos[1];
    int npos = pn_args_parse("demo", "[--config] FILE",
                             "Load the configured model, print its summary, run a forward and a backward pass\n"
                             "on a small batch and report the loss. Writes run.out_dir/demo.json and the\n"
                             "resolved config.",
                             opts, 1, argc, argv, pos, 1);
    const char *path = opts[0].present ? opts[0].value : (npos ? pos[0] : NULL);
    if (!path) {
        fprintf(stderr, "postnas demo: error: expected a config FILE (see 'postnas demo --help')\n");
        return PN_EXIT_INPUT;
    }
    pn_job_config c;
    pn_job_config_load(&c, path);
    int rc = pn_demo_run(&c);
    pn_job_config_free(&c);
    return rc;
}
