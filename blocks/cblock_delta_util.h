// cblock_delta_util.h — what the CUDA twins of JetBlock, Gated DeltaNet and DeltaNet share
// (blocks/cblock_jetblock.c, blocks/cblock_gated_deltanet.c): the "delta tail" — β, the
// decay gate, the gated delta rule, the per-head gated output RMSNorm and o_proj — as on
// the CPU (pn_bu_delta_* in blocks/block_util.c, whose pn_bu_delta_ix table says where each
// tail parameter sits in the spec), plus byte-slice layouts and small bf16/fp32 helpers.
//
// Precision plan (blocks/cblock.h): what a GEMM or the recurrence reads is bf16; what an
// fp32 element-wise op (pn_cuda_block_elem.h) reads is fp32. The recurrence always runs
// with the in-op q/k L2 norm (qk_l2norm = 1): the blocks hand it silu(·) of q and k, which
// is the CPU's l2n(silu(·)) followed by the op without normalisation — the same function,
// and the gradient flows back through the norm inside the op, so no l2norm buffers exist.
//
// Saved activations of the tail, N = B·T rows: β (N, H) fp32, the a-projection (N, H) fp32
// (gate only; g is recomputed from it), the recurrence output o (N, H·V) bf16 and the
// output-gate pre-activation x Wgᵀ (N, H·V) bf16 (output gate only). The norm output and
// its rstd are recomputed in backward (one cheap row pass) rather than kept.
#pragma once
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/block_util.h"
#include "blocks/cblock.h"

// Consecutive 256-byte-aligned slices of one device buffer; with base == NULL only counts.
typedef struct {
    char *base;
    size_t used;
} pn_cbd_cursor;

static inline void *pn_cbd_take(pn_cbd_cursor *c, size_t bytes) {
    void *r = c->base ? (void *)(c->base + c->used) : NULL;
    c->used += (bytes + 255) & ~(size_t)255;
    return r;
}

typedef struct {
    float *beta, *ap;      // (N, H) fp32; ap NULL without a decay gate
    pn_bf16 *o, *gp;       // (N, H·V) bf16; gp NULL without an output gate
} pn_cbd_act;

void pn_cbd_act_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, pn_cbd_cursor *cur,
                       pn_cbd_act *a);

// y (N, C) bf16 (or the residual form ctx asks for, pn_cblock_out_proj) from x and the
// block's q, k (N, H·K) bf16 (silu outputs, not yet normalised) and v (N, H·V) bf16; fills a.
void pn_cbd_fwd(const pn_cblock *b, const pn_bu_delta_ix *ix, const pn_cbd_act *a, const pn_cblock_ctx *ctx,
                pn_bf16 *y, const pn_bf16 *x, const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int B, int T);

// ---- the projection-gradient slab
// Every input projection P = x Wpᵀ of a block sends back dx += dP Wp and Wp's gradient
// dPᵀ x. One GEMM per projection reads and writes the whole fp32 dx (N, C) each time: at
// 8×4096 rows of Qwen2.5-1.5B that is 400 MB of traffic per projection, seven of them per
// JetBlock, and the narrow ones (β, the decay gate: H = 12 columns) are GEMMs too thin to
// run at speed. Instead the blocks write each dP in bf16 (the GEMM operand it was going to
// be anyway) into its own columns of one (N, ld) matrix, and pn_cbd_slab_close makes
// dx += [dP₁ … dPₙ] [W₁; …; Wₙ] one GEMM against the weights stacked into one scratch copy
// (Σ widths × C bf16, a few MB), and the weight gradients are one GEMM too (Dᵀ x into
// scratch, each part's rows then added to its gradient).
// Each part starts at a multiple of 8 columns (16 bytes: cuBLASLt's vector loads for every
// slice, whatever the head counts); the padding columns are zeroed once, and the stacked
// weights have zero rows there, so the one GEMM reads them as a harmless 0 · 0.
#define PN_CBD_SLAB_MAX 8
typedef struct {
    int n;                          // parts
    int param[PN_CBD_SLAB_MAX];     // spec index of each part's weight (width, C)
    int width[PN_CBD_SLAB_MAX];     // its output features
    int col[PN_CBD_SLAB_MAX + 1];   // first column of each part (a multiple of 8); col[n] = ld
    int64_t rows, ld;               // N; the row stride
    pn_bf16 *d;                     // (rows, ld) bf16 scratch
} pn_cbd_slab;
// A slab for the projections param[0..n) of b, in that column order, N rows; only the
// padding columns are written yet.
void pn_cbd_slab_open(pn_cbd_slab *s, const pn_cblock *b, int64_t N, int n, const int *param);
// Where row r0 of part `param` starts (rows ld apart): for an op that writes its bf16
// gradient into the slab itself (the convs' backward).
pn_bf16 *pn_cbd_slab_at(const pn_cbd_slab *s, int param, int64_t r0);
// Rows [r0, r0 + rows) of part `param` = bf16(src), src (rows, width) fp32.
void pn_cbd_slab_put(const pn_cbd_slab *s, int param, int64_t r0, int64_t rows, const float *src);
// The same rows = bf16(dact · silu'(pre)): the projection went through a silu.
void pn_cbd_slab_put_silu_bwd(const pn_cbd_slab *s, int param, int64_t r0, int64_t rows, const float *dact,
                              const float *pre);
// dx (N, C) fp32 += the slab times the stacked weights; grads[param] += its slice ᵀ x for
// every part whose gradient is wanted; frees the slab. Every part's rows must be written.
void pn_cbd_slab_close(pn_cbd_slab *s, const pn_cblock *b, float *dx, const pn_bf16 *x);

// The tail's backward: its parameter gradients added (NULL = frozen); the gradients of
// its own input projections (β, the decay gate's a, the output gate's g) written into
// their parts of the slab, whose pn_cbd_slab_close takes them to dx; returns the gradients
// of q, k (N, H·K) and v (N, H·V) in fresh fp32 scratch (*dq, *dk, *dv), which the caller
// returns with pn_cuda_free.
void pn_cbd_bwd(const pn_cblock *b, const pn_bu_delta_ix *ix, const pn_cbd_act *a, const pn_cbd_slab *slab,
                const float *dy, const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int B, int T, float **dq,
                float **dk, float **dv);

// ---- helpers
// Scratch buffers: plain and zeroed (every gradient buffer is accumulated into).
float *pn_cbd_scratch_f32(int64_t n);
float *pn_cbd_zeros_f32(int64_t n);
pn_bf16 *pn_cbd_scratch_bf16(int64_t n);
#endif  // POSTNAS_HAVE_CUDA
