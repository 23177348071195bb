// fileio.h — whole-file reads and atomic writes.
//
// Nothing postnas writes is ever half-written: writers fill "PATH.tmp.PID",
// fsync it, and rename it over PATH. A crash leaves either the old file or the
// new one, never a mix.
#pragma once
#include "common.h"

typedef struct {
    char path[4096];
    char tmp[4200];
    FILE *f;
} pn_atomic_file;

// Opens PATH.tmp.PID for writing; dies with exit 2 if the directory is not writable.
void pn_atomic_open(pn_atomic_file *af, const char *path);
// fflush + fsync + fclose + rename. Dies on failure (the temp file is removed).
void pn_atomic_commit(pn_atomic_file *af);
// Abandon: close and remove the temp file.
void pn_atomic_abort(pn_atomic_file *af);
// For writers that own the file handle (HDF5): fsync the closed file `tmp` by path
// and rename it over `path`; on failure remove tmp and die (exit 2).
void pn_atomic_commit_path(const char *tmp, const char *path);
// Write a whole buffer atomically.
void pn_write_file_atomic(const char *path, const void *data, size_t n);
// Read a whole file (NUL-terminated, for text). Dies with exit 2 naming the file if unreadable.
char *pn_read_file(const char *path, size_t *n_out);
int pn_file_exists(const char *path);
int pn_is_dir(const char *path);
// mkdir -p; dies with exit 2 on failure.
void pn_mkdir_p(const char *path);
// dir + "/" + name into out.
const char *pn_path_join(char *out, size_t n, const char *dir, const char *name);
