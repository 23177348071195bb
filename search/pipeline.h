// pipeline.h — `postnas run`: the whole PostNAS job of one YAML config.
//
// Stages, each writing under run.out_dir (OUT):
//   1. teacher   the pretrained full-attention model on every task of
//                search.tasks (data.tasks_dir) — the ceiling;
//   2. supernet  distillation of the linear paths (supernet/trainer.h, mode
//                supernet) into OUT/supernet/ (checkpoints, metrics.jsonl,
//                supernet.safetensors); `--resume` continues a killed run;
//   3. placement on the trained supernet: single-layer importance per task,
//                beam search per task and on the combined objective for
//                k = 1..search.k_max, then SWA placement on the MC tasks;
//                baselines at the same k: uniform placement (evenly spaced
//                layers), all-linear, the teacher. OUT/placement/trace.{json,h5}
//                and the plots of scripts/plot_placement.py;
//   4. hardware  (hw_search.enabled) the head/key/value search with the chosen
//                placement fixed (search/hw_search.h) into OUT/hw_search/;
//   5. export    the chosen hybrid in the Jet-Nemotron layout into OUT/model/,
//                loaded back and checked against the supernet's subnet (logits
//                and task scores);
//   6. report    OUT/report.md (tables, plots, timings) and OUT/run.json.
// Uniform placement of k layers over L: layer floor((2j + 1) · L / (2k)) for
// j = 0..k−1 (the centres of k equal slices of depth).
#pragma once
#include "supernet/job_config.h"

typedef struct {
    const char *where;  // the config file (messages)
    int resume;         // continue a killed run (supernet training resumes from its checkpoint)
    int fresh;          // delete the stage folders of an earlier run in run.out_dir first
} pn_pipeline_opts;

// Runs every stage; bad config or missing inputs exit 2 naming the key and the
// file (with the command that makes the file, for the synthetic data). Returns 0.
int pn_pipeline_run(const pn_job_config *c, const pn_pipeline_opts *o);

// The uniform placement of k full-attention layers over n_layers (mask out[n_layers]).
void pn_pipeline_uniform_mask(int n_layers, int k, uint8_t *out);
