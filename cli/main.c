// main.c — the `postnas` command: dispatch to subcommands. No logic here.
#include "commands.h"
#include "core/common.h"
#include "core/log.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command g_commands[] = {
    {"info", cmd_info, "print a model's architecture, parameter count and KV-cache bytes per token"},
    {"forward", cmd_forward, "run a model's forward (and backward) on input ids; write logits, hidden states, grads"},
    {"config", cmd_config, "validate a YAML job config and print the resolved config"},
    {"op", cmd_op, "run one linear-attention op on a reference file (forward + backward)"},
    {"block", cmd_block, "run one token-mixer block on a reference file (forward + backward)"},
    {"bench", cmd_bench, "benchmarks: backbone, blocks, decode (writes results/bench/*.json)"},
    {"init-model", cmd_init_model, "write an HF model directory with published dimensions and random weights"},
    {"data", cmd_data, "synthetic task data and token/task file checks (synth, info)"},
    {"train", cmd_train, "train a backbone (from scratch or pretrained) or the supernet by distillation"},
    {"eval", cmd_eval, "evaluate a model (plain or hybrid) on JSONL task suites"},
    {"export", cmd_export, "write a hybrid (placement + blocks + weights) in the Jet-Nemotron layout"},
    {"ablate", cmd_ablate, "block ablation: each linear block on one placement; accuracy, params, state, tok/s"},
    {"search", cmd_search, "PostNAS search steps: hw (hardware-aware heads / key / value search)"},
    {"run", cmd_run, "the whole PostNAS job of a config: supernet, placement, hw search, export, report"},
    {"demo", cmd_demo, "short demo: load a model, print its summary and a forward loss"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: postnas [--log LEVEL] COMMAND [ARGS...]\n\n");
    fprintf(f, "PostNAS: turn a pretrained full-attention LLM into a fast hybrid (Jet-Nemotron method).\n\n");
    fprintf(f, "commands:\n");
    for (size_t i = 0; i < PN_ARRAY_LEN(g_commands); i++)
        fprintf(f, "  %-11s %s\n", g_commands[i].name, g_commands[i].summary);
    fprintf(f, "\n'postnas COMMAND --help' describes each command.\n");
    fprintf(f, "global options:\n  --log LEVEL   debug | info | warn | error | quiet (default info; env POSTNAS_LOG)\n");
}

int main(int argc, char **argv) {
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            int l = pn_log_level_parse(argv[i + 1]);
            if (l < 0) {
                fprintf(stderr, "postnas: error: --log expects debug|info|warn|error|quiet, got '%s'\n", argv[i + 1]);
                return PN_EXIT_INPUT;
            }
            pn_log_set_level((pn_log_level)l);
            i += 2;
            continue;
        }
        fprintf(stderr, "postnas: error: unknown global option '%s'\n", argv[i]);
        usage(stderr);
        return PN_EXIT_INPUT;
    }
    if (i >= argc) {
        usage(stderr);
        return PN_EXIT_INPUT;
    }
    for (size_t c = 0; c < PN_ARRAY_LEN(g_commands); c++)
        if (strcmp(argv[i], g_commands[c].name) == 0) return g_commands[c].fn(argc - i, argv + i);
    fprintf(stderr, "postnas: error: unknown command '%s' (see 'postnas --help')\n", argv[i]);
    return PN_EXIT_INPUT;
}
