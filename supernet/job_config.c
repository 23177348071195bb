// job_config.c — the schema of a postnas job file (see job_config.h).
//
// One table per section; each line is a key with its storage, default, range
// and the one-line doc shown in error messages. Defaults are the documented
// decisions of DESIGN.md ("Decisions where the paper is silent"); ranges reject
// values that cannot run rather than values that are merely unusual.
#include "job_config.h"

const char *const pn_job_device_names[] = {"cpu", "cuda", NULL};
const char *const pn_job_log_level_names[] = {"debug", "info", "warn", "error", NULL};
const char *const pn_job_dtype_names[] = {"f32", "bf16", NULL};
const char *const pn_linear_block_names[] = {"jetblock", "gated_deltanet", "deltanet", "gla",
                                             "retnet",   "mamba2",         "rwkv7",    NULL};
const char *const pn_sampling_names[] = {"uniform_k", "bernoulli", "fixed", NULL};
const char *const pn_distill_names[] = {"mse", "kl", "both", NULL};
const char *const pn_linear_init_names[] = {"block", "copy_attn", NULL};
const char *const pn_objective_mc_names[] = {"nll", "teacher_forced_acc", NULL};
const char *const pn_objective_gen_names[] = {"exact_match", "teacher_forced_acc", NULL};
const char *const pn_train_mode_names[] = {"backbone", "supernet", NULL};
const char *const pn_arch_type_names[] = {"qwen2", "llama", "qwen3", NULL};

#define INT_MAX_D 2147483647.0

#define F(S, m) offsetof(S, m)

static const pn_cfg_field run_schema[] = {
    {"name", PN_CFG_STRING, F(pn_run_config, name), "postnas-run", "run name, used in reports"},
    {"out_dir", PN_CFG_STRING, F(pn_run_config, out_dir), "results/run", "directory for this run's outputs"},
    {"seed", PN_CFG_INT64, F(pn_run_config, seed), "1234", "seed of every random stream", PN_CFG_MIN(0)},
    {"device", PN_CFG_ENUM, F(pn_run_config, device), "cpu", "compute device", PN_CFG_VALUES(pn_job_device_names)},
    {"threads", PN_CFG_INT, F(pn_run_config, threads), "0", "CPU threads; 0 = all cores", PN_CFG_RANGE(0, 4096)},
    {"log_level", PN_CFG_ENUM, F(pn_run_config, log_level), "info", "log verbosity",
     PN_CFG_VALUES(pn_job_log_level_names)},
    {"gemm_autotune", PN_CFG_INT, F(pn_run_config, gemm_autotune), "0",
     "run.device cuda: time this many cuBLASLt candidates per GEMM shape and keep the fastest (2..8; 0 or 1 = the "
     "heuristic's first, or POSTNAS_GEMM_AUTOTUNE)",
     PN_CFG_RANGE(0, 8)},
    PN_CFG_END,
};

static const pn_cfg_field model_schema[] = {
    {"path", PN_CFG_STRING, F(pn_model_config, path), NULL,
     "HF model directory: config.json + safetensors; \"\" = train from scratch (arch section)", PN_CFG_REQUIRED},
    {"dtype", PN_CFG_ENUM, F(pn_model_config, dtype), "f32", "dtype of the frozen weights in compute",
     PN_CFG_VALUES(pn_job_dtype_names)},
    PN_CFG_END,
};

static const pn_cfg_field arch_schema[] = {
    {"model_type", PN_CFG_ENUM, F(pn_arch_config, model_type), "qwen2", "architecture family (HF model_type)",
     PN_CFG_VALUES(pn_arch_type_names)},
    {"vocab_size", PN_CFG_INT, F(pn_arch_config, vocab_size), "0", "vocabulary size", PN_CFG_RANGE(0, INT_MAX_D)},
    {"hidden_size", PN_CFG_INT, F(pn_arch_config, hidden_size), "0", "model width C", PN_CFG_RANGE(0, 1048576)},
    {"intermediate_size", PN_CFG_INT, F(pn_arch_config, intermediate_size), "0", "MLP width I",
     PN_CFG_RANGE(0, 4194304)},
    {"num_layers", PN_CFG_INT, F(pn_arch_config, num_layers), "0", "decoder layers; 0 = no arch (use model.path)",
     PN_CFG_RANGE(0, 4096)},
    {"num_heads", PN_CFG_INT, F(pn_arch_config, num_heads), "0", "query heads", PN_CFG_RANGE(0, 4096)},
    {"num_kv_heads", PN_CFG_INT, F(pn_arch_config, num_kv_heads), "0", "key/value heads; 0 = num_heads",
     PN_CFG_RANGE(0, 4096)},
    {"head_dim", PN_CFG_INT, F(pn_arch_config, head_dim), "0", "per-head dim; 0 = hidden_size / num_heads",
     PN_CFG_RANGE(0, 65536)},
    {"rope_theta", PN_CFG_DOUBLE, F(pn_arch_config, rope_theta), "10000", "RoPE base", PN_CFG_GT(0)},
    {"rms_norm_eps", PN_CFG_DOUBLE, F(pn_arch_config, rms_norm_eps), "1e-6", "RMSNorm epsilon", PN_CFG_GT(0)},
    {"tie_embeddings", PN_CFG_BOOL, F(pn_arch_config, tie_embeddings), "true", "LM head shares the embedding"},
    PN_CFG_END,
};

static const pn_cfg_field data_schema[] = {
    {"train", PN_CFG_STRING, F(pn_data_config, train), "\"\"", "training token file (HDF5 or .bin); empty = none"},
    {"valid", PN_CFG_STRING, F(pn_data_config, valid), "\"\"", "validation token file; empty = none"},
    {"seq_len", PN_CFG_INT, F(pn_data_config, seq_len), "256", "training sequence length T",
     PN_CFG_RANGE(8, 1048576)},
    {"batch_size", PN_CFG_INT, F(pn_data_config, batch_size), "8", "sequences per step B",
     PN_CFG_RANGE(1, 65536)},
    {"tasks_dir", PN_CFG_STRING, F(pn_data_config, tasks_dir), "\"\"", "folder of task JSONL files; empty = none"},
    PN_CFG_END,
};

static const pn_cfg_field supernet_schema[] = {
    {"block", PN_CFG_ENUM, F(pn_supernet_config, block), "jetblock", "linear-attention block of the linear paths",
     PN_CFG_VALUES(pn_linear_block_names)},
    {"k_max", PN_CFG_INT, F(pn_supernet_config, k_max), "2", "most full-attention layers sampled per step",
     PN_CFG_RANGE(0, 1024)},
    {"sampling", PN_CFG_ENUM, F(pn_supernet_config, sampling), "uniform_k",
     "subnet sampling: k ~ Uniform{0..k_max} layers, Bernoulli(p_full) per layer, or fixed (full_layers/swa_layers)",
     PN_CFG_VALUES(pn_sampling_names)},
    {"p_full", PN_CFG_DOUBLE, F(pn_supernet_config, p_full), "0.25", "Bernoulli P(layer keeps full attention)",
     PN_CFG_RANGE(0, 1)},
    {"swa_window", PN_CFG_INT, F(pn_supernet_config, swa_window), "64", "sliding-window attention window",
     PN_CFG_RANGE(1, 1048576)},
    {"distill", PN_CFG_ENUM, F(pn_supernet_config, distill), "mse",
     "distillation target: MSE on final hidden state, KL on logits, or both", PN_CFG_VALUES(pn_distill_names)},
    {"mse_weight", PN_CFG_DOUBLE, F(pn_supernet_config, mse_weight), "1.0", "weight of the MSE term", PN_CFG_MIN(0)},
    {"kl_weight", PN_CFG_DOUBLE, F(pn_supernet_config, kl_weight), "1.0", "weight of the KL term", PN_CFG_MIN(0)},
    {"temperature", PN_CFG_DOUBLE, F(pn_supernet_config, temperature), "1.0", "KL softmax temperature",
     PN_CFG_GT(0)},
    {"linear_init", PN_CFG_ENUM, F(pn_supernet_config, linear_init), "block",
     "linear-path init: the block's own, or copy q/k/v/o from attention where shapes match",
     PN_CFG_VALUES(pn_linear_init_names)},
    {"full_layers", PN_CFG_INT_LIST, F(pn_supernet_config, full_layers), "[]",
     "sampling fixed: layers kept on full attention (0-based)"},
    {"swa_layers", PN_CFG_INT_LIST, F(pn_supernet_config, swa_layers), "[]",
     "sampling fixed: layers on sliding-window attention (0-based)"},
    {"heads", PN_CFG_INT, F(pn_supernet_config, heads), "0", "linear block heads; 0 = the block's default",
     PN_CFG_RANGE(0, 4096)},
    {"key_dim", PN_CFG_INT, F(pn_supernet_config, key_dim), "0", "linear block key dim per head; 0 = default",
     PN_CFG_RANGE(0, 4096)},
    {"value_dim", PN_CFG_INT, F(pn_supernet_config, value_dim), "0", "linear block value dim per head; 0 = default",
     PN_CFG_RANGE(0, 4096)},
    {"conv_size", PN_CFG_INT, F(pn_supernet_config, conv_size), "0", "linear block short-conv taps; 0 = default",
     PN_CFG_RANGE(0, 64)},
    PN_CFG_END,
};

static const pn_cfg_field train_schema[] = {
    {"mode", PN_CFG_ENUM, F(pn_train_config, mode), "supernet",
     "backbone (LM loss, every weight trains) | supernet (distillation of the linear paths)",
     PN_CFG_VALUES(pn_train_mode_names)},
    {"steps", PN_CFG_INT, F(pn_train_config, steps), "200", "optimizer steps", PN_CFG_RANGE(0, INT_MAX_D)},
    {"lr", PN_CFG_DOUBLE, F(pn_train_config, lr), "1e-3", "peak AdamW learning rate", PN_CFG_MIN(0)},
    {"min_lr_ratio", PN_CFG_DOUBLE, F(pn_train_config, min_lr_ratio), "0.1", "cosine-decay floor as a fraction of lr",
     PN_CFG_RANGE(0, 1)},
    {"warmup_steps", PN_CFG_INT, F(pn_train_config, warmup_steps), "20", "linear warm-up steps",
     PN_CFG_RANGE(0, INT_MAX_D)},
    {"weight_decay", PN_CFG_DOUBLE, F(pn_train_config, weight_decay), "0.1", "AdamW decoupled weight decay",
     PN_CFG_MIN(0)},
    {"beta1", PN_CFG_DOUBLE, F(pn_train_config, beta1), "0.9", "AdamW first-moment decay", PN_CFG_RANGE(0, 1)},
    {"beta2", PN_CFG_DOUBLE, F(pn_train_config, beta2), "0.95", "AdamW second-moment decay", PN_CFG_RANGE(0, 1)},
    {"grad_clip", PN_CFG_DOUBLE, F(pn_train_config, grad_clip), "1.0", "global gradient-norm clip; 0 = off",
     PN_CFG_MIN(0)},
    {"grad_accum", PN_CFG_INT, F(pn_train_config, grad_accum), "1", "micro-batches per optimizer step",
     PN_CFG_RANGE(1, 4096)},
    {"eval_every", PN_CFG_INT, F(pn_train_config, eval_every), "50", "validate every N steps; 0 = never",
     PN_CFG_RANGE(0, INT_MAX_D)},
    {"eval_batches", PN_CFG_INT, F(pn_train_config, eval_batches), "8",
     "validation batches (of data.batch_size windows) per evaluation", PN_CFG_RANGE(1, INT_MAX_D)},
    {"ckpt_every", PN_CFG_INT, F(pn_train_config, ckpt_every), "100", "checkpoint every N steps; 0 = only at the end",
     PN_CFG_RANGE(0, INT_MAX_D)},
    {"ckpt_keep", PN_CFG_INT, F(pn_train_config, ckpt_keep), "2", "newest checkpoints kept on disk; 0 = all",
     PN_CFG_RANGE(0, INT_MAX_D)},
    {"log_every", PN_CFG_INT, F(pn_train_config, log_every), "1", "metrics.jsonl line every N steps",
     PN_CFG_RANGE(1, INT_MAX_D)},
    PN_CFG_END,
};

static const pn_cfg_field search_schema[] = {
    {"beam_width", PN_CFG_INT, F(pn_search_config, beam_width), "4", "beam size of the placement search",
     PN_CFG_RANGE(1, 1024)},
    {"k_max", PN_CFG_INT, F(pn_search_config, k_max), "2", "full-attention layers to place", PN_CFG_RANGE(0, 1024)},
    {"objective_mc", PN_CFG_ENUM, F(pn_search_config, objective_mc), "nll",
     "multiple-choice score: answer NLL or teacher-forced accuracy", PN_CFG_VALUES(pn_objective_mc_names)},
    {"objective_gen", PN_CFG_ENUM, F(pn_search_config, objective_gen), "exact_match",
     "generative score: greedy exact match or teacher-forced accuracy", PN_CFG_VALUES(pn_objective_gen_names)},
    {"swa", PN_CFG_BOOL, F(pn_search_config, swa), "true", "place SWA layers after the full-attention ones"},
    {"tasks", PN_CFG_STRING_LIST, F(pn_search_config, tasks), "[retrieval, math, knowledge]",
     "task names (files data.tasks_dir/NAME.jsonl)"},
    {"max_new_tokens", PN_CFG_INT, F(pn_search_config, max_new_tokens), "16",
     "greedy decode length for generative tasks", PN_CFG_RANGE(1, 65536)},
    {"max_examples", PN_CFG_INT64, F(pn_search_config, max_examples), "0",
     "score only the first N examples of each suite; 0 = all", PN_CFG_MIN(0)},
    {"swa_max", PN_CFG_INT, F(pn_search_config, swa_max), "2", "most SWA layers the SWA placement may add",
     PN_CFG_RANGE(0, 1024)},
    PN_CFG_END,
};

static const pn_cfg_field hw_search_schema[] = {
    {"enabled", PN_CFG_BOOL, F(pn_hw_search_config, enabled), "false", "run the hardware-aware search"},
    {"context", PN_CFG_INT, F(pn_hw_search_config, context), "65536",
     "context length L for cache bytes and decode throughput", PN_CFG_RANGE(1, 1073741824)},
    {"heads", PN_CFG_INT_LIST, F(pn_hw_search_config, heads), "[]", "candidate head counts; [] = the base design's",
     PN_CFG_RANGE(1, 4096)},
    {"key_dims", PN_CFG_INT_LIST, F(pn_hw_search_config, key_dims), "[]", "candidate key dims; [] = the base design's",
     PN_CFG_RANGE(1, 65536)},
    {"value_dims", PN_CFG_INT_LIST, F(pn_hw_search_config, value_dims), "[]",
     "candidate value dims; [] = the base design's", PN_CFG_RANGE(1, 65536)},
    {"conv_sizes", PN_CFG_INT_LIST, F(pn_hw_search_config, conv_sizes), "[]",
     "candidate short-conv kernel sizes; [] = the base design's", PN_CFG_RANGE(1, 1024)},
    {"throughput_tolerance", PN_CFG_DOUBLE, F(pn_hw_search_config, throughput_tolerance), "0.05",
     "keep candidates within this fraction of the best throughput", PN_CFG_RANGE(0, 1)},
    {"budget_bytes", PN_CFG_INT64, F(pn_hw_search_config, budget_bytes), "0",
     "cache+state bytes per sequence at context; 0 = the base design's", PN_CFG_MIN(0)},
    {"budget_min_fraction", PN_CFG_DOUBLE, F(pn_hw_search_config, budget_min_fraction), "0",
     "exclude candidates below this fraction of the budget (0.99: designs of equal cache size, as the paper's "
     "Table 2)", PN_CFG_RANGE(0, 1)},
    {"throughput_context", PN_CFG_INT, F(pn_hw_search_config, throughput_context), "1024",
     "tokens per sequence prefilled before the timed decode steps: min(context, this)", PN_CFG_RANGE(1, 1073741824)},
    {"throughput_batch", PN_CFG_INT, F(pn_hw_search_config, throughput_batch), "8",
     "sequences per decode step in the tokens/s measurement", PN_CFG_RANGE(1, 65536)},
    {"throughput_steps", PN_CFG_INT, F(pn_hw_search_config, throughput_steps), "32",
     "timed decode steps (median step time is reported)", PN_CFG_RANGE(1, 1000000)},
    {"throughput_warmup", PN_CFG_INT, F(pn_hw_search_config, throughput_warmup), "4",
     "untimed decode steps before the timed ones", PN_CFG_RANGE(0, 1000000)},
    {"throughput_rounds", PN_CFG_INT, F(pn_hw_search_config, throughput_rounds), "3",
     "measurement rounds, round-robin over the candidates (median over all timed steps)", PN_CFG_RANGE(1, 1000)},
    {"train_steps", PN_CFG_INT, F(pn_hw_search_config, train_steps), "0",
     "distillation steps per candidate; 0 = train.steps", PN_CFG_RANGE(0, INT_MAX_D)},
    {"max_examples", PN_CFG_INT64, F(pn_hw_search_config, max_examples), "0",
     "examples per task (the first N); 0 = all", PN_CFG_MIN(0)},
    {"plot", PN_CFG_BOOL, F(pn_hw_search_config, plot), "true",
     "write hw_search.png with scripts/plot_hw_search.py (python3 + matplotlib)"},
    {"throughput_model", PN_CFG_STRING, F(pn_hw_search_config, throughput_model), "\"\"",
     "model whose layout is timed and budgeted: a Jet-Nemotron preset (jet-nemotron-2b, jet-nemotron-4b) or a "
     "jet_nemotron HF directory (random weights); \"\" = model.path with the supernet placement"},
    {"accuracy", PN_CFG_BOOL, F(pn_hw_search_config, accuracy), "true",
     "distil and score every candidate; false = throughput only"},
    {"throughput_from", PN_CFG_STRING, F(pn_hw_search_config, throughput_from), "\"\"",
     "an earlier hw_search.json whose decode numbers are used instead of measuring; \"\" = measure"},
    PN_CFG_END,
};

static const pn_cfg_field demo_schema[] = {
    {"inputs", PN_CFG_STRING, F(pn_demo_config, inputs), "\"\"",
     "safetensors file with input_ids; empty = random ids"},
    {"batch", PN_CFG_INT, F(pn_demo_config, batch), "2", "demo batch size B", PN_CFG_RANGE(1, 65536)},
    {"seq_len", PN_CFG_INT, F(pn_demo_config, seq_len), "32", "demo sequence length T", PN_CFG_RANGE(1, 1048576)},
    PN_CFG_END,
};

static const pn_cfg_field ablation_schema[] = {
    {"blocks", PN_CFG_STRING_LIST, F(pn_ablation_config, blocks),
     "[jetblock, gated_deltanet, deltanet, gla, retnet, mamba2, rwkv7]",
     "linear blocks to compare, each trained on the fixed supernet placement"},
    {"context", PN_CFG_INT, F(pn_ablation_config, context), "65536",
     "context length L for the decode-state bytes per sequence", PN_CFG_RANGE(1, 1073741824)},
    {"throughput_batch", PN_CFG_INT, F(pn_ablation_config, throughput_batch), "8",
     "sequences per decode step in the CPU tokens/s measurement", PN_CFG_RANGE(1, 4096)},
    {"throughput_prompt", PN_CFG_INT, F(pn_ablation_config, throughput_prompt), "256",
     "tokens per sequence prefilled before the timed decode steps", PN_CFG_RANGE(1, 1048576)},
    {"throughput_steps", PN_CFG_INT, F(pn_ablation_config, throughput_steps), "32",
     "timed decode steps (median step time is reported)", PN_CFG_RANGE(1, 1000000)},
    {"max_examples", PN_CFG_INT64, F(pn_ablation_config, max_examples), "0",
     "examples per task (the first N); 0 = all", PN_CFG_MIN(0)},
    {"plot", PN_CFG_BOOL, F(pn_ablation_config, plot), "true",
     "write ablation.png with scripts/plot_ablation.py (python3 + matplotlib)"},
    PN_CFG_END,
};

const pn_cfg_field pn_job_config_schema[] = {
    {"run", PN_CFG_SECTION, F(pn_job_config, run), NULL, "run identity and runtime", PN_CFG_NESTED(run_schema)},
    {"model", PN_CFG_SECTION, F(pn_job_config, model), NULL, "the pretrained model", PN_CFG_NESTED(model_schema)},
    {"arch", PN_CFG_SECTION, F(pn_job_config, arch), NULL, "a model trained from scratch (model.path \"\")",
     PN_CFG_NESTED(arch_schema)},
    {"data", PN_CFG_SECTION, F(pn_job_config, data), NULL, "training data and tasks", PN_CFG_NESTED(data_schema)},
    {"train", PN_CFG_SECTION, F(pn_job_config, train), NULL, "the training loop (both modes)",
     PN_CFG_NESTED(train_schema)},
    {"supernet", PN_CFG_SECTION, F(pn_job_config, supernet), NULL, "supernet paths, sampling and distillation",
     PN_CFG_NESTED(supernet_schema)},
    {"search", PN_CFG_SECTION, F(pn_job_config, search), NULL, "placement beam search", PN_CFG_NESTED(search_schema)},
    {"hw_search", PN_CFG_SECTION, F(pn_job_config, hw_search), NULL, "hardware-aware search",
     PN_CFG_NESTED(hw_search_schema)},
    {"demo", PN_CFG_SECTION, F(pn_job_config, demo), NULL, "the demo command", PN_CFG_NESTED(demo_schema)},
    {"ablation", PN_CFG_SECTION, F(pn_job_config, ablation), NULL, "block ablation (postnas ablate)",
     PN_CFG_NESTED(ablation_schema)},
    PN_CFG_END,
};

void pn_job_config_load(pn_job_config *c, const char *path) { pn_config_load(pn_job_config_schema, c, path); }

void pn_job_config_load_string(pn_job_config *c, const char *text, size_t n, const char *name) {
    pn_config_load_string(pn_job_config_schema, c, text, n, name);
}

void pn_job_config_print(const pn_job_config *c, FILE *f) { pn_config_print(pn_job_config_schema, c, f); }

void pn_job_config_write_resolved(const pn_job_config *c, const char *out_dir) {
    pn_config_write_resolved(pn_job_config_schema, c, out_dir);
}

void pn_job_config_free(pn_job_config *c) { pn_config_free(pn_job_config_schema, c); }
