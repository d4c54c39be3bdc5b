/*
 * recovery.c -- opening a DB's files: the lock, CURRENT and the manifest,
 * the checks that every file the manifest needs is there, and the replay of
 * the write-ahead logs into memtables.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "bloom.h"
#include "cache.h"
#include "compress.h"
#include "crc32c.h"
#include "db_impl.h"
#include "filename.h"
#include "sst.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

typedef struct replay_ctx {
    weir_db *db;
    memtable *mem;
    uint64_t max_sequence;
} replay_ctx;

static int replay_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    replay_ctx *ctx = arg;
    if (seq > ctx->max_sequence) ctx->max_sequence = seq;
    /* Range tombstones go to the side list, as on the write path: in the
     * skiplist one would read as a value of its start key. */
    if (type == TYPE_RANGE_DELETION) return memtable_add_range_tombstone(ctx->mem, seq, key, value);
    return memtable_add(ctx->mem, seq, type, key, value);
}

/* Replay one log into memtables, flushing to level 0 whenever the memtable
 * fills (mutex held).
 *
 * *next_seq is the sequence the next record must start with (0: not known
 * yet, before the first record replayed). Writes are numbered without gaps
 * across a switch to a new log, so a first record that starts past it means
 * the end of the previous log was lost: a power cut kept part of the new
 * log (unsynced, as the OS wrote it out) but not the old log's unsynced
 * tail. Replaying the new log would apply later writes without earlier
 * ones, a state that never existed; the history is cut there instead, which
 * a power cut may do to unsynced writes (an fsync'd write in the new log
 * synced the old log first, so it never follows a hole). *hole is set and
 * the caller replays no further logs; they become obsolete. */
static int replay_log(weir_db *db, uint64_t number, version_edit *edit, uint64_t *max_seq,
                      uint64_t *next_seq, int *hole) {
    char path[PATH_MAX];
    log_file_path(path, sizeof path, db->path, number);
    log_reader *r;
    int rc = log_reader_open(db->env, path, &r);
    if (rc != WEIR_OK) return rc;
    buf scratch = BUF_INIT;
    slice record;
    replay_ctx ctx = {db, db->mem, *max_seq};
    int first = 1;
    while ((rc = log_reader_next(r, &scratch, &record)) == WEIR_OK) {
        if (record.len < BATCH_HEADER_SIZE) {
            rc = weir_set_error(WEIR_CORRUPTION, "log %s: record at offset %" PRIu64
                                " is too short to be a write batch (%zu bytes)",
                                path, log_reader_record_offset(r), record.len);
            break;
        }
        uint64_t seq = batch_rep_sequence(record);
        if (first && *next_seq != 0 && seq > *next_seq) {
            *hole = 1;
            stat_add(&db->stats.recovered_torn_bytes, record.len);
            break;
        }
        first = 0;
        *next_seq = seq + batch_rep_count(record);
        ctx.mem = db->mem;
        rc = batch_rep_iterate(record, replay_op, &ctx);
        if (rc != WEIR_OK) {
            rc = weir_wrap_error(rc, "log %s: record at offset %" PRIu64, path,
                                 log_reader_record_offset(r));
            break;
        }
        stat_add(&db->stats.recovered_records, 1);
        if (memtable_memory_usage(db->mem) >= db->opts.write_buffer_size) {
            memtable *full = db->mem;
            db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
            if (!db->mem) {
                db->mem = full;
                rc = weir_set_error(WEIR_NO_MEMORY, "out of memory during recovery");
                break;
            }
            uint64_t number;
            rc = db_write_level0_table(db, full, edit, &number);
            memtable_unref(full);
            if (rc != WEIR_OK) break;
        }
    }
    if (rc == WEIR_NOT_FOUND) {
        rc = WEIR_OK;
        stat_add(&db->stats.recovered_torn_bytes, log_reader_dropped_bytes(r));
    }
    *max_seq = ctx.max_sequence;
    buf_free(&scratch);
    log_reader_close(r);
    return rc;
}

int db_recover(weir_db *db) {
    char path[PATH_MAX];
    weir_env *env = db->env;
    if (!db->opts.create_if_missing && !env->ops->file_exists(env, db->path))
        return weir_set_error(WEIR_INVALID,
                              "database directory %s does not exist (create_if_missing is off)",
                              db->path);
    int rc = env->ops->create_dir(env, db->path);
    if (rc != WEIR_OK) return rc;
    rc = env->ops->lock_file(env, lock_file_path(path, sizeof path, db->path), &db->lock_fd);
    if (rc != WEIR_OK) return rc;

    current_file_path(path, sizeof path, db->path);
    if (!env->ops->file_exists(env, path)) {
        /* No CURRENT: a new DB, unless store files say one was here. */
        env_dirent_list names = {0};
        rc = env->ops->list_dir(env, db->path, &names);
        if (rc != WEIR_OK) return rc;
        int has_store_files = 0;
        for (size_t i = 0; i < names.count; i++) {
            enum file_kind k = parse_file_name(names.names[i], NULL);
            /* A manifest alone is a creation that crashed before CURRENT
             * was renamed into place: no write can have been acknowledged
             * (open had not returned), so the store is started afresh.
             * Only logs and tables hold data. */
            if (k == FILE_LOG || k == FILE_TABLE) has_store_files = 1;
        }
        env_dirent_list_free(&names);
        if (has_store_files)
            return weir_set_error(WEIR_CORRUPTION,
                                  "%s holds weir table or log files but no CURRENT file; the "
                                  "database is damaged (restore CURRENT or a backup)",
                                  db->path);
        if (!db->opts.create_if_missing)
            return weir_set_error(WEIR_INVALID, "%s is not a weir database (create_if_missing is off)",
                                  db->path);
        rc = vset_create_new_db(db->vs);
        if (rc != WEIR_OK) return rc;
    } else if (db->opts.error_if_exists) {
        return weir_set_error(WEIR_EXISTS, "database %s already exists (error_if_exists is on)",
                              db->path);
    }

    rc = vset_recover(db->vs);
    if (rc != WEIR_OK) return rc;

    /* Every table the manifest lists must exist; logs at or after the
     * manifest's log number are replayed in order. */
    env_dirent_list names = {0};
    rc = env->ops->list_dir(env, db->path, &names);
    if (rc != WEIR_OK) return rc;
    uint64_t *logs = NULL;
    size_t nlogs = 0;
    for (size_t i = 0; i < names.count && rc == WEIR_OK; i++) {
        uint64_t number;
        enum file_kind k = parse_file_name(names.names[i], &number);
        if (k == FILE_LOG || k == FILE_TABLE || k == FILE_MANIFEST || k == FILE_TEMP)
            vset_mark_file_number_used(db->vs, number);
        if (k == FILE_LOG && number >= db->vs->log_number) {
            uint64_t *p = realloc(logs, (nlogs + 1) * sizeof *p);
            if (!p) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory listing logs");
            else {
                logs = p;
                logs[nlogs++] = number;
            }
        }
    }
    env_dirent_list_free(&names);
    version *cur = db->vs->current;
    for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++) {
        for (int i = 0; i < cur->num_files[level]; i++) {
            table_file_path(path, sizeof path, db->path, cur->files[level][i]->number);
            if (!env->ops->file_exists(env, path)) {
                rc = weir_set_error(WEIR_CORRUPTION,
                                    "table %s listed in the manifest is missing; the database is "
                                    "damaged",
                                    path);
                break;
            }
        }
    }
    /* Open every table once: a table this build cannot read (a codec not
     * compiled in, a damaged footer) fails the open now, not a read later.
     * The table cache keeps as many open as max_open_files allows. */
    for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++) {
        for (int i = 0; i < cur->num_files[level] && rc == WEIR_OK; i++) {
            table_handle *h;
            rc = table_cache_get(db->tc, cur->files[level][i]->number, cur->files[level][i]->size, &h);
            if (rc == WEIR_OK) table_cache_release(db->tc, h);
        }
    }
    if (rc != WEIR_OK) {
        free(logs);
        return rc;
    }
    if (nlogs) qsort(logs, nlogs, sizeof *logs, cmp_u64);

    version_edit edit;
    version_edit_init(&edit);
    uint64_t max_seq = db->vs->last_sequence;
    pthread_mutex_lock(&db->mu);
    uint64_t next_seq = 0;
    int hole = 0;
    for (size_t i = 0; i < nlogs && rc == WEIR_OK && !hole; i++)
        rc = replay_log(db, logs[i], &edit, &max_seq, &next_seq, &hole);
    free(logs);
    if (rc == WEIR_OK && memtable_count(db->mem) > 0) {
        memtable *full = db->mem;
        db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
        if (!db->mem) {
            db->mem = full;
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory during recovery");
        } else {
            uint64_t number;
            rc = db_write_level0_table(db, full, &edit, &number);
            memtable_unref(full);
        }
    }
    if (rc == WEIR_OK) {
        if (max_seq > db->vs->last_sequence) db->vs->last_sequence = max_seq;
        uint64_t number = vset_new_file_number(db->vs);
        rc = log_writer_open(env, log_file_path(path, sizeof path, db->path, number), &db->log);
        if (rc == WEIR_OK) {
            db->log_number = number;
            version_edit_set_log_number(&edit, number);
            rc = vset_log_and_apply(db->vs, &edit, &db->mu);
        }
        if (rc == WEIR_OK) {
            rc = env->ops->sync_dir(env, db->path);
        }
        /* Recovery's tables are installed (or abandoned) now. */
        db->num_pending = 0;
        if (rc == WEIR_OK) db_delete_obsolete_files(db);
        db_update_compaction_debt(db);
    }
    db->num_pending = 0;
    atomic_store_explicit(&db->visible_sequence, db->vs->last_sequence, memory_order_release);
    db_install_superversion(db);
    if (!db->sv) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", db->path);
    pthread_mutex_unlock(&db->mu);
    version_edit_free(&edit);
    return rc;
}


