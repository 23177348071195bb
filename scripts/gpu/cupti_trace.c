// cupti_trace.c — dev tool: a CUPTI activity tracer loaded into any CUDA program through
// CUDA_INJECTION64_PATH, for the device's idle gaps on machines without Nsight Systems.
// One line per record into $PN_TRACE_OUT (default cupti-trace.txt), times in ns:
//   K start end correlation name     a kernel (device time)
//   M start end correlation memcpy   / memset: the same for copies and fills
//   A start end correlation name     a CUDA runtime or driver call on the host (the
//                                    launch of kernel K with the same correlation id
//                                    among them; cuBLASLt and cuDNN launch through the
//                                    driver API)
// scripts/gpu/trace_gaps.py reads it. Build (headers and libcupti of one CUDA 13 CUPTI):
//   cc -O2 -shared -fPIC -I$CUPTI_INC -o libpn_cupti_trace.so scripts/gpu/cupti_trace.c
//      -L$CUPTI_LIB -lcupti -Wl,-rpath,'$ORIGIN'
// (session 8 built it with the CUPTI 13.2 headers of the nvidia-cuda-cupti wheel and ran it
// with the CUDA 13.0 toolkit's libcupti.so.13 next to it; the calls used are old ones.)
// The kernel record's start / end / correlationId / name sit at the same offsets in every
// CUpti_ActivityKernel version from 4 to 11, so the newest type is read whatever the
// library's version.
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>

#define TRACE_CHECK(call)                                                              \
    do {                                                                               \
        CUptiResult r_ = (call);                                                       \
        if (r_ != CUPTI_SUCCESS) {                                                     \
            const char *m_ = "?";                                                      \
            cuptiGetResultString(r_, &m_);                                             \
            fprintf(stderr, "cupti_trace: %s failed: %s\n", #call, m_);                \
        }                                                                              \
    } while (0)

static FILE *g_out;

static void CUPTIAPI buffer_requested(uint8_t **buf, size_t *size, size_t *max_records) {
    *size = (size_t)16 << 20;
    *buf = aligned_alloc(8, *size);
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buf, size_t size, size_t valid) {
    (void)ctx, (void)stream, (void)size;
    CUpti_Activity *r = NULL;
    while (cuptiActivityGetNextRecord(buf, valid, &r) == CUPTI_SUCCESS) {
        if (r->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || r->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            const CUpti_ActivityKernel11 *k = (const CUpti_ActivityKernel11 *)r;
            fprintf(g_out, "K %llu %llu %u %s\n", (unsigned long long)k->start, (unsigned long long)k->end,
                    k->correlationId, k->name ? k->name : "?");
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)r;
            fprintf(g_out, "M %llu %llu %u memcpy\n", (unsigned long long)m->start, (unsigned long long)m->end,
                    m->correlationId);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)r;
            fprintf(g_out, "M %llu %llu %u memset\n", (unsigned long long)m->start, (unsigned long long)m->end,
                    m->correlationId);
        } else if (r->kind == CUPTI_ACTIVITY_KIND_RUNTIME || r->kind == CUPTI_ACTIVITY_KIND_DRIVER) {
            const CUpti_ActivityAPI *a = (const CUpti_ActivityAPI *)r;
            const char *name = "?";
            cuptiGetCallbackName(r->kind == CUPTI_ACTIVITY_KIND_RUNTIME ? CUPTI_CB_DOMAIN_RUNTIME_API
                                                                       : CUPTI_CB_DOMAIN_DRIVER_API,
                                 a->cbid, &name);
            fprintf(g_out, "A %llu %llu %u %s\n", (unsigned long long)a->start, (unsigned long long)a->end,
                    a->correlationId, name);
        }
    }
    free(buf);
}

static void flush_at_exit(void) {
    cuptiActivityFlushAll(1);
    if (g_out) fclose(g_out);
}

int InitializeInjection(void) {
    const char *path = getenv("PN_TRACE_OUT");
    g_out = fopen(path && path[0] ? path : "cupti-trace.txt", "w");
    if (!g_out) {
        perror("cupti_trace: PN_TRACE_OUT");
        return 0;
    }
    TRACE_CHECK(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed));
    TRACE_CHECK(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
    TRACE_CHECK(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY));
    TRACE_CHECK(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET));
    TRACE_CHECK(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_RUNTIME));
    TRACE_CHECK(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_DRIVER));
    atexit(flush_at_exit);
    return 1;
}
