// test_yaml_config.c — YAML job configs: typed values, defaults, every error path.
//
// Expected values come from the test files and from the defaults documented in
// DESIGN.md / the job schema brief, never from the loader itself. Each bad case
// checks exit 2 and the exact "FILE:LINE:COL: message" (1-based positions,
// counted by hand in tests/data/configs/bad_*.yaml or the strings below).
// print → parse → print must be a fixed point, with equal structs.
#include "core/fileio.h"
#include "supernet/job_config.h"
#include "test_util.h"
#include <limits.h>

static const char *data_path(const char *name) {
    static char buf[8][4096];
    static int slot = 0;
    const char *src = getenv("POSTNAS_SRC");
    char *out = buf[slot++ % 8];
    snprintf(out, 4096, "%s/tests/data/configs/%s", src ? src : ".", name);
    return out;
}

// ---------------------------------------------------------------- good files

static void test_good_full(void) {
    pn_job_config c;
    pn_job_config_load(&c, data_path("good_full.yaml"));
    CHECK(!strcmp(c.run.name, "my run: #1"), "run.name = '%s'", c.run.name);
    CHECK(!strcmp(c.run.out_dir, "results/test"), "run.out_dir");
    CHECK(c.run.seed == 9876543210LL, "run.seed = %lld", (long long)c.run.seed);
    CHECK(c.run.device == PN_DEVICE_CUDA, "run.device");
    CHECK(c.run.threads == 2, "run.threads");
    CHECK(c.run.log_level == PN_JOB_LOG_DEBUG, "run.log_level");
    CHECK(!strcmp(c.model.path, "/models/qwen"), "model.path");
    CHECK(c.model.dtype == PN_JOB_DTYPE_BF16, "model.dtype");
    CHECK(!strcmp(c.data.train, "data/train.h5"), "data.train");
    CHECK(!strcmp(c.data.valid, ""), "data.valid default");
    CHECK(c.data.seq_len == 512, "data.seq_len");
    CHECK(c.data.batch_size == 8, "data.batch_size default");
    CHECK(c.supernet.block == PN_LINEAR_GATED_DELTANET, "supernet.block");
    CHECK(c.supernet.k_max == 3, "supernet.k_max");
    CHECK(c.supernet.sampling == PN_SAMPLING_BERNOULLI, "supernet.sampling");
    CHECK(c.supernet.p_full == 0.5, "supernet.p_full");
    CHECK(c.supernet.distill == PN_DISTILL_BOTH, "supernet.distill");
    CHECK(c.supernet.temperature == 2.5, "supernet.temperature");
    CHECK(c.train.lr == 3e-4, "train.lr = %g", c.train.lr);
    CHECK(c.train.steps == 1000, "train.steps");
    CHECK(c.train.mode == PN_TRAIN_BACKBONE, "train.mode");
    CHECK(c.train.beta2 == 0.99, "train.beta2");
    CHECK(c.train.warmup_steps == 20, "train.warmup_steps default");
    CHECK(c.supernet.swa_window == 64, "supernet.swa_window default");
    CHECK(c.train.weight_decay == 0.1, "train.weight_decay default");
    CHECK(c.arch.model_type == PN_ARCH_QWEN3 && c.arch.vocab_size == 1000 && c.arch.num_layers == 3 &&
              c.arch.tie_embeddings == false && c.arch.rope_theta == 1e6,
          "arch");
    CHECK(c.arch.hidden_size == 0 && c.arch.num_kv_heads == 0 && c.arch.rms_norm_eps == 1e-6, "arch defaults");
    CHECK(c.search.beam_width == 8, "search.beam_width");
    CHECK(c.search.swa == false, "search.swa");
    CHECK(c.search.tasks.n == 2 && !strcmp(c.search.tasks.v[0], "mmlu") && !strcmp(c.search.tasks.v[1], "gsm8k"),
          "search.tasks");
    CHECK(c.search.max_new_tokens == 32, "search.max_new_tokens");
    CHECK(c.search.objective_mc == PN_OBJ_MC_NLL, "search.objective_mc default");
    CHECK(c.hw_search.enabled == true, "hw_search.enabled");
    CHECK(c.hw_search.heads.n == 3 && c.hw_search.heads.v[0] == 4 && c.hw_search.heads.v[1] == 8 &&
              c.hw_search.heads.v[2] == 16,
          "hw_search.heads");
    CHECK(c.hw_search.key_dims.n == 2 && c.hw_search.key_dims.v[0] == 64 && c.hw_search.key_dims.v[1] == 128,
          "hw_search.key_dims");
    CHECK(c.hw_search.value_dims.n == 0 && c.hw_search.conv_sizes.n == 0, "hw_search list defaults empty");
    CHECK(c.hw_search.throughput_tolerance == 0.1, "hw_search.throughput_tolerance");
    CHECK(c.hw_search.budget_bytes == 17179869184LL, "hw_search.budget_bytes");
    CHECK(c.hw_search.context == 65536, "hw_search.context default");
    CHECK(c.demo.batch == 4 && c.demo.seq_len == 32 && !strcmp(c.demo.inputs, ""), "demo");
    pn_job_config_free(&c);
    CHECK(c.run.name == NULL && c.search.tasks.v == NULL && c.search.tasks.n == 0, "free zeroes pointers");
}

// Every default of the brief / DESIGN.md "Decisions", from a file that gives only model.path.
static void test_defaults(void) {
    const char *text = "model:\n  path: m\n";
    pn_job_config c;
    pn_job_config_load_string(&c, text, strlen(text), "mem.yaml");
    CHECK(!strcmp(c.run.name, "postnas-run") && !strcmp(c.run.out_dir, "results/run"), "run name/out_dir");
    CHECK(c.run.seed == 1234 && c.run.device == PN_DEVICE_CPU && c.run.threads == 0 &&
              c.run.log_level == PN_JOB_LOG_INFO,
          "run defaults");
    CHECK(!strcmp(c.model.path, "m") && c.model.dtype == PN_JOB_DTYPE_F32, "model");
    CHECK(!strcmp(c.data.train, "") && !strcmp(c.data.valid, "") && c.data.seq_len == 256 &&
              c.data.batch_size == 8 && !strcmp(c.data.tasks_dir, ""),
          "data defaults");
    const pn_supernet_config *s = &c.supernet;
    CHECK(s->block == PN_LINEAR_JETBLOCK && s->k_max == 2 && s->sampling == PN_SAMPLING_UNIFORM_K &&
              s->p_full == 0.25 && s->swa_window == 64 && s->distill == PN_DISTILL_MSE,
          "supernet defaults (1)");
    CHECK(s->mse_weight == 1.0 && s->kl_weight == 1.0 && s->temperature == 1.0 &&
              s->linear_init == PN_LINEAR_INIT_BLOCK,
          "supernet defaults (2)");
    const pn_train_config *tr = &c.train;
    CHECK(tr->mode == PN_TRAIN_SUPERNET && tr->steps == 200 && tr->lr == 1e-3 && tr->min_lr_ratio == 0.1 &&
              tr->warmup_steps == 20 && tr->weight_decay == 0.1 && tr->beta1 == 0.9 && tr->beta2 == 0.95,
          "train defaults (1)");
    CHECK(tr->grad_clip == 1.0 && tr->grad_accum == 1 && tr->eval_every == 50 && tr->eval_batches == 8 &&
              tr->ckpt_every == 100 && tr->ckpt_keep == 2 && tr->log_every == 1,
          "train defaults (2)");
    const pn_arch_config *ar = &c.arch;
    CHECK(ar->model_type == PN_ARCH_QWEN2 && ar->vocab_size == 0 && ar->hidden_size == 0 &&
              ar->intermediate_size == 0 && ar->num_layers == 0 && ar->num_heads == 0 && ar->num_kv_heads == 0 &&
              ar->head_dim == 0 && ar->rope_theta == 10000.0 && ar->rms_norm_eps == 1e-6 && ar->tie_embeddings,
          "arch defaults (no arch)");
    const pn_search_config *q = &c.search;
    CHECK(q->beam_width == 4 && q->k_max == 2 && q->objective_mc == PN_OBJ_MC_NLL &&
              q->objective_gen == PN_OBJ_GEN_EXACT_MATCH && q->swa == true && q->max_new_tokens == 16,
          "search defaults");
    CHECK(q->tasks.n == 3 && !strcmp(q->tasks.v[0], "retrieval") && !strcmp(q->tasks.v[1], "math") &&
              !strcmp(q->tasks.v[2], "knowledge"),
          "search.tasks default");
    const pn_hw_search_config *h = &c.hw_search;
    CHECK(h->enabled == false && h->context == 65536 && h->heads.n == 0 && h->key_dims.n == 0 &&
              h->value_dims.n == 0 && h->conv_sizes.n == 0 && h->throughput_tolerance == 0.05 &&
              h->budget_bytes == 0,
          "hw_search defaults");
    CHECK(!strcmp(c.demo.inputs, "") && c.demo.batch == 2 && c.demo.seq_len == 32, "demo defaults");
    pn_job_config_free(&c);
}

static void test_shipped_configs(void) {
    pn_job_config c;
    const char *src = getenv("POSTNAS_SRC");
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/demo.yaml", src ? src : ".");
    pn_job_config_load(&c, path);
    CHECK(!strcmp(c.run.name, "demo") && !strcmp(c.run.out_dir, "results/demo"), "demo.yaml run");
    CHECK(!strcmp(c.model.path, "datasets/backbones/tiny-synth") && c.train.mode == PN_TRAIN_SUPERNET &&
              c.search.k_max == 2 && c.search.tasks.n == 3,
          "demo.yaml: the PostNAS run on the tiny backbone");
    pn_job_config_free(&c);
    // tiny-backbone.yaml: a from-scratch model (empty model.path, an arch) in backbone mode.
    snprintf(path, sizeof path, "%s/configs/tiny-backbone.yaml", src ? src : ".");
    pn_job_config_load(&c, path);
    CHECK(!strcmp(c.model.path, "") && c.arch.num_layers == 4 && c.arch.vocab_size == 256 &&
              c.train.mode == PN_TRAIN_BACKBONE,
          "tiny-backbone.yaml");
    pn_job_config_free(&c);
    // example-full.yaml documents the defaults: apart from model.path it must equal them.
    snprintf(path, sizeof path, "%s/configs/example-full.yaml", src ? src : ".");
    pn_job_config_load(&c, path);
    pn_job_config d;
    const char *text = "model:\n  path: models/Qwen2.5-1.5B\n";
    pn_job_config_load_string(&d, text, strlen(text), "mem.yaml");
    CHECK(pn_config_equal(pn_job_config_schema, &c, &d), "example-full.yaml = the schema defaults");
    pn_job_config_free(&c);
    pn_job_config_free(&d);
}

// ---------------------------------------------------------------- fixed point

static char *print_to_string(const pn_job_config *c) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    pn_job_config_print(c, f);
    fclose(f);
    return buf;
}

static void check_fixed_point(const pn_job_config *c, const char *what) {
    char *p1 = print_to_string(c);
    pn_job_config r;
    pn_job_config_load_string(&r, p1, strlen(p1), "printed.yaml");
    CHECK(pn_config_equal(pn_job_config_schema, c, &r), "%s: printed config parses back to an equal struct", what);
    char *p2 = print_to_string(&r);
    CHECK(!strcmp(p1, p2), "%s: print -> parse -> print is a fixed point:\n%s\n---\n%s", what, p1, p2);
    pn_job_config_free(&r);
    free(p1);
    free(p2);
}

static void test_fixed_point(void) {
    pn_job_config c;
    pn_job_config_load(&c, data_path("good_full.yaml"));
    check_fixed_point(&c, "good_full");
    // Strings that must be quoted (or not) to read back unchanged, and awkward doubles.
    const char *odd[] = {"", "true", "123", "1e5", "-x", " lead", "a: b", "#c", "quote\"back\\slash",
                         "new\nline\ttab", "caf\xc3\xa9", "null", "~", "[x]", "a,b", "./rel/path-1.2"};
    for (size_t i = 0; i < PN_ARRAY_LEN(odd); i++) {
        free(c.run.name);
        c.run.name = pn_strdup(odd[i]);
        free(c.search.tasks.v[0]);
        c.search.tasks.v[0] = pn_strdup(odd[i]);
        check_fixed_point(&c, odd[i]);
    }
    c.train.lr = 1.0 / 3.0;
    c.supernet.p_full = 1e-300;
    c.supernet.temperature = 123456789.125;
    c.hw_search.throughput_tolerance = 0;
    c.run.seed = INT64_MAX;
    c.hw_search.budget_bytes = 0;
    check_fixed_point(&c, "doubles");
    pn_job_config_free(&c);

    // The resolved file on disk reads back equal.
    char dir[] = "/tmp/pn_yaml_test_XXXXXX";
    PN_ASSERT(mkdtemp(dir));
    char out[4200], file[4300];
    snprintf(out, sizeof out, "%s/sub/dir", dir);
    pn_job_config_load(&c, data_path("good_full.yaml"));
    pn_job_config_write_resolved(&c, out);
    snprintf(file, sizeof file, "%s/config.resolved.yaml", out);
    CHECK(pn_file_exists(file), "config.resolved.yaml written");
    pn_job_config r;
    pn_job_config_load(&r, file);
    CHECK(pn_config_equal(pn_job_config_schema, &c, &r), "resolved file parses back equal");
    pn_job_config_free(&r);
    pn_job_config_free(&c);
    remove(file);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

// ---------------------------------------------------------------- a generic schema

typedef struct {
    int a;
    pn_cfg_doubles ws;
} inner_cfg;

typedef struct {
    inner_cfg in;
    double x;
    char *req;
} outer_cfg;

static const pn_cfg_field inner_schema[] = {
    {"a", PN_CFG_INT, offsetof(inner_cfg, a), "-3", "an int", PN_CFG_RANGE(-5, 5)},
    {"ws", PN_CFG_DOUBLE_LIST, offsetof(inner_cfg, ws), "[0.5, 1, 2e-1]", "weights", PN_CFG_RANGE(0, 1)},
    PN_CFG_END,
};
static const pn_cfg_field outer_schema[] = {
    {"in", PN_CFG_SECTION, offsetof(outer_cfg, in), NULL, "inner", PN_CFG_NESTED(inner_schema)},
    {"x", PN_CFG_DOUBLE, offsetof(outer_cfg, x), "-1.5", "a number"},
    {"req", PN_CFG_STRING, offsetof(outer_cfg, req), NULL, "needed", PN_CFG_REQUIRED},
    PN_CFG_END,
};

static void test_generic_schema(void) {
    outer_cfg o;
    const char *t = "req: r\n";
    pn_config_load_string(outer_schema, &o, t, strlen(t), "g.yaml");
    CHECK(o.in.a == -3 && o.x == -1.5 && !strcmp(o.req, "r"), "generic defaults");
    CHECK(o.in.ws.n == 3 && o.in.ws.v[0] == 0.5 && o.in.ws.v[1] == 1.0 && o.in.ws.v[2] == 0.2, "double list default");
    pn_config_free(outer_schema, &o);
    t = "in:\n  ws:\n    - 0.25\n    - .5\nx: 7\nreq: \"\"\n";
    pn_config_load_string(outer_schema, &o, t, strlen(t), "g.yaml");
    CHECK(o.in.ws.n == 2 && o.in.ws.v[0] == 0.25 && o.in.ws.v[1] == 0.5 && o.x == 7.0 && !strcmp(o.req, ""),
          "generic values");
    pn_config_free(outer_schema, &o);
}

// ---------------------------------------------------------------- bad input

typedef struct {
    const char *file;  // tests/data/configs/NAME, or NULL to use text
    const char *text;
    const pn_cfg_field *schema;  // NULL = the job schema
} bad_case;

static void run_bad(void *arg) {
    const bad_case *b = arg;
    if (b->schema) {
        outer_cfg o;
        pn_config_load_string(b->schema, &o, b->text, strlen(b->text), "mem.yaml");
        return;
    }
    pn_job_config c;
    if (b->file)
        pn_job_config_load(&c, data_path(b->file));
    else
        pn_job_config_load_string(&c, b->text, strlen(b->text), "mem.yaml");
}

static void expect_bad_file(const char *file, const char *want) {
    bad_case b = {file, NULL, NULL};
    char full[1024];
    snprintf(full, sizeof full, "%s%s", file, want);  // "bad_x.yaml:L:C: message"
    CHECK(expect_exit(run_bad, &b, 2, full), "%s: want '%s'", file, full);
}

static void expect_bad_text(const char *text, const pn_cfg_field *schema, const char *want) {
    bad_case b = {NULL, text, schema};
    char full[1024];
    snprintf(full, sizeof full, "mem.yaml%s", want);
    CHECK(expect_exit(run_bad, &b, 2, full), "text '%s': want '%s'", text, full);
}

static void test_bad_files(void) {
    expect_bad_file("bad_syntax.yaml", ":5:7: YAML syntax error: did not find expected ',' or ']'");
    expect_bad_file("bad_unknown_key.yaml",
                    ":5:3: unknown key 'k_mx' in section 'supernet' (did you mean 'k_max'?); valid keys: block, k_max,");
    expect_bad_file("bad_duplicate.yaml", ":6:3: duplicate key run.seed (first given at line 4)");
    expect_bad_file("bad_type_int.yaml", ":4:12: expected an integer for data.seq_len, got 'abc'");
    expect_bad_file("bad_type_float.yaml", ":4:7: expected a number for train.lr, got 'fast'");
    expect_bad_file("bad_type_bool.yaml", ":4:8: expected a boolean (true or false) for search.swa, got 'yes'");
    expect_bad_file("bad_type_list.yaml", ":4:14: expected an integer for hw_search.heads[1], got 'eight'");
    expect_bad_file("bad_range.yaml", ":4:15: value 0 out of range [1, 4096] for train.grad_accum");
    expect_bad_file("bad_enum.yaml", ":4:10: bad value 'mamba' for supernet.block (did you mean 'mamba2'?); "
                                     "expected one of: jetblock, gated_deltanet, deltanet, gla, retnet, mamba2, rwkv7");
    expect_bad_file("bad_missing_required.yaml", ":2:1: missing required key model.path");
    expect_bad_file("bad_top_sequence.yaml", ":1:1: the top level must be a mapping of sections (run, model,");
    expect_bad_file("bad_unknown_section.yaml",
                    ":3:1: unknown section 'saerch' (did you mean 'search'?); valid sections: run, model, arch, data, train,");
    bad_case missing = {"does_not_exist.yaml", NULL, NULL};
    CHECK(expect_exit(run_bad, &missing, 2, "does_not_exist.yaml: cannot open"), "missing file");
}

static void test_bad_texts(void) {
    const char *M = "model: {path: m}\n";
    char t[512];
#define BAD(body, want)                                 \
    do {                                                \
        snprintf(t, sizeof t, "%s%s", M, body);         \
        expect_bad_text(t, NULL, want);                 \
    } while (0)
    BAD("data:\n  seq_len: 99999999999\n", ":3:12: value 99999999999 out of range [8, 1048576] for data.seq_len");
    BAD("run:\n  seed: 99999999999999999999\n",
        ":3:9: value 99999999999999999999 out of range [0, 9.223372036854776e+18] for run.seed");
    BAD("run:\n  seed: -1\n", ":3:9: value -1 out of range [0, 9.223372036854776e+18] for run.seed");
    BAD("data:\n  seq_len: \"512\"\n", ":3:12: expected an integer for data.seq_len, got '512' (a quoted string)");
    BAD("train:\n  steps: 1.5\n", ":3:10: expected an integer for train.steps, got '1.5'");
    BAD("supernet:\n  temperature: 0\n", ":3:16: value 0 out of range (0, inf) for supernet.temperature");
    BAD("train:\n  lr: .inf\n", ":3:7: expected a number for train.lr, got '.inf'");
    BAD("train:\n  lr: 1e999\n", ":3:7: value 1e999 overflows a double for train.lr");
    BAD("train:\n  mode: pretrain\n", ":3:9: bad value 'pretrain' for train.mode; expected one of: backbone, supernet");
    BAD("supernet:\n  lr: 1e-3\n", ":3:3: unknown key 'lr' in section 'supernet'");
    BAD("arch:\n  model_type: gpt2\n", ":3:15: bad value 'gpt2' for arch.model_type");
    BAD("supernet:\n  p_full: 1.5\n", ":3:11: value 1.5 out of range [0, 1] for supernet.p_full");
    BAD("hw_search:\n  heads: 4\n", ":3:10: expected a list of integers for hw_search.heads, got '4'");
    BAD("hw_search:\n  heads: [4, 0]\n", ":3:14: value 0 out of range [1, 4096] for hw_search.heads[1]");
    BAD("hw_search:\n  heads: [[4]]\n", ":3:11: expected an integer for hw_search.heads[0], got a list");
    BAD("search:\n  tasks: [a, {b: c}]\n", ":3:14: expected a string for search.tasks[1], got a mapping");
    BAD("search:\n  swa: True\n", ":3:8: expected a boolean (true or false) for search.swa, got 'True'");
    BAD("run:\n  name:\n", ":3:8: expected a string for run.name, got null");
    BAD("run:\n  name: {a: 1}\n", ":3:9: expected a string for run.name, got a mapping");
    BAD("run: cpu\n", ":2:6: expected a mapping for section run (keys: name, out_dir, seed,");
    BAD("run:\n  device: gpu\n", ":3:11: bad value 'gpu' for run.device (did you mean 'cpu'?); expected one of: cpu, cuda");
    BAD("run:\n  device: CUDA\n", ":3:11: bad value 'CUDA' for run.device; expected one of: cpu, cuda");
    BAD("run:\n  [a]: 1\n", ":3:3: expected a key name in section run, got a list");
    BAD("---\nrun: {}\n", ":2:1: a second YAML document");
    BAD("run: {}\n---\nx: 1\n", ":3:1: a second YAML document");
    BAD("run:\n\tname: x\n", ":3:1: YAML syntax error: found character that cannot start any token");
    BAD("model: {path: n}\n", ":2:1: duplicate key model (first given at line 1)");
    BAD("supernet:\n  blok: gla\n", ":3:3: unknown key 'blok' in section 'supernet' (did you mean 'block'?)");
    BAD("supernet:\n  zz: 1\n", ":3:3: unknown key 'zz' in section 'supernet'; valid keys:");
#undef BAD
    expect_bad_text("", NULL, ":1:1: missing required key model.path");
    expect_bad_text("# only a comment\n", NULL, ":1:1: missing required key model.path");
    expect_bad_text("model:\n", NULL, ":1:1: missing required key model.path");
    expect_bad_text("just text\n", NULL, ":1:1: the top level must be a mapping of sections");
    expect_bad_text("model: {path: \"a\xff\"}\n", NULL, ":1:17: YAML syntax error: invalid");
    expect_bad_text("in:\n  a: 6\nreq: r\n", outer_schema, ":2:6: value 6 out of range [-5, 5] for in.a (an int)");
    expect_bad_text("in:\n  ws: [0.5, -0.1]\nreq: r\n", outer_schema,
                    ":2:13: value -0.1 out of range [0, 1] for in.ws[1]");
    expect_bad_text("in: {a: 1}\n", outer_schema, ":1:1: missing required key req (needed)");
    expect_bad_text("y: 1\n", outer_schema, ":1:1: unknown key 'y' at top level; valid keys: in, x, req");
}

int main(void) {
    test_good_full();
    test_defaults();
    test_shipped_configs();
    test_fixed_point();
    test_generic_schema();
    test_bad_files();
    test_bad_texts();
    return test_summary("test_yaml_config");
}
