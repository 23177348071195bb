// export.h — step 5 of PostNAS: write the discovered hybrid as a Hugging Face
// directory in the Jet-Nemotron layout (format: supernet/hybrid.h).
//
// Two ways in:
//  - from a supernet in memory: the chosen subnet's mixers (trained linear paths,
//    SWA sharing the pretrained weights) are written as they run;
//  - from files (`postnas export`): a base model directory + a layer layout
//    (SPEC text or an architecture.yaml) + optionally the trained linear weights
//    (a supernet checkpoint's model.safetensors: "model.layers.{i}.linear_attn.P",
//    or "model.layers.{i}.self_attn.P"); without them the linear blocks get
//    their own init, seeded.
//
// SPEC: items separated by spaces or ';', each TYPE:LAYERS or rest:TYPE.
//   TYPE   attn | swa | jet (= jetblock) | gated_deltanet | deltanet | gla |
//          retnet | mamba2 | rwkv7
//   LAYERS comma-separated layer indices or inclusive ranges a-b, or "rest"
// Layers not named get the default block (--block, "rest:TYPE" overrides it).
// Example: "attn:14,19 swa:20-21 rest:jet". A layer named twice exits 2.
#pragma once
#include "supernet/hybrid.h"
#include "supernet/supernet.h"

// Parses SPEC for a model of n_layers; default_block names the type of the layers
// SPEC leaves out (NULL = "jet"). Dims stay unset. Bad SPEC exits 2 naming it.
void pn_export_layout_parse(const char *spec, int n_layers, const char *default_block, pn_hybrid_layout *lay);
// `[TYPE.]KEY=VALUE` (see pn_hybrid_dims_set for keys); TYPE defaults to
// default_type, except window_size which defaults to swa. Exits 2 on bad input.
void pn_export_layout_set(pn_hybrid_layout *lay, const char *assignment, const char *default_type);

// The hybrid of `lay` over the base model in model_dir (a plain HF directory or
// a jet_nemotron one), in memory: backbone tensors and attn / swa projections
// from model_dir, linear blocks from linear_weights (NULL: from model_dir when
// it already has that layer as the same type, else the block's init with seed).
// Missing tensors or wrong shapes exit 2 naming the file and tensor.
pn_backbone *pn_export_build(const char *model_dir, const pn_hybrid_layout *lay, const char *linear_weights,
                             uint64_t seed);

// Writes subnet s of the supernet to dir (applies s first; the backbone keeps it).
void pn_export_subnet(pn_supernet *sn, const pn_subnet *s, const char *dir, pn_dtype dtype, const char *source);
