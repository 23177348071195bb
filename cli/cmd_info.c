// cmd_info.c — `postnas info MODEL_DIR`: what a pretrained model is, in numbers
// that matter for PostNAS (layers, heads, dims, parameters, KV-cache bytes).
#include "commands.h"
#include "args.h"
#include "supernet/backbone.h"
#include "supernet/hybrid.h"
#include "supernet/backbone_summary.h"

int cmd_info(int argc, char **argv) {
    pn_opt opts[] = {{0}};
    const char *pos[1];
    int npos = pn_args_parse("info", "MODEL_DIR",
                             "Print a Hugging Face model's architecture, dimensions, parameter count and KV-cache "
                             "bytes per token (Qwen2 / Llama / Qwen3; Jet-Nemotron-layout hybrids also per-layer types and state).",
                             opts, 0, argc, argv, pos, 1);
    if (npos != 1) {
        fprintf(stderr, "postnas info: error: expected one MODEL_DIR (see 'postnas info --help')\n");
        return PN_EXIT_INPUT;
    }
    pn_backbone *bb = pn_hybrid_load(pos[0]);
    pn_backbone_print_summary(bb, pos[0], stdout);
    pn_backbone_free(bb);
    return 0;
}
