// test_export.c — the hybrid model format: export, load back, run.
//
// A small random qwen2 model (8 layers, hidden 64, 4 heads / 2 KV heads of 16,
// vocab 97, untied, every weight perturbed so norms and biases are non-trivial)
// becomes an in-memory hybrid by pointing each layer's mixer at a block:
//   jet, attn, swa (window 4, the attention's own weights), gated_deltanet,
//   rwkv7 (the first: no v_lora), jet, rwkv7, swa
// with random non-zero linear parameters. Checks:
//  (a) pn_hybrid_save then pn_hybrid_load: logits of the loaded model equal the
//      in-memory hybrid's (same blocks, same weights, same code path: bitwise,
//      and relative error <= 1e-6 stated as the bound);
//  (b) the engine over the loaded hybrid (prefill 5, then decode one token at a
//      time) equals the loaded model's full forward, every row <= 1e-4;
//  (c) config.json has the Jet-Nemotron fields (model_type, architectures,
//      layer_types, efficient_attention_config per type, base keys) and the
//      safetensors the reference names (jet's dynamic_conv1d.kernel_generator.*,
//      qwen2 q/k/v biases on attn/swa layers only, v_lora only after the first
//      rwkv7 layer);
//  (d) architecture.yaml reads back to the same layout; the config reads back to
//      the layout the backbone's mixers describe;
//  (e) pn_export_build from the base directory + SPEC text + a linear-weights
//      file under the supernet's "linear_attn" names gives the same logits;
//  (f) the published Jet-Nemotron configs (NVlabs/Jet-Nemotron jetlm_2B.json,
//      jetlm_4B.json, embedded below as data) parse, and equal our presets;
//  (g) decode-state bytes at 64K context of the presets, from the config alone:
//      2B = 128 MiB (2 attn: 2·65536·2·2·128 B) + 2.25 MiB (2 swa, window 1152)
//      + 27 MiB (24 jet: 12·96·256·4 B each); 4B = 192 + 14 + 52 MiB (3 attn,
//      7 swa of window 2048, 26 jet of 16·128·256·4 B);
//  (h) malformed configs, SPECs and directories exit 2 with messages.
#include "core/fileio.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "search/engine.h"
#include "search/export.h"
#include "supernet/model_init.h"
#include "test_util.h"
#include <jansson.h>
#include <unistd.h>

#define VOCAB 97
#define HID 64
#define NL 8
#define B 2
#define T 12

static const char *const g_types[NL] = {"jetblock", "attn", "swa", "gated_deltanet", "rwkv7", "jetblock", "rwkv7", "swa"};
static const char *const g_names[NL] = {"jet", "attn", "swa", "gated_deltanet", "rwkv7", "jet", "rwkv7", "swa"};
static char g_tmp[256], g_base[300], g_out[300];

// ---------------------------------------------------------------- the models

static pn_hf_config base_config(void) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    snprintf(c.architecture, sizeof c.architecture, "Qwen2ForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = VOCAB;
    c.hidden_size = HID;
    c.intermediate_size = 128;
    c.num_hidden_layers = NL;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = 0;
    c.qkv_bias = 1;
    return c;
}

static void linear_cfg(pn_block_cfg *c, const char *type) {
    memset(c, 0, sizeof(*c));
    c->C = HID;
    if (strcmp(type, "jetblock") == 0) {
        c->H = 2, c->K = 16, c->V = 32, c->conv_size = 4, c->gen_reduction = 8;
    } else if (strcmp(type, "gated_deltanet") == 0) {
        c->H = 2, c->K = 16, c->V = 32, c->conv_size = 4;
    } else if (strcmp(type, "rwkv7") == 0) {
        c->H = 4, c->K = 16, c->V = 16;
    }
}

typedef struct {
    pn_block blk[NL];
    float *buf[NL];
} mixers;

static void hybrid_set(pn_backbone *bb, mixers *m, uint64_t seed) {
    int seen_rwkv = 0;
    for (int l = 0; l < NL; l++) {
        pn_bb_layer *ly = &bb->layers[l];
        const pn_block_type *t = pn_block_type_find(g_types[l]);
        m->buf[l] = NULL;
        if (strcmp(g_types[l], "attn") == 0) {
            ly->mixer = &ly->attn;
            continue;
        }
        if (strcmp(g_types[l], "swa") == 0) {
            pn_block_cfg c = ly->attn.cfg;
            c.window = 4;
            pn_block_setup(&m->blk[l], t, &c);
            for (int i = 0; i < m->blk[l].n_params; i++) m->blk[l].params[i] = ly->attn.params[i];
            ly->mixer = &m->blk[l];
            continue;
        }
        pn_block_cfg c;
        linear_cfg(&c, g_types[l]);
        c.layer_idx = l;
        c.first_rwkv = strcmp(g_types[l], "rwkv7") == 0 && !seen_rwkv;
        if (c.first_rwkv) seen_rwkv = 1;
        pn_block_setup(&m->blk[l], t, &c);
        int64_t total = pn_block_param_count(&m->blk[l]);
        m->buf[l] = pn_malloc((size_t)total * sizeof(float));
        float *p = m->buf[l];
        for (int i = 0; i < m->blk[l].n_params; i++) {
            m->blk[l].params[i] = p;
            p += pn_param_numel(&m->blk[l].spec[i]);
        }
        pn_block_init_params(&m->blk[l], seed);
        float *noise = pn_malloc((size_t)total * sizeof(float));
        pn_fill_normal(noise, (size_t)total, 0.0f, 0.05f, seed, 500 + (uint64_t)l);
        for (int64_t i = 0; i < total; i++) m->buf[l][i] += noise[i];
        free(noise);
        ly->mixer = &m->blk[l];
    }
}

static void random_ids(int64_t *ids, size_t n, uint64_t seed) {
    float *u = pn_malloc(n * sizeof(float));
    pn_fill_uniform(u, n, 0.0f, 1.0f, seed, 3);
    for (size_t i = 0; i < n; i++) ids[i] = PN_MIN((int64_t)(u[i] * VOCAB), (int64_t)VOCAB - 1);
    free(u);
}

static float *logits_of(pn_backbone *bb, const int64_t *ids) {
    pn_backbone_forward(bb, ids, B, T);
    float *out = pn_malloc((size_t)B * T * VOCAB * sizeof(float));
    memcpy(out, bb->logits, (size_t)B * T * VOCAB * sizeof(float));
    return out;
}

// ---------------------------------------------------------------- (c) config.json

static json_t *load_json(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) fprintf(stderr, "cannot parse %s: %s\n", path, err.text);
    return j;
}

static long long jint(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return v && json_is_integer(v) ? json_integer_value(v) : -999;
}

static void check_config(void) {
    json_t *j = load_json(g_out);
    CHECK(j != NULL, "config.json parses");
    if (!j) return;
    CHECK(strcmp(json_string_value(json_object_get(j, "model_type")), "jet_nemotron") == 0, "model_type");
    CHECK(strcmp(json_string_value(json_array_get(json_object_get(j, "architectures"), 0)), "JetNemotronForCausalLM") == 0,
          "architectures");
    CHECK(strcmp(json_string_value(json_object_get(j, "base_model_type")), "qwen2") == 0, "base_model_type");
    CHECK(jint(j, "vocab_size") == VOCAB && jint(j, "hidden_size") == HID && jint(j, "intermediate_size") == 128 &&
              jint(j, "num_hidden_layers") == NL && jint(j, "num_attention_heads") == 4 &&
              jint(j, "num_key_value_heads") == 2 && jint(j, "head_dim") == 16,
          "base dims");
    CHECK(json_is_false(json_object_get(j, "tie_word_embeddings")), "tie_word_embeddings false");
    CHECK(json_number_value(json_object_get(j, "rope_theta")) == 10000.0, "rope_theta");
    CHECK(json_number_value(json_object_get(j, "rms_norm_eps")) == 1e-6, "rms_norm_eps");
    CHECK(strcmp(json_string_value(json_object_get(j, "torch_dtype")), "float32") == 0, "torch_dtype");
    json_t *lt = json_object_get(j, "layer_types");
    CHECK(json_is_array(lt) && json_array_size(lt) == NL, "layer_types has %d entries", NL);
    for (int l = 0; l < NL && lt; l++)
        CHECK(strcmp(json_string_value(json_array_get(lt, (size_t)l)), g_names[l]) == 0, "layer_types[%d] = %s", l,
              g_names[l]);
    json_t *eac = json_object_get(j, "efficient_attention_config");
    json_t *jet = json_object_get(eac, "jet"), *swa = json_object_get(eac, "swa");
    json_t *gdn = json_object_get(eac, "gated_deltanet"), *rw = json_object_get(eac, "rwkv7");
    CHECK(jet && swa && gdn && rw && json_object_size(eac) == 4, "efficient_attention_config: jet, swa, gdn, rwkv7");
    if (jet && swa && gdn && rw) {
        CHECK(jint(jet, "num_heads") == 2 && jint(jet, "head_dim") == 16 && jint(jet, "conv_size") == 4 &&
                  jint(jet, "dconv_generator_reduction") == 8,
              "jet dims");
        CHECK(json_number_value(json_object_get(jet, "expand_v")) == 2.0, "jet expand_v = V/K = 2");
        CHECK((float)json_number_value(json_object_get(jet, "norm_eps")) == 1e-5f, "jet norm_eps");
        CHECK(strcmp(json_string_value(json_object_get(jet, "mode")), "chunk") == 0, "jet mode");
        CHECK(jint(swa, "window_size") == 4 && json_object_size(swa) == 1, "swa: window_size only");
        CHECK(jint(gdn, "num_heads") == 2 && jint(gdn, "head_dim") == 16 && jint(gdn, "conv_size") == 4 &&
                  json_number_value(json_object_get(gdn, "expand_v")) == 2.0,
              "gated_deltanet dims");
        CHECK(jint(rw, "num_heads") == 4 && jint(rw, "head_dim") == 16 && jint(rw, "decay_low_rank_dim") > 0,
              "rwkv7 dims");
    }
    json_decref(j);

    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", g_out);
    pn_safetensors *st = pn_st_open(path);
    const pn_st_entry *e = pn_st_find(st, "model.layers.0.self_attn.dynamic_conv1d.kernel_generator.w1.weight");
    CHECK(e && e->ndim == 2 && e->shape[0] == 2 * 32 / 8 && e->shape[1] == HID, "jet w1 (H·V/r, C)");
    e = pn_st_find(st, "model.layers.0.self_attn.dynamic_conv1d.kernel_generator.w2.weight");
    CHECK(e && e->shape[0] == 2 * 32 * 4 && e->shape[1] == 2 * 32 / 8, "jet w2 (H·V·W, H·V/r)");
    CHECK(pn_st_find(st, "model.layers.0.self_attn.q_proj.bias") == NULL, "no bias on a jet layer");
    CHECK(pn_st_find(st, "model.layers.1.self_attn.q_proj.bias") && pn_st_find(st, "model.layers.7.self_attn.k_proj.bias"),
          "q/k biases on attn and swa layers");
    e = pn_st_find(st, "model.layers.2.self_attn.q_proj.weight");
    CHECK(e && e->shape[0] == 64 && e->shape[1] == HID, "swa q_proj (H·D, C)");
    CHECK(pn_st_find(st, "model.layers.3.self_attn.q_conv1d.weight") != NULL, "gated_deltanet q_conv1d");
    CHECK(pn_st_find(st, "model.layers.4.self_attn.v_lora.lora.0.weight") == NULL &&
              pn_st_find(st, "model.layers.6.self_attn.v_lora.lora.0.weight") != NULL,
          "v_lora only after the first rwkv7 layer");
    CHECK(pn_st_find(st, "lm_head.weight") && pn_st_find(st, "model.layers.5.mlp.down_proj.weight") &&
              pn_st_find(st, "model.layers.4.post_attention_layernorm.weight"),
          "backbone tensors kept");
    CHECK(pn_st_find(st, "model.layers.0.self_attn.o_proj.weight") != NULL, "jet o_proj");
    pn_st_close(st);
}

// ---------------------------------------------------------------- (f) published configs

// jetlm_2B.json / jetlm_4B.json as published (data, for the format's ground truth).
static const char *const k_official_2b =
    "{\"architectures\": [\"JetNemotronForCausalLM\"], \"attention_dropout\": 0.0, \"auto_map\": {\"AutoConfig\": "
    "\"configuration_jet_nemotron.JetNemotronConfig\", \"AutoModelForCausalLM\": "
    "\"modeling_jet_nemotron.JetNemotronForCausalLM\"}, \"bos_token_id\": 151643, \"efficient_attention_config\": "
    "{\"jet\": {\"conv_size\": 4, \"dconv_generator_reduction\": 8, \"dconv_implementation\": \"triton\", "
    "\"expand_v\": 2.6666666667, \"head_dim\": 96, \"mode\": \"chunk\", \"norm_eps\": \"1e-5\", \"num_heads\": 12}, "
    "\"swa\": {\"window_size\": 1152}}, \"eos_token_id\": 151643, \"hidden_act\": \"silu\", \"hidden_size\": 1536, "
    "\"initializer_range\": 0.02, \"intermediate_size\": 8960, \"layer_types\": [\"jet\", \"jet\", \"jet\", \"jet\", "
    "\"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"attn\", \"jet\", "
    "\"jet\", \"jet\", \"jet\", \"attn\", \"swa\", \"swa\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\"], "
    "\"max_position_embeddings\": 131072, \"max_window_layers\": 28, \"model_type\": \"jet_nemotron\", "
    "\"num_attention_heads\": 12, \"num_hidden_layers\": 28, \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, "
    "\"rope_scaling\": null, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true, \"torch_dtype\": "
    "\"bfloat16\", \"transformers_version\": \"4.51.3\", \"use_cache\": true, \"use_mrope\": false, \"vocab_size\": "
    "151936}";
static const char *const k_official_4b =
    "{\"architectures\": [\"JetNemotronForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": 151643, "
    "\"efficient_attention_config\": {\"jet\": {\"conv_size\": 4, \"dconv_generator_reduction\": 8, "
    "\"dconv_implementation\": \"triton\", \"expand_v\": 2, \"head_dim\": 128, \"mode\": \"chunk\", \"norm_eps\": "
    "\"1e-5\", \"num_heads\": 16}, \"swa\": {\"window_size\": 2048}}, \"eos_token_id\": 151643, \"hidden_act\": "
    "\"silu\", \"hidden_size\": 2048, \"initializer_range\": 0.02, \"intermediate_size\": 11008, \"layer_types\": "
    "[\"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"swa\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", \"jet\", "
    "\"jet\", \"jet\", \"jet\", \"jet\", \"swa\", \"attn\", \"jet\", \"swa\", \"attn\", \"swa\", \"swa\", \"jet\", "
    "\"jet\", \"swa\", \"jet\", \"swa\", \"jet\", \"jet\", \"jet\", \"jet\", \"attn\", \"jet\", \"jet\", \"jet\"], "
    "\"max_position_embeddings\": 32768, \"max_window_layers\": 36, \"model_type\": \"jet_nemotron\", "
    "\"num_attention_heads\": 16, \"num_hidden_layers\": 36, \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, "
    "\"rope_scaling\": null, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true, \"torch_dtype\": "
    "\"bfloat16\", \"transformers_version\": \"4.51.3\", \"use_cache\": true, \"use_mrope\": false, \"vocab_size\": "
    "151936}";

static void check_official(void) {
    pn_hf_config base, pb;
    pn_hybrid_layout *lay = pn_malloc(sizeof(*lay)), *pl = pn_malloc(sizeof(*pl));
    CHECK(pn_hybrid_config_parse(k_official_2b, "jetlm_2B.json", &base, lay) == 1, "2B parses as jet_nemotron");
    CHECK(base.num_hidden_layers == 28 && base.hidden_size == 1536 && base.qkv_bias == 1 && base.head_dim == 128 &&
              strcmp(base.model_type, "qwen2") == 0,
          "2B base: qwen2, 28 layers, head dim 128, q/k/v biases");
    const pn_block_type *jet = pn_block_type_find("jetblock"), *swa = pn_block_type_find("swa");
    const pn_block_cfg *jd = &lay->dims[pn_hybrid_type_index(jet)];
    CHECK(jd->H == 12 && jd->K == 96 && jd->V == 256 && jd->conv_size == 4 && jd->gen_reduction == 8 &&
              jd->norm_eps == 1e-5f,
          "2B jet: H 12, K 96, V 256 (96 · 2.6666666667), W 4, r 8, eps 1e-5 (got H %d K %d V %d)", jd->H, jd->K, jd->V);
    CHECK(lay->dims[pn_hybrid_type_index(swa)].window == 1152, "2B swa window 1152");
    CHECK(strcmp(lay->type[14]->name, "attn") == 0 && strcmp(lay->type[19]->name, "attn") == 0 &&
              strcmp(lay->type[20]->name, "swa") == 0 && strcmp(lay->type[21]->name, "swa") == 0 &&
              strcmp(lay->type[0]->name, "jetblock") == 0 && strcmp(lay->type[27]->name, "jetblock") == 0,
          "2B layer types");
    CHECK(pn_model_jet_preset("jet-nemotron-2b", &pb, pl) == 0 && pn_hybrid_layout_equal(&base, lay, pl) &&
              pb.hidden_size == base.hidden_size && pb.intermediate_size == base.intermediate_size &&
              pb.vocab_size == base.vocab_size && pb.num_key_value_heads == base.num_key_value_heads &&
              pb.tie_word_embeddings == base.tie_word_embeddings && pb.rope_theta == base.rope_theta,
          "preset jet-nemotron-2b equals the published config");

    CHECK(pn_hybrid_config_parse(k_official_4b, "jetlm_4B.json", &base, lay) == 1, "4B parses");
    jd = &lay->dims[pn_hybrid_type_index(jet)];
    CHECK(jd->H == 16 && jd->K == 128 && jd->V == 256, "4B jet: H 16, K 128, V 256");
    CHECK(pn_model_jet_preset("jet-nemotron-4b", &pb, pl) == 0 && pn_hybrid_layout_equal(&base, lay, pl) &&
              pb.hidden_size == base.hidden_size && pb.intermediate_size == base.intermediate_size,
          "preset jet-nemotron-4b equals the published config");
    pn_hf_config q;
    CHECK(pn_model_preset("jet-nemotron-2b", &q) == 0 && strcmp(q.model_type, "jet_nemotron") == 0 &&
              q.num_hidden_layers == 28,
          "pn_model_preset knows jet-nemotron-2b");

    // (g) state bytes at 64K from the configs alone.
    const int64_t MiB = 1 << 20;
    pn_model_jet_preset("jet-nemotron-2b", &pb, pl);
    pn_hybrid_state_bytes s = pn_hybrid_state_bytes_at(&pb, pl, 65536, 2, 4);
    CHECK(s.attn == 128 * MiB && s.swa == 9 * MiB / 4 && s.linear == 27 * MiB,
          "2B @64K: attn %lld (want %lld), swa %lld (want %lld), jet %lld (want %lld)", (long long)s.attn,
          (long long)(128 * MiB), (long long)s.swa, (long long)(9 * MiB / 4), (long long)s.linear,
          (long long)(27 * MiB));
    pn_model_jet_preset("jet-nemotron-4b", &pb, pl);
    s = pn_hybrid_state_bytes_at(&pb, pl, 65536, 2, 4);
    CHECK(s.attn == 192 * MiB && s.swa == 14 * MiB && s.linear == 52 * MiB, "4B @64K: %lld %lld %lld",
          (long long)s.attn, (long long)s.swa, (long long)s.linear);
    free(lay);
    free(pl);
}

// ---------------------------------------------------------------- (h) bad input

typedef struct {
    const char *text;
} text_arg;

static void parse_text(void *arg) {
    pn_hf_config b;
    pn_hybrid_layout *l = pn_malloc(sizeof(*l));
    pn_hybrid_config_parse(((text_arg *)arg)->text, "bad/config.json", &b, l);
}

// The exported config.json with one edit applied by `edit`.
static char *config_edit(void (*edit)(json_t *)) {
    json_t *j = load_json(g_out);
    edit(j);
    char *s = json_dumps(j, 0);
    json_decref(j);
    return s;
}

static void ed_unknown_type(json_t *j) { json_array_set_new(json_object_get(j, "layer_types"), 3, json_string("lstm")); }
static void ed_short(json_t *j) { json_array_remove(json_object_get(j, "layer_types"), 0); }
static void ed_no_entry(json_t *j) { json_object_del(json_object_get(j, "efficient_attention_config"), "gated_deltanet"); }
static void ed_bad_key(json_t *j) {
    json_object_set_new(json_object_get(json_object_get(j, "efficient_attention_config"), "jet"), "num_head", json_integer(3));
}
static void ed_expand(json_t *j) {
    json_object_set_new(json_object_get(json_object_get(j, "efficient_attention_config"), "jet"), "expand_v", json_real(1.03));
}
static void ed_no_types(json_t *j) { json_object_del(j, "layer_types"); }
static void ed_base(json_t *j) { json_object_set_new(j, "base_model_type", json_string("gpt2")); }
static void ed_layer3_jet(json_t *j) { json_array_set_new(json_object_get(j, "layer_types"), 3, json_string("jet")); }
static void ed_heads(json_t *j) {
    json_object_set_new(json_object_get(json_object_get(j, "efficient_attention_config"), "jet"), "num_heads", json_integer(4));
}

static void load_dir(void *arg) { pn_hybrid_load((const char *)arg); }

// A copy of the exported directory with config.json edited.
static void dir_with_config(const char *dir, void (*edit)(json_t *)) {
    pn_mkdir_p(dir);
    char *text = config_edit(edit);
    char src[512], dst[512];
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    pn_write_file_atomic(dst, text, strlen(text));
    free(text);
    snprintf(src, sizeof src, "%s/model.safetensors", g_out);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    unlink(dst);
    CHECK(symlink(src, dst) == 0, "symlink weights");
}

typedef struct {
    const char *spec;
} spec_arg;

static void parse_spec(void *arg) {
    pn_hybrid_layout *l = pn_malloc(sizeof(*l));
    pn_export_layout_parse(((spec_arg *)arg)->spec, NL, "jet", l);
}

static void check_bad(void) {
    struct {
        void (*edit)(json_t *);
        const char *msg;
    } cases[] = {
        {ed_unknown_type, "layer_types[3] = 'lstm' is not a known layer type"},
        {ed_short, "'layer_types' has 7 entries, expected num_hidden_layers = 8"},
        {ed_no_entry, "efficient_attention_config has no entry 'gated_deltanet'"},
        {ed_bad_key, "efficient_attention_config.jet.num_head' is not known"},
        {ed_expand, "is not an integer"},
        {ed_no_types, "key 'layer_types' is missing"},
        {ed_base, "base_model_type 'gpt2' is not supported"},
    };
    for (size_t i = 0; i < PN_ARRAY_LEN(cases); i++) {
        text_arg a = {config_edit(cases[i].edit)};
        CHECK(expect_exit(parse_text, &a, 2, cases[i].msg), "bad config %zu exits 2: %s", i, cases[i].msg);
        CHECK(expect_exit(parse_text, &a, 2, "bad/config.json"), "message names the file");
        free((char *)a.text);
    }
    char d1[400], d2[400];
    snprintf(d1, sizeof d1, "%s/bad1", g_tmp);
    snprintf(d2, sizeof d2, "%s/bad2", g_tmp);
    dir_with_config(d1, ed_layer3_jet);
    CHECK(expect_exit(load_dir, d1, 2, "model.layers.3.self_attn.dynamic_conv1d.kernel_generator.w1.weight' is missing"),
          "missing tensor exits 2 naming it");
    CHECK(expect_exit(load_dir, d1, 2, "layer_types[3] = 'jet'"), "missing tensor message names the layer type");
    dir_with_config(d2, ed_heads);
    CHECK(expect_exit(load_dir, d2, 2, "model.layers.0.self_attn.q_proj.weight"), "wrong shape exits 2 naming the tensor");

    const char *bad_specs[][2] = {
        {"attn:1 swa:1", "layer 1 is named twice"},
        {"attn:9", "out of range"},
        {"lstm:2", "'lstm' is not a layer type"},
        {"attn", "is not TYPE:LAYERS"},
        {"attn:1-x", "is not a layer index"},
        {"rest:jet rest:gla", "'rest' is given twice"},
    };
    for (size_t i = 0; i < PN_ARRAY_LEN(bad_specs); i++) {
        spec_arg a = {bad_specs[i][0]};
        CHECK(expect_exit(parse_spec, &a, 2, bad_specs[i][1]), "bad SPEC '%s' exits 2", bad_specs[i][0]);
    }
}

static void init_jet_bad(void *arg) {
    (void)arg;
    pn_hf_config c = base_config();
    snprintf(c.model_type, sizeof c.model_type, "jet_nemotron");
    pn_model_init_write(&c, "/tmp/pn_test_export_never", 1, PN_F32);
}

// ---------------------------------------------------------------- main

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/pn_test_export_XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    snprintf(g_base, sizeof g_base, "%s/base", g_tmp);
    snprintf(g_out, sizeof g_out, "%s/hybrid", g_tmp);
    pn_hf_config c = base_config();
    pn_model_init_write(&c, g_base, 11, PN_F32);
    pn_backbone *bb = pn_backbone_load(g_base);
    int64_t n = pn_backbone_numel(bb);
    float *noise = pn_malloc((size_t)n * sizeof(float));
    pn_fill_normal(noise, (size_t)n, 0.0f, 0.1f, 11, 7);
    for (int64_t i = 0; i < n; i++) bb->weights[i] += noise[i];
    free(noise);
    // The perturbed base is the base model of (e).
    pn_hybrid_save(bb, g_base, PN_F32, NULL);  // all attention: a plain-layout hybrid
    mixers *m = pn_calloc(1, sizeof(*m));
    hybrid_set(bb, m, 21);

    int64_t ids[B * T];
    random_ids(ids, B * T, 5);
    float *ref = logits_of(bb, ids);

    // (a) save + load
    pn_hybrid_save(bb, g_out, PN_F32, "test_export");
    pn_backbone *ld = pn_hybrid_load(g_out);
    float *got = logits_of(ld, ids);
    const size_t NV = (size_t)B * T * VOCAB;
    double e_load = rel_err(got, ref, NV);
    CHECK(e_load <= 1e-6, "loaded hybrid logits rel err %.3g > 1e-6", e_load);
    CHECK(memcmp(got, ref, NV * sizeof(float)) == 0, "loaded hybrid logits bitwise equal (same code path)");
    printf("(a) loaded vs in-memory hybrid: rel err %.3g, bitwise %s\n", e_load,
           memcmp(got, ref, NV * sizeof(float)) == 0 ? "yes" : "no");

    // (b) engine over the loaded hybrid
    pn_engine *e = pn_engine_create(ld, B, T, 3);
    int64_t part[B * T], next[B];
    const int P = 5;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < P; t++) part[b * P + t] = ids[b * T + t];
    double e_eng = 0;
    const float *lg = pn_engine_prefill(e, part, P);
    for (int b = 0; b < B; b++) e_eng = fmax(e_eng, rel_err(lg + (size_t)b * VOCAB, got + ((size_t)b * T + P - 1) * VOCAB, VOCAB));
    for (int t = P; t < T; t++) {
        for (int b = 0; b < B; b++) next[b] = ids[b * T + t];
        lg = pn_engine_decode(e, next);
        for (int b = 0; b < B; b++) e_eng = fmax(e_eng, rel_err(lg + (size_t)b * VOCAB, got + ((size_t)b * T + t) * VOCAB, VOCAB));
    }
    CHECK(e_eng <= 1e-4, "engine vs full forward of the loaded hybrid: worst row rel err %.3g > 1e-4", e_eng);
    printf("(b) engine (prefill %d + decode %d) vs full forward: worst row rel err %.3g\n", P, T - P, e_eng);
    pn_engine_free(e);

    // (c) config.json and tensor names
    check_config();

    // (d) round trips of the layout
    pn_hybrid_layout *lay_mem = pn_malloc(sizeof(*lay_mem)), *lay_cfg = pn_malloc(sizeof(*lay_cfg)),
                     *lay_yaml = pn_malloc(sizeof(*lay_yaml)), *lay_spec = pn_malloc(sizeof(*lay_spec));
    pn_hybrid_layout_of(bb, lay_mem);
    pn_hf_config base_back;
    CHECK(pn_hybrid_config_load(g_out, &base_back, lay_cfg) == 1, "exported config is jet_nemotron");
    CHECK(pn_hybrid_layout_equal(&bb->cfg, lay_mem, lay_cfg), "config.json layout = the mixers' layout");
    CHECK(base_back.vocab_size == VOCAB && base_back.qkv_bias == 1 && base_back.rope_theta == 10000.0 &&
              base_back.rms_norm_eps == 1e-6 && base_back.tie_word_embeddings == 0,
          "base config round trip");
    char ypath[512];
    snprintf(ypath, sizeof ypath, "%s/architecture.yaml", g_out);
    pn_hybrid_arch_load(ypath, NL, lay_yaml);
    CHECK(pn_hybrid_layout_equal(&bb->cfg, lay_mem, lay_yaml), "architecture.yaml reads back to the same layout");

    // (e) export from files: base dir + SPEC + --set + linear weights under linear_attn names
    pn_export_layout_parse("attn:1; swa:2,7 gated_deltanet:3 rwkv7:4,6 rest:jet", NL, "gla", lay_spec);
    const char *sets[] = {"num_heads=2", "head_dim=16", "head_v_dim=32", "jet.conv_size=4", "window_size=4",
                          "gated_deltanet.num_heads=2", "gated_deltanet.head_dim=16", "gated_deltanet.head_v_dim=32",
                          "rwkv7.num_heads=4", "rwkv7.head_dim=16"};
    for (size_t i = 0; i < PN_ARRAY_LEN(sets); i++) pn_export_layout_set(lay_spec, sets[i], "jet");
    CHECK(pn_hybrid_layout_equal(&bb->cfg, lay_mem, lay_spec), "SPEC + --set give the in-memory layout");
    char lwpath[512];
    snprintf(lwpath, sizeof lwpath, "%s/linear.safetensors", g_tmp);
    pn_st_writer *w = pn_st_writer_new();
    for (int l = 0; l < NL; l++) {
        if (!m->buf[l]) continue;
        for (int i = 0; i < m->blk[l].n_params; i++) {
            char name[256];
            snprintf(name, sizeof name, "model.layers.%d.linear_attn.%s", l, m->blk[l].spec[i].name);
            pn_st_writer_add_f32(w, name, PN_F32, m->blk[l].spec[i].ndim, m->blk[l].spec[i].shape, m->blk[l].params[i]);
        }
    }
    pn_st_writer_save(w, lwpath);
    pn_backbone *ex = pn_export_build(g_base, lay_spec, lwpath, 99);
    float *got2 = logits_of(ex, ids);
    double e_build = rel_err(got2, ref, NV);
    CHECK(e_build <= 1e-6 && memcmp(got2, ref, NV * sizeof(float)) == 0,
          "export from files: logits rel err %.3g (want bitwise)", e_build);
    printf("(e) export from base + SPEC + linear weights: rel err %.3g\n", e_build);

    // pn_model_init_write_hybrid: a random hybrid in the same layout loads and runs.
    char rpath[512];
    snprintf(rpath, sizeof rpath, "%s/random", g_tmp);
    pn_model_init_write_hybrid(&bb->cfg, lay_mem, rpath, 3, PN_BF16);
    pn_backbone *rnd = pn_hybrid_load(rpath);
    pn_hybrid_layout *lay_rnd = pn_malloc(sizeof(*lay_rnd));
    pn_hybrid_layout_of(rnd, lay_rnd);
    CHECK(pn_hybrid_layout_equal(&bb->cfg, lay_mem, lay_rnd), "random hybrid: same layout back");
    // The in-memory swa layers share the attention's tensors, the file has them per layer: same count.
    CHECK(pn_backbone_numel(rnd) == pn_backbone_numel(ld), "random hybrid: parameter count");
    float *lr = logits_of(rnd, ids);
    int finite = 1;
    for (size_t i = 0; i < NV; i++) finite = finite && isfinite(lr[i]);
    CHECK(finite, "random hybrid: finite logits");
    free(lr);
    free(lay_rnd);
    pn_backbone_free(rnd);
    CHECK(expect_exit(init_jet_bad, NULL, 2, "matches no Jet-Nemotron preset"), "jet_nemotron config of unknown dims");

    // (f), (g), (h)
    check_official();
    check_bad();

    free(got2);
    pn_backbone_free(ex);
    free(got);
    free(ref);
    pn_backbone_free(ld);
    for (int l = 0; l < NL; l++) free(m->buf[l]);
    free(m);
    pn_backbone_free(bb);
    free(lay_mem);
    free(lay_cfg);
    free(lay_yaml);
    free(lay_spec);
    char cmdline[600];
    snprintf(cmdline, sizeof cmdline, "rm -rf '%s'", g_tmp);
    if (system(cmdline) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_summary("test_export");
}
