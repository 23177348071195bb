// pn_cuda_engine.h — extern "C" kernels of the CUDA hybrid inference engine
// (search/engine_cuda.c): engine_kernels.cu (runtime helpers, embedding, norms, MLP,
// argmax), decode_attn.cu (attention: q/k/v + RoPE + cache append, split-K decode,
// a simple prefill fallback) and decode_linear.cu (the linear blocks' fused
// recurrent steps and the pieces of their chunked prefill).
//
// Conventions (as pn_cuda_ops.h): device pointers unless a comment says "host"; work
// is queued on the backend stream (pn_cuda_stream_get) and nothing synchronises
// unless a comment says so. Storage: weights and the activations that feed a GEMM
// bf16; the residual stream, projections read by our own kernels, gates, recurrent
// and conv states fp32; KV caches bf16. Positions live in device memory (`pos`, one
// int64: the tokens every sequence already holds) so that a captured CUDA graph of a
// decode step stays valid from step to step.
//
// Cache layouts: KV (B, Lc, Hkv, D) per layer, position p at slot p % Lc (a ring for
// swa, Lc = min(window, context); for attn Lc = context so the slot is p). Conv states
// are rings too: (B, W, D) fp32, position p at slot p % W; a reader of position p
// needs p−W+1 .. p−1, which never share a slot with p, so a step can write its own
// row while other blocks still read the old ones. Positions < 0 read as zero, and a
// recurrent state at pos == 0 reads as zero, so a reset needs no memset.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- runtime (engine_kernels.cu)
// 1 when kernels of this build may be captured into CUDA graphs: debug builds (no
// NDEBUG) synchronise after every launch (PN_CHECK_LAUNCH), which capture forbids.
int pn_cuda_eng_graphs_supported(void);
void *pn_cuda_eng_stream_create(void);  // a non-blocking cudaStream_t
void pn_cuda_eng_stream_destroy(void *stream);
// Graph capture of everything queued on the backend stream between begin and end
// (relaxed mode); end instantiates and returns the executable graph.
void pn_cuda_eng_graph_begin(void);
void *pn_cuda_eng_graph_end(void);
void pn_cuda_eng_graph_launch(void *exec);
void pn_cuda_eng_graph_destroy(void *exec);
void *pn_cuda_eng_event_create(void);
void pn_cuda_eng_event_destroy(void *ev);
void pn_cuda_eng_event_record(void *ev);
double pn_cuda_eng_event_ms(void *start, void *stop);  // waits for stop
// Host → device copy ordered on the backend stream; the host buffer may be reused
// when the call returns (pageable memory is staged). Does not wait for the device.
void pn_cuda_eng_upload_async(void *dst, const void *host_src, size_t bytes);
void pn_cuda_eng_mem_info(size_t *free_bytes, size_t *total_bytes);
// Device copy bandwidth in bytes/s (read + written): median of 5 cudaMemcpyAsync D2D
// copies of `bytes` after a warm-up, timed with events. Allocates 2·bytes (freed).
double pn_cuda_eng_copy_bandwidth(size_t bytes);
// What pn_cuda_alloc takes from the driver for a request (its size rounding).
size_t pn_cuda_eng_alloc_rounded(size_t bytes);

// ---------------------------------------------------------------- small kernels (engine_kernels.cu)
void pn_cuda_eng_pos_set(int64_t *pos, int64_t value);
void pn_cuda_eng_pos_add(int64_t *pos, int64_t delta);
// x (N, C) fp32 = table (V, C) bf16 rows ids (N).
void pn_cuda_eng_embed(float *x, const int64_t *ids, const pn_bf16 *table, int64_t N, int C);
// y (N, C) bf16 = x · rstd · w, rows of x at stride ldx (fp32), w (C) fp32,
// rstd = 1/sqrt(mean(x²) + eps). y_lo (N, C), when not NULL, = bf16(value − y): the
// low plane of a bf16x2 split (hi + lo holds ~16 mantissa bits), so a GEMM run over
// both planes and summed in fp32 sees the fp32 value almost exactly.
void pn_cuda_eng_rmsnorm(pn_bf16 *y, pn_bf16 *y_lo, const float *x, int64_t ldx, const float *w, int64_t N, int C,
                         float eps);
// h (N, I) bf16 = silu(gate) · up with gu (N, 2I) fp32 = [gate | up] per row; h_lo as
// pn_cuda_eng_rmsnorm's y_lo (may be NULL).
void pn_cuda_eng_swiglu(pn_bf16 *h, pn_bf16 *h_lo, const float *gu, int64_t N, int I);
// ids (B) = argmax of each logits row (B, V) fp32, the lowest id on ties.
void pn_cuda_eng_argmax(int64_t *ids, const float *logits, int B, int V);
// y (N, D) = act(x) for rows of x at stride ldx; act 0 = identity, 1 = silu, 2 = sigmoid,
// 3 = tanh.
void pn_cuda_eng_act_rows(void *y, pn_cuda_dtype y_dt, const float *x, int64_t ldx, int64_t N, int D, int act);
// y (N, D) += b (D) bf16 on every row (fp32 y).
void pn_cuda_eng_bias_rows(float *y, const pn_bf16 *b, int64_t N, int D);

// ---------------------------------------------------------------- attention (decode_attn.cu)
// 1 when the decode kernel supports head dim D (16, 32, 64, 128 or 256).
int pn_cuda_eng_attn_head_dim_ok(int D);
// Rows (b, t) of qkv (nb·T, ld) fp32 = [q (H·D) | k (Hkv·D) | v (Hkv·D)] at row stride
// ld, plus bias (bf16, that order) when not NULL; q and k get the per-head RMSNorm
// with qn / kn (D, fp32; eps) when not NULL, then RoPE (rotate-half) at position
// *pos + t with inv_freq (D/2, fp32). q → (nb·T, H, D) bf16. k, v → to_cache: the
// caches (B, Lc, Hkv, D) of sequences 0..nb (kc, vc already offset to the first) at
// slot (*pos + t) % Lc, only for t >= T − Lc; else → new rows (nb·T, Hkv, D).
void pn_cuda_eng_qkv_rope(pn_bf16 *q, pn_bf16 *kdst, pn_bf16 *vdst, const float *qkv, int64_t ld, const pn_bf16 *bias,
                          const float *qn, const float *kn, float qk_eps, const float *inv_freq, const int64_t *pos,
                          int nb, int T, int H, int Hkv, int D, int64_t Lc, int to_cache);
// Writes new rows (nb·T, Hkv, D) into the caches at slot (*pos + t) % Lc (t >= T − Lc).
void pn_cuda_eng_kv_append(pn_bf16 *kc, pn_bf16 *vc, const pn_bf16 *knew, const pn_bf16 *vnew, const int64_t *pos,
                           int nb, int T, int Hkv, int D, int64_t Lc);
// swa prefill: the keys a chunk at host position pos sees, in position order:
// out (nb, Tk, Hkv, D) row r = position kpos0 + r, from the ring (positions < pos)
// or the chunk's new rows (>= pos); Tk = pos + T − kpos0.
void pn_cuda_eng_swa_gather(pn_bf16 *kout, pn_bf16 *vout, const pn_bf16 *kc, const pn_bf16 *vc, const pn_bf16 *knew,
                            const pn_bf16 *vnew, int64_t pos, int64_t kpos0, int nb, int T, int Hkv, int D,
                            int64_t Lc);
// Split-K (flash-decoding) attention of one query per sequence over its cache:
// q (B, H, D) bf16; caches (B, Lc, Hkv, D); the valid slots are 0 .. min(*pos + 1, Lc)
// (the current token's row already appended; for swa the ring holds exactly the
// window, in any order, which softmax does not mind). The slots are cut into
// partitions of part_len keys (a multiple of 32, <= 512); each (sequence, KV head,
// partition) block loads its K/V rows once for all the query heads of the GQA
// group (QKᵀ on tensor cores, mma m16n8k16 bf16 with the group's heads as rows),
// and writes an unnormalised partial output with its max and sum; a combine kernel
// merges the partitions into o (B, H, D) bf16. n_parts >= ceil(Lc / part_len) fixes
// the grid (graph-stable); blocks past the current length exit at once.
// Scratch: part_o (B·H·n_parts·D) and part_ml (B·H·n_parts·2) floats.
int pn_cuda_eng_attn_part_len(int B, int Hkv, int64_t Lc);
// An upper bound of B·H·n_parts for that part_len that is non-decreasing in B (so a
// byte count built on it stays monotone for the max-batch bisection).
int64_t pn_cuda_eng_attn_part_slots_bound(int B, int H, int Hkv, int64_t Lc);
void pn_cuda_eng_attn_decode(pn_bf16 *o, const pn_bf16 *q, const pn_bf16 *kc, const pn_bf16 *vc, const int64_t *pos,
                             int B, int H, int Hkv, int D, int64_t Lc, int part_len, int n_parts, float scale,
                             float *part_o, float *part_ml);
// Reference causal attention with the contract of pn_cuda_attn_fwd (cuDNN; see
// engine_cuda.c): q (B, Tq, Hq, D); k, v (B, Tk, Hkv, D) with batch stride
// kv_batch_stride elements (0 = Tk·Hkv·D); o (B, Tq, Hq, D); queries aligned
// bottom-right, key j visible iff j <= pos(i) and (window <= 0 or j > pos(i) −
// window). One warp per (b, query, head), fp32 online softmax: correct, not fast.
void pn_cuda_eng_attn_fwd_simple(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                                 const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int64_t kv_batch_stride,
                                 pn_bf16 *o);

// ---------------------------------------------------------------- linear blocks (decode_linear.cu)
// The delta-rule family (jetblock, gated_deltanet, deltanet) as one fused recurrent
// scan: per (sequence, head, 32 value columns) and token t of T, position *pos + t:
// q, k, v from the projections (static short conv over the history, or JetBlock's
// dynamic conv on v, or none), silu, q/k L2 norm (eps 1e-6), β = sigmoid(b), decay
// α = exp(−exp(A_log)·softplus(a + dt_bias)) (none when a_off < 0), then S' = α S;
// u = β (v − S'ᵀk); S = S' + k uᵀ; o = Sᵀ(scale q). The state is read once before the
// first token and written once after the last. Rows n = b·T + t: projections at
// proj + n·ld, outputs o + n·H·V. The conv histories come from the rings; with
// ring_write (T must be 1: decode) the token's raw rows are stored into the rings,
// otherwise the caller runs pn_cuda_eng_ring_update afterwards. W <= 8.
typedef struct {
    const float *proj;
    int64_t ld;
    int q_off, k_off, v_off, a_off, b_off;   // columns in a projection row; a_off < 0: no decay
    const float *q_conv, *k_conv, *v_conv;   // static conv weights (D, W) fp32, or NULL
    const float *v_kern;                     // JetBlock: per-token taps (H·V, W) at v_kern + n·kern_ld
    int64_t kern_ld;
    const float *v_kern_bias;                // (H·V·W) added to v_kern
    float *q_ring, *k_ring, *v_ring;         // (B, W, H·K | H·K | H·V) rings, NULL where no conv
    const float *A_log, *dt_bias;            // (H) fp32
    float *S;                                // (B, H, K, V) fp32
    float *o;                                // (B·T, H, V) fp32
    const int64_t *pos;
    int H, K, V, W;
    int T;                                   // tokens per sequence in this call
    int ring_write;                          // store the raw rows into the rings (T = 1 only)
    float scale;
} pn_cuda_delta_step_args;
void pn_cuda_eng_delta_step(const pn_cuda_delta_step_args *a, int B);

// y (nb·T, D) = act(conv_t) for rows x (nb·T, ·) at stride ldx, channels 0..D, at
// positions *pos + t, taps from the ring (B, W, D) of sequences 0..nb for positions
// before *pos. Static weights w (D, W) or per-token kernels kern (row n at kern +
// n·kern_ld, (D, W)) + kern_bias (D·W, may be NULL); bias (D) or NULL; act as
// pn_cuda_eng_act_rows. y bf16 or fp32.
void pn_cuda_eng_conv_rows(void *y, pn_cuda_dtype y_dt, const float *x, int64_t ldx, const float *w,
                           const float *kern, int64_t kern_ld, const float *kern_bias, const float *bias,
                           const float *ring, const int64_t *pos, int nb, int T, int D, int W, int act);
// Stores the chunk's last rows x (nb·T, D) at stride ldx into the ring (after
// pn_cuda_eng_conv_rows has read it).
void pn_cuda_eng_ring_update(float *ring, const float *x, int64_t ldx, const int64_t *pos, int nb, int T, int D, int W);
// Gates of the delta family for N rows: beta (N, H) = sigmoid(proj[b_off + h]);
// g (N, H) = −exp(A_log)·softplus(proj[a_off + h] + dt_bias) when g != NULL.
void pn_cuda_eng_delta_gates(float *beta, float *g, const float *proj, int64_t ld, int b_off, int a_off,
                             const float *A_log, const float *dt_bias, int64_t N, int H);
// y (N·H, V) bf16 = x · rstd · w · silu(gate) per (row, head) of V features,
// rstd = 1/sqrt(mean(x²) + eps); x (N, H·V) fp32; gate rows at gate + n·ldg (H·V),
// or NULL (plain RMSNorm); w (V) fp32. y_lo as pn_cuda_eng_rmsnorm's (may be NULL).
void pn_cuda_eng_gated_rmsnorm(pn_bf16 *y, pn_bf16 *y_lo, const float *x, const float *w, const float *gate,
                               int64_t ldg, int64_t N, int H, int V, float eps);

// The simple / gated linear attention family (gla, retnet, mamba2) as one recurrent
// scan, same grid and register tiling as the delta scan: per key row r the decay α_r,
// S = diag(α) S + k vᵀ, o = Sᵀ(scale q) (+ D·x for mamba2), computed in one pass from
// the old state as o = Σ_r α_r q̃_r S_r + (q̃ᵀk) v. Row n = b·T + t of src holds the
// token's q / k / v sources: q and k of head h at off + (h / qk_hpg)·K, v at v_off + h·V.
// decay: PN_CUDA_DECAY_GLA: α_r = exp(logsigmoid(gk + gk_bias)/16) per key (gk rows
// at gk + n·gk_ld, H·K); PN_CUDA_DECAY_RETNET: α = 1 − 2^(−5−h) per head (as
// exp(log1p(·)) in fp32, the CPU's bits); PN_CUDA_DECAY_MAMBA2: dt = softplus(dt_raw +
// dt_bias) (raw at dt + n·dt_ld + h), α = exp(−dt·exp(A_log)), v = dt·x, o += D·x.
// inv_freq (K/2) not NULL: RoPE (rotate-half) on q and k at position *pos + t.
// o (B·T, H, V) fp32; S (B, H, K, V) fp32, read as zero at *pos == 0.
enum { PN_CUDA_DECAY_GLA = 0, PN_CUDA_DECAY_RETNET = 1, PN_CUDA_DECAY_MAMBA2 = 2 };
typedef struct {
    const float *src;
    int64_t ld;
    int q_off, k_off, v_off;
    int qk_hpg;             // heads sharing one q/k (mamba2: H / n_groups); 1 = per head
    const float *inv_freq;  // RoPE or NULL
    int decay;
    const float *gk;        // gla
    int64_t gk_ld;
    const float *gk_bias;
    const float *dt;        // mamba2
    int64_t dt_ld;
    const float *dt_bias, *A_log, *Dskip;
    float *S, *o;
    const int64_t *pos;
    int H, K, V, T;
    float scale;
} pn_cuda_gla_scan_args;
void pn_cuda_eng_gla_scan(const pn_cuda_gla_scan_args *a, int B);
// mamba2's output norm: y (N, G·D) bf16 = u · rstd(u) · w with u = x · silu(gate) and
// the RMS over each group of D features; gate rows at gate + n·ldg; w (G·D) fp32.
void pn_cuda_eng_gate_rmsnorm_groups(pn_bf16 *y, const float *x, const float *gate, int64_t ldg, const float *w,
                                     int64_t N, int G, int D, float eps);

// ---- rwkv7 (decode_linear.cu)
// Token shift + the six lerps: out (N, 6·C) bf16, row n = [x_r | x_w | x_k | x_v | x_a | x_g]
// with x_* = x + (x_{t−1} − x)·mu_* (mu (6, C) fp32), x (N, C) bf16 rows of nb sequences
// × T tokens; x_{−1} of sequence b is prev[b] (fp32 (B, C)), zero when *pos == 0.
void pn_cuda_eng_rwkv_shift(pn_bf16 *out, const pn_bf16 *x, const float *prev, const float *mu, const int64_t *pos,
                            int nb, int T, int C);
// prev[b] = x row (b, T − 1) (after pn_cuda_eng_rwkv_shift has read it).
void pn_cuda_eng_rwkv_prev_update(float *prev, const pn_bf16 *x, int nb, int T, int C);
// Per (row, head): w ← −e^−0.5·sigmoid(w + w_bias); a = sigmoid(a_io + a_bias);
// κ̂ = l2n(k·k_k) (eps 1e-6); k ← k·(1 + (a − 1)·k_a); a_io ← −κ̂; s_io ← κ̂·a (b of the
// dplr); v: first layer: v_first ← v; else v ← v + (v_first − v)·sigmoid(s_raw + v_bias)
// where s_raw is read from s_io before it is overwritten. All (N, C) fp32.
void pn_cuda_eng_rwkv_prep(float *w, const float *w_bias, float *k, const float *k_k, const float *k_a, float *a_io,
                           const float *a_bias, float *v, float *v_first, float *s_io, const float *v_bias, int first,
                           int64_t N, int H, int K);
// The dplr recurrence (S = diag(e^w) S + k vᵀ + b (aᵀ S_prev), o = Sᵀ r, V = K) as a scan
// like the others: r, w, k, v, a, b (B·T, H·K) fp32 rows; S (B, H, K, K); o (B·T, H·K).
typedef struct {
    const float *r, *w, *k, *v, *a, *b;
    float *S, *o;
    const int64_t *pos;
    int H, K, T;
} pn_cuda_dplr_scan_args;
void pn_cuda_eng_dplr_scan(const pn_cuda_dplr_scan_args *a, int B);
// y (N, C) bf16 = (GroupNorm_heads(o; gn_w, gn_b, eps) + Σ_d(r·k·r_k)·v) · g per (row, head).
void pn_cuda_eng_rwkv_out(pn_bf16 *y, const float *o, const float *r, const float *k, const float *v, const float *g,
                          const float *r_k, const float *gn_w, const float *gn_b, float eps, int64_t N, int H, int K);

#ifdef __cplusplus
}
#endif
