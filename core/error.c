// error.c — the three ways a postnas process dies (see common.h for the policy).
#include "common.h"
#include <errno.h>
#include <stdarg.h>

void pn_die_input(const char *where, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "postnas: error: ");
    if (where && where[0]) fprintf(stderr, "%s: ", where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(PN_EXIT_INPUT);
}

void pn_die_internal(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "postnas: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(PN_EXIT_INTERNAL);
}

void pn_die_device(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "postnas: device error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(PN_EXIT_DEVICE);
}

void *pn_malloc_checked(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) pn_die_internal(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *pn_calloc_checked(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) pn_die_internal(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *pn_realloc_checked(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) pn_die_internal(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}

char *pn_strdup_checked(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = pn_malloc_checked(n, file, line);
    memcpy(p, s, n);
    return p;
}
