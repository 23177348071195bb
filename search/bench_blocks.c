// bench_blocks.c — `postnas bench blocks`: CPU forward+backward throughput of every
// registered token mixer at B = 4, T = 512, C = 256, chunked vs recurrent.
//
// Each block gets its reference defaults at C = 256 (recorded as "dims"), random
// parameters (throughput does not depend on values) and a random input. A step is
// forward + backward with all parameter gradients. The recurrence form is chosen
// with pn_blocks_set_chunk (blocks/block_chunk.h): chunk 64 ("chunked") and 0
// ("recurrent"); blocks without a recurrence (attn, swa) ignore it, so their two
// numbers measure the same code. One warm-up step, then the median of `steps`
// timed steps. flops_per_token is the block's own forward count at context T/2,
// the mean position of a training sequence. The table goes to the log (stderr,
// pn_info) since library code keeps stdout clean; the JSON is written atomically.
#include "blocks/block.h"
#include "blocks/block_chunk.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "search/bench.h"
#include "search/bench_util.h"
#include <jansson.h>
#include <omp.h>
#include <unistd.h>

#define BB_B 4
#define BB_T 512
#define BB_C 256

typedef struct {
    pn_block b;
    float *x, *y, *dy, *dx, *act, *scratch;
} bench_block;

static void bench_block_make(bench_block *bb, const pn_block_type *type) {
    pn_block_cfg cfg = {.C = BB_C};
    pn_block_setup(&bb->b, type, &cfg);
    for (int i = 0; i < bb->b.n_params; i++) {
        size_t n = (size_t)pn_param_numel(&bb->b.spec[i]);
        bb->b.params[i] = pn_malloc(n * sizeof(float));
        bb->b.grads[i] = pn_calloc(n, sizeof(float));
    }
    pn_block_init_params(&bb->b, 1234);
    // zero-initialised matrices (rwkv7's o_proj, LoRA inputs) get values, so no
    // path runs on an all-zero operand
    for (int i = 0; i < bb->b.n_params; i++)
        if (bb->b.spec[i].ndim == 2 && bb->b.spec[i].init == PN_INIT_ZERO)
            pn_fill_normal(bb->b.params[i], (size_t)pn_param_numel(&bb->b.spec[i]), 0.0f, 0.02f, 99, (uint64_t)i);
    size_t N = (size_t)BB_B * BB_T * BB_C;
    bb->x = pn_malloc(N * sizeof(float));
    bb->dy = pn_malloc(N * sizeof(float));
    bb->y = pn_malloc(N * sizeof(float));
    bb->dx = pn_malloc(N * sizeof(float));
    pn_fill_normal(bb->x, N, 0.0f, 1.0f, 7, 1);
    pn_fill_normal(bb->dy, N, 0.0f, 1.0f, 7, 2);
    bb->act = pn_malloc(PN_MAX(type->act_floats(&bb->b.cfg, BB_B, BB_T), (size_t)1) * sizeof(float));
    bb->scratch = pn_malloc(PN_MAX(type->scratch_floats(&bb->b.cfg, BB_B, BB_T), (size_t)1) * sizeof(float));
}

static void bench_block_free(bench_block *bb) {
    for (int i = 0; i < bb->b.n_params; i++) free(bb->b.params[i]), free(bb->b.grads[i]);
    free(bb->x), free(bb->y), free(bb->dy), free(bb->dx), free(bb->act), free(bb->scratch);
}

// One forward + backward step, seconds.
static double bench_block_step(bench_block *bb) {
    for (int i = 0; i < bb->b.n_params; i++)
        memset(bb->b.grads[i], 0, (size_t)pn_param_numel(&bb->b.spec[i]) * sizeof(float));
    memset(bb->dx, 0, (size_t)BB_B * BB_T * BB_C * sizeof(float));
    pn_block_ctx ctx = {0};  // a lone rwkv7 layer is its own first layer
    double t0 = pn_now_seconds();
    bb->b.type->forward(&bb->b, bb->y, bb->x, BB_B, BB_T, bb->act, bb->scratch, &ctx);
    bb->b.type->backward(&bb->b, bb->dx, bb->dy, bb->x, BB_B, BB_T, bb->act, bb->scratch, &ctx);
    return pn_now_seconds() - t0;
}

// Median tokens/s over `steps` timed steps after one warm-up, at the given chunk.
static double bench_block_rate(bench_block *bb, int chunk, int steps, double *t_step) {
    pn_blocks_set_chunk(chunk);
    bench_block_step(bb);
    for (int s = 0; s < steps; s++) t_step[s] = bench_block_step(bb);
    pn_blocks_set_chunk(PN_BLOCKS_DEFAULT_CHUNK);
    return (double)BB_B * BB_T / pn_bench_median(t_step, steps);
}

// The cfg fields a reader needs to rebuild the block (nonzero ones only).
static json_t *dims_json(const pn_block_cfg *c) {
    json_t *d = json_object();
    struct {
        const char *key;
        int v;
    } f[] = {{"C", c->C},
             {"H", c->H},
             {"H_kv", c->H_kv},
             {"K", c->K},
             {"V", c->V},
             {"conv_size", c->conv_size},
             {"window", c->window},
             {"gen_reduction", c->gen_reduction},
             {"n_groups", c->n_groups},
             {"d_state", c->d_state},
             {"expand", c->expand},
             {"lora_w", c->lora_w},
             {"lora_a", c->lora_a},
             {"lora_v", c->lora_v},
             {"lora_g", c->lora_g}};
    for (size_t i = 0; i < PN_ARRAY_LEN(f); i++)
        if (f[i].v) json_object_set_new(d, f[i].key, json_integer(f[i].v));
    return d;
}

int pn_bench_blocks(const char *device, const char *out_json, int steps) {
    if (!device) device = "cpu";
    if (strcmp(device, "cpu") != 0)
        pn_die_input("--device", "the blocks benchmark runs on the CPU only, got device '%s'", device);
    if (steps < 1) pn_die_input("--steps", "need at least 1 timed step, got %d", steps);
    int n_types = pn_block_type_count();
    if (n_types == 0) pn_warn("bench blocks: no block types are registered");
    double *t_step = pn_malloc((size_t)steps * sizeof(double));

    char date[64];
    pn_bench_utc_date(date, sizeof date);
    json_t *j = json_object();
    json_object_set_new(j, "benchmark", json_string("cpu-blocks"));
    json_object_set_new(j, "device", json_string(device));
    json_object_set_new(j, "date", json_string(date));
    json_object_set_new(j, "host_cores", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(j, "threads", json_integer(omp_get_max_threads()));
    json_object_set_new(j, "B", json_integer(BB_B));
    json_object_set_new(j, "T", json_integer(BB_T));
    json_object_set_new(j, "C", json_integer(BB_C));
    json_object_set_new(j, "steps", json_integer(steps));
    json_object_set_new(j, "chunk", json_integer(PN_BLOCKS_DEFAULT_CHUNK));
    json_object_set_new(j, "flops_context", json_integer(BB_T / 2));
    json_t *arr = json_array();

    pn_info("bench blocks: B=%d T=%d C=%d, fwd+bwd, median of %d steps, %d threads", BB_B, BB_T, BB_C, steps,
            omp_get_max_threads());
    pn_info("%-16s %10s %12s %14s %14s %10s", "block", "params", "MFLOP/token", "chunked tok/s", "recurr. tok/s",
            "ratio");
    for (int i = 0; i < n_types; i++) {
        const pn_block_type *type = pn_block_type_at(i);
        bench_block bb;
        bench_block_make(&bb, type);
        double chunked = bench_block_rate(&bb, PN_BLOCKS_DEFAULT_CHUNK, steps, t_step);
        double recurrent = bench_block_rate(&bb, 0, steps, t_step);
        double flops = type->flops_per_token(&bb.b.cfg, BB_T / 2);
        int64_t params = pn_block_param_count(&bb.b);
        pn_info("%-16s %10lld %12.2f %14.0f %14.0f %10.2f", type->name, (long long)params, flops / 1e6, chunked,
                recurrent, chunked / recurrent);
        json_t *e = json_object();
        json_object_set_new(e, "name", json_string(type->name));
        json_object_set_new(e, "dims", dims_json(&bb.b.cfg));
        json_object_set_new(e, "params", json_integer(params));
        json_object_set_new(e, "chunked_tokens_per_s", json_real(chunked));
        json_object_set_new(e, "recurrent_tokens_per_s", json_real(recurrent));
        json_object_set_new(e, "flops_per_token", json_real(flops));
        json_array_append_new(arr, e);
        bench_block_free(&bb);
    }
    json_object_set_new(j, "blocks", arr);

    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char outdir[4096];
    snprintf(outdir, sizeof outdir, "%s", out_json);
    char *slash = strrchr(outdir, '/');
    if (slash && slash != outdir) {
        *slash = 0;
        pn_mkdir_p(outdir);
    }
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    pn_write_file_atomic(out_json, text, n + 1);
    pn_info("bench blocks: wrote %s", out_json);
    free(text);
    free(t_step);
    return 0;
}
