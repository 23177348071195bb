// block.c — generic helpers over the block interface (setup, init, sizes).
#include "block.h"
#include "block_chunk.h"
#include "core/rng.h"

static int g_blocks_chunk = PN_BLOCKS_DEFAULT_CHUNK;

int pn_blocks_chunk(void) { return g_blocks_chunk; }

void pn_blocks_set_chunk(int chunk) {
    PN_ASSERT(chunk >= 0);
    g_blocks_chunk = chunk;
}

int64_t pn_param_numel(const pn_param_spec *p) {
    int64_t n = 1;
    for (int i = 0; i < p->ndim; i++) n *= p->shape[i];
    return n;
}

void pn_block_setup(pn_block *b, const pn_block_type *type, const pn_block_cfg *cfg) {
    memset(b, 0, sizeof(*b));
    b->type = type;
    b->cfg = *cfg;
    type->defaults(&b->cfg);
    b->n_params = type->params(&b->cfg, b->spec);
    PN_ASSERT(b->n_params >= 0 && b->n_params <= PN_BLOCK_MAX_PARAMS);
}

int64_t pn_block_param_count(const pn_block *b) {
    int64_t n = 0;
    for (int i = 0; i < b->n_params; i++) n += pn_param_numel(&b->spec[i]);
    return n;
}

int pn_block_param_index(const pn_block *b, const char *name) {
    for (int i = 0; i < b->n_params; i++)
        if (strcmp(b->spec[i].name, name) == 0) return i;
    return -1;
}

void pn_block_init_params(pn_block *b, uint64_t seed) {
    for (int i = 0; i < b->n_params; i++) {
        const pn_param_spec *p = &b->spec[i];
        float *x = b->params[i];
        PN_ASSERT(x != NULL);
        int64_t n = pn_param_numel(p);
        uint64_t stream = pn_hash_str(p->name) ^ ((uint64_t)b->cfg.layer_idx << 48);
        switch (p->init) {
        case PN_INIT_ZERO: memset(x, 0, (size_t)n * sizeof(float)); break;
        case PN_INIT_ONE:
            for (int64_t j = 0; j < n; j++) x[j] = 1.0f;
            break;
        case PN_INIT_NORMAL: pn_fill_normal(x, (size_t)n, 0.0f, p->a, seed, stream); break;
        case PN_INIT_UNIFORM: pn_fill_uniform(x, (size_t)n, p->a, p->b, seed, stream); break;
        case PN_INIT_CUSTOM: break;
        }
    }
    if (b->type->init_custom) b->type->init_custom(b, seed);
}

int64_t pn_block_state_floats(const pn_block *b, int64_t L) {
    pn_state_size s = b->type->state_size(&b->cfg, L);
    return s.kv + s.rec + s.conv;
}

int64_t pn_block_state_bytes(const pn_block *b, int64_t L, int kv_bytes, int rec_bytes, int include_conv) {
    pn_state_size s = b->type->state_size(&b->cfg, L);
    return s.kv * kv_bytes + s.rec * rec_bytes + (include_conv ? s.conv * kv_bytes : 0);
}
