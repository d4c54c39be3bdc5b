/*
 * db.c -- the DB handle's life: open (options, caches, recovery, background
 * threads), close (which seals the manifest), destroy, the handle's
 * ownership across fork(), and the library's version and build info. The
 * rest of the engine behind weir_db lives in options.c, db_write.c,
 * db_read.c, background.c, recovery.c and properties.c (see db_impl.h).
 *
 * fork(): a child gets a copy of the handle but not the threads behind it,
 * and mutexes another thread held at the fork stay held forever. The
 * child's copy is therefore dead: every call made with it fails with
 * WEIR_INVALID, and closing it releases nothing (no file is touched, no
 * thread joined), so a child's exit never hangs and never disturbs the
 * parent's files. A child opens its own handle instead.
 *
 * Locking: db->mu guards every field of weir_db that is not an atomic, the
 * version set, and version/file reference counts. It is never held during
 * log writes, table builds or compaction I/O. Memtable readers take no
 * lock: a reference is enough (see memtable.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "bloom.h"
#include "cache.h"
#include "compress.h"
#include "crc32c.h"
#include "db_impl.h"
#include "filename.h"
#include "sst.h"

#ifndef WEIR_VERSION_STRING
#define WEIR_VERSION_STRING "0.1.0"
#endif

_Thread_local unsigned db_sample_tick;

/* Incremented in every child of fork() (pthread_atfork), so a handle knows
 * it was opened by an ancestor with one relaxed load per call instead of a
 * getpid() system call. */
static _Atomic unsigned long process_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void after_fork_in_child(void) {
    atomic_fetch_add_explicit(&process_generation, 1, memory_order_relaxed);
}

static void install_atfork(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

int db_forked_away(const weir_db *db) {
    return atomic_load_explicit(&process_generation, memory_order_relaxed) != db->fork_generation;
}

int db_owner_check(const weir_db *db, const char *fn) {
    if (!db_forked_away(db)) return WEIR_OK;
    return weir_set_error(WEIR_INVALID,
                          "%s: this handle of %s was opened by process %ld and was inherited "
                          "through fork(); it cannot be used here: open a new handle in the child",
                          fn, db->path ? db->path : "?", db->owner_pid);
}


const char *weir_version(void) { return WEIR_VERSION_STRING; }

static char build_info[160];
static pthread_once_t build_info_once = PTHREAD_ONCE_INIT;

static void fill_build_info(void) {
    snprintf(build_info, sizeof build_info, "weir %s (crc32c: %s; compression: %s)",
             WEIR_VERSION_STRING, crc32c_hardware() ? "sse4.2" : "software", codec_list());
}

const char *weir_build_info(void) {
    pthread_once(&build_info_once, fill_build_info);
    return build_info;
}

int weir_compression_supported(int codec) {
    return codec >= 0 && codec <= CODEC_MAX && codec_supported(codec);
}


uint64_t db_now_ms(const weir_db *db) {
    if (db->opts.clock) return db->opts.clock(db->opts.clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static void db_free(weir_db *db) {
    if (db->sv) db_superversion_free(db->sv); /* every reader is gone */
    if (db->prev_log) log_writer_close(db->prev_log);
    if (db->log) log_writer_close(db->log);
    if (db->mem) memtable_unref(db->mem);
    if (db->imm) memtable_unref(db->imm);
    if (db->vs) vset_destroy(db->vs);
    if (db->tc) table_cache_destroy(db->tc);
    block_cache_destroy(db->block_cache);
    if (db->lock_fd >= 0) db->env->ops->unlock_file(db->env, db->lock_fd);
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->sv_lock);
    pthread_cond_destroy(&db->bg_cv);
    pthread_cond_destroy(&db->work_cv);
    buf_free(&db->group_rep);
    free(db->pending_outputs);
    free(db->kept_tables);
    free(db->threads);
    free(db->path);
    free(db);
}

int weir_open(const char *path, const weir_options *opts, weir_db **out) {
    if (!out) return weir_set_error(WEIR_INVALID, "weir_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return weir_set_error(WEIR_INVALID, "weir_open: path is NULL or empty");
    if (strlen(path) > PATH_MAX - 64)
        return weir_set_error(WEIR_INVALID, "weir_open: path of %zu bytes is too long", strlen(path));

    pthread_once(&atfork_once, install_atfork);
    weir_db *db = calloc(1, sizeof *db);
    if (!db) return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
    db->lock_fd = -1;
    db->fork_generation = atomic_load_explicit(&process_generation, memory_order_relaxed);
    db->owner_pid = (long)getpid();
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->sv_lock, NULL);
    pthread_cond_init(&db->bg_cv, NULL);
    pthread_cond_init(&db->work_cv, NULL);
    db->snapshots.next = db->snapshots.prev = &db->snapshots;
    if (opts) {
        db->opts = *opts;
    } else {
        weir_options *d = weir_options_create();
        if (!d) {
            db_free(db);
            return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
        }
        db->opts = *d;
        weir_options_destroy(d);
    }
    int rc = db_validate_options(&db->opts);
    if (rc != WEIR_OK) {
        db_free(db);
        return rc;
    }
    db->read_only = db->opts.read_only;
    db->env = db->opts.env ? db->opts.env : env_posix();
    db->path = strdup(path);
    /* Strip trailing slashes so file names and messages read cleanly. */
    if (db->path) {
        size_t n = strlen(db->path);
        while (n > 1 && db->path[n - 1] == '/') db->path[--n] = '\0';
    }
    db->tc = db->path ? table_cache_create(db->env, db->path, db->opts.max_open_files) : NULL;
    db->block_cache = block_cache_create(db->opts.block_cache_size);
    if (db->tc && db->block_cache) table_cache_set_block_cache(db->tc, db->block_cache);
    vset_options vo = {db->opts.max_bytes_for_level_base, db->opts.target_file_size,
                       db->opts.level0_compaction_trigger};
    db->vs = db->tc ? vset_create(db->env, db->path, db->tc, &vo) : NULL;
    db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
    if (!db->path || !db->tc || !db->vs || !db->mem || !db->block_cache) {
        db_free(db);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
    }

    rc = db_recover(db);
    if (rc != WEIR_OK) {
        db_free(db);
        return rc;
    }

    if (db->read_only) { /* no flush, no compaction: no threads */
        *out = db;
        return WEIR_OK;
    }
    db->threads = calloc((size_t)db->opts.background_threads, sizeof *db->threads);
    if (!db->threads) {
        db_free(db);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory starting background threads");
    }
    for (int i = 0; i < db->opts.background_threads; i++) {
        if (pthread_create(&db->threads[i], NULL, db_background_main, db) != 0) {
            weir_close(db);
            return weir_set_error(WEIR_NO_MEMORY, "could not start background thread %d", i);
        }
        db->num_threads++;
    }
    pthread_mutex_lock(&db->mu);
    pthread_cond_broadcast(&db->work_cv);
    pthread_mutex_unlock(&db->mu);
    *out = db;
    return WEIR_OK;
}

/* Record a clean close in the manifest: every acknowledged write is in the
 * tables or in the logs, ending exactly at logged_sequence in the log
 * open now. Recovery then treats any missing, short or torn log as
 * corruption instead of a crash's torn tail. Best effort: if it cannot be
 * written (a full disk), the next open recovers as after a crash. */
static void seal_manifest(weir_db *db) {
    version_edit e;
    version_edit_init(&e);
    version_edit_set_clean_close(&e, db->logged_sequence, db->log_number);
    weir_error saved;
    weir_error_save(&saved, WEIR_OK);
    pthread_mutex_lock(&db->mu);
    vset_log_and_apply(db->vs, &e, &db->mu);
    pthread_mutex_unlock(&db->mu);
    weir_error_raise(&saved);
    version_edit_free(&e);
}

int weir_close(weir_db *db) {
    if (!db) return WEIR_OK;
    /* A copy inherited through fork(): release nothing (see the top). */
    if (db_forked_away(db)) return WEIR_OK;
    if (db_in_progress_callback(db))
        return weir_set_error(WEIR_BUSY,
                              "weir_close: called from the progress callback of a compaction of %s, "
                              "which still uses the handle (the database stays open)",
                              db->path);
    int iters = atomic_load(&db->live_iterators), txns = atomic_load(&db->live_transactions);
    pthread_mutex_lock(&db->mu);
    int snaps = db->num_snapshots;
    pthread_mutex_unlock(&db->mu);
    if (iters || txns || snaps)
        return weir_set_error(WEIR_BUSY,
                              "weir_close: %s still has %d iterator(s), %d snapshot(s) and %d "
                              "transaction(s) open; destroy or release them first (the database "
                              "stays open)",
                              db->path, iters, snaps, txns);
    /* Closing while other threads still use the handle is a caller bug
     * (as freeing any object in use is); background threads are ours. */
    pthread_mutex_lock(&db->mu);
    db->shutting_down = 1;
    pthread_cond_broadcast(&db->work_cv);
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    for (int i = 0; i < db->num_threads; i++) pthread_join(db->threads[i], NULL);

    int rc = WEIR_OK;
    weir_error err;
    if (db->bg_error.code != WEIR_OK) {
        rc = db->bg_error.code;
        err = db->bg_error;
    }
    if (db->prev_log && !db->prev_log_synced) {
        /* An unflushed imm's writes live only in the previous log. */
        int prc = log_writer_sync(db->prev_log);
        if (rc == WEIR_OK && prc != WEIR_OK) {
            rc = prc;
            weir_error_save(&err, rc);
        }
    }
    if (db->log) {
        /* A clean close makes every acknowledged write durable, whatever
         * sync mode it was written with. */
        int lrc = log_writer_sync(db->log);
        int crc = log_writer_close(db->log);
        db->log = NULL;
        if (rc == WEIR_OK && lrc != WEIR_OK) {
            rc = lrc;
            weir_error_save(&err, rc);
        } else if (rc == WEIR_OK && crc != WEIR_OK) {
            rc = crc;
            weir_error_save(&err, rc);
        }
    }
    if (rc == WEIR_OK && !db->read_only) seal_manifest(db);
    db_free(db);
    if (rc != WEIR_OK) weir_error_raise(&err);
    return rc;
}

int weir_destroy(const char *path) {
    if (!path || !*path) return weir_set_error(WEIR_INVALID, "weir_destroy: path is NULL or empty");
    weir_env *env = env_posix();
    if (!env->ops->file_exists(env, path)) return WEIR_OK;
    char p[PATH_MAX];
    int lock_fd;
    int rc = env->ops->lock_file(env, lock_file_path(p, sizeof p, path), &lock_fd);
    if (rc != WEIR_OK) return rc;
    env_dirent_list names = {0};
    rc = env->ops->list_dir(env, path, &names);
    if (rc == WEIR_OK) {
        for (size_t i = 0; i < names.count; i++) {
            enum file_kind k = parse_file_name(names.names[i], NULL);
            if (k == FILE_UNKNOWN || k == FILE_LOCK) continue;
            snprintf(p, sizeof p, "%s/%s", path, names.names[i]);
            int r = env->ops->remove_file(env, p);
            if (r != WEIR_OK && rc == WEIR_OK) rc = r;
        }
        env_dirent_list_free(&names);
    }
    env->ops->unlock_file(env, lock_fd);
    env->ops->remove_file(env, lock_file_path(p, sizeof p, path));
    env->ops->remove_dir(env, path); /* fails harmlessly if other files remain */
    return rc;
}


