/* test_engine_features.c -- compression, the block cache, write stalls and
 * statistics, through the public API. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/* Value of counter `name` in the "weir.counters" report, or -1. */
static double counter(weir_db *db, const char *name) {
    char *text = NULL;
    if (weir_property(db, "weir.counters", &text) != WEIR_OK) return -1;
    double v = -1;
    size_t n = strlen(name);
    for (char *line = text; line && *line;) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            v = atof(line + n + 1);
            break;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    weir_free(text);
    return v;
}

static uint64_t prop_u64(weir_db *db, const char *name) {
    char *text = NULL;
    if (weir_property(db, name, &text) != WEIR_OK) return UINT64_MAX;
    uint64_t v = strtoull(text, NULL, 10);
    weir_free(text);
    return v;
}

/* Compressible value: a repeated phrase with the key number mixed in. */
static size_t make_value(char *out, size_t cap, int i) {
    return (size_t)snprintf(out, cap,
                            "{\"user\":%d,\"merchant\":\"Coffee Shop\",\"amount\":%d.%02d,"
                            "\"note\":\"regular purchase regular purchase regular purchase\"}",
                            i % 1000, i % 500, i % 100);
}

/* Write n keys, compact, and return the bytes of all tables. */
static uint64_t fill_and_measure(const char *dir, int codec, int n, int *ok) {
    *ok = 0;
    weir_options *o = weir_options_create();
    if (weir_options_set_compression(o, codec) != WEIR_OK) {
        weir_options_destroy(o);
        return 0;
    }
    weir_options_set_write_buffer_size(o, 256 * 1024);
    weir_db *db;
    if (weir_open(dir, o, &db) != WEIR_OK) {
        weir_options_destroy(o);
        return 0;
    }
    char key[32], val[256];
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        size_t vl = make_value(val, sizeof val, i);
        if (weir_put(db, NULL, key, (size_t)kl, val, vl) != WEIR_OK) goto out;
    }
    if (weir_compact_range(db, NULL, 0, NULL, 0) != WEIR_OK) goto out;
    *ok = 1;
out:;
    uint64_t bytes = prop_u64(db, "weir.total-sst-bytes");
    weir_close(db);
    weir_options_destroy(o);
    return bytes;
}

/* Every key reads back, through gets and a scan. */
static int verify_all(weir_db *db, int n) {
    char key[32], want[256], got[256];
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        size_t wl = make_value(want, sizeof want, i), gl;
        if (weir_get(db, NULL, key, (size_t)kl, got, sizeof got, &gl) != WEIR_OK) return 0;
        if (gl != wl || memcmp(got, want, wl) != 0) return 0;
    }
    weir_iter *it;
    if (weir_iter_create(db, NULL, &it) != WEIR_OK) return 0;
    int count = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) count++;
    int status = weir_iter_status(it);
    weir_iter_destroy(it);
    return count == n && status == WEIR_OK;
}

static void check_codec(int codec) {
    CHECK(weir_compression_supported(codec));
    char plain_dir[256], packed_dir[256];
    test_tmpdir(plain_dir, sizeof plain_dir, "feat-plain");
    test_tmpdir(packed_dir, sizeof packed_dir, "feat-packed");
    const int n = 20000;
    int ok;
    uint64_t plain = fill_and_measure(plain_dir, WEIR_COMPRESSION_NONE, n, &ok);
    CHECK(ok);
    uint64_t packed = fill_and_measure(packed_dir, codec, n, &ok);
    CHECK(ok);
    printf("  %s: %" PRIu64 " bytes of tables vs %" PRIu64 " uncompressed\n",
           codec == WEIR_COMPRESSION_LZ4 ? "lz4" : "zstd", packed, plain);
    CHECK(packed < plain / 2);

    /* Reopened with default options (no compression for new tables), the
     * compressed tables read back identically; the cache sees the reads. */
    weir_db *db;
    CHECK_OK(weir_open(packed_dir, NULL, &db));
    CHECK(verify_all(db, n));
    CHECK(verify_all(db, n));
    CHECK(counter(db, "block_cache_hits") > 0);
    CHECK(counter(db, "block_cache_misses") > 0);
    CHECK(counter(db, "block_cache_usage") <= counter(db, "block_cache_capacity"));
    CHECK_OK(weir_close(db));
    test_rmtree(plain_dir);
    test_rmtree(packed_dir);
}

TEST(lz4_tables_are_smaller_and_read_back) { check_codec(WEIR_COMPRESSION_LZ4); }
TEST(zstd_tables_are_smaller_and_read_back) { check_codec(WEIR_COMPRESSION_ZSTD); }

TEST(small_block_cache_stays_within_budget) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "feat-cache");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_compression(o, WEIR_COMPRESSION_LZ4));
    CHECK_OK(weir_options_set_block_cache_size(o, 64 * 1024));
    CHECK_OK(weir_options_set_block_size(o, 1024));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    char key[32], val[256];
    for (int i = 0; i < 20000; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        size_t vl = make_value(val, sizeof val, i);
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, vl));
    }
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK(verify_all(db, 20000));
    CHECK(counter(db, "block_cache_evictions") > 0);
    CHECK(counter(db, "block_cache_usage") <= 64 * 1024);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(unknown_or_bad_codec_is_refused) {
    weir_options *o = weir_options_create();
    CHECK_STATUS(weir_options_set_compression(o, 9), WEIR_INVALID);
    CHECK_STATUS(weir_options_set_compression(o, -1), WEIR_INVALID);
    CHECK(!weir_compression_supported(9));
    CHECK(weir_compression_supported(WEIR_COMPRESSION_NONE));
    CHECK_STATUS(weir_options_set_pending_compaction_limits(o, 10, 5), WEIR_INVALID);
    weir_options_destroy(o);
    const char *info = weir_build_info();
    CHECK(strstr(info, weir_version()) != NULL);
    CHECK(strstr(info, "lz4") != NULL && strstr(info, "zstd") != NULL);
}

/* Writes faster than one background thread can compact: level 0 fills,
 * writes slow down and stop, and every write still lands. */
TEST(level0_stalls_engage_and_release) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "feat-stall");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_write_buffer_size(o, 64 * 1024));
    CHECK_OK(weir_options_set_level0_triggers(o, 1, 2, 3));
    CHECK_OK(weir_options_set_background_threads(o, 1));
    CHECK_OK(weir_options_set_sync_mode(o, WEIR_SYNC_NONE));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    char key[32], val[256];
    const int n = 60000;
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", (int)((i * 7919L) % n));
        size_t vl = make_value(val, sizeof val, (int)((i * 7919L) % n));
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, vl));
        /* Level 0 never grows past the stop trigger plus the one flush in
         * flight: memory and read cost stay bounded. */
        CHECK(prop_u64(db, "weir.num-files-at-level0") <= 4 || i % 1000 != 0);
    }
    double stalled = counter(db, "stall_micros");
    double slowdowns = counter(db, "slowdowns");
    printf("  stall_micros %.0f, slowdowns %.0f, stops %.0f\n", stalled, slowdowns,
           counter(db, "stops"));
    CHECK(stalled > 0);
    CHECK(slowdowns > 0);
    CHECK(verify_all(db, n));
    /* Released: once compaction catches up, a write goes straight in. */
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    double before = counter(db, "slowdowns");
    CHECK_OK(weir_put(db, NULL, "after", 5, "x", 1));
    CHECK(counter(db, "slowdowns") == before);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(compaction_debt_slows_writes) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "feat-debt");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_write_buffer_size(o, 64 * 1024));
    CHECK_OK(weir_options_set_level0_triggers(o, 1, 100, 200));
    /* Any debt at all counts as "behind". */
    CHECK_OK(weir_options_set_pending_compaction_limits(o, 1, 0));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    char key[32], val[256];
    for (int i = 0; i < 20000; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", (int)((i * 7919L) % 20000));
        size_t vl = make_value(val, sizeof val, (int)((i * 7919L) % 20000));
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, vl));
    }
    CHECK(counter(db, "slowdowns") > 0);
    CHECK(verify_all(db, 20000));
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(latency_and_amplification_are_reported) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "feat-stats");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    char key[32], val[256];
    for (int i = 0; i < 5000; i++) {
        int kl = snprintf(key, sizeof key, "key%08d", i);
        size_t vl = make_value(val, sizeof val, i);
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, vl));
    }
    CHECK_OK(weir_flush(db));
    CHECK(verify_all(db, 5000));
    CHECK(counter(db, "get_count") >= 4000);
    CHECK(counter(db, "get_p50_ns") > 0);
    CHECK(counter(db, "get_p99_ns") >= counter(db, "get_p50_ns"));
    CHECK(counter(db, "write_count") >= 4000);
    CHECK(counter(db, "write_p99_ns") >= counter(db, "write_p50_ns"));
    CHECK(counter(db, "write_amplification") >= 1.0);
    CHECK(counter(db, "table_lookups") > 0);
    /* Absent keys are answered by the bloom filter. */
    double useful = counter(db, "bloom_useful");
    size_t vl;
    for (int i = 0; i < 1000; i++) {
        int kl = snprintf(key, sizeof key, "key%08d-absent", i * 5); /* inside the key range */
        CHECK_STATUS(weir_get(db, NULL, key, (size_t)kl, val, sizeof val, &vl), WEIR_NOT_FOUND);
    }
    CHECK(counter(db, "bloom_useful") >= useful + 950);
    char *report = NULL;
    CHECK_OK(weir_property(db, "weir.stats", &report));
    CHECK(strstr(report, "level 0") != NULL && strstr(report, "block_cache_hits") != NULL);
    weir_free(report);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Read-triggered compaction. A DB of n keys all below level 0, then two
 * level-0 files of rewrites spanning the whole key range (the compaction
 * trigger is out of reach, so size alone never moves them). */
/* A DB with 1 MiB memtables whose level 0 holds up to 7 files before size
 * alone compacts it. NULL on failure. */
static weir_db *open_level0_roomy(const char *dir, int read_triggered) {
    weir_options *o = weir_options_create();
    weir_options_set_write_buffer_size(o, 1 << 20);
    weir_options_set_level0_triggers(o, 8, 20, 36);
    weir_options_set_read_triggered_compaction(o, read_triggered);
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    return rc == WEIR_OK ? db : NULL;
}

/* Put keys 0..n-1 (values by make_value) in the order i * stride mod n
 * (stride 1: ascending; stride prime to n: scattered). */
static int put_keys(weir_db *db, int n, long stride) {
    char key[32], val[256];
    for (int i = 0; i < n; i++) {
        int at = (int)((i * stride) % n);
        int kl = snprintf(key, sizeof key, "key%08d", at);
        size_t vl = make_value(val, sizeof val, at);
        int rc = weir_put(db, NULL, key, (size_t)kl, val, vl);
        if (rc != WEIR_OK) return rc;
    }
    return WEIR_OK;
}

static weir_db *open_overlapped(const char *dir, int read_triggered, int n) {
    weir_db *db = open_level0_roomy(dir, read_triggered);
    if (!db) return NULL;
    int rc = put_keys(db, n, 7919);
    char key[32], val[256];
    if (rc == WEIR_OK) rc = weir_compact_range(db, NULL, 0, NULL, 0);
    /* The rewrites carry the same values, so verify_all still holds. */
    for (int file = 0; file < 2 && rc == WEIR_OK; file++) {
        for (int i = file; i < n && rc == WEIR_OK; i += 7) {
            int kl = snprintf(key, sizeof key, "key%08d", i);
            size_t vl = make_value(val, sizeof val, i);
            rc = weir_put(db, NULL, key, (size_t)kl, val, vl);
        }
        if (rc == WEIR_OK) rc = weir_flush(db);
    }
    if (rc != WEIR_OK) {
        weir_close(db);
        return NULL;
    }
    return db;
}

/* `count` seeks at keys spread over the range, each followed by a few
 * steps; stops early once level 0 is empty. Returns level 0's file count
 * after, or -1 on a failed read. */
static int seek_many(weir_db *db, int n, int count) {
    weir_iter *it;
    if (weir_iter_create(db, NULL, &it) != WEIR_OK) return -1;
    char key[32];
    int bad = 0;
    for (int i = 0; i < count && !bad; i++) {
        int at = (int)((i * 104729L) % n);
        int kl = snprintf(key, sizeof key, "key%08d", at);
        weir_iter_refresh(it);
        weir_iter_seek(it, key, (size_t)kl);
        size_t got_len;
        const char *got = weir_iter_valid(it) ? weir_iter_key(it, &got_len) : NULL;
        bad = !got || got_len != (size_t)kl || memcmp(got, key, (size_t)kl) != 0;
        for (int step = 0; step < 3 && weir_iter_valid(it); step++) weir_iter_next(it);
        bad |= weir_iter_status(it) != WEIR_OK;
        if (i % 1024 == 1023 && prop_u64(db, "weir.num-files-at-level0") == 0) break;
    }
    weir_iter_destroy(it);
    return bad ? -1 : (int)prop_u64(db, "weir.num-files-at-level0");
}

/* Wait (up to 10 s) for a background compaction to empty level 0. */
static int level0_empties(weir_db *db) {
    for (int tries = 0; tries < 1000; tries++) {
        if (prop_u64(db, "weir.num-files-at-level0") == 0) return 1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Seeks that keep paying for two level-0 files over the whole key range
 * get them compacted into level 1; the data is unchanged. */
TEST(seeks_compact_overlapping_level0) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "feat-rtc");
    const int n = 20000;
    weir_db *db = open_overlapped(dir, 1, n);
    CHECK(db != NULL);
    CHECK_EQ_INT(prop_u64(db, "weir.num-files-at-level0"), 2);
    CHECK_EQ_INT(counter(db, "read_triggered_compactions"), 0);
    /* Point reads do not charge: their bloom filters skip the runs. */
    CHECK(verify_all(db, n));
    CHECK_EQ_INT(prop_u64(db, "weir.num-files-at-level0"), 2);
    /* Each file's allowance is its size plus what it overlaps below, one
     * seek per 256 bytes (at least 1000): well under 100K seeks here. */
    CHECK(seek_many(db, n, 100000) >= 0);
    CHECK(level0_empties(db));
    CHECK(counter(db, "read_triggered_compactions") >= 1);
    CHECK(verify_all(db, n));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Switched off, the same seeks leave the tree as it is; and a seek that
 * one run answers alone never charges anything (level-0 files of keys
 * written in order do not overlap). */
TEST(seeks_compact_nothing_when_off_or_one_run) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "feat-rtc-off");
    const int n = 20000;
    weir_db *db = open_overlapped(dir, 0, n);
    CHECK(db != NULL);
    CHECK_EQ_INT(seek_many(db, n, 100000), 2);
    CHECK_EQ_INT(counter(db, "read_triggered_compactions"), 0);
    CHECK(verify_all(db, n));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);

    test_tmpdir(dir, sizeof dir, "feat-rtc-one");
    db = open_level0_roomy(dir, 1);
    CHECK(db != NULL);
    CHECK_OK(put_keys(db, n, 1));
    CHECK_OK(weir_flush(db));
    int level0 = (int)prop_u64(db, "weir.num-files-at-level0");
    CHECK(level0 >= 2);
    double compactions = counter(db, "compactions");
    CHECK_EQ_INT(seek_many(db, n, 100000), level0);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(counter(db, "read_triggered_compactions"), 0);
    CHECK(counter(db, "compactions") == compactions);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* A read-only handle on an overlapped DB seeks without compacting (it
 * writes nothing) and reads the same data. */
TEST(read_only_seeks_compact_nothing) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "feat-rtc-ro");
    const int n = 20000;
    weir_db *db = open_overlapped(dir, 0, n);
    CHECK(db != NULL);
    CHECK_OK(weir_close(db));
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_read_only(o, 1));
    CHECK_OK(weir_open(dir, o, &db));
    weir_options_destroy(o);
    int level0 = (int)prop_u64(db, "weir.num-files-at-level0");
    CHECK(level0 >= 2);
    CHECK_EQ_INT(seek_many(db, n, 100000), level0);
    CHECK_EQ_INT(counter(db, "read_triggered_compactions"), 0);
    CHECK(verify_all(db, n));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        TEST_ENTRY(lz4_tables_are_smaller_and_read_back),
        TEST_ENTRY(zstd_tables_are_smaller_and_read_back),
        TEST_ENTRY(small_block_cache_stays_within_budget),
        TEST_ENTRY(unknown_or_bad_codec_is_refused),
        TEST_ENTRY(level0_stalls_engage_and_release),
        TEST_ENTRY(compaction_debt_slows_writes),
        TEST_ENTRY(latency_and_amplification_are_reported),
        TEST_ENTRY(seeks_compact_overlapping_level0),
        TEST_ENTRY(seeks_compact_nothing_when_off_or_one_run),
        TEST_ENTRY(read_only_seeks_compact_nothing),
        TEST_END,
    };
    return test_main(argc, argv, tests);
}
