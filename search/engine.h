// engine.h — the CPU hybrid inference engine: batched prefill + decode for any
// hybrid model the backbone describes (per layer: attn, swa or any linear block).
//
// The engine borrows everything frozen from the backbone (embeddings, norms, MLPs,
// LM head) and runs each layer's `mixer` as it is when the engine is created —
// the pretrained attention, a supernet path or an exported hybrid. It owns:
//  - the decode states of `batch` sequences for every layer, sized by the block's
//    state_size at max_context (attn: full KV cache; swa: a ring of the window;
//    linear blocks: fp32 recurrent + conv states), packed without padding in one
//    arena, so pn_engine_state_bytes is exactly what the states cost;
//  - activation scratch for one prefill chunk of B·prefill_chunk rows, so the
//    projections and MLPs are GEMMs over the whole batch and nothing is allocated
//    per token.
// All sequences of a batch share one position (prompts of equal length). The
// logits returned by prefill/decode live in the engine and are overwritten by the
// next call. Swapping a layer's mixer after creation is a bug (checked): create a
// new engine for the new hybrid.
#pragma once
#include "core/arena.h"
#include "supernet/backbone.h"

typedef struct {
    const pn_backbone *bb;
    int B;                // sequences per batch
    int64_t max_context;  // positions the states can hold
    int chunk;            // prefill chunk (tokens per sequence per pass)
    int64_t pos;          // tokens already held per sequence
    int n_layers, C, I, V;
    pn_block **mixers;    // the mixers the states were sized for (n_layers)
    float **state;        // per layer: B · pn_block_state_floats(mixer, max_context)
    size_t state_bytes;
    pn_arena states;      // one allocation for every layer's states
    pn_arena acts;        // activations and scratch for B·chunk rows
    int64_t *ids;         // (B, chunk) the current chunk's tokens
    float *x;             // (B, chunk, C) residual stream
    float *xn;            // (B, chunk, C) normed input of the mixer / MLP
    float *y;             // (B, chunk, C) mixer / MLP output
    float *rstd;          // (B·chunk)
    float *gate, *up;     // (B, chunk, I)
    float *v_first;       // (B, chunk, C) rwkv7 value residual of the current pass
    float *last, *last_n; // (B, C) last position's hidden state, normed
    float *logits;        // (B, V)
    float *scratch;       // the mixers' scratch for (B, chunk) and (B, 1)
    size_t scratch_floats;
    int64_t *next;        // (B) generate: tokens fed to the next decode step
    int *done;            // (B) generate: sequence has produced a stop token
} pn_engine;

// Bytes of decode state for `batch` sequences at context ctx with the backbone's
// current mixers (no allocation): Σ_layers batch · state_floats · 4.
size_t pn_engine_state_bytes_for(const pn_backbone *bb, int batch, int64_t ctx);

// batch, max_context, prefill_chunk >= 1 (else exit 2).
pn_engine *pn_engine_create(const pn_backbone *bb, int batch, int64_t max_context, int prefill_chunk);
void pn_engine_free(pn_engine *e);
// Forget every sequence (position 0); the blocks clear their states on the next prefill.
void pn_engine_reset(pn_engine *e);
// Bytes allocated for the decode states (the memory reported for a hybrid).
size_t pn_engine_state_bytes(const pn_engine *e);

// ids (B, T), T >= 1: appends T tokens to every sequence, in chunks of
// prefill_chunk. Returns the logits (B, V) of the last position. Exits 2 when a
// token is outside the vocabulary or the context would pass max_context.
const float *pn_engine_prefill(pn_engine *e, const int64_t *ids, int T);
// One token per sequence, next_ids (B). Returns the logits (B, V).
const float *pn_engine_decode(pn_engine *e, const int64_t *next_ids);

// Resets, prefills prompt (B, T) and decodes greedily (argmax, lowest id on ties)
// up to max_new tokens per sequence. out (B, max_new): sequence b's tokens are
// out[b·max_new + 0 .. out_len[b]); a sequence stops after producing any of
// stop_ids (that stop token is written and counted in out_len); the rest of its
// row is filled with -1. Sequences that stopped are fed padding while the others
// go on. Returns the largest out_len. Needs T + max_new − 1 <= max_context.
int pn_engine_generate_greedy(pn_engine *e, const int64_t *prompt, int T, int max_new, const int64_t *stop_ids,
                              int n_stop, int64_t *out, int *out_len);
