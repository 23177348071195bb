// tokens.c — token shards and the window loader (see tokens.h for the formats).
//
// HDF5 prints its own error stack on every failed call; we silence it around
// calls that can fail because of a bad file and report one line instead (file +
// what was expected), exit 2. Calls that cannot fail on a good library go
// through PN_CHECK_H5 (a failure there is a bug or a broken system: exit 1).
#define _POSIX_C_SOURCE 200809L
#include "tokens.h"
#include "core/fileio.h"
#include "core/h5util.h"
#include "core/log.h"
#include "core/rng.h"
#include <fcntl.h>
#include <glob.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(hid_t) == sizeof(int64_t), "hid_t is stored as int64_t in pn_token_shard");

// ---------------------------------------------------------------- HDF5 helpers

typedef struct {
    H5E_auto2_t fn;
    void *data;
} h5_quiet;

static h5_quiet h5_quiet_begin(void) {
    h5_quiet q;
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static void h5_quiet_end(h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.fn, q.data); }

static const char *h5_int_desc(hid_t t, char *buf, size_t n) {
    H5T_class_t cls = H5Tget_class(t);
    if (cls != H5T_INTEGER) {
        const char *name = cls == H5T_FLOAT ? "float" : cls == H5T_STRING ? "string" : cls == H5T_COMPOUND ? "compound"
                                                                                                           : "non-integer";
        snprintf(buf, n, "%s (%zu bytes)", name, H5Tget_size(t));
    } else {
        snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", 8 * H5Tget_size(t));
    }
    return buf;
}

// Reads an integer scalar attribute; 0 when absent.
static int h5_read_int_attr(hid_t obj, const char *name, const char *path, int64_t *out) {
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) pn_die_input(path, "cannot open attribute '%s'", name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    PN_CHECK_H5(t);
    PN_CHECK_H5(sp);
    char desc[64];
    if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != 1)
        pn_die_input(path, "attribute '%s' must be one integer, got %s with %lld elements", name,
                     h5_int_desc(t, desc, sizeof desc), (long long)H5Sget_simple_extent_npoints(sp));
    if (H5Aread(a, H5T_NATIVE_INT64, out) < 0) pn_die_input(path, "cannot read attribute '%s'", name);
    PN_CHECK_H5(H5Sclose(sp));
    PN_CHECK_H5(H5Tclose(t));
    PN_CHECK_H5(H5Aclose(a));
    return 1;
}

static void h5_open(pn_token_shard *s) {
    const char *path = s->path;
    const char *want = "expected an HDF5 file with a 1-D dataset 'tokens' of uint16 or uint32";
    h5_quiet q = h5_quiet_begin();
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) pn_die_input(path, "not an HDF5 file or an llm.c .bin shard; %s", want);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) pn_die_input(path, "cannot open as HDF5 (truncated or corrupt file?); %s", want);
    if (H5Lexists(f, "tokens", H5P_DEFAULT) <= 0) pn_die_input(path, "no dataset 'tokens'; %s", want);
    hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
    if (d < 0) pn_die_input(path, "'tokens' is not a dataset; %s", want);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    PN_CHECK_H5(t);
    PN_CHECK_H5(sp);
    char desc[64];
    size_t size = H5Tget_size(t);
    if (H5Tget_class(t) != H5T_INTEGER || H5Tget_sign(t) != H5T_SGN_NONE || (size != 2 && size != 4))
        pn_die_input(path, "dataset 'tokens' has dtype %s; expected uint16 or uint32", h5_int_desc(t, desc, sizeof desc));
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd != 1) pn_die_input(path, "dataset 'tokens' has rank %d; expected a 1-D dataset", nd);
    hsize_t dim = 0;
    PN_CHECK_H5(H5Sget_simple_extent_dims(sp, &dim, NULL));
    s->width = (int)size;
    s->n_tokens = (uint64_t)dim;
    s->eos_id = -1;
    s->vocab_size = -1;
    if (!h5_read_int_attr(d, "eos_id", path, &s->eos_id)) h5_read_int_attr(f, "eos_id", path, &s->eos_id);
    if (!h5_read_int_attr(d, "vocab_size", path, &s->vocab_size)) h5_read_int_attr(f, "vocab_size", path, &s->vocab_size);
    PN_CHECK_H5(H5Sclose(sp));
    PN_CHECK_H5(H5Tclose(t));
    h5_quiet_end(q);
    s->h5_file = f;
    s->h5_dset = d;
}

static void h5_read_range(pn_token_shard *s, uint64_t start, uint64_t count, uint32_t *out) {
    h5_quiet q = h5_quiet_begin();
    hid_t fsp = H5Dget_space((hid_t)s->h5_dset);
    PN_CHECK_H5(fsp);
    hsize_t st = start, cnt = count;
    PN_CHECK_H5(H5Sselect_hyperslab(fsp, H5S_SELECT_SET, &st, NULL, &cnt, NULL));
    hid_t msp = H5Screate_simple(1, &cnt, NULL);
    PN_CHECK_H5(msp);
    if (H5Dread((hid_t)s->h5_dset, H5T_NATIVE_UINT32, msp, fsp, H5P_DEFAULT, out) < 0)
        pn_die_input(s->path, "cannot read tokens [%llu, %llu) of dataset 'tokens' (corrupt or truncated file?)",
                     (unsigned long long)start, (unsigned long long)(start + count));
    PN_CHECK_H5(H5Sclose(msp));
    PN_CHECK_H5(H5Sclose(fsp));
    h5_quiet_end(q);
}

// ---------------------------------------------------------------- .bin helpers

static void bin_open(pn_token_shard *s, FILE *f) {
    const char *path = s->path;
    struct stat st;
    PN_CHECK_SYS(fstat(fileno(f), &st));
    uint64_t size = (uint64_t)st.st_size;
    const uint64_t hdr_bytes = PN_BIN_HEADER_INTS * 4;
    if (size < hdr_bytes)
        pn_die_input(path, "truncated .bin shard: %llu bytes, but the header alone is %llu bytes (256 int32)",
                     (unsigned long long)size, (unsigned long long)hdr_bytes);
    unsigned char raw[PN_BIN_HEADER_INTS * 4];
    if (fread(raw, 1, sizeof raw, f) != sizeof raw) pn_die_input(path, "cannot read the .bin header");
    int32_t h[3];
    for (int i = 0; i < 3; i++)  // little-endian on disk, whatever the host
        h[i] = (int32_t)((uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 | (uint32_t)raw[4 * i + 2] << 16 |
                         (uint32_t)raw[4 * i + 3] << 24);
    if (h[0] != PN_BIN_MAGIC)
        pn_die_input(path, "bad magic %d in the .bin header; expected %d (an llm.c token shard)", h[0], PN_BIN_MAGIC);
    if (h[1] != 1 && h[1] != 2)
        pn_die_input(path, "unsupported .bin version %d; expected 1 (uint16 tokens) or 2 (uint32 tokens)", h[1]);
    if (h[2] < 0) pn_die_input(path, "negative token count %d in the .bin header", h[2]);
    s->width = h[1] == 1 ? 2 : 4;
    s->n_tokens = (uint64_t)h[2];
    uint64_t want = hdr_bytes + s->n_tokens * (uint64_t)s->width;
    if (size < want)
        pn_die_input(path, "truncated .bin shard: the header says %llu tokens (%llu bytes in all), the file has %llu bytes",
                     (unsigned long long)s->n_tokens, (unsigned long long)want, (unsigned long long)size);
    if (size > want)
        pn_die_input(path, ".bin shard has %llu bytes after its %llu tokens; expected exactly %llu bytes",
                     (unsigned long long)(size - want), (unsigned long long)s->n_tokens, (unsigned long long)want);
    s->eos_id = -1;
    s->vocab_size = -1;
    s->bin = f;
}

static void bin_read_range(pn_token_shard *s, uint64_t start, uint64_t count, uint32_t *out) {
    off_t off = (off_t)(PN_BIN_HEADER_INTS * 4 + start * (uint64_t)s->width);
    if (fseeko(s->bin, off, SEEK_SET) != 0) pn_die_input(s->path, "seek failed: %s", strerror(errno));
    unsigned char buf[8192];
    uint64_t done = 0;
    while (done < count) {
        uint64_t n = PN_MIN(count - done, (uint64_t)(sizeof buf / (size_t)s->width));
        if (fread(buf, (size_t)s->width, (size_t)n, s->bin) != n)
            pn_die_input(s->path, "cannot read tokens [%llu, %llu) (file changed or truncated?)",
                         (unsigned long long)start, (unsigned long long)(start + count));
        for (uint64_t i = 0; i < n; i++) {
            const unsigned char *p = buf + i * (uint64_t)s->width;
            out[done + i] = s->width == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8
                                          : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                                (uint32_t)p[3] << 24;
        }
        done += n;
    }
}

// ---------------------------------------------------------------- shards

void pn_token_shard_open(pn_token_shard *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = pn_strdup(path);
    s->h5_file = s->h5_dset = -1;
    FILE *f = fopen(path, "rb");
    if (!f) pn_die_input(path, "cannot open token shard: %s", strerror(errno));
    unsigned char m[4] = {0};
    size_t got = fread(m, 1, 4, f);
    int32_t magic = (int32_t)((uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24);
    size_t len = strlen(path);
    int bin_name = len >= 4 && strcmp(path + len - 4, ".bin") == 0;
    // A .bin name is parsed as .bin even with a wrong magic, to say so.
    if ((got == 4 && magic == PN_BIN_MAGIC) || bin_name) {
        rewind(f);
        s->format = PN_TOKENS_BIN;
        bin_open(s, f);
        return;
    }
    fclose(f);
    s->format = PN_TOKENS_H5;
    h5_open(s);
}

void pn_token_shard_read(pn_token_shard *s, uint64_t start, uint64_t count, uint32_t *out) {
    PN_ASSERT(start <= s->n_tokens && count <= s->n_tokens - start);
    if (count == 0) return;
    if (s->format == PN_TOKENS_BIN)
        bin_read_range(s, start, count, out);
    else
        h5_read_range(s, start, count, out);
}

void pn_token_shard_check_vocab(pn_token_shard *s, uint64_t vocab_size) {
    if (vocab_size == 0 || (s->width == 2 && vocab_size > 65535)) return;
    const uint64_t chunk = 1u << 20;
    uint32_t *buf = pn_malloc(chunk * sizeof *buf);
    for (uint64_t at = 0; at < s->n_tokens; at += chunk) {
        uint64_t n = PN_MIN(chunk, s->n_tokens - at);
        pn_token_shard_read(s, at, n, buf);
        for (uint64_t i = 0; i < n; i++)
            if (buf[i] >= vocab_size)
                pn_die_input(s->path, "token id %u at index %llu is not below the vocab size %llu", buf[i],
                             (unsigned long long)(at + i), (unsigned long long)vocab_size);
    }
    free(buf);
}

void pn_token_shard_close(pn_token_shard *s) {
    if (s->bin) fclose(s->bin);
    if (s->h5_dset >= 0) PN_CHECK_H5(H5Dclose((hid_t)s->h5_dset));
    if (s->h5_file >= 0) PN_CHECK_H5(H5Fclose((hid_t)s->h5_file));
    free(s->path);
    memset(s, 0, sizeof *s);
    s->h5_file = s->h5_dset = -1;
}

uint32_t *pn_tokens_read_all(const char *path, uint64_t *n_out, int64_t *eos_out) {
    pn_token_shard s;
    pn_token_shard_open(&s, path);
    uint32_t *t = pn_malloc(PN_MAX(s.n_tokens, 1) * sizeof *t);
    pn_token_shard_read(&s, 0, s.n_tokens, t);
    *n_out = s.n_tokens;
    if (eos_out) *eos_out = s.eos_id;
    pn_token_shard_close(&s);
    return t;
}

// ---------------------------------------------------------------- writers

static void check_width(const char *path, const uint32_t *tokens, uint64_t n, int width) {
    if (width != 2 && width != 4) pn_die_input(path, "token width must be 2 (uint16) or 4 (uint32), got %d", width);
    if (width == 2)
        for (uint64_t i = 0; i < n; i++)
            if (tokens[i] > 65535)
                pn_die_input(path, "token id %u at index %llu does not fit uint16; write with width 4 (uint32)",
                             tokens[i], (unsigned long long)i);
}

void pn_tokens_write_h5(const char *path, const uint32_t *tokens, uint64_t n, int width, int64_t eos_id,
                        int64_t vocab_size) {
    check_width(path, tokens, n, width);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    // No object timestamps: the same tokens give a byte-identical file.
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    PN_CHECK_H5(fcpl);
    PN_CHECK_H5(H5Pset_obj_track_times(fcpl, 0));
    h5_quiet q = h5_quiet_begin();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (f < 0) pn_die_input(path, "cannot create HDF5 file %s (directory missing or not writable?)", tmp);
    h5_quiet_end(q);
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    PN_CHECK_H5(sp);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    PN_CHECK_H5(dcpl);
    PN_CHECK_H5(H5Pset_obj_track_times(dcpl, 0));
    hid_t d = H5Dcreate2(f, "tokens", width == 2 ? H5T_STD_U16LE : H5T_STD_U32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    PN_CHECK_H5(d);
    if (n) PN_CHECK_H5(H5Dwrite(d, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens));
    if (eos_id >= 0) pn_h5_attr_i64(d, "eos_id", eos_id);
    if (vocab_size >= 0) pn_h5_attr_i64(d, "vocab_size", vocab_size);
    PN_CHECK_H5(H5Dclose(d));
    PN_CHECK_H5(H5Pclose(dcpl));
    PN_CHECK_H5(H5Sclose(sp));
    PN_CHECK_H5(H5Pclose(fcpl));
    if (H5Fclose(f) < 0) {
        remove(tmp);
        pn_die_input(path, "write failed (disk full?)");
    }
    pn_atomic_commit_path(tmp, path);
}

void pn_tokens_write_bin(const char *path, const uint32_t *tokens, uint64_t n, int width) {
    check_width(path, tokens, n, width);
    if (n > INT32_MAX) pn_die_input(path, ".bin shards hold at most %d tokens, got %llu", INT32_MAX, (unsigned long long)n);
    pn_atomic_file af;
    pn_atomic_open(&af, path);
    unsigned char hdr[PN_BIN_HEADER_INTS * 4] = {0};
    uint32_t h[3] = {PN_BIN_MAGIC, width == 2 ? 1u : 2u, (uint32_t)n};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++) hdr[4 * i + b] = (unsigned char)(h[i] >> (8 * b));
    int bad = fwrite(hdr, 1, sizeof hdr, af.f) != sizeof hdr;
    unsigned char buf[8192];
    size_t per = sizeof buf / (size_t)width;
    for (uint64_t at = 0; at < n && !bad; at += per) {
        size_t m = (size_t)PN_MIN((uint64_t)per, n - at);
        for (size_t i = 0; i < m; i++)
            for (int b = 0; b < width; b++) buf[i * (size_t)width + (size_t)b] = (unsigned char)(tokens[at + i] >> (8 * b));
        bad = fwrite(buf, (size_t)width, m, af.f) != m;
    }
    if (bad) {
        pn_atomic_abort(&af);
        pn_die_input(path, "write failed: %s", strerror(errno));
    }
    pn_atomic_commit(&af);
}

// ---------------------------------------------------------------- permutation

// Feistel network over 2*half bits with a Philox round function; values that
// land outside [0, n) are walked again (cycle walking), which keeps the map a
// bijection on [0, n). The domain is < 4n, so a walk takes < 4 steps on average.
uint64_t pn_permute_index(uint64_t i, uint64_t n, uint64_t seed, uint64_t stream) {
    PN_ASSERT(i < n);
    if (n <= 2) {
        uint32_t w[4];
        pn_philox4x32(seed, stream, 0, w);
        return n == 2 ? i ^ (w[0] & 1u) : 0;
    }
    int bits = 0;
    while (bits < 64 && ((uint64_t)1 << bits) < n) bits++;
    if (bits & 1) bits++;
    int half = bits / 2;
    uint64_t mask = ((uint64_t)1 << half) - 1;
    uint64_t x = i;
    do {
        uint64_t l = x >> half, r = x & mask;
        for (uint64_t round = 0; round < 6; round++) {
            uint32_t w[4];
            pn_philox4x32(seed, stream, (round << 32) | r, w);
            uint64_t f = (((uint64_t)w[1] << 32) | w[0]) & mask;
            uint64_t nl = r;
            r = l ^ f;
            l = nl;
        }
        x = (l << half) | r;
    } while (x >= n);
    return x;
}

// ---------------------------------------------------------------- loader

struct pn_token_loader {
    pn_token_loader_cfg cfg;
    int n_shards;
    pn_token_shard *shards;
    uint64_t *first_window;  // (n_shards + 1) prefix sums of windows per shard
    uint64_t n_windows, rank_windows;
    uint64_t stream;         // Philox stream base of the shuffle
    pn_token_loader_pos pos;
    uint32_t *buf;           // (T + 1)
};

static void paths_push(char ***list, int *n, int *cap, const char *p) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *list = pn_realloc(*list, (size_t)*cap * sizeof **list);
    }
    (*list)[(*n)++] = pn_strdup(p);
}

pn_token_loader *pn_token_loader_open(const char *const *paths, int n_paths, const pn_token_loader_cfg *cfg) {
    if (cfg->B < 1 || cfg->T < 1) pn_die_input("token loader", "batch B=%d and sequence length T=%d must be >= 1", cfg->B, cfg->T);
    if (cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world)
        pn_die_input("token loader", "rank %d is not in [0, world=%d)", cfg->rank, cfg->world);
    if (n_paths < 1) pn_die_input("token loader", "no token files given");
    char **files = NULL;
    int n_files = 0, cap = 0;
    for (int i = 0; i < n_paths; i++) {
        if (!strpbrk(paths[i], "*?[")) {
            paths_push(&files, &n_files, &cap, paths[i]);
            continue;
        }
        glob_t g;
        int rc = glob(paths[i], 0, NULL, &g);
        if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) pn_die_input(paths[i], "no token files match this pattern");
        if (rc != 0) pn_die_input(paths[i], "cannot expand this pattern (glob error %d)", rc);
        for (size_t k = 0; k < g.gl_pathc; k++) paths_push(&files, &n_files, &cap, g.gl_pathv[k]);
        globfree(&g);
    }
    pn_token_loader *L = pn_calloc(1, sizeof *L);
    L->cfg = *cfg;
    L->n_shards = n_files;
    L->shards = pn_calloc((size_t)n_files, sizeof *L->shards);
    L->first_window = pn_calloc((size_t)n_files + 1, sizeof *L->first_window);
    for (int i = 0; i < n_files; i++) {
        pn_token_shard *s = &L->shards[i];
        pn_token_shard_open(s, files[i]);
        pn_token_shard_check_vocab(s, cfg->vocab_size);
        uint64_t nw = s->n_tokens > 0 ? (s->n_tokens - 1) / (uint64_t)cfg->T : 0;
        if (nw == 0)
            pn_warn("%s: %llu tokens, fewer than one window of T+1 = %d; skipped", s->path,
                    (unsigned long long)s->n_tokens, cfg->T + 1);
        L->first_window[i + 1] = L->first_window[i] + nw;
        free(files[i]);
    }
    free(files);
    L->n_windows = L->first_window[n_files];
    L->rank_windows = L->n_windows / (uint64_t)cfg->world;
    if (L->rank_windows == 0)
        pn_die_input(n_paths == 1 ? paths[0] : "token loader",
                     "%llu windows of T+1 = %d tokens in %d file(s); need at least one per rank (world %d)",
                     (unsigned long long)L->n_windows, cfg->T + 1, n_files, cfg->world);
    L->stream = pn_hash_str("datasets/token_loader");
    L->buf = pn_malloc(((size_t)cfg->T + 1) * sizeof *L->buf);
    return L;
}

void pn_token_loader_close(pn_token_loader *L) {
    if (!L) return;
    for (int i = 0; i < L->n_shards; i++) pn_token_shard_close(&L->shards[i]);
    free(L->shards);
    free(L->first_window);
    free(L->buf);
    free(L);
}

uint64_t pn_token_loader_window_at(const pn_token_loader *L, uint64_t epoch, uint64_t index) {
    PN_ASSERT(index < L->rank_windows);
    uint64_t p = index * (uint64_t)L->cfg.world + (uint64_t)L->cfg.rank;
    if (!L->cfg.shuffle) return p;
    // Each epoch has its own stream, so its order is independent of the others.
    return pn_permute_index(p, L->n_windows, L->cfg.seed, L->stream + epoch);
}

void pn_token_loader_window_origin(const pn_token_loader *L, uint64_t w, int *shard, uint64_t *start) {
    PN_ASSERT(w < L->n_windows);
    int lo = 0, hi = L->n_shards - 1;  // last shard with first_window <= w
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (L->first_window[mid] <= w)
            lo = mid;
        else
            hi = mid - 1;
    }
    *shard = lo;
    *start = (w - L->first_window[lo]) * (uint64_t)L->cfg.T;
}

void pn_token_loader_next(pn_token_loader *L, int64_t *inputs, int64_t *targets) {
    const int T = L->cfg.T;
    for (int b = 0; b < L->cfg.B; b++) {
        if (L->pos.index >= L->rank_windows) {
            L->pos.epoch++;
            L->pos.index = 0;
        }
        uint64_t w = pn_token_loader_window_at(L, L->pos.epoch, L->pos.index);
        int s;
        uint64_t start;
        pn_token_loader_window_origin(L, w, &s, &start);
        pn_token_shard_read(&L->shards[s], start, (uint64_t)T + 1, L->buf);
        for (int t = 0; t < T; t++) {
            inputs[(size_t)b * T + t] = L->buf[t];
            targets[(size_t)b * T + t] = L->buf[t + 1];
        }
        L->pos.index++;
    }
}

pn_token_loader_pos pn_token_loader_get_pos(const pn_token_loader *L) { return L->pos; }

void pn_token_loader_set_pos(pn_token_loader *L, pn_token_loader_pos pos) {
    if (pos.index > L->rank_windows)
        pn_die_input("token loader", "resume position (epoch %llu, index %llu) is past the %llu windows per rank of this "
                     "data; was the checkpoint made with other token files, T or world size?",
                     (unsigned long long)pos.epoch, (unsigned long long)pos.index,
                     (unsigned long long)L->rank_windows);
    L->pos = pos;
}

uint64_t pn_token_loader_n_windows(const pn_token_loader *L) { return L->n_windows; }
uint64_t pn_token_loader_rank_windows(const pn_token_loader *L) { return L->rank_windows; }
int pn_token_loader_n_shards(const pn_token_loader *L) { return L->n_shards; }
const pn_token_shard *pn_token_loader_shard(const pn_token_loader *L, int i) {
    PN_ASSERT(i >= 0 && i < L->n_shards);
    return &L->shards[i];
}
