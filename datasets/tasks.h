// tasks.h — evaluation task suites (JSONL) and their scoring.
//
// One example per line; blank lines are skipped; fields not listed here are
// ignored (datasets often carry metadata). Two kinds, fixed per file by its
// first example:
//   multiple choice (MC):  {"context_ids": [...], "choices_ids": [[...], ...], "answer": i}
//                          or the text form {"context": "...", "choices": ["...", ...], "answer": i}
//   generative (GEN):      {"prompt_ids": [...], "answer_ids": [...]}
//                          or the text form {"prompt": "...", "answer": "..."}
// Text fields go through a tokenizer callback; without one they exit 2 ("text
// fields need a tokenizer; use *_ids"). When both forms are given, *_ids wins.
// Every error names FILE:LINE and the field.
//
// Scoring never calls model code directly: the caller passes a callback, so
// this module sits below the supernet and the search in the dependency order.
//   MC:  the callback returns log p(choice | context) (natural log, summed over
//        the choice's tokens) for every choice of one example, so a model can
//        run all choices as one batch. An example is correct when the answer's
//        log-likelihood is strictly above every other choice's (a tie counts as
//        wrong, so a constant model cannot score by answer position).
//        mean_nll = total −log p(answer tokens) / total answer tokens.
//   GEN: the callback greedily decodes at most max_new tokens after the prompt
//        (stopping early where it likes, e.g. at EOS) and returns how many it
//        wrote; correct = the output equals answer_ids exactly (same length,
//        same ids), with max_new = the answer's length.
#pragma once
#include "core/common.h"

typedef enum { PN_TASK_MC = 0, PN_TASK_GEN = 1 } pn_task_kind;

typedef struct {
    int64_t *context;   // MC context or GEN prompt (n_context)
    int n_context;
    int n_choices;      // MC
    int64_t **choices;  // (n_choices) arrays of n_choice[c] ids
    int *n_choice;
    int answer;         // MC: index into choices
    int64_t *answer_ids;  // GEN (n_answer)
    int n_answer;
    int line;           // 1-based line in the source file
} pn_task_example;

typedef struct {
    char *name;   // file stem: "math" for DIR/math.jsonl
    char *path;
    pn_task_kind kind;
    pn_task_example *examples;
    int64_t n_examples;
} pn_task_suite;

// Text -> ids; returns a malloc'd array (caller frees) and sets *n. NULL = no tokenizer.
typedef int64_t *(*pn_tokenize_fn)(void *ctx, const char *text, int *n);

// vocab_size > 0: every id must be below it (else exit 2 naming FILE:LINE and the field).
void pn_task_suite_load(pn_task_suite *s, const char *path, int64_t vocab_size);
void pn_task_suite_load_ex(pn_task_suite *s, const char *path, int64_t vocab_size, pn_tokenize_fn tokenize,
                           void *tok_ctx);
void pn_task_suite_free(pn_task_suite *s);
const char *pn_task_kind_name(pn_task_kind k);  // "mc" | "gen"

// loglik[c] = sum over the tokens of choice c of log p(token | context, earlier choice tokens).
typedef void (*pn_mc_loglik_fn)(void *ctx, const int64_t *context, int n_context, int64_t *const *choices,
                                const int *n_choice, int n_choices, double *loglik);
// Writes up to max_new greedily decoded tokens after the prompt into out; returns how many.
typedef int (*pn_generate_fn)(void *ctx, const int64_t *prompt, int n_prompt, int max_new, int64_t *out);

typedef struct {
    int64_t n_examples;
    int64_t n_correct;
    double accuracy;       // n_correct / n_examples
    double mean_nll;       // MC: per answer token; GEN: NAN
    int64_t n_answer_tokens;
} pn_task_result;

// Both return the accuracy; res (may be NULL) gets the details. The suite must
// be of the matching kind.
double pn_task_score_mc(const pn_task_suite *s, pn_mc_loglik_fn fn, void *ctx, pn_task_result *res);
double pn_task_score_gen(const pn_task_suite *s, pn_generate_fn fn, void *ctx, pn_task_result *res);
