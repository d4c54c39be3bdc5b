/*
 * table_cache.h -- open table readers, by file number, bounded by a count
 * (max_open_files) with LRU eviction. Handles are reference counted: an
 * evicted or dropped table stays mapped until its last handle is released.
 * Sharded by file number so lookups from many threads rarely contend.
 */
#ifndef WEIR_TABLE_CACHE_H
#define WEIR_TABLE_CACHE_H

#include <stdatomic.h>
#include <stdint.h>

#include "env.h"
#include "sst.h"

typedef struct table_cache table_cache;
typedef struct table_handle table_handle;

/* dbpath: the DB directory (tables are dbpath/NNNNNN.sst). */
table_cache *table_cache_create(weir_env *env, const char *dbpath, int capacity);
void table_cache_destroy(table_cache *tc); /* all handles must be released */

/* Find or open the table. */
int table_cache_get(table_cache *tc, uint64_t file_number, uint64_t file_size,
                    table_handle **out);
sst_reader *table_handle_reader(table_handle *h);
void table_cache_release(table_cache *tc, table_handle *h);
/* Forget the table (its file is being deleted). */
void table_cache_evict(table_cache *tc, uint64_t file_number);

/* Point lookup through the cache (see sst_reader_get). */
int table_cache_get_entry(table_cache *tc, uint64_t file_number, uint64_t file_size,
                          slice lookup_ikey, uint64_t hash, sst_get_fn fn, void *arg);

/* A handle kept by a table's metadata (file_meta) for as long as the
 * table is live, so lookups skip the cache's shard lock and reference
 * count: a point lookup otherwise took and released two of them. Set by
 * the first lookup while the cache has room (pinned tables cannot be
 * evicted, so pinning stops at three quarters of max_open_files), and
 * released with the metadata. Zero-initialised means empty. */
typedef struct table_pin {
    _Atomic(table_handle *) handle;
} table_pin;

/* table_cache_get_entry through a pin: the caller guarantees the pin
 * outlives the call (it holds the version that holds the metadata).
 * flags: SST_READ_MEMORY_ONLY also returns WEIR_INCOMPLETE instead of
 * opening a table that is not open. */
int table_cache_get_entry_pinned(table_cache *tc, table_pin *pin, uint64_t file_number,
                                 uint64_t file_size, slice lookup_ikey, uint64_t hash,
                                 unsigned flags, sst_get_fn fn, void *arg);
/* table_cache_iter through a pin (the iterator must not outlive it).
 * `reuse`: an iterator this returned before, whose memory is reused
 * (taken over and destroyed if it cannot be); NULL for a new one. */
iter *table_cache_iter_pinned(table_cache *tc, table_pin *pin, uint64_t file_number,
                              uint64_t file_size, iter *reuse);
/* Drop the pin's handle, if any. No lookup may use the pin any more. */
void table_pin_release(table_pin *pin);

/* Iterator over one table that holds its handle until destroyed; on error
 * an error iterator (iter_new_error). NULL only on OOM. */
iter *table_cache_iter(table_cache *tc, uint64_t file_number, uint64_t file_size);

struct block_cache;
/* Readers opened from now on keep decompressed blocks in `cache`. */
void table_cache_set_block_cache(table_cache *tc, struct block_cache *cache);

/* Point lookups that reached a table, and how many of them the bloom
 * filter answered without reading a block. */
void table_cache_lookup_stats(table_cache *tc, uint64_t *lookups, uint64_t *bloom_useful);

/* Tables currently open. */
int table_cache_open_count(table_cache *tc);

#endif
