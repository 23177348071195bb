// test_ablation.c — the block ablation runner (search/ablation.h) end to end on
// a tiny random Qwen2 model (3 layers, width 32, 4 query / 2 KV heads of dim 8,
// vocab 256) and small synthetic data written here (datasets/synth.h).
//
// Placement: layer 0 full attention, layer 2 SWA (window 4), layer 1 linear;
// blocks gated_deltanet and gla with explicit dims H 2, K 8, V 16, conv 4, so
// the expected sizes follow from BLOCKS.md alone:
//  - trainable params of the linear layer, from the parameter lists in
//    BLOCKS.md (gated_deltanet: q/k (H·K, C), v/g (H·V, C), a/b (H, C), A_log,
//    dt_bias (H), q/k conv (H·K, 1, W), v conv (H·V, 1, W), o_norm (V),
//    o_proj (C, H·V); gla: q/k (H·K, C), v/g (H·V, C), gk_proj.0 (16, C),
//    gk_proj.1 (H·K, 16) + bias, g_norm (V), o_proj) and again as the sum of
//    pn_param_numel over the block's spec table; the supernet count = that per
//    layer × 3 layers;
//  - state bytes per sequence at L = 1000: attention K and V, 2·L·H_kv·D at 2
//    bytes; SWA the same over min(window, L) positions; a linear layer's
//    recurrent S (H, K, V) at 4 bytes (conv rows excluded);
// and the report: ablation.md has one table row per block plus the teacher,
// ablation.csv a header and three rows whose numbers equal the result's,
// ablation.json parses with the same rows; every accuracy is in [0, 1], every
// throughput finite and positive, the teacher has no training numbers. A second
// run into the same directory continues from the checkpoints and reproduces the
// accuracies exactly (same trained weights). Bad configs exit 2 naming the key:
// an unknown block, a repeated block, sampling not fixed, a placement with no
// linear layer, a bad --blocks list.
#define _XOPEN_SOURCE 700
#include "core/fileio.h"
#include "core/log.h"
#include "datasets/synth.h"
#include "search/ablation.h"
#include "supernet/model_init.h"
#include "test_util.h"
#include <ftw.h>
#include <jansson.h>

enum { C = 32, NL = 3, HQ = 4, HKV = 2, D = 8, H = 2, K = 8, VD = 16, W = 4, WIN = 4, CTX = 1000 };
static char g_root[64];
static char g_model[256], g_syn[256];

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) {
    (void)s, (void)f, (void)w;
    return remove(p);
}

static void setup(void) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    snprintf(c.architecture, sizeof c.architecture, "Qwen2ForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = 256;
    c.hidden_size = C;
    c.intermediate_size = 64;
    c.num_hidden_layers = NL;
    c.num_attention_heads = HQ;
    c.num_key_value_heads = HKV;
    c.head_dim = D;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = 1;
    c.qkv_bias = 1;
    snprintf(g_model, sizeof g_model, "%s/model", g_root);
    pn_model_init_write(&c, g_model, 5, PN_F32);
    pn_synth_cfg s;
    pn_synth_cfg_default(&s);
    s.train_tokens = 20000;
    s.valid_tokens = 2000;
    s.n_examples = 6;
    snprintf(g_syn, sizeof g_syn, "%s/syn", g_root);
    pn_synth_generate(g_syn, 1, &s);
}

// The test's job config; `sampling`, `blocks`, `full` replace the defaults when non-NULL.
static void load_cfg(pn_job_config *c, const char *out, const char *sampling, const char *blocks, const char *full,
                     const char *swa) {
    char text[4096];
    snprintf(text, sizeof text,
             "run: {out_dir: %s/%s, seed: 3, log_level: warn}\n"
             "model: {path: %s}\n"
             "data: {train: %s/train.h5, tasks_dir: %s, seq_len: 16, batch_size: 2}\n"
             "train: {mode: supernet, steps: 3, warmup_steps: 1, eval_every: 0, ckpt_every: 0}\n"
             "supernet: {sampling: %s, full_layers: %s, swa_layers: %s, swa_window: %d, heads: %d, key_dim: %d, "
             "value_dim: %d, conv_size: %d}\n"
             "ablation: {blocks: %s, context: %d, throughput_batch: 2, throughput_prompt: 8, throughput_steps: 3, "
             "max_examples: 4}\n",
             g_root, out, g_model, g_syn, g_syn, sampling ? sampling : "fixed", full ? full : "[0]",
             swa ? swa : "[2]", WIN, H, K, VD, W, blocks ? blocks : "[gated_deltanet, gla]", CTX);
    pn_job_config_load_string(c, text, strlen(text), "abl.yaml");
}

// ---------------------------------------------------------------- expected sizes (BLOCKS.md)

static int64_t gdn_params_formula(void) {
    return 2LL * H * K * C + 2LL * H * VD * C + 2LL * H * C + 2LL * H + 2LL * H * K * W + (int64_t)H * VD * W + VD +
           (int64_t)C * H * VD;
}

static int64_t gla_params_formula(void) {
    return 2LL * H * K * C + 2LL * H * VD * C + 16LL * C + (int64_t)H * K * 16 + (int64_t)H * K + VD +
           (int64_t)C * H * VD;
}

// Σ pn_param_numel over the block's own spec table (same dims).
static int64_t spec_params(const char *name) {
    pn_block_cfg bc;
    memset(&bc, 0, sizeof bc);
    bc.C = C;
    bc.H = H;
    bc.K = K;
    bc.V = VD;
    bc.conv_size = W;
    pn_block b;
    pn_block_setup(&b, pn_block_type_find(name), &bc);
    int64_t n = 0;
    for (int i = 0; i < b.n_params; i++) n += pn_param_numel(&b.spec[i]);
    return n;
}

// ---------------------------------------------------------------- the run

static int count_lines_with(const char *text, const char *prefix) {
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, pl) == 0) n++;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return n;
}

static void check_files(const pn_ablation_result *r, const char *out) {
    char path[512];
    size_t n;
    snprintf(path, sizeof path, "%s/ablation.md", out);
    CHECK(pn_file_exists(path), "ablation.md written");
    char *md = pn_read_file(path, &n);
    int rows = count_lines_with(md, "| teacher (all attention) |") + count_lines_with(md, "| gated_deltanet |") +
               count_lines_with(md, "| gla |");
    CHECK(rows == 3 && count_lines_with(md, "| ") == 4, "md: header + 3 table rows (got %d rows, %d |-lines)", rows,
          count_lines_with(md, "| "));
    CHECK(strstr(md, "2 bytes/element (bf16") && strstr(md, "4 bytes/element (fp32)"), "md states the byte convention");
    free(md);

    snprintf(path, sizeof path, "%s/ablation.csv", out);
    char *csv = pn_read_file(path, &n);
    CHECK(count_lines_with(csv, "") == 4, "csv: header + 3 rows");
    CHECK(strncmp(csv, "block,retrieval_accuracy,math_accuracy,knowledge_accuracy,mean_accuracy,trainable_params", 85) ==
              0,
          "csv header");
    // each row: name, 3 accuracies, mean, params, supernet params, state bytes
    const char *line = strchr(csv, '\n') + 1;
    for (int i = 0; i < 3 && line; i++) {
        char name[64];
        double acc[4];
        long long params, snp, state;
        int got = sscanf(line, "%63[^,],%lf,%lf,%lf,%lf,%lld,%lld,%lld", name, &acc[0], &acc[1], &acc[2], &acc[3],
                         &params, &snp, &state);
        const pn_ablation_row *row = &r->rows[i];
        CHECK(got == 8 && strcmp(name, row->name) == 0 && params == row->trainable_params &&
                  snp == row->supernet_params && state == row->state_bytes,
              "csv row %d matches the result (got %d fields, name %s)", i, got, name);
        for (int t = 0; t < 3; t++)
            CHECK(fabs(acc[t] - row->task[t].accuracy) < 1e-9, "csv row %d task %d accuracy", i, t);
        line = strchr(line, '\n');
        if (line) line++;
    }
    free(csv);

    snprintf(path, sizeof path, "%s/ablation.json", out);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    CHECK(j != NULL, "json parses (%s)", j ? "" : err.text);
    if (j) {
        json_t *rows_j = json_object_get(j, "rows");
        CHECK(json_array_size(rows_j) == 3, "json: 3 rows");
        for (size_t i = 0; i < json_array_size(rows_j) && i < 3; i++) {
            json_t *e = json_array_get(rows_j, i);
            CHECK(strcmp(json_string_value(json_object_get(e, "block")), r->rows[i].name) == 0, "json row %zu name", i);
            CHECK(json_integer_value(json_object_get(e, "state_bytes")) == r->rows[i].state_bytes, "json row %zu state",
                  i);
        }
        CHECK(strcmp(json_string_value(json_object_get(j, "format")), "postnas-ablation") == 0, "json format");
        json_decref(j);
    }
    // the PNG needs python3 + matplotlib; without them the run must still succeed
    snprintf(path, sizeof path, "%s/ablation.png", out);
    int have_mpl = system("python3 -c 'import matplotlib' >/dev/null 2>&1") == 0;
    if (have_mpl)
        CHECK(pn_file_exists(path), "ablation.png written (python3 + matplotlib present)");
    else
        printf("note: python3/matplotlib unavailable: ablation.png not checked\n");
}

static void test_run(void) {
    pn_job_config c;
    load_cfg(&c, "out", NULL, NULL, NULL, NULL);
    pn_ablation_result r;
    CHECK(pn_ablation_run(&c, "abl.yaml", &r) == 0, "run returns 0");
    CHECK(r.n_rows == 3 && r.rows[0].is_teacher && !strcmp(r.rows[0].name, "teacher") &&
              !strcmp(r.rows[1].name, "gated_deltanet") && !strcmp(r.rows[2].name, "gla"),
          "rows: teacher, gated_deltanet, gla");
    CHECK(r.n_tasks == 3 && !strcmp(r.task_names[0], "retrieval") && !strcmp(r.task_names[2], "knowledge"), "tasks");

    // sizes against BLOCKS.md
    const int64_t gdn = gdn_params_formula(), gla = gla_params_formula();
    CHECK(spec_params("gated_deltanet") == gdn, "gated_deltanet spec table %lld == BLOCKS.md %lld",
          (long long)spec_params("gated_deltanet"), (long long)gdn);
    CHECK(spec_params("gla") == gla, "gla spec table %lld == BLOCKS.md %lld", (long long)spec_params("gla"),
          (long long)gla);
    CHECK(r.rows[1].trainable_params == gdn, "gated_deltanet trainable %lld, expected %lld",
          (long long)r.rows[1].trainable_params, (long long)gdn);
    CHECK(r.rows[2].trainable_params == gla, "gla trainable %lld, expected %lld", (long long)r.rows[2].trainable_params,
          (long long)gla);
    CHECK(r.rows[1].supernet_params == NL * gdn && r.rows[2].supernet_params == NL * gla, "supernet params = 3 layers");
    CHECK(r.rows[0].trainable_params == 0, "teacher trains nothing");
    const int64_t attn = 2LL * CTX * HKV * D * 2, swa = 2LL * WIN * HKV * D * 2, rec = (int64_t)H * K * VD * 4;
    CHECK(r.rows[0].state_bytes == NL * attn, "teacher state %lld, expected %lld", (long long)r.rows[0].state_bytes,
          (long long)(NL * attn));
    for (int i = 1; i <= 2; i++) {
        const pn_ablation_row *row = &r.rows[i];
        CHECK(row->state_attn == attn && row->state_swa == swa && row->state_linear == rec &&
                  row->state_bytes == attn + swa + rec,
              "%s state: attn %lld swa %lld linear %lld (expected %lld %lld %lld)", row->name,
              (long long)row->state_attn, (long long)row->state_swa, (long long)row->state_linear, (long long)attn,
              (long long)swa, (long long)rec);
    }
    // finite, in range
    for (int i = 0; i < 3; i++) {
        const pn_ablation_row *row = &r.rows[i];
        for (int t = 0; t < 3; t++)
            CHECK(row->task[t].n_examples == 4 && row->task[t].accuracy >= 0 && row->task[t].accuracy <= 1,
                  "%s task %d: 4 examples, accuracy %g", row->name, t, row->task[t].accuracy);
        CHECK(isfinite(row->decode_tokens_per_s) && row->decode_tokens_per_s > 0, "%s decode tok/s %g", row->name,
              row->decode_tokens_per_s);
        CHECK(isfinite(row->prefill_tokens_per_s) && row->prefill_tokens_per_s > 0, "%s prefill tok/s", row->name);
        if (row->is_teacher) {
            CHECK(isnan(row->train_tokens_per_s) && isnan(row->final_loss) && row->steps == 0, "teacher: no training");
        } else {
            CHECK(isfinite(row->train_tokens_per_s) && row->train_tokens_per_s > 0, "%s train tok/s %g", row->name,
                  row->train_tokens_per_s);
            CHECK(isfinite(row->final_loss) && row->final_loss >= 0 && row->steps == 3, "%s final loss %g, steps %lld",
                  row->name, row->final_loss, (long long)row->steps);
        }
    }
    char out[256];
    snprintf(out, sizeof out, "%s/out", g_root);
    check_files(&r, out);
    char path[512];
    snprintf(path, sizeof path, "%s/gla/supernet.safetensors", out);
    CHECK(pn_file_exists(path), "per-block run dir has supernet.safetensors");

    // Again into the same directory: continues from the checkpoints (no
    // training left), loads the same weights, scores the same.
    pn_ablation_result r2;
    pn_ablation_run(&c, "abl.yaml", &r2);
    int same = r2.n_rows == 3;
    for (int i = 0; same && i < 3; i++)
        for (int t = 0; t < 3; t++) same &= r2.rows[i].task[t].n_correct == r.rows[i].task[t].n_correct;
    CHECK(same, "second run into the same out_dir: same accuracies");
    CHECK(r2.rows[1].steps == 3 && r2.rows[1].final_loss == r.rows[1].final_loss,
          "second run keeps the first run's training record");
    pn_ablation_result_free(&r2);
    pn_ablation_result_free(&r);
    pn_job_config_free(&c);
}

// ---------------------------------------------------------------- bad configs

typedef struct {
    const char *sampling, *blocks, *full, *swa, *set_blocks;
} bad_case;

static void run_bad(void *arg) {
    const bad_case *b = arg;
    pn_log_set_level(PN_LOG_QUIET);
    pn_job_config c;
    load_cfg(&c, "bad", b->sampling, b->blocks, b->full, b->swa);
    if (b->set_blocks) pn_ablation_set_blocks(&c, b->set_blocks, "--blocks");
    pn_ablation_result r;
    pn_ablation_run(&c, "abl.yaml", &r);
}

static void test_bad(void) {
    bad_case unknown = {NULL, "[gla, mamba]", NULL, NULL, NULL};
    CHECK(expect_exit(run_bad, &unknown, 2, "abl.yaml: ablation.blocks[1] = 'mamba' is not a linear block"),
          "unknown block");
    bad_case dup = {NULL, "[gla, retnet, gla]", NULL, NULL, NULL};
    CHECK(expect_exit(run_bad, &dup, 2, "ablation.blocks[2] = 'gla' is already listed"), "repeated block");
    bad_case empty = {NULL, "[]", NULL, NULL, NULL};
    CHECK(expect_exit(run_bad, &empty, 2, "ablation.blocks is empty"), "empty block list");
    bad_case samp = {"uniform_k", NULL, "[]", "[]", NULL};
    CHECK(expect_exit(run_bad, &samp, 2, "abl.yaml: supernet.sampling is 'uniform_k'"), "sampling not fixed");
    bad_case all = {NULL, NULL, "[0, 1]", "[2]", NULL};
    CHECK(expect_exit(run_bad, &all, 2, "leaves no layer linear"), "no linear layer");
    bad_case range = {NULL, NULL, "[5]", "[]", NULL};
    CHECK(expect_exit(run_bad, &range, 2, "supernet.full_layers[0] = 5, expected a layer index 0..2"),
          "layer out of range");
    bad_case flag = {NULL, NULL, NULL, NULL, "gla,,retnet"};
    CHECK(expect_exit(run_bad, &flag, 2, "--blocks: empty block name"), "--blocks with an empty item");
    bad_case flag2 = {NULL, NULL, NULL, NULL, "gla, jet"};
    CHECK(expect_exit(run_bad, &flag2, 2, "--blocks[1] = 'jet' is not a linear block"), "--blocks unknown name");
    // a good --blocks list replaces the config's (checked without running)
    pn_job_config c;
    load_cfg(&c, "x", NULL, NULL, NULL, NULL);
    pn_ablation_set_blocks(&c, " rwkv7 , deltanet", "--blocks");
    CHECK(c.ablation.blocks.n == 2 && !strcmp(c.ablation.blocks.v[0], "rwkv7") &&
              !strcmp(c.ablation.blocks.v[1], "deltanet"),
          "--blocks list parsed and trimmed");
    pn_ablation_check(&c, "abl.yaml");
    pn_job_config_free(&c);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/pn_ablation_XXXXXX");
    PN_ASSERT(mkdtemp(g_root));
    pn_log_set_level(PN_LOG_WARN);
    setup();
    test_bad();
    test_run();
    nftw(g_root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary("test_ablation");
}
