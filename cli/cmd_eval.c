// cmd_eval.c — `postnas eval`: task accuracy (and answer NLL) of a model, plain
// or an exported hybrid (supernet/hybrid.h loads both).
//
// --tasks takes directories (every *.jsonl in them, sorted by name) and/or
// .jsonl files; --task NAME keeps only the suites with that file stem, and a
// name that matches none exits 2. Suites load with the model's vocab size, so
// an id the model cannot read exits 2 naming FILE:LINE. The table goes to
// stdout; --out writes the same numbers as JSON (NaN → null), atomically.
#include "commands.h"
#include "args.h"
#include "core/fileio.h"
#include "search/evaluate.h"
#include "supernet/hybrid.h"
#include <dirent.h>
#include <jansson.h>
#include <math.h>

#define EVAL_CMD "eval"

typedef struct {
    char *path;
    char *stem;
} task_file;

static char *stem_of(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *s = pn_strdup(base);
    size_t n = strlen(s);
    if (n > 6 && !strcmp(s + n - 6, ".jsonl")) s[n - 6] = 0;
    return s;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void add_file(task_file **files, int *n, int *cap, const char *path) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *files = pn_realloc(*files, (size_t)*cap * sizeof **files);
    }
    (*files)[*n].path = pn_strdup(path);
    (*files)[*n].stem = stem_of(path);
    (*n)++;
}

// Every *.jsonl of dir, sorted, appended to files.
static void add_dir(task_file **files, int *n, int *cap, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) pn_die_input(dir, "cannot open the task directory: %s", strerror(errno));
    char **names = NULL;
    int nn = 0, nc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 6 || strcmp(de->d_name + l - 6, ".jsonl")) continue;
        if (nn == nc) {
            nc = nc ? 2 * nc : 8;
            names = pn_realloc(names, (size_t)nc * sizeof *names);
        }
        names[nn++] = pn_strdup(de->d_name);
    }
    closedir(d);
    if (nn == 0) pn_die_input(dir, "no task files (*.jsonl) in this directory");
    qsort(names, (size_t)nn, sizeof *names, name_cmp);
    for (int i = 0; i < nn; i++) {
        char path[8192];
        pn_path_join(path, sizeof path, dir, names[i]);
        add_file(files, n, cap, path);
        free(names[i]);
    }
    free(names);
}

static json_t *num_or_null(double v) { return isnan(v) ? json_null() : json_real(v); }

static void write_json(const char *out, const char *model, const pn_eval_opts *o, const task_file *files,
                       const pn_eval_result *res, int n) {
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(model));
    json_t *op = json_object();
    json_object_set_new(op, "max_examples", json_integer(o->max_examples));
    json_object_set_new(op, "batch", json_integer(o->batch));
    json_object_set_new(op, "gen_mode", json_string(pn_gen_mode_name(o->gen_mode)));
    json_object_set_new(op, "eos_id", json_integer(o->eos_id));
    json_object_set_new(j, "options", op);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const pn_eval_result *r = &res[i];
        json_t *e = json_object();
        json_object_set_new(e, "task", json_string(files[i].stem));
        json_object_set_new(e, "path", json_string(files[i].path));
        json_object_set_new(e, "kind", json_string(pn_task_kind_name(r->kind)));
        if (r->kind == PN_TASK_GEN) json_object_set_new(e, "gen_mode", json_string(pn_gen_mode_name(r->gen_mode)));
        json_object_set_new(e, "n_examples", json_integer(r->n_examples));
        json_object_set_new(e, "n_correct", json_integer(r->n_correct));
        json_object_set_new(e, "accuracy", num_or_null(r->accuracy));
        json_object_set_new(e, "mean_nll", num_or_null(r->mean_nll));
        json_object_set_new(e, "token_accuracy", num_or_null(r->token_accuracy));
        json_object_set_new(e, "n_answer_tokens", json_integer(r->n_answer_tokens));
        json_object_set_new(e, "score", num_or_null(r->score));
        json_array_append_new(arr, e);
    }
    json_object_set_new(j, "results", arr);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    PN_ASSERT(text != NULL);
    size_t len = strlen(text);
    text = pn_realloc(text, len + 2);
    text[len] = '\n';
    pn_write_file_atomic(out, text, len + 1);
    free(text);
}

int cmd_eval(int argc, char **argv) {
    pn_opt opts[] = {
        {"--model", "DIR", "model directory: a Hugging Face model or an exported hybrid (jet_nemotron)"},
        {"--tasks", "DIR|FILE", "task directory (every *.jsonl) or .jsonl file", 1},
        {"--task", "NAME", "evaluate only this task (file stem, e.g. math)", 1},
        {"--max-examples", "N", "only the first N examples of each task (default: all)"},
        {"--batch", "N", "sequences per forward / decode batch (default 8)"},
        {"--gen-mode", "MODE", "generative scoring: exact_match (greedy decoding, default) or teacher_forced"},
        {"--eos-id", "N", "stop a generated sequence after this id (default: never; outputs are cut to the "
                          "answer's length either way)"},
        {"--out", "FILE", "also write the results as JSON"},
    };
    pn_args_parse(EVAL_CMD, "--model DIR --tasks DIR_OR_FILE [--task NAME ...] [options]",
                  "Evaluate a model on task suites (JSONL). Multiple choice: log-likelihood of each choice, accuracy\n"
                  "and mean NLL of the answer's tokens. Generative: exact match of greedy decoding (or teacher-forced\n"
                  "answer-token accuracy). Prints a table; --out writes JSON.",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, NULL, 0);
    const char *model = pn_opt_require(EVAL_CMD, &opts[0]);
    pn_opt_require(EVAL_CMD, &opts[1]);
    pn_eval_opts eo;
    pn_eval_opts_default(&eo);
    eo.max_examples = pn_opt_int(EVAL_CMD, &opts[3], 0, 1, INT64_MAX);
    eo.batch = (int)pn_opt_int(EVAL_CMD, &opts[4], eo.batch, 1, 4096);
    if (opts[5].present) {
        int m = pn_gen_mode_parse(opts[5].value);
        if (m < 0) pn_die_input("--gen-mode", "expected exact_match or teacher_forced, got '%s'", opts[5].value);
        eo.gen_mode = (pn_gen_mode)m;
    }
    eo.eos_id = pn_opt_int(EVAL_CMD, &opts[6], -1, 0, INT64_MAX);
    const char *out = opts[7].present ? opts[7].value : NULL;

    // the task files, then the --task selection
    task_file *all = NULL;
    int n_all = 0, cap = 0;
    for (int i = 0; i < opts[1].n_values; i++) {
        const char *p = opts[1].values[i];
        if (pn_is_dir(p))
            add_dir(&all, &n_all, &cap, p);
        else if (pn_file_exists(p))
            add_file(&all, &n_all, &cap, p);
        else
            pn_die_input(p, "--tasks: no such file or directory");
    }
    task_file *sel = all;
    int n_sel = n_all;
    if (opts[2].present) {
        sel = pn_malloc((size_t)opts[2].n_values * sizeof *sel);
        n_sel = 0;
        for (int k = 0; k < opts[2].n_values; k++) {
            const char *name = opts[2].values[k];
            int found = -1;
            for (int i = 0; i < n_all && found < 0; i++)
                if (!strcmp(all[i].stem, name)) found = i;
            if (found < 0) {
                char have[2048] = "";
                for (int i = 0; i < n_all; i++) {
                    size_t l = strlen(have);
                    snprintf(have + l, sizeof have - l, "%s%s", i ? ", " : "", all[i].stem);
                }
                pn_die_input("--task", "no task named '%s' in --tasks (found: %s)", name, have);
            }
            sel[n_sel++] = all[found];
        }
    }

    pn_backbone *bb = pn_hybrid_load(model);  // plain HF directories and exported hybrids
    // load every suite first: a bad file fails before any model time is spent
    pn_task_suite *suites = pn_calloc((size_t)n_sel, sizeof *suites);
    for (int i = 0; i < n_sel; i++) pn_task_suite_load(&suites[i], sel[i].path, bb->V);
    pn_eval_result *res = pn_calloc((size_t)n_sel, sizeof *res);
    printf("%-20s %-4s %6s %9s %10s %9s\n", "task", "kind", "n", "accuracy", "mean_nll", "tok_acc");
    for (int i = 0; i < n_sel; i++) {
        pn_eval_suite(bb, &suites[i], &eo, &res[i]);
        const pn_eval_result *r = &res[i];
        char nll[32] = "-", tacc[32] = "-";
        if (!isnan(r->mean_nll)) snprintf(nll, sizeof nll, "%.4f", r->mean_nll);
        if (!isnan(r->token_accuracy)) snprintf(tacc, sizeof tacc, "%.4f", r->token_accuracy);
        printf("%-20s %-4s %6lld %9.4f %10s %9s\n", sel[i].stem, pn_task_kind_name(r->kind), (long long)r->n_examples,
               r->accuracy, nll, tacc);
        fflush(stdout);
    }
    if (out) {
        write_json(out, model, &eo, sel, res, n_sel);
        fprintf(stderr, "postnas eval: wrote %s\n", out);
    }
    for (int i = 0; i < n_sel; i++) pn_task_suite_free(&suites[i]);
    free(suites);
    free(res);
    if (sel != all) free(sel);
    for (int i = 0; i < n_all; i++) {
        free(all[i].path);
        free(all[i].stem);
    }
    free(all);
    pn_backbone_free(bb);
    return 0;
}
