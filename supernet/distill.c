// distill.c — see distill.h. Per-row partial sums go into a double array and are
// added in row order afterwards, so OpenMP scheduling never changes the result.
#include "supernet/distill.h"
#include <math.h>

// Rows of the MSE split: enough work per row for threads, fixed so results are
// independent of the thread count.
#define MSE_CHUNK 4096

double pn_distill_mse(float *ds, const float *s, const float *t, int64_t n, float scale) {
    PN_ASSERT(n > 0);
    const int64_t chunks = (n + MSE_CHUNK - 1) / MSE_CHUNK;
    double *part = pn_malloc((size_t)chunks * sizeof(double));
    const double g = 2.0 * (double)scale / (double)n;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t lo = c * MSE_CHUNK, hi = PN_MIN(n, lo + MSE_CHUNK);
        double acc = 0;
        for (int64_t i = lo; i < hi; i++) {
            double d = (double)s[i] - (double)t[i];
            acc += d * d;
            if (ds) ds[i] = (float)(g * d);
        }
        part[c] = acc;
    }
    double sum = 0;
    for (int64_t c = 0; c < chunks; c++) sum += part[c];
    free(part);
    return sum / (double)n;
}

double pn_distill_kl(float *dls, const float *ls, const float *lt, int64_t N, int V, double tau, float scale) {
    PN_ASSERT(N > 0 && V > 0 && tau > 0);
    double *part = pn_malloc((size_t)N * sizeof(double));
    const double inv_tau = 1.0 / tau;
    const double g = (double)scale * tau / (double)N;  // τ² · (1/τ) / N
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
        const float *a = ls + r * V, *b = lt + r * V;
        // log-sum-exp of both rows at temperature τ, max-shifted.
        double ma = -INFINITY, mb = -INFINITY;
        for (int v = 0; v < V; v++) {
            ma = fmax(ma, (double)a[v] * inv_tau);
            mb = fmax(mb, (double)b[v] * inv_tau);
        }
        double za = 0, zb = 0;
        for (int v = 0; v < V; v++) {
            za += exp((double)a[v] * inv_tau - ma);
            zb += exp((double)b[v] * inv_tau - mb);
        }
        const double lza = ma + log(za), lzb = mb + log(zb);
        double kl = 0;
        for (int v = 0; v < V; v++) {
            const double logp = (double)b[v] * inv_tau - lzb;  // teacher
            const double logq = (double)a[v] * inv_tau - lza;  // student
            const double p = exp(logp);
            // p log p → 0 as p → 0; exp underflow gives p = 0 exactly, skip it.
            if (p > 0) kl += p * (logp - logq);
            if (dls) dls[r * V + v] = (float)(g * (exp(logq) - p));
        }
        part[r] = kl;
    }
    double sum = 0;
    for (int64_t r = 0; r < N; r++) sum += part[r];
    free(part);
    return tau * tau * sum / (double)N;
}

int pn_distill_needs_hidden(int mode) { return mode == PN_DISTILL_MSE || mode == PN_DISTILL_BOTH; }

int pn_distill_needs_logits(int mode) { return mode == PN_DISTILL_KL || mode == PN_DISTILL_BOTH; }

pn_distill_parts pn_distill_loss(const pn_supernet_config *cfg, const float *s_hidden, const float *t_hidden,
                                 const float *s_logits, const float *t_logits, int64_t N, int C, int V,
                                 float *dhidden, float *dlogits, float scale) {
    pn_distill_parts out = {0, 0, 0};
    const int both = cfg->distill == PN_DISTILL_BOTH;
    if (pn_distill_needs_hidden(cfg->distill)) {
        PN_ASSERT(s_hidden && t_hidden);
        const double w = both ? cfg->mse_weight : 1.0;
        out.mse = pn_distill_mse(dhidden, s_hidden, t_hidden, N * C, (float)(w * scale));
        out.total += w * out.mse;
    }
    if (pn_distill_needs_logits(cfg->distill)) {
        PN_ASSERT(s_logits && t_logits);
        const double w = both ? cfg->kl_weight : 1.0;
        out.kl = pn_distill_kl(dlogits, s_logits, t_logits, N, V, cfg->temperature, (float)(w * scale));
        out.total += w * out.kl;
    }
    return out;
}
