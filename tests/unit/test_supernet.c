// test_supernet.c — the PostNAS supernet on a tiny random Qwen2-style model
// (4 layers, width 64, 4 query / 2 KV heads, vocab 64) written to a temp dir.
//
// Gradients are checked against central differences of the distillation loss
// (float64-accumulated loss, fp32 forward) per parameter tensor, along
// u = g/‖g‖ + r/‖r‖ (r random): the gradient-aligned part makes the directional
// derivative large enough to measure in fp32, the random part catches
// components the gradient misses. Zero-initialised parameters are perturbed
// first so every path and every tensor carries signal.
#include "core/rng.h"
#include "supernet/model_init.h"
#include "supernet/supernet.h"
#include "test_util.h"

enum { TB = 2, TT = 8 };
static char g_dir[600];
static int64_t g_ids[TB * TT], g_ids2[TB * TT];

static void make_model(const char *root) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    snprintf(c.architecture, sizeof c.architecture, "Qwen2ForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = 64;
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = 1;
    c.qkv_bias = 1;
    snprintf(g_dir, sizeof g_dir, "%s/tiny", root);
    pn_model_init_write(&c, g_dir, 7, PN_F32);
}

static pn_supernet_config base_cfg(int block, int distill) {
    pn_supernet_config c;
    memset(&c, 0, sizeof c);
    c.block = block;
    c.k_max = 2;
    c.sampling = PN_SAMPLING_UNIFORM_K;
    c.p_full = 0.25;
    c.swa_window = 3;  // < T, so the SWA path differs from full attention
    c.distill = distill;
    c.mse_weight = 1.0;
    c.kl_weight = 0.5;
    c.temperature = 2.0;
    c.linear_init = PN_LINEAR_INIT_BLOCK;
    return c;
}

static pn_subnet mixed_subnet(void) {
    pn_subnet s;
    pn_subnet_fill(&s, 4, PN_PATH_ATTN);
    s.path[0] = PN_PATH_LINEAR;
    s.path[1] = PN_PATH_SWA;
    s.path[2] = PN_PATH_LINEAR;
    s.path[3] = PN_PATH_ATTN;
    return s;
}

static double vnorm(const double *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    return sqrt(s);
}

// FD step along u (‖u‖ ≈ √2) and the resolution floor. fp32 rounding makes the
// loss jitter by ~5e-8 of its value, i.e. ~1e-7·loss/h on the extrapolated
// difference quotient. Tensors with a directional derivative below
// 10·FD_FLOOR·loss (weakly coupled gates and norms, smooth at that scale) use a
// 10× larger step; below FD_FLOOR·loss even that would compare against noise of
// ~1 %, so those are covered only by the all-parameter direction (the output
// counts them).
#define FD_STEP 3e-3
#define FD_FLOOR 1e-3

typedef struct {
    pn_supernet *sn;
    const pn_sn_param *p;
    const float *keep;
    const double *u;
    const pn_subnet *s;
} fd_ctx;

static double loss_along(const fd_ctx *c, double h) {
    for (int64_t i = 0; i < c->p->numel; i++) c->p->data[i] = (float)((double)c->keep[i] + h * c->u[i]);
    return pn_supernet_eval_loss(c->sn, g_ids, TB, TT, c->s);
}

// Central differences at steps h and h/2 combined by Richardson extrapolation
// (error O(h⁴)): the loss is strongly curved along some tensors (rwkv7's
// projections feed an L2 normalisation), so a single step would be biased.
static double fd_richardson(const fd_ctx *c, double h) {
    double f1 = (loss_along(c, h) - loss_along(c, -h)) / (2 * h);
    double f2 = (loss_along(c, h / 2) - loss_along(c, -h / 2)) / h;
    return (4 * f2 - f1) / 3;
}

// (a) FD check of every linear-path tensor for one block type and loss mode.
static void test_fd(int block, int distill, int per_tensor) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    pn_supernet_config cfg = base_cfg(block, distill);
    pn_supernet *sn = pn_supernet_create(bb, &cfg, 1234);
    // Perturb every parameter (zero-initialised ones included).
    for (int64_t i = 0; i < sn->n_floats; i++) sn->params[i] += 0.01f * pn_normal_at(99, 3, (uint64_t)i);
    pn_subnet s = mixed_subnet();
    pn_supernet_zero_grads(sn);
    double loss = pn_supernet_distill_step(sn, g_ids, TB, TT, &s);
    double ev = pn_supernet_eval_loss(sn, g_ids, TB, TT, &s);
    CHECK(ev == loss, "%s/%s: eval_loss %.17g == step loss %.17g", sn->lin_type->name, pn_distill_names[distill], ev,
          loss);
    CHECK(loss > 0 && isfinite(loss), "loss %g positive", loss);

    double worst = 0;
    int n_checked = 0, n_zero_ok = 0, n_zero = 0, n_small = 0;
    for (int t = 0; per_tensor && t < sn->n_table; t++) {
        const pn_sn_param *p = &sn->table[t];
        double *g = pn_malloc((size_t)p->numel * sizeof(double)), *u = pn_malloc((size_t)p->numel * sizeof(double));
        double *r = pn_malloc((size_t)p->numel * sizeof(double));
        for (int64_t i = 0; i < p->numel; i++) {
            g[i] = p->grad[i];
            r[i] = pn_normal_at(17, (uint64_t)t, (uint64_t)i);
        }
        double gn = vnorm(g, p->numel), rn = vnorm(r, p->numel);
        for (int64_t i = 0; i < p->numel; i++) u[i] = (gn > 0 ? g[i] / gn : 0) + r[i] / rn;
        double an = 0;
        for (int64_t i = 0; i < p->numel; i++) an += g[i] * u[i];
        float *keep = pn_malloc((size_t)p->numel * sizeof(float));
        memcpy(keep, p->data, (size_t)p->numel * sizeof(float));
        fd_ctx fc = {sn, p, keep, u, &s};
        double fd;
        if (gn > 0 && fabs(an) >= FD_FLOOR * loss)
            fd = fd_richardson(&fc, fabs(an) >= 10 * FD_FLOOR * loss ? FD_STEP : 10 * FD_STEP);
        else
            fd = (loss_along(&fc, FD_STEP) - loss_along(&fc, -FD_STEP)) / (2 * FD_STEP);
        memcpy(p->data, keep, (size_t)p->numel * sizeof(float));
        if (gn == 0) {
            // A tensor off the path (the linear layers of paths 0/1, rwkv7's v_lora in
            // the first rwkv7 layer) cannot change the computation at all.
            n_zero++;
            if (fd == 0.0) n_zero_ok++;
            else
                fprintf(stderr, "  %s: zero gradient but fd %.3g\n", p->name, fd);
        } else if (fabs(an) < FD_FLOOR * loss) {
            n_small++;  // below what fp32 central differences resolve: see FD_FLOOR
        } else {
            double rel = fabs(fd - an) / fmax(fabs(fd), 1e-12);
            if (rel > worst) worst = rel;
            n_checked++;
            CHECK(rel < 1e-2, "%s/%s %s: analytic %.8g fd %.8g rel %.3g", sn->lin_type->name,
                  pn_distill_names[distill], p->name, an, fd, rel);
        }
        free(g);
        free(u);
        free(r);
        free(keep);
    }
    if (per_tensor) {
        CHECK(n_zero_ok == n_zero, "tensors with zero gradient have zero FD (%d of %d)", n_zero_ok, n_zero);
        // Layers 1 and 3 are not on the linear path: all their tensors must be among the zero ones.
        int expect_zero = 0;
        for (int t = 0; t < sn->n_table; t++) expect_zero += sn->table[t].layer == 1 || sn->table[t].layer == 3;
        CHECK(n_zero >= expect_zero, "off-path layers have zero gradient (%d >= %d)", n_zero, expect_zero);
    }
    // Every parameter at once along u = g/‖g‖ + r/‖r‖: covers the tensors below FD_FLOOR jointly.
    {
        pn_sn_param all = {.numel = sn->n_floats, .data = sn->params, .grad = sn->grads};
        double *u = pn_malloc((size_t)all.numel * sizeof(double));
        double gn = 0, rn = 0, an = 0;
        for (int64_t i = 0; i < all.numel; i++) gn += (double)all.grad[i] * all.grad[i];
        for (int64_t i = 0; i < all.numel; i++) {
            u[i] = pn_normal_at(23, 0, (uint64_t)i);
            rn += u[i] * u[i];
        }
        gn = sqrt(gn);
        rn = sqrt(rn);
        for (int64_t i = 0; i < all.numel; i++) {
            u[i] = all.grad[i] / gn + u[i] / rn;
            an += all.grad[i] * u[i];
        }
        float *keep = pn_malloc((size_t)all.numel * sizeof(float));
        memcpy(keep, all.data, (size_t)all.numel * sizeof(float));
        fd_ctx fc = {sn, &all, keep, u, &s};
        double fd = fd_richardson(&fc, FD_STEP);
        memcpy(all.data, keep, (size_t)all.numel * sizeof(float));
        double rel = fabs(fd - an) / fabs(fd);
        CHECK(rel < 1e-2, "%s/%s all parameters: analytic %.8g fd %.8g rel %.3g", sn->lin_type->name,
              pn_distill_names[distill], an, fd, rel);
        printf("  FD %-14s %-4s: loss %.6f; all params: rel err %.2e; per tensor: %d checked, worst rel err %.2e, "
               "%d below floor, %d zero-gradient\n",
               sn->lin_type->name, pn_distill_names[distill], loss, rel, n_checked, worst, n_small, n_zero);
        free(u);
        free(keep);
    }
    pn_supernet_free(sn);
    pn_backbone_free(bb);
}

// (b) every layer on its attention: the student is the teacher.
static void test_all_attention(void) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    for (int mode = PN_DISTILL_MSE; mode <= PN_DISTILL_BOTH; mode++) {
        pn_supernet_config cfg = base_cfg(PN_LINEAR_GATED_DELTANET, mode);
        pn_supernet *sn = pn_supernet_create(bb, &cfg, 5);
        pn_subnet s;
        pn_subnet_fill(&s, 4, PN_PATH_ATTN);
        pn_supernet_zero_grads(sn);
        double l = pn_supernet_distill_step(sn, g_ids, TB, TT, &s);
        int gz = 1;
        for (int64_t i = 0; i < sn->n_floats; i++) gz &= sn->grads[i] == 0.0f;
        CHECK(l == 0.0 && gz, "all-attention subnet (%s): loss %.3g (want exactly 0), grads zero %d",
              pn_distill_names[mode], l, gz);
        pn_supernet_free(sn);
    }
    pn_backbone_free(bb);
}

// (c) SWA with window >= T is full attention; window < T is not.
static void test_swa(void) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    const size_t NV = (size_t)TB * TT * bb->V;
    float *ref = pn_malloc(NV * sizeof(float)), *got = pn_malloc(NV * sizeof(float));
    const int windows[3] = {TT, 100, 3};
    pn_subnet attn, swa;
    pn_subnet_fill(&attn, 4, PN_PATH_ATTN);
    pn_subnet_fill(&swa, 4, PN_PATH_SWA);
    for (int w = 0; w < 3; w++) {
        pn_supernet_config cfg = base_cfg(PN_LINEAR_JETBLOCK, PN_DISTILL_KL);
        cfg.swa_window = windows[w];
        pn_supernet *sn = pn_supernet_create(bb, &cfg, 5);
        memcpy(ref, pn_supernet_logits(sn, g_ids, TB, TT, &attn), NV * sizeof(float));
        memcpy(got, pn_supernet_logits(sn, g_ids, TB, TT, &swa), NV * sizeof(float));
        int same = memcmp(ref, got, NV * sizeof(float)) == 0;
        if (windows[w] >= TT)
            CHECK(same, "swa window %d >= T = %d gives exactly the attention logits (rel err %.3g)", windows[w], TT,
                  rel_err(got, ref, NV));
        else
            CHECK(!same && rel_err(got, ref, NV) > 1e-4, "swa window %d < T differs from attention (rel %.3g)",
                  windows[w], rel_err(got, ref, NV));
        // The SWA block shares the attention's weight buffers and has no gradients.
        int shared = 1;
        for (int l = 0; l < 4; l++)
            for (int p = 0; p < bb->layers[l].attn.n_params; p++)
                shared &= sn->swa[l].params[p] == bb->layers[l].attn.params[p] && sn->swa[l].grads[p] == NULL;
        CHECK(shared && sn->swa[0].cfg.window == windows[w], "swa blocks point at the attention weights, grads NULL");
        pn_supernet_free(sn);
    }
    free(ref);
    free(got);
    pn_backbone_free(bb);
}

// (d) the backbone stays frozen: bit-identical weights, NULL grad slots.
static void test_frozen(void) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    const int64_t nw = pn_backbone_numel(bb);
    float *before = pn_malloc((size_t)nw * sizeof(float));
    memcpy(before, bb->weights, (size_t)nw * sizeof(float));
    const int blocks[3] = {PN_LINEAR_JETBLOCK, PN_LINEAR_RWKV7, PN_LINEAR_MAMBA2};
    for (int k = 0; k < 3; k++) {
        pn_supernet_config cfg = base_cfg(blocks[k], PN_DISTILL_BOTH);
        pn_supernet *sn = pn_supernet_create(bb, &cfg, 5);
        pn_rng rng = pn_rng_make(3, 0);
        for (int step = 0; step < 3; step++) {
            pn_subnet s;
            pn_supernet_sample(sn, &rng, &s);
            s.path[1] = PN_PATH_SWA;
            pn_supernet_distill_step(sn, g_ids, TB, TT, &s);
            // the layout with the subnet's mixers: every slot, the mixers' included, NULL
            int np = pn_backbone_param_count(bb);
            pn_bb_param *t = pn_malloc((size_t)np * sizeof(*t));
            pn_backbone_param_table(bb, t);
            int nulls = 0, linear = 0;
            for (int i = 0; i < np; i++) {
                int is_lin = strstr(t[i].name, "self_attn.") && *t[i].grad && *t[i].grad >= sn->grads &&
                             *t[i].grad < sn->grads + sn->n_floats;
                linear += is_lin;
                nulls += *t[i].grad == NULL;
            }
            CHECK(nulls + linear == np && bb->grads == NULL, "backbone grad slots NULL (%d + %d linear of %d)", nulls,
                  linear, np);
            free(t);
        }
        for (int l = 0; l < 4; l++)
            for (int p = 0; p < bb->layers[l].attn.n_params; p++)
                CHECK(bb->layers[l].attn.grads[p] == NULL, "attn grads NULL");
        pn_supernet_free(sn);
        CHECK(memcmp(before, bb->weights, (size_t)nw * sizeof(float)) == 0, "%s: backbone weights bit-identical",
              pn_linear_block_names[blocks[k]]);
    }
    CHECK(bb->layers[2].mixer == &bb->layers[2].attn, "free restores the attention mixers");
    free(before);
    pn_backbone_free(bb);
}

// (e) sampling.
static void test_sampling(void) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    pn_supernet_config cfg = base_cfg(PN_LINEAR_DELTANET, PN_DISTILL_MSE);
    cfg.k_max = 3;
    pn_supernet *sn = pn_supernet_create(bb, &cfg, 5);
    enum { DRAWS = 8000 };
    int count_k[5] = {0}, per_layer[4] = {0}, bad = 0;
    pn_rng rng = pn_rng_make(42, 7);
    for (int d = 0; d < DRAWS; d++) {
        pn_subnet s;
        pn_supernet_sample(sn, &rng, &s);
        int k = 0;
        for (int l = 0; l < 4; l++) {
            if (s.path[l] == PN_PATH_ATTN) {
                k++;
                per_layer[l]++;
            } else if (s.path[l] != PN_PATH_LINEAR) {
                bad++;
            }
        }
        if (k > cfg.k_max || s.n_layers != 4) bad++;
        count_k[k]++;
    }
    // k uniform over 0..3: chi-square with 3 dof; 16.3 is its 0.999 quantile.
    double chi = 0, e = DRAWS / 4.0;
    for (int k = 0; k <= 3; k++) chi += (count_k[k] - e) * (count_k[k] - e) / e;
    CHECK(bad == 0 && count_k[4] == 0, "draws only use paths 0/2, k <= k_max (bad %d)", bad);
    CHECK(chi < 16.3, "k ~ Uniform{0..3}: chi2 %.2f (counts %d %d %d %d)", chi, count_k[0], count_k[1], count_k[2],
          count_k[3]);
    // E[#full layers] = 1.5 over 4 layers: each layer full with p = 0.375.
    double chl = 0, el = DRAWS * 0.375;
    for (int l = 0; l < 4; l++) chl += (per_layer[l] - el) * (per_layer[l] - el) / el;
    CHECK(chl < 16.3, "layers chosen uniformly: chi2 %.2f", chl);
    // Same rng state → same subnet; the state advances.
    pn_rng a = pn_rng_make(9, 1), b = a;
    pn_subnet s1, s2, s3;
    pn_supernet_sample(sn, &a, &s1);
    pn_supernet_sample(sn, &b, &s2);
    CHECK(memcmp(&s1, &s2, sizeof s1) == 0 && a.counter == b.counter && a.counter > 0, "same rng state, same subnet");
    int differ = 0;
    for (int d = 0; d < 20; d++) {
        pn_supernet_sample(sn, &a, &s3);
        differ |= memcmp(&s1, &s3, sizeof s1) != 0;
    }
    CHECK(differ, "later draws differ");
    // Bernoulli(p_full).
    sn->cfg.sampling = PN_SAMPLING_BERNOULLI;
    sn->cfg.p_full = 0.25;
    int full = 0;
    for (int d = 0; d < DRAWS; d++) {
        pn_subnet s;
        pn_supernet_sample(sn, &rng, &s);
        for (int l = 0; l < 4; l++) full += s.path[l] == PN_PATH_ATTN;
    }
    double phat = full / (4.0 * DRAWS), sd = sqrt(0.25 * 0.75 / (4.0 * DRAWS));
    CHECK(fabs(phat - 0.25) < 4 * sd, "bernoulli p_full 0.25: observed %.4f", phat);
    printf("  sampling: k counts %d %d %d %d (chi2 %.2f), bernoulli p %.4f\n", count_k[0], count_k[1], count_k[2],
           count_k[3], chi, phat);
    // Fixed placement: the same subnet every draw, without touching the rng.
    int full_v[] = {2}, swa_v[] = {0};
    sn->cfg.sampling = PN_SAMPLING_FIXED;
    sn->cfg.full_layers = (pn_cfg_ints){full_v, 1};
    sn->cfg.swa_layers = (pn_cfg_ints){swa_v, 1};
    pn_rng before = rng;
    int fixed_ok = 1;
    for (int d = 0; d < 10; d++) {
        pn_subnet s;
        pn_supernet_sample(sn, &rng, &s);
        fixed_ok &= s.n_layers == 4 && s.path[0] == PN_PATH_SWA && s.path[1] == PN_PATH_LINEAR &&
                    s.path[2] == PN_PATH_ATTN && s.path[3] == PN_PATH_LINEAR;
    }
    CHECK(fixed_ok && rng.counter == before.counter, "sampling fixed: layer 2 attn, layer 0 swa, rest linear");
    pn_supernet_free(sn);
    pn_backbone_free(bb);
}

// Fixed-placement lists and linear dimensions from the config; bad lists exit 2.
static void die_fixed(int which) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    pn_supernet_config cfg = base_cfg(PN_LINEAR_GATED_DELTANET, PN_DISTILL_MSE);
    static int bad_range[] = {4}, dup_a[] = {1}, dup_b[] = {1};
    cfg.sampling = PN_SAMPLING_FIXED;
    if (which == 0) cfg.full_layers = (pn_cfg_ints){bad_range, 1};
    if (which == 1) {
        cfg.full_layers = (pn_cfg_ints){dup_a, 1};
        cfg.swa_layers = (pn_cfg_ints){dup_b, 1};
    }
    if (which == 2) {
        cfg.sampling = PN_SAMPLING_UNIFORM_K;
        cfg.full_layers = (pn_cfg_ints){dup_a, 1};
    }
    pn_supernet_create(bb, &cfg, 1);
}
static void die_fixed_cb(void *arg) { die_fixed(*(const int *)arg); }

static void test_fixed_and_dims(void) {
    static const int cases[3] = {0, 1, 2};
    CHECK(expect_exit(die_fixed_cb, (void *)&cases[0], 2, "full_layers[0] = 4"), "fixed: layer out of range exits 2");
    CHECK(expect_exit(die_fixed_cb, (void *)&cases[1], 2, "already listed"), "fixed: a layer in both lists exits 2");
    CHECK(expect_exit(die_fixed_cb, (void *)&cases[2], 2, "expected sampling: fixed"), "lists without sampling fixed exit 2");
    pn_backbone *bb = pn_backbone_load(g_dir);
    pn_supernet_config cfg = base_cfg(PN_LINEAR_GATED_DELTANET, PN_DISTILL_MSE);
    cfg.heads = 2;
    cfg.key_dim = 8;
    cfg.value_dim = 24;
    cfg.conv_size = 3;
    pn_supernet *sn = pn_supernet_create(bb, &cfg, 1);
    const pn_block_cfg *lc = &sn->lin[1].cfg;
    CHECK(lc->H == 2 && lc->K == 8 && lc->V == 24 && lc->conv_size == 3, "linear dims from the config (H %d K %d V %d W %d)",
          lc->H, lc->K, lc->V, lc->conv_size);
    int q = pn_block_param_index(&sn->lin[1], "q_proj.weight");
    CHECK(q >= 0 && sn->lin[1].spec[q].shape[0] == 16, "q_proj rows = H·K = 16");
    pn_supernet_free(sn);
    pn_backbone_free(bb);
}

// Parameter table, copy_attn init, gradient accumulation, teacher cache.
static void test_misc(void) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    pn_supernet_config cfg = base_cfg(PN_LINEAR_DELTANET, PN_DISTILL_BOTH);
    cfg.linear_init = PN_LINEAR_INIT_COPY_ATTN;
    pn_supernet *sn = pn_supernet_create(bb, &cfg, 5);
    int64_t off = 0;
    int ok = 1;
    for (int t = 0; t < sn->n_table; t++) {
        const pn_sn_param *p = &sn->table[t];
        char want[200];
        snprintf(want, sizeof want, "model.layers.%d.linear_attn.", p->layer);
        ok &= strncmp(p->name, want, strlen(want)) == 0 && p->offset == off && p->data == sn->params + off &&
              p->grad == sn->grads + off;
        off += p->numel;
    }
    CHECK(ok && off == sn->n_floats && off == pn_supernet_param_count(sn), "table covers the flat buffers in order");
    // deltanet (H 4, K = V = 16) vs attention (4 q heads, 2 KV heads of 16): q_proj and
    // o_proj have the same shapes and are copied, k_proj / v_proj (64 vs 32 rows) are not.
    const pn_block *lin = &sn->lin[2], *attn = &bb->layers[2].attn;
    int lq = pn_block_param_index(lin, "q_proj.weight"), aq = pn_block_param_index(attn, "q_proj.weight");
    int lo = pn_block_param_index(lin, "o_proj.weight"), ao = pn_block_param_index(attn, "o_proj.weight");
    int lk = pn_block_param_index(lin, "k_proj.weight"), ak = pn_block_param_index(attn, "k_proj.weight");
    CHECK(lq >= 0 && memcmp(lin->params[lq], attn->params[aq], 64 * 64 * sizeof(float)) == 0, "copy_attn: q_proj");
    CHECK(lo >= 0 && memcmp(lin->params[lo], attn->params[ao], 64 * 64 * sizeof(float)) == 0, "copy_attn: o_proj");
    CHECK(lk >= 0 && memcmp(lin->params[lk], attn->params[ak], 32 * 64 * sizeof(float)) != 0,
          "copy_attn: k_proj of another shape keeps its init");
    CHECK(lin->spec[lo].weight_decay == sn->table[lo + 2 * lin->n_params].weight_decay, "weight-decay flag");

    // Accumulation: two identical steps give twice the gradient; grad_scale scales it.
    pn_subnet s = mixed_subnet();
    pn_supernet_zero_grads(sn);
    double l1 = pn_supernet_distill_step(sn, g_ids, TB, TT, &s);
    float *g1 = pn_malloc((size_t)sn->n_floats * sizeof(float)), *g2 = pn_malloc((size_t)sn->n_floats * sizeof(float));
    memcpy(g1, sn->grads, (size_t)sn->n_floats * sizeof(float));
    double l2 = pn_supernet_distill_step(sn, g_ids, TB, TT, &s);
    for (int64_t i = 0; i < sn->n_floats; i++) g2[i] = 0.5f * sn->grads[i];
    CHECK(l1 == l2 && rel_err(g2, g1, (size_t)sn->n_floats) < 1e-6, "gradients accumulate (rel %.3g)",
          rel_err(g2, g1, (size_t)sn->n_floats));
    pn_supernet_zero_grads(sn);
    sn->grad_scale = 0.25f;
    pn_supernet_distill_step(sn, g_ids, TB, TT, &s);
    for (int64_t i = 0; i < sn->n_floats; i++) g2[i] = 4.0f * sn->grads[i];
    CHECK(rel_err(g2, g1, (size_t)sn->n_floats) < 1e-6, "grad_scale (rel %.3g)", rel_err(g2, g1, (size_t)sn->n_floats));
    sn->grad_scale = 1.0f;

    // Teacher cache: other ids in between, then the first ids again, equals a fresh teacher.
    double la = pn_supernet_eval_loss(sn, g_ids2, TB, TT, &s);
    double lb = pn_supernet_eval_loss(sn, g_ids, TB, TT, &s);
    pn_supernet_clear_teacher(sn);
    double lc = pn_supernet_eval_loss(sn, g_ids, TB, TT, &s);
    CHECK(la != lb && lb == l1 && lc == l1, "teacher cache follows the ids (%.10g %.10g %.10g)", la, lb, lc);
    // Different (B, T) with the same leading ids recomputes.
    double ld = pn_supernet_eval_loss(sn, g_ids, 1, TT, &s);
    CHECK(isfinite(ld) && ld != l1, "shape change recomputes the teacher");
    free(g1);
    free(g2);
    pn_supernet_free(sn);
    pn_backbone_free(bb);
}

static void bad_kmax(void *arg) {
    pn_backbone *bb = pn_backbone_load(g_dir);
    pn_supernet_config cfg = base_cfg(PN_LINEAR_JETBLOCK, PN_DISTILL_MSE);
    cfg.k_max = 5;
    pn_supernet_create(bb, &cfg, 1);
}

int main(void) {
    char root[] = "/tmp/pn_snet_XXXXXX";
    PN_ASSERT(mkdtemp(root) != NULL);
    make_model(root);
    for (int i = 0; i < TB * TT; i++) {
        g_ids[i] = (int64_t)pn_rng_below(&(pn_rng){1, 1, (uint64_t)i}, 64);
        g_ids2[i] = (g_ids[i] * 7 + 3) % 64;
    }
    const int blocks[3] = {PN_LINEAR_JETBLOCK, PN_LINEAR_GATED_DELTANET, PN_LINEAR_RWKV7};
    for (int b = 0; b < 3; b++)
        for (int m = PN_DISTILL_MSE; m <= PN_DISTILL_BOTH; m++)
            // "both" is the weighted sum of the two (test_distill checks that): per
            // tensor once, the all-parameter direction for every block.
            test_fd(blocks[b], m, m != PN_DISTILL_BOTH || b == 0);
    test_fd(PN_LINEAR_MAMBA2, PN_DISTILL_MSE, 1);
    test_all_attention();
    test_swa();
    test_frozen();
    test_sampling();
    test_fixed_and_dims();
    test_misc();
    CHECK(expect_exit(bad_kmax, NULL, 2, "k_max = 5"), "k_max beyond the layer count exits 2");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_summary("test_supernet");
}
