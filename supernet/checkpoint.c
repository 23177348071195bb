// checkpoint.c — atomic checkpoint directories (protocol and layout in checkpoint.h).
//
// A checkpoint is untrusted input on load: every tensor is matched against the
// live parameter list by name, dtype and shape, in both directions, before any
// live buffer is touched, and state.json is read field by field with a message
// naming the key. Floats are copied as raw F32 bytes (no conversion), which is
// what makes resume bit-identical.
#include "supernet/checkpoint.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_FORMAT "postnas-checkpoint"
#define CKPT_VERSION 1

// ------------------------------------------------------------------ state helpers

void pn_ckpt_state_set(pn_ckpt_state *s, const char *key, const char *value) {
    if (strlen(key) >= PN_CKPT_KEY_MAX || strlen(value) >= PN_CKPT_VALUE_MAX)
        pn_die_internal(__FILE__, __LINE__, "checkpoint extra '%s': key must be < %d and value < %d bytes", key,
                        PN_CKPT_KEY_MAX, PN_CKPT_VALUE_MAX);
    for (int i = 0; i < s->n_extra; i++) {
        if (strcmp(s->extra[i].key, key) == 0) {
            snprintf(s->extra[i].value, PN_CKPT_VALUE_MAX, "%s", value);
            return;
        }
    }
    if (s->n_extra >= PN_CKPT_MAX_EXTRA)
        pn_die_internal(__FILE__, __LINE__, "checkpoint extra '%s': more than %d keys", key, PN_CKPT_MAX_EXTRA);
    snprintf(s->extra[s->n_extra].key, PN_CKPT_KEY_MAX, "%s", key);
    snprintf(s->extra[s->n_extra].value, PN_CKPT_VALUE_MAX, "%s", value);
    s->n_extra++;
}

const char *pn_ckpt_state_get(const pn_ckpt_state *s, const char *key) {
    for (int i = 0; i < s->n_extra; i++)
        if (strcmp(s->extra[i].key, key) == 0) return s->extra[i].value;
    return NULL;
}

// ------------------------------------------------------------------ base64 (RFC 4648, padded)

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(const uint8_t *src, int n, char *out) {
    int o = 0;
    for (int i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)src[i] << 16;
        if (i + 1 < n) x |= (uint32_t)src[i + 1] << 8;
        if (i + 2 < n) x |= src[i + 2];
        out[o++] = B64[(x >> 18) & 63];
        out[o++] = B64[(x >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(x >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? B64[x & 63] : '=';
    }
    out[o] = 0;
}

static int b64_value(char c) {
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

// Returns the decoded length, or -1 if `s` is not padded base64 of at most `cap` bytes.
static int b64_decode(const char *s, uint8_t *out, int cap) {
    size_t len = strlen(s);
    if (len % 4 != 0) return -1;
    int o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int pad = 0;
        if (last && s[i + 3] == '=') pad = s[i + 2] == '=' ? 2 : 1;
        uint32_t x = 0;
        for (int k = 0; k < 4; k++) {
            int v = 0;
            if (k < 4 - pad) {
                v = b64_value(s[i + k]);
                if (v < 0) return -1;
            }
            x = (x << 6) | (uint32_t)v;
        }
        for (int k = 0; k < 3 - pad; k++) {
            if (o >= cap) return -1;
            out[o++] = (uint8_t)(x >> (16 - 8 * k));
        }
    }
    return o;
}

// ------------------------------------------------------------------ filesystem helpers

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

// rm -rf; a missing path is fine.
static void rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        pn_die_input(path, "cannot remove directory: %s", strerror(errno));
}

// Makes a rename or a file creation inside `dir` durable.
static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) pn_die_input(dir, "cannot open directory to sync it: %s", strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) pn_die_input(dir, "cannot sync directory: %s", strerror(e));
}

static void parent_dir(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", path);
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '/') out[--l] = 0;  // "a/b/" names the same directory as "a/b"
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == out)
        out[1] = 0;
    else
        *slash = 0;
}

// ------------------------------------------------------------------ save

const char *pn_checkpoint_path(char *out, size_t n, const char *run_dir, int64_t step) {
    char name[64];
    snprintf(name, sizeof name, "ckpt/step_%06lld", (long long)step);
    return pn_path_join(out, n, run_dir, name);
}

static void check_unique_names(const pn_param_ref *refs, int n_refs) {
    for (int i = 0; i < n_refs; i++) {
        PN_ASSERT(refs[i].name && refs[i].name[0] && strlen(refs[i].name) < 500);  // "m." + name fits name[600]
        for (int j = 0; j < i; j++)
            if (strcmp(refs[i].name, refs[j].name) == 0)
                pn_die_internal(__FILE__, __LINE__, "parameter name '%s' appears twice in the list", refs[i].name);
    }
}

static char *state_to_json(const pn_ckpt_state *s) {
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string(CKPT_FORMAT));
    json_object_set_new(root, "version", json_integer(CKPT_VERSION));
    json_object_set_new(root, "step", json_integer((json_int_t)s->step));
    char buf[32];
    json_t *rng = json_object();
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->rng.seed);
    json_object_set_new(rng, "seed", json_string(buf));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->rng.stream);
    json_object_set_new(rng, "stream", json_string(buf));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->rng.counter);
    json_object_set_new(rng, "counter", json_string(buf));
    json_object_set_new(root, "rng", rng);
    PN_ASSERT(s->loader_len >= 0 && s->loader_len <= PN_CKPT_BLOB_MAX);
    char b64[4 * ((PN_CKPT_BLOB_MAX + 2) / 3) + 1];
    b64_encode(s->loader, s->loader_len, b64);
    json_object_set_new(root, "loader", json_string(b64));
    json_object_set_new(root, "loader_bytes", json_integer(s->loader_len));
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)s->config_hash);
    json_object_set_new(root, "config_hash", json_string(buf));
    json_t *extra = json_object();
    PN_ASSERT(s->n_extra >= 0 && s->n_extra <= PN_CKPT_MAX_EXTRA);
    for (int i = 0; i < s->n_extra; i++) {
        json_t *v = json_string(s->extra[i].value);
        if (!v || json_object_set_new(extra, s->extra[i].key, v) != 0)
            pn_die_internal(__FILE__, __LINE__, "checkpoint extra '%s' is not valid UTF-8", s->extra[i].key);
    }
    json_object_set_new(root, "extra", extra);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    PN_ASSERT(text != NULL);
    return text;
}

void pn_checkpoint_save(const char *dir, const pn_param_ref *refs, int n_refs, const pn_adamw *opt,
                        const pn_ckpt_state *state) {
    PN_ASSERT(opt && state && opt->n_params == n_refs);
    check_unique_names(refs, n_refs);
    char parent[4096], tmp[4300], old[4300], path[4400];
    parent_dir(dir, parent, sizeof parent);
    pn_mkdir_p(parent);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
    rm_rf(tmp);  // a leftover of an earlier process that had our PID
    if (mkdir(tmp, 0755) != 0) pn_die_input(tmp, "cannot create checkpoint directory: %s", strerror(errno));

    // 1. all files into DIR.tmp.PID, state.json last
    pn_st_writer *wm = pn_st_writer_new();
    pn_st_writer *wo = pn_st_writer_new();
    for (int i = 0; i < n_refs; i++) {
        const pn_param_ref *r = &refs[i];
        PN_ASSERT(r->n == opt->offset[i + 1] - opt->offset[i]);
        int64_t shape[4];
        int nd = pn_param_ref_shape(r, shape);
        char name[600];
        pn_st_writer_add(wm, r->name, PN_F32, nd, shape, r->w);
        snprintf(name, sizeof name, "m.%s", r->name);
        pn_st_writer_add(wo, name, PN_F32, nd, shape, opt->m + opt->offset[i]);
        snprintf(name, sizeof name, "v.%s", r->name);
        pn_st_writer_add(wo, name, PN_F32, nd, shape, opt->v + opt->offset[i]);
    }
    int64_t one = 1;
    pn_st_writer_add(wo, "step", PN_I64, 1, &one, &opt->t);
    char buf[64];
    pn_st_writer_meta(wo, "format", CKPT_FORMAT);
    snprintf(buf, sizeof buf, "%.9g", (double)opt->lr);
    pn_st_writer_meta(wo, "lr", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)opt->beta1);
    pn_st_writer_meta(wo, "beta1", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)opt->beta2);
    pn_st_writer_meta(wo, "beta2", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)opt->eps);
    pn_st_writer_meta(wo, "eps", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)opt->weight_decay);
    pn_st_writer_meta(wo, "weight_decay", buf);
    pn_st_writer_meta(wm, "format", CKPT_FORMAT);
    pn_st_writer_save(wm, pn_path_join(path, sizeof path, tmp, "model.safetensors"));
    pn_st_writer_save(wo, pn_path_join(path, sizeof path, tmp, "optim.safetensors"));
    char *text = state_to_json(state);
    pn_write_file_atomic(pn_path_join(path, sizeof path, tmp, "state.json"), text, strlen(text));
    free(text);
    fsync_dir(tmp);

    // 2. the previous DIR aside; 3. the new one in; 4. the old one away
    int had_old = 0;
    if (pn_file_exists(dir)) {
        rm_rf(old);
        if (rename(dir, old) != 0) pn_die_input(dir, "cannot move the previous checkpoint aside: %s", strerror(errno));
        had_old = 1;
    }
    if (rename(tmp, dir) != 0) pn_die_input(dir, "cannot rename %s into place: %s", tmp, strerror(errno));
    fsync_dir(parent);
    if (had_old) rm_rf(old);
}

// ------------------------------------------------------------------ load

// The tensor `name` of `st` must exist as F32 with exactly the live shape.
static const pn_st_entry *expect_tensor(const pn_safetensors *st, const char *file, const char *name,
                                        const char *param, int nd, const int64_t *shape) {
    char want[160], got[160];
    const pn_st_entry *e = pn_st_find(st, name);
    if (!e)
        pn_die_input(file, "tensor %s is missing (the live model has parameter %s of shape %s)", name, param,
                     pn_shape_str(nd, shape, want, sizeof want));
    if (e->dtype != PN_F32)
        pn_die_input(file, "tensor %s: expected dtype F32 (checkpoints are fp32), found %s", name,
                     pn_dtype_name(e->dtype));
    int ok = e->ndim == nd;
    for (int d = 0; ok && d < nd; d++) ok = e->shape[d] == shape[d];
    if (!ok)
        pn_die_input(file, "tensor %s: shape %s does not match the live parameter %s of shape %s", name,
                     pn_shape_str(e->ndim, e->shape, got, sizeof got), param, pn_shape_str(nd, shape, want, sizeof want));
    return e;
}

// Names the first tensor of `st` that no live parameter accounts for.
static void die_unexpected(const pn_safetensors *st, const char *file, const pn_param_ref *refs, int n_refs,
                           int optim) {
    for (int i = 0; i < st->n_entries; i++) {
        const char *name = st->entries[i].name;
        const char *base = name;
        if (optim) {
            if (strcmp(name, "step") == 0) continue;
            if (strncmp(name, "m.", 2) == 0 || strncmp(name, "v.", 2) == 0) base = name + 2;
            else base = NULL;
        }
        int found = 0;
        for (int j = 0; base && j < n_refs && !found; j++) found = strcmp(base, refs[j].name) == 0;
        if (!found)
            pn_die_input(file, "tensor %s has no matching live parameter (the checkpoint was written for a different "
                         "model or supernet configuration)", name);
    }
    pn_die_input(file, "holds %d tensors, expected %d", st->n_entries, optim ? 2 * n_refs + 1 : n_refs);
}

static pn_safetensors *open_part(const char *dir, const char *name, char *path, size_t n) {
    pn_path_join(path, n, dir, name);
    if (!pn_file_exists(path)) pn_die_input(path, "missing: an incomplete or damaged checkpoint directory");
    return pn_st_open(path);
}

static uint64_t json_u64_string(const char *file, const char *key, const json_t *v) {
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || !s[0] || strlen(s) > 20 || strspn(s, "0123456789") != strlen(s))
        pn_die_input(file, "key \"%s\": expected a decimal unsigned 64-bit integer as a string", key);
    errno = 0;
    unsigned long long x = strtoull(s, NULL, 10);
    if (errno == ERANGE) pn_die_input(file, "key \"%s\": %s does not fit in 64 bits", key, s);
    return (uint64_t)x;
}

static const json_t *json_need(const char *file, const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    if (!v) pn_die_input(file, "missing key \"%s\"", key);
    return v;
}

static void state_from_json(const char *file, pn_ckpt_state *s) {
    size_t len = 0;
    char *text = pn_read_file(file, &len);
    json_error_t err;
    json_t *root = json_loadb(text, len, 0, &err);
    free(text);
    if (!root) pn_die_input(file, "not valid JSON (line %d, column %d): %s", err.line, err.column, err.text);
    if (!json_is_object(root)) pn_die_input(file, "expected a JSON object");
    const json_t *v = json_need(file, root, "format");
    if (!json_is_string(v) || strcmp(json_string_value(v), CKPT_FORMAT) != 0)
        pn_die_input(file, "key \"format\": expected \"%s\"", CKPT_FORMAT);
    v = json_need(file, root, "version");
    if (!json_is_integer(v) || json_integer_value(v) != CKPT_VERSION)
        pn_die_input(file, "key \"version\": expected %d", CKPT_VERSION);
    memset(s, 0, sizeof *s);
    v = json_need(file, root, "step");
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        pn_die_input(file, "key \"step\": expected a non-negative integer");
    s->step = (int64_t)json_integer_value(v);

    const json_t *rng = json_need(file, root, "rng");
    if (!json_is_object(rng)) pn_die_input(file, "key \"rng\": expected an object {seed, stream, counter}");
    s->rng.seed = json_u64_string(file, "rng.seed", json_need(file, rng, "seed"));
    s->rng.stream = json_u64_string(file, "rng.stream", json_need(file, rng, "stream"));
    s->rng.counter = json_u64_string(file, "rng.counter", json_need(file, rng, "counter"));

    v = json_need(file, root, "loader_bytes");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > PN_CKPT_BLOB_MAX)
        pn_die_input(file, "key \"loader_bytes\": expected an integer in [0, %d]", PN_CKPT_BLOB_MAX);
    int want = (int)json_integer_value(v);
    v = json_need(file, root, "loader");
    int got = json_is_string(v) ? b64_decode(json_string_value(v), s->loader, PN_CKPT_BLOB_MAX) : -1;
    if (got < 0) pn_die_input(file, "key \"loader\": expected padded base64 of at most %d bytes", PN_CKPT_BLOB_MAX);
    if (got != want) pn_die_input(file, "key \"loader\": decodes to %d bytes but \"loader_bytes\" is %d", got, want);
    s->loader_len = got;

    v = json_need(file, root, "config_hash");
    const char *h = json_is_string(v) ? json_string_value(v) : "";
    if (strlen(h) != 16 || strspn(h, "0123456789abcdef") != 16)
        pn_die_input(file, "key \"config_hash\": expected 16 lowercase hex digits");
    s->config_hash = (uint64_t)strtoull(h, NULL, 16);

    const json_t *extra = json_need(file, root, "extra");
    if (!json_is_object(extra)) pn_die_input(file, "key \"extra\": expected an object of string -> string");
    if (json_object_size(extra) > PN_CKPT_MAX_EXTRA)
        pn_die_input(file, "key \"extra\": %zu entries, at most %d", json_object_size(extra), PN_CKPT_MAX_EXTRA);
    const char *k;
    json_t *ev;
    json_object_foreach((json_t *)extra, k, ev) {
        if (!json_is_string(ev)) pn_die_input(file, "key \"extra.%s\": expected a string", k);
        if (strlen(k) >= PN_CKPT_KEY_MAX || strlen(json_string_value(ev)) >= PN_CKPT_VALUE_MAX)
            pn_die_input(file, "key \"extra.%s\": key must be < %d and value < %d bytes", k, PN_CKPT_KEY_MAX,
                         PN_CKPT_VALUE_MAX);
        pn_ckpt_state_set(s, k, json_string_value(ev));
    }
    json_decref(root);
}

void pn_checkpoint_load(const char *dir, const pn_param_ref *refs, int n_refs, pn_adamw *opt, pn_ckpt_state *state) {
    check_unique_names(refs, n_refs);
    if (!pn_is_dir(dir)) pn_die_input(dir, "not a checkpoint directory (expected model.safetensors, optim.safetensors, state.json)");
    char mpath[4400], opath[4400], spath[4400];
    pn_safetensors *sm = open_part(dir, "model.safetensors", mpath, sizeof mpath);
    pn_safetensors *so = open_part(dir, "optim.safetensors", opath, sizeof opath);
    pn_path_join(spath, sizeof spath, dir, "state.json");
    if (!pn_file_exists(spath)) pn_die_input(spath, "missing: an incomplete or damaged checkpoint directory");

    // Verify everything first, then copy: a bad checkpoint never half-overwrites live state.
    const pn_st_entry **ew = pn_malloc(((size_t)n_refs + 1) * sizeof *ew);
    const pn_st_entry **em = pn_malloc(((size_t)n_refs + 1) * sizeof *em);
    const pn_st_entry **ev = pn_malloc(((size_t)n_refs + 1) * sizeof *ev);
    char name[600];
    for (int i = 0; i < n_refs; i++) {
        int nd;
        int64_t shape[4];
        const char *p = refs[i].name;
        nd = pn_param_ref_shape(&refs[i], shape);
        ew[i] = expect_tensor(sm, mpath, p, p, nd, shape);
        snprintf(name, sizeof name, "m.%s", p);
        em[i] = expect_tensor(so, opath, name, p, nd, shape);
        snprintf(name, sizeof name, "v.%s", p);
        ev[i] = expect_tensor(so, opath, name, p, nd, shape);
    }
    if (sm->n_entries != n_refs) die_unexpected(sm, mpath, refs, n_refs, 0);
    if (so->n_entries != 2 * n_refs + 1) die_unexpected(so, opath, refs, n_refs, 1);
    const pn_st_entry *es = pn_st_find(so, "step");
    if (!es) pn_die_input(opath, "tensor step is missing (expected I64 [1], the AdamW step count)");
    if (es->dtype != PN_I64 || es->ndim != 1 || es->shape[0] != 1)
        pn_die_input(opath, "tensor step: expected I64 of shape [1]");
    int64_t t;
    memcpy(&t, es->data, sizeof t);
    if (t < 0) pn_die_input(opath, "tensor step: %lld is negative", (long long)t);
    pn_ckpt_state st;
    state_from_json(spath, &st);
    if (opt) {
        PN_ASSERT(opt->n_params == n_refs);
        for (int i = 0; i < n_refs; i++) PN_ASSERT(opt->offset[i + 1] - opt->offset[i] == refs[i].n);
    }

    for (int i = 0; i < n_refs; i++) {
        size_t nb = (size_t)refs[i].n * sizeof(float);
        PN_ASSERT(ew[i]->nbytes == nb && em[i]->nbytes == nb && ev[i]->nbytes == nb);
        if (nb) memcpy(refs[i].w, ew[i]->data, nb);
        if (opt && nb) {
            memcpy(opt->m + opt->offset[i], em[i]->data, nb);
            memcpy(opt->v + opt->offset[i], ev[i]->data, nb);
        }
    }
    if (opt) opt->t = t;
    if (state) *state = st;
    free(ew);
    free(em);
    free(ev);
    pn_st_close(sm);
    pn_st_close(so);
}

// ------------------------------------------------------------------ latest

// "step_DIGITS" -> 0, "step_DIGITS.old.DIGITS" -> 1, anything else -> -1.
static int parse_ckpt_name(const char *s, int64_t *step) {
    if (strncmp(s, "step_", 5) != 0) return -1;
    s += 5;
    size_t nd = strspn(s, "0123456789");
    if (nd == 0 || nd > 18) return -1;
    *step = (int64_t)strtoll(s, NULL, 10);
    s += nd;
    if (*s == 0) return 0;
    if (strncmp(s, ".old.", 5) != 0) return -1;
    s += 5;
    size_t np = strspn(s, "0123456789");
    return np > 0 && s[np] == 0 ? 1 : -1;
}

static int ckpt_complete(const char *path) {
    static const char *files[] = {"model.safetensors", "optim.safetensors", "state.json"};
    char f[4400];
    struct stat sb;
    if (!pn_is_dir(path)) return 0;
    for (size_t i = 0; i < PN_ARRAY_LEN(files); i++)
        if (stat(pn_path_join(f, sizeof f, path, files[i]), &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    return 1;
}

int64_t pn_checkpoint_latest(const char *run_dir, char *out, size_t n) {
    char ck[4096], path[4400];
    pn_path_join(ck, sizeof ck, run_dir, "ckpt");
    if (n) out[0] = 0;
    DIR *d = opendir(ck);
    if (!d) return -1;
    int64_t best = -1;
    int best_old = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int64_t step;
        int kind = parse_ckpt_name(de->d_name, &step);
        if (kind < 0) continue;
        // An exact name beats a .old fallback of the same step.
        if (step < best || (step == best && (kind == 1 || !best_old))) continue;
        pn_path_join(path, sizeof path, ck, de->d_name);
        if (!ckpt_complete(path)) continue;
        if (kind == 1) {
            char exact[4400];
            snprintf(exact, sizeof exact, "%s", path);
            *strstr(exact + strlen(ck), ".old.") = 0;
            if (pn_file_exists(exact)) continue;
        }
        best = step;
        best_old = kind == 1;
        snprintf(out, n, "%s", path);
    }
    closedir(d);
    return best;
}
