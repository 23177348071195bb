// test_engine.c — the hybrid inference engine against the backbone's full forward.
//
// Two small random models are written with pn_model_init_write (qwen2: 3 layers,
// tied, q/k/v biases; qwen3: 4 layers, untied, q/k norms; hidden 64, 4 heads /
// 2 KV heads of 16, vocab 97) and every weight is then perturbed so norms,
// biases and the JetBlock generator are non-trivial. Checks:
//  (a) with every registered block type as the mixer of all layers, and with
//      mixed hybrids, the engine's logits equal the backbone's full-forward
//      logits (pn_backbone_forward with the same mixers — computed by a different
//      code path: blocks' forward over whole sequences, MLP over all rows) at
//      every position: for prefill chunks 1, 3, 8 and the whole prompt, every
//      prompt length p is prefilled and then decoded (to the end of the context
//      for p = 1 and the whole prompt, 3 steps otherwise), and the sequence is
//      also fed as continued prefills of 4, 7, 5 tokens.
//      Relative error per (sequence, position) logits row <= 1e-4. SWA has a
//      window of 4 over a context of 16, so its ring wraps. rwkv7 stacks check
//      the value residual (v_first) across passes and across a layer (mamba2)
//      that reuses the mixer scratch the first rwkv7 layer's v lives in.
//  (b) greedy generation equals the argmax of repeated full forwards over the
//      prompt + generated tokens (one forward per step and sequence), with and
//      without a stop token chosen so that one sequence stops early.
//  (c) pn_engine_state_bytes_for and the engine's allocated bytes equal state
//      sizes written out here by hand from BLOCKS.md's state definitions.
//  (d) a context overflow and a token outside the vocabulary exit 2.
#include "blocks/block.h"
#include "blocks/block_util.h"
#include "core/rng.h"
#include "search/engine.h"
#include "supernet/model_init.h"
#include "test_util.h"
#include <unistd.h>

#define VOCAB 97
#define HID 64
#define NB 3      // sequences per batch
#define TP 10     // prompt length in (a)
#define TTOT 16   // context in (a)
#define SWA_WINDOW 4
#define TOL 1e-4

static double g_worst = 0.0;  // largest relative error seen in (a)

// ---------------------------------------------------------------- models

static pn_backbone *model_make(const char *dir, const char *type, int layers, int tied, uint64_t seed) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "%s", type);
    snprintf(c.architecture, sizeof c.architecture, "%s",
             strcmp(type, "qwen3") == 0 ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = VOCAB;
    c.hidden_size = HID;
    c.intermediate_size = 128;
    c.num_hidden_layers = layers;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = tied;
    c.qkv_bias = strcmp(type, "qwen2") == 0;
    c.qk_norm = strcmp(type, "qwen3") == 0;
    pn_model_init_write(&c, dir, seed, PN_F32);
    pn_backbone *bb = pn_backbone_load(dir);
    int64_t n = pn_backbone_numel(bb);
    float *noise = pn_malloc((size_t)n * sizeof(float));
    pn_fill_normal(noise, (size_t)n, 0.0f, 0.1f, seed, 7);
    for (int64_t i = 0; i < n; i++) bb->weights[i] += noise[i];
    free(noise);
    return bb;
}

static void model_remove(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

// ---------------------------------------------------------------- mixers

// Small dimensions per linear block type (BLOCKS.md names: H heads, K key dim,
// V value dim; mamba2: K = head dim P, H·P = 2C).
static void linear_cfg(pn_block_cfg *c, const char *type) {
    c->C = HID;
    c->conv_size = 4;
    if (strcmp(type, "jetblock") == 0) {
        c->H = 2, c->K = 16, c->V = 32, c->gen_reduction = 8;
    } else if (strcmp(type, "gated_deltanet") == 0) {
        c->H = 2, c->K = 16, c->V = 32;
    } else if (strcmp(type, "deltanet") == 0) {
        c->H = 2, c->K = 16, c->V = 16;
    } else if (strcmp(type, "gla") == 0 || strcmp(type, "retnet") == 0) {
        c->H = 2, c->K = 16, c->V = 32;
    } else if (strcmp(type, "mamba2") == 0) {
        c->H = 4, c->K = 32, c->d_state = 16, c->n_groups = 1, c->expand = 2;
    } else if (strcmp(type, "rwkv7") == 0) {
        c->H = 4, c->K = 16, c->V = 16;
    }
}

typedef struct {
    pn_block blk;
    float *buf;
} slot;

// Points layer l's mixer at a block of `type`: attn = the layer's own attention,
// swa = its weights with a window, anything else = fresh random parameters.
static void mixer_set(pn_backbone *bb, slot *s, int l, const char *type, int first_rwkv, uint64_t seed) {
    pn_bb_layer *ly = &bb->layers[l];
    const pn_block_type *t = pn_block_type_find(type);
    PN_ASSERT(t != NULL);
    s->buf = NULL;
    if (strcmp(type, "attn") == 0) {
        ly->mixer = &ly->attn;
        return;
    }
    if (strcmp(type, "swa") == 0) {
        pn_block_cfg cfg = ly->attn.cfg;
        cfg.window = SWA_WINDOW;
        pn_block_setup(&s->blk, t, &cfg);
        PN_ASSERT(s->blk.n_params == ly->attn.n_params);
        for (int i = 0; i < s->blk.n_params; i++) s->blk.params[i] = ly->attn.params[i];
        ly->mixer = &s->blk;
        return;
    }
    pn_block_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    linear_cfg(&cfg, type);
    cfg.layer_idx = l;
    cfg.first_rwkv = first_rwkv;
    pn_block_setup(&s->blk, t, &cfg);
    int64_t total = pn_block_param_count(&s->blk);
    s->buf = pn_malloc((size_t)total * sizeof(float));
    float *p = s->buf;
    for (int i = 0; i < s->blk.n_params; i++) {
        s->blk.params[i] = p;
        p += pn_param_numel(&s->blk.spec[i]);
    }
    pn_block_init_params(&s->blk, seed);
    float *noise = pn_malloc((size_t)total * sizeof(float));
    pn_fill_normal(noise, (size_t)total, 0.0f, 0.05f, seed, 1000 + (uint64_t)l);
    for (int64_t i = 0; i < total; i++) s->buf[i] += noise[i];
    free(noise);
    ly->mixer = &s->blk;
}

// Sets every layer's mixer from types[0..n_layers); the first rwkv7 layer gets first_rwkv.
static void hybrid_set(pn_backbone *bb, slot *slots, const char *const *types, uint64_t seed) {
    int seen_rwkv = 0;
    for (int l = 0; l < bb->n_layers; l++) {
        int first = strcmp(types[l], "rwkv7") == 0 && !seen_rwkv;
        if (first) seen_rwkv = 1;
        mixer_set(bb, &slots[l], l, types[l], first, seed + (uint64_t)l);
    }
}

static void hybrid_clear(pn_backbone *bb, slot *slots) {
    for (int l = 0; l < bb->n_layers; l++) {
        free(slots[l].buf);
        slots[l].buf = NULL;
        bb->layers[l].mixer = &bb->layers[l].attn;
    }
}

static void hybrid_name(char *out, size_t n, const pn_backbone *bb, const char *const *types) {
    size_t k = 0;
    out[0] = 0;
    for (int l = 0; l < bb->n_layers && k < n; l++)
        k += (size_t)snprintf(out + k, n - k, "%s%s", l ? "," : "", types[l]);
}

static void random_ids(int64_t *ids, size_t n, uint64_t seed) {
    float *u = pn_malloc(n * sizeof(float));
    pn_fill_uniform(u, n, 0.0f, 1.0f, seed, 3);
    for (size_t i = 0; i < n; i++) ids[i] = PN_MIN((int64_t)(u[i] * VOCAB), (int64_t)VOCAB - 1);
    free(u);
}

// ---------------------------------------------------------------- (a) logits

// Largest relative error of the engine's (NB, V) logits against the reference at position t.
static double cmp_logits(const float *eng, const float *ref, int t) {
    double worst = 0.0;
    for (int b = 0; b < NB; b++)
        worst = fmax(worst, rel_err(eng + (size_t)b * VOCAB, ref + ((size_t)b * TTOT + t) * VOCAB, VOCAB));
    return worst;
}

static void prefix(int64_t *dst, const int64_t *ids, int t0, int len) {
    for (int b = 0; b < NB; b++)
        for (int t = 0; t < len; t++) dst[(size_t)b * len + t] = ids[(size_t)b * TTOT + t0 + t];
}

static void check_logits(pn_backbone *bb, const char *const *types, uint64_t seed) {
    slot slots[8];
    char name[256];
    hybrid_name(name, sizeof name, bb, types);
    hybrid_set(bb, slots, types, seed);
    int64_t ids[NB * TTOT], part[NB * TTOT], next[NB];
    random_ids(ids, NB * TTOT, seed);
    pn_backbone_forward(bb, ids, NB, TTOT);
    float *ref = pn_malloc((size_t)NB * TTOT * VOCAB * sizeof(float));
    memcpy(ref, bb->logits, (size_t)NB * TTOT * VOCAB * sizeof(float));

    const int chunks[] = {1, 3, 8, TP};
    const int pieces[] = {4, 7, 5};  // continued prefills over the whole context
    double err_prefill = 0.0, err_decode = 0.0, err_cont = 0.0;
    for (size_t ci = 0; ci < PN_ARRAY_LEN(chunks); ci++) {
        pn_engine *e = pn_engine_create(bb, NB, TTOT, chunks[ci]);
        for (int p = 1; p <= TP; p++) {
            pn_engine_reset(e);
            prefix(part, ids, 0, p);
            err_prefill = fmax(err_prefill, cmp_logits(pn_engine_prefill(e, part, p), ref, p - 1));
            // Decode to the end of the context after the shortest and the whole prompt,
            // a few steps after the others (every position is still decoded).
            const int stop = (p == 1 || p == TP) ? TTOT : PN_MIN(TTOT, p + 3);
            for (int t = p; t < stop; t++) {
                for (int b = 0; b < NB; b++) next[b] = ids[(size_t)b * TTOT + t];
                err_decode = fmax(err_decode, cmp_logits(pn_engine_decode(e, next), ref, t));
            }
            CHECK(e->pos == stop, "%s: engine position %lld, want %d", name, (long long)e->pos, stop);
        }
        pn_engine_reset(e);
        int t0 = 0;
        for (size_t k = 0; k < PN_ARRAY_LEN(pieces); k++) {
            prefix(part, ids, t0, pieces[k]);
            t0 += pieces[k];
            err_cont = fmax(err_cont, cmp_logits(pn_engine_prefill(e, part, pieces[k]), ref, t0 - 1));
        }
        pn_engine_free(e);
    }
    double worst = fmax(err_prefill, fmax(err_decode, err_cont));
    g_worst = fmax(g_worst, worst);
    printf("  %-36s prefill %.2e  decode %.2e  continued %.2e\n", name, err_prefill, err_decode, err_cont);
    CHECK(worst <= TOL, "%s: engine logits vs full forward: rel err prefill %.3e decode %.3e continued %.3e > %g",
          name, err_prefill, err_decode, err_cont, TOL);
    free(ref);
    hybrid_clear(bb, slots);
}

// ---------------------------------------------------------------- (b) greedy

#define GT 6    // prompt
#define GNEW 8  // new tokens

// Argmax (lowest id on ties) of the last row of a fresh full forward over seq (1, len);
// *gap = top-1 minus top-2 logit, to show how far the decision is from a tie.
static int64_t ref_next(pn_backbone *bb, const int64_t *seq, int len, double *gap) {
    pn_backbone_forward(bb, seq, 1, len);
    const float *row = bb->logits + (size_t)(len - 1) * VOCAB;
    int64_t best = 0;
    for (int v = 1; v < VOCAB; v++)
        if (row[v] > row[best]) best = v;
    float second = -INFINITY;
    for (int v = 0; v < VOCAB; v++)
        if (v != best && row[v] > second) second = row[v];
    *gap = row[best] - second;
    return best;
}

static void check_greedy(pn_backbone *bb, const char *const *types, uint64_t seed) {
    slot slots[8];
    char name[256];
    hybrid_name(name, sizeof name, bb, types);
    hybrid_set(bb, slots, types, seed);
    int64_t prompt[NB * GT], ref[NB][GNEW], seq[GT + GNEW];
    random_ids(prompt, NB * GT, seed + 11);
    double min_gap = INFINITY;
    for (int b = 0; b < NB; b++) {
        memcpy(seq, prompt + (size_t)b * GT, GT * sizeof(int64_t));
        for (int s = 0; s < GNEW; s++) {
            double gap;
            ref[b][s] = ref_next(bb, seq, GT + s, &gap);
            min_gap = fmin(min_gap, gap);
            seq[GT + s] = ref[b][s];
        }
    }
    // A stop token that sequence 0 first produces at some step k >= 1, so it stops early.
    int64_t stop = -1;
    for (int k = 1; k < GNEW && stop < 0; k++) {
        int fresh = 1;
        for (int j = 0; j < k; j++) fresh &= ref[0][j] != ref[0][k];
        if (fresh) stop = ref[0][k];
    }
    CHECK(stop >= 0, "%s: no usable stop token in sequence 0's greedy output", name);

    pn_engine *e = pn_engine_create(bb, NB, GT + GNEW - 1, 4);
    int64_t out[NB * GNEW];
    int out_len[NB];
    for (int with_stop = 0; with_stop <= 1; with_stop++) {
        int64_t stops[2] = {stop, VOCAB + 5};  // the second never occurs
        int n = pn_engine_generate_greedy(e, prompt, GT, GNEW, stops, with_stop ? 2 : 0, out, out_len);
        int longest = 0, mismatches = 0;
        for (int b = 0; b < NB; b++) {
            int want = GNEW;
            if (with_stop)
                for (int s = 0; s < GNEW; s++)
                    if (ref[b][s] == stop) {
                        want = s + 1;
                        break;
                    }
            longest = PN_MAX(longest, want);
            CHECK(out_len[b] == want, "%s: sequence %d generated %d tokens, want %d (stop %s)", name, b, out_len[b],
                  want, with_stop ? "on" : "off");
            for (int s = 0; s < GNEW; s++) mismatches += out[(size_t)b * GNEW + s] != (s < want ? ref[b][s] : -1);
        }
        CHECK(mismatches == 0, "%s: %d generated tokens differ from the argmax of full forwards (stop %s)", name,
              mismatches, with_stop ? "on" : "off");
        CHECK(n == longest, "%s: generate returned %d, want %d", name, n, longest);
        if (with_stop) printf("  %-36s greedy ok, stop %lld ends sequence 0 after %d tokens; min top-2 gap %.3g\n",
                              name, (long long)stop, out_len[0], min_gap);
    }
    pn_engine_free(e);
    hybrid_clear(bb, slots);
}

// ---------------------------------------------------------------- (c) state bytes

// Elements per sequence by hand from BLOCKS.md / the block docs, with the dims of linear_cfg.
static int64_t hand_state(const char *type, int64_t ctx) {
    const int64_t Hkv = 2, hd = 16, W = 4;
    if (strcmp(type, "attn") == 0) return 2 * Hkv * hd * ctx;  // K and V caches
    if (strcmp(type, "swa") == 0) return 2 * Hkv * hd * PN_MIN((int64_t)SWA_WINDOW, ctx);
    if (strcmp(type, "jetblock") == 0) return 2 * 16 * 32 + (W - 1) * (2 * 32);         // S + raw v rows
    if (strcmp(type, "gated_deltanet") == 0) return 2 * 16 * 32 + (W - 1) * (2 * 2 * 16 + 2 * 32);  // q, k, v convs
    if (strcmp(type, "deltanet") == 0) return 2 * 16 * 16 + (W - 1) * (2 * 2 * 16 + 2 * 16);
    if (strcmp(type, "gla") == 0 || strcmp(type, "retnet") == 0) return 2 * 16 * 32;
    if (strcmp(type, "mamba2") == 0) return 4 * 16 * 32 + (W - 1) * (2 * HID + 2 * 1 * 16);  // S (H,N,P) + xBC rows
    if (strcmp(type, "rwkv7") == 0) return 4 * 16 * 16 + HID;                               // S (H,K,K) + x_prev
    return -1;
}

static void check_state_bytes(pn_backbone *bb, const char *const *types) {
    slot slots[8];
    char name[256];
    hybrid_name(name, sizeof name, bb, types);
    hybrid_set(bb, slots, types, 5);
    const int64_t ctxs[] = {3, 100};
    const int batches[] = {1, 3};
    for (size_t i = 0; i < PN_ARRAY_LEN(ctxs); i++)
        for (size_t j = 0; j < PN_ARRAY_LEN(batches); j++) {
            int64_t want = 0;
            for (int l = 0; l < bb->n_layers; l++) want += batches[j] * hand_state(types[l], ctxs[i]) * 4;
            size_t got = pn_engine_state_bytes_for(bb, batches[j], ctxs[i]);
            CHECK((int64_t)got == want, "%s: state bytes at batch %d, ctx %lld: %zu, by hand %lld", name, batches[j],
                  (long long)ctxs[i], got, (long long)want);
            pn_engine *e = pn_engine_create(bb, batches[j], ctxs[i], 8);
            CHECK((int64_t)pn_engine_state_bytes(e) == want, "%s: engine allocated %zu state bytes, by hand %lld",
                  name, pn_engine_state_bytes(e), (long long)want);
            pn_engine_free(e);
        }
    hybrid_clear(bb, slots);
}

// ---------------------------------------------------------------- (d) bad input

static pn_backbone *g_bb;

static void overflow_context(void *arg) {
    pn_engine *e = pn_engine_create(g_bb, 1, 4, 2);
    int64_t ids[5] = {1, 2, 3, 4, 5};
    pn_engine_prefill(e, ids, 5);
}

static void bad_token(void *arg) {
    pn_engine *e = pn_engine_create(g_bb, 2, 8, 2);
    int64_t ids[4] = {1, 2, 3, VOCAB};
    pn_engine_prefill(e, ids, 2);
}

int main(void) {
    char dir_a[] = "/tmp/pn_test_engine_a_XXXXXX", dir_b[] = "/tmp/pn_test_engine_b_XXXXXX";
    PN_ASSERT(mkdtemp(dir_a) && mkdtemp(dir_b));
    pn_backbone *A = model_make(dir_a, "qwen2", 3, 1, 21);
    pn_backbone *Bm = model_make(dir_b, "qwen3", 4, 0, 22);

    printf("(a) engine vs full forward, max relative error per logits row:\n");
    for (int i = 0; i < pn_block_type_count(); i++) {
        const char *t = pn_block_type_at(i)->name;
        const char *types[3] = {t, t, t};
        check_logits(A, types, 100 + (uint64_t)i);
    }
    const char *h1[] = {"attn", "jetblock", "swa"};
    const char *h2[] = {"rwkv7", "mamba2", "rwkv7"};  // v_first across a layer that reuses the scratch
    const char *h3[] = {"gla", "attn", "rwkv7", "mamba2"};
    const char *h4[] = {"swa", "gated_deltanet", "deltanet", "retnet"};
    const char *h5[] = {"jetblock", "rwkv7", "swa", "rwkv7"};
    check_logits(A, h1, 201);
    check_logits(A, h2, 202);
    check_logits(Bm, h3, 203);
    check_logits(Bm, h4, 204);
    check_logits(Bm, h5, 205);
    printf("(a) worst relative error %.3e (tolerance %g)\n", g_worst, TOL);

    printf("(b) greedy generation vs argmax of repeated full forwards:\n");
    check_greedy(A, h1, 301);
    check_greedy(Bm, h3, 302);
    check_greedy(Bm, h5, 303);

    const char *s1[] = {"attn", "attn", "attn"};
    const char *s2[] = {"attn", "swa", "jetblock"};
    const char *s3[] = {"gated_deltanet", "deltanet", "gla"};
    const char *s4[] = {"retnet", "mamba2", "rwkv7"};
    check_state_bytes(A, s1);
    check_state_bytes(A, s2);
    check_state_bytes(A, s3);
    check_state_bytes(A, s4);

    g_bb = A;
    CHECK(expect_exit(overflow_context, NULL, 2, "max_context"), "context overflow must exit 2");
    CHECK(expect_exit(bad_token, NULL, 2, "outside the vocabulary"), "token id out of range must exit 2");

    pn_backbone_free(A);
    pn_backbone_free(Bm);
    model_remove(dir_a);
    model_remove(dir_b);
    return test_summary("test_engine");
}
