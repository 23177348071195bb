// test_safetensors.c — reader/writer round trips, the real fixtures, and
// malformed inputs (exit 2 with file + reason).
//
// Round trips check exact bytes against what went in, and the f32 conversions
// against IEEE bit patterns known by hand (1.0 = 0x3F80 in bf16, 0x3C00 in f16),
// so nothing is compared with numbers the code under test produced. The F64
// fixture is cross-checked by parsing its header with a few lines of local code
// and reading the doubles straight from the file. Malformed files are written
// here byte by byte and each must end the process with exit 2 and a message
// naming the file and the reason (fork-based expect_exit).
#include "core/fileio.h"
#include "core/safetensors.h"
#include "test_util.h"
#include <ftw.h>
#include <jansson.h>

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[16][4096];
    static int slot = 0;
    char *out = buf[slot++ % 16];
    snprintf(out, 4096, "%s/%s", g_dir, name);
    return out;
}

// 8-byte LE length (given explicitly so it can lie), header text, then
// `data_len` bytes of a counting pattern.
static void write_raw_len(const char *path, uint64_t hlen, const char *header, size_t data_len) {
    FILE *f = fopen(path, "wb");
    PN_ASSERT(f != NULL);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
    fclose(f);
}

static void write_raw(const char *path, const char *header, size_t data_len) {
    write_raw_len(path, strlen(header), header, data_len);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    PN_ASSERT(f != NULL);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

// ------------------------------------------------------------------ round trips

static void test_roundtrip_all_dtypes(void) {
    const char *path = tmp_path("all.safetensors");
    pn_st_writer *w = pn_st_writer_new();
    // Raw bytes for every dtype; sizes differ so offsets are non-trivial.
    unsigned char raw[PN_DTYPE_COUNT][96];
    int64_t shapes[PN_DTYPE_COUNT][2];
    char names[PN_DTYPE_COUNT][32];
    for (int d = PN_DTYPE_COUNT - 1; d >= 0; d--) {  // added in reverse name-ish order
        size_t es = pn_dtype_size((pn_dtype)d);
        shapes[d][0] = 2;
        shapes[d][1] = 1 + d % 3;
        size_t nb = (size_t)(shapes[d][0] * shapes[d][1]) * es;
        for (size_t i = 0; i < nb; i++) raw[d][i] = (unsigned char)(17 * d + 3 * i + 1);
        if (d == PN_BOOL)
            for (size_t i = 0; i < nb; i++) raw[d][i] &= 1;
        snprintf(names[d], sizeof names[d], "t_%s", pn_dtype_name((pn_dtype)d));
        pn_st_writer_add(w, names[d], (pn_dtype)d, 2, shapes[d], raw[d]);
    }
    // Known bit patterns through the f32 converting adder.
    const float vals[4] = {1.0f, -2.0f, 0.5f, 0.0f};
    const uint16_t bf16_bits[4] = {0x3F80, 0xC000, 0x3F00, 0x0000};
    const uint16_t f16_bits[4] = {0x3C00, 0xC000, 0x3800, 0x0000};
    const int64_t s4[1] = {4};
    pn_st_writer_add_f32(w, "f_bf16", PN_BF16, 1, s4, vals);
    pn_st_writer_add_f32(w, "f_f16", PN_F16, 1, s4, vals);
    pn_st_writer_add_f32(w, "f_f64", PN_F64, 1, s4, vals);
    pn_st_writer_add_f32(w, "f_f32", PN_F32, 1, s4, vals);
    // A scalar (0 dims) and an empty tensor.
    const float scalar = 3.25f;
    pn_st_writer_add(w, "scalar", PN_F32, 0, NULL, &scalar);
    const int64_t s0[2] = {0, 5};
    pn_st_writer_add(w, "empty", PN_F32, 2, s0, NULL);
    pn_st_writer_meta(w, "format", "pt");
    pn_st_writer_meta(w, "note", "round \"trip\" ü");
    pn_st_writer_meta(w, "format", "pt2");  // replaces
    pn_st_writer_save(w, path);

    // File layout, read independently: 8-byte aligned data, names in order.
    size_t fsize = 0;
    char *file = pn_read_file(path, &fsize);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (unsigned char)file[i];
    CHECK((8 + hlen) % 8 == 0, "data block starts at %llu, not 8-byte aligned", (unsigned long long)(8 + hlen));
    json_error_t jerr;
    json_t *hdr = json_loadb(file + 8, hlen, 0, &jerr);
    CHECK(hdr != NULL, "written header is not JSON: %s", jerr.text);
    if (hdr) {
        json_t *m = json_object_get(hdr, "__metadata__");
        CHECK(m && json_is_string(json_object_get(m, "format")) &&
                  strcmp(json_string_value(json_object_get(m, "format")), "pt2") == 0,
              "__metadata__.format not pt2");
        // Offsets increase in name order and tile the data block.
        const char *prev = "";
        json_int_t prev_end = 0;
        const char *key;
        json_t *val;
        int n = 0;
        json_object_foreach(hdr, key, val) {
            if (strcmp(key, "__metadata__") == 0) continue;
            json_t *o = json_object_get(val, "data_offsets");
            json_int_t b = json_integer_value(json_array_get(o, 0)), e = json_integer_value(json_array_get(o, 1));
            CHECK(strcmp(prev, key) < 0, "tensor %s written after %s", key, prev);
            CHECK(b == prev_end, "tensor %s begins at %lld, previous ended at %lld", key, (long long)b, (long long)prev_end);
            prev = key;
            prev_end = e;
            n++;
        }
        CHECK((uint64_t)prev_end == fsize - 8 - hlen, "data block %zu bytes, offsets end at %lld",
              (size_t)(fsize - 8 - hlen), (long long)prev_end);
        CHECK(n == PN_DTYPE_COUNT + 6, "%d tensors in header", n);
        json_decref(hdr);
    }
    free(file);

    pn_safetensors *st = pn_st_open(path);
    CHECK(st->n_files == 1 && st->n_entries == PN_DTYPE_COUNT + 6, "files %d entries %d", st->n_files, st->n_entries);
    for (int i = 1; i < st->n_entries; i++)
        CHECK(strcmp(st->entries[i - 1].name, st->entries[i].name) < 0, "entries not sorted at %d", i);
    CHECK(pn_st_meta_get(st, "format") && strcmp(pn_st_meta_get(st, "format"), "pt2") == 0, "meta format");
    CHECK(pn_st_meta_get(st, "note") && strcmp(pn_st_meta_get(st, "note"), "round \"trip\" ü") == 0, "meta note");
    CHECK(pn_st_meta_get(st, "absent") == NULL, "absent meta key found");
    CHECK(pn_st_find(st, "nope") == NULL, "find of absent name");
    for (int d = 0; d < PN_DTYPE_COUNT; d++) {
        const pn_st_entry *e = pn_st_find(st, names[d]);
        CHECK(e != NULL, "%s missing", names[d]);
        if (!e) continue;
        size_t nb = (size_t)(shapes[d][0] * shapes[d][1]) * pn_dtype_size((pn_dtype)d);
        CHECK(e->dtype == (pn_dtype)d && e->ndim == 2 && e->shape[0] == shapes[d][0] && e->shape[1] == shapes[d][1],
              "%s: dtype/shape", names[d]);
        CHECK(e->nbytes == nb && memcmp(e->data, raw[d], nb) == 0, "%s: bytes differ", names[d]);
        CHECK(strcmp(pn_st_entry_path(st, e), path) == 0, "%s: entry path", names[d]);
    }
    const pn_st_entry *eb = pn_st_get(st, "f_bf16"), *eh = pn_st_get(st, "f_f16");
    for (int i = 0; i < 4; i++) {
        uint16_t b, h;
        memcpy(&b, (const char *)eb->data + 2 * i, 2);
        memcpy(&h, (const char *)eh->data + 2 * i, 2);
        CHECK(b == bf16_bits[i], "bf16[%d] = 0x%04x, want 0x%04x", i, b, bf16_bits[i]);
        CHECK(h == f16_bits[i], "f16[%d] = 0x%04x, want 0x%04x", i, h, f16_bits[i]);
    }
    const char *fnames[4] = {"f_bf16", "f_f16", "f_f64", "f_f32"};
    for (int k = 0; k < 4; k++) {
        float got[4] = {0};
        int64_t want_shape[1] = {-1};
        int64_t n = pn_st_read_f32(st, fnames[k], got, 1, want_shape);
        CHECK(n == 4 && memcmp(got, vals, sizeof vals) == 0, "%s read back differs", fnames[k]);
        int nd = -1;
        int64_t shp[PN_MAX_DIMS] = {0};
        float *ld = pn_st_load_f32(st, fnames[k], &nd, shp);
        CHECK(nd == 1 && shp[0] == 4 && memcmp(ld, vals, sizeof vals) == 0, "%s load differs", fnames[k]);
        free(ld);
    }
    // BF16/F16/F64 raw tensors also load as f32 (values checked elsewhere); I64/I32 load as int64.
    {
        int nd = 0;
        int64_t shp[PN_MAX_DIMS];
        int64_t *i64 = pn_st_load_i64(st, names[PN_I64], &nd, shp);
        CHECK(nd == 2 && memcmp(i64, raw[PN_I64], 8 * (size_t)(shp[0] * shp[1])) == 0, "I64 load differs");
        free(i64);
        int64_t *i32 = pn_st_load_i64(st, names[PN_I32], &nd, shp);
        int ok = nd == 2;
        for (int64_t i = 0; ok && i < shp[0] * shp[1]; i++) {
            int32_t v;
            memcpy(&v, raw[PN_I32] + 4 * i, 4);
            ok = i32[i] == (int64_t)v;
        }
        CHECK(ok, "I32 -> int64 load differs");
        free(i32);
    }
    {
        float s = 0;
        const int64_t none[1] = {0};
        CHECK(pn_st_read_f32(st, "scalar", &s, 0, none) == 1 && s == 3.25f, "scalar read %g", s);
        const pn_st_entry *e = pn_st_get(st, "empty");
        CHECK(e->nbytes == 0 && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 5, "empty tensor");
        float *ld = pn_st_load_f32(st, "empty", NULL, NULL);
        free(ld);
    }
    pn_st_close(st);

    // No meta added: no __metadata__ in the header.
    const char *p2 = tmp_path("nometa.safetensors");
    w = pn_st_writer_new();
    pn_st_writer_add_f32(w, "x", PN_F32, 1, s4, vals);
    pn_st_writer_save(w, p2);
    char *f2 = pn_read_file(p2, NULL);
    CHECK(strstr(f2 + 8, "__metadata__") == NULL, "__metadata__ written without meta");
    free(f2);
    st = pn_st_open(p2);
    CHECK(st->n_meta == 0 && st->n_entries == 1, "nometa: meta %d entries %d", st->n_meta, st->n_entries);
    pn_st_close(st);

    // A writer freed without saving (leak check under ASan).
    w = pn_st_writer_new();
    pn_st_writer_add_f32(w, "x", PN_BF16, 1, s4, vals);
    pn_st_writer_free(w);
}

static void check_sharded(const char *open_path, const float *a, const float *big, const char *dir) {
    pn_safetensors *st = pn_st_open(open_path);
    CHECK(st->n_files == 3, "%s: %d shards", open_path, st->n_files);
    CHECK(st->n_entries == 4, "%s: %d entries", open_path, st->n_entries);
    CHECK(pn_st_meta_get(st, "format") && strcmp(pn_st_meta_get(st, "format"), "pt") == 0, "sharded meta");
    const char *want_shard[4] = {"model-00001-of-00003.safetensors", "model-00001-of-00003.safetensors",
                                 "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    const char *nm[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        const pn_st_entry *e = pn_st_find(st, nm[i]);
        CHECK(e != NULL, "sharded: %s missing", nm[i]);
        if (!e) continue;
        const char *p = pn_st_entry_path(st, e);
        size_t lp = strlen(p), lw = strlen(want_shard[i]);
        CHECK(lp >= lw && strcmp(p + lp - lw, want_shard[i]) == 0, "%s in %s, want %s", nm[i], p, want_shard[i]);
        int64_t n = i < 3 ? 100 : 1000;
        float *got = pn_st_load_f32(st, nm[i], NULL, NULL);
        const float *ref = i < 3 ? a + 100 * i : big;
        CHECK(memcmp(got, ref, (size_t)n * 4) == 0, "sharded %s values differ", nm[i]);
        free(got);
    }
    pn_st_close(st);
    (void)dir;
}

static void test_sharded_roundtrip(void) {
    const char *dir = tmp_path("sharded");
    float a[300], big[1000];
    for (int i = 0; i < 300; i++) a[i] = (float)i * 0.5f - 7.0f;
    for (int i = 0; i < 1000; i++) big[i] = (float)(i % 37) - 18.0f;
    pn_st_writer *w = pn_st_writer_new();
    const int64_t s100[1] = {100}, s1000[2] = {10, 100};
    // 400-byte tensors with an 800-byte limit: {a, b}, {c}, then d (4000 bytes) alone.
    pn_st_writer_add_f32(w, "d", PN_F32, 2, s1000, big);
    pn_st_writer_add_f32(w, "c", PN_F32, 1, s100, a + 200);
    pn_st_writer_add_f32(w, "a", PN_F32, 1, s100, a);
    pn_st_writer_add_f32(w, "b", PN_F32, 1, s100, a + 100);
    pn_st_writer_meta(w, "format", "pt");
    pn_st_writer_save_sharded(w, dir, 800);

    char idx[4096];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    for (int s = 1; s <= 3; s++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/model-%05d-of-00003.safetensors", dir, s);
        CHECK(pn_file_exists(p), "missing shard %s", p);
    }
    json_error_t jerr;
    json_t *root = json_load_file(idx, 0, &jerr);
    CHECK(root != NULL, "index not JSON: %s", jerr.text);
    if (root) {
        json_int_t total = json_integer_value(json_object_get(json_object_get(root, "metadata"), "total_size"));
        CHECK(total == 3 * 400 + 4000, "total_size %lld", (long long)total);
        json_t *wm = json_object_get(root, "weight_map");
        CHECK(json_object_size(wm) == 4, "weight_map has %zu names", json_object_size(wm));
        const char *d = json_string_value(json_object_get(wm, "d"));
        CHECK(d && strcmp(d, "model-00003-of-00003.safetensors") == 0, "weight_map d -> %s", d ? d : "(null)");
        json_decref(root);
    }
    check_sharded(dir, a, big, dir);
    check_sharded(idx, a, big, dir);
}

// ------------------------------------------------------------------ real fixtures

// Finds "NAME":{... "data_offsets":[b,e] ...} in header text with plain string
// search (the key is quoted, so "q" does not match "dq").
static int find_offsets(const char *hdr, const char *name, long long *b, long long *e) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = strstr(hdr, key);
    if (!p) return 0;
    const char *end = strchr(p, '}');
    const char *o = strstr(p, "\"data_offsets\"");
    if (!o || !end || o > end) return 0;
    o = strchr(o, '[');
    return o && sscanf(o, "[%lld ,%lld", b, e) == 2;
}

static void test_fixtures(void) {
    const char *qp = fixture_path("qwen2-tiny/model.safetensors");
    pn_safetensors *st = pn_st_open(qp);
    // 51 header keys = __metadata__ + 50 tensors (embed, final norm, 4 layers x 12; lm_head is tied).
    CHECK(st->n_entries == 50, "qwen2-tiny: %d tensors, want 50", st->n_entries);
    CHECK(pn_st_meta_get(st, "format") && strcmp(pn_st_meta_get(st, "format"), "pt") == 0, "qwen2-tiny meta");
    const pn_st_entry *e = pn_st_get(st, "model.embed_tokens.weight");
    CHECK(e->dtype == PN_F32 && e->ndim == 2 && e->shape[0] == 384 && e->shape[1] == 64, "embed dtype/shape");
    const int64_t want[2] = {384, -1};
    float *emb = pn_malloc(384 * 64 * sizeof(float));
    CHECK(pn_st_read_f32(st, "model.embed_tokens.weight", emb, 2, want) == 384 * 64, "embed numel");
    CHECK(memcmp(emb, e->data, 384 * 64 * 4) == 0, "embed f32 copy differs from the mapped bytes");
    free(emb);
    pn_st_close(st);

    const char *op = fixture_path("ops/simple_gla_small.safetensors");
    st = pn_st_open(op);
    int nd = 0;
    int64_t shp[PN_MAX_DIMS] = {0};
    float *q = pn_st_load_f32(st, "q", &nd, shp);
    CHECK(pn_st_get(st, "q")->dtype == PN_F64, "q dtype %s", pn_dtype_name(pn_st_get(st, "q")->dtype));
    CHECK(nd == 4 && shp[0] == 2 && shp[1] == 67 && shp[2] == 3 && shp[3] == 16, "q shape");
    CHECK(pn_st_meta_get(st, "op") && strcmp(pn_st_meta_get(st, "op"), "simple_gla") == 0, "ops meta");
    pn_st_close(st);

    // Independent path: header length, offsets by string search, doubles from fread.
    FILE *f = fopen(op, "rb");
    CHECK(f != NULL, "cannot open %s", op);
    if (f) {
        unsigned char lb[8];
        CHECK(fread(lb, 1, 8, f) == 8, "short read");
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lb[i];
        char *hdr = pn_malloc(hlen + 1);
        CHECK(fread(hdr, 1, hlen, f) == hlen, "short header read");
        hdr[hlen] = 0;
        long long b = -1, en = -1;
        CHECK(find_offsets(hdr, "q", &b, &en), "q offsets not found in header");
        CHECK(en - b == 2LL * 67 * 3 * 16 * 8, "q spans %lld bytes", en - b);
        double d[8] = {0};
        fseek(f, (long)(8 + hlen + (uint64_t)b), SEEK_SET);
        CHECK(fread(d, 8, 8, f) == 8, "short data read");
        int same = 1;
        for (int i = 0; i < 8; i++) {
            if (q[i] != (float)d[i]) same = 0;
            CHECK(q[i] == (float)d[i], "q[%d] = %.9g, file has %.17g", i, q[i], d[i]);
        }
        // The last element too, to catch an offset shifted by a whole tensor.
        double last = 0;
        fseek(f, (long)(8 + hlen + (uint64_t)en - 8), SEEK_SET);
        CHECK(fread(&last, 8, 1, f) == 1, "short read of last");
        CHECK(q[2 * 67 * 3 * 16 - 1] == (float)last, "q[last] = %.9g, file has %.17g", q[2 * 67 * 3 * 16 - 1], last);
        if (same) printf("F64 fixture: q[0..3] = %.9g %.9g %.9g %.9g match the file's doubles\n", q[0], q[1], q[2], q[3]);
        free(hdr);
        fclose(f);
    }
    free(q);
}

// ------------------------------------------------------------------ malformed inputs

static void open_close(void *arg) { pn_st_close(pn_st_open((const char *)arg)); }

static const char *g_read_path;
static void read_wrong_shape(void *arg) {
    pn_safetensors *st = pn_st_open(g_read_path);
    float buf[6];
    const int64_t want[2] = {3, 2};
    pn_st_read_f32(st, (const char *)arg, buf, 2, want);
    pn_st_close(st);
}
static void load_int_as_float(void *arg) {
    pn_safetensors *st = pn_st_open(g_read_path);
    free(pn_st_load_f32(st, (const char *)arg, NULL, NULL));
    pn_st_close(st);
}
static void load_float_as_int(void *arg) {
    pn_safetensors *st = pn_st_open(g_read_path);
    free(pn_st_load_i64(st, (const char *)arg, NULL, NULL));
    pn_st_close(st);
}
static void get_missing(void *arg) {
    pn_safetensors *st = pn_st_open(g_read_path);
    pn_st_get(st, (const char *)arg);
    pn_st_close(st);
}

// One malformed header: writes it with `data_len` data bytes and expects exit 2
// with "PATH: reason".
static void expect_bad_header(const char *file, const char *header, size_t data_len, const char *reason) {
    const char *p = tmp_path(file);
    write_raw(p, header, data_len);
    char want[8192];
    snprintf(want, sizeof want, "%s: %s", p, reason);
    CHECK(expect_exit(open_close, (void *)p, 2, want), "%s: want '%s'", file, want);
}

#define E(name, dt, shape, b, e) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_malformed(void) {
    char want[16384];
    // Files too short to hold the length.
    const char *p = tmp_path("empty.safetensors");
    write_text(p, "");
    snprintf(want, sizeof want, "%s: file is 0 bytes, shorter than the 8-byte header length", p);
    CHECK(expect_exit(open_close, (void *)p, 2, want), "empty file");
    p = tmp_path("five.safetensors");
    write_text(p, "abcde");
    snprintf(want, sizeof want, "%s: file is 5 bytes", p);
    CHECK(expect_exit(open_close, (void *)p, 2, want), "5-byte file");
    // Header length lies.
    p = tmp_path("hlen_big.safetensors");
    write_raw_len(p, 1000, "{}", 8);
    snprintf(want, sizeof want, "%s: header length 1000 is beyond the file size (18 bytes)", p);
    CHECK(expect_exit(open_close, (void *)p, 2, want), "header length beyond file");
    p = tmp_path("hlen_zero.safetensors");
    write_raw_len(p, 0, "{}", 8);
    snprintf(want, sizeof want, "%s: header length is 0", p);
    CHECK(expect_exit(open_close, (void *)p, 2, want), "header length 0");
    p = tmp_path("missing.safetensors");
    snprintf(want, sizeof want, "%s: cannot open", p);
    CHECK(expect_exit(open_close, (void *)p, 2, want), "missing file");

    expect_bad_header("notjson.safetensors", "{\"a\": {\"dtype\": ", 0, "header is not valid JSON (line 1, column");
    expect_bad_header("array.safetensors", "[1, 2, 3]", 0, "header must be a JSON object");
    expect_bad_header("dup.safetensors", "{" E("a", "F32", "[1]", 0, 4) "," E("a", "F32", "[1]", 4, 8) "}", 8,
                      "header is not valid JSON");
    {
        const char *dp = tmp_path("dup.safetensors");
        CHECK(expect_exit(open_close, (void *)dp, 2, "duplicate object key"), "duplicate key: jansson text");
    }
    expect_bad_header("dtype.safetensors", "{" E("w", "F8_E4M3", "[2]", 0, 2) "}", 2,
                      "tensor w: unknown dtype \"F8_E4M3\" (accepted: F32, BF16, F16, F64, I32, I64, U16, U32, U8, I8, BOOL)");
    expect_bad_header("missized.safetensors", "{" E("w", "F32", "[3]", 0, 8) "}", 8,
                      "tensor w: mis-sized: F32 [3] needs 12 bytes, data_offsets [0, 8] span 8");
    expect_bad_header("outside.safetensors", "{" E("w", "F32", "[4]", 0, 16) "}", 8,
                      "tensor w: data_offsets [0, 16] outside the data block of 8 bytes");
    expect_bad_header("reversed.safetensors", "{" E("w", "F32", "[0]", 8, 4) "}", 8,
                      "tensor w: data_offsets [8, 4] have begin > end");
    expect_bad_header("overlap.safetensors",
                      "{" E("first", "F32", "[2]", 0, 8) "," E("second", "F32", "[2]", 4, 12) "," E("third", "U8", "[4]", 12, 16) "}",
                      16, "tensors first [0, 8) and second [4, 12) overlap");
    expect_bad_header("overlap_inside.safetensors",
                      "{" E("big", "F32", "[4]", 0, 16) "," E("mid", "U8", "[2]", 8, 10) "," E("tail", "U8", "[2]", 12, 14) "}",
                      16, "tensors big [0, 16) and mid [8, 10) overlap");
    expect_bad_header("negshape.safetensors", "{" E("w", "F32", "[-2]", 0, 8) "}", 8,
                      "tensor w: shape[0] must be a non-negative integer, found -2");
    expect_bad_header("realshape.safetensors", "{" E("w", "F32", "[2.5]", 0, 8) "}", 8,
                      "tensor w: shape[0] must be a non-negative integer, found a JSON real number");
    expect_bad_header("dims.safetensors", "{" E("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1,
                      "tensor w: 9 dims, at most 8 supported");
    expect_bad_header("overflow.safetensors",
                      "{" E("w", "F32", "[4294967296, 4294967296]", 0, 8) "}", 8,
                      "tensor w: shape overflows 64-bit element count");
    expect_bad_header("overflow2.safetensors",
                      "{" E("w", "F64", "[2305843009213693952]", 0, 8) "}", 8,
                      "tensor w: byte size overflows 64 bits");
    expect_bad_header("nooffsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
                      "tensor w: missing \"data_offsets\"");
    expect_bad_header("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      "tensor w: missing \"dtype\"");
    expect_bad_header("dtypetype.safetensors", "{\"w\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      "tensor w: \"dtype\" must be a string");
    expect_bad_header("offsets3.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                      "tensor w: \"data_offsets\" must be an array [begin, end]");
    expect_bad_header("notobj.safetensors", "{\"w\":[1,2]}", 0, "tensor w: header entry must be a JSON object");
    expect_bad_header("metaval.safetensors", "{\"__metadata__\":{\"k\":1}," E("w", "U8", "[1]", 0, 1) "}", 1,
                      "\"__metadata__\" value of key 'k' must be a string");
    expect_bad_header("metaarr.safetensors", "{\"__metadata__\":[\"k\"]}", 0,
                      "\"__metadata__\" must be an object of string -> string");

    // A valid file for the reader-side errors.
    const char *good = tmp_path("good.safetensors");
    write_raw(good, "{" E("m", "F32", "[2,3]", 0, 24) "," E("ids", "I64", "[2]", 24, 40) "}", 40);
    g_read_path = good;
    snprintf(want, sizeof want, "%s: tensor m: expected shape [3, 2], found [2, 3]", good);
    CHECK(expect_exit(read_wrong_shape, (void *)"m", 2, want), "wrong expected shape");
    snprintf(want, sizeof want, "%s: tensor ids: expected a float tensor (F32, F64, BF16 or F16), found I64", good);
    CHECK(expect_exit(load_int_as_float, (void *)"ids", 2, want), "integer read as float");
    snprintf(want, sizeof want, "%s: tensor m: expected an integer tensor (I64 or I32), found F32", good);
    CHECK(expect_exit(load_float_as_int, (void *)"m", 2, want), "float read as integer");
    snprintf(want, sizeof want, "%s: no tensor named 'nope'", good);
    CHECK(expect_exit(get_missing, (void *)"nope", 2, want), "get of missing name");

    // Index files.
    const char *d1 = tmp_path("idx_badjson");
    pn_mkdir_p(d1);
    char ip[4096];
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", d1);
    write_text(ip, "{\"weight_map\": {\"a\": ");
    snprintf(want, sizeof want, "%s: index is not valid JSON (line 1, column", ip);
    CHECK(expect_exit(open_close, (void *)d1, 2, want), "bad index JSON (through the directory)");

    const char *d2 = tmp_path("idx_noshard");
    pn_mkdir_p(d2);
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", d2);
    write_text(ip, "{\"metadata\":{\"total_size\":4},\"weight_map\":{\"a\":\"nope.safetensors\"}}");
    snprintf(want, sizeof want, "%s: weight_map names shard file 'nope.safetensors'", ip);
    CHECK(expect_exit(open_close, (void *)ip, 2, want), "index naming a missing shard");

    const char *d3 = tmp_path("idx_absent");
    pn_mkdir_p(d3);
    char sp[4096];
    snprintf(sp, sizeof sp, "%s/s1.safetensors", d3);
    write_raw(sp, "{" E("a", "U8", "[4]", 0, 4) "}", 4);
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", d3);
    write_text(ip, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}");
    snprintf(want, sizeof want, "%s: tensor zz: weight_map places it in shard %s, which has no such tensor", ip, sp);
    CHECK(expect_exit(open_close, (void *)d3, 2, want), "index naming a tensor absent from its shard");

    const char *d4 = tmp_path("idx_twice");
    pn_mkdir_p(d4);
    char sp2[4096];
    snprintf(sp, sizeof sp, "%s/s1.safetensors", d4);
    snprintf(sp2, sizeof sp2, "%s/s2.safetensors", d4);
    write_raw(sp, "{" E("a", "U8", "[4]", 0, 4) "}", 4);
    write_raw(sp2, "{" E("a", "U8", "[4]", 0, 4) "," E("b", "U8", "[1]", 4, 5) "}", 5);
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", d4);
    write_text(ip, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}");
    snprintf(want, sizeof want, "%s: tensor a is present in two shards: %s and %s", ip, sp, sp2);
    CHECK(expect_exit(open_close, (void *)ip, 2, want), "tensor present in two shards");

    const char *d5 = tmp_path("idx_nowm");
    pn_mkdir_p(d5);
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", d5);
    write_text(ip, "{\"metadata\":{}}");
    snprintf(want, sizeof want, "%s: index has no \"weight_map\"", ip);
    CHECK(expect_exit(open_close, (void *)ip, 2, want), "index without weight_map");

    const char *d6 = tmp_path("emptydir");
    pn_mkdir_p(d6);
    snprintf(want, sizeof want, "%s: directory holds neither model.safetensors.index.json nor model.safetensors", d6);
    CHECK(expect_exit(open_close, (void *)d6, 2, want), "empty directory");
}

// A directory with just model.safetensors opens that file.
static void test_dir_single(void) {
    const char *d = tmp_path("single");
    pn_mkdir_p(d);
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    pn_st_writer *w = pn_st_writer_new();
    const float v[3] = {1.5f, -0.25f, 8.0f};
    const int64_t s3[1] = {3};
    pn_st_writer_add_f32(w, "v", PN_F32, 1, s3, v);
    pn_st_writer_save(w, p);
    pn_safetensors *st = pn_st_open(d);
    float got[3];
    CHECK(st->n_files == 1 && pn_st_read_f32(st, "v", got, 1, s3) == 3 && memcmp(got, v, sizeof v) == 0,
          "directory with model.safetensors");
    pn_st_close(st);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/pn_test_st_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip_all_dtypes();
    test_sharded_roundtrip();
    test_dir_single();
    test_fixtures();
    test_malformed();
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary("test_safetensors");
}
