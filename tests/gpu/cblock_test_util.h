// cblock_test_util.h — helpers the CUDA block tests share (test_cuda_block_attn.c,
// test_cuda_block_gla.c): a host block with random bf16-grid parameters, the error of
// an ADDED gradient (got − start against the CPU's), a warm-up GEMM so cuBLASLt's
// workspace is in the scratch arena before a test measures what a block leaves there, and
// the one forward + backward case both tests run (cbt_run_case), with hooks for their
// block-specific checks. Include after gpu_test_util.h.
#pragma once
#include "blocks/block.h"
#include "blocks/cblock.h"
#include "cblock_resid_check.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include <string.h>

// A CPU block of `type` with parameters on the bf16 grid (both sides see the same
// weights): matrices N(0, 1/fan_in), norms 1 + N(0, 0.2), the rest N(0, 0.1); no grads.
static inline void host_block_new(pn_block *h, const char *type, const pn_block_cfg *cfg) {
    const pn_block_type *t = pn_block_type_find(type);
    PN_ASSERT(t);
    pn_block_setup(h, t, cfg);
    for (int i = 0; i < h->n_params; i++) {
        const pn_param_spec *s = &h->spec[i];
        const size_t n = (size_t)pn_param_numel(s);
        float *p;
        if (s->ndim == 2) {
            p = rand_host(n, 1.0f / sqrtf((float)s->shape[1]));
        } else if (strstr(s->name, "norm")) {
            p = rand_host(n, 0.2f);
            for (size_t j = 0; j < n; j++) p[j] += 1.0f;
        } else {
            p = rand_host(n, 0.1f);
        }
        round_bf16(p, n);
        h->params[i] = p;
        h->grads[i] = NULL;
    }
}

static inline void host_block_free(pn_block *h) {
    for (int i = 0; i < h->n_params; i++) {
        free(h->params[i]);
        free(h->grads[i]);
        h->params[i] = h->grads[i] = NULL;
    }
}

// Normalized error of (got − base) against want: for gradients ADDED onto a start value.
static inline double diff_err(const float *got, const float *base, const float *want, size_t n) {
    float *d = pn_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) d[i] = got[i] - base[i];
    double e = rel_err(d, want, n);
    free(d);
    return e;
}

// cuBLASLt's workspace lives in the scratch arena from the first GEMM on; one tiny GEMM
// first, so a per-case "block scratch returned" check sees only the block's own buffers.
static inline void warm_gemm(void) {
    float h[64];
    for (int i = 0; i < 64; i++) h[i] = 0.5f;
    pn_bf16 *a = dev_bf16(h, 64), *y = dev_poisoned(64 * sizeof(pn_bf16));
    pn_cuda_linear_fwd(y, PN_CUDA_BF16, a, a, NULL, 8, 8, 8);
    pn_cuda_sync();
    pn_cuda_free(a);
    pn_cuda_free(y);
}

// A parameter gradient's check: g the device values after the backward, g0 its random start,
// h->grads[i] the CPU's; `what` names the case. NULL in cbt_run_case: the plain update check.
typedef void (*cbt_param_check)(const pn_block *h, int T, int i, const float *g, const float *g0, size_t n,
                                const char *what);

// The plain check of an ADDED parameter gradient against the CPU's.
static inline void cbt_param_plain(const pn_block *h, int i, const float *g, const float *g0, size_t n,
                                   const char *what) {
    report(diff_err(g, g0, h->grads[i], n), TOL_BF16, "%s: d %s (added)", what, h->spec[i].name);
}

// Exact value 0 on both sides holds only rounding noise: only finiteness is checked.
static inline void cbt_param_finite(int i, const pn_block *h, const float *g, const float *g0, size_t n,
                                    const char *what, const char *why) {
    report(diff_err(g, g0, g0, n) < INFINITY ? 0.0 : 1.0, 0.0, "%s: d %s finite (%s)", what, h->spec[i].name, why);
}

// One forward + backward of the host block's CUDA twin against the CPU block: y, dx (added
// onto a random start; only checked finite when dx_finite_why says why its exact value is
// noise), every parameter gradient (added onto random starts) through `check`, and that the
// block returns all the scratch it took. Activations, outputs and y are poisoned first.
static void cbt_run_case(pn_block *h, int B, int T, int trainable, const char *label, cbt_param_check check,
                         const char *dx_finite_why) {
    const pn_block_cfg *c = &h->cfg;
    const size_t N = (size_t)B * T, nx = N * c->C;
    char what[200];
    snprintf(what, sizeof what, "%s %s B%d T%d %s", h->type->name, label, B, T, trainable ? "train" : "frozen");

    float *x = rand_host(nx, 1.0f), *dy = rand_host(nx, 1.0f), *dx0 = rand_host(nx, 0.5f);
    round_bf16(x, nx);
    round_bf16(dy, nx);

    // CPU reference.
    float *act = pn_calloc(h->type->act_floats(c, B, T) + 1, sizeof(float));
    float *scratch = pn_calloc(h->type->scratch_floats(c, B, T) + 1, sizeof(float));
    float *y_cpu = pn_calloc(nx + 1, sizeof(float)), *dx_cpu = pn_calloc(nx + 1, sizeof(float));
    for (int i = 0; i < h->n_params; i++)
        h->grads[i] = trainable ? pn_calloc((size_t)pn_param_numel(&h->spec[i]) + 1, sizeof(float)) : NULL;
    h->type->forward(h, y_cpu, x, B, T, act, scratch, NULL);
    h->type->backward(h, dx_cpu, dy, x, B, T, act, scratch, NULL);

    // GPU.
    pn_cblock cb;
    pn_cblock_alloc_owned(&cb, h, trainable);
    float *g0[PN_BLOCK_MAX_PARAMS] = {0};
    if (trainable)
        for (int i = 0; i < cb.n_params; i++) {
            const size_t n = (size_t)pn_param_numel(&cb.spec[i]);
            g0[i] = rand_host(n, 0.5f);
            pn_cuda_upload(cb.grads[i], g0[i], n * sizeof(float));
        }
    const size_t abytes = cb.type->act_bytes(&cb.cfg, B, T);
    pn_bf16 *xd = dev_bf16(x, nx), *yd = dev_poisoned(nx * sizeof(pn_bf16));
    void *actd = dev_poisoned(abytes);
    float *dyd = dev_f32(dy, nx), *dxd = dev_f32(dx0, nx);
    pn_cuda_sync();
    const size_t scratch0 = pn_cuda_mem_in_use(PN_CUDA_MEM_SCRATCH);
    cb.type->forward(&cb, yd, xd, B, T, actd, NULL);
    float *y_gpu = get_bf16(yd, nx);
    report(rel_err(y_gpu, y_cpu, nx), TOL_BF16, "%s: y", what);
    cbt_check_resid_form(&cb, xd, B, T, actd, y_cpu, (pn_cblock_ctx){0}, what);
    cb.type->backward(&cb, dxd, dyd, xd, B, T, actd, NULL);
    float *dx_gpu = get_f32(dxd, nx);
    if (dx_finite_why)
        report(diff_err(dx_gpu, dx0, dx0, nx) < INFINITY ? 0.0 : 1.0, 0.0, "%s: dx finite (%s)", what, dx_finite_why);
    else
        report(diff_err(dx_gpu, dx0, dx_cpu, nx), TOL_BF16, "%s: dx (added)", what);
    for (int i = 0; i < cb.n_params && trainable; i++) {
        const size_t n = (size_t)pn_param_numel(&cb.spec[i]);
        float *g = get_f32(cb.grads[i], n);
        if (check)
            check(h, T, i, g, g0[i], n, what);
        else
            cbt_param_plain(h, i, g, g0[i], n, what);
        free(g);
        free(g0[i]);
    }
    report(pn_cuda_mem_in_use(PN_CUDA_MEM_SCRATCH) == scratch0 ? 0.0 : 1.0, 0.0, "%s: block scratch returned", what);

    pn_cuda_free(xd);
    pn_cuda_free(yd);
    pn_cuda_free(actd);
    pn_cuda_free(dyd);
    pn_cuda_free(dxd);
    pn_cblock_free_owned(&cb);
    for (int i = 0; i < h->n_params; i++) {
        free(h->grads[i]);
        h->grads[i] = NULL;
    }
    free(x), free(dy), free(dx0), free(act), free(scratch), free(y_cpu), free(dx_cpu), free(y_gpu), free(dx_gpu);
}
