// pipeline.c — `postnas run` (stages and layout in pipeline.h).
//
// The stages share one loaded backbone with the supernet built on it; the
// teacher is that backbone with every layer on its attention path, so the
// "teacher" row and the all-attention baseline of the search are one number.
// Every score the report shows is measured here in this run; nothing is cached
// across runs except the supernet training (resumable through its checkpoints).
#define _XOPEN_SOURCE 700
#include "search/pipeline.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "search/evaluate.h"
#include "search/export.h"
#include "search/hw_search.h"
#include "search/placement.h"
#include "search/trace.h"
#include "supernet/hybrid.h"
#include "supernet/supernet.h"
#include "supernet/trainer.h"
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <sys/utsname.h>
#include <time.h>

#define PATH_CAP 4200

typedef struct {
    const pn_job_config *c;
    const char *where;
    char out[PATH_CAP];
    pn_backbone *bb;
    pn_supernet *sn;
    int L;
    int n_tasks;
    const char **task_names;
    pn_task_suite *suites;
    pn_eval_subnet_ctx ectx;
    pn_placement pl;
    pn_importance imp;
    pn_beam_result *beams;   // n_tasks per-task searches, then the combined one (if n_tasks > 1)
    int n_beams;
    int chosen_search;       // index into beams
    pn_beam_result swa;
    int have_swa;
    pn_subnet chosen;        // exported subnet
    pn_train_result train;
    double t_stage[6];       // seconds per stage
    double export_logits_err;
    pn_eval_result *exported;  // (n_tasks) scores of the exported model
    pn_eval_result *chosen_sn; // (n_tasks) scores of the chosen subnet in the supernet
    pn_hw_result *hw;          // hardware search result (NULL when not run)
    pn_backbone *hw_bb;        // the chosen design's hybrid: backbone + supernet with its
    pn_supernet *hw_sn;        //   trained linear weights (NULL when not run)
    pn_job_config hw_job;      // the config the search ran with (shallow copy)
    int hw_full[PN_SUPERNET_MAX_LAYERS], hw_swa[PN_SUPERNET_MAX_LAYERS];
    struct acc_memo *acc;      // accuracies already measured (score_acc)
    int n_acc, cap_acc;
} pipeline;

// ---------------------------------------------------------------- small helpers

void pn_pipeline_uniform_mask(int n_layers, int k, uint8_t *out) {
    memset(out, 0, (size_t)n_layers);
    for (int j = 0; j < k; j++) out[(2 * j + 1) * n_layers / (2 * k)] = 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) {
    if (!pn_file_exists(path) && !pn_is_dir(path)) return;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) pn_die_input(path, "cannot remove: %s", strerror(errno));
}

static void sub_path(const pipeline *p, char *out, const char *name) { pn_path_join(out, PATH_CAP, p->out, name); }

static void mask_members(const uint8_t *mask, int L, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < L && o + 8 < n; i++)
        if (mask[i]) o += (size_t)snprintf(buf + o, n - o, "%s%d", o ? ", " : "", i);
    if (!o) snprintf(buf, n, "none");
}

static void members_mask(const int *m, int k, int L, uint8_t *mask) {
    memset(mask, 0, (size_t)L);
    for (int i = 0; i < k; i++) mask[m[i]] = 1;
}

static int task_is_mc(const pipeline *p, int t) { return p->suites[t].kind == PN_TASK_MC; }

// The task's headline number for tables: accuracy (MC and generative alike),
// measured through the same bridge the search uses, once per (mask, task) —
// the report and run.json ask for the same rows.
typedef struct acc_memo {
    uint8_t mask[PN_SUPERNET_MAX_LAYERS];
    int task;
    double acc;
} acc_memo;

static double score_acc(pipeline *p, const uint8_t *mask, int t) {
    for (int i = 0; i < p->n_acc; i++)
        if (p->acc[i].task == t && !memcmp(p->acc[i].mask, mask, (size_t)p->L)) return p->acc[i].acc;
    pn_eval_subnet_score(mask, t, &p->ectx);
    if (p->n_acc == p->cap_acc) {
        p->cap_acc = p->cap_acc ? 2 * p->cap_acc : 32;
        p->acc = pn_realloc(p->acc, (size_t)p->cap_acc * sizeof *p->acc);
    }
    acc_memo *m = &p->acc[p->n_acc++];
    memset(m->mask, 0, sizeof m->mask);
    memcpy(m->mask, mask, (size_t)p->L);
    m->task = t;
    m->acc = p->ectx.last.accuracy;
    return m->acc;
}

// ---------------------------------------------------------------- stages

static void check_inputs(pipeline *p) {
    const pn_job_config *c = p->c;
    char f[PATH_CAP];
    if (!c->model.path[0])
        pn_die_input(p->where, "model.path is empty: `postnas run` starts from a pretrained model directory");
    pn_path_join(f, sizeof f, c->model.path, "config.json");
    if (!pn_file_exists(f))
        pn_die_input(p->where, "model.path '%s' has no config.json (expected a Hugging Face model directory)",
                     c->model.path);
    if (!c->data.train[0] || !pn_file_exists(c->data.train))
        pn_die_input(p->where,
                     "data.train '%s' not found (the synthetic data: `postnas data synth --out DIR --seed N`)",
                     c->data.train);
    if (!c->data.tasks_dir[0]) pn_die_input(p->where, "data.tasks_dir is empty: the search scores task suites");
    if (c->search.tasks.n < 1) pn_die_input(p->where, "search.tasks is empty: name at least one task suite");
    for (int t = 0; t < c->search.tasks.n; t++) {
        char name[512];
        snprintf(name, sizeof name, "%s.jsonl", c->search.tasks.v[t]);
        pn_path_join(f, sizeof f, c->data.tasks_dir, name);
        if (!pn_file_exists(f))
            pn_die_input(p->where, "search.tasks[%d] = %s: %s not found (data.tasks_dir)", t, c->search.tasks.v[t], f);
    }
    if (c->search.k_max < 1) pn_die_input(p->where, "search.k_max = %d, expected >= 1", c->search.k_max);
    if (c->supernet.sampling == PN_SAMPLING_FIXED)
        pn_die_input(p->where, "supernet.sampling is fixed: the supernet of `postnas run` must sample subnets "
                               "(uniform_k or bernoulli)");
}

static void stage_supernet(pipeline *p, const pn_pipeline_opts *o) {
    pn_job_config j = *p->c;  // shallow: strings stay owned by p->c
    char dir[PATH_CAP];
    sub_path(p, dir, "supernet");
    j.run.out_dir = dir;
    j.train.mode = PN_TRAIN_SUPERNET;
    char ck[PATH_CAP];
    pn_path_join(ck, sizeof ck, dir, "ckpt");
    char done[PATH_CAP];
    pn_path_join(done, sizeof done, dir, "supernet.safetensors");
    if (pn_is_dir(ck) && !o->resume)
        pn_die_input(p->where, "%s holds the checkpoints of an earlier run: continue it with --resume, or start "
                               "over with --fresh",
                     ck);
    pn_train_opts to = {.resume = o->resume && pn_is_dir(ck), .stop_at = 0, .where = p->where};
    if (o->resume && pn_file_exists(done) && pn_is_dir(ck)) pn_info("run: supernet: resuming from %s", ck);
    pn_info("run: [2/6] supernet distillation: %s paths, %d steps, k ~ U{0..%d}", pn_linear_block_names[j.supernet.block],
            j.train.steps, j.supernet.k_max);
    pn_train_run(&j, &to, &p->train);
}

static void stage_load(pipeline *p) {
    const pn_job_config *c = p->c;
    p->bb = pn_backbone_load(c->model.path);
    p->L = p->bb->n_layers;
    p->sn = pn_supernet_create(p->bb, &c->supernet, (uint64_t)c->run.seed);
    char f[PATH_CAP];
    sub_path(p, f, "supernet/supernet.safetensors");
    pn_supernet_load_linear(p->sn, f);
    p->n_tasks = c->search.tasks.n;
    p->task_names = (const char **)c->search.tasks.v;
    p->suites = pn_calloc((size_t)p->n_tasks, sizeof *p->suites);
    pn_eval_load_suites(c->data.tasks_dir, p->task_names, p->n_tasks, p->bb->V, p->suites);
    memset(&p->ectx, 0, sizeof p->ectx);
    p->ectx.sn = p->sn;
    p->ectx.suites = p->suites;
    p->ectx.n_tasks = p->n_tasks;
    pn_eval_opts_default(&p->ectx.opts);
    p->ectx.opts.batch = 16;
    p->ectx.opts.max_examples = c->search.max_examples;
    p->ectx.opts.gen_mode =
        c->search.objective_gen == PN_OBJ_GEN_EXACT_MATCH ? PN_GEN_EXACT_MATCH : PN_GEN_TEACHER_FORCED;
}

static void stage_placement(pipeline *p) {
    const pn_job_config *c = p->c;
    pn_placement_init(&p->pl, p->L, p->n_tasks, pn_eval_subnet_score, c->search.swa ? pn_eval_subnet_swa_score : NULL,
                      &p->ectx);
    pn_info("run: [3/6] placement: importance of %d layers on %d tasks", p->L, p->n_tasks);
    pn_placement_importance(&p->pl, &p->imp);
    const int k_max = PN_MIN(c->search.k_max, p->L);
    p->n_beams = p->n_tasks + (p->n_tasks > 1);
    p->beams = pn_calloc((size_t)p->n_beams, sizeof *p->beams);
    for (int t = 0; t < p->n_tasks; t++) {
        char name[300];
        snprintf(name, sizeof name, "task:%s", p->task_names[t]);
        pn_info("run: placement: beam search (width %d, k <= %d) on %s", c->search.beam_width, k_max, name);
        pn_placement_beam(&p->pl, &t, 1, c->search.beam_width, k_max, name, &p->beams[t]);
    }
    if (p->n_tasks > 1) {
        int *all = pn_malloc((size_t)p->n_tasks * sizeof *all);
        for (int t = 0; t < p->n_tasks; t++) all[t] = t;
        pn_info("run: placement: beam search on the combined objective of %d tasks", p->n_tasks);
        pn_placement_beam(&p->pl, all, p->n_tasks, c->search.beam_width, k_max, "combined", &p->beams[p->n_tasks]);
        free(all);
    }
    p->chosen_search = p->n_beams - 1;
    const pn_beam_result *ch = &p->beams[p->chosen_search];
    const pn_beam_entry *best = pn_beam_best(ch, ch->k_done);
    PN_ASSERT(best);
    pn_subnet_fill(&p->chosen, p->L, PN_PATH_LINEAR);
    for (int i = 0; i < best->size; i++) p->chosen.path[best->members[i]] = PN_PATH_ATTN;

    // SWA on the MC tasks, with the chosen full-attention set fixed
    int n_mc = 0, mc[64];
    for (int t = 0; t < p->n_tasks && n_mc < 64; t++)
        if (task_is_mc(p, t)) mc[n_mc++] = t;
    if (c->search.swa && n_mc > 0 && c->search.swa_max > 0 && best->size < p->L) {
        uint8_t full[PN_SUPERNET_MAX_LAYERS];
        members_mask(best->members, best->size, p->L, full);
        pn_info("run: placement: SWA placement (window %d, up to %d layers) on %d MC task(s)", c->supernet.swa_window,
                c->search.swa_max, n_mc);
        pn_placement_swa(&p->pl, full, mc, n_mc, c->search.beam_width, c->search.swa_max, "swa", &p->swa);
        p->have_swa = 1;
        // keep the SWA set only where it does not lose on its objective
        const pn_beam_entry *sb = pn_beam_best(&p->swa, p->swa.k_done);
        if (sb && sb->score >= p->swa.base_score)
            for (int i = 0; i < sb->size; i++) p->chosen.path[sb->members[i]] = PN_PATH_SWA;
    }

    char dir[PATH_CAP], f[PATH_CAP];
    sub_path(p, dir, "placement");
    pn_mkdir_p(dir);
    pn_placement_trace tr;
    pn_placement_trace_init(&tr, &p->pl, p->task_names);
    tr.importance = &p->imp;
    const pn_beam_result **sp = pn_malloc((size_t)p->n_beams * sizeof *sp);
    for (int i = 0; i < p->n_beams; i++) sp[i] = &p->beams[i];
    tr.n_searches = p->n_beams;
    tr.searches = sp;
    tr.swa = p->have_swa ? &p->swa : NULL;
    tr.chosen_search = p->chosen_search;
    tr.chosen_k = ch->k_done;
    pn_path_join(f, sizeof f, dir, "trace.json");
    pn_placement_trace_write_json(&tr, f);
    char h5[PATH_CAP];
    pn_path_join(h5, sizeof h5, dir, "trace.h5");
    pn_placement_trace_write_h5(&tr, h5);
    free(sp);
    char cmd[3 * PATH_CAP];
    snprintf(cmd, sizeof cmd, "python3 scripts/plot_placement.py '%s' '%s' >/dev/null 2>&1", f, dir);
    if (system(cmd) != 0) pn_warn("run: the placement plots were not drawn (python3 with matplotlib missing?)");
}

// The head / key / value search with the chosen placement fixed; the winner's
// trained weights (its candidate run) become the exported model's linear layers.
static void stage_hw(pipeline *p) {
    pn_job_config *j = &p->hw_job;
    *j = *p->c;  // shallow: strings stay owned by p->c
    j->train.mode = PN_TRAIN_SUPERNET;
    j->supernet.sampling = PN_SAMPLING_FIXED;
    int nf = 0, ns = 0;
    for (int i = 0; i < p->L; i++) {
        if (p->chosen.path[i] == PN_PATH_ATTN) p->hw_full[nf++] = i;
        if (p->chosen.path[i] == PN_PATH_SWA) p->hw_swa[ns++] = i;
    }
    j->supernet.full_layers = (pn_cfg_ints){p->hw_full, nf};
    j->supernet.swa_layers = (pn_cfg_ints){p->hw_swa, ns};
    char dir[PATH_CAP];
    sub_path(p, dir, "hw_search");
    pn_info("run: [4/6] hardware search of %s dims with the chosen placement fixed, into %s",
            pn_linear_block_names[j->supernet.block], dir);
    p->hw = pn_calloc(1, sizeof *p->hw);
    pn_hw_search_run(j, p->where, dir, p->hw);
    if (p->hw->chosen < 0) pn_die_internal(__FILE__, __LINE__, "hardware search returned no choice");
    const pn_hw_candidate *w = &p->hw->cand[p->hw->chosen];
    j->supernet.heads = w->H;
    j->supernet.key_dim = w->K;
    j->supernet.value_dim = w->V;
    j->supernet.conv_size = w->conv;
    p->hw_bb = pn_backbone_load(p->c->model.path);
    p->hw_sn = pn_supernet_create(p->hw_bb, &j->supernet, (uint64_t)p->c->run.seed);
    char f[PATH_CAP], name[64];
    snprintf(name, sizeof name, "cand_%d/supernet.safetensors", w->index);
    pn_path_join(f, sizeof f, dir, name);
    pn_supernet_load_linear(p->hw_sn, f);
}

static void stage_export(pipeline *p) {
    const pn_job_config *c = p->c;
    char dir[PATH_CAP];
    sub_path(p, dir, "model");
    pn_info("run: [5/6] export of the chosen hybrid to %s", dir);
    // the model to export: the hardware search's winner when it ran, else the supernet
    pn_supernet *sn = p->hw_sn ? p->hw_sn : p->sn;
    pn_backbone *bb = p->hw_sn ? p->hw_bb : p->bb;
    // the chosen subnet's scores before export
    p->chosen_sn = pn_calloc((size_t)p->n_tasks, sizeof *p->chosen_sn);
    pn_supernet_apply(sn, &p->chosen);
    for (int t = 0; t < p->n_tasks; t++) pn_eval_suite(bb, &p->suites[t], &p->ectx.opts, &p->chosen_sn[t]);
    // logits of a seeded batch through the supernet subnet
    enum { XB = 2, XT = 48 };
    int64_t ids[XB * XT];
    pn_rng r = pn_rng_make((uint64_t)c->run.seed, 77);
    for (int i = 0; i < XB * XT; i++) ids[i] = (int64_t)pn_rng_below(&r, (uint64_t)bb->V);
    const size_t nl = (size_t)XB * XT * (size_t)bb->V;
    float *ref = pn_malloc(nl * sizeof *ref);
    memcpy(ref, pn_supernet_logits(sn, ids, XB, XT, &p->chosen), nl * sizeof *ref);

    pn_export_subnet(sn, &p->chosen, dir, PN_F32, c->model.path);
    pn_backbone *x = pn_hybrid_load(dir);
    x->no_logits = 0;
    pn_backbone_forward(x, ids, XB, XT);
    double num = 0, den = 0;
    for (size_t i = 0; i < nl; i++) {
        double d = (double)x->logits[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    p->export_logits_err = sqrt(num / (den > 0 ? den : 1));
    p->exported = pn_calloc((size_t)p->n_tasks, sizeof *p->exported);
    for (int t = 0; t < p->n_tasks; t++) pn_eval_suite(x, &p->suites[t], &p->ectx.opts, &p->exported[t]);
    pn_info("run: exported model reloaded: logits rel err %.2e vs the supernet subnet", p->export_logits_err);
    if (!(p->export_logits_err <= 1e-5))
        pn_warn("run: the exported model's logits differ from the supernet subnet by %.2e (> 1e-5)",
                p->export_logits_err);
    pn_backbone_free(x);
    free(ref);
}

// ---------------------------------------------------------------- report

static void report_scores_row(FILE *f, pipeline *p, const char *label, const uint8_t *mask) {
    char m[256];
    mask_members(mask, p->L, m, sizeof m);
    fprintf(f, "| %s | %s |", label, m);
    for (int t = 0; t < p->n_tasks; t++) fprintf(f, " %.1f |", 100.0 * score_acc(p, mask, t));
    fprintf(f, "\n");
}

static void write_report(pipeline *p, double t_total) {
    const pn_job_config *c = p->c;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) pn_die_internal(__FILE__, __LINE__, "open_memstream failed");
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    struct utsname un;
    uname(&un);
    fprintf(f, "# PostNAS run: %s\n\n", c->run.name);
    fprintf(f, "Config `%s`, model `%s`, %s, host %s (%s), %.1f min in all.\n\n", p->where, c->model.path, date,
            un.nodename, un.machine, t_total / 60.0);
    fprintf(f, "Every number below was measured in this run by `postnas run`. Task accuracy is exact match "
               "(greedy, generative tasks) or the fraction of multiple-choice examples whose answer has the "
               "highest log-likelihood, on %s of each suite in `%s`.\n\n",
            c->search.max_examples > 0 ? "the first search.max_examples examples" : "all examples", c->data.tasks_dir);
    if (c->search.max_examples > 0)
        fprintf(f, "(search.max_examples = %lld.)\n\n", (long long)c->search.max_examples);

    fprintf(f, "## Result: where full attention stays\n\n");
    for (int k = 1; k <= p->beams[0].k_done; k++) {
        fprintf(f, "### k = %d full-attention layer%s (the other %d layers: %s)\n\n", k, k > 1 ? "s" : "", p->L - k,
                pn_linear_block_names[c->supernet.block]);
        fprintf(f, "| model | full-attention layers |");
        for (int t = 0; t < p->n_tasks; t++) fprintf(f, " %s (%%) |", p->task_names[t]);
        fprintf(f, "\n|---|---|");
        for (int t = 0; t < p->n_tasks; t++) fprintf(f, "---|");
        fprintf(f, "\n");
        uint8_t mask[PN_SUPERNET_MAX_LAYERS];
        for (int b = 0; b < p->n_beams; b++) {
            const pn_beam_entry *e = pn_beam_best(&p->beams[b], k);
            if (!e) continue;
            members_mask(e->members, e->size, p->L, mask);
            char label[300];
            snprintf(label, sizeof label, "searched (%s)", p->beams[b].name);
            report_scores_row(f, p, label, mask);
        }
        pn_pipeline_uniform_mask(p->L, k, mask);
        report_scores_row(f, p, "uniform placement", mask);
        memset(mask, 0, (size_t)p->L);
        report_scores_row(f, p, "all linear", mask);
        memset(mask, 1, (size_t)p->L);
        report_scores_row(f, p, "teacher (all attention)", mask);
        fprintf(f, "\n");
    }
    fprintf(f, "`searched (task:X)` is the best set of the beam search on task X alone; `searched (combined)` the "
               "best on the mean of the tasks' scores normalised between all-linear (0) and all-attention (1). "
               "Uniform placement: the centres of k equal slices of depth. All rows use the same trained "
               "supernet weights.\n\n");

    fprintf(f, "## Single-layer importance\n\n");
    fprintf(f, "Score with only layer i on full attention (generative: accuracy; MC: −NLL of the answer).\n\n");
    fprintf(f, "| task | all linear |");
    for (int i = 0; i < p->L; i++) fprintf(f, " layer %d |", i);
    fprintf(f, " all attention |\n|---|---|");
    for (int i = 0; i <= p->L; i++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int t = 0; t < p->n_tasks; t++) {
        fprintf(f, "| %s | %.3f |", p->task_names[t], p->imp.all_linear[t]);
        for (int i = 0; i < p->L; i++) fprintf(f, " %.3f |", p->imp.single[t * p->L + i]);
        fprintf(f, " %.3f |\n", p->imp.all_attention[t]);
    }
    fprintf(f, "\n![importance](placement/placement_importance.png)\n\n![best vs k](placement/placement_best_vs_k.png)\n\n");
    if (p->have_swa) {
        const pn_beam_entry *sb = pn_beam_best(&p->swa, p->swa.k_done);
        fprintf(f, "SWA placement (window %d) on the MC objective: no SWA %.4f", c->supernet.swa_window,
                p->swa.base_score);
        if (sb) {
            char m[256];
            uint8_t mask[PN_SUPERNET_MAX_LAYERS];
            members_mask(sb->members, sb->size, p->L, mask);
            mask_members(mask, p->L, m, sizeof m);
            fprintf(f, ", best SWA set {%s} %.4f (%s)", m, sb->score,
                    sb->score >= p->swa.base_score ? "kept" : "not kept: worse than linear");
        }
        fprintf(f, ".\n\n");
    }
    fprintf(f, "Search cost: %ld subnet evaluations (%ld lookups with the memo). Trace: `placement/trace.json`, "
               "`placement/trace.h5`.\n\n",
            p->pl.n_calls, p->pl.n_lookups);

    fprintf(f, "## Supernet training\n\n");
    fprintf(f, "%s linear paths on every layer, %lld trainable parameters; %d steps of B %d × T %d, k ~ U{0..%d} "
               "full-attention layers per step, distillation `%s`; last loss %.4f, valid loss %.4f, %.0f tokens/s "
               "(`supernet/metrics.jsonl`).\n\n",
            pn_linear_block_names[c->supernet.block], (long long)pn_supernet_param_count(p->sn), c->train.steps,
            c->data.batch_size, c->data.seq_len, c->supernet.k_max, pn_distill_names[c->supernet.distill],
            p->train.last_loss, p->train.valid_loss, p->train.tokens_per_s);

    if (p->hw) {
        const pn_hw_result *h = p->hw;
        const pn_hw_candidate *w = &h->cand[h->chosen];
        fprintf(f, "## Hardware-aware search (%s dims, placement fixed)\n\n", h->block);
        fprintf(f, "Placement %s; budget %.3f MiB of cache + state per sequence at L = %lld (%s); %d of %d designs within "
                   "it; decode tokens/s measured on this machine (%s, %d threads), batch %d after a %lld-token prompt; "
                   "accuracy after %d distillation steps each. Chosen: H %d, K %d, V %d, conv %d — %.0f tokens/s, mean "
                   "task accuracy %.1f%%. Full table: `hw_search/hw_search.md`.\n\n",
                h->placement, h->budget_bytes / 1048576.0, (long long)h->context,
                h->budget_from_base ? "the base design's" : "hw_search.budget_bytes", h->n_kept, h->n, h->device_name,
                h->threads, h->bench_batch, (long long)h->bench_context, h->train_steps, w->H, w->K, w->V, w->conv,
                w->tokens_per_s, 100.0 * w->accuracy);
        fprintf(f, "| H | K | V | conv | state MiB/seq | decode tok/s |");
        for (int t = 0; t < h->n_tasks; t++) fprintf(f, " %s (%%) |", h->task_names[t]);
        fprintf(f, " mean (%%) | |\n|---|---|---|---|---|---|");
        for (int t = 0; t <= h->n_tasks; t++) fprintf(f, "---|");
        fprintf(f, "---|\n");
        for (int i = 0; i < h->n; i++) {
            const pn_hw_candidate *q = &h->cand[i];
            if (!q->kept) continue;
            fprintf(f, "| %d | %d | %d | %d | %.3f | %.0f |", q->H, q->K, q->V, q->conv, q->bytes / 1048576.0,
                    q->tokens_per_s);
            for (int t = 0; t < h->n_tasks; t++) fprintf(f, " %.1f |", 100.0 * q->task_acc[t]);
            fprintf(f, " %.1f | %s |\n", 100.0 * q->accuracy, q->chosen ? "**chosen**"
                                                                : q->within_tolerance ? "within tolerance" : "");
        }
        fprintf(f, "\n![throughput vs accuracy](hw_search/hw_search.png)\n\n");
    }

    fprintf(f, "## Exported hybrid\n\n");
    {
        char lt[1024];
        size_t o = 0;
        for (int i = 0; i < p->L && o + 32 < sizeof lt; i++) {
            const char *nm = p->chosen.path[i] == PN_PATH_ATTN ? "attn"
                             : p->chosen.path[i] == PN_PATH_SWA ? "swa"
                                                                : pn_linear_block_names[c->supernet.block];
            o += (size_t)snprintf(lt + o, sizeof lt - o, "%s%s", i ? ", " : "", nm);
        }
        fprintf(f, "`model/` (Jet-Nemotron layout, `architecture.yaml`): layers [%s], linear weights from %s. Loaded "
                   "back with `pn_hybrid_load`: logits relative error %.2e against the same subnet before export "
                   "(required ≤ 1e-5).\n\n",
                lt, p->hw ? "the hardware search's chosen design" : "the supernet", p->export_logits_err);
    }
    fprintf(f, "| task | supernet subnet (%%) | exported model (%%) |\n|---|---|---|\n");
    for (int t = 0; t < p->n_tasks; t++)
        fprintf(f, "| %s | %.1f | %.1f |\n", p->task_names[t], 100.0 * p->chosen_sn[t].accuracy,
                100.0 * p->exported[t].accuracy);
    fprintf(f, "\n## Time per stage\n\n| stage | seconds |\n|---|---|\n");
    static const char *const names[] = {"teacher eval", "supernet training", "placement search", "hardware search",
                                        "export + check", "report"};
    for (int s = 0; s < 5; s++) fprintf(f, "| %s | %.1f |\n", names[s], p->t_stage[s]);
    fclose(f);
    char path[PATH_CAP];
    sub_path(p, path, "report.md");
    pn_write_file_atomic(path, buf, n);
    free(buf);
    pn_info("run: [6/6] wrote %s", path);
}

// run.json: the numbers of the report for scripts and tests.
static void write_run_json(pipeline *p, double t_total) {
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("postnas-run"));
    json_object_set_new(root, "n_layers", json_integer(p->L));
    json_t *tasks = json_array(), *teacher = json_array(), *lin = json_array();
    uint8_t mask[PN_SUPERNET_MAX_LAYERS];
    for (int t = 0; t < p->n_tasks; t++) {
        json_array_append_new(tasks, json_string(p->task_names[t]));
        memset(mask, 1, (size_t)p->L);
        json_array_append_new(teacher, json_real(score_acc(p, mask, t)));
        memset(mask, 0, (size_t)p->L);
        json_array_append_new(lin, json_real(score_acc(p, mask, t)));
    }
    json_object_set_new(root, "tasks", tasks);
    json_object_set_new(root, "teacher_accuracy", teacher);
    json_object_set_new(root, "all_linear_accuracy", lin);
    json_t *ks = json_array();
    for (int k = 1; k <= p->beams[0].k_done; k++) {
        json_t *row = json_object();
        json_object_set_new(row, "k", json_integer(k));
        json_t *searched = json_object();
        for (int b = 0; b < p->n_beams; b++) {
            const pn_beam_entry *e = pn_beam_best(&p->beams[b], k);
            if (!e) continue;
            json_t *m = json_array(), *acc = json_array();
            for (int i = 0; i < e->size; i++) json_array_append_new(m, json_integer(e->members[i]));
            members_mask(e->members, e->size, p->L, mask);
            for (int t = 0; t < p->n_tasks; t++) json_array_append_new(acc, json_real(score_acc(p, mask, t)));
            json_object_set_new(searched, p->beams[b].name, json_pack("{s:o, s:o}", "layers", m, "accuracy", acc));
        }
        json_object_set_new(row, "searched", searched);
        pn_pipeline_uniform_mask(p->L, k, mask);
        json_t *um = json_array(), *ua = json_array();
        for (int i = 0; i < p->L; i++)
            if (mask[i]) json_array_append_new(um, json_integer(i));
        for (int t = 0; t < p->n_tasks; t++) json_array_append_new(ua, json_real(score_acc(p, mask, t)));
        json_object_set_new(row, "uniform", json_pack("{s:o, s:o}", "layers", um, "accuracy", ua));
        json_array_append_new(ks, row);
    }
    json_object_set_new(root, "by_k", ks);
    json_t *lt = json_array(), *ex = json_array(), *sn = json_array();
    for (int i = 0; i < p->L; i++)
        json_array_append_new(lt, json_string(p->chosen.path[i] == PN_PATH_ATTN  ? "attn"
                                              : p->chosen.path[i] == PN_PATH_SWA ? "swa"
                                                                                 : pn_linear_block_names[p->c->supernet.block]));
    for (int t = 0; t < p->n_tasks; t++) {
        json_array_append_new(ex, json_real(p->exported[t].accuracy));
        json_array_append_new(sn, json_real(p->chosen_sn[t].accuracy));
    }
    json_object_set_new(root, "chosen_layer_types", lt);
    json_object_set_new(root, "chosen_supernet_accuracy", sn);
    json_object_set_new(root, "exported_accuracy", ex);
    json_object_set_new(root, "export_logits_rel_err", json_real(p->export_logits_err));
    json_object_set_new(root, "seconds", json_real(t_total));
    char *text = json_dumps(root, JSON_INDENT(2));
    char path[PATH_CAP];
    sub_path(p, path, "run.json");
    pn_write_file_atomic(path, text, strlen(text));
    free(text);
    json_decref(root);
}

// ---------------------------------------------------------------- driver

int pn_pipeline_run(const pn_job_config *c, const pn_pipeline_opts *o) {
    pipeline p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.where = o->where && o->where[0] ? o->where : "config";
    snprintf(p.out, sizeof p.out, "%s", c->run.out_dir);
    check_inputs(&p);
    if (o->fresh) {
        static const char *const stages[] = {"supernet", "placement", "hw_search", "model", "report.md"};
        for (size_t i = 0; i < PN_ARRAY_LEN(stages); i++) {
            char d[PATH_CAP];
            sub_path(&p, d, stages[i]);
            rm_tree(d);
        }
    }
    pn_job_config_write_resolved(c, p.out);
    const double t0 = pn_now_seconds();
    double ts = t0;

    // 2 first: the teacher needs no training, but a config error in training
    // should show before minutes of evaluation
    stage_supernet(&p, o);
    p.t_stage[1] = pn_now_seconds() - ts;

    ts = pn_now_seconds();
    stage_load(&p);
    pn_info("run: [1/6] teacher (all attention) on %d tasks", p.n_tasks);
    uint8_t ones[PN_SUPERNET_MAX_LAYERS];
    memset(ones, 1, sizeof ones);
    for (int t = 0; t < p.n_tasks; t++) pn_eval_subnet_score(ones, t, &p.ectx);
    p.t_stage[0] = pn_now_seconds() - ts;

    ts = pn_now_seconds();
    stage_placement(&p);
    p.t_stage[2] = pn_now_seconds() - ts;

    ts = pn_now_seconds();
    if (c->hw_search.enabled) stage_hw(&p);
    p.t_stage[3] = pn_now_seconds() - ts;

    ts = pn_now_seconds();
    stage_export(&p);
    p.t_stage[4] = pn_now_seconds() - ts;

    write_report(&p, pn_now_seconds() - t0);
    write_run_json(&p, pn_now_seconds() - t0);

    for (int b = 0; b < p.n_beams; b++) pn_beam_result_free(&p.beams[b]);
    free(p.beams);
    if (p.have_swa) pn_beam_result_free(&p.swa);
    pn_importance_free(&p.imp);
    pn_placement_free(&p.pl);
    for (int t = 0; t < p.n_tasks; t++) pn_task_suite_free(&p.suites[t]);
    free(p.suites);
    free(p.exported);
    free(p.chosen_sn);
    pn_supernet_free(p.sn);
    pn_backbone_free(p.bb);
    if (p.hw_sn) pn_supernet_free(p.hw_sn);
    if (p.hw_bb) pn_backbone_free(p.hw_bb);
    free(p.hw);
    free(p.acc);
    return 0;
}
