// engine.c — see engine.h.
//
// One pass (a prefill chunk of Tc tokens or a decode step, Tc = 1) runs the
// decoder over N = B·Tc rows laid out (B, Tc, C), the layout every block's
// prefill takes:  x = embed(ids);  per layer  x += mixer(RMSNorm_in(x)) through
// the block's prefill/decode on its state;  x += down(silu(gate(x')) · up(x')),
// x' = RMSNorm_post(x). Only the last position of each sequence goes through the
// final norm and the LM head: nothing else is ever read.
//
// rwkv7's value residual: the first rwkv7 layer of a pass points ctx.v_first at
// its v, which lives in the shared mixer scratch that the next layer reuses. The
// engine therefore copies it into its own (B, Tc, C) buffer right after that
// layer and hands the copy to the later rwkv7 layers of the same pass. Each pass
// starts with ctx.v_first = NULL so the first rwkv7 layer always takes the role.
#include "search/engine.h"
#include "core/log.h"
#include "kernels/ops.h"

#define ENGINE_WHERE "inference engine"

size_t pn_engine_state_bytes_for(const pn_backbone *bb, int batch, int64_t ctx) {
    size_t total = 0;
    for (int l = 0; l < bb->n_layers; l++)
        total += (size_t)batch * (size_t)pn_block_state_floats(bb->layers[l].mixer, ctx) * sizeof(float);
    return total;
}

// Carves (or, with base == NULL, only counts) the activation buffers for (B, chunk).
static size_t engine_layout(pn_engine *e, char *base) {
    const size_t N = (size_t)e->B * e->chunk, B = (size_t)e->B;
    size_t off = 0;
#define TAKE(field, type, n)                                          \
    do {                                                              \
        if (base) e->field = (type *)(base + off);                    \
        off += (((size_t)(n) * sizeof(type)) + 63) & ~(size_t)63;     \
    } while (0)
    TAKE(ids, int64_t, N);
    TAKE(x, float, N * e->C);
    TAKE(xn, float, N * e->C);
    TAKE(y, float, N * e->C);
    TAKE(rstd, float, N);
    TAKE(gate, float, N * e->I);
    TAKE(up, float, N * e->I);
    TAKE(v_first, float, N * e->C);
    TAKE(last, float, B * e->C);
    TAKE(last_n, float, B * e->C);
    TAKE(logits, float, B * e->V);
    TAKE(scratch, float, e->scratch_floats);
    TAKE(next, int64_t, B);
    TAKE(done, int, B);
#undef TAKE
    return off;
}

pn_engine *pn_engine_create(const pn_backbone *bb, int batch, int64_t max_context, int prefill_chunk) {
    if (batch < 1 || max_context < 1 || prefill_chunk < 1)
        pn_die_input(ENGINE_WHERE, "batch, max_context and prefill_chunk must be >= 1 (got %d, %lld, %d)", batch,
                     (long long)max_context, prefill_chunk);
    pn_engine *e = pn_calloc(1, sizeof(*e));
    e->bb = bb;
    e->B = batch;
    e->max_context = max_context;
    e->chunk = (int)PN_MIN((int64_t)prefill_chunk, max_context);
    e->n_layers = bb->n_layers;
    e->C = bb->C;
    e->I = bb->I;
    e->V = bb->V;

    // States: one allocation, each layer's B sequences back to back, no padding.
    e->mixers = pn_malloc((size_t)e->n_layers * sizeof(pn_block *));
    e->state = pn_malloc((size_t)e->n_layers * sizeof(float *));
    e->state_bytes = pn_engine_state_bytes_for(bb, batch, max_context);
    pn_arena_init(&e->states, "decode states", e->state_bytes);
    float *s = e->state_bytes ? pn_arena_alloc(&e->states, e->state_bytes) : NULL;
    size_t scratch = 0;
    for (int l = 0; l < e->n_layers; l++) {
        pn_block *m = bb->layers[l].mixer;
        e->mixers[l] = m;
        e->state[l] = s;
        s += (size_t)batch * (size_t)pn_block_state_floats(m, max_context);
        scratch = PN_MAX(scratch, m->type->scratch_floats(&m->cfg, batch, e->chunk));
        scratch = PN_MAX(scratch, m->type->scratch_floats(&m->cfg, batch, 1));
    }
    e->scratch_floats = scratch;

    size_t act_bytes = engine_layout(e, NULL);
    pn_arena_init(&e->acts, "engine activations", act_bytes);
    char *base = pn_arena_alloc(&e->acts, act_bytes);
    memset(base, 0, act_bytes);
    engine_layout(e, base);
    pn_debug("engine: batch %d, context %lld, chunk %d: states %.1f MiB, activations %.1f MiB", batch,
             (long long)max_context, e->chunk, e->state_bytes / 1048576.0, act_bytes / 1048576.0);
    return e;
}

void pn_engine_free(pn_engine *e) {
    if (!e) return;
    pn_arena_free(&e->states);
    pn_arena_free(&e->acts);
    free(e->mixers);
    free(e->state);
    free(e);
}

void pn_engine_reset(pn_engine *e) { e->pos = 0; }

size_t pn_engine_state_bytes(const pn_engine *e) { return e->state_bytes; }

// One pass over e->ids (B, Tc) at position e->pos; leaves the last position's
// logits in e->logits and advances e->pos.
static void engine_pass(pn_engine *e, int Tc) {
    const pn_backbone *bb = e->bb;
    const int B = e->B, C = e->C, I = e->I;
    const int64_t N = (int64_t)B * Tc;
    const float eps = (float)bb->cfg.rms_norm_eps;
    pn_block_ctx ctx = {NULL, NULL};

    pn_embedding_fwd(e->x, e->ids, bb->embed, N, C);
    for (int l = 0; l < e->n_layers; l++) {
        const pn_bb_layer *ly = &bb->layers[l];
        pn_block *m = e->mixers[l];
        if (ly->mixer != m)
            pn_die_internal(__FILE__, __LINE__, "layer %d's mixer changed after the engine was created", l);
        pn_rmsnorm_fwd(e->xn, e->rstd, e->x, ly->in_norm, N, C, eps);
        if (Tc == 1)
            m->type->decode(m, e->y, e->xn, B, e->state[l], e->pos, e->max_context, e->scratch, &ctx);
        else
            m->type->prefill(m, e->y, e->xn, B, Tc, e->state[l], e->pos, e->max_context, e->scratch, &ctx);
        if (ctx.v_first && ctx.v_first != e->v_first) {
            memcpy(e->v_first, ctx.v_first, (size_t)N * C * sizeof(float));
            ctx.v_first = e->v_first;
        }
        pn_add_inplace(e->x, e->y, N * C);
        pn_rmsnorm_fwd(e->xn, e->rstd, e->x, ly->post_norm, N, C, eps);
        pn_linear_fwd(e->gate, e->xn, ly->gate, NULL, N, C, I);
        pn_linear_fwd(e->up, e->xn, ly->up, NULL, N, C, I);
        pn_swiglu_fwd(e->gate, e->gate, e->up, N * I);
        pn_linear_fwd(e->y, e->gate, ly->down, NULL, N, I, C);
        pn_add_inplace(e->x, e->y, N * C);
    }
    for (int b = 0; b < B; b++)
        memcpy(e->last + (size_t)b * C, e->x + ((size_t)b * Tc + Tc - 1) * C, (size_t)C * sizeof(float));
    pn_rmsnorm_fwd(e->last_n, e->rstd, e->last, bb->final_norm, B, C, eps);
    pn_linear_fwd(e->logits, e->last_n, bb->lm_head, NULL, B, C, e->V);
    e->pos += Tc;
}

// Exits 2 unless Tc more tokens fit in the context.
static void engine_check_room(const pn_engine *e, int64_t Tc) {
    if (e->pos + Tc > e->max_context)
        pn_die_input(ENGINE_WHERE, "position %lld + %lld new tokens exceeds the engine's max_context %lld",
                     (long long)e->pos, (long long)Tc, (long long)e->max_context);
}

static void engine_check_id(const pn_engine *e, int64_t id, int b, int64_t t) {
    if (id < 0 || id >= e->V)
        pn_die_input(ENGINE_WHERE, "token id %lld of sequence %d at position %lld is outside the vocabulary [0, %d)",
                     (long long)id, b, (long long)t, e->V);
}

const float *pn_engine_prefill(pn_engine *e, const int64_t *ids, int T) {
    if (T < 1) pn_die_input(ENGINE_WHERE, "prefill of %d tokens at position %lld: need at least one token", T,
                            (long long)e->pos);
    engine_check_room(e, T);
    for (int t0 = 0; t0 < T; t0 += e->chunk) {
        const int Tc = PN_MIN(e->chunk, T - t0);
        for (int b = 0; b < e->B; b++)
            for (int t = 0; t < Tc; t++) {
                int64_t id = ids[(int64_t)b * T + t0 + t];
                engine_check_id(e, id, b, e->pos + t);
                e->ids[(int64_t)b * Tc + t] = id;
            }
        engine_pass(e, Tc);
    }
    return e->logits;
}

const float *pn_engine_decode(pn_engine *e, const int64_t *next_ids) {
    engine_check_room(e, 1);
    for (int b = 0; b < e->B; b++) {
        engine_check_id(e, next_ids[b], b, e->pos);
        e->ids[b] = next_ids[b];
    }
    engine_pass(e, 1);
    return e->logits;
}

static int64_t engine_argmax(const float *row, int V) {
    int64_t best = 0;
    for (int v = 1; v < V; v++)
        if (row[v] > row[best]) best = v;
    return best;
}

int pn_engine_generate_greedy(pn_engine *e, const int64_t *prompt, int T, int max_new, const int64_t *stop_ids,
                              int n_stop, int64_t *out, int *out_len) {
    const int B = e->B;
    PN_ASSERT(max_new >= 0 && n_stop >= 0);
    for (int b = 0; b < B; b++) {
        out_len[b] = 0;
        e->done[b] = 0;
        for (int i = 0; i < max_new; i++) out[(int64_t)b * max_new + i] = -1;
    }
    pn_engine_reset(e);
    if (max_new == 0) return 0;
    if ((int64_t)T + max_new - 1 > e->max_context)
        pn_die_input(ENGINE_WHERE, "prompt of %d tokens + %d new tokens needs a context of %lld, max_context is %lld",
                     T, max_new, (long long)T + max_new - 1, (long long)e->max_context);
    const float *logits = pn_engine_prefill(e, prompt, T);
    int longest = 0;
    for (int step = 0; step < max_new; step++) {
        int live = 0;
        for (int b = 0; b < B; b++) {
            if (e->done[b]) continue;  // keeps feeding its last token as padding
            int64_t tok = engine_argmax(logits + (size_t)b * e->V, e->V);
            out[(int64_t)b * max_new + step] = tok;
            out_len[b] = step + 1;
            e->next[b] = tok;
            for (int s = 0; s < n_stop; s++)
                if (stop_ids[s] == tok) e->done[b] = 1;
            live += !e->done[b];
        }
        longest = step + 1;
        if (!live || step + 1 == max_new) break;
        logits = pn_engine_decode(e, e->next);
    }
    return longest;
}
