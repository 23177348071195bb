// log.h — leveled logging to stderr, rank-aware.
//
// Everything below cli/ reports through here, never printf to stdout, so that
// stdout stays clean for the command's own output (tables, JSON). Under MPI only
// rank 0 logs at INFO and below unless PN_LOG_ALL_RANKS is set.
#pragma once
#include "common.h"

typedef enum { PN_LOG_DEBUG = 0, PN_LOG_INFO = 1, PN_LOG_WARN = 2, PN_LOG_ERROR = 3, PN_LOG_QUIET = 4 } pn_log_level;

void pn_log_set_level(pn_log_level level);
// A job config's level: applies only when neither --log nor POSTNAS_LOG chose one.
void pn_log_set_default_level(pn_log_level level);
pn_log_level pn_log_get_level(void);
void pn_log_set_rank(int rank, int world);
// Parses "debug|info|warn|error|quiet"; returns -1 when unknown.
int pn_log_level_parse(const char *s);
void pn_log(pn_log_level level, const char *fmt, ...) PN_PRINTF(2, 3);

#define pn_debug(...) pn_log(PN_LOG_DEBUG, __VA_ARGS__)
#define pn_info(...) pn_log(PN_LOG_INFO, __VA_ARGS__)
#define pn_warn(...) pn_log(PN_LOG_WARN, __VA_ARGS__)
#define pn_error(...) pn_log(PN_LOG_ERROR, __VA_ARGS__)
