/*
 * version.c -- versions: which table files make up each level, point
 * lookups through them, iterators over a level, and text summaries.
 *
 * A version is immutable once installed; version_get and the iterators
 * only read a referenced version and take no lock. Reference counts are
 * changed under the DB mutex.
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

/* ---- versions --------------------------------------------------------------- */

version *version_new(version_set *vs) {
    version *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->vset = vs;
    v->compaction_level = -1;
    return v;
}

void version_free(version *v) {
    for (int level = 0; level < NUM_LEVELS; level++) {
        for (int i = 0; i < v->num_files[level]; i++) file_meta_unref(v->files[level][i]);
        free(v->files[level]);
    }
    tomb_set_unref(v->tombs);
    free(v);
}

void version_ref(version *v) { v->refs++; }

void version_unref(version *v) {
    if (--v->refs > 0) return;
    if (v->prev) {
        v->prev->next = v->next;
        v->next->prev = v->prev;
    }
    version_free(v);
}

uint64_t version_level_bytes(const version *v, int level) {
    uint64_t total = 0;
    for (int i = 0; i < v->num_files[level]; i++) total += v->files[level][i]->size;
    return total;
}

uint64_t files_bytes(file_meta *const *files, int n) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += files[i]->size;
    return total;
}

double level_max_bytes(const vset_options *o, int level) {
    double limit = o->max_bytes_for_level_base ? (double)o->max_bytes_for_level_base : 1.0;
    for (int l = 1; l < level; l++) limit *= 10.0;
    return limit;
}

/* How overdue a compaction of `level` is (>= 1: due). The last level has
 * nowhere to go and never scores. */
double level_score(const version *v, int level) {
    const vset_options *o = &v->vset->opts;
    if (level >= NUM_LEVELS - 1) return 0.0;
    if (level == 0) {
        int trigger = o->level0_compaction_trigger > 0 ? o->level0_compaction_trigger : 1;
        return (double)v->num_files[0] / (double)trigger;
    }
    return (double)version_level_bytes(v, level) / level_max_bytes(o, level);
}

void version_compute_score(version *v) {
    v->compaction_score = -1.0;
    v->compaction_level = -1;
    for (int level = 0; level < NUM_LEVELS - 1; level++) {
        double s = level_score(v, level);
        if (s > v->compaction_score) {
            v->compaction_score = s;
            v->compaction_level = level;
        }
    }
}

/* First file of a sorted, disjoint level whose largest key is >= ikey. */
int find_file(file_meta *const *files, int n, slice ikey) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (ikey_compare(file_largest(files[mid]), ikey) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* First file of a sorted, disjoint level whose largest user key is >= user. */
int find_file_user(file_meta *const *files, int n, slice user) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (slice_compare(file_largest_user(files[mid]), user) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int file_overlaps_user_range(const file_meta *f, const slice *smallest_user,
                                    const slice *largest_user) {
    if (smallest_user && slice_compare(file_largest_user(f), *smallest_user) < 0) return 0;
    if (largest_user && slice_compare(file_smallest_user(f), *largest_user) > 0) return 0;
    return 1;
}

int version_overlap_in_level(const version *v, int level, const slice *smallest_user,
                             const slice *largest_user) {
    file_meta *const *files = v->files[level];
    int n = v->num_files[level];
    if (level == 0) {
        for (int i = 0; i < n; i++)
            if (file_overlaps_user_range(files[i], smallest_user, largest_user)) return 1;
        return 0;
    }
    int i = smallest_user ? find_file_user(files, n, *smallest_user) : 0;
    if (i >= n) return 0;
    return !largest_user || slice_compare(*largest_user, file_smallest_user(files[i])) >= 0;
}

/* ---- version_get ------------------------------------------------------------ */

typedef struct get_state {
    slice user_key;
    int found;
    int type;
    int status;
    uint64_t file_number;
    const char *dbpath;
    version_value_fn fn;
    void *arg;
    version_entry_fn entry_fn; /* when set: every entry type goes here */
    uint64_t seq;
    unsigned flags;            /* SST_READ_* */
} get_state;

static void get_callback(void *arg, slice ikey, slice value) {
    get_state *st = arg;
    if (ikey.len < IKEY_TAG_SIZE) {
        char path[PATH_MAX];
        st->status = weir_set_error(WEIR_CORRUPTION, "table %s: entry with a %zu-byte internal key",
                                    table_file_path(path, sizeof path, st->dbpath, st->file_number),
                                    ikey.len);
        return;
    }
    if (!slice_equal(ikey_user(ikey), st->user_key)) return;
    int type = ikey_type(ikey);
    if (type != TYPE_VALUE && type != TYPE_DELETION && type != TYPE_MERGE && type != TYPE_VALUE_TTL) {
        char path[PATH_MAX];
        st->status = weir_set_error(WEIR_CORRUPTION,
                                    "table %s: entry of unknown type %d (damaged, or written by a "
                                    "newer weir)",
                                    table_file_path(path, sizeof path, st->dbpath, st->file_number),
                                    type);
        return;
    }
    st->found = 1;
    st->type = type;
    st->seq = ikey_seq(ikey);
    if (st->entry_fn) st->entry_fn(st->arg, type, st->seq, value);
    else if (type == TYPE_VALUE && st->fn) st->fn(st->arg, value);
}

/* 1 when the search is over (found, or an error in st->status / rc). */
static int get_from_file(version *v, file_meta *f, slice lookup_ikey, uint64_t hash,
                         get_state *st, int *rc) {
    st->file_number = f->number;
    *rc = table_cache_get_entry_pinned(v->vset->tc, &f->pin, f->number, f->size, lookup_ikey, hash,
                                       st->flags, get_callback, st);
    if (*rc != WEIR_OK) return 1;
    if (st->status != WEIR_OK) {
        *rc = st->status;
        return 1;
    }
    return st->found;
}

static int version_search(version *v, slice lookup_ikey, uint64_t hash, get_state *stp, int *type);

int version_get(version *v, slice lookup_ikey, uint64_t hash, int *type, version_value_fn fn,
                void *arg) {
    if (lookup_ikey.len < IKEY_TAG_SIZE)
        return weir_set_error(WEIR_INVALID, "version_get: lookup key shorter than its tag");
    get_state st = {ikey_user(lookup_ikey), 0, 0, WEIR_OK, 0, v->vset->dbpath, fn, arg, NULL, 0, 0};
    return version_search(v, lookup_ikey, hash, &st, type);
}

int version_get_entry(version *v, slice lookup_ikey, uint64_t hash, unsigned flags,
                      version_entry_fn fn, void *arg) {
    if (lookup_ikey.len < IKEY_TAG_SIZE)
        return weir_set_error(WEIR_INVALID, "version_get: lookup key shorter than its tag");
    get_state st = {ikey_user(lookup_ikey), 0, 0, WEIR_OK, 0, v->vset->dbpath, NULL, arg, fn, 0, flags};
    int type;
    return version_search(v, lookup_ikey, hash, &st, &type);
}

static int version_search(version *v, slice lookup_ikey, uint64_t hash, get_state *stp, int *type) {
    get_state st = *stp;
    int rc = WEIR_OK;

    /* Level 0 files may overlap; a higher number holds newer writes. */
    for (int i = v->num_files[0] - 1; i >= 0; i--) {
        file_meta *f = v->files[0][i];
        if (slice_compare(st.user_key, file_smallest_user(f)) < 0 ||
            slice_compare(st.user_key, file_largest_user(f)) > 0)
            continue;
        if (get_from_file(v, f, lookup_ikey, hash, &st, &rc)) goto done;
    }
    for (int level = 1; level < NUM_LEVELS; level++) {
        int n = v->num_files[level];
        if (n == 0) continue;
        int i = find_file(v->files[level], n, lookup_ikey);
        if (i >= n) continue;
        file_meta *f = v->files[level][i];
        if (slice_compare(st.user_key, file_smallest_user(f)) < 0) continue;
        if (get_from_file(v, f, lookup_ikey, hash, &st, &rc)) goto done;
    }
done:
    if (rc != WEIR_OK) return rc;
    if (!st.found) return WEIR_NOT_FOUND;
    *type = st.type;
    return WEIR_OK;
}

/* ---- read-triggered compaction ---------------------------------------------- */

/* Bytes of the files one level below `level` that overlap f's key range. */
static uint64_t next_level_overlap(const version *v, int level, const file_meta *f) {
    file_meta *const *files = v->files[level + 1];
    int n = v->num_files[level + 1];
    slice lo = file_smallest_user(f), hi = file_largest_user(f);
    uint64_t bytes = 0;
    for (int i = find_file_user(files, n, lo); i < n; i++) {
        if (slice_compare(file_smallest_user(files[i]), hi) > 0) break;
        bytes += files[i]->size;
    }
    return bytes;
}

int version_charge_seek(version *v, slice user_key, int64_t weight) {
    file_meta *first = NULL;
    int first_level = 0, first_index = 0, runs = 0;
    for (int i = v->num_files[0] - 1; i >= 0 && runs < 2; i--) { /* newest first */
        if (!file_overlaps_user_range(v->files[0][i], &user_key, &user_key)) continue;
        if (runs++ == 0) first = v->files[0][i], first_index = i;
    }
    for (int level = 1; level < NUM_LEVELS && runs < 2; level++) {
        int n = v->num_files[level];
        int i = n ? find_file_user(v->files[level], n, user_key) : n;
        if (i >= n || slice_compare(user_key, file_smallest_user(v->files[level][i])) < 0) continue;
        if (runs++ == 0) first = v->files[level][i], first_level = level, first_index = i;
    }
    /* One run answers the seek alone: nothing to gain by compacting. */
    if (runs < 2) return 0;
    int64_t left = atomic_fetch_sub_explicit(&first->seek_allowance, weight, memory_order_relaxed) - weight;
    if (left > 0) return 0;
    /* The file's own size is paid for. Compacting it also rewrites what
     * it overlaps one level down, which the seeks must pay for too before
     * the rewrite is worth it: a small level-0 file over the whole key
     * range would otherwise rewrite all of level 1 after a few thousand
     * seeks. */
    if (first_level + 1 < NUM_LEVELS &&
        (uint64_t)-left < next_level_overlap(v, first_level, first) / SEEK_COST_BYTES)
        return 0;
    /* Used up. The file_meta is shared by every version listing it, so a
     * newer version (a flush installed since) is told again; the load
     * keeps later samples from writing the shared line once it is set. */
    if (atomic_load_explicit(&v->seek_victim, memory_order_relaxed) != 0) return 0;
    uint64_t none = 0, victim = ((uint64_t)first_level << 32 | (uint32_t)first_index) + 1;
    return atomic_compare_exchange_strong_explicit(&v->seek_victim, &none, victim, memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* ---- level iterator --------------------------------------------------------- */

/* Walks the files of one sorted level in order, holding at most one table
 * iterator open: the file the position is in. Tables are opened through
 * the cache only when reached. The first child error stops the walk and
 * stays the iterator's status. */
typedef struct level_iter {
    iter base;
    table_cache *tc;
    file_meta **files;
    int num_files;
    int index; /* file whose iterator is `child`; -1 when none */
    iter *child;
    weir_error err; /* err.code != WEIR_OK once a child failed */
} level_iter;

static void level_iter_close_child(level_iter *li) {
    iter_destroy(li->child);
    li->child = NULL;
    li->index = -1;
}

/* Make `child` the iterator of file idx (reused if already open). 0 on OOM. */
static int level_iter_open(level_iter *li, int idx) {
    if (li->child && li->index == idx) return 1;
    /* The version holding the level (and its files' pins) outlives this
     * iterator; the old child's memory serves the new table. */
    iter *old = li->child;
    li->child = NULL;
    li->index = -1;
    file_meta *f = li->files[idx];
    li->child = table_cache_iter_pinned(li->tc, &f->pin, f->number, f->size, old);
    if (!li->child) {
        if (li->err.code == WEIR_OK) weir_error_save(&li->err, vset_oom("opening a table iterator"));
        return 0;
    }
    li->index = idx;
    return 1;
}

/* 1 if the child stopped on an error (recorded): the walk must not go on. */
static int level_iter_child_failed(level_iter *li) {
    int st = iter_status(li->child);
    if (st == WEIR_OK) return 0;
    if (li->err.code == WEIR_OK) weir_error_save(&li->err, st);
    return 1;
}

static void level_iter_skip_forward(level_iter *li) {
    while (li->child && !iter_valid(li->child)) {
        if (level_iter_child_failed(li)) return;
        int next = li->index + 1;
        if (next >= li->num_files) {
            level_iter_close_child(li);
            return;
        }
        if (!level_iter_open(li, next)) return;
        iter_seek_first(li->child);
    }
}

static void level_iter_skip_backward(level_iter *li) {
    while (li->child && !iter_valid(li->child)) {
        if (level_iter_child_failed(li)) return;
        int prev = li->index - 1;
        if (prev < 0) {
            level_iter_close_child(li);
            return;
        }
        if (!level_iter_open(li, prev)) return;
        iter_seek_last(li->child);
    }
}

static int level_iter_valid(const iter *it) {
    const level_iter *li = (const level_iter *)it;
    return li->child && iter_valid(li->child);
}

static void level_iter_seek_first(iter *it) {
    level_iter *li = (level_iter *)it;
    if (li->num_files == 0 || !level_iter_open(li, 0)) return;
    iter_seek_first(li->child);
    level_iter_skip_forward(li);
}

static void level_iter_seek_last(iter *it) {
    level_iter *li = (level_iter *)it;
    if (li->num_files == 0 || !level_iter_open(li, li->num_files - 1)) return;
    iter_seek_last(li->child);
    level_iter_skip_backward(li);
}

static void level_iter_seek(iter *it, slice target) {
    level_iter *li = (level_iter *)it;
    int idx = find_file(li->files, li->num_files, target);
    if (idx >= li->num_files) {
        level_iter_close_child(li);
        return;
    }
    if (!level_iter_open(li, idx)) return;
    iter_seek(li->child, target);
    level_iter_skip_forward(li);
}

static void level_iter_next(iter *it) {
    level_iter *li = (level_iter *)it;
    iter_next(li->child);
    level_iter_skip_forward(li);
}

static void level_iter_prev(iter *it) {
    level_iter *li = (level_iter *)it;
    iter_prev(li->child);
    level_iter_skip_backward(li);
}

static slice level_iter_key(const iter *it) { return iter_key(((const level_iter *)it)->child); }
static slice level_iter_value(const iter *it) { return iter_value(((const level_iter *)it)->child); }

static int level_iter_status(const iter *it) {
    const level_iter *li = (const level_iter *)it;
    if (li->err.code != WEIR_OK) return weir_error_raise(&li->err);
    return li->child ? iter_status(li->child) : WEIR_OK;
}

static void level_iter_destroy(iter *it) {
    level_iter *li = (level_iter *)it;
    iter_destroy(li->child);
    free(li);
}

static const struct iter_ops level_iter_ops = {
    level_iter_valid, level_iter_seek_first, level_iter_seek_last, level_iter_seek,
    level_iter_next,  level_iter_prev,       level_iter_key,       level_iter_value,
    level_iter_status, level_iter_destroy,
};

iter *level_iter_create(table_cache *tc, file_meta **files, int num_files) {
    level_iter *li = calloc(1, sizeof *li);
    if (!li) return NULL;
    li->base.ops = &level_iter_ops;
    li->tc = tc;
    li->files = files;
    li->num_files = num_files;
    li->index = -1;
    li->err.code = WEIR_OK;
    return &li->base;
}

int version_add_iterators(version *v, iter ***list, int *n) {
    int extra = v->num_files[0];
    for (int level = 1; level < NUM_LEVELS; level++)
        if (v->num_files[level] > 0) extra++;
    if (extra == 0) return WEIR_OK;
    iter **arr = realloc(*list, (size_t)(*n + extra) * sizeof *arr);
    if (!arr) return vset_oom("collecting table iterators");
    *list = arr;
    int start = *n, count = start;
    for (int i = v->num_files[0] - 1; i >= 0; i--) {
        const file_meta *f = v->files[0][i];
        iter *it = table_cache_iter(v->vset->tc, f->number, f->size);
        if (!it) goto fail;
        arr[count++] = it;
    }
    for (int level = 1; level < NUM_LEVELS; level++) {
        if (v->num_files[level] == 0) continue;
        iter *it = level_iter_create(v->vset->tc, v->files[level], v->num_files[level]);
        if (!it) goto fail;
        arr[count++] = it;
    }
    *n = count;
    return WEIR_OK;
fail:
    for (int i = start; i < count; i++) iter_destroy(arr[i]);
    return vset_oom("creating table iterators");
}

/* ---- text summaries --------------------------------------------------------- */

static int text_printf(buf *b, const char *fmt, ...) WEIR_PRINTF(2, 3);
static int text_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || buf_reserve(b, (size_t)need + 1) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
    return 0;
}

/* Printable bytes as they are, others as \xNN; long keys cut short. */
int text_key(buf *b, slice key) {
    enum { max_shown = 48 };
    char tmp[max_shown * 4 + 8];
    size_t o = 0;
    for (size_t i = 0; i < key.len && i < max_shown; i++) {
        unsigned char c = (unsigned char)key.data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') tmp[o++] = (char)c;
        else o += (size_t)snprintf(tmp + o, sizeof tmp - o, "\\x%02x", c);
    }
    if (key.len > max_shown) {
        memcpy(tmp + o, "...", 3);
        o += 3;
    }
    return buf_append(b, tmp, o);
}

static char *text_finish(buf *b, int bad) {
    if (bad || buf_append(b, "", 1) != 0) {
        buf_free(b);
        return NULL;
    }
    return b->data;
}

char *version_level_summary(const version *v) {
    buf b = BUF_INIT;
    int bad = 0;
    for (int level = 0; level < NUM_LEVELS && !bad; level++)
        bad |= text_printf(&b, "level %d: %d files, %" PRIu64 " bytes\n", level, v->num_files[level],
                           version_level_bytes(v, level));
    return text_finish(&b, bad);
}

char *version_table_list(const version *v) {
    buf b = BUF_INIT;
    int bad = 0;
    for (int level = 0; level < NUM_LEVELS && !bad; level++) {
        for (int i = 0; i < v->num_files[level] && !bad; i++) {
            const file_meta *f = v->files[level][i];
            bad |= text_printf(&b, "level %d: %06" PRIu64 ".sst %" PRIu64 " bytes, %" PRIu64
                                   " entries, '",
                               level, f->number, f->size, f->num_entries);
            bad |= text_key(&b, file_smallest_user(f));
            bad |= text_printf(&b, "' @ %" PRIu64 " .. '", ikey_seq(file_smallest(f)));
            bad |= text_key(&b, file_largest_user(f));
            bad |= text_printf(&b, "' @ %" PRIu64 "\n", ikey_seq(file_largest(f)));
        }
    }
    if (!bad && b.len == 0) bad |= text_printf(&b, "(no tables)\n");
    return text_finish(&b, bad);
}


