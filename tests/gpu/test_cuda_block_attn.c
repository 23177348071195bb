// test_cuda_block_attn.c — the CUDA training blocks `attn` and `swa` (blocks/cblock_attn.c)
// against their CPU twins (blocks/attn.c): forward y, backward dx and every parameter
// gradient, on random inputs, trainable and frozen (all grads NULL).
//
// Method:
//  - parameters are drawn at a scale where attention is not uniform (weights
//    N(0, 1/fan_in), biases N(0, 0.1), q/k norm weights 1 + N(0, 0.2)), then rounded to
//    bf16 on the host; x and dy are rounded too. The CPU block gets exactly those values,
//    so a check measures the GPU's bf16 activations and its arithmetic, not input rounding;
//  - y and the act buffer are poisoned (0xFF bytes = NaN) before the forward, so a slice
//    forward forgets to write (or backward reads past) shows up as NaN;
//  - dx and each gradient start from random values (not zero) and the check compares
//    the increase with the CPU's result: backward must ADD, as the contract says;
//  - the scratch arena's bytes in use must be the same before forward and after backward
//    (everything the block allocates it returns);
//  - error = ‖gpu − cpu‖ / ‖cpu‖ in double, NaN fails; tolerance 1e-2 (bf16 paths).
//    Two gradients are ill-conditioned for that measure and are said so on their lines:
//    where every query sees one key (T = 1, swa window 1) dq = dk = 0 exactly, so the
//    q/k-side gradients are only checked finite; and k_proj.bias's gradient Σ_n dk_n
//    nearly cancels (softmax is invariant to a shift of all keys; RoPE breaks it only
//    slightly), so its error is measured against max(‖cpu‖, ‖dWk‖/√C), the size the sum
//    would have without the cancellation.
// Shapes: B 1–3, T 1 / 63 / 64 / 130, GQA ratios 1 / 2 / 6, head dims 64 / 96 / 128 and 36
// (not a multiple of 8: the attention's built-in fallback kernel), qkv_bias, o_bias and
// qk_norm on and off, swa windows 1, 17 (< T) and 200 (> T), the supernet's attention
// shape (C 1536, 12 q heads, 2 KV heads, D 128), and Qwen2-tiny's real attention weights
// (fixture qwen2-tiny/model.safetensors, layers 0 and 3). The qwen2-tiny reference holds
// whole-model outputs only (no per-layer attention inputs/outputs), so those cases
// compare with the CPU block on random inputs like the others.
#include "blocks/block.h"
#include "blocks/cblock.h"
#include "core/common.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_attn.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOL_BF16 1e-2
#define GPU_TEST_SEED 20251125
#include "gpu_test_util.h"
#include "cblock_test_util.h"

static const char *fixture(const char *rel) {
    static char buf[4096];
    const char *root = getenv("POSTNAS_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared/fixtures", rel);
    return buf;
}

// Every query sees exactly one key (T = 1, or swa with window 1): the softmax is the constant
// 1, so dq and dk — and every q/k-side parameter gradient — are exactly 0.
static int one_key(const pn_block *h, int T) { return T == 1 || (h->type->name[0] == 's' && h->cfg.window == 1); }

// attn's parameter checks: with one visible key per query dq = dk = 0 exactly (both sides
// hold rounding noise: finiteness only); k_proj.bias against a cancellation-free scale.
static void attn_param_check(const pn_block *h, int T, int i, const float *g, const float *g0, size_t n,
                             const char *what) {
    const char *name = h->spec[i].name;
    const int qk_side = strncmp(name, "q_", 2) == 0 || strncmp(name, "k_", 2) == 0;
    if (one_key(h, T) && qk_side) {
        cbt_param_finite(i, h, g, g0, n, what, "exact value 0: one visible key per query");
    } else if (strcmp(name, "k_proj.bias") == 0) {
        // Softmax ignores a constant added to every key, so Σ_n dk_n nearly cancels (exactly
        // without RoPE): measured against the cancellation-free scale ‖dWk‖/√C, the size Σ_n dk_n
        // would have for uncorrelated rows (x has unit-variance entries).
        const int iw = pn_block_param_index(h, "k_proj.weight");
        const size_t nw = (size_t)pn_param_numel(&h->spec[iw]);
        double sw = 0, sb = 0, se = 0;
        for (size_t j = 0; j < nw; j++) sw += (double)h->grads[iw][j] * h->grads[iw][j];
        for (size_t j = 0; j < n; j++) {
            const double d = (double)g[j] - g0[j] - h->grads[i][j];
            se += d * d;
            sb += (double)h->grads[i][j] * h->grads[i][j];
        }
        const double scale = fmax(sqrt(sb), sqrt(sw / h->cfg.C));
        report(isfinite(se) ? sqrt(se) / scale : INFINITY, TOL_BF16,
               "%s: d %s (added; vs max(|cpu|, |dWk|/sqrt C); plain %.1e)", what, name,
               diff_err(g, g0, h->grads[i], n));
    } else {
        cbt_param_plain(h, i, g, g0, n, what);
    }
}

static void run_case(pn_block *h, int B, int T, int trainable, const char *label) {
    cbt_run_case(h, B, T, trainable, label, attn_param_check, NULL);
}

typedef struct {
    const char *type;
    int C, H, H_kv, K, window, qkv_bias, o_bias, qk_norm;
    int B, T;
} attn_case;

static void run_attn(const attn_case *k) {
    pn_block_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.C = k->C, cfg.H = k->H, cfg.H_kv = k->H_kv, cfg.K = k->K, cfg.window = k->window;
    cfg.qkv_bias = k->qkv_bias, cfg.o_bias = k->o_bias, cfg.qk_norm = k->qk_norm;
    cfg.rope_theta = 10000.0f;
    pn_block h;
    host_block_new(&h, k->type, &cfg);
    char label[128];
    snprintf(label, sizeof label, "C%d H%d/%d D%d%s%s%s", k->C, k->H, k->H_kv, k->K, k->qkv_bias ? " qkvb" : "",
             k->o_bias ? " ob" : "", k->qk_norm ? " qkn" : "");
    if (k->window) snprintf(label + strlen(label), sizeof label - strlen(label), " w%d", k->window);
    for (int trainable = 1; trainable >= 0; trainable--) run_case(&h, k->B, k->T, trainable, label);
    host_block_free(&h);
}

// Qwen2-tiny layer `layer`'s attention (real weights, rounded to bf16) on random inputs.
static void run_qwen2_tiny(int layer) {
    const char *path = fixture("qwen2-tiny/model.safetensors");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skip qwen2-tiny layer %d: %s not found\n", layer, path);
        return;
    }
    fclose(f);
    pn_block_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.C = 64, cfg.H = 4, cfg.H_kv = 2, cfg.K = 16, cfg.qkv_bias = 1, cfg.rope_theta = 10000.0f;
    pn_block h;
    host_block_new(&h, "attn", &cfg);
    pn_safetensors *st = pn_st_open(path);
    for (int i = 0; i < h.n_params; i++) {
        char name[160];
        snprintf(name, sizeof name, "model.layers.%d.self_attn.%s", layer, h.spec[i].name);
        pn_st_read_f32(st, name, h.params[i], h.spec[i].ndim, h.spec[i].shape);
        round_bf16(h.params[i], (size_t)pn_param_numel(&h.spec[i]));
    }
    pn_st_close(st);
    char label[64];
    snprintf(label, sizeof label, "qwen2-tiny layer %d", layer);
    run_case(&h, 2, 37, 1, label);
    run_case(&h, 2, 37, 0, label);
    host_block_free(&h);
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_block_attn: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.sm_major, info.sm_minor, info.multiprocessors,
           info.total_mem / 1073741824.0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    warm_gemm();

    static const attn_case cases[] = {
        // type   C     H   Hkv  K   win qkvb ob qkn  B  T
        {"attn", 64, 4, 4, 64, 0, 1, 0, 0, 2, 63},       // GQA 1, Qwen2 biases
        {"attn", 96, 4, 2, 96, 0, 0, 1, 1, 1, 64},       // GQA 2, Qwen3 norm + o bias
        {"attn", 128, 6, 1, 128, 0, 1, 1, 1, 3, 130},    // GQA 6, everything on
        {"attn", 64, 2, 1, 64, 0, 0, 0, 0, 3, 1},        // T = 1
        {"attn", 64, 4, 2, 36, 0, 1, 0, 1, 2, 130},      // D 36: attention fallback kernel
        {"attn", 1536, 12, 2, 128, 0, 1, 0, 0, 1, 64},   // the supernet's (Qwen2.5-1.5B) attention
        {"swa", 64, 4, 2, 64, 17, 1, 0, 0, 2, 130},      // window < T
        {"swa", 96, 6, 1, 128, 200, 0, 0, 1, 1, 63},     // window > T
        {"swa", 64, 4, 4, 96, 1, 1, 1, 0, 2, 64},        // window 1: each query sees itself only
        {"swa", 64, 4, 2, 36, 40, 0, 0, 1, 3, 130},      // window < T, fallback kernel
        {"swa", 64, 2, 1, 64, 8, 1, 0, 0, 3, 1},         // T = 1
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_attn(&cases[i]);
    run_qwen2_tiny(0);
    run_qwen2_tiny(3);

    // Saved activations at the supernet's attention shape (C 1536, 12 q heads, 2 KV heads, D 128).
    pn_block_cfg big;
    memset(&big, 0, sizeof big);
    big.C = 1536, big.H = 12, big.H_kv = 2, big.K = 128, big.qkv_bias = 1, big.rope_theta = 1e6f;
    const pn_cblock_type *t = pn_cblock_type_find("attn");
    const size_t tokens = 32768;
    big.qk_norm = 0;
    const size_t a0 = t->act_bytes(&big, 1, (int)tokens);
    big.qk_norm = 1;
    const size_t a1 = t->act_bytes(&big, 1, (int)tokens);
    printf("attn act bytes at C 1536, H 12/2, D 128, B·T %zu: %.1f MiB (%.1f B/token); with qk_norm %.1f B/token\n",
           tokens, a0 / 1048576.0, (double)a0 / tokens, (double)a1 / tokens);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%d passed, %d failed (%.1f s)\n", g_pass, g_fail,
           (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    pn_cuda_attn_release();
    pn_cuda_gemm_release();
    return g_fail ? 1 : 0;
}
