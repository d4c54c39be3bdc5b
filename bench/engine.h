/*
 * engine.h -- the small table of operations weir-bench drives every engine
 * through, so that each workload is one loop written once and the engines
 * differ only in their adapter (bench/engines/<name>.c).
 *
 * Handles are opaque void pointers owned by the adapter:
 *   db      one open store
 *   reader  per-thread read context (LMDB's read transaction and cursor,
 *           RocksDB/LevelDB read options); used by one thread only
 *   iter    an iterator over the latest state, made from a reader; a reader
 *           has at most one iterator open at a time
 * Calls that can fail return 0 on success and -1 on failure with a message
 * in the caller's buffer (err, BENCH_ERR_LEN bytes).
 */
#ifndef WEIR_BENCH_ENGINE_H
#define WEIR_BENCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_ERR_LEN 256

/* The settings every engine is opened with (see docs/BENCHMARKS.md). */
typedef struct bench_config {
    uint64_t num;             /* keys in the key space                     */
    size_t key_size;          /* always 16                                  */
    size_t value_size;        /* 100 by default                             */
    size_t write_buffer_size; /* memtable size: 64 MiB                      */
    size_t cache_size;        /* block cache: 64 MiB                        */
    int bloom_bits;           /* bloom filter bits per key: 10              */
} bench_config;

/* One put of a batch. */
typedef struct bench_kv {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} bench_kv;

typedef struct bench_engine_ops {
    const char *name;
    /* Library version, e.g. "7.8.3"; static storage. */
    const char *(*version)(void);
    /* One line naming the settings the adapter applies beyond bench_config
     * (durability mode, defaults left alone); static storage. */
    const char *(*settings)(void);

    int (*open)(const char *dir, const bench_config *cfg, void **db, char *err);
    /* Waits for the engine's own background work to stop, as its close
     * does. Returns -1 if the close reported an error. */
    int (*close)(void *db, char *err);

    /* Single put, the engine's non-fsyncing write-ahead-logged write. */
    int (*put)(void *db, const void *key, size_t klen, const void *val, size_t vlen, char *err);
    /* Apply n puts as one atomic batch. */
    int (*write_batch)(void *db, const bench_kv *kvs, size_t n, char *err);

    void *(*reader_open)(void *db, char *err);
    void (*reader_close)(void *reader);
    /* Copy the value of key into buf (cap bytes). Returns 1 if found (with
     * *vlen its length), 0 if absent, -1 on error. */
    int (*get)(void *reader, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen,
               char *err);

    void *(*iter_open)(void *reader, char *err);
    void (*iter_close)(void *iter);
    void (*iter_seek_first)(void *iter);
    void (*iter_seek_last)(void *iter);
    void (*iter_seek)(void *iter, const void *key, size_t klen);
    int (*iter_valid)(void *iter);
    void (*iter_next)(void *iter);
    void (*iter_prev)(void *iter);
    const void *(*iter_key)(void *iter, size_t *len);
    const void *(*iter_value)(void *iter, size_t *len);
    /* 0, or -1 with the error that stopped the iterator. */
    int (*iter_status)(void *iter, char *err);

    /* The engine's own view of itself (level layout, counters) as a
     * malloc'd string for the JSON report, or NULL. */
    char *(*describe)(void *db);
} bench_engine_ops;

extern const bench_engine_ops bench_engine_weir;
extern const bench_engine_ops bench_engine_rocksdb;
/* RocksDB configured for reads as its documentation advises (rocksdb.c). */
extern const bench_engine_ops bench_engine_rocksdb_tuned;
extern const bench_engine_ops bench_engine_leveldb;
extern const bench_engine_ops bench_engine_lmdb;

#endif
