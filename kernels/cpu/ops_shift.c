// ops_shift.c — RWKV token shift and the lerp that mixes it in (CPU reference).
//
// delta_t = x_{t−1} − x_t, with x_{−1} taken from the decode state x_prev (zeros
// when NULL), so a sequence split into pieces shifts exactly as one piece. The
// state is a constant of the piece: backward gives no gradient to it.
#include "kernels/ops.h"

void pn_token_shift_fwd(float *delta, const float *x, const float *x_prev, int B, int T, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * C > 65536)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        int b = (int)(bt / T), t = (int)(bt % T);
        const float *cur = x + bt * C;
        const float *prev = t > 0 ? cur - C : (x_prev ? x_prev + (int64_t)b * C : NULL);
        for (int c = 0; c < C; c++) delta[bt * C + c] = (prev ? prev[c] : 0.0f) - cur[c];
    }
}

void pn_token_shift_bwd(float *dx, const float *ddelta, int B, int T, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * C > 65536)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        int t = (int)(bt % T);
        for (int c = 0; c < C; c++) {
            float g = -ddelta[bt * C + c];
            if (t + 1 < T) g += ddelta[(bt + 1) * C + c];
            dx[bt * C + c] += g;
        }
    }
}

void pn_lerp_fwd(float *xt, const float *x, const float *delta, const float *mu, int64_t M, int C) {
#pragma omp parallel for schedule(static) if (M * C > 65536)
    for (int64_t m = 0; m < M; m++)
        for (int i = 0; i < C; i++) xt[m * C + i] = x[m * C + i] + delta[m * C + i] * mu[i];
}

void pn_lerp_bwd(float *dx, float *ddelta, float *dmu, const float *dxt, const float *delta, const float *mu, int64_t M,
                 int C) {
#pragma omp parallel for schedule(static) if (M * C > 65536)
    for (int64_t m = 0; m < M; m++)
        for (int i = 0; i < C; i++) {
            dx[m * C + i] += dxt[m * C + i];
            ddelta[m * C + i] += dxt[m * C + i] * mu[i];
        }
    // dmu sums over rows in a fixed order: deterministic for any thread count
    if (dmu)
        for (int64_t m = 0; m < M; m++)
            for (int i = 0; i < C; i++) dmu[i] += dxt[m * C + i] * delta[m * C + i];
}
