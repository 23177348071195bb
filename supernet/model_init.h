// model_init.h — HF-layout models with random weights, for benchmarks and tests.
//
// Throughput does not depend on weight values, and no checkpoint can be
// downloaded on the benchmark machines, so `postnas init-model --like NAME`
// writes a config.json with the published dimensions of NAME plus safetensors
// with N(0, 0.02) projections and unit norms — a directory pn_backbone_load reads.
#pragma once
#include "core/tensor.h"
#include "supernet/hf_config.h"

// Published configurations: "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen3-1.7b",
// plus "bench-6x256" (the CPU backbone benchmark model). Returns 0, or -1 if unknown.
int pn_model_preset(const char *name, pn_hf_config *out);
// Names of the presets, NULL-terminated.
const char *const *pn_model_preset_names(void);
// Writes DIR/config.json (transformers 4.x form) and DIR/model.safetensors
// (sharded above 4 GiB) with weights of `dtype` (F32 or BF16), seeded.
void pn_model_init_write(const pn_hf_config *c, const char *dir, uint64_t seed, pn_dtype dtype);
// Writes DIR/config.json (transformers 4.x form) for c, with torch_dtype
// `dtype_name` ("float32", "bfloat16", ...); creates DIR. Atomic.
void pn_hf_config_write(const pn_hf_config *c, const char *dir, const char *dtype_name);
