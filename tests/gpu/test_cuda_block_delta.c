// test_cuda_block_delta.c — the CUDA delta-rule blocks (blocks/cblock_jetblock.c,
// blocks/cblock_gated_deltanet.c: jetblock, gated_deltanet, deltanet) against their CPU
// blocks (blocks/jetblock.c, gated_deltanet.c, deltanet.c) and the float64 fixtures.
//
// Method, per block type and shape (B 1–3; T 1, 63, 64, 130 and one long batch that makes
// the JetBlock kernel generator run in several sequence groups; K 64, 96, 128 and 40):
//  - parameters: the block's own init for A_log / dt_bias, every other tensor random with
//    O(1) activations (projections N(0, 1/fan_in), convs N(0, 0.5), o_norm 1 + N(0, 0.1),
//    generator bias N(0, 0.3) — JetBlock's zero-initialised generator would hide the
//    dynamic-conv path otherwise); x random; all rounded to the bf16 grid first, so the
//    CPU block and the GPU block see the same weights and input and a check measures the
//    GPU's bf16 activations and fp32 arithmetic only;
//  - forward: y (bf16) is poisoned (0xFF = NaN) before the call; act is poisoned too and
//    followed by a 4 KiB guard that must be untouched afterwards (forward writes within
//    act_bytes);
//  - backward: dx and every parameter gradient start from random values on both sides and
//    the error is measured on the update (got − start vs ref − start): a forgotten element
//    or an overwrite (= instead of +=) fails;
//  - frozen: a second backward with every grads[i] = NULL must still give dx;
//  - fixtures: layers/{jetblock,gated_deltanet,deltanet}.safetensors (the official / fla
//    layers' weights and inputs) run through the CUDA block: y, dx and every grad.* against
//    the CPU block on the same bf16-rounded weights and x (see test_fixture for why), and
//    the distance of that reference from the float64 truth printed as info;
//  - each random case draws from its own Philox streams (seeded by its description), so
//    a case sees the same numbers whichever groups run;
//  - error = ‖gpu − ref‖ / ‖ref‖ in double; NaN or Inf anywhere fails.
// Tolerance TOL_BF16 = 1e-2 everywhere (the GPU keeps activations — projections, q, k, v,
// kernels, the recurrence output, the norm output — in bf16, a 2^-9 relative rounding each,
// ~3e-3 rms after a few of them; a wrong index, mask or missed accumulation is ≥ 1e-1).
// Where 1e-2 is not reached (H100, 2026-11-23: 9 of 269 checks; the log is
// results/gpu-tests/2026-11-23-h100-session5-all-gpu-tests.log):
//  - grad A_log / dt_bias with one or two heads, 2.5e-2 – 3.1e-2. The fake build (CPU twins
//    in fp32, bf16 storage at exactly the GPU's rounding points) already misses 1e-2 in the
//    same four checks: jetblock B1 T130 2.89e-2 / 2.53e-2 (as on the H100), jetblock B3 T64
//    H1 1.32e-2 / 1.46e-2 and gated_deltanet B1 T130 1.77e-2 / 1.72e-2 (the H100 about
//    twice that: the chunk kernels' bf16 tensor-core operands, as fla's, add the rest). So
//    bf16 storage of the activations alone breaks 1e-2 here. Rounding q, k, v to bf16 inside
//    the CPU reference as well takes jetblock B3 T64 H1 from 1.3e-2 to 1.4e-4: the exact
//    gradient itself moves that much under a 2^-9 rounding of q, k, v.
//    dA_log = Σ_s dG_s · Σ_{t≤s} g_t, where G is the cumulative log decay and Σ_s dG_s = 0
//    (shifting every G by a constant changes nothing when h0 = 0): a weighted sum of terms
//    that cancel to zero, per head. With three heads or T = 3000 the same checks give 1e-3.
//    Reaching 1e-2 for one head needs q, k, v and the chunk products in more than bf16
//    (fp32 operands with 3-pass bf16 or tf32 mma), not a fix in the orchestration.
//    Each random case also prints (info, no check) how far the CPU reference itself moves
//    when x is perturbed by 2^-9 relative, about one bf16 rounding: ordinary quantities move
//    2–4e-3 and the GPU lands 1.5–2.5× that from the reference; A_log / dt_bias of jetblock
//    B3 T64 H1 move 1.2e-2, of gated_deltanet B1 T130 H1 9.5e-3 (fake build, 2026-11-23);
//  - T = 1 projection gradients at 1.1e-2 – 1.3e-2: one token, ~1e-2 of bf16 noise (the
//    fake build misses other T = 1 checks of the same case by as little: y and o_proj at
//    1.02e-2, which the H100 passes).
// The checks stay at 1e-2 and fail; they are listed in the README's known gaps.
// PN_DELTA_TESTS=jetblock,gated_deltanet,deltanet,fixtures runs only the named groups.
// Without a CUDA device the test prints "no CUDA device" and exits 1.
#include "blocks/block.h"
#include "blocks/cblock.h"
#include "core/common.h"
#include "core/safetensors.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOL_BF16 1e-2
#define GPU_TEST_SEED 20251125
#include "gpu_test_util.h"

#include "cblock_resid_check.h"

#define GUARD_BYTES 4096

static int wanted(const char *group) {
    const char *sel = getenv("PN_DELTA_TESTS");
    if (!sel || !*sel) return 1;
    size_t n = strlen(group);
    for (const char *p = sel; (p = strstr(p, group)) != NULL; p += n)
        if ((p == sel || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

static const char *fixture_file(const char *rel) {
    static char buf[4096];
    const char *root = getenv("POSTNAS_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared/fixtures", rel);
    return buf;
}

static float *copy_host(const float *x, size_t n) {
    float *p = pn_malloc((n ? n : 1) * sizeof(float));
    memcpy(p, x, n * sizeof(float));
    return p;
}

// The block's init, then O(1)-scale random values on the bf16 grid (see the header).
static void randomise_params(pn_block *blk) {
    pn_block_init_params(blk, GPU_TEST_SEED);
    for (int i = 0; i < blk->n_params; i++) {
        const pn_param_spec *s = &blk->spec[i];
        size_t n = (size_t)pn_param_numel(s);
        float *p = blk->params[i];
        if (s->init == PN_INIT_CUSTOM) {
            // A_log, dt_bias: the block's own values
        } else if (strstr(s->name, "o_norm")) {
            pn_fill_normal(p, n, 1.0f, 0.1f, GPU_TEST_SEED, g_stream++);
        } else if (s->ndim == 1) {
            pn_fill_normal(p, n, 0.0f, 0.3f, GPU_TEST_SEED, g_stream++);
        } else if (s->ndim == 3) {
            pn_fill_normal(p, n, 0.0f, 0.5f, GPU_TEST_SEED, g_stream++);
        } else {
            pn_fill_normal(p, n, 0.0f, 1.0f / sqrtf((float)s->shape[1]), GPU_TEST_SEED, g_stream++);
        }
        round_bf16(p, n);
    }
}

// Host block with parameter and gradient buffers (gradients start at `gstart`).
static void host_alloc(pn_block *blk, float **gstart) {
    for (int i = 0; i < blk->n_params; i++) {
        size_t n = (size_t)pn_param_numel(&blk->spec[i]);
        blk->params[i] = pn_malloc((n ? n : 1) * sizeof(float));
        gstart[i] = rand_host(n, 1.0f);
        blk->grads[i] = copy_host(gstart[i], n);
    }
}

static void host_free(pn_block *blk, float **gstart) {
    for (int i = 0; i < blk->n_params; i++) free(blk->params[i]), free(blk->grads[i]), free(gstart[i]);
}

// The CPU block's forward + backward: y (N, C) and the updated dx (from dx_start) and grads.
static void cpu_run(const pn_block *blk, float *y, float *dx, const float *x, const float *dy, int B, int T) {
    const pn_block_type *t = blk->type;
    float *act = pn_malloc((t->act_floats(&blk->cfg, B, T) + 1) * sizeof(float));
    float *scr = pn_malloc((t->scratch_floats(&blk->cfg, B, T) + 1) * sizeof(float));
    pn_block_ctx ctx = {0};
    t->forward(blk, y, x, B, T, act, scr, &ctx);
    t->backward(blk, dx, dy, x, B, T, act, scr, &ctx);
    free(act), free(scr);
}

// Runs the CUDA block and compares y, dx and every gradient with the references
// (updates from the given start values); then a frozen backward for dx alone.
static void gpu_check(const char *what, pn_block *host, const float *x, const float *dy, const float *y_ref,
                      const float *dx_start, const float *dx_ref, float **gstart, float **g_ref, int B, int T,
                      int check_guard) {
    int C = host->cfg.C;
    size_t n = (size_t)B * T * C;
    pn_cblock cb;
    pn_cblock_alloc_owned(&cb, host, 1);
    for (int i = 0; i < cb.n_params; i++)
        pn_cuda_upload(cb.grads[i], gstart[i], (size_t)pn_param_numel(&cb.spec[i]) * sizeof(float));

    size_t ab = cb.type->act_bytes(&cb.cfg, B, T);
    char *act = pn_cuda_alloc(PN_CUDA_MEM_ACTS, ab + GUARD_BYTES);
    pn_cuda_memset(act, 0xFF, ab);
    pn_cuda_memset(act + ab, 0x5A, GUARD_BYTES);
    pn_bf16 *d_x = dev_bf16(x, n);
    pn_bf16 *d_y = dev_poisoned(n * sizeof(pn_bf16));
    float *d_dy = dev_f32(dy, n), *d_dx = dev_f32(dx_start, n);
    pn_cblock_ctx ctx = {0};

    cb.type->forward(&cb, d_y, d_x, B, T, act, &ctx);
    float *y = get_bf16(d_y, n);
    report(rel_err(y, y_ref, n), TOL_BF16, "%s: y", what);
    cbt_check_resid_form(&cb, d_x, B, T, act, y_ref, ctx, what);
    if (check_guard) {
        unsigned char *g = pn_malloc(GUARD_BYTES);
        pn_cuda_download(g, act + ab, GUARD_BYTES);
        size_t bad = 0;
        for (int i = 0; i < GUARD_BYTES; i++) bad += g[i] != 0x5A;
        report((double)bad, 0, "%s: forward stays within act_bytes %zu (guard bytes changed)", what, ab);
        free(g);
    }

    cb.type->backward(&cb, d_dx, d_dy, d_x, B, T, act, &ctx);
    float *dx = get_f32(d_dx, n), *dref = pn_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) dx[i] -= dx_start[i], dref[i] = dx_ref[i] - dx_start[i];
    report(rel_err(dx, dref, n), TOL_BF16, "%s: dx +=", what);
    for (int i = 0; i < cb.n_params; i++) {
        size_t m = (size_t)pn_param_numel(&cb.spec[i]);
        float *got = get_f32(cb.grads[i], m), *ref = pn_malloc(m * sizeof(float));
        for (size_t e = 0; e < m; e++) got[e] -= gstart[i][e], ref[e] = g_ref[i][e] - gstart[i][e];
        report(rel_err(got, ref, m), TOL_BF16, "%s: grad %s +=", what, cb.spec[i].name);
        free(got), free(ref);
    }

    // frozen: no parameter gradients, dx still wanted
    float *saved[PN_BLOCK_MAX_PARAMS];
    for (int i = 0; i < cb.n_params; i++) saved[i] = cb.grads[i], cb.grads[i] = NULL;
    pn_cuda_upload(d_dx, dx_start, n * sizeof(float));
    cb.type->backward(&cb, d_dx, d_dy, d_x, B, T, act, &ctx);
    float *dx2 = get_f32(d_dx, n);
    for (size_t i = 0; i < n; i++) dx2[i] -= dx_start[i];
    report(rel_err(dx2, dref, n), TOL_BF16, "%s: dx += with every grad NULL (frozen)", what);
    for (int i = 0; i < cb.n_params; i++) cb.grads[i] = saved[i];

    pn_cuda_sync();
    pn_cuda_free(act), pn_cuda_free(d_x), pn_cuda_free(d_y), pn_cuda_free(d_dy), pn_cuda_free(d_dx);
    pn_cblock_free_owned(&cb);
    free(y), free(dx), free(dref), free(dx2);
}

// ‖got − ref‖ / ‖ref − start‖: two updates from the same start, compared as the checks do.
static double diff_rel(const float *got, const float *ref, const float *start, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)got[i] - ref[i], r = (double)ref[i] - start[i];
        num += d * d;
        den += r * r;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

// How sensitive the checked quantities are themselves (info lines, no check): the CPU block
// again on x · (1 + 2^-9 u), u uniform in [-1, 1] per element from its own stream — about the
// size of one bf16 rounding, which is what the GPU applies to the activations derived from
// x (q, k, v, …) — and the relative change of y, dx and every gradient update. A check that
// misses 1e-2 where this is near 1e-2 measures the function's conditioning at that input,
// not the device's arithmetic.
static void print_sensitivity(const char *what, pn_block *blk, const float *x, const float *dy, const float *y,
                              const float *dx0, const float *dx, float **gstart, int B, int T) {
    const size_t n = (size_t)B * T * blk->cfg.C;
    float *xp = pn_malloc(n * sizeof(float)), *u = pn_malloc(n * sizeof(float));
    pn_fill_uniform(u, n, -1.0f, 1.0f, GPU_TEST_SEED ^ 0x5e115, (uint64_t)n);
    for (size_t i = 0; i < n; i++) xp[i] = x[i] * (1.0f + ldexpf(u[i], -9));
    float *g_ref[PN_BLOCK_MAX_PARAMS];
    for (int i = 0; i < blk->n_params; i++) {
        const size_t m = (size_t)pn_param_numel(&blk->spec[i]);
        g_ref[i] = blk->grads[i];
        blk->grads[i] = copy_host(gstart[i], m);
    }
    float *yp = pn_malloc(n * sizeof(float)), *dxp = copy_host(dx0, n);
    cpu_run(blk, yp, dxp, xp, dy, B, T);
    char line[4096];
    int at = snprintf(line, sizeof line, "info %s: reference moved by a 2^-9 perturbation of x: y %.2e, dx %.2e", what,
                      rel_err(yp, y, n), diff_rel(dxp, dx, dx0, n));
    for (int i = 0; i < blk->n_params && at < (int)sizeof line - 96; i++) {
        const size_t m = (size_t)pn_param_numel(&blk->spec[i]);
        at += snprintf(line + at, sizeof line - (size_t)at, ", %s %.2e", blk->spec[i].name,
                       diff_rel(blk->grads[i], g_ref[i], gstart[i], m));
        free(blk->grads[i]);
        blk->grads[i] = g_ref[i];
    }
    printf("%s\n", line);
    free(xp), free(u), free(yp), free(dxp);
}

static void test_random(const char *type_name, int B, int T, int C, int H, int K, int V) {
    const pn_block_type *type = pn_block_type_find(type_name);
    if (!type) pn_die_internal(__FILE__, __LINE__, "block type %s not registered", type_name);
    pn_block_cfg cfg = {.C = C, .H = H, .K = K, .V = V, .conv_size = 4, .gen_reduction = 8};
    char what[160];
    snprintf(what, sizeof what, "%s B %d T %d C %d H %d K %d V %d", type_name, B, T, C, H, K, V);
    g_stream = pn_hash_str(what) << 8;  // the same draws whichever groups run
    pn_block blk;
    pn_block_setup(&blk, type, &cfg);
    float *gstart[PN_BLOCK_MAX_PARAMS];
    host_alloc(&blk, gstart);
    randomise_params(&blk);

    size_t n = (size_t)B * T * C;
    float *x = rand_host(n, 1.0f), *dy = rand_host(n, 1.0f), *dx0 = rand_host(n, 1.0f);
    round_bf16(x, n);
    float *y = pn_malloc(n * sizeof(float)), *dx = copy_host(dx0, n);
    cpu_run(&blk, y, dx, x, dy, B, T);
    gpu_check(what, &blk, x, dy, y, dx0, dx, gstart, blk.grads, B, T, 1);
    print_sensitivity(what, &blk, x, dy, y, dx0, dx, gstart, B, T);
    host_free(&blk, gstart);
    free(x), free(dy), free(dx0), free(y), free(dx);
}

// A fixture layer through the CUDA block. The block's contract takes x and the GEMM
// weights in bf16, and that rounding alone moves this small layer's outputs by up to ~1.5e-2
// from the float64 truth (printed as "info"), so the checked reference is the CPU block
// (itself checked against the fixture at 1e-4 by tests/unit/test_blocks_fixtures.c) run on
// the bf16-rounded weights and x — the GPU sees exactly those values.
static void test_fixture(const char *file, const char *type_name, pn_block_cfg cfg) {
    const pn_block_type *type = pn_block_type_find(type_name);
    if (!type) pn_die_internal(__FILE__, __LINE__, "block type %s not registered", type_name);
    pn_safetensors *st = pn_st_open(fixture_file(file));
    int nd;
    int64_t xs[PN_MAX_DIMS];
    float *x = pn_st_load_f32(st, "x", &nd, xs);
    int B = (int)xs[0], T = (int)xs[1];
    cfg.C = (int)xs[2];
    pn_block blk;
    pn_block_setup(&blk, type, &cfg);
    float *gstart[PN_BLOCK_MAX_PARAMS], *gtruth[PN_BLOCK_MAX_PARAMS];
    for (int i = 0; i < blk.n_params; i++) {
        char name[160];
        int64_t m = pn_param_numel(&blk.spec[i]);
        blk.params[i] = pn_malloc((size_t)m * sizeof(float));
        gstart[i] = pn_calloc((size_t)m, sizeof(float));
        blk.grads[i] = pn_calloc((size_t)m, sizeof(float));
        gtruth[i] = pn_malloc((size_t)m * sizeof(float));
        snprintf(name, sizeof name, "param.%s", blk.spec[i].name);
        pn_st_read_f32(st, name, blk.params[i], blk.spec[i].ndim, blk.spec[i].shape);
        round_bf16(blk.params[i], (size_t)m);
        snprintf(name, sizeof name, "grad.%s", blk.spec[i].name);
        pn_st_read_f32(st, name, gtruth[i], blk.spec[i].ndim, blk.spec[i].shape);
    }
    size_t n = (size_t)B * T * cfg.C;
    round_bf16(x, n);
    float *dy = pn_st_load_f32(st, "dy", NULL, NULL), *y_truth = pn_st_load_f32(st, "y", NULL, NULL);
    float *dx_truth = pn_st_load_f32(st, "dx", NULL, NULL), *dx0 = pn_calloc(n, sizeof(float));
    float *y = pn_malloc(n * sizeof(float)), *dx = pn_calloc(n, sizeof(float));
    cpu_run(&blk, y, dx, x, dy, B, T);

    double worst = 0;
    int wi = 0;
    for (int i = 0; i < blk.n_params; i++) {
        double e = rel_err(blk.grads[i], gtruth[i], (size_t)pn_param_numel(&blk.spec[i]));
        if (e > worst) worst = e, wi = i;
    }
    printf("info %s: bf16 x and weights alone (fp32 CPU block) vs the float64 truth: y %.2e, dx %.2e, worst grad "
           "%.2e (%s)\n",
           file, rel_err(y, y_truth, n), rel_err(dx, dx_truth, n), worst, blk.spec[wi].name);

    char what[160];
    snprintf(what, sizeof what, "fixture %s (B %d T %d C %d)", file, B, T, cfg.C);
    gpu_check(what, &blk, x, dy, y, dx0, dx, gstart, blk.grads, B, T, 1);
    for (int i = 0; i < blk.n_params; i++) free(blk.params[i]), free(blk.grads[i]), free(gstart[i]), free(gtruth[i]);
    free(x), free(dy), free(y_truth), free(dx_truth), free(dx0), free(y), free(dx);
    pn_st_close(st);
}

static void print_act_bytes(void) {
    // The 2B JetBlock of Jet-Nemotron (C 1536, H 12, K 96, V 256) at B·T = 32768.
    pn_block_cfg cfg = {.C = 1536, .H = 12, .K = 96, .V = 256, .conv_size = 4, .gen_reduction = 8};
    pn_block blk;
    pn_block_setup(&blk, pn_block_type_find("jetblock"), &cfg);
    const pn_cblock_type *t = pn_cblock_type_find("jetblock");
    size_t ab = t->act_bytes(&blk.cfg, 8, 4096);
    printf("jetblock C 1536 H 12 K 96 V 256: act_bytes %.1f MiB at B·T = 32768 (%.0f bytes per token)\n",
           ab / 1048576.0, ab / 32768.0);
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_block_delta: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.sm_major, info.sm_minor, info.multiprocessors,
           info.total_mem / 1073741824.0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    print_act_bytes();

    if (wanted("jetblock")) {
        test_random("jetblock", 1, 1, 64, 2, 64, 128);
        test_random("jetblock", 2, 63, 96, 2, 96, 256);
        test_random("jetblock", 3, 64, 64, 1, 128, 128);
        test_random("jetblock", 1, 130, 80, 2, 40, 48);
        test_random("jetblock", 2, 130, 128, 3, 64, 64);
        test_random("jetblock", 3, 3000, 64, 1, 64, 64);  // kernel generator in 2 sequence groups
    }
    if (wanted("gated_deltanet")) {
        test_random("gated_deltanet", 1, 1, 64, 2, 64, 128);
        test_random("gated_deltanet", 2, 64, 96, 2, 96, 192);
        test_random("gated_deltanet", 3, 63, 64, 2, 40, 40);
        test_random("gated_deltanet", 1, 130, 128, 1, 128, 256);
    }
    if (wanted("deltanet")) {
        test_random("deltanet", 1, 1, 64, 2, 96, 96);
        test_random("deltanet", 2, 130, 128, 2, 64, 64);
        test_random("deltanet", 1, 63, 96, 3, 40, 40);
        test_random("deltanet", 3, 64, 128, 1, 128, 128);
    }
    if (wanted("fixtures")) {
        pn_block_cfg jet = {.H = 2, .K = 16, .V = 32, .conv_size = 4, .gen_reduction = 8};
        test_fixture("layers/jetblock.safetensors", "jetblock", jet);
        pn_block_cfg gdn = {.H = 2, .K = 16, .V = 32, .conv_size = 4};
        test_fixture("layers/gated_deltanet.safetensors", "gated_deltanet", gdn);
        pn_block_cfg dn = {.H = 2, .K = 32, .V = 32, .conv_size = 4};
        test_fixture("layers/deltanet.safetensors", "deltanet", dn);
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("checks took %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    pn_cuda_sync();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
