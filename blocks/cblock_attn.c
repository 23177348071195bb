// cblock_attn.c — CUDA training twins of `attn` and `swa` (blocks/attn.c, the contract
// in blocks/cblock.h): Qwen2 / Llama / Qwen3 GQA softmax attention with optional q/k/v
// and o biases, Qwen3's per-head q/k RMSNorm, rotate-half RoPE at positions 0..T−1,
// and for swa a sliding window of cfg.window keys.
//
// Forward: three bf16 GEMMs (bias epilogue) → [per-head RMSNorm] → RoPE in place →
// fused attention (cuDNN or the built-in kernel, pn_cuda_attn.h) → o_proj GEMM.
// Saved for backward (act, bf16 unless noted): q and k after norm + RoPE, v, the
// attention output o, lse (B, H, T) fp32, and with qk_norm the raw q/k projections and
// their rstd (fp32). Saving q/k/v instead of recomputing them costs ~1 projection's
// worth of memory and saves three GEMMs per backward; at the supernet's attention
// shape (C 1536, 12 + 2 heads of 128) it is 7,216 bytes per token without qk_norm.
//
// Backward: dy → bf16 → dout = dy Wo (one GEMM, written as bf16 since the attention
// backward reads bf16) → attention backward (writes bf16 dq, dk, dv) → dq, dk to fp32,
// inverse RoPE [→ RMSNorm backward] → back to bf16 → the three projection backwards add
// into dx. Weight / bias gradient GEMMs run only for non-NULL grads: the pretrained
// attention is mostly frozen, and then backward costs the dx GEMMs alone.
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock.h"
#include "kernels/cuda/pn_cuda_attn.h"
#include <math.h>

// Parameter indices in spec order (blocks/attn.c's table), −1 = absent.
typedef struct {
    int wq, bq, wk, bk, wv, bv, wo, bo, qn, kn;
} cattn_idx;

static cattn_idx cattn_index(const pn_block_cfg *c) {
    cattn_idx ix;
    int n = 0;
    ix.wq = n++;
    ix.bq = c->qkv_bias ? n++ : -1;
    ix.wk = n++;
    ix.bk = c->qkv_bias ? n++ : -1;
    ix.wv = n++;
    ix.bv = c->qkv_bias ? n++ : -1;
    ix.wo = n++;
    ix.bo = c->o_bias ? n++ : -1;
    ix.qn = c->qk_norm ? n++ : -1;
    ix.kn = c->qk_norm ? n++ : -1;
    return ix;
}

static const pn_bf16 *w16(const pn_cblock *b, int i) { return i >= 0 ? b->w16[i] : NULL; }
static float *grd(const pn_cblock *b, int i) { return i >= 0 ? b->grads[i] : NULL; }

// Saved activations. Every slice starts on a 256-byte boundary: cuDNN's fused
// attention wants aligned q/k/v/o (a misaligned pointer would silently fall back).
typedef struct {
    pn_bf16 *q, *k, *v, *o, *qraw, *kraw;
    float *lse, *qrstd, *krstd;
} cattn_act;

static size_t cattn_act_layout(const pn_block_cfg *c, int B, int T, void *base, cattn_act *a) {
    const size_t N = (size_t)B * T, QN = N * c->H * c->K, KN = N * c->H_kv * c->K;
    char *p = base;
    size_t off = 0;
    cattn_act z;
    if (!a) a = &z;
    memset(a, 0, sizeof *a);
    a->q = pn_cblock_take(p, &off, QN * sizeof(pn_bf16));
    a->k = pn_cblock_take(p, &off, KN * sizeof(pn_bf16));
    a->v = pn_cblock_take(p, &off, KN * sizeof(pn_bf16));
    a->o = pn_cblock_take(p, &off, QN * sizeof(pn_bf16));
    a->lse = pn_cblock_take(p, &off, (size_t)B * c->H * T * sizeof(float));
    if (c->qk_norm) {
        a->qraw = pn_cblock_take(p, &off, QN * sizeof(pn_bf16));
        a->kraw = pn_cblock_take(p, &off, KN * sizeof(pn_bf16));
        a->qrstd = pn_cblock_take(p, &off, N * c->H * sizeof(float));
        a->krstd = pn_cblock_take(p, &off, N * c->H_kv * sizeof(float));
    }
    return off;
}

static size_t cattn_act_bytes(const pn_block_cfg *c, int B, int T) { return cattn_act_layout(c, B, T, NULL, NULL); }

static int cattn_window(const pn_cblock *b) { return b->type->name[0] == 's' ? b->cfg.window : 0; }

static void cattn_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                          pn_cblock_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const cattn_idx ix = cattn_index(c);
    const int64_t N = (int64_t)B * T;
    const int QD = c->H * c->K, KD = c->H_kv * c->K;
    cattn_act a;
    cattn_act_layout(c, B, T, act, &a);
    if (N <= 0) return;
    pn_cuda_linear_fwd(c->qk_norm ? a.qraw : a.q, PN_CUDA_BF16, x, w16(b, ix.wq), w16(b, ix.bq), N, c->C, QD);
    pn_cuda_linear_fwd(c->qk_norm ? a.kraw : a.k, PN_CUDA_BF16, x, w16(b, ix.wk), w16(b, ix.bk), N, c->C, KD);
    pn_cuda_linear_fwd(a.v, PN_CUDA_BF16, x, w16(b, ix.wv), w16(b, ix.bv), N, c->C, KD);
    if (c->qk_norm) {
        pn_cuda_rmsnorm_fwd(a.q, a.qrstd, a.qraw, w16(b, ix.qn), N * c->H, c->K, c->norm_eps);
        pn_cuda_rmsnorm_fwd(a.k, a.krstd, a.kraw, w16(b, ix.kn), N * c->H_kv, c->K, c->norm_eps);
    }
    pn_cuda_rope_fwd(a.q, B, T, c->H, c->K, 0, c->rope_theta);
    pn_cuda_rope_fwd(a.k, B, T, c->H_kv, c->K, 0, c->rope_theta);
    pn_cuda_attn_fwd(B, T, T, c->H, c->H_kv, c->K, cattn_window(b), 1.0f / sqrtf((float)c->K), a.q, a.k, a.v, 0,
                     a.o, a.lse);
    pn_cblock_out_proj(ctx, y, a.o, w16(b, ix.wo), w16(b, ix.bo), N, QD, c->C);
}

// Inverse RoPE [and q/k RMSNorm backward] of one attention gradient: d16 (rows, D) bf16
// from the attention backward in, the projection's bf16 gradient out (in d16).
static void cattn_qk_bwd(const pn_cblock *b, pn_bf16 *d16, int B, int T, int H, const pn_bf16 *raw,
                         const float *rstd, int inorm) {
    const pn_block_cfg *c = &b->cfg;
    const int64_t n = (int64_t)B * T * H * c->K;
    float *d32 = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)n * sizeof(float));
    pn_cuda_bf16_to_f32(d32, d16, n);
    pn_cuda_rope_bwd(d32, B, T, H, c->K, 0, c->rope_theta);
    if (c->qk_norm) {
        float *draw = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)n * sizeof(float));
        pn_cuda_memset(draw, 0, (size_t)n * sizeof(float));
        pn_cuda_rmsnorm_bwd(draw, grd(b, inorm), d32, raw, w16(b, inorm), rstd, (int64_t)B * T * H, c->K);
        pn_cuda_f32_to_bf16(d16, draw, n);
        pn_cuda_free(draw);
    } else {
        pn_cuda_f32_to_bf16(d16, d32, n);
    }
    pn_cuda_free(d32);
}

static void cattn_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                           const void *act, pn_cblock_ctx *ctx) {
    (void)ctx;
    const pn_block_cfg *c = &b->cfg;
    const cattn_idx ix = cattn_index(c);
    const int64_t N = (int64_t)B * T;
    const int QD = c->H * c->K, KD = c->H_kv * c->K;
    cattn_act a;
    cattn_act_layout(c, B, T, (void *)act, &a);
    if (N <= 0) return;

    // o_proj: dout = dy · Wo written as bf16 (β = 0, the attention backward reads bf16).
    pn_bf16 *dy16 = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * c->C * sizeof(pn_bf16));
    pn_bf16 *dout = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * QD * sizeof(pn_bf16));
    pn_cuda_f32_to_bf16(dy16, dy, N * c->C);
    pn_cuda_gemm(0, 0, N, QD, c->C, 1.0f, dy16, c->C, w16(b, ix.wo), QD, 0.0f, dout, PN_CUDA_BF16, QD, NULL);
    if (grd(b, ix.wo) || grd(b, ix.bo))
        pn_cuda_linear_bwd(NULL, PN_CUDA_F32, grd(b, ix.wo), grd(b, ix.bo), dy16, a.o, w16(b, ix.wo), N, QD, c->C);
    pn_cuda_free(dy16);

    pn_bf16 *dq = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * QD * sizeof(pn_bf16));
    pn_bf16 *dk = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * KD * sizeof(pn_bf16));
    pn_bf16 *dv = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * KD * sizeof(pn_bf16));
    pn_cuda_attn_bwd(B, T, c->H, c->H_kv, c->K, cattn_window(b), 1.0f / sqrtf((float)c->K), a.q, a.k, a.v, a.o,
                     dout, a.lse, dq, dk, dv);
    pn_cuda_free(dout);
    cattn_qk_bwd(b, dq, B, T, c->H, a.qraw, a.qrstd, ix.qn);
    cattn_qk_bwd(b, dk, B, T, c->H_kv, a.kraw, a.krstd, ix.kn);

    pn_cuda_linear_bwd(dx, PN_CUDA_F32, grd(b, ix.wq), grd(b, ix.bq), dq, x, w16(b, ix.wq), N, c->C, QD);
    pn_cuda_linear_bwd(dx, PN_CUDA_F32, grd(b, ix.wk), grd(b, ix.bk), dk, x, w16(b, ix.wk), N, c->C, KD);
    pn_cuda_linear_bwd(dx, PN_CUDA_F32, grd(b, ix.wv), grd(b, ix.bv), dv, x, w16(b, ix.wv), N, c->C, KD);
    pn_cuda_free(dq);
    pn_cuda_free(dk);
    pn_cuda_free(dv);
}

const pn_cblock_type pn_cblock_attn = {
    .name = "attn",
    .act_bytes = cattn_act_bytes,
    .forward = cattn_forward,
    .backward = cattn_backward,
};

const pn_cblock_type pn_cblock_swa = {
    .name = "swa",
    .act_bytes = cattn_act_bytes,
    .forward = cattn_forward,
    .backward = cattn_backward,
};
#endif  // POSTNAS_HAVE_CUDA
