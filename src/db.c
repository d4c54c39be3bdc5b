/*
 * db.c -- the DB handle's life: open (options, caches, recovery, background
 * threads), close, destroy, and the library's version and build info. The
 * rest of the engine behind weir_db lives in options.c, db_write.c,
 * db_read.c, background.c, recovery.c and properties.c (see db_impl.h).
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

    weir_db *db = calloc(1, sizeof *db);
    if (!db) return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
    db->lock_fd = -1;
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

int weir_close(weir_db *db) {
    if (!db) return WEIR_OK;
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


