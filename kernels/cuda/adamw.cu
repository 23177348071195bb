// adamw.cu — AdamW on fp32 master weights, fp32 moments, writing the bf16 copy.
//
// The update is supernet/optim.c's (torch.optim.AdamW, single-tensor path), term for
// term and in the same order: decoupled decay w *= 1 − lr·wd first, then
// m += (1 − β1)(g − m), v = β2·v + (1 − β2)·g², w −= step · m / (sqrt(v)/sqrt(bc2) + eps).
// The scalars (bias corrections, step size, decay factor) are computed on the host in
// double and rounded to fp32 exactly as the CPU code does, so the per-element fp32
// arithmetic is the only difference (IEEE sqrtf and division; at most FMA contraction).
// One pass over the five arrays, 8 elements per thread with 16-byte accesses when
// everything is aligned.
#include "kernels/cuda/common.cuh"
#include <math.h>

struct adamw_scalars {
    float step_size, bc2_sqrt, one_m_b1, one_m_b2, b2, eps, decay_mul;
    int decay;
};

static __device__ __forceinline__ void adamw1(float &w, float g, float &m, float &v, const adamw_scalars &s) {
    float wi = w;
    if (s.decay) wi *= s.decay_mul;
    const float mi = m + s.one_m_b1 * (g - m);
    const float vi = s.b2 * v + s.one_m_b2 * g * g;
    const float denom = sqrtf(vi) / s.bc2_sqrt + s.eps;
    w = wi - s.step_size * (mi / denom);
    m = mi;
    v = vi;
}

template <bool VEC>
__global__ void adamw_kernel(float *w, __nv_bfloat16 *wb, const float *g, float *m, float *v, int64_t n,
                             const adamw_scalars s) {
    const int64_t n8 = VEC ? n / 8 : 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8 + (n - 8 * n8); i += stride) {
        if (i < n8) {
            const int64_t j = 8 * i;
            float fw[8], fg[8], fm[8], fv[8];
            load8(w + j, fw);
            load8(g + j, fg);
            load8(m + j, fm);
            load8(v + j, fv);
#pragma unroll
            for (int k = 0; k < 8; k++) adamw1(fw[k], fg[k], fm[k], fv[k], s);
            store8(w + j, fw);
            store8(m + j, fm);
            store8(v + j, fv);
            if (wb) store8(wb + j, fw);
        } else {
            const int64_t j = 8 * n8 + (i - n8);
            float fw = w[j], fm = m[j], fv = v[j];
            adamw1(fw, g[j], fm, fv, s);
            w[j] = fw;
            m[j] = fm;
            v[j] = fv;
            if (wb) wb[j] = __float2bfloat16_rn(fw);
        }
    }
}

extern "C" void pn_cuda_adamw_step(float *w, pn_bf16 *w_bf16, const float *g, float *m, float *v, int64_t n,
                                   int64_t t, float lr, float beta1, float beta2, float eps, float weight_decay) {
    if (n <= 0) return;
    if (t < 1) {
        fprintf(stderr, "postnas: internal error: %s:%d: AdamW step number %lld (want >= 1)\n", __FILE__, __LINE__,
                (long long)t);
        exit(1);
    }
    const double td = (double)t;
    const double bc1 = 1.0 - pow((double)beta1, td);
    const double bc2 = 1.0 - pow((double)beta2, td);
    adamw_scalars s;
    s.step_size = (float)((double)lr / bc1);
    s.bc2_sqrt = (float)sqrt(bc2);
    s.one_m_b1 = (float)(1.0 - (double)beta1);
    s.one_m_b2 = (float)(1.0 - (double)beta2);
    s.b2 = beta2;
    s.eps = eps;
    s.decay_mul = (float)(1.0 - (double)lr * (double)weight_decay);
    s.decay = weight_decay != 0.0f;
    const int threads = 256;
    const bool vec = pn_aligned16(w) && pn_aligned16(g) && pn_aligned16(m) && pn_aligned16(v) &&
                     (!w_bf16 || pn_aligned16(w_bf16));
    const unsigned grid = pn_grid_for(vec ? n / 8 + n % 8 : n, threads);
    if (vec)
        adamw_kernel<true><<<grid, threads, 0, pn_stream()>>>(w, as_bf(w_bf16), g, m, v, n, s);
    else
        adamw_kernel<false><<<grid, threads, 0, pn_stream()>>>(w, as_bf(w_bf16), g, m, v, n, s);
    PN_CHECK_LAUNCH();
}
