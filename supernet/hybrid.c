// hybrid.c — see hybrid.h.
//
// One key table drives every place dims are named (config.json's
// efficient_attention_config, architecture.yaml, `--set`): each key says which
// pn_block_cfg field it fills and which layer types have it, so a key that does
// not belong to a type is refused instead of silently ignored. Reading a
// jet_nemotron config reuses the plain HF parser on a copy of the JSON with the
// base model type and without the hybrid keys, so the base's rules (RoPE,
// activation, biases) are checked in exactly one place.
#include "supernet/hybrid.h"
#include "supernet/model_init.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "core/yaml_config.h"
#include <jansson.h>
#include <math.h>
#include <stddef.h>

// ---------------------------------------------------------------- layer types

enum {
    T_ATTN = 1u << 0,
    T_SWA = 1u << 1,
    T_JET = 1u << 2,
    T_GDN = 1u << 3,
    T_DN = 1u << 4,
    T_GLA = 1u << 5,
    T_RET = 1u << 6,
    T_M2 = 1u << 7,
    T_RWKV = 1u << 8,
    T_OTHER = 1u << 9,  // a block registered later: the generic keys only
};
#define T_LIN (T_JET | T_GDN | T_DN | T_GLA | T_RET | T_M2 | T_RWKV | T_OTHER)

typedef struct {
    const char *name;   // Jet-Nemotron layer_types value
    const char *block;  // our block type
    unsigned bit;
} hy_type;

static const hy_type g_types[] = {
    {"attn", "attn", T_ATTN},         {"swa", "swa", T_SWA},        {"jet", "jetblock", T_JET},
    {"gated_deltanet", "gated_deltanet", T_GDN}, {"deltanet", "deltanet", T_DN}, {"gla", "gla", T_GLA},
    {"retnet", "retnet", T_RET},      {"mamba2", "mamba2", T_M2},   {"rwkv7", "rwkv7", T_RWKV},
};

static unsigned type_bit(const pn_block_type *t) {
    for (size_t i = 0; i < PN_ARRAY_LEN(g_types); i++)
        if (strcmp(g_types[i].block, t->name) == 0) return g_types[i].bit;
    return T_OTHER;
}

int pn_hybrid_type_index(const pn_block_type *t) {
    PN_ASSERT(pn_block_type_count() <= PN_HYBRID_MAX_TYPES);
    for (int i = 0; i < pn_block_type_count(); i++)
        if (strcmp(pn_block_type_at(i)->name, t->name) == 0) return i;
    pn_die_internal(__FILE__, __LINE__, "block type '%s' is not registered", t->name);
}

const char *pn_hybrid_type_name(const pn_block_type *t) {
    for (size_t i = 0; i < PN_ARRAY_LEN(g_types); i++)
        if (strcmp(g_types[i].block, t->name) == 0) return g_types[i].name;
    return t->name;
}

const pn_block_type *pn_hybrid_type_find(const char *name) {
    for (size_t i = 0; i < PN_ARRAY_LEN(g_types); i++)
        if (strcmp(g_types[i].name, name) == 0) return pn_block_type_find(g_types[i].block);
    return pn_block_type_find(name);
}

static int is_attn_like(const pn_block_type *t) { return (type_bit(t) & (T_ATTN | T_SWA)) != 0; }

// "attn, swa, jet, ..." for messages.
static const char *known_types(void) {
    static char buf[512];
    buf[0] = 0;
    for (int i = 0; i < pn_block_type_count(); i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "", pn_hybrid_type_name(pn_block_type_at(i)));
    }
    return buf;
}

// ---------------------------------------------------------------- dim keys

enum { K_INT, K_EPS, K_EXPAND_V };

typedef struct {
    const char *key;
    size_t off;     // into pn_block_cfg
    int kind;
    unsigned types;
    int json;       // written to / read from efficient_attention_config
    int yaml;       // written to / read from architecture.yaml and --set
} hy_key;

#define OFF(m) offsetof(pn_block_cfg, m)
static const hy_key g_keys[] = {
    {"num_heads", OFF(H), K_INT, T_LIN, 1, 1},
    {"head_dim", OFF(K), K_INT, T_LIN, 1, 1},
    {"expand_v", OFF(V), K_EXPAND_V, T_LIN & ~(T_M2 | T_RWKV), 1, 0},
    {"head_v_dim", OFF(V), K_INT, T_LIN & ~(T_M2 | T_RWKV), 0, 1},
    {"conv_size", OFF(conv_size), K_INT, T_JET | T_GDN | T_DN | T_M2 | T_OTHER, 1, 1},
    {"dconv_generator_reduction", OFF(gen_reduction), K_INT, T_JET, 1, 1},
    {"n_groups", OFF(n_groups), K_INT, T_M2, 1, 1},
    {"state_size", OFF(d_state), K_INT, T_M2, 1, 1},
    {"expand", OFF(expand), K_INT, T_M2, 1, 1},
    {"decay_low_rank_dim", OFF(lora_w), K_INT, T_RWKV, 1, 1},
    {"a_low_rank_dim", OFF(lora_a), K_INT, T_RWKV, 1, 1},
    {"v_low_rank_dim", OFF(lora_v), K_INT, T_RWKV, 1, 1},
    {"gate_low_rank_dim", OFF(lora_g), K_INT, T_RWKV, 1, 1},
    {"norm_eps", OFF(norm_eps), K_EPS, T_LIN, 1, 1},
    {"window_size", OFF(window), K_INT, T_SWA, 1, 1},
};
#undef OFF

static int *key_int(pn_block_cfg *c, const hy_key *k) { return (int *)((char *)c + k->off); }
static float *key_float(pn_block_cfg *c, const hy_key *k) { return (float *)((char *)c + k->off); }

static const hy_key *key_find(const char *key, unsigned bit, int json) {
    for (size_t i = 0; i < PN_ARRAY_LEN(g_keys); i++)
        if ((g_keys[i].types & bit) && (json ? g_keys[i].json : g_keys[i].yaml) && strcmp(g_keys[i].key, key) == 0)
            return &g_keys[i];
    return NULL;
}

static const char *keys_of(unsigned bit, int json) {
    static char buf[512];
    buf[0] = 0;
    for (size_t i = 0; i < PN_ARRAY_LEN(g_keys); i++) {
        if (!(g_keys[i].types & bit) || !(json ? g_keys[i].json : g_keys[i].yaml)) continue;
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "", g_keys[i].key);
    }
    if (json && bit == T_JET) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, ", mode, dconv_implementation");
    }
    return buf;
}

// A float as the shortest decimal that reads back to the same float (1e-05, not 9.99999974737875e-06).
static double float_short(float f) {
    char s[32];
    snprintf(s, sizeof s, "%.7g", (double)f);
    double d = strtod(s, NULL);
    for (int p = 1; p <= 9; p++) {
        snprintf(s, sizeof s, "%.*g", p, (double)f);
        if ((float)strtod(s, NULL) == f) return strtod(s, NULL);
    }
    return d;
}

void pn_hybrid_dims_set(pn_hybrid_layout *lay, const pn_block_type *t, const char *key, const char *value,
                        const char *where) {
    const unsigned bit = type_bit(t);
    if (bit == T_ATTN) pn_die_input(where, "attn layers take their dims from the base model's config, not '%s'", key);
    const hy_key *k = key_find(key, bit, 0);
    if (!k) pn_die_input(where, "'%s' is not a dim of layer type %s (known: %s)", key, pn_hybrid_type_name(t), keys_of(bit, 0));
    pn_block_cfg *c = &lay->dims[pn_hybrid_type_index(t)];
    char *end = NULL;
    if (k->kind == K_EPS) {
        double x = strtod(value, &end);
        if (end == value || *end || !(x > 0) || !isfinite(x))
            pn_die_input(where, "%s.%s: expected a positive number, got '%s'", pn_hybrid_type_name(t), key, value);
        *key_float(c, k) = (float)x;
    } else {
        long long x = strtoll(value, &end, 10);
        if (end == value || *end || x < 1 || x > (1 << 24))
            pn_die_input(where, "%s.%s: expected an integer >= 1, got '%s'", pn_hybrid_type_name(t), key, value);
        *key_int(c, k) = (int)x;
    }
}

// ---------------------------------------------------------------- layouts

void pn_hybrid_layout_init(pn_hybrid_layout *lay, int n_layers) {
    memset(lay, 0, sizeof(*lay));
    PN_ASSERT(n_layers >= 0 && n_layers <= PN_HYBRID_MAX_LAYERS);
    lay->n_layers = n_layers;
    const pn_block_type *attn = pn_block_type_find("attn");
    PN_ASSERT(attn != NULL);
    for (int l = 0; l < n_layers; l++) lay->type[l] = attn;
}

int pn_hybrid_layout_is_hybrid(const pn_hybrid_layout *lay) {
    for (int l = 0; l < lay->n_layers; l++)
        if (type_bit(lay->type[l]) != T_ATTN) return 1;
    return 0;
}

void pn_hybrid_layer_cfg(const pn_hf_config *base, const pn_hybrid_layout *lay, int l, pn_block_cfg *out) {
    PN_ASSERT(l >= 0 && l < lay->n_layers && lay->type[l]);
    const pn_block_type *t = lay->type[l];
    memset(out, 0, sizeof(*out));
    if (is_attn_like(t)) {
        out->H = base->num_attention_heads;
        out->H_kv = base->num_key_value_heads;
        out->K = base->head_dim;
        out->qkv_bias = base->qkv_bias;
        out->o_bias = base->o_bias;
        out->qk_norm = base->qk_norm;
        out->rope_theta = (float)base->rope_theta;
        out->norm_eps = (float)base->rms_norm_eps;
        if (type_bit(t) == T_SWA) out->window = lay->dims[pn_hybrid_type_index(t)].window;
    } else {
        *out = lay->dims[pn_hybrid_type_index(t)];
        out->first_rwkv = 0;
        if (type_bit(t) == T_RWKV) {
            int first = 1;
            for (int j = 0; j < l; j++) first = first && type_bit(lay->type[j]) != T_RWKV;
            out->first_rwkv = first;
        }
    }
    out->C = base->hidden_size;
    out->layer_idx = l;
}

void pn_hybrid_setup_blocks(const pn_hf_config *base, const pn_hybrid_layout *lay, pn_block *blocks) {
    for (int l = 0; l < lay->n_layers; l++) {
        pn_block_cfg c;
        pn_hybrid_layer_cfg(base, lay, l, &c);
        pn_block_setup(&blocks[l], lay->type[l], &c);
    }
}

pn_hybrid_state_bytes pn_hybrid_state_bytes_at(const pn_hf_config *base, const pn_hybrid_layout *lay, int64_t L,
                                               int kv_bytes, int rec_bytes) {
    pn_hybrid_state_bytes s = {0, 0, 0};
    pn_block *b = pn_malloc(sizeof(pn_block));
    for (int l = 0; l < lay->n_layers; l++) {
        pn_block_cfg c;
        pn_hybrid_layer_cfg(base, lay, l, &c);
        pn_block_setup(b, lay->type[l], &c);
        int64_t n = pn_block_state_bytes(b, L, kv_bytes, rec_bytes, 0);
        unsigned bit = type_bit(lay->type[l]);
        if (bit == T_ATTN)
            s.attn += n;
        else if (bit == T_SWA)
            s.swa += n;
        else
            s.linear += n;
    }
    free(b);
    return s;
}

// A block's dims with the per-layer fields cleared, for comparing layers.
static pn_block_cfg dims_key(const pn_block_cfg *c) {
    pn_block_cfg k = *c;
    k.layer_idx = 0;
    k.first_rwkv = 0;
    return k;
}

// Resolved dims of the first layer of each used type.
static void resolved_dims(const pn_hf_config *base, const pn_hybrid_layout *lay, pn_block_cfg *res, int *used) {
    memset(used, 0, PN_HYBRID_MAX_TYPES * sizeof(int));
    pn_block *b = pn_malloc(sizeof(pn_block));
    for (int l = 0; l < lay->n_layers; l++) {
        int ti = pn_hybrid_type_index(lay->type[l]);
        if (used[ti]) continue;
        pn_block_cfg c;
        pn_hybrid_layer_cfg(base, lay, l, &c);
        pn_block_setup(b, lay->type[l], &c);
        res[ti] = dims_key(&b->cfg);
        used[ti] = 1;
    }
    free(b);
}

int pn_hybrid_layout_equal(const pn_hf_config *base, const pn_hybrid_layout *a, const pn_hybrid_layout *b) {
    if (a->n_layers != b->n_layers) return 0;
    for (int l = 0; l < a->n_layers; l++)
        if (strcmp(a->type[l]->name, b->type[l]->name) != 0) return 0;
    pn_block_cfg ra[PN_HYBRID_MAX_TYPES], rb[PN_HYBRID_MAX_TYPES];
    int ua[PN_HYBRID_MAX_TYPES], ub[PN_HYBRID_MAX_TYPES];
    resolved_dims(base, a, ra, ua);
    resolved_dims(base, b, rb, ub);
    for (int i = 0; i < PN_HYBRID_MAX_TYPES; i++) {
        if (ua[i] != ub[i]) return 0;
        if (ua[i] && memcmp(&ra[i], &rb[i], sizeof(pn_block_cfg)) != 0) return 0;
    }
    return 1;
}

void pn_hybrid_layout_of(const pn_backbone *bb, pn_hybrid_layout *out) {
    if (bb->n_layers > PN_HYBRID_MAX_LAYERS)
        pn_die_input(bb->dir, "%d layers; the hybrid format supports at most %d", bb->n_layers, PN_HYBRID_MAX_LAYERS);
    pn_hybrid_layout_init(out, bb->n_layers);
    int first_layer[PN_HYBRID_MAX_TYPES];
    for (int i = 0; i < PN_HYBRID_MAX_TYPES; i++) first_layer[i] = -1;
    for (int l = 0; l < bb->n_layers; l++) {
        const pn_block *m = bb->layers[l].mixer;
        // The supernet's first rwkv7 layer runs a wrapper type with the same name.
        const pn_block_type *t = pn_block_type_find(m->type->name);
        if (!t) pn_die_internal(__FILE__, __LINE__, "layer %d: block type '%s' is not registered", l, m->type->name);
        out->type[l] = t;
        int ti = pn_hybrid_type_index(t);
        if (type_bit(t) == T_ATTN) continue;
        pn_block_cfg k = dims_key(&m->cfg);
        if (first_layer[ti] < 0) {
            first_layer[ti] = l;
            out->dims[ti] = k;
        } else if (type_bit(t) == T_SWA ? k.window != out->dims[ti].window
                                        : memcmp(&k, &out->dims[ti], sizeof k) != 0) {
            pn_die_input(bb->dir,
                         "layers %d and %d are both '%s' but with different dims; the Jet-Nemotron format keeps one "
                         "efficient_attention_config entry per layer type",
                         first_layer[ti], l, pn_hybrid_type_name(t));
        }
    }
}

// ---------------------------------------------------------------- config.json

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

// One efficient_attention_config entry into dims (pre-validated: positive values).
static void parse_entry(json_t *e, const pn_block_type *t, pn_block_cfg *dims, const char *where) {
    const char *tn = pn_hybrid_type_name(t);
    const unsigned bit = type_bit(t);
    if (!json_is_object(e))
        pn_die_input(where, "key 'efficient_attention_config.%s': expected an object, found %s", tn, json_kind(e));
    double expand_v = 0;
    const char *key;
    json_t *v;
    json_object_foreach(e, key, v) {
        if (bit == T_JET && (strcmp(key, "mode") == 0 || strcmp(key, "dconv_implementation") == 0)) {
            // Kernel choices of the reference code; the math is the same.
            if (!json_is_string(v))
                pn_die_input(where, "key 'efficient_attention_config.%s.%s': expected a string, found %s", tn, key,
                             json_kind(v));
            continue;
        }
        const hy_key *k = key_find(key, bit, 1);
        if (!k)
            pn_die_input(where, "key 'efficient_attention_config.%s.%s' is not known for layer type %s (known: %s)",
                         tn, key, tn, keys_of(bit, 1));
        if (k->kind == K_INT) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 24))
                pn_die_input(where, "key 'efficient_attention_config.%s.%s': expected an integer >= 1, found %s", tn,
                             key, json_is_integer(v) ? "a smaller or larger integer" : json_kind(v));
            *key_int(dims, k) = (int)json_integer_value(v);
        } else {
            double x = 0;
            if (json_is_number(v)) {
                x = json_number_value(v);
            } else if (json_is_string(v)) {  // the reference configs write "norm_eps": "1e-5"
                char *end = NULL;
                x = strtod(json_string_value(v), &end);
                if (end == json_string_value(v) || *end) x = NAN;
            } else {
                x = NAN;
            }
            if (!(x > 0) || !isfinite(x))
                pn_die_input(where, "key 'efficient_attention_config.%s.%s': expected a positive number", tn, key);
            if (k->kind == K_EPS)
                *key_float(dims, k) = (float)x;
            else
                expand_v = x;
        }
    }
    if (expand_v > 0) {
        if (dims->K <= 0)
            pn_die_input(where, "efficient_attention_config.%s: expand_v needs head_dim (value dim = head_dim · expand_v)",
                         tn);
        double vd = dims->K * expand_v;
        long long r = llround(vd);
        if (r < 1 || fabs(vd - (double)r) > 1e-5 * vd)
            pn_die_input(where, "efficient_attention_config.%s: head_dim %d · expand_v %g = %g is not an integer", tn,
                         dims->K, expand_v, vd);
        dims->V = (int)r;
    }
}

int pn_hybrid_config_parse(const char *text, const char *where, pn_hf_config *base, pn_hybrid_layout *lay) {
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) pn_die_input(where, "not valid JSON at line %d, column %d: %s", err.line, err.column, err.text);
    if (!json_is_object(root)) pn_die_input(where, "expected a JSON object at the top level, found %s", json_kind(root));
    json_t *mt = json_object_get(root, "model_type");
    if (!mt || !json_is_string(mt) || strcmp(json_string_value(mt), "jet_nemotron") != 0) {
        json_decref(root);
        pn_hf_config_parse(base, text, where);
        if (base->num_hidden_layers > PN_HYBRID_MAX_LAYERS)
            pn_die_input(where, "num_hidden_layers = %d; at most %d supported", base->num_hidden_layers,
                         PN_HYBRID_MAX_LAYERS);
        pn_hybrid_layout_init(lay, base->num_hidden_layers);
        return 0;
    }

    // The base: the same keys under the base model type, without the hybrid ones.
    const char *bmt = "qwen2";
    json_t *bm = json_object_get(root, "base_model_type");
    if (bm && !json_is_null(bm)) {
        if (!json_is_string(bm)) pn_die_input(where, "key 'base_model_type': expected a string, found %s", json_kind(bm));
        bmt = json_string_value(bm);
        if (strcmp(bmt, "qwen2") != 0 && strcmp(bmt, "llama") != 0 && strcmp(bmt, "qwen3") != 0)
            pn_die_input(where, "base_model_type '%s' is not supported (supported: qwen2, llama, qwen3)", bmt);
    }
    json_t *b = json_deep_copy(root);
    json_object_set_new(b, "model_type", json_string(bmt));
    json_object_del(b, "layer_types");
    json_object_del(b, "efficient_attention_config");
    json_object_del(b, "base_model_type");
    char *btext = json_dumps(b, 0);
    json_decref(b);
    PN_ASSERT(btext != NULL);
    pn_hf_config_parse(base, btext, where);
    free(btext);
    const int n = base->num_hidden_layers;
    if (n > PN_HYBRID_MAX_LAYERS) pn_die_input(where, "num_hidden_layers = %d; at most %d supported", n, PN_HYBRID_MAX_LAYERS);
    pn_hybrid_layout_init(lay, n);

    json_t *lt = json_object_get(root, "layer_types");
    if (!lt || json_is_null(lt))
        pn_die_input(where, "key 'layer_types' is missing (expected an array of %d strings: %s)", n, known_types());
    if (!json_is_array(lt)) pn_die_input(where, "key 'layer_types': expected an array, found %s", json_kind(lt));
    if ((int)json_array_size(lt) != n)
        pn_die_input(where, "key 'layer_types' has %zu entries, expected num_hidden_layers = %d", json_array_size(lt), n);
    for (int l = 0; l < n; l++) {
        json_t *v = json_array_get(lt, (size_t)l);
        if (!json_is_string(v)) pn_die_input(where, "layer_types[%d]: expected a string, found %s", l, json_kind(v));
        const pn_block_type *t = pn_hybrid_type_find(json_string_value(v));
        if (!t)
            pn_die_input(where, "layer_types[%d] = '%s' is not a known layer type (known: %s)", l, json_string_value(v),
                         known_types());
        lay->type[l] = t;
    }

    json_t *eac = json_object_get(root, "efficient_attention_config");
    if (eac && !json_is_null(eac) && !json_is_object(eac))
        pn_die_input(where, "key 'efficient_attention_config': expected an object, found %s", json_kind(eac));
    int done[PN_HYBRID_MAX_TYPES] = {0};
    for (int l = 0; l < n; l++) {
        const pn_block_type *t = lay->type[l];
        int ti = pn_hybrid_type_index(t);
        if (type_bit(t) == T_ATTN || done[ti]) continue;
        done[ti] = 1;
        const char *tn = pn_hybrid_type_name(t);
        json_t *e = eac && json_is_object(eac) ? json_object_get(eac, tn) : NULL;
        if (!e && strcmp(tn, t->name) != 0 && eac && json_is_object(eac)) e = json_object_get(eac, t->name);
        if (!e)
            pn_die_input(where, "efficient_attention_config has no entry '%s' (layer_types[%d] is '%s'; expected keys: %s)",
                         tn, l, tn, keys_of(type_bit(t), 1));
        parse_entry(e, t, &lay->dims[ti], where);
    }
    json_decref(root);
    return 1;
}

int pn_hybrid_config_load(const char *dir, pn_hf_config *base, pn_hybrid_layout *lay) {
    char path[4096];
    pn_path_join(path, sizeof path, dir, "config.json");
    if (!pn_file_exists(path)) pn_die_input(path, "no such file (expected a Hugging Face model directory)");
    char *text = pn_read_file(path, NULL);
    int r = pn_hybrid_config_parse(text, path, base, lay);
    free(text);
    return r;
}

static int json_dims_entry(json_t *eac, const pn_block_type *t, const pn_block_cfg *c) {
    const unsigned bit = type_bit(t);
    json_t *e = json_object();
    for (size_t i = 0; i < PN_ARRAY_LEN(g_keys); i++) {
        const hy_key *k = &g_keys[i];
        if (!(k->types & bit) || !k->json) continue;
        pn_block_cfg cc = *c;
        if (k->kind == K_INT) {
            json_object_set_new(e, k->key, json_integer(*key_int(&cc, k)));
        } else if (k->kind == K_EPS) {
            json_object_set_new(e, k->key, json_real(float_short(*key_float(&cc, k))));
        } else {
            // Rounded up at 10 decimals like the reference configs (8/3 -> 2.6666666667),
            // so that int(head_dim * expand_v) in Python gives the value dim back.
            double ev = ceil((double)c->V / c->K * 1e10) / 1e10;
            json_object_set_new(e, k->key, json_real(ev));
        }
    }
    if (bit == T_JET) {
        json_object_set_new(e, "mode", json_string("chunk"));
        json_object_set_new(e, "dconv_implementation", json_string("triton"));
    }
    json_object_set_new(eac, pn_hybrid_type_name(t), e);
    return 1;
}

void pn_hybrid_config_write(const pn_hf_config *c, const pn_hybrid_layout *lay, const char *dir,
                            const char *dtype_name) {
    PN_ASSERT(lay->n_layers == c->num_hidden_layers);
    pn_mkdir_p(dir);
    json_t *j = pn_hf_config_to_json(c, dtype_name);
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("JetNemotronForCausalLM"));
    json_object_set_new(j, "architectures", arch);
    json_object_set_new(j, "model_type", json_string("jet_nemotron"));
    json_object_set_new(j, "base_model_type", json_string(c->model_type));
    json_object_set_new(j, "initializer_range", json_real(0.02));
    json_object_set_new(j, "attention_dropout", json_real(0.0));
    json_object_set_new(j, "use_cache", json_true());
    json_t *lt = json_array();
    for (int l = 0; l < lay->n_layers; l++) json_array_append_new(lt, json_string(pn_hybrid_type_name(lay->type[l])));
    json_object_set_new(j, "layer_types", lt);
    json_t *eac = json_object();
    pn_block_cfg res[PN_HYBRID_MAX_TYPES];
    int used[PN_HYBRID_MAX_TYPES];
    resolved_dims(c, lay, res, used);
    for (int i = 0; i < pn_block_type_count(); i++)
        if (used[i] && type_bit(pn_block_type_at(i)) != T_ATTN) json_dims_entry(eac, pn_block_type_at(i), &res[i]);
    json_object_set_new(j, "efficient_attention_config", eac);
    char path[4096];
    pn_path_join(path, sizeof path, dir, "config.json");
    pn_json_write_file(j, path);
    json_decref(j);
}

// ---------------------------------------------------------------- architecture.yaml

typedef struct {
    int num_heads, head_dim, head_v_dim, conv_size, dconv_generator_reduction;
    int n_groups, state_size, expand;
    int decay_low_rank_dim, a_low_rank_dim, v_low_rank_dim, gate_low_rank_dim;
    int window_size;
    double norm_eps;
} arch_dims;

typedef struct {
    char *model_type;
    char *base_model_type;
    int num_hidden_layers;
    pn_cfg_strings layer_types;
    arch_dims sec[PN_ARRAY_LEN(g_types)];  // by g_types index (attn unused)
} arch_file;

#define AD(m) offsetof(arch_dims, m)
static const pn_cfg_field g_dims_schema[] = {
    {"num_heads", PN_CFG_INT, AD(num_heads), "0", "heads H (0 = block default)", PN_CFG_RANGE(0, 1 << 24)},
    {"head_dim", PN_CFG_INT, AD(head_dim), "0", "key dim K per head (mamba2: head dim P)", PN_CFG_RANGE(0, 1 << 24)},
    {"head_v_dim", PN_CFG_INT, AD(head_v_dim), "0", "value dim V per head", PN_CFG_RANGE(0, 1 << 24)},
    {"conv_size", PN_CFG_INT, AD(conv_size), "0", "short conv taps W", PN_CFG_RANGE(0, 1 << 24)},
    {"dconv_generator_reduction", PN_CFG_INT, AD(dconv_generator_reduction), "0",
     "jet: dynamic-conv generator reduction r", PN_CFG_RANGE(0, 1 << 24)},
    {"n_groups", PN_CFG_INT, AD(n_groups), "0", "mamba2: groups G", PN_CFG_RANGE(0, 1 << 24)},
    {"state_size", PN_CFG_INT, AD(state_size), "0", "mamba2: state N", PN_CFG_RANGE(0, 1 << 24)},
    {"expand", PN_CFG_INT, AD(expand), "0", "mamba2: inner width = expand · C", PN_CFG_RANGE(0, 1 << 24)},
    {"decay_low_rank_dim", PN_CFG_INT, AD(decay_low_rank_dim), "0", "rwkv7: w LoRA rank", PN_CFG_RANGE(0, 1 << 24)},
    {"a_low_rank_dim", PN_CFG_INT, AD(a_low_rank_dim), "0", "rwkv7: a LoRA rank", PN_CFG_RANGE(0, 1 << 24)},
    {"v_low_rank_dim", PN_CFG_INT, AD(v_low_rank_dim), "0", "rwkv7: v LoRA rank", PN_CFG_RANGE(0, 1 << 24)},
    {"gate_low_rank_dim", PN_CFG_INT, AD(gate_low_rank_dim), "0", "rwkv7: g LoRA rank", PN_CFG_RANGE(0, 1 << 24)},
    {"window_size", PN_CFG_INT, AD(window_size), "0", "swa: window length", PN_CFG_RANGE(0, 1 << 24)},
    {"norm_eps", PN_CFG_DOUBLE, AD(norm_eps), "0", "output norm eps (0 = block default)", PN_CFG_MIN(0)},
    PN_CFG_END,
};
#undef AD

// arch_dims member of each hy_key (same names), or -1.
static size_t arch_off(const char *key) {
    for (const pn_cfg_field *f = g_dims_schema; f->key; f++)
        if (strcmp(f->key, key) == 0) return f->offset;
    return (size_t)-1;
}

static const pn_cfg_field *arch_schema(void) {
    static pn_cfg_field s[8 + PN_ARRAY_LEN(g_types)];
    static int init = 0;
    if (!init) {
        int n = 0;
        s[n++] = (pn_cfg_field){"model_type", PN_CFG_STRING, offsetof(arch_file, model_type), "jet_nemotron",
                                "always jet_nemotron"};
        s[n++] = (pn_cfg_field){"base_model_type", PN_CFG_STRING, offsetof(arch_file, base_model_type), NULL,
                                "the base model's model_type (informational)"};
        s[n++] = (pn_cfg_field){"num_hidden_layers", PN_CFG_INT, offsetof(arch_file, num_hidden_layers), "0",
                                "layers (0 = the base model's)", PN_CFG_RANGE(0, PN_HYBRID_MAX_LAYERS)};
        s[n++] = (pn_cfg_field){"layer_types", PN_CFG_STRING_LIST, offsetof(arch_file, layer_types), NULL,
                                "one layer type per layer: attn, swa, jet, gated_deltanet, ...", PN_CFG_REQUIRED};
        for (size_t i = 1; i < PN_ARRAY_LEN(g_types); i++)
            s[n++] = (pn_cfg_field){g_types[i].name, PN_CFG_SECTION, offsetof(arch_file, sec) + i * sizeof(arch_dims),
                                    NULL, "dims of this layer type", PN_CFG_NESTED(g_dims_schema)};
        s[n] = (pn_cfg_field){NULL};
        init = 1;
    }
    return s;
}

static void fmt_bytes(char *out, size_t n, int64_t b) {
    if (b >= ((int64_t)1 << 30))
        snprintf(out, n, "%.2f GiB", (double)b / (1 << 30));
    else
        snprintf(out, n, "%.2f MiB", (double)b / (1 << 20));
}

// "H=12 K=96 V=256 W=4 r=8" — the dims that matter for a layer's block.
static void dims_text(char *out, size_t n, const pn_block *b) {
    const pn_block_cfg *c = &b->cfg;
    switch (type_bit(b->type)) {
    case T_ATTN: snprintf(out, n, "H=%d KV=%d D=%d", c->H, c->H_kv, c->K); break;
    case T_SWA: snprintf(out, n, "H=%d KV=%d D=%d window=%d", c->H, c->H_kv, c->K, c->window); break;
    case T_JET: snprintf(out, n, "H=%d K=%d V=%d W=%d r=%d", c->H, c->K, c->V, c->conv_size, c->gen_reduction); break;
    case T_GDN:
    case T_DN: snprintf(out, n, "H=%d K=%d V=%d W=%d", c->H, c->K, c->V, c->conv_size); break;
    case T_M2:
        snprintf(out, n, "H=%d P=%d N=%d G=%d expand=%d W=%d", c->H, c->K, c->d_state, c->n_groups, c->expand,
                 c->conv_size);
        break;
    case T_RWKV:
        snprintf(out, n, "H=%d K=%d lora w/a/v/g=%d/%d/%d/%d%s", c->H, c->K, c->lora_w, c->lora_a, c->lora_v,
                 c->lora_g, c->first_rwkv ? " (first: sets v_first)" : "");
        break;
    default: snprintf(out, n, "H=%d K=%d V=%d", c->H, c->K, c->V);
    }
}

void pn_hybrid_arch_write(const pn_hf_config *base, const pn_hybrid_layout *lay, const char *dir, const char *source) {
    pn_mkdir_p(dir);
    char path[4096];
    pn_path_join(path, sizeof path, dir, "architecture.yaml");
    pn_atomic_file af;
    pn_atomic_open(&af, path);
    FILE *f = af.f;
    fprintf(f, "# architecture.yaml: a PostNAS hybrid in the Jet-Nemotron layout (config.json: layer_types,\n");
    fprintf(f, "# efficient_attention_config). Readable by `postnas export --layers architecture.yaml`.\n");
    if (source && source[0]) fprintf(f, "# source: %s\n", source);
    fprintf(f, "# base: %s, %d layers, hidden %d, intermediate %d, %d heads / %d kv heads of %d, vocab %d\n",
            base->model_type, base->num_hidden_layers, base->hidden_size, base->intermediate_size,
            base->num_attention_heads, base->num_key_value_heads, base->head_dim, base->vocab_size);
    fprintf(f, "# decode state per sequence (KV cache bf16, recurrent state fp32, conv rows excluded):\n");
    const int64_t ctxs[2] = {4096, 65536};
    for (int i = 0; i < 2; i++) {
        pn_hybrid_state_bytes s = pn_hybrid_state_bytes_at(base, lay, ctxs[i], 2, 4);
        char a[32], w[32], r[32], t[32];
        fmt_bytes(a, sizeof a, s.attn);
        fmt_bytes(w, sizeof w, s.swa);
        fmt_bytes(r, sizeof r, s.linear);
        fmt_bytes(t, sizeof t, s.attn + s.swa + s.linear);
        fprintf(f, "#   %3lldK context: attn %s + swa %s + linear %s = %s\n", (long long)(ctxs[i] / 1024), a, w, r, t);
    }
    fprintf(f, "#\n# layer  type            dims\n");
    pn_block *b = pn_malloc(sizeof(pn_block));
    for (int l = 0; l < lay->n_layers; l++) {
        pn_block_cfg c;
        pn_hybrid_layer_cfg(base, lay, l, &c);
        pn_block_setup(b, lay->type[l], &c);
        char d[160];
        dims_text(d, sizeof d, b);
        fprintf(f, "# %5d  %-15s %s\n", l, pn_hybrid_type_name(lay->type[l]), d);
    }
    fprintf(f, "\nmodel_type: jet_nemotron\nbase_model_type: %s\nnum_hidden_layers: %d\nlayer_types: [", base->model_type,
            lay->n_layers);
    for (int l = 0; l < lay->n_layers; l++) fprintf(f, "%s%s", l ? ", " : "", pn_hybrid_type_name(lay->type[l]));
    fprintf(f, "]\n");
    pn_block_cfg res[PN_HYBRID_MAX_TYPES];
    int used[PN_HYBRID_MAX_TYPES];
    resolved_dims(base, lay, res, used);
    for (int i = 0; i < pn_block_type_count(); i++) {
        const pn_block_type *t = pn_block_type_at(i);
        const unsigned bit = type_bit(t);
        if (!used[i] || bit == T_ATTN || bit == T_OTHER) continue;
        fprintf(f, "%s:\n", pn_hybrid_type_name(t));
        for (size_t k = 0; k < PN_ARRAY_LEN(g_keys); k++) {
            const hy_key *hk = &g_keys[k];
            if (!(hk->types & bit) || !hk->yaml) continue;
            if (hk->kind == K_INT)
                fprintf(f, "  %s: %d\n", hk->key, *key_int(&res[i], hk));
            else
                fprintf(f, "  %s: %.9g\n", hk->key, float_short(*key_float(&res[i], hk)));
        }
    }
    free(b);
    pn_atomic_commit(&af);
}

void pn_hybrid_arch_load(const char *path, int n_layers, pn_hybrid_layout *lay) {
    const pn_cfg_field *schema = arch_schema();
    arch_file a;
    memset(&a, 0, sizeof a);
    pn_config_load(schema, &a, path);
    if (strcmp(a.model_type, "jet_nemotron") != 0)
        pn_die_input(path, "model_type '%s': expected jet_nemotron", a.model_type);
    if (a.num_hidden_layers && a.num_hidden_layers != n_layers)
        pn_die_input(path, "num_hidden_layers = %d, but the base model has %d layers", a.num_hidden_layers, n_layers);
    if (a.layer_types.n != n_layers)
        pn_die_input(path, "layer_types has %d entries, expected %d (one per layer of the base model)", a.layer_types.n,
                     n_layers);
    pn_hybrid_layout_init(lay, n_layers);
    for (int l = 0; l < n_layers; l++) {
        const pn_block_type *t = pn_hybrid_type_find(a.layer_types.v[l]);
        if (!t)
            pn_die_input(path, "layer_types[%d] = '%s' is not a known layer type (known: %s)", l, a.layer_types.v[l],
                         known_types());
        lay->type[l] = t;
    }
    for (size_t i = 1; i < PN_ARRAY_LEN(g_types); i++) {
        const pn_block_type *t = pn_block_type_find(g_types[i].block);
        if (!t) continue;
        const arch_dims *d = &a.sec[i];
        pn_block_cfg *c = &lay->dims[pn_hybrid_type_index(t)];
        for (size_t k = 0; k < PN_ARRAY_LEN(g_keys); k++) {
            const hy_key *hk = &g_keys[k];
            if (!hk->yaml) continue;
            size_t off = arch_off(hk->key);
            PN_ASSERT(off != (size_t)-1);
            const char *p = (const char *)d + off;
            int set = hk->kind == K_INT ? *(const int *)p != 0 : *(const double *)p != 0.0;
            if (!set) continue;
            if (!(hk->types & g_types[i].bit))
                pn_die_input(path, "%s.%s is not a dim of layer type %s (known: %s)", g_types[i].name, hk->key,
                             g_types[i].name, keys_of(g_types[i].bit, 0));
            if (hk->kind == K_INT)
                *key_int(c, hk) = *(const int *)p;
            else
                *key_float(c, hk) = (float)*(const double *)p;
        }
    }
    pn_config_free(schema, &a);
}

// ---------------------------------------------------------------- models

static int64_t param_numel(const pn_bb_param *p) {
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->shape[d];
    return n;
}

pn_backbone *pn_hybrid_alloc(const pn_hf_config *base, const pn_hybrid_layout *lay, const char *dir) {
    PN_ASSERT(lay->n_layers == base->num_hidden_layers);
    pn_backbone *bb = pn_calloc(1, sizeof(*bb));
    snprintf(bb->dir, sizeof bb->dir, "%s", dir);
    bb->cfg = *base;
    bb->n_layers = base->num_hidden_layers;
    bb->C = base->hidden_size;
    bb->I = base->intermediate_size;
    bb->V = base->vocab_size;
    bb->tied = base->tie_word_embeddings;
    bb->layers = pn_calloc((size_t)bb->n_layers, sizeof(pn_bb_layer));
    for (int l = 0; l < bb->n_layers; l++) {
        pn_block_cfg c;
        pn_hybrid_layer_cfg(base, lay, l, &c);
        pn_block_setup(&bb->layers[l].attn, lay->type[l], &c);
        bb->layers[l].mixer = &bb->layers[l].attn;
    }
    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    pn_backbone_param_table(bb, t);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += param_numel(&t[i]);
    bb->weights = pn_malloc((size_t)total * sizeof(float));
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        *t[i].data = bb->weights + off;
        off += param_numel(&t[i]);
    }
    if (bb->tied) bb->lm_head = bb->embed;
    free(t);
    return bb;
}

// Layer index of "model.layers.{i}.…", or -1.
static int name_layer(const char *name) {
    int l = -1;
    if (sscanf(name, "model.layers.%d.", &l) != 1) return -1;
    return l;
}

pn_backbone *pn_hybrid_load(const char *dir) {
    pn_hf_config base;
    pn_hybrid_layout *lay = pn_malloc(sizeof(*lay));
    if (!pn_hybrid_config_load(dir, &base, lay)) {
        free(lay);
        return pn_backbone_load(dir);
    }
    pn_backbone *bb = pn_hybrid_alloc(&base, lay, dir);
    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    pn_backbone_param_table(bb, t);
    pn_safetensors *st = pn_st_open(dir);
    for (int i = 0; i < n; i++) {
        if (!pn_st_find(st, t[i].name)) {
            int l = name_layer(t[i].name);
            if (l >= 0 && strstr(t[i].name, ".self_attn."))
                pn_die_input(dir, "tensor '%s' is missing from the safetensors weights (config.json: layer_types[%d] = '%s')",
                             t[i].name, l, pn_hybrid_type_name(lay->type[l]));
            pn_die_input(dir, "tensor '%s' is missing from the safetensors weights (config.json: model_type jet_nemotron)",
                         t[i].name);
        }
        pn_st_read_f32(st, t[i].name, *t[i].data, t[i].ndim, t[i].shape);
    }
    pn_st_close(st);
    free(t);
    pn_debug("hybrid: %s, %d layers, %lld parameters", dir, bb->n_layers, (long long)pn_backbone_numel(bb));
    free(lay);
    return bb;
}

static const char *dtype_config_name(pn_dtype dt) {
    switch (dt) {
    case PN_F32: return "float32";
    case PN_BF16: return "bfloat16";
    case PN_F16: return "float16";
    default: pn_die_internal(__FILE__, __LINE__, "hybrid weights must be F32, BF16 or F16 (got %s)", pn_dtype_name(dt));
    }
}

void pn_hybrid_save(const pn_backbone *bb, const char *dir, pn_dtype dtype, const char *source) {
    const char *dtname = dtype_config_name(dtype);
    pn_hybrid_layout *lay = pn_malloc(sizeof(*lay));
    pn_hybrid_layout_of(bb, lay);
    pn_mkdir_p(dir);
    pn_hybrid_config_write(&bb->cfg, lay, dir, dtname);

    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    pn_backbone_param_table((pn_backbone *)bb, t);
    pn_st_writer *w = pn_st_writer_new();
    pn_st_writer_meta(w, "format", "pt");
    pn_st_writer_meta(w, "postnas", "hybrid model (Jet-Nemotron layout)");
    if (source && source[0]) pn_st_writer_meta(w, "source", source);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        pn_st_writer_add_f32(w, t[i].name, dtype, t[i].ndim, t[i].shape, *t[i].data);
        bytes += (size_t)param_numel(&t[i]) * pn_dtype_size(dtype);
    }
    free(t);
    if (bytes > ((size_t)4 << 30)) {
        pn_st_writer_save_sharded(w, dir, (size_t)4 << 30);
    } else {
        char path[4096];
        pn_path_join(path, sizeof path, dir, "model.safetensors");
        pn_st_writer_save(w, path);
    }
    pn_hybrid_arch_write(&bb->cfg, lay, dir, source);
    free(lay);
}
