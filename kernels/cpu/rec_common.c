// rec_common.c — see rec_common.h.
#include "kernels/cpu/rec_common.h"
#include <math.h>

pn_rc_head pn_rc_head_at(const pn_rec_shape *s, int b, int h) {
    pn_rc_head ix;
    ix.sk = (int64_t)s->H * s->K;
    ix.sv = (int64_t)s->H * s->V;
    ix.sg = s->H;
    ix.ok = (int64_t)b * s->T * ix.sk + (int64_t)h * s->K;
    ix.ov = (int64_t)b * s->T * ix.sv + (int64_t)h * s->V;
    ix.og = (int64_t)b * s->T * ix.sg + h;
    ix.os = ((int64_t)b * s->H + h) * s->K * s->V;
    return ix;
}

void pn_rc_load(rec_t *S, const float *h0, int64_t n) {
    for (int64_t i = 0; i < n; i++) S[i] = h0 ? h0[i] : 0;
}

void pn_rc_load_f32(float *S, const float *h0, int64_t n) {
    for (int64_t i = 0; i < n; i++) S[i] = h0 ? h0[i] : 0.0f;
}

void pn_rc_readout(float *o, const rec_t *S, const float *q, int K, int V, float scale) {
    for (int j = 0; j < V; j++) {
        rec_t acc = 0;
        for (int i = 0; i < K; i++) acc += S[(int64_t)i * V + j] * (rec_t)q[i];
        o[j] = (float)(acc * scale);
    }
}

void pn_rc_ds_add_readout(rec_t *dS, const float *q, const float *dout, int K, int V, rec_t sc) {
    for (int i = 0; i < K; i++)
        for (int j = 0; j < V; j++) dS[(int64_t)i * V + j] += sc * q[i] * (rec_t)dout[j];
}

void pn_rc_dv_add(float *dv, const rec_t *dS, const float *k, int K, int V) {
    for (int j = 0; j < V; j++) {
        rec_t acc = 0;
        for (int i = 0; i < K; i++) acc += dS[(int64_t)i * V + j] * k[i];
        dv[j] += (float)acc;
    }
}

void pn_rc_bptt_alloc(pn_rc_bptt *w, int T, int64_t KV) {
    w->ck = pn_malloc((size_t)((T + REC_SEG - 1) / REC_SEG + 1) * KV * sizeof(rec_t));
    w->Ss = pn_malloc((size_t)(REC_SEG + 1) * KV * sizeof(rec_t));
    w->dS = pn_malloc((size_t)KV * sizeof(rec_t));
}

void pn_rc_bptt_free(pn_rc_bptt *w) { free(w->ck), free(w->Ss), free(w->dS); }

void pn_rc_bptt_head(int T, int64_t KV, const float *h0, const float *dht, float *dh0, pn_rc_bptt *w,
                     pn_rc_step_fn step, pn_rc_token_bwd_fn token, void *ctx) {
    const int nseg = (T + REC_SEG - 1) / REC_SEG;
    rec_t *ck = w->ck, *Ss = w->Ss, *dS = w->dS;
    pn_rc_load(ck, h0, KV);
    for (int sg = 1; sg < nseg; sg++) {
        memcpy(ck + sg * KV, ck + (sg - 1) * KV, (size_t)KV * sizeof(rec_t));
        for (int t = (sg - 1) * REC_SEG; t < sg * REC_SEG; t++) step(ctx, t, ck + sg * KV);
    }
    pn_rc_load(dS, dht, KV);
    for (int sg = nseg - 1; sg >= 0; sg--) {
        const int t0 = sg * REC_SEG, t1 = PN_MIN(T, t0 + REC_SEG);
        // Ss[n] = state after token t0 + n − 1 (Ss[0] = state before the segment)
        memcpy(Ss, ck + sg * KV, (size_t)KV * sizeof(rec_t));
        for (int t = t0; t < t1; t++) {
            rec_t *nx = Ss + (t - t0 + 1) * KV;
            memcpy(nx, nx - KV, (size_t)KV * sizeof(rec_t));
            step(ctx, t, nx);
        }
        for (int t = t1 - 1; t >= t0; t--) {
            const rec_t *St = Ss + (t - t0 + 1) * KV;
            token(ctx, t, St, St - KV, dS);
        }
    }
    if (dh0)
        for (int64_t i = 0; i < KV; i++) dh0[i] += (float)dS[i];
}

void pn_rc_chunk_cumsum(float *G, const float *g, int64_t stride, int L, int K) {
    for (int i = 0; i < L; i++) {
        const float *gi = g + (int64_t)i * stride;
        for (int c = 0; c < K; c++) G[(int64_t)i * K + c] = gi[c] + (i ? G[(int64_t)(i - 1) * K + c] : 0.0f);
    }
}

void pn_rc_scale_rows_exp(float *M, const float *g, int K, int V) {
    for (int i = 0; i < K; i++) {
        const float a = expf(g[i]);
        for (int j = 0; j < V; j++) M[(int64_t)i * V + j] *= a;
    }
}

float *pn_rc_chunk_states_alloc(int T, int C, int64_t KV) {
    return pn_malloc((size_t)((T + C - 1) / C + 1) * KV * sizeof(float));
}
