// demo.c — see demo.h. Output goes to stdout (this is a command's product);
// progress and timing notes go through the logger.
#include "search/demo.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "supernet/backbone.h"
#include "supernet/backbone_summary.h"
#include <jansson.h>
#include <math.h>
#include <omp.h>

// (B, T) ids from a safetensors file's input_ids, checked against the vocabulary.
static int64_t *demo_load_ids(const char *path, int vocab, int *B, int *T) {
    pn_safetensors *st = pn_st_open(path);
    int nd;
    int64_t shape[PN_MAX_DIMS];
    int64_t *ids = pn_st_load_i64(st, "input_ids", &nd, shape);
    if (nd != 2) pn_die_input(path, "tensor input_ids: expected 2 dims [B, T], found %d", nd);
    *B = (int)shape[0];
    *T = (int)shape[1];
    for (int64_t i = 0; i < shape[0] * shape[1]; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            pn_die_input(path, "tensor input_ids: id %lld at [%lld, %lld] is outside the vocabulary [0, %d)",
                         (long long)ids[i], (long long)(i / shape[1]), (long long)(i % shape[1]), vocab);
    pn_st_close(st);
    return ids;
}

int pn_demo_run(const pn_job_config *c) {
    pn_log_set_default_level((pn_log_level)c->run.log_level);
    if (c->run.threads > 0) omp_set_num_threads(c->run.threads);
    pn_mkdir_p(c->run.out_dir);
    pn_job_config_write_resolved(c, c->run.out_dir);

    double t0 = pn_now_seconds();
    pn_backbone *bb = pn_backbone_load(c->model.path);
    pn_info("loaded %s in %.2f s", c->model.path, pn_now_seconds() - t0);
    printf("== postnas demo: %s ==\n", c->run.name);
    pn_backbone_print_summary(bb, c->model.path, stdout);

    int B = c->demo.batch, T = c->demo.seq_len;
    int64_t *ids;
    if (c->demo.inputs && c->demo.inputs[0]) {
        ids = demo_load_ids(c->demo.inputs, bb->V, &B, &T);
    } else {
        ids = pn_malloc((size_t)B * T * sizeof(int64_t));
        pn_rng r = pn_rng_make((uint64_t)c->run.seed, 0x64656d6f);
        for (int i = 0; i < B * T; i++) ids[i] = (int64_t)pn_rng_below(&r, (uint64_t)bb->V);
    }
    pn_backbone_alloc_grads(bb);
    t0 = pn_now_seconds();
    pn_backbone_forward(bb, ids, B, T);
    double loss = pn_backbone_loss(bb);
    double t_fwd = pn_now_seconds() - t0;
    t0 = pn_now_seconds();
    pn_backbone_backward(bb, bb->dlogits, NULL);
    double t_bwd = pn_now_seconds() - t0;
    double gn = 0;
    for (int64_t i = 0; i < pn_backbone_numel(bb); i++) gn += (double)bb->grads[i] * bb->grads[i];
    gn = sqrt(gn);

    printf("\nforward on %d x %d tokens (%s)\n", B, T,
           c->demo.inputs && c->demo.inputs[0] ? c->demo.inputs : "random ids from run.seed");
    printf("  loss (mean next-token cross-entropy): %.6f   (uniform guess: ln V = %.4f)\n", loss, log((double)bb->V));
    printf("  gradient global norm:                 %.6g\n", gn);
    printf("  forward %.1f ms, backward %.1f ms, %d threads\n", 1e3 * t_fwd, 1e3 * t_bwd, omp_get_max_threads());

    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(c->model.path));
    json_object_set_new(j, "B", json_integer(B));
    json_object_set_new(j, "T", json_integer(T));
    json_object_set_new(j, "loss", json_real(loss));
    json_object_set_new(j, "grad_norm", json_real(gn));
    json_object_set_new(j, "forward_seconds", json_real(t_fwd));
    json_object_set_new(j, "backward_seconds", json_real(t_bwd));
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char path[4096];
    pn_path_join(path, sizeof path, c->run.out_dir, "demo.json");
    pn_write_file_atomic(path, text, strlen(text));
    free(text);
    printf("  wrote %s and config.resolved.yaml\n", path);
    free(ids);
    pn_backbone_free(bb);
    return 0;
}
