/*
 * version.h -- which table files make up the DB, and how that changes.
 *
 * A version is an immutable list of files per level. Every change (a flush
 * adds a level-0 file; a compaction deletes its inputs and adds outputs) is
 * a version_edit, appended to the MANIFEST (a log in wal.h's format) and
 * applied to the current version to make the next one. Versions are
 * reference counted so readers and iterators keep their files alive; a
 * file is obsolete only when no live version lists it.
 *
 * Locking: every function that touches version_set state or version refs
 * is called with the DB mutex held (passed in as `mu` where the function
 * may drop it to do I/O).
 */
#ifndef WEIR_VERSION_H
#define WEIR_VERSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "coding.h"
#include "dbformat.h"
#include "env.h"
#include "table_cache.h"
#include "wal.h"

#define NUM_LEVELS 7

/* Manifest is rewritten (a fresh snapshot) once it grows past this. */
#define MANIFEST_ROLL_BYTES (64u << 20)

typedef struct file_meta {
    int refs;                /* versions and edits holding it (DB mutex) */
    uint64_t number;
    uint64_t size;           /* bytes */
    uint64_t num_entries;
    buf smallest;            /* internal key */
    buf largest;             /* internal key */
    int being_compacted;     /* an input of a running compaction (DB mutex) */
    /* In memory only (0 when read from the manifest): no range tombstone
     * with a sequence <= this deletes an entry of this file, so such a
     * tombstone does not need to be kept for the file's sake (compaction.c
     * drops tombstones that no table needs). */
    uint64_t tombs_clean_seq;
    table_pin pin;           /* the open table, kept for lookups (table_cache.h) */
    /* Read-triggered compaction: how many more iterator seeks may pay for
     * positioning in this file and in a deeper sorted run as well before
     * the file is compacted down (version_charge_seek). Relaxed atomic:
     * readers charge it without the DB mutex. */
    _Atomic int64_t seek_allowance;
} file_meta;

/* A seek that positions in one more sorted run than it would after a
 * compaction costs about 1-2 us (measured at 1M keys: seek+10 went from
 * ~3.5 to ~1.8 us when a level-0 file over the whole range was merged into
 * level 1). Compaction rewrites a file at ~150 MB/s, about 256 bytes in
 * that time, so a file has been "rented" as long as it is worth once reads
 * have wasted (its size + what it overlaps one level down) / 256 seeks on
 * it: then compacting it pays (the ski-rental rule, within 2x of the best
 * choice made knowing the future).
 * LevelDB uses size / 16 KiB, tuned for disk seeks. The floor keeps tiny
 * files from being compacted after a handful of reads. */
#define SEEK_COST_BYTES 256
#define SEEK_ALLOWANCE_MIN 1000
int64_t file_seek_allowance(uint64_t size);

/* refs starts at 1. NULL on OOM. */
file_meta *file_meta_create(uint64_t number, uint64_t size, uint64_t num_entries,
                            slice smallest, slice largest);
void file_meta_ref(file_meta *f);
void file_meta_unref(file_meta *f);

/* A range tombstone that has left the memtables: every key in
 * [start, end) written before `seq` is deleted. Versions share sets of them
 * (sorted by seq) while no edit changes the set. */
typedef struct vtomb {
    uint64_t seq;
    buf start;
    buf end;
} vtomb;

typedef struct tomb_set {
    int refs; /* DB mutex */
    int n;
    vtomb *v;
} tomb_set;

/* ---- version edits ------------------------------------------------------ */

typedef struct edit_deleted {
    int level;
    uint64_t number;
} edit_deleted;

typedef struct edit_added {
    int level;
    file_meta *file; /* the edit holds one reference */
} edit_added;

typedef struct edit_pointer {
    int level;
    buf key; /* internal key */
} edit_pointer;

typedef struct version_edit {
    int has_log_number;
    uint64_t log_number;      /* logs numbered below this are flushed */
    int has_log_start;        /* always written with log_number since format 2 */
    uint64_t log_start_sequence; /* the first write of log `log_number`: every
                                    lower sequence is in the tables */
    int has_clean_close;      /* weir_close (or a checkpoint) wrote it last */
    uint64_t close_sequence;  /* the last sequence in any log at close */
    uint64_t close_log_number;/* the newest log at close (0: no log at all) */
    int has_next_file_number;
    uint64_t next_file_number;
    int has_last_sequence;
    uint64_t last_sequence;
    edit_deleted *deleted;
    size_t num_deleted, cap_deleted;
    edit_added *added;
    size_t num_added, cap_added;
    edit_pointer *pointers;   /* compaction round-robin positions */
    size_t num_pointers, cap_pointers;
    vtomb *tombs_added;       /* range tombstones flushed from a memtable */
    size_t num_tombs_added, cap_tombs_added;
    uint64_t *tombs_removed;  /* sequences of range tombstones no longer needed */
    size_t num_tombs_removed, cap_tombs_removed;
} version_edit;

void version_edit_init(version_edit *e);
void version_edit_free(version_edit *e); /* drops file refs; e reusable after init */
void version_edit_set_log_number(version_edit *e, uint64_t n);
/* The log behind the memtable from now on, and the sequence its first
 * write gets: recovery checks the log starts exactly there. */
void version_edit_set_log(version_edit *e, uint64_t number, uint64_t start_sequence);
/* A clean close: every acknowledged write is in the tables or in the logs
 * from log_number up to newest_log (0: there are no logs), ending at
 * last_logged_sequence. Only valid as the manifest's last record. */
void version_edit_set_clean_close(version_edit *e, uint64_t last_logged_sequence, uint64_t newest_log);
void version_edit_set_next_file_number(version_edit *e, uint64_t n);
void version_edit_set_last_sequence(version_edit *e, uint64_t s);
/* Each returns WEIR_OK or WEIR_NO_MEMORY. */
int version_edit_delete_file(version_edit *e, int level, uint64_t number);
/* Takes a new reference on f. */
int version_edit_add_file(version_edit *e, int level, file_meta *f);
int version_edit_set_compact_pointer(version_edit *e, int level, slice ikey);
int version_edit_add_range_tombstone(version_edit *e, uint64_t seq, slice start, slice end);
int version_edit_remove_range_tombstone(version_edit *e, uint64_t seq);

/* Tagged-field encoding; unknown tags are corruption (a newer format). */
int version_edit_encode(const version_edit *e, buf *out);
/* WEIR_CORRUPTION (message says which field) on malformed input.
 * e must be initialised; its previous contents are dropped, and it is left
 * empty on error. */
int version_edit_decode(version_edit *e, slice in);

/* ---- versions ----------------------------------------------------------- */

typedef struct version_set version_set;

typedef struct version {
    version_set *vset;
    struct version *prev, *next; /* in the version set's list of live versions */
    int refs;
    /* Level 0: ordered by file number, newest last (files may overlap).
     * Levels >= 1: ordered by smallest key, never overlapping. */
    file_meta **files[NUM_LEVELS];
    int num_files[NUM_LEVELS];
    double compaction_score;     /* >= 1 means a compaction is due */
    int compaction_level;
    /* The file whose seek allowance ran out first (read-triggered
     * compaction): 0 for none, else ((level << 32) | index) + 1. Set once,
     * by a reader, without the DB mutex; a newer version starts at 0. */
    _Atomic uint64_t seek_victim;
    tomb_set *tombs;             /* range tombstones, or NULL */
} version;

void version_ref(version *v);
void version_unref(version *v); /* unlinks and frees at zero */

/* Result of version_get, filled by the newest entry for the key found. */
typedef void (*version_value_fn)(void *arg, slice value);

/* Search the tables for the newest entry of lookup_ikey's user key with a
 * sequence <= lookup_ikey's (a key built with TYPE_FOR_SEEK). `hash` is
 * bloom_hash of the user key. Level 0 newest file first, then levels 1.. .
 * Returns WEIR_OK with *type set (TYPE_VALUE: fn called with the value,
 * valid only during the call; TYPE_DELETION), WEIR_NOT_FOUND if no table
 * has the key, or an error. Does not need the DB mutex (v is referenced). */
int version_get(version *v, slice lookup_ikey, uint64_t hash, int *type,
                version_value_fn fn, void *arg);

/* Like version_get for every entry type: fn(arg, type, seq, value) is
 * called once with the newest entry of the key at or below the lookup
 * key's sequence (value valid only during the call). WEIR_OK if called,
 * WEIR_NOT_FOUND, or an error. */
typedef void (*version_entry_fn)(void *arg, int type, uint64_t seq, slice value);
/* flags: SST_READ_MEMORY_ONLY (sst.h) returns WEIR_INCOMPLETE instead of
 * opening a table or reading a block for the first time. */
int version_get_entry(version *v, slice lookup_ikey, uint64_t hash, unsigned flags,
                      version_entry_fn fn, void *arg);

/* Charge a sampled iterator seek to user_key, standing for `weight`
 * seeks: if two or more sorted runs of v (each level-0 file is one)
 * overlap the key, the first of them (the newest) loses `weight` of its
 * seek allowance. The allowance is used up once it has also paid for the
 * bytes the file overlaps one level down (a compaction rewrites them
 * too). Returns 1 if this call used it up and made that file v's seek
 * victim (the caller then wakes the background thread), else 0. Does not
 * need the DB mutex (v is referenced). */
int version_charge_seek(version *v, slice user_key, int64_t weight);

/* Append internal iterators covering every table of v (one per level-0
 * file, newest first, then one concatenating iterator per non-empty level)
 * to *list (realloc'd; *n updated). The caller keeps v referenced while
 * they live. WEIR_NO_MEMORY on OOM. */
int version_add_iterators(version *v, iter ***list, int *n);

/* Concatenating iterator over files of one level >= 1 (sorted, disjoint),
 * opening each table through the cache only when reached. The caller keeps
 * the files alive (a referenced version). NULL on OOM. */
iter *level_iter_create(table_cache *tc, file_meta **files, int num_files);

/* Bytes of all files at a level. */
uint64_t version_level_bytes(const version *v, int level);
/* 1 if some file at `level` overlaps user keys [smallest, largest] (NULL
 * bounds are open-ended). */
int version_overlap_in_level(const version *v, int level, const slice *smallest_user,
                             const slice *largest_user);
/* Human-readable "level N: F files, B bytes" lines (malloc'd string). */
char *version_level_summary(const version *v);
/* One line per table: level, number, size, entries, key range (malloc'd). */
char *version_table_list(const version *v);

/* ---- the version set ---------------------------------------------------- */

typedef struct vset_options {
    uint64_t max_bytes_for_level_base; /* level 1 size limit; x10 per level */
    uint64_t target_file_size;         /* compaction output size */
    int level0_compaction_trigger;     /* level-0 files that make score 1 */
} vset_options;

struct version_set {
    weir_env *env;
    char *dbpath;
    table_cache *tc;
    vset_options opts;
    uint64_t next_file_number;
    uint64_t manifest_file_number;
    uint64_t last_sequence;
    uint64_t log_number;
    uint64_t log_start_sequence; /* first sequence of log `log_number` */
    int log_start_known;         /* 0 for a manifest older than format 2 */
    /* What vset_recover found, for recovery's checks and its messages. */
    struct {
        uint64_t manifest_number;
        uint64_t records;        /* edits replayed */
        uint64_t torn_offset;    /* where a dropped torn tail began */
        uint64_t torn_bytes;     /* 0: the manifest ended cleanly */
        uint64_t next_file;      /* next_file_number as the manifest said it */
        int clean_close;         /* the last edit was a clean close */
        uint64_t close_sequence;
        uint64_t close_log_number;
    } recovered;
    int manifest_uncertain;      /* an edit failed after its I/O began: what the
                                    manifest on disk says is unknown until a
                                    new manifest is written (no deletions) */
    log_writer *manifest;        /* NULL until the first log_and_apply */
    int manifest_busy;           /* a log_and_apply is writing */
    pthread_cond_t manifest_cv;  /* waits for manifest_busy to clear */
    version list_head;           /* circular list of live versions */
    version *current;
    buf compact_pointer[NUM_LEVELS];
};

version_set *vset_create(weir_env *env, const char *dbpath, table_cache *tc,
                         const vset_options *opts);
/* Current version unreferenced; every other version must be released. */
void vset_destroy(version_set *vs);

/* Create a brand-new DB: MANIFEST-000001 holding an empty version with
 * next_file_number 2, then CURRENT pointing at it (written to a temp file,
 * fsynced, renamed, directory fsynced). */
int vset_create_new_db(version_set *vs);

/* Read CURRENT and replay the manifest it names, installing the result as
 * the current version. A torn last record is ignored; any other damage is
 * WEIR_CORRUPTION naming the manifest and offset; missing CURRENT or
 * manifest, WEIR_CORRUPTION naming what is missing. The next log_and_apply
 * writes a fresh manifest. */
int vset_recover(version_set *vs);

/* Salvage's view of a damaged manifest: damaged byte ranges (log reader
 * salvage mode) and records that checksum but do not decode or apply are
 * reported and skipped instead of failing the replay. */
typedef struct vset_salvage_fn {
    log_salvage_fn on_damage;
    void (*on_bad_edit)(void *arg, uint64_t offset, const char *reason);
} vset_salvage_fn;
/* vset_recover of a given manifest; salvage NULL: as vset_recover. */
int vset_recover_manifest(version_set *vs, uint64_t manifest_number, const vset_salvage_fn *salvage,
                          void *salvage_arg);

uint64_t vset_new_file_number(version_set *vs);
/* Make sure next_file_number > n (after seeing file n on disk). */
void vset_mark_file_number_used(version_set *vs, uint64_t n);

/* Apply edit to the current version, append it to the manifest (the first
 * call, or one after the manifest passed MANIFEST_ROLL_BYTES, writes a new
 * manifest starting with a snapshot and switches CURRENT), sync it, and
 * install the new version. The edit gets next_file_number and
 * last_sequence filled in. Called with mu held; drops it during I/O;
 * concurrent callers are serialised. On failure the current version is
 * unchanged and the error returned. */
int vset_log_and_apply(version_set *vs, version_edit *edit, pthread_mutex_t *mu);

/* Abandon the manifest being appended to (after a failure), dropping what
 * it had not yet handed to the OS: the next vset_log_and_apply starts a new
 * manifest with a full snapshot of the current version and points CURRENT
 * at it. Mutex held, no edit in progress. */
void vset_drop_manifest(version_set *vs);

/* Add every file number listed by any live version to the set
 * (caller-provided callback so db.c can use its own set type). */
void vset_for_each_live_file(version_set *vs, void (*fn)(void *arg, uint64_t number),
                             void *arg);

/* ---- compaction picking ------------------------------------------------- */

typedef struct compaction {
    int level;                   /* inputs[0] at level, inputs[1] at level+1 */
    version *input_version;      /* referenced */
    file_meta **inputs[2];
    int num_inputs[2];
    file_meta **grandparents;    /* level+2 files overlapping the range */
    int num_grandparents;
    uint64_t max_output_file_size;
    int rewrite;                 /* never a trivial move (vset_compact_range_bottom) */
    int read_triggered;          /* picked for a seek victim, not a level's size */
    version_edit edit;           /* deletions of inputs are added by the caller */
    /* state for compaction_should_stop_before / is_base_level_for_key */
    int grandparent_index;
    int seen_key;
    uint64_t overlapped_bytes;
    int level_ptrs[NUM_LEVELS];
} compaction;

/* Pick the most needed compaction of the current version (highest score
 * >= 1; files being compacted are skipped), else one for its seek victim
 * (read_triggered), or NULL. Marks its inputs being_compacted. */
compaction *vset_pick_compaction(version_set *vs);
/* A compaction of the files of `level` overlapping [begin, end] (internal
 * keys; NULL = open-ended), or NULL if none overlap. Also NULL (message
 * WEIR_BUSY) if a needed file is already being compacted, and (WEIR_INVALID)
 * for the last level. Level-L inputs of both pickers always include every
 * file sharing a boundary user key with them, so the versions of one user
 * key never end up split between a file that moves and one that stays. */
compaction *vset_compact_range(version_set *vs, int level, const slice *begin,
                               const slice *end);
/* Like vset_compact_range, but level+1 inputs are every file of level+1
 * in [begin, end] (not only those under a level-`level` input), level
 * `level` may contribute none, and the result is always rewritten, never
 * moved. The last step of a manual compaction uses it so the deepest data
 * in the range is rewritten too: expired values, data under range
 * tombstones and merge operands at the bottom are only purged or folded
 * by a rewrite, and nothing above would ever send a compaction their way.
 * NULL if no file overlaps (no message) or on error (message). */
compaction *vset_compact_range_bottom(version_set *vs, int level, const slice *begin,
                                      const slice *end);
/* A single input file that can be moved down without rewriting. */
int compaction_is_trivial_move(const compaction *c);
/* Add "delete every input" to c->edit. */
int compaction_add_input_deletions(compaction *c);
/* 1 if no level deeper than level+1 may hold user_key (so a tombstone can
 * be dropped). Calls must come in increasing key order. */
int compaction_is_base_level_for_key(compaction *c, slice user_key);
/* 1 if the output file should be cut before ikey (too much grandparent
 * overlap). Calls must come in increasing key order. */
int compaction_should_stop_before(compaction *c, slice ikey);
/* Merged iterator over all inputs (NULL on OOM). */
iter *compaction_input_iter(compaction *c);
/* Clears being_compacted on the inputs, unrefs the version, frees. */
void compaction_free(compaction *c);

/* 1 if the current version wants a compaction (a level over its size, or
 * a seek victim). */
int vset_needs_compaction(const version_set *vs);

#endif
