// fake_block_elem_mr.c — fake (CPU) twin of kernels/cuda/block_elem_mr.cu, the fused
// Mamba2 / RWKV7 kernels (contracts in kernels/cuda/pn_cuda_block_elem_mr.h), so the
// fake build of blocks/cblock_mamba2.c and blocks/cblock_rwkv7.c links and runs.
//
// Each function is the kernel's math as a plain row loop: fp32 arithmetic, bf16 read
// and written through the same nearest-even rounding. Only the order of the in-row
// reductions differs from the warp sums on the GPU.
#include "kernels/cuda/pn_cuda_block_elem_mr.h"
#include "core/tensor.h"
#include <math.h>

static float b2f(pn_bf16 x) { return pn_bf16_to_f32(x); }
static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }
static float softp(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
static float ld(const void *p, pn_cuda_dtype dt, int64_t i) {
    return dt == PN_CUDA_BF16 ? b2f(((const pn_bf16 *)p)[i]) : ((const float *)p)[i];
}
static void st(void *p, pn_cuda_dtype dt, int64_t i, float v) {
    if (dt == PN_CUDA_BF16)
        ((pn_bf16 *)p)[i] = pn_f32_to_bf16(v);
    else
        ((float *)p)[i] = v;
}

void pn_cuda_mr_colsum(float *out, const float *in, int64_t R, int D) {
    for (int d = 0; d < D; d++) {
        float acc = 0.0f;
        for (int64_t r = 0; r < R; r++) acc += in[r * D + d];
        out[d] += acc;
    }
}

void pn_cuda_mr_bias_act_fwd(void *y, pn_cuda_dtype y_dt, const float *x, const float *bias, float scale, int act,
                             int64_t M, int C) {
    for (int64_t i = 0; i < M * C; i++) {
        float v = x[i] + (bias ? bias[i % C] : 0.0f);
        if (act == PN_MR_ACT_TANH) v = tanhf(v);
        if (act == PN_MR_ACT_SIGMOID) v = sigm(v);
        st(y, y_dt, i, scale * v);
    }
}

void pn_cuda_mr_bias_act_bwd(void *dx, pn_cuda_dtype dx_dt, const float *dy, const void *y, pn_cuda_dtype y_dt,
                             float scale, int act, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float t = ld(y, y_dt, i) / scale, d = dy[i] * scale;
        if (act == PN_MR_ACT_TANH) d *= 1.0f - t * t;
        if (act == PN_MR_ACT_SIGMOID) d *= t * (1.0f - t);
        st(dx, dx_dt, i, d);
    }
}

// ---------------------------------------------------------------- Mamba2

void pn_cuda_m2_ssd_in_fwd(float *dt, float *g, pn_bf16 *q, pn_bf16 *k, pn_bf16 *v, const pn_bf16 *xs,
                           const float *dtr, const float *dt_bias, const float *A_log, int64_t N, int H, int P, int G,
                           int Ns) {
    const int E = H * P, Dc = E + 2 * G * Ns, hpg = H / G;
    for (int64_t m = 0; m < N; m++) {
        const pn_bf16 *xr = xs + m * Dc;
        for (int h = 0; h < H; h++) {
            const float d = softp(dtr[m * H + h] + dt_bias[h]);
            if (dt) dt[m * H + h] = d;
            if (g) g[m * H + h] = -d * expf(A_log[h]);
            const int grp = h / hpg;
            for (int n = 0; n < Ns; n++) {
                if (q) q[(m * H + h) * Ns + n] = xr[E + (G + grp) * Ns + n];
                if (k) k[(m * H + h) * Ns + n] = xr[E + grp * Ns + n];
            }
            if (v)
                for (int p = 0; p < P; p++) v[m * E + h * P + p] = pn_f32_to_bf16(d * b2f(xr[h * P + p]));
        }
    }
}

void pn_cuda_m2_ssd_in_bwd(float *d_xs, float *d_dtr, float *dA_rows, const float *dq, const float *dk,
                           const float *dv, const float *dg, const pn_bf16 *xs, const float *dt, const float *A_log,
                           int64_t N, int H, int P, int G, int Ns) {
    const int E = H * P, Dc = E + 2 * G * Ns, hpg = H / G;
    for (int64_t m = 0; m < N; m++) {
        const pn_bf16 *xr = xs + m * Dc;
        float *gx = d_xs + m * Dc;
        for (int h = 0; h < H; h++) {
            float acc = 0.0f;
            for (int p = 0; p < P; p++) acc += dv[m * E + h * P + p] * b2f(xr[h * P + p]);
            const float d = dt[m * H + h], A = -expf(A_log[h]), gg = dg[m * H + h];
            d_dtr[m * H + h] = (gg * A + acc) * -expm1f(-d);
            dA_rows[m * H + h] = gg * d * A;
        }
        for (int i = 0; i < E; i++) gx[i] += dv[m * E + i] * dt[m * H + i / P];
        for (int i = 0; i < G * Ns; i++) {
            const int grp = i / Ns, n = i % Ns;
            float sk = 0.0f, sq = 0.0f;
            for (int h = grp * hpg; h < (grp + 1) * hpg; h++) {
                sk += dk[(m * H + h) * Ns + n];
                sq += dq[(m * H + h) * Ns + n];
            }
            gx[E + grp * Ns + n] += sk;
            gx[E + (G + grp) * Ns + n] += sq;
        }
    }
}

static float m2_u(const float *o, const pn_bf16 *xs, const float *Dp, const pn_bf16 *z, int64_t m, int e, int E,
                  int P, int Dc) {
    const float zz = b2f(z[m * E + e]);
    return (o[m * E + e] + Dp[e / P] * b2f(xs[m * Dc + e])) * (zz * sigm(zz));
}

void pn_cuda_m2_out_fwd(pn_bf16 *yn, float *rstd, const float *o, const pn_bf16 *xs, const float *Dp,
                        const pn_bf16 *z, const float *w, int64_t N, int H, int P, int G, int Dc, float eps) {
    const int E = H * P, L = E / G;
    for (int64_t row = 0; row < N * G; row++) {
        const int64_t m = row / G;
        const int e0 = (int)(row % G) * L;
        float ss = 0.0f;
        for (int j = 0; j < L; j++) {
            const float u = m2_u(o, xs, Dp, z, m, e0 + j, E, P, Dc);
            ss += u * u;
        }
        const float r = 1.0f / sqrtf(ss / L + eps);
        rstd[row] = r;
        for (int j = 0; j < L; j++)
            yn[m * E + e0 + j] = pn_f32_to_bf16(m2_u(o, xs, Dp, z, m, e0 + j, E, P, Dc) * r * w[e0 + j]);
    }
}

void pn_cuda_m2_out_bwd(float *d_o, pn_bf16 *dz, float *d_xs, float *dD_rows, float *dw_rows, const float *d_yn,
                        const float *o, const pn_bf16 *xs, const float *Dp, const pn_bf16 *z, const float *w,
                        const float *rstd, int64_t N, int H, int P, int G, int Dc) {
    const int E = H * P, L = E / G, hpg = H / G;
    for (int64_t row = 0; row < N * G; row++) {
        const int64_t m = row / G;
        const int grp = (int)(row % G), e0 = grp * L;
        const float r = rstd[row];
        float dot = 0.0f;
        for (int j = 0; j < L; j++) dot += d_yn[m * E + e0 + j] * w[e0 + j] * m2_u(o, xs, Dp, z, m, e0 + j, E, P, Dc);
        const float c = r * r * r * dot / L;
        for (int j = 0; j < L; j++) {
            const int e = e0 + j;
            const float zz = b2f(z[m * E + e]), sz = sigm(zz);
            const float x = b2f(xs[m * Dc + e]), yD = o[m * E + e] + Dp[e / P] * x, u = yD * (zz * sz);
            const float du = r * d_yn[m * E + e] * w[e] - c * u, dyD = du * zz * sz;
            dz[m * E + e] = pn_f32_to_bf16(du * yD * sz * (1.0f + zz * (1.0f - sz)));
            d_o[m * E + e] = dyD;
            d_xs[m * Dc + e] += Dp[e / P] * dyD;
            if (dw_rows) dw_rows[m * E + e] = d_yn[m * E + e] * u * r;
        }
        for (int h = grp * hpg; h < (grp + 1) * hpg; h++) {
            float acc = 0.0f;
            for (int p = 0; p < P; p++) acc += d_o[m * E + h * P + p] * b2f(xs[m * Dc + h * P + p]);
            dD_rows[m * H + h] = acc;
        }
    }
}

// ---------------------------------------------------------------- RWKV7

void pn_cuda_rw_kab_fwd(pn_bf16 *k, pn_bf16 *aop, pn_bf16 *bop, float *kh, float *kr, const float *k0,
                        const float *a, const float *k_k, const float *k_a, int64_t N, int H, int K) {
    for (int64_t row = 0; row < N * H; row++) {
        const int c0 = (int)(row % H) * K;
        const int64_t base = row * K;
        float ss = 0.0f;
        for (int d = 0; d < K; d++) {
            const float kk = k0[base + d] * k_k[c0 + d];
            ss += kk * kk;
        }
        const float r = 1.0f / sqrtf(ss + 1e-6f);
        kr[row] = r;
        for (int d = 0; d < K; d++) {
            const int64_t j = base + d;
            const float h = k0[j] * k_k[c0 + d] * r, aa = a[j];
            kh[j] = h;
            k[j] = pn_f32_to_bf16(k0[j] * (1.0f + (aa - 1.0f) * k_a[c0 + d]));
            aop[j] = pn_f32_to_bf16(-h);
            bop[j] = pn_f32_to_bf16(h * aa);
        }
    }
}

void pn_cuda_rw_kab_bwd(float *dk0, float *da, float *dka_rows, float *dkk_rows, const float *dk, const float *daop,
                        const float *dbop, const float *k0, const float *a, const float *kh, const float *kr,
                        const float *k_k, const float *k_a, int64_t N, int H, int K) {
    for (int64_t row = 0; row < N * H; row++) {
        const int c0 = (int)(row % H) * K;
        const int64_t base = row * K;
        float dot = 0.0f;
        for (int d = 0; d < K; d++) dot += (-daop[base + d] + dbop[base + d] * a[base + d]) * kh[base + d];
        const float r = kr[row];
        for (int d = 0; d < K; d++) {
            const int64_t j = base + d;
            const float aa = a[j], dkh = -daop[j] + dbop[j] * aa, dkk = r * (dkh - kh[j] * dot);
            dk0[j] = dk[j] * (1.0f + (aa - 1.0f) * k_a[c0 + d]) + dkk * k_k[c0 + d];
            da[j] = dbop[j] * kh[j] + dk[j] * k0[j] * k_a[c0 + d];
            if (dka_rows) dka_rows[j] = dk[j] * k0[j] * (aa - 1.0f);
            if (dkk_rows) dkk_rows[j] = dkk * k0[j];
        }
    }
}

void pn_cuda_rw_vmix_fwd(pn_bf16 *v, const float *v0, const pn_bf16 *vf, const float *s, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = pn_f32_to_bf16(v0[i] + (b2f(vf[i]) - v0[i]) * s[i]);
}

void pn_cuda_rw_vmix_bwd(float *dv0, float *dvf, pn_bf16 *dsl, const float *dv, const float *v0, const pn_bf16 *vf,
                         const float *s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float g = dv[i], ss = s[i];
        dv0[i] = g * (1.0f - ss);
        dvf[i] += g * ss;
        dsl[i] = pn_f32_to_bf16(g * (b2f(vf[i]) - v0[i]) * ss * (1.0f - ss));
    }
}

void pn_cuda_rw_bonus_fwd(pn_bf16 *xo, float *o2, float *sb, const float *on, const pn_bf16 *r, const pn_bf16 *k,
                          const pn_bf16 *v, const float *r_k, const float *g, int64_t N, int H, int K) {
    for (int64_t row = 0; row < N * H; row++) {
        const int c0 = (int)(row % H) * K;
        const int64_t base = row * K;
        float sum = 0.0f;
        for (int d = 0; d < K; d++) sum += b2f(r[base + d]) * b2f(k[base + d]) * r_k[c0 + d];
        sb[row] = sum;
        for (int d = 0; d < K; d++) {
            const int64_t j = base + d;
            const float t = on[j] + sum * b2f(v[j]);
            o2[j] = t;
            xo[j] = pn_f32_to_bf16(t * g[j]);
        }
    }
}

void pn_cuda_rw_bonus_bwd(float *d_o2, pn_bf16 *d_g, float *dr, float *dk, float *dv, float *drk_rows,
                          const float *d_y3, const float *o2, const float *sb, const pn_bf16 *r, const pn_bf16 *k,
                          const pn_bf16 *v, const float *r_k, const float *g, int64_t N, int H, int K) {
    for (int64_t row = 0; row < N * H; row++) {
        const int c0 = (int)(row % H) * K;
        const int64_t base = row * K;
        float ds = 0.0f;
        for (int d = 0; d < K; d++) {
            const int64_t j = base + d;
            const float t = d_y3[j] * g[j];
            d_o2[j] = t;
            d_g[j] = pn_f32_to_bf16(d_y3[j] * o2[j]);
            ds += t * b2f(v[j]);
        }
        const float s = sb[row];
        for (int d = 0; d < K; d++) {
            const int64_t j = base + d;
            const float rr = b2f(r[j]), kk = b2f(k[j]);
            dv[j] = s * (d_y3[j] * g[j]);
            dr[j] = ds * kk * r_k[c0 + d];
            dk[j] = ds * rr * r_k[c0 + d];
            if (drk_rows) drk_rows[j] = ds * rr * kk;
        }
    }
}
