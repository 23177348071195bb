// test_cuda_norm_f32.c — the fp32-residual-stream ops (kernels/cuda/norm.cu) and
// the fp32 MSE (kernels/cuda/distill_loss.cu) against their CPU twins.
//
// What is compared (normalized error ‖gpu − cpu‖ / ‖cpu‖ in double; NaN fails; every
// output poisoned with 0xFF = NaN before the run):
//  - pn_cuda_rmsnorm_f32_fwd vs pn_rmsnorm_fwd on fp32 x (off the bf16 grid, as a
//    residual stream is) and a bf16-grid weight: the bf16 y (tol 1e-2), the fp32 y32
//    and rstd (tol 1e-4); a second call with y32 = rstd = NULL must give the same y
//    bits (exactly), and the bf16 y must be y32 rounded (exactly);
//  - pn_cuda_rmsnorm_f32_bwd vs pn_rmsnorm_bwd from the CPU's rstd: dx and dw are
//    ADDED into random initial values (tol 1e-4); dx alone with dw NULL;
//  - pn_cuda_distill_mse_f32_async vs supernet/distill.c's pn_distill_mse: the loss
//    from the per-chunk partials and the gradient (tol 1e-4).
// Shapes cover the vector path (D % 8 == 0), the scalar path (D = 100), no weight,
// one row, and D = 8192. Without a CUDA device the test prints "no CUDA device" and
// exits 1.
#include "core/common.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_distill.h"
#include "kernels/cuda/pn_cuda_norm_f32.h"
#include "kernels/ops.h"
#include "supernet/distill.h"
#include <math.h>

#define TOL_BF16 1e-2
#define TOL_F32 1e-4
#include "gpu_test_util.h"

static float *copy_host(const float *x, size_t n) {
    float *p = pn_malloc((n ? n : 1) * sizeof(float));
    memcpy(p, x, n * sizeof(float));
    return p;
}

// Largest |a − b| (NaN → infinity): for the checks that must be exact.
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        m = fmax(m, fabs((double)a[i] - (double)b[i]));
    }
    return m;
}

static void test_rmsnorm(int64_t N, int D, int with_w) {
    const float eps = 1e-6f;
    const size_t n = (size_t)N * D;
    float *x = rand_host(n, 2.0f);  // fp32, not on the bf16 grid
    float *d_x = dev_f32(x, n);
    float *w = NULL;
    pn_bf16 *d_w = NULL;
    if (with_w) {
        w = rand_host((size_t)D, 0.3f);
        for (int d = 0; d < D; d++) w[d] += 1.0f;
        round_bf16(w, (size_t)D);
        d_w = dev_bf16(w, (size_t)D);
    }
    float *y_ref = pn_malloc(n * sizeof(float)), *rstd_ref = pn_malloc((size_t)N * sizeof(float));
    pn_rmsnorm_fwd(y_ref, rstd_ref, x, w, N, D, eps);

    pn_bf16 *d_y = dev_poisoned(n * sizeof(pn_bf16));
    float *d_y32 = dev_poisoned(n * sizeof(float)), *d_rstd = dev_poisoned((size_t)N * sizeof(float));
    pn_cuda_rmsnorm_f32_fwd(d_y, d_y32, d_rstd, d_x, d_w, N, D, eps);
    float *y = get_bf16(d_y, n), *y32 = get_f32(d_y32, n), *rstd = get_f32(d_rstd, (size_t)N);
    report(rel_err(y, y_ref, n), TOL_BF16, "rmsnorm_f32_fwd N=%lld D=%d w=%d y bf16", (long long)N, D, with_w);
    report(rel_err(y32, y_ref, n), TOL_F32, "rmsnorm_f32_fwd N=%lld D=%d w=%d y32 fp32", (long long)N, D, with_w);
    report(rel_err(rstd, rstd_ref, (size_t)N), TOL_F32, "rmsnorm_f32_fwd N=%lld D=%d w=%d rstd fp32", (long long)N, D,
           with_w);
    float *y32r = copy_host(y32, n);
    round_bf16(y32r, n);
    report(max_abs_diff(y, y32r, n), 0.0, "rmsnorm_f32_fwd N=%lld D=%d w=%d y == bf16(y32) exactly", (long long)N, D,
           with_w);
    // bf16 output only (the supernet's layer norms): the same bits
    pn_bf16 *d_y2 = dev_poisoned(n * sizeof(pn_bf16));
    pn_cuda_rmsnorm_f32_fwd(d_y2, NULL, NULL, d_x, d_w, N, D, eps);
    float *y2 = get_bf16(d_y2, n);
    report(max_abs_diff(y2, y, n), 0.0, "rmsnorm_f32_fwd N=%lld D=%d w=%d y only (y32, rstd NULL): same bits",
           (long long)N, D, with_w);

    // Backward from the CPU's rstd, so both sides see identical inputs.
    pn_cuda_upload(d_rstd, rstd_ref, (size_t)N * sizeof(float));
    float *g = rand_host(n, 1.0f), *dx0 = rand_host(n, 1.0f), *dw0 = rand_host((size_t)D, 1.0f);
    float *d_g = dev_f32(g, n), *d_dx = dev_f32(dx0, n), *d_dw = dev_f32(dw0, (size_t)D);
    float *dx_ref = copy_host(dx0, n), *dw_ref = copy_host(dw0, (size_t)D);
    pn_rmsnorm_bwd(dx_ref, dw_ref, g, x, w, rstd_ref, N, D);
    pn_cuda_rmsnorm_f32_bwd(d_dx, d_dw, d_g, d_x, d_w, d_rstd, N, D);
    float *dx = get_f32(d_dx, n), *dw = get_f32(d_dw, (size_t)D);
    report(rel_err(dx, dx_ref, n), TOL_F32, "rmsnorm_f32_bwd N=%lld D=%d w=%d dx fp32 +=", (long long)N, D, with_w);
    report(rel_err(dw, dw_ref, (size_t)D), TOL_F32, "rmsnorm_f32_bwd N=%lld D=%d w=%d dw fp32 +=", (long long)N, D,
           with_w);
    // dx alone (dw NULL), the supernet's use
    pn_cuda_upload(d_dx, dx0, n * sizeof(float));
    memcpy(dx_ref, dx0, n * sizeof(float));
    pn_rmsnorm_bwd(dx_ref, NULL, g, x, w, rstd_ref, N, D);
    pn_cuda_rmsnorm_f32_bwd(d_dx, NULL, d_g, d_x, d_w, d_rstd, N, D);
    free(dx);
    dx = get_f32(d_dx, n);
    report(rel_err(dx, dx_ref, n), TOL_F32, "rmsnorm_f32_bwd N=%lld D=%d w=%d dx fp32 += (dw NULL)", (long long)N, D,
           with_w);

    free(x), free(w), free(y_ref), free(rstd_ref), free(y), free(y32), free(rstd), free(y32r), free(y2);
    free(g), free(dx0), free(dw0), free(dx_ref), free(dw_ref), free(dx), free(dw);
    pn_cuda_free(d_x), pn_cuda_free(d_w), pn_cuda_free(d_y), pn_cuda_free(d_y32), pn_cuda_free(d_rstd);
    pn_cuda_free(d_y2), pn_cuda_free(d_g), pn_cuda_free(d_dx), pn_cuda_free(d_dw);
}

static void test_mse_f32(int64_t n) {
    const float scale = 0.75f;
    float *s = rand_host((size_t)n, 1.0f), *t = rand_host((size_t)n, 1.0f);
    for (int64_t i = 0; i < n; i++) t[i] = s[i] + 0.1f * t[i];  // close, as a student and its teacher
    float *ds_ref = pn_malloc((size_t)n * sizeof(float));
    const double ref = pn_distill_mse(ds_ref, s, t, n, scale);
    const int64_t chunks = (n + PN_CUDA_MSE_CHUNK - 1) / PN_CUDA_MSE_CHUNK;
    float *d_s = dev_f32(s, (size_t)n), *d_t = dev_f32(t, (size_t)n), *d_ds = dev_poisoned((size_t)n * sizeof(float));
    double *d_part = dev_poisoned((size_t)chunks * sizeof(double));
    pn_cuda_distill_mse_f32_async(d_ds, d_part, d_s, d_t, n, (float)(2.0 * (double)scale / (double)n));
    double *part = pn_malloc((size_t)chunks * sizeof(double));
    pn_cuda_download(part, d_part, (size_t)chunks * sizeof(double));
    double sum = 0;
    for (int64_t c = 0; c < chunks; c++) sum += part[c];
    const double got = sum / (double)n;
    const double e = isfinite(got) ? fabs(got - ref) / fmax(fabs(ref), 1e-300) : INFINITY;
    report(e, TOL_F32, "distill_mse_f32 n=%lld loss %.9g vs pn_distill_mse %.9g", (long long)n, got, ref);
    float *ds = get_f32(d_ds, (size_t)n);
    report(rel_err(ds, ds_ref, (size_t)n), TOL_F32, "distill_mse_f32 n=%lld gradient fp32 (overwritten)", (long long)n);
    // no gradient wanted: the partials only
    pn_cuda_memset(d_part, 0xFF, (size_t)chunks * sizeof(double));
    pn_cuda_distill_mse_f32_async(NULL, d_part, d_s, d_t, n, 1.0f);
    pn_cuda_download(part, d_part, (size_t)chunks * sizeof(double));
    double sum2 = 0;
    for (int64_t c = 0; c < chunks; c++) sum2 += part[c];
    report(sum2 == sum ? 0.0 : INFINITY, 0.0, "distill_mse_f32 n=%lld without gradient: same partial sums",
           (long long)n);
    free(s), free(t), free(ds_ref), free(part), free(ds);
    pn_cuda_free(d_s), pn_cuda_free(d_t), pn_cuda_free(d_ds), pn_cuda_free(d_part);
}

int main(void) {
    if (pn_cuda_device_count() == 0) {
        printf("no CUDA device\n");
        return 1;
    }
    test_rmsnorm(1, 64, 1);
    test_rmsnorm(37, 896, 1);
    test_rmsnorm(129, 1536, 1);  // Qwen2.5-1.5B's hidden size
    test_rmsnorm(300, 100, 1);   // D not a multiple of 8: scalar path
    test_rmsnorm(513, 128, 0);   // no weight
    test_rmsnorm(5, 8192, 1);


    test_mse_f32(1);
    test_mse_f32(5000);
    test_mse_f32(3 * PN_CUDA_MSE_CHUNK + 17);

    printf("test_cuda_norm_f32: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
