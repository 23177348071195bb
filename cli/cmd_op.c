// cmd_op.c — `postnas op run`: one linear-attention op (forward + backward) on a reference file.
//
// The input is laid out like ../shared/fixtures/ops/*.safetensors: q, k, v, the op's gates
// (g / gk / beta / a / b), optional h0, the upstream gradient do and optional dht. The output
// holds o, ht and the gradient dX of sum(o·do) + sum(ht·dht) for every input X, under the
// fixtures' names, so a run can be diffed against a fixture tensor by tensor. The ops
// themselves live in kernels/cpu/ops_rec_*.c; this file only reads, checks shapes and writes.
#include "args.h"
#include "commands.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "kernels/ops.h"
#include <math.h>

// Shape classes of the op tensors, all derived from q (B, T, H, K) and v's last dim V.
typedef enum { SH_QK, SH_V, SH_SCALAR, SH_STATE } shape_kind;

typedef enum { OP_SIMPLE_GLA, OP_GLA, OP_DELTA, OP_GATED_DELTA, OP_DPLR } op_id;

// Gate inputs beyond q, k, v, in the order the op takes them.
typedef struct {
    const char *name;
    op_id id;
    int n_gates;
    const char *gates[3];
    shape_kind gate_shape[3];
    int delta;   // accepts --l2norm
} op_spec;

static const op_spec g_ops[] = {
    {"simple_gla", OP_SIMPLE_GLA, 1, {"g"}, {SH_SCALAR}, 0},
    {"gla", OP_GLA, 1, {"gk"}, {SH_QK}, 0},
    {"delta_rule", OP_DELTA, 1, {"beta"}, {SH_SCALAR}, 1},
    {"gated_delta_rule", OP_GATED_DELTA, 2, {"g", "beta"}, {SH_SCALAR, SH_SCALAR}, 1},
    {"dplr", OP_DPLR, 3, {"gk", "a", "b"}, {SH_QK, SH_QK, SH_QK}, 0},
};

typedef struct {
    const char *name;
    float *x;     // input (NULL when an optional input is absent)
    float *dx;    // its gradient, zero-initialised
    shape_kind kind;
} op_tensor;

static void shape_of(shape_kind kind, const pn_rec_shape *s, int64_t out[4]) {
    out[0] = out[1] = out[2] = out[3] = 0;
    switch (kind) {
    case SH_QK: out[0] = s->B, out[1] = s->T, out[2] = s->H, out[3] = s->K; break;
    case SH_V: out[0] = s->B, out[1] = s->T, out[2] = s->H, out[3] = s->V; break;
    case SH_SCALAR: out[0] = s->B, out[1] = s->T, out[2] = s->H, out[3] = 1; break;
    case SH_STATE: out[0] = s->B, out[1] = s->H, out[2] = s->K, out[3] = s->V; break;
    }
}

static int ndim_of(shape_kind kind) { return kind == SH_SCALAR ? 3 : 4; }

static void shape_str(char *buf, size_t n, int nd, const int64_t *sh) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)sh[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

// Loads tensor NAME as f32 after checking its shape; absent and optional -> NULL.
static float *load_checked(const pn_safetensors *st, const char *path, const char *name, shape_kind kind,
                           const pn_rec_shape *s, int optional) {
    const pn_st_entry *e = pn_st_find(st, name);
    if (!e) {
        if (optional) return NULL;
        pn_die_input(path, "tensor %s: missing (this op needs it)", name);
    }
    int64_t want[4];
    shape_of(kind, s, want);
    const int nd = ndim_of(kind);
    int ok = e->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = e->shape[i] == want[i];
    if (!ok) {
        char ws[128], fs[128];
        shape_str(ws, sizeof ws, nd, want);
        shape_str(fs, sizeof fs, e->ndim, e->shape);
        pn_die_input(path, "tensor %s: expected shape %s (B, T, H, K from q, V from v), found %s", name, ws, fs);
    }
    return pn_st_load_f32(st, name, NULL, NULL);
}

static const char *g_usage = "run --op NAME --in FILE --out FILE [--chunk N] [--scale S] [--l2norm]";

static int op_usage(FILE *f, int code) {
    fprintf(f, "usage: postnas op %s\n\n", g_usage);
    fprintf(f, "Run one linear-attention op, forward and backward, on a reference-style safetensors file.\n\n");
    fprintf(f, "subcommands:\n  run    see 'postnas op run --help'\n\nops:");
    for (size_t i = 0; i < PN_ARRAY_LEN(g_ops); i++) fprintf(f, " %s", g_ops[i].name);
    fprintf(f, "\n");
    return code;
}

static int op_run(int argc, char **argv) {
    pn_opt opts[] = {
        {"--op", "NAME", "simple_gla | gla | delta_rule | gated_delta_rule | dplr (default: the file's 'op' metadata)"},
        {"--in", "FILE", "input safetensors: q, k, v, gates (g / gk / beta / a / b), h0 (optional), do, dht (optional)"},
        {"--out", "FILE", "output safetensors (F32): o, ht and dq, dk, dv, dg / dgk / dbeta / da / db, dh0"},
        {"--chunk", "N", "chunkwise-parallel form with chunk size N (default: recurrent form)"},
        {"--scale", "S", "query scale (default: the file's 'scale' metadata, else K^-1/2)"},
        {"--l2norm", NULL, "L2-normalise q and k inside the op (delta_rule, gated_delta_rule only)"},
    };
    enum { O_OP, O_IN, O_OUT, O_CHUNK, O_SCALE, O_L2 };
    const char *cmd = "op run";
    pn_args_parse(cmd, g_usage + 4,
                  "Reads the inputs, runs the op's forward and the backward of sum(o*do) + sum(ht*dht), and writes\n"
                  "the outputs and every input gradient under the names of ../shared/fixtures/ops (F32).",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, NULL, 0);
    const char *in = pn_opt_require(cmd, &opts[O_IN]);
    const char *out = pn_opt_require(cmd, &opts[O_OUT]);
    const int chunk = (int)pn_opt_int(cmd, &opts[O_CHUNK], 0, 1, 1 << 20);
    const int l2 = opts[O_L2].present;

    pn_safetensors *st = pn_st_open(in);
    const char *opname = opts[O_OP].present ? opts[O_OP].value : pn_st_meta_get(st, "op");
    if (!opname) {
        fprintf(stderr, "postnas %s: error: no --op given and %s has no 'op' metadata\n", cmd, in);
        return PN_EXIT_INPUT;
    }
    const op_spec *op = NULL;
    for (size_t i = 0; i < PN_ARRAY_LEN(g_ops); i++)
        if (strcmp(g_ops[i].name, opname) == 0) op = &g_ops[i];
    if (!op) {
        fprintf(stderr, "postnas %s: error: unknown op '%s' (expected simple_gla, gla, delta_rule, gated_delta_rule or "
                        "dplr)\n", cmd, opname);
        return PN_EXIT_INPUT;
    }
    if (l2 && !op->delta) {
        fprintf(stderr, "postnas %s: error: --l2norm applies to delta_rule and gated_delta_rule only, not %s\n", cmd,
                op->name);
        return PN_EXIT_INPUT;
    }
    const char *meta_op = pn_st_meta_get(st, "op");
    if (meta_op && strcmp(meta_op, op->name) != 0) pn_warn("%s: metadata says op '%s', running '%s'", in, meta_op, op->name);

    // B, T, H, K from q; V from v.
    const pn_st_entry *eq = pn_st_get(st, "q"), *ev = pn_st_get(st, "v");
    if (eq->ndim != 4) pn_die_input(in, "tensor q: expected 4 dims (B, T, H, K), found %d", eq->ndim);
    if (ev->ndim != 4) pn_die_input(in, "tensor v: expected 4 dims (B, T, H, V), found %d", ev->ndim);
    for (int i = 0; i < 4; i++)
        if (eq->shape[i] < (i == 1 ? 0 : 1) || eq->shape[i] > INT32_MAX)
            pn_die_input(in, "tensor q: dim %d is %lld, expected 1..%d", i, (long long)eq->shape[i], INT32_MAX);
    if (ev->shape[3] < 1 || ev->shape[3] > INT32_MAX)
        pn_die_input(in, "tensor v: last dim is %lld, expected 1..%d", (long long)ev->shape[3], INT32_MAX);
    pn_rec_shape s = {(int)eq->shape[0], (int)eq->shape[1], (int)eq->shape[2], (int)eq->shape[3], (int)ev->shape[3],
                      0};
    double scale = 1.0 / sqrt((double)s.K);
    const char *meta_scale = pn_st_meta_get(st, "scale");
    if (opts[O_SCALE].present) {
        scale = pn_opt_double(cmd, &opts[O_SCALE], scale);
    } else if (meta_scale) {
        char *end;
        scale = strtod(meta_scale, &end);
        if (end == meta_scale || *end || !isfinite(scale))
            pn_die_input(in, "__metadata__ 'scale' is '%s', expected a number", meta_scale);
    }
    s.scale = (float)scale;

    // Inputs: q, k, v, the gates, then h0; each with its gradient buffer.
    op_tensor ts[8];
    int nt = 0;
    ts[nt++] = (op_tensor){"q", NULL, NULL, SH_QK};
    ts[nt++] = (op_tensor){"k", NULL, NULL, SH_QK};
    ts[nt++] = (op_tensor){"v", NULL, NULL, SH_V};
    for (int i = 0; i < op->n_gates; i++) ts[nt++] = (op_tensor){op->gates[i], NULL, NULL, op->gate_shape[i]};
    const int i_h0 = nt;
    ts[nt++] = (op_tensor){"h0", NULL, NULL, SH_STATE};
    for (int i = 0; i < nt; i++) {
        int64_t sh[4];
        shape_of(ts[i].kind, &s, sh);
        const int64_t n = sh[0] * sh[1] * sh[2] * sh[3];
        ts[i].x = load_checked(st, in, ts[i].name, ts[i].kind, &s, i == i_h0);
        ts[i].dx = pn_calloc((size_t)n, sizeof(float));
    }
    float *dout = load_checked(st, in, "do", SH_V, &s, 0);
    float *dht = load_checked(st, in, "dht", SH_STATE, &s, 1);
    float *o = pn_calloc((size_t)s.B * s.T * s.H * s.V, sizeof(float));
    float *ht = pn_calloc((size_t)s.B * s.H * s.K * s.V, sizeof(float));
    const float *q = ts[0].x, *k = ts[1].x, *v = ts[2].x, *h0 = ts[i_h0].x;
    float *dq = ts[0].dx, *dk = ts[1].dx, *dv = ts[2].dx, *dh0 = ts[i_h0].dx;

    switch (op->id) {
    case OP_SIMPLE_GLA:
        pn_simple_gla_fwd(&s, chunk, q, k, v, ts[3].x, h0, o, ht);
        pn_simple_gla_bwd(&s, chunk, q, k, v, ts[3].x, h0, dout, dht, dq, dk, dv, ts[3].dx, dh0);
        break;
    case OP_GLA:
        pn_gla_fwd(&s, chunk, q, k, v, ts[3].x, h0, o, ht);
        pn_gla_bwd(&s, chunk, q, k, v, ts[3].x, h0, dout, dht, dq, dk, dv, ts[3].dx, dh0);
        break;
    case OP_DELTA:
        pn_gated_delta_fwd(&s, chunk, l2, q, k, v, NULL, ts[3].x, h0, o, ht);
        pn_gated_delta_bwd(&s, chunk, l2, q, k, v, NULL, ts[3].x, h0, dout, dht, dq, dk, dv, NULL, ts[3].dx, dh0);
        break;
    case OP_GATED_DELTA:
        pn_gated_delta_fwd(&s, chunk, l2, q, k, v, ts[3].x, ts[4].x, h0, o, ht);
        pn_gated_delta_bwd(&s, chunk, l2, q, k, v, ts[3].x, ts[4].x, h0, dout, dht, dq, dk, dv, ts[3].dx, ts[4].dx,
                           dh0);
        break;
    case OP_DPLR:
        pn_dplr_fwd(&s, chunk, q, k, v, ts[3].x, ts[4].x, ts[5].x, h0, o, ht);
        pn_dplr_bwd(&s, chunk, q, k, v, ts[3].x, ts[4].x, ts[5].x, h0, dout, dht, dq, dk, dv, ts[3].dx, ts[4].dx,
                    ts[5].dx, dh0);
        break;
    }

    pn_st_writer *w = pn_st_writer_new();
    int64_t sh[4];
    shape_of(SH_V, &s, sh);
    pn_st_writer_add_f32(w, "o", PN_F32, 4, sh, o);
    shape_of(SH_STATE, &s, sh);
    pn_st_writer_add_f32(w, "ht", PN_F32, 4, sh, ht);
    for (int i = 0; i < nt; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%s", ts[i].name);
        shape_of(ts[i].kind, &s, sh);
        pn_st_writer_add_f32(w, name, PN_F32, ndim_of(ts[i].kind), sh, ts[i].dx);
    }
    char buf[64];
    pn_st_writer_meta(w, "op", op->name);
    snprintf(buf, sizeof buf, "%.17g", scale);
    pn_st_writer_meta(w, "scale", buf);
    snprintf(buf, sizeof buf, "%d", chunk);
    pn_st_writer_meta(w, "chunk", buf);
    pn_st_writer_meta(w, "qk_l2norm", l2 ? "1" : "0");
    pn_st_writer_meta(w, "note", "postnas op run; float32; dX = d(sum(o*do) + sum(ht*dht)) / dX");
    pn_st_writer_save(w, out);
    pn_info("op %s (%s form%s), B=%d T=%d H=%d K=%d V=%d scale %g: wrote %s", op->name,
            chunk ? "chunked" : "recurrent", l2 ? ", q/k L2 norm" : "", s.B, s.T, s.H, s.K, s.V, scale, out);

    for (int i = 0; i < nt; i++) free(ts[i].x), free(ts[i].dx);
    free(dout), free(dht), free(o), free(ht);
    pn_st_close(st);
    return 0;
}

int cmd_op(int argc, char **argv) {
    if (argc < 2) return op_usage(stderr, PN_EXIT_INPUT);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) return op_usage(stdout, 0);
    if (strcmp(argv[1], "run") == 0) return op_run(argc - 1, argv + 1);
    fprintf(stderr, "postnas op: error: unknown subcommand '%s' (expected 'run'; see 'postnas op --help')\n", argv[1]);
    return PN_EXIT_INPUT;
}
