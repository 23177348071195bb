// job_config.h — the typed configuration of a postnas job (one YAML file).
//
// Design: one plain struct per YAML section, loaded through the schema table in
// job_config.c (core/yaml_config.h does the parsing and validation). Defaults
// follow the project's documented decisions (DESIGN.md "Decisions"), so an
// almost empty file is a valid job. Enum-valued keys are stored as `int` holding
// the index of the C enum declared next to them (same order as the YAML names).
// Strings are owned and never NULL after load; free with pn_job_config_free.
#pragma once
#include "core/yaml_config.h"

typedef enum { PN_DEVICE_CPU, PN_DEVICE_CUDA } pn_job_device;
typedef enum { PN_JOB_LOG_DEBUG, PN_JOB_LOG_INFO, PN_JOB_LOG_WARN, PN_JOB_LOG_ERROR } pn_job_log_level;
typedef enum { PN_JOB_DTYPE_F32, PN_JOB_DTYPE_BF16 } pn_job_dtype;
typedef enum {
    PN_LINEAR_JETBLOCK,
    PN_LINEAR_GATED_DELTANET,
    PN_LINEAR_DELTANET,
    PN_LINEAR_GLA,
    PN_LINEAR_RETNET,
    PN_LINEAR_MAMBA2,
    PN_LINEAR_RWKV7,
} pn_linear_block;
typedef enum { PN_SAMPLING_UNIFORM_K, PN_SAMPLING_BERNOULLI, PN_SAMPLING_FIXED } pn_sampling;
typedef enum { PN_DISTILL_MSE, PN_DISTILL_KL, PN_DISTILL_BOTH } pn_distill;
typedef enum { PN_LINEAR_INIT_BLOCK, PN_LINEAR_INIT_COPY_ATTN } pn_linear_init;
typedef enum { PN_OBJ_MC_NLL, PN_OBJ_MC_TEACHER_FORCED_ACC } pn_objective_mc;
typedef enum { PN_OBJ_GEN_EXACT_MATCH, PN_OBJ_GEN_TEACHER_FORCED_ACC } pn_objective_gen;
typedef enum { PN_TRAIN_BACKBONE, PN_TRAIN_SUPERNET } pn_train_mode;
typedef enum { PN_ARCH_QWEN2, PN_ARCH_LLAMA, PN_ARCH_QWEN3 } pn_arch_type;

// YAML names of the enums above, NULL-terminated, in enum order.
extern const char *const pn_job_device_names[];
extern const char *const pn_job_log_level_names[];
extern const char *const pn_job_dtype_names[];
extern const char *const pn_linear_block_names[];  // block type names as in blocks/block.h
extern const char *const pn_sampling_names[];
extern const char *const pn_distill_names[];
extern const char *const pn_linear_init_names[];
extern const char *const pn_objective_mc_names[];
extern const char *const pn_objective_gen_names[];
extern const char *const pn_train_mode_names[];
extern const char *const pn_arch_type_names[];        // HF model_type strings

typedef struct {
    char *name;       // run name (used in reports)
    char *out_dir;    // where results/<run> files go
    int64_t seed;     // Philox seed of every random stream
    int device;       // pn_job_device
    int threads;      // OpenMP threads; 0 = all cores
    int log_level;    // pn_job_log_level
    int gemm_autotune;  // CUDA: cuBLASLt candidates timed per GEMM shape; 0 = heuristic (or the env)
} pn_run_config;

typedef struct {
    char *path;       // HF model directory (config.json + safetensors); "" = from scratch (arch)
    int dtype;        // pn_job_dtype: compute dtype of the frozen weights
} pn_model_config;

// A model trained from scratch (model.path ""): the numbers of its config.json.
// num_layers 0 means "no arch given"; num_kv_heads 0 = num_heads; head_dim 0 =
// hidden_size / num_heads. Consistency (divisibility etc.) is checked where the
// model is built (pn_arch_to_hf in supernet/trainer.h), which names the key.
typedef struct {
    int model_type;          // pn_arch_type
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int head_dim;
    double rope_theta;
    double rms_norm_eps;
    bool tie_embeddings;
} pn_arch_config;

typedef struct {
    char *train;      // training token file(s) ("" = none)
    char *valid;      // token file for validation loss ("" = none)
    int seq_len;      // T of a training sequence
    int batch_size;   // B per step (per device)
    char *tasks_dir;  // folder of task JSONL files for search ("" = none)
} pn_data_config;

typedef struct {
    int block;            // pn_linear_block: the linear path of every layer
    int k_max;            // full-attention layers per step: k ~ Uniform{0..k_max}
    int sampling;         // pn_sampling
    double p_full;        // Bernoulli sampling: P(layer keeps full attention)
    int swa_window;       // sliding-window size of the SWA path
    int distill;          // pn_distill
    double mse_weight;    // weight of MSE on final hidden states
    double kl_weight;     // weight of KL on logits
    double temperature;   // KL temperature
    int linear_init;      // pn_linear_init
    // sampling = fixed: every step trains the one subnet with these layers on
    // full attention and these on SWA (the rest linear) — ablations and the
    // hardware search train a chosen placement this way.
    pn_cfg_ints full_layers;
    pn_cfg_ints swa_layers;
    // Linear-block dimensions; 0 = the block's default for the model width.
    int heads;            // H
    int key_dim;          // K per head
    int value_dim;        // V per head
    int conv_size;        // short-conv taps (blocks that have one)
} pn_supernet_config;

// The optimisation loop (supernet/trainer.h), shared by both modes.
typedef struct {
    int mode;             // pn_train_mode: backbone (LM loss, all trainable) | supernet (distillation)
    int steps;            // optimizer steps
    double lr;            // peak AdamW learning rate
    double min_lr_ratio;  // cosine decay floor as a fraction of lr
    int warmup_steps;     // linear warm-up steps
    double weight_decay;  // AdamW decoupled weight decay
    double beta1, beta2;  // AdamW moment decay rates
    double grad_clip;     // global-norm clip; 0 = off
    int grad_accum;       // micro-batches per optimizer step
    int eval_every;       // validation every N steps; 0 = never
    int eval_batches;     // validation batches of data.batch_size windows
    int ckpt_every;       // checkpoint every N steps; 0 = only at the end
    int ckpt_keep;        // newest checkpoints kept; 0 = all
    int log_every;        // metrics.jsonl line every N steps
} pn_train_config;

typedef struct {
    int beam_width;            // beam size of the placement search
    int k_max;                 // full-attention layers to place
    int objective_mc;          // pn_objective_mc
    int objective_gen;         // pn_objective_gen
    bool swa;                  // also place SWA layers after full attention
    pn_cfg_strings tasks;      // task names (files tasks_dir/NAME.jsonl)
    int max_new_tokens;        // greedy decode length for generative tasks
    int64_t max_examples;      // > 0: score only the first N examples of each suite; 0 = all
    int swa_max;               // most SWA layers the SWA placement may add
} pn_search_config;

typedef struct {
    bool enabled;                 // run the hardware-aware search
    int context;                  // context length L for cache/state bytes and throughput
    pn_cfg_ints heads;            // candidate head counts ([] = the base design's)
    pn_cfg_ints key_dims;         // candidate key dims
    pn_cfg_ints value_dims;       // candidate value dims
    pn_cfg_ints conv_sizes;       // candidate short-conv kernel sizes
    double throughput_tolerance;  // keep candidates within this fraction of the best throughput
    int64_t budget_bytes;         // cache+state bytes per sequence at L; 0 = the base design's
    double budget_min_fraction;   // candidates below this fraction of the budget are excluded (0 = none)
    // search/hw_search.h: how each candidate is measured and trained.
    int throughput_context;       // tokens prefilled before the timed decode steps: min(context, this)
    int throughput_batch;         // sequences per decode step in the tokens/s measurement
    int throughput_steps;         // timed decode steps (median step time)
    int throughput_warmup;        // untimed decode steps before them
    int throughput_rounds;        // round-robin measurement rounds over the candidates
    int train_steps;              // distillation steps per candidate; 0 = train.steps
    int64_t max_examples;         // per task, the first N; 0 = every example
    bool plot;                    // write hw_search.png (scripts/plot_hw_search.py; skipped with a warning)
    char *throughput_model;       // "" = model.path with the supernet placement; else a Jet-Nemotron preset
                                  // name (jet-nemotron-2b / -4b) or a jet_nemotron HF directory: bytes and
                                  // throughput on its layout (random weights), accuracy on model.path
    bool accuracy;                // false: throughput only (no distillation, no task accuracy)
    char *throughput_from;        // "" = measure; else an earlier hw_search.json whose decode numbers are used
} pn_hw_search_config;

typedef struct {
    char *inputs;  // safetensors file with input_ids; "" = random ids
    int batch;     // B
    int seq_len;   // T
} pn_demo_config;

// `postnas ablate` (search/ablation.h): every listed linear block trains the same
// fixed placement (supernet.sampling fixed) with the same train/data/seed, then
// is compared with the teacher on accuracy, trainable parameters, state bytes
// and measured CPU throughput.
typedef struct {
    pn_cfg_strings blocks;  // linear block names (pn_linear_block_names); checked by the ablation runner
    int context;            // context length L for the state bytes per sequence
    int throughput_batch;   // sequences per decode step in the tokens/s measurement
    int throughput_prompt;  // tokens per sequence prefilled before the timed decode steps
    int throughput_steps;   // timed decode steps (median step time reported)
    int64_t max_examples;   // per task; 0 = every example
    bool plot;              // write ablation.png (scripts/plot_ablation.py; skipped with a warning if unavailable)
} pn_ablation_config;

typedef struct {
    pn_run_config run;
    pn_model_config model;
    pn_arch_config arch;
    pn_data_config data;
    pn_train_config train;
    pn_supernet_config supernet;
    pn_search_config search;
    pn_hw_search_config hw_search;
    pn_demo_config demo;
    pn_ablation_config ablation;
} pn_job_config;

// The schema table (for generic tools: printing, docs).
extern const pn_cfg_field pn_job_config_schema[];

// Defaults, then the file; exits 2 with "PATH:LINE:COL: message" on bad input.
void pn_job_config_load(pn_job_config *c, const char *path);
// Same from memory; `name` stands for the file in messages.
void pn_job_config_load_string(pn_job_config *c, const char *text, size_t n, const char *name);
// Every key, defaults included, as YAML.
void pn_job_config_print(const pn_job_config *c, FILE *f);
// mkdir -p out_dir; write out_dir/config.resolved.yaml atomically.
void pn_job_config_write_resolved(const pn_job_config *c, const char *out_dir);
void pn_job_config_free(pn_job_config *c);
