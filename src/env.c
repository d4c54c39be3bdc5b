/*
 * env.c -- the POSIX implementation of weir_env (see env.h): buffered
 * appends, positional reads, read-only maps, directory operations and the
 * database lock, plus small helpers built only on the env's function table
 * (so they work unchanged under a fault-injecting env).
 *
 * Two durability rules live here. A failed fsync is never retried into a
 * "success": the kernel may already have dropped the dirty pages, so the
 * file is marked broken and every later write or sync on it fails. And
 * fcntl locks do not conflict within one process (a second open of the same
 * database in this process would "succeed" and closing it would release the
 * first open's lock), so lock_file also keeps a process-wide registry of the
 * lock files it holds.
 */
#include "env.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

/* ---- small helpers ---- */

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static int out_of_memory(const char *what, const char *path) {
    return weir_set_error(WEIR_NO_MEMORY, "%s %s: out of memory", what, path ? path : "");
}

/* write(2) all of [p, p+n), retrying interrupted and short writes. On error
 * *written says how much did reach the OS. */
static int write_fully(int fd, const char *p, size_t n, size_t *written, int *err) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            *written = done;
            return -1;
        }
        if (w == 0) { /* no progress and no error: treat as an I/O failure */
            *err = EIO;
            *written = done;
            return -1;
        }
        done += (size_t)w;
    }
    *written = done;
    return 0;
}

static int fail_broken(env_writable *f, const char *op) {
    return weir_set_error(WEIR_IO_ERROR,
                          "%s %s: an earlier fsync of this file failed, so its contents on disk "
                          "are unknown; the file can no longer be written",
                          op, f->path);
}

/* ---- writable files ---- */

static int posix_new_writable(weir_env *env, const char *path, env_writable **out) {
    *out = NULL;
    env_writable *f = malloc(sizeof *f);
    char *name = copy_string(path);
    char *buffer = malloc(ENV_WRITE_BUFFER);
    if (!f || !name || !buffer) {
        free(f);
        free(name);
        free(buffer);
        return out_of_memory("create", path);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        free(f);
        free(name);
        free(buffer);
        return weir_set_errno(err, "create", path);
    }
    f->env = env;
    f->path = name;
    f->fd = fd;
    f->buf = buffer;
    f->buf_len = 0;
    f->buf_cap = ENV_WRITE_BUFFER;
    f->size = 0;
    f->broken = 0;
    *out = f;
    return WEIR_OK;
}

/* Hand the buffered bytes to the OS. On a partial write the bytes that did
 * get through are dropped from the buffer, so a later retry continues where
 * this one stopped instead of duplicating data. */
static int writable_drain(env_writable *f) {
    if (f->buf_len == 0) return WEIR_OK;
    size_t written;
    int err;
    if (write_fully(f->fd, f->buf, f->buf_len, &written, &err) != 0) {
        memmove(f->buf, f->buf + written, f->buf_len - written);
        f->buf_len -= written;
        return weir_set_errno(err, "write", f->path);
    }
    f->buf_len = 0;
    return WEIR_OK;
}

static int posix_append(env_writable *f, const void *data, size_t n) {
    if (f->broken) return fail_broken(f, "append to");
    const char *p = (const char *)data;
    size_t room = f->buf_cap - f->buf_len;
    if (n <= room) {
        /* The common case: a small record into the buffer. */
        if (n) memcpy(f->buf + f->buf_len, p, n);
        f->buf_len += n;
        f->size += n;
        return WEIR_OK;
    }
    /* Top the buffer up so the OS gets full-size writes, then drain it. */
    memcpy(f->buf + f->buf_len, p, room);
    f->buf_len += room;
    f->size += room;
    p += room;
    n -= room;
    int rc = writable_drain(f);
    if (rc != WEIR_OK) return rc;
    if (n < f->buf_cap) {
        memcpy(f->buf, p, n);
        f->buf_len = n;
        f->size += n;
        return WEIR_OK;
    }
    /* Large append: copying it through the buffer would only cost time. */
    size_t written;
    int err;
    int failed = write_fully(f->fd, p, n, &written, &err);
    f->size += written;
    if (failed) return weir_set_errno(err, "write", f->path);
    return WEIR_OK;
}

static int posix_flush(env_writable *f) {
    if (f->broken) return fail_broken(f, "flush");
    return writable_drain(f);
}

static int posix_sync(env_writable *f) {
    if (f->broken) return fail_broken(f, "sync");
    int rc = writable_drain(f);
    if (rc != WEIR_OK) return rc;
#if defined(__linux__)
    int r = fdatasync(f->fd);
#else
    int r = fsync(f->fd);
#endif
    if (r != 0) {
        int err = errno;
        f->broken = 1;
        return weir_set_errno(err, "fsync", f->path);
    }
    return WEIR_OK;
}

static int posix_close_writable(env_writable *f) {
    if (f == NULL) return WEIR_OK;
    int rc = WEIR_OK;
    if (f->broken) rc = fail_broken(f, "close");
    else rc = writable_drain(f);
    if (close(f->fd) != 0 && rc == WEIR_OK && errno != EINTR)
        rc = weir_set_errno(errno, "close", f->path);
    free(f->buf);
    free(f->path);
    free(f);
    return rc;
}

static int posix_truncate_writable(env_writable *f, uint64_t size) {
    if (f->broken) return fail_broken(f, "truncate");
    if (size > f->size)
        return weir_set_error(WEIR_INVALID, "truncate %s: %llu bytes is past its end (%llu)", f->path,
                              (unsigned long long)size, (unsigned long long)f->size);
    uint64_t on_disk = f->size - f->buf_len;
    if (size >= on_disk) {
        f->buf_len = (size_t)(size - on_disk);
        f->size = size;
        return WEIR_OK;
    }
    /* The descriptor has no O_APPEND: the next write goes where the file
     * offset points, so move it back too (else it would leave a hole). */
    if (ftruncate(f->fd, (off_t)size) != 0 || lseek(f->fd, (off_t)size, SEEK_SET) < 0) {
        int err = errno;
        /* What is on disk now is not known: never write to it again. */
        f->broken = 1;
        return weir_set_errno(err, "truncate", f->path);
    }
    f->buf_len = 0;
    f->size = size;
    return WEIR_OK;
}

/* ---- readable files ---- */

static int posix_open_readable(weir_env *env, const char *path, env_readable **out) {
    *out = NULL;
    env_readable *f = malloc(sizeof *f);
    char *name = copy_string(path);
    if (!f || !name) {
        free(f);
        free(name);
        return out_of_memory("open", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        free(f);
        free(name);
        return weir_set_errno(err, "open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        free(f);
        free(name);
        return weir_set_errno(err, "stat", path);
    }
    f->env = env;
    f->path = name;
    f->fd = fd;
    f->size = (uint64_t)st.st_size;
    *out = f;
    return WEIR_OK;
}

static int posix_pread(env_readable *f, uint64_t offset, void *buf, size_t n, size_t *got) {
    char *p = (char *)buf;
    size_t done = 0;
    while (done < n) {
        if (offset + done > (uint64_t)INT64_MAX) break; /* beyond any file */
        ssize_t r = pread(f->fd, p + done, n - done, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            char what[64];
            snprintf(what, sizeof what, "read at offset %llu of",
                     (unsigned long long)(offset + done));
            *got = done;
            return weir_set_errno(err, what, f->path);
        }
        if (r == 0) break; /* end of file */
        done += (size_t)r;
    }
    *got = done;
    return WEIR_OK;
}

static int posix_mmap(env_readable *f, env_mapping *out) {
    out->base = NULL;
    out->len = 0;
    if (f->size == 0) return WEIR_OK;
    if (f->size > (uint64_t)SIZE_MAX)
        return weir_set_error(WEIR_NO_MEMORY, "mmap %s: file of %llu bytes exceeds the address space",
                              f->path, (unsigned long long)f->size);
    void *p = mmap(NULL, (size_t)f->size, PROT_READ, MAP_SHARED, f->fd, 0);
    if (p == MAP_FAILED) return weir_set_errno(errno, "mmap", f->path);
    out->base = (const char *)p;
    out->len = (size_t)f->size;
    return WEIR_OK;
}

static void posix_munmap(env_readable *f, env_mapping *m) {
    (void)f;
    if (m->base) munmap((void *)m->base, m->len);
    m->base = NULL;
    m->len = 0;
}

static void posix_close_readable(env_readable *f) {
    if (f == NULL) return;
    close(f->fd);
    free(f->path);
    free(f);
}

/* ---- files and directories by name ---- */

static int posix_file_exists(weir_env *env, const char *path) {
    (void)env;
    return access(path, F_OK) == 0;
}

static int posix_file_size(weir_env *env, const char *path, uint64_t *size) {
    (void)env;
    struct stat st;
    if (stat(path, &st) != 0) return weir_set_errno(errno, "stat", path);
    *size = (uint64_t)st.st_size;
    return WEIR_OK;
}

static int posix_remove_file(weir_env *env, const char *path) {
    (void)env;
    if (unlink(path) != 0) return weir_set_errno(errno, "remove", path);
    return WEIR_OK;
}

static int posix_rename_file(weir_env *env, const char *from, const char *to) {
    (void)env;
    if (rename(from, to) != 0) {
        int err = errno;
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "rename %s to", from);
        return weir_set_errno(err, what, to);
    }
    return WEIR_OK;
}

static int posix_link_file(weir_env *env, const char *from, const char *to) {
    (void)env;
    if (link(from, to) != 0) {
        int err = errno;
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "hard link %s as", from);
        return weir_set_errno(err, what, to);
    }
    return WEIR_OK;
}

static int posix_truncate_file(weir_env *env, const char *path, uint64_t size) {
    (void)env;
    if (size > (uint64_t)INT64_MAX)
        return weir_set_error(WEIR_INVALID, "truncate %s: size %llu is too large", path,
                              (unsigned long long)size);
    if (truncate(path, (off_t)size) != 0) return weir_set_errno(errno, "truncate", path);
    return WEIR_OK;
}

static int posix_create_dir(weir_env *env, const char *path) {
    (void)env;
    if (mkdir(path, 0755) == 0) return WEIR_OK;
    int err = errno;
    if (err == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) return WEIR_OK;
            return weir_set_error(WEIR_INVALID,
                                  "create directory %s: %s exists and is not a directory", path,
                                  path);
        }
        err = errno;
    }
    return weir_set_errno(err, "create directory", path);
}

static int posix_remove_dir(weir_env *env, const char *path) {
    (void)env;
    if (rmdir(path) != 0) return weir_set_errno(errno, "remove directory", path);
    return WEIR_OK;
}

static int posix_sync_dir(weir_env *env, const char *path) {
    (void)env;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return weir_set_errno(errno, "open directory", path);
    int rc = WEIR_OK;
    if (fsync(fd) != 0) {
        /* Some file systems cannot fsync a directory at all (EINVAL); there
         * is nothing more to make durable there. */
        if (errno != EINVAL) rc = weir_set_errno(errno, "fsync directory", path);
    }
    close(fd);
    return rc;
}

static int posix_list_dir(weir_env *env, const char *path, env_dirent_list *out) {
    (void)env;
    out->names = NULL;
    out->count = 0;
    DIR *d = opendir(path);
    if (d == NULL) return weir_set_errno(errno, "list directory", path);
    size_t cap = 0;
    int rc = WEIR_OK;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0) rc = weir_set_errno(errno, "list directory", path);
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (out->count == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **names = realloc(out->names, ncap * sizeof *names);
            if (names == NULL) {
                rc = out_of_memory("list directory", path);
                break;
            }
            out->names = names;
            cap = ncap;
        }
        char *name = copy_string(e->d_name);
        if (name == NULL) {
            rc = out_of_memory("list directory", path);
            break;
        }
        out->names[out->count++] = name;
    }
    closedir(d);
    if (rc != WEIR_OK) env_dirent_list_free(out);
    return rc;
}

void env_dirent_list_free(env_dirent_list *l) {
    for (size_t i = 0; i < l->count; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->count = 0;
}

/* ---- the database lock ---- */

typedef struct held_lock {
    struct held_lock *next;
    int fd;
    int shared;   /* a read lock (F_RDLCK) shared by `holders` handles */
    int holders;  /* handles of this process holding it (shared locks) */
    char path[];  /* canonical path of the lock file */
} held_lock;

/* Lock files this process holds (see the top of the file). */
static pthread_mutex_t held_locks_mu = PTHREAD_MUTEX_INITIALIZER;
static held_lock *held_locks;
static pthread_once_t lock_atfork_once = PTHREAD_ONCE_INIT;

/* In a child of fork() the parent's fcntl locks are not held (they belong
 * to the parent process) and another thread may have held the registry's
 * mutex at the fork: start the child with an empty registry and a fresh
 * mutex. The entries are leaked, not freed: their memory is a copy. */
static void locks_after_fork_in_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    held_locks_mu = fresh;
    held_locks = NULL;
}

static void install_lock_atfork(void) { pthread_atfork(NULL, NULL, locks_after_fork_in_child); }

/* Split path into its directory (as written, "." if none) and base name. */
static void split_path(const char *path, char *dir, size_t dir_cap, const char **base) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, dir_cap, ".");
        *base = path;
    } else if (slash == path) {
        snprintf(dir, dir_cap, "/");
        *base = slash + 1;
    } else {
        snprintf(dir, dir_cap, "%.*s", (int)(slash - path), path);
        *base = slash + 1;
    }
}

static int busy_error(const char *dir, int want_shared, int held_shared) {
    if (want_shared)
        return weir_set_error(WEIR_BUSY,
                              "database directory %s is open for writing (by another process or "
                              "handle); a read-only open waits until the writer closes it",
                              dir);
    if (held_shared)
        return weir_set_error(WEIR_BUSY,
                              "database directory %s is open read-only (by another process or "
                              "handle); close the readers before opening it for writing",
                              dir);
    return weir_set_error(WEIR_BUSY,
                          "database directory %s is already open (locked by another process or "
                          "handle)",
                          dir);
}

/* Take the lock (exclusive, or shared for read-only opens). A shared lock
 * on a LOCK file that cannot be opened (read-only media or permissions, or
 * a directory without one) is no lock at all: *lock_fd = -1 and WEIR_OK,
 * since no writer can be working there either. */
static int lock_common(const char *path, int shared, int *lock_fd) {
    *lock_fd = -1;
    pthread_once(&lock_atfork_once, install_lock_atfork);
    char dir[PATH_MAX];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    /* Canonicalise through the directory, which exists even when the lock
     * file does not yet, so "db", "./db" and a symlink to it all agree. */
    char real_dir[PATH_MAX];
    if (realpath(dir, real_dir) == NULL) return weir_set_errno(errno, "lock", path);
    size_t dlen = strlen(real_dir), blen = strlen(base);
    int need_slash = dlen == 0 || real_dir[dlen - 1] != '/';

    pthread_mutex_lock(&held_locks_mu);
    held_lock *h = malloc(sizeof *h + dlen + (size_t)need_slash + blen + 1);
    if (h == NULL) {
        pthread_mutex_unlock(&held_locks_mu);
        return out_of_memory("lock", path);
    }
    memcpy(h->path, real_dir, dlen);
    if (need_slash) h->path[dlen] = '/';
    memcpy(h->path + dlen + need_slash, base, blen + 1);

    for (held_lock *e = held_locks; e; e = e->next) {
        if (strcmp(e->path, h->path) != 0) continue;
        if (shared && e->shared) {
            /* fcntl locks are per process: one descriptor serves every
             * read-only handle here (closing a second one would drop the
             * lock for all of them). */
            e->holders++;
            pthread_mutex_unlock(&held_locks_mu);
            free(h);
            *lock_fd = e->fd;
            return WEIR_OK;
        }
        int held_shared = e->shared;
        pthread_mutex_unlock(&held_locks_mu);
        free(h);
        return busy_error(dir, shared, held_shared);
    }
    /* Only now open the file: had this process already held the lock,
     * opening and closing another descriptor would have released it. */
    int fd = shared ? open(path, O_RDONLY | O_CLOEXEC) : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        pthread_mutex_unlock(&held_locks_mu);
        free(h);
        if (shared && (err == ENOENT || err == EACCES || err == EPERM || err == EROFS)) return WEIR_OK;
        return weir_set_errno(err, "open lock file", path);
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = shared ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0; /* whole file */
    int r;
    do {
        r = fcntl(fd, F_SETLK, &fl);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
        int err = errno;
        close(fd);
        pthread_mutex_unlock(&held_locks_mu);
        free(h);
        if (err == EAGAIN || err == EACCES) {
            /* Another process: which kind of lock it holds is not known
             * here; an exclusive request meets readers or a writer. */
            return shared ? busy_error(dir, 1, 0)
                          : weir_set_error(WEIR_BUSY,
                                           "database directory %s is already open (locked by "
                                           "another process, for writing or read-only)",
                                           dir);
        }
        return weir_set_errno(err, "lock", path);
    }
    h->fd = fd;
    h->shared = shared;
    h->holders = 1;
    h->next = held_locks;
    held_locks = h;
    pthread_mutex_unlock(&held_locks_mu);
    *lock_fd = fd;
    return WEIR_OK;
}

static int posix_lock_file(weir_env *env, const char *path, int *lock_fd) {
    (void)env;
    return lock_common(path, 0, lock_fd);
}

static int posix_lock_file_shared(weir_env *env, const char *path, int *lock_fd) {
    (void)env;
    return lock_common(path, 1, lock_fd);
}

static void posix_unlock_file(weir_env *env, int lock_fd) {
    (void)env;
    if (lock_fd < 0) return;
    pthread_mutex_lock(&held_locks_mu);
    for (held_lock **pp = &held_locks; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd == lock_fd) {
            held_lock *h = *pp;
            if (--h->holders > 0) { /* other read-only handles keep it */
                pthread_mutex_unlock(&held_locks_mu);
                return;
            }
            *pp = h->next;
            free(h);
            break;
        }
    }
    /* Closing the descriptor drops the fcntl lock; done under the mutex so
     * a concurrent lock_file cannot see the registry free while the kernel
     * lock is still held. */
    close(lock_fd);
    pthread_mutex_unlock(&held_locks_mu);
}

/* ---- time ---- */

static uint64_t posix_now_micros(weir_env *env) {
    (void)env;
    /* Wall clock, not monotonic: TTLs compare it with times stored on disk. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void posix_sleep_micros(weir_env *env, uint64_t micros) {
    (void)env;
    struct timespec req, rem;
    req.tv_sec = (time_t)(micros / 1000000u);
    req.tv_nsec = (long)(micros % 1000000u) * 1000;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
}

static const struct weir_env_ops posix_ops = {
    .new_writable = posix_new_writable,
    .append = posix_append,
    .flush = posix_flush,
    .sync = posix_sync,
    .close_writable = posix_close_writable,
    .truncate_writable = posix_truncate_writable,
    .open_readable = posix_open_readable,
    .pread = posix_pread,
    .mmap = posix_mmap,
    .munmap = posix_munmap,
    .close_readable = posix_close_readable,
    .file_exists = posix_file_exists,
    .file_size = posix_file_size,
    .remove_file = posix_remove_file,
    .rename_file = posix_rename_file,
    .link_file = posix_link_file,
    .truncate_file = posix_truncate_file,
    .create_dir = posix_create_dir,
    .remove_dir = posix_remove_dir,
    .sync_dir = posix_sync_dir,
    .list_dir = posix_list_dir,
    .lock_file = posix_lock_file,
    .lock_file_shared = posix_lock_file_shared,
    .unlock_file = posix_unlock_file,
    .now_micros = posix_now_micros,
    .sleep_micros = posix_sleep_micros,
};

static weir_env posix_env = {&posix_ops, NULL};

weir_env *env_posix(void) { return &posix_env; }

/* ---- helpers over any env ---- */

int env_write_file_synced(weir_env *env, const char *path, const void *data, size_t n) {
    env_writable *f;
    int rc = env->ops->new_writable(env, path, &f);
    if (rc != WEIR_OK) return rc;
    rc = env_append(f, data, n);
    if (rc == WEIR_OK) rc = env_sync(f);
    if (rc != WEIR_OK) {
        /* Keep the first failure's message; the cleanup is best effort and
         * a half-written file must not be mistaken for a complete one. */
        weir_error first;
        weir_error_save(&first, rc);
        env_close_writable(f);
        env->ops->remove_file(env, path);
        return weir_error_raise(&first);
    }
    return env_close_writable(f);
}

int env_read_file(weir_env *env, const char *path, buf *out) {
    env_readable *f;
    int rc = env->ops->open_readable(env, path, &f);
    if (rc != WEIR_OK) return rc;
    buf_clear(out);
    /* The size at open is a hint: the loop reads until end of file in case
     * the file grew, and stops early if it shrank. */
    size_t chunk = f->size > 0 && f->size < (uint64_t)(64u << 20) ? (size_t)f->size + 1 : 4096;
    for (;;) {
        if (buf_reserve(out, chunk) != 0) {
            rc = out_of_memory("read", path);
            break;
        }
        size_t got = 0;
        rc = env->ops->pread(f, (uint64_t)out->len, out->data + out->len, chunk, &got);
        out->len += got;
        if (rc != WEIR_OK || got < chunk) break;
        chunk = out->cap - out->len > 4096 ? out->cap - out->len : 4096;
    }
    env->ops->close_readable(f);
    return rc;
}
