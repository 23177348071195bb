// test_cuda_engine.c — the CUDA inference engine (search/engine_cuda.c) against the CPU
// engine (search/engine.c, fp32, itself checked against the full forward by
// tests/unit/test_engine.c) on the same weights.
//
// Models (as tests/unit/test_engine.c builds them): A = qwen2, 3 layers, tied, q/k/v
// biases, hidden 64, 4 heads / 2 KV heads of 16 (GQA group 2); Bm = qwen3, 4 layers,
// untied, q/k norms; Cm = llama-style, 2 layers, hidden 128, 6 heads / 1 KV head of
// 128 (Jet-Nemotron-2B's group of 6 and head dim), JetBlock K 96 / V 256 (its state
// shape per head), a 600-token context (the split-K attention then has many
// partitions). Vocab 97 (A, Bm) or 131 (Cm). Every weight is perturbed, then rounded
// to bf16 in place, so the CPU engine runs exactly the weights the GPU holds and a
// check measures only the GPU's bf16 activations and fp32 arithmetic.
//
// Checks, each printed with its measured error:
//  (a) logits after prefill and after each decode step, normalized error
//      ‖gpu − cpu‖ / ‖cpu‖ over the (B, V) logits <= 1e-2 (bf16 activations: each
//      GEMM input is rounded once, ~2^-9 relative, a few layers deep), NaN fails.
//      Every block type (attn, swa, jetblock, gated_deltanet, deltanet, gla, retnet,
//      mamba2, rwkv7) alone and mixed hybrids (rwkv7's value residual across layers);
//      prefill chunks 1, 5 and 16 (16 > prompt: one pass) and prefill groups of all 3
//      or 2 sequences; a prompt of 10 then 6 decode steps (context 16, so the swa ring
//      of 4 wraps), and continued prefills of 7 then 5 tokens then 4 decode steps;
//      hybrids with a
//      delta-rule block once more with that block's prefill through the chunked
//      pn_cuda_gated_delta_fwd instead of the fused scan. The engine's states and
//      activations are poisoned with NaN bytes at every reset, so anything read
//      before it is written fails the check.
//  (b) the decode step through the captured CUDA graph equals the eager launch
//      sequence (same kernels and cuBLASLt plans: error 0 expected, tolerance 1e-5).
//  (c) greedy generation equals the CPU engine's tokens for every step whose CPU
//      top-1/top-2 logit gap is clear (> 0.05 · rms of the row, i.e. ≥ 5× the
//      tolerated error); a sequence is compared up to its first unclear step (from
//      there on the two may legitimately part).
//  (d) max batch: for a sweep of budgets the chosen batch fits and one more does not
//      (by the accounting); an engine at that batch takes exactly weights + states +
//      activations from the allocator at creation, and after prefill + decode no more
//      than the accounted total (allocator in-use + cached bytes).
// Without a CUDA device the test prints "no CUDA device" and exits 1.
#include "blocks/block.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_engine.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "search/engine.h"
#include "search/engine_cuda.h"
#include "supernet/model_init.h"
#include <math.h>
#include <time.h>
#include <unistd.h>

#define GPU_TEST_SEED 20251124
#include "gpu_test_util.h"

#define TOL 1e-2
#define TOL_GRAPH 1e-5
#define NB 3
#define SWA_WINDOW 4

// ---------------------------------------------------------------- models

typedef struct {
    const char *name;
    const char *type;  // qwen2 | qwen3 | llama
    int layers, hidden, heads, kv_heads, head_dim, vocab, tied;
} model_spec;

static const model_spec MODEL_A = {"A", "qwen2", 3, 64, 4, 2, 16, 97, 1};
static const model_spec MODEL_B = {"Bm", "qwen3", 4, 64, 4, 2, 16, 97, 0};
static const model_spec MODEL_C = {"Cm", "llama", 2, 128, 6, 1, 128, 131, 0};

typedef struct {
    pn_block blk;
    float *buf;
} slot;

static void round_all(float *x, size_t n) { round_bf16(x, n); }

static pn_backbone *model_make(const model_spec *s, char *dir, uint64_t seed) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "%s", s->type);
    snprintf(c.architecture, sizeof c.architecture, "%s",
             strcmp(s->type, "qwen3") == 0 ? "Qwen3ForCausalLM"
                                             : (strcmp(s->type, "llama") == 0 ? "LlamaForCausalLM" : "Qwen2ForCausalLM"));
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = s->vocab;
    c.hidden_size = s->hidden;
    c.intermediate_size = 2 * s->hidden;
    c.num_hidden_layers = s->layers;
    c.num_attention_heads = s->heads;
    c.num_key_value_heads = s->kv_heads;
    c.head_dim = s->head_dim;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = s->tied;
    c.qkv_bias = strcmp(s->type, "qwen2") == 0;
    c.qk_norm = strcmp(s->type, "qwen3") == 0;
    pn_model_init_write(&c, dir, seed, PN_F32);
    pn_backbone *bb = pn_backbone_load(dir);
    int64_t n = pn_backbone_numel(bb);
    float *noise = pn_malloc((size_t)n * sizeof(float));
    pn_fill_normal(noise, (size_t)n, 0.0f, 0.1f, seed, 7);
    for (int64_t i = 0; i < n; i++) bb->weights[i] += noise[i];
    free(noise);
    round_all(bb->weights, (size_t)n);
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

// Linear block dims: small for A / Bm; Jet-Nemotron's head shape for Cm.
static void linear_cfg(pn_block_cfg *c, const char *type, int hidden) {
    c->C = hidden;
    c->conv_size = 4;
    if (hidden >= 128) {
        c->H = 2, c->K = 96, c->V = 256, c->gen_reduction = 8;
        return;
    }
    if (strcmp(type, "jetblock") == 0)
        c->H = 2, c->K = 16, c->V = 32, c->gen_reduction = 8;
    else if (strcmp(type, "gated_deltanet") == 0)
        c->H = 2, c->K = 16, c->V = 32;
    else if (strcmp(type, "deltanet") == 0)
        c->H = 2, c->K = 16, c->V = 16;
    else if (strcmp(type, "gla") == 0 || strcmp(type, "retnet") == 0)
        c->H = 2, c->K = 16, c->V = 32;
    else if (strcmp(type, "mamba2") == 0)
        c->H = 4, c->K = 32, c->d_state = 16, c->n_groups = 1, c->expand = 2;
    else if (strcmp(type, "rwkv7") == 0)
        c->H = 4, c->K = 16, c->V = 16;
}

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
        for (int i = 0; i < s->blk.n_params; i++) s->blk.params[i] = ly->attn.params[i];
        ly->mixer = &s->blk;
        return;
    }
    pn_block_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    linear_cfg(&cfg, type, bb->C);
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
    round_all(s->buf, (size_t)total);
    ly->mixer = &s->blk;
}

// The first rwkv7 layer gets first_rwkv (it sets the value residual v_first).
static void hybrid_set(pn_backbone *bb, slot *slots, const char *const *types, uint64_t seed) {
    int seen_rwkv = 0;
    for (int l = 0; l < bb->n_layers; l++) {
        const int first = strcmp(types[l], "rwkv7") == 0 && !seen_rwkv;
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

static void hybrid_name(char *out, size_t n, const char *model, const pn_backbone *bb, const char *const *types) {
    size_t k = (size_t)snprintf(out, n, "%s:", model);
    for (int l = 0; l < bb->n_layers && k < n; l++) k += (size_t)snprintf(out + k, n - k, "%s%s", l ? "," : "", types[l]);
}

static void random_ids(int64_t *ids, size_t n, int V, uint64_t seed) {
    pn_rng r = pn_rng_make(seed, 3);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)pn_rng_below(&r, (uint64_t)V);
}

// ---------------------------------------------------------------- (a), (b) logits

// A script of engine calls both engines run: prefill pieces, then decode steps.
typedef struct {
    int n_pieces;
    int pieces[4];
    int n_decode;
} script;

typedef struct {
    double prefill, decode;  // worst normalized error over the script's calls
} errs;

static float *g_gpu_logits = NULL;

// Runs the script on both engines over ids (NB, total) and returns the worst errors.
// graph_ref, when not NULL, receives the GPU logits of every call (NB·V each) or is
// compared against them (graph_cmp = 1: returns the largest difference in *graph_err).
static errs run_script(pn_engine *ce, pn_cuda_engine *ge, const script *sc, const int64_t *ids, int total,
                       float *graph_ref, int graph_cmp, double *graph_err) {
    const int V = ce->V;
    errs r = {0.0, 0.0};
    int64_t *part = pn_malloc((size_t)NB * total * sizeof(int64_t)), next[NB];
    pn_engine_reset(ce);
    pn_cuda_engine_reset(ge);
    pn_cuda_engine_poison(ge);
    int t0 = 0, call = 0;
    for (int k = 0; k < sc->n_pieces; k++) {
        const int n = sc->pieces[k];
        for (int b = 0; b < NB; b++) memcpy(part + (size_t)b * n, ids + (size_t)b * total + t0, n * sizeof(int64_t));
        const float *cl = pn_engine_prefill(ce, part, n);
        pn_cuda_engine_prefill(ge, part, n);
        pn_cuda_engine_logits_get(ge, g_gpu_logits);
        r.prefill = fmax(r.prefill, rel_err(g_gpu_logits, cl, (size_t)NB * V));
        if (graph_ref) {
            float *ref = graph_ref + (size_t)call * NB * V;
            if (graph_cmp)
                *graph_err = fmax(*graph_err, rel_err(g_gpu_logits, ref, (size_t)NB * V));
            else
                memcpy(ref, g_gpu_logits, (size_t)NB * V * sizeof(float));
        }
        call++;
        t0 += n;
    }
    for (int s = 0; s < sc->n_decode; s++, t0++) {
        for (int b = 0; b < NB; b++) next[b] = ids[(size_t)b * total + t0];
        const float *cl = pn_engine_decode(ce, next);
        pn_cuda_engine_decode(ge, next);
        pn_cuda_engine_logits_get(ge, g_gpu_logits);
        r.decode = fmax(r.decode, rel_err(g_gpu_logits, cl, (size_t)NB * V));
        if (graph_ref) {
            float *ref = graph_ref + (size_t)call * NB * V;
            if (graph_cmp)
                *graph_err = fmax(*graph_err, rel_err(g_gpu_logits, ref, (size_t)NB * V));
            else
                memcpy(ref, g_gpu_logits, (size_t)NB * V * sizeof(float));
        }
        call++;
    }
    free(part);
    return r;
}

static void check_logits(pn_backbone *bb, const char *model, const char *const *types, uint64_t seed,
                         const script *sc_main, const script *sc_cont, const int *chunks, int n_chunks) {
    slot slots[8];
    char name[256];
    hybrid_name(name, sizeof name, model, bb, types);
    hybrid_set(bb, slots, types, seed);
    int total = 0;
    for (int k = 0; k < sc_main->n_pieces; k++) total += sc_main->pieces[k];
    total += sc_main->n_decode;
    int total2 = 0;
    for (int k = 0; k < sc_cont->n_pieces; k++) total2 += sc_cont->pieces[k];
    total2 += sc_cont->n_decode;
    const int ctx = PN_MAX(total, total2);
    int64_t *ids = pn_malloc((size_t)NB * ctx * sizeof(int64_t));
    random_ids(ids, (size_t)NB * ctx, bb->V, seed);
    g_gpu_logits = pn_malloc((size_t)NB * bb->V * sizeof(float));
    const int groups[2] = {NB, 2};
    for (int ci = 0; ci < n_chunks; ci++)
        for (int gi = 0; gi < 2; gi++) {
            pn_engine *ce = pn_engine_create(bb, NB, ctx, chunks[ci]);
            pn_cuda_engine *ge = pn_cuda_engine_create(bb, NB, ctx, chunks[ci], groups[gi]);
            const int n_calls = sc_main->n_pieces + sc_main->n_decode;
            float *gref = pn_malloc((size_t)n_calls * NB * bb->V * sizeof(float));
            errs e1 = run_script(ce, ge, sc_main, ids, ctx, gref, 0, NULL);
            errs e2 = run_script(ce, ge, sc_cont, ids, ctx, NULL, 0, NULL);
            report(e1.prefill, TOL, "%s chunk %d, groups of %d: prefill %d", name, chunks[ci], groups[gi],
                   sc_main->pieces[0]);
            report(e1.decode, TOL, "%s chunk %d, groups of %d: %d decode steps", name, chunks[ci], groups[gi],
                   sc_main->n_decode);
            report(fmax(e2.prefill, e2.decode), TOL, "%s chunk %d, groups of %d: continued prefill + decode", name,
                   chunks[ci], groups[gi]);
            // (b) the same script with eager decode launches must give the graph's logits.
            if (ci == 0 && gi == 0) {
                if (ge->use_graph) {
                    ge->use_graph = 0;
                    double gerr = 0.0;
                    run_script(ce, ge, sc_main, ids, ctx, gref, 1, &gerr);
                    report(gerr, TOL_GRAPH, "%s: decode through the CUDA graph vs eager launches", name);
                } else {
                    printf("note %s: CUDA graphs are off in this build (no NDEBUG); decode ran eagerly\n", name);
                }
            }
            free(gref);
            pn_cuda_engine_free(ge);
            pn_engine_free(ce);
        }
    // The delta-rule blocks' other prefill path: the fused recurrent scan (the default is chunked).
    int has_delta = 0;
    for (int l = 0; l < bb->n_layers; l++)
        has_delta |= strcmp(types[l], "jetblock") == 0 || strcmp(types[l], "gated_deltanet") == 0 ||
                     strcmp(types[l], "deltanet") == 0;
    if (has_delta) {
        const int ch = chunks[n_chunks > 1 ? 1 : 0];
        pn_engine *ce = pn_engine_create(bb, NB, ctx, ch);
        pn_cuda_engine *ge = pn_cuda_engine_create(bb, NB, ctx, ch, NB);
        ge->delta_chunked = 0;
        errs e1 = run_script(ce, ge, sc_main, ids, ctx, NULL, 0, NULL);
        errs e2 = run_script(ce, ge, sc_cont, ids, ctx, NULL, 0, NULL);
        report(fmax(e1.prefill, e2.prefill), TOL, "%s chunk %d, delta prefill through the fused scan", name,
               ch);
        report(fmax(e1.decode, e2.decode), TOL, "%s chunk %d, decode after the fused-scan delta prefill", name, ch);
        pn_cuda_engine_free(ge);
        pn_engine_free(ce);
    }
    free(g_gpu_logits);
    g_gpu_logits = NULL;
    free(ids);
    hybrid_clear(bb, slots);
}

// ---------------------------------------------------------------- (c) greedy

#define GT 6
#define GNEW 8

static void check_greedy(pn_backbone *bb, const char *model, const char *const *types, uint64_t seed) {
    slot slots[8];
    char name[256];
    hybrid_name(name, sizeof name, model, bb, types);
    hybrid_set(bb, slots, types, seed);
    const int V = bb->V;
    int64_t prompt[NB * GT], cout[NB * GNEW], gout[NB * GNEW];
    int clen[NB], glen[NB];
    random_ids(prompt, NB * GT, V, seed + 11);
    pn_engine *ce = pn_engine_create(bb, NB, GT + GNEW - 1, 4);
    pn_cuda_engine *ge = pn_cuda_engine_create(bb, NB, GT + GNEW - 1, 4, NB);
    pn_cuda_engine_poison(ge);
    pn_engine_generate_greedy(ce, prompt, GT, GNEW, NULL, 0, cout, clen);
    pn_cuda_engine_generate_greedy(ge, prompt, GT, GNEW, NULL, 0, gout, glen);
    // The CPU's gap at each step: replay prompt + its tokens and look at every row.
    double gap[NB][GNEW];
    int64_t next[NB];
    pn_engine_reset(ce);
    const float *lg = pn_engine_prefill(ce, prompt, GT);
    for (int s = 0; s < GNEW; s++) {
        for (int b = 0; b < NB; b++) {
            const float *row = lg + (size_t)b * V;
            int best = 0;
            double ss = 0;
            for (int v = 0; v < V; v++) {
                if (row[v] > row[best]) best = v;
                ss += (double)row[v] * row[v];
            }
            float second = -INFINITY;
            for (int v = 0; v < V; v++)
                if (v != best && row[v] > second) second = row[v];
            gap[b][s] = (row[best] - second) / sqrt(ss / V);
            next[b] = cout[(size_t)b * GNEW + s];
        }
        if (s + 1 < GNEW) lg = pn_engine_decode(ce, next);
    }
    int compared = 0, mism = 0;
    for (int b = 0; b < NB; b++)
        for (int s = 0; s < GNEW; s++) {
            if (gap[b][s] <= 0.05) break;  // an unclear step: from here on the two may legitimately differ
            compared++;
            mism += cout[(size_t)b * GNEW + s] != gout[(size_t)b * GNEW + s];
        }
    report(mism ? 1.0 : 0.0, 0.0, "%s: greedy tokens equal the CPU engine's (%d of %d steps with a clear gap)", name,
           compared - mism, compared);
    pn_cuda_engine_free(ge);
    pn_engine_free(ce);
    hybrid_clear(bb, slots);
}

// ---------------------------------------------------------------- (d) max batch

static size_t mem_held(void) {
    size_t t = 0;
    for (int c = 0; c < PN_CUDA_MEM_COUNT; c++)
        t += pn_cuda_mem_in_use((pn_cuda_mem_category)c) + pn_cuda_mem_cached((pn_cuda_mem_category)c);
    return t;
}

static size_t mem_in_use(void) {
    size_t t = 0;
    for (int c = 0; c < PN_CUDA_MEM_COUNT; c++) t += pn_cuda_mem_in_use((pn_cuda_mem_category)c);
    return t;
}

static void check_max_batch(pn_backbone *bb, const char *model, const char *const *types) {
    slot slots[8];
    char name[256];
    hybrid_name(name, sizeof name, model, bb, types);
    hybrid_set(bb, slots, types, 77);
    const int64_t ctx = 64;
    const int chunk = 8, P = 2;
    int ok_fit = 1, ok_next = 1, ok_exact = 1, prev = 0;
    for (int k = 1; k <= 24; k++) {
        const size_t need = pn_cuda_engine_bytes_for(bb, k, ctx, chunk, P).total;
        const int at = pn_cuda_engine_max_batch(bb, ctx, chunk, P, need, 1000);
        const int below = pn_cuda_engine_max_batch(bb, ctx, chunk, P, need - 1, 1000);
        ok_exact &= at >= k && below < k && at >= prev;
        ok_fit &= pn_cuda_engine_bytes_for(bb, at, ctx, chunk, P).total <= need;
        ok_next &= pn_cuda_engine_bytes_for(bb, at + 1, ctx, chunk, P).total > need;
        prev = at;
    }
    report(ok_fit ? 0.0 : 1.0, 0.0, "%s: max batch fits its budget (24 budgets)", name);
    report(ok_next ? 0.0 : 1.0, 0.0, "%s: max batch + 1 exceeds the budget (24 budgets)", name);
    report(ok_exact ? 0.0 : 1.0, 0.0, "%s: budget bytes(k) gives >= k, bytes(k) - 1 gives < k, monotone", name);

    const size_t budget = pn_cuda_engine_bytes_for(bb, 7, ctx, chunk, P).total + 12345;
    const int B = pn_cuda_engine_max_batch(bb, ctx, chunk, P, budget, 1000);
    const pn_cuda_engine_bytes acc = pn_cuda_engine_bytes_for(bb, B, ctx, chunk, P);
    for (int c = 0; c < PN_CUDA_MEM_COUNT; c++) pn_cuda_mem_trim((pn_cuda_mem_category)c);
    const size_t held0 = mem_held(), use0 = mem_in_use();
    pn_cuda_engine *ge = pn_cuda_engine_create(bb, B, ctx, chunk, P);
    const size_t created = mem_in_use() - use0;
    report(created == acc.weights + acc.states + acc.acts ? 0.0 : 1.0, 0.0,
           "%s: engine at max batch %d allocates weights+states+acts = %zu B (accounted %zu B)", name, B, created,
           acc.weights + acc.states + acc.acts);
    int64_t *ids = pn_malloc((size_t)B * 40 * sizeof(int64_t)), *next = pn_malloc((size_t)B * sizeof(int64_t));
    random_ids(ids, (size_t)B * 40, bb->V, 5);
    pn_cuda_engine_prefill(ge, ids, 37);
    pn_cuda_engine_prefill(ge, ids, 3);  // a pass of another shape
    for (int s = 0; s < 3; s++) {
        for (int b = 0; b < B; b++) next[b] = ids[b];
        pn_cuda_engine_decode(ge, next);
    }
    pn_cuda_engine_sync(ge);
    const size_t peak = mem_held() - held0;
    report(peak <= acc.total ? 0.0 : 1.0, 0.0,
           "%s: after prefill + decode the allocator holds %zu B more, accounted total %zu B (budget %zu B)", name,
           peak, acc.total, budget);
    report(acc.total <= budget && pn_cuda_engine_bytes_for(bb, B + 1, ctx, chunk, P).total > budget ? 0.0 : 1.0, 0.0,
           "%s: batch %d fits the budget, %d does not", name, B, B + 1);
    free(ids);
    free(next);
    pn_cuda_engine_free(ge);
    hybrid_clear(bb, slots);
}

// ---------------------------------------------------------------- main

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_engine: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB; CUDA graphs %s in this build\n", info.name, info.sm_major,
           info.sm_minor, info.multiprocessors, info.total_mem / 1073741824.0,
           pn_cuda_eng_graphs_supported() ? "on" : "off");
    printf("engine activations: bf16x2 split GEMM inputs (act_split = 1, the default): hi + lo planes, fp32 "
           "intermediates\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char dir_a[] = "/tmp/pn_test_cuda_engine_a_XXXXXX", dir_b[] = "/tmp/pn_test_cuda_engine_b_XXXXXX",
         dir_c[] = "/tmp/pn_test_cuda_engine_c_XXXXXX";
    PN_ASSERT(mkdtemp(dir_a) && mkdtemp(dir_b) && mkdtemp(dir_c));
    pn_backbone *A = model_make(&MODEL_A, dir_a, 21);
    pn_backbone *Bm = model_make(&MODEL_B, dir_b, 22);
    pn_backbone *Cm = model_make(&MODEL_C, dir_c, 23);

    const script main_sc = {1, {10}, 6}, cont_sc = {2, {7, 5}, 4};
    const int chunks[3] = {1, 5, 16};
    printf("(a, b) CUDA engine vs CPU engine logits (normalized error over (B, V)):\n");
    const char *types[] = {"attn", "swa", "jetblock", "gated_deltanet", "deltanet", "gla", "retnet", "mamba2", "rwkv7"};
    for (size_t i = 0; i < PN_ARRAY_LEN(types); i++) {
        const char *t3[3] = {types[i], types[i], types[i]};
        check_logits(A, "A", t3, 100 + i, &main_sc, &cont_sc, chunks, 3);
    }
    const char *h1[] = {"attn", "jetblock", "swa"};
    const char *h2[] = {"swa", "gated_deltanet", "deltanet", "attn"};
    const char *h3[] = {"jetblock", "attn", "swa", "jetblock"};
    const char *h4[] = {"gla", "mamba2", "retnet", "attn"};
    const char *h5[] = {"rwkv7", "mamba2", "rwkv7"};  // v_first across a layer between two rwkv7 layers
    const char *h6[] = {"jetblock", "rwkv7", "swa", "rwkv7"};
    check_logits(A, "A", h1, 201, &main_sc, &cont_sc, chunks, 3);
    check_logits(Bm, "Bm", h2, 202, &main_sc, &cont_sc, chunks, 3);
    check_logits(Bm, "Bm", h3, 203, &main_sc, &cont_sc, chunks, 3);
    check_logits(Bm, "Bm", h4, 204, &main_sc, &cont_sc, chunks, 3);
    check_logits(A, "A", h5, 205, &main_sc, &cont_sc, chunks, 3);
    check_logits(Bm, "Bm", h6, 206, &main_sc, &cont_sc, chunks, 3);
    // Jet-Nemotron's shapes over a long context: many split-K partitions, a 2-pass prefill.
    const script long_sc = {1, {590}, 10}, long_cont = {2, {300, 290}, 5};
    const int long_chunks[1] = {256};
    const char *c1[] = {"attn", "jetblock"};
    const char *c2[] = {"jetblock", "attn"};
    check_logits(Cm, "Cm", c1, 301, &long_sc, &long_cont, long_chunks, 1);
    check_logits(Cm, "Cm", c2, 302, &long_sc, &long_cont, long_chunks, 1);

    printf("(c) greedy generation vs the CPU engine:\n");
    check_greedy(A, "A", h1, 401);
    check_greedy(Bm, "Bm", h2, 402);
    check_greedy(Bm, "Bm", h3, 403);
    check_greedy(Bm, "Bm", h6, 404);

    printf("(d) max batch accounting:\n");
    check_max_batch(A, "A", h1);
    check_max_batch(Bm, "Bm", h2);

    pn_backbone_free(A);
    pn_backbone_free(Bm);
    pn_backbone_free(Cm);
    model_remove(dir_a);
    model_remove(dir_b);
    model_remove(dir_c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("test_cuda_engine: %d passed, %d failed (%.1f s)\n", g_pass, g_fail,
           (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    return g_fail ? 1 : 0;
}
