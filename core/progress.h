// progress.h — a progress line on stderr for long work.
//
// On a TTY it redraws one line ("\r") at most ~10 times a second; otherwise it
// prints a plain line every `plain_every` seconds, so logs in files stay short.
#pragma once
#include "common.h"

typedef struct {
    const char *label;
    int64_t total;
    int64_t done;
    double t_start;
    double t_last_draw;
    int is_tty;
    double plain_every;  // seconds between plain lines when not a TTY
    char extra[160];     // caller-provided suffix ("loss 2.31 | 1.2k tok/s")
} pn_progress;

double pn_now_seconds(void);  // monotonic
void pn_progress_start(pn_progress *p, const char *label, int64_t total);
void pn_progress_update(pn_progress *p, int64_t done, const char *extra_fmt, ...) PN_PRINTF(3, 4);
void pn_progress_finish(pn_progress *p);
