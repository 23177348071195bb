// test_util.h — tiny test harness shared by tests/unit (header-only).
//
// CHECK records a failure and goes on, so one run reports every mismatch; each
// test's main returns test_summary(), which prints "N passed, N failed".
#pragma once
#include "core/common.h"
#include <math.h>

static int g_test_pass = 0, g_test_fail = 0;

#define CHECK(cond, ...)                                      \
    do {                                                      \
        if (cond) {                                           \
            g_test_pass++;                                    \
        } else {                                              \
            g_test_fail++;                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                     \
            fputc('\n', stderr);                              \
        }                                                     \
    } while (0)

// ‖a − b‖ / ‖b‖ in double; NaN anywhere gives +inf. ‖b‖ = 0 → ‖a‖.
static inline double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]) || isinf(a[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

// Path of a fixture file: $POSTNAS_FIXTURES/rel (default ../shared/fixtures/rel).
static inline const char *fixture_path(const char *rel) {
    static char buf[8][4096];
    static int slot = 0;
    const char *root = getenv("POSTNAS_FIXTURES");
    if (!root) root = "../shared/fixtures";
    char *out = buf[slot++ % 8];
    snprintf(out, 4096, "%s/%s", root, rel);
    return out;
}

static inline int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, g_test_pass, g_test_fail);
    return g_test_fail ? 1 : 0;
}

// Runs fn(arg) in a child process with stderr captured; checks that the child
// exits with `code` and that its stderr contains every '|'-free substring given
// in `substr` (NULL = no check). Used for "bad input exits 2 with a message".
#include <sys/wait.h>
#include <unistd.h>
static inline int expect_exit(void (*fn)(void *), void *arg, int code, const char *substr) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        exit(0);
    }
    close(fds[1]);
    char buf[8192];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + n, sizeof(buf) - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    int ok = rc == code && (!substr || strstr(buf, substr) != NULL);
    if (!ok) fprintf(stderr, "  expect_exit: got exit %d (want %d), stderr: %s  (wanted substring: %s)\n", rc, code, buf, substr ? substr : "-");
    return ok;
}
