// bench.h — benchmark programs behind `postnas bench ...` (results/bench/*.json).
#pragma once

// Forward+backward tokens/s of a 6-layer, hidden-256 Qwen2-style model at T=256 on
// the CPU, with the achieved GFLOP/s of its matmuls next to OpenBLAS sgemm's rate
// measured in the same run. Writes JSON to out_json. Returns 0 on success.
int pn_bench_backbone(const char *out_json, int steps);
// Forward+backward tokens/s per block at B=4, T=512, C=256, chunked vs recurrent.
int pn_bench_blocks(const char *device, const char *out_json, int steps);
