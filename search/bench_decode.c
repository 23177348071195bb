// bench_decode.c — `postnas bench decode`: prefill and decode throughput of the
// hybrid inference engine (search/engine.h) on the CPU, next to the floor that
// memory bandwidth puts under a decode step.
//
// A decode step of a small-batch LLM is memory bound: every weight is read once
// and every layer's cache or recurrent state is read (and one row / the whole
// state written) while the arithmetic per byte is tiny. So the benchmark measures
// the machine's copy bandwidth in the same run (a large memcpy split over the
// OpenMP threads, bytes read + written over time), counts the bytes a step must
// move (pn_decode_step_traffic) and reports measured step time over bytes /
// bandwidth. A ratio near 1 means decode runs at the memory's pace; far above 1
// means compute or overheads dominate.
//
// --batch max picks the largest batch whose memory fits: weights + decode states
// at the engine's max_context + engine activations for one prefill chunk + the
// prompt, against MemAvailable less a margin (pn_decode_budget), or against an
// explicit limit (tests). The accounting mirrors pn_engine_create's allocations
// and is an upper bound of them (checked by tests/unit/test_bench_decode.c).
//
// The model comes from pn_hybrid_load: a plain HF directory (all attention) or an
// exported hybrid (Jet-Nemotron layout) whose layers run their own mixers.
//
// --device cuda (pn_bench_decode_cuda, at the end of this file) runs the CUDA engine
// (search/engine_cuda.h) the same way, with device-side accounting: the max batch
// from free device memory and the engine's exact byte counts, the copy bandwidth
// from a device-to-device cudaMemcpy, traffic at device storage sizes (bf16 weights
// and KV, fp32 recurrent states), per-step times from CUDA events. Prefilling every
// sequence of a large batch at 64K would take minutes and tells nothing new, so only
// the first prefill_seqs sequences are prefilled (and timed); the rest of the batch
// gets copies of their states, which is all decode's memory traffic depends on.
#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "search/bench.h"
#include "search/engine.h"
#include "search/engine_cuda.h"
#include "supernet/hybrid.h"
#include <jansson.h>
#include <omp.h>
#include <sys/resource.h>
#include <time.h>

#define DECODE_WHERE "bench decode"
#define MIB ((size_t)1 << 20)

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t pn_decode_batch_bytes(const pn_backbone *bb, int batch, int64_t max_context, int chunk) {
    if (batch <= 0) return 0;
    const size_t B = (size_t)batch, C = (size_t)bb->C, I = (size_t)bb->I, V = (size_t)bb->V;
    const int tc = (int)PN_MIN((int64_t)chunk, max_context);  // pn_engine_create clamps the chunk
    const size_t N = B * (size_t)tc;
    size_t scratch = 0;
    for (int l = 0; l < bb->n_layers; l++) {
        const pn_block *m = bb->layers[l].mixer;
        scratch = PN_MAX(scratch, m->type->scratch_floats(&m->cfg, batch, tc));
        scratch = PN_MAX(scratch, m->type->scratch_floats(&m->cfg, batch, 1));
    }
    // The engine's activation buffers (engine.c engine_layout), each 64-byte rounded.
    size_t acts = round64(N * sizeof(int64_t))              // ids
                  + 4 * round64(N * C * sizeof(float))      // x, xn, y, v_first
                  + round64(N * sizeof(float))              // rstd
                  + 2 * round64(N * I * sizeof(float))      // gate, up
                  + 2 * round64(B * C * sizeof(float))      // last, last_n
                  + round64(B * V * sizeof(float))          // logits
                  + round64(scratch * sizeof(float))        // mixers' scratch
                  + round64(B * sizeof(int64_t))            // next
                  + round64(B * sizeof(int));               // done
    size_t states = pn_engine_state_bytes_for(bb, batch, max_context);
    size_t prompt = B * (size_t)max_context * sizeof(int64_t) + B * sizeof(int64_t);  // ids + next ids
    return states + acts + prompt;
}

static size_t decode_weight_bytes(const pn_backbone *bb) { return (size_t)pn_backbone_numel(bb) * sizeof(float); }

int pn_decode_max_batch(const pn_backbone *bb, int64_t max_context, int chunk, size_t budget, int max_batch) {
    const size_t w = decode_weight_bytes(bb);
    if (w > budget) return 0;
    // need(B) grows with B, so bisect on [lo fits, hi does not].
    int lo = 0, hi = max_batch + 1;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (pn_decode_batch_bytes(bb, mid, max_context, chunk) <= budget - w)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

size_t pn_decode_budget(size_t avail) {
    size_t margin = PN_MAX(avail / 10, 256 * MIB);
    return avail > margin ? avail - margin : 0;
}

pn_decode_traffic pn_decode_step_traffic(const pn_backbone *bb, int batch, int64_t ctx) {
    pn_decode_traffic t = {0, 0, 0, 0};
    const double B = batch, fb = sizeof(float);
    t.weights = (double)decode_weight_bytes(bb);
    if (!bb->tied) t.weights -= fb * (double)bb->V * bb->C - fb * B * bb->C;  // only the looked-up rows
    for (int l = 0; l < bb->n_layers; l++) {
        const pn_block *m = bb->layers[l].mixer;
        pn_state_size s = m->type->state_size(&m->cfg, ctx);
        // A cache row's elements: the state at L = 1 holds exactly one row (K and V).
        int64_t row = m->type->state_size(&m->cfg, 1).kv;
        t.state_read += fb * B * (double)(s.kv + s.rec + s.conv);
        t.state_write += fb * B * (double)(row + s.rec + s.conv);
    }
    t.total = t.weights + t.state_read + t.state_write;
    return t;
}

// ---------------------------------------------------------------- machine

static size_t mem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) pn_die_input("/proc/meminfo", "cannot open it to read MemAvailable (pass an explicit --batch)");
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            found = 1;
            break;
        }
    fclose(f);
    if (!found) pn_die_input("/proc/meminfo", "no 'MemAvailable: N kB' line (pass an explicit --batch)");
    return (size_t)kb * 1024;
}

static void cpu_model_name(char *out, size_t n) {
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *p = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && p) {
            p += 2;
            p[strcspn(p, "\n")] = 0;
            snprintf(out, n, "%s", p);
            break;
        }
    }
    fclose(f);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Copy bandwidth in bytes/s (read + written) of `bytes`-sized copies split over
// the OpenMP threads, as decode's own loops are: median of 5 after a warm-up
// that also faults the pages in.
static double copy_bandwidth(size_t bytes) {
    char *src = pn_malloc(bytes), *dst = pn_malloc(bytes);
    memset(src, 1, bytes);
    memset(dst, 0, bytes);
    double t[5];
    for (int rep = -1; rep < 5; rep++) {
        double t0 = pn_now_seconds();
#pragma omp parallel
        {
            const size_t nt = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
            const size_t per = (bytes / nt) & ~(size_t)63;
            const size_t off = id * per, n = id + 1 == nt ? bytes - off : per;
            memcpy(dst + off, src + off, n);
        }
        if (rep >= 0) t[rep] = pn_now_seconds() - t0;
    }
    volatile char sink = dst[bytes / 2];
    (void)sink;
    free(src);
    free(dst);
    return 2.0 * (double)bytes / median(t, 5);
}

// ---------------------------------------------------------------- benchmark


// The benchmarked model's shape, for the JSON rows of both devices.
static json_t *model_config_json(const pn_backbone *bb) {
    json_t *m = json_object();
    json_object_set_new(m, "model_type", json_string(bb->cfg.model_type));
    json_object_set_new(m, "layers", json_integer(bb->n_layers));
    json_object_set_new(m, "hidden", json_integer(bb->C));
    json_object_set_new(m, "intermediate", json_integer(bb->I));
    json_object_set_new(m, "vocab", json_integer(bb->V));
    json_object_set_new(m, "params", json_integer(pn_backbone_numel(bb)));
    json_t *mixers = json_array();
    for (int l = 0; l < bb->n_layers; l++) json_array_append_new(mixers, json_string(bb->layers[l].mixer->type->name));
    json_object_set_new(m, "mixers", mixers);
    return m;
}

static void json_write(const char *path, json_t *j) {
    char *text = json_dumps(j, JSON_INDENT(2));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        if (dir[0]) pn_mkdir_p(dir);
    }
    size_t n = strlen(text);
    text = pn_realloc(text, n + 2);
    text[n] = '\n';
    pn_write_file_atomic(path, text, n + 1);
    free(text);
}

int pn_bench_decode(const pn_bench_decode_args *a) {
    if (!a->model_dir) pn_die_input(DECODE_WHERE, "no model directory given");
    if (a->device && strcmp(a->device, "cuda") == 0) return pn_bench_decode_cuda(a, 8, 8, NULL, 0);
    if (strcmp(a->device ? a->device : "cpu", "cpu") != 0)
        pn_die_input(DECODE_WHERE, "device '%s' is not available (expected cpu or cuda)", a->device);
    if (a->context < 1 || a->prefill_chunk < 1 || a->steps < 1 || a->warmup < 0 || a->batch < 0)
        pn_die_input(DECODE_WHERE,
                     "context, prefill chunk and steps must be >= 1, warm-up and batch >= 0 (got %lld, %d, %d, %d, %d)",
                     (long long)a->context, a->prefill_chunk, a->steps, a->warmup, a->batch);
    const int64_t L = a->context, max_ctx = L + a->warmup + a->steps;
    pn_backbone *bb = pn_hybrid_load(a->model_dir);
    const size_t weight_bytes = decode_weight_bytes(bb);

    size_t avail = a->mem_limit_bytes ? a->mem_limit_bytes : mem_available_bytes();
    size_t budget = a->mem_limit_bytes ? a->mem_limit_bytes : pn_decode_budget(avail);

    // Bandwidth first, while the engine's memory is still free; its buffers are
    // sized to dwarf the last-level cache but stay inside the budget.
    size_t probe = PN_MIN((size_t)256 * MIB, PN_MAX(budget / 4, 4 * MIB));
    const double bw = copy_bandwidth(probe);

    int B = a->batch;
    if (B == 0) {
        B = pn_decode_max_batch(bb, max_ctx, a->prefill_chunk, budget, 1 << 20);
        if (B == 0)
            pn_die_input(a->model_dir,
                         "weights (%.1f MiB) + one sequence at context %lld (%.1f MiB) exceed the memory budget "
                         "(%.1f MiB)",
                         weight_bytes / (double)MIB, (long long)max_ctx,
                         pn_decode_batch_bytes(bb, 1, max_ctx, a->prefill_chunk) / (double)MIB, budget / (double)MIB);
        pn_info("bench decode: --batch max = %d (budget %.1f MiB of %.1f MiB available)", B, budget / (double)MIB,
                avail / (double)MIB);
    }
    const size_t batch_bytes = pn_decode_batch_bytes(bb, B, max_ctx, a->prefill_chunk);
    if (weight_bytes + batch_bytes > avail)
        pn_warn("bench decode: batch %d needs %.1f MiB, more than the %.1f MiB available", B,
                (weight_bytes + batch_bytes) / (double)MIB, avail / (double)MIB);

    pn_engine *e = pn_engine_create(bb, B, max_ctx, a->prefill_chunk);
    const size_t state_bytes = pn_engine_state_bytes(e);
    if (state_bytes) memset(e->states.base, 0, state_bytes);  // page faults stay out of the timings
    int64_t *ids = pn_malloc((size_t)B * (size_t)L * sizeof(int64_t));
    int64_t *next = pn_malloc((size_t)B * sizeof(int64_t));
    pn_rng r = pn_rng_make(4242, 0);
    for (int64_t i = 0; i < (int64_t)B * L; i++) ids[i] = (int64_t)pn_rng_below(&r, (uint64_t)bb->V);

    double t0 = pn_now_seconds();
    pn_engine_prefill(e, ids, (int)L);
    const double t_prefill = pn_now_seconds() - t0;

    double *t_step = pn_malloc((size_t)a->steps * sizeof(double));
    pn_progress prog;
    pn_progress_start(&prog, "bench decode", a->warmup + a->steps);
    for (int s = 0; s < a->warmup + a->steps; s++) {
        for (int b = 0; b < B; b++) next[b] = (int64_t)pn_rng_below(&r, (uint64_t)bb->V);
        double ts = pn_now_seconds();
        pn_engine_decode(e, next);
        double dt = pn_now_seconds() - ts;
        if (s >= a->warmup) t_step[s - a->warmup] = dt;
        pn_progress_update(&prog, s + 1, "%.2f ms/step", 1e3 * dt);
    }
    pn_progress_finish(&prog);
    const double t_med = median(t_step, a->steps), t_min = t_step[0];  // median() sorted them

    // Traffic at the cache length of the middle timed step.
    const int64_t ctx_mid = L + a->warmup + a->steps / 2;
    pn_decode_traffic tr = pn_decode_step_traffic(bb, B, ctx_mid);
    const double floor_s = tr.total / bw;
    pn_bench_decode_result res = {
        .batch = B,
        .threads = omp_get_max_threads(),
        .prefill_tokens_per_s = (double)B * (double)L / t_prefill,
        .decode_tokens_per_s = (double)B / t_med,
        .decode_step_ms_median = 1e3 * t_med,
        .decode_step_ms_min = 1e3 * t_min,
        .weight_bytes = (double)weight_bytes,
        .state_bytes = (double)state_bytes,
        .activation_bytes = (double)e->acts.cap,
        .step_bytes = tr.total,
        .bandwidth_GBps = bw / 1e9,
        .floor_step_ms = 1e3 * floor_s,
        .ratio_to_floor = t_med / floor_s,
    };
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    char cpu[256], date[64];
    cpu_model_name(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_t *j = json_object();
    json_object_set_new(j, "benchmark", json_string("decode"));
    json_object_set_new(j, "device", json_string("cpu"));
    json_object_set_new(j, "cpu", json_string(cpu));
    json_object_set_new(j, "threads", json_integer(res.threads));
    json_object_set_new(j, "date", json_string(date));
    json_object_set_new(j, "model", json_string(a->model_dir));
    json_object_set_new(j, "model_config", model_config_json(bb));
    json_object_set_new(j, "context", json_integer(L));
    json_object_set_new(j, "batch", json_integer(B));
    json_object_set_new(j, "batch_requested", a->batch ? json_integer(a->batch) : json_string("max"));
    json_object_set_new(j, "prefill_chunk", json_integer(e->chunk));
    json_object_set_new(j, "warmup_steps", json_integer(a->warmup));
    json_object_set_new(j, "steps", json_integer(a->steps));
    json_object_set_new(j, "prefill_seconds", json_real(t_prefill));
    json_object_set_new(j, "prefill_tokens_per_s", json_real(res.prefill_tokens_per_s));

    json_object_set_new(j, "decode_tokens_per_s", json_real(res.decode_tokens_per_s));
    json_object_set_new(j, "decode_step_ms_median", json_real(res.decode_step_ms_median));
    json_object_set_new(j, "decode_step_ms_min", json_real(res.decode_step_ms_min));
    json_object_set_new(j, "state_bytes", json_integer((json_int_t)state_bytes));
    json_object_set_new(j, "weight_bytes", json_integer((json_int_t)weight_bytes));
    json_object_set_new(j, "activation_bytes", json_integer((json_int_t)e->acts.cap));
    json_object_set_new(j, "memory_bytes", json_integer((json_int_t)(weight_bytes + batch_bytes)));
    json_object_set_new(j, "peak_rss_bytes", json_integer((json_int_t)ru.ru_maxrss * 1024));
    json_object_set_new(j, "memory_available_bytes", json_integer((json_int_t)avail));
    json_object_set_new(j, "memory_budget_bytes", json_integer((json_int_t)budget));
    json_t *tj = json_object();
    json_object_set_new(tj, "context", json_integer(ctx_mid));
    json_object_set_new(tj, "weights_read", json_real(tr.weights));
    json_object_set_new(tj, "state_read", json_real(tr.state_read));
    json_object_set_new(tj, "state_written", json_real(tr.state_write));
    json_object_set_new(tj, "total", json_real(tr.total));
    json_object_set_new(j, "step_bytes", tj);
    json_object_set_new(j, "bandwidth_probe_bytes", json_integer((json_int_t)probe));
    json_object_set_new(j, "bandwidth_GBps", json_real(res.bandwidth_GBps));
    json_object_set_new(j, "floor_step_ms", json_real(res.floor_step_ms));
    json_object_set_new(j, "ratio_to_floor", json_real(res.ratio_to_floor));
    json_write(a->out_json, j);
    json_decref(j);

    pn_info("bench decode: B %d, context %lld: prefill %.0f tok/s, decode %.0f tok/s (%.3f ms/step, floor %.3f ms, "
            "x%.2f); wrote %s",
            B, (long long)L, res.prefill_tokens_per_s, res.decode_tokens_per_s, res.decode_step_ms_median,
            res.floor_step_ms, res.ratio_to_floor, a->out_json);
    if (a->result) *a->result = res;

    free(t_step);
    free(next);
    free(ids);
    pn_engine_free(e);
    pn_backbone_free(bb);
    return 0;
}

// ---------------------------------------------------------------- CUDA

size_t pn_cuda_decode_budget(size_t free_bytes) {
    const size_t margin = PN_MAX(free_bytes / 32, (size_t)1 << 30);
    return free_bytes > margin ? free_bytes - margin : 0;
}

#ifndef POSTNAS_HAVE_CUDA

int pn_bench_decode_cuda(const pn_bench_decode_args *a, int prefill_batch, int prefill_seqs, const char *label,
                         int delta_chunked) {
    (void)a, (void)prefill_batch, (void)prefill_seqs, (void)label, (void)delta_chunked;
    pn_die_input(DECODE_WHERE, "--device cuda: postnas was built without CUDA (rebuild with -DPOSTNAS_CUDA=ON)");
}

#else
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_engine.h"
#include "kernels/cuda/pn_cuda_ops.h"

#if defined(__has_include)
#if __has_include("kernels/cuda/pn_cuda_attn.h")
#define DECODE_PREFILL_ATTN "cudnn"
#endif
#endif
#ifndef DECODE_PREFILL_ATTN
#define DECODE_PREFILL_ATTN "reference (no cuDNN attention in this build: slow)"
#endif

// The row's key in the output file: label, context and the requested batch.
static int row_same(json_t *r, const char *label, int64_t L, json_t *breq) {
    const char *rl = json_string_value(json_object_get(r, "label"));
    json_t *rb = json_object_get(r, "batch_requested");
    return rl && strcmp(rl, label) == 0 && json_integer_value(json_object_get(r, "context")) == L && rb &&
           json_equal(rb, breq);
}

// Reads the existing file (if it is one of ours), replaces or appends the row, writes it back.
static void rows_merge_write(const char *path, json_t *row, const char *label, int64_t L) {
    json_t *doc = NULL;
    json_error_t err;
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        doc = json_load_file(path, 0, &err);
        if (!doc || !json_is_object(doc) || !json_is_array(json_object_get(doc, "rows"))) {
            pn_warn("bench decode: %s is not a decode-rows JSON (%s); starting a new file", path,
                    doc ? "no \"rows\" array" : err.text);
            json_decref(doc);
            doc = NULL;
        }
    }
    if (!doc) {
        doc = json_object();
        json_object_set_new(doc, "benchmark", json_string("decode"));
        json_object_set_new(doc, "device", json_string("cuda"));
        json_object_set_new(doc, "rows", json_array());
    }
    json_t *rows = json_object_get(doc, "rows");
    json_t *breq = json_object_get(row, "batch_requested");
    size_t i;
    json_t *r;
    int replaced = 0;
    json_array_foreach(rows, i, r) {
        if (row_same(r, label, L, breq)) {
            json_array_set(rows, i, row);
            replaced = 1;
            break;
        }
    }
    if (!replaced) json_array_append(rows, row);
    json_write(path, doc);
    json_decref(doc);
}

int pn_bench_decode_cuda(const pn_bench_decode_args *a, int prefill_batch, int prefill_seqs, const char *label,
                         int delta_chunked) {
    if (!a->model_dir) pn_die_input(DECODE_WHERE, "no model directory given");
    if (a->context < 1 || a->prefill_chunk < 1 || a->steps < 1 || a->warmup < 0 || a->batch < 0 || prefill_batch < 1 ||
        prefill_seqs < 1)
        pn_die_input(DECODE_WHERE,
                     "context, prefill chunk, steps, prefill batch and prefill sequences must be >= 1, warm-up and "
                     "batch >= 0 (got %lld, %d, %d, %d, %d, %d, %d)",
                     (long long)a->context, a->prefill_chunk, a->steps, prefill_batch, prefill_seqs, a->warmup,
                     a->batch);
    if (pn_cuda_device_count() < 1) {
        fprintf(stderr, "postnas: device error: bench decode: no CUDA device is visible\n");
        exit(PN_EXIT_DEVICE);
    }
    char lab[256];
    if (label) {
        snprintf(lab, sizeof lab, "%s", label);
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", a->model_dir);
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
        const char *slash = strrchr(dir, '/');
        snprintf(lab, sizeof lab, "%s", slash ? slash + 1 : dir);
    }
    const int64_t L = a->context, max_ctx = L + a->warmup + a->steps;
    pn_backbone *bb = pn_hybrid_load(a->model_dir);
    char why[256];
    if (!pn_cuda_engine_supports(bb, why, sizeof why)) pn_die_input(a->model_dir, "%s", why);

    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    size_t free0 = 0, total = 0;
    pn_cuda_eng_mem_info(&free0, &total);
    // Bandwidth first, while the engine's memory is still free.
    const size_t probe = PN_MIN((size_t)1 << 30, PN_MAX(free0 / 8, (size_t)64 << 20));
    const double bw = pn_cuda_eng_copy_bandwidth(probe);
    pn_cuda_eng_mem_info(&free0, &total);
    const size_t budget = pn_cuda_decode_budget(free0);

    int B = a->batch;
    if (B == 0) {
        B = pn_cuda_engine_max_batch(bb, max_ctx, a->prefill_chunk, prefill_batch, budget, 1 << 20);
        if (B == 0)
            pn_die_input(a->model_dir,
                         "weights + one sequence at context %lld (%.1f MiB) exceed the device memory budget "
                         "(%.1f MiB of %.1f MiB free)",
                         (long long)max_ctx,
                         pn_cuda_engine_bytes_for(bb, 1, max_ctx, a->prefill_chunk, prefill_batch).total /
                             (double)MIB,
                         budget / (double)MIB, free0 / (double)MIB);
        pn_info("bench decode: --batch max = %d (budget %.1f MiB of %.1f MiB free on %s)", B, budget / (double)MIB,
                free0 / (double)MIB, info.name);
    }
    const pn_cuda_engine_bytes need = pn_cuda_engine_bytes_for(bb, B, max_ctx, a->prefill_chunk, prefill_batch);
    if (need.total > free0)
        pn_warn("bench decode: batch %d needs %.1f MiB of device memory, %.1f MiB are free", B,
                need.total / (double)MIB, free0 / (double)MIB);
    const int n_pre = PN_MIN(prefill_seqs, B);

    pn_cuda_engine *e = pn_cuda_engine_create(bb, B, max_ctx, a->prefill_chunk, prefill_batch);
    e->delta_chunked = delta_chunked;
    // POSTNAS_ENGINE_ACT_SPLIT=0: GEMM inputs rounded once to bf16 (the usual inference
    // precision) instead of the hi + lo split the gpu tests hold to 1e-2 (see engine_cuda.h)
    const char *as = getenv("POSTNAS_ENGINE_ACT_SPLIT");
    if (as && !strcmp(as, "0")) e->act_split = 0;
    pn_info("bench decode (cuda): GEMM inputs %s", e->act_split ? "as bf16 hi + lo (act_split 1)" : "rounded once to bf16 (act_split 0)");
    void *prev = pn_cuda_stream_get();
    pn_cuda_stream_set(pn_cuda_engine_stream(e));
    pn_rng r = pn_rng_make(4242, 0);
    int64_t *ids = pn_malloc((size_t)n_pre * (size_t)L * sizeof(int64_t));
    for (int64_t i = 0; i < (int64_t)n_pre * L; i++) ids[i] = (int64_t)pn_rng_below(&r, (uint64_t)bb->V);

    // Warm-up: one chunk, so module loading, cuBLASLt plans and the ops' scratch stay out.
    const int wchunk = (int)PN_MIN((int64_t)e->chunk, L);
    int64_t *wids = pn_malloc((size_t)n_pre * wchunk * sizeof(int64_t));
    for (int b = 0; b < n_pre; b++) memcpy(wids + (size_t)b * wchunk, ids + (size_t)b * L, wchunk * sizeof(int64_t));
    pn_cuda_engine_prefill_first(e, n_pre, wids, wchunk);
    free(wids);
    pn_cuda_engine_reset(e);

    pn_cuda_engine_sync(e);
    double t0 = pn_now_seconds();
    pn_cuda_engine_prefill_first(e, n_pre, ids, (int)L);
    pn_cuda_engine_sync(e);
    const double t_prefill = pn_now_seconds() - t0;
    pn_cuda_engine_replicate(e, n_pre);
    free(ids);

    int64_t *next = pn_malloc((size_t)B * sizeof(int64_t));
    double *t_step = pn_malloc((size_t)a->steps * sizeof(double));
    void *ev0 = pn_cuda_eng_event_create(), *ev1 = pn_cuda_eng_event_create();
    pn_progress prog;
    pn_progress_start(&prog, "bench decode", a->warmup + a->steps);
    for (int s = 0; s < a->warmup + a->steps; s++) {
        for (int b = 0; b < B; b++) next[b] = (int64_t)pn_rng_below(&r, (uint64_t)bb->V);
        pn_cuda_eng_event_record(ev0);
        pn_cuda_engine_decode(e, next);
        pn_cuda_eng_event_record(ev1);
        const double ms = pn_cuda_eng_event_ms(ev0, ev1);
        if (s >= a->warmup) t_step[s - a->warmup] = ms * 1e-3;
        pn_progress_update(&prog, s + 1, "%.3f ms/step", ms);
    }
    pn_progress_finish(&prog);
    const double t_med = median(t_step, a->steps), t_min = t_step[0];
    size_t free1 = 0;
    pn_cuda_eng_mem_info(&free1, NULL);
    pn_cuda_eng_event_destroy(ev0);
    pn_cuda_eng_event_destroy(ev1);
    pn_cuda_stream_set(prev);

    const int64_t ctx_mid = L + a->warmup + a->steps / 2;
    const pn_cuda_decode_traffic tr = pn_cuda_engine_step_traffic(bb, B, ctx_mid);
    const double floor_s = tr.total / bw;
    pn_bench_decode_result res = {
        .batch = B,
        .threads = info.multiprocessors,
        .prefill_tokens_per_s = (double)n_pre * (double)L / t_prefill,
        .decode_tokens_per_s = (double)B / t_med,
        .decode_step_ms_median = 1e3 * t_med,
        .decode_step_ms_min = 1e3 * t_min,
        .weight_bytes = (double)e->bytes.weights,
        .state_bytes = (double)e->bytes.states,
        .activation_bytes = (double)e->bytes.acts,
        .step_bytes = tr.total,
        .bandwidth_GBps = bw / 1e9,
        .floor_step_ms = 1e3 * floor_s,
        .ratio_to_floor = t_med / floor_s,
    };

    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_t *j = json_object();
    json_object_set_new(j, "label", json_string(lab));
    json_object_set_new(j, "device", json_string("cuda"));
    json_object_set_new(j, "gpu", json_string(info.name));
    json_object_set_new(j, "multiprocessors", json_integer(info.multiprocessors));
    json_object_set_new(j, "date", json_string(date));
    json_object_set_new(j, "model", json_string(a->model_dir));
    json_object_set_new(j, "model_config", model_config_json(bb));
    json_object_set_new(j, "context", json_integer(L));
    json_object_set_new(j, "batch", json_integer(B));
    json_object_set_new(j, "batch_requested", a->batch ? json_integer(a->batch) : json_string("max"));
    json_object_set_new(j, "prefill_chunk", json_integer(e->chunk));
    json_object_set_new(j, "prefill_batch", json_integer(e->prefill_batch));
    json_object_set_new(j, "prefill_sequences", json_integer(n_pre));
    json_object_set_new(j, "prefill_attention", json_string(DECODE_PREFILL_ATTN));
    json_object_set_new(j, "prefill_delta_rule", json_string(delta_chunked ? "chunked (pn_cuda_gated_delta_fwd_fast)" : "fused scan"));
    json_object_set_new(j, "decode_graph", json_boolean(e->use_graph));
    json_object_set_new(j, "warmup_steps", json_integer(a->warmup));
    json_object_set_new(j, "steps", json_integer(a->steps));
    json_object_set_new(j, "prefill_seconds", json_real(t_prefill));
    json_object_set_new(j, "prefill_tokens_per_s", json_real(res.prefill_tokens_per_s));
    json_object_set_new(j, "decode_tokens_per_s", json_real(res.decode_tokens_per_s));
    json_object_set_new(j, "decode_step_ms_median", json_real(res.decode_step_ms_median));
    json_object_set_new(j, "decode_step_ms_min", json_real(res.decode_step_ms_min));
    json_t *mem = json_object();
    json_object_set_new(mem, "weights", json_integer((json_int_t)e->bytes.weights));
    json_object_set_new(mem, "states", json_integer((json_int_t)e->bytes.states));
    json_object_set_new(mem, "activations", json_integer((json_int_t)e->bytes.acts));
    json_object_set_new(mem, "transient", json_integer((json_int_t)e->bytes.transient));
    json_object_set_new(mem, "total_accounted", json_integer((json_int_t)e->bytes.total));
    json_object_set_new(mem, "used_measured", json_integer((json_int_t)(free0 > free1 ? free0 - free1 : 0)));
    json_object_set_new(mem, "free_before", json_integer((json_int_t)free0));
    json_object_set_new(mem, "device_total", json_integer((json_int_t)total));
    json_object_set_new(mem, "budget", json_integer((json_int_t)budget));
    json_object_set_new(j, "memory_bytes", mem);
    json_t *tj = json_object();
    json_object_set_new(tj, "context", json_integer(ctx_mid));
    json_object_set_new(tj, "weights_read", json_real(tr.weights));
    json_object_set_new(tj, "state_read", json_real(tr.state_read));
    json_object_set_new(tj, "state_written", json_real(tr.state_write));
    json_object_set_new(tj, "logits_written", json_real(tr.logits));
    json_object_set_new(tj, "total", json_real(tr.total));
    json_object_set_new(j, "step_bytes", tj);
    json_object_set_new(j, "bandwidth_probe_bytes", json_integer((json_int_t)probe));
    json_object_set_new(j, "bandwidth_GBps", json_real(res.bandwidth_GBps));
    json_object_set_new(j, "floor_step_ms", json_real(res.floor_step_ms));
    json_object_set_new(j, "floor_tokens_per_s", json_real((double)B / floor_s));
    json_object_set_new(j, "ratio_to_floor", json_real(res.ratio_to_floor));
    json_object_set_new(j, "fraction_of_floor", json_real(floor_s / t_med));
    rows_merge_write(a->out_json, j, lab, L);
    json_decref(j);

    pn_info("bench decode (cuda): %s, B %d, context %lld: prefill %.0f tok/s, decode %.0f tok/s (%.3f ms/step, "
            "floor %.3f ms, x%.2f); wrote %s",
            lab, B, (long long)L, res.prefill_tokens_per_s, res.decode_tokens_per_s, res.decode_step_ms_median,
            res.floor_step_ms, res.ratio_to_floor, a->out_json);
    if (a->result) *a->result = res;
    free(t_step);
    free(next);
    pn_cuda_engine_free(e);
    pn_backbone_free(bb);
    return 0;
}
#endif
