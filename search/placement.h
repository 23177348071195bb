// placement.h — PostNAS step 2: where to keep full attention (and SWA).
//
// Design: the search knows nothing about models. The caller hands it a scoring
// callback that, given a layer mask and a task index, returns one number (higher
// is better: −mean NLL for multiple-choice tasks, exact-match accuracy for
// generative ones). On top of that callback sit three searches:
//   (a) per-task single-layer importance: the score with only layer i full
//       attention, for every task and layer (the paper's Fig. 5a heatmap), plus
//       the all-linear and all-attention baselines;
//   (b) beam search over SETS of full-attention layers of size 1..k_max, per
//       task or on a combined objective over several tasks;
//   (c) SWA placement: with the full-attention set fixed, beam search over which
//       of the remaining layers use sliding-window attention.
// Every callback result is memoised by (task, full mask, SWA mask), because the
// callback is the expensive part (a pass over a task suite) and beams overlap
// heavily; the counters say how many real calls were made.
//
// Combined objective (one placement for several tasks). Scores of different
// tasks live on different scales (NLL vs accuracy), so each task's score is
// normalised by its own baselines before averaging:
//     norm_t(S) = (s_t(S) − s_t(∅)) / |s_t(ALL) − s_t(∅)|
// where ∅ is the all-linear model and ALL the all-attention one: 0 means "as good
// as all-linear", 1 "as good as all-attention". The absolute value keeps the
// direction "higher is better" even for a task where full attention happens to
// score below all-linear. A task with |s_t(ALL) − s_t(∅)| ≤ 1e-12 carries no
// signal and contributes 0 (a warning is logged). The combined score is the mean
// of norm_t over the objective's tasks. A single-task objective uses the raw
// score (the normalisation is a positive affine map, so the ranking is the same).
//
// The SWA objective is the mean of the raw SWA scores of its tasks (the MC tasks,
// all in the same unit, −NLL), with the full-attention set held fixed.
//
// Determinism: candidates with equal scores are ordered by their sorted member
// list (lexicographically smaller first), so a search is a pure function of the
// callback's values. A NaN score ranks below every number (and is warned about).
#pragma once
#include "core/common.h"
#include <stdbool.h>

// Score of the subnet where layer i runs full attention iff layer_is_full[i] != 0
// (all other layers: the linear path). Higher is better.
typedef double (*pn_placement_score_fn)(const uint8_t *layer_is_full /* n_layers */, int task, void *ctx);
// The same with a second mask: layer_is_swa[i] != 0 → layer i runs sliding-window
// attention. The two masks never overlap.
typedef double (*pn_placement_swa_score_fn)(const uint8_t *layer_is_full, const uint8_t *layer_is_swa, int task,
                                            void *ctx);

typedef struct pn_placement_memo pn_placement_memo;  // opaque (placement.c)

// The search context: the callbacks, the memo, the counters.
typedef struct {
    int n_layers;
    int n_tasks;
    pn_placement_score_fn score;          // required
    pn_placement_swa_score_fn swa_score;  // NULL = no SWA search
    void *ctx;
    long n_calls;    // callback invocations so far (memo misses)
    long n_lookups;  // score requests so far (misses + hits)
    pn_placement_memo *memo;
} pn_placement;

// Single-layer importance and the two baselines, per task.
typedef struct {
    int n_layers, n_tasks;
    double *single;         // (n_tasks, n_layers): score with only layer i full attention
    double *all_linear;     // (n_tasks)
    double *all_attention;  // (n_tasks)
} pn_importance;

typedef enum { PN_BEAM_FULL = 0, PN_BEAM_SWA = 1 } pn_beam_kind;

// One beam (a set) at one size. members: sorted layer indices, `size` of them.
typedef struct {
    int size;
    int rank;             // 0 = best at this size
    int *members;         // (size)
    double score;         // the search's objective
    double *task_scores;  // (n_obj_tasks): raw per-task scores of this set
} pn_beam_entry;

// One search's whole result. entries are ordered by size, then rank, so the
// best set of size k is the first entry of that size (pn_beam_best).
typedef struct {
    char *name;        // "task:NAME", "combined" or "swa" (set by the caller's choice of name)
    int kind;          // pn_beam_kind
    int width;         // beam width w
    int k_max;         // requested largest size
    int k_done;        // largest size reached (< k_max when too few layers are free)
    int n_obj_tasks;
    int *obj_tasks;    // (n_obj_tasks) task indices of the objective
    bool normalised;   // combined objective (see the top of this file)
    int n_fixed;
    int *fixed;        // SWA: the full-attention layers held fixed (sorted); NULL otherwise
    double base_score;  // objective at size 0: all-linear (full) or no SWA (swa)
    int n_entries;
    pn_beam_entry *entries;
    long n_calls;      // callback invocations made by this search (memo misses)
    long n_lookups;    // score requests made by this search (misses + hits)
} pn_beam_result;

// n_tasks ≥ 1, n_layers ≥ 1, score != NULL; swa_score may be NULL.
void pn_placement_init(pn_placement *p, int n_layers, int n_tasks, pn_placement_score_fn score,
                       pn_placement_swa_score_fn swa_score, void *ctx);
void pn_placement_free(pn_placement *p);

// Memoised score of one full-attention mask for one task.
double pn_placement_eval(pn_placement *p, const uint8_t *layer_is_full, int task);
// Memoised SWA score (p->swa_score must be set).
double pn_placement_eval_swa(pn_placement *p, const uint8_t *layer_is_full, const uint8_t *layer_is_swa, int task);

// (a) Single-layer importance of every task: n_tasks · (n_layers + 2) scores.
void pn_placement_importance(pn_placement *p, pn_importance *out);
void pn_importance_free(pn_importance *imp);

// (b) Beam search over full-attention sets of size 1..k_max. tasks: the
// objective's task indices (n_obj ≥ 1); n_obj > 1 → combined normalised objective.
// width ≥ 1 (the config's search.beam_width), 1 ≤ k_max ≤ n_layers (search.k_max);
// other values exit 2 naming the key. name: copied into out->name.
void pn_placement_beam(pn_placement *p, const int *tasks, int n_obj, int width, int k_max, const char *name,
                       pn_beam_result *out);

// (c) SWA placement: full-attention set `layer_is_full` fixed; beam search over
// SWA sets of size 1..max_swa among the other layers on the mean raw SWA score
// of `tasks`. max_swa larger than the number of free layers is clipped (k_done).
void pn_placement_swa(pn_placement *p, const uint8_t *layer_is_full, const int *tasks, int n_obj, int width,
                      int max_swa, const char *name, pn_beam_result *out);

// The best entry of size k (1 ≤ k ≤ k_done), NULL if none.
const pn_beam_entry *pn_beam_best(const pn_beam_result *r, int k);
void pn_beam_result_free(pn_beam_result *r);
