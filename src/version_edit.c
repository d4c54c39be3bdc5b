/*
 * version_edit.c -- file metadata, the edits that turn one version into the
 * next, and their tagged on-disk encoding (FORMATS.md, "Manifest records").
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



int vset_oom(const char *what) { return weir_set_error(WEIR_NO_MEMORY, "out of memory %s", what); }

/* Grow a malloc'd array so it holds at least `need` elements. */
int vset_grow_array(void **arr, size_t *cap, size_t need, size_t elem) {
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

int64_t file_seek_allowance(uint64_t size) {
    uint64_t n = size / SEEK_COST_BYTES;
    if (n > INT32_MAX) n = INT32_MAX;
    return n < SEEK_ALLOWANCE_MIN ? SEEK_ALLOWANCE_MIN : (int64_t)n;
}

file_meta *file_meta_create(uint64_t number, uint64_t size, uint64_t num_entries, slice smallest,
                            slice largest) {
    file_meta *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->refs = 1;
    f->number = number;
    f->size = size;
    f->num_entries = num_entries;
    atomic_init(&f->seek_allowance, file_seek_allowance(size));
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
    table_pin_release(&f->pin);
    buf_free(&f->smallest);
    buf_free(&f->largest);
    free(f);
}


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

void tomb_set_unref(tomb_set *t) {
    if (!t || --t->refs > 0) return;
    for (int i = 0; i < t->n; i++) {
        buf_free(&t->v[i].start);
        buf_free(&t->v[i].end);
    }
    free(t->v);
    free(t);
}

int vtomb_copy(vtomb *dst, uint64_t seq, slice start, slice end) {
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
    if (vset_grow_array((void **)&e->deleted, &e->cap_deleted, e->num_deleted + 1, sizeof *e->deleted))
        return vset_oom("recording a deleted file in a version edit");
    e->deleted[e->num_deleted].level = level;
    e->deleted[e->num_deleted].number = number;
    e->num_deleted++;
    return WEIR_OK;
}

int version_edit_add_file(version_edit *e, int level, file_meta *f) {
    if (vset_grow_array((void **)&e->added, &e->cap_added, e->num_added + 1, sizeof *e->added))
        return vset_oom("recording an added file in a version edit");
    file_meta_ref(f);
    e->added[e->num_added].level = level;
    e->added[e->num_added].file = f;
    e->num_added++;
    return WEIR_OK;
}

int version_edit_set_compact_pointer(version_edit *e, int level, slice ikey) {
    if (vset_grow_array((void **)&e->pointers, &e->cap_pointers, e->num_pointers + 1, sizeof *e->pointers))
        return vset_oom("recording a compact pointer in a version edit");
    edit_pointer *p = &e->pointers[e->num_pointers];
    p->level = level;
    buf k = BUF_INIT;
    if (buf_set(&k, ikey.data, ikey.len) != 0) return vset_oom("recording a compact pointer in a version edit");
    p->key = k;
    e->num_pointers++;
    return WEIR_OK;
}

int version_edit_add_range_tombstone(version_edit *e, uint64_t seq, slice start, slice end) {
    if (vset_grow_array((void **)&e->tombs_added, &e->cap_tombs_added, e->num_tombs_added + 1,
                   sizeof *e->tombs_added) ||
        vtomb_copy(&e->tombs_added[e->num_tombs_added], seq, start, end) != 0)
        return vset_oom("recording a range tombstone in a version edit");
    e->num_tombs_added++;
    return WEIR_OK;
}

int version_edit_remove_range_tombstone(version_edit *e, uint64_t seq) {
    if (vset_grow_array((void **)&e->tombs_removed, &e->cap_tombs_removed, e->num_tombs_removed + 1,
                   sizeof *e->tombs_removed))
        return vset_oom("recording a removed range tombstone in a version edit");
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
    return bad ? vset_oom("encoding a version edit") : WEIR_OK;
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
                rc = vset_oom("decoding a version edit");
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


