// ops_loss.c — token embedding lookup and the mean cross-entropy loss.
//
// The loss is the one number every training step and every placement score
// reduces to, so it is accumulated in double and uses a max-shifted
// log-sum-exp per row: the mean then does not drift with N and large logits
// never overflow. Rows with a negative target are skipped (padding / the last
// position of a sequence), and the mean is over the rows that count.
#include "kernels/ops.h"
#include "core/common.h"
#include <math.h>

void pn_embedding_fwd(float *y, const int64_t *ids, const float *table, int64_t N, int C) {
#pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int64_t n = 0; n < N; n++) memcpy(y + n * C, table + ids[n] * C, (size_t)C * sizeof(float));
}

void pn_embedding_bwd(float *dtable, const float *dy, const int64_t *ids, int64_t N, int C) {
    if (!dtable) return;
    // Serial over rows: repeated ids would race under a row-parallel loop.
    for (int64_t n = 0; n < N; n++) {
        float *d = dtable + ids[n] * C;
        const float *g = dy + n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

double pn_cross_entropy(float *dlogits, const float *logits, const int64_t *targets, int64_t N, int Vocab,
                        float grad_scale) {
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) count += targets[n] >= 0;
    double total = 0.0;
    const double inv = count > 0 ? 1.0 / (double)count : 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (N * Vocab > 65536)
    for (int64_t n = 0; n < N; n++) {
        const float *z = logits + n * Vocab;
        float *dz = dlogits ? dlogits + n * Vocab : NULL;
        int64_t tgt = targets[n];
        if (tgt < 0) {
            if (dz) memset(dz, 0, (size_t)Vocab * sizeof(float));
            continue;
        }
        PN_ASSERT(tgt < Vocab);
        double m = z[0];
        for (int v = 1; v < Vocab; v++) m = z[v] > m ? z[v] : m;
        double s = 0.0;
        for (int v = 0; v < Vocab; v++) s += exp((double)z[v] - m);
        double lse = m + log(s);
        total += lse - (double)z[tgt];
        if (dz) {
            double g = inv * (double)grad_scale;
            for (int v = 0; v < Vocab; v++) dz[v] = (float)(exp((double)z[v] - lse) * g);
            dz[tgt] -= (float)g;
        }
    }
    return total * inv;
}
