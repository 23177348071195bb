// args.h — declarative command-line options for the postnas subcommands.
//
// Each subcommand declares a table of options; pn_args_parse fills it, prints
// `--help` (usage + the table) and exits 0, and rejects unknown flags or missing
// values with exit 2. No logic beyond parsing lives in cli/.
#pragma once
#include "core/common.h"

#define PN_OPT_MAX_VALUES 64

typedef struct {
    const char *name;      // "--model"
    const char *metavar;   // "DIR"; NULL for a boolean flag
    const char *help;
    int multi;             // may repeat (values[] collects them)
    // filled by the parser
    int present;
    const char *value;     // last value (or "1" for flags)
    const char *values[PN_OPT_MAX_VALUES];
    int n_values;
} pn_opt;

// Parses argv[1..] (argv[0] is the subcommand name). Positional arguments go to
// pos[] (at most max_pos; more is an error). Returns the number of positionals.
int pn_args_parse(const char *cmd, const char *usage, const char *description, pn_opt *opts, int n_opts, int argc,
                  char **argv, const char **pos, int max_pos);
// Dies with exit 2 if a required option is missing.
const char *pn_opt_require(const char *cmd, pn_opt *o);
// Integer/float value of an option with range checking (exit 2 naming the flag).
long long pn_opt_int(const char *cmd, const pn_opt *o, long long def, long long lo, long long hi);
double pn_opt_double(const char *cmd, const pn_opt *o, double def);
