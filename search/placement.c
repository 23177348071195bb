// placement.c — memoised scoring and the beam searches of PostNAS step 2 (see
// placement.h for the objectives and the normalisation).
//
// Sets are handled as byte masks (n_layers); the memo packs them into 64-bit
// words so a key is (kind·task, full bits, SWA bits). The memo is an
// open-addressing hash table that doubles at half load: the number of distinct
// sets of one search is at most n_layers·w·k_max·tasks, small, but a job runs
// several searches over the same context and they share results.
//
// One beam routine serves both searches: it grows sets of "chosen" layers drawn
// from an `allowed` mask (all layers for full attention; the non-full layers for
// SWA) and asks an objective for each candidate's score.
#include "placement.h"
#include "core/log.h"
#include <math.h>

// ---------------------------------------------------------------- memo

struct pn_placement_memo {
    int n_words;      // 64-bit words per mask
    int key_words;    // 1 + 2·n_words
    size_t cap;       // slots, a power of two
    size_t used;
    uint64_t *keys;   // (cap, key_words)
    double *vals;     // (cap)
    uint8_t *filled;  // (cap)
    uint64_t *probe;  // (key_words) scratch key
};

static uint64_t key_hash(const uint64_t *k, int n) {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        h ^= k[i] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        h *= 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    return h;
}

static void memo_alloc(pn_placement_memo *m, size_t cap) {
    m->cap = cap;
    m->used = 0;
    m->keys = pn_calloc(cap * (size_t)m->key_words, sizeof(uint64_t));
    m->vals = pn_calloc(cap, sizeof(double));
    m->filled = pn_calloc(cap, 1);
}

// Slot of key k: where it is, or the empty slot where it belongs.
static size_t memo_slot(const pn_placement_memo *m, const uint64_t *k) {
    size_t mask = m->cap - 1, i = (size_t)key_hash(k, m->key_words) & mask;
    size_t kb = (size_t)m->key_words * sizeof(uint64_t);
    while (m->filled[i] && memcmp(m->keys + i * (size_t)m->key_words, k, kb) != 0) i = (i + 1) & mask;
    return i;
}

static void memo_put(pn_placement_memo *m, const uint64_t *k, double v);

static void memo_grow(pn_placement_memo *m) {
    pn_placement_memo old = *m;
    memo_alloc(m, old.cap * 2);
    for (size_t i = 0; i < old.cap; i++)
        if (old.filled[i]) memo_put(m, old.keys + i * (size_t)old.key_words, old.vals[i]);
    free(old.keys);
    free(old.vals);
    free(old.filled);
}

static void memo_put(pn_placement_memo *m, const uint64_t *k, double v) {
    if (2 * (m->used + 1) > m->cap) memo_grow(m);
    size_t i = memo_slot(m, k);
    if (!m->filled[i]) {
        memcpy(m->keys + i * (size_t)m->key_words, k, (size_t)m->key_words * sizeof(uint64_t));
        m->filled[i] = 1;
        m->used++;
    }
    m->vals[i] = v;
}

// Packs (kind, task, full, swa) into m->probe.
static void memo_key(pn_placement_memo *m, int n_layers, int kind, int task, const uint8_t *full, const uint8_t *swa) {
    uint64_t *k = m->probe;
    memset(k, 0, (size_t)m->key_words * sizeof(uint64_t));
    k[0] = ((uint64_t)(uint32_t)task << 1) | (uint64_t)kind;
    for (int i = 0; i < n_layers; i++) {
        if (full[i]) k[1 + i / 64] |= 1ull << (i % 64);
        if (swa && swa[i]) k[1 + m->n_words + i / 64] |= 1ull << (i % 64);
    }
}

// ---------------------------------------------------------------- context

void pn_placement_init(pn_placement *p, int n_layers, int n_tasks, pn_placement_score_fn score,
                       pn_placement_swa_score_fn swa_score, void *ctx) {
    PN_ASSERT(n_layers >= 1 && n_tasks >= 1 && score != NULL);
    memset(p, 0, sizeof *p);
    p->n_layers = n_layers;
    p->n_tasks = n_tasks;
    p->score = score;
    p->swa_score = swa_score;
    p->ctx = ctx;
    pn_placement_memo *m = pn_calloc(1, sizeof *m);
    m->n_words = (n_layers + 63) / 64;
    m->key_words = 1 + 2 * m->n_words;
    m->probe = pn_calloc((size_t)m->key_words, sizeof(uint64_t));
    memo_alloc(m, 256);
    p->memo = m;
}

void pn_placement_free(pn_placement *p) {
    if (p->memo) {
        free(p->memo->keys);
        free(p->memo->vals);
        free(p->memo->filled);
        free(p->memo->probe);
        free(p->memo);
    }
    memset(p, 0, sizeof *p);
}

static double eval_memo(pn_placement *p, int kind, const uint8_t *full, const uint8_t *swa, int task) {
    PN_ASSERT(task >= 0 && task < p->n_tasks);
    pn_placement_memo *m = p->memo;
    p->n_lookups++;
    memo_key(m, p->n_layers, kind, task, full, swa);
    size_t i = memo_slot(m, m->probe);
    if (m->filled[i]) return m->vals[i];
    double v = kind == PN_BEAM_SWA ? p->swa_score(full, swa, task, p->ctx) : p->score(full, task, p->ctx);
    p->n_calls++;
    // the callback may not touch the memo, but the probe key is rebuilt to be safe
    memo_key(m, p->n_layers, kind, task, full, swa);
    memo_put(m, m->probe, v);
    return v;
}

double pn_placement_eval(pn_placement *p, const uint8_t *layer_is_full, int task) {
    return eval_memo(p, PN_BEAM_FULL, layer_is_full, NULL, task);
}

double pn_placement_eval_swa(pn_placement *p, const uint8_t *layer_is_full, const uint8_t *layer_is_swa, int task) {
    PN_ASSERT(p->swa_score != NULL);
    for (int i = 0; i < p->n_layers; i++) PN_ASSERT(!(layer_is_full[i] && layer_is_swa[i]));
    return eval_memo(p, PN_BEAM_SWA, layer_is_full, layer_is_swa, task);
}

// ---------------------------------------------------------------- (a) importance

void pn_placement_importance(pn_placement *p, pn_importance *out) {
    int L = p->n_layers, T = p->n_tasks;
    out->n_layers = L;
    out->n_tasks = T;
    out->single = pn_malloc((size_t)T * (size_t)L * sizeof(double));
    out->all_linear = pn_malloc((size_t)T * sizeof(double));
    out->all_attention = pn_malloc((size_t)T * sizeof(double));
    uint8_t *mask = pn_calloc((size_t)L, 1);
    for (int t = 0; t < T; t++) {
        memset(mask, 0, (size_t)L);
        out->all_linear[t] = pn_placement_eval(p, mask, t);
        for (int i = 0; i < L; i++) {
            mask[i] = 1;
            out->single[(size_t)t * L + i] = pn_placement_eval(p, mask, t);
            mask[i] = 0;
        }
        memset(mask, 1, (size_t)L);
        out->all_attention[t] = pn_placement_eval(p, mask, t);
    }
    free(mask);
}

void pn_importance_free(pn_importance *imp) {
    free(imp->single);
    free(imp->all_linear);
    free(imp->all_attention);
    memset(imp, 0, sizeof *imp);
}

// ---------------------------------------------------------------- objectives

typedef struct {
    pn_placement *p;
    int kind;
    const int *tasks;
    int n_obj;
    bool normalised;
    double *lin;             // (n_obj) all-linear score per objective task
    double *span;            // (n_obj) |all-attention − all-linear|; 0 = no signal
    const uint8_t *fixed;    // SWA: the fixed full-attention mask
    bool warned_nan;
    const char *name;
} objective;

// Objective of one set (full mask, or SWA mask with o->fixed); fills task_scores (n_obj).
static double objective_eval(objective *o, const uint8_t *set, double *task_scores) {
    double sum = 0;
    for (int j = 0; j < o->n_obj; j++) {
        int t = o->tasks[j];
        double s = o->kind == PN_BEAM_SWA ? pn_placement_eval_swa(o->p, o->fixed, set, t)
                                          : pn_placement_eval(o->p, set, t);
        task_scores[j] = s;
        if (o->normalised)
            sum += o->span[j] > 0 ? (s - o->lin[j]) / o->span[j] : 0.0;
        else
            sum += s;
    }
    double v = sum / o->n_obj;
    if (isnan(v) && !o->warned_nan) {
        pn_warn("placement search '%s': the score callback returned NaN; such sets rank last", o->name);
        o->warned_nan = true;
    }
    return v;
}

// ---------------------------------------------------------------- beam core

typedef struct {
    uint8_t *mask;        // (n_layers)
    double score;
    double *task_scores;  // (n_obj)
} candidate;

static int g_cmp_layers;  // qsort has no context argument; the searches are not re-entrant anyway

// Higher score first, NaN last; equal scores: memcmp-larger mask first, which for
// equal-size sets is the lexicographically smaller sorted member list.
static int candidate_cmp_rank(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    bool xn = isnan(x->score), yn = isnan(y->score);
    if (xn != yn) return xn ? 1 : -1;
    if (!xn && x->score != y->score) return x->score > y->score ? -1 : 1;
    return -memcmp(x->mask, y->mask, (size_t)g_cmp_layers);
}

static int candidate_cmp_mask(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    return memcmp(x->mask, y->mask, (size_t)g_cmp_layers);
}

static void result_push(pn_beam_result *r, int *cap, const candidate *c, int size, int rank, int L, int n_obj) {
    if (r->n_entries == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        r->entries = pn_realloc(r->entries, (size_t)*cap * sizeof(pn_beam_entry));
    }
    pn_beam_entry *e = &r->entries[r->n_entries++];
    e->size = size;
    e->rank = rank;
    e->score = c->score;
    e->members = pn_malloc((size_t)size * sizeof(int));
    int n = 0;
    for (int i = 0; i < L; i++)
        if (c->mask[i]) e->members[n++] = i;
    PN_ASSERT(n == size);
    e->task_scores = pn_malloc((size_t)n_obj * sizeof(double));
    memcpy(e->task_scores, c->task_scores, (size_t)n_obj * sizeof(double));
}

// "{3,7,12}" into buf (truncated with "..." when long).
static const char *format_set(const uint8_t *mask, int L, char *buf, size_t n) {
    size_t used = 0;
    buf[used++] = '{';
    buf[used] = 0;
    bool first = true;
    for (int i = 0; i < L; i++) {
        if (!mask[i]) continue;
        int w = snprintf(buf + used, n - used, first ? "%d" : ",%d", i);
        if (w < 0 || (size_t)w + 5 >= n - used) {
            snprintf(buf + used, n - used, "...");
            used += strlen(buf + used);
            break;
        }
        used += (size_t)w;
        first = false;
    }
    snprintf(buf + used, n - used, "}");
    return buf;
}

// Grows sets drawn from `allowed` up to k_max, keeping the `width` best distinct
// sets at each size; every kept beam goes into r->entries.
static void beam_run(objective *o, const uint8_t *allowed, int width, int k_max, pn_beam_result *r) {
    int L = o->p->n_layers, n_obj = o->n_obj;
    int n_allowed = 0;
    for (int i = 0; i < L; i++) n_allowed += allowed[i] != 0;
    // the candidate pool is large enough for any size: w beams × n_allowed extensions
    size_t pool_n = (size_t)PN_MAX(width, 1) * (size_t)PN_MAX(n_allowed, 1);
    candidate *pool = pn_calloc(pool_n, sizeof(candidate));
    uint8_t *masks = pn_calloc(pool_n * (size_t)L, 1);
    double *ts = pn_calloc(pool_n * (size_t)n_obj, sizeof(double));
    uint8_t *beams = pn_calloc((size_t)width * (size_t)L, 1);  // (w, L) kept masks of the previous size
    int n_beams = 0, cap = 0;
    g_cmp_layers = L;

    uint8_t *empty = pn_calloc((size_t)L, 1);
    double *base_ts = pn_calloc((size_t)n_obj, sizeof(double));
    r->base_score = objective_eval(o, empty, base_ts);
    free(base_ts);
    free(empty);

    r->k_done = 0;
    for (int k = 1; k <= k_max; k++) {
        size_t n = 0;
        if (k == 1) {
            for (int i = 0; i < L; i++) {
                if (!allowed[i]) continue;
                candidate *c = &pool[n];
                c->mask = masks + n * (size_t)L;
                memset(c->mask, 0, (size_t)L);
                c->mask[i] = 1;
                n++;
            }
        } else {
            for (int b = 0; b < n_beams; b++) {
                const uint8_t *bm = beams + (size_t)b * L;
                for (int i = 0; i < L; i++) {
                    if (!allowed[i] || bm[i]) continue;
                    PN_ASSERT(n < pool_n);
                    candidate *c = &pool[n];
                    c->mask = masks + n * (size_t)L;
                    memcpy(c->mask, bm, (size_t)L);
                    c->mask[i] = 1;
                    n++;
                }
            }
        }
        if (n == 0) break;
        // sets, not sequences: {a}+b and {b}+a are one candidate
        qsort(pool, n, sizeof(candidate), candidate_cmp_mask);
        size_t u = 0;
        for (size_t i = 0; i < n; i++)
            if (u == 0 || memcmp(pool[u - 1].mask, pool[i].mask, (size_t)L) != 0) pool[u++] = pool[i];
        n = u;
        for (size_t i = 0; i < n; i++) {
            pool[i].task_scores = ts + i * (size_t)n_obj;
            pool[i].score = objective_eval(o, pool[i].mask, pool[i].task_scores);
        }
        qsort(pool, n, sizeof(candidate), candidate_cmp_rank);
        n_beams = (int)PN_MIN((size_t)width, n);
        for (int b = 0; b < n_beams; b++) {
            result_push(r, &cap, &pool[b], k, b, L, n_obj);
            memcpy(beams + (size_t)b * L, pool[b].mask, (size_t)L);
        }
        r->k_done = k;
        char set[256];
        pn_info("placement search '%s': size %d: best %s score %.6g (%zu distinct candidates, %ld score calls so far)",
                o->name, k, format_set(pool[0].mask, L, set, sizeof set), pool[0].score, n, o->p->n_calls);
    }
    free(pool);
    free(masks);
    free(ts);
    free(beams);
}

static void result_begin(pn_beam_result *r, const char *name, int kind, const int *tasks, int n_obj, int width,
                         int k_max) {
    memset(r, 0, sizeof *r);
    r->name = pn_strdup(name ? name : (kind == PN_BEAM_SWA ? "swa" : "search"));
    r->kind = kind;
    r->width = width;
    r->k_max = k_max;
    r->n_obj_tasks = n_obj;
    r->obj_tasks = pn_malloc((size_t)n_obj * sizeof(int));
    memcpy(r->obj_tasks, tasks, (size_t)n_obj * sizeof(int));
}

static void check_search_args(const pn_placement *p, const int *tasks, int n_obj, int width) {
    PN_ASSERT(tasks != NULL && n_obj >= 1);
    for (int j = 0; j < n_obj; j++) PN_ASSERT(tasks[j] >= 0 && tasks[j] < p->n_tasks);
    if (width < 1) pn_die_input("search.beam_width", "expected a beam width >= 1, got %d", width);
}

// ---------------------------------------------------------------- (b) full-attention placement

void pn_placement_beam(pn_placement *p, const int *tasks, int n_obj, int width, int k_max, const char *name,
                       pn_beam_result *out) {
    check_search_args(p, tasks, n_obj, width);
    int L = p->n_layers;
    if (k_max < 1 || k_max > L)
        pn_die_input("search.k_max", "expected 1 <= k_max <= %d (the model's layers), got %d", L, k_max);
    long calls0 = p->n_calls, lookups0 = p->n_lookups;
    result_begin(out, name, PN_BEAM_FULL, tasks, n_obj, width, k_max);

    objective o = {.p = p, .kind = PN_BEAM_FULL, .tasks = tasks, .n_obj = n_obj, .normalised = n_obj > 1,
                   .name = out->name};
    o.lin = pn_calloc((size_t)n_obj, sizeof(double));
    o.span = pn_calloc((size_t)n_obj, sizeof(double));
    if (o.normalised) {
        uint8_t *mask = pn_calloc((size_t)L, 1);
        for (int j = 0; j < n_obj; j++) {
            memset(mask, 0, (size_t)L);
            double lin = pn_placement_eval(p, mask, tasks[j]);
            memset(mask, 1, (size_t)L);
            double all = pn_placement_eval(p, mask, tasks[j]);
            double span = fabs(all - lin);
            o.lin[j] = lin;
            if (isfinite(span) && span > 1e-12) {
                o.span[j] = span;
            } else {
                o.span[j] = 0;
                pn_warn("placement search '%s': task %d scores the same with all-linear (%g) and all-attention "
                        "(%g); it does not count in the combined objective",
                        out->name, tasks[j], lin, all);
            }
        }
        free(mask);
    }
    out->normalised = o.normalised;
    uint8_t *allowed = pn_malloc((size_t)L);
    memset(allowed, 1, (size_t)L);
    beam_run(&o, allowed, width, k_max, out);
    free(allowed);
    free(o.lin);
    free(o.span);
    out->n_calls = p->n_calls - calls0;
    out->n_lookups = p->n_lookups - lookups0;
    pn_info("placement search '%s' done: sizes 1..%d, %ld score calls (%ld requests, the rest from the memo)",
            out->name, out->k_done, out->n_calls, out->n_lookups);
}

// ---------------------------------------------------------------- (c) SWA placement

void pn_placement_swa(pn_placement *p, const uint8_t *layer_is_full, const int *tasks, int n_obj, int width,
                      int max_swa, const char *name, pn_beam_result *out) {
    PN_ASSERT(p->swa_score != NULL);
    check_search_args(p, tasks, n_obj, width);
    int L = p->n_layers;
    if (max_swa < 1) pn_die_input("search.swa", "expected at least 1 SWA layer to place, got %d", max_swa);
    long calls0 = p->n_calls, lookups0 = p->n_lookups;
    result_begin(out, name, PN_BEAM_SWA, tasks, n_obj, width, max_swa);
    uint8_t *allowed = pn_malloc((size_t)L);
    out->fixed = pn_malloc((size_t)L * sizeof(int));
    for (int i = 0; i < L; i++) {
        allowed[i] = !layer_is_full[i];
        if (layer_is_full[i]) out->fixed[out->n_fixed++] = i;
    }
    uint8_t *fixed = pn_malloc((size_t)L);
    for (int i = 0; i < L; i++) fixed[i] = layer_is_full[i] != 0;
    objective o = {.p = p, .kind = PN_BEAM_SWA, .tasks = tasks, .n_obj = n_obj, .normalised = false,
                   .fixed = fixed, .name = out->name};
    beam_run(&o, allowed, width, PN_MIN(max_swa, L), out);
    if (out->k_done < max_swa)
        pn_info("SWA search '%s': only %d layers are free of full attention; placed up to %d", out->name,
                out->k_done, out->k_done);
    free(fixed);
    free(allowed);
    out->n_calls = p->n_calls - calls0;
    out->n_lookups = p->n_lookups - lookups0;
    pn_info("SWA search '%s' done: sizes 1..%d, %ld score calls (%ld requests, the rest from the memo)", out->name,
            out->k_done, out->n_calls, out->n_lookups);
}

// ---------------------------------------------------------------- results

const pn_beam_entry *pn_beam_best(const pn_beam_result *r, int k) {
    for (int i = 0; i < r->n_entries; i++)
        if (r->entries[i].size == k) return &r->entries[i];
    return NULL;
}

void pn_beam_result_free(pn_beam_result *r) {
    for (int i = 0; i < r->n_entries; i++) {
        free(r->entries[i].members);
        free(r->entries[i].task_scores);
    }
    free(r->entries);
    free(r->name);
    free(r->obj_tasks);
    free(r->fixed);
    memset(r, 0, sizeof *r);
}
