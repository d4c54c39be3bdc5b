/*
 * dump.c -- inspect.h: a table's layout and entries, and a log-format
 * file's records, read for display (the `weir` tool's dump-table and
 * dump-log) and, for logs, for weir_check (inspect.c), which walks every
 * log and manifest through inspect_log_walk.
 *
 * It owns the translation from the engine's structs (sst_reader, the
 * index block, write batches, version edits) into inspect.h's plain ones,
 * so nothing outside the engine needs an internal header to show a file.
 * It reads only what the format's checksums have accepted: entries come
 * through the table's iterator, records through the log reader, which
 * drop a torn tail and fail on damage followed by valid data.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "block.h"
#include "coding.h"
#include "dbformat.h"
#include "env.h"
#include "filename.h"
#include "inspect.h"
#include "sst.h"
#include "status.h"
#include "version.h"
#include "wal.h"

/* inspect.h repeats these values so that it needs no engine header. */
_Static_assert((int)INSPECT_OP_DEL == (int)TYPE_DELETION && (int)INSPECT_OP_PUT == (int)TYPE_VALUE &&
                   (int)INSPECT_OP_MERGE == (int)TYPE_MERGE && (int)INSPECT_OP_PUT_TTL == (int)TYPE_VALUE_TTL &&
                   (int)INSPECT_OP_DEL_RANGE == (int)TYPE_RANGE_DELETION,
               "inspect.h's op types must equal dbformat.h's");
_Static_assert(WEIR_COMPRESSION_NONE == SST_COMPRESSION_NONE && WEIR_COMPRESSION_LZ4 == SST_COMPRESSION_LZ4 &&
                   WEIR_COMPRESSION_ZSTD == SST_COMPRESSION_ZSTD,
               "weir.h's codec numbers must equal the table format's");

const char *inspect_op_name(int type) {
    switch (type) {
    case TYPE_VALUE: return "PUT";
    case TYPE_DELETION: return "DEL";
    case TYPE_MERGE: return "MERGE";
    case TYPE_VALUE_TTL: return "PUT_TTL";
    case TYPE_RANGE_DELETION: return "DEL_RANGE";
    default: return "UNKNOWN";
    }
}

const char *inspect_codec_name(int codec) {
    switch (codec) {
    case SST_COMPRESSION_NONE: return "none";
    case SST_COMPRESSION_LZ4: return "lz4";
    case SST_COMPRESSION_ZSTD: return "zstd";
    default: return "unknown";
    }
}

static inspect_bytes bytes_of(slice s) {
    inspect_bytes b = {s.data, s.len};
    return b;
}

static inspect_key key_of(slice ikey) {
    inspect_key k;
    memset(&k, 0, sizeof k);
    slice user;
    k.valid = ikey_parse(ikey, &user, &k.sequence, &k.type);
    k.user = bytes_of(k.valid ? user : ikey);
    return k;
}

/* An op from its parts (a PUT_TTL too short to hold its expiry is marked
 * malformed). */
static void op_of(inspect_op *op, uint64_t seq, int type, slice key, slice value) {
    memset(op, 0, sizeof *op);
    op->sequence = seq;
    op->type = type;
    op->key = bytes_of(key);
    if (type == TYPE_DELETION) return;
    if (type == TYPE_VALUE_TTL) {
        if (value.len < 8) {
            op->malformed = 1;
            return;
        }
        op->expiry_ms = decode_fixed64(value.data);
        value = slice_make(value.data + 8, value.len - 8);
    }
    op->value = bytes_of(value);
}

/* ---- tables ------------------------------------------------------------------- */

struct inspect_table {
    weir_env *env;
    char *path;
    uint64_t size;
    sst_reader *reader;
};

int inspect_table_open(const char *path, inspect_table **out) {
    *out = NULL;
    inspect_table *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
    }
    t->env = env_posix();
    int rc = t->env->ops->file_size(t->env, path, &t->size);
    if (rc == WEIR_OK) rc = sst_reader_open(t->env, path, t->size, &t->reader);
    if (rc != WEIR_OK) {
        inspect_table_close(t);
        return rc;
    }
    *out = t;
    return WEIR_OK;
}

void inspect_table_close(inspect_table *t) {
    if (!t) return;
    sst_reader_close(t->reader);
    free(t->path);
    free(t);
}

int inspect_table_entries(inspect_table *t, uint64_t limit, inspect_op_fn fn, void *arg,
                          uint64_t *handed) {
    if (handed) *handed = 0;
    iter *it = sst_reader_iter(t->reader, NULL, NULL);
    if (!it) return weir_set_error(WEIR_NO_MEMORY, "out of memory");
    uint64_t n = 0;
    int rc = WEIR_OK;
    for (iter_seek_first(it); n < limit && iter_valid(it); iter_next(it)) {
        slice user;
        uint64_t seq;
        int type;
        if (!ikey_parse(iter_key(it), &user, &seq, &type)) {
            rc = weir_set_error(WEIR_CORRUPTION, "%s: entry %" PRIu64 " has a malformed internal key",
                                t->path, n);
            break;
        }
        inspect_op op;
        op_of(&op, seq, type, user, iter_value(it));
        n++;
        rc = fn(arg, &op);
        if (rc != WEIR_OK) break;
    }
    if (rc == WEIR_OK && (rc = iter_status(it)) != WEIR_OK)
        rc = weir_wrap_error(rc, "after %" PRIu64 " entries", n);
    iter_destroy(it);
    if (handed) *handed = n;
    return rc;
}

/* Keys inside tables compare as internal keys; a key too short to hold a
 * tag (only in a damaged block) compares bytewise so nothing reads before
 * its start. */
static int table_key_cmp(slice a, slice b) {
    if (a.len < IKEY_TAG_SIZE || b.len < IKEY_TAG_SIZE) return slice_compare(a, b);
    return ikey_compare(a, b);
}

/* Where each copied key lies in the layout's storage while it still grows. */
typedef struct key_spot {
    size_t offset, len;
} key_spot;

static int keep_key(buf *storage, key_spot *spot, slice key) {
    spot->offset = storage->len;
    spot->len = key.len;
    return buf_append(storage, key.data, key.len) != 0 ? -1 : 0;
}

/* Walk the index of a table sst_reader_open accepted (so its checksum is
 * fine); bounds are checked again because the file can change underneath.
 * Fills the blocks and copies their separator keys into storage. */
static int read_index(inspect_table_layout *l, const char *path, const char *base, buf *storage,
                      key_spot **spots) {
    block idx;
    if (block_parse(&idx, base + l->index_offset, (size_t)l->index_size) != WEIR_OK)
        return weir_wrap_error(WEIR_CORRUPTION, "table %s: index", path);
    block_iter it;
    block_iter_init(&it, &idx, table_key_cmp);
    size_t cap = 0;
    int rc = WEIR_OK;
    uint64_t size = l->file_size;
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) {
        uint64_t off, bsize;
        uint32_t ordinal;
        const char *p = it.value.data, *end = p + it.value.len;
        if (!(p = decode_varint64(p, end, &off)) || !(p = decode_varint64(p, end, &bsize)) ||
            !(p = decode_varint32(p, end, &ordinal)) || off > size || bsize >= size - off) {
            rc = weir_set_error(WEIR_CORRUPTION, "table %s: bad block handle in the index", path);
            break;
        }
        if (l->num_blocks == cap) {
            cap = cap ? cap * 2 : 64;
            inspect_block *nb = realloc(l->blocks, cap * sizeof *nb);
            if (nb) l->blocks = nb;
            key_spot *ns = realloc(*spots, cap * sizeof *ns);
            if (ns) *spots = ns;
            if (!nb || !ns) {
                rc = weir_set_error(WEIR_NO_MEMORY, "out of memory reading %s", path);
                break;
            }
        }
        inspect_block *b = &l->blocks[l->num_blocks];
        memset(b, 0, sizeof *b);
        b->offset = off;
        b->size = bsize;
        b->codec = (unsigned char)base[off + bsize];
        if (keep_key(storage, &(*spots)[l->num_blocks], block_iter_key(&it)) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory reading %s", path);
            break;
        }
        l->num_blocks++;
    }
    if (rc == WEIR_OK && block_iter_status(&it) != WEIR_OK)
        rc = weir_wrap_error(WEIR_CORRUPTION, "table %s: index", path);
    block_iter_free(&it);
    return rc;
}

/* The footer's fields and the index's blocks, from a private map. */
static int read_footer_and_index(inspect_table *t, inspect_table_layout *l, buf *storage, key_spot **spots) {
    env_readable *file;
    int rc = t->env->ops->open_readable(t->env, t->path, &file);
    if (rc != WEIR_OK) return rc;
    env_mapping map = {NULL, 0};
    rc = t->env->ops->mmap(file, &map);
    if (rc != WEIR_OK) {
        t->env->ops->close_readable(file);
        return rc;
    }
    uint64_t size = l->file_size;
    if (map.len < size || size < SST_FOOTER_SIZE) {
        rc = weir_set_error(WEIR_CORRUPTION, "table %s: too short for a footer", t->path);
    } else {
        const char *f = map.base + size - SST_FOOTER_SIZE;
        l->filter_offset = decode_fixed64(f);
        l->filter_size = decode_fixed64(f + 8);
        l->index_offset = decode_fixed64(f + 16);
        l->index_size = decode_fixed64(f + 24);
        l->format_version = decode_fixed32(f + 40);
        l->footer_offset = size - SST_FOOTER_SIZE;
        l->footer_size = SST_FOOTER_SIZE;
        if (l->index_offset > size || l->index_size > size - l->index_offset)
            rc = weir_set_error(WEIR_CORRUPTION, "table %s: index block outside the file", t->path);
        else
            rc = read_index(l, t->path, map.base, storage, spots);
    }
    t->env->ops->munmap(file, &map);
    t->env->ops->close_readable(file);
    return rc;
}

/* Copy the first and last internal keys (through the checked iterator). */
static int read_key_range(inspect_table *t, inspect_table_layout *l, buf *storage, key_spot range[2]) {
    iter *it = sst_reader_iter(t->reader, NULL, NULL);
    if (!it) return weir_set_error(WEIR_NO_MEMORY, "out of memory");
    int rc = WEIR_OK;
    l->empty = 1;
    iter_seek_first(it);
    if (iter_valid(it)) {
        l->empty = 0;
        if (keep_key(storage, &range[0], iter_key(it)) != 0) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory");
        iter_seek_last(it);
        if (rc == WEIR_OK && iter_valid(it) && keep_key(storage, &range[1], iter_key(it)) != 0)
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory");
    }
    if (rc == WEIR_OK) rc = iter_status(it);
    iter_destroy(it);
    return rc;
}

int inspect_table_layout_read(inspect_table *t, inspect_table_layout *out) {
    memset(out, 0, sizeof *out);
    out->file_size = t->size;
    out->entries = sst_reader_num_entries(t->reader);
    buf *storage = calloc(1, sizeof *storage);
    if (!storage) return weir_set_error(WEIR_NO_MEMORY, "out of memory reading %s", t->path);
    out->storage = storage;
    key_spot *spots = NULL, range[2] = {{0, 0}, {0, 0}};
    int rc = read_footer_and_index(t, out, storage, &spots);
    if (rc == WEIR_OK) rc = read_key_range(t, out, storage, range);
    if (rc == WEIR_OK) {
        /* The storage no longer moves: point the keys into it (it is
         * still unallocated only if every key was empty). */
        const char *base = storage->data ? storage->data : "";
        out->smallest_block = out->num_blocks ? UINT64_MAX : 0;
        for (size_t i = 0; i < out->num_blocks; i++) {
            inspect_block *b = &out->blocks[i];
            b->last_key = key_of(slice_make(base + spots[i].offset, spots[i].len));
            out->block_bytes += b->size;
            if (b->size < out->smallest_block) out->smallest_block = b->size;
            if (b->size > out->largest_block) out->largest_block = b->size;
            if (b->codec >= 0 && b->codec <= 2) out->blocks_by_codec[b->codec]++;
        }
        if (!out->empty) {
            out->first = key_of(slice_make(base + range[0].offset, range[0].len));
            out->last = key_of(slice_make(base + range[1].offset, range[1].len));
        }
    }
    free(spots);
    return rc;
}

void inspect_table_layout_free(inspect_table_layout *l) {
    if (l->storage) buf_free(l->storage);
    free(l->storage);
    free(l->blocks);
    memset(l, 0, sizeof *l);
}

/* ---- log-format files ------------------------------------------------------- */

int inspect_log_kind_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return parse_file_name(slash ? slash + 1 : path, NULL) == FILE_MANIFEST ? INSPECT_LOG_MANIFEST
                                                                            : INSPECT_LOG_WAL;
}

typedef struct op_visit {
    inspect_op_fn fn;
    void *arg;
} op_visit;

static int visit_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    op_visit *v = arg;
    inspect_op op;
    op_of(&op, seq, type, key, value);
    return v->fn(v->arg, &op);
}

/* One write batch: its header to v->record, its ops to v->op; counted in s. */
static int walk_batch(slice rec, inspect_log_record *r, const inspect_log_visitor *v, inspect_log_summary *s) {
    r->sequence = batch_rep_sequence(rec);
    r->count = batch_rep_count(rec);
    r->synced = batch_rep_synced(rec);
    int rc = v && v->record ? v->record(v->arg, r) : WEIR_OK;
    if (rc != WEIR_OK) return rc;
    op_visit ov = {v ? v->op : NULL, v ? v->arg : NULL};
    rc = batch_rep_iterate(rec, ov.fn ? visit_op : NULL, &ov);
    if (rc != WEIR_OK) return rc;
    if (r->count) {
        if (s->ops == 0) s->first_seq = r->sequence;
        s->last_seq = r->sequence + r->count - 1;
        s->ops += r->count;
    }
    s->synced |= r->synced;
    return WEIR_OK;
}

static int visit_field(const inspect_log_visitor *v, inspect_edit_field *f, int kind) {
    f->kind = kind;
    int rc = v->edit_field(v->arg, f);
    memset(f, 0, sizeof *f);
    return rc;
}

/* A decoded version edit's parts, in inspect_edit_kind's order. */
static int walk_edit_fields(const version_edit *e, const inspect_log_visitor *v) {
    inspect_edit_field f;
    memset(&f, 0, sizeof f);
    int rc = WEIR_OK;
    if (rc == WEIR_OK && e->has_log_number) {
        f.number = e->log_number;
        rc = visit_field(v, &f, INSPECT_EDIT_LOG_NUMBER);
    }
    if (rc == WEIR_OK && e->has_log_start) {
        f.sequence = e->log_start_sequence;
        rc = visit_field(v, &f, INSPECT_EDIT_LOG_START);
    }
    if (rc == WEIR_OK && e->has_clean_close) {
        f.sequence = e->close_sequence;
        f.number = e->close_log_number;
        rc = visit_field(v, &f, INSPECT_EDIT_CLEAN_CLOSE);
    }
    if (rc == WEIR_OK && e->has_next_file_number) {
        f.number = e->next_file_number;
        rc = visit_field(v, &f, INSPECT_EDIT_NEXT_FILE_NUMBER);
    }
    if (rc == WEIR_OK && e->has_last_sequence) {
        f.sequence = e->last_sequence;
        rc = visit_field(v, &f, INSPECT_EDIT_LAST_SEQUENCE);
    }
    for (size_t i = 0; rc == WEIR_OK && i < e->num_deleted; i++) {
        f.level = e->deleted[i].level;
        f.number = e->deleted[i].number;
        rc = visit_field(v, &f, INSPECT_EDIT_DELETE_TABLE);
    }
    for (size_t i = 0; rc == WEIR_OK && i < e->num_added; i++) {
        const file_meta *m = e->added[i].file;
        f.level = e->added[i].level;
        f.number = m->number;
        f.size = m->size;
        f.entries = m->num_entries;
        f.smallest = key_of(buf_slice(&m->smallest));
        f.largest = key_of(buf_slice(&m->largest));
        rc = visit_field(v, &f, INSPECT_EDIT_ADD_TABLE);
    }
    for (size_t i = 0; rc == WEIR_OK && i < e->num_pointers; i++) {
        f.level = e->pointers[i].level;
        f.smallest = key_of(buf_slice(&e->pointers[i].key));
        rc = visit_field(v, &f, INSPECT_EDIT_COMPACTION_POINTER);
    }
    for (size_t i = 0; rc == WEIR_OK && i < e->num_tombs_added; i++) {
        f.sequence = e->tombs_added[i].seq;
        f.start = bytes_of(buf_slice(&e->tombs_added[i].start));
        f.end = bytes_of(buf_slice(&e->tombs_added[i].end));
        rc = visit_field(v, &f, INSPECT_EDIT_ADD_RANGE_TOMBSTONE);
    }
    for (size_t i = 0; rc == WEIR_OK && i < e->num_tombs_removed; i++) {
        f.sequence = e->tombs_removed[i];
        rc = visit_field(v, &f, INSPECT_EDIT_REMOVE_RANGE_TOMBSTONE);
    }
    return rc;
}

static int walk_edit(version_edit *e, slice rec, const inspect_log_record *r, const inspect_log_visitor *v) {
    int rc = version_edit_decode(e, rec);
    if (rc != WEIR_OK || !v) return rc;
    if (v->record && (rc = v->record(v->arg, r)) != WEIR_OK) return rc;
    return v->edit_field ? walk_edit_fields(e, v) : WEIR_OK;
}

int inspect_log_walk(const char *path, int kind, const inspect_log_visitor *v, inspect_log_summary *s) {
    memset(s, 0, sizeof *s);
    log_reader *r;
    int rc = log_reader_open(env_posix(), path, &r);
    if (rc != WEIR_OK) return rc;
    buf scratch = BUF_INIT;
    version_edit e;
    version_edit_init(&e);
    slice rec;
    while ((rc = log_reader_next(r, &scratch, &rec)) == WEIR_OK) {
        inspect_log_record info;
        memset(&info, 0, sizeof info);
        info.offset = log_reader_record_offset(r);
        info.size = rec.len;
        if (kind != INSPECT_LOG_MANIFEST && rec.len < BATCH_HEADER_SIZE) {
            /* Recovery's words for the same finding (recovery.c). */
            rc = weir_set_error(WEIR_CORRUPTION, "%s: record at offset %" PRIu64
                                " is too short to be a write batch (%zu bytes)", path, info.offset, rec.len);
            break;
        }
        rc = kind == INSPECT_LOG_MANIFEST ? walk_edit(&e, rec, &info, v) : walk_batch(rec, &info, v, s);
        if (rc != WEIR_OK) {
            rc = weir_wrap_error(rc, "%s: record at offset %" PRIu64, path, info.offset);
            break;
        }
        s->records++;
    }
    if (rc == WEIR_NOT_FOUND) {
        rc = WEIR_OK;
        s->dropped = log_reader_dropped_bytes(r);
        s->valid_end = log_reader_valid_end(r);
    }
    s->size = log_reader_file_size(r);
    version_edit_free(&e);
    buf_free(&scratch);
    log_reader_close(r);
    return rc;
}
