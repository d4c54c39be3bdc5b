/*
 * env.h -- every file operation of the engine goes through a weir_env, a
 * table of function pointers, so tests can inject faults (EIO, ENOSPC,
 * short writes, failed fsyncs, simulated power cuts) without the engine
 * knowing. env_posix() is the real one.
 *
 * Every function returns WEIR_OK or a WEIR_* status with the thread-local
 * message set to "<operation> <path>: <reason>".
 */
#ifndef WEIR_ENV_H
#define WEIR_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "coding.h"

typedef struct weir_env weir_env;

/* A file opened for appending, with a user-space buffer. */
typedef struct env_writable {
    weir_env *env;
    char *path;
    int fd;
    char *buf;       /* pending bytes not yet handed to the OS */
    size_t buf_len;
    size_t buf_cap;
    uint64_t size;   /* bytes appended so far (buffered included) */
    int broken;      /* a sync failed: what reached the disk is unknown, so
                        every later append/flush/sync fails too */
} env_writable;

/* A file opened for reading. */
typedef struct env_readable {
    weir_env *env;
    char *path;
    int fd;
    uint64_t size;   /* size at open */
} env_readable;

/* A read-only memory map of a whole file. */
typedef struct env_mapping {
    const char *base;
    size_t len;
} env_mapping;

typedef struct env_dirent_list {
    char **names;    /* malloc'd names (no "." or "..") */
    size_t count;
} env_dirent_list;

struct weir_env_ops {
    /* Create (truncating) a file for appending. */
    int (*new_writable)(weir_env *env, const char *path, env_writable **out);
    /* Append to the buffer; hand it to the OS when full. */
    int (*append)(env_writable *f, const void *data, size_t n);
    /* Hand buffered bytes to the OS (write(2)). */
    int (*flush)(env_writable *f);
    /* flush, then fdatasync. */
    int (*sync)(env_writable *f);
    /* flush and close; f is freed even on error. */
    int (*close_writable)(env_writable *f);
    /* Cut f back to `size` bytes (<= f->size), dropping buffered bytes past
     * it and truncating what reached the OS, so later appends continue at
     * `size`. How a write that failed for want of space (ENOSPC) is taken
     * back: afterwards the file provably holds none of it. */
    int (*truncate_writable)(env_writable *f, uint64_t size);

    int (*open_readable)(weir_env *env, const char *path, env_readable **out);
    /* Read up to n bytes at offset; *got < n only at end of file. */
    int (*pread)(env_readable *f, uint64_t offset, void *buf, size_t n, size_t *got);
    /* Map the whole file read-only (len 0 gives base NULL). */
    int (*mmap)(env_readable *f, env_mapping *out);
    void (*munmap)(env_readable *f, env_mapping *m);
    void (*close_readable)(env_readable *f);

    int (*file_exists)(weir_env *env, const char *path); /* 1 yes, 0 no */
    int (*file_size)(weir_env *env, const char *path, uint64_t *size);
    int (*remove_file)(weir_env *env, const char *path);
    /* Atomic replace of `to` by `from`. */
    int (*rename_file)(weir_env *env, const char *from, const char *to);
    int (*link_file)(weir_env *env, const char *from, const char *to);
    int (*truncate_file)(weir_env *env, const char *path, uint64_t size);
    /* mkdir; an existing directory is fine, an existing non-directory is
     * WEIR_INVALID ("... exists and is not a directory"). */
    int (*create_dir)(weir_env *env, const char *path);
    int (*remove_dir)(weir_env *env, const char *path);
    /* fsync the directory so creates, renames and removes in it persist. */
    int (*sync_dir)(weir_env *env, const char *path);
    int (*list_dir)(weir_env *env, const char *path, env_dirent_list *out);
    /* Exclusive lock held while the DB is open (fcntl/flock on the file,
     * created if missing). Held elsewhere (other process or another open in
     * this one) -> WEIR_BUSY naming the directory. */
    int (*lock_file)(weir_env *env, const char *path, int *lock_fd);
    /* Shared lock for read-only opens: many readers, no writer. When the
     * LOCK file cannot be opened (missing, read-only media, permissions)
     * there is no lock: WEIR_OK with *lock_fd = -1. A writer holding it ->
     * WEIR_BUSY. Released by unlock_file. */
    int (*lock_file_shared)(weir_env *env, const char *path, int *lock_fd);
    void (*unlock_file)(weir_env *env, int lock_fd);

    uint64_t (*now_micros)(weir_env *env);
    void (*sleep_micros)(weir_env *env, uint64_t micros);
};

struct weir_env {
    const struct weir_env_ops *ops;
    void *state; /* for wrapping envs (fault injection) */
};

/* The process-wide POSIX env (stateless, thread-safe). */
weir_env *env_posix(void);

/* Bytes buffered by an env_writable before it writes through. */
#define ENV_WRITE_BUFFER (64 * 1024)

void env_dirent_list_free(env_dirent_list *l);

/* Convenience wrappers so call sites read naturally. */
static inline int env_append(env_writable *f, const void *d, size_t n) { return f->env->ops->append(f, d, n); }
static inline int env_flush(env_writable *f) { return f->env->ops->flush(f); }
static inline int env_sync(env_writable *f) { return f->env->ops->sync(f); }
static inline int env_close_writable(env_writable *f) { return f->env->ops->close_writable(f); }
static inline int env_truncate_writable(env_writable *f, uint64_t size) {
    return f->env->ops->truncate_writable(f, size);
}

/* Drop the bytes f buffered but has not handed to the OS, before closing
 * a file that is being abandoned after a failure (its tail is then torn,
 * never completed later by a retry). */
static inline void env_discard_buffer(env_writable *f) { f->buf_len = 0; }

/* Write a whole small file (e.g. CURRENT's temp file) and fsync it. */
int env_write_file_synced(weir_env *env, const char *path, const void *data, size_t n);
/* Read a whole small file into out (malloc'd via buf). */
int env_read_file(weir_env *env, const char *path, buf *out);

#endif
