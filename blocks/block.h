// block.h — the token-mixer interface. Adding a block = one file + one table entry.
//
// A block maps x (B, T, C) — the layer input after the decoder's input RMSNorm —
// to y (B, T, C). Each type provides a parameter table (names as in the reference
// implementation, relative to `model.layers.{i}.self_attn.`), forward/backward over
// full sequences, prefill that fills a decode state, a one-token decode step, state
// sizes and FLOPs. Parameters live in caller-owned buffers (one per spec entry, in
// spec order), so the supernet can put them in its arenas and the optimizer can
// see them as one flat list. See ../shared/BLOCKS.md for the math of each block.
#pragma once
#include "core/common.h"

// Every dimension a block may need. `pn_block_cfg_defaults` fills the reference
// implementations' defaults for a given type and model width; a block ignores the
// fields it does not use. 0 means "derive" where the comment says so.
typedef struct {
    int C;              // model width
    int H;              // heads (query heads for attn/swa)
    int H_kv;           // attn/swa: KV heads
    int K;              // key (or attention head) dim per head
    int V;              // value dim per head
    int conv_size;      // W: short conv taps (jetblock, gated_deltanet, deltanet, mamba2)
    int window;         // swa: window length
    int gen_reduction;  // jetblock: dynamic-conv generator reduction r
    int qkv_bias;       // attn: q/k/v projections have biases (Qwen2; Llama/Qwen3 attention_bias)
    int o_bias;         // attn: o_proj has a bias (Llama/Qwen3 attention_bias)
    int qk_norm;        // attn: per-head q/k RMSNorm (Qwen3)
    float rope_theta;   // attn: RoPE base
    float norm_eps;     // attn q/k norm eps; output norm eps for linear blocks (1e-5)
    int n_groups;       // mamba2: G
    int d_state;        // mamba2: N
    int expand;         // mamba2: expand (inner = expand · C)
    int lora_w, lora_a, lora_v, lora_g;  // rwkv7 low-rank sizes
    int layer_idx;      // position in the model (rwkv7: the first rwkv7 layer sets v_first)
    int first_rwkv;     // rwkv7: 1 if this is the first rwkv7 layer of the forward pass
} pn_block_cfg;

typedef enum {
    PN_INIT_ZERO = 0,
    PN_INIT_ONE,
    PN_INIT_NORMAL,   // N(0, a)   (a = std)
    PN_INIT_UNIFORM,  // U(a, b)
    PN_INIT_CUSTOM,   // the block's init_custom fills it (A_log, dt_bias, ...)
} pn_init_kind;

#define PN_BLOCK_MAX_PARAMS 32

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[4];
    pn_init_kind init;
    float a, b;
    int weight_decay;  // 0 for A_log, dt_bias, norms, biases
} pn_param_spec;

// Per-forward-pass context shared across layers (rwkv7's value residual).
typedef struct {
    float *v_first;    // (B, T, C) or NULL; set by the first rwkv7 layer
    float *dv_first;   // backward: gradient flowing to v_first (accumulated)
} pn_block_ctx;

// Decode-state size per sequence at context L, in elements (fp32 on CPU):
// kv: attention K/V cache elements; rec: recurrent state; conv: conv/shift rows.
typedef struct {
    int64_t kv;
    int64_t rec;
    int64_t conv;
} pn_state_size;

struct pn_block;

typedef struct pn_block_type {
    const char *name;  // "attn", "swa", "jetblock", "gated_deltanet", "deltanet", "gla", "retnet", "mamba2", "rwkv7"
    // Fill defaults for this type from C (and the already-set fields: nonzero fields are kept).
    void (*defaults)(pn_block_cfg *c);
    // Parameter table; returns the number of entries.
    int (*params)(const pn_block_cfg *c, pn_param_spec *out);
    // Fill PN_INIT_CUSTOM parameters (A_log, dt_bias, decay...); seed for randomness.
    void (*init_custom)(const struct pn_block *b, uint64_t seed);
    // Floats of saved activations forward writes for backward, for (B, T).
    size_t (*act_floats)(const pn_block_cfg *c, int B, int T);
    // Floats of scratch backward (and forward) may use, for (B, T).
    size_t (*scratch_floats)(const pn_block_cfg *c, int B, int T);
    void (*forward)(const struct pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                    pn_block_ctx *ctx);
    // Adds into dx (B, T, C) and b->grads[i]; reads x and act from forward.
    void (*backward)(const struct pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                     const float *act, float *scratch, pn_block_ctx *ctx);
    pn_state_size (*state_size)(const pn_block_cfg *c, int64_t L);
    // Process T tokens starting at absolute position pos (the state already holds
    // pos tokens; pos = 0 means a fresh, zeroed state). state: B · state_floats.
    void (*prefill)(const struct pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                    int64_t L, float *scratch, pn_block_ctx *ctx);
    // One token per sequence: x, y (B, C); position pos.
    void (*decode)(const struct pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                   float *scratch, pn_block_ctx *ctx);
    // Forward FLOPs per token at context position L (multiply-add = 2).
    double (*flops_per_token)(const pn_block_cfg *c, int64_t L);
} pn_block_type;

typedef struct pn_block {
    const pn_block_type *type;
    pn_block_cfg cfg;
    int n_params;
    pn_param_spec spec[PN_BLOCK_MAX_PARAMS];
    float *params[PN_BLOCK_MAX_PARAMS];  // caller-owned, spec order
    float *grads[PN_BLOCK_MAX_PARAMS];   // caller-owned or NULL (frozen)
} pn_block;

// Registry.
const pn_block_type *pn_block_type_find(const char *name);  // NULL if unknown
int pn_block_type_count(void);
const pn_block_type *pn_block_type_at(int i);

// Fill cfg defaults for `type` and the spec table of b (params/grads left NULL).
void pn_block_setup(pn_block *b, const pn_block_type *type, const pn_block_cfg *cfg);
int64_t pn_param_numel(const pn_param_spec *p);
int64_t pn_block_param_count(const pn_block *b);
// Index of a parameter by name, -1 if absent.
int pn_block_param_index(const pn_block *b, const char *name);
// Initialise every parameter by its spec (stream derived from the name).
void pn_block_init_params(pn_block *b, uint64_t seed);
// State floats per sequence (kv + rec + conv) for the CPU decode state.
int64_t pn_block_state_floats(const pn_block *b, int64_t L);
// Bytes per sequence as reported: kv at kv_bytes per element, recurrent state at
// rec_bytes, conv rows excluded unless include_conv (at kv_bytes).
int64_t pn_block_state_bytes(const pn_block *b, int64_t L, int kv_bytes, int rec_bytes, int include_conv);
