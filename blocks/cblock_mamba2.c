// cblock_mamba2.c — the CUDA training twin of blocks/mamba2.c (contract in cblock.h).
//
//   [z | xBC | dt] = x in_projᵀ  (three GEMMs on the row blocks of in_proj, so each
//   part lands contiguous), xs = silu(conv(xBC) + bias), SSD inputs q = C, k = B,
//   v = dt·x, g = dt·A (pn_cuda_m2_ssd_in_fwd), o = simple_gla (chunked; on tensor cores,
//   sgla_fast.cu, for d_state ∈ {64, 96, 128} and head dim % 32 == 0), then the gate
//   and grouped RMSNorm (pn_cuda_m2_out_fwd) and out_proj.
//
// Saved for backward (act): z, xBC, xs, yn (bf16; what GEMMs and the conv read), the raw
// dt projection, the recurrence output o and the norm's rstd (fp32). The SSD inputs
// q, k (replicated per head: H·N per token) and v are cheap to rebuild from xs and dt,
// so backward recomputes them instead of keeping them — they would be the largest
// part of act. The conv pre-activation is recomputed inside pn_cuda_conv_causal_bwd.
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock.h"
#include "kernels/cuda/pn_cuda_block_elem_mr.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include <string.h>

enum { P_IN, P_CONVW, P_CONVB, P_DTB, P_ALOG, P_D, P_NORM, P_OUT, M2_NP };

typedef struct {
    int C, E, P, H, G, Ns, W, Dc;  // Dc = E + 2·G·Ns conv channels
} m2_dims;

static m2_dims m2_dims_of(const pn_block_cfg *c) {
    m2_dims d = {c->C, c->expand * c->C, c->K, c->H, c->n_groups, c->d_state, c->conv_size, 0};
    d.Dc = d.E + 2 * d.G * d.Ns;
    return d;
}

// Per-token saved activations; every slice starts 256-byte aligned.
typedef struct {
    pn_bf16 *z, *xbc, *xs, *yn;  // (N, E), (N, Dc), (N, Dc), (N, E)
    float *dtr, *o, *rstd;       // (N, H), (N, E), (N, G)
} m2_act;

static size_t m2_act_map(const pn_block_cfg *c, int64_t N, void *base, m2_act *a) {
    m2_dims d = m2_dims_of(c);
    size_t off = 0, n = (size_t)N;
    char *p = base;
    a->z = pn_cblock_take(p, &off, n * d.E * sizeof(pn_bf16));
    a->xbc = pn_cblock_take(p, &off, n * d.Dc * sizeof(pn_bf16));
    a->xs = pn_cblock_take(p, &off, n * d.Dc * sizeof(pn_bf16));
    a->yn = pn_cblock_take(p, &off, n * d.E * sizeof(pn_bf16));
    a->dtr = pn_cblock_take(p, &off, n * d.H * sizeof(float));
    a->o = pn_cblock_take(p, &off, n * d.E * sizeof(float));
    a->rstd = pn_cblock_take(p, &off, n * d.G * sizeof(float));
    return off;
}

static size_t m2_act_bytes(const pn_block_cfg *c, int B, int T) {
    m2_act a;
    return m2_act_map(c, (int64_t)B * T, NULL, &a);
}

static float *scratch_f32(size_t n) { return pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (n ? n : 1) * sizeof(float)); }
static float *scratch_f32_zero(size_t n) {
    float *p = scratch_f32(n);
    pn_cuda_memset(p, 0, n * sizeof(float));
    return p;
}
static pn_bf16 *scratch_bf16(size_t n) { return pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (n ? n : 1) * sizeof(pn_bf16)); }

static void m2_check(const pn_cblock *b) {
    PN_ASSERT(b->n_params == M2_NP && strcmp(b->spec[P_IN].name, "in_proj.weight") == 0 &&
              strcmp(b->spec[P_OUT].name, "out_proj.weight") == 0);
    m2_dims d = m2_dims_of(&b->cfg);
    if (d.Ns > 256 || d.W > 16)
        pn_die_internal(__FILE__, __LINE__, "mamba2 on CUDA needs d_state <= 256 and conv_size <= 16 (got %d, %d)",
                        d.Ns, d.W);
}

static void m2_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                       pn_cblock_ctx *ctx) {
    m2_check(b);
    const pn_block_cfg *c = &b->cfg;
    m2_dims d = m2_dims_of(c);
    int64_t N = (int64_t)B * T;
    m2_act a;
    m2_act_map(c, N, act, &a);
    const pn_bf16 *Win = b->w16[P_IN];
    float *const *W = b->w32;

    pn_cuda_linear_fwd(a.z, PN_CUDA_BF16, x, Win, NULL, N, d.C, d.E);
    pn_cuda_linear_fwd(a.xbc, PN_CUDA_BF16, x, Win + (size_t)d.E * d.C, NULL, N, d.C, d.Dc);
    pn_cuda_linear_fwd(a.dtr, PN_CUDA_F32, x, Win + (size_t)(d.E + d.Dc) * d.C, NULL, N, d.C, d.H);
    pn_cuda_conv_causal_fwd(a.xs, PN_CUDA_BF16, a.xbc, W[P_CONVW], W[P_CONVB], NULL, B, T, d.Dc, d.W, 1);

    size_t HN = (size_t)d.H * d.Ns;
    float *g = scratch_f32((size_t)N * d.H);
    pn_bf16 *q = scratch_bf16((size_t)N * HN), *k = scratch_bf16((size_t)N * HN), *v = scratch_bf16((size_t)N * d.E);
    pn_cuda_m2_ssd_in_fwd(NULL, g, q, k, v, a.xs, a.dtr, W[P_DTB], W[P_ALOG], N, d.H, d.P, d.G, d.Ns);
    pn_cuda_simple_gla_fwd_fast(B, T, d.H, d.Ns, d.P, 1.0f, q, k, v, g, NULL, a.o, PN_CUDA_F32, NULL);
    pn_cuda_m2_out_fwd(a.yn, a.rstd, a.o, a.xs, W[P_D], a.z, W[P_NORM], N, d.H, d.P, d.G, d.Dc, c->norm_eps);
    pn_cblock_out_proj(ctx, y, a.yn, b->w16[P_OUT], NULL, N, d.E, d.C);
    pn_cuda_free(g), pn_cuda_free(q), pn_cuda_free(k), pn_cuda_free(v);
}

static void m2_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                        const void *act, pn_cblock_ctx *ctx) {
    (void)ctx;
    m2_check(b);
    const pn_block_cfg *c = &b->cfg;
    m2_dims d = m2_dims_of(c);
    int64_t N = (int64_t)B * T;
    size_t n = (size_t)N, HN = (size_t)d.H * d.Ns;
    m2_act a;
    m2_act_map(c, N, (void *)act, &a);
    float *const *W = b->w32;
    float *const *G = b->grads;

    // out_proj
    pn_bf16 *t16 = scratch_bf16(n * (size_t)PN_MAX(d.C, d.Dc));  // bf16 copies of gradients for linear_bwd
    float *d_yn = scratch_f32_zero(n * d.E);
    pn_cuda_f32_to_bf16(t16, dy, N * d.C);
    pn_cuda_linear_bwd(d_yn, PN_CUDA_F32, G[P_OUT], NULL, t16, a.yn, b->w16[P_OUT], N, d.E, d.C);

    // gate and norm: d_o, dz, d_xs (x part), dD, dnorm
    float *d_o = scratch_f32(n * d.E), *d_xs = scratch_f32_zero(n * d.Dc), *dD_rows = scratch_f32(n * d.H);
    float *dw_rows = G[P_NORM] ? scratch_f32(n * d.E) : NULL;
    pn_bf16 *dz = scratch_bf16(n * d.E);
    pn_cuda_m2_out_bwd(d_o, dz, d_xs, dD_rows, dw_rows, d_yn, a.o, a.xs, W[P_D], a.z, W[P_NORM], a.rstd, N, d.H, d.P,
                       d.G, d.Dc);
    if (G[P_NORM]) pn_cuda_mr_colsum(G[P_NORM], dw_rows, N, d.E);
    if (G[P_D]) pn_cuda_mr_colsum(G[P_D], dD_rows, N, d.H);
    pn_cuda_free(d_yn), pn_cuda_free(dw_rows);

    // the SSD recurrence, inputs rebuilt from xs and dt
    float *dt = scratch_f32(n * d.H), *g = scratch_f32(n * d.H);
    pn_bf16 *q = scratch_bf16(n * HN), *k = scratch_bf16(n * HN), *v = scratch_bf16(n * d.E);
    pn_cuda_m2_ssd_in_fwd(dt, g, q, k, v, a.xs, a.dtr, W[P_DTB], W[P_ALOG], N, d.H, d.P, d.G, d.Ns);
    float *dq = scratch_f32_zero(n * HN), *dk = scratch_f32_zero(n * HN), *dv = scratch_f32_zero(n * d.E);
    float *dg = scratch_f32_zero(n * d.H);
    pn_cuda_simple_gla_bwd_fast(B, T, d.H, d.Ns, d.P, 1.0f, q, k, v, g, NULL, d_o, NULL, dq, dk, dv, dg, NULL);
    float *d_dtr = scratch_f32(n * d.H), *dA_rows = scratch_f32(n * d.H);
    pn_cuda_m2_ssd_in_bwd(d_xs, d_dtr, dA_rows, dq, dk, dv, dg, a.xs, dt, W[P_ALOG], N, d.H, d.P, d.G, d.Ns);
    if (G[P_ALOG]) pn_cuda_mr_colsum(G[P_ALOG], dA_rows, N, d.H);
    if (G[P_DTB]) pn_cuda_mr_colsum(G[P_DTB], d_dtr, N, d.H);
    pn_cuda_free(q), pn_cuda_free(k), pn_cuda_free(v), pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dv);
    pn_cuda_free(dg), pn_cuda_free(g), pn_cuda_free(dt), pn_cuda_free(dA_rows), pn_cuda_free(d_o);

    // conv (silu recomputed inside), then the three in_proj row blocks
    float *d_xbc = scratch_f32_zero(n * d.Dc);
    pn_cuda_conv_causal_bwd(d_xbc, PN_CUDA_F32, d.Dc, G[P_CONVW], G[P_CONVB], d_xs, a.xbc, W[P_CONVW], W[P_CONVB], NULL, B, T, d.Dc,
                            d.W, 1);
    const pn_bf16 *Win = b->w16[P_IN];
    float *gin = G[P_IN];
    size_t off_x = (size_t)d.E * d.C, off_dt = (size_t)(d.E + d.Dc) * d.C;
    pn_cuda_linear_bwd(dx, PN_CUDA_F32, gin, NULL, dz, x, Win, N, d.C, d.E);
    pn_cuda_f32_to_bf16(t16, d_xbc, N * d.Dc);
    pn_cuda_linear_bwd(dx, PN_CUDA_F32, gin ? gin + off_x : NULL, NULL, t16, x, Win + off_x, N, d.C, d.Dc);
    pn_cuda_f32_to_bf16(t16, d_dtr, N * d.H);
    pn_cuda_linear_bwd(dx, PN_CUDA_F32, gin ? gin + off_dt : NULL, NULL, t16, x, Win + off_dt, N, d.C, d.H);
    pn_cuda_free(d_xbc), pn_cuda_free(d_xs), pn_cuda_free(d_dtr), pn_cuda_free(dD_rows), pn_cuda_free(dz);
    pn_cuda_free(t16);
}

const pn_cblock_type pn_cblock_mamba2 = {
    .name = "mamba2",
    .act_bytes = m2_act_bytes,
    .forward = m2_forward,
    .backward = m2_backward,
};
#endif  // POSTNAS_HAVE_CUDA
