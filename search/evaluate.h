// evaluate.h — task evaluation of a model as it stands (plain backbone, a
// supernet subnet applied to it, or an exported hybrid), and the bridge from the
// supernet to the placement search's scoring callbacks.
//
// Scoring semantics are those of datasets/tasks.h (this module feeds its
// scorers through their callbacks):
//   MC:  log p(choice | context) summed over the choice's tokens, from padded
//        batched forwards of the backbone (context + choice per row, right
//        padding: the model is causal, so pad tokens after a row's end never
//        reach its real positions). Correct = the answer's loglik strictly
//        above every other choice's (ties wrong). mean_nll = −log p(answer
//        tokens) per answer token.
//   GEN, exact_match:    greedy decoding with the hybrid engine, prompts of
//        equal length batched together, max_new = the answer's length. Answers
//        that must stop carry their EOS in answer_ids (datasets/synth.c writes
//        math answers that way), so stopping is part of the answer: an output
//        that ends early or goes on is wrong either way.
//   GEN, teacher_forced: one forward of prompt + answer; an answer position is
//        right when the argmax (lowest id on ties, as the engine) of the
//        previous position's logits is the answer token. accuracy counts an
//        example only when all its positions are right; token_accuracy is the
//        fraction of right positions; mean_nll is filled too.
// Batching changes float rounding (a row's GEMM sums depend on the batch it
// sits in), so logliks match an unbatched forward to ~1e-7 relative, not bit
// for bit; identical choices of one example are scored once so they tie exactly.
// Subsets for search-time evaluation are the first max_examples examples (the
// same subset for every candidate, so scores are comparable).
//
// Placement objective (DESIGN.md "Decisions"), higher is better:
//   MC → −mean_nll; GEN exact_match → accuracy; GEN teacher_forced →
//   token_accuracy (the "answer-token accuracy" alternative: smoother than the
//   all-or-nothing example accuracy on a small subset).
#pragma once
#include "datasets/tasks.h"
#include "supernet/supernet.h"

typedef enum { PN_GEN_EXACT_MATCH = 0, PN_GEN_TEACHER_FORCED = 1 } pn_gen_mode;

typedef struct {
    int64_t max_examples;  // > 0: only the first N examples; 0 = all
    int batch;             // rows per forward / sequences per engine batch (>= 1)
    pn_gen_mode gen_mode;
    int64_t eos_id;        // exact_match: a sequence stops after producing it; < 0 = never stop early.
                           // Only saves work: outputs are cut to the answer's length, so unless an
                           // answer holds this id before its end, the result is the same.
} pn_eval_opts;

typedef struct {
    char name[128];          // the suite's name
    pn_task_kind kind;
    pn_gen_mode gen_mode;    // GEN only
    int64_t n_examples;      // evaluated (after max_examples)
    int64_t n_correct;
    double accuracy;         // n_correct / n_examples
    double mean_nll;         // MC and GEN teacher_forced: per answer token; GEN exact_match: NAN
    double token_accuracy;   // GEN teacher_forced: right answer positions / all; else NAN
    int64_t n_answer_tokens;
    double score;            // placement objective (see the top of this file)
} pn_eval_result;

// batch 8, all examples, exact_match, eos_id -1.
void pn_eval_opts_default(pn_eval_opts *o);
const char *pn_gen_mode_name(pn_gen_mode m);       // "exact_match" | "teacher_forced"
// Parses a mode name; -1 when unknown.
int pn_gen_mode_parse(const char *s);

// Evaluates bb with its current mixers on suite. Token ids outside the model's
// vocabulary exit 2 naming the file and line. The backbone's no_logits flag is
// cleared for the evaluation and restored after it.
void pn_eval_suite(pn_backbone *bb, const pn_task_suite *suite, const pn_eval_opts *o, pn_eval_result *r);

// Loads DIR/NAME.jsonl (ids checked against vocab_size) for each name.
void pn_eval_load_suites(const char *dir, const char *const *names, int n, int64_t vocab_size,
                         pn_task_suite *suites);
// Loads and evaluates DIR/NAME.jsonl for each of names[0..n); results (n).
void pn_eval_tasks_dir(pn_backbone *bb, const char *dir, const char *const *names, int n, const pn_eval_opts *o,
                       pn_eval_result *results);

// The placement objective of a result (higher is better).
double pn_eval_score_of(const pn_eval_result *r);

// ---- the placement-search bridge ----
// ctx of the scoring callbacks: the supernet, its task suites (task index =
// suite index) and the options. Borrowed; nothing here is freed by the callbacks.
typedef struct {
    pn_supernet *sn;
    const pn_task_suite *suites;
    int n_tasks;
    pn_eval_opts opts;
    long n_evals;           // callback invocations so far
    pn_eval_result last;    // the details of the last invocation
} pn_eval_subnet_ctx;

// pn_placement_score_fn: applies the subnet with layer i on the attention path
// when layer_is_full[i] != 0, else on the linear path, and returns the
// placement objective of task `task`. Leaves that subnet applied.
double pn_eval_subnet_score(const uint8_t *layer_is_full, int task, void *ctx);
// pn_placement_swa_score_fn: the same with layer_is_swa[i] != 0 → the SWA path.
double pn_eval_subnet_swa_score(const uint8_t *layer_is_full, const uint8_t *layer_is_swa, int task, void *ctx);
