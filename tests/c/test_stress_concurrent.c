/*
 * test_stress_concurrent.c -- many threads on one store for a fixed time,
 * checking invariants that only hold if every operation is atomic and
 * every read sees one point in time. Meant to run under ThreadSanitizer
 * too (make test-tsan).
 *
 *   group writers  each owns 8 keys and a merge counter; every round
 *                  rewrites all 8 keys with the round number and adds 1 to
 *                  the counter in one batch (some rounds first range-delete
 *                  the group in the same batch): any snapshot must show the
 *                  8 keys equal and the counter equal to them.
 *   bankers        transactions move money between 20 accounts (get for
 *                  update, put both, commit; conflicts retried): the total
 *                  never changes at any snapshot.
 *   readers        snapshots, gets, multi_gets and full scans check both
 *                  invariants; rounds never go backwards.
 *   maintenance    flushes, compactions of random ranges, properties.
 *   checkpointer   checkpoints while all this runs; each copy must open and
 *                  satisfy both invariants.
 *
 * Environment: WEIR_STRESS_SECONDS (default 3), WEIR_TEST_SEED.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NGW 3        /* group writers */
#define GKEYS 8
#define NBANKERS 2
#define NACCT 20
#define START_BALANCE 1000
#define NREADERS 3

static weir_db *g_db;
static atomic_int g_stop, g_failures;
static _Atomic uint64_t g_rounds[NGW];
static _Atomic uint64_t g_commits, g_conflicts, g_reads, g_scans, g_checkpoints, g_compactions;
static char g_base[PATH_MAX];
static uint64_t g_seed;
static pthread_mutex_t g_msg_mu = PTHREAD_MUTEX_INITIALIZER;

static void failf(const char *fmt, ...) {
    pthread_mutex_lock(&g_msg_mu);
    if (atomic_fetch_add(&g_failures, 1) < 8) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAILURE: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, " (seed %" PRIu64 ")\n", g_seed);
        va_end(ap);
    }
    atomic_store(&g_stop, 1);
    pthread_mutex_unlock(&g_msg_mu);
}

static size_t gkey(char *out, int w, int j) { return (size_t)snprintf(out, 16, "g%d-%d", w, j); }
static size_t ckey(char *out, int w) { return (size_t)snprintf(out, 16, "c%d", w); }
static size_t akey(char *out, int a) { return (size_t)snprintf(out, 16, "acct%02d", a); }

static int64_t le64(const void *p, size_t n) {
    if (n != 8) return INT64_MIN;
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | ((const uint8_t *)p)[i];
    return (int64_t)x;
}

static void put_le64(char *out, int64_t v) {
    for (int i = 0; i < 8; i++) out[i] = (char)((uint64_t)v >> (8 * i));
}

/* ---- writers ---- */

static void *group_writer(void *arg) {
    int w = (int)(intptr_t)arg;
    weir_batch *b = weir_batch_create();
    char k[16], k2[16], v[64];
    for (uint64_t round = 1; !atomic_load(&g_stop); round++) {
        weir_batch_clear(b);
        int rc = WEIR_OK;
        if (round % 10 == 0) {
            /* Delete the whole group and write it back, atomically. */
            size_t l1 = (size_t)snprintf(k, sizeof k, "g%d-", w);
            size_t l2 = (size_t)snprintf(k2, sizeof k2, "g%d.", w);
            rc = weir_batch_delete_range(b, k, l1, k2, l2);
        }
        int vl = snprintf(v, sizeof v, "%" PRIu64, round);
        for (int j = 0; j < GKEYS && rc == WEIR_OK; j++) rc = weir_batch_put(b, k, gkey(k, w, j), v, (size_t)vl);
        if (rc == WEIR_OK) rc = weir_batch_merge(b, k, ckey(k, w), WEIR_MERGE_INT64_ADD, "\x01\0\0\0\0\0\0\0", 8);
        weir_writeopts wo = {.sync = round % 7 == 0 ? WEIR_SYNC_FSYNC : WEIR_SYNC_NONE};
        if (rc == WEIR_OK) rc = weir_write(g_db, &wo, b);
        if (rc != WEIR_OK) {
            failf("writer %d round %" PRIu64 ": %s", w, round, weir_errmsg());
            break;
        }
        atomic_store(&g_rounds[w], round);
    }
    weir_batch_destroy(b);
    return NULL;
}

static void *banker(void *arg) {
    test_rng r;
    test_rng_seed(&r, g_seed + (uint64_t)(intptr_t)arg * 7919);
    char k1[16], k2[16], v[8];
    while (!atomic_load(&g_stop)) {
        int a = (int)test_rng_uniform(&r, NACCT), b2 = (int)test_rng_uniform(&r, NACCT);
        if (a == b2) continue;
        weir_txn *t;
        if (weir_txn_begin(g_db, NULL, &t) != WEIR_OK) {
            failf("txn begin: %s", weir_errmsg());
            break;
        }
        void *va = NULL, *vb = NULL;
        size_t la = 0, lb = 0;
        int rc = weir_txn_get_for_update(t, k1, akey(k1, a), &va, &la);
        if (rc == WEIR_OK) rc = weir_txn_get_for_update(t, k2, akey(k2, b2), &vb, &lb);
        if (rc == WEIR_OK) {
            int64_t x = le64(va, la), y = le64(vb, lb);
            int64_t amount = (int64_t)test_rng_uniform(&r, 50);
            put_le64(v, x - amount);
            rc = weir_txn_put(t, k1, strlen(k1), v, 8);
            put_le64(v, y + amount);
            if (rc == WEIR_OK) rc = weir_txn_put(t, k2, strlen(k2), v, 8);
            if (rc == WEIR_OK) rc = weir_txn_commit(t);
        }
        weir_free(va);
        weir_free(vb);
        weir_txn_destroy(t);
        if (rc == WEIR_OK) atomic_fetch_add(&g_commits, 1);
        else if (rc == WEIR_CONFLICT) atomic_fetch_add(&g_conflicts, 1);
        else {
            failf("transfer: %s: %s", weir_status_name(rc), weir_errmsg());
            break;
        }
    }
    return NULL;
}

/* ---- invariants ---- */

/* Check both invariants at one point in time (ro's snapshot, or an
 * iterator's); `floor` are rounds acknowledged before the read began. */
static int check_state(weir_db *db, const weir_readopts *ro, const uint64_t *floor, const char *how) {
    char k[16], v[32];
    for (int w = 0; w < NGW; w++) {
        uint64_t first = 0;
        for (int j = 0; j < GKEYS; j++) {
            size_t vl;
            int rc = weir_get(db, ro, k, gkey(k, w, j), v, sizeof v - 1, &vl);
            if (rc != WEIR_OK) {
                failf("%s: get %s: %s", how, k, weir_status_name(rc));
                return -1;
            }
            v[vl] = '\0';
            uint64_t x = strtoull(v, NULL, 10);
            if (j == 0) first = x;
            else if (x != first) {
                failf("%s: group %d torn: key 0 at round %" PRIu64 ", key %d at %" PRIu64, how, w, first, j, x);
                return -1;
            }
        }
        size_t cl;
        char cv[8];
        int rc = weir_get(db, ro, k, ckey(k, w), cv, sizeof cv, &cl);
        if (rc != WEIR_OK || (uint64_t)le64(cv, cl) != first) {
            failf("%s: counter of group %d is %" PRId64 ", keys are at round %" PRIu64, how, w,
                  rc == WEIR_OK ? le64(cv, cl) : -1, first);
            return -1;
        }
        if (floor && first < floor[w]) {
            failf("%s: group %d at round %" PRIu64 " but %" PRIu64 " was acknowledged before the read", how, w,
                  first, floor[w]);
            return -1;
        }
    }
    int64_t sum = 0;
    for (int a = 0; a < NACCT; a++) {
        size_t vl;
        int rc = weir_get(db, ro, k, akey(k, a), v, 8, &vl);
        if (rc != WEIR_OK) {
            failf("%s: get %s: %s", how, k, weir_status_name(rc));
            return -1;
        }
        sum += le64(v, vl);
    }
    if (sum != (int64_t)NACCT * START_BALANCE) {
        failf("%s: accounts sum to %" PRId64 ", want %d", how, sum, NACCT * START_BALANCE);
        return -1;
    }
    return 0;
}

static void *reader(void *arg) {
    int id = (int)(intptr_t)arg;
    for (uint64_t n = 0; !atomic_load(&g_stop); n++) {
        uint64_t floor[NGW];
        for (int w = 0; w < NGW; w++) floor[w] = atomic_load(&g_rounds[w]);
        weir_snapshot *s;
        if (weir_snapshot_create(g_db, &s) != WEIR_OK) {
            failf("snapshot: %s", weir_errmsg());
            break;
        }
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        ro.snapshot = s;
        if (check_state(g_db, &ro, floor, "snapshot") != 0) {
            weir_snapshot_release(g_db, s);
            break;
        }
        if ((n + (uint64_t)id) % 5 == 0) {
            /* A scan at the same snapshot agrees with the gets. */
            weir_iter *it;
            if (weir_iter_create(g_db, &ro, &it) != WEIR_OK) {
                failf("iter: %s", weir_errmsg());
                weir_snapshot_release(g_db, s);
                break;
            }
            int64_t sum = 0;
            uint64_t grp[NGW][GKEYS];
            memset(grp, 0, sizeof grp);
            for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
                size_t kl, vl;
                const char *k = weir_iter_key(it, &kl);
                const char *v = weir_iter_value(it, &vl);
                if (kl > 4 && !memcmp(k, "acct", 4)) sum += le64(v, vl);
                if (kl == 4 && k[0] == 'g' && k[2] == '-') {
                    char tmp[24];
                    size_t n2 = vl < sizeof tmp - 1 ? vl : sizeof tmp - 1;
                    memcpy(tmp, v, n2);
                    tmp[n2] = '\0';
                    grp[k[1] - '0'][k[3] - '0'] = strtoull(tmp, NULL, 10);
                }
            }
            int st = weir_iter_status(it);
            weir_iter_destroy(it);
            if (st != WEIR_OK) failf("scan: %s", weir_status_name(st));
            if (sum != (int64_t)NACCT * START_BALANCE) failf("scan: accounts sum to %" PRId64, sum);
            for (int w = 0; w < NGW; w++)
                for (int j = 1; j < GKEYS; j++)
                    if (grp[w][j] != grp[w][0]) failf("scan: group %d torn", w);
            atomic_fetch_add(&g_scans, 1);
        }
        weir_snapshot_release(g_db, s);
        /* multi_get is one point in time without a snapshot. */
        const void *keys[GKEYS];
        size_t klens[GKEYS], vlens[GKEYS];
        void *vals[GKEYS];
        int st[GKEYS];
        char names[GKEYS][16];
        int w = (int)(n % NGW);
        for (int j = 0; j < GKEYS; j++) {
            klens[j] = gkey(names[j], w, j);
            keys[j] = names[j];
        }
        if (weir_multi_get(g_db, NULL, GKEYS, keys, klens, vals, vlens, st) != WEIR_OK) failf("multi_get: %s", weir_errmsg());
        for (int j = 1; j < GKEYS; j++)
            if (st[j] != WEIR_OK || vlens[j] != vlens[0] || memcmp(vals[j], vals[0], vlens[0]) != 0)
                failf("multi_get: group %d torn", w);
        for (int j = 0; j < GKEYS; j++) weir_free(vals[j]);
        atomic_fetch_add(&g_reads, 1);
    }
    return NULL;
}

static void *maintenance(void *arg) {
    test_rng r;
    test_rng_seed(&r, g_seed ^ (uint64_t)(intptr_t)arg);
    while (!atomic_load(&g_stop)) {
        uint64_t x = test_rng_uniform(&r, 10);
        int rc = WEIR_OK;
        if (x < 3) {
            rc = weir_flush(g_db);
        } else if (x < 6) {
            char a[16], b[16];
            akey(a, (int)test_rng_uniform(&r, NACCT));
            gkey(b, (int)test_rng_uniform(&r, NGW), 0);
            rc = strcmp(a, b) < 0 ? weir_compact_range(g_db, a, strlen(a), b, strlen(b))
                                  : weir_compact_range(g_db, b, strlen(b), a, strlen(a));
            atomic_fetch_add(&g_compactions, 1);
        } else {
            char *v = NULL;
            rc = weir_property(g_db, x < 8 ? "weir.stats" : "weir.level-summary", &v);
            weir_free(v);
        }
        if (rc != WEIR_OK) {
            failf("maintenance: %s: %s", weir_status_name(rc), weir_errmsg());
            break;
        }
        usleep(2000);
    }
    return NULL;
}

static void *checkpointer(void *arg) {
    (void)arg;
    for (int n = 0; !atomic_load(&g_stop); n++) {
        char dir[PATH_MAX + 32];
        snprintf(dir, sizeof dir, "%s/ckpt-%d", g_base, n);
        uint64_t floor[NGW];
        for (int w = 0; w < NGW; w++) floor[w] = atomic_load(&g_rounds[w]);
        int rc = weir_checkpoint(g_db, dir);
        if (rc != WEIR_OK) {
            failf("checkpoint: %s", weir_errmsg());
            break;
        }
        weir_db *c;
        rc = weir_open(dir, NULL, &c);
        if (rc != WEIR_OK) {
            failf("checkpoint %d does not open: %s", n, weir_errmsg());
            break;
        }
        check_state(c, NULL, floor, "checkpoint");
        weir_close(c);
        test_rmtree(dir);
        atomic_fetch_add(&g_checkpoints, 1);
        usleep(20000);
    }
    return NULL;
}

static double seconds(void) {
    const char *s = getenv("WEIR_STRESS_SECONDS");
    double v = s ? atof(s) : 3.0;
    return v > 0 ? v : 3.0;
}

TEST(everything_at_once) {
    g_seed = test_seed_from_env();
    test_tmpdir(g_base, sizeof g_base, "stress");
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/db", g_base);
    weir_options *o = weir_options_create();
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_options_set_target_file_size(o, 64 * 1024);
    weir_options_set_level0_triggers(o, 2, 6, 12);
    weir_options_set_block_size(o, 1024);
    weir_options_set_background_threads(o, 3);
    CHECK_OK(weir_open(dir, o, &g_db));
    weir_options_destroy(o);
    /* The starting state satisfies both invariants. */
    weir_batch *b = weir_batch_create();
    char k[16], v[8];
    for (int w = 0; w < NGW; w++) {
        for (int j = 0; j < GKEYS; j++) weir_batch_put(b, k, gkey(k, w, j), "0", 1);
        put_le64(v, 0);
        weir_batch_put(b, k, ckey(k, w), v, 8);
    }
    put_le64(v, START_BALANCE);
    for (int a = 0; a < NACCT; a++) weir_batch_put(b, k, akey(k, a), v, 8);
    CHECK_OK(weir_write(g_db, NULL, b));
    weir_batch_destroy(b);

    pthread_t th[NGW + NBANKERS + NREADERS + 2];
    int n = 0;
    for (int i = 0; i < NGW; i++) pthread_create(&th[n++], NULL, group_writer, (void *)(intptr_t)i);
    for (int i = 0; i < NBANKERS; i++) pthread_create(&th[n++], NULL, banker, (void *)(intptr_t)i);
    for (int i = 0; i < NREADERS; i++) pthread_create(&th[n++], NULL, reader, (void *)(intptr_t)i);
    pthread_create(&th[n++], NULL, maintenance, (void *)(intptr_t)1);
    pthread_create(&th[n++], NULL, checkpointer, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double limit = seconds();
    for (;;) {
        usleep(20000);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (atomic_load(&g_stop) || (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 >= limit) break;
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    int fails = atomic_load(&g_failures);
    if (!fails) check_state(g_db, NULL, NULL, "final");
    CHECK_OK(weir_close(g_db));
    /* And after a reopen. */
    CHECK_OK(weir_open(dir, NULL, &g_db));
    uint64_t floor[NGW];
    for (int w = 0; w < NGW; w++) floor[w] = atomic_load(&g_rounds[w]);
    if (!atomic_load(&g_failures)) check_state(g_db, NULL, floor, "reopened");
    CHECK_OK(weir_close(g_db));
    fprintf(stderr,
            "     %.1f s: rounds %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", %" PRIu64 " transfers (%" PRIu64
            " conflicts retried), %" PRIu64 " snapshot reads, %" PRIu64 " scans, %" PRIu64 " compactions, %" PRIu64
            " checkpoints verified\n",
            limit, atomic_load(&g_rounds[0]), atomic_load(&g_rounds[1]), atomic_load(&g_rounds[2]),
            atomic_load(&g_commits), atomic_load(&g_conflicts), atomic_load(&g_reads), atomic_load(&g_scans),
            atomic_load(&g_compactions), atomic_load(&g_checkpoints));
    test_rmtree(g_base);
    CHECK_EQ_INT(atomic_load(&g_failures), 0);
    CHECK(atomic_load(&g_commits) > 0);
    CHECK(atomic_load(&g_checkpoints) > 0);
}

static const test_case tests[] = {
    TEST_ENTRY(everything_at_once),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
