// backbone.c — see backbone.h.
//
// Decoder layer (BLOCKS.md):  h = x + mixer(RMSNorm_in(x));
//                             out = h + down(silu(gate(h')) · up(h')),  h' = RMSNorm_post(h).
// All weights sit in one f32 buffer and all gradients in another, so the
// optimizer and checkpoints see flat arrays; activations for one (B, T) live in
// a single allocation that is kept while the shape and the mixers stay the same.
#include "supernet/backbone.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "kernels/ops.h"

#define BB_NAME_LEN 160

extern const pn_block_type pn_block_attn;  // blocks/attn.c

static void bb_layer_name(char *out, int layer, const char *suffix) {
    snprintf(out, BB_NAME_LEN, "model.layers.%d.%.120s", layer, suffix);
}

// ---------------------------------------------------------------- parameter table

static void param_add(pn_bb_param *out, int *n, const char *name, int ndim, int64_t d0, int64_t d1, float **data,
                      float **grad, int wd) {
    if (out) {
        pn_bb_param *p = &out[*n];
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ndim = ndim;
        p->shape[0] = d0;
        p->shape[1] = d1;
        p->data = data;
        p->grad = grad;
        p->weight_decay = wd;
    }
    (*n)++;
}

static int bb_table(pn_backbone *bb, pn_bb_param *out) {
    int n = 0;
    char name[BB_NAME_LEN];
    const int C = bb->C, I = bb->I;
    param_add(out, &n, "model.embed_tokens.weight", 2, bb->V, C, &bb->embed, &bb->d_embed, 1);
    for (int l = 0; l < bb->n_layers; l++) {
        pn_bb_layer *ly = &bb->layers[l];
        bb_layer_name(name, l, "input_layernorm.weight");
        param_add(out, &n, name, 1, C, 0, &ly->in_norm, &ly->d_in_norm, 0);
        pn_block *m = ly->mixer;
        for (int i = 0; i < m->n_params; i++) {
            char sub[BB_NAME_LEN];
            snprintf(sub, sizeof sub, "self_attn.%s", m->spec[i].name);
            bb_layer_name(name, l, sub);
            if (out) {
                param_add(out, &n, name, m->spec[i].ndim, m->spec[i].shape[0], m->spec[i].shape[1], &m->params[i],
                          &m->grads[i], m->spec[i].weight_decay);
                out[n - 1].shape[2] = m->spec[i].shape[2];
                out[n - 1].shape[3] = m->spec[i].shape[3];
            } else {
                n++;
            }
        }
        bb_layer_name(name, l, "post_attention_layernorm.weight");
        param_add(out, &n, name, 1, C, 0, &ly->post_norm, &ly->d_post_norm, 0);
        bb_layer_name(name, l, "mlp.gate_proj.weight");
        param_add(out, &n, name, 2, I, C, &ly->gate, &ly->d_gate, 1);
        bb_layer_name(name, l, "mlp.up_proj.weight");
        param_add(out, &n, name, 2, I, C, &ly->up, &ly->d_up, 1);
        bb_layer_name(name, l, "mlp.down_proj.weight");
        param_add(out, &n, name, 2, C, I, &ly->down, &ly->d_down, 1);
    }
    param_add(out, &n, "model.norm.weight", 1, C, 0, &bb->final_norm, &bb->d_final_norm, 0);
    if (!bb->tied) param_add(out, &n, "lm_head.weight", 2, bb->V, C, &bb->lm_head, &bb->d_lm_head, 1);
    return n;
}

int pn_backbone_param_count(const pn_backbone *bb) { return bb_table((pn_backbone *)bb, NULL); }

int pn_backbone_param_table(pn_backbone *bb, pn_bb_param *out) { return bb_table(bb, out); }

static int64_t bb_param_numel(const pn_bb_param *p) {
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->shape[d];
    return n;
}

int64_t pn_backbone_numel(const pn_backbone *bb) {
    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    bb_table((pn_backbone *)bb, t);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += bb_param_numel(&t[i]);
    free(t);
    return total;
}

int64_t pn_backbone_kv_per_token(const pn_backbone *bb) {
    return (int64_t)bb->n_layers * 2 * bb->cfg.num_key_value_heads * bb->cfg.head_dim;
}

// ---------------------------------------------------------------- loading

pn_backbone *pn_backbone_load(const char *dir) {
    pn_backbone *bb = pn_calloc(1, sizeof(*bb));
    snprintf(bb->dir, sizeof bb->dir, "%s", dir);
    pn_hf_config_load(&bb->cfg, dir);
    const pn_hf_config *c = &bb->cfg;
    bb->n_layers = c->num_hidden_layers;
    bb->C = c->hidden_size;
    bb->I = c->intermediate_size;
    bb->V = c->vocab_size;
    bb->tied = c->tie_word_embeddings;
    bb->layers = pn_calloc((size_t)bb->n_layers, sizeof(pn_bb_layer));

    pn_block_cfg acfg;
    memset(&acfg, 0, sizeof acfg);
    acfg.C = c->hidden_size;
    acfg.H = c->num_attention_heads;
    acfg.H_kv = c->num_key_value_heads;
    acfg.K = c->head_dim;
    acfg.qkv_bias = c->qkv_bias;
    acfg.o_bias = c->o_bias;
    acfg.qk_norm = c->qk_norm;
    acfg.rope_theta = (float)c->rope_theta;
    acfg.norm_eps = (float)c->rms_norm_eps;
    for (int l = 0; l < bb->n_layers; l++) {
        acfg.layer_idx = l;
        pn_block_setup(&bb->layers[l].attn, &pn_block_attn, &acfg);
        bb->layers[l].mixer = &bb->layers[l].attn;
    }

    // Carve the weight buffer in table order.
    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    bb_table(bb, t);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += bb_param_numel(&t[i]);
    bb->weights = pn_malloc((size_t)total * sizeof(float));
    pn_safetensors *st = pn_st_open(dir);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        *t[i].data = bb->weights + off;
        if (!pn_st_find(st, t[i].name))
            pn_die_input(dir, "tensor '%s' is missing from the safetensors weights (config.json: model_type %s)",
                         t[i].name, c->model_type);
        pn_st_read_f32(st, t[i].name, *t[i].data, t[i].ndim, t[i].shape);
        off += bb_param_numel(&t[i]);
    }
    if (bb->tied) bb->lm_head = bb->embed;
    pn_st_close(st);
    free(t);
    pn_debug("backbone: %s, %d layers, %lld parameters", dir, bb->n_layers, (long long)total);
    return bb;
}

static void bb_free_acts(pn_backbone *bb) {
    free(bb->buf);
    free(bb->ids);
    free(bb->resid);
    free(bb->dresid);
    free(bb->la);
    bb->buf = NULL;
    bb->ids = NULL;
    bb->resid = bb->dresid = NULL;
    bb->la = NULL;
    bb->buf_floats = 0;
    bb->B = bb->T = 0;
}

void pn_backbone_free(pn_backbone *bb) {
    if (!bb) return;
    bb_free_acts(bb);
    free(bb->weights);
    free(bb->grads);
    free(bb->layers);
    free(bb);
}

void pn_backbone_alloc_grads(pn_backbone *bb) {
    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    bb_table(bb, t);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += bb_param_numel(&t[i]);
    free(bb->grads);
    bb->grads = pn_calloc((size_t)total, sizeof(float));
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        *t[i].grad = bb->grads + off;
        off += bb_param_numel(&t[i]);
    }
    if (bb->tied) bb->d_lm_head = bb->d_embed;
    free(t);
}

void pn_backbone_zero_grads(pn_backbone *bb) {
    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    bb_table(bb, t);
    for (int i = 0; i < n; i++)
        if (*t[i].grad) memset(*t[i].grad, 0, (size_t)bb_param_numel(&t[i]) * sizeof(float));
    free(t);
}

// ---------------------------------------------------------------- activations

// Next aligned piece of the activation buffer (NULL while only counting).
static float *bb_take(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += (n + 15) & ~(size_t)15;
    return p;
}

// Lays out every buffer for (B, T) at base (or only counts when base is NULL).
static size_t bb_layout(pn_backbone *bb, int B, int T, float *base) {
    const size_t N = (size_t)B * T, C = bb->C, I = bb->I, V = bb->V;
    const int L = bb->n_layers;
    size_t off = 0, scratch = 0;
    for (int l = 0; l < L; l++) {
        pn_block *m = bb->layers[l].mixer;
        pn_bb_layer_act a;
        size_t mf = m->type->act_floats(&m->cfg, B, T);
        scratch = PN_MAX(scratch, m->type->scratch_floats(&m->cfg, B, T));
        a.mixer_act_floats = mf;
        a.xn1 = bb_take(base, &off, N * C);
        a.rstd1 = bb_take(base, &off, N);
        a.mixer_act = bb_take(base, &off, mf);
        a.h = bb_take(base, &off, N * C);
        a.xn2 = bb_take(base, &off, N * C);
        a.rstd2 = bb_take(base, &off, N);
        a.gate = bb_take(base, &off, N * I);
        a.up = bb_take(base, &off, N * I);
        a.mid = bb_take(base, &off, N * I);
        if (base) bb->la[l] = a;
    }
    float *p;
    for (int l = 0; l <= L; l++) {
        p = bb_take(base, &off, N * C);
        if (base) bb->resid[l] = p;
        p = bb_take(base, &off, N * C);
        if (base) bb->dresid[l] = p;
    }
    float *final = bb_take(base, &off, N * C), *rstd_f = bb_take(base, &off, N);
    float *dfinal = bb_take(base, &off, N * C);
    float *logits = bb_take(base, &off, bb->no_logits ? 0 : N * V);
    float *dlogits = bb_take(base, &off, bb->no_logits ? 0 : N * V);
    float *tc0 = bb_take(base, &off, N * C), *tc1 = bb_take(base, &off, N * C);
    float *ti0 = bb_take(base, &off, N * I), *ti1 = bb_take(base, &off, N * I), *ti2 = bb_take(base, &off, N * I);
    float *vf = bb_take(base, &off, N * C), *dvf = bb_take(base, &off, N * C);
    float *scr = bb_take(base, &off, scratch);
    if (base) {
        bb->final = final;
        bb->rstd_f = rstd_f;
        bb->dfinal = dfinal;
        bb->logits = logits;
        bb->dlogits = dlogits;
        bb->tmp_c[0] = tc0;
        bb->tmp_c[1] = tc1;
        bb->tmp_i[0] = ti0;
        bb->tmp_i[1] = ti1;
        bb->tmp_i[2] = ti2;
        bb->v_first = vf;
        bb->dv_first = dvf;
        bb->scratch = scr;
        bb->scratch_floats = scratch;
    }
    return off;
}

static void bb_reserve(pn_backbone *bb, int B, int T) {
    if (!bb->resid) {
        bb->resid = pn_calloc((size_t)bb->n_layers + 1, sizeof(float *));
        bb->dresid = pn_calloc((size_t)bb->n_layers + 1, sizeof(float *));
        bb->la = pn_calloc((size_t)bb->n_layers, sizeof(pn_bb_layer_act));
    }
    size_t need = bb_layout(bb, B, T, NULL);
    if (need > bb->buf_floats) {
        free(bb->buf);
        bb->buf = pn_malloc(need * sizeof(float));
        bb->buf_floats = need;
    }
    bb_layout(bb, B, T, bb->buf);
    if (B * T > bb->B * bb->T || !bb->ids) {
        free(bb->ids);
        bb->ids = pn_malloc((size_t)B * T * sizeof(int64_t));
    }
    bb->B = B;
    bb->T = T;
}

// ---------------------------------------------------------------- forward / loss / backward

void pn_backbone_forward(pn_backbone *bb, const int64_t *ids, int B, int T) {
    PN_ASSERT(B > 0 && T > 0);
    bb_reserve(bb, B, T);
    const int64_t N = (int64_t)B * T;
    const int C = bb->C, I = bb->I;
    const float eps = (float)bb->cfg.rms_norm_eps;
    for (int64_t n = 0; n < N; n++) PN_ASSERT(ids[n] >= 0 && ids[n] < bb->V);
    memcpy(bb->ids, ids, (size_t)N * sizeof(int64_t));
    // rwkv7's value residual: the first rwkv7 layer finds v_first NULL and points it
    // at its own v (in its activations); backward must see that same pointer.
    pn_block_ctx ctx = {NULL, bb->dv_first};

    pn_embedding_fwd(bb->resid[0], ids, bb->embed, N, C);
    for (int l = 0; l < bb->n_layers; l++) {
        pn_bb_layer *ly = &bb->layers[l];
        pn_bb_layer_act *a = &bb->la[l];
        const float *x = bb->resid[l];
        pn_rmsnorm_fwd(a->xn1, a->rstd1, x, ly->in_norm, N, C, eps);
        ly->mixer->type->forward(ly->mixer, a->h, a->xn1, B, T, a->mixer_act, bb->scratch, &ctx);
        pn_add_inplace(a->h, x, N * C);
        pn_rmsnorm_fwd(a->xn2, a->rstd2, a->h, ly->post_norm, N, C, eps);
        pn_linear_fwd(a->gate, a->xn2, ly->gate, NULL, N, C, I);
        pn_linear_fwd(a->up, a->xn2, ly->up, NULL, N, C, I);
        pn_swiglu_fwd(a->mid, a->gate, a->up, N * I);
        float *out = bb->resid[l + 1];
        pn_linear_fwd(out, a->mid, ly->down, NULL, N, I, C);
        pn_add_inplace(out, a->h, N * C);
    }
    bb->v_first_fwd = ctx.v_first;
    pn_rmsnorm_fwd(bb->final, bb->rstd_f, bb->resid[bb->n_layers], bb->final_norm, N, C, eps);
    if (!bb->no_logits) pn_linear_fwd(bb->logits, bb->final, bb->lm_head, NULL, N, C, bb->V);
}

const float *pn_backbone_hidden(const pn_backbone *bb, int i) {
    PN_ASSERT(i >= 0 && i <= bb->n_layers && bb->resid);
    return i == bb->n_layers ? bb->final : bb->resid[i];
}

const float *pn_backbone_dhidden(const pn_backbone *bb, int i) {
    PN_ASSERT(i >= 0 && i <= bb->n_layers && bb->dresid);
    return i == bb->n_layers ? bb->dfinal : bb->dresid[i];
}

double pn_backbone_loss(pn_backbone *bb) {
    PN_ASSERT(bb->B > 0 && !bb->no_logits);
    const int B = bb->B, T = bb->T;
    int64_t *tgt = pn_malloc((size_t)B * T * sizeof(int64_t));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tgt[(int64_t)b * T + t] = t + 1 < T ? bb->ids[(int64_t)b * T + t + 1] : -1;
    double loss = pn_cross_entropy(bb->dlogits, bb->logits, tgt, (int64_t)B * T, bb->V, 1.0f);
    free(tgt);
    return loss;
}

void pn_backbone_backward(pn_backbone *bb, const float *dlogits, const float *dfinal) {
    PN_ASSERT(bb->B > 0);
    const int B = bb->B, T = bb->T;
    const int64_t N = (int64_t)B * T;
    const int C = bb->C, I = bb->I, L = bb->n_layers;
    pn_block_ctx ctx = {bb->v_first_fwd, bb->dv_first};
    memset(bb->dv_first, 0, (size_t)N * C * sizeof(float));

    // d hidden(L) = dfinal + dlogits · lm_head
    if (dfinal)
        memcpy(bb->dfinal, dfinal, (size_t)N * C * sizeof(float));
    else
        memset(bb->dfinal, 0, (size_t)N * C * sizeof(float));
    if (dlogits) {
        PN_ASSERT(!bb->no_logits);
        pn_linear_bwd(bb->dfinal, bb->tied ? bb->d_embed : bb->d_lm_head, NULL, dlogits, bb->final, bb->lm_head, N,
                      C, bb->V);
    }
    memset(bb->dresid[L], 0, (size_t)N * C * sizeof(float));
    pn_rmsnorm_bwd(bb->dresid[L], bb->d_final_norm, bb->dfinal, bb->resid[L], bb->final_norm, bb->rstd_f, N, C);

    float *dh = bb->tmp_c[0], *dxn = bb->tmp_c[1];
    float *dmid = bb->tmp_i[0], *dgate = bb->tmp_i[1], *dup = bb->tmp_i[2];
    for (int l = L - 1; l >= 0; l--) {
        pn_bb_layer *ly = &bb->layers[l];
        pn_bb_layer_act *a = &bb->la[l];
        const float *dout = bb->dresid[l + 1];
        // MLP branch; the residual passes dout straight to h.
        memcpy(dh, dout, (size_t)N * C * sizeof(float));
        memset(dmid, 0, (size_t)N * I * sizeof(float));
        pn_linear_bwd(dmid, ly->d_down, NULL, dout, a->mid, ly->down, N, I, C);
        memset(dgate, 0, (size_t)N * I * sizeof(float));
        memset(dup, 0, (size_t)N * I * sizeof(float));
        pn_swiglu_bwd(dgate, dup, dmid, a->gate, a->up, N * I);
        memset(dxn, 0, (size_t)N * C * sizeof(float));
        pn_linear_bwd(dxn, ly->d_gate, NULL, dgate, a->xn2, ly->gate, N, C, I);
        pn_linear_bwd(dxn, ly->d_up, NULL, dup, a->xn2, ly->up, N, C, I);
        pn_rmsnorm_bwd(dh, ly->d_post_norm, dxn, a->h, ly->post_norm, a->rstd2, N, C);
        // Mixer branch; the residual passes dh straight to the layer input.
        float *dx = bb->dresid[l];
        memcpy(dx, dh, (size_t)N * C * sizeof(float));
        memset(dxn, 0, (size_t)N * C * sizeof(float));
        ly->mixer->type->backward(ly->mixer, dxn, dh, a->xn1, B, T, a->mixer_act, bb->scratch, &ctx);
        pn_rmsnorm_bwd(dx, ly->d_in_norm, dxn, bb->resid[l], ly->in_norm, a->rstd1, N, C);
    }
    pn_embedding_bwd(bb->d_embed, bb->dresid[0], bb->ids, N, C);
}
