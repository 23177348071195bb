// hybrid.h — the hybrid model format: a PostNAS hybrid as a Hugging Face
// directory in the Jet-Nemotron layout, and such a directory as a runnable model.
//
// Format (NVlabs/Jet-Nemotron's jetlm_2B.json / jetlm_4B.json and
// configuration_jet_nemotron.py): config.json holds the base model's keys plus
//   "model_type": "jet_nemotron", "architectures": ["JetNemotronForCausalLM"],
//   "layer_types": one of "attn" | "swa" | "jet" per layer (ours add
//       "gated_deltanet", "deltanet", "gla", "retnet", "mamba2", "rwkv7"),
//   "efficient_attention_config": {TYPE: dims} for every non-attn type used
//       (swa: {"window_size"}; jet: {"num_heads", "head_dim", "expand_v",
//       "conv_size", "dconv_generator_reduction", "norm_eps", "mode",
//       "dconv_implementation"}; the other types: see hybrid.c's key table),
//   "base_model_type": qwen2 | llama | qwen3 (ours; absent = qwen2, which is
//       what Jet-Nemotron's attention is: q/k/v biases, no q/k norm).
// The safetensors hold the base model's embeddings, norms, MLPs and LM head
// unchanged, and per layer the mixer's parameters under
// model.layers.{i}.self_attn.{name} (attn / swa: q/k/v/o of the pretrained
// attention; linear layers: the block's names, e.g.
// dynamic_conv1d.kernel_generator.w1.weight). architecture.yaml repeats the
// layout for people (and is read back by `postnas export --layers FILE`).
//
// A loaded hybrid is an ordinary pn_backbone whose layer l's `attn` slot holds
// the block config.json names for it (so pn_backbone_free owns everything and
// the parameter table has exactly the file's names) and whose `mixer` points at
// that slot. The engine, forward and info run it unchanged.
#pragma once
#include <stdio.h>
#include "core/tensor.h"
#include "supernet/backbone.h"

#define PN_HYBRID_MAX_LAYERS 256
#define PN_HYBRID_MAX_TYPES 16  // >= pn_block_type_count()

typedef struct {
    int n_layers;
    const pn_block_type *type[PN_HYBRID_MAX_LAYERS];  // per layer: attn, swa or a linear block
    // Requested dims per block type (index = registry index, pn_block_type_at):
    // H, K, V, conv_size, gen_reduction, norm_eps, n_groups, d_state, expand,
    // lora_*; swa: window. 0 = the block's default for the model width.
    pn_block_cfg dims[PN_HYBRID_MAX_TYPES];
} pn_hybrid_layout;

// Registry index of a block type (exits 1 if it is not registered).
int pn_hybrid_type_index(const pn_block_type *t);
// The Jet-Nemotron layer-type name of a block type ("jet" for jetblock; the
// block's own name otherwise) and back (accepts "jet" and "jetblock"; NULL if unknown).
const char *pn_hybrid_type_name(const pn_block_type *t);
const pn_block_type *pn_hybrid_type_find(const char *name);

// Sets one dim of type t by its format key (architecture.yaml / --set names:
// num_heads, head_dim, head_v_dim, conv_size, dconv_generator_reduction,
// n_groups, state_size, expand, *_low_rank_dim, norm_eps, window_size) from
// text. A key the type does not have or a bad value exits 2 naming `where`.
void pn_hybrid_dims_set(pn_hybrid_layout *lay, const pn_block_type *t, const char *key, const char *value,
                        const char *where);

// Every layer full attention, no dims set.
void pn_hybrid_layout_init(pn_hybrid_layout *lay, int n_layers);
// 1 when some layer is not "attn".
int pn_hybrid_layout_is_hybrid(const pn_hybrid_layout *lay);
// 1 when both have the same type per layer and the same resolved dims per used type.
int pn_hybrid_layout_equal(const pn_hf_config *base, const pn_hybrid_layout *a, const pn_hybrid_layout *b);

// Layer l's block config before the block's defaults: attn / swa from the base
// config (heads, KV heads, head dim, biases, q/k norm, RoPE base, eps; swa adds
// the window), linear blocks from dims[type] with C = hidden_size; layer_idx = l;
// rwkv7: first_rwkv on the lowest rwkv7 layer.
void pn_hybrid_layer_cfg(const pn_hf_config *base, const pn_hybrid_layout *lay, int l, pn_block_cfg *out);
// Sets up blocks[l] for every layer (defaults applied; params left NULL): what the
// hybrid's mixers are, without weights — for sizes, state bytes and FLOPs.
void pn_hybrid_setup_blocks(const pn_hf_config *base, const pn_hybrid_layout *lay, pn_block *blocks);
// Decode-state bytes per sequence at context L over all layers (kv at kv_bytes
// per element, recurrent state at rec_bytes, conv rows excluded): by kind.
typedef struct {
    int64_t attn, swa, linear;  // bytes in full-attention KV, SWA KV, linear recurrent state
} pn_hybrid_state_bytes;
pn_hybrid_state_bytes pn_hybrid_state_bytes_at(const pn_hf_config *base, const pn_hybrid_layout *lay, int64_t L,
                                               int kv_bytes, int rec_bytes);

// The layout a backbone's current mixers describe (attn layers must be the
// pretrained attention; all layers of a type must share their dims and all swa
// layers one window, else exit 2 naming the layers).
void pn_hybrid_layout_of(const pn_backbone *bb, pn_hybrid_layout *out);

// ---- config.json ----
// Parses a config.json text: a plain qwen2 / llama / qwen3 config gives the
// all-attention layout; a jet_nemotron config gives its base and layout. Bad
// input exits 2 naming `where` and the key. Returns 1 for jet_nemotron, else 0.
int pn_hybrid_config_parse(const char *text, const char *where, pn_hf_config *base, pn_hybrid_layout *lay);
int pn_hybrid_config_load(const char *dir, pn_hf_config *base, pn_hybrid_layout *lay);
// Writes DIR/config.json in the Jet-Nemotron layout (resolved dims); atomic.
void pn_hybrid_config_write(const pn_hf_config *base, const pn_hybrid_layout *lay, const char *dir,
                            const char *dtype_name);

// ---- architecture.yaml ----
// Human-readable layout: a comment table (layer, type, dims, state bytes at 4K
// and 64K context) and the keys model_type, base_model_type, num_hidden_layers,
// layer_types and one section per non-attn type used (same key names as
// efficient_attention_config, with head_v_dim for V). `source` (may be NULL) is
// noted in the header. Atomic.
void pn_hybrid_arch_write(const pn_hf_config *base, const pn_hybrid_layout *lay, const char *dir, const char *source);
// Reads such a file (or one written by hand: only layer_types is required,
// plus num_hidden_layers when given must match n_layers). n_layers: the base
// model's depth. Bad input exits 2 with FILE:LINE:COL.
void pn_hybrid_arch_load(const char *path, int n_layers, pn_hybrid_layout *lay);

// ---- models ----
// An unfilled hybrid backbone: config, blocks and the weight buffer carved in
// parameter-table order (weights uninitialised); dir is recorded for messages.
pn_backbone *pn_hybrid_alloc(const pn_hf_config *base, const pn_hybrid_layout *lay, const char *dir);
// Loads DIR: plain qwen2 / llama / qwen3 directories through pn_backbone_load,
// jet_nemotron ones as described above. Missing tensors or wrong shapes exit 2
// naming the directory and the tensor.
pn_backbone *pn_hybrid_load(const char *dir);
// Writes bb (its current mixers) to DIR: config.json, model.safetensors (sharded
// above 4 GiB) with tensors converted to dtype (F32 / BF16 / F16), and
// architecture.yaml. `source` (may be NULL) is noted in the metadata and YAML.
void pn_hybrid_save(const pn_backbone *bb, const char *dir, pn_dtype dtype, const char *source);
