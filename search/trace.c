// trace.c — JSON and HDF5 writers of the placement search (layouts in trace.h).
//
// JSON is built as a jansson tree, dumped to memory and written with
// pn_write_file_atomic. HDF5 is created at "PATH.tmp.PID", closed, fsynced and
// renamed over PATH (HDF5 owns its file descriptor, so the FILE-based atomic
// writer of core/fileio.h does not fit). Object timestamps are off, so the same
// search gives a byte-identical file. Every HDF5 call is checked: creating the
// file can fail because of the user's path (exit 2 naming it); anything after
// that is a library or system failure (PN_CHECK_H5, exit 1).
#define _POSIX_C_SOURCE 200809L
#include "trace.h"
#include "core/fileio.h"
#include "core/h5util.h"
#include <fcntl.h>
#include <hdf5.h>
#include <jansson.h>
#include <math.h>
#include <unistd.h>

static const char *k_normalisation =
    "combined objective: mean over its tasks of (s_t(S) - s_t(all_linear)) / |s_t(all_attention) - s_t(all_linear)|"
    " (a task with |span| <= 1e-12 counts 0); single-task objective: the raw score; swa objective: mean raw score of"
    " its tasks with the full-attention set fixed";

void pn_placement_trace_init(pn_placement_trace *t, const pn_placement *p, const char *const *task_names) {
    memset(t, 0, sizeof *t);
    t->n_layers = p->n_layers;
    t->n_tasks = p->n_tasks;
    t->task_names = task_names;
    t->chosen_search = -1;
    t->n_calls = p->n_calls;
    t->n_lookups = p->n_lookups;
}

// Task name into buf (generated when the trace has none).
static const char *task_name(const pn_placement_trace *t, int i, char *buf, size_t n) {
    if (t->task_names && t->task_names[i]) return t->task_names[i];
    snprintf(buf, n, "task%d", i);
    return buf;
}

static const pn_beam_entry *chosen_entry(const pn_placement_trace *t) {
    if (t->chosen_search < 0) return NULL;
    PN_ASSERT(t->chosen_search < t->n_searches);
    return pn_beam_best(t->searches[t->chosen_search], t->chosen_k);
}

// ---------------------------------------------------------------- JSON

static json_t *jreal(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *jreals(const double *x, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, jreal(x[i]));
    return a;
}

static json_t *jints(const int *x, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(x[i]));
    return a;
}

static json_t *json_search(const pn_placement_trace *t, const pn_beam_result *r) {
    char buf[32];
    json_t *s = json_object();
    json_object_set_new(s, "name", json_string(r->name));
    json_object_set_new(s, "kind", json_string(r->kind == PN_BEAM_SWA ? "swa" : "full"));
    json_object_set_new(s, "beam_width", json_integer(r->width));
    json_object_set_new(s, "k_max", json_integer(r->k_max));
    json_object_set_new(s, "k_done", json_integer(r->k_done));
    json_object_set_new(s, "normalised", json_boolean(r->normalised));
    json_t *ot = json_array();
    for (int j = 0; j < r->n_obj_tasks; j++)
        json_array_append_new(ot, json_string(task_name(t, r->obj_tasks[j], buf, sizeof buf)));
    json_object_set_new(s, "objective_tasks", ot);
    if (r->kind == PN_BEAM_SWA) json_object_set_new(s, "fixed", jints(r->fixed, r->n_fixed));
    json_object_set_new(s, "base_score", jreal(r->base_score));
    json_object_set_new(s, "score_calls", json_integer(r->n_calls));
    json_object_set_new(s, "score_lookups", json_integer(r->n_lookups));
    json_t *beams = json_array();
    for (int i = 0; i < r->n_entries; i++) {
        const pn_beam_entry *e = &r->entries[i];
        json_t *b = json_object();
        json_object_set_new(b, "size", json_integer(e->size));
        json_object_set_new(b, "rank", json_integer(e->rank));
        json_object_set_new(b, "members", jints(e->members, e->size));
        json_object_set_new(b, "score", jreal(e->score));
        json_object_set_new(b, "task_scores", jreals(e->task_scores, r->n_obj_tasks));
        json_array_append_new(beams, b);
    }
    json_object_set_new(s, "beams", beams);
    json_t *best = json_array();
    for (int k = 1; k <= r->k_done; k++) {
        const pn_beam_entry *e = pn_beam_best(r, k);
        PN_ASSERT(e != NULL);
        json_t *b = json_object();
        json_object_set_new(b, "k", json_integer(k));
        json_object_set_new(b, "members", jints(e->members, e->size));
        json_object_set_new(b, "score", jreal(e->score));
        json_array_append_new(best, b);
    }
    json_object_set_new(s, "best", best);
    return s;
}

void pn_placement_trace_write_json(const pn_placement_trace *t, const char *path) {
    char buf[32];
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("postnas-placement-trace"));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "n_layers", json_integer(t->n_layers));
    json_t *names = json_array();
    for (int i = 0; i < t->n_tasks; i++) json_array_append_new(names, json_string(task_name(t, i, buf, sizeof buf)));
    json_object_set_new(root, "tasks", names);
    json_object_set_new(root, "normalisation", json_string(k_normalisation));
    const pn_importance *imp = t->importance;
    if (imp) {
        PN_ASSERT(imp->n_tasks == t->n_tasks && imp->n_layers == t->n_layers);
        json_t *m = json_array();
        for (int i = 0; i < t->n_tasks; i++)
            json_array_append_new(m, jreals(imp->single + (size_t)i * t->n_layers, t->n_layers));
        json_object_set_new(root, "importance", m);
        json_object_set_new(root, "all_linear", jreals(imp->all_linear, t->n_tasks));
        json_object_set_new(root, "all_attention", jreals(imp->all_attention, t->n_tasks));
    } else {
        json_object_set_new(root, "importance", json_null());
        json_object_set_new(root, "all_linear", json_null());
        json_object_set_new(root, "all_attention", json_null());
    }
    json_t *ss = json_array();
    for (int i = 0; i < t->n_searches; i++) json_array_append_new(ss, json_search(t, t->searches[i]));
    json_object_set_new(root, "searches", ss);
    json_object_set_new(root, "swa", t->swa ? json_search(t, t->swa) : json_null());
    const pn_beam_entry *ch = chosen_entry(t);
    if (ch) {
        json_t *c = json_object();
        json_object_set_new(c, "search", json_string(t->searches[t->chosen_search]->name));
        json_object_set_new(c, "k", json_integer(t->chosen_k));
        json_object_set_new(c, "members", jints(ch->members, ch->size));
        json_object_set_new(root, "chosen", c);
    } else {
        json_object_set_new(root, "chosen", json_null());
    }
    json_object_set_new(root, "score_calls", json_integer(t->n_calls));
    json_object_set_new(root, "score_lookups", json_integer(t->n_lookups));
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!text) pn_die_internal(__FILE__, __LINE__, "json_dumps failed for %s", path);
    size_t n = strlen(text);
    text[n] = '\n';  // replaces the NUL; the buffer is written by length
    pn_write_file_atomic(path, text, n + 1);
    free(text);
}

// ---------------------------------------------------------------- HDF5 helpers

static hid_t h5_dcpl(void) {
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    PN_CHECK_H5(p);
    PN_CHECK_H5(H5Pset_obj_track_times(p, 0));
    return p;
}

static hid_t h5_gcpl(void) {
    hid_t p = H5Pcreate(H5P_GROUP_CREATE);
    PN_CHECK_H5(p);
    PN_CHECK_H5(H5Pset_obj_track_times(p, 0));
    return p;
}

static hid_t h5_group(hid_t loc, const char *name) {
    hid_t gcpl = h5_gcpl();
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    PN_CHECK_H5(g);
    PN_CHECK_H5(H5Pclose(gcpl));
    return g;
}

// A dataset of rank 1 or 2 (dims[rank]); zero-sized ones are created and left empty.
static hid_t h5_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank, const hsize_t *dims,
                        const void *data) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    PN_CHECK_H5(sp);
    hid_t dcpl = h5_dcpl();
    hid_t d = H5Dcreate2(loc, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    PN_CHECK_H5(d);
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (n) PN_CHECK_H5(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    PN_CHECK_H5(H5Pclose(dcpl));
    PN_CHECK_H5(H5Sclose(sp));
    return d;
}

static void h5_write_f64(hid_t loc, const char *name, int rank, const hsize_t *dims, const double *data) {
    PN_CHECK_H5(H5Dclose(h5_dataset(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, data)));
}

static void h5_write_i32(hid_t loc, const char *name, int rank, const hsize_t *dims, const int *data) {
    PN_CHECK_H5(H5Dclose(h5_dataset(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, rank, dims, data)));
}

static void h5_attr_i32s(hid_t obj, const char *name, const int *v, int n) {
    hsize_t dim = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    PN_CHECK_H5(sp);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    PN_CHECK_H5(a);
    if (n) PN_CHECK_H5(H5Awrite(a, H5T_NATIVE_INT, v));
    PN_CHECK_H5(H5Aclose(a));
    PN_CHECK_H5(H5Sclose(sp));
}

// Variable-length UTF-8 strings: h5py reads them back as str.
static hid_t h5_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    PN_CHECK_H5(t);
    PN_CHECK_H5(H5Tset_size(t, H5T_VARIABLE));
    PN_CHECK_H5(H5Tset_cset(t, H5T_CSET_UTF8));
    return t;
}

static void h5_attr_str(hid_t obj, const char *name, const char *v) {
    hid_t t = h5_str_type();
    hid_t sp = H5Screate(H5S_SCALAR);
    PN_CHECK_H5(sp);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    PN_CHECK_H5(a);
    PN_CHECK_H5(H5Awrite(a, t, &v));
    PN_CHECK_H5(H5Aclose(a));
    PN_CHECK_H5(H5Sclose(sp));
    PN_CHECK_H5(H5Tclose(t));
}

static void h5_attr_strs(hid_t obj, const char *name, const char *const *v, int n) {
    hid_t t = h5_str_type();
    hsize_t dim = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    PN_CHECK_H5(sp);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    PN_CHECK_H5(a);
    if (n) PN_CHECK_H5(H5Awrite(a, t, v));
    PN_CHECK_H5(H5Aclose(a));
    PN_CHECK_H5(H5Sclose(sp));
    PN_CHECK_H5(H5Tclose(t));
}

// Task names as an array of pointers (generated ones live in `store`, 32 bytes each).
static const char **task_names_all(const pn_placement_trace *t, char *store) {
    const char **names = pn_malloc((size_t)PN_MAX(t->n_tasks, 1) * sizeof(char *));
    for (int i = 0; i < t->n_tasks; i++) names[i] = task_name(t, i, store + 32 * (size_t)i, 32);
    return names;
}

static void h5_search(hid_t loc, const char *gname, const pn_placement_trace *t, const pn_beam_result *r,
                      const char *const *names) {
    hid_t g = h5_group(loc, gname);
    h5_attr_str(g, "name", r->name);
    h5_attr_str(g, "kind", r->kind == PN_BEAM_SWA ? "swa" : "full");
    pn_h5_attr_i64(g, "beam_width", r->width);
    pn_h5_attr_i64(g, "k_max", r->k_max);
    pn_h5_attr_i64(g, "k_done", r->k_done);
    pn_h5_attr_i64(g, "normalised", r->normalised);
    pn_h5_attr_f64(g, "base_score", r->base_score);
    pn_h5_attr_i64(g, "score_calls", r->n_calls);
    pn_h5_attr_i64(g, "score_lookups", r->n_lookups);
    h5_attr_i32s(g, "objective_tasks", r->obj_tasks, r->n_obj_tasks);
    const char **on = pn_malloc((size_t)r->n_obj_tasks * sizeof(char *));
    for (int j = 0; j < r->n_obj_tasks; j++) on[j] = names[r->obj_tasks[j]];
    h5_attr_strs(g, "objective_task_names", on, r->n_obj_tasks);
    free(on);
    hsize_t nf = (hsize_t)(r->kind == PN_BEAM_SWA ? r->n_fixed : 0);
    h5_write_i32(g, "fixed", 1, &nf, r->fixed);

    // best per size: (k_done, k_done), row k-1 = the best set of size k padded with −1
    int K = r->k_done;
    if (K > 0) {
        int *bm = pn_malloc((size_t)K * (size_t)K * sizeof(int));
        double *bs = pn_malloc((size_t)K * sizeof(double));
        for (int k = 1; k <= K; k++) {
            const pn_beam_entry *e = pn_beam_best(r, k);
            PN_ASSERT(e != NULL);
            for (int j = 0; j < K; j++) bm[(size_t)(k - 1) * K + j] = j < k ? e->members[j] : -1;
            bs[k - 1] = e->score;
        }
        hsize_t d2[2] = {(hsize_t)K, (hsize_t)K}, d1 = (hsize_t)K;
        h5_write_i32(g, "best_members", 2, d2, bm);
        h5_write_f64(g, "best_score", 1, &d1, bs);
        free(bm);
        free(bs);
    }

    // every beam, one group per size
    int n_obj = r->n_obj_tasks;
    for (int k = 1; k <= K; k++) {
        int n = 0;
        for (int i = 0; i < r->n_entries; i++) n += r->entries[i].size == k;
        int *mem = pn_malloc((size_t)n * (size_t)k * sizeof(int));
        int *rank = pn_malloc((size_t)n * sizeof(int));
        double *sc = pn_malloc((size_t)n * sizeof(double));
        double *ts = pn_malloc((size_t)n * (size_t)n_obj * sizeof(double));
        int row = 0;
        for (int i = 0; i < r->n_entries; i++) {
            const pn_beam_entry *e = &r->entries[i];
            if (e->size != k) continue;
            memcpy(mem + (size_t)row * k, e->members, (size_t)k * sizeof(int));
            rank[row] = e->rank;
            sc[row] = e->score;
            memcpy(ts + (size_t)row * n_obj, e->task_scores, (size_t)n_obj * sizeof(double));
            row++;
        }
        char sname[32];
        snprintf(sname, sizeof sname, "size_%d", k);
        hid_t sg = h5_group(g, sname);
        hsize_t dm[2] = {(hsize_t)n, (hsize_t)k}, dn = (hsize_t)n, dt[2] = {(hsize_t)n, (hsize_t)n_obj};
        h5_write_i32(sg, "members", 2, dm, mem);
        h5_write_i32(sg, "rank", 1, &dn, rank);
        h5_write_f64(sg, "score", 1, &dn, sc);
        h5_write_f64(sg, "task_scores", 2, dt, ts);
        PN_CHECK_H5(H5Gclose(sg));
        free(mem);
        free(rank);
        free(sc);
        free(ts);
    }
    (void)t;
    PN_CHECK_H5(H5Gclose(g));
}

void pn_placement_trace_write_h5(const pn_placement_trace *t, const char *path) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    PN_CHECK_H5(fcpl);
    PN_CHECK_H5(H5Pset_obj_track_times(fcpl, 0));
    H5E_auto2_t efn;
    void *edata;
    PN_CHECK_H5(H5Eget_auto2(H5E_DEFAULT, &efn, &edata));
    PN_CHECK_H5(H5Eset_auto2(H5E_DEFAULT, NULL, NULL));  // one clear line instead of HDF5's error stack
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    PN_CHECK_H5(H5Eset_auto2(H5E_DEFAULT, efn, edata));
    if (f < 0) pn_die_input(path, "cannot create HDF5 file %s (directory missing or not writable?)", tmp);
    PN_CHECK_H5(H5Pclose(fcpl));

    char *store = pn_calloc((size_t)PN_MAX(t->n_tasks, 1), 32);
    const char **names = task_names_all(t, store);
    h5_attr_str(f, "format", "postnas-placement-trace");
    pn_h5_attr_i64(f, "version", 1);
    pn_h5_attr_i64(f, "n_layers", t->n_layers);
    pn_h5_attr_i64(f, "n_tasks", t->n_tasks);
    h5_attr_strs(f, "task_names", names, t->n_tasks);
    pn_h5_attr_i64(f, "score_calls", t->n_calls);
    pn_h5_attr_i64(f, "score_lookups", t->n_lookups);
    h5_attr_str(f, "normalisation", k_normalisation);

    const pn_importance *imp = t->importance;
    if (imp) {
        PN_ASSERT(imp->n_tasks == t->n_tasks && imp->n_layers == t->n_layers);
        hsize_t d2[2] = {(hsize_t)t->n_tasks, (hsize_t)t->n_layers}, d1 = (hsize_t)t->n_tasks;
        hid_t d = h5_dataset(f, "importance", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d2, imp->single);
        h5_attr_strs(d, "task_names", names, t->n_tasks);
        PN_CHECK_H5(H5Dclose(d));
        h5_write_f64(f, "all_linear", 1, &d1, imp->all_linear);
        h5_write_f64(f, "all_attention", 1, &d1, imp->all_attention);
    }

    hid_t sg = h5_group(f, "searches");
    for (int i = 0; i < t->n_searches; i++) {
        char gname[32];
        snprintf(gname, sizeof gname, "%02d", i);
        h5_search(sg, gname, t, t->searches[i], names);
    }
    PN_CHECK_H5(H5Gclose(sg));
    if (t->swa) h5_search(f, "swa", t, t->swa, names);

    const pn_beam_entry *ch = chosen_entry(t);
    if (ch) {
        hsize_t dk = (hsize_t)ch->size;
        hid_t d = h5_dataset(f, "chosen", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &dk, ch->members);
        h5_attr_str(d, "search", t->searches[t->chosen_search]->name);
        pn_h5_attr_i64(d, "k", t->chosen_k);
        PN_CHECK_H5(H5Dclose(d));
    }
    free(names);
    free(store);
    if (H5Fclose(f) < 0) {
        remove(tmp);
        pn_die_input(path, "write failed (disk full?)");
    }
    pn_atomic_commit_path(tmp, path);
}
