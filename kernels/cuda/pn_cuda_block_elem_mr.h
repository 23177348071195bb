// pn_cuda_block_elem_mr.h — extern "C" entry points of the fused element-wise / per-row
// CUDA kernels of the Mamba2 and RWKV7 training blocks (kernels/cuda/block_elem_mr.cu;
// used by blocks/cblock_mamba2.c and blocks/cblock_rwkv7.c).
//
// Each kernel fuses a stretch of a CPU block's forward or backward (blocks/mamba2.c,
// blocks/rwkv7.c) that has no op of its own in kernels/ops.h: the comment above each
// one gives its math in the CPU block's terms. Storage as pn_cuda_ops.h: tensors a
// GEMM or a recurrence reads are bf16, everything else fp32, all math fp32. Unlike the
// ops of pn_cuda_block_elem.h most outputs here are WRITTEN (=), since they are the
// first contribution to a fresh buffer; "+=" marks the ones that accumulate. Per-row
// contributions to a parameter gradient (the *_rows outputs) are written out whole
// and reduced by pn_cuda_mr_colsum in a fixed order (deterministic, no atomics).
// All pointers are device pointers; work is queued on the backend stream
// (pn_cuda_stream_get) and nothing synchronises. The fake backend's twins are in
// tests/fake_cuda/fake_block_elem_mr.c.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- shared
// out (D) += Σ_r in (R, D) over rows, summed in row order.
void pn_cuda_mr_colsum(float *out, const float *in, int64_t R, int D);

enum { PN_MR_ACT_NONE = 0, PN_MR_ACT_TANH = 1, PN_MR_ACT_SIGMOID = 2 };
// y (M, C) = scale · act(x + bias[c]); x fp32; bias (C) fp32 or NULL; y bf16 or fp32.
void pn_cuda_mr_bias_act_fwd(void *y, pn_cuda_dtype y_dt, const float *x, const float *bias, float scale, int act,
                             int64_t M, int C);
// dx (n) WRITTEN = dy · d/dx[scale · act(x + b)], computed from the forward output y
// (bf16 or fp32): none: dy·scale; tanh (t = y/scale): dy·scale·(1 − t²); sigmoid
// (σ = y/scale): dy·scale·σ(1 − σ). dx bf16 or fp32.
void pn_cuda_mr_bias_act_bwd(void *dx, pn_cuda_dtype dx_dt, const float *dy, const void *y, pn_cuda_dtype y_dt,
                             float scale, int act, int64_t n);

// ---------------------------------------------------------------- Mamba2
// Shapes: N rows (B·T tokens), H heads of head dim P (E = H·P), G groups of state
// size Ns, xs (N, Dc) the conv output, Dc = E + 2·G·Ns, laid out [x (H, P) | B (G, Ns)
// | C (G, Ns)]; head h reads group h / (H/G).

// The SSD inputs: dt (N, H) = softplus(dtr + dt_bias), g (N, H) = −exp(A_log)·dt,
// q (N, H, Ns) = C of the head's group, k = B, v (N, H, P) = dt·x (q, k, v bf16).
void pn_cuda_m2_ssd_in_fwd(float *dt, float *g, pn_bf16 *q, pn_bf16 *k, pn_bf16 *v, const pn_bf16 *xs,
                           const float *dtr, const float *dt_bias, const float *A_log, int64_t N, int H, int P, int G,
                           int Ns);
// Their backward from the recurrence's dq, dk (N, H, Ns), dv (N, H, P), dg (N, H):
// d_xs (N, Dc) += dv·dt on x, Σ_heads of the group dk on B, dq on C;
// d_dtr (N, H) WRITTEN = (dg·A + Σ_p dv·x) · (1 − e^{−dt}) (softplus' = sigmoid);
// dA_rows (N, H) WRITTEN = dg · dt · A (row terms of dA_log: dA/dA_log = A = −e^{A_log}).
void pn_cuda_m2_ssd_in_bwd(float *d_xs, float *d_dtr, float *dA_rows, const float *dq, const float *dk,
                           const float *dv, const float *dg, const pn_bf16 *xs, const float *dt, const float *A_log,
                           int64_t N, int H, int P, int G, int Ns);
// Output gate and norm: yD = o + D[h]·x, u = yD·silu(z), rstd (N, G) = 1/sqrt(mean over
// the group's E/G channels of u² + eps), yn (N, E) = u·rstd·w (bf16).
void pn_cuda_m2_out_fwd(pn_bf16 *yn, float *rstd, const float *o, const pn_bf16 *xs, const float *Dp,
                        const pn_bf16 *z, const float *w, int64_t N, int H, int P, int G, int Dc, float eps);
// Backward from d_yn (N, E): d_o (N, E) WRITTEN (= dyD), dz (N, E) WRITTEN (bf16, the
// in_proj z-block's output gradient), d_xs[:, :E] += D·dyD, dD_rows (N, H) WRITTEN =
// Σ_p dyD·x, dw_rows (N, E) WRITTEN = d_yn·u·rstd (NULL = skip).
void pn_cuda_m2_out_bwd(float *d_o, pn_bf16 *dz, float *d_xs, float *dD_rows, float *dw_rows, const float *d_yn,
                        const float *o, const pn_bf16 *xs, const float *Dp, const pn_bf16 *z, const float *w,
                        const float *rstd, int64_t N, int H, int P, int G, int Dc);

// ---------------------------------------------------------------- RWKV7
// Shapes: N rows, H heads of K channels (C = H·K).

// κ̂ and the DPLR factors: κ̂ = l2n(k0·k_k) per head (eps 1e-6; kh fp32 and its rstd
// kr (N, H) saved), k = k0·(1 + (a − 1)·k_a), aop = −κ̂, bop = κ̂·a (k, aop, bop bf16).
void pn_cuda_rw_kab_fwd(pn_bf16 *k, pn_bf16 *aop, pn_bf16 *bop, float *kh, float *kr, const float *k0,
                        const float *a, const float *k_k, const float *k_a, int64_t N, int H, int K);
// Backward from dk, daop, dbop (N, C): dk0 WRITTEN = dk·(1 + (a − 1)·k_a) + dkk·k_k with
// dkk the l2-norm backward of dκ̂ = −daop + dbop·a; da WRITTEN = dbop·κ̂ + dk·k0·k_a;
// dka_rows WRITTEN = dk·k0·(a − 1), dkk_rows WRITTEN = dkk·k0 (either NULL = skip).
void pn_cuda_rw_kab_bwd(float *dk0, float *da, float *dka_rows, float *dkk_rows, const float *dk, const float *daop,
                        const float *dbop, const float *k0, const float *a, const float *kh, const float *kr,
                        const float *k_k, const float *k_a, int64_t N, int H, int K);
// Value residual of a later layer: v (n) = v0 + (vf − v0)·s (bf16).
void pn_cuda_rw_vmix_fwd(pn_bf16 *v, const float *v0, const pn_bf16 *vf, const float *s, int64_t n);
// Backward from dv: dv0 WRITTEN = dv·(1 − s); dvf += dv·s; dsl WRITTEN (bf16, the
// v_lora logit gradient) = dv·(vf − v0)·s(1 − s).
void pn_cuda_rw_vmix_bwd(float *dv0, float *dvf, pn_bf16 *dsl, const float *dv, const float *v0, const pn_bf16 *vf,
                         const float *s, int64_t n);
// The bonus term and the output gate: sb (N, H) = Σ_d r·k·r_k over the head, o2 = on +
// sb·v (fp32, saved), xo = o2·g (bf16, o_proj's input).
void pn_cuda_rw_bonus_fwd(pn_bf16 *xo, float *o2, float *sb, const float *on, const pn_bf16 *r, const pn_bf16 *k,
                          const pn_bf16 *v, const float *r_k, const float *g, int64_t N, int H, int K);
// Backward from d_y3 (N, C) = the gradient of xo: d_o2 WRITTEN = d_y3·g; d_g WRITTEN
// (bf16) = d_y3·o2; with ds = Σ_d d_o2·v per head: dr WRITTEN = ds·k·r_k, dk WRITTEN =
// ds·r·r_k, dv WRITTEN = sb·d_o2; drk_rows WRITTEN = ds·r·k (NULL = skip).
void pn_cuda_rw_bonus_bwd(float *d_o2, pn_bf16 *d_g, float *dr, float *dk, float *dv, float *drk_rows,
                          const float *d_y3, const float *o2, const float *sb, const pn_bf16 *r, const pn_bf16 *k,
                          const pn_bf16 *v, const float *r_k, const float *g, int64_t N, int H, int K);

#ifdef __cplusplus
}
#endif
