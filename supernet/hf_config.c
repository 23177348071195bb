// hf_config.c — see hf_config.h. Defaults follow the transformers config classes
// (checked against transformers 5.x): num_key_value_heads = heads, head_dim =
// hidden / heads (Qwen3: 128, its class default), rms_norm_eps 1e-6, rope_theta
// 10000, tie_word_embeddings false, attention_bias false.
#include "hf_config.h"
#include "core/fileio.h"
#include <jansson.h>

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

// Absent or null keys count as missing.
static json_t *cfg_opt(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int cfg_int(json_t *root, const char *key, int required, int def, int lo, const char *where) {
    json_t *v = cfg_opt(root, key);
    if (!v) {
        if (required) pn_die_input(where, "key '%s' is missing (expected an integer >= %d)", key, lo);
        return def;
    }
    if (!json_is_integer(v))
        pn_die_input(where, "key '%s': expected an integer >= %d, found %s", key, lo, json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > (1 << 30)) pn_die_input(where, "key '%s': expected an integer >= %d, found %lld", key, lo, (long long)x);
    return (int)x;
}

static double cfg_num(json_t *root, const char *key, double def, const char *where) {
    json_t *v = cfg_opt(root, key);
    if (!v) return def;
    if (!json_is_number(v)) pn_die_input(where, "key '%s': expected a positive number, found %s", key, json_kind(v));
    double x = json_number_value(v);
    if (!(x > 0)) pn_die_input(where, "key '%s': expected a positive number, found %g", key, x);
    return x;
}

static int cfg_bool(json_t *root, const char *key, int def, const char *where) {
    json_t *v = cfg_opt(root, key);
    if (!v) return def;
    if (!json_is_boolean(v)) pn_die_input(where, "key '%s': expected true or false, found %s", key, json_kind(v));
    return json_is_true(v);
}

static const char *cfg_str(json_t *root, const char *key, const char *where) {
    json_t *v = cfg_opt(root, key);
    if (!v) return NULL;
    if (!json_is_string(v)) pn_die_input(where, "key '%s': expected a string, found %s", key, json_kind(v));
    return json_string_value(v);
}

// A RoPE variant other than the plain one changes every position's angle.
static void cfg_check_rope_type(json_t *obj, const char *objkey, const char *where) {
    const char *keys[] = {"rope_type", "type"};
    for (int i = 0; i < 2; i++) {
        json_t *t = cfg_opt(obj, keys[i]);
        if (!t) continue;
        if (!json_is_string(t))
            pn_die_input(where, "key '%s.%s': expected a string, found %s", objkey, keys[i], json_kind(t));
        if (strcmp(json_string_value(t), "default") != 0)
            pn_die_input(where,
                         "%s.%s = '%s' is not supported (only default RoPE; refusing a silent approximation)",
                         objkey, keys[i], json_string_value(t));
    }
}

void pn_hf_config_parse(pn_hf_config *c, const char *text, const char *where) {
    memset(c, 0, sizeof(*c));
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) pn_die_input(where, "not valid JSON at line %d, column %d: %s", err.line, err.column, err.text);
    if (!json_is_object(root)) pn_die_input(where, "expected a JSON object at the top level, found %s", json_kind(root));

    const char *mt = cfg_str(root, "model_type", where);
    if (!mt) pn_die_input(where, "key 'model_type' is missing (expected a string: qwen2, llama or qwen3)");
    if (strcmp(mt, "qwen2") != 0 && strcmp(mt, "llama") != 0 && strcmp(mt, "qwen3") != 0)
        pn_die_input(where, "model_type '%s' is not supported (supported: qwen2, llama, qwen3)", mt);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    const int is_qwen2 = strcmp(mt, "qwen2") == 0, is_qwen3 = strcmp(mt, "qwen3") == 0;

    json_t *arch = cfg_opt(root, "architectures");
    if (arch) {
        if (!json_is_array(arch)) pn_die_input(where, "key 'architectures': expected an array, found %s", json_kind(arch));
        json_t *a0 = json_array_get(arch, 0);
        if (a0 && json_is_string(a0)) snprintf(c->architecture, sizeof c->architecture, "%s", json_string_value(a0));
    }
    const char *dt = cfg_str(root, "dtype", where);
    if (!dt) dt = cfg_str(root, "torch_dtype", where);
    snprintf(c->dtype, sizeof c->dtype, "%s", dt ? dt : "");

    c->vocab_size = cfg_int(root, "vocab_size", 1, 0, 1, where);
    c->hidden_size = cfg_int(root, "hidden_size", 1, 0, 1, where);
    c->intermediate_size = cfg_int(root, "intermediate_size", 1, 0, 1, where);
    c->num_hidden_layers = cfg_int(root, "num_hidden_layers", 1, 0, 1, where);
    c->num_attention_heads = cfg_int(root, "num_attention_heads", 1, 0, 1, where);
    c->num_key_value_heads = cfg_int(root, "num_key_value_heads", 0, c->num_attention_heads, 1, where);
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        pn_die_input(where, "num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)",
                     c->num_attention_heads, c->num_key_value_heads);
    int def_hd = is_qwen3 ? 128 : c->hidden_size / c->num_attention_heads;
    if (!is_qwen3 && c->hidden_size % c->num_attention_heads != 0 && !cfg_opt(root, "head_dim"))
        pn_die_input(where, "hidden_size (%d) is not a multiple of num_attention_heads (%d) and head_dim is absent",
                     c->hidden_size, c->num_attention_heads);
    c->head_dim = cfg_int(root, "head_dim", 0, def_hd, 2, where);
    if (c->head_dim % 2 != 0) pn_die_input(where, "key 'head_dim': expected an even number (RoPE), found %d", c->head_dim);
    c->rms_norm_eps = cfg_num(root, "rms_norm_eps", 1e-6, where);
    c->tie_word_embeddings = cfg_bool(root, "tie_word_embeddings", 0, where);

    // RoPE: 5.x rope_parameters, else 4.x top-level rope_theta (+ rope_scaling).
    c->rope_theta = 10000.0;
    json_t *rp = cfg_opt(root, "rope_parameters");
    if (rp) {
        if (!json_is_object(rp)) pn_die_input(where, "key 'rope_parameters': expected an object, found %s", json_kind(rp));
        cfg_check_rope_type(rp, "rope_parameters", where);
        // Other layouts (one entry per layer type) have no rope_theta here: refuse them
        // rather than fall back to a default base.
        if (!cfg_opt(rp, "rope_theta"))
            pn_die_input(where, "key 'rope_parameters.rope_theta' is missing (expected a positive number)");
        c->rope_theta = cfg_num(rp, "rope_theta", 10000.0, where);
        if (cfg_num(rp, "partial_rotary_factor", 1.0, where) != 1.0)
            pn_die_input(where, "rope_parameters.partial_rotary_factor != 1 is not supported");
    } else {
        c->rope_theta = cfg_num(root, "rope_theta", 10000.0, where);
    }
    if (cfg_num(root, "partial_rotary_factor", 1.0, where) != 1.0)
        pn_die_input(where, "partial_rotary_factor != 1 is not supported");
    json_t *rs = cfg_opt(root, "rope_scaling");
    if (rs) {
        if (!json_is_object(rs)) pn_die_input(where, "key 'rope_scaling': expected an object or null, found %s", json_kind(rs));
        cfg_check_rope_type(rs, "rope_scaling", where);
    }

    const char *act = cfg_str(root, "hidden_act", where);
    if (act && strcmp(act, "silu") != 0)
        pn_die_input(where, "hidden_act '%s' is not supported (expected silu)", act);
    if (cfg_bool(root, "use_sliding_window", 0, where))
        pn_die_input(where, "use_sliding_window = true is not supported (the pretrained model must use full attention)");
    if (cfg_bool(root, "mlp_bias", 0, where)) pn_die_input(where, "mlp_bias = true is not supported");
    int attention_bias = cfg_bool(root, "attention_bias", 0, where);
    c->qkv_bias = is_qwen2 ? 1 : attention_bias;
    c->o_bias = is_qwen2 ? 0 : attention_bias;
    c->qk_norm = is_qwen3;
    json_decref(root);
}

void pn_hf_config_load(pn_hf_config *c, const char *dir) {
    char path[4096];
    pn_path_join(path, sizeof path, dir, "config.json");
    if (!pn_file_exists(path)) pn_die_input(path, "no such file (expected a Hugging Face model directory)");
    char *text = pn_read_file(path, NULL);
    pn_hf_config_parse(c, text, path);
    free(text);
}
