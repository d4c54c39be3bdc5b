/*
 * leveldb.c -- weir-bench adapter for LevelDB through its C API
 * (leveldb/c.h, Debian's libleveldb-dev).
 *
 * Durability: log on, WriteOptions.sync = false (written to the OS, never
 * fsynced). LevelDB's C API has one read call, leveldb_get, which returns
 * a malloc'd copy of the value: that copy and free are part of its reads
 * here, as they are for any C caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#include "../engine.h"

typedef struct ldb_db {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_writeoptions_t *wo;
    leveldb_writebatch_t *batch; /* reused by write_batch; one batching thread */
} ldb_db;

typedef struct ldb_reader {
    leveldb_t *db;
    leveldb_readoptions_t *ro;
} ldb_reader;

/* Takes ownership of msg (a LevelDB error string). */
static int fail(char *err, const char *what, char *msg) {
    snprintf(err, BENCH_ERR_LEN, "leveldb %s: %s", what, msg ? msg : "failed");
    leveldb_free(msg);
    return -1;
}

static const char *ldb_version(void) {
    static char v[32];
    snprintf(v, sizeof v, "%d.%d", leveldb_major_version(), leveldb_minor_version());
    return v;
}

static const char *ldb_settings(void) {
    return "log on, sync=false, compression none, 4 KiB blocks, bloom filter policy, LRU "
           "block cache; other options at LevelDB's defaults (one background thread, "
           "2 MiB table files, 10 MiB level-1 budget, L0 triggers 4/8/12, 1000 open files)";
}

static void ldb_free_handles(ldb_db *h) {
    if (h->batch) leveldb_writebatch_destroy(h->batch);
    if (h->wo) leveldb_writeoptions_destroy(h->wo);
    if (h->opts) leveldb_options_destroy(h->opts);
    /* The options do not own the cache and the policy: the DB used them
     * until it was closed. */
    if (h->filter) leveldb_filterpolicy_destroy(h->filter);
    if (h->cache) leveldb_cache_destroy(h->cache);
    free(h);
}

static int ldb_open(const char *dir, const bench_config *cfg, void **out, char *err) {
    ldb_db *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, BENCH_ERR_LEN, "leveldb open: out of memory");
        return -1;
    }
    h->opts = leveldb_options_create();
    h->cache = leveldb_cache_create_lru(cfg->cache_size);
    h->filter = leveldb_filterpolicy_create_bloom(cfg->bloom_bits);
    h->wo = leveldb_writeoptions_create();
    h->batch = leveldb_writebatch_create();
    leveldb_options_set_create_if_missing(h->opts, 1);
    leveldb_options_set_write_buffer_size(h->opts, cfg->write_buffer_size);
    leveldb_options_set_cache(h->opts, h->cache);
    leveldb_options_set_filter_policy(h->opts, h->filter);
    leveldb_options_set_compression(h->opts, leveldb_no_compression);
    leveldb_writeoptions_set_sync(h->wo, 0);

    char *msg = NULL;
    h->db = leveldb_open(h->opts, dir, &msg);
    if (!h->db || msg) {
        ldb_free_handles(h);
        return fail(err, "open", msg);
    }
    *out = h;
    return 0;
}

static int ldb_close(void *db, char *err) {
    (void)err;
    ldb_db *h = db;
    leveldb_close(h->db);
    ldb_free_handles(h);
    return 0;
}

static int ldb_put(void *db, const void *key, size_t klen, const void *val, size_t vlen,
                   char *err) {
    ldb_db *h = db;
    char *msg = NULL;
    leveldb_put(h->db, h->wo, key, klen, val, vlen, &msg);
    return msg ? fail(err, "put", msg) : 0;
}

static int ldb_write_batch(void *db, const bench_kv *kvs, size_t n, char *err) {
    ldb_db *h = db;
    leveldb_writebatch_clear(h->batch);
    for (size_t i = 0; i < n; i++)
        leveldb_writebatch_put(h->batch, kvs[i].key, kvs[i].klen, kvs[i].val, kvs[i].vlen);
    char *msg = NULL;
    leveldb_write(h->db, h->wo, h->batch, &msg);
    return msg ? fail(err, "write", msg) : 0;
}

static void *ldb_reader_open(void *db, char *err) {
    ldb_db *h = db;
    ldb_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, BENCH_ERR_LEN, "leveldb reader: out of memory");
        return NULL;
    }
    r->db = h->db;
    r->ro = leveldb_readoptions_create();
    return r;
}

static void ldb_reader_close(void *reader) {
    ldb_reader *r = reader;
    if (!r) return;
    leveldb_readoptions_destroy(r->ro);
    free(r);
}

static int ldb_get(void *reader, const void *key, size_t klen, void *buf, size_t cap,
                   size_t *vlen, char *err) {
    ldb_reader *r = reader;
    char *msg = NULL;
    size_t len = 0;
    char *v = leveldb_get(r->db, r->ro, key, klen, &len, &msg);
    if (msg) return fail(err, "get", msg);
    if (!v) return 0;
    memcpy(buf, v, len < cap ? len : cap);
    *vlen = len;
    leveldb_free(v);
    return 1;
}

static void *ldb_iter_open(void *reader, char *err) {
    ldb_reader *r = reader;
    leveldb_iterator_t *it = leveldb_create_iterator(r->db, r->ro);
    if (!it) snprintf(err, BENCH_ERR_LEN, "leveldb create_iterator failed");
    return it;
}

static void ldb_iter_close(void *it) { leveldb_iter_destroy(it); }
static void ldb_iter_seek_first(void *it) { leveldb_iter_seek_to_first(it); }
static void ldb_iter_seek_last(void *it) { leveldb_iter_seek_to_last(it); }
static void ldb_iter_seek(void *it, const void *k, size_t kl) { leveldb_iter_seek(it, k, kl); }
static int ldb_iter_valid(void *it) { return leveldb_iter_valid(it); }
static void ldb_iter_next(void *it) { leveldb_iter_next(it); }
static void ldb_iter_prev(void *it) { leveldb_iter_prev(it); }
static const void *ldb_iter_key(void *it, size_t *len) { return leveldb_iter_key(it, len); }
static const void *ldb_iter_value(void *it, size_t *len) { return leveldb_iter_value(it, len); }

static int ldb_iter_status(void *it, char *err) {
    char *msg = NULL;
    leveldb_iter_get_error(it, &msg);
    return msg ? fail(err, "iterator", msg) : 0;
}

static char *ldb_describe(void *db) {
    ldb_db *h = db;
    char *stats = leveldb_property_value(h->db, "leveldb.stats");
    char *out = stats ? strdup(stats) : NULL;
    leveldb_free(stats);
    return out;
}

const bench_engine_ops bench_engine_leveldb = {
    .name = "leveldb",
    .version = ldb_version,
    .settings = ldb_settings,
    .open = ldb_open,
    .close = ldb_close,
    .put = ldb_put,
    .write_batch = ldb_write_batch,
    .reader_open = ldb_reader_open,
    .reader_close = ldb_reader_close,
    .get = ldb_get,
    .iter_open = ldb_iter_open,
    .iter_close = ldb_iter_close,
    .iter_seek_first = ldb_iter_seek_first,
    .iter_seek_last = ldb_iter_seek_last,
    .iter_seek = ldb_iter_seek,
    .iter_valid = ldb_iter_valid,
    .iter_next = ldb_iter_next,
    .iter_prev = ldb_iter_prev,
    .iter_key = ldb_iter_key,
    .iter_value = ldb_iter_value,
    .iter_status = ldb_iter_status,
    .describe = ldb_describe,
};
