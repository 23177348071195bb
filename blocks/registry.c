// registry.c — the table of block types. Adding a block = one file + one line here.
#include "block.h"

extern const pn_block_type pn_block_attn, pn_block_swa, pn_block_jetblock, pn_block_gated_deltanet,
    pn_block_deltanet, pn_block_gla, pn_block_retnet, pn_block_mamba2, pn_block_rwkv7;

static const pn_block_type *const g_registry[] = {
    &pn_block_attn,    &pn_block_swa, &pn_block_jetblock, &pn_block_gated_deltanet, &pn_block_deltanet,
    &pn_block_gla,     &pn_block_retnet, &pn_block_mamba2, &pn_block_rwkv7,
};

int pn_block_type_count(void) { return (int)PN_ARRAY_LEN(g_registry); }

const pn_block_type *pn_block_type_at(int i) {
    return i >= 0 && i < pn_block_type_count() ? g_registry[i] : NULL;
}

const pn_block_type *pn_block_type_find(const char *name) {
    for (int i = 0; i < pn_block_type_count(); i++)
        if (strcmp(g_registry[i]->name, name) == 0) return g_registry[i];
    return NULL;
}
