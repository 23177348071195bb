// pn_cuda_gdn_fast.h — extern "C" entry points of the tensor-core chunked gated delta rule
// forward (kernels/cuda/gdn_fast.cu) and backward (kernels/cuda/gdn_fast_bwd.cu, declared
// below), a second implementation next to pn_cuda_gated_delta_fwd
// (kernels/cuda/pn_cuda_gdn.h) with exactly its contract:
//   per (batch, head) and token, state S (K, V) fp32:
//   S' = e^{g_t} S;  u_t = β_t (v_t − S'ᵀ k_t);  S = S' + k_t u_tᵀ;  o_t = Sᵀ (scale · q_t).
// q, k (B, T, H, K) bf16; v, o (B, T, H, V); g, beta (B, T, H) fp32; h0, ht (B, H, K, V) fp32.
// g NULL = no decay; h0 NULL = zero state; ht NULL = not wanted; h0 == ht allowed; o NULL =
// state only; o bf16 or fp32 (o_dt); qk_l2norm != 0 normalises q and k in the op
// (x / sqrt(Σx² + 1e-6)). Device pointers; queued on the backend stream, not synchronised.
// Fast path: K ∈ {64, 96, 128}, V a multiple of 32, q/k/v/o 16-byte aligned, h0/ht 8-byte
// aligned; anything else runs pn_cuda_gated_delta_fwd. The chunk matmuls use bf16 tensor-core
// operands with fp32 accumulation (the fp32 state is rounded to bf16 where it is an operand),
// so results differ from the fp32 path by ~1e-3 relative (fla does the same).
// Scratch for the call: B·H·⌈T/64⌉·(16 KiB + 1 KiB), plus for long sequences at small B·H
// (intra-card context parallelism) B·H·segments·K·(2V + K) floats.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#ifdef __cplusplus
extern "C" {
#endif

void pn_cuda_gated_delta_fwd_fast(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                                  const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta,
                                  const float *h0, void *o, pn_cuda_dtype o_dt, float *ht);

// 1 when (K, V) runs on the tensor-core kernels (given aligned pointers), 0 when it falls back.
int pn_cuda_gated_delta_fwd_fast_supported(int K, int V);

// Chunked backward with exactly the contract of pn_cuda_gated_delta_bwd (pn_cuda_gdn.h):
// gradients of sum(o·dout) + sum(ht·dht) ADDED (+=) into the fp32 buffers dq, dk (B, T, H, K),
// dv (B, T, H, V), dg, dbeta (B, T, H), dh0 (B, H, K, V); any may be NULL; dht may be NULL
// (zero); dout (B, T, H, V) fp32; dg is left untouched when g is NULL; with qk_l2norm the
// gradients flow back through the in-op normalisation. Deterministic (no atomics).
// Fast path: K ∈ {64, 96, 128}, V a multiple of 32, q/k/v/dout 16-byte aligned, h0/dht/dh0/dv
// 8-byte aligned, T >= 1; anything else runs pn_cuda_gated_delta_bwd. bf16 tensor-core
// operands with fp32 accumulation (the chunk states and state gradients are stored and used
// as bf16 operands, as fla does), so gradients differ from the fp32 path by ~1e-3 relative.
// Scratch for the call: B·H·⌈T/64⌉·(25 KiB + 4·K·V bytes) (the per-chunk states S and
// state gradients dS in bf16; without dq, dk, dv, dg, dbeta only the first term).
void pn_cuda_gated_delta_bwd_fast(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                                  const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta,
                                  const float *h0, const float *dout, const float *dht, float *dq, float *dk,
                                  float *dv, float *dg, float *dbeta, float *dh0);

// The same, but dq, dk, dv, dg, dbeta are WRITTEN (=; their old contents are never read, so
// they need no zero fill) — dg still untouched when g is NULL; dh0 is ADDED as above.
void pn_cuda_gated_delta_bwd_fast_write(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                        const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                                        const float *beta, const float *h0, const float *dout, const float *dht,
                                        float *dq, float *dk, float *dv, float *dg, float *dbeta, float *dh0);

// 1 when (K, V) runs the tensor-core backward (given aligned pointers), 0 when it falls back.
int pn_cuda_gated_delta_bwd_fast_supported(int K, int V);

// ---- test hooks (tests/gpu/test_cuda_gdn_fast.c)
// Segments of the context-parallel state pass: 0 = automatic (default), 1 = never split,
// n >= 2 = split into (up to) n segments whenever o is wanted. Process-wide setting.
void pn_cuda_gdn_fast_debug_segments(int nseg);
// Segments the last fast call used (1 = one sequential pass per V tile; 0 = fell back).
int pn_cuda_gdn_fast_debug_last_segments(void);
// State columns per block of the sequential passes (forward scan, backward state pass and
// reverse scan): 0 = automatic (default), 32 or 64 = forced where V allows. Process-wide;
// pn_cuda_gdn_fast_pick_bv is the choice both .cu files make.
void pn_cuda_gdn_fast_debug_bv(int bv);
int pn_cuda_gdn_fast_pick_bv(int V);
// The forward's state pass with outputs: nw = 1, 2 or 4 = on wgmma where the V tile is 64
// columns, nw column tiles (one warpgroup each) per block sharing the chunk's K, Q, A', P;
// 0 = the mma.sync pass everywhere; −1 = automatic (default: a one-segment pass whose tiles
// pair up on wgmma, 2 tiles per block while those blocks fit one per SM, else 4 where the
// tiles divide by 4; other passes on mma.sync; GDN_NOTES §13). Process-wide.
// last_wgmma: the nw of the last fast forward's wgmma pass, 0 when it ran the mma.sync pass.
void pn_cuda_gdn_fast_debug_wgmma(int nw);
int pn_cuda_gdn_fast_debug_last_wgmma(void);
// The forward's prep beside its wgmma pass (GDN_NOTES §20): mode −1 = automatic (default:
// where the pass leaves an eighth of the SMs or more free), 0 = never (the whole prep first),
// 1 = wherever it leaves an SM free. first_pct in 1..99: the share of the chunks the prep
// covers before the pass starts; 0 = automatic. Bitwise the same results. Process-wide.
// last_overlap: the chunks the last fast forward's prep covered before its pass (0 = none).
void pn_cuda_gdn_fast_debug_prep_overlap(int mode, int first_pct);
int pn_cuda_gdn_fast_debug_last_overlap(void);
// The backward's per-chunk gradient kernel: 1 = its chunk products on wgmma, 0 = on mma.sync
// (default). Process-wide.
void pn_cuda_gdn_fast_bwd_debug_wgmma(int on);
// The backward's reverse state-gradient scan: −1 = automatic (default: on wgmma, four 64-column
// tiles per block, where V / 64 divides by 4; else mma.sync), 0 = mma.sync everywhere.
// Process-wide. last_dscan: 4 when the last fast backward's scan ran on wgmma, else 0.
void pn_cuda_gdn_fast_bwd_debug_dscan(int form);
// The backward's reverse scan and its state-only pass (both need only the per-chunk stage)
// on two streams: 1 = overlapped (default; the scan on the runtime's side stream), 0 = one
// after the other on the backend stream. Bitwise the same results. Process-wide.
void pn_cuda_gdn_fast_bwd_debug_overlap(int on);
// The per-chunk gradient kernel's S0, dS1 and V tiles: 1 = double-buffered where K <= 96 (the
// next V tile's fetched while one computes; default), 0 = fetched at each tile's start (K = 128
// always). Bitwise the same results. Process-wide.
void pn_cuda_gdn_fast_bwd_debug_chunk_db(int on);
int pn_cuda_gdn_fast_bwd_debug_last_dscan(void);
// The per-chunk stage alone (K ∈ {64, 96, 128}; chunk 64, NT = ⌈T/64⌉), for stage tests:
// A (B·H, NT, 64, 64) bf16 = (I + L)⁻¹ diag(β), L_ij = β_i k̂_i·k̂_j e^{γ_i−γ_j} (j < i);
// P (B·H, NT, 64, 64) bf16 = scale q̂_i·k̂_j e^{γ_i−γ_j} (j ≤ i), zero above the diagonal;
// rows (B·H, NT, 64, 4) fp32 = {scale·rq·e^γ, rk·e^γ, rk·e^{γ_last−γ}, e^{γ_last}} with γ the
// chunk-local cumsum of g, rq/rk the L2-norm factors (1 without qk_l2norm) and γ_last the
// chunk's last valid row; rows past T hold β = 0, rq = rk = 0 (A = identity·0 there).
void pn_cuda_gdn_fast_debug_prep(int B, int T, int H, int K, float scale, int qk_l2norm, const pn_bf16 *q,
                                 const pn_bf16 *k, const float *g, const float *beta, pn_bf16 *A, pn_bf16 *P,
                                 float *rows);

#ifdef __cplusplus
}
#endif
