// hw_search.h — step 4 of PostNAS: the hardware-aware search of the linear
// block's heads / key dim / value dim (and short-conv size) behind
// `postnas search hw` (the paper's Table 2).
//
// The placement is fixed (supernet.full_layers / swa_layers, every other layer
// runs supernet.block); only the linear block's dimensions change. The search:
//   1. base design = supernet.heads / key_dim / value_dim / conv_size, 0 = the
//      block's default for the model width (resolved by the block itself);
//   2. candidates = the product heads × key_dims × value_dims × conv_sizes of
//      the hw_search lists, an empty list standing for the base design's
//      setting of that dim (so a 0 there stays "the block's default", derived
//      per candidate: e.g. gated_deltanet's H from K, rwkv7's K from H).
//      Candidates that resolve to the same dims are listed once;
//   3. cost of a candidate = decode cache + state bytes per sequence at
//      context L = hw_search.context for the WHOLE hybrid (convention, stated
//      in every output): attention and SWA K/V caches at 2 bytes per element
//      (bf16; SWA holds min(window, L) positions), linear recurrent states at 4
//      bytes (fp32), short-conv / token-shift rows at 2 bytes (bf16, the
//      activations' dtype). Budget = hw_search.budget_bytes, or 0 → the base
//      design's cost. Candidates above it are excluded (logged with their
//      bytes, and listed in the JSON with the reason); none left → exit 2;
//   4. for each kept candidate: decode throughput of the whole hybrid on the
//      run's device (pn_hw_measure_decode — the one device hook; measured in
//      hw_search.throughput_rounds round-robin rounds over the candidates, the
//      median over every timed step of every round, so a load spike on a
//      shared machine hits all candidates alike rather than one), then a short
//      distillation (pn_train_run, train.mode supernet, sampling fixed, the
//      same seed and data order for all, hw_search.train_steps or train.steps
//      steps) into OUT/cand_<i>/, then task accuracy of the trained hybrid on
//      search.tasks (data.tasks_dir/NAME.jsonl, the first max_examples);
//   5. choice: among candidates with throughput ≥ (1 − throughput_tolerance) ×
//      the best throughput, the most accurate; accuracy = mean over tasks of
//      the task's accuracy (fraction of examples right: MC by answer
//      log-likelihood, generative by greedy exact match; with
//      search.objective_gen teacher_forced_acc, the answer-token accuracy).
//      Ties go to the higher throughput, then the lower index.
// Outputs in OUT (atomic): hw_search.md (the Table-2-like table), hw_search.csv,
// hw_search.json (every number, NaN → null; the chosen design, the device) and
// hw_search.png (scripts/plot_hw_search.py; python3/matplotlib missing → a
// warning, never an error). A candidate directory that already holds
// checkpoints of the same candidate config continues from them (an
// interrupted search resumes); one of a different config exits 2.
#pragma once
#include "supernet/backbone.h"
#include "supernet/hf_config.h"
#include "supernet/job_config.h"

#define PN_HW_MAX_CANDIDATES 512
#define PN_HW_MAX_TASKS 16

typedef struct {
    int index;                  // position in the grid (after de-duplication), the N of cand_N
    int H, K, V, conv;          // resolved dims (conv 0: the block has no short conv)
    int64_t bytes;              // cache + state bytes per sequence at context (see the convention above)
    int64_t bytes_attn;         // full-attention K/V
    int64_t bytes_swa;          // SWA K/V rings
    int64_t bytes_rec;          // linear recurrent states
    int64_t bytes_conv;         // linear conv / shift rows
    int64_t linear_params;      // parameters of the linear blocks on the linear layers
    int64_t total_params;       // the whole hybrid (0 until measured)
    int kept;                   // within the budget
    double tokens_per_s;        // decode tokens/s (NaN until measured)
    double step_ms;             // median decode step time
    double task_acc[PN_HW_MAX_TASKS];
    double task_nll[PN_HW_MAX_TASKS];  // MC: mean NLL of the answer tokens; else NaN
    double accuracy;            // mean of task_acc (NaN until evaluated)
    double train_loss;          // last distillation step's loss
    double valid_loss;          // last validation loss (NaN if none)
    int within_tolerance;       // throughput within the tolerance of the best
    int chosen;
} pn_hw_candidate;

typedef struct {
    char block[32];             // linear block type
    int C;                      // model width
    int n_layers;
    char placement[512];        // e.g. "attn: 1 | swa: - | linear: 0, 2, 3"
    int64_t context;            // L of the bytes
    int64_t budget_bytes;
    int budget_from_base;       // 1: budget = the base design's bytes
    double budget_min_fraction; // candidates below this fraction of the budget are excluded
    pn_hw_candidate base;       // the base design (not trained unless it is also a candidate)
    int n;                      // candidates in the grid
    pn_hw_candidate cand[PN_HW_MAX_CANDIDATES];
    int n_kept;
    int chosen;                 // index into cand, -1 before the choice
    double best_tokens_per_s;
    int n_tasks;
    char task_names[PN_HW_MAX_TASKS][128];
    char task_kind[PN_HW_MAX_TASKS][8];  // "mc" | "gen"
    // the measurement setup
    char device[32];            // "cpu"
    char device_name[256];      // CPU model or GPU name
    int threads;                // CPU: OpenMP threads; cuda: the GPU's multiprocessors
    int64_t bench_context;      // prompt tokens prefilled before decoding
    int bench_batch, bench_steps, bench_warmup, bench_rounds;
    int train_steps;
    char date[64];
    // where the numbers come from
    char throughput_model[256]; // "" = model.path with the supernet placement (C, n_layers, placement above
                                // are the throughput model's otherwise)
    int acc_C, acc_layers;      // the accuracy model (model.path)
    char acc_placement[512];    // the placement its candidates are trained and scored with
    int accuracy_measured;      // 0: throughput only (hw_search.accuracy false)
    char throughput_from[4200]; // "" = measured in this run; else the hw_search.json the numbers came from
} pn_hw_result;

// Throughput options and result of one measurement.
typedef struct {
    int device;       // pn_job_device
    int64_t context;  // tokens per sequence prefilled (random ids, fixed seed) before decoding, >= 1
    int batch;        // sequences, >= 1
    int steps;        // timed decode steps, >= 1 (median reported)
    int warmup;       // untimed steps before them, >= 0
} pn_hw_bench_opts;

typedef struct {
    double tokens_per_s;  // batch / median step time
    double step_ms;       // median decode step time
    size_t state_bytes;   // bytes of the engine's decode states (fp32 on the CPU)
} pn_hw_bench_result;

// The device hook: decode throughput of bb (its current mixers) on o->device —
// prefill o->context random tokens (fixed seed) per sequence, o->warmup untimed
// steps, then o->steps timed ones; their times in seconds go to step_s (NULL =
// not wanted) and r gets this measurement's median. cpu: the engine of
// search/engine.h, host wall time per step. cuda (builds with CUDA): the CUDA
// engine of search/engine_cuda.h on GPU 0, device time per step from events on
// its stream; mixers it cannot run exit 2 naming the layer, no visible GPU exits
// 3. In a build without CUDA, run.device cuda exits 2 ("not yet supported on
// cuda in this build"). Distillation and evaluation run where pn_train_run and
// pn_eval_suite run (the CPU today) whatever the device.
void pn_hw_measure_decode(const pn_backbone *bb, const pn_hw_bench_opts *o, double *step_s, pn_hw_bench_result *r);

// Steps 1–3 without running anything: the placement, the base design, the grid
// with each candidate's bytes and params, the budget and the kept flags. base
// is the model's config (config.json of model.path). Bad grids exit 2 naming
// `where`: dims the block cannot take, conv sizes for a block without a short
// conv, value dims for blocks whose V is tied to K, no candidate within the budget.
void pn_hw_search_plan(const pn_job_config *c, const char *where, const pn_hf_config *base, pn_hw_result *out);

// Step 5 on filled candidates (kept ones with tokens_per_s and accuracy): sets
// best_tokens_per_s, within_tolerance, chosen and r->chosen; returns the chosen
// index (-1 when no kept candidate has a finite throughput). NaN accuracy ranks
// below every number.
int pn_hw_search_choose(pn_hw_result *r, double tolerance);

// Two models (hw_search.throughput_model): the Table-2 measurement needs the
// production shape (e.g. Jet-Nemotron-2B at 64K context on the GPU) while a short
// distillation needs a model that trains in minutes. With throughput_model set, the
// grid, the budget, the bytes and the decode throughput are the throughput model's
// (its own layout: a Jet-Nemotron preset or a jet_nemotron config.json, random
// weights built in memory; the base design is its linear block's published dims),
// and each candidate's resolved (H, K, V, conv) is then distilled and scored on
// model.path with the supernet placement (hw_search.accuracy). The two halves can run
// on different machines: hw_search.accuracy false measures only; throughput_from
// FILE takes the decode numbers of such a run (every kept candidate must be there
// with the same dims and bytes, else exit 2 naming FILE) and adds the accuracy.
// The whole search (top of this file); out_dir receives every output. `where`
// names the config in messages. c->hw_search.enabled is not consulted (the
// caller decides). Returns 0.
int pn_hw_search_run(const pn_job_config *c, const char *where, const char *out_dir, pn_hw_result *out);

// hw_search.md / .csv / .json into out_dir (atomic), and hw_search.png when
// c->hw_search.plot (a failure to plot only warns).
void pn_hw_search_write(const pn_hw_result *r, const pn_job_config *c, const char *out_dir);
