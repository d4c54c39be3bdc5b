/*
 * rocksdb.c -- weir-bench adapters for RocksDB through its C API
 * (rocksdb/c.h, Debian's librocksdb-dev): "rocksdb", left at RocksDB's
 * defaults, and "rocksdb-tuned", configured for reads as RocksDB's own
 * documentation advises. The two share every call but open().
 *
 * Durability (both): WAL on, WriteOptions.sync = false (each write is
 * written to the OS, never fsynced). Table options: block-based tables,
 * 4 KiB blocks (RocksDB's default), full bloom filters, an LRU block cache;
 * for "rocksdb" everything not named in bench_config is left at RocksDB's
 * defaults. rocks_open_tuned() lists what "rocksdb-tuned" adds and where
 * each setting comes from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "../engine.h"

#ifndef WEIR_BENCH_ROCKSDB_VERSION
#define WEIR_BENCH_ROCKSDB_VERSION "unknown"
#endif

typedef struct rocks_db {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wo;
    rocksdb_writebatch_t *batch; /* reused by write_batch; one batching thread */
} rocks_db;

typedef struct rocks_reader {
    rocksdb_t *db;
    rocksdb_readoptions_t *ro;
} rocks_reader;

/* Takes ownership of msg (a RocksDB error string). */
static int fail(char *err, const char *what, char *msg) {
    snprintf(err, BENCH_ERR_LEN, "rocksdb %s: %s", what, msg ? msg : "failed");
    rocksdb_free(msg);
    return -1;
}

static const char *rocks_version(void) { return WEIR_BENCH_ROCKSDB_VERSION; }

static const char *rocks_tuned_settings(void) {
    return "as rocksdb, plus: allow_mmap_reads, max_open_files -1, "
           "level_compaction_dynamic_level_bytes, memtable_prefix_bloom_size_ratio 0.02 with "
           "memtable_whole_key_filtering, data_block_index_type kDataBlockBinaryAndHash with "
           "data_block_hash_table_util_ratio 0.75, whole_key_filtering, "
           "cache_index_and_filter_blocks (with high priority), "
           "pin_l0_filter_and_index_blocks_in_cache, pin_top_level_index_and_filter, and "
           "(through rocksdb_get_options_from_string, as c.h has no setter) "
           "metadata_cache_options {top_level_index_pinning, partition_pinning, "
           "unpartitioned_pinning} = kAll";
}

static const char *rocks_settings(void) {
    return "WAL on, sync=false, compression none (also bottommost), block-based tables "
           "with 4 KiB blocks, full bloom filters, LRU block cache; other options at "
           "RocksDB's defaults (leveled compaction, 2 background jobs, L0 triggers 4/20/36, "
           "64 MiB target files, 256 MiB level base, index/filter blocks outside the cache)";
}

static void rocks_free_handles(rocks_db *h) {
    if (h->batch) rocksdb_writebatch_destroy(h->batch);
    if (h->wo) rocksdb_writeoptions_destroy(h->wo);
    if (h->opts) rocksdb_options_destroy(h->opts);
    if (h->table_opts) rocksdb_block_based_options_destroy(h->table_opts);
    if (h->cache) rocksdb_cache_destroy(h->cache);
    free(h);
}

/* Pins the index and filter blocks of every table, not only L0's: the
 * newer form of the pin_* flags (BlockBasedTableOptions::
 * metadata_cache_options), which c.h 7.8 has no setter for, so it goes
 * through RocksDB's option-string parser, applied on top of the options
 * already set (the table factory's other options are kept). */
#define ROCKS_TUNED_OPTION_STRING                                                           \
    "block_based_table_factory={metadata_cache_options={top_level_index_pinning=kAll;"    \
    "partition_pinning=kAll;unpartitioned_pinning=kAll}}"

/* What "rocksdb-tuned" sets on top of rocks_open's options, each from
 * RocksDB's documentation of point lookups:
 *   - allow_mmap_reads: tables are read through mmap instead of pread into
 *     the block cache (uncompressed blocks are then used in place), as the
 *     tuning guide advises for data that fits in memory;
 *   - max_open_files = -1: every table stays open, so no lookup pays a
 *     table-cache miss (RocksDB's default, set to make it explicit);
 *   - level_compaction_dynamic_level_bytes (the basic-tuning page's
 *     recommendation): level sizes are derived from the last level, so most
 *     data sits in one level and a lookup probes fewer tables;
 *   - memtable_prefix_bloom_size_ratio 0.02 with memtable_whole_key_filtering
 *     (what OptimizeForPointLookup sets): a bloom filter over the memtable's
 *     keys, so most lookups skip the memtable search;
 *   - data_block_index_type kDataBlockBinaryAndHash with util ratio 0.75
 *     (the data-block hash index; also from OptimizeForPointLookup): a
 *     point lookup finds its key in a block by hash, not binary search;
 *   - whole_key_filtering (the default, set explicitly) with the same full
 *     bloom filters as "rocksdb";
 *   - cache_index_and_filter_blocks with high priority,
 *     pin_l0_filter_and_index_blocks_in_cache, pin_top_level_index_and_filter
 *     and metadata_cache_options pinning kAll (the block-cache page): index
 *     and filter blocks are charged to the block cache and held there.
 * rocksdb_options_optimize_for_point_lookup() itself is not called: it
 * replaces the table factory (dropping the cache size and the settings
 * above), so its settings are applied one by one instead. */
static int rocks_open_impl(const char *dir, const bench_config *cfg, int tuned, void **out,
                           char *err) {
    rocks_db *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, BENCH_ERR_LEN, "rocksdb open: out of memory");
        return -1;
    }
    h->opts = rocksdb_options_create();
    h->table_opts = rocksdb_block_based_options_create();
    h->cache = rocksdb_cache_create_lru(cfg->cache_size);
    h->wo = rocksdb_writeoptions_create();
    h->batch = rocksdb_writebatch_create();
    rocksdb_options_set_create_if_missing(h->opts, 1);
    rocksdb_options_set_write_buffer_size(h->opts, cfg->write_buffer_size);
    rocksdb_options_set_compression(h->opts, rocksdb_no_compression);
    rocksdb_options_set_bottommost_compression(h->opts, rocksdb_no_compression);
    rocksdb_block_based_options_set_block_cache(h->table_opts, h->cache);
    /* The table options take ownership of the policy. */
    rocksdb_block_based_options_set_filter_policy(
        h->table_opts, rocksdb_filterpolicy_create_bloom_full((double)cfg->bloom_bits));
    if (tuned) {
        rocksdb_options_set_allow_mmap_reads(h->opts, 1);
        rocksdb_options_set_max_open_files(h->opts, -1);
        rocksdb_options_set_level_compaction_dynamic_level_bytes(h->opts, 1);
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(h->opts, 0.02);
        rocksdb_options_set_memtable_whole_key_filtering(h->opts, 1);
        rocksdb_block_based_options_set_block_size(h->table_opts, 4096);
        rocksdb_block_based_options_set_whole_key_filtering(h->table_opts, 1);
        rocksdb_block_based_options_set_data_block_index_type(
            h->table_opts, rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
        rocksdb_block_based_options_set_data_block_hash_ratio(h->table_opts, 0.75);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(h->table_opts, 1);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(
            h->table_opts, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(h->table_opts, 1);
        rocksdb_block_based_options_set_pin_top_level_index_and_filter(h->table_opts, 1);
    }
    rocksdb_options_set_block_based_table_factory(h->opts, h->table_opts);
    rocksdb_writeoptions_set_sync(h->wo, 0);
    rocksdb_writeoptions_disable_WAL(h->wo, 0);

    char *msg = NULL;
    if (tuned) {
        rocksdb_options_t *parsed = rocksdb_options_create();
        rocksdb_get_options_from_string(h->opts, ROCKS_TUNED_OPTION_STRING, parsed, &msg);
        if (msg) {
            rocksdb_options_destroy(parsed);
            rocks_free_handles(h);
            return fail(err, "options string", msg);
        }
        rocksdb_options_destroy(h->opts);
        h->opts = parsed;
    }
    h->db = rocksdb_open(h->opts, dir, &msg);
    if (!h->db || msg) {
        rocks_free_handles(h);
        return fail(err, "open", msg);
    }
    *out = h;
    return 0;
}

static int rocks_open(const char *dir, const bench_config *cfg, void **out, char *err) {
    return rocks_open_impl(dir, cfg, 0, out, err);
}

static int rocks_open_tuned(const char *dir, const bench_config *cfg, void **out, char *err) {
    return rocks_open_impl(dir, cfg, 1, out, err);
}

static int rocks_close(void *db, char *err) {
    (void)err;
    rocks_db *h = db;
    rocksdb_close(h->db);
    rocks_free_handles(h);
    return 0;
}

static int rocks_put(void *db, const void *key, size_t klen, const void *val, size_t vlen,
                     char *err) {
    rocks_db *h = db;
    char *msg = NULL;
    rocksdb_put(h->db, h->wo, key, klen, val, vlen, &msg);
    return msg ? fail(err, "put", msg) : 0;
}

static int rocks_write_batch(void *db, const bench_kv *kvs, size_t n, char *err) {
    rocks_db *h = db;
    rocksdb_writebatch_clear(h->batch);
    for (size_t i = 0; i < n; i++)
        rocksdb_writebatch_put(h->batch, kvs[i].key, kvs[i].klen, kvs[i].val, kvs[i].vlen);
    char *msg = NULL;
    rocksdb_write(h->db, h->wo, h->batch, &msg);
    return msg ? fail(err, "write", msg) : 0;
}

static void *rocks_reader_open(void *db, char *err) {
    rocks_db *h = db;
    rocks_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, BENCH_ERR_LEN, "rocksdb reader: out of memory");
        return NULL;
    }
    r->db = h->db;
    r->ro = rocksdb_readoptions_create();
    return r;
}

static void rocks_reader_close(void *reader) {
    rocks_reader *r = reader;
    if (!r) return;
    rocksdb_readoptions_destroy(r->ro);
    free(r);
}

/* get_pinned is the C API's cheapest read: the value stays pinned in the
 * memtable or block cache instead of being copied into a malloc'd string. */
static int rocks_get(void *reader, const void *key, size_t klen, void *buf, size_t cap,
                     size_t *vlen, char *err) {
    rocks_reader *r = reader;
    char *msg = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(r->db, r->ro, key, klen, &msg);
    if (msg) return fail(err, "get", msg);
    if (!ps) return 0;
    size_t len = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &len);
    memcpy(buf, v, len < cap ? len : cap);
    *vlen = len;
    rocksdb_pinnableslice_destroy(ps);
    return 1;
}

static void *rocks_iter_open(void *reader, char *err) {
    rocks_reader *r = reader;
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ro);
    if (!it) snprintf(err, BENCH_ERR_LEN, "rocksdb create_iterator failed");
    return it;
}

static void rocks_iter_close(void *it) { rocksdb_iter_destroy(it); }
static void rocks_iter_seek_first(void *it) { rocksdb_iter_seek_to_first(it); }
static void rocks_iter_seek_last(void *it) { rocksdb_iter_seek_to_last(it); }
static void rocks_iter_seek(void *it, const void *k, size_t kl) { rocksdb_iter_seek(it, k, kl); }
static int rocks_iter_valid(void *it) { return rocksdb_iter_valid(it); }
static void rocks_iter_next(void *it) { rocksdb_iter_next(it); }
static void rocks_iter_prev(void *it) { rocksdb_iter_prev(it); }
static const void *rocks_iter_key(void *it, size_t *len) { return rocksdb_iter_key(it, len); }
static const void *rocks_iter_value(void *it, size_t *len) { return rocksdb_iter_value(it, len); }

static int rocks_iter_status(void *it, char *err) {
    char *msg = NULL;
    rocksdb_iter_get_error(it, &msg);
    return msg ? fail(err, "iterator", msg) : 0;
}

static char *rocks_describe(void *db) {
    rocks_db *h = db;
    char *levels = rocksdb_property_value(h->db, "rocksdb.levelstats");
    char *stats = rocksdb_property_value(h->db, "rocksdb.stats");
    size_t n = (levels ? strlen(levels) : 0) + (stats ? strlen(stats) : 0) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s\n%s", levels ? levels : "", stats ? stats : "");
    rocksdb_free(levels);
    rocksdb_free(stats);
    return out;
}

const bench_engine_ops bench_engine_rocksdb = {
    .name = "rocksdb",
    .version = rocks_version,
    .settings = rocks_settings,
    .open = rocks_open,
    .close = rocks_close,
    .put = rocks_put,
    .write_batch = rocks_write_batch,
    .reader_open = rocks_reader_open,
    .reader_close = rocks_reader_close,
    .get = rocks_get,
    .iter_open = rocks_iter_open,
    .iter_close = rocks_iter_close,
    .iter_seek_first = rocks_iter_seek_first,
    .iter_seek_last = rocks_iter_seek_last,
    .iter_seek = rocks_iter_seek,
    .iter_valid = rocks_iter_valid,
    .iter_next = rocks_iter_next,
    .iter_prev = rocks_iter_prev,
    .iter_key = rocks_iter_key,
    .iter_value = rocks_iter_value,
    .iter_status = rocks_iter_status,
    .describe = rocks_describe,
};

const bench_engine_ops bench_engine_rocksdb_tuned = {
    .name = "rocksdb-tuned",
    .version = rocks_version,
    .settings = rocks_tuned_settings,
    .open = rocks_open_tuned,
    .close = rocks_close,
    .put = rocks_put,
    .write_batch = rocks_write_batch,
    .reader_open = rocks_reader_open,
    .reader_close = rocks_reader_close,
    .get = rocks_get,
    .iter_open = rocks_iter_open,
    .iter_close = rocks_iter_close,
    .iter_seek_first = rocks_iter_seek_first,
    .iter_seek_last = rocks_iter_seek_last,
    .iter_seek = rocks_iter_seek,
    .iter_valid = rocks_iter_valid,
    .iter_next = rocks_iter_next,
    .iter_prev = rocks_iter_prev,
    .iter_key = rocks_iter_key,
    .iter_value = rocks_iter_value,
    .iter_status = rocks_iter_status,
    .describe = rocks_describe,
};
