// export.c — see export.h.
//
// Building from files goes through pn_hybrid_alloc, the same constructor the
// loader uses, so an exported directory loads back into exactly the structure it
// was written from; every tensor then comes from one named place (base model,
// linear weights file, or the block's init) and a name that is nowhere exits 2.
#include "search/export.h"
#include "core/log.h"
#include "core/safetensors.h"

static int attn_like(const pn_block_type *t) { return strcmp(t->name, "attn") == 0 || strcmp(t->name, "swa") == 0; }

static const char *known_types(void) {
    static char buf[512];
    buf[0] = 0;
    for (int i = 0; i < pn_block_type_count(); i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "", pn_hybrid_type_name(pn_block_type_at(i)));
    }
    return buf;
}

static const pn_block_type *type_or_die(const char *name, const char *where, const char *spec) {
    const pn_block_type *t = pn_hybrid_type_find(name);
    if (!t) pn_die_input(where, "'%s': '%s' is not a layer type (known: %s)", spec, name, known_types());
    return t;
}

// "3,7,12-15" into assigned/type; every index in [0, n).
static void parse_layers(char *list, const pn_block_type *t, int n, int *assigned, pn_hybrid_layout *lay,
                         const char *spec) {
    const char *where = "--layers";
    char *save = NULL;
    for (char *piece = strtok_r(list, ",", &save); piece; piece = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        long a = strtol(piece, &end, 10), b = a;
        if (end == piece) pn_die_input(where, "'%s': '%s' is not a layer index or range a-b", spec, piece);
        if (*end == '-') {
            char *e2 = NULL;
            b = strtol(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2) pn_die_input(where, "'%s': '%s' is not a layer index or range a-b", spec, piece);
        } else if (*end) {
            pn_die_input(where, "'%s': '%s' is not a layer index or range a-b", spec, piece);
        }
        if (a < 0 || b >= n || a > b)
            pn_die_input(where, "'%s': layers '%s' out of range (the model has layers 0..%d)", spec, piece, n - 1);
        for (long l = a; l <= b; l++) {
            if (assigned[l]) pn_die_input(where, "'%s': layer %ld is named twice", spec, l);
            assigned[l] = 1;
            lay->type[l] = t;
        }
    }
}

void pn_export_layout_parse(const char *spec, int n_layers, const char *default_block, pn_hybrid_layout *lay) {
    const char *where = "--layers";
    if (n_layers > PN_HYBRID_MAX_LAYERS)
        pn_die_input(where, "the model has %d layers; at most %d supported", n_layers, PN_HYBRID_MAX_LAYERS);
    const pn_block_type *def = type_or_die(default_block ? default_block : "jet", "--block", default_block ? default_block : "jet");
    pn_hybrid_layout_init(lay, n_layers);
    int *assigned = pn_calloc((size_t)PN_MAX(n_layers, 1), sizeof(int));
    const pn_block_type *rest = NULL;
    char *copy = pn_strdup(spec);
    char *save = NULL;
    for (char *item = strtok_r(copy, " \t\n;", &save); item; item = strtok_r(NULL, " \t\n;", &save)) {
        char *colon = strchr(item, ':');
        if (!colon || colon == item || !colon[1])
            pn_die_input(where, "'%s': item '%s' is not TYPE:LAYERS or rest:TYPE (e.g. \"attn:3,7 swa:12 rest:jet\")",
                         spec, item);
        *colon = 0;
        const char *left = item, *right = colon + 1;
        if (strcmp(left, "rest") == 0 || strcmp(right, "rest") == 0) {
            if (rest) pn_die_input(where, "'%s': 'rest' is given twice", spec);
            rest = type_or_die(strcmp(left, "rest") == 0 ? right : left, where, spec);
            continue;
        }
        const pn_block_type *t = type_or_die(left, where, spec);
        char *list = pn_strdup(right);
        parse_layers(list, t, n_layers, assigned, lay, spec);
        free(list);
    }
    for (int l = 0; l < n_layers; l++)
        if (!assigned[l]) lay->type[l] = rest ? rest : def;
    free(copy);
    free(assigned);
}

void pn_export_layout_set(pn_hybrid_layout *lay, const char *assignment, const char *default_type) {
    char where[512];
    snprintf(where, sizeof where, "--set %.480s", assignment);
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment || !eq[1]) pn_die_input(where, "expected [TYPE.]KEY=VALUE (e.g. jet.num_heads=12)");
    char lhs[256];
    snprintf(lhs, sizeof lhs, "%.*s", (int)PN_MIN((size_t)(eq - assignment), sizeof lhs - 1), assignment);
    char *dot = strchr(lhs, '.');
    const pn_block_type *t;
    const char *key;
    if (dot) {
        *dot = 0;
        t = pn_hybrid_type_find(lhs);
        if (!t) pn_die_input(where, "'%s' is not a layer type (known: %s)", lhs, known_types());
        key = dot + 1;
    } else {
        key = lhs;
        const char *tn = strcmp(key, "window_size") == 0 ? "swa" : (default_type ? default_type : "jet");
        t = pn_hybrid_type_find(tn);
        if (!t) pn_die_input(where, "'%s' is not a layer type (known: %s)", tn, known_types());
    }
    pn_hybrid_dims_set(lay, t, key, eq + 1, where);
}

static int name_layer(const char *name) {
    int l = -1;
    if (sscanf(name, "model.layers.%d.", &l) != 1) return -1;
    return l;
}

pn_backbone *pn_export_build(const char *model_dir, const pn_hybrid_layout *lay, const char *linear_weights,
                             uint64_t seed) {
    pn_hf_config base;
    pn_hybrid_layout *blay = pn_malloc(sizeof(*blay));
    pn_hybrid_config_load(model_dir, &base, blay);
    if (lay->n_layers != base.num_hidden_layers)
        pn_die_input(model_dir, "the layout has %d layers but the model has %d", lay->n_layers, base.num_hidden_layers);
    pn_backbone *bb = pn_hybrid_alloc(&base, lay, model_dir);
    for (int l = 0; l < bb->n_layers; l++)
        if (!attn_like(lay->type[l])) pn_block_init_params(&bb->layers[l].attn, seed);

    int n = pn_backbone_param_count(bb);
    pn_bb_param *t = pn_malloc((size_t)n * sizeof(*t));
    pn_backbone_param_table(bb, t);
    pn_safetensors *st = pn_st_open(model_dir);
    pn_safetensors *lw = linear_weights ? pn_st_open(linear_weights) : NULL;
    int n_file = 0, n_base = 0, n_init = 0;
    for (int i = 0; i < n; i++) {
        const char *name = t[i].name;
        int l = name_layer(name);
        const char *sa = strstr(name, ".self_attn.");
        const int linear = l >= 0 && sa && !attn_like(lay->type[l]);
        if (!linear) {
            if (!pn_st_find(st, name)) {
                if (l >= 0 && sa)
                    pn_die_input(model_dir, "tensor '%s' is missing (layer %d is '%s' in the layout: it needs the "
                                 "base model's attention, which this directory does not have for that layer)",
                                 name, l, pn_hybrid_type_name(lay->type[l]));
                pn_die_input(model_dir, "tensor '%s' is missing from the safetensors weights", name);
            }
            pn_st_read_f32(st, name, *t[i].data, t[i].ndim, t[i].shape);
            continue;
        }
        const char *pname = sa + strlen(".self_attn.");
        if (lw) {
            char alt[256];
            snprintf(alt, sizeof alt, "model.layers.%d.linear_attn.%.200s", l, pname);
            if (pn_st_find(lw, alt))
                pn_st_read_f32(lw, alt, *t[i].data, t[i].ndim, t[i].shape);
            else if (pn_st_find(lw, name))
                pn_st_read_f32(lw, name, *t[i].data, t[i].ndim, t[i].shape);
            else
                pn_die_input(linear_weights, "tensor '%s' (or '%s') is missing (layer %d is '%s' in the layout)", alt,
                             name, l, pn_hybrid_type_name(lay->type[l]));
            n_file++;
        } else if (strcmp(blay->type[l]->name, lay->type[l]->name) == 0 && pn_st_find(st, name)) {
            pn_st_read_f32(st, name, *t[i].data, t[i].ndim, t[i].shape);
            n_base++;
        } else {
            n_init++;
        }
    }
    pn_st_close(st);
    if (lw) pn_st_close(lw);
    free(t);
    free(blay);
    pn_info("export: %s, %d layers; linear-block tensors: %d from %s, %d from the model, %d initialised (seed %llu)",
            model_dir, bb->n_layers, n_file, linear_weights ? linear_weights : "-", n_base, n_init,
            (unsigned long long)seed);
    return bb;
}

void pn_export_subnet(pn_supernet *sn, const pn_subnet *s, const char *dir, pn_dtype dtype, const char *source) {
    pn_supernet_apply(sn, s);
    pn_hybrid_save(sn->bb, dir, dtype, source);
}
