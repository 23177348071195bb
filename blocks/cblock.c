// cblock.c — the CUDA block registry and the parameter plumbing every CUDA block
// shares (setup from a CPU block, upload, owned allocation for tests). The blocks
// themselves live in blocks/cblock_<type>.c; see cblock.h for the contract.
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include <string.h>

extern const pn_cblock_type pn_cblock_attn, pn_cblock_swa, pn_cblock_jetblock, pn_cblock_gated_deltanet,
    pn_cblock_deltanet, pn_cblock_gla, pn_cblock_retnet, pn_cblock_mamba2, pn_cblock_rwkv7;

static const pn_cblock_type *const CBLOCK_TYPES[] = {
    &pn_cblock_attn,  &pn_cblock_swa,     &pn_cblock_jetblock, &pn_cblock_gated_deltanet, &pn_cblock_deltanet,
    &pn_cblock_gla,   &pn_cblock_retnet,  &pn_cblock_mamba2,   &pn_cblock_rwkv7,
};

const pn_cblock_type *pn_cblock_type_find(const char *name) {
    for (size_t i = 0; i < sizeof CBLOCK_TYPES / sizeof CBLOCK_TYPES[0]; i++)
        if (strcmp(CBLOCK_TYPES[i]->name, name) == 0)
            return CBLOCK_TYPES[i]->forward ? CBLOCK_TYPES[i] : NULL;
    return NULL;
}

void pn_cblock_setup(pn_cblock *cb, const pn_block *host) {
    memset(cb, 0, sizeof *cb);
    cb->type = pn_cblock_type_find(host->type->name);
    if (!cb->type) pn_die_internal(__FILE__, __LINE__, "block type %s has no CUDA implementation", host->type->name);
    cb->cfg = host->cfg;
    cb->n_params = host->n_params;
    memcpy(cb->spec, host->spec, sizeof cb->spec);
}

void pn_cblock_upload_params(const pn_cblock *cb, const pn_block *host) {
    for (int i = 0; i < cb->n_params; i++) {
        int64_t n = pn_param_numel(&cb->spec[i]);
        PN_ASSERT(cb->w32[i] && cb->w16[i]);
        pn_cuda_upload(cb->w32[i], host->params[i], (size_t)n * sizeof(float));
        pn_cuda_f32_to_bf16(cb->w16[i], cb->w32[i], n);
    }
    pn_cuda_sync();
}

void pn_cblock_alloc_owned(pn_cblock *cb, const pn_block *host, int with_grads) {
    pn_cblock_setup(cb, host);
    for (int i = 0; i < cb->n_params; i++) {
        int64_t n = pn_param_numel(&cb->spec[i]);
        cb->w32[i] = pn_cuda_alloc(PN_CUDA_MEM_PARAMS, (size_t)n * sizeof(float));
        cb->w16[i] = pn_cuda_alloc(PN_CUDA_MEM_PARAMS, (size_t)n * sizeof(pn_bf16));
        if (with_grads) {
            cb->grads[i] = pn_cuda_alloc(PN_CUDA_MEM_GRADS, (size_t)n * sizeof(float));
            pn_cuda_memset(cb->grads[i], 0, (size_t)n * sizeof(float));
        }
    }
    pn_cblock_upload_params(cb, host);
}

float *pn_cblock_zeros(int64_t n) {
    float *d = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)n * sizeof(float));
    pn_cuda_memset(d, 0, (size_t)n * sizeof(float));
    return d;
}

pn_bf16 *pn_cblock_to_bf16(const float *src, int64_t n) {
    pn_bf16 *d = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)n * sizeof(pn_bf16));
    pn_cuda_f32_to_bf16(d, src, n);
    return d;
}

void pn_cblock_proj_bwd(const pn_cblock *b, int i, float *dx, const float *dgrad, const pn_bf16 *in, int64_t M,
                        int n_in, int n_out) {
    pn_bf16 *d16 = pn_cblock_to_bf16(dgrad, M * n_out);
    pn_cuda_linear_bwd(dx, PN_CUDA_F32, b->grads[i], NULL, d16, in, b->w16[i], M, n_in, n_out);
    pn_cuda_free(d16);
}

// The normed output (N, H·V) bf16 and its rstd (N·H), fresh scratch, from the fp32 o.
static void cblock_gated_norm(const pn_cblock *b, int p_norm, const float *o, const pn_bf16 *g, int64_t N,
                              pn_bf16 **on, float **rstd) {
    const pn_block_cfg *c = &b->cfg;
    *on = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * c->H * c->V * sizeof(pn_bf16));
    *rstd = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * c->H * sizeof(float));
    pn_cuda_rmsnorm_gated_fwd(*on, PN_CUDA_BF16, *rstd, o, PN_CUDA_F32, b->w32[p_norm], g, N * c->H, c->V,
                              c->norm_eps);
}

void pn_cblock_out_proj(const pn_cblock_ctx *ctx, pn_bf16 *y, const pn_bf16 *in, const pn_bf16 *w,
                        const pn_bf16 *bias, int64_t N, int K, int C) {
    if (ctx && ctx->resid_out)
        pn_cuda_gemm_add(0, 1, N, C, K, in, K, w, K, ctx->resid_in, ctx->resid_out, C, bias);  // (N,K)·(C,K)ᵀ
    else
        pn_cuda_linear_fwd(y, PN_CUDA_BF16, in, w, bias, N, K, C);
}

void pn_cblock_gated_out_fwd(const pn_cblock *b, const pn_cblock_ctx *ctx, int p_norm, int p_o, pn_bf16 *y,
                             const float *o, const pn_bf16 *g, int64_t N) {
    const pn_block_cfg *c = &b->cfg;
    pn_bf16 *on;
    float *rstd;
    cblock_gated_norm(b, p_norm, o, g, N, &on, &rstd);
    pn_cblock_out_proj(ctx, y, on, b->w16[p_o], NULL, N, c->H * c->V, c->C);
    pn_cuda_free(on);
    pn_cuda_free(rstd);
}

void pn_cblock_gated_out_bwd(const pn_cblock *b, int p_norm, int p_o, const float *dy, const float *o,
                             const pn_bf16 *g, int64_t N, float **d_o, float **dg) {
    const pn_block_cfg *c = &b->cfg;
    const int HV = c->H * c->V;
    // the normed output recomputed (o_proj's weight gradient reads it), then o_proj, the norm
    pn_bf16 *on;
    float *rstd;
    cblock_gated_norm(b, p_norm, o, g, N, &on, &rstd);
    pn_bf16 *dy16 = pn_cblock_to_bf16(dy, N * c->C);
    float *d_on = pn_cblock_zeros(N * HV);
    pn_cuda_linear_bwd(d_on, PN_CUDA_F32, b->grads[p_o], NULL, dy16, on, b->w16[p_o], N, HV, c->C);
    pn_cuda_free(dy16);
    pn_cuda_free(on);
    *d_o = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * HV * sizeof(float));  // written, not added to
    *dg = g ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * HV * sizeof(float)) : pn_cblock_zeros(N * HV);
    pn_cuda_rmsnorm_gated_bwd_write(*d_o, b->grads[p_norm], *dg, d_on, o, PN_CUDA_F32, b->w32[p_norm], g, rstd,
                                    N * c->H, c->V);
    pn_cuda_free(d_on);
    pn_cuda_free(rstd);
}

void pn_cblock_free_owned(pn_cblock *cb) {
    for (int i = 0; i < cb->n_params; i++) {
        pn_cuda_free(cb->w32[i]);
        pn_cuda_free(cb->w16[i]);
        pn_cuda_free(cb->grads[i]);
        cb->w32[i] = NULL;
        cb->w16[i] = NULL;
        cb->grads[i] = NULL;
    }
}
#endif  // POSTNAS_HAVE_CUDA
