/*
 * test_crash.c -- crash recovery under SIGKILL.
 *
 * Each cycle forks a child that opens the store (sync mode WEIR_SYNC_FSYNC;
 * some writes override it with WEIR_SYNC_FLUSH, which also survives a
 * process crash) and runs a deterministic sequence of operations, writing
 * each operation's id to a pipe once weir acknowledged it. The parent kills
 * the child with SIGKILL at a random moment -- during open/recovery, right
 * after open, in the middle of writes and flushes, or during
 * weir_compact_range -- then reopens the same directory and checks the
 * whole store against an oracle:
 *
 *   - operation ids are generated from (seed, id) alone, so the parent
 *     knows exactly what every operation wrote;
 *   - every acknowledged operation must be visible (unless superseded by a
 *     later acknowledged one), and nothing else may be;
 *   - the one operation that may have been running when the child died
 *     (the first unacknowledged one) is either fully applied or not at all.
 *     Batches write a fresh set of keys "b<id>-<i>" (and may delete an
 *     older batch's keys), so a half-applied batch shows up as a batch with
 *     some but not all of its keys.
 *
 * The same directory is used for every cycle, so each recovery starts from
 * the previous one's result.
 *
 * Environment: WEIR_CRASH_CYCLES (default 50), WEIR_TEST_SEED (replay).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NSHARED 400
#define MAX_BATCH 10
#define MAX_VALUE (24 * 1024)

/* Pipe records: an acknowledged op id, or one of these markers. */
#define MARK_READY (UINT64_MAX - 1)
#define MARK_COMPACT (UINT64_MAX - 2)
#define MARK_ERROR (UINT64_MAX - 3)

enum op_kind { OP_BATCH, OP_PUT, OP_DEL, OP_FLUSH };

typedef struct op_desc {
    int kind;
    int n;             /* batch: fresh keys b<id>-0 .. b<id>-(n-1) */
    int64_t del_batch; /* batch: an older batch whose keys it deletes, or -1 */
    int shared;        /* put/del: index of the shared key */
    int fsync;         /* per-write sync: FSYNC (1) or FLUSH (0) */
    uint32_t pad;      /* value padding */
} op_desc;

static uint64_t g_seed;

static void op_rng(uint64_t id, test_rng *r) {
    test_rng_seed(r, g_seed ^ (id * 0x9E3779B97F4A7C15ull) ^ 0x5bd1e995u);
}

/* The op's own fields, without the reference to an older batch. */
static void gen_op_base(uint64_t id, op_desc *o, test_rng *r) {
    op_rng(id, r);
    uint64_t x = test_rng_uniform(r, 100);
    o->kind = x < 45 ? OP_BATCH : x < 80 ? OP_PUT : x < 99 ? OP_DEL : OP_FLUSH;
    o->n = 1 + (int)test_rng_uniform(r, MAX_BATCH);
    o->shared = (int)test_rng_uniform(r, NSHARED);
    o->fsync = test_rng_uniform(r, 2) == 0;
    o->pad = test_rng_uniform(r, 33) == 0 ? 5000 + (uint32_t)test_rng_uniform(r, 15000)
                                          : (uint32_t)test_rng_uniform(r, 700);
    o->del_batch = -1;
}

static void gen_op(uint64_t id, op_desc *o) {
    test_rng r;
    gen_op_base(id, o, &r);
    if (o->kind == OP_BATCH && test_rng_uniform(&r, 10) < 3) {
        uint64_t back = 1 + test_rng_uniform(&r, 300);
        if (back <= id) {
            op_desc old;
            test_rng r2;
            gen_op_base(id - back, &old, &r2);
            if (old.kind == OP_BATCH) o->del_batch = (int64_t)(id - back);
        }
    }
}

static int batch_size_of(uint64_t id) {
    op_desc o;
    test_rng r;
    gen_op_base(id, &o, &r);
    return o.kind == OP_BATCH ? o.n : 0;
}

static size_t batch_key(char *out, uint64_t id, int i) {
    return (size_t)snprintf(out, 32, "b%010" PRIu64 "-%02d", id, i);
}

static size_t shared_key(char *out, int k) { return (size_t)snprintf(out, 32, "s%04d", k); }

/* Values name the op that wrote them and (for batches) position and size. */
static size_t batch_value(char *out, uint64_t id, int i, int n, uint32_t pad) {
    int h = snprintf(out, 64, "B%" PRIu64 ":%d:%d:", id, i, n);
    memset(out + h, 'a' + (int)((id + (uint64_t)i) % 26), pad);
    return (size_t)h + pad;
}

static size_t shared_value(char *out, uint64_t id, int k, uint32_t pad) {
    int h = snprintf(out, 64, "S%" PRIu64 ":%d:", id, k);
    memset(out + h, 'A' + (int)(id % 26), pad);
    return (size_t)h + pad;
}

/* ---- the child ---------------------------------------------------------------- */

static void send_rec(int fd, uint64_t v) {
    if (write(fd, &v, sizeof v) != (ssize_t)sizeof v) _exit(5);
}

static weir_options *crash_opts(void) {
    weir_options *o = weir_options_create();
    if (!o) return NULL;
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_options_set_target_file_size(o, 64 * 1024);
    weir_options_set_max_bytes_for_level_base(o, 256 * 1024);
    weir_options_set_level0_triggers(o, 2, 8, 16);
    weir_options_set_block_size(o, 1024);
    return o;
}

static int run_op(weir_db *db, uint64_t id, const op_desc *o, char *vbuf) {
    weir_writeopts wo;
    memset(&wo, 0, sizeof wo);
    wo.sync = o->fsync ? WEIR_SYNC_FSYNC : WEIR_SYNC_FLUSH;
    char k[32];
    if (o->kind == OP_FLUSH) return weir_flush(db);
    if (o->kind == OP_PUT) {
        size_t kl = shared_key(k, o->shared);
        size_t vl = shared_value(vbuf, id, o->shared, o->pad);
        return weir_put(db, &wo, k, kl, vbuf, vl);
    }
    if (o->kind == OP_DEL) {
        size_t kl = shared_key(k, o->shared);
        return weir_delete(db, &wo, k, kl);
    }
    weir_batch *b = weir_batch_create();
    if (!b) return WEIR_NO_MEMORY;
    int rc = WEIR_OK;
    /* Deletes first in half the batches, last in the others. */
    int del_first = (id & 1) != 0;
    if (o->del_batch >= 0 && del_first) {
        int dn = batch_size_of((uint64_t)o->del_batch);
        for (int i = 0; i < dn && rc == WEIR_OK; i++) {
            size_t kl = batch_key(k, (uint64_t)o->del_batch, i);
            rc = weir_batch_delete(b, k, kl);
        }
    }
    for (int i = 0; i < o->n && rc == WEIR_OK; i++) {
        size_t kl = batch_key(k, id, i);
        size_t vl = batch_value(vbuf, id, i, o->n, i == 0 ? o->pad : o->pad / 4);
        rc = weir_batch_put(b, k, kl, vbuf, vl);
    }
    if (o->del_batch >= 0 && !del_first) {
        int dn = batch_size_of((uint64_t)o->del_batch);
        for (int i = 0; i < dn && rc == WEIR_OK; i++) {
            size_t kl = batch_key(k, (uint64_t)o->del_batch, i);
            rc = weir_batch_delete(b, k, kl);
        }
    }
    if (rc == WEIR_OK) rc = weir_write(db, &wo, b);
    weir_batch_destroy(b);
    return rc;
}

static void child_main(const char *dir, uint64_t first_op, int wfd, int compact_mode) {
    weir_options *o = crash_opts();
    if (!o) _exit(3);
    weir_options_set_sync_mode(o, WEIR_SYNC_FSYNC);
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    if (rc != WEIR_OK) {
        fprintf(stderr, "child: weir_open: %s: %s\n", weir_status_name(rc), weir_errmsg());
        send_rec(wfd, MARK_ERROR);
        _exit(3);
    }
    send_rec(wfd, MARK_READY);
    char *vbuf = malloc(MAX_VALUE + 64);
    if (!vbuf) _exit(3);
    for (uint64_t id = first_op; id < first_op + 10000000; id++) {
        if (compact_mode && (id - first_op) % 150 == 100) {
            send_rec(wfd, MARK_COMPACT);
            rc = weir_compact_range(db, NULL, 0, NULL, 0);
            if (rc != WEIR_OK) {
                fprintf(stderr, "child: weir_compact_range: %s: %s\n", weir_status_name(rc),
                        weir_errmsg());
                send_rec(wfd, MARK_ERROR);
                _exit(4);
            }
        }
        op_desc op;
        gen_op(id, &op);
        rc = run_op(db, id, &op, vbuf);
        if (rc != WEIR_OK) {
            fprintf(stderr, "child: op %" PRIu64 " (kind %d): %s: %s\n", id, op.kind,
                    weir_status_name(rc), weir_errmsg());
            send_rec(wfd, MARK_ERROR);
            _exit(4);
        }
        send_rec(wfd, id);
    }
    _exit(0);
}

/* ---- the oracle ------------------------------------------------------------------ */

typedef struct model {
    int64_t shared[NSHARED]; /* id of the put that wrote it, -1 absent */
    uint8_t *batch;          /* by op id: 1 if that batch's keys are present */
    size_t cap;
} model;

static void model_reserve(model *m, uint64_t id) {
    if (id < m->cap) return;
    size_t ncap = m->cap ? m->cap : 1024;
    while (ncap <= id) ncap *= 2;
    m->batch = realloc(m->batch, ncap);
    if (!m->batch) abort();
    memset(m->batch + m->cap, 0, ncap - m->cap);
    m->cap = ncap;
}

static void model_copy(model *dst, const model *src) {
    memcpy(dst->shared, src->shared, sizeof dst->shared);
    model_reserve(dst, src->cap ? src->cap - 1 : 0);
    if (src->cap) memcpy(dst->batch, src->batch, src->cap);
    if (dst->cap > src->cap) memset(dst->batch + src->cap, 0, dst->cap - src->cap);
}

static void model_apply(model *m, uint64_t id) {
    op_desc o;
    gen_op(id, &o);
    model_reserve(m, id);
    switch (o.kind) {
    case OP_BATCH:
        if (o.del_batch >= 0) m->batch[o.del_batch] = 0;
        m->batch[id] = 1;
        break;
    case OP_PUT:
        m->shared[o.shared] = (int64_t)id;
        break;
    case OP_DEL:
        m->shared[o.shared] = -1;
        break;
    default:
        break;
    }
}

/* Parse "b<10 digits>-<2 digits>"; returns 1 on success. */
static int parse_batch_key(const char *k, size_t kl, uint64_t *id, int *i) {
    if (kl != 14 || k[0] != 'b' || k[11] != '-') return 0;
    uint64_t v = 0;
    for (int j = 1; j <= 10; j++) {
        if (k[j] < '0' || k[j] > '9') return 0;
        v = v * 10 + (uint64_t)(k[j] - '0');
    }
    if (k[12] < '0' || k[12] > '9' || k[13] < '0' || k[13] > '9') return 0;
    *id = v;
    *i = (k[12] - '0') * 10 + (k[13] - '0');
    return 1;
}

static int parse_shared_key(const char *k, size_t kl, int *s) {
    if (kl != 5 || k[0] != 's') return 0;
    int v = 0;
    for (int j = 1; j < 5; j++) {
        if (k[j] < '0' || k[j] > '9') return 0;
        v = v * 10 + (k[j] - '0');
    }
    if (v >= NSHARED) return 0;
    *s = v;
    return 1;
}

typedef struct verifier {
    int verbose;
    long mismatches;
    char *vbuf;
} verifier;

static void vreport(verifier *v, const char *fmt, const char *key, size_t kl, const char *detail) {
    v->mismatches++;
    if (!v->verbose || v->mismatches > 12) return;
    fprintf(stderr, "    %s: key \"%.*s\"%s%s\n", fmt, (int)kl, key, detail ? ": " : "",
            detail ? detail : "");
}

/* Compare the whole store with model m; returns the number of mismatches.
 * `recent_from` .. `upto`: ops whose keys also get point lookups. */
static long verify_store(weir_db *db, const model *m, uint64_t upto, uint64_t recent_from,
                         int verbose, char *vbuf) {
    verifier v = {verbose, 0, vbuf};
    uint8_t *count = calloc(m->cap ? m->cap : 1, 1);
    uint8_t seen_shared[NSHARED];
    memset(seen_shared, 0, sizeof seen_shared);
    if (!count) abort();
    weir_iter *it = NULL;
    int rc = weir_iter_create(db, NULL, &it);
    if (rc != WEIR_OK) {
        fprintf(stderr, "    weir_iter_create: %s: %s\n", weir_status_name(rc), weir_errmsg());
        free(count);
        return 1000000;
    }
    char detail[160];
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
        size_t kl = 0, vl = 0;
        const char *k = weir_iter_key(it, &kl);
        const char *val = weir_iter_value(it, &vl);
        uint64_t id;
        int i, s;
        if (parse_shared_key(k, kl, &s)) {
            seen_shared[s] = 1;
            if (m->shared[s] < 0) {
                snprintf(detail, sizeof detail, "value from op %.*s", (int)(vl < 24 ? vl : 24), val);
                vreport(&v, "present but should be deleted/absent", k, kl, detail);
                continue;
            }
            op_desc o;
            gen_op((uint64_t)m->shared[s], &o);
            size_t wl = shared_value(vbuf, (uint64_t)m->shared[s], s, o.pad);
            if (wl != vl || memcmp(vbuf, val, vl) != 0) {
                snprintf(detail, sizeof detail, "want value of op %" PRId64 ", got \"%.*s...\" (%zu bytes)",
                         m->shared[s], (int)(vl < 24 ? vl : 24), val, vl);
                vreport(&v, "wrong value", k, kl, detail);
            }
        } else if (parse_batch_key(k, kl, &id, &i)) {
            int n = batch_size_of(id);
            if (id >= upto || id >= m->cap || n == 0 || i >= n) {
                vreport(&v, "key never written by an applied op", k, kl, NULL);
                continue;
            }
            count[id]++;
            if (!m->batch[id]) {
                vreport(&v, "batch key present but its batch is absent/deleted", k, kl, NULL);
                continue;
            }
            op_desc o;
            gen_op(id, &o);
            size_t wl = batch_value(vbuf, id, i, n, i == 0 ? o.pad : o.pad / 4);
            if (wl != vl || memcmp(vbuf, val, vl) != 0) {
                snprintf(detail, sizeof detail, "got \"%.*s...\" (%zu bytes)",
                         (int)(vl < 24 ? vl : 24), val, vl);
                vreport(&v, "wrong batch value", k, kl, detail);
            }
        } else {
            vreport(&v, "unknown key", k, kl, NULL);
        }
    }
    rc = weir_iter_status(it);
    if (rc != WEIR_OK) {
        v.mismatches++;
        fprintf(stderr, "    iterator stopped: %s: %s\n", weir_status_name(rc), weir_errmsg());
    }
    weir_iter_destroy(it);
    char k[32];
    for (int s = 0; s < NSHARED; s++) {
        if (m->shared[s] >= 0 && !seen_shared[s]) {
            size_t kl = shared_key(k, s);
            snprintf(detail, sizeof detail, "written by op %" PRId64, m->shared[s]);
            vreport(&v, "missing", k, kl, detail);
        }
    }
    for (uint64_t id = 0; id < upto && id < m->cap; id++) {
        if (!m->batch[id] && count[id] == 0) continue;
        int n = batch_size_of(id);
        if (m->batch[id] && count[id] != n) {
            size_t kl = batch_key(k, id, 0);
            snprintf(detail, sizeof detail, "batch %" PRIu64 " has %d of its %d keys%s", id,
                     count[id], n, count[id] ? " (HALF-APPLIED)" : "");
            vreport(&v, "batch incomplete", k, kl, detail);
        } else if (!m->batch[id] && count[id] != 0 && count[id] != n) {
            size_t kl = batch_key(k, id, 0);
            snprintf(detail, sizeof detail, "deleted/absent batch %" PRIu64 " has %d of %d keys (HALF-APPLIED)",
                     id, count[id], n);
            vreport(&v, "batch partially present", k, kl, detail);
        }
    }
    free(count);
    /* Point lookups of every shared key and the recent batches' keys. */
    for (int s = 0; s < NSHARED; s++) {
        size_t kl = shared_key(k, s);
        void *val = NULL;
        size_t vl = 0;
        rc = weir_get_alloc(db, NULL, k, kl, &val, &vl);
        if (m->shared[s] < 0) {
            if (rc != WEIR_NOT_FOUND) vreport(&v, "get: present but should be absent", k, kl, weir_status_name(rc));
        } else {
            op_desc o;
            gen_op((uint64_t)m->shared[s], &o);
            size_t wl = shared_value(vbuf, (uint64_t)m->shared[s], s, o.pad);
            if (rc != WEIR_OK || vl != wl || memcmp(val, vbuf, wl) != 0)
                vreport(&v, "get: wrong or missing", k, kl, weir_status_name(rc));
        }
        if (rc == WEIR_OK) weir_free(val);
    }
    for (uint64_t id = recent_from; id < upto && id < m->cap; id++) {
        int n = batch_size_of(id);
        for (int i = 0; i < n; i++) {
            size_t kl = batch_key(k, id, i);
            void *val = NULL;
            size_t vl = 0;
            rc = weir_get_alloc(db, NULL, k, kl, &val, &vl);
            int want = m->batch[id];
            if ((want && rc != WEIR_OK) || (!want && rc != WEIR_NOT_FOUND))
                vreport(&v, want ? "get: batch key missing" : "get: batch key should be absent", k,
                        kl, weir_status_name(rc));
            if (rc == WEIR_OK) weir_free(val);
        }
    }
    return v.mismatches;
}

/* ---- the parent ------------------------------------------------------------------ */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct acks {
    int fd;
    unsigned char part[8];
    size_t partlen;
    int64_t last; /* last acknowledged op id, -1 none */
    uint64_t expect_next;
    int ready, compacting, error, eof, out_of_order;
} acks;

/* Read whatever is available within timeout_ms (<0: until EOF). */
static void acks_pump(acks *a, double timeout_ms) {
    double end = now_ms() + timeout_ms;
    while (!a->eof) {
        int wait = -1;
        if (timeout_ms >= 0) {
            double left = end - now_ms();
            if (left <= 0) return;
            wait = (int)left + 1;
        }
        struct pollfd p = {a->fd, POLLIN, 0};
        int n = poll(&p, 1, wait);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        unsigned char buf[4096];
        ssize_t got = read(a->fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            a->eof = 1;
            return;
        }
        for (ssize_t i = 0; i < got; i++) {
            a->part[a->partlen++] = buf[i];
            if (a->partlen < 8) continue;
            uint64_t v;
            memcpy(&v, a->part, 8);
            a->partlen = 0;
            if (v == MARK_READY) {
                a->ready = 1;
            } else if (v == MARK_COMPACT) {
                a->compacting = 1;
            } else if (v == MARK_ERROR) {
                a->error = 1;
            } else {
                if (v != a->expect_next) a->out_of_order = 1;
                a->expect_next = v + 1;
                a->last = (int64_t)v;
            }
        }
        if (timeout_ms >= 0 && (a->ready || a->compacting)) {
            /* callers waiting for a marker re-check it */
        }
    }
}

/* Wait (up to 60 s) until flag becomes true or the child dies. */
static int acks_wait_flag(acks *a, int *flag) {
    double end = now_ms() + 60000;
    while (!*flag && !a->eof && !a->error && now_ms() < end) acks_pump(a, 20);
    return *flag;
}

TEST(kill_and_recover) {
    g_seed = test_seed_from_env();
    printf("seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64 ")\n", g_seed, g_seed);
    int cycles = 50;
    const char *env = getenv("WEIR_CRASH_CYCLES");
    if (env && *env) cycles = atoi(env);
    test_rng r;
    test_rng_seed(&r, g_seed ^ 0xc0ffee);
    char dir[512];
    test_tmpdir(dir, sizeof dir, "crash");
    model cur, a, b;
    memset(&cur, 0, sizeof cur);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    for (int s = 0; s < NSHARED; s++) cur.shared[s] = -1;
    char *vbuf = malloc(MAX_VALUE + 64);
    CHECK(vbuf != NULL);
    uint64_t next_op = 0, total_acked = 0, in_doubt_applied = 0, in_doubt_lost = 0;
    int kinds[4] = {0, 0, 0, 0};
    int failed = 0;
    static const char *kind_names[] = {"0-5 ms after start (often in open/recovery)",
                                       "0-3 ms after open", "5-200 ms into writes",
                                       "0-40 ms into compact_range"};
    for (int c = 0; c < cycles && !failed; c++) {
        /* How this cycle ends. Cycle 1 always kills during compaction. */
        int kind;
        uint64_t x = test_rng_uniform(&r, 100);
        if (c == 1 || x < 15)
            kind = 3;
        else if (x < 25)
            kind = 0;
        else if (x < 35)
            kind = 1;
        else
            kind = 2;
        double delay = kind == 0 ? (double)test_rng_uniform(&r, 6)
                       : kind == 1 ? (double)test_rng_uniform(&r, 4)
                       : kind == 2 ? 5 + (double)test_rng_uniform(&r, 196)
                                   : (double)test_rng_uniform(&r, 40);
        int pfd[2];
        CHECK(pipe(pfd) == 0);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_main(dir, next_op, pfd[1], kind == 3);
        }
        close(pfd[1]);
        acks ak;
        memset(&ak, 0, sizeof ak);
        ak.fd = pfd[0];
        ak.last = -1;
        ak.expect_next = next_op;
        int waited_ok = 1;
        if (kind == 1 || kind == 2) waited_ok = acks_wait_flag(&ak, &ak.ready);
        if (kind == 3) waited_ok = acks_wait_flag(&ak, &ak.compacting);
        if (waited_ok) acks_pump(&ak, delay);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        acks_pump(&ak, -1); /* drain to EOF */
        close(pfd[0]);
        kinds[kind]++;
        if (ak.error || !waited_ok || !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
            fprintf(stderr,
                    "cycle %d: child failed on its own (error marker %d, waited %d, status 0x%x) "
                    "after acking up to %" PRId64 "; seed=%" PRIu64 "\n",
                    c, ak.error, waited_ok, st, ak.last, g_seed);
            failed = 1;
            break;
        }
        if (ak.out_of_order) {
            fprintf(stderr, "cycle %d: acks out of order (test bug)\n", c);
            failed = 1;
            break;
        }
        uint64_t acked = ak.last >= 0 ? (uint64_t)ak.last + 1 - next_op : 0;
        /* a = state with every acked op; b = a plus the one in doubt. */
        model_copy(&a, &cur);
        for (uint64_t id = next_op; id < next_op + acked; id++) model_apply(&a, id);
        uint64_t doubt = next_op + acked;
        model_copy(&b, &a);
        model_apply(&b, doubt);
        model_reserve(&a, doubt);

        weir_options *o = crash_opts();
        CHECK(o != NULL);
        weir_db *db = NULL;
        int rc = weir_open(dir, o, &db);
        weir_options_destroy(o);
        if (rc != WEIR_OK) {
            fprintf(stderr,
                    "cycle %d (killed %s after %.0f ms, %" PRIu64 " acked): reopen failed: %s: %s\n"
                    "  seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64 "); store kept at %s\n",
                    c, kind_names[kind], delay, acked, weir_status_name(rc), weir_errmsg(), g_seed,
                    g_seed, dir);
            failed = 1;
            break;
        }
        long bad_a = verify_store(db, &a, doubt + 1, next_op, 0, vbuf);
        long bad_b = bad_a ? verify_store(db, &b, doubt + 1, next_op, 0, vbuf) : 1;
        if (bad_a == 0) {
            model_copy(&cur, &a);
            next_op = doubt; /* redo it next cycle (ids are deterministic) */
            in_doubt_lost++;
        } else if (bad_b == 0) {
            model_copy(&cur, &b);
            next_op = doubt + 1;
            in_doubt_applied++;
        } else {
            fprintf(stderr,
                    "cycle %d (killed %s after %.0f ms): store matches neither the acked state "
                    "nor acked + op %" PRIu64 "\n  %" PRIu64 " ops acked this cycle (ids %" PRIu64
                    "..%" PRIu64 "), seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64
                    "); store kept at %s\n  vs acked state (%ld mismatches):\n",
                    c, kind_names[kind], delay, doubt, acked, next_op, doubt, g_seed, g_seed, dir,
                    bad_a);
            verify_store(db, &a, doubt + 1, next_op, 1, vbuf);
            fprintf(stderr, "  vs acked + in-doubt op (%ld mismatches):\n", bad_b);
            verify_store(db, &b, doubt + 1, next_op, 1, vbuf);
            failed = 1;
        }
        total_acked += acked;
        rc = weir_close(db);
        if (rc != WEIR_OK && !failed) {
            fprintf(stderr, "cycle %d: weir_close: %s: %s\n", c, weir_status_name(rc), weir_errmsg());
            failed = 1;
        }
        if (c % 10 == 9 || c == cycles - 1)
            printf("  cycle %d: %" PRIu64 " ops acked so far, next op %" PRIu64 "\n", c + 1,
                   total_acked, next_op);
        fflush(stdout);
    }
    printf("%d kill cycles (%d within 5 ms of start, %d right after open, %d mid-writes, %d "
           "during compact_range), %" PRIu64 " acknowledged ops verified; in-doubt op applied %" PRIu64
           " times, absent %" PRIu64 " times\n",
           kinds[0] + kinds[1] + kinds[2] + kinds[3], kinds[0], kinds[1], kinds[2], kinds[3],
           total_acked, in_doubt_applied, in_doubt_lost);
    free(vbuf);
    free(cur.batch);
    free(a.batch);
    free(b.batch);
    if (!failed) test_rmtree(dir);
    CHECK(!failed);
    CHECK(total_acked > 0);
}

/* ---- a lost log tail ahead of a later log --------------------------------- */

static int find_log(const char *dir, char *out, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int found = -1;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".log") == 0) {
            snprintf(out, cap, "%s/%s", dir, e->d_name);
            found = 0;
        }
    }
    closedir(d);
    return found;
}

static long size_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Is `key` present with value `key` (1), absent (0), or neither (-1)? */
static int has_key(weir_db *db, const char *key) {
    char buf[16];
    size_t len = 0;
    int rc = weir_get(db, NULL, key, strlen(key), buf, sizeof buf, &len);
    if (rc == WEIR_NOT_FOUND) return 0;
    return rc == WEIR_OK && len == strlen(key) && memcmp(buf, key, len) == 0 ? 1 : -1;
}

/* A power cut may write out the first page of a new log (unsynced, the OS
 * flushes pages in any order) and lose the unsynced end of the previous
 * one. Recovery must then not apply the new log's writes without the lost
 * ones: the store keeps a prefix of the history. Built by hand: a child
 * writes records 1..3 (flush mode) and dies; the log is cut after record 1,
 * and a later log gets record 3 alone (a hole) or records 2 and 3 (none). */
TEST(lost_log_tail_cuts_later_logs) {
    static const char *const keys[] = {"k1", "k2", "k3"};
    for (int hole = 1; hole >= 0; hole--) {
        char base[PATH_MAX], dir[PATH_MAX + 8], logp[PATH_MAX + 300], later[PATH_MAX + 32];
        test_tmpdir(base, sizeof base, "logtail");
        snprintf(dir, sizeof dir, "%s/db", base);
        int fds[2];
        CHECK(pipe(fds) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            weir_options *o = weir_options_create();
            weir_db *db;
            if (!o || weir_open(dir, o, &db) != WEIR_OK) _exit(2);
            long sizes[3];
            char path[PATH_MAX + 300];
            if (find_log(dir, path, sizeof path) != 0) _exit(3);
            weir_writeopts wo = {0};
            wo.sync = WEIR_SYNC_FLUSH;
            for (int i = 0; i < 3; i++) {
                if (weir_put(db, &wo, keys[i], 2, keys[i], 2) != WEIR_OK) _exit(4);
                sizes[i] = size_of(path);
            }
            if (write(fds[1], sizes, sizeof sizes) != (ssize_t)sizeof sizes) _exit(5);
            _exit(0); /* no close: as if killed */
        }
        close(fds[1]);
        long sizes[3] = {0, 0, 0};
        ssize_t got = read(fds[0], sizes, sizeof sizes);
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(got == (ssize_t)sizeof sizes);
        CHECK(sizes[0] > 0 && sizes[0] < sizes[1] && sizes[1] < sizes[2]);
        CHECK(find_log(dir, logp, sizeof logp) == 0);
        char bytes[4096];
        FILE *f = fopen(logp, "rb");
        CHECK(f != NULL);
        size_t n = fread(bytes, 1, sizeof bytes, f);
        fclose(f);
        CHECK((long)n == sizes[2]);
        CHECK(truncate(logp, sizes[0]) == 0);
        snprintf(later, sizeof later, "%s/000099.log", dir);
        long from = hole ? sizes[1] : sizes[0];
        f = fopen(later, "wb");
        CHECK(f != NULL);
        CHECK(fwrite(bytes + from, 1, (size_t)(sizes[2] - from), f) == (size_t)(sizes[2] - from));
        fclose(f);
        for (int round = 0; round < 2; round++) {
            weir_options *o = weir_options_create();
            weir_db *db;
            int rc = weir_open(dir, o, &db);
            weir_options_destroy(o);
            CHECK_OK(rc);
            int k1 = has_key(db, "k1"), k2 = has_key(db, "k2"), k3 = has_key(db, "k3");
            if (round == 0) CHECK_OK(weir_put(db, NULL, "k4", 2, "k4", 2));
            CHECK_OK(weir_close(db));
            CHECK_EQ_INT(k1, 1);
            CHECK_EQ_INT(k2, hole ? 0 : 1);
            CHECK_EQ_INT(k3, hole ? 0 : 1);
        }
        CHECK(size_of(later) < 0); /* obsolete, deleted: never replayed again */
        test_rmtree(base);
    }
}

static const test_case tests[] = {
    TEST_ENTRY(kill_and_recover),
    TEST_ENTRY(lost_log_tail_cuts_later_logs),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
