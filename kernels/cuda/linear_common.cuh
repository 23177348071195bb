// linear_common.cuh — device helpers private to the chunked linear-attention kernels
// (kernels/cuda/linear_ops.cu): the chunk constants, a block-wide fp32 GEMM on generic
// pointers, row/tile loads into shared memory and the three tile products the state scans
// are made of. Nothing here is part of an API; pn_cuda_linear.h is.
//
// Thread layout of the scans: 256 threads own an output tile of C = 64 rows × BV columns
// (BV = 64 or 32): column c = tid % BV, row group rg = tid / BV, rows rg + NRG·r for
// r < RPT (NRG = 256 / BV row groups, RPT = 64 / NRG rows per thread). Shared (C, ·)
// buffers may hold garbage in rows >= n (a partial last chunk) only where no stored
// result reads them: every product over chunk rows runs to n, never to C.
#pragma once
#include "kernels/cuda/common.cuh"

#define LC_C 64              // chunk size
#define LC_THREADS 256       // threads of every chunked kernel
#define LC_LDC (LC_C + 1)    // row stride of (C, C) shared matrices (odd: fewer bank conflicts)
#define LC_KMAX 256          // largest key dim (the prep kernel's shared memory)

// Streaming multiprocessors of the current device (cached per device).
static inline int lc_num_sms(void) {
    static int cached[64];
    int dev = 0;
    PN_CHECK_CUDA(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 64) dev = 0;
    if (!cached[dev]) PN_CHECK_CUDA(cudaDeviceGetAttribute(&cached[dev], cudaDevAttrMultiProcessorCount, dev));
    return cached[dev] > 0 ? cached[dev] : 1;
}

// ---------------------------------------------------------------- block-wide GEMM
// C (M, N) = alpha · op(A) · op(B) + beta · C, row-major, on any (global or shared)
// fp32/bf16 operands; beta == 0 ignores C's old contents. 32 × 32 output tiles, each
// thread 4 outputs of one column (needs blockDim.x == 256), operands staged through
// shared memory. Ends with a barrier so the result can be read at once.
template <typename TA, typename TB>
static __device__ void lc_bgemm(int ta, int tb, int M, int N, int Kd, float alpha, const TA *A, int64_t lda,
                                const TB *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    __shared__ float As_[32][33], Bs_[32][33];
    const int tid = threadIdx.x, tx = tid & 31, ty = tid >> 5;  // 8 warps: rows ty + 8r
    for (int i0 = 0; i0 < M; i0 += 32)
        for (int j0 = 0; j0 < N; j0 += 32) {
            float acc[4] = {0.f, 0.f, 0.f, 0.f};
            for (int p0 = 0; p0 < Kd; p0 += 32) {
                for (int e = tid; e < 1024; e += blockDim.x) {
                    const int r = e >> 5, c = e & 31;
                    // As_[row i][col p] = op(A)[i][p], Bs_[row p][col j] = op(B)[p][j]
                    const int i = i0 + r, p = p0 + c;
                    As_[r][c] = i < M && p < Kd ? to_f32(ta ? A[(int64_t)p * lda + i] : A[(int64_t)i * lda + p]) : 0.f;
                    const int pp = p0 + r, j = j0 + c;
                    Bs_[r][c] =
                        pp < Kd && j < N ? to_f32(tb ? B[(int64_t)j * ldb + pp] : B[(int64_t)pp * ldb + j]) : 0.f;
                }
                __syncthreads();
#pragma unroll 8
                for (int p = 0; p < 32; p++) {
                    const float b = Bs_[p][tx];
#pragma unroll
                    for (int r = 0; r < 4; r++) acc[r] += As_[ty + 8 * r][p] * b;
                }
                __syncthreads();
            }
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int i = i0 + ty + 8 * r, j = j0 + tx;
                if (i < M && j < N) {
                    float *c = C + (int64_t)i * ldc + j;
                    *c = alpha * acc[r] + (beta != 0.f ? beta * *c : 0.f);
                }
            }
        }
    __syncthreads();
}

// ---------------------------------------------------------------- loads into shared memory
// dst (C, ncols) fp32 with row stride ldd ← rows 0..n-1 of src (row stride lds), zeros in
// rows n..C-1. No barrier.
template <typename T>
static __device__ void lc_load_rows(float *dst, int ldd, const T *src, int64_t lds, int n, int ncols) {
    for (int e = threadIdx.x; e < LC_C * ncols; e += blockDim.x) {
        const int i = e / ncols, c = e % ncols;
        dst[i * ldd + c] = i < n ? to_f32(src[(int64_t)i * lds + c]) : 0.f;
    }
}

// dst (C, BV) ← rows 0..n-1, columns 0..vlim-1 of src (row stride lds); zeros elsewhere.
template <int BV, typename T>
static __device__ void lc_load_vtile(float *dst, const T *src, int64_t lds, int n, int vlim) {
    for (int e = threadIdx.x; e < LC_C * BV; e += blockDim.x) {
        const int i = e / BV, c = e % BV;
        dst[e] = i < n && c < vlim ? to_f32(src[(int64_t)i * lds + c]) : 0.f;
    }
}

// dst (C, C) row stride LC_LDC ← the n × n block of src (row stride lds), zeros elsewhere.
static __device__ void lc_load_cc(float *dst, const float *src, int64_t lds, int n) {
    for (int e = threadIdx.x; e < LC_C * LC_C; e += blockDim.x) {
        const int i = e / LC_C, j = e % LC_C;
        dst[i * LC_LDC + j] = i < n && j < n ? src[(int64_t)i * lds + j] : 0.f;
    }
}

// ---------------------------------------------------------------- tile products (scans)
// acc[r] += Σ_{m<kd} A[i][m] · Bm[m][c] for the thread's rows i = rg + NRG·r;
// A row stride lda, Bm (·, BV).
template <int BV>
static __device__ __forceinline__ void lc_mm_acc(float *acc, const float *A, int lda, const float *Bm, int kd, int rg,
                                                 int c) {
    constexpr int NRG = LC_THREADS / BV, RPT = LC_C / NRG;
    for (int m = 0; m < kd; m++) {
        const float bv = Bm[m * BV + c];
#pragma unroll
        for (int r = 0; r < RPT; r++) acc[r] += A[(rg + NRG * r) * lda + m] * bv;
    }
}

// acc[r] += Σ_{m<kd} A[m][i] · Bm[m][c] (A transposed).
template <int BV>
static __device__ __forceinline__ void lc_mmT_acc(float *acc, const float *A, int lda, const float *Bm, int kd, int rg,
                                                  int c) {
    constexpr int NRG = LC_THREADS / BV, RPT = LC_C / NRG;
    for (int m = 0; m < kd; m++) {
        const float bv = Bm[m * BV + c];
#pragma unroll
        for (int r = 0; r < RPT; r++) acc[r] += A[m * lda + rg + NRG * r] * bv;
    }
}

// Stores acc into dst (C, BV): rows i < n.
template <int BV>
static __device__ __forceinline__ void lc_store_acc(float *dst, const float *acc, int n, int rg, int c) {
    constexpr int NRG = LC_THREADS / BV, RPT = LC_C / NRG;
#pragma unroll
    for (int r = 0; r < RPT; r++) {
        const int i = rg + NRG * r;
        if (i < n) dst[i * BV + c] = acc[r];
    }
}

// The state-tile update S (K, BV): S[x][c] = el[x] · S[x][c] + Σ_{i<n} A[i][x] · X[i][c]
// for every x < K (el NULL: no scaling). A (C, K) row stride lda, X (C, BV). 8 state rows
// per thread at a time.
template <int BV>
static __device__ void lc_state_update(float *S, const float *el, const float *A, int lda, const float *X, int n, int K,
                                       int rg, int c) {
    constexpr int NRG = LC_THREADS / BV;
    for (int kb = rg * 8; kb < K; kb += NRG * 8) {
        float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        for (int i = 0; i < n; i++) {
            const float xv = X[i * BV + c];
#pragma unroll
            for (int r = 0; r < 8; r++) acc[r] += A[i * lda + min(kb + r, K - 1)] * xv;
        }
#pragma unroll
        for (int r = 0; r < 8; r++)
            if (kb + r < K) {
                float *s = S + (kb + r) * BV + c;
                *s = (el ? el[kb + r] * *s : *s) + acc[r];
            }
    }
}
