// test_trainer.c — the training loop (supernet/trainer.h) on a tiny from-scratch
// Qwen2 model (2 layers, hidden 32, vocab 64, T 16, B 4) and a token file written
// here.
//
//  - learning: on a stream that is a fixed cycle of distinct tokens, the next
//    token is a function of the current one, so the loss must fall from ln 64
//    (the value of near-zero random logits — independent of the code) to far
//    below it within 30 steps; metrics.jsonl has one parseable line per step and
//    the written model/ reloads through pn_backbone_load and reproduces the
//    logged validation loss;
//  - accumulation: B=4 in one micro-batch vs 2 micro-batches of 2 (the loader
//    hands out the same 4 windows in the same order) give the same loss and
//    gradient norm and, after one AdamW step, the same parameters within fp32
//    round-off (1e-5 relative);
//  - resume: 12 steps straight vs a run stopped at 7 whose last checkpoint is
//    then deleted (a kill between the step-7 metrics and its checkpoint),
//    resumed from step 4 to 12: final parameters and AdamW state are identical
//    byte for byte (memcmp), and metrics.jsonl has each step exactly once;
//  - the same resume identity in supernet mode, where the sampling RNG matters;
//  - misuse (fresh start over checkpoints, a changed config on resume, no model,
//    an inconsistent arch) exits 2 with a message.
#include "core/fileio.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "datasets/tokens.h"
#include "kernels/ops.h"
#include "supernet/checkpoint.h"
#include "supernet/trainer.h"
#include "test_util.h"
#include <jansson.h>

enum { V = 64, N_TOK = 8192, PERIOD = 61 };

static char g_root[64];
static char g_train[256], g_valid[256];

static void write_data(void) {
    // A cycle through 61 distinct ids (a permutation of 0..60 by 29·i mod 61),
    // started at different offsets for train and valid.
    uint32_t *tok = pn_malloc(N_TOK * sizeof(uint32_t));
    for (int i = 0; i < N_TOK; i++) tok[i] = (uint32_t)((29 * i) % PERIOD);
    snprintf(g_train, sizeof g_train, "%s/train.h5", g_root);
    pn_tokens_write_h5(g_train, tok, N_TOK, 2, -1, V);
    for (int i = 0; i < N_TOK / 4; i++) tok[i] = (uint32_t)((29 * (i + 17)) % PERIOD);
    snprintf(g_valid, sizeof g_valid, "%s/valid.h5", g_root);
    pn_tokens_write_h5(g_valid, tok, N_TOK / 4, 2, -1, V);
    free(tok);
}

// A job config: tiny arch, this test's data, `extra` appended (train keys etc.).
static void load_cfg(pn_job_config *c, const char *out, const char *train_extra, const char *more) {
    char text[4096];
    snprintf(text, sizeof text,
             "run:\n  out_dir: %s/%s\n  seed: 7\n  log_level: warn\n"
             "model:\n  path: \"\"\n"
             "arch:\n  vocab_size: %d\n  hidden_size: 32\n  intermediate_size: 64\n  num_layers: 2\n"
             "  num_heads: 4\n  num_kv_heads: 2\n"
             "data:\n  train: %s\n  valid: %s\n  seq_len: 16\n  batch_size: 4\n"
             "train:\n  lr: 1e-2\n  log_every: 1\n%s%s%s"
             "%s",
             g_root, out, V, g_train, g_valid, strstr(train_extra, "mode:") ? "" : "  mode: backbone\n",
             strstr(train_extra, "warmup_steps:") ? "" : "  warmup_steps: 2\n", train_extra,
             more ? more : "");
    pn_job_config_load_string(c, text, strlen(text), "test.yaml");
}

static void run_cfg(const char *out, const char *train_extra, const char *more, int resume, int64_t stop_at,
                    pn_train_result *r) {
    pn_job_config c;
    load_cfg(&c, out, train_extra, more);
    pn_train_opts o = {.resume = resume, .stop_at = stop_at, .where = "test.yaml"};
    pn_train_run(&c, &o, r);
    pn_job_config_free(&c);
}

static const char *path_in(const char *out, const char *rel) {
    static char buf[4][4096];
    static int slot = 0;
    char *p = buf[slot++ % 4];
    snprintf(p, 4096, "%s/%s/%s", g_root, out, rel);
    return p;
}

// Parsed metrics.jsonl: train lines (step, loss, grad_norm) and eval steps.
typedef struct {
    int n_train, n_eval, n_bad;
    int64_t step[256], eval_step[64];
    double loss[256], gnorm[256], eval_loss[64];
} metrics;

static void metrics_read(const char *path, metrics *m) {
    memset(m, 0, sizeof(*m));
    size_t n;
    char *text = pn_read_file(path, &n);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        json_t *st = j ? json_object_get(j, "step") : NULL;
        if (!st || !json_is_integer(st)) {
            m->n_bad++;
        } else if (json_object_get(j, "valid_loss")) {
            if (m->n_eval < 64) {
                m->eval_step[m->n_eval] = json_integer_value(st);
                m->eval_loss[m->n_eval++] = json_number_value(json_object_get(j, "valid_loss"));
            }
        } else {
            const char *keys[] = {"loss", "lr", "grad_norm", "tokens_per_s", "elapsed"};
            int ok = 1;
            for (int k = 0; k < 5; k++) ok &= json_is_number(json_object_get(j, keys[k]));
            if (!ok || m->n_train >= 256) {
                m->n_bad++;
            } else {
                m->step[m->n_train] = json_integer_value(st);
                m->loss[m->n_train] = json_number_value(json_object_get(j, "loss"));
                m->gnorm[m->n_train++] = json_number_value(json_object_get(j, "grad_norm"));
            }
        }
        json_decref(j);
    }
    free(text);
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = pn_read_file(a, &na), *y = pn_read_file(b, &nb);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

// ---------------------------------------------------------------- learning

static void test_learns(void) {
    pn_train_result r;
    run_cfg("learn", "  steps: 30\n  eval_every: 10\n  eval_batches: 4\n  ckpt_every: 10\n", NULL, 0, 0, &r);
    metrics m;
    metrics_read(path_in("learn", "metrics.jsonl"), &m);
    CHECK(m.n_bad == 0, "metrics.jsonl: %d unparseable lines", m.n_bad);
    CHECK(m.n_train == 30, "metrics.jsonl: %d train lines, want 30", m.n_train);
    int in_order = 1;
    for (int i = 0; i < m.n_train; i++) in_order &= m.step[i] == i + 1;
    CHECK(in_order, "metrics.jsonl: steps 1..30 in order");
    CHECK(m.n_eval == 3 && m.eval_step[0] == 10 && m.eval_step[1] == 20 && m.eval_step[2] == 30,
          "eval lines at 10, 20, 30 (got %d)", m.n_eval);
    double ln_v = log((double)V);
    double last5 = 0;
    for (int i = 25; i < 30; i++) last5 += m.loss[i] / 5;
    printf("  learn: loss step 1 %.4f (ln 64 = %.4f), mean of steps 26-30 %.4f, valid %.4f, %.0f tok/s\n", m.loss[0],
           ln_v, last5, r.valid_loss, r.tokens_per_s);
    CHECK(fabs(m.loss[0] - ln_v) < 0.05, "first loss %.4f, want ln 64 = %.4f +- 0.05", m.loss[0], ln_v);
    CHECK(last5 < 0.5 * ln_v, "loss after 30 steps %.4f, want < half of ln 64", last5);
    CHECK(r.valid_loss < 0.5 * ln_v, "valid loss %.4f, want < half of ln 64", r.valid_loss);
    CHECK(r.steps_done == 30, "steps_done %lld", (long long)r.steps_done);

    // model/ is an HF directory the backbone loader reads; it reproduces the last eval.
    pn_backbone *bb = pn_backbone_load(path_in("learn", "model"));
    CHECK(bb->n_layers == 2 && bb->C == 32 && bb->V == V && bb->tied, "model/ config");
    pn_token_loader_cfg lc = {.B = 4, .T = 16, .seed = 7, .shuffle = 0, .rank = 0, .world = 1, .vocab_size = V};
    const char *vp[1] = {g_valid};
    pn_token_loader *L = pn_token_loader_open(vp, 1, &lc);
    int64_t in[64], tg[64];
    double sum = 0;
    for (int b = 0; b < 4; b++) {
        pn_token_loader_next(L, in, tg);
        pn_backbone_forward(bb, in, 4, 16);
        sum += pn_cross_entropy(NULL, bb->logits, tg, 64, V, 1.0f);
    }
    double e = fabs(sum / 4 - r.valid_loss) / r.valid_loss;
    printf("  learn: reloaded model/ valid loss %.6f vs logged %.6f (rel %.2e)\n", sum / 4, r.valid_loss, e);
    CHECK(e <= 1e-6, "reloaded model/ loss differs from the logged valid loss: rel %.3e", e);
    pn_token_loader_close(L);
    pn_backbone_free(bb);
}

// ---------------------------------------------------------------- accumulation

static void test_accumulation(void) {
    pn_train_result r;
    const char *common = "  steps: 1\n  warmup_steps: 0\n  grad_clip: 0\n  eval_every: 0\n";
    char t1[512], t2[512];
    snprintf(t1, sizeof t1, "%s  grad_accum: 1\n", common);
    snprintf(t2, sizeof t2, "%s  grad_accum: 2\n", common);
    run_cfg("acc1", t1, NULL, 0, 0, &r);
    // B = 2 via the data section: load, override, run.
    pn_job_config c;
    load_cfg(&c, "acc2", t2, NULL);
    c.data.batch_size = 2;
    pn_train_opts o = {.where = "test.yaml"};
    pn_train_run(&c, &o, &r);
    pn_job_config_free(&c);

    metrics m1, m2;
    metrics_read(path_in("acc1", "metrics.jsonl"), &m1);
    metrics_read(path_in("acc2", "metrics.jsonl"), &m2);
    CHECK(m1.n_train == 1 && m2.n_train == 1, "one metrics line each");
    double el = fabs(m1.loss[0] - m2.loss[0]) / m1.loss[0], eg = fabs(m1.gnorm[0] - m2.gnorm[0]) / m1.gnorm[0];
    printf("  accum: loss %.7f vs %.7f (rel %.2e), grad norm %.7f vs %.7f (rel %.2e)\n", m1.loss[0], m2.loss[0], el,
           m1.gnorm[0], m2.gnorm[0], eg);
    CHECK(el <= 1e-5, "accumulated loss differs: rel %.3e", el);
    CHECK(eg <= 1e-5, "accumulated gradient norm differs: rel %.3e", eg);

    pn_safetensors *a = pn_st_open(path_in("acc1", "model/model.safetensors"));
    pn_safetensors *b = pn_st_open(path_in("acc2", "model/model.safetensors"));
    CHECK(a->n_entries == b->n_entries, "same tensors");
    // All parameters as one vector, and every tensor on its own — except the
    // k_proj biases: adding a constant to every key score of a query leaves its
    // softmax unchanged, so their exact gradient is 0 and what the backward
    // gives is round-off, which AdamW's first step (g / (|g| + eps)) blows up to
    // about ±lr per element. Their values carry no information either way.
    double num = 0, den = 0, worst = 0;
    const char *worst_name = "-";
    for (int i = 0; i < a->n_entries && i < b->n_entries; i++) {
        float *x = pn_st_load_f32(a, a->entries[i].name, NULL, NULL);
        float *y = pn_st_load_f32(b, a->entries[i].name, NULL, NULL);
        size_t n = a->entries[i].nbytes / sizeof(float);
        for (size_t k = 0; k < n; k++) {
            num += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
            den += (double)x[k] * x[k];
        }
        if (!strstr(a->entries[i].name, "k_proj.bias")) {
            double e = rel_err(y, x, n);
            if (e > worst) {
                worst = e;
                worst_name = a->entries[i].name;
            }
            CHECK(e <= 1e-5, "%s: params after one step differ, rel %.3e", a->entries[i].name, e);
        }
        free(x);
        free(y);
    }
    double all = sqrt(num / den);
    printf("  accum: params after one step: all params rel err %.2e; worst tensor %.2e (%s)\n", all, worst,
           worst_name);
    CHECK(all <= 1e-5, "params after one step differ: rel %.3e", all);
    pn_st_close(a);
    pn_st_close(b);
}

// ---------------------------------------------------------------- resume

static void rm_rf(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    PN_ASSERT(system(cmd) == 0);
}

static void test_resume(const char *tag, const char *train_extra, const char *more, const char *final_file) {
    char straight[64], cut[64];
    snprintf(straight, sizeof straight, "%s_straight", tag);
    snprintf(cut, sizeof cut, "%s_cut", tag);
    pn_train_result r;
    run_cfg(straight, train_extra, more, 0, 0, &r);
    run_cfg(cut, train_extra, more, 0, 7, &r);
    CHECK(r.steps_done == 7, "%s: stopped at %lld, want 7", tag, (long long)r.steps_done);
    CHECK(!pn_file_exists(path_in(cut, final_file)), "%s: no final model before the end", tag);
    // The kill came after step 7 was logged but before its checkpoint landed.
    rm_rf(path_in(cut, "ckpt/step_000007"));
    char latest[4096];
    CHECK(pn_checkpoint_latest(path_in(cut, ""), latest, sizeof latest) == 4, "%s: newest checkpoint is step 4", tag);
    run_cfg(cut, train_extra, more, 1, 0, &r);
    CHECK(r.steps_done == 12, "%s: resumed run ended at %lld", tag, (long long)r.steps_done);

    int same_final = files_equal(path_in(straight, final_file), path_in(cut, final_file));
    int same_params = files_equal(path_in(straight, "ckpt/step_000012/model.safetensors"),
                                  path_in(cut, "ckpt/step_000012/model.safetensors"));
    int same_optim = files_equal(path_in(straight, "ckpt/step_000012/optim.safetensors"),
                                 path_in(cut, "ckpt/step_000012/optim.safetensors"));
    printf("  resume (%s): final %s %s, step-12 params %s, AdamW state %s\n", tag, final_file,
           same_final ? "identical" : "DIFFER", same_params ? "identical" : "DIFFER",
           same_optim ? "identical" : "DIFFER");
    CHECK(same_final, "%s: final %s differs from the uninterrupted run", tag, final_file);
    CHECK(same_params, "%s: step-12 params differ", tag);
    CHECK(same_optim, "%s: step-12 AdamW state differs", tag);

    metrics a, b;
    metrics_read(path_in(straight, "metrics.jsonl"), &a);
    metrics_read(path_in(cut, "metrics.jsonl"), &b);
    int ok = a.n_train == 12 && b.n_train == 12 && a.n_eval == b.n_eval && b.n_bad == 0;
    for (int i = 0; ok && i < 12; i++) ok = b.step[i] == i + 1 && memcmp(&a.loss[i], &b.loss[i], sizeof(double)) == 0;
    for (int i = 0; ok && i < b.n_eval; i++) ok = b.eval_step[i] == a.eval_step[i] && a.eval_loss[i] == b.eval_loss[i];
    CHECK(ok, "%s: metrics.jsonl after resume: %d train / %d eval lines (want 12 / %d), same losses", tag,
          b.n_train, b.n_eval, a.n_eval);
}

// ---------------------------------------------------------------- misuse

// libgomp's thread pool does not survive fork(), so these run before the parent
// process has entered any OpenMP region; each child sets up its own state.
static const char *const MISUSE_TRAIN = "  steps: 3\n  eval_every: 0\n  ckpt_every: 1\n";

static void run_fresh_over_ckpt(void *arg) {
    (void)arg;
    pn_train_result r;
    run_cfg("misuse_a", MISUSE_TRAIN, NULL, 0, 2, &r);
    run_cfg("misuse_a", MISUSE_TRAIN, NULL, 0, 0, &r);  // again, without resume
}

static void run_changed_cfg(void *arg) {
    (void)arg;
    pn_train_result r;
    run_cfg("misuse_b", MISUSE_TRAIN, NULL, 0, 2, &r);
    run_cfg("misuse_b", "  steps: 3\n  eval_every: 0\n  ckpt_every: 1\n  weight_decay: 0.2\n", NULL, 1, 0, &r);
}

static void run_no_model(void *arg) {
    (void)arg;
    const char *t = "model:\n  path: \"\"\ndata:\n  train: x.h5\ntrain:\n  mode: backbone\n";
    pn_job_config c;
    pn_job_config_load_string(&c, t, strlen(t), "nomodel.yaml");
    pn_train_opts o = {.where = "nomodel.yaml"};
    pn_train_run(&c, &o, NULL);
}

static void run_bad_arch(void *arg) {
    (void)arg;
    const char *t = "model:\n  path: \"\"\narch:\n  vocab_size: 64\n  hidden_size: 30\n  intermediate_size: 8\n"
                    "  num_layers: 1\n  num_heads: 4\n";
    pn_job_config c;
    pn_job_config_load_string(&c, t, strlen(t), "arch.yaml");
    pn_train_opts o = {.where = "arch.yaml"};
    pn_train_run(&c, &o, NULL);
}

static void test_misuse(void) {
    CHECK(expect_exit(run_fresh_over_ckpt, NULL, 2, "already holds checkpoints"), "fresh start over checkpoints");
    CHECK(expect_exit(run_changed_cfg, NULL, 2, "was written by a different config"), "changed config on resume");
    CHECK(expect_exit(run_no_model, NULL, 2, "nomodel.yaml: model.path is \"\" and there is no arch section"),
          "no model");
    CHECK(expect_exit(run_bad_arch, NULL, 2, "arch.yaml: arch.hidden_size = 30 is not a multiple of arch.num_heads"),
          "bad arch");
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/pn_trainer_XXXXXX");
    PN_ASSERT(mkdtemp(g_root));
    pn_log_set_level(PN_LOG_WARN);
    write_data();
    test_misuse();  // first: see run_fresh_over_ckpt
    test_learns();
    test_accumulation();
    test_resume("bb",
                "  steps: 12\n  grad_accum: 2\n  eval_every: 3\n  eval_batches: 2\n  ckpt_every: 4\n  ckpt_keep: 0\n",
                NULL, "model/model.safetensors");
    test_resume("sn",
                "  steps: 12\n  mode: supernet\n  eval_every: 6\n  eval_batches: 1\n  ckpt_every: 4\n",
                "supernet:\n  block: deltanet\n  k_max: 1\n  swa_window: 4\n", "supernet.safetensors");
    rm_rf(g_root);
    return test_summary("test_trainer");
}
