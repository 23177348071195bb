// cblock.h — the token-mixer blocks on CUDA, for training: twins of the CPU blocks'
// forward and backward (blocks/block.h), selected by the same type names.
//
// A pn_cblock is the device image of a CPU pn_block: the same resolved cfg and
// parameter table (spec order), with every parameter held twice on the device —
// w32[i] the fp32 master (what fp32 ops read: conv taps, norms, A_log, dt_bias, decay
// and LoRA vectors; what AdamW updates) and w16[i] its bf16 copy (what the tensor-core
// GEMMs read) — plus an fp32 gradient grads[i] (NULL = frozen). The caller owns every
// buffer (the supernet keeps all linear paths' parameters in one flat buffer of each
// kind, like the CPU supernet) and keeps w16 in step with w32 (pn_cuda_adamw_step
// writes both).
//
// Storage follows kernels/cuda/pn_cuda_ops.h: activations bf16, gradients fp32, all
// arithmetic fp32. Contract of the two calls, per block (N = B·T rows):
//   forward:  y (B, T, C) bf16 WRITTEN from x (B, T, C) bf16 (the layer input after the
//             decoder's input RMSNorm); `act` (act_bytes of device memory, caller-owned,
//             PN_CUDA_MEM_ACTS) receives what backward needs.
//   backward: dx (B, T, C) fp32 ADDED (+=) from dy (B, T, C) fp32, x and act of the
//             matching forward; every non-NULL grads[i] ADDED (+=). dx is always wanted.
// Short-lived buffers come from PN_CUDA_MEM_SCRATCH (pn_cuda_alloc / pn_cuda_free
// inside the call; the arena caches them, so repeated steps cost no cudaMalloc).
// Work is queued on the backend stream (pn_cuda_stream_get); nothing synchronises.
// The result equals the CPU block's within bf16 tolerance (normalized error ≤ 1e-2;
// tests/gpu/test_cuda_block_*.c).
//
// rwkv7's value residual: ctx->v_first (N, C) bf16 is written by the first rwkv7
// layer's forward and read by later ones; ctx->dv_first (N, C) fp32 collects the later
// layers' gradient for it (ADDED), which the first layer's backward consumes. Both are
// caller-owned device buffers (NULL when no rwkv7 layer runs).
//
// The forward's residual form: with ctx->resid_out set, the block does not write y but
// adds its output, unrounded, to the fp32 residual stream: resid_out (N, C) = resid_in +
// y, in its output projection's GEMM epilogue (pn_cblock_out_proj). A decoder layer's
// h = x + mixer(x) then costs neither a bf16 y nor an add pass, and y is not rounded.
#pragma once
#include "blocks/block.h"
#include "kernels/cuda/pn_cuda_ops.h"

typedef struct {
    pn_bf16 *v_first;   // (B, T, C) bf16
    float *dv_first;    // (B, T, C) fp32
    const float *resid_in;  // (B, T, C) fp32, read with resid_out
    float *resid_out;       // (B, T, C) fp32 or NULL: the residual form (y not written)
} pn_cblock_ctx;

struct pn_cblock;

typedef struct pn_cblock_type {
    const char *name;  // the CPU type's name ("attn", "swa", "jetblock", ...)
    // Bytes of saved activations forward writes for backward, for (B, T).
    size_t (*act_bytes)(const pn_block_cfg *c, int B, int T);
    void (*forward)(const struct pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                    pn_cblock_ctx *ctx);
    void (*backward)(const struct pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                     const void *act, pn_cblock_ctx *ctx);
} pn_cblock_type;

typedef struct pn_cblock {
    const pn_cblock_type *type;
    pn_block_cfg cfg;  // resolved, as the CPU block's (pn_block_setup)
    int n_params;
    pn_param_spec spec[PN_BLOCK_MAX_PARAMS];
    float *w32[PN_BLOCK_MAX_PARAMS];     // device fp32 masters, spec order (caller-owned)
    pn_bf16 *w16[PN_BLOCK_MAX_PARAMS];   // device bf16 copies (caller-owned)
    float *grads[PN_BLOCK_MAX_PARAMS];   // device fp32 gradients or NULL (frozen)
} pn_cblock;

// Carves the next `bytes` of an act buffer at a 256-byte boundary: returns base + *off
// (NULL when base is NULL, so act_bytes can walk the same layout to size it) and
// advances *off past the block, rounded up. The blocks' act layouts use this one walk
// for both sizing and carving, so the two cannot drift apart.
static inline void *pn_cblock_take(char *base, size_t *off, size_t bytes) {
    void *p = base ? base + *off : NULL;
    *off += (bytes + 255) & ~(size_t)255;
    return p;
}

// The saved activations of the gated linear blocks (gla, retnet): bf16 q, k (N, H·K); v, g
// (N, H·V); lr (N, rank), gla's low-rank gate input (rank 0: none, no bytes); and the
// recurrence output o (N, H·V) in fp32 — not rounded before the per-head RMSNorm, whose
// backward multiplies o's error by rstd (large for a row whose o is nearly 0: token 0's
// o = (q₀·k₀) v₀ when q₀·k₀ ≈ 0; bf16 o gave dx errors up to 0.4 on such draws).
// Fills *a (may be NULL) from base (NULL: sizes only) and returns the bytes: act_bytes.
typedef struct {
    pn_bf16 *q, *k, *v, *g, *lr;
    float *o;
} pn_cblock_gated_act;

static inline size_t pn_cblock_gated_act_layout(const pn_block_cfg *c, int B, int T, int rank, void *base,
                                                pn_cblock_gated_act *a) {
    const size_t N = (size_t)B * T, HK = (size_t)c->H * c->K, HV = (size_t)c->H * c->V;
    pn_cblock_gated_act z;
    if (!a) a = &z;
    size_t off = 0;
    a->q = pn_cblock_take(base, &off, N * HK * sizeof(pn_bf16));
    a->k = pn_cblock_take(base, &off, N * HK * sizeof(pn_bf16));
    a->v = pn_cblock_take(base, &off, N * HV * sizeof(pn_bf16));
    a->g = pn_cblock_take(base, &off, N * HV * sizeof(pn_bf16));
    a->lr = rank > 0 ? pn_cblock_take(base, &off, N * (size_t)rank * sizeof(pn_bf16)) : NULL;
    a->o = pn_cblock_take(base, &off, N * HV * sizeof(float));
    return off;
}

// A block's output projection, y (N, C) = in (N, K) · Wᵀ [+ bias]: y WRITTEN in bf16, or in the
// residual form (ctx && ctx->resid_out) resid_out = resid_in + in · Wᵀ [+ bias] in fp32.
void pn_cblock_out_proj(const pn_cblock_ctx *ctx, pn_bf16 *y, const pn_bf16 *in, const pn_bf16 *w,
                        const pn_bf16 *bias, int64_t N, int K, int C);

// Short-lived helpers of the blocks' backward passes (PN_CUDA_MEM_SCRATCH; the caller
// frees with pn_cuda_free): a zeroed fp32 buffer of n floats, and a bf16 copy of an fp32
// tensor (the GEMMs read bf16).
float *pn_cblock_zeros(int64_t n);
pn_bf16 *pn_cblock_to_bf16(const float *src, int64_t n);
// Backward of projection i of b, y (M, n_out) = in (M, n_in) · Wᵢᵀ, for an fp32 output
// gradient dgrad: dx (M, n_in) += dgrad · Wᵢ, b->grads[i] += dgradᵀ · in (skipped when NULL).
void pn_cblock_proj_bwd(const pn_cblock *b, int i, float *dx, const float *dgrad, const pn_bf16 *in, int64_t M,
                        int n_in, int n_out);

// The gated output tail of gla and retnet, y (N, C) = (rmsh(o) · w · silu(g)) Woᵀ per head
// of V features: o (N, H·V) fp32, g (N, H·V) bf16, w = w32[p_norm] (V), Wo = w16[p_o] (C, H·V);
// y through pn_cblock_out_proj (ctx may ask for the residual form).
void pn_cblock_gated_out_fwd(const pn_cblock *b, const pn_cblock_ctx *ctx, int p_norm, int p_o, pn_bf16 *y,
                             const float *o, const pn_bf16 *g, int64_t N);
// Its backward from dy (N, C) fp32: grads[p_o], grads[p_norm] += (when not NULL); returns
// fresh zero-started *d_o, *dg (N, H·V) fp32 scratch with the gradients of o and g.
void pn_cblock_gated_out_bwd(const pn_cblock *b, int p_norm, int p_o, const float *dy, const float *o,
                             const pn_bf16 *g, int64_t N, float **d_o, float **dg);

// The CUDA twin of a CPU block type by name; NULL if the type has none.
const pn_cblock_type *pn_cblock_type_find(const char *name);

// Copies the CPU block's cfg and spec into cb and looks its CUDA type up (an unknown
// type is an internal error); pointers are left NULL for the caller to bind.
void pn_cblock_setup(pn_cblock *cb, const pn_block *host);
// Uploads the CPU block's fp32 parameters into w32 and their bf16 rounding into w16
// (both must be bound). Syncs.
void pn_cblock_upload_params(const pn_cblock *cb, const pn_block *host);
// Convenience for tests and single blocks: allocates w32 / w16 (PN_CUDA_MEM_PARAMS)
// and, when with_grads, zeroed grads (PN_CUDA_MEM_GRADS) for every parameter, then
// uploads. pn_cblock_free_owned releases what this allocated.
void pn_cblock_alloc_owned(pn_cblock *cb, const pn_block *host, int with_grads);
void pn_cblock_free_owned(pn_cblock *cb);
