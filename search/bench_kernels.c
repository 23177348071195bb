// bench_kernels.c — `postnas bench kernels --device cuda`: the CUDA backend's kernels at
// their target shapes, each timed and set against a floor (results/bench/h100.json).
//
// Design. Every row is one op at one shape, timed the way the device method asks:
// device events around each call, warm-up calls first (module load, cuBLASLt plans,
// the caching allocator's first cudaMalloc stay out), the median of >= 20 timed calls
// (3 for the slow backward), rotating among NSETS input sets so that no call finds its
// inputs in L2 from the previous one, inputs random and non-zero (gates drawn as
// tests/gpu/test_cuda_gdn.c draws them, as fla's tests do). The calls of one row are
// queued back to back, each between its own pair of events, and synchronised once at
// the end: the device never idles between calls, so host launch gaps stay out of the
// per-call times.
//
// Floors. The first two rows measure this device's ceilings: a 1 GiB device-to-device
// copy (bytes read + written) and a bf16 GEMM at 8192³ through our cuBLASLt wrapper.
// Every other row's floor is max(minimal bytes / copy rate, FLOPs / GEMM rate), minimal
// bytes being each input read once and each output written once (a += gradient is read
// and written). The ceiling rows themselves are set against external references: the
// copy against the DRAM peak from the memory clock and bus width, the GEMM against the
// anchor torch/cuBLAS rate measured on an H100 of this workplace.
//
// Attention rows (causal GQA, B8 T4096 Hq12 Hkv2 D128, through pn_cuda_attn_fwd / _bwd:
// cuDNN's fused attention, or the built-in kernel when cuDNN has no plan — the row name
// says which ran) take their floor at the anchor GEMM rate, FLOPs / 745 TFLOP/s, causal
// FLOPs being 4·B·Hq·T²·D/2 for the forward and 2.5× that for the backward. Their anchor
// is torch SDPA on an H100 of this workplace; POSTNAS_BENCH_ANCHORS=FILE replaces the
// built-in anchor numbers with the JSON scripts/anchor_torch_h100.py wrote on the device
// (sdpa.fwd_ms, sdpa.fwd_bwd_ms), and every row with a time anchor reports
// measured / anchor as ratio_to_anchor.
//
// The other linear-attention training ops (pn_cuda_gdn_fast.h, pn_cuda_linear.h) follow:
// the tensor-core gdn forward at both gdn shapes, simple GLA / GLA / DPLR fwd and fwd+bwd,
// static and dynamic causal conv fwd and bwd (the dynamic bwd also in JetBlock's bf16-dkern
// form), gated RMSNorm fwd and bwd (shapes and byte counts at their section below). The
// supernet step has its own benchmark (`postnas bench train-step`); its row here only
// points there.
// Library code: progress goes to pn_info; the CLI prints the table from the JSON.
#include "search/bench.h"
#include "core/common.h"
#include "core/log.h"

#ifndef POSTNAS_HAVE_CUDA

int pn_bench_kernels(const char *out_json) {
    (void)out_json;
    pn_die_input("bench kernels", "postnas was built without CUDA (rebuild with -DPOSTNAS_CUDA=ON where nvcc exists)");
}

#else

#include "core/fileio.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_attn.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "search/bench_util.h"
#include <cuda_runtime.h>
#include <jansson.h>
#include <math.h>

#define KB_WHERE "bench kernels"
#define NSETS 3
#define KB_SEED 20251201ull
#define GDN_CHUNK 64                // the chunk length of pn_cuda_gated_delta_fwd / _bwd
#define GEMM_ANCHOR_TFLOPS 745.0    // torch/cuBLAS bf16 8192³ on an H100 of this workplace
#define GEMM_TARGET_FRACTION 0.95
#define ATTN_ANCHOR_FWD_MS 0.756    // torch SDPA, causal GQA B8 T4096 Hq12 Hkv2 D128 bf16, H100 of this workplace
#define ATTN_ANCHOR_FWDBWD_MS 3.20

#define KB_CHECK(call)                                                                                     \
    do {                                                                                                   \
        cudaError_t kb_e_ = (call);                                                                        \
        if (kb_e_ != cudaSuccess) pn_die_device(__FILE__, __LINE__, "%s: %s", #call, cudaGetErrorString(kb_e_)); \
    } while (0)

static uint64_t g_stream = 1;  // Philox stream: a fresh one for every draw

// ---------------------------------------------------------------- timing

typedef void (*kb_run_fn)(void *ctx, int i);

// Median time (ms) of `reps` calls run(ctx, warm + i) after `warm` untimed calls; the
// fastest goes to *min_ms. Call i uses input set i % NSETS (the callee decides).
static double kb_time(kb_run_fn run, void *ctx, int warm, int reps, double *min_ms) {
    cudaStream_t st = (cudaStream_t)pn_cuda_stream_get();
    for (int i = 0; i < warm; i++) run(ctx, i);
    pn_cuda_sync();
    cudaEvent_t *ev = pn_malloc((size_t)2 * reps * sizeof(cudaEvent_t));
    for (int i = 0; i < 2 * reps; i++) KB_CHECK(cudaEventCreate(&ev[i]));
    for (int i = 0; i < reps; i++) {
        KB_CHECK(cudaEventRecord(ev[2 * i], st));
        run(ctx, warm + i);
        KB_CHECK(cudaEventRecord(ev[2 * i + 1], st));
    }
    KB_CHECK(cudaEventSynchronize(ev[2 * reps - 1]));
    KB_CHECK(cudaGetLastError());
    double *ms = pn_malloc((size_t)reps * sizeof(double));
    for (int i = 0; i < reps; i++) {
        float t = 0;
        KB_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
        ms[i] = t;
    }
    for (int i = 0; i < 2 * reps; i++) KB_CHECK(cudaEventDestroy(ev[i]));
    free(ev);
    const double med = pn_bench_median(ms, reps);  // sorts: ms[0] is the fastest
    *min_ms = ms[0];
    free(ms);
    return med;
}

// ---------------------------------------------------------------- rows

typedef struct {
    const char *name;
    char shape[256];
    const char *status;       // NULL = measured
    int warm, reps;
    double ms, min_ms;
    double flops, bytes;      // minimal work of one call (0 = not counted)
    double floor_ms;
    const char *floor_basis;
    double target_ms;         // 0 = no time target
    double target_tflops;     // 0 = no rate target
    const char *anchor;
    double anchor_ms;         // 0 = the anchor is not a time
    int64_t nonfinite;        // non-finite elements found in the checked output (-1 = not checked)
} kb_row;

// Floor of a non-ceiling row from the ceilings measured in this run.
static void kb_row_floor(kb_row *r, double bw, double mm) {
    const double fb = r->bytes / bw * 1e3, ff = r->flops / mm * 1e3;
    r->floor_ms = fb > ff ? fb : ff;
    r->floor_basis = fb > ff ? "minimal bytes / measured copy rate (memory-bound)"
                             : "FLOPs / measured bf16 GEMM rate (compute-bound)";
}

// ---------------------------------------------------------------- host inputs

static float *kb_normal(size_t n, float std) {
    float *p = pn_malloc((n ? n : 1) * sizeof(float));
    pn_fill_normal(p, n, 0.0f, std, KB_SEED, g_stream++);
    return p;
}

static pn_bf16 *kb_dev_bf16(size_t n, float std) {
    float *h = kb_normal(n, std);
    pn_bf16 *d = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * sizeof(pn_bf16));
    pn_cuda_upload_bf16(d, h, (int64_t)n);
    free(h);
    return d;
}

static float *kb_dev_f32_host(const float *h, size_t n) {
    float *d = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * sizeof(float));
    pn_cuda_upload(d, h, n * sizeof(float));
    return d;
}

static float *kb_dev_f32(size_t n, float std) {
    float *h = kb_normal(n, std);
    float *d = kb_dev_f32_host(h, n);
    free(h);
    return d;
}

// Non-finite elements of a device buffer (bf16 or fp32): a NaN in an output means the
// timed work was not the real computation.
static int64_t kb_count_nonfinite(const void *dev, size_t n, int is_f32) {
    float *h = pn_malloc(n * sizeof(float));
    if (is_f32)
        pn_cuda_download(h, dev, n * sizeof(float));
    else
        pn_cuda_download_bf16(h, dev, (int64_t)n);
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(h[i]);
    free(h);
    return bad;
}

// ---------------------------------------------------------------- ceilings

typedef struct {
    void *src[NSETS], *dst;
    size_t bytes;
} copy_ctx;

static void run_copy(void *p, int i) {
    copy_ctx *c = p;
    pn_cuda_copy(c->dst, c->src[i % NSETS], c->bytes);
}

typedef struct {
    pn_bf16 *x[NSETS], *w[NSETS], *y;
    int n;
} gemm_ctx;

static void run_gemm(void *p, int i) {
    gemm_ctx *c = p;
    pn_cuda_linear_fwd(c->y, PN_CUDA_BF16, c->x[i % NSETS], c->w[i % NSETS], NULL, c->n, c->n, c->n);
}

// ---------------------------------------------------------------- gated delta rule

typedef struct {
    int B, T, H, K, V;
    int with_h0, with_ht;        // forward: h0 given / ht wanted
    int fast;                    // forward through pn_cuda_gated_delta_fwd_fast (tensor cores)
    pn_bf16 *q[NSETS], *k[NSETS], *v[NSETS];
    float *g[NSETS], *beta[NSETS], *h0[NSETS], *ht[NSETS], *dout[NSETS];
    void *o[NSETS];              // bf16
    float *dq, *dk, *dv, *dg, *dbeta, *dh0;  // backward only; shared across sets (outputs)
} gdn_ctx;

static float gdn_scale(const gdn_ctx *c) { return 1.0f / sqrtf((float)c->K); }

// Inputs of every set: q, k, v ~ N(0, 1) on the bf16 grid (the op normalises q and k,
// qk_l2norm = 1); g = logsigmoid(N(0,1)) / 10, β = sigmoid(N(0,1)); h0 ~ N(0, 0.25).
// with_bwd adds an fp32 dout per set and the six fp32 gradient buffers (zeroed, as a
// training step's gradients start).
static void gdn_fill(gdn_ctx *c, int with_bwd) {
    const size_t tok = (size_t)c->B * c->T * c->H;
    const size_t nqk = tok * c->K, nv = tok * c->V, ns = (size_t)c->B * c->H * c->K * c->V;
    for (int s = 0; s < NSETS; s++) {
        c->q[s] = kb_dev_bf16(nqk, 1.0f);
        c->k[s] = kb_dev_bf16(nqk, 1.0f);
        c->v[s] = kb_dev_bf16(nv, 1.0f);
        float *g = kb_normal(tok, 1.0f), *beta = kb_normal(tok, 1.0f);
        for (size_t i = 0; i < tok; i++) {
            const double u = g[i];
            const double logsig = u >= 0 ? -log1p(exp(-u)) : u - log1p(exp(u));
            g[i] = (float)(logsig / 10.0);
            beta[i] = (float)(1.0 / (1.0 + exp(-(double)beta[i])));
        }
        c->g[s] = kb_dev_f32_host(g, tok);
        c->beta[s] = kb_dev_f32_host(beta, tok);
        free(g), free(beta);
        c->h0[s] = c->with_h0 ? kb_dev_f32(ns, 0.5f) : NULL;
        c->ht[s] = c->with_ht ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, ns * sizeof(float)) : NULL;
        c->o[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * sizeof(pn_bf16));
        c->dout[s] = with_bwd ? kb_dev_f32(nv, 1.0f) : NULL;
    }
    if (with_bwd) {
        float **grads[6] = {&c->dq, &c->dk, &c->dv, &c->dg, &c->dbeta, &c->dh0};
        const size_t sizes[6] = {nqk, nqk, nv, tok, tok, ns};
        for (int i = 0; i < 6; i++) {
            *grads[i] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sizes[i] * sizeof(float));
            pn_cuda_memset(*grads[i], 0, sizes[i] * sizeof(float));
        }
    }
    pn_cuda_sync();
}

static void gdn_free(gdn_ctx *c) {
    for (int s = 0; s < NSETS; s++) {
        pn_cuda_free(c->q[s]), pn_cuda_free(c->k[s]), pn_cuda_free(c->v[s]), pn_cuda_free(c->g[s]);
        pn_cuda_free(c->beta[s]), pn_cuda_free(c->h0[s]), pn_cuda_free(c->ht[s]), pn_cuda_free(c->o[s]);
        pn_cuda_free(c->dout[s]);
    }
    pn_cuda_free(c->dq), pn_cuda_free(c->dk), pn_cuda_free(c->dv), pn_cuda_free(c->dg);
    pn_cuda_free(c->dbeta), pn_cuda_free(c->dh0);
    pn_cuda_sync();
    pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
}

// Decode: the state is h0[s], updated in place (T = 1, so (B, 1, H, ·) is (B, H, ·)).
static void run_step(void *p, int i) {
    gdn_ctx *c = p;
    const int s = i % NSETS;
    pn_cuda_gated_delta_step(c->q[s], c->k[s], c->v[s], c->g[s], c->beta[s], c->h0[s], c->o[s], PN_CUDA_BF16, c->B,
                             c->H, c->K, c->V, gdn_scale(c), 1);
}

static void run_fwd(void *p, int i) {
    gdn_ctx *c = p;
    const int s = i % NSETS;
    if (c->fast)
        pn_cuda_gated_delta_fwd_fast(c->B, c->T, c->H, c->K, c->V, gdn_scale(c), 1, c->q[s], c->k[s], c->v[s],
                                     c->g[s], c->beta[s], c->h0[s], c->o[s], PN_CUDA_BF16, c->ht[s]);
    else
        pn_cuda_gated_delta_fwd(c->B, c->T, c->H, c->K, c->V, gdn_scale(c), 1, c->q[s], c->k[s], c->v[s], c->g[s],
                                c->beta[s], c->h0[s], c->o[s], PN_CUDA_BF16, c->ht[s]);
}

// A training step's share: the forward (o only), then the backward of sum(o · dout)
// with all six gradients; dht = NULL (the final state feeds no loss in training).
static void run_fwd_bwd(void *p, int i) {
    gdn_ctx *c = p;
    const int s = i % NSETS;
    run_fwd(p, i);
    if (c->fast)
        pn_cuda_gated_delta_bwd_fast(c->B, c->T, c->H, c->K, c->V, gdn_scale(c), 1, c->q[s], c->k[s], c->v[s],
                                     c->g[s], c->beta[s], c->h0[s], c->dout[s], NULL, c->dq, c->dk, c->dv, c->dg,
                                     c->dbeta, c->dh0);
    else
        pn_cuda_gated_delta_bwd(c->B, c->T, c->H, c->K, c->V, gdn_scale(c), 1, c->q[s], c->k[s], c->v[s], c->g[s],
                                c->beta[s], c->h0[s], c->dout[s], NULL, c->dq, c->dk, c->dv, c->dg, c->dbeta, c->dh0);
}

// FLOPs of the chunked forward per token-head, chunk C: the K×V state products W S,
// Q S and the update Kᵀ Vn (2KV each), and within a chunk K Kᵀ, Q Kᵀ, A·K for W (2CK
// each, counted full although two are triangular) and A·V for U, P·Vn (2CV each).
static double gdn_fwd_flops(const gdn_ctx *c) {
    const double tok = (double)c->B * c->T * c->H, K = c->K, V = c->V, C = GDN_CHUNK;
    return tok * (6 * K * V + 6 * C * K + 4 * C * V);
}

// Forward bytes: q, k, v read and o written in bf16, g and β read in fp32, h0 read and
// ht written in fp32 when present.
static double gdn_fwd_bytes(const gdn_ctx *c) {
    const double tok = (double)c->B * c->T * c->H, K = c->K, V = c->V, hs = (double)c->B * c->H * K * V * 4;
    return tok * (2 * K + 2 * K + 2 * V + 2 * V + 4 + 4) + (c->with_h0 ? hs : 0) + (c->with_ht ? hs : 0);
}

// Backward bytes (the contract of pn_cuda_gated_delta_bwd): q, k, v bf16, g, β, h0, and
// dout fp32 read; dq, dk, dv, dg, dβ, dh0 fp32 read and written (+=).
static double gdn_bwd_bytes(const gdn_ctx *c) {
    const double tok = (double)c->B * c->T * c->H, K = c->K, V = c->V, hs = (double)c->B * c->H * K * V * 4;
    return tok * (2 * K + 2 * K + 2 * V + 4 + 4 + 4 * V + 8 * K + 8 * K + 8 * V + 8 + 8) + (c->with_h0 ? hs : 0) +
           2 * hs;
}

// ---------------------------------------------------------------- JSON

static void kb_json_write(const char *path, json_t *j) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    if (!text) pn_die_internal(__FILE__, __LINE__, "json_dumps failed");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        if (dir[0]) pn_mkdir_p(dir);
    }
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    pn_write_file_atomic(path, text, n + 1);
    free(text);
}

static json_t *kb_num(double x) { return x > 0 && isfinite(x) ? json_real(x) : json_null(); }

static json_t *kb_row_json(const kb_row *r) {
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(r->name));
    json_object_set_new(j, "shape", r->shape[0] ? json_string(r->shape) : json_null());
    if (r->status) {
        json_object_set_new(j, "status", json_string(r->status));
        return j;
    }
    // The unit follows the floor's larger term: TFLOP/s for compute-bound rows, TB/s of
    // minimal bytes for memory-bound ones; both rates are listed when both are counted.
    const int compute = r->flops > 0 && strstr(r->floor_basis, "FLOP") != NULL;
    const double tflops = r->flops / (r->ms * 1e-3) / 1e12, tbps = r->bytes / (r->ms * 1e-3) / 1e12;
    json_object_set_new(j, "status", json_string(r->nonfinite > 0 ? "non-finite output" : "measured"));
    json_object_set_new(j, "ms", json_real(r->ms));
    json_object_set_new(j, "min_ms", json_real(r->min_ms));
    json_object_set_new(j, "warmup", json_integer(r->warm));
    json_object_set_new(j, "reps", json_integer(r->reps));
    json_object_set_new(j, "achieved", json_real(compute ? tflops : tbps));
    json_object_set_new(j, "unit", json_string(compute ? "TFLOP/s" : "TB/s"));
    json_object_set_new(j, "achieved_tflops", kb_num(tflops));
    json_object_set_new(j, "achieved_tbps", kb_num(tbps));
    json_object_set_new(j, "flops", json_integer((json_int_t)llround(r->flops)));
    json_object_set_new(j, "bytes", json_integer((json_int_t)llround(r->bytes)));
    json_object_set_new(j, "floor_ms", kb_num(r->floor_ms));
    json_object_set_new(j, "floor_basis", json_string(r->floor_basis));
    json_object_set_new(j, "ratio_to_floor", kb_num(r->floor_ms > 0 ? r->ms / r->floor_ms : 0));
    json_object_set_new(j, "target_ms", kb_num(r->target_ms));
    char target[128] = "";
    if (r->target_ms > 0) snprintf(target, sizeof target, "<= %.3f ms", r->target_ms);
    if (r->target_tflops > 0)
        snprintf(target, sizeof target, ">= %.1f TFLOP/s (%.0f%% of %.0f)", r->target_tflops,
                 100 * GEMM_TARGET_FRACTION, GEMM_ANCHOR_TFLOPS);
    json_object_set_new(j, "target", target[0] ? json_string(target) : json_null());
    json_object_set_new(j, "anchor", r->anchor ? json_string(r->anchor) : json_null());
    json_object_set_new(j, "anchor_ms", kb_num(r->anchor_ms));
    json_object_set_new(j, "ratio_to_anchor", kb_num(r->anchor_ms > 0 ? r->ms / r->anchor_ms : 0));
    json_t *met = json_null();
    if (r->target_ms > 0) met = json_boolean(r->nonfinite <= 0 && r->ms <= r->target_ms);
    if (r->target_tflops > 0) met = json_boolean(r->nonfinite <= 0 && tflops >= r->target_tflops);
    json_object_set_new(j, "met", met);
    if (r->nonfinite >= 0) json_object_set_new(j, "nonfinite_outputs", json_integer(r->nonfinite));
    return j;
}

// ---------------------------------------------------------------- the benchmark

static void kb_log_row(const kb_row *r) {
    pn_info("bench kernels: %-28s %10.4f ms (fastest %.4f), floor %.4f ms, measured/floor %.2f", r->name, r->ms,
            r->min_ms, r->floor_ms, r->ms / r->floor_ms);
}

// One chunked-forward row: time pn_cuda_gated_delta_fwd (c->fast: _fwd_fast) on c, floors,
// target 0.40 ms.
static void kb_fwd_row(kb_row *r, gdn_ctx *c, const char *name, const char *state_desc, const char *anchor,
                       double anchor_ms, double bw, double mm) {
    gdn_fill(c, 0);
    r->name = name;
    r->warm = 2, r->reps = 20;
    r->ms = kb_time(run_fwd, c, r->warm, r->reps, &r->min_ms);
    char how[96] = "pn_cuda_gated_delta_fwd";
    if (c->fast) {
        const int seg = pn_cuda_gdn_fast_debug_last_segments();
        if (seg == 0)
            snprintf(how, sizeof how, "pn_cuda_gated_delta_fwd_fast: FELL BACK to pn_cuda_gated_delta_fwd");
        else
            snprintf(how, sizeof how, "pn_cuda_gated_delta_fwd_fast, tensor cores, %d state segment%s", seg,
                     seg == 1 ? "" : "s");
    }
    snprintf(r->shape, sizeof r->shape, "B%d T%d H%d K%d V%d, bf16 q/k/v/o, fp32 g/beta, %s, in-op q/k L2 norm (%s)",
             c->B, c->T, c->H, c->K, c->V, state_desc, how);
    r->flops = gdn_fwd_flops(c);
    r->bytes = gdn_fwd_bytes(c);
    kb_row_floor(r, bw, mm);
    r->target_ms = 0.40;
    r->anchor = anchor;
    r->anchor_ms = anchor_ms;
    r->nonfinite = kb_count_nonfinite(c->o[0], (size_t)c->B * c->T * c->H * c->V, 0);
    gdn_free(c);
    kb_log_row(r);
}

// ---------------------------------------------------------------- attention

typedef struct {
    int B, T, Hq, Hkv, D;
    pn_bf16 *q[NSETS], *k[NSETS], *v[NSETS], *dout[NSETS], *o[NSETS];
    float *lse[NSETS];
    pn_bf16 *dq, *dk, *dv;  // backward outputs, shared across sets
} attn_ctx;

static float attn_scale(const attn_ctx *c) { return 1.0f / sqrtf((float)c->D); }

// q, k, v, dout ~ N(0, 1) on the bf16 grid; o, lse, and the gradients are outputs.
static void attn_fill(attn_ctx *c, int with_bwd) {
    const size_t nq = (size_t)c->B * c->T * c->Hq * c->D, nkv = (size_t)c->B * c->T * c->Hkv * c->D;
    const size_t nl = (size_t)c->B * c->Hq * c->T;
    for (int s = 0; s < NSETS; s++) {
        c->q[s] = kb_dev_bf16(nq, 1.0f);
        c->k[s] = kb_dev_bf16(nkv, 1.0f);
        c->v[s] = kb_dev_bf16(nkv, 1.0f);
        c->dout[s] = with_bwd ? kb_dev_bf16(nq, 1.0f) : NULL;
        c->o[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nq * sizeof(pn_bf16));
        c->lse[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nl * sizeof(float));
    }
    c->dq = with_bwd ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nq * sizeof(pn_bf16)) : NULL;
    c->dk = with_bwd ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nkv * sizeof(pn_bf16)) : NULL;
    c->dv = with_bwd ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nkv * sizeof(pn_bf16)) : NULL;
    pn_cuda_sync();
}

static void attn_free(attn_ctx *c) {
    for (int s = 0; s < NSETS; s++) {
        pn_cuda_free(c->q[s]), pn_cuda_free(c->k[s]), pn_cuda_free(c->v[s]), pn_cuda_free(c->dout[s]);
        pn_cuda_free(c->o[s]), pn_cuda_free(c->lse[s]);
    }
    pn_cuda_free(c->dq), pn_cuda_free(c->dk), pn_cuda_free(c->dv);
    pn_cuda_sync();
    pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
}

// The training forward: o and the lse the backward needs.
static void run_attn_fwd(void *p, int i) {
    attn_ctx *c = p;
    const int s = i % NSETS;
    pn_cuda_attn_fwd(c->B, c->T, c->T, c->Hq, c->Hkv, c->D, 0, attn_scale(c), c->q[s], c->k[s], c->v[s], 0, c->o[s],
                     c->lse[s]);
}

static void run_attn_fwd_bwd(void *p, int i) {
    attn_ctx *c = p;
    const int s = i % NSETS;
    run_attn_fwd(p, i);
    pn_cuda_attn_bwd(c->B, c->T, c->Hq, c->Hkv, c->D, 0, attn_scale(c), c->q[s], c->k[s], c->v[s], c->o[s],
                     c->dout[s], c->lse[s], c->dq, c->dk, c->dv);
}

// Causal forward FLOPs: QKᵀ and PV over the lower triangle, 2 · 2 · B·Hq·T²/2·D.
static double attn_fwd_flops(const attn_ctx *c) {
    return 4.0 * c->B * c->Hq * (double)c->T * c->T * c->D / 2.0;
}

// Forward bytes: q, k, v read, o written (bf16), lse written (fp32). Backward: q, k, v,
// o, dout, lse read; dq, dk, dv written.
static double attn_fwd_bytes(const attn_ctx *c) {
    const double nq = (double)c->B * c->T * c->Hq * c->D, nkv = (double)c->B * c->T * c->Hkv * c->D;
    return 2 * (2 * nq + 2 * nkv) + 4.0 * c->B * c->Hq * c->T;
}
static double attn_bwd_bytes(const attn_ctx *c) {
    const double nq = (double)c->B * c->T * c->Hq * c->D, nkv = (double)c->B * c->T * c->Hkv * c->D;
    return 2 * (3 * nq + 2 * nkv) + 4.0 * c->B * c->Hq * c->T + 2 * (nq + 2 * nkv);
}

// Anchor times of the attention rows: the built-in H100 numbers, or those of the JSON
// scripts/anchor_torch_h100.py wrote, when POSTNAS_BENCH_ANCHORS names it.
typedef struct {
    double fwd_ms, fwd_bwd_ms;
    char fwd_text[256], fwd_bwd_text[256];
} kb_anchors;

static void kb_anchors_read(kb_anchors *a) {
    a->fwd_ms = ATTN_ANCHOR_FWD_MS;
    a->fwd_bwd_ms = ATTN_ANCHOR_FWDBWD_MS;
    snprintf(a->fwd_text, sizeof a->fwd_text, "torch SDPA %.3f ms (H100)", a->fwd_ms);
    snprintf(a->fwd_bwd_text, sizeof a->fwd_bwd_text, "torch SDPA %.2f ms (H100)", a->fwd_bwd_ms);
    const char *path = getenv("POSTNAS_BENCH_ANCHORS");
    if (!path || !path[0]) return;
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        pn_die_input(path, "line %d: %s (POSTNAS_BENCH_ANCHORS names the JSON of scripts/anchor_torch_h100.py)",
                     err.line, err.text);
    json_t *sdpa = json_object_get(j, "sdpa");
    const json_t *f = json_object_get(sdpa, "fwd_ms"), *fb = json_object_get(sdpa, "fwd_bwd_ms");
    if (!json_is_number(f) || !json_is_number(fb) || json_number_value(f) <= 0 || json_number_value(fb) <= 0)
        pn_die_input(path, "expected numbers sdpa.fwd_ms and sdpa.fwd_bwd_ms > 0 (the output of "
                           "scripts/anchor_torch_h100.py)");
    a->fwd_ms = json_number_value(f);
    a->fwd_bwd_ms = json_number_value(fb);
    const char *dev = json_string_value(json_object_get(j, "device"));
    const char *tv = json_string_value(json_object_get(j, "torch_version"));
    snprintf(a->fwd_text, sizeof a->fwd_text, "torch SDPA %.3f ms (%s, torch %s; %s)", a->fwd_ms, dev ? dev : "?",
             tv ? tv : "?", path);
    snprintf(a->fwd_bwd_text, sizeof a->fwd_bwd_text, "torch SDPA %.3f ms (%s, torch %s; %s)", a->fwd_bwd_ms,
             dev ? dev : "?", tv ? tv : "?", path);
    json_decref(j);
    pn_info("bench kernels: attention anchors from %s: fwd %.3f ms, fwd+bwd %.3f ms", path, a->fwd_ms, a->fwd_bwd_ms);
}

// One attention row: time `run` on c, floor at the anchor GEMM rate, target and anchor.
static void kb_attn_row(kb_row *r, attn_ctx *c, int with_bwd, double target_ms, const char *anchor,
                        double anchor_ms) {
    attn_fill(c, with_bwd);
    r->warm = 2, r->reps = 20;  // the first call builds the cuDNN plan
    r->ms = kb_time(with_bwd ? run_attn_fwd_bwd : run_attn_fwd, c, r->warm, r->reps, &r->min_ms);
    const int cudnn = pn_cuda_attn_last_backend() == PN_CUDA_ATTN_CUDNN;
    if (with_bwd)
        r->name = cudnn ? "causal GQA attention fwd+bwd (cuDNN)" : "causal GQA attention fwd+bwd (built-in)";
    else
        r->name = cudnn ? "causal GQA attention fwd (cuDNN)" : "causal GQA attention fwd (built-in)";
    snprintf(r->shape, sizeof r->shape,
             "B%d T%d Hq%d Hkv%d D%d, causal, bf16 q/k/v/o, fp32 lse, scale D^-1/2; %s (pn_cuda_attn_fwd%s, %s)", c->B,
             c->T, c->Hq, c->Hkv, c->D,
             with_bwd ? "fwd then bwd of sum(o*dout), dq dk dv bf16 written" : "training fwd (o and lse)",
             with_bwd ? " + pn_cuda_attn_bwd" : "", cudnn ? "cuDNN fused attention" : "built-in WMMA kernel");
    const double ff = attn_fwd_flops(c);
    r->flops = with_bwd ? 3.5 * ff : ff;
    r->bytes = with_bwd ? attn_fwd_bytes(c) + attn_bwd_bytes(c) : attn_fwd_bytes(c);
    r->floor_ms = r->flops / (GEMM_ANCHOR_TFLOPS * 1e12) * 1e3;
    r->floor_basis = "FLOPs at the anchor bf16 GEMM rate (745 TFLOP/s); causal FLOPs = 4*B*Hq*T^2*D/2 fwd, "
                     "2.5x that for bwd";
    r->target_ms = target_ms;
    r->anchor = anchor;
    r->anchor_ms = anchor_ms;
    const size_t nq = (size_t)c->B * c->T * c->Hq * c->D;
    r->nonfinite = with_bwd ? kb_count_nonfinite(c->dq, nq, 0) + kb_count_nonfinite(c->dk, nq / (c->Hq / c->Hkv), 0)
                            : kb_count_nonfinite(c->o[0], nq, 0);
    attn_free(c);
    kb_log_row(r);
}

// ---------------------------------------------------------------- other linear-attention ops
//
// The training ops of pn_cuda_linear.h at one shape each, B8 T4096 H12 K128 V128 for the
// recurrences (C = 12·128 = 1536, Qwen2.5-1.5B's width, split the way fla's GLA / RWKV7
// layers split it), zero initial state and no final state (a training forward), bf16 o;
// inputs as tests/gpu/test_cuda_linear.c makes them: q, k, v ~ N(0, 1), log-decays
// logsigmoid(N(0,1)) / 10, DPLR a = −κ̂, b = κ̂·sigmoid(N(0,1)) with κ̂ = l2n(N(0,1)) per
// head (so the transition is a contraction). fwd+bwd rows run the forward, then the
// backward of sum(o · dout) with every gradient (fp32 +=), like the gdn fwd+bwd row.

typedef enum { LR_SGLA, LR_GLA, LR_DPLR } lr_op;

typedef struct {
    lr_op op;
    int fast;  // simple GLA and GLA: the tensor-core pairs (pn_cuda_simple_gla_fwd_fast, pn_cuda_gla_fwd_fast, ...)
    int B, T, H, K, V;
    pn_bf16 *q[NSETS], *k[NSETS], *v[NSETS], *a[NSETS], *b[NSETS], *o[NSETS];
    float *g[NSETS];      // (B, T, H) simple GLA; (B, T, H, K) GLA and DPLR
    float *dout[NSETS];
    float *dq, *dk, *dv, *dg, *da, *db;  // backward only; shared across sets
} lr_ctx;

static const char *const lr_names[] = {"simple GLA", "GLA", "DPLR"};
static const char *const lr_fns[] = {"pn_cuda_simple_gla_fwd", "pn_cuda_gla_fwd", "pn_cuda_dplr_fwd"};

static float lr_scale(const lr_ctx *c) { return 1.0f / sqrtf((float)c->K); }
static size_t lr_ng(const lr_ctx *c) {
    const size_t tok = (size_t)c->B * c->T * c->H;
    return c->op == LR_SGLA ? tok : tok * c->K;
}

static float *kb_logdecay(size_t n) {
    float *g = kb_normal(n, 1.0f);
    for (size_t i = 0; i < n; i++) {
        const double u = g[i];
        g[i] = (float)((u >= 0 ? -log1p(exp(-u)) : u - log1p(exp(u))) / 10.0);
    }
    return g;
}

static pn_bf16 *kb_dev_bf16_host(const float *h, size_t n) {
    pn_bf16 *d = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * sizeof(pn_bf16));
    pn_cuda_upload_bf16(d, h, (int64_t)n);
    return d;
}

static void lr_fill(lr_ctx *c, int with_bwd) {
    const size_t tok = (size_t)c->B * c->T * c->H, nqk = tok * c->K, nv = tok * c->V, ng = lr_ng(c);
    for (int s = 0; s < NSETS; s++) {
        c->q[s] = kb_dev_bf16(nqk, 1.0f);
        c->k[s] = kb_dev_bf16(nqk, 1.0f);
        c->v[s] = kb_dev_bf16(nv, 1.0f);
        float *g = kb_logdecay(ng);
        c->g[s] = kb_dev_f32_host(g, ng);
        free(g);
        if (c->op == LR_DPLR) {
            float *kap = kb_normal(nqk, 1.0f), *al = kb_normal(nqk, 1.0f);
            for (size_t row = 0; row < tok; row++) {
                double ss = 0;
                for (int j = 0; j < c->K; j++) ss += (double)kap[row * c->K + j] * kap[row * c->K + j];
                const double rs = 1.0 / sqrt(ss + 1e-6);
                for (int j = 0; j < c->K; j++) {
                    const double kh = kap[row * c->K + j] * rs;
                    kap[row * c->K + j] = (float)-kh;                                            // a
                    al[row * c->K + j] = (float)(kh / (1.0 + exp(-(double)al[row * c->K + j])));  // b
                }
            }
            c->a[s] = kb_dev_bf16_host(kap, nqk);
            c->b[s] = kb_dev_bf16_host(al, nqk);
            free(kap), free(al);
        }
        c->o[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * sizeof(pn_bf16));
        c->dout[s] = with_bwd ? kb_dev_f32(nv, 1.0f) : NULL;
    }
    if (with_bwd) {
        float **grads[6] = {&c->dq, &c->dk, &c->dv, &c->dg, &c->da, &c->db};
        const size_t sizes[6] = {nqk, nqk, nv, ng, c->op == LR_DPLR ? nqk : 0, c->op == LR_DPLR ? nqk : 0};
        for (int i = 0; i < 6; i++) {
            *grads[i] = sizes[i] ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sizes[i] * sizeof(float)) : NULL;
            if (sizes[i]) pn_cuda_memset(*grads[i], 0, sizes[i] * sizeof(float));
        }
    }
    pn_cuda_sync();
}

static void lr_free(lr_ctx *c) {
    for (int s = 0; s < NSETS; s++) {
        pn_cuda_free(c->q[s]), pn_cuda_free(c->k[s]), pn_cuda_free(c->v[s]), pn_cuda_free(c->a[s]);
        pn_cuda_free(c->b[s]), pn_cuda_free(c->o[s]), pn_cuda_free(c->g[s]), pn_cuda_free(c->dout[s]);
    }
    pn_cuda_free(c->dq), pn_cuda_free(c->dk), pn_cuda_free(c->dv), pn_cuda_free(c->dg);
    pn_cuda_free(c->da), pn_cuda_free(c->db);
    pn_cuda_sync();
    pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
}

static void run_lr_fwd(void *p, int i) {
    lr_ctx *c = p;
    const int s = i % NSETS;
    const float sc = lr_scale(c);
    if (c->op == LR_SGLA && c->fast)
        pn_cuda_simple_gla_fwd_fast(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL,
                                    c->o[s], PN_CUDA_BF16, NULL);
    else if (c->op == LR_SGLA)
        pn_cuda_simple_gla_fwd(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL, c->o[s],
                               PN_CUDA_BF16, NULL);
    else if (c->op == LR_GLA && c->fast)
        pn_cuda_gla_fwd_fast(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL, c->o[s],
                             PN_CUDA_BF16, NULL);
    else if (c->op == LR_GLA)
        pn_cuda_gla_fwd(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL, c->o[s],
                        PN_CUDA_BF16, NULL);
    else
        pn_cuda_dplr_fwd(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], c->a[s], c->b[s], NULL,
                         c->o[s], PN_CUDA_BF16, NULL);
}

static void run_lr_fwd_bwd(void *p, int i) {
    lr_ctx *c = p;
    const int s = i % NSETS;
    const float sc = lr_scale(c);
    run_lr_fwd(p, i);
    if (c->op == LR_SGLA && c->fast)
        pn_cuda_simple_gla_bwd_fast(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL,
                                    c->dout[s], NULL, c->dq, c->dk, c->dv, c->dg, NULL);
    else if (c->op == LR_SGLA)
        pn_cuda_simple_gla_bwd(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL, c->dout[s],
                               NULL, c->dq, c->dk, c->dv, c->dg, NULL);
    else if (c->op == LR_GLA && c->fast)
        pn_cuda_gla_bwd_fast(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL, c->dout[s],
                             NULL, c->dq, c->dk, c->dv, c->dg, NULL);
    else if (c->op == LR_GLA)
        pn_cuda_gla_bwd(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], NULL, c->dout[s], NULL,
                        c->dq, c->dk, c->dv, c->dg, NULL);
    else
        pn_cuda_dplr_bwd(c->B, c->T, c->H, c->K, c->V, sc, c->q[s], c->k[s], c->v[s], c->g[s], c->a[s], c->b[s], NULL,
                         c->dout[s], NULL, c->dq, c->dk, c->dv, c->dg, c->da, c->db, NULL);
}

// Forward FLOPs per token-head, chunk C = 64, counted as for the gdn rows. (Simple) GLA:
// the state products Q S and Kᵀ V (2KV each), the chunk's Q Kᵀ (2CK) and P V (2CV); the
// decay is element-wise. DPLR (fla's chunked form, approximately): four C×C score blocks
// q·k, q·b, a·k, a·b and the WY solve (≈ 10CK), the state read through q and w and its
// update through k and b (8KV), the intra-chunk value products (≈ 6CV).
static double lr_fwd_flops(const lr_ctx *c) {
    const double tok = (double)c->B * c->T * c->H, K = c->K, V = c->V, C = GDN_CHUNK;
    if (c->op == LR_DPLR) return tok * (8 * K * V + 10 * C * K + 6 * C * V);
    return tok * (4 * K * V + 2 * C * K + 2 * C * V);
}

// Forward bytes: q, k (and a, b) read and v read / o written in bf16; the log-decay read in
// fp32 (one per token-head, or K for GLA and DPLR). No h0, no ht.
static double lr_fwd_bytes(const lr_ctx *c) {
    const double tok = (double)c->B * c->T * c->H, K = c->K, V = c->V;
    const double g = c->op == LR_SGLA ? 4 : 4 * K, ab = c->op == LR_DPLR ? 4 * K : 0;
    return tok * (4 * K + 4 * V + g + ab);
}

// Backward bytes: the forward's inputs again, dout fp32 read, every gradient fp32 read and
// written (+=): dq, dk, dv, dg (and da, db).
static double lr_bwd_bytes(const lr_ctx *c) {
    const double tok = (double)c->B * c->T * c->H, K = c->K, V = c->V;
    const double g = c->op == LR_SGLA ? 1 : K, ab = c->op == LR_DPLR ? 2 * K : 0;
    return tok * (4 * K + 2 * V + 4 * g + 2 * ab + 4 * V + 16 * K + 8 * V + 8 * g + 8 * ab);
}

static void kb_lr_row(kb_row *r, lr_ctx *c, int with_bwd, double bw, double mm) {
    lr_fill(c, with_bwd);
    static char names[5][2][64];  // [op, or 3 + op for the fast simple GLA / GLA][bwd]
    const int ni = c->fast ? 3 + (int)c->op : (int)c->op;
    snprintf(names[ni][with_bwd], sizeof names[0][0], "%s chunked %s%s", lr_names[c->op], with_bwd ? "fwd+bwd" : "fwd",
             c->fast ? " (fast)" : "");
    r->name = names[ni][with_bwd];
    static const char *const fast_fns[2][2] = {
        {"pn_cuda_simple_gla_fwd_fast", "pn_cuda_simple_gla_bwd_fast, tensor cores"},
        {"pn_cuda_gla_fwd_fast", "pn_cuda_gla_bwd_fast, tensor cores"}};
    const char *fn = c->fast ? fast_fns[c->op][0] : lr_fns[c->op];
    const char *fn_bwd = c->fast ? fast_fns[c->op][1] : NULL;
    const char *gdesc = c->op == LR_SGLA ? "fp32 g (B,T,H)" : c->op == LR_GLA ? "fp32 gk (B,T,H,K)"
                                                                             : "fp32 gk (B,T,H,K), bf16 a/b";
    if (with_bwd)
        snprintf(r->shape, sizeof r->shape,
                 "B%d T%d H%d K%d V%d, bf16 q/k/v/o, %s, zero h0; fwd then bwd of sum(o*dout) (dout fp32, dht none), "
                 "every gradient fp32 += (%s + %.*s%s)", c->B, c->T, c->H, c->K, c->V, gdesc, fn,
                 fn_bwd ? 0 : (int)strlen(fn) - 4, fn, fn_bwd ? fn_bwd : "_bwd");
    else
        snprintf(r->shape, sizeof r->shape, "B%d T%d H%d K%d V%d, bf16 q/k/v/o, %s, zero h0, no ht (%s%s)", c->B, c->T,
                 c->H, c->K, c->V, gdesc, fn, c->fast ? ", tensor cores" : "");
    r->warm = with_bwd ? 1 : 2, r->reps = with_bwd ? 3 : 20;
    r->ms = kb_time(with_bwd ? run_lr_fwd_bwd : run_lr_fwd, c, r->warm, r->reps, &r->min_ms);
    // The backward of a chain of matrix products costs about twice its forward.
    r->flops = (with_bwd ? 3 : 1) * lr_fwd_flops(c);
    r->bytes = lr_fwd_bytes(c) + (with_bwd ? lr_bwd_bytes(c) : 0);
    kb_row_floor(r, bw, mm);
    const size_t tok = (size_t)c->B * c->T * c->H;
    r->nonfinite = with_bwd ? kb_count_nonfinite(c->dq, tok * c->K, 1) + kb_count_nonfinite(c->dv, tok * c->V, 1)
                            : kb_count_nonfinite(c->o[0], tok * c->V, 0);
    lr_free(c);
    kb_log_row(r);
}

// ---- causal depthwise convs (static: the short convs; dynamic: JetBlock's), SiLU after.
// B8 T4096 D3072 W4: D = JetBlock's value width at 12 heads × 256.

typedef struct {
    int dyn, B, T, D, W;
    int dk16;  // dynamic bwd: dkern written in bf16 (JetBlock's form) instead of fp32 +=
    pn_bf16 *x[NSETS], *kern[NSETS], *y[NSETS];
    float *dy[NSETS];
    float *w, *bias;                    // static conv weights (D, W), (D)
    float *dx, *dw, *dbias, *dkern;     // backward outputs
} conv_ctx;

static void conv_fill(conv_ctx *c, int with_bwd) {
    const size_t nx = (size_t)c->B * c->T * c->D, nk = nx * c->W;
    for (int s = 0; s < NSETS; s++) {
        c->x[s] = kb_dev_bf16(nx, 1.0f);
        c->kern[s] = c->dyn ? kb_dev_bf16(nk, 0.5f) : NULL;
        c->y[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nx * sizeof(pn_bf16));
        c->dy[s] = with_bwd ? kb_dev_f32(nx, 1.0f) : NULL;
    }
    c->w = c->dyn ? NULL : kb_dev_f32((size_t)c->D * c->W, 0.5f);
    c->bias = c->dyn ? NULL : kb_dev_f32((size_t)c->D, 0.1f);
    if (with_bwd) {
        float **grads[4] = {&c->dx, &c->dw, &c->dbias, &c->dkern};
        const size_t sizes[4] = {nx, c->dyn ? 0 : (size_t)c->D * c->W, c->dyn ? 0 : (size_t)c->D,
                                 c->dyn ? (c->dk16 ? (nk + 1) / 2 : nk) : 0};  // bf16 dkern: nk halves
        for (int i = 0; i < 4; i++) {
            *grads[i] = sizes[i] ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sizes[i] * sizeof(float)) : NULL;
            if (sizes[i]) pn_cuda_memset(*grads[i], 0, sizes[i] * sizeof(float));
        }
    }
    pn_cuda_sync();
}

static void conv_free(conv_ctx *c) {
    for (int s = 0; s < NSETS; s++) pn_cuda_free(c->x[s]), pn_cuda_free(c->kern[s]), pn_cuda_free(c->y[s]), pn_cuda_free(c->dy[s]);
    pn_cuda_free(c->w), pn_cuda_free(c->bias);
    pn_cuda_free(c->dx), pn_cuda_free(c->dw), pn_cuda_free(c->dbias), pn_cuda_free(c->dkern);
    pn_cuda_sync();
    pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
}

static void run_conv_fwd(void *p, int i) {
    conv_ctx *c = p;
    const int s = i % NSETS;
    if (c->dyn)
        pn_cuda_dynconv_causal_fwd(c->y[s], PN_CUDA_BF16, c->x[s], c->kern[s], NULL, c->B, c->T, c->D, c->W, 1);
    else
        pn_cuda_conv_causal_fwd(c->y[s], PN_CUDA_BF16, c->x[s], c->w, c->bias, NULL, c->B, c->T, c->D, c->W, 1);
}

static void run_conv_bwd(void *p, int i) {
    conv_ctx *c = p;
    const int s = i % NSETS;
    if (c->dyn)
        pn_cuda_dynconv_causal_bwd(c->dx, PN_CUDA_F32, c->D, c->dkern, c->dk16 ? PN_CUDA_BF16 : PN_CUDA_F32, c->dy[s],
                                   c->x[s], c->kern[s], NULL, c->B, c->T, c->D, c->W, 1);
    else
        pn_cuda_conv_causal_bwd(c->dx, PN_CUDA_F32, c->D, c->dw, c->dbias, c->dy[s], c->x[s], c->w, c->bias, NULL, c->B,
                                c->T, c->D, c->W, 1);
}

// FLOPs: 2·W per output element forward; the backward's dx and dw (dkern) 2·W each.
// Bytes, per (token, channel): forward x read, y written (bf16), a dynamic kernel's W
// taps read (bf16); backward dy read (fp32), x (and the kernel) read again, dx (and
// dkern) fp32 read and written (+=); the static weights are D·W, negligible but counted.
static void kb_conv_row(kb_row *r, conv_ctx *c, int bwd, double bw, double mm) {
    conv_fill(c, bwd);
    r->name = c->dyn ? (bwd ? (c->dk16 ? "dynamic causal conv bwd, bf16 dkern" : "dynamic causal conv bwd")
                            : "dynamic causal conv fwd")
                     : (bwd ? "causal conv bwd" : "causal conv fwd");
    if (c->dyn)
        snprintf(r->shape, sizeof r->shape,
                 "B%d T%d D%d W%d, SiLU after, bf16 x and per-token kernels (B,T,D,W), %s (pn_cuda_dynconv_causal_%s)",
                 c->B, c->T, c->D, c->W,
                 bwd ? (c->dk16 ? "dy fp32, dx fp32 +=, dkern bf16 written (JetBlock's form)" : "dy fp32, dx dkern fp32 +=")
                     : "y bf16",
                 bwd ? "bwd" : "fwd");
    else
        snprintf(r->shape, sizeof r->shape,
                 "B%d T%d D%d W%d, SiLU after, bf16 x, fp32 w/bias, %s (pn_cuda_conv_causal_%s)", c->B, c->T, c->D,
                 c->W, bwd ? "dy fp32, dx dw dbias fp32 += (pre-activation recomputed)" : "y bf16",
                 bwd ? "bwd" : "fwd");
    r->warm = 3, r->reps = 20;
    r->ms = kb_time(bwd ? run_conv_bwd : run_conv_fwd, c, r->warm, r->reps, &r->min_ms);
    const double nx = (double)c->B * c->T * c->D, W = c->W, nw = (double)c->D * (W + 1);
    r->flops = (bwd ? 4 : 2) * nx * W;
    if (c->dyn)
        r->bytes = bwd ? nx * (4 + 2 + 2 * W + 8 + (c->dk16 ? 2 : 8) * W) : nx * (2 + 2 * W + 2);
    else
        r->bytes = bwd ? nx * (4 + 2 + 8) + nw * (4 + 8) : nx * (2 + 2) + nw * 4;
    kb_row_floor(r, bw, mm);
    r->nonfinite = bwd ? kb_count_nonfinite(c->dx, (size_t)nx, 1) +
                             (c->dyn ? kb_count_nonfinite(c->dkern, (size_t)(nx * W), !c->dk16)
                                     : kb_count_nonfinite(c->dw, (size_t)(c->D * c->W), 1))
                       : kb_count_nonfinite(c->y[0], (size_t)nx, 0);
    conv_free(c);
    kb_log_row(r);
}

// ---- gated RMSNorm (the linear blocks' output norm), N = B8·T4096·H12 rows of D = 256.

typedef struct {
    int64_t N;
    int D;
    pn_bf16 *x[NSETS], *gate[NSETS], *y[NSETS];
    float *rstd[NSETS], *dy[NSETS];
    float *w, *dx, *dw, *dgate;
} norm_ctx;

static void norm_fill(norm_ctx *c, int with_bwd) {
    const size_t n = (size_t)c->N * c->D;
    for (int s = 0; s < NSETS; s++) {
        c->x[s] = kb_dev_bf16(n, 1.0f);
        c->gate[s] = kb_dev_bf16(n, 1.0f);
        c->y[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * sizeof(pn_bf16));
        c->rstd[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)c->N * sizeof(float));
        c->dy[s] = with_bwd ? kb_dev_f32(n, 1.0f) : NULL;
    }
    float *w = kb_normal((size_t)c->D, 0.1f);
    for (int i = 0; i < c->D; i++) w[i] += 1.0f;
    c->w = kb_dev_f32_host(w, (size_t)c->D);
    free(w);
    if (with_bwd) {
        c->dx = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * sizeof(float));
        c->dgate = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * sizeof(float));
        c->dw = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)c->D * sizeof(float));
        pn_cuda_memset(c->dx, 0, n * sizeof(float));
        pn_cuda_memset(c->dgate, 0, n * sizeof(float));
        pn_cuda_memset(c->dw, 0, (size_t)c->D * sizeof(float));
    }
    pn_cuda_sync();
}

static void norm_free(norm_ctx *c) {
    for (int s = 0; s < NSETS; s++) {
        pn_cuda_free(c->x[s]), pn_cuda_free(c->gate[s]), pn_cuda_free(c->y[s]), pn_cuda_free(c->rstd[s]);
        pn_cuda_free(c->dy[s]);
    }
    pn_cuda_free(c->w), pn_cuda_free(c->dx), pn_cuda_free(c->dw), pn_cuda_free(c->dgate);
    pn_cuda_sync();
    pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
}

static void run_norm_fwd(void *p, int i) {
    norm_ctx *c = p;
    const int s = i % NSETS;
    pn_cuda_rmsnorm_gated_fwd(c->y[s], PN_CUDA_BF16, c->rstd[s], c->x[s], PN_CUDA_BF16, c->w, c->gate[s], c->N, c->D,
                              1e-5f);
}

static void run_norm_bwd(void *p, int i) {
    norm_ctx *c = p;
    const int s = i % NSETS;
    pn_cuda_rmsnorm_gated_bwd(c->dx, c->dw, c->dgate, c->dy[s], c->x[s], PN_CUDA_BF16, c->w, c->gate[s], c->rstd[s],
                              c->N, c->D);
}

// Element-wise work only (FLOPs not counted: memory-bound). Bytes per element: forward x,
// gate read and y written (bf16), per row rstd written; backward dy read (fp32), x, gate
// read (bf16), dx and dgate fp32 read and written (+=), per row rstd read; w (and dw) D floats.
static void kb_norm_row(kb_row *r, norm_ctx *c, int bwd, double bw, double mm) {
    norm_fill(c, bwd);
    r->name = bwd ? "gated RMSNorm bwd" : "gated RMSNorm fwd";
    snprintf(r->shape, sizeof r->shape,
             "N%lld (B8 T4096 H12 rows) D%d, bf16 x/gate, fp32 w, %s (pn_cuda_rmsnorm_gated_%s)", (long long)c->N,
             c->D, bwd ? "dy fp32, dx dw dgate fp32 +=" : "y bf16, rstd fp32", bwd ? "bwd" : "fwd");
    for (int s = 0; s < NSETS; s++) run_norm_fwd(c, s);  // the rstd the backward reads
    pn_cuda_sync();
    r->warm = 3, r->reps = 20;
    r->ms = kb_time(bwd ? run_norm_bwd : run_norm_fwd, c, r->warm, r->reps, &r->min_ms);
    const double n = (double)c->N * c->D, rows = (double)c->N;
    r->flops = 0;
    r->bytes = bwd ? n * (4 + 2 + 2 + 8 + 8) + rows * 4 + c->D * 12.0 : n * (2 + 2 + 2) + rows * 4 + c->D * 4.0;
    kb_row_floor(r, bw, mm);
    r->nonfinite = bwd ? kb_count_nonfinite(c->dx, (size_t)n, 1) + kb_count_nonfinite(c->dgate, (size_t)n, 1)
                       : kb_count_nonfinite(c->y[0], (size_t)n, 0);
    norm_free(c);
    kb_log_row(r);
}

int pn_bench_kernels(const char *out_json) {
    if (!out_json || !out_json[0]) pn_die_input(KB_WHERE, "no output path given");
    if (pn_cuda_device_count() < 1)
        pn_die_device(__FILE__, __LINE__, "bench kernels: no CUDA device is visible (driver missing or no GPU)");
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    int drv = 0, rt = 0, mem_khz = 0, bus_bits = 0;
    KB_CHECK(cudaDriverGetVersion(&drv));
    KB_CHECK(cudaRuntimeGetVersion(&rt));
    KB_CHECK(cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0));
    KB_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
    // Double data rate: two transfers per memory clock on each bus bit.
    const double dram_peak = 2.0 * mem_khz * 1e3 * bus_bits / 8.0;
    pn_info("bench kernels: %s, sm_%d%d, %d SMs, %.1f GiB, driver %d, runtime %d", info.name, info.sm_major,
            info.sm_minor, info.multiprocessors, info.total_mem / 1073741824.0, drv, rt);

    enum {
        R_COPY, R_GEMM, R_STEP, R_FWD, R_FWDBWD, R_LONG, R_FAST, R_FAST_FWDBWD, R_FAST_LONG, R_ATTN_FWD, R_ATTN_FWDBWD,
        R_SGLA, R_SGLA_BWD, R_SGLA_FAST, R_SGLA_FAST_BWD, R_GLA, R_GLA_BWD, R_GLA_FAST, R_GLA_FAST_BWD, R_DPLR,
        R_DPLR_BWD, R_CONV, R_CONV_BWD, R_DCONV, R_DCONV_BWD, R_DCONV_BWD16, R_NORM, R_NORM_BWD, R_MFU, R_COUNT
    };
    kb_row rows[R_COUNT];
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < R_COUNT; i++) rows[i].nonfinite = -1;

    // ---- ceiling 1: device copy, 1 GiB, read + written. The sources hold distinct
    // non-zero byte patterns (a copy's speed does not depend on the values).
    {
        kb_row *r = &rows[R_COPY];
        copy_ctx c = {.bytes = (size_t)1 << 30};
        for (int s = 0; s < NSETS; s++) {
            c.src[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, c.bytes);
            pn_cuda_memset(c.src[s], 0x3C + s, c.bytes);
        }
        c.dst = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, c.bytes);
        r->name = "device copy";
        snprintf(r->shape, sizeof r->shape, "1 GiB device-to-device (pn_cuda_copy), bytes read + written");
        r->warm = 3, r->reps = 20;
        r->ms = kb_time(run_copy, &c, r->warm, r->reps, &r->min_ms);
        r->bytes = 2.0 * (double)c.bytes;
        r->floor_ms = dram_peak > 0 ? r->bytes / dram_peak * 1e3 : 0;
        r->floor_basis = "DRAM peak = 2 x memory clock x bus width (device attributes)";
        for (int s = 0; s < NSETS; s++) pn_cuda_free(c.src[s]);
        pn_cuda_free(c.dst);
        pn_cuda_sync();
        pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
        kb_log_row(r);
    }
    const double bw = rows[R_COPY].bytes / (rows[R_COPY].ms * 1e-3);

    // ---- ceiling 2: bf16 GEMM 8192³, y = x wᵀ (the Linear layout), bf16 out, fp32 accumulate.
    {
        kb_row *r = &rows[R_GEMM];
        gemm_ctx c = {.n = 8192};
        const size_t nn = (size_t)c.n * c.n;
        for (int s = 0; s < NSETS; s++) c.x[s] = kb_dev_bf16(nn, 1.0f), c.w[s] = kb_dev_bf16(nn, 1.0f);
        c.y = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nn * sizeof(pn_bf16));
        r->name = "bf16 GEMM";
        snprintf(r->shape, sizeof r->shape,
                 "M = N = K = 8192, y (bf16) = x w^T, fp32 accumulate (pn_cuda_linear_fwd, cuBLASLt)");
        r->warm = 3, r->reps = 20;
        r->ms = kb_time(run_gemm, &c, r->warm, r->reps, &r->min_ms);
        r->flops = 2.0 * c.n * (double)c.n * c.n;
        r->bytes = 3.0 * (double)nn * sizeof(pn_bf16);
        r->floor_ms = r->flops / (GEMM_ANCHOR_TFLOPS * 1e12) * 1e3;
        r->floor_basis = "FLOPs at the anchor rate (torch/cuBLAS 745 TFLOP/s)";
        r->target_tflops = GEMM_TARGET_FRACTION * GEMM_ANCHOR_TFLOPS;
        r->anchor = "torch/cuBLAS 745 TFLOP/s (H100)";
        r->anchor_ms = r->floor_ms;
        r->nonfinite = kb_count_nonfinite(c.y, nn, 0);
        for (int s = 0; s < NSETS; s++) pn_cuda_free(c.x[s]), pn_cuda_free(c.w[s]);
        pn_cuda_free(c.y);
        pn_cuda_sync();
        pn_cuda_mem_trim(PN_CUDA_MEM_SCRATCH);
        kb_log_row(r);
    }
    const double mm = rows[R_GEMM].flops / (rows[R_GEMM].ms * 1e-3);
    pn_info("bench kernels: ceilings: copy %.3f TB/s (DRAM peak %.3f), bf16 GEMM %.1f TFLOP/s", bw / 1e12,
            dram_peak / 1e12, mm / 1e12);

    // ---- gated delta rule decode step: B256 H12 K96 V256, fp32 state in place.
    {
        kb_row *r = &rows[R_STEP];
        gdn_ctx c = {.B = 256, .T = 1, .H = 12, .K = 96, .V = 256, .with_h0 = 1};
        gdn_fill(&c, 0);
        r->name = "gdn decode step";
        snprintf(r->shape, sizeof r->shape,
                 "B%d H%d K%d V%d, fp32 state (B,H,K,V) in place, bf16 q/k/v/o, in-op q/k L2 norm "
                 "(pn_cuda_gated_delta_step)", c.B, c.H, c.K, c.V);
        r->warm = 3, r->reps = 25;
        r->ms = kb_time(run_step, &c, r->warm, r->reps, &r->min_ms);
        const double heads = (double)c.B * c.H, kv = (double)c.K * c.V;
        // State read + written in fp32; q, k, v read and o written in bf16; g, β read.
        r->bytes = heads * (8 * kv + 2 * 2.0 * c.K + 2 * 2.0 * c.V + 8);
        r->flops = heads * 6 * kv;  // decay, Sᵀk, rank-1 update, Sᵀq
        kb_row_floor(r, bw, mm);
        r->target_ms = 0.22;
        r->anchor = "fla 0.254 ms (H100)";
        r->anchor_ms = 0.254;
        r->nonfinite = kb_count_nonfinite(c.o[0], (size_t)c.B * c.H * c.V, 0) +
                       kb_count_nonfinite(c.h0[0], (size_t)c.B * c.H * c.K * c.V, 1);
        gdn_free(&c);
        kb_log_row(r);
    }

    // ---- chunked forward, B8 T4096 H12 K96 V256, h0 given and ht wanted.
    {
        gdn_ctx c = {.B = 8, .T = 4096, .H = 12, .K = 96, .V = 256, .with_h0 = 1, .with_ht = 1};
        kb_fwd_row(&rows[R_FWD], &c, "gdn chunked fwd", "h0 in and ht out (fp32)", "fla 1.214 ms (H100)", 1.214, bw,
                   mm);
    }

    // ---- chunked forward + backward at the same shape (all six gradients, fp32 +=); the
    // fp32 kernels, then the tensor-core pair (pn_cuda_gated_delta_fwd_fast + _bwd_fast).
    for (int fast = 0; fast <= 1; fast++) {
        kb_row *r = &rows[fast ? R_FAST_FWDBWD : R_FWDBWD];
        gdn_ctx c = {.B = 8, .T = 4096, .H = 12, .K = 96, .V = 256, .with_h0 = 1, .with_ht = 0, .fast = fast};
        gdn_fill(&c, 1);
        r->name = fast ? "gdn chunked fwd+bwd (fast)" : "gdn chunked fwd+bwd";
        snprintf(r->shape, sizeof r->shape,
                 "B%d T%d H%d K%d V%d, fwd (h0 in, o bf16) then bwd of sum(o*dout) (dout fp32, dht none), "
                 "dq dk dv dg dbeta dh0 fp32 += (%s)",
                 c.B, c.T, c.H, c.K, c.V,
                 fast ? "pn_cuda_gated_delta_fwd_fast + pn_cuda_gated_delta_bwd_fast, tensor cores"
                      : "pn_cuda_gated_delta_fwd + pn_cuda_gated_delta_bwd");
        r->warm = 1, r->reps = 3;
        r->ms = kb_time(run_fwd_bwd, &c, r->warm, r->reps, &r->min_ms);
        // The backward of a chain of matrix products costs about twice its forward.
        r->flops = 3 * gdn_fwd_flops(&c);
        r->bytes = gdn_fwd_bytes(&c) + gdn_bwd_bytes(&c);
        kb_row_floor(r, bw, mm);
        r->target_ms = 1.5;
        r->anchor = NULL;
        r->nonfinite = kb_count_nonfinite(c.dq, (size_t)c.B * c.T * c.H * c.K, 1) +
                       kb_count_nonfinite(c.dv, (size_t)c.B * c.T * c.H * c.V, 1);
        gdn_free(&c);
        kb_log_row(r);
    }

    // ---- long prefill: 1 x 65,536 tokens, 8 heads, K = V = 128; zero initial state, ht out.
    {
        gdn_ctx c = {.B = 1, .T = 65536, .H = 8, .K = 128, .V = 128, .with_h0 = 0, .with_ht = 1};
        kb_fwd_row(&rows[R_LONG], &c, "gdn chunked fwd, long", "zero h0, ht out (fp32)",
                   "FlashInfer 0.399 ms (H100; its shape has 2 q/k heads for 8 v heads, GVA)", 0.399, bw, mm);
    }

    // ---- the tensor-core chunked forward at the same two shapes.
    {
        gdn_ctx c = {.B = 8, .T = 4096, .H = 12, .K = 96, .V = 256, .with_h0 = 1, .with_ht = 1, .fast = 1};
        kb_fwd_row(&rows[R_FAST], &c, "gdn chunked fwd (fast)", "h0 in and ht out (fp32)", "fla 1.214 ms (H100)", 1.214,
                   bw, mm);
        gdn_ctx cl = {.B = 1, .T = 65536, .H = 8, .K = 128, .V = 128, .with_h0 = 0, .with_ht = 1, .fast = 1};
        kb_fwd_row(&rows[R_FAST_LONG], &cl, "gdn chunked fwd, long (fast)", "zero h0, ht out (fp32)",
                   "FlashInfer 0.399 ms (H100; its shape has 2 q/k heads for 8 v heads, GVA)", 0.399, bw, mm);
    }

    // ---- causal GQA attention, B8 T4096 Hq12 Hkv2 D128: training forward, then fwd+bwd.
    {
        static kb_anchors an;  // static: the rows keep pointers to its texts until the JSON is written
        kb_anchors_read(&an);
        attn_ctx c = {.B = 8, .T = 4096, .Hq = 12, .Hkv = 2, .D = 128};
        kb_attn_row(&rows[R_ATTN_FWD], &c, 0, 0.80, an.fwd_text, an.fwd_ms);
        attn_ctx cb = {.B = 8, .T = 4096, .Hq = 12, .Hkv = 2, .D = 128};
        kb_attn_row(&rows[R_ATTN_FWDBWD], &cb, 1, 3.4, an.fwd_bwd_text, an.fwd_bwd_ms);
    }

    // ---- simple GLA, GLA, DPLR: B8 T4096 H12 K128 V128, fwd and fwd+bwd.
    // The fast simple GLA and GLA (tensor cores) run right after their fp32 twins, same shape
    // and inputs.
    static const int lr_first_row[3] = {R_SGLA, R_GLA, R_DPLR};
    for (int op = LR_SGLA; op <= LR_DPLR; op++)
        for (int fast = 0; fast <= (op != LR_DPLR); fast++)
            for (int bwd = 0; bwd <= 1; bwd++) {
                lr_ctx c = {.op = (lr_op)op, .fast = fast, .B = 8, .T = 4096, .H = 12, .K = 128, .V = 128};
                kb_lr_row(&rows[lr_first_row[op] + 2 * fast + bwd], &c, bwd, bw, mm);
            }

    // ---- causal convs (static, dynamic) and the gated RMSNorm: fwd, bwd.
    for (int dyn = 0; dyn <= 1; dyn++) {
        for (int bwd = 0; bwd <= 1; bwd++) {
            conv_ctx c = {.dyn = dyn, .B = 8, .T = 4096, .D = 3072, .W = 4};
            kb_conv_row(&rows[R_CONV + 2 * dyn + bwd], &c, bwd, bw, mm);
        }
    }
    {
        conv_ctx c = {.dyn = 1, .dk16 = 1, .B = 8, .T = 4096, .D = 3072, .W = 4};
        kb_conv_row(&rows[R_DCONV_BWD16], &c, 1, bw, mm);
    }
    for (int bwd = 0; bwd <= 1; bwd++) {
        norm_ctx c = {.N = 8LL * 4096 * 12, .D = 256};
        kb_norm_row(&rows[R_NORM + bwd], &c, bwd, bw, mm);
    }

    rows[R_MFU].name = "supernet training step MFU";
    rows[R_MFU].status = "see postnas bench train-step (results/bench/h100-train-step.json)";

    pn_cuda_attn_release();
    pn_cuda_gemm_release();
    pn_cuda_sync();

    char date[64];
    pn_bench_utc_date(date, sizeof date);
    json_t *j = json_object();
    json_object_set_new(j, "benchmark", json_string("kernels"));
    json_object_set_new(j, "device", json_string("cuda"));
    json_object_set_new(j, "date", json_string(date));
    json_t *gpu = json_object();
    json_object_set_new(gpu, "name", json_string(info.name));
    char sm[16];
    snprintf(sm, sizeof sm, "sm_%d%d", info.sm_major, info.sm_minor);
    json_object_set_new(gpu, "arch", json_string(sm));
    json_object_set_new(gpu, "multiprocessors", json_integer(info.multiprocessors));
    json_object_set_new(gpu, "memory_bytes", json_integer((json_int_t)info.total_mem));
    json_object_set_new(gpu, "l2_bytes", json_integer((json_int_t)info.l2_bytes));
    json_object_set_new(gpu, "dram_peak_TBps", json_real(dram_peak / 1e12));
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d", drv / 1000, (drv % 1000) / 10);
    json_object_set_new(gpu, "driver_cuda_version", json_string(ver));
    snprintf(ver, sizeof ver, "%d.%d", rt / 1000, (rt % 1000) / 10);
    json_object_set_new(gpu, "runtime_version", json_string(ver));
    const int cudnn = pn_cuda_attn_cudnn_version();
    snprintf(ver, sizeof ver, "%d.%d.%d", cudnn / 10000, (cudnn % 10000) / 100, cudnn % 100);
    json_object_set_new(gpu, "cudnn_version", cudnn ? json_string(ver) : json_null());
    json_object_set_new(j, "gpu", gpu);
    json_t *ceil = json_object();
    json_object_set_new(ceil, "copy_TBps", json_real(bw / 1e12));
    json_object_set_new(ceil, "gemm_bf16_TFLOPs", json_real(mm / 1e12));
    json_object_set_new(j, "ceilings", ceil);
    json_object_set_new(j, "method",
                        json_string("cudaEvents around each call, calls queued back to back; warm-up first; median of "
                                    "reps (>= 20; 3 for the recurrences' fwd+bwd); inputs rotate among 3 sets; random non-zero inputs; "
                                    "floor = max(minimal bytes / copy rate, FLOPs / GEMM rate) of this run, for "
                                    "attention FLOPs at the 745 TFLOP/s anchor GEMM rate"));
    json_t *arr = json_array();
    for (int i = 0; i < R_COUNT; i++) json_array_append_new(arr, kb_row_json(&rows[i]));
    json_object_set_new(j, "rows", arr);
    kb_json_write(out_json, j);
    json_decref(j);
    pn_info("bench kernels: wrote %s", out_json);
    return 0;
}

#endif  // POSTNAS_HAVE_CUDA
