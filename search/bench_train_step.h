// bench_train_step.h — `postnas bench train-step`: full supernet distillation steps on the
// GPU (search/bench_train_step.c), timed, with their model FLOPs and MFU.
//
// One step = sample a subnet, distillation step on a FRESH batch of random ids (so the
// teacher forward runs in every timed step: the csupernet's teacher cache never hits),
// device gradient norm + clip, device AdamW. Writes one row per run into a JSON of rows
// (default results/bench/h100-train-step.json; a row with the same label is replaced).
#pragma once
#include "supernet/supernet.h"

typedef struct {
    const char *model_dir;  // HF directory (e.g. from `postnas init-model --like qwen2.5-1.5b`)
    const char *device;     // "cuda" (the only device; NULL = cuda)
    const char *block;      // linear path type, a pn_linear_block_names entry (NULL = jetblock)
    const char *distill;    // mse | kl | both (NULL = mse)
    const char *subnet;     // uniform_k (the config default sampling) | all_linear (NULL = uniform_k)
    const char *out_json;   // NULL = results/bench/h100-train-step.json
    const char *label;      // row name; NULL = "<model dir name> <block> B.. T.. <distill> <subnet>"
    int batch, seq;         // B, T (>= 1)
    int steps, warmup;      // timed steps (>= 1; median reported), untimed steps before (>= 0)
    const char *mlp_keep;   // layers keeping their MLP gate / up products: "auto" (NULL) or a count
    int gemm_autotune;      // cuBLASLt candidates timed per GEMM shape (2..8); 0 = heuristic (or the env)
} pn_bench_train_step_args;

// Model FLOPs of one supernet step (multiply-add = 2), counted from the shapes:
//   per token and layer, forward: MLP 6·C·I; full attention 2·C·K·(2H + 2Hkv) projections
//   + 4·H·K·(T+1)/2 scores and values (causal: position t sees t keys); SWA the same with
//   min(t, window) keys; a linear path its block's flops_per_token (blocks/block.h);
//   LM head 2·C·Vocab per token when the loss uses logits (kl, both).
//   teacher = forward with every layer on attention; student forward = forward of the subnet;
//   student backward = 0 when no layer is linear, else over the layers from the lowest
//   linear one up: frozen GEMMs (MLP, attention projections, LM head) 1x forward (input
//   gradient only), attention scores/values 2x forward (dQ, dK, dV), linear paths 2x
//   forward (input + weight gradients); layers below the lowest linear one need none.
// Norms, RoPE, element-wise ops and the loss are not counted.
typedef struct {
    double teacher_fwd, student_fwd, student_bwd, total;
} pn_train_step_flops;
pn_train_step_flops pn_train_step_flops_of(const pn_supernet *sn, const pn_subnet *s, int B, int T);

// The formula above in one line (for JSON and logs).
extern const char *const pn_train_step_flops_formula;

#define PN_BENCH_H100_PEAK_BF16_TFLOPS 989.4  // H100 SXM dense bf16 peak
#define PN_BENCH_H100_GEMM_ANCHOR_TFLOPS 745.0  // torch/cuBLAS bf16 8192^3 measured on an H100 of this workplace

typedef struct {
    double step_ms_median, step_ms_min, tokens_per_s;
    double flops_per_step;       // mean over the timed steps
    double mfu, mfu_vs_anchor;   // Σ FLOPs / Σ time over the timed steps, / peak and / anchor
    double loss_first, loss_last;
    size_t mem_total;            // bytes held by the csupernet (pn_csupernet_memory summed)
    int mlp_kept;                // layers that kept their MLP products at the end (pn_csupernet_mlp_kept)
    char gpu[256];
} pn_bench_train_step_result;

// Validates a (bad values exit 2 naming the option), then runs. Needs a CUDA build (exit 2
// otherwise) and a visible device (exit 3). Logs via pn_info; fills *res when not NULL.
int pn_bench_train_step(const pn_bench_train_step_args *a, pn_bench_train_step_result *res);
