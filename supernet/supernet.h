// supernet.h — the PostNAS once-for-all supernet (step 1 of the method).
//
// Built on a loaded, frozen pn_backbone (every backbone gradient slot NULL). Each
// layer i gets three candidate token mixers (paths):
//   0 PN_PATH_ATTN    the pretrained full attention — the layer's own `attn` block;
//   1 PN_PATH_SWA     its sliding-window form: a "swa" block (window = swa_window)
//                     whose parameter pointers are the attn block's (no copy, frozen);
//   2 PN_PATH_LINEAR  a trainable linear-attention block of type cfg.block.
// A subnet picks one path per layer; applying it points each layer's `mixer` at
// the chosen block. Only the linear paths train: their parameters live in one
// flat buffer (`params`) and their gradients in another (`grads`), both in layer
// order then block-spec order, and `table` lists them with names
// "model.layers.{i}.linear_attn.{param}" (export renames them to Jet-Nemotron's
// `self_attn.` names), shapes, pointers and the spec's weight-decay flag.
//
// Linear-path init: the block's own init (pn_block_init_params with the run seed;
// cfg.layer_idx = i so layers differ), or with linear_init = copy_attn, after that
// init, each of q_proj.weight, k_proj.weight, v_proj.weight, o_proj.weight of the
// pretrained attention is copied into the linear block's parameter of the SAME
// name when the shapes are identical (biases and q/k norms are never copied:
// linear blocks have none); the count copied is logged.
//
// rwkv7: its value residual makes the first rwkv7 layer of a pass different (no
// v_lora). Every layer keeps the full parameter set (v_lora included); a second
// pn_block per layer with first_rwkv = 1 points at the same buffers, and apply
// uses it for the lowest layer on the linear path. That block's forward also
// copies v_first into the backbone's context buffer, which is what the
// backbone's backward hands the later rwkv7 layers (see supernet.c).
//
// Distillation (supernet/distill.h): the teacher is the backbone with every layer
// on path 0; its final hidden state (and logits for KL) are cached for the last
// ids (same B, T, contents), so the teacher runs once per batch. A distill step
// then runs the student subnet, the loss, and a backward that ADDS
// grad_scale · dloss/dθ into `grads` (micro-batches accumulate; zero with
// pn_supernet_zero_grads). Layers on paths 0/1 take no gradient; a subnet with no
// linear layer skips the backward (its gradient is exactly zero).
// After any forward the backbone's mixers (and no_logits) are those of the last subnet run.
#pragma once
#include "core/rng.h"
#include "supernet/backbone.h"
#include "supernet/distill.h"
#include "supernet/job_config.h"

typedef enum { PN_PATH_ATTN = 0, PN_PATH_SWA = 1, PN_PATH_LINEAR = 2 } pn_path;

#define PN_SUPERNET_MAX_LAYERS 256

// One choice of path per layer (path[i] is a pn_path); a plain struct, so it can
// be saved in checkpoints and search traces.
typedef struct {
    int n_layers;
    uint8_t path[PN_SUPERNET_MAX_LAYERS];
} pn_subnet;

// One trainable parameter of a linear path.
typedef struct {
    char name[160];    // model.layers.{i}.linear_attn.{param}
    int layer;         // i
    int ndim;
    int64_t shape[4];
    int64_t numel;
    int64_t offset;    // into sn->params / sn->grads
    float *data;
    float *grad;
    int weight_decay;  // from the block's parameter spec
} pn_sn_param;

typedef struct {
    pn_backbone *bb;            // not owned
    pn_supernet_config cfg;     // copy
    uint64_t seed;
    int n_layers;
    const pn_block_type *lin_type;
    pn_block *swa;              // (L) path 1
    pn_block *lin;              // (L) path 2
    pn_block *lin_first;        // (L) rwkv7 only: path 2 as the first rwkv7 layer; else NULL
    pn_block_type rwkv_first_type;
    float *params, *grads;      // every linear-path parameter / gradient, one buffer each
    int64_t n_floats;           // floats in each
    pn_sn_param *table;
    int n_table;
    float grad_scale;           // multiplies every gradient a distill step adds (default 1)

    // teacher cache (the last ids)
    int64_t *t_ids;
    int t_B, t_T, t_has_logits;
    float *t_hidden;            // (B, T, C)
    float *t_logits;            // (B, T, V) when t_has_logits
    size_t t_cap_ids, t_cap_hidden, t_cap_logits;
    // loss gradients on the student's outputs
    float *d_hidden, *d_logits;
    size_t cap_dh, cap_dl;
    pn_distill_parts last;      // the terms of the last distill step / eval loss
} pn_supernet;

// Builds the supernet on bb (which it does not own; free bb after the supernet).
// Sets every backbone grad slot to NULL. Bad config values exit 2.
pn_supernet *pn_supernet_create(pn_backbone *bb, const pn_supernet_config *cfg, uint64_t seed);
// Same, with the linear block's dimensions taken from `linear` (nonzero fields of
// H, K, V, conv_size, gen_reduction, n_groups, d_state, expand, lora_*; the rest
// derived by the block's defaults from the model width); NULL = all defaults.
pn_supernet *pn_supernet_create_ex(pn_backbone *bb, const pn_supernet_config *cfg, const pn_block_cfg *linear,
                                   uint64_t seed);
// Points every layer back at its pretrained attention and frees the supernet.
void pn_supernet_free(pn_supernet *sn);

int64_t pn_supernet_param_count(const pn_supernet *sn);  // trainable floats (= n_floats)
// Loads trained linear-path parameters (a supernet.safetensors written by the
// trainer: every table entry by name and shape, nothing else). A file of another
// linear block (metadata "linear_block"), a missing tensor, a wrong shape or an
// extra tensor exits 2 naming the file.
void pn_supernet_load_linear(pn_supernet *sn, const char *path);
void pn_supernet_zero_grads(pn_supernet *sn);

// Draws a training subnet from rng (so a checkpoint can save the stream):
// uniform_k: k ~ Uniform{0..k_max}, then k distinct layers, uniformly, on path 0;
// bernoulli: each layer on path 0 with probability p_full. Every other layer is
// on path 2. SWA is never drawn: it has no trainable weights.
void pn_supernet_sample(const pn_supernet *sn, pn_rng *rng, pn_subnet *out);
// Every layer on `path`.
void pn_subnet_fill(pn_subnet *s, int n_layers, pn_path path);
// Points each layer's mixer at the chosen path (handles rwkv7's first layer).
void pn_supernet_apply(pn_supernet *sn, const pn_subnet *s);

// One distillation step on ids (B, T): teacher (cached), student subnet s, loss
// per cfg.distill, backward ADDING grad_scale · dloss/dθ into sn->grads. Returns
// the loss; sn->last holds its terms.
double pn_supernet_distill_step(pn_supernet *sn, const int64_t *ids, int B, int T, const pn_subnet *s);
// The same loss, forward only (no gradient).
double pn_supernet_eval_loss(pn_supernet *sn, const int64_t *ids, int B, int T, const pn_subnet *s);
// Forward of subnet s with logits: returns (B, T, V), valid until the next forward.
const float *pn_supernet_logits(pn_supernet *sn, const int64_t *ids, int B, int T, const pn_subnet *s);
// Drops the cached teacher outputs (not needed for a frozen backbone; for tests).
void pn_supernet_clear_teacher(pn_supernet *sn);
