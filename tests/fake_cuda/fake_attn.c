// fake_attn.c — fake twins of kernels/cuda/pn_cuda_attn.h (causal / sliding-window GQA
// softmax attention, bf16 storage) on the CPU.
//
// Training shapes (Tq == Tk, dense K/V) run pn_attention_fwd / _bwd of kernels/ops.h on
// fp32 copies. The CPU op has no KV-cache form, so prefill and decode (Tq < Tk, or K/V
// a slice of a longer cache: kv_batch_stride) run a plain loop here with the header's
// rule: query i sits at absolute position Tk − Tq + i (bottom-right alignment), key j
// is visible iff j <= pos(i) and (window <= 0 or j > pos(i) − window); fp32 scores
// (scale · q·k), a max-shifted softmax summed in double, lse = max + ln Σ. The
// backward WRITES bf16 dq, dk, dv (the CPU op adds into fp32: zeroed temporaries).
// Backend selection is remembered but there is only one implementation; the last
// backend reads "fallback" and no cuDNN plans are ever built.
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/cuda/pn_cuda_attn.h"
#include "kernels/ops.h"
#include <math.h>

static pn_cuda_attn_backend g_backend = PN_CUDA_ATTN_AUTO;

static void check_attn(int B, int Tq, int Tk, int Hq, int Hkv, int D) {
    if (B < 0 || Tq < 0 || Tk < Tq || Hq < 1 || Hkv < 1 || Hq % Hkv != 0 || D < 1)
        pn_die_internal(__FILE__, __LINE__,
                        "attention shape B %d Tq %d Tk %d Hq %d Hkv %d D %d (want Tk >= Tq, Hq %% Hkv == 0)", B, Tq, Tk,
                        Hq, Hkv, D);
}

// The general (KV-cache) forward: one (b, h, query) at a time.
static void attn_fwd_loop(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale, const pn_bf16 *q,
                          const pn_bf16 *k, const pn_bf16 *v, int64_t kvs, pn_bf16 *o, float *lse) {
    const int group = Hq / Hkv;
    float *s = fk_alloc(Tk), *acc = fk_alloc(D), *qf = fk_alloc(D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++) {
            const int hk = h / group;
            for (int i = 0; i < Tq; i++) {
                const int pos = Tk - Tq + i;
                const int lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
                const pn_bf16 *qr = q + (((int64_t)b * Tq + i) * Hq + h) * D;
                for (int d = 0; d < D; d++) qf[d] = pn_bf16_to_f32(qr[d]);
                float m = -INFINITY;
                for (int j = lo; j <= pos; j++) {
                    const pn_bf16 *kr = k + (int64_t)b * kvs + ((int64_t)j * Hkv + hk) * D;
                    float dot = 0.0f;
                    for (int d = 0; d < D; d++) dot += qf[d] * pn_bf16_to_f32(kr[d]);
                    s[j] = scale * dot;
                    m = s[j] > m ? s[j] : m;
                }
                double sum = 0.0;
                for (int d = 0; d < D; d++) acc[d] = 0.0f;
                for (int j = lo; j <= pos; j++) {
                    const float p = expf(s[j] - m);
                    sum += p;
                    const pn_bf16 *vr = v + (int64_t)b * kvs + ((int64_t)j * Hkv + hk) * D;
                    for (int d = 0; d < D; d++) acc[d] += p * pn_bf16_to_f32(vr[d]);
                }
                pn_bf16 *orow = o + (((int64_t)b * Tq + i) * Hq + h) * D;
                for (int d = 0; d < D; d++) orow[d] = pn_f32_to_bf16((float)(acc[d] / sum));
                if (lse) lse[((int64_t)b * Hq + h) * Tq + i] = m + (float)log(sum);
            }
        }
    free(s), free(acc), free(qf);
}

void pn_cuda_attn_fwd(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale, const pn_bf16 *q,
                      const pn_bf16 *k, const pn_bf16 *v, int64_t kv_batch_stride, pn_bf16 *o, float *lse) {
    check_attn(B, Tq, Tk, Hq, Hkv, D);
    if ((int64_t)B * Tq == 0) return;
    const int64_t dense = (int64_t)Tk * Hkv * D;
    const int64_t kvs = kv_batch_stride ? kv_batch_stride : dense;
    PN_ASSERT(kvs >= dense);
    if (Tq != Tk || kvs != dense) {
        attn_fwd_loop(B, Tq, Tk, Hq, Hkv, D, window, scale, q, k, v, kvs, o, lse);
        return;
    }
    const int64_t nq = (int64_t)B * Tq * Hq * D, nk = (int64_t)B * dense;
    float *qf = fk_from_bf16(q, nq), *kf = fk_from_bf16(k, nk), *vf = fk_from_bf16(v, nk), *of = fk_alloc(nq);
    float *tmp = NULL;
    pn_attention_fwd(of, fk_or_temp(lse, (int64_t)B * Hq * Tq, &tmp), qf, kf, vf, B, Tq, Hq, Hkv, D, window, scale);
    fk_store_bf16(o, of, nq);
    free(qf), free(kf), free(vf), free(of), free(tmp);
}

void pn_cuda_attn_bwd(int B, int T, int Hq, int Hkv, int D, int window, float scale, const pn_bf16 *q,
                      const pn_bf16 *k, const pn_bf16 *v, const pn_bf16 *o, const pn_bf16 *dout, const float *lse,
                      pn_bf16 *dq, pn_bf16 *dk, pn_bf16 *dv) {
    check_attn(B, T, T, Hq, Hkv, D);
    const int64_t nq = (int64_t)B * T * Hq * D, nk = (int64_t)B * T * Hkv * D;
    if (nq == 0) return;
    PN_ASSERT(lse != NULL);
    float *qf = fk_from_bf16(q, nq), *kf = fk_from_bf16(k, nk), *vf = fk_from_bf16(v, nk);
    float *of = fk_from_bf16(o, nq), *df = fk_from_bf16(dout, nq);
    float *dqf = fk_zeros(nq), *dkf = fk_zeros(nk), *dvf = fk_zeros(nk);
    pn_attention_bwd(dqf, dkf, dvf, df, qf, kf, vf, of, lse, B, T, Hq, Hkv, D, window, scale);
    if (dq) fk_store_bf16(dq, dqf, nq);
    if (dk) fk_store_bf16(dk, dkf, nk);
    if (dv) fk_store_bf16(dv, dvf, nk);
    free(qf), free(kf), free(vf), free(of), free(df), free(dqf), free(dkf), free(dvf);
}

void pn_cuda_attn_backend_set(pn_cuda_attn_backend backend) { g_backend = backend; }
pn_cuda_attn_backend pn_cuda_attn_last_backend(void) {
    (void)g_backend;
    return PN_CUDA_ATTN_FALLBACK;
}
int pn_cuda_attn_plans_built(void) { return 0; }
int pn_cuda_attn_cudnn_version(void) { return 0; }

void pn_cuda_attn_fallback_fwd(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                               const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int64_t kv_batch_stride,
                               pn_bf16 *o, float *lse) {
    PN_ASSERT(D <= 256);
    pn_cuda_attn_fwd(B, Tq, Tk, Hq, Hkv, D, window, scale, q, k, v, kv_batch_stride, o, lse);
}

void pn_cuda_attn_fallback_bwd(int B, int T, int Hq, int Hkv, int D, int window, float scale, const pn_bf16 *q,
                               const pn_bf16 *k, const pn_bf16 *v, const pn_bf16 *o, const pn_bf16 *dout,
                               const float *lse, pn_bf16 *dq, pn_bf16 *dk, pn_bf16 *dv) {
    PN_ASSERT(D <= 256);
    pn_cuda_attn_bwd(B, T, Hq, Hkv, D, window, scale, q, k, v, o, dout, lse, dq, dk, dv);
}

void pn_cuda_attn_release(void) {}
