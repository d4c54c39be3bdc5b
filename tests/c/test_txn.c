/*
 * test_txn.c -- optimistic transactions: reading their own writes (gets and
 * iterators, against a model), isolation from later commits, conflict
 * detection and its boundaries, finished-transaction and argument errors, a
 * multi-threaded bank-transfer run that must conserve money exactly, and a
 * crash variant where a child making fsynced transfers is SIGKILLed and the
 * reopened store must hold every acknowledged transfer exactly once.
 *
 * Environment: WEIR_TXN_CRASH_CYCLES (default 20), WEIR_TEST_SEED (replay).
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void put_i64(char *p, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) p[i] = (char)(u >> (8 * i));
}

static int64_t get_i64(const void *v) {
    const unsigned char *p = v;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

static weir_db *open_db(const char *dir, size_t write_buffer) {
    weir_options *o = weir_options_create();
    if (!o) return NULL;
    if (write_buffer) weir_options_set_write_buffer_size(o, write_buffer);
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    if (rc != WEIR_OK) fprintf(stderr, "open %s: %s\n", dir, weir_errmsg());
    return db;
}

/* 1 if txn reads key as the string want (NULL: absent). */
static int txn_reads(weir_txn *t, const char *key, const char *want) {
    void *v = NULL;
    size_t vl = 0;
    int rc = weir_txn_get(t, key, strlen(key), &v, &vl);
    int ok = want ? rc == WEIR_OK && vl == strlen(want) && memcmp(v, want, vl) == 0 : rc == WEIR_NOT_FOUND;
    if (!ok)
        fprintf(stderr, "txn get %s: %s (%.*s), want %s\n", key, weir_status_name(rc), (int)vl,
                v ? (const char *)v : "", want ? want : "absent");
    weir_free(v);
    return ok;
}

static int db_reads(weir_db *db, const char *key, const char *want) {
    void *v = NULL;
    size_t vl = 0;
    int rc = weir_get_alloc(db, NULL, key, strlen(key), &v, &vl);
    int ok = want ? rc == WEIR_OK && vl == strlen(want) && memcmp(v, want, vl) == 0 : rc == WEIR_NOT_FOUND;
    if (!ok)
        fprintf(stderr, "db get %s: %s (%.*s), want %s\n", key, weir_status_name(rc), (int)vl,
                v ? (const char *)v : "", want ? want : "absent");
    weir_free(v);
    return ok;
}

static int64_t txn_counter(weir_txn *t, const char *key, int *rc) {
    void *v = NULL;
    size_t vl = 0;
    *rc = weir_txn_get(t, key, strlen(key), &v, &vl);
    int64_t x = *rc == WEIR_OK && vl == 8 ? get_i64(v) : INT64_MIN;
    weir_free(v);
    return x;
}

static int put_s(weir_db *db, const char *k, const char *v) {
    return weir_put(db, NULL, k, strlen(k), v, strlen(v));
}

static int add_s(weir_txn *t, const char *k, int64_t d) {
    char op[8];
    put_i64(op, d);
    return weir_txn_merge(t, k, strlen(k), WEIR_MERGE_INT64_ADD, op, 8);
}

/* ---- read your own writes ------------------------------------------------- */

TEST(reads_own_writes) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-ryow");
    weir_db *db = open_db(dir, 0);
    CHECK(db != NULL);
    CHECK_OK(put_s(db, "a", "db-a"));
    CHECK_OK(put_s(db, "b", "db-b"));
    CHECK_OK(weir_add_int64(db, NULL, "n", 1, 10));
    CHECK_OK(weir_add_int64(db, NULL, "m", 1, 7));
    weir_txn *t = NULL;
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK(txn_reads(t, "a", "db-a"));
    CHECK_OK(weir_txn_put(t, "a", 1, "txn-a1", 6));
    CHECK_OK(weir_txn_put(t, "a", 1, "txn-a2", 6)); /* the newer put wins */
    CHECK_OK(weir_txn_delete(t, "b", 1));
    CHECK_OK(weir_txn_put(t, "c", 1, "", 0)); /* empty value, new key */
    CHECK_OK(weir_txn_put(t, "", 0, "empty-key", 9));
    CHECK(txn_reads(t, "a", "txn-a2"));
    CHECK(txn_reads(t, "b", NULL));
    CHECK(txn_reads(t, "c", ""));
    CHECK(txn_reads(t, "", "empty-key"));
    CHECK(txn_reads(t, "zz", NULL));
    /* Merges fold over the snapshot value, an own put, or an own delete. */
    int rc;
    CHECK_OK(add_s(t, "n", 5));
    CHECK_OK(add_s(t, "n", 1));
    CHECK_EQ_INT(txn_counter(t, "n", &rc), 16);
    char eight[8];
    put_i64(eight, 100);
    CHECK_OK(weir_txn_put(t, "p", 1, eight, 8));
    CHECK_OK(add_s(t, "p", -1));
    CHECK_EQ_INT(txn_counter(t, "p", &rc), 99);
    CHECK_OK(weir_txn_delete(t, "m", 1));
    CHECK_OK(add_s(t, "m", 3));
    CHECK_EQ_INT(txn_counter(t, "m", &rc), 3);
    CHECK_OK(add_s(t, "fresh", 4)); /* merge over nothing */
    CHECK_EQ_INT(txn_counter(t, "fresh", &rc), 4);
    /* A put after merges replaces them. */
    CHECK_OK(add_s(t, "q", 1));
    CHECK_OK(weir_txn_put(t, "q", 1, "plain", 5));
    CHECK(txn_reads(t, "q", "plain"));
    /* A merge that cannot apply fails the read, naming the problem. */
    CHECK_OK(add_s(t, "a", 1));
    void *v = NULL;
    size_t vl = 0;
    CHECK_STATUS(weir_txn_get(t, "a", 1, &v, &vl), WEIR_INVALID);
    CHECK(v == NULL);
    CHECK_OK(weir_txn_put(t, "a", 1, "txn-a3", 6));
    /* Nothing reaches the DB before commit. */
    CHECK(db_reads(db, "a", "db-a"));
    CHECK(db_reads(db, "c", NULL));
    CHECK_OK(weir_txn_commit(t));
    CHECK(db_reads(db, "a", "txn-a3"));
    CHECK(db_reads(db, "b", NULL));
    CHECK(db_reads(db, "c", ""));
    CHECK(db_reads(db, "", "empty-key"));
    CHECK(db_reads(db, "q", "plain"));
    CHECK_OK(weir_get_alloc(db, NULL, "n", 1, &v, &vl));
    CHECK(vl == 8 && get_i64(v) == 16);
    weir_free(v);
    CHECK_OK(weir_get_alloc(db, NULL, "m", 1, &v, &vl));
    CHECK(vl == 8 && get_i64(v) == 3);
    weir_free(v);
    CHECK_OK(weir_get_alloc(db, NULL, "p", 1, &v, &vl));
    CHECK(vl == 8 && get_i64(v) == 99);
    weir_free(v);
    weir_txn_destroy(t);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Past 16 keys the index becomes a hash table; keys that share nothing but
 * their hash bucket must stay apart. */
TEST(many_keys_in_one_transaction) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-many");
    weir_db *db = open_db(dir, 256 * 1024);
    CHECK(db != NULL);
    weir_txn *t;
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    char k[32], val[32];
    const int n = 5000;
    for (int i = 0; i < n; i++) {
        int kl = snprintf(k, sizeof k, "key%06d", i);
        int vl = snprintf(val, sizeof val, "v%d", i);
        CHECK_OK(weir_txn_put(t, k, (size_t)kl, val, (size_t)vl));
        if (i % 3 == 0) CHECK_OK(weir_txn_delete(t, k, (size_t)kl));
    }
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        snprintf(val, sizeof val, "v%d", i);
        CHECK(txn_reads(t, k, i % 3 == 0 ? NULL : val));
    }
    weir_iter *it;
    CHECK_OK(weir_txn_iter_create(t, NULL, &it));
    int seen = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) seen++;
    CHECK_OK(weir_iter_status(it));
    weir_iter_destroy(it);
    CHECK_EQ_INT(seen, n - (n + 2) / 3);
    CHECK_OK(weir_txn_commit(t));
    weir_txn_destroy(t);
    CHECK(db_reads(db, "key000001", "v1"));
    CHECK(db_reads(db, "key000003", NULL));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- the iterator against a model -------------------------------------------- */

#define UNIV 240 /* c000..c039 (counters), k000..k199 */

typedef struct model {
    char keys[UNIV][8];
    int present[UNIV];
    char val[UNIV][40];
    size_t vlen[UNIV];
} model;

static void model_init(model *m) {
    memset(m, 0, sizeof *m);
    for (int i = 0; i < UNIV; i++) {
        if (i < 40) snprintf(m->keys[i], sizeof m->keys[i], "c%03d", i);
        else snprintf(m->keys[i], sizeof m->keys[i], "k%03d", i - 40);
    }
}

static int model_find(const model *m, const char *k) {
    for (int i = 0; i < UNIV; i++)
        if (strcmp(m->keys[i], k) == 0) return i;
    return -1;
}

/* Load the model from what the DB (or a txn iterator) shows. */
static int model_load(model *m, weir_iter *it) {
    memset(m->present, 0, sizeof m->present);
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
        size_t kl, vl;
        const char *k = weir_iter_key(it, &kl);
        const char *v = weir_iter_value(it, &vl);
        char key[16];
        if (kl >= sizeof key || vl > sizeof m->val[0]) return 0;
        memcpy(key, k, kl);
        key[kl] = 0;
        int i = model_find(m, key);
        if (i < 0) return 0;
        m->present[i] = 1;
        memcpy(m->val[i], v, vl);
        m->vlen[i] = vl;
    }
    return weir_iter_status(it) == WEIR_OK;
}

typedef struct range {
    const char *lower, *upper, *prefix;
} range;

static int in_range(const model *m, int i, const range *r) {
    const char *k = m->keys[i];
    if (!m->present[i]) return 0;
    if (r->lower && strcmp(k, r->lower) < 0) return 0;
    if (r->upper && strcmp(k, r->upper) >= 0) return 0;
    if (r->prefix && strncmp(k, r->prefix, strlen(r->prefix)) != 0) return 0;
    return 1;
}

static int at(weir_iter *it, const model *m, int i) {
    if (i < 0 || i >= UNIV) {
        if (weir_iter_valid(it)) {
            size_t kl;
            const char *k = weir_iter_key(it, &kl);
            fprintf(stderr, "iterator at %.*s, want end\n", (int)kl, k);
            return 0;
        }
        return weir_iter_status(it) == WEIR_OK;
    }
    if (!weir_iter_valid(it)) {
        fprintf(stderr, "iterator ended (%s), want %s\n", weir_status_name(weir_iter_status(it)), m->keys[i]);
        return 0;
    }
    size_t kl, vl;
    const char *k = weir_iter_key(it, &kl);
    const char *v = weir_iter_value(it, &vl);
    if (kl != strlen(m->keys[i]) || memcmp(k, m->keys[i], kl) != 0 || vl != m->vlen[i] ||
        memcmp(v, m->val[i], vl) != 0) {
        fprintf(stderr, "iterator at %.*s (%zu-byte value), want %s (%zu bytes)\n", (int)kl, k, vl, m->keys[i],
                m->vlen[i]);
        return 0;
    }
    return 1;
}

static int next_in(const model *m, const range *r, int i) {
    for (i++; i < UNIV; i++)
        if (in_range(m, i, r)) return i;
    return UNIV;
}

static int prev_in(const model *m, const range *r, int i) {
    for (i--; i >= 0; i--)
        if (in_range(m, i, r)) return i;
    return -1;
}

/* Full scans both ways, then random seeks and steps. */
static int check_iter(weir_txn *t, const model *m, const range *r, test_rng *rng) {
    weir_readopts ro = {0};
    if (r->lower) ro.lower_bound = r->lower, ro.lower_bound_len = strlen(r->lower);
    if (r->upper) ro.upper_bound = r->upper, ro.upper_bound_len = strlen(r->upper);
    if (r->prefix) ro.prefix = r->prefix, ro.prefix_len = strlen(r->prefix);
    weir_iter *it = NULL;
    if (weir_txn_iter_create(t, &ro, &it) != WEIR_OK) return 0;
    int ok = 1;
    int i = next_in(m, r, -1);
    for (weir_iter_seek_first(it); ok && i < UNIV; weir_iter_next(it), i = next_in(m, r, i)) ok = at(it, m, i);
    ok = ok && at(it, m, UNIV);
    i = prev_in(m, r, UNIV);
    for (weir_iter_seek_last(it); ok && i >= 0; weir_iter_prev(it), i = prev_in(m, r, i)) ok = at(it, m, i);
    ok = ok && at(it, m, -1);
    for (int round = 0; ok && round < 60; round++) {
        /* A target between or on universe keys. */
        char target[16];
        int base = (int)test_rng_uniform(rng, UNIV);
        int between = (int)test_rng_uniform(rng, 2);
        snprintf(target, sizeof target, "%s%s", m->keys[base], between ? "!" : "");
        if (test_rng_uniform(rng, 2)) {
            weir_iter_seek(it, target, strlen(target));
            i = between ? base : base - 1;
            i = next_in(m, r, i);
        } else {
            weir_iter_seek_for_prev(it, target, strlen(target));
            i = prev_in(m, r, base + 1);
        }
        ok = at(it, m, i);
        for (int step = 0; ok && step < 12 && i >= 0 && i < UNIV; step++) {
            if (test_rng_uniform(rng, 2)) {
                weir_iter_next(it);
                i = next_in(m, r, i);
            } else {
                weir_iter_prev(it);
                i = prev_in(m, r, i);
            }
            ok = at(it, m, i);
        }
    }
    weir_iter_destroy(it);
    return ok;
}

static int check_gets(weir_txn *t, const model *m) {
    for (int i = 0; i < UNIV; i++) {
        void *v = NULL;
        size_t vl = 0;
        int rc = weir_txn_get(t, m->keys[i], strlen(m->keys[i]), &v, &vl);
        int ok = m->present[i] ? rc == WEIR_OK && vl == m->vlen[i] && memcmp(v, m->val[i], vl) == 0
                               : rc == WEIR_NOT_FOUND;
        weir_free(v);
        if (!ok) {
            fprintf(stderr, "txn get %s: %s, want %s\n", m->keys[i], weir_status_name(rc),
                    m->present[i] ? "present" : "absent");
            return 0;
        }
    }
    return 1;
}

/* Random txn ops applied to the txn and the model alike. */
static int random_txn_ops(weir_txn *t, model *m, test_rng *rng, int n) {
    for (int j = 0; j < n; j++) {
        int i = (int)test_rng_uniform(rng, UNIV);
        const char *k = m->keys[i];
        int kind = (int)test_rng_uniform(rng, 3);
        if (kind == 0) {
            if (weir_txn_delete(t, k, strlen(k)) != WEIR_OK) return 0;
            m->present[i] = 0;
        } else if (i < 40 && kind == 1) {
            int64_t d = (int64_t)test_rng_uniform(rng, 1000) - 500;
            if (add_s(t, k, d) != WEIR_OK) return 0;
            int64_t cur = m->present[i] ? get_i64(m->val[i]) : 0;
            put_i64(m->val[i], cur + d);
            m->vlen[i] = 8;
            m->present[i] = 1;
        } else if (i < 40) {
            put_i64(m->val[i], (int64_t)test_rng_next(rng));
            m->vlen[i] = 8;
            m->present[i] = 1;
            if (weir_txn_put(t, k, strlen(k), m->val[i], 8) != WEIR_OK) return 0;
        } else {
            m->vlen[i] = (size_t)snprintf(m->val[i], sizeof m->val[i], "t%" PRIu64, test_rng_uniform(rng, 1000000));
            m->present[i] = 1;
            if (weir_txn_put(t, k, strlen(k), m->val[i], m->vlen[i]) != WEIR_OK) return 0;
        }
    }
    return 1;
}

/* The DB holds values in tables and the memtable, deletions, a range
 * tombstone and merge operands; after the transaction begins, other
 * commits change everything (they must stay invisible to it). */
TEST(iterator_merges_own_writes_over_snapshot) {
    uint64_t seed = test_seed_from_env();
    printf("seed=%" PRIu64 "\n", seed);
    test_rng rng;
    test_rng_seed(&rng, seed);
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-iter");
    weir_db *db = open_db(dir, 64 * 1024);
    CHECK(db != NULL);
    model *m = malloc(sizeof *m), *snapm = malloc(sizeof *snapm);
    CHECK(m && snapm);
    model_init(m);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < UNIV; i++) {
            uint64_t x = test_rng_uniform(&rng, 10);
            if (x < 4) {
                char v[40];
                int vl;
                if (i < 40) {
                    put_i64(v, (int64_t)x);
                    vl = 8;
                } else {
                    vl = snprintf(v, sizeof v, "db%d-%d", round, i);
                }
                CHECK_OK(weir_put(db, NULL, m->keys[i], strlen(m->keys[i]), v, (size_t)vl));
            } else if (x < 6) {
                CHECK_OK(weir_delete(db, NULL, m->keys[i], strlen(m->keys[i])));
            } else if (x < 8 && i < 40) {
                CHECK_OK(weir_add_int64(db, NULL, m->keys[i], strlen(m->keys[i]), (int64_t)x));
            }
        }
        if (round == 1) CHECK_OK(weir_flush(db));
        if (round == 2) CHECK_OK(weir_delete_range(db, NULL, "k100", 4, "k130", 4));
    }
    weir_txn *t;
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    /* The model starts as the DB at begin. */
    weir_iter *dbit;
    CHECK_OK(weir_iter_create(db, NULL, &dbit));
    CHECK(model_load(m, dbit));
    weir_iter_destroy(dbit);
    /* An empty transaction's iterator is the snapshot. */
    static const range ranges[] = {{NULL, NULL, NULL},
                                   {"k050", "k150", NULL},
                                   {NULL, NULL, "k1"},
                                   {"c010", "k010", NULL},
                                   {"k120", NULL, "k1"},
                                   {NULL, "c020", NULL}};
    const int nranges = (int)(sizeof ranges / sizeof ranges[0]);
    CHECK(check_iter(t, m, &ranges[0], &rng));

    /* Commits after begin: overwrite, delete, add, range-delete, new keys. */
    for (int i = 0; i < UNIV; i += 3) CHECK_OK(put_s(db, m->keys[i], "later"));
    for (int i = 1; i < UNIV; i += 7) CHECK_OK(weir_delete(db, NULL, m->keys[i], strlen(m->keys[i])));
    for (int i = 2; i < 40; i += 5) CHECK_OK(weir_add_int64(db, NULL, m->keys[i], strlen(m->keys[i]), 1000));
    CHECK_OK(put_s(db, "k050x", "later"));
    CHECK_OK(put_s(db, "a", "later"));
    CHECK_OK(put_s(db, "z", "later"));
    CHECK_OK(weir_delete_range(db, NULL, "k000", 4, "k080", 4));
    CHECK(check_iter(t, m, &ranges[0], &rng));

    weir_iter *old = NULL;
    for (int round = 0; round < 6; round++) {
        CHECK(random_txn_ops(t, m, &rng, 40));
        if (round == 3) CHECK_OK(weir_flush(db)); /* the snapshot's data moves to a table */
        CHECK(check_gets(t, m));
        for (int r = 0; r < nranges; r++) CHECK(check_iter(t, m, &ranges[r], &rng));
        if (round == 1) {
            /* An iterator keeps showing the writes made before it. */
            *snapm = *m;
            CHECK_OK(weir_txn_iter_create(t, NULL, &old));
        }
    }
    CHECK(old != NULL);
    weir_iter_seek_first(old);
    int i = next_in(snapm, &ranges[0], -1);
    for (; i < UNIV; weir_iter_next(old), i = next_in(snapm, &ranges[0], i)) CHECK(at(old, snapm, i));
    CHECK(at(old, snapm, UNIV));
    weir_iter_destroy(old);
    weir_readopts bad = {0};
    weir_snapshot *s;
    CHECK_OK(weir_snapshot_create(db, &s));
    bad.snapshot = s;
    weir_iter *it = (weir_iter *)1;
    CHECK_STATUS(weir_txn_iter_create(t, &bad, &it), WEIR_INVALID);
    CHECK(it == NULL);
    weir_snapshot_release(db, s);
    weir_txn_destroy(t); /* rolls back */
    /* The rollback left the later commits alone. */
    CHECK(db_reads(db, "z", "later"));
    CHECK(db_reads(db, "k050x", NULL)); /* under the later range deletion */
    CHECK(db_reads(db, "k000", NULL));
    free(m);
    free(snapm);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- isolation and conflicts ----------------------------------------------------- */

TEST(isolation_from_later_commits) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-iso");
    weir_db *db = open_db(dir, 0);
    CHECK(db != NULL);
    CHECK_OK(put_s(db, "x", "old"));
    weir_txn *t;
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(put_s(db, "x", "new"));
    CHECK_OK(put_s(db, "y", "new"));
    CHECK(txn_reads(t, "x", "old"));
    CHECK(txn_reads(t, "y", NULL));
    weir_iter *it;
    CHECK_OK(weir_txn_iter_create(t, NULL, &it));
    weir_iter_seek_first(it);
    CHECK(weir_iter_valid(it));
    size_t vl;
    const char *v = weir_iter_value(it, &vl);
    CHECK(vl == 3 && memcmp(v, "old", 3) == 0);
    weir_iter_next(it);
    CHECK(!weir_iter_valid(it));
    weir_iter_destroy(it);
    /* Plain gets are not tracked: x changed, yet the commit goes through. */
    CHECK_OK(weir_txn_put(t, "z", 1, "txn", 3));
    CHECK_OK(weir_txn_commit(t));
    weir_txn_destroy(t);
    CHECK(db_reads(db, "z", "txn"));
    CHECK(db_reads(db, "x", "new"));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Begin a txn that reads `key` for update and writes "out"; then run
 * `interfere` (another writer); commit and return its status. */
typedef int (*interfere_fn)(weir_db *db);

static int run_conflict_case(weir_db *db, const char *key, int track_all, int use_for_update, interfere_fn f) {
    weir_txnopts o = {.sync = WEIR_SYNC_DEFAULT, .track_all_reads = track_all};
    weir_txn *t;
    int rc = weir_txn_begin(db, &o, &t);
    if (rc != WEIR_OK) return -1;
    void *v = NULL;
    size_t vl;
    rc = use_for_update ? weir_txn_get_for_update(t, key, strlen(key), &v, &vl)
                        : weir_txn_get(t, key, strlen(key), &v, &vl);
    weir_free(v);
    if (rc != WEIR_OK && rc != WEIR_NOT_FOUND) return -1;
    if (weir_txn_put(t, "out", 3, "written", 7) != WEIR_OK) return -1;
    if (f && f(db) != WEIR_OK) return -1;
    rc = weir_txn_commit(t);
    weir_txn_destroy(t);
    return rc;
}

static int put_k(weir_db *db) { return put_s(db, "k", "other"); }
static int del_k(weir_db *db) { return weir_delete(db, NULL, "k", 1); }
static int add_k(weir_db *db) { return weir_add_int64(db, NULL, "cnt", 3, 1); }
static int range_k(weir_db *db) { return weir_delete_range(db, NULL, "j", 1, "l", 1); }
static int put_other(weir_db *db) { return put_s(db, "unrelated", "x"); }
static int put_k_flush(weir_db *db) {
    int rc = put_s(db, "k", "other");
    if (rc == WEIR_OK) rc = weir_flush(db);
    if (rc == WEIR_OK) rc = weir_compact_range(db, NULL, 0, NULL, 0);
    return rc;
}

TEST(conflicts_on_read_keys) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-conflict");
    weir_db *db = open_db(dir, 0);
    CHECK(db != NULL);
    CHECK_OK(put_s(db, "k", "v0"));
    CHECK_EQ_INT(run_conflict_case(db, "k", 0, 1, put_k), WEIR_CONFLICT);
    CHECK(strstr(weir_errmsg(), "\"k\"") != NULL && strstr(weir_errmsg(), "retry") != NULL);
    CHECK(db_reads(db, "out", NULL)); /* nothing written */
    CHECK_EQ_INT(run_conflict_case(db, "k", 0, 1, del_k), WEIR_CONFLICT);
    CHECK_OK(put_s(db, "k", "v1"));
    CHECK_EQ_INT(run_conflict_case(db, "k", 0, 1, range_k), WEIR_CONFLICT);
    /* An absent key read for update conflicts when someone creates it. */
    CHECK_EQ_INT(run_conflict_case(db, "k", 0, 1, put_k), WEIR_CONFLICT);
    CHECK_EQ_INT(run_conflict_case(db, "cnt", 0, 1, add_k), WEIR_CONFLICT);
    /* The newer write found in a table after flush + compaction. */
    CHECK_EQ_INT(run_conflict_case(db, "k", 0, 1, put_k_flush), WEIR_CONFLICT);
    CHECK(db_reads(db, "out", NULL));
    /* track_all_reads: a plain get counts. */
    CHECK_EQ_INT(run_conflict_case(db, "k", 1, 0, put_k), WEIR_CONFLICT);
    /* Untracked: a plain get of a changed key, or a change elsewhere. */
    CHECK_EQ_INT(run_conflict_case(db, "k", 0, 0, put_k), WEIR_OK);
    CHECK_OK(weir_delete(db, NULL, "out", 3));
    CHECK_EQ_INT(run_conflict_case(db, "k", 0, 1, put_other), WEIR_OK);
    CHECK(db_reads(db, "out", "written"));
    CHECK_EQ_INT(run_conflict_case(db, "k", 1, 1, NULL), WEIR_OK);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(conflicts_on_written_keys) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-wconflict");
    weir_db *db = open_db(dir, 0);
    CHECK(db != NULL);
    /* A blind put, delete and merge each conflict with a later commit. */
    for (int kind = 0; kind < 3; kind++) {
        weir_txn *t;
        CHECK_OK(weir_txn_begin(db, NULL, &t));
        CHECK_OK(weir_txn_put(t, "mine", 4, "1", 1));
        if (kind == 0) CHECK_OK(weir_txn_put(t, "w", 1, "txn", 3));
        if (kind == 1) CHECK_OK(weir_txn_delete(t, "w", 1));
        if (kind == 2) CHECK_OK(add_s(t, "w", 1));
        CHECK_OK(put_s(db, "w", "other"));
        CHECK_STATUS(weir_txn_commit(t), WEIR_CONFLICT);
        CHECK(strstr(weir_errmsg(), "\"w\"") != NULL);
        weir_txn_destroy(t);
        CHECK(db_reads(db, "mine", NULL));
        CHECK(db_reads(db, "w", "other"));
    }
    /* Keys with unprintable bytes are escaped in the message. */
    weir_txn *t;
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(weir_txn_put(t, "\x01q\"", 3, "", 0));
    CHECK_OK(weir_put(db, NULL, "\x01q\"", 3, "", 0));
    CHECK_STATUS(weir_txn_commit(t), WEIR_CONFLICT);
    CHECK(strstr(weir_errmsg(), "\\x01q\\x22") != NULL);
    weir_txn_destroy(t);
    /* Two transactions writing the same key: the first commit wins. */
    weir_txn *a, *b;
    CHECK_OK(weir_txn_begin(db, NULL, &a));
    CHECK_OK(weir_txn_begin(db, NULL, &b));
    CHECK_OK(weir_txn_put(a, "same", 4, "a", 1));
    CHECK_OK(weir_txn_put(b, "same", 4, "b", 1));
    CHECK_OK(weir_txn_commit(a));
    CHECK_STATUS(weir_txn_commit(b), WEIR_CONFLICT);
    weir_txn_destroy(a);
    weir_txn_destroy(b);
    CHECK(db_reads(db, "same", "a"));
    /* Disjoint transactions both commit. */
    CHECK_OK(weir_txn_begin(db, NULL, &a));
    CHECK_OK(weir_txn_begin(db, NULL, &b));
    CHECK_OK(weir_txn_put(a, "ka", 2, "a", 1));
    CHECK_OK(weir_txn_put(b, "kb", 2, "b", 1));
    CHECK_OK(weir_txn_commit(b));
    CHECK_OK(weir_txn_commit(a));
    weir_txn_destroy(a);
    weir_txn_destroy(b);
    CHECK(db_reads(db, "ka", "a") && db_reads(db, "kb", "b"));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- finished transactions, bad arguments --------------------------------------- */

/* Commit skips the per-key check when nothing at all was committed since
 * the snapshot; any commit in between, even one write or a range deletion
 * at the very next sequence number, must still be checked key by key. */
TEST(commit_checks_keys_after_any_other_commit) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-fastpath");
    weir_db *db = open_db(dir, 0);
    CHECK(db != NULL);
    CHECK_OK(put_s(db, "k", "0"));
    weir_txn *t;
    /* Nothing in between: commits. */
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(weir_txn_put(t, "k", 1, "1", 1));
    CHECK_OK(weir_txn_commit(t));
    weir_txn_destroy(t);
    CHECK(db_reads(db, "k", "1"));
    /* A write to another key in between: checked, commits. */
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(weir_txn_put(t, "k", 1, "2", 1));
    CHECK_OK(put_s(db, "other", "x"));
    CHECK_OK(weir_txn_commit(t));
    weir_txn_destroy(t);
    CHECK(db_reads(db, "k", "2"));
    /* A range deletion covering the key in between: conflicts. */
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(weir_txn_put(t, "k", 1, "3", 1));
    CHECK_OK(weir_delete_range(db, NULL, "a", 1, "z", 1));
    CHECK_STATUS(weir_txn_commit(t), WEIR_CONFLICT);
    weir_txn_destroy(t);
    CHECK(db_reads(db, "k", NULL));
    /* A failed commit writes nothing: the next transaction, with nothing
     * in between, commits. */
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(weir_txn_put(t, "k", 1, "4", 1));
    CHECK_OK(weir_txn_commit(t));
    weir_txn_destroy(t);
    CHECK(db_reads(db, "k", "4"));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(finished_transactions_refuse_calls) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-finished");
    weir_db *db = open_db(dir, 0);
    CHECK(db != NULL);
    for (int how = 0; how < 3; how++) {
        weir_txn *t;
        CHECK_OK(weir_txn_begin(db, NULL, &t));
        CHECK_OK(weir_txn_put(t, "k", 1, "v", 1));
        const char *word;
        if (how == 0) {
            CHECK_OK(weir_txn_commit(t));
            word = "committed";
        } else if (how == 1) {
            CHECK_OK(weir_txn_rollback(t));
            word = "rolled back";
        } else {
            CHECK_OK(put_s(db, "k", "other"));
            CHECK_STATUS(weir_txn_commit(t), WEIR_CONFLICT);
            word = "failed";
        }
        void *v = (void *)1;
        size_t vl = 9;
        weir_iter *it = (weir_iter *)1;
        CHECK_STATUS(weir_txn_commit(t), WEIR_INVALID);
        CHECK(strstr(weir_errmsg(), word) != NULL);
        CHECK_STATUS(weir_txn_rollback(t), WEIR_INVALID);
        CHECK_STATUS(weir_txn_put(t, "k", 1, "v", 1), WEIR_INVALID);
        CHECK_STATUS(weir_txn_delete(t, "k", 1), WEIR_INVALID);
        CHECK_STATUS(add_s(t, "k", 1), WEIR_INVALID);
        CHECK_STATUS(weir_txn_get(t, "k", 1, &v, &vl), WEIR_INVALID);
        CHECK(v == NULL && vl == 0);
        CHECK_STATUS(weir_txn_get_for_update(t, "k", 1, &v, &vl), WEIR_INVALID);
        CHECK_STATUS(weir_txn_iter_create(t, NULL, &it), WEIR_INVALID);
        CHECK(it == NULL);
        weir_txn_destroy(t);
        if (how == 1) CHECK(db_reads(db, "k", "v")); /* from the first round only */
    }
    /* The snapshot is released when the transaction finishes. */
    char *n = NULL;
    CHECK_OK(weir_property(db, "weir.num-snapshots", &n));
    CHECK(strcmp(n, "0") == 0);
    weir_free(n);
    weir_txn *t;
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(weir_property(db, "weir.num-snapshots", &n));
    CHECK(strcmp(n, "1") == 0);
    weir_free(n);
    weir_txn_destroy(t); /* active: rolled back and released */
    CHECK_OK(weir_property(db, "weir.num-snapshots", &n));
    CHECK(strcmp(n, "0") == 0);
    weir_free(n);
    /* Empty and read-only transactions commit trivially. */
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    CHECK_OK(weir_txn_commit(t));
    weir_txn_destroy(t);
    CHECK_OK(weir_txn_begin(db, NULL, &t));
    void *v;
    size_t vl;
    CHECK_OK(weir_txn_get_for_update(t, "k", 1, &v, &vl));
    weir_free(v);
    CHECK_OK(put_s(db, "k", "changed"));
    CHECK_OK(weir_txn_commit(t));
    weir_txn_destroy(t);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

static int user_concat(void *arg, const void *key, size_t klen, const void *existing, size_t elen,
                       const void *operand, size_t olen, void **result, size_t *rlen) {
    (void)arg;
    (void)key;
    (void)klen;
    char *r = malloc(elen + olen + 1);
    if (!r) return WEIR_NO_MEMORY;
    if (elen) memcpy(r, existing, elen);
    if (olen) memcpy(r + elen, operand, olen);
    *result = r;
    *rlen = elen + olen;
    return WEIR_OK;
}

TEST(bad_arguments) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-args");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_merge_operator(o, 200, user_concat, NULL));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    weir_options_destroy(o);
    weir_txn *t = (weir_txn *)1;
    CHECK_STATUS(weir_txn_begin(NULL, NULL, &t), WEIR_INVALID);
    CHECK(t == NULL);
    CHECK_STATUS(weir_txn_begin(db, NULL, NULL), WEIR_INVALID);
    weir_txnopts bad = {.sync = (weir_sync_mode)9};
    CHECK_STATUS(weir_txn_begin(db, &bad, &t), WEIR_INVALID);
    void *v = NULL;
    size_t vl = 0;
    weir_iter *it;
    CHECK_STATUS(weir_txn_get(NULL, "k", 1, &v, &vl), WEIR_INVALID);
    CHECK_STATUS(weir_txn_get_for_update(NULL, "k", 1, &v, &vl), WEIR_INVALID);
    CHECK_STATUS(weir_txn_put(NULL, "k", 1, "v", 1), WEIR_INVALID);
    CHECK_STATUS(weir_txn_delete(NULL, "k", 1), WEIR_INVALID);
    CHECK_STATUS(weir_txn_merge(NULL, "k", 1, WEIR_MERGE_INT64_ADD, "12345678", 8), WEIR_INVALID);
    CHECK_STATUS(weir_txn_iter_create(NULL, NULL, &it), WEIR_INVALID);
    CHECK_STATUS(weir_txn_commit(NULL), WEIR_INVALID);
    CHECK_STATUS(weir_txn_rollback(NULL), WEIR_INVALID);
    weir_txn_destroy(NULL);

    weir_txnopts fs = {.sync = WEIR_SYNC_FSYNC, .track_all_reads = 0};
    CHECK_OK(weir_txn_begin(db, &fs, &t));
    CHECK_STATUS(weir_txn_get(t, NULL, 1, &v, &vl), WEIR_INVALID);
    CHECK_STATUS(weir_txn_get(t, "k", 1, NULL, &vl), WEIR_INVALID);
    CHECK_STATUS(weir_txn_get(t, "k", 1, &v, NULL), WEIR_INVALID);
    CHECK_STATUS(weir_txn_put(t, NULL, 1, "v", 1), WEIR_INVALID);
    CHECK_STATUS(weir_txn_put(t, "k", 1, NULL, 1), WEIR_INVALID);
    CHECK_STATUS(weir_txn_put(t, "k", (size_t)WEIR_MAX_KEY_SIZE + 1, "v", 1), WEIR_INVALID);
    CHECK_STATUS(weir_txn_delete(t, NULL, 2), WEIR_INVALID);
    CHECK_STATUS(weir_txn_merge(t, "k", 1, 0, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_txn_merge(t, "k", 1, 256, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_txn_merge(t, "k", 1, WEIR_MERGE_INT64_ADD, "short", 5), WEIR_INVALID);
    CHECK_STATUS(weir_txn_merge(t, "k", 1, 201, "x", 1), WEIR_INVALID); /* not registered */
    CHECK(strstr(weir_errmsg(), "not registered") != NULL);
    CHECK_STATUS(weir_txn_iter_create(t, NULL, NULL), WEIR_INVALID);
    /* Refused calls left nothing behind. */
    CHECK_STATUS(weir_txn_get(t, "k", 1, &v, &vl), WEIR_NOT_FOUND);
    /* NULL with length 0 is an empty key or value. */
    CHECK_OK(weir_txn_put(t, NULL, 0, NULL, 0));
    CHECK_OK(weir_txn_get(t, NULL, 0, &v, &vl));
    CHECK(v != NULL && vl == 0);
    weir_free(v);
    /* A registered user operator folds in reads and commits. */
    CHECK_OK(weir_txn_merge(t, "u", 1, 200, "ab", 2));
    CHECK_OK(weir_txn_merge(t, "u", 1, 200, "cd", 2));
    CHECK(txn_reads(t, "u", "abcd"));
    CHECK_OK(weir_txn_commit(t)); /* fsync commit */
    weir_txn_destroy(t);
    CHECK(db_reads(db, "u", "abcd"));
    CHECK(db_reads(db, "", ""));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- bank transfers ---------------------------------------------------------------- */

#define ACCOUNTS 1000
#define INITIAL 1000
#define HOT 4

typedef struct xfer {
    int from, to;
    int64_t amount;
} xfer;

typedef struct bank_thread {
    weir_db *db;
    int id;
    int max_xfers;
    double deadline_ms;
    uint64_t seed;
    xfer *log;
    int applied;
    uint64_t conflicts;
    int error;
    char errmsg[256];
} bank_thread;

static int account_key(char *out, int a) { return snprintf(out, 16, "acct%04d", a); }

/* One transfer inside t: read both accounts for update, write both. */
static int transfer(weir_txn *t, int from, int to, int64_t amount, int yield) {
    char kf[16], kt[16];
    int lf = account_key(kf, from), lt = account_key(kt, to);
    void *v;
    size_t vl;
    int rc = weir_txn_get_for_update(t, kf, (size_t)lf, &v, &vl);
    if (rc != WEIR_OK) return rc;
    int64_t bf = vl == 8 ? get_i64(v) : 0;
    weir_free(v);
    if (yield) sched_yield(); /* widens the race window on purpose */
    rc = weir_txn_get_for_update(t, kt, (size_t)lt, &v, &vl);
    if (rc != WEIR_OK) return rc;
    int64_t bt = vl == 8 ? get_i64(v) : 0;
    weir_free(v);
    char nf[8], nt[8];
    put_i64(nf, bf - amount);
    put_i64(nt, bt + amount);
    rc = weir_txn_put(t, kf, (size_t)lf, nf, 8);
    if (rc == WEIR_OK) rc = weir_txn_put(t, kt, (size_t)lt, nt, 8);
    return rc;
}

static void *bank_main(void *arg) {
    bank_thread *b = arg;
    test_rng r;
    test_rng_seed(&r, b->seed);
    for (int n = 0; b->applied < b->max_xfers && now_ms() < b->deadline_ms; n++) {
        /* The first third of the run fights over a few hot accounts. */
        int hot = b->applied < b->max_xfers / 3;
        int span = hot ? HOT : ACCOUNTS;
        int from = (int)test_rng_uniform(&r, (uint64_t)span);
        int to = (int)test_rng_uniform(&r, (uint64_t)span - 1);
        if (to >= from) to++;
        int64_t amount = 1 + (int64_t)test_rng_uniform(&r, 100);
        for (;;) {
            weir_txn *t;
            int rc = weir_txn_begin(b->db, NULL, &t);
            if (rc == WEIR_OK) rc = transfer(t, from, to, amount, hot);
            if (rc == WEIR_OK) rc = weir_txn_commit(t);
            weir_txn_destroy(t);
            if (rc == WEIR_OK) break;
            if (rc == WEIR_CONFLICT) {
                b->conflicts++;
                continue;
            }
            b->error = rc;
            snprintf(b->errmsg, sizeof b->errmsg, "%s: %s", weir_status_name(rc), weir_errmsg());
            return NULL;
        }
        b->log[b->applied++] = (xfer){from, to, amount};
    }
    return NULL;
}

static int init_accounts(weir_db *db) {
    weir_batch *b = weir_batch_create();
    if (!b) return WEIR_NO_MEMORY;
    char k[16], v[8];
    put_i64(v, INITIAL);
    int rc = WEIR_OK;
    for (int a = 0; a < ACCOUNTS && rc == WEIR_OK; a++) {
        int kl = account_key(k, a);
        rc = weir_batch_put(b, k, (size_t)kl, v, 8);
    }
    if (rc == WEIR_OK) rc = weir_write(db, NULL, b);
    weir_batch_destroy(b);
    return rc;
}

/* Read every balance into bal[]; 0 on a read failure. */
static int read_balances(weir_db *db, int64_t *bal) {
    char k[16];
    for (int a = 0; a < ACCOUNTS; a++) {
        int kl = account_key(k, a);
        void *v;
        size_t vl;
        if (weir_get_alloc(db, NULL, k, (size_t)kl, &v, &vl) != WEIR_OK || vl != 8) {
            fprintf(stderr, "account %d: %s\n", a, weir_errmsg());
            return 0;
        }
        bal[a] = get_i64(v);
        weir_free(v);
    }
    return 1;
}

TEST(bank_transfers_conserve_money) {
    uint64_t seed = test_seed_from_env();
    printf("seed=%" PRIu64 "\n", seed);
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-bank");
    weir_db *db = open_db(dir, 256 * 1024); /* flushes happen during the run */
    CHECK(db != NULL);
    CHECK_OK(init_accounts(db));
    enum { THREADS = 4, MAX_XFERS = 2500 };
    bank_thread th[THREADS];
    pthread_t tid[THREADS];
    double deadline = now_ms() + 3000;
    for (int i = 0; i < THREADS; i++) {
        memset(&th[i], 0, sizeof th[i]);
        th[i].db = db;
        th[i].id = i;
        th[i].max_xfers = MAX_XFERS;
        th[i].deadline_ms = deadline;
        th[i].seed = seed + (uint64_t)i * 7919;
        th[i].log = malloc(sizeof(xfer) * MAX_XFERS);
        CHECK(th[i].log != NULL);
        CHECK(pthread_create(&tid[i], NULL, bank_main, &th[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(tid[i], NULL);
    int64_t *want = calloc(ACCOUNTS, sizeof *want), *got = calloc(ACCOUNTS, sizeof *got);
    CHECK(want && got);
    for (int a = 0; a < ACCOUNTS; a++) want[a] = INITIAL;
    uint64_t conflicts = 0;
    int applied = 0, errors = 0;
    for (int i = 0; i < THREADS; i++) {
        if (th[i].error) {
            fprintf(stderr, "thread %d: %s\n", i, th[i].errmsg);
            errors++;
        }
        conflicts += th[i].conflicts;
        applied += th[i].applied;
        for (int j = 0; j < th[i].applied; j++) {
            want[th[i].log[j].from] -= th[i].log[j].amount;
            want[th[i].log[j].to] += th[i].log[j].amount;
        }
        free(th[i].log);
    }
    printf("%d transfers applied, %" PRIu64 " conflicts retried\n", applied, conflicts);
    CHECK_EQ_INT(errors, 0);
    CHECK(applied >= THREADS * 50);
    CHECK(conflicts > 0);
    /* Check live, then again after a reopen (log replay and tables). */
    for (int pass = 0; pass < 2; pass++) {
        CHECK(read_balances(db, got));
        int64_t total = 0;
        for (int a = 0; a < ACCOUNTS; a++) {
            total += got[a];
            if (got[a] != want[a]) fprintf(stderr, "account %d: %" PRId64 ", want %" PRId64 "\n", a, got[a], want[a]);
            CHECK_EQ_INT(got[a], want[a]);
        }
        CHECK_EQ_INT(total, (int64_t)ACCOUNTS * INITIAL);
        if (pass == 0) {
            CHECK_OK(weir_close(db));
            db = open_db(dir, 256 * 1024);
            CHECK(db != NULL);
        }
    }
    free(want);
    free(got);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- bank transfers under SIGKILL --------------------------------------------------- */

/* Each committed transfer also writes "xfer/<id>" = from | to | amount in
 * the same transaction, so the store itself says which transfers are
 * applied: balances must equal the initial ones plus exactly those. */

#define CRASH_THREADS 2
#define MARK_READY UINT64_MAX
#define MARK_ERROR (UINT64_MAX - 1)

typedef struct crash_worker {
    weir_db *db;
    int fd;
    uint64_t first_id, stride;
    uint64_t seed;
} crash_worker;

static void send_u64(int fd, uint64_t v) {
    /* 8 bytes < PIPE_BUF: atomic even with two writers. */
    if (write(fd, &v, sizeof v) != (ssize_t)sizeof v) _exit(3);
}

static void *crash_worker_main(void *arg) {
    crash_worker *w = arg;
    test_rng r;
    test_rng_seed(&r, w->seed);
    weir_txnopts o = {.sync = WEIR_SYNC_FSYNC, .track_all_reads = 0};
    for (uint64_t id = w->first_id;; id += w->stride) {
        int span = test_rng_uniform(&r, 4) == 0 ? HOT : ACCOUNTS;
        int from = (int)test_rng_uniform(&r, (uint64_t)span);
        int to = (int)test_rng_uniform(&r, (uint64_t)span - 1);
        if (to >= from) to++;
        int64_t amount = 1 + (int64_t)test_rng_uniform(&r, 100);
        char xk[32], xv[16];
        int xl = snprintf(xk, sizeof xk, "xfer/%012" PRIu64, id);
        put_i64(xv, ((int64_t)from << 32) | (int64_t)to);
        put_i64(xv + 8, amount);
        int rc;
        do {
            weir_txn *t;
            rc = weir_txn_begin(w->db, &o, &t);
            if (rc == WEIR_OK) rc = transfer(t, from, to, amount, 0);
            if (rc == WEIR_OK) rc = weir_txn_put(t, xk, (size_t)xl, xv, 16);
            if (rc == WEIR_OK) rc = weir_txn_commit(t);
            weir_txn_destroy(t);
        } while (rc == WEIR_CONFLICT);
        if (rc != WEIR_OK) {
            fprintf(stderr, "crash child: transfer %" PRIu64 ": %s\n", id, weir_errmsg());
            send_u64(w->fd, MARK_ERROR);
            _exit(2);
        }
        send_u64(w->fd, id);
    }
    return NULL;
}

static weir_options *crash_opts(void) {
    weir_options *o = weir_options_create();
    if (!o) return NULL;
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_options_set_sync_mode(o, WEIR_SYNC_FSYNC);
    return o;
}

static void crash_child(const char *dir, uint64_t first_id, int fd, uint64_t seed) {
    weir_options *o = crash_opts();
    weir_db *db = NULL;
    if (!o || weir_open(dir, o, &db) != WEIR_OK) {
        fprintf(stderr, "crash child: open: %s\n", weir_errmsg());
        send_u64(fd, MARK_ERROR);
        _exit(2);
    }
    send_u64(fd, MARK_READY);
    crash_worker w[CRASH_THREADS];
    pthread_t tid[CRASH_THREADS];
    for (int i = 0; i < CRASH_THREADS; i++) {
        w[i] = (crash_worker){db, fd, first_id + (uint64_t)i, CRASH_THREADS, seed + (uint64_t)i};
        if (pthread_create(&tid[i], NULL, crash_worker_main, &w[i]) != 0) _exit(2);
    }
    for (;;) pause(); /* until killed */
}

typedef struct acked {
    uint64_t *ids;
    size_t n, cap;
    int ready, error, eof;
} acked;

/* Read acks for up to timeout_ms (negative: until EOF). */
static void pump(acked *a, int fd, double timeout_ms) {
    double end = now_ms() + (timeout_ms < 0 ? 1e12 : timeout_ms);
    while (!a->eof) {
        double left = end - now_ms();
        if (left <= 0) return;
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, left > 1e6 ? 1000000 : (int)left + 1);
        if (pr <= 0) continue;
        uint64_t v;
        ssize_t got = read(fd, &v, sizeof v);
        if (got <= 0) {
            a->eof = 1;
            return;
        }
        if (got != (ssize_t)sizeof v) { /* writes of 8 bytes arrive whole */
            a->error = 1;
            return;
        }
        if (v == MARK_READY) {
            a->ready = 1;
        } else if (v == MARK_ERROR) {
            a->error = 1;
        } else {
            if (a->n == a->cap) {
                a->cap = a->cap ? a->cap * 2 : 1024;
                a->ids = realloc(a->ids, a->cap * sizeof *a->ids);
                if (!a->ids) abort();
            }
            a->ids[a->n++] = v;
        }
    }
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

TEST(bank_transfers_survive_sigkill) {
    uint64_t seed = test_seed_from_env();
    printf("seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64 ")\n", seed, seed);
    int cycles = 20;
    const char *env = getenv("WEIR_TXN_CRASH_CYCLES");
    if (env && *env) cycles = atoi(env);
    test_rng r;
    test_rng_seed(&r, seed ^ 0xbadc0de);
    char dir[512];
    test_tmpdir(dir, sizeof dir, "txn-crash");
    weir_options *o = crash_opts();
    CHECK(o != NULL);
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(init_accounts(db));
    CHECK_OK(weir_close(db));
    int64_t *want = malloc(ACCOUNTS * sizeof *want), *got = malloc(ACCOUNTS * sizeof *got);
    CHECK(want && got);
    uint64_t next_id = 0, total_acked = 0, total_applied = 0, unacked_applied = 0;
    for (int c = 0; c < cycles; c++) {
        /* Kill soon after the fork (often during recovery) or 5-150 ms
         * into the transfers. */
        int early = test_rng_uniform(&r, 5) == 0;
        double delay = early ? (double)test_rng_uniform(&r, 8) : 5 + (double)test_rng_uniform(&r, 146);
        int pfd[2];
        CHECK(pipe(pfd) == 0);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            crash_child(dir, next_id, pfd[1], seed + (uint64_t)c * 104729);
        }
        close(pfd[1]);
        acked a;
        memset(&a, 0, sizeof a);
        if (!early) {
            double end = now_ms() + 60000;
            while (!a.ready && !a.eof && !a.error && now_ms() < end) pump(&a, pfd[0], 20);
        }
        pump(&a, pfd[0], delay);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        pump(&a, pfd[0], -1);
        close(pfd[0]);
        if (a.error || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
            fprintf(stderr, "cycle %d: the child failed on its own (status 0x%x); seed=%" PRIu64 "\n", c, st, seed);
            free(a.ids);
            CHECK(0);
        }
        CHECK_OK(weir_open(dir, o, &db));
        /* The transfers the store says are applied. */
        for (int i = 0; i < ACCOUNTS; i++) want[i] = INITIAL;
        uint64_t *applied = NULL;
        size_t napplied = 0, cap = 0;
        weir_readopts ro = {0};
        ro.prefix = "xfer/";
        ro.prefix_len = 5;
        weir_iter *it;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        int bad = 0;
        for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
            size_t kl, vl;
            const char *k = weir_iter_key(it, &kl);
            const char *v = weir_iter_value(it, &vl);
            char idtext[32];
            if (kl != 17 || vl != 16) {
                bad = 1;
                break;
            }
            memcpy(idtext, k + 5, 12);
            idtext[12] = 0;
            uint64_t id = strtoull(idtext, NULL, 10);
            int64_t ft = get_i64(v), amount = get_i64(v + 8);
            int from = (int)(ft >> 32), to = (int)(ft & 0xffffffff);
            if (from < 0 || from >= ACCOUNTS || to < 0 || to >= ACCOUNTS) {
                bad = 1;
                break;
            }
            want[from] -= amount;
            want[to] += amount;
            if (napplied == cap) {
                cap = cap ? cap * 2 : 1024;
                applied = realloc(applied, cap * sizeof *applied);
                CHECK(applied != NULL);
            }
            applied[napplied++] = id;
        }
        int st_it = weir_iter_status(it);
        weir_iter_destroy(it);
        CHECK_OK(st_it);
        CHECK(!bad);
        /* Every acknowledged transfer is there. */
        uint64_t max_id = next_id;
        for (size_t i = 0; i < napplied; i++)
            if (applied[i] + 1 > max_id) max_id = applied[i] + 1;
        /* "xfer/" keys are zero-padded: the scan returned ids sorted. */
        size_t missing = 0, this_cycle = 0;
        for (size_t i = 0; i < a.n; i++) {
            if (!napplied || !bsearch(&a.ids[i], applied, napplied, sizeof *applied, cmp_u64)) {
                if (missing++ < 5) fprintf(stderr, "cycle %d: acknowledged transfer %" PRIu64 " is missing\n", c, a.ids[i]);
            }
        }
        for (size_t i = 0; i < napplied; i++)
            if (applied[i] >= next_id) this_cycle++;
        total_acked += a.n;
        unacked_applied += this_cycle - (a.n < this_cycle ? a.n : this_cycle);
        total_applied = napplied;
        free(applied);
        free(a.ids);
        CHECK_EQ_INT(missing, 0);
        /* Balances are the initial ones plus exactly the applied transfers. */
        CHECK(read_balances(db, got));
        int64_t total = 0;
        for (int i = 0; i < ACCOUNTS; i++) {
            total += got[i];
            if (got[i] != want[i])
                fprintf(stderr, "cycle %d: account %d holds %" PRId64 ", want %" PRId64 "; seed=%" PRIu64 "\n", c, i,
                        got[i], want[i], seed);
            CHECK_EQ_INT(got[i], want[i]);
        }
        CHECK_EQ_INT(total, (int64_t)ACCOUNTS * INITIAL);
        CHECK_OK(weir_close(db));
        db = NULL;
        next_id = max_id + CRASH_THREADS;
    }
    printf("%d cycles: %" PRIu64 " transfers acknowledged, %" PRIu64 " applied in all, %" PRIu64
           " applied but not yet acknowledged when killed\n",
           cycles, total_acked, total_applied, unacked_applied);
    CHECK(total_acked > 0);
    weir_options_destroy(o);
    free(want);
    free(got);
    test_rmtree(dir);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        TEST_ENTRY(reads_own_writes),
        TEST_ENTRY(many_keys_in_one_transaction),
        TEST_ENTRY(iterator_merges_own_writes_over_snapshot),
        TEST_ENTRY(isolation_from_later_commits),
        TEST_ENTRY(conflicts_on_read_keys),
        TEST_ENTRY(conflicts_on_written_keys),
        TEST_ENTRY(commit_checks_keys_after_any_other_commit),
        TEST_ENTRY(finished_transactions_refuse_calls),
        TEST_ENTRY(bad_arguments),
        TEST_ENTRY(bank_transfers_conserve_money),
        TEST_ENTRY(bank_transfers_survive_sigkill),
        TEST_END,
    };
    return test_main(argc, argv, tests);
}
