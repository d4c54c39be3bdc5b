/*
 * env_fault.h -- a weir_env for tests that wraps another env (normally
 * env_posix()) and injects faults: it counts every fallible file operation
 * and can fail the Nth one (with any errno: EIO, ENOSPC, EINTR, ...), cut a
 * write short, fail an fsync (the file then stays broken, as env.c does
 * after a real failed fsync), impose a byte quota (a full disk), crash the
 * process at a named crash point, and simulate a power cut: every file is
 * cut back to the length it had at its last successful sync (optionally
 * with a torn last page), and creations, renames and removals made since
 * the directory's last sync are undone.
 *
 * The engine never depends on this file; tests pass fault_env_env() to
 * weir_options_set_env(). All state is behind one mutex and every
 * operation runs holding it, so a simulated crash is atomic with respect
 * to the engine's other threads.
 */
#ifndef WEIR_ENV_FAULT_H
#define WEIR_ENV_FAULT_H

#include <stdint.h>

#include "env.h"

/* Operation kinds, as bits for fault_rule.ops. */
enum fault_op {
    FAULT_OP_CREATE = 0,   /* new_writable */
    FAULT_OP_APPEND,
    FAULT_OP_FLUSH,
    FAULT_OP_SYNC,
    FAULT_OP_CLOSE,        /* close_writable */
    FAULT_OP_OPEN,         /* open_readable */
    FAULT_OP_READ,         /* pread */
    FAULT_OP_MMAP,
    FAULT_OP_SIZE,         /* file_size */
    FAULT_OP_REMOVE,
    FAULT_OP_RENAME,
    FAULT_OP_LINK,
    FAULT_OP_TRUNCATE,
    FAULT_OP_MKDIR,
    FAULT_OP_RMDIR,
    FAULT_OP_SYNC_DIR,
    FAULT_OP_LIST,
    FAULT_OP_LOCK,
    FAULT_OP_COUNT
};
#define FAULT_BIT(op) (1u << (op))
/* Operations that change files (what a full disk or a dying device fails). */
#define FAULT_WRITE_OPS                                                                        \
    (FAULT_BIT(FAULT_OP_CREATE) | FAULT_BIT(FAULT_OP_APPEND) | FAULT_BIT(FAULT_OP_FLUSH) |     \
     FAULT_BIT(FAULT_OP_SYNC) | FAULT_BIT(FAULT_OP_CLOSE) | FAULT_BIT(FAULT_OP_RENAME) |       \
     FAULT_BIT(FAULT_OP_LINK) | FAULT_BIT(FAULT_OP_SYNC_DIR) | FAULT_BIT(FAULT_OP_REMOVE) |    \
     FAULT_BIT(FAULT_OP_TRUNCATE) | FAULT_BIT(FAULT_OP_MKDIR))
/* Operations that move bytes towards the disk (where short writes happen). */
#define FAULT_DATA_OPS                                                                         \
    (FAULT_BIT(FAULT_OP_APPEND) | FAULT_BIT(FAULT_OP_FLUSH) | FAULT_BIT(FAULT_OP_SYNC) |       \
     FAULT_BIT(FAULT_OP_CLOSE))

const char *fault_op_name(int op);

enum fault_action {
    FAULT_FAIL = 1,    /* the operation fails with `err`, doing nothing (a
                          sync marks the file broken) */
    FAULT_SHORT_WRITE, /* data ops: about half the bytes reach the file, then
                          the operation fails with `err` (ENOSPC if 0) */
    FAULT_CRASH_BEFORE,/* the process exits (see fault_env_set_crash) before
                          the operation */
    FAULT_CRASH_AFTER, /* ... just after it succeeded */
    FAULT_STOP         /* an in-process crash before the operation: it and
                          every later one fail, closes drop their buffers
                          (what dies with a process); with
                          fault_env_set_crash(power_cut) set, unsynced data
                          is dropped first, as by fault_env_power_cut */
};

typedef struct fault_rule {
    uint32_t ops;          /* FAULT_BIT mask; 0 = every operation */
    const char *path_part; /* only paths containing this (either path of a
                              rename or link); NULL = any; copied */
    uint64_t nth;          /* fire at the nth matching operation (1-based) */
    int action;            /* enum fault_action */
    int err;               /* errno for FAULT_FAIL / FAULT_SHORT_WRITE */
    int sticky;            /* keep firing at every later matching operation */
} fault_rule;

typedef struct fault_env fault_env;

/* base NULL means env_posix(). NULL if out of memory. */
fault_env *fault_env_create(weir_env *base);
/* Must outlive every DB opened on it. */
void fault_env_destroy(fault_env *fe);
/* The env to hand to weir_options_set_env. */
weir_env *fault_env_env(fault_env *fe);

/* Fallible operations performed so far (all kinds), and per kind. */
uint64_t fault_env_ops(fault_env *fe);
/* Kind and path of the operation the last fault hit (-1 if none yet). */
int fault_env_last_fault(fault_env *fe, char *path, size_t cap);
uint64_t fault_env_ops_of(fault_env *fe, int op);
/* Faults injected so far (each firing of a rule or the quota). */
uint64_t fault_env_injected(fault_env *fe);

/* Install one rule (replacing any), counting matches from now on. */
int fault_env_set_rule(fault_env *fe, const fault_rule *rule);
void fault_env_clear_rule(fault_env *fe);
/* Convenience: fail the nth operation from now (any kind) with err. */
int fault_env_fail_nth(fault_env *fe, uint64_t nth, int err);

/* Disk-full simulation: once the bytes written through this env (appends,
 * counted when they reach the file, and small files) would exceed
 * `bytes`, writes fail with ENOSPC, cut short at the limit. UINT64_MAX
 * lifts the limit ("space was freed"). */
void fault_env_set_quota(fault_env *fe, uint64_t bytes);
uint64_t fault_env_bytes_written(fault_env *fe);

/* What a crash does: FAULT_CRASH_* exit the process with `code` (via
 * _exit, so no buffers are flushed) and FAULT_STOP stops the env; both cut
 * the power first (dropping unsynced data, tearing the last page if torn)
 * when power_cut is set. */
void fault_env_set_crash(fault_env *fe, int power_cut, int torn, int exit_code);
/* Called just before a FAULT_CRASH_* exit (after the power cut, if any),
 * e.g. to tell an oracle the crash was deliberate. Must not use the env. */
void fault_env_set_crash_hook(fault_env *fe, void (*hook)(void *arg, int power_cut), void *arg);
#define FAULT_CRASH_EXIT 99

/* Simulated power cut, now: every file written through this env is
 * truncated to its last synced length (a file never synced loses all
 * data); with torn, up to one page of the unsynced tail survives and its
 * end is overwritten with garbage or zeros (chosen by seed). Creations,
 * renames and removals since the last sync of their directory are undone
 * (fault_env_track_dir_ops). From then on every operation fails with EIO
 * ("the power is off") and closing a file drops what it buffered, so
 * the DB can be closed and freed before reopening on a fresh env. */
int fault_env_power_cut(fault_env *fe, int torn, uint64_t seed);
/* Keep enough (hard links in "<dir>.fault-attic") to undo unsynced
 * directory operations at a power cut [on]. */
void fault_env_track_dir_ops(fault_env *fe, int on);
/* 1 after a power cut. */
int fault_env_is_dead(fault_env *fe);

/* Named crash points: rules that stop the engine at a meaningful moment
 * (e.g. "current-rename-after": just after CURRENT was replaced). */
int fault_crash_point_count(void);
const char *fault_crash_point_name(int i);
/* Fill *rule for crash point `name` firing at its nth occurrence; 0 on
 * success, -1 if the name is unknown. path_part points at static text. */
int fault_crash_point(const char *name, uint64_t nth, fault_rule *rule);

#endif
