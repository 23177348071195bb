// model_init.h — HF-layout models with random weights, for benchmarks and tests.
//
// Throughput does not depend on weight values, and no checkpoint can be
// downloaded on the benchmark machines, so `postnas init-model --like NAME`
// writes a config.json with the published dimensions of NAME plus safetensors
// with N(0, 0.02) projections and unit norms — a directory pn_backbone_load reads.
#pragma once
#include "core/tensor.h"
#include "supernet/hf_config.h"
#include <jansson.h>
#include "supernet/hybrid.h"

// Published configurations: "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen3-1.7b",
// plus "bench-6x256" (the CPU backbone benchmark model), plus the hybrids
// "jet-nemotron-2b" and "jet-nemotron-4b" (for these, out is the base's config
// with model_type "jet_nemotron", which pn_model_init_write recognises).
// Returns 0, or -1 if unknown.
int pn_model_preset(const char *name, pn_hf_config *out);
// The Jet-Nemotron presets as base config (Qwen2.5-1.5B / Qwen2.5-3B) + layout,
// exactly as the published config.json (NVlabs/Jet-Nemotron jetlm_2B.json /
// jetlm_4B.json): layer_types, JetBlock H/K/V, SWA window. Returns 0 or -1.
int pn_model_jet_preset(const char *name, pn_hf_config *base, pn_hybrid_layout *lay);
// Writes a hybrid with random weights in the Jet-Nemotron layout (config.json,
// model.safetensors sharded above 4 GiB, architecture.yaml): backbone tensors
// as pn_model_init_write, each mixer's parameters by its block's init, seeded.
void pn_model_init_write_hybrid(const pn_hf_config *base, const pn_hybrid_layout *lay, const char *dir, uint64_t seed,
                                pn_dtype dtype);
// The same hybrid in memory, without files (for throughput measurements of many
// designs): pn_hybrid_alloc, then N(0, 0.02) projections and embeddings, unit norms,
// each mixer by its block's init, seeded; the large tensors are filled in parallel
// (OpenMP over 1 Mi-element blocks, one Philox stream each, so the values do not
// depend on the thread count). dir is recorded for messages only.
pn_backbone *pn_model_init_hybrid_mem(const pn_hf_config *base, const pn_hybrid_layout *lay, const char *dir,
                                      uint64_t seed);
// Names of the presets, NULL-terminated.
const char *const *pn_model_preset_names(void);
// Writes DIR/config.json (transformers 4.x form) and DIR/model.safetensors
// (sharded above 4 GiB) with weights of `dtype` (F32 or BF16), seeded. A config
// with model_type "jet_nemotron" (from pn_model_preset) is written by
// pn_model_init_write_hybrid with the layout of the Jet-Nemotron preset of the
// same width and depth (exit 2 when there is none).
void pn_model_init_write(const pn_hf_config *c, const char *dir, uint64_t seed, pn_dtype dtype);
// Writes DIR/config.json (transformers 4.x form) for c, with torch_dtype
// `dtype_name` ("float32", "bfloat16", ...); creates DIR. Atomic.
void pn_hf_config_write(const pn_hf_config *c, const char *dir, const char *dtype_name);
// The config.json keys every writer shares (transformers 4.x form); callers add their own.
json_t *pn_hf_config_to_json(const pn_hf_config *c, const char *dtype_name);
// Pretty-printed (sorted keys, 15-digit reals) + newline, written atomically.
void pn_json_write_file(json_t *j, const char *path);
