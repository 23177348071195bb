// attn.c — the pretrained softmax attention as a token mixer: `attn` (full causal)
// and `swa` (the same weights with a sliding window of cfg.window keys).
//
// Qwen2 / Llama / Qwen3 attention (BLOCKS.md "attn"): q, k, v projections
// (biases when cfg.qkv_bias), Qwen3's per-head q/k RMSNorm before RoPE
// (cfg.qk_norm), rotate-half RoPE, GQA softmax attention with scale K^-1/2, o_proj
// (with a bias when cfg.o_bias: Llama / Qwen3 with attention_bias = true).
//
// Decode state per sequence: K cache then V cache, each (H_kv, Lc, K) with
// Lc = L (attn) or min(window, L) (swa, a ring indexed by position % Lc), so the
// rows one KV head attends over are contiguous. Keys are stored after norm +
// RoPE at their absolute position, so a prefill/decode step only rotates the
// new tokens. A prefill from position 0 reuses the training kernel. After that,
// decode and chunked prefill share one flash-style loop (attn_rows) per
// (sequence, KV head): score and P·V products of key tiles through pn_gemm, the
// softmax online over the tiles with a vectorised exp pass; in decode the
// group's query heads are the rows of one product, so each cached row is read
// once. Scratch does not depend on the context (see attn_prefill).
#include "block.h"
#include "kernels/ops.h"
#include <math.h>

typedef struct {
    int wq, bq, wk, bk, wv, bv, wo, bo, qn, kn;  // parameter indices, -1 = absent
} attn_idx;

static attn_idx attn_index(const pn_block_cfg *c) {
    attn_idx ix;
    int n = 0;
    ix.wq = n++;
    ix.bq = c->qkv_bias ? n++ : -1;
    ix.wk = n++;
    ix.bk = c->qkv_bias ? n++ : -1;
    ix.wv = n++;
    ix.bv = c->qkv_bias ? n++ : -1;
    ix.wo = n++;
    ix.bo = c->o_bias ? n++ : -1;
    ix.qn = c->qk_norm ? n++ : -1;
    ix.kn = c->qk_norm ? n++ : -1;
    return ix;
}

static const float *par(const pn_block *b, int i) { return i >= 0 ? b->params[i] : NULL; }
static float *grd(const pn_block *b, int i) { return i >= 0 ? b->grads[i] : NULL; }

static void attn_defaults(pn_block_cfg *c) {
    if (c->H <= 0) c->H = c->C >= 64 ? c->C / 64 : 1;
    if (c->K <= 0) c->K = c->C / c->H;
    if (c->H_kv <= 0) c->H_kv = c->H;
    if (c->rope_theta == 0.0f) c->rope_theta = 10000.0f;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-6f;
}

static void swa_defaults(pn_block_cfg *c) {
    attn_defaults(c);
    if (c->window <= 0) c->window = 512;
}

static void spec_set(pn_param_spec *p, const char *name, int ndim, int64_t d0, int64_t d1, pn_init_kind init,
                     float a, int wd) {
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->init = init;
    p->a = a;
    p->weight_decay = wd;
}

static int attn_params(const pn_block_cfg *c, pn_param_spec *out) {
    const int64_t C = c->C, QD = (int64_t)c->H * c->K, KD = (int64_t)c->H_kv * c->K;
    int n = 0;
    spec_set(&out[n++], "q_proj.weight", 2, QD, C, PN_INIT_NORMAL, 0.02f, 1);
    if (c->qkv_bias) spec_set(&out[n++], "q_proj.bias", 1, QD, 0, PN_INIT_ZERO, 0, 0);
    spec_set(&out[n++], "k_proj.weight", 2, KD, C, PN_INIT_NORMAL, 0.02f, 1);
    if (c->qkv_bias) spec_set(&out[n++], "k_proj.bias", 1, KD, 0, PN_INIT_ZERO, 0, 0);
    spec_set(&out[n++], "v_proj.weight", 2, KD, C, PN_INIT_NORMAL, 0.02f, 1);
    if (c->qkv_bias) spec_set(&out[n++], "v_proj.bias", 1, KD, 0, PN_INIT_ZERO, 0, 0);
    spec_set(&out[n++], "o_proj.weight", 2, C, QD, PN_INIT_NORMAL, 0.02f, 1);
    if (c->o_bias) spec_set(&out[n++], "o_proj.bias", 1, C, 0, PN_INIT_ZERO, 0, 0);
    if (c->qk_norm) {
        spec_set(&out[n++], "q_norm.weight", 1, c->K, 0, PN_INIT_ONE, 0, 0);
        spec_set(&out[n++], "k_norm.weight", 1, c->K, 0, PN_INIT_ONE, 0, 0);
    }
    return n;
}

// Saved activations for (B, T), N = B·T: q (N,H,K) and k (N,Hkv,K) after norm +
// RoPE, v (N,Hkv,K), o (N,H,K), lse (B,H,T); with qk_norm also the raw q, k
// projections and their rstd (N·H, N·Hkv).
typedef struct {
    float *q, *k, *v, *o, *lse, *qraw, *kraw, *qrstd, *krstd;
} attn_act;

static size_t attn_act_layout(const pn_block_cfg *c, int B, int T, float *base, attn_act *a) {
    const size_t N = (size_t)B * T, QN = N * c->H * c->K, KN = N * c->H_kv * c->K;
    size_t off = 0;
#define TAKE(field, n)                                    \
    do {                                                  \
        if (a) a->field = base ? base + off : NULL;       \
        off += (n);                                       \
    } while (0)
    TAKE(q, QN);
    TAKE(k, KN);
    TAKE(v, KN);
    TAKE(o, QN);
    TAKE(lse, (size_t)B * c->H * T);
    if (c->qk_norm) {
        TAKE(qraw, QN);
        TAKE(kraw, KN);
        TAKE(qrstd, N * c->H);
        TAKE(krstd, N * c->H_kv);
    } else if (a) {
        a->qraw = a->kraw = a->qrstd = a->krstd = NULL;
    }
#undef TAKE
    return off;
}

static size_t attn_act_floats(const pn_block_cfg *c, int B, int T) { return attn_act_layout(c, B, T, NULL, NULL); }


static int attn_window(const pn_block *b) { return b->type->name[0] == 's' ? b->cfg.window : 0; }

// q, k, v projections + q/k norm + RoPE at positions pos.. into the given buffers.
// qraw/kraw/rstds may alias q/k (norm in place) when the caller needs no backward.
static void attn_qkv(const pn_block *b, const float *x, int B, int T, int64_t pos, float *q, float *k, float *v,
                     float *qraw, float *kraw, float *qrstd, float *krstd) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    const int64_t N = (int64_t)B * T;
    const int QD = c->H * c->K, KD = c->H_kv * c->K;
    pn_linear_fwd(c->qk_norm ? qraw : q, x, par(b, ix.wq), par(b, ix.bq), N, c->C, QD);
    pn_linear_fwd(c->qk_norm ? kraw : k, x, par(b, ix.wk), par(b, ix.bk), N, c->C, KD);
    pn_linear_fwd(v, x, par(b, ix.wv), par(b, ix.bv), N, c->C, KD);
    if (c->qk_norm) {
        pn_rmsnorm_fwd(q, qrstd, qraw, par(b, ix.qn), N * c->H, c->K, c->norm_eps);
        pn_rmsnorm_fwd(k, krstd, kraw, par(b, ix.kn), N * c->H_kv, c->K, c->norm_eps);
    }
    pn_rope_fwd(q, B, T, c->H, c->K, pos, c->rope_theta);
    pn_rope_fwd(k, B, T, c->H_kv, c->K, pos, c->rope_theta);
}

static void attn_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                         pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    attn_act a;
    attn_act_layout(c, B, T, act, &a);
    attn_qkv(b, x, B, T, 0, a.q, a.k, a.v, a.qraw, a.kraw, a.qrstd, a.krstd);
    pn_attention_fwd(a.o, a.lse, a.q, a.k, a.v, B, T, c->H, c->H_kv, c->K, attn_window(b),
                     1.0f / sqrtf((float)c->K));
    pn_linear_fwd(y, a.o, par(b, ix.wo), par(b, ix.bo), (int64_t)B * T, c->H * c->K, c->C);
}

static void attn_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                          const float *act, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    const int64_t N = (int64_t)B * T;
    const int QD = c->H * c->K, KD = c->H_kv * c->K;
    const size_t QN = (size_t)N * QD, KN = (size_t)N * KD;
    attn_act a;
    attn_act_layout(c, B, T, (float *)act, &a);
    float *dout = scratch, *dq = dout + QN, *dk = dq + QN, *dv = dk + KN;
    memset(scratch, 0, (2 * QN + 2 * KN) * sizeof(float));
    pn_linear_bwd(dout, grd(b, ix.wo), grd(b, ix.bo), dy, a.o, par(b, ix.wo), N, QD, c->C);
    pn_attention_bwd(dq, dk, dv, dout, a.q, a.k, a.v, a.o, a.lse, B, T, c->H, c->H_kv, c->K, attn_window(b),
                     1.0f / sqrtf((float)c->K));
    pn_rope_bwd(dq, B, T, c->H, c->K, 0, c->rope_theta);
    pn_rope_bwd(dk, B, T, c->H_kv, c->K, 0, c->rope_theta);
    if (c->qk_norm) {
        float *dqraw = dv + KN, *dkraw = dqraw + QN;
        memset(dqraw, 0, (QN + KN) * sizeof(float));
        pn_rmsnorm_bwd(dqraw, grd(b, ix.qn), dq, a.qraw, par(b, ix.qn), a.qrstd, N * c->H, c->K);
        pn_rmsnorm_bwd(dkraw, grd(b, ix.kn), dk, a.kraw, par(b, ix.kn), a.krstd, N * c->H_kv, c->K);
        dq = dqraw;
        dk = dkraw;
    }
    pn_linear_bwd(dx, grd(b, ix.wq), grd(b, ix.bq), dq, x, par(b, ix.wq), N, c->C, QD);
    pn_linear_bwd(dx, grd(b, ix.wk), grd(b, ix.bk), dk, x, par(b, ix.wk), N, c->C, KD);
    pn_linear_bwd(dx, grd(b, ix.wv), grd(b, ix.bv), dv, x, par(b, ix.wv), N, c->C, KD);
}

static int64_t attn_cache_len(const pn_block_cfg *c, const pn_block_type *t, int64_t L) {
    return t->name[0] == 's' ? PN_MIN((int64_t)c->window, L) : L;
}

static pn_state_size attn_state_size(const pn_block_cfg *c, int64_t L) {
    pn_state_size s = {2 * (int64_t)c->H_kv * c->K * L, 0, 0};
    return s;
}

static pn_state_size swa_state_size(const pn_block_cfg *c, int64_t L) {
    pn_state_size s = {2 * (int64_t)c->H_kv * c->K * PN_MIN((int64_t)c->window, L), 0, 0};
    return s;
}

// ---------------------------------------------------------------- attending to a cache

#define ATT_KT 128  // keys per tile: a K and a V tile (KT · K floats each) stay in L2 while reused
#define ATT_QT 32   // query rows per tile in a chunked prefill

// e^x for x <= 0 (softmax arguments s − max), written so that GCC vectorises a
// loop calling it (glibc's expf is one scalar call per key): x = n·ln2 + r with
// |r| <= ln2/2, e^r by its degree-6 Taylor polynomial, 2^n written into the
// exponent bits; relative error < 3e-7 over [−87, 0] (2 ulp). Below −87 (under
// float's normal range) the result is 0, which also covers x = −inf.
static inline float exp_neg(float x) {
    const float xc = x < -87.0f ? -87.0f : x;
    const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 · 2^23
    const float r = (xc - n * 0.693145751953125f) - n * 1.42860677e-6f;  // ln2 split hi + lo
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23);  // n in [−126, 0]
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : p * scale;
}

// Per sequence the cache holds K (H_kv, Lc, K) then V (H_kv, Lc, K): one KV
// head's rows are contiguous, so a key range is one stride-K run.
static float *cache_k(float *state, int64_t b, int hk, int64_t Lc, int KD, int K) {
    return state + b * 2 * Lc * KD + (int64_t)hk * Lc * K;
}

// attn_rows is also compiled for AVX-512 and AVX2 and picked at load time: the
// build targets baseline x86-64 (SSE2) and its exp pass is a decode step's main
// arithmetic outside OpenBLAS (measured: a third faster with AVX-512). GCC on
// x86-64 only; ASan builds keep one plain version.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define ATT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ATT_CLONES
#endif

// n keys at consecutive positions pos0.. as contiguous rows of K floats.
typedef struct {
    const float *k, *v;
    int64_t n, pos0;
} kv_run;

// Causal (optionally windowed) attention of `rows` query rows of one KV head's
// queries over the keys of `runs` (in position order): query row r sits at
// position p0 + r·dp and sees positions [p − window + 1, p] (all p when window
// is 0). dp = 1: a tile of one head's queries in a chunk; dp = 0: the query
// heads of a GQA group at one decode position, which then share every K/V read.
// q, o rows at strides ldq, ldo. Flash-style over key tiles: S = q kᵀ and
// o += P v through pn_gemm (OpenBLAS picks the machine's vector width; the build
// targets baseline x86-64), the softmax online per row (m, l: rows) with one
// rescale per tile and a vectorised exp pass, so memory stays
// ATT_QT × ATT_KT floats whatever the context.
ATT_CLONES static void attn_rows(float *o, int64_t ldo, const float *q, int64_t ldq, int rows, int64_t p0, int dp,
                      const kv_run *runs, int n_runs, int window, int K, float scale, float *m, float *l) {
    float S[ATT_QT * ATT_KT];
    PN_ASSERT(rows <= ATT_QT);
    const int64_t plast = p0 + (int64_t)(rows - 1) * dp;
    for (int r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        memset(o + r * ldo, 0, (size_t)K * sizeof(float));
    }
    for (int ru = 0; ru < n_runs; ru++) {
        const kv_run *R = &runs[ru];
        const int64_t jlo = PN_MAX(R->pos0, window > 0 ? p0 - window + 1 : 0);
        const int64_t jhi = PN_MIN(R->pos0 + R->n - 1, plast);
        for (int64_t j0 = jlo; j0 <= jhi; j0 += ATT_KT) {
            const int nk = (int)PN_MIN((int64_t)ATT_KT, jhi - j0 + 1);
            const float *kt = R->k + (j0 - R->pos0) * K, *vt = R->v + (j0 - R->pos0) * K;
            pn_gemm(0, 1, rows, nk, K, scale, q, ldq, kt, K, 0.0f, S, nk);
            for (int r = 0; r < rows; r++) {
                const int64_t p = p0 + (int64_t)r * dp, lo = window > 0 ? p - window + 1 : 0;
                const int i0 = (int)PN_MAX((int64_t)0, lo - j0), i1 = (int)PN_MIN((int64_t)nk - 1, p - j0);
                float *sr = S + (int64_t)r * nk;
                if (i0 > i1) {  // no visible key in this tile
                    memset(sr, 0, (size_t)nk * sizeof(float));
                    continue;
                }
                float mt = -INFINITY;
#pragma omp simd reduction(max : mt)
                for (int i = i0; i <= i1; i++) mt = sr[i] > mt ? sr[i] : mt;
                if (mt > m[r]) {
                    const float f = exp_neg(m[r] - mt);  // 0 on the first visible tile (m = −inf)
                    float *orow = o + r * ldo;
                    for (int e = 0; e < K; e++) orow[e] *= f;
                    l[r] *= f;
                    m[r] = mt;
                }
                const float mr = m[r];
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int i = 0; i < nk; i++) {
                    const float e = i >= i0 && i <= i1 ? exp_neg(sr[i] - mr) : 0.0f;
                    sr[i] = e;
                    sum += e;
                }
                l[r] += sum;
            }
            pn_gemm(0, 0, rows, K, nk, 1.0f, S, nk, vt, K, 1.0f, o, ldo);
        }
    }
    for (int r = 0; r < rows; r++) {
        const float inv = 1.0f / l[r];
        for (int e = 0; e < K; e++) o[r * ldo + e] *= inv;
    }
}

// Floats of swa's per-(sequence, KV head) gather buffer for a chunk of T > 1
// tokens after position 0: the window's cached keys and the chunk's, K and V.
static size_t attn_gather_floats(const pn_block_cfg *c, int T) {
    return T > 1 && c->window > 0 ? 2 * (size_t)(c->window - 1 + T) * c->K : 0;
}

static size_t attn_scratch_floats(const pn_block_cfg *c, int B, int T) {
    const size_t N = (size_t)B * T, QN = N * c->H * c->K, KN = N * c->H_kv * c->K, BHT = (size_t)B * c->H * T;
    size_t bwd = 2 * QN + 2 * KN + (c->qk_norm ? QN + KN : 0);
    size_t pre = 2 * QN + 2 * KN + 2 * BHT + N * (c->H + c->H_kv) + (size_t)B * c->H_kv * attn_gather_floats(c, T);
    return PN_MAX(bwd, pre);
}

// Prefill and decode. pos = 0: the training kernel over the chunk. pos > 0, one
// token: the new K/V row is written first (for a ring its slot held a key that
// has just left the window), then each (sequence, KV head) attends over one or
// two contiguous runs of its cache. pos > 0, a chunk: attn writes the chunk into
// its cache first and reads keys in place; swa cannot (the chunk may overwrite
// ring slots its own first queries still see), so it gathers the window's cached
// rows and the chunk's rows per (sequence, KV head) in position order into
// scratch, and the ring is written after.
static void attn_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                         int64_t L, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    const int window = attn_window(b);
    const int64_t N = (int64_t)B * T, Lc = attn_cache_len(c, b->type, L);
    const int H = c->H, Hkv = c->H_kv, QD = H * c->K, KD = Hkv * c->K, K = c->K, group = H / Hkv;
    const size_t QN = (size_t)N * QD, KN = (size_t)N * KD, BHT = (size_t)B * H * T;
    const float scale = 1.0f / sqrtf((float)K);
    PN_ASSERT(window > 0 || pos + T <= L);
    float *q = scratch, *k = q + QN, *v = k + KN, *o = v + KN, *lse = o + QN, *rstd = lse + BHT;
    float *ml = rstd + N * (H + Hkv), *gather = ml + BHT;  // running max in lse, sums in ml
    const size_t gather_n = attn_gather_floats(c, T);
    // Norm in place: q/k hold the raw projections until the norm overwrites them.
    attn_qkv(b, x, B, T, pos, q, k, v, q, k, rstd, rstd + N * H);
    const int ring = window > 0;
    const int written_first = pos > 0 && (T == 1 || !ring);
    if (pos == 0) {
        pn_attention_fwd(o, lse, q, k, v, B, T, H, Hkv, K, window, scale);
    } else {
#pragma omp parallel for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int hk = 0; hk < Hkv; hk++) {
                float *kc = cache_k(state, bb, hk, Lc, KD, K), *vc = kc + Lc * KD;
                const float *kn = k + (int64_t)bb * T * KD + (int64_t)hk * K;  // new rows, stride KD
                const float *vn = v + (int64_t)bb * T * KD + (int64_t)hk * K;
                if (written_first)
                    for (int t = 0; t < T; t++) {
                        const int64_t slot = ring ? (pos + t) % Lc : pos + t;
                        memcpy(kc + slot * K, kn + (int64_t)t * KD, (size_t)K * sizeof(float));
                        memcpy(vc + slot * K, vn + (int64_t)t * KD, (size_t)K * sizeof(float));
                    }
                if (T == 1) {
                    // The window's keys in position order: one run, or two where the ring wraps.
                    const int64_t lo = ring ? PN_MAX((int64_t)0, pos - window + 1) : 0, n = pos - lo + 1;
                    const int64_t s0 = ring ? lo % Lc : lo, n1 = PN_MIN(n, Lc - s0);
                    const kv_run runs[2] = {{kc + s0 * K, vc + s0 * K, n1, lo}, {kc, vc, n - n1, lo + n1}};
                    for (int g0 = 0; g0 < group; g0 += ATT_QT) {
                        const int64_t hq = (int64_t)bb * H + (int64_t)hk * group + g0;
                        attn_rows(o + hq * K, K, q + hq * K, K, PN_MIN(ATT_QT, group - g0), pos, 0, runs,
                                  n1 < n ? 2 : 1, window, K, scale, lse + hq, ml + hq);
                    }
                    continue;
                }
                // A chunk: keys as one run in position order, row 0 at position kpos0.
                const float *kb = kc, *vb = vc;
                int64_t kpos0 = 0;
                if (ring) {
                    float *gk = gather + ((int64_t)bb * Hkv + hk) * gather_n, *gv = gk + gather_n / 2;
                    kpos0 = PN_MAX((int64_t)0, pos - window + 1);
                    int64_t row = 0;
                    for (int64_t j = kpos0; j < pos; j++, row++) {
                        memcpy(gk + row * K, kc + (j % Lc) * K, (size_t)K * sizeof(float));
                        memcpy(gv + row * K, vc + (j % Lc) * K, (size_t)K * sizeof(float));
                    }
                    for (int t = 0; t < T; t++, row++) {
                        memcpy(gk + row * K, kn + (int64_t)t * KD, (size_t)K * sizeof(float));
                        memcpy(gv + row * K, vn + (int64_t)t * KD, (size_t)K * sizeof(float));
                    }
                    kb = gk;
                    vb = gv;
                }
                const kv_run run = {kb, vb, pos + T - kpos0, kpos0};
                for (int g = 0; g < group; g++) {
                    const int h = hk * group + g;
                    for (int t0 = 0; t0 < T; t0 += ATT_QT) {
                        const int64_t row0 = (int64_t)bb * T + t0, mi = ((int64_t)bb * H + h) * T + t0;
                        attn_rows(o + row0 * QD + (int64_t)h * K, QD, q + row0 * QD + (int64_t)h * K, QD,
                                  PN_MIN(ATT_QT, T - t0), pos + t0, 1, &run, 1, window, K, scale, lse + mi,
                                  ml + mi);
                    }
                }
            }
    }
    // Append the new keys/values unless done above; a ring only keeps the last Lc of them.
    if (!written_first)
        for (int bb = 0; bb < B; bb++)
            for (int hk = 0; hk < Hkv; hk++) {
                float *kc = cache_k(state, bb, hk, Lc, KD, K), *vc = kc + Lc * KD;
                for (int t = (int)PN_MAX((int64_t)0, T - Lc); t < T; t++) {
                    const int64_t slot = ring ? (pos + t) % Lc : pos + t, src = ((int64_t)bb * T + t) * KD + hk * K;
                    memcpy(kc + slot * K, k + src, (size_t)K * sizeof(float));
                    memcpy(vc + slot * K, v + src, (size_t)K * sizeof(float));
                }
            }
    pn_linear_fwd(y, o, par(b, ix.wo), par(b, ix.bo), N, QD, c->C);
}

static void attn_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                        float *scratch, pn_block_ctx *ctx) {
    attn_prefill(b, y, x, B, 1, state, pos, L, scratch, ctx);
}

static double attn_flops_ctx(const pn_block_cfg *c, int64_t ctx) {
    double proj = 2.0 * c->C * c->K * (2.0 * c->H + 2.0 * c->H_kv);
    return proj + 4.0 * c->H * c->K * (double)ctx;
}

static double attn_flops_per_token(const pn_block_cfg *c, int64_t L) { return attn_flops_ctx(c, L); }

static double swa_flops_per_token(const pn_block_cfg *c, int64_t L) {
    return attn_flops_ctx(c, PN_MIN((int64_t)c->window, L));
}

const pn_block_type pn_block_attn = {
    .name = "attn",
    .defaults = attn_defaults,
    .params = attn_params,
    .init_custom = NULL,
    .act_floats = attn_act_floats,
    .scratch_floats = attn_scratch_floats,
    .forward = attn_forward,
    .backward = attn_backward,
    .state_size = attn_state_size,
    .prefill = attn_prefill,
    .decode = attn_decode,
    .flops_per_token = attn_flops_per_token,
};

const pn_block_type pn_block_swa = {
    .name = "swa",
    .defaults = swa_defaults,
    .params = attn_params,
    .init_custom = NULL,
    .act_floats = attn_act_floats,
    .scratch_floats = attn_scratch_floats,
    .forward = attn_forward,
    .backward = attn_backward,
    .state_size = swa_state_size,
    .prefill = attn_prefill,
    .decode = attn_decode,
    .flops_per_token = swa_flops_per_token,
};
