// act.cu — elementwise ops of the MLP and the residual stream: SwiGLU forward and
// backward (fp32 += or bf16 write, the form the next GEMM reads), residual add (bf16),
// gradient accumulate (fp32).
//
// All are memory-bound, so each thread moves 8 elements per 16-byte access when every
// pointer is 16-byte aligned; the n mod 8 tail (or everything, when a pointer is not
// aligned) is handled by scalar iterations of the same grid-stride loop. The sigmoid
// is the CPU op's overflow-safe form with IEEE expf, in the CPU op's operation order, in
// the backward (fp32 gradients); the forward, rounded to bf16, uses pn_sigmoid_fast
// (common.cuh), which took it from compute- to memory-bound.
// SwiGLU works on rows: gate and up are (rows, cols) slices rows ld apart, so the MLP's
// one [gate | up] GEMM output (ld = 2·cols) is read in place; the same loop per row, rows
// over blockIdx.y (vector accesses need every row start aligned: cols, ld multiples of 8).
// Measured and kept out (H100 train-step profile, session 8): one flattened walk over every
// row's items (common.cuh's for_each_rc, as block_elem.cu's silu pair uses) left the
// forward at 0.205 ms per 8192-row chunk and made the backward 0.284 -> 0.296 ms.
#include "kernels/cuda/common.cuh"
#include <algorithm>

// Grid-stride over n8 vector items followed by n − 8·n8 scalar items; body(j, width)
// handles elements [j, j + width).
template <bool VEC, typename F>
static __device__ __forceinline__ void for_each8(int64_t n, F body) {
    const int64_t n8 = VEC ? n / 8 : 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8 + (n - 8 * n8); i += stride) {
        if (i < n8)
            body(8 * i, 8);
        else
            body(8 * n8 + (i - n8), 1);
    }
}

// for_each8 over the columns of each row: body(r, j, width) for elements [j, j + width) of
// row r. Rows over blockIdx.y (grid-stride), the columns over blockIdx.x.
template <bool VEC, typename F>
static __device__ __forceinline__ void for_each8_rows(int64_t rows, int64_t cols, F body) {
    const int64_t n8 = VEC ? cols / 8 : 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8 + (cols - 8 * n8); i += stride) {
            if (i < n8)
                body(r, 8 * i, 8);
            else
                body(r, 8 * n8 + (i - n8), 1);
        }
}

// y (rows, cols) contiguous; gate, up rows ld apart.
template <bool VEC>
__global__ void swiglu_fwd_kernel(__nv_bfloat16 *y, const __nv_bfloat16 *gate, const __nv_bfloat16 *up, int64_t ld,
                                  int64_t rows, int64_t cols) {
    for_each8_rows<VEC>(rows, cols, [&](int64_t r, int64_t j, int width) {
        const int64_t a = r * ld + j, o = r * cols + j;
        if (width == 8) {
            float g[8], u[8];
            load8(gate + a, g);
            load8(up + a, u);
#pragma unroll
            for (int k = 0; k < 8; k++) g[k] = g[k] * pn_sigmoid_fast(g[k]) * u[k];
            store8(y + o, g);
        } else {
            const float g = __bfloat162float(gate[a]);
            y[o] = __float2bfloat16_rn(g * pn_sigmoid_fast(g) * __bfloat162float(up[a]));
        }
    });
}

static __device__ __forceinline__ void swiglu_grad1(float dy, float g, float u, float *dg, float *du) {
    const float s = pn_sigmoid(g);
    *du = dy * (g * s);
    *dg = dy * u * s * (1.0f + g * (1.0f - s));
}

// A gradient into its output: fp32 is accumulated (+=), bf16 WRITTEN (rounded once).
static __device__ __forceinline__ void grad_put8(float *p, const float *v) {
    float o[8];
    load8(p, o);
#pragma unroll
    for (int k = 0; k < 8; k++) o[k] += v[k];
    store8(p, o);
}
static __device__ __forceinline__ void grad_put8(__nv_bfloat16 *p, const float *v) { store8(p, v); }
static __device__ __forceinline__ void grad_put1(float *p, float v) { *p += v; }
static __device__ __forceinline__ void grad_put1(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

// dgate, dup: fp32 (+=, either may be NULL) or bf16 (written; they may alias gate, up:
// each element is read before its own thread writes it); all four rows ld apart, dy
// (rows, cols) contiguous.
template <bool VEC, typename OT>
__global__ void swiglu_bwd_kernel(OT *dgate, OT *dup, const float *dy, const __nv_bfloat16 *gate,
                                  const __nv_bfloat16 *up, int64_t ld, int64_t rows, int64_t cols) {
    for_each8_rows<VEC>(rows, cols, [&](int64_t r, int64_t j, int width) {
        const int64_t a = r * ld + j, o = r * cols + j;
        if (width == 8) {
            float d[8], g[8], u[8], dg[8], du[8];
            load8(dy + o, d);
            load8(gate + a, g);
            load8(up + a, u);
#pragma unroll
            for (int k = 0; k < 8; k++) swiglu_grad1(d[k], g[k], u[k], &dg[k], &du[k]);
            if (dgate) grad_put8(dgate + a, dg);
            if (dup) grad_put8(dup + a, du);
        } else {
            float dg, du;
            swiglu_grad1(dy[o], __bfloat162float(gate[a]), __bfloat162float(up[a]), &dg, &du);
            if (dgate) grad_put1(dgate + a, dg);
            if (dup) grad_put1(dup + a, du);
        }
    });
}

template <bool VEC>
__global__ void add_kernel(__nv_bfloat16 *y, const __nv_bfloat16 *a, const __nv_bfloat16 *b, int64_t n) {
    for_each8<VEC>(n, [&](int64_t j, int width) {
        if (width == 8) {
            float fa[8], fb[8];
            load8(a + j, fa);
            load8(b + j, fb);
#pragma unroll
            for (int k = 0; k < 8; k++) fa[k] += fb[k];
            store8(y + j, fa);
        } else {
            y[j] = __float2bfloat16_rn(__bfloat162float(a[j]) + __bfloat162float(b[j]));
        }
    });
}

template <bool VEC>
__global__ void add_inplace_kernel(float *y, const float *x, int64_t n) {
    for_each8<VEC>(n, [&](int64_t j, int width) {
        if (width == 8) {
            float fy[8], fx[8];
            load8(y + j, fy);
            load8(x + j, fx);
#pragma unroll
            for (int k = 0; k < 8; k++) fy[k] += fx[k];
            store8(y + j, fy);
        } else {
            y[j] += x[j];
        }
    });
}

// Work items for the launch: vector items plus the scalar tail.
static int64_t items(int64_t n, bool vec) { return vec ? n / 8 + n % 8 : n; }

// The rows' grid: x covers one row's work items (vector + tail), y the rows (grid-stride
// beyond 32768).
static dim3 rows_grid(int64_t rows, int64_t cols, bool vec, int threads) {
    const int64_t per_row = items(cols, vec);
    return dim3((unsigned)std::min<int64_t>(pn_ceil_div(per_row, threads), 1024), (unsigned)std::min<int64_t>(rows, 32768));
}
// Vector accesses: every pointer 16-byte aligned and every row start too.
static bool rows_vec(int64_t ld, int64_t cols) { return ld % 8 == 0 && cols % 8 == 0; }

extern "C" void pn_cuda_swiglu_fwd(pn_bf16 *y, const pn_bf16 *gate, const pn_bf16 *up, int64_t ld, int64_t rows,
                                   int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    const int threads = 256;
    const bool vec = rows_vec(ld, cols) && pn_aligned16(y) && pn_aligned16(gate) && pn_aligned16(up);
    const dim3 grid = rows_grid(rows, cols, vec, threads);
    if (vec)
        swiglu_fwd_kernel<true><<<grid, threads, 0, pn_stream()>>>(as_bf(y), as_bf(gate), as_bf(up), ld, rows, cols);
    else
        swiglu_fwd_kernel<false><<<grid, threads, 0, pn_stream()>>>(as_bf(y), as_bf(gate), as_bf(up), ld, rows, cols);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_swiglu_bwd(float *dgate, float *dup, const float *dy, const pn_bf16 *gate, const pn_bf16 *up,
                                   int64_t ld, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0 || (!dgate && !dup)) return;
    const int threads = 256;
    const bool vec = rows_vec(ld, cols) && (!dgate || pn_aligned16(dgate)) && (!dup || pn_aligned16(dup)) &&
                     pn_aligned16(dy) && pn_aligned16(gate) && pn_aligned16(up);
    const dim3 grid = rows_grid(rows, cols, vec, threads);
    if (vec)
        swiglu_bwd_kernel<true>
            <<<grid, threads, 0, pn_stream()>>>(dgate, dup, dy, as_bf(gate), as_bf(up), ld, rows, cols);
    else
        swiglu_bwd_kernel<false>
            <<<grid, threads, 0, pn_stream()>>>(dgate, dup, dy, as_bf(gate), as_bf(up), ld, rows, cols);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_swiglu_bwd_bf16(pn_bf16 *dgate, pn_bf16 *dup, const float *dy, const pn_bf16 *gate,
                                        const pn_bf16 *up, int64_t ld, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    const int threads = 256;
    const bool vec = rows_vec(ld, cols) && pn_aligned16(dgate) && pn_aligned16(dup) && pn_aligned16(dy) &&
                     pn_aligned16(gate) && pn_aligned16(up);
    const dim3 grid = rows_grid(rows, cols, vec, threads);
    if (vec)
        swiglu_bwd_kernel<true><<<grid, threads, 0, pn_stream()>>>(as_bf(dgate), as_bf(dup), dy, as_bf(gate),
                                                                   as_bf(up), ld, rows, cols);
    else
        swiglu_bwd_kernel<false><<<grid, threads, 0, pn_stream()>>>(as_bf(dgate), as_bf(dup), dy, as_bf(gate),
                                                                    as_bf(up), ld, rows, cols);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_add(pn_bf16 *y, const pn_bf16 *a, const pn_bf16 *b, int64_t n) {
    if (n <= 0) return;
    const int threads = 256;
    const bool vec = pn_aligned16(y) && pn_aligned16(a) && pn_aligned16(b);
    const unsigned grid = pn_grid_for(items(n, vec), threads);
    if (vec)
        add_kernel<true><<<grid, threads, 0, pn_stream()>>>(as_bf(y), as_bf(a), as_bf(b), n);
    else
        add_kernel<false><<<grid, threads, 0, pn_stream()>>>(as_bf(y), as_bf(a), as_bf(b), n);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_add_inplace(float *y, const float *x, int64_t n) {
    if (n <= 0) return;
    const int threads = 256;
    const bool vec = pn_aligned16(y) && pn_aligned16(x);
    const unsigned grid = pn_grid_for(items(n, vec), threads);
    if (vec)
        add_inplace_kernel<true><<<grid, threads, 0, pn_stream()>>>(y, x, n);
    else
        add_inplace_kernel<false><<<grid, threads, 0, pn_stream()>>>(y, x, n);
    PN_CHECK_LAUNCH();
}
