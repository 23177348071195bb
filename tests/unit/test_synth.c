// test_synth.c — synthetic data generators: determinism (same seed = same
// bytes, other seeds differ) and correctness checked independently of the
// generator: recall answers by re-parsing the context and looking the key up,
// sums computed here, MC answers against the knowledge base in synth.json, and
// every document of the training stream re-parsed and verified the same way.
#include "datasets/synth.h"
#include "datasets/tasks.h"
#include "datasets/tokens.h"
#include "core/fileio.h"
#include "test_util.h"
#include <math.h>
#include <jansson.h>
#include <time.h>

static char g_dir[256];
static const char *k_files[] = {"train.h5", "valid.h5", "retrieval.jsonl", "math.jsonl", "knowledge.jsonl", "synth.json"};

static const char *sub(const char *a, const char *b) {
    static char buf[8][512];
    static int slot = 0;
    char *out = buf[slot++ % 8];
    snprintf(out, 512, "%s/%s/%s", g_dir, a, b);
    return out;
}

static void small_cfg(pn_synth_cfg *c) {
    pn_synth_cfg_default(c);
    c->train_tokens = 60000;
    c->valid_tokens = 5000;
    c->n_examples = 120;
}

static int files_equal(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = pn_read_file(a, &na), *y = pn_read_file(b, &nb);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

// What synth.json says (read with jansson, not with the generator's structs).
typedef struct {
    int digit0, key0, n_keys, value0, n_values, entity0, n_entities, relation0, n_relations, object0, n_objects;
    int vocab, eos;
    int *kb;  // (n_entities, n_relations) object token ids
} meta;

static int range_first(json_t *lay, const char *k, int *count) {
    json_t *r = json_object_get(lay, k);
    *count = (int)json_integer_value(json_object_get(r, "count"));
    return (int)json_integer_value(json_object_get(r, "first"));
}

static int read_meta(const char *path, meta *m) {
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) return 0;
    json_t *lay = json_object_get(root, "layout");
    int nd;
    m->digit0 = range_first(lay, "digits", &nd);
    m->key0 = range_first(lay, "keys", &m->n_keys);
    m->value0 = range_first(lay, "values", &m->n_values);
    m->entity0 = range_first(lay, "entities", &m->n_entities);
    m->relation0 = range_first(lay, "relations", &m->n_relations);
    m->object0 = range_first(lay, "objects", &m->n_objects);
    m->vocab = (int)json_integer_value(json_object_get(root, "vocab_size"));
    m->eos = (int)json_integer_value(json_object_get(json_object_get(lay, "special"), "EOS"));
    json_t *kb = json_object_get(root, "knowledge_base");
    m->kb = pn_calloc((size_t)m->n_entities * (size_t)m->n_relations, sizeof *m->kb);
    int ok = nd == 10 && (int)json_array_size(kb) == m->n_entities;
    for (int e = 0; ok && e < m->n_entities; e++) {
        json_t *row = json_array_get(kb, (size_t)e);
        ok = (int)json_array_size(row) == m->n_relations;
        for (int r = 0; ok && r < m->n_relations; r++) m->kb[e * m->n_relations + r] = (int)json_integer_value(json_array_get(row, (size_t)r));
    }
    json_decref(root);
    return ok;
}

static int in_range(int64_t t, int first, int count) { return t >= first && t < first + count; }

// Recall: pairs up to SEP, then QUERY k v ... QUERY k. Returns the value the
// context gives the final key (-1 if malformed). Intermediate answered queries
// are checked too.
static int64_t recall_lookup(const meta *m, const int64_t *p, int n, int *bad_queries) {
    int sep = -1;
    for (int i = 0; i < n; i++)
        if (p[i] == PN_SYN_SEP) {
            sep = i;
            break;
        }
    if (sep < 2 || sep % 2) return -1;
    int P = sep / 2;
    for (int i = 0; i < P; i++) {
        if (!in_range(p[2 * i], m->key0, m->n_keys) || !in_range(p[2 * i + 1], m->value0, m->n_values)) return -1;
        for (int j = 0; j < i; j++)
            if (p[2 * j] == p[2 * i]) return -1;  // keys are distinct
    }
    int at = sep + 1;
    int64_t last = -1;
    while (at < n) {
        if (p[at] != PN_SYN_QUERY || at + 1 >= n) return -1;
        int64_t k = p[at + 1], v = -1;
        for (int i = 0; i < P; i++)
            if (p[2 * i] == k) v = p[2 * i + 1];
        if (v < 0) return -1;
        if (at + 2 == n) return v;  // the asked query
        if (p[at + 2] != v) (*bad_queries)++;
        last = v;
        at += 3;
    }
    return last >= 0 ? -2 : -1;  // -2: ended after an answered query (a full document)
}

// Parses "digits" starting at *at; returns the number or -1.
static int64_t parse_number(const meta *m, const int64_t *p, int n, int *at) {
    int64_t x = 0;
    int digits = 0;
    while (*at < n && in_range(p[*at], m->digit0, 10)) {
        x = 10 * x + (p[*at] - m->digit0);
        (*at)++;
        digits++;
    }
    return digits ? x : -1;
}

static int math_expected(const meta *m, const int64_t *p, int n, int64_t *ans, int *n_ans) {
    int at = 0;
    int64_t a = parse_number(m, p, n, &at);
    if (a < 0 || at >= n || p[at++] != PN_SYN_PLUS) return 0;
    int64_t b = parse_number(m, p, n, &at);
    if (b < 0 || at >= n || p[at++] != PN_SYN_EQUALS) return 0;
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)(a + b));
    *n_ans = 0;
    for (char *c = s; *c; c++) ans[(*n_ans)++] = m->digit0 + (*c - '0');
    ans[(*n_ans)++] = m->eos;
    return at;  // tokens consumed by the prompt
}

static void check_suites(const char *dir, const meta *m, int n_examples) {
    char path[512];
    pn_task_suite s;
    snprintf(path, sizeof path, "%s/retrieval.jsonl", dir);
    pn_task_suite_load(&s, path, m->vocab);
    int right = 0, bad_q = 0;
    for (int64_t i = 0; i < s.n_examples; i++) {
        pn_task_example *e = &s.examples[i];
        int64_t v = recall_lookup(m, e->context, e->n_context, &bad_q);
        right += e->n_answer == 1 && v >= 0 && e->answer_ids[0] == v;
    }
    CHECK(s.kind == PN_TASK_GEN && s.n_examples == n_examples && right == n_examples && bad_q == 0,
          "retrieval: %d of %lld answers match the context lookup (%d bad earlier queries)", right,
          (long long)s.n_examples, bad_q);
    pn_task_suite_free(&s);

    snprintf(path, sizeof path, "%s/math.jsonl", dir);
    pn_task_suite_load(&s, path, m->vocab);
    right = 0;
    int multi_digit = 0;
    for (int64_t i = 0; i < s.n_examples; i++) {
        pn_task_example *e = &s.examples[i];
        int64_t want[32];
        int nw = 0;
        int used = math_expected(m, e->context, e->n_context, want, &nw);
        right += used == e->n_context && nw == e->n_answer && memcmp(want, e->answer_ids, (size_t)nw * sizeof *want) == 0;
        multi_digit += nw > 2;
    }
    CHECK(s.n_examples == n_examples && right == n_examples, "math: %d of %lld sums right", right, (long long)s.n_examples);
    CHECK(multi_digit > n_examples / 2, "math: only %d multi-digit answers", multi_digit);
    pn_task_suite_free(&s);

    snprintf(path, sizeof path, "%s/knowledge.jsonl", dir);
    pn_task_suite_load(&s, path, m->vocab);
    right = 0;
    int pos_used[4] = {0};
    for (int64_t i = 0; i < s.n_examples; i++) {
        pn_task_example *e = &s.examples[i];
        int ok = e->n_context == 2 && in_range(e->context[0], m->entity0, m->n_entities) &&
                 in_range(e->context[1], m->relation0, m->n_relations) && e->n_choices == 4;
        if (!ok) continue;
        int truth = m->kb[(e->context[0] - m->entity0) * m->n_relations + (e->context[1] - m->relation0)];
        for (int c = 0; c < e->n_choices && ok; c++) {
            ok = e->n_choice[c] == 1 && in_range(e->choices[c][0], m->object0, m->n_objects);
            ok = ok && ((c == e->answer) == (e->choices[c][0] == truth));  // only the answer is the KB object
            for (int d = 0; d < c && ok; d++) ok = e->choices[d][0] != e->choices[c][0];
        }
        right += ok;
        pos_used[e->answer & 3]++;
    }
    CHECK(s.kind == PN_TASK_MC && right == n_examples, "knowledge: %d of %d answers point at the KB object", right,
          n_examples);
    CHECK(pos_used[0] && pos_used[1] && pos_used[2] && pos_used[3], "knowledge: answer positions %d %d %d %d",
          pos_used[0], pos_used[1], pos_used[2], pos_used[3]);
    pn_task_suite_free(&s);
}

// Re-parses every complete document of a stream.
static void check_stream(const char *path, const meta *m, uint64_t n_want) {
    uint64_t n = 0;
    int64_t eos = -1;
    uint32_t *t = pn_tokens_read_all(path, &n, &eos);
    CHECK(n == n_want && eos == m->eos, "%s: %llu tokens (want %llu), eos_id %lld", path, (unsigned long long)n,
          (unsigned long long)n_want, (long long)eos);
    int64_t *doc = pn_malloc(n * sizeof *doc);
    int counts[4] = {0}, bad = 0, bad_q = 0;
    uint64_t start = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (t[i] != (uint32_t)m->eos) continue;
        int len = (int)(i - start);
        for (int k = 0; k < len; k++) doc[k] = t[start + (uint64_t)k];
        start = i + 1;
        if (len == 0) {
            bad++;
            continue;
        }
        if (len % 2 == 1 && doc[len / 2] == PN_SYN_SEP) {
            // copy: s SEP s, n = len / 2 in 8..24 (the defaults), ids from keys and values
            int half = len / 2, ok = half >= 8 && half <= 24;
            for (int k = 0; k < half && ok; k++)
                ok = doc[half + 1 + k] == doc[k] && in_range(doc[k], m->key0, m->n_keys + m->n_values);
            counts[3]++;
            bad += !ok;
        } else if (in_range(doc[0], m->key0, m->n_keys)) {
            counts[0]++;
            bad += recall_lookup(m, doc, len, &bad_q) != -2;
        } else if (in_range(doc[0], m->digit0, 10)) {
            counts[1]++;
            int64_t want[32];
            int nw = 0;
            int used = math_expected(m, doc, len, want, &nw);
            // want ends with EOS, which the split removed
            bad += !(used > 0 && used + nw - 1 == len && memcmp(doc + used, want, (size_t)(nw - 1) * sizeof *want) == 0);
        } else if (in_range(doc[0], m->entity0, m->n_entities)) {
            counts[2]++;
            bad += !(len == 3 && in_range(doc[1], m->relation0, m->n_relations) &&
                     doc[2] == m->kb[(doc[0] - m->entity0) * m->n_relations + (doc[1] - m->relation0)]);
        } else {
            bad++;
        }
    }
    CHECK(bad == 0 && bad_q == 0, "%s: %d malformed or wrong documents, %d wrong recall answers", path, bad, bad_q);
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0 && counts[3] > 0,
          "%s: document mix %d recall, %d math, %d facts, %d copy", path, counts[0], counts[1], counts[2], counts[3]);
    // default mix 1 : 1 : 1 : 3 — copy documents are half of all documents (±5σ)
    double nd = counts[0] + counts[1] + counts[2] + counts[3], fc = counts[3] / nd;
    CHECK(fabs(fc - 0.5) < 5 * sqrt(0.25 / nd), "%s: copy fraction %.3f of %.0f documents, expected 0.5", path, fc, nd);
    free(doc);
    free(t);
}

static void bad_vocab_fn(void *arg) {
    pn_synth_cfg c;
    small_cfg(&c);
    c.vocab_size = 200;
    pn_synth_generate((const char *)arg, 1, &c);
}

static void bad_queries_fn(void *arg) {
    pn_synth_cfg c;
    small_cfg(&c);
    c.kv_pairs = 3;
    pn_synth_generate((const char *)arg, 1, &c);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/pn_test_synth_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    pn_synth_cfg c;
    small_cfg(&c);
    char a[400], b[400], d[400];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(b, sizeof b, "%s/b", g_dir);
    snprintf(d, sizeof d, "%s/d", g_dir);
    pn_synth_generate(a, 7, &c);
    pn_synth_generate(b, 7, &c);
    pn_synth_generate(d, 8, &c);
    for (size_t i = 0; i < PN_ARRAY_LEN(k_files); i++) {
        CHECK(files_equal(sub("a", k_files[i]), sub("b", k_files[i])), "seed 7 twice: %s differs", k_files[i]);
        CHECK(!files_equal(sub("a", k_files[i]), sub("d", k_files[i])), "seeds 7 and 8: %s identical", k_files[i]);
    }
    meta m;
    CHECK(read_meta(sub("a", "synth.json"), &m), "synth.json unreadable or incomplete");
    CHECK(m.vocab == 256 && m.eos == PN_SYN_EOS && m.object0 + m.n_objects <= m.vocab, "synth.json layout");
    check_suites(a, &m, c.n_examples);
    check_stream(sub("a", "train.h5"), &m, c.train_tokens);
    check_stream(sub("a", "valid.h5"), &m, c.valid_tokens);
    free(m.kb);
    meta m8;
    CHECK(read_meta(sub("d", "synth.json"), &m8), "seed 8 synth.json");
    check_suites(d, &m8, c.n_examples);
    free(m8.kb);

    CHECK(expect_exit(bad_vocab_fn, a, 2, "synth config: the token layout needs 234 ids"), "layout > vocab");
    CHECK(expect_exit(bad_queries_fn, a, 2, "synth config: kv_queries = 4; expected at most kv_pairs = 3"),
          "queries > pairs");

    // The default sizes (4M train tokens, 200 examples per suite) in a few seconds.
    pn_synth_cfg def;
    pn_synth_cfg_default(&def);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pn_synth_generate(sub("def", ""), 1, &def);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("default synth (4M train tokens): %.2f s\n", secs);
    meta md;
    CHECK(read_meta(sub("def", "synth.json"), &md), "default synth.json");
    check_stream(sub("def", "train.h5"), &md, def.train_tokens);
    free(md.kb);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_dir);
    return test_summary("test_synth");
}
