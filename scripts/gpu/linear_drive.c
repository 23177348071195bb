// linear_drive.c — times the chunked fp32 DPLR and GLA ops of kernels/cuda/linear_ops.cu (one
// forward and one backward call, synchronised, host wall clock) at B8 T4096 H12 K128 V128 or
// the B T H given, under tuning overrides; for profiling (ncu) and sweeps, not a test. Session
// 19's log: results/bench/h100-linear-fp32-session19.log. Build against a CUDA build's
// libraries, e.g. from build-gpu/tests:
//   gcc -O2 -std=gnu11 -I../.. -c ../../scripts/gpu/linear_drive.c -o /tmp/linear_drive.o
//   g++ /tmp/linear_drive.o -o /tmp/linear_drive @CMakeFiles/gpu_test_cuda_linear.dir/linkLibs.rsp
// Run: DRV_OPS=dplr,gla DRV_CFGS=64:2,0:0 linear_drive REPS [B T H]  (DRV_CFGS: a list of
// scan_bv:grads_blocks_per_sm, 0 = automatic; pn_cuda_linear_debug_*).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include "kernels/cuda/pn_cuda_ops.h"
static unsigned long long st = 88172645463325252ull;
static float nrm(void) {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    double u1 = ((st >> 11) + 1) * (1.0 / 9007199254740993.0);
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    double u2 = (st >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
int main(int argc, char **argv) {
    int B = 8, T = 4096, H = 12, K = 128, V = 128, reps = argc > 1 ? atoi(argv[1]) : 3;
    if (argc > 2) {
        B = atoi(argv[2]);
        T = atoi(argv[3]);
        H = atoi(argv[4]);
    }
    size_t tok = (size_t)B * T * H, nqk = tok * K, nv = tok * V;
    float *h = malloc(nqk * sizeof(float)), *h2 = malloc(nqk * sizeof(float));
    pn_bf16 *q = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 2), *k = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 2);
    pn_bf16 *v = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * 2), *a = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 2);
    pn_bf16 *b = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 2), *o = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * 2);
    float *g = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 4), *dout = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * 4);
    float *dq = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 4), *dk = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 4);
    float *dv = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * 4), *dg = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 4);
    float *da = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 4), *db = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nqk * 4);
    for (size_t i = 0; i < nqk; i++)
        h[i] = nrm();
    pn_cuda_upload_bf16(q, h, nqk);
    for (size_t i = 0; i < nqk; i++)
        h[i] = nrm();
    pn_cuda_upload_bf16(k, h, nqk);
    for (size_t i = 0; i < nqk; i++) {
        double u = nrm();
        h[i] = (float)((u >= 0 ? -log1p(exp(-u)) : u - log1p(exp(u))) / 10.0);
    }
    pn_cuda_upload(g, h, nqk * 4);
    for (size_t r = 0; r < tok; r++) {
        double ss = 0;
        for (int j = 0; j < K; j++) {
            h[r * K + j] = nrm();
            ss += (double)h[r * K + j] * h[r * K + j];
        }
        double rs = 1 / sqrt(ss + 1e-6);
        for (int j = 0; j < K; j++) {
            double kh = h[r * K + j] * rs;
            h[r * K + j] = (float)-kh;
            h2[r * K + j] = (float)(kh / (1 + exp(-(double)nrm())));
        }
    }
    pn_cuda_upload_bf16(a, h, nqk);
    pn_cuda_upload_bf16(b, h2, nqk);
    free(h2);
    h = realloc(h, nv * sizeof(float));
    for (size_t i = 0; i < nv; i++)
        h[i] = nrm();
    pn_cuda_upload_bf16(v, h, nv);
    for (size_t i = 0; i < nv; i++)
        h[i] = nrm();
    pn_cuda_upload(dout, h, nv * 4);
    float sc = 1.0f / sqrtf((float)K);
    const char *which = getenv("DRV_OPS");
    if (!which)
        which = "dplr";
    const char *cfgs = getenv("DRV_CFGS");
    if (!cfgs)
        cfgs = "0:0";
    for (const char *cp = cfgs; *cp;) {
        int bv = atoi(cp), gb = 0;
        const char *colon = strchr(cp, ':');
        if (colon)
            gb = atoi(colon + 1);
        pn_cuda_linear_debug_scan_bv(bv);
        pn_cuda_linear_debug_grads_blocks(gb);
        printf("config bv %d grads blocks/SM %d\n", bv, gb);
        const char *comma = strchr(cp, ',');
        cp = comma ? comma + 1 : cp + strlen(cp);
        for (int op = 0; op < 2; op++) {
            if (op == 0 && !strstr(which, "dplr"))
                continue;
            if (op == 1 && !strstr(which, "gla"))
                continue;
            for (int r = 0; r < reps; r++) {
                pn_cuda_sync();
                double t0 = now();
                if (op == 0)
                    pn_cuda_dplr_fwd(B, T, H, K, V, sc, q, k, v, g, a, b, NULL, o, PN_CUDA_BF16, NULL);
                else
                    pn_cuda_gla_fwd(B, T, H, K, V, sc, q, k, v, g, NULL, o, PN_CUDA_BF16, NULL);
                pn_cuda_sync();
                double t1 = now();
                if (op == 0)
                    pn_cuda_dplr_bwd(B, T, H, K, V, sc, q, k, v, g, a, b, NULL, dout, NULL, dq, dk, dv, dg, da, db,
                                     NULL);
                else
                    pn_cuda_gla_bwd(B, T, H, K, V, sc, q, k, v, g, NULL, dout, NULL, dq, dk, dv, dg, NULL);
                pn_cuda_sync();
                double t2 = now();
                printf("%s rep %d: fwd %.3f ms, bwd %.3f ms\n", op ? "gla" : "dplr", r, 1e3 * (t1 - t0),
                       1e3 * (t2 - t1));
            }
        }
    }
    float chk[4];
    pn_cuda_download(chk, dq, 16);
    printf("dq[0..3] %g %g %g %g\n", chk[0], chk[1], chk[2], chk[3]);
    return 0;
}
