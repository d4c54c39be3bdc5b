/*
 * weir.h -- the public C API of weir, a crash-safe embedded key-value store.
 *
 * Conventions
 *   - Handles are opaque. Every call that can fail returns an int status,
 *     WEIR_OK (0) on success. weir_errmsg() returns a human-readable message
 *     for the last failure *in the calling thread* (like errno, so concurrent
 *     threads never see each other's messages). Messages name the directory,
 *     file and offset where that applies.
 *   - No call aborts the process on bad input or a bad file: NULL handles,
 *     NULL pointers with a non-zero length, oversized keys and corrupt files
 *     all come back as a status.
 *   - Keys and values are arbitrary bytes. Keys are ordered bytewise
 *     (memcmp, shorter first on a common prefix). A key may be empty; keys
 *     are at most WEIR_MAX_KEY_SIZE bytes, values at most WEIR_MAX_VALUE_SIZE.
 *   - Memory returned by weir (weir_get_alloc, weir_multi_get,
 *     weir_property) is released with weir_free(). Pointers returned by an
 *     iterator stay valid until the iterator moves or is destroyed.
 *   - A weir_db is safe to use from many threads at once. Batches and
 *     iterators are not: use one per thread (or lock around them).
 *   - Option structs (weir_writeopts, weir_readopts, weir_txnopts) are
 *     zero-initialised by the caller ({0}, or memset). Each ends in
 *     `reserved` words: a later release adds a field only by taking one of
 *     them, so the struct's size and every field's offset stay the same, and
 *     a program built against an older header (which leaves them zero)
 *     works unchanged with a newer library. A non-zero reserved word is
 *     refused with WEIR_INVALID, so nothing can come to depend on one.
 *     weir_options is opaque and grows behind its setters.
 */
#ifndef WEIR_H
#define WEIR_H

#include <stddef.h>
#include <stdint.h>

/* ---- version ------------------------------------------------------------
 * The version of this header; weir_version() returns the library's at run
 * time, so an application can tell a header and a library from different
 * releases apart. CMakeLists.txt's project() version must be the same
 * (configuring fails otherwise, and the `version_macros` test checks it). */
#define WEIR_VERSION_MAJOR 0
#define WEIR_VERSION_MINOR 1
#define WEIR_VERSION_PATCH 0
#define WEIR_VERSION_STRING "0.1.0"
/* One comparable number: MAJOR * 10000 + MINOR * 100 + PATCH (0.1.0 is 100),
 * for `#if WEIR_VERSION_NUMBER >= 100`. */
#define WEIR_VERSION_NUMBER \
    (WEIR_VERSION_MAJOR * 10000 + WEIR_VERSION_MINOR * 100 + WEIR_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(WEIR_BUILDING_STATIC)
#define WEIR_API __attribute__((visibility("default")))
#else
#define WEIR_API
#endif

/* ---- status codes ------------------------------------------------------ */

enum {
    WEIR_OK = 0,
    WEIR_NOT_FOUND = 1,        /* key absent (not an error for reads)       */
    WEIR_CORRUPTION = 2,       /* a checksum or format check failed         */
    WEIR_IO_ERROR = 3,         /* the OS refused a file operation           */
    WEIR_BUSY = 4,             /* the directory is locked by another open   */
    WEIR_INVALID = 5,          /* bad argument or option                    */
    WEIR_NO_SPACE = 6,         /* the file system is full (ENOSPC/EDQUOT)   */
    WEIR_NO_MEMORY = 7,        /* an allocation failed                      */
    WEIR_BUFFER_TOO_SMALL = 8, /* weir_get: value longer than the buffer    */
    WEIR_EXISTS = 9,           /* error_if_exists and the DB exists         */
    WEIR_NOT_SUPPORTED = 10,   /* e.g. a codec not compiled in              */
    WEIR_READ_ONLY = 11,       /* writes refused: opened read-only, or a
                                  background error stopped them            */
    WEIR_CLOSED = 12,          /* the DB is being closed                    */
    WEIR_CONFLICT = 13,        /* a transaction lost to a concurrent commit */
    WEIR_INCOMPLETE = 14       /* a memory_only read needs a read from disk */
};

/* Largest key and value accepted by every write call. */
#define WEIR_MAX_KEY_SIZE (1u << 20)          /* 1 MiB   */
#define WEIR_MAX_VALUE_SIZE (1u << 30)        /* 1 GiB   */

/* Human-readable message of the calling thread's last failed call. Never
 * NULL; valid until the next weir call in this thread. */
WEIR_API const char *weir_errmsg(void);

/* Short constant name of a status ("WEIR_CORRUPTION"); never NULL. */
WEIR_API const char *weir_status_name(int status);

/* Library version string, e.g. "0.1.0". */
WEIR_API const char *weir_version(void);

/* One line describing this build: version, CRC32C implementation and the
 * compression codecs compiled in, e.g.
 * "weir 0.1.0 (crc32c: sse4.2; compression: none lz4 zstd)". */
WEIR_API const char *weir_build_info(void);

/* Release memory that weir allocated for the caller. NULL is fine. */
WEIR_API void weir_free(void *ptr);

/* ---- options ------------------------------------------------------------ */

typedef struct weir_options weir_options;

/* When a write is acknowledged, how far has it travelled? */
typedef enum weir_sync_mode {
    WEIR_SYNC_DEFAULT = 0, /* per write: use the DB's default              */
    WEIR_SYNC_NONE = 1,    /* in weir's log buffer: survives a clean close */
    WEIR_SYNC_FLUSH = 2,   /* written to the OS: survives a process crash  */
    WEIR_SYNC_FSYNC = 3    /* fdatasync'ed: survives power loss            */
} weir_sync_mode;

WEIR_API weir_options *weir_options_create(void); /* NULL if out of memory */
WEIR_API void weir_options_destroy(weir_options *opts);

/* Setters return WEIR_INVALID (with a message) for out-of-range values and
 * leave the option unchanged. Defaults in brackets. */
WEIR_API int weir_options_set_create_if_missing(weir_options *o, int yes); /* [1] */
WEIR_API int weir_options_set_error_if_exists(weir_options *o, int yes);  /* [0] */
/* Open read-only [0]: recovery checks every file as usual and replays the
 * logs into memory, but nothing is written, renamed or deleted (it works on
 * read-only media and directories). Writes, flushes and compactions fail
 * with WEIR_READ_ONLY. Any number of read-only handles (in any processes)
 * may share a DB; a writer excludes them and they exclude a writer (both
 * get WEIR_BUSY), because a reader's view of the logs would go stale and a
 * writer may delete files a reader has not opened yet. Where the LOCK file
 * cannot be opened (read-only media, no permission) there is no lock:
 * then no writer can be running either. */
WEIR_API int weir_options_set_read_only(weir_options *o, int yes);
/* Processes and fork(): a handle belongs to the process that opened it. In
 * a child of fork() every call on an inherited handle (or its iterators,
 * snapshots and transactions) fails with WEIR_INVALID ("opened by process
 * P: open a new handle in the child") and touches no file; weir_close on it
 * returns WEIR_OK at once and frees nothing (the child's copy of the
 * parent's memory), so a child's exit never hangs. A child may open its own
 * handle on another DB, or on the same one once the parent has closed it
 * (the lock is per process). */
/* Memtable size before it is switched and flushed [64 MiB; 64 KiB..4 GiB] */
WEIR_API int weir_options_set_write_buffer_size(weir_options *o, size_t bytes);
/* Target uncompressed data block size [4 KiB; 256 B..64 MiB] */
WEIR_API int weir_options_set_block_size(weir_options *o, size_t bytes);
/* Bloom filter bits per key, 0 disables filters [10; 0..64] */
WEIR_API int weir_options_set_bloom_bits_per_key(weir_options *o, int bits);
/* Tables kept open (mapped) at once [1000; 16..1000000] */
WEIR_API int weir_options_set_max_open_files(weir_options *o, int n);
/* Background threads for flush and compaction [2; 1..32] */
WEIR_API int weir_options_set_background_threads(weir_options *o, int n);
/* Default sync mode of writes [WEIR_SYNC_FLUSH] */
WEIR_API int weir_options_set_sync_mode(weir_options *o, weir_sync_mode mode);
/* Size of one table written by compaction [64 MiB; 64 KiB..4 GiB] */
WEIR_API int weir_options_set_target_file_size(weir_options *o, size_t bytes);
/* Total bytes of level 1; each deeper level is 10x [256 MiB; >= 256 KiB] */
WEIR_API int weir_options_set_max_bytes_for_level_base(weir_options *o, uint64_t bytes);
/* Read-triggered compaction [1]. Iterator seeks that have to position in
 * two or more sorted runs (level-0 files, deeper levels) at the same key
 * charge the newest of them; once a file's seeks have cost about what
 * compacting it would (one seek per 256 bytes of the file, at least 1000),
 * it is compacted into the next level while no level is over its size.
 * A store that is written once and then scanned converges to fewer runs
 * (at 1M keys, seek+10 ran about 2x faster with one run instead of two);
 * the price is compaction writes that size alone would have left for
 * later. Point reads never charge: their bloom filters already skip most
 * runs. Counted as read_triggered_compactions in weir.stats. */
WEIR_API int weir_options_set_read_triggered_compaction(weir_options *o, int yes);
/* Level-0 file counts: start compaction / slow writes / stop writes
 * [4 / 20 / 36]; must satisfy 1 <= trigger <= slowdown <= stop. */
WEIR_API int weir_options_set_level0_triggers(weir_options *o, int compaction,
                                              int slowdown, int stop);

/* Block compression of table data blocks [WEIR_COMPRESSION_NONE]. A block
 * is stored compressed only if that saves at least 1/8 of it. Returns
 * WEIR_NOT_SUPPORTED if the codec is not compiled into this build (see
 * weir_compression_supported and weir_build_info). */
enum {
    WEIR_COMPRESSION_NONE = 0,
    WEIR_COMPRESSION_LZ4 = 1,
    WEIR_COMPRESSION_ZSTD = 2
};
WEIR_API int weir_options_set_compression(weir_options *o, int codec);
/* 1 if this build can read and write tables compressed with codec. */
WEIR_API int weir_compression_supported(int codec);
/* Byte budget of the cache of decompressed blocks [64 MiB; 0 disables].
 * Uncompressed tables are read through the OS page cache (mmap). */
WEIR_API int weir_options_set_block_cache_size(weir_options *o, size_t bytes);
/* Estimated bytes compaction is behind by, at which writes slow down (1 ms
 * per write) and stop until compaction catches up [64 GiB / 256 GiB];
 * soft <= hard, 0 disables that limit. */
WEIR_API int weir_options_set_pending_compaction_limits(weir_options *o, uint64_t soft,
                                                        uint64_t hard);

/* Time-to-live. An expiring value is invisible to reads from the moment
 * it expires (it hides older versions, as a deletion would) and is dropped
 * by compaction. Expiry is absolute, fixed when the write is made. */
/* TTL applied to every put without its own [0 = values do not expire]. */
WEIR_API int weir_options_set_default_ttl(weir_options *o, uint64_t ttl_ms);
/* The clock expiry is measured against, in milliseconds since the epoch
 * [the system's real-time clock]. For tests and simulations. */
typedef uint64_t (*weir_clock_fn)(void *arg);
WEIR_API int weir_options_set_clock(weir_options *o, weir_clock_fn fn, void *arg);

/* Merge operators (see weir_merge). The built-ins work on 8-byte
 * little-endian integers or doubles, on whole values compared bytewise, or
 * on bounded lists. */
enum {
    WEIR_MERGE_INT64_ADD = 1,   /* operand and value: int64 LE */
    WEIR_MERGE_INT64_MAX = 2,
    WEIR_MERGE_INT64_MIN = 3,
    WEIR_MERGE_FLOAT64_ADD = 4, /* operand and value: IEEE double LE */
    WEIR_MERGE_FLOAT64_MAX = 5,
    WEIR_MERGE_FLOAT64_MIN = 6,
    WEIR_MERGE_BYTES_MAX = 7,   /* the bytewise larger value wins */
    WEIR_MERGE_BYTES_MIN = 8,
    WEIR_MERGE_LIST_APPEND = 9  /* see weir_list_append */
};
/* A user merge operator: apply operand to the key's current value
 * (existing is NULL when the key has none) and return the new value in
 * *result, malloc'd (weir frees it). Return WEIR_OK, or a status that
 * fails the read with your message (set none: weir names the key). Must
 * be deterministic and thread-safe. Registered under ids 128..255. */
typedef int (*weir_merge_fn)(void *arg, const void *key, size_t klen, const void *existing,
                             size_t existing_len, const void *operand, size_t operand_len,
                             void **result, size_t *result_len);
WEIR_API int weir_options_set_merge_operator(weir_options *o, int id, weir_merge_fn fn,
                                             void *arg);

/* ---- open / close ------------------------------------------------------- */

typedef struct weir_db weir_db;

/* Open (or create) the store in directory `path`. `opts` may be NULL for
 * defaults. The directory may already exist and be empty; weir never
 * creates a store in a directory holding other files (WEIR_INVALID). A
 * second open of the same directory, in this or another process, fails
 * with WEIR_BUSY (except read-only opens, which share; see
 * weir_options_set_read_only). Recovery never serves a state that was not
 * written: damage, a missing file or a gap in the write history is
 * WEIR_CORRUPTION naming the file and offset (docs/RELIABILITY.md, "Recovery
 * rules"); weir_salvage copies what is intact out of such a store. On
 * success *out is the handle; on failure *out is NULL. */
WEIR_API int weir_open(const char *path, const weir_options *opts, weir_db **out);

/* Wait for background work to stop, make every acknowledged write durable
 * (the logs are fsynced), record the clean close in the manifest, release
 * the lock and free the handle. Iterators, snapshots and transactions must
 * be released first: while any is live, WEIR_BUSY (naming how many) and
 * the DB stays open. Otherwise returns the first background error seen, if
 * any, and the handle is freed either way. NULL is fine. */
WEIR_API int weir_close(weir_db *db);

/* Delete every file of the store in `path` (it must not be open). */
WEIR_API int weir_destroy(const char *path);

/* ---- writes ------------------------------------------------------------- */

/* Per-write options. Zero-initialise and set what you need; pass NULL for
 * all defaults. */
typedef struct weir_writeopts {
    weir_sync_mode sync; /* WEIR_SYNC_DEFAULT: the DB's sync mode */
    uint64_t reserved[3]; /* zero (see the top of this file) */
} weir_writeopts;

WEIR_API int weir_put(weir_db *db, const weir_writeopts *wo, const void *key,
                      size_t klen, const void *val, size_t vlen);
/* Deleting an absent key is not an error. */
WEIR_API int weir_delete(weir_db *db, const weir_writeopts *wo, const void *key,
                         size_t klen);

/* Put that expires ttl_ms milliseconds after the write (ttl_ms > 0). */
WEIR_API int weir_put_ttl(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen,
                          const void *val, size_t vlen, uint64_t ttl_ms);

/* Merge `operand` into key's value with operator `op` (WEIR_MERGE_* or a
 * registered user id): a blind write, folded in when the key is read. A
 * read fails with WEIR_INVALID (naming the key) if the key holds a value
 * the operator cannot take, e.g. a 5-byte value under WEIR_MERGE_INT64_ADD;
 * a bad operand shape is refused here. */
WEIR_API int weir_merge(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen,
                        int op, const void *operand, size_t olen);
/* Counter helper: weir_merge with WEIR_MERGE_INT64_ADD. */
WEIR_API int weir_add_int64(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen,
                            int64_t delta);
/* Append item to the list held by key, keeping the newest `max_items`
 * (1..1000000) items. Read the list with weir_list_next. */
WEIR_API int weir_list_append(weir_db *db, const weir_writeopts *wo, const void *key,
                              size_t klen, const void *item, size_t ilen, uint32_t max_items);
/* Walk a list value: start with *offset = 0; returns 1 and the next item
 * (pointing into value), or 0 at the end or on a malformed list. */
WEIR_API int weir_list_next(const void *value, size_t vlen, size_t *offset, const void **item,
                            size_t *ilen);

/* Delete every key in [start, end) with one write (a range tombstone);
 * start > end is WEIR_INVALID, start == end deletes nothing. */
WEIR_API int weir_delete_range(weir_db *db, const weir_writeopts *wo, const void *start,
                               size_t slen, const void *end, size_t elen);

/* A batch is applied atomically: after a crash, recovery sees all of it or
 * none of it. Later operations in a batch win over earlier ones. */
typedef struct weir_batch weir_batch;

WEIR_API weir_batch *weir_batch_create(void); /* NULL if out of memory */
WEIR_API void weir_batch_destroy(weir_batch *b);
WEIR_API int weir_batch_put(weir_batch *b, const void *key, size_t klen,
                            const void *val, size_t vlen);
WEIR_API int weir_batch_delete(weir_batch *b, const void *key, size_t klen);
WEIR_API void weir_batch_clear(weir_batch *b);
WEIR_API size_t weir_batch_count(const weir_batch *b);  /* operations */
WEIR_API size_t weir_batch_bytes(const weir_batch *b);  /* encoded size */
WEIR_API int weir_batch_put_ttl(weir_batch *b, const void *key, size_t klen, const void *val,
                                size_t vlen, uint64_t ttl_ms);
WEIR_API int weir_batch_merge(weir_batch *b, const void *key, size_t klen, int op,
                              const void *operand, size_t olen);
WEIR_API int weir_batch_delete_range(weir_batch *b, const void *start, size_t slen,
                                     const void *end, size_t elen);
/* Apply the batch; it is left unchanged and may be written again. */
WEIR_API int weir_write(weir_db *db, const weir_writeopts *wo, const weir_batch *b);

/* ---- snapshots ---------------------------------------------------------- */

typedef struct weir_snapshot weir_snapshot;

/* A snapshot pins the current point in time: reads through it never see
 * later writes, and compaction keeps what it needs. Release every snapshot
 * before weir_close. */
WEIR_API int weir_snapshot_create(weir_db *db, weir_snapshot **out);
WEIR_API void weir_snapshot_release(weir_db *db, weir_snapshot *snap);
WEIR_API uint64_t weir_snapshot_sequence(const weir_snapshot *snap);

/* ---- reads -------------------------------------------------------------- */

/* Per-read options. Zero-initialise; NULL means defaults. Bounds and the
 * prefix are copied when an iterator is created. */
typedef struct weir_readopts {
    const weir_snapshot *snapshot; /* NULL: the latest state              */
    const void *lower_bound;       /* iterators: first key >= this        */
    size_t lower_bound_len;        /* (NULL lower_bound: unbounded)       */
    const void *upper_bound;       /* iterators: keys < this (exclusive)  */
    size_t upper_bound_len;        /* (NULL upper_bound: unbounded)       */
    const void *prefix;            /* iterators: only keys with prefix    */
    size_t prefix_len;             /* (NULL prefix: no prefix mode)       */
    /* Point reads (weir_get, weir_get_alloc, weir_get_with,
     * weir_multi_get): 1 answers only from memory weir has already read,
     * the memtables and the table blocks read since their table was
     * opened; a read that would open a table or read a block for the first
     * time returns WEIR_INCOMPLETE and reads nothing (RocksDB calls this
     * the block-cache tier). For a caller that holds a lock it would
     * rather not drop around a read that cannot wait on the disk, such as
     * Python's GIL: try memory_only, and only on WEIR_INCOMPLETE drop the
     * lock and read again. Iterators refuse it (WEIR_INVALID). */
    uint64_t memory_only;
    uint64_t reserved[3];          /* zero (see the top of this file)     */
} weir_readopts;

/* Copy the value of `key` into buf[0..cap). On WEIR_OK, *vlen is the value
 * length. If the value is longer than cap, returns WEIR_BUFFER_TOO_SMALL
 * with *vlen set to the full length (buf then holds the first cap bytes).
 * Returns WEIR_NOT_FOUND if the key is absent. buf may be NULL if cap is 0. */
WEIR_API int weir_get(weir_db *db, const weir_readopts *ro, const void *key,
                      size_t klen, void *buf, size_t cap, size_t *vlen);

/* Like weir_get, but *val is a new malloc'd copy (release with weir_free).
 * A zero-length value gives a non-NULL *val. */
WEIR_API int weir_get_alloc(weir_db *db, const weir_readopts *ro, const void *key,
                            size_t klen, void **val, size_t *vlen);

/* Zero-copy lookup: if key is found, call fn(arg, value, vlen) once with a
 * pointer valid only during the call (e.g. to build a language object
 * directly from weir's memory). Returns WEIR_OK if fn was called,
 * WEIR_NOT_FOUND, or an error. fn must not call back into weir. */
typedef void (*weir_value_fn)(void *arg, const void *val, size_t vlen);
WEIR_API int weir_get_with(weir_db *db, const weir_readopts *ro, const void *key,
                           size_t klen, weir_value_fn fn, void *arg);

/* Look up n keys at one point in time. For each i, statuses[i] is WEIR_OK
 * (vals[i] malloc'd, release with weir_free), WEIR_NOT_FOUND (vals[i] NULL)
 * or an error. Returns WEIR_OK if every lookup completed (found or not),
 * otherwise the first error. */
WEIR_API int weir_multi_get(weir_db *db, const weir_readopts *ro, size_t n,
                            const void *const *keys, const size_t *klens,
                            void **vals, size_t *vlens, int *statuses);

/* ---- iterators ---------------------------------------------------------- */

typedef struct weir_iter weir_iter;

/* An iterator reads one consistent point in time (ro->snapshot, or the
 * moment it was created) while writes go on. It starts unpositioned. */
WEIR_API int weir_iter_create(weir_db *db, const weir_readopts *ro, weir_iter **out);
WEIR_API void weir_iter_destroy(weir_iter *it);
/* Move an iterator to the DB's latest state, as a new weir_iter_create with
 * the same read options would see it, reusing its memory: when nothing but
 * new writes happened since (no flush or compaction), this costs a few
 * dozen instructions instead of building the iterator again. For short
 * scans repeated many times (seek, a few nexts), keep one iterator and
 * refresh it before each. Afterwards the iterator is unpositioned.
 * WEIR_INVALID for an iterator made at a snapshot or by a transaction. */
WEIR_API int weir_iter_refresh(weir_iter *it);

WEIR_API int weir_iter_valid(const weir_iter *it);
WEIR_API void weir_iter_seek_first(weir_iter *it);
WEIR_API void weir_iter_seek_last(weir_iter *it);
/* Position at the first key >= key. */
WEIR_API void weir_iter_seek(weir_iter *it, const void *key, size_t klen);
/* Position at the last key <= key. */
WEIR_API void weir_iter_seek_for_prev(weir_iter *it, const void *key, size_t klen);
WEIR_API void weir_iter_next(weir_iter *it);
WEIR_API void weir_iter_prev(weir_iter *it);
/* Current key / value; only while valid. */
WEIR_API const void *weir_iter_key(const weir_iter *it, size_t *len);
WEIR_API const void *weir_iter_value(const weir_iter *it, size_t *len);
/* WEIR_OK, or the error (e.g. WEIR_CORRUPTION) that made the iterator stop
 * early; the message is in weir_errmsg() right after this call. */
WEIR_API int weir_iter_status(const weir_iter *it);

/* ---- maintenance -------------------------------------------------------- */

/* Flush the memtable to a level-0 table and wait until it is durable. */
WEIR_API int weir_flush(weir_db *db);

/* Compact every table overlapping [start, end] down the levels and wait.
 * NULL start / end mean unbounded. */
WEIR_API int weir_compact_range(weir_db *db, const void *start, size_t slen,
                                const void *end, size_t elen);

/* How far a weir_compact_range_progress call has got. The call compacts
 * the range one level at a time: step 1 merges level 0 into level 1, step
 * 2 level 1 into level 2, and so on down to the deepest level holding keys
 * in the range. Each step reads its input tables once; entries_done counts
 * the entries it has merged so far. A fraction of the whole call that only
 * grows is (step - 1 + entries_done / entries_total) / steps (a step with
 * no entries counts as done). weir fills the struct; a later release may
 * give a reserved word a meaning. */
typedef struct weir_compact_progress {
    int step;               /* 1..steps: the step running now                */
    int steps;              /* steps this call runs, fixed for the call       */
    int level;              /* this step merges `level` into `level + 1`      */
    uint64_t input_bytes;   /* bytes of this step's input tables              */
    uint64_t entries_total; /* entries in this step's input tables            */
    uint64_t entries_done;  /* entries merged so far (<= entries_total)      */
    uint64_t reserved[4];   /* zero today */
} weir_compact_progress;
typedef void (*weir_compact_progress_fn)(void *arg, const weir_compact_progress *p);

/* weir_compact_range that reports its progress through fn (NULL: none,
 * exactly weir_compact_range). fn runs in the calling thread, holding no
 * lock of weir's, so it may print, or read weir_property on this DB; it
 * may not compact or close it (those calls fail with WEIR_BUSY: the
 * compaction is waiting for the callback). Each step is reported once
 * its inputs are chosen (unless it has finished by then), about every
 * 100 ms while it runs, and, if it succeeds, when it is done, with
 * entries_done == entries_total: at least once per successful step.
 * Within a step the totals stay the same and entries_done never goes
 * down. A step that fails gets no further call (and no completed one);
 * the status says what went wrong, as for weir_compact_range. `p` is
 * valid only during the call. */
WEIR_API int weir_compact_range_progress(weir_db *db, const void *start, size_t slen,
                                         const void *end, size_t elen,
                                         weir_compact_progress_fn fn, void *arg);

/* Make a consistent, openable copy of the DB in directory `dir` (which
 * must not exist, or be empty) while writes go on: the memtable is flushed,
 * every table of the current version is hard-linked into dir (copied when
 * dir is on another file system), and a fresh MANIFEST and CURRENT are
 * written there. The copy holds every write acknowledged before the call
 * and is opened like any weir DB. */
WEIR_API int weir_checkpoint(weir_db *db, const char *dir);

/* ---- optimistic transactions ------------------------------------------ */

/* A transaction reads at the snapshot taken when it begins, sees its own
 * writes, and buffers them until commit. Commit applies them atomically
 * (logged like any batch) unless a key the transaction read (with
 * weir_txn_get_for_update, or any get when track_all_reads is set) or
 * wrote was changed by another commit after the transaction began: then it
 * fails with WEIR_CONFLICT and nothing is written. A transaction is used by
 * one thread at a time; it must be destroyed before weir_close. */
typedef struct weir_txn weir_txn;

typedef struct weir_txnopts {
    weir_sync_mode sync;   /* for the commit; WEIR_SYNC_DEFAULT: the DB's */
    int track_all_reads;   /* 1: every get counts as get_for_update */
    uint64_t reserved[3];  /* zero (see the top of this file) */
} weir_txnopts;

WEIR_API int weir_txn_begin(weir_db *db, const weir_txnopts *opts, weir_txn **out);
/* Reads: its own writes first, then the DB at the begin snapshot. Same
 * buffer convention as weir_get / weir_get_alloc. */
WEIR_API int weir_txn_get(weir_txn *txn, const void *key, size_t klen, void **val, size_t *vlen);
WEIR_API int weir_txn_get_for_update(weir_txn *txn, const void *key, size_t klen, void **val,
                                     size_t *vlen);
WEIR_API int weir_txn_put(weir_txn *txn, const void *key, size_t klen, const void *val,
                          size_t vlen);
WEIR_API int weir_txn_delete(weir_txn *txn, const void *key, size_t klen);
WEIR_API int weir_txn_merge(weir_txn *txn, const void *key, size_t klen, int op,
                            const void *operand, size_t olen);
/* An iterator over the DB at the begin snapshot with the transaction's
 * writes merged over it (ro's bounds and prefix apply; ro->snapshot must
 * be NULL). Destroy it with weir_iter_destroy before the transaction. */
WEIR_API int weir_txn_iter_create(weir_txn *txn, const weir_readopts *ro, weir_iter **out);
/* WEIR_OK, WEIR_CONFLICT (nothing written; message names the key), or an
 * error. The transaction is finished either way. */
WEIR_API int weir_txn_commit(weir_txn *txn);
/* Discard the writes; the transaction is finished. */
WEIR_API int weir_txn_rollback(weir_txn *txn);
/* Finished transactions refuse further calls with WEIR_INVALID. */
WEIR_API void weir_txn_destroy(weir_txn *txn);

/* ---- checking and salvage ------------------------------------------------ */

/* What weir_check and weir_salvage report, one call per file or finding. */
enum {
    WEIR_REPORT_OK = 0,     /* a file checked and found intact               */
    WEIR_REPORT_NOTE = 1,   /* worth knowing, nothing lost (a leftover file)  */
    WEIR_REPORT_WARN = 2,   /* only what the sync mode allows was dropped: a
                               torn tail at the crash point, a power cut's hole
                               in unsynced writes                             */
    WEIR_REPORT_DAMAGE = 3, /* acknowledged data is lost or would be changed  */
    WEIR_REPORT_ERROR = 4   /* a file could not be read at all (I/O error)    */
};
/* `file` is a name within the DB directory, or "database" for findings
 * about the whole store; `message` names offsets, key and sequence ranges. */
typedef void (*weir_report_fn)(void *arg, int level, const char *file, const char *message);

/* Check every file of the DB in `path` and its write history without
 * changing anything (nothing is created, written, renamed or deleted; the
 * LOCK file is only read-locked, for the history check): CURRENT, every
 * manifest record, every table block's checksum and key order, every log
 * record, the tables' sizes, entry counts and key ranges against the
 * manifest, and the sequence history across manifest and logs (a read-only
 * recovery). Reports through fn (may be NULL). Returns WEIR_OK when nothing
 * acknowledged is lost or changed (WARN findings allowed), WEIR_CORRUPTION
 * when something is (message: the first such finding), another status when
 * the check could not run (WEIR_INVALID: not a weir database). */
WEIR_API int weir_check(const char *path, weir_report_fn fn, void *arg);

/* Copy every record that can be proved intact out of a damaged DB in
 * `src` into a new DB in `dst` (which must not exist, or be empty): the
 * tables the manifest lists (and tables newer than it), block by block,
 * and the logs record by record, each checked by its checksum, merged by
 * sequence number so the newest intact version of each key wins. Tables
 * the manifest no longer lists are not used (they could bring back deleted
 * keys). Never writes to src (it is read-locked so no writer runs
 * meanwhile). Reports each source and everything that could not be
 * recovered (file, byte offsets, key range, sequence range) through fn
 * (may be NULL). `opts` (may be NULL) sets dst's table options
 * (compression, block size). Returns WEIR_OK when dst was written and
 * nothing was lost, WEIR_CORRUPTION when dst was written but something
 * could not be recovered (message: a summary), or another status when no
 * dst was made. */
WEIR_API int weir_salvage(const char *src, const char *dst, const weir_options *opts,
                          weir_report_fn fn, void *arg);

/* Read a property as a malloc'd NUL-terminated string (weir_free it).
 * Names:
 *   "weir.num-files-at-level<N>"   files in level N
 *   "weir.level-summary"           files and bytes per level, one line each
 *   "weir.sstables"                every table: level, number, size, keys
 *   "weir.stats"                   human-readable report of all counters
 *   "weir.last-sequence"           sequence number of the newest write
 *   "weir.memtable-bytes"          bytes in the active + immutable memtables
 *   "weir.num-entries-active-memtable"  entries in the memtable taking
 *                                  writes; it grows while a write is applied
 *                                  (read it from another thread to follow a
 *                                  large batch) and starts again at 0 when
 *                                  the memtable is switched for a flush
 *   "weir.total-sst-bytes"         bytes of all live tables
 *   "weir.num-snapshots"           live snapshots
 *   "weir.background-error"       "" or the message that stopped writes
 *   "weir.recovery"                what the open that made this handle found:
 *                                  records replayed, a torn tail dropped, a
 *                                  history cut at a power cut's hole, files
 *                                  kept or set aside
 *   "weir.counters"                every counter as "name value" lines,
 *                                  including block cache and bloom filter
 *                                  figures and get/put latency percentiles
 * Unknown names give WEIR_NOT_FOUND. */
WEIR_API int weir_property(weir_db *db, const char *name, char **value);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_H */
