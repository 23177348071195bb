// bench_util.h — small helpers shared by the benchmark programs (search/bench_*.c):
// the statistic they report, and the machine / date fields of their JSON.
#pragma once
#include <stddef.h>

// Median of v[0 .. n) (n >= 1); sorts v in place.
double pn_bench_median(double *v, int n);
// The CPU's "model name" from /proc/cpuinfo, or "unknown".
void pn_bench_cpu_name(char *out, size_t n);
// The current UTC time as YYYY-MM-DDTHH:MM:SSZ.
void pn_bench_utc_date(char *out, size_t n);
