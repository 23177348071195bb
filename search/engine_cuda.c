// engine_cuda.c — see engine_cuda.h.
//
// Memory: three device allocations (weights, states, activations), each carved in
// 256-byte aligned pieces by one layout walk per category that either counts
// (base NULL) or assigns pointers, so pn_cuda_engine_bytes_for and what
// pn_cuda_engine_create allocates cannot drift apart. The mixers' scratch is one
// region shared by all layers (they run one after the other), sized for the larger
// of a decode step (B rows) and a prefill pass (prefill_batch · chunk rows) of the
// most demanding layer; its per-mode layout is carved again at each use (host
// arithmetic only, so a captured graph always sees the same pointers).
//
// One pass over N rows (a decode step, N = B; or a prefill chunk of a group of
// sequences, N = nb·Tc):  x = embed(ids) (fp32);  per layer  xn = RMSNorm(x) (bf16);
// the mixer ends with its output projection accumulating into x (GEMM, beta = 1);
// xn = RMSNorm(x); gu = xn [Wg; Wu]ᵀ (fp32); h = silu(g)·u; x += h Wdᵀ. Then the last
// row of each sequence through the final norm and the LM head into logits (fp32).
//
// Precision (act_split, default on): a bf16 GEMM input loses ~2^-9 of every value, and
// on sensitive hybrids the inputs of the mixers' projections alone put the logits
// ~1e-2 off the fp32 engine. So xn, h and the linear blocks' normed outputs are
// written as two bf16 planes, hi = bf16(v) and lo = bf16(v − hi), and each of those
// GEMMs runs once per plane, the second accumulating into the first's fp32 output
// (gemm_split): the product then sees ~16 mantissa bits of the activation. The
// planes that stay single: attention outputs (cuDNN / the decode kernel write bf16),
// JetBlock's kernel-generator and GLA's gate low-rank inputs, mamba2 / rwkv7 inputs,
// and the final norm before the LM head (the least sensitive). Every other
// intermediate (projections, gates, MLP gate/up) is fp32.
//
// Mixers: attn / swa — one GEMM for q|k|v (fp32 out), one kernel for bias, q/k norm,
// RoPE and the cache append, then split-K decode attention (or, in prefill, attention
// of the chunk against the cache: pn_cuda_attn_fwd (cuDNN) when the build has it,
// else the reference kernel; swa gathers the window's ring rows and the chunk's in
// position order first and writes the ring after). Delta family (jetblock,
// gated_deltanet, deltanet) — one GEMM for every input projection of the block
// [q | k | v | g | a | b | w1] (fp32 out); JetBlock's kernel generator second stage
// as a GEMM; then the fused recurrent scan kernel (short convs, silu, L2 norms,
// gates and the delta rule; one token in decode, the chunk in prefill), or in
// prefill with delta_chunked (the default): conv / activation row kernels, the gates,
// and the tensor-core chunked pn_cuda_gated_delta_fwd_fast with the state as h0 and ht
// (head sizes it does not take run its plain twin); then the gated output RMSNorm and
// o_proj.
//
// The decode step (every kernel above for N = B, plus argmax and the position
// advance) is captured into a CUDA graph on the first decode and replayed after that;
// the positions are read from device memory, so the graph is valid at every step.
// Everything runs on the engine's own stream (graph capture needs a non-default
// stream), set as the backend stream for the duration of each call.
#ifdef POSTNAS_HAVE_CUDA
#include "search/engine_cuda.h"
#include "core/log.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_engine.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include <math.h>

// cuDNN fused attention for prefill, when the build has it (kernels/cuda/pn_cuda_attn.h).
#if defined(__has_include)
#if __has_include("kernels/cuda/pn_cuda_attn.h")
#include "kernels/cuda/pn_cuda_attn.h"
#define CE_HAVE_CUDNN_ATTN 1
#endif
#endif

#define CE_WHERE "CUDA inference engine"
#define CE_ALIGN 256
// cuBLASLt workspace (kernels/cuda/gemm.cu) and an allowance for the workspace of
// cuDNN's fused attention in prefill, which its API does not report.
#define CE_GEMM_WORKSPACE ((size_t)32 << 20)
#define CE_ATTN_ALLOWANCE ((size_t)256 << 20)

typedef enum { CE_ATTN, CE_SWA, CE_DELTA, CE_GLA, CE_RWKV } ce_kind;  // CE_GLA: gla, retnet, mamba2 (gkind)

typedef struct {
    ce_kind kind;
    const pn_block *m;
    // attn / swa
    int H, Hkv, D, window, QD, KD;
    int64_t Lc;
    int part_len, n_parts;
    float qk_eps, scale;
    // delta family
    int jet, gated, has_a, conv_qk;  // JetBlock; output gate g_proj; decay a_proj; static q/k convs
    int dH, dK, dV, dW, R, HK, HV, Np;
    int q_off, k_off, v_off, g_off, a_off, b_off, w1_off;
    float norm_eps;
    // gla family (CE_GLA): q/k/v offsets above index the scan's source (proj, or for
    // mamba2 the conv output xs); gkind is the PN_CUDA_DECAY_* of the block
    int gkind, lr_off, dt_off, G, E, Dc;
    // rwkv7: LoRA ranks, the layer's own first_rwkv flag (v_lora absent when set)
    int lw, la, lv, lg, first_rwkv;
    // weights
    float *in_norm, *post_norm;
    pn_bf16 *w_gu, *w_down;
    pn_bf16 *w_qkv, *b_qkv, *w_o, *b_o;
    float *qn, *kn, *inv_freq;
    pn_bf16 *w_proj, *w2, *w_gk1;
    float *b2, *q_conv, *k_conv, *v_conv, *A_log, *dt_bias, *o_norm, *gk_bias, *conv_b, *Dskip;
    pn_bf16 *w_r, *w_k, *w_v, *w_w0, *w_w2, *w_v0, *w_v2, *w_a0, *w_a2, *w_g0, *w_g2;
    float *b_w2, *b_v2, *b_a2, *mu, *k_k, *k_a, *r_k, *gn_w, *gn_b;
    // states
    pn_bf16 *kc, *vc;
    float *S, *q_ring, *k_ring, *v_ring, *xprev;
} ce_layer;

static int is_attn(const ce_layer *L) { return L->kind == CE_ATTN || L->kind == CE_SWA; }

// A mixer's scratch for one pass (carved from the shared region).
typedef struct {
    float *qkv, *part_o, *part_ml;
    pn_bf16 *q, *o, *knew, *vnew, *kg, *vg;
    float *proj, *kern, *beta, *g, *od, *gk, *xs;
    pn_bf16 *h1s, *dq, *dk, *dv, *on, *on_lo, *lr;
    pn_bf16 *xt6, *lo_b;  // rwkv7: the six lerped inputs; a LoRA's hidden activation
    float *r, *w, *k, *v, *a, *b, *lo_f;
} ce_mix;

struct ce_priv {
    ce_layer *L;
    // weights
    pn_bf16 *embed, *lm;
    float *final_norm;
    // activations
    int64_t *ids, *next, *pos;
    float *x, *vfirst;  // vfirst: rwkv7's value residual of the current pass (NR, C), or NULL
    pn_bf16 *xn, *xn_lo, *hmid, *hmid_lo, *xl;  // *_lo: the low planes of bf16x2 split GEMM inputs
    float *gu;
    void *mix;
    size_t mix_bytes;
    // allocations
    void *wbuf, *sbuf, *abuf;
    void *stream, *graph;
    int graph_failed;
    int last_nb, last_tc;  // shape of the previous prefill pass (transient scratch reuse)
};

typedef struct {
    char *base;
    size_t off;
} ce_carve;

static void *take(ce_carve *c, size_t bytes) {
    if (!bytes) return NULL;
    size_t o = c->off;
    c->off += (bytes + CE_ALIGN - 1) & ~(size_t)(CE_ALIGN - 1);
    return c->base ? c->base + o : NULL;
}

static int mixer_is(const pn_block *m, const char *name) { return strcmp(m->type->name, name) == 0; }

// ---------------------------------------------------------------- dims

static void layer_dims(ce_layer *L, const pn_block *m, int B, int64_t ctx) {
    memset(L, 0, sizeof *L);
    L->m = m;
    const pn_block_cfg *c = &m->cfg;
    if (mixer_is(m, "attn") || mixer_is(m, "swa")) {
        L->kind = mixer_is(m, "swa") ? CE_SWA : CE_ATTN;
        L->H = c->H, L->Hkv = c->H_kv, L->D = c->K;
        L->window = L->kind == CE_SWA ? c->window : 0;
        L->QD = L->H * L->D, L->KD = L->Hkv * L->D;
        L->Lc = L->kind == CE_SWA ? PN_MIN((int64_t)c->window, ctx) : ctx;
        L->qk_eps = c->norm_eps;
        L->scale = 1.0f / sqrtf((float)L->D);
        L->part_len = pn_cuda_eng_attn_part_len(B, L->Hkv, L->Lc);
        L->n_parts = (int)((L->Lc + L->part_len - 1) / L->part_len);
        return;
    }
    if (mixer_is(m, "rwkv7")) {
        L->kind = CE_RWKV;
        L->dH = c->H, L->dK = c->K, L->dV = c->K;
        L->HK = L->HV = c->C;
        L->lw = c->lora_w, L->la = c->lora_a, L->lv = c->lora_v, L->lg = c->lora_g;
        L->first_rwkv = c->first_rwkv;
        L->norm_eps = c->norm_eps;
        return;
    }
    if (mixer_is(m, "gla") || mixer_is(m, "retnet") || mixer_is(m, "mamba2")) {
        L->kind = CE_GLA;
        L->norm_eps = c->norm_eps;
        L->dH = c->H;
        if (mixer_is(m, "mamba2")) {
            // in_proj rows [z (E) | xBC (E + 2GN) | dt (H)]; the scan reads xs = silu(conv(xBC)):
            // x at 0 (head h at h·P), B at E, C at E + G·N; K = N (state), V = P (head dim).
            L->gkind = PN_CUDA_DECAY_MAMBA2;
            L->dK = c->d_state, L->dV = c->K, L->G = c->n_groups, L->dW = c->conv_size;
            L->E = c->expand * c->C, L->Dc = L->E + 2 * L->G * L->dK;
            L->HK = L->dH * L->dK, L->HV = L->E;
            L->g_off = 0, L->dt_off = L->E + L->Dc, L->Np = L->E + L->Dc + L->dH;
            L->v_off = 0, L->k_off = L->E, L->q_off = L->E + L->G * L->dK;
            L->scale = 1.0f;
            return;
        }
        L->gkind = mixer_is(m, "gla") ? PN_CUDA_DECAY_GLA : PN_CUDA_DECAY_RETNET;
        L->dK = c->K, L->dV = c->V;
        L->HK = L->dH * L->dK, L->HV = L->dH * L->dV;
        L->q_off = 0, L->k_off = L->HK, L->v_off = 2 * L->HK, L->g_off = 2 * L->HK + L->HV;
        L->lr_off = L->gkind == PN_CUDA_DECAY_GLA ? 2 * L->HK + 2 * L->HV : -1;
        L->Np = 2 * L->HK + 2 * L->HV + (L->gkind == PN_CUDA_DECAY_GLA ? 16 : 0);
        L->scale = 1.0f / sqrtf((float)L->dK);
        return;
    }
    L->kind = CE_DELTA;
    L->jet = mixer_is(m, "jetblock");
    L->gated = !mixer_is(m, "deltanet");
    L->has_a = L->gated;
    L->conv_qk = !L->jet;
    L->dH = c->H, L->dK = c->K, L->dV = c->V, L->dW = c->conv_size;
    L->HK = L->dH * L->dK, L->HV = L->dH * L->dV;
    L->R = L->jet ? PN_MAX(1, L->HV / PN_MAX(1, c->gen_reduction)) : 0;
    L->norm_eps = c->norm_eps;
    L->scale = 1.0f / sqrtf((float)L->dK);
    int n = 0;
    L->q_off = n, n += L->HK;
    L->k_off = n, n += L->HK;
    L->v_off = n, n += L->HV;
    L->g_off = L->gated ? n : -1, n += L->gated ? L->HV : 0;
    L->a_off = L->has_a ? n : -1, n += L->has_a ? L->dH : 0;
    L->b_off = n, n += L->dH;
    L->w1_off = L->jet ? n : -1, n += L->R;
    L->Np = n;
}

int pn_cuda_engine_supports(const pn_backbone *bb, char *why, size_t why_len) {
    char buf[256];
    if (!why) why = buf, why_len = sizeof buf;
    why[0] = 0;
    for (int l = 0; l < bb->n_layers; l++) {
        const pn_block *m = bb->layers[l].mixer;
        const pn_block_cfg *c = &m->cfg;
        if (mixer_is(m, "attn") || mixer_is(m, "swa")) {
            if (!pn_cuda_eng_attn_head_dim_ok(c->K)) {
                snprintf(why, why_len, "layer %d (%s): head dim %d (the decode kernel takes 16, 32, 64, 128 or 256)",
                         l, m->type->name, c->K);
                return 0;
            }
            if (c->H_kv <= 0 || c->H % c->H_kv != 0) {
                snprintf(why, why_len, "layer %d (%s): %d query heads are not a multiple of %d KV heads", l,
                         m->type->name, c->H, c->H_kv);
                return 0;
            }
            continue;
        }
        if (mixer_is(m, "jetblock") || mixer_is(m, "gated_deltanet") || mixer_is(m, "deltanet")) {
            if (c->K > 256 || c->K < 1 || c->V < 1 || c->conv_size < 1 || c->conv_size > 8) {
                snprintf(why, why_len, "layer %d (%s): key dim %d, conv size %d (the scan kernel takes K 1..256, "
                         "conv 1..8)", l, m->type->name, c->K, c->conv_size);
                return 0;
            }
            continue;
        }
        if (mixer_is(m, "gla") || mixer_is(m, "retnet") || mixer_is(m, "mamba2")) {
            const int K = mixer_is(m, "mamba2") ? c->d_state : c->K;
            if (K < 1 || K > 256 || (mixer_is(m, "retnet") && K % 2)) {
                snprintf(why, why_len, "layer %d (%s): key / state dim %d (the scan kernel takes 1..256%s)", l,
                         m->type->name, K, mixer_is(m, "retnet") ? ", even" : "");
                return 0;
            }
            continue;
        }
        if (mixer_is(m, "rwkv7")) {
            if (c->K < 1 || c->K > 256) {
                snprintf(why, why_len, "layer %d (rwkv7): head dim %d (the scan kernel takes 1..256)", l, c->K);
                return 0;
            }
            continue;
        }
        snprintf(why, why_len, "layer %d: block type %s has no CUDA kernels (supported: attn, swa, jetblock, "
                 "gated_deltanet, deltanet, gla, retnet, mamba2, rwkv7)", l, m->type->name);
        return 0;
    }
    return 1;
}

// ---------------------------------------------------------------- layouts

typedef struct {
    const pn_backbone *bb;
    int B, chunk, P;  // P: sequences per prefill pass
    int64_t ctx;
    ce_layer *L;
} ce_plan;

static void plan_make(ce_plan *pl, const pn_backbone *bb, int B, int64_t ctx, int chunk, int P) {
    pl->bb = bb;
    pl->B = B;
    pl->ctx = ctx;
    pl->chunk = (int)PN_MIN((int64_t)chunk, ctx);
    pl->P = PN_MIN(P, B);
    pl->L = pn_calloc((size_t)bb->n_layers, sizeof(ce_layer));
    for (int l = 0; l < bb->n_layers; l++) layer_dims(&pl->L[l], bb->layers[l].mixer, B, ctx);
}

static size_t sz_bf(int64_t n) { return (size_t)n * sizeof(pn_bf16); }
static size_t sz_f(int64_t n) { return (size_t)n * sizeof(float); }

static void layout_weights(ce_plan *pl, struct ce_priv *pv, ce_carve *c) {
    const pn_backbone *bb = pl->bb;
    const int64_t C = bb->C, I = bb->I, V = bb->V;
    pn_bf16 *embed = take(c, sz_bf(V * C));
    pn_bf16 *lm = bb->tied ? embed : take(c, sz_bf(V * C));
    float *fn = take(c, sz_f(C));
    if (pv) pv->embed = embed, pv->lm = lm, pv->final_norm = fn;
    for (int l = 0; l < bb->n_layers; l++) {
        ce_layer *L = &pl->L[l];
        const pn_block_cfg *cf = &L->m->cfg;
        L->in_norm = take(c, sz_f(C));
        L->post_norm = take(c, sz_f(C));
        L->w_gu = take(c, sz_bf(2 * I * C));
        L->w_down = take(c, sz_bf(C * I));
        if (is_attn(L)) {
            const int64_t n = L->QD + 2 * L->KD;
            L->w_qkv = take(c, sz_bf(n * C));
            L->b_qkv = cf->qkv_bias ? take(c, sz_bf(n)) : NULL;
            L->w_o = take(c, sz_bf(C * L->QD));
            L->b_o = cf->o_bias ? take(c, sz_bf(C)) : NULL;
            L->qn = cf->qk_norm ? take(c, sz_f(L->D)) : NULL;
            L->kn = cf->qk_norm ? take(c, sz_f(L->D)) : NULL;
            L->inv_freq = take(c, sz_f(L->D / 2));
        } else if (L->kind == CE_RWKV) {
            L->w_r = take(c, sz_bf(C * C));
            L->w_k = take(c, sz_bf(C * C));
            L->w_v = take(c, sz_bf(C * C));
            L->w_o = take(c, sz_bf(C * C));
            L->w_w0 = take(c, sz_bf((int64_t)L->lw * C));
            L->w_w2 = take(c, sz_bf(C * L->lw));
            L->b_w2 = take(c, sz_f(C));
            L->w_v0 = L->first_rwkv ? NULL : take(c, sz_bf((int64_t)L->lv * C));
            L->w_v2 = L->first_rwkv ? NULL : take(c, sz_bf(C * L->lv));
            L->b_v2 = L->first_rwkv ? NULL : take(c, sz_f(C));
            L->w_a0 = take(c, sz_bf((int64_t)L->la * C));
            L->w_a2 = take(c, sz_bf(C * L->la));
            L->b_a2 = take(c, sz_f(C));
            L->w_g0 = take(c, sz_bf((int64_t)L->lg * C));
            L->w_g2 = take(c, sz_bf(C * L->lg));
            L->mu = take(c, sz_f(6 * C));
            L->k_k = take(c, sz_f(C));
            L->k_a = take(c, sz_f(C));
            L->r_k = take(c, sz_f(C));
            L->gn_w = take(c, sz_f(C));
            L->gn_b = take(c, sz_f(C));
        } else if (L->kind == CE_GLA) {
            L->w_proj = take(c, sz_bf((int64_t)L->Np * C));
            if (L->gkind == PN_CUDA_DECAY_GLA) {
                L->w_gk1 = take(c, sz_bf((int64_t)L->HK * 16));
                L->gk_bias = take(c, sz_f(L->HK));
            }
            if (L->gkind == PN_CUDA_DECAY_RETNET) L->inv_freq = take(c, sz_f(L->dK / 2));
            if (L->gkind == PN_CUDA_DECAY_MAMBA2) {
                L->v_conv = take(c, sz_f((int64_t)L->Dc * L->dW));
                L->conv_b = take(c, sz_f(L->Dc));
                L->A_log = take(c, sz_f(L->dH));
                L->dt_bias = take(c, sz_f(L->dH));
                L->Dskip = take(c, sz_f(L->dH));
            }
            L->o_norm = take(c, sz_f(L->gkind == PN_CUDA_DECAY_MAMBA2 ? L->E : L->dV));
            L->w_o = take(c, sz_bf(C * L->HV));
        } else {
            L->w_proj = take(c, sz_bf((int64_t)L->Np * C));
            L->w2 = L->jet ? take(c, sz_bf((int64_t)L->HV * L->dW * L->R)) : NULL;
            L->b2 = L->jet ? take(c, sz_f((int64_t)L->HV * L->dW)) : NULL;
            L->q_conv = L->conv_qk ? take(c, sz_f((int64_t)L->HK * L->dW)) : NULL;
            L->k_conv = L->conv_qk ? take(c, sz_f((int64_t)L->HK * L->dW)) : NULL;
            L->v_conv = L->jet ? NULL : take(c, sz_f((int64_t)L->HV * L->dW));
            L->A_log = L->has_a ? take(c, sz_f(L->dH)) : NULL;
            L->dt_bias = L->has_a ? take(c, sz_f(L->dH)) : NULL;
            L->o_norm = take(c, sz_f(L->dV));
            L->w_o = take(c, sz_bf(C * L->HV));
        }
    }
}

static void layout_states(ce_plan *pl, ce_carve *c) {
    const int64_t B = pl->B;
    for (int l = 0; l < pl->bb->n_layers; l++) {
        ce_layer *L = &pl->L[l];
        if (is_attn(L)) {
            L->kc = take(c, sz_bf(B * L->Lc * L->KD));
            L->vc = take(c, sz_bf(B * L->Lc * L->KD));
        } else if (L->kind == CE_RWKV) {
            L->S = take(c, sz_f(B * L->dH * L->dK * L->dV));
            L->xprev = take(c, sz_f(B * L->HK));
        } else if (L->kind == CE_GLA) {
            L->S = take(c, sz_f(B * L->dH * L->dK * L->dV));
            L->v_ring = L->gkind == PN_CUDA_DECAY_MAMBA2 ? take(c, sz_f(B * L->dW * L->Dc)) : NULL;
        } else {
            L->S = take(c, sz_f(B * L->dH * L->dK * L->dV));
            L->q_ring = L->conv_qk ? take(c, sz_f(B * L->dW * L->HK)) : NULL;
            L->k_ring = L->conv_qk ? take(c, sz_f(B * L->dW * L->HK)) : NULL;
            L->v_ring = take(c, sz_f(B * L->dW * L->HV));
        }
    }
}

// The mixer scratch of layer L for a pass of nb sequences × T tokens (decode: T = 1,
// nb = B). Prefill-only buffers are absent in decode and the reverse.
static void layout_mix(const ce_plan *pl, const ce_layer *L, int nb, int T, int decode, ce_carve *c, ce_mix *m) {
    memset(m, 0, sizeof *m);
    const int64_t N = (int64_t)nb * T;
    if (is_attn(L)) {
        m->qkv = take(c, sz_f(N * (L->QD + 2 * L->KD)));
        m->q = take(c, sz_bf(N * L->QD));
        m->o = take(c, sz_bf(N * L->QD));
        if (decode) {
            const int64_t slots = pn_cuda_eng_attn_part_slots_bound(pl->B, L->H, L->Hkv, L->Lc);
            PN_ASSERT(slots >= (int64_t)pl->B * L->H * L->n_parts);
            m->part_o = take(c, sz_f(slots * L->D));
            m->part_ml = take(c, sz_f(slots * 2));
        } else if (L->kind == CE_SWA) {
            m->knew = take(c, sz_bf(N * L->KD));
            m->vnew = take(c, sz_bf(N * L->KD));
            const int64_t rows = (int64_t)nb * (L->window - 1 + T);
            m->kg = take(c, sz_bf(rows * L->KD));
            m->vg = take(c, sz_bf(rows * L->KD));
        }
        return;
    }
    if (L->kind == CE_RWKV) {
        const int64_t C = L->HK, R = PN_MAX(PN_MAX(L->lw, L->la), PN_MAX(L->lv, L->lg));
        m->xt6 = take(c, sz_bf(N * 6 * C));
        m->r = take(c, sz_f(N * C));
        m->w = take(c, sz_f(N * C));
        m->k = take(c, sz_f(N * C));
        m->v = take(c, sz_f(N * C));
        m->a = take(c, sz_f(N * C));
        m->b = take(c, sz_f(N * C));
        m->g = take(c, sz_f(N * C));
        m->od = take(c, sz_f(N * C));
        m->lo_f = take(c, sz_f(N * R));
        m->lo_b = take(c, sz_bf(N * R));
        m->on = take(c, sz_bf(N * C));
        return;
    }
    if (L->kind == CE_GLA) {
        m->proj = take(c, sz_f(N * L->Np));
        if (L->gkind == PN_CUDA_DECAY_GLA) {
            m->lr = take(c, sz_bf(N * 16));
            m->gk = take(c, sz_f(N * L->HK));
        }
        if (L->gkind == PN_CUDA_DECAY_MAMBA2) m->xs = take(c, sz_f(N * L->Dc));
        m->od = take(c, sz_f(N * L->HV));
        m->on = take(c, sz_bf(N * L->HV));
        m->on_lo = L->gkind != PN_CUDA_DECAY_MAMBA2 ? take(c, sz_bf(N * L->HV)) : NULL;
        return;
    }
    m->proj = take(c, sz_f(N * L->Np));
    if (L->jet) {
        m->h1s = take(c, sz_bf(N * L->R));
        m->kern = take(c, sz_f(N * L->HV * L->dW));
    }
    if (!decode) {
        m->dq = take(c, sz_bf(N * L->HK));
        m->dk = take(c, sz_bf(N * L->HK));
        m->dv = take(c, sz_bf(N * L->HV));
        m->beta = take(c, sz_f(N * L->dH));
        m->g = L->has_a ? take(c, sz_f(N * L->dH)) : NULL;
    }
    m->od = take(c, sz_f(N * L->HV));
    m->on = take(c, sz_bf(N * L->HV));
    m->on_lo = take(c, sz_bf(N * L->HV));
}

static size_t mix_bytes_of(const ce_plan *pl) {
    size_t need = 0;
    ce_mix m;
    for (int l = 0; l < pl->bb->n_layers; l++) {
        ce_carve d = {NULL, 0}, p = {NULL, 0};
        layout_mix(pl, &pl->L[l], pl->B, 1, 1, &d, &m);
        layout_mix(pl, &pl->L[l], pl->P, pl->chunk, 0, &p, &m);
        need = PN_MAX(need, PN_MAX(d.off, p.off));
    }
    return need;
}

static void layout_acts(const ce_plan *pl, struct ce_priv *pv, float **logits_out, size_t mix_bytes, ce_carve *c) {
    const pn_backbone *bb = pl->bb;
    const int64_t NR = PN_MAX((int64_t)pl->B, (int64_t)pl->P * pl->chunk), B = pl->B;
    const int64_t C = bb->C, I = bb->I, V = bb->V;
    int64_t *ids = take(c, NR * sizeof(int64_t));
    float *x = take(c, sz_f(NR * C));
    pn_bf16 *xn = take(c, sz_bf(NR * C));
    pn_bf16 *xn_lo = take(c, sz_bf(NR * C));
    float *gu = take(c, sz_f(NR * 2 * I));
    pn_bf16 *hmid = take(c, sz_bf(NR * I));
    pn_bf16 *hmid_lo = take(c, sz_bf(NR * I));
    pn_bf16 *xl = take(c, sz_bf(B * C));
    float *logits = take(c, sz_f(B * V));
    int64_t *next = take(c, B * sizeof(int64_t));
    int64_t *pos = take(c, sizeof(int64_t));
    int has_rwkv = 0;
    for (int l = 0; l < bb->n_layers; l++) has_rwkv |= pl->L[l].kind == CE_RWKV;
    float *vfirst = has_rwkv ? take(c, sz_f(NR * C)) : NULL;
    void *mix = take(c, mix_bytes);
    if (pv) {
        pv->ids = ids, pv->x = x, pv->xn = xn, pv->xn_lo = xn_lo, pv->gu = gu, pv->hmid = hmid, pv->hmid_lo = hmid_lo;
        pv->xl = xl;
        pv->next = next, pv->pos = pos, pv->mix = mix, pv->mix_bytes = mix_bytes, pv->vfirst = vfirst;
    }
    if (logits_out) *logits_out = logits;
}

// Bytes the chunked delta rule allocates for one call over nb sequences of T tokens:
// the plain kernels' W, U, γ (nb·T·H·(K + V + 1) floats) or, when the tensor-core
// kernels take the head size, their per-chunk A, P (64² bf16 each) and rows (64
// float4) plus, for the context-parallel state pass, at most one segment per
// multiprocessor of end states [D | M] (K·(V + K) floats) and start states (K·V
// floats) — pn_cuda_gdn_fast.h. The larger of the two: a misaligned call would
// fall back to the plain kernels.
static size_t gdn_fwd_scratch(const ce_layer *L, int64_t nb, int64_t T) {
    const int64_t hr = nb * T * L->dH;
    size_t plain = pn_cuda_eng_alloc_rounded(sz_f(hr * L->dK)) + pn_cuda_eng_alloc_rounded(sz_f(hr * L->dV)) +
                   pn_cuda_eng_alloc_rounded(sz_f(hr));
    if (!pn_cuda_gated_delta_fwd_fast_supported(L->dK, L->dV)) return plain;
    const int64_t nchunks = nb * L->dH * ((T + 63) / 64);
    static int64_t segs = 0;  // GPU 0's multiprocessors, asked once: max-batch searches call this per layer
    if (!segs) {
        pn_cuda_device_info info;
        pn_cuda_device_info_get(0, &info);
        segs = info.multiprocessors;
    }
    size_t fast = 2 * pn_cuda_eng_alloc_rounded((size_t)nchunks * 64 * 64 * 2) +
                  pn_cuda_eng_alloc_rounded((size_t)nchunks * 64 * 16) +
                  pn_cuda_eng_alloc_rounded(sz_f(segs * L->dK * (L->dV + L->dK))) +
                  pn_cuda_eng_alloc_rounded(sz_f(segs * L->dK * L->dV));
    return PN_MAX(plain, fast);
}

static pn_cuda_engine_bytes plan_bytes(ce_plan *pl) {
    pn_cuda_engine_bytes r;
    memset(&r, 0, sizeof r);
    ce_carve w = {NULL, 0}, s = {NULL, 0}, a = {NULL, 0};
    layout_weights(pl, NULL, &w);
    layout_states(pl, &s);
    layout_acts(pl, NULL, NULL, mix_bytes_of(pl), &a);
    r.weights = pn_cuda_eng_alloc_rounded(w.off);
    r.states = pn_cuda_eng_alloc_rounded(s.off);
    r.acts = pn_cuda_eng_alloc_rounded(a.off);
    size_t gdn = 0;
    int has_attn = 0;
    for (int l = 0; l < pl->bb->n_layers; l++) {
        if (pl->L[l].kind == CE_DELTA) gdn = PN_MAX(gdn, gdn_fwd_scratch(&pl->L[l], pl->P, pl->chunk));
        has_attn |= is_attn(&pl->L[l]);
    }
    r.transient = gdn + CE_GEMM_WORKSPACE + (has_attn ? CE_ATTN_ALLOWANCE : 0);
    r.total = r.weights + r.states + r.acts + r.transient;
    return r;
}

pn_cuda_engine_bytes pn_cuda_engine_bytes_for(const pn_backbone *bb, int batch, int64_t max_context, int chunk,
                                              int prefill_batch) {
    pn_cuda_engine_bytes r;
    memset(&r, 0, sizeof r);
    if (batch <= 0 || max_context <= 0 || chunk <= 0 || prefill_batch <= 0) return r;
    ce_plan pl;
    plan_make(&pl, bb, batch, max_context, chunk, prefill_batch);
    r = plan_bytes(&pl);
    free(pl.L);
    return r;
}

int pn_cuda_engine_max_batch(const pn_backbone *bb, int64_t max_context, int chunk, int prefill_batch, size_t budget,
                             int cap) {
    // total(B) grows with B (every part is non-decreasing in B): bisect on [lo fits, hi does not].
    int lo = 0, hi = cap + 1;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (pn_cuda_engine_bytes_for(bb, mid, max_context, chunk, prefill_batch).total <= budget)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

// ---------------------------------------------------------------- creation

static void put_f32(float *dst, const float *src, int64_t n) {
    if (dst && n > 0) pn_cuda_upload(dst, src, (size_t)n * sizeof(float));
}

// Host-side conversion in slices, so no device staging memory is needed.
static void put_bf16(pn_bf16 *dst, const float *src, int64_t n) {
    if (!dst || n <= 0) return;
    const int64_t slice = (int64_t)1 << 22;
    uint16_t *tmp = pn_malloc((size_t)PN_MIN(n, slice) * sizeof(uint16_t));
    for (int64_t o = 0; o < n; o += slice) {
        const int64_t k = PN_MIN(slice, n - o);
#pragma omp parallel for schedule(static) if (k > 65536)
        for (int64_t i = 0; i < k; i++) tmp[i] = pn_f32_to_bf16(src[o + i]);
        pn_cuda_upload(dst + o, tmp, (size_t)k * sizeof(uint16_t));
    }
    free(tmp);
}

static const float *param(const pn_block *m, const char *name, int64_t want) {
    int i = pn_block_param_index(m, name);
    if (i < 0 || !m->params[i])
        pn_die_internal(__FILE__, __LINE__, "%s block has no parameter %s", m->type->name, name);
    if (pn_param_numel(&m->spec[i]) != want)
        pn_die_internal(__FILE__, __LINE__, "%s.%s has %lld elements, expected %lld", m->type->name, name,
                        (long long)pn_param_numel(&m->spec[i]), (long long)want);
    return m->params[i];
}

static void upload_gla(ce_layer *L, int64_t C) {
    const pn_block *m = L->m;
    const int64_t HK = L->HK, HV = L->HV, H = L->dH;
    if (L->gkind == PN_CUDA_DECAY_MAMBA2) {
        const int64_t Dc = L->Dc, W = L->dW, E = L->E;
        put_bf16(L->w_proj, param(m, "in_proj.weight", L->Np * C), L->Np * C);
        put_f32(L->v_conv, param(m, "conv1d.weight", Dc * W), Dc * W);
        put_f32(L->conv_b, param(m, "conv1d.bias", Dc), Dc);
        put_f32(L->A_log, param(m, "A_log", H), H);
        put_f32(L->dt_bias, param(m, "dt_bias", H), H);
        put_f32(L->Dskip, param(m, "D", H), H);
        put_f32(L->o_norm, param(m, "norm.weight", E), E);
        put_bf16(L->w_o, param(m, "out_proj.weight", C * E), C * E);
        return;
    }
    put_bf16(L->w_proj + (int64_t)L->q_off * C, param(m, "q_proj.weight", HK * C), HK * C);
    put_bf16(L->w_proj + (int64_t)L->k_off * C, param(m, "k_proj.weight", HK * C), HK * C);
    put_bf16(L->w_proj + (int64_t)L->v_off * C, param(m, "v_proj.weight", HV * C), HV * C);
    put_bf16(L->w_proj + (int64_t)L->g_off * C, param(m, "g_proj.weight", HV * C), HV * C);
    if (L->gkind == PN_CUDA_DECAY_GLA) {
        put_bf16(L->w_proj + (int64_t)L->lr_off * C, param(m, "gk_proj.0.weight", 16 * C), 16 * C);
        put_bf16(L->w_gk1, param(m, "gk_proj.1.weight", HK * 16), HK * 16);
        put_f32(L->gk_bias, param(m, "gk_proj.1.bias", HK), HK);
    } else {
        // RetNet's RoPE: base 10000 over the key dim, inv_freq as kernels/cpu/ops_rope.c forms it.
        float *inv = pn_malloc((size_t)(L->dK / 2) * sizeof(float));
        for (int i = 0; i < L->dK / 2; i++) inv[i] = 1.0f / powf(10000.0f, (float)(2 * i) / (float)L->dK);
        put_f32(L->inv_freq, inv, L->dK / 2);
        free(inv);
    }
    put_f32(L->o_norm, param(m, "g_norm_swish_gate.weight", L->dV), L->dV);
    put_bf16(L->w_o, param(m, "o_proj.weight", C * HV), C * HV);
}

static void upload_rwkv(ce_layer *L, int64_t C) {
    const pn_block *m = L->m;
    put_bf16(L->w_r, param(m, "r_proj.weight", C * C), C * C);
    put_bf16(L->w_k, param(m, "k_proj.weight", C * C), C * C);
    put_bf16(L->w_v, param(m, "v_proj.weight", C * C), C * C);
    put_bf16(L->w_o, param(m, "o_proj.weight", C * C), C * C);
    put_bf16(L->w_w0, param(m, "w_lora.lora.0.weight", L->lw * C), L->lw * C);
    put_bf16(L->w_w2, param(m, "w_lora.lora.2.weight", C * L->lw), C * L->lw);
    put_f32(L->b_w2, param(m, "w_lora.lora.2.bias", C), C);
    if (!L->first_rwkv) {
        put_bf16(L->w_v0, param(m, "v_lora.lora.0.weight", L->lv * C), L->lv * C);
        put_bf16(L->w_v2, param(m, "v_lora.lora.2.weight", C * L->lv), C * L->lv);
        put_f32(L->b_v2, param(m, "v_lora.lora.2.bias", C), C);
    }
    put_bf16(L->w_a0, param(m, "a_lora.lora.0.weight", L->la * C), L->la * C);
    put_bf16(L->w_a2, param(m, "a_lora.lora.2.weight", C * L->la), C * L->la);
    put_f32(L->b_a2, param(m, "a_lora.lora.2.bias", C), C);
    put_bf16(L->w_g0, param(m, "g_lora.lora.0.weight", L->lg * C), L->lg * C);
    put_bf16(L->w_g2, param(m, "g_lora.lora.2.weight", C * L->lg), C * L->lg);
    const char *mu[6] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
    for (int i = 0; i < 6; i++) put_f32(L->mu + (int64_t)i * C, param(m, mu[i], C), C);
    put_f32(L->k_k, param(m, "k_k", C), C);
    put_f32(L->k_a, param(m, "k_a", C), C);
    put_f32(L->r_k, param(m, "r_k", C), C);
    put_f32(L->gn_w, param(m, "g_norm.weight", C), C);
    put_f32(L->gn_b, param(m, "g_norm.bias", C), C);
}

static void upload_weights(pn_cuda_engine *e) {
    const pn_backbone *bb = e->bb;
    struct ce_priv *pv = e->p;
    const int64_t C = bb->C, I = bb->I, V = bb->V;
    put_bf16(pv->embed, bb->embed, V * C);
    if (!bb->tied) put_bf16(pv->lm, bb->lm_head, V * C);
    put_f32(pv->final_norm, bb->final_norm, C);
    for (int l = 0; l < e->n_layers; l++) {
        ce_layer *L = &pv->L[l];
        const pn_bb_layer *ly = &bb->layers[l];
        const pn_block *m = L->m;
        put_f32(L->in_norm, ly->in_norm, C);
        put_f32(L->post_norm, ly->post_norm, C);
        put_bf16(L->w_gu, ly->gate, I * C);
        put_bf16(L->w_gu + I * C, ly->up, I * C);
        put_bf16(L->w_down, ly->down, C * I);
        if (is_attn(L)) {
            const int64_t QD = L->QD, KD = L->KD;
            put_bf16(L->w_qkv, param(m, "q_proj.weight", QD * C), QD * C);
            put_bf16(L->w_qkv + QD * C, param(m, "k_proj.weight", KD * C), KD * C);
            put_bf16(L->w_qkv + (QD + KD) * C, param(m, "v_proj.weight", KD * C), KD * C);
            if (L->b_qkv) {
                put_bf16(L->b_qkv, param(m, "q_proj.bias", QD), QD);
                put_bf16(L->b_qkv + QD, param(m, "k_proj.bias", KD), KD);
                put_bf16(L->b_qkv + QD + KD, param(m, "v_proj.bias", KD), KD);
            }
            put_bf16(L->w_o, param(m, "o_proj.weight", C * QD), C * QD);
            if (L->b_o) put_bf16(L->b_o, param(m, "o_proj.bias", C), C);
            if (L->qn) put_f32(L->qn, param(m, "q_norm.weight", L->D), L->D);
            if (L->kn) put_f32(L->kn, param(m, "k_norm.weight", L->D), L->D);
            // inv_freq exactly as the CPU op forms it (kernels/cpu/ops_rope.c).
            float *inv = pn_malloc((size_t)(L->D / 2) * sizeof(float));
            for (int i = 0; i < L->D / 2; i++) inv[i] = 1.0f / powf(m->cfg.rope_theta, (float)(2 * i) / (float)L->D);
            put_f32(L->inv_freq, inv, L->D / 2);
            free(inv);
            continue;
        }
        if (L->kind == CE_GLA) {
            upload_gla(L, C);
            continue;
        }
        if (L->kind == CE_RWKV) {
            upload_rwkv(L, C);
            continue;
        }
        const int64_t HK = L->HK, HV = L->HV, H = L->dH, W = L->dW;
        put_bf16(L->w_proj + (int64_t)L->q_off * C, param(m, "q_proj.weight", HK * C), HK * C);
        put_bf16(L->w_proj + (int64_t)L->k_off * C, param(m, "k_proj.weight", HK * C), HK * C);
        put_bf16(L->w_proj + (int64_t)L->v_off * C, param(m, "v_proj.weight", HV * C), HV * C);
        if (L->gated) put_bf16(L->w_proj + (int64_t)L->g_off * C, param(m, "g_proj.weight", HV * C), HV * C);
        if (L->has_a) put_bf16(L->w_proj + (int64_t)L->a_off * C, param(m, "a_proj.weight", H * C), H * C);
        put_bf16(L->w_proj + (int64_t)L->b_off * C, param(m, "b_proj.weight", H * C), H * C);
        if (L->jet) {
            const int64_t R = L->R;
            put_bf16(L->w_proj + (int64_t)L->w1_off * C, param(m, "dynamic_conv1d.kernel_generator.w1.weight", R * C),
                     R * C);
            put_bf16(L->w2, param(m, "dynamic_conv1d.kernel_generator.w2.weight", HV * W * R), HV * W * R);
            put_f32(L->b2, param(m, "dynamic_conv1d.kernel_generator.w2.bias", HV * W), HV * W);
        } else {
            put_f32(L->q_conv, param(m, "q_conv1d.weight", HK * W), HK * W);
            put_f32(L->k_conv, param(m, "k_conv1d.weight", HK * W), HK * W);
            put_f32(L->v_conv, param(m, "v_conv1d.weight", HV * W), HV * W);
        }
        if (L->has_a) {
            put_f32(L->A_log, param(m, "A_log", H), H);
            put_f32(L->dt_bias, param(m, "dt_bias", H), H);
        }
        put_f32(L->o_norm, param(m, "o_norm.weight", L->dV), L->dV);
        put_bf16(L->w_o, param(m, "o_proj.weight", C * HV), C * HV);
    }
}

// Runs the rest of a public call on the engine's stream.
static void *stream_enter(const pn_cuda_engine *e) {
    void *prev = pn_cuda_stream_get();
    pn_cuda_stream_set(e->p->stream);
    return prev;
}
static void stream_leave(void *prev) { pn_cuda_stream_set(prev); }

pn_cuda_engine *pn_cuda_engine_create(const pn_backbone *bb, int batch, int64_t max_context, int chunk,
                                      int prefill_batch) {
    if (batch < 1 || max_context < 1 || chunk < 1 || prefill_batch < 1)
        pn_die_input(CE_WHERE, "batch, max_context, prefill chunk and prefill batch must be >= 1 (got %d, %lld, %d, %d)",
                     batch, (long long)max_context, chunk, prefill_batch);
    char why[256];
    if (!pn_cuda_engine_supports(bb, why, sizeof why)) pn_die_input(bb->dir[0] ? bb->dir : CE_WHERE, "%s", why);
    if (pn_cuda_device_count() < 1) {
        fprintf(stderr, "postnas: device error: %s: no CUDA device is visible\n", CE_WHERE);
        exit(PN_EXIT_DEVICE);
    }
    pn_cuda_engine *e = pn_calloc(1, sizeof *e);
    struct ce_priv *pv = pn_calloc(1, sizeof *pv);
    e->p = pv;
    e->bb = bb;
    e->B = batch;
    e->max_context = max_context;
    e->n_layers = bb->n_layers;
    e->C = bb->C, e->I = bb->I, e->V = bb->V;
    e->use_graph = pn_cuda_eng_graphs_supported();
    e->delta_chunked = 1;
    e->act_split = 1;
    ce_plan pl;
    plan_make(&pl, bb, batch, max_context, chunk, prefill_batch);
    e->chunk = pl.chunk;
    e->prefill_batch = pl.P;
    e->bytes = plan_bytes(&pl);
    pv->L = pl.L;  // the layers (dims) now belong to the engine
    pv->stream = pn_cuda_eng_stream_create();
    void *prev = stream_enter(e);

    ce_carve w = {NULL, 0}, s = {NULL, 0}, a = {NULL, 0};
    layout_weights(&pl, NULL, &w);
    pv->wbuf = pn_cuda_alloc(PN_CUDA_MEM_WEIGHTS, w.off);
    w.base = pv->wbuf, w.off = 0;
    layout_weights(&pl, pv, &w);
    upload_weights(e);

    layout_states(&pl, &s);
    pv->sbuf = pn_cuda_alloc(PN_CUDA_MEM_ACTS, s.off);  // decode states live as long as activations
    s.base = pv->sbuf, s.off = 0;
    layout_states(&pl, &s);

    const size_t mixb = mix_bytes_of(&pl);
    layout_acts(&pl, NULL, NULL, mixb, &a);
    pv->abuf = pn_cuda_alloc(PN_CUDA_MEM_ACTS, a.off);
    a.base = pv->abuf, a.off = 0;
    layout_acts(&pl, pv, &e->logits, mixb, &a);
    pn_cuda_memset(pv->abuf, 0, a.off);
    pn_cuda_eng_pos_set(pv->pos, 0);
    pn_cuda_sync();
    stream_leave(prev);
    pn_debug("cuda engine: batch %d, context %lld, chunk %d x %d seqs: weights %.1f MiB, states %.1f MiB, "
             "activations %.1f MiB, transient %.1f MiB",
             batch, (long long)max_context, e->chunk, e->prefill_batch, e->bytes.weights / 1048576.0,
             e->bytes.states / 1048576.0, e->bytes.acts / 1048576.0, e->bytes.transient / 1048576.0);
    return e;
}

void pn_cuda_engine_free(pn_cuda_engine *e) {
    if (!e) return;
    struct ce_priv *pv = e->p;
    void *prev = stream_enter(e);
    pn_cuda_sync();
    pn_cuda_eng_graph_destroy(pv->graph);
    pn_cuda_free(pv->wbuf);
    pn_cuda_free(pv->sbuf);
    pn_cuda_free(pv->abuf);
    stream_leave(prev);
    pn_cuda_eng_stream_destroy(pv->stream);
    free(pv->L);
    free(pv);
    free(e);
}

void pn_cuda_engine_reset(pn_cuda_engine *e) { e->pos = 0; }

size_t pn_cuda_engine_state_bytes(const pn_cuda_engine *e) { return e->bytes.states; }

void *pn_cuda_engine_stream(const pn_cuda_engine *e) { return e->p->stream; }

void pn_cuda_engine_poison(pn_cuda_engine *e) {
    void *prev = stream_enter(e);
    pn_cuda_memset(e->p->sbuf, 0xFF, e->bytes.states);
    pn_cuda_memset(e->p->abuf, 0xFF, e->bytes.acts);
    pn_cuda_eng_pos_set(e->p->pos, e->pos);  // the position lives in the activations
    pn_cuda_sync();
    stream_leave(prev);
}

void pn_cuda_engine_sync(const pn_cuda_engine *e) {
    void *prev = stream_enter(e);
    pn_cuda_sync();
    stream_leave(prev);
}

// ---------------------------------------------------------------- passes

static void mix_carve(const pn_cuda_engine *e, const ce_layer *L, int nb, int T, int decode, ce_mix *m) {
    ce_plan pl = {e->bb, e->B, e->chunk, e->prefill_batch, e->max_context, e->p->L};
    ce_carve c = {e->p->mix, 0};
    layout_mix(&pl, L, nb, T, decode, &c, m);
    PN_ASSERT(c.off <= e->p->mix_bytes);
}

// The low plane of a split GEMM input when the engine runs split (else NULL: the
// producer kernels then skip writing it).
static pn_bf16 *lo_of(const pn_cuda_engine *e, pn_bf16 *lo) { return e->act_split ? lo : NULL; }

// y (N, n) fp32 = beta·y + (a + a_lo) (N, K) · w (n, K)ᵀ [+ bias]: one GEMM per plane,
// both accumulating in fp32 (the second with beta = 1), so the product carries the
// fp32 activation rather than its bf16 rounding. a_lo NULL: the hi plane alone.
static void gemm_split(float *y, const pn_bf16 *a, const pn_bf16 *a_lo, const pn_bf16 *w, const pn_bf16 *bias,
                       int64_t N, int K, int n, float beta) {
    pn_cuda_gemm(0, 1, N, n, K, 1.0f, a, K, w, K, beta, y, PN_CUDA_F32, n, bias);
    if (a_lo) pn_cuda_gemm(0, 1, N, n, K, 1.0f, a_lo, K, w, K, 1.0f, y, PN_CUDA_F32, n, NULL);
}

// x (N, C) += (a [+ a_lo]) (N, K) · w (C, K)ᵀ [+ bias]
static void gemm_into_x(pn_cuda_engine *e, const pn_bf16 *a, const pn_bf16 *a_lo, const pn_bf16 *w,
                        const pn_bf16 *bias, int64_t N, int K) {
    gemm_split(e->p->x, a, lo_of(e, (pn_bf16 *)a_lo), w, bias, N, K, e->C, 1.0f);
}

static void attn_prefill_call(int nb, int Tq, int Tk, const ce_layer *L, const pn_bf16 *q, const pn_bf16 *k,
                              const pn_bf16 *v, int64_t kv_stride, pn_bf16 *o) {
#ifdef CE_HAVE_CUDNN_ATTN
    pn_cuda_attn_fwd(nb, Tq, Tk, L->H, L->Hkv, L->D, L->window, L->scale, q, k, v, kv_stride, o, NULL);
#else
    pn_cuda_eng_attn_fwd_simple(nb, Tq, Tk, L->H, L->Hkv, L->D, L->window, L->scale, q, k, v, kv_stride, o);
#endif
}

static void mixer_attn(pn_cuda_engine *e, const ce_layer *L, int b0, int nb, int T, int decode) {
    struct ce_priv *pv = e->p;
    ce_mix m;
    mix_carve(e, L, nb, T, decode, &m);
    const int64_t N = (int64_t)nb * T, QKV = L->QD + 2 * L->KD, seq = L->Lc * L->KD;
    gemm_split(m.qkv, pv->xn, lo_of(e, pv->xn_lo), L->w_qkv, NULL, N, e->C, (int)QKV, 0.0f);
    pn_bf16 *kc = L->kc + (int64_t)b0 * seq, *vc = L->vc + (int64_t)b0 * seq;
    if (decode) {
        pn_cuda_eng_qkv_rope(m.q, kc, vc, m.qkv, QKV, L->b_qkv, L->qn, L->kn, L->qk_eps, L->inv_freq, pv->pos, nb, 1,
                             L->H, L->Hkv, L->D, L->Lc, 1);
        pn_cuda_eng_attn_decode(m.o, m.q, kc, vc, pv->pos, nb, L->H, L->Hkv, L->D, L->Lc, L->part_len, L->n_parts,
                                L->scale, m.part_o, m.part_ml);
    } else if (L->kind == CE_ATTN) {
        pn_cuda_eng_qkv_rope(m.q, kc, vc, m.qkv, QKV, L->b_qkv, L->qn, L->kn, L->qk_eps, L->inv_freq, pv->pos, nb, T,
                             L->H, L->Hkv, L->D, L->Lc, 1);
        attn_prefill_call(nb, T, (int)(e->pos + T), L, m.q, kc, vc, seq, m.o);
    } else {
        pn_cuda_eng_qkv_rope(m.q, m.knew, m.vnew, m.qkv, QKV, L->b_qkv, L->qn, L->kn, L->qk_eps, L->inv_freq, pv->pos,
                             nb, T, L->H, L->Hkv, L->D, L->Lc, 0);
        const int64_t pos = e->pos, kpos0 = PN_MAX((int64_t)0, pos - L->window + 1);
        if (pos == 0) {
            attn_prefill_call(nb, T, T, L, m.q, m.knew, m.vnew, 0, m.o);
        } else {
            pn_cuda_eng_swa_gather(m.kg, m.vg, kc, vc, m.knew, m.vnew, pos, kpos0, nb, T, L->Hkv, L->D, L->Lc);
            attn_prefill_call(nb, T, (int)(pos + T - kpos0), L, m.q, m.kg, m.vg, 0, m.o);
        }
        pn_cuda_eng_kv_append(kc, vc, m.knew, m.vnew, pv->pos, nb, T, L->Hkv, L->D, L->Lc);
    }
    gemm_into_x(e, m.o, NULL, L->w_o, L->b_o, N, L->QD);
}

static void mixer_delta(pn_cuda_engine *e, const ce_layer *L, int b0, int nb, int T, int decode) {
    struct ce_priv *pv = e->p;
    ce_mix m;
    mix_carve(e, L, nb, T, decode, &m);
    const int64_t N = (int64_t)nb * T, Np = L->Np, W = L->dW;
    gemm_split(m.proj, pv->xn, lo_of(e, pv->xn_lo), L->w_proj, NULL, N, e->C, (int)Np, 0.0f);
    if (L->jet) {
        pn_cuda_eng_act_rows(m.h1s, PN_CUDA_BF16, m.proj + L->w1_off, Np, N, L->R, 1);
        pn_cuda_linear_fwd(m.kern, PN_CUDA_F32, m.h1s, L->w2, NULL, N, L->R, (int)(L->HV * W));
    }
    float *S = L->S + (int64_t)b0 * L->dH * L->dK * L->dV;
    float *qr = L->q_ring ? L->q_ring + (int64_t)b0 * W * L->HK : NULL;
    float *kr = L->k_ring ? L->k_ring + (int64_t)b0 * W * L->HK : NULL;
    float *vr = L->v_ring + (int64_t)b0 * W * L->HV;
    pn_cuda_delta_step_args a = {
        .proj = m.proj, .ld = Np, .q_off = L->q_off, .k_off = L->k_off, .v_off = L->v_off, .a_off = L->a_off,
        .b_off = L->b_off, .q_conv = L->q_conv, .k_conv = L->k_conv, .v_conv = L->v_conv,
        .v_kern = L->jet ? m.kern : NULL, .kern_ld = L->HV * W, .v_kern_bias = L->b2, .q_ring = qr, .k_ring = kr,
        .v_ring = vr, .A_log = L->A_log, .dt_bias = L->dt_bias, .S = S, .o = m.od, .pos = pv->pos, .H = L->dH,
        .K = L->dK, .V = L->dV, .W = (int)W, .T = T, .ring_write = decode, .scale = L->scale};
    if (decode || !e->delta_chunked) {
        // The fused scan: one token in decode, the whole chunk in prefill.
        pn_cuda_eng_delta_step(&a, nb);
    } else {
        // Chunked: q, k, v materialised (bf16), gates, then the WY/UT chunked kernel.
        if (L->jet) {
            pn_cuda_eng_act_rows(m.dq, PN_CUDA_BF16, m.proj + L->q_off, Np, N, L->HK, 1);
            pn_cuda_eng_act_rows(m.dk, PN_CUDA_BF16, m.proj + L->k_off, Np, N, L->HK, 1);
            pn_cuda_eng_conv_rows(m.dv, PN_CUDA_BF16, m.proj + L->v_off, Np, NULL, m.kern, L->HV * W, L->b2, NULL, vr,
                                  pv->pos, nb, T, L->HV, (int)W, 1);
        } else {
            pn_cuda_eng_conv_rows(m.dq, PN_CUDA_BF16, m.proj + L->q_off, Np, L->q_conv, NULL, 0, NULL, NULL, qr,
                                  pv->pos, nb, T, L->HK, (int)W, 1);
            pn_cuda_eng_conv_rows(m.dk, PN_CUDA_BF16, m.proj + L->k_off, Np, L->k_conv, NULL, 0, NULL, NULL, kr,
                                  pv->pos, nb, T, L->HK, (int)W, 1);
            pn_cuda_eng_conv_rows(m.dv, PN_CUDA_BF16, m.proj + L->v_off, Np, L->v_conv, NULL, 0, NULL, NULL, vr,
                                  pv->pos, nb, T, L->HV, (int)W, 1);
        }
        pn_cuda_eng_delta_gates(m.beta, m.g, m.proj, Np, L->b_off, L->a_off, L->A_log, L->dt_bias, N, L->dH);
        pn_cuda_gated_delta_fwd_fast(nb, T, L->dH, L->dK, L->dV, L->scale, 1, m.dq, m.dk, m.dv, m.g, m.beta,
                                     e->pos == 0 ? NULL : S, m.od, PN_CUDA_F32, S);
    }
    if (!decode) {  // after every reader of the old rows
        if (qr) pn_cuda_eng_ring_update(qr, m.proj + L->q_off, Np, pv->pos, nb, T, L->HK, (int)W);
        if (kr) pn_cuda_eng_ring_update(kr, m.proj + L->k_off, Np, pv->pos, nb, T, L->HK, (int)W);
        pn_cuda_eng_ring_update(vr, m.proj + L->v_off, Np, pv->pos, nb, T, L->HV, (int)W);
    }
    pn_cuda_eng_gated_rmsnorm(m.on, lo_of(e, m.on_lo), m.od, L->o_norm, L->gated ? m.proj + L->g_off : NULL, Np, N,
                              L->dH, L->dV, L->norm_eps);
    gemm_into_x(e, m.on, m.on_lo, L->w_o, NULL, N, (int)L->HV);
}

static void mixer_gla(pn_cuda_engine *e, const ce_layer *L, int b0, int nb, int T, int decode) {
    struct ce_priv *pv = e->p;
    ce_mix m;
    mix_carve(e, L, nb, T, decode, &m);
    const int64_t N = (int64_t)nb * T, Np = L->Np;
    gemm_split(m.proj, pv->xn, lo_of(e, pv->xn_lo), L->w_proj, NULL, N, e->C, (int)Np, 0.0f);
    pn_cuda_gla_scan_args a = {.qk_hpg = 1, .decay = L->gkind, .S = L->S + (int64_t)b0 * L->dH * L->dK * L->dV,
                               .o = m.od, .pos = pv->pos, .H = L->dH, .K = L->dK, .V = L->dV, .T = T,
                               .scale = L->scale, .q_off = L->q_off, .k_off = L->k_off, .v_off = L->v_off};
    if (L->gkind == PN_CUDA_DECAY_MAMBA2) {
        float *ring = L->v_ring + (int64_t)b0 * L->dW * L->Dc;
        pn_cuda_eng_conv_rows(m.xs, PN_CUDA_F32, m.proj + L->E, Np, L->v_conv, NULL, 0, NULL, L->conv_b, ring, pv->pos,
                              nb, T, L->Dc, L->dW, 1);
        pn_cuda_eng_ring_update(ring, m.proj + L->E, Np, pv->pos, nb, T, L->Dc, L->dW);
        a.src = m.xs, a.ld = L->Dc, a.qk_hpg = L->dH / L->G;
        a.dt = m.proj + L->dt_off, a.dt_ld = Np, a.dt_bias = L->dt_bias, a.A_log = L->A_log, a.Dskip = L->Dskip;
        pn_cuda_eng_gla_scan(&a, nb);
        pn_cuda_eng_gate_rmsnorm_groups(m.on, m.od, m.proj + L->g_off, Np, L->o_norm, N, L->G, L->E / L->G,
                                        L->norm_eps);
    } else {
        a.src = m.proj, a.ld = Np;
        if (L->gkind == PN_CUDA_DECAY_GLA) {
            pn_cuda_eng_act_rows(m.lr, PN_CUDA_BF16, m.proj + L->lr_off, Np, N, 16, 0);
            pn_cuda_linear_fwd(m.gk, PN_CUDA_F32, m.lr, L->w_gk1, NULL, N, 16, (int)L->HK);
            a.gk = m.gk, a.gk_ld = L->HK, a.gk_bias = L->gk_bias;
        } else {
            a.inv_freq = L->inv_freq;
        }
        pn_cuda_eng_gla_scan(&a, nb);
        pn_cuda_eng_gated_rmsnorm(m.on, lo_of(e, m.on_lo), m.od, L->o_norm, m.proj + L->g_off, Np, N, L->dH, L->dV,
                                  L->norm_eps);
    }
    gemm_into_x(e, m.on, m.on_lo, L->w_o, NULL, N, (int)L->HV);
}

// y (N, n) = a (N, K) · w (n, K)ᵀ with a at row stride lda, fp32 out.
static void gemm_f32(float *y, const pn_bf16 *a, int64_t lda, const pn_bf16 *w, int64_t N, int K, int n) {
    pn_cuda_gemm(0, 1, N, n, K, 1.0f, a, lda, w, K, 0.0f, y, PN_CUDA_F32, n, NULL);
}

// A LoRA: out (N, C) fp32 = act(x · w0ᵀ) · w2ᵀ (the second stage's bias is added later).
static void rwkv_lora(ce_mix *m, float *out, const pn_bf16 *x, int64_t ldx, const pn_bf16 *w0, const pn_bf16 *w2,
                      int64_t N, int C, int rank, int act) {
    gemm_f32(m->lo_f, x, ldx, w0, N, C, rank);
    pn_cuda_eng_act_rows(m->lo_b, PN_CUDA_BF16, m->lo_f, rank, N, rank, act);
    gemm_f32(out, m->lo_b, rank, w2, N, rank, C);
}

// rwkv7. *vfirst_set: a first rwkv7 layer already ran in this pass (pv->vfirst holds its v).
static void mixer_rwkv(pn_cuda_engine *e, const ce_layer *L, int b0, int nb, int T, int decode, int *vfirst_set) {
    struct ce_priv *pv = e->p;
    ce_mix m;
    mix_carve(e, L, nb, T, decode, &m);
    const int C = (int)L->HK;
    const int64_t N = (int64_t)nb * T, C6 = 6 * (int64_t)C;
    const int first = L->first_rwkv || !*vfirst_set;
    float *prev = L->xprev + (int64_t)b0 * C;
    pn_cuda_eng_rwkv_shift(m.xt6, pv->xn, prev, L->mu, pv->pos, nb, T, C);
    pn_cuda_eng_rwkv_prev_update(prev, pv->xn, nb, T, C);
    const pn_bf16 *xr = m.xt6, *xw = m.xt6 + C, *xk = m.xt6 + 2 * C, *xv = m.xt6 + 3 * C, *xa = m.xt6 + 4 * C,
                  *xg = m.xt6 + 5 * C;
    gemm_f32(m.r, xr, C6, L->w_r, N, C, C);
    rwkv_lora(&m, m.w, xw, C6, L->w_w0, L->w_w2, N, C, L->lw, 3);
    gemm_f32(m.k, xk, C6, L->w_k, N, C, C);
    gemm_f32(m.v, xv, C6, L->w_v, N, C, C);
    if (!first) rwkv_lora(&m, m.b, xv, C6, L->w_v0, L->w_v2, N, C, L->lv, 0);
    rwkv_lora(&m, m.a, xa, C6, L->w_a0, L->w_a2, N, C, L->la, 0);
    rwkv_lora(&m, m.g, xg, C6, L->w_g0, L->w_g2, N, C, L->lg, 2);
    pn_cuda_eng_rwkv_prep(m.w, L->b_w2, m.k, L->k_k, L->k_a, m.a, L->b_a2, m.v, pv->vfirst, m.b, L->b_v2, first, N,
                          L->dH, L->dK);
    if (first) *vfirst_set = 1;
    pn_cuda_dplr_scan_args a = {m.r, m.w, m.k, m.v, m.a, m.b, L->S + (int64_t)b0 * L->dH * L->dK * L->dK, m.od,
                                pv->pos, L->dH, L->dK, T};
    pn_cuda_eng_dplr_scan(&a, nb);
    pn_cuda_eng_rwkv_out(m.on, m.od, m.r, m.k, m.v, m.g, L->r_k, L->gn_w, L->gn_b, (float)L->dK * L->norm_eps, N,
                         L->dH, L->dK);
    gemm_into_x(e, m.on, NULL, L->w_o, NULL, N, C);
}

// The decoder over the N = nb·T rows already embedded in x: every layer, the MLPs.
static void layers_run(pn_cuda_engine *e, int b0, int nb, int T, int decode) {
    struct ce_priv *pv = e->p;
    const int64_t N = (int64_t)nb * T;
    const int C = e->C, I = e->I;
    const float eps = (float)e->bb->cfg.rms_norm_eps;
    int vfirst_set = 0;  // rwkv7's value residual starts over with every pass
    for (int l = 0; l < e->n_layers; l++) {
        const ce_layer *L = &pv->L[l];
        if (e->bb->layers[l].mixer != L->m)
            pn_die_internal(__FILE__, __LINE__, "layer %d's mixer changed after the CUDA engine was created", l);
        pn_cuda_eng_rmsnorm(pv->xn, lo_of(e, pv->xn_lo), pv->x, C, L->in_norm, N, C, eps);
        if (L->kind == CE_DELTA)
            mixer_delta(e, L, b0, nb, T, decode);
        else if (L->kind == CE_GLA)
            mixer_gla(e, L, b0, nb, T, decode);
        else if (L->kind == CE_RWKV)
            mixer_rwkv(e, L, b0, nb, T, decode, &vfirst_set);
        else
            mixer_attn(e, L, b0, nb, T, decode);
        pn_cuda_eng_rmsnorm(pv->xn, lo_of(e, pv->xn_lo), pv->x, C, L->post_norm, N, C, eps);
        gemm_split(pv->gu, pv->xn, lo_of(e, pv->xn_lo), L->w_gu, NULL, N, C, 2 * I, 0.0f);  // fp32: no rounding before SwiGLU
        pn_cuda_eng_swiglu(pv->hmid, lo_of(e, pv->hmid_lo), pv->gu, N, I);
        gemm_into_x(e, pv->hmid, pv->hmid_lo, L->w_down, NULL, N, I);
    }
}

// Final norm of each sequence's last row and the LM head into logits rows b0..b0+nb.
static void head_run(pn_cuda_engine *e, int b0, int nb, int T) {
    struct ce_priv *pv = e->p;
    const int C = e->C;
    pn_cuda_eng_rmsnorm(pv->xl, NULL, pv->x + (int64_t)(T - 1) * C, (int64_t)T * C, pv->final_norm, nb, C,
                        (float)e->bb->cfg.rms_norm_eps);
    pn_cuda_gemm(0, 1, nb, e->V, C, 1.0f, pv->xl, C, pv->lm, C, 0.0f, e->logits + (int64_t)b0 * e->V, PN_CUDA_F32,
                 e->V, NULL);
}

static void decode_enqueue(pn_cuda_engine *e) {
    struct ce_priv *pv = e->p;
    pn_cuda_eng_embed(pv->x, pv->ids, pv->embed, e->B, e->C);
    layers_run(e, 0, e->B, 1, 1);
    head_run(e, 0, e->B, 1);
    pn_cuda_eng_argmax(pv->next, e->logits, e->B, e->V);
    pn_cuda_eng_pos_add(pv->pos, 1);
}

static void check_room(const pn_cuda_engine *e, int64_t T) {
    if (e->pos + T > e->max_context)
        pn_die_input(CE_WHERE, "position %lld + %lld new tokens exceeds the engine's max_context %lld",
                     (long long)e->pos, (long long)T, (long long)e->max_context);
}

static void check_id(const pn_cuda_engine *e, int64_t id, int b, int64_t t) {
    if (id < 0 || id >= e->V)
        pn_die_input(CE_WHERE, "token id %lld of sequence %d at position %lld is outside the vocabulary [0, %d)",
                     (long long)id, b, (long long)t, e->V);
}

// Prefill of sequences [0, n) in groups of prefill_batch, chunk by chunk.
static const float *prefill_seqs(pn_cuda_engine *e, int n, const int64_t *ids, int T) {
    if (T < 1)
        pn_die_input(CE_WHERE, "prefill of %d tokens at position %lld: need at least one token", T, (long long)e->pos);
    check_room(e, T);
    for (int b = 0; b < n; b++)
        for (int t = 0; t < T; t++) check_id(e, ids[(int64_t)b * T + t], b, e->pos + t);
    struct ce_priv *pv = e->p;
    void *prev = stream_enter(e);
    const int64_t pos0 = e->pos;
    int64_t *buf = pn_malloc((size_t)e->prefill_batch * e->chunk * sizeof(int64_t));
    for (int b0 = 0; b0 < n; b0 += e->prefill_batch) {
        const int nb = PN_MIN(e->prefill_batch, n - b0);
        for (int t0 = 0; t0 < T; t0 += e->chunk) {
            const int Tc = PN_MIN(e->chunk, T - t0);
            // A pass of another shape would take new blocks for the ops' scratch beside
            // the cached ones: give those back first, so the accounting's one set holds.
            if (pv->last_nb && (pv->last_nb != nb || pv->last_tc != Tc)) {
                pn_cuda_sync();
                pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
            }
            pv->last_nb = nb, pv->last_tc = Tc;
            for (int b = 0; b < nb; b++)
                memcpy(buf + (int64_t)b * Tc, ids + (int64_t)(b0 + b) * T + t0, (size_t)Tc * sizeof(int64_t));
            pn_cuda_eng_upload_async(pv->ids, buf, (size_t)nb * Tc * sizeof(int64_t));
            e->pos = pos0 + t0;
            pn_cuda_eng_pos_set(pv->pos, e->pos);
            pn_cuda_eng_embed(pv->x, pv->ids, pv->embed, (int64_t)nb * Tc, e->C);
            layers_run(e, b0, nb, Tc, 0);
            if (t0 + Tc == T) head_run(e, b0, nb, Tc);
            pn_cuda_sync();  // the staged ids buffer is reused by the next pass
        }
    }
    free(buf);
    e->pos = pos0 + T;
    pn_cuda_eng_pos_set(pv->pos, e->pos);
    pn_cuda_sync();
    stream_leave(prev);
    return e->logits;
}

const float *pn_cuda_engine_prefill(pn_cuda_engine *e, const int64_t *ids, int T) {
    return prefill_seqs(e, e->B, ids, T);
}

const float *pn_cuda_engine_prefill_first(pn_cuda_engine *e, int n, const int64_t *ids, int T) {
    if (n < 1 || n > e->B) pn_die_input(CE_WHERE, "prefill of the first %d sequences of a batch of %d", n, e->B);
    return prefill_seqs(e, n, ids, T);
}

// Copies sequences [0, n) over [n, B) of one per-sequence array, doubling the copied span.
static void replicate_array(void *base, size_t per_seq, int n, int B) {
    if (!base || !per_seq) return;
    char *p = base;
    int have = n;
    while (have < B) {
        const int cnt = PN_MIN(have, B - have);
        pn_cuda_copy(p + (size_t)have * per_seq, p, (size_t)cnt * per_seq);
        have += cnt;
    }
}

void pn_cuda_engine_replicate(pn_cuda_engine *e, int n) {
    if (n < 1 || n > e->B) pn_die_input(CE_WHERE, "replicate the first %d sequences of a batch of %d", n, e->B);
    if (n == e->B) return;
    void *prev = stream_enter(e);
    for (int l = 0; l < e->n_layers; l++) {
        const ce_layer *L = &e->p->L[l];
        if (is_attn(L)) {
            replicate_array(L->kc, sz_bf(L->Lc * L->KD), n, e->B);
            replicate_array(L->vc, sz_bf(L->Lc * L->KD), n, e->B);
        } else if (L->kind == CE_GLA) {
            replicate_array(L->S, sz_f((int64_t)L->dH * L->dK * L->dV), n, e->B);
            replicate_array(L->v_ring, sz_f((int64_t)L->dW * L->Dc), n, e->B);
        } else if (L->kind == CE_RWKV) {
            replicate_array(L->S, sz_f((int64_t)L->dH * L->dK * L->dV), n, e->B);
            replicate_array(L->xprev, sz_f(L->HK), n, e->B);
        } else {
            replicate_array(L->S, sz_f((int64_t)L->dH * L->dK * L->dV), n, e->B);
            replicate_array(L->q_ring, sz_f((int64_t)L->dW * L->HK), n, e->B);
            replicate_array(L->k_ring, sz_f((int64_t)L->dW * L->HK), n, e->B);
            replicate_array(L->v_ring, sz_f((int64_t)L->dW * L->HV), n, e->B);
        }
    }
    replicate_array(e->logits, sz_f(e->V), n, e->B);
    pn_cuda_sync();
    stream_leave(prev);
}

const float *pn_cuda_engine_decode(pn_cuda_engine *e, const int64_t *next_ids) {
    check_room(e, 1);
    for (int b = 0; b < e->B; b++) check_id(e, next_ids[b], b, e->pos);
    struct ce_priv *pv = e->p;
    void *prev = stream_enter(e);
    pn_cuda_eng_upload_async(pv->ids, next_ids, (size_t)e->B * sizeof(int64_t));
    if (e->use_graph && !pv->graph_failed) {
        if (!pv->graph) {
            pn_cuda_eng_graph_begin();
            decode_enqueue(e);
            pv->graph = pn_cuda_eng_graph_end();
            pn_debug("cuda engine: decode step captured as a CUDA graph");
        }
        pn_cuda_eng_graph_launch(pv->graph);
    } else {
        decode_enqueue(e);
    }
    e->pos += 1;
    stream_leave(prev);
    return e->logits;
}

void pn_cuda_engine_logits_get(const pn_cuda_engine *e, float *host) {
    void *prev = stream_enter(e);
    pn_cuda_download(host, e->logits, sz_f((int64_t)e->B * e->V));
    stream_leave(prev);
}

int pn_cuda_engine_generate_greedy(pn_cuda_engine *e, const int64_t *prompt, int T, int max_new,
                                   const int64_t *stop_ids, int n_stop, int64_t *out, int *out_len) {
    const int B = e->B;
    PN_ASSERT(max_new >= 0 && n_stop >= 0);
    for (int b = 0; b < B; b++) {
        out_len[b] = 0;
        for (int i = 0; i < max_new; i++) out[(int64_t)b * max_new + i] = -1;
    }
    pn_cuda_engine_reset(e);
    if (max_new == 0) return 0;
    if ((int64_t)T + max_new - 1 > e->max_context)
        pn_die_input(CE_WHERE, "prompt of %d tokens + %d new tokens needs a context of %lld, max_context is %lld", T,
                     max_new, (long long)T + max_new - 1, (long long)e->max_context);
    int64_t *tok = pn_malloc((size_t)B * sizeof(int64_t)), *next = pn_malloc((size_t)B * sizeof(int64_t));
    int *done = pn_calloc((size_t)B, sizeof(int));
    pn_cuda_engine_prefill(e, prompt, T);
    void *prev = stream_enter(e);
    pn_cuda_eng_argmax(e->p->next, e->logits, B, e->V);
    stream_leave(prev);
    int longest = 0;
    for (int step = 0; step < max_new; step++) {
        prev = stream_enter(e);
        pn_cuda_download(tok, e->p->next, (size_t)B * sizeof(int64_t));
        stream_leave(prev);
        int live = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;  // keeps feeding its last token as padding
            out[(int64_t)b * max_new + step] = tok[b];
            out_len[b] = step + 1;
            next[b] = tok[b];
            for (int s = 0; s < n_stop; s++)
                if (stop_ids[s] == tok[b]) done[b] = 1;
            live += !done[b];
        }
        longest = step + 1;
        if (!live || step + 1 == max_new) break;
        pn_cuda_engine_decode(e, next);
    }
    free(tok);
    free(next);
    free(done);
    return longest;
}

// ---------------------------------------------------------------- traffic

pn_cuda_decode_traffic pn_cuda_engine_step_traffic(const pn_backbone *bb, int batch, int64_t ctx) {
    pn_cuda_decode_traffic t;
    memset(&t, 0, sizeof t);
    ce_plan pl;
    plan_make(&pl, bb, batch, ctx, 1, 1);
    ce_carve w = {NULL, 0};
    layout_weights(&pl, NULL, &w);
    const double B = batch, C = bb->C, V = bb->V;
    t.weights = (double)w.off;
    if (!bb->tied) t.weights -= 2.0 * V * C - 2.0 * B * C;  // the embedding table: only the batch's rows
    for (int l = 0; l < bb->n_layers; l++) {
        const ce_layer *L = &pl.L[l];
        if (is_attn(L)) {
            const double rows = (double)PN_MIN(L->Lc, ctx);
            t.state_read += B * rows * 2.0 * L->KD * 2.0;
            t.state_write += B * 2.0 * L->KD * 2.0;
        } else if (L->kind == CE_RWKV) {
            const double S = (double)L->dH * L->dK * L->dV * 4.0;
            t.state_read += B * (S + 4.0 * L->HK);
            t.state_write += B * (S + 4.0 * L->HK);
        } else if (L->kind == CE_GLA) {
            const double S = (double)L->dH * L->dK * L->dV * 4.0;
            const double ring = L->gkind == PN_CUDA_DECAY_MAMBA2 ? (double)L->Dc : 0.0;
            t.state_read += B * (S + ring * (L->dW - 1) * 4.0);
            t.state_write += B * (S + ring * 4.0);
        } else {
            const double S = (double)L->dH * L->dK * L->dV * 4.0;
            const double ring = (double)(L->conv_qk ? 2 * L->HK : 0) + L->HV;
            t.state_read += B * (S + ring * (L->dW - 1) * 4.0);
            t.state_write += B * (S + ring * 4.0);
        }
    }
    t.logits = B * V * 4.0;
    t.total = t.weights + t.state_read + t.state_write + t.logits;
    free(pl.L);
    return t;
}

#else
typedef int pn_engine_cuda_unused;  // CPU-only build: nothing here (ISO C wants a declaration)
#endif
