/* test_table_cache.c -- the cache of open table readers (table_cache.c):
 * the open-table bound, handles that outlive eviction, iterators holding
 * their table, open failures, and lookups from many threads at once. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bloom.h"
#include "filename.h"
#include "status.h"
#include "table_cache.h"
#include "testutil.h"

#define KEYS_PER_TABLE 50

static void table_key(char *out, size_t cap, uint64_t table, int k) {
    snprintf(out, cap, "t%04llu-k%04d", (unsigned long long)table, k);
}

/* Table `number` holds KEYS_PER_TABLE keys, each with value "v<table>:<k>". */
static int make_table(const char *dir, uint64_t number, uint64_t *size) {
    char path[PATH_MAX];
    table_file_path(path, sizeof path, dir, number);
    sst_build_options o = {512, 16, 10, SST_COMPRESSION_NONE};
    sst_builder *b;
    int rc = sst_builder_open(env_posix(), path, &o, &b);
    if (rc != WEIR_OK) return rc;
    buf k = BUF_INIT;
    char uk[64], v[64];
    for (int i = 0; i < KEYS_PER_TABLE && rc == WEIR_OK; i++) {
        table_key(uk, sizeof uk, number, i);
        snprintf(v, sizeof v, "v%llu:%d", (unsigned long long)number, i);
        buf_clear(&k);
        ikey_append(&k, slice_make(uk, strlen(uk)), 100, TYPE_VALUE);
        rc = sst_builder_add(b, buf_slice(&k), slice_make(v, strlen(v)));
    }
    buf_free(&k);
    if (rc != WEIR_OK) {
        sst_builder_abandon(b);
        return rc;
    }
    return sst_builder_finish(b, size);
}

typedef struct found {
    int calls;
    char val[64];
    char key[64];
} found;

static void on_get(void *arg, slice ikey, slice value) {
    found *f = arg;
    f->calls++;
    slice u = ikey_user(ikey);
    snprintf(f->key, sizeof f->key, "%.*s", (int)u.len, u.data);
    snprintf(f->val, sizeof f->val, "%.*s", (int)value.len, value.data);
}

/* Look key k up in table `number` through the cache and check the value. */
static int check_lookup(table_cache *tc, uint64_t number, uint64_t size, int k) {
    char uk[64], want[64];
    table_key(uk, sizeof uk, number, k);
    snprintf(want, sizeof want, "v%llu:%d", (unsigned long long)number, k);
    buf key = BUF_INIT;
    ikey_append(&key, slice_make(uk, strlen(uk)), MAX_SEQUENCE, TYPE_FOR_SEEK);
    found f = {0, "", ""};
    int rc = table_cache_get_entry(tc, number, size, buf_slice(&key), bloom_hash(uk, strlen(uk)),
                                   on_get, &f);
    buf_free(&key);
    if (rc != WEIR_OK) return rc;
    if (f.calls != 1 || strcmp(f.key, uk) != 0 || strcmp(f.val, want) != 0) return -1;
    return WEIR_OK;
}

typedef struct fixture {
    char dir[256];
    uint64_t sizes[201];
    int n;
} fixture;

static int setup(fixture *fx, int n) {
    test_tmpdir(fx->dir, sizeof fx->dir, "tcache");
    fx->n = n;
    for (int i = 1; i <= n; i++)
        if (make_table(fx->dir, (uint64_t)i, &fx->sizes[i]) != WEIR_OK) return 0;
    return 1;
}

static int count_entries(iter *it) {
    int n = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it)) n++;
    return n;
}

static void capacity_bound(int capacity, int tables) {
    fixture fx;
    CHECK(setup(&fx, tables));
    table_cache *tc = table_cache_create(env_posix(), fx.dir, capacity);
    CHECK(tc);
    if (capacity < 1) capacity = 1;
    test_rng rng;
    test_rng_seed(&rng, 42);
    for (int round = 0; round < 3; round++) {
        for (int i = 1; i <= tables; i++) {
            CHECK_OK(check_lookup(tc, (uint64_t)i, fx.sizes[i], (i + round) % KEYS_PER_TABLE));
            CHECK(table_cache_open_count(tc) <= capacity);
            CHECK(table_cache_open_count(tc) >= 1);
        }
    }
    for (int i = 0; i < 500; i++) {
        uint64_t t = 1 + test_rng_uniform(&rng, (uint64_t)tables);
        CHECK_OK(check_lookup(tc, t, fx.sizes[t], (int)test_rng_uniform(&rng, KEYS_PER_TABLE)));
        CHECK(table_cache_open_count(tc) <= capacity);
    }
    table_cache_destroy(tc);
    test_rmtree(fx.dir);
}

TEST(capacity_bounds_open_tables) {
    capacity_bound(20, 120);
    capacity_bound(16, 50);
    capacity_bound(3, 30);
    capacity_bound(1, 10);
    capacity_bound(0, 5); /* treated as 1 */
}

TEST(capacity_larger_than_tables_keeps_all_open) {
    fixture fx;
    CHECK(setup(&fx, 30));
    table_cache *tc = table_cache_create(env_posix(), fx.dir, 1000);
    for (int i = 1; i <= 30; i++) CHECK_OK(check_lookup(tc, (uint64_t)i, fx.sizes[i], 3));
    CHECK_EQ_INT(table_cache_open_count(tc), 30);
    /* A hit returns the same reader. */
    table_handle *a, *b;
    CHECK_OK(table_cache_get(tc, 7, fx.sizes[7], &a));
    CHECK_OK(table_cache_get(tc, 7, fx.sizes[7], &b));
    CHECK(table_handle_reader(a) == table_handle_reader(b));
    table_cache_release(tc, a);
    table_cache_release(tc, b);
    CHECK_EQ_INT(table_cache_open_count(tc), 30);
    table_cache_destroy(tc);
    test_rmtree(fx.dir);
}

TEST(handle_survives_eviction) {
    fixture fx;
    CHECK(setup(&fx, 12));
    table_cache *tc = table_cache_create(env_posix(), fx.dir, 1);
    table_handle *h;
    CHECK_OK(table_cache_get(tc, 1, fx.sizes[1], &h));
    /* Fill the cache with others: table 1 is pinned, so it stays open, but
     * the cache itself never holds more than its capacity idle. */
    for (int i = 2; i <= 12; i++) {
        CHECK_OK(check_lookup(tc, (uint64_t)i, fx.sizes[i], i));
        CHECK(table_cache_open_count(tc) <= 2);
    }
    iter *it = sst_reader_iter(table_handle_reader(h), NULL, NULL);
    CHECK_EQ_INT(count_entries(it), KEYS_PER_TABLE);
    iter_destroy(it);
    table_cache_release(tc, h);
    /* Released: now it is idle and may be evicted by the next miss. */
    CHECK_OK(check_lookup(tc, 5, fx.sizes[5], 0));
    CHECK_EQ_INT(table_cache_open_count(tc), 1);

    /* Explicit eviction of a held table: usable until released. */
    CHECK_OK(table_cache_get(tc, 3, fx.sizes[3], &h));
    table_cache_evict(tc, 3);
    CHECK_OK(check_lookup(tc, 4, fx.sizes[4], 1));
    it = sst_reader_iter(table_handle_reader(h), NULL, NULL);
    CHECK_EQ_INT(count_entries(it), KEYS_PER_TABLE);
    iter_destroy(it);
    int before = table_cache_open_count(tc);
    table_cache_release(tc, h);
    CHECK_EQ_INT(table_cache_open_count(tc), before - 1);
    /* Evicting an absent table is harmless. */
    table_cache_evict(tc, 999);
    table_cache_destroy(tc);
    test_rmtree(fx.dir);
}

TEST(evicted_and_deleted_table_fails_to_reopen) {
    fixture fx;
    CHECK(setup(&fx, 3));
    table_cache *tc = table_cache_create(env_posix(), fx.dir, 10);
    CHECK_OK(check_lookup(tc, 2, fx.sizes[2], 4));
    CHECK_EQ_INT(table_cache_open_count(tc), 1);
    table_cache_evict(tc, 2);
    CHECK_EQ_INT(table_cache_open_count(tc), 0);
    char path[PATH_MAX];
    table_file_path(path, sizeof path, fx.dir, 2);
    CHECK(unlink(path) == 0);
    int rc = check_lookup(tc, 2, fx.sizes[2], 4);
    CHECK(rc != WEIR_OK && rc != -1);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    /* The iterator form reports it through its status. */
    iter *it = table_cache_iter(tc, 2, fx.sizes[2]);
    CHECK(it);
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    CHECK_EQ_INT(iter_status(it), rc);
    iter_destroy(it);
    CHECK_EQ_INT(table_cache_open_count(tc), 0);
    table_cache_destroy(tc);
    test_rmtree(fx.dir);
}

TEST(iterator_holds_its_table) {
    fixture fx;
    CHECK(setup(&fx, 4));
    table_cache *tc = table_cache_create(env_posix(), fx.dir, 1);
    iter *it = table_cache_iter(tc, 1, fx.sizes[1]);
    CHECK(it);
    CHECK_OK(check_lookup(tc, 2, fx.sizes[2], 0));
    CHECK_OK(check_lookup(tc, 3, fx.sizes[3], 0));
    table_cache_evict(tc, 1);
    CHECK_EQ_INT(table_cache_open_count(tc), 2); /* table 1 (held) + table 3 */
    CHECK_EQ_INT(count_entries(it), KEYS_PER_TABLE);
    iter_seek_last(it);
    char uk[64];
    table_key(uk, sizeof uk, 1, KEYS_PER_TABLE - 1);
    CHECK(slice_equal(ikey_user(iter_key(it)), slice_make(uk, strlen(uk))));
    CHECK_OK(iter_status(it));
    iter_destroy(it);
    CHECK_EQ_INT(table_cache_open_count(tc), 1);
    table_cache_destroy(tc);
    test_rmtree(fx.dir);
}

TEST(corrupt_table_reports_through_cache) {
    fixture fx;
    CHECK(setup(&fx, 2));
    char path[PATH_MAX];
    table_file_path(path, sizeof path, fx.dir, 2);
    FILE *f = fopen(path, "r+b");
    CHECK(f);
    fseek(f, 10, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 10, SEEK_SET);
    fputc(c ^ 0x55, f);
    fclose(f);
    table_cache *tc = table_cache_create(env_posix(), fx.dir, 4);
    CHECK_STATUS(check_lookup(tc, 2, fx.sizes[2], 0), WEIR_CORRUPTION);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    CHECK_OK(check_lookup(tc, 1, fx.sizes[1], 0));
    /* A wrong recorded size is caught at open. */
    table_cache_evict(tc, 1);
    CHECK_STATUS(check_lookup(tc, 1, fx.sizes[1] + 100, 0), WEIR_CORRUPTION);
    table_cache_destroy(tc);
    test_rmtree(fx.dir);
}

/* ---- threads ----------------------------------------------------------- */

typedef struct worker {
    table_cache *tc;
    fixture *fx;
    uint64_t seed;
    int iterate;  /* use iterators instead of point lookups */
    int evict;    /* also evict tables now and then */
    int failures;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    test_rng rng;
    test_rng_seed(&rng, w->seed);
    for (int i = 0; i < 1500; i++) {
        uint64_t t = 1 + test_rng_uniform(&rng, (uint64_t)w->fx->n);
        if (w->evict && i % 50 == 0) table_cache_evict(w->tc, t);
        if (w->iterate && i % 10 == 0) {
            iter *it = table_cache_iter(w->tc, t, w->fx->sizes[t]);
            if (!it || count_entries(it) != KEYS_PER_TABLE || iter_status(it) != WEIR_OK)
                w->failures++;
            iter_destroy(it);
            continue;
        }
        int k = (int)test_rng_uniform(&rng, KEYS_PER_TABLE);
        if (check_lookup(w->tc, t, w->fx->sizes[t], k) != WEIR_OK) w->failures++;
    }
    return NULL;
}

TEST(concurrent_lookups_from_threads) {
    fixture fx;
    CHECK(setup(&fx, 60));
    table_cache *tc = table_cache_create(env_posix(), fx.dir, 24);
    enum { THREADS = 8 };
    pthread_t th[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){tc, &fx, (uint64_t)i * 7919 + 1, i % 2, i % 3 == 0, 0};
        CHECK(pthread_create(&th[i], NULL, work, &w[i]) == 0);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    CHECK_EQ_INT(failures, 0);
    CHECK(table_cache_open_count(tc) <= 24);
    table_cache_destroy(tc);
    test_rmtree(fx.dir);
}

static const test_case tests[] = {
    TEST_ENTRY(capacity_bounds_open_tables),
    TEST_ENTRY(capacity_larger_than_tables_keeps_all_open),
    TEST_ENTRY(handle_survives_eviction),
    TEST_ENTRY(evicted_and_deleted_table_fails_to_reopen),
    TEST_ENTRY(iterator_holds_its_table),
    TEST_ENTRY(corrupt_table_reports_through_cache),
    TEST_ENTRY(concurrent_lookups_from_threads),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
