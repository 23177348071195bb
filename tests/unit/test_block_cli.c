// test_block_cli.c — `postnas block run` end to end on the three layer fixtures.
//
// Runs "$POSTNAS_BIN block run" on layers/{jetblock, gated_deltanet, deltanet}
// (dimensions inferred from the parameter shapes, nothing passed by hand) and
// compares y, dx and every grad.* of the fixture with the written file (1e-4
// relative). Then malformed inputs: a missing parameter, a mis-shaped one, a
// missing x, an unknown --set key and an unknown block must exit 2 naming the
// tensor (or listing what is valid).
#include "core/safetensors.h"
#include "test_util.h"
#include <stdarg.h>

static char g_tmp[256];

static const char *bin(void) {
    const char *b = getenv("POSTNAS_BIN");
    return b ? b : "build/postnas";
}

// Runs the command with stderr to TMP/err; returns the exit code, stderr in err_out.
static int run_cmd(char *err_out, size_t n, const char *fmt, ...) {
    char cmd[8192], errf[300];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(errf, sizeof errf, "%s/err", g_tmp);
    snprintf(cmd + len, sizeof cmd - (size_t)len, " >/dev/null 2>%s", errf);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    FILE *f = fopen(errf, "r");
    size_t got = f ? fread(err_out, 1, n - 1, f) : 0;
    err_out[got] = 0;
    if (f) fclose(f);
    return rc;
}

static void compare_fixture(const char *block) {
    char rel[128], out[300], err[8192];
    snprintf(rel, sizeof rel, "layers/%s.safetensors", block);
    snprintf(out, sizeof out, "%s/%s.out.safetensors", g_tmp, block);
    int rc = run_cmd(err, sizeof err, "%s block run --block %s --in %s --out %s", bin(), block, fixture_path(rel), out);
    CHECK(rc == 0, "block run %s: exit %d, stderr: %s", block, rc, err);
    if (rc != 0) return;
    pn_safetensors *ref = pn_st_open(fixture_path(rel));
    pn_safetensors *got = pn_st_open(out);
    double worst = 0;
    int n_cmp = 0;
    for (int i = 0; i < ref->n_entries; i++) {
        const char *nm = ref->entries[i].name;
        if (strcmp(nm, "y") != 0 && strcmp(nm, "dx") != 0 && strncmp(nm, "grad.", 5) != 0) continue;
        const pn_st_entry *e = pn_st_find(got, nm);
        CHECK(e != NULL, "%s: output lacks %s", block, nm);
        if (!e) continue;
        int nd;
        int64_t shape[PN_MAX_DIMS];
        float *a = pn_st_load_f32(got, nm, &nd, shape);
        float *b = pn_st_load_f32(ref, nm, NULL, NULL);
        int64_t n = 1;
        for (int d = 0; d < nd; d++) n *= shape[d];
        CHECK(n * 4 == (int64_t)ref->entries[i].nbytes || n * 8 == (int64_t)ref->entries[i].nbytes,
              "%s: %s has %lld values in the output", block, nm, (long long)n);
        double r = rel_err(a, b, (size_t)n);
        CHECK(r <= 1e-4, "%s: %s rel err %.3e", block, nm, r);
        worst = r > worst ? r : worst;
        n_cmp++;
        free(a);
        free(b);
    }
    printf("block run %s: %d tensors, worst rel err %.2e\n", block, n_cmp, worst);
    pn_st_close(ref);
    pn_st_close(got);
}

// Copy of the jetblock fixture with `drop` left out and `reshape` (if any) cut to its first `rows` rows.
static void write_variant(const char *path, const char *drop, const char *reshape, int64_t rows) {
    pn_safetensors *st = pn_st_open(fixture_path("layers/jetblock.safetensors"));
    pn_st_writer *w = pn_st_writer_new();
    for (int i = 0; i < st->n_entries; i++) {
        const pn_st_entry *e = &st->entries[i];
        if (drop && strcmp(e->name, drop) == 0) continue;
        int nd;
        int64_t shape[PN_MAX_DIMS];
        float *p = pn_st_load_f32(st, e->name, &nd, shape);
        if (reshape && strcmp(e->name, reshape) == 0) shape[0] = rows;
        pn_st_writer_add_f32(w, e->name, PN_F32, nd, shape, p);
        free(p);
    }
    pn_st_writer_save(w, path);
    pn_st_close(st);
}

static void malformed(void) {
    char path[300], err[8192], out[300];
    snprintf(out, sizeof out, "%s/bad.out.safetensors", g_tmp);
    snprintf(path, sizeof path, "%s/missing.safetensors", g_tmp);
    write_variant(path, "param.o_norm.weight", NULL, 0);
    int rc = run_cmd(err, sizeof err, "%s block run --block jetblock --in %s --out %s --set V=32", bin(), path, out);
    CHECK(rc == 2 && strstr(err, "param.o_norm.weight") && strstr(err, path),
          "missing parameter: exit %d (want 2 naming file and param.o_norm.weight), stderr: %s", rc, err);

    snprintf(path, sizeof path, "%s/shape.safetensors", g_tmp);
    write_variant(path, NULL, "param.k_proj.weight", 31);
    rc = run_cmd(err, sizeof err, "%s block run --block jetblock --in %s --out %s", bin(), path, out);
    CHECK(rc == 2 && strstr(err, "param.k_proj.weight") && strstr(err, "[32, 64]") && strstr(err, "[31, 64]"),
          "wrong shape: exit %d (want 2 naming param.k_proj.weight, [32, 64] and [31, 64]), stderr: %s", rc, err);

    snprintf(path, sizeof path, "%s/nox.safetensors", g_tmp);
    write_variant(path, "x", NULL, 0);
    rc = run_cmd(err, sizeof err, "%s block run --block jetblock --in %s --out %s", bin(), path, out);
    CHECK(rc == 2 && strstr(err, "x"), "missing x: exit %d (want 2), stderr: %s", rc, err);

    rc = run_cmd(err, sizeof err, "%s block run --block jetblock --in %s --out %s --set heads=2", bin(),
                 fixture_path("layers/jetblock.safetensors"), out);
    CHECK(rc == 2 && strstr(err, "heads=2") && strstr(err, "gen_reduction"),
          "unknown --set key: exit %d (want 2 listing valid keys), stderr: %s", rc, err);

    rc = run_cmd(err, sizeof err, "%s block run --block nosuch --in %s --out %s", bin(),
                 fixture_path("layers/jetblock.safetensors"), out);
    CHECK(rc == 2 && strstr(err, "nosuch") && strstr(err, "jetblock"),
          "unknown block: exit %d (want 2 listing registered blocks), stderr: %s", rc, err);

    // A fixture run as the wrong block: the first parameter the file lacks is named.
    rc = run_cmd(err, sizeof err, "%s block run --block gated_deltanet --in %s --out %s", bin(),
                 fixture_path("layers/jetblock.safetensors"), out);
    CHECK(rc == 2 && strstr(err, "param.q_conv1d.weight"), "wrong block: exit %d (want 2 naming q_conv1d), stderr: %s",
          rc, err);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/pn_block_cli_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    compare_fixture("jetblock");
    compare_fixture("gated_deltanet");
    compare_fixture("deltanet");
    malformed();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_summary("test_block_cli");
}
