/*
 * cache.h -- sharded LRU block cache with a byte budget.
 *
 * Holds decompressed data blocks of compressed tables (uncompressed blocks
 * are read straight from the mapped file and need no cache). Entries are
 * keyed by (table id, block offset) and reference counted: a block in use
 * is never freed, and only unreferenced blocks are evicted, oldest first,
 * whenever a shard is over its share of the budget.
 */
#ifndef WEIR_CACHE_H
#define WEIR_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct block_cache block_cache;
typedef struct cache_handle cache_handle;

typedef struct block_cache_stats {
    uint64_t capacity;
    uint64_t usage;     /* bytes of cached blocks, pinned ones included */
    uint64_t pinned;    /* bytes of blocks currently referenced */
    uint64_t entries;
    uint64_t hits;
    uint64_t misses;
    uint64_t inserts;
    uint64_t evictions;
} block_cache_stats;

/* NULL if out of memory. A capacity of 0 caches nothing (every insert is
 * handed back referenced and freed at release). */
block_cache *block_cache_create(size_t capacity_bytes);
/* Every handle must have been released. NULL is fine. */
void block_cache_destroy(block_cache *c);

/* A fresh id for a table reader's keys. */
uint64_t block_cache_new_id(block_cache *c);

/* Referenced handle, or NULL on a miss. */
cache_handle *block_cache_lookup(block_cache *c, uint64_t id, uint64_t offset);
/* Insert data (malloc'd; the cache frees it) of `size` bytes and return it
 * referenced. Replaces an existing entry of the same key. NULL on OOM, in
 * which case data has been freed. */
cache_handle *block_cache_insert(block_cache *c, uint64_t id, uint64_t offset, void *data,
                                 size_t size);
const void *cache_handle_data(const cache_handle *h);
size_t cache_handle_size(const cache_handle *h);
void block_cache_release(block_cache *c, cache_handle *h);

void block_cache_get_stats(block_cache *c, block_cache_stats *out);

#endif
