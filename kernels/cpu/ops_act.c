// ops_act.c — elementwise activations and their backward (CPU reference).
//
// Numerically safe forms: sigmoid via exp(-|x|), softplus with torch's
// threshold (x > 20 → x), logsigmoid = -softplus(-x).
#include "kernels/ops.h"
#include <math.h>

static inline float act_sigmoid(float x) {
    if (x >= 0) {
        float e = expf(-x);
        return 1.0f / (1.0f + e);
    }
    float e = expf(x);
    return e / (1.0f + e);
}

static inline float act_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void pn_silu_fwd(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * act_sigmoid(x[i]);
}

void pn_silu_bwd(float *dx, const float *dy, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float s = act_sigmoid(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void pn_sigmoid_fwd(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = act_sigmoid(x[i]);
}

void pn_softplus_fwd(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = act_softplus(x[i]);
}

void pn_logsigmoid_fwd(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = -act_softplus(-x[i]);
}

void pn_swiglu_fwd(float *y, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] = gate[i] * act_sigmoid(gate[i]) * up[i];
}

void pn_swiglu_bwd(float *dgate, float *dup, const float *dy, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float s = act_sigmoid(gate[i]);
        float silu = gate[i] * s;
        if (dup) dup[i] += dy[i] * silu;
        if (dgate) dgate[i] += dy[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
    }
}

void pn_add(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void pn_add_inplace(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
