// synth.c — synthetic task generators (see synth.h for the token layout and the
// document formats).
//
// Every random draw comes from a Philox stream named for its purpose (the
// knowledge base, the train stream, the valid stream, each task suite), so the
// suites do not shift when the stream size changes, and each output depends
// only on (seed, config).
#include "synth.h"
#include "tokens.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include <jansson.h>

// ---------------------------------------------------------------- small buffers

typedef struct {
    uint32_t *v;
    size_t n, cap;
} tokvec;

static void tv_push(tokvec *t, uint32_t x) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->v = pn_realloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n++] = x;
}

typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

static void sb_puts(strbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = PN_MAX(2 * b->cap, b->n + l + 1024);
        b->s = pn_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

static void sb_ids(strbuf *b, const char *key, const uint32_t *ids, size_t n) {
    char tmp[32];
    sb_puts(b, "\"");
    sb_puts(b, key);
    sb_puts(b, "\": [");
    for (size_t i = 0; i < n; i++) {
        snprintf(tmp, sizeof tmp, i ? ", %u" : "%u", ids[i]);
        sb_puts(b, tmp);
    }
    sb_puts(b, "]");
}

// ---------------------------------------------------------------- config

void pn_synth_cfg_default(pn_synth_cfg *c) {
    memset(c, 0, sizeof *c);
    c->train_tokens = 4000000;
    c->valid_tokens = 200000;
    c->n_examples = 200;
    c->vocab_size = 256;
    c->n_keys = 64;
    c->n_values = 64;
    c->n_entities = 48;
    c->n_relations = 8;
    c->n_objects = 32;
    c->kv_pairs = 16;
    c->kv_queries = 4;
    c->max_digits = 3;
    c->n_choices = 4;
    c->mix_recall = 1.0;
    c->mix_math = 1.0;
    c->mix_facts = 1.0;
    c->mix_copy = 3.0;
    c->copy_min = 8;
    c->copy_max = 24;
}

pn_synth_layout pn_synth_layout_of(const pn_synth_cfg *c) {
    pn_synth_layout l;
    l.digit0 = PN_SYN_DIGIT0;
    l.key0 = PN_SYN_FIRST_FREE;
    l.value0 = l.key0 + c->n_keys;
    l.entity0 = l.value0 + c->n_values;
    l.relation0 = l.entity0 + c->n_entities;
    l.object0 = l.relation0 + c->n_relations;
    l.end = l.object0 + c->n_objects;
    return l;
}

void pn_synth_cfg_check(const pn_synth_cfg *c) {
    const char *w = "synth config";
    struct {
        const char *name;
        int v, lo, hi;
    } ints[] = {
        {"n_examples", c->n_examples, 1, 10000000}, {"vocab_size", c->vocab_size, 1, 65536},
        {"n_keys", c->n_keys, 1, 60000},            {"n_values", c->n_values, 1, 60000},
        {"n_entities", c->n_entities, 1, 60000},    {"n_relations", c->n_relations, 1, 60000},
        {"n_objects", c->n_objects, 2, 60000},      {"kv_pairs", c->kv_pairs, 1, 60000},
        {"kv_queries", c->kv_queries, 1, 60000},    {"max_digits", c->max_digits, 1, 9},
        {"n_choices", c->n_choices, 2, 60000},
    };
    for (size_t i = 0; i < PN_ARRAY_LEN(ints); i++)
        if (ints[i].v < ints[i].lo || ints[i].v > ints[i].hi)
            pn_die_input(w, "%s = %d; expected %d..%d", ints[i].name, ints[i].v, ints[i].lo, ints[i].hi);
    if (c->kv_pairs > c->n_keys) pn_die_input(w, "kv_pairs = %d needs as many distinct keys, n_keys = %d", c->kv_pairs, c->n_keys);
    if (c->kv_queries > c->kv_pairs)
        pn_die_input(w, "kv_queries = %d; expected at most kv_pairs = %d (queries ask distinct keys)", c->kv_queries,
                     c->kv_pairs);
    if (c->n_choices > c->n_objects)
        pn_die_input(w, "n_choices = %d needs as many distinct objects, n_objects = %d", c->n_choices, c->n_objects);
    if (c->train_tokens < 1 || c->valid_tokens < 1) pn_die_input(w, "train_tokens and valid_tokens must be >= 1");
    if (c->train_tokens > ((uint64_t)1 << 40) || c->valid_tokens > ((uint64_t)1 << 40))
        pn_die_input(w, "train_tokens / valid_tokens too large (at most 2^40)");
    if (!(c->mix_recall >= 0 && c->mix_math >= 0 && c->mix_facts >= 0 && c->mix_copy >= 0) ||
        !(c->mix_recall + c->mix_math + c->mix_facts + c->mix_copy > 0))
        pn_die_input(w, "mix weights (recall, math, facts, copy) must be >= 0 with a positive sum, got %g, %g, %g, %g",
                     c->mix_recall, c->mix_math, c->mix_facts, c->mix_copy);
    if (c->copy_min < 1 || c->copy_max < c->copy_min || c->copy_max > 60000)
        pn_die_input(w, "copy document length %d..%d; expected 1 <= copy_min <= copy_max <= 60000", c->copy_min,
                     c->copy_max);
    pn_synth_layout l = pn_synth_layout_of(c);
    if (l.end > c->vocab_size)
        pn_die_input(w, "the token layout needs %d ids (18 special+digits, %d keys, %d values, %d entities, %d "
                     "relations, %d objects) but vocab_size = %d",
                     l.end, c->n_keys, c->n_values, c->n_entities, c->n_relations, c->n_objects, c->vocab_size);
}

// ---------------------------------------------------------------- documents

typedef struct {
    const pn_synth_cfg *cfg;
    pn_synth_layout lay;
    int *kb;  // (n_entities, n_relations) object index
} synth;

// Partial Fisher-Yates: the first k entries of perm become a uniform random
// k-subset of 0..n-1, in random order.
static void sample_distinct(pn_rng *r, int *perm, int n, int k) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)pn_rng_below(r, (uint64_t)(n - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

// A recall document; *prompt_len = tokens up to and including the last query key.
static void doc_recall(const synth *S, pn_rng *r, tokvec *out, size_t *prompt_len) {
    const pn_synth_cfg *c = S->cfg;
    int P = c->kv_pairs, Q = c->kv_queries;
    int *keys = pn_malloc((size_t)c->n_keys * sizeof *keys);
    int *vals = pn_malloc((size_t)P * sizeof *vals);
    int *qs = pn_malloc((size_t)P * sizeof *qs);
    sample_distinct(r, keys, c->n_keys, P);
    for (int i = 0; i < P; i++) {
        vals[i] = (int)pn_rng_below(r, (uint64_t)c->n_values);
        tv_push(out, (uint32_t)(S->lay.key0 + keys[i]));
        tv_push(out, (uint32_t)(S->lay.value0 + vals[i]));
    }
    tv_push(out, PN_SYN_SEP);
    sample_distinct(r, qs, P, Q);
    for (int q = 0; q < Q; q++) {
        tv_push(out, PN_SYN_QUERY);
        tv_push(out, (uint32_t)(S->lay.key0 + keys[qs[q]]));
        if (q == Q - 1 && prompt_len) *prompt_len = out->n;
        tv_push(out, (uint32_t)(S->lay.value0 + vals[qs[q]]));
    }
    tv_push(out, PN_SYN_EOS);
    free(keys);
    free(vals);
    free(qs);
}

static uint64_t draw_number(pn_rng *r, int max_digits) {
    int d = 1 + (int)pn_rng_below(r, (uint64_t)max_digits);
    uint64_t lo = 1;
    for (int i = 1; i < d; i++) lo *= 10;
    if (d == 1) return pn_rng_below(r, 10);  // 0..9
    return lo + pn_rng_below(r, 9 * lo);     // exactly d digits
}

static void push_number(tokvec *out, uint64_t x) {
    char s[32];
    snprintf(s, sizeof s, "%llu", (unsigned long long)x);
    for (char *p = s; *p; p++) tv_push(out, (uint32_t)(PN_SYN_DIGIT0 + (*p - '0')));
}

static void doc_math(const synth *S, pn_rng *r, tokvec *out, size_t *prompt_len) {
    uint64_t a = draw_number(r, S->cfg->max_digits), b = draw_number(r, S->cfg->max_digits);
    push_number(out, a);
    tv_push(out, PN_SYN_PLUS);
    push_number(out, b);
    tv_push(out, PN_SYN_EQUALS);
    if (prompt_len) *prompt_len = out->n;
    push_number(out, a + b);
    tv_push(out, PN_SYN_EOS);
}

static void doc_fact(const synth *S, pn_rng *r, tokvec *out) {
    int e = (int)pn_rng_below(r, (uint64_t)S->cfg->n_entities);
    int rel = (int)pn_rng_below(r, (uint64_t)S->cfg->n_relations);
    tv_push(out, (uint32_t)(S->lay.entity0 + e));
    tv_push(out, (uint32_t)(S->lay.relation0 + rel));
    tv_push(out, (uint32_t)(S->lay.object0 + S->kb[e * S->cfg->n_relations + rel]));
    tv_push(out, PN_SYN_EOS);
}

static void doc_copy(const synth *S, pn_rng *r, tokvec *out) {
    const pn_synth_cfg *c = S->cfg;
    int n = c->copy_min + (int)pn_rng_below(r, (uint64_t)(c->copy_max - c->copy_min + 1));
    size_t start = out->n;
    for (int i = 0; i < n; i++)  // keys and values are adjacent id ranges
        tv_push(out, (uint32_t)(S->lay.key0 + (int)pn_rng_below(r, (uint64_t)(c->n_keys + c->n_values))));
    tv_push(out, PN_SYN_SEP);
    for (int i = 0; i < n; i++) tv_push(out, out->v[start + (size_t)i]);
    tv_push(out, PN_SYN_EOS);
}

static void write_stream(const synth *S, const char *path, uint64_t seed, uint64_t stream, uint64_t n_tokens) {
    const pn_synth_cfg *c = S->cfg;
    pn_rng r = pn_rng_make(seed, stream);
    double total = c->mix_recall + c->mix_math + c->mix_facts + c->mix_copy;
    tokvec t = {0};
    while (t.n < n_tokens) {
        double u = (double)pn_rng_uniform(&r) * total;
        if (u < c->mix_recall)
            doc_recall(S, &r, &t, NULL);
        else if (u < c->mix_recall + c->mix_math)
            doc_math(S, &r, &t, NULL);
        else if (u < c->mix_recall + c->mix_math + c->mix_facts)
            doc_fact(S, &r, &t);
        else
            doc_copy(S, &r, &t);
    }
    pn_tokens_write_h5(path, t.v, n_tokens, 2, PN_SYN_EOS, c->vocab_size);
    free(t.v);
}

// Generative suite: prompt = the document up to the prompt end, answer = the
// rest without the closing EOS (recall) or with it (math, where stopping matters).
static void write_gen_suite(const synth *S, const char *path, uint64_t seed, uint64_t stream, int math) {
    pn_rng r = pn_rng_make(seed, stream);
    strbuf b = {0};
    tokvec t = {0};
    for (int i = 0; i < S->cfg->n_examples; i++) {
        size_t plen = 0;
        t.n = 0;
        if (math)
            doc_math(S, &r, &t, &plen);
        else
            doc_recall(S, &r, &t, &plen);
        size_t alen = math ? t.n - plen : 1;
        sb_puts(&b, "{");
        sb_ids(&b, "prompt_ids", t.v, plen);
        sb_puts(&b, ", ");
        sb_ids(&b, "answer_ids", t.v + plen, alen);
        sb_puts(&b, "}\n");
    }
    pn_write_file_atomic(path, b.s, b.n);
    free(b.s);
    free(t.v);
}

static void write_mc_suite(const synth *S, const char *path, uint64_t seed, uint64_t stream) {
    const pn_synth_cfg *c = S->cfg;
    pn_rng r = pn_rng_make(seed, stream);
    int n_facts = c->n_entities * c->n_relations;
    int *facts = pn_malloc((size_t)n_facts * sizeof *facts);
    int *objs = pn_malloc((size_t)c->n_objects * sizeof *objs);
    // Distinct facts while they last, then a fresh random order again.
    int used = n_facts;
    strbuf b = {0};
    for (int i = 0; i < c->n_examples; i++) {
        if (used == n_facts) {
            sample_distinct(&r, facts, n_facts, n_facts);
            used = 0;
        }
        int f = facts[used++];
        int e = f / c->n_relations, rel = f % c->n_relations;
        int truth = S->kb[f];
        int answer = (int)pn_rng_below(&r, (uint64_t)c->n_choices);
        // Distractors: a random subset of the other objects (swap the truth out of the pool).
        for (int k = 0; k < c->n_objects; k++) objs[k] = k;
        objs[truth] = c->n_objects - 1;
        int n_pool = c->n_objects - 1;
        for (int k = 0; k < c->n_choices - 1; k++) {
            int j = k + (int)pn_rng_below(&r, (uint64_t)(n_pool - k));
            int tmp = objs[k];
            objs[k] = objs[j];
            objs[j] = tmp;
        }
        uint32_t ctx[2] = {(uint32_t)(S->lay.entity0 + e), (uint32_t)(S->lay.relation0 + rel)};
        sb_puts(&b, "{");
        sb_ids(&b, "context_ids", ctx, 2);
        sb_puts(&b, ", \"choices_ids\": [");
        for (int ch = 0, d = 0; ch < c->n_choices; ch++) {
            char tmp[48];
            int o = ch == answer ? truth : objs[d++];
            snprintf(tmp, sizeof tmp, ch ? ", [%d]" : "[%d]", S->lay.object0 + o);
            sb_puts(&b, tmp);
        }
        char tail[48];
        snprintf(tail, sizeof tail, "], \"answer\": %d}\n", answer);
        sb_puts(&b, tail);
    }
    pn_write_file_atomic(path, b.s, b.n);
    free(b.s);
    free(facts);
    free(objs);
}

static json_t *range_json(int first, int count) {
    return json_pack("{s:i, s:i}", "first", first, "count", count);
}

static void write_meta(const synth *S, const char *path, uint64_t seed) {
    const pn_synth_cfg *c = S->cfg;
    const pn_synth_layout *l = &S->lay;
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("postnas-synth-1"));
    json_object_set_new(root, "seed", json_integer((json_int_t)seed));
    json_object_set_new(root, "vocab_size", json_integer(c->vocab_size));
    json_t *sp = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "PAD", PN_SYN_PAD, "EOS", PN_SYN_EOS, "SEP", PN_SYN_SEP,
                           "QUERY", PN_SYN_QUERY, "PLUS", PN_SYN_PLUS, "EQUALS", PN_SYN_EQUALS);
    json_t *lay = json_object();
    json_object_set_new(lay, "special", sp);
    json_object_set_new(lay, "digits", range_json(l->digit0, 10));
    json_object_set_new(lay, "keys", range_json(l->key0, c->n_keys));
    json_object_set_new(lay, "values", range_json(l->value0, c->n_values));
    json_object_set_new(lay, "entities", range_json(l->entity0, c->n_entities));
    json_object_set_new(lay, "relations", range_json(l->relation0, c->n_relations));
    json_object_set_new(lay, "objects", range_json(l->object0, c->n_objects));
    json_object_set_new(lay, "used", json_integer(l->end));
    json_object_set_new(root, "layout", lay);
    json_t *sizes = json_pack("{s:I, s:I, s:i, s:i, s:i, s:i, s:i}", "train_tokens", (json_int_t)c->train_tokens,
                              "valid_tokens", (json_int_t)c->valid_tokens, "examples_per_suite", c->n_examples,
                              "kv_pairs", c->kv_pairs, "kv_queries", c->kv_queries, "max_digits", c->max_digits,
                              "n_choices", c->n_choices);
    json_object_set_new(root, "sizes", sizes);
    json_object_set_new(root, "mix", json_pack("{s:f, s:f, s:f, s:f}", "recall", c->mix_recall, "math", c->mix_math,
                                               "facts", c->mix_facts, "copy", c->mix_copy));
    json_object_set_new(root, "copy_length", json_pack("[i, i]", c->copy_min, c->copy_max));
    json_object_set_new(root, "files",
                        json_pack("{s:s, s:s, s:s, s:s, s:s}", "train", "train.h5", "valid", "valid.h5", "retrieval",
                                  "retrieval.jsonl", "math", "math.jsonl", "knowledge", "knowledge.jsonl"));
    json_object_set_new(root, "tasks", json_pack("{s:s, s:s, s:s}", "retrieval", "gen", "math", "gen", "knowledge", "mc"));
    // The knowledge base as token ids: objects[e][r] is the object id of entity e, relation r.
    json_t *kb = json_array();
    for (int e = 0; e < c->n_entities; e++) {
        json_t *row = json_array();
        for (int rel = 0; rel < c->n_relations; rel++)
            json_array_append_new(row, json_integer(l->object0 + S->kb[e * c->n_relations + rel]));
        json_array_append_new(kb, row);
    }
    json_object_set_new(root, "knowledge_base", kb);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    PN_ASSERT(text);
    size_t n = strlen(text);
    char *withnl = pn_malloc(n + 2);
    memcpy(withnl, text, n);
    withnl[n] = '\n';
    pn_write_file_atomic(path, withnl, n + 1);
    free(withnl);
    free(text);
    json_decref(root);
}

void pn_synth_generate(const char *out_dir, uint64_t seed, const pn_synth_cfg *cfg) {
    pn_synth_cfg_check(cfg);
    pn_mkdir_p(out_dir);
    synth S = {.cfg = cfg, .lay = pn_synth_layout_of(cfg)};
    // Streams: 1 knowledge base, 2 train, 3 valid, 4 retrieval, 5 math, 6 knowledge suite.
    pn_rng r = pn_rng_make(seed, 1);
    S.kb = pn_malloc((size_t)cfg->n_entities * (size_t)cfg->n_relations * sizeof *S.kb);
    for (int i = 0; i < cfg->n_entities * cfg->n_relations; i++) S.kb[i] = (int)pn_rng_below(&r, (uint64_t)cfg->n_objects);
    char path[4096];
    write_stream(&S, pn_path_join(path, sizeof path, out_dir, "train.h5"), seed, 2, cfg->train_tokens);
    write_stream(&S, pn_path_join(path, sizeof path, out_dir, "valid.h5"), seed, 3, cfg->valid_tokens);
    write_gen_suite(&S, pn_path_join(path, sizeof path, out_dir, "retrieval.jsonl"), seed, 4, 0);
    write_gen_suite(&S, pn_path_join(path, sizeof path, out_dir, "math.jsonl"), seed, 5, 1);
    write_mc_suite(&S, pn_path_join(path, sizeof path, out_dir, "knowledge.jsonl"), seed, 6);
    write_meta(&S, pn_path_join(path, sizeof path, out_dir, "synth.json"), seed);
    pn_info("synth: wrote %s (train %llu tokens, valid %llu tokens, %d examples per suite, vocab %d, seed %llu)",
            out_dir, (unsigned long long)cfg->train_tokens, (unsigned long long)cfg->valid_tokens, cfg->n_examples,
            cfg->vocab_size, (unsigned long long)seed);
    free(S.kb);
}
