/*
 * version.c -- the MANIFEST and CURRENT files, the live versions (which
 * table files make up each level), the edits that turn one version into the
 * next, point lookups and iterators over a version's tables, and the choice
 * of what to compact next.
 *
 * Everything that touches version_set state or reference counts runs under
 * the DB mutex. version_get and the iterators only read a referenced (and
 * therefore immutable) version and take no lock.
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

/* A compaction's output stops growing, and a move down is not trivial,
 * once it overlaps this many target-sized files of the level below the
 * output: otherwise the next compaction of that output would be huge. */
#define GRANDPARENT_OVERLAP_FACTOR 10

static int oom(const char *what) { return weir_set_error(WEIR_NO_MEMORY, "out of memory %s", what); }

/* Grow a malloc'd array so it holds at least `need` elements. */
static int grow_array(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (!p) return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* ---- file_meta -------------------------------------------------------------- */

file_meta *file_meta_create(uint64_t number, uint64_t size, uint64_t num_entries, slice smallest,
                            slice largest) {
    file_meta *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->refs = 1;
    f->number = number;
    f->size = size;
    f->num_entries = num_entries;
    if (buf_set(&f->smallest, smallest.data, smallest.len) != 0 ||
        buf_set(&f->largest, largest.data, largest.len) != 0) {
        buf_free(&f->smallest);
        buf_free(&f->largest);
        free(f);
        return NULL;
    }
    return f;
}

void file_meta_ref(file_meta *f) { f->refs++; }

void file_meta_unref(file_meta *f) {
    if (!f || --f->refs > 0) return;
    buf_free(&f->smallest);
    buf_free(&f->largest);
    free(f);
}

static inline slice file_smallest(const file_meta *f) { return buf_slice(&f->smallest); }
static inline slice file_largest(const file_meta *f) { return buf_slice(&f->largest); }
static inline slice file_smallest_user(const file_meta *f) { return ikey_user(file_smallest(f)); }
static inline slice file_largest_user(const file_meta *f) { return ikey_user(file_largest(f)); }

/* ---- version edits ---------------------------------------------------------- */

/* On-disk tags of a version edit. Each field is a varint32 tag followed by
 * its payload; a tag this code does not know means a newer format, which is
 * refused rather than half-understood. Numbers are never reused. */
enum edit_tag {
    TAG_LOG_NUMBER = 1,      /* varint64 */
    TAG_NEXT_FILE = 2,       /* varint64 */
    TAG_LAST_SEQUENCE = 3,   /* varint64 */
    TAG_COMPACT_POINTER = 4, /* varint32 level, length-prefixed internal key */
    TAG_DELETED_FILE = 5,    /* varint32 level, varint64 number */
    TAG_ADDED_FILE = 6,      /* varint32 level, varint64 number, size, entries,
                                length-prefixed smallest, largest */
    TAG_ADDED_TOMBSTONE = 7, /* varint64 seq, length-prefixed start, end */
    TAG_REMOVED_TOMBSTONE = 8, /* varint64 seq */
    TAG_LOG_START = 9,       /* varint64: first sequence of the log named by tag 1 */
    TAG_CLEAN_CLOSE = 10     /* varint64 last logged sequence, varint64 newest log */
};

static void tomb_set_unref(tomb_set *t) {
    if (!t || --t->refs > 0) return;
    for (int i = 0; i < t->n; i++) {
        buf_free(&t->v[i].start);
        buf_free(&t->v[i].end);
    }
    free(t->v);
    free(t);
}

static int vtomb_copy(vtomb *dst, uint64_t seq, slice start, slice end) {
    dst->seq = seq;
    dst->start = (buf)BUF_INIT;
    dst->end = (buf)BUF_INIT;
    if (buf_set(&dst->start, start.data ? start.data : "", start.len) != 0 ||
        buf_set(&dst->end, end.data ? end.data : "", end.len) != 0) {
        buf_free(&dst->start);
        buf_free(&dst->end);
        return -1;
    }
    return 0;
}

void version_edit_init(version_edit *e) { memset(e, 0, sizeof *e); }

void version_edit_free(version_edit *e) {
    for (size_t i = 0; i < e->num_added; i++) file_meta_unref(e->added[i].file);
    for (size_t i = 0; i < e->num_pointers; i++) buf_free(&e->pointers[i].key);
    for (size_t i = 0; i < e->num_tombs_added; i++) {
        buf_free(&e->tombs_added[i].start);
        buf_free(&e->tombs_added[i].end);
    }
    free(e->tombs_added);
    free(e->tombs_removed);
    free(e->added);
    free(e->deleted);
    free(e->pointers);
    version_edit_init(e);
}

void version_edit_set_log_number(version_edit *e, uint64_t n) {
    e->has_log_number = 1;
    e->log_number = n;
}

void version_edit_set_log(version_edit *e, uint64_t number, uint64_t start_sequence) {
    version_edit_set_log_number(e, number);
    e->has_log_start = 1;
    e->log_start_sequence = start_sequence;
}

void version_edit_set_clean_close(version_edit *e, uint64_t last_logged_sequence, uint64_t newest_log) {
    e->has_clean_close = 1;
    e->close_sequence = last_logged_sequence;
    e->close_log_number = newest_log;
}

void version_edit_set_next_file_number(version_edit *e, uint64_t n) {
    e->has_next_file_number = 1;
    e->next_file_number = n;
}

void version_edit_set_last_sequence(version_edit *e, uint64_t s) {
    e->has_last_sequence = 1;
    e->last_sequence = s;
}

int version_edit_delete_file(version_edit *e, int level, uint64_t number) {
    if (grow_array((void **)&e->deleted, &e->cap_deleted, e->num_deleted + 1, sizeof *e->deleted))
        return oom("recording a deleted file in a version edit");
    e->deleted[e->num_deleted].level = level;
    e->deleted[e->num_deleted].number = number;
    e->num_deleted++;
    return WEIR_OK;
}

int version_edit_add_file(version_edit *e, int level, file_meta *f) {
    if (grow_array((void **)&e->added, &e->cap_added, e->num_added + 1, sizeof *e->added))
        return oom("recording an added file in a version edit");
    file_meta_ref(f);
    e->added[e->num_added].level = level;
    e->added[e->num_added].file = f;
    e->num_added++;
    return WEIR_OK;
}

int version_edit_set_compact_pointer(version_edit *e, int level, slice ikey) {
    if (grow_array((void **)&e->pointers, &e->cap_pointers, e->num_pointers + 1, sizeof *e->pointers))
        return oom("recording a compact pointer in a version edit");
    edit_pointer *p = &e->pointers[e->num_pointers];
    p->level = level;
    buf k = BUF_INIT;
    if (buf_set(&k, ikey.data, ikey.len) != 0) return oom("recording a compact pointer in a version edit");
    p->key = k;
    e->num_pointers++;
    return WEIR_OK;
}

int version_edit_add_range_tombstone(version_edit *e, uint64_t seq, slice start, slice end) {
    if (grow_array((void **)&e->tombs_added, &e->cap_tombs_added, e->num_tombs_added + 1,
                   sizeof *e->tombs_added) ||
        vtomb_copy(&e->tombs_added[e->num_tombs_added], seq, start, end) != 0)
        return oom("recording a range tombstone in a version edit");
    e->num_tombs_added++;
    return WEIR_OK;
}

int version_edit_remove_range_tombstone(version_edit *e, uint64_t seq) {
    if (grow_array((void **)&e->tombs_removed, &e->cap_tombs_removed, e->num_tombs_removed + 1,
                   sizeof *e->tombs_removed))
        return oom("recording a removed range tombstone in a version edit");
    e->tombs_removed[e->num_tombs_removed++] = seq;
    return WEIR_OK;
}

int version_edit_encode(const version_edit *e, buf *out) {
    int bad = 0;
    if (e->has_log_number) {
        bad |= buf_put_varint32(out, TAG_LOG_NUMBER);
        bad |= buf_put_varint64(out, e->log_number);
    }
    if (e->has_log_start) {
        bad |= buf_put_varint32(out, TAG_LOG_START);
        bad |= buf_put_varint64(out, e->log_start_sequence);
    }
    if (e->has_clean_close) {
        bad |= buf_put_varint32(out, TAG_CLEAN_CLOSE);
        bad |= buf_put_varint64(out, e->close_sequence);
        bad |= buf_put_varint64(out, e->close_log_number);
    }
    if (e->has_next_file_number) {
        bad |= buf_put_varint32(out, TAG_NEXT_FILE);
        bad |= buf_put_varint64(out, e->next_file_number);
    }
    if (e->has_last_sequence) {
        bad |= buf_put_varint32(out, TAG_LAST_SEQUENCE);
        bad |= buf_put_varint64(out, e->last_sequence);
    }
    for (size_t i = 0; i < e->num_pointers; i++) {
        bad |= buf_put_varint32(out, TAG_COMPACT_POINTER);
        bad |= buf_put_varint32(out, (uint32_t)e->pointers[i].level);
        bad |= buf_put_length_prefixed(out, buf_slice(&e->pointers[i].key));
    }
    for (size_t i = 0; i < e->num_deleted; i++) {
        bad |= buf_put_varint32(out, TAG_DELETED_FILE);
        bad |= buf_put_varint32(out, (uint32_t)e->deleted[i].level);
        bad |= buf_put_varint64(out, e->deleted[i].number);
    }
    for (size_t i = 0; i < e->num_added; i++) {
        const file_meta *f = e->added[i].file;
        bad |= buf_put_varint32(out, TAG_ADDED_FILE);
        bad |= buf_put_varint32(out, (uint32_t)e->added[i].level);
        bad |= buf_put_varint64(out, f->number);
        bad |= buf_put_varint64(out, f->size);
        bad |= buf_put_varint64(out, f->num_entries);
        bad |= buf_put_length_prefixed(out, file_smallest(f));
        bad |= buf_put_length_prefixed(out, file_largest(f));
    }
    for (size_t i = 0; i < e->num_tombs_added; i++) {
        bad |= buf_put_varint32(out, TAG_ADDED_TOMBSTONE);
        bad |= buf_put_varint64(out, e->tombs_added[i].seq);
        bad |= buf_put_length_prefixed(out, buf_slice(&e->tombs_added[i].start));
        bad |= buf_put_length_prefixed(out, buf_slice(&e->tombs_added[i].end));
    }
    for (size_t i = 0; i < e->num_tombs_removed; i++) {
        bad |= buf_put_varint32(out, TAG_REMOVED_TOMBSTONE);
        bad |= buf_put_varint64(out, e->tombs_removed[i]);
    }
    return bad ? oom("encoding a version edit") : WEIR_OK;
}

/* Cursor over an encoded edit that turns every malformed field into one
 * message naming the field and where it starts. */
typedef struct edit_reader {
    const char *base;
    const char *p;
    const char *limit;
    const char *field_start;
} edit_reader;

static int edit_fail(version_edit *e, const edit_reader *r, const char *field) {
    version_edit_free(e);
    return weir_set_error(WEIR_CORRUPTION, "version edit: bad or truncated %s at byte %zu of %zu",
                          field, (size_t)(r->field_start - r->base), (size_t)(r->limit - r->base));
}

static int read_u64(edit_reader *r, uint64_t *v) {
    const char *q = decode_varint64(r->p, r->limit, v);
    if (!q) return 0;
    r->p = q;
    return 1;
}

static int read_level(edit_reader *r, int *level) {
    uint32_t v;
    const char *q = decode_varint32(r->p, r->limit, &v);
    if (!q || v >= NUM_LEVELS) return 0;
    r->p = q;
    *level = (int)v;
    return 1;
}

/* An internal key: at least the 8-byte tag and a known value type. */
static int read_ikey(edit_reader *r, slice *key) {
    const char *q = decode_length_prefixed(r->p, r->limit, key);
    if (!q || !ikey_parse(*key, NULL, NULL, NULL)) return 0;
    r->p = q;
    return 1;
}

int version_edit_decode(version_edit *e, slice in) {
    version_edit_free(e);
    if (in.len == 0) return WEIR_OK;
    edit_reader r = {in.data, in.data, in.data + in.len, in.data};
    while (r.p < r.limit) {
        r.field_start = r.p;
        uint32_t tag;
        const char *q = decode_varint32(r.p, r.limit, &tag);
        if (!q) return edit_fail(e, &r, "field tag");
        r.p = q;
        int level, rc = WEIR_OK;
        uint64_t n;
        slice key;
        switch (tag) {
        case TAG_LOG_NUMBER:
            if (!read_u64(&r, &n)) return edit_fail(e, &r, "log number");
            version_edit_set_log_number(e, n);
            break;
        case TAG_LOG_START:
            if (!read_u64(&r, &n) || n == 0 || n > MAX_SEQUENCE + 1)
                return edit_fail(e, &r, "log start sequence");
            e->has_log_start = 1;
            e->log_start_sequence = n;
            break;
        case TAG_CLEAN_CLOSE: {
            uint64_t last_log;
            if (!read_u64(&r, &n) || n > MAX_SEQUENCE) return edit_fail(e, &r, "clean close sequence");
            if (!read_u64(&r, &last_log)) return edit_fail(e, &r, "clean close log number");
            version_edit_set_clean_close(e, n, last_log);
            break;
        }
        case TAG_NEXT_FILE:
            if (!read_u64(&r, &n)) return edit_fail(e, &r, "next file number");
            version_edit_set_next_file_number(e, n);
            break;
        case TAG_LAST_SEQUENCE:
            if (!read_u64(&r, &n) || n > MAX_SEQUENCE) return edit_fail(e, &r, "last sequence");
            version_edit_set_last_sequence(e, n);
            break;
        case TAG_COMPACT_POINTER:
            if (!read_level(&r, &level)) return edit_fail(e, &r, "compact pointer level");
            if (!read_ikey(&r, &key)) return edit_fail(e, &r, "compact pointer key");
            rc = version_edit_set_compact_pointer(e, level, key);
            break;
        case TAG_DELETED_FILE:
            if (!read_level(&r, &level)) return edit_fail(e, &r, "deleted file level");
            if (!read_u64(&r, &n)) return edit_fail(e, &r, "deleted file number");
            rc = version_edit_delete_file(e, level, n);
            break;
        case TAG_ADDED_FILE: {
            uint64_t size, entries;
            slice smallest, largest;
            if (!read_level(&r, &level)) return edit_fail(e, &r, "added file level");
            if (!read_u64(&r, &n)) return edit_fail(e, &r, "added file number");
            if (!read_u64(&r, &size)) return edit_fail(e, &r, "added file size");
            if (!read_u64(&r, &entries)) return edit_fail(e, &r, "added file entry count");
            if (!read_ikey(&r, &smallest)) return edit_fail(e, &r, "added file smallest key");
            if (!read_ikey(&r, &largest)) return edit_fail(e, &r, "added file largest key");
            if (ikey_compare(smallest, largest) > 0)
                return edit_fail(e, &r, "added file key range (smallest > largest)");
            file_meta *f = file_meta_create(n, size, entries, smallest, largest);
            if (!f) {
                rc = oom("decoding a version edit");
                break;
            }
            rc = version_edit_add_file(e, level, f);
            file_meta_unref(f);
            break;
        }
        case TAG_ADDED_TOMBSTONE: {
            slice start, end;
            if (!read_u64(&r, &n) || n > MAX_SEQUENCE) return edit_fail(e, &r, "range tombstone sequence");
            const char *q2 = decode_length_prefixed(r.p, r.limit, &start);
            if (!q2) return edit_fail(e, &r, "range tombstone start");
            r.p = q2;
            q2 = decode_length_prefixed(r.p, r.limit, &end);
            if (!q2 || slice_compare(start, end) >= 0) return edit_fail(e, &r, "range tombstone end");
            r.p = q2;
            rc = version_edit_add_range_tombstone(e, n, start, end);
            break;
        }
        case TAG_REMOVED_TOMBSTONE:
            if (!read_u64(&r, &n)) return edit_fail(e, &r, "removed range tombstone");
            rc = version_edit_remove_range_tombstone(e, n);
            break;
        default:
            version_edit_free(e);
            return weir_set_error(WEIR_CORRUPTION,
                                  "version edit: unknown field tag %" PRIu32
                                  " at byte %zu (damaged, or written by a newer weir)",
                                  tag, (size_t)(r.field_start - r.base));
        }
        if (rc != WEIR_OK) {
            version_edit_free(e);
            return rc;
        }
    }
    return WEIR_OK;
}

/* ---- versions --------------------------------------------------------------- */

static version *version_new(version_set *vs) {
    version *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->vset = vs;
    v->compaction_level = -1;
    return v;
}

static void version_free(version *v) {
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

static uint64_t files_bytes(file_meta *const *files, int n) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += files[i]->size;
    return total;
}

static double level_max_bytes(const vset_options *o, int level) {
    double limit = o->max_bytes_for_level_base ? (double)o->max_bytes_for_level_base : 1.0;
    for (int l = 1; l < level; l++) limit *= 10.0;
    return limit;
}

/* How overdue a compaction of `level` is (>= 1: due). The last level has
 * nowhere to go and never scores. */
static double level_score(const version *v, int level) {
    const vset_options *o = &v->vset->opts;
    if (level >= NUM_LEVELS - 1) return 0.0;
    if (level == 0) {
        int trigger = o->level0_compaction_trigger > 0 ? o->level0_compaction_trigger : 1;
        return (double)v->num_files[0] / (double)trigger;
    }
    return (double)version_level_bytes(v, level) / level_max_bytes(o, level);
}

static void version_compute_score(version *v) {
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
static int find_file(file_meta *const *files, int n, slice ikey) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (ikey_compare(file_largest(files[mid]), ikey) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* First file of a sorted, disjoint level whose largest user key is >= user. */
static int find_file_user(file_meta *const *files, int n, slice user) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (slice_compare(file_largest_user(files[mid]), user) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int file_overlaps_user_range(const file_meta *f, const slice *smallest_user,
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
static int get_from_file(version *v, const file_meta *f, slice lookup_ikey, uint64_t hash,
                         get_state *st, int *rc) {
    st->file_number = f->number;
    *rc = table_cache_get_entry(v->vset->tc, f->number, f->size, lookup_ikey, hash, get_callback, st);
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
    get_state st = {ikey_user(lookup_ikey), 0, 0, WEIR_OK, 0, v->vset->dbpath, fn, arg, NULL, 0};
    return version_search(v, lookup_ikey, hash, &st, type);
}

int version_get_entry(version *v, slice lookup_ikey, uint64_t hash, version_entry_fn fn, void *arg) {
    if (lookup_ikey.len < IKEY_TAG_SIZE)
        return weir_set_error(WEIR_INVALID, "version_get: lookup key shorter than its tag");
    get_state st = {ikey_user(lookup_ikey), 0, 0, WEIR_OK, 0, v->vset->dbpath, NULL, arg, fn, 0};
    int type;
    return version_search(v, lookup_ikey, hash, &st, &type);
}

static int version_search(version *v, slice lookup_ikey, uint64_t hash, get_state *stp, int *type) {
    get_state st = *stp;
    int rc = WEIR_OK;

    /* Level 0 files may overlap; a higher number holds newer writes. */
    for (int i = v->num_files[0] - 1; i >= 0; i--) {
        const file_meta *f = v->files[0][i];
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
        const file_meta *f = v->files[level][i];
        if (slice_compare(st.user_key, file_smallest_user(f)) < 0) continue;
        if (get_from_file(v, f, lookup_ikey, hash, &st, &rc)) goto done;
    }
done:
    if (rc != WEIR_OK) return rc;
    if (!st.found) return WEIR_NOT_FOUND;
    *type = st.type;
    return WEIR_OK;
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
    level_iter_close_child(li);
    const file_meta *f = li->files[idx];
    li->child = table_cache_iter(li->tc, f->number, f->size);
    if (!li->child) {
        if (li->err.code == WEIR_OK) weir_error_save(&li->err, oom("opening a table iterator"));
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
    if (!arr) return oom("collecting table iterators");
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
    return oom("creating table iterators");
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
static int text_key(buf *b, slice key) {
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
            return oom("applying a version edit");
    }
    for (size_t i = 0; i < e->num_added; i++) {
        const edit_added *a = &e->added[i];
        if (a->level < 0 || a->level >= NUM_LEVELS)
            return weir_set_error(WEIR_INVALID, "version edit adds a file at level %d", a->level);
        file_meta_ref(a->file);
        if (changes_set(&b->levels[a->level], a->file->number, a->file) != 0) {
            file_meta_unref(a->file);
            return oom("applying a version edit");
        }
    }
    if (e->num_tombs_added == 0 && e->num_tombs_removed == 0) return WEIR_OK;
    if (builder_own_tombs(b) != 0) return oom("applying a version edit");
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
        if (!grown) return oom("applying a version edit");
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
                return oom("applying a version edit");
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
        return oom("building a version");
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
    if (!v) return oom("building a version");
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
    if (!v) return oom("creating the first version");
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
            return oom("replaying the manifest");
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
        return oom("recovering the manifest");
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

/* ---- compaction picking ----------------------------------------------------- */

typedef struct file_list {
    file_meta **v;
    size_t n, cap;
} file_list;

static int file_list_push(file_list *l, file_meta *f) {
    if (grow_array((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) return -1;
    l->v[l->n++] = f;
    return 0;
}

/* Files of `level` overlapping user keys [begin, end] (NULL: open). With
 * `close_range`, the range grows to cover every file taken until no other
 * file of the level overlaps it, so the set never splits the versions of a
 * user key between files that move and files that stay. Level 0 always
 * closes the range: its files overlap each other. */
static int get_overlapping(const version *v, int level, const slice *begin, const slice *end,
                           int close_range, file_list *out) {
    slice lo, hi;
    if (begin) lo = *begin;
    if (end) hi = *end;
    const slice *b = begin ? &lo : NULL, *e = end ? &hi : NULL;
    file_meta *const *files = v->files[level];
    int n = v->num_files[level];
    if (level == 0) close_range = 1;
    int start = 0;
    if (level > 0 && b) start = find_file_user(files, n, *b);
    out->n = 0;
    for (int i = start; i < n;) {
        file_meta *f = files[i++];
        slice fs = file_smallest_user(f), fl = file_largest_user(f);
        if (e && slice_compare(fs, *e) > 0) {
            if (level > 0) break; /* sorted: nothing further overlaps */
            continue;
        }
        if (b && slice_compare(fl, *b) < 0) continue;
        if (file_list_push(out, f) != 0) return oom("picking a compaction");
        if (!close_range) continue;
        if (b && slice_compare(fs, *b) < 0) {
            lo = fs;
            out->n = 0;
            i = 0;
        } else if (e && slice_compare(fl, *e) > 0) {
            hi = fl;
            out->n = 0;
            i = level > 0 && b ? find_file_user(files, n, *b) : 0;
        }
    }
    return WEIR_OK;
}

static int any_being_compacted(file_meta *const *files, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (files[i]->being_compacted) return 1;
    return 0;
}

/* Smallest and largest internal keys over one or two file sets. */
static void key_range(file_meta *const *a, size_t na, file_meta *const *b, size_t nb, slice *smallest,
                      slice *largest) {
    int first = 1;
    for (int pass = 0; pass < 2; pass++) {
        file_meta *const *files = pass ? b : a;
        size_t n = pass ? nb : na;
        for (size_t i = 0; i < n; i++) {
            slice s = file_smallest(files[i]), l = file_largest(files[i]);
            if (first || ikey_compare(s, *smallest) < 0) *smallest = s;
            if (first || ikey_compare(l, *largest) > 0) *largest = l;
            first = 0;
        }
    }
}

/* Hand a list's array over to a compaction. */
static int list_to_array(file_list *l, file_meta ***arr, int *n) {
    *arr = l->v;
    *n = (int)l->n;
    l->v = NULL;
    l->n = l->cap = 0;
    return WEIR_OK;
}

static void compaction_free_partial(compaction *c) {
    if (!c) return;
    free(c->inputs[0]);
    free(c->inputs[1]);
    free(c->grandparents);
    version_edit_free(&c->edit);
    if (c->input_version) version_unref(c->input_version);
    free(c);
}

/* User-key range a manual compaction asked for (NULL ends: open). */
typedef struct user_range {
    const slice *begin, *end;
} user_range;

/* Given the level-L inputs, add level L+1 and the grandparents, and make
 * the compaction. With `widen`, level L+1 inputs also cover that range,
 * and level L may have no inputs. NULL (with *rc WEIR_OK) if a needed file
 * is already being compacted, or nothing is to be compacted. Takes over
 * `in0`. */
static compaction *setup_compaction(version_set *vs, int level, file_list *in0, const user_range *widen,
                                    int *rc) {
    version *v = vs->current;
    file_list in1 = {0}, gp = {0};
    compaction *c = NULL;
    *rc = WEIR_OK;
    if ((in0->n == 0 && !widen) || any_being_compacted(in0->v, in0->n)) goto out;

    slice smallest = {NULL, 0}, largest = {NULL, 0}, us = {NULL, 0}, ul = {NULL, 0};
    const slice *pb = &us, *pe = &ul;
    if (in0->n > 0) {
        key_range(in0->v, in0->n, NULL, 0, &smallest, &largest);
        us = ikey_user(smallest);
        ul = ikey_user(largest);
    }
    if (widen) {
        if (!widen->begin) pb = NULL;
        else if (in0->n == 0 || slice_compare(*widen->begin, us) < 0) us = *widen->begin;
        if (!widen->end) pe = NULL;
        else if (in0->n == 0 || slice_compare(*widen->end, ul) > 0) ul = *widen->end;
    }
    /* Close the range at level+1 too: a file there may end with the newer
     * versions of a user key whose older versions start the next file.
     * Taking one without the other would let the compaction drop a
     * tombstone (nothing below it "has" the key) while the older value
     * stays behind in the untaken file, at the same level. */
    *rc = get_overlapping(v, level + 1, pb, pe, 1, &in1);
    if (*rc != WEIR_OK || any_being_compacted(in1.v, in1.n) || in0->n + in1.n == 0) goto out;

    if (level + 2 < NUM_LEVELS) {
        slice all_s = {NULL, 0}, all_l = {NULL, 0};
        key_range(in0->v, in0->n, in1.v, in1.n, &all_s, &all_l);
        slice gs = ikey_user(all_s), gl = ikey_user(all_l);
        *rc = get_overlapping(v, level + 2, &gs, &gl, 0, &gp);
        if (*rc != WEIR_OK) goto out;
    }

    c = calloc(1, sizeof *c);
    if (!c) {
        *rc = oom("picking a compaction");
        goto out;
    }
    version_edit_init(&c->edit);
    c->level = level;
    c->max_output_file_size = vs->opts.target_file_size;
    c->rewrite = widen != NULL;
    if (in0->n > 0) {
        *rc = version_edit_set_compact_pointer(&c->edit, level, largest);
        if (*rc == WEIR_OK &&
            buf_set(&vs->compact_pointer[level], largest.data, largest.len) != 0)
            *rc = oom("picking a compaction");
    }
    if (*rc != WEIR_OK) {
        compaction_free_partial(c);
        c = NULL;
        goto out;
    }
    list_to_array(in0, &c->inputs[0], &c->num_inputs[0]);
    list_to_array(&in1, &c->inputs[1], &c->num_inputs[1]);
    list_to_array(&gp, &c->grandparents, &c->num_grandparents);
    c->input_version = v;
    version_ref(v);
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < c->num_inputs[which]; i++) c->inputs[which][i]->being_compacted = 1;
out:
    free(in0->v);
    in0->v = NULL;
    in0->n = in0->cap = 0;
    free(in1.v);
    free(gp.v);
    return c;
}

/* Level-L inputs of a scored compaction: the first file past the level's
 * round-robin pointer that is not being compacted, then its overlaps. */
static int pick_level_inputs(version_set *vs, int level, file_list *in0) {
    const version *v = vs->current;
    file_meta *const *files = v->files[level];
    int n = v->num_files[level];
    const buf *ptr = &vs->compact_pointer[level];
    file_meta *chosen = NULL;
    for (int i = 0; i < n && !chosen; i++) {
        if (files[i]->being_compacted) continue;
        if (ptr->len >= IKEY_TAG_SIZE && ikey_compare(file_largest(files[i]), buf_slice(ptr)) <= 0)
            continue;
        chosen = files[i];
    }
    for (int i = 0; i < n && !chosen; i++) /* wrap around */
        if (!files[i]->being_compacted) chosen = files[i];
    in0->n = 0;
    if (!chosen) return WEIR_OK;
    slice us = file_smallest_user(chosen), ul = file_largest_user(chosen);
    return get_overlapping(v, level, &us, &ul, 1, in0);
}

compaction *vset_pick_compaction(version_set *vs) {
    version *v = vs->current;
    double scores[NUM_LEVELS];
    int order[NUM_LEVELS], n = 0;
    for (int level = 0; level < NUM_LEVELS - 1; level++) {
        scores[level] = level_score(v, level);
        if (scores[level] < 1.0) continue;
        int j = n++;
        while (j > 0 && scores[order[j - 1]] < scores[level]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = level;
    }
    for (int k = 0; k < n; k++) {
        int level = order[k], rc;
        file_list in0 = {0};
        rc = pick_level_inputs(vs, level, &in0);
        compaction *c = rc == WEIR_OK ? setup_compaction(vs, level, &in0, NULL, &rc) : NULL;
        free(in0.v);
        if (c || rc != WEIR_OK) return c;
    }
    return NULL;
}

compaction *vset_compact_range(version_set *vs, int level, const slice *begin, const slice *end) {
    if (level < 0 || level >= NUM_LEVELS - 1) {
        weir_set_error(WEIR_INVALID, "cannot compact level %d (levels 0..%d)", level, NUM_LEVELS - 2);
        return NULL;
    }
    if ((begin && begin->len < IKEY_TAG_SIZE) || (end && end->len < IKEY_TAG_SIZE)) {
        weir_set_error(WEIR_INVALID, "compact range bounds must be internal keys");
        return NULL;
    }
    slice ub, ue;
    if (begin) ub = ikey_user(*begin);
    if (end) ue = ikey_user(*end);
    file_list in0 = {0};
    int rc = get_overlapping(vs->current, level, begin ? &ub : NULL, end ? &ue : NULL, 1, &in0);
    if (rc != WEIR_OK || in0.n == 0) {
        free(in0.v);
        return NULL;
    }
    compaction *c = setup_compaction(vs, level, &in0, NULL, &rc);
    free(in0.v);
    if (!c && rc == WEIR_OK)
        weir_set_error(WEIR_BUSY, "level %d: files in the range are already being compacted", level);
    return c;
}

compaction *vset_compact_range_bottom(version_set *vs, int level, const slice *begin, const slice *end) {
    if (level < 0 || level >= NUM_LEVELS - 1) {
        weir_set_error(WEIR_INVALID, "cannot compact level %d (levels 0..%d)", level, NUM_LEVELS - 2);
        return NULL;
    }
    if ((begin && begin->len < IKEY_TAG_SIZE) || (end && end->len < IKEY_TAG_SIZE)) {
        weir_set_error(WEIR_INVALID, "compact range bounds must be internal keys");
        return NULL;
    }
    slice ub, ue;
    if (begin) ub = ikey_user(*begin);
    if (end) ue = ikey_user(*end);
    user_range want = {begin ? &ub : NULL, end ? &ue : NULL};
    file_list in0 = {0};
    int rc = get_overlapping(vs->current, level, want.begin, want.end, 1, &in0);
    compaction *c = rc == WEIR_OK ? setup_compaction(vs, level, &in0, &want, &rc) : NULL;
    free(in0.v);
    return c;
}

int compaction_is_trivial_move(const compaction *c) {
    return c->num_inputs[0] == 1 && c->num_inputs[1] == 0 &&
           files_bytes(c->grandparents, c->num_grandparents) <=
               (uint64_t)GRANDPARENT_OVERLAP_FACTOR * c->max_output_file_size;
}

int compaction_add_input_deletions(compaction *c) {
    for (int which = 0; which < 2; which++) {
        for (int i = 0; i < c->num_inputs[which]; i++) {
            int rc = version_edit_delete_file(&c->edit, c->level + which, c->inputs[which][i]->number);
            if (rc != WEIR_OK) return rc;
        }
    }
    return WEIR_OK;
}

int compaction_is_base_level_for_key(compaction *c, slice user_key) {
    const version *v = c->input_version;
    for (int level = c->level + 2; level < NUM_LEVELS; level++) {
        file_meta *const *files = v->files[level];
        int n = v->num_files[level];
        /* Keys arrive in increasing order, so each level's cursor only
         * moves forward. */
        while (c->level_ptrs[level] < n) {
            const file_meta *f = files[c->level_ptrs[level]];
            if (slice_compare(user_key, file_largest_user(f)) <= 0) {
                if (slice_compare(user_key, file_smallest_user(f)) >= 0) return 0;
                break;
            }
            c->level_ptrs[level]++;
        }
    }
    return 1;
}

int compaction_should_stop_before(compaction *c, slice ikey) {
    while (c->grandparent_index < c->num_grandparents &&
           ikey_compare(ikey, file_largest(c->grandparents[c->grandparent_index])) > 0) {
        if (c->seen_key) c->overlapped_bytes += c->grandparents[c->grandparent_index]->size;
        c->grandparent_index++;
    }
    c->seen_key = 1;
    if (c->overlapped_bytes > (uint64_t)GRANDPARENT_OVERLAP_FACTOR * c->max_output_file_size) {
        c->overlapped_bytes = 0;
        return 1;
    }
    return 0;
}

iter *compaction_input_iter(compaction *c) {
    table_cache *tc = c->input_version->vset->tc;
    int cap = (c->level == 0 ? c->num_inputs[0] : 1) + 1;
    iter **children = malloc((size_t)cap * sizeof *children);
    if (!children) return NULL;
    int n = 0;
    if (c->level == 0) {
        for (int i = c->num_inputs[0] - 1; i >= 0; i--) { /* newest first */
            const file_meta *f = c->inputs[0][i];
            if (!(children[n] = table_cache_iter(tc, f->number, f->size))) goto fail;
            n++;
        }
    } else if (c->num_inputs[0] > 0) {
        if (!(children[n] = level_iter_create(tc, c->inputs[0], c->num_inputs[0]))) goto fail;
        n++;
    }
    if (c->num_inputs[1] > 0) {
        if (!(children[n] = level_iter_create(tc, c->inputs[1], c->num_inputs[1]))) goto fail;
        n++;
    }
    iter *merged = merging_iter_create(children, n);
    free(children);
    return merged;
fail:
    for (int i = 0; i < n; i++) iter_destroy(children[i]);
    free(children);
    return NULL;
}

void compaction_free(compaction *c) {
    if (!c) return;
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < c->num_inputs[which]; i++) c->inputs[which][i]->being_compacted = 0;
    compaction_free_partial(c);
}

int vset_needs_compaction(const version_set *vs) {
    return vs->current && vs->current->compaction_score >= 1.0;
}
