// bench_backbone.c — `postnas bench backbone`: CPU forward+backward throughput of
// a 6-layer, hidden-256 Qwen2-style model at T = 256, and how close its matmuls
// come to OpenBLAS's own sgemm rate measured in the same run.
//
// The model is written with random weights by pn_model_init_write (throughput does
// not depend on values), loaded like any HF directory, and stepped: forward, loss,
// backward. pn_gemm's profiling counters give the FLOPs and wall time of the
// top-level matmuls (projections, MLP, LM head); attention's per-head products run
// inside OpenMP regions and are counted as FLOPs only.
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "kernels/ops.h"
#include "search/bench.h"
#include "search/bench_util.h"
#include "supernet/backbone.h"
#include "supernet/model_init.h"
#include <jansson.h>
#include <omp.h>
#include <unistd.h>

// sgemm GFLOP/s at (M, N, K) as the model uses it (x · wᵀ), median of 5 after warm-up.
static double bench_sgemm(int64_t M, int64_t N, int64_t K) {
    float *a = pn_malloc((size_t)(M * K) * 4), *b = pn_malloc((size_t)(N * K) * 4), *c = pn_malloc((size_t)(M * N) * 4);
    pn_fill_normal(a, (size_t)(M * K), 0, 1, 1, 1);
    pn_fill_normal(b, (size_t)(N * K), 0, 1, 1, 2);
    pn_gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
    double t[5];
    for (int i = 0; i < 5; i++) {
        double t0 = pn_now_seconds();
        pn_gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        t[i] = pn_now_seconds() - t0;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)M * (double)N * (double)K / pn_bench_median(t, 5) / 1e9;
}

int pn_bench_backbone(const char *out_json, int steps) {
    const int B = 4, T = 256;
    pn_hf_config cfg;
    PN_ASSERT(pn_model_preset("bench-6x256", &cfg) == 0);
    char dir[] = "/tmp/postnas-bench-XXXXXX";
    if (!mkdtemp(dir)) pn_die_input("/tmp", "cannot create a temporary directory");
    pn_model_init_write(&cfg, dir, 1234, PN_F32);
    pn_backbone *bb = pn_backbone_load(dir);
    pn_backbone_alloc_grads(bb);
    int64_t *ids = pn_malloc((size_t)B * T * sizeof(int64_t));
    pn_rng r = pn_rng_make(7, 0);
    for (int i = 0; i < B * T; i++) ids[i] = (int64_t)pn_rng_below(&r, (uint64_t)cfg.vocab_size);

    // warm-up: first-touch of every buffer, OpenBLAS thread start
    pn_backbone_forward(bb, ids, B, T);
    double loss = pn_backbone_loss(bb);
    pn_backbone_backward(bb, bb->dlogits, NULL);

    double *t_step = pn_malloc((size_t)steps * sizeof(double));
    pn_gemm_stats_reset();
    pn_gemm_stats_enable(1);
    pn_progress prog;
    pn_progress_start(&prog, "bench backbone", steps);
    for (int s = 0; s < steps; s++) {
        pn_backbone_zero_grads(bb);
        double t0 = pn_now_seconds();
        pn_backbone_forward(bb, ids, B, T);
        loss = pn_backbone_loss(bb);
        pn_backbone_backward(bb, bb->dlogits, NULL);
        t_step[s] = pn_now_seconds() - t0;
        pn_progress_update(&prog, s + 1, "%.1f ms/step", 1e3 * t_step[s]);
    }
    pn_progress_finish(&prog);
    pn_gemm_stats_enable(0);
    pn_gemm_stats st = pn_gemm_stats_get();
    double total_time = 0;
    for (int s = 0; s < steps; s++) total_time += t_step[s];
    double t_med = pn_bench_median(t_step, steps);
    double tok_s = (double)(B * T) / t_med;
    double mm_gflops = st.flops / st.seconds / 1e9;
    double mm_share = st.seconds / total_time;
    int64_t params = pn_backbone_numel(bb);

    // OpenBLAS's own rate at the model's shapes (rows = B·T) and at a large square.
    struct {
        int64_t M, N, K;
        double gflops;
    } ref[] = {{B * T, cfg.intermediate_size, cfg.hidden_size, 0},
               {B * T, cfg.vocab_size, cfg.hidden_size, 0},
               {1024, 1024, 1024, 0}};
    for (size_t i = 0; i < PN_ARRAY_LEN(ref); i++) ref[i].gflops = bench_sgemm(ref[i].M, ref[i].N, ref[i].K);

    char cpu[256], date[64];
    pn_bench_cpu_name(cpu, sizeof cpu);
    pn_bench_utc_date(date, sizeof date);
    json_t *j = json_object();
    json_object_set_new(j, "benchmark", json_string("cpu-backbone"));
    json_object_set_new(j, "date", json_string(date));
    json_object_set_new(j, "cpu", json_string(cpu));
    json_object_set_new(j, "threads", json_integer(omp_get_max_threads()));
    json_t *m = json_object();
    json_object_set_new(m, "preset", json_string("bench-6x256"));
    json_object_set_new(m, "layers", json_integer(cfg.num_hidden_layers));
    json_object_set_new(m, "hidden", json_integer(cfg.hidden_size));
    json_object_set_new(m, "intermediate", json_integer(cfg.intermediate_size));
    json_object_set_new(m, "heads", json_integer(cfg.num_attention_heads));
    json_object_set_new(m, "kv_heads", json_integer(cfg.num_key_value_heads));
    json_object_set_new(m, "vocab", json_integer(cfg.vocab_size));
    json_object_set_new(m, "params", json_integer(params));
    json_object_set_new(j, "model", m);
    json_object_set_new(j, "B", json_integer(B));
    json_object_set_new(j, "T", json_integer(T));
    json_object_set_new(j, "steps", json_integer(steps));
    json_object_set_new(j, "loss", json_real(loss));
    json_object_set_new(j, "step_seconds_median", json_real(t_med));
    json_object_set_new(j, "fwd_bwd_tokens_per_s", json_real(tok_s));
    json_t *mm = json_object();
    json_object_set_new(mm, "top_level_gflop_per_step", json_real(st.flops / steps / 1e9));
    json_object_set_new(mm, "attention_gflop_per_step", json_real(st.inner_flops / steps / 1e9));
    json_object_set_new(mm, "achieved_gflops", json_real(mm_gflops));
    json_object_set_new(mm, "share_of_step_time", json_real(mm_share));
    json_object_set_new(j, "matmul", mm);
    json_t *ra = json_array();
    for (size_t i = 0; i < PN_ARRAY_LEN(ref); i++) {
        json_t *e = json_object();
        json_object_set_new(e, "M", json_integer(ref[i].M));
        json_object_set_new(e, "N", json_integer(ref[i].N));
        json_object_set_new(e, "K", json_integer(ref[i].K));
        json_object_set_new(e, "gflops", json_real(ref[i].gflops));
        json_array_append_new(ra, e);
    }
    json_object_set_new(j, "openblas_sgemm_reference", ra);
    json_object_set_new(j, "matmul_vs_sgemm_model_shape", json_real(mm_gflops / ref[0].gflops));
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char outdir[4096];
    snprintf(outdir, sizeof outdir, "%s", out_json);
    char *slash = strrchr(outdir, '/');
    if (slash) {
        *slash = 0;
        pn_mkdir_p(outdir);
    }
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    pn_write_file_atomic(out_json, text, n + 1);
    free(text);

    printf("postnas bench backbone: %d layers, hidden %d, %lld params, B=%d T=%d, %d threads\n", cfg.num_hidden_layers,
           cfg.hidden_size, (long long)params, B, T, omp_get_max_threads());
    printf("  fwd+bwd step (median of %d)   %10.1f ms   %10.0f tokens/s\n", steps, 1e3 * t_med, tok_s);
    printf("  matmuls: %.2f GFLOP/step, %.1f GFLOP/s achieved, %.0f%% of step time\n", st.flops / steps / 1e9,
           mm_gflops, 100 * mm_share);
    for (size_t i = 0; i < PN_ARRAY_LEN(ref); i++)
        printf("  OpenBLAS sgemm %5lld x %5lld x %5lld   %8.1f GFLOP/s\n", (long long)ref[i].M, (long long)ref[i].N,
               (long long)ref[i].K, ref[i].gflops);
    printf("  wrote %s\n", out_json);

    free(t_step);
    free(ids);
    pn_backbone_free(bb);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) pn_warn("could not remove %s", dir);
    return 0;
}
