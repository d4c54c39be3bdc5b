/*
 * recovery.c -- opening a DB's files: the directory and its lock, CURRENT
 * and the manifest, the checks that every file the manifest needs is there
 * and is the file it recorded, and the replay of the write-ahead logs.
 *
 * The rules that keep recovery from inventing a state (docs/RELIABILITY.md,
 * "Recovery rules"):
 *
 *  1. A torn tail (damage with no valid fragment anywhere after it, wal.c)
 *     is accepted only at the end of the manifest and at the end of the
 *     write history. Damage followed by valid data is corruption.
 *  2. Write sequences run on without a gap from the manifest's log start
 *     through every log. A gap or an overlap is corruption, with one
 *     exception, the hole a power cut can leave in unsynced writes: the DB
 *     was not closed cleanly, the gap is where a log begins and an earlier
 *     log was replayed (a cut takes an existing log's end, never the
 *     history's beginning), no write at or after it asked for an fsync (an
 *     fsync'd write made every earlier log durable before it was written),
 *     and no later log holds an earlier sequence (a cut never reorders).
 *     The history is then cut at the hole, as the sync mode allows, and the
 *     logs after it are set aside (renamed NNNNNN.log.unreplayed), never
 *     deleted.
 *  3. After a clean close (the manifest ends with a clean-close record)
 *     nothing may be missing at all: the logs must end exactly where close
 *     left them, with no torn tail.
 *  4. Every table the manifest lists exists with the size, entry count and
 *     first and last keys it recorded; the log the manifest names as the
 *     start of the unflushed writes exists.
 *  5. Nothing is deleted or renamed until all of that holds, and tables
 *     newer than the recovered manifest are never deleted by the open that
 *     finds them.
 *
 * A read-only open applies the same checks, replays the logs into memory
 * and writes, renames and deletes nothing.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "db_impl.h"
#include "filename.h"
#include "sst.h"

/* ---- small helpers ---------------------------------------------------------- */

typedef struct number_list {
    uint64_t *v;
    size_t n, cap;
} number_list;

static int number_list_add(number_list *l, uint64_t x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *p = realloc(l->v, cap * sizeof *p);
        if (!p) return weir_set_error(WEIR_NO_MEMORY, "out of memory listing database files");
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return WEIR_OK;
}

static int number_list_has(const number_list *l, uint64_t x) {
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == x) return 1;
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Appended to messages about files the manifest needs: if the manifest's
 * last record was dropped as torn, that record may be what is missing. */
static const char *manifest_note(const weir_db *db, char *out, size_t cap) {
    const version_set *vs = db->vs;
    if (vs->recovered.torn_bytes == 0) return "";
    snprintf(out, cap,
             "; note: the last %" PRIu64 " bytes of MANIFEST-%06" PRIu64 " (from offset %" PRIu64
             ") were unreadable and were dropped as a torn write: if they were damaged rather than "
             "torn, the change they recorded is what is missing (weir salvage recovers what is "
             "intact)",
             vs->recovered.torn_bytes, vs->recovered.manifest_number, vs->recovered.torn_offset);
    return out;
}

/* ---- the directory ------------------------------------------------------------ */

/* WEIR_INVALID when the directory has no CURRENT but holds files that are
 * not weir's: weir never creates a store among a user's files. */
static int foreign_files_check(weir_db *db) {
    char path[PATH_MAX];
    if (db->env->ops->file_exists(db->env, current_file_path(path, sizeof path, db->path))) return WEIR_OK;
    env_dirent_list names = {0};
    int rc = db->env->ops->list_dir(db->env, db->path, &names);
    if (rc != WEIR_OK) return rc;
    char first[256] = "";
    int store_files = 0;
    for (size_t i = 0; i < names.count; i++) {
        enum file_kind k = parse_file_name(names.names[i], NULL);
        if (k == FILE_LOG || k == FILE_TABLE || k == FILE_UNREPLAYED_LOG) store_files = 1;
        if (k == FILE_UNKNOWN && !first[0]) snprintf(first, sizeof first, "%s", names.names[i]);
    }
    env_dirent_list_free(&names);
    if (!first[0] || store_files) return WEIR_OK; /* store files: damage, reported under the lock */
    return weir_set_error(WEIR_INVALID,
                          "%s is not empty (it holds \"%s\" among others) and is not a weir database: "
                          "weir creates a database only in a new or empty directory, never among "
                          "other files",
                          db->path, first);
}

/* The directory must exist (or be created), hold a DB or nothing of the
 * user's, and be locked. *fresh: no CURRENT yet (a new DB). */
static int prepare_directory(weir_db *db, int *fresh) {
    char path[PATH_MAX];
    weir_env *env = db->env;
    *fresh = 0;
    int exists = env->ops->file_exists(env, db->path);
    if (!exists && (!db->opts.create_if_missing || db->read_only))
        return weir_set_error(WEIR_INVALID, "database directory %s does not exist (%s)", db->path,
                              db->read_only ? "a read-only open never creates one"
                                            : "create_if_missing is off");
    if (!db->read_only) {
        int rc = env->ops->create_dir(env, db->path);
        if (rc != WEIR_OK) return rc;
        /* Refuse a directory of someone else's files before the LOCK file
         * is created there (checked again under the lock below). */
        rc = foreign_files_check(db);
        if (rc != WEIR_OK) return rc;
    }
    int rc = db->read_only
                 ? env->ops->lock_file_shared(env, lock_file_path(path, sizeof path, db->path), &db->lock_fd)
                 : env->ops->lock_file(env, lock_file_path(path, sizeof path, db->path), &db->lock_fd);
    if (rc != WEIR_OK) return rc;

    current_file_path(path, sizeof path, db->path);
    if (env->ops->file_exists(env, path)) {
        if (db->opts.error_if_exists)
            return weir_set_error(WEIR_EXISTS, "database %s already exists (error_if_exists is on)",
                                  db->path);
        return WEIR_OK;
    }
    /* No CURRENT: a new DB, unless store files say one was here. */
    env_dirent_list names = {0};
    rc = env->ops->list_dir(env, db->path, &names);
    if (rc != WEIR_OK) return rc;
    int has_store_files = 0;
    int foreign = 0;
    for (size_t i = 0; i < names.count; i++) {
        enum file_kind k = parse_file_name(names.names[i], NULL);
        /* A manifest alone is a creation that crashed before CURRENT was
         * renamed into place: no write can have been acknowledged (open had
         * not returned), so the store is started afresh. Only logs and
         * tables hold data. */
        if (k == FILE_LOG || k == FILE_TABLE || k == FILE_UNREPLAYED_LOG) has_store_files = 1;
        if (k == FILE_UNKNOWN) foreign = 1;
    }
    env_dirent_list_free(&names);
    if (has_store_files)
        return weir_set_error(WEIR_CORRUPTION,
                              "%s holds weir table or log files but no CURRENT file; the "
                              "database is damaged (restore CURRENT or a backup, or run weir "
                              "salvage)",
                              db->path);
    if (db->read_only)
        return weir_set_error(WEIR_INVALID, "%s is not a weir database (no CURRENT file)", db->path);
    if (!db->opts.create_if_missing)
        return weir_set_error(WEIR_INVALID, "%s is not a weir database (create_if_missing is off)",
                              db->path);
    if (foreign) return foreign_files_check(db);
    *fresh = 1;
    return WEIR_OK;
}

/* ---- tables ------------------------------------------------------------------- */

/* A listed table must be the file the manifest recorded: present, the same
 * size, entry count and first and last keys (a swapped, truncated, grown or
 * replaced file is caught here, not by a wrong read later). Opening it also
 * verifies its footer, index and filter checksums, and refuses a codec this
 * build lacks. */
static int check_table(weir_db *db, const file_meta *f, int level) {
    char path[PATH_MAX], note[640];
    table_file_path(path, sizeof path, db->path, f->number);
    uint64_t size = 0;
    if (!db->env->ops->file_exists(db->env, path))
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s (level %d) listed in the manifest is missing; the database "
                              "is damaged%s",
                              path, level, manifest_note(db, note, sizeof note));
    int rc = db->env->ops->file_size(db->env, path, &size);
    if (rc != WEIR_OK) return rc;
    if (size != f->size)
        return weir_set_error(WEIR_CORRUPTION,
                              "table %s is %" PRIu64 " bytes but the manifest recorded %" PRIu64
                              " (a truncated, extended or swapped file); the database is damaged%s",
                              path, size, f->size, manifest_note(db, note, sizeof note));
    table_handle *h;
    rc = table_cache_get(db->tc, f->number, f->size, &h);
    if (rc != WEIR_OK) return rc;
    sst_reader *r = table_handle_reader(h);
    if (sst_reader_num_entries(r) != f->num_entries) {
        rc = weir_set_error(WEIR_CORRUPTION,
                            "table %s holds %" PRIu64 " entries but the manifest recorded %" PRIu64
                            " (a swapped or replaced file); the database is damaged%s",
                            path, sst_reader_num_entries(r), f->num_entries,
                            manifest_note(db, note, sizeof note));
    }
    if (rc == WEIR_OK) {
        iter *it = sst_reader_iter(r, NULL, NULL);
        if (!it) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory checking table %s", path);
        } else {
            iter_seek_first(it);
            int first_ok = iter_valid(it) && slice_equal(iter_key(it), buf_slice(&f->smallest));
            iter_seek_last(it);
            int last_ok = iter_valid(it) && slice_equal(iter_key(it), buf_slice(&f->largest));
            rc = iter_status(it);
            if (rc == WEIR_OK && (!first_ok || !last_ok))
                rc = weir_set_error(WEIR_CORRUPTION,
                                    "table %s: its %s key differs from the one the manifest "
                                    "recorded (a swapped or replaced file); the database is "
                                    "damaged%s",
                                    path, first_ok ? "last" : "first", manifest_note(db, note, sizeof note));
            iter_destroy(it);
        }
    }
    table_cache_release(db->tc, h);
    return rc;
}

static int check_tables(weir_db *db) {
    version *cur = db->vs->current;
    for (int level = 0; level < NUM_LEVELS; level++)
        for (int i = 0; i < cur->num_files[level]; i++) {
            int rc = check_table(db, cur->files[level][i], level);
            if (rc != WEIR_OK) return rc;
        }
    return WEIR_OK;
}

/* ---- replaying the logs ------------------------------------------------------------ */

typedef struct replay_state {
    weir_db *db;
    version_edit *edit;    /* level-0 tables written while replaying (read-write) */
    const uint64_t *logs;  /* log numbers >= the manifest's log number, ascending */
    size_t nlogs;
    uint64_t expected;     /* the sequence the history continues with; 0: not known
                              yet (a manifest of the format before log starts) */
    uint64_t max_seq;
    int cut;               /* the history was cut at a power cut's hole */
    size_t cut_index;      /* logs[cut_index..] are not replayed */
    uint64_t cut_missing_from, cut_missing_to;
    int torn;              /* a torn tail was dropped somewhere */
    uint64_t torn_log, torn_offset, torn_bytes;
    uint64_t newest_log_read;
} replay_state;

typedef struct apply_ctx {
    memtable *mem;
} apply_ctx;

static int apply_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    apply_ctx *ctx = arg;
    /* Range tombstones go to the side list, as on the write path: in the
     * skiplist one would read as a value of its start key. */
    if (type == TYPE_RANGE_DELETION) return memtable_add_range_tombstone(ctx->mem, seq, key, value);
    return memtable_add(ctx->mem, seq, type, key, value);
}

/* What the logs from logs[from] on hold, for the power-cut hole rule: the
 * first record that asked for an fsync (*synced_log/seq), and the lowest
 * sequence anywhere in them (*lowest). Damage in those logs means neither
 * can be told: that is returned as the error. */
static int scan_later_logs(replay_state *st, size_t from, uint64_t *synced_log, uint64_t *synced_seq,
                           uint64_t *lowest) {
    char path[PATH_MAX];
    *synced_log = *synced_seq = 0;
    *lowest = UINT64_MAX;
    for (size_t i = from; i < st->nlogs; i++) {
        log_file_path(path, sizeof path, st->db->path, st->logs[i]);
        log_reader *r;
        int rc = log_reader_open(st->db->env, path, &r);
        if (rc != WEIR_OK) return rc;
        buf scratch = BUF_INIT;
        slice record;
        while ((rc = log_reader_next(r, &scratch, &record)) == WEIR_OK) {
            if (record.len < BATCH_HEADER_SIZE) continue; /* replay reports it */
            uint64_t seq = batch_rep_sequence(record);
            if (seq < *lowest) *lowest = seq;
            if (batch_rep_synced(record) && !*synced_log) {
                *synced_log = st->logs[i];
                *synced_seq = seq;
            }
        }
        buf_free(&scratch);
        log_reader_close(r);
        if (rc == WEIR_NOT_FOUND) rc = WEIR_OK;
        if (rc != WEIR_OK) return rc;
    }
    return WEIR_OK;
}

/* The first record of logs[i] starts at `seq`, past the `expected` the
 * history had reached: rule 2 of the top of the file. A power cut can only
 * take the unsynced end of an earlier log that is still there: never the
 * beginning of the history the manifest points at, never a write that
 * comes after an fsync'd one, and it never reorders logs. */
static int history_gap(replay_state *st, size_t i, uint64_t seq, const char *path) {
    const version_set *vs = st->db->vs;
    uint64_t from = st->expected, to = seq - 1;
    if (vs->recovered.clean_close)
        return weir_set_error(WEIR_CORRUPTION,
                              "log %s begins at sequence %" PRIu64 " but the history before it "
                              "ends at %" PRIu64 ": writes %" PRIu64 "..%" PRIu64 " are missing, "
                              "and the database was closed cleanly, so no crash explains it "
                              "(a deleted, truncated or swapped log; weir salvage recovers what "
                              "is intact)",
                              path, seq, from - 1, from, to);
    if (i == 0)
        return weir_set_error(WEIR_CORRUPTION,
                              "log %s begins at sequence %" PRIu64 " but the manifest says the "
                              "writes not yet in tables start at %" PRIu64 ": writes %" PRIu64
                              "..%" PRIu64 " are missing (the log holding them is gone or lost its "
                              "beginning, or the manifest is stale)",
                              path, seq, from, from, to);
    uint64_t synced_log, synced_seq, lowest;
    int rc = scan_later_logs(st, i, &synced_log, &synced_seq, &lowest);
    if (rc != WEIR_OK)
        return weir_wrap_error(rc, "log %s begins at sequence %" PRIu64 " past the %" PRIu64
                               " the history had reached, and a later log cannot be read to "
                               "tell a crash from damage",
                               path, seq, from);
    if (lowest < seq)
        return weir_set_error(WEIR_CORRUPTION,
                              "log %s begins at sequence %" PRIu64 " but a later log holds sequence "
                              "%" PRIu64 ": the logs are out of order (swapped, copied or renamed "
                              "files)",
                              path, seq, lowest);
    if (synced_log)
        return weir_set_error(WEIR_CORRUPTION,
                              "log %s begins at sequence %" PRIu64 " but the history before it "
                              "ends at %" PRIu64 ": writes %" PRIu64 "..%" PRIu64 " are missing, "
                              "and write %" PRIu64 " in log %06" PRIu64 ".log was fsync'd after "
                              "them, which made them durable first: they were lost to damage, not "
                              "to a crash (weir salvage recovers what is intact)",
                              path, seq, from - 1, from, to, synced_seq, synced_log);
    st->cut = 1;
    st->cut_index = i;
    st->cut_missing_from = from;
    st->cut_missing_to = to;
    return WEIR_OK;
}

/* Move the memtable into a level-0 table when it is full (read-write only:
 * a read-only open keeps everything in memory). */
static int maybe_flush_replayed(replay_state *st) {
    weir_db *db = st->db;
    if (db->read_only || memtable_memory_usage(db->mem) < db->opts.write_buffer_size) return WEIR_OK;
    memtable *full = db->mem;
    db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
    if (!db->mem) {
        db->mem = full;
        return weir_set_error(WEIR_NO_MEMORY, "out of memory during recovery");
    }
    uint64_t number;
    int rc = db_write_level0_table(db, full, st->edit, &number);
    memtable_unref(full);
    return rc;
}

/* Replay logs[i] (mutex held). *stop: the history was cut here. */
static int replay_log(replay_state *st, size_t i, int *stop) {
    weir_db *db = st->db;
    char path[PATH_MAX];
    log_file_path(path, sizeof path, db->path, st->logs[i]);
    *stop = 0;
    log_reader *r;
    int rc = log_reader_open(db->env, path, &r);
    if (rc != WEIR_OK) return rc;
    buf scratch = BUF_INIT;
    slice record;
    uint64_t records = 0;
    while ((rc = log_reader_next(r, &scratch, &record)) == WEIR_OK) {
        uint64_t off = log_reader_record_offset(r);
        if (record.len < BATCH_HEADER_SIZE) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "log %s: record at offset %" PRIu64 " is too short to be a write "
                                "batch (%zu bytes)",
                                path, off, record.len);
            break;
        }
        uint64_t seq = batch_rep_sequence(record), count = batch_rep_count(record);
        uint64_t field = batch_rep_sequence_field(record) & ~BATCH_SEQ_SYNCED;
        if (field > MAX_SEQUENCE || seq == 0 || count == 0 || seq + count - 1 > MAX_SEQUENCE) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "log %s: record at offset %" PRIu64 " has an impossible header "
                                "(sequence %" PRIu64 ", %" PRIu64 " writes)",
                                path, off, field, count);
            break;
        }
        if (st->expected == 0) {
            /* An old-format manifest does not say where the log starts:
             * its last sequence bounds it. */
            if (seq > db->vs->last_sequence + 1) {
                st->expected = db->vs->last_sequence + 1;
            } else {
                st->expected = seq;
            }
        }
        if (seq < st->expected) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "log %s: record at offset %" PRIu64 " starts at sequence %" PRIu64
                                ", but the history already reached %" PRIu64
                                " (a duplicated, stale or swapped log)",
                                path, off, seq, st->expected - 1);
            break;
        }
        if (seq > st->expected) {
            if (records > 0) {
                rc = weir_set_error(WEIR_CORRUPTION,
                                    "log %s: record at offset %" PRIu64 " starts at sequence %" PRIu64
                                    " but the record before it ended at %" PRIu64
                                    ": writes are missing inside the log",
                                    path, off, seq, st->expected - 1);
                break;
            }
            rc = history_gap(st, i, seq, path);
            if (rc == WEIR_OK) *stop = 1;
            break;
        }
        apply_ctx ctx = {db->mem};
        rc = batch_rep_iterate(record, apply_op, &ctx);
        if (rc != WEIR_OK) {
            rc = weir_wrap_error(rc, "log %s: record at offset %" PRIu64, path, off);
            break;
        }
        records++;
        st->expected = seq + count;
        if (seq + count - 1 > st->max_seq) st->max_seq = seq + count - 1;
        st->newest_log_read = st->logs[i];
        stat_add(&db->stats.recovered_records, 1);
        rc = maybe_flush_replayed(st);
        if (rc != WEIR_OK) break;
    }
    if (rc == WEIR_NOT_FOUND) {
        rc = WEIR_OK;
        uint64_t dropped = log_reader_dropped_bytes(r);
        if (dropped > 0) {
            st->torn = 1;
            st->torn_log = st->logs[i];
            st->torn_offset = log_reader_valid_end(r);
            st->torn_bytes = dropped;
            stat_add(&db->stats.recovered_torn_bytes, dropped);
        }
    }
    buf_free(&scratch);
    log_reader_close(r);
    return rc;
}

/* Rules 3 and 4 for the logs, after the replay. */
static int check_history_end(replay_state *st) {
    const version_set *vs = st->db->vs;
    char path[PATH_MAX];
    if (!vs->recovered.clean_close) return WEIR_OK;
    if (st->torn) {
        log_file_path(path, sizeof path, st->db->path, st->torn_log);
        return weir_set_error(WEIR_CORRUPTION,
                              "log %s: %" PRIu64 " bytes from offset %" PRIu64 " are damaged or "
                              "incomplete, but the database was closed cleanly, so this is no "
                              "torn write: acknowledged writes there are lost (weir salvage "
                              "recovers what is intact)",
                              path, st->torn_bytes, st->torn_offset);
    }
    /* An open that crashed before writing its manifest leaves a newer,
     * empty log: harmless. Records in one are not. */
    if (st->newest_log_read > vs->recovered.close_log_number) {
        log_file_path(path, sizeof path, st->db->path, st->newest_log_read);
        return weir_set_error(WEIR_CORRUPTION,
                              "log %s holds writes but is newer than any log the database had "
                              "when it was closed cleanly (a stray or copied file)",
                              path);
    }
    uint64_t newest = st->newest_log_read ? st->newest_log_read : vs->recovered.close_log_number;
    uint64_t end = st->expected ? st->expected - 1 : vs->last_sequence;
    if (end != vs->recovered.close_sequence) {
        log_file_path(path, sizeof path, st->db->path, newest ? newest : vs->log_number);
        return weir_set_error(WEIR_CORRUPTION,
                              "the logs end at sequence %" PRIu64 " but the database was closed "
                              "cleanly at %" PRIu64 " (log %s was truncated or replaced)",
                              end, vs->recovered.close_sequence, path);
    }
    return WEIR_OK;
}

/* Logs after a cut are kept for inspection, under a name recovery never
 * replays and obsolete-file deletion never touches. */
static int set_aside_logs(replay_state *st) {
    char from[PATH_MAX], to[PATH_MAX];
    for (size_t i = st->cut_index; i < st->nlogs; i++) {
        log_file_path(from, sizeof from, st->db->path, st->logs[i]);
        unreplayed_log_path(to, sizeof to, st->db->path, st->logs[i]);
        int rc = st->db->env->ops->rename_file(st->db->env, from, to);
        if (rc != WEIR_OK) return rc;
    }
    return st->cut_index < st->nlogs ? st->db->env->ops->sync_dir(st->db->env, st->db->path) : WEIR_OK;
}

/* ---- recovery ------------------------------------------------------------------- */

/* What this open found, in words (property weir.recovery; weir check
 * prints it). */
static void describe_recovery(weir_db *db, const replay_state *st, uint64_t records,
                              const number_list *newer_tables) {
    char *p = db->recovery_note;
    size_t cap = sizeof db->recovery_note, n = 0;
    const version_set *vs = db->vs;
#define NOTE(...)                                                           \
    do {                                                                    \
        if (n < cap) n += (size_t)snprintf(p + n, cap - n, __VA_ARGS__);     \
    } while (0)
    NOTE("%s; %" PRIu64 " log record(s) replayed from %zu log(s); last sequence %" PRIu64,
         vs->recovered.clean_close ? "closed cleanly" : "not closed cleanly (recovered as after a crash)",
         records, st->nlogs, db->vs->last_sequence);
    if (vs->recovered.torn_bytes)
        NOTE("; torn tail of MANIFEST-%06" PRIu64 " dropped (%" PRIu64 " bytes at offset %" PRIu64 ")",
             vs->recovered.manifest_number, vs->recovered.torn_bytes, vs->recovered.torn_offset);
    if (st->torn)
        NOTE("; torn tail of %06" PRIu64 ".log dropped (%" PRIu64 " bytes at offset %" PRIu64 ")",
             st->torn_log, st->torn_bytes, st->torn_offset);
    if (st->cut)
        NOTE("; history cut at a hole a power cut left: writes %" PRIu64 "..%" PRIu64
             " were never fsync'd and are lost; %zu later log(s) %s",
             st->cut_missing_from, st->cut_missing_to, st->nlogs - st->cut_index,
             db->read_only ? "not replayed" : "set aside as *.log.unreplayed");
    if (newer_tables->n)
        NOTE("; %zu table(s) newer than the manifest kept, not deleted", newer_tables->n);
#undef NOTE
}

/* List the directory: logs to replay (>= the manifest's log number), and
 * tables the recovered manifest does not know (to keep). */
static int list_files(weir_db *db, number_list *logs, number_list *newer_tables) {
    env_dirent_list names = {0};
    int rc = db->env->ops->list_dir(db->env, db->path, &names);
    if (rc != WEIR_OK) return rc;
    for (size_t i = 0; i < names.count && rc == WEIR_OK; i++) {
        uint64_t number;
        enum file_kind k = parse_file_name(names.names[i], &number);
        if (k == FILE_LOG || k == FILE_TABLE || k == FILE_MANIFEST || k == FILE_TEMP ||
            k == FILE_UNREPLAYED_LOG)
            vset_mark_file_number_used(db->vs, number);
        if (k == FILE_LOG && number >= db->vs->log_number) rc = number_list_add(logs, number);
        if (k == FILE_TABLE && number >= db->vs->recovered.next_file) rc = number_list_add(newer_tables, number);
    }
    env_dirent_list_free(&names);
    if (logs->n) qsort(logs->v, logs->n, sizeof *logs->v, cmp_u64);
    return rc;
}

/* Rule 4: the log the manifest names as the start of the unflushed writes
 * must be there (a checkpoint, sealed with no logs, has none). */
static int check_first_log(weir_db *db, const number_list *logs) {
    const version_set *vs = db->vs;
    if (vs->log_number == 0 || number_list_has(logs, vs->log_number)) return WEIR_OK;
    if (vs->recovered.clean_close && vs->recovered.close_log_number == 0) return WEIR_OK;
    /* Checkpoints of the format before log starts named a log that never
     * existed; with no log at all there is nothing else it could mean. */
    if (!vs->log_start_known && logs->n == 0) return WEIR_OK;
    char path[PATH_MAX], note[640];
    log_file_path(path, sizeof path, db->path, vs->log_number);
    return weir_set_error(WEIR_CORRUPTION,
                          "log %s is missing: the manifest names it as the start of the writes not "
                          "yet in tables (from sequence %" PRIu64 "), so they are lost; the database "
                          "is damaged%s",
                          path, vs->log_start_sequence, manifest_note(db, note, sizeof note));
}

/* Read-write: put the replayed writes in tables, set cut logs aside, start
 * a new log and manifest, then delete what is obsolete (mutex held). */
static int finish_read_write(weir_db *db, replay_state *st, version_edit *edit,
                             const number_list *newer_tables) {
    char path[PATH_MAX];
    int rc = WEIR_OK;
    if (memtable_count(db->mem) > 0 || memtable_range_tombstones(db->mem)) {
        memtable *full = db->mem;
        db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
        if (!db->mem) {
            db->mem = full;
            return weir_set_error(WEIR_NO_MEMORY, "out of memory during recovery");
        }
        uint64_t number;
        rc = db_write_level0_table(db, full, edit, &number);
        memtable_unref(full);
        if (rc != WEIR_OK) return rc;
    }
    if (st->cut) {
        rc = set_aside_logs(st);
        if (rc != WEIR_OK) return rc;
    }
    uint64_t number = vset_new_file_number(db->vs);
    rc = log_writer_open(db->env, log_file_path(path, sizeof path, db->path, number), &db->log);
    if (rc != WEIR_OK) return rc;
    /* The new log's directory entry is durable before a manifest names it. */
    rc = db->env->ops->sync_dir(db->env, db->path);
    if (rc != WEIR_OK) return rc;
    db->log_number = number;
    db->log_start_seq = db->vs->last_sequence + 1;
    db->logged_sequence = db->vs->last_sequence;
    version_edit_set_log(edit, number, db->log_start_seq);
    rc = vset_log_and_apply(db->vs, edit, &db->mu);
    if (rc != WEIR_OK) return rc;
    /* Recovery's tables are installed now. */
    db->num_pending = 0;
    if (newer_tables->n) {
        db->kept_tables = malloc(newer_tables->n * sizeof *db->kept_tables);
        if (db->kept_tables) {
            memcpy(db->kept_tables, newer_tables->v, newer_tables->n * sizeof *db->kept_tables);
            db->num_kept_tables = newer_tables->n;
        }
    }
    /* Without the list nothing may be deleted: keep everything. */
    if (!newer_tables->n || db->kept_tables) db_delete_obsolete_files(db);
    db_update_compaction_debt(db);
    return WEIR_OK;
}

int db_recover(weir_db *db) {
    int fresh;
    int rc = prepare_directory(db, &fresh);
    if (rc != WEIR_OK) return rc;
    if (fresh) {
        rc = vset_create_new_db(db->vs);
        if (rc != WEIR_OK) return rc;
    }
    rc = vset_recover(db->vs);
    if (rc != WEIR_OK) return rc;

    number_list logs = {0}, newer_tables = {0};
    rc = list_files(db, &logs, &newer_tables);
    if (rc == WEIR_OK) rc = check_first_log(db, &logs);
    if (rc == WEIR_OK) rc = check_tables(db);

    version_edit edit;
    version_edit_init(&edit);
    replay_state st;
    memset(&st, 0, sizeof st);
    st.db = db;
    st.edit = &edit;
    st.logs = logs.v;
    st.nlogs = logs.n;
    st.expected = db->vs->log_start_known ? db->vs->log_start_sequence : 0;
    st.max_seq = db->vs->last_sequence;
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < logs.n && rc == WEIR_OK; i++) {
        int stop;
        rc = replay_log(&st, i, &stop);
        if (stop) break;
    }
    if (rc == WEIR_OK) rc = check_history_end(&st);
    if (rc == WEIR_OK) describe_recovery(db, &st, db->stats.recovered_records, &newer_tables);
    if (rc == WEIR_OK && st.max_seq > db->vs->last_sequence) db->vs->last_sequence = st.max_seq;
    if (rc == WEIR_OK && !db->read_only) rc = finish_read_write(db, &st, &edit, &newer_tables);
    db->num_pending = 0;
    atomic_store_explicit(&db->visible_sequence, db->vs->last_sequence, memory_order_release);
    db_install_superversion(db);
    if (rc == WEIR_OK && !db->sv) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", db->path);
    pthread_mutex_unlock(&db->mu);
    version_edit_free(&edit);
    free(logs.v);
    free(newer_tables.v);
    return rc;
}
