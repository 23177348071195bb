// cblock_test_util.h — helpers the CUDA block tests share (test_cuda_block_attn.c,
// test_cuda_block_gla.c): a host block with random bf16-grid parameters, the error of
// an ADDED gradient (got − start against the CPU's), and a warm-up GEMM so cuBLASLt's
// workspace is in the scratch arena before a test measures what a block leaves there.
// Include after gpu_test_util.h.
#pragma once
#include "blocks/block.h"
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
