/*
 * env_fault.c -- the fault-injecting env for tests (see env_fault.h). It
 * owns the operation counters, the one active fault rule, the byte quota,
 * the record of what each file had durably at its last sync, and the
 * journal of directory operations a power cut undoes.
 *
 * Files are the base env's own env_writable/env_readable objects with
 * their env pointer aimed here, so the engine's env_append() and friends
 * dispatch through this table while the base env does the real work on
 * the same object. Durability is modelled pessimistically, as POSIX
 * allows: only fsynced bytes survive a power cut, and a directory entry
 * survives only once its directory has been fsynced.
 */
#include "env_fault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

/* A file written through this env and what of it is durable. */
typedef struct tracked_file {
    char *path;
    uint64_t synced; /* bytes that survive a power cut */
} tracked_file;

enum journal_kind { J_CREATE, J_REMOVE, J_RENAME, J_LINK };

/* A directory operation not yet made durable by a sync of its directory. */
typedef struct journal_entry {
    int kind;
    char *dir;   /* directory the operation is in */
    char *a;     /* CREATE/LINK: the new name; REMOVE: the removed name;
                    RENAME: from */
    char *b;     /* RENAME: to; REMOVE: where the attic keeps the file */
    char *pre;   /* RENAME: attic copy of what `to` was, or NULL */
} journal_entry;

struct fault_env {
    weir_env env; /* first: fault_env_env returns &env */
    weir_env *base;
    const struct weir_env_ops *b;
    pthread_mutex_t mu;

    uint64_t ops, ops_by[FAULT_OP_COUNT], injected;
    int last_op; /* kind of the operation the last fault hit, or -1 */
    char last_path[PATH_MAX];

    fault_rule rule;
    char *rule_path;
    int rule_active;
    uint64_t matched;

    uint64_t quota, written;

    int crash_power_cut, crash_torn, crash_code;
    void (*crash_hook)(void *arg, int power_cut);
    void *crash_hook_arg;
    int dead;
    int track_dir;
    uint64_t attic_seq;

    tracked_file *files;
    size_t nfiles, cap_files;
    journal_entry *journal;
    size_t njournal, cap_journal;
};

#define FE(e) ((fault_env *)(e)->state)

static const char *const op_names[FAULT_OP_COUNT] = {
    "create", "append", "flush", "sync", "close", "open", "read", "mmap", "size",
    "remove", "rename", "link", "truncate", "mkdir", "rmdir", "sync-dir", "list", "lock"};

const char *fault_op_name(int op) {
    return op >= 0 && op < FAULT_OP_COUNT ? op_names[op] : "?";
}

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return dup_str(".");
    if (slash == path) return dup_str("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- tracked files ---- */

static tracked_file *find_file(fault_env *fe, const char *path) {
    for (size_t i = 0; i < fe->nfiles; i++)
        if (strcmp(fe->files[i].path, path) == 0) return &fe->files[i];
    return NULL;
}

static void track(fault_env *fe, const char *path, uint64_t synced) {
    tracked_file *t = find_file(fe, path);
    if (t) {
        t->synced = synced;
        return;
    }
    if (fe->nfiles == fe->cap_files) {
        size_t cap = fe->cap_files ? fe->cap_files * 2 : 32;
        tracked_file *p = realloc(fe->files, cap * sizeof *p);
        if (!p) return; /* the model loses precision, the test goes on */
        fe->files = p;
        fe->cap_files = cap;
    }
    char *name = dup_str(path);
    if (!name) return;
    fe->files[fe->nfiles].path = name;
    fe->files[fe->nfiles].synced = synced;
    fe->nfiles++;
}

static void untrack(fault_env *fe, const char *path) {
    tracked_file *t = find_file(fe, path);
    if (!t) return;
    free(t->path);
    *t = fe->files[--fe->nfiles];
}

/* The file's durable state now lives under a new name. */
static void retrack(fault_env *fe, const char *from, const char *to) {
    untrack(fe, to);
    tracked_file *t = find_file(fe, from);
    if (!t) return;
    char *name = dup_str(to);
    if (!name) return;
    free(t->path);
    t->path = name;
}

/* ---- the directory journal ---- */

static void journal_free_entry(journal_entry *j) {
    free(j->dir);
    free(j->a);
    free(j->b);
    free(j->pre);
}

static journal_entry *journal_add(fault_env *fe, int kind, const char *path) {
    if (fe->njournal == fe->cap_journal) {
        size_t cap = fe->cap_journal ? fe->cap_journal * 2 : 32;
        journal_entry *p = realloc(fe->journal, cap * sizeof *p);
        if (!p) return NULL;
        fe->journal = p;
        fe->cap_journal = cap;
    }
    journal_entry *j = &fe->journal[fe->njournal];
    memset(j, 0, sizeof *j);
    j->kind = kind;
    j->dir = dir_of(path);
    j->a = dup_str(path);
    if (!j->dir || !j->a) {
        journal_free_entry(j);
        return NULL;
    }
    fe->njournal++;
    return j;
}

/* Keep `path`'s file reachable under a fresh attic name (a hard link) so a
 * power cut can bring it back; returns the attic path or NULL. */
static char *attic_keep(fault_env *fe, const char *path) {
    char *dir = dir_of(path);
    if (!dir) return NULL;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char attic[PATH_MAX], keep[2 * PATH_MAX + 32];
    snprintf(attic, sizeof attic, "%s.fault-attic", dir);
    free(dir);
    if (mkdir(attic, 0755) != 0 && errno != EEXIST) return NULL;
    snprintf(keep, sizeof keep, "%s/%llu-%s", attic, (unsigned long long)++fe->attic_seq, base);
    if (link(path, keep) != 0) return NULL;
    return dup_str(keep);
}

/* A sync of `dir` made its pending operations durable. */
static void journal_commit(fault_env *fe, const char *dir) {
    size_t out = 0;
    for (size_t i = 0; i < fe->njournal; i++) {
        journal_entry *j = &fe->journal[i];
        if (strcmp(j->dir, dir) != 0) {
            fe->journal[out++] = *j;
            continue;
        }
        if (j->kind == J_REMOVE && j->b) {
            unlink(j->b);
            untrack(fe, j->b);
        }
        if (j->kind == J_RENAME && j->pre) {
            unlink(j->pre);
            untrack(fe, j->pre);
        }
        journal_free_entry(j);
    }
    fe->njournal = out;
}

/* ---- faults ---- */

static int dead_error(const char *what, const char *path) {
    return weir_set_error(WEIR_IO_ERROR, "%s %s: simulated power cut (the device is gone)", what,
                          path ? path : "");
}

/* Count an operation and say which fault, if any, fires (lock held). */
static int fire(fault_env *fe, int op, const char *p1, const char *p2) {
    fe->ops++;
    fe->ops_by[op]++;
    if (!fe->rule_active) return 0;
    if (fe->rule.ops && !(fe->rule.ops & FAULT_BIT(op))) return 0;
    if (fe->rule_path && !(p1 && strstr(p1, fe->rule_path)) && !(p2 && strstr(p2, fe->rule_path)))
        return 0;
    fe->matched++;
    if (fe->matched < fe->rule.nth) return 0;
    if (fe->matched > fe->rule.nth && !fe->rule.sticky) return 0;
    fe->injected++;
    fe->last_op = op;
    snprintf(fe->last_path, sizeof fe->last_path, "%s", p1 ? p1 : "");
    return fe->rule.action;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static void power_cut_locked(fault_env *fe, int torn, uint64_t seed) {
    if (fe->dead) return;
    /* Undo directory operations newest first, so names line up again. */
    for (size_t i = fe->njournal; i-- > 0;) {
        journal_entry *j = &fe->journal[i];
        switch (j->kind) {
        case J_CREATE:
        case J_LINK:
            unlink(j->a);
            untrack(fe, j->a);
            break;
        case J_REMOVE:
            if (j->b && rename(j->b, j->a) == 0) retrack(fe, j->b, j->a);
            break;
        case J_RENAME:
            if (rename(j->b, j->a) == 0) retrack(fe, j->b, j->a);
            if (j->pre && rename(j->pre, j->b) == 0) retrack(fe, j->pre, j->b);
            break;
        }
        journal_free_entry(j);
    }
    fe->njournal = 0;
    /* Then drop every byte that was never synced. */
    uint64_t r = mix(seed ^ 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < fe->nfiles; i++) {
        tracked_file *t = &fe->files[i];
        struct stat st;
        if (stat(t->path, &st) != 0 || (uint64_t)st.st_size <= t->synced) continue;
        uint64_t keep = t->synced;
        if (torn) {
            /* Part of the first unsynced page reached the disk, its end
             * scrambled: what a torn sector write looks like. */
            uint64_t unsynced = (uint64_t)st.st_size - t->synced;
            uint64_t page = unsynced < 4096 ? unsynced : 4096;
            r = mix(r + i);
            uint64_t extra = r % (page + 1);
            keep += extra;
            if (extra > 0) {
                r = mix(r);
                uint64_t from = t->synced + r % extra;
                int fd = open(t->path, O_WRONLY | O_CLOEXEC);
                if (fd >= 0) {
                    char junk[4096];
                    int zeros = (r >> 32) & 1;
                    for (size_t k = 0; k < sizeof junk; k++)
                        junk[k] = zeros ? 0 : (char)(mix(r + k) & 0xff);
                    ssize_t w = pwrite(fd, junk, (size_t)(keep - from), (off_t)from);
                    (void)w;
                    close(fd);
                }
            }
        }
        if (truncate(t->path, (off_t)keep) != 0) { /* best effort */
        }
    }
    fe->dead = 1;
}

static void crash_locked(fault_env *fe) {
    if (fe->crash_power_cut) power_cut_locked(fe, fe->crash_torn, fe->ops);
    if (fe->crash_hook) fe->crash_hook(fe->crash_hook_arg, fe->crash_power_cut);
    _exit(fe->crash_code);
}

/* Handle the actions common to every operation before it runs. Returns 1
 * if the operation must not run (*rc says how it failed), 0 to run it. */
static int pre_fault(fault_env *fe, int action, int op, const char *what, const char *path,
                     int *rc) {
    switch (action) {
    case FAULT_CRASH_BEFORE:
        crash_locked(fe);
        return 1;
    case FAULT_STOP:
        if (fe->crash_power_cut) power_cut_locked(fe, fe->crash_torn, fe->ops);
        fe->dead = 1;
        *rc = dead_error(what, path);
        return 1;
    case FAULT_FAIL:
        *rc = weir_set_errno(fe->rule.err ? fe->rule.err : EIO, what, path);
        return 1;
    case FAULT_SHORT_WRITE:
        if (!(FAULT_DATA_OPS & FAULT_BIT(op))) {
            *rc = weir_set_errno(fe->rule.err ? fe->rule.err : ENOSPC, what, path);
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* Hand at most max buffered bytes of f to the OS, keep the rest buffered
 * (as env.c does after a partial write) and fail with err. */
static int drain_prefix_and_fail(fault_env *fe, env_writable *f, uint64_t max, int err) {
    size_t n = f->buf_len < max ? f->buf_len : (size_t)max;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(f->fd, f->buf + done, n - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    memmove(f->buf, f->buf + done, f->buf_len - done);
    f->buf_len -= done;
    fe->written += done;
    return weir_set_errno(err, "write", f->path);
}

static uint64_t quota_room(const fault_env *fe) {
    return fe->written >= fe->quota ? 0 : fe->quota - fe->written;
}

#define LOCK(fe) pthread_mutex_lock(&(fe)->mu)
#define UNLOCK(fe) pthread_mutex_unlock(&(fe)->mu)

/* ---- writable files ---- */

/* Crash just after a successful operation if the rule asked for it. */
#define AFTER(fe, action, rc)                                     \
    do {                                                          \
        if ((action) == FAULT_CRASH_AFTER && (rc) == WEIR_OK)     \
            crash_locked(fe);                                     \
    } while (0)


static int f_new_writable(weir_env *env, const char *path, env_writable **out) {
    fault_env *fe = FE(env);
    *out = NULL;
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_CREATE, path, NULL);
    if (fe->dead) {
        rc = dead_error("create", path);
    } else if (!pre_fault(fe, action, FAULT_OP_CREATE, "create", path, &rc)) {
        int existed = access(path, F_OK) == 0;
        rc = fe->b->new_writable(fe->base, path, out);
        if (rc == WEIR_OK) {
            (*out)->env = env;
            track(fe, path, 0);
            if (fe->track_dir && !existed) journal_add(fe, J_CREATE, path);
        }
        AFTER(fe, action, rc);
    }
    UNLOCK(fe);
    return rc;
}

static int f_append(env_writable *f, const void *data, size_t n) {
    fault_env *fe = FE(f->env);
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_APPEND, f->path, NULL);
    if (fe->dead) {
        rc = dead_error("append to", f->path);
    } else if (!pre_fault(fe, action, FAULT_OP_APPEND, "write", f->path, &rc)) {
        uint64_t before = f->size - f->buf_len;
        int drains = f->buf_len + n > f->buf_cap;
        if (action == FAULT_SHORT_WRITE) {
            rc = fe->b->append(f, data, n / 2);
            if (rc == WEIR_OK) rc = fe->b->flush(f);
            fe->written += (f->size - f->buf_len) - before;
            if (rc == WEIR_OK) rc = weir_set_errno(fe->rule.err ? fe->rule.err : ENOSPC, "write", f->path);
        } else if (drains && (uint64_t)f->buf_len + n > quota_room(fe)) {
            fe->injected++;
            rc = drain_prefix_and_fail(fe, f, quota_room(fe), ENOSPC);
        } else {
            rc = fe->b->append(f, data, n);
            fe->written += (f->size - f->buf_len) - before;
            AFTER(fe, action, rc);
        }
    }
    UNLOCK(fe);
    return rc;
}

/* flush, sync and close share the quota and short-write handling. */
static int drain_faults(fault_env *fe, env_writable *f, int action, int *rc) {
    if (f->broken) return 0; /* the base env reports it */
    if (action == FAULT_SHORT_WRITE) {
        *rc = drain_prefix_and_fail(fe, f, f->buf_len / 2, fe->rule.err ? fe->rule.err : ENOSPC);
        return 1;
    }
    if (f->buf_len > quota_room(fe)) {
        fe->injected++;
        *rc = drain_prefix_and_fail(fe, f, quota_room(fe), ENOSPC);
        return 1;
    }
    return 0;
}

static int f_flush(env_writable *f) {
    fault_env *fe = FE(f->env);
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_FLUSH, f->path, NULL);
    if (fe->dead) {
        rc = dead_error("flush", f->path);
    } else if (!pre_fault(fe, action, FAULT_OP_FLUSH, "write", f->path, &rc) &&
               !drain_faults(fe, f, action, &rc)) {
        uint64_t pending = f->buf_len;
        rc = fe->b->flush(f);
        fe->written += pending - f->buf_len;
        AFTER(fe, action, rc);
    }
    UNLOCK(fe);
    return rc;
}

static int f_sync(env_writable *f) {
    fault_env *fe = FE(f->env);
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_SYNC, f->path, NULL);
    if (fe->dead) {
        rc = dead_error("sync", f->path);
    } else if (action == FAULT_FAIL && !f->broken) {
        /* What a failed fdatasync does in env.c: the file is broken for
         * good, because the kernel may have dropped the dirty pages. The
         * buffered bytes did reach the OS first. */
        uint64_t pending = f->buf_len;
        rc = fe->b->flush(f);
        fe->written += pending - f->buf_len;
        f->broken = 1;
        rc = weir_set_errno(fe->rule.err ? fe->rule.err : EIO, "fsync", f->path);
    } else if (!pre_fault(fe, action, FAULT_OP_SYNC, "fsync", f->path, &rc) &&
               !drain_faults(fe, f, action, &rc)) {
        uint64_t pending = f->buf_len;
        rc = fe->b->sync(f);
        fe->written += pending - f->buf_len;
        if (rc == WEIR_OK) track(fe, f->path, f->size);
        AFTER(fe, action, rc);
    }
    UNLOCK(fe);
    return rc;
}

static int f_close_writable(env_writable *f) {
    if (!f) return WEIR_OK;
    fault_env *fe = FE(f->env);
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_CLOSE, f->path, NULL);
    if (fe->dead) {
        /* Nothing reaches a dead disk; the object is still freed. */
        f->buf_len = 0;
        fe->b->close_writable(f);
        rc = dead_error("close", "");
    } else {
        int failed = pre_fault(fe, action, FAULT_OP_CLOSE, "close", f->path, &rc) ||
                     drain_faults(fe, f, action, &rc);
        if (failed) {
            /* close always frees; what it could not write is lost. */
            weir_error saved;
            weir_error_save(&saved, rc);
            f->buf_len = 0;
            fe->b->close_writable(f);
            rc = weir_error_raise(&saved);
        } else {
            uint64_t pending = f->buf_len;
            int broken = f->broken;
            rc = fe->b->close_writable(f);
            if (!broken) fe->written += pending;
            AFTER(fe, action, rc);
        }
    }
    UNLOCK(fe);
    return rc;
}

static int f_truncate_writable(env_writable *f, uint64_t size) {
    fault_env *fe = FE(f->env);
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_TRUNCATE, f->path, NULL);
    if (fe->dead) {
        rc = dead_error("truncate", f->path);
    } else if (!pre_fault(fe, action, FAULT_OP_TRUNCATE, "truncate", f->path, &rc)) {
        uint64_t on_disk = f->size - f->buf_len;
        rc = fe->b->truncate_writable(f, size);
        /* Bytes taken back from the disk free quota again. */
        if (rc == WEIR_OK && size < on_disk) fe->written -= on_disk - size < fe->written ? on_disk - size : fe->written;
        AFTER(fe, action, rc);
    }
    UNLOCK(fe);
    return rc;
}

/* ---- reading ---- */

static int f_open_readable(weir_env *env, const char *path, env_readable **out) {
    fault_env *fe = FE(env);
    *out = NULL;
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_OPEN, path, NULL);
    if (fe->dead) {
        rc = dead_error("open", path);
    } else if (!pre_fault(fe, action, FAULT_OP_OPEN, "open", path, &rc)) {
        rc = fe->b->open_readable(fe->base, path, out);
        if (rc == WEIR_OK) (*out)->env = env;
        AFTER(fe, action, rc);
    }
    UNLOCK(fe);
    return rc;
}

static int f_pread(env_readable *f, uint64_t offset, void *buf, size_t n, size_t *got) {
    fault_env *fe = FE(f->env);
    *got = 0;
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_READ, f->path, NULL);
    if (fe->dead) {
        rc = dead_error("read", f->path);
    } else if (!pre_fault(fe, action, FAULT_OP_READ, "read", f->path, &rc)) {
        rc = fe->b->pread(f, offset, buf, n, got);
        AFTER(fe, action, rc);
    }
    UNLOCK(fe);
    return rc;
}

static int f_mmap(env_readable *f, env_mapping *m) {
    fault_env *fe = FE(f->env);
    m->base = NULL;
    m->len = 0;
    LOCK(fe);
    int rc;
    int action = fe->dead ? 0 : fire(fe, FAULT_OP_MMAP, f->path, NULL);
    if (fe->dead) {
        rc = dead_error("mmap", f->path);
    } else if (!pre_fault(fe, action, FAULT_OP_MMAP, "mmap", f->path, &rc)) {
        rc = fe->b->mmap(f, m);
        AFTER(fe, action, rc);
    }
    UNLOCK(fe);
    return rc;
}

static void f_munmap(env_readable *f, env_mapping *m) {
    fault_env *fe = FE(f->env);
    fe->b->munmap(f, m);
}

static void f_close_readable(env_readable *f) {
    if (!f) return;
    fault_env *fe = FE(f->env);
    fe->b->close_readable(f);
}

/* ---- by name ---- */

static int f_file_exists(weir_env *env, const char *path) {
    fault_env *fe = FE(env);
    return fe->b->file_exists(fe->base, path);
}

/* The shape of every name-based operation. */
#define NAMED_OP(OP, what, p1, p2, call)                                      \
    fault_env *fe = FE(env);                                                  \
    LOCK(fe);                                                                 \
    int rc;                                                                   \
    int action = fe->dead ? 0 : fire(fe, OP, p1, p2);                         \
    if (fe->dead) {                                                           \
        rc = dead_error(what, p1);                                            \
    } else if (!pre_fault(fe, action, OP, what, p1, &rc)) {                   \
        call;                                                                 \
        AFTER(fe, action, rc);                                                \
    }                                                                         \
    UNLOCK(fe);                                                               \
    return rc;

static int f_file_size(weir_env *env, const char *path, uint64_t *size) {
    NAMED_OP(FAULT_OP_SIZE, "stat", path, NULL, rc = fe->b->file_size(fe->base, path, size))
}

static int do_remove(fault_env *fe, const char *path) {
    char *keep = fe->track_dir ? attic_keep(fe, path) : NULL;
    int rc = fe->b->remove_file(fe->base, path);
    if (rc != WEIR_OK) {
        if (keep) unlink(keep);
        free(keep);
        return rc;
    }
    if (keep) {
        journal_entry *j = journal_add(fe, J_REMOVE, path);
        if (j) {
            j->b = keep;
            retrack(fe, path, keep);
            return rc;
        }
        unlink(keep);
        free(keep);
    }
    untrack(fe, path);
    return rc;
}

static int f_remove_file(weir_env *env, const char *path) {
    NAMED_OP(FAULT_OP_REMOVE, "remove", path, NULL, rc = do_remove(fe, path))
}

static int do_rename(fault_env *fe, const char *from, const char *to) {
    char *pre = NULL;
    if (fe->track_dir && access(to, F_OK) == 0) pre = attic_keep(fe, to);
    int rc = fe->b->rename_file(fe->base, from, to);
    if (rc != WEIR_OK) {
        if (pre) unlink(pre);
        free(pre);
        return rc;
    }
    if (pre) retrack(fe, to, pre);
    retrack(fe, from, to);
    if (fe->track_dir) {
        journal_entry *j = journal_add(fe, J_RENAME, from);
        if (j) {
            j->b = dup_str(to);
            j->pre = pre;
            pre = NULL;
        }
    }
    free(pre);
    return rc;
}

static int f_rename_file(weir_env *env, const char *from, const char *to) {
    NAMED_OP(FAULT_OP_RENAME, "rename", from, to, rc = do_rename(fe, from, to))
}

static int do_link(fault_env *fe, const char *from, const char *to) {
    int rc = fe->b->link_file(fe->base, from, to);
    if (rc != WEIR_OK) return rc;
    tracked_file *t = find_file(fe, from);
    if (t) track(fe, to, t->synced);
    if (fe->track_dir) journal_add(fe, J_LINK, to);
    return rc;
}

static int f_link_file(weir_env *env, const char *from, const char *to) {
    NAMED_OP(FAULT_OP_LINK, "link", from, to, rc = do_link(fe, from, to))
}

static int do_truncate(fault_env *fe, const char *path, uint64_t size) {
    int rc = fe->b->truncate_file(fe->base, path, size);
    tracked_file *t = find_file(fe, path);
    if (rc == WEIR_OK && t && t->synced > size) t->synced = size;
    return rc;
}

static int f_truncate_file(weir_env *env, const char *path, uint64_t size) {
    NAMED_OP(FAULT_OP_TRUNCATE, "truncate", path, NULL, rc = do_truncate(fe, path, size))
}

static int f_create_dir(weir_env *env, const char *path) {
    NAMED_OP(FAULT_OP_MKDIR, "create directory", path, NULL, rc = fe->b->create_dir(fe->base, path))
}

static int f_remove_dir(weir_env *env, const char *path) {
    NAMED_OP(FAULT_OP_RMDIR, "remove directory", path, NULL, rc = fe->b->remove_dir(fe->base, path))
}

static int do_sync_dir(fault_env *fe, const char *path) {
    int rc = fe->b->sync_dir(fe->base, path);
    if (rc == WEIR_OK) journal_commit(fe, path);
    return rc;
}

static int f_sync_dir(weir_env *env, const char *path) {
    NAMED_OP(FAULT_OP_SYNC_DIR, "fsync directory", path, NULL, rc = do_sync_dir(fe, path))
}

static int f_list_dir(weir_env *env, const char *path, env_dirent_list *out) {
    out->names = NULL;
    out->count = 0;
    NAMED_OP(FAULT_OP_LIST, "list directory", path, NULL, rc = fe->b->list_dir(fe->base, path, out))
}

static int f_lock_file(weir_env *env, const char *path, int *lock_fd) {
    *lock_fd = -1;
    NAMED_OP(FAULT_OP_LOCK, "lock", path, NULL, rc = fe->b->lock_file(fe->base, path, lock_fd))
}

static int f_lock_file_shared(weir_env *env, const char *path, int *lock_fd) {
    *lock_fd = -1;
    NAMED_OP(FAULT_OP_LOCK, "lock", path, NULL, rc = fe->b->lock_file_shared(fe->base, path, lock_fd))
}

static void f_unlock_file(weir_env *env, int lock_fd) {
    fault_env *fe = FE(env);
    fe->b->unlock_file(fe->base, lock_fd);
}

static uint64_t f_now_micros(weir_env *env) {
    fault_env *fe = FE(env);
    return fe->b->now_micros(fe->base);
}

static void f_sleep_micros(weir_env *env, uint64_t micros) {
    fault_env *fe = FE(env);
    fe->b->sleep_micros(fe->base, micros);
}

static const struct weir_env_ops fault_ops = {
    .new_writable = f_new_writable,
    .append = f_append,
    .truncate_writable = f_truncate_writable,
    .flush = f_flush,
    .sync = f_sync,
    .close_writable = f_close_writable,
    .open_readable = f_open_readable,
    .pread = f_pread,
    .mmap = f_mmap,
    .munmap = f_munmap,
    .close_readable = f_close_readable,
    .file_exists = f_file_exists,
    .file_size = f_file_size,
    .remove_file = f_remove_file,
    .rename_file = f_rename_file,
    .link_file = f_link_file,
    .truncate_file = f_truncate_file,
    .create_dir = f_create_dir,
    .remove_dir = f_remove_dir,
    .sync_dir = f_sync_dir,
    .list_dir = f_list_dir,
    .lock_file = f_lock_file,
    .lock_file_shared = f_lock_file_shared,
    .unlock_file = f_unlock_file,
    .now_micros = f_now_micros,
    .sleep_micros = f_sleep_micros,
};

/* ---- control ---- */

fault_env *fault_env_create(weir_env *base) {
    fault_env *fe = calloc(1, sizeof *fe);
    if (!fe) return NULL;
    fe->base = base ? base : env_posix();
    fe->b = fe->base->ops;
    fe->env.ops = &fault_ops;
    fe->env.state = fe;
    fe->quota = UINT64_MAX;
    fe->crash_code = FAULT_CRASH_EXIT;
    fe->track_dir = 1;
    fe->last_op = -1;
    pthread_mutex_init(&fe->mu, NULL);
    return fe;
}

void fault_env_destroy(fault_env *fe) {
    if (!fe) return;
    for (size_t i = 0; i < fe->nfiles; i++) free(fe->files[i].path);
    free(fe->files);
    /* Attic copies of removals that were never made durable go too. */
    for (size_t i = 0; i < fe->njournal; i++) {
        journal_entry *j = &fe->journal[i];
        if (!fe->dead && j->kind == J_REMOVE && j->b) unlink(j->b);
        if (!fe->dead && j->kind == J_RENAME && j->pre) unlink(j->pre);
        journal_free_entry(j);
    }
    free(fe->journal);
    free(fe->rule_path);
    pthread_mutex_destroy(&fe->mu);
    free(fe);
}

weir_env *fault_env_env(fault_env *fe) { return &fe->env; }

uint64_t fault_env_ops(fault_env *fe) {
    LOCK(fe);
    uint64_t n = fe->ops;
    UNLOCK(fe);
    return n;
}

uint64_t fault_env_ops_of(fault_env *fe, int op) {
    if (op < 0 || op >= FAULT_OP_COUNT) return 0;
    LOCK(fe);
    uint64_t n = fe->ops_by[op];
    UNLOCK(fe);
    return n;
}

int fault_env_last_fault(fault_env *fe, char *path, size_t cap) {
    LOCK(fe);
    int op = fe->last_op;
    if (path && cap) snprintf(path, cap, "%s", fe->last_path);
    UNLOCK(fe);
    return op;
}

uint64_t fault_env_injected(fault_env *fe) {
    LOCK(fe);
    uint64_t n = fe->injected;
    UNLOCK(fe);
    return n;
}

int fault_env_set_rule(fault_env *fe, const fault_rule *rule) {
    char *part = NULL;
    if (rule->path_part) {
        part = dup_str(rule->path_part);
        if (!part) return WEIR_NO_MEMORY;
    }
    LOCK(fe);
    free(fe->rule_path);
    fe->rule = *rule;
    fe->rule.path_part = NULL;
    fe->rule_path = part;
    fe->rule_active = rule->nth > 0 && rule->action != 0;
    fe->matched = 0;
    UNLOCK(fe);
    return WEIR_OK;
}

void fault_env_clear_rule(fault_env *fe) {
    LOCK(fe);
    fe->rule_active = 0;
    free(fe->rule_path);
    fe->rule_path = NULL;
    UNLOCK(fe);
}

int fault_env_fail_nth(fault_env *fe, uint64_t nth, int err) {
    fault_rule r = {0, NULL, nth, FAULT_FAIL, err, 0};
    return fault_env_set_rule(fe, &r);
}

void fault_env_set_quota(fault_env *fe, uint64_t bytes) {
    LOCK(fe);
    fe->quota = bytes;
    UNLOCK(fe);
}

uint64_t fault_env_bytes_written(fault_env *fe) {
    LOCK(fe);
    uint64_t n = fe->written;
    UNLOCK(fe);
    return n;
}

void fault_env_set_crash(fault_env *fe, int power_cut, int torn, int exit_code) {
    LOCK(fe);
    fe->crash_power_cut = power_cut;
    fe->crash_torn = torn;
    fe->crash_code = exit_code;
    UNLOCK(fe);
}

void fault_env_set_crash_hook(fault_env *fe, void (*hook)(void *arg, int power_cut), void *arg) {
    LOCK(fe);
    fe->crash_hook = hook;
    fe->crash_hook_arg = arg;
    UNLOCK(fe);
}

int fault_env_power_cut(fault_env *fe, int torn, uint64_t seed) {
    LOCK(fe);
    power_cut_locked(fe, torn, seed);
    UNLOCK(fe);
    return WEIR_OK;
}

void fault_env_track_dir_ops(fault_env *fe, int on) {
    LOCK(fe);
    fe->track_dir = on;
    UNLOCK(fe);
}

int fault_env_is_dead(fault_env *fe) {
    LOCK(fe);
    int d = fe->dead;
    UNLOCK(fe);
    return d;
}

/* ---- named crash points ---- */

typedef struct crash_point {
    const char *name;
    uint32_t ops;
    const char *path_part;
    int action;
} crash_point;

static const crash_point crash_points[] = {
    {"log-append", FAULT_BIT(FAULT_OP_APPEND), ".log", FAULT_CRASH_BEFORE},
    {"log-sync-before", FAULT_BIT(FAULT_OP_SYNC), ".log", FAULT_CRASH_BEFORE},
    {"log-sync-after", FAULT_BIT(FAULT_OP_SYNC), ".log", FAULT_CRASH_AFTER},
    {"log-create-after", FAULT_BIT(FAULT_OP_CREATE), ".log", FAULT_CRASH_AFTER},
    {"log-remove-after", FAULT_BIT(FAULT_OP_REMOVE), ".log", FAULT_CRASH_AFTER},
    {"table-create-after", FAULT_BIT(FAULT_OP_CREATE), ".sst", FAULT_CRASH_AFTER},
    {"table-append", FAULT_BIT(FAULT_OP_APPEND), ".sst", FAULT_CRASH_BEFORE},
    {"table-sync-before", FAULT_BIT(FAULT_OP_SYNC), ".sst", FAULT_CRASH_BEFORE},
    {"table-sync-after", FAULT_BIT(FAULT_OP_SYNC), ".sst", FAULT_CRASH_AFTER},
    {"table-remove-after", FAULT_BIT(FAULT_OP_REMOVE), ".sst", FAULT_CRASH_AFTER},
    {"manifest-create-after", FAULT_BIT(FAULT_OP_CREATE), "MANIFEST-", FAULT_CRASH_AFTER},
    {"manifest-append", FAULT_BIT(FAULT_OP_APPEND), "MANIFEST-", FAULT_CRASH_BEFORE},
    {"manifest-sync-before", FAULT_BIT(FAULT_OP_SYNC), "MANIFEST-", FAULT_CRASH_BEFORE},
    {"manifest-sync-after", FAULT_BIT(FAULT_OP_SYNC), "MANIFEST-", FAULT_CRASH_AFTER},
    {"manifest-remove-after", FAULT_BIT(FAULT_OP_REMOVE), "MANIFEST-", FAULT_CRASH_AFTER},
    {"current-temp-sync-after", FAULT_BIT(FAULT_OP_SYNC), ".dbtmp", FAULT_CRASH_AFTER},
    {"current-rename-before", FAULT_BIT(FAULT_OP_RENAME), "CURRENT", FAULT_CRASH_BEFORE},
    {"current-rename-after", FAULT_BIT(FAULT_OP_RENAME), "CURRENT", FAULT_CRASH_AFTER},
    {"dir-sync-before", FAULT_BIT(FAULT_OP_SYNC_DIR), NULL, FAULT_CRASH_BEFORE},
    {"dir-sync-after", FAULT_BIT(FAULT_OP_SYNC_DIR), NULL, FAULT_CRASH_AFTER},
};

int fault_crash_point_count(void) { return (int)(sizeof crash_points / sizeof crash_points[0]); }

const char *fault_crash_point_name(int i) {
    return i >= 0 && i < fault_crash_point_count() ? crash_points[i].name : NULL;
}

int fault_crash_point(const char *name, uint64_t nth, fault_rule *rule) {
    for (int i = 0; i < fault_crash_point_count(); i++) {
        if (strcmp(crash_points[i].name, name) != 0) continue;
        memset(rule, 0, sizeof *rule);
        rule->ops = crash_points[i].ops;
        rule->path_part = crash_points[i].path_part;
        rule->nth = nth ? nth : 1;
        rule->action = crash_points[i].action;
        return 0;
    }
    return -1;
}
