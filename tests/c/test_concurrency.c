/*
 * test_concurrency.c -- many threads on one weir_db.
 *
 * Four writers each own 16 keys "k<w>-<jj>" and rewrite all 16 in one
 * batch with the same counter value, counting up. Four readers check that
 * every read sees one point in time: through a snapshot (gets and
 * iterators), through a prefix iterator, through a full iterator and
 * through multi_get, all 16 keys of a writer must carry the same counter;
 * that counter must not be older than what the writer had acknowledged
 * before the read began, and never go backwards for a reader. Meanwhile one
 * thread flushes and compacts, and another creates and destroys iterators
 * while that happens. At the end every key holds its writer's last counter,
 * also after a reopen.
 *
 * Environment: WEIR_CONCURRENCY_SECONDS (default 3), WEIR_TEST_SEED.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NWRITERS 4
#define NREADERS 4
#define NKEYS 16
#define PAD 90

static weir_db *g_db;
static atomic_int g_stop;
static atomic_int g_failed;
static _Atomic uint64_t g_last[NWRITERS]; /* last acknowledged counter */
static _Atomic uint64_t g_reads, g_flushes, g_compactions, g_iter_churn;
static pthread_mutex_t g_msg_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_seed;

static void failf(const char *fmt, ...) {
    pthread_mutex_lock(&g_msg_mu);
    if (atomic_load(&g_failed) < 10) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAILURE: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, " (seed=%" PRIu64 ")\n", g_seed);
        va_end(ap);
    }
    atomic_fetch_add(&g_failed, 1);
    atomic_store(&g_stop, 1);
    pthread_mutex_unlock(&g_msg_mu);
}

static size_t make_key(char *out, int w, int j) { return (size_t)snprintf(out, 16, "k%d-%02d", w, j); }

static size_t make_value(char *out, uint64_t counter, int w, int j) {
    int h = snprintf(out, 64, "%012" PRIu64 "|%d|%02d|", counter, w, j);
    memset(out + h, 'a' + (int)(counter % 26), PAD);
    return (size_t)h + PAD;
}

/* Parse and fully validate a value; returns its counter or UINT64_MAX. */
static uint64_t value_counter(const void *v, size_t vl, int w, int j) {
    if (vl < 12) return UINT64_MAX;
    uint64_t c = 0;
    const char *p = v;
    for (int i = 0; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') return UINT64_MAX;
        c = c * 10 + (uint64_t)(p[i] - '0');
    }
    char want[128];
    size_t wl = make_value(want, c, w, j);
    if (wl != vl || memcmp(want, v, vl) != 0) return UINT64_MAX;
    return c;
}

static int write_round(int w, uint64_t counter, weir_batch *b) {
    char k[16], v[128];
    weir_batch_clear(b);
    for (int j = 0; j < NKEYS; j++) {
        size_t kl = make_key(k, w, j), vl = make_value(v, counter, w, j);
        int rc = weir_batch_put(b, k, kl, v, vl);
        if (rc != WEIR_OK) return rc;
    }
    return weir_write(g_db, NULL, b);
}

static void *writer_main(void *arg) {
    int w = (int)(intptr_t)arg;
    weir_batch *b = weir_batch_create();
    if (!b) {
        failf("writer %d: weir_batch_create", w);
        return NULL;
    }
    for (uint64_t c = 1; !atomic_load(&g_stop); c++) {
        int rc = write_round(w, c, b);
        if (rc != WEIR_OK) {
            failf("writer %d: weir_write counter %" PRIu64 ": %s: %s", w, c, weir_status_name(rc),
                  weir_errmsg());
            break;
        }
        atomic_store(&g_last[w], c);
    }
    weir_batch_destroy(b);
    return NULL;
}

/* Checks one writer's 16 values as read at one point in time. `floor` is
 * what the writer had acknowledged before the read started. */
static int check_group(const char *how, int w, const uint64_t *counters, uint64_t floor,
                       uint64_t *seen_max) {
    for (int j = 0; j < NKEYS; j++) {
        if (counters[j] == UINT64_MAX) {
            failf("%s: writer %d key %d: missing or malformed value", how, w, j);
            return 0;
        }
        if (counters[j] != counters[0]) {
            failf("%s: writer %d: torn read, key 0 has counter %" PRIu64 " but key %d has %" PRIu64,
                  how, w, counters[0], j, counters[j]);
            return 0;
        }
    }
    if (counters[0] < floor) {
        failf("%s: writer %d: read counter %" PRIu64 " older than acknowledged %" PRIu64
              " before the read",
              how, w, counters[0], floor);
        return 0;
    }
    if (counters[0] > atomic_load(&g_last[w]) + 1) {
        failf("%s: writer %d: read counter %" PRIu64 " that was never written", how, w,
              counters[0]);
        return 0;
    }
    if (counters[0] < *seen_max) {
        failf("%s: writer %d: went back in time: %" PRIu64 " after %" PRIu64, how, w, counters[0],
              *seen_max);
        return 0;
    }
    *seen_max = counters[0];
    return 1;
}

static void read_via_gets(weir_db *db, const weir_readopts *ro, int w, uint64_t *out) {
    char k[16], v[256];
    for (int j = 0; j < NKEYS; j++) {
        size_t kl = make_key(k, w, j), vl = 0;
        int rc = weir_get(db, ro, k, kl, v, sizeof v, &vl);
        out[j] = rc == WEIR_OK ? value_counter(v, vl, w, j) : UINT64_MAX;
        if (rc != WEIR_OK) failf("weir_get %s: %s: %s", k, weir_status_name(rc), weir_errmsg());
    }
}

/* Reads keys of writer w from an iterator positioned at its first key. */
static int read_via_iter(weir_iter *it, int w, uint64_t *out) {
    char k[16];
    for (int j = 0; j < NKEYS; j++, weir_iter_next(it)) {
        size_t kl = make_key(k, w, j), gl = 0, vl = 0;
        if (!weir_iter_valid(it)) {
            int st = weir_iter_status(it);
            failf("iterator ended early at %s (status %s: %s)", k, weir_status_name(st),
                  st ? weir_errmsg() : "");
            return 0;
        }
        const void *g = weir_iter_key(it, &gl);
        if (gl != kl || memcmp(g, k, kl) != 0) {
            failf("iterator: want key %s, got \"%.*s\"", k, (int)gl, (const char *)g);
            return 0;
        }
        const void *v = weir_iter_value(it, &vl);
        out[j] = value_counter(v, vl, w, j);
    }
    return 1;
}

static void *reader_main(void *arg) {
    int id = (int)(intptr_t)arg;
    test_rng r;
    test_rng_seed(&r, g_seed ^ (uint64_t)(id + 1) * 7919);
    uint64_t seen[NWRITERS] = {0};
    uint64_t counters[NKEYS];
    while (!atomic_load(&g_stop)) {
        int w = (int)test_rng_uniform(&r, NWRITERS);
        int mode = (int)test_rng_uniform(&r, 5);
        uint64_t floor = atomic_load(&g_last[w]);
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        if (mode == 0) { /* snapshot + gets, read twice: both the same */
            weir_snapshot *s = NULL;
            int rc = weir_snapshot_create(g_db, &s);
            if (rc != WEIR_OK) {
                failf("weir_snapshot_create: %s", weir_errmsg());
                break;
            }
            ro.snapshot = s;
            read_via_gets(g_db, &ro, w, counters);
            int ok = check_group("snapshot gets", w, counters, floor, &seen[w]);
            if (ok) {
                /* Writes go on; the snapshot must keep answering the same. */
                usleep((useconds_t)test_rng_uniform(&r, 500));
                uint64_t again[NKEYS];
                read_via_gets(g_db, &ro, w, again);
                for (int j = 0; j < NKEYS; j++) {
                    if (again[j] != counters[j]) {
                        failf("snapshot re-read: writer %d key %d changed %" PRIu64 " -> %" PRIu64,
                              w, j, counters[j], again[j]);
                        break;
                    }
                }
            }
            weir_snapshot_release(g_db, s);
        } else if (mode == 1 || mode == 4) { /* prefix iterator, maybe over a snapshot */
            weir_snapshot *s = NULL;
            if (mode == 4 && weir_snapshot_create(g_db, &s) != WEIR_OK) {
                failf("weir_snapshot_create: %s", weir_errmsg());
                break;
            }
            char pfx[8];
            int pl = snprintf(pfx, sizeof pfx, "k%d-", w);
            ro.prefix = pfx;
            ro.prefix_len = (size_t)pl;
            ro.snapshot = s;
            weir_iter *it = NULL;
            int rc = weir_iter_create(g_db, &ro, &it);
            if (rc != WEIR_OK) {
                failf("weir_iter_create: %s", weir_errmsg());
                weir_snapshot_release(g_db, s);
                break;
            }
            int backward = test_rng_uniform(&r, 2) == 0;
            if (backward) {
                /* Walk backward and reverse into key order. */
                weir_iter_seek_last(it);
                uint64_t rev[NKEYS];
                int j = NKEYS - 1, ok = 1;
                for (; j >= 0 && weir_iter_valid(it); j--, weir_iter_prev(it)) {
                    size_t vl = 0;
                    const void *v = weir_iter_value(it, &vl);
                    rev[j] = value_counter(v, vl, w, j);
                }
                if (j != -1 || weir_iter_valid(it)) {
                    failf("prefix iterator backward: writer %d: %d keys instead of 16", w,
                          NKEYS - 1 - j);
                    ok = 0;
                }
                if (ok) check_group("prefix iterator (backward)", w, rev, floor, &seen[w]);
            } else {
                weir_iter_seek_first(it);
                if (read_via_iter(it, w, counters)) {
                    if (weir_iter_valid(it))
                        failf("prefix iterator: a key outside prefix k%d- was returned", w);
                    else
                        check_group(mode == 4 ? "snapshot prefix iterator" : "prefix iterator", w,
                                    counters, floor, &seen[w]);
                }
            }
            weir_iter_destroy(it);
            weir_snapshot_release(g_db, s);
        } else if (mode == 2) { /* full iterator: every writer consistent */
            uint64_t floors[NWRITERS];
            for (int x = 0; x < NWRITERS; x++) floors[x] = atomic_load(&g_last[x]);
            weir_iter *it = NULL;
            int rc = weir_iter_create(g_db, NULL, &it);
            if (rc != WEIR_OK) {
                failf("weir_iter_create: %s", weir_errmsg());
                break;
            }
            weir_iter_seek_first(it);
            for (int x = 0; x < NWRITERS && !atomic_load(&g_stop); x++) {
                if (!read_via_iter(it, x, counters)) break;
                if (!check_group("full iterator", x, counters, floors[x], &seen[x])) break;
            }
            if (!atomic_load(&g_stop) && weir_iter_valid(it)) failf("full iterator: extra keys");
            weir_iter_destroy(it);
        } else { /* multi_get: one point in time */
            char kb[NKEYS][16];
            const void *keys[NKEYS];
            size_t kl[NKEYS], vl[NKEYS];
            void *vals[NKEYS];
            int st[NKEYS];
            for (int j = 0; j < NKEYS; j++) {
                kl[j] = make_key(kb[j], w, j);
                keys[j] = kb[j];
                vals[j] = NULL;
            }
            int rc = weir_multi_get(g_db, NULL, NKEYS, keys, kl, vals, vl, st);
            if (rc != WEIR_OK) {
                failf("weir_multi_get: %s: %s", weir_status_name(rc), weir_errmsg());
            } else {
                for (int j = 0; j < NKEYS; j++)
                    counters[j] = st[j] == WEIR_OK ? value_counter(vals[j], vl[j], w, j) : UINT64_MAX;
                check_group("multi_get", w, counters, floor, &seen[w]);
            }
            for (int j = 0; j < NKEYS; j++) weir_free(vals[j]);
        }
        atomic_fetch_add(&g_reads, 1);
    }
    return NULL;
}

static void *maintenance_main(void *arg) {
    (void)arg;
    test_rng r;
    test_rng_seed(&r, g_seed ^ 0xabcdef);
    while (!atomic_load(&g_stop)) {
        int rc = weir_flush(g_db);
        if (rc != WEIR_OK) {
            failf("weir_flush: %s: %s", weir_status_name(rc), weir_errmsg());
            break;
        }
        atomic_fetch_add(&g_flushes, 1);
        usleep(5000 + (useconds_t)test_rng_uniform(&r, 10000));
        if (test_rng_uniform(&r, 2) == 0) {
            rc = weir_compact_range(g_db, NULL, 0, NULL, 0);
        } else {
            char lo[16], hi[16];
            size_t ll = make_key(lo, (int)test_rng_uniform(&r, NWRITERS), 0);
            size_t hl = make_key(hi, NWRITERS - 1, NKEYS - 1);
            rc = weir_compact_range(g_db, lo, ll, hi, hl);
        }
        if (rc != WEIR_OK) {
            failf("weir_compact_range: %s: %s", weir_status_name(rc), weir_errmsg());
            break;
        }
        atomic_fetch_add(&g_compactions, 1);
        usleep(5000 + (useconds_t)test_rng_uniform(&r, 20000));
    }
    return NULL;
}

/* Creates and destroys iterators (some over snapshots) as fast as it can,
 * so iterator lifetimes race with flushes and table deletion. */
static void *iter_churn_main(void *arg) {
    (void)arg;
    test_rng r;
    test_rng_seed(&r, g_seed ^ 0x1234);
    while (!atomic_load(&g_stop)) {
        weir_snapshot *s = NULL;
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        if (test_rng_uniform(&r, 3) == 0) {
            if (weir_snapshot_create(g_db, &s) != WEIR_OK) {
                failf("weir_snapshot_create: %s", weir_errmsg());
                break;
            }
            ro.snapshot = s;
        }
        weir_iter *it = NULL;
        if (weir_iter_create(g_db, &ro, &it) != WEIR_OK) {
            failf("weir_iter_create: %s", weir_errmsg());
            weir_snapshot_release(g_db, s);
            break;
        }
        char k[16];
        size_t kl = make_key(k, (int)test_rng_uniform(&r, NWRITERS), (int)test_rng_uniform(&r, NKEYS));
        weir_iter_seek(it, k, kl);
        char prev[32];
        size_t prevl = 0;
        int steps = (int)test_rng_uniform(&r, 40);
        for (int i = 0; i < steps && weir_iter_valid(it); i++, weir_iter_next(it)) {
            size_t gl = 0;
            const char *g = weir_iter_key(it, &gl);
            if (gl >= sizeof prev) {
                failf("iterator churn: unexpected key length %zu", gl);
                break;
            }
            if (prevl) {
                size_t n = gl < prevl ? gl : prevl;
                int c = memcmp(prev, g, n);
                if (c > 0 || (c == 0 && prevl >= gl)) {
                    failf("iterator churn: keys out of order: \"%.*s\" then \"%.*s\"", (int)prevl,
                          prev, (int)gl, g);
                    break;
                }
            }
            memcpy(prev, g, gl);
            prevl = gl;
        }
        int st = weir_iter_status(it);
        if (st != WEIR_OK) failf("iterator churn: status %s: %s", weir_status_name(st), weir_errmsg());
        weir_iter_destroy(it);
        weir_snapshot_release(g_db, s);
        atomic_fetch_add(&g_iter_churn, 1);
    }
    return NULL;
}

static int check_final(weir_db *db) {
    char k[16], v[256];
    for (int w = 0; w < NWRITERS; w++) {
        uint64_t want = atomic_load(&g_last[w]);
        for (int j = 0; j < NKEYS; j++) {
            size_t kl = make_key(k, w, j), vl = 0;
            int rc = weir_get(db, NULL, k, kl, v, sizeof v, &vl);
            uint64_t got = rc == WEIR_OK ? value_counter(v, vl, w, j) : UINT64_MAX;
            if (got != want) {
                fprintf(stderr, "final: %s holds counter %" PRIu64 " (status %s), want %" PRIu64 "\n", k,
                        got, weir_status_name(rc), want);
                return 0;
            }
        }
    }
    return 1;
}

TEST(writers_readers_maintenance) {
    g_seed = test_seed_from_env();
    printf("seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64 ")\n", g_seed, g_seed);
    double seconds = 3;
    const char *env = getenv("WEIR_CONCURRENCY_SECONDS");
    if (env && *env) seconds = atof(env);
    char dir[512];
    test_tmpdir(dir, sizeof dir, "concurrency");
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    CHECK_OK(weir_options_set_write_buffer_size(o, 128 * 1024));
    CHECK_OK(weir_options_set_target_file_size(o, 64 * 1024));
    CHECK_OK(weir_options_set_max_bytes_for_level_base(o, 256 * 1024));
    CHECK_OK(weir_options_set_level0_triggers(o, 4, 8, 12));
    CHECK_OK(weir_options_set_background_threads(o, 2));
    CHECK_OK(weir_open(dir, o, &g_db));
    /* Counter 0 everywhere, so every key exists from the start. */
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    for (int w = 0; w < NWRITERS; w++) {
        CHECK_OK(write_round(w, 0, b));
        atomic_store(&g_last[w], 0);
    }
    weir_batch_destroy(b);

    pthread_t writers[NWRITERS], readers[NREADERS], maint, churn;
    atomic_store(&g_stop, 0);
    atomic_store(&g_failed, 0);
    for (int i = 0; i < NWRITERS; i++)
        CHECK(pthread_create(&writers[i], NULL, writer_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NREADERS; i++)
        CHECK(pthread_create(&readers[i], NULL, reader_main, (void *)(intptr_t)i) == 0);
    CHECK(pthread_create(&maint, NULL, maintenance_main, NULL) == 0);
    CHECK(pthread_create(&churn, NULL, iter_churn_main, NULL) == 0);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        usleep(50000);
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (el >= seconds || atomic_load(&g_failed)) break;
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < NWRITERS; i++) pthread_join(writers[i], NULL);
    for (int i = 0; i < NREADERS; i++) pthread_join(readers[i], NULL);
    pthread_join(maint, NULL);
    pthread_join(churn, NULL);
    uint64_t total_writes = 0;
    for (int w = 0; w < NWRITERS; w++) total_writes += atomic_load(&g_last[w]);
    printf("  %" PRIu64 " batches written (%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
           "), %" PRIu64 " consistent reads, %" PRIu64 " flushes, %" PRIu64
           " compact_range calls, %" PRIu64 " churned iterators\n",
           total_writes, atomic_load(&g_last[0]), atomic_load(&g_last[1]), atomic_load(&g_last[2]),
           atomic_load(&g_last[3]), atomic_load(&g_reads), atomic_load(&g_flushes),
           atomic_load(&g_compactions), atomic_load(&g_iter_churn));
    int ok = atomic_load(&g_failed) == 0;
    if (ok) ok = check_final(g_db);
    char *nsnap = NULL;
    if (weir_property(g_db, "weir.num-snapshots", &nsnap) == WEIR_OK) {
        if (strcmp(nsnap, "0") != 0) {
            fprintf(stderr, "weir.num-snapshots is \"%s\" after every snapshot was released\n", nsnap);
            ok = 0;
        }
        weir_free(nsnap);
    }
    int rc = weir_close(g_db);
    g_db = NULL;
    if (rc != WEIR_OK) {
        fprintf(stderr, "weir_close: %s: %s\n", weir_status_name(rc), weir_errmsg());
        ok = 0;
    }
    if (ok) {
        rc = weir_open(dir, o, &g_db);
        if (rc != WEIR_OK) {
            fprintf(stderr, "reopen: %s: %s\n", weir_status_name(rc), weir_errmsg());
            ok = 0;
        } else {
            ok = check_final(g_db);
            weir_close(g_db);
            g_db = NULL;
        }
    }
    weir_options_destroy(o);
    if (ok) test_rmtree(dir);
    CHECK(ok);
    CHECK(total_writes > 0);
    CHECK(atomic_load(&g_reads) > 0);
}

static const test_case tests[] = {
    TEST_ENTRY(writers_readers_maintenance),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
