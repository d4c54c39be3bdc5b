/* test_arena.c -- bump allocation, alignment, large blocks, usage counter. */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "testutil.h"

TEST(create_and_destroy_empty) {
    arena *a = arena_create(4096);
    CHECK(a != NULL);
    size_t base = arena_memory_usage(a);
    CHECK(base > 0); /* counts the arena itself */
    CHECK(base < 4096);
    arena_destroy(a);
    arena_destroy(NULL);
}

TEST(allocations_are_distinct_and_keep_contents) {
    test_rng r;
    test_rng_seed(&r, 1);
    arena *a = arena_create(4096);
    CHECK(a != NULL);
    enum { N = 20000 };
    char **ptrs = malloc(N * sizeof *ptrs);
    size_t *lens = malloc(N * sizeof *lens);
    CHECK(ptrs && lens);
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        size_t n;
        /* mostly small, now and then bigger than a quarter block */
        if (i % 500 == 0) n = 1500 + (size_t)test_rng_uniform(&r, 10000);
        else n = (size_t)test_rng_uniform(&r, 200);
        char *p = (i % 3) ? arena_alloc(a, n) : arena_alloc_aligned(a, n);
        CHECK(p != NULL);
        memset(p, (char)i, n);
        ptrs[i] = p;
        lens[i] = n;
        total += n;
    }
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < lens[i]; k++) CHECK(ptrs[i][k] == (char)i);
    size_t usage = arena_memory_usage(a);
    CHECK(usage >= total);
    /* Waste is bounded: a block is abandoned only when a small allocation
     * does not fit, so at most a quarter block per block is lost. */
    CHECK(usage < total + total / 2 + 8192);
    free(ptrs);
    free(lens);
    arena_destroy(a);
}

TEST(aligned_allocations_are_aligned) {
    arena *a = arena_create(1000);
    CHECK(a != NULL);
    size_t align = alignof(max_align_t) > 8 ? alignof(max_align_t) : 8;
    for (int i = 0; i < 5000; i++) {
        CHECK(arena_alloc(a, (size_t)(i % 13)) != NULL); /* knock the cursor off alignment */
        void *p = arena_alloc_aligned(a, (size_t)(i % 300) + 1);
        CHECK(p != NULL);
        CHECK((uintptr_t)p % align == 0);
    }
    /* Large aligned allocations (own block) too. */
    void *big = arena_alloc_aligned(a, 100000);
    CHECK(big && (uintptr_t)big % align == 0);
    memset(big, 1, 100000);
    arena_destroy(a);
}

TEST(zero_size_allocations_are_valid_and_distinct) {
    arena *a = arena_create(256);
    CHECK(a != NULL);
    char *p = arena_alloc(a, 0), *q = arena_alloc(a, 0);
    CHECK(p && q && p != q);
    char *r = arena_alloc_aligned(a, 0);
    CHECK(r && r != p && r != q);
    arena_destroy(a);
}

TEST(large_allocation_does_not_waste_current_block) {
    arena *a = arena_create(4096);
    CHECK(a != NULL);
    char *first = arena_alloc(a, 16);
    char *last = NULL;
    for (int i = 0; i < 3; i++) last = arena_alloc(a, 800); /* 1680 bytes left */
    CHECK(last == first + 16 + 1600);
    size_t before = arena_memory_usage(a);
    char *big = arena_alloc(a, 2000); /* > block/4 and does not fit: own block */
    CHECK(big != NULL);
    size_t after_big = arena_memory_usage(a);
    CHECK(after_big - before >= 2000);
    CHECK(after_big - before < 2000 + 64);
    char *small = arena_alloc(a, 16);
    /* Still bumping the first block. */
    CHECK(small == last + 800);
    CHECK_EQ_INT(arena_memory_usage(a), after_big);
    /* A small request that does not fit starts a new block of block_size. */
    CHECK(arena_alloc(a, 1000) == small + 16); /* 664 bytes left */
    CHECK(arena_alloc(a, 1000) != NULL);
    CHECK(arena_memory_usage(a) - after_big >= 4096);
    CHECK(arena_memory_usage(a) - after_big < 4096 + 64);
    arena_destroy(a);
}

TEST(tiny_and_zero_block_sizes_are_clamped) {
    arena *a = arena_create(0);
    CHECK(a != NULL);
    for (int i = 0; i < 1000; i++) {
        char *p = arena_alloc(a, 100);
        CHECK(p != NULL);
        memset(p, 0xab, 100);
    }
    arena_destroy(a);
    a = arena_create(1);
    CHECK(a != NULL);
    for (int i = 0; i < 1000; i++) {
        char *p = arena_alloc_aligned(a, 33);
        CHECK(p != NULL);
        memset(p, 0xcd, 33);
    }
    arena_destroy(a);
}

TEST(huge_allocation_fails_cleanly) {
    arena *a = arena_create(4096);
    CHECK(a != NULL);
    size_t before = arena_memory_usage(a);
    CHECK(arena_alloc(a, SIZE_MAX) == NULL);
    CHECK(arena_alloc(a, SIZE_MAX - 8) == NULL);
    CHECK(arena_alloc(a, SIZE_MAX / 2) == NULL); /* reaches malloc, which fails */
    CHECK(arena_alloc_aligned(a, SIZE_MAX - 100) == NULL);
    CHECK_EQ_INT(arena_memory_usage(a), before);
    CHECK(arena_alloc(a, 10) != NULL); /* still usable */
    arena_destroy(a);
}

struct reader_arg {
    arena *a;
    atomic_int stop;
    size_t max_seen;
    int went_backwards;
};

static void *usage_reader(void *p) {
    struct reader_arg *arg = p;
    size_t last = 0;
    while (!atomic_load(&arg->stop)) {
        size_t u = arena_memory_usage(arg->a);
        if (u < last) arg->went_backwards = 1;
        last = u;
    }
    arg->max_seen = last;
    return NULL;
}

TEST(usage_readable_from_other_thread) {
    struct reader_arg arg;
    arg.a = arena_create(4096);
    CHECK(arg.a != NULL);
    atomic_init(&arg.stop, 0);
    arg.max_seen = 0;
    arg.went_backwards = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, usage_reader, &arg) == 0);
    for (int i = 0; i < 200000; i++) arena_alloc(arg.a, 50);
    atomic_store(&arg.stop, 1);
    pthread_join(t, NULL);
    CHECK(!arg.went_backwards);
    CHECK(arg.max_seen <= arena_memory_usage(arg.a));
    CHECK(arena_memory_usage(arg.a) >= 200000u * 50);
    arena_destroy(arg.a);
}

static const test_case tests[] = {
    TEST_ENTRY(create_and_destroy_empty),
    TEST_ENTRY(allocations_are_distinct_and_keep_contents),
    TEST_ENTRY(aligned_allocations_are_aligned),
    TEST_ENTRY(zero_size_allocations_are_valid_and_distinct),
    TEST_ENTRY(large_allocation_does_not_waste_current_block),
    TEST_ENTRY(tiny_and_zero_block_sizes_are_clamped),
    TEST_ENTRY(huge_allocation_fails_cleanly),
    TEST_ENTRY(usage_readable_from_other_thread),
    TEST_END,
};

const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
