// bench_train_step.c — `postnas bench train-step`: the supernet training step on the GPU,
// timed end to end, with its model FLOPs and MFU (see bench_train_step.h).
//
// Design. The step timed is the one `postnas train` would run with run.device cuda if the
// optimizer also lived on the device: subnet sampling (host, fixed-seed Philox stream),
// pn_csupernet_distill_step on a fresh batch of random ids (the teacher cache is keyed on
// the ids, so a fresh batch makes every timed step pay the teacher forward, as a real run
// over new data does), the device gradient norm, clipping at train.grad_clip's default,
// and pn_csupernet_adamw_step. The distill step and the norm synchronise, and the step
// ends with pn_cuda_sync, so host wall-clock time around the step is the step's time;
// drawing the next batch's ids happens outside the timed region.
// FLOPs are counted per step from the shapes and the step's subnet (the counting rule is
// in the header and written into the JSON); uniform_k subnets differ from step to step,
// so MFU is Σ FLOPs / Σ time over the timed steps.
// Argument checks are outside the CUDA part so a CPU-only build reports bad options the
// same way before saying it has no CUDA.
#include "search/bench_train_step.h"
#include "core/common.h"
#include "core/log.h"

const char *const pn_train_step_flops_formula =
    "per token and layer, forward: MLP 6*C*I; full attention 2*C*K*(2H+2Hkv) + 4*H*K*(T+1)/2 (causal); SWA the "
    "same with min(t,window) keys; linear path = block flops_per_token; LM head 2*C*Vocab when the loss uses "
    "logits. step = teacher fwd (all attention) + student fwd (subnet) + student bwd; bwd = 0 without a linear "
    "layer, else from the lowest linear layer up: frozen GEMMs (MLP, attn projections, LM head) 1x fwd (input "
    "grad only), attention scores/values 2x fwd, linear paths 2x fwd (input + weight grads). Norms, RoPE, "
    "element-wise ops and the loss not counted; multiply-add = 2";

// Mean keys a causal query sees over positions t = 1..T, at most `window` (0 = no limit).
static double causal_keys(int T, int window) {
    double s = 0;
    for (int t = 1; t <= T; t++) s += window > 0 && t > window ? window : t;
    return s / T;
}

pn_train_step_flops pn_train_step_flops_of(const pn_supernet *sn, const pn_subnet *s, int B, int T) {
    const pn_backbone *bb = sn->bb;
    const double N = (double)B * T, C = bb->C, I = bb->I;
    const double mlp = 6.0 * C * I;
    const double head = pn_distill_needs_logits(sn->cfg.distill) ? 2.0 * C * bb->V : 0.0;
    int lowest = -1;
    for (int l = 0; l < sn->n_layers && lowest < 0; l++)
        if (s->path[l] == PN_PATH_LINEAR) lowest = l;
    pn_train_step_flops f = {0, 0, 0, 0};
    for (int l = 0; l < sn->n_layers; l++) {
        const pn_block_cfg *a = &bb->layers[l].attn.cfg;
        const double proj = 2.0 * C * a->K * (2.0 * a->H + 2.0 * a->H_kv);
        const double core_full = 4.0 * a->H * a->K * causal_keys(T, 0);
        f.teacher_fwd += N * (mlp + proj + core_full);
        double fwd = 0, bwd = 0;
        if (s->path[l] == PN_PATH_LINEAR) {
            fwd = sn->lin_type->flops_per_token(&sn->lin[l].cfg, T);
            bwd = 2.0 * fwd;
        } else {
            const double core = s->path[l] == PN_PATH_SWA ? 4.0 * a->H * a->K * causal_keys(T, sn->cfg.swa_window)
                                                          : core_full;
            fwd = proj + core;
            bwd = proj + 2.0 * core;
        }
        f.student_fwd += N * (mlp + fwd);
        if (lowest >= 0 && l >= lowest) f.student_bwd += N * (mlp + bwd);
    }
    f.teacher_fwd += N * head;
    f.student_fwd += N * head;
    if (lowest >= 0) f.student_bwd += N * head;
    f.total = f.teacher_fwd + f.student_fwd + f.student_bwd;
    return f;
}

#define TS_WHERE "bench train-step"

// Index of name in a NULL-terminated list, or -1.
static int name_index(const char *const *names, const char *name) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

static void list_names(char *out, size_t n, const char *const *names) {
    out[0] = 0;
    for (int i = 0; names[i]; i++) {
        size_t o = strlen(out);
        snprintf(out + o, n - o, "%s%s", i ? ", " : "", names[i]);
    }
}

static const char *const subnet_names[] = {"uniform_k", "all_linear", NULL};

// Exits 2 naming the option for every bad value; fills the resolved enums.
static void args_check(const pn_bench_train_step_args *a, int *block, int *distill, int *subnet, int *keep) {
    char list[512];
    const char *dev = a->device ? a->device : "cuda";
    if (strcmp(dev, "cuda") != 0)
        pn_die_input(TS_WHERE, "--device %s is not supported: the train-step benchmark times the CUDA supernet step "
                               "(--device cuda)", dev);
    if (!a->model_dir || !a->model_dir[0]) pn_die_input(TS_WHERE, "--model DIR is required");
    const char *bn = a->block ? a->block : "jetblock";
    *block = name_index(pn_linear_block_names, bn);
    if (*block < 0) {
        list_names(list, sizeof list, pn_linear_block_names);
        pn_die_input(TS_WHERE, "--block '%s' is not a linear block (expected one of: %s)", bn, list);
    }
    const char *dn = a->distill ? a->distill : "mse";
    *distill = name_index(pn_distill_names, dn);
    if (*distill < 0) {
        list_names(list, sizeof list, pn_distill_names);
        pn_die_input(TS_WHERE, "--distill '%s' is not a distillation loss (expected one of: %s)", dn, list);
    }
    const char *sn = a->subnet ? a->subnet : "uniform_k";
    *subnet = name_index(subnet_names, sn);
    if (*subnet < 0) pn_die_input(TS_WHERE, "--subnet '%s' is unknown (expected uniform_k or all_linear)", sn);
    if (a->batch < 1) pn_die_input(TS_WHERE, "--batch must be >= 1 (got %d)", a->batch);
    if (a->seq < 1) pn_die_input(TS_WHERE, "--seq must be >= 1 (got %d)", a->seq);
    if (a->steps < 1) pn_die_input(TS_WHERE, "--steps must be >= 1 (got %d)", a->steps);
    if (a->warmup < 0) pn_die_input(TS_WHERE, "--warmup must be >= 0 (got %d)", a->warmup);
    if (a->gemm_autotune < 0 || a->gemm_autotune == 1 || a->gemm_autotune > 8)
        pn_die_input(TS_WHERE, "--gemm-autotune %d: expected 0 (off) or 2..8 candidates", a->gemm_autotune);
    *keep = -1;
    if (a->mlp_keep && strcmp(a->mlp_keep, "auto") != 0) {
        char *end = NULL;
        const long v = strtol(a->mlp_keep, &end, 10);
        if (!a->mlp_keep[0] || *end || v < 0 || v > 1000000)
            pn_die_input(TS_WHERE, "--mlp-keep '%s': expected auto or a layer count >= 0", a->mlp_keep);
        *keep = (int)v;
    }
}

#ifndef POSTNAS_HAVE_CUDA

int pn_bench_train_step(const pn_bench_train_step_args *a, pn_bench_train_step_result *res) {
    int block, distill, subnet, keep;
    args_check(a, &block, &distill, &subnet, &keep);
    (void)res;
    pn_die_input(TS_WHERE, "--device cuda: postnas was built without CUDA (rebuild with -DPOSTNAS_CUDA=ON where nvcc "
                           "exists and run on a GPU machine)");
}

#else

#include "core/fileio.h"
#include "core/progress.h"
#include "core/rng.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "search/bench_util.h"
#include "supernet/csupernet.h"
#include "supernet/optim.h"
#include <jansson.h>
#include <math.h>

#define TS_SEED 20251123ull
#define MIB (1024.0 * 1024.0)

static void ts_json_write(const char *path, json_t *j) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    if (!text) pn_die_internal(__FILE__, __LINE__, "json_dumps failed");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        if (dir[0]) pn_mkdir_p(dir);
    }
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    pn_write_file_atomic(path, text, n + 1);
    free(text);
}

// Reads the file when it is a train-step rows JSON, replaces the row of the same label or
// appends it, refreshes the document's header fields, writes it back atomically.
static void ts_rows_merge_write(const char *path, json_t *row, const char *label, json_t *header) {
    json_t *doc = NULL;
    if (pn_file_exists(path)) {
        json_error_t err;
        doc = json_load_file(path, 0, &err);
        const char *kind = doc ? json_string_value(json_object_get(doc, "benchmark")) : NULL;
        if (!doc || !json_is_array(json_object_get(doc, "rows")) || !kind || strcmp(kind, "train-step") != 0) {
            pn_warn("bench train-step: %s is not a train-step rows JSON (%s); writing a new file", path,
                    doc ? "no \"benchmark\": \"train-step\" with \"rows\"" : err.text);
            json_decref(doc);
            doc = NULL;
        }
    }
    if (!doc) {
        doc = json_object();
        json_object_set_new(doc, "rows", json_array());
    }
    json_object_update(doc, header);
    json_t *rows = json_object_get(doc, "rows");
    size_t i;
    json_t *r;
    int replaced = 0;
    json_array_foreach(rows, i, r) {
        const char *rl = json_string_value(json_object_get(r, "label"));
        if (rl && strcmp(rl, label) == 0) {
            json_array_set(rows, i, row);
            replaced = 1;
            break;
        }
    }
    if (!replaced) json_array_append(rows, row);
    // Keep "rows" last so the header reads first.
    json_incref(rows);
    json_object_del(doc, "rows");
    json_object_set_new(doc, "rows", rows);
    ts_json_write(path, doc);
    json_decref(doc);
}

static json_t *num_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

int pn_bench_train_step(const pn_bench_train_step_args *a, pn_bench_train_step_result *res) {
    int block, distill, subnet, keep;
    args_check(a, &block, &distill, &subnet, &keep);
    const char *out = a->out_json && a->out_json[0] ? a->out_json : "results/bench/h100-train-step.json";
    if (pn_cuda_device_count() < 1) {
        fprintf(stderr, "postnas: device error: %s: no CUDA device is visible\n", TS_WHERE);
        exit(PN_EXIT_DEVICE);
    }
    const int B = a->batch, T = a->seq;

    // The config defaults of a supernet job (sampling uniform_k with k_max, lr, betas, clip,
    // weight decay), with the block and loss of the flags.
    char yaml[256];
    snprintf(yaml, sizeof yaml, "model:\n  path: \"\"\nsupernet:\n  block: %s\n  distill: %s\n",
             pn_linear_block_names[block], pn_distill_names[distill]);
    pn_job_config jc;
    pn_job_config_load_string(&jc, yaml, strlen(yaml), TS_WHERE " (built-in config)");

    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    pn_info("bench train-step: %s (%d SMs, %.1f GiB), model %s, block %s, B %d T %d, distill %s, subnet %s", info.name,
            info.multiprocessors, info.total_mem / 1073741824.0, a->model_dir, pn_linear_block_names[block], B, T,
            pn_distill_names[distill], subnet_names[subnet]);
    pn_backbone *bb = pn_backbone_load(a->model_dir);
    pn_supernet *sn = pn_supernet_create(bb, &jc.supernet, (uint64_t)jc.run.seed);
    pn_cuda_device_info_get(0, &info);
    const size_t free0 = info.free_mem;
    pn_csupernet *cs = pn_csupernet_create(sn);
    pn_csupernet_set_mlp_keep(cs, keep);
    if (a->gemm_autotune > 1) pn_cuda_gemm_autotune_set(a->gemm_autotune);

    char lab[512];
    if (a->label && a->label[0]) {
        snprintf(lab, sizeof lab, "%s", a->label);
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", a->model_dir);
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
        const char *slash = strrchr(dir, '/');
        snprintf(lab, sizeof lab, "%.255s %s B%d T%d %s %s", slash ? slash + 1 : dir, pn_linear_block_names[block],
                 B, T, pn_distill_names[distill], subnet_names[subnet]);
    }

    pn_rng sub_rng = pn_rng_make(TS_SEED, pn_hash_str("bench.train-step.subnet"));
    pn_rng id_rng = pn_rng_make(TS_SEED, pn_hash_str("bench.train-step.ids"));
    int64_t *ids = pn_malloc((size_t)B * T * sizeof(int64_t));
    const int total = a->warmup + a->steps;
    double *t_ms = pn_malloc((size_t)a->steps * sizeof(double));
    double sum_flops = 0, sum_s = 0, sum_k = 0, loss_first = NAN, loss_last = NAN;
    pn_train_step_flops f_sum = {0, 0, 0, 0};
    int nonfinite = 0;
    pn_cuda_host_stats hs = {0, 0, 0, 0.0, 0};  // summed over the timed steps
    const pn_train_config *tc = &jc.train;
    pn_progress prog;
    pn_progress_start(&prog, "bench train-step", total);
    for (int s = 0; s < total; s++) {
        for (int64_t i = 0; i < (int64_t)B * T; i++) ids[i] = (int64_t)pn_rng_below(&id_rng, (uint64_t)bb->V);
        pn_cuda_sync();
        pn_cuda_host_stats h0;
        pn_cuda_host_stats_get(&h0);
        const double t0 = pn_now_seconds();
        pn_subnet sub;
        if (subnet == 0)
            pn_supernet_sample(sn, &sub_rng, &sub);
        else
            pn_subnet_fill(&sub, sn->n_layers, PN_PATH_LINEAR);
        pn_csupernet_zero_grads(cs);
        const double loss = pn_csupernet_distill_step(cs, ids, B, T, &sub, 1.0f, NULL);
        const double gn = pn_csupernet_grad_norm(cs);
        if (tc->grad_clip > 0 && gn > tc->grad_clip) pn_csupernet_scale_grads(cs, (float)(tc->grad_clip / gn));
        const float lr = pn_lr_at(s, total, tc->warmup_steps, (float)tc->lr, (float)tc->min_lr_ratio);
        if (isfinite(gn))
            pn_csupernet_adamw_step(cs, s + 1, lr, (float)tc->beta1, (float)tc->beta2, PN_ADAMW_EPS,
                                    (float)tc->weight_decay);
        pn_cuda_sync();
        const double dt = pn_now_seconds() - t0;
        pn_cuda_host_stats h1;
        pn_cuda_host_stats_get(&h1);
        nonfinite += !isfinite(loss) || !isfinite(gn);
        if (s == 0) loss_first = loss;
        loss_last = loss;
        if (s >= a->warmup) {
            const pn_train_step_flops f = pn_train_step_flops_of(sn, &sub, B, T);
            t_ms[s - a->warmup] = dt * 1e3;
            sum_flops += f.total;
            sum_s += dt;
            f_sum.teacher_fwd += f.teacher_fwd, f_sum.student_fwd += f.student_fwd;
            f_sum.student_bwd += f.student_bwd, f_sum.total += f.total;
            int k = 0;
            for (int l = 0; l < sn->n_layers; l++) k += sub.path[l] != PN_PATH_LINEAR;
            sum_k += k;
            hs.driver_allocs += h1.driver_allocs - h0.driver_allocs;
            hs.driver_alloc_bytes += h1.driver_alloc_bytes - h0.driver_alloc_bytes;
            hs.syncs += h1.syncs - h0.syncs;
            hs.sync_seconds += h1.sync_seconds - h0.sync_seconds;
            hs.gemm_plan_builds += h1.gemm_plan_builds - h0.gemm_plan_builds;
        }
        pn_progress_update(&prog, s + 1, "%.1f ms/step | loss %.4f", dt * 1e3, loss);
    }
    pn_progress_finish(&prog);
    const pn_csupernet_mem mem = pn_csupernet_memory(cs);
    pn_cuda_device_info_get(0, &info);
    const size_t free1 = info.free_mem;
    const size_t mem_total = mem.weights + mem.params + mem.grads + mem.optim + mem.acts + mem.logits;

    const int n = a->steps;
    const double med = pn_bench_median(t_ms, n), fastest = t_ms[0];  // sorted by the median
    const double tok_s = (double)B * T / (med * 1e-3);
    const double flops_mean = sum_flops / n;
    const double mfu = sum_flops / sum_s / (PN_BENCH_H100_PEAK_BF16_TFLOPS * 1e12);
    const double mfu_anchor = sum_flops / sum_s / (PN_BENCH_H100_GEMM_ANCHOR_TFLOPS * 1e12);

    char date[64];
    pn_bench_utc_date(date, sizeof date);
    json_t *row = json_object();
    json_object_set_new(row, "name", json_string("supernet training step"));
    json_object_set_new(row, "label", json_string(lab));
    json_object_set_new(row, "status", json_string(nonfinite ? "non-finite loss or gradient norm" : "measured"));
    json_object_set_new(row, "date", json_string(date));
    json_object_set_new(row, "gpu", json_string(info.name));
    json_object_set_new(row, "model", json_string(a->model_dir));
    json_t *mc = json_object();
    json_object_set_new(mc, "model_type", json_string(bb->cfg.model_type));
    json_object_set_new(mc, "layers", json_integer(bb->n_layers));
    json_object_set_new(mc, "hidden", json_integer(bb->C));
    json_object_set_new(mc, "intermediate", json_integer(bb->I));
    json_object_set_new(mc, "vocab", json_integer(bb->V));
    json_object_set_new(mc, "heads", json_integer(bb->layers[0].attn.cfg.H));
    json_object_set_new(mc, "kv_heads", json_integer(bb->layers[0].attn.cfg.H_kv));
    json_object_set_new(mc, "head_dim", json_integer(bb->layers[0].attn.cfg.K));
    json_object_set_new(mc, "params", json_integer(pn_backbone_numel(bb)));
    json_object_set_new(row, "model_config", mc);
    json_t *lb = json_object();
    const pn_block_cfg *lc = &sn->lin[0].cfg;
    json_object_set_new(lb, "block", json_string(pn_linear_block_names[block]));
    json_object_set_new(lb, "H", json_integer(lc->H));
    json_object_set_new(lb, "K", json_integer(lc->K));
    json_object_set_new(lb, "V", json_integer(lc->V));
    json_object_set_new(lb, "conv_size", json_integer(lc->conv_size));
    json_object_set_new(lb, "trainable_params", json_integer(pn_supernet_param_count(sn)));
    json_object_set_new(row, "linear_path", lb);
    json_object_set_new(row, "batch", json_integer(B));
    json_object_set_new(row, "seq", json_integer(T));
    json_object_set_new(row, "tokens_per_step", json_integer((json_int_t)B * T));
    json_object_set_new(row, "distill", json_string(pn_distill_names[distill]));
    char sdesc[160];
    if (subnet == 0)
        snprintf(sdesc, sizeof sdesc, "uniform_k (config default): k ~ Uniform{0..%d} layers on full attention, the "
                 "rest linear; fixed-seed Philox stream", jc.supernet.k_max);
    else
        snprintf(sdesc, sizeof sdesc, "all_linear: every layer on its linear path");
    json_object_set_new(row, "subnet", json_string(sdesc));
    json_object_set_new(row, "full_attention_layers_mean", json_real(sum_k / n));
    json_object_set_new(row, "teacher", json_string("fresh random ids every step: the teacher forward runs in every "
                                                    "timed step (its cache never hits)"));
    json_object_set_new(row, "step",
                        json_string("sample subnet; zero grads; pn_csupernet_distill_step (teacher fwd, student fwd, "
                                    "loss, bwd); pn_csupernet_grad_norm; clip; pn_csupernet_adamw_step; sync"));
    json_object_set_new(row, "warmup_steps", json_integer(a->warmup));
    json_object_set_new(row, "mlp_keep", keep < 0 ? json_string("auto") : json_integer(keep));
    json_object_set_new(row, "mlp_kept_layers", json_integer(pn_csupernet_mlp_kept(cs)));
    json_object_set_new(row, "mlp_kept_note",
                        json_string("layers (the top ones) whose MLP gate / up products the forward keeps for the "
                                    "backward; the others recompute them (two GEMMs each). auto chooses after the "
                                    "first backward, so the first step recomputes every layer"));
    {
        size_t tuned = 0, changed = 0;
        pn_cuda_gemm_autotune_stats(&tuned, &changed);
        const int tune = pn_cuda_gemm_autotune_get();
        json_object_set_new(row, "gemm_autotune", json_integer(tune > 1 ? tune : 0));
        json_object_set_new(row, "gemm_autotune_plans", json_integer((json_int_t)tuned));
        json_object_set_new(row, "gemm_autotune_changed", json_integer((json_int_t)changed));
        json_object_set_new(row, "gemm_autotune_note",
                            json_string("candidates of the cuBLASLt heuristic timed at the first call of each GEMM "
                                        "shape (warm-up), the fastest kept (pn_cuda_gemm_autotune_set); 0 = the "
                                        "heuristic's first choice, the default"));
    }
    json_object_set_new(row, "steps", json_integer(n));
    json_object_set_new(row, "step_ms_median", json_real(med));
    json_object_set_new(row, "step_ms_min", json_real(fastest));
    json_object_set_new(row, "tokens_per_s", json_real(tok_s));
    json_t *fl = json_object();
    json_object_set_new(fl, "teacher_forward_mean", json_real(f_sum.teacher_fwd / n));
    json_object_set_new(fl, "student_forward_mean", json_real(f_sum.student_fwd / n));
    json_object_set_new(fl, "student_backward_mean", json_real(f_sum.student_bwd / n));
    json_object_set_new(fl, "per_step_mean", json_real(flops_mean));
    json_object_set_new(fl, "formula", json_string(pn_train_step_flops_formula));
    json_object_set_new(row, "flops", fl);
    json_object_set_new(row, "achieved_tflops", json_real(sum_flops / sum_s / 1e12));
    json_object_set_new(row, "mfu", json_real(mfu));
    json_object_set_new(row, "mfu_basis", json_string("sum of step FLOPs / sum of step times over the timed steps / "
                                                      "989.4 TFLOP/s (H100 SXM dense bf16 peak)"));
    json_object_set_new(row, "fraction_of_gemm_anchor", json_real(mfu_anchor));
    json_object_set_new(row, "gemm_anchor", json_string("torch/cuBLAS bf16 8192^3, 745 TFLOP/s (H100)"));
    json_object_set_new(row, "loss_first", num_or_null(loss_first));
    json_object_set_new(row, "loss_last", num_or_null(loss_last));
    json_t *mj = json_object();
    json_object_set_new(mj, "weights", json_integer((json_int_t)mem.weights));
    json_object_set_new(mj, "params", json_integer((json_int_t)mem.params));
    json_object_set_new(mj, "grads", json_integer((json_int_t)mem.grads));
    json_object_set_new(mj, "optim", json_integer((json_int_t)mem.optim));
    json_object_set_new(mj, "activations", json_integer((json_int_t)mem.acts));
    json_object_set_new(mj, "logits", json_integer((json_int_t)mem.logits));
    json_object_set_new(mj, "total_accounted", json_integer((json_int_t)mem_total));
    json_object_set_new(mj, "used_measured", json_integer((json_int_t)(free0 > free1 ? free0 - free1 : 0)));
    json_object_set_new(mj, "device_total", json_integer((json_int_t)info.total_mem));
    json_object_set_new(row, "memory_bytes", mj);
    // Where the host is: it enqueues the step and waits on the stream only in the loss
    // read-back, the gradient norm's and the final sync. The rest ("outside waits")
    // includes any time a launch blocks because the driver's launch queue is full, so it
    // bounds the host's own work from above; the allocation and plan counts say whether
    // a step pays for cudaMalloc or cuBLASLt heuristics (H100, session 8: neither).
    const double host_busy_ms = (sum_s - hs.sync_seconds) / n * 1e3;
    json_t *hj = json_object();
    json_object_set_new(hj, "host_outside_waits_ms_mean", json_real(host_busy_ms));
    json_object_set_new(hj, "host_waiting_ms_mean", json_real(hs.sync_seconds / n * 1e3));
    json_object_set_new(hj, "host_waits_per_step", json_real((double)hs.syncs / n));
    json_object_set_new(hj, "device_allocations_per_step", json_real((double)hs.driver_allocs / n));
    json_object_set_new(hj, "device_allocation_mib_per_step", json_real(hs.driver_alloc_bytes / MIB / n));
    json_object_set_new(hj, "gemm_plans_built_per_step", json_real((double)hs.gemm_plan_builds / n));
    json_object_set_new(hj, "note", json_string("means over the timed steps; outside waits = step wall time minus "
                                                "the time the host waited on the stream (it includes launches "
                                                "blocked on a full launch queue); device allocations are the "
                                                "arena's cache misses (cudaMalloc, which waits for the device); "
                                                "each GEMM plan built is one cuBLASLt heuristic query"));
    json_object_set_new(row, "host", hj);

    json_t *header = json_object();
    json_object_set_new(header, "benchmark", json_string("train-step"));
    json_object_set_new(header, "device", json_string("cuda"));
    json_object_set_new(header, "method",
                        json_string("host wall clock around each full step (it ends with a device sync); warm-up "
                                    "steps first; median of the timed steps; a fresh random batch per step"));
    json_object_set_new(header, "flops_formula", json_string(pn_train_step_flops_formula));
    ts_rows_merge_write(out, row, lab, header);
    json_decref(header);
    json_decref(row);
    pn_info("bench train-step: %s: %.1f ms/step (fastest %.1f), %.0f tokens/s, %.1f TFLOP/step, MFU %.3f (%.3f of "
            "the 745 TFLOP/s anchor); csupernet %.1f MiB; wrote %s",
            lab, med, fastest, tok_s, flops_mean / 1e12, mfu, mfu_anchor, mem_total / MIB, out);
    pn_info("bench train-step: per timed step: host %.1f ms outside stream waits, %.1f ms in %.1f waits; %.1f device "
            "allocations (%.1f MiB), %.1f GEMM plans built",
            host_busy_ms, hs.sync_seconds / n * 1e3, (double)hs.syncs / n, (double)hs.driver_allocs / n,
            hs.driver_alloc_bytes / MIB / n, (double)hs.gemm_plan_builds / n);

    if (res) {
        memset(res, 0, sizeof *res);
        res->step_ms_median = med;
        res->step_ms_min = fastest;
        res->tokens_per_s = tok_s;
        res->flops_per_step = flops_mean;
        res->mfu = mfu;
        res->mfu_vs_anchor = mfu_anchor;
        res->loss_first = loss_first;
        res->loss_last = loss_last;
        res->mem_total = mem_total;
        res->mlp_kept = pn_csupernet_mlp_kept(cs);
        snprintf(res->gpu, sizeof res->gpu, "%s", info.name);
    }
    free(t_ms);
    free(ids);
    pn_csupernet_free(cs);
    pn_supernet_free(sn);
    pn_backbone_free(bb);
    pn_job_config_free(&jc);
    return 0;
}

#endif  // POSTNAS_HAVE_CUDA
