// hf_config.h — a Hugging Face config.json (Qwen2 / Llama / Qwen3) as the numbers
// the backbone needs.
//
// Both transformers 4.x form (top-level rope_theta, torch_dtype, rope_scaling)
// and 5.x form (rope_parameters {rope_theta, rope_type}, dtype) are accepted.
// Anything we would have to approximate (RoPE scaling, sliding-window layers,
// an activation other than SiLU, MLP biases) is refused with exit 2 naming the
// key and value: a wrong model that runs is worse than one that does not load.
#pragma once
#include "core/common.h"

typedef struct {
    char model_type[32];    // "qwen2" | "llama" | "qwen3"
    char architecture[96];  // architectures[0] or "" when absent
    char dtype[32];         // dtype / torch_dtype ("float32", "bfloat16", ...; "" when absent)
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;
    int head_dim;
    double rms_norm_eps;
    double rope_theta;
    int tie_word_embeddings;
    int qkv_bias;  // q/k/v projections have biases
    int o_bias;    // o_proj has a bias
    int qk_norm;   // per-head q/k RMSNorm (Qwen3)
} pn_hf_config;

// Reads DIR/config.json; any problem exits 2 naming the file and key.
void pn_hf_config_load(pn_hf_config *c, const char *dir);
// Parses JSON text; `where` names the source in error messages.
void pn_hf_config_parse(pn_hf_config *c, const char *text, const char *where);
