// trainer.h — the training loop behind `postnas train`, for every mode.
//
// One loop, two kinds of model. What differs between pretraining a backbone
// (next-token loss, every weight trainable) and supernet distillation (linear
// paths trainable, teacher = the frozen backbone) sits behind a small adapter,
// pn_train_model: the trainable parameters as pn_param_ref views, one
// micro-batch step (forward + loss + backward ADDING grad_scale · dloss/dθ), an
// eval loss, and the artefacts written at the end. Everything else — data,
// accumulation, clipping, AdamW, the LR schedule, evaluation, metrics,
// checkpoints and resume — is the loop's, so both modes share one tested path.
//
// Per optimizer step s (0-based; `step` in files counts steps done, s + 1):
//   zero grads; for a in 0..grad_accum-1: next training batch (B, T) from the
//   token loader, model step with grad_scale = 1/grad_accum (so the accumulated
//   gradient is the mean over micro-batches); global norm, clip (train.grad_clip
//   > 0); lr = pn_lr_at(s, steps, warmup, lr, min_lr_ratio); AdamW step (skipped,
//   with a warning, when the norm is not finite).
// Run directory (run.out_dir): config.resolved.yaml, metrics.jsonl (one JSON
// object per logged step: step, loss, lr, grad_norm, tokens_per_s, elapsed; eval
// lines: step, valid_loss, elapsed), ckpt/step_NNNNNN/ (params, AdamW moments,
// sampling RNG, loader position, elapsed time), and at the end model/ (backbone
// mode: HF directory, F32, loadable by pn_backbone_load) or supernet.safetensors
// (supernet mode: the linear-path parameters under their table names). A model
// trained from scratch (model.path "", arch section) is first written with
// random weights to out_dir/init/.
//
// Resume (opts.resume): continues from pn_checkpoint_latest bit-identically on
// the same machine and thread count — same final parameters as a run that was
// never interrupted. The checkpoint's config hash must match: sections run,
// model, arch, data, train and supernet, minus keys that cannot change the
// trained numbers (run.name, run.out_dir, run.threads, run.log_level, data.valid,
// data.tasks_dir, and the eval / checkpoint / logging cadence); metrics.jsonl is
// cut back to the checkpoint's step. Starting WITHOUT resume in a directory that already has checkpoints
// exits 2 rather than mixing two runs.
#pragma once
#include "core/rng.h"
#include "supernet/backbone.h"
#include "supernet/hf_config.h"
#include "supernet/job_config.h"
#include "supernet/optim.h"

// ---------------------------------------------------------------- model adapter

typedef struct pn_train_model pn_train_model;
struct pn_train_model {
    const char *kind;    // "backbone" | "supernet"
    pn_param_ref *refs;  // trainable parameters (owned by the adapter)
    int n_refs;
    int64_t vocab_size;  // token ids must be below this
    // One micro-batch: inputs/targets (B, T) (targets = inputs shifted by one).
    // ADDS grad_scale · dloss/dθ into the refs' gradients; returns the loss.
    // rng is the trainer's (checkpointed) stream, for random subnets.
    double (*step)(pn_train_model *m, const int64_t *inputs, const int64_t *targets, int B, int T, float grad_scale,
                   pn_rng *rng);
    // The same loss without gradients, deterministic (no rng).
    double (*eval)(pn_train_model *m, const int64_t *inputs, const int64_t *targets, int B, int T);
    // Final artefacts into out_dir (the trained model).
    void (*save)(pn_train_model *m, const char *out_dir);
    void (*free)(pn_train_model *m);
    void *impl;
};

// Backbone mode: every parameter of bb trains on the next-token loss. Takes
// ownership of bb (freed with the adapter).
pn_train_model *pn_train_model_backbone(pn_backbone *bb);
// Supernet mode: builds pn_supernet on bb (bb owned by the adapter). The eval loss
// is the distillation loss of the all-linear subnet (every layer on path 2).
pn_train_model *pn_train_model_supernet(pn_backbone *bb, const pn_supernet_config *cfg, uint64_t seed);
void pn_train_model_free(pn_train_model *m);

// ---------------------------------------------------------------- the loop

typedef struct {
    int resume;         // continue from the newest checkpoint in run.out_dir/ckpt
    int64_t stop_at;    // > 0: stop after this many steps (checkpoint there) though the
                        // schedule runs to train.steps — an "interrupted" run for tests
    const char *where;  // the config file, named in error messages ("" = "config")
} pn_train_opts;

typedef struct {
    int64_t steps_done;   // steps completed when the loop returned
    double last_loss;     // training loss of the last step (NaN if none ran)
    double valid_loss;    // last validation loss (NaN if none)
    double tokens_per_s;  // mean training throughput of this process
} pn_train_result;

// Builds the model c describes (loading model.path, or writing out_dir/init from
// arch), wraps it for c->train.mode, and runs pn_trainer_run_model. Bad config
// or data exits 2. Returns 0.
int pn_train_run(const pn_job_config *c, const pn_train_opts *opts, pn_train_result *res);
// The loop on a given model (taken over: freed before returning).
int pn_trainer_run_model(const pn_job_config *c, pn_train_model *m, const pn_train_opts *opts, pn_train_result *res);

// The HF config of an arch section (model_type, derived head_dim/kv heads, qkv
// bias for qwen2, qk-norm for qwen3). Inconsistent values exit 2 naming
// `where` and the key.
void pn_arch_to_hf(const pn_arch_config *a, pn_hf_config *out, const char *where);
// Hash of the resolved config over the keys that change the numbers (see above).
uint64_t pn_train_config_hash(const pn_job_config *c);
