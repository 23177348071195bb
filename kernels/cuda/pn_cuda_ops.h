// pn_cuda_ops.h — extern "C" entry points of the CUDA training ops (kernels/cuda/*.cu).
//
// Each op is the twin of the CPU op of the same name in kernels/ops.h (pn_X ->
// pn_cuda_X), with the same argument order and shapes. What differs is storage:
//  - activations and frozen weights are bf16 (pn_bf16, raw bits; C code never does
//    arithmetic on them), all reductions and all per-element math are fp32;
//  - every gradient buffer is fp32 and backward ops ADD (+=) into it, as on the CPU;
//    a NULL gradient pointer means "not needed";
//  - the GEMM reads bf16 operands only (tensor cores), so an fp32 gradient that feeds
//    a linear backward is converted first with pn_cuda_f32_to_bf16;
//  - cross-entropy writes its logit gradient as bf16 (the LM-head GEMM reads it), and
//    may do so in place over the logits, which saves an (N, Vocab) buffer.
// All pointers are device pointers unless a comment says "host". Ops are queued on
// the backend's stream (pn_cuda_stream_set; default: the legacy default stream) and
// return without synchronising, except where a comment says the call syncs.
// Failures of CUDA / cuBLASLt calls print file:line and the failing call, and exit 3.
#pragma once
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t pn_bf16;  // bfloat16 bits (same rounding as pn_f32_to_bf16: nearest-even)

typedef enum { PN_CUDA_BF16 = 0, PN_CUDA_F32 = 1 } pn_cuda_dtype;

// ---------------------------------------------------------------- stream, memory (memory.cu)
void pn_cuda_stream_set(void *stream);  // a cudaStream_t; NULL = legacy default stream
void *pn_cuda_stream_get(void);
void pn_cuda_sync(void);                // waits for the stream; checks for errors

// Device memory comes from one caching arena per category (llm.c-style: weights,
// params, grads, optimizer state, activations, scratch). Freed blocks stay cached in
// their category and are reused for requests of the same rounded size, so a training
// step that allocates the same buffers every time costs no cudaMalloc after the first.
// Out of memory: the caches of all categories are returned to the driver and the
// allocation retried once; if it still fails the process exits 3 naming the request
// size, the category and the free memory.
typedef enum {
    PN_CUDA_MEM_WEIGHTS = 0,  // frozen bf16 weights
    PN_CUDA_MEM_PARAMS,       // trainable params: fp32 master + bf16 copy
    PN_CUDA_MEM_GRADS,        // fp32 gradients
    PN_CUDA_MEM_OPTIM,        // AdamW m, v
    PN_CUDA_MEM_ACTS,         // activations saved for backward
    PN_CUDA_MEM_SCRATCH,      // everything short-lived
    PN_CUDA_MEM_COUNT
} pn_cuda_mem_category;

void *pn_cuda_alloc(pn_cuda_mem_category cat, size_t bytes);  // 256-byte aligned; bytes 0 -> NULL
void pn_cuda_free(void *p);                                   // back to its category's cache; NULL ok
void pn_cuda_mem_trim(pn_cuda_mem_category cat);              // cached (unused) blocks -> driver
size_t pn_cuda_mem_in_use(pn_cuda_mem_category cat);          // bytes handed out
size_t pn_cuda_mem_cached(pn_cuda_mem_category cat);          // bytes held but unused
const char *pn_cuda_mem_category_name(pn_cuda_mem_category cat);

// Host-side counters since start-up, for the benchmarks' diagnostics: device allocations
// the arenas could not serve from their caches (cudaMalloc, which waits for the device),
// host waits on the stream (pn_cuda_sync, the synchronising copies) and the seconds spent
// in them, and cuBLASLt plans built (one heuristic query each).
typedef struct {
    size_t driver_allocs, driver_alloc_bytes;
    size_t syncs;
    double sync_seconds;
    size_t gemm_plan_builds;
} pn_cuda_host_stats;
void pn_cuda_host_stats_get(pn_cuda_host_stats *st);

// Host <-> device copies (host pointers first or second as in memcpy). They are
// ordered on the stream and synchronise, so the host buffer may be reused at once.
void pn_cuda_upload(void *dst, const void *host_src, size_t bytes);
void pn_cuda_download(void *host_dst, const void *src, size_t bytes);
void pn_cuda_memset(void *dst, int byte, size_t bytes);  // async
// `width` bytes at the start of each of `rows` rows `pitch` bytes apart (async).
void pn_cuda_memset_2d(void *dst, size_t pitch, int byte, size_t width, size_t rows);
void pn_cuda_copy(void *dst, const void *src, size_t bytes);  // device -> device, async
// Device-side conversions, round-to-nearest-even; n any (16-byte path when aligned).
void pn_cuda_f32_to_bf16(pn_bf16 *dst, const float *src, int64_t n);
// src (rows, cols) fp32, contiguous, into a (rows, cols) slice of dst whose rows are ldd ≥ cols
// apart; columns cols..ldd−1 untouched (a block's slab of projection gradients).
void pn_cuda_f32_to_bf16_2d(pn_bf16 *dst, int64_t ldd, const float *src, int64_t rows, int cols);
// hi = bf16(src), lo = bf16(src − hi) (the difference is exact in fp32): two bf16 GEMM
// operands whose sum carries src to ~2^-17 relative. src (rows, cols) contiguous; hi and lo
// (rows, cols) slices with rows ld ≥ cols apart (hi, lo = M, M + cols of one (rows, 2·cols)
// matrix makes [hi | lo] one GEMM operand).
void pn_cuda_f32_split_bf16(pn_bf16 *hi, pn_bf16 *lo, int64_t ld, const float *src, int64_t rows, int cols);
void pn_cuda_bf16_to_f32(float *dst, const pn_bf16 *src, int64_t n);
// Convenience for tests and loaders: host f32 -> device bf16 / device bf16 -> host f32
// through a scratch buffer (syncs).
void pn_cuda_upload_bf16(pn_bf16 *dst, const float *host_src, int64_t n);
void pn_cuda_download_bf16(float *host_dst, const pn_bf16 *src, int64_t n);

// ---------------------------------------------------------------- GEMM (gemm.cu)
// Row-major C (M, N) = alpha · op(A) · op(B) + beta · C with bf16 A, B and C of dtype
// c_dt (bf16 or fp32), fp32 accumulation (pn_gemm's argument order). bias (N) bf16 or
// NULL is added to every row (cuBLASLt epilogue). beta = 1 accumulates into C.
void pn_cuda_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const pn_bf16 *A,
                  int64_t lda, const pn_bf16 *B, int64_t ldb, float beta, void *C, pn_cuda_dtype c_dt, int64_t ldc,
                  const pn_bf16 *bias);
// D (M, N) fp32 = op(A) · op(B) [+ bias (N) bf16] + C (M, N) fp32, C and D both with row
// stride ldc and distinct (a residual add in the product's epilogue, without first copying
// C into D).
void pn_cuda_gemm_add(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const pn_bf16 *A, int64_t lda,
                      const pn_bf16 *B, int64_t ldb, const float *C, float *D, int64_t ldc, const pn_bf16 *bias);
// y (M, N) = x (M, K) · w (N, K)ᵀ [+ b (N)]   — torch.nn.Linear layout; y bf16 or fp32.
void pn_cuda_linear_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const pn_bf16 *w, const pn_bf16 *b, int64_t M,
                        int K, int N);
// dx (M, K) += dy · w (dx of dtype dx_dt);  dw (N, K) += dyᵀ · x;  db (N) += Σ_m dy.
// dy is bf16 (convert an fp32 gradient with pn_cuda_f32_to_bf16 first).
void pn_cuda_linear_bwd(void *dx, pn_cuda_dtype dx_dt, float *dw, float *db, const pn_bf16 *dy, const pn_bf16 *x,
                        const pn_bf16 *w, int64_t M, int K, int N);
// Frees the cuBLASLt handle, workspace and cached plans (tests, shutdown).
void pn_cuda_gemm_release(void);
// Autotune (off by default): with n ≥ 2 the first call of each GEMM shape times the
// heuristic's first n candidates (n ≤ 8) on that call's operands, writing into a scratch
// copy of the output, and keeps the fastest for later calls of the shape. It trades
// bitwise reproducibility between runs (the choice follows the timings, and algorithms
// sum in different orders) for a few percent of speed. n = 0 (or 1) is the heuristic's
// first choice, always. The environment variable POSTNAS_GEMM_AUTOTUNE=n sets it at the
// first GEMM; this call overrides it for the shapes planned afterwards (it clears the plan
// cache). Returns the value in force before the call (−1: not read yet).
int pn_cuda_gemm_autotune_set(int n);
// The value in force (the environment's when nothing set it).
int pn_cuda_gemm_autotune_get(void);
// Plans built with a timed choice so far, and how many of them kept a candidate other than
// the heuristic's first.
void pn_cuda_gemm_autotune_stats(size_t *tuned, size_t *changed);

// ---------------------------------------------------------------- norms (norm.cu)
// y (N, D) = x · rstd · w, rstd (N) fp32 = 1/sqrt(mean(x²) + eps); w (D) may be NULL.
void pn_cuda_rmsnorm_fwd(pn_bf16 *y, float *rstd, const pn_bf16 *x, const pn_bf16 *w, int64_t N, int D, float eps);
// dx (N, D) += ..., dw (D) += Σ_rows dy · x · rstd (either may be NULL).
void pn_cuda_rmsnorm_bwd(float *dx, float *dw, const float *dy, const pn_bf16 *x, const pn_bf16 *w, const float *rstd,
                         int64_t N, int D);

// ---------------------------------------------------------------- rope (rope.cu)
// In place on x (B, T, H, D), rotate-half (HF); inv_freq formed in fp32 exactly as the
// CPU op (on the host), so the angles p · inv_freq are the same bits. D even, D <= 1024.
void pn_cuda_rope_fwd(pn_bf16 *x, int B, int T, int H, int D, int64_t pos0, float theta);
// The inverse rotation, in place on an fp32 gradient.
void pn_cuda_rope_bwd(float *dx, int B, int T, int H, int D, int64_t pos0, float theta);

// ---------------------------------------------------------------- elementwise (act.cu)
// SwiGLU on rows: y (rows, cols) = silu(gate)·up, y and dy contiguous; gate, up (and dgate,
// dup) (rows, cols) slices with rows ld ≥ cols apart — gate, up = M, M + cols of one
// (rows, 2·cols) [gate | up] GEMM output, ld = 2·cols; contiguous operands: ld = cols.
void pn_cuda_swiglu_fwd(pn_bf16 *y, const pn_bf16 *gate, const pn_bf16 *up, int64_t ld, int64_t rows, int64_t cols);
void pn_cuda_swiglu_bwd(float *dgate, float *dup, const float *dy, const pn_bf16 *gate, const pn_bf16 *up, int64_t ld,
                        int64_t rows, int64_t cols);
// The same gradients WRITTEN as bf16 (rounded once), for a bf16 GEMM to read next; dgate and
// dup may alias gate and up (the MLP backward overwrites its recomputed activations).
void pn_cuda_swiglu_bwd_bf16(pn_bf16 *dgate, pn_bf16 *dup, const float *dy, const pn_bf16 *gate, const pn_bf16 *up,
                             int64_t ld, int64_t rows, int64_t cols);
void pn_cuda_add(pn_bf16 *y, const pn_bf16 *a, const pn_bf16 *b, int64_t n);  // y = a + b (y may alias a or b)
void pn_cuda_add_inplace(float *y, const float *x, int64_t n);                // y += x (fp32 gradients)

// ---------------------------------------------------------------- embedding / loss (loss.cu)
// y (N, C) = table (Vocab, C)[ids]; ids (N) int64 on the device.
void pn_cuda_embedding_fwd(pn_bf16 *y, const int64_t *ids, const pn_bf16 *table, int64_t N, int C);
// dtable += scatter of dy by ids. Deterministic: each column is owned by one thread
// that walks the tokens in order, so repeated ids add in the CPU op's order.
void pn_cuda_embedding_bwd(float *dtable, const float *dy, const int64_t *ids, int64_t N, int C);
// Fused cross-entropy forward + backward, one block per row, fp32 math.
// logits (N, Vocab) bf16; targets (N) int64 on the device, < 0 = ignored row.
// row_loss (N) fp32 gets lse − z[target] (0 for ignored rows); may be NULL.
// dlogits (N, Vocab) bf16, if not NULL, is OVERWRITTEN with d(mean)/dlogits · grad_scale
// (zeros on ignored rows), the mean being over non-ignored rows; dlogits may equal
// logits. Nothing is synchronised.
void pn_cuda_cross_entropy_async(pn_bf16 *dlogits, float *row_loss, const pn_bf16 *logits, const int64_t *targets,
                                 int64_t N, int Vocab, float grad_scale);
// The same, then syncs and returns the mean loss over non-ignored rows (summed in
// double on the host, as the CPU op) — the CPU op's signature with device buffers.
double pn_cuda_cross_entropy(pn_bf16 *dlogits, const pn_bf16 *logits, const int64_t *targets, int64_t N, int Vocab,
                             float grad_scale);

// ---------------------------------------------------------------- optimizer (adamw.cu)
// One AdamW step (torch.optim.AdamW, the update of supernet/optim.c) on n fp32 master
// weights w with fp32 moments m, v and gradient g; t is the step number after the
// increment (1 on the first step). weight_decay 0 = no decay for this tensor. If w_bf16
// is not NULL it receives the rounded bf16 copy the forward pass reads.
void pn_cuda_adamw_step(float *w, pn_bf16 *w_bf16, const float *g, float *m, float *v, int64_t n, int64_t t, float lr,
                        float beta1, float beta2, float eps, float weight_decay);

#ifdef __cplusplus
}
#endif
