/* test_cache.c -- the block cache: budget, LRU order, pinning, stats. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "testutil.h"

static void *block_of(size_t n, char fill) {
    char *p = malloc(n);
    memset(p, fill, n);
    return p;
}

TEST(hit_after_insert_and_miss_before) {
    block_cache *c = block_cache_create(1 << 20);
    uint64_t id = block_cache_new_id(c);
    CHECK(block_cache_lookup(c, id, 0) == NULL);
    cache_handle *h = block_cache_insert(c, id, 0, block_of(100, 'a'), 100);
    CHECK(h != NULL);
    CHECK_EQ_INT(cache_handle_size(h), 100);
    block_cache_release(c, h);
    h = block_cache_lookup(c, id, 0);
    CHECK(h != NULL);
    CHECK(((const char *)cache_handle_data(h))[99] == 'a');
    block_cache_release(c, h);
    /* Another table's block at the same offset is a different key. */
    CHECK(block_cache_lookup(c, block_cache_new_id(c), 0) == NULL);
    block_cache_stats st;
    block_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.hits, 1);
    CHECK_EQ_INT(st.misses, 2);
    CHECK_EQ_INT(st.entries, 1);
    CHECK_EQ_INT(st.usage, 100);
    block_cache_destroy(c);
}

TEST(usage_never_exceeds_budget_once_released) {
    const size_t budget = 256 * 1024;
    block_cache *c = block_cache_create(budget);
    uint64_t id = block_cache_new_id(c);
    for (uint64_t off = 0; off < 4000; off++) {
        cache_handle *h = block_cache_insert(c, id, off * 4096, block_of(4096, 'x'), 4096);
        CHECK(h != NULL);
        block_cache_release(c, h);
        block_cache_stats st;
        block_cache_get_stats(c, &st);
        CHECK(st.usage <= budget);
    }
    block_cache_stats st;
    block_cache_get_stats(c, &st);
    CHECK(st.evictions > 3000);
    CHECK(st.usage > budget / 2); /* it is used, not just emptied */
    block_cache_destroy(c);
}

TEST(pinned_blocks_survive_eviction_pressure) {
    block_cache *c = block_cache_create(16 * 4096); /* one block per shard */
    uint64_t id = block_cache_new_id(c);
    cache_handle *pinned = block_cache_insert(c, id, 7, block_of(4096, 'p'), 4096);
    for (uint64_t off = 100; off < 2000; off++)
        block_cache_release(c, block_cache_insert(c, id, off, block_of(4096, 'q'), 4096));
    /* Still readable while referenced... */
    CHECK(((const char *)cache_handle_data(pinned))[0] == 'p');
    block_cache_stats st;
    block_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.pinned, 4096);
    block_cache_release(c, pinned);
    block_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.pinned, 0);
    CHECK(st.usage <= 16 * 4096);
    block_cache_destroy(c);
}

TEST(least_recently_used_goes_first) {
    /* All keys of one shard would be ideal; with 16 shards, use a budget
     * large enough for ~8 blocks per shard and touch a hot set often. */
    block_cache *c = block_cache_create(16 * 8 * 1024);
    uint64_t id = block_cache_new_id(c);
    for (uint64_t off = 0; off < 16; off++)
        block_cache_release(c, block_cache_insert(c, id, off, block_of(1024, 'h'), 1024));
    for (uint64_t off = 1000; off < 3000; off++) {
        block_cache_release(c, block_cache_insert(c, id, off, block_of(1024, 'c'), 1024));
        /* Keep the hot set recent. */
        for (uint64_t hot = 0; hot < 16; hot++) {
            cache_handle *h = block_cache_lookup(c, id, hot);
            CHECK(h != NULL);
            block_cache_release(c, h);
        }
    }
    block_cache_destroy(c);
}

TEST(replacing_a_key_keeps_old_readers_safe) {
    block_cache *c = block_cache_create(1 << 20);
    uint64_t id = block_cache_new_id(c);
    cache_handle *a = block_cache_insert(c, id, 1, block_of(64, 'a'), 64);
    cache_handle *b = block_cache_insert(c, id, 1, block_of(64, 'b'), 64);
    CHECK(((const char *)cache_handle_data(a))[0] == 'a');
    block_cache_release(c, a);
    cache_handle *h = block_cache_lookup(c, id, 1);
    CHECK(h != NULL && ((const char *)cache_handle_data(h))[0] == 'b');
    block_cache_release(c, h);
    block_cache_release(c, b);
    block_cache_stats st;
    block_cache_get_stats(c, &st);
    CHECK_EQ_INT(st.entries, 1);
    CHECK_EQ_INT(st.usage, 64);
    block_cache_destroy(c);
}

TEST(zero_capacity_caches_nothing) {
    block_cache *c = block_cache_create(0);
    uint64_t id = block_cache_new_id(c);
    cache_handle *h = block_cache_insert(c, id, 0, block_of(10, 'z'), 10);
    CHECK(h != NULL && ((const char *)cache_handle_data(h))[9] == 'z');
    block_cache_release(c, h);
    CHECK(block_cache_lookup(c, id, 0) == NULL);
    block_cache_destroy(c);
}

static block_cache *shared_cache;

static void *hammer(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t off = (i * 7919) % 512;
        cache_handle *h = block_cache_lookup(shared_cache, id, off);
        if (!h) h = block_cache_insert(shared_cache, id, off, block_of(512, (char)off), 512);
        if (((const char *)cache_handle_data(h))[0] != (char)off) abort();
        block_cache_release(shared_cache, h);
    }
    return NULL;
}

TEST(concurrent_readers) {
    shared_cache = block_cache_create(64 * 1024);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i % 2 + 1));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    block_cache_stats st;
    block_cache_get_stats(shared_cache, &st);
    CHECK(st.usage <= 64 * 1024);
    CHECK_EQ_INT(st.pinned, 0);
    block_cache_destroy(shared_cache);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        TEST_ENTRY(hit_after_insert_and_miss_before),
        TEST_ENTRY(usage_never_exceeds_budget_once_released),
        TEST_ENTRY(pinned_blocks_survive_eviction_pressure),
        TEST_ENTRY(least_recently_used_goes_first),
        TEST_ENTRY(replacing_a_key_keeps_old_readers_safe),
        TEST_ENTRY(zero_capacity_caches_nothing),
        TEST_ENTRY(concurrent_readers),
        TEST_END,
    };
    return test_main(argc, argv, tests);
}
