/*
 * crash_loop.c -- weir's crash-recovery stress test (in the spirit of
 * RocksDB's db_stress with its crash tests).
 *
 * Each cycle forks a child that opens the store and runs a writer (batches
 * of puts and deletes, range deletions, merges, TTL puts, atomic groups
 * of keys and transactions, with every sync mode, plus flushes,
 * compactions and checkpoints) while two reader threads check, at every
 * snapshot, that groups written together are seen together, that the
 * history never goes backwards and that every value is well formed. The
 * child is then stopped in one of three ways:
 *
 *   kill        SIGKILL at a random moment, from inside open/recovery to
 *               deep in a workload;
 *   crash point the fault env (tests/support/env_fault.h) exits the child at a named
 *               point (before or after a log/table/manifest sync, the
 *               CURRENT rename, a directory sync, a file removal, ...),
 *               every point in turn, sometimes with a power cut;
 *   power cut   the fault env exits at a random file operation after
 *               dropping every byte and directory entry that was never
 *               synced, sometimes tearing the last page.
 *
 * Every write op also sets "~last" to its op id, and the child logs each
 * acknowledged op (id, sync mode) to an oracle file with write(2), which
 * survives SIGKILL. The parent then reopens the store and checks:
 *
 *   - "~last" is at least the last op acknowledged with WEIR_SYNC_FLUSH or
 *     stronger (after a power cut: with WEIR_SYNC_FSYNC), and at most one
 *     past the last acknowledged op (the one in flight);
 *   - the whole store equals the model of ops 1..~last applied in order:
 *     so nothing acknowledged is lost and nothing is half applied;
 *   - every tenth cycle and at the end, `weir check` is clean.
 *
 * The same directory carries over from cycle to cycle.
 *
 * Usage: crash_loop [--cycles N] [--seconds S] [--seed S] [--dir D]
 *                   [--cli PATH] [--report FILE] [--verbose]
 * Environment: WEIR_CRASH_CYCLES, WEIR_TEST_SEED, WEIR_CLI.
 * Exit status 0 when every cycle passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db_impl.h"
#include "env_fault.h"
#include "weir.h"

#define NKEYS 1500
#define NCTR 16
#define NGROUPS 8
#define GROUP_SIZE 4
#define MAXP 24
#define MAXV (16 * 1024 + 64)
#define LAST_KEY "~last"

enum { K_BATCH, K_DELETE, K_RANGE, K_MERGE, K_TTL, K_GROUP, K_TXN, K_COUNT };
static const char *const kind_names[K_COUNT] = {"batch", "delete", "range", "merge", "ttl", "group", "txn"};

typedef struct cop {
    int kind;
    int sync; /* weir_sync_mode */
    int np, pk[MAXP];
    int nd, dk[4];
    int rlo, rhi;
    int nm, mc[4];
    int64_t md[4];
    int grp;
} cop;

static uint64_t g_seed;
static int g_verbose;

/* ---- deterministic generation ---- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

typedef struct rng {
    uint64_t s;
} rng;
static uint64_t rnext(rng *r) { return mix64(r->s += 0x9e3779b97f4a7c15ull); }
static uint64_t runi(rng *r, uint64_t n) { return n ? rnext(r) % n : 0; }

static void gen_op(uint64_t id, cop *o) {
    rng r = {g_seed ^ mix64(id)};
    memset(o, 0, sizeof *o);
    o->grp = -1;
    uint64_t x = runi(&r, 100);
    o->kind = x < 34 ? K_BATCH : x < 42 ? K_DELETE : x < 48 ? K_RANGE : x < 62 ? K_MERGE
            : x < 67 ? K_TTL : x < 80 ? K_GROUP : K_TXN;
#ifndef WEIR_HAVE_TXN
    if (o->kind == K_TXN) o->kind = K_BATCH;
#endif
    uint64_t s = runi(&r, 100);
    o->sync = s < 25 ? WEIR_SYNC_FSYNC : s < 90 ? WEIR_SYNC_FLUSH : WEIR_SYNC_NONE;
    switch (o->kind) {
    case K_BATCH:
        o->np = 1 + (int)runi(&r, runi(&r, 4) == 0 ? MAXP : 6);
        for (int i = 0; i < o->np; i++) o->pk[i] = (int)runi(&r, NKEYS);
        o->nd = (int)runi(&r, 3);
        for (int i = 0; i < o->nd; i++) o->dk[i] = (int)runi(&r, NKEYS);
        break;
    case K_DELETE:
        o->nd = 1 + (int)runi(&r, 4);
        for (int i = 0; i < o->nd; i++) o->dk[i] = (int)runi(&r, NKEYS);
        break;
    case K_RANGE:
        o->rlo = (int)runi(&r, NKEYS);
        o->rhi = o->rlo + 1 + (int)runi(&r, 40);
        if (o->rhi > NKEYS) o->rhi = NKEYS;
        o->np = (int)runi(&r, 2); /* a put in the batch before the range */
        for (int i = 0; i < o->np; i++) o->pk[i] = (int)runi(&r, NKEYS);
        break;
    case K_MERGE:
        o->nm = 1 + (int)runi(&r, 4);
        for (int i = 0; i < o->nm; i++) {
            o->mc[i] = (int)runi(&r, NCTR);
            o->md[i] = (int64_t)runi(&r, 2000) - 1000;
        }
        break;
    case K_TTL:
        o->np = 1;
        o->pk[0] = (int)runi(&r, NKEYS);
        break;
    case K_GROUP:
        o->grp = (int)runi(&r, NGROUPS);
        break;
    case K_TXN:
        o->np = 1 + (int)runi(&r, 5);
        for (int i = 0; i < o->np; i++) o->pk[i] = (int)runi(&r, NKEYS);
        o->nd = (int)runi(&r, 2);
        for (int i = 0; i < o->nd; i++) {
            o->dk[i] = (int)runi(&r, NKEYS);
            /* A transaction keeps one write per key; keep them distinct. */
            for (int j = 0; j < o->np; j++)
                if (o->pk[j] == o->dk[i]) o->dk[i] = -1;
        }
        o->nm = 1;
        o->mc[0] = (int)runi(&r, NCTR);
        o->md[0] = (int64_t)runi(&r, 100);
        break;
    }
    /* Keys written twice in one op: the later write wins, as in a batch. */
}

static size_t key_k(char *out, int k) { return (size_t)snprintf(out, 16, "k%04d", k); }
static size_t key_n(char *out, int c) { return (size_t)snprintf(out, 16, "n%02d", c); }
static size_t key_g(char *out, int g, int i) { return (size_t)snprintf(out, 16, "g%d-%d", g, i); }

/* The value op `id` writes to key name `key`: "<id>:<key>:" and filler
 * derived from both, so a value proves where it came from. */
static size_t value_gen(char *out, uint64_t id, const char *key) {
    rng r = {g_seed ^ mix64(id * 31 + (uint64_t)key[1] * 7 + strlen(key))};
    for (const char *p = key; *p; p++) r.s = mix64(r.s ^ (uint8_t)*p);
    uint64_t c = runi(&r, 100);
    size_t len = c < 70 ? 8 + runi(&r, 92) : c < 96 ? 100 + runi(&r, 900) : 2000 + runi(&r, 14000);
    int h = snprintf(out, 64, "%" PRIu64 ":%s:", id, key);
    if ((size_t)h > len) len = (size_t)h;
    uint64_t f = rnext(&r);
    for (size_t i = (size_t)h; i < len; i++) out[i] = (char)('a' + (f + i * 13) % 26);
    return len;
}

/* Parse "<id>:<key>:" and check the whole value; returns id or 0. */
static uint64_t value_check(const char *v, size_t vl, const char *key, char *scratch) {
    uint64_t id = 0;
    size_t i = 0;
    while (i < vl && i < 20 && v[i] >= '0' && v[i] <= '9') id = id * 10 + (uint64_t)(v[i++] - '0');
    if (i == 0 || i >= vl || v[i] != ':') return 0;
    size_t wl = value_gen(scratch, id, key);
    return wl == vl && memcmp(scratch, v, vl) == 0 ? id : 0;
}

/* ---- the model (parent) ---- */

typedef struct model {
    uint64_t kop[NKEYS]; /* op whose value the key holds; 0 = absent */
    int64_t ctr[NCTR];
    int has_ctr[NCTR];
    uint64_t grp[NGROUPS];
    uint64_t last;
} model;

static void model_apply(model *m, uint64_t id) {
    cop o;
    gen_op(id, &o);
    for (int i = 0; i < o.np; i++) m->kop[o.pk[i]] = id;
    for (int i = 0; i < o.nd; i++)
        if (o.dk[i] >= 0) m->kop[o.dk[i]] = 0;
    if (o.kind == K_RANGE)
        for (int k = o.rlo; k < o.rhi; k++) m->kop[k] = 0;
    for (int i = 0; i < o.nm; i++) {
        m->ctr[o.mc[i]] += o.md[i];
        m->has_ctr[o.mc[i]] = 1;
    }
    if (o.grp >= 0) m->grp[o.grp] = id;
    m->last = id;
}

/* ---- the child ---- */

#define REC_VIOLATION (UINT64_MAX)
#define REC_OPEN_FAILED (UINT64_MAX - 1)
#define REC_OP_FAILED (UINT64_MAX - 2)
#define REC_CRASHED (UINT64_MAX - 3) /* the fault env stopped the child; sync = power cut */

typedef struct ack_rec {
    uint64_t id;
    uint32_t sync;
    uint32_t extra;
} ack_rec;

static int g_ack_fd = -1;
static weir_db *g_db;
static atomic_int g_stop_readers;

static void send_ack(uint64_t id, uint32_t sync, uint32_t extra) {
    ack_rec r = {id, sync, extra};
    if (write(g_ack_fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(6);
}

/* Recorded before the fault env's _exit: a sanitizer's exit handling can
 * take long enough for the parent's deadline to SIGKILL the child anyway,
 * and the parent must still know unsynced data was dropped. */
static void on_crash(void *arg, int power_cut) {
    (void)arg;
    send_ack(REC_CRASHED, (uint32_t)power_cut, 0);
}

static void violation(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crash_loop child: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    send_ack(REC_VIOLATION, 0, 0);
    _exit(7);
}

static int write_op(weir_db *db, uint64_t id, const cop *o, char *v) {
    weir_writeopts wo = {.sync = (weir_sync_mode)o->sync};
    char k[32], k2[32], idbuf[8];
    for (int i = 0; i < 8; i++) idbuf[i] = (char)(id >> (8 * i));
#ifdef WEIR_HAVE_TXN
    if (o->kind == K_TXN) {
        weir_txnopts to = {.sync = (weir_sync_mode)o->sync};
        weir_txn *t;
        int rc = weir_txn_begin(db, &to, &t);
        if (rc != WEIR_OK) return rc;
        for (int i = 0; i < o->np && rc == WEIR_OK; i++) {
            void *old = NULL;
            size_t ol = 0;
            key_k(k, o->pk[i]);
            rc = weir_txn_get_for_update(t, k, strlen(k), &old, &ol);
            if (rc == WEIR_OK && !value_check(old, ol, k, v)) violation("txn read of %s: bad value", k);
            weir_free(old);
            if (rc == WEIR_NOT_FOUND) rc = WEIR_OK;
            if (rc == WEIR_OK) rc = weir_txn_put(t, k, strlen(k), v, value_gen(v, id, k));
        }
        for (int i = 0; i < o->nd && rc == WEIR_OK; i++)
            if (o->dk[i] >= 0) rc = weir_txn_delete(t, k, key_k(k, o->dk[i]));
        for (int i = 0; i < o->nm && rc == WEIR_OK; i++) {
            char d[8];
            for (int j = 0; j < 8; j++) d[j] = (char)((uint64_t)o->md[i] >> (8 * j));
            rc = weir_txn_merge(t, k, key_n(k, o->mc[i]), WEIR_MERGE_INT64_ADD, d, 8);
        }
        if (rc == WEIR_OK) rc = weir_txn_put(t, LAST_KEY, strlen(LAST_KEY), idbuf, 8);
        if (rc == WEIR_OK) rc = weir_txn_commit(t);
        else weir_txn_rollback(t);
        weir_txn_destroy(t);
        /* One writer: nothing can conflict. */
        if (rc == WEIR_CONFLICT) violation("op %" PRIu64 ": transaction conflict with no rival: %s", id, weir_errmsg());
        return rc;
    }
#endif
    weir_batch *b = weir_batch_create();
    if (!b) return WEIR_NO_MEMORY;
    int rc = WEIR_OK;
    for (int i = 0; i < o->np && rc == WEIR_OK; i++) {
        key_k(k, o->pk[i]);
        size_t vl = value_gen(v, id, k);
        if (o->kind == K_TTL) rc = weir_batch_put_ttl(b, k, strlen(k), v, vl, 1000ull * 86400 * 3650);
        else rc = weir_batch_put(b, k, strlen(k), v, vl);
    }
    for (int i = 0; i < o->nd && rc == WEIR_OK; i++)
        if (o->dk[i] >= 0) rc = weir_batch_delete(b, k, key_k(k, o->dk[i]));
    if (o->kind == K_RANGE && rc == WEIR_OK) {
        key_k(k, o->rlo);
        /* "l" sorts after every data key. */
        if (o->rhi < NKEYS) rc = weir_batch_delete_range(b, k, strlen(k), k2, key_k(k2, o->rhi));
        else rc = weir_batch_delete_range(b, k, strlen(k), "l", 1);
    }
    for (int i = 0; i < o->nm && rc == WEIR_OK; i++) {
        char d[8];
        for (int j = 0; j < 8; j++) d[j] = (char)((uint64_t)o->md[i] >> (8 * j));
        rc = weir_batch_merge(b, k, key_n(k, o->mc[i]), WEIR_MERGE_INT64_ADD, d, 8);
    }
    if (o->grp >= 0)
        for (int i = 0; i < GROUP_SIZE && rc == WEIR_OK; i++) {
            key_g(k, o->grp, i);
            char gv[64];
            int gl = snprintf(gv, sizeof gv, "%" PRIu64 ":g%d", id, o->grp);
            rc = weir_batch_put(b, k, strlen(k), gv, (size_t)gl);
        }
    if (rc == WEIR_OK) rc = weir_batch_put(b, LAST_KEY, strlen(LAST_KEY), idbuf, 8);
    if (rc == WEIR_OK) rc = weir_write(db, &wo, b);
    weir_batch_destroy(b);
    return rc;
}

static uint64_t parse_last(const void *v, size_t vl) {
    if (vl != 8) return UINT64_MAX;
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | ((const uint8_t *)v)[i];
    return x;
}

/* Group keys: all GROUP_SIZE present with one op id, or all absent. */
static void check_groups_get(weir_db *db, const weir_readopts *ro, const char *how) {
    for (int g = 0; g < NGROUPS; g++) {
        char first[64] = "", k[16], v[64];
        int present = -1;
        for (int i = 0; i < GROUP_SIZE; i++) {
            size_t vl;
            int rc = weir_get(db, ro, k, key_g(k, g, i), v, sizeof v - 1, &vl);
            if (rc != WEIR_OK && rc != WEIR_NOT_FOUND) violation("%s get %s: %s", how, k, weir_errmsg());
            int p = rc == WEIR_OK;
            if (p) v[vl] = '\0';
            if (present < 0) {
                present = p;
                if (p) snprintf(first, sizeof first, "%s", v);
            } else if (p != present || (p && strcmp(first, v) != 0)) {
                violation("%s: group %d torn: %s vs %s", how, g, first, p ? v : "(absent)");
            }
        }
    }
}

/* multi_get reads one point in time without a snapshot. */
static void check_groups_multi_get(weir_db *db) {
    for (int g = 0; g < NGROUPS; g++) {
        char names[GROUP_SIZE][16];
        const void *keys[GROUP_SIZE];
        size_t klens[GROUP_SIZE], vlens[GROUP_SIZE];
        void *vals[GROUP_SIZE];
        int st[GROUP_SIZE];
        for (int i = 0; i < GROUP_SIZE; i++) {
            klens[i] = key_g(names[i], g, i);
            keys[i] = names[i];
        }
        if (weir_multi_get(db, NULL, GROUP_SIZE, keys, klens, vals, vlens, st) != WEIR_OK)
            violation("multi_get: %s", weir_errmsg());
        for (int i = 1; i < GROUP_SIZE; i++)
            if (st[i] != st[0] || (st[i] == WEIR_OK && (vlens[i] != vlens[0] || memcmp(vals[i], vals[0], vlens[0]) != 0)))
                violation("multi_get: group %d torn", g);
        for (int i = 0; i < GROUP_SIZE; i++) weir_free(vals[i]);
    }
}

static void *reader_main(void *arg) {
    uintptr_t which = (uintptr_t)arg;
    char *scratch = malloc(MAXV);
    if (!scratch) return NULL;
    uint64_t seen_last = 0;
    for (uint64_t round = 0; !atomic_load(&g_stop_readers); round++) {
        weir_snapshot *snap;
        if (weir_snapshot_create(g_db, &snap) != WEIR_OK) violation("snapshot: %s", weir_errmsg());
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        ro.snapshot = snap;
        char v[16];
        size_t vl;
        int rc = weir_get(g_db, &ro, LAST_KEY, strlen(LAST_KEY), v, sizeof v, &vl);
        if (rc == WEIR_OK) {
            uint64_t last = parse_last(v, vl);
            if (last == UINT64_MAX) violation("~last has %zu bytes", vl);
            if (last < seen_last) violation("~last went back from %" PRIu64 " to %" PRIu64, seen_last, last);
            seen_last = last;
        } else if (rc != WEIR_NOT_FOUND) {
            violation("get ~last: %s", weir_errmsg());
        }
        check_groups_get(g_db, &ro, "snapshot");
        if ((round + which) % 8 == 0) {
            /* A full scan at the same snapshot: ordered, well formed, and
             * groups whole. */
            weir_iter *it;
            if (weir_iter_create(g_db, &ro, &it) != WEIR_OK) violation("iter: %s", weir_errmsg());
            char prev[32] = "";
            size_t prevl = 0;
            uint64_t gid[NGROUPS][GROUP_SIZE];
            memset(gid, 0, sizeof gid);
            for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
                size_t kl, xl;
                const char *k = weir_iter_key(it, &kl);
                const char *x = weir_iter_value(it, &xl);
                char key[32];
                if (kl == 0 || kl >= sizeof key) violation("scan: odd key length %zu", kl);
                memcpy(key, k, kl);
                key[kl] = '\0';
                if (prevl && strcmp(prev, key) >= 0) violation("scan: %s after %s", key, prev);
                snprintf(prev, sizeof prev, "%s", key);
                prevl = kl;
                if (key[0] == 'k') {
                    if (!value_check(x, xl, key, scratch)) violation("scan: bad value for %s", key);
                } else if (key[0] == 'n') {
                    if (xl != 8) violation("scan: counter %s has %zu bytes", key, xl);
                } else if (key[0] == 'g') {
                    int g = key[1] - '0', i = key[3] - '0';
                    if (g < 0 || g >= NGROUPS || i < 0 || i >= GROUP_SIZE) violation("scan: key %s", key);
                    gid[g][i] = strtoull(x, NULL, 10);
                } else if (strcmp(key, LAST_KEY) != 0) {
                    violation("scan: unexpected key %s", key);
                }
            }
            if (weir_iter_status(it) != WEIR_OK) violation("scan: %s", weir_errmsg());
            weir_iter_destroy(it);
            for (int g = 0; g < NGROUPS; g++)
                for (int i = 1; i < GROUP_SIZE; i++)
                    if (gid[g][i] != gid[g][0]) violation("scan: group %d torn", g);
        }
        weir_snapshot_release(g_db, snap);
        if (round % 4 == 3) check_groups_multi_get(g_db);
    }
    free(scratch);
    return NULL;
}

static weir_options *loop_opts(void) {
    weir_options *o = weir_options_create();
    if (!o) return NULL;
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_options_set_target_file_size(o, 64 * 1024);
    weir_options_set_max_bytes_for_level_base(o, 256 * 1024);
    weir_options_set_level0_triggers(o, 2, 8, 16);
    weir_options_set_block_size(o, 1024);
    weir_options_set_sync_mode(o, WEIR_SYNC_FLUSH);
    return o;
}

typedef struct child_cfg {
    const char *dir;
    const char *ckpt;
    uint64_t first_op;
    int use_fault_env;
    fault_rule rule;
    int power_cut, torn;
} child_cfg;

static void child_main(const child_cfg *cfg) {
    weir_options *o = loop_opts();
    if (!o) _exit(3);
    fault_env *fe = NULL;
    if (cfg->use_fault_env) {
        fe = fault_env_create(NULL);
        if (!fe) _exit(3);
        fault_env_set_crash(fe, cfg->power_cut, cfg->torn, FAULT_CRASH_EXIT);
        fault_env_set_rule(fe, &cfg->rule);
        fault_env_set_crash_hook(fe, on_crash, NULL);
        weir_options_set_env(o, fault_env_env(fe));
    }
    int rc = weir_open(cfg->dir, o, &g_db);
    if (rc != WEIR_OK) {
        fprintf(stderr, "crash_loop child: open: %s: %s\n", weir_status_name(rc), weir_errmsg());
        send_ack(REC_OPEN_FAILED, (uint32_t)rc, 0);
        _exit(3);
    }
    pthread_t readers[2];
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&readers[i], NULL, reader_main, (void *)i);
    char *v = malloc(MAXV);
    if (!v) _exit(3);
    for (uint64_t id = cfg->first_op;; id++) {
        uint64_t n = id - cfg->first_op;
        if (n % 97 == 50) rc = weir_flush(g_db);
        if (rc == WEIR_OK && n % 401 == 200) rc = weir_compact_range(g_db, NULL, 0, NULL, 0);
        if (rc == WEIR_OK && n % 613 == 300) {
            char cmd[PATH_MAX + 16];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", cfg->ckpt);
            if (system(cmd) != 0) _exit(3);
            rc = weir_checkpoint(g_db, cfg->ckpt);
        }
        if (rc != WEIR_OK) {
            fprintf(stderr, "crash_loop child: maintenance before op %" PRIu64 ": %s: %s\n", id,
                    weir_status_name(rc), weir_errmsg());
            send_ack(REC_OP_FAILED, (uint32_t)rc, 0);
            _exit(4);
        }
        cop op;
        gen_op(id, &op);
        rc = write_op(g_db, id, &op, v);
        if (rc != WEIR_OK) {
            fprintf(stderr, "crash_loop child: op %" PRIu64 " (%s): %s: %s\n", id, kind_names[op.kind],
                    weir_status_name(rc), weir_errmsg());
            send_ack(REC_OP_FAILED, (uint32_t)rc, 0);
            _exit(4);
        }
        send_ack(id, (uint32_t)op.sync, 0);
    }
}

/* ---- the parent ---- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int run_cli_check(const char *cli, const char *dir, const char *out_path) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(cli, cli, "check", dir, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

typedef struct totals {
    uint64_t cycles, kills, crash_points_fired, crash_points_missed, power_cuts, torn_cuts;
    uint64_t acked_ops, inflight_applied, inflight_absent, lost_unsynced, checks;
    uint64_t kills_in_open;
    uint64_t kinds[K_COUNT];
    uint64_t point_fired[64];
} totals;

/* Compare the store with m; returns the number of differences and
 * describes the first in why. */
static long verify(weir_db *db, const model *m, char *why, size_t cap, char *scratch) {
    long diffs = 0;
    why[0] = '\0';
#define DIFF(...)                                              \
    do {                                                       \
        if (diffs++ == 0) snprintf(why, cap, __VA_ARGS__);     \
    } while (0)
    weir_iter *it;
    if (weir_iter_create(db, NULL, &it) != WEIR_OK) {
        snprintf(why, cap, "iterator: %s", weir_errmsg());
        return -1;
    }
    static uint8_t seen_k[NKEYS], seen_n[NCTR], seen_g[NGROUPS][GROUP_SIZE];
    memset(seen_k, 0, sizeof seen_k);
    memset(seen_n, 0, sizeof seen_n);
    memset(seen_g, 0, sizeof seen_g);
    int seen_last = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
        size_t kl, vl;
        const char *k = weir_iter_key(it, &kl);
        const char *v = weir_iter_value(it, &vl);
        char key[32];
        if (kl >= sizeof key) {
            DIFF("unexpected key of %zu bytes", kl);
            continue;
        }
        memcpy(key, k, kl);
        key[kl] = '\0';
        int a = -1, b = -1;
        if (key[0] == 'k' && sscanf(key, "k%d", &a) == 1 && a >= 0 && a < NKEYS) {
            seen_k[a] = 1;
            uint64_t id = value_check(v, vl, key, scratch);
            if (!m->kop[a]) DIFF("%s present (op %" PRIu64 "), model: absent", key, id);
            else if (id != m->kop[a]) DIFF("%s holds op %" PRIu64 "'s value, model: op %" PRIu64, key, id, m->kop[a]);
        } else if (key[0] == 'n' && sscanf(key, "n%d", &a) == 1 && a >= 0 && a < NCTR) {
            seen_n[a] = 1;
            int64_t got = (int64_t)parse_last(v, vl);
            if (!m->has_ctr[a] || vl != 8 || got != m->ctr[a])
                DIFF("%s = %" PRId64 ", model: %" PRId64 "%s", key, got, m->ctr[a], m->has_ctr[a] ? "" : " (absent)");
        } else if (key[0] == 'g' && sscanf(key, "g%d-%d", &a, &b) == 2 && a >= 0 && a < NGROUPS && b >= 0 &&
                   b < GROUP_SIZE) {
            seen_g[a][b] = 1;
            uint64_t id = strtoull(v, NULL, 10);
            if (id != m->grp[a]) DIFF("%s holds op %" PRIu64 ", model: op %" PRIu64, key, id, m->grp[a]);
        } else if (strcmp(key, LAST_KEY) == 0) {
            seen_last = 1;
            if (parse_last(v, vl) != m->last) DIFF("~last = %" PRIu64 ", model %" PRIu64, parse_last(v, vl), m->last);
        } else {
            DIFF("unexpected key %s", key);
        }
    }
    int st = weir_iter_status(it);
    weir_iter_destroy(it);
    if (st != WEIR_OK) {
        snprintf(why, cap, "scan failed: %s: %s", weir_status_name(st), weir_errmsg());
        return -1;
    }
    for (int a = 0; a < NKEYS; a++)
        if (m->kop[a] && !seen_k[a]) DIFF("k%04d missing, model: op %" PRIu64, a, m->kop[a]);
    for (int a = 0; a < NCTR; a++)
        if (m->has_ctr[a] && !seen_n[a]) DIFF("n%02d missing", a);
    for (int a = 0; a < NGROUPS; a++)
        for (int b = 0; b < GROUP_SIZE; b++)
            if (m->grp[a] && !seen_g[a][b]) DIFF("g%d-%d missing", a, b);
    if (m->last && !seen_last) DIFF("~last missing (model %" PRIu64 ")", m->last);
#undef DIFF
    return diffs;
}

static void usage(void) {
    fprintf(stderr, "usage: crash_loop [--cycles N] [--seconds S] [--seed S] [--dir D] [--cli PATH] "
                    "[--report FILE] [--verbose]\n");
    exit(2);
}

int main(int argc, char **argv) {
    uint64_t cycles = 200;
    double seconds = 0;
    const char *dir_arg = NULL, *cli = getenv("WEIR_CLI"), *report = NULL;
    const char *env_cycles = getenv("WEIR_CRASH_CYCLES");
    if (env_cycles && *env_cycles) cycles = strtoull(env_cycles, NULL, 10);
    const char *env_seed = getenv("WEIR_TEST_SEED");
    g_seed = env_seed && *env_seed ? strtoull(env_seed, NULL, 10) : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
#ifdef WEIR_CLI_PATH
    if (!cli || !*cli) cli = WEIR_CLI_PATH;
#endif
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) {
            g_verbose = 1;
            continue;
        }
        if (!val) usage();
        if (!strcmp(a, "--cycles")) cycles = strtoull(val, NULL, 10);
        else if (!strcmp(a, "--seconds")) seconds = atof(val);
        else if (!strcmp(a, "--seed")) g_seed = strtoull(val, NULL, 10);
        else if (!strcmp(a, "--dir")) dir_arg = val;
        else if (!strcmp(a, "--cli")) cli = val;
        else if (!strcmp(a, "--report")) report = val;
        else usage();
        i++;
    }
    if (cli && access(cli, X_OK) != 0) cli = NULL;

    char base[PATH_MAX];
    if (dir_arg) {
        snprintf(base, sizeof base, "%s", dir_arg);
        mkdir(base, 0755);
    } else {
        const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        snprintf(base, sizeof base, "%s/weir-crash-loop-XXXXXX", tmp);
        if (!mkdtemp(base)) {
            perror("mkdtemp");
            return 2;
        }
    }
    char dir[PATH_MAX + 8], ckpt[PATH_MAX + 8], acks[PATH_MAX + 8], attic[PATH_MAX + 32], checkout[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/db", base);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", base);
    snprintf(acks, sizeof acks, "%s/acks", base);
    snprintf(attic, sizeof attic, "%s.fault-attic", dir);
    snprintf(checkout, sizeof checkout, "%s/check.out", base);
    fprintf(stderr, "crash_loop: seed %" PRIu64 " (replay with --seed %" PRIu64 "), %" PRIu64 " cycles%s, store %s\n",
            g_seed, g_seed, cycles, seconds > 0 ? " or the time limit" : "", dir);

    static model m;
    memset(&m, 0, sizeof m);
    totals t;
    memset(&t, 0, sizeof t);
    char *scratch = malloc(MAXV);
    char why[1024];
    rng pr = {g_seed ^ 0x1234567u};
    int npoints = fault_crash_point_count();
    double start = now_ms();
    int failed = 0;

    for (uint64_t cycle = 0; cycle < cycles && !failed; cycle++) {
        if (seconds > 0 && (now_ms() - start) / 1000.0 > seconds) break;
        /* How this child will die. */
        child_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.dir = dir;
        cfg.ckpt = ckpt;
        cfg.first_op = m.last + 1;
        uint64_t pick = runi(&pr, 100);
        const char *point = NULL;
        int point_index = -1;
        double deadline;
        if (pick < 55) {
            uint64_t d = runi(&pr, 100);
            deadline = d < 10 ? (double)runi(&pr, 6) : d < 30 ? 5 + (double)runi(&pr, 30) : 30 + (double)runi(&pr, 170);
        } else if (pick < 85) {
            point_index = (int)(t.crash_points_fired + t.crash_points_missed) % npoints;
            point = fault_crash_point_name(point_index);
            fault_crash_point(point, 1 + runi(&pr, 6), &cfg.rule);
            cfg.use_fault_env = 1;
            cfg.power_cut = runi(&pr, 3) == 0;
            cfg.torn = cfg.power_cut && runi(&pr, 2);
            deadline = 600;
        } else {
            cfg.use_fault_env = 1;
            cfg.rule.nth = 1 + runi(&pr, 3000);
            cfg.rule.action = FAULT_CRASH_BEFORE;
            cfg.power_cut = 1;
            cfg.torn = runi(&pr, 2);
            deadline = 600;
        }
        int fd = open(acks, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (fd < 0) {
            perror("open acks");
            return 2;
        }
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            g_ack_fd = fd;
            child_main(&cfg);
            _exit(0);
        }
        close(fd);
        double t0 = now_ms();
        int status = 0, reaped = 0;
        while (now_ms() - t0 < deadline) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) {
                reaped = 1;
                break;
            }
            sleep_ms(deadline - (now_ms() - t0) < 1 ? 0.2 : 1);
        }
        if (!reaped) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
        int exited_at_point = WIFEXITED(status) && WEXITSTATUS(status) == FAULT_CRASH_EXIT;
        int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        /* The oracle. */
        uint64_t last_acked = m.last, durable = m.last, nacked = 0;
        int child_error = 0;
        FILE *af = fopen(acks, "rb");
        ack_rec rec;
        /* Did the fault env crash it (maybe with a power cut)? */
        while (af && fread(&rec, sizeof rec, 1, af) == 1)
            if (rec.id == REC_CRASHED) exited_at_point = 1;
        if (af) rewind(af);
        while (af && fread(&rec, sizeof rec, 1, af) == 1) {
            if (rec.id == REC_CRASHED) continue;
            if (rec.id >= REC_OP_FAILED) {
                child_error = 1;
                continue;
            }
            if (rec.id != last_acked + 1) {
                fprintf(stderr, "cycle %" PRIu64 ": oracle out of order (%" PRIu64 " after %" PRIu64 ")\n", cycle,
                        rec.id, last_acked);
                failed = 1;
            }
            last_acked = rec.id;
            nacked++;
            int strong = exited_at_point && cfg.power_cut ? rec.sync == WEIR_SYNC_FSYNC : rec.sync >= WEIR_SYNC_FLUSH;
            if (strong) durable = rec.id;
        }
        if (af) fclose(af);
        if (child_error || (!killed && !exited_at_point)) {
            fprintf(stderr, "cycle %" PRIu64 ": the child failed (status %d%s)\n", cycle,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), child_error ? ", see above" : "");
            failed = 1;
            break;
        }
        if (killed && !exited_at_point) {
            t.kills++;
            if (deadline < 6) t.kills_in_open++;
        }
        if (point) {
            if (exited_at_point) {
                t.crash_points_fired++;
                if (point_index < 64) t.point_fired[point_index]++;
            } else {
                t.crash_points_missed++;
            }
        }
        if (exited_at_point && cfg.power_cut) {
            t.power_cuts++;
            if (cfg.torn) t.torn_cuts++;
        }

        /* Reopen and compare. */
        weir_options *o = loop_opts();
        weir_db *db;
        int rc = weir_open(dir, o, &db);
        weir_options_destroy(o);
        if (rc != WEIR_OK) {
            fprintf(stderr, "cycle %" PRIu64 ": reopen failed: %s: %s\n", cycle, weir_status_name(rc), weir_errmsg());
            failed = 1;
            break;
        }
        char v[16];
        size_t vl;
        uint64_t last = 0;
        rc = weir_get(db, NULL, LAST_KEY, strlen(LAST_KEY), v, sizeof v, &vl);
        if (rc == WEIR_OK) last = parse_last(v, vl);
        else if (rc != WEIR_NOT_FOUND) last = UINT64_MAX;
        if (last < durable || last > last_acked + 1) {
            fprintf(stderr,
                    "cycle %" PRIu64 ": after the crash ~last = %" PRIu64 ", but ops up to %" PRIu64
                    " were durable and %" PRIu64 " acknowledged\n",
                    cycle, last, durable, last_acked);
            failed = 1;
        } else {
            if (last > last_acked) t.inflight_applied++;
            else if (last_acked >= cfg.first_op && last == last_acked) t.inflight_absent++;
            if (last < last_acked) t.lost_unsynced += last_acked - last;
            for (uint64_t id = m.last + 1; id <= last; id++) {
                cop op;
                gen_op(id, &op);
                t.kinds[op.kind]++;
                model_apply(&m, id);
            }
            long d = verify(db, &m, why, sizeof why, scratch);
            if (d != 0) {
                fprintf(stderr, "cycle %" PRIu64 ": store differs from the model of ops 1..%" PRIu64 " (%ld differences): %s\n",
                        cycle, last, d, why);
                failed = 1;
            }
        }
        t.acked_ops += nacked;
        rc = weir_close(db);
        if (rc != WEIR_OK && !failed) {
            fprintf(stderr, "cycle %" PRIu64 ": close: %s\n", cycle, weir_errmsg());
            failed = 1;
        }
        if (!failed && cli && (cycle % 10 == 9 || cycle + 1 == cycles)) {
            int code = run_cli_check(cli, dir, checkout);
            t.checks++;
            if (code != 0) {
                fprintf(stderr, "cycle %" PRIu64 ": weir check exited %d (output in %s)\n", cycle, code, checkout);
                failed = 1;
            }
        }
        char cmd[3 * PATH_MAX];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", ckpt, attic);
        if (system(cmd) != 0) {
        }
        t.cycles++;
        if (failed) {
            fprintf(stderr, "  mode: %s%s%s; seed %" PRIu64 "; store kept at %s\n",
                    point ? point : cfg.use_fault_env ? "power cut at a random operation" : "SIGKILL",
                    cfg.power_cut ? " + power cut" : "", cfg.torn ? " (torn)" : "", g_seed, dir);
        } else if (g_verbose || (cycle + 1) % 500 == 0) {
            fprintf(stderr, "  cycle %" PRIu64 ": op %" PRIu64 ", %" PRIu64 " acked this cycle (%s)\n", cycle + 1, m.last,
                    nacked, point ? point : cfg.use_fault_env ? "power cut" : "kill");
        }
    }
    double secs = (now_ms() - start) / 1000.0;
    uint64_t all_ops = 0;
    for (int k = 0; k < K_COUNT; k++) all_ops += t.kinds[k];
    fprintf(stderr,
            "crash_loop: %" PRIu64 " cycles %s in %.0f s: %" PRIu64 " SIGKILLs (%" PRIu64 " during open/recovery), %" PRIu64
            " crash points hit (%" PRIu64 " not reached), %" PRIu64 " power cuts (%" PRIu64 " torn); %" PRIu64
            " ops acknowledged, %" PRIu64 " applied and verified; in-flight op applied %" PRIu64 " times, absent %" PRIu64
            "; unsynced acknowledged ops dropped by crashes %" PRIu64 "; %" PRIu64 " weir checks clean\n",
            t.cycles, failed ? "FAILED" : "survived", secs, t.kills, t.kills_in_open, t.crash_points_fired,
            t.crash_points_missed, t.power_cuts, t.torn_cuts, t.acked_ops, all_ops, t.inflight_applied,
            t.inflight_absent, t.lost_unsynced, t.checks);
    fprintf(stderr, "  ops by kind:");
    for (int k = 0; k < K_COUNT; k++) fprintf(stderr, " %s %" PRIu64, kind_names[k], t.kinds[k]);
    fprintf(stderr, "\n  crash points:");
    for (int i = 0; i < npoints && i < 64; i++) fprintf(stderr, " %s %" PRIu64, fault_crash_point_name(i), t.point_fired[i]);
    fprintf(stderr, "\n");
    if (report) {
        FILE *f = fopen(report, "a");
        if (f) {
            fprintf(f, "crash_loop cycles %" PRIu64 " failed %d seconds %.0f kills %" PRIu64 " crash_points %" PRIu64
                       " power_cuts %" PRIu64 " acked %" PRIu64 " verified_ops %" PRIu64 " seed %" PRIu64 "\n",
                    t.cycles, failed, secs, t.kills, t.crash_points_fired, t.power_cuts, t.acked_ops, all_ops, g_seed);
            fclose(f);
        }
    }
    free(scratch);
    if (!failed && !dir_arg) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        if (system(cmd) != 0) {
        }
    }
    return failed ? 1 : 0;
}
