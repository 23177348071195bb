// tasks.c — JSONL task suites: parsing (jansson, line by line) and scoring
// through callbacks (see tasks.h for the formats and the scoring rules).
//
// The whole file is read once and split on '\n', so every error can name the
// exact line; jansson's own column is added for syntax errors.
#include "tasks.h"
#include "core/fileio.h"
#include <jansson.h>
#include <math.h>

typedef struct {
    const char *path;
    int line;
    char where[4200];
    int64_t vocab;
    pn_tokenize_fn tokenize;
    void *tok_ctx;
} parse_ctx;

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

// ids array -> int64 (caller frees). `field` is how messages name it, quotes included: "'choices_ids'[2]".
static int64_t *parse_ids(parse_ctx *pc, const json_t *arr, const char *field, int *n_out) {
    if (!json_is_array(arr))
        pn_die_input(pc->where, "field %s must be an array of token ids, got %s", field, json_type_name(arr));
    size_t n = json_array_size(arr);
    if (n == 0) pn_die_input(pc->where, "field %s is empty; expected at least one token id", field);
    if (n > INT32_MAX) pn_die_input(pc->where, "field %s is too long", field);
    int64_t *ids = pn_malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v))
            pn_die_input(pc->where, "field %s element %zu must be a token id (a non-negative integer), got %s", field,
                         i, json_type_name(v));
        json_int_t id = json_integer_value(v);
        if (id < 0 || (pc->vocab > 0 && id >= pc->vocab))
            pn_die_input(pc->where, "field %s element %zu = %lld is not a token id in [0, %lld)", field, i,
                         (long long)id, (long long)(pc->vocab > 0 ? pc->vocab : INT64_MAX));
        ids[i] = id;
    }
    *n_out = (int)n;
    return ids;
}

static int64_t *tokenize_text(parse_ctx *pc, const json_t *v, const char *field, int *n_out) {
    if (!json_is_string(v)) pn_die_input(pc->where, "field %s must be a string, got %s", field, json_type_name(v));
    if (!pc->tokenize)
        pn_die_input(pc->where, "field %s is text; text fields need a tokenizer; use *_ids", field);
    int n = 0;
    int64_t *ids = pc->tokenize(pc->tok_ctx, json_string_value(v), &n);
    if (!ids || n <= 0) pn_die_input(pc->where, "field %s tokenizes to no tokens", field);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || (pc->vocab > 0 && ids[i] >= pc->vocab))
            pn_die_input(pc->where, "field %s: the tokenizer produced id %lld, outside [0, %lld)", field,
                         (long long)ids[i], (long long)pc->vocab);
    *n_out = n;
    return ids;
}

// The ids form if present, else the text form, else a "missing field" error.
static int64_t *get_seq(parse_ctx *pc, json_t *obj, const char *text_key, const char *ids_key, int *n, const char *kind) {
    char label[64];
    json_t *v = json_object_get(obj, ids_key);
    if (v) return parse_ids(pc, v, (snprintf(label, sizeof label, "'%s'", ids_key), label), n);
    v = json_object_get(obj, text_key);
    if (v) return tokenize_text(pc, v, (snprintf(label, sizeof label, "'%s'", text_key), label), n);
    pn_die_input(pc->where, "missing field '%s' (%s examples need '%s', or '%s' with a tokenizer)", ids_key, kind,
                 ids_key, text_key);
}

static void parse_mc(parse_ctx *pc, json_t *obj, pn_task_example *ex) {
    ex->context = get_seq(pc, obj, "context", "context_ids", &ex->n_context, "multiple-choice");
    json_t *ch = json_object_get(obj, "choices_ids");
    const char *ch_name = "choices_ids";
    int text = 0;
    if (!ch) {
        ch = json_object_get(obj, "choices");
        ch_name = "choices";
        text = 1;
    }
    if (!json_is_array(ch))
        pn_die_input(pc->where, "field '%s' must be an array of choices, got %s", ch_name, json_type_name(ch));
    size_t nc = json_array_size(ch);
    if (nc < 2 || nc > 1024) pn_die_input(pc->where, "field '%s' must hold 2..1024 choices, got %zu", ch_name, nc);
    ex->n_choices = (int)nc;
    ex->choices = pn_calloc(nc, sizeof *ex->choices);
    ex->n_choice = pn_calloc(nc, sizeof *ex->n_choice);
    for (size_t c = 0; c < nc; c++) {
        char field[64];
        snprintf(field, sizeof field, "'%s'[%zu]", ch_name, c);
        json_t *v = json_array_get(ch, c);
        if (text) {
            if (!pc->tokenize && json_is_string(v))
                pn_die_input(pc->where, "field 'choices' is text; text fields need a tokenizer; use *_ids ('choices_ids')");
            ex->choices[c] = tokenize_text(pc, v, field, &ex->n_choice[c]);
        } else {
            ex->choices[c] = parse_ids(pc, v, field, &ex->n_choice[c]);
        }
    }
    json_t *a = json_object_get(obj, "answer");
    if (!a) pn_die_input(pc->where, "missing field 'answer' (an integer index into '%s')", ch_name);
    if (!json_is_integer(a) || json_integer_value(a) < 0 || json_integer_value(a) >= (json_int_t)nc) {
        char got[64];
        if (json_is_integer(a))
            snprintf(got, sizeof got, "%lld", (long long)json_integer_value(a));
        else
            snprintf(got, sizeof got, "%s", json_type_name(a));
        pn_die_input(pc->where, "field 'answer' must be an integer index into '%s' (0..%zu), got %s", ch_name, nc - 1,
                     got);
    }
    ex->answer = (int)json_integer_value(a);
}

static void parse_gen(parse_ctx *pc, json_t *obj, pn_task_example *ex) {
    ex->context = get_seq(pc, obj, "prompt", "prompt_ids", &ex->n_context, "generative");
    json_t *a = json_object_get(obj, "answer_ids");
    if (a) {
        ex->answer_ids = parse_ids(pc, a, "'answer_ids'", &ex->n_answer);
        return;
    }
    a = json_object_get(obj, "answer");
    if (!a)
        pn_die_input(pc->where, "missing field 'answer_ids' (generative examples need 'answer_ids', or 'answer' with "
                     "a tokenizer)");
    ex->answer_ids = tokenize_text(pc, a, "'answer'", &ex->n_answer);
}

const char *pn_task_kind_name(pn_task_kind k) { return k == PN_TASK_MC ? "mc" : "gen"; }

void pn_task_suite_load(pn_task_suite *s, const char *path, int64_t vocab_size) {
    pn_task_suite_load_ex(s, path, vocab_size, NULL, NULL);
}

void pn_task_suite_load_ex(pn_task_suite *s, const char *path, int64_t vocab_size, pn_tokenize_fn tokenize,
                           void *tok_ctx) {
    memset(s, 0, sizeof *s);
    size_t n_bytes = 0;
    char *text = pn_read_file(path, &n_bytes);
    parse_ctx pc = {.path = path, .vocab = vocab_size, .tokenize = tokenize, .tok_ctx = tok_ctx};
    s->path = pn_strdup(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    s->name = pn_strdup(base);
    char *dot = strrchr(s->name, '.');
    if (dot && dot != s->name) *dot = 0;
    int64_t cap = 0;
    int kind_line = 0;
    size_t at = 0;
    for (int line = 1; at < n_bytes; line++) {
        size_t end = at;
        while (end < n_bytes && text[end] != '\n') end++;
        size_t len = end - at;
        const char *ln = text + at;
        at = end + 1;
        if (len && ln[len - 1] == '\r') len--;
        size_t k = 0;
        while (k < len && (ln[k] == ' ' || ln[k] == '\t')) k++;
        if (k == len) continue;
        pc.line = line;
        snprintf(pc.where, sizeof pc.where, "%s:%d", path, line);
        json_error_t err;
        json_t *obj = json_loadb(ln, len, JSON_REJECT_DUPLICATES, &err);
        if (!obj) pn_die_input(pc.where, "invalid JSON at column %d: %s", err.column, err.text);
        if (!json_is_object(obj))
            pn_die_input(pc.where, "expected one JSON object per line, got %s", json_type_name(obj));
        int is_mc = json_object_get(obj, "choices_ids") || json_object_get(obj, "choices");
        int is_gen = json_object_get(obj, "prompt_ids") || json_object_get(obj, "prompt");
        if (is_mc == is_gen)
            pn_die_input(pc.where, "%s; expected a multiple-choice example {\"context_ids\", \"choices_ids\", "
                         "\"answer\"} or a generative one {\"prompt_ids\", \"answer_ids\"}",
                         is_mc ? "has both 'choices' and 'prompt' fields" : "has neither 'choices_ids' nor 'prompt_ids'");
        pn_task_kind kind = is_mc ? PN_TASK_MC : PN_TASK_GEN;
        if (s->n_examples == 0) {
            s->kind = kind;
            kind_line = line;
        } else if (kind != s->kind) {
            pn_die_input(pc.where, "this example is %s but line %d is %s; one file holds one kind of task",
                         kind == PN_TASK_MC ? "multiple-choice" : "generative", kind_line,
                         s->kind == PN_TASK_MC ? "multiple-choice" : "generative");
        }
        if (s->n_examples == cap) {
            cap = cap ? 2 * cap : 64;
            s->examples = pn_realloc(s->examples, (size_t)cap * sizeof *s->examples);
        }
        pn_task_example *ex = &s->examples[s->n_examples];
        memset(ex, 0, sizeof *ex);
        ex->line = line;
        if (kind == PN_TASK_MC)
            parse_mc(&pc, obj, ex);
        else
            parse_gen(&pc, obj, ex);
        s->n_examples++;
        json_decref(obj);
    }
    free(text);
    if (s->n_examples == 0) pn_die_input(path, "no examples (expected one JSON object per line)");
}

void pn_task_suite_free(pn_task_suite *s) {
    for (int64_t i = 0; i < s->n_examples; i++) {
        pn_task_example *ex = &s->examples[i];
        free(ex->context);
        for (int c = 0; c < ex->n_choices; c++) free(ex->choices[c]);
        free(ex->choices);
        free(ex->n_choice);
        free(ex->answer_ids);
    }
    free(s->examples);
    free(s->name);
    free(s->path);
    memset(s, 0, sizeof *s);
}

double pn_task_score_mc(const pn_task_suite *s, pn_mc_loglik_fn fn, void *ctx, pn_task_result *res) {
    PN_ASSERT(s->kind == PN_TASK_MC);
    int max_c = 0;
    for (int64_t i = 0; i < s->n_examples; i++) max_c = PN_MAX(max_c, s->examples[i].n_choices);
    double *ll = pn_malloc((size_t)PN_MAX(max_c, 1) * sizeof *ll);
    int64_t correct = 0, n_tok = 0;
    double nll = 0;
    for (int64_t i = 0; i < s->n_examples; i++) {
        const pn_task_example *ex = &s->examples[i];
        for (int c = 0; c < ex->n_choices; c++) ll[c] = NAN;
        fn(ctx, ex->context, ex->n_context, ex->choices, ex->n_choice, ex->n_choices, ll);
        double a = ll[ex->answer];
        int ok = !isnan(a);
        for (int c = 0; c < ex->n_choices && ok; c++)
            if (c != ex->answer && !(a > ll[c])) ok = 0;  // NaN or tie: wrong
        correct += ok;
        nll -= a;
        n_tok += ex->n_choice[ex->answer];
    }
    free(ll);
    double acc = s->n_examples ? (double)correct / (double)s->n_examples : 0.0;
    if (res) {
        res->n_examples = s->n_examples;
        res->n_correct = correct;
        res->accuracy = acc;
        res->mean_nll = n_tok ? nll / (double)n_tok : NAN;
        res->n_answer_tokens = n_tok;
    }
    return acc;
}

double pn_task_score_gen(const pn_task_suite *s, pn_generate_fn fn, void *ctx, pn_task_result *res) {
    PN_ASSERT(s->kind == PN_TASK_GEN);
    int max_a = 0;
    for (int64_t i = 0; i < s->n_examples; i++) max_a = PN_MAX(max_a, s->examples[i].n_answer);
    int64_t *out = pn_malloc((size_t)PN_MAX(max_a, 1) * sizeof *out);
    int64_t correct = 0, n_tok = 0;
    for (int64_t i = 0; i < s->n_examples; i++) {
        const pn_task_example *ex = &s->examples[i];
        int n = fn(ctx, ex->context, ex->n_context, ex->n_answer, out);
        if (n < 0 || n > ex->n_answer)
            pn_die_internal(__FILE__, __LINE__, "generate callback returned %d tokens for max_new %d", n, ex->n_answer);
        int ok = n == ex->n_answer;
        for (int t = 0; t < n && ok; t++) ok = out[t] == ex->answer_ids[t];
        correct += ok;
        n_tok += ex->n_answer;
    }
    free(out);
    double acc = s->n_examples ? (double)correct / (double)s->n_examples : 0.0;
    if (res) {
        res->n_examples = s->n_examples;
        res->n_correct = correct;
        res->accuracy = acc;
        res->mean_nll = NAN;
        res->n_answer_tokens = n_tok;
    }
    return acc;
}
