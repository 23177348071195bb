// optim.c — AdamW, LR schedule, gradient clipping (see optim.h for the math).
//
// Elementwise work is an OpenMP loop over elements (only for large parameters,
// where the fork/join pays). The gradient norm is the one reduction: each
// parameter is cut into fixed blocks of NORM_BLOCK elements, each block's sum of
// squares is taken in double by whichever thread owns it, and the block sums are
// added in index order — the result is the same for any thread count.
#include "supernet/optim.h"
#include <math.h>

#define NORM_BLOCK 8192          // elements per partial sum of the gradient norm
#define OMP_MIN_ELEMS 32768      // below this an element loop runs on one thread

int pn_param_ref_shape(const pn_param_ref *r, int64_t shape[4]) {
    if (r->ndim == 0) {
        shape[0] = r->n;
        return 1;
    }
    if (r->ndim < 0 || r->ndim > 4)
        pn_die_internal(__FILE__, __LINE__, "param %s: ndim %d outside 0..4", r->name, r->ndim);
    int64_t numel = 1;
    for (int d = 0; d < r->ndim; d++) {
        shape[d] = r->shape[d];
        numel *= r->shape[d];
    }
    if (numel != r->n)
        pn_die_internal(__FILE__, __LINE__, "param %s: shape has %lld elements but n = %lld", r->name,
                        (long long)numel, (long long)r->n);
    return r->ndim;
}

void pn_adamw_init(pn_adamw *opt, const pn_param_ref *refs, int n_refs, float lr, float weight_decay) {
    memset(opt, 0, sizeof *opt);
    opt->lr = lr;
    opt->beta1 = PN_ADAMW_BETA1;
    opt->beta2 = PN_ADAMW_BETA2;
    opt->eps = PN_ADAMW_EPS;
    opt->weight_decay = weight_decay;
    opt->n_params = n_refs;
    opt->offset = pn_malloc(((size_t)n_refs + 1) * sizeof(int64_t));
    opt->offset[0] = 0;
    for (int i = 0; i < n_refs; i++) {
        PN_ASSERT(refs[i].n >= 0);
        int64_t shape[4];
        (void)pn_param_ref_shape(&refs[i], shape);
        opt->offset[i + 1] = opt->offset[i] + refs[i].n;
    }
    size_t total = (size_t)opt->offset[n_refs];
    // calloc(0) may return NULL; keep the pointers valid for empty groups.
    opt->m = pn_calloc(total ? total : 1, sizeof(float));
    opt->v = pn_calloc(total ? total : 1, sizeof(float));
}

void pn_adamw_free(pn_adamw *opt) {
    free(opt->offset);
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

void pn_adamw_step(pn_adamw *opt, const pn_param_ref *refs, int n_refs) {
    PN_ASSERT(n_refs == opt->n_params);
    opt->t++;
    const double t = (double)opt->t;
    const double bc1 = 1.0 - pow((double)opt->beta1, t);
    const double bc2 = 1.0 - pow((double)opt->beta2, t);
    const float step_size = (float)((double)opt->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float one_m_b1 = (float)(1.0 - (double)opt->beta1);
    const float one_m_b2 = (float)(1.0 - (double)opt->beta2);
    const float b2 = opt->beta2, eps = opt->eps;
    const float decay_mul = (float)(1.0 - (double)opt->lr * (double)opt->weight_decay);
    for (int p = 0; p < n_refs; p++) {
        const pn_param_ref *r = &refs[p];
        PN_ASSERT(r->n == opt->offset[p + 1] - opt->offset[p]);
        float *w = r->w;
        const float *g = r->g;
        float *m = opt->m + opt->offset[p];
        float *v = opt->v + opt->offset[p];
        const int decay = r->weight_decay && opt->weight_decay != 0.0f;
        const int64_t n = r->n;
#pragma omp parallel for schedule(static) if (n >= OMP_MIN_ELEMS)
        for (int64_t i = 0; i < n; i++) {
            float wi = w[i];
            if (decay) wi *= decay_mul;
            float gi = g[i];
            float mi = m[i] + one_m_b1 * (gi - m[i]);
            float vi = b2 * v[i] + one_m_b2 * gi * gi;
            float denom = sqrtf(vi) / bc2_sqrt + eps;
            w[i] = wi - step_size * (mi / denom);
            m[i] = mi;
            v[i] = vi;
        }
    }
}

float pn_lr_at(int64_t step, int64_t total, int64_t warmup, float lr, float min_lr_ratio) {
    PN_ASSERT(step >= 0 && warmup >= 0);
    if (step < warmup) return (float)((double)lr * (double)step / (double)warmup);
    double span = (double)PN_MAX(total - warmup, (int64_t)1);
    double p = (double)(step - warmup) / span;
    if (p > 1.0) p = 1.0;
    double r = (double)min_lr_ratio;
    return (float)((double)lr * (r + (1.0 - r) * 0.5 * (1.0 + cos(M_PI * p))));
}

double pn_grad_norm(const pn_param_ref *refs, int n_refs) {
    int64_t max_blocks = 0;
    for (int p = 0; p < n_refs; p++) max_blocks = PN_MAX(max_blocks, (refs[p].n + NORM_BLOCK - 1) / NORM_BLOCK);
    double *part = pn_malloc((size_t)PN_MAX(max_blocks, (int64_t)1) * sizeof(double));
    double sum = 0.0;
    for (int p = 0; p < n_refs; p++) {
        const float *g = refs[p].g;
        const int64_t n = refs[p].n;
        const int64_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
#pragma omp parallel for schedule(static) if (n >= OMP_MIN_ELEMS)
        for (int64_t b = 0; b < nb; b++) {
            int64_t lo = b * NORM_BLOCK, hi = PN_MIN(lo + NORM_BLOCK, n);
            double s = 0.0;
            for (int64_t i = lo; i < hi; i++) s += (double)g[i] * (double)g[i];
            part[b] = s;
        }
        for (int64_t b = 0; b < nb; b++) sum += part[b];
    }
    free(part);
    return sqrt(sum);
}

void pn_grads_scale(const pn_param_ref *refs, int n_refs, float s) {
    for (int p = 0; p < n_refs; p++) {
        float *g = refs[p].g;
        const int64_t n = refs[p].n;
#pragma omp parallel for schedule(static) if (n >= OMP_MIN_ELEMS)
        for (int64_t i = 0; i < n; i++) g[i] *= s;
    }
}

double pn_grad_clip(const pn_param_ref *refs, int n_refs, double max_norm) {
    double norm = pn_grad_norm(refs, n_refs);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) pn_grads_scale(refs, n_refs, (float)coef);
    return norm;
}

void pn_grads_zero(const pn_param_ref *refs, int n_refs) {
    for (int p = 0; p < n_refs; p++)
        if (refs[p].n > 0) memset(refs[p].g, 0, (size_t)refs[p].n * sizeof(float));
}
