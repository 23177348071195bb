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


// ---------------------------------------------------------------- delta-rule family
//
// JetBlock, Gated DeltaNet and DeltaNet share everything after q, k, v (the "delta
// tail"): β = sigmoid(x Wbᵀ), the decay gate g (absent in DeltaNet: g = 0), the delta
// rule, the per-head output RMSNorm (gated by silu(x Wgᵀ) unless Wg is absent) and
// o_proj. Gated DeltaNet and DeltaNet also share the q/k/v path: projection → static
// short conv (+ decode state) → silu, q and k l2-normalised per head. The helpers take
// the block and a table saying where each shared parameter sits in its spec (−1: the
// block has no such parameter); dimensions come from b->cfg.

typedef struct {
    int C, H, K, V, W, HK, HV;
} pn_bu_dims;

pn_bu_dims pn_bu_dims_of(const pn_block_cfg *c);

typedef struct {
    int q, k, v, q_conv, k_conv, v_conv;     // short-conv q/k/v path (−1 in JetBlock)
    int b, a, A_log, dt_bias, g, o_norm, o;  // a, A_log, dt_bias, g: −1 in DeltaNet
} pn_bu_delta_ix;

// Saved activations of the delta tail: β, a-projection, g (N, H); delta-rule output,
// gate pre-activation (N, H·V); norm rstd (N·H); norm output (N, H·V).
typedef struct {
    float *beta, *ap, *g;
    float *o, *gp, *ro, *on;
} pn_bu_delta_act;

// Backward scratch of the delta tail; dq, dk, dv are the gradients the delta rule
// hands to the block's q/k/v path.
typedef struct {
    float *don, *dout, *dgp, *dq, *dk, *dv, *dbeta, *dbp, *dg, *dap;
} pn_bu_delta_grad;

// A_log ~ U(0, 16) and dt_bias (pn_bu_init_*), streams separated per layer.
void pn_bu_delta_init_gate(const pn_block *b, const pn_bu_delta_ix *ix, uint64_t seed);

// Slice layouts (pn_bu_take convention); absent parts get NULL and no floats.
void pn_bu_delta_act_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, float **cur, size_t *count,
                            pn_bu_delta_act *a);
void pn_bu_delta_grad_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, float **cur,
                             size_t *count, pn_bu_delta_grad *s);

// y (B·T, C) from x and the block's q (B, T, H, K), k, v (B, T, H, V). state == NULL:
// training (fresh zero state); otherwise S (H, K, V) of sequence b sits at
// state + b·stride and is updated in place.
void pn_bu_delta_fwd(const pn_block *b, const pn_bu_delta_ix *ix, const pn_bu_delta_act *a, float *y, const float *x,
                     const float *q, const float *k, const float *v, int B, int T, float *state, int64_t stride,
                     int chunk);
// Adds into dx and the tail's parameter gradients; leaves dq, dk, dv in s (which the
// caller zeroed).
void pn_bu_delta_bwd(const pn_block *b, const pn_bu_delta_ix *ix, const pn_bu_delta_act *a, const pn_bu_delta_grad *s,
                     float *dx, const float *dy, const float *x, const float *q, const float *k, const float *v, int B,
                     int T);

// Prefill/decode: a fresh (pos == 0) state of B sequences starts at zero.
void pn_bu_state_reset(float *state, int B, int64_t stride, int64_t pos);

// A whole short-conv delta block (Gated DeltaNet, DeltaNet). Decode state per
// sequence: [S (H, K, V) | W−1 raw rows of x Wqᵀ (H·K) | of x Wkᵀ (H·K) | of x Wvᵀ (H·V)].
size_t pn_bu_convdelta_act_floats(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int B, int T);
// Prefill and decode keep their activations in scratch, so scratch covers both.
size_t pn_bu_convdelta_scratch_floats(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int B, int T);
pn_state_size pn_bu_convdelta_state_size(const pn_block_cfg *c);
int64_t pn_bu_convdelta_state_stride(const pn_block_cfg *c);
// The forward of all three modes (see pn_bu_delta_fwd for state).
void pn_bu_convdelta_run(const pn_block *b, const pn_bu_delta_ix *ix, float *y, const float *x, int B, int T,
                         float *act, float *state, int chunk);
void pn_bu_convdelta_bwd(const pn_block *b, const pn_bu_delta_ix *ix, float *dx, const float *dy, const float *x,
                         int B, int T, const float *act, float *scratch);
