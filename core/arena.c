// arena.c — see arena.h.
#include "arena.h"

#define ARENA_ALIGN 64

void pn_arena_init(pn_arena *a, const char *name, size_t cap_bytes) {
    a->name = name;
    a->cap = cap_bytes;
    a->used = 0;
    a->peak = 0;
    a->base = NULL;
    if (cap_bytes) {
        a->base = aligned_alloc(ARENA_ALIGN, (cap_bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
        if (!a->base) pn_die_internal(__FILE__, __LINE__, "out of memory: arena '%s' of %zu bytes", name, cap_bytes);
    }
}

void pn_arena_free(pn_arena *a) {
    free(a->base);
    memset(a, 0, sizeof(*a));
}

void *pn_arena_alloc(pn_arena *a, size_t bytes) {
    size_t off = (a->used + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (off + bytes > a->cap)
        pn_die_internal(__FILE__, __LINE__, "arena '%s' overflow: asked %zu bytes, %zu of %zu used", a->name, bytes,
                        a->used, a->cap);
    a->used = off + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + off;
}

float *pn_arena_floats(pn_arena *a, size_t n) {
    float *p = pn_arena_alloc(a, n * sizeof(float));
    memset(p, 0, n * sizeof(float));
    return p;
}

size_t pn_arena_mark(const pn_arena *a) { return a->used; }

void pn_arena_reset(pn_arena *a, size_t mark) {
    PN_ASSERT(mark <= a->used);
    a->used = mark;
}
