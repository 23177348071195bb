// test_cuda_block_elem.c — the fp32 element-wise / per-row CUDA ops of the token-mixer
// blocks (kernels/cuda/pn_cuda_block_elem.h) against their CPU twins (kernels/ops.h,
// blocks/block_util.h; mul and scale are checked against the obvious host loop).
//
// Method:
//  - fresh random inputs for every check (a new Philox stream each time), never zeros;
//    several shapes per op, including one row / one element and sizes that are not a
//    multiple of a warp or a block;
//  - forward outputs are poisoned with 0xFF (NaN) before the op runs, so an element the
//    op forgets to write fails;
//  - gradients accumulate into random start values and the error is measured on the
//    update (got − start vs ref − start), so a forgotten element or an overwrite (=
//    instead of +=) fails too; NULL gradients are exercised (the others must still match);
//  - the in-place forms the blocks use (silu, l2norm, sigmoid with y == x) run in place;
//  - the column reductions (group-norm dw/db, lerp dmu, decay-gate dA_log/ddt_bias) run
//    twice and must be bitwise identical (fixed order, no atomics);
//  - error = ‖gpu − cpu‖ / ‖cpu‖ in double; NaN or Inf anywhere fails.
// Tolerances: both sides are fp32. TOL_ELEM = 1e-5 for element-wise and per-row ops
// (expf / log1pf differ by ≤ 2 ulp between libm and CUDA, row sums of ≤ 256 terms in a
// different order: ~sqrt(256)·2^-24 ≈ 1e-6); TOL_SUM = 1e-4 for the reductions over up to
// 4096 rows (the CPU sums in double, the GPU in fp32 slices: ~sqrt(4096)·2^-24 ≈ 4e-6
// expected, 1e-4 leaves room for same-sign drift); a wrong index shows up as ≥ 1e-2.
// Without a CUDA device the test prints "no CUDA device" and exits 1.
#include "blocks/block_util.h"
#include "core/common.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_block_elem.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "kernels/ops.h"
#include <math.h>
#include <string.h>
#include <time.h>

#define TOL_ELEM 1e-5
#define TOL_SUM 1e-4
#define GPU_TEST_SEED 20251123
#include "gpu_test_util.h"

static float *copy_host(const float *x, size_t n) {
    float *p = pn_malloc((n ? n : 1) * sizeof(float));
    memcpy(p, x, n * sizeof(float));
    return p;
}

static float *poisoned_f32(size_t n) { return dev_poisoned(n * sizeof(float)); }

// Forward output check: GPU buffer vs CPU result.
static void check_out(const float *dev, const float *ref, size_t n, double tol, const char *what) {
    float *got = get_f32(dev, n);
    report(rel_err(got, ref, n), tol, "%s", what);
    free(got);
}

// An accumulating gradient: random start on both sides; check compares the updates.
typedef struct {
    size_t n;
    float *start, *ref, *dev;
} acc;

static acc acc_make(size_t n, int wanted) {
    acc a = {n, NULL, NULL, NULL};
    if (!wanted) return a;
    a.start = rand_host(n, 1.0f);
    a.ref = copy_host(a.start, n);
    a.dev = dev_f32(a.start, n);
    return a;
}

static float *acc_check(acc *a, double tol, const char *what, int keep) {
    if (!a->dev) return NULL;
    float *got = get_f32(a->dev, a->n);
    float *kept = keep ? copy_host(got, a->n) : NULL;
    for (size_t i = 0; i < a->n; i++) got[i] -= a->start[i], a->ref[i] -= a->start[i];
    report(rel_err(got, a->ref, a->n), tol, "%s", what);
    free(got);
    return kept;
}

static void acc_free(acc *a) {
    free(a->start), free(a->ref);
    pn_cuda_free(a->dev);
}

// Reruns into a reset accumulator must reproduce `kept` bitwise.
static void acc_reset(acc *a) {
    if (a->dev) pn_cuda_upload(a->dev, a->start, a->n * sizeof(float));
}
static void acc_same(acc *a, float *kept, const char *what) {
    if (!a->dev) return;
    float *got = get_f32(a->dev, a->n);
    size_t diff = 0;
    for (size_t i = 0; i < a->n; i++) diff += memcmp(&got[i], &kept[i], sizeof(float)) != 0;
    report((double)diff, 0, "%s bitwise repeatable (differing elements)", what);
    free(got), free(kept);
}

// ---------------------------------------------------------------- activations, mul, scale

typedef void (*unary_fn)(float *, const float *, int64_t);

static void test_unary(const char *name, unary_fn gpu, unary_fn cpu, int64_t n, float std, int in_place) {
    float *x = rand_host((size_t)n, std);
    float *ref = pn_malloc((size_t)(n ? n : 1) * sizeof(float));
    cpu(ref, x, n);
    float *dx = dev_f32(x, (size_t)n);
    float *dy = in_place ? dx : poisoned_f32((size_t)n);
    gpu(dy, dx, n);
    char what[128];
    snprintf(what, sizeof what, "%s n %lld std %.0f%s: y", name, (long long)n, std, in_place ? " in place" : "");
    check_out(dy, ref, (size_t)n, TOL_ELEM, what);
    if (!in_place) pn_cuda_free(dy);
    pn_cuda_free(dx);
    free(x), free(ref);
}

static void test_silu_bwd(int64_t n) {
    float *x = rand_host((size_t)n, 4.0f), *dy = rand_host((size_t)n, 1.0f);
    acc dx = acc_make((size_t)n, 1);
    pn_silu_bwd(dx.ref, dy, x, n);
    float *d_x = dev_f32(x, (size_t)n), *d_dy = dev_f32(dy, (size_t)n);
    pn_cuda_silu_bwd(dx.dev, d_dy, d_x, n);
    char what[96];
    snprintf(what, sizeof what, "silu_bwd n %lld: dx +=", (long long)n);
    acc_check(&dx, TOL_ELEM, what, 0);
    acc_free(&dx);
    pn_cuda_free(d_x), pn_cuda_free(d_dy);
    free(x), free(dy);
}

// The bf16-result silu pair: every element within half a bf16 step of the CPU op's
// UNROUNDED fp32 value (|got − ref| ≤ 2^-8 |ref|, which bounds half an ulp of bf16 at
// ref) plus fp32 noise of the expression's terms. The device's expf may differ from the
// host's in the last bits, so where the fp32 value lies next to a rounding midpoint the
// two round to neighbouring bf16 values: compared with the host's ROUNDED value that is a
// whole ulp (up to 2^-7 relative), which an earlier form of this check counted as a miss
// (H100: 3 of 120,000 dx elements, 1 of 77,000). silu'(x) crosses 0 near x = −1.28,
// where 1 + x(1 − s) cancels, hence the noise term. The normalized error against the
// unrounded value is at most one rounding (2^-8; a wrong formula or index is far above).
// The backward writes a (rows, cols) slice of a poisoned (rows, ldx) buffer: the columns
// cols..ldx−1 must keep the poison bits.
static void test_silu_bf16(int64_t rows, int cols, int64_t ldx) {
    const int64_t n = rows * cols;
    float *x = rand_host((size_t)n, 4.0f), *dy = rand_host((size_t)n, 1.0f);
    float *y_ref = pn_malloc((size_t)n * sizeof(float)), *dx_ref = pn_calloc((size_t)n, sizeof(float));
    pn_silu_fwd(y_ref, x, n);
    pn_silu_bwd(dx_ref, dy, x, n);
    float *d_x = dev_f32(x, (size_t)n), *d_dy = dev_f32(dy, (size_t)n);
    pn_bf16 *d_y = dev_poisoned((size_t)n * sizeof(pn_bf16));
    pn_bf16 *d_dx = dev_poisoned((size_t)(rows * ldx) * sizeof(pn_bf16));
    pn_cuda_silu_fwd_bf16(d_y, d_x, n);
    pn_cuda_silu_bwd_bf16(d_dx, ldx, d_dy, d_x, rows, cols);
    int64_t gap_written;
    float *dx_got = get_bf16_rows(d_dx, rows, cols, ldx, &gap_written);
    const char *names[2] = {"y = bf16(silu(x))", "dx = bf16(dy silu'(x)), written"};
    float *refs[2] = {y_ref, dx_ref};
    float *gots[2] = {get_bf16(d_y, (size_t)n), dx_got};
    for (int k = 0; k < 2; k++) {
        int64_t far = 0;
        for (int64_t i = 0; i < n; i++) {
            const float ref = refs[k][i];
            const float terms = k == 0 ? fabsf(x[i]) : fabsf(dy[i]) * (1.0f + fabsf(x[i]));
            if (fabsf(gots[k][i] - ref) <= fabsf(ref) * (1.0f / 256) + 1e-6f * terms + 1e-30f) continue;
            if (!far)
                fprintf(stderr, "  first miss at %lld: got %.9g, fp32 reference %.9g (x %.9g, dy %.9g)\n",
                        (long long)i, gots[k][i], ref, x[i], dy[i]);
            far++;
        }
        const double e = rel_err(gots[k], refs[k], (size_t)n);
        report(far ? INFINITY : e, 1.0 / 256, "silu bf16 %lld x %d (dx row stride %lld): %s (%lld elements over half a bf16 step)",
               (long long)rows, cols, (long long)ldx, names[k], (long long)far);
    }
    report((double)gap_written, 0.0, "silu bf16 %lld x %d: dx columns %d..%lld of each row untouched", (long long)rows,
           cols, cols, (long long)ldx - 1);
    pn_cuda_free(d_x), pn_cuda_free(d_dy), pn_cuda_free(d_y), pn_cuda_free(d_dx);
    free(x), free(dy), free(y_ref), free(dx_ref), free(gots[0]), free(dx_got);
}

static void test_mul(int64_t n, int mask) {
    float *a = rand_host((size_t)n, 1.0f), *b = rand_host((size_t)n, 1.0f), *dy = rand_host((size_t)n, 1.0f);
    float *ref = pn_malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) ref[i] = a[i] * b[i];
    float *d_a = dev_f32(a, (size_t)n), *d_b = dev_f32(b, (size_t)n), *d_dy = dev_f32(dy, (size_t)n);
    float *d_y = poisoned_f32((size_t)n);
    char what[96];
    pn_cuda_mul_fwd(d_y, d_a, d_b, n);
    snprintf(what, sizeof what, "mul_fwd n %lld: y", (long long)n);
    check_out(d_y, ref, (size_t)n, TOL_ELEM, what);
    // y aliasing a (the blocks' in-place gating)
    float *d_a2 = dev_f32(a, (size_t)n);
    pn_cuda_mul_fwd(d_a2, d_a2, d_b, n);
    snprintf(what, sizeof what, "mul_fwd n %lld: y = a in place", (long long)n);
    check_out(d_a2, ref, (size_t)n, TOL_ELEM, what);

    acc da = acc_make((size_t)n, !(mask & 1)), db = acc_make((size_t)n, !(mask & 2));
    for (int64_t i = 0; i < n; i++) {
        if (da.ref) da.ref[i] += dy[i] * b[i];
        if (db.ref) db.ref[i] += dy[i] * a[i];
    }
    pn_cuda_mul_bwd(da.dev, db.dev, d_dy, d_a, d_b, n);
    snprintf(what, sizeof what, "mul_bwd n %lld: da +=", (long long)n);
    acc_check(&da, TOL_ELEM, what, 0);
    snprintf(what, sizeof what, "mul_bwd n %lld: db += (da %s)", (long long)n, da.dev ? "wanted" : "NULL");
    acc_check(&db, TOL_ELEM, what, 0);
    acc_free(&da), acc_free(&db);

    float *d_s = poisoned_f32((size_t)n);
    pn_cuda_scale(d_s, d_a, -0.37f, n);
    for (int64_t i = 0; i < n; i++) ref[i] = -0.37f * a[i];
    snprintf(what, sizeof what, "scale n %lld: y", (long long)n);
    check_out(d_s, ref, (size_t)n, TOL_ELEM, what);
    pn_cuda_scale(d_a2, d_a2, 2.5f, n);  // in place over the a·b values
    for (int64_t i = 0; i < n; i++) ref[i] = 2.5f * (a[i] * b[i]);
    snprintf(what, sizeof what, "scale n %lld: in place", (long long)n);
    check_out(d_a2, ref, (size_t)n, TOL_ELEM, what);

    pn_cuda_free(d_a), pn_cuda_free(d_b), pn_cuda_free(d_dy), pn_cuda_free(d_y), pn_cuda_free(d_a2), pn_cuda_free(d_s);
    free(a), free(b), free(dy), free(ref);
}

static void test_sigmoid_bwd_y(int64_t n) {
    float *a = rand_host((size_t)n, 2.0f), *dbeta = rand_host((size_t)n, 1.0f);
    float *beta = pn_malloc((size_t)n * sizeof(float));
    pn_sigmoid_fwd(beta, a, n);
    acc da = acc_make((size_t)n, 1);
    pn_bu_sigmoid_bwd(da.ref, dbeta, beta, n);
    float *d_beta = dev_f32(beta, (size_t)n), *d_db = dev_f32(dbeta, (size_t)n);
    pn_cuda_sigmoid_bwd_from_y(da.dev, d_db, d_beta, n);
    char what[96];
    snprintf(what, sizeof what, "sigmoid_bwd_from_y n %lld: da +=", (long long)n);
    acc_check(&da, TOL_ELEM, what, 0);
    acc_free(&da);
    pn_cuda_free(d_beta), pn_cuda_free(d_db);
    free(a), free(dbeta), free(beta);
}

// ---------------------------------------------------------------- norms

static void test_l2norm(int64_t N, int D, int in_place) {
    size_t n = (size_t)(N * D);
    float *x = rand_host(n, 1.5f), *dy = rand_host(n, 1.0f);
    float *y = pn_malloc(n * sizeof(float)), *r = pn_malloc((size_t)N * sizeof(float));
    pn_l2norm_fwd(y, r, x, N, D, 1e-6f);
    float *d_x = dev_f32(x, n), *d_r = poisoned_f32((size_t)N);
    float *d_y = in_place ? d_x : poisoned_f32(n);
    pn_cuda_l2norm_fwd(d_y, d_r, d_x, N, D, 1e-6f);
    char what[128];
    snprintf(what, sizeof what, "l2norm_fwd N %lld D %d%s: y", (long long)N, D, in_place ? " in place" : "");
    check_out(d_y, y, n, TOL_ELEM, what);
    snprintf(what, sizeof what, "l2norm_fwd N %lld D %d: rstd", (long long)N, D);
    check_out(d_r, r, (size_t)N, TOL_ELEM, what);

    // backward from the CPU's y and rstd on both sides (isolates the backward)
    float *d_yc = dev_f32(y, n), *d_rc = dev_f32(r, (size_t)N), *d_dy = dev_f32(dy, n);
    acc dx = acc_make(n, 1);
    pn_l2norm_bwd(dx.ref, dy, y, r, N, D);
    pn_cuda_l2norm_bwd(dx.dev, d_dy, d_yc, d_rc, N, D);
    snprintf(what, sizeof what, "l2norm_bwd N %lld D %d: dx +=", (long long)N, D);
    acc_check(&dx, TOL_ELEM, what, 0);
    acc_free(&dx);
    if (!in_place) pn_cuda_free(d_y);
    pn_cuda_free(d_x), pn_cuda_free(d_r), pn_cuda_free(d_yc), pn_cuda_free(d_rc), pn_cuda_free(d_dy);
    free(x), free(dy), free(y), free(r);
}

static void test_groupnorm(int64_t N, int G, int D, int with_wb, int mask) {
    size_t C = (size_t)G * D, n = (size_t)N * C, ng = (size_t)N * G;
    float *x = rand_host(n, 2.0f), *dy = rand_host(n, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += 0.5f;  // a non-zero mean per group
    float *w = with_wb ? rand_host(C, 1.0f) : NULL, *b = with_wb ? rand_host(C, 1.0f) : NULL;
    float *y = pn_malloc(n * sizeof(float)), *mu = pn_malloc(ng * sizeof(float)), *r = pn_malloc(ng * sizeof(float));
    pn_groupnorm_fwd(y, mu, r, x, w, b, N, G, D, 1e-5f);
    float *d_x = dev_f32(x, n), *d_w = w ? dev_f32(w, C) : NULL, *d_b = b ? dev_f32(b, C) : NULL;
    float *d_y = poisoned_f32(n), *d_mu = poisoned_f32(ng), *d_r = poisoned_f32(ng);
    pn_cuda_groupnorm_fwd(d_y, d_mu, d_r, d_x, d_w, d_b, N, G, D, 1e-5f);
    char what[128];
    snprintf(what, sizeof what, "groupnorm_fwd N %lld G %d D %d%s: y", (long long)N, G, D, with_wb ? "" : " (no w, b)");
    check_out(d_y, y, n, TOL_ELEM, what);
    snprintf(what, sizeof what, "groupnorm_fwd N %lld G %d D %d: mean", (long long)N, G, D);
    check_out(d_mu, mu, ng, TOL_ELEM, what);
    snprintf(what, sizeof what, "groupnorm_fwd N %lld G %d D %d: rstd", (long long)N, G, D);
    check_out(d_r, r, ng, TOL_ELEM, what);

    float *d_muc = dev_f32(mu, ng), *d_rc = dev_f32(r, ng), *d_dy = dev_f32(dy, n);
    acc dx = acc_make(n, !(mask & 1)), dw = acc_make(C, !(mask & 2)), db = acc_make(C, !(mask & 4));
    pn_groupnorm_bwd(dx.ref, dw.ref, db.ref, dy, x, w, mu, r, N, G, D);
    pn_cuda_groupnorm_bwd(dx.dev, dw.dev, db.dev, d_dy, d_x, d_w, d_muc, d_rc, N, G, D);
    snprintf(what, sizeof what, "groupnorm_bwd N %lld G %d D %d mask %d: dx +=", (long long)N, G, D, mask);
    acc_check(&dx, TOL_ELEM, what, 0);
    snprintf(what, sizeof what, "groupnorm_bwd N %lld G %d D %d mask %d: dw +=", (long long)N, G, D, mask);
    float *kw = acc_check(&dw, TOL_SUM, what, 1);
    snprintf(what, sizeof what, "groupnorm_bwd N %lld G %d D %d mask %d: db +=", (long long)N, G, D, mask);
    float *kb = acc_check(&db, TOL_SUM, what, 1);
    acc_reset(&dw), acc_reset(&db);
    pn_cuda_groupnorm_bwd(NULL, dw.dev, db.dev, d_dy, d_x, d_w, d_muc, d_rc, N, G, D);
    acc_same(&dw, kw, "groupnorm_bwd dw");
    acc_same(&db, kb, "groupnorm_bwd db");
    acc_free(&dx), acc_free(&dw), acc_free(&db);
    pn_cuda_free(d_x), pn_cuda_free(d_w), pn_cuda_free(d_b), pn_cuda_free(d_y), pn_cuda_free(d_mu), pn_cuda_free(d_r);
    pn_cuda_free(d_muc), pn_cuda_free(d_rc), pn_cuda_free(d_dy);
    free(x), free(dy), free(w), free(b), free(y), free(mu), free(r);
}

// ---------------------------------------------------------------- token shift, lerp

static void test_token_shift(int B, int T, int C, int with_prev) {
    size_t n = (size_t)B * T * C;
    float *x = rand_host(n, 1.0f), *prev = with_prev ? rand_host((size_t)B * C, 1.0f) : NULL;
    float *dd = rand_host(n, 1.0f), *delta = pn_malloc(n * sizeof(float));
    pn_token_shift_fwd(delta, x, prev, B, T, C);
    float *d_x = dev_f32(x, n), *d_p = prev ? dev_f32(prev, (size_t)B * C) : NULL, *d_d = poisoned_f32(n);
    pn_cuda_token_shift_fwd(d_d, d_x, d_p, B, T, C);
    char what[128];
    snprintf(what, sizeof what, "token_shift_fwd B %d T %d C %d%s: delta", B, T, C, with_prev ? " x_prev" : "");
    check_out(d_d, delta, n, TOL_ELEM, what);
    float *d_dd = dev_f32(dd, n);
    acc dx = acc_make(n, 1);
    pn_token_shift_bwd(dx.ref, dd, B, T, C);
    pn_cuda_token_shift_bwd(dx.dev, d_dd, B, T, C);
    snprintf(what, sizeof what, "token_shift_bwd B %d T %d C %d: dx +=", B, T, C);
    acc_check(&dx, TOL_ELEM, what, 0);
    acc_free(&dx);
    pn_cuda_free(d_x), pn_cuda_free(d_p), pn_cuda_free(d_d), pn_cuda_free(d_dd);
    free(x), free(prev), free(dd), free(delta);
}

static void test_lerp(int64_t M, int C, int want_dmu) {
    size_t n = (size_t)M * C;
    float *x = rand_host(n, 1.0f), *delta = rand_host(n, 1.0f), *mu = rand_host((size_t)C, 0.5f);
    float *dxt = rand_host(n, 1.0f), *xt = pn_malloc(n * sizeof(float));
    pn_lerp_fwd(xt, x, delta, mu, M, C);
    float *d_x = dev_f32(x, n), *d_delta = dev_f32(delta, n), *d_mu = dev_f32(mu, (size_t)C);
    float *d_xt = poisoned_f32(n), *d_dxt = dev_f32(dxt, n);
    pn_cuda_lerp_fwd(d_xt, d_x, d_delta, d_mu, M, C);
    char what[128];
    snprintf(what, sizeof what, "lerp_fwd M %lld C %d: xt", (long long)M, C);
    check_out(d_xt, xt, n, TOL_ELEM, what);
    acc dx = acc_make(n, 1), dd = acc_make(n, 1), dmu = acc_make((size_t)C, want_dmu);
    pn_lerp_bwd(dx.ref, dd.ref, dmu.ref, dxt, delta, mu, M, C);
    pn_cuda_lerp_bwd(dx.dev, dd.dev, dmu.dev, d_dxt, d_delta, d_mu, M, C);
    snprintf(what, sizeof what, "lerp_bwd M %lld C %d: dx +=", (long long)M, C);
    acc_check(&dx, TOL_ELEM, what, 0);
    snprintf(what, sizeof what, "lerp_bwd M %lld C %d: ddelta +=", (long long)M, C);
    acc_check(&dd, TOL_ELEM, what, 0);
    snprintf(what, sizeof what, "lerp_bwd M %lld C %d: dmu +=", (long long)M, C);
    float *km = acc_check(&dmu, TOL_SUM, what, 1);
    if (km) {
        acc_reset(&dmu);
        pn_cuda_lerp_bwd(NULL, NULL, dmu.dev, d_dxt, d_delta, d_mu, M, C);
        acc_same(&dmu, km, "lerp_bwd dmu (dx, ddelta NULL)");
    }
    acc_free(&dx), acc_free(&dd), acc_free(&dmu);
    pn_cuda_free(d_x), pn_cuda_free(d_delta), pn_cuda_free(d_mu), pn_cuda_free(d_xt), pn_cuda_free(d_dxt);
    free(x), free(delta), free(mu), free(dxt), free(xt);
}

// ---------------------------------------------------------------- decay gate

static void test_decay(int64_t N, int H, int mask) {
    size_t n = (size_t)N * H;
    float *a = rand_host(n, 3.0f), *dg = rand_host(n, 1.0f);
    float *A_log = rand_host((size_t)H, 1.0f), *dt = rand_host((size_t)H, 1.0f);
    a[0] = 25.0f;  // above softplus's threshold 20 (N ≥ 1): the linear branch
    float *g = pn_malloc(n * sizeof(float));
    pn_bu_decay_fwd(g, a, A_log, dt, N, H);
    float *d_a = dev_f32(a, n), *d_A = dev_f32(A_log, (size_t)H), *d_dt = dev_f32(dt, (size_t)H);
    float *d_g = poisoned_f32(n);
    pn_cuda_decay_gate_fwd(d_g, d_a, d_A, d_dt, N, H);
    char what[128];
    snprintf(what, sizeof what, "decay_gate_fwd N %lld H %d: g", (long long)N, H);
    check_out(d_g, g, n, TOL_ELEM, what);

    float *d_gc = dev_f32(g, n), *d_dg = dev_f32(dg, n);
    acc da = acc_make(n, !(mask & 1)), dA = acc_make((size_t)H, !(mask & 2)), ddt = acc_make((size_t)H, !(mask & 4));
    pn_bu_decay_bwd(da.ref, dA.ref, ddt.ref, dg, g, a, A_log, dt, N, H);
    pn_cuda_decay_gate_bwd(da.dev, dA.dev, ddt.dev, d_dg, d_gc, d_a, d_A, d_dt, N, H);
    snprintf(what, sizeof what, "decay_gate_bwd N %lld H %d mask %d: da +=", (long long)N, H, mask);
    acc_check(&da, TOL_ELEM, what, 0);
    snprintf(what, sizeof what, "decay_gate_bwd N %lld H %d mask %d: dA_log +=", (long long)N, H, mask);
    float *kA = acc_check(&dA, TOL_SUM, what, 1);
    snprintf(what, sizeof what, "decay_gate_bwd N %lld H %d mask %d: ddt_bias +=", (long long)N, H, mask);
    float *kd = acc_check(&ddt, TOL_SUM, what, 1);
    acc_reset(&dA), acc_reset(&ddt);
    pn_cuda_decay_gate_bwd(NULL, dA.dev, ddt.dev, d_dg, d_gc, d_a, d_A, d_dt, N, H);
    acc_same(&dA, kA, "decay_gate_bwd dA_log");
    acc_same(&ddt, kd, "decay_gate_bwd ddt_bias");
    acc_free(&da), acc_free(&dA), acc_free(&ddt);
    pn_cuda_free(d_a), pn_cuda_free(d_A), pn_cuda_free(d_dt), pn_cuda_free(d_g), pn_cuda_free(d_gc);
    pn_cuda_free(d_dg);
    free(a), free(dg), free(A_log), free(dt), free(g);
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_block_elem: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.sm_major, info.sm_minor, info.multiprocessors,
           info.total_mem / 1073741824.0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    const int64_t ns[] = {1, 1000, 65537};
    for (int i = 0; i < 3; i++) {
        int64_t n = ns[i];
        test_unary("silu_fwd", pn_cuda_silu_fwd, pn_silu_fwd, n, 4.0f, 0);
        test_unary("silu_fwd", pn_cuda_silu_fwd, pn_silu_fwd, n, 4.0f, 1);
        test_unary("sigmoid_fwd", pn_cuda_sigmoid_fwd, pn_sigmoid_fwd, n, 8.0f, i == 1);
        test_unary("softplus_fwd", pn_cuda_softplus_fwd, pn_softplus_fwd, n, 12.0f, 0);
        test_unary("logsigmoid_fwd", pn_cuda_logsigmoid_fwd, pn_logsigmoid_fwd, n, 12.0f, 0);
        test_silu_bwd(n);
        test_silu_bf16(1, (int)n, n);
        test_mul(n, i);
        test_sigmoid_bwd_y(n);
    }

    // the backward into a slice of wider rows (one flattened walk over all rows' items):
    // many narrow rows, a width the 256-thread blocks do not divide, one column, a wide
    // slice, and row starts a thread's stride does not divide
    test_silu_bf16(40000, 3, 8);
    test_silu_bf16(77, 1000, 1234);
    test_silu_bf16(5, 1, 2);
    test_silu_bf16(3, 20000, 20011);
    test_silu_bf16(2048, 1152, 1176);  // the vector forms: 8-column items, a slab-like row stride
    test_silu_bf16(1000, 8, 16);
    test_silu_bf16(333, 96, 96);

    test_l2norm(1, 32, 0);
    test_l2norm(77, 40, 0);
    test_l2norm(300, 128, 1);
    test_l2norm(33, 256, 0);
    test_l2norm(1000, 96, 1);

    test_groupnorm(1, 1, 32, 1, 0);
    test_groupnorm(50, 4, 64, 1, 0);
    test_groupnorm(3, 12, 40, 0, 0);
    test_groupnorm(513, 2, 96, 1, 1);
    test_groupnorm(4096, 8, 64, 1, 2);

    test_token_shift(1, 1, 8, 0);
    test_token_shift(1, 1, 8, 1);
    test_token_shift(2, 63, 40, 1);
    test_token_shift(3, 130, 96, 0);

    test_lerp(1, 7, 1);
    test_lerp(130, 40, 1);
    test_lerp(4096, 384, 1);
    test_lerp(77, 96, 0);

    test_decay(1, 1, 0);
    test_decay(130, 12, 0);
    test_decay(4096, 3, 0);
    test_decay(999, 16, 1);
    test_decay(64, 12, 6);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("checks took %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    pn_cuda_sync();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
