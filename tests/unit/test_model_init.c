// test_model_init.c — random-weight HF models: the written directory loads as a
// backbone with the preset's published dimensions, weights are a pure function of
// the seed, and bf16 output matches the f32 weights rounded to bf16.
#include "core/fileio.h"
#include "core/safetensors.h"
#include "supernet/backbone.h"
#include "supernet/model_init.h"
#include "test_util.h"

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = pn_read_file(a, &na), *y = pn_read_file(b, &nb);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

int main(void) {
    char dir[] = "/tmp/pn_init_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char d1[512], d2[512], d3[512], p1[600], p2[600], p3[600];
    snprintf(d1, sizeof d1, "%s/a", dir);
    snprintf(d2, sizeof d2, "%s/b", dir);
    snprintf(d3, sizeof d3, "%s/c", dir);
    pn_hf_config cfg;
    CHECK(pn_model_preset("bench-6x256", &cfg) == 0, "preset exists");
    CHECK(pn_model_preset("gpt-17", &cfg) == -1, "unknown preset");
    // Published Qwen2.5-1.5B dimensions (its config.json on the hub).
    pn_hf_config q;
    CHECK(pn_model_preset("qwen2.5-1.5b", &q) == 0 && q.hidden_size == 1536 && q.num_hidden_layers == 28 &&
              q.num_attention_heads == 12 && q.num_key_value_heads == 2 && q.intermediate_size == 8960 &&
              q.vocab_size == 151936 && q.qkv_bias,
          "qwen2.5-1.5b dims");
    CHECK(pn_model_preset("qwen3-1.7b", &q) == 0 && q.hidden_size == 2048 && q.num_key_value_heads == 8 &&
              q.head_dim == 128 && q.qk_norm && !q.qkv_bias,
          "qwen3-1.7b dims");

    pn_model_init_write(&cfg, d1, 5, PN_F32);
    pn_model_init_write(&cfg, d2, 5, PN_F32);
    pn_model_init_write(&cfg, d3, 5, PN_BF16);
    snprintf(p1, sizeof p1, "%s/model.safetensors", d1);
    snprintf(p2, sizeof p2, "%s/model.safetensors", d2);
    snprintf(p3, sizeof p3, "%s/model.safetensors", d3);
    CHECK(files_equal(p1, p2), "same seed gives identical weights");

    pn_backbone *bb = pn_backbone_load(d1);
    CHECK(bb->n_layers == 6 && bb->C == 256 && bb->V == 4096 && bb->tied, "loaded dims");
    pn_safetensors *a = pn_st_open(p1), *b = pn_st_open(p3);
    const char *name = "model.layers.3.mlp.up_proj.weight";
    int nd;
    int64_t sh[8];
    float *wa = pn_st_load_f32(a, name, &nd, sh);
    float *wb = pn_st_load_f32(b, name, &nd, sh);
    int64_t n = sh[0] * sh[1];
    int same = 1;
    double sum2 = 0;
    for (int64_t i = 0; i < n; i++) {
        if (pn_bf16_to_f32(pn_f32_to_bf16(wa[i])) != wb[i]) same = 0;
        sum2 += (double)wa[i] * wa[i];
    }
    CHECK(same, "bf16 file holds the f32 weights rounded to bf16");
    double std = sqrt(sum2 / (double)n);
    CHECK(fabs(std - 0.02) < 0.001, "weights ~ N(0, 0.02): std %g", std);
    free(wa);
    free(wb);
    pn_st_close(a);
    pn_st_close(b);
    // a forward runs and the loss of near-uniform logits is close to ln(V)
    int64_t ids[2 * 16];
    for (int i = 0; i < 32; i++) ids[i] = (i * 37) % 4096;
    pn_backbone_forward(bb, ids, 2, 16);
    double loss = pn_backbone_loss(bb);
    CHECK(fabs(loss - log(4096.0)) < 0.1, "loss %g vs ln V %g", loss, log(4096.0));
    pn_backbone_free(bb);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return test_summary("test_model_init");
}
