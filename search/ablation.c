// ablation.c — see ablation.h.
//
// The runner adds no model code of its own: training is pn_train_run on a
// per-block copy of the config, the hybrid is the supernet with the fixed
// subnet applied (the mixers an export would write), accuracy is
// pn_eval_suite, throughput is the engine. What lives here is the sequencing,
// the bookkeeping of what each number means, and the report files. Everything
// the rows are compared on is fixed before the first block trains (task suites
// loaded, throughput prompt drawn from run.seed), so a bad task file fails in
// seconds rather than after an hour of training, and every row sees the same
// inputs.
#define _POSIX_C_SOURCE 200809L
#include "search/ablation.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "search/bench_util.h"
#include "search/engine.h"
#include "supernet/checkpoint.h"
#include "supernet/trainer.h"
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#define ABL_WARMUP_STEPS 2  // untimed decode steps before the timed ones

// ---------------------------------------------------------------- config checks

static int linear_block_index(const char *name) {
    for (int i = 0; pn_linear_block_names[i]; i++)
        if (strcmp(pn_linear_block_names[i], name) == 0) return i;
    return -1;
}

static void known_blocks(char *out, size_t n) {
    out[0] = 0;
    for (int i = 0; pn_linear_block_names[i]; i++) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s", i ? ", " : "", pn_linear_block_names[i]);
    }
}

// Every name known and listed once; `key` is how the list is named to the user.
static void check_block_list(const pn_cfg_strings *b, const char *where, const char *key) {
    if (b->n == 0) pn_die_input(where, "%s is empty: list at least one linear block", key);
    char known[256];
    known_blocks(known, sizeof known);
    for (int i = 0; i < b->n; i++) {
        if (linear_block_index(b->v[i]) < 0)
            pn_die_input(where, "%s[%d] = '%s' is not a linear block (expected one of: %s)", key, i, b->v[i], known);
        for (int j = 0; j < i; j++)
            if (strcmp(b->v[i], b->v[j]) == 0)
                pn_die_input(where, "%s[%d] = '%s' is already listed at [%d] (each block trains once, in its own "
                                    "directory)", key, i, b->v[i], j);
    }
}

void pn_ablation_check(const pn_job_config *c, const char *where) {
    check_block_list(&c->ablation.blocks, where, "ablation.blocks");
    if (c->supernet.sampling != PN_SAMPLING_FIXED)
        pn_die_input(where, "supernet.sampling is '%s'; the ablation trains every block on one fixed placement: set "
                            "supernet.sampling: fixed with full_layers: [...] (and optionally swa_layers: [...])",
                     pn_sampling_names[c->supernet.sampling]);
    if (c->train.mode != PN_TRAIN_SUPERNET)
        pn_die_input(where, "train.mode is '%s'; the ablation distils the linear paths: set train.mode: supernet",
                     pn_train_mode_names[c->train.mode]);
    if (!c->model.path[0])
        pn_die_input(where, "model.path is empty; the ablation needs a pretrained model (the teacher) to distil from");
    if (!c->data.train[0]) pn_die_input(where, "data.train is empty; the ablation trains every block on it");
    if (!c->data.tasks_dir[0])
        pn_die_input(where, "data.tasks_dir is empty; the ablation evaluates search.tasks from that directory");
    if (c->search.tasks.n == 0) pn_die_input(where, "search.tasks is empty; list the tasks to evaluate");
    if (c->search.tasks.n > PN_ABLATION_MAX_TASKS)
        pn_die_input(where, "search.tasks has %d entries; the ablation reports at most %d", c->search.tasks.n,
                     PN_ABLATION_MAX_TASKS);
}

void pn_ablation_set_blocks(pn_job_config *c, const char *list, const char *where) {
    pn_cfg_strings nb = {NULL, 0};
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n == 0) pn_die_input(where, "empty block name in '%s' (expected names separated by commas)", list);
        nb.v = pn_realloc(nb.v, (size_t)(nb.n + 1) * sizeof(char *));
        char *s = pn_malloc(n + 1);
        memcpy(s, p, n);
        s[n] = 0;
        nb.v[nb.n++] = s;
        if (!e) break;
        p = e + 1;
    }
    check_block_list(&nb, where, "--blocks");
    for (int i = 0; i < c->ablation.blocks.n; i++) free(c->ablation.blocks.v[i]);
    free(c->ablation.blocks.v);
    c->ablation.blocks = nb;
}

// Layer indices in range, no layer twice, and at least one layer left linear.
static void check_placement(const pn_supernet_config *s, int n_layers, const char *where, const char *model) {
    uint8_t seen[PN_SUPERNET_MAX_LAYERS] = {0};
    const pn_cfg_ints *lists[2] = {&s->full_layers, &s->swa_layers};
    const char *keys[2] = {"supernet.full_layers", "supernet.swa_layers"};
    int taken = 0;
    if (n_layers > PN_SUPERNET_MAX_LAYERS)
        pn_die_input(model, "%d layers; the supernet supports at most %d", n_layers, PN_SUPERNET_MAX_LAYERS);
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < lists[l]->n; j++) {
            int v = lists[l]->v[j];
            if (v < 0 || v >= n_layers)
                pn_die_input(where, "%s[%d] = %d, expected a layer index 0..%d (the model %s has %d layers)", keys[l],
                             j, v, n_layers - 1, model, n_layers);
            if (seen[v]) pn_die_input(where, "%s[%d] = %d: layer %d is already listed", keys[l], j, v, v);
            seen[v] = 1;
            taken++;
        }
    if (taken == n_layers)
        pn_die_input(where, "supernet.full_layers and swa_layers cover all %d layers: the placement leaves no layer "
                            "linear, so there is no block to compare",
                     n_layers);
}

// ---------------------------------------------------------------- measurements

// Training numbers of a run from its metrics.jsonl. Every step has the same
// token count, so tokens / step time = n / Σ 1/tokens_per_s_i (harmonic mean).
static void metrics_summary(const char *path, const pn_job_config *c, pn_ablation_row *row) {
    row->train_tokens_per_s = row->train_seconds = row->final_loss = row->valid_loss = NAN;
    row->steps = 0;
    if (!pn_file_exists(path)) return;
    size_t n = 0;
    char *text = pn_read_file(path, &n);
    const double tokens = (double)c->data.batch_size * c->data.seq_len * c->train.grad_accum;
    double inv_sum = 0;
    int64_t n_steps = 0, last_step = -1, last_valid_step = -1;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        json_t *st = j ? json_object_get(j, "step") : NULL;
        if (st && json_is_integer(st)) {
            int64_t s = json_integer_value(st);
            json_t *tps = json_object_get(j, "tokens_per_s"), *loss = json_object_get(j, "loss");
            json_t *vl = json_object_get(j, "valid_loss");
            if (tps && json_is_number(tps) && json_number_value(tps) > 0) {
                inv_sum += 1.0 / json_number_value(tps);
                n_steps++;
            }
            if (loss && s > last_step) {
                last_step = s;
                row->final_loss = json_is_number(loss) ? json_number_value(loss) : NAN;
            }
            if (vl && s > last_valid_step) {
                last_valid_step = s;
                row->valid_loss = json_is_number(vl) ? json_number_value(vl) : NAN;
            }
        }
        json_decref(j);
        if (!nl) break;
        line = nl + 1;
    }
    free(text);
    row->steps = PN_MAX(last_step, (int64_t)0);
    if (n_steps > 0) {
        row->train_tokens_per_s = (double)n_steps / inv_sum;
        row->train_seconds = tokens * inv_sum;
    }
}

// The throughput prompt: (B, P) ids from run.seed, the same for every row.
typedef struct {
    int B, P, steps;
    int64_t *ids;   // (B, P)
    int64_t *next;  // (warmup + steps, B) ids fed to the decode steps
} abl_prompt;

static void prompt_make(abl_prompt *p, const pn_job_config *c, int vocab) {
    p->B = c->ablation.throughput_batch;
    p->P = c->ablation.throughput_prompt;
    p->steps = c->ablation.throughput_steps;
    const size_t n_ids = (size_t)p->B * p->P, n_next = (size_t)(ABL_WARMUP_STEPS + p->steps) * p->B;
    p->ids = pn_malloc(n_ids * sizeof(int64_t));
    p->next = pn_malloc(n_next * sizeof(int64_t));
    pn_rng r = pn_rng_make((uint64_t)c->run.seed, pn_hash_str("ablation.throughput"));
    for (size_t i = 0; i < n_ids; i++) p->ids[i] = (int64_t)pn_rng_below(&r, (uint64_t)vocab);
    for (size_t i = 0; i < n_next; i++) p->next[i] = (int64_t)pn_rng_below(&r, (uint64_t)vocab);
}

static void prompt_free(abl_prompt *p) {
    free(p->ids);
    free(p->next);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Prefill then decode with the backbone's current mixers.
static void measure_throughput(const pn_backbone *bb, const abl_prompt *p, pn_ablation_row *row) {
    const int64_t max_ctx = (int64_t)p->P + ABL_WARMUP_STEPS + p->steps;
    pn_engine *e = pn_engine_create(bb, p->B, max_ctx, PN_MIN(p->P, 128));
    double t0 = pn_now_seconds();
    pn_engine_prefill(e, p->ids, p->P);
    double t_prefill = pn_now_seconds() - t0;
    double *dt = pn_malloc((size_t)p->steps * sizeof(double));
    for (int s = 0; s < ABL_WARMUP_STEPS + p->steps; s++) {
        double ts = pn_now_seconds();
        pn_engine_decode(e, p->next + (size_t)s * p->B);
        double d = pn_now_seconds() - ts;
        if (s >= ABL_WARMUP_STEPS) dt[s - ABL_WARMUP_STEPS] = d;
    }
    qsort(dt, (size_t)p->steps, sizeof(double), cmp_double);
    double med = p->steps % 2 ? dt[p->steps / 2] : 0.5 * (dt[p->steps / 2 - 1] + dt[p->steps / 2]);
    row->prefill_tokens_per_s = (double)p->B * p->P / PN_MAX(t_prefill, 1e-9);
    row->decode_tokens_per_s = (double)p->B / PN_MAX(med, 1e-9);
    row->decode_step_ms = 1e3 * med;
    free(dt);
    pn_engine_free(e);
}

// State bytes per sequence at L and the parameters of the linear layers, from
// the mixers the backbone runs now.
static void measure_sizes(const pn_backbone *bb, int64_t L, pn_ablation_row *row) {
    row->state_attn = row->state_swa = row->state_linear = 0;
    row->trainable_params = 0;
    for (int l = 0; l < bb->n_layers; l++) {
        const pn_block *m = bb->layers[l].mixer;
        int64_t n = pn_block_state_bytes(m, L, 2, 4, 0);
        if (strcmp(m->type->name, "attn") == 0) {
            row->state_attn += n;
        } else if (strcmp(m->type->name, "swa") == 0) {
            row->state_swa += n;
        } else {
            row->state_linear += n;
            row->trainable_params += pn_block_param_count(m);
        }
    }
    row->state_bytes = row->state_attn + row->state_swa + row->state_linear;
}

static void measure_tasks(pn_backbone *bb, const pn_task_suite *suites, int n, const pn_job_config *c,
                          pn_ablation_row *row) {
    pn_eval_opts eo;
    pn_eval_opts_default(&eo);
    eo.max_examples = c->ablation.max_examples;
    eo.gen_mode = c->search.objective_gen == PN_OBJ_GEN_TEACHER_FORCED_ACC ? PN_GEN_TEACHER_FORCED : PN_GEN_EXACT_MATCH;
    double sum = 0;
    for (int t = 0; t < n; t++) {
        pn_eval_suite(bb, &suites[t], &eo, &row->task[t]);
        sum += row->task[t].accuracy;
    }
    row->mean_accuracy = sum / n;
}

static void measure_row(pn_backbone *bb, const pn_task_suite *suites, const pn_job_config *c, const abl_prompt *p,
                        pn_ablation_row *row) {
    double t0 = pn_now_seconds();
    measure_tasks(bb, suites, c->search.tasks.n, c, row);
    row->eval_seconds = pn_now_seconds() - t0;
    measure_sizes(bb, c->ablation.context, row);
    measure_throughput(bb, p, row);
}

// The trained linear paths of `dir`/supernet.safetensors into sn (names,
// shapes and the block checked by pn_supernet_load_linear).
static void load_linear_weights(pn_supernet *sn, const char *dir, const char *block) {
    char path[4200];
    pn_path_join(path, sizeof path, dir, "supernet.safetensors");
    if (!pn_file_exists(path))
        pn_die_input(path, "not found: the training run of block '%s' did not finish (train.steps not reached?)",
                     block);
    pn_supernet_load_linear(sn, path);
}

static void fmt_bytes(char *out, size_t n, double b) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) b /= 1024, i++;
    if (i == 0)
        snprintf(out, n, "%.0f B", b);
    else
        snprintf(out, n, "%.2f %s", b, u[i]);
}

static void log_row(const pn_ablation_result *r, const pn_ablation_row *row, int idx) {
    char line[1024] = "";
    for (int t = 0; t < r->n_tasks; t++) {
        size_t l = strlen(line);
        snprintf(line + l, sizeof line - l, "%s %.3f%s", r->task_names[t], row->task[t].accuracy,
                 t + 1 < r->n_tasks ? "," : "");
    }
    char sb[32], tr[48] = "";
    fmt_bytes(sb, sizeof sb, (double)row->state_bytes);
    if (!row->is_teacher) snprintf(tr, sizeof tr, " | train %.0f tok/s", row->train_tokens_per_s);
    pn_info("ablation [%d/%d] %s: %s | params %lld | state %s/seq @ L=%lld%s | decode %.0f tok/s", idx,
            r->n_rows - 1, row->name, line, (long long)row->trainable_params, sb, (long long)r->context, tr,
            row->decode_tokens_per_s);
}

static void placement_text(const pn_supernet_config *s, int n_layers, char *out, size_t n) {
    uint8_t kind[PN_SUPERNET_MAX_LAYERS] = {0};  // 0 linear, 1 attn, 2 swa
    for (int j = 0; j < s->full_layers.n; j++) kind[s->full_layers.v[j]] = 1;
    for (int j = 0; j < s->swa_layers.n; j++) kind[s->swa_layers.v[j]] = 2;
    const char *names[3] = {"linear", "attn", "swa"};
    const int order[3] = {1, 2, 0};
    out[0] = 0;
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s:", k ? " | " : "", names[order[k]]);
        int any = 0;
        for (int i = 0; i < n_layers; i++)
            if (kind[i] == order[k]) {
                l = strlen(out);
                snprintf(out + l, n - l, "%s %d", any ? "," : "", i);
                any = 1;
            }
        if (!any) {
            l = strlen(out);
            snprintf(out + l, n - l, " -");
        }
    }
}

// ---------------------------------------------------------------- the run

// Block b's training config: c with the block and its run directory (dir, which
// must outlive cb); log_every 1 so every step time is on file (log_every is
// outside the resume hash: it cannot change the trained numbers).
static void block_config(const pn_job_config *c, int b, char *dir, size_t n, pn_job_config *cb) {
    const char *name = c->ablation.blocks.v[b];
    pn_path_join(dir, n, c->run.out_dir, name);
    *cb = *c;
    cb->run.out_dir = dir;
    cb->supernet.block = linear_block_index(name);
    cb->train.log_every = 1;
}

// A block directory left by another config (say a --steps 2 smoke run) cannot
// be continued; say so before any block trains, not when its turn comes.
static void check_resumable(const pn_job_config *c) {
    for (int b = 0; b < c->ablation.blocks.n; b++) {
        char dir[4096], ck[4200], state[4300];
        pn_job_config cb;
        block_config(c, b, dir, sizeof dir, &cb);
        if (pn_checkpoint_latest(dir, ck, sizeof ck) < 0) continue;
        pn_path_join(state, sizeof state, ck, "state.json");
        json_error_t err;
        json_t *j = json_load_file(state, 0, &err);
        const char *h = j ? json_string_value(json_object_get(j, "config_hash")) : NULL;
        uint64_t have = h ? strtoull(h, NULL, 16) : 0, want = pn_train_config_hash(&cb);
        json_decref(j);
        if (!h || have != want)
            pn_die_input(dir, "holds checkpoints of another training config (%s): the ablation would continue them "
                              "with different settings; remove this directory or choose another run.out_dir (--out)",
                         h ? "config hash differs: train, data, model, supernet or seed changed" : "no config_hash");
    }
}

int pn_ablation_run(const pn_job_config *c, const char *where, pn_ablation_result *out) {
    if (!where || !where[0]) where = "config";
    pn_ablation_check(c, where);
    pn_log_set_default_level((pn_log_level)c->run.log_level);
    if (c->run.threads > 0) omp_set_num_threads(c->run.threads);
    memset(out, 0, sizeof(*out));

    // Everything that can be wrong with the inputs fails before any training.
    pn_backbone *bb = pn_backbone_load(c->model.path);
    check_placement(&c->supernet, bb->n_layers, where, c->model.path);
    const int n_tasks = c->search.tasks.n;
    pn_task_suite *suites = pn_calloc((size_t)n_tasks, sizeof *suites);
    pn_eval_load_suites(c->data.tasks_dir, (const char *const *)c->search.tasks.v, n_tasks, bb->V, suites);
    check_resumable(c);
    abl_prompt prompt;
    prompt_make(&prompt, c, bb->V);

    const int n_blocks = c->ablation.blocks.n;
    out->n_rows = 1 + n_blocks;
    out->rows = pn_calloc((size_t)out->n_rows, sizeof(pn_ablation_row));
    out->n_tasks = n_tasks;
    for (int t = 0; t < n_tasks; t++) {
        snprintf(out->task_names[t], sizeof out->task_names[t], "%s", c->search.tasks.v[t]);
        snprintf(out->task_kind[t], sizeof out->task_kind[t], "%s", pn_task_kind_name(suites[t].kind));
    }
    out->context = c->ablation.context;
    out->n_layers = bb->n_layers;
    placement_text(&c->supernet, bb->n_layers, out->placement, sizeof out->placement);
    out->threads = omp_get_max_threads();
    pn_bench_cpu_name(out->cpu, sizeof out->cpu);
    pn_bench_utc_date(out->date, sizeof out->date);
    pn_mkdir_p(c->run.out_dir);
    pn_job_config_write_resolved(c, c->run.out_dir);
    pn_info("ablation: %d blocks on %s (%d layers; %s), %d steps each, into %s", n_blocks, c->model.path,
            bb->n_layers, out->placement, c->train.steps, c->run.out_dir);

    // The reference: every layer on its pretrained attention.
    pn_ablation_row *teacher = &out->rows[0];
    snprintf(teacher->name, sizeof teacher->name, "teacher");
    teacher->is_teacher = 1;
    teacher->train_tokens_per_s = teacher->train_seconds = teacher->final_loss = teacher->valid_loss = NAN;
    for (int l = 0; l < bb->n_layers; l++) bb->layers[l].mixer = &bb->layers[l].attn;
    pn_info("ablation [0/%d] teacher (all attention): evaluating", n_blocks);
    measure_row(bb, suites, c, &prompt, teacher);
    log_row(out, teacher, 0);

    for (int b = 0; b < n_blocks; b++) {
        const char *name = c->ablation.blocks.v[b];
        pn_ablation_row *row = &out->rows[1 + b];
        snprintf(row->name, sizeof row->name, "%s", name);
        char dir[4096];
        pn_job_config cb;
        block_config(c, b, dir, sizeof dir, &cb);
        char ck[4200];
        const int resume = pn_checkpoint_latest(dir, ck, sizeof ck) >= 0;
        pn_info("ablation [%d/%d] %s: %s %d steps of supernet distillation in %s", 1 + b, n_blocks, name,
                resume ? "continuing" : "training", c->train.steps, dir);
        pn_train_opts to = {.resume = resume, .stop_at = 0, .where = where};
        pn_train_result tr;
        pn_train_run(&cb, &to, &tr);
        char mpath[4200];
        pn_path_join(mpath, sizeof mpath, dir, "metrics.jsonl");
        metrics_summary(mpath, &cb, row);

        pn_supernet *sn = pn_supernet_create(bb, &cb.supernet, (uint64_t)c->run.seed);
        load_linear_weights(sn, dir, name);
        pn_subnet sub;
        pn_rng unused = pn_rng_make(0, 0);  // fixed sampling draws nothing
        pn_supernet_sample(sn, &unused, &sub);
        pn_supernet_apply(sn, &sub);
        row->supernet_params = pn_supernet_param_count(sn);
        pn_info("ablation [%d/%d] %s: evaluating", 1 + b, n_blocks, name);
        measure_row(bb, suites, c, &prompt, row);
        pn_supernet_free(sn);  // back to the pretrained attention everywhere
        log_row(out, row, 1 + b);
    }

    prompt_free(&prompt);
    for (int t = 0; t < n_tasks; t++) pn_task_suite_free(&suites[t]);
    free(suites);
    pn_backbone_free(bb);
    pn_ablation_write(out, c, where, c->run.out_dir);
    return 0;
}

void pn_ablation_result_free(pn_ablation_result *r) {
    if (!r) return;
    free(r->rows);
    memset(r, 0, sizeof(*r));
}

// ---------------------------------------------------------------- report files

// A growing text buffer for the Markdown and CSV files.
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) PN_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        PN_ASSERT(k >= 0);
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = PN_MAX(2 * b->cap, b->n + (size_t)k + 256);
        b->s = pn_realloc(b->s, b->cap);
    }
}

// 1234567 -> "1,234,567"
static void fmt_int(char *out, size_t n, int64_t v) {
    char d[32];
    snprintf(d, sizeof d, "%lld", (long long)(v < 0 ? -v : v));
    size_t len = strlen(d), o = 0;
    if (v < 0 && o + 1 < n) out[o++] = '-';
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        out[o++] = d[i];
        if ((len - 1 - i) % 3 == 0 && i + 1 < len && o + 1 < n) out[o++] = ',';
    }
    out[o] = 0;
}

static void fmt_num(char *out, size_t n, double v, const char *fmt) {
    if (isfinite(v))
        snprintf(out, n, fmt, v);
    else
        snprintf(out, n, "–");
}

static void ints_text(const pn_cfg_ints *l, char *out, size_t n) {
    out[0] = 0;
    for (int i = 0; i < l->n; i++) {
        size_t k = strlen(out);
        snprintf(out + k, n - k, "%s%d", i ? ", " : "", l->v[i]);
    }
}

static void write_md(const pn_ablation_result *r, const pn_job_config *c, const char *where, const char *path) {
    sbuf b = {0};
    char ctx[32], tmp[64], tmp2[64];
    fmt_int(ctx, sizeof ctx, r->context);
    sb_printf(&b, "# Block ablation — %s\n\n", c->run.name);
    sb_printf(&b,
              "Produced by `postnas ablate --config %s` (%s): every block trained the same placement (%s) of "
              "`%s` for %d steps on the same data in the same order (seed %lld); then each hybrid and the teacher "
              "were measured on this machine (%s, %d threads).\n\n",
              where, r->date, r->placement, c->model.path, c->train.steps, (long long)c->run.seed, r->cpu,
              r->threads);
    sb_printf(&b, "| block |");
    for (int t = 0; t < r->n_tasks; t++) sb_printf(&b, " %s acc |", r->task_names[t]);
    sb_printf(&b, " mean acc | trainable params | state bytes / seq @ L=%s | train tok/s | decode tok/s (B=%d) | "
                  "final distill loss |\n",
              ctx, c->ablation.throughput_batch);
    sb_printf(&b, "|:--|");
    for (int t = 0; t < r->n_tasks + 6; t++) sb_printf(&b, "--:|");
    sb_printf(&b, "\n");
    for (int i = 0; i < r->n_rows; i++) {
        const pn_ablation_row *row = &r->rows[i];
        sb_printf(&b, "| %s |", row->is_teacher ? "teacher (all attention)" : row->name);
        for (int t = 0; t < r->n_tasks; t++) sb_printf(&b, " %.3f |", row->task[t].accuracy);
        sb_printf(&b, " %.3f |", row->mean_accuracy);
        fmt_int(tmp, sizeof tmp, row->trainable_params);
        sb_printf(&b, " %s |", row->is_teacher ? "–" : tmp);
        fmt_bytes(tmp, sizeof tmp, (double)row->state_bytes);
        sb_printf(&b, " %s |", tmp);
        fmt_num(tmp, sizeof tmp, row->train_tokens_per_s, "%.0f");
        fmt_num(tmp2, sizeof tmp2, row->decode_tokens_per_s, "%.0f");
        sb_printf(&b, " %s | %s |", tmp, tmp2);
        fmt_num(tmp, sizeof tmp, row->final_loss, "%.4g");
        sb_printf(&b, " %s |\n", tmp);
    }
    char fl[256], sl[256];
    ints_text(&c->supernet.full_layers, fl, sizeof fl);
    ints_text(&c->supernet.swa_layers, sl, sizeof sl);
    sb_printf(&b, "\nHow the columns were measured:\n\n");
    sb_printf(&b, "- **placement**: %d layers; full attention on [%s], SWA (window %d) on [%s], the block on every "
                  "other layer (`supernet.sampling: fixed`).\n",
              r->n_layers, fl, c->supernet.swa_window, sl);
    sb_printf(&b, "- **training** (per block, identical budget): %d steps of supernet distillation (%s), AdamW lr %g "
                  "(warm-up %d, cosine to %g×), %d × %d tokens × %d micro-batches per step from `%s`, seed %lld; "
                  "linear init `%s`. Output: `<block>/supernet.safetensors`, `<block>/metrics.jsonl`.\n",
              c->train.steps, pn_distill_names[c->supernet.distill], c->train.lr, c->train.warmup_steps,
              c->train.min_lr_ratio, c->data.batch_size, c->data.seq_len, c->train.grad_accum, c->data.train,
              (long long)c->run.seed, pn_linear_init_names[c->supernet.linear_init]);
    int64_t n_ex = r->rows[0].task[0].n_examples;
    sb_printf(&b, "- **accuracy**: `%s/<task>.jsonl`, ", c->data.tasks_dir);
    if (c->ablation.max_examples > 0)
        sb_printf(&b, "the first %lld examples per task", (long long)c->ablation.max_examples);
    else
        sb_printf(&b, "every example (%lld in %s)", (long long)n_ex, r->task_names[0]);
    sb_printf(&b, "; multiple choice: the answer's log-likelihood strictly above every other choice's; generative: "
                  "%s.\n",
              c->search.objective_gen == PN_OBJ_GEN_TEACHER_FORCED_ACC
                  ? "teacher-forced, every answer token the argmax"
                  : "greedy decoding through the engine, exact match of the answer tokens");
    sb_printf(&b, "- **trainable params**: parameters of the block on the layers the placement leaves linear.\n");
    sb_printf(&b, "- **state bytes**: decode state per sequence at context L = %s, summed over layers: attention KV "
                  "cache at 2 bytes/element (bf16; SWA: a ring of min(window, L) positions), recurrent state at 4 "
                  "bytes/element (fp32), short-conv rows excluded.\n",
              ctx);
    sb_printf(&b, "- **train tok/s**: training tokens per second of step time of the distillation loop (teacher "
                  "forward + student forward/backward + AdamW), CPU, %d threads.\n",
              r->threads);
    sb_printf(&b, "- **decode tok/s**: the CPU inference engine, batch %d, after prefilling %d random tokens per "
                  "sequence; %d warm-up steps, then batch / median time of %d decode steps, %d threads.\n",
              c->ablation.throughput_batch, c->ablation.throughput_prompt, ABL_WARMUP_STEPS,
              c->ablation.throughput_steps, r->threads);
    sb_printf(&b, "\nFiles: `ablation.csv`, `ablation.json` (every number), `ablation.png`.\n");
    pn_write_file_atomic(path, b.s, b.n);
    free(b.s);
}

// A CSV field: numbers as is, NaN empty, text quoted when it needs to be.
static void csv_num(sbuf *b, double v) {
    if (isfinite(v))
        sb_printf(b, ",%.9g", v);
    else
        sb_printf(b, ",");
}

static void csv_text(sbuf *b, const char *s, int first) {
    if (!first) sb_printf(b, ",");
    if (strpbrk(s, ",\"\n")) {
        sb_printf(b, "\"");
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                sb_printf(b, "\"\"");
            else
                sb_printf(b, "%c", *p);
        }
        sb_printf(b, "\"");
    } else {
        sb_printf(b, "%s", s);
    }
}

static void write_csv(const pn_ablation_result *r, const pn_job_config *c, const char *path) {
    sbuf b = {0};
    csv_text(&b, "block", 1);
    for (int t = 0; t < r->n_tasks; t++) {
        char h[160];
        snprintf(h, sizeof h, "%s_accuracy", r->task_names[t]);
        csv_text(&b, h, 0);
    }
    sb_printf(&b, ",mean_accuracy,trainable_params,supernet_params,state_bytes,state_bytes_attn,state_bytes_swa,"
                  "state_bytes_linear,context,train_tokens_per_s,decode_tokens_per_s,decode_batch,"
                  "prefill_tokens_per_s,final_loss,valid_loss,steps\n");
    for (int i = 0; i < r->n_rows; i++) {
        const pn_ablation_row *row = &r->rows[i];
        csv_text(&b, row->name, 1);
        for (int t = 0; t < r->n_tasks; t++) csv_num(&b, row->task[t].accuracy);
        csv_num(&b, row->mean_accuracy);
        sb_printf(&b, ",%lld,%lld,%lld,%lld,%lld,%lld,%lld", (long long)row->trainable_params,
                  (long long)row->supernet_params, (long long)row->state_bytes, (long long)row->state_attn,
                  (long long)row->state_swa, (long long)row->state_linear, (long long)r->context);
        csv_num(&b, row->train_tokens_per_s);
        csv_num(&b, row->decode_tokens_per_s);
        sb_printf(&b, ",%d", c->ablation.throughput_batch);
        csv_num(&b, row->prefill_tokens_per_s);
        csv_num(&b, row->final_loss);
        csv_num(&b, row->valid_loss);
        sb_printf(&b, ",%lld\n", (long long)row->steps);
    }
    pn_write_file_atomic(path, b.s, b.n);
    free(b.s);
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *jints(const pn_cfg_ints *l) {
    json_t *a = json_array();
    for (int i = 0; i < l->n; i++) json_array_append_new(a, json_integer(l->v[i]));
    return a;
}

static void write_json(const pn_ablation_result *r, const pn_job_config *c, const char *where, const char *path) {
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string("postnas-ablation"));
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "run", json_string(c->run.name));
    json_object_set_new(j, "config", json_string(where));
    json_object_set_new(j, "model", json_string(c->model.path));
    json_object_set_new(j, "date", json_string(r->date));
    json_t *m = json_object();
    json_object_set_new(m, "cpu", json_string(r->cpu));
    json_object_set_new(m, "threads", json_integer(r->threads));
    json_object_set_new(j, "machine", m);
    json_t *pl = json_object();
    json_object_set_new(pl, "n_layers", json_integer(r->n_layers));
    json_object_set_new(pl, "full_layers", jints(&c->supernet.full_layers));
    json_object_set_new(pl, "swa_layers", jints(&c->supernet.swa_layers));
    json_object_set_new(pl, "swa_window", json_integer(c->supernet.swa_window));
    json_object_set_new(pl, "text", json_string(r->placement));
    json_object_set_new(j, "placement", pl);
    json_t *tr = json_object();
    json_object_set_new(tr, "steps", json_integer(c->train.steps));
    json_object_set_new(tr, "lr", json_real(c->train.lr));
    json_object_set_new(tr, "warmup_steps", json_integer(c->train.warmup_steps));
    json_object_set_new(tr, "batch_size", json_integer(c->data.batch_size));
    json_object_set_new(tr, "seq_len", json_integer(c->data.seq_len));
    json_object_set_new(tr, "grad_accum", json_integer(c->train.grad_accum));
    json_object_set_new(tr, "distill", json_string(pn_distill_names[c->supernet.distill]));
    json_object_set_new(tr, "data", json_string(c->data.train));
    json_object_set_new(tr, "seed", json_integer(c->run.seed));
    json_object_set_new(j, "train", tr);
    json_object_set_new(j, "context", json_integer(r->context));
    json_object_set_new(j, "state_bytes_convention",
                        json_string("per sequence at context L: attention KV at 2 bytes/element (bf16; SWA a ring "
                                    "of min(window, L)), recurrent state at 4 bytes/element (fp32), conv rows "
                                    "excluded"));
    json_t *tp = json_object();
    json_object_set_new(tp, "batch", json_integer(c->ablation.throughput_batch));
    json_object_set_new(tp, "prompt", json_integer(c->ablation.throughput_prompt));
    json_object_set_new(tp, "warmup_steps", json_integer(ABL_WARMUP_STEPS));
    json_object_set_new(tp, "steps", json_integer(c->ablation.throughput_steps));
    json_object_set_new(tp, "definition", json_string("decode: batch / median decode step time of the CPU engine "
                                                      "after prefilling the prompt; train: tokens / step time of "
                                                      "the distillation loop"));
    json_object_set_new(j, "throughput", tp);
    json_t *tasks = json_array();
    for (int t = 0; t < r->n_tasks; t++) {
        json_t *e = json_object();
        json_object_set_new(e, "name", json_string(r->task_names[t]));
        json_object_set_new(e, "kind", json_string(r->task_kind[t]));
        json_object_set_new(e, "n_examples", json_integer(r->rows[0].task[t].n_examples));
        json_array_append_new(tasks, e);
    }
    json_object_set_new(j, "tasks", tasks);
    json_t *rows = json_array();
    for (int i = 0; i < r->n_rows; i++) {
        const pn_ablation_row *row = &r->rows[i];
        json_t *e = json_object();
        json_object_set_new(e, "block", json_string(row->name));
        json_object_set_new(e, "is_teacher", json_boolean(row->is_teacher));
        json_t *acc = json_object(), *nll = json_object(), *cor = json_object();
        for (int t = 0; t < r->n_tasks; t++) {
            json_object_set_new(acc, r->task_names[t], jnum(row->task[t].accuracy));
            json_object_set_new(nll, r->task_names[t], jnum(row->task[t].mean_nll));
            json_object_set_new(cor, r->task_names[t], json_integer(row->task[t].n_correct));
        }
        json_object_set_new(e, "accuracy", acc);
        json_object_set_new(e, "n_correct", cor);
        json_object_set_new(e, "mean_nll", nll);
        json_object_set_new(e, "mean_accuracy", jnum(row->mean_accuracy));
        json_object_set_new(e, "trainable_params", json_integer(row->trainable_params));
        json_object_set_new(e, "supernet_params", json_integer(row->supernet_params));
        json_object_set_new(e, "state_bytes", json_integer(row->state_bytes));
        json_object_set_new(e, "state_bytes_attn", json_integer(row->state_attn));
        json_object_set_new(e, "state_bytes_swa", json_integer(row->state_swa));
        json_object_set_new(e, "state_bytes_linear", json_integer(row->state_linear));
        json_object_set_new(e, "train_tokens_per_s", jnum(row->train_tokens_per_s));
        json_object_set_new(e, "train_seconds", jnum(row->train_seconds));
        json_object_set_new(e, "final_loss", jnum(row->final_loss));
        json_object_set_new(e, "valid_loss", jnum(row->valid_loss));
        json_object_set_new(e, "steps", json_integer(row->steps));
        json_object_set_new(e, "eval_seconds", jnum(row->eval_seconds));
        json_object_set_new(e, "prefill_tokens_per_s", jnum(row->prefill_tokens_per_s));
        json_object_set_new(e, "decode_tokens_per_s", jnum(row->decode_tokens_per_s));
        json_object_set_new(e, "decode_step_ms", jnum(row->decode_step_ms));
        json_array_append_new(rows, e);
    }
    json_object_set_new(j, "rows", rows);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    PN_ASSERT(text);
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    pn_write_file_atomic(path, text, n + 1);
    free(text);
}

// scripts/plot_ablation.py: $POSTNAS_SRC/scripts, ./scripts, then next to the
// binary (a build directory inside the tree, or an install prefix).
static int find_plot_script(char *out, size_t n) {
    const char *rel = "scripts/plot_ablation.py";
    const char *src = getenv("POSTNAS_SRC");
    if (src && src[0]) {
        snprintf(out, n, "%s/%s", src, rel);
        if (pn_file_exists(out)) return 1;
    }
    snprintf(out, n, "%s", rel);
    if (pn_file_exists(out)) return 1;
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(out, n, "%s/../%s", exe, rel);
            if (pn_file_exists(out)) return 1;
            snprintf(out, n, "%s/../share/postnas/%s", exe, rel);
            if (pn_file_exists(out)) return 1;
        }
    }
    return 0;
}

// Runs python3 SCRIPT JSON PNG with its stdout sent to stderr (stdout is the
// command's). Any failure is a warning: the table files are the result.
static void plot(const char *json_path, const char *png_path) {
    char script[4400];
    if (!find_plot_script(script, sizeof script)) {
        pn_warn("ablation: scripts/plot_ablation.py not found (set POSTNAS_SRC to the source tree); no %s", png_path);
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        pn_warn("ablation: cannot start python3 (%s); no %s", strerror(errno), png_path);
        return;
    }
    if (pid == 0) {
        dup2(2, 1);
        execlp("python3", "python3", script, json_path, png_path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            pn_warn("ablation: waiting for the plot script failed (%s); no %s", strerror(errno), png_path);
            return;
        }
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc == 0)
        pn_info("ablation: wrote %s", png_path);
    else if (rc == 127)
        pn_warn("ablation: python3 not found; no %s (the table files are complete)", png_path);
    else if (rc == 3)
        pn_warn("ablation: matplotlib is not installed for python3; no %s (the table files are complete)", png_path);
    else
        pn_warn("ablation: %s exited with %d; no %s (the table files are complete)", script, rc, png_path);
}

void pn_ablation_write(const pn_ablation_result *r, const pn_job_config *c, const char *where, const char *out_dir) {
    if (!where || !where[0]) where = "config";
    pn_mkdir_p(out_dir);
    char md[4200], csv[4200], js[4200], png[4200];
    pn_path_join(md, sizeof md, out_dir, "ablation.md");
    pn_path_join(csv, sizeof csv, out_dir, "ablation.csv");
    pn_path_join(js, sizeof js, out_dir, "ablation.json");
    pn_path_join(png, sizeof png, out_dir, "ablation.png");
    write_md(r, c, where, md);
    write_csv(r, c, csv);
    write_json(r, c, where, js);
    pn_info("ablation: wrote %s, %s, %s", md, csv, js);
    if (c->ablation.plot) plot(js, png);
}
