/*
 * background.c -- the DB's background work: building tables, flushing the
 * immutable memtable, the background threads that run flushes and
 * compactions, manual flush/compaction requests, and deleting files no
 * version, log or pending output needs any more.
 *
 * Locking: as db.c (db->mu held except during file I/O).
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

void db_update_compaction_debt(weir_db *db) {
    version *v = db->vs->current;
    uint64_t debt = 0;
    if (v->num_files[0] >= db->opts.level0_compaction_trigger) debt += version_level_bytes(v, 0);
    uint64_t limit = db->opts.max_bytes_for_level_base;
    for (int level = 1; level < NUM_LEVELS - 1; level++, limit *= 10) {
        uint64_t bytes = version_level_bytes(v, level);
        /* Bytes over a level's limit must be rewritten into the next one. */
        if (bytes > limit) debt += bytes - limit;
    }
    db->pending_compaction_bytes = debt;
}


void db_background_failed(weir_db *db, int code, int is_flush) {
    if (code != WEIR_NO_SPACE) {
        db_set_bg_error(db, code);
        return;
    }
    /* The failed job changed nothing the current version depends on (a
     * half-built table is removed; a manifest write that failed midway
     * freezes deletions until a new manifest is written), so it can simply
     * run again once space may have been freed. */
    weir_error_save(is_flush ? &db->flush_no_space : &db->compaction_no_space, code);
    if (is_flush) db->flush_failures++;
    else db->compaction_failures++;
    db->space_retry_micros = db->env->ops->now_micros(db->env) + SPACE_RETRY_MICROS;
    stat_add(&db->stats.background_no_space, 1);
    pthread_cond_broadcast(&db->bg_cv);
}

void db_set_bg_error(weir_db *db, int code) {
    if (db->bg_error.code == WEIR_OK) {
        weir_error_save(&db->bg_error, code);
        pthread_cond_broadcast(&db->bg_cv);
    }
}

int db_add_pending_output(weir_db *db, uint64_t number) {
    if (db->num_pending == db->cap_pending) {
        size_t cap = db->cap_pending ? db->cap_pending * 2 : 8;
        uint64_t *p = realloc(db->pending_outputs, cap * sizeof *p);
        if (!p) return weir_set_error(WEIR_NO_MEMORY, "out of memory tracking new table files");
        db->pending_outputs = p;
        db->cap_pending = cap;
    }
    db->pending_outputs[db->num_pending++] = number;
    return WEIR_OK;
}

void db_remove_pending_output(weir_db *db, uint64_t number) {
    for (size_t i = 0; i < db->num_pending; i++) {
        if (db->pending_outputs[i] == number) {
            db->pending_outputs[i] = db->pending_outputs[--db->num_pending];
            return;
        }
    }
}

/* ---- obsolete files ------------------------------------------------------- */

typedef struct number_set {
    uint64_t *v;
    size_t n, cap;
    int oom;
} number_set;

static void number_set_add(void *arg, uint64_t number) {
    number_set *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *p = realloc(s->v, cap * sizeof *p);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = number;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int number_set_has(const number_set *s, uint64_t number) {
    return s->n && bsearch(&number, s->v, s->n, sizeof *s->v, cmp_u64) != NULL;
}

void db_delete_obsolete_files(weir_db *db) {
    /* After a background error, or a manifest write that failed midway, the
     * on-disk state may be ahead of what we know; keep everything so
     * nothing needed is lost. A read-only handle deletes nothing at all. */
    if (db->read_only || db->bg_error.code != WEIR_OK || db->vs->manifest_uncertain) return;
    number_set live = {0};
    for (size_t i = 0; i < db->num_pending; i++) number_set_add(&live, db->pending_outputs[i]);
    for (size_t i = 0; i < db->num_kept_tables; i++) number_set_add(&live, db->kept_tables[i]);
    vset_for_each_live_file(db->vs, number_set_add, &live);
    if (live.oom) {
        free(live.v);
        return;
    }
    if (live.n) qsort(live.v, live.n, sizeof *live.v, cmp_u64);

    env_dirent_list names = {0};
    if (db->env->ops->list_dir(db->env, db->path, &names) != WEIR_OK) {
        free(live.v);
        return;
    }
    char path[PATH_MAX];
    for (size_t i = 0; i < names.count; i++) {
        uint64_t number;
        enum file_kind kind = parse_file_name(names.names[i], &number);
        int keep = 1;
        switch (kind) {
        case FILE_LOG:
            keep = number >= db->vs->log_number || number == db->log_number;
            break;
        case FILE_MANIFEST:
            keep = number >= db->vs->manifest_file_number;
            break;
        case FILE_TABLE:
            keep = number_set_has(&live, number);
            break;
        case FILE_TEMP:
            keep = number_set_has(&live, number);
            break;
        default:
            keep = 1;
            break;
        }
        if (keep) continue;
        if (kind == FILE_TABLE) table_cache_evict(db->tc, number);
        snprintf(path, sizeof path, "%s/%s", db->path, names.names[i]);
        if (db->env->ops->remove_file(db->env, path) == WEIR_OK) stat_add(&db->stats.files_deleted, 1);
    }
    env_dirent_list_free(&names);
    free(live.v);
}

/* ---- building tables -------------------------------------------------------- */

int db_build_table(weir_db *db, iter *it, uint64_t number, file_meta **out) {
    char path[PATH_MAX];
    table_file_path(path, sizeof path, db->path, number);
    *out = NULL;
    sst_build_options so = {db->opts.block_size, SST_RESTART_INTERVAL, db->opts.bloom_bits_per_key, db->opts.compression};
    sst_builder *b;
    int rc = sst_builder_open(db->env, path, &so, &b);
    if (rc != WEIR_OK) return rc;
    buf smallest = BUF_INIT, largest = BUF_INIT;
    uint64_t min_seq = MAX_SEQUENCE;
    iter_seek_first(it);
    for (; iter_valid(it); iter_next(it)) {
        slice k = iter_key(it);
        if (k.len >= IKEY_TAG_SIZE && ikey_seq(k) < min_seq) min_seq = ikey_seq(k);
        if (smallest.len == 0 && buf_set(&smallest, k.data, k.len) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory building table %s", path);
            break;
        }
        rc = sst_builder_add(b, k, iter_value(it));
        if (rc != WEIR_OK) break;
        if (buf_set(&largest, k.data, k.len) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory building table %s", path);
            break;
        }
    }
    if (rc == WEIR_OK) rc = iter_status(it);
    uint64_t entries = sst_builder_num_entries(b);
    uint64_t size = 0;
    if (rc == WEIR_OK && entries > 0) {
        rc = sst_builder_finish(b, &size);
    } else {
        sst_builder_abandon(b);
    }
    if (rc == WEIR_OK && entries > 0) {
        /* The manifest will name this file: its directory entry must be
         * durable before that. */
        rc = db->env->ops->sync_dir(db->env, db->path);
    }
    if (rc == WEIR_OK && entries > 0) {
        /* Open it once: proves the file reads back and warms the cache. */
        table_handle *h;
        rc = table_cache_get(db->tc, number, size, &h);
        if (rc == WEIR_OK) table_cache_release(db->tc, h);
    }
    if (rc == WEIR_OK && entries > 0) {
        *out = file_meta_create(number, size, entries, buf_slice(&smallest), buf_slice(&largest));
        if (!*out) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory recording table %s", path);
        /* A tombstone no newer than every entry deletes none of them. */
        else (*out)->tombs_clean_seq = min_seq;
    }
    if (rc != WEIR_OK || entries == 0) db->env->ops->remove_file(db->env, path);
    buf_free(&smallest);
    buf_free(&largest);
    return rc;
}

/* Write memtable m to a new level-0 table and add it to edit (mutex held;
 * dropped during the build). The table stays a pending output, safe from
 * deletion, until the caller has installed the edit and calls
 * db_remove_pending_output(*number). */
int db_write_level0_table(weir_db *db, memtable *m, version_edit *edit, uint64_t *number_out) {
    uint64_t number = vset_new_file_number(db->vs);
    *number_out = number;
    int rc = db_add_pending_output(db, number);
    if (rc != WEIR_OK) return rc;
    iter *it = memtable_iter_create(m);
    if (!it) {
        db_remove_pending_output(db, number);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory flushing the memtable");
    }
    file_meta *f = NULL;
    pthread_mutex_unlock(&db->mu);
    rc = db_build_table(db, it, number, &f);
    iter_destroy(it);
    pthread_mutex_lock(&db->mu);
    if (rc == WEIR_OK && f) {
        stat_add(&db->stats.flush_bytes_written, f->size);
        rc = version_edit_add_file(edit, 0, f);
        file_meta_unref(f);
    }
    /* The memtable's range tombstones move into the version with it. */
    for (const range_tomb *t = memtable_range_tombstones(m); t && rc == WEIR_OK; t = t->next)
        rc = version_edit_add_range_tombstone(edit, t->seq, t->start, t->end);
    return rc;
}

int db_flush_imm(weir_db *db) {
    if (!db->imm) return WEIR_OK;
    version_edit edit;
    version_edit_init(&edit);
    memtable *imm = db->imm;
    uint64_t number;
    int rc = db_write_level0_table(db, imm, &edit, &number);
    if (rc == WEIR_OK) {
        /* Logs before the active one hold nothing the tables lack now. */
        version_edit_set_log(&edit, db->log_number, db->log_start_seq);
        rc = vset_log_and_apply(db->vs, &edit, &db->mu);
    }
    db_remove_pending_output(db, number);
    version_edit_free(&edit);
    if (rc == WEIR_OK) {
        db->imm = NULL;
        memtable_unref(imm);
        if (db->prev_log) { /* its records are in a table now */
            log_writer_close(db->prev_log);
            db->prev_log = NULL;
        }
        db_install_superversion(db);
        stat_add(&db->stats.flushes, 1);
        db_update_compaction_debt(db);
        db->flush_no_space.code = WEIR_OK;
        db_delete_obsolete_files(db);
    } else {
        db_background_failed(db, rc, 1);
    }
    pthread_cond_broadcast(&db->bg_cv);
    return rc;
}

/* ---- background threads --------------------------------------------------- */

static int manual_pending(weir_db *db) { return db->manual && !db->manual->done; }

static void run_manual_compaction(weir_db *db) {
    manual_compaction *m = db->manual;
    compaction *c = m->bottom ? vset_compact_range_bottom(db->vs, m->level, m->begin, m->end)
                              : vset_compact_range(db->vs, m->level, m->begin, m->end);
    /* The step's totals, for a caller reporting progress (it is waiting
     * on bg_cv). A step that found nothing to compact has none. */
    for (int which = 0; c && which < 2; which++) {
        for (int i = 0; i < c->num_inputs[which]; i++) {
            m->input_bytes += c->inputs[which][i]->size;
            m->input_entries += c->inputs[which][i]->num_entries;
        }
    }
    m->picked = 1;
    pthread_cond_broadcast(&db->bg_cv);
    int rc = WEIR_OK;
    if (c) rc = db_run_compaction(db, c, &m->entries_done);
    if (rc != WEIR_OK) weir_error_save(&m->err, rc);
    /* A manifest write that failed for any reason but space stops the DB,
     * as for automatic compactions; the caller gets the error either way. */
    if (rc != WEIR_OK && rc != WEIR_NO_SPACE && db->vs->manifest_uncertain) db_set_bg_error(db, rc);
    m->status = rc;
    m->done = 1;
}

/* 1 if work that last failed for want of space may be tried again. */
static int space_retry_due(weir_db *db, const weir_error *space_error) {
    return space_error->code == WEIR_OK || db->env->ops->now_micros(db->env) >= db->space_retry_micros;
}

/* Sleep until more work may arrive, or until a job that ran out of space
 * is due to be tried again. */
static void wait_for_work(weir_db *db) {
    if (db->flush_no_space.code == WEIR_OK && db->compaction_no_space.code == WEIR_OK) {
        pthread_cond_wait(&db->work_cv, &db->mu);
        return;
    }
    uint64_t at = db->space_retry_micros;
    struct timespec ts = {(time_t)(at / 1000000u), (long)(at % 1000000u) * 1000};
    pthread_cond_timedwait(&db->work_cv, &db->mu, &ts); /* the env's clock is CLOCK_REALTIME */
}

void *db_background_main(void *arg) {
    weir_db *db = arg;
    pthread_mutex_lock(&db->mu);
    while (!db->shutting_down) {
        if (db->bg_error.code != WEIR_OK) {
            /* Nothing more is written after a failure; finish manual
             * requests so their callers are not left waiting. */
            if (manual_pending(db)) {
                db->manual->status = weir_error_raise(&db->bg_error);
                weir_error_save(&db->manual->err, db->manual->status);
                db->manual->done = 1;
                pthread_cond_broadcast(&db->bg_cv);
                continue;
            }
            pthread_cond_wait(&db->work_cv, &db->mu);
            continue;
        }
        if (db->imm && !db->flush_running && space_retry_due(db, &db->flush_no_space)) {
            db->flush_running = 1;
            db_flush_imm(db);
            db->flush_running = 0;
            pthread_cond_broadcast(&db->bg_cv);
            pthread_cond_broadcast(&db->work_cv);
            continue;
        }
        /* A manual request always runs (it reports its own failure). */
        if (!db->compaction_running &&
            (manual_pending(db) ||
             (vset_needs_compaction(db->vs) && space_retry_due(db, &db->compaction_no_space)))) {
            db->compaction_running = 1;
            if (manual_pending(db)) {
                run_manual_compaction(db);
            } else {
                compaction *c = vset_pick_compaction(db->vs);
                if (c) {
                    int rc = db_run_compaction(db, c, NULL);
                    if (rc != WEIR_OK) db_background_failed(db, rc, 0);
                    else db->compaction_no_space.code = WEIR_OK;
                } else {
                    /* Needed but nothing pickable (inputs busy): wait. */
                    db->compaction_running = 0;
                    wait_for_work(db);
                    continue;
                }
            }
            db->compaction_running = 0;
            pthread_cond_broadcast(&db->bg_cv);
            pthread_cond_broadcast(&db->work_cv);
            continue;
        }
        wait_for_work(db);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}


/* ---- flush and compaction requests ------------------------------------------- */

int weir_flush(weir_db *db) {
    CHECK_DB(db, "weir_flush");
    pthread_mutex_lock(&db->mu);
    uint64_t failures_before = db->flush_failures;
    pthread_mutex_unlock(&db->mu);
    int rc = db_write_internal(db, NULL, NULL); /* switches the memtable */
    if (rc != WEIR_OK) return rc;
    pthread_mutex_lock(&db->mu);
    /* Until the flush is done, or fails (a full disk fails it without
     * stopping the DB: the failure is reported here, and retried later). */
    while (db->imm && db->bg_error.code == WEIR_OK && db->flush_failures == failures_before) {
        pthread_cond_broadcast(&db->work_cv);
        pthread_cond_wait(&db->bg_cv, &db->mu);
    }
    if (db->bg_error.code != WEIR_OK) rc = weir_error_raise(&db->bg_error);
    else if (db->imm && db->flush_failures != failures_before)
        rc = weir_error_raise(&db->flush_no_space);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* A weir_compact_range_progress call's callback and its place in the
 * call (the fields of weir_compact_progress that do not come from the
 * background thread). */
typedef struct progress_sink {
    weir_compact_progress_fn fn;
    void *arg;
    int step, steps;
} progress_sink;

/* How often a caller with a progress callback is woken while a step runs. */
#define PROGRESS_INTERVAL_MICROS 100000

/* The DB whose progress callback this thread is running, so that a
 * compaction request from inside the callback is refused rather than left
 * waiting for the compaction that called it. Per thread, like the error
 * message; it is the only state of its kind here. */
static _Thread_local const weir_db *progress_callback_db;

int db_in_progress_callback(const weir_db *db) { return progress_callback_db == db; }

/* Call the sink with the step's state (mutex held; released for the call). */
static void report_progress(weir_db *db, const manual_compaction *m, const progress_sink *sink,
                            int finished) {
    weir_compact_progress p;
    memset(&p, 0, sizeof p);
    p.step = sink->step;
    p.steps = sink->steps;
    p.level = m->level;
    p.input_bytes = m->input_bytes;
    p.entries_total = m->input_entries;
    /* Counted entries can pass a table's recorded count only if that
     * count is wrong; the report never says more than 100%. */
    uint64_t done = atomic_load_explicit(&m->entries_done, memory_order_relaxed);
    p.entries_done = finished || done > p.entries_total ? p.entries_total : done;
    pthread_mutex_unlock(&db->mu);
    progress_callback_db = db;
    sink->fn(sink->arg, &p);
    progress_callback_db = NULL;
    pthread_mutex_lock(&db->mu);
}

static uint64_t clock_micros(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Wait on bg_cv (mutex held) until the step is done, reporting as soon as
 * its inputs are chosen and then every PROGRESS_INTERVAL_MICROS. Reports
 * are paced by the monotonic clock; the timed wait itself takes a
 * real-time deadline (bg_cv uses the default clock). */
static void wait_reporting(weir_db *db, manual_compaction *m, const progress_sink *sink) {
    uint64_t next_report = 0; /* 0: as soon as the inputs are chosen */
    while (!m->done) {
        uint64_t now = clock_micros(CLOCK_MONOTONIC);
        if (m->picked && now >= next_report) {
            report_progress(db, m, sink, 0);
            next_report = clock_micros(CLOCK_MONOTONIC) + PROGRESS_INTERVAL_MICROS;
            continue; /* the step may have finished during the call */
        }
        /* Choosing the inputs and finishing both broadcast bg_cv; the
         * timeout only paces the reports. */
        uint64_t wait = m->picked ? next_report - now : PROGRESS_INTERVAL_MICROS;
        uint64_t wake = clock_micros(CLOCK_REALTIME) + wait;
        struct timespec at = {(time_t)(wake / 1000000u), (long)(wake % 1000000u) * 1000};
        pthread_cond_timedwait(&db->bg_cv, &db->mu, &at);
    }
}

/* Run a manual compaction of one level through the background threads. */
static int compact_level(weir_db *db, int level, int bottom, const slice *begin, const slice *end,
                         const progress_sink *sink) {
    manual_compaction m;
    memset(&m, 0, sizeof m);
    m.level = level;
    m.bottom = bottom;
    m.begin = begin;
    m.end = end;
    atomic_init(&m.entries_done, 0);
    pthread_mutex_lock(&db->mu);
    while (db->manual && db->bg_error.code == WEIR_OK) pthread_cond_wait(&db->bg_cv, &db->mu);
    if (db->bg_error.code != WEIR_OK) {
        int rc = weir_error_raise(&db->bg_error);
        pthread_mutex_unlock(&db->mu);
        return rc;
    }
    db->manual = &m;
    pthread_cond_broadcast(&db->work_cv);
    if (sink) wait_reporting(db, &m, sink);
    else
        while (!m.done) pthread_cond_wait(&db->bg_cv, &db->mu);
    /* Let the next request in before the last report: the callback may
     * take its time. */
    db->manual = NULL;
    pthread_cond_broadcast(&db->bg_cv);
    if (sink && m.status == WEIR_OK) report_progress(db, &m, sink, 1);
    pthread_mutex_unlock(&db->mu);
    if (m.status != WEIR_OK) weir_error_raise(&m.err);
    return m.status;
}

static int compact_range(weir_db *db, const char *fn_name, const void *start, size_t slen,
                         const void *end, size_t elen, weir_compact_progress_fn fn, void *arg);

int weir_compact_range(weir_db *db, const void *start, size_t slen, const void *end, size_t elen) {
    return compact_range(db, "weir_compact_range", start, slen, end, elen, NULL, NULL);
}

int weir_compact_range_progress(weir_db *db, const void *start, size_t slen, const void *end,
                                size_t elen, weir_compact_progress_fn fn, void *arg) {
    return compact_range(db, "weir_compact_range_progress", start, slen, end, elen, fn, arg);
}

static int compact_range(weir_db *db, const char *fn_name, const void *start, size_t slen,
                         const void *end, size_t elen, weir_compact_progress_fn fn, void *arg) {
    CHECK_DB(db, fn_name);
    int rc = db_check_key_arg(fn_name, start, slen);
    if (rc == WEIR_OK) rc = db_check_key_arg(fn_name, end, elen);
    if (rc != WEIR_OK) return rc;
    if (start && end && slice_compare(slice_make(start, slen), slice_make(end, elen)) > 0)
        return weir_set_error(WEIR_INVALID,
                              "%s: start is after end (an empty range is start == end; "
                              "NULL means unbounded)", fn_name);
    if (db->read_only)
        return weir_set_error(WEIR_READ_ONLY, "%s: %s was opened read-only", fn_name, db->path);
    if (db_in_progress_callback(db))
        return weir_set_error(WEIR_BUSY,
                              "%s: called from the progress callback of a compaction of %s, which "
                              "waits for the callback to return", fn_name, db->path);
    rc = weir_flush(db);
    if (rc != WEIR_OK) return rc;

    buf bk = BUF_INIT, ek = BUF_INIT;
    slice bs, es;
    const slice *bp = NULL, *ep = NULL;
    if (start) {
        if (ikey_append(&bk, slice_make(start, slen), MAX_SEQUENCE, TYPE_FOR_SEEK) != 0) rc = WEIR_NO_MEMORY;
        bs = buf_slice(&bk);
        bp = &bs;
    }
    if (end) {
        if (ikey_append(&ek, slice_make(end, elen), 0, TYPE_DELETION) != 0) rc = WEIR_NO_MEMORY;
        es = buf_slice(&ek);
        ep = &es;
    }
    if (rc != WEIR_OK) {
        buf_free(&bk);
        buf_free(&ek);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory in weir_compact_range");
    }
    slice ub = bp ? ikey_user(*bp) : slice_make(NULL, 0);
    slice ue = ep ? ikey_user(*ep) : slice_make(NULL, 0);
    int max_level = 1;
    pthread_mutex_lock(&db->mu);
    for (int level = 1; level < NUM_LEVELS; level++)
        if (version_overlap_in_level(db->vs->current, level, bp ? &ub : NULL, ep ? &ue : NULL))
            max_level = level;
    pthread_mutex_unlock(&db->mu);
    /* The last step also rewrites the deepest level's files in the range
     * (see vset_compact_range_bottom), so expired values and data under
     * range tombstones are dropped wherever they sit. */
    progress_sink sink = {fn, arg, 0, max_level};
    for (int level = 0; level < max_level && rc == WEIR_OK; level++) {
        sink.step = level + 1;
        rc = compact_level(db, level, level == max_level - 1, bp, ep, fn ? &sink : NULL);
    }
    buf_free(&bk);
    buf_free(&ek);
    return rc;
}


