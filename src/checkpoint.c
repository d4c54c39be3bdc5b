/*
 * checkpoint.c -- weir_checkpoint: a consistent on-disk copy of the DB.
 *
 * Tables are immutable, so a copy is "every table of one version plus a
 * manifest describing that version". The memtable is flushed first so the
 * version holds every acknowledged write; the version stays referenced
 * while its tables are linked, so compaction cannot delete them meanwhile.
 * Hard links cost nothing; across file systems the tables are copied.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_impl.h"
#include "filename.h"

/* Copy a file through the env (the fallback when linking fails). */
static int copy_file(weir_env *env, const char *from, const char *to) {
    env_readable *in;
    int rc = env->ops->open_readable(env, from, &in);
    if (rc != WEIR_OK) return rc;
    env_writable *out;
    rc = env->ops->new_writable(env, to, &out);
    if (rc != WEIR_OK) {
        env->ops->close_readable(in);
        return rc;
    }
    char *chunk = malloc(1 << 20);
    if (!chunk) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory copying %s", from);
    uint64_t off = 0;
    while (rc == WEIR_OK) {
        size_t got = 0;
        rc = env->ops->pread(in, off, chunk, 1 << 20, &got);
        if (rc != WEIR_OK || got == 0) break;
        rc = env_append(out, chunk, got);
        off += got;
    }
    free(chunk);
    if (rc == WEIR_OK) rc = env_sync(out);
    int crc = env_close_writable(out);
    if (rc == WEIR_OK) rc = crc;
    env->ops->close_readable(in);
    if (rc != WEIR_OK) env->ops->remove_file(env, to);
    return rc;
}

/* The target must be absent or an empty directory; create it. */
static int prepare_dir(weir_env *env, const char *dir) {
    if (env->ops->file_exists(env, dir)) {
        env_dirent_list names = {0};
        int rc = env->ops->list_dir(env, dir, &names);
        if (rc != WEIR_OK)
            return weir_wrap_error(rc, "checkpoint directory %s exists and is not a readable directory",
                                   dir);
        size_t n = names.count;
        env_dirent_list_free(&names);
        if (n > 0)
            return weir_set_error(WEIR_EXISTS,
                                  "checkpoint directory %s is not empty (choose a new path)", dir);
    }
    return env->ops->create_dir(env, dir);
}

int weir_checkpoint(weir_db *db, const char *dir) {
    if (!db) return weir_set_error(WEIR_INVALID, "weir_checkpoint: db is NULL");
    int owner = db_owner_check(db, "weir_checkpoint");
    if (owner != WEIR_OK) return owner;
    if (db->read_only)
        return weir_set_error(WEIR_READ_ONLY, "weir_checkpoint: %s was opened read-only (a checkpoint "
                              "flushes the memtable first)", db->path);
    if (!dir || !*dir) return weir_set_error(WEIR_INVALID, "weir_checkpoint: dir is NULL or empty");
    if (strlen(dir) > PATH_MAX - 64)
        return weir_set_error(WEIR_INVALID, "weir_checkpoint: path of %zu bytes is too long", strlen(dir));
    weir_env *env = db->env;
    int rc = prepare_dir(env, dir);
    if (rc != WEIR_OK) return rc;
    /* Every write acknowledged so far goes into a table. */
    rc = weir_flush(db);
    if (rc != WEIR_OK) return rc;

    pthread_mutex_lock(&db->mu);
    version *v = db->vs->current;
    version_ref(v);
    uint64_t next_file = db->vs->next_file_number;
    uint64_t last_sequence = db->vs->last_sequence;
    pthread_mutex_unlock(&db->mu);

    version_edit snap;
    version_edit_init(&snap);
    /* No logs come along: everything is in the tables, and the copy is
     * sealed as closed cleanly with no log (recovery then expects none). */
    version_edit_set_log(&snap, next_file, last_sequence + 1);
    version_edit_set_clean_close(&snap, last_sequence, 0);
    version_edit_set_next_file_number(&snap, next_file + 1);
    version_edit_set_last_sequence(&snap, last_sequence);
    char from[PATH_MAX], to[PATH_MAX];
    /* File references are counted under the DB mutex (background threads
     * take and drop them too), so the edit takes its references there. */
    pthread_mutex_lock(&db->mu);
    for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++)
        for (int i = 0; i < v->num_files[level] && rc == WEIR_OK; i++)
            rc = version_edit_add_file(&snap, level, v->files[level][i]);
    pthread_mutex_unlock(&db->mu);
    for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++) {
        for (int i = 0; i < v->num_files[level] && rc == WEIR_OK; i++) {
            file_meta *f = v->files[level][i];
            table_file_path(from, sizeof from, db->path, f->number);
            table_file_path(to, sizeof to, dir, f->number);
            if (env->ops->link_file(env, from, to) != WEIR_OK) rc = copy_file(env, from, to);
        }
    }
    for (int i = 0; v->tombs && i < v->tombs->n && rc == WEIR_OK; i++)
        rc = version_edit_add_range_tombstone(&snap, v->tombs->v[i].seq, buf_slice(&v->tombs->v[i].start),
                                              buf_slice(&v->tombs->v[i].end));
    buf record = BUF_INIT;
    if (rc == WEIR_OK) rc = version_edit_encode(&snap, &record);
    if (rc == WEIR_OK) {
        log_writer *w = NULL;
        rc = log_writer_open(env, manifest_file_path(to, sizeof to, dir, next_file), &w);
        if (rc == WEIR_OK) rc = log_writer_add(w, buf_slice(&record));
        if (rc == WEIR_OK) rc = log_writer_sync(w);
        if (rc == WEIR_OK) {
            rc = log_writer_close(w);
        } else if (w) {
            /* Closing a file whose sync failed fails too ("broken"); the
             * caller needs the first failure's message, not that one. */
            weir_error first;
            weir_error_save(&first, rc);
            log_writer_close(w);
            weir_error_raise(&first);
        }
    }
    if (rc == WEIR_OK) {
        char contents[64], tmp[PATH_MAX];
        int len = snprintf(contents, sizeof contents, "MANIFEST-%06" PRIu64 "\n", next_file);
        temp_file_path(tmp, sizeof tmp, dir, next_file);
        rc = env_write_file_synced(env, tmp, contents, (size_t)len);
        if (rc == WEIR_OK) rc = env->ops->rename_file(env, tmp, current_file_path(to, sizeof to, dir));
        if (rc == WEIR_OK) rc = env->ops->sync_dir(env, dir);
        /* The checkpoint directory's own entry must survive a power cut too. */
        if (rc == WEIR_OK) {
            char parent[PATH_MAX];
            snprintf(parent, sizeof parent, "%s", dir);
            char *slash = strrchr(parent, '/');
            while (slash && slash > parent && slash[1] == '\0') { /* trailing slashes */
                *slash = '\0';
                slash = strrchr(parent, '/');
            }
            if (!slash) snprintf(parent, sizeof parent, ".");
            else if (slash == parent) parent[1] = '\0';
            else *slash = '\0';
            rc = env->ops->sync_dir(env, parent);
        }
    }
    buf_free(&record);
    weir_error saved;
    if (rc != WEIR_OK) weir_error_save(&saved, rc);
    pthread_mutex_lock(&db->mu);
    version_edit_free(&snap);
    version_unref(v);
    pthread_mutex_unlock(&db->mu);
    if (rc != WEIR_OK) return weir_wrap_error(weir_error_raise(&saved), "checkpoint to %s", dir);
    return WEIR_OK;
}
