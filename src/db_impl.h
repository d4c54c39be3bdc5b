/*
 * db_impl.h -- the DB handle's internals, shared by the files that make up
 * weir_db: db.c (open, close), options.c, db_write.c (the write queue),
 * db_read.c (point reads, snapshots), background.c (flush, compaction
 * scheduling, obsolete files), recovery.c, properties.c, compaction.c
 * (running a compaction) and dbiter.c (user iterators). Not part of the
 * public API.
 */
#ifndef WEIR_DB_IMPL_H
#define WEIR_DB_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "coding.h"
#include "env.h"
#include "memtable.h"
#include "merge.h"
#include "status.h"
#include "table_cache.h"
#include "version.h"
#include "wal.h"
#include "weir.h"

struct weir_options {
    int create_if_missing;
    int error_if_exists;
    size_t write_buffer_size;
    size_t block_size;
    int bloom_bits_per_key;
    int max_open_files;
    int background_threads;
    weir_sync_mode sync_mode;
    uint64_t target_file_size;
    uint64_t max_bytes_for_level_base;
    int level0_compaction_trigger;
    int level0_slowdown_trigger;
    int level0_stop_trigger;
    int compression;
    size_t block_cache_size;
    uint64_t pending_compaction_soft;
    uint64_t pending_compaction_hard;
    uint64_t default_ttl_ms;
    weir_clock_fn clock;
    void *clock_arg;
    merge_registry merge_ops;
    int read_only; /* open without writing, deleting or locking exclusively */
    int read_triggered_compaction; /* seeks charge files (version_charge_seek) */
    weir_env *env; /* tests may substitute a fault-injecting env */
};

/* Lets tests run the engine over a wrapping env (fault injection). */
void weir_options_set_env(weir_options *o, weir_env *env);

struct weir_snapshot {
    weir_db *db;       /* the DB it belongs to (a release through another is ignored) */
    uint64_t sequence;
    struct weir_snapshot *prev, *next; /* in the DB's list, oldest first */
};

/* A thread waiting in the write queue (lives on that thread's stack). */
/* Run by the write leader just before a batch is logged, with every
 * earlier write visible and no later one applied; a status other than
 * WEIR_OK cancels the write (transactions check conflicts here). */
typedef int (*db_validate_fn)(weir_db *db, void *arg);

typedef struct db_writer {
    const weir_batch *batch; /* NULL: a request to switch the memtable */
    db_validate_fn validate; /* or NULL */
    void *validate_arg;
    weir_sync_mode sync;
    int done;
    int status;
    weir_error err;
    pthread_cond_t cv;
    struct db_writer *next;
} db_writer;

/* A weir_compact_range request handed to the background thread. */
typedef struct manual_compaction {
    int level;
    int bottom;         /* the last step: vset_compact_range_bottom */
    const slice *begin; /* internal keys, NULL = open-ended */
    const slice *end;
    int done;
    int status;
    weir_error err;
    /* What weir_compact_range_progress reports: the background thread sets
     * the step's totals (mutex held) once it has chosen the inputs, then
     * advances entries_done while it merges them without the mutex. */
    int picked;
    uint64_t input_bytes;
    uint64_t input_entries;
    _Atomic uint64_t entries_done;
} manual_compaction;

/* Latency histogram: bucket i counts operations that took about
 * 2^(i/4) nanoseconds (four buckets per power of two). */
#define HIST_BUCKETS 160
typedef struct latency_hist {
    _Atomic uint64_t buckets[HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_nanos;
} latency_hist;

void hist_add(latency_hist *h, uint64_t nanos);
/* Nanoseconds at percentile p (0..100), 0 if empty. */
uint64_t hist_percentile(latency_hist *h, double p);

/* What a read needs, published as one reference-counted unit so readers
 * take one small lock (sv_lock), not the DB mutex: the memtables and the
 * version as of the last change. Replaced (under the DB mutex) whenever
 * any of them changes. */
typedef struct superversion {
    _Atomic int refs;
    memtable *mem;
    memtable *imm; /* may be NULL */
    version *v;
} superversion;

/* Engine counters; relaxed atomics, read for properties. */
typedef struct db_stats {
    _Atomic uint64_t user_bytes_written;
    _Atomic uint64_t wal_bytes_written;
    _Atomic uint64_t wal_syncs;
    _Atomic uint64_t writes;          /* weir_write/put/delete calls */
    _Atomic uint64_t write_groups;    /* log records (group commits) */
    _Atomic uint64_t flushes;
    _Atomic uint64_t flush_bytes_written;
    _Atomic uint64_t compactions;
    _Atomic uint64_t trivial_moves;
    _Atomic uint64_t read_triggered_compactions; /* of compactions + trivial_moves */
    _Atomic uint64_t compaction_bytes_read;
    _Atomic uint64_t compaction_bytes_written;
    _Atomic uint64_t compaction_entries_dropped;
    _Atomic uint64_t stall_micros;
    _Atomic uint64_t slowdowns;
    _Atomic uint64_t gets;
    _Atomic uint64_t recovered_records;
    _Atomic uint64_t recovered_torn_bytes;
    _Atomic uint64_t files_deleted;
    _Atomic uint64_t stops;
    _Atomic uint64_t writes_refused_no_space; /* taken back from the log, not applied */
    _Atomic uint64_t background_no_space;     /* flushes/compactions that ran out of space */
    latency_hist get_latency;  /* sampled: one operation in 16 */
    latency_hist put_latency;  /* writes of any kind, sampled likewise */
} db_stats;

struct weir_db {
    char *path;
    struct weir_options opts;
    weir_env *env;
    int lock_fd;
    table_cache *tc;
    struct block_cache *block_cache;
    version_set *vs;
    uint64_t pending_compaction_bytes; /* estimate, refreshed per version */

    pthread_mutex_t mu;
    pthread_cond_t bg_cv;   /* background work finished: writers/flush waiters */
    pthread_cond_t work_cv; /* wakes background threads */

    memtable *mem;
    memtable *imm;          /* being flushed, or NULL */
    superversion *sv;       /* guarded by sv_lock for readers, mu for writers */
    pthread_mutex_t sv_lock;
    _Atomic uint64_t visible_sequence; /* newest sequence readers may see */
    log_writer *log;
    uint64_t log_number;    /* number of the log behind mem */
    uint64_t log_start_seq; /* the sequence the first write into `log` gets */
    uint64_t logged_sequence; /* the newest sequence any log holds */
    log_writer *prev_log;   /* the log behind imm, open until imm is in a table */
    int prev_log_synced;    /* prev_log was fsynced after its last record */

    db_writer *writers_head;
    db_writer *writers_tail;
    buf group_rep;          /* the write leader's merged batch */

    struct weir_snapshot snapshots; /* list head */
    int num_snapshots;

    uint64_t *pending_outputs;  /* tables being written, not yet in a version */
    size_t num_pending, cap_pending;

    int flush_running;
    int compaction_running;
    manual_compaction *manual;
    int shutting_down;
    weir_error bg_error;    /* code != WEIR_OK: writes are refused */
    uint64_t resume_after_micros; /* after WEIR_NO_SPACE: next attempt to resume */
    /* A flush or compaction that ran out of disk space is not fatal: it is
     * retried from space_retry_micros on, and until then writers that need
     * it done get WEIR_NO_SPACE instead of waiting. */
    weir_error flush_no_space;
    weir_error compaction_no_space;
    uint64_t space_retry_micros;
    uint64_t flush_failures;      /* flushes that failed, for waiters */
    uint64_t compaction_failures; /* compactions that ran out of space */

    int read_only;          /* opened with weir_options_set_read_only */
    /* fork(): a handle belongs to the process that opened it (db_owner_ok). */
    unsigned long fork_generation;
    long owner_pid;
    /* Objects a caller must release before weir_close. */
    _Atomic int live_iterators;
    _Atomic int live_transactions;
    /* Tables newer than the manifest recovery read (numbers at or above its
     * next file number): kept while this handle lives, never deleted by
     * the open that found them. */
    uint64_t *kept_tables;
    size_t num_kept_tables;
    char recovery_note[768]; /* what recovery found (property weir.recovery) */

    pthread_t *threads;
    int num_threads;

    db_stats stats;
};

/* A consistent set of sources for a read at one sequence number. */
typedef struct read_state {
    uint64_t sequence;
    memtable *mem;
    memtable *imm; /* may be NULL */
    version *v;
    superversion *sv; /* holds the references above */
} read_state;

/* Publish the current mem/imm/version to readers (mutex held). Call after
 * every change of any of them. */
void db_install_superversion(weir_db *db);

/* Free a superversion whose count reached zero (mutex held). */
void db_superversion_free(superversion *sv);

void db_acquire_read_state(weir_db *db, const weir_snapshot *snap, read_state *rs);
void db_release_read_state(weir_db *db, read_state *rs);

/* Pending outputs (mutex held). */
int db_add_pending_output(weir_db *db, uint64_t number);
void db_remove_pending_output(weir_db *db, uint64_t number);

/* Write the entries of `it` into table file `number`, returning its meta
 * (NULL if the iterator was empty; the file is then removed). Called
 * without the mutex. */
int db_build_table(weir_db *db, iter *it, uint64_t number, file_meta **out);

/* Remove files no live version, log or pending output needs (mutex held). */
void db_delete_obsolete_files(weir_db *db);

/* How long a flush or compaction that ran out of disk space waits before
 * it is tried again. */
#define SPACE_RETRY_MICROS 200000

/* Record a background failure: writes are refused from now on. */
void db_set_bg_error(weir_db *db, int code);
/* A flush (is_flush) or compaction failed with `code` (message current):
 * WEIR_NO_SPACE is remembered and retried later, anything else is a
 * background error (mutex held). */
void db_background_failed(weir_db *db, int code, int is_flush);

/* fork(): WEIR_OK when the calling process opened db, else WEIR_INVALID
 * naming the opener ("open a new handle in the child"). One relaxed load
 * on the fast path. */
int db_owner_check(const weir_db *db, const char *fn);
/* 1 if the calling process is not the one that opened db. */
int db_forked_away(const weir_db *db);

/* Flush imm to level 0 if one is waiting (mutex held; drops it for I/O). */
int db_flush_imm(weir_db *db);

/* compaction.c: run one compaction (mutex held; drops it for I/O). If
 * entries_done is not NULL, the number of input entries merged so far is
 * stored there as the merge goes on (a manual compaction's progress). */
int db_run_compaction(weir_db *db, compaction *c, _Atomic uint64_t *entries_done);

/* Recompute pending_compaction_bytes from the current version (mutex held). */
void db_update_compaction_debt(weir_db *db);

/* Milliseconds since the epoch by the DB's clock (TTL expiry). */
uint64_t db_now_ms(const weir_db *db);

/* Highest sequence <= max_seq of a range tombstone in rs covering key, or
 * 0 when none does (sequence numbers start at 1). */
uint64_t db_covering_tombstone(const read_state *rs, slice key, uint64_t max_seq);
/* 1 if rs holds any range tombstone at all (fast check). */
int db_has_tombstones(const read_state *rs);

/* Write b alone (never grouped) once validate(db, arg) approves. */
int db_write_validated(weir_db *db, const weir_writeopts *wo, const weir_batch *b,
                       db_validate_fn validate, void *arg);

/* Sequence number of the newest write touching key (a put, delete, merge,
 * TTL put, or a range tombstone covering it); 0 if none. */
int db_latest_sequence(weir_db *db, slice key, uint64_t *seq);

/* Sequence number of the newest write applied and visible to readers. In a
 * validate hook (the write leader) every earlier write is applied, so this
 * is the newest committed write: if it equals a snapshot's sequence,
 * nothing was committed since the snapshot. */
uint64_t db_visible_sequence(weir_db *db);

/* Oldest sequence any snapshot may read (mutex held). */
uint64_t db_smallest_snapshot(weir_db *db);

/* dbiter.c, for transactions: an iterator over the DB at snap (ro's bounds
 * and prefix apply, ro->snapshot is ignored) that also shows `overlay`, an
 * internal iterator whose entries all carry sequence numbers in
 * [overlay_lo, overlay_hi], above every real sequence number: they read as
 * newer than anything in the DB, while writes committed after snap stay
 * hidden. Takes ownership of overlay, also on failure. */
int db_iter_create_overlay(weir_db *db, const weir_readopts *ro, const weir_snapshot *snap,
                           iter *overlay, uint64_t overlay_lo, uint64_t overlay_hi,
                           weir_iter **out);

/* ---- helpers shared by the files behind weir_db -------------------------- */

#define CHECK_DB(db, fn)                                                      \
    do {                                                                      \
        if (!(db)) return weir_set_error(WEIR_INVALID, "%s: db is NULL", fn); \
        int owner_rc_ = db_owner_check((db), fn);                               \
        if (owner_rc_ != WEIR_OK) return owner_rc_;                           \
    } while (0)

/* WEIR_INVALID unless every reserved word of an option struct is zero
 * (weir.h: option structs grow only into their reserved words). */
static inline int db_check_reserved(const char *fn, const char *what, const uint64_t *words, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (words[i] != 0)
            return weir_set_error(WEIR_INVALID,
                                  "%s: %s.reserved[%zu] is not zero (zero-initialise option structs; "
                                  "a newer weir may give it a meaning)",
                                  fn, what, i);
    return WEIR_OK;
}
#define DB_CHECK_RESERVED(fn, what, opts)                                                   \
    db_check_reserved((fn), (what), (opts)->reserved, sizeof (opts)->reserved / sizeof (opts)->reserved[0])

/* Writes on a handle opened read-only. */
#define CHECK_WRITABLE(db, fn)                                                \
    do {                                                                      \
        if ((db)->read_only)                                                  \
            return weir_set_error(WEIR_READ_ONLY,                             \
                                  "%s: %s was opened read-only", fn, (db)->path); \
    } while (0)

static inline int db_check_key_arg(const char *fn, const void *key, size_t klen) {
    if (!key && klen) return weir_set_error(WEIR_INVALID, "%s: key is NULL but its length is %zu", fn, klen);
    if (klen > WEIR_MAX_KEY_SIZE)
        return weir_set_error(WEIR_INVALID, "%s: key of %zu bytes exceeds the limit of %u bytes", fn,
                              klen, WEIR_MAX_KEY_SIZE);
    return WEIR_OK;
}

static inline uint64_t stat_add(_Atomic uint64_t *c, uint64_t n) {
    return atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t stat_get(_Atomic uint64_t *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Timing every call would cost two clock reads per microsecond-scale op;
 * one in 16 per thread gives the same percentiles at a sixteenth of it. */
extern _Thread_local unsigned db_sample_tick;

static inline int sample_start(struct timespec *t) {
    if ((++db_sample_tick & 15) != 0) return 0;
    clock_gettime(CLOCK_MONOTONIC, t);
    return 1;
}

static inline void sample_end(latency_hist *h, const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t ns = (int64_t)(t1.tv_sec - t0->tv_sec) * 1000000000 + (t1.tv_nsec - t0->tv_nsec);
    hist_add(h, ns > 0 ? (uint64_t)ns : 0);
}

/* options.c: WEIR_INVALID if the options contradict each other. */
int db_validate_options(const struct weir_options *o);

/* db_write.c: queue a write (batch NULL: switch the memtable, for
 * weir_flush) and wait for it to commit. */
int db_write_internal(weir_db *db, const weir_writeopts *wo, const weir_batch *batch);

/* background.c: write memtable m to a new level-0 table and add it to edit
 * (mutex held; dropped during the build). The table stays a pending
 * output until the caller installs the edit and calls
 * db_remove_pending_output(*number_out). */
int db_write_level0_table(weir_db *db, memtable *m, version_edit *edit, uint64_t *number_out);
/* background.c: 1 if the calling thread is inside a progress callback of
 * weir_compact_range_progress on db (which must not be closed under it). */
int db_in_progress_callback(const weir_db *db);
/* background.c: the body of each background thread. */
void *db_background_main(void *arg);

/* recovery.c: lock the directory, read the manifest, replay the logs and
 * install the result (called by weir_open before any thread starts). */
int db_recover(weir_db *db);

#endif
