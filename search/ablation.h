// ablation.h — step 3 of PostNAS: the block ablation behind `postnas ablate`.
//
// Question answered: with the placement fixed (supernet.sampling fixed:
// full_layers / swa_layers on attention, every other layer linear) and the
// same training budget, data order and seed, how do the linear blocks compare?
// For each name in ablation.blocks the runner
//   1. trains run.out_dir/<block>/ through pn_train_run (train.mode supernet,
//      supernet.block = <block>; the token loader's order is a function of
//      run.seed, and fixed sampling draws nothing, so every block sees the
//      same batches in the same order). A directory that already holds
//      checkpoints of the same config continues from them (pn_train_opts.resume);
//      checkpoints of another config exit 2 before anything trains;
//   2. rebuilds the supernet on the pretrained model, loads the trained
//      linear weights (run.out_dir/<block>/supernet.safetensors, names and
//      shapes checked) and applies the fixed subnet — the same mixers an
//      exported hybrid runs;
//   3. measures the hybrid (table columns):
//      - accuracy per task of search.tasks (data.tasks_dir/NAME.jsonl; the
//        first ablation.max_examples): MC by answer log-likelihood, generative
//        by greedy exact match through the engine (search.objective_gen
//        teacher_forced_acc switches to teacher-forced example accuracy);
//      - trainable params: parameters of the linear blocks on the layers the
//        placement leaves linear (the supernet also holds unused linear paths
//        on the attention layers; those are reported separately in the JSON);
//      - state bytes per sequence at context L = ablation.context, summed over
//        layers with pn_block_state_bytes(mixer, L, 2, 4, 0): attention KV
//        (SWA: a ring of min(window, L) positions) at 2 bytes per element
//        (bf16), recurrent state at 4 bytes (fp32), short-conv rows excluded —
//        the convention of architecture.yaml (supernet/hybrid.h);
//      - train tokens/s: tokens of the distillation loop per second of step
//        time (teacher forward + student forward/backward + AdamW), i.e. the
//        harmonic mean of metrics.jsonl's per-step tokens_per_s (every step is
//        logged: train.log_every is forced to 1; it cannot change the numbers);
//      - decode tokens/s: the CPU engine (search/engine.h) at batch
//        ablation.throughput_batch after prefilling throughput_prompt random
//        tokens per sequence; 2 warm-up steps, then throughput_steps timed
//        steps; batch / median step time;
//   and the teacher (every layer on its pretrained attention, nothing trained)
//   gets the same measurements as the reference row.
// Outputs in run.out_dir, each written atomically: ablation.md (the table and
// how it was produced), ablation.csv, ablation.json (every number, NaN → null)
// and ablation.png (scripts/plot_ablation.py; when python3 or matplotlib is
// missing, a warning and no PNG — never an error). Progress goes to the log.
#pragma once
#include "search/evaluate.h"
#include "supernet/job_config.h"

#define PN_ABLATION_MAX_TASKS 16

typedef struct {
    char name[32];                // block name, or "teacher"
    int is_teacher;
    pn_eval_result task[PN_ABLATION_MAX_TASKS];  // in result.task_names order
    double mean_accuracy;         // mean of the task accuracies
    int64_t trainable_params;     // linear blocks on the linear layers (teacher: 0)
    int64_t supernet_params;      // every linear path the supernet trained (all layers; teacher: 0)
    int64_t state_bytes;          // per sequence at context L (attn + swa + linear)
    int64_t state_attn, state_swa, state_linear;
    double train_tokens_per_s;    // NaN for the teacher
    double train_seconds;         // sum of step times (from metrics.jsonl); NaN for the teacher
    double final_loss;            // distillation loss of the last step; NaN for the teacher
    double valid_loss;            // last validation loss (NaN if none)
    int64_t steps;                // optimizer steps of the run (teacher: 0)
    double eval_seconds;          // wall time of the task evaluation
    double prefill_tokens_per_s;  // engine prefill of the throughput prompt
    double decode_tokens_per_s;   // batch / median decode step time
    double decode_step_ms;        // median decode step
} pn_ablation_row;

typedef struct {
    int n_rows;                   // 1 + number of blocks
    pn_ablation_row *rows;        // rows[0] = teacher, then ablation.blocks in order
    int n_tasks;
    char task_names[PN_ABLATION_MAX_TASKS][128];
    char task_kind[PN_ABLATION_MAX_TASKS][8];  // "mc" | "gen"
    int64_t context;              // L of the state bytes
    int n_layers;
    char placement[512];          // e.g. "attn: 1 | swa: - | linear: 0, 2, 3"
    int threads;                  // OpenMP threads of the measurements
    char cpu[256];
    char date[64];
} pn_ablation_result;

// Validates what the ablation needs beyond the YAML schema: every block name
// known and listed once, supernet.sampling fixed, train.mode supernet,
// model.path, data.train, data.tasks_dir and search.tasks given. Exits 2
// naming `where` (the config file), the key and the value.
void pn_ablation_check(const pn_job_config *c, const char *where);
// Replaces ablation.blocks with the comma-separated names in `list` (checked
// like the config's: unknown or repeated names exit 2 naming `where`).
void pn_ablation_set_blocks(pn_job_config *c, const char *list, const char *where);
// The whole ablation (see the top of this file). `where` names the config in
// messages. out is filled (free with pn_ablation_result_free). Returns 0.
int pn_ablation_run(const pn_job_config *c, const char *where, pn_ablation_result *out);
// ablation.md / .csv / .json into out_dir (atomic), and ablation.png when
// c->ablation.plot (a failure to plot only warns).
void pn_ablation_write(const pn_ablation_result *r, const pn_job_config *c, const char *where, const char *out_dir);
void pn_ablation_result_free(pn_ablation_result *r);
