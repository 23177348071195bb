// test_backbone.c — the pretrained backbone against Hugging Face transformers.
//
// References are float64 forward/backward runs of transformers' own models:
// ../shared/fixtures/qwen2-tiny (tied, q/k/v biases, 5.x config), and
// tests/data/llama-tiny (untied, f16 weights, 4.x config), tests/data/llama-bias-tiny (q/k/v/o
// biases, 1 KV head) and tests/data/qwen3-tiny
// (q/k norm, head_dim != hidden/heads, tied, bf16 weights), both written by
// scripts/gen_hf_reference.py. Every tensor — logits, every hidden state, the loss
// and the gradient of every parameter — must be within 1e-4 relative error, both
// through the library and through `postnas forward --grad`. Malformed configs and
// inputs must exit 2 with a message naming the file and the key/position.
#include "test_util.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "supernet/backbone.h"
#include <jansson.h>
#include <sys/stat.h>

#define TOL 1e-4

typedef struct {
    double worst_fwd, worst_grad;
    int n_grad;
} cmp_stats;

static void cmp_one(const char *label, const char *name, const float *got, const pn_st_entry *ref_e,
                    const pn_safetensors *ref, cmp_stats *s) {
    float *want = pn_st_load_f32(ref, name, NULL, NULL);
    int64_t n = 1;
    for (int d = 0; d < ref_e->ndim; d++) n *= ref_e->shape[d];
    double e = got ? rel_err(got, want, (size_t)n) : INFINITY;
    CHECK(e <= TOL, "%s: %s rel err %.3e > %.0e", label, name, e, TOL);
    if (strncmp(name, "grad.", 5) == 0) {
        s->worst_grad = PN_MAX(s->worst_grad, e);
        s->n_grad++;
    } else {
        s->worst_fwd = PN_MAX(s->worst_fwd, e);
    }
    free(want);
}

// Library path: forward + loss + backward, then every reference tensor.
static void check_library(const char *label, const char *model_dir, const char *ref_path) {
    pn_safetensors *ref = pn_st_open(ref_path);
    int ndim = 0;
    int64_t shape[PN_MAX_DIMS];
    int64_t *ids = pn_st_load_i64(ref, "input_ids", &ndim, shape);
    pn_backbone *bb = pn_backbone_load(model_dir);
    pn_backbone_alloc_grads(bb);
    pn_backbone_forward(bb, ids, (int)shape[0], (int)shape[1]);
    float loss = (float)pn_backbone_loss(bb);
    pn_backbone_backward(bb, bb->dlogits, NULL);

    int np = pn_backbone_param_count(bb);
    pn_bb_param *tab = pn_malloc((size_t)np * sizeof(*tab));
    pn_backbone_param_table(bb, tab);
    cmp_stats s = {0, 0, 0};
    for (int i = 0; i < ref->n_entries; i++) {
        const pn_st_entry *e = &ref->entries[i];
        const float *got = NULL;
        if (strcmp(e->name, "input_ids") == 0) continue;
        if (strcmp(e->name, "logits") == 0) got = bb->logits;
        else if (strcmp(e->name, "loss") == 0) got = &loss;
        else if (strncmp(e->name, "hidden.", 7) == 0) {
            int h = atoi(e->name + 7);
            CHECK(h >= 0 && h <= bb->n_layers, "%s: unexpected %s", label, e->name);
            if (h >= 0 && h <= bb->n_layers) got = pn_backbone_hidden(bb, h);
        } else if (strncmp(e->name, "grad.", 5) == 0) {
            for (int p = 0; p < np; p++)
                if (strcmp(tab[p].name, e->name + 5) == 0) got = *tab[p].grad;
            CHECK(got != NULL, "%s: no parameter for %s", label, e->name);
        }
        cmp_one(label, e->name, got, e, ref, &s);
    }
    CHECK(s.n_grad == np, "%s: reference has %d grads, model has %d parameters", label, s.n_grad, np);
    printf("%-28s library: %d params, worst rel err forward %.2e, grads %.2e\n", label, np, s.worst_fwd,
           s.worst_grad);
    free(tab);
    free(ids);
    pn_backbone_free(bb);
    pn_st_close(ref);
}

// CLI path: postnas forward --grad with the reference file as --inputs.
static void check_cli(const char *label, const char *model_dir, const char *ref_path, const char *tmpdir) {
    const char *bin = getenv("POSTNAS_BIN");
    CHECK(bin != NULL, "POSTNAS_BIN is not set");
    if (!bin) return;
    char out[4200], cmd[16384];
    snprintf(out, sizeof out, "%s/cli_out.safetensors", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' --log warn forward --model '%s' --inputs '%s' --out '%s' --grad 2>/dev/null", bin,
             model_dir, ref_path, out);
    int rc = system(cmd);
    CHECK(rc == 0, "%s: '%s' returned %d", label, cmd, rc);
    if (rc != 0) return;
    pn_safetensors *ref = pn_st_open(ref_path);
    pn_safetensors *got = pn_st_open(out);
    cmp_stats s = {0, 0, 0};
    int n_out = 0;
    for (int i = 0; i < ref->n_entries; i++) {
        const pn_st_entry *e = &ref->entries[i];
        if (strcmp(e->name, "input_ids") == 0) continue;
        n_out++;
        const pn_st_entry *g = pn_st_find(got, e->name);
        CHECK(g != NULL, "%s: CLI output lacks %s", label, e->name);
        if (!g) continue;
        CHECK(g->ndim == e->ndim && memcmp(g->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim) == 0,
              "%s: CLI %s has the wrong shape", label, e->name);
        float *gv = pn_st_load_f32(got, e->name, NULL, NULL);
        cmp_one(label, e->name, gv, e, ref, &s);
        free(gv);
    }
    CHECK(got->n_entries == n_out, "%s: CLI wrote %d tensors, reference has %d", label, got->n_entries, n_out);
    printf("%-28s CLI:     %d tensors, worst rel err forward %.2e, grads %.2e\n", label, got->n_entries,
           s.worst_fwd, s.worst_grad);
    pn_st_close(got);
    pn_st_close(ref);
    unlink(out);
}

// ---------------------------------------------------------------- config variants

static char g_tmp[256];

// Writes DIR/config.json from a JSON object and links model.safetensors.
static void write_model_dir(const char *dir, const char *config_text) {
    mkdir(dir, 0755);
    char p[4200], link_target[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    pn_write_file_atomic(p, config_text, strlen(config_text));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    snprintf(link_target, sizeof link_target, "%s", fixture_path("qwen2-tiny/model.safetensors"));
    if (link_target[0] != '/') {
        char cwd[2048];
        if (getcwd(cwd, sizeof cwd)) snprintf(link_target, sizeof link_target, "%s/%s", cwd, fixture_path("qwen2-tiny/model.safetensors"));
    }
    unlink(p);
    CHECK(symlink(link_target, p) == 0, "symlink %s", p);
}

static json_t *fixture_config(void) {
    json_error_t err;
    json_t *c = json_load_file(fixture_path("qwen2-tiny/config.json"), 0, &err);
    PN_ASSERT(c);
    return c;
}

static char *dump(json_t *c) {
    char *s = json_dumps(c, JSON_INDENT(2));
    json_decref(c);
    return s;
}

typedef struct {
    const char *dir;
} load_arg;

static void load_child(void *arg) {
    pn_backbone *bb = pn_backbone_load(((load_arg *)arg)->dir);
    pn_backbone_free(bb);
}

static void expect_bad_config(const char *tag, char *text, const char *substr) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, tag);
    write_model_dir(dir, text);
    free(text);
    load_arg a = {dir};
    CHECK(expect_exit(load_child, &a, 2, substr), "bad config '%s' should exit 2 with '%s'", tag, substr);
    CHECK(expect_exit(load_child, &a, 2, "config.json"), "bad config '%s' should name config.json", tag);
}

static void test_bad_configs(void) {
    json_t *c;
    c = fixture_config();
    json_object_set_new(c, "model_type", json_string("gpt2"));
    expect_bad_config("model_type", dump(c), "model_type 'gpt2' is not supported (supported: qwen2, llama, qwen3)");

    c = fixture_config();
    json_t *rs = json_object();
    json_object_set_new(rs, "type", json_string("linear"));
    json_object_set_new(rs, "factor", json_real(2.0));
    json_object_set_new(c, "rope_scaling", rs);
    expect_bad_config("rope_linear", dump(c), "rope_scaling.type = 'linear'");

    c = fixture_config();
    json_t *rp = json_object();
    json_object_set_new(rp, "rope_type", json_string("yarn"));
    json_object_set_new(rp, "rope_theta", json_real(10000.0));
    json_object_set_new(rp, "factor", json_real(4.0));
    json_object_set_new(c, "rope_parameters", rp);
    expect_bad_config("rope_yarn", dump(c), "rope_parameters.rope_type = 'yarn'");

    c = fixture_config();
    json_object_del(c, "hidden_size");
    expect_bad_config("no_hidden", dump(c), "key 'hidden_size' is missing");

    c = fixture_config();
    json_object_set_new(c, "num_attention_heads", json_string("4"));
    expect_bad_config("heads_type", dump(c), "key 'num_attention_heads': expected an integer >= 1, found a string");

    c = fixture_config();
    json_object_set_new(c, "tie_word_embeddings", json_integer(1));
    expect_bad_config("tie_type", dump(c), "key 'tie_word_embeddings': expected true or false, found an integer");

    expect_bad_config("not_json", pn_strdup("{\"model_type\": \"qwen2\", \"hidden_size\": 64,,}"), "not valid JSON");

    c = fixture_config();
    json_object_set_new(c, "use_sliding_window", json_true());
    expect_bad_config("sliding", dump(c), "use_sliding_window = true is not supported");

    c = fixture_config();
    json_object_set_new(c, "hidden_act", json_string("gelu"));
    expect_bad_config("gelu", dump(c), "hidden_act 'gelu' is not supported");

    // The weights do not match the config: a missing tensor and a wrong shape.
    char dir[512];
    c = fixture_config();
    json_object_set_new(c, "num_hidden_layers", json_integer(5));
    snprintf(dir, sizeof dir, "%s/five_layers", g_tmp);
    char *t = dump(c);
    write_model_dir(dir, t);
    free(t);
    load_arg a = {dir};
    CHECK(expect_exit(load_child, &a, 2, "model.layers.4.input_layernorm.weight' is missing"),
          "missing tensor should exit 2 naming it");
    c = fixture_config();
    json_object_set_new(c, "intermediate_size", json_integer(128));
    snprintf(dir, sizeof dir, "%s/wrong_shape", g_tmp);
    t = dump(c);
    write_model_dir(dir, t);
    free(t);
    CHECK(expect_exit(load_child, &a, 2, "gate_proj.weight"), "wrong tensor shape should exit 2 naming it");
}

// transformers 4.x form of the same config gives the same model.
static void test_config_4x(void) {
    json_t *c = fixture_config();
    json_object_del(c, "rope_parameters");
    json_object_del(c, "dtype");
    json_object_del(c, "layer_types");
    json_object_set_new(c, "rope_theta", json_real(10000.0));
    json_object_set_new(c, "torch_dtype", json_string("float32"));
    json_object_set_new(c, "rope_scaling", json_null());
    char dir[512];
    snprintf(dir, sizeof dir, "%s/qwen2_4x", g_tmp);
    char *t = dump(c);
    write_model_dir(dir, t);
    free(t);
    pn_hf_config hc;
    pn_hf_config_load(&hc, dir);
    CHECK(hc.rope_theta == 10000.0 && strcmp(hc.dtype, "float32") == 0 && hc.tie_word_embeddings && hc.qkv_bias &&
              !hc.o_bias && hc.head_dim == 16 && hc.num_key_value_heads == 2,
          "4.x config fields");
    check_library("qwen2-tiny (4.x config)", dir, fixture_path("qwen2-tiny/reference.safetensors"));
}

// `postnas forward` with an out-of-vocab id names the file and position.
static void test_cli_bad_ids(void) {
    const char *bin = getenv("POSTNAS_BIN");
    if (!bin) return;
    char in[600], err[600], cmd[8192];
    snprintf(in, sizeof in, "%s/bad_ids.safetensors", g_tmp);
    snprintf(err, sizeof err, "%s/bad_ids.err", g_tmp);
    int64_t ids[2 * 6] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 384, 11};
    int64_t shape[2] = {2, 6};
    pn_st_writer *w = pn_st_writer_new();
    pn_st_writer_add(w, "input_ids", PN_I64, 2, shape, ids);
    pn_st_writer_save(w, in);
    snprintf(cmd, sizeof cmd, "'%s' forward --model '%s' --inputs '%s' --out '%s/never.safetensors' 2>'%s'", bin,
             fixture_path("qwen2-tiny"), in, g_tmp, err);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "bad ids: exit %d, want 2", WEXITSTATUS(rc));
    char *msg = pn_read_file(err, NULL);
    CHECK(strstr(msg, "bad_ids.safetensors") && strstr(msg, "input_ids[1, 4]") && strstr(msg, "384"),
          "bad ids message: %s", msg);
    free(msg);
    unlink(in);
    unlink(err);
}

static void rm_tree(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/pn_test_backbone_XXXXXX");
    PN_ASSERT(mkdtemp(g_tmp) != NULL);

    const char *q2 = fixture_path("qwen2-tiny");
    check_library("qwen2-tiny", q2, fixture_path("qwen2-tiny/reference.safetensors"));
    check_cli("qwen2-tiny", q2, fixture_path("qwen2-tiny/reference.safetensors"), g_tmp);
    test_config_4x();

    const char *models[] = {"tests/data/llama-tiny", "tests/data/qwen3-tiny", "tests/data/llama-bias-tiny"};
    for (int i = 0; i < (int)PN_ARRAY_LEN(models); i++) {
        char ref[512];
        snprintf(ref, sizeof ref, "%s/reference.safetensors", models[i]);
        check_library(models[i] + 11, models[i], ref);
        check_cli(models[i] + 11, models[i], ref, g_tmp);
    }

    test_bad_configs();
    test_cli_bad_ids();
    rm_tree(g_tmp);
    return test_summary("test_backbone");
}
