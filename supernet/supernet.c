// supernet.c — see supernet.h.
//
// The backbone already runs whatever block each layer's `mixer` points at and
// skips every NULL gradient, so the supernet is mostly bookkeeping: build the
// candidate blocks, keep the linear ones' weights in two flat buffers, swap
// mixers per subnet, cache the teacher, and connect the distillation loss to
// pn_backbone_backward (upstream gradient on hidden(L) and/or the logits).
#include "supernet/supernet.h"
#include "core/log.h"
#include "core/safetensors.h"

// ---------------------------------------------------------------- rwkv7 first layer

// The backbone builds a fresh pn_block_ctx {bb->v_first, bb->dv_first} for forward
// and again for backward. rwkv7's first layer points ctx->v_first at its own
// activations during forward, but the later layers' backward reads ctx->v_first
// from the backward context, i.e. the backbone's v_first buffer. So the first
// layer's forward here also copies v_first into that buffer and points the
// context back at it: forward and backward then read the same values.
static void rwkv_first_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                               pn_block_ctx *ctx) {
    const pn_block_type *real = pn_block_type_find("rwkv7");
    float *keep = ctx ? ctx->v_first : NULL;
    real->forward(b, y, x, B, T, act, scratch, ctx);
    if (keep && ctx->v_first && ctx->v_first != keep) {
        memcpy(keep, ctx->v_first, (size_t)B * T * b->cfg.C * sizeof(float));
        ctx->v_first = keep;
    }
}

// ---------------------------------------------------------------- create / free

static void check_config(const pn_supernet_config *c, int n_layers, const char *model) {
    const char *w = "supernet config";
    if (c->block < 0 || c->block > PN_LINEAR_RWKV7) pn_die_input(w, "block index %d is not a known linear block", c->block);
    if (c->k_max < 0 || c->k_max > n_layers)
        pn_die_input(w, "k_max = %d, expected 0..%d (the number of layers of the model %s)", c->k_max, n_layers, model);
    if (c->sampling < PN_SAMPLING_UNIFORM_K || c->sampling > PN_SAMPLING_FIXED)
        pn_die_input(w, "sampling index %d is not uniform_k, bernoulli or fixed", c->sampling);
    // fixed placement: layers in range, each named once across both lists
    uint8_t seen[PN_SUPERNET_MAX_LAYERS] = {0};
    const pn_cfg_ints *lists[2] = {&c->full_layers, &c->swa_layers};
    const char *keys[2] = {"full_layers", "swa_layers"};
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < lists[l]->n; j++) {
            int v = lists[l]->v[j];
            if (v < 0 || v >= n_layers || v >= PN_SUPERNET_MAX_LAYERS)
                pn_die_input(w, "%s[%d] = %d, expected a layer index 0..%d (model %s)", keys[l], j, v, n_layers - 1, model);
            if (seen[v]) pn_die_input(w, "%s[%d] = %d: layer %d is already listed", keys[l], j, v, v);
            seen[v] = 1;
        }
    if (c->sampling != PN_SAMPLING_FIXED && (c->full_layers.n || c->swa_layers.n))
        pn_die_input(w, "full_layers / swa_layers are given but sampling is %s (expected sampling: fixed)",
                     pn_sampling_names[c->sampling]);
    if (!(c->p_full >= 0.0 && c->p_full <= 1.0)) pn_die_input(w, "p_full = %g, expected a probability in [0, 1]", c->p_full);
    if (c->swa_window <= 0) pn_die_input(w, "swa_window = %d, expected a positive window", c->swa_window);
    if (c->distill < PN_DISTILL_MSE || c->distill > PN_DISTILL_BOTH)
        pn_die_input(w, "distill index %d is not mse, kl or both", c->distill);
    if (pn_distill_needs_logits(c->distill) && !(c->temperature > 0.0))
        pn_die_input(w, "temperature = %g, expected > 0 for the KL loss", c->temperature);
    if (c->distill == PN_DISTILL_BOTH && !(c->mse_weight >= 0.0 && c->kl_weight >= 0.0))
        pn_die_input(w, "mse_weight = %g, kl_weight = %g, expected both >= 0", c->mse_weight, c->kl_weight);
}

// Copies q/k/v/o projection weights of the pretrained attention into same-named,
// same-shaped parameters of the linear block; returns how many were copied.
static int copy_attn_weights(pn_block *lin, const pn_block *attn) {
    static const char *const names[] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"};
    int copied = 0;
    for (size_t n = 0; n < PN_ARRAY_LEN(names); n++) {
        int a = pn_block_param_index(attn, names[n]), l = pn_block_param_index(lin, names[n]);
        if (a < 0 || l < 0) continue;
        const pn_param_spec *sa = &attn->spec[a], *sl = &lin->spec[l];
        int same = sa->ndim == sl->ndim;
        for (int d = 0; same && d < sa->ndim; d++) same = sa->shape[d] == sl->shape[d];
        if (!same) continue;
        memcpy(lin->params[l], attn->params[a], (size_t)pn_param_numel(sa) * sizeof(float));
        copied++;
    }
    return copied;
}

pn_supernet *pn_supernet_create_ex(pn_backbone *bb, const pn_supernet_config *cfg, const pn_block_cfg *linear,
                                   uint64_t seed) {
    PN_ASSERT(bb && cfg);
    const int L = bb->n_layers;
    check_config(cfg, L, bb->dir);
    if (L > PN_SUPERNET_MAX_LAYERS)
        pn_die_input(bb->dir, "the model has %d layers; the supernet supports at most %d", L, PN_SUPERNET_MAX_LAYERS);
    const char *lin_name = pn_linear_block_names[cfg->block];
    const pn_block_type *lt = pn_block_type_find(lin_name);
    const pn_block_type *swa_t = pn_block_type_find("swa");
    if (!lt || !swa_t) pn_die_internal(__FILE__, __LINE__, "block type '%s' is not linked into this build", lt ? "swa" : lin_name);

    pn_supernet *sn = pn_calloc(1, sizeof(*sn));
    sn->bb = bb;
    sn->cfg = *cfg;
    sn->seed = seed;
    sn->n_layers = L;
    sn->lin_type = lt;
    sn->grad_scale = 1.0f;
    sn->swa = pn_calloc((size_t)L, sizeof(pn_block));
    sn->lin = pn_calloc((size_t)L, sizeof(pn_block));
    const int is_rwkv = strcmp(lt->name, "rwkv7") == 0;
    if (is_rwkv) {
        sn->lin_first = pn_calloc((size_t)L, sizeof(pn_block));
        sn->rwkv_first_type = *lt;
        sn->rwkv_first_type.forward = rwkv_first_forward;
    }

    // Frozen backbone: no gradient slot anywhere (the table covers the mixers too).
    for (int i = 0; i < L; i++) bb->layers[i].mixer = &bb->layers[i].attn;
    int np = pn_backbone_param_count(bb);
    pn_bb_param *bt = pn_malloc((size_t)np * sizeof(*bt));
    pn_backbone_param_table(bb, bt);
    for (int i = 0; i < np; i++) *bt[i].grad = NULL;
    free(bt);

    // Blocks and the size of the flat buffers.
    int64_t total = 0;
    int n_table = 0;
    for (int i = 0; i < L; i++) {
        const pn_block *attn = &bb->layers[i].attn;
        pn_block_cfg sc = attn->cfg;
        sc.window = cfg->swa_window;
        pn_block_setup(&sn->swa[i], swa_t, &sc);
        PN_ASSERT(sn->swa[i].n_params == attn->n_params);
        for (int p = 0; p < attn->n_params; p++) {
            PN_ASSERT(strcmp(sn->swa[i].spec[p].name, attn->spec[p].name) == 0);
            sn->swa[i].params[p] = attn->params[p];  // shared, frozen: grads stay NULL
        }
        pn_block_cfg lc;
        if (linear) {
            lc = *linear;
        } else {
            // dimensions from the config (0 keeps the block's default)
            memset(&lc, 0, sizeof lc);
            lc.H = cfg->heads;
            lc.K = cfg->key_dim;
            lc.V = cfg->value_dim;
            lc.conv_size = cfg->conv_size;
        }
        lc.C = bb->C;
        lc.layer_idx = i;
        lc.first_rwkv = 0;
        pn_block_setup(&sn->lin[i], lt, &lc);
        total += pn_block_param_count(&sn->lin[i]);
        n_table += sn->lin[i].n_params;
    }
    sn->n_floats = total;
    sn->params = pn_calloc((size_t)PN_MAX(total, 1), sizeof(float));
    sn->grads = pn_calloc((size_t)PN_MAX(total, 1), sizeof(float));
    sn->table = pn_calloc((size_t)PN_MAX(n_table, 1), sizeof(pn_sn_param));
    sn->n_table = n_table;

    int64_t off = 0;
    int k = 0, copied = 0;
    for (int i = 0; i < L; i++) {
        pn_block *b = &sn->lin[i];
        for (int p = 0; p < b->n_params; p++) {
            const pn_param_spec *ps = &b->spec[p];
            pn_sn_param *e = &sn->table[k++];
            snprintf(e->name, sizeof e->name, "model.layers.%d.linear_attn.%.96s", i, ps->name);
            e->layer = i;
            e->ndim = ps->ndim;
            memcpy(e->shape, ps->shape, sizeof e->shape);
            e->numel = pn_param_numel(ps);
            e->offset = off;
            e->data = b->params[p] = sn->params + off;
            e->grad = b->grads[p] = sn->grads + off;
            e->weight_decay = ps->weight_decay;
            off += e->numel;
        }
        pn_block_init_params(b, seed);
        if (cfg->linear_init == PN_LINEAR_INIT_COPY_ATTN) copied += copy_attn_weights(b, &bb->layers[i].attn);
        if (is_rwkv) {
            // The first-layer variant: a subset of the same parameters, matched by name.
            pn_block_cfg fc = b->cfg;
            fc.first_rwkv = 1;
            pn_block *f = &sn->lin_first[i];
            pn_block_setup(f, &sn->rwkv_first_type, &fc);
            for (int p = 0; p < f->n_params; p++) {
                int j = pn_block_param_index(b, f->spec[p].name);
                PN_ASSERT(j >= 0 && pn_param_numel(&f->spec[p]) == pn_param_numel(&b->spec[j]));
                f->params[p] = b->params[j];
                f->grads[p] = b->grads[j];
            }
        }
    }
    PN_ASSERT(off == total && k == n_table);
    if (cfg->linear_init == PN_LINEAR_INIT_COPY_ATTN)
        pn_info("supernet: copy_attn copied %d q/k/v/o projection(s) of matching shape over %d layers", copied, L);
    pn_debug("supernet: %d layers, linear path %s, %lld trainable parameters", L, lt->name, (long long)total);
    return sn;
}

void pn_supernet_load_linear(pn_supernet *sn, const char *path) {
    pn_safetensors *st = pn_st_open(path);
    const char *block = pn_linear_block_names[sn->cfg.block];
    const char *meta = pn_st_meta_get(st, "linear_block");
    if (meta && strcmp(meta, block) != 0) pn_die_input(path, "holds linear block '%s', expected '%s'", meta, block);
    if (st->n_entries != sn->n_table)
        pn_die_input(path, "holds %d tensors, expected the %d linear-path parameters of block '%s'", st->n_entries,
                     sn->n_table, block);
    for (int i = 0; i < sn->n_table; i++) {
        const pn_sn_param *e = &sn->table[i];
        pn_st_read_f32(st, e->name, e->data, e->ndim, e->shape);
    }
    pn_st_close(st);
}

pn_supernet *pn_supernet_create(pn_backbone *bb, const pn_supernet_config *cfg, uint64_t seed) {
    return pn_supernet_create_ex(bb, cfg, NULL, seed);
}

void pn_supernet_free(pn_supernet *sn) {
    if (!sn) return;
    for (int i = 0; i < sn->n_layers; i++) sn->bb->layers[i].mixer = &sn->bb->layers[i].attn;
    free(sn->swa);
    free(sn->lin);
    free(sn->lin_first);
    free(sn->params);
    free(sn->grads);
    free(sn->table);
    free(sn->t_ids);
    free(sn->t_hidden);
    free(sn->t_logits);
    free(sn->d_hidden);
    free(sn->d_logits);
    free(sn);
}

int64_t pn_supernet_param_count(const pn_supernet *sn) { return sn->n_floats; }

void pn_supernet_zero_grads(pn_supernet *sn) { memset(sn->grads, 0, (size_t)sn->n_floats * sizeof(float)); }

// ---------------------------------------------------------------- subnets

void pn_subnet_fill(pn_subnet *s, int n_layers, pn_path path) {
    PN_ASSERT(n_layers >= 0 && n_layers <= PN_SUPERNET_MAX_LAYERS);
    memset(s, 0, sizeof(*s));
    s->n_layers = n_layers;
    for (int i = 0; i < n_layers; i++) s->path[i] = (uint8_t)path;
}

void pn_supernet_sample(const pn_supernet *sn, pn_rng *rng, pn_subnet *out) {
    const int L = sn->n_layers;
    pn_subnet_fill(out, L, PN_PATH_LINEAR);
    if (sn->cfg.sampling == PN_SAMPLING_FIXED) {
        for (int j = 0; j < sn->cfg.full_layers.n; j++) out->path[sn->cfg.full_layers.v[j]] = PN_PATH_ATTN;
        for (int j = 0; j < sn->cfg.swa_layers.n; j++) out->path[sn->cfg.swa_layers.v[j]] = PN_PATH_SWA;
        return;
    }
    if (sn->cfg.sampling == PN_SAMPLING_BERNOULLI) {
        for (int i = 0; i < L; i++)
            if ((double)pn_rng_uniform(rng) < sn->cfg.p_full) out->path[i] = PN_PATH_ATTN;
        return;
    }
    const int k = (int)pn_rng_below(rng, (uint64_t)sn->cfg.k_max + 1);
    // Partial Fisher–Yates: the first k entries of a random permutation.
    int order[PN_SUPERNET_MAX_LAYERS];
    for (int i = 0; i < L; i++) order[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)pn_rng_below(rng, (uint64_t)(L - i));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
        out->path[order[i]] = PN_PATH_ATTN;
    }
}

void pn_supernet_apply(pn_supernet *sn, const pn_subnet *s) {
    PN_ASSERT(s->n_layers == sn->n_layers);
    int first_linear = 1;
    for (int i = 0; i < sn->n_layers; i++) {
        pn_bb_layer *ly = &sn->bb->layers[i];
        switch (s->path[i]) {
        case PN_PATH_ATTN: ly->mixer = &ly->attn; break;
        case PN_PATH_SWA: ly->mixer = &sn->swa[i]; break;
        case PN_PATH_LINEAR:
            ly->mixer = sn->lin_first && first_linear ? &sn->lin_first[i] : &sn->lin[i];
            first_linear = 0;
            break;
        default: pn_die_internal(__FILE__, __LINE__, "subnet layer %d: path %d is not 0, 1 or 2", i, s->path[i]);
        }
    }
}

static int subnet_has_linear(const pn_subnet *s) {
    for (int i = 0; i < s->n_layers; i++)
        if (s->path[i] == PN_PATH_LINEAR) return 1;
    return 0;
}

// ---------------------------------------------------------------- teacher, loss

static float *grow(float *p, size_t *cap, size_t n) {
    if (n <= *cap) return p;
    free(p);
    *cap = n;
    return pn_malloc(n * sizeof(float));
}

void pn_supernet_clear_teacher(pn_supernet *sn) { sn->t_B = sn->t_T = 0; }

// Runs the teacher (every layer on its attention) unless the cache already holds
// these ids with what the loss needs.
static void teacher_run(pn_supernet *sn, const int64_t *ids, int B, int T, int need_logits) {
    const size_t N = (size_t)B * T, C = sn->bb->C, V = sn->bb->V;
    if (sn->t_B == B && sn->t_T == T && (sn->t_has_logits || !need_logits) &&
        memcmp(sn->t_ids, ids, N * sizeof(int64_t)) == 0)
        return;
    pn_backbone *bb = sn->bb;
    for (int i = 0; i < sn->n_layers; i++) bb->layers[i].mixer = &bb->layers[i].attn;
    bb->no_logits = !need_logits;
    pn_backbone_forward(bb, ids, B, T);
    if (N > sn->t_cap_ids) {
        free(sn->t_ids);
        sn->t_ids = pn_malloc(N * sizeof(int64_t));
        sn->t_cap_ids = N;
    }
    memcpy(sn->t_ids, ids, N * sizeof(int64_t));
    sn->t_hidden = grow(sn->t_hidden, &sn->t_cap_hidden, N * C);
    memcpy(sn->t_hidden, bb->final, N * C * sizeof(float));
    if (need_logits) {
        sn->t_logits = grow(sn->t_logits, &sn->t_cap_logits, N * V);
        memcpy(sn->t_logits, bb->logits, N * V * sizeof(float));
    }
    sn->t_has_logits = need_logits;
    sn->t_B = B;
    sn->t_T = T;
}

// Teacher, then the student forward and the loss; gradients on the student's
// outputs into d_hidden / d_logits when want_grad.
static double student_loss(pn_supernet *sn, const int64_t *ids, int B, int T, const pn_subnet *s, int want_grad) {
    PN_ASSERT(B > 0 && T > 0);
    pn_backbone *bb = sn->bb;
    const int need_logits = pn_distill_needs_logits(sn->cfg.distill);
    const size_t N = (size_t)B * T, C = bb->C, V = bb->V;
    teacher_run(sn, ids, B, T, need_logits);
    pn_supernet_apply(sn, s);
    bb->no_logits = !need_logits;
    pn_backbone_forward(bb, ids, B, T);
    float *dh = NULL, *dl = NULL;
    if (want_grad) {
        if (pn_distill_needs_hidden(sn->cfg.distill)) dh = sn->d_hidden = grow(sn->d_hidden, &sn->cap_dh, N * C);
        if (need_logits) dl = sn->d_logits = grow(sn->d_logits, &sn->cap_dl, N * V);
    }
    sn->last = pn_distill_loss(&sn->cfg, bb->final, sn->t_hidden, need_logits ? bb->logits : NULL,
                               need_logits ? sn->t_logits : NULL, (int64_t)N, (int)C, (int)V, dh, dl,
                               sn->grad_scale);
    return sn->last.total;
}

double pn_supernet_distill_step(pn_supernet *sn, const int64_t *ids, int B, int T, const pn_subnet *s) {
    double loss = student_loss(sn, ids, B, T, s, 1);
    // Without a linear layer no trainable parameter is on the path: the gradient is 0.
    if (subnet_has_linear(s)) {
        const int mse = pn_distill_needs_hidden(sn->cfg.distill), kl = pn_distill_needs_logits(sn->cfg.distill);
        pn_backbone_backward(sn->bb, kl ? sn->d_logits : NULL, mse ? sn->d_hidden : NULL);
    }
    return loss;
}

double pn_supernet_eval_loss(pn_supernet *sn, const int64_t *ids, int B, int T, const pn_subnet *s) {
    return student_loss(sn, ids, B, T, s, 0);
}

const float *pn_supernet_logits(pn_supernet *sn, const int64_t *ids, int B, int T, const pn_subnet *s) {
    PN_ASSERT(B > 0 && T > 0);
    pn_supernet_apply(sn, s);
    sn->bb->no_logits = 0;
    pn_backbone_forward(sn->bb, ids, B, T);
    return sn->bb->logits;
}
