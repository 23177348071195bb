// cuda_runtime.h (FAKE) — the few CUDA runtime names tests/gpu/test_*.c use for
// timing (events on the backend stream), for the fake CUDA build only. It is on the
// include path of the fake-mode gpu test executables and nothing else; library code
// never includes cuda_runtime.h (search/bench_kernels.c, which does, is not compiled
// in the fake build). Events read the monotonic wall clock: "device time" here is CPU
// time of the fake ops, meaningless as a GPU number.
#pragma once
#include <stdlib.h>
#include <time.h>

typedef int cudaError_t;
#define cudaSuccess 0
typedef void *cudaStream_t;
typedef struct fk_cuda_event {
    struct timespec t;
} *cudaEvent_t;

static inline const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "fake error"; }

static inline cudaError_t cudaEventCreate(cudaEvent_t *ev) {
    *ev = (cudaEvent_t)calloc(1, sizeof **ev);
    return *ev ? cudaSuccess : 2;
}
static inline cudaError_t cudaEventDestroy(cudaEvent_t ev) {
    free(ev);
    return cudaSuccess;
}
static inline cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st) {
    (void)st;
    clock_gettime(CLOCK_MONOTONIC, &ev->t);
    return cudaSuccess;
}
static inline cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
    (void)ev;
    return cudaSuccess;
}
static inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)((double)(b->t.tv_sec - a->t.tv_sec) * 1e3 + (double)(b->t.tv_nsec - a->t.tv_nsec) * 1e-6);
    return cudaSuccess;
}
