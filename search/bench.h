// bench.h — benchmark programs behind `postnas bench ...` (results/bench/*.json).
#pragma once

// Forward+backward tokens/s of a 6-layer, hidden-256 Qwen2-style model at T=256 on
// the CPU, with the achieved GFLOP/s of its matmuls next to OpenBLAS sgemm's rate
// measured in the same run. Writes JSON to out_json. Returns 0 on success.
int pn_bench_backbone(const char *out_json, int steps);
// Forward+backward tokens/s per block at B=4, T=512, C=256, chunked vs recurrent.
int pn_bench_blocks(const char *device, const char *out_json, int steps);

// ---- `postnas bench decode` (search/bench_decode.c) ----
#include "supernet/backbone.h"
#include <stddef.h>

typedef struct {
    const char *model_dir;   // HF directory (config.json + safetensors)
    const char *device;      // "cpu"
    const char *out_json;    // results/bench/...json
    int64_t context;         // prompt length L prefilled before decoding, >= 1
    int batch;               // sequences; 0 = the largest that fits in memory
    int prefill_chunk;       // tokens per sequence per prefill pass, >= 1
    int steps;               // timed decode steps (median reported), >= 1
    int warmup;              // untimed decode steps before them, >= 0
    size_t mem_limit_bytes;  // 0 = MemAvailable from /proc/meminfo less pn_decode_budget's
                             // margin; else exactly the memory to fit in (tests)
    struct pn_bench_decode_result *result;  // filled when not NULL (the CLI prints it)
} pn_bench_decode_args;

typedef struct pn_bench_decode_result {
    int batch;
    int threads;
    double prefill_tokens_per_s, decode_tokens_per_s, decode_step_ms_median, decode_step_ms_min;
    double weight_bytes, state_bytes, activation_bytes, step_bytes;
    double bandwidth_GBps, floor_step_ms, ratio_to_floor;
} pn_bench_decode_result;

// Prefills `context` random tokens per sequence in chunks, then decodes; reports
// prefill and decode tokens/s, memory, and the decode step's bandwidth floor
// (bytes moved per step over a memcpy bandwidth measured in the same run).
// Logs via pn_info, prints a short table on stdout, writes JSON. Returns 0.
int pn_bench_decode(const pn_bench_decode_args *a);

// Bytes a decode engine of `batch` sequences needs besides the weights: decode
// states at max_context (pn_engine_state_bytes_for), the engine's activations
// for (batch, chunk) rows, and the benchmark's prompt ids. An upper bound of
// what pn_engine_create + pn_bench_decode allocate.
size_t pn_decode_batch_bytes(const pn_backbone *bb, int batch, int64_t max_context, int chunk);
// Largest batch B >= 0 with weights + pn_decode_batch_bytes(B) <= budget
// (0 when not even one sequence fits); capped at max_batch.
int pn_decode_max_batch(const pn_backbone *bb, int64_t max_context, int chunk, size_t budget, int max_batch);
// The memory budget for --batch max: avail − max(avail / 10, 256 MiB), never
// below 0 (the margin covers the allocator, the OS page cache the loader's
// file reads want back, and the bandwidth probe's buffers being returned late).
size_t pn_decode_budget(size_t avail);

// DRAM traffic of one decode step of `batch` sequences whose caches hold ctx
// tokens: every weight read once (an untied embedding table only for the batch's
// looked-up rows), every layer's state read and written — attention K/V: read
// all ctx (swa: min(window, ctx)) cached rows, write one row; recurrent and conv
// states: read and written whole.
typedef struct {
    double weights;      // bytes of parameters read
    double state_read;   // bytes of state read
    double state_write;  // bytes of state written
    double total;
} pn_decode_traffic;
pn_decode_traffic pn_decode_step_traffic(const pn_backbone *bb, int batch, int64_t ctx);

// ---- `postnas bench kernels` (search/bench_kernels.c) ----
// The CUDA backend's kernels at their target shapes on device 0: device copy and bf16
// GEMM 8192³ (the ceilings), the gated delta rule decode step, chunked forward,
// forward+backward and a 65,536-token forward; each row with its median time, achieved
// rate, floor, measured/floor, target and anchor; rows without an implementation yet
// are listed as "not implemented". Writes JSON to out_json; logs via pn_info. Returns 0.
// Without CUDA in the build it dies with exit 2; without a visible device, exit 3.
int pn_bench_kernels(const char *out_json);
