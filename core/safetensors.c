// safetensors.c — reader (mmap, bounded header parsing, sharded index) and
// atomic writer for the safetensors format (see safetensors.h).
//
// Design: a checkpoint is untrusted input, so the reader validates everything
// before any pointer into the mapping is handed out: the header length against
// the file size, every entry's JSON types, dtype, shape (with overflow-checked
// numel x size), offsets against the data block, and that no two tensors share
// bytes. Any violation ends the process with exit 2 naming the file, the tensor
// and what was expected; callers therefore never see a half-valid table.
// Entries from all shards live in one array sorted by name, so lookups are a
// bsearch and "present in two shards" is a check on neighbours after sorting.
// The path given to pn_st_open is kept in paths[n_files] (one slot past the
// shards) so messages about the whole checkpoint can name what the user gave.
//
// The writer copies tensors at add time (callers may free their buffers), sorts
// by name, and emits a compact JSON header padded with spaces so the data block
// starts 8-byte aligned. Files go through pn_atomic_open/commit: a crash leaves
// the old file or the new one. Sharded output follows the Hugging Face layout
// (model-00001-of-00003.safetensors + model.safetensors.index.json).
#include "safetensors.h"
#include "fileio.h"
#include <fcntl.h>
#include <jansson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// ------------------------------------------------------------------ helpers

static const char *accepted_dtypes(char *buf, size_t n) {
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < PN_DTYPE_COUNT && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? ", " : "", pn_dtype_name((pn_dtype)i));
    return buf;
}

static int entry_cmp_name(const void *a, const void *b) {
    const pn_st_entry *x = a, *y = b;
    return strcmp(x->name, y->name);
}

// Sort key for the overlap check: byte ranges of one file ordered by begin.
typedef struct {
    size_t begin, end;
    const char *name;
} st_range;

static int range_cmp(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// Reads a non-negative JSON integer or dies naming what it is.
static int64_t json_nonneg_int(const char *path, const char *tensor, const char *what, const json_t *v) {
    if (!json_is_integer(v))
        pn_die_input(path, "tensor %s: %s must be a non-negative integer, found a JSON %s", tensor, what,
                     json_is_real(v) ? "real number" : json_is_string(v) ? "string" : "non-number");
    json_int_t x = json_integer_value(v);
    if (x < 0) pn_die_input(path, "tensor %s: %s must be a non-negative integer, found %lld", tensor, what, (long long)x);
    return (int64_t)x;
}

static void st_grow(pn_safetensors *st, int *cap) {
    if (st->n_entries < *cap) return;
    *cap = *cap ? *cap * 2 : 64;
    st->entries = pn_realloc(st->entries, (size_t)*cap * sizeof(pn_st_entry));
}

// Parses one tensor entry of file `fi` into st->entries (bounds-checked
// against data_size; data pointers into the mapping at `data`).
static void parse_entry(pn_safetensors *st, int fi, const char *path, const char *name, json_t *val,
                        const char *data, size_t data_size, int *cap) {
    if (!json_is_object(val)) pn_die_input(path, "tensor %s: header entry must be a JSON object", name);
    json_t *jd = json_object_get(val, "dtype");
    json_t *js = json_object_get(val, "shape");
    json_t *jo = json_object_get(val, "data_offsets");
    if (!jd) pn_die_input(path, "tensor %s: missing \"dtype\"", name);
    if (!js) pn_die_input(path, "tensor %s: missing \"shape\"", name);
    if (!jo) pn_die_input(path, "tensor %s: missing \"data_offsets\"", name);
    if (!json_is_string(jd)) pn_die_input(path, "tensor %s: \"dtype\" must be a string", name);
    if (!json_is_array(js)) pn_die_input(path, "tensor %s: \"shape\" must be an array of integers", name);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        pn_die_input(path, "tensor %s: \"data_offsets\" must be an array [begin, end]", name);

    char dbuf[256];
    int dt = pn_dtype_from_name(json_string_value(jd));
    if (dt < 0)
        pn_die_input(path, "tensor %s: unknown dtype \"%s\" (accepted: %s)", name, json_string_value(jd),
                     accepted_dtypes(dbuf, sizeof dbuf));
    size_t nd = json_array_size(js);
    if (nd > PN_MAX_DIMS) pn_die_input(path, "tensor %s: %zu dims, at most %d supported", name, nd, PN_MAX_DIMS);

    st_grow(st, cap);
    pn_st_entry *e = &st->entries[st->n_entries];
    memset(e, 0, sizeof *e);
    e->dtype = (pn_dtype)dt;
    e->ndim = (int)nd;
    e->file_index = fi;
    int64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        char what[32];
        snprintf(what, sizeof what, "shape[%zu]", i);
        int64_t d = json_nonneg_int(path, name, what, json_array_get(js, i));
        if (d != 0 && numel > INT64_MAX / d) pn_die_input(path, "tensor %s: shape overflows 64-bit element count", name);
        numel *= d;
        e->shape[i] = d;
    }
    int64_t esize = (int64_t)pn_dtype_size(e->dtype);
    if (numel > INT64_MAX / esize) pn_die_input(path, "tensor %s: byte size overflows 64 bits", name);
    int64_t begin = json_nonneg_int(path, name, "data_offsets[0]", json_array_get(jo, 0));
    int64_t end = json_nonneg_int(path, name, "data_offsets[1]", json_array_get(jo, 1));
    if (begin > end)
        pn_die_input(path, "tensor %s: data_offsets [%lld, %lld] have begin > end", name, (long long)begin, (long long)end);
    if ((uint64_t)end > (uint64_t)data_size)
        pn_die_input(path, "tensor %s: data_offsets [%lld, %lld] outside the data block of %zu bytes", name,
                     (long long)begin, (long long)end, data_size);
    if (end - begin != numel * esize) {
        char sbuf[160];
        pn_die_input(path, "tensor %s: mis-sized: %s %s needs %lld bytes, data_offsets [%lld, %lld] span %lld", name,
                     pn_dtype_name(e->dtype), pn_shape_str(e->ndim, e->shape, sbuf, sizeof sbuf),
                     (long long)(numel * esize), (long long)begin, (long long)end, (long long)(end - begin));
    }
    e->name = pn_strdup(name);
    e->data = data + begin;
    e->nbytes = (size_t)(end - begin);
    st->n_entries++;
}

// Maps PATH read-only, validates its header and appends its tensors as shard
// `fi`. The first file's __metadata__ becomes st->meta.
static void st_add_file(pn_safetensors *st, const char *path, int *cap) {
    int fi = st->n_files;
    int fd = open(path, O_RDONLY);
    if (fd < 0) pn_die_input(path, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) pn_die_input(path, "cannot stat: %s", strerror(errno));
    if (!S_ISREG(sb.st_mode)) pn_die_input(path, "not a regular file");
    size_t fsize = (size_t)sb.st_size;
    if (fsize < 8) pn_die_input(path, "file is %zu bytes, shorter than the 8-byte header length", fsize);
    void *map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    int mmap_errno = errno;
    close(fd);
    if (map == MAP_FAILED) pn_die_input(path, "cannot mmap: %s", strerror(mmap_errno));
    st->paths[fi] = pn_strdup(path);
    st->maps[fi] = map;
    st->map_sizes[fi] = fsize;
    st->n_files++;

    const unsigned char *b = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen == 0) pn_die_input(path, "header length is 0");
    if (hlen > fsize - 8)
        pn_die_input(path, "header length %llu is beyond the file size (%zu bytes)", (unsigned long long)hlen, fsize);

    json_error_t err;
    json_t *root = json_loadb((const char *)b + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        pn_die_input(path, "header is not valid JSON (line %d, column %d): %s", err.line, err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        pn_die_input(path, "header must be a JSON object");
    }
    const char *data = (const char *)b + 8 + hlen;
    size_t data_size = fsize - 8 - (size_t)hlen;
    int first_entry = st->n_entries;

    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) pn_die_input(path, "\"__metadata__\" must be an object of string -> string");
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv))
                    pn_die_input(path, "\"__metadata__\" value of key '%s' must be a string", mk);
            }
            if (fi == 0) {
                st->n_meta = (int)json_object_size(val);
                st->meta = pn_calloc((size_t)st->n_meta, sizeof(pn_st_meta));
                int i = 0;
                json_object_foreach(val, mk, mv) {
                    st->meta[i].key = pn_strdup(mk);
                    st->meta[i].value = pn_strdup(json_string_value(mv));
                    i++;
                }
            }
            continue;
        }
        parse_entry(st, fi, path, key, val, data, data_size, cap);
    }
    json_decref(root);

    // Overlap: with ranges sorted by begin, each non-empty range must start at
    // or after the furthest end seen so far.
    int n = st->n_entries - first_entry;
    if (n > 1) {
        st_range *r = pn_malloc((size_t)n * sizeof(st_range));
        int m = 0;
        for (int i = 0; i < n; i++) {
            const pn_st_entry *e = &st->entries[first_entry + i];
            if (e->nbytes == 0) continue;
            size_t begin = (size_t)((const char *)e->data - data);
            r[m++] = (st_range){begin, begin + e->nbytes, e->name};
        }
        qsort(r, (size_t)m, sizeof(st_range), range_cmp);
        int far = 0;  // the range with the largest end so far
        for (int i = 1; i < m; i++) {
            if (r[i].begin < r[far].end)
                pn_die_input(path, "tensors %s [%zu, %zu) and %s [%zu, %zu) overlap in the data block", r[far].name,
                             r[far].begin, r[far].end, r[i].name, r[i].begin, r[i].end);
            if (r[i].end > r[far].end) far = i;
        }
        free(r);
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void st_alloc_files(pn_safetensors *st, int n) {
    // One extra path slot holds the path given to pn_st_open.
    st->paths = pn_calloc((size_t)n + 1, sizeof(char *));
    st->maps = pn_calloc((size_t)n, sizeof(void *));
    st->map_sizes = pn_calloc((size_t)n, sizeof(size_t));
}

static void st_sort(pn_safetensors *st) {
    if (st->n_entries > 1) qsort(st->entries, (size_t)st->n_entries, sizeof(pn_st_entry), entry_cmp_name);
}

static void st_open_index(pn_safetensors *st, const char *index_path, int *cap) {
    size_t n = 0;
    char *text = pn_read_file(index_path, &n);
    json_error_t err;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!root)
        pn_die_input(index_path, "index is not valid JSON (line %d, column %d): %s", err.line, err.column, err.text);
    if (!json_is_object(root)) pn_die_input(index_path, "index must be a JSON object");
    json_t *wm = json_object_get(root, "weight_map");
    if (!wm) pn_die_input(index_path, "index has no \"weight_map\"");
    if (!json_is_object(wm)) pn_die_input(index_path, "\"weight_map\" must be an object of tensor name -> shard file");
    size_t nw = json_object_size(wm);
    if (nw == 0) pn_die_input(index_path, "\"weight_map\" is empty");

    // Shard files in order of first mention; each opened once.
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        snprintf(dir, sizeof dir, ".");
    const char **shards = pn_calloc(nw, sizeof(char *));
    int *shard_of = pn_calloc(nw, sizeof(int));
    int n_shards = 0;
    const char *key;
    json_t *val;
    size_t k = 0;
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val) || json_string_length(val) == 0)
            pn_die_input(index_path, "weight_map: tensor %s: shard must be a non-empty file name string", key);
        const char *s = json_string_value(val);
        int j = 0;
        while (j < n_shards && strcmp(shards[j], s) != 0) j++;
        if (j == n_shards) shards[n_shards++] = s;
        shard_of[k++] = j;
    }
    st_alloc_files(st, n_shards);
    for (int j = 0; j < n_shards; j++) {
        char full[8192];
        pn_path_join(full, sizeof full, dir, shards[j]);
        if (!pn_file_exists(full))
            pn_die_input(index_path, "weight_map names shard file '%s' (%s), which does not exist", shards[j], full);
        st_add_file(st, full, cap);
    }
    st_sort(st);
    for (int i = 1; i < st->n_entries; i++) {
        const pn_st_entry *a = &st->entries[i - 1], *b = &st->entries[i];
        if (strcmp(a->name, b->name) == 0)
            pn_die_input(index_path, "tensor %s is present in two shards: %s and %s", a->name, st->paths[a->file_index],
                         st->paths[b->file_index]);
    }
    k = 0;
    json_object_foreach(wm, key, val) {
        const pn_st_entry *e = pn_st_find(st, key);
        int want = shard_of[k++];
        if (!e || e->file_index != want)
            pn_die_input(index_path, "tensor %s: weight_map places it in shard %s, which has no such tensor%s%s", key,
                         st->paths[want], e ? "; it is in " : "", e ? st->paths[e->file_index] : "");
    }
    free(shards);
    free(shard_of);
    json_decref(root);
}

// ------------------------------------------------------------------ reader API

pn_safetensors *pn_st_open(const char *path) {
    pn_safetensors *st = pn_calloc(1, sizeof *st);
    int cap = 0;
    char buf[8192];
    if (pn_is_dir(path)) {
        pn_path_join(buf, sizeof buf, path, "model.safetensors.index.json");
        if (pn_file_exists(buf)) {
            st_open_index(st, buf, &cap);
        } else {
            pn_path_join(buf, sizeof buf, path, "model.safetensors");
            if (!pn_file_exists(buf))
                pn_die_input(path, "directory holds neither model.safetensors.index.json nor model.safetensors");
            st_alloc_files(st, 1);
            st_add_file(st, buf, &cap);
            st_sort(st);
        }
    } else if (ends_with(path, ".json")) {
        st_open_index(st, path, &cap);
    } else {
        st_alloc_files(st, 1);
        st_add_file(st, path, &cap);
        st_sort(st);
    }
    st->paths[st->n_files] = pn_strdup(path);
    return st;
}

void pn_st_close(pn_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_files; i++) {
        munmap(st->maps[i], st->map_sizes[i]);
        free(st->paths[i]);
    }
    if (st->paths) free(st->paths[st->n_files]);
    for (int i = 0; i < st->n_entries; i++) free(st->entries[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->paths);
    free(st->maps);
    free(st->map_sizes);
    free(st->entries);
    free(st->meta);
    free(st);
}

const pn_st_entry *pn_st_find(const pn_safetensors *st, const char *name) {
    if (st->n_entries == 0) return NULL;
    pn_st_entry key;
    memset(&key, 0, sizeof key);
    key.name = (char *)name;
    return bsearch(&key, st->entries, (size_t)st->n_entries, sizeof(pn_st_entry), entry_cmp_name);
}

static const char *st_source(const pn_safetensors *st) { return st->paths[st->n_files]; }

const pn_st_entry *pn_st_get(const pn_safetensors *st, const char *name) {
    const pn_st_entry *e = pn_st_find(st, name);
    if (!e) pn_die_input(st_source(st), "no tensor named '%s'", name);
    return e;
}

const char *pn_st_meta_get(const pn_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}

const char *pn_st_entry_path(const pn_safetensors *st, const pn_st_entry *e) { return st->paths[e->file_index]; }

static int64_t entry_numel(const pn_st_entry *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

static const pn_st_entry *get_float(const pn_safetensors *st, const char *name, int ndim, const int64_t *shape) {
    const pn_st_entry *e = pn_st_get(st, name);
    if (e->dtype != PN_F32 && e->dtype != PN_F64 && e->dtype != PN_BF16 && e->dtype != PN_F16)
        pn_die_input(pn_st_entry_path(st, e), "tensor %s: expected a float tensor (F32, F64, BF16 or F16), found %s",
                     name, pn_dtype_name(e->dtype));
    if (ndim >= 0 && shape) {
        int ok = ndim == e->ndim;
        for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == e->shape[i];
        if (!ok) {
            char want[160], got[160];
            pn_die_input(pn_st_entry_path(st, e), "tensor %s: expected shape %s, found %s", name,
                         pn_shape_str(ndim, shape, want, sizeof want), pn_shape_str(e->ndim, e->shape, got, sizeof got));
        }
    }
    return e;
}

int64_t pn_st_read_f32(const pn_safetensors *st, const char *name, float *dst, int ndim, const int64_t *shape) {
    const pn_st_entry *e = get_float(st, name, ndim, shape);
    int64_t n = entry_numel(e);
    PN_ASSERT(pn_convert_to_f32(dst, e->data, e->dtype, (size_t)n) == 0);
    return n;
}

float *pn_st_load_f32(const pn_safetensors *st, const char *name, int *out_ndim, int64_t *out_shape) {
    const pn_st_entry *e = get_float(st, name, -1, NULL);
    int64_t n = entry_numel(e);
    float *dst = pn_malloc((size_t)n * sizeof(float));
    PN_ASSERT(pn_convert_to_f32(dst, e->data, e->dtype, (size_t)n) == 0);
    if (out_ndim) *out_ndim = e->ndim;
    if (out_shape) memcpy(out_shape, e->shape, (size_t)e->ndim * sizeof(int64_t));
    return dst;
}

int64_t *pn_st_load_i64(const pn_safetensors *st, const char *name, int *out_ndim, int64_t *out_shape) {
    const pn_st_entry *e = pn_st_get(st, name);
    if (e->dtype != PN_I64 && e->dtype != PN_I32)
        pn_die_input(pn_st_entry_path(st, e), "tensor %s: expected an integer tensor (I64 or I32), found %s", name,
                     pn_dtype_name(e->dtype));
    int64_t n = entry_numel(e);
    int64_t *dst = pn_malloc((size_t)n * sizeof(int64_t));
    if (e->dtype == PN_I64) {
        memcpy(dst, e->data, (size_t)n * sizeof(int64_t));
    } else {
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, (const char *)e->data + 4 * i, 4);
            dst[i] = v;
        }
    }
    if (out_ndim) *out_ndim = e->ndim;
    if (out_shape) memcpy(out_shape, e->shape, (size_t)e->ndim * sizeof(int64_t));
    return dst;
}

// ------------------------------------------------------------------ writer

typedef struct {
    char *name;
    pn_dtype dtype;
    int ndim;
    int64_t shape[PN_MAX_DIMS];
    void *data;
    size_t nbytes;
} st_wtensor;

struct pn_st_writer {
    st_wtensor *t;
    int n, cap;
    pn_st_meta *meta;
    int n_meta, cap_meta;
};

pn_st_writer *pn_st_writer_new(void) { return pn_calloc(1, sizeof(pn_st_writer)); }

void pn_st_writer_free(pn_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
}

// Appends a tensor with an uninitialised buffer of the right size.
static st_wtensor *writer_push(pn_st_writer *w, const char *name, pn_dtype dtype, int ndim, const int64_t *shape) {
    PN_ASSERT(name && strcmp(name, "__metadata__") != 0);
    PN_ASSERT(dtype >= 0 && dtype < PN_DTYPE_COUNT);
    PN_ASSERT(ndim >= 0 && ndim <= PN_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) pn_die_internal(__FILE__, __LINE__, "tensor %s added twice", name);
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 32;
        w->t = pn_realloc(w->t, (size_t)w->cap * sizeof(st_wtensor));
    }
    st_wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = pn_strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        PN_ASSERT(shape[i] >= 0);
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->nbytes = numel * pn_dtype_size(dtype);
    t->data = pn_malloc(t->nbytes);
    return t;
}

void pn_st_writer_add(pn_st_writer *w, const char *name, pn_dtype dtype, int ndim, const int64_t *shape,
                      const void *data) {
    st_wtensor *t = writer_push(w, name, dtype, ndim, shape);
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
}

void pn_st_writer_add_f32(pn_st_writer *w, const char *name, pn_dtype dtype, int ndim, const int64_t *shape,
                          const float *data) {
    if (dtype != PN_F32 && dtype != PN_BF16 && dtype != PN_F16 && dtype != PN_F64)
        pn_die_internal(__FILE__, __LINE__, "tensor %s: cannot store f32 data as %s", name, pn_dtype_name(dtype));
    st_wtensor *t = writer_push(w, name, dtype, ndim, shape);
    size_t n = t->nbytes / pn_dtype_size(dtype);
    char *out = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (dtype) {
        case PN_F32: memcpy(out + 4 * i, &data[i], 4); break;
        case PN_F64: {
            double d = data[i];
            memcpy(out + 8 * i, &d, 8);
            break;
        }
        case PN_BF16: {
            uint16_t h = pn_f32_to_bf16(data[i]);
            memcpy(out + 2 * i, &h, 2);
            break;
        }
        default: {
            uint16_t h = pn_f32_to_f16(data[i]);
            memcpy(out + 2 * i, &h, 2);
            break;
        }
        }
    }
}

void pn_st_writer_meta(pn_st_writer *w, const char *key, const char *value) {
    for (int i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = pn_strdup(value);
            return;
        }
    }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? w->cap_meta * 2 : 8;
        w->meta = pn_realloc(w->meta, (size_t)w->cap_meta * sizeof(pn_st_meta));
    }
    w->meta[w->n_meta].key = pn_strdup(key);
    w->meta[w->n_meta].value = pn_strdup(value);
    w->n_meta++;
}

static int wtensor_cmp(const void *a, const void *b) {
    const st_wtensor *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static void json_set(const char *path, json_t *obj, const char *key, json_t *val) {
    // jansson refuses keys that are not valid UTF-8.
    if (json_object_set_new(obj, key, val) != 0) pn_die_input(path, "cannot write key '%s' (not valid UTF-8?)", key);
}

// Writes tensors t[0..n) (already in name order) as one file.
static void write_file(const char *path, const st_wtensor *t, int n, const pn_st_meta *meta, int n_meta) {
    json_t *root = json_object();
    if (n_meta > 0) {
        json_t *m = json_object();
        for (int i = 0; i < n_meta; i++) {
            json_t *s = json_string(meta[i].value);
            if (!s) pn_die_input(path, "metadata value of '%s' is not valid UTF-8", meta[i].key);
            json_set(path, m, meta[i].key, s);
        }
        json_set(path, root, "__metadata__", m);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *e = json_object();
        json_set(path, e, "dtype", json_string(pn_dtype_name(t[i].dtype)));
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++) json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
        json_set(path, e, "shape", shape);
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + t[i].nbytes)));
        json_set(path, e, "data_offsets", offs);
        json_set(path, root, t[i].name, e);
        off += t[i].nbytes;
    }
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    PN_ASSERT(hdr != NULL);
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7;  // 8 + padded is a multiple of 8

    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xff);
    pn_atomic_file af;
    pn_atomic_open(&af, path);
    int bad = fwrite(lenbuf, 1, 8, af.f) != 8;
    bad |= fwrite(hdr, 1, hlen, af.f) != hlen;
    for (size_t i = hlen; i < padded; i++) bad |= fputc(' ', af.f) == EOF;
    for (int i = 0; i < n && !bad; i++)
        if (t[i].nbytes) bad |= fwrite(t[i].data, 1, t[i].nbytes, af.f) != t[i].nbytes;
    free(hdr);
    if (bad) {
        int e = errno;
        pn_atomic_abort(&af);
        pn_die_input(path, "write failed: %s", strerror(e));
    }
    pn_atomic_commit(&af);
}

void pn_st_writer_save(pn_st_writer *w, const char *path) {
    if (w->n > 1) qsort(w->t, (size_t)w->n, sizeof(st_wtensor), wtensor_cmp);
    write_file(path, w->t, w->n, w->meta, w->n_meta);
    pn_st_writer_free(w);
}

void pn_st_writer_save_sharded(pn_st_writer *w, const char *dir, size_t max_shard_bytes) {
    if (w->n > 1) qsort(w->t, (size_t)w->n, sizeof(st_wtensor), wtensor_cmp);
    pn_mkdir_p(dir);
    // Greedy split in name order; a shard is closed when the next tensor would
    // push it past the limit, so a tensor larger than the limit sits alone.
    int *first = pn_malloc(((size_t)w->n + 2) * sizeof(int));
    int n_shards = 0;
    size_t cur = 0;
    for (int i = 0; i < w->n; i++) {
        if (i == 0 || cur + w->t[i].nbytes > max_shard_bytes) {
            first[n_shards++] = i;
            cur = 0;
        }
        cur += w->t[i].nbytes;
    }
    if (n_shards == 0) first[n_shards++] = 0;  // no tensors: one empty shard
    first[n_shards] = w->n;

    json_t *wm = json_object();
    size_t total = 0;
    char index_path[8192];
    pn_path_join(index_path, sizeof index_path, dir, "model.safetensors.index.json");
    for (int s = 0; s < n_shards; s++) {
        char fname[64], full[8192];
        snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        pn_path_join(full, sizeof full, dir, fname);
        write_file(full, w->t + first[s], first[s + 1] - first[s], w->meta, w->n_meta);
        for (int i = first[s]; i < first[s + 1]; i++) {
            json_set(index_path, wm, w->t[i].name, json_string(fname));
            total += w->t[i].nbytes;
        }
    }
    json_t *root = json_object();
    json_t *md = json_object();
    json_set(index_path, md, "total_size", json_integer((json_int_t)total));
    json_set(index_path, root, "metadata", md);
    json_set(index_path, root, "weight_map", wm);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    PN_ASSERT(text != NULL);
    size_t len = strlen(text);
    text = pn_realloc(text, len + 2);
    text[len] = '\n';
    text[len + 1] = 0;
    pn_write_file_atomic(index_path, text, len + 1);
    free(text);
    free(first);
    pn_st_writer_free(w);
}
