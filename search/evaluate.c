// evaluate.c — task evaluation through datasets/tasks.c's scorers (see evaluate.h).
//
// The model work is done up front and in batches; the scorers' callbacks then
// only look the precomputed results up. That keeps the scoring rules (ties
// wrong, exact match of length and ids) in one place, tasks.c, while the model
// sees big batches instead of one example per call. A callback identifies its
// example by the context pointer it is handed (the suite's own array), so the
// lookup does not rely on the scorer's visiting order.
//
// Continuation scoring (MC choices, teacher-forced answers) packs rows of
// context + continuation, sorted by length so a batch pads little, into one
// (B, T) forward with right padding; token id 0 fills the tail, which a causal
// model never lets reach the real positions. Log-softmax is taken in double.
#include "search/evaluate.h"
#include "core/fileio.h"
#include "core/log.h"
#include "search/engine.h"
#include <math.h>

void pn_eval_opts_default(pn_eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_examples = 0;
    o->batch = 8;
    o->gen_mode = PN_GEN_EXACT_MATCH;
    o->eos_id = -1;
}

const char *pn_gen_mode_name(pn_gen_mode m) { return m == PN_GEN_TEACHER_FORCED ? "teacher_forced" : "exact_match"; }

int pn_gen_mode_parse(const char *s) {
    if (!strcmp(s, "exact_match")) return PN_GEN_EXACT_MATCH;
    if (!strcmp(s, "teacher_forced")) return PN_GEN_TEACHER_FORCED;
    return -1;
}

double pn_eval_score_of(const pn_eval_result *r) {
    if (r->kind == PN_TASK_MC) return -r->mean_nll;
    return r->gen_mode == PN_GEN_TEACHER_FORCED ? r->token_accuracy : r->accuracy;
}

// ---------------------------------------------------------------- helpers

static void check_ids(const pn_task_suite *s, const pn_task_example *ex, const char *field, const int64_t *ids, int n,
                      int V) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            char where[4400];
            snprintf(where, sizeof where, "%s:%d", s->path ? s->path : s->name, ex->line);
            pn_die_input(where, "field %s element %d = %lld is not a token id of the model (vocab_size %d)", field, i,
                         (long long)ids[i], V);
        }
}

// Index of the example whose context array is `ctx` (cursor: where the last
// lookup ended, so in-order visiting costs O(1) per call).
static int64_t find_example(const pn_task_suite *s, const int64_t *ctx, int64_t *cursor) {
    for (int64_t k = 0; k < s->n_examples; k++) {
        int64_t i = (*cursor + k) % s->n_examples;
        if (s->examples[i].context == ctx) {
            *cursor = i + 1;
            return i;
        }
    }
    pn_die_internal(__FILE__, __LINE__, "scorer handed a context that is not one of the suite's examples");
}

// One row: context + continuation.
typedef struct {
    const int64_t *ctx, *cont;
    int n_ctx, n_cont;
    int64_t out;  // offset of the row's continuation in per-token outputs
} eval_row;

static const eval_row *g_sort_rows;  // qsort has no context argument; set only around the call
static int row_cmp(const void *pa, const void *pb) {
    const int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    const int la = g_sort_rows[a].n_ctx + g_sort_rows[a].n_cont, lb = g_sort_rows[b].n_ctx + g_sort_rows[b].n_cont;
    if (la != lb) return la < lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

// For every row r: loglik[r] = Σ_j log p(cont[j] | ctx, cont[<j]); argmax_tok
// (may be NULL) at rows[r].out + j = argmax of the logits predicting cont[j]
// (lowest id on ties).
static void score_rows(pn_backbone *bb, const eval_row *rows, int64_t n_rows, int batch, double *loglik,
                       int64_t *argmax_tok) {
    if (n_rows == 0) return;
    int64_t *order = pn_malloc((size_t)n_rows * sizeof *order);
    for (int64_t r = 0; r < n_rows; r++) order[r] = r;
    g_sort_rows = rows;
    qsort(order, (size_t)n_rows, sizeof *order, row_cmp);
    g_sort_rows = NULL;
    int max_len = 0;
    for (int64_t r = 0; r < n_rows; r++) max_len = PN_MAX(max_len, rows[r].n_ctx + rows[r].n_cont);
    int64_t *ids = pn_malloc((size_t)batch * (size_t)max_len * sizeof *ids);
    const int V = bb->V;
    for (int64_t r0 = 0; r0 < n_rows; r0 += batch) {
        const int B = (int)PN_MIN((int64_t)batch, n_rows - r0);
        const eval_row *last = &rows[order[r0 + B - 1]];
        const int T = last->n_ctx + last->n_cont;  // sorted: the longest of the batch
        for (int b = 0; b < B; b++) {
            const eval_row *w = &rows[order[r0 + b]];
            int64_t *dst = ids + (size_t)b * T;
            memcpy(dst, w->ctx, (size_t)w->n_ctx * sizeof *dst);
            memcpy(dst + w->n_ctx, w->cont, (size_t)w->n_cont * sizeof *dst);
            for (int t = w->n_ctx + w->n_cont; t < T; t++) dst[t] = 0;
        }
        pn_backbone_forward(bb, ids, B, T);
        const float *logits = bb->logits;  // (B, T, V)
#pragma omp parallel for schedule(dynamic)
        for (int b = 0; b < B; b++) {
            const int64_t r = order[r0 + b];
            const eval_row *w = &rows[r];
            double ll = 0;
            for (int j = 0; j < w->n_cont; j++) {
                // position n_ctx − 1 + j predicts cont[j]
                const float *lg = logits + ((size_t)b * T + (size_t)(w->n_ctx - 1 + j)) * V;
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (lg[v] > lg[best]) best = v;
                const double mx = lg[best];
                double se = 0;
                for (int v = 0; v < V; v++) se += exp((double)lg[v] - mx);
                ll += (double)lg[w->cont[j]] - mx - log(se);
                if (argmax_tok) argmax_tok[w->out + j] = best;
            }
            loglik[r] = ll;
        }
    }
    free(ids);
    free(order);
}

static int64_t subset_size(const pn_task_suite *s, const pn_eval_opts *o) {
    return o->max_examples > 0 ? PN_MIN(o->max_examples, s->n_examples) : s->n_examples;
}

// ---------------------------------------------------------------- multiple choice

typedef struct {
    const pn_task_suite *s;
    const int64_t *first_row;  // (n_examples) row of choice 0
    const double *loglik;      // (rows)
    int64_t cursor;
} mc_lookup;

static void mc_lookup_fn(void *ctx, const int64_t *context, int n_context, int64_t *const *choices,
                         const int *n_choice, int n_choices, double *loglik) {
    (void)n_context, (void)choices, (void)n_choice;
    mc_lookup *m = ctx;
    const int64_t i = find_example(m->s, context, &m->cursor);
    PN_ASSERT(n_choices == m->s->examples[i].n_choices);
    for (int c = 0; c < n_choices; c++) loglik[c] = m->loglik[m->first_row[i] + c];
}

static void eval_mc(pn_backbone *bb, const pn_task_suite *sub, const pn_eval_opts *o, pn_eval_result *r) {
    const int64_t n = sub->n_examples;
    int64_t n_rows = 0;
    for (int64_t i = 0; i < n; i++) n_rows += sub->examples[i].n_choices;
    eval_row *rows = pn_malloc((size_t)PN_MAX(n_rows, 1) * sizeof *rows);
    int64_t *first = pn_malloc((size_t)PN_MAX(n, 1) * sizeof *first);
    double *ll = pn_malloc((size_t)PN_MAX(n_rows, 1) * sizeof *ll);
    // A choice identical to an earlier one of its example is not run again but
    // copies its loglik: batched GEMMs round a row differently depending on where
    // it sits in the batch, and two copies must tie (a tie counts as wrong).
    int64_t *alias = pn_malloc((size_t)PN_MAX(n_rows, 1) * sizeof *alias);
    int64_t *run = pn_malloc((size_t)PN_MAX(n_rows, 1) * sizeof *run);
    int64_t k = 0, n_run = 0;
    for (int64_t i = 0; i < n; i++) {
        const pn_task_example *ex = &sub->examples[i];
        first[i] = k;
        for (int c = 0; c < ex->n_choices; c++, k++) {
            alias[k] = -1;
            for (int d = 0; d < c && alias[k] < 0; d++)
                if (ex->n_choice[d] == ex->n_choice[c] &&
                    !memcmp(ex->choices[d], ex->choices[c], (size_t)ex->n_choice[c] * sizeof(int64_t)))
                    alias[k] = first[i] + d;
            if (alias[k] < 0) {
                run[n_run] = k;
                rows[n_run++] = (eval_row){ex->context, ex->choices[c], ex->n_context, ex->n_choice[c], 0};
            }
        }
    }
    double *ll_run = pn_malloc((size_t)PN_MAX(n_run, 1) * sizeof *ll_run);
    score_rows(bb, rows, n_run, o->batch, ll_run, NULL);
    for (int64_t j = 0; j < n_run; j++) ll[run[j]] = ll_run[j];
    for (int64_t j = 0; j < n_rows; j++)
        if (alias[j] >= 0) ll[j] = ll[alias[j]];  // an alias points at an earlier, real row
    free(alias);
    free(run);
    free(ll_run);
    mc_lookup m = {sub, first, ll, 0};
    pn_task_result tr;
    pn_task_score_mc(sub, mc_lookup_fn, &m, &tr);
    r->n_examples = tr.n_examples;
    r->n_correct = tr.n_correct;
    r->accuracy = tr.accuracy;
    r->mean_nll = tr.mean_nll;
    r->n_answer_tokens = tr.n_answer_tokens;
    r->token_accuracy = NAN;
    free(rows);
    free(first);
    free(ll);
}

// ---------------------------------------------------------------- generative

typedef struct {
    const pn_task_suite *s;
    const int64_t *off;   // (n_examples) offset of each example's output in tok
    const int *len;       // (n_examples) tokens produced (≤ n_answer)
    const int64_t *tok;
    int64_t cursor;
} gen_lookup;

static int gen_lookup_fn(void *ctx, const int64_t *prompt, int n_prompt, int max_new, int64_t *out) {
    (void)n_prompt;
    gen_lookup *g = ctx;
    const int64_t i = find_example(g->s, prompt, &g->cursor);
    const int n = PN_MIN(g->len[i], max_new);
    memcpy(out, g->tok + g->off[i], (size_t)n * sizeof *out);
    return n;
}

static const pn_task_suite *g_sort_suite;
static int prompt_cmp(const void *pa, const void *pb) {
    const int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    const int la = g_sort_suite->examples[a].n_context, lb = g_sort_suite->examples[b].n_context;
    if (la != lb) return la < lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

// Greedy outputs of every example into tok/len (engine batches of equal prompt length).
static void generate_all(pn_backbone *bb, const pn_task_suite *sub, const pn_eval_opts *o, const int64_t *off,
                         int *len, int64_t *tok) {
    const int64_t n = sub->n_examples;
    int64_t *order = pn_malloc((size_t)n * sizeof *order);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    g_sort_suite = sub;
    qsort(order, (size_t)n, sizeof *order, prompt_cmp);
    g_sort_suite = NULL;
    int64_t max_ctx = 1;
    int max_prompt = 1, max_ans = 1;
    for (int64_t i = 0; i < n; i++) {
        const pn_task_example *ex = &sub->examples[i];
        max_ctx = PN_MAX(max_ctx, (int64_t)ex->n_context + ex->n_answer);
        max_prompt = PN_MAX(max_prompt, ex->n_context);
        max_ans = PN_MAX(max_ans, ex->n_answer);
    }
    const int chunk = PN_MIN(max_prompt, 512);
    int64_t *prompt = pn_malloc((size_t)o->batch * (size_t)max_prompt * sizeof *prompt);
    int64_t *out = pn_malloc((size_t)o->batch * (size_t)max_ans * sizeof *out);
    int *out_len = pn_malloc((size_t)o->batch * sizeof *out_len);
    const int64_t stop = o->eos_id;
    pn_engine *e = NULL;
    for (int64_t i0 = 0; i0 < n;) {
        // a batch: up to `batch` prompts of the same length
        const int T = sub->examples[order[i0]].n_context;
        int B = 0, max_new = 0;
        while (B < o->batch && i0 + B < n && sub->examples[order[i0 + B]].n_context == T) {
            max_new = PN_MAX(max_new, sub->examples[order[i0 + B]].n_answer);
            B++;
        }
        if (!e || e->B != B) {
            if (e) pn_engine_free(e);
            e = pn_engine_create(bb, B, max_ctx, chunk);
        }
        for (int b = 0; b < B; b++)
            memcpy(prompt + (size_t)b * T, sub->examples[order[i0 + b]].context, (size_t)T * sizeof *prompt);
        // A longer max_new than an example's answer does not change its first
        // n_answer greedy tokens, so the batch shares the longest.
        pn_engine_generate_greedy(e, prompt, T, max_new, &stop, stop >= 0 ? 1 : 0, out, out_len);
        for (int b = 0; b < B; b++) {
            const int64_t i = order[i0 + b];
            const int nl = PN_MIN(out_len[b], sub->examples[i].n_answer);
            memcpy(tok + off[i], out + (size_t)b * max_new, (size_t)nl * sizeof *tok);
            len[i] = nl;
        }
        i0 += B;
    }
    if (e) pn_engine_free(e);
    free(prompt);
    free(out);
    free(out_len);
    free(order);
}

static void eval_gen(pn_backbone *bb, const pn_task_suite *sub, const pn_eval_opts *o, pn_eval_result *r) {
    const int64_t n = sub->n_examples;
    int64_t *off = pn_malloc((size_t)n * sizeof *off);
    int *len = pn_malloc((size_t)n * sizeof *len);
    int64_t n_tok = 0;
    for (int64_t i = 0; i < n; i++) {
        off[i] = n_tok;
        n_tok += sub->examples[i].n_answer;
    }
    int64_t *tok = pn_malloc((size_t)PN_MAX(n_tok, 1) * sizeof *tok);
    double nll = NAN, tok_acc = NAN;
    if (o->gen_mode == PN_GEN_EXACT_MATCH) {
        generate_all(bb, sub, o, off, len, tok);
    } else {
        // teacher forced: the "output" is the argmax at every answer position
        // given the true prefix, so the exact-match scorer counts an example
        // right exactly when all its positions are.
        eval_row *rows = pn_malloc((size_t)n * sizeof *rows);
        double *ll = pn_malloc((size_t)n * sizeof *ll);
        for (int64_t i = 0; i < n; i++) {
            const pn_task_example *ex = &sub->examples[i];
            rows[i] = (eval_row){ex->context, ex->answer_ids, ex->n_context, ex->n_answer, off[i]};
            len[i] = ex->n_answer;
        }
        score_rows(bb, rows, n, o->batch, ll, tok);
        double s = 0;
        int64_t right = 0;
        for (int64_t i = 0; i < n; i++) {
            s -= ll[i];
            const pn_task_example *ex = &sub->examples[i];
            for (int j = 0; j < ex->n_answer; j++) right += tok[off[i] + j] == ex->answer_ids[j];
        }
        nll = n_tok ? s / (double)n_tok : NAN;
        tok_acc = n_tok ? (double)right / (double)n_tok : NAN;
        free(rows);
        free(ll);
    }
    gen_lookup g = {sub, off, len, tok, 0};
    pn_task_result tr;
    pn_task_score_gen(sub, gen_lookup_fn, &g, &tr);
    r->n_examples = tr.n_examples;
    r->n_correct = tr.n_correct;
    r->accuracy = tr.accuracy;
    r->n_answer_tokens = tr.n_answer_tokens;
    r->mean_nll = nll;
    r->token_accuracy = tok_acc;
    free(off);
    free(len);
    free(tok);
}

// ---------------------------------------------------------------- entry points

void pn_eval_suite(pn_backbone *bb, const pn_task_suite *suite, const pn_eval_opts *o, pn_eval_result *r) {
    if (o->batch < 1) pn_die_input("evaluation options", "batch must be >= 1, got %d", o->batch);
    if (o->max_examples < 0)
        pn_die_input("evaluation options", "max_examples must be >= 0 (0 = all), got %lld", (long long)o->max_examples);
    // the first N examples, as a shallow view of the suite
    pn_task_suite sub = *suite;
    sub.n_examples = subset_size(suite, o);
    for (int64_t i = 0; i < sub.n_examples; i++) {
        const pn_task_example *ex = &sub.examples[i];
        check_ids(suite, ex, suite->kind == PN_TASK_MC ? "'context_ids'" : "'prompt_ids'", ex->context, ex->n_context,
                  bb->V);
        if (suite->kind == PN_TASK_MC)
            for (int c = 0; c < ex->n_choices; c++) check_ids(suite, ex, "'choices_ids'", ex->choices[c], ex->n_choice[c], bb->V);
        else
            check_ids(suite, ex, "'answer_ids'", ex->answer_ids, ex->n_answer, bb->V);
    }
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", suite->name ? suite->name : "");
    r->kind = suite->kind;
    r->gen_mode = o->gen_mode;
    const int saved_no_logits = bb->no_logits;
    bb->no_logits = 0;
    if (suite->kind == PN_TASK_MC)
        eval_mc(bb, &sub, o, r);
    else
        eval_gen(bb, &sub, o, r);
    bb->no_logits = saved_no_logits;
    r->score = pn_eval_score_of(r);
}

void pn_eval_load_suites(const char *dir, const char *const *names, int n, int64_t vocab_size,
                         pn_task_suite *suites) {
    for (int i = 0; i < n; i++) {
        char path[4352];
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, names[i]);
        if (!pn_file_exists(path)) pn_die_input(path, "task file not found (task '%s' in %s)", names[i], dir);
        pn_task_suite_load(&suites[i], path, vocab_size);
    }
}

void pn_eval_tasks_dir(pn_backbone *bb, const char *dir, const char *const *names, int n, const pn_eval_opts *o,
                       pn_eval_result *results) {
    pn_task_suite *suites = pn_calloc((size_t)PN_MAX(n, 1), sizeof *suites);
    pn_eval_load_suites(dir, names, n, bb->V, suites);
    for (int i = 0; i < n; i++) {
        pn_eval_suite(bb, &suites[i], o, &results[i]);
        pn_task_suite_free(&suites[i]);
    }
    free(suites);
}

// ---------------------------------------------------------------- placement bridge

static double subnet_eval(pn_eval_subnet_ctx *c, const pn_subnet *s, int task) {
    PN_ASSERT(task >= 0 && task < c->n_tasks);
    pn_supernet_apply(c->sn, s);
    pn_eval_suite(c->sn->bb, &c->suites[task], &c->opts, &c->last);
    c->n_evals++;
    return c->last.score;
}

double pn_eval_subnet_score(const uint8_t *layer_is_full, int task, void *ctx) {
    pn_eval_subnet_ctx *c = ctx;
    pn_subnet s;
    pn_subnet_fill(&s, c->sn->n_layers, PN_PATH_LINEAR);
    for (int i = 0; i < c->sn->n_layers; i++)
        if (layer_is_full[i]) s.path[i] = PN_PATH_ATTN;
    return subnet_eval(c, &s, task);
}

double pn_eval_subnet_swa_score(const uint8_t *layer_is_full, const uint8_t *layer_is_swa, int task, void *ctx) {
    pn_eval_subnet_ctx *c = ctx;
    pn_subnet s;
    pn_subnet_fill(&s, c->sn->n_layers, PN_PATH_LINEAR);
    for (int i = 0; i < c->sn->n_layers; i++) {
        PN_ASSERT(!(layer_is_full[i] && layer_is_swa[i]));
        if (layer_is_full[i])
            s.path[i] = PN_PATH_ATTN;
        else if (layer_is_swa[i])
            s.path[i] = PN_PATH_SWA;
    }
    return subnet_eval(c, &s, task);
}
