// trainer.c — see trainer.h.
//
// Determinism is what makes resume bit-identical: everything a step depends on
// is either in the checkpoint (weights, AdamW m/v/t, the sampling RNG, the loader
// position) or a pure function of the config (the LR at step s, the loader's
// window order). Nothing is drawn from the wall clock, and the validation loader
// restarts at window 0 for every evaluation, so evaluations do not disturb the
// training stream.
//
// run.device cuda (supernet mode only): the distillation arithmetic of each
// micro-batch runs on a pn_csupernet while everything above stays on the host —
// parameters, gradients, clipping, AdamW, checkpoints — so resume and the files a
// run writes do not depend on the device (see the supernet adapter below).
#define _POSIX_C_SOURCE 200809L
#include "supernet/trainer.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "datasets/tokens.h"
#include "kernels/ops.h"
#include "supernet/backbone.h"
#include "supernet/checkpoint.h"
#include "supernet/csupernet.h"
#include "supernet/model_init.h"
#include "supernet/supernet.h"
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <unistd.h>
#ifdef POSTNAS_HAVE_CUDA
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_ops.h"
#endif

// ---------------------------------------------------------------- arch -> HF config

void pn_arch_to_hf(const pn_arch_config *a, pn_hf_config *out, const char *where) {
    memset(out, 0, sizeof(*out));
    if (a->num_layers <= 0) pn_die_input(where, "arch.num_layers must be >= 1 for a model trained from scratch");
    if (a->vocab_size <= 0) pn_die_input(where, "arch.vocab_size must be >= 1 (got %d)", a->vocab_size);
    if (a->hidden_size <= 0) pn_die_input(where, "arch.hidden_size must be >= 1 (got %d)", a->hidden_size);
    if (a->intermediate_size <= 0)
        pn_die_input(where, "arch.intermediate_size must be >= 1 (got %d)", a->intermediate_size);
    if (a->num_heads <= 0) pn_die_input(where, "arch.num_heads must be >= 1 (got %d)", a->num_heads);
    int kv = a->num_kv_heads ? a->num_kv_heads : a->num_heads;
    if (a->num_heads % kv != 0)
        pn_die_input(where, "arch.num_kv_heads = %d must divide arch.num_heads = %d", kv, a->num_heads);
    int hd = a->head_dim;
    if (hd == 0) {
        if (a->hidden_size % a->num_heads != 0)
            pn_die_input(where, "arch.hidden_size = %d is not a multiple of arch.num_heads = %d (or set arch.head_dim)",
                         a->hidden_size, a->num_heads);
        hd = a->hidden_size / a->num_heads;
    }
    if (hd % 2 != 0) pn_die_input(where, "arch.head_dim = %d must be even (RoPE rotates pairs)", hd);
    const char *mt = pn_arch_type_names[a->model_type];
    snprintf(out->model_type, sizeof out->model_type, "%s", mt);
    snprintf(out->architecture, sizeof out->architecture, "%s",
             a->model_type == PN_ARCH_LLAMA   ? "LlamaForCausalLM"
             : a->model_type == PN_ARCH_QWEN3 ? "Qwen3ForCausalLM"
                                              : "Qwen2ForCausalLM");
    snprintf(out->dtype, sizeof out->dtype, "float32");
    out->vocab_size = a->vocab_size;
    out->hidden_size = a->hidden_size;
    out->intermediate_size = a->intermediate_size;
    out->num_hidden_layers = a->num_layers;
    out->num_attention_heads = a->num_heads;
    out->num_key_value_heads = kv;
    out->head_dim = hd;
    out->rms_norm_eps = a->rms_norm_eps;
    out->rope_theta = a->rope_theta;
    out->tie_word_embeddings = a->tie_embeddings ? 1 : 0;
    out->qkv_bias = a->model_type == PN_ARCH_QWEN2;  // Qwen2 always has q/k/v biases
    out->o_bias = 0;
    out->qk_norm = a->model_type == PN_ARCH_QWEN3;
}

// ---------------------------------------------------------------- config hash

static uint64_t fnv1a(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

// Sub-schema of one top-level section of the job schema.
static const pn_cfg_field *job_section(const char *key) {
    for (const pn_cfg_field *f = pn_job_config_schema; f->key; f++)
        if (strcmp(f->key, key) == 0) return f;
    pn_die_internal(__FILE__, __LINE__, "no section '%s' in the job schema", key);
}

uint64_t pn_train_config_hash(const pn_job_config *c) {
    // A shallow copy with the keys that cannot change the numbers neutralised;
    // strings are only read by the printer, so static "" is fine there.
    pn_job_config k = *c;
    static char empty[1] = "";
    k.run.name = empty;
    k.run.out_dir = empty;
    k.run.threads = 0;
    k.run.log_level = 0;
    k.data.valid = empty;
    k.data.tasks_dir = empty;
    k.train.eval_every = 0;
    k.train.eval_batches = 1;
    k.train.ckpt_every = 0;
    k.train.ckpt_keep = 0;
    k.train.log_every = 1;
    static const char *const sections[] = {"run", "model", "arch", "data", "train", "supernet"};
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < PN_ARRAY_LEN(sections); i++) {
        const pn_cfg_field *f = job_section(sections[i]);
        char *buf = NULL;
        size_t n = 0;
        FILE *mf = open_memstream(&buf, &n);
        PN_ASSERT(mf);
        pn_config_print(f->section, (const char *)&k + f->offset, mf);
        fclose(mf);
        h = fnv1a(h, f->key, strlen(f->key) + 1);
        h = fnv1a(h, buf, n);
        free(buf);
    }
    return h;
}

// ---------------------------------------------------------------- helpers

static void refs_from_table(pn_param_ref *r, const char *name, float *w, float *g, int ndim, const int64_t *shape,
                            int wd) {
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->w = w;
    r->g = g;
    r->weight_decay = wd;
    r->ndim = ndim;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        r->shape[d] = shape[d];
        n *= shape[d];
    }
    r->n = n;
}

// Writes every ref as F32 under its name and shape into PATH (atomic).
static void refs_save_f32(const pn_param_ref *refs, int n_refs, const char *path, const char *key, const char *val) {
    pn_st_writer *w = pn_st_writer_new();
    pn_st_writer_meta(w, "format", "pt");
    if (key) pn_st_writer_meta(w, key, val);
    for (int i = 0; i < n_refs; i++) {
        int64_t shape[4];
        int nd = pn_param_ref_shape(&refs[i], shape);
        pn_st_writer_add_f32(w, refs[i].name, PN_F32, nd, shape, refs[i].w);
    }
    pn_st_writer_save(w, path);
}

// ---------------------------------------------------------------- backbone adapter

typedef struct {
    pn_backbone *bb;
    pn_bb_param *table;
} bb_impl;

static double bb_step(pn_train_model *m, const int64_t *inputs, const int64_t *targets, int B, int T,
                      float grad_scale, pn_rng *rng) {
    (void)rng;
    pn_backbone *bb = ((bb_impl *)m->impl)->bb;
    bb->no_logits = 0;
    pn_backbone_forward(bb, inputs, B, T);
    // Every target of the window counts (the loader's targets are the inputs
    // shifted by one, including the token after the last input).
    double loss = pn_cross_entropy(bb->dlogits, bb->logits, targets, (int64_t)B * T, bb->V, grad_scale);
    pn_backbone_backward(bb, bb->dlogits, NULL);
    return loss;
}

static double bb_eval(pn_train_model *m, const int64_t *inputs, const int64_t *targets, int B, int T) {
    pn_backbone *bb = ((bb_impl *)m->impl)->bb;
    bb->no_logits = 0;
    pn_backbone_forward(bb, inputs, B, T);
    return pn_cross_entropy(NULL, bb->logits, targets, (int64_t)B * T, bb->V, 1.0f);
}

// out_dir/model/: config.json + model.safetensors (F32), pn_backbone_load-able.
static void bb_save(pn_train_model *m, const char *out_dir) {
    pn_backbone *bb = ((bb_impl *)m->impl)->bb;
    char dir[4096], path[4200];
    pn_path_join(dir, sizeof dir, out_dir, "model");
    pn_hf_config_write(&bb->cfg, dir, "float32");
    pn_path_join(path, sizeof path, dir, "model.safetensors");
    refs_save_f32(m->refs, m->n_refs, path, "postnas", "trained backbone (postnas train)");
    pn_info("wrote %s (%s, %lld parameters, f32)", dir, bb->cfg.model_type, (long long)pn_backbone_numel(bb));
}

static void bb_free(pn_train_model *m) {
    bb_impl *b = m->impl;
    pn_backbone_free(b->bb);
    free(b->table);
    free(b);
}

pn_train_model *pn_train_model_backbone(pn_backbone *bb) {
    bb_impl *b = pn_calloc(1, sizeof(*b));
    b->bb = bb;
    pn_backbone_alloc_grads(bb);
    int n = pn_backbone_param_count(bb);
    b->table = pn_malloc((size_t)n * sizeof(pn_bb_param));
    pn_backbone_param_table(bb, b->table);
    pn_train_model *m = pn_calloc(1, sizeof(*m));
    m->kind = "backbone";
    m->n_refs = n;
    m->refs = pn_calloc((size_t)n, sizeof(pn_param_ref));
    for (int i = 0; i < n; i++) {
        const pn_bb_param *p = &b->table[i];
        refs_from_table(&m->refs[i], p->name, *p->data, *p->grad, p->ndim, p->shape, p->weight_decay);
    }
    m->vocab_size = bb->V;
    m->step = bb_step;
    m->eval = bb_eval;
    m->save = bb_save;
    m->free = bb_free;
    m->impl = b;
    return m;
}

// ---------------------------------------------------------------- supernet adapter

// With run.device cuda the adapter keeps its CPU pn_supernet as the owner of the
// configuration, init, sampling and the host parameters / gradients the loop's
// clipping, AdamW and checkpoints work on, and runs the arithmetic of each
// micro-batch on a pn_csupernet (supernet/csupernet.h): the device copy of the
// parameters is refreshed when the host ones changed (the loop tells the adapter
// through model_params_changed, after every optimizer step and checkpoint load),
// the device gradients are zeroed before each micro-batch and added into the host
// gradients after it, so each micro-batch's gradient reaches the host exactly once.
typedef struct {
    pn_backbone *bb;
    pn_supernet *sn;
    pn_csupernet *cs;          // NULL: the CPU path
    uint64_t gen_host, gen_dev;  // host parameter generation / the one on the device
} sn_impl;

#ifdef POSTNAS_HAVE_CUDA
static void sn_cuda_sync_params(sn_impl *s) {
    if (s->gen_dev == s->gen_host) return;
    pn_csupernet_upload_params(s->cs, s->sn->params);
    s->gen_dev = s->gen_host;
}
#endif

static double sn_step(pn_train_model *m, const int64_t *inputs, const int64_t *targets, int B, int T,
                      float grad_scale, pn_rng *rng) {
    (void)targets;  // distillation compares with the teacher on the same inputs
    sn_impl *s = m->impl;
    pn_subnet sub;
    pn_supernet_sample(s->sn, rng, &sub);
#ifdef POSTNAS_HAVE_CUDA
    if (s->cs) {
        sn_cuda_sync_params(s);
        pn_csupernet_zero_grads(s->cs);
        pn_distill_parts parts;
        double loss = pn_csupernet_distill_step(s->cs, inputs, B, T, &sub, grad_scale, &parts);
        pn_csupernet_add_grads_to_host(s->cs, s->sn->grads);
        s->sn->last = parts;
        return loss;
    }
#endif
    s->sn->grad_scale = grad_scale;
    return pn_supernet_distill_step(s->sn, inputs, B, T, &sub);
}

// The all-linear subnet: the hardest member, and every linear path contributes.
static double sn_eval(pn_train_model *m, const int64_t *inputs, const int64_t *targets, int B, int T) {
    (void)targets;
    sn_impl *s = m->impl;
    pn_subnet sub;
    pn_subnet_fill(&sub, s->sn->n_layers, PN_PATH_LINEAR);
#ifdef POSTNAS_HAVE_CUDA
    if (s->cs) {
        sn_cuda_sync_params(s);
        pn_distill_parts parts;
        double loss = pn_csupernet_eval_loss(s->cs, inputs, B, T, &sub, &parts);
        s->sn->last = parts;
        return loss;
    }
#endif
    return pn_supernet_eval_loss(s->sn, inputs, B, T, &sub);
}

// out_dir/supernet.safetensors: the linear-path parameters (F32, table names).
static void sn_save(pn_train_model *m, const char *out_dir) {
    sn_impl *s = m->impl;
    char path[4200];
    pn_mkdir_p(out_dir);
    pn_path_join(path, sizeof path, out_dir, "supernet.safetensors");
    refs_save_f32(m->refs, m->n_refs, path, "linear_block", pn_linear_block_names[s->sn->cfg.block]);
    pn_info("wrote %s (%lld linear-path parameters, f32)", path, (long long)pn_supernet_param_count(s->sn));
}

static void sn_free(pn_train_model *m) {
    sn_impl *s = m->impl;
#ifdef POSTNAS_HAVE_CUDA
    if (s->cs) pn_csupernet_free(s->cs);
#endif
    pn_supernet_free(s->sn);
    pn_backbone_free(s->bb);
    free(s);
}

// The host parameters of m were rewritten (optimizer step, checkpoint load): a
// device image must be refreshed before its next step or eval.
static void model_params_changed(pn_train_model *m) {
    if (m->step == sn_step) ((sn_impl *)m->impl)->gen_host++;
}

// Moves the arithmetic of a supernet adapter onto the current CUDA device.
static void sn_attach_cuda(pn_train_model *m) {
#ifdef POSTNAS_HAVE_CUDA
    PN_ASSERT(m->step == sn_step);
    sn_impl *s = m->impl;
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    s->cs = pn_csupernet_create(s->sn);  // uploads sn->params
    s->gen_dev = s->gen_host;
    pn_info("train (supernet): distillation steps on CUDA device 0 (%s, %d SMs); clipping, AdamW and checkpoints "
            "on the host", info.name, info.multiprocessors);
#else
    (void)m;
    pn_die_internal(__FILE__, __LINE__, "sn_attach_cuda in a build without CUDA");
#endif
}

pn_train_model *pn_train_model_supernet(pn_backbone *bb, const pn_supernet_config *cfg, uint64_t seed) {
    sn_impl *s = pn_calloc(1, sizeof(*s));
    s->bb = bb;
    s->sn = pn_supernet_create(bb, cfg, seed);
    pn_train_model *m = pn_calloc(1, sizeof(*m));
    m->kind = "supernet";
    m->n_refs = s->sn->n_table;
    m->refs = pn_calloc((size_t)PN_MAX(m->n_refs, 1), sizeof(pn_param_ref));
    for (int i = 0; i < m->n_refs; i++) {
        const pn_sn_param *p = &s->sn->table[i];
        refs_from_table(&m->refs[i], p->name, p->data, p->grad, p->ndim, p->shape, p->weight_decay);
    }
    m->vocab_size = bb->V;
    m->step = sn_step;
    m->eval = sn_eval;
    m->save = sn_save;
    m->free = sn_free;
    m->impl = s;
    return m;
}

void pn_train_model_free(pn_train_model *m) {
    if (!m) return;
    m->free(m);
    free(m->refs);
    free(m);
}

// ---------------------------------------------------------------- run directory

// Keeps the lines of metrics.jsonl whose "step" is <= keep_step (a killed run may
// have logged past its last checkpoint, and its last line may be cut short);
// keep_step < 0 empties the file. Rewritten atomically.
static void metrics_truncate(const char *path, int64_t keep_step) {
    char *text = NULL;
    size_t n = 0;
    if (keep_step >= 0 && pn_file_exists(path)) text = pn_read_file(path, &n);
    char *out = pn_malloc(n + 1);
    size_t o = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl) break;  // no newline: cut short by the kill
        *nl = 0;
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        json_t *st = j ? json_object_get(j, "step") : NULL;
        if (st && json_is_integer(st) && json_integer_value(st) <= keep_step) {
            size_t len = strlen(line);
            memcpy(out + o, line, len);
            o += len;
            out[o++] = '\n';
        }
        json_decref(j);
        line = nl + 1;
    }
    pn_write_file_atomic(path, out, o);
    free(out);
    free(text);
}

static int is_step_dir(const char *name, int64_t *step) {
    if (strncmp(name, "step_", 5) != 0 || !name[5]) return 0;
    for (const char *p = name + 5; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    *step = strtoll(name + 5, NULL, 10);
    return 1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Removes complete step_N checkpoints older than the newest `keep` (after a new
// one is committed, so a valid checkpoint always remains).
static void ckpt_prune(const char *out_dir, int keep) {
    if (keep <= 0) return;
    char root[4096];
    pn_path_join(root, sizeof root, out_dir, "ckpt");
    DIR *d = opendir(root);
    if (!d) return;
    int64_t *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (!is_step_dir(e->d_name, &s)) continue;
        if (n == cap) steps = pn_realloc(steps, (size_t)(cap = cap ? 2 * cap : 16) * sizeof(int64_t));
        steps[n++] = s;
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof(int64_t), cmp_i64);
    for (int i = 0; i + keep < n; i++) {
        char dir[4200];
        pn_checkpoint_path(dir, sizeof dir, out_dir, steps[i]);
        DIR *cd = opendir(dir);
        if (!cd) continue;
        while ((e = readdir(cd))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char f[4400];
            pn_path_join(f, sizeof f, dir, e->d_name);
            if (unlink(f) != 0) pn_warn("could not remove %s", f);
        }
        closedir(cd);
        if (rmdir(dir) != 0) pn_warn("could not remove %s", dir);
    }
    free(steps);
}

static void loader_pos_pack(pn_token_loader_pos p, uint8_t *out) {
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(p.epoch >> (8 * i));
        out[8 + i] = (uint8_t)(p.index >> (8 * i));
    }
}

static pn_token_loader_pos loader_pos_unpack(const uint8_t *in) {
    pn_token_loader_pos p = {0, 0};
    for (int i = 0; i < 8; i++) {
        p.epoch |= (uint64_t)in[i] << (8 * i);
        p.index |= (uint64_t)in[8 + i] << (8 * i);
    }
    return p;
}

// ---------------------------------------------------------------- the loop

// A number for metrics.jsonl; JSON has no NaN/inf, so those become null.
static void json_num(char *out, size_t n, double x) {
    if (isfinite(x))
        snprintf(out, n, "%.9g", x);
    else
        snprintf(out, n, "null");
}

typedef struct {
    const pn_job_config *c;
    pn_train_model *m;
    pn_adamw opt;
    pn_token_loader *train, *valid;
    pn_rng rng;
    int64_t step;          // steps done
    double elapsed0;       // seconds spent by earlier processes (from the checkpoint)
    double t0;             // this process's start
    uint64_t hash;
    FILE *metrics;
} trainer;

static void trainer_checkpoint(trainer *tr) {
    const pn_job_config *c = tr->c;
    pn_ckpt_state st;
    memset(&st, 0, sizeof st);
    st.step = tr->step;
    st.rng = tr->rng;
    loader_pos_pack(pn_token_loader_get_pos(tr->train), st.loader);
    st.loader_len = 16;
    st.config_hash = tr->hash;
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", tr->elapsed0 + (pn_now_seconds() - tr->t0));
    pn_ckpt_state_set(&st, "elapsed", buf);
    pn_ckpt_state_set(&st, "mode", tr->m->kind);
    char dir[4200];
    pn_checkpoint_path(dir, sizeof dir, c->run.out_dir, tr->step);
    pn_checkpoint_save(dir, tr->m->refs, tr->m->n_refs, &tr->opt, &st);
    pn_debug("checkpoint %s", dir);
    ckpt_prune(c->run.out_dir, c->train.ckpt_keep);
}

// Mean loss over the validation batches; the loader restarts at window 0, so
// every evaluation sees the same windows.
static double trainer_eval(trainer *tr, int64_t *in, int64_t *tg) {
    const pn_job_config *c = tr->c;
    const int B = c->data.batch_size, T = c->data.seq_len;
    uint64_t avail = pn_token_loader_n_windows(tr->valid) / (uint64_t)B;
    int nb = (int)PN_MIN((uint64_t)c->train.eval_batches, PN_MAX(avail, 1));
    pn_token_loader_set_pos(tr->valid, (pn_token_loader_pos){0, 0});
    double sum = 0;
    for (int b = 0; b < nb; b++) {
        pn_token_loader_next(tr->valid, in, tg);
        sum += tr->m->eval(tr->m, in, tg, B, T);
    }
    return sum / nb;
}

static pn_token_loader *open_loader(const char *path, const pn_job_config *c, int shuffle, int64_t vocab) {
    pn_token_loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.B = c->data.batch_size;
    lc.T = c->data.seq_len;
    lc.seed = (uint64_t)c->run.seed;
    lc.shuffle = shuffle;
    lc.rank = 0;
    lc.world = 1;
    lc.vocab_size = (uint64_t)vocab;
    const char *paths[1] = {path};
    return pn_token_loader_open(paths, 1, &lc);
}

int pn_trainer_run_model(const pn_job_config *c, pn_train_model *m, const pn_train_opts *opts, pn_train_result *res) {
    const char *where = opts && opts->where && opts->where[0] ? opts->where : "config";
    const pn_train_config *tc = &c->train;
    if (!(tc->beta1 < 1.0)) pn_die_input(where, "train.beta1 = %g, expected < 1", tc->beta1);
    if (!(tc->beta2 < 1.0)) pn_die_input(where, "train.beta2 = %g, expected < 1", tc->beta2);
    if (!c->data.train[0]) pn_die_input(where, "data.train is empty: training needs a token file");
    if (m->n_refs == 0) pn_die_input(where, "the %s model has no trainable parameters", m->kind);
    const int B = c->data.batch_size, T = c->data.seq_len, A = tc->grad_accum;
    const int64_t total = tc->steps;
    const int64_t stop = opts && opts->stop_at > 0 ? PN_MIN(opts->stop_at, total) : total;
    const char *out = c->run.out_dir;

    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.c = c;
    tr.m = m;
    tr.hash = pn_train_config_hash(c);
    tr.rng = pn_rng_make((uint64_t)c->run.seed, pn_hash_str("train.subnet"));
    tr.train = open_loader(c->data.train, c, 1, m->vocab_size);
    if (c->data.valid[0] && tc->eval_every > 0) tr.valid = open_loader(c->data.valid, c, 0, m->vocab_size);
    pn_adamw_init(&tr.opt, m->refs, m->n_refs, (float)tc->lr, (float)tc->weight_decay);
    tr.opt.beta1 = (float)tc->beta1;
    tr.opt.beta2 = (float)tc->beta2;

    // Resume, or refuse to mix a fresh run into an old directory.
    pn_job_config_write_resolved(c, out);
    char ckpt[4200], metrics_path[4200];
    pn_path_join(metrics_path, sizeof metrics_path, out, "metrics.jsonl");
    int64_t latest = pn_checkpoint_latest(out, ckpt, sizeof ckpt);
    if (latest >= 0 && !(opts && opts->resume))
        pn_die_input(out, "already holds checkpoints (newest: %s); pass --resume to continue that run, or choose "
                          "another run.out_dir", ckpt);
    if (latest >= 0) {
        pn_ckpt_state st;
        pn_checkpoint_load(ckpt, m->refs, m->n_refs, &tr.opt, &st);
        model_params_changed(m);
        if (st.config_hash != tr.hash)
            pn_die_input(ckpt, "was written by a different config (hash %016llx, this config %016llx): only run "
                               "names, paths, threads, logging, eval and checkpoint cadence may change on resume",
                         (unsigned long long)st.config_hash, (unsigned long long)tr.hash);
        if (st.loader_len != 16) pn_die_input(ckpt, "state.json: loader position has %d bytes, expected 16", st.loader_len);
        if (st.step > total)
            pn_die_input(ckpt, "is at step %lld, past train.steps = %lld", (long long)st.step, (long long)total);
        pn_token_loader_set_pos(tr.train, loader_pos_unpack(st.loader));
        tr.rng = st.rng;
        tr.step = st.step;
        const char *el = pn_ckpt_state_get(&st, "elapsed");
        tr.elapsed0 = el ? strtod(el, NULL) : 0;
        metrics_truncate(metrics_path, tr.step);
        pn_info("resuming from %s (step %lld of %lld)", ckpt, (long long)tr.step, (long long)total);
    } else {
        if (opts && opts->resume) pn_info("no checkpoint in %s/ckpt: starting from step 0", out);
        metrics_truncate(metrics_path, -1);
    }
    tr.metrics = fopen(metrics_path, "a");
    if (!tr.metrics) pn_die_input(metrics_path, "cannot open for appending: %s", strerror(errno));

    int64_t n_params = 0;
    for (int i = 0; i < m->n_refs; i++) n_params += m->refs[i].n;
    pn_info("train (%s): %lld trainable parameters, %d x %d tokens x %d micro-batches per step, steps %lld..%lld",
            m->kind, (long long)n_params, B, T, A, (long long)tr.step, (long long)stop);

    int64_t *in = pn_malloc((size_t)B * T * sizeof(int64_t));
    int64_t *tg = pn_malloc((size_t)B * T * sizeof(int64_t));
    pn_progress prog;
    pn_progress_start(&prog, "train", PN_MAX(stop - tr.step, 0));
    const int64_t start_step = tr.step;
    double last_loss = NAN, valid_loss = NAN, t_train = 0;
    tr.t0 = pn_now_seconds();
    while (tr.step < stop) {
        double ts = pn_now_seconds();
        pn_grads_zero(m->refs, m->n_refs);
        double loss = 0;
        for (int a = 0; a < A; a++) {
            pn_token_loader_next(tr.train, in, tg);
            loss += m->step(m, in, tg, B, T, 1.0f / (float)A, &tr.rng);
        }
        loss /= A;
        double gnorm = tc->grad_clip > 0 ? pn_grad_clip(m->refs, m->n_refs, tc->grad_clip)
                                         : pn_grad_norm(m->refs, m->n_refs);
        float lr = pn_lr_at(tr.step, total, tc->warmup_steps, (float)tc->lr, (float)tc->min_lr_ratio);
        if (isfinite(gnorm)) {
            tr.opt.lr = lr;
            pn_adamw_step(&tr.opt, m->refs, m->n_refs);
            model_params_changed(m);
        } else {
            pn_warn("step %lld: gradient norm is %g; update skipped", (long long)tr.step + 1, gnorm);
        }
        tr.step++;
        double dt = pn_now_seconds() - ts;
        t_train += dt;
        last_loss = loss;
        double tps = (double)B * T * A / (dt > 0 ? dt : 1e-9);
        double elapsed = tr.elapsed0 + (pn_now_seconds() - tr.t0);
        if (tr.step % tc->log_every == 0 || tr.step == stop) {
            char ls[32], gs[32];
            json_num(ls, sizeof ls, loss);
            json_num(gs, sizeof gs, gnorm);
            fprintf(tr.metrics,
                    "{\"step\": %lld, \"loss\": %s, \"lr\": %.9g, \"grad_norm\": %s, \"tokens_per_s\": %.6g, "
                    "\"elapsed\": %.3f}\n",
                    (long long)tr.step, ls, (double)lr, gs, tps, elapsed);
            fflush(tr.metrics);
        }
        if (tr.valid && (tr.step % tc->eval_every == 0 || tr.step == total)) {
            valid_loss = trainer_eval(&tr, in, tg);
            char vs[32];
            json_num(vs, sizeof vs, valid_loss);
            fprintf(tr.metrics, "{\"step\": %lld, \"valid_loss\": %s, \"elapsed\": %.3f}\n", (long long)tr.step, vs,
                    tr.elapsed0 + (pn_now_seconds() - tr.t0));
            fflush(tr.metrics);
            pn_info("step %lld: valid loss %.4f", (long long)tr.step, valid_loss);
        }
        if ((tc->ckpt_every > 0 && tr.step % tc->ckpt_every == 0) || tr.step == stop) {
            trainer_checkpoint(&tr);
        }
        pn_progress_update(&prog, tr.step - start_step, "step %lld | loss %.4f | %.0f tok/s", (long long)tr.step,
                           loss, tps);
    }
    if (stop > start_step) pn_progress_finish(&prog);
    fclose(tr.metrics);

    if (tr.step >= total) m->save(m, out);
    if (res) {
        res->steps_done = tr.step;
        res->last_loss = last_loss;
        res->valid_loss = valid_loss;
        res->tokens_per_s = t_train > 0 ? (double)(tr.step - start_step) * B * T * A / t_train : 0;
    }
    free(in);
    free(tg);
    pn_adamw_free(&tr.opt);
    pn_token_loader_close(tr.train);
    if (tr.valid) pn_token_loader_close(tr.valid);
    pn_train_model_free(m);
    return 0;
}

// ---------------------------------------------------------------- entry point

// run.device: cuda runs the supernet distillation steps on CUDA device 0; the
// checks come before the (slow) model load.
static void device_select(const pn_job_config *c, const char *where) {
    if (c->run.device == PN_DEVICE_CPU) return;
    if (c->run.device != PN_DEVICE_CUDA) pn_die_input(where, "run.device index %d is unknown", c->run.device);
    if (c->train.mode == PN_TRAIN_BACKBONE)
        pn_die_input(where, "run.device: cuda with train.mode: backbone: backbone pretraining is CPU-only for now "
                            "(set run.device: cpu; supernet training runs on cuda)");
#ifdef POSTNAS_HAVE_CUDA
    if (pn_cuda_device_count() < 1) {
        fprintf(stderr, "postnas: device error: %s: run.device cuda but no CUDA device is visible\n", where);
        exit(PN_EXIT_DEVICE);
    }
    if (c->run.gemm_autotune > 1) pn_cuda_gemm_autotune_set(c->run.gemm_autotune);
#else
    pn_die_input(where, "run.device: cuda, but this postnas was built without CUDA (rebuild with -DPOSTNAS_CUDA=ON "
                        "where nvcc exists, or set run.device: cpu)");
#endif
}

int pn_train_run(const pn_job_config *c, const pn_train_opts *opts, pn_train_result *res) {
    const char *where = opts && opts->where && opts->where[0] ? opts->where : "config";
    pn_log_set_default_level((pn_log_level)c->run.log_level);
    if (c->run.threads > 0) omp_set_num_threads(c->run.threads);
    char dir[4096];
    const int has_arch = c->arch.num_layers > 0;
    if (c->model.path[0] && has_arch)
        pn_die_input(where, "both model.path ('%s') and an arch section (arch.num_layers = %d) are given: use "
                            "model.path for a pretrained model, or model.path \"\" with arch to train from scratch",
                     c->model.path, c->arch.num_layers);
    if (!c->model.path[0] && !has_arch)
        pn_die_input(where, "model.path is \"\" and there is no arch section (arch.num_layers = 0): give a model "
                            "directory, or the arch of a model to train from scratch");
    device_select(c, where);
    if (has_arch) {
        pn_hf_config hf;
        pn_arch_to_hf(&c->arch, &hf, where);
        // A pure function of (arch, seed): rewriting it on resume gives the same files.
        pn_path_join(dir, sizeof dir, c->run.out_dir, "init");
        pn_model_init_write(&hf, dir, (uint64_t)c->run.seed, PN_F32);
    } else {
        snprintf(dir, sizeof dir, "%s", c->model.path);
    }
    pn_backbone *bb = pn_backbone_load(dir);
    pn_train_model *m = c->train.mode == PN_TRAIN_BACKBONE
                            ? pn_train_model_backbone(bb)
                            : pn_train_model_supernet(bb, &c->supernet, (uint64_t)c->run.seed);
    if (c->run.device == PN_DEVICE_CUDA) sn_attach_cuda(m);
    return pn_trainer_run_model(c, m, opts, res);
}
