// csupernet.c — the supernet distillation step on CUDA (see csupernet.h).
//
// The decoder stack is supernet/backbone.c's, re-laid for device memory:
//  - the residual stream is fp32 (kernels/cuda/pn_cuda_norm_f32.h): rounding every
//    layer's x + mixer(x) and x + mlp(x) to bf16 was the main error against the fp32
//    CPU supernet. The norms read fp32 x and write the bf16 normed rows the GEMMs and
//    blocks read; the mixer's output projection and the MLP's down projection add their
//    unrounded fp32 products to the stream in the GEMM epilogue (C = x, D = the next
//    stream buffer: pn_cuda_gemm_add, the blocks' residual form). The
//    final norm also writes its output in fp32 when the loss has an MSE term, so the
//    MSE compares fp32 student and teacher hidden states; the LM head reads bf16;
//  - saved per layer for the backward: the layer input resid[l] and the residual
//    after the mixer h[l] (both fp32), and the mixer's own activations. The input
//    norm output xn1 and the post-norm output xn2 are NOT kept: the backward
//    recomputes them (the norm is deterministic, so the same bits);
//  - the MLP's gate / up products (2·N·I bf16, 1.1 GiB per layer at 8×4096 rows of
//    Qwen2.5-1.5B) are kept for the top `mlp_keep` layers, with the post-norm's rstd;
//    the other layers recompute them in the backward (RMSNorm + the GEMM: 1.8 TFLOP
//    per layer at that shape). Recomputed and kept values are the same bits (same
//    GEMM, same inputs), so the gradient does not depend on the split. By default
//    (mlp_keep < 0, "auto") the split is chosen after the first backward of a (B, T),
//    when every lazy buffer (teacher cache, block scratch, GEMM and cuDNN workspaces)
//    exists: as many layers as fit in the device's free memory minus a reserve;
//  - the MLP runs in row chunks of MLP_ROWS (forward and backward), so its (N, I)
//    intermediates exist only for one chunk. Gate and up are one (2I, C) weight: one GEMM
//    writes each row's [gate | up] (SwiGLU reads both halves in place, its backward
//    overwrites them with their gradients), and the input gradient is one GEMM over
//    K = 2I written once, instead of a gate product written and an up product added;
//  - the student's LM head and the KL loss run in row chunks of the logits (about
//    1 GiB each): logits → fused KL + gradient in place → dfinal += dlogits · W, so
//    the (N, V) student logits never exist at once. The teacher's logits are cached
//    whole (bf16), with its final hidden state (fp32, MSE only), for the last host ids;
//  - the teacher runs through the same per-layer buffers before the student (its
//    activations are overwritten, never kept);
//  - the backward stops at the lowest linear layer: the backbone is frozen, so
//    nothing below it takes a gradient.
// Frozen weights are bf16 (attention's parameters also keep fp32 masters, which the
// attention twin may read for its biases / q-k norms); the linear paths' parameters
// live in flat buffers with sn->params' layout, so upload / download / AdamW are one
// call over the flat arrays (AdamW per table entry, for its weight-decay flag).
// Loss partial sums (per MSE chunk, per KL row) stay on the device in double and are
// summed on the host in index order: the loss is deterministic.
#ifdef POSTNAS_HAVE_CUDA
#include "supernet/csupernet.h"
#include "blocks/cblock.h"
#include "core/log.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_distill.h"
#include "kernels/cuda/pn_cuda_norm_f32.h"
#include <math.h>

#define MLP_ROWS 8192                    // rows per MLP chunk
#define LOGIT_CHUNK_BYTES ((size_t)1 << 30)  // bf16 student logits per LM-head chunk

typedef struct {
    pn_bf16 *in_norm, *post_norm;  // (C)
    pn_bf16 *gate_up;              // (2I, C): the gate's rows, then the up projection's
    pn_bf16 *down;                 // (C, I)
} cs_layer;

struct pn_csupernet {
    const pn_supernet *sn;
    int L, C, I, V;
    float eps;
    int64_t mlp_rows;       // rows per MLP chunk (MLP_ROWS; tests lower it)
    int64_t logit_rows_max; // rows per LM-head chunk cap (0 = by LOGIT_CHUNK_BYTES; tests set it)

    // frozen backbone (bf16) and the attention blocks' parameters
    pn_bf16 *embed, *lm_head, *final_norm;
    cs_layer *lw;
    pn_cblock *attn, *swa, *lin, *lin_first;  // (L) each; lin_first only for rwkv7
    int has_lin_first;
    void **wallocs;  // every frozen-weight allocation, to free
    int n_wallocs, cap_wallocs;
    size_t bytes_weights;

    // trainable linear-path parameters, sn->params layout
    int64_t n;
    float *p32, *grads, *m, *v;
    pn_bf16 *p16;

    // per-(B, T) buffers
    int aB, aT;
    int64_t *d_ids;     // (N)
    float **resid;      // (L + 1) of (N, C) fp32 residual stream
    float **h;          // (L) of (N, C) fp32, after the mixer
    void **mact;        // (L) mixer activations
    pn_bf16 *final;     // (N, C) final norm output for the LM head
    float *final32;     // (N, C) the same unrounded, for the MSE (NULL without an MSE term)
    float *rstd_f;      // (N)
    pn_bf16 *xn;        // (N, C) norm output scratch
    float *rstd;        // (N)
    float *dr, *dx2, *dfinal;  // (N, C) fp32 gradients
    pn_bf16 *drb;       // (MLP_ROWS, C)
    pn_bf16 *gu_rows;   // (MLP_ROWS, 2I) [gate | up] of a chunk
    pn_bf16 *mid;       // (MLP_ROWS, I)
    float *dmid;        // (MLP_ROWS, I)
    int mlp_keep_req;   // layers whose gate / up the forward keeps: < 0 auto, else at most L
    int mlp_keep;       // layers kept now (the top ones: L - mlp_keep .. L - 1)
    int mlp_keep_done;  // the auto choice was made for this (B, T)
    pn_bf16 **gu;       // (L): (N, 2I) [gate | up], then (N) fp32 rstd; NULL = recompute
    pn_bf16 *logits;    // (logit_rows, V)
    int64_t logit_rows;
    double *row_kl;     // (N)
    double *mse_part;   // (ceil(N·C / PN_CUDA_MSE_CHUNK))
    pn_bf16 *v_first;   // (N, C) rwkv7 only
    float *dv_first;    // (N, C)
    size_t bytes_acts, bytes_logits;

    // teacher cache
    int64_t *t_ids;  // host copy
    int t_B, t_T, t_has_logits;
    int64_t t_cap_rows;  // rows t_final / t_logits were allocated for
    float *t_final;      // (N, C) or NULL (no MSE term)
    pn_bf16 *t_logits;   // (N, V) or NULL
    size_t bytes_teacher_hidden, bytes_teacher_logits;
};

// ---------------------------------------------------------------- allocation helpers

static void *walloc(pn_csupernet *cs, size_t bytes) {
    if (cs->n_wallocs == cs->cap_wallocs) {
        cs->cap_wallocs = cs->cap_wallocs ? 2 * cs->cap_wallocs : 64;
        void **p = pn_malloc((size_t)cs->cap_wallocs * sizeof(void *));
        if (cs->n_wallocs) memcpy(p, cs->wallocs, (size_t)cs->n_wallocs * sizeof(void *));
        free(cs->wallocs);
        cs->wallocs = p;
    }
    void *d = pn_cuda_alloc(PN_CUDA_MEM_WEIGHTS, bytes);
    cs->wallocs[cs->n_wallocs++] = d;
    cs->bytes_weights += bytes;
    return d;
}

static pn_bf16 *upload_frozen(pn_csupernet *cs, const float *host, int64_t n) {
    pn_bf16 *d = walloc(cs, (size_t)n * sizeof(pn_bf16));
    pn_cuda_upload_bf16(d, host, n);
    return d;
}

static void *aalloc(pn_csupernet *cs, size_t bytes) {
    cs->bytes_acts += bytes;
    return pn_cuda_alloc(PN_CUDA_MEM_ACTS, bytes);
}

// Sets cb up from the CPU block; without a CUDA twin of that type in this build the
// image keeps type NULL (a subnet that needs it then fails with a clear message).
static void cblock_bind_setup(pn_cblock *cb, const pn_block *host) {
    if (pn_cblock_type_find(host->type->name)) {
        pn_cblock_setup(cb, host);
        return;
    }
    memset(cb, 0, sizeof *cb);
    cb->cfg = host->cfg;
    cb->n_params = host->n_params;
    memcpy(cb->spec, host->spec, sizeof cb->spec);
}

static void need_type(const pn_cblock *cb, const char *host_name, int layer) {
    if (!cb->type)
        pn_die_internal(__FILE__, __LINE__,
                        "layer %d: block type '%s' has no CUDA implementation in this build (blocks/cblock_*.c)", layer,
                        host_name);
}

// ---------------------------------------------------------------- create / free

pn_csupernet *pn_csupernet_create(const pn_supernet *sn) {
    PN_ASSERT(sn && sn->bb);
    const pn_backbone *bb = sn->bb;
    pn_csupernet *cs = pn_calloc(1, sizeof *cs);
    cs->sn = sn;
    cs->L = bb->n_layers;
    cs->C = bb->C;
    cs->I = bb->I;
    cs->V = bb->V;
    cs->eps = (float)bb->cfg.rms_norm_eps;
    cs->mlp_rows = MLP_ROWS;
    cs->mlp_keep_req = -1;
    const int L = cs->L, C = cs->C, I = cs->I, V = cs->V;

    // Frozen backbone → bf16.
    cs->embed = upload_frozen(cs, bb->embed, (int64_t)V * C);
    cs->lm_head = bb->tied ? cs->embed : upload_frozen(cs, bb->lm_head, (int64_t)V * C);
    cs->final_norm = upload_frozen(cs, bb->final_norm, C);
    cs->lw = pn_calloc((size_t)L, sizeof(cs_layer));
    cs->attn = pn_calloc((size_t)L, sizeof(pn_cblock));
    cs->swa = pn_calloc((size_t)L, sizeof(pn_cblock));
    cs->lin = pn_calloc((size_t)L, sizeof(pn_cblock));
    cs->has_lin_first = sn->lin_first != NULL;
    if (cs->has_lin_first) cs->lin_first = pn_calloc((size_t)L, sizeof(pn_cblock));
    for (int l = 0; l < L; l++) {
        const pn_bb_layer *ly = &bb->layers[l];
        cs_layer *w = &cs->lw[l];
        w->in_norm = upload_frozen(cs, ly->in_norm, C);
        w->post_norm = upload_frozen(cs, ly->post_norm, C);
        // gate and up stacked: one GEMM makes both products, one takes both gradients back
        w->gate_up = walloc(cs, (size_t)2 * I * C * sizeof(pn_bf16));
        pn_cuda_upload_bf16(w->gate_up, ly->gate, (int64_t)I * C);
        pn_cuda_upload_bf16(w->gate_up + (int64_t)I * C, ly->up, (int64_t)I * C);
        w->down = upload_frozen(cs, ly->down, (int64_t)C * I);

        // Path 0: the pretrained attention, frozen (fp32 masters + bf16 copies, no grads).
        pn_cblock *a = &cs->attn[l];
        cblock_bind_setup(a, &ly->attn);
        for (int p = 0; p < a->n_params; p++) {
            const int64_t n = pn_param_numel(&a->spec[p]);
            a->w32[p] = walloc(cs, (size_t)n * sizeof(float));
            a->w16[p] = walloc(cs, (size_t)n * sizeof(pn_bf16));
        }
        pn_cblock_upload_params(a, &ly->attn);
        // Path 1: SWA over the same weights.
        pn_cblock *sw = &cs->swa[l];
        cblock_bind_setup(sw, &sn->swa[l]);
        PN_ASSERT(sw->n_params == a->n_params);
        for (int p = 0; p < sw->n_params; p++) {
            sw->w32[p] = a->w32[p];
            sw->w16[p] = a->w16[p];
        }
    }

    // Trainable parameters: flat device buffers with sn->params' layout.
    cs->n = sn->n_floats;
    const size_t nb = (size_t)PN_MAX(cs->n, (int64_t)1);
    cs->p32 = pn_cuda_alloc(PN_CUDA_MEM_PARAMS, nb * sizeof(float));
    cs->p16 = pn_cuda_alloc(PN_CUDA_MEM_PARAMS, nb * sizeof(pn_bf16));
    cs->grads = pn_cuda_alloc(PN_CUDA_MEM_GRADS, nb * sizeof(float));
    cs->m = pn_cuda_alloc(PN_CUDA_MEM_OPTIM, nb * sizeof(float));
    cs->v = pn_cuda_alloc(PN_CUDA_MEM_OPTIM, nb * sizeof(float));
    pn_cuda_memset(cs->grads, 0, nb * sizeof(float));
    pn_cuda_memset(cs->m, 0, nb * sizeof(float));
    pn_cuda_memset(cs->v, 0, nb * sizeof(float));
    for (int l = 0; l < L; l++) {
        const pn_block *host = &sn->lin[l];
        pn_cblock *cb = &cs->lin[l];
        cblock_bind_setup(cb, host);
        for (int p = 0; p < cb->n_params; p++) {
            const int64_t off = host->params[p] - sn->params;
            PN_ASSERT(off >= 0 && off + pn_param_numel(&cb->spec[p]) <= sn->n_floats);
            cb->w32[p] = cs->p32 + off;
            cb->w16[p] = cs->p16 + off;
            cb->grads[p] = cs->grads + off;
        }
        if (cs->has_lin_first) {
            // rwkv7's first-layer form: a subset of the same parameters, by name.
            const pn_block *fh = &sn->lin_first[l];
            pn_cblock *f = &cs->lin_first[l];
            cblock_bind_setup(f, fh);
            for (int p = 0; p < f->n_params; p++) {
                const int j = pn_block_param_index(host, f->spec[p].name);
                PN_ASSERT(j >= 0);
                f->w32[p] = cb->w32[j];
                f->w16[p] = cb->w16[j];
                f->grads[p] = cb->grads[j];
            }
        }
    }
    pn_csupernet_upload_params(cs, sn->params);
    pn_debug("csupernet: %d layers, %.1f MiB frozen weights, %lld trainable floats", L,
             (double)cs->bytes_weights / 1048576.0, (long long)cs->n);
    return cs;
}

// ---------------------------------------------------------------- kept MLP products: layout

static size_t gu_rstd_offset(int64_t N, int I) { return ((size_t)2 * N * I * sizeof(pn_bf16) + 255) / 256 * 256; }
// One layer's kept [gate | up] rows (bf16) and rstd (fp32).
static size_t gu_bytes(int64_t N, int I) { return gu_rstd_offset(N, I) + (size_t)N * sizeof(float); }
static float *gu_rstd(const pn_csupernet *cs, int l) {
    return (float *)((char *)cs->gu[l] + gu_rstd_offset((int64_t)cs->aB * cs->aT, cs->I));
}

// The chunk [r0, r0 + MLP rows) of layer l's [gate | up] rows (bf16, (rows, 2I): gate is
// columns 0..I−1, up I..2I−1) and post-norm rstd: in its kept products when `kept`, else in
// the per-chunk scratch.
static void mlp_chunk_bufs(pn_csupernet *cs, int l, int kept, int64_t r0, pn_bf16 **gu, float **rstd) {
    *gu = kept ? cs->gu[l] + r0 * 2 * cs->I : cs->gu_rows;
    *rstd = kept ? gu_rstd(cs, l) + r0 : cs->rstd + r0;
}

static void kept_drop(pn_csupernet *cs, int l) {
    pn_cuda_free(cs->gu[l]);
    cs->gu[l] = NULL;
    cs->bytes_acts -= gu_bytes((int64_t)cs->aB * cs->aT, cs->I);
}

static void free_kept(pn_csupernet *cs) {
    if (cs->gu)
        for (int l = 0; l < cs->L; l++)
            if (cs->gu[l]) kept_drop(cs, l);
    free(cs->gu);
    cs->gu = NULL;
    cs->mlp_keep = 0;
}

static void free_acts(pn_csupernet *cs) {
    free_kept(cs);
    cs->mlp_keep_done = 0;
    if (cs->resid)
        for (int l = 0; l <= cs->L; l++) pn_cuda_free(cs->resid[l]);
    if (cs->h)
        for (int l = 0; l < cs->L; l++) pn_cuda_free(cs->h[l]);
    if (cs->mact)
        for (int l = 0; l < cs->L; l++) pn_cuda_free(cs->mact[l]);
    free(cs->resid);
    free(cs->h);
    free(cs->mact);
    cs->resid = cs->h = NULL;
    cs->mact = NULL;
    void *bufs[] = {cs->d_ids,   cs->final,  cs->final32,  cs->rstd_f,  cs->xn,      cs->rstd,
                    cs->dr,      cs->dx2,    cs->dfinal, cs->drb,      cs->gu_rows, cs->mid,
                    cs->dmid,    cs->logits,   cs->row_kl,  cs->mse_part, cs->v_first,
                    cs->dv_first};
    for (size_t i = 0; i < PN_ARRAY_LEN(bufs); i++) pn_cuda_free(bufs[i]);
    cs->d_ids = NULL;
    cs->final = cs->xn = cs->drb = cs->gu_rows = cs->mid = cs->logits = cs->v_first = NULL;
    cs->final32 = cs->rstd_f = cs->rstd = cs->dr = cs->dx2 = cs->dfinal = cs->dmid = NULL;
    cs->dv_first = NULL;
    cs->row_kl = cs->mse_part = NULL;
    cs->aB = cs->aT = 0;
    cs->bytes_acts = cs->bytes_logits = 0;
}

static void free_teacher(pn_csupernet *cs) {
    pn_cuda_free(cs->t_final);
    pn_cuda_free(cs->t_logits);
    cs->t_final = NULL;
    cs->t_logits = NULL;
    cs->t_B = cs->t_T = cs->t_has_logits = 0;
    cs->t_cap_rows = 0;
    cs->bytes_teacher_hidden = cs->bytes_teacher_logits = 0;
}

void pn_csupernet_free(pn_csupernet *cs) {
    if (!cs) return;
    pn_cuda_sync();
    free_acts(cs);
    free_teacher(cs);
    free(cs->t_ids);
    for (int i = 0; i < cs->n_wallocs; i++) pn_cuda_free(cs->wallocs[i]);
    free(cs->wallocs);
    pn_cuda_free(cs->p32);
    pn_cuda_free(cs->p16);
    pn_cuda_free(cs->grads);
    pn_cuda_free(cs->m);
    pn_cuda_free(cs->v);
    free(cs->lw);
    free(cs->attn);
    free(cs->swa);
    free(cs->lin);
    free(cs->lin_first);
    free(cs);
}

// ---------------------------------------------------------------- parameters, gradients, optimizer

void pn_csupernet_upload_params(pn_csupernet *cs, const float *host_params) {
    if (cs->n <= 0) return;
    pn_cuda_upload(cs->p32, host_params, (size_t)cs->n * sizeof(float));
    pn_cuda_f32_to_bf16(cs->p16, cs->p32, cs->n);
    pn_cuda_sync();
}

void pn_csupernet_download_params(const pn_csupernet *cs, float *host_params) {
    if (cs->n <= 0) return;
    pn_cuda_download(host_params, cs->p32, (size_t)cs->n * sizeof(float));
}

void pn_csupernet_add_grads_to_host(const pn_csupernet *cs, float *host_grads) {
    if (cs->n <= 0) return;
    float *tmp = pn_malloc((size_t)cs->n * sizeof(float));
    pn_cuda_download(tmp, cs->grads, (size_t)cs->n * sizeof(float));
    for (int64_t i = 0; i < cs->n; i++) host_grads[i] += tmp[i];
    free(tmp);
}

void pn_csupernet_zero_grads(pn_csupernet *cs) {
    if (cs->n > 0) pn_cuda_memset(cs->grads, 0, (size_t)cs->n * sizeof(float));
}

double pn_csupernet_grad_norm(pn_csupernet *cs) {
    if (cs->n <= 0) return 0.0;
    const int64_t nb = (cs->n + PN_CUDA_NORM_BLOCK - 1) / PN_CUDA_NORM_BLOCK;
    double *part = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)nb * sizeof(double));
    pn_cuda_sumsq_async(part, cs->grads, cs->n);
    double *h = pn_malloc((size_t)nb * sizeof(double));
    pn_cuda_download(h, part, (size_t)nb * sizeof(double));
    double sum = 0.0;
    for (int64_t b = 0; b < nb; b++) sum += h[b];
    free(h);
    pn_cuda_free(part);
    return sqrt(sum);
}

void pn_csupernet_scale_grads(pn_csupernet *cs, float factor) { pn_cuda_scale_inplace(cs->grads, factor, cs->n); }

void pn_csupernet_adamw_step(pn_csupernet *cs, int64_t t, float lr, float beta1, float beta2, float eps,
                             float weight_decay) {
    // One launch per run of table entries that are adjacent in the flat buffers and share
    // the weight-decay flag (the update is element-wise: the same bits as one per entry).
    const pn_supernet *sn = cs->sn;
    for (int i = 0; i < sn->n_table;) {
        const pn_sn_param *e = &sn->table[i];
        const int64_t o = e->offset;
        int64_t n = e->numel;
        int j = i + 1;
        while (j < sn->n_table && sn->table[j].offset == o + n && sn->table[j].weight_decay == e->weight_decay)
            n += sn->table[j++].numel;
        pn_cuda_adamw_step(cs->p32 + o, cs->p16 + o, cs->grads + o, cs->m + o, cs->v + o, n, t, lr, beta1, beta2, eps,
                           e->weight_decay ? weight_decay : 0.0f);
        i = j;
    }
}

// ---------------------------------------------------------------- kept MLP products: how many

// Keeps the gate / up products of the top n layers (frees the rest). Needs ensure_acts.
static void set_kept(pn_csupernet *cs, int n) {
    n = PN_MAX(0, PN_MIN(n, cs->L));
    const int64_t N = (int64_t)cs->aB * cs->aT;
    PN_ASSERT(N > 0);
    if (!cs->gu) cs->gu = pn_calloc((size_t)cs->L, sizeof(pn_bf16 *));
    const size_t bytes = gu_bytes(N, cs->I);
    for (int l = 0; l < cs->L; l++) {
        const int want = l >= cs->L - n;
        if (want && !cs->gu[l]) {
            cs->gu[l] = pn_cuda_alloc(PN_CUDA_MEM_ACTS, bytes);
            cs->bytes_acts += bytes;
        } else if (!want && cs->gu[l]) {
            kept_drop(cs, l);
        }
    }
    cs->mlp_keep = n;
}

// The auto choice, after a backward: every layer whose products fit in the free device
// memory less a reserve for what a later step may still allocate (another subnet's
// block scratch, cuDNN plans): 2 GiB + 4 % of the device.
static void choose_kept(pn_csupernet *cs) {
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    const size_t reserve = ((size_t)2 << 30) + info.total_mem / 25;
    const int64_t N = (int64_t)cs->aB * cs->aT;
    const size_t per = gu_bytes(N, cs->I);
    const size_t avail = info.free_mem > reserve ? info.free_mem - reserve : 0;
    set_kept(cs, (int)PN_MIN((size_t)cs->L, avail / per));
    cs->mlp_keep_done = 1;
    pn_info("csupernet: B·T %lld: the MLP gate / up products of %d of %d layers kept for the backward (%.2f GiB; "
            "%.1f GiB was free, %.1f GiB held back), %d recomputed",
            (long long)N, cs->mlp_keep, cs->L, (double)cs->mlp_keep * per / 1073741824.0,
            (double)info.free_mem / 1073741824.0, (double)reserve / 1073741824.0, cs->L - cs->mlp_keep);
}

void pn_csupernet_set_mlp_keep(pn_csupernet *cs, int layers) {
    pn_cuda_sync();
    free_kept(cs);
    cs->mlp_keep_req = layers;
    cs->mlp_keep_done = 0;
    if (layers >= 0 && cs->aB > 0) set_kept(cs, layers);
}

int pn_csupernet_mlp_kept(const pn_csupernet *cs) { return cs->mlp_keep; }

// ---------------------------------------------------------------- per-(B, T) buffers

static size_t act_bytes_of(const pn_cblock *cb, int B, int T) {
    return cb->type && cb->type->act_bytes ? cb->type->act_bytes(&cb->cfg, B, T) : 0;
}

static void ensure_acts(pn_csupernet *cs, int B, int T) {
    if (cs->aB == B && cs->aT == T) return;
    pn_cuda_sync();
    free_acts(cs);
    // Give the old shape's buffers (kept MLP products included) back to the driver: the
    // auto choice of kept layers reads the driver's free memory, in which the arena's
    // cached blocks do not show, and after a shape change (an eval batch) they would
    // otherwise hide ~1 GiB per kept layer.
    pn_cuda_mem_trim(PN_CUDA_MEM_ACTS);
    const int L = cs->L, C = cs->C, I = cs->I, V = cs->V;
    const int64_t N = (int64_t)B * T;
    const size_t NC = (size_t)N * C, R = (size_t)PN_MIN(N, cs->mlp_rows);
    cs->resid = pn_calloc((size_t)L + 1, sizeof(float *));
    cs->h = pn_calloc((size_t)L, sizeof(float *));
    cs->mact = pn_calloc((size_t)L, sizeof(void *));
    for (int l = 0; l <= L; l++) cs->resid[l] = aalloc(cs, NC * sizeof(float));
    for (int l = 0; l < L; l++) {
        cs->h[l] = aalloc(cs, NC * sizeof(float));
        // Sized for whichever path the layer runs, so a subnet change reallocates nothing.
        size_t ab = act_bytes_of(&cs->attn[l], B, T);
        ab = PN_MAX(ab, act_bytes_of(&cs->swa[l], B, T));
        ab = PN_MAX(ab, act_bytes_of(&cs->lin[l], B, T));
        if (cs->has_lin_first) ab = PN_MAX(ab, act_bytes_of(&cs->lin_first[l], B, T));
        cs->mact[l] = aalloc(cs, PN_MAX(ab, (size_t)256));
    }
    cs->d_ids = aalloc(cs, (size_t)N * sizeof(int64_t));
    cs->final = aalloc(cs, NC * sizeof(pn_bf16));
    if (pn_distill_needs_hidden(cs->sn->cfg.distill)) cs->final32 = aalloc(cs, NC * sizeof(float));
    cs->rstd_f = aalloc(cs, (size_t)N * sizeof(float));
    cs->xn = aalloc(cs, NC * sizeof(pn_bf16));
    cs->rstd = aalloc(cs, (size_t)N * sizeof(float));
    cs->dr = aalloc(cs, NC * sizeof(float));
    cs->dx2 = aalloc(cs, NC * sizeof(float));
    cs->dfinal = aalloc(cs, NC * sizeof(float));
    cs->drb = aalloc(cs, R * C * sizeof(pn_bf16));
    cs->gu_rows = aalloc(cs, R * 2 * I * sizeof(pn_bf16));
    cs->mid = aalloc(cs, R * I * sizeof(pn_bf16));
    cs->dmid = aalloc(cs, R * I * sizeof(float));
    cs->row_kl = aalloc(cs, (size_t)N * sizeof(double));
    cs->mse_part = aalloc(cs, (size_t)((NC + PN_CUDA_MSE_CHUNK - 1) / PN_CUDA_MSE_CHUNK) * sizeof(double));
    if (cs->has_lin_first) {
        cs->v_first = aalloc(cs, NC * sizeof(pn_bf16));
        cs->dv_first = aalloc(cs, NC * sizeof(float));
    }
    int64_t lr = (int64_t)(LOGIT_CHUNK_BYTES / ((size_t)V * sizeof(pn_bf16)));
    if (cs->logit_rows_max > 0) lr = PN_MIN(lr, cs->logit_rows_max);
    cs->logit_rows = PN_MAX((int64_t)1, PN_MIN(N, lr));
    // The student's logits chunk only exists for a KL term (1 GiB at the default chunk).
    if (pn_distill_needs_logits(cs->sn->cfg.distill)) {
        const size_t lb = (size_t)cs->logit_rows * V * sizeof(pn_bf16);
        cs->logits = pn_cuda_alloc(PN_CUDA_MEM_ACTS, lb);
        cs->bytes_logits = lb;
    }
    cs->aB = B;
    cs->aT = T;
    if (cs->mlp_keep_req >= 0) set_kept(cs, cs->mlp_keep_req);
}

// ---------------------------------------------------------------- forward

static void check_subnet(const pn_csupernet *cs, const pn_subnet *s) {
    PN_ASSERT(s && s->n_layers == cs->L);
    for (int l = 0; l < cs->L; l++)
        if (s->path[l] > PN_PATH_LINEAR)
            pn_die_internal(__FILE__, __LINE__, "subnet layer %d: path %d is not 0, 1 or 2", l, s->path[l]);
}

// The block layer l runs under subnet s (NULL = the teacher: every layer on attention).
static const pn_cblock *path_block(const pn_csupernet *cs, const pn_subnet *s, int l, int first_linear) {
    const pn_supernet *sn = cs->sn;
    const pn_cblock *cb;
    const char *host;
    int path = s ? s->path[l] : PN_PATH_ATTN;
    if (path == PN_PATH_ATTN) {
        cb = &cs->attn[l];
        host = sn->bb->layers[l].attn.type->name;
    } else if (path == PN_PATH_SWA) {
        cb = &cs->swa[l];
        host = sn->swa[l].type->name;
    } else if (cs->has_lin_first && l == first_linear) {
        cb = &cs->lin_first[l];
        host = sn->lin_first[l].type->name;
    } else {
        cb = &cs->lin[l];
        host = sn->lin[l].type->name;
    }
    need_type(cb, host, l);
    return cb;
}

static int lowest_linear(const pn_subnet *s) {
    if (!s) return -1;
    for (int l = 0; l < s->n_layers; l++)
        if (s->path[l] == PN_PATH_LINEAR) return l;
    return -1;
}

// Embedding → every layer → final norm, into cs->final; per-layer resid / h / mixer
// activations are left for the backward.
static void forward_stack(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s) {
    const int L = cs->L, C = cs->C, I = cs->I;
    const int64_t N = (int64_t)B * T;
    for (int64_t i = 0; i < N; i++) PN_ASSERT(ids[i] >= 0 && ids[i] < cs->V);
    ensure_acts(cs, B, T);
    pn_cuda_upload(cs->d_ids, ids, (size_t)N * sizeof(int64_t));
    const int l0 = lowest_linear(s);
    pn_cblock_ctx ctx = {cs->v_first, cs->dv_first, NULL, NULL};
    // The bf16 embedding rows are exact in fp32.
    pn_cuda_embedding_fwd(cs->xn, cs->d_ids, cs->embed, N, C);
    pn_cuda_bf16_to_f32(cs->resid[0], cs->xn, N * C);
    for (int l = 0; l < L; l++) {
        const cs_layer *w = &cs->lw[l];
        const pn_cblock *cb = path_block(cs, s, l, l0);
        // h = x + mixer(RMSNorm_in(x)), the sum in fp32: the block adds its unrounded output
        // to x in its output projection (the residual form of pn_cblock_ctx)
        pn_cuda_rmsnorm_f32_fwd(cs->xn, NULL, cs->rstd, cs->resid[l], w->in_norm, N, C, cs->eps);
        ctx.resid_in = cs->resid[l];
        ctx.resid_out = cs->h[l];
        cb->type->forward(cb, NULL, cs->xn, B, T, cs->mact[l], &ctx);
        // out = h + down(silu(gate(h')) · up(h')), h' = RMSNorm_post(h), by row chunks
        // A student layer the backward reaches writes gate / up / rstd where it keeps them.
        const int keep = s && l0 >= 0 && l >= l0 && cs->gu && cs->gu[l];
        for (int64_t r0 = 0; r0 < N; r0 += cs->mlp_rows) {
            const int64_t rows = PN_MIN(cs->mlp_rows, N - r0);
            const float *hc = cs->h[l] + r0 * C;
            pn_bf16 *gu;
            float *rstd;
            mlp_chunk_bufs(cs, l, keep, r0, &gu, &rstd);
            pn_cuda_rmsnorm_f32_fwd(cs->xn + r0 * C, NULL, rstd, hc, w->post_norm, rows, C, cs->eps);
            pn_cuda_linear_fwd(gu, PN_CUDA_BF16, cs->xn + r0 * C, w->gate_up, NULL, rows, C, 2 * I);
            pn_cuda_swiglu_fwd(cs->mid, gu, gu + I, 2 * I, rows, I);
            // out = h + mid · downᵀ, h read by the GEMM's epilogue (C = h, D = out)
            pn_cuda_gemm_add(0, 1, rows, C, I, cs->mid, I, w->down, I, hc, cs->resid[l + 1] + r0 * C, C, NULL);
        }
    }
    pn_cuda_rmsnorm_f32_fwd(cs->final, cs->final32, cs->rstd_f, cs->resid[L], cs->final_norm, N, C, cs->eps);
}

// ---------------------------------------------------------------- teacher

static void teacher_run(pn_csupernet *cs, const int64_t *ids, int B, int T, int need_logits) {
    const int64_t N = (int64_t)B * T;
    if (cs->t_B == B && cs->t_T == T && (cs->t_has_logits || !need_logits) &&
        memcmp(cs->t_ids, ids, (size_t)N * sizeof(int64_t)) == 0)
        return;
    if (N > cs->t_cap_rows || (need_logits && !cs->t_logits)) {
        pn_cuda_sync();
        free_teacher(cs);
        free(cs->t_ids);
        cs->t_ids = pn_malloc((size_t)N * sizeof(int64_t));
        if (cs->final32) {
            cs->bytes_teacher_hidden = (size_t)N * cs->C * sizeof(float);
            cs->t_final = pn_cuda_alloc(PN_CUDA_MEM_ACTS, cs->bytes_teacher_hidden);
        }
        if (need_logits) {
            cs->bytes_teacher_logits = (size_t)N * cs->V * sizeof(pn_bf16);
            cs->t_logits = pn_cuda_alloc(PN_CUDA_MEM_ACTS, cs->bytes_teacher_logits);
        }
        cs->t_cap_rows = N;
    }
    cs->t_B = 0;  // invalid until the run below completes
    forward_stack(cs, ids, B, T, NULL);
    if (cs->final32) pn_cuda_copy(cs->t_final, cs->final32, (size_t)N * cs->C * sizeof(float));
    if (need_logits) pn_cuda_linear_fwd(cs->t_logits, PN_CUDA_BF16, cs->final, cs->lm_head, NULL, N, cs->C, cs->V);
    memcpy(cs->t_ids, ids, (size_t)N * sizeof(int64_t));
    cs->t_has_logits = need_logits;
    cs->t_B = B;
    cs->t_T = T;
}

// ---------------------------------------------------------------- loss

// The loss of the student in cs->final against the teacher cache. With want_grad,
// cs->dfinal = scale · d total / d final (the KL part through the LM head).
static pn_distill_parts loss_run(pn_csupernet *cs, int64_t N, int want_grad, float scale) {
    const pn_supernet_config *cfg = &cs->sn->cfg;
    const int C = cs->C, V = cs->V;
    const int both = cfg->distill == PN_DISTILL_BOTH;
    const int use_mse = pn_distill_needs_hidden(cfg->distill), use_kl = pn_distill_needs_logits(cfg->distill);
    const int64_t NC = N * C, n_mse = (NC + PN_CUDA_MSE_CHUNK - 1) / PN_CUDA_MSE_CHUNK;
    const double w_mse = both ? cfg->mse_weight : 1.0, w_kl = both ? cfg->kl_weight : 1.0;
    const double tau = cfg->temperature;
    if (use_mse) {
        // As pn_distill_loss: the weight folds into the float scale first.
        const float sc = (float)(w_mse * scale);
        PN_ASSERT(cs->final32 && cs->t_final);
        pn_cuda_distill_mse_f32_async(want_grad ? cs->dfinal : NULL, cs->mse_part, cs->final32, cs->t_final, NC,
                                      (float)(2.0 * (double)sc / (double)NC));
    } else if (want_grad) {
        pn_cuda_memset(cs->dfinal, 0, (size_t)NC * sizeof(float));
    }
    if (use_kl) {
        const float sc = (float)(w_kl * scale);
        const float grad_mul = (float)((double)sc * tau / (double)N);
        for (int64_t r0 = 0; r0 < N; r0 += cs->logit_rows) {
            const int64_t rows = PN_MIN(cs->logit_rows, N - r0);
            pn_cuda_linear_fwd(cs->logits, PN_CUDA_BF16, cs->final + r0 * C, cs->lm_head, NULL, rows, C, V);
            pn_cuda_distill_kl_async(want_grad ? cs->logits : NULL, cs->row_kl + r0, cs->logits,
                                     cs->t_logits + r0 * V, rows, V, (float)tau, grad_mul);
            if (want_grad)
                pn_cuda_linear_bwd(cs->dfinal + r0 * C, PN_CUDA_F32, NULL, NULL, cs->logits, NULL, cs->lm_head, rows,
                                   C, V);
        }
    }
    pn_distill_parts out = {0, 0, 0};
    if (use_mse) {
        double *h = pn_malloc((size_t)n_mse * sizeof(double));
        pn_cuda_download(h, cs->mse_part, (size_t)n_mse * sizeof(double));
        double sum = 0;
        for (int64_t i = 0; i < n_mse; i++) sum += h[i];
        free(h);
        out.mse = sum / (double)NC;
        out.total += w_mse * out.mse;
    }
    if (use_kl) {
        double *h = pn_malloc((size_t)N * sizeof(double));
        pn_cuda_download(h, cs->row_kl, (size_t)N * sizeof(double));
        double sum = 0;
        for (int64_t i = 0; i < N; i++) sum += h[i];
        free(h);
        out.kl = tau * tau * sum / (double)N;
        out.total += w_kl * out.kl;
    }
    return out;
}

// ---------------------------------------------------------------- backward

// From cs->dfinal down to the lowest linear layer l0, adding the linear paths'
// parameter gradients. Frozen weights take no gradient; only dx flows.
static void backward_stack(pn_csupernet *cs, int B, int T, const pn_subnet *s, int l0) {
    const int L = cs->L, C = cs->C, I = cs->I;
    const int64_t N = (int64_t)B * T;
    const size_t NC = (size_t)N * C;
    pn_cblock_ctx ctx = {cs->v_first, cs->dv_first, NULL, NULL};
    if (cs->dv_first) pn_cuda_memset(cs->dv_first, 0, NC * sizeof(float));
    float *dr = cs->dr;  // d/d resid[l + 1], becoming d/d h[l], then d/d resid[l]
    pn_cuda_memset(dr, 0, NC * sizeof(float));
    pn_cuda_rmsnorm_f32_bwd(dr, NULL, cs->dfinal, cs->resid[L], cs->final_norm, cs->rstd_f, N, C);
    for (int l = L - 1; l >= l0; l--) {
        const cs_layer *w = &cs->lw[l];
        const pn_cblock *cb = path_block(cs, s, l, l0);
        // MLP branch, by row chunks; the residual passes dr straight to h.
        const int kept = cs->gu && cs->gu[l];
        for (int64_t r0 = 0; r0 < N; r0 += cs->mlp_rows) {
            const int64_t rows = PN_MIN(cs->mlp_rows, N - r0);
            const float *hc = cs->h[l] + r0 * C;
            float *drc = dr + r0 * C, *dxc = cs->dx2 + r0 * C;
            pn_bf16 *gu;
            float *rstd;
            mlp_chunk_bufs(cs, l, kept, r0, &gu, &rstd);
            if (!kept) {
                // recompute h', gate, up (the same bits as the forward)
                pn_bf16 *xnc = cs->xn + r0 * C;
                pn_cuda_rmsnorm_f32_fwd(xnc, NULL, cs->rstd + r0, hc, w->post_norm, rows, C, cs->eps);
                pn_cuda_linear_fwd(gu, PN_CUDA_BF16, xnc, w->gate_up, NULL, rows, C, 2 * I);
            }
            pn_cuda_f32_to_bf16(cs->drb, drc, rows * C);
            // dmid = dr · down (written: beta 0, no zero fill and no read of the old values)
            pn_cuda_gemm(0, 0, rows, I, C, 1.0f, cs->drb, C, w->down, I, 0.0f, cs->dmid, PN_CUDA_F32, I, NULL);
            // gate / up are no longer needed: their buffers take the bf16 gradients.
            pn_cuda_swiglu_bwd_bf16(gu, gu + I, cs->dmid, gu, gu + I, 2 * I, rows, I);
            // dx = [dgate | dup] · [W_gate; W_up], one GEMM, written
            pn_cuda_gemm(0, 0, rows, C, 2 * I, 1.0f, gu, 2 * I, w->gate_up, C, 0.0f, dxc, PN_CUDA_F32, C, NULL);
            pn_cuda_rmsnorm_f32_bwd(drc, NULL, dxc, hc, w->post_norm, rstd, rows, C);
        }
        // Mixer branch; the residual passes dr (now d/d h) straight to the layer input.
        pn_cuda_rmsnorm_f32_fwd(cs->xn, NULL, cs->rstd, cs->resid[l], w->in_norm, N, C, cs->eps);
        pn_cuda_memset(cs->dx2, 0, NC * sizeof(float));
        cb->type->backward(cb, cs->dx2, dr, cs->xn, B, T, cs->mact[l], &ctx);
        if (l > l0) pn_cuda_rmsnorm_f32_bwd(dr, NULL, cs->dx2, cs->resid[l], w->in_norm, cs->rstd, N, C);
    }
}

// ---------------------------------------------------------------- steps

static double student_loss(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s, int want_grad,
                           float scale, pn_distill_parts *parts) {
    PN_ASSERT(B > 0 && T > 0);
    check_subnet(cs, s);
    const int need_logits = pn_distill_needs_logits(cs->sn->cfg.distill);
    ensure_acts(cs, B, T);
    teacher_run(cs, ids, B, T, need_logits);
    forward_stack(cs, ids, B, T, s);
    pn_distill_parts p = loss_run(cs, (int64_t)B * T, want_grad, scale);
    if (parts) *parts = p;
    return p.total;
}

double pn_csupernet_distill_step(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s,
                                 float grad_scale, pn_distill_parts *parts) {
    // Without a linear layer no trainable parameter is on the path: the gradient is 0.
    const int l0 = s ? lowest_linear(s) : -1;
    double loss = student_loss(cs, ids, B, T, s, l0 >= 0, grad_scale, parts);
    if (l0 >= 0) {
        backward_stack(cs, B, T, s, l0);
        pn_cuda_sync();
        if (cs->mlp_keep_req < 0 && !cs->mlp_keep_done) choose_kept(cs);
    }
    return loss;
}

double pn_csupernet_eval_loss(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s,
                              pn_distill_parts *parts) {
    return student_loss(cs, ids, B, T, s, 0, 1.0f, parts);
}

void pn_csupernet_logits(pn_csupernet *cs, const int64_t *ids, int B, int T, const pn_subnet *s,
                         float *host_logits) {
    PN_ASSERT(B > 0 && T > 0);
    check_subnet(cs, s);
    const int64_t N = (int64_t)B * T;
    const int C = cs->C, V = cs->V;
    forward_stack(cs, ids, B, T, s);
    // fp32 straight from the GEMM (no bf16 rounding of the logits), half a chunk at a time
    const int64_t step = PN_MAX((int64_t)1, cs->logit_rows / 2);
    float *buf = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)step * V * sizeof(float));
    for (int64_t r0 = 0; r0 < N; r0 += step) {
        const int64_t rows = PN_MIN(step, N - r0);
        pn_cuda_linear_fwd(buf, PN_CUDA_F32, cs->final + r0 * C, cs->lm_head, NULL, rows, C, V);
        pn_cuda_download(host_logits + r0 * V, buf, (size_t)rows * V * sizeof(float));
    }
    pn_cuda_free(buf);
}

// Not in the header: tests shrink the MLP and LM-head row chunks so that a tiny batch
// still runs several chunks. Frees the per-(B, T) buffers (the next step reallocates).
void pn_csupernet_set_chunk_rows(pn_csupernet *cs, int64_t mlp_rows, int64_t logit_rows);
void pn_csupernet_set_chunk_rows(pn_csupernet *cs, int64_t mlp_rows, int64_t logit_rows) {
    PN_ASSERT(mlp_rows > 0 && logit_rows >= 0);
    pn_cuda_sync();
    free_acts(cs);
    cs->mlp_rows = mlp_rows;
    cs->logit_rows_max = logit_rows;
}

pn_csupernet_mem pn_csupernet_memory(const pn_csupernet *cs) {
    pn_csupernet_mem m;
    const size_t nb = (size_t)PN_MAX(cs->n, (int64_t)1);
    m.weights = cs->bytes_weights;
    m.params = nb * (sizeof(float) + sizeof(pn_bf16));
    m.grads = nb * sizeof(float);
    m.optim = 2 * nb * sizeof(float);
    m.acts = cs->bytes_acts + cs->bytes_teacher_hidden;
    m.logits = cs->bytes_logits + cs->bytes_teacher_logits;
    return m;
}
#endif  // POSTNAS_HAVE_CUDA
