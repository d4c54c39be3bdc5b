/*
 * version_set.c -- the version set: building versions from edits, the
 * MANIFEST and CURRENT files, recovery of the manifest, and applying an
 * edit (written and synced before it takes effect).
 *
 * Everything here runs under the DB mutex (passed in where I/O drops it).
 */
#include "version.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filename.h"
#include "merger.h"
#include "status.h"
#include "version_impl.h"

/* ---- building versions from edits ----------------------------------------- */

/* What edits did to one level, keyed by file number: the last word on each
 * number (NULL file: deleted; else added or replaced). A hash table keeps
 * replaying a long manifest linear in its size. */
typedef struct change_slot {
    uint64_t number;
    file_meta *file;
    int used;
} change_slot;

typedef struct level_changes {
    change_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} level_changes;

typedef struct version_builder {
    version_set *vs;
    version *base;
    level_changes levels[NUM_LEVELS];
    tomb_set *tombs;     /* the base's set, or a private copy once changed */
    int tombs_changed;
} version_builder;

static size_t change_hash(uint64_t number, size_t cap) {
    return (size_t)((number * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

static change_slot *changes_find(const level_changes *lc, uint64_t number) {
    if (lc->count == 0) return NULL;
    for (size_t i = change_hash(number, lc->cap);; i = (i + 1) & (lc->cap - 1)) {
        change_slot *s = &lc->slots[i];
        if (!s->used) return NULL;
        if (s->number == number) return s;
    }
}

static int changes_grow(level_changes *lc) {
    size_t ncap = lc->cap ? lc->cap * 2 : 16;
    change_slot *slots = calloc(ncap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < lc->cap; i++) {
        if (!lc->slots[i].used) continue;
        size_t j = change_hash(lc->slots[i].number, ncap);
        while (slots[j].used) j = (j + 1) & (ncap - 1);
        slots[j] = lc->slots[i];
    }
    free(lc->slots);
    lc->slots = slots;
    lc->cap = ncap;
    return 0;
}

/* Record `file` (a reference the table takes over; NULL = deleted). */
static int changes_set(level_changes *lc, uint64_t number, file_meta *file) {
    change_slot *s = changes_find(lc, number);
    if (s) {
        file_meta_unref(s->file);
        s->file = file;
        return 0;
    }
    if ((lc->count + 1) * 2 > lc->cap && changes_grow(lc) != 0) return -1;
    size_t i = change_hash(number, lc->cap);
    while (lc->slots[i].used) i = (i + 1) & (lc->cap - 1);
    lc->slots[i].used = 1;
    lc->slots[i].number = number;
    lc->slots[i].file = file;
    lc->count++;
    return 0;
}

static void builder_init(version_builder *b, version_set *vs, version *base) {
    memset(b, 0, sizeof *b);
    b->vs = vs;
    b->base = base;
    b->tombs = base->tombs;
    if (b->tombs) b->tombs->refs++;
}

/* Make b->tombs a private copy that can be changed. */
static int builder_own_tombs(version_builder *b) {
    if (b->tombs_changed) return 0;
    tomb_set *t = calloc(1, sizeof *t);
    if (!t) return -1;
    t->refs = 1;
    int n = b->tombs ? b->tombs->n : 0;
    if (n) {
        t->v = calloc((size_t)n, sizeof *t->v);
        if (!t->v) {
            free(t);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            const vtomb *src = &b->tombs->v[i];
            if (vtomb_copy(&t->v[i], src->seq, buf_slice(&src->start), buf_slice(&src->end)) != 0) {
                t->n = i;
                tomb_set_unref(t);
                return -1;
            }
        }
        t->n = n;
    }
    tomb_set_unref(b->tombs);
    b->tombs = t;
    b->tombs_changed = 1;
    return 0;
}

static void builder_free(version_builder *b) {
    tomb_set_unref(b->tombs);
    b->tombs = NULL;
    for (int level = 0; level < NUM_LEVELS; level++) {
        level_changes *lc = &b->levels[level];
        for (size_t i = 0; i < lc->cap; i++)
            if (lc->slots[i].used) file_meta_unref(lc->slots[i].file);
        free(lc->slots);
    }
}

/* Deletions first, then additions, so an edit that deletes and re-adds a
 * number at the same level keeps the added file. */
static int builder_apply(version_builder *b, const version_edit *e) {
    for (size_t i = 0; i < e->num_deleted; i++) {
        const edit_deleted *d = &e->deleted[i];
        if (d->level < 0 || d->level >= NUM_LEVELS)
            return weir_set_error(WEIR_INVALID, "version edit deletes a file at level %d", d->level);
        if (changes_set(&b->levels[d->level], d->number, NULL) != 0)
            return vset_oom("applying a version edit");
    }
    for (size_t i = 0; i < e->num_added; i++) {
        const edit_added *a = &e->added[i];
        if (a->level < 0 || a->level >= NUM_LEVELS)
            return weir_set_error(WEIR_INVALID, "version edit adds a file at level %d", a->level);
        file_meta_ref(a->file);
        if (changes_set(&b->levels[a->level], a->file->number, a->file) != 0) {
            file_meta_unref(a->file);
            return vset_oom("applying a version edit");
        }
    }
    if (e->num_tombs_added == 0 && e->num_tombs_removed == 0) return WEIR_OK;
    if (builder_own_tombs(b) != 0) return vset_oom("applying a version edit");
    tomb_set *t = b->tombs;
    for (size_t i = 0; i < e->num_tombs_removed; i++) {
        for (int j = 0; j < t->n; j++) {
            if (t->v[j].seq != e->tombs_removed[i]) continue;
            buf_free(&t->v[j].start);
            buf_free(&t->v[j].end);
            memmove(&t->v[j], &t->v[j + 1], (size_t)(t->n - j - 1) * sizeof *t->v);
            t->n--;
            break;
        }
    }
    if (e->num_tombs_added) {
        vtomb *grown = realloc(t->v, ((size_t)t->n + e->num_tombs_added) * sizeof *grown);
        if (!grown) return vset_oom("applying a version edit");
        t->v = grown;
        for (size_t i = 0; i < e->num_tombs_added; i++) {
            const vtomb *a = &e->tombs_added[i];
            /* Keep the set sorted by sequence (replay may repeat one). */
            int j = t->n;
            int dup = 0;
            for (int k = 0; k < t->n; k++) dup |= t->v[k].seq == a->seq;
            if (dup) continue;
            while (j > 0 && t->v[j - 1].seq > a->seq) j--;
            memmove(&t->v[j + 1], &t->v[j], (size_t)(t->n - j) * sizeof *t->v);
            if (vtomb_copy(&t->v[j], a->seq, buf_slice(&a->start), buf_slice(&a->end)) != 0) {
                memmove(&t->v[j], &t->v[j + 1], (size_t)(t->n - j) * sizeof *t->v);
                return vset_oom("applying a version edit");
            }
            t->n++;
        }
    }
    return WEIR_OK;
}

static int level0_order(const void *pa, const void *pb) {
    const file_meta *a = *(file_meta *const *)pa, *b = *(file_meta *const *)pb;
    return (a->number > b->number) - (a->number < b->number);
}

static int sorted_level_order(const void *pa, const void *pb) {
    const file_meta *a = *(file_meta *const *)pa, *b = *(file_meta *const *)pb;
    int r = ikey_compare(file_smallest(a), file_smallest(b));
    if (r == 0) r = (a->number > b->number) - (a->number < b->number);
    return r;
}

static void describe_range(char *out, size_t cap, const file_meta *f) {
    buf b = BUF_INIT;
    int bad = buf_append(&b, "'", 1) | text_key(&b, file_smallest_user(f)) |
              buf_append(&b, "' .. '", 6) | text_key(&b, file_largest_user(f)) |
              buf_append(&b, "'", 1);
    snprintf(out, cap, "%.*s", bad ? 0 : (int)b.len, bad ? "" : b.data);
    buf_free(&b);
}

/* Levels >= 1 must be strictly increasing and disjoint in internal-key
 * order, or binary search over them returns wrong answers. */
static int check_level(file_meta *const *files, int n, int level) {
    for (int i = 0; i < n; i++) {
        if (ikey_compare(file_smallest(files[i]), file_largest(files[i])) > 0)
            return weir_set_error(WEIR_CORRUPTION,
                                  "level %d: table %06" PRIu64 ".sst has smallest key > largest key",
                                  level, files[i]->number);
        if (level == 0 || i == 0) continue;
        if (ikey_compare(file_largest(files[i - 1]), file_smallest(files[i])) >= 0) {
            char ra[256], rb[256];
            describe_range(ra, sizeof ra, files[i - 1]);
            describe_range(rb, sizeof rb, files[i]);
            return weir_set_error(WEIR_CORRUPTION,
                                  "level %d: tables %06" PRIu64 ".sst [%s] and %06" PRIu64
                                  ".sst [%s] overlap",
                                  level, files[i - 1]->number, ra, files[i]->number, rb);
        }
    }
    return WEIR_OK;
}

/* The files of one level after the recorded changes, sorted, each with a
 * reference taken. */
static int builder_save_level(version_builder *b, int level, version *out) {
    const level_changes *lc = &b->levels[level];
    file_meta *const *base = b->base->files[level];
    int nbase = b->base->num_files[level];
    size_t nadded = 0;
    for (size_t i = 0; i < lc->cap; i++)
        if (lc->slots[i].used && lc->slots[i].file) nadded++;
    size_t max = (size_t)nbase + nadded;
    if (max == 0) return WEIR_OK;
    if (max > INT_MAX) return weir_set_error(WEIR_CORRUPTION, "level %d: too many files", level);
    file_meta **files = malloc(max * sizeof *files);
    file_meta **added = nadded ? malloc(nadded * sizeof *added) : NULL;
    if (!files || (nadded && !added)) {
        free(files);
        free(added);
        return vset_oom("building a version");
    }
    size_t k = 0;
    for (size_t i = 0; i < lc->cap; i++)
        if (lc->slots[i].used && lc->slots[i].file) added[k++] = lc->slots[i].file;
    int (*order)(const void *, const void *) = level == 0 ? level0_order : sorted_level_order;
    if (nadded > 1) qsort(added, nadded, sizeof *added, order);

    /* Merge the surviving base files (already sorted) with the additions. */
    size_t n = 0, ai = 0;
    for (int bi = 0; bi <= nbase; bi++) {
        file_meta *f = NULL;
        if (bi < nbase) {
            f = base[bi];
            if (changes_find(lc, f->number)) continue; /* deleted or replaced */
        }
        while (ai < nadded && (!f || order(&added[ai], &f) < 0)) files[n++] = added[ai++];
        if (f) files[n++] = f;
    }
    free(added);
    int rc = check_level(files, (int)n, level);
    if (rc != WEIR_OK) {
        free(files);
        return rc;
    }
    for (size_t i = 0; i < n; i++) file_meta_ref(files[i]);
    out->files[level] = files;
    out->num_files[level] = (int)n;
    return WEIR_OK;
}

static int builder_finish(version_builder *b, version **out) {
    version *v = version_new(b->vs);
    if (!v) return vset_oom("building a version");
    for (int level = 0; level < NUM_LEVELS; level++) {
        int rc = builder_save_level(b, level, v);
        if (rc != WEIR_OK) {
            version_free(v);
            return rc;
        }
    }
    version_compute_score(v);
    if (b->tombs && b->tombs->n > 0) {
        v->tombs = b->tombs;
        v->tombs->refs++;
    }
    *out = v;
    return WEIR_OK;
}

/* ---- the version set -------------------------------------------------------- */

/* Make v the current version (the set holds one reference on it). */
static void vset_install(version_set *vs, version *v) {
    v->prev = vs->list_head.prev;
    v->next = &vs->list_head;
    v->prev->next = v;
    v->next->prev = v;
    version_ref(v);
    version *old = vs->current;
    vs->current = v;
    if (old) version_unref(old);
}

version_set *vset_create(weir_env *env, const char *dbpath, table_cache *tc,
                         const vset_options *opts) {
    version_set *vs = calloc(1, sizeof *vs);
    if (!vs) return NULL;
    vs->env = env;
    vs->tc = tc;
    vs->opts = *opts;
    vs->next_file_number = 2;
    vs->dbpath = strdup(dbpath);
    if (!vs->dbpath || pthread_cond_init(&vs->manifest_cv, NULL) != 0) {
        free(vs->dbpath);
        free(vs);
        return NULL;
    }
    vs->list_head.prev = vs->list_head.next = &vs->list_head;
    version *v = version_new(vs);
    if (!v) {
        pthread_cond_destroy(&vs->manifest_cv);
        free(vs->dbpath);
        free(vs);
        return NULL;
    }
    version_compute_score(v);
    vset_install(vs, v);
    return vs;
}

void vset_destroy(version_set *vs) {
    if (!vs) return;
    if (vs->current) version_unref(vs->current);
    vs->current = NULL;
    /* Anything still linked was leaked by a caller; detach it so it does
     * not point into freed memory. */
    while (vs->list_head.next != &vs->list_head) {
        version *v = vs->list_head.next;
        vs->list_head.next = v->next;
        v->prev = v->next = NULL;
    }
    log_writer_close(vs->manifest);
    for (int level = 0; level < NUM_LEVELS; level++) buf_free(&vs->compact_pointer[level]);
    pthread_cond_destroy(&vs->manifest_cv);
    free(vs->dbpath);
    free(vs);
}

uint64_t vset_new_file_number(version_set *vs) { return vs->next_file_number++; }

void vset_mark_file_number_used(version_set *vs, uint64_t n) {
    if (vs->next_file_number <= n) vs->next_file_number = n + 1;
}

/* Remove a file during cleanup without losing the message of the failure
 * that made the cleanup necessary. */
static void remove_quietly(weir_env *env, const char *path) {
    weir_error saved;
    weir_error_save(&saved, WEIR_OK);
    env->ops->remove_file(env, path);
    weir_error_raise(&saved);
}

/* Point CURRENT at MANIFEST-<number>: temp file, fsync, rename, fsync dir.
 * *renamed tells the caller whether CURRENT may already name the new
 * manifest (then that manifest must not be removed). */
static int write_current_file(version_set *vs, uint64_t manifest_number, int *renamed) {
    char tmp[PATH_MAX], current[PATH_MAX], contents[64];
    int len = snprintf(contents, sizeof contents, "MANIFEST-%06" PRIu64 "\n", manifest_number);
    temp_file_path(tmp, sizeof tmp, vs->dbpath, manifest_number);
    current_file_path(current, sizeof current, vs->dbpath);
    *renamed = 0;
    int rc = env_write_file_synced(vs->env, tmp, contents, (size_t)len);
    if (rc == WEIR_OK) rc = vs->env->ops->rename_file(vs->env, tmp, current);
    if (rc != WEIR_OK) {
        remove_quietly(vs->env, tmp);
        return rc;
    }
    *renamed = 1;
    return vs->env->ops->sync_dir(vs->env, vs->dbpath);
}

/* Write a whole manifest holding one record and sync it. */
static int write_manifest(weir_env *env, const char *path, slice record) {
    log_writer *w = NULL;
    int rc = log_writer_open(env, path, &w);
    if (rc != WEIR_OK) return rc;
    rc = log_writer_add(w, record);
    if (rc == WEIR_OK) rc = log_writer_sync(w);
    if (rc == WEIR_OK) return log_writer_close(w);
    weir_error saved;
    weir_error_save(&saved, rc);
    log_writer_close(w);
    return weir_error_raise(&saved);
}

int vset_create_new_db(version_set *vs) {
    version_edit e;
    version_edit_init(&e);
    version_edit_set_log_number(&e, 0);
    version_edit_set_next_file_number(&e, 2);
    version_edit_set_last_sequence(&e, 0);
    buf rec = BUF_INIT;
    int rc = version_edit_encode(&e, &rec);
    version_edit_free(&e);
    if (rc != WEIR_OK) return rc;

    char path[PATH_MAX];
    manifest_file_path(path, sizeof path, vs->dbpath, 1);
    rc = write_manifest(vs->env, path, buf_slice(&rec));
    buf_free(&rec);
    int renamed = 0;
    if (rc == WEIR_OK) rc = write_current_file(vs, 1, &renamed);
    if (rc != WEIR_OK) {
        if (!renamed) remove_quietly(vs->env, path);
        return rc;
    }

    version *v = version_new(vs);
    if (!v) return vset_oom("creating the first version");
    version_compute_score(v);
    vset_install(vs, v);
    log_writer_close(vs->manifest);
    vs->manifest = NULL;
    vs->manifest_file_number = 1;
    vs->next_file_number = 2;
    vs->log_number = 0;
    vs->last_sequence = 0;
    for (int level = 0; level < NUM_LEVELS; level++) buf_clear(&vs->compact_pointer[level]);
    return WEIR_OK;
}

/* Read CURRENT and return the number of the manifest it names. */
static int read_current_file(version_set *vs, uint64_t *number) {
    char current[PATH_MAX];
    current_file_path(current, sizeof current, vs->dbpath);
    if (!vs->env->ops->file_exists(vs->env, current))
        return weir_set_error(WEIR_CORRUPTION,
                              "%s is missing: %s may not be a weir database, or it is damaged "
                              "(restore CURRENT or a backup)",
                              current, vs->dbpath);
    buf contents = BUF_INIT;
    int rc = env_read_file(vs->env, current, &contents);
    if (rc != WEIR_OK) {
        buf_free(&contents); /* a failed read may have allocated */
        return rc;
    }
    char name[64];
    size_t len = contents.len;
    int ok = len >= 2 && len < sizeof name && contents.data[len - 1] == '\n';
    if (ok) {
        memcpy(name, contents.data, len - 1);
        name[len - 1] = '\0';
        ok = strlen(name) == len - 1 && parse_file_name(name, number) == FILE_MANIFEST;
    }
    buf_free(&contents);
    if (!ok)
        return weir_set_error(WEIR_CORRUPTION,
                              "%s does not name a manifest (expected \"MANIFEST-NNNNNN\\n\"): %s may "
                              "not be a weir database, or it is damaged",
                              current, vs->dbpath);
    return WEIR_OK;
}

/* State gathered while replaying a manifest. */
typedef struct replay_state {
    int has_log_number, has_next_file, has_last_sequence, has_log_start;
    uint64_t log_number, next_file, last_sequence, log_start;
    int clean_close; /* set by a clean-close edit, cleared by any later one */
    uint64_t close_sequence, close_log_number;
    buf pointers[NUM_LEVELS];
    int has_pointer[NUM_LEVELS];
} replay_state;

static int replay_edit(replay_state *st, version_builder *b, const version_edit *e) {
    if (e->has_log_number) {
        st->has_log_number = 1;
        st->log_number = e->log_number;
        /* An edit of the old format names a log without its start. */
        st->has_log_start = e->has_log_start;
        st->log_start = e->log_start_sequence;
    }
    st->clean_close = e->has_clean_close;
    if (e->has_clean_close) {
        st->close_sequence = e->close_sequence;
        st->close_log_number = e->close_log_number;
    }
    if (e->has_next_file_number) {
        st->has_next_file = 1;
        st->next_file = e->next_file_number;
    }
    if (e->has_last_sequence) {
        st->has_last_sequence = 1;
        st->last_sequence = e->last_sequence;
    }
    for (size_t i = 0; i < e->num_pointers; i++) {
        const edit_pointer *p = &e->pointers[i];
        if (buf_set(&st->pointers[p->level], p->key.data, p->key.len) != 0)
            return vset_oom("replaying the manifest");
        st->has_pointer[p->level] = 1;
    }
    return builder_apply(b, e);
}

int vset_recover(version_set *vs) {
    uint64_t manifest_number;
    int rc = read_current_file(vs, &manifest_number);
    if (rc != WEIR_OK) return rc;
    return vset_recover_manifest(vs, manifest_number, NULL, NULL);
}

int vset_recover_manifest(version_set *vs, uint64_t manifest_number, const vset_salvage_fn *salvage,
                          void *salvage_arg) {
    char path[PATH_MAX];
    int rc;
    manifest_file_path(path, sizeof path, vs->dbpath, manifest_number);
    if (!vs->env->ops->file_exists(vs->env, path))
        return weir_set_error(WEIR_CORRUPTION,
                              "manifest %s named by CURRENT is missing: %s may not be a weir "
                              "database, or it is damaged (restore a backup)",
                              path, vs->dbpath);
    log_reader *r = NULL;
    rc = log_reader_open(vs->env, path, &r);
    if (rc != WEIR_OK) return rc;
    if (salvage) log_reader_set_salvage(r, salvage->on_damage, salvage_arg);

    version *empty = version_new(vs);
    if (!empty) {
        log_reader_close(r);
        return vset_oom("recovering the manifest");
    }
    version_builder b;
    builder_init(&b, vs, empty);
    replay_state st;
    memset(&st, 0, sizeof st);
    version_edit e;
    version_edit_init(&e);
    buf scratch = BUF_INIT;
    uint64_t records = 0;
    memset(&vs->recovered, 0, sizeof vs->recovered);
    vs->recovered.manifest_number = manifest_number;
    for (;;) {
        slice rec;
        rc = log_reader_next(r, &scratch, &rec);
        if (rc == WEIR_NOT_FOUND) {
            rc = WEIR_OK;
            vs->recovered.torn_bytes = log_reader_dropped_bytes(r);
            vs->recovered.torn_offset = log_reader_valid_end(r);
            break;
        }
        if (rc != WEIR_OK) break;
        uint64_t offset = log_reader_record_offset(r);
        rc = version_edit_decode(&e, rec);
        if (rc != WEIR_OK) {
            if (rc == WEIR_CORRUPTION)
                weir_wrap_error(rc, "manifest %s: record at offset %" PRIu64, path, offset);
            if (rc == WEIR_CORRUPTION && salvage) { /* intact but undecodable: skip it */
                salvage->on_bad_edit(salvage_arg, offset, weir_errmsg());
                rc = WEIR_OK;
                continue;
            }
            break;
        }
        rc = replay_edit(&st, &b, &e);
        if (rc != WEIR_OK) {
            if (rc != WEIR_NO_MEMORY) {
                rc = weir_wrap_error(WEIR_CORRUPTION, "manifest %s: record at offset %" PRIu64,
                                     path, offset);
            }
            if (rc == WEIR_CORRUPTION && salvage) {
                salvage->on_bad_edit(salvage_arg, offset, weir_errmsg());
                rc = WEIR_OK;
                continue;
            }
            break;
        }
        records++;
    }
    version_edit_free(&e);
    buf_free(&scratch);
    log_reader_close(r);

    if (rc == WEIR_OK && salvage) {
        /* Salvage takes what it can: a missing field gets a safe value. */
        if (!st.has_next_file) st.next_file = 2;
        if (!st.has_last_sequence) st.last_sequence = 0;
        st.has_next_file = st.has_last_sequence = 1;
        if (!st.has_log_number) st.log_number = 0;
        st.has_log_number = 1;
    }
    if (rc == WEIR_OK) {
        const char *missing = !st.has_next_file       ? "next file number"
                              : !st.has_log_number    ? "log number"
                              : !st.has_last_sequence ? "last sequence"
                                                      : NULL;
        if (missing)
            rc = weir_set_error(WEIR_CORRUPTION,
                                "manifest %s: no %s in its %" PRIu64
                                " record(s); the database is damaged (restore a backup)",
                                path, missing, records);
    }
    version *v = NULL;
    if (rc == WEIR_OK) {
        rc = builder_finish(&b, &v);
        if (rc == WEIR_CORRUPTION) weir_wrap_error(rc, "manifest %s", path);
    }
    builder_free(&b);
    version_free(empty);

    if (rc == WEIR_OK) {
        vset_install(vs, v);
        log_writer_close(vs->manifest);
        vs->manifest = NULL; /* never append to a log that may end torn */
        vs->manifest_file_number = manifest_number;
        vs->next_file_number = st.next_file;
        vs->log_number = st.log_number;
        vs->log_start_known = st.has_log_start;
        vs->log_start_sequence = st.has_log_start ? st.log_start : 0;
        vs->last_sequence = st.last_sequence;
        vs->manifest_uncertain = 0;
        vs->recovered.records = records;
        vs->recovered.next_file = st.next_file;
        vs->recovered.clean_close = st.clean_close;
        vs->recovered.close_sequence = st.close_sequence;
        vs->recovered.close_log_number = st.close_log_number;
        vset_mark_file_number_used(vs, manifest_number);
        vset_mark_file_number_used(vs, st.log_number);
        for (int level = 0; level < NUM_LEVELS; level++) {
            for (int i = 0; i < v->num_files[level]; i++)
                vset_mark_file_number_used(vs, v->files[level][i]->number);
            if (st.has_pointer[level]) {
                buf tmp = vs->compact_pointer[level];
                vs->compact_pointer[level] = st.pointers[level];
                st.pointers[level] = tmp;
            } else {
                buf_clear(&vs->compact_pointer[level]);
            }
        }
    }
    for (int level = 0; level < NUM_LEVELS; level++) buf_free(&st.pointers[level]);
    return rc;
}

/* The whole state of the set as one edit: the first record of a manifest. */
static int encode_snapshot(version_set *vs, buf *out) {
    version_edit snap;
    version_edit_init(&snap);
    if (vs->log_start_known) version_edit_set_log(&snap, vs->log_number, vs->log_start_sequence);
    else version_edit_set_log_number(&snap, vs->log_number);
    version_edit_set_next_file_number(&snap, vs->next_file_number);
    version_edit_set_last_sequence(&snap, vs->last_sequence);
    int rc = WEIR_OK;
    for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++) {
        if (vs->compact_pointer[level].len > 0)
            rc = version_edit_set_compact_pointer(&snap, level, buf_slice(&vs->compact_pointer[level]));
        const version *cur = vs->current;
        for (int i = 0; i < cur->num_files[level] && rc == WEIR_OK; i++)
            rc = version_edit_add_file(&snap, level, cur->files[level][i]);
    }
    const tomb_set *t = vs->current->tombs;
    for (int i = 0; t && i < t->n && rc == WEIR_OK; i++)
        rc = version_edit_add_range_tombstone(&snap, t->v[i].seq, buf_slice(&t->v[i].start),
                                              buf_slice(&t->v[i].end));
    if (rc == WEIR_OK) rc = version_edit_encode(&snap, out);
    version_edit_free(&snap);
    return rc;
}

int vset_log_and_apply(version_set *vs, version_edit *edit, pthread_mutex_t *mu) {
    if (mu)
        while (vs->manifest_busy) pthread_cond_wait(&vs->manifest_cv, mu);
    vs->manifest_busy = 1;

    int need_new = vs->manifest == NULL || log_writer_size(vs->manifest) >= MANIFEST_ROLL_BYTES;
    uint64_t new_number = need_new ? vset_new_file_number(vs) : 0;
    if (!edit->has_log_number) {
        if (vs->log_start_known) version_edit_set_log(edit, vs->log_number, vs->log_start_sequence);
        else version_edit_set_log_number(edit, vs->log_number);
    }
    version_edit_set_next_file_number(edit, vs->next_file_number);
    version_edit_set_last_sequence(edit, vs->last_sequence);

    version *v = NULL;
    buf snapshot = BUF_INIT, record = BUF_INIT;
    version_builder b;
    builder_init(&b, vs, vs->current);
    int rc = builder_apply(&b, edit);
    if (rc == WEIR_OK) rc = builder_finish(&b, &v);
    builder_free(&b);
    if (rc == WEIR_CORRUPTION) weir_wrap_error(rc, "applying a version edit");
    if (rc == WEIR_OK && need_new) rc = encode_snapshot(vs, &snapshot);
    if (rc == WEIR_OK) rc = version_edit_encode(edit, &record);

    log_writer *old_writer = vs->manifest;
    uint64_t old_number = vs->manifest_file_number;
    log_writer *w = need_new ? NULL : old_writer;
    char new_path[PATH_MAX];
    int renamed = 0;
    if (need_new) manifest_file_path(new_path, sizeof new_path, vs->dbpath, new_number);

    int dropped_writer = 0, uncertain = 0;
    if (rc == WEIR_OK) {
        if (mu) pthread_mutex_unlock(mu);
        if (need_new) {
            rc = log_writer_open(vs->env, new_path, &w);
            if (rc == WEIR_OK) rc = log_writer_add(w, buf_slice(&snapshot));
        }
        if (rc == WEIR_OK) rc = log_writer_add(w, buf_slice(&record));
        if (rc == WEIR_OK) rc = log_writer_sync(w);
        if (rc == WEIR_OK && need_new) rc = write_current_file(vs, new_number, &renamed);
        if (rc == WEIR_OK && need_new) {
            /* CURRENT names the new manifest now; the old one is history. */
            log_writer_close(old_writer);
            if (old_number != 0) {
                char old_path[PATH_MAX];
                manifest_file_path(old_path, sizeof old_path, vs->dbpath, old_number);
                remove_quietly(vs->env, old_path);
            }
        } else if (rc != WEIR_OK) {
            /* A failed append may have left part of a record behind, so the
             * writer is dropped either way: the next call starts a fresh
             * manifest rather than write after the damage. A new manifest
             * CURRENT may already name is kept. */
            weir_error saved;
            weir_error_save(&saved, rc);
            log_writer_close(w);
            w = NULL;
            /* The record may be on disk, in whole or in part. */
            uncertain = 1;
            if (need_new) {
                if (!renamed) {
                    vs->env->ops->remove_file(vs->env, new_path);
                } else {
                    /* CURRENT may already name the new manifest, so the
                     * old one must never be appended to again: later
                     * edits would land where no reader looks. */
                    log_writer_close(old_writer);
                    dropped_writer = 1;
                }
            } else {
                dropped_writer = 1;
            }
            weir_error_raise(&saved);
        }
        if (mu) pthread_mutex_lock(mu);
    }
    buf_free(&snapshot);
    buf_free(&record);

    if (rc == WEIR_OK) {
        if (need_new) {
            vs->manifest = w;
            vs->manifest_file_number = new_number;
        }
        vs->log_number = edit->log_number;
        vs->log_start_known = edit->has_log_start;
        vs->log_start_sequence = edit->log_start_sequence;
        if (need_new) vs->manifest_uncertain = 0;
        for (size_t i = 0; i < edit->num_pointers; i++) {
            const edit_pointer *p = &edit->pointers[i];
            buf_set(&vs->compact_pointer[p->level], p->key.data, p->key.len);
        }
        vset_install(vs, v);
    } else {
        if (v) version_free(v);
        if (dropped_writer) vs->manifest = NULL;
        if (uncertain) vs->manifest_uncertain = 1;
    }
    vs->manifest_busy = 0;
    if (mu) pthread_cond_broadcast(&vs->manifest_cv);
    return rc;
}

void vset_drop_manifest(version_set *vs) {
    if (!vs->manifest) return;
    env_discard_buffer(vs->manifest->file);
    log_writer_close(vs->manifest);
    vs->manifest = NULL;
}

void vset_for_each_live_file(version_set *vs, void (*fn)(void *arg, uint64_t number), void *arg) {
    for (version *v = vs->list_head.next; v != &vs->list_head; v = v->next)
        for (int level = 0; level < NUM_LEVELS; level++)
            for (int i = 0; i < v->num_files[level]; i++) fn(arg, v->files[level][i]->number);
}


