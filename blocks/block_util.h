// block_util.h — small helpers shared by the token-mixer blocks.
//
// Blocks lay their saved activations and scratch out as consecutive slices of
// one float buffer (pn_bu_take); the size functions walk the same sequence of
// slices, so layout and size cannot drift apart. The decay gate, the A_log /
// dt_bias initialisation and the per-sequence recurrent state loop are shared
// by JetBlock, Gated DeltaNet and DeltaNet (and usable by Mamba2).
#pragma once
#include "blocks/block.h"
#include "blocks/block_chunk.h"  // pn_blocks_chunk(): chunk size of forward/backward/prefill
#include "kernels/ops.h"

// Next n floats of a buffer; *cur advances. With *cur == NULL it only counts
// (the returned pointer is then meaningless), which the *_floats functions use.
static inline float *pn_bu_take(float **cur, size_t *count, size_t n) {
    float *r = *cur;
    if (*cur) *cur += n;
    *count += n;
    return r;
}

// Decay gate g (N, H) = −exp(A_log[h]) · softplus(a[n, h] + dt_bias[h]).
void pn_bu_decay_fwd(float *g, const float *a, const float *A_log, const float *dt_bias, int64_t N, int H);
// Adds into da (N, H), dA_log (H), ddt_bias (H); g is the forward output.
void pn_bu_decay_bwd(float *da, float *dA_log, float *ddt_bias, const float *dg, const float *g, const float *a,
                     const float *A_log, const float *dt_bias, int64_t N, int H);
// da += dβ · β (1 − β) for β = sigmoid(a).
void pn_bu_sigmoid_bwd(float *da, const float *dbeta, const float *beta, int64_t n);

// Mamba/fla init: A ~ U(lo, hi), A_log = log A; dt ~ logU[1e-3, 0.1] clamped ≥ 1e-4,
// dt_bias = dt + log(−expm1(−dt)) (the inverse of softplus). `stream` separates layers.
void pn_bu_init_A_log(float *A_log, int H, float lo, float hi, uint64_t seed, uint64_t stream);
void pn_bu_init_dt_bias(float *dt_bias, int H, uint64_t seed, uint64_t stream);

// Gated delta rule over B sequences. state == NULL: fresh zero states, one call
// over the batch. Otherwise sequence b's state S (H, K, V) sits at state + b·stride
// and is updated in place (per-sequence decode layout).
void pn_bu_gated_delta_run(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v,
                           const float *g, const float *beta, float *o, float *state, int64_t stride);
// Static causal conv over B sequences; with a state, sequence b's W−1 previous rows
// (W−1, D) sit at prev + b·stride and are rolled forward past the T new rows.
void pn_bu_conv_run(float *y, const float *x, const float *w, int B, int T, int D, int W, float *prev,
                    int64_t stride);
// Dynamic (per-token kernel) conv, same state convention.
void pn_bu_dynconv_run(float *y, const float *x, const float *kern, int B, int T, int D, int W, float *prev,
                       int64_t stride);

// One parameter-table entry: shape (d0[, d1[, d2]]) by ndim; a = std (normal) or lo (uniform), b = hi.
void pn_bu_spec(pn_param_spec *p, const char *name, pn_init_kind init, float a, float b, int weight_decay, int ndim,
                int64_t d0, int64_t d1, int64_t d2);

// Backward of act = [l2n per head of width hd](silu(conv(x Wpᵀ; Wc))), the q/k/v path of
// the short-conv blocks: adds into dx (B·T, C), dWp (D, C), dWc (D, W). rstd == NULL:
// no l2n. conv_out, proj: the saved conv output and projection (B·T, D); t1..t3: temps
// of B·T·D floats each.
void pn_bu_conv_path_bwd(float *dx, float *dWp, float *dWc, const float *dact, const float *act, const float *rstd,
                         int hd, const float *conv_out, const float *proj, const float *x, const float *Wp,
                         const float *Wc, int B, int T, int C, int D, int W, float *t1, float *t2, float *t3);

