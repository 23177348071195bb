// cmd_forward.c — `postnas forward`: a model's forward (and optionally backward)
// on token ids from a safetensors file, written under the tensor names of the
// reference fixtures (logits, hidden.i, loss, grad.NAME), so a reference file can
// be given as --inputs and the output compared to it tensor by tensor.
#include "commands.h"
#include "args.h"
#include "core/safetensors.h"
#include "supernet/backbone.h"
#include "supernet/hybrid.h"

int cmd_forward(int argc, char **argv) {
    pn_opt opts[] = {
        {"--model", "DIR", "Hugging Face model directory (config.json + safetensors)"},
        {"--inputs", "FILE", "safetensors file with input_ids (I64 or I32, [B, T])"},
        {"--out", "FILE", "output safetensors: logits, hidden.i, loss[, grad.NAME]"},
        {"--grad", NULL, "also run the backward of the LM loss and write grad.NAME for every parameter"},
    };
    const int n_opts = (int)PN_ARRAY_LEN(opts);
    pn_args_parse("forward", "--model DIR --inputs FILE --out FILE [--grad]",
                  "Forward (and backward) of the pretrained model on input_ids. loss = mean cross-entropy of "
                  "logits[:, :-1] against input_ids[:, 1:].",
                  opts, n_opts, argc, argv, NULL, 0);
    const char *model = pn_opt_require("forward", &opts[0]);
    const char *inputs = pn_opt_require("forward", &opts[1]);
    const char *out = pn_opt_require("forward", &opts[2]);
    const int want_grad = opts[3].present;

    pn_backbone *bb = pn_hybrid_load(model);
    pn_safetensors *in = pn_st_open(inputs);
    if (!pn_st_find(in, "input_ids")) pn_die_input(inputs, "tensor 'input_ids' is missing (expected I64 [B, T])");
    int ndim = 0;
    int64_t shape[PN_MAX_DIMS];
    int64_t *ids = pn_st_load_i64(in, "input_ids", &ndim, shape);
    if (ndim != 2 || shape[0] < 1 || shape[1] < 1)
        pn_die_input(inputs, "tensor 'input_ids': expected shape [B, T] with B, T >= 1, found %d dims", ndim);
    const int B = (int)shape[0], T = (int)shape[1];
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= bb->V) {
            char where[4200];
            snprintf(where, sizeof where, "%s (tensor input_ids[%lld, %lld])", inputs, (long long)(i / T),
                     (long long)(i % T));
            pn_die_input(where, "token id %lld is out of range [0, %d) (vocab_size of %s)", (long long)ids[i], bb->V,
                         model);
        }
    pn_st_close(in);

    pn_backbone_forward(bb, ids, B, T);
    double loss = pn_backbone_loss(bb);
    if (want_grad) {
        pn_backbone_alloc_grads(bb);
        pn_backbone_backward(bb, bb->dlogits, NULL);
    }

    pn_st_writer *w = pn_st_writer_new();
    const int64_t sh_logits[3] = {B, T, bb->V}, sh_hidden[3] = {B, T, bb->C}, sh_loss[1] = {1};
    pn_st_writer_add_f32(w, "logits", PN_F32, 3, sh_logits, bb->logits);
    for (int i = 0; i <= bb->n_layers; i++) {
        char name[32];
        snprintf(name, sizeof name, "hidden.%d", i);
        pn_st_writer_add_f32(w, name, PN_F32, 3, sh_hidden, pn_backbone_hidden(bb, i));
    }
    float lossf = (float)loss;
    pn_st_writer_add_f32(w, "loss", PN_F32, 1, sh_loss, &lossf);
    if (want_grad) {
        int n = pn_backbone_param_count(bb);
        pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
        pn_backbone_param_table(bb, t);
        for (int i = 0; i < n; i++) {
            char name[200];
            snprintf(name, sizeof name, "grad.%s", t[i].name);
            pn_st_writer_add_f32(w, name, PN_F32, t[i].ndim, t[i].shape, *t[i].grad);
        }
        free(t);
    }
    pn_st_writer_meta(w, "note", "postnas forward: loss = mean CE of logits[:, :-1] against input_ids[:, 1:]");
    pn_st_writer_save(w, out);
    fprintf(stderr, "postnas forward: B=%d T=%d loss %.6f -> %s\n", B, T, loss, out);
    free(ids);
    pn_backbone_free(bb);
    return 0;
}
