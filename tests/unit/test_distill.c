// test_distill.c — the distillation losses: values against hand computations,
// gradients against float64-accumulated central differences.
#include "core/rng.h"
#include "supernet/distill.h"
#include "test_util.h"

static void test_mse_hand(void) {
    const float s[4] = {1, 2, 3, 4}, t[4] = {0, 2, 5, 4};
    float ds[4];
    double l = pn_distill_mse(ds, s, t, 4, 1.0f);
    // (1 + 0 + 4 + 0) / 4; d = 2 (s − t) / 4
    CHECK(l == 1.25, "mse value %.17g (want 1.25)", l);
    const float want[4] = {0.5f, 0.0f, -1.0f, 0.0f};
    CHECK(memcmp(ds, want, sizeof want) == 0, "mse grad %g %g %g %g", ds[0], ds[1], ds[2], ds[3]);
    pn_distill_mse(ds, s, t, 4, 0.25f);
    CHECK(ds[0] == 0.125f && ds[2] == -0.25f, "mse grad scale: %g %g", ds[0], ds[2]);
    CHECK(pn_distill_mse(NULL, s, s, 4, 1.0f) == 0.0, "mse of identical inputs");
}

static void test_kl_hand(void) {
    // p = (3/4, 1/4), q = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2).
    const double want1 = 0.75 * log(1.5) + 0.25 * log(0.5);
    float ls[2] = {0, 0}, lt[2] = {(float)log(3.0), 0};
    double k1 = pn_distill_kl(NULL, ls, lt, 1, 2, 1.0, 1.0f);
    CHECK(fabs(k1 - want1) < 1e-7, "kl tau=1: %.10g vs %.10g", k1, want1);
    // The same distributions at τ = 2 (teacher logits doubled): τ² · KL.
    float lt2[2] = {(float)(2 * log(3.0)), 0};
    double k2 = pn_distill_kl(NULL, ls, lt2, 1, 2, 2.0, 1.0f);
    CHECK(fabs(k2 - 4 * want1) < 4e-7, "kl tau=2 (tau^2 scaling): %.10g vs %.10g", k2, 4 * want1);
    // dKL/dls = τ (q − p) / N: (1/2 − 3/4, 1/2 − 1/4) at τ = 1.
    float d[2];
    pn_distill_kl(d, ls, lt, 1, 2, 1.0, 1.0f);
    CHECK(fabs(d[0] + 0.25) < 1e-7 && fabs(d[1] - 0.25) < 1e-7, "kl grad hand: %g %g", d[0], d[1]);
}

static void test_kl_zero_positive(void) {
    enum { N = 5, V = 37 };
    float a[N * V], b[N * V], d[N * V];
    pn_fill_normal(a, N * V, 0, 3, 11, 1);
    pn_fill_normal(b, N * V, 0, 3, 11, 2);
    for (double tau = 0.5; tau <= 4.0; tau *= 2) {
        double k0 = pn_distill_kl(d, a, a, N, V, tau, 1.0f);
        int gz = 1;
        for (int i = 0; i < N * V; i++) gz &= d[i] == 0.0f;
        CHECK(k0 == 0.0 && gz, "kl(identical) = %g (tau %g), zero grad %d", k0, tau, gz);
        double k1 = pn_distill_kl(NULL, a, b, N, V, tau, 1.0f);
        CHECK(k1 > 0.0, "kl(different) = %g > 0 (tau %g)", k1, tau);
    }
    // Shift invariance per row (softmax): adding a constant changes nothing.
    float sh[N * V];
    for (int i = 0; i < N * V; i++) sh[i] = a[i] + 1.5f;
    double ka = pn_distill_kl(NULL, a, b, N, V, 1.0, 1.0f), ks = pn_distill_kl(NULL, sh, b, N, V, 1.0, 1.0f);
    CHECK(fabs(ka - ks) < 1e-6 * ka, "kl shift invariance %.10g vs %.10g", ka, ks);
}

// Central difference of the mode's loss along a random direction d of the
// student's hidden (and logits), against Σ grad · d.
static void fd_mode(int mode, double tau) {
    enum { N = 6, C = 16, V = 29 };
    pn_supernet_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.distill = mode;
    cfg.mse_weight = 0.7;
    cfg.kl_weight = 1.3;
    cfg.temperature = tau;
    static float sh[N * C], th[N * C], sl[N * V], tl[N * V], dh[N * C], dl[N * V], uh[N * C], ul[N * V];
    static float ph[N * C], pl[N * V];
    pn_fill_normal(sh, N * C, 0, 1, 5, 1);
    pn_fill_normal(th, N * C, 0, 1, 5, 2);
    pn_fill_normal(sl, N * V, 0, 2, 5, 3);
    pn_fill_normal(tl, N * V, 0, 2, 5, 4);
    pn_fill_normal(uh, N * C, 0, 1, 5, 5);
    pn_fill_normal(ul, N * V, 0, 1, 5, 6);
    const float scale = 0.5f;
    pn_distill_parts p0 = pn_distill_loss(&cfg, sh, th, sl, tl, N, C, V, dh, dl, scale);
    double an = 0;
    if (pn_distill_needs_hidden(mode))
        for (int i = 0; i < N * C; i++) an += (double)dh[i] * uh[i];
    if (pn_distill_needs_logits(mode))
        for (int i = 0; i < N * V; i++) an += (double)dl[i] * ul[i];
    an /= scale;
    const double h = 1e-2;
    double lp[2];
    for (int sgn = 0; sgn < 2; sgn++) {
        double e = sgn ? -h : h;
        for (int i = 0; i < N * C; i++) ph[i] = (float)((double)sh[i] + e * uh[i]);
        for (int i = 0; i < N * V; i++) pl[i] = (float)((double)sl[i] + e * ul[i]);
        lp[sgn] = pn_distill_loss(&cfg, ph, th, pl, tl, N, C, V, NULL, NULL, 1.0f).total;
    }
    double fd = (lp[0] - lp[1]) / (2 * h);
    double rel = fabs(fd - an) / fmax(fabs(fd), 1e-12);
    printf("  distill FD mode %s tau %.1f: loss %.6f  analytic %.8f  fd %.8f  rel err %.2e\n",
           pn_distill_names[mode], tau, p0.total, an, fd, rel);
    CHECK(rel < 1e-4, "FD mode %d tau %g: analytic %.10g fd %.10g rel %.3g", mode, tau, an, fd, rel);
    if (mode == PN_DISTILL_BOTH) {
        pn_supernet_config c2 = cfg;
        c2.distill = PN_DISTILL_MSE;
        double m = pn_distill_loss(&c2, sh, th, NULL, NULL, N, C, V, NULL, NULL, 1).total;
        c2.distill = PN_DISTILL_KL;
        double k = pn_distill_loss(&c2, NULL, NULL, sl, tl, N, C, V, NULL, NULL, 1).total;
        CHECK(fabs(p0.total - (0.7 * m + 1.3 * k)) < 1e-12 * fabs(p0.total) && p0.mse == m && p0.kl == k,
              "both = 0.7 mse + 1.3 kl: %.15g vs %.15g", p0.total, 0.7 * m + 1.3 * k);
    }
}

int main(void) {
    test_mse_hand();
    test_kl_hand();
    test_kl_zero_positive();
    fd_mode(PN_DISTILL_MSE, 1.0);
    fd_mode(PN_DISTILL_KL, 1.0);
    fd_mode(PN_DISTILL_KL, 2.0);
    fd_mode(PN_DISTILL_BOTH, 1.5);
    return test_summary("test_distill");
}
