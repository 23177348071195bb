// loss.cu — token embedding (forward, backward) and the fused cross-entropy.
//
// Embedding backward is deterministic without atomics: a thread owns one column c of
// the table and walks the N tokens in order, adding dy[n, c] into row ids[n]. Repeated
// ids therefore add in the same order as the CPU loop (the result is bitwise the
// CPU's), reads of dy are coalesced along c, and no two threads ever touch the same
// element. The parallelism is only C threads, which is enough for a table that the
// project keeps frozen (the op exists for completeness and for full fine-tuning).
//
// Cross-entropy: one block per row of the (N, Vocab) bf16 logits. Pass 1 keeps a
// per-thread online (max, Σexp) pair — one read of the row, no overflow — and merges
// them with two block reductions into lse. Pass 2 rereads the row (mostly from L2) and
// writes softmax − onehot, scaled by grad_scale / count, as bf16, overwriting the
// logits when dlogits == logits: every element is read and written by the same thread
// after the block's last reduction, and the target logit is read before pass 1. The
// count of non-ignored rows comes from a small kernel that runs first, so the scale is
// known on the device without a host round trip. All math is fp32; the row losses are
// written in fp32 and the mean is summed on the host in double.
#include "kernels/cuda/common.cuh"
#include <math.h>

// ---------------------------------------------------------------- embedding
template <bool VEC>
__global__ void embedding_fwd_kernel(__nv_bfloat16 *y, const int64_t *ids, const __nv_bfloat16 *table, int64_t N,
                                     int C) {
    const int per_row = VEC ? C / 8 : C;
    const int64_t total = N * per_row, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / per_row;
        const int c = (int)(i % per_row) * (VEC ? 8 : 1);
        const __nv_bfloat16 *src = table + ids[n] * C + c;
        __nv_bfloat16 *dst = y + n * C + c;
        if (VEC)
            *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
        else
            *dst = *src;
    }
}

__global__ void embedding_bwd_kernel(float *dtable, const float *dy, const int64_t *ids, int64_t N, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int64_t n = 0; n < N; n++) dtable[ids[n] * C + c] += dy[n * C + c];
}

extern "C" void pn_cuda_embedding_fwd(pn_bf16 *y, const int64_t *ids, const pn_bf16 *table, int64_t N, int C) {
    if (N <= 0 || C <= 0) return;
    const int threads = 256;
    const bool vec = C % 8 == 0 && pn_aligned16(y) && pn_aligned16(table);
    const unsigned grid = pn_grid_for(N * (vec ? C / 8 : C), threads);
    if (vec)
        embedding_fwd_kernel<true><<<grid, threads, 0, pn_stream()>>>(as_bf(y), ids, as_bf(table), N, C);
    else
        embedding_fwd_kernel<false><<<grid, threads, 0, pn_stream()>>>(as_bf(y), ids, as_bf(table), N, C);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_embedding_bwd(float *dtable, const float *dy, const int64_t *ids, int64_t N, int C) {
    if (!dtable || N <= 0 || C <= 0) return;
    const int threads = 128;
    embedding_bwd_kernel<<<(unsigned)pn_ceil_div(C, threads), threads, 0, pn_stream()>>>(dtable, dy, ids, N, C);
    PN_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- cross-entropy
__global__ void count_targets_kernel(int *count, const int64_t *targets, int64_t N) {
    __shared__ float sh[32];
    float c = 0.0f;  // exact in fp32 up to 2^24 per thread; partial sums stay integral
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) c += targets[n] >= 0 ? 1.0f : 0.0f;
    c = block_sum(c, sh);
    if (threadIdx.x == 0) *count = (int)c;
}

// Merge of two online-softmax states (m, s): s relative to max m.
static __device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    if (m2 == -INFINITY) return;
    if (m2 > m) {
        s = s * expf(m - m2) + s2;
        m = m2;
    } else {
        s += s2 * expf(m2 - m);
    }
}

template <int VEC>
__global__ void cross_entropy_kernel(__nv_bfloat16 *dlogits, float *row_loss, const __nv_bfloat16 *logits,
                                     const int64_t *targets, const int *count, int V, float grad_scale) {
    __shared__ float sh[32];
    __shared__ float zt_sh;
    const int64_t row = blockIdx.x;
    const int64_t tgt = targets[row];
    const __nv_bfloat16 *z = logits + row * (int64_t)V;
    __nv_bfloat16 *dz = dlogits ? dlogits + row * (int64_t)V : nullptr;
    if (tgt < 0 || tgt >= V) {
        // Ignored row (an out-of-range target is a caller bug; it is treated as ignored
        // rather than read out of bounds, and the CPU op would have asserted).
        if (row_loss && threadIdx.x == 0) row_loss[row] = 0.0f;
        if (dz)
            for (int v = threadIdx.x; v < V; v += blockDim.x) dz[v] = __float2bfloat16_rn(0.0f);
        return;
    }
    if (threadIdx.x == 0) zt_sh = __bfloat162float(z[tgt]);
    float m = -INFINITY, s = 0.0f;
    for (int v = threadIdx.x * VEC; v < V; v += blockDim.x * VEC) {
        float f[VEC];
        if (VEC == 8) {
            load8(z + v, f);
        } else {
            f[0] = __bfloat162float(z[v]);
        }
        float lm = f[0];
#pragma unroll
        for (int k = 1; k < VEC; k++) lm = fmaxf(lm, f[k]);
        float ls = 0.0f;
#pragma unroll
        for (int k = 0; k < VEC; k++) ls += expf(f[k] - lm);
        lse_merge(m, s, lm, ls);
    }
    const float M = block_max(m, sh);
    const float S = block_sum(m == -INFINITY ? 0.0f : s * expf(m - M), sh);
    const float lse = M + logf(S);
    if (row_loss && threadIdx.x == 0) row_loss[row] = lse - zt_sh;
    if (!dz) return;
    const float g = grad_scale / (float)(*count);
    for (int v = threadIdx.x * VEC; v < V; v += blockDim.x * VEC) {
        if (VEC == 8) {
            float f[8];
            load8(z + v, f);
#pragma unroll
            for (int k = 0; k < 8; k++) f[k] = expf(f[k] - lse) * g - (v + k == tgt ? g : 0.0f);
            store8(dz + v, f);
        } else {
            const float f = expf(__bfloat162float(z[v]) - lse) * g - (v == tgt ? g : 0.0f);
            dz[v] = __float2bfloat16_rn(f);
        }
    }
}

static void cross_entropy_launch(pn_bf16 *dlogits, float *row_loss, const pn_bf16 *logits, const int64_t *targets,
                                 int64_t N, int V, float grad_scale, int *count) {
    count_targets_kernel<<<1, 1024, 0, pn_stream()>>>(count, targets, N);
    PN_CHECK_LAUNCH();
    const bool vec = V % 8 == 0 && pn_aligned16(logits) && (!dlogits || pn_aligned16(dlogits));
    const int threads = pn_row_threads(vec ? V / 8 : V, 1024);
    if (vec)
        cross_entropy_kernel<8><<<(unsigned)N, threads, 0, pn_stream()>>>(as_bf(dlogits), row_loss, as_bf(logits),
                                                                          targets, count, V, grad_scale);
    else
        cross_entropy_kernel<1><<<(unsigned)N, threads, 0, pn_stream()>>>(as_bf(dlogits), row_loss, as_bf(logits),
                                                                          targets, count, V, grad_scale);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_cross_entropy_async(pn_bf16 *dlogits, float *row_loss, const pn_bf16 *logits,
                                            const int64_t *targets, int64_t N, int Vocab, float grad_scale) {
    if (N <= 0 || Vocab <= 0) return;
    int *count = (int *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sizeof(int));
    cross_entropy_launch(dlogits, row_loss, logits, targets, N, Vocab, grad_scale, count);
    pn_cuda_free(count);  // stream order: a later user of the block runs after these kernels
}

extern "C" double pn_cuda_cross_entropy(pn_bf16 *dlogits, const pn_bf16 *logits, const int64_t *targets, int64_t N,
                                        int Vocab, float grad_scale) {
    if (N <= 0 || Vocab <= 0) return 0.0;
    int *count = (int *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sizeof(int));
    float *loss = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * sizeof(float));
    cross_entropy_launch(dlogits, loss, logits, targets, N, Vocab, grad_scale, count);
    float *h = (float *)malloc((size_t)N * sizeof(float));
    if (!h) {
        fprintf(stderr, "postnas: internal error: %s:%d: out of host memory\n", __FILE__, __LINE__);
        exit(1);
    }
    int cnt = 0;
    pn_cuda_download(&cnt, count, sizeof cnt);
    pn_cuda_download(h, loss, (size_t)N * sizeof(float));
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) total += (double)h[n];
    free(h);
    pn_cuda_free(loss);
    pn_cuda_free(count);
    return cnt > 0 ? total / (double)cnt : 0.0;
}
