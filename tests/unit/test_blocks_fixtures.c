// test_blocks_fixtures.c — the delta-rule blocks against their reference layers.
//
// layers/{jetblock, gated_deltanet, deltanet}.safetensors hold the weights (param.*),
// an input x and upstream gradient dy, and the float64 ground truth y, dx and
// grad.* (gradients of sum(y·dy)) from restatements of the official / fla modules.
// The block runs through the pn_block interface in fp32 with the chunked op used
// in training, and again with the recurrent form, and every output must agree with
// the fixture to 1e-4 relative.
#include "blocks/block.h"
#include "blocks/block_util.h"
#include "core/safetensors.h"
#include "test_util.h"

static void check_fixture(const char *file, const char *type_name, pn_block_cfg cfg, int chunk) {
    const pn_block_type *type = pn_block_type_find(type_name);
    CHECK(type != NULL, "block type %s not registered", type_name);
    if (!type) return;
    pn_safetensors *st = pn_st_open(fixture_path(file));
    int nd;
    int64_t xs[PN_MAX_DIMS];
    float *x = pn_st_load_f32(st, "x", &nd, xs);
    int B = (int)xs[0], T = (int)xs[1], C = (int)xs[2];
    cfg.C = C;
    pn_block blk;
    pn_block_setup(&blk, type, &cfg);
    for (int i = 0; i < blk.n_params; i++) {
        char name[128];
        snprintf(name, sizeof name, "param.%s", blk.spec[i].name);
        int64_t n = pn_param_numel(&blk.spec[i]);
        blk.params[i] = pn_malloc((size_t)n * sizeof(float));
        blk.grads[i] = pn_calloc((size_t)n, sizeof(float));
        pn_st_read_f32(st, name, blk.params[i], blk.spec[i].ndim, blk.spec[i].shape);
    }
    size_t N = (size_t)B * T * C;
    float *dy = pn_st_load_f32(st, "dy", NULL, NULL);
    float *y_ref = pn_st_load_f32(st, "y", NULL, NULL);
    float *dx_ref = pn_st_load_f32(st, "dx", NULL, NULL);
    float *y = pn_malloc(N * sizeof(float)), *dx = pn_calloc(N, sizeof(float));
    float *act = pn_malloc(type->act_floats(&blk.cfg, B, T) * sizeof(float));
    float *scratch = pn_malloc(type->scratch_floats(&blk.cfg, B, T) * sizeof(float));
    pn_block_ctx ctx = {0};

    pn_blocks_set_chunk(chunk);
    type->forward(&blk, y, x, B, T, act, scratch, &ctx);
    type->backward(&blk, dx, dy, x, B, T, act, scratch, &ctx);
    pn_blocks_set_chunk(PN_BLOCKS_DEFAULT_CHUNK);

    double e = rel_err(y, y_ref, N), worst = e;
    CHECK(e <= 1e-4, "%s chunk %d: y rel err %.3e", type_name, chunk, e);
    e = rel_err(dx, dx_ref, N);
    worst = e > worst ? e : worst;
    CHECK(e <= 1e-4, "%s chunk %d: dx rel err %.3e", type_name, chunk, e);
    printf("%s (chunk %d): y %.2e  dx %.2e", type_name, chunk, rel_err(y, y_ref, N), e);
    for (int i = 0; i < blk.n_params; i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", blk.spec[i].name);
        int64_t n = pn_param_numel(&blk.spec[i]);
        float *g_ref = pn_malloc((size_t)n * sizeof(float));
        pn_st_read_f32(st, name, g_ref, blk.spec[i].ndim, blk.spec[i].shape);
        e = rel_err(blk.grads[i], g_ref, (size_t)n);
        worst = e > worst ? e : worst;
        CHECK(e <= 1e-4, "%s chunk %d: %s rel err %.3e", type_name, chunk, name, e);
        free(g_ref);
        free(blk.params[i]);
        free(blk.grads[i]);
    }
    printf("  worst over y, dx, %d grads: %.2e\n", blk.n_params, worst);
    free(x), free(dy), free(y_ref), free(dx_ref), free(y), free(dx), free(act), free(scratch);
    pn_st_close(st);
}

int main(void) {
    for (int chunk = 64; chunk >= 0; chunk -= 64) {
        pn_block_cfg jet = {.H = 2, .K = 16, .V = 32, .conv_size = 4, .gen_reduction = 8};
        check_fixture("layers/jetblock.safetensors", "jetblock", jet, chunk);
        pn_block_cfg gdn = {.H = 2, .K = 16, .V = 32, .conv_size = 4};
        check_fixture("layers/gated_deltanet.safetensors", "gated_deltanet", gdn, chunk);
        pn_block_cfg dn = {.H = 2, .K = 32, .V = 32, .conv_size = 4};
        check_fixture("layers/deltanet.safetensors", "deltanet", dn, chunk);
    }
    return test_summary("test_blocks_fixtures");
}
