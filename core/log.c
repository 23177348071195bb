// log.c — see log.h. The level comes from POSTNAS_LOG (or --log on the CLI).
#include "log.h"
#include <stdarg.h>

static pn_log_level g_level = PN_LOG_INFO;
static int g_level_from_env = 0;
static int g_level_explicit = 0;  // set by --log or POSTNAS_LOG
static int g_rank = 0, g_world = 1;

int pn_log_level_parse(const char *s) {
    static const char *names[] = {"debug", "info", "warn", "error", "quiet"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static void log_init_from_env(void) {
    if (g_level_from_env) return;
    g_level_from_env = 1;
    const char *e = getenv("POSTNAS_LOG");
    if (e) {
        int l = pn_log_level_parse(e);
        if (l >= 0) {
            g_level = (pn_log_level)l;
            g_level_explicit = 1;
        }
    }
}

void pn_log_set_default_level(pn_log_level level) {
    log_init_from_env();
    if (!g_level_explicit) g_level = level;
}

void pn_log_set_level(pn_log_level level) {
    g_level_explicit = 1;
    g_level_from_env = 1;
    g_level = level;
}

pn_log_level pn_log_get_level(void) {
    log_init_from_env();
    return g_level;
}

void pn_log_set_rank(int rank, int world) {
    g_rank = rank;
    g_world = world;
}

void pn_log(pn_log_level level, const char *fmt, ...) {
    log_init_from_env();
    if (level < g_level) return;
    if (g_rank != 0 && level < PN_LOG_WARN && !getenv("PN_LOG_ALL_RANKS")) return;
    static const char *tags[] = {"debug", "info", "warn", "error"};
    va_list ap;
    if (g_world > 1)
        fprintf(stderr, "[%s r%d] ", tags[level], g_rank);
    else
        fprintf(stderr, "[%s] ", tags[level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
