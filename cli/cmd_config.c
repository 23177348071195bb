// cmd_config.c — `postnas config check FILE [--out DIR]`.
//
// Validates a job file against the schema (supernet/job_config.h) and prints
// the fully resolved config — every key, defaults included — to stdout, so a
// user sees exactly what a job would run with. --out also writes
// DIR/config.resolved.yaml, the file every run leaves next to its results.
#include "args.h"
#include "commands.h"
#include "supernet/job_config.h"

static const char *k_config_desc =
    "Job configs are YAML files with the sections run, model, data, supernet, search, hw_search and demo\n"
    "(see configs/example-full.yaml). Actions:\n"
    "  check FILE [--out DIR]   validate FILE and print the resolved config (defaults included)";

static int config_check(int argc, char **argv) {
    pn_opt opts[] = {
        {"--out", "DIR", "also write DIR/config.resolved.yaml"},
    };
    const char *pos[1];
    int npos = pn_args_parse("config check", "FILE [--out DIR]",
                             "Validate a YAML job config and print the resolved config (every key, defaults "
                             "included) to stdout.\nBad input exits 2 with FILE:LINE:COL and what was expected.",
                             opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 1);
    if (npos != 1) {
        fprintf(stderr, "postnas config check: error: expected one FILE (see 'postnas config check --help')\n");
        return PN_EXIT_INPUT;
    }
    pn_job_config c;
    pn_job_config_load(&c, pos[0]);
    pn_job_config_print(&c, stdout);
    if (opts[0].present) pn_job_config_write_resolved(&c, opts[0].value);
    pn_job_config_free(&c);
    return 0;
}

int cmd_config(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "check") == 0) return config_check(argc - 1, argv + 1);
    if (argc >= 2 && argv[1][0] != '-') {
        fprintf(stderr, "postnas config: error: unknown action '%s' (expected: check; see 'postnas config --help')\n",
                argv[1]);
        return PN_EXIT_INPUT;
    }
    // Only --help (or nothing) reaches here: the parser prints usage and exits 0 on --help.
    const char *pos[1];
    pn_args_parse("config", "check FILE [--out DIR]", k_config_desc, NULL, 0, argc, argv, pos, 0);
    fprintf(stderr, "postnas config: error: missing action (expected: check; see 'postnas config --help')\n");
    return PN_EXIT_INPUT;
}
