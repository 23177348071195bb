// cmd_bench.c — `postnas bench backbone|blocks`: parse flags, call search/bench_*.c.
#include "args.h"
#include "commands.h"
#include "search/bench.h"

static int bench_usage(void) {
    printf("usage: postnas bench WHAT [options]\n\n"
           "benchmarks (each prints a table and writes JSON under results/bench/):\n"
           "  backbone   forward+backward tokens/s of a 6-layer, hidden-256 model at T=256 (CPU),\n"
           "             matmul GFLOP/s next to OpenBLAS sgemm's rate  -> results/bench/cpu-backbone.json\n"
           "  blocks     forward+backward tokens/s per block, chunked vs recurrent, B=4 T=512 C=256\n"
           "             -> results/bench/cpu-blocks.json\n\n"
           "'postnas bench WHAT --help' for options.\n");
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        bench_usage();
        return argc < 2 ? PN_EXIT_INPUT : 0;
    }
    const char *what = argv[1];
    pn_opt opts[] = {
        {"--out", "FILE", "JSON output path (default results/bench/cpu-WHAT.json)"},
        {"--steps", "N", "timed steps (median reported; default 5)"},
        {"--device", "DEV", "cpu (cuda once the CUDA backend exists)"},
    };
    char cmd[64];
    snprintf(cmd, sizeof cmd, "bench %s", what);
    if (strcmp(what, "backbone") != 0 && strcmp(what, "blocks") != 0) {
        fprintf(stderr, "postnas bench: error: unknown benchmark '%s' (expected backbone or blocks)\n", what);
        return PN_EXIT_INPUT;
    }
    const char *pos[1];
    pn_args_parse(cmd, "[options]", "Run a benchmark and write its JSON.", opts, 3, argc - 1, argv + 1, pos, 0);
    int steps = (int)pn_opt_int(cmd, &opts[1], 5, 1, 1000);
    const char *device = opts[2].present ? opts[2].value : "cpu";
    if (strcmp(device, "cpu") != 0) {
        fprintf(stderr, "postnas %s: error: --device %s is not available yet (cpu only)\n", cmd, device);
        return PN_EXIT_INPUT;
    }
    char out[512];
    if (opts[0].present)
        snprintf(out, sizeof out, "%s", opts[0].value);
    else
        snprintf(out, sizeof out, "results/bench/cpu-%s.json", what);
    if (strcmp(what, "backbone") == 0) return pn_bench_backbone(out, steps);
    return pn_bench_blocks(device, out, steps);
}
