// distill.h — the supernet's distillation losses and their gradients.
//
// The student is a subnet of the supernet, the teacher the original model (every
// layer on its pretrained attention). Both are compared on the same token ids:
//  - MSE on the final hidden state hidden(L) (after the final RMSNorm):
//      MSE = mean over all N·C elements of (s − t)²;  dMSE/ds = 2 (s − t) / (N·C).
//  - KL(teacher ‖ student) on the logits at temperature τ, over every position:
//      p = softmax(l_t / τ), q = softmax(l_s / τ) over the vocabulary,
//      KL = τ² · mean over the N rows of Σ_v p_v (log p_v − log q_v);
//      dKL/dl_s = τ (q − p) / N.
//    The τ² factor is Hinton et al.'s (2015): it keeps the gradient magnitude of
//    the soft targets independent of τ, so a temperature change needs no new lr.
//  - "both" = mse_weight · MSE + kl_weight · KL. The single modes are unweighted
//    (the weights only mix the two terms).
// Sums run in double; rows are independent, so they are split across threads
// (per-row results are summed in row order: the value does not depend on the
// thread count). Gradient outputs are OVERWRITTEN, multiplied by `scale` (so a
// trainer can fold 1/grad_accum in), and may be NULL when not needed.
#pragma once
#include "supernet/job_config.h"

// MSE of s against t over n elements; ds (n) = scale · dMSE/ds when not NULL.
double pn_distill_mse(float *ds, const float *s, const float *t, int64_t n, float scale);

// KL(teacher ‖ student) at temperature tau (> 0) over N rows of V logits, τ²-scaled;
// dls (N, V) = scale · dKL/dls when not NULL.
double pn_distill_kl(float *dls, const float *ls, const float *lt, int64_t N, int V, double tau, float scale);

// Which terms a mode uses.
int pn_distill_needs_hidden(int mode);  // mode: pn_distill
int pn_distill_needs_logits(int mode);

typedef struct {
    double mse;    // unweighted MSE (0 when unused)
    double kl;     // unweighted, τ²-scaled KL (0 when unused)
    double total;  // the loss the mode optimises
} pn_distill_parts;

// The loss of cfg->distill from the student's (s_*) and teacher's (t_*) final hidden
// states (N, C) and logits (N, V); the arrays a mode does not use may be NULL.
// dhidden (N, C) and dlogits (N, V) receive scale · d total / d s_* when the mode
// uses them and they are not NULL.
pn_distill_parts pn_distill_loss(const pn_supernet_config *cfg, const float *s_hidden, const float *t_hidden,
                                 const float *s_logits, const float *t_logits, int64_t N, int C, int V,
                                 float *dhidden, float *dlogits, float scale);
