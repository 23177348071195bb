// optim.h — AdamW, the LR schedule and gradient clipping / accumulation helpers.
//
// The optimizer sees trainable parameters as a list of flat views
// (pn_param_ref): name, weights, gradients, element count, and whether weight
// decay applies (the blocks mark A_log, dt_bias, norms and biases as no-decay).
// AdamW keeps its moments m, v in fp32, one contiguous buffer each, laid out in
// ref order, so a checkpoint can save them per parameter.
//
// The update is torch.optim.AdamW (single-tensor path, fp32) step for step:
//   t += 1
//   w *= 1 − lr·wd                         (decoupled decay, BEFORE the Adam step; decay params only)
//   m  = m + (1 − β1)·(g − m)              (torch: exp_avg.lerp_(g, 1 − β1))
//   v  = β2·v + (1 − β2)·g²
//   w -= lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)
// i.e. w -= lr · m̂ / (sqrt(v̂) + eps) with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t).
// Scalars (bias corrections, step size) are computed in double, as torch does
// with Python floats; the per-element arithmetic is fp32.
//
// Determinism: every element update is independent, and the one reduction (the
// global gradient norm) is summed per fixed-size block in a fixed order, so
// results do not depend on the OpenMP thread count.
#pragma once
#include "core/common.h"

typedef struct {
    const char *name;   // safetensors name, e.g. "model.layers.3.mixer.q_proj.weight"
    float *w;           // (n) weights, updated in place
    float *g;           // (n) gradients
    int64_t n;
    int weight_decay;   // 1 = decoupled decay applies
    // Optional logical shape, saved in checkpoints and checked on load.
    // ndim 0 means "1-D of n elements"; otherwise the product must equal n.
    int ndim;
    int64_t shape[4];
} pn_param_ref;

// Defaults. β2 = 0.95 (not torch's 0.999): the usual choice for LLM training,
// where a shorter second-moment memory reacts faster to loss spikes.
#define PN_ADAMW_BETA1 0.9f
#define PN_ADAMW_BETA2 0.95f
#define PN_ADAMW_EPS 1e-8f

typedef struct {
    float lr;            // set by the trainer before each step (pn_lr_at)
    float beta1, beta2, eps;
    float weight_decay;  // applied only to refs with weight_decay set
    int64_t t;           // number of steps taken (torch's state["step"])
    int n_params;
    int64_t *offset;     // (n_params + 1) start of each param in m, v
    float *m, *v;        // (offset[n_params]) first and second moments, ref order
} pn_adamw;

// Allocates zeroed m, v for these refs; β1, β2, eps take the defaults above.
void pn_adamw_init(pn_adamw *opt, const pn_param_ref *refs, int n_refs, float lr, float weight_decay);
void pn_adamw_free(pn_adamw *opt);
// One AdamW step over all refs (the same list, in the same order, as at init).
void pn_adamw_step(pn_adamw *opt, const pn_param_ref *refs, int n_refs);

// Learning rate for 0-based `step` (the same formula as transformers'
// get_cosine_with_min_lr_schedule_with_warmup with num_cycles = 0.5):
//   step < warmup:  lr · step / warmup                       (0 at step 0, lr at step = warmup)
//   otherwise:      p = clamp((step − warmup) / max(1, total − warmup), 0, 1)
//                   lr · (r + (1 − r) · 0.5 · (1 + cos(π·p)))   with r = min_lr_ratio
// so the rate is lr at step = warmup and lr·r at step ≥ total.
float pn_lr_at(int64_t step, int64_t total, int64_t warmup, float lr, float min_lr_ratio);

// Global L2 norm of all gradients (accumulated in double, blockwise in a fixed
// order). When coef = max_norm / (norm + 1e-6) is < 1, every gradient is scaled
// by coef (torch.nn.utils.clip_grad_norm_). Returns the pre-clip norm; a
// non-finite norm leaves the gradients untouched (coef < 1 is false for NaN),
// so the caller should test the result and skip the step.
double pn_grad_clip(const pn_param_ref *refs, int n_refs, double max_norm);
// Global L2 norm without clipping.
double pn_grad_norm(const pn_param_ref *refs, int n_refs);
void pn_grads_zero(const pn_param_ref *refs, int n_refs);
// g *= s, e.g. s = 1/accum_steps to average accumulated micro-batch gradients.
void pn_grads_scale(const pn_param_ref *refs, int n_refs, float s);
// Checks that a ref's optional shape is consistent with n (internal error if not)
// and writes it as (ndim, shape) with the 1-D default filled in.
int pn_param_ref_shape(const pn_param_ref *r, int64_t shape[4]);
