// test_cuda_supernet.c — the CUDA supernet distillation step (supernet/csupernet.c)
// against the CPU supernet (supernet/supernet.c) on a tiny random Qwen2-style model,
// and the device forward against the qwen2-tiny fixture (float64 transformers logits).
//
// What is compared (normalized error ‖gpu − cpu‖ / ‖cpu‖ in double; NaN fails):
//  - qwen2-tiny, every layer on attention: pn_csupernet_logits vs the fixture's logits
//    and vs the CPU backbone on the same bf16 weights (TOL_BF16, see below);
//  - per linear block type (jetblock with mse / kl / both; gated_deltanet with both;
//    the other linear types with mse when this build has their CUDA twin) and per
//    subnet (all linear, mixed linear / swa / attn, swa-heavy, all attention): the
//    step's loss and its terms, the gradient over all parameters and per linear
//    layer (tol 1e-2: the device runs bf16 activations, the CPU fp32), layers off
//    the linear path exactly 0, eval loss (tol 1e-2), the teacher cache (a second
//    batch of ids, then the first again);
//  - the flat-buffer plumbing exactly: parameter upload / download round trip;
//  - the MLP gate / up products kept for 0, 1 or 2 layers, and auto: loss and gradient
//    bitwise the same as recomputing them;
//  - AdamW (two steps, weight decay on) vs pn_adamw_step on the host from the same
//    gradient: the updates w_new − w_old, tol 1e-4 (identical fp32 arithmetic up to
//    FMA contraction); the gradient norm vs pn_grad_norm (1e-4; double sums of the
//    same values) and scale_grads bitwise.
// Everything the device reads as bf16 (backbone weights, linear-path parameters) is put
// on the bf16 grid on the host first, so both sides start from the same values and the
// checks measure the device arithmetic (bf16 activations), not weight quantisation.
// The device keeps the residual stream in fp32 (csupernet.c; before that it was bf16,
// the main accumulated error), the mixers and MLPs add their unrounded outputs to it in
// their last GEMM's epilogue, and the MSE compares fp32 final hidden states.
// Measured in the fake build (bf16 rounding exactly as on the GPU, CPU twins for the
// math): the step loss agrees to ≤ 5e-4, gradients off the linear path are exactly 0,
// AdamW / grad norm agree to ~1e-15; the linear-path gradients are 4e-3..9.9e-3 for
// jetblock, gated_deltanet, deltanet, mamba2 and rwkv7 LL (bf16 residual: up to 1.14e-2),
// but gla LL 1.34e-2..1.40e-2 (was 2.18e-2 with a bf16 residual, 1.78e-2 before gla and
// retnet kept their recurrence output o in fp32 and the mixers' outputs went into the
// stream unrounded), retnet LL 1.54e-2..1.60e-2 (was 1.62e-2..1.66e-2) and rwkv7 LS
// 1.12e-2 (was 1.16e-2) stay over the 1e-2 bf16 tolerance: there the blocks' own bf16
// activations dominate. Those checks are kept at 1e-2 (never loosened)
// and reported as they fall (the H100 gives the same numbers). Where the error comes from,
// measured in the fake build by rounding one more thing inside the CPU reference: the
// block input (the bf16 operand of every projection GEMM) alone takes gla LL from 1.78e-2
// to 1.26e-2 and rwkv7 LS from 1.16e-2 to 0.77e-2; retnet LL stays at 1.5e-2 (its own
// activations dominate); writing the block's output into the residual in fp32 instead of
// bf16 moved gla LL only to 1.62e-2. The layer matters more than what is below it: gla on
// layer 1 over attention or SWA on layer 0 (AL, SL; not among the checks) gives 1.21e-2 /
// 1.25e-2 in the fake build, gla on layer 0 (LS) 6.7e-3; per tensor (PN_SN_TENSORS=1) its
// q_proj / k_proj gradients are the worst (1.4–2.3e-2). The model has 2 layers (every subnet kind still
// fits: LL, LS, AL, LA, SL, AA) to keep the fake run short.
// The qwen2-tiny fixture has 4 layers and fp32 weights: bf16 weights alone give 8.6e-3
// against it (the CPU backbone on rounded weights); the 4-layer device forward gives
// 1.16e-2 against it (H100 and fake build alike; 1.13e-2 in the fake build since the
// mixer's output goes into the fp32 stream unrounded) and 8.0e-3 against the CPU backbone
// on the same bf16 weights. Both checks are held to the bf16 tolerance 1e-2 (an earlier 2e-2,
// derived from those measurements, was a loosened tolerance and is gone): the check
// against transformers' fp64 logits fails by that margin, which is the weights' own bf16
// rounding plus four layers of bf16 activations — reported, not hidden. Each layer alone
// passes the fixture at 1e-2 (test_cuda_block_attn, "attn qwen2-tiny layer 0").
// The tiny model runs with MLP and LM-head row chunks smaller than B·T (a hidden
// setter), so the chunk loops are exercised; one configuration keeps the defaults.
// Block types without a CUDA twin in this build are listed as "not run" instead of
// failing (the block engineers' files may still be placeholders). Without a CUDA
// device the test prints "no CUDA device" and exits 1. PN_SN_TENSORS=1 also prints the
// gradient error of every parameter tensor (diagnosis; no check).
#include "blocks/cblock.h"
#include "core/common.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "kernels/cuda/pn_cuda.h"
#include "supernet/csupernet.h"
#include "supernet/model_init.h"
#include "supernet/optim.h"
#include "supernet/supernet.h"
#include <math.h>
#include <unistd.h>

#define TOL_BF16 1e-2
#define TOL_F32 1e-4
#define GPU_TEST_SEED 20251123
#include "gpu_test_util.h"

void pn_csupernet_set_chunk_rows(pn_csupernet *cs, int64_t mlp_rows, int64_t logit_rows);  // csupernet.c

enum { TB = 2, TT = 48, TL = 2, TV = 512 };
static char g_dir[600];
static int64_t g_ids[TB * TT], g_ids2[TB * TT];
static char g_not_run[1024];

static double rel1(double a, double b) {
    if (!isfinite(a) || !isfinite(b)) return INFINITY;
    return a == b ? 0.0 : fabs(a - b) / fmax(fabs(b), 1e-300);
}

static void note_not_run(const char *what) {
    if (strstr(g_not_run, what)) return;
    size_t len = strlen(g_not_run);
    snprintf(g_not_run + len, sizeof g_not_run - len, "%s%s", len ? ", " : "", what);
}

static int have(const char *type) {
    if (pn_cblock_type_find(type)) return 1;
    note_not_run(type);
    return 0;
}

static const char *fixtures(void) {
    const char *r = getenv("POSTNAS_FIXTURES");
    return r ? r : "../shared/fixtures";
}

static void make_model(const char *root) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    snprintf(c.architecture, sizeof c.architecture, "Qwen2ForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = TV;
    c.hidden_size = 128;
    c.intermediate_size = 256;
    c.num_hidden_layers = TL;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = 1;
    c.qkv_bias = 1;
    snprintf(g_dir, sizeof g_dir, "%s/tiny", root);
    pn_model_init_write(&c, g_dir, 11, PN_F32);
}

static pn_supernet_config base_cfg(int block, int distill) {
    pn_supernet_config c;
    memset(&c, 0, sizeof c);
    c.block = block;
    c.k_max = 2;
    c.sampling = PN_SAMPLING_UNIFORM_K;
    c.p_full = 0.25;
    c.swa_window = 5;  // < T, so the SWA path differs from full attention
    c.distill = distill;
    c.mse_weight = 1.0;
    c.kl_weight = 0.5;
    c.temperature = 2.0;
    c.linear_init = PN_LINEAR_INIT_BLOCK;
    return c;
}

static pn_subnet subnet_of(const char *code) {
    pn_subnet s;
    pn_subnet_fill(&s, TL, PN_PATH_ATTN);
    for (int i = 0; i < TL; i++) s.path[i] = code[i] == 'L' ? PN_PATH_LINEAR : code[i] == 'S' ? PN_PATH_SWA : PN_PATH_ATTN;
    return s;
}

// ---------------------------------------------------------------- qwen2-tiny fixture

static void test_fixture(void) {
    if (!have("attn")) return;
    char dir[4096], ref_path[4200];
    snprintf(dir, sizeof dir, "%s/qwen2-tiny", fixtures());
    snprintf(ref_path, sizeof ref_path, "%s/reference.safetensors", dir);
    pn_safetensors *ref = pn_st_open(ref_path);
    int ndim;
    int64_t shape[PN_MAX_DIMS], lshape[PN_MAX_DIMS];
    int64_t *ids = pn_st_load_i64(ref, "input_ids", &ndim, shape);
    PN_ASSERT(ndim == 2);
    const int B = (int)shape[0], T = (int)shape[1];
    float *want = pn_st_load_f32(ref, "logits", &ndim, lshape);
    pn_st_close(ref);

    pn_backbone *bb = pn_backbone_load(dir);
    pn_supernet_config cfg = base_cfg(PN_LINEAR_JETBLOCK, PN_DISTILL_KL);
    pn_supernet *sn = pn_supernet_create(bb, &cfg, 5);
    pn_csupernet *cs = pn_csupernet_create(sn);
    const size_t n = (size_t)B * T * bb->V;
    float *got = pn_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) got[i] = NAN;  // poison
    pn_subnet s;
    pn_subnet_fill(&s, bb->n_layers, PN_PATH_ATTN);
    pn_csupernet_logits(cs, ids, B, T, &s, got);
    report(rel_err(got, want, n), TOL_BF16, "qwen2-tiny: device logits, every layer on attn, vs transformers (fp64)");
    // The device arithmetic alone: the CPU backbone on the same bf16-rounded weights.
    round_bf16(bb->weights, (size_t)pn_backbone_numel(bb));
    pn_csupernet_free(cs);
    cs = pn_csupernet_create(sn);
    for (size_t i = 0; i < n; i++) got[i] = NAN;
    pn_csupernet_logits(cs, ids, B, T, &s, got);
    pn_subnet_fill(&s, bb->n_layers, PN_PATH_ATTN);
    const float *cpu = pn_supernet_logits(sn, ids, B, T, &s);
    report(rel_err(got, cpu, n), TOL_BF16, "qwen2-tiny: device logits vs the CPU backbone on the same bf16 weights");
    // The same through the step's chunked LM head: eval loss of the all-attn subnet is 0.
    pn_distill_parts parts;
    double ev = pn_csupernet_eval_loss(cs, ids, B, T, &s, &parts);
    report(fabs(ev), 0.0, "qwen2-tiny: KL of the all-attn student against the teacher is 0 (got %.3g)", ev);
    free(got);
    free(want);
    free(ids);
    pn_csupernet_free(cs);
    pn_supernet_free(sn);
    pn_backbone_free(bb);
}

// ---------------------------------------------------------------- step vs the CPU supernet

// [lo, hi) of layer l's parameters in the flat buffer (the table is in layer order).
static void layer_range(const pn_supernet *sn, int l, int64_t *lo, int64_t *hi) {
    *lo = -1;
    *hi = -1;
    for (int i = 0; i < sn->n_table; i++)
        if (sn->table[i].layer == l) {
            if (*lo < 0) *lo = sn->table[i].offset;
            *hi = sn->table[i].offset + sn->table[i].numel;
        }
}

static void compare_step(pn_supernet *sn, pn_csupernet *cs, const char *tag, const char *code) {
    pn_subnet s = subnet_of(code);
    const float gs = 0.5f;
    sn->grad_scale = gs;
    pn_supernet_zero_grads(sn);
    const double cpu = pn_supernet_distill_step(sn, g_ids, TB, TT, &s);
    const pn_distill_parts pc = sn->last;
    pn_csupernet_zero_grads(cs);
    pn_distill_parts pg;
    const double gpu = pn_csupernet_distill_step(cs, g_ids, TB, TT, &s, gs, &pg);
    report(rel1(gpu, cpu), TOL_BF16, "%s %s: step loss %.6g vs cpu %.6g", tag, code, gpu, cpu);
    if (pn_distill_needs_hidden(sn->cfg.distill))
        report(rel1(pg.mse, pc.mse), TOL_BF16, "%s %s: mse term %.6g vs cpu %.6g", tag, code, pg.mse, pc.mse);
    if (pn_distill_needs_logits(sn->cfg.distill))
        report(rel1(pg.kl, pc.kl), TOL_BF16, "%s %s: kl term %.6g vs cpu %.6g", tag, code, pg.kl, pc.kl);

    const int64_t n = sn->n_floats;
    float *g = pn_calloc((size_t)n, sizeof(float));
    pn_csupernet_add_grads_to_host(cs, g);
    int any_linear = strchr(code, 'L') != NULL;
    if (getenv("PN_SN_TENSORS"))  // diagnosis: the error per parameter tensor, printed only
        for (int i = 0; i < sn->n_table; i++) {
            const pn_sn_param *e = &sn->table[i];
            printf("info %s %s: %-48s n %8lld err %.3e\n", tag, code, e->name, (long long)e->numel,
                   rel_err(g + e->offset, sn->grads + e->offset, (size_t)e->numel));
        }
    if (any_linear) report(rel_err(g, sn->grads, (size_t)n), TOL_BF16, "%s %s: gradient, all parameters", tag, code);
    for (int l = 0; l < TL; l++) {
        int64_t lo, hi;
        layer_range(sn, l, &lo, &hi);
        if (lo < 0) continue;
        if (code[l] == 'L') {
            report(rel_err(g + lo, sn->grads + lo, (size_t)(hi - lo)), TOL_BF16, "%s %s: gradient, layer %d", tag, code,
                   l);
        } else {
            double mx = 0;
            for (int64_t i = lo; i < hi; i++) mx = fmax(mx, isfinite(g[i]) ? fabs(g[i]) : INFINITY);
            report(mx, 0.0, "%s %s: layer %d off the linear path has gradient exactly 0", tag, code, l);
        }
    }
    // Accumulation: a second step without zeroing doubles the gradient (up to the fp32
    // order of g + g inside the GEMMs' beta = 1 epilogues).
    if (any_linear) {
        pn_csupernet_distill_step(cs, g_ids, TB, TT, &s, gs, NULL);
        float *g2 = pn_calloc((size_t)n, sizeof(float));
        pn_csupernet_add_grads_to_host(cs, g2);
        for (int64_t i = 0; i < n; i++) g[i] *= 2.0f;
        report(rel_err(g2, g, (size_t)n), TOL_F32, "%s %s: a second step adds the same gradient again", tag, code);
        free(g2);
    }
    free(g);
}

static void compare_eval(pn_supernet *sn, pn_csupernet *cs, const char *tag, const char *code) {
    pn_subnet s = subnet_of(code);
    const int64_t *ids_seq[3] = {g_ids, g_ids2, g_ids};
    const char *names[3] = {"ids", "ids2 (teacher rerun)", "ids again (teacher rerun)"};
    for (int k = 0; k < 3; k++) {
        const double cpu = pn_supernet_eval_loss(sn, ids_seq[k], TB, TT, &s);
        const double gpu = pn_csupernet_eval_loss(cs, ids_seq[k], TB, TT, &s, NULL);
        report(rel1(gpu, cpu), TOL_BF16, "%s %s: eval loss on %s %.6g vs cpu %.6g", tag, code, names[k], gpu, cpu);
    }
    // cached teacher: the same ids twice give the same loss bitwise
    const double a = pn_csupernet_eval_loss(cs, g_ids, TB, TT, &s, NULL);
    const double b = pn_csupernet_eval_loss(cs, g_ids, TB, TT, &s, NULL);
    report(rel1(a, b), 0.0, "%s %s: eval loss with the cached teacher is reproducible", tag, code);
}

// The MLP gate / up products kept from the forward (pn_csupernet_set_mlp_keep) or
// recomputed in the backward: the same GEMMs on the same inputs, so the loss and the
// gradient must be the same bits for every split (0, 1 and both layers kept), and with
// auto the choice is made after the first backward (the tiny model fits: both kept).
static void test_mlp_keep(pn_supernet *sn, pn_csupernet *cs, const char *tag, const char *code) {
    pn_subnet s = subnet_of(code);
    const int64_t n = sn->n_floats;
    float *ref = pn_calloc((size_t)n, sizeof(float)), *g = pn_calloc((size_t)n, sizeof(float));
    double loss_ref = 0;
    for (int keep = 0; keep <= TL; keep++) {
        pn_csupernet_set_mlp_keep(cs, keep);
        pn_csupernet_zero_grads(cs);
        const double loss = pn_csupernet_distill_step(cs, g_ids, TB, TT, &s, 0.5f, NULL);
        report(fabs((double)(pn_csupernet_mlp_kept(cs) - keep)), 0.0, "%s %s: %d layer(s) keep their MLP products",
               tag, code, keep);
        float *dst = keep == 0 ? ref : g;
        memset(dst, 0, (size_t)n * sizeof(float));
        pn_csupernet_add_grads_to_host(cs, dst);
        if (keep == 0) {
            loss_ref = loss;
            continue;
        }
        report(rel1(loss, loss_ref), 0.0, "%s %s: MLP products of %d layer(s) kept: loss bitwise as recomputed", tag,
               code, keep);
        report(rel_err(g, ref, (size_t)n), 0.0, "%s %s: MLP products of %d layer(s) kept: gradient bitwise as recomputed",
               tag, code, keep);
    }
    pn_csupernet_set_mlp_keep(cs, -1);
    report(fabs((double)pn_csupernet_mlp_kept(cs)), 0.0, "%s %s: auto keeps nothing before a backward", tag, code);
    pn_csupernet_zero_grads(cs);
    pn_csupernet_distill_step(cs, g_ids, TB, TT, &s, 0.5f, NULL);
    report(fabs((double)(pn_csupernet_mlp_kept(cs) - TL)), 0.0, "%s %s: auto keeps every layer of the tiny model",
           tag, code);
    pn_csupernet_zero_grads(cs);
    pn_csupernet_distill_step(cs, g_ids, TB, TT, &s, 0.5f, NULL);
    memset(g, 0, (size_t)n * sizeof(float));
    pn_csupernet_add_grads_to_host(cs, g);
    report(rel_err(g, ref, (size_t)n), 0.0, "%s %s: a step after the auto choice: gradient bitwise as recomputed", tag,
           code);
    free(ref);
    free(g);
}

static void test_optimizer(pn_supernet *sn, pn_csupernet *cs, const char *tag) {
    pn_subnet s = subnet_of("LL");
    const int64_t n = sn->n_floats;
    pn_csupernet_zero_grads(cs);
    pn_csupernet_distill_step(cs, g_ids, TB, TT, &s, 1.0f, NULL);
    float *g = pn_calloc((size_t)n, sizeof(float));
    pn_csupernet_add_grads_to_host(cs, g);
    float *w0 = pn_malloc((size_t)n * sizeof(float)), *wh = pn_malloc((size_t)n * sizeof(float));
    pn_csupernet_download_params(cs, w0);
    memcpy(wh, w0, (size_t)n * sizeof(float));
    pn_param_ref *refs = pn_calloc((size_t)sn->n_table, sizeof(pn_param_ref));
    for (int i = 0; i < sn->n_table; i++) {
        const pn_sn_param *e = &sn->table[i];
        refs[i].name = e->name;
        refs[i].w = wh + e->offset;
        refs[i].g = g + e->offset;
        refs[i].n = e->numel;
        refs[i].weight_decay = e->weight_decay;
    }
    // gradient norm and scaling
    const double nc = pn_grad_norm(refs, sn->n_table), ng = pn_csupernet_grad_norm(cs);
    report(rel1(ng, nc), TOL_F32, "%s: grad norm %.9g vs pn_grad_norm %.9g", tag, ng, nc);

    pn_adamw opt;
    const float lr = 1e-2f, wd = 0.1f;
    pn_adamw_init(&opt, refs, sn->n_table, lr, wd);
    float *wg = pn_malloc((size_t)n * sizeof(float));
    double *du_c = pn_malloc((size_t)n * sizeof(double));
    float *ud_c = pn_malloc((size_t)n * sizeof(float)), *ud_g = pn_malloc((size_t)n * sizeof(float));
    for (int t = 1; t <= 2; t++) {
        float *before = pn_malloc((size_t)n * sizeof(float));
        memcpy(before, wh, (size_t)n * sizeof(float));
        pn_adamw_step(&opt, refs, sn->n_table);
        pn_csupernet_adamw_step(cs, t, lr, opt.beta1, opt.beta2, opt.eps, wd);
        pn_csupernet_download_params(cs, wg);
        for (int64_t i = 0; i < n; i++) {
            du_c[i] = (double)wh[i] - (double)before[i];
            ud_c[i] = (float)du_c[i];
            ud_g[i] = (float)((double)wg[i] - (double)before[i]);
        }
        report(rel_err(ud_g, ud_c, (size_t)n), TOL_F32, "%s: AdamW step %d update vs pn_adamw_step", tag, t);
        memcpy(wh, wg, (size_t)n * sizeof(float));  // both continue from the device's weights
        pn_csupernet_upload_params(cs, wh);
        free(before);
    }
    // scale: bitwise the host product
    float *g2 = pn_calloc((size_t)n, sizeof(float));
    pn_csupernet_scale_grads(cs, 0.25f);
    pn_csupernet_add_grads_to_host(cs, g2);
    for (int64_t i = 0; i < n; i++) g[i] *= 0.25f;
    report(rel_err(g2, g, (size_t)n), 0.0, "%s: scale_grads(0.25) bitwise", tag);
    // restore the supernet's parameters on the device
    pn_csupernet_upload_params(cs, sn->params);
    pn_adamw_free(&opt);
    free(g), free(g2), free(w0), free(wh), free(wg), free(du_c), free(ud_c), free(ud_g), free(refs);
}

static void test_config(int block, int distill, int small_chunks, int full) {
    const char *bname = pn_linear_block_names[block];
    if (!have(bname)) return;
    pn_backbone *bb = pn_backbone_load(g_dir);
    round_bf16(bb->weights, (size_t)pn_backbone_numel(bb));
    pn_supernet_config cfg = base_cfg(block, distill);
    pn_supernet *sn = pn_supernet_create(bb, &cfg, 1234);
    // Zero-initialised parameters are perturbed so every tensor carries signal; then
    // everything the device reads as bf16 is put on the bf16 grid for both sides.
    for (int64_t i = 0; i < sn->n_floats; i++) sn->params[i] += 0.01f * pn_normal_at(99, 3, (uint64_t)i);
    round_bf16(sn->params, (size_t)sn->n_floats);
    pn_csupernet *cs = pn_csupernet_create(sn);
    if (small_chunks) pn_csupernet_set_chunk_rows(cs, 40, 30);  // N = 96: 3 MLP chunks, 4 LM-head chunks
    char tag[96];
    snprintf(tag, sizeof tag, "%s/%s%s", bname, pn_distill_names[distill], small_chunks ? "" : " (default chunks)");

    // parameter round trip
    float *back = pn_malloc((size_t)sn->n_floats * sizeof(float));
    pn_csupernet_download_params(cs, back);
    report(rel_err(back, sn->params, (size_t)sn->n_floats), 0.0, "%s: parameter upload / download round trip", tag);
    free(back);

    const int swa = have("swa");
    compare_step(sn, cs, tag, "LL");
    if (swa) compare_step(sn, cs, tag, "LS");
    if (full) {
        compare_step(sn, cs, tag, "AL");
        compare_step(sn, cs, tag, "LA");
        if (swa) compare_step(sn, cs, tag, "SL");
        compare_step(sn, cs, tag, "AA");
        compare_eval(sn, cs, tag, swa ? "LS" : "LA");
        test_mlp_keep(sn, cs, tag, "LL");
        test_mlp_keep(sn, cs, tag, "AL");
        test_optimizer(sn, cs, tag);
        pn_csupernet_mem m = pn_csupernet_memory(cs);
        printf("info %s: device bytes weights %zu params %zu grads %zu optim %zu acts %zu logits %zu\n", tag, m.weights,
               m.params, m.grads, m.optim, m.acts, m.logits);
    }
    pn_csupernet_free(cs);
    pn_supernet_free(sn);
    pn_backbone_free(bb);
}

int main(void) {
    if (pn_cuda_device_count() == 0) {
        printf("no CUDA device\n");
        return 1;
    }
    char root[] = "/tmp/pn_csnet_XXXXXX";
    PN_ASSERT(mkdtemp(root) != NULL);
    make_model(root);
    for (int i = 0; i < TB * TT; i++) {
        g_ids[i] = (int64_t)pn_rng_below(&(pn_rng){1, 1, (uint64_t)i}, TV);
        g_ids2[i] = (g_ids[i] * 7 + 3) % TV;
    }
    test_fixture();
    if (have("attn")) {
        test_config(PN_LINEAR_JETBLOCK, PN_DISTILL_MSE, 1, 1);
        test_config(PN_LINEAR_JETBLOCK, PN_DISTILL_KL, 1, 1);
        test_config(PN_LINEAR_JETBLOCK, PN_DISTILL_BOTH, 1, 1);
        test_config(PN_LINEAR_JETBLOCK, PN_DISTILL_BOTH, 0, 0);
        test_config(PN_LINEAR_GATED_DELTANET, PN_DISTILL_BOTH, 1, 1);
        const int others[] = {PN_LINEAR_DELTANET, PN_LINEAR_GLA, PN_LINEAR_RETNET, PN_LINEAR_MAMBA2, PN_LINEAR_RWKV7};
        for (size_t i = 0; i < PN_ARRAY_LEN(others); i++) test_config(others[i], PN_DISTILL_MSE, 1, 0);
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    if (g_not_run[0]) printf("NOT RUN (no CUDA twin in this build): %s\n", g_not_run);
    printf("test_cuda_supernet: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
