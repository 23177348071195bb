// progress.c — see progress.h.
#define _POSIX_C_SOURCE 200809L
#include "progress.h"
#include "log.h"
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

double pn_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void pn_progress_start(pn_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof(*p));
    p->label = label;
    p->total = total;
    p->t_start = pn_now_seconds();
    p->t_last_draw = 0;
    p->is_tty = isatty(2);
    p->plain_every = 10.0;
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "?");
        return;
    }
    int h = (int)(s / 3600), m = (int)(s / 60) % 60, sec = (int)s % 60;
    if (h)
        snprintf(buf, n, "%dh%02dm", h, m);
    else
        snprintf(buf, n, "%dm%02ds", m, sec);
}

static void progress_draw(pn_progress *p, int final) {
    if (pn_log_get_level() > PN_LOG_INFO) return;
    double now = pn_now_seconds();
    double el = now - p->t_start;
    double eta = p->done > 0 ? el * (double)(p->total - p->done) / (double)p->done : -1;
    char etab[32];
    fmt_eta(eta, etab, sizeof etab);
    double pct = p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 0;
    if (p->is_tty) {
        fprintf(stderr, "\r%s %lld/%lld (%5.1f%%) %s | ETA %s\033[K", p->label, (long long)p->done,
                (long long)p->total, pct, p->extra, etab);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "[progress] %s %lld/%lld (%.1f%%) %s | elapsed %.1fs ETA %s\n", p->label,
                (long long)p->done, (long long)p->total, pct, p->extra, el, etab);
    }
    fflush(stderr);
    p->t_last_draw = now;
}

void pn_progress_update(pn_progress *p, int64_t done, const char *extra_fmt, ...) {
    p->done = done;
    if (extra_fmt) {
        va_list ap;
        va_start(ap, extra_fmt);
        vsnprintf(p->extra, sizeof p->extra, extra_fmt, ap);
        va_end(ap);
    }
    double now = pn_now_seconds();
    double every = p->is_tty ? 0.1 : p->plain_every;
    if (p->t_last_draw == 0 || now - p->t_last_draw >= every) progress_draw(p, 0);
}

void pn_progress_finish(pn_progress *p) {
    p->done = p->total;
    progress_draw(p, 1);
}
