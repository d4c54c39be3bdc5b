/*
 * weir.c -- weir-bench adapter for weir, through the public API only
 * (include/weir.h), as an application would use it.
 *
 * Durability: WEIR_SYNC_FLUSH, i.e. every write is handed to the OS with
 * write() before it is acknowledged and never fsynced, which is what
 * RocksDB and LevelDB do with sync=false.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine.h"
#include "weir.h"

typedef struct weir_bench_db {
    weir_db *db;
    weir_batch *batch; /* reused by write_batch; only one thread batches */
    weir_writeopts wo;
} weir_bench_db;

static int fail(char *err, const char *what) {
    snprintf(err, BENCH_ERR_LEN, "weir %s: %s", what, weir_errmsg());
    return -1;
}

static const char *weir_bench_version(void) { return weir_version(); }

static const char *weir_bench_settings(void) {
    return "sync=WEIR_SYNC_FLUSH (write() per write group, no fsync), compression none, "
           "block_size 4 KiB, other options at their defaults (2 background threads, "
           "L0 triggers 4/20/36, 64 MiB tables, 256 MiB level base); uncompressed tables "
           "are read through mmap + the OS page cache, so the 64 MiB block cache "
           "(decompressed blocks only) stays unused";
}

static int weir_bench_open(const char *dir, const bench_config *cfg, void **out, char *err) {
    weir_bench_db *h = calloc(1, sizeof *h);
    weir_options *o = weir_options_create();
    if (!h || !o) {
        free(h);
        weir_options_destroy(o);
        snprintf(err, BENCH_ERR_LEN, "weir open: out of memory");
        return -1;
    }
    int rc = weir_options_set_write_buffer_size(o, cfg->write_buffer_size);
    if (rc == WEIR_OK) rc = weir_options_set_bloom_bits_per_key(o, cfg->bloom_bits);
    if (rc == WEIR_OK) rc = weir_options_set_block_cache_size(o, cfg->cache_size);
    if (rc == WEIR_OK) rc = weir_options_set_compression(o, WEIR_COMPRESSION_NONE);
    if (rc == WEIR_OK) rc = weir_options_set_sync_mode(o, WEIR_SYNC_FLUSH);
    if (rc == WEIR_OK) rc = weir_open(dir, o, &h->db);
    weir_options_destroy(o);
    if (rc != WEIR_OK) {
        free(h);
        return fail(err, "open");
    }
    h->batch = weir_batch_create();
    if (!h->batch) {
        weir_close(h->db);
        free(h);
        snprintf(err, BENCH_ERR_LEN, "weir open: out of memory for the batch");
        return -1;
    }
    h->wo.sync = WEIR_SYNC_FLUSH;
    *out = h;
    return 0;
}

static int weir_bench_close(void *db, char *err) {
    weir_bench_db *h = db;
    weir_batch_destroy(h->batch);
    int rc = weir_close(h->db);
    free(h);
    return rc == WEIR_OK ? 0 : fail(err, "close");
}

static int weir_bench_put(void *db, const void *key, size_t klen, const void *val, size_t vlen,
                          char *err) {
    weir_bench_db *h = db;
    return weir_put(h->db, &h->wo, key, klen, val, vlen) == WEIR_OK ? 0 : fail(err, "put");
}

static int weir_bench_write_batch(void *db, const bench_kv *kvs, size_t n, char *err) {
    weir_bench_db *h = db;
    weir_batch_clear(h->batch);
    for (size_t i = 0; i < n; i++)
        if (weir_batch_put(h->batch, kvs[i].key, kvs[i].klen, kvs[i].val, kvs[i].vlen) != WEIR_OK)
            return fail(err, "batch_put");
    return weir_write(h->db, &h->wo, h->batch) == WEIR_OK ? 0 : fail(err, "write");
}

/* A reader keeps one iterator and refreshes it for each scan, as a user
 * running many short scans would: weir_iter_refresh moves it to the latest
 * state without building it again, the way LMDB's bench reader renews one
 * transaction and cursor. */
typedef struct {
    weir_bench_db *h;
    weir_iter *it;
} weir_bench_reader;

static void *weir_bench_reader_open(void *db, char *err) {
    weir_bench_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, BENCH_ERR_LEN, "weir reader: out of memory");
        return NULL;
    }
    r->h = db;
    return r;
}

static void weir_bench_reader_close(void *reader) {
    weir_bench_reader *r = reader;
    if (!r) return;
    weir_iter_destroy(r->it);
    free(r);
}

static int weir_bench_get(void *reader, const void *key, size_t klen, void *buf, size_t cap,
                          size_t *vlen, char *err) {
    weir_bench_reader *r = reader;
    int rc = weir_get(r->h->db, NULL, key, klen, buf, cap, vlen);
    if (rc == WEIR_OK) return 1;
    if (rc == WEIR_NOT_FOUND) return 0;
    return fail(err, "get");
}

static void *weir_bench_iter_open(void *reader, char *err) {
    weir_bench_reader *r = reader;
    int rc = r->it ? weir_iter_refresh(r->it) : weir_iter_create(r->h->db, NULL, &r->it);
    if (rc != WEIR_OK) {
        fail(err, r->it ? "iter_refresh" : "iter_create");
        return NULL;
    }
    return r->it;
}

/* The iterator lives until the reader closes. */
static void weir_bench_iter_close(void *it) { (void)it; }
static void weir_bench_iter_seek_first(void *it) { weir_iter_seek_first(it); }
static void weir_bench_iter_seek_last(void *it) { weir_iter_seek_last(it); }
static void weir_bench_iter_seek(void *it, const void *k, size_t kl) { weir_iter_seek(it, k, kl); }
static int weir_bench_iter_valid(void *it) { return weir_iter_valid(it); }
static void weir_bench_iter_next(void *it) { weir_iter_next(it); }
static void weir_bench_iter_prev(void *it) { weir_iter_prev(it); }
static const void *weir_bench_iter_key(void *it, size_t *len) { return weir_iter_key(it, len); }
static const void *weir_bench_iter_value(void *it, size_t *len) {
    return weir_iter_value(it, len);
}

static int weir_bench_iter_status(void *it, char *err) {
    return weir_iter_status(it) == WEIR_OK ? 0 : fail(err, "iterator");
}

static char *weir_bench_describe(void *db) {
    weir_bench_db *h = db;
    char *levels = NULL, *counters = NULL;
    weir_property(h->db, "weir.level-summary", &levels);
    weir_property(h->db, "weir.counters", &counters);
    size_t n = (levels ? strlen(levels) : 0) + (counters ? strlen(counters) : 0) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s\n%s", levels ? levels : "", counters ? counters : "");
    weir_free(levels);
    weir_free(counters);
    return out;
}

const bench_engine_ops bench_engine_weir = {
    .name = "weir",
    .version = weir_bench_version,
    .settings = weir_bench_settings,
    .open = weir_bench_open,
    .close = weir_bench_close,
    .put = weir_bench_put,
    .write_batch = weir_bench_write_batch,
    .reader_open = weir_bench_reader_open,
    .reader_close = weir_bench_reader_close,
    .get = weir_bench_get,
    .iter_open = weir_bench_iter_open,
    .iter_close = weir_bench_iter_close,
    .iter_seek_first = weir_bench_iter_seek_first,
    .iter_seek_last = weir_bench_iter_seek_last,
    .iter_seek = weir_bench_iter_seek,
    .iter_valid = weir_bench_iter_valid,
    .iter_next = weir_bench_iter_next,
    .iter_prev = weir_bench_iter_prev,
    .iter_key = weir_bench_iter_key,
    .iter_value = weir_bench_iter_value,
    .iter_status = weir_bench_iter_status,
    .describe = weir_bench_describe,
};
