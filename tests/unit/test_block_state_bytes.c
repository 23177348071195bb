// test_block_state_bytes.c — decode-state bytes of the Jet-Nemotron-2B layout.
//
// Jet-Nemotron-2B (C = 1536) keeps Qwen2.5-1.5B's attention in 2 full-attention and
// 2 sliding-window (window 1152) layers — 12 query heads, 2 KV heads, head dim 128 —
// and runs JetBlock (12 heads, K 96, V 256) in the other 24. At 65,536 tokens of
// context, with bf16 KV caches and fp32 recurrent states and conv rows excluded, the
// paper's accounting gives 128 MiB (attn), 2.25 MiB (swa) and 27 MiB (jetblock).
// The expected numbers are literal arithmetic from those published dims, compared
// with pn_block_state_bytes on blocks set up with the same dims.
#include "blocks/block.h"
#include "blocks/block_util.h"
#include "test_util.h"

static int64_t state_bytes(const char *type_name, pn_block_cfg cfg, int64_t L) {
    const pn_block_type *t = pn_block_type_find(type_name);
    CHECK(t != NULL, "block type %s not registered", type_name);
    if (!t) return -1;
    pn_block b;
    pn_block_setup(&b, t, &cfg);
    return pn_block_state_bytes(&b, L, 2, 4, 0);  // bf16 KV, fp32 states, no conv rows
}

int main(void) {
    const int64_t L = 65536, MiB = 1024 * 1024;
    pn_block_cfg attn = {.C = 1536, .H = 12, .H_kv = 2, .K = 128, .qkv_bias = 1, .rope_theta = 1e6f};
    pn_block_cfg swa = attn;
    swa.window = 1152;
    pn_block_cfg jet = {.C = 1536, .H = 12, .K = 96, .V = 256, .conv_size = 4, .gen_reduction = 8};

    // layers × (K and V) × KV heads × head dim × positions × bytes
    int64_t attn_expect = 2LL * 2 * 2 * 128 * 65536 * 2;
    int64_t swa_expect = 2LL * 2 * 2 * 128 * 1152 * 2;
    // layers × heads × K × V × 4 bytes
    int64_t jet_expect = 24LL * 12 * 96 * 256 * 4;
    CHECK(attn_expect == 128 * MiB, "hand arithmetic: attn %lld", (long long)attn_expect);
    CHECK(swa_expect * 4 == 9 * MiB, "hand arithmetic: swa %lld", (long long)swa_expect);
    CHECK(jet_expect == 27 * MiB, "hand arithmetic: jetblock %lld", (long long)jet_expect);

    int64_t a = 2 * state_bytes("attn", attn, L);
    int64_t s = 2 * state_bytes("swa", swa, L);
    int64_t j = 24 * state_bytes("jetblock", jet, L);
    CHECK(a == attn_expect, "attn: %lld bytes, expected %lld (128 MiB)", (long long)a, (long long)attn_expect);
    CHECK(s == swa_expect, "swa: %lld bytes, expected %lld (2.25 MiB)", (long long)s, (long long)swa_expect);
    CHECK(j == jet_expect, "jetblock: %lld bytes, expected %lld (27 MiB)", (long long)j, (long long)jet_expect);
    printf("Jet-Nemotron-2B at %lld tokens: attn %.2f MiB, swa %.2f MiB, jetblock %.2f MiB\n", (long long)L,
           (double)a / MiB, (double)s / MiB, (double)j / MiB);

    // The conv rows exist but are outside the published accounting: (W−1) raw x Wvᵀ rows.
    const pn_block_type *jt = pn_block_type_find("jetblock");
    if (jt) {
        pn_block b;
        pn_block_setup(&b, jt, &jet);
        int64_t with_conv = pn_block_state_bytes(&b, L, 2, 4, 1);
        CHECK(with_conv - j / 24 == 3LL * 12 * 256 * 2, "jetblock conv rows: %lld bytes, expected 3 × 3072 × 2",
              (long long)(with_conv - j / 24));
    }
    return test_summary("test_block_state_bytes");
}
