// tokens.h — token shards (HDF5 and llm.c .bin) and the training-window loader.
//
// A shard is one flat stream of token ids; documents are separated by an EOS id.
// Two on-disk forms:
//   HDF5: a 1-D dataset `tokens` of uint16 or uint32 (any byte order). The dataset
//         carries an integer attribute `eos_id` (and optionally `vocab_size`);
//         h5py reads them as f["tokens"].attrs["eos_id"]. An `eos_id` attribute on
//         the root group is accepted too.
//   .bin: llm.c shards: a header of 256 little-endian int32 — [0] magic 20240520,
//         [1] version, [2] n_tokens, the rest zero — then n_tokens tokens.
//         Version 1 = uint16 tokens (llm.c); version 2 = uint32 tokens (a postnas
//         extension for vocabularies above 65536). .bin files carry no EOS id.
// Shards are read on demand (open handles, range reads), so a loader over many
// gigabytes of tokens holds only the current batch in memory.
//
// The loader cuts each shard into windows of T+1 tokens starting at multiples of
// T (window k covers tokens [kT, kT+T]; inputs = first T, targets = last T, so
// consecutive windows share one token, as in llm.c). Windows never cross shards.
// The epoch order is a keyed permutation of all windows (a Feistel network on
// Philox, cycle-walked to the window count), so the window at (seed, epoch,
// index) is a pure function of those three numbers and no permutation table is
// stored. Rank r of world w takes epoch positions r, r+w, r+2w, ...; the last
// (N mod w) positions of each epoch are skipped so every rank gets the same
// number of windows. The stream is endless: a batch that runs past the end of
// an epoch continues with the next epoch. The position is a plain struct that a
// checkpoint saves and restores; resuming from it replays the exact sequence.
#pragma once
#include "core/common.h"

typedef enum { PN_TOKENS_H5 = 0, PN_TOKENS_BIN = 1 } pn_tokens_format;

#define PN_BIN_MAGIC 20240520
#define PN_BIN_HEADER_INTS 256

typedef struct {
    char *path;
    int format;          // pn_tokens_format
    int width;           // bytes per token on disk: 2 (uint16) or 4 (uint32)
    uint64_t n_tokens;
    int64_t eos_id;      // -1 when the file does not say (.bin, or HDF5 without the attribute)
    int64_t vocab_size;  // HDF5 attribute `vocab_size` if present, else -1
    // private: open handles
    FILE *bin;
    int64_t h5_file, h5_dset;  // hid_t
} pn_token_shard;

// Opens a shard; the format is taken from the content (the .bin magic or the
// HDF5 signature). Bad files exit 2 naming the file and what was expected.
void pn_token_shard_open(pn_token_shard *s, const char *path);
// tokens [start, start+count) widened to uint32. Range must lie inside the shard.
void pn_token_shard_read(pn_token_shard *s, uint64_t start, uint64_t count, uint32_t *out);
// Scans the whole shard; any id >= vocab_size exits 2 naming the file and index.
void pn_token_shard_check_vocab(pn_token_shard *s, uint64_t vocab_size);
void pn_token_shard_close(pn_token_shard *s);
// Convenience: the whole shard in memory (caller frees). eos_out may be NULL.
uint32_t *pn_tokens_read_all(const char *path, uint64_t *n_out, int64_t *eos_out);

// Writers (atomic: PATH.tmp.PID, fsync, rename). width 2 or 4; a token that
// does not fit the width exits 2. eos_id / vocab_size < 0 are not written.
void pn_tokens_write_h5(const char *path, const uint32_t *tokens, uint64_t n, int width, int64_t eos_id,
                        int64_t vocab_size);
void pn_tokens_write_bin(const char *path, const uint32_t *tokens, uint64_t n, int width);

// ---------------------------------------------------------------- loader

typedef struct {
    int B;                // windows per batch
    int T;                // tokens per input row (a window holds T+1)
    uint64_t seed;        // shuffle key
    int shuffle;          // 0: windows in file order (validation)
    int rank, world;      // data-parallel split; world >= 1
    uint64_t vocab_size;  // > 0: every token is checked at open; 0: unchecked
} pn_token_loader_cfg;

// Where the next window comes from: the rank's `index`-th window of `epoch`.
typedef struct {
    uint64_t epoch;
    uint64_t index;
} pn_token_loader_pos;

typedef struct pn_token_loader pn_token_loader;

// Each entry of paths is a file or a glob pattern (matches sorted by name);
// a pattern with no match exits 2.
pn_token_loader *pn_token_loader_open(const char *const *paths, int n_paths, const pn_token_loader_cfg *cfg);
void pn_token_loader_close(pn_token_loader *L);
// Next batch: inputs (B, T) and targets (B, T), the latter shifted by one token.
void pn_token_loader_next(pn_token_loader *L, int64_t *inputs, int64_t *targets);
pn_token_loader_pos pn_token_loader_get_pos(const pn_token_loader *L);
// Exits 2 if pos.index is out of range for this loader (resuming with other data or world).
void pn_token_loader_set_pos(pn_token_loader *L, pn_token_loader_pos pos);
uint64_t pn_token_loader_n_windows(const pn_token_loader *L);      // all shards, all ranks
uint64_t pn_token_loader_rank_windows(const pn_token_loader *L);   // per rank per epoch
int pn_token_loader_n_shards(const pn_token_loader *L);
const pn_token_shard *pn_token_loader_shard(const pn_token_loader *L, int i);
// Global window id (0..n_windows-1, in shard order) of this rank's index-th window of epoch.
uint64_t pn_token_loader_window_at(const pn_token_loader *L, uint64_t epoch, uint64_t index);
// Shard and first token of global window w.
void pn_token_loader_window_origin(const pn_token_loader *L, uint64_t w, int *shard, uint64_t *start);
// Keyed bijection on [0, n) (exposed for tests): Feistel on Philox with cycle walking.
uint64_t pn_permute_index(uint64_t i, uint64_t n, uint64_t seed, uint64_t stream);
