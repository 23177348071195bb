// test_bb_attn_block.c — the attn / swa blocks' decode path against their own
// full-sequence forward: prefill from 0, a prefill that continues a cache, then
// one-token decode steps must reproduce the training forward (≤ 1e-5 relative),
// for full attention, a sliding window smaller than the sequence (ring cache),
// q/k/v biases, an o_proj bias and Qwen3's q/k norm, with GQA and head_dim != C/H.
// The forward itself is pinned to transformers by test_backbone.
#include "test_util.h"
#include "blocks/block.h"
#include "core/rng.h"

#define TOL 1e-5

static void fill_params(pn_block *b, uint64_t seed) {
    for (int i = 0; i < b->n_params; i++) {
        int64_t n = pn_param_numel(&b->spec[i]);
        b->params[i] = pn_malloc((size_t)n * sizeof(float));
        pn_fill_normal(b->params[i], (size_t)n, 0.0f, 0.3f, seed, (uint64_t)i);
        if (strstr(b->spec[i].name, "norm"))
            for (int64_t j = 0; j < n; j++) b->params[i][j] += 1.0f;
    }
}

static void run_case(const char *type, int qkv_bias, int qk_norm) {
    const int B = 2, T = 40, C = 32;
    pn_block_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.C = C;
    cfg.H = 4;
    cfg.H_kv = 2;
    cfg.K = 12;
    cfg.window = 7;
    cfg.qkv_bias = qkv_bias;
    cfg.qk_norm = qk_norm;
    cfg.rope_theta = 10000.0f;
    const pn_block_type *t = pn_block_type_find(type);
    CHECK(t != NULL, "block type %s registered", type);
    if (!t) return;
    pn_block b;
    pn_block_setup(&b, t, &cfg);
    fill_params(&b, 7);
    const size_t N = (size_t)B * T;
    float *x = pn_malloc(N * C * sizeof(float));
    pn_fill_normal(x, N * C, 0.0f, 1.0f, 11, 1);
    float *y_full = pn_calloc(N * C, sizeof(float)), *y_dec = pn_calloc(N * C, sizeof(float));
    float *act = pn_calloc(t->act_floats(&b.cfg, B, T), sizeof(float));
    float *scratch = pn_calloc(t->scratch_floats(&b.cfg, B, T), sizeof(float));
    t->forward(&b, y_full, x, B, T, act, scratch, NULL);

    const int64_t L = T;
    const int64_t sf = pn_block_state_floats(&b, L);
    const int64_t want_kv = 2LL * 2 * 12 * (type[0] == 's' ? 7 : L);
    CHECK(sf == want_kv, "%s state floats %lld, want %lld", type, (long long)sf, (long long)want_kv);
    float *state = pn_calloc((size_t)(B * sf), sizeof(float));
    // Chunks: [0, 13) prefill from zero, [13, 22) a continuing prefill, then decode steps.
    const int cuts[3] = {0, 13, 22};
    float *xc = pn_malloc(N * C * sizeof(float)), *yc = pn_malloc(N * C * sizeof(float));
    for (int s = 0; s < T;) {
        int n = s < cuts[2] ? (s == 0 ? cuts[1] : cuts[2] - cuts[1]) : 1;
        for (int bb = 0; bb < B; bb++)
            memcpy(xc + (size_t)bb * n * C, x + ((size_t)bb * T + s) * C, (size_t)n * C * sizeof(float));
        if (n == 1)
            t->decode(&b, yc, xc, B, state, s, L, scratch, NULL);
        else
            t->prefill(&b, yc, xc, B, n, state, s, L, scratch, NULL);
        for (int bb = 0; bb < B; bb++)
            memcpy(y_dec + ((size_t)bb * T + s) * C, yc + (size_t)bb * n * C, (size_t)n * C * sizeof(float));
        s += n;
    }
    double e = rel_err(y_dec, y_full, N * C);
    printf("%-5s qkv_bias %d qk_norm %d: prefill + decode vs forward rel err %.2e\n", type, qkv_bias, qk_norm, e);
    CHECK(e <= TOL, "%s qkv_bias %d qk_norm %d: decode vs forward %.2e", type, qkv_bias, qk_norm, e);

    // Token-by-token from a fresh state gives the same.
    memset(state, 0, (size_t)(B * sf) * sizeof(float));
    for (int s = 0; s < T; s++) {
        for (int bb = 0; bb < B; bb++) memcpy(xc + (size_t)bb * C, x + ((size_t)bb * T + s) * C, C * sizeof(float));
        t->decode(&b, yc, xc, B, state, s, L, scratch, NULL);
        for (int bb = 0; bb < B; bb++) memcpy(y_dec + ((size_t)bb * T + s) * C, yc + (size_t)bb * C, C * sizeof(float));
    }
    e = rel_err(y_dec, y_full, N * C);
    CHECK(e <= TOL, "%s qkv_bias %d qk_norm %d: decode-only vs forward %.2e", type, qkv_bias, qk_norm, e);

    CHECK(t->flops_per_token(&b.cfg, 1000) > 0, "flops");
    for (int i = 0; i < b.n_params; i++) free(b.params[i]);
    free(x);
    free(y_full);
    free(y_dec);
    free(act);
    free(scratch);
    free(state);
    free(xc);
    free(yc);
}

static void test_specs(void) {
    pn_block_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.C = 128;
    pn_block b;
    pn_block_setup(&b, pn_block_type_find("attn"), &cfg);
    CHECK(b.cfg.H == 2 && b.cfg.K == 64 && b.cfg.H_kv == 2 && b.cfg.rope_theta == 10000.0f, "attn defaults");
    CHECK(b.n_params == 4 && strcmp(b.spec[3].name, "o_proj.weight") == 0, "attn params");
    cfg.qkv_bias = 1;
    cfg.o_bias = 1;
    cfg.qk_norm = 1;
    pn_block_setup(&b, pn_block_type_find("swa"), &cfg);
    CHECK(b.n_params == 10, "swa with biases and norms: %d params", b.n_params);
    CHECK(pn_block_param_index(&b, "q_norm.weight") >= 0 && pn_block_param_index(&b, "o_proj.bias") >= 0,
          "names");
    for (int i = 0; i < b.n_params; i++)
        CHECK(b.spec[i].weight_decay == (strstr(b.spec[i].name, ".weight") && !strstr(b.spec[i].name, "norm")),
              "weight decay flag of %s", b.spec[i].name);
    CHECK(b.cfg.window > 0, "swa window default");
}

int main(void) {
    test_specs();
    run_case("attn", 0, 0);
    run_case("attn", 1, 1);
    run_case("attn", 2, 0);
    run_case("swa", 0, 0);
    run_case("swa", 1, 1);
    return test_summary("test_bb_attn_block");
}
