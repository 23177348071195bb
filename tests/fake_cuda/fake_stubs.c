// fake_stubs.c — the rest of the CUDA surface in the fake CUDA build: the inference
// engine's kernels (kernels/cuda/pn_cuda_engine.h) and `postnas bench kernels`
// (search/bench_kernels.c, which needs cuda_runtime.h and is not compiled here).
//
// The engine's runtime helpers that are plain bookkeeping work (streams and events
// are host objects, events read the wall clock, graphs are reported unsupported so no
// caller captures one, positions and uploads are host memory); every decode /
// prefill kernel exits with "not available in the fake CUDA build": they have no CPU
// twin with the same contract, and a fake that silently approximated them would make
// engine tests pass that prove nothing.
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_engine.h"
#include "search/bench.h"
#include <time.h>

size_t pn_fake_cuda_round_request(size_t bytes);  // fake_memory.c

// ---------------------------------------------------------------- postnas bench kernels
int pn_bench_kernels(const char *out_json) {
    (void)out_json;
    pn_die_input("bench kernels", "not available in the fake CUDA build (POSTNAS_FAKE_CUDA): run it on a GPU build");
}

// ---------------------------------------------------------------- engine runtime helpers
int pn_cuda_eng_graphs_supported(void) { return 0; }
void *pn_cuda_eng_stream_create(void) { return pn_malloc(1); }  // a distinct non-NULL handle
void pn_cuda_eng_stream_destroy(void *stream) { free(stream); }
void pn_cuda_eng_graph_begin(void) { FK_UNAVAILABLE(); }
void *pn_cuda_eng_graph_end(void) { FK_UNAVAILABLE(); }
void pn_cuda_eng_graph_launch(void *exec) { FK_UNAVAILABLE(); }
void pn_cuda_eng_graph_destroy(void *exec) {
    if (exec) FK_UNAVAILABLE();
}

typedef struct {
    struct timespec t;
    int recorded;
} fk_event;

void *pn_cuda_eng_event_create(void) { return pn_calloc(1, sizeof(fk_event)); }
void pn_cuda_eng_event_destroy(void *ev) { free(ev); }
void pn_cuda_eng_event_record(void *ev) {
    fk_event *e = ev;
    clock_gettime(CLOCK_MONOTONIC, &e->t);
    e->recorded = 1;
}
double pn_cuda_eng_event_ms(void *start, void *stop) {
    const fk_event *a = start, *b = stop;
    if (!a->recorded || !b->recorded) pn_die_internal(__FILE__, __LINE__, "event_ms of an event never recorded");
    return (double)(b->t.tv_sec - a->t.tv_sec) * 1e3 + (double)(b->t.tv_nsec - a->t.tv_nsec) * 1e-6;
}

void pn_cuda_eng_upload_async(void *dst, const void *host_src, size_t bytes) {
    if (bytes) memcpy(dst, host_src, bytes);
}

void pn_cuda_eng_mem_info(size_t *free_bytes, size_t *total_bytes) {
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    *free_bytes = info.free_mem;
    *total_bytes = info.total_mem;
}

// A fixed, made-up figure (the fake has no device bandwidth to measure).
double pn_cuda_eng_copy_bandwidth(size_t bytes) {
    (void)bytes;
    return 1e11;
}

size_t pn_cuda_eng_alloc_rounded(size_t bytes) { return pn_fake_cuda_round_request(bytes); }

void pn_cuda_eng_pos_set(int64_t *pos, int64_t value) { *pos = value; }
void pn_cuda_eng_pos_add(int64_t *pos, int64_t delta) { *pos += delta; }

// ---------------------------------------------------------------- engine kernels: not available
void pn_cuda_eng_embed(float *x, const int64_t *ids, const pn_bf16 *table, int64_t N, int C) { FK_UNAVAILABLE(); }
void pn_cuda_eng_rmsnorm(pn_bf16 *y, pn_bf16 *y_lo, const float *x, int64_t ldx, const float *w, int64_t N, int C,
                         float eps) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_swiglu(pn_bf16 *h, pn_bf16 *h_lo, const float *gu, int64_t N, int I) { FK_UNAVAILABLE(); }
void pn_cuda_eng_argmax(int64_t *ids, const float *logits, int B, int V) { FK_UNAVAILABLE(); }
void pn_cuda_eng_act_rows(void *y, pn_cuda_dtype y_dt, const float *x, int64_t ldx, int64_t N, int D, int act) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_bias_rows(float *y, const pn_bf16 *b, int64_t N, int D) { FK_UNAVAILABLE(); }
int pn_cuda_eng_attn_head_dim_ok(int D) { FK_UNAVAILABLE(); }
void pn_cuda_eng_qkv_rope(pn_bf16 *q, pn_bf16 *kdst, pn_bf16 *vdst, const float *qkv, int64_t ld, const pn_bf16 *bias,
                          const float *qn, const float *kn, float qk_eps, const float *inv_freq, const int64_t *pos,
                          int nb, int T, int H, int Hkv, int D, int64_t Lc, int to_cache) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_kv_append(pn_bf16 *kc, pn_bf16 *vc, const pn_bf16 *knew, const pn_bf16 *vnew, const int64_t *pos,
                           int nb, int T, int Hkv, int D, int64_t Lc) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_swa_gather(pn_bf16 *kout, pn_bf16 *vout, const pn_bf16 *kc, const pn_bf16 *vc, const pn_bf16 *knew,
                            const pn_bf16 *vnew, int64_t pos, int64_t kpos0, int nb, int T, int Hkv, int D,
                            int64_t Lc) {
    FK_UNAVAILABLE();
}
int pn_cuda_eng_attn_part_len(int B, int Hkv, int64_t Lc) { FK_UNAVAILABLE(); }
int64_t pn_cuda_eng_attn_part_slots_bound(int B, int H, int Hkv, int64_t Lc) { FK_UNAVAILABLE(); }
void pn_cuda_eng_attn_decode(pn_bf16 *o, const pn_bf16 *q, const pn_bf16 *kc, const pn_bf16 *vc, const int64_t *pos,
                             int B, int H, int Hkv, int D, int64_t Lc, int part_len, int n_parts, float scale,
                             float *part_o, float *part_ml) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_attn_fwd_simple(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                                 const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int64_t kv_batch_stride,
                                 pn_bf16 *o) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_delta_step(const pn_cuda_delta_step_args *a, int B) { FK_UNAVAILABLE(); }
void pn_cuda_eng_conv_rows(void *y, pn_cuda_dtype y_dt, const float *x, int64_t ldx, const float *w,
                           const float *kern, int64_t kern_ld, const float *kern_bias, const float *bias,
                           const float *ring, const int64_t *pos, int nb, int T, int D, int W, int act) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_ring_update(float *ring, const float *x, int64_t ldx, const int64_t *pos, int nb, int T, int D,
                             int W) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_delta_gates(float *beta, float *g, const float *proj, int64_t ld, int b_off, int a_off,
                             const float *A_log, const float *dt_bias, int64_t N, int H) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_gated_rmsnorm(pn_bf16 *y, pn_bf16 *y_lo, const float *x, const float *w, const float *gate,
                               int64_t ldg, int64_t N, int H, int V, float eps) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_gla_scan(const pn_cuda_gla_scan_args *a, int B) { FK_UNAVAILABLE(); }
void pn_cuda_eng_gate_rmsnorm_groups(pn_bf16 *y, const float *x, const float *gate, int64_t ldg, const float *w,
                                     int64_t N, int G, int D, float eps) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_rwkv_shift(pn_bf16 *out, const pn_bf16 *x, const float *prev, const float *mu, const int64_t *pos,
                            int nb, int T, int C) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_rwkv_prev_update(float *prev, const pn_bf16 *x, int nb, int T, int C) { FK_UNAVAILABLE(); }
void pn_cuda_eng_rwkv_prep(float *w, const float *w_bias, float *k, const float *k_k, const float *k_a, float *a_io,
                           const float *a_bias, float *v, float *v_first, float *s_io, const float *v_bias, int first,
                           int64_t N, int H, int K) {
    FK_UNAVAILABLE();
}
void pn_cuda_eng_dplr_scan(const pn_cuda_dplr_scan_args *a, int B) { FK_UNAVAILABLE(); }
void pn_cuda_eng_rwkv_out(pn_bf16 *y, const float *o, const float *r, const float *k, const float *v, const float *g,
                          const float *r_k, const float *gn_w, const float *gn_b, float eps, int64_t N, int H, int K) {
    FK_UNAVAILABLE();
}
