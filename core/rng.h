// rng.h — counter-based random numbers (Philox-4x32-10).
//
// A value is a pure function of (seed, stream, counter), so results do not
// depend on thread count or on the order in which threads draw: element i of a
// tensor initialised with stream s always gets the same number. A sequential
// generator (pn_rng) is a (seed, stream, counter) triple that advances; it is a
// plain struct, so checkpoints save and restore it exactly.
#pragma once
#include "common.h"

typedef struct {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter;  // in blocks of 4 uint32
} pn_rng;

// The 4 raw 32-bit words of block `counter`.
void pn_philox4x32(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]);
// Stateless draws, indexed by element i.
float pn_uniform_at(uint64_t seed, uint64_t stream, uint64_t i);  // in [0, 1)
float pn_normal_at(uint64_t seed, uint64_t stream, uint64_t i);   // N(0, 1), Box-Muller

pn_rng pn_rng_make(uint64_t seed, uint64_t stream);
uint32_t pn_rng_u32(pn_rng *r);
float pn_rng_uniform(pn_rng *r);   // [0, 1)
float pn_rng_normal(pn_rng *r);    // N(0, 1)
uint64_t pn_rng_below(pn_rng *r, uint64_t n);  // uniform integer in [0, n), unbiased

// Fill helpers (stateless: x[i] depends only on seed, stream and i).
void pn_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t stream);
void pn_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream);
// gain · a random orthogonal (rows, cols) matrix (orthonormal rows or columns,
// whichever are fewer; torch.nn.init.orthogonal_ up to the random draw).
void pn_fill_orthogonal(float *w, int rows, int cols, float gain, uint64_t seed, uint64_t stream);
// Stable hash of a string, e.g. a parameter name, to derive its stream.
uint64_t pn_hash_str(const char *s);
