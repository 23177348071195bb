// distill_loss.cu — fused distillation losses (MSE on hidden states, KL on logits at
// temperature τ) with their backward, and the gradient sum of squares / scaling.
// See pn_cuda_distill.h for the contract; supernet/distill.c is the CPU twin.
//
// KL: one block per logit row. Pass 1 reads the student and teacher rows once, each
// thread keeping an online (max, Σexp) pair per row, merged by block reductions into
// the two log-sum-exps. Pass 2 rereads both rows (mostly from L2 for moderate V),
// forms log p, log q, adds p (log p − log q) into a per-thread sum and writes
// grad_mul · (q − p) as bf16. In-place use (dls == ls) is safe: every element is read
// and then written by the same thread, after the last block-wide reduction that needs
// the row. Per-thread KL sums are fp32 over ≤ V / blockDim terms and the block sum is
// in double; the row results stay on the device in double.
// MSE and the sum of squares: one block per fixed chunk of elements, per-thread double
// accumulation, block sum in double, one double per chunk; chunk sizes are constants,
// so the summation order never depends on the launch. The host adds the partials in
// index order, as the CPU code does.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_distill.h"
#include <math.h>

// ---------------------------------------------------------------- reductions in double
static __device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Block sum in double, returned to every thread; sh holds 32 doubles.
static __device__ __forceinline__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double r = lane < nw ? sh[lane] : 0.0;
    r = warp_sum_d(r);
    __syncthreads();
    return r;
}

// Merge of two online-softmax states (m, s): s relative to max m.
static __device__ __forceinline__ void lse_merge2(float &m, float &s, float m2, float s2) {
    if (m2 == -INFINITY) return;
    if (m2 > m) {
        s = s * expf(m - m2) + s2;
        m = m2;
    } else {
        s += s2 * expf(m2 - m);
    }
}

static __device__ __forceinline__ float block_lse(float m, float s, float *sh) {
    const float M = block_max(m, sh);
    const float S = block_sum(m == -INFINITY ? 0.0f : s * expf(m - M), sh);
    return M + logf(S);
}

// ---------------------------------------------------------------- KL
template <int VEC>
__global__ void distill_kl_kernel(__nv_bfloat16 *dls, double *row_kl, const __nv_bfloat16 *ls,
                                  const __nv_bfloat16 *lt, int V, float inv_tau, float grad_mul) {
    __shared__ float sh[32];
    __shared__ double shd[32];
    const int64_t row = blockIdx.x;
    const __nv_bfloat16 *a = ls + row * (int64_t)V;  // student
    const __nv_bfloat16 *b = lt + row * (int64_t)V;  // teacher
    __nv_bfloat16 *da = dls ? dls + row * (int64_t)V : nullptr;

    float ma = -INFINITY, sa = 0.0f, mb = -INFINITY, sb = 0.0f;
    for (int v = threadIdx.x * VEC; v < V; v += blockDim.x * VEC) {
        float fa[VEC], fb[VEC];
        if (VEC == 8) {
            load8(a + v, fa);
            load8(b + v, fb);
        } else {
            fa[0] = __bfloat162float(a[v]);
            fb[0] = __bfloat162float(b[v]);
        }
        float la = fa[0] * inv_tau, lb = fb[0] * inv_tau;
#pragma unroll
        for (int k = 1; k < VEC; k++) {
            la = fmaxf(la, fa[k] * inv_tau);
            lb = fmaxf(lb, fb[k] * inv_tau);
        }
        float ea = 0.0f, eb = 0.0f;
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            ea += expf(fa[k] * inv_tau - la);
            eb += expf(fb[k] * inv_tau - lb);
        }
        lse_merge2(ma, sa, la, ea);
        lse_merge2(mb, sb, lb, eb);
    }
    const float lza = block_lse(ma, sa, sh);
    const float lzb = block_lse(mb, sb, sh);

    float kl = 0.0f;
    for (int v = threadIdx.x * VEC; v < V; v += blockDim.x * VEC) {
        float fa[VEC], fb[VEC];
        if (VEC == 8) {
            load8(a + v, fa);
            load8(b + v, fb);
        } else {
            fa[0] = __bfloat162float(a[v]);
            fb[0] = __bfloat162float(b[v]);
        }
        float g[VEC];
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            const float logq = fa[k] * inv_tau - lza;
            const float logp = fb[k] * inv_tau - lzb;
            const float p = expf(logp);
            // p log p → 0 as p → 0: an underflowed p contributes nothing (as the CPU twin).
            if (p > 0.0f) kl += p * (logp - logq);
            g[k] = grad_mul * (expf(logq) - p);
        }
        if (da) {
            if (VEC == 8)
                store8(da + v, g);
            else
                da[v] = __float2bfloat16_rn(g[0]);
        }
    }
    const double total = block_sum_d((double)kl, shd);
    if (threadIdx.x == 0) row_kl[row] = total;
}

extern "C" void pn_cuda_distill_kl_async(pn_bf16 *dls, double *row_kl, const pn_bf16 *ls, const pn_bf16 *lt,
                                         int64_t N, int V, float tau, float grad_mul) {
    if (N <= 0 || V <= 0) return;
    const float inv_tau = 1.0f / tau;
    const bool vec = V % 8 == 0 && pn_aligned16(ls) && pn_aligned16(lt) && (!dls || pn_aligned16(dls));
    const int threads = pn_row_threads(vec ? V / 8 : V, 1024);
    if (vec)
        distill_kl_kernel<8><<<(unsigned)N, threads, 0, pn_stream()>>>(as_bf(dls), row_kl, as_bf(ls), as_bf(lt), V,
                                                                      inv_tau, grad_mul);
    else
        distill_kl_kernel<1><<<(unsigned)N, threads, 0, pn_stream()>>>(as_bf(dls), row_kl, as_bf(ls), as_bf(lt), V,
                                                                      inv_tau, grad_mul);
    PN_CHECK_LAUNCH();
}

// Sums n device doubles on the host in index order (syncs).
static double sum_partials(const double *dev, int64_t n) {
    double *h = (double *)malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (!h) {
        fprintf(stderr, "postnas: internal error: %s:%d: out of host memory\n", __FILE__, __LINE__);
        exit(1);
    }
    pn_cuda_download(h, dev, (size_t)n * sizeof(double));
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += h[i];
    free(h);
    return s;
}

extern "C" double pn_cuda_distill_kl(pn_bf16 *dls, const pn_bf16 *ls, const pn_bf16 *lt, int64_t N, int V,
                                     double tau, float scale) {
    if (N <= 0 || V <= 0) return 0.0;
    double *rows = (double *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * sizeof(double));
    const float grad_mul = (float)((double)scale * tau / (double)N);  // τ² · (1/τ) / N
    pn_cuda_distill_kl_async(dls, rows, ls, lt, N, V, (float)tau, grad_mul);
    const double sum = sum_partials(rows, N);
    pn_cuda_free(rows);
    return tau * tau * sum / (double)N;
}

// ---------------------------------------------------------------- MSE
#define MSE_THREADS 256

__global__ void distill_mse_kernel(float *ds, double *part, const __nv_bfloat16 *s, const __nv_bfloat16 *t,
                                   int64_t n, float grad_mul) {
    __shared__ double shd[32];
    const int64_t lo = (int64_t)blockIdx.x * PN_CUDA_MSE_CHUNK;
    const int64_t hi = lo + PN_CUDA_MSE_CHUNK < n ? lo + PN_CUDA_MSE_CHUNK : n;
    double acc = 0.0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        // The difference of two bf16 values is exact in fp32 (8-bit significands).
        const float d = __bfloat162float(s[i]) - __bfloat162float(t[i]);
        acc += (double)d * (double)d;
        if (ds) ds[i] = grad_mul * d;
    }
    const double total = block_sum_d(acc, shd);
    if (threadIdx.x == 0) part[blockIdx.x] = total;
}

// The same on fp32 inputs; s − t in double, as the CPU twin (an fp32 difference of two
// fp32 values is not exact).
__global__ void distill_mse_f32_kernel(float *ds, double *part, const float *s, const float *t, int64_t n,
                                       float grad_mul) {
    __shared__ double shd[32];
    const int64_t lo = (int64_t)blockIdx.x * PN_CUDA_MSE_CHUNK;
    const int64_t hi = lo + PN_CUDA_MSE_CHUNK < n ? lo + PN_CUDA_MSE_CHUNK : n;
    double acc = 0.0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const double d = (double)s[i] - (double)t[i];
        acc += d * d;
        if (ds) ds[i] = (float)((double)grad_mul * d);
    }
    const double total = block_sum_d(acc, shd);
    if (threadIdx.x == 0) part[blockIdx.x] = total;
}

extern "C" void pn_cuda_distill_mse_f32_async(float *ds, double *part, const float *s, const float *t, int64_t n,
                                              float grad_mul) {
    if (n <= 0) return;
    const int64_t chunks = pn_ceil_div(n, PN_CUDA_MSE_CHUNK);
    distill_mse_f32_kernel<<<(unsigned)chunks, MSE_THREADS, 0, pn_stream()>>>(ds, part, s, t, n, grad_mul);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_distill_mse_async(float *ds, double *part, const pn_bf16 *s, const pn_bf16 *t, int64_t n,
                                          float grad_mul) {
    if (n <= 0) return;
    const int64_t chunks = pn_ceil_div(n, PN_CUDA_MSE_CHUNK);
    distill_mse_kernel<<<(unsigned)chunks, MSE_THREADS, 0, pn_stream()>>>(ds, part, as_bf(s), as_bf(t), n, grad_mul);
    PN_CHECK_LAUNCH();
}

extern "C" double pn_cuda_distill_mse(float *ds, const pn_bf16 *s, const pn_bf16 *t, int64_t n, float scale) {
    if (n <= 0) return 0.0;
    const int64_t chunks = pn_ceil_div(n, PN_CUDA_MSE_CHUNK);
    double *part = (double *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)chunks * sizeof(double));
    const float grad_mul = (float)(2.0 * (double)scale / (double)n);
    pn_cuda_distill_mse_async(ds, part, s, t, n, grad_mul);
    const double sum = sum_partials(part, chunks);
    pn_cuda_free(part);
    return sum / (double)n;
}

// ---------------------------------------------------------------- gradient norm, scaling
__global__ void sumsq_kernel(double *part, const float *x, int64_t n) {
    __shared__ double shd[32];
    const int64_t lo = (int64_t)blockIdx.x * PN_CUDA_NORM_BLOCK;
    const int64_t hi = lo + PN_CUDA_NORM_BLOCK < n ? lo + PN_CUDA_NORM_BLOCK : n;
    double acc = 0.0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) acc += (double)x[i] * (double)x[i];
    const double total = block_sum_d(acc, shd);
    if (threadIdx.x == 0) part[blockIdx.x] = total;
}

extern "C" void pn_cuda_sumsq_async(double *part, const float *x, int64_t n) {
    if (n <= 0) return;
    sumsq_kernel<<<(unsigned)pn_ceil_div(n, PN_CUDA_NORM_BLOCK), 256, 0, pn_stream()>>>(part, x, n);
    PN_CHECK_LAUNCH();
}

__global__ void scale_inplace_kernel(float *x, float s, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) x[i] *= s;
}

extern "C" void pn_cuda_scale_inplace(float *x, float s, int64_t n) {
    if (n <= 0) return;
    scale_inplace_kernel<<<pn_grid_for(n, 256), 256, 0, pn_stream()>>>(x, s, n);
    PN_CHECK_LAUNCH();
}
