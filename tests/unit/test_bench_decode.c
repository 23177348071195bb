// test_bench_decode.c — `postnas bench decode`'s accounting and output.
//
// A 2-layer model (hidden 64, 4 heads / 2 KV heads of 16, MLP 128, vocab 97,
// untied embeddings, llama: no biases) is written with pn_model_init_write. Checks:
//  (a) --batch max never over-commits: for a sweep of artificial memory budgets
//      the chosen batch B satisfies weights + need(B) <= budget and
//      weights + need(B + 1) > budget, B is monotone in the budget, a budget below
//      the weights gives 0; the engine created at B allocates no more than the
//      accounting says (states + activations + prompt <= need(B)) and runs; and
//      pn_bench_decode with batch = max and that limit uses exactly that B.
//  (b) the bytes of a decode step equal a hand count from the model's dimensions:
//      layer 0 attn, layer 1 swa (window 8, ring shorter than the context), then
//      layer 1 gla (recurrent state H·K·V read and written).
//  (c) a tiny run (context 32, 3 steps) writes a JSON with every field, the
//      state bytes equal the engine's for its max_context, the rates positive.
#include "blocks/block.h"
#include "search/bench.h"
#include "search/engine.h"
#include "supernet/model_init.h"
#include "test_util.h"
#include <jansson.h>
#include <unistd.h>

#define VOCAB 97
#define HID 64
#define INTER 128
#define HEADS 4
#define KVH 2
#define HD 16

static void model_write(const char *dir) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = VOCAB;
    c.hidden_size = HID;
    c.intermediate_size = INTER;
    c.num_hidden_layers = 2;
    c.num_attention_heads = HEADS;
    c.num_key_value_heads = KVH;
    c.head_dim = HD;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = 0;
    pn_model_init_write(&c, dir, 99, PN_F32);
}

static void tree_remove(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

// ---------------------------------------------------------------- (a)

static void test_max_batch(const char *dir, pn_backbone *bb) {
    const int64_t ctx = 40;
    const int chunk = 8;
    const size_t w = (size_t)pn_backbone_numel(bb) * sizeof(float);
    // Budgets around exact fits: need(k) − 1, need(k), need(k) + 1 for k = 0..20.
    int prev = -1, ok_fit = 1, ok_next = 1, ok_mono = 1;
    for (int k = 0; k <= 20; k++)
        for (int d = -1; d <= 1; d++) {
            const size_t base = w + pn_decode_batch_bytes(bb, k, ctx, chunk);
            const size_t budget = d < 0 ? base - (k > 0) : base + (size_t)d;
            int B = pn_decode_max_batch(bb, ctx, chunk, budget, 1000);
            ok_fit &= w + pn_decode_batch_bytes(bb, B, ctx, chunk) <= budget;
            ok_next &= w + pn_decode_batch_bytes(bb, B + 1, ctx, chunk) > budget;
            ok_mono &= B >= prev;
            int want = d < 0 ? k - 1 : k;
            if (k == 0) want = 0;
            CHECK(B == want, "budget need(%d)%+d: max batch %d, want %d", k, d, B, want);
            prev = B;
        }
    CHECK(ok_fit, "the chosen batch fits its budget for every budget of the sweep");
    CHECK(ok_next, "batch + 1 exceeds the budget for every budget of the sweep");
    CHECK(ok_mono, "max batch is monotone in the budget");
    CHECK(pn_decode_max_batch(bb, ctx, chunk, w - 1, 1000) == 0, "a budget below the weights gives batch 0");
    CHECK(pn_decode_max_batch(bb, ctx, chunk, (size_t)1 << 40, 37) == 37, "the cap bounds the batch");
    CHECK(pn_decode_budget((size_t)10 << 30) == ((size_t)9 << 30), "budget of 10 GiB keeps 9 GiB");
    CHECK(pn_decode_budget((size_t)1 << 30) == ((size_t)768 << 20), "budget of 1 GiB keeps 768 MiB");
    CHECK(pn_decode_budget((size_t)100 << 20) == 0, "budget below the 256 MiB margin is 0");

    // The engine at the chosen batch allocates within the accounting, and runs.
    size_t budget = w + pn_decode_batch_bytes(bb, 5, ctx, chunk) + 100;
    int B = pn_decode_max_batch(bb, ctx, chunk, budget, 1000);
    CHECK(B == 5, "need(5) + 100 bytes gives batch 5 (got %d)", B);
    pn_engine *e = pn_engine_create(bb, B, ctx, chunk);
    size_t real = e->states.cap + e->acts.cap + (size_t)B * ctx * sizeof(int64_t) + (size_t)B * sizeof(int64_t);
    CHECK(real <= pn_decode_batch_bytes(bb, B, ctx, chunk), "engine allocates %zu bytes, accounted %zu", real,
          pn_decode_batch_bytes(bb, B, ctx, chunk));
    CHECK(e->state_bytes == pn_engine_state_bytes_for(bb, B, ctx), "state bytes");
    int64_t *ids = pn_malloc((size_t)B * ctx * sizeof(int64_t));
    for (int64_t i = 0; i < (int64_t)B * ctx; i++) ids[i] = i % VOCAB;
    pn_engine_prefill(e, ids, (int)ctx - 1);
    const float *lg = pn_engine_decode(e, ids);
    CHECK(isfinite(lg[0]) && isfinite(lg[(size_t)B * VOCAB - 1]), "engine at max batch decodes");
    free(ids);
    pn_engine_free(e);

    // pn_bench_decode with batch = max under that limit (its max_context = context + warm-up + steps).
    char out[4200];
    snprintf(out, sizeof out, "%s/max.json", dir);
    pn_bench_decode_args a = {.model_dir = dir, .device = "cpu", .out_json = out, .context = 30, .batch = 0,
                              .prefill_chunk = chunk, .steps = 8, .warmup = 2};
    a.mem_limit_bytes = w + pn_decode_batch_bytes(bb, 3, 40, chunk) + 1;
    pn_bench_decode_result res;
    a.result = &res;
    CHECK(pn_bench_decode(&a) == 0, "bench at max batch runs");
    CHECK(res.batch == 3, "bench decode --batch max under need(3) + 1 bytes uses batch %d, want 3", res.batch);
}

// ---------------------------------------------------------------- (b)

static void test_traffic(pn_backbone *bb) {
    const int B = 3;
    const int64_t ctx = 20;
    const double f = 4.0;
    // Parameters by hand: per layer two norms, q (H·D × C), k and v (KVH·D × C),
    // o (C × H·D), gate and up (I × C), down (C × I); embed and lm_head (V × C),
    // final norm. The untied embedding table is read only at the B looked-up rows.
    const double attn_p = (double)HEADS * HD * HID * 2 + 2.0 * KVH * HD * HID;
    const double layer_p = 2.0 * HID + attn_p + 3.0 * INTER * HID;
    const double weights = f * (2 * layer_p + HID + (double)VOCAB * HID + (double)B * HID);
    const double row = 2.0 * KVH * HD;  // one cache row: K and V over the KV heads

    pn_decode_traffic t = pn_decode_step_traffic(bb, B, ctx);
    double want_r = f * B * row * ctx * 2, want_w = f * B * row * 2;
    CHECK(t.weights == weights, "attn+attn weights read %.0f, hand %.0f", t.weights, weights);
    CHECK(t.state_read == want_r, "attn+attn state read %.0f, hand %.0f", t.state_read, want_r);
    CHECK(t.state_write == want_w, "attn+attn state written %.0f, hand %.0f", t.state_write, want_w);
    CHECK(t.total == weights + want_r + want_w, "attn+attn total");

    // Layer 1 as swa over the same weights with a window of 8 < ctx: its ring holds 8 rows.
    pn_block swa;
    pn_block_cfg cfg = bb->layers[1].attn.cfg;
    cfg.window = 8;
    pn_block_setup(&swa, pn_block_type_find("swa"), &cfg);
    for (int i = 0; i < swa.n_params; i++) swa.params[i] = bb->layers[1].attn.params[i];
    bb->layers[1].mixer = &swa;
    t = pn_decode_step_traffic(bb, B, ctx);
    want_r = f * B * row * (ctx + 8);
    CHECK(t.weights == weights, "attn+swa weights read %.0f, hand %.0f", t.weights, weights);
    CHECK(t.state_read == want_r, "attn+swa state read %.0f, hand %.0f", t.state_read, want_r);
    CHECK(t.state_write == want_w, "attn+swa state written %.0f, hand %.0f", t.state_write, want_w);
    // Before the ring fills (ctx 5 < window) it reads the 5 rows it has.
    t = pn_decode_step_traffic(bb, B, 5);
    CHECK(t.state_read == f * B * row * (5 + 5), "attn+swa at ctx 5: state read %.0f, hand %.0f", t.state_read,
          f * B * row * 10);

    // Layer 1 as gla (H 2, K 16, V 32): state (H, K, V) read and written whole.
    pn_block gla;
    pn_block_cfg gc;
    memset(&gc, 0, sizeof gc);
    gc.C = HID, gc.H = 2, gc.K = 16, gc.V = 32;
    pn_block_setup(&gla, pn_block_type_find("gla"), &gc);
    int64_t gla_p = pn_block_param_count(&gla);
    float *gbuf = pn_calloc((size_t)gla_p, sizeof(float));
    float *p = gbuf;
    for (int i = 0; i < gla.n_params; i++) {
        gla.params[i] = p;
        p += pn_param_numel(&gla.spec[i]);
    }
    bb->layers[1].mixer = &gla;
    t = pn_decode_step_traffic(bb, B, ctx);
    const double rec = 2.0 * 16 * 32;
    const double w_gla = weights + f * ((double)gla_p - attn_p);
    CHECK(t.weights == w_gla, "attn+gla weights read %.0f, hand %.0f", t.weights, w_gla);
    CHECK(t.state_read == f * B * (row * ctx + rec), "attn+gla state read %.0f, hand %.0f", t.state_read,
          f * B * (row * ctx + rec));
    CHECK(t.state_write == f * B * (row + rec), "attn+gla state written %.0f, hand %.0f", t.state_write,
          f * B * (row + rec));
    bb->layers[1].mixer = &bb->layers[1].attn;
    free(gbuf);
}

// ---------------------------------------------------------------- (c)

static void test_json(const char *dir, pn_backbone *bb) {
    char out[4200];
    snprintf(out, sizeof out, "%s/sub/decode.json", dir);
    pn_bench_decode_args a = {.model_dir = dir, .device = "cpu", .out_json = out, .context = 32, .batch = 2,
                              .prefill_chunk = 8, .steps = 3, .warmup = 1};
    CHECK(pn_bench_decode(&a) == 0, "tiny bench runs");
    json_error_t err;
    json_t *j = json_load_file(out, 0, &err);
    CHECK(j != NULL, "JSON parses: %s", err.text);
    if (!j) return;
    const char *strings[] = {"device", "cpu", "date", "model"};
    for (size_t i = 0; i < PN_ARRAY_LEN(strings); i++)
        CHECK(json_is_string(json_object_get(j, strings[i])), "field %s is a string", strings[i]);
    const char *numbers[] = {"context",          "batch",          "prefill_chunk",      "prefill_tokens_per_s",
                             "decode_tokens_per_s", "decode_step_ms_median", "decode_step_ms_min", "state_bytes",
                             "weight_bytes",     "bandwidth_GBps", "floor_step_ms",      "ratio_to_floor"};
    for (size_t i = 0; i < PN_ARRAY_LEN(numbers); i++) {
        json_t *v = json_object_get(j, numbers[i]);
        CHECK(json_is_number(v) && json_number_value(v) > 0, "field %s is a positive number", numbers[i]);
    }
    CHECK(strcmp(json_string_value(json_object_get(j, "device")), "cpu") == 0, "device cpu");
    CHECK(json_integer_value(json_object_get(j, "context")) == 32, "context 32");
    CHECK(json_integer_value(json_object_get(j, "batch")) == 2, "batch 2");
    CHECK(json_integer_value(json_object_get(j, "prefill_chunk")) == 8, "prefill chunk 8");
    CHECK((size_t)json_integer_value(json_object_get(j, "state_bytes")) == pn_engine_state_bytes_for(bb, 2, 32 + 1 + 3),
          "state bytes of the engine at max_context 36");
    CHECK((size_t)json_integer_value(json_object_get(j, "weight_bytes")) == (size_t)pn_backbone_numel(bb) * 4,
          "weight bytes");
    double ms = json_number_value(json_object_get(j, "decode_step_ms_median"));
    double tps = json_number_value(json_object_get(j, "decode_tokens_per_s"));
    CHECK(fabs(tps - 2 / (ms / 1e3)) <= 1e-9 * tps, "decode tokens/s = batch / step time");
    double ratio = json_number_value(json_object_get(j, "ratio_to_floor"));
    double floor_ms = json_number_value(json_object_get(j, "floor_step_ms"));
    CHECK(fabs(ratio - ms / floor_ms) <= 1e-9 * ratio, "ratio = step / floor");
    json_decref(j);
}

int main(void) {
    char dir[] = "/tmp/postnas-test-bench-decode-XXXXXX";
    PN_ASSERT(mkdtemp(dir) != NULL);
    model_write(dir);
    pn_backbone *bb = pn_backbone_load(dir);
    test_max_batch(dir, bb);
    test_traffic(bb);
    test_json(dir, bb);
    pn_backbone_free(bb);
    tree_remove(dir);
    return test_summary("test_bench_decode");
}
