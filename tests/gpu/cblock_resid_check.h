// cblock_resid_check.h — the check of a CUDA block's residual form (blocks/cblock.h:
// ctx->resid_in / resid_out), shared by the block tests (header-only; include after
// gpu_test_util.h).
//
// Runs the block's forward once more with a random fp32 residual r, resid_out poisoned
// (NaN) and y poisoned, and checks: resid_out − r against the CPU block's y (TOL_BF16: the
// product is unrounded here, so it is at least as close as the bf16 y), r unchanged
// (bitwise), y untouched (every element still the poison bits). The forward rewrites act
// with the same values, so a backward after it sees what it saw before.
#pragma once
#include "blocks/cblock.h"

static inline void cbt_check_resid_form(const pn_cblock *cb, const pn_bf16 *xd, int B, int T, void *actd,
                                        const float *y_cpu, pn_cblock_ctx base, const char *what) {
    const size_t n = (size_t)B * T * cb->cfg.C;
    // its own Philox stream (not g_stream: the cases after this one draw what they drew before)
    float *r = pn_malloc((n ? n : 1) * sizeof(float));
    pn_fill_normal(r, n, 0.0f, 1.0f, GPU_TEST_SEED ^ 0x7e51d, (uint64_t)n);
    float *rd = dev_f32(r, n), *outd = dev_poisoned((n ? n : 1) * sizeof(float));
    pn_bf16 *yd = dev_poisoned((n ? n : 1) * sizeof(pn_bf16));
    pn_cblock_ctx ctx = base;
    ctx.resid_in = rd;
    ctx.resid_out = outd;
    cb->type->forward(cb, yd, xd, B, T, actd, &ctx);
    float *out = get_f32(outd, n), *r_after = get_f32(rd, n);
    uint16_t *ybits = pn_malloc((n ? n : 1) * sizeof(uint16_t));
    pn_cuda_download(ybits, yd, n * sizeof(uint16_t));
    size_t y_written = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] -= r[i];
        y_written += ybits[i] != 0xFFFF;
    }
    report(rel_err(out, y_cpu, n), TOL_BF16, "%s: residual form, resid_out - resid_in vs y", what);
    report(rel_err(r_after, r, n) + (double)y_written, 0.0,
           "%s: residual form leaves resid_in and y alone (%zu y elements written)", what, y_written);
    free(r), free(out), free(r_after), free(ybits);
    pn_cuda_free(rd), pn_cuda_free(outd), pn_cuda_free(yd);
}
