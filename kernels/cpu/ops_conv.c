// ops_conv.c — causal depthwise short convolutions (CPU reference).
//
// Convention (BLOCKS.md): y_t[d] = Σ_{j=0}^{W−1} w[d, j] · u_{t−W+1+j}[d]; tap W−1
// multiplies the current token. u is x extended to the left by the W−1 rows of
// x_prev (a decode/prefill state; zeros when NULL), so a sequence processed in
// pieces equals the sequence processed at once. The static conv has one kernel
// per channel (nn.Conv1d (D, 1, W)); the dynamic conv (JetBlock) has one per token.
// Backward never writes into x_prev: the state is a constant of the piece.
#include "kernels/ops.h"
#include <string.h>

// u_{t}[d] for t in [−(W−1), T): x row t, or x_prev row (W−1)+t before the start.
static inline float conv_u(const float *xb, const float *pb, int t, int d, int D, int W) {
    if (t >= 0) return xb[(int64_t)t * D + d];
    if (!pb) return 0.0f;
    return pb[(int64_t)(W - 1 + t) * D + d];
}

void pn_conv_causal_fwd(float *y, const float *x, const float *w, const float *bias, const float *x_prev, int B, int T,
                        int D, int W) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D * W > 65536)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        int b = (int)(bt / T), t = (int)(bt % T);
        const float *xb = x + (int64_t)b * T * D;
        const float *pb = x_prev ? x_prev + (int64_t)b * (W - 1) * D : NULL;
        float *yr = y + bt * D;
        for (int d = 0; d < D; d++) {
            float acc = bias ? bias[d] : 0.0f;
            for (int j = 0; j < W; j++) acc += w[(int64_t)d * W + j] * conv_u(xb, pb, t - W + 1 + j, d, D, W);
            yr[d] = acc;
        }
    }
}

void pn_conv_causal_bwd(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                        const float *x_prev, int B, int T, int D, int W) {
    if (dx) {
        // x_s feeds y_t through tap j = s − t + W − 1, i.e. t = s + W − 1 − j.
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D * W > 65536)
        for (int64_t bs = 0; bs < (int64_t)B * T; bs++) {
            int b = (int)(bs / T), s = (int)(bs % T);
            for (int d = 0; d < D; d++) {
                float acc = 0;
                for (int j = 0; j < W; j++) {
                    int t = s + W - 1 - j;
                    if (t < T) acc += w[(int64_t)d * W + j] * dy[((int64_t)b * T + t) * D + d];
                }
                dx[bs * D + d] += acc;
            }
        }
    }
    if (dw || dbias) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D * W > 65536)
        for (int d = 0; d < D; d++) {
            double ab = 0;
            for (int64_t bt = 0; bt < (int64_t)B * T; bt++) ab += dy[bt * D + d];
            if (dbias) dbias[d] += (float)ab;
            if (!dw) continue;
            for (int j = 0; j < W; j++) {
                double aw = 0;
                for (int b = 0; b < B; b++) {
                    const float *xb = x + (int64_t)b * T * D;
                    const float *pb = x_prev ? x_prev + (int64_t)b * (W - 1) * D : NULL;
                    for (int t = 0; t < T; t++)
                        aw += (double)dy[((int64_t)b * T + t) * D + d] * conv_u(xb, pb, t - W + 1 + j, d, D, W);
                }
                dw[(int64_t)d * W + j] += (float)aw;
            }
        }
    }
}

void pn_dynconv_causal_fwd(float *y, const float *x, const float *kern, const float *x_prev, int B, int T, int D,
                           int W) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D * W > 65536)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        int b = (int)(bt / T), t = (int)(bt % T);
        const float *xb = x + (int64_t)b * T * D;
        const float *pb = x_prev ? x_prev + (int64_t)b * (W - 1) * D : NULL;
        const float *kr = kern + bt * D * W;  // (D, W) for this token
        for (int d = 0; d < D; d++) {
            float acc = 0;
            for (int j = 0; j < W; j++) acc += kr[(int64_t)d * W + j] * conv_u(xb, pb, t - W + 1 + j, d, D, W);
            y[bt * D + d] = acc;
        }
    }
}

void pn_dynconv_causal_bwd(float *dx, float *dkern, const float *dy, const float *x, const float *kern,
                           const float *x_prev, int B, int T, int D, int W) {
    // Each token owns its kernel, so dkern needs no reduction: parallel over tokens.
    if (dkern) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D * W > 65536)
        for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
            int b = (int)(bt / T), t = (int)(bt % T);
            const float *xb = x + (int64_t)b * T * D;
            const float *pb = x_prev ? x_prev + (int64_t)b * (W - 1) * D : NULL;
            for (int d = 0; d < D; d++) {
                float g = dy[bt * D + d];
                for (int j = 0; j < W; j++)
                    dkern[(bt * D + d) * W + j] += g * conv_u(xb, pb, t - W + 1 + j, d, D, W);
            }
        }
    }
    if (dx) {
#pragma omp parallel for schedule(static) if ((int64_t)B * T * D * W > 65536)
        for (int64_t bs = 0; bs < (int64_t)B * T; bs++) {
            int b = (int)(bs / T), s = (int)(bs % T);
            for (int d = 0; d < D; d++) {
                float acc = 0;
                for (int j = 0; j < W; j++) {
                    int t = s + W - 1 - j;
                    if (t >= T) continue;
                    int64_t bt = (int64_t)b * T + t;
                    acc += kern[(bt * D + d) * W + j] * dy[bt * D + d];
                }
                dx[bs * D + d] += acc;
            }
        }
    }
}

void pn_conv_state_update(float *x_prev, const float *x, int B, int T, int D, int W) {
    int R = W - 1;  // rows kept
    if (R <= 0 || T <= 0) return;
    for (int b = 0; b < B; b++) {
        float *pb = x_prev + (int64_t)b * R * D;
        const float *xb = x + (int64_t)b * T * D;
        if (T >= R) {
            memcpy(pb, xb + (int64_t)(T - R) * D, (size_t)R * D * sizeof(float));
        } else {
            // Keep the newest R − T old rows, then append all T new ones.
            memmove(pb, pb + (int64_t)T * D, (size_t)(R - T) * D * sizeof(float));
            memcpy(pb + (int64_t)(R - T) * D, xb, (size_t)T * D * sizeof(float));
        }
    }
}
