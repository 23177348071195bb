// backbone.h — a pretrained decoder-only Transformer (Qwen2 / Llama / Qwen3) on
// the CPU: weights, forward over token ids, LM loss and a full backward.
//
// The structure is kept per layer and explicit because PostNAS edits it:
//  - each layer runs `mixer`, which points at its own pretrained attention block
//    (`attn`) until the supernet points it at another pn_block (linear attention,
//    SWA sharing the same weights, ...);
//  - every gradient pointer may be NULL (frozen parameter): backward then skips
//    that product; pn_backbone_alloc_grads fills them all, callers may NULL some;
//  - backward takes an upstream gradient on the logits and/or on the final
//    (normed) hidden state, so a distillation loss on hidden states plugs in.
// Hidden states follow transformers' output_hidden_states: hidden(0) is the
// embedding output, hidden(i) the output of layer i-1, and hidden(L) has the
// final norm applied. Parameter names are exactly Hugging Face's.
#pragma once
#include "blocks/block.h"
#include "supernet/hf_config.h"

typedef struct {
    float *in_norm, *post_norm;  // input_layernorm, post_attention_layernorm (C)
    float *gate, *up;            // mlp.gate_proj, mlp.up_proj (I, C)
    float *down;                 // mlp.down_proj (C, I)
    float *d_in_norm, *d_post_norm, *d_gate, *d_up, *d_down;  // NULL = frozen
    pn_block attn;   // the pretrained self_attn (params point into the weight buffer)
    pn_block *mixer; // what forward runs: &attn unless the supernet swapped it
} pn_bb_layer;

// Saved activations of one layer for the last forward, N = B·T rows.
typedef struct {
    float *xn1, *rstd1;   // input norm output (N, C), rstd (N)
    float *mixer_act;     // the mixer's act_floats
    float *h;             // residual after the mixer (N, C)
    float *xn2, *rstd2;   // post-attention norm (N, C), (N)
    float *gate, *up, *mid;  // (N, I) each; mid = silu(gate) · up
    size_t mixer_act_floats;
} pn_bb_layer_act;

// One named parameter: slots into the structure above, so the table stays valid
// when a grad pointer is changed (but rebuild it after swapping a mixer).
typedef struct {
    char name[160];
    int ndim;
    int64_t shape[4];
    float **data;
    float **grad;
    int weight_decay;
} pn_bb_param;

typedef struct {
    pn_hf_config cfg;
    char dir[4096];
    int n_layers, C, I, V;
    int tied;
    float *weights;  // every parameter, one buffer
    float *grads;    // every gradient, one buffer (NULL until pn_backbone_alloc_grads)
    float *embed, *lm_head, *final_norm;  // lm_head == embed when tied
    float *d_embed, *d_lm_head, *d_final_norm;
    pn_bb_layer *layers;
    int no_logits;   // set to skip the LM head (distillation on hidden states)

    // ---- the last forward (B, T) and its buffers ----
    int B, T;
    int64_t *ids;         // (B, T) copy
    float *buf;           // activations and scratch, one allocation
    size_t buf_floats;
    float **resid;        // n_layers + 1 of (N, C): resid[i] = input of layer i
    float *final, *rstd_f;  // final-norm output (N, C), rstd (N)
    float *logits;        // (N, V)
    float *dlogits;       // (N, V) written by pn_backbone_loss
    pn_bb_layer_act *la;
    float **dresid;       // n_layers + 1 of (N, C): d/d resid[i]
    float *dfinal;        // (N, C): d/d hidden(L)
    float *tmp_c[2];      // backward temporaries (N, C)
    float *tmp_i[3];      // backward temporaries (N, I)
    float *scratch;       // mixer scratch
    size_t scratch_floats;
    float *v_first, *dv_first;  // pn_block_ctx buffers (N, C)
    float *v_first_fwd;         // where the last forward's first rwkv7 layer left v_first (NULL: none)
} pn_backbone;

// Loads DIR (config.json + safetensors, any float dtype). Bad input exits 2.
pn_backbone *pn_backbone_load(const char *dir);
void pn_backbone_free(pn_backbone *bb);

int pn_backbone_param_count(const pn_backbone *bb);        // entries of the table
int pn_backbone_param_table(pn_backbone *bb, pn_bb_param *out);  // fills out (count entries); returns count
int64_t pn_backbone_numel(const pn_backbone *bb);         // total parameter floats
// KV-cache elements per token over all layers (K and V) for the pretrained attention.
int64_t pn_backbone_kv_per_token(const pn_backbone *bb);

// Allocates (zeroed) gradients for every parameter and points every grad slot at them.
void pn_backbone_alloc_grads(pn_backbone *bb);
void pn_backbone_zero_grads(pn_backbone *bb);

// Forward over ids (B, T); ids must be in [0, V) (checked: internal error otherwise).
void pn_backbone_forward(pn_backbone *bb, const int64_t *ids, int B, int T);
// hidden(i), i in 0..n_layers, (B, T, C) of the last forward.
const float *pn_backbone_hidden(const pn_backbone *bb, int i);
// Mean CE of logits[:, :-1] against ids[:, 1:]; fills bb->dlogits (d loss/d logits).
double pn_backbone_loss(pn_backbone *bb);
// Backward of the last forward. dlogits (B, T, V) and dfinal (B, T, C) (upstream
// gradient on hidden(L)) may each be NULL. Adds into every non-NULL grad slot.
void pn_backbone_backward(pn_backbone *bb, const float *dlogits, const float *dfinal);
// d/d hidden(i) after backward, (B, T, C).
const float *pn_backbone_dhidden(const pn_backbone *bb, int i);
