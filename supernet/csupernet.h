// csupernet.h — the supernet distillation step on CUDA (`run.device: cuda`).
//
// A pn_csupernet is the device image of a CPU pn_supernet (supernet/supernet.h): the
// same frozen backbone, the same three paths per layer, the same linear-path
// parameters (sn->table, same flat offsets as sn->params), the same loss
// (supernet/distill.h). The CPU supernet stays the owner of configuration, seeding,
// initialisation, sampling and checkpoints; the CUDA image runs the arithmetic:
//  - frozen backbone weights (embeddings, norms, MLPs, pretrained attention, LM head)
//    are uploaded once as bf16;
//  - linear-path parameters live in flat device buffers laid out exactly as
//    sn->params: fp32 masters, their bf16 copies, fp32 gradients, AdamW moments;
//  - every layer's three paths are pn_cblocks (blocks/cblock.h) bound into those
//    buffers (attn / swa point at the frozen attention weights; no gradients);
//  - forward: embedding → per layer RMSNorm, mixer of the subnet's path, residual,
//    RMSNorm, SwiGLU MLP, residual → final RMSNorm (→ LM head when the loss needs
//    logits); the residual stream is fp32 (the norms read it and write the bf16 inputs
//    of the GEMMs and blocks; the mixer and MLP outputs are added into it), the final
//    hidden state for the MSE loss fp32, norms and losses fp32;
//  - the teacher (every layer on path 0) runs once per batch of ids and its final
//    hidden state / logits are cached on the device (same ids → no rerun);
//  - backward: the loss gradient through every layer (frozen weights take no weight
//    gradient, only dx), ADDING grad_scale · dloss/dθ into the device gradients of
//    the linear paths; a subnet with no linear layer skips it (gradient exactly 0).
// Memory: activations the backward needs are kept per layer; the MLP's gate / up
// products (2·B·T·I bf16 per layer) are kept for as many of the top layers as fit and
// recomputed in the backward for the others (pn_csupernet_set_mlp_keep), so a
// Qwen2.5-1.5B-shaped model runs at B·T = 8·4096 on one 80 GB GPU either way.
// Results equal the CPU supernet's within bf16 tolerance (tests/gpu/test_cuda_supernet.c).
#pragma once
#include "supernet/supernet.h"

typedef struct pn_csupernet pn_csupernet;

// Builds the device image of sn (which must outlive it) on the current device and
// uploads the backbone and sn->params. Out of device memory exits 3 naming the sizes.
pn_csupernet *pn_csupernet_create(const pn_supernet *sn);
void pn_csupernet_free(pn_csupernet *cs);

// Host fp32 parameters (sn->n_floats, sn->params layout) → device masters and bf16
// copies. Call after the host parameters changed (a host optimizer step, a load).
void pn_csupernet_upload_params(pn_csupernet *cs, const float *host_params);
// Device masters → host (sn->n_floats floats). Syncs.
void pn_csupernet_download_params(const pn_csupernet *cs, float *host_params);
// Device gradients → host, ADDED (+=) into host_grads (sn->n_floats). Syncs.
void pn_csupernet_add_grads_to_host(const pn_csupernet *cs, float *host_grads);
void pn_csupernet_zero_grads(pn_csupernet *cs);

// One distillation step on host ids (B, T) for subnet s: teacher (cached), student,
// loss per the supernet config, backward ADDING grad_scale · dloss/dθ into the device
// gradients. Returns the loss (syncs); the terms are in *parts when not NULL.
double pn_csupernet_distill_step(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s,
                                 float grad_scale, pn_distill_parts *parts);
// The same loss, forward only.
double pn_csupernet_eval_loss(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s,
                              pn_distill_parts *parts);

// Global L2 norm of the device gradients (fp32 partial sums per block, summed in a
// fixed order: deterministic). Syncs.
double pn_csupernet_grad_norm(pn_csupernet *cs);
// grads *= factor (clipping).
void pn_csupernet_scale_grads(pn_csupernet *cs, float factor);
// One AdamW step on the device over every linear-path parameter (torch.optim.AdamW,
// the update of supernet/optim.c; weight decay only where the table says so); t is
// the step count after the increment. Updates masters and bf16 copies.
void pn_csupernet_adamw_step(pn_csupernet *cs, int64_t t, float lr, float beta1, float beta2, float eps,
                             float weight_decay);

// How many layers keep their MLP gate / up products from the forward for the backward
// (the top ones; the rest recompute them: two GEMMs per layer). layers < 0 = auto (the
// default): after the first backward of each batch shape, as many as fit in the free
// device memory less a reserve. The gradient is the same bits either way.
void pn_csupernet_set_mlp_keep(pn_csupernet *cs, int layers);
// Layers keeping them now (0 before the auto choice was made).
int pn_csupernet_mlp_kept(const pn_csupernet *cs);

// Device bytes held by the image, by part (for `bench train-step` and messages).
typedef struct {
    size_t weights, params, grads, optim, acts, logits;
} pn_csupernet_mem;
pn_csupernet_mem pn_csupernet_memory(const pn_csupernet *cs);

// Forward of subnet s with logits (for tests and evaluation): host_logits (B, T, V)
// fp32 receives the logits (fp32 from the LM-head GEMM). Leaves the teacher cache alone. Syncs.
void pn_csupernet_logits(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s, float *host_logits);
