// test_checkpoint.c — atomic checkpoints: bit-identical save/load and resume,
// crash leftovers ignored by pn_checkpoint_latest, and damaged or mismatched
// checkpoints rejected with exit 2 naming the file and tensor.
//
// Everything is compared bit for bit (memcmp) against copies taken before the
// save, never against values read back through the code under test.
#include "core/fileio.h"
#include "core/rng.h"
#include "supernet/checkpoint.h"
#include "test_util.h"
#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>

// ---------------------------------------------------------------- a small live model

enum { N0 = 12, N1 = 5, N2 = 7, NT = N0 + N1 + N2, NP = 3 };

typedef struct {
    float w[NT], g[NT];
    pn_param_ref refs[NP];
    pn_adamw opt;
    pn_ckpt_state st;
} model;

static void model_refs(model *md) {
    md->refs[0] = (pn_param_ref){"layers.0.q_proj.weight", md->w, md->g, N0, 1, 2, {4, 3}};
    md->refs[1] = (pn_param_ref){"layers.0.A_log", md->w + N0, md->g + N0, N1, 0};
    md->refs[2] = (pn_param_ref){"norm.weight", md->w + N0 + N1, md->g + N0 + N1, N2, 0, 1, {N2}};
}

// Gradients drawn from the model's own RNG, so a resumed run must restore it to match.
static void model_train(model *md, int steps) {
    for (int s = 0; s < steps; s++) {
        uint64_t seed = pn_rng_u32(&md->st.rng);
        pn_fill_normal(md->g, NT, 0.0f, 1.0f, seed, 3);
        md->opt.lr = pn_lr_at(md->st.step, 20, 2, 1e-2f, 0.1f);
        pn_adamw_step(&md->opt, md->refs, NP);
        md->st.step++;
    }
}

static void model_init(model *md) {
    memset(md, 0, sizeof *md);
    model_refs(md);
    pn_fill_normal(md->w, NT, 0.0f, 1.0f, 77, 0);
    pn_adamw_init(&md->opt, md->refs, NP, 1e-2f, 0.1f);
    md->st.rng = pn_rng_make(0xfedcba9876543210ull, 7);  // a seed above 2^63: JSON must keep all 64 bits
    md->st.config_hash = 0xdeadbeefcafef00dull;
    md->st.loader_len = 37;
    for (int i = 0; i < 37; i++) md->st.loader[i] = (uint8_t)(i * 37 + 5);  // includes 0x00 and 0xff-ish bytes
    pn_ckpt_state_set(&md->st, "schedule", "cosine");
    pn_ckpt_state_set(&md->st, "note", "utf-8 ok: \xc3\xbc \"quoted\"");
    model_train(md, 3);
    md->w[0] = -0.0f;   // signed zero and a subnormal: raw bits must survive
    md->w[1] = 1e-45f;
}

typedef struct {
    float w[NT], m[NT], v[NT];
    int64_t t;
    pn_ckpt_state st;
} snap;

static void snap_take(const model *md, snap *s) {
    memcpy(s->w, md->w, sizeof s->w);
    memcpy(s->m, md->opt.m, sizeof s->m);
    memcpy(s->v, md->opt.v, sizeof s->v);
    s->t = md->opt.t;
    s->st = md->st;
}

static void model_scramble(model *md) {
    for (int i = 0; i < NT; i++) {
        md->w[i] = 9.0f;
        md->opt.m[i] = 7.0f;
        md->opt.v[i] = 5.0f;
    }
    md->opt.t = 999;
    memset(&md->st, 0x5a, sizeof md->st);
}

// Compares field by field; returns 1 when bit-identical.
static int snap_equal(const model *md, const snap *s, const char *what) {
    int ok = 1;
    ok &= memcmp(md->w, s->w, sizeof s->w) == 0;
    ok &= memcmp(md->opt.m, s->m, sizeof s->m) == 0;
    ok &= memcmp(md->opt.v, s->v, sizeof s->v) == 0;
    ok &= md->opt.t == s->t;
    const pn_ckpt_state *a = &md->st, *b = &s->st;
    ok &= a->step == b->step;
    ok &= a->rng.seed == b->rng.seed && a->rng.stream == b->rng.stream && a->rng.counter == b->rng.counter;
    ok &= a->loader_len == b->loader_len && memcmp(a->loader, b->loader, (size_t)b->loader_len) == 0;
    ok &= a->config_hash == b->config_hash;
    ok &= a->n_extra == b->n_extra;
    for (int i = 0; ok && i < b->n_extra; i++) {
        const char *v = pn_ckpt_state_get(a, b->extra[i].key);
        ok &= v && strcmp(v, b->extra[i].value) == 0;
    }
    CHECK(ok, "%s: restored state is not bit-identical", what);
    return ok;
}

// ---------------------------------------------------------------- file helpers

static char g_run[256];

static int rm_entry(const char *p, const struct stat *sb, int f, struct FTW *ftw) {
    (void)sb;
    (void)f;
    (void)ftw;
    return remove(p);
}

static void rm_rf(const char *p) { nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static const char *ck(const char *rel) {
    static char buf[4][4096];
    static int slot = 0;
    char *o = buf[slot++ % 4];
    snprintf(o, 4096, "%s/ckpt/%s", g_run, rel);
    return o;
}

// Writes the first `n` bytes of src to dst (n = -1: all).
static void copy_prefix(const char *src, const char *dst, long n) {
    size_t len = 0;
    char *data = pn_read_file(src, &len);
    size_t k = n < 0 ? len : (size_t)n;
    FILE *f = fopen(dst, "wb");
    PN_ASSERT(f && fwrite(data, 1, k, f) == k && fclose(f) == 0);
    free(data);
}

static size_t file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (size_t)sb.st_size : 0;
}

// Number of entries of RUN/ckpt whose name contains `infix`.
static int count_leftovers(const char *infix) {
    char path[4096];
    snprintf(path, sizeof path, "%s/ckpt", g_run);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strstr(de->d_name, infix) != NULL;
    closedir(d);
    return n;
}

// ---------------------------------------------------------------- tests

static model g_md;   // the live model
static snap g_s3, g_s5;

static void test_roundtrip_and_resume(void) {
    model *md = &g_md;
    model_init(md);
    char dir[4096];
    pn_checkpoint_path(dir, sizeof dir, g_run, 3);
    CHECK(strcmp(dir, ck("step_000003")) == 0, "checkpoint path %s", dir);
    pn_checkpoint_save(dir, md->refs, NP, &md->opt, &md->st);
    snap_take(md, &g_s3);

    // the run that never stopped: 4 more steps from the saved state
    static model direct;
    direct = *md;
    direct.opt.m = pn_malloc(sizeof(float) * NT);
    direct.opt.v = pn_malloc(sizeof(float) * NT);
    direct.opt.offset = pn_malloc(sizeof(int64_t) * (NP + 1));
    memcpy(direct.opt.m, md->opt.m, sizeof(float) * NT);
    memcpy(direct.opt.v, md->opt.v, sizeof(float) * NT);
    memcpy(direct.opt.offset, md->opt.offset, sizeof(int64_t) * (NP + 1));
    model_refs(&direct);
    model_train(&direct, 4);

    model_scramble(md);
    pn_checkpoint_load(dir, md->refs, NP, &md->opt, &md->st);
    snap_equal(md, &g_s3, "load after scramble");
    CHECK(md->w[0] == 0.0f && signbit(md->w[0]) && md->w[1] == 1e-45f, "signed zero / subnormal lost");

    // resumed run: must match the uninterrupted one bit for bit
    model_train(md, 4);
    int same = memcmp(md->w, direct.w, sizeof md->w) == 0 && memcmp(md->opt.m, direct.opt.m, sizeof(float) * NT) == 0 &&
               memcmp(md->opt.v, direct.opt.v, sizeof(float) * NT) == 0 && md->opt.t == direct.opt.t &&
               md->st.rng.counter == direct.st.rng.counter;
    CHECK(same, "resume after 4 steps is not bit-identical to the uninterrupted run");
    printf("  save/scramble/load: bit-identical; resume vs uninterrupted after 4 steps: %s\n",
           same ? "bit-identical" : "DIFFERENT");
    pn_adamw_free(&direct.opt);

    // a second checkpoint with a full 256-byte loader blob
    md->st.loader_len = PN_CKPT_BLOB_MAX;
    for (int i = 0; i < PN_CKPT_BLOB_MAX; i++) md->st.loader[i] = (uint8_t)(255 - i);
    md->st.step = 5;
    pn_checkpoint_save(pn_checkpoint_path(dir, sizeof dir, g_run, 5), md->refs, NP, &md->opt, &md->st);
    snap_take(md, &g_s5);
    model_scramble(md);
    pn_checkpoint_load(dir, md->refs, NP, &md->opt, &md->st);
    snap_equal(md, &g_s5, "load with a 256-byte loader blob");
    CHECK(count_leftovers(".tmp.") == 0 && count_leftovers(".old.") == 0, "save left temporary directories");
}

static void test_latest_and_crash(void) {
    model *md = &g_md;
    char out[4096];
    int64_t s = pn_checkpoint_latest(g_run, out, sizeof out);
    CHECK(s == 5 && strcmp(out, ck("step_000005")) == 0, "latest = %lld (%s), want 5", (long long)s, out);

    // fake crash of a save of step 7: its temp directory holds a half-written file
    // and a temp file; a hand-made step_000009 lacks state.json; junk names around.
    pn_mkdir_p(ck("step_000007.tmp.424242"));
    size_t msz = file_size(ck("step_000005/model.safetensors"));
    copy_prefix(ck("step_000005/model.safetensors"), ck("step_000007.tmp.424242/model.safetensors"), (long)(msz / 2));
    copy_prefix(ck("step_000005/optim.safetensors"), ck("step_000007.tmp.424242/optim.safetensors.tmp.424242"), 100);
    copy_prefix(ck("step_000005/state.json"), ck("step_000007.tmp.424242/state.json"), -1);
    pn_mkdir_p(ck("step_000009"));
    copy_prefix(ck("step_000005/model.safetensors"), ck("step_000009/model.safetensors"), -1);
    pn_mkdir_p(ck("step_12abc"));
    copy_prefix(ck("step_000005/state.json"), ck("notes.txt"), -1);
    s = pn_checkpoint_latest(g_run, out, sizeof out);
    CHECK(s == 5 && strcmp(out, ck("step_000005")) == 0, "after fake crash: latest = %lld (%s), want 5", (long long)s,
          out);
    model_scramble(md);
    pn_checkpoint_load(out, md->refs, NP, &md->opt, &md->st);
    snap_equal(md, &g_s5, "previous checkpoint after a fake crash");

    // a real save of step 7 next to the leftover succeeds and becomes the latest
    md->st.step = 7;
    char dir[4096];
    pn_checkpoint_path(dir, sizeof dir, g_run, 7);
    pn_checkpoint_save(dir, md->refs, NP, &md->opt, &md->st);
    s = pn_checkpoint_latest(g_run, out, sizeof out);
    CHECK(s == 7 && strcmp(out, dir) == 0, "latest after saving 7 = %lld", (long long)s);

    // overwrite step 7 in place: the new content wins, nothing is left aside
    md->w[3] += 1.0f;
    snap s7;
    snap_take(md, &s7);
    pn_checkpoint_save(dir, md->refs, NP, &md->opt, &md->st);
    model_scramble(md);
    pn_checkpoint_load(dir, md->refs, NP, &md->opt, &md->st);
    snap_equal(md, &s7, "overwritten checkpoint");
    CHECK(count_leftovers(".old.") == 0, "overwrite left an .old directory");
    CHECK(count_leftovers(".tmp.") == 1, "only the fake crash's .tmp directory should remain");

    // crash between "move the old one aside" and "rename the new one in": only
    // step_000007.old.PID exists for step 7 — it is complete, so it is the latest
    PN_ASSERT(rename(dir, ck("step_000007.old.4242")) == 0);
    s = pn_checkpoint_latest(g_run, out, sizeof out);
    CHECK(s == 7 && strcmp(out, ck("step_000007.old.4242")) == 0, "aside-crash: latest = %lld (%s)", (long long)s, out);
    model_scramble(md);
    pn_checkpoint_load(out, md->refs, NP, &md->opt, &md->st);
    snap_equal(md, &s7, "checkpoint recovered from .old");
    // once step 7 exists again, the exact name wins over the .old one
    pn_checkpoint_save(dir, md->refs, NP, &md->opt, &md->st);
    s = pn_checkpoint_latest(g_run, out, sizeof out);
    CHECK(s == 7 && strcmp(out, dir) == 0, "exact name must win over .old: %s", out);
    rm_rf(ck("step_000007.old.4242"));

    char empty_run[300];
    snprintf(empty_run, sizeof empty_run, "%s/no-such-run", g_run);
    s = pn_checkpoint_latest(empty_run, out, sizeof out);
    CHECK(s == -1 && out[0] == 0, "no checkpoints: latest = %lld", (long long)s);
    printf("  latest ignores .tmp leftovers and incomplete dirs; .old fallback works\n");
}

// ---------------------------------------------------------------- rejected checkpoints (child processes)

typedef struct {
    const char *dir;
    int variant;  // 0 = exact live model, 1 = shape swapped, 2 = renamed, 3 = one param fewer
} load_arg;

static void load_child(void *p) {
    const load_arg *a = p;
    model md;
    memset(&md, 0, sizeof md);
    model_refs(&md);
    int n = NP;
    if (a->variant == 1) {
        md.refs[0].shape[0] = 3;
        md.refs[0].shape[1] = 4;
    }
    if (a->variant == 2) md.refs[0].name = "layers.0.k_proj.weight";
    if (a->variant == 3) n = NP - 1;
    pn_adamw_init(&md.opt, md.refs, n, 1e-2f, 0.1f);
    pn_checkpoint_load(a->dir, md.refs, n, &md.opt, &md.st);
    pn_adamw_free(&md.opt);
}

static void expect_load_fails(const char *dir, int variant, const char *substr, const char *what) {
    load_arg a = {dir, variant};
    CHECK(expect_exit(load_child, &a, 2, substr), "%s: expected exit 2 with \"%s\"", what, substr);
}

static void test_rejects(void) {
    char good[4096];
    pn_checkpoint_path(good, sizeof good, g_run, 5);
    load_arg ok = {good, 0};
    CHECK(expect_exit(load_child, &ok, 0, NULL), "the intact checkpoint must load");

    char want[8400];
    snprintf(want, sizeof want, "%s/model.safetensors: tensor layers.0.q_proj.weight: shape [4, 3] does not match", good);
    expect_load_fails(good, 1, want, "shape mismatch");
    snprintf(want, sizeof want, "%s/model.safetensors: tensor layers.0.k_proj.weight is missing", good);
    expect_load_fails(good, 2, want, "name mismatch");
    snprintf(want, sizeof want, "%s/model.safetensors: tensor norm.weight has no matching live parameter", good);
    expect_load_fails(good, 3, want, "extra tensor in checkpoint");

    // damaged copies of step 5
    const char *files[3] = {"model.safetensors", "optim.safetensors", "state.json"};
    char bad[4096], src[4200], dst[4200];
    snprintf(bad, sizeof bad, "%s/damaged", g_run);
    pn_mkdir_p(bad);
    size_t osz = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s", good, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", bad, files[i]);
        copy_prefix(src, dst, -1);
        if (i == 1) osz = file_size(src);
    }
    snprintf(src, sizeof src, "%s/optim.safetensors", good);
    snprintf(dst, sizeof dst, "%s/optim.safetensors", bad);
    snprintf(want, sizeof want, "%s/optim.safetensors: ", bad);
    const long cuts[3] = {(long)osz - 1, (long)osz / 2, 5};
    for (int c = 0; c < 3; c++) {
        copy_prefix(src, dst, cuts[c]);
        char what[64];
        snprintf(what, sizeof what, "optim.safetensors truncated to %ld of %zu bytes", cuts[c], osz);
        expect_load_fails(bad, 0, want, what);
    }
    copy_prefix(src, dst, -1);
    load_arg okb = {bad, 0};
    CHECK(expect_exit(load_child, &okb, 0, NULL), "restored damaged copy must load");

    // state.json with a numeric rng field (JSON numbers lose bits above 2^53) and a missing state.json
    snprintf(dst, sizeof dst, "%s/state.json", bad);
    size_t len = 0;
    snprintf(src, sizeof src, "%s/state.json", good);
    char *text = pn_read_file(src, &len);
    // "stream": "7"  ->  "stream":  7 : a JSON number where an exact decimal string is required
    char *q = strstr(text, "\"stream\": \"7\"");
    PN_ASSERT(q);
    q[10] = ' ';
    q[12] = ' ';
    FILE *f = fopen(dst, "wb");
    PN_ASSERT(f && fwrite(text, 1, len, f) == len && fclose(f) == 0);
    free(text);
    snprintf(want, sizeof want, "%s/state.json: key \"rng.stream\": expected a decimal unsigned 64-bit integer", bad);
    expect_load_fails(bad, 0, want, "numeric rng stream");
    remove(dst);
    snprintf(want, sizeof want, "%s/state.json: missing", bad);
    expect_load_fails(bad, 0, want, "missing state.json");
    printf("  rejects: shape, name, extra tensor, 3 truncations of optim.safetensors, bad/missing state.json\n");
}

int main(void) {
    snprintf(g_run, sizeof g_run, "/tmp/pn_test_checkpoint.%ld", (long)getpid());
    rm_rf(g_run);
    pn_mkdir_p(g_run);
    test_roundtrip_and_resume();
    test_latest_and_crash();
    test_rejects();
    pn_adamw_free(&g_md.opt);
    rm_rf(g_run);
    return test_summary("test_checkpoint");
}
