// model_init.c — see model_init.h. Weights are a pure function of (seed, name):
// each tensor draws from its own Philox stream, so the file does not depend on
// thread count or on the order tensors are written.
#include "supernet/model_init.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include <jansson.h>

typedef struct {
    const char *name;
    const char *model_type;
    int vocab, hidden, inter, layers, heads, kv_heads, head_dim, tied;
    double eps, theta;
} preset;

// Dimensions as published in each model's config.json on the Hugging Face hub.
static const preset g_presets[] = {
    {"qwen2.5-0.5b", "qwen2", 151936, 896, 4864, 24, 14, 2, 64, 1, 1e-6, 1000000.0},
    {"qwen2.5-1.5b", "qwen2", 151936, 1536, 8960, 28, 12, 2, 128, 1, 1e-6, 1000000.0},
    {"qwen2.5-3b", "qwen2", 151936, 2048, 11008, 36, 16, 2, 128, 1, 1e-6, 1000000.0},
    {"qwen3-1.7b", "qwen3", 151936, 2048, 6144, 28, 16, 8, 128, 1, 1e-6, 1000000.0},
    {"bench-6x256", "qwen2", 4096, 256, 704, 6, 4, 2, 64, 1, 1e-6, 10000.0},
};

// Jet-Nemotron as published (NVlabs/Jet-Nemotron, jetai/modeling/configs/jetlm_2B.json
// and jetlm_4B.json): one letter per layer, j = JetBlock ("jet"), A = full
// attention, S = sliding window. JetBlock: conv 4, generator reduction 8.
typedef struct {
    const char *name;
    const char *base;  // g_presets entry
    const char *layers;
    int jet_heads, jet_k, jet_v, swa_window;
} jet_preset;

static const jet_preset g_jet_presets[] = {
    {"jet-nemotron-2b", "qwen2.5-1.5b", "jjjjjjjjjjjjjjAjjjjASSjjjjjj", 12, 96, 256, 1152},
    {"jet-nemotron-4b", "qwen2.5-3b", "jjjjjSjjjjjjjjjjSAjSASSjjSjSjjjjAjjj", 16, 128, 256, 2048},
};

const char *const *pn_model_preset_names(void) {
    static const char *names[PN_ARRAY_LEN(g_presets) + PN_ARRAY_LEN(g_jet_presets) + 1];
    size_t n = 0;
    for (size_t i = 0; i < PN_ARRAY_LEN(g_presets); i++) names[n++] = g_presets[i].name;
    for (size_t i = 0; i < PN_ARRAY_LEN(g_jet_presets); i++) names[n++] = g_jet_presets[i].name;
    names[n] = NULL;
    return names;
}

static int base_preset(const char *name, pn_hf_config *out);

int pn_model_jet_preset(const char *name, pn_hf_config *base, pn_hybrid_layout *lay) {
    for (size_t i = 0; i < PN_ARRAY_LEN(g_jet_presets); i++) {
        const jet_preset *p = &g_jet_presets[i];
        if (strcmp(p->name, name) != 0) continue;
        PN_ASSERT(base_preset(p->base, base) == 0);
        PN_ASSERT((int)strlen(p->layers) == base->num_hidden_layers);
        pn_hybrid_layout_init(lay, base->num_hidden_layers);
        const pn_block_type *jet = pn_block_type_find("jetblock"), *swa = pn_block_type_find("swa");
        PN_ASSERT(jet && swa);
        for (int l = 0; l < base->num_hidden_layers; l++) {
            char ch = p->layers[l];
            PN_ASSERT(ch == 'j' || ch == 'A' || ch == 'S');
            if (ch == 'j') lay->type[l] = jet;
            if (ch == 'S') lay->type[l] = swa;
        }
        pn_block_cfg *j = &lay->dims[pn_hybrid_type_index(jet)];
        j->H = p->jet_heads;
        j->K = p->jet_k;
        j->V = p->jet_v;
        j->conv_size = 4;
        j->gen_reduction = 8;
        j->norm_eps = 1e-5f;
        lay->dims[pn_hybrid_type_index(swa)].window = p->swa_window;
        return 0;
    }
    return -1;
}

int pn_model_preset(const char *name, pn_hf_config *out) {
    pn_hybrid_layout *lay = pn_malloc(sizeof(*lay));
    int r = pn_model_jet_preset(name, out, lay);
    free(lay);
    if (r == 0) {
        snprintf(out->model_type, sizeof out->model_type, "jet_nemotron");
        snprintf(out->architecture, sizeof out->architecture, "JetNemotronForCausalLM");
        return 0;
    }
    return base_preset(name, out);
}

static int base_preset(const char *name, pn_hf_config *out) {
    for (size_t i = 0; i < PN_ARRAY_LEN(g_presets); i++) {
        const preset *p = &g_presets[i];
        if (strcmp(p->name, name) != 0) continue;
        memset(out, 0, sizeof(*out));
        snprintf(out->model_type, sizeof out->model_type, "%s", p->model_type);
        snprintf(out->architecture, sizeof out->architecture, "%s",
                 strcmp(p->model_type, "qwen3") == 0 ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM");
        snprintf(out->dtype, sizeof out->dtype, "bfloat16");
        out->vocab_size = p->vocab;
        out->hidden_size = p->hidden;
        out->intermediate_size = p->inter;
        out->num_hidden_layers = p->layers;
        out->num_attention_heads = p->heads;
        out->num_key_value_heads = p->kv_heads;
        out->head_dim = p->head_dim;
        out->rms_norm_eps = p->eps;
        out->rope_theta = p->theta;
        out->tie_word_embeddings = p->tied;
        out->qkv_bias = strcmp(p->model_type, "qwen2") == 0;
        out->o_bias = 0;
        out->qk_norm = strcmp(p->model_type, "qwen3") == 0;
        return 0;
    }
    return -1;
}

json_t *pn_hf_config_to_json(const pn_hf_config *c, const char *dtype_name) {
    json_t *j = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string(c->architecture[0] ? c->architecture : "Qwen2ForCausalLM"));
    json_object_set_new(j, "architectures", arch);
    json_object_set_new(j, "model_type", json_string(c->model_type));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(j, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->num_hidden_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->num_attention_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->num_key_value_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "rms_norm_eps", json_real(c->rms_norm_eps));
    json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(j, "rope_scaling", json_null());
    json_object_set_new(j, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
    json_object_set_new(j, "max_position_embeddings", json_integer(131072));
    if (strcmp(c->model_type, "qwen2") != 0) json_object_set_new(j, "attention_bias", json_boolean(c->qkv_bias));
    json_object_set_new(j, "torch_dtype", json_string(dtype_name));
    return j;
}

void pn_json_write_file(json_t *j, const char *path) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    PN_ASSERT(text != NULL);
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = 0;
    pn_write_file_atomic(path, text, n + 1);
    free(text);
}

void pn_hf_config_write(const pn_hf_config *c, const char *dir, const char *dtype_name) {
    pn_mkdir_p(dir);
    json_t *j = pn_hf_config_to_json(c, dtype_name);
    json_object_set_new(j, "use_sliding_window", json_false());
    char path[4096];
    pn_path_join(path, sizeof path, dir, "config.json");
    pn_json_write_file(j, path);
    json_decref(j);
}

// kind: 0 zeros (biases), 1 ones (norms), 2 N(0, 0.02). Returns the element count.
static int64_t init_add(pn_st_writer *w, pn_dtype dtype, const char *name, int ndim, int64_t d0, int64_t d1, int kind,
                        uint64_t seed) {
    int64_t shape[2] = {d0, d1};
    int64_t n = ndim == 1 ? d0 : d0 * d1;
    float *x = pn_malloc((size_t)n * sizeof(float));
    if (kind == 1)
        for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
    else if (kind == 0)
        memset(x, 0, (size_t)n * sizeof(float));
    else
        pn_fill_normal(x, (size_t)n, 0.0f, 0.02f, seed, pn_hash_str(name));
    pn_st_writer_add_f32(w, name, dtype, ndim, shape, x);
    free(x);
    return n;
}

// A config from pn_model_preset("jet-nemotron-*"): the preset of the same width and depth.
static void init_write_jet(const pn_hf_config *c, const char *dir, uint64_t seed, pn_dtype dtype) {
    pn_hybrid_layout *lay = pn_malloc(sizeof(*lay));
    for (size_t i = 0; i < PN_ARRAY_LEN(g_jet_presets); i++) {
        pn_hf_config base;
        PN_ASSERT(pn_model_jet_preset(g_jet_presets[i].name, &base, lay) == 0);
        if (base.hidden_size != c->hidden_size || base.num_hidden_layers != c->num_hidden_layers) continue;
        base = *c;
        snprintf(base.model_type, sizeof base.model_type, "qwen2");
        snprintf(base.architecture, sizeof base.architecture, "Qwen2ForCausalLM");
        pn_model_init_write_hybrid(&base, lay, dir, seed, dtype);
        free(lay);
        return;
    }
    pn_die_input(dir, "model_type jet_nemotron with hidden_size %d and %d layers matches no Jet-Nemotron preset",
                 c->hidden_size, c->num_hidden_layers);
}

void pn_model_init_write_hybrid(const pn_hf_config *c, const pn_hybrid_layout *lay, const char *dir, uint64_t seed,
                                pn_dtype dtype) {
    PN_ASSERT(dtype == PN_F32 || dtype == PN_BF16);
    PN_ASSERT(lay->n_layers == c->num_hidden_layers);
    pn_mkdir_p(dir);
    pn_hybrid_config_write(c, lay, dir, dtype == PN_BF16 ? "bfloat16" : "float32");
    const int C = c->hidden_size, I = c->intermediate_size;
    pn_st_writer *w = pn_st_writer_new();
    pn_st_writer_meta(w, "format", "pt");
    pn_st_writer_meta(w, "postnas", "random weights (postnas init-model), Jet-Nemotron layout");
    int64_t params = 0;
    params += init_add(w, dtype, "model.embed_tokens.weight", 2, c->vocab_size, C, 2, seed);
    if (!c->tie_word_embeddings) params += init_add(w, dtype, "lm_head.weight", 2, c->vocab_size, C, 2, seed);
    params += init_add(w, dtype, "model.norm.weight", 1, C, 0, 1, seed);
    char name[256];
    pn_block *b = pn_malloc(sizeof(pn_block));
    for (int l = 0; l < c->num_hidden_layers; l++) {
#define LNAME(s) (snprintf(name, sizeof name, "model.layers.%d.%s", l, s), name)
        params += init_add(w, dtype, LNAME("input_layernorm.weight"), 1, C, 0, 1, seed);
        params += init_add(w, dtype, LNAME("post_attention_layernorm.weight"), 1, C, 0, 1, seed);
        params += init_add(w, dtype, LNAME("mlp.gate_proj.weight"), 2, I, C, 2, seed);
        params += init_add(w, dtype, LNAME("mlp.up_proj.weight"), 2, I, C, 2, seed);
        params += init_add(w, dtype, LNAME("mlp.down_proj.weight"), 2, C, I, 2, seed);
#undef LNAME
        // The mixer: whatever block the layout puts here, initialised by its own spec.
        pn_block_cfg bc;
        pn_hybrid_layer_cfg(c, lay, l, &bc);
        pn_block_setup(b, lay->type[l], &bc);
        int64_t total = pn_block_param_count(b);
        float *buf = pn_malloc((size_t)total * sizeof(float));
        int64_t off = 0;
        for (int i = 0; i < b->n_params; i++) {
            b->params[i] = buf + off;
            off += pn_param_numel(&b->spec[i]);
        }
        pn_block_init_params(b, seed);
        for (int i = 0; i < b->n_params; i++) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s", l, b->spec[i].name);
            pn_st_writer_add_f32(w, name, dtype, b->spec[i].ndim, b->spec[i].shape, b->params[i]);
        }
        params += total;
        free(buf);
    }
    free(b);
    char path[4096];
    size_t bytes = (size_t)params * pn_dtype_size(dtype);
    if (bytes > ((size_t)4 << 30)) {
        pn_st_writer_save_sharded(w, dir, (size_t)4 << 30);
    } else {
        pn_path_join(path, sizeof path, dir, "model.safetensors");
        pn_st_writer_save(w, path);
    }
    pn_hybrid_arch_write(c, lay, dir, "postnas init-model (random weights)");
    pn_info("wrote %s: jet_nemotron (base %s), %lld parameters (%s)", dir, c->model_type, (long long)params,
            pn_dtype_name(dtype));
}

void pn_model_init_write(const pn_hf_config *c, const char *dir, uint64_t seed, pn_dtype dtype) {
    PN_ASSERT(dtype == PN_F32 || dtype == PN_BF16);
    if (strcmp(c->model_type, "jet_nemotron") == 0) {
        init_write_jet(c, dir, seed, dtype);
        return;
    }
    pn_mkdir_p(dir);
    pn_hf_config_write(c, dir, dtype == PN_BF16 ? "bfloat16" : "float32");
    int C = c->hidden_size, I = c->intermediate_size, D = c->head_dim;
    int Hq = c->num_attention_heads, Hkv = c->num_key_value_heads;
    pn_st_writer *w = pn_st_writer_new();
    pn_st_writer_meta(w, "format", "pt");
    pn_st_writer_meta(w, "postnas", "random weights (postnas init-model)");
    int64_t params = 0;
    params += init_add(w, dtype, "model.embed_tokens.weight", 2, c->vocab_size, C, 2, seed);
    if (!c->tie_word_embeddings) params += init_add(w, dtype, "lm_head.weight", 2, c->vocab_size, C, 2, seed);
    params += init_add(w, dtype, "model.norm.weight", 1, C, 0, 1, seed);
    char name[160];
    for (int l = 0; l < c->num_hidden_layers; l++) {
#define LNAME(s) (snprintf(name, sizeof name, "model.layers.%d.%s", l, s), name)
        params += init_add(w, dtype, LNAME("input_layernorm.weight"), 1, C, 0, 1, seed);
        params += init_add(w, dtype, LNAME("post_attention_layernorm.weight"), 1, C, 0, 1, seed);
        params += init_add(w, dtype, LNAME("mlp.gate_proj.weight"), 2, I, C, 2, seed);
        params += init_add(w, dtype, LNAME("mlp.up_proj.weight"), 2, I, C, 2, seed);
        params += init_add(w, dtype, LNAME("mlp.down_proj.weight"), 2, C, I, 2, seed);
        params += init_add(w, dtype, LNAME("self_attn.q_proj.weight"), 2, (int64_t)Hq * D, C, 2, seed);
        params += init_add(w, dtype, LNAME("self_attn.k_proj.weight"), 2, (int64_t)Hkv * D, C, 2, seed);
        params += init_add(w, dtype, LNAME("self_attn.v_proj.weight"), 2, (int64_t)Hkv * D, C, 2, seed);
        params += init_add(w, dtype, LNAME("self_attn.o_proj.weight"), 2, C, (int64_t)Hq * D, 2, seed);
        if (c->qkv_bias) {
            params += init_add(w, dtype, LNAME("self_attn.q_proj.bias"), 1, (int64_t)Hq * D, 0, 0, seed);
            params += init_add(w, dtype, LNAME("self_attn.k_proj.bias"), 1, (int64_t)Hkv * D, 0, 0, seed);
            params += init_add(w, dtype, LNAME("self_attn.v_proj.bias"), 1, (int64_t)Hkv * D, 0, 0, seed);
        }
        if (c->o_bias) params += init_add(w, dtype, LNAME("self_attn.o_proj.bias"), 1, C, 0, 0, seed);
        if (c->qk_norm) {
            params += init_add(w, dtype, LNAME("self_attn.q_norm.weight"), 1, D, 0, 1, seed);
            params += init_add(w, dtype, LNAME("self_attn.k_norm.weight"), 1, D, 0, 1, seed);
        }
#undef LNAME
    }
    char path[4096];
    size_t bytes = (size_t)params * pn_dtype_size(dtype);
    if (bytes > ((size_t)4 << 30)) {
        pn_st_writer_save_sharded(w, dir, (size_t)4 << 30);
    } else {
        pn_path_join(path, sizeof path, dir, "model.safetensors");
        pn_st_writer_save(w, path);
    }
    pn_info("wrote %s: %s, %lld parameters (%s)", dir, c->model_type, (long long)params, pn_dtype_name(dtype));
}

// ---------------------------------------------------------------- in memory

static void fill_normal_par(float *x, int64_t n, float std, uint64_t seed, uint64_t stream) {
    const int64_t blk = (int64_t)1 << 20, nb = (n + blk - 1) / blk;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t off = b * blk, len = PN_MIN(blk, n - off);
        pn_fill_normal(x + off, (size_t)len, 0.0f, std, seed, (stream << 32) ^ (uint64_t)b);
    }
}

static void fill_ones(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
}

pn_backbone *pn_model_init_hybrid_mem(const pn_hf_config *c, const pn_hybrid_layout *lay, const char *dir,
                                      uint64_t seed) {
    pn_backbone *bb = pn_hybrid_alloc(c, lay, dir);
    const int64_t C = bb->C, I = bb->I, V = bb->V;
    uint64_t stream = 1;
    fill_normal_par(bb->embed, V * C, 0.02f, seed, stream++);
    if (!bb->tied) fill_normal_par(bb->lm_head, V * C, 0.02f, seed, stream++);
    fill_ones(bb->final_norm, C);
    for (int l = 0; l < bb->n_layers; l++) {
        pn_bb_layer *L = &bb->layers[l];
        fill_ones(L->in_norm, C);
        fill_ones(L->post_norm, C);
        fill_normal_par(L->gate, I * C, 0.02f, seed, stream++);
        fill_normal_par(L->up, I * C, 0.02f, seed, stream++);
        fill_normal_par(L->down, C * I, 0.02f, seed, stream++);
        pn_block_init_params(&L->attn, seed + (uint64_t)l);
    }
    return bb;
}
