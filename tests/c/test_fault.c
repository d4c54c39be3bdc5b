/*
 * test_fault.c -- I/O fault sweeps over a workload, in the manner of
 * SQLite's I/O-error tests, using the fault-injecting env (env_fault.h).
 *
 * A fixed workload (batches of puts and deletes, range deletions, merges,
 * TTL puts, flushes, a full compaction, a checkpoint, scans) is run once
 * to count its file operations; then, for every N, it is run again on a
 * fresh directory with a fault at operation N: a failure with EIO, ENOSPC
 * or EINTR, a short write, a failed fsync, a device that dies for good, an
 * in-process crash, or a power cut (unsynced bytes and directory entries
 * dropped, optionally with a torn last page). After each point:
 *
 *   - every call either succeeded or returned IO_ERROR / NO_SPACE /
 *     READ_ONLY with a message (NO_SPACE saying so); reads of what was
 *     acknowledged keep working while the process lives;
 *   - the store reopens on the real env, and every write op acknowledged
 *     is there (after a power cut: every fsync-acknowledged op, and what
 *     survives is a prefix of the acknowledged history);
 *   - nothing is half-applied: each write op also puts a marker key
 *     "u<op>", so the set of ops that took effect is read back from the
 *     store, and the whole store must equal the model built from exactly
 *     those ops, in order;
 *   - a checkpoint that reported success opens and holds exactly what was
 *     acknowledged before it;
 *   - `weir check` finds nothing wrong.
 *
 * Environment: WEIR_FAULT_STRIDE (test every Nth point, default 1),
 * WEIR_TEST_SEED (workload seed), WEIR_CLI (path of the weir tool; set by
 * CMake), WEIR_FAULT_REPORT (append the figures to this file).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db_impl.h"
#include "env_fault.h"
#include "testutil.h"

#define NK 48      /* data keys k00..k47 */
#define NC 4       /* int64 counters c0..c3 */
#define NOPS 44    /* workload length */
#define MAXPUT 5

enum op_kind { W_BATCH, W_DELRANGE, W_MERGE, W_TTL, W_FLUSH, W_COMPACT, W_READ, W_CHECKPOINT };

typedef struct wop {
    int kind;
    int fsync;            /* FSYNC, else FLUSH */
    int nput, keys[MAXPUT];
    int del;              /* a key the batch deletes, or -1 */
    int lo, hi;           /* range deletion [k<lo>, k<hi>) */
    int ctr;
    int64_t delta;
    int big;              /* values of ~1.5 KiB fill memtables */
} wop;

static wop ops[NOPS];
static uint64_t g_seed;
static char g_base[PATH_MAX], g_dir[PATH_MAX + 8], g_ckpt[PATH_MAX + 8];

static int is_write(const wop *o) {
    return o->kind == W_BATCH || o->kind == W_DELRANGE || o->kind == W_MERGE || o->kind == W_TTL;
}

static void gen_workload(uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    for (int i = 0; i < NOPS; i++) {
        wop *o = &ops[i];
        memset(o, 0, sizeof *o);
        o->del = -1;
        uint64_t x = test_rng_uniform(&r, 100);
        o->kind = x < 50 ? W_BATCH : x < 62 ? W_DELRANGE : x < 80 ? W_MERGE : x < 90 ? W_TTL : W_READ;
        if (i == 14 || i == 29) o->kind = W_FLUSH;
        if (i == 36) o->kind = W_COMPACT;
        if (i == 22) o->kind = W_CHECKPOINT;
        if (i == NOPS - 1) o->kind = W_READ;
        o->fsync = test_rng_uniform(&r, 3) != 0;
        o->nput = 1 + (int)test_rng_uniform(&r, MAXPUT);
        for (int j = 0; j < o->nput; j++) o->keys[j] = (int)test_rng_uniform(&r, NK);
        if (test_rng_uniform(&r, 3) == 0) o->del = (int)test_rng_uniform(&r, NK);
        o->lo = (int)test_rng_uniform(&r, NK);
        o->hi = o->lo + 1 + (int)test_rng_uniform(&r, 8);
        if (o->hi > NK) o->hi = NK;
        o->ctr = (int)test_rng_uniform(&r, NC);
        o->delta = (int64_t)test_rng_uniform(&r, 1000) - 300;
        o->big = test_rng_uniform(&r, 2) == 0;
    }
}

static size_t key_k(char *out, int k) { return (size_t)snprintf(out, 8, "k%02d", k); }
static size_t key_c(char *out, int c) { return (size_t)snprintf(out, 8, "c%d", c); }
static size_t key_u(char *out, int i) { return (size_t)snprintf(out, 8, "u%02d", i); }

/* The value op i writes to data key k. */
static size_t value_of(char *out, int i, int k) {
    int n = snprintf(out, 32, "v%02d-%02d-", i, k);
    size_t len = ops[i].big ? 1500 : 40;
    for (size_t j = (size_t)n; j < len; j++) out[j] = (char)('a' + (i * 7 + k + (int)j) % 26);
    return len;
}

/* ---- the model ---- */

typedef struct model {
    int vop[NK];     /* op whose value k holds, -1 absent */
    int64_t ctr[NC];
    int has_ctr[NC];
    int u[NOPS];
} model;

static void model_init(model *m) {
    memset(m, 0, sizeof *m);
    for (int k = 0; k < NK; k++) m->vop[k] = -1;
}

static void model_apply(model *m, int i) {
    const wop *o = &ops[i];
    if (!is_write(o)) return;
    m->u[i] = 1;
    switch (o->kind) {
    case W_BATCH:
        for (int j = 0; j < o->nput; j++) m->vop[o->keys[j]] = i;
        if (o->del >= 0) m->vop[o->del] = -1;
        break;
    case W_DELRANGE:
        for (int k = o->lo; k < o->hi; k++) m->vop[k] = -1;
        break;
    case W_MERGE:
        m->ctr[o->ctr] += o->delta;
        m->has_ctr[o->ctr] = 1;
        break;
    case W_TTL:
        m->vop[o->keys[0]] = i;
        break;
    }
}

static void model_build(model *m, const int *applied) {
    model_init(m);
    for (int i = 0; i < NOPS; i++)
        if (applied[i]) model_apply(m, i);
}

/* ---- running ops ---- */

static int run_write(weir_db *db, int i) {
    const wop *o = &ops[i];
    weir_writeopts wo;
    memset(&wo, 0, sizeof wo);
    wo.sync = o->fsync ? WEIR_SYNC_FSYNC : WEIR_SYNC_FLUSH;
    weir_batch *b = weir_batch_create();
    if (!b) return WEIR_NO_MEMORY;
    char k[16], k2[16], v[1600];
    int rc = WEIR_OK;
    switch (o->kind) {
    case W_BATCH:
        for (int j = 0; j < o->nput && rc == WEIR_OK; j++)
            rc = weir_batch_put(b, k, key_k(k, o->keys[j]), v, value_of(v, i, o->keys[j]));
        if (rc == WEIR_OK && o->del >= 0) rc = weir_batch_delete(b, k, key_k(k, o->del));
        break;
    case W_DELRANGE:
        /* "l" sorts after every data key. */
        if (o->hi < NK) rc = weir_batch_delete_range(b, k, key_k(k, o->lo), k2, key_k(k2, o->hi));
        else rc = weir_batch_delete_range(b, k, key_k(k, o->lo), "l", 1);
        break;
    case W_MERGE: {
        char d[8];
        uint64_t u = (uint64_t)o->delta;
        for (int j = 0; j < 8; j++) d[j] = (char)(u >> (8 * j));
        rc = weir_batch_merge(b, k, key_c(k, o->ctr), WEIR_MERGE_INT64_ADD, d, 8);
        break;
    }
    case W_TTL:
        rc = weir_batch_put_ttl(b, k, key_k(k, o->keys[0]), v, value_of(v, i, o->keys[0]),
                                1000ull * 3600 * 24 * 365);
        break;
    }
    /* The marker goes last: a batch applied in part would show it without
     * the rest, or the rest without it. */
    if (rc == WEIR_OK) rc = weir_batch_put(b, k, key_u(k, i), "1", 1);
    if (rc == WEIR_OK) rc = weir_write(db, &wo, b);
    weir_batch_destroy(b);
    return rc;
}

/* Compare the whole store with m. Returns the number of differences (and
 * describes the first in why), or -1 with *st set if the scan failed. */
static int compare_store(weir_db *db, const model *m, int *st, char *why, size_t cap) {
    weir_iter *it;
    *st = weir_iter_create(db, NULL, &it);
    if (*st != WEIR_OK) return -1;
    int seen_k[NK] = {0}, seen_c[NC] = {0}, seen_u[NOPS] = {0};
    int diffs = 0;
    char want[1600];
    why[0] = '\0';
#define DIFF(...)                                              \
    do {                                                       \
        if (diffs++ == 0) snprintf(why, cap, __VA_ARGS__);     \
    } while (0)
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
        size_t kl, vl;
        const char *k = weir_iter_key(it, &kl);
        const char *v = weir_iter_value(it, &vl);
        int n = 0;
        if (kl == 3 && k[0] == 'k' && sscanf(k + 1, "%2d", &n) == 1 && n < NK) {
            seen_k[n] = 1;
            if (m->vop[n] < 0) {
                DIFF("k%02d present (%.7s...), model says absent", n, v);
            } else {
                size_t wl = value_of(want, m->vop[n], n);
                if (wl != vl || memcmp(want, v, vl) != 0)
                    DIFF("k%02d holds %.7s..., model says op %d's value", n, v, m->vop[n]);
            }
        } else if (kl == 2 && k[0] == 'c' && k[1] >= '0' && k[1] < '0' + NC) {
            n = k[1] - '0';
            seen_c[n] = 1;
            int64_t got = 0;
            if (vl == 8)
                for (int j = 7; j >= 0; j--) got = (int64_t)(((uint64_t)got << 8) | (uint8_t)v[j]);
            if (!m->has_ctr[n] || vl != 8 || got != m->ctr[n])
                DIFF("c%d = %" PRId64 " (%zu bytes), model says %s%" PRId64, n, got, vl,
                     m->has_ctr[n] ? "" : "absent ", m->ctr[n]);
        } else if (kl == 3 && k[0] == 'u' && sscanf(k + 1, "%2d", &n) == 1 && n < NOPS) {
            seen_u[n] = 1;
            if (!m->u[n]) DIFF("marker u%02d present, model says op %d not applied", n, n);
        } else {
            DIFF("unexpected key %.*s", (int)kl, k);
        }
    }
    *st = weir_iter_status(it);
    weir_iter_destroy(it);
    if (*st != WEIR_OK) return -1;
    for (int n = 0; n < NK; n++)
        if (!seen_k[n] && m->vop[n] >= 0) DIFF("k%02d missing, model has op %d's value", n, m->vop[n]);
    for (int n = 0; n < NC; n++)
        if (!seen_c[n] && m->has_ctr[n]) DIFF("c%d missing", n);
    for (int n = 0; n < NOPS; n++)
        if (!seen_u[n] && m->u[n]) DIFF("marker u%02d missing", n);
#undef DIFF
    return diffs;
}

/* Which ops' markers the store holds. */
static int read_markers(weir_db *db, int *present) {
    for (int i = 0; i < NOPS; i++) {
        char k[16], v[4];
        size_t vl;
        int rc = weir_get(db, NULL, k, key_u(k, i), v, sizeof v, &vl);
        if (rc == WEIR_OK) present[i] = 1;
        else if (rc == WEIR_NOT_FOUND) present[i] = 0;
        else return rc;
    }
    return WEIR_OK;
}

/* ---- weir check ---- */

static const char *cli_path(void) {
    const char *p = getenv("WEIR_CLI");
#ifdef WEIR_CLI_PATH
    if (!p || !*p) p = WEIR_CLI_PATH;
#endif
    return p && *p && access(p, X_OK) == 0 ? p : NULL;
}

/* Run `weir check dir`; 0 if clean (or no tool), else its exit status with
 * the output left in out. */
static int run_check(const char *dir, char *out, size_t cap) {
    const char *cli = cli_path();
    out[0] = '\0';
    if (!cli) return 0;
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/check.out", g_base);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(cli, cli, "check", dir, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (code != 0) {
        FILE *f = fopen(log, "r");
        if (f) {
            size_t n = fread(out, 1, cap - 1, f);
            out[n] = '\0';
            fclose(f);
        }
    }
    return code;
}

/* Sanitizer builds run every test several times slower (and each `weir
 * check` starts a sanitized process), so by default they fault every
 * third operation and check every fourth store; a plain build does all. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_STRIDE 3
#define DEFAULT_CHECK_EVERY 4
#else
#define DEFAULT_STRIDE 1
#define DEFAULT_CHECK_EVERY 1
#endif

static uint64_t env_u64(const char *name, uint64_t dflt) {
    const char *s = getenv(name);
    long v = s && *s ? strtol(s, NULL, 10) : (long)dflt;
    return v > 0 ? (uint64_t)v : dflt;
}

/* ---- one sweep point ---- */

typedef struct sweep {
    const char *name;
    fault_rule rule;    /* nth is set per point */
    int power_cut, torn; /* for FAULT_STOP */
} sweep;

typedef struct sweep_stats {
    uint64_t points, injected, write_errors, read_errors, read_only, indoubt_applied,
        indoubt_absent, flush_acked_lost, checkpoints_verified;
} sweep_stats;

static weir_options *fault_opts(weir_env *env) {
    weir_options *o = weir_options_create();
    if (!o) return NULL;
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_options_set_target_file_size(o, 64 * 1024);
    weir_options_set_block_size(o, 1024);
    /* No automatic compaction: op numbers then depend on the workload,
     * not on thread timing (flushes still run in the background). */
    weir_options_set_level0_triggers(o, 40, 50, 60);
    weir_options_set_background_threads(o, 1);
    weir_options_set_sync_mode(o, WEIR_SYNC_FSYNC);
    if (env) weir_options_set_env(o, env);
    return o;
}

static int allowed_error(int rc) {
    return rc == WEIR_IO_ERROR || rc == WEIR_NO_SPACE || rc == WEIR_READ_ONLY;
}

static char g_fail[2048];
static char g_fault_desc[PATH_MAX + 32]; /* the operation the fault hit */

#define POINT_FAIL(...)                                                        \
    do {                                                                       \
        snprintf(g_fail, sizeof g_fail, __VA_ARGS__);                          \
        goto fail;                                                             \
    } while (0)

static void reset_dirs(void) {
    char p[PATH_MAX + 32];
    test_rmtree(g_dir);
    snprintf(p, sizeof p, "%s.fault-attic", g_dir);
    test_rmtree(p);
    test_rmtree(g_ckpt);
    snprintf(p, sizeof p, "%s.fault-attic", g_ckpt);
    test_rmtree(p);
}

/* Run the workload once with s's rule firing at operation n (0: no fault).
 * Returns 0 if every check passed; on failure g_fail says why. *ops_out is
 * the number of env operations the run made. */
static int run_point(const sweep *s, uint64_t n, sweep_stats *st, uint64_t *ops_out) {
    reset_dirs();
    snprintf(g_fault_desc, sizeof g_fault_desc, "(not reached)");
    weir_options *o = NULL;
    weir_db *db = NULL;
    fault_env *fe = fault_env_create(NULL);
    if (!fe) POINT_FAIL("out of memory");
    fault_env_set_crash(fe, s->power_cut, s->torn, FAULT_CRASH_EXIT);
    if (n) {
        fault_rule r = s->rule;
        r.nth = n;
        fault_env_set_rule(fe, &r);
    }
    o = fault_opts(fault_env_env(fe));
    int result[NOPS];
    int acked[NOPS] = {0};
    int ckpt_at = -1;
    model mem;
    model_init(&mem);
    char why[512];
    int had_error = 0;
    for (int i = 0; i < NOPS; i++) result[i] = -1;

    int rc = weir_open(g_dir, o, &db);
    if (rc != WEIR_OK) {
        if (!allowed_error(rc)) POINT_FAIL("open failed with %s: %s", weir_status_name(rc), weir_errmsg());
        if (!*weir_errmsg()) POINT_FAIL("open failed with %s and no message", weir_status_name(rc));
        db = NULL;
        had_error = 1;
    }
    for (int i = 0; db && i < NOPS; i++) {
        const wop *op = &ops[i];
        int dead = fault_env_is_dead(fe);
        if (is_write(op)) {
            rc = run_write(db, i);
            result[i] = rc;
            if (rc == WEIR_OK) {
                acked[i] = 1;
                model_apply(&mem, i);
                continue;
            }
        } else if (op->kind == W_FLUSH) {
            rc = weir_flush(db);
        } else if (op->kind == W_COMPACT) {
            rc = weir_compact_range(db, NULL, 0, NULL, 0);
        } else if (op->kind == W_CHECKPOINT) {
            rc = weir_checkpoint(db, g_ckpt);
            if (rc == WEIR_OK) ckpt_at = i;
        } else {
            int srt;
            int d = compare_store(db, &mem, &srt, why, sizeof why);
            if (d < 0) {
                rc = srt;
                st->read_errors++;
                if (!allowed_error(rc))
                    POINT_FAIL("op %d: scan failed with %s: %s", i, weir_status_name(rc), weir_errmsg());
                /* One fault, one failure: the same read again works. */
                if (!dead && !fault_env_is_dead(fe)) {
                    d = compare_store(db, &mem, &srt, why, sizeof why);
                    if (d < 0)
                        POINT_FAIL("op %d: scan failed twice: %s: %s", i, weir_status_name(srt),
                                   weir_errmsg());
                }
            }
            if (d > 0) POINT_FAIL("op %d: live store differs from acknowledged writes: %s", i, why);
            continue;
        }
        if (rc == WEIR_OK) continue;
        /* A failed call: a known status with a message that says what
         * happened. */
        had_error = 1;
        if (!allowed_error(rc))
            POINT_FAIL("op %d (kind %d) failed with %s: %s", i, op->kind, weir_status_name(rc),
                       weir_errmsg());
        const char *msg = weir_errmsg();
        if (!msg || strlen(msg) < 10)
            POINT_FAIL("op %d failed with %s and message \"%s\"", i, weir_status_name(rc), msg ? msg : "");
        if (rc == WEIR_NO_SPACE && !strstr(msg, "space"))
            POINT_FAIL("op %d: WEIR_NO_SPACE with a message that does not say so: %s", i, msg);
        if (is_write(op)) st->write_errors++;
        if (rc == WEIR_READ_ONLY) st->read_only++;
    }
    char fpath[PATH_MAX];
    int fop = fault_env_last_fault(fe, fpath, sizeof fpath);
    snprintf(g_fault_desc, sizeof g_fault_desc, "%s %s", fop >= 0 ? fault_op_name(fop) : "(none)", fpath);
    if (db && !fault_env_is_dead(fe)) {
        /* Reads keep working after any failure. */
        int srt, d = compare_store(db, &mem, &srt, why, sizeof why);
        if (d < 0) d = compare_store(db, &mem, &srt, why, sizeof why);
        if (d < 0)
            POINT_FAIL("final scan failed: %s: %s", weir_status_name(srt), weir_errmsg());
        if (d > 0) POINT_FAIL("final scan: live store differs from acknowledged writes: %s", why);
    }
    /* A failed fsync of the log is never retried into a success: no write
     * after it may be acknowledged (a full disk excepted: once it resumes,
     * writes go to a new log after everything acknowledged was flushed to
     * new tables, and the reopen below checks they all survived). */
    if (fop == FAULT_OP_SYNC && strstr(fpath, ".log") && s->rule.action == FAULT_FAIL &&
        s->rule.err != ENOSPC) {
        int failed_at = -1;
        for (int i = 0; i < NOPS; i++) {
            if (result[i] > 0 && failed_at < 0) failed_at = i;
            if (failed_at >= 0 && acked[i])
                POINT_FAIL("write op %d was acknowledged after the log's fsync failed (op %d)", i,
                           failed_at);
        }
    }
    if (db) weir_close(db);
    db = NULL;
    *ops_out = fault_env_ops(fe);
    st->injected += fault_env_injected(fe);
    fault_env_destroy(fe);
    fe = NULL;
    weir_options_destroy(o);
    o = NULL;
    (void)had_error;

    /* ---- after the fault: reopen on the real env ---- */
    weir_options *ro = fault_opts(NULL);
    rc = weir_open(g_dir, ro, &db);
    weir_options_destroy(ro);
    if (rc != WEIR_OK) POINT_FAIL("reopen failed: %s: %s", weir_status_name(rc), weir_errmsg());
    int present[NOPS];
    rc = read_markers(db, present);
    if (rc != WEIR_OK) POINT_FAIL("reading markers: %s: %s", weir_status_name(rc), weir_errmsg());
    int last_present = -1;
    for (int i = 0; i < NOPS; i++) {
        if (!is_write(&ops[i])) continue;
        if (present[i]) last_present = i;
        if (result[i] < 0 && present[i]) POINT_FAIL("op %d was never run but its marker is present", i);
        if (result[i] > 0) {
            if (present[i]) st->indoubt_applied++;
            else st->indoubt_absent++;
        }
        if (!acked[i] || present[i]) continue;
        if (!s->power_cut) POINT_FAIL("acknowledged op %d is missing after reopen", i);
        if (ops[i].fsync) POINT_FAIL("fsync-acknowledged op %d is missing after a power cut", i);
        st->flush_acked_lost++;
    }
    /* Whatever survived is a prefix of the acknowledged history. */
    for (int i = 0; i < last_present; i++)
        if (acked[i] && !present[i])
            POINT_FAIL("acknowledged op %d is missing while later op %d survived", i, last_present);
    model want;
    model_build(&want, present);
    int srt, d = compare_store(db, &want, &srt, why, sizeof why);
    if (d < 0) POINT_FAIL("scan after reopen failed: %s: %s", weir_status_name(srt), weir_errmsg());
    if (d > 0) POINT_FAIL("after reopen the store is not the ops whose markers it holds: %s", why);
    rc = weir_close(db);
    db = NULL;
    if (rc != WEIR_OK) POINT_FAIL("close after reopen: %s: %s", weir_status_name(rc), weir_errmsg());
    char out[1024];
    int code = n % env_u64("WEIR_FAULT_CHECK_EVERY", DEFAULT_CHECK_EVERY) == 0 ? run_check(g_dir, out, sizeof out) : 0;
    if (code != 0) POINT_FAIL("weir check exited %d:\n%s", code, out);

    if (ckpt_at >= 0) {
        weir_options *co = fault_opts(NULL);
        rc = weir_open(g_ckpt, co, &db);
        weir_options_destroy(co);
        if (rc != WEIR_OK)
            POINT_FAIL("checkpoint reported success but does not open: %s: %s", weir_status_name(rc),
                       weir_errmsg());
        int upto[NOPS];
        for (int i = 0; i < NOPS; i++) upto[i] = acked[i] && i < ckpt_at;
        model_build(&want, upto);
        d = compare_store(db, &want, &srt, why, sizeof why);
        weir_close(db);
        db = NULL;
        if (d != 0) POINT_FAIL("checkpoint differs from what was acknowledged before it: %s", why);
        code = n % env_u64("WEIR_FAULT_CHECK_EVERY", DEFAULT_CHECK_EVERY) == 0 ? run_check(g_ckpt, out, sizeof out) : 0;
        if (code != 0) POINT_FAIL("weir check of the checkpoint exited %d:\n%s", code, out);
        st->checkpoints_verified++;
    }
    st->points++;
    return 0;

fail:
    if (fe) {
        char fp[PATH_MAX];
        int fo = fault_env_last_fault(fe, fp, sizeof fp);
        snprintf(g_fault_desc, sizeof g_fault_desc, "%s %s", fo >= 0 ? fault_op_name(fo) : "(none)", fp);
    }
    if (db) weir_close(db);
    if (fe) fault_env_destroy(fe);
    if (o) weir_options_destroy(o);
    return -1;
}

static uint64_t stride(void) { return env_u64("WEIR_FAULT_STRIDE", DEFAULT_STRIDE); }

static void report(const char *name, const sweep_stats *st, uint64_t total_ops, double secs) {
    fprintf(stderr,
            "     %-18s %4" PRIu64 " points over %" PRIu64 " ops, %" PRIu64 " faults injected, %" PRIu64
            " write errors, %" PRIu64 " read errors, %" PRIu64 " read-only, in-doubt ops applied %" PRIu64
            " / absent %" PRIu64 ", flush-acked ops lost to power cuts %" PRIu64
            ", checkpoints verified %" PRIu64 " (%.1f s)\n",
            name, st->points, total_ops, st->injected, st->write_errors, st->read_errors, st->read_only,
            st->indoubt_applied, st->indoubt_absent, st->flush_acked_lost, st->checkpoints_verified,
            secs);
    const char *path = getenv("WEIR_FAULT_REPORT");
    if (path && *path) {
        FILE *f = fopen(path, "a");
        if (f) {
            fprintf(f, "sweep %s points %" PRIu64 " ops %" PRIu64 " injected %" PRIu64 "\n", name,
                    st->points, total_ops, st->injected);
            fclose(f);
        }
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Count the workload's operations, then fault each one in turn. */
static int sweep_all(const sweep *s) {
    sweep_stats st;
    memset(&st, 0, sizeof st);
    uint64_t total = 0;
    double t0 = now_s();
    if (run_point(s, 0, &st, &total) != 0) {
        fprintf(stderr, "sweep %s: the fault-free run failed: %s (seed %" PRIu64 ")\n", s->name, g_fail,
                g_seed);
        return -1;
    }
    memset(&st, 0, sizeof st);
    /* A few points past the end hit close and the reopen's own writes. */
    uint64_t step = stride();
    const char *first = getenv("WEIR_FAULT_FIRST");
    uint64_t n0 = first ? strtoull(first, NULL, 10) : 1;
    for (uint64_t n = n0 ? n0 : 1; n <= total + 4; n += step) {
        uint64_t ops_n = 0;
        if (run_point(s, n, &st, &ops_n) != 0) {
            fprintf(stderr,
                    "sweep %s: fault at operation %" PRIu64 " of %" PRIu64 " (%s): %s\n"
                    "  (replay: WEIR_TEST_SEED=%" PRIu64 " WEIR_FAULT_FIRST=%" PRIu64 ")\n",
                    s->name, n, total, g_fault_desc, g_fail, g_seed, n);
            return -1;
        }
    }
    report(s->name, &st, total, now_s() - t0);
    return 0;
}

static void setup(void) {
    g_seed = getenv("WEIR_TEST_SEED") ? test_seed_from_env() : 20261125;
    gen_workload(g_seed);
    /* The fault env models durability itself, so real fsyncs only cost
     * time: use a RAM file system when there is one. */
    const char *saved = getenv("TMPDIR");
    char keep[PATH_MAX] = "";
    if (saved) snprintf(keep, sizeof keep, "%s", saved);
    const char *ram = getenv("WEIR_FAULT_TMPDIR");
    if (!ram && access("/dev/shm", W_OK) == 0) ram = "/dev/shm";
    if (ram) setenv("TMPDIR", ram, 1);
    test_tmpdir(g_base, sizeof g_base, "fault");
    if (saved) setenv("TMPDIR", keep, 1);
    else unsetenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/db", g_base);
    snprintf(g_ckpt, sizeof g_ckpt, "%s/ckpt", g_base);
}

static void teardown(void) {
    reset_dirs();
    test_rmtree(g_base);
}

#define SWEEP_TEST(fn, ...)                          \
    TEST(fn) {                                       \
        static const sweep s = __VA_ARGS__;          \
        setup();                                     \
        int r = sweep_all(&s);                       \
        teardown();                                  \
        CHECK(r == 0);                               \
    }

SWEEP_TEST(sweep_eio, {"eio", {0, NULL, 0, FAULT_FAIL, EIO, 0}, 0, 0})
SWEEP_TEST(sweep_enospc, {"enospc", {0, NULL, 0, FAULT_FAIL, ENOSPC, 0}, 0, 0})
SWEEP_TEST(sweep_eintr, {"eintr", {0, NULL, 0, FAULT_FAIL, EINTR, 0}, 0, 0})
SWEEP_TEST(sweep_short_write, {"short-write", {FAULT_DATA_OPS, NULL, 0, FAULT_SHORT_WRITE, ENOSPC, 0}, 0, 0})
SWEEP_TEST(sweep_fsync, {"fsync-fail", {FAULT_BIT(FAULT_OP_SYNC), NULL, 0, FAULT_FAIL, EIO, 0}, 0, 0})
SWEEP_TEST(sweep_device_dies, {"device-dies", {FAULT_WRITE_OPS, NULL, 0, FAULT_FAIL, EIO, 1}, 0, 0})
SWEEP_TEST(sweep_process_crash, {"process-crash", {0, NULL, 0, FAULT_STOP, 0, 0}, 0, 0})
SWEEP_TEST(sweep_power_cut, {"power-cut", {0, NULL, 0, FAULT_STOP, 0, 0}, 1, 0})
SWEEP_TEST(sweep_power_cut_torn, {"power-cut-torn", {0, NULL, 0, FAULT_STOP, 0, 0}, 1, 1})

/* ---- disk full ---- */

static size_t fill_key(char *out, int i) { return (size_t)snprintf(out, 16, "f%06d", i); }

static size_t fill_value(char *out, int i) {
    int n = snprintf(out, 32, "fill-%06d-", i);
    for (int j = n; j < 1000; j++) out[j] = (char)('A' + (i + j) % 26);
    return 1000;
}

/* Every key below `acked` is readable (gets and a scan). */
static int check_fill(weir_db *db, int acked, char *why, size_t cap) {
    char k[16], v[1024], want[1024];
    for (int i = 0; i < acked; i++) {
        size_t vl, wl = fill_value(want, i);
        int rc = weir_get(db, NULL, k, fill_key(k, i), v, sizeof v, &vl);
        if (rc != WEIR_OK || vl != wl || memcmp(v, want, wl) != 0) {
            snprintf(why, cap, "key %d: %s %s", i, weir_status_name(rc), rc ? weir_errmsg() : "wrong value");
            return -1;
        }
    }
    weir_iter *it;
    int rc = weir_iter_create(db, NULL, &it);
    if (rc != WEIR_OK) {
        snprintf(why, cap, "iterator: %s", weir_errmsg());
        return -1;
    }
    int n = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
    rc = weir_iter_status(it);
    weir_iter_destroy(it);
    if (rc != WEIR_OK || n != acked) {
        snprintf(why, cap, "scan saw %d keys, want %d (%s)", n, acked, weir_status_name(rc));
        return -1;
    }
    return 0;
}

/* Write until the disk is full; check the error, that reads go on, that
 * writes resume once space is back, and that nothing was lost. `on_full`
 * frees space. Returns 0 or -1 with why filled in. */
static int disk_full_scenario(weir_db *db, void (*on_full)(void *), void *arg, int compact,
                              int *acked_out, char *why, size_t cap) {
    weir_writeopts wo = {.sync = WEIR_SYNC_FSYNC};
    char k[16], v[1024];
    int acked = 0, rc = WEIR_OK;
    while (acked < 20000) {
        rc = weir_put(db, &wo, k, fill_key(k, acked), v, fill_value(v, acked));
        if (rc != WEIR_OK) break;
        acked++;
    }
    if (rc != WEIR_NO_SPACE) {
        snprintf(why, cap, "filling the disk ended with %s after %d writes: %s", weir_status_name(rc), acked,
                 weir_errmsg());
        return -1;
    }
    if (!strstr(weir_errmsg(), "space")) {
        snprintf(why, cap, "WEIR_NO_SPACE without saying so: %s", weir_errmsg());
        return -1;
    }
    /* Still full: a write fails the same clear way, and nothing of it is
     * kept; unless background work (a flush deleting its log) freed space
     * meanwhile, and then it is simply acknowledged. Reads work. */
    rc = weir_put(db, &wo, k, fill_key(k, acked), v, fill_value(v, acked));
    if (rc == WEIR_OK) {
        acked++;
    } else if (rc != WEIR_NO_SPACE || !strstr(weir_errmsg(), "space")) {
        snprintf(why, cap, "second write on a full disk: %s: %s", weir_status_name(rc), weir_errmsg());
        return -1;
    }
    if (check_fill(db, acked, why, cap) != 0) return -1;
    on_full(arg);
    /* Writes come back: a write that ran out of space was taken back from
     * the log, so the next one simply tries again (a flush that ran out is
     * retried every 200 ms; a log whose fsync failed waits for try_resume). */
    for (int tries = 0;; tries++) {
        rc = weir_put(db, &wo, k, fill_key(k, acked), v, fill_value(v, acked));
        if (rc == WEIR_OK) break;
        if (rc != WEIR_NO_SPACE || tries > 40) {
            snprintf(why, cap, "writes did not resume after space was freed: %s: %s", weir_status_name(rc),
                     weir_errmsg());
            return -1;
        }
        usleep(50 * 1000);
    }
    acked++;
    for (int i = 0; i < 50; i++, acked++) {
        rc = weir_put(db, &wo, k, fill_key(k, acked), v, fill_value(v, acked));
        if (rc != WEIR_OK) {
            snprintf(why, cap, "write %d after resuming: %s: %s", acked, weir_status_name(rc), weir_errmsg());
            return -1;
        }
    }
    rc = weir_flush(db);
    if (rc == WEIR_OK && compact) rc = weir_compact_range(db, NULL, 0, NULL, 0);
    if (rc != WEIR_OK) {
        snprintf(why, cap, "flush/compact after resuming: %s: %s", weir_status_name(rc), weir_errmsg());
        return -1;
    }
    *acked_out = acked;
    return check_fill(db, acked, why, cap);
}

static void lift_quota(void *arg) { fault_env_set_quota(arg, UINT64_MAX); }

static int reopen_and_check_fill(const char *dir, int acked, char *why, size_t cap) {
    weir_options *o = fault_opts(NULL);
    weir_db *db;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    if (rc != WEIR_OK) {
        snprintf(why, cap, "reopen: %s: %s", weir_status_name(rc), weir_errmsg());
        return -1;
    }
    int r = check_fill(db, acked, why, cap);
    weir_close(db);
    if (r != 0) return -1;
    char out[1024];
    int code = run_check(dir, out, sizeof out);
    if (code != 0) {
        snprintf(why, cap, "weir check exited %d: %s", code, out);
        return -1;
    }
    return 0;
}

/* ---- a failed fsync stays failed ---- */

/* After the log's fsync fails, nothing is acknowledged again and the log
 * is never synced again (a second fsync could "succeed" over pages the
 * kernel already dropped); reads go on; a reopen holds every write
 * acknowledged before the failure. */
TEST(failed_log_fsync_is_never_retried) {
    setup();
    reset_dirs();
    fault_env *fe = fault_env_create(NULL);
    weir_options *o = fault_opts(fault_env_env(fe));
    weir_db *db;
    CHECK_OK(weir_open(g_dir, o, &db));
    weir_writeopts wo = {.sync = WEIR_SYNC_FSYNC};
    char k[16], v[1024];
    for (int i = 0; i < 10; i++) CHECK_OK(weir_put(db, &wo, k, fill_key(k, i), v, fill_value(v, i)));
    fault_rule r = {FAULT_BIT(FAULT_OP_SYNC), ".log", 1, FAULT_FAIL, EIO, 0};
    fault_env_set_rule(fe, &r);
    uint64_t syncs = fault_env_ops_of(fe, FAULT_OP_SYNC);
    CHECK_STATUS(weir_put(db, &wo, k, fill_key(k, 10), v, fill_value(v, 10)), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), "fsync") != NULL);
    uint64_t after_failure = fault_env_ops_of(fe, FAULT_OP_SYNC);
    CHECK_EQ_INT(after_failure, syncs + 1);
    for (int i = 11; i < 20; i++) {
        CHECK_STATUS(weir_put(db, &wo, k, fill_key(k, i), v, fill_value(v, i)), WEIR_READ_ONLY);
        CHECK(strstr(weir_errmsg(), "fsync") != NULL); /* the cause travels with it */
    }
    CHECK_STATUS(weir_flush(db), WEIR_READ_ONLY);
    char why[256];
    CHECK(check_fill(db, 10, why, sizeof why) == 0);
    CHECK_EQ_INT(fault_env_ops_of(fe, FAULT_OP_SYNC), after_failure);
    /* Close tries to make the log durable and is refused, not fooled. */
    CHECK_STATUS(weir_close(db), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), "fsync") != NULL);
    fault_env_destroy(fe);
    weir_options_destroy(o);
    /* The failed write may or may not be there (its record reached the
     * OS); everything acknowledged is. */
    o = fault_opts(NULL);
    CHECK_OK(weir_open(g_dir, o, &db));
    weir_options_destroy(o);
    size_t vl;
    int rc = weir_get(db, NULL, k, fill_key(k, 10), v, sizeof v, &vl);
    CHECK(rc == WEIR_OK || rc == WEIR_NOT_FOUND);
    if (rc == WEIR_OK) CHECK_OK(weir_delete(db, NULL, k, fill_key(k, 10)));
    CHECK(check_fill(db, 10, why, sizeof why) == 0);
    CHECK_OK(weir_close(db));
    teardown();
}

/* The disk fills at many different moments: in the log, in a flush, in a
 * compaction, in the manifest. */
TEST(disk_full_quota_resumes) {
    setup();
    int failures = 0, runs = 0;
    uint64_t injected = 0;
    for (uint64_t room = 40000; room < 700000 && !failures; room += 33333) {
        reset_dirs();
        fault_env *fe = fault_env_create(NULL);
        weir_options *o = fault_opts(fault_env_env(fe));
        weir_options_set_level0_triggers(o, 2, 8, 12);
        weir_options_set_background_threads(o, 2);
        weir_db *db;
        int rc = weir_open(g_dir, o, &db);
        char why[1024] = "";
        int acked = 0;
        if (rc != WEIR_OK) {
            snprintf(why, sizeof why, "open: %s", weir_errmsg());
            failures++;
        } else {
            fault_env_set_quota(fe, fault_env_bytes_written(fe) + room);
            if (disk_full_scenario(db, lift_quota, fe, 1, &acked, why, sizeof why) != 0) failures++;
            rc = weir_close(db);
            if (!failures && rc != WEIR_OK) {
                snprintf(why, sizeof why, "close: %s", weir_errmsg());
                failures++;
            }
        }
        injected += fault_env_injected(fe);
        fault_env_destroy(fe);
        weir_options_destroy(o);
        if (!failures && reopen_and_check_fill(g_dir, acked, why, sizeof why) != 0) failures++;
        if (failures) fprintf(stderr, "disk full with %" PRIu64 " bytes of room: %s\n", room, why);
        runs++;
    }
    fprintf(stderr, "     %d disk-full runs, %" PRIu64 " ENOSPC faults injected\n", runs, injected);
    teardown();
    CHECK_EQ_INT(failures, 0);
}

static char g_ballast[PATH_MAX + 32];
static void remove_ballast(void *arg) {
    (void)arg;
    unlink(g_ballast);
}

/* The same on a real, tiny file system, when this process may mount one. */
TEST(disk_full_tmpfs) {
    setup();
    char mnt[PATH_MAX + 8], cmd[PATH_MAX + 64];
    snprintf(mnt, sizeof mnt, "%s/mnt", g_base);
    mkdir(mnt, 0755);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=3m tmpfs '%s' 2>/dev/null", mnt);
    if (geteuid() != 0 || system(cmd) != 0) {
        fprintf(stderr, "     skipped: cannot mount a tmpfs here (needs root)\n");
        teardown();
        return;
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/db", mnt);
    snprintf(g_ballast, sizeof g_ballast, "%s/ballast", mnt);
    /* Space to give back later. */
    int fd = open(g_ballast, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    for (int i = 0; fd >= 0 && i < 256; i++)
        if (write(fd, junk, sizeof junk) != (ssize_t)sizeof junk) break;
    if (fd >= 0) close(fd);
    weir_options *o = fault_opts(NULL);
    weir_options_set_level0_triggers(o, 2, 8, 12);
    weir_db *db;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    char why[1024] = "";
    int acked = 0, failed = 0;
    if (rc != WEIR_OK) {
        snprintf(why, sizeof why, "open: %s", weir_errmsg());
        failed = 1;
    } else {
        failed = disk_full_scenario(db, remove_ballast, NULL, 0, &acked, why, sizeof why) != 0;
        rc = weir_close(db);
        if (!failed && rc != WEIR_OK) {
            snprintf(why, sizeof why, "close: %s", weir_errmsg());
            failed = 1;
        }
    }
    if (!failed) failed = reopen_and_check_fill(dir, acked, why, sizeof why) != 0;
    if (failed) fprintf(stderr, "tmpfs disk full: %s\n", why);
    else fprintf(stderr, "     tmpfs of 3 MiB: %d writes acknowledged, none lost\n", acked);
    snprintf(cmd, sizeof cmd, "umount '%s'", mnt);
    if (system(cmd) != 0) fprintf(stderr, "umount %s failed\n", mnt);
    teardown();
    CHECK(!failed);
}

/* ---- EINTR from real signals ---- */

static atomic_ulong g_signals;
static void on_alarm(int sig) {
    (void)sig;
    atomic_fetch_add(&g_signals, 1);
}

/* A storm of signals without SA_RESTART makes blocking calls return EINTR
 * (writes, fsyncs, sleeps, lock waits); the env must retry them all. */
TEST(eintr_signal_storm) {
    setup();
    /* A real disk: fsync then blocks long enough to be interrupted. */
    char dir[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "eintr");
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, &old);
    struct itimerval tv = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &tv, NULL);
    weir_options *o = fault_opts(NULL);
    weir_options_set_level0_triggers(o, 2, 8, 12);
    weir_options_set_background_threads(o, 2);
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    int bad = rc != WEIR_OK;
    char k[16], v[1024];
    weir_writeopts wo = {.sync = WEIR_SYNC_FSYNC};
    int n = 0;
    double t0 = now_s();
    while (!bad && now_s() - t0 < 1.0) {
        wo.sync = n % 4 == 0 ? WEIR_SYNC_FSYNC : WEIR_SYNC_FLUSH;
        rc = weir_put(db, &wo, k, fill_key(k, n), v, fill_value(v, n));
        if (rc != WEIR_OK) bad = 1;
        n++;
        if (n % 500 == 0 && !bad) {
            rc = weir_flush(db);
            bad = rc != WEIR_OK;
        }
    }
    if (!bad) rc = weir_compact_range(db, NULL, 0, NULL, 0);
    if (rc != WEIR_OK) bad = 1;
    char why[256] = "";
    if (!bad && check_fill(db, n, why, sizeof why) != 0) bad = 1;
    if (db) weir_close(db);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    if (bad) fprintf(stderr, "under a signal storm: %s: %s %s\n", weir_status_name(rc), weir_errmsg(), why);
    else fprintf(stderr, "     %d writes, %lu signals delivered, no EINTR escaped\n", n,
                 (unsigned long)atomic_load(&g_signals));
    if (!bad) bad = reopen_and_check_fill(dir, n, why, sizeof why) != 0;
    test_rmtree(dir);
    teardown();
    CHECK(!bad);
}

static const test_case tests[] = {
    TEST_ENTRY(sweep_eio),
    TEST_ENTRY(sweep_enospc),
    TEST_ENTRY(sweep_eintr),
    TEST_ENTRY(sweep_short_write),
    TEST_ENTRY(sweep_fsync),
    TEST_ENTRY(sweep_device_dies),
    TEST_ENTRY(sweep_process_crash),
    TEST_ENTRY(sweep_power_cut),
    TEST_ENTRY(sweep_power_cut_torn),
    TEST_ENTRY(failed_log_fsync_is_never_retried),
    TEST_ENTRY(disk_full_quota_resumes),
    TEST_ENTRY(disk_full_tmpfs),
    TEST_ENTRY(eintr_signal_storm),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
