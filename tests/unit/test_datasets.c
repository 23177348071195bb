// test_datasets.c — token shards (HDF5 and .bin round trips, HDF5 interop via
// the HDF5 C library and h5dump), the window loader (shape, coverage, shuffle,
// rank split, exact resume), JSONL task suites (good files, every bad case with
// FILE:LINE), and task scoring with toy callbacks whose right answers are known.
#include "datasets/tasks.h"
#include "datasets/tokens.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "test_util.h"
#include <hdf5.h>
#include <unistd.h>

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int slot = 0;
    char *out = buf[slot++ % 8];
    snprintf(out, 512, "%s/%s", g_dir, name);
    return out;
}

static void write_text(const char *path, const char *text) { pn_write_file_atomic(path, text, strlen(text)); }

// ---------------------------------------------------------------- round trips

static void test_round_trips(void) {
    enum { N = 5000 };
    static uint32_t t16[N], t32[N];
    pn_rng r = pn_rng_make(11, 0);
    for (int i = 0; i < N; i++) {
        t16[i] = pn_rng_u32(&r) & 0xffff;
        t32[i] = pn_rng_u32(&r);
    }
    t16[0] = 65535;
    t32[1] = 0xffffffffu;
    struct {
        const char *name;
        const uint32_t *src;
        int width, h5;
    } cases[] = {{"rt16.h5", t16, 2, 1}, {"rt32.h5", t32, 4, 1}, {"rt16.bin", t16, 2, 0}, {"rt32.bin", t32, 4, 0}};
    for (size_t c = 0; c < PN_ARRAY_LEN(cases); c++) {
        const char *p = tmp_path(cases[c].name);
        if (cases[c].h5)
            pn_tokens_write_h5(p, cases[c].src, N, cases[c].width, 7, 1000);
        else
            pn_tokens_write_bin(p, cases[c].src, N, cases[c].width);
        uint64_t n = 0;
        int64_t eos = -5;
        uint32_t *back = pn_tokens_read_all(p, &n, &eos);
        CHECK(n == N && memcmp(back, cases[c].src, N * sizeof *back) == 0, "%s: round trip differs (n=%llu)",
              cases[c].name, (unsigned long long)n);
        CHECK(eos == (cases[c].h5 ? 7 : -1), "%s: eos_id %lld", cases[c].name, (long long)eos);
        free(back);
        pn_token_shard s;
        pn_token_shard_open(&s, p);
        CHECK(s.width == cases[c].width && s.format == (cases[c].h5 ? PN_TOKENS_H5 : PN_TOKENS_BIN),
              "%s: width %d format %d", cases[c].name, s.width, s.format);
        CHECK(s.vocab_size == (cases[c].h5 ? 1000 : -1), "%s: vocab_size attr %lld", cases[c].name,
              (long long)s.vocab_size);
        uint32_t part[100];
        pn_token_shard_read(&s, 1234, 100, part);
        CHECK(memcmp(part, cases[c].src + 1234, sizeof part) == 0, "%s: range read differs", cases[c].name);
        pn_token_shard_close(&s);
    }
    // .bin version 1 is byte-compatible with llm.c: header ints then little-endian uint16.
    size_t nb = 0;
    unsigned char *raw = (unsigned char *)pn_read_file(tmp_path("rt16.bin"), &nb);
    CHECK(nb == 1024 + 2 * N, ".bin size %zu", nb);
    int32_t h0 = (int32_t)(raw[0] | raw[1] << 8 | raw[2] << 16 | (uint32_t)raw[3] << 24);
    int32_t h1 = (int32_t)(raw[4] | raw[5] << 8 | raw[6] << 16 | (uint32_t)raw[7] << 24);
    int32_t h2 = (int32_t)(raw[8] | raw[9] << 8 | raw[10] << 16 | (uint32_t)raw[11] << 24);
    CHECK(h0 == 20240520 && h1 == 1 && h2 == N, ".bin header %d %d %d", h0, h1, h2);
    CHECK(raw[1024] == (t16[0] & 0xff) && raw[1025] == (t16[0] >> 8), ".bin first token bytes");
    free(raw);
    // Same tokens, same bytes: HDF5 files carry no timestamps.
    pn_tokens_write_h5(tmp_path("rt16b.h5"), t16, N, 2, 7, 1000);
    size_t na = 0, nb2 = 0;
    char *a = pn_read_file(tmp_path("rt16.h5"), &na), *b = pn_read_file(tmp_path("rt16b.h5"), &nb2);
    CHECK(na == nb2 && memcmp(a, b, na) == 0, "HDF5 writer is not byte-deterministic");
    free(a);
    free(b);
}

// ---------------------------------------------------------------- HDF5 interop

// A file made with the HDF5 C library the way another tool would: big-endian
// uint32 tokens, eos_id as an int32 attribute on the root group.
static void write_foreign_h5(const char *path, const uint32_t *tok, hsize_t n) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "tokens", H5T_STD_U32BE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tok);
    hid_t asp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "eos_id", H5T_STD_I32LE, asp, H5P_DEFAULT, H5P_DEFAULT);
    int32_t eos = 3;
    H5Awrite(a, H5T_NATIVE_INT32, &eos);
    H5Aclose(a);
    H5Sclose(asp);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

// Runs h5dump and returns its stdout (caller frees), or NULL.
static char *run_capture(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = pn_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 >= cap) buf = pn_realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int rc = pclose(p);
    if (rc != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

// Parses "DATA { a, b, c }" of an h5dump -y -w 0 listing.
static int parse_h5dump_data(const char *s, uint32_t *out, int max) {
    const char *p = strstr(s, "DATA {");
    if (!p) return -1;
    p += 6;
    int n = 0;
    while (*p && *p != '}' && n < max) {
        while (*p == ' ' || *p == '\n' || *p == ',' || *p == '\r') p++;
        if (*p == '}') break;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p) return -1;
        out[n++] = (uint32_t)v;
        p = end;
    }
    return n;
}

static void test_hdf5_interop(void) {
    enum { N = 300 };
    uint32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (uint32_t)(i * 2654435761u % 100000u);
    const char *p = tmp_path("foreign.h5");
    write_foreign_h5(p, tok, N);
    uint64_t n = 0;
    int64_t eos = -1;
    uint32_t *back = pn_tokens_read_all(p, &n, &eos);
    CHECK(n == N && memcmp(back, tok, sizeof tok) == 0, "foreign big-endian HDF5 tokens read back differently");
    CHECK(eos == 3, "root-group eos_id attribute: got %lld", (long long)eos);
    free(back);

    // Our writer, read by the reference tool.
    if (system("command -v h5dump >/dev/null 2>&1") != 0) {
        printf("note: h5dump not installed (package hdf5-tools); skipping the h5dump sub-check\n");
        return;
    }
    const char *q = tmp_path("ours.h5");
    pn_tokens_write_h5(q, tok, N, 4, 3, 100000);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "h5dump -d /tokens -y -w 0 '%s'", q);
    char *out = run_capture(cmd);
    CHECK(out != NULL, "h5dump failed on our file %s", q);
    if (out) {
        CHECK(strstr(out, "H5T_STD_U32LE") != NULL, "h5dump: dataset type is not H5T_STD_U32LE:\n%s", out);
        CHECK(strstr(out, "SIMPLE { ( 300 ) / ( 300 ) }") != NULL, "h5dump: dataspace is not 1-D of 300");
        uint32_t got[N + 1];
        int m = parse_h5dump_data(out, got, N + 1);
        CHECK(m == N && memcmp(got, tok, sizeof tok) == 0, "h5dump: data differs (parsed %d values)", m);
        CHECK(strstr(out, "ATTRIBUTE \"eos_id\"") != NULL, "h5dump: no eos_id attribute");
        free(out);
    }
    snprintf(cmd, sizeof cmd, "h5dump -a /tokens/eos_id -y -w 0 '%s'", q);
    out = run_capture(cmd);
    uint32_t e[2] = {0};
    CHECK(out && parse_h5dump_data(out, e, 2) == 1 && e[0] == 3, "h5dump: eos_id attribute is not 3");
    free(out);
}

// ---------------------------------------------------------------- bad token files

static void open_shard_fn(void *arg) {
    pn_token_shard s;
    pn_token_shard_open(&s, (const char *)arg);
}

static void write_h5_dataset(const char *path, const char *name, hid_t type, int rank, const hsize_t *dims) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    double *zeros = pn_calloc(n, sizeof(double));
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    free(zeros);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

static void truncate_copy(const char *src, const char *dst, size_t keep) {
    size_t n = 0;
    char *b = pn_read_file(src, &n);
    pn_write_file_atomic(dst, b, PN_MIN(keep, n));
    free(b);
}

typedef struct {
    const char *paths[2];
    int n;
    uint64_t vocab;
} loader_arg;

static void open_loader_fn(void *arg) {
    loader_arg *a = arg;
    pn_token_loader_cfg c = {.B = 1, .T = 4, .seed = 1, .shuffle = 1, .rank = 0, .world = 1, .vocab_size = a->vocab};
    pn_token_loader_open(a->paths, a->n, &c);
}

static void test_bad_token_files(void) {
    const char *p = tmp_path("text.h5");
    write_text(p, "this is not HDF5\n");
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "text.h5: not an HDF5 file"), "text file");
    CHECK(expect_exit(open_shard_fn, (void *)tmp_path("missing.h5"), 2, "cannot open token shard"), "missing file");

    hsize_t d1[1] = {10}, d2[2] = {3, 4};
    p = tmp_path("noname.h5");
    write_h5_dataset(p, "ids", H5T_STD_U16LE, 1, d1);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "noname.h5: no dataset 'tokens'"), "no tokens dataset");
    p = tmp_path("float.h5");
    write_h5_dataset(p, "tokens", H5T_IEEE_F32LE, 1, d1);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "dataset 'tokens' has dtype float (4 bytes); expected uint16 or uint32"),
          "float dtype");
    p = tmp_path("int64.h5");
    write_h5_dataset(p, "tokens", H5T_STD_I64LE, 1, d1);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "dataset 'tokens' has dtype int64; expected uint16 or uint32"),
          "int64 dtype");
    p = tmp_path("u8.h5");
    write_h5_dataset(p, "tokens", H5T_STD_U8LE, 1, d1);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "dtype uint8; expected uint16 or uint32"), "uint8 dtype");
    p = tmp_path("rank2.h5");
    write_h5_dataset(p, "tokens", H5T_STD_U16LE, 2, d2);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "rank2.h5: dataset 'tokens' has rank 2; expected a 1-D dataset"),
          "rank 2");

    // A good file cut in half: HDF5 refuses it at open (end of file below the stored end of allocation).
    static uint32_t big[20000];
    for (int i = 0; i < 20000; i++) big[i] = (uint32_t)i;
    pn_tokens_write_h5(tmp_path("good.h5"), big, 20000, 4, 1, -1);
    p = tmp_path("cut.h5");
    truncate_copy(tmp_path("good.h5"), p, 20000);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "cut.h5: cannot open as HDF5 (truncated or corrupt file?)"),
          "truncated HDF5");

    pn_tokens_write_bin(tmp_path("good.bin"), big, 1000, 2);
    p = tmp_path("cut.bin");
    truncate_copy(tmp_path("good.bin"), p, 1024 + 999);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2,
                      "cut.bin: truncated .bin shard: the header says 1000 tokens (3024 bytes in all), the file has 2023 bytes"),
          "truncated .bin");
    p = tmp_path("short.bin");
    truncate_copy(tmp_path("good.bin"), p, 100);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "short.bin: truncated .bin shard: 100 bytes"), "short .bin");
    size_t n = 0;
    char *b = pn_read_file(tmp_path("good.bin"), &n);
    b[0] ^= 0x55;
    p = tmp_path("magic.bin");
    pn_write_file_atomic(p, b, n);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "expected 20240520 (an llm.c token shard)"), "bad magic");
    b[0] ^= 0x55;
    b[4] = 3;
    p = tmp_path("version.bin");
    pn_write_file_atomic(p, b, n);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "unsupported .bin version 3; expected 1 (uint16 tokens) or 2"),
          "bad version");
    b[4] = 1;
    p = tmp_path("long.bin");
    char *b2 = pn_malloc(n + 3);
    memcpy(b2, b, n);
    memset(b2 + n, 0, 3);
    pn_write_file_atomic(p, b2, n + 3);
    CHECK(expect_exit(open_shard_fn, (void *)p, 2, "has 3 bytes after its 1000 tokens"), "trailing bytes");
    free(b2);
    free(b);

    // Token ids at or above the vocab size.
    loader_arg la = {{tmp_path("good.bin")}, 1, 999};
    CHECK(expect_exit(open_loader_fn, &la, 2, "good.bin: token id 999 at index 999 is not below the vocab size 999"),
          "token >= vocab (.bin)");
    la.paths[0] = tmp_path("good.h5");
    la.vocab = 5000;
    CHECK(expect_exit(open_loader_fn, &la, 2, "good.h5: token id 5000 at index 5000 is not below the vocab size 5000"),
          "token >= vocab (HDF5)");
    la.paths[0] = tmp_path("nomatch_*.h5");
    la.vocab = 0;
    CHECK(expect_exit(open_loader_fn, &la, 2, "nomatch_*.h5: no token files match this pattern"), "glob no match");
    la.paths[0] = tmp_path("float.h5");
    CHECK(expect_exit(open_loader_fn, &la, 2, "float.h5: dataset 'tokens' has dtype float"), "loader bad shard");
}

// ---------------------------------------------------------------- loader

enum { LT = 8 };  // T
// Three shards in three forms; token value = global position, so every
// window says where it came from. Shard s holds k_s*T + 1 tokens.
static const int k_windows[3] = {13, 9, 8};  // 30 windows in all
static uint32_t g_base[3];

static void make_loader_shards(void) {
    uint32_t base = 0;
    for (int s = 0; s < 3; s++) {
        uint64_t n = (uint64_t)k_windows[s] * LT + 1;
        uint32_t *t = pn_malloc(n * sizeof *t);
        for (uint64_t i = 0; i < n; i++) t[i] = base + (uint32_t)i;
        g_base[s] = base;
        if (s == 0) pn_tokens_write_h5(tmp_path("ld_a.h5"), t, n, 2, 0, -1);
        if (s == 1) pn_tokens_write_bin(tmp_path("ld_b.bin"), t, n, 2);
        if (s == 2) pn_tokens_write_h5(tmp_path("ld_c.h5"), t, n, 4, 0, -1);
        base += (uint32_t)n;
        free(t);
    }
}

static pn_token_loader *open_ld(int B, uint64_t seed, int shuffle, int rank, int world) {
    // A glob for the HDF5 shards plus the .bin by name: shard order a, c, b.
    const char *paths[2] = {tmp_path("ld_*.h5"), tmp_path("ld_b.bin")};
    pn_token_loader_cfg c = {.B = B, .T = LT, .seed = seed, .shuffle = shuffle, .rank = rank, .world = world,
                             .vocab_size = 65536};
    return pn_token_loader_open(paths, 2, &c);
}

// Maps a window's first token back to (shard in creation order, window index); -1 if not a window start.
static int window_id_of(int64_t first) {
    int id = 0;
    for (int s = 0; s < 3; s++) {
        int64_t rel = first - g_base[s];
        if (rel >= 0 && rel < (int64_t)k_windows[s] * LT) return rel % LT == 0 ? id + (int)(rel / LT) : -1;
        id += k_windows[s];
    }
    return -1;
}

static void test_loader(void) {
    make_loader_shards();
    const int NW = 30;
    // Shape and content: each row is T consecutive tokens of one shard, targets shifted by one.
    pn_token_loader *L = open_ld(3, 5, 1, 0, 1);
    CHECK(pn_token_loader_n_shards(L) == 3 && pn_token_loader_n_windows(L) == (uint64_t)NW &&
              pn_token_loader_rank_windows(L) == (uint64_t)NW,
          "loader counts: shards %d windows %llu", pn_token_loader_n_shards(L),
          (unsigned long long)pn_token_loader_n_windows(L));
    CHECK(strstr(pn_token_loader_shard(L, 1)->path, "ld_c.h5") && strstr(pn_token_loader_shard(L, 2)->path, "ld_b.bin"),
          "shard order from glob + list");
    int seen[30] = {0};
    static unsigned char tok_seen[400];  // tokens are their global position, < 30*8 + 3
    int64_t x[3 * LT], y[3 * LT];
    int bad_rows = 0;
    for (int step = 0; step < 10; step++) {  // 10 batches of 3 = one epoch exactly
        pn_token_loader_next(L, x, y);
        for (int b = 0; b < 3; b++) {
            int id = window_id_of(x[b * LT]);
            int ok = id >= 0;
            for (int t = 0; t < LT && ok; t++) ok = x[b * LT + t] == x[b * LT] + t && y[b * LT + t] == x[b * LT] + t + 1;
            bad_rows += !ok;
            if (id >= 0) seen[id]++;
            for (int t = 0; t < LT; t++) {
                if (x[b * LT + t] >= 0 && x[b * LT + t] < 400) tok_seen[x[b * LT + t]] = 1;
                if (y[b * LT + t] >= 0 && y[b * LT + t] < 400) tok_seen[y[b * LT + t]] = 1;
            }
        }
    }
    int n_tok = 0, n_tok_seen = 0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < k_windows[s] * LT + 1; i++, n_tok++) n_tok_seen += tok_seen[g_base[s] + (uint32_t)i];
    CHECK(n_tok_seen == n_tok, "one epoch delivers %d of the %d tokens in the shards", n_tok_seen, n_tok);
    CHECK(bad_rows == 0, "%d rows are not (T consecutive tokens, shifted targets)", bad_rows);
    int once = 0;
    for (int i = 0; i < NW; i++) once += seen[i] == 1;
    CHECK(once == NW, "one epoch covers each window once: %d of %d", once, NW);
    // Every token of every shard lies in some window (shards hold k*T + 1 tokens).
    CHECK(pn_token_loader_get_pos(L).epoch == 0 && pn_token_loader_get_pos(L).index == (uint64_t)NW,
          "position after one epoch: (%llu, %llu)", (unsigned long long)pn_token_loader_get_pos(L).epoch,
          (unsigned long long)pn_token_loader_get_pos(L).index);
    pn_token_loader_next(L, x, y);
    CHECK(pn_token_loader_get_pos(L).epoch == 1 && pn_token_loader_get_pos(L).index == 3, "rolls into epoch 1");
    pn_token_loader_close(L);

    // Shuffle: a pure function of the seed; other seeds and other epochs differ; not the identity.
    pn_token_loader *A = open_ld(1, 42, 1, 0, 1), *B2 = open_ld(1, 42, 1, 0, 1), *C = open_ld(1, 43, 1, 0, 1);
    int same_ab = 1, same_ac = 1, identity = 1;
    int order_e0[30], order_e1[30];
    for (int i = 0; i < 2 * NW; i++) {
        int64_t xa[LT], ya[LT], xb[LT], yb[LT], xc[LT], yc[LT];
        pn_token_loader_next(A, xa, ya);
        pn_token_loader_next(B2, xb, yb);
        pn_token_loader_next(C, xc, yc);
        same_ab &= memcmp(xa, xb, sizeof xa) == 0 && memcmp(ya, yb, sizeof ya) == 0;
        same_ac &= memcmp(xa, xc, sizeof xa) == 0;
        int id = window_id_of(xa[0]);
        if (i < NW) {
            order_e0[i] = id;
            identity &= id == i;
        } else {
            order_e1[i - NW] = id;
        }
    }
    CHECK(same_ab, "same seed gives a different order");
    CHECK(!same_ac, "seeds 42 and 43 give the same order");
    CHECK(!identity, "shuffled order is the identity");
    CHECK(memcmp(order_e0, order_e1, sizeof order_e0) != 0, "epochs 0 and 1 have the same order");
    pn_token_loader_close(A);
    pn_token_loader_close(B2);
    pn_token_loader_close(C);
    // shuffle = 0: file order.
    L = open_ld(1, 42, 0, 0, 1);
    int inorder = 1;
    for (int i = 0; i < NW; i++) {
        pn_token_loader_next(L, x, y);
        // loader order is a (13 windows), c (8), b (9); window_id_of counts a, b, c
        int want = i < 13 ? i : i < 21 ? 22 + (i - 13) : 13 + (i - 21);
        inorder &= window_id_of(x[0]) == want;
    }
    CHECK(inorder, "shuffle=0 is not file order");
    pn_token_loader_close(L);

    // Rank split: world 3 divides 30 (disjoint and covering); world 4 gives 7 each (28 distinct).
    for (int world = 3; world <= 4; world++) {
        int count[30] = {0};
        uint64_t per = 0;
        for (int r = 0; r < world; r++) {
            L = open_ld(1, 9, 1, r, world);
            per = pn_token_loader_rank_windows(L);
            for (uint64_t i = 0; i < per; i++) {
                pn_token_loader_next(L, x, y);
                int id = window_id_of(x[0]);
                if (id >= 0) count[id]++;
            }
            pn_token_loader_close(L);
        }
        int distinct = 0, dup = 0;
        for (int i = 0; i < NW; i++) {
            distinct += count[i] >= 1;
            dup += count[i] > 1;
        }
        CHECK(per == (uint64_t)(NW / world), "world %d: %llu windows per rank", world, (unsigned long long)per);
        CHECK(dup == 0 && distinct == (int)per * world, "world %d: %d distinct windows, %d duplicated", world, distinct, dup);
        if (world == 3) CHECK(distinct == NW, "world 3 does not cover all windows (%d)", distinct);
    }

    // Resume: save the position mid-epoch, keep going across the epoch end; a
    // fresh loader restored to the position replays the same batches.
    enum { RB = 4, STEPS = 12 };
    int64_t ref_x[STEPS][RB * LT], ref_y[STEPS][RB * LT];
    L = open_ld(RB, 77, 1, 1, 2);
    for (int i = 0; i < 5; i++) pn_token_loader_next(L, ref_x[0], ref_y[0]);
    pn_token_loader_pos saved = pn_token_loader_get_pos(L);
    for (int i = 0; i < STEPS; i++) pn_token_loader_next(L, ref_x[i], ref_y[i]);
    CHECK(pn_token_loader_get_pos(L).epoch >= 2, "resume test does not cross epochs");
    pn_token_loader_close(L);
    int same = 1;
    L = open_ld(RB, 77, 1, 1, 2);
    pn_token_loader_set_pos(L, saved);
    for (int i = 0; i < STEPS; i++) {
        int64_t bx[RB * LT], by[RB * LT];
        pn_token_loader_next(L, bx, by);
        same &= memcmp(bx, ref_x[i], sizeof bx) == 0 && memcmp(by, ref_y[i], sizeof by) == 0;
    }
    CHECK(same, "resumed loader does not replay the same batches");
    pn_token_loader_close(L);

    // A shard shorter than one window is skipped with a warning, not an error.
    uint32_t tiny[5] = {1, 2, 3, 4, 5};
    pn_tokens_write_bin(tmp_path("tiny.bin"), tiny, 5, 2);
    const char *two[2] = {tmp_path("tiny.bin"), tmp_path("ld_b.bin")};
    pn_token_loader_cfg tc = {.B = 1, .T = LT, .seed = 1, .shuffle = 1, .world = 1};
    L = pn_token_loader_open(two, 2, &tc);
    CHECK(pn_token_loader_n_shards(L) == 2 && pn_token_loader_n_windows(L) == (uint64_t)k_windows[1],
          "short shard: %llu windows", (unsigned long long)pn_token_loader_n_windows(L));
    pn_token_loader_close(L);

    // The permutation is a bijection for every size, including the tiny ones.
    int bad_perm = 0;
    for (uint64_t n = 1; n <= 300; n++) {
        unsigned char hit[300] = {0};
        for (uint64_t i = 0; i < n; i++) {
            uint64_t j = pn_permute_index(i, n, 123, n);
            if (j >= n || hit[j]++) bad_perm++;
        }
    }
    CHECK(bad_perm == 0, "pn_permute_index is not a bijection (%d bad)", bad_perm);
}

// ---------------------------------------------------------------- task suites

typedef struct {
    const char *path;
    int64_t vocab;
} suite_arg;

static void load_suite_fn(void *arg) {
    suite_arg *a = arg;
    pn_task_suite s;
    pn_task_suite_load(&s, a->path, a->vocab);
}

static int64_t *toy_tokenize(void *ctx, const char *text, int *n) {
    (void)ctx;
    int len = (int)strlen(text);
    int64_t *ids = pn_malloc((size_t)PN_MAX(len, 1) * sizeof *ids);
    for (int i = 0; i < len; i++) ids[i] = (unsigned char)text[i];
    *n = len;
    return ids;
}

static void test_jsonl_good(void) {
    const char *p = tmp_path("mc.jsonl");
    write_text(p, "{\"context_ids\": [5, 6, 7], \"choices_ids\": [[1], [2, 3], [4]], \"answer\": 1, \"meta\": \"x\"}\n"
                  "\n"
                  "{\"context_ids\": [9], \"choices_ids\": [[8], [7]], \"answer\": 0}\r\n");
    pn_task_suite s;
    pn_task_suite_load(&s, p, 10);
    CHECK(s.kind == PN_TASK_MC && s.n_examples == 2 && strcmp(s.name, "mc") == 0, "mc suite: kind %d n %lld name %s",
          s.kind, (long long)s.n_examples, s.name);
    if (s.n_examples == 2) {
        pn_task_example *e = &s.examples[0];
        CHECK(e->n_context == 3 && e->context[2] == 7 && e->n_choices == 3 && e->n_choice[1] == 2 &&
                  e->choices[1][1] == 3 && e->answer == 1 && e->line == 1,
              "mc example 0 parsed wrong");
        CHECK(s.examples[1].line == 3 && s.examples[1].answer == 0 && s.examples[1].choices[1][0] == 7,
              "mc example 1 parsed wrong");
    }
    pn_task_suite_free(&s);
    p = tmp_path("gen.jsonl");
    write_text(p, "{\"prompt_ids\": [1, 2], \"answer_ids\": [3]}\n{\"prompt_ids\": [4], \"answer_ids\": [5, 6]}");
    pn_task_suite_load(&s, p, 0);
    CHECK(s.kind == PN_TASK_GEN && s.n_examples == 2 && s.examples[1].n_answer == 2 && s.examples[1].answer_ids[1] == 6,
          "gen suite parsed wrong");
    pn_task_suite_free(&s);
    // Text forms through a tokenizer callback (one id per byte here).
    p = tmp_path("text.jsonl");
    write_text(p, "{\"context\": \"ab\", \"choices\": [\"c\", \"de\"], \"answer\": 1}\n");
    pn_task_suite_load_ex(&s, p, 256, toy_tokenize, NULL);
    CHECK(s.n_examples == 1 && s.examples[0].context[1] == 'b' && s.examples[0].n_choice[1] == 2 &&
              s.examples[0].choices[1][1] == 'e',
          "text MC through tokenizer");
    pn_task_suite_free(&s);
}

static void test_jsonl_bad(void) {
    struct {
        const char *name, *text, *msg;
    } cases[] = {
        {"b_json.jsonl", "{\"prompt_ids\": [1], \"answer_ids\": [2]}\n\n{\"prompt_ids\": [1, }\n",
         "b_json.jsonl:3: invalid JSON at column"},
        {"b_ans.jsonl",
         "{\"context_ids\": [1], \"choices_ids\": [[1], [2], [3], [4]], \"answer\": 0}\n"
         "{\"context_ids\": [1], \"choices_ids\": [[1], [2], [3], [4]], \"answer\": 4}\n",
         "b_ans.jsonl:2: field 'answer' must be an integer index into 'choices_ids' (0..3), got 4"},
        {"b_ans2.jsonl", "{\"context_ids\": [1], \"choices_ids\": [[1], [2], [3], [4]], \"answer\": \"1\"}\n",
         "b_ans2.jsonl:1: field 'answer' must be an integer index into 'choices_ids' (0..3), got a string"},
        {"b_ans3.jsonl", "{\"context_ids\": [1], \"choices_ids\": [[1], [2]], \"answer\": -1}\n",
         "b_ans3.jsonl:1: field 'answer' must be an integer index into 'choices_ids' (0..1), got -1"},
        {"b_noans.jsonl", "{\"context_ids\": [1], \"choices_ids\": [[1], [2]]}\n",
         "b_noans.jsonl:1: missing field 'answer'"},
        {"b_noctx.jsonl", "{\"choices_ids\": [[1], [2]], \"answer\": 0}\n",
         "b_noctx.jsonl:1: missing field 'context_ids'"},
        {"b_choice.jsonl", "{\"context_ids\": [1], \"choices_ids\": [[1], 2], \"answer\": 0}\n",
         "b_choice.jsonl:1: field 'choices_ids'[1] must be an array of token ids, got an integer"},
        {"b_onechoice.jsonl", "{\"context_ids\": [1], \"choices_ids\": [[1]], \"answer\": 0}\n",
         "b_onechoice.jsonl:1: field 'choices_ids' must hold 2..1024 choices, got 1"},
        {"b_empty_choice.jsonl", "{\"context_ids\": [1], \"choices_ids\": [[1], []], \"answer\": 0}\n",
         "b_empty_choice.jsonl:1: field 'choices_ids'[1] is empty"},
        {"b_vocab.jsonl", "{\"prompt_ids\": [1, 2, 300], \"answer_ids\": [2]}\n",
         "b_vocab.jsonl:1: field 'prompt_ids' element 2 = 300 is not a token id in [0, 256)"},
        {"b_neg.jsonl", "{\"prompt_ids\": [1], \"answer_ids\": [-2]}\n",
         "b_neg.jsonl:1: field 'answer_ids' element 0 = -2 is not a token id"},
        {"b_float.jsonl", "{\"prompt_ids\": [1.5], \"answer_ids\": [2]}\n",
         "b_float.jsonl:1: field 'prompt_ids' element 0 must be a token id (a non-negative integer), got a number"},
        {"b_noanswer.jsonl", "{\"prompt_ids\": [1]}\n", "b_noanswer.jsonl:1: missing field 'answer_ids'"},
        {"b_text.jsonl", "{\"prompt\": \"what is 2+2\", \"answer\": \"4\"}\n",
         "b_text.jsonl:1: field 'prompt' is text; text fields need a tokenizer; use *_ids"},
        {"b_textmc.jsonl", "{\"context_ids\": [1], \"choices\": [\"a\", \"b\"], \"answer\": 0}\n",
         "b_textmc.jsonl:1: field 'choices' is text; text fields need a tokenizer; use *_ids"},
        {"b_mixed.jsonl",
         "{\"prompt_ids\": [1], \"answer_ids\": [2]}\n{\"context_ids\": [1], \"choices_ids\": [[1], [2]], \"answer\": 0}\n",
         "b_mixed.jsonl:2: this example is multiple-choice but line 1 is generative"},
        {"b_kind.jsonl", "{\"question\": [1]}\n", "b_kind.jsonl:1: has neither 'choices_ids' nor 'prompt_ids'"},
        {"b_array.jsonl", "[1, 2]\n", "b_array.jsonl:1: expected one JSON object per line, got an array"},
        {"b_dup.jsonl", "{\"prompt_ids\": [1], \"prompt_ids\": [2], \"answer_ids\": [2]}\n",
         "b_dup.jsonl:1: invalid JSON"},
        {"b_blank.jsonl", "\n  \n", "b_blank.jsonl: no examples"},
    };
    for (size_t i = 0; i < PN_ARRAY_LEN(cases); i++) {
        suite_arg a = {tmp_path(cases[i].name), 256};
        write_text(a.path, cases[i].text);
        CHECK(expect_exit(load_suite_fn, &a, 2, cases[i].msg), "bad JSONL case %s", cases[i].name);
    }
    suite_arg a = {tmp_path("no_such.jsonl"), 0};
    CHECK(expect_exit(load_suite_fn, &a, 2, "no_such.jsonl: cannot open"), "missing JSONL file");
}

// ---------------------------------------------------------------- scoring with toy models

// A toy "model": log p(choice | context) = −Σ |token − context[0]|, so the
// choice made of context[0] wins.
static void toy_mc(void *ctx, const int64_t *context, int n_context, int64_t *const *choices, const int *n_choice,
                   int n_choices, double *ll) {
    int *calls = ctx;
    (*calls)++;
    for (int c = 0; c < n_choices; c++) {
        double s = 0;
        for (int t = 0; t < n_choice[c]; t++) s -= fabs((double)(choices[c][t] - context[0]));
        ll[c] = s;
    }
}

static void const_mc(void *ctx, const int64_t *context, int n_context, int64_t *const *choices, const int *n_choice,
                     int n_choices, double *ll) {
    for (int c = 0; c < n_choices; c++) ll[c] = -1.0;
}

// A toy generator: echoes the prompt reversed, stopping early at id 0.
static int toy_gen(void *ctx, const int64_t *prompt, int n_prompt, int max_new, int64_t *out) {
    int n = 0;
    for (int i = n_prompt - 1; i >= 0 && n < max_new; i--) {
        if (prompt[i] == 0) break;
        out[n++] = prompt[i];
    }
    return n;
}

static void test_scoring(void) {
    // Example answers: 1 (right: choice [5] = context[0]), 0 (wrong: the toy picks [3,3]),
    // 2 (right), 1 (wrong: the toy picks [9]).
    const char *p = tmp_path("score_mc.jsonl");
    write_text(p, "{\"context_ids\": [5], \"choices_ids\": [[1], [5], [7]], \"answer\": 1}\n"
                  "{\"context_ids\": [3], \"choices_ids\": [[1, 1], [3, 3]], \"answer\": 0}\n"
                  "{\"context_ids\": [2, 8], \"choices_ids\": [[4], [0], [2, 2, 2]], \"answer\": 2}\n"
                  "{\"context_ids\": [9], \"choices_ids\": [[9], [6, 6]], \"answer\": 1}\n");
    pn_task_suite s;
    pn_task_suite_load(&s, p, 0);
    int calls = 0;
    pn_task_result r;
    double acc = pn_task_score_mc(&s, toy_mc, &calls, &r);
    // Answer NLLs by hand: 0; |1-3|+|1-3| = 4; 0; |6-9|+|6-9| = 6 → 10 over 1+2+3+2 = 8 answer tokens.
    CHECK(acc == 0.5 && r.n_correct == 2 && r.n_examples == 4 && calls == 4, "mc accuracy %g (%lld correct, %d calls)",
          acc, (long long)r.n_correct, calls);
    CHECK(r.n_answer_tokens == 8 && fabs(r.mean_nll - 10.0 / 8.0) < 1e-15, "mc mean nll %.17g (want 1.25)", r.mean_nll);
    acc = pn_task_score_mc(&s, const_mc, NULL, &r);
    CHECK(acc == 0.0, "a constant model must score 0 (ties are wrong), got %g", acc);
    pn_task_suite_free(&s);

    // Right: [1,2,3] -> [3,2,1]; wrong: answer too long for the echo ([0] stops it);
    // wrong: answer differs; right: prefix of the reversal.
    p = tmp_path("score_gen.jsonl");
    write_text(p, "{\"prompt_ids\": [1, 2, 3], \"answer_ids\": [3, 2, 1]}\n"
                  "{\"prompt_ids\": [0, 4], \"answer_ids\": [4, 0]}\n"
                  "{\"prompt_ids\": [5, 6], \"answer_ids\": [5, 6]}\n"
                  "{\"prompt_ids\": [7, 8, 9], \"answer_ids\": [9, 8]}\n");
    pn_task_suite_load(&s, p, 0);
    acc = pn_task_score_gen(&s, toy_gen, NULL, &r);
    CHECK(acc == 0.5 && r.n_correct == 2 && r.n_answer_tokens == 9 && isnan(r.mean_nll), "gen accuracy %g", acc);
    pn_task_suite_free(&s);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/pn_test_datasets_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trips();
    test_hdf5_interop();
    test_bad_token_files();
    test_loader();
    test_jsonl_good();
    test_jsonl_bad();
    test_scoring();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_dir);
    return test_summary("test_datasets");
}
