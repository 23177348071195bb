// fileio.c — see fileio.h.
#define _POSIX_C_SOURCE 200809L
#include "fileio.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

void pn_atomic_open(pn_atomic_file *af, const char *path) {
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) pn_die_input(path, "cannot open for writing: %s", strerror(errno));
}

void pn_atomic_commit(pn_atomic_file *af) {
    int bad = fflush(af->f) != 0;
    if (!bad) bad = fsync(fileno(af->f)) != 0;
    bad |= fclose(af->f) != 0;
    af->f = NULL;
    if (bad || rename(af->tmp, af->path) != 0) {
        int e = errno;
        remove(af->tmp);
        pn_die_input(af->path, "write failed: %s", strerror(e));
    }
}

void pn_atomic_abort(pn_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    remove(af->tmp);
}

void pn_atomic_commit_path(const char *tmp, const char *path) {
    int fd = open(tmp, O_RDONLY);
    int bad = fd < 0 || fsync(fd) != 0;
    if (fd >= 0) close(fd);
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        pn_die_input(path, "write failed: %s", strerror(e));
    }
}

void pn_write_file_atomic(const char *path, const void *data, size_t n) {
    pn_atomic_file af;
    pn_atomic_open(&af, path);
    if (n && fwrite(data, 1, n, af.f) != n) {
        pn_atomic_abort(&af);
        pn_die_input(path, "write failed: %s", strerror(errno));
    }
    pn_atomic_commit(&af);
}

char *pn_read_file(const char *path, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) pn_die_input(path, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = pn_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = pn_realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        pn_die_input(path, "read failed");
    }
    buf[n] = 0;
    if (n_out) *n_out = n;
    return buf;
}

int pn_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int pn_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void pn_mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) pn_die_input(path, "cannot create directory: %s", strerror(errno));
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) pn_die_input(path, "cannot create directory: %s", strerror(errno));
    if (!pn_is_dir(buf)) pn_die_input(path, "exists and is not a directory");
}

const char *pn_path_join(char *out, size_t n, const char *dir, const char *name) {
    size_t l = strlen(dir);
    if (l && dir[l - 1] == '/')
        snprintf(out, n, "%s%s", dir, name);
    else
        snprintf(out, n, "%s/%s", dir, name);
    return out;
}
