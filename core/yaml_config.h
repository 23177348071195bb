// yaml_config.h — YAML files loaded into typed C structs through a schema table.
//
// Design: a config struct is described once, by a static array of field
// descriptors (key, type, offsetof, range, default, required, one-line doc),
// terminated by an entry with key == NULL. The same table drives defaults,
// parsing (libyaml, so every node keeps its line/column), validation, printing
// the resolved config and freeing. Nothing else in the project parses YAML by
// hand, and adding a key is one table line.
//
// Bad input never half-loads: every problem dies through pn_die_input with
// "FILE:LINE:COL: message" (1-based positions) and exit 2 — syntax errors,
// a top level that is not a mapping, unknown keys (with the valid keys and a
// "did you mean"), duplicate keys, wrong types, out-of-range numbers, bad enum
// values and missing required keys.
//
// Storage per type (the struct member at `offset` must have exactly this type):
//   PN_CFG_INT          int            decimal integer
//   PN_CFG_INT64        int64_t        decimal integer
//   PN_CFG_DOUBLE       double         finite decimal number (an integer is fine)
//   PN_CFG_BOOL         bool           only `true` or `false`
//   PN_CFG_STRING       char *         owned, never NULL after load ("" when empty)
//   PN_CFG_ENUM         int            index into the NULL-terminated `values`
//                                      list; the C side declares an enum in the
//                                      same order (the file holds the name)
//   PN_CFG_INT_LIST     pn_cfg_ints    sequence of integers (flow or block)
//   PN_CFG_DOUBLE_LIST  pn_cfg_doubles sequence of numbers
//   PN_CFG_STRING_LIST  pn_cfg_strings sequence of strings
//   PN_CFG_SECTION      a nested struct described by `section`
// Ranges (`PN_CFG_RANGE` etc.) apply to numbers and to every element of a
// numeric list. Defaults are YAML text ("64", "1e-3", "[a, b]") parsed by the
// same code as the file, so a default can never bypass validation; a NULL
// default means zero / false / "" / empty list / the first enum value.
#pragma once
#include "common.h"
#include <stdbool.h>

typedef enum {
    PN_CFG_INT,
    PN_CFG_INT64,
    PN_CFG_DOUBLE,
    PN_CFG_BOOL,
    PN_CFG_STRING,
    PN_CFG_ENUM,
    PN_CFG_INT_LIST,
    PN_CFG_DOUBLE_LIST,
    PN_CFG_STRING_LIST,
    PN_CFG_SECTION,
} pn_cfg_type;

typedef struct {
    int *v;
    int n;
} pn_cfg_ints;

typedef struct {
    double *v;
    int n;
} pn_cfg_doubles;

typedef struct {
    char **v;
    int n;
} pn_cfg_strings;

typedef struct pn_cfg_field {
    const char *key;   // NULL ends a schema
    pn_cfg_type type;
    size_t offset;     // offsetof(struct, member)
    const char *def;   // default as YAML text; NULL = zero value
    const char *doc;   // one line, shown in errors about this key
    // optional (set through the macros below)
    bool required;
    bool has_min, has_max, min_exclusive;
    double min, max;
    const char *const *values;          // PN_CFG_ENUM: NULL-terminated names
    const struct pn_cfg_field *section; // PN_CFG_SECTION: nested schema
} pn_cfg_field;

// Use inside a field initializer after the positional members, e.g.
//   {"k_max", PN_CFG_INT, offsetof(pn_supernet_config, k_max), "2", "doc", PN_CFG_RANGE(0, 1024)}
#define PN_CFG_RANGE(lo, hi) .has_min = true, .min = (lo), .has_max = true, .max = (hi)
#define PN_CFG_MIN(lo) .has_min = true, .min = (lo)
#define PN_CFG_GT(lo) .has_min = true, .min_exclusive = true, .min = (lo)
#define PN_CFG_REQUIRED .required = true
#define PN_CFG_VALUES(list) .values = (list)
#define PN_CFG_NESTED(schema) .section = (schema)
#define PN_CFG_END {NULL}

// Fill every field (recursively) with its default. Strings and lists are
// allocated; previous contents are overwritten without being freed, so call it
// on a fresh struct (or after pn_config_free).
void pn_config_set_defaults(const pn_cfg_field *schema, void *cfg);
// Apply defaults (as above), then parse the YAML file at path over them.
// Dies with exit 2 and "PATH:LINE:COL: message" on any problem.
void pn_config_load(const pn_cfg_field *schema, void *cfg, const char *path);
// Same, from text in memory; `name` stands for the file in messages.
void pn_config_load_string(const pn_cfg_field *schema, void *cfg, const char *text, size_t n, const char *name);
// Print the fully resolved config as YAML: every key, defaults included,
// sections nested. The output parses back to an equal struct.
void pn_config_print(const pn_cfg_field *schema, const void *cfg, FILE *f);
// mkdir -p out_dir, then write out_dir/config.resolved.yaml atomically.
void pn_config_write_resolved(const pn_cfg_field *schema, const void *cfg, const char *out_dir);
// 1 when every field (recursively) is equal; doubles compare exactly.
int pn_config_equal(const pn_cfg_field *schema, const void *a, const void *b);
// Free strings and lists and zero them; the struct itself is the caller's.
void pn_config_free(const pn_cfg_field *schema, void *cfg);
// Name of an enum value for printing ("?" when out of range).
const char *pn_config_enum_name(const char *const *values, int index);
