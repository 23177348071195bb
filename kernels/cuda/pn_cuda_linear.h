// pn_cuda_linear.h — extern "C" entry points of the CUDA linear-attention training ops other
// than the gated delta rule (pn_cuda_gdn.h): simple GLA, GLA, the delta rule, DPLR
// (kernels/cuda/linear_ops.cu), causal depthwise convs (conv.cu) and the gated RMSNorm
// (gated_norm.cu). Each is the twin of the CPU op of the same name in kernels/ops.h.
//
// Conventions (as pn_cuda_gdn.h / pn_cuda_ops.h):
//  - activations (q, k, v, DPLR's a and b, conv inputs x, dynamic conv kernels, norm inputs
//    and gates) are bf16; log-decays g / gk, β, conv weights and biases, norm weights,
//    states and every gradient are fp32; all math is fp32;
//  - layouts are the CPU op's: q, k, a, b, gk (B, T, H, K); v, o (B, T, H, V); g (B, T, H);
//    states h0, ht (B, H, K, V). h0 NULL = zero state; ht NULL = not wanted; h0 == ht is
//    allowed; o NULL = state only; o is bf16 or fp32 (o_dt);
//  - backward ops ADD (+=) into every fp32 gradient; a NULL gradient is not computed; dout
//    (B, T, H, V) fp32; dht (B, H, K, V) may be NULL (zero);
//  - all pointers are device pointers; work is queued on the backend stream
//    (pn_cuda_stream_get) and nothing is synchronised. Short-lived fp32 scratch comes
//    from PN_CUDA_MEM_SCRATCH and is returned before the call ends.
// The recurrences run chunked (chunk 64, any T): limits 1 <= K <= 256, V >= 1.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- recurrences (linear_ops.cu)
// Simple GLA (RetNet, Mamba2 cores): S = e^{g_t} S + k_t v_tᵀ, o_t = Sᵀ (scale · q_t).
// g (B, T, H) fp32; g NULL means g = 0 (plain linear attention; dg is then not computed,
// as in pn_cuda_gated_delta_bwd).
// Scratch: B·H·T·(2K + 65) + B·H·⌈T/64⌉·K floats (fwd); the backward adds
// 2·B·H·⌈T/64⌉·K·V floats of chunk states and n·SMs·(64² + 4·64·K) of work space (n blocks per SM,
// as pn_cuda_dplr_bwd).
void pn_cuda_simple_gla_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                            const pn_bf16 *v, const float *g, const float *h0, void *o, pn_cuda_dtype o_dt, float *ht);
void pn_cuda_simple_gla_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                            const pn_bf16 *v, const float *g, const float *h0, const float *dout, const float *dht,
                            float *dq, float *dk, float *dv, float *dg, float *dh0);

// The same two on bf16 tensor cores (kernels/cuda/sgla_fast.cu), exactly this contract:
// the chunk products take bf16 operands with fp32 accumulation (q, k scaled by their decay
// factors, the attention scores, the chunk start states and state gradients are rounded
// once each), so results differ from the fp32 kernels above by ~1e-3 relative, as fla's do.
// Fast path: K ∈ {64, 96, 128}, V a multiple of 32, q/k/v (and dout) 16-byte aligned, the
// fp32 buffers 8-byte aligned, T >= 1; anything else runs the fp32 kernels. Scratch:
// B·H·⌈T/64⌉·K·V bf16 for the forward with o, twice that for the backward.
int pn_cuda_simple_gla_fast_supported(int K, int V);
void pn_cuda_simple_gla_fwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                 const pn_bf16 *v, const float *g, const float *h0, void *o, pn_cuda_dtype o_dt,
                                 float *ht);
void pn_cuda_simple_gla_bwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                 const pn_bf16 *v, const float *g, const float *h0, const float *dout,
                                 const float *dht, float *dq, float *dk, float *dv, float *dg, float *dh0);
// Test hook: 1 when the last fast call ran on the tensor cores, 0 when it fell back.
int pn_cuda_simple_gla_fast_debug_last(void);

// GLA: S = diag(e^{gk_t}) S + k_t v_tᵀ with a per-key-channel log-decay gk (B, T, H, K) fp32
// (not NULL). Scratch as simple GLA plus B·H·T·K floats (the per-channel cumsum).
void pn_cuda_gla_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                     const pn_bf16 *v, const float *gk, const float *h0, void *o, pn_cuda_dtype o_dt, float *ht);
void pn_cuda_gla_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                     const pn_bf16 *v, const float *gk, const float *h0, const float *dout, const float *dht, float *dq,
                     float *dk, float *dv, float *dgk, float *dh0);
// The same two on bf16 tensor cores (kernels/cuda/gla_fast.cu), exactly this contract and the
// fast path of the simple GLA pair above (K ∈ {64, 96, 128}, V a multiple of 32, aligned
// buffers; anything else runs the fp32 kernels). The chunk products take bf16 operands (q, k
// scaled by decay factors relative to a reference row, the scores, the chunk start states
// and state gradients are rounded once each); the diagonal 16 × 16 blocks of the scores and
// of their gradients are summed in fp32. Scratch: B·H·T·K floats (Γ) and two B·H·T·K bf16
// (K̂, Q̂), plus the simple GLA pair's chunk states.
int pn_cuda_gla_fast_supported(int K, int V);
void pn_cuda_gla_fwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                          const pn_bf16 *v, const float *gk, const float *h0, void *o, pn_cuda_dtype o_dt, float *ht);
void pn_cuda_gla_bwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                          const pn_bf16 *v, const float *gk, const float *h0, const float *dout, const float *dht,
                          float *dq, float *dk, float *dv, float *dgk, float *dh0);
// Test hook: 1 when the last fast call ran on the tensor cores, 0 when it fell back.
int pn_cuda_gla_fast_debug_last(void);

// Delta rule (DeltaNet): the gated delta rule with g = 0, i.e. pn_cuda_gated_delta_fwd /
// _bwd with g = NULL (pn_cuda_gdn.h has the contract; β (B, T, H) fp32).
void pn_cuda_delta_rule_fwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                            const pn_bf16 *k, const pn_bf16 *v, const float *beta, const float *h0, void *o,
                            pn_cuda_dtype o_dt, float *ht);
void pn_cuda_delta_rule_bwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                            const pn_bf16 *k, const pn_bf16 *v, const float *beta, const float *h0, const float *dout,
                            const float *dht, float *dq, float *dk, float *dv, float *dbeta, float *dh0);

// DPLR (RWKV7 core): S = diag(e^{gk_t}) S + k_t v_tᵀ + b_t (a_tᵀ S_{t−1}) (the a-term reads
// the state before the decay). a, b (B, T, H, K) bf16; gk fp32.
// Scratch: B·H·T·(5K + 4·64) + B·H·⌈T/64⌉·K floats (fwd); the backward adds 2·B·H·T·V,
// 2·B·H·⌈T/64⌉·K·V and n·SMs·(4·64² + 8·64·K), n the gradient kernel's resident blocks per
// SM (3 at K 128 on the H100).
void pn_cuda_dplr_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                      const pn_bf16 *v, const float *gk, const pn_bf16 *a, const pn_bf16 *b, const float *h0, void *o,
                      pn_cuda_dtype o_dt, float *ht);
void pn_cuda_dplr_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                      const pn_bf16 *v, const float *gk, const pn_bf16 *a, const pn_bf16 *b, const float *h0,
                      const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dgk, float *da,
                      float *db, float *dh0);
// Tuning overrides of the chunked kernels above (simple GLA, GLA, DPLR; tests and benchmarks):
// the scans' state columns per block, 32 or 64 (0 = the automatic choice), and the per-chunk
// gradient kernel's blocks per SM (0 = as many as fit).
void pn_cuda_linear_debug_scan_bv(int bv);
void pn_cuda_linear_debug_grads_blocks(int per_sm);

// ---------------------------------------------------------------- causal depthwise convs (conv.cu)
// y_t[d] = act(Σ_j w[d, j] · u_{t−W+1+j}[d] + bias[d]), u = x (B, T, D) extended to the
// left by x_prev (B, W−1, D) fp32 (NULL = zeros); w (D, W) fp32 (nn.Conv1d's (D, 1, W));
// bias (D) fp32 or NULL; act 0 = identity (pn_conv_causal_fwd), 1 = SiLU after the conv
// (pn_conv_causal_fwd then pn_silu_fwd: the short-conv blocks' silu(conv(·))).
// y (B, T, D) bf16 or fp32 (y_dt). 1 <= W <= 16.
void pn_cuda_conv_causal_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const float *w, const float *bias,
                             const float *x_prev, int B, int T, int D, int W, int act);
// dy (B, T, D) fp32 is the gradient of the ACTIVATED output; the pre-activation is
// recomputed (so bias is needed when act = 1). dw (D, W), dbias (D) += ...; dx either fp32
// (dx_dt PN_CUDA_F32: (B, T, D), ldx = D) += ..., or bf16 (PN_CUDA_BF16) WRITTEN, rounded
// once, into rows ldx ≥ D apart — the operand of the projection's backward GEMM, in place in
// a block's slab of projection gradients. Any may be NULL. dw and dbias are reduced in a
// fixed order (deterministic).
void pn_cuda_conv_causal_bwd(void *dx, pn_cuda_dtype dx_dt, int64_t ldx, float *dw, float *dbias, const float *dy,
                             const pn_bf16 *x, const float *w, const float *bias, const float *x_prev, int B, int T,
                             int D, int W, int act);
// Dynamic (per-token) kernels, JetBlock: kern (B, T, D, W) bf16 (flat index d·W + j), no bias.
void pn_cuda_dynconv_causal_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const pn_bf16 *kern,
                                const float *x_prev, int B, int T, int D, int W, int act);
// dx as in pn_cuda_conv_causal_bwd (fp32 +=, or bf16 written into rows ldx apart);
// dkern (B, T, D, W) += ... when dkern_dt is PN_CUDA_F32, or WRITTEN (rounded once) when
// PN_CUDA_BF16, the form the generator's weight-gradient GEMM reads. Either may be NULL.
void pn_cuda_dynconv_causal_bwd(void *dx, pn_cuda_dtype dx_dt, int64_t ldx, void *dkern, pn_cuda_dtype dkern_dt,
                                const float *dy, const pn_bf16 *x, const pn_bf16 *kern, const float *x_prev, int B,
                                int T, int D, int W, int act);

// ---------------------------------------------------------------- gated RMSNorm (gated_norm.cu)
// y (N, D) = x · rstd · w · silu(gate), rstd (N) fp32 = 1/sqrt(mean(x²) + eps) (saved for the
// backward); x (N, D) bf16 or fp32 (x_dt), gate (N, D) bf16; w (D) fp32 or NULL (ones); gate
// NULL = plain RMSNorm. y bf16 or fp32 (y_dt). Twin of pn_rmsnorm_gated_fwd.
void pn_cuda_rmsnorm_gated_fwd(void *y, pn_cuda_dtype y_dt, float *rstd, const void *x, pn_cuda_dtype x_dt,
                               const float *w, const pn_bf16 *gate, int64_t N, int D, float eps);
// dx (N, D), dw (D), dgate (N, D) += ... (any may be NULL); dy (N, D) fp32; x as in the
// forward. dw is reduced in a fixed order (deterministic).
void pn_cuda_rmsnorm_gated_bwd(float *dx, float *dw, float *dgate, const float *dy, const void *x, pn_cuda_dtype x_dt,
                               const float *w, const pn_bf16 *gate, const float *rstd, int64_t N, int D);
// The same with dx and dgate WRITTEN (their old contents ignored; dw still +=): for fresh
// buffers, which then need no zeroing.
void pn_cuda_rmsnorm_gated_bwd_write(float *dx, float *dw, float *dgate, const float *dy, const void *x,
                                     pn_cuda_dtype x_dt, const float *w, const pn_bf16 *gate, const float *rstd,
                                     int64_t N, int D);
// The same with dgate WRITTEN in bf16 into lines ldg apart that hold `heads` rows each: the
// N rows are (tokens, heads) of a head-split (tokens, heads·D) tensor, written straight into
// its columns of a wider bf16 matrix (a block's slab of projection gradients). N % heads == 0.
void pn_cuda_rmsnorm_gated_bwd_write_dg16(float *dx, float *dw, pn_bf16 *dgate, int heads, int64_t ldg,
                                          const float *dy, const void *x, pn_cuda_dtype x_dt, const float *w,
                                          const pn_bf16 *gate, const float *rstd, int64_t N, int D);

#ifdef __cplusplus
}
#endif
