// gemm.cu — matrix products through cuBLASLt: bf16 operands, fp32 accumulation,
// bf16 or fp32 output, optional bias epilogue; the nn.Linear forward and its two
// backward products are thin wrappers.
//
// Row-major to column-major: a row-major (R, C) matrix is the column-major (C, R)
// matrix with the same pointer and leading dimension, so row-major C = op(A)·op(B)
// is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ — cuBLASLt gets B as its first operand and A as
// its second, each with its own transpose flag, and m = N, n = M.
//
// A plan (operation descriptor, three layouts, the heuristic's algorithm) is built
// once per shape and kept in a small table: cublasLtMatmulAlgoGetHeuristic costs far
// more than the product itself for small shapes. Pointer alignment is part of the key
// because the heuristic may pick kernels that need 16-byte (or larger) operands. One
// 32 MiB workspace (the size NVIDIA suggests for Hopper) serves every call on the
// stream. The bias epilogue is used for bf16 output with an aligned bias; for fp32
// output (bf16 bias with fp32 D is not a combination we rely on), a misaligned bias, or
// when the heuristic offers no algorithm with the epilogue, the product runs without it
// and a small kernel adds the bias afterwards.
//
// Autotune (opt-in, pn_cuda_gemm_autotune_set / POSTNAS_GEMM_AUTOTUNE): the heuristic is
// asked for up to 8 candidates and the first call of a shape times them on its own operands,
// into a scratch copy of D (so a beta = 1 product still adds exactly once), keeping the
// fastest. About 2% of a supernet step on the H100 (README); off by default because the
// choice follows timings and the candidates sum in different orders, which would make two
// runs of one config differ in the last bits. Never inside a CUDA graph capture.
//
// db is a column sum of dy, done here in fp32 with a fixed reduction order (each
// block owns 32 columns and sums 8 row phases, then combines them in shared memory),
// so it is deterministic. cuBLASLt can produce it in the dw product's epilogue instead
// (CUBLASLT_EPILOGUE_BGRADB, fp32 vector, our A as its second operand), saving the second
// read of dy; measured on the H100 (2026-11-24, JetBlock's generator output layer, M 8192
// K 384 N 12288, dx + dw + db): 0.334 ms with the epilogue against 0.313 ms with this
// column sum (its dw product slows down more than the column sum costs), and no gain in the
// train step, so the column sum stays.
#include "kernels/cuda/common.cuh"
#include <algorithm>
#include <mutex>
#include <string.h>

namespace {
struct gemm_key {
    int ta, tb, cdt, bias;
    int64_t m, n, k, lda, ldb, ldc;
    unsigned align_a, align_b, align_c;  // align_c: the smaller of C's and D's when they differ
};

constexpr int TUNE_MAX = 8;  // autotune candidates at most

struct gemm_plan {
    gemm_key key;
    bool valid;
    bool bias_in_epilogue;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int ncand;  // the heuristic's candidates (autotune), its best first
    cublasLtMatmulAlgo_t cand[TUNE_MAX];
    bool tuned;
};

constexpr int N_PLANS = 64;
constexpr size_t WORKSPACE_BYTES = (size_t)32 << 20;

std::mutex g_mu;
cublasLtHandle_t g_lt = nullptr;
void *g_workspace = nullptr;
gemm_plan g_plans[N_PLANS];
int g_next_plan = 0;
size_t g_plan_builds = 0;  // heuristic queries (pn_cuda_host_stats_get)
// Autotune: 0 = the heuristic's first algorithm; n > 1 = time its first n candidates on the
// first call of each shape and keep the fastest (POSTNAS_GEMM_AUTOTUNE, read once).
int g_tune = -1;
size_t g_tuned = 0, g_tuned_changed = 0;  // plans tuned; of them, not the heuristic's first

unsigned ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

bool key_eq(const gemm_key &a, const gemm_key &b) { return memcmp(&a, &b, sizeof a) == 0; }

void plan_destroy(gemm_plan &p) {
    if (!p.valid) return;
    cublasLtMatrixLayoutDestroy(p.la);
    cublasLtMatrixLayoutDestroy(p.lb);
    cublasLtMatrixLayoutDestroy(p.lc);
    cublasLtMatmulDescDestroy(p.desc);
    p.valid = false;
}

int tune_count(void) {
    if (g_tune < 0) {
        const char *e = getenv("POSTNAS_GEMM_AUTOTUNE");
        char *end = nullptr;
        const long v = e && e[0] ? strtol(e, &end, 10) : 0;
        if (e && e[0] && (*end != 0 || v < 0 || v > TUNE_MAX)) {
            fprintf(stderr, "postnas: error: POSTNAS_GEMM_AUTOTUNE=%s: expected 0 (off) or 2..%d candidates\n", e,
                    TUNE_MAX);
            exit(2);
        }
        g_tune = (int)v;
    }
    return g_tune;
}

// Builds the descriptor for this key, with or without the bias epilogue, and asks the
// heuristic for one algorithm (autotune: up to tune_count(), ranked). Returns false when none fits.
bool plan_try(gemm_plan &p, const gemm_key &k, bool with_bias) {
    const cudaDataType_t ct = k.cdt == PN_CUDA_F32 ? CUDA_R_32F : CUDA_R_16BF;
    PN_CHECK_CUBLAS(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = k.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = k.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    PN_CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    PN_CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (with_bias) {  // bias type defaults to D's type: bf16 here (see gemm_bias_epilogue)
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        PN_CHECK_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    }
    // Column-major operand shapes as stored (before op): A is (m, k) or (k, m).
    PN_CHECK_CUBLAS(
        cublasLtMatrixLayoutCreate(&p.la, CUDA_R_16BF, k.ta ? k.k : k.m, k.ta ? k.m : k.k, k.lda));
    PN_CHECK_CUBLAS(
        cublasLtMatrixLayoutCreate(&p.lb, CUDA_R_16BF, k.tb ? k.n : k.k, k.tb ? k.k : k.n, k.ldb));
    PN_CHECK_CUBLAS(cublasLtMatrixLayoutCreate(&p.lc, ct, k.m, k.n, k.ldc));

    cublasLtMatmulPreference_t pref;
    PN_CHECK_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = WORKSPACE_BYTES;
    PN_CHECK_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    uint32_t aa = k.align_a, ab = k.align_b, ac = k.align_c;
    PN_CHECK_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa));
    PN_CHECK_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab));
    PN_CHECK_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac));
    PN_CHECK_CUBLAS(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac));
    cublasLtMatmulHeuristicResult_t res[TUNE_MAX];
    int nres = 0;
    const int want = tune_count() > 1 ? tune_count() : 1;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g_lt, p.desc, p.la, p.lb, p.lc, p.lc, pref, want, res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    p.valid = true;
    if (st != CUBLAS_STATUS_SUCCESS || nres < 1) {
        plan_destroy(p);
        return false;
    }
    p.ncand = nres;
    for (int i = 0; i < nres; i++) p.cand[i] = res[i].algo;
    p.algo = res[0].algo;
    p.bias_in_epilogue = with_bias;
    return true;
}

gemm_plan &plan_get(const gemm_key &k) {
    for (int i = 0; i < N_PLANS; i++)
        if (g_plans[i].valid && key_eq(g_plans[i].key, k)) return g_plans[i];
    gemm_plan &p = g_plans[g_next_plan];
    g_next_plan = (g_next_plan + 1) % N_PLANS;
    plan_destroy(p);
    p.key = k;
    p.tuned = false;
    g_plan_builds++;
    if (plan_try(p, k, k.bias != 0)) return p;
    if (k.bias && plan_try(p, k, false)) return p;
    fprintf(stderr,
            "postnas: cuBLASLt error at %s:%d: no algorithm for a bf16 GEMM (col-major m=%lld n=%lld k=%lld "
            "lda=%lld ldb=%lld ldc=%lld, trans %d%d, %s output, alignment %u/%u/%u bytes)\n",
            __FILE__, __LINE__, (long long)k.m, (long long)k.n, (long long)k.k, (long long)k.lda, (long long)k.ldb,
            (long long)k.ldc, k.ta, k.tb, k.cdt == PN_CUDA_F32 ? "fp32" : "bf16", k.align_a, k.align_b, k.align_c);
    exit(PN_CUDA_EXIT);
}

// Times the plan's candidates on this call's operands and keeps the fastest. The output goes
// to a scratch copy of D (cudaMalloc'd for the probe and freed), so a product that adds into
// D (beta = 1) is not disturbed; C stays the caller's when it is a separate input. A
// candidate that fails to launch is skipped. Runs once per plan, synchronously.
void plan_tune(gemm_plan &p, const void *A1, const void *A2, float alpha, float beta, const void *C,
               const void *D, const void *bias) {
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    PN_CHECK_CUDA(cudaStreamIsCapturing(pn_stream(), &cap));
    if (cap != cudaStreamCaptureStatusNone) return;  // no timing inside a graph capture; a later call tunes
    p.tuned = true;
    if (p.ncand < 2) return;
    const size_t el = p.key.cdt == PN_CUDA_F32 ? 4 : 2;
    const size_t bytes = el * (size_t)(p.key.ldc * (p.key.n - 1) + p.key.m);
    void *scratch = nullptr;
    if (cudaMalloc(&scratch, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        fprintf(stderr, "postnas: gemm autotune: no room for a %.1f MiB probe output; heuristic kept\n",
                bytes / 1048576.0);
        return;
    }
    cudaStream_t s = pn_stream();
    PN_CHECK_CUDA(cudaMemsetAsync(scratch, 0, bytes, s));
    const void *Cp = C == D ? scratch : C;
    if (p.bias_in_epilogue)
        PN_CHECK_CUBLAS(
            cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    cudaEvent_t e0, e1;
    PN_CHECK_CUDA(cudaEventCreate(&e0));
    PN_CHECK_CUDA(cudaEventCreate(&e1));
    float best = INFINITY, first = NAN;
    int best_i = -1;
    for (int i = 0; i < p.ncand; i++) {
        const int reps = 3;
        bool ok = cublasLtMatmul(g_lt, p.desc, &alpha, A1, p.la, A2, p.lb, &beta, Cp, p.lc, scratch, p.lc,
                                 &p.cand[i], g_workspace, WORKSPACE_BYTES, s) == CUBLAS_STATUS_SUCCESS;
        PN_CHECK_CUDA(cudaEventRecord(e0, s));
        for (int r = 0; ok && r < reps; r++)
            ok = cublasLtMatmul(g_lt, p.desc, &alpha, A1, p.la, A2, p.lb, &beta, Cp, p.lc, scratch, p.lc,
                                &p.cand[i], g_workspace, WORKSPACE_BYTES, s) == CUBLAS_STATUS_SUCCESS;
        PN_CHECK_CUDA(cudaEventRecord(e1, s));
        PN_CHECK_CUDA(cudaEventSynchronize(e1));
        if (!ok) continue;
        float ms = 0.f;
        PN_CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
        ms /= reps;
        if (i == 0) first = ms;
        if (ms < best) best = ms, best_i = i;
    }
    PN_CHECK_CUDA(cudaEventDestroy(e0));
    PN_CHECK_CUDA(cudaEventDestroy(e1));
    PN_CHECK_CUDA(cudaFree(scratch));
    g_tuned++;
    if (best_i > 0) {
        p.algo = p.cand[best_i];
        g_tuned_changed++;
    }
    if (getenv("POSTNAS_GEMM_AUTOTUNE_LOG"))
        fprintf(stderr,
                "postnas: gemm autotune: m %lld n %lld k %lld trans %d%d %s%s: heuristic %.4f ms, best #%d of %d "
                "%.4f ms (%.1f TFLOP/s)\n",
                (long long)p.key.m, (long long)p.key.n, (long long)p.key.k, p.key.ta, p.key.tb,
                p.key.cdt == PN_CUDA_F32 ? "f32" : "bf16", beta != 0.f ? " +=" : "", first, best_i, p.ncand, best,
                2.0 * p.key.m * p.key.n * p.key.k / (best * 1e9));
}

void lt_init(void) {
    if (g_lt) return;
    PN_CHECK_CUBLAS(cublasLtCreate(&g_lt));
    g_workspace = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, WORKSPACE_BYTES);
}

// C (rows, ldc) += bias (cols) on every row; used only when the epilogue is unsupported.
template <typename T>
__global__ void bias_add_kernel(T *c, const __nv_bfloat16 *bias, int64_t rows, int64_t cols, int64_t ldc) {
    const int64_t total = rows * cols, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t r = i / cols, col = i % cols;
        T *p = c + r * ldc + col;
        from_f32(p, to_f32(*p) + __bfloat162float(bias[col]));
    }
}

// db (N) += Σ_m dy (M, N). Block (32, 8): column = 32·blockIdx.x + threadIdx.x.
__global__ void colsum_kernel(float *db, const __nv_bfloat16 *dy, int64_t M, int N) {
    __shared__ float part[8][33];
    const int col = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (col < N)
        for (int64_t m = threadIdx.y; m < M; m += 8) acc += __bfloat162float(dy[m * N + col]);
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < N) {
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) s += part[j][threadIdx.x];
        db[col] += s;
    }
}
}  // namespace

// D = alpha op(A) op(B) + beta C; C and D share one layout (cuBLASLt's out-of-place form);
// C == D is the usual in-place product.
static void gemm_run(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const pn_bf16 *A,
                     int64_t lda, const pn_bf16 *B, int64_t ldb, float beta, const void *C, void *D, pn_cuda_dtype c_dt,
                     int64_t ldc, const pn_bf16 *bias) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        fprintf(stderr, "postnas: internal error: %s:%d: pn_cuda_gemm with K = %lld\n", __FILE__, __LINE__,
                (long long)K);
        exit(1);
    }
    std::lock_guard<std::mutex> lock(g_mu);
    lt_init();
    gemm_key k;
    memset(&k, 0, sizeof k);  // padding bytes take part in the memcmp
    k.ta = trans_b;           // cuBLASLt's first operand is our B (see the note on top)
    k.tb = trans_a;
    k.cdt = (int)c_dt;
    // The epilogue only for bf16 output (bias type = D type, the common, well-supported
    // combination) and a 16-byte aligned bias (cuBLASLt rejects less at run time);
    // otherwise the bias is added by bias_add_kernel after the product.
    k.bias = bias != nullptr && c_dt == PN_CUDA_BF16 && ((uintptr_t)bias & 15u) == 0;
    k.m = N;
    k.n = M;
    k.k = K;
    k.lda = ldb;
    k.ldb = lda;
    k.ldc = ldc;
    k.align_a = ptr_align(B);
    k.align_b = ptr_align(A);
    k.align_c = std::min(ptr_align(C), ptr_align(D));
    gemm_plan &p = plan_get(k);
    if (!p.tuned && tune_count() > 1) plan_tune(p, B, A, alpha, beta, C, D, bias);
    if (p.bias_in_epilogue)
        PN_CHECK_CUBLAS(
            cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    PN_CHECK_CUBLAS(cublasLtMatmul(g_lt, p.desc, &alpha, B, p.la, A, p.lb, &beta, C, p.lc, D, p.lc, &p.algo,
                                   g_workspace, WORKSPACE_BYTES, pn_stream()));
    if (bias && !p.bias_in_epilogue) {
        const int threads = 256;
        if (c_dt == PN_CUDA_F32)
            bias_add_kernel<<<pn_grid_for(M * N, threads), threads, 0, pn_stream()>>>((float *)D, as_bf(bias), M, N,
                                                                                     ldc);
        else
            bias_add_kernel<<<pn_grid_for(M * N, threads), threads, 0, pn_stream()>>>((__nv_bfloat16 *)D,
                                                                                     as_bf(bias), M, N, ldc);
        PN_CHECK_LAUNCH();
    }
}

extern "C" void pn_cuda_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                             const pn_bf16 *A, int64_t lda, const pn_bf16 *B, int64_t ldb, float beta, void *C,
                             pn_cuda_dtype c_dt, int64_t ldc, const pn_bf16 *bias) {
    gemm_run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, C, c_dt, ldc, bias);
}

extern "C" void pn_cuda_gemm_add(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const pn_bf16 *A,
                                 int64_t lda, const pn_bf16 *B, int64_t ldb, const float *C, float *D, int64_t ldc,
                                 const pn_bf16 *bias) {
    gemm_run(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, D, PN_CUDA_F32, ldc, bias);
}

extern "C" void pn_cuda_linear_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const pn_bf16 *w,
                                   const pn_bf16 *b, int64_t M, int K, int N) {
    pn_cuda_gemm(0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, y_dt, N, b);
}

extern "C" void pn_cuda_linear_bwd(void *dx, pn_cuda_dtype dx_dt, float *dw, float *db, const pn_bf16 *dy,
                                   const pn_bf16 *x, const pn_bf16 *w, int64_t M, int K, int N) {
    if (M <= 0) return;
    if (dx) pn_cuda_gemm(0, 0, M, K, N, 1.0f, dy, N, w, K, 1.0f, dx, dx_dt, K, nullptr);       // (M,N)·(N,K)
    if (dw) pn_cuda_gemm(1, 0, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, PN_CUDA_F32, K, nullptr);  // (N,M)·(M,K)
    if (db) {
        dim3 block(32, 8);
        colsum_kernel<<<(unsigned)pn_ceil_div(N, 32), block, 0, pn_stream()>>>(db, as_bf(dy), M, N);
        PN_CHECK_LAUNCH();
    }
}

extern "C" int pn_cuda_gemm_autotune_set(int n) {
    if (n < 0 || n > TUNE_MAX) {
        fprintf(stderr, "postnas: internal error: %s:%d: pn_cuda_gemm_autotune_set(%d): expected 0..%d\n", __FILE__,
                __LINE__, n, TUNE_MAX);
        exit(1);
    }
    std::lock_guard<std::mutex> lock(g_mu);
    const int old = g_tune;
    if (n != old) {
        for (int i = 0; i < N_PLANS; i++) plan_destroy(g_plans[i]);
        g_next_plan = 0;
    }
    g_tune = n;
    return old;
}

extern "C" int pn_cuda_gemm_autotune_get(void) {
    std::lock_guard<std::mutex> lock(g_mu);
    return tune_count();
}

extern "C" void pn_cuda_gemm_autotune_stats(size_t *tuned, size_t *changed) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (tuned) *tuned = g_tuned;
    if (changed) *changed = g_tuned_changed;
}

size_t pn_cuda_gemm_plan_builds(void) {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_plan_builds;
}

extern "C" void pn_cuda_gemm_release(void) {
    std::lock_guard<std::mutex> lock(g_mu);
    for (int i = 0; i < N_PLANS; i++) plan_destroy(g_plans[i]);
    if (g_lt) {
        PN_CHECK_CUDA(cudaStreamSynchronize(pn_stream()));
        pn_cuda_free(g_workspace);
        PN_CHECK_CUBLAS(cublasLtDestroy(g_lt));
        g_lt = nullptr;
        g_workspace = nullptr;
    }
}
