/* test_memtable.c -- the skiplist memtable: order, versions, seeks, and
 * lock-free readers running against a live writer. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "bloom.h"
#include "dbformat.h"
#include "memtable.h"
#include "status.h"
#include "testutil.h"

static slice S(const char *s) { return slice_make(s, strlen(s)); }

/* Internal key built in a static-per-call buffer owned by the caller. */
static slice make_ikey(buf *b, slice user, uint64_t seq, int type) {
    buf_clear(b);
    if (ikey_append(b, user, seq, type) != 0) abort();
    return buf_slice(b);
}

TEST(empty_memtable) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    int type = -1;
    slice v;
    CHECK_EQ_INT(memtable_get(m, S("a"), MAX_SEQUENCE, &type, &v), 0);
    CHECK_EQ_INT(memtable_get(m, S(""), MAX_SEQUENCE, &type, &v), 0);
    CHECK_EQ_INT(memtable_count(m), 0);
    CHECK(memtable_memory_usage(m) > 0);
    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    iter_seek_last(it);
    CHECK(!iter_valid(it));
    buf b = BUF_INIT;
    iter_seek(it, make_ikey(&b, S("x"), 5, TYPE_VALUE));
    CHECK(!iter_valid(it));
    iter_next(it); /* harmless on an invalid iterator */
    iter_prev(it);
    CHECK(!iter_valid(it));
    CHECK_OK(iter_status(it));
    iter_destroy(it);
    buf_free(&b);
    memtable_unref(m);
}

/* Reference entry for the ordering tests. */
typedef struct ref_entry {
    char key[24];
    size_t klen;
    uint64_t seq;
    int type;
    char val[32];
    size_t vlen;
    buf ikey;
} ref_entry;

static int ref_cmp(const void *a, const void *b) {
    const ref_entry *x = a, *y = b;
    return ikey_compare(buf_slice(&x->ikey), buf_slice(&y->ikey));
}

TEST(iteration_matches_sorted_reference_both_ways) {
    test_rng rng;
    uint64_t seed = test_seed_from_env();
    printf("  seed %llu\n", (unsigned long long)seed);
    test_rng_seed(&rng, seed);
    enum { N = 4000 };
    ref_entry *refs = calloc(N, sizeof *refs);
    CHECK(refs != NULL);
    memtable *m = memtable_create();
    CHECK(m != NULL);
    for (int i = 0; i < N; i++) {
        ref_entry *r = &refs[i];
        /* Keys of 0..23 bytes over tiny alphabets: many shared first and
         * second 8-byte words (the comparator's two fast paths) and keys
         * that differ only past them, duplicate user keys with distinct
         * sequences, and keys that are prefixes of each other. */
        r->klen = (size_t)test_rng_uniform(&rng, 24);
        for (size_t j = 0; j < r->klen; j++)
            r->key[j] = j < 16 ? (char)("\0\xff"[test_rng_uniform(&rng, 2)])
                               : (char)("ab\0\xff"[test_rng_uniform(&rng, 4)]);
        r->seq = (uint64_t)i + 1;
        r->type = test_rng_uniform(&rng, 5) == 0 ? TYPE_DELETION : TYPE_VALUE;
        r->vlen = r->type == TYPE_VALUE ? (size_t)snprintf(r->val, sizeof r->val, "v%d", i) : 0;
        CHECK(ikey_append(&r->ikey, slice_make(r->key, r->klen), r->seq, r->type) == 0);
    }
    /* Insert in a shuffled order, not by sequence. */
    int *order = malloc(N * sizeof *order);
    CHECK(order != NULL);
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)test_rng_uniform(&rng, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < N; i++) {
        ref_entry *r = &refs[order[i]];
        CHECK_OK(memtable_add(m, r->seq, r->type, slice_make(r->key, r->klen), slice_make(r->val, r->vlen)));
    }
    CHECK_EQ_INT(memtable_count(m), N);
    /* Sequences are unique, so a get at an entry's own sequence finds it. */
    for (int i = 0; i < N; i++) {
        ref_entry *r = &refs[i];
        int type;
        slice v;
        CHECK_EQ_INT(memtable_get(m, slice_make(r->key, r->klen), r->seq, &type, &v), 1);
        CHECK_EQ_INT(type, r->type);
        if (type == TYPE_VALUE) CHECK(slice_equal(v, slice_make(r->val, r->vlen)));
    }
    CHECK(memtable_levels_ordered(m));
    qsort(refs, N, sizeof *refs, ref_cmp);

    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    int i = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it), i++) {
        CHECK(i < N);
        CHECK(slice_equal(iter_key(it), buf_slice(&refs[i].ikey)));
        CHECK(slice_equal(iter_value(it), slice_make(refs[i].val, refs[i].vlen)));
    }
    CHECK_EQ_INT(i, N);
    i = N - 1;
    for (iter_seek_last(it); iter_valid(it); iter_prev(it), i--) {
        CHECK(i >= 0);
        CHECK(slice_equal(iter_key(it), buf_slice(&refs[i].ikey)));
        CHECK(slice_equal(iter_value(it), slice_make(refs[i].val, refs[i].vlen)));
    }
    CHECK_EQ_INT(i, -1);
    /* Seek to every reference key exactly, then step both ways. */
    for (i = 0; i < N; i += 7) {
        iter_seek(it, buf_slice(&refs[i].ikey));
        CHECK(iter_valid(it));
        CHECK(slice_equal(iter_key(it), buf_slice(&refs[i].ikey)));
        iter_prev(it);
        if (i == 0) {
            CHECK(!iter_valid(it));
        } else {
            CHECK(iter_valid(it));
            CHECK(slice_equal(iter_key(it), buf_slice(&refs[i - 1].ikey)));
            iter_next(it);
            iter_next(it);
            if (i + 1 < N) {
                CHECK(iter_valid(it));
                CHECK(slice_equal(iter_key(it), buf_slice(&refs[i + 1].ikey)));
            } else {
                CHECK(!iter_valid(it));
            }
        }
    }
    /* A random walk of runs of next and prev steps: a prev after a next,
     * a seek or another prev must each land on the reference's neighbour. */
    int pos = (int)test_rng_uniform(&rng, N);
    iter_seek(it, buf_slice(&refs[pos].ikey));
    for (int step = 0; step < 20000; step++) {
        int run = 1 + (int)test_rng_uniform(&rng, 40);
        int forward = (int)test_rng_uniform(&rng, 2);
        for (int r = 0; r < run; r++) {
            if (forward) {
                iter_next(it);
                pos++;
            } else {
                iter_prev(it);
                pos--;
            }
            if (pos < 0 || pos >= N) {
                CHECK(!iter_valid(it));
                pos = (int)test_rng_uniform(&rng, N);
                if (test_rng_uniform(&rng, 2)) {
                    iter_seek(it, buf_slice(&refs[pos].ikey));
                } else {
                    pos = N - 1;
                    iter_seek_last(it);
                }
                break;
            }
            CHECK(iter_valid(it));
            CHECK(slice_equal(iter_key(it), buf_slice(&refs[pos].ikey)));
        }
    }
    iter_destroy(it);
    memtable_unref(m);
    for (i = 0; i < N; i++) buf_free(&refs[i].ikey);
    free(refs);
    free(order);
}

/* Seeks to keys the memtable may not hold, between runs of random
 * inserts: each must land on the first entry at or after the target. The
 * memtable's search accelerator is built from a snapshot of the list and
 * rebuilt only as the list grows by half, so most rounds search with nodes
 * it does not know; keys over a two-byte alphabet tie on their first and
 * second 8-byte words, so its search falls back to the nodes themselves. */
TEST(seeks_between_entries_as_the_list_grows) {
    test_rng rng;
    uint64_t seed = test_seed_from_env();
    printf("  seed %llu\n", (unsigned long long)seed);
    test_rng_seed(&rng, seed);
    enum { N = 24000, ROUNDS = 12, PROBES = 600 };
    ref_entry *refs = calloc(N, sizeof *refs);
    ref_entry *sorted = calloc(N, sizeof *sorted);
    CHECK(refs != NULL && sorted != NULL);
    memtable *m = memtable_create_with_filter(1 << 16);
    CHECK(m != NULL);
    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    buf target = BUF_INIT;
    int added = 0;
    for (int round = 1; round <= ROUNDS; round++) {
        int upto = N / ROUNDS * round;
        for (; added < upto; added++) {
            ref_entry *r = &refs[added];
            /* Half the keys are 16-byte decimals (distinct second words),
             * the rest 0..23 bytes of 0x00 / 0xff (ties, prefixes). */
            if (test_rng_uniform(&rng, 2)) {
                r->klen = (size_t)snprintf(r->key, sizeof r->key, "%016llu",
                                           (unsigned long long)test_rng_uniform(&rng, 1000000));
            } else {
                r->klen = (size_t)test_rng_uniform(&rng, 24);
                for (size_t j = 0; j < r->klen; j++) r->key[j] = (char)("\0\xff"[test_rng_uniform(&rng, 2)]);
            }
            r->seq = (uint64_t)added + 1;
            r->type = TYPE_VALUE;
            r->vlen = (size_t)snprintf(r->val, sizeof r->val, "v%d", added);
            CHECK(ikey_append(&r->ikey, slice_make(r->key, r->klen), r->seq, r->type) == 0);
            CHECK_OK(memtable_add(m, r->seq, r->type, slice_make(r->key, r->klen), slice_make(r->val, r->vlen)));
        }
        memcpy(sorted, refs, (size_t)added * sizeof *sorted);
        qsort(sorted, (size_t)added, sizeof *sorted, ref_cmp);
        for (int p = 0; p < PROBES; p++) {
            /* A stored key with a random sequence: before, between or after
             * its versions; or a stored key cut short or extended. */
            ref_entry *r = &refs[test_rng_uniform(&rng, (uint64_t)added)];
            size_t klen = r->klen;
            char key[32];
            memcpy(key, r->key, klen);
            int shape = (int)test_rng_uniform(&rng, 3);
            if (shape == 1 && klen > 0) klen = (size_t)test_rng_uniform(&rng, klen);
            if (shape == 2 && klen < 24) key[klen++] = (char)test_rng_uniform(&rng, 256);
            uint64_t seq = 1 + test_rng_uniform(&rng, (uint64_t)added + 1);
            slice t = make_ikey(&target, slice_make(key, klen), seq, TYPE_FOR_SEEK);
            size_t lo = 0, hi = (size_t)added;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (ikey_compare(buf_slice(&sorted[mid].ikey), t) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            iter_seek(it, t);
            if (lo == (size_t)added) {
                CHECK(!iter_valid(it));
            } else {
                CHECK(iter_valid(it));
                CHECK(slice_equal(iter_key(it), buf_slice(&sorted[lo].ikey)));
            }
            /* A point read at that sequence agrees with the seek. */
            int type;
            slice v;
            int found = memtable_get(m, slice_make(key, klen), seq, &type, &v);
            int expect = lo < (size_t)added && sorted[lo].klen == klen &&
                         memcmp(sorted[lo].key, key, klen) == 0;
            CHECK_EQ_INT(found, expect);
            if (found) CHECK(slice_equal(v, slice_make(sorted[lo].val, sorted[lo].vlen)));
        }
        CHECK(memtable_levels_ordered(m));
    }
    iter_destroy(it);
    memtable_unref(m);
    buf_free(&target);
    for (int i = 0; i < N; i++) buf_free(&refs[i].ikey);
    free(refs);
    free(sorted);
}

/* An ascending load: every insert lands ahead of the accelerator's
 * walk, so each rebuild meets more nodes than it was sized for and must
 * grow while it fills. Seeks between the keys, made as the load goes on,
 * land on the successor. */
TEST(accelerator_follows_an_ascending_load) {
    enum { N = 120000, STRIDE = 10 };
    memtable *m = memtable_create_with_filter(1 << 16);
    CHECK(m != NULL);
    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    buf target = BUF_INIT;
    test_rng rng;
    test_rng_seed(&rng, test_seed_from_env());
    char key[32], want[32];
    for (int i = 0; i < N; i++) {
        /* Key i is the decimal of STRIDE * i: a seek to a number between
         * two keys must land on the larger one. */
        snprintf(key, sizeof key, "k%015d", STRIDE * i);
        CHECK_OK(memtable_add(m, (uint64_t)i + 1, TYPE_VALUE, S(key), S("v")));
        if (i % 4000 != 3999) continue;
        for (int p = 0; p < 200; p++) {
            int n = (int)test_rng_uniform(&rng, (uint64_t)STRIDE * (uint64_t)(i + 1));
            snprintf(key, sizeof key, "k%015d", n);
            int expect = (n + STRIDE - 1) / STRIDE;
            iter_seek(it, make_ikey(&target, S(key), MAX_SEQUENCE, TYPE_FOR_SEEK));
            if (expect > i) {
                CHECK(!iter_valid(it));
                continue;
            }
            snprintf(want, sizeof want, "k%015d", STRIDE * expect);
            CHECK(iter_valid(it));
            CHECK(slice_equal(ikey_user(iter_key(it)), S(want)));
        }
    }
    CHECK(memtable_levels_ordered(m));
    iter_destroy(it);
    memtable_unref(m);
    buf_free(&target);
}

/* get at seq must return the newest version with sequence <= seq. */
static int int_cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Inserts that start from the previous insert's splice (ascending runs)
 * mixed with jumps back and forth: every key must still be found by a
 * search, which walks the upper levels, and iteration must be sorted. */
TEST(ascending_runs_and_jumps_keep_every_level_sorted) {
    test_rng rng;
    uint64_t seed = test_seed_from_env();
    printf("  seed %llu\n", (unsigned long long)seed);
    test_rng_seed(&rng, seed);
    enum { N = 20000 };
    int *order = malloc(N * sizeof *order);
    CHECK(order != NULL);
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)test_rng_uniform(&rng, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* Sort chunks of 1 to 300 keys: each chunk ascends, chunks jump. The
     * first chunk is long and the last is sorted descending. */
    int at = 0;
    while (at < N) {
        int len = at == 0 ? 3000 : 1 + (int)test_rng_uniform(&rng, 300);
        if (len > N - at) len = N - at;
        qsort(order + at, (size_t)len, sizeof *order, int_cmp);
        if (at + len == N)
            for (int a = at, b = N - 1; a < b; a++, b--) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
        at += len;
    }
    memtable *m = memtable_create_with_filter(64 * 1024);
    CHECK(m != NULL);
    char key[16], val[16];
    for (int i = 0; i < N; i++) {
        int klen = snprintf(key, sizeof key, "k%08d", order[i]);
        int vlen = snprintf(val, sizeof val, "v%d", order[i]);
        CHECK_OK(memtable_add(m, (uint64_t)i + 1, TYPE_VALUE, slice_make(key, (size_t)klen),
                              slice_make(val, (size_t)vlen)));
    }
    CHECK(memtable_levels_ordered(m));
    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    int n = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it), n++) {
        int klen = snprintf(key, sizeof key, "k%08d", n);
        slice ik = iter_key(it);
        CHECK(ik.len == (size_t)klen + IKEY_TAG_SIZE && memcmp(ik.data, key, (size_t)klen) == 0);
    }
    CHECK_EQ_INT(n, N);
    for (int i = 0; i < N; i++) {
        int klen = snprintf(key, sizeof key, "k%08d", i);
        int type;
        slice v;
        CHECK_EQ_INT(memtable_get(m, slice_make(key, (size_t)klen), MAX_SEQUENCE, &type, &v), 1);
        int vlen = snprintf(val, sizeof val, "v%d", i);
        CHECK(slice_equal(v, slice_make(val, (size_t)vlen)));
        buf target = BUF_INIT;
        CHECK(ikey_append(&target, slice_make(key, (size_t)klen), MAX_SEQUENCE, TYPE_VALUE) == 0);
        iter_seek(it, buf_slice(&target));
        CHECK(iter_valid(it) && memcmp(iter_key(it).data, key, (size_t)klen) == 0);
        buf_free(&target);
    }
    iter_destroy(it);
    memtable_unref(m);
    free(order);
}

TEST(versions_visible_by_sequence) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    CHECK_OK(memtable_add(m, 40, TYPE_VALUE, S("k"), S("v40")));
    CHECK_OK(memtable_add(m, 10, TYPE_VALUE, S("k"), S("v10")));
    CHECK_OK(memtable_add(m, 30, TYPE_DELETION, S("k"), S("")));
    CHECK_OK(memtable_add(m, 20, TYPE_VALUE, S("k"), S("v20")));
    /* Neighbours that share a prefix or sort adjacent. */
    CHECK_OK(memtable_add(m, 15, TYPE_VALUE, S("j"), S("j15")));
    CHECK_OK(memtable_add(m, 25, TYPE_VALUE, S("ka"), S("ka25")));
    CHECK_OK(memtable_add(m, 5, TYPE_VALUE, slice_make("k\0", 2), S("k0")));

    int type;
    slice v;
    for (uint64_t seq = 0; seq < 10; seq++) CHECK_EQ_INT(memtable_get(m, S("k"), seq, &type, &v), 0);
    for (uint64_t seq = 10; seq < 60; seq++) {
        CHECK_EQ_INT(memtable_get(m, S("k"), seq, &type, &v), 1);
        if (seq < 20) {
            CHECK_EQ_INT(type, TYPE_VALUE);
            CHECK(slice_equal(v, S("v10")));
        } else if (seq < 30) {
            CHECK_EQ_INT(type, TYPE_VALUE);
            CHECK(slice_equal(v, S("v20")));
        } else if (seq < 40) {
            CHECK_EQ_INT(type, TYPE_DELETION);
        } else {
            CHECK_EQ_INT(type, TYPE_VALUE);
            CHECK(slice_equal(v, S("v40")));
        }
    }
    CHECK_EQ_INT(memtable_get(m, S("k"), MAX_SEQUENCE, &type, &v), 1);
    CHECK(slice_equal(v, S("v40")));
    /* Sequences beyond the maximum are clamped, not wrapped. */
    CHECK_EQ_INT(memtable_get(m, S("k"), UINT64_MAX, &type, &v), 1);
    CHECK(slice_equal(v, S("v40")));
    CHECK_EQ_INT(memtable_get(m, slice_make("k\0", 2), 4, &type, &v), 0);
    CHECK_EQ_INT(memtable_get(m, slice_make("k\0", 2), 5, &type, &v), 1);
    CHECK(slice_equal(v, S("k0")));
    CHECK_EQ_INT(memtable_get(m, S("ka"), 100, &type, &v), 1);
    CHECK(slice_equal(v, S("ka25")));
    CHECK_EQ_INT(memtable_get(m, S("kb"), 100, &type, &v), 0);
    CHECK_EQ_INT(memtable_get(m, S("i"), 100, &type, &v), 0);
    CHECK_EQ_INT(memtable_get(m, S("kaa"), 100, &type, &v), 0);
    CHECK_EQ_INT(memtable_get(m, S(""), 100, &type, &v), 0);

    /* The iterator shows all versions of k newest first. */
    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    buf b = BUF_INIT;
    iter_seek(it, make_ikey(&b, S("k"), MAX_SEQUENCE, TYPE_FOR_SEEK));
    uint64_t want[] = {40, 30, 20, 10};
    for (int i = 0; i < 4; i++) {
        CHECK(iter_valid(it));
        slice user;
        uint64_t seq;
        int t;
        CHECK(ikey_parse(iter_key(it), &user, &seq, &t));
        CHECK(slice_equal(user, S("k")));
        CHECK_EQ_INT(seq, want[i]);
        CHECK_EQ_INT(t, seq == 30 ? TYPE_DELETION : TYPE_VALUE);
        iter_next(it);
    }
    CHECK(iter_valid(it));
    CHECK(slice_equal(ikey_user(iter_key(it)), slice_make("k\0", 2)));
    iter_destroy(it);
    buf_free(&b);
    memtable_unref(m);
}

TEST(deletions_and_absent_keys) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    char key[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key%05d", i);
        CHECK_OK(memtable_add(m, (uint64_t)i + 1, TYPE_VALUE, S(key), S(key)));
    }
    for (int i = 0; i < 1000; i += 3) {
        snprintf(key, sizeof key, "key%05d", i);
        CHECK_OK(memtable_add(m, (uint64_t)i + 2000, TYPE_DELETION, S(key), S("")));
    }
    for (int i = 0; i < 1000; i++) {
        int type;
        slice v;
        snprintf(key, sizeof key, "key%05d", i);
        CHECK_EQ_INT(memtable_get(m, S(key), MAX_SEQUENCE, &type, &v), 1);
        if (i % 3 == 0) {
            CHECK_EQ_INT(type, TYPE_DELETION);
            CHECK_EQ_INT(v.len, 0);
            /* Before the deletion the value is still visible. */
            CHECK_EQ_INT(memtable_get(m, S(key), (uint64_t)i + 1999, &type, &v), 1);
            CHECK_EQ_INT(type, TYPE_VALUE);
        } else {
            CHECK_EQ_INT(type, TYPE_VALUE);
        }
        CHECK(slice_equal(type == TYPE_VALUE ? v : S(key), S(key)));
        snprintf(key, sizeof key, "key%05d+", i);
        CHECK_EQ_INT(memtable_get(m, S(key), MAX_SEQUENCE, &type, &v), 0);
    }
    CHECK_EQ_INT(memtable_count(m), 1000 + 334);
    memtable_unref(m);
}

TEST(empty_key_and_empty_value) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    CHECK_OK(memtable_add(m, 2, TYPE_VALUE, S("a"), S("A")));
    CHECK_OK(memtable_add(m, 1, TYPE_VALUE, slice_make(NULL, 0), slice_make(NULL, 0)));
    CHECK_OK(memtable_add(m, 3, TYPE_VALUE, S(""), S("empty")));
    int type;
    slice v;
    CHECK_EQ_INT(memtable_get(m, slice_make(NULL, 0), 1, &type, &v), 1);
    CHECK_EQ_INT(type, TYPE_VALUE);
    CHECK_EQ_INT(v.len, 0);
    CHECK_EQ_INT(memtable_get(m, S(""), 3, &type, &v), 1);
    CHECK(slice_equal(v, S("empty")));
    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    iter_seek_first(it);
    CHECK(iter_valid(it));
    CHECK_EQ_INT(iter_key(it).len, IKEY_TAG_SIZE);
    CHECK_EQ_INT(ikey_seq(iter_key(it)), 3);
    iter_next(it);
    CHECK_EQ_INT(ikey_seq(iter_key(it)), 1);
    iter_next(it);
    CHECK(slice_equal(ikey_user(iter_key(it)), S("a")));
    iter_prev(it);
    CHECK_EQ_INT(ikey_seq(iter_key(it)), 1);
    iter_prev(it);
    CHECK_EQ_INT(ikey_seq(iter_key(it)), 3);
    iter_prev(it);
    CHECK(!iter_valid(it));
    iter_destroy(it);
    memtable_unref(m);
}

TEST(large_keys_and_values) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    size_t klen = WEIR_MAX_KEY_SIZE, vlen = 3u << 20;
    char *k = malloc(klen), *val = malloc(vlen);
    CHECK(k && val);
    for (size_t i = 0; i < klen; i++) k[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < vlen; i++) val[i] = (char)(i * 7);
    size_t before = memtable_memory_usage(m);
    CHECK_OK(memtable_add(m, 1, TYPE_VALUE, S("small"), S("s")));
    CHECK_OK(memtable_add(m, 2, TYPE_VALUE, slice_make(k, klen), slice_make(val, vlen)));
    CHECK_OK(memtable_add(m, 3, TYPE_VALUE, S("zzz"), slice_make(val, 200000)));
    CHECK(memtable_memory_usage(m) >= before + klen + vlen + 200000);
    int type;
    slice v;
    CHECK_EQ_INT(memtable_get(m, slice_make(k, klen), 5, &type, &v), 1);
    CHECK_EQ_INT(v.len, vlen);
    CHECK(memcmp(v.data, val, vlen) == 0);
    CHECK_EQ_INT(memtable_get(m, slice_make(k, klen - 1), 5, &type, &v), 0);
    CHECK_EQ_INT(memtable_get(m, S("zzz"), 5, &type, &v), 1);
    CHECK_EQ_INT(v.len, 200000);
    CHECK_EQ_INT(memtable_get(m, S("small"), 5, &type, &v), 1);
    CHECK(slice_equal(v, S("s")));
    free(k);
    free(val);
    memtable_unref(m);
}

TEST(seek_semantics) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    CHECK_OK(memtable_add(m, 5, TYPE_VALUE, S("b"), S("b5")));
    CHECK_OK(memtable_add(m, 9, TYPE_VALUE, S("b"), S("b9")));
    CHECK_OK(memtable_add(m, 7, TYPE_VALUE, S("d"), S("d7")));
    iter *it = memtable_iter_create(m);
    CHECK(it != NULL);
    buf b = BUF_INIT;
    /* Before everything. */
    iter_seek(it, make_ikey(&b, S("a"), MAX_SEQUENCE, TYPE_FOR_SEEK));
    CHECK(iter_valid(it));
    CHECK(slice_equal(iter_value(it), S("b9")));
    /* At a snapshot between versions: the newest visible one. */
    iter_seek(it, make_ikey(&b, S("b"), 8, TYPE_FOR_SEEK));
    CHECK(iter_valid(it));
    CHECK(slice_equal(iter_value(it), S("b5")));
    /* Exact key including tag. */
    iter_seek(it, make_ikey(&b, S("b"), 9, TYPE_VALUE));
    CHECK(slice_equal(iter_value(it), S("b9")));
    /* Older than every version of b: moves on to the next user key. */
    iter_seek(it, make_ikey(&b, S("b"), 4, TYPE_FOR_SEEK));
    CHECK(iter_valid(it));
    CHECK(slice_equal(iter_value(it), S("d7")));
    /* Between user keys. */
    iter_seek(it, make_ikey(&b, S("c"), 0, TYPE_DELETION));
    CHECK(slice_equal(iter_value(it), S("d7")));
    /* Past the end. */
    iter_seek(it, make_ikey(&b, S("d"), 6, TYPE_FOR_SEEK));
    CHECK(!iter_valid(it));
    iter_seek(it, make_ikey(&b, S("e"), MAX_SEQUENCE, TYPE_FOR_SEEK));
    CHECK(!iter_valid(it));
    /* A target too short to be an internal key is taken as a bare user
     * key (before all its versions) rather than read out of bounds. */
    iter_seek(it, S("b"));
    CHECK(iter_valid(it));
    CHECK(slice_equal(iter_value(it), S("b9")));
    iter_seek(it, slice_make(NULL, 0));
    CHECK(iter_valid(it));
    CHECK(slice_equal(iter_value(it), S("b9")));
    /* seek_last then prev walks back through versions. */
    iter_seek_last(it);
    CHECK(slice_equal(iter_value(it), S("d7")));
    iter_prev(it);
    CHECK(slice_equal(iter_value(it), S("b5")));
    iter_prev(it);
    CHECK(slice_equal(iter_value(it), S("b9")));
    iter_prev(it);
    CHECK(!iter_valid(it));
    iter_destroy(it);
    buf_free(&b);
    memtable_unref(m);
}

TEST(rejects_invalid_entries) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    CHECK_STATUS(memtable_add(m, 1, 7, S("k"), S("v")), WEIR_INVALID);
    CHECK_STATUS(memtable_add(m, 1, -1, S("k"), S("v")), WEIR_INVALID);
    CHECK_STATUS(memtable_add(m, MAX_SEQUENCE + 1, TYPE_VALUE, S("k"), S("v")), WEIR_INVALID);
    CHECK_OK(memtable_add(m, MAX_SEQUENCE, TYPE_VALUE, S("k"), S("v")));
    CHECK_EQ_INT(memtable_count(m), 1);
    memtable_unref(m);
}

TEST(iterator_keeps_memtable_alive) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    CHECK_OK(memtable_add(m, 1, TYPE_VALUE, S("x"), S("y")));
    iter *it1 = memtable_iter_create(m);
    iter *it2 = memtable_iter_create(m);
    CHECK(it1 && it2);
    memtable_unref(m); /* the iterators hold the remaining references */
    iter_seek_first(it1);
    CHECK(iter_valid(it1));
    CHECK(slice_equal(iter_value(it1), S("y")));
    iter_destroy(it1);
    iter_seek_last(it2);
    CHECK(slice_equal(iter_value(it2), S("y")));
    iter_destroy(it2); /* frees the memtable; ASan reports a leak otherwise */
}

TEST(memory_usage_grows_with_entries) {
    memtable *m = memtable_create();
    CHECK(m != NULL);
    size_t start = memtable_memory_usage(m);
    char key[32], val[100];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "%08d", i * 7919 % 10000);
        CHECK_OK(memtable_add(m, (uint64_t)i + 1, TYPE_VALUE, S(key), slice_make(val, sizeof val)));
    }
    size_t used = memtable_memory_usage(m) - start;
    CHECK(used >= 10000 * (8 + 8 + 100));
    CHECK(used <= 10000 * (8 + 8 + 100) * 2);
    memtable_unref(m);
}

/* ---- one writer, several lock-free readers ------------------------------ */

enum { CONC_KEYS = 200000 };

typedef struct conc_state {
    memtable *m;
    _Atomic uint64_t published; /* keys [0, published) are in the memtable */
    _Atomic int writer_done;
    _Atomic int failures;
} conc_state;

typedef struct reader_arg {
    conc_state *st;
    uint64_t seed;
} reader_arg;

/* Key i in a scattered order so inserts land all over the list. */
static void conc_key(uint64_t i, char out[16]) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    snprintf(out, 17, "%016llx", (unsigned long long)x);
}

static void *conc_writer(void *arg) {
    conc_state *st = arg;
    char key[17];
    for (uint64_t i = 0; i < CONC_KEYS; i++) {
        conc_key(i, key);
        if (memtable_add(st->m, i + 1, TYPE_VALUE, slice_make(key, 16), slice_make(key, 16)) != WEIR_OK) {
            atomic_fetch_add(&st->failures, 1);
            break;
        }
        atomic_store_explicit(&st->published, i + 1, memory_order_release);
    }
    atomic_store(&st->writer_done, 1);
    return NULL;
}

static int conc_check_entry(iter *it) {
    slice user;
    uint64_t seq;
    int type;
    if (!ikey_parse(iter_key(it), &user, &seq, &type)) return 0;
    if (user.len != 16 || type != TYPE_VALUE || seq == 0 || seq > CONC_KEYS) return 0;
    char want[17];
    conc_key(seq - 1, want);
    return memcmp(user.data, want, 16) == 0 && slice_equal(iter_value(it), user);
}

static void *conc_reader(void *arg) {
    conc_state *st = ((reader_arg *)arg)->st;
    test_rng rng;
    test_rng_seed(&rng, ((reader_arg *)arg)->seed);
    char key[17];
    buf prevkey = BUF_INIT;
    int rounds = 0;
    while (!atomic_load(&st->writer_done) || rounds < 3) {
        rounds++;
        /* Point lookups of keys known to be published. */
        for (int j = 0; j < 2000; j++) {
            uint64_t n = atomic_load_explicit(&st->published, memory_order_acquire);
            if (n == 0) continue;
            uint64_t i = test_rng_uniform(&rng, n);
            conc_key(i, key);
            int type;
            slice v;
            if (memtable_get(st->m, slice_make(key, 16), MAX_SEQUENCE, &type, &v) != 1 ||
                type != TYPE_VALUE || !slice_equal(v, slice_make(key, 16))) {
                fprintf(stderr, "reader: published key %llu not found\n", (unsigned long long)i);
                atomic_fetch_add(&st->failures, 1);
                goto out;
            }
        }
        /* A short scan from a random point, forwards then backwards. */
        iter *it = memtable_iter_create(st->m);
        if (it == NULL) {
            atomic_fetch_add(&st->failures, 1);
            goto out;
        }
        uint64_t n = atomic_load_explicit(&st->published, memory_order_acquire);
        int bad = 0;
        if (n > 0) {
            conc_key(test_rng_uniform(&rng, n), key);
            buf t = BUF_INIT;
            if (ikey_append(&t, slice_make(key, 16), MAX_SEQUENCE, TYPE_FOR_SEEK) != 0) abort();
            iter_seek(it, buf_slice(&t));
            buf_free(&t);
            /* Published before the seek, so the seek must land on it. */
            if (!iter_valid(it) || memcmp(ikey_user(iter_key(it)).data, key, 16) != 0) bad = 1;
            buf_clear(&prevkey);
            for (int j = 0; j < 200 && !bad && iter_valid(it); j++, iter_next(it)) {
                if (!conc_check_entry(it)) bad = 1;
                else if (prevkey.len && ikey_compare(buf_slice(&prevkey), iter_key(it)) >= 0) bad = 1;
                if (buf_set(&prevkey, iter_key(it).data, iter_key(it).len) != 0) abort();
            }
            if (!bad && !iter_valid(it)) iter_seek_last(it);
            for (int j = 0; j < 50 && !bad && iter_valid(it); j++) {
                if (buf_set(&prevkey, iter_key(it).data, iter_key(it).len) != 0) abort();
                iter_prev(it);
                if (iter_valid(it) &&
                    (!conc_check_entry(it) || ikey_compare(iter_key(it), buf_slice(&prevkey)) >= 0))
                    bad = 1;
            }
        }
        /* Occasionally a full scan: ordered and at least n entries. */
        if (!bad && rounds % 8 == 0) {
            uint64_t count = 0;
            buf_clear(&prevkey);
            for (iter_seek_first(it); iter_valid(it) && !bad; iter_next(it), count++) {
                if (!conc_check_entry(it)) bad = 1;
                else if (prevkey.len && ikey_compare(buf_slice(&prevkey), iter_key(it)) >= 0) bad = 1;
                if (buf_set(&prevkey, iter_key(it).data, iter_key(it).len) != 0) abort();
            }
            if (!bad && count < n) bad = 1;
            /* And backwards: stepping back from the end must also meet
             * every entry published before the walk began. */
            count = 0;
            buf_clear(&prevkey);
            for (iter_seek_last(it); iter_valid(it) && !bad; iter_prev(it), count++) {
                if (!conc_check_entry(it)) bad = 1;
                else if (prevkey.len && ikey_compare(iter_key(it), buf_slice(&prevkey)) >= 0) bad = 1;
                if (buf_set(&prevkey, iter_key(it).data, iter_key(it).len) != 0) abort();
            }
            if (!bad && count < n) bad = 1;
        }
        iter_destroy(it);
        if (bad) {
            fprintf(stderr, "reader: malformed or out-of-order entry seen\n");
            atomic_fetch_add(&st->failures, 1);
            goto out;
        }
    }
out:
    buf_free(&prevkey);
    return NULL;
}

TEST(concurrent_readers_during_writes) {
    enum { READERS = 3 };
    conc_state st;
    st.m = memtable_create();
    CHECK(st.m != NULL);
    atomic_init(&st.published, 0);
    atomic_init(&st.writer_done, 0);
    atomic_init(&st.failures, 0);
    reader_arg args[READERS];
    pthread_t readers[READERS], writer;
    uint64_t seed = test_seed_from_env();
    printf("  seed %llu\n", (unsigned long long)seed);
    CHECK(pthread_create(&writer, NULL, conc_writer, &st) == 0);
    for (int i = 0; i < READERS; i++) {
        args[i].st = &st;
        args[i].seed = seed + (uint64_t)i;
        CHECK(pthread_create(&readers[i], NULL, conc_reader, &args[i]) == 0);
    }
    pthread_join(writer, NULL);
    for (int i = 0; i < READERS; i++) pthread_join(readers[i], NULL);
    CHECK_EQ_INT(atomic_load(&st.failures), 0);
    CHECK_EQ_INT(memtable_count(st.m), CONC_KEYS);
    /* Afterwards everything is there, in order. */
    iter *it = memtable_iter_create(st.m);
    CHECK(it != NULL);
    uint64_t count = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it)) count++;
    CHECK_EQ_INT(count, CONC_KEYS);
    iter_destroy(it);
    memtable_unref(st.m);
}

/* The filter + hash index fast path must answer exactly like the skiplist:
 * newest versions, older versions at older sequences, deletions, absent
 * keys, and keys inserted after the index filled up. */
static void check_lookup_matches(size_t filter_bytes, int nkeys) {
    memtable *m = memtable_create_with_filter(filter_bytes);
    CHECK(m != NULL);
    char key[32], val[32];
    uint64_t seq = 1;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < nkeys; i++) {
            int kl = snprintf(key, sizeof key, "k%07d", (i * 7919) % nkeys);
            int vl = snprintf(val, sizeof val, "v%d-%d", round, i);
            int type = (round == 2 && i % 5 == 0) ? TYPE_DELETION : TYPE_VALUE;
            CHECK_OK(memtable_add(m, seq++, type, slice_make(key, (size_t)kl), slice_make(val, (size_t)vl)));
        }
    }
    uint64_t probes[] = {seq, seq / 2, (uint64_t)nkeys + 3, 1};
    for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
        for (int i = 0; i < nkeys + 50; i++) {
            int kl = snprintf(key, sizeof key, "k%07d", i);
            slice k = slice_make(key, (size_t)kl);
            int t1 = -1, t2 = -1;
            uint64_t s1 = 0, s2 = 0;
            slice v1 = {0}, v2 = {0};
            int f1 = memtable_get_entry(m, k, probes[p], &t1, &s1, &v1);
            int f2 = memtable_lookup(m, k, bloom_hash(key, (size_t)kl), probes[p], &t2, &s2, &v2);
            CHECK_EQ_INT(f1, f2);
            if (f1) {
                CHECK_EQ_INT(t1, t2);
                CHECK_EQ_INT(s1, s2);
                CHECK(slice_equal(v1, v2));
            }
        }
    }
    memtable_unref(m);
}

TEST(lookup_fast_path_matches_skiplist) { check_lookup_matches(64 * 1024, 3000); }
/* A tiny index fills up: later keys fall back to the skiplist. */
TEST(lookup_after_index_fills_up) { check_lookup_matches(64, 2000); }

/* The write path's lookahead cursor (db_write.c) reads keys ahead of
 * batch_rep_iterate: it must see every op's key in order, whatever the
 * op's type, and stop cleanly at the end or at a damaged op. */
TEST(batch_lookahead_walks_every_key) {
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    CHECK_OK(weir_batch_put(b, "alpha", 5, "1", 1));
    CHECK_OK(weir_batch_delete(b, "beta", 4));
    CHECK_OK(weir_batch_put(b, "", 0, "", 0));
    CHECK_OK(weir_batch_delete_range(b, "c", 1, "d", 1));
    CHECK_OK(weir_batch_put(b, "gamma", 5, "2", 1));
    slice rep = buf_slice(&b->rep);
    const char *p = rep.data + BATCH_HEADER_SIZE, *limit = rep.data + rep.len;
    const char *want[] = {"alpha", "beta", "", "c", "gamma"};
    slice key;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(batch_rep_next_key(&p, limit, &key));
        CHECK(slice_equal(key, S(want[i])));
    }
    CHECK_EQ_INT(batch_rep_next_key(&p, limit, &key), 0);
    CHECK(p == limit);
    /* Cut inside the last op: the walk stops before it, without reading
     * past the cut. */
    p = rep.data + BATCH_HEADER_SIZE;
    int n = 0;
    while (batch_rep_next_key(&p, limit - 1, &key)) n++;
    CHECK_EQ_INT(n, 4);
    /* An unknown op type stops it too. */
    char bad[] = {(char)0x7f, 1, 'x'};
    p = bad;
    CHECK_EQ_INT(batch_rep_next_key(&p, bad + sizeof bad, &key), 0);
    /* Prefetching is only a hint: with and without a filter it changes
     * nothing a lookup sees. */
    memtable *plain = memtable_create(), *filtered = memtable_create_with_filter(4096);
    CHECK(plain != NULL && filtered != NULL);
    memtable_prefetch_key(plain, S("alpha"));
    memtable_prefetch_key(filtered, S("alpha"));
    int type = -1;
    slice v;
    CHECK_EQ_INT(memtable_get(filtered, S("alpha"), MAX_SEQUENCE, &type, &v), 0);
    memtable_unref(plain);
    memtable_unref(filtered);
    weir_batch_destroy(b);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        TEST_ENTRY(empty_memtable),
        TEST_ENTRY(iteration_matches_sorted_reference_both_ways),
        TEST_ENTRY(ascending_runs_and_jumps_keep_every_level_sorted),
        TEST_ENTRY(seeks_between_entries_as_the_list_grows),
        TEST_ENTRY(accelerator_follows_an_ascending_load),
        TEST_ENTRY(versions_visible_by_sequence),
        TEST_ENTRY(deletions_and_absent_keys),
        TEST_ENTRY(empty_key_and_empty_value),
        TEST_ENTRY(large_keys_and_values),
        TEST_ENTRY(seek_semantics),
        TEST_ENTRY(rejects_invalid_entries),
        TEST_ENTRY(iterator_keeps_memtable_alive),
        TEST_ENTRY(memory_usage_grows_with_entries),
        TEST_ENTRY(concurrent_readers_during_writes),
        TEST_ENTRY(lookup_fast_path_matches_skiplist),
        TEST_ENTRY(lookup_after_index_fills_up),
        TEST_ENTRY(batch_lookahead_walks_every_key),
        TEST_END,
    };
    return test_main(argc, argv, tests);
}
