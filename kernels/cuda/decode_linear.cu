// decode_linear.cu — the linear-attention blocks of the CUDA inference engine: the
// fused recurrent scan of the delta-rule family (JetBlock, Gated DeltaNet, DeltaNet)
// — one token in decode, a whole chunk in prefill — and the row kernels a prefill
// through pn_cuda_gated_delta_fwd needs (short convs over a ring state, gates) plus
// the gated output RMSNorm both use.
//
// The step is memory-bound on the fp32 state (2·K·V·4 bytes per head: read once,
// written once), so it follows kernels/cuda/gdn.cu's decode design: one block of 128
// threads per (sequence, head, 32 value columns), each thread holding a ⌈K/16⌉ × 4
// piece of the state in registers (16-byte loads, issued first), both reductions
// from the OLD state in one pass since o = S_newᵀq̃ = α Sᵀq̃ + u (k̂ᵀq̃) with
// u = β (v − α Sᵀk̂). What the fusion adds is everything between the projection GEMM
// and the state: the short conv over the ring (static weights, or JetBlock's
// per-token kernels + bias on v), silu, the q/k L2 norms, β and the decay, so one
// launch per layer replaces five and q/k/v never round-trip through memory.
// Each block recomputes its head's q and k (K values, a few hundred bytes); the ring
// rows of q and k are written by the block of value slice 0 only, v's by the block
// that owns those columns. A state at position 0 is read as zero (no reset pass).
// In prefill the same kernel walks the chunk's tokens with the state tile kept in
// registers throughout (a sequential scan: per token two barriers and a few
// hundred FMAs per thread, with the next token's inputs loaded during the current
// one), the short-conv histories in shared memory, and the rings updated afterwards
// by pn_cuda_eng_ring_update.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_engine.h"
#include <math.h>

#define DS_THREADS 128
#define DS_VS 32  // value columns per block: 8 column groups of 4 × 16 row groups
// The delta-rule scan (delta_scan_kernel): 8 column groups of DSD_CPT value columns × 16
// row groups per block. Decode is memory-bound on the fp32 state: 8 columns per thread
// (two float4 per state row) halve the blocks per (sequence, head) — and with them the
// per-block q/k conv, L2 norms and reductions — against 4 columns.
#ifndef DSD_CPT
#define DSD_CPT 8
#endif
#define DSD_VS (8 * DSD_CPT)
#ifndef DSD_MINB
#define DSD_MINB 4
#endif
#define DS_KMAX 256
#define L2_EPS 1e-6f

static __device__ __forceinline__ float d_silu(float x) { return x / (1.0f + expf(-x)); }
static __device__ __forceinline__ float d_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static __device__ __forceinline__ float d_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

static void lin_die(const char *what, int a, int b) {
    fprintf(stderr, "postnas: internal error: %s: %s (%d, %d)\n", __FILE__, what, a, b);
    exit(1);
}

#define DS_WMAX 8  // conv taps the scan keeps per channel (registers for the kernel taps)

// Channel histories for the short convs live in shared memory, one ring of W slots
// per channel a thread owns (position p at slot p % W), private to that thread.
static __device__ __forceinline__ float hist_at(const float *h, int64_t pp, int W) {
    return pp < 0 ? 0.0f : h[pp % W];
}

// The raw inputs of one token that the scan loads one token ahead.
template <int QKC>
struct ds_raw {
    float q[QKC], k[QKC], v, b, a;
    float kern[DS_WMAX];
};

template <int QKC>
static __device__ __forceinline__ void ds_load(ds_raw<QKC> &r, const pn_cuda_delta_step_args &a, int64_t n, int h,
                                               int tid, int col) {
    const float *pr = a.proj + n * a.ld;
    const int K = a.K, V = a.V, W = a.W;
#pragma unroll
    for (int i = 0; i < QKC; i++) {
        const int e = tid + DS_THREADS * i;
        r.q[i] = e < K ? pr[a.q_off + (int64_t)h * K + e] : 0.0f;
        r.k[i] = e < K ? pr[a.k_off + (int64_t)h * K + e] : 0.0f;
    }
    r.v = (tid < DSD_VS && col < V) ? pr[a.v_off + (int64_t)h * V + col] : 0.0f;
    r.b = pr[a.b_off + h];
    r.a = a.a_off >= 0 ? pr[a.a_off + h] : 0.0f;
    if (a.v_kern && tid < DSD_VS && col < V) {
        const float *kr = a.v_kern + n * a.kern_ld + ((int64_t)h * V + col) * W;
#pragma unroll
        for (int j = 0; j < DS_WMAX; j++) r.kern[j] = j < W ? kr[j] : 0.0f;
    }
}

// Short conv of one channel at position p: taps 0..W−2 from the thread's history,
// tap W−1 the current raw value; static weights w (W) or per-token taps (+ bias).
static __device__ __forceinline__ float ds_conv(float raw, const float *w, const float *kern_tok, const float *kbias,
                                                const float *hist, int64_t p, int W) {
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < DS_WMAX; j++) {
        if (j >= W) break;
        const float wt = w ? w[j] : kern_tok[j] + (kbias ? kbias[j] : 0.0f);
        acc += wt * (j == W - 1 ? raw : hist_at(hist, p - W + 1 + j, W));
    }
    return acc;
}

// Per (sequence, head, 32 value columns): T tokens from position *pos, the state
// tile in registers for the whole run. Double-buffered shared inputs: a thread ahead
// by one token writes the other buffer, and cannot get two tokens ahead past the
// first barrier of a token, so two barriers per token suffice.
// SCAN = false is the decode instance (T = 1): no look-ahead registers, and 4 blocks
// per SM of 8 state columns per thread so that enough state loads are in flight (the
// step is memory-bound); K > 128 (ROWS > 8) needs more registers for its state tile:
// 2 blocks per SM, no spills. Measured on the H100 (Jet-Nemotron-2B shape, batch 128,
// 64K context, decode step): 4 columns per thread at 4 blocks per SM (106 registers)
// ran this kernel at 1.3 TB/s and the step at 14.25 ms; 4 columns at 8 blocks 13.49 ms;
// 8 columns at 4 blocks (127 registers) 13.22 ms; 16 columns at 2 blocks 14.54 ms.
template <int ROWS, bool SCAN>
__global__ void __launch_bounds__(DS_THREADS, SCAN || ROWS > 8 ? (SCAN ? 1 : 2) : DSD_MINB) delta_scan_kernel(const pn_cuda_delta_step_args a, int nvs) {
    constexpr int QKC = (16 * ROWS + DS_THREADS - 1) / DS_THREADS;  // q/k channels per thread
    __shared__ float qs[2][16 * ROWS], ks[2][16 * ROWS], vs[2][DSD_VS];
    __shared__ float red[2][DS_THREADS / 32][2][DSD_VS];
    __shared__ float dots[2][DS_THREADS / 32][3];
    extern __shared__ float hsm[];  // conv histories: (2·QKC·128 + 1) channels × W per thread
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int cg = tid & 7, rg = tid >> 3;
    const int K = a.K, V = a.V, H = a.H, W = a.W, T = a.T;
    const int64_t bh = blockIdx.x / nvs;
    const int vsl = (int)(blockIdx.x % nvs);
    const int b = (int)(bh / H), h = (int)(bh % H);
    const int vbase = vsl * DSD_VS, c0 = vbase + DSD_CPT * cg, col = vbase + tid;
    const int64_t p0 = *a.pos;
    float *S = a.S + bh * (int64_t)K * V;
    const bool vec = (V & 3) == 0;
    const int64_t HK = (int64_t)H * K, HV = (int64_t)H * V;
    float *hq = hsm + (int64_t)tid * (2 * QKC + 1) * W;  // this thread's histories: q[QKC], k[QKC], v
    float *hk = hq + QKC * W, *hv = hk + QKC * W;

    float s[ROWS][DSD_CPT];
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
        if (p0 > 0 && vec) {
#pragma unroll
            for (int q4 = 0; q4 < DSD_CPT; q4 += 4) {
                float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
                if (r < K && c0 + q4 < V) x = *reinterpret_cast<const float4 *>(S + (int64_t)r * V + c0 + q4);
                s[i][q4] = x.x, s[i][q4 + 1] = x.y, s[i][q4 + 2] = x.z, s[i][q4 + 3] = x.w;
            }
        } else {
#pragma unroll
            for (int j = 0; j < DSD_CPT; j++) s[i][j] = (p0 > 0 && r < K && c0 + j < V) ? S[(int64_t)r * V + c0 + j] : 0.f;
        }
    }
    // Histories: the W−1 positions before p0 from the rings (negative positions read 0).
    for (int j = 1; j < W; j++) {
        const int64_t pp = p0 - j;
        if (pp < 0) break;
        const int64_t slot = (int64_t)b * W + pp % W;
#pragma unroll
        for (int i = 0; i < QKC; i++) {
            const int e = tid + DS_THREADS * i;
            if (e < K && a.q_ring) hq[i * W + pp % W] = a.q_ring[slot * HK + (int64_t)h * K + e];
            if (e < K && a.k_ring) hk[i * W + pp % W] = a.k_ring[slot * HK + (int64_t)h * K + e];
        }
        if (tid < DSD_VS && col < V && a.v_ring) hv[pp % W] = a.v_ring[slot * HV + (int64_t)h * V + col];
    }
    const float A = a.a_off >= 0 ? expf(a.A_log[h]) : 0.0f, dtb = a.a_off >= 0 ? a.dt_bias[h] : 0.0f;

    ds_raw<QKC> cur, nxt;
    ds_load(cur, a, (int64_t)b * T, h, tid, col);
    for (int t = 0; t < (SCAN ? T : 1); t++) {
        const int buf = t & 1;
        const int64_t n = (int64_t)b * T + t, p = p0 + t;
        if (SCAN && t + 1 < T) ds_load(nxt, a, n + 1, h, tid, col);  // in flight during this token
        float qq = 0.f, kk = 0.f, qk = 0.f;
#pragma unroll
        for (int i = 0; i < QKC; i++) {
            const int e = tid + DS_THREADS * i;
            if (e >= 16 * ROWS) continue;
            float qe = 0.f, ke = 0.f;
            if (e < K) {
                const int64_t d = (int64_t)h * K + e;
                const float qc = a.q_conv ? ds_conv(cur.q[i], a.q_conv + d * W, nullptr, nullptr, hq + i * W, p, W) : cur.q[i];
                const float kc = a.k_conv ? ds_conv(cur.k[i], a.k_conv + d * W, nullptr, nullptr, hk + i * W, p, W) : cur.k[i];
                if (a.q_conv) hq[i * W + p % W] = cur.q[i];
                if (a.k_conv) hk[i * W + p % W] = cur.k[i];
                qe = d_silu(qc), ke = d_silu(kc);
            }
            qs[buf][e] = qe, ks[buf][e] = ke;
            qq += qe * qe, kk += ke * ke, qk += qe * ke;
        }
        if (tid < DSD_VS) {
            float ve = 0.f;
            if (col < V) {
                const int64_t d = (int64_t)h * V + col;
                float vc = cur.v;
                if (a.v_conv)
                    vc = ds_conv(cur.v, a.v_conv + d * W, nullptr, nullptr, hv, p, W);
                else if (a.v_kern)
                    vc = ds_conv(cur.v, nullptr, cur.kern, a.v_kern_bias ? a.v_kern_bias + d * W : nullptr, hv, p, W);
                if (a.v_conv || a.v_kern) hv[p % W] = cur.v;
                ve = d_silu(vc);
            }
            vs[buf][tid] = ve;
        }
        qq = warp_sum(qq), kk = warp_sum(kk), qk = warp_sum(qk);
        if (lane == 0) dots[buf][warp][0] = qq, dots[buf][warp][1] = kk, dots[buf][warp][2] = qk;
        __syncthreads();

        float pk[DSD_CPT] = {}, pq[DSD_CPT] = {};
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            const float kr = ks[buf][rg + 16 * i], qr = qs[buf][rg + 16 * i];
#pragma unroll
            for (int j = 0; j < DSD_CPT; j++) pk[j] += s[i][j] * kr, pq[j] += s[i][j] * qr;
        }
#pragma unroll
        for (int j = 0; j < DSD_CPT; j++) {
            pk[j] += __shfl_xor_sync(0xffffffffu, pk[j], 8);
            pk[j] += __shfl_xor_sync(0xffffffffu, pk[j], 16);
            pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 8);
            pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 16);
        }
        if (lane < 8)
#pragma unroll
            for (int j = 0; j < DSD_CPT; j++) red[buf][warp][0][DSD_CPT * cg + j] = pk[j], red[buf][warp][1][DSD_CPT * cg + j] = pq[j];
        __syncthreads();
        float QQ = 0.f, KK = 0.f, QK = 0.f;
#pragma unroll
        for (int w = 0; w < DS_THREADS / 32; w++) QQ += dots[buf][w][0], KK += dots[buf][w][1], QK += dots[buf][w][2];
#pragma unroll
        for (int j = 0; j < DSD_CPT; j++) {
            float x = 0.f, y = 0.f;
#pragma unroll
            for (int w = 0; w < DS_THREADS / 32; w++) x += red[buf][w][0][DSD_CPT * cg + j], y += red[buf][w][1][DSD_CPT * cg + j];
            pk[j] = x, pq[j] = y;
        }
        const float rq = 1.0f / sqrtf(QQ + L2_EPS), rk = 1.0f / sqrtf(KK + L2_EPS);
        const float bt = d_sigmoid(cur.b);
        const float alpha = a.a_off >= 0 ? expf(-A * d_softplus(cur.a + dtb)) : 1.0f;
        const float qsc = a.scale * rq, kq = qsc * rk * QK;  // k̂ᵀ q̃
        float u[DSD_CPT], ov[DSD_CPT];
#pragma unroll
        for (int j = 0; j < DSD_CPT; j++) {
            u[j] = bt * (vs[buf][DSD_CPT * cg + j] - alpha * rk * pk[j]);
            ov[j] = alpha * qsc * pq[j] + u[j] * kq;
        }
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            const float kr = rk * ks[buf][rg + 16 * i];
#pragma unroll
            for (int j = 0; j < DSD_CPT; j++) s[i][j] = alpha * s[i][j] + kr * u[j];
        }
        if (rg == 0) {
            float *orow = a.o + n * HV + (int64_t)h * V;
#pragma unroll
            for (int j = 0; j < DSD_CPT; j++)
                if (c0 + j < V) orow[c0 + j] = ov[j];
        }
        // One token (decode): its raw rows go into the rings here; slot p % W is not
        // one any reader of position p needs. Longer runs leave that to
        // pn_cuda_eng_ring_update after the kernel (other blocks still read the old rows).
        if (!SCAN && a.ring_write) {
            const int64_t slot = ((int64_t)b * W + p % W);
#pragma unroll
            for (int i = 0; i < QKC; i++) {
                const int e = tid + DS_THREADS * i;
                if (vsl == 0 && e < K && a.q_ring) a.q_ring[slot * HK + (int64_t)h * K + e] = cur.q[i];
                if (vsl == 0 && e < K && a.k_ring) a.k_ring[slot * HK + (int64_t)h * K + e] = cur.k[i];
            }
            if (tid < DSD_VS && col < V && a.v_ring) a.v_ring[slot * HV + (int64_t)h * V + col] = cur.v;
        }
        if (SCAN) cur = nxt;
    }
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
        if (vec) {
#pragma unroll
            for (int q4 = 0; q4 < DSD_CPT; q4 += 4)
                if (r < K && c0 + q4 < V)
                    *reinterpret_cast<float4 *>(S + (int64_t)r * V + c0 + q4) =
                        make_float4(s[i][q4], s[i][q4 + 1], s[i][q4 + 2], s[i][q4 + 3]);
        } else {
#pragma unroll
            for (int j = 0; j < DSD_CPT; j++)
                if (r < K && c0 + j < V) S[(int64_t)r * V + c0 + j] = s[i][j];
        }
    }
}

template <int ROWS>
static void delta_scan_launch(const pn_cuda_delta_step_args *a, int B) {
    const int nvs = (int)pn_ceil_div(a->V, DSD_VS);
    const int64_t blocks = (int64_t)B * a->H * nvs;
    if (blocks > 0x7fffffff) lin_die("delta scan: grid too large", B, a->H);
    constexpr int QKC = (16 * ROWS + DS_THREADS - 1) / DS_THREADS;
    const size_t smem = (size_t)DS_THREADS * (2 * QKC + 1) * a->W * sizeof(float);
    if (a->T == 1)
        delta_scan_kernel<ROWS, false><<<(unsigned)blocks, DS_THREADS, smem, pn_stream()>>>(*a, nvs);
    else
        delta_scan_kernel<ROWS, true><<<(unsigned)blocks, DS_THREADS, smem, pn_stream()>>>(*a, nvs);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_eng_delta_step(const pn_cuda_delta_step_args *a, int B) {
    if (a->K < 1 || a->K > DS_KMAX || a->V < 1) lin_die("delta scan: unsupported head size (K, V)", a->K, a->V);
    if (a->W < 1 || a->W > DS_WMAX) lin_die("delta scan: unsupported conv size (W, max)", a->W, DS_WMAX);
    if (a->ring_write && a->T != 1) lin_die("delta scan: ring writes in the kernel need T = 1 (T, 1)", a->T, 1);
    if (B <= 0 || a->T <= 0) return;
    const int rows = (a->K + 15) / 16;
    if (rows <= 1)
        delta_scan_launch<1>(a, B);
    else if (rows <= 2)
        delta_scan_launch<2>(a, B);
    else if (rows <= 4)
        delta_scan_launch<4>(a, B);
    else if (rows <= 6)
        delta_scan_launch<6>(a, B);
    else if (rows <= 8)
        delta_scan_launch<8>(a, B);
    else if (rows <= 12)
        delta_scan_launch<12>(a, B);
    else
        delta_scan_launch<16>(a, B);
}

// ---------------------------------------------------------------- prefill row kernels

template <typename OT>
__global__ void conv_rows_kernel(OT *y, const float *x, int64_t ldx, const float *w, const float *kern, int64_t kern_ld,
                                 const float *kbias, const float *bias, const float *ring, const int64_t *pos, int T,
                                 int D, int W, int act, int64_t total) {
    const int64_t p0 = *pos, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / D;
        const int d = (int)(i % D);
        const int b = (int)(n / T), t = (int)(n % T);
        float acc = bias ? bias[d] : 0.0f;
        for (int j = 0; j < W; j++) {
            const float wt = w ? w[(int64_t)d * W + j]
                               : kern[n * kern_ld + (int64_t)d * W + j] + (kbias ? kbias[(int64_t)d * W + j] : 0.0f);
            const int tt = t - W + 1 + j;  // row in the chunk; < 0: before it
            const int64_t pp = p0 + tt;
            float u;
            if (tt >= 0)
                u = x[((int64_t)b * T + tt) * ldx + d];
            else
                u = pp < 0 ? 0.0f : ring[((int64_t)b * W + pp % W) * D + d];
            acc += wt * u;
        }
        if (act == 1) acc = d_silu(acc);
        if (act == 2) acc = d_sigmoid(acc);
        from_f32(y + i, acc);
    }
}

extern "C" void pn_cuda_eng_conv_rows(void *y, pn_cuda_dtype y_dt, const float *x, int64_t ldx, const float *w,
                                      const float *kern, int64_t kern_ld, const float *kern_bias, const float *bias,
                                      const float *ring, const int64_t *pos, int nb, int T, int D, int W, int act) {
    const int64_t total = (int64_t)nb * T * D;
    if (total <= 0) return;
    const int threads = 256;
    const unsigned grid = pn_grid_for(total, threads);
    if (y_dt == PN_CUDA_F32)
        conv_rows_kernel<<<grid, threads, 0, pn_stream()>>>((float *)y, x, ldx, w, kern, kern_ld, kern_bias, bias, ring,
                                                            pos, T, D, W, act, total);
    else
        conv_rows_kernel<<<grid, threads, 0, pn_stream()>>>((__nv_bfloat16 *)y, x, ldx, w, kern, kern_ld, kern_bias,
                                                            bias, ring, pos, T, D, W, act, total);
    PN_CHECK_LAUNCH();
}

__global__ void ring_update_kernel(float *ring, const float *x, int64_t ldx, const int64_t *pos, int T, int D, int W,
                                   int keep, int64_t total) {
    const int64_t p0 = *pos, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t r = i / D;  // b · keep + k: the chunk's last `keep` rows
        const int d = (int)(i % D);
        const int b = (int)(r / keep), t = T - keep + (int)(r % keep);
        ring[((int64_t)b * W + (p0 + t) % W) * D + d] = x[((int64_t)b * T + t) * ldx + d];
    }
}

extern "C" void pn_cuda_eng_ring_update(float *ring, const float *x, int64_t ldx, const int64_t *pos, int nb, int T,
                                        int D, int W) {
    const int keep = T < W ? T : W;
    const int64_t total = (int64_t)nb * keep * D;
    if (total <= 0) return;
    const int threads = 256;
    ring_update_kernel<<<pn_grid_for(total, threads), threads, 0, pn_stream()>>>(ring, x, ldx, pos, T, D, W, keep,
                                                                                total);
    PN_CHECK_LAUNCH();
}

__global__ void delta_gates_kernel(float *beta, float *g, const float *proj, int64_t ld, int b_off, int a_off,
                                   const float *A_log, const float *dt_bias, int64_t N, int H) {
    const int64_t total = N * H, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / H;
        const int h = (int)(i % H);
        beta[i] = d_sigmoid(proj[n * ld + b_off + h]);
        if (g) g[i] = -expf(A_log[h]) * d_softplus(proj[n * ld + a_off + h] + dt_bias[h]);
    }
}

extern "C" void pn_cuda_eng_delta_gates(float *beta, float *g, const float *proj, int64_t ld, int b_off, int a_off,
                                        const float *A_log, const float *dt_bias, int64_t N, int H) {
    if (N <= 0) return;
    const int threads = 256;
    delta_gates_kernel<<<pn_grid_for(N * H, threads), threads, 0, pn_stream()>>>(beta, g, proj, ld, b_off, a_off,
                                                                                A_log, dt_bias, N, H);
    PN_CHECK_LAUNCH();
}

// One block per (row, head). y_lo (may be NULL) gets bf16(v − hi): the low plane of a
// bf16x2 split GEMM input (engine_cuda.c).
__global__ void gated_rmsnorm_kernel(__nv_bfloat16 *y, __nv_bfloat16 *ylo, const float *x, const float *w,
                                     const float *gate, int64_t ldg, int H, int V, float eps) {
    __shared__ float sh[32];
    const int64_t rh = blockIdx.x, n = rh / H;
    const int h = (int)(rh % H);
    const float *xr = x + rh * V;
    float ss = 0.0f;
    for (int d = threadIdx.x; d < V; d += blockDim.x) ss += xr[d] * xr[d];
    ss = block_sum(ss, sh);
    const float r = 1.0f / sqrtf(ss / (float)V + eps);
    const float *gr = gate ? gate + n * ldg + (int64_t)h * V : nullptr;
    for (int d = threadIdx.x; d < V; d += blockDim.x) {
        float v = xr[d] * r * w[d];
        if (gr) v *= d_silu(gr[d]);
        const __nv_bfloat16 hi = __float2bfloat16_rn(v);
        y[rh * V + d] = hi;
        if (ylo) ylo[rh * V + d] = __float2bfloat16_rn(v - __bfloat162float(hi));
    }
}

extern "C" void pn_cuda_eng_gated_rmsnorm(pn_bf16 *y, pn_bf16 *y_lo, const float *x, const float *w, const float *gate,
                                          int64_t ldg, int64_t N, int H, int V, float eps) {
    if (N <= 0) return;
    gated_rmsnorm_kernel<<<(unsigned)(N * H), pn_row_threads(V, 256), 0, pn_stream()>>>(as_bf(y), as_bf(y_lo), x, w,
                                                                                        gate, ldg, H, V, eps);
    PN_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- gla / retnet / mamba2

static __device__ __forceinline__ float d_logsigmoid(float x) { return -d_softplus(-x); }

// Double-buffered like the delta scan: two barriers per token.
template <int ROWS>
__global__ void __launch_bounds__(DS_THREADS) gla_scan_kernel(const pn_cuda_gla_scan_args a, int nvs) {
    constexpr int QKC = (16 * ROWS + DS_THREADS - 1) / DS_THREADS;
    __shared__ float qs[2][16 * ROWS], ks[2][16 * ROWS], vs[2][DS_VS];
    __shared__ float red[2][DS_THREADS / 32][DS_VS];
    __shared__ float dots[2][DS_THREADS / 32];
    __shared__ float xsk[2][DS_VS];  // mamba2's D·x per value column
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int cg = tid & 7, rg = tid >> 3;
    const int K = a.K, V = a.V, H = a.H, T = a.T;
    const int64_t bh = blockIdx.x / nvs;
    const int vsl = (int)(blockIdx.x % nvs);
    const int b = (int)(bh / H), h = (int)(bh % H), qh = h / a.qk_hpg;
    const int vbase = vsl * DS_VS, c0 = vbase + 4 * cg, col = vbase + tid;
    const int64_t p0 = *a.pos;
    float *S = a.S + bh * (int64_t)K * V;
    const bool vec = (V & 3) == 0;
    const int half = K / 2;

    float s[ROWS][4];
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
#pragma unroll
        for (int j = 0; j < 4; j++) s[i][j] = (p0 > 0 && r < K && c0 + j < V) ? S[(int64_t)r * V + c0 + j] : 0.f;
    }
    // Per-head constants of the decay.
    float alpha_h = 1.0f, Aexp = 0.0f, dtb = 0.0f;
    if (a.decay == PN_CUDA_DECAY_RETNET) alpha_h = expf((float)log1p(-ldexp(1.0, -5 - h)));
    if (a.decay == PN_CUDA_DECAY_MAMBA2) Aexp = expf(a.A_log[h]), dtb = a.dt_bias[h];
    // α per key lives in the q̃ factor and in the state update; kept per thread row.
    __shared__ float as_[2][16 * ROWS];

    for (int t = 0; t < T; t++) {
        const int buf = t & 1;
        const int64_t n = (int64_t)b * T + t, p = p0 + t;
        const float *sr = a.src + n * a.ld;
        float dt = 1.0f, alpha_scalar = alpha_h;
        if (a.decay == PN_CUDA_DECAY_MAMBA2) {
            dt = d_softplus(a.dt[n * a.dt_ld + h] + dtb);
            alpha_scalar = expf(-dt * Aexp);
        }
        float qk = 0.f;
#pragma unroll
        for (int i = 0; i < QKC; i++) {
            const int e = tid + DS_THREADS * i;
            if (e >= 16 * ROWS) continue;
            float qe = 0.f, ke = 0.f, ae = 1.f;
            if (e < K) {
                const float *qr = sr + a.q_off + (int64_t)qh * K, *kr = sr + a.k_off + (int64_t)qh * K;
                qe = qr[e], ke = kr[e];
                if (a.inv_freq) {
                    const int ii = e < half ? e : e - half, pe = e < half ? e + half : e - half;
                    const float ang = (float)p * a.inv_freq[ii];
                    double sn, cs;
                    sincos((double)ang, &sn, &cs);
                    const float c = (float)cs, sgn = e < half ? -(float)sn : (float)sn;
                    qe = qe * c + qr[pe] * sgn;
                    ke = ke * c + kr[pe] * sgn;
                }
                if (a.decay == PN_CUDA_DECAY_GLA)
                    ae = expf(d_logsigmoid(a.gk[n * a.gk_ld + (int64_t)h * K + e] + a.gk_bias[(int64_t)h * K + e]) /
                              16.0f);
                else
                    ae = alpha_scalar;
                qe *= a.scale;
            }
            qs[buf][e] = qe, ks[buf][e] = ke, as_[buf][e] = ae;
            qk += qe * ke;
        }
        if (tid < DS_VS) {
            float ve = 0.f, xd = 0.f;
            if (col < V) {
                const float x = sr[a.v_off + (int64_t)h * V + col];
                ve = x * dt;
                if (a.Dskip) xd = a.Dskip[h] * x;
            }
            vs[buf][tid] = ve, xsk[buf][tid] = xd;
        }
        qk = warp_sum(qk);
        if (lane == 0) dots[buf][warp] = qk;
        __syncthreads();

        float pq[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            const int r = rg + 16 * i;
            const float aq = as_[buf][r] * qs[buf][r];
#pragma unroll
            for (int j = 0; j < 4; j++) pq[j] += s[i][j] * aq;
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 8);
            pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 16);
        }
        if (lane < 8)
#pragma unroll
            for (int j = 0; j < 4; j++) red[buf][warp][4 * cg + j] = pq[j];
        __syncthreads();
        float QK = 0.f;
#pragma unroll
        for (int w = 0; w < DS_THREADS / 32; w++) QK += dots[buf][w];
        float ov[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float x = 0.f;
#pragma unroll
            for (int w = 0; w < DS_THREADS / 32; w++) x += red[buf][w][4 * cg + j];
            ov[j] = x + QK * vs[buf][4 * cg + j] + xsk[buf][4 * cg + j];
        }
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            const int r = rg + 16 * i;
            const float ar = as_[buf][r], kr = ks[buf][r];
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = ar * s[i][j] + kr * vs[buf][4 * cg + j];
        }
        if (rg == 0) {
            float *orow = a.o + n * (int64_t)H * V + (int64_t)h * V;
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (c0 + j < V) orow[c0 + j] = ov[j];
        }
    }
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
        if (vec) {
            if (r < K && c0 < V)
                *reinterpret_cast<float4 *>(S + (int64_t)r * V + c0) = make_float4(s[i][0], s[i][1], s[i][2], s[i][3]);
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (r < K && c0 + j < V) S[(int64_t)r * V + c0 + j] = s[i][j];
        }
    }
}

template <int ROWS>
static void gla_scan_launch(const pn_cuda_gla_scan_args *a, int B) {
    const int nvs = (int)pn_ceil_div(a->V, DS_VS);
    const int64_t blocks = (int64_t)B * a->H * nvs;
    if (blocks > 0x7fffffff) lin_die("gla scan: grid too large", B, a->H);
    gla_scan_kernel<ROWS><<<(unsigned)blocks, DS_THREADS, 0, pn_stream()>>>(*a, nvs);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_eng_gla_scan(const pn_cuda_gla_scan_args *a, int B) {
    if (a->K < 1 || a->K > DS_KMAX || a->V < 1) lin_die("gla scan: unsupported head size (K, V)", a->K, a->V);
    if (a->inv_freq && a->K % 2) lin_die("gla scan: RoPE needs an even K (K, 2)", a->K, 2);
    if (B <= 0 || a->T <= 0) return;
    const int rows = (a->K + 15) / 16;
    if (rows <= 1)
        gla_scan_launch<1>(a, B);
    else if (rows <= 2)
        gla_scan_launch<2>(a, B);
    else if (rows <= 4)
        gla_scan_launch<4>(a, B);
    else if (rows <= 8)
        gla_scan_launch<8>(a, B);
    else
        gla_scan_launch<16>(a, B);
}

// One block per (row, group).
__global__ void gate_rmsnorm_groups_kernel(__nv_bfloat16 *y, const float *x, const float *gate, int64_t ldg,
                                           const float *w, int G, int D, float eps) {
    __shared__ float sh[32];
    const int64_t rg = blockIdx.x, n = rg / G;
    const int g = (int)(rg % G);
    const float *xr = x + n * (int64_t)G * D + (int64_t)g * D, *gr = gate + n * ldg + (int64_t)g * D;
    float ss = 0.0f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float u = xr[d] * d_silu(gr[d]);
        ss += u * u;
    }
    ss = block_sum(ss, sh);
    const float r = 1.0f / sqrtf(ss / (float)D + eps);
    for (int d = threadIdx.x; d < D; d += blockDim.x)
        y[n * (int64_t)G * D + (int64_t)g * D + d] = __float2bfloat16_rn(xr[d] * d_silu(gr[d]) * r * w[(int64_t)g * D + d]);
}

extern "C" void pn_cuda_eng_gate_rmsnorm_groups(pn_bf16 *y, const float *x, const float *gate, int64_t ldg,
                                                const float *w, int64_t N, int G, int D, float eps) {
    if (N <= 0) return;
    gate_rmsnorm_groups_kernel<<<(unsigned)(N * G), pn_row_threads(D, 512), 0, pn_stream()>>>(as_bf(y), x, gate, ldg,
                                                                                             w, G, D, eps);
    PN_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- rwkv7

__global__ void rwkv_shift_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *x, const float *prev, const float *mu,
                                  const int64_t *pos, int T, int C, int64_t total) {
    const int64_t p0 = *pos, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / C;
        const int c = (int)(i % C);
        const int b = (int)(n / T), t = (int)(n % T);
        const float xv = __bfloat162float(x[i]);
        const float pv = t > 0 ? __bfloat162float(x[i - C]) : (p0 == 0 ? 0.0f : prev[(int64_t)b * C + c]);
        const float d = pv - xv;
#pragma unroll
        for (int j = 0; j < 6; j++) out[n * 6 * C + (int64_t)j * C + c] = __float2bfloat16_rn(xv + d * mu[j * C + c]);
    }
}

extern "C" void pn_cuda_eng_rwkv_shift(pn_bf16 *out, const pn_bf16 *x, const float *prev, const float *mu,
                                       const int64_t *pos, int nb, int T, int C) {
    const int64_t total = (int64_t)nb * T * C;
    if (total <= 0) return;
    rwkv_shift_kernel<<<pn_grid_for(total, 256), 256, 0, pn_stream()>>>(as_bf(out), as_bf(x), prev, mu, pos, T, C,
                                                                         total);
    PN_CHECK_LAUNCH();
}

__global__ void rwkv_prev_kernel(float *prev, const __nv_bfloat16 *x, int T, int C, int64_t total) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t b = i / C;
        prev[i] = __bfloat162float(x[(b * T + T - 1) * C + i % C]);
    }
}

extern "C" void pn_cuda_eng_rwkv_prev_update(float *prev, const pn_bf16 *x, int nb, int T, int C) {
    const int64_t total = (int64_t)nb * C;
    if (total <= 0) return;
    rwkv_prev_kernel<<<pn_grid_for(total, 256), 256, 0, pn_stream()>>>(prev, as_bf(x), T, C, total);
    PN_CHECK_LAUNCH();
}

// One block per (row, head); each element belongs to one thread, so the in-place
// updates never race.
__global__ void rwkv_prep_kernel(float *w, const float *w_bias, float *k, const float *k_k, const float *k_a,
                                 float *a_io, const float *a_bias, float *v, float *v_first, float *s_io,
                                 const float *v_bias, int first, int H, int K) {
    __shared__ float sh[32];
    const int64_t rh = blockIdx.x, n = rh / H;
    const int h = (int)(rh % H), C = H * K;
    const int64_t base = n * C + (int64_t)h * K;
    float ss = 0.0f;
    for (int d = threadIdx.x; d < K; d += blockDim.x) {
        const float kap = k[base + d] * k_k[h * K + d];
        ss += kap * kap;
    }
    ss = block_sum(ss, sh);
    const float rn = 1.0f / sqrtf(ss + L2_EPS);
    for (int d = threadIdx.x; d < K; d += blockDim.x) {
        const int64_t i = base + d;
        const int c = h * K + d;
        w[i] = -0.6065306597126334f * d_sigmoid(w[i] + w_bias[c]);
        const float aa = d_sigmoid(a_io[i] + a_bias[c]);
        const float kh = k[i] * k_k[c] * rn;
        k[i] = k[i] * (1.0f + (aa - 1.0f) * k_a[c]);
        a_io[i] = -kh;
        if (first) {
            v_first[i] = v[i];
        } else {
            const float sg = d_sigmoid(s_io[i] + v_bias[c]);
            v[i] = v[i] + (v_first[i] - v[i]) * sg;
        }
        s_io[i] = kh * aa;
    }
}

extern "C" void pn_cuda_eng_rwkv_prep(float *w, const float *w_bias, float *k, const float *k_k, const float *k_a,
                                      float *a_io, const float *a_bias, float *v, float *v_first, float *s_io,
                                      const float *v_bias, int first, int64_t N, int H, int K) {
    if (N <= 0) return;
    rwkv_prep_kernel<<<(unsigned)(N * H), pn_row_threads(K, 256), 0, pn_stream()>>>(
        w, w_bias, k, k_k, k_a, a_io, a_bias, v, v_first, s_io, v_bias, first, H, K);
    PN_CHECK_LAUNCH();
}

template <int ROWS>
__global__ void __launch_bounds__(DS_THREADS) dplr_scan_kernel(const pn_cuda_dplr_scan_args a, int nvs) {
    constexpr int QKC = (16 * ROWS + DS_THREADS - 1) / DS_THREADS;
    __shared__ float qa[2][16 * ROWS], al[2][16 * ROWS], ks[2][16 * ROWS], as_[2][16 * ROWS], bs[2][16 * ROWS];
    __shared__ float vs[2][DS_VS];
    __shared__ float red[2][DS_THREADS / 32][2][DS_VS];
    __shared__ float dots[2][DS_THREADS / 32][2];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int cg = tid & 7, rg = tid >> 3;
    const int K = a.K, V = a.K, H = a.H, T = a.T, C = H * K;
    const int64_t bh = blockIdx.x / nvs;
    const int vsl = (int)(blockIdx.x % nvs);
    const int b = (int)(bh / H), h = (int)(bh % H);
    const int vbase = vsl * DS_VS, c0 = vbase + 4 * cg, col = vbase + tid;
    const int64_t p0 = *a.pos;
    float *S = a.S + bh * (int64_t)K * V;

    float s[ROWS][4];
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
#pragma unroll
        for (int j = 0; j < 4; j++) s[i][j] = (p0 > 0 && r < K && c0 + j < V) ? S[(int64_t)r * V + c0 + j] : 0.f;
    }
    for (int t = 0; t < T; t++) {
        const int buf = t & 1;
        const int64_t n = (int64_t)b * T + t, row = n * C + (int64_t)h * K;
        float qk = 0.f, qb = 0.f;
#pragma unroll
        for (int i = 0; i < QKC; i++) {
            const int e = tid + DS_THREADS * i;
            if (e >= 16 * ROWS) continue;
            float qe = 0.f, we = 1.f, ke = 0.f, ae = 0.f, be = 0.f;
            if (e < K) {
                qe = a.r[row + e], we = expf(a.w[row + e]), ke = a.k[row + e], ae = a.a[row + e], be = a.b[row + e];
            }
            qa[buf][e] = qe * we, al[buf][e] = we, ks[buf][e] = ke, as_[buf][e] = ae, bs[buf][e] = be;
            qk += qe * ke, qb += qe * be;
        }
        if (tid < DS_VS) vs[buf][tid] = col < V ? a.v[row + col] : 0.f;
        qk = warp_sum(qk), qb = warp_sum(qb);
        if (lane == 0) dots[buf][warp][0] = qk, dots[buf][warp][1] = qb;
        __syncthreads();

        float sa[4] = {0.f, 0.f, 0.f, 0.f}, pq[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            const int r = rg + 16 * i;
            const float ar = as_[buf][r], qr = qa[buf][r];
#pragma unroll
            for (int j = 0; j < 4; j++) sa[j] += s[i][j] * ar, pq[j] += s[i][j] * qr;
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            sa[j] += __shfl_xor_sync(0xffffffffu, sa[j], 8);
            sa[j] += __shfl_xor_sync(0xffffffffu, sa[j], 16);
            pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 8);
            pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 16);
        }
        if (lane < 8)
#pragma unroll
            for (int j = 0; j < 4; j++) red[buf][warp][0][4 * cg + j] = sa[j], red[buf][warp][1][4 * cg + j] = pq[j];
        __syncthreads();
        float QK = 0.f, QB = 0.f;
#pragma unroll
        for (int w = 0; w < DS_THREADS / 32; w++) QK += dots[buf][w][0], QB += dots[buf][w][1];
        float ov[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float x = 0.f, y = 0.f;
#pragma unroll
            for (int w = 0; w < DS_THREADS / 32; w++) x += red[buf][w][0][4 * cg + j], y += red[buf][w][1][4 * cg + j];
            sa[j] = x;
            ov[j] = y + QK * vs[buf][4 * cg + j] + QB * x;
        }
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            const int r = rg + 16 * i;
            const float ar = al[buf][r], kr = ks[buf][r], br = bs[buf][r];
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = ar * s[i][j] + kr * vs[buf][4 * cg + j] + br * sa[j];
        }
        if (rg == 0)
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (c0 + j < V) a.o[row + c0 + j] = ov[j];
    }
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (r < K && c0 + j < V) S[(int64_t)r * V + c0 + j] = s[i][j];
    }
}

template <int ROWS>
static void dplr_scan_launch(const pn_cuda_dplr_scan_args *a, int B) {
    const int nvs = (int)pn_ceil_div(a->K, DS_VS);
    const int64_t blocks = (int64_t)B * a->H * nvs;
    if (blocks > 0x7fffffff) lin_die("dplr scan: grid too large", B, a->H);
    dplr_scan_kernel<ROWS><<<(unsigned)blocks, DS_THREADS, 0, pn_stream()>>>(*a, nvs);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_eng_dplr_scan(const pn_cuda_dplr_scan_args *a, int B) {
    if (a->K < 1 || a->K > DS_KMAX) lin_die("dplr scan: unsupported head size (K, max)", a->K, DS_KMAX);
    if (B <= 0 || a->T <= 0) return;
    const int rows = (a->K + 15) / 16;
    if (rows <= 1)
        dplr_scan_launch<1>(a, B);
    else if (rows <= 2)
        dplr_scan_launch<2>(a, B);
    else if (rows <= 4)
        dplr_scan_launch<4>(a, B);
    else if (rows <= 8)
        dplr_scan_launch<8>(a, B);
    else
        dplr_scan_launch<16>(a, B);
}

// One block per (row, head): group norm with bias, the r·k·r_k bonus, the g gate.
__global__ void rwkv_out_kernel(__nv_bfloat16 *y, const float *o, const float *r, const float *k, const float *v,
                                const float *g, const float *r_k, const float *gn_w, const float *gn_b, float eps, int H,
                                int K) {
    __shared__ float sh[32];
    const int64_t rh = blockIdx.x, n = rh / H;
    const int h = (int)(rh % H), C = H * K;
    const int64_t base = n * C + (int64_t)h * K;
    float s1 = 0.0f, bonus = 0.0f;
    for (int d = threadIdx.x; d < K; d += blockDim.x) {
        s1 += o[base + d];
        bonus += r[base + d] * k[base + d] * r_k[h * K + d];
    }
    const float mean = block_sum(s1, sh) / (float)K;
    bonus = block_sum(bonus, sh);
    float s2 = 0.0f;
    for (int d = threadIdx.x; d < K; d += blockDim.x) {
        const float c = o[base + d] - mean;
        s2 += c * c;
    }
    const float rstd = 1.0f / sqrtf(block_sum(s2, sh) / (float)K + eps);
    for (int d = threadIdx.x; d < K; d += blockDim.x) {
        const int c = h * K + d;
        const float on = (o[base + d] - mean) * rstd * gn_w[c] + gn_b[c];
        y[base + d] = __float2bfloat16_rn((on + bonus * v[base + d]) * g[base + d]);
    }
}

extern "C" void pn_cuda_eng_rwkv_out(pn_bf16 *y, const float *o, const float *r, const float *k, const float *v,
                                     const float *g, const float *r_k, const float *gn_w, const float *gn_b, float eps,
                                     int64_t N, int H, int K) {
    if (N <= 0) return;
    rwkv_out_kernel<<<(unsigned)(N * H), pn_row_threads(K, 256), 0, pn_stream()>>>(as_bf(y), o, r, k, v, g, r_k, gn_w,
                                                                                  gn_b, eps, H, K);
    PN_CHECK_LAUNCH();
}
