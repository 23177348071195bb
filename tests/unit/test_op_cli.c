// test_op_cli.c — `postnas op run` end to end against the float64 op fixtures.
//
// Each row of g_cases runs "$POSTNAS_BIN op run" on a fixture, loads the written file and compares
// o, ht and every gradient the fixture holds (relative error, test_util.h). Adding an op or a form
// is one row. Bad input (a k of the wrong shape, an unknown op, a missing tensor) must exit 2 with
// a message that names the tensor or the op, and leave no output file behind.
#include "core/safetensors.h"
#include "test_util.h"
#include <sys/stat.h>

typedef struct {
    const char *op;
    const char *fixture;   // ops/<fixture>.safetensors
    int chunk;             // 0 = recurrent form
    double tol;            // relative error bound for every compared tensor
} cli_case;

static const cli_case g_cases[] = {
    {"delta_rule", "delta_rule_small", 0, 1e-5},
    {"delta_rule", "delta_rule_small", 64, 1e-4},
    {"delta_rule", "delta_rule_chunky", 0, 1e-5},
    {"delta_rule", "delta_rule_chunky", 64, 1e-4},
    {"gated_delta_rule", "gated_delta_rule_small", 0, 1e-5},
    {"gated_delta_rule", "gated_delta_rule_small", 64, 1e-4},
    {"gated_delta_rule", "gated_delta_rule_chunky", 0, 1e-5},
    {"gated_delta_rule", "gated_delta_rule_chunky", 64, 1e-4},
    {"simple_gla", "simple_gla_small", 0, 1e-5},
    {"simple_gla", "simple_gla_chunky", 64, 1e-4},
    {"gla", "gla_small", 0, 1e-5},
    {"gla", "gla_chunky", 64, 1e-4},
    {"dplr", "dplr_small", 0, 1e-5},
    {"dplr", "dplr_chunky", 16, 1e-4},
};

static char g_tmp[4096];
static const char *g_bin;

// Runs the command line with stderr into g_tmp/stderr.txt; returns the exit status and the
// captured stderr in err (NUL-terminated).
static int run_cmd(const char *args, char *err, size_t errn) {
    char cmd[16384], errpath[4200];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", g_tmp);
    snprintf(cmd, sizeof cmd, "\"%s\" %s >/dev/null 2>\"%s\"", g_bin, args, errpath);
    int st = system(cmd);
    int rc = st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    err[0] = 0;
    FILE *f = fopen(errpath, "rb");
    if (f) {
        size_t n = fread(err, 1, errn - 1, f);
        err[n] = 0;
        fclose(f);
    }
    return rc;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

// Tensors a run must reproduce: o, ht and every gradient (d*), but not the upstream do / dht.
static int is_result(const char *name) {
    if (strcmp(name, "o") == 0 || strcmp(name, "ht") == 0) return 1;
    return name[0] == 'd' && strcmp(name, "do") != 0 && strcmp(name, "dht") != 0;
}

static void test_case(const cli_case *c) {
    char in[4200], out[4200], args[12000], err[8192], rel[256];
    snprintf(rel, sizeof rel, "ops/%s.safetensors", c->fixture);
    snprintf(in, sizeof in, "%s", fixture_path(rel));
    snprintf(out, sizeof out, "%s/%s_%d.safetensors", g_tmp, c->fixture, c->chunk);
    if (c->chunk)
        snprintf(args, sizeof args, "op run --op %s --in \"%s\" --out \"%s\" --chunk %d", c->op, in, out, c->chunk);
    else
        snprintf(args, sizeof args, "op run --op %s --in \"%s\" --out \"%s\"", c->op, in, out);
    int rc = run_cmd(args, err, sizeof err);
    CHECK(rc == 0, "%s chunk %d: exit %d, stderr: %s", c->fixture, c->chunk, rc, err);
    if (rc != 0) return;
    pn_safetensors *ref = pn_st_open(in), *got = pn_st_open(out);
    printf("%-24s %-8s:", c->fixture, c->chunk ? "chunked" : "recur.");
    int compared = 0;
    for (int i = 0; i < ref->n_entries; i++) {
        const pn_st_entry *e = &ref->entries[i];
        if (!is_result(e->name)) continue;
        const pn_st_entry *g = pn_st_find(got, e->name);
        CHECK(g != NULL, "%s chunk %d: output lacks %s", c->fixture, c->chunk, e->name);
        if (!g) continue;
        int same = g->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = g->shape[d] == e->shape[d];
        CHECK(same, "%s chunk %d: %s has the wrong shape", c->fixture, c->chunk, e->name);
        if (!same) continue;
        float *a = pn_st_load_f32(got, e->name, NULL, NULL), *b = pn_st_load_f32(ref, e->name, NULL, NULL);
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        double r = rel_err(a, b, (size_t)n);
        printf(" %s %.2e", e->name, r);
        CHECK(r < c->tol, "%s (%s) chunk %d: %s rel err %.3e >= %.0e", c->fixture, c->op, c->chunk, e->name, r,
              c->tol);
        compared++;
        free(a), free(b);
    }
    printf("\n");
    CHECK(compared >= 5, "%s: only %d tensors compared", c->fixture, compared);
    pn_st_close(ref);
    pn_st_close(got);
    remove(out);
}

// Rewrites the delta_rule_small fixture with k of shape (B, T, H, K − 1).
static void write_bad_k(const char *path) {
    pn_safetensors *st = pn_st_open(fixture_path("ops/delta_rule_small.safetensors"));
    pn_st_writer *w = pn_st_writer_new();
    for (int i = 0; i < st->n_entries; i++) {
        const pn_st_entry *e = &st->entries[i];
        int64_t sh[PN_MAX_DIMS];
        int nd;
        float *x = pn_st_load_f32(st, e->name, &nd, sh);
        if (strcmp(e->name, "k") == 0) sh[3] -= 1;   // the first numel values, relabelled
        pn_st_writer_add_f32(w, e->name, PN_F32, nd, sh, x);
        free(x);
    }
    pn_st_writer_meta(w, "op", "delta_rule");
    pn_st_writer_save(w, path);
    pn_st_close(st);
}

static void test_bad_input(void) {
    char bad[4200], out[4200], args[12000], err[8192];
    snprintf(bad, sizeof bad, "%s/bad_k.safetensors", g_tmp);
    snprintf(out, sizeof out, "%s/bad_out.safetensors", g_tmp);
    write_bad_k(bad);
    snprintf(args, sizeof args, "op run --op delta_rule --in \"%s\" --out \"%s\"", bad, out);
    int rc = run_cmd(args, err, sizeof err);
    CHECK(rc == 2, "wrong shape of k: exit %d (want 2)", rc);
    CHECK(strstr(err, "tensor k") && strstr(err, "bad_k.safetensors") && strstr(err, "[2, 67, 3, 16]"),
          "wrong shape of k: message should name the file, the tensor and the expected shape: %s", err);
    CHECK(!file_exists(out), "a failed run left %s behind", out);

    const char *fix = fixture_path("ops/delta_rule_small.safetensors");
    snprintf(args, sizeof args, "op run --op no_such_op --in \"%s\" --out \"%s\"", fix, out);
    rc = run_cmd(args, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "no_such_op"), "unknown op: exit %d, stderr: %s", rc, err);
    // The gated op needs g, which the delta-rule file lacks.
    snprintf(args, sizeof args, "op run --op gated_delta_rule --in \"%s\" --out \"%s\"", fix, out);
    rc = run_cmd(args, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "tensor g"), "missing g: exit %d, stderr: %s", rc, err);
    snprintf(args, sizeof args, "op run --op delta_rule --in \"%s\" --out \"%s\" --chunk 0", fix, out);
    rc = run_cmd(args, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "--chunk"), "--chunk 0: exit %d, stderr: %s", rc, err);
    CHECK(!file_exists(out), "a failed run left %s behind", out);
    rc = run_cmd("op --help", err, sizeof err);
    CHECK(rc == 0, "op --help: exit %d", rc);
    rc = run_cmd("op run --help", err, sizeof err);
    CHECK(rc == 0, "op run --help: exit %d", rc);
    remove(bad);
}

int main(void) {
    g_bin = getenv("POSTNAS_BIN");
    if (!g_bin) {
        fprintf(stderr, "test_op_cli: POSTNAS_BIN is not set (ctest sets it to the postnas binary)\n");
        return 1;
    }
    const char *tmpdir = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/postnas_op_cli_XXXXXX", tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < PN_ARRAY_LEN(g_cases); i++) test_case(&g_cases[i]);
    test_bad_input();
    char p[4200];
    snprintf(p, sizeof p, "%s/stderr.txt", g_tmp);
    remove(p);
    rmdir(g_tmp);
    return test_summary("test_op_cli");
}
