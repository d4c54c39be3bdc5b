/*
 * wal.c -- the block-framed log format used by the write-ahead log and the
 * manifest (see wal.h): the writer that frames records into checksummed
 * fragments, and the reader that reassembles them during recovery.
 *
 * The reader's main job is telling a torn tail from corruption. A crash can
 * only damage what was being appended last, so damage with nothing valid
 * after it is a torn write and is dropped. Damage followed by any fragment
 * with a good checksum means bytes in the middle of the log went bad; that
 * is reported with the file and offset and never skipped, because skipping
 * would silently lose acknowledged writes.
 */
#include "wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "status.h"

/* ---- writer -------------------------------------------------------------- */

int log_writer_open(weir_env *env, const char *path, log_writer **out) {
    *out = NULL;
    log_writer *w = malloc(sizeof *w);
    if (w == NULL) return weir_set_error(WEIR_NO_MEMORY, "opening log %s: out of memory", path);
    int rc = env->ops->new_writable(env, path, &w->file);
    if (rc != WEIR_OK) {
        free(w);
        return rc;
    }
    w->block_offset = 0;
    *out = w;
    return WEIR_OK;
}

static int emit_fragment(log_writer *w, int type, const char *data, size_t n) {
    unsigned char type_byte = (unsigned char)type;
    uint32_t crc = crc32c_extend(crc32c_value(&type_byte, 1), data, n);
    char header[LOG_HEADER_SIZE];
    encode_fixed32(header, crc32c_mask(crc));
    header[4] = (char)(n & 0xff);
    header[5] = (char)(n >> 8);
    header[6] = (char)type_byte;
    int rc = env_append(w->file, header, sizeof header);
    if (rc == WEIR_OK && n) rc = env_append(w->file, data, n);
    w->block_offset += (uint32_t)(LOG_HEADER_SIZE + n);
    return rc;
}

int log_writer_add(log_writer *w, slice record) {
    static const char zeros[LOG_HEADER_SIZE] = {0};
    const char *p = record.data;
    size_t left = record.len;
    int first = 1;
    do {
        size_t leftover = LOG_BLOCK_SIZE - w->block_offset;
        if (leftover < LOG_HEADER_SIZE) {
            /* Too small for a header: pad so the next fragment starts the
             * block; readers skip block tails shorter than a header. */
            if (leftover) {
                int rc = env_append(w->file, zeros, leftover);
                if (rc != WEIR_OK) return rc;
            }
            w->block_offset = 0;
        }
        size_t avail = LOG_BLOCK_SIZE - w->block_offset - LOG_HEADER_SIZE;
        size_t n = left < avail ? left : avail;
        int last = (n == left);
        int type = first ? (last ? LOG_FULL : LOG_FIRST) : (last ? LOG_LAST : LOG_MIDDLE);
        int rc = emit_fragment(w, type, p, n);
        if (rc != WEIR_OK) return rc;
        p += n;
        left -= n;
        first = 0;
    } while (left > 0);
    return WEIR_OK;
}

int log_writer_flush(log_writer *w) { return env_flush(w->file); }

int log_writer_rollback(log_writer *w, uint64_t size) {
    int rc = env_truncate_writable(w->file, size);
    if (rc == WEIR_OK) w->block_offset = (uint32_t)(size % LOG_BLOCK_SIZE);
    return rc;
}

int log_writer_sync(log_writer *w) { return env_sync(w->file); }

uint64_t log_writer_size(const log_writer *w) { return w->file->size; }

int log_writer_close(log_writer *w) {
    if (w == NULL) return WEIR_OK;
    int rc = env_close_writable(w->file);
    free(w);
    return rc;
}

/* ---- reader -------------------------------------------------------------- */

struct log_reader {
    env_readable *file;
    uint64_t file_size;
    uint64_t block_start; /* file offset of the block in `block` */
    size_t block_len;     /* bytes of it present: min(block size, rest of file) */
    size_t pos;           /* next fragment header within the block */
    int block_loaded;
    uint64_t record_offset;
    uint64_t valid_end;
    uint64_t dropped;
    int final_status;     /* WEIR_OK while records may follow */
    weir_error final_error;
    uint64_t resume_at;   /* where reading goes on when no block is loaded */
    uint64_t skipped;     /* bytes a salvaging reader stepped over */
    log_salvage_fn salvage_fn; /* non-NULL: report damage and read on */
    void *salvage_arg;
    char block[LOG_BLOCK_SIZE];
};

typedef struct frag_header {
    uint32_t masked_crc;
    size_t len;
    int type;
} frag_header;

static frag_header parse_header(const char *p) {
    frag_header h;
    h.masked_crc = decode_fixed32(p);
    h.len = (size_t)(unsigned char)p[4] | ((size_t)(unsigned char)p[5] << 8);
    h.type = (unsigned char)p[6];
    return h;
}

static int header_is_zero(const frag_header *h) { return h->masked_crc == 0 && h->len == 0 && h->type == 0; }

static int type_is_known(int type) { return type >= LOG_FULL && type <= LOG_LAST; }

static uint32_t fragment_crc(int type, const char *payload, size_t len) {
    unsigned char t = (unsigned char)type;
    return crc32c_extend(crc32c_value(&t, 1), payload, len);
}

/* 1 if the fragment at p (with `room` bytes available up to the end of its
 * block or the file) is complete, of a known type and checksums. */
static int fragment_is_valid(const char *p, size_t room) {
    if (room < LOG_HEADER_SIZE) return 0;
    frag_header h = parse_header(p);
    if (!type_is_known(h.type) || h.len > room - LOG_HEADER_SIZE) return 0;
    return crc32c_unmask(h.masked_crc) == fragment_crc(h.type, p + LOG_HEADER_SIZE, h.len);
}

int log_reader_open(weir_env *env, const char *path, log_reader **out) {
    *out = NULL;
    log_reader *r = malloc(sizeof *r);
    if (r == NULL) return weir_set_error(WEIR_NO_MEMORY, "opening log %s: out of memory", path);
    int rc = env->ops->open_readable(env, path, &r->file);
    if (rc != WEIR_OK) {
        free(r);
        return rc;
    }
    r->file_size = r->file->size;
    r->block_start = 0;
    r->block_len = 0;
    r->pos = 0;
    r->block_loaded = 0;
    r->record_offset = 0;
    r->valid_end = 0;
    r->dropped = 0;
    r->final_status = WEIR_OK;
    r->resume_at = 0;
    r->skipped = 0;
    r->salvage_fn = NULL;
    r->salvage_arg = NULL;
    *out = r;
    return WEIR_OK;
}

void log_reader_close(log_reader *r) {
    if (r == NULL) return;
    r->file->env->ops->close_readable(r->file);
    free(r);
}

uint64_t log_reader_record_offset(const log_reader *r) { return r->record_offset; }
uint64_t log_reader_valid_end(const log_reader *r) { return r->valid_end; }
uint64_t log_reader_dropped_bytes(const log_reader *r) { return r->dropped; }
uint64_t log_reader_skipped_bytes(const log_reader *r) { return r->skipped; }
uint64_t log_reader_file_size(const log_reader *r) { return r->file_size; }

void log_reader_set_salvage(log_reader *r, log_salvage_fn fn, void *arg) {
    r->salvage_fn = fn;
    r->salvage_arg = arg;
}

/* Read up to n bytes at off into dst; *got is short only at end of file. */
static int read_at(log_reader *r, uint64_t off, char *dst, size_t n, size_t *got) {
    *got = 0;
    if (off >= r->file_size) return WEIR_OK;
    if (n > r->file_size - off) n = (size_t)(r->file_size - off);
    int rc = r->file->env->ops->pread(r->file, off, dst, n, got);
    if (rc != WEIR_OK)
        return weir_wrap_error(rc, "reading log %s at offset %llu", r->file->path, (unsigned long long)off);
    return WEIR_OK;
}

static int load_block(log_reader *r, uint64_t start) {
    size_t got;
    int rc = read_at(r, start, r->block, LOG_BLOCK_SIZE, &got);
    if (rc != WEIR_OK) return rc;
    uint64_t want = r->file_size - start < LOG_BLOCK_SIZE ? r->file_size - start : LOG_BLOCK_SIZE;
    if (got < want) r->file_size = start + got; /* the file shrank since open */
    r->block_start = start;
    r->block_len = got;
    r->pos = 0;
    r->block_loaded = 1;
    return WEIR_OK;
}

static int finish(log_reader *r, int status) {
    r->final_status = status;
    if (status == WEIR_NOT_FOUND) {
        r->dropped = r->file_size - r->valid_end;
        return status;
    }
    weir_error_save(&r->final_error, status);
    return status;
}

/* Offset of the first fragment that checksums at or after file offset
 * `from`, looking at every byte offset (not only where the damaged
 * fragment's length says the next one starts: that length may be the
 * damage), in *at; *found says whether there is one. A fragment found this
 * way is complete, of a known type, does not cross a block boundary and
 * matches its CRC: the chance that damaged or random bytes pass is 2^-32
 * per candidate. Uses r->block as scratch (the current block is reloaded
 * by whoever reads on). */
static int find_valid_fragment(log_reader *r, uint64_t from, int *found, uint64_t *at) {
    *found = 0;
    r->block_loaded = 0;
    for (uint64_t b = from - from % LOG_BLOCK_SIZE; b < r->file_size; b += LOG_BLOCK_SIZE) {
        size_t got;
        int rc = read_at(r, b, r->block, LOG_BLOCK_SIZE, &got);
        if (rc != WEIR_OK) return rc;
        size_t i = b < from ? (size_t)(from - b) : 0;
        for (; i + LOG_HEADER_SIZE <= got; i++) {
            const char *p = r->block + i;
            int type = (unsigned char)p[6];
            if (!type_is_known(type)) continue;
            size_t len = (size_t)(unsigned char)p[4] | ((size_t)(unsigned char)p[5] << 8);
            if (len > got - i - LOG_HEADER_SIZE) continue;
            if (fragment_is_valid(p, got - i)) {
                *found = 1;
                *at = b + i;
                return WEIR_OK;
            }
        }
        if (got < LOG_BLOCK_SIZE) break;
    }
    return WEIR_OK;
}

/* A damaged fragment at file offset `off`, inside a record that started
 * at `lost_from` (== off when the damage starts a record). Without
 * salvage: corruption if any valid fragment follows anywhere in the file,
 * otherwise a torn tail that ends the log. With salvage: the lost range
 * [lost_from, next valid fragment) is reported and reading goes on there
 * (or the log ends). */
static int damaged(log_reader *r, uint64_t off, uint64_t lost_from, const char *reason) {
    int found;
    uint64_t next = 0;
    int rc = find_valid_fragment(r, off + 1, &found, &next);
    if (rc != WEIR_OK) return finish(r, rc);
    if (r->salvage_fn) {
        uint64_t end = found ? next : r->file_size;
        r->salvage_fn(r->salvage_arg, lost_from, end, found, reason);
        r->skipped += end - lost_from;
        if (!found) return finish(r, WEIR_NOT_FOUND);
        rc = load_block(r, next - next % LOG_BLOCK_SIZE);
        if (rc != WEIR_OK) return finish(r, rc);
        r->pos = (size_t)(next % LOG_BLOCK_SIZE);
        return WEIR_OK; /* resume: the caller reads on */
    }
    if (!found) return finish(r, WEIR_NOT_FOUND);
    weir_set_error(WEIR_CORRUPTION,
                   "corrupted log record in %s at offset %llu: %s, and a valid record follows at "
                   "offset %llu (damage in the middle of a log is never a torn write)",
                   r->file->path, (unsigned long long)off, reason, (unsigned long long)next);
    return finish(r, WEIR_CORRUPTION);
}

static const char *type_name(int type) {
    switch (type) {
    case LOG_FULL: return "FULL";
    case LOG_FIRST: return "FIRST";
    case LOG_MIDDLE: return "MIDDLE";
    case LOG_LAST: return "LAST";
    default: return "unknown";
    }
}

/* The damaged-fragment path of log_reader_next: returns WEIR_OK when a
 * salvaging reader should read on from where damaged() left it (any
 * partial record is dropped), anything else ends the call. */
static int on_damage(log_reader *r, uint64_t off, uint64_t lost_from, const char *reason, buf *scratch,
                     int *in_record) {
    int rc = damaged(r, off, lost_from, reason);
    buf_clear(scratch);
    *in_record = 0;
    return rc;
}

int log_reader_next(log_reader *r, buf *scratch, slice *record) {
    *record = slice_make(NULL, 0);
    if (r->final_status != WEIR_OK) {
        if (r->final_status == WEIR_NOT_FOUND) return WEIR_NOT_FOUND;
        return weir_error_raise(&r->final_error);
    }
    if (!r->block_loaded) {
        uint64_t start = r->resume_at - r->resume_at % LOG_BLOCK_SIZE;
        int rc = load_block(r, start);
        if (rc != WEIR_OK) return finish(r, rc);
        r->pos = (size_t)(r->resume_at - start);
    }
    buf_clear(scratch);
    int in_record = 0;
    uint64_t record_start = 0;
    char reason[200];
    for (;;) {
        if (r->block_len - r->pos < LOG_HEADER_SIZE) {
            if (r->block_start + LOG_BLOCK_SIZE < r->file_size) {
                /* A block tail too short for a header is padding. */
                int rc = load_block(r, r->block_start + LOG_BLOCK_SIZE);
                if (rc != WEIR_OK) return finish(r, rc);
                continue;
            }
            /* End of file, possibly inside a header or a fragmented record:
             * nothing can follow, so it is a torn tail at worst. */
            if (in_record && r->salvage_fn)
                r->salvage_fn(r->salvage_arg, record_start, r->file_size, 0,
                              "the log ends inside a fragmented record");
            return finish(r, WEIR_NOT_FOUND);
        }
        const char *p = r->block + r->pos;
        frag_header h = parse_header(p);
        uint64_t off = r->block_start + r->pos;
        size_t room = r->block_len - r->pos - LOG_HEADER_SIZE;
        uint64_t lost_from = in_record ? record_start : off;
        int rc = WEIR_OK;

        if (header_is_zero(&h)) {
            snprintf(reason, sizeof reason, "zero-filled region where a fragment header was expected%s",
                     in_record ? " (inside a fragmented record)" : "");
            rc = on_damage(r, off, lost_from, reason, scratch, &in_record);
            if (rc != WEIR_OK) return rc;
            continue;
        }
        if (h.len > room) {
            int past_eof = r->block_len < LOG_BLOCK_SIZE &&
                           r->pos + LOG_HEADER_SIZE + h.len <= LOG_BLOCK_SIZE;
            snprintf(reason, sizeof reason, "fragment length %zu runs past the end of the %s", h.len,
                     past_eof ? "file" : "block");
            rc = on_damage(r, off, lost_from, reason, scratch, &in_record);
            if (rc != WEIR_OK) return rc;
            continue;
        }
        if (!type_is_known(h.type)) {
            snprintf(reason, sizeof reason, "unknown fragment type %d", h.type);
            rc = on_damage(r, off, lost_from, reason, scratch, &in_record);
            if (rc != WEIR_OK) return rc;
            continue;
        }
        if (crc32c_unmask(h.masked_crc) != fragment_crc(h.type, p + LOG_HEADER_SIZE, h.len)) {
            snprintf(reason, sizeof reason, "checksum mismatch in %s fragment of %zu bytes",
                     type_name(h.type), h.len);
            rc = on_damage(r, off, lost_from, reason, scratch, &in_record);
            if (rc != WEIR_OK) return rc;
            continue;
        }

        /* A good fragment: check that it continues the chain. */
        if ((h.type == LOG_FULL || h.type == LOG_FIRST) && in_record) {
            /* A valid fragment follows the unfinished record, so this is
             * not a torn tail. */
            snprintf(reason, sizeof reason,
                     "fragmented record is missing its end; a new record starts at offset %llu",
                     (unsigned long long)off);
            if (r->salvage_fn) {
                r->salvage_fn(r->salvage_arg, record_start, off, 1, reason);
                r->skipped += off - record_start;
                buf_clear(scratch);
                in_record = 0;
            } else {
                weir_set_error(WEIR_CORRUPTION, "corrupted log record in %s at offset %llu: %s",
                               r->file->path, (unsigned long long)record_start, reason);
                return finish(r, WEIR_CORRUPTION);
            }
        }
        if ((h.type == LOG_MIDDLE || h.type == LOG_LAST) && !in_record) {
            snprintf(reason, sizeof reason, "%s fragment without a preceding FIRST", type_name(h.type));
            if (r->salvage_fn) {
                /* Skip just this orphan fragment. */
                uint64_t end = off + LOG_HEADER_SIZE + h.len;
                r->salvage_fn(r->salvage_arg, off, end, 1, reason);
                r->skipped += end - off;
                r->pos += LOG_HEADER_SIZE + h.len;
                continue;
            }
            /* Any valid fragment after this one, or this one itself being
             * intact, means the damage is not a torn tail. */
            weir_set_error(WEIR_CORRUPTION, "corrupted log record in %s at offset %llu: %s",
                           r->file->path, (unsigned long long)off, reason);
            return finish(r, WEIR_CORRUPTION);
        }
        r->pos += LOG_HEADER_SIZE + h.len;
        switch (h.type) {
        case LOG_FULL:
            /* Points into the block buffer: valid until the next call. */
            *record = slice_make(p + LOG_HEADER_SIZE, h.len);
            r->record_offset = off;
            r->valid_end = off + LOG_HEADER_SIZE + h.len;
            return WEIR_OK;
        case LOG_FIRST:
            in_record = 1;
            record_start = off;
            /* fall through */
        case LOG_MIDDLE:
            if (buf_append(scratch, p + LOG_HEADER_SIZE, h.len) != 0) {
                weir_set_error(WEIR_NO_MEMORY, "reading log %s at offset %llu: out of memory",
                               r->file->path, (unsigned long long)record_start);
                return finish(r, WEIR_NO_MEMORY);
            }
            break;
        case LOG_LAST:
            if (buf_append(scratch, p + LOG_HEADER_SIZE, h.len) != 0) {
                weir_set_error(WEIR_NO_MEMORY, "reading log %s at offset %llu: out of memory",
                               r->file->path, (unsigned long long)record_start);
                return finish(r, WEIR_NO_MEMORY);
            }
            *record = buf_slice(scratch);
            r->record_offset = record_start;
            r->valid_end = off + LOG_HEADER_SIZE + h.len;
            return WEIR_OK;
        }
    }
}
