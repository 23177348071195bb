// cmd_block.c — `postnas block run`: one token-mixer block on a reference file.
//
// Reads `param.*`, `x` (B, T, C) and `dy` laid out like ../shared/fixtures/layers/*,
// runs forward and backward through the block interface, and writes `y`, `dx` and
// `grad.NAME` for every parameter. Works for every registered block type: the
// dimensions are inferred from well-known parameter names (A_log → H, q_proj rows /
// H → K, o_norm → V, conv weights → W, generator w1 → r, ...) where the file has
// them, --set fills or overrides the rest, and then the block's own parameter table
// is checked against the file, tensor by tensor (exit 2 naming file, tensor,
// expected and found shape). rwkv7 files with v_lora weights also need `v_first`
// (B, T, C); its gradient is written as `dv_first`.
#include "args.h"
#include "blocks/block.h"
#include "blocks/block_util.h"
#include "commands.h"
#include "core/log.h"
#include "core/safetensors.h"

typedef struct {
    const char *key;
    size_t off;
    int is_float;
} cfg_key;

#define CFG_INT(f) {#f, offsetof(pn_block_cfg, f), 0}
#define CFG_FLT(f) {#f, offsetof(pn_block_cfg, f), 1}
static const cfg_key g_keys[] = {
    CFG_INT(C),        CFG_INT(H),      CFG_INT(H_kv),        CFG_INT(K),         CFG_INT(V),
    CFG_INT(conv_size), CFG_INT(window), CFG_INT(gen_reduction), CFG_INT(qkv_bias), CFG_INT(o_bias), CFG_INT(qk_norm),
    CFG_FLT(rope_theta), CFG_FLT(norm_eps), CFG_INT(n_groups),  CFG_INT(d_state),   CFG_INT(expand),
    CFG_INT(lora_w),   CFG_INT(lora_a), CFG_INT(lora_v),      CFG_INT(lora_g),    CFG_INT(layer_idx),
    CFG_INT(first_rwkv),
};
#define N_KEYS ((int)PN_ARRAY_LEN(g_keys))

static int *cfg_int(pn_block_cfg *c, int i) { return (int *)((char *)c + g_keys[i].off); }

static int key_index(const char *k, size_t len) {
    for (int i = 0; i < N_KEYS; i++)
        if (strlen(g_keys[i].key) == len && strncmp(g_keys[i].key, k, len) == 0) return i;
    return -1;
}

static void set_apply(pn_block_cfg *c, int *is_set, const char *kv) {
    const char *eq = strchr(kv, '=');
    int i = eq ? key_index(kv, (size_t)(eq - kv)) : -1;
    if (i < 0) {
        char valid[512] = "";
        for (int j = 0; j < N_KEYS; j++) {
            strncat(valid, g_keys[j].key, sizeof valid - strlen(valid) - 1);
            if (j + 1 < N_KEYS) strncat(valid, ", ", sizeof valid - strlen(valid) - 1);
        }
        pn_die_input("--set", "'%s' is not KEY=VALUE with a known key; valid keys: %s", kv, valid);
    }
    char *end;
    errno = 0;
    if (g_keys[i].is_float) {
        double v = strtod(eq + 1, &end);
        if (errno || *end || end == eq + 1)
            pn_die_input("--set", "%s expects a number, got '%s'", g_keys[i].key, eq + 1);
        *(float *)((char *)c + g_keys[i].off) = (float)v;
    } else {
        long v = strtol(eq + 1, &end, 10);
        if (errno || *end || end == eq + 1 || v < 0 || v > (1L << 30))
            pn_die_input("--set", "%s expects a non-negative integer, got '%s'", g_keys[i].key, eq + 1);
        *cfg_int(c, i) = (int)v;
    }
    is_set[i] = 1;
}

// Shape of param.NAME, or NULL when the file lacks it.
static const pn_st_entry *param_entry(const pn_safetensors *st, const char *name) {
    char full[160];
    snprintf(full, sizeof full, "param.%s", name);
    return pn_st_find(st, full);
}

static int64_t dim_of(const pn_safetensors *st, const char *name, int d) {
    const pn_st_entry *e = param_entry(st, name);
    return e && d < e->ndim ? e->shape[d] : 0;
}

// Fill cfg fields the user did not --set from shapes the reference names pin down.
// A field is only set when the division is exact; the block's table check later
// reports anything that still disagrees.
static void cfg_infer(pn_block_cfg *c, const int *set, const pn_safetensors *st) {
#define UNSET(f) (!set[key_index(#f, strlen(#f))] && !c->f)
#define TRY(f, val)                                           \
    do {                                                      \
        int64_t v_ = (val);                                   \
        if (UNSET(f) && v_ > 0 && v_ < (1 << 30)) c->f = (int)v_; \
    } while (0)
    TRY(H, dim_of(st, "A_log", 0));
    TRY(H, dim_of(st, "b_proj.weight", 0));
    TRY(H, dim_of(st, "r_k", 0));
    TRY(K, dim_of(st, "r_k", 1));
    if (param_entry(st, "q_norm.weight")) {
        TRY(qk_norm, 1);
        TRY(K, dim_of(st, "q_norm.weight", 0));
        if (c->K && dim_of(st, "q_proj.weight", 0) % c->K == 0) TRY(H, dim_of(st, "q_proj.weight", 0) / c->K);
    }
    if (param_entry(st, "o_proj.bias")) TRY(o_bias, 1);
    if (param_entry(st, "q_proj.bias")) TRY(qkv_bias, 1);
    TRY(V, dim_of(st, "o_norm.weight", 0));
    TRY(V, dim_of(st, "g_norm_swish_gate.weight", 0));
    int64_t q = dim_of(st, "q_proj.weight", 0), v = dim_of(st, "v_proj.weight", 0);
    if (c->V && v % c->V == 0) TRY(H, v / c->V);  // gla, retnet: V from the norm, then H
    if (c->H && q % c->H == 0) TRY(K, q / c->H);
    if (c->H && v % c->H == 0 && !param_entry(st, "q_norm.weight")) TRY(V, v / c->H);
    if (c->K && param_entry(st, "q_norm.weight") && dim_of(st, "k_proj.weight", 0) % c->K == 0)
        TRY(H_kv, dim_of(st, "k_proj.weight", 0) / c->K);
    TRY(conv_size, dim_of(st, "q_conv1d.weight", 2));
    TRY(conv_size, dim_of(st, "conv1d.weight", 2));
    int64_t HV = (int64_t)c->H * c->V, w2 = dim_of(st, "dynamic_conv1d.kernel_generator.w2.weight", 0);
    int64_t w1 = dim_of(st, "dynamic_conv1d.kernel_generator.w1.weight", 0);
    if (HV && w2 % HV == 0) TRY(conv_size, w2 / HV);
    if (w1 && HV % w1 == 0) TRY(gen_reduction, HV / w1);
    // mamba2: norm (expand·C), conv rows expand·C + 2·G·N
    int64_t nrm = dim_of(st, "norm.weight", 0), cr = dim_of(st, "conv1d.weight", 0);
    if (nrm && c->C && nrm % c->C == 0) TRY(expand, nrm / c->C);
    if (nrm && cr > nrm) {
        int G = c->n_groups ? c->n_groups : 1;
        if ((cr - nrm) % (2 * G) == 0) TRY(d_state, (cr - nrm) / (2 * G));
    }
    TRY(lora_w, dim_of(st, "w_lora.lora.0.weight", 0));
    TRY(lora_a, dim_of(st, "a_lora.lora.0.weight", 0));
    TRY(lora_v, dim_of(st, "v_lora.lora.0.weight", 0));
    TRY(lora_g, dim_of(st, "g_lora.lora.0.weight", 0));
    if (UNSET(first_rwkv) && dim_of(st, "x_r", 2) && !param_entry(st, "v_lora.lora.0.weight")) c->first_rwkv = 1;
#undef TRY
#undef UNSET
}

// The nonzero fields, "C=64 H=2 K=16 ...".
static const char *cfg_str(const pn_block_cfg *c, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < N_KEYS && len < n; i++) {
        const char *sep = len ? " " : "";
        if (g_keys[i].is_float) {
            float v = *(const float *)((const char *)c + g_keys[i].off);
            if (v != 0) len += (size_t)snprintf(buf + len, n - len, "%s%s=%g", sep, g_keys[i].key, v);
        } else {
            int v = *(const int *)((const char *)c + g_keys[i].off);
            if (v != 0) len += (size_t)snprintf(buf + len, n - len, "%s%s=%d", sep, g_keys[i].key, v);
        }
    }
    return buf;
}

// Every entry of the table must be in the file with exactly the table's shape.
static void params_load(pn_block *blk, const pn_safetensors *st, const char *path) {
    char cfgbuf[512], where[256], sa[96], sb[96];
    for (int i = 0; i < blk->n_params; i++) {
        const pn_param_spec *p = &blk->spec[i];
        snprintf(where, sizeof where, "%s (tensor param.%s)", path, p->name);
        const pn_st_entry *e = param_entry(st, p->name);
        if (!e)
            pn_die_input(where, "missing; block %s expects shape %s (resolved dims: %s; --set overrides)",
                         blk->type->name, pn_shape_str(p->ndim, p->shape, sa, sizeof sa),
                         cfg_str(&blk->cfg, cfgbuf, sizeof cfgbuf));
        int same = e->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
        if (!same)
            pn_die_input(where, "expected shape %s, found %s (block %s, resolved dims: %s; --set overrides)",
                         pn_shape_str(p->ndim, p->shape, sa, sizeof sa), pn_shape_str(e->ndim, e->shape, sb, sizeof sb),
                         blk->type->name, cfg_str(&blk->cfg, cfgbuf, sizeof cfgbuf));
        int64_t n = pn_param_numel(p);
        blk->params[i] = pn_malloc((size_t)n * sizeof(float));
        blk->grads[i] = pn_calloc((size_t)n, sizeof(float));
        char full[160];
        snprintf(full, sizeof full, "param.%s", p->name);
        pn_st_read_f32(st, full, blk->params[i], p->ndim, p->shape);
    }
    for (int j = 0; j < st->n_entries; j++) {
        const char *nm = st->entries[j].name;
        if (strncmp(nm, "param.", 6) == 0 && pn_block_param_index(blk, nm + 6) < 0)
            pn_warn("%s: tensor %s is not a parameter of block %s (ignored)", path, nm, blk->type->name);
    }
}

static float *load_like_x(const pn_safetensors *st, const char *name, const int64_t *xs) {
    float *p = pn_malloc((size_t)(xs[0] * xs[1] * xs[2]) * sizeof(float));
    pn_st_read_f32(st, name, p, 3, xs);
    return p;
}

static int block_run(int argc, char **argv) {
    pn_opt opts[] = {
        {"--block", "NAME", "block type (see 'postnas block list')"},
        {"--in", "FILE", "safetensors with param.*, x (B, T, C), dy (B, T, C)"},
        {"--out", "FILE", "output safetensors: y, dx, grad.NAME (F32)"},
        {"--set", "KEY=VALUE", "set a block config field (C, H, H_kv, K, V, conv_size, window, ...)", 1},
        {"--chunk", "N", "chunk size of the linear-attention ops (0 = recurrent form; default 64)"},
    };
    pn_args_parse("block run", "--block NAME --in FILE --out FILE [--set KEY=VALUE ...] [--chunk N]",
                  "Run one token-mixer block forward and backward on a reference file. Dimensions come from the\n"
                  "parameter shapes where the names pin them down; --set gives the rest.",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, NULL, 0);
    const char *name = pn_opt_require("block run", &opts[0]);
    const char *in = pn_opt_require("block run", &opts[1]);
    const char *out = pn_opt_require("block run", &opts[2]);
    int chunk = (int)pn_opt_int("block run", &opts[4], 64, 0, 1 << 20);

    const pn_block_type *type = pn_block_type_find(name);
    if (!type) {
        char names[256] = "";
        for (int i = 0; i < pn_block_type_count(); i++) {
            strncat(names, pn_block_type_at(i)->name, sizeof names - strlen(names) - 1);
            if (i + 1 < pn_block_type_count()) strncat(names, ", ", sizeof names - strlen(names) - 1);
        }
        pn_die_input("--block", "unknown block '%s'; registered: %s", name, names);
    }

    pn_block_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    int is_set[N_KEYS] = {0};
    for (int i = 0; i < opts[3].n_values; i++) set_apply(&cfg, is_set, opts[3].values[i]);

    pn_safetensors *st = pn_st_open(in);
    const pn_st_entry *xe = pn_st_get(st, "x");
    char where[4200], sa[96];
    snprintf(where, sizeof where, "%s (tensor x)", in);
    if (xe->ndim != 3 || xe->shape[0] <= 0 || xe->shape[1] <= 0 || xe->shape[2] <= 0 || xe->shape[0] > (1 << 20) ||
        xe->shape[1] > (1 << 24) || xe->shape[2] > (1 << 20))
        pn_die_input(where, "expected shape [B, T, C], found %s", pn_shape_str(xe->ndim, xe->shape, sa, sizeof sa));
    int64_t xs[3] = {xe->shape[0], xe->shape[1], xe->shape[2]};
    int B = (int)xs[0], T = (int)xs[1];
    if (is_set[key_index("C", 1)] && cfg.C != (int)xs[2])
        pn_die_input(where, "--set C=%d disagrees with x's last dimension %lld", cfg.C, (long long)xs[2]);
    cfg.C = (int)xs[2];
    cfg_infer(&cfg, is_set, st);

    pn_block blk;
    pn_block_setup(&blk, type, &cfg);
    params_load(&blk, st, in);
    float *x = load_like_x(st, "x", xs);
    float *dy = load_like_x(st, "dy", xs);
    size_t N = (size_t)(xs[0] * xs[1] * xs[2]);
    pn_block_ctx ctx = {0};
    float *v_first = NULL, *dv_first = NULL;
    if (pn_st_find(st, "v_first") || (!blk.cfg.first_rwkv && strcmp(type->name, "rwkv7") == 0)) {
        v_first = load_like_x(st, "v_first", xs);  // dies naming the tensor when absent
        dv_first = pn_calloc(N, sizeof(float));
        ctx.v_first = v_first;
        ctx.dv_first = dv_first;
    }

    char cfgbuf[512];
    pn_info("block %s: B=%d T=%d, %s, %d parameters (%lld values), chunk %d", type->name, B, T,
            cfg_str(&blk.cfg, cfgbuf, sizeof cfgbuf), blk.n_params, (long long)pn_block_param_count(&blk), chunk);
    pn_blocks_set_chunk(chunk);
    float *y = pn_malloc(N * sizeof(float)), *dx = pn_calloc(N, sizeof(float));
    float *act = pn_malloc(PN_MAX(type->act_floats(&blk.cfg, B, T), (size_t)1) * sizeof(float));
    float *scratch = pn_malloc(PN_MAX(type->scratch_floats(&blk.cfg, B, T), (size_t)1) * sizeof(float));
    type->forward(&blk, y, x, B, T, act, scratch, &ctx);
    type->backward(&blk, dx, dy, x, B, T, act, scratch, &ctx);

    pn_st_writer *w = pn_st_writer_new();
    pn_st_writer_add_f32(w, "y", PN_F32, 3, xs, y);
    pn_st_writer_add_f32(w, "dx", PN_F32, 3, xs, dx);
    if (dv_first) pn_st_writer_add_f32(w, "dv_first", PN_F32, 3, xs, dv_first);
    for (int i = 0; i < blk.n_params; i++) {
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", blk.spec[i].name);
        pn_st_writer_add_f32(w, gname, PN_F32, blk.spec[i].ndim, blk.spec[i].shape, blk.grads[i]);
    }
    pn_st_writer_meta(w, "block", type->name);
    pn_st_writer_meta(w, "config", cfg_str(&blk.cfg, cfgbuf, sizeof cfgbuf));
    pn_st_writer_meta(w, "input", in);
    pn_st_writer_save(w, out);
    pn_info("wrote %s (y, dx, %d gradients)", out, blk.n_params);

    for (int i = 0; i < blk.n_params; i++) free(blk.params[i]), free(blk.grads[i]);
    free(x), free(dy), free(y), free(dx), free(act), free(scratch), free(v_first), free(dv_first);
    pn_st_close(st);
    return 0;
}

static int block_list(void) {
    for (int i = 0; i < pn_block_type_count(); i++) printf("%s\n", pn_block_type_at(i)->name);
    return 0;
}

int cmd_block(int argc, char **argv) {
    const char *usage = "usage: postnas block run --block NAME --in FILE --out FILE [--set KEY=VALUE ...] [--chunk N]\n"
                        "       postnas block list\n\n"
                        "Token-mixer blocks: 'run' runs one block forward and backward on a reference file\n"
                        "('postnas block run --help'); 'list' prints the registered block types.\n";
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? PN_EXIT_INPUT : 0;
    }
    if (strcmp(argv[1], "run") == 0) return block_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0) return block_list();
    fprintf(stderr, "postnas block: error: unknown subcommand '%s' (expected run or list)\n", argv[1]);
    return PN_EXIT_INPUT;
}
