// backbone_summary.c — see backbone_summary.h. KV-cache bytes per token count K
// and V of every layer's pretrained attention, the number PostNAS shrinks. When
// the layers' mixers are not all attention (a loaded hybrid), the layer types
// (as runs), each type's dims and the decode state per sequence follow.
#include "supernet/backbone_summary.h"
#include "supernet/hybrid.h"

static int mixer_is(const pn_backbone *bb, int l, const char *name) {
    return strcmp(bb->layers[l].mixer->type->name, name) == 0;
}

static void print_hybrid(const pn_backbone *bb, FILE *f) {
    const int L = bb->n_layers;
    fprintf(f, "layer types:         ");
    for (int l = 0; l < L;) {
        int e = l;
        while (e + 1 < L && mixer_is(bb, e + 1, bb->layers[l].mixer->type->name)) e++;
        const pn_block_type *t = pn_block_type_find(bb->layers[l].mixer->type->name);
        const char *tn = t ? pn_hybrid_type_name(t) : bb->layers[l].mixer->type->name;
        if (e > l)
            fprintf(f, "%s%d-%d %s", l ? ", " : "", l, e, tn);
        else
            fprintf(f, "%s%d %s", l ? ", " : "", l, tn);
        l = e + 1;
    }
    fprintf(f, "\n");
    for (int l = 0; l < L; l++) {
        const pn_block *m = bb->layers[l].mixer;
        int seen = 0;
        for (int j = 0; j < l && !seen; j++) seen = mixer_is(bb, j, m->type->name);
        if (seen) continue;
        int count = 0;
        for (int j = 0; j < L; j++) count += mixer_is(bb, j, m->type->name);
        const pn_block_type *t = pn_block_type_find(m->type->name);
        const pn_block_cfg *c = &m->cfg;
        const int attn_like = strcmp(m->type->name, "attn") == 0 || strcmp(m->type->name, "swa") == 0;
        fprintf(f, "  %-18s %d layer%s, H=%d K=%d", t ? pn_hybrid_type_name(t) : m->type->name, count,
                count == 1 ? "" : "s", c->H, c->K);
        if (attn_like) fprintf(f, " (kv heads %d)", c->H_kv);
        if (!attn_like && c->V > 0 && strcmp(m->type->name, "mamba2") != 0) fprintf(f, " V=%d", c->V);
        if (strcmp(m->type->name, "mamba2") == 0) fprintf(f, " N=%d", c->d_state);
        if (strcmp(m->type->name, "swa") == 0) fprintf(f, ", window %d", c->window);
        if (c->conv_size && strcmp(m->type->name, "swa") != 0 && strcmp(m->type->name, "attn") != 0)
            fprintf(f, ", conv %d", c->conv_size);
        fprintf(f, ", %lld params/layer\n", (long long)pn_block_param_count(m));
    }
    const int64_t ctx[2] = {4096, 65536};
    for (int i = 0; i < 2; i++) {
        int64_t kv = 0, rec = 0;
        for (int l = 0; l < L; l++) {
            pn_state_size s = bb->layers[l].mixer->type->state_size(&bb->layers[l].mixer->cfg, ctx[i]);
            kv += s.kv * 2;
            rec += s.rec * 4;
        }
        fprintf(f, "decode state @%3lldK:  %.2f MiB per sequence (KV %.2f MiB bf16 + recurrent %.2f MiB f32)\n",
                (long long)(ctx[i] / 1024), (double)(kv + rec) / (1 << 20), (double)kv / (1 << 20),
                (double)rec / (1 << 20));
    }
}

void pn_backbone_print_summary(const pn_backbone *bb, const char *dir, FILE *f) {
    const pn_hf_config *c = &bb->cfg;
    int64_t params = pn_backbone_numel(bb);
    int64_t kv = pn_backbone_kv_per_token(bb);
    int hybrid = 0;
    for (int l = 0; l < bb->n_layers; l++) hybrid = hybrid || !mixer_is(bb, l, "attn");
    fprintf(f, "model:               %s\n", dir);
    fprintf(f, "architecture:        %s (model_type %s%s)\n", c->architecture[0] ? c->architecture : "-",
            hybrid ? "jet_nemotron, base " : "", c->model_type);
    fprintf(f, "dtype:               %s\n", c->dtype[0] ? c->dtype : "-");
    fprintf(f, "layers:              %d\n", c->num_hidden_layers);
    fprintf(f, "hidden size:         %d\n", c->hidden_size);
    fprintf(f, "intermediate size:   %d\n", c->intermediate_size);
    fprintf(f, "attention heads:     %d (kv heads %d, head dim %d)\n", c->num_attention_heads,
            c->num_key_value_heads, c->head_dim);
    fprintf(f, "vocab size:          %d\n", c->vocab_size);
    fprintf(f, "rope theta:          %g\n", c->rope_theta);
    fprintf(f, "rms norm eps:        %g\n", c->rms_norm_eps);
    fprintf(f, "biases:              q/k/v %s, o %s\n", c->qkv_bias ? "yes" : "no", c->o_bias ? "yes" : "no");
    fprintf(f, "q/k norm:            %s\n", c->qk_norm ? "yes" : "no");
    fprintf(f, "tied embeddings:     %s\n", c->tie_word_embeddings ? "yes" : "no");
    fprintf(f, "parameters:          %lld (%.3f M)\n", (long long)params, (double)params / 1e6);
    fprintf(f, "kv cache per token:  %lld bytes bf16, %lld bytes f32%s\n", (long long)(kv * 2), (long long)(kv * 4),
            hybrid ? " (if every layer were full attention)" : "");
    if (hybrid) print_hybrid(bb, f);
}
