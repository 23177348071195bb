// cmd_search.c — `postnas search SUB ...`: the PostNAS search steps, one
// subcommand each (today `hw`, the hardware-aware head/key/value search of
// search/hw_search.h). A new step is one function and one row in k_subs.
// Only flags are parsed here; the library does the work and only logs, so the
// short result table is printed from its result struct.
#include "args.h"
#include "commands.h"
#include "search/hw_search.h"
#include <math.h>
#include <string.h>

static int search_hw(int argc, char **argv) {
    const char *cmd = "search hw";
    pn_opt opts[] = {
        {"--config", "FILE", "YAML job config (model, data, train, supernet placement and dims, search.tasks, "
                             "hw_search)"},
        {"--out", "DIR", "output directory (default run.out_dir)"},
        {"--steps", "N", "distillation steps per candidate (overrides hw_search.train_steps)"},
        {"--throughput-only", NULL, "measure decode throughput only (hw_search.accuracy: false)"},
        {"--throughput-from", "FILE", "take the decode numbers from an earlier hw_search.json (hw_search.throughput_from)"},
        {"--device", "DEV", "cpu or cuda: overrides run.device (where throughput is measured and candidates train)"},
    };
    const char *pos[1];
    int npos = pn_args_parse(
        cmd, "[--config] FILE [--out DIR] [--steps N] [--throughput-only | --throughput-from FILE] [--device DEV]",
        "Hardware-aware search (PostNAS step 4, Jet-Nemotron Table 2). With the placement fixed\n"
        "(supernet.full_layers / swa_layers), try every (heads, key dim, value dim, conv size) of the\n"
        "hw_search lists whose decode cache + state bytes per sequence at hw_search.context stay within\n"
        "the budget (hw_search.budget_bytes, 0 = the base design's: supernet.heads / key_dim / value_dim /\n"
        "conv_size). For each: decode tokens/s of the hybrid on run.device, then a short distillation\n"
        "(OUT/cand_N/) and task accuracy on search.tasks. Chosen: the most accurate candidate within\n"
        "hw_search.throughput_tolerance of the best throughput. Writes OUT/hw_search.md (table),\n"
        "hw_search.csv, hw_search.json and hw_search.png (when python3 + matplotlib are available).\n"
        "An interrupted search continues from the candidates' checkpoints when run again.\n"
        "hw_search.throughput_model (a Jet-Nemotron preset or a jet_nemotron directory) times and budgets\n"
        "that layout (random weights) and trains / scores each candidate's dims on model.path; the two\n"
        "halves may run on different machines: --throughput-only on the GPU, then --throughput-from\n"
        "OUT/hw_search.json where the distillation runs.",
        opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 1);
    const char *path = opts[0].present ? opts[0].value : (npos ? pos[0] : NULL);
    if (!path || (opts[0].present && npos)) {
        fprintf(stderr, "postnas %s: error: expected one config FILE (see 'postnas search hw --help')\n", cmd);
        return PN_EXIT_INPUT;
    }
    pn_job_config c;
    pn_job_config_load(&c, path);
    if (opts[2].present) c.hw_search.train_steps = (int)pn_opt_int(cmd, &opts[2], 0, 1, 2147483647LL);
    if (opts[3].present && opts[4].present) {
        fprintf(stderr, "postnas %s: error: --throughput-only and --throughput-from exclude each other\n", cmd);
        return PN_EXIT_INPUT;
    }
    if (opts[5].present) {
        int dev = -1;
        for (int d = 0; pn_job_device_names[d]; d++)
            if (!strcmp(pn_job_device_names[d], opts[5].value)) dev = d;
        if (dev < 0) {
            fprintf(stderr, "postnas %s: error: --device %s: expected cpu or cuda\n", cmd, opts[5].value);
            return PN_EXIT_INPUT;
        }
        c.run.device = dev;
    }
    if (opts[3].present) c.hw_search.accuracy = false;
    if (opts[4].present) {
        free(c.hw_search.throughput_from);
        c.hw_search.throughput_from = pn_strdup(opts[4].value);
    }
    const char *out_dir = opts[1].present ? opts[1].value : c.run.out_dir;
    pn_hw_result *r = pn_calloc(1, sizeof *r);
    pn_hw_search_run(&c, path, out_dir, r);

    printf("%4s %6s %5s %5s %5s %14s %12s %10s  %s\n", "#", "heads", "K", "V", "conv", "cache+state_B", "decode_tok/s",
           "accuracy", "");
    for (int i = 0; i < r->n; i++) {
        const pn_hw_candidate *d = &r->cand[i];
        printf("%4d %6d %5d %5d %5d %14lld", i, d->H, d->K, d->V, d->conv, (long long)d->bytes);
        if (!d->kept) {
            printf(" %12s %10s  excluded (%s the budget of %lld bytes)\n", "-", "-",
                   d->bytes > r->budget_bytes ? "over" : "far under", (long long)r->budget_bytes);
            continue;
        }
        printf(" %12.1f %10.4f  %s\n", d->tokens_per_s, d->accuracy,
               d->chosen ? "chosen" : d->within_tolerance ? "" : "too slow");
    }
    if (r->chosen >= 0) {
        const pn_hw_candidate *d = &r->cand[r->chosen];
        printf("chosen: #%d heads %d, key_dim %d, value_dim %d, conv_size %d (accuracy %.4f, %.1f tok/s); see "
               "%s/hw_search.md\n",
               d->index, d->H, d->K, d->V, d->conv, d->accuracy, d->tokens_per_s, out_dir);
    }
    free(r);
    pn_job_config_free(&c);
    return 0;
}

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} search_sub;

static const search_sub k_subs[] = {
    {"hw", search_hw, "hardware-aware search of the linear block's heads / key dim / value dim under a cache budget"},
};

static void search_usage(FILE *f) {
    fprintf(f, "usage: postnas search SUB [options]\n\nPostNAS search steps:\n");
    for (size_t i = 0; i < PN_ARRAY_LEN(k_subs); i++) fprintf(f, "  %-6s %s\n", k_subs[i].name, k_subs[i].summary);
    fprintf(f, "\n'postnas search SUB --help' for options.\n");
}

int cmd_search(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        search_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? PN_EXIT_INPUT : 0;
    }
    for (size_t i = 0; i < PN_ARRAY_LEN(k_subs); i++)
        if (strcmp(argv[1], k_subs[i].name) == 0) return k_subs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "postnas search: error: unknown search '%s' (expected:", argv[1]);
    for (size_t i = 0; i < PN_ARRAY_LEN(k_subs); i++) fprintf(stderr, " %s", k_subs[i].name);
    fprintf(stderr, "; see 'postnas search --help')\n");
    return PN_EXIT_INPUT;
}
