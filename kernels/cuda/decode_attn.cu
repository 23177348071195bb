// decode_attn.cu — attention for the CUDA inference engine: q/k/v post-processing
// (bias, Qwen3 q/k norm, RoPE, cache append), the swa prefill gather, split-K
// flash-decoding over long caches, and a simple reference attention for prefill
// when the cuDNN one is not in the build.
//
// Decode is memory-bound: a step reads every cached K/V row of every sequence once
// (at 64K context and batch 128 that is ~17 GB for Jet-Nemotron-2B's two attention
// layers) and does ~2·G·D flops per row and head. So the design is about keeping many
// 16-byte... (here 8-byte) loads in flight and spending few instructions per byte:
//  - grid (partition, KV head [· head chunk], sequence): each block owns part_len keys
//    of one KV head and serves all G query heads of the GQA group from one load of
//    each K/V row, so a cache row is read once per step whatever G is;
//  - QKᵀ on tensor cores: mma.m16n8k16 with the group's (≤ 8) query heads as the rows
//    of A (rows 8..15 zero) and 8 keys as the columns of B. A lane's B fragment is two
//    bf16 pairs of one key row; we let each lane load 4 consecutive dims (8 bytes) of
//    its key and map them onto the fragment's k slots {2c, 2c+1, 2c+8, 2c+9}, and
//    build the A fragment of q with the same map — a dot product does not care in
//    which order its terms are summed. So K goes straight from global memory into
//    fragments (8 keys × 32 bytes per instruction: whole sectors), no shared memory,
//    no shuffles: D/16 mma per 8 keys instead of G·D FMAs plus reductions;
//  - scores (scaled by scale·log2 e) go to shared memory; per head max and sum of
//    exp2 by one warp each; then P·V on CUDA cores with every thread owning 8 dims of
//    the output and striding over keys (16-byte V loads, no shuffles in the loop);
//  - each block writes its unnormalised partial output, max and sum; a combine
//    kernel per (sequence, head) merges the partitions of the current length.
// The grid is sized for the largest context so that one captured graph serves every
// step; blocks past the current length return at once (the position is read from
// device memory).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_engine.h"
#include <math.h>

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)
#define ATT_PMAX 512  // largest partition (keys)

// Powers of two only: the P·V reduction pairs key lanes by xor over the lane index.
extern "C" int pn_cuda_eng_attn_head_dim_ok(int D) { return D == 16 || D == 32 || D == 64 || D == 128 || D == 256; }

static void attn_die(const char *what, int D) {
    fprintf(stderr, "postnas: internal error: %s: attention %s (head dim %d)\n", __FILE__, what, D);
    exit(1);
}

// ---------------------------------------------------------------- q/k/v + RoPE + cache

// One block per row (b, t); a warp per head (q heads, then k heads, then v heads).
__global__ void __launch_bounds__(128)
    qkv_rope_kernel(__nv_bfloat16 *q, __nv_bfloat16 *kdst, __nv_bfloat16 *vdst, const float *qkv, int64_t ld,
                    const __nv_bfloat16 *bias, const float *qn, const float *kn, float eps, const float *inv_freq,
                    const int64_t *pos, int T, int H, int Hkv, int D, int64_t Lc, int to_cache) {
    extern __shared__ float sm[];
    float *cs = sm, *sn = sm + D / 2, *buf = sm + D;  // buf: 4 warps × D
    const int64_t row = blockIdx.x;
    const int b = (int)(row / T), t = (int)(row % T);
    const int64_t p = *pos + t;
    const int half = D / 2, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float ang = (float)p * inv_freq[i];  // the CPU op's fp32 angle; cos/sin in double
        double s, c;
        sincos((double)ang, &s, &c);
        cs[i] = (float)c;
        sn[i] = (float)s;
    }
    __syncthreads();
    const bool write_kv = !to_cache || t >= T - Lc;  // a ring keeps only the chunk's last Lc rows
    const int64_t slot = p % Lc;
    float *wb = buf + warp * D;
    for (int u = warp; u < H + 2 * Hkv; u += ATT_WARPS) {
        const int kind = u < H ? 0 : (u < H + Hkv ? 1 : 2);  // q, k, v
        if (kind > 0 && !write_kv) continue;
        const float *src = qkv + row * ld + (int64_t)u * D;
        float ss = 0.0f;
        for (int d = lane; d < D; d += 32) {
            float x = src[d];
            if (bias) x += __bfloat162float(bias[(int64_t)u * D + d]);
            wb[d] = x;
            ss += x * x;
        }
        const float *nw = kind == 0 ? qn : (kind == 1 ? kn : nullptr);
        if (nw) {
            ss = warp_sum(ss);
            const float r = (float)(1.0 / sqrt((double)ss / D + (double)eps));
            for (int d = lane; d < D; d += 32) wb[d] = wb[d] * r * nw[d];
        }
        __syncwarp();
        __nv_bfloat16 *dst;
        if (kind == 0) {
            dst = q + (row * H + u) * (int64_t)D;
        } else {
            const int hk = u - H - (kind == 2 ? Hkv : 0);
            __nv_bfloat16 *base = kind == 1 ? kdst : vdst;
            dst = to_cache ? base + (((int64_t)b * Lc + slot) * Hkv + hk) * D : base + (row * Hkv + hk) * (int64_t)D;
        }
        if (kind < 2) {
            for (int i = lane; i < half; i += 32) {
                const float x1 = wb[i], x2 = wb[i + half];
                dst[i] = __float2bfloat16_rn(x1 * cs[i] - x2 * sn[i]);
                dst[i + half] = __float2bfloat16_rn(x2 * cs[i] + x1 * sn[i]);
            }
        } else {
            for (int d = lane; d < D; d += 32) dst[d] = __float2bfloat16_rn(wb[d]);
        }
        __syncwarp();
    }
}

extern "C" void pn_cuda_eng_qkv_rope(pn_bf16 *q, pn_bf16 *kdst, pn_bf16 *vdst, const float *qkv, int64_t ld,
                                     const pn_bf16 *bias, const float *qn, const float *kn, float qk_eps,
                                     const float *inv_freq, const int64_t *pos, int nb, int T, int H, int Hkv, int D,
                                     int64_t Lc, int to_cache) {
    const int64_t N = (int64_t)nb * T;
    if (N <= 0) return;
    if (D % 2 != 0 || D > 1024) attn_die("q/k/v: unsupported head dim", D);
    const size_t smem = (size_t)(D + ATT_WARPS * D) * sizeof(float);
    qkv_rope_kernel<<<(unsigned)N, ATT_THREADS, smem, pn_stream()>>>(as_bf(q), as_bf(kdst), as_bf(vdst), qkv, ld,
                                                                     as_bf(bias), qn, kn, qk_eps, inv_freq, pos, T, H,
                                                                     Hkv, D, Lc, to_cache);
    PN_CHECK_LAUNCH();
}

// One block per new row (b, t): copy its Hkv·D keys and values into the ring / cache.
__global__ void kv_append_kernel(__nv_bfloat16 *kc, __nv_bfloat16 *vc, const __nv_bfloat16 *knew,
                                 const __nv_bfloat16 *vnew, const int64_t *pos, int T, int HD, int64_t Lc) {
    const int64_t row = blockIdx.x;
    const int b = (int)(row / T), t = (int)(row % T);
    if (t < T - Lc) return;
    const int64_t slot = (*pos + t) % Lc;
    __nv_bfloat16 *kd = kc + ((int64_t)b * Lc + slot) * HD, *vd = vc + ((int64_t)b * Lc + slot) * HD;
    for (int i = threadIdx.x; i < HD; i += blockDim.x) kd[i] = knew[row * HD + i], vd[i] = vnew[row * HD + i];
}

extern "C" void pn_cuda_eng_kv_append(pn_bf16 *kc, pn_bf16 *vc, const pn_bf16 *knew, const pn_bf16 *vnew,
                                      const int64_t *pos, int nb, int T, int Hkv, int D, int64_t Lc) {
    const int64_t N = (int64_t)nb * T;
    if (N <= 0) return;
    kv_append_kernel<<<(unsigned)N, pn_row_threads((int64_t)Hkv * D, 256), 0, pn_stream()>>>(
        as_bf(kc), as_bf(vc), as_bf(knew), as_bf(vnew), pos, T, Hkv * D, Lc);
    PN_CHECK_LAUNCH();
}

__global__ void swa_gather_kernel(__nv_bfloat16 *ko, __nv_bfloat16 *vo, const __nv_bfloat16 *kc,
                                  const __nv_bfloat16 *vc, const __nv_bfloat16 *knew, const __nv_bfloat16 *vnew,
                                  int64_t pos, int64_t kpos0, int T, int Tk, int HD, int64_t Lc) {
    const int64_t orow = blockIdx.x;  // b · Tk + r
    const int b = (int)(orow / Tk), r = (int)(orow % Tk);
    const int64_t p = kpos0 + r;
    const __nv_bfloat16 *ks, *vs;
    if (p < pos) {
        const int64_t off = ((int64_t)b * Lc + p % Lc) * HD;
        ks = kc + off, vs = vc + off;
    } else {
        const int64_t off = ((int64_t)b * T + (p - pos)) * HD;
        ks = knew + off, vs = vnew + off;
    }
    for (int i = threadIdx.x; i < HD; i += blockDim.x) ko[orow * HD + i] = ks[i], vo[orow * HD + i] = vs[i];
}

extern "C" void pn_cuda_eng_swa_gather(pn_bf16 *kout, pn_bf16 *vout, const pn_bf16 *kc, const pn_bf16 *vc,
                                       const pn_bf16 *knew, const pn_bf16 *vnew, int64_t pos, int64_t kpos0, int nb,
                                       int T, int Hkv, int D, int64_t Lc) {
    const int Tk = (int)(pos + T - kpos0);
    if (nb <= 0 || Tk <= 0) return;
    swa_gather_kernel<<<(unsigned)((int64_t)nb * Tk), pn_row_threads((int64_t)Hkv * D, 256), 0, pn_stream()>>>(
        as_bf(kout), as_bf(vout), as_bf(kc), as_bf(vc), as_bf(knew), as_bf(vnew), pos, kpos0, T, Tk, Hkv * D, Lc);
    PN_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- split-K decode

static __device__ __forceinline__ void mma_bf16_16816(float &c0, float &c1, float &c2, float &c3, uint32_t a0,
                                                      uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                                      uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3)
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ uint2 ldg_u2(const __nv_bfloat16 *p) {
    return __ldg(reinterpret_cast<const uint2 *>(p));
}

// Streaming loads: cache rows are read once per step, keep them out of L1.
static __device__ __forceinline__ uint2 ld_stream_u2(const __nv_bfloat16 *p) {
    uint2 r;
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];\n" : "=r"(r.x), "=r"(r.y) : "l"(p));
    return r;
}
static __device__ __forceinline__ uint4 ld_stream_u4(const __nv_bfloat16 *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

static __device__ __forceinline__ void u4_to_f32(const uint4 &u, float f[8]) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        // bf16 → fp32 is a 16-bit shift of the bits.
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

// Template: D head dim (16 .. 256, a power of two), GM = heads per block (1, 2, 4, 6, 8).
template <int D, int GM>
struct attn_cfg {
    static constexpr int KS = D / 16;                          // mma k-steps per key row
    static constexpr int CH = D / 8;                           // 16-byte chunks per row (P·V)
    static constexpr int KLW = CH >= 32 ? 1 : 32 / CH;         // key lanes per warp in P·V
    static_assert((CH & (CH - 1)) == 0 && CH <= 32, "head dim must be a power of two, 16..256");
    static constexpr int SCORE = GM * ATT_PMAX;                // floats of scores
    static constexpr int RED = ATT_WARPS * GM * D;             // floats of the cross-warp reduction
    static constexpr int SMEM = SCORE > RED ? SCORE : RED;
};

template <int D, int GM>
__global__ void __launch_bounds__(ATT_THREADS)
    attn_decode_kernel(float *__restrict__ part_o, float *__restrict__ part_ml, const __nv_bfloat16 *__restrict__ q,
                       const __nv_bfloat16 *__restrict__ kc, const __nv_bfloat16 *__restrict__ vc,
                       const int64_t *__restrict__ pos, int H, int Hkv, int G, int n_gc, int64_t Lc, int part_len,
                       int n_parts, float scale_log2) {
    using cfg = attn_cfg<D, GM>;
    __shared__ __align__(16) float sm[cfg::SMEM];
    __shared__ float s_m[GM], s_l[GM];
    const int part = blockIdx.x, hk = blockIdx.y / n_gc, gc = blockIdx.y % n_gc, b = blockIdx.z;
    const int64_t len = min(*pos + 1, Lc);
    const int64_t j0 = (int64_t)part * part_len;
    if (j0 >= len) return;
    const int n = (int)min((int64_t)part_len, len - j0);
    const int g0 = gc * GM, ng = min(GM, G - g0);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int gid = lane >> 2, tig = lane & 3;
    const int64_t HD = (int64_t)Hkv * D;
    const __nv_bfloat16 *kb = kc + ((int64_t)b * Lc + j0) * HD + (int64_t)hk * D;
    const __nv_bfloat16 *vb = vc + ((int64_t)b * Lc + j0) * HD + (int64_t)hk * D;
    float *s = sm;  // (GM, ATT_PMAX) scores, then probabilities

    // ---- phase 1: S = q Kᵀ on tensor cores, 8 keys per mma column block.
    uint32_t qa[cfg::KS][2];
    {
        const bool has = gid < ng;
        const __nv_bfloat16 *qr = q + ((int64_t)b * H + (int64_t)hk * G + g0 + (has ? gid : 0)) * D + tig * 4;
#pragma unroll
        for (int ks = 0; ks < cfg::KS; ks++) {
            uint2 u = has ? ldg_u2(qr + ks * 16) : make_uint2(0u, 0u);
            qa[ks][0] = u.x, qa[ks][1] = u.y;
        }
    }
    const int n_tiles = (n + 7) / 8;
    for (int tt = warp; tt < n_tiles; tt += 2 * ATT_WARPS) {
        // Two tiles per iteration: all their K loads are in flight before the mma chain.
        const int tt2 = tt + ATT_WARPS;
        const int key1 = tt * 8 + gid, key2 = tt2 * 8 + gid;
        uint2 kf1[cfg::KS], kf2[cfg::KS];
#pragma unroll
        for (int ks = 0; ks < cfg::KS; ks++) {
            kf1[ks] = key1 < n ? ld_stream_u2(kb + (int64_t)key1 * HD + ks * 16 + tig * 4) : make_uint2(0u, 0u);
            kf2[ks] = key2 < n ? ld_stream_u2(kb + (int64_t)key2 * HD + ks * 16 + tig * 4) : make_uint2(0u, 0u);
        }
        float c0 = 0.f, c1 = 0.f, c2 = 0.f, c3 = 0.f, e0 = 0.f, e1 = 0.f, e2 = 0.f, e3 = 0.f;
#pragma unroll
        for (int ks = 0; ks < cfg::KS; ks++) {
            mma_bf16_16816(c0, c1, c2, c3, qa[ks][0], 0u, qa[ks][1], 0u, kf1[ks].x, kf1[ks].y);
            mma_bf16_16816(e0, e1, e2, e3, qa[ks][0], 0u, qa[ks][1], 0u, kf2[ks].x, kf2[ks].y);
        }
        // c0, c1: head gid, keys tt·8 + 2·tig + {0, 1}; c2, c3 belong to the zero rows 8..15.
        if (gid < ng) {
            const int k0 = tt * 8 + 2 * tig;
            s[gid * ATT_PMAX + k0] = k0 < n ? c0 * scale_log2 : -INFINITY;
            s[gid * ATT_PMAX + k0 + 1] = k0 + 1 < n ? c1 * scale_log2 : -INFINITY;
            if (tt2 < n_tiles) {
                const int k2 = tt2 * 8 + 2 * tig;
                s[gid * ATT_PMAX + k2] = k2 < n ? e0 * scale_log2 : -INFINITY;
                s[gid * ATT_PMAX + k2 + 1] = k2 + 1 < n ? e1 * scale_log2 : -INFINITY;
            }
        }
    }
    __syncthreads();

    // ---- phase 2a: per head max and sum of 2^(s − m); one warp per head.
    for (int g = warp; g < ng; g += ATT_WARPS) {
        float *sg = s + g * ATT_PMAX;
        float m = -INFINITY;
        for (int j = lane; j < n; j += 32) m = fmaxf(m, sg[j]);
        m = warp_max(m);
        float l = 0.0f;
        for (int j = lane; j < n; j += 32) {
            const float e = exp2f(sg[j] - m);
            sg[j] = e;
            l += e;
        }
        l = warp_sum(l);
        if (lane == 0) s_m[g] = m, s_l[g] = l;
    }
    __syncthreads();

    // ---- phase 2b: O = P V on CUDA cores; a thread owns 8 dims and strides over keys.
    float acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0.0f;
    const int chunk = lane % cfg::CH, kl = lane / cfg::CH;  // KLW key lanes per warp
    const int r0 = warp * cfg::KLW + kl, R = ATT_WARPS * cfg::KLW;
    if (lane < cfg::CH * cfg::KLW) {
        int j = r0;
        // Four keys per iteration: their 16-byte V loads are all in flight at once.
        for (; j + 3 * R < n; j += 4 * R) {
            uint4 u[4];
#pragma unroll
            for (int i = 0; i < 4; i++) u[i] = ld_stream_u4(vb + (int64_t)(j + i * R) * HD + chunk * 8);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float v[8];
                u4_to_f32(u[i], v);
#pragma unroll
                for (int g = 0; g < GM; g++) {
                    if (g < ng) {
                        const float pj = s[g * ATT_PMAX + j + i * R];
#pragma unroll
                        for (int e = 0; e < 8; e++) acc[g][e] += pj * v[e];
                    }
                }
            }
        }
        for (; j < n; j += R) {
            float v[8];
            u4_to_f32(ld_stream_u4(vb + (int64_t)j * HD + chunk * 8), v);
#pragma unroll
            for (int g = 0; g < GM; g++) {
                if (g < ng) {
                    const float pj = s[g * ATT_PMAX + j];
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[g][e] += pj * v[e];
                }
            }
        }
    }
    // Key lanes of a warp hold the same dims: lanes chunk, chunk + CH, ...
#pragma unroll
    for (int off = cfg::CH; off < 32; off <<= 1)
#pragma unroll
        for (int g = 0; g < GM; g++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], off);
    __syncthreads();  // the scores are dead: the reduction reuses their shared memory
    float *red = sm;  // (ATT_WARPS, GM, D)
    if (lane < cfg::CH)
#pragma unroll
        for (int g = 0; g < GM; g++)
            if (g < ng)
#pragma unroll
                for (int e = 0; e < 8; e++) red[(warp * GM + g) * D + chunk * 8 + e] = acc[g][e];
    __syncthreads();
    for (int idx = tid; idx < ng * D; idx += ATT_THREADS) {
        const int g = idx / D, d = idx % D;
        float o = 0.0f;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) o += red[(w * GM + g) * D + d];
        const int64_t slot = ((int64_t)b * H + (int64_t)hk * G + g0 + g) * n_parts + part;
        part_o[slot * D + d] = o;
        if (d == 0) part_ml[2 * slot] = s_m[g], part_ml[2 * slot + 1] = s_l[g];
    }
}

// One block per (b, h): o = Σ_p 2^(m_p − M) o_p / Σ_p 2^(m_p − M) l_p over the
// partitions of the current length.
__global__ void attn_combine_kernel(__nv_bfloat16 *o, const float *part_o, const float *part_ml,
                                    const int64_t *pos, int D, int64_t Lc, int part_len, int n_parts) {
    const int64_t bh = blockIdx.x;
    const int64_t len = min(*pos + 1, Lc);
    const int np = (int)((len + part_len - 1) / part_len);
    const float *ml = part_ml + bh * n_parts * 2;
    float M = -INFINITY;
    for (int p = 0; p < np; p++) M = fmaxf(M, ml[2 * p]);
    float L = 0.0f;
    for (int p = 0; p < np; p++) L += exp2f(ml[2 * p] - M) * ml[2 * p + 1];
    const float inv = 1.0f / L;
    const float *po = part_o + bh * n_parts * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int p = 0; p < np; p++) acc += exp2f(ml[2 * p] - M) * po[(int64_t)p * D + d];
        o[bh * D + d] = __float2bfloat16_rn(acc * inv);
    }
}

#define ATT_TARGET_BLOCKS (4 * 132 * 4)  // several waves of 4 blocks on each of an H100's 132 SMs

extern "C" int pn_cuda_eng_attn_part_len(int B, int Hkv, int64_t Lc) {
    // Enough blocks at the full context to cover the chip several times over, and
    // partitions long enough that the partial outputs stay a few % of the K/V bytes.
    int part = ATT_PMAX;
    while (part > 32 && (int64_t)B * Hkv * ((Lc + part - 1) / part) < ATT_TARGET_BLOCKS) part /= 2;
    return part;
}

// part_len stops halving once B·Hkv·n_parts reaches the target, so below ATT_PMAX
// B·Hkv·n_parts < 2·target; at ATT_PMAX n_parts = ⌈Lc/ATT_PMAX⌉. The sum of the two
// bounds the slots in every case and, unlike the exact count, never shrinks as B grows.
extern "C" int64_t pn_cuda_eng_attn_part_slots_bound(int B, int H, int Hkv, int64_t Lc) {
    const int64_t G = H / Hkv;
    return (int64_t)B * H * ((Lc + ATT_PMAX - 1) / ATT_PMAX) + 2 * (int64_t)ATT_TARGET_BLOCKS * G;
}

template <int D, int GM>
static void attn_decode_launch(dim3 grid, float *part_o, float *part_ml, const pn_bf16 *q, const pn_bf16 *kc,
                               const pn_bf16 *vc, const int64_t *pos, int H, int Hkv, int G, int n_gc, int64_t Lc,
                               int part_len, int n_parts, float scale_log2) {
    attn_decode_kernel<D, GM><<<grid, ATT_THREADS, 0, pn_stream()>>>(part_o, part_ml, as_bf(q), as_bf(kc), as_bf(vc),
                                                                     pos, H, Hkv, G, n_gc, Lc, part_len, n_parts,
                                                                     scale_log2);
    PN_CHECK_LAUNCH();
}

template <int D>
static void attn_decode_pick_g(dim3 grid, int GM, float *part_o, float *part_ml, const pn_bf16 *q, const pn_bf16 *kc,
                               const pn_bf16 *vc, const int64_t *pos, int H, int Hkv, int G, int n_gc, int64_t Lc,
                               int part_len, int n_parts, float scale_log2) {
    if (GM == 1)
        attn_decode_launch<D, 1>(grid, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts,
                                 scale_log2);
    else if (GM == 2)
        attn_decode_launch<D, 2>(grid, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts,
                                 scale_log2);
    else if (GM == 4)
        attn_decode_launch<D, 4>(grid, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts,
                                 scale_log2);
    else if (GM == 6)
        attn_decode_launch<D, 6>(grid, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts,
                                 scale_log2);
    else
        attn_decode_launch<D, 8>(grid, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts,
                                 scale_log2);
}

extern "C" void pn_cuda_eng_attn_decode(pn_bf16 *o, const pn_bf16 *q, const pn_bf16 *kc, const pn_bf16 *vc,
                                        const int64_t *pos, int B, int H, int Hkv, int D, int64_t Lc, int part_len,
                                        int n_parts, float scale, float *part_o, float *part_ml) {
    if (B <= 0) return;
    if (!pn_cuda_eng_attn_head_dim_ok(D)) attn_die("decode: unsupported head dim", D);
    if (part_len < 32 || part_len > ATT_PMAX || part_len % 32 != 0 || (int64_t)n_parts * part_len < Lc)
        attn_die("decode: bad partition", D);
    const int G = H / Hkv;
    // Heads per block: the group (≤ 8 rows of the mma), at the smallest compiled size
    // that holds it, so the P·V accumulators stay in registers.
    const int GM = G <= 1 ? 1 : (G <= 2 ? 2 : (G <= 4 ? 4 : (G <= 6 ? 6 : 8)));
    const int n_gc = (G + GM - 1) / GM;
    const dim3 grid((unsigned)n_parts, (unsigned)(Hkv * n_gc), (unsigned)B);
    const float sl2 = scale * 1.4426950408889634f;
    switch (D) {
    case 16: attn_decode_pick_g<16>(grid, GM, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts, sl2); break;
    case 32: attn_decode_pick_g<32>(grid, GM, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts, sl2); break;
    case 64: attn_decode_pick_g<64>(grid, GM, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts, sl2); break;
    case 128: attn_decode_pick_g<128>(grid, GM, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts, sl2); break;
    case 256: attn_decode_pick_g<256>(grid, GM, part_o, part_ml, q, kc, vc, pos, H, Hkv, G, n_gc, Lc, part_len, n_parts, sl2); break;
    default: attn_die("decode: head dim without a compiled kernel", D);
    }
    attn_combine_kernel<<<(unsigned)((int64_t)B * H), pn_row_threads(D, 256), 0, pn_stream()>>>(
        as_bf(o), part_o, part_ml, pos, D, Lc, part_len, n_parts);
    PN_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- reference prefill attention

// One warp per (b, i, h); lanes split the head dim (≤ 8 dims each, D ≤ 256).
__global__ void attn_simple_kernel(__nv_bfloat16 *o, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                   const __nv_bfloat16 *v, int Tq, int Tk, int Hq, int Hkv, int D, int window,
                                   float scale, int64_t kvs) {
    const int64_t wid = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    const int b = blockIdx.y;
    if (wid >= (int64_t)Tq * Hq) return;
    const int i = (int)(wid / Hq), h = (int)(wid % Hq), hk = h / (Hq / Hkv);
    const int64_t p = (int64_t)Tk - Tq + i;
    const int64_t lo = window > 0 ? max((int64_t)0, p - window + 1) : 0;
    const __nv_bfloat16 *qr = q + (((int64_t)b * Tq + i) * Hq + h) * D;
    float qv[8], acc[8];
    int nd = 0;
    for (int d = lane; d < D; d += 32) qv[nd] = __bfloat162float(qr[d]) * scale, acc[nd] = 0.0f, nd++;
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = lo; j <= p; j++) {
        const __nv_bfloat16 *kr = k + (int64_t)b * kvs + (j * Hkv + hk) * D;
        const __nv_bfloat16 *vr = v + (int64_t)b * kvs + (j * Hkv + hk) * D;
        float s = 0.0f;
        int e = 0;
        for (int d = lane; d < D; d += 32, e++) s += qv[e] * __bfloat162float(kr[d]);
        s = warp_sum(s);
        const float mn = fmaxf(m, s), corr = expf(m - mn), pj = expf(s - mn);
        l = l * corr + pj;
        e = 0;
        for (int d = lane; d < D; d += 32, e++) acc[e] = acc[e] * corr + pj * __bfloat162float(vr[d]);
        m = mn;
    }
    __nv_bfloat16 *orow = o + (((int64_t)b * Tq + i) * Hq + h) * D;
    int e = 0;
    for (int d = lane; d < D; d += 32, e++) orow[d] = __float2bfloat16_rn(acc[e] / l);
}

extern "C" void pn_cuda_eng_attn_fwd_simple(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                                            const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v,
                                            int64_t kv_batch_stride, pn_bf16 *o) {
    if (B <= 0 || Tq <= 0) return;
    if (D > 256 || Tk < Tq) attn_die("reference attention: unsupported shape", D);
    const int64_t kvs = kv_batch_stride ? kv_batch_stride : (int64_t)Tk * Hkv * D;
    const int64_t warps = (int64_t)Tq * Hq;
    const dim3 grid((unsigned)pn_ceil_div(warps * 32, 256), (unsigned)B);
    attn_simple_kernel<<<grid, 256, 0, pn_stream()>>>(as_bf(o), as_bf(q), as_bf(k), as_bf(v), Tq, Tk, Hq, Hkv, D,
                                                      window, scale, kvs);
    PN_CHECK_LAUNCH();
}
