// yaml_config.c — schema-driven YAML loading (see yaml_config.h).
//
// The file is loaded whole with yaml_parser_load, so every node carries its
// start mark and errors can point at the exact key or value. Walking the node
// tree against the schema is then a plain recursion: mappings are sections,
// scalars are typed values, sequences are lists. Defaults go through the same
// value parser (from their YAML text), so a schema cannot hold a default that
// the file itself could not contain; a bad default is a bug (exit 1).
#include "yaml_config.h"
#include "fileio.h"
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <strings.h>
#include <yaml.h>

typedef struct {
    const char *name;     // file name for messages
    int is_default;       // parsing a schema default: errors are bugs, not input
    yaml_document_t *doc;
} cfg_ctx;

// ---------------------------------------------------------------- errors

static PN_NORETURN void cfg_die_at(const cfg_ctx *cx, size_t line0, size_t col0, const char *fmt, ...)
    PN_PRINTF(4, 5);

static void cfg_die_at(const cfg_ctx *cx, size_t line0, size_t col0, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cx->is_default) pn_die_internal(__FILE__, __LINE__, "bad schema default (%s): %s", cx->name, msg);
    char where[4200];
    snprintf(where, sizeof where, "%s:%zu:%zu", cx->name, line0 + 1, col0 + 1);
    pn_die_input(where, "%s", msg);
}

#define cfg_die(cx, mark, ...) cfg_die_at((cx), (mark).line, (mark).column, __VA_ARGS__)

// ---------------------------------------------------------------- small helpers

static const char *sc_text(const yaml_node_t *nd) { return (const char *)nd->data.scalar.value; }

static int sc_is_plain(const yaml_node_t *nd) { return nd->data.scalar.style == YAML_PLAIN_SCALAR_STYLE; }

static int sc_is_null(const yaml_node_t *nd) {
    if (nd->type != YAML_SCALAR_NODE || !sc_is_plain(nd)) return 0;
    const char *s = sc_text(nd);
    return s[0] == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

// "'abc'", "null", "a list", "a mapping": what the user wrote, for "got ..." messages.
static const char *node_describe(const yaml_node_t *nd, char *buf, size_t n) {
    if (nd->type == YAML_SEQUENCE_NODE) return "a list";
    if (nd->type == YAML_MAPPING_NODE) return "a mapping";
    if (sc_is_null(nd)) return "null (nothing)";
    const char *s = sc_text(nd);
    size_t len = strlen(s);
    if (len > 48)
        snprintf(buf, n, "'%.45s...'", s);
    else
        snprintf(buf, n, "'%s'%s", s, sc_is_plain(nd) ? "" : " (a quoted string)");
    return buf;
}

const char *pn_config_enum_name(const char *const *values, int index) {
    for (int i = 0; values && values[i]; i++)
        if (i == index) return values[i];
    return "?";
}

// Comma-separated list of names into buf (truncated with "..." if it does not fit).
static const char *names_join(const char *const *names, size_t stride, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (const char *const *p = names; *p; p = (const char *const *)((const char *)p + stride)) {
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", *p);
        if (w < 0 || (size_t)w >= n - used) {
            snprintf(buf + (n > 4 ? n - 4 : 0), n > 4 ? 4 : n, "...");
            break;
        }
        used += (size_t)w;
    }
    return buf;
}

// Optimal string alignment distance (Levenshtein + adjacent transposition):
// "k_mxa" is one step from "k_max", which is what a typo usually is.
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 64 || nb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= na; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = PN_MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
            v = PN_MIN(v, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) v = PN_MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    return d[na][nb];
}

// " (did you mean 'x'?)" when one name is within distance 2 (and the word is
// longer than the distance, so "ab" does not "mean" every two-letter key).
static const char *did_you_mean(const char *word, const char *const *names, size_t stride, char *buf, size_t n) {
    int best = 3;
    const char *pick = NULL;
    for (const char *const *p = names; *p; p = (const char *const *)((const char *)p + stride)) {
        int dist = edit_distance(word, *p);
        if (dist < best && dist < (int)strlen(word)) {
            best = dist;
            pick = *p;
        }
    }
    buf[0] = 0;
    if (pick) snprintf(buf, n, " (did you mean '%s'?)", pick);
    return buf;
}

static int schema_len(const pn_cfg_field *schema) {
    int n = 0;
    while (schema[n].key) n++;
    return n;
}

static int schema_all_sections(const pn_cfg_field *schema) {
    for (const pn_cfg_field *f = schema; f->key; f++)
        if (f->type != PN_CFG_SECTION) return 0;
    return 1;
}

// Dotted key path ("supernet.k_max"); schema keys are short, so overflow is a bug.
static void path_join(char *out, size_t n, const char *prefix, const char *key) {
    int w = prefix && prefix[0] ? snprintf(out, n, "%s.%s", prefix, key) : snprintf(out, n, "%s", key);
    if (w < 0 || (size_t)w >= n) pn_die_internal(__FILE__, __LINE__, "config key path too long: %s.%s", prefix ? prefix : "", key);
}

// Numbers as users write them: integers without exponent, others shortest round-trip.
static const char *num_format(double v, char *buf, size_t n) {
    if (isinf(v)) return v > 0 ? "inf" : "-inf";
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, n, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

// ---------------------------------------------------------------- scalar parsing

static int is_int_text(const char *s) {
    if (*s == '+' || *s == '-') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

// [+-]? (digits (. digits?)? | . digits) ([eE] [+-]? digits)?  — no inf/nan/hex.
static int is_float_text(const char *s) {
    int digits = 0;
    if (*s == '+' || *s == '-') s++;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') s++, digits++;
    }
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == 0;
}

// Range check with the field's bounds intersected with the storage type's (tlo, thi).
static void check_range(const cfg_ctx *cx, const pn_cfg_field *f, const yaml_node_t *nd, double v, double tlo,
                        double thi, const char *path) {
    double lo = tlo, hi = thi;
    int lo_excl = 0;
    if (f->has_min && f->min >= lo) {
        lo = f->min;
        lo_excl = f->min_exclusive;
    }
    if (f->has_max && f->max <= hi) hi = f->max;
    int ok = (lo_excl ? v > lo : v >= lo) && v <= hi;
    if (ok) return;
    char a[64], b[64];
    cfg_die(cx, nd->start_mark, "value %s out of range %s%s, %s%s for %s%s%s%s", sc_text(nd),
            isinf(lo) ? "(" : (lo_excl ? "(" : "["), num_format(lo, a, sizeof a), num_format(hi, b, sizeof b),
            isinf(hi) ? ")" : "]", path, f->doc ? " (" : "", f->doc ? f->doc : "", f->doc ? ")" : "");
}

static void type_die(const cfg_ctx *cx, const yaml_node_t *nd, const char *expected, const char *path) {
    char buf[96];
    cfg_die(cx, nd->start_mark, "expected %s for %s, got %s", expected, path, node_describe(nd, buf, sizeof buf));
}

static int64_t parse_int(const cfg_ctx *cx, const pn_cfg_field *f, const yaml_node_t *nd, double tlo, double thi,
                         const char *path) {
    if (nd->type != YAML_SCALAR_NODE || !sc_is_plain(nd) || !is_int_text(sc_text(nd)))
        type_die(cx, nd, "an integer", path);
    errno = 0;
    long long v = strtoll(sc_text(nd), NULL, 10);
    // Past int64: the value as a double is then outside [tlo, thi] and is reported as out of range.
    if (errno == ERANGE) check_range(cx, f, nd, v < 0 ? -INFINITY : INFINITY, tlo, thi, path);
    check_range(cx, f, nd, (double)v, tlo, thi, path);
    return (int64_t)v;
}

static double parse_double(const cfg_ctx *cx, const pn_cfg_field *f, const yaml_node_t *nd, const char *path) {
    if (nd->type != YAML_SCALAR_NODE || !sc_is_plain(nd) || !is_float_text(sc_text(nd)))
        type_die(cx, nd, "a number", path);
    double v = strtod(sc_text(nd), NULL);
    check_range(cx, f, nd, v, -INFINITY, INFINITY, path);
    if (isinf(v)) cfg_die(cx, nd->start_mark, "value %s overflows a double for %s", sc_text(nd), path);
    return v;
}

static bool parse_bool(const cfg_ctx *cx, const yaml_node_t *nd, const char *path) {
    if (nd->type == YAML_SCALAR_NODE && sc_is_plain(nd)) {
        if (!strcmp(sc_text(nd), "true")) return true;
        if (!strcmp(sc_text(nd), "false")) return false;
    }
    type_die(cx, nd, "a boolean (true or false)", path);
    return false;
}

static char *parse_string(const cfg_ctx *cx, const yaml_node_t *nd, const char *path) {
    if (nd->type != YAML_SCALAR_NODE) type_die(cx, nd, "a string", path);
    if (sc_is_null(nd)) cfg_die(cx, nd->start_mark, "expected a string for %s, got null (write \"\" for an empty one)", path);
    if (strlen(sc_text(nd)) != nd->data.scalar.length)
        cfg_die(cx, nd->start_mark, "string for %s contains a NUL character", path);
    return pn_strdup(sc_text(nd));
}

static int parse_enum(const cfg_ctx *cx, const pn_cfg_field *f, const yaml_node_t *nd, const char *path) {
    PN_ASSERT(f->values && f->values[0]);
    if (nd->type == YAML_SCALAR_NODE)
        for (int i = 0; f->values[i]; i++)
            if (!strcmp(sc_text(nd), f->values[i])) return i;
    char got[96], all[1024], hint[128];
    if (nd->type == YAML_SCALAR_NODE)
        did_you_mean(sc_text(nd), f->values, sizeof(f->values[0]), hint, sizeof hint);
    else
        hint[0] = 0;
    cfg_die(cx, nd->start_mark, "bad value %s for %s%s; expected one of: %s", node_describe(nd, got, sizeof got), path,
            hint, names_join(f->values, sizeof(f->values[0]), all, sizeof all));
    return 0;
}

// ---------------------------------------------------------------- values

static void list_free(const pn_cfg_field *f, void *slot) {
    if (f->type == PN_CFG_INT_LIST) {
        pn_cfg_ints *l = slot;
        free(l->v);
        l->v = NULL;
        l->n = 0;
    } else if (f->type == PN_CFG_DOUBLE_LIST) {
        pn_cfg_doubles *l = slot;
        free(l->v);
        l->v = NULL;
        l->n = 0;
    } else if (f->type == PN_CFG_STRING_LIST) {
        pn_cfg_strings *l = slot;
        for (int i = 0; i < l->n; i++) free(l->v[i]);
        free(l->v);
        l->v = NULL;
        l->n = 0;
    }
}

static void parse_list(const cfg_ctx *cx, const pn_cfg_field *f, yaml_node_t *nd, void *slot, const char *path) {
    static const char *what[] = {[PN_CFG_INT_LIST] = "a list of integers",
                                 [PN_CFG_DOUBLE_LIST] = "a list of numbers",
                                 [PN_CFG_STRING_LIST] = "a list of strings"};
    if (nd->type != YAML_SEQUENCE_NODE) type_die(cx, nd, what[f->type], path);
    yaml_node_item_t *it = nd->data.sequence.items.start, *end = nd->data.sequence.items.top;
    int n = (int)(end - it);
    list_free(f, slot);
    void **vp;
    size_t elem;
    if (f->type == PN_CFG_INT_LIST) {
        vp = (void **)&((pn_cfg_ints *)slot)->v;
        elem = sizeof(int);
    } else if (f->type == PN_CFG_DOUBLE_LIST) {
        vp = (void **)&((pn_cfg_doubles *)slot)->v;
        elem = sizeof(double);
    } else {
        vp = (void **)&((pn_cfg_strings *)slot)->v;
        elem = sizeof(char *);
    }
    *vp = n ? pn_calloc((size_t)n, elem) : NULL;
    for (int i = 0; i < n; i++) {
        yaml_node_t *e = yaml_document_get_node(cx->doc, it[i]);
        char epath[320];
        snprintf(epath, sizeof epath, "%s[%d]", path, i);
        if (f->type == PN_CFG_INT_LIST) {
            ((pn_cfg_ints *)slot)->v[i] = (int)parse_int(cx, f, e, INT_MIN, INT_MAX, epath);
            ((pn_cfg_ints *)slot)->n = i + 1;
        } else if (f->type == PN_CFG_DOUBLE_LIST) {
            ((pn_cfg_doubles *)slot)->v[i] = parse_double(cx, f, e, epath);
            ((pn_cfg_doubles *)slot)->n = i + 1;
        } else {
            ((pn_cfg_strings *)slot)->v[i] = parse_string(cx, e, epath);
            ((pn_cfg_strings *)slot)->n = i + 1;
        }
    }
}

static void parse_section(const cfg_ctx *cx, const pn_cfg_field *schema, void *cfg, yaml_node_t *nd,
                          yaml_mark_t where, const char *prefix);

static void parse_value(const cfg_ctx *cx, const pn_cfg_field *f, void *cfg, yaml_node_t *nd, yaml_mark_t key_mark,
                        const char *path) {
    void *slot = (char *)cfg + f->offset;
    switch (f->type) {
    case PN_CFG_INT: *(int *)slot = (int)parse_int(cx, f, nd, INT_MIN, INT_MAX, path); break;
    case PN_CFG_INT64: *(int64_t *)slot = parse_int(cx, f, nd, -9223372036854775808.0, 9223372036854775807.0, path); break;
    case PN_CFG_DOUBLE: *(double *)slot = parse_double(cx, f, nd, path); break;
    case PN_CFG_BOOL: *(bool *)slot = parse_bool(cx, nd, path); break;
    case PN_CFG_STRING: {
        char *s = parse_string(cx, nd, path);
        free(*(char **)slot);
        *(char **)slot = s;
        break;
    }
    case PN_CFG_ENUM: *(int *)slot = parse_enum(cx, f, nd, path); break;
    case PN_CFG_INT_LIST:
    case PN_CFG_DOUBLE_LIST:
    case PN_CFG_STRING_LIST: parse_list(cx, f, nd, slot, path); break;
    case PN_CFG_SECTION: parse_section(cx, f->section, slot, nd, key_mark, path); break;
    }
}

// Required keys that the file did not give, at `where` (the section's key, or
// the top of the file); recurses into sections that are absent altogether.
static void check_required(const cfg_ctx *cx, const pn_cfg_field *f, yaml_mark_t where, const char *prefix) {
    char path[256];
    path_join(path, sizeof path, prefix, f->key);
    if (f->type == PN_CFG_SECTION) {
        for (const pn_cfg_field *g = f->section; g->key; g++) check_required(cx, g, where, path);
        return;
    }
    if (f->required)
        cfg_die(cx, where, "missing required key %s%s%s%s", path, f->doc ? " (" : "", f->doc ? f->doc : "",
                f->doc ? ")" : "");
}

static void parse_section(const cfg_ctx *cx, const pn_cfg_field *schema, void *cfg, yaml_node_t *nd,
                          yaml_mark_t where, const char *prefix) {
    int top = !prefix || !prefix[0];
    int nf = schema_len(schema);
    if (nd && sc_is_null(nd)) nd = NULL;  // "model:" with nothing under it = all defaults
    if (nd && nd->type != YAML_MAPPING_NODE) {
        char buf[96], keys[1024];
        if (top)
            cfg_die(cx, nd->start_mark, "the top level must be a mapping of %s (%s), got %s",
                    schema_all_sections(schema) ? "sections" : "keys",
                    names_join(&schema[0].key, sizeof(pn_cfg_field), keys, sizeof keys),
                    node_describe(nd, buf, sizeof buf));
        cfg_die(cx, nd->start_mark, "expected a mapping for section %s (keys: %s), got %s", prefix,
                names_join(&schema[0].key, sizeof(pn_cfg_field), keys, sizeof keys), node_describe(nd, buf, sizeof buf));
    }
    yaml_node_t **seen = pn_calloc((size_t)nf + 1, sizeof *seen);
    if (nd) {
        for (yaml_node_pair_t *p = nd->data.mapping.pairs.start; p < nd->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(cx->doc, p->key);
            yaml_node_t *v = yaml_document_get_node(cx->doc, p->value);
            if (k->type != YAML_SCALAR_NODE) {
                char buf[96];
                cfg_die(cx, k->start_mark, "expected a key name%s%s, got %s", top ? "" : " in section ",
                        top ? "" : prefix, node_describe(k, buf, sizeof buf));
            }
            const char *key = sc_text(k);
            int idx = -1;
            for (int i = 0; i < nf; i++)
                if (!strcmp(schema[i].key, key)) idx = i;
            if (idx < 0) {
                char keys[1024], hint[128];
                did_you_mean(key, &schema[0].key, sizeof(pn_cfg_field), hint, sizeof hint);
                names_join(&schema[0].key, sizeof(pn_cfg_field), keys, sizeof keys);
                if (top && schema_all_sections(schema))
                    cfg_die(cx, k->start_mark, "unknown section '%s'%s; valid sections: %s", key, hint, keys);
                if (top) cfg_die(cx, k->start_mark, "unknown key '%s' at top level%s; valid keys: %s", key, hint, keys);
                cfg_die(cx, k->start_mark, "unknown key '%s' in section '%s'%s; valid keys: %s", key, prefix, hint,
                        keys);
            }
            char path[256];
            path_join(path, sizeof path, prefix, key);
            if (seen[idx])
                cfg_die(cx, k->start_mark, "duplicate key %s (first given at line %zu)", path,
                        seen[idx]->start_mark.line + 1);
            seen[idx] = k;
            parse_value(cx, &schema[idx], cfg, v, k->start_mark, path);
        }
    }
    for (int i = 0; i < nf; i++)
        if (!seen[i]) check_required(cx, &schema[i], where, prefix);
    free(seen);
}

// ---------------------------------------------------------------- loading

// Line/column of a byte offset, for reader errors (bad UTF-8) that carry no mark.
static void offset_to_mark(const char *text, size_t n, size_t off, yaml_mark_t *m) {
    m->line = 0;
    m->column = 0;
    for (size_t i = 0; i < off && i < n; i++) {
        if (text[i] == '\n') {
            m->line++;
            m->column = 0;
        } else {
            m->column++;
        }
    }
}

static PN_NORETURN void syntax_die(const cfg_ctx *cx, yaml_parser_t *p, const char *text, size_t n) {
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_READER_ERROR) offset_to_mark(text, n, p->problem_offset, &m);
    char ctx[256] = "";
    if (p->context)
        snprintf(ctx, sizeof ctx, " (%s at line %zu, column %zu)", p->context, p->context_mark.line + 1,
                 p->context_mark.column + 1);
    cfg_die_at(cx, m.line, m.column, "YAML syntax error: %s%s", p->problem ? p->problem : "unknown problem", ctx);
}

void pn_config_load_string(const pn_cfg_field *schema, void *cfg, const char *text, size_t n, const char *name) {
    pn_config_set_defaults(schema, cfg);
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    cfg_ctx cx = {.name = name, .is_default = 0, .doc = &doc};
    if (!yaml_parser_initialize(&parser)) pn_die_internal(__FILE__, __LINE__, "yaml_parser_initialize failed");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    if (!yaml_parser_load(&parser, &doc)) syntax_die(&cx, &parser, text, n);
    // A second document would be silently ignored; say so instead.
    if (!yaml_parser_load(&parser, &extra)) syntax_die(&cx, &parser, text, n);
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    if (extra_root)
        cfg_die(&cx, extra.start_mark, "a second YAML document ('---') starts here; a config is one document");
    yaml_document_delete(&extra);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_mark_t where = {0};
    if (root) where = root->start_mark;
    parse_section(&cx, schema, cfg, root, where, "");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

void pn_config_load(const pn_cfg_field *schema, void *cfg, const char *path) {
    size_t n = 0;
    char *text = pn_read_file(path, &n);
    pn_config_load_string(schema, cfg, text, n, path);
    free(text);
}

// ---------------------------------------------------------------- defaults

static void default_set(const pn_cfg_field *f, void *cfg, const char *prefix) {
    char path[256];
    path_join(path, sizeof path, prefix, f->key);
    void *slot = (char *)cfg + f->offset;
    if (f->type == PN_CFG_SECTION) {
        for (const pn_cfg_field *g = f->section; g->key; g++) default_set(g, slot, path);
        return;
    }
    switch (f->type) {
    case PN_CFG_STRING: *(char **)slot = NULL; break;
    case PN_CFG_INT_LIST: *(pn_cfg_ints *)slot = (pn_cfg_ints){0}; break;
    case PN_CFG_DOUBLE_LIST: *(pn_cfg_doubles *)slot = (pn_cfg_doubles){0}; break;
    case PN_CFG_STRING_LIST: *(pn_cfg_strings *)slot = (pn_cfg_strings){0}; break;
    default: break;
    }
    if (!f->def) {
        switch (f->type) {
        case PN_CFG_INT:
        case PN_CFG_ENUM: *(int *)slot = 0; break;
        case PN_CFG_INT64: *(int64_t *)slot = 0; break;
        case PN_CFG_DOUBLE: *(double *)slot = 0; break;
        case PN_CFG_BOOL: *(bool *)slot = false; break;
        case PN_CFG_STRING: *(char **)slot = pn_strdup(""); break;
        default: break;
        }
        return;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    cfg_ctx cx = {.name = path, .is_default = 1, .doc = &doc};
    if (!yaml_parser_initialize(&parser)) pn_die_internal(__FILE__, __LINE__, "yaml_parser_initialize failed");
    yaml_parser_set_input_string(&parser, (const unsigned char *)f->def, strlen(f->def));
    if (!yaml_parser_load(&parser, &doc)) syntax_die(&cx, &parser, f->def, strlen(f->def));
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) pn_die_internal(__FILE__, __LINE__, "empty schema default for %s", path);
    parse_value(&cx, f, cfg, root, root->start_mark, path);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

void pn_config_set_defaults(const pn_cfg_field *schema, void *cfg) {
    for (const pn_cfg_field *f = schema; f->key; f++) default_set(f, cfg, "");
}

// ---------------------------------------------------------------- printing

// Plain scalars are printed bare only when every YAML reader takes them back as
// the same string: a conservative charset, and nothing that looks like a
// number, boolean or null.
static int string_is_plain_safe(const char *s) {
    if (!s[0]) return 0;
    char c0 = s[0];
    if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || (c0 >= '0' && c0 <= '9') || c0 == '_' ||
          c0 == '.' || c0 == '/'))
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '/' || c == '-' || c == '+'))
            return 0;
    }
    if (is_float_text(s)) return 0;
    static const char *words[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", ".inf", ".nan", NULL};
    for (int i = 0; words[i]; i++)
        if (!strcasecmp(s, words[i])) return 0;
    return 1;
}

static void print_string(FILE *f, const char *s) {
    if (string_is_plain_safe(s)) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_double(FILE *f, double v) {
    char buf[64];
    // Shortest text that reads back to the same bits.
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    // "1.0", not "1": other YAML readers then see a float, as the schema says.
    if (is_int_text(buf)) strcat(buf, ".0");
    fputs(buf, f);
}

static void print_fields(const pn_cfg_field *schema, const void *cfg, FILE *f, int indent) {
    for (const pn_cfg_field *fd = schema; fd->key; fd++) {
        const void *slot = (const char *)cfg + fd->offset;
        if (fd->type == PN_CFG_SECTION) {
            if (indent == 0 && fd != schema) fputc('\n', f);
            fprintf(f, "%*s%s:\n", indent, "", fd->key);
            print_fields(fd->section, slot, f, indent + 2);
            continue;
        }
        fprintf(f, "%*s%s: ", indent, "", fd->key);
        switch (fd->type) {
        case PN_CFG_INT: fprintf(f, "%d", *(const int *)slot); break;
        case PN_CFG_INT64: fprintf(f, "%" PRId64, *(const int64_t *)slot); break;
        case PN_CFG_DOUBLE: print_double(f, *(const double *)slot); break;
        case PN_CFG_BOOL: fputs(*(const bool *)slot ? "true" : "false", f); break;
        case PN_CFG_STRING: print_string(f, *(char *const *)slot ? *(char *const *)slot : ""); break;
        case PN_CFG_ENUM: fputs(pn_config_enum_name(fd->values, *(const int *)slot), f); break;
        case PN_CFG_INT_LIST: {
            const pn_cfg_ints *l = slot;
            fputc('[', f);
            for (int i = 0; i < l->n; i++) fprintf(f, "%s%d", i ? ", " : "", l->v[i]);
            fputc(']', f);
            break;
        }
        case PN_CFG_DOUBLE_LIST: {
            const pn_cfg_doubles *l = slot;
            fputc('[', f);
            for (int i = 0; i < l->n; i++) {
                if (i) fputs(", ", f);
                print_double(f, l->v[i]);
            }
            fputc(']', f);
            break;
        }
        case PN_CFG_STRING_LIST: {
            const pn_cfg_strings *l = slot;
            fputc('[', f);
            for (int i = 0; i < l->n; i++) {
                if (i) fputs(", ", f);
                print_string(f, l->v[i]);
            }
            fputc(']', f);
            break;
        }
        case PN_CFG_SECTION: break;
        }
        fputc('\n', f);
    }
}

void pn_config_print(const pn_cfg_field *schema, const void *cfg, FILE *f) {
    fprintf(f, "# resolved config: every key, defaults included\n");
    print_fields(schema, cfg, f, 0);
}

void pn_config_write_resolved(const pn_cfg_field *schema, const void *cfg, const char *out_dir) {
    char path[4096];
    pn_mkdir_p(out_dir);
    pn_path_join(path, sizeof path, out_dir, "config.resolved.yaml");
    pn_atomic_file af;
    pn_atomic_open(&af, path);
    pn_config_print(schema, cfg, af.f);
    pn_atomic_commit(&af);
}

// ---------------------------------------------------------------- equality, free

int pn_config_equal(const pn_cfg_field *schema, const void *a, const void *b) {
    for (const pn_cfg_field *f = schema; f->key; f++) {
        const void *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;
        int eq = 1;
        switch (f->type) {
        case PN_CFG_INT:
        case PN_CFG_ENUM: eq = *(const int *)x == *(const int *)y; break;
        case PN_CFG_INT64: eq = *(const int64_t *)x == *(const int64_t *)y; break;
        case PN_CFG_DOUBLE: eq = *(const double *)x == *(const double *)y; break;
        case PN_CFG_BOOL: eq = *(const bool *)x == *(const bool *)y; break;
        case PN_CFG_STRING: {
            const char *s = *(char *const *)x, *t = *(char *const *)y;
            eq = !strcmp(s ? s : "", t ? t : "");
            break;
        }
        case PN_CFG_INT_LIST: {
            const pn_cfg_ints *l = x, *m = y;
            eq = l->n == m->n;
            for (int i = 0; eq && i < l->n; i++) eq = l->v[i] == m->v[i];
            break;
        }
        case PN_CFG_DOUBLE_LIST: {
            const pn_cfg_doubles *l = x, *m = y;
            eq = l->n == m->n;
            for (int i = 0; eq && i < l->n; i++) eq = l->v[i] == m->v[i];
            break;
        }
        case PN_CFG_STRING_LIST: {
            const pn_cfg_strings *l = x, *m = y;
            eq = l->n == m->n;
            for (int i = 0; eq && i < l->n; i++) eq = !strcmp(l->v[i], m->v[i]);
            break;
        }
        case PN_CFG_SECTION: eq = pn_config_equal(f->section, x, y); break;
        }
        if (!eq) return 0;
    }
    return 1;
}

void pn_config_free(const pn_cfg_field *schema, void *cfg) {
    for (const pn_cfg_field *f = schema; f->key; f++) {
        void *slot = (char *)cfg + f->offset;
        if (f->type == PN_CFG_SECTION)
            pn_config_free(f->section, slot);
        else if (f->type == PN_CFG_STRING) {
            free(*(char **)slot);
            *(char **)slot = NULL;
        } else
            list_free(f, slot);
    }
}
