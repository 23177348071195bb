// registry.c — the table of block types. Adding a block = one file + one line here.
//
// Entries are weak references while the zoo is being written: a block whose file
// is not linked yet is simply absent from the registry.
#include "block.h"

#define PN_BLOCK_DECL(sym) extern const pn_block_type sym __attribute__((weak))
PN_BLOCK_DECL(pn_block_attn);
PN_BLOCK_DECL(pn_block_swa);
PN_BLOCK_DECL(pn_block_jetblock);
PN_BLOCK_DECL(pn_block_gated_deltanet);
PN_BLOCK_DECL(pn_block_deltanet);
PN_BLOCK_DECL(pn_block_gla);
PN_BLOCK_DECL(pn_block_retnet);
PN_BLOCK_DECL(pn_block_mamba2);
PN_BLOCK_DECL(pn_block_rwkv7);

static const pn_block_type *registry_all(int i) {
    const pn_block_type *t[] = {&pn_block_attn, &pn_block_swa, &pn_block_jetblock, &pn_block_gated_deltanet,
                                &pn_block_deltanet, &pn_block_gla, &pn_block_retnet, &pn_block_mamba2,
                                &pn_block_rwkv7};
    return i < (int)PN_ARRAY_LEN(t) ? t[i] : NULL;
}

#define REGISTRY_SLOTS 9

int pn_block_type_count(void) {
    int n = 0;
    for (int i = 0; i < REGISTRY_SLOTS; i++)
        if (registry_all(i)) n++;
    return n;
}

const pn_block_type *pn_block_type_at(int i) {
    for (int s = 0; s < REGISTRY_SLOTS; s++) {
        if (!registry_all(s)) continue;
        if (i-- == 0) return registry_all(s);
    }
    return NULL;
}

const pn_block_type *pn_block_type_find(const char *name) {
    for (int s = 0; s < REGISTRY_SLOTS; s++) {
        const pn_block_type *t = registry_all(s);
        if (t && strcmp(t->name, name) == 0) return t;
    }
    return NULL;
}
