/*
 * lmdb.c -- weir-bench adapter for LMDB (lmdb.h, Debian's liblmdb-dev).
 *
 * LMDB is a copy-on-write B+tree in one memory-mapped file with no log:
 * each put here is its own write transaction, each batch one transaction,
 * and each read a read transaction (renewed, not re-allocated, as LMDB
 * recommends). The environment is opened with MDB_NOSYNC: a commit writes
 * the dirty pages to the OS and skips the fsync, the nearest LMDB has to
 * "WAL on, no fsync". The durability is not the same: after a process crash
 * every committed transaction is there, as with the LSM engines, but after
 * an OS crash or power loss the last transactions may be lost (and with
 * MDB_NOSYNC the file's integrity is left to the file system), where the
 * LSM engines lose an unsynced log tail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "../engine.h"

typedef struct lmdb_db {
    MDB_env *env;
    MDB_dbi dbi;
} lmdb_db;

typedef struct lmdb_reader lmdb_reader;

/* A reader's one iterator lives inside it, so opening one per seek (as the
 * seekrandom workload does) costs a transaction renew, not a malloc. */
typedef struct lmdb_iter {
    lmdb_reader *r;
    MDB_val key, val;
    int valid;
    int error; /* first LMDB error other than MDB_NOTFOUND */
} lmdb_iter;

struct lmdb_reader {
    lmdb_db *h;
    MDB_txn *txn;       /* read-only, kept reset between reads */
    MDB_cursor *cursor; /* renewed with txn */
    lmdb_iter it;
};

static int fail(char *err, const char *what, int rc) {
    snprintf(err, BENCH_ERR_LEN, "lmdb %s: %s", what, mdb_strerror(rc));
    return -1;
}

static const char *lmdb_version(void) {
    static char v[32];
    int major, minor, patch;
    mdb_version(&major, &minor, &patch);
    snprintf(v, sizeof v, "%d.%d.%d", major, minor, patch);
    return v;
}

static const char *lmdb_settings(void) {
    return "MDB_NOSYNC (commits written to the OS, never fsynced; no WAL: a B+tree with "
           "copy-on-write pages), one write transaction per put / per batch, read "
           "transactions renewed per read; no write buffer, cache or bloom filter "
           "(reads go through mmap + the OS page cache), map size sized to the run";
}

static int lmdb_open(const char *dir, const bench_config *cfg, void **out, char *err) {
    lmdb_db *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, BENCH_ERR_LEN, "lmdb open: out of memory");
        return -1;
    }
    /* The map only reserves address space; the file grows as pages are
     * written. Leave room for copy-on-write garbage and half-full pages. */
    uint64_t want = cfg->num * (uint64_t)(cfg->key_size + cfg->value_size) * 16;
    if (want < (1ull << 30)) want = 1ull << 30;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&h->env);
    if (rc == 0) rc = mdb_env_set_mapsize(h->env, (size_t)want);
    if (rc == 0) rc = mdb_env_open(h->env, dir, MDB_NOSYNC, 0644);
    if (rc == 0) rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, NULL, 0, &h->dbi);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc != 0) {
        if (txn) mdb_txn_abort(txn);
        if (h->env) mdb_env_close(h->env);
        free(h);
        return fail(err, "open", rc);
    }
    *out = h;
    return 0;
}

static int lmdb_close(void *db, char *err) {
    (void)err;
    lmdb_db *h = db;
    mdb_env_close(h->env);
    free(h);
    return 0;
}

static int lmdb_put(void *db, const void *key, size_t klen, const void *val, size_t vlen,
                    char *err) {
    lmdb_db *h = db;
    MDB_txn *txn;
    int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (rc != 0) return fail(err, "txn_begin", rc);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    rc = mdb_put(txn, h->dbi, &k, &v, 0);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return fail(err, "put", rc);
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : fail(err, "commit", rc);
}

static int lmdb_write_batch(void *db, const bench_kv *kvs, size_t n, char *err) {
    lmdb_db *h = db;
    MDB_txn *txn;
    int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (rc != 0) return fail(err, "txn_begin", rc);
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {kvs[i].klen, (void *)kvs[i].key}, v = {kvs[i].vlen, (void *)kvs[i].val};
        rc = mdb_put(txn, h->dbi, &k, &v, 0);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return fail(err, "put", rc);
        }
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : fail(err, "commit", rc);
}

static void *lmdb_reader_open(void *db, char *err) {
    lmdb_db *h = db;
    lmdb_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, BENCH_ERR_LEN, "lmdb reader: out of memory");
        return NULL;
    }
    r->h = h;
    int rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &r->txn);
    if (rc == 0) rc = mdb_cursor_open(r->txn, h->dbi, &r->cursor);
    if (rc != 0) {
        if (r->txn) mdb_txn_abort(r->txn);
        free(r);
        fail(err, "reader", rc);
        return NULL;
    }
    mdb_txn_reset(r->txn);
    return r;
}

static void lmdb_reader_close(void *reader) {
    lmdb_reader *r = reader;
    if (!r) return;
    mdb_cursor_close(r->cursor);
    mdb_txn_abort(r->txn);
    free(r);
}

static int lmdb_get(void *reader, const void *key, size_t klen, void *buf, size_t cap,
                    size_t *vlen, char *err) {
    lmdb_reader *r = reader;
    int rc = mdb_txn_renew(r->txn);
    if (rc != 0) return fail(err, "txn_renew", rc);
    MDB_val k = {klen, (void *)key}, v;
    rc = mdb_get(r->txn, r->h->dbi, &k, &v);
    int found = 0;
    if (rc == 0) {
        memcpy(buf, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
        *vlen = v.mv_size;
        found = 1;
    }
    mdb_txn_reset(r->txn);
    if (rc != 0 && rc != MDB_NOTFOUND) return fail(err, "get", rc);
    return found;
}

static void *lmdb_iter_open(void *reader, char *err) {
    lmdb_reader *r = reader;
    int rc = mdb_txn_renew(r->txn);
    if (rc == 0) rc = mdb_cursor_renew(r->txn, r->cursor);
    if (rc != 0) {
        fail(err, "iterator", rc);
        return NULL;
    }
    memset(&r->it, 0, sizeof r->it);
    r->it.r = r;
    return &r->it;
}

static void lmdb_iter_close(void *iter) {
    lmdb_iter *it = iter;
    mdb_txn_reset(it->r->txn);
}

static void lmdb_iter_move(lmdb_iter *it, MDB_cursor_op op) {
    int rc = mdb_cursor_get(it->r->cursor, &it->key, &it->val, op);
    it->valid = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND && !it->error) it->error = rc;
}

static void lmdb_iter_seek_first(void *it) { lmdb_iter_move(it, MDB_FIRST); }
static void lmdb_iter_seek_last(void *it) { lmdb_iter_move(it, MDB_LAST); }
static void lmdb_iter_seek(void *iter, const void *k, size_t kl) {
    lmdb_iter *it = iter;
    it->key.mv_size = kl;
    it->key.mv_data = (void *)k;
    lmdb_iter_move(it, MDB_SET_RANGE);
}
static int lmdb_iter_valid(void *iter) { return ((lmdb_iter *)iter)->valid; }
static void lmdb_iter_next(void *it) { lmdb_iter_move(it, MDB_NEXT); }
static void lmdb_iter_prev(void *it) { lmdb_iter_move(it, MDB_PREV); }

static const void *lmdb_iter_key(void *iter, size_t *len) {
    lmdb_iter *it = iter;
    *len = it->key.mv_size;
    return it->key.mv_data;
}

static const void *lmdb_iter_value(void *iter, size_t *len) {
    lmdb_iter *it = iter;
    *len = it->val.mv_size;
    return it->val.mv_data;
}

static int lmdb_iter_status(void *iter, char *err) {
    lmdb_iter *it = iter;
    return it->error ? fail(err, "iterator", it->error) : 0;
}

static char *lmdb_describe(void *db) {
    lmdb_db *h = db;
    MDB_stat st;
    MDB_envinfo info;
    if (mdb_env_stat(h->env, &st) != 0 || mdb_env_info(h->env, &info) != 0) return NULL;
    char *out = NULL;
    if (asprintf(&out,
                 "depth %u\nbranch_pages %zu\nleaf_pages %zu\noverflow_pages %zu\n"
                 "entries %zu\nlast_pgno %zu\npage_size %u\nmap_size %zu\n",
                 st.ms_depth, st.ms_branch_pages, st.ms_leaf_pages, st.ms_overflow_pages,
                 st.ms_entries, info.me_last_pgno, st.ms_psize, info.me_mapsize) < 0)
        return NULL;
    return out;
}

const bench_engine_ops bench_engine_lmdb = {
    .name = "lmdb",
    .version = lmdb_version,
    .settings = lmdb_settings,
    .open = lmdb_open,
    .close = lmdb_close,
    .put = lmdb_put,
    .write_batch = lmdb_write_batch,
    .reader_open = lmdb_reader_open,
    .reader_close = lmdb_reader_close,
    .get = lmdb_get,
    .iter_open = lmdb_iter_open,
    .iter_close = lmdb_iter_close,
    .iter_seek_first = lmdb_iter_seek_first,
    .iter_seek_last = lmdb_iter_seek_last,
    .iter_seek = lmdb_iter_seek,
    .iter_valid = lmdb_iter_valid,
    .iter_next = lmdb_iter_next,
    .iter_prev = lmdb_iter_prev,
    .iter_key = lmdb_iter_key,
    .iter_value = lmdb_iter_value,
    .iter_status = lmdb_iter_status,
    .describe = lmdb_describe,
};
