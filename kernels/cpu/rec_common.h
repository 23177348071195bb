// rec_common.h — internal helpers shared by the CPU linear-attention recurrences
// (ops_rec_gla.c, ops_rec_simple_gla.c, ops_rec_dplr.c); not part of kernels/ops.h.
//
// All three ops keep a state S (K, V) per (b, h), run a token-by-token form whose
// backward is BPTT over checkpoints, and a chunked form built on a chunk-local cumsum
// of the log-decay. What is the same in all of them lives here: the (b, h) indexing,
// the checkpoint / segment-recompute driver of the recurrent backward, the readout
// and the rank-1 gradient pieces every token step shares, and the chunk plumbing.
#pragma once
#include "core/common.h"
#include "kernels/ops.h"

// Accumulator of the recurrent forms. fp32 measured within ~7e-7 relative of the
// float64 fixtures (1e-5 required); double gives ~6e-8 (the fixtures' f32 cast).
typedef float rec_t;
// Recurrent backward: a checkpoint every REC_SEG tokens, so memory per head is
// O((T/REC_SEG + REC_SEG)·K·V), not O(T·K·V).
enum { REC_SEG = 64 };

// Offsets of one (b, h) pair inside the (B, T, H, ·) and (B, H, K, V) layouts.
typedef struct {
    int64_t sk, sv, sg;  // row strides between consecutive t: H·K, H·V, H
    int64_t ok, ov, og;  // offsets of (b, 0, h, 0)
    int64_t os;          // offset of the state (b, h)
} pn_rc_head;

pn_rc_head pn_rc_head_at(const pn_rec_shape *s, int b, int h);

// S = h0 (n values), or zeros when h0 == NULL.
void pn_rc_load(rec_t *S, const float *h0, int64_t n);
void pn_rc_load_f32(float *S, const float *h0, int64_t n);
// o (V) = scale · Sᵀ q.
void pn_rc_readout(float *o, const rec_t *S, const float *q, int K, int V, float scale);
// dS (K, V) += sc · q doᵀ: the readout's share of the state gradient.
void pn_rc_ds_add_readout(rec_t *dS, const float *q, const float *dout, int K, int V, rec_t sc);
// dv (V) += dSᵀ k: the gradient of v through the rank-1 write k vᵀ.
void pn_rc_dv_add(float *dv, const rec_t *dS, const float *k, int K, int V);

// One token step S ← f_t(S) of an op, and the backward of token t given the states
// after (St) and before (Sp) it; it adds the token's input gradients and turns dS
// (w.r.t. S_t) into the gradient w.r.t. S_{t−1}.
typedef void (*pn_rc_step_fn)(void *ctx, int t, rec_t *S);
typedef void (*pn_rc_token_bwd_fn)(void *ctx, int t, const rec_t *St, const rec_t *Sp, rec_t *dS);

// Per-thread buffers of the recurrent backward: ck (T/REC_SEG + 1, K, V) checkpoints,
// Ss (REC_SEG + 1, K, V) states of the current segment, dS (K, V).
typedef struct {
    rec_t *ck, *Ss, *dS;
} pn_rc_bptt;

void pn_rc_bptt_alloc(pn_rc_bptt *w, int T, int64_t KV);
void pn_rc_bptt_free(pn_rc_bptt *w);
// BPTT over one head of T tokens: checkpoints from h0, then segment by segment in
// reverse, recompute the segment's states and run `token` from its last token down.
// h0, dht, dh0 point at this head's state (or are NULL); dh0 += the final dS.
void pn_rc_bptt_head(int T, int64_t KV, const float *h0, const float *dht, float *dh0, pn_rc_bptt *w,
                     pn_rc_step_fn step, pn_rc_token_bwd_fn token, void *ctx);

// Chunked forms: G (L, K) = cumsum over the chunk's L rows of g (rows `stride` apart).
void pn_rc_chunk_cumsum(float *G, const float *g, int64_t stride, int L, int K);
// M (K, V) ← diag(e^{g}) M.
void pn_rc_scale_rows_exp(float *M, const float *g, int K, int V);
// Chunk-start states (T/C + 1, K, V) of one head for the chunked backward.
float *pn_rc_chunk_states_alloc(int T, int C, int64_t KV);
