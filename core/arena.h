// arena.h — bump allocator, one per memory category (llm.c style).
//
// Weights, grads, optimizer state, activations and scratch each live in one
// arena, so there is no hidden allocation in hot loops and a whole category is
// released at once. Allocations are 64-byte aligned (cache lines, AVX-512).
#pragma once
#include "common.h"

typedef struct {
    const char *name;  // for error messages ("activations", ...)
    char *base;
    size_t cap;
    size_t used;
    size_t peak;
} pn_arena;

void pn_arena_init(pn_arena *a, const char *name, size_t cap_bytes);
void pn_arena_free(pn_arena *a);
// Never returns NULL: an arena overflow is an internal sizing bug.
void *pn_arena_alloc(pn_arena *a, size_t bytes);
float *pn_arena_floats(pn_arena *a, size_t n);   // zero-filled
size_t pn_arena_mark(const pn_arena *a);
void pn_arena_reset(pn_arena *a, size_t mark);
