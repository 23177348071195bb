// block_elem_mr.cu — the fused element-wise / per-row kernels of the Mamba2 and RWKV7
// training blocks (contracts in pn_cuda_block_elem_mr.h).
//
// Two shapes of kernel: element-wise ones run a grid-stride loop over the flat index;
// per-row ones (a row = one token's head or group) give each row one warp, which walks
// the row with stride 32 and reduces with warp_sum. A row is at most a few thousand
// channels, so one warp per row keeps every reduction in registers without shared
// memory or block barriers; rows are independent, so no output is written twice.
// Parameter-gradient row terms are written to a (rows, D) buffer and reduced by
// pn_cuda_mr_colsum: partial sums over fixed 128-row slabs, then the slabs in order,
// so the result does not depend on scheduling.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_block_elem_mr.h"

namespace {

constexpr int ROWS_PER_BLOCK = 4;  // warps (rows) per 128-thread block
constexpr int COLSUM_SLAB = 128;

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplusf_(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

unsigned row_blocks(int64_t rows) { return (unsigned)pn_ceil_div(rows, ROWS_PER_BLOCK); }

// ---------------------------------------------------------------- shared

__global__ void colsum_partial(float *part, const float *in, int64_t R, int D) {
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t r0 = (int64_t)blockIdx.y * COLSUM_SLAB;
    if (d >= D) return;
    const int64_t r1 = r0 + COLSUM_SLAB < R ? r0 + COLSUM_SLAB : R;
    float acc = 0.0f;
    for (int64_t r = r0; r < r1; r++) acc += in[r * D + d];
    part[(int64_t)blockIdx.y * D + d] = acc;
}

__global__ void colsum_final(float *out, const float *part, int slabs, int D) {
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    float acc = 0.0f;
    for (int s = 0; s < slabs; s++) acc += part[(int64_t)s * D + d];
    out[d] += acc;
}

template <typename TY>
__global__ void bias_act_fwd_k(TY *y, const float *x, const float *bias, float scale, int act, int64_t M, int C) {
    const int64_t n = M * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = x[i] + (bias ? bias[i % C] : 0.0f);
        if (act == PN_MR_ACT_TANH) v = tanhf(v);
        if (act == PN_MR_ACT_SIGMOID) v = sigmoidf_(v);
        from_f32(&y[i], scale * v);
    }
}

template <typename TX, typename TY>
__global__ void bias_act_bwd_k(TX *dx, const float *dy, const TY *y, float scale, int act, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float t = to_f32(y[i]) / scale, d = dy[i] * scale;
        if (act == PN_MR_ACT_TANH) d *= 1.0f - t * t;
        if (act == PN_MR_ACT_SIGMOID) d *= t * (1.0f - t);
        from_f32(&dx[i], d);
    }
}

// ---------------------------------------------------------------- Mamba2

// One block per token: the per-head dt, g first (shared), then q, k, v.
__global__ void m2_ssd_in_fwd_k(float *dt, float *g, __nv_bfloat16 *q, __nv_bfloat16 *k, __nv_bfloat16 *v,
                                const __nv_bfloat16 *xs, const float *dtr, const float *dt_bias, const float *A_log,
                                int64_t N, int H, int P, int G, int Ns) {
    extern __shared__ float dt_sh[];  // H
    const int E = H * P, Dc = E + 2 * G * Ns, hpg = H / G;
    for (int64_t m = blockIdx.x; m < N; m += gridDim.x) {
        for (int h = threadIdx.x; h < H; h += blockDim.x) {
            const float d = softplusf_(dtr[m * H + h] + dt_bias[h]);
            dt_sh[h] = d;
            if (dt) dt[m * H + h] = d;
            if (g) g[m * H + h] = -d * expf(A_log[h]);
        }
        __syncthreads();
        const __nv_bfloat16 *xr = xs + m * Dc;
        if (q || k)
            for (int i = threadIdx.x; i < H * Ns; i += blockDim.x) {
                const int h = i / Ns, n = i % Ns, grp = h / hpg;
                if (q) q[m * H * Ns + i] = xr[E + (G + grp) * Ns + n];
                if (k) k[m * H * Ns + i] = xr[E + grp * Ns + n];
            }
        if (v)
            for (int i = threadIdx.x; i < E; i += blockDim.x) from_f32(&v[m * E + i], dt_sh[i / P] * to_f32(xr[i]));
        __syncthreads();
    }
}

// One block per token; warp w reduces heads w, w + nwarps, ... for d_dtr / dA_rows,
// then every thread owns whole d_xs elements.
__global__ void m2_ssd_in_bwd_k(float *d_xs, float *d_dtr, float *dA_rows, const float *dq, const float *dk,
                                const float *dv, const float *dg, const __nv_bfloat16 *xs, const float *dt,
                                const float *A_log, int64_t N, int H, int P, int G, int Ns) {
    const int E = H * P, Dc = E + 2 * G * Ns, hpg = H / G;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int64_t m = blockIdx.x; m < N; m += gridDim.x) {
        const __nv_bfloat16 *xr = xs + m * Dc;
        for (int h = warp; h < H; h += nw) {
            float acc = 0.0f;
            for (int p = lane; p < P; p += 32) acc += dv[m * E + h * P + p] * to_f32(xr[h * P + p]);
            acc = warp_sum(acc);
            if (lane == 0) {
                const float d = dt[m * H + h], A = -expf(A_log[h]), gg = dg[m * H + h];
                d_dtr[m * H + h] = (gg * A + acc) * -expm1f(-d);
                dA_rows[m * H + h] = gg * d * A;
            }
        }
        float *gx = d_xs + m * Dc;
        for (int i = threadIdx.x; i < E; i += blockDim.x) gx[i] += dv[m * E + i] * dt[m * H + i / P];
        for (int i = threadIdx.x; i < G * Ns; i += blockDim.x) {
            const int grp = i / Ns, n = i % Ns;
            float sk = 0.0f, sq = 0.0f;
            for (int h = grp * hpg; h < (grp + 1) * hpg; h++) {
                sk += dk[(m * H + h) * Ns + n];
                sq += dq[(m * H + h) * Ns + n];
            }
            gx[E + grp * Ns + n] += sk;
            gx[E + (G + grp) * Ns + n] += sq;
        }
    }
}

// One warp per (token, group) row of L = E/G channels.
__global__ void m2_out_fwd_k(__nv_bfloat16 *yn, float *rstd, const float *o, const __nv_bfloat16 *xs, const float *Dp,
                             const __nv_bfloat16 *z, const float *w, int64_t N, int H, int P, int G, int Dc,
                             float eps) {
    const int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, E = H * P, L = E / G;
    if (row >= N * G) return;
    const int64_t m = row / G;
    const int e0 = (int)(row % G) * L;
    float ss = 0.0f;
    for (int j = lane; j < L; j += 32) {
        const int e = e0 + j;
        const float zz = to_f32(z[m * E + e]);
        const float u = (o[m * E + e] + Dp[e / P] * to_f32(xs[m * Dc + e])) * (zz * sigmoidf_(zz));
        ss += u * u;
    }
    ss = warp_sum(ss);
    const float r = rsqrtf(ss / L + eps);
    if (lane == 0) rstd[row] = r;
    for (int j = lane; j < L; j += 32) {
        const int e = e0 + j;
        const float zz = to_f32(z[m * E + e]);
        const float u = (o[m * E + e] + Dp[e / P] * to_f32(xs[m * Dc + e])) * (zz * sigmoidf_(zz));
        from_f32(&yn[m * E + e], u * r * w[e]);
    }
}

__global__ void m2_out_bwd_k(float *d_o, __nv_bfloat16 *dz, float *d_xs, float *dD_rows, float *dw_rows,
                             const float *d_yn, const float *o, const __nv_bfloat16 *xs, const float *Dp,
                             const __nv_bfloat16 *z, const float *w, const float *rstd, int64_t N, int H, int P, int G,
                             int Dc) {
    const int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, E = H * P, L = E / G;
    if (row >= N * G) return;
    const int64_t m = row / G;
    const int grp = (int)(row % G), e0 = grp * L;
    const float r = rstd[row];
    float dot = 0.0f;
    for (int j = lane; j < L; j += 32) {
        const int e = e0 + j;
        const float zz = to_f32(z[m * E + e]);
        const float u = (o[m * E + e] + Dp[e / P] * to_f32(xs[m * Dc + e])) * (zz * sigmoidf_(zz));
        dot += d_yn[m * E + e] * w[e] * u;
    }
    dot = warp_sum(dot);
    const float c = r * r * r * dot / L;
    for (int j = lane; j < L; j += 32) {
        const int e = e0 + j;
        const float zz = to_f32(z[m * E + e]), sz = sigmoidf_(zz);
        const float x = to_f32(xs[m * Dc + e]), yD = o[m * E + e] + Dp[e / P] * x, u = yD * (zz * sz);
        const float du = r * d_yn[m * E + e] * w[e] - c * u;
        const float dyD = du * zz * sz;
        from_f32(&dz[m * E + e], du * yD * sz * (1.0f + zz * (1.0f - sz)));
        d_o[m * E + e] = dyD;
        d_xs[m * Dc + e] += Dp[e / P] * dyD;
        if (dw_rows) dw_rows[m * E + e] = d_yn[m * E + e] * u * r;
    }
    __syncwarp();  // the head sums below read d_o elements other lanes wrote
    const int hpg = H / G;
    for (int h = grp * hpg; h < (grp + 1) * hpg; h++) {
        float acc = 0.0f;
        for (int p = lane; p < P; p += 32) acc += d_o[m * E + h * P + p] * to_f32(xs[m * Dc + h * P + p]);
        acc = warp_sum(acc);
        if (lane == 0) dD_rows[m * H + h] = acc;
    }
}

// ---------------------------------------------------------------- RWKV7 (one warp per (token, head) row)

__global__ void rw_kab_fwd_k(__nv_bfloat16 *k, __nv_bfloat16 *aop, __nv_bfloat16 *bop, float *kh, float *kr,
                             const float *k0, const float *a, const float *k_k, const float *k_a, int64_t N, int H,
                             int K) {
    const int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N * H) return;
    const int c0 = (int)(row % H) * K;
    const int64_t base = row * K;  // (m, h) row start in (N, C): m·C + h·K
    float ss = 0.0f;
    for (int d = lane; d < K; d += 32) {
        const float kk = k0[base + d] * k_k[c0 + d];
        ss += kk * kk;
    }
    ss = warp_sum(ss);
    const float r = 1.0f / sqrtf(ss + 1e-6f);
    if (lane == 0) kr[row] = r;
    for (int d = lane; d < K; d += 32) {
        const int64_t j = base + d;
        const float h = k0[j] * k_k[c0 + d] * r, aa = a[j];
        kh[j] = h;
        from_f32(&k[j], k0[j] * (1.0f + (aa - 1.0f) * k_a[c0 + d]));
        from_f32(&aop[j], -h);
        from_f32(&bop[j], h * aa);
    }
}

__global__ void rw_kab_bwd_k(float *dk0, float *da, float *dka_rows, float *dkk_rows, const float *dk,
                             const float *daop, const float *dbop, const float *k0, const float *a, const float *kh,
                             const float *kr, const float *k_k, const float *k_a, int64_t N, int H, int K) {
    const int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N * H) return;
    const int c0 = (int)(row % H) * K;
    const int64_t base = row * K;
    float dot = 0.0f;
    for (int d = lane; d < K; d += 32) {
        const int64_t j = base + d;
        dot += (-daop[j] + dbop[j] * a[j]) * kh[j];
    }
    dot = warp_sum(dot);
    const float r = kr[row];
    for (int d = lane; d < K; d += 32) {
        const int64_t j = base + d;
        const float aa = a[j], dkh = -daop[j] + dbop[j] * aa, dkk = r * (dkh - kh[j] * dot);
        dk0[j] = dk[j] * (1.0f + (aa - 1.0f) * k_a[c0 + d]) + dkk * k_k[c0 + d];
        da[j] = dbop[j] * kh[j] + dk[j] * k0[j] * k_a[c0 + d];
        if (dka_rows) dka_rows[j] = dk[j] * k0[j] * (aa - 1.0f);
        if (dkk_rows) dkk_rows[j] = dkk * k0[j];
    }
}

__global__ void rw_vmix_fwd_k(__nv_bfloat16 *v, const float *v0, const __nv_bfloat16 *vf, const float *s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        from_f32(&v[i], v0[i] + (to_f32(vf[i]) - v0[i]) * s[i]);
}

__global__ void rw_vmix_bwd_k(float *dv0, float *dvf, __nv_bfloat16 *dsl, const float *dv, const float *v0,
                              const __nv_bfloat16 *vf, const float *s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float g = dv[i], ss = s[i];
        dv0[i] = g * (1.0f - ss);
        dvf[i] += g * ss;
        from_f32(&dsl[i], g * (to_f32(vf[i]) - v0[i]) * ss * (1.0f - ss));
    }
}

__global__ void rw_bonus_fwd_k(__nv_bfloat16 *xo, float *o2, float *sb, const float *on, const __nv_bfloat16 *r,
                               const __nv_bfloat16 *k, const __nv_bfloat16 *v, const float *r_k, const float *g,
                               int64_t N, int H, int K) {
    const int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N * H) return;
    const int c0 = (int)(row % H) * K;
    const int64_t base = row * K;
    float sum = 0.0f;
    for (int d = lane; d < K; d += 32) sum += to_f32(r[base + d]) * to_f32(k[base + d]) * r_k[c0 + d];
    sum = warp_sum(sum);
    if (lane == 0) sb[row] = sum;
    for (int d = lane; d < K; d += 32) {
        const int64_t j = base + d;
        const float t = on[j] + sum * to_f32(v[j]);
        o2[j] = t;
        from_f32(&xo[j], t * g[j]);
    }
}

__global__ void rw_bonus_bwd_k(float *d_o2, __nv_bfloat16 *d_g, float *dr, float *dk, float *dv, float *drk_rows,
                               const float *d_y3, const float *o2, const float *sb, const __nv_bfloat16 *r,
                               const __nv_bfloat16 *k, const __nv_bfloat16 *v, const float *r_k, const float *g,
                               int64_t N, int H, int K) {
    const int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N * H) return;
    const int c0 = (int)(row % H) * K;
    const int64_t base = row * K;
    float ds = 0.0f;
    for (int d = lane; d < K; d += 32) {
        const int64_t j = base + d;
        const float t = d_y3[j] * g[j];
        d_o2[j] = t;
        from_f32(&d_g[j], d_y3[j] * o2[j]);
        ds += t * to_f32(v[j]);
    }
    ds = warp_sum(ds);
    const float s = sb[row];
    for (int d = lane; d < K; d += 32) {
        const int64_t j = base + d;
        const float rr = to_f32(r[j]), kk = to_f32(k[j]);
        dv[j] = s * (d_y3[j] * g[j]);
        dr[j] = ds * kk * r_k[c0 + d];
        dk[j] = ds * rr * r_k[c0 + d];
        if (drk_rows) drk_rows[j] = ds * rr * kk;
    }
}

}  // namespace

// ---------------------------------------------------------------- entry points

extern "C" void pn_cuda_mr_colsum(float *out, const float *in, int64_t R, int D) {
    if (R <= 0 || D <= 0) return;
    const int slabs = (int)pn_ceil_div(R, COLSUM_SLAB);
    float *part = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)slabs * D * sizeof(float));
    dim3 grid((unsigned)pn_ceil_div(D, 128), (unsigned)slabs);
    colsum_partial<<<grid, 128, 0, pn_stream()>>>(part, in, R, D);
    PN_CHECK_LAUNCH();
    colsum_final<<<(unsigned)pn_ceil_div(D, 128), 128, 0, pn_stream()>>>(out, part, slabs, D);
    PN_CHECK_LAUNCH();
    pn_cuda_free(part);
}

extern "C" void pn_cuda_mr_bias_act_fwd(void *y, pn_cuda_dtype y_dt, const float *x, const float *bias, float scale,
                                        int act, int64_t M, int C) {
    if (M <= 0 || C <= 0) return;
    const unsigned grid = pn_grid_for(M * C, 256);
    if (y_dt == PN_CUDA_BF16)
        bias_act_fwd_k<<<grid, 256, 0, pn_stream()>>>((__nv_bfloat16 *)y, x, bias, scale, act, M, C);
    else
        bias_act_fwd_k<<<grid, 256, 0, pn_stream()>>>((float *)y, x, bias, scale, act, M, C);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_mr_bias_act_bwd(void *dx, pn_cuda_dtype dx_dt, const float *dy, const void *y,
                                        pn_cuda_dtype y_dt, float scale, int act, int64_t n) {
    if (n <= 0) return;
    const unsigned grid = pn_grid_for(n, 256);
    cudaStream_t st = pn_stream();
    if (dx_dt == PN_CUDA_BF16 && y_dt == PN_CUDA_BF16)
        bias_act_bwd_k<<<grid, 256, 0, st>>>((__nv_bfloat16 *)dx, dy, (const __nv_bfloat16 *)y, scale, act, n);
    else if (dx_dt == PN_CUDA_BF16)
        bias_act_bwd_k<<<grid, 256, 0, st>>>((__nv_bfloat16 *)dx, dy, (const float *)y, scale, act, n);
    else if (y_dt == PN_CUDA_BF16)
        bias_act_bwd_k<<<grid, 256, 0, st>>>((float *)dx, dy, (const __nv_bfloat16 *)y, scale, act, n);
    else
        bias_act_bwd_k<<<grid, 256, 0, st>>>((float *)dx, dy, (const float *)y, scale, act, n);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_m2_ssd_in_fwd(float *dt, float *g, pn_bf16 *q, pn_bf16 *k, pn_bf16 *v, const pn_bf16 *xs,
                                      const float *dtr, const float *dt_bias, const float *A_log, int64_t N, int H,
                                      int P, int G, int Ns) {
    if (N <= 0) return;
    const unsigned grid = (unsigned)(N < 132 * 16 ? N : 132 * 16);
    m2_ssd_in_fwd_k<<<grid, 128, (size_t)H * sizeof(float), pn_stream()>>>(
        dt, g, (__nv_bfloat16 *)q, (__nv_bfloat16 *)k, (__nv_bfloat16 *)v, as_bf(xs), dtr, dt_bias, A_log, N, H, P, G,
        Ns);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_m2_ssd_in_bwd(float *d_xs, float *d_dtr, float *dA_rows, const float *dq, const float *dk,
                                      const float *dv, const float *dg, const pn_bf16 *xs, const float *dt,
                                      const float *A_log, int64_t N, int H, int P, int G, int Ns) {
    if (N <= 0) return;
    const unsigned grid = (unsigned)(N < 132 * 16 ? N : 132 * 16);
    m2_ssd_in_bwd_k<<<grid, 128, 0, pn_stream()>>>(d_xs, d_dtr, dA_rows, dq, dk, dv, dg, as_bf(xs), dt, A_log, N, H,
                                                    P, G, Ns);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_m2_out_fwd(pn_bf16 *yn, float *rstd, const float *o, const pn_bf16 *xs, const float *Dp,
                                   const pn_bf16 *z, const float *w, int64_t N, int H, int P, int G, int Dc,
                                   float eps) {
    if (N <= 0) return;
    m2_out_fwd_k<<<row_blocks(N * G), 32 * ROWS_PER_BLOCK, 0, pn_stream()>>>(as_bf(yn), rstd, o, as_bf(xs), Dp,
                                                                            as_bf(z), w, N, H, P, G, Dc, eps);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_m2_out_bwd(float *d_o, pn_bf16 *dz, float *d_xs, float *dD_rows, float *dw_rows,
                                   const float *d_yn, const float *o, const pn_bf16 *xs, const float *Dp,
                                   const pn_bf16 *z, const float *w, const float *rstd, int64_t N, int H, int P, int G,
                                   int Dc) {
    if (N <= 0) return;
    m2_out_bwd_k<<<row_blocks(N * G), 32 * ROWS_PER_BLOCK, 0, pn_stream()>>>(
        d_o, as_bf(dz), d_xs, dD_rows, dw_rows, d_yn, o, as_bf(xs), Dp, as_bf(z), w, rstd, N, H, P, G, Dc);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rw_kab_fwd(pn_bf16 *k, pn_bf16 *aop, pn_bf16 *bop, float *kh, float *kr, const float *k0,
                                   const float *a, const float *k_k, const float *k_a, int64_t N, int H, int K) {
    if (N <= 0) return;
    rw_kab_fwd_k<<<row_blocks(N * H), 32 * ROWS_PER_BLOCK, 0, pn_stream()>>>(as_bf(k), as_bf(aop), as_bf(bop), kh, kr,
                                                                            k0, a, k_k, k_a, N, H, K);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rw_kab_bwd(float *dk0, float *da, float *dka_rows, float *dkk_rows, const float *dk,
                                   const float *daop, const float *dbop, const float *k0, const float *a,
                                   const float *kh, const float *kr, const float *k_k, const float *k_a, int64_t N,
                                   int H, int K) {
    if (N <= 0) return;
    rw_kab_bwd_k<<<row_blocks(N * H), 32 * ROWS_PER_BLOCK, 0, pn_stream()>>>(dk0, da, dka_rows, dkk_rows, dk, daop,
                                                                            dbop, k0, a, kh, kr, k_k, k_a, N, H, K);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rw_vmix_fwd(pn_bf16 *v, const float *v0, const pn_bf16 *vf, const float *s, int64_t n) {
    if (n <= 0) return;
    rw_vmix_fwd_k<<<pn_grid_for(n, 256), 256, 0, pn_stream()>>>(as_bf(v), v0, as_bf(vf), s, n);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rw_vmix_bwd(float *dv0, float *dvf, pn_bf16 *dsl, const float *dv, const float *v0,
                                    const pn_bf16 *vf, const float *s, int64_t n) {
    if (n <= 0) return;
    rw_vmix_bwd_k<<<pn_grid_for(n, 256), 256, 0, pn_stream()>>>(dv0, dvf, as_bf(dsl), dv, v0, as_bf(vf), s, n);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rw_bonus_fwd(pn_bf16 *xo, float *o2, float *sb, const float *on, const pn_bf16 *r,
                                     const pn_bf16 *k, const pn_bf16 *v, const float *r_k, const float *g, int64_t N,
                                     int H, int K) {
    if (N <= 0) return;
    rw_bonus_fwd_k<<<row_blocks(N * H), 32 * ROWS_PER_BLOCK, 0, pn_stream()>>>(as_bf(xo), o2, sb, on, as_bf(r),
                                                                              as_bf(k), as_bf(v), r_k, g, N, H, K);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rw_bonus_bwd(float *d_o2, pn_bf16 *d_g, float *dr, float *dk, float *dv, float *drk_rows,
                                     const float *d_y3, const float *o2, const float *sb, const pn_bf16 *r,
                                     const pn_bf16 *k, const pn_bf16 *v, const float *r_k, const float *g, int64_t N,
                                     int H, int K) {
    if (N <= 0) return;
    rw_bonus_bwd_k<<<row_blocks(N * H), 32 * ROWS_PER_BLOCK, 0, pn_stream()>>>(
        d_o2, as_bf(d_g), dr, dk, dv, drk_rows, d_y3, o2, sb, as_bf(r), as_bf(k), as_bf(v), r_k, g, N, H, K);
    PN_CHECK_LAUNCH();
}
