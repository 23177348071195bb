// trace.h — the placement search's whole result on disk, as JSON and as HDF5.
//
// Design: one non-owning view (pn_placement_trace) of what the searches in
// placement.h produced, written two ways: JSON (jansson) for people, reports and
// scripts/plot_placement.py; HDF5 for analysis with h5py. Both writes are atomic
// (temp file + fsync + rename, core/fileio.h). Non-finite scores become JSON null
// (JSON has no NaN) and stay NaN/±inf in HDF5.
//
// JSON layout (format "postnas-placement-trace", version 1):
//   n_layers, tasks [names], normalisation (text of the combined objective),
//   importance [[tasks × layers]], all_linear [tasks], all_attention [tasks],
//   searches [ {name, kind "full"|"swa", beam_width, k_max, k_done, normalised,
//               objective_tasks [names], fixed [layers] (swa only), base_score,
//               score_calls, score_lookups,
//               beams [{size, rank, members [..], score, task_scores [..]}],
//               best  [{k, members [..], score}]} ],
//   swa: the SWA search in the same form, or null,
//   chosen: {search, k, members [..]} or null,
//   score_calls, score_lookups (totals of the whole job).
// HDF5 layout: root attributes format, version, n_layers, n_tasks, task_names,
//   score_calls, score_lookups, normalisation; datasets importance (T, L) f64,
//   all_linear (T), all_attention (T); chosen (k) int32 with attributes search, k;
//   groups searches/NN and swa, each with the attributes of a JSON search
//   (objective_tasks as int32 indices, objective_task_names as strings) and
//   datasets best_members (k_done, k_done) int32 padded with −1, best_score
//   (k_done) f64, fixed (n) int32, and per size K a group size_K holding members
//   (n_beams, K) int32, rank (n_beams) int32, score (n_beams) f64,
//   task_scores (n_beams, n_obj) f64.
#pragma once
#include "placement.h"

typedef struct {
    int n_layers;
    int n_tasks;
    const char *const *task_names;       // (n_tasks); NULL → "task0", "task1", ...
    const pn_importance *importance;     // NULL = not computed
    int n_searches;
    const pn_beam_result *const *searches;  // (n_searches) full-attention searches
    const pn_beam_result *swa;           // NULL = no SWA search
    int chosen_search;                   // index into searches; −1 = no choice recorded
    int chosen_k;                        // size of the chosen placement in that search
    long n_calls;                        // totals of the pn_placement context
    long n_lookups;
} pn_placement_trace;

// Fills a trace view over one context: totals from p, no choice, nothing attached.
void pn_placement_trace_init(pn_placement_trace *t, const pn_placement *p, const char *const *task_names);

// Write the trace as JSON / HDF5 at `path`, atomically. Exits 2 naming the path
// when it cannot be written.
void pn_placement_trace_write_json(const pn_placement_trace *t, const char *path);
void pn_placement_trace_write_h5(const pn_placement_trace *t, const char *path);
