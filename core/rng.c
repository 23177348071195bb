// rng.c — Philox-4x32-10 (Salmon et al., SC'11), see rng.h.
#include "rng.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void pn_philox4x32(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static inline float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float pn_uniform_at(uint64_t seed, uint64_t stream, uint64_t i) {
    uint32_t w[4];
    pn_philox4x32(seed, stream, i >> 2, w);
    return u32_to_unit(w[i & 3]);
}

static float box_muller(uint32_t a, uint32_t b, int second) {
    double u1 = ((double)a + 1.0) / 4294967297.0;  // (0, 1]
    double u2 = (double)b / 4294967296.0;
    double r = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586 * u2;
    return (float)(second ? r * sin(th) : r * cos(th));
}

float pn_normal_at(uint64_t seed, uint64_t stream, uint64_t i) {
    uint32_t w[4];
    pn_philox4x32(seed, stream, i >> 1, w);
    return (i & 1) ? box_muller(w[0], w[1], 1) : box_muller(w[0], w[1], 0);
}

pn_rng pn_rng_make(uint64_t seed, uint64_t stream) {
    pn_rng r = {seed, stream, 0};
    return r;
}

uint32_t pn_rng_u32(pn_rng *r) {
    uint32_t w[4];
    pn_philox4x32(r->seed, r->stream, r->counter >> 2, w);
    uint32_t v = w[r->counter & 3];
    r->counter++;
    return v;
}

float pn_rng_uniform(pn_rng *r) { return u32_to_unit(pn_rng_u32(r)); }

float pn_rng_normal(pn_rng *r) {
    uint32_t a = pn_rng_u32(r), b = pn_rng_u32(r);
    return box_muller(a, b, 0);
}

uint64_t pn_rng_below(pn_rng *r, uint64_t n) {
    PN_ASSERT(n > 0);
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = ((uint64_t)pn_rng_u32(r) << 32) | pn_rng_u32(r);
        if (x < lim) return x % n;
    }
}

void pn_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t stream) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = mean + std * pn_normal_at(seed, stream, i);
}

void pn_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * pn_uniform_at(seed, stream, i);
}

uint64_t pn_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

// gain · a random orthogonal (rows, cols) matrix: orthonormal rows or columns,
// whichever are fewer, from modified Gram-Schmidt on normal draws.
void pn_fill_orthogonal(float *w, int rows, int cols, float gain, uint64_t seed, uint64_t stream) {
    int nv = PN_MIN(rows, cols), len = PN_MAX(rows, cols);
    double *v = pn_malloc((size_t)nv * len * sizeof(double));
    for (int64_t i = 0; i < (int64_t)nv * len; i++) v[i] = pn_normal_at(seed, stream, (uint64_t)i);
    for (int i = 0; i < nv; i++) {
        double *vi = v + (size_t)i * len, nrm = 0;
        for (int j = 0; j < len; j++) nrm += vi[j] * vi[j];
        nrm = 1.0 / sqrt(nrm);
        for (int j = 0; j < len; j++) vi[j] *= nrm;
#pragma omp parallel for schedule(static)
        for (int o = i + 1; o < nv; o++) {
            double *vo = v + (size_t)o * len, dot = 0;
            for (int j = 0; j < len; j++) dot += vo[j] * vi[j];
            for (int j = 0; j < len; j++) vo[j] -= dot * vi[j];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int cc = 0; cc < cols; cc++)
            w[(size_t)r * cols + cc] = gain * (float)(rows >= cols ? v[(size_t)cc * len + r] : v[(size_t)r * len + cc]);
    free(v);
}
