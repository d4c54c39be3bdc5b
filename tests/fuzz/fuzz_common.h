/*
 * fuzz_common.h -- shared by the libFuzzer harnesses: a read-only,
 * in-memory weir_env (so each input is a "file" without touching a disk,
 * and ASan sees the exact bounds of the bytes a reader maps), checksum
 * fix-ups that let mutated logs and tables get past their CRCs into the
 * parsers behind them, and the rule every harness enforces: a corrupt file
 * yields a status, never a crash, hang or out-of-bounds read.
 */
#ifndef WEIR_FUZZ_COMMON_H
#define WEIR_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "coding.h"
#include "crc32c.h"
#include "env.h"
#include "status.h"
#include "wal.h"
#include "weir.h"

/* ---- the memory env ---- */

#define FUZZ_MAX_FILES 4

typedef struct fuzz_file {
    char name[32];        /* base name, e.g. "000001.log" */
    const char *data;     /* exact-size heap copy */
    size_t len;
} fuzz_file;

static fuzz_file fuzz_files[FUZZ_MAX_FILES];
static int fuzz_nfiles;

static inline void fuzz_reset_files(void) {
    for (int i = 0; i < fuzz_nfiles; i++) free((void *)fuzz_files[i].data);
    fuzz_nfiles = 0;
}

/* Add a file holding a copy of data (the env owns the copy). */
static inline void fuzz_add_file(const char *name, const void *data, size_t len) {
    if (fuzz_nfiles == FUZZ_MAX_FILES) abort();
    char *copy = malloc(len ? len : 1);
    if (!copy) abort();
    if (len) memcpy(copy, data, len);
    fuzz_file *f = &fuzz_files[fuzz_nfiles++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->data = copy;
    f->len = len;
}

static fuzz_file *fuzz_find(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (int i = 0; i < fuzz_nfiles; i++)
        if (strcmp(fuzz_files[i].name, base) == 0) return &fuzz_files[i];
    return NULL;
}

static inline int fuzz_unsupported(const char *what) {
    return weir_set_error(WEIR_IO_ERROR, "%s: not supported by the fuzz env", what);
}

static inline int fz_new_writable(weir_env *e, const char *p, env_writable **o) {
    (void)e, (void)p;
    *o = NULL;
    return fuzz_unsupported("create");
}
static inline int fz_append(env_writable *f, const void *d, size_t n) {
    (void)f, (void)d, (void)n;
    return fuzz_unsupported("append");
}
static inline int fz_flush(env_writable *f) {
    (void)f;
    return fuzz_unsupported("flush");
}
static inline int fz_close_writable(env_writable *f) {
    (void)f;
    return WEIR_OK;
}
static inline int fz_truncate_writable(env_writable *f, uint64_t size) {
    (void)f, (void)size;
    return fuzz_unsupported("truncate");
}

static inline int fz_open_readable(weir_env *env, const char *path, env_readable **out) {
    *out = NULL;
    fuzz_file *ff = fuzz_find(path);
    if (!ff) return weir_set_error(WEIR_IO_ERROR, "open %s: No such file or directory", path);
    env_readable *f = calloc(1, sizeof *f);
    if (!f) return WEIR_NO_MEMORY;
    f->env = env;
    f->path = strdup(path);
    f->fd = (int)(ff - fuzz_files);
    f->size = ff->len;
    *out = f;
    return WEIR_OK;
}

static inline int fz_pread(env_readable *f, uint64_t off, void *buf, size_t n, size_t *got) {
    const fuzz_file *ff = &fuzz_files[f->fd];
    *got = 0;
    if (off >= ff->len) return WEIR_OK;
    size_t room = ff->len - (size_t)off;
    *got = n < room ? n : room;
    memcpy(buf, ff->data + off, *got);
    return WEIR_OK;
}

static inline int fz_mmap(env_readable *f, env_mapping *m) {
    const fuzz_file *ff = &fuzz_files[f->fd];
    m->base = ff->len ? ff->data : NULL;
    m->len = ff->len;
    return WEIR_OK;
}

static inline void fz_munmap(env_readable *f, env_mapping *m) {
    (void)f;
    m->base = NULL;
    m->len = 0;
}

static inline void fz_close_readable(env_readable *f) {
    if (!f) return;
    free(f->path);
    free(f);
}

static inline int fz_file_exists(weir_env *e, const char *p) {
    (void)e;
    return fuzz_find(p) != NULL;
}

static inline int fz_file_size(weir_env *e, const char *p, uint64_t *size) {
    (void)e;
    fuzz_file *ff = fuzz_find(p);
    if (!ff) return weir_set_error(WEIR_IO_ERROR, "stat %s: No such file or directory", p);
    *size = ff->len;
    return WEIR_OK;
}

static inline int fz_path_op(weir_env *e, const char *p) {
    (void)e, (void)p;
    return fuzz_unsupported("path operation");
}
static inline int fz_two_path_op(weir_env *e, const char *a, const char *b) {
    (void)e, (void)a, (void)b;
    return fuzz_unsupported("path operation");
}
static inline int fz_truncate(weir_env *e, const char *p, uint64_t n) {
    (void)e, (void)p, (void)n;
    return fuzz_unsupported("truncate");
}
static inline int fz_list_dir(weir_env *e, const char *p, env_dirent_list *out) {
    (void)e, (void)p;
    out->names = NULL;
    out->count = 0;
    return WEIR_OK;
}
static inline int fz_lock(weir_env *e, const char *p, int *fd) {
    (void)e, (void)p;
    *fd = -1;
    return fuzz_unsupported("lock");
}
static inline void fz_unlock(weir_env *e, int fd) { (void)e, (void)fd; }
static inline uint64_t fz_now(weir_env *e) {
    (void)e;
    return 1700000000000000ull;
}
static inline void fz_sleep(weir_env *e, uint64_t us) { (void)e, (void)us; }

static const struct weir_env_ops fuzz_env_ops = {
    .new_writable = fz_new_writable,
    .append = fz_append,
    .flush = fz_flush,
    .sync = fz_flush,
    .close_writable = fz_close_writable,
    .truncate_writable = fz_truncate_writable,
    .open_readable = fz_open_readable,
    .pread = fz_pread,
    .mmap = fz_mmap,
    .munmap = fz_munmap,
    .close_readable = fz_close_readable,
    .file_exists = fz_file_exists,
    .file_size = fz_file_size,
    .remove_file = fz_path_op,
    .rename_file = fz_two_path_op,
    .link_file = fz_two_path_op,
    .truncate_file = fz_truncate,
    .create_dir = fz_path_op,
    .remove_dir = fz_path_op,
    .sync_dir = fz_path_op,
    .list_dir = fz_list_dir,
    .lock_file = fz_lock,
    .lock_file_shared = fz_lock,
    .unlock_file = fz_unlock,
    .now_micros = fz_now,
    .sleep_micros = fz_sleep,
};

static weir_env fuzz_env = {&fuzz_env_ops, NULL};

/* ---- the rule ---- */

/* A status a reader may return for a damaged file; anything else (and any
 * crash) is a finding. */
static inline void fuzz_expect(int rc, int also_ok, const char *what) {
    if (rc == WEIR_OK || rc == WEIR_NOT_FOUND || rc == WEIR_CORRUPTION || rc == also_ok) return;
    fprintf(stderr, "%s returned %s: %s\n", what, weir_status_name(rc), weir_errmsg());
    abort();
}

/* A corruption message must say where. */
static inline void fuzz_expect_located(int rc, const char *what) {
    if (rc != WEIR_CORRUPTION) return;
    const char *m = weir_errmsg();
    if (!m || !*m) {
        fprintf(stderr, "%s: WEIR_CORRUPTION without a message\n", what);
        abort();
    }
}

/* ---- checksum fix-ups ---- */

/* Recompute every fragment CRC of a log image in place, walking the block
 * framing as the writer lays it out, so mutations reach the record
 * decoders instead of stopping at the checksum. */
static inline void fuzz_fix_log_crcs(char *d, size_t n) {
    size_t block = 0;
    while (block < n) {
        size_t end = block + LOG_BLOCK_SIZE < n ? block + LOG_BLOCK_SIZE : n;
        size_t p = block;
        while (p + LOG_HEADER_SIZE <= end) {
            size_t len = (size_t)(unsigned char)d[p + 4] | ((size_t)(unsigned char)d[p + 5] << 8);
            if (len > end - p - LOG_HEADER_SIZE) break;
            unsigned char t = (unsigned char)d[p + 6];
            uint32_t crc = crc32c_extend(crc32c_value(&t, 1), d + p + LOG_HEADER_SIZE, len);
            encode_fixed32(d + p, crc32c_mask(crc));
            p += LOG_HEADER_SIZE + len;
        }
        block += LOG_BLOCK_SIZE;
    }
}

/* Fix the CRC of the block at [off, off+size) + trailer, if in bounds. */
static inline void fuzz_fix_block_crc(char *d, size_t n, uint64_t off, uint64_t size) {
    if (off > n || size > n - off || n - off - size < 5) return;
    uint32_t crc = crc32c_extend(crc32c_value(d + off, (size_t)size), d + off + size, 1);
    encode_fixed32(d + off + size + 1, crc32c_mask(crc));
}

/* Make a table image's checksums right: footer, filter, index, and every
 * data block the index names. */
static inline void fuzz_fix_table_crcs(char *d, size_t n) {
    if (n < 64) return;
    char *f = d + n - 64;
    uint64_t foff = decode_fixed64(f), fsize = decode_fixed64(f + 8);
    uint64_t ioff = decode_fixed64(f + 16), isize = decode_fixed64(f + 24);
    encode_fixed32(f + 48, crc32c_mask(crc32c_value(f, 48)));
    fuzz_fix_block_crc(d, n, foff, fsize);
    fuzz_fix_block_crc(d, n, ioff, isize);
    if (ioff > n || isize > n - ioff) return;
    block b;
    if (block_parse(&b, d + ioff, (size_t)isize) != WEIR_OK) return;
    block_iter it;
    block_iter_init(&it, &b, slice_compare);
    int guard = 0;
    for (block_iter_seek_first(&it); block_iter_valid(&it) && guard < 100000; block_iter_next(&it), guard++) {
        slice v = it.value;
        uint64_t off, size;
        const char *p = decode_varint64(v.data, v.data + v.len, &off);
        if (p) p = decode_varint64(p, v.data + v.len, &size);
        if (p) fuzz_fix_block_crc(d, n, off, size);
    }
    block_iter_free(&it);
}

#endif
