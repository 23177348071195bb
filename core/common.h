// common.h — project-wide includes, exit codes and checked-call macros.
//
// Design: errors are classified by who can act on them. Bad input from a user
// (file, flag, config) exits 2 with a message naming the file, the position and
// what was expected; an internal bug exits 1; a CUDA/NCCL failure exits 3.
// Library code never returns half-made objects: on bad input it dies cleanly.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PN_EXIT_INTERNAL 1
#define PN_EXIT_INPUT 2
#define PN_EXIT_DEVICE 3

#define PN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define PN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PN_NORETURN __attribute__((noreturn))
#else
#define PN_PRINTF(f, a)
#define PN_NORETURN
#endif

// Bad user input: "postnas: error: WHERE: message", exit 2. WHERE is a file
// path, optionally with ":line:col" or " (tensor NAME)"; may be NULL.
PN_NORETURN void pn_die_input(const char *where, const char *fmt, ...) PN_PRINTF(2, 3);
// Internal error (a bug or a system failure we cannot attribute to input): exit 1.
PN_NORETURN void pn_die_internal(const char *file, int line, const char *fmt, ...) PN_PRINTF(3, 4);
// Device failure (CUDA, NCCL): exit 3.
PN_NORETURN void pn_die_device(const char *file, int line, const char *fmt, ...) PN_PRINTF(3, 4);

#define PN_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) pn_die_internal(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

// Checked allocation: never returns NULL.
void *pn_malloc_checked(size_t n, const char *file, int line);
void *pn_calloc_checked(size_t count, size_t size, const char *file, int line);
void *pn_realloc_checked(void *p, size_t n, const char *file, int line);
char *pn_strdup_checked(const char *s, const char *file, int line);
#define pn_malloc(n) pn_malloc_checked((n), __FILE__, __LINE__)
#define pn_calloc(c, s) pn_calloc_checked((c), (s), __FILE__, __LINE__)
#define pn_realloc(p, n) pn_realloc_checked((p), (n), __FILE__, __LINE__)
#define pn_strdup(s) pn_strdup_checked((s), __FILE__, __LINE__)

// One checked-call macro per library. Each names the call site and the failing call.
#define PN_CHECK_SYS(call)                                                                       \
    do {                                                                                         \
        if ((call) != 0) pn_die_internal(__FILE__, __LINE__, "%s failed: %s", #call, strerror(errno)); \
    } while (0)
// HDF5 returns negative on failure.
#define PN_CHECK_H5(call)                                                                 \
    do {                                                                                  \
        if ((long long)(call) < 0) pn_die_internal(__FILE__, __LINE__, "HDF5 call failed: %s", #call); \
    } while (0)
