// engine_cuda.h — the CUDA twin of the hybrid inference engine (search/engine.h):
// batched chunked prefill and one-token decode for any hybrid the backbone
// describes, on one GPU. Same semantics as the CPU engine (all sequences share one
// position; greedy generation with stop tokens; the mixers are fixed at creation).
//
// What lives on the device (kernels/cuda/pn_cuda_engine.h for the kernels):
//  - weights, converted once at creation: every matrix a GEMM reads in bf16 (q/k/v
//    of a layer concatenated into one matrix, likewise MLP gate/up and a linear
//    block's input projections), small vectors (norms, gates, conv taps) in fp32;
//  - decode states, one allocation: attn KV caches bf16 (B, Lc, Hkv, D) sized to
//    the context, swa ring caches of the window, linear blocks' fp32 recurrent
//    states (B, H, K, V) and fp32 conv rings (B, W, D);
//  - activations for max(B, prefill_batch·chunk) rows: the residual stream in fp32
//    (the O and down projections accumulate into it), bf16 GEMM inputs (hi and lo
//    planes, see act_split), fp32 projections read by our own kernels (MLP gate/up too), split-K attention partials, logits (B, V)
//    fp32.
// A decode step is captured once as a CUDA graph (positions are read from device
// memory) and replayed; prefill runs eagerly in chunks of `chunk` tokens for groups
// of `prefill_batch` sequences (attention against the cache through cuDNN's fused
// attention when the build has kernels/cuda/pn_cuda_attn.h, else a reference
// kernel; JetBlock / Gated DeltaNet / DeltaNet through the fused recurrent scan
// kernel over the chunk, or by default the chunked pn_cuda_gated_delta_fwd_fast).
// Supported mixers: attn, swa, jetblock, gated_deltanet, deltanet (others exit 2 at
// creation, naming the layer). Only built with CUDA (POSTNAS_HAVE_CUDA).
#pragma once
#include "supernet/backbone.h"
#include <stddef.h>

// Device bytes of an engine, each part rounded as the caching allocator rounds.
typedef struct {
    size_t weights;    // converted weights
    size_t states;     // KV caches, ring caches, recurrent and conv states
    size_t acts;       // activations and scratch for max(B, prefill rows)
    size_t transient;  // held only during prefill by the ops (chunked delta-rule scratch), the
                       // cuBLASLt workspace, and an allowance for cuDNN's attention workspace
    size_t total;
} pn_cuda_engine_bytes;

struct ce_priv;  // engine_cuda.c

typedef struct {
    const pn_backbone *bb;
    int B;                // sequences per batch
    int64_t max_context;  // positions the caches can hold
    int chunk;            // prefill tokens per sequence per pass
    int prefill_batch;    // sequences per prefill pass (<= B)
    int64_t pos;          // tokens already held per sequence
    int n_layers, C, I, V;
    int use_graph;        // decode through a captured CUDA graph (default: when the build allows)
    int delta_chunked;    // prefill of jetblock / gated_deltanet / deltanet through the chunked
                          // tensor-core pn_cuda_gated_delta_fwd_fast (1, default) or the fused
                          // recurrent scan (0)
    int act_split;        // 1 (default): the activations that feed the layers' GEMMs (normed residual,
                          // SwiGLU output, the linear blocks' normed outputs) go in as bf16x2 splits
                          // hi + lo, one GEMM per plane accumulated in fp32, so they reach the
                          // weights at ~fp32 precision (bf16 inputs alone put the logits ~1.5e-2 off
                          // the fp32 engine on sensitive hybrids). 0: hi planes only (bf16
                          // activations; each such GEMM reads its weights once instead of twice).
                          // Set before the first decode (the captured graph keeps the mode). The
                          // lo planes are allocated (and accounted) either way.
    pn_cuda_engine_bytes bytes;
    float *logits;        // device (B, V) fp32: the last prefill / decode
    struct ce_priv *p;
} pn_cuda_engine;

// 1 when the backbone's mixers can all run on the CUDA engine; else 0 and, when why
// is not NULL, a sentence naming the first layer that cannot.
int pn_cuda_engine_supports(const pn_backbone *bb, char *why, size_t why_len);
// Bytes an engine would take (no allocation). prefill_batch is clamped to batch.
pn_cuda_engine_bytes pn_cuda_engine_bytes_for(const pn_backbone *bb, int batch, int64_t max_context, int chunk,
                                              int prefill_batch);
// Largest batch in [0, cap] whose total bytes fit in budget (monotone; bisection).
int pn_cuda_engine_max_batch(const pn_backbone *bb, int64_t max_context, int chunk, int prefill_batch, size_t budget,
                             int cap);

// batch, max_context, chunk, prefill_batch >= 1 (else exit 2); needs a CUDA device
// (exit 3 otherwise) and mixers pn_cuda_engine_supports.
pn_cuda_engine *pn_cuda_engine_create(const pn_backbone *bb, int batch, int64_t max_context, int chunk,
                                      int prefill_batch);
void pn_cuda_engine_free(pn_cuda_engine *e);
void pn_cuda_engine_reset(pn_cuda_engine *e);
size_t pn_cuda_engine_state_bytes(const pn_cuda_engine *e);

// ids (B, T) host: appends T tokens to every sequence. Returns the device logits
// (B, V) of the last position. Exits 2 on a token outside the vocabulary or a
// context overflow.
const float *pn_cuda_engine_prefill(pn_cuda_engine *e, const int64_t *ids, int T);
// The same for sequences 0..n−1 only (ids (n, T)); the others are left as they are
// (pn_cuda_engine_replicate fills them). For benchmarks.
const float *pn_cuda_engine_prefill_first(pn_cuda_engine *e, int n, const int64_t *ids, int T);
// Sequences n..B−1 get copies of the states (and logits) of sequences 0..n−1.
void pn_cuda_engine_replicate(pn_cuda_engine *e, int n);
// One token per sequence, next_ids (B) host. Returns the device logits (B, V).
const float *pn_cuda_engine_decode(pn_cuda_engine *e, const int64_t *next_ids);
// Copies the logits (B, V) to the host (waits for the device).
void pn_cuda_engine_logits_get(const pn_cuda_engine *e, float *host);
// pn_engine_generate_greedy's contract (search/engine.h) on the device: argmax on
// the GPU (lowest id on ties), stop handling on the host.
int pn_cuda_engine_generate_greedy(pn_cuda_engine *e, const int64_t *prompt, int T, int max_new,
                                   const int64_t *stop_ids, int n_stop, int64_t *out, int *out_len);
// Waits for the engine's stream.
void pn_cuda_engine_sync(const pn_cuda_engine *e);
// Tests: fills the states and activations with 0xFF bytes (NaN in bf16 and fp32), so
// any read of something the engine did not write first shows up as NaN.
void pn_cuda_engine_poison(pn_cuda_engine *e);
// The engine's cudaStream_t (to time its work with events recorded on it).
void *pn_cuda_engine_stream(const pn_cuda_engine *e);

// DRAM traffic of one decode step at cache length ctx (device storage sizes): every
// weight read once (an untied embedding only for the batch's rows), KV caches read
// over the cached rows (swa: the window) and one row written, recurrent states read
// and written whole, conv rings read W−1 rows and written one, logits written once.
typedef struct {
    double weights, state_read, state_write, logits, total;
} pn_cuda_decode_traffic;
pn_cuda_decode_traffic pn_cuda_engine_step_traffic(const pn_backbone *bb, int batch, int64_t ctx);

// ---- `postnas bench decode --device cuda` (search/bench_decode.c) ----
// pn_bench_decode's contract on GPU 0 (a->device is ignored): batch 0 = the largest
// whose pn_cuda_engine_bytes_for total fits in pn_cuda_decode_budget(free device
// memory); prefill_batch sequences per prefill pass; the first prefill_seqs (<= B)
// sequences are prefilled with random tokens and timed, the rest of the batch gets
// copies of their states (decode time does not depend on cache contents). The JSON
// at a->out_json holds a "rows" array: this run's row replaces the one with the same
// label, context and requested batch, or is appended. label NULL = the model
// directory's last component. Exit 2 when the build has no CUDA.
#include "search/bench.h"
// delta_chunked: prefill the delta-rule blocks through pn_cuda_gated_delta_fwd_fast (1) or the
// fused scan (0); see pn_cuda_engine.delta_chunked.
int pn_bench_decode_cuda(const pn_bench_decode_args *a, int prefill_batch, int prefill_seqs, const char *label,
                         int delta_chunked);
// free − max(free / 32, 1 GiB), never below 0: room for the CUDA graph, cuBLASLt's
// and cuDNN's handles, and the allocator's rounding.
size_t pn_cuda_decode_budget(size_t free_bytes);
