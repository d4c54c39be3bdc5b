/* test_block.c -- data/index block format (block.c): builder round trips,
 * seeks in both directions, restart intervals, empty blocks, and damaged
 * blocks that must be reported as corruption without any out-of-bounds
 * read (blocks are copied into exact-size heap buffers so ASan sees one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "bloom.h"
#include "status.h"
#include "testutil.h"

static int bytewise(slice a, slice b) { return slice_compare(a, b); }

/* Keys "k000000".."k<n-1>" with a few sharing longer prefixes; values vary
 * in length (including empty) so offsets are irregular. */
static void make_key(char *out, size_t cap, int i) {
    snprintf(out, cap, "k%06d%s", i * 3, (i % 7 == 0) ? "-long-suffix-for-sharing" : "");
}

static void make_value(buf *v, int i) {
    buf_clear(v);
    int len = (i * 37) % 61;
    for (int j = 0; j < len; j++) {
        char c = (char)('a' + (i + j) % 26);
        buf_append(v, &c, 1);
    }
}

/* Build a block of n entries; returns a malloc'd exact-size copy. A hashed
 * block gets a hash index over the whole keys (as if each were a user key
 * with an empty tag). */
static char *build_block_hashed(int n, int restart_interval, int hashed, size_t *size) {
    block_builder b;
    if (hashed) block_builder_init_hashed(&b, restart_interval);
    else block_builder_init(&b, restart_interval);
    buf v = BUF_INIT;
    char k[64];
    for (int i = 0; i < n; i++) {
        make_key(k, sizeof k, i);
        make_value(&v, i);
        slice key = slice_make(k, strlen(k));
        int rc = hashed ? block_builder_add_hashed(&b, key, buf_slice(&v), bloom_hash(k, key.len))
                        : block_builder_add(&b, key, buf_slice(&v));
        if (rc != 0) {
            buf_free(&v);
            block_builder_free(&b);
            return NULL;
        }
    }
    slice s = block_builder_finish(&b);
    char *copy = malloc(s.len);
    memcpy(copy, s.data, s.len);
    *size = s.len;
    buf_free(&v);
    block_builder_free(&b);
    return copy;
}

static char *build_block(int n, int restart_interval, size_t *size) {
    return build_block_hashed(n, restart_interval, 0, size);
}

/* Check the iterator sits on entry i. */
static int at_entry(block_iter *it, int i) {
    char k[64];
    buf v = BUF_INIT;
    make_key(k, sizeof k, i);
    make_value(&v, i);
    int ok = block_iter_valid(it) && slice_equal(block_iter_key(it), slice_make(k, strlen(k))) &&
             slice_equal(it->value, buf_slice(&v));
    buf_free(&v);
    return ok;
}

static void round_trip(int n, int interval) {
    size_t size = 0;
    char *data = build_block(n, interval, &size);
    CHECK(data);
    block blk;
    CHECK_OK(block_parse(&blk, data, size));
    CHECK_EQ_INT(blk.num_restarts, n == 0 ? 0 : (n + interval - 1) / interval);
    block_iter it;
    block_iter_init(&it, &blk, bytewise);

    int i = 0;
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it), i++)
        CHECK(at_entry(&it, i));
    CHECK_EQ_INT(i, n);
    i = n - 1;
    for (block_iter_seek_last(&it); block_iter_valid(&it); block_iter_prev(&it), i--)
        CHECK(at_entry(&it, i));
    CHECK_EQ_INT(i, -1);

    char k[80];
    for (int j = 0; j < n; j++) {
        /* Exactly at the key. */
        make_key(k, sizeof k, j);
        block_iter_seek(&it, slice_make(k, strlen(k)));
        CHECK(at_entry(&it, j));
        /* Just after it: lands on the next one. */
        size_t len = strlen(k);
        k[len] = '\0';
        block_iter_seek(&it, slice_make(k, len + 1));
        if (j + 1 < n)
            CHECK(at_entry(&it, j + 1));
        else
            CHECK(!block_iter_valid(&it));
        /* Between the key and its successor ("k000003" < "k000004" <
         * "k000006"): the next entry too. */
        snprintf(k, sizeof k, "k%06d", j * 3 + 1);
        block_iter_seek(&it, slice_make(k, strlen(k)));
        if (j + 1 < n)
            CHECK(at_entry(&it, j + 1));
        else
            CHECK(!block_iter_valid(&it));
        /* Step back and forth around each key. */
        make_key(k, sizeof k, j);
        block_iter_seek(&it, slice_make(k, strlen(k)));
        block_iter_prev(&it);
        if (j > 0) {
            CHECK(at_entry(&it, j - 1));
            block_iter_next(&it);
            CHECK(at_entry(&it, j));
        } else {
            CHECK(!block_iter_valid(&it));
        }
    }
    block_iter_seek(&it, slice_make("", 0));
    if (n) CHECK(at_entry(&it, 0));
    block_iter_seek(&it, slice_make("z", 1));
    CHECK(!block_iter_valid(&it));
    CHECK_OK(block_iter_status(&it));
    CHECK_EQ_INT(it.corrupt, 0);
    block_iter_free(&it);
    free(data);
}

TEST(round_trip_restart_interval_1) {
    round_trip(1, 1);
    round_trip(2, 1);
    round_trip(1000, 1);
}

TEST(round_trip_restart_interval_16) {
    round_trip(1, 16);
    round_trip(15, 16);
    round_trip(16, 16);
    round_trip(17, 16);
    round_trip(3000, 16);
}

TEST(round_trip_odd_intervals) {
    round_trip(500, 2);
    round_trip(500, 7);
    round_trip(500, 1000); /* one restart for everything */
}

TEST(prefix_compression_shrinks_block) {
    size_t s1 = 0, s16 = 0;
    char *a = build_block(500, 1, &s1);
    char *b = build_block(500, 16, &s16);
    CHECK(a && b);
    CHECK(s16 < s1);
    free(a);
    free(b);
}

TEST(size_estimate_matches_finished_size_and_reset_reuses) {
    block_builder b;
    block_builder_init(&b, 4);
    CHECK(block_builder_empty(&b));
    CHECK_EQ_INT(block_builder_size_estimate(&b), 4);
    char k[64];
    buf v = BUF_INIT;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 50; i++) {
            make_key(k, sizeof k, i);
            make_value(&v, i);
            CHECK_EQ_INT(block_builder_add(&b, slice_make(k, strlen(k)), buf_slice(&v)), 0);
        }
        CHECK(!block_builder_empty(&b));
        size_t est = block_builder_size_estimate(&b);
        slice s = block_builder_finish(&b);
        CHECK(s.data);
        CHECK_EQ_INT(s.len, est);
        block blk;
        CHECK_OK(block_parse(&blk, s.data, s.len));
        block_iter it;
        block_iter_init(&it, &blk, bytewise);
        int n = 0;
        for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) n++;
        block_iter_free(&it);
        CHECK_EQ_INT(n, 50);
        block_builder_reset(&b);
        CHECK(block_builder_empty(&b));
    }
    buf_free(&v);
    block_builder_free(&b);
}

static void check_empty_block(const char *data, size_t size) {
    block blk;
    CHECK_OK(block_parse(&blk, data, size));
    CHECK_EQ_INT(blk.num_restarts, 0);
    block_iter it;
    block_iter_init(&it, &blk, bytewise);
    block_iter_seek_first(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_seek_last(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_seek(&it, slice_make("a", 1));
    CHECK(!block_iter_valid(&it));
    block_iter_next(&it);
    block_iter_prev(&it);
    CHECK(!block_iter_valid(&it));
    CHECK_OK(block_iter_status(&it));
    block_iter_free(&it);
}

TEST(empty_block) {
    block_builder b;
    block_builder_init(&b, 16);
    slice s = block_builder_finish(&b);
    CHECK(s.data);
    CHECK_EQ_INT(s.len, 4);
    char *copy = malloc(s.len);
    memcpy(copy, s.data, s.len);
    check_empty_block(copy, s.len);
    free(copy);
    block_builder_free(&b);
    /* The other way to spell "no entries": one restart at offset 0. */
    char alt[8];
    encode_fixed32(alt, 0);
    encode_fixed32(alt + 4, 1);
    check_empty_block(alt, sizeof alt);
}

TEST(empty_keys_and_values) {
    block_builder b;
    block_builder_init(&b, 2);
    CHECK_EQ_INT(block_builder_add(&b, slice_make("", 0), slice_make("", 0)), 0);
    CHECK_EQ_INT(block_builder_add(&b, slice_make("a", 1), slice_make("", 0)), 0);
    CHECK_EQ_INT(block_builder_add(&b, slice_make("ab", 2), slice_make("v", 1)), 0);
    slice s = block_builder_finish(&b);
    block blk;
    CHECK_OK(block_parse(&blk, s.data, s.len));
    block_iter it;
    block_iter_init(&it, &blk, bytewise);
    block_iter_seek_first(&it);
    CHECK(block_iter_valid(&it) && block_iter_key(&it).len == 0 && it.value.len == 0);
    block_iter_seek(&it, slice_make("aa", 2));
    CHECK(block_iter_valid(&it) && slice_equal(block_iter_key(&it), slice_make("ab", 2)));
    block_iter_prev(&it);
    CHECK(block_iter_valid(&it) && slice_equal(block_iter_key(&it), slice_make("a", 1)));
    block_iter_prev(&it);
    CHECK(block_iter_valid(&it) && block_iter_key(&it).len == 0);
    block_iter_prev(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_free(&it);
    block_builder_free(&b);
}

static int cleanup_calls;
static void count_cleanup(void *arg) { cleanup_calls += *(int *)arg; }

TEST(heap_iterator_through_ops_runs_cleanup) {
    size_t size = 0;
    char *data = build_block(100, 16, &size);
    block blk;
    CHECK_OK(block_parse(&blk, data, size));
    int weight = 5;
    cleanup_calls = 0;
    iter *it = block_iter_create(&blk, bytewise, count_cleanup, &weight);
    CHECK(it);
    memset(&blk, 0, sizeof blk); /* the iterator keeps its own copy */
    int n = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it)) n++;
    CHECK_EQ_INT(n, 100);
    iter_seek_last(it);
    char k[64];
    make_key(k, sizeof k, 99);
    CHECK(slice_equal(iter_key(it), slice_make(k, strlen(k))));
    iter_prev(it);
    make_key(k, sizeof k, 98);
    CHECK(slice_equal(iter_key(it), slice_make(k, strlen(k))));
    iter_seek(it, slice_make(k, strlen(k)));
    CHECK(slice_equal(iter_key(it), slice_make(k, strlen(k))));
    CHECK(iter_value(it).len == (size_t)((98 * 37) % 61));
    CHECK_OK(iter_status(it));
    CHECK_EQ_INT(cleanup_calls, 0);
    iter_destroy(it);
    CHECK_EQ_INT(cleanup_calls, 5);
    free(data);
}

TEST(scratch_keys_spill_to_heap) {
    block_builder b;
    block_builder_init(&b, 4);
    char big[300];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(block_builder_add(&b, slice_make("a", 1), slice_make("1", 1)), 0);
    CHECK_EQ_INT(block_builder_add(&b, slice_make(big, sizeof big), slice_make("2", 1)), 0);
    big[299] = 'y';
    CHECK_EQ_INT(block_builder_add(&b, slice_make(big, sizeof big), slice_make("3", 1)), 0);
    slice s = block_builder_finish(&b);
    block blk;
    CHECK_OK(block_parse(&blk, s.data, s.len));
    char scratch[16];
    block_iter it;
    block_iter_init_scratch(&it, &blk, bytewise, scratch, sizeof scratch);
    block_iter_seek_first(&it);
    CHECK(block_iter_key(&it).data == scratch);
    block_iter_next(&it);
    block_iter_next(&it);
    CHECK(block_iter_valid(&it) && slice_equal(block_iter_key(&it), slice_make(big, sizeof big)));
    CHECK(block_iter_key(&it).data != scratch);
    block_iter_seek_first(&it);
    CHECK(slice_equal(block_iter_key(&it), slice_make("a", 1)));
    block_iter_free(&it); /* frees the heap key, not the scratch */
    block_builder_free(&b);
}

TEST(parse_rejects_bad_restart_arrays) {
    char d[32];
    memset(d, 0, sizeof d);
    block blk;
    CHECK_STATUS(block_parse(&blk, d, 0), WEIR_CORRUPTION);
    CHECK_STATUS(block_parse(&blk, d, 3), WEIR_CORRUPTION);
    /* Count says more restarts than fit. */
    encode_fixed32(d + 12, 4);
    CHECK_STATUS(block_parse(&blk, d, 16), WEIR_CORRUPTION);
    CHECK(strstr(weir_errmsg(), "bad block") != NULL);
    encode_fixed32(d + 12, UINT32_MAX);
    CHECK_STATUS(block_parse(&blk, d, 16), WEIR_CORRUPTION);
    /* Entries but no restart. */
    encode_fixed32(d + 12, 0);
    CHECK_STATUS(block_parse(&blk, d, 16), WEIR_CORRUPTION);
    /* First restart must be 0; last must be inside the entries. */
    encode_fixed32(d + 8, 1);
    encode_fixed32(d + 12, 1);
    CHECK_STATUS(block_parse(&blk, d, 16), WEIR_CORRUPTION);
    encode_fixed32(d + 4, 0);
    encode_fixed32(d + 8, 4);
    encode_fixed32(d + 12, 2);
    CHECK_STATUS(block_parse(&blk, d, 16), WEIR_CORRUPTION);
    encode_fixed32(d + 8, 3);
    CHECK_OK(block_parse(&blk, d, 16));
}

/* Offset of entry i in a block built with interval 16 (walks the entries). */
static uint32_t entry_offset(const block *blk, int i) {
    block_iter it;
    block_iter_init(&it, blk, bytewise);
    block_iter_seek_first(&it);
    while (i-- > 0) block_iter_next(&it);
    uint32_t off = it.current;
    block_iter_free(&it);
    return off;
}

/* Forward iteration over the (damaged) block must end in corruption. */
static int forward_hits_corruption(const char *data, size_t size) {
    block blk;
    if (block_parse(&blk, data, size) != WEIR_OK) return 1;
    block_iter it;
    block_iter_init(&it, &blk, bytewise);
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) {
    }
    int hit = it.corrupt == 1 && block_iter_status(&it) == WEIR_CORRUPTION &&
              strstr(weir_errmsg(), "block offset") != NULL;
    block_iter_free(&it);
    return hit;
}

TEST(corrupt_entries_are_reported) {
    size_t size = 0;
    char *data = build_block(40, 16, &size);
    block blk;
    CHECK_OK(block_parse(&blk, data, size));
    uint32_t e1 = entry_offset(&blk, 1); /* shares "k0000" with entry 0 */
    CHECK((unsigned char)data[e1] > 0 && (unsigned char)data[e1] < 128);

    /* shared larger than the previous key. */
    char saved = data[e1];
    data[e1] = 100;
    CHECK(forward_hits_corruption(data, size));
    data[e1] = saved;

    /* A varint that never ends (5 continuation bytes). */
    char save5[5];
    memcpy(save5, data + e1, 5);
    memset(data + e1, 0xff, 5);
    CHECK(forward_hits_corruption(data, size));
    memcpy(data + e1, save5, 5);

    /* Value length beyond the entries (the last entry's value is 40 bytes,
     * its header lengths one byte each). */
    uint32_t e39 = entry_offset(&blk, 39);
    CHECK_EQ_INT((unsigned char)data[e39 + 2], 40);
    data[e39 + 2] = 0x7f;
    CHECK(forward_hits_corruption(data, size));
    data[e39 + 2] = 40;
    CHECK(!forward_hits_corruption(data, size)); /* repaired: clean again */

    /* A restart point that is not an entry start: seeks must notice. */
    uint32_t r1 = blk.restarts_off + 4;
    encode_fixed32(data + r1, e1 + 1);
    block_iter it;
    block_iter_init(&it, &blk, bytewise);
    int corrupt_seen = 0;
    char k[64];
    for (int i = 0; i < 40 && !corrupt_seen; i++) {
        make_key(k, sizeof k, i);
        block_iter_seek(&it, slice_make(k, strlen(k)));
        corrupt_seen = it.corrupt;
    }
    CHECK(corrupt_seen);
    CHECK_STATUS(block_iter_status(&it), WEIR_CORRUPTION);
    /* A dead iterator stays dead. */
    block_iter_seek_first(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_free(&it);

    /* A restart beyond the entries (not the last one, which parse checks). */
    encode_fixed32(data + r1, blk.restarts_off + 100);
    block_iter_init(&it, &blk, bytewise);
    make_key(k, sizeof k, 39);
    block_iter_seek(&it, slice_make(k, strlen(k)));
    CHECK(it.corrupt);
    block_iter_free(&it);
    free(data);
}

/* Exercise every operation on a block; must terminate without bad reads. */
static void exercise(const char *data, size_t size, test_rng *rng) {
    block blk;
    if (block_parse(&blk, data, size) != WEIR_OK) return;
    block_iter it;
    block_iter_init(&it, &blk, bytewise);
    int steps = 0;
    for (block_iter_seek_first(&it); block_iter_valid(&it) && steps < 10000; block_iter_next(&it))
        steps++;
    block_iter_free(&it);
    block_iter_init(&it, &blk, bytewise);
    steps = 0;
    for (block_iter_seek_last(&it); block_iter_valid(&it) && steps < 10000; block_iter_prev(&it))
        steps++;
    block_iter_free(&it);
    char k[64];
    for (int i = 0; i < 8; i++) {
        block_iter_init(&it, &blk, bytewise);
        make_key(k, sizeof k, (int)test_rng_uniform(rng, 300));
        if (i % 2)
            block_iter_seek_for_get(&it, slice_make(k, strlen(k)), test_rng_next(rng));
        else
            block_iter_seek(&it, slice_make(k, strlen(k)));
        for (int j = 0; j < 5 && block_iter_valid(&it); j++) {
            if (test_rng_uniform(rng, 2))
                block_iter_next(&it);
            else
                block_iter_prev(&it);
        }
        if (!block_iter_valid(&it)) (void)block_iter_status(&it);
        block_iter_free(&it);
    }
}

TEST(damaged_blocks_never_read_out_of_bounds) {
    uint64_t seed = test_seed_from_env();
    printf("  seed %llu\n", (unsigned long long)seed);
    test_rng rng;
    test_rng_seed(&rng, seed);
    for (int hashed = 0; hashed < 2; hashed++) {
    size_t size = 0;
    char *good = build_block_hashed(60, hashed ? 4 : 16, hashed, &size);
    CHECK(good);
    char *data = malloc(size);
    /* Every byte, a few damaging values each. */
    const unsigned char vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    int corrupt_reports = 0;
    for (size_t pos = 0; pos < size; pos++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(data, good, size);
            if ((unsigned char)data[pos] == vals[v]) continue;
            data[pos] = (char)vals[v];
            exercise(data, size, &rng);
            corrupt_reports += forward_hits_corruption(data, size);
        }
    }
    CHECK(corrupt_reports > 0);
    /* Random garbage, random truncations. */
    for (int round = 0; round < 2000; round++) {
        size_t n = 4 + test_rng_uniform(&rng, 200);
        char *junk = malloc(n);
        for (size_t i = 0; i < n; i++) junk[i] = (char)test_rng_next(&rng);
        /* Make the restart count plausible half the time. */
        if (round % 2) encode_fixed32(junk + n - 4, (uint32_t)test_rng_uniform(&rng, 4));
        exercise(junk, n, &rng);
        free(junk);
        size_t cut = test_rng_uniform(&rng, size);
        char *trunc = malloc(cut ? cut : 1);
        memcpy(trunc, good, cut);
        exercise(trunc, cut, &rng);
        free(trunc);
    }
    free(data);
    free(good);
    }
}

/* Internal keys u00000.. (3 apart, so absent keys fall between), each with
 * 1 to 4 versions, so some keys span restart intervals. */
static int versions_of(int i) { return 1 + (i * 7) % 4; }

static void internal_key(buf *out, int user, uint64_t seq) {
    char u[16];
    snprintf(u, sizeof u, "u%05d", user);
    buf_clear(out);
    ikey_append(out, slice_make(u, strlen(u)), seq, TYPE_VALUE);
}

static int ikey_cmp(slice a, slice b) { return ikey_compare(a, b); }

static char *build_versioned(int users, int hashed, size_t *size, size_t *entries) {
    block_builder b;
    if (hashed) block_builder_init_hashed(&b, 4);
    else block_builder_init(&b, 4);
    buf k = BUF_INIT;
    *entries = 0;
    for (int i = 0; i < users; i++) {
        for (int v = versions_of(i); v >= 1; v--) {
            internal_key(&k, 3 * i, (uint64_t)(10 * v));
            slice u = ikey_user(buf_slice(&k));
            int rc = hashed ? block_builder_add_hashed(&b, buf_slice(&k), slice_make("v", 1),
                                                       bloom_hash(u.data, u.len))
                            : block_builder_add(&b, buf_slice(&k), slice_make("v", 1));
            if (rc != 0) abort();
            (*entries)++;
        }
    }
    size_t est = block_builder_size_estimate(&b);
    slice s = block_builder_finish(&b);
    if (s.len != est) abort();
    char *copy = malloc(s.len);
    memcpy(copy, s.data, s.len);
    *size = s.len;
    buf_free(&k);
    block_builder_free(&b);
    return copy;
}

/* seek_for_get must agree with a plain seek on everything a lookup reads:
 * validity, and the entry itself whenever it is the target's user key;
 * seek_hashed must land exactly where the plain seek does. */
static int lookups_agree(const block *blk, int user, uint64_t seq) {
    buf t = BUF_INIT;
    internal_key(&t, user, seq);
    slice u = ikey_user(buf_slice(&t));
    uint64_t h = bloom_hash(u.data, u.len);
    block_iter a, b, c;
    block_iter_init(&a, blk, ikey_cmp);
    block_iter_init(&b, blk, ikey_cmp);
    block_iter_init(&c, blk, ikey_cmp);
    block_iter_seek(&a, buf_slice(&t));
    block_iter_seek_for_get(&b, buf_slice(&t), h);
    block_iter_seek_hashed(&c, buf_slice(&t), h);
    int ok = block_iter_valid(&a) == block_iter_valid(&b) && !b.corrupt;
    if (ok && block_iter_valid(&a)) {
        int a_hit = slice_equal(ikey_user(block_iter_key(&a)), u);
        int b_hit = slice_equal(ikey_user(block_iter_key(&b)), u);
        ok = a_hit == b_hit && (!a_hit || slice_equal(block_iter_key(&a), block_iter_key(&b)));
    }
    int exact = block_iter_valid(&a) == block_iter_valid(&c) && !c.corrupt &&
                (!block_iter_valid(&a) || slice_equal(block_iter_key(&a), block_iter_key(&c)));
    if (!ok) fprintf(stderr, "user %d seq %llu: lookups disagree\n", user, (unsigned long long)seq);
    if (!exact) fprintf(stderr, "user %d seq %llu: hashed seek is not exact\n", user, (unsigned long long)seq);
    block_iter_free(&a);
    block_iter_free(&b);
    block_iter_free(&c);
    buf_free(&t);
    return ok && exact;
}

TEST(hash_index_point_lookups) {
    for (int users = 1; users <= 90; users += 7) {
        size_t size, entries, plain_size, plain_entries;
        char *data = build_versioned(users, 1, &size, &entries);
        char *plain = build_versioned(users, 0, &plain_size, &plain_entries);
        block blk, old;
        CHECK_OK(block_parse(&blk, data, size));
        CHECK_OK(block_parse(&old, plain, plain_size));
        CHECK(blk.buckets != NULL);
        CHECK(old.buckets == NULL);
        CHECK_EQ_INT(blk.num_buckets, BLOCK_HASH_BUCKETS(entries));
        CHECK_EQ_INT(size, plain_size + blk.num_buckets + 2);
        CHECK_EQ_INT(blk.num_restarts, old.num_restarts);
        /* Every key present (3 * i) and absent (3 * i + 1, past the end),
         * at sequences above, between, on and below its versions. */
        const uint64_t seqs[] = {MAX_SEQUENCE, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0};
        for (int user = -1; user <= 3 * users + 2; user++) {
            for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
                int u = user < 0 ? 0 : user;
                CHECK(lookups_agree(&blk, u, seqs[i]));
                CHECK(lookups_agree(&old, u, seqs[i]));
            }
        }
        free(data);
        free(plain);
    }
}

TEST(hash_index_damage_is_caught) {
    size_t size, entries;
    char *data = build_versioned(30, 1, &size, &entries);
    block blk;
    CHECK_OK(block_parse(&blk, data, size));
    /* A bucket naming an interval the block does not have. */
    size_t at = (size_t)((const char *)blk.buckets - data);
    int hit = 0;
    for (uint32_t i = 0; i < blk.num_buckets; i++) {
        if (blk.buckets[i] == BLOCK_HASH_EMPTY) continue;
        data[at + i] = (char)(blk.num_restarts + 3);
        /* Find a key that lands on this bucket. */
        for (int user = 0; user < 90 && !hit; user += 3) {
            buf t = BUF_INIT;
            internal_key(&t, user, MAX_SEQUENCE);
            slice u = ikey_user(buf_slice(&t));
            uint64_t h = bloom_hash(u.data, u.len);
            if (block_hash_bucket(h, blk.num_buckets) == i) {
                block_iter it;
                block_iter_init(&it, &blk, ikey_cmp);
                block_iter_seek_for_get(&it, buf_slice(&t), h);
                CHECK(!block_iter_valid(&it));
                CHECK_STATUS(block_iter_status(&it), WEIR_CORRUPTION);
                block_iter_free(&it);
                hit = 1;
            }
            buf_free(&t);
        }
        break;
    }
    CHECK(hit);
    /* Trailers that cannot hold the index they claim. */
    char bad[16];
    memset(bad, 0, sizeof bad);
    encode_fixed32(bad + 12, 1 | BLOCK_HASHED_FLAG); /* buckets: 0 */
    CHECK_STATUS(block_parse(&blk, bad, sizeof bad), WEIR_CORRUPTION);
    bad[10] = (char)0xff; /* 255 buckets in 16 bytes */
    CHECK_STATUS(block_parse(&blk, bad, sizeof bad), WEIR_CORRUPTION);
    bad[10] = 2;
    encode_fixed32(bad + 12, 256 | BLOCK_HASHED_FLAG); /* too many restarts */
    CHECK_STATUS(block_parse(&blk, bad, sizeof bad), WEIR_CORRUPTION);
    encode_fixed32(bad + 12, BLOCK_HASHED_FLAG); /* no restarts */
    CHECK_STATUS(block_parse(&blk, bad, sizeof bad), WEIR_CORRUPTION);
    CHECK_STATUS(block_parse(&blk, bad, 5), WEIR_CORRUPTION);
    free(data);
}

/* A hint is only a hint: buckets naming any interval that starts a user
 * key (what some key's hint can be) change how long a lookup takes, never
 * what it finds. */
TEST(hash_index_wrong_hints_still_answer_right) {
    test_rng rng;
    test_rng_seed(&rng, 20261207);
    for (int round = 0; round < 40; round++) {
        size_t size, entries;
        char *data = build_versioned(5 + round * 3, 1, &size, &entries);
        block blk;
        CHECK_OK(block_parse(&blk, data, size));
        size_t at = (size_t)((const char *)blk.buckets - data);
        /* The intervals whose first entry is a user key's newest version. */
        uint32_t starts[BLOCK_HASH_MAX_RESTARTS], nstarts = 0;
        block_iter w;
        block_iter_init(&w, &blk, ikey_cmp);
        buf prev = BUF_INIT;
        uint32_t seen = UINT32_MAX;
        for (block_iter_seek_first(&w); block_iter_valid(&w); block_iter_next(&w)) {
            slice u = ikey_user(block_iter_key(&w));
            if (w.restart_index != seen) {
                seen = w.restart_index;
                if (prev.len == 0 || !slice_equal(u, buf_slice(&prev))) starts[nstarts++] = seen;
            }
            buf_set(&prev, u.data, u.len);
        }
        block_iter_free(&w);
        buf_free(&prev);
        CHECK(nstarts > 0);
        for (uint32_t i = 0; i < blk.num_buckets; i++) {
            uint64_t r = test_rng_uniform(&rng, nstarts + 1);
            data[at + i] = (char)(r == nstarts ? BLOCK_HASH_EMPTY : starts[r]);
        }
        /* Present keys whose bucket was emptied read as absent: that is
         * the one wrong hint the format cannot check, so leave those out. */
        for (int user = 0; user <= 3 * (5 + round * 3); user++) {
            buf t = BUF_INIT;
            internal_key(&t, user, MAX_SEQUENCE);
            slice u = ikey_user(buf_slice(&t));
            int emptied = blk.buckets[block_hash_bucket(bloom_hash(u.data, u.len), blk.num_buckets)] ==
                          BLOCK_HASH_EMPTY;
            buf_free(&t);
            if (emptied && user % 3 == 0) continue;
            CHECK(lookups_agree(&blk, user, MAX_SEQUENCE));
            CHECK(lookups_agree(&blk, user, 25));
            CHECK(lookups_agree(&blk, user, 5));
        }
        free(data);
    }
}

/* More restart intervals than a bucket byte can name: no index, and the
 * builder's size estimate still matches. */
TEST(hash_index_left_out_of_huge_blocks) {
    size_t size, entries;
    char *data = build_versioned(600, 1, &size, &entries);
    block blk;
    CHECK_OK(block_parse(&blk, data, size));
    CHECK(blk.num_restarts > BLOCK_HASH_MAX_RESTARTS);
    CHECK(blk.buckets == NULL);
    for (int user = 0; user < 1800; user += 61) CHECK(lookups_agree(&blk, user, 25));
    free(data);
}

static const test_case tests[] = {
    TEST_ENTRY(round_trip_restart_interval_1),
    TEST_ENTRY(round_trip_restart_interval_16),
    TEST_ENTRY(round_trip_odd_intervals),
    TEST_ENTRY(prefix_compression_shrinks_block),
    TEST_ENTRY(size_estimate_matches_finished_size_and_reset_reuses),
    TEST_ENTRY(empty_block),
    TEST_ENTRY(empty_keys_and_values),
    TEST_ENTRY(heap_iterator_through_ops_runs_cleanup),
    TEST_ENTRY(scratch_keys_spill_to_heap),
    TEST_ENTRY(parse_rejects_bad_restart_arrays),
    TEST_ENTRY(corrupt_entries_are_reported),
    TEST_ENTRY(damaged_blocks_never_read_out_of_bounds),
    TEST_ENTRY(hash_index_point_lookups),
    TEST_ENTRY(hash_index_damage_is_caught),
    TEST_ENTRY(hash_index_wrong_hints_still_answer_right),
    TEST_ENTRY(hash_index_left_out_of_huge_blocks),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
