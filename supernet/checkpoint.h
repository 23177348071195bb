// checkpoint.h — atomic training checkpoints with bit-identical resume.
//
// A checkpoint is a directory (by convention RUN/ckpt/step_000123/) holding
//   model.safetensors   every trainable parameter, F32, under its own name and shape
//   optim.safetensors   "m.NAME", "v.NAME" (F32, same shape) per parameter and
//                       "step" (I64 [1], AdamW's t); hyper-parameters in __metadata__
//   state.json          {"format": "postnas-checkpoint", "version": 1, "step",
//                        "rng": {"seed", "stream", "counter"} (decimal strings: exact uint64),
//                        "loader": base64 blob, "loader_bytes", "config_hash": 16 hex digits,
//                        "extra": {key: value strings}}
// Floats are stored as raw F32 bits, so a load restores them bit for bit.
//
// Write protocol (a crash at any point leaves a complete checkpoint under a name
// pn_checkpoint_latest accepts — the old one or the new one):
//   1. write all three files into DIR.tmp.PID/ (each file itself temp + fsync +
//      rename; state.json last), then fsync DIR.tmp.PID/
//   2. if DIR exists, rename it aside to DIR.old.PID      (directories cannot be
//      renamed over a non-empty directory)
//   3. rename DIR.tmp.PID -> DIR, fsync the parent directory
//   4. remove DIR.old.PID recursively
// A crash in 1 leaves DIR untouched (DIR.tmp.* is ignored). A crash between 2
// and 3 leaves no DIR but a complete DIR.old.PID: pn_checkpoint_latest accepts
// STEP.old.PID when STEP itself is absent and all three files are present (files
// vanish whole, so a partly removed .old directory fails that test). Leftover
// *.tmp.* / *.old.* directories are never deleted automatically. One process
// (rank 0) writes a given checkpoint directory; PIDs keep concurrent temp names apart.
#pragma once
#include "core/rng.h"
#include "supernet/optim.h"

#define PN_CKPT_BLOB_MAX 256   // data-loader position blob
#define PN_CKPT_MAX_EXTRA 32
#define PN_CKPT_KEY_MAX 64     // including the NUL
#define PN_CKPT_VALUE_MAX 256  // including the NUL

typedef struct {
    char key[PN_CKPT_KEY_MAX];
    char value[PN_CKPT_VALUE_MAX];
} pn_ckpt_kv;

// Trainer state besides parameters and optimizer moments.
typedef struct {
    int64_t step;                        // trainer step to resume at
    pn_rng rng;                          // sampling RNG, restored exactly
    uint8_t loader[PN_CKPT_BLOB_MAX];    // opaque data-loader position
    int loader_len;
    uint64_t config_hash;                // of the resolved job config; compared by the caller
    int n_extra;
    pn_ckpt_kv extra[PN_CKPT_MAX_EXTRA];
} pn_ckpt_state;

// Adds (or replaces) an extra key/value; internal error when full or too long.
void pn_ckpt_state_set(pn_ckpt_state *s, const char *key, const char *value);
// NULL when absent.
const char *pn_ckpt_state_get(const pn_ckpt_state *s, const char *key);

// RUN/ckpt/step_%06lld into out.
const char *pn_checkpoint_path(char *out, size_t n, const char *run_dir, int64_t step);
// Writes DIR atomically (protocol above); creates parent directories.
void pn_checkpoint_save(const char *dir, const pn_param_ref *refs, int n_refs, const pn_adamw *opt,
                        const pn_ckpt_state *state);
// Restores weights into refs[i].w, and (when non-NULL) opt's m, v, t and the
// state. Names, shapes and dtypes must match the live refs exactly, in both
// directions; any mismatch or damaged file exits 2 naming the file and tensor.
// opt must have been initialised for these refs; its lr/betas/eps/decay are left
// as configured (the job config owns them).
void pn_checkpoint_load(const char *dir, const pn_param_ref *refs, int n_refs, pn_adamw *opt, pn_ckpt_state *state);
// Newest complete checkpoint under RUN/ckpt/: writes its path to out and returns
// its step, or returns -1 (out = "") when there is none. Complete = a directory
// named step_DIGITS holding model.safetensors, optim.safetensors and state.json;
// *.tmp.* is ignored, STEP.old.PID is a fallback only while STEP is absent.
int64_t pn_checkpoint_latest(const char *run_dir, char *out, size_t n);
