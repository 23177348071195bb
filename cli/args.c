// args.c — see args.h.
#include "args.h"
#include <errno.h>

static void args_usage(FILE *f, const char *cmd, const char *usage, const char *description, const pn_opt *opts,
                       int n) {
    fprintf(f, "usage: postnas %s %s\n", cmd, usage);
    if (description) fprintf(f, "\n%s\n", description);
    fprintf(f, "\noptions:\n");
    for (int i = 0; i < n; i++) {
        char left[96];
        snprintf(left, sizeof left, "%s%s%s", opts[i].name, opts[i].metavar ? " " : "",
                 opts[i].metavar ? opts[i].metavar : "");
        fprintf(f, "  %-28s %s%s\n", left, opts[i].help, opts[i].multi ? " (repeatable)" : "");
    }
    fprintf(f, "  %-28s %s\n", "-h, --help", "show this help and exit");
}

int pn_args_parse(const char *cmd, const char *usage, const char *description, pn_opt *opts, int n_opts, int argc,
                  char **argv, const char **pos, int max_pos) {
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            args_usage(stdout, cmd, usage, description, opts, n_opts);
            exit(0);
        }
        if (a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            pn_opt *o = NULL;
            for (int j = 0; j < n_opts; j++)
                if (strlen(opts[j].name) == len && strncmp(opts[j].name, a, len) == 0) o = &opts[j];
            if (!o) {
                fprintf(stderr, "postnas %s: error: unknown option '%.*s' (see 'postnas %s --help')\n", cmd, (int)len,
                        a, cmd);
                exit(PN_EXIT_INPUT);
            }
            const char *val;
            if (o->metavar) {
                if (eq)
                    val = eq + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else {
                    fprintf(stderr, "postnas %s: error: option %s expects a value %s\n", cmd, o->name, o->metavar);
                    exit(PN_EXIT_INPUT);
                }
            } else {
                if (eq) {
                    fprintf(stderr, "postnas %s: error: option %s takes no value\n", cmd, o->name);
                    exit(PN_EXIT_INPUT);
                }
                val = "1";
            }
            if (o->present && !o->multi) {
                fprintf(stderr, "postnas %s: error: option %s given twice\n", cmd, o->name);
                exit(PN_EXIT_INPUT);
            }
            o->present = 1;
            o->value = val;
            if (o->n_values < PN_OPT_MAX_VALUES) o->values[o->n_values++] = val;
            continue;
        }
        if (npos >= max_pos) {
            fprintf(stderr, "postnas %s: error: unexpected argument '%s' (see 'postnas %s --help')\n", cmd, a, cmd);
            exit(PN_EXIT_INPUT);
        }
        pos[npos++] = a;
    }
    return npos;
}

const char *pn_opt_require(const char *cmd, pn_opt *o) {
    if (!o->present) {
        fprintf(stderr, "postnas %s: error: missing required option %s %s (see 'postnas %s --help')\n", cmd, o->name,
                o->metavar ? o->metavar : "", cmd);
        exit(PN_EXIT_INPUT);
    }
    return o->value;
}

long long pn_opt_int(const char *cmd, const pn_opt *o, long long def, long long lo, long long hi) {
    if (!o->present) return def;
    char *end;
    errno = 0;
    long long v = strtoll(o->value, &end, 10);
    if (errno || *end || end == o->value || v < lo || v > hi) {
        fprintf(stderr, "postnas %s: error: %s expects an integer in [%lld, %lld], got '%s'\n", cmd, o->name, lo, hi,
                o->value);
        exit(PN_EXIT_INPUT);
    }
    return v;
}

double pn_opt_double(const char *cmd, const pn_opt *o, double def) {
    if (!o->present) return def;
    char *end;
    errno = 0;
    double v = strtod(o->value, &end);
    if (errno || *end || end == o->value) {
        fprintf(stderr, "postnas %s: error: %s expects a number, got '%s'\n", cmd, o->name, o->value);
        exit(PN_EXIT_INPUT);
    }
    return v;
}
