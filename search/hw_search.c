// hw_search.c — the hardware-aware head / key / value search (see hw_search.h).
//
// Everything about a candidate's cost is derived from the blocks' own tables
// (pn_block_setup resolves the dims, state_size gives the elements, the spec
// gives the parameters), so the budget filter can never disagree with what the
// engine allocates or what training builds. The dims a block cannot take are
// checked here first, mirroring the blocks' requirements, so the message names
// the config key and the candidate instead of the block's internals; whatever
// slips through is still refused by the block's own defaults (also exit 2).
//
// Order of work: plan (cheap, all checks) → load the task suites (fail before
// any training) → throughput of every kept candidate back to back (one machine
// state for all, untrained weights: decode time does not depend on values) →
// per candidate: distillation, then evaluation of the trained hybrid → choice →
// outputs. Each candidate is built as an exported hybrid would be
// (pn_export_build: base weights + the candidate's linear weights), so what is
// timed and scored is exactly the model the search would hand on.
#include "search/hw_search.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "search/bench_util.h"
#include "search/engine.h"
#include "search/evaluate.h"
#include "search/export.h"
#include "supernet/checkpoint.h"
#include "supernet/hybrid.h"
#include "supernet/model_init.h"
#include "supernet/trainer.h"
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef POSTNAS_HAVE_CUDA
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_engine.h"
#include "search/engine_cuda.h"
#endif

#define HW_KV_BYTES 2    // attention / SWA K and V elements (bf16)
#define HW_REC_BYTES 4   // linear recurrent state (fp32)
#define HW_CONV_BYTES 2  // short-conv / token-shift rows (bf16, the activations' dtype)
#define HW_PREFILL_CHUNK 256
#define HW_PREFILL_CHUNK_CUDA 1024
#define HW_PREFILL_SEQS_CUDA 8  // sequences prefilled on the GPU; the rest of the batch copies their states

static const char *const k_bytes_convention =
    "decode cache + state bytes per sequence at context L for the whole hybrid: attention and SWA K/V at 2 bytes "
    "per element (bf16; SWA holds min(window, L) positions), linear recurrent states at 4 bytes (fp32), short-conv "
    "/ token-shift rows at 2 bytes (bf16)";
static const char *const k_accuracy_definition =
    "mean over tasks of the task accuracy (fraction of examples right: multiple choice by answer log-likelihood, "
    "generative by greedy exact match; with search.objective_gen teacher_forced_acc, answer-token accuracy)";

// ---------------------------------------------------------------- block facts

static int block_has_conv(const char *t) {
    return !strcmp(t, "jetblock") || !strcmp(t, "gated_deltanet") || !strcmp(t, "deltanet") || !strcmp(t, "mamba2");
}

// Checks the raw dims of one design (0 = the block's default) against what the
// block requires; `what` describes the design in the message.
static void check_dims(const char *where, const char *what, const char *t, int C, int H, int K, int V, int W) {
    if (W && !block_has_conv(t))
        pn_die_input(where, "%s: block %s has no short conv, so hw_search.conv_sizes and supernet.conv_size must be "
                            "unset ([] / 0), got conv_size %d",
                     what, t, W);
    if (!strcmp(t, "rwkv7") || !strcmp(t, "mamba2")) {
        // heads × head dim is fixed: C for rwkv7, expand·C = 2C for mamba2
        const int E = strcmp(t, "rwkv7") ? 2 * C : C;
        const char *ename = strcmp(t, "rwkv7") ? "2 x hidden_size" : "hidden_size";
        if (H && K && (int64_t)H * K != E)
            pn_die_input(where, "%s: block %s needs heads x key_dim = %s = %d, got %d x %d", what, t, ename, E, H, K);
        if (H && !K && E % H)
            pn_die_input(where, "%s: block %s derives key_dim = %s / heads, but %d is not a multiple of heads %d", what,
                         t, ename, E, H);
        if (K && !H && E % K)
            pn_die_input(where, "%s: block %s derives heads = %s / key_dim, but %d is not a multiple of key_dim %d",
                         what, t, ename, E, K);
        if (!strcmp(t, "mamba2") && V)
            pn_die_input(where, "%s: block mamba2 has no separate value dim (its head dim is key_dim), so "
                                "hw_search.value_dims and supernet.value_dim must be unset, got value_dim %d",
                         what, V);
        if (!strcmp(t, "rwkv7") && V) {
            const int k = K ? K : H ? C / H : 0;
            if (k && V != k)
                pn_die_input(where, "%s: block rwkv7 ties value_dim to key_dim (%d), got value_dim %d", what, k, V);
        }
    }
    if (!strcmp(t, "retnet")) {
        const int k = K ? K : H ? C / H : 0;
        if (H && !K && C / H < 1)
            pn_die_input(where, "%s: block retnet derives key_dim = hidden_size / heads = %d / %d < 1", what, C, H);
        if (k && k % 2)
            pn_die_input(where, "%s: block retnet needs an even key_dim (RoPE over K), got %d", what, k);
    }
    if (!strcmp(t, "gla") && H && H > C / 2 && (!K || !V))
        pn_die_input(where, "%s: block gla derives key_dim = hidden_size / 2 / heads = %d / 2 / %d < 1; give key_dims "
                            "and value_dims explicitly",
                     what, C, H);
}

// ---------------------------------------------------------------- plan

static void describe_list(char *out, size_t n, const char *name, const pn_cfg_ints *l) {
    size_t k = (size_t)snprintf(out, n, "%s: ", name);
    if (l->n == 0) snprintf(out + k, n > k ? n - k : 0, "-");
    for (int i = 0; i < l->n && k < n; i++) k += (size_t)snprintf(out + k, n - k, "%s%d", i ? ", " : "", l->v[i]);
}

static void placement_layout(const pn_job_config *c, const char *where, const pn_hf_config *base,
                             const pn_block_type *lt, pn_hybrid_layout *lay, char *desc, size_t desc_n) {
    const int L = base->num_hidden_layers;
    if (L > PN_HYBRID_MAX_LAYERS) pn_die_input(where, "the model has %d layers; at most %d are supported", L, PN_HYBRID_MAX_LAYERS);
    pn_hybrid_layout_init(lay, L);
    uint8_t seen[PN_HYBRID_MAX_LAYERS] = {0};
    const pn_cfg_ints *lists[2] = {&c->supernet.full_layers, &c->supernet.swa_layers};
    const char *keys[2] = {"supernet.full_layers", "supernet.swa_layers"};
    const pn_block_type *types[2] = {pn_block_type_find("attn"), pn_block_type_find("swa")};
    PN_ASSERT(types[0] && types[1]);
    for (int l = 0; l < L; l++) lay->type[l] = lt;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < lists[k]->n; j++) {
            int v = lists[k]->v[j];
            if (v < 0 || v >= L)
                pn_die_input(where, "%s[%d] = %d, expected a layer index 0..%d (model %s)", keys[k], j, v, L - 1,
                             c->model.path);
            if (seen[v]) pn_die_input(where, "%s[%d] = %d: layer %d is already listed", keys[k], j, v, v);
            seen[v] = 1;
            lay->type[v] = types[k];
        }
    lay->dims[pn_hybrid_type_index(types[1])].window = c->supernet.swa_window;
    int n_lin = 0;
    for (int l = 0; l < L; l++) n_lin += !seen[l];
    if (n_lin == 0)
        pn_die_input(where, "every layer is on full or sliding-window attention (supernet.full_layers / swa_layers): "
                            "there is no linear layer whose dims could be searched");
    char a[160], s[160], lin[200];
    describe_list(a, sizeof a, "attn", lists[0]);
    describe_list(s, sizeof s, "swa", lists[1]);
    size_t k = (size_t)snprintf(lin, sizeof lin, "linear: ");
    int first = 1;
    for (int l = 0; l < L && k < sizeof lin; l++)
        if (!seen[l]) {
            k += (size_t)snprintf(lin + k, sizeof lin - k, "%s%d", first ? "" : ", ", l);
            first = 0;
        }
    snprintf(desc, desc_n, "%.150s | %.150s | %.200s", a, s, lin);
}

// Describes which layers of lay are attn, swa and the linear type lt.
static void layout_describe(const pn_hybrid_layout *lay, const pn_block_type *lt, char *desc, size_t n) {
    char part[3][200];
    const char *names[3] = {"attn", "swa", "linear"};
    for (int k = 0; k < 3; k++) {
        size_t m = (size_t)snprintf(part[k], sizeof part[k], "%s: ", names[k]);
        int any = 0;
        for (int l = 0; l < lay->n_layers && m < sizeof part[k]; l++) {
            const pn_block_type *t = lay->type[l];
            int is = k == 2 ? t == lt : !strcmp(t->name, names[k]);
            if (!is) continue;
            m += (size_t)snprintf(part[k] + m, sizeof part[k] - m, "%s%d", any ? ", " : "", l);
            any = 1;
        }
        if (!any) snprintf(part[k] + m, sizeof part[k] - m, "-");
    }
    snprintf(desc, n, "%.150s | %.150s | %.200s", part[0], part[1], part[2]);
}

// The layout whose bytes and throughput are measured: model.path with the supernet
// placement, or hw_search.throughput_model (a Jet-Nemotron preset name or a
// jet_nemotron directory). Its linear layers must be of type lt and every other layer
// attn or swa. raw (may be NULL) gets the model's own dims of lt (H, K, V, conv).
static void tp_layout(const pn_job_config *c, const char *where, const pn_hf_config *base, const pn_block_type *lt,
                      pn_hf_config *tpb, pn_hybrid_layout *lay, char *desc, size_t desc_n, int raw[4]) {
    const char *tm = c->hw_search.throughput_model;
    if (!tm || !tm[0]) {
        *tpb = *base;
        placement_layout(c, where, base, lt, lay, desc, desc_n);
        if (raw) {
            raw[0] = c->supernet.heads, raw[1] = c->supernet.key_dim;
            raw[2] = c->supernet.value_dim, raw[3] = c->supernet.conv_size;
        }
        return;
    }
    if (pn_model_jet_preset(tm, tpb, lay) != 0) {
        struct stat st;
        if (stat(tm, &st) != 0 || !S_ISDIR(st.st_mode))
            pn_die_input(where, "hw_search.throughput_model = '%s': expected a Jet-Nemotron preset (jet-nemotron-2b, "
                                "jet-nemotron-4b) or a jet_nemotron HF directory",
                         tm);
        if (!pn_hybrid_config_load(tm, tpb, lay))
            pn_die_input(tm, "config.json is a plain %s model; hw_search.throughput_model needs a hybrid layout "
                             "(model_type jet_nemotron, e.g. from postnas init-model --like jet-nemotron-2b)",
                         tpb->model_type);
    }
    int n_lin = 0;
    for (int l = 0; l < lay->n_layers; l++) {
        const pn_block_type *t = lay->type[l];
        if (t == lt) {
            n_lin++;
        } else if (strcmp(t->name, "attn") && strcmp(t->name, "swa")) {
            pn_die_input(where, "hw_search.throughput_model '%s': layer %d is %s; the search varies one linear block "
                                "(supernet.block = %s), every other layer must be attn or swa",
                         tm, l, t->name, lt->name);
        }
    }
    if (n_lin == 0)
        pn_die_input(where, "hw_search.throughput_model '%s' has no %s layer (supernet.block): nothing to search", tm,
                     lt->name);
    layout_describe(lay, lt, desc, desc_n);
    if (raw) {
        const pn_block_cfg *d = &lay->dims[pn_hybrid_type_index(lt)];
        raw[0] = d->H, raw[1] = d->K, raw[2] = d->V, raw[3] = d->conv_size;
    }
}

// Resolves the dims (H, K, V, W raw; 0 = default) of a design on lay and fills
// its bytes and params.
static void design_eval(const pn_hf_config *base, pn_hybrid_layout *lay, const pn_block_type *lt, int H, int K, int V,
                        int W, int64_t ctx, pn_hw_candidate *d) {
    pn_block_cfg *dims = &lay->dims[pn_hybrid_type_index(lt)];
    memset(dims, 0, sizeof *dims);
    dims->H = H;
    dims->K = K;
    dims->V = V;
    dims->conv_size = W;
    pn_block *b = pn_malloc(sizeof(pn_block));
    memset(d, 0, sizeof *d);
    int resolved = 0;
    for (int l = 0; l < lay->n_layers; l++) {
        pn_block_cfg bc;
        pn_hybrid_layer_cfg(base, lay, l, &bc);
        pn_block_setup(b, lay->type[l], &bc);
        pn_state_size s = lay->type[l]->state_size(&b->cfg, ctx);
        if (lay->type[l] == lt) {
            d->bytes_rec += s.rec * HW_REC_BYTES;
            d->bytes_conv += s.conv * HW_CONV_BYTES;
            d->bytes_rec += s.kv * HW_KV_BYTES;  // no linear block has a K/V cache today; counted if one does
            d->linear_params += pn_block_param_count(b);
            if (!resolved) {
                d->H = b->cfg.H;
                d->K = b->cfg.K;
                d->V = !strcmp(lt->name, "mamba2") ? 0 : b->cfg.V;
                d->conv = block_has_conv(lt->name) ? b->cfg.conv_size : 0;
                resolved = 1;
            }
        } else if (!strcmp(lay->type[l]->name, "swa")) {
            d->bytes_swa += s.kv * HW_KV_BYTES;
        } else {
            d->bytes_attn += s.kv * HW_KV_BYTES;
        }
    }
    free(b);
    PN_ASSERT(resolved);
    d->bytes = d->bytes_attn + d->bytes_swa + d->bytes_rec + d->bytes_conv;
    d->tokens_per_s = d->step_ms = d->accuracy = d->train_loss = d->valid_loss = NAN;
    for (int t = 0; t < PN_HW_MAX_TASKS; t++) d->task_acc[t] = d->task_nll[t] = NAN;
}

// Raw dims of a design (what the lists or the supernet keys give; 0 = default).
static void set_raw(pn_hybrid_layout *lay, const pn_block_type *lt, int H, int K, int V, int W) {
    pn_block_cfg *dims = &lay->dims[pn_hybrid_type_index(lt)];
    memset(dims, 0, sizeof *dims);
    dims->H = H;
    dims->K = K;
    dims->V = V;
    dims->conv_size = W;
}

void pn_hw_search_plan(const pn_job_config *c, const char *where, const pn_hf_config *base, pn_hw_result *out) {
    if (!where || !where[0]) where = "config";
    const pn_hw_search_config *hs = &c->hw_search;
    const pn_supernet_config *sc = &c->supernet;
    memset(out, 0, sizeof *out);
    out->chosen = -1;
    out->best_tokens_per_s = NAN;
    if (sc->block < 0 || sc->block > PN_LINEAR_RWKV7) pn_die_input(where, "supernet.block index %d is unknown", sc->block);
    const char *tname = pn_linear_block_names[sc->block];
    const pn_block_type *lt = pn_block_type_find(tname);
    if (!lt) pn_die_internal(__FILE__, __LINE__, "block type '%s' is not linked into this build", tname);
    snprintf(out->block, sizeof out->block, "%s", tname);
    out->context = hs->context;
    pn_hf_config tpb;
    pn_hybrid_layout *lay = pn_malloc(sizeof *lay);
    int raw_base[4];
    tp_layout(c, where, base, lt, &tpb, lay, out->placement, sizeof out->placement, raw_base);
    const int two = hs->throughput_model && hs->throughput_model[0];
    out->C = tpb.hidden_size;
    out->n_layers = tpb.num_hidden_layers;
    snprintf(out->throughput_model, sizeof out->throughput_model, "%s", two ? hs->throughput_model : "");
    out->acc_C = base->hidden_size;
    out->acc_layers = base->num_hidden_layers;
    out->accuracy_measured = hs->accuracy;
    snprintf(out->acc_placement, sizeof out->acc_placement, "%s", out->placement);
    if (two && hs->accuracy) {  // the accuracy model's placement, checked now
        pn_hybrid_layout *al = pn_malloc(sizeof *al);
        placement_layout(c, where, base, lt, al, out->acc_placement, sizeof out->acc_placement);
        free(al);
    }

    // the base design
    check_dims(where,
               two ? "the base design (the throughput model's own linear-block dims)"
                   : "the base design (supernet.heads / key_dim / value_dim / conv_size)",
               tname, out->C, raw_base[0], raw_base[1], raw_base[2], raw_base[3]);
    design_eval(&tpb, lay, lt, raw_base[0], raw_base[1], raw_base[2], raw_base[3], hs->context, &out->base);
    out->base.index = -1;
    out->budget_from_base = hs->budget_bytes == 0;
    out->budget_bytes = hs->budget_bytes ? hs->budget_bytes : out->base.bytes;
    out->budget_min_fraction = hs->budget_min_fraction;

    // the grid: an empty list stands for the base design's raw setting
    if (hs->conv_sizes.n && !block_has_conv(tname))
        pn_die_input(where, "hw_search.conv_sizes is given but block %s has no short conv (expected [])", tname);
    if (hs->value_dims.n && !strcmp(tname, "mamba2"))
        pn_die_input(where, "hw_search.value_dims is given but block mamba2 has no separate value dim (its head dim "
                            "is key_dim; expected [])");
    const pn_cfg_ints *lists[4] = {&hs->heads, &hs->key_dims, &hs->value_dims, &hs->conv_sizes};
    int len[4];
    int64_t total = 1;
    for (int k = 0; k < 4; k++) {
        len[k] = lists[k]->n ? lists[k]->n : 1;
        total *= len[k];
    }
    if (total > PN_HW_MAX_CANDIDATES)
        pn_die_input(where, "the hw_search grid has %lld candidates (heads x key_dims x value_dims x conv_sizes), at "
                            "most %d are supported",
                     (long long)total, PN_HW_MAX_CANDIDATES);
    for (int64_t g = 0; g < total; g++) {
        int raw[4];
        int64_t r = g;
        for (int k = 3; k >= 0; k--) {  // conv varies fastest, heads slowest
            int i = (int)(r % len[k]);
            r /= len[k];
            raw[k] = lists[k]->n ? lists[k]->v[i] : raw_base[k];
        }
        char what[160];
        snprintf(what, sizeof what, "hw_search candidate (heads %d, key_dim %d, value_dim %d, conv_size %d; 0 = "
                                    "default)", raw[0], raw[1], raw[2], raw[3]);
        check_dims(where, what, tname, out->C, raw[0], raw[1], raw[2], raw[3]);
        pn_hw_candidate d;
        design_eval(&tpb, lay, lt, raw[0], raw[1], raw[2], raw[3], hs->context, &d);
        if (two && hs->accuracy) {  // the resolved dims must also fit the accuracy model
            char what2[256];
            snprintf(what2, sizeof what2, "%s, resolved to (H %d, K %d, V %d, conv %d) on model.path (hidden %d)", what,
                     d.H, d.K, d.V, d.conv, base->hidden_size);
            check_dims(where, what2, tname, base->hidden_size, d.H, d.K, d.V, d.conv);
        }
        int dup = -1;
        for (int j = 0; j < out->n && dup < 0; j++) {
            const pn_hw_candidate *e = &out->cand[j];
            if (e->H == d.H && e->K == d.K && e->V == d.V && e->conv == d.conv) dup = j;
        }
        if (dup >= 0) {
            pn_info("hw_search: %s resolves to the same design as candidate %d (H %d, K %d, V %d, conv %d): listed once",
                    what, dup, d.H, d.K, d.V, d.conv);
            continue;
        }
        d.index = out->n;
        d.kept = d.bytes <= out->budget_bytes && (double)d.bytes >= hs->budget_min_fraction * (double)out->budget_bytes;
        out->cand[out->n++] = d;
    }
    set_raw(lay, lt, 0, 0, 0, 0);
    free(lay);

    for (int i = 0; i < out->n; i++) {
        const pn_hw_candidate *d = &out->cand[i];
        if (d->kept)
            out->n_kept++;
        else if (d->bytes > out->budget_bytes)
            pn_info("hw_search: excluded candidate %d (H %d, K %d, V %d, conv %d): %lld cache+state bytes at L = %lld "
                    "exceed the budget %lld by %lld",
                    i, d->H, d->K, d->V, d->conv, (long long)d->bytes, (long long)out->context,
                    (long long)out->budget_bytes, (long long)(d->bytes - out->budget_bytes));
        else
            pn_debug("hw_search: excluded candidate %d (H %d, K %d, V %d, conv %d): %lld cache+state bytes at L = %lld "
                     "are below %.3g x the budget %lld",
                     i, d->H, d->K, d->V, d->conv, (long long)d->bytes, (long long)out->context,
                     c->hw_search.budget_min_fraction, (long long)out->budget_bytes);
    }
    if (out->n_kept == 0) {
        int64_t smallest = INT64_MAX;
        for (int i = 0; i < out->n; i++) smallest = PN_MIN(smallest, out->cand[i].bytes);
        pn_die_input(where, "no hw_search candidate fits the budget of %lld cache+state bytes per sequence at context "
                            "%lld (%s; the smallest candidate needs %lld): widen the grid or raise "
                            "hw_search.budget_bytes",
                     (long long)out->budget_bytes, (long long)out->context,
                     out->budget_from_base ? "the base design's" : "hw_search.budget_bytes", (long long)smallest);
    }
    pn_info("hw_search: %s, placement %s; %d candidates, %d within the budget of %lld bytes per sequence at L = %lld%s",
            tname, out->placement, out->n, out->n_kept, (long long)out->budget_bytes, (long long)out->context,
            out->budget_from_base ? " (the base design's)" : "");
}

// ---------------------------------------------------------------- choice

int pn_hw_search_choose(pn_hw_result *r, double tolerance) {
    double best = NAN;
    for (int i = 0; i < r->n; i++) {
        pn_hw_candidate *d = &r->cand[i];
        d->within_tolerance = 0;
        d->chosen = 0;
        if (d->kept && isfinite(d->tokens_per_s) && !(d->tokens_per_s <= best)) best = d->tokens_per_s;
    }
    r->best_tokens_per_s = best;
    r->chosen = -1;
    if (isnan(best)) return -1;
    const double floor_tps = (1.0 - tolerance) * best;
    int ch = -1;
    for (int i = 0; i < r->n; i++) {
        pn_hw_candidate *d = &r->cand[i];
        if (!d->kept || !isfinite(d->tokens_per_s) || d->tokens_per_s < floor_tps) continue;
        d->within_tolerance = 1;
        if (ch < 0) {
            ch = i;
            continue;
        }
        const pn_hw_candidate *e = &r->cand[ch];
        // NaN accuracy ranks below every number; ties: higher throughput, then the lower index
        const int d_nan = isnan(d->accuracy), e_nan = isnan(e->accuracy);
        int better;
        if (d_nan != e_nan)
            better = e_nan;
        else if (!d_nan && d->accuracy != e->accuracy)
            better = d->accuracy > e->accuracy;
        else
            better = d->tokens_per_s > e->tokens_per_s;
        if (better) ch = i;
    }
    if (ch >= 0) r->cand[ch].chosen = 1;
    r->chosen = ch;
    return ch;
}

// ---------------------------------------------------------------- throughput (the device hook)

static void measure_decode_cpu(const pn_backbone *bb, const pn_hw_bench_opts *o, double *t, pn_hw_bench_result *r) {
    const int B = o->batch;
    const int64_t P = o->context, max_ctx = P + o->warmup + o->steps;
    pn_engine *e = pn_engine_create(bb, B, max_ctx, HW_PREFILL_CHUNK);
    const size_t sb = pn_engine_state_bytes(e);
    if (sb) memset(e->states.base, 0, sb);  // page faults stay out of the timings
    int64_t *ids = pn_malloc((size_t)B * (size_t)P * sizeof(int64_t));
    int64_t *next = pn_malloc((size_t)B * sizeof(int64_t));
    // the same prompt and continuation for every candidate
    pn_rng rng = pn_rng_make(4242, 0);
    for (int64_t i = 0; i < (int64_t)B * P; i++) ids[i] = (int64_t)pn_rng_below(&rng, (uint64_t)bb->V);
    pn_engine_prefill(e, ids, (int)P);
    for (int s = 0; s < o->warmup + o->steps; s++) {
        for (int b = 0; b < B; b++) next[b] = (int64_t)pn_rng_below(&rng, (uint64_t)bb->V);
        double t0 = pn_now_seconds();
        pn_engine_decode(e, next);
        double dt = pn_now_seconds() - t0;
        if (s >= o->warmup) t[s - o->warmup] = dt;
    }
    double *sorted = pn_malloc((size_t)o->steps * sizeof(double));
    memcpy(sorted, t, (size_t)o->steps * sizeof(double));
    const double med = pn_bench_median(sorted, o->steps);
    r->step_ms = 1e3 * med;
    r->tokens_per_s = med > 0 ? (double)B / med : INFINITY;
    r->state_bytes = sb;
    free(sorted);
    free(next);
    free(ids);
    pn_engine_free(e);
}

#ifdef POSTNAS_HAVE_CUDA
// The CUDA engine (search/engine_cuda.h) on GPU 0, timed with events on its
// stream as `postnas bench decode --device cuda` times it: the step time is
// the device time of one decode (a CUDA graph replay), not the host's.
static void measure_decode_cuda(const pn_backbone *bb, const pn_hw_bench_opts *o, double *t, pn_hw_bench_result *r) {
    char why[256];
    if (!pn_cuda_engine_supports(bb, why, sizeof why)) pn_die_input("hw_search throughput (run.device cuda)", "%s", why);
    const int B = o->batch;
    const int64_t P = o->context, max_ctx = P + o->warmup + o->steps;
    // As `bench decode --device cuda`: a few sequences are prefilled and the rest of the
    // batch copies their states (decode time does not depend on the cache contents);
    // GEMM inputs rounded once to bf16, the usual inference precision.
    const int n_pre = PN_MIN(B, HW_PREFILL_SEQS_CUDA);
    pn_cuda_engine *e = pn_cuda_engine_create(bb, B, max_ctx, HW_PREFILL_CHUNK_CUDA, n_pre);
    e->act_split = 0;
    void *prev = pn_cuda_stream_get();
    pn_cuda_stream_set(pn_cuda_engine_stream(e));
    int64_t *ids = pn_malloc((size_t)n_pre * (size_t)P * sizeof(int64_t));
    int64_t *next = pn_malloc((size_t)B * sizeof(int64_t));
    pn_rng rng = pn_rng_make(4242, 0);
    for (int64_t i = 0; i < (int64_t)n_pre * P; i++) ids[i] = (int64_t)pn_rng_below(&rng, (uint64_t)bb->V);
    pn_cuda_engine_prefill_first(e, n_pre, ids, (int)P);
    pn_cuda_engine_replicate(e, n_pre);
    pn_cuda_engine_sync(e);
    void *ev0 = pn_cuda_eng_event_create(), *ev1 = pn_cuda_eng_event_create();
    for (int s = 0; s < o->warmup + o->steps; s++) {
        for (int b = 0; b < B; b++) next[b] = (int64_t)pn_rng_below(&rng, (uint64_t)bb->V);
        pn_cuda_eng_event_record(ev0);
        pn_cuda_engine_decode(e, next);
        pn_cuda_eng_event_record(ev1);
        const double ms = pn_cuda_eng_event_ms(ev0, ev1);  // waits for ev1
        if (s >= o->warmup) t[s - o->warmup] = 1e-3 * ms;
    }
    pn_cuda_eng_event_destroy(ev0);
    pn_cuda_eng_event_destroy(ev1);
    double *sorted = pn_malloc((size_t)o->steps * sizeof(double));
    memcpy(sorted, t, (size_t)o->steps * sizeof(double));
    const double med = pn_bench_median(sorted, o->steps);
    r->step_ms = 1e3 * med;
    r->tokens_per_s = med > 0 ? (double)B / med : INFINITY;
    r->state_bytes = pn_cuda_engine_state_bytes(e);
    free(sorted);
    free(next);
    free(ids);
    pn_cuda_engine_free(e);
    pn_cuda_stream_set(prev);
}
#endif

static void device_check(int device, const char *where) {
#ifdef POSTNAS_HAVE_CUDA
    if (device == PN_DEVICE_CUDA) {
        if (pn_cuda_device_count() < 1) {
            fprintf(stderr, "postnas: device error: %s: run.device cuda but no CUDA device is visible\n", where);
            exit(PN_EXIT_DEVICE);
        }
        return;
    }
#else
    if (device == PN_DEVICE_CUDA)
        pn_die_input(where, "run.device cuda: the hardware search's throughput measurement is not yet supported on "
                            "cuda in this build (postnas was built without CUDA: rebuild with -DPOSTNAS_CUDA=ON); use "
                            "run.device cpu");
#endif
    if (device != PN_DEVICE_CPU) pn_die_input(where, "run.device index %d is unknown", device);
}

void pn_hw_measure_decode(const pn_backbone *bb, const pn_hw_bench_opts *o, double *step_s, pn_hw_bench_result *r) {
    device_check(o->device, "hw_search throughput");
    if (o->context < 1 || o->batch < 1 || o->steps < 1 || o->warmup < 0)
        pn_die_input("hw_search throughput", "context, batch and steps must be >= 1 and warm-up >= 0 (got %lld, %d, "
                                             "%d, %d)",
                     (long long)o->context, o->batch, o->steps, o->warmup);
    memset(r, 0, sizeof *r);
    double *t = step_s ? step_s : pn_malloc((size_t)o->steps * sizeof(double));
#ifdef POSTNAS_HAVE_CUDA
    if (o->device == PN_DEVICE_CUDA)
        measure_decode_cuda(bb, o, t, r);
    else
#endif
        measure_decode_cpu(bb, o, t, r);
    if (!step_s) free(t);
}

// ---------------------------------------------------------------- per-candidate work

// A deep copy of a job config (printed and parsed back: the schema guarantees
// the round trip).
static void config_copy(pn_job_config *dst, const pn_job_config *src) {
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f) pn_die_internal(__FILE__, __LINE__, "open_memstream failed: %s", strerror(errno));
    pn_job_config_print(src, f);
    fclose(f);
    pn_job_config_load_string(dst, text, n, "hw_search candidate config");
    free(text);
}

static void replace_str(char **s, const char *v) {
    free(*s);
    *s = pn_strdup(v);
}

// The hash a checkpoint in run_dir was written with; 0 when unreadable.
static int ckpt_hash(const char *ckpt_dir, uint64_t *hash) {
    char path[4400];
    pn_path_join(path, sizeof path, ckpt_dir, "state.json");
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    const char *h = j ? json_string_value(json_object_get(j, "config_hash")) : NULL;
    int ok = h && strlen(h) == 16;
    if (ok) *hash = (uint64_t)strtoull(h, NULL, 16);
    json_decref(j);
    return ok;
}

static void layout_for(const pn_job_config *c, const char *where, const pn_hf_config *base, const pn_hw_candidate *d,
                       pn_hybrid_layout *lay) {
    const pn_block_type *lt = pn_block_type_find(pn_linear_block_names[c->supernet.block]);
    char desc[512];
    placement_layout(c, where, base, lt, lay, desc, sizeof desc);
    set_raw(lay, lt, d->H, d->K, d->V, d->conv);
}

// The job config candidate d trains with: c's, into cand_dir, its dims, the
// fixed placement, distillation for `steps` steps.
static void candidate_config(const pn_job_config *c, const char *cand_dir, const pn_hw_candidate *d, int steps,
                             pn_job_config *cc) {
    config_copy(cc, c);
    replace_str(&cc->run.out_dir, cand_dir);
    cc->train.mode = PN_TRAIN_SUPERNET;
    cc->train.steps = steps;
    cc->supernet.sampling = PN_SAMPLING_FIXED;
    cc->supernet.heads = d->H;
    cc->supernet.key_dim = d->K;
    cc->supernet.value_dim = d->V;
    cc->supernet.conv_size = d->conv;
}

static void candidate_dir(char *out, size_t n, const char *out_dir, int i) {
    char name[32];
    snprintf(name, sizeof name, "cand_%d", i);
    pn_path_join(out, n, out_dir, name);
}

// 1 when cand_dir holds checkpoints of exactly this candidate's run (continue
// them), 0 when it holds none; checkpoints of another run exit 2. Checked for
// every candidate before any work, so a mistake costs nothing.
static int candidate_resume(const pn_job_config *c, const char *out_dir, const pn_hw_candidate *d, int steps) {
    char cand_dir[4200], latest[4400];
    candidate_dir(cand_dir, sizeof cand_dir, out_dir, d->index);
    if (pn_checkpoint_latest(cand_dir, latest, sizeof latest) < 0) return 0;
    pn_job_config cc;
    candidate_config(c, cand_dir, d, steps, &cc);
    uint64_t h = 0;
    const int same = ckpt_hash(latest, &h) && h == pn_train_config_hash(&cc);
    pn_job_config_free(&cc);
    if (!same)
        pn_die_input(cand_dir, "holds checkpoints of a different run (not candidate %d: H %d, K %d, V %d, conv %d "
                               "with this config): remove the directory or choose another output directory",
                     d->index, d->H, d->K, d->V, d->conv);
    pn_info("hw_search: candidate %d: continuing from %s", d->index, latest);
    return 1;
}

static void train_candidate(const pn_job_config *c, const char *where, const char *out_dir, const pn_hw_candidate *d,
                            int steps, int resume, pn_train_result *tr) {
    char cand_dir[4200];
    candidate_dir(cand_dir, sizeof cand_dir, out_dir, d->index);
    pn_job_config cc;
    candidate_config(c, cand_dir, d, steps, &cc);
    pn_train_opts o = {.resume = resume, .stop_at = 0, .where = where};
    pn_train_run(&cc, &o, tr);
    pn_job_config_free(&cc);
}

static double task_accuracy(const pn_eval_result *r) {
    if (r->kind == PN_TASK_GEN && r->gen_mode == PN_GEN_TEACHER_FORCED) return r->token_accuracy;
    return r->accuracy;
}

// ---------------------------------------------------------------- throughput from an earlier run

static json_t *jget(json_t *o, const char *key, json_type type, const char *path, const char *what) {
    json_t *v = o ? json_object_get(o, key) : NULL;
    int ok = v && (type == JSON_REAL ? json_is_number(v) : json_typeof(v) == type);
    if (!ok) pn_die_input(path, "%s: key '%s' is missing or has the wrong type", what, key);
    return v;
}

// Fills the kept candidates' decode numbers and the measurement setup from an
// earlier hw_search.json (hw_search.throughput_from). The file must describe the
// same search: same block, throughput model and context, and every kept candidate
// present with the same resolved dims and bytes.
static void throughput_load(pn_hw_result *out, const char *path) {
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j && err.line < 1) pn_die_input(path, "%s (expected an hw_search.json)", err.text);
    if (!j) pn_die_input(path, "line %d, column %d: %s (expected an hw_search.json)", err.line, err.column, err.text);
    json_t *fmt = json_object_get(j, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "postnas-hw-search") != 0)
        pn_die_input(path, "is not an hw_search.json (expected \"format\": \"postnas-hw-search\")");
    const char *blk = json_string_value(jget(j, "block", JSON_STRING, path, "top level"));
    if (strcmp(blk, out->block) != 0)
        pn_die_input(path, "searched block %s, this search is over %s", blk, out->block);
    json_t *tm = json_object_get(j, "throughput_model");
    const char *tms = json_is_string(tm) ? json_string_value(tm) : "";
    if (strcmp(tms, out->throughput_model) != 0)
        pn_die_input(path, "measured throughput model '%s', this search's hw_search.throughput_model is '%s'", tms,
                     out->throughput_model);
    const json_int_t ctx = json_integer_value(jget(j, "context", JSON_INTEGER, path, "top level"));
    if (ctx != out->context)
        pn_die_input(path, "context %lld, this search's hw_search.context is %lld", (long long)ctx,
                     (long long)out->context);
    json_t *dev = jget(j, "device", JSON_OBJECT, path, "top level");
    snprintf(out->device, sizeof out->device, "%s", json_string_value(jget(dev, "kind", JSON_STRING, path, "device")));
    snprintf(out->device_name, sizeof out->device_name, "%s",
             json_string_value(jget(dev, "name", JSON_STRING, path, "device")));
    json_t *th = json_object_get(dev, "multiprocessors");
    if (!th) th = json_object_get(dev, "threads");
    out->threads = json_is_integer(th) ? (int)json_integer_value(th) : 0;
    snprintf(out->date, sizeof out->date, "%s", json_string_value(jget(j, "date", JSON_STRING, path, "top level")));
    json_t *b = jget(j, "throughput", JSON_OBJECT, path, "top level");
    out->bench_context = json_integer_value(jget(b, "prefill_tokens", JSON_INTEGER, path, "throughput"));
    out->bench_batch = (int)json_integer_value(jget(b, "batch", JSON_INTEGER, path, "throughput"));
    out->bench_steps = (int)json_integer_value(jget(b, "timed_steps", JSON_INTEGER, path, "throughput"));
    out->bench_warmup = (int)json_integer_value(jget(b, "warmup_steps", JSON_INTEGER, path, "throughput"));
    out->bench_rounds = (int)json_integer_value(jget(b, "rounds", JSON_INTEGER, path, "throughput"));
    json_t *cands = jget(j, "candidates", JSON_ARRAY, path, "top level");
    for (int i = 0; i < out->n; i++) {
        pn_hw_candidate *d = &out->cand[i];
        if (!d->kept) continue;
        json_t *hit = NULL;
        size_t k;
        json_t *e;
        json_array_foreach(cands, k, e) {
            char what[64];
            snprintf(what, sizeof what, "candidates[%zu]", k);
            if (json_integer_value(jget(e, "heads", JSON_INTEGER, path, what)) == d->H &&
                json_integer_value(jget(e, "key_dim", JSON_INTEGER, path, what)) == d->K &&
                json_integer_value(jget(e, "value_dim", JSON_INTEGER, path, what)) == d->V &&
                json_integer_value(jget(e, "conv_size", JSON_INTEGER, path, what)) == d->conv) {
                hit = e;
                break;
            }
        }
        if (!hit || !json_is_true(json_object_get(hit, "kept")))
            pn_die_input(path, "has no measured candidate (H %d, K %d, V %d, conv %d), which this search keeps", d->H,
                         d->K, d->V, d->conv);
        char what[64];
        snprintf(what, sizeof what, "candidates[%zu]", k);
        const json_int_t bytes = json_integer_value(jget(hit, "state_bytes", JSON_INTEGER, path, what));
        if (bytes != d->bytes)
            pn_die_input(path, "%s (H %d, K %d, V %d, conv %d) has %lld state bytes, this search computes %lld: not "
                               "the same model or context",
                         what, d->H, d->K, d->V, d->conv, (long long)bytes, (long long)d->bytes);
        json_t *tps = json_object_get(hit, "decode_tokens_per_s"), *ms = json_object_get(hit, "decode_step_ms");
        d->tokens_per_s = json_is_number(tps) ? json_number_value(tps) : NAN;
        d->step_ms = json_is_number(ms) ? json_number_value(ms) : NAN;
        json_t *tp = json_object_get(hit, "total_params");
        if (json_is_integer(tp)) d->total_params = json_integer_value(tp);
    }
    snprintf(out->throughput_from, sizeof out->throughput_from, "%s", path);
    json_decref(j);
    pn_info("hw_search: decode throughput of %d candidates taken from %s (%s, %s)", out->n_kept, path, out->device,
            out->device_name);
}

// ---------------------------------------------------------------- run

int pn_hw_search_run(const pn_job_config *c, const char *where, const char *out_dir, pn_hw_result *out) {
    if (!where || !where[0]) where = "config";
    const pn_hw_search_config *hs = &c->hw_search;
    pn_log_set_default_level((pn_log_level)c->run.log_level);
    if (c->run.threads > 0) omp_set_num_threads(c->run.threads);
    const int from_file = hs->throughput_from && hs->throughput_from[0];
    if (!from_file) device_check(c->run.device, where);
    if (!out_dir || !out_dir[0]) pn_die_input(where, "no output directory given for the hardware search");
    if (!c->model.path[0])
        pn_die_input(where, "model.path is \"\": the hardware search distils each candidate from a pretrained model "
                            "(an HF directory)");
    if (c->arch.num_layers > 0)
        pn_die_input(where, "an arch section is given (arch.num_layers = %d): the hardware search starts from "
                            "model.path, remove the arch section",
                     c->arch.num_layers);
    if (hs->accuracy && !c->data.train[0])
        pn_die_input(where, "data.train is \"\": the candidates' distillation needs training tokens (or set "
                            "hw_search.accuracy: false to measure throughput only)");
    if (hs->accuracy && (!c->data.tasks_dir[0] || c->search.tasks.n == 0))
        pn_die_input(where, "the hardware search scores candidates on task suites: set data.tasks_dir and search.tasks "
                            "(files data.tasks_dir/NAME.jsonl)");
    if (c->search.tasks.n > PN_HW_MAX_TASKS)
        pn_die_input(where, "search.tasks has %d tasks, at most %d are supported", c->search.tasks.n, PN_HW_MAX_TASKS);
    const int steps = hs->train_steps ? hs->train_steps : c->train.steps;
    if (c->supernet.sampling != PN_SAMPLING_FIXED)
        pn_warn("hw_search: supernet.sampling is %s; every candidate trains the fixed placement (full_layers / "
                "swa_layers) instead",
                pn_sampling_names[c->supernet.sampling]);
    if (c->train.mode != PN_TRAIN_SUPERNET)
        pn_warn("hw_search: train.mode is %s; the candidates are trained by distillation (supernet mode)",
                pn_train_mode_names[c->train.mode]);

    pn_hf_config base;
    pn_hybrid_layout *lay = pn_malloc(sizeof *lay);
    if (pn_hybrid_config_load(c->model.path, &base, lay))
        pn_die_input(c->model.path, "is already a hybrid (model_type jet_nemotron): the hardware search starts from "
                                    "the pretrained full-attention model");
    pn_hw_search_plan(c, where, &base, out);
    out->train_steps = steps;

    // every suite before any model time is spent
    const int nt = hs->accuracy ? c->search.tasks.n : 0;
    pn_task_suite *suites = pn_calloc((size_t)PN_MAX(nt, 1), sizeof *suites);
    if (nt) pn_eval_load_suites(c->data.tasks_dir, (const char *const *)c->search.tasks.v, nt, base.vocab_size, suites);
    out->n_tasks = nt;
    for (int t = 0; t < nt; t++) {
        snprintf(out->task_names[t], sizeof out->task_names[t], "%s", c->search.tasks.v[t]);
        snprintf(out->task_kind[t], sizeof out->task_kind[t], "%s", suites[t].kind == PN_TASK_MC ? "mc" : "gen");
    }
    int *resume = pn_calloc((size_t)out->n, sizeof(int));
    for (int i = 0; i < out->n && hs->accuracy; i++)
        if (out->cand[i].kept) resume[i] = candidate_resume(c, out_dir, &out->cand[i], steps);
    pn_mkdir_p(out_dir);
    pn_job_config_write_resolved(c, out_dir);

    // 1. throughput of every kept candidate, back to back (or an earlier run's numbers)
    const pn_block_type *lt = pn_block_type_find(out->block);
    pn_hf_config tpb;
    pn_hybrid_layout *tpl = pn_malloc(sizeof *tpl);
    char tdesc[512];
    tp_layout(c, where, &base, lt, &tpb, tpl, tdesc, sizeof tdesc, NULL);
    if (from_file) {
        throughput_load(out, hs->throughput_from);
    } else {
        snprintf(out->device, sizeof out->device, "%s", pn_job_device_names[c->run.device]);
        pn_bench_cpu_name(out->device_name, sizeof out->device_name);
        out->threads = omp_get_max_threads();
#ifdef POSTNAS_HAVE_CUDA
        if (c->run.device == PN_DEVICE_CUDA) {
            pn_cuda_device_info info;
            pn_cuda_device_info_get(0, &info);
            snprintf(out->device_name, sizeof out->device_name, "%s", info.name);
            out->threads = info.multiprocessors;  // the GPU's SMs (the JSON says so)
        }
#endif
        pn_bench_utc_date(out->date, sizeof out->date);
        pn_hw_bench_opts bo = {.device = c->run.device,
                               .context = PN_MIN((int64_t)hs->context, (int64_t)hs->throughput_context),
                               .batch = hs->throughput_batch,
                               .steps = hs->throughput_steps,
                               .warmup = hs->throughput_warmup};
        out->bench_context = bo.context;
        out->bench_batch = bo.batch;
        out->bench_steps = bo.steps;
        out->bench_warmup = bo.warmup;
        out->bench_rounds = hs->throughput_rounds;
        const int R = hs->throughput_rounds, S = bo.steps;
        double *times = pn_malloc((size_t)out->n * (size_t)R * (size_t)S * sizeof(double));  // (n, R, S)
        for (int round = 0; round < R; round++)
            for (int i = 0; i < out->n; i++) {
                pn_hw_candidate *d = &out->cand[i];
                if (!d->kept) continue;
                *lay = *tpl;
                set_raw(lay, lt, d->H, d->K, d->V, d->conv);
                // the production shape: random weights in memory; else the exported hybrid
                pn_backbone *bb = out->throughput_model[0]
                                      ? pn_model_init_hybrid_mem(&tpb, lay, out->throughput_model, (uint64_t)c->run.seed)
                                      : pn_export_build(c->model.path, lay, NULL, (uint64_t)c->run.seed);
                d->total_params = pn_backbone_numel(bb);
                pn_hw_bench_result br;
                pn_hw_measure_decode(bb, &bo, times + ((size_t)i * R + round) * S, &br);
                pn_backbone_free(bb);
                pn_info("hw_search: round %d/%d, candidate %d (H %d, K %d, V %d, conv %d): decode %.1f tok/s (%.3f "
                        "ms/step, batch %d, context %lld)",
                        round + 1, R, i, d->H, d->K, d->V, d->conv, br.tokens_per_s, br.step_ms, bo.batch,
                        (long long)bo.context);
            }
        for (int i = 0; i < out->n; i++) {
            pn_hw_candidate *d = &out->cand[i];
            if (!d->kept) continue;
            const double med = pn_bench_median(times + (size_t)i * R * S, R * S);
            d->step_ms = 1e3 * med;
            d->tokens_per_s = med > 0 ? (double)bo.batch / med : INFINITY;
            pn_info("hw_search: candidate %d (H %d, K %d, V %d, conv %d): decode %.1f tok/s (median of %d steps)", i,
                    d->H, d->K, d->V, d->conv, d->tokens_per_s, R * S);
        }
        free(times);
    }
    free(tpl);

    // 2. distillation and accuracy, one candidate at a time
    pn_eval_opts eo;
    pn_eval_opts_default(&eo);
    eo.max_examples = hs->max_examples;
    eo.gen_mode = c->search.objective_gen == PN_OBJ_GEN_TEACHER_FORCED_ACC ? PN_GEN_TEACHER_FORCED : PN_GEN_EXACT_MATCH;
    for (int i = 0; i < out->n && hs->accuracy; i++) {
        pn_hw_candidate *d = &out->cand[i];
        if (!d->kept) continue;
        char cand_dir[4200], weights[4400];
        candidate_dir(cand_dir, sizeof cand_dir, out_dir, i);
        pn_info("hw_search: candidate %d of %d (H %d, K %d, V %d, conv %d): %d distillation steps into %s", i,
                out->n, d->H, d->K, d->V, d->conv, steps, cand_dir);
        pn_train_result tr;
        train_candidate(c, where, out_dir, d, steps, resume[i], &tr);
        d->train_loss = tr.last_loss;
        d->valid_loss = tr.valid_loss;
        pn_path_join(weights, sizeof weights, cand_dir, "supernet.safetensors");
        layout_for(c, where, &base, d, lay);
        pn_backbone *bb = pn_export_build(c->model.path, lay, weights, (uint64_t)c->run.seed);
        double sum = 0;
        for (int t = 0; t < nt; t++) {
            pn_eval_result er;
            pn_eval_suite(bb, &suites[t], &eo, &er);
            d->task_acc[t] = task_accuracy(&er);
            d->task_nll[t] = er.kind == PN_TASK_MC ? er.mean_nll : NAN;
            sum += d->task_acc[t];
        }
        d->accuracy = sum / nt;
        pn_backbone_free(bb);
        pn_info("hw_search: candidate %d: accuracy %.4f (loss %.4g)", i, d->accuracy, d->train_loss);
    }

    pn_hw_search_choose(out, hs->throughput_tolerance);
    if (out->chosen >= 0) {
        const pn_hw_candidate *d = &out->cand[out->chosen];
        pn_info("hw_search: chosen candidate %d: H %d, K %d, V %d, conv %d — accuracy %.4f, %.1f tok/s (best %.1f)",
                d->index, d->H, d->K, d->V, d->conv, d->accuracy, d->tokens_per_s, out->best_tokens_per_s);
    } else {
        pn_warn("hw_search: no candidate has a finite throughput; nothing chosen");
    }
    pn_hw_search_write(out, c, out_dir);

    for (int t = 0; t < nt; t++) pn_task_suite_free(&suites[t]);
    free(suites);
    free(resume);
    free(lay);
    return 0;
}

// ---------------------------------------------------------------- outputs

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *cand_json(const pn_hw_result *r, const pn_hw_candidate *d, int with_results) {
    json_t *j = json_object();
    if (d->index >= 0) json_object_set_new(j, "index", json_integer(d->index));
    json_object_set_new(j, "heads", json_integer(d->H));
    json_object_set_new(j, "key_dim", json_integer(d->K));
    json_object_set_new(j, "value_dim", json_integer(d->V));
    json_object_set_new(j, "conv_size", json_integer(d->conv));
    json_object_set_new(j, "state_bytes", json_integer(d->bytes));
    json_t *b = json_object();
    json_object_set_new(b, "attn_kv", json_integer(d->bytes_attn));
    json_object_set_new(b, "swa_kv", json_integer(d->bytes_swa));
    json_object_set_new(b, "linear_state", json_integer(d->bytes_rec));
    json_object_set_new(b, "linear_conv", json_integer(d->bytes_conv));
    json_object_set_new(j, "state_bytes_by_kind", b);
    json_object_set_new(j, "linear_params", json_integer(d->linear_params));
    if (!with_results) return j;
    json_object_set_new(j, "kept", json_boolean(d->kept));
    if (!d->kept) {
        char why[256];
        if (d->bytes > r->budget_bytes)
            snprintf(why, sizeof why, "cache+state bytes %lld exceed the budget %lld", (long long)d->bytes,
                     (long long)r->budget_bytes);
        else
            snprintf(why, sizeof why, "cache+state bytes %lld are below %.4g x the budget %lld (budget_min_fraction)",
                     (long long)d->bytes, r->budget_min_fraction, (long long)r->budget_bytes);
        json_object_set_new(j, "excluded_reason", json_string(why));
        return j;
    }
    json_object_set_new(j, "total_params", json_integer(d->total_params));
    json_object_set_new(j, "decode_tokens_per_s", jnum(d->tokens_per_s));
    json_object_set_new(j, "decode_step_ms", jnum(d->step_ms));
    json_object_set_new(j, "throughput_vs_best",
                        jnum(isfinite(r->best_tokens_per_s) ? d->tokens_per_s / r->best_tokens_per_s - 1.0 : NAN));
    json_t *acc = json_object();
    for (int t = 0; t < r->n_tasks; t++) json_object_set_new(acc, r->task_names[t], jnum(d->task_acc[t]));
    json_object_set_new(j, "task_accuracy", acc);
    json_t *nll = json_object();
    for (int t = 0; t < r->n_tasks; t++)
        if (!strcmp(r->task_kind[t], "mc")) json_object_set_new(nll, r->task_names[t], jnum(d->task_nll[t]));
    json_object_set_new(j, "task_mean_nll", nll);
    json_object_set_new(j, "accuracy", jnum(d->accuracy));
    json_object_set_new(j, "train_loss", jnum(d->train_loss));
    json_object_set_new(j, "valid_loss", jnum(d->valid_loss));
    json_object_set_new(j, "within_tolerance", json_boolean(d->within_tolerance));
    json_object_set_new(j, "chosen", json_boolean(d->chosen));
    return j;
}

static void write_json(const pn_hw_result *r, const pn_job_config *c, const char *path) {
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string("postnas-hw-search"));
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "run", json_string(c->run.name));
    json_object_set_new(j, "date", json_string(r->date));
    json_t *dev = json_object();
    json_object_set_new(dev, "kind", json_string(r->device));
    json_object_set_new(dev, "name", json_string(r->device_name));
    json_object_set_new(dev, strcmp(r->device, "cuda") ? "threads" : "multiprocessors", json_integer(r->threads));
    json_object_set_new(j, "device", dev);
    json_object_set_new(j, "model", json_string(c->model.path));
    json_object_set_new(j, "throughput_model", json_string(r->throughput_model));
    json_object_set_new(j, "accuracy_measured", json_boolean(r->accuracy_measured));
    if (r->throughput_model[0]) {
        json_object_set_new(j, "accuracy_model_hidden_size", json_integer(r->acc_C));
        json_object_set_new(j, "accuracy_model_layers", json_integer(r->acc_layers));
        json_object_set_new(j, "accuracy_placement", json_string(r->acc_placement));
    }
    json_object_set_new(j, "throughput_from", json_string(r->throughput_from));
    json_object_set_new(j, "hidden_size", json_integer(r->C));
    json_object_set_new(j, "layers", json_integer(r->n_layers));
    json_object_set_new(j, "block", json_string(r->block));
    json_object_set_new(j, "placement", json_string(r->placement));
    json_object_set_new(j, "context", json_integer(r->context));
    json_object_set_new(j, "state_bytes_convention", json_string(k_bytes_convention));
    json_object_set_new(j, "budget_bytes", json_integer(r->budget_bytes));
    json_object_set_new(j, "budget_min_fraction", json_real(r->budget_min_fraction));
    json_object_set_new(j, "budget_source", json_string(r->budget_from_base ? "base design" : "hw_search.budget_bytes"));
    json_object_set_new(j, "base", cand_json(r, &r->base, 0));
    json_t *bench = json_object();
    json_object_set_new(bench, "what", json_string("decode tokens/s of the whole hybrid: batch / median step time"));
    json_object_set_new(bench, "prefill_tokens", json_integer(r->bench_context));
    json_object_set_new(bench, "batch", json_integer(r->bench_batch));
    json_object_set_new(bench, "timed_steps", json_integer(r->bench_steps));
    json_object_set_new(bench, "warmup_steps", json_integer(r->bench_warmup));
    json_object_set_new(bench, "rounds", json_integer(r->bench_rounds));
    json_object_set_new(j, "throughput", bench);
    json_object_set_new(j, "train_steps", json_integer(r->train_steps));
    json_object_set_new(j, "accuracy_definition", json_string(k_accuracy_definition));
    json_t *tasks = json_array();
    for (int t = 0; t < r->n_tasks; t++) {
        json_t *tj = json_object();
        json_object_set_new(tj, "name", json_string(r->task_names[t]));
        json_object_set_new(tj, "kind", json_string(r->task_kind[t]));
        json_array_append_new(tasks, tj);
    }
    json_object_set_new(j, "tasks", tasks);
    json_object_set_new(j, "max_examples", json_integer(c->hw_search.max_examples));
    json_object_set_new(j, "throughput_tolerance", json_real(c->hw_search.throughput_tolerance));
    json_object_set_new(j, "best_tokens_per_s", jnum(r->best_tokens_per_s));
    json_t *cands = json_array(), *excl = json_array();
    for (int i = 0; i < r->n; i++) {
        json_array_append_new(cands, cand_json(r, &r->cand[i], 1));
        if (!r->cand[i].kept) json_array_append_new(excl, cand_json(r, &r->cand[i], 1));
    }
    json_object_set_new(j, "candidates", cands);
    json_object_set_new(j, "excluded", excl);
    json_object_set_new(j, "chosen", r->chosen >= 0 ? cand_json(r, &r->cand[r->chosen], 1) : json_null());
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    PN_ASSERT(text != NULL);
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    pn_write_file_atomic(path, text, n + 1);
    free(text);
}

static void fmt_or_dash(char *out, size_t n, const char *fmt, double x) {
    if (isfinite(x))
        snprintf(out, n, fmt, x);
    else
        snprintf(out, n, "-");
}

static void write_md(const pn_hw_result *r, const pn_job_config *c, const char *path) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) pn_die_internal(__FILE__, __LINE__, "open_memstream failed: %s", strerror(errno));
    const pn_hw_candidate *b = &r->base;
    fprintf(f, "# Hardware-aware search: %s\n\n", c->run.name);
    fprintf(f, "PostNAS step 4 (Jet-Nemotron, Table 2): with the placement fixed, search the linear block's heads, "
               "key dim and value dim (and short-conv size) under a cache+state budget; pick the most accurate "
               "design among those about as fast as the fastest.\n\n");
    if (r->throughput_model[0]) {
        fprintf(f, "- throughput model (bytes, budget, decode tokens/s): `%s` (hidden %d, %d layers, random weights); "
                   "linear block: %s; layout: %s\n",
                r->throughput_model, r->C, r->n_layers, r->block, r->placement);
        if (r->accuracy_measured)
            fprintf(f, "- accuracy model (distillation, task accuracy): `%s` (hidden %d, %d layers); placement: %s; each "
                       "candidate's resolved heads / K / V / conv\n",
                    c->model.path, r->acc_C, r->acc_layers, r->acc_placement);
    } else {
        fprintf(f, "- model: `%s` (hidden %d, %d layers); linear block: %s; placement: %s\n", c->model.path, r->C,
                r->n_layers, r->block, r->placement);
    }
    fprintf(f, "- cost: %s; L = %lld\n", k_bytes_convention, (long long)r->context);
    fprintf(f, "- budget: %lld bytes (%.3f MB)%s; base design H %d, K %d, V %d, conv %d = %lld bytes\n",
            (long long)r->budget_bytes, r->budget_bytes / 1e6,
            r->budget_from_base ? ", the base design's" : ", hw_search.budget_bytes", b->H, b->K, b->V, b->conv,
            (long long)b->bytes);
    fprintf(f, "- throughput: decode tokens/s of the whole hybrid on %s (%s, %d %s): batch %d, %lld prompt tokens "
               "prefilled, %d timed steps after %d warm-up steps, in %d round-robin rounds over the candidates; "
               "batch / the median step time\n",
            r->device, r->device_name, r->threads, strcmp(r->device, "cuda") ? "threads" : "SMs", r->bench_batch,
            (long long)r->bench_context, r->bench_steps, r->bench_warmup, r->bench_rounds);
    if (r->throughput_from[0])
        fprintf(f, "- throughput numbers measured on %s by an earlier run: `%s`\n", r->date, r->throughput_from);
    if (r->accuracy_measured) {
        fprintf(f, "- accuracy: %s; after %d distillation steps per candidate with the placement fixed (same seed "
                   "and data)",
                k_accuracy_definition, r->train_steps);
        if (c->hw_search.max_examples)
            fprintf(f, "; the first %lld examples per task", (long long)c->hw_search.max_examples);
        fprintf(f, "\n");
    } else {
        fprintf(f, "- accuracy: not measured (hw_search.accuracy false: throughput only; the choice below is the "
                   "fastest candidate)\n");
    }
    fprintf(f, "- choice: the most accurate candidate with throughput >= (1 - %.3g) x the best (%.1f tok/s); ties: "
               "higher throughput\n\n",
            c->hw_search.throughput_tolerance, r->best_tokens_per_s);
    fprintf(f, "| # | heads | K | V | conv | linear params | cache+state (MB) | decode tok/s | vs best |");
    for (int t = 0; t < r->n_tasks; t++) fprintf(f, " %s |", r->task_names[t]);
    fprintf(f, " mean acc | |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (int t = 0; t < r->n_tasks; t++) fprintf(f, "---:|");
    fprintf(f, "---:|---|\n");
    for (int i = 0; i < r->n; i++) {
        const pn_hw_candidate *d = &r->cand[i];
        if (!d->kept) continue;
        char conv[16], tps[32], vs[32], acc[32];
        snprintf(conv, sizeof conv, d->conv ? "%d" : "-", d->conv);
        fmt_or_dash(tps, sizeof tps, "%.1f", d->tokens_per_s);
        fmt_or_dash(vs, sizeof vs, "%+.1f%%", 100.0 * (d->tokens_per_s / r->best_tokens_per_s - 1.0));
        fmt_or_dash(acc, sizeof acc, "%.4f", d->accuracy);
        fprintf(f, "| %d | %d | %d | %d | %s | %lld | %.3f | %s | %s |", i, d->H, d->K, d->V, conv,
                (long long)d->linear_params, d->bytes / 1e6, tps, vs);
        for (int t = 0; t < r->n_tasks; t++) {
            char a[32];
            fmt_or_dash(a, sizeof a, "%.4f", d->task_acc[t]);
            fprintf(f, " %s |", a);
        }
        fprintf(f, " %s | %s |\n", acc, d->chosen ? "**chosen**" : d->within_tolerance ? "" : "too slow");
    }
    int n_over = 0, n_under = 0;
    for (int i = 0; i < r->n; i++) {
        n_over += !r->cand[i].kept && r->cand[i].bytes > r->budget_bytes;
        n_under += !r->cand[i].kept && r->cand[i].bytes <= r->budget_bytes;
    }
    if (n_over) {
        fprintf(f, "\nExcluded, over the budget of %lld bytes:\n\n", (long long)r->budget_bytes);
        for (int i = 0; i < r->n; i++) {
            const pn_hw_candidate *d = &r->cand[i];
            if (!d->kept && d->bytes > r->budget_bytes)
                fprintf(f, "- #%d: H %d, K %d, V %d, conv %d: %lld bytes (%.3f MB), %lld over\n", i, d->H, d->K, d->V,
                        d->conv, (long long)d->bytes, d->bytes / 1e6, (long long)(d->bytes - r->budget_bytes));
        }
    }
    if (n_under)
        fprintf(f, "\nExcluded, under %.4g x the budget (hw_search.budget_min_fraction: designs of a smaller cache): "
                   "%d (listed in hw_search.json)\n",
                r->budget_min_fraction, n_under);
    if (r->chosen >= 0) {
        const pn_hw_candidate *d = &r->cand[r->chosen];
        fprintf(f, "\nChosen: #%d — heads %d, key dim %d, value dim %d, conv %d: mean accuracy %.4f, %.1f decode "
                   "tok/s, %lld cache+state bytes per sequence at L = %lld (supernet.heads / key_dim / value_dim / "
                   "conv_size for the next step; weights in cand_%d/supernet.safetensors).\n",
                d->index, d->H, d->K, d->V, d->conv, d->accuracy, d->tokens_per_s, (long long)d->bytes,
                (long long)r->context, d->index);
    } else {
        fprintf(f, "\nNothing chosen: no candidate has a finite throughput.\n");
    }
    fclose(f);
    pn_write_file_atomic(path, text, len);
    free(text);
}

static void csv_num(FILE *f, double x, const char *fmt) {
    fputc(',', f);
    if (isfinite(x)) fprintf(f, fmt, x);
}

static void write_csv(const pn_hw_result *r, const char *path) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) pn_die_internal(__FILE__, __LINE__, "open_memstream failed: %s", strerror(errno));
    fprintf(f, "index,heads,key_dim,value_dim,conv_size,linear_params,total_params,state_bytes,attn_kv_bytes,"
               "swa_kv_bytes,linear_state_bytes,linear_conv_bytes,kept,decode_tokens_per_s,decode_step_ms");
    for (int t = 0; t < r->n_tasks; t++) fprintf(f, ",%s_accuracy", r->task_names[t]);
    fprintf(f, ",accuracy,train_loss,valid_loss,within_tolerance,chosen\n");
    for (int i = 0; i < r->n; i++) {
        const pn_hw_candidate *d = &r->cand[i];
        fprintf(f, "%d,%d,%d,%d,%d,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%d", i, d->H, d->K, d->V, d->conv,
                (long long)d->linear_params, (long long)d->total_params, (long long)d->bytes, (long long)d->bytes_attn,
                (long long)d->bytes_swa, (long long)d->bytes_rec, (long long)d->bytes_conv, d->kept);
        csv_num(f, d->tokens_per_s, "%.6g");
        csv_num(f, d->step_ms, "%.6g");
        for (int t = 0; t < r->n_tasks; t++) csv_num(f, d->task_acc[t], "%.6g");
        csv_num(f, d->accuracy, "%.6g");
        csv_num(f, d->train_loss, "%.6g");
        csv_num(f, d->valid_loss, "%.6g");
        fprintf(f, ",%d,%d\n", d->within_tolerance, d->chosen);
    }
    fclose(f);
    pn_write_file_atomic(path, text, len);
    free(text);
}

// python3 SCRIPT JSON PNG; any failure (no python3, no matplotlib, no script)
// is a warning: the table and the JSON are the results, the plot a view of them.
static int run_plot(const char *json_path, const char *png_path) {
    const char *dir = getenv("POSTNAS_SCRIPTS");
    char script[4400];
#ifdef POSTNAS_SOURCE_DIR
    if (!dir) dir = POSTNAS_SOURCE_DIR "/scripts";
#endif
    if (!dir) dir = "scripts";
    pn_path_join(script, sizeof script, dir, "plot_hw_search.py");
    if (!pn_file_exists(script)) {
        pn_warn("hw_search: %s not found (set POSTNAS_SCRIPTS to the scripts folder): no hw_search.png", script);
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        pn_warn("hw_search: cannot start python3 (fork: %s): no hw_search.png", strerror(errno));
        return 0;
    }
    if (pid == 0) {
        dup2(2, 1);  // the library never writes to stdout
        execlp("python3", "python3", script, json_path, png_path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (rc == 127)
        pn_warn("hw_search: python3 not found: no hw_search.png");
    else if (rc != 0)
        pn_warn("hw_search: %s exited with %d (matplotlib missing?): no hw_search.png", script, rc);
    return rc == 0;
}

void pn_hw_search_write(const pn_hw_result *r, const pn_job_config *c, const char *out_dir) {
    char md[4400], csv[4400], js[4400], png[4400];
    pn_mkdir_p(out_dir);
    pn_path_join(md, sizeof md, out_dir, "hw_search.md");
    pn_path_join(csv, sizeof csv, out_dir, "hw_search.csv");
    pn_path_join(js, sizeof js, out_dir, "hw_search.json");
    pn_path_join(png, sizeof png, out_dir, "hw_search.png");
    write_md(r, c, md);
    write_csv(r, csv);
    write_json(r, c, js);
    // a plot left from an earlier run would no longer match the table
    if (pn_file_exists(png) && unlink(png) != 0) pn_warn("hw_search: cannot remove the old %s: %s", png, strerror(errno));
    const int plotted = c->hw_search.plot && run_plot(js, png);
    pn_info("hw_search: wrote %s, %s, %s%s%s", md, csv, js, plotted ? " and " : "", plotted ? png : "");
}
