// test_ops_lerp.c — the RWKV token-shift lerp xt = x + δ·μ: forward against a
// plain loop, backward against central differences of sum(xt · dxt) in double.
#include "core/rng.h"
#include "kernels/ops.h"
#include "test_util.h"

int main(void) {
    enum { B = 2, T = 5, C = 7, M = B * T };
    float x[M * C], dl[M * C], mu[C], xt[M * C], dxt[M * C];
    pn_fill_normal(x, M * C, 0, 1, 3, 1);
    pn_fill_normal(mu, C, 0, 1, 3, 2);
    pn_fill_normal(dxt, M * C, 0, 1, 3, 3);
    pn_token_shift_fwd(dl, x, NULL, B, T, C);
    pn_lerp_fwd(xt, x, dl, mu, M, C);
    int ok = 1;
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            int t = m % T;
            double prev = t ? x[(m - 1) * C + c] : 0.0;
            double want = x[m * C + c] + (prev - x[m * C + c]) * mu[c];
            if (fabs(xt[m * C + c] - want) > 1e-6) ok = 0;
        }
    CHECK(ok, "lerp of token shift forward");
    // analytic gradients through shift + lerp
    float dx[M * C] = {0}, ddl[M * C] = {0}, dmu[C] = {0};
    pn_lerp_bwd(dx, ddl, dmu, dxt, dl, mu, M, C);
    pn_token_shift_bwd(dx, ddl, B, T, C);
    // loss(x, mu) = Σ xt·dxt is bilinear, so a central difference is exact up to rounding
    const double eps = 1e-2;
    for (int trial = 0; trial < 2; trial++) {
        float *p = trial ? mu : x, *g = trial ? dmu : dx;
        int n = trial ? C : M * C;
        double num = 0, ana = 0;
        for (int i = 0; i < n; i++) {
            float dir = pn_normal_at(9, (uint64_t)trial, (uint64_t)i);
            ana += (double)g[i] * dir;
        }
        double lp = 0, lm = 0;
        for (int s = -1; s <= 1; s += 2) {
            float save[M * C];
            memcpy(save, p, (size_t)n * sizeof(float));
            for (int i = 0; i < n; i++) p[i] += (float)(s * eps) * pn_normal_at(9, (uint64_t)trial, (uint64_t)i);
            pn_token_shift_fwd(dl, x, NULL, B, T, C);
            pn_lerp_fwd(xt, x, dl, mu, M, C);
            double l = 0;
            for (int i = 0; i < M * C; i++) l += (double)xt[i] * dxt[i];
            if (s < 0) lm = l; else lp = l;
            memcpy(p, save, (size_t)n * sizeof(float));
        }
        num = (lp - lm) / (2 * eps);
        double rel = fabs(num - ana) / fmax(fabs(ana), 1e-6);
        CHECK(rel < 1e-3, "%s gradient: analytic %g vs numeric %g (rel %.2e)", trial ? "mu" : "x", ana, num, rel);
    }
    return test_summary("test_ops_lerp");
}
