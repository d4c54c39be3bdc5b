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

/* Where the fragment after the damaged one at `pos` (header h) starts in
 * the current block, or 0 if that cannot be told. When the type and
 * checksum are intact but the length field is not, the true length is the
 * one at which the checksum matches; try every prefix of the block. */
static size_t next_after_damaged(const log_reader *r, size_t pos, const frag_header *h) {
    if (header_is_zero(h)) return 0;
    size_t payload = pos + LOG_HEADER_SIZE;
    if (type_is_known(h->type)) {
        unsigned char t = (unsigned char)h->type;
        uint32_t want = crc32c_unmask(h->masked_crc);
        uint32_t crc = crc32c_value(&t, 1);
        for (size_t i = payload;; i++) {
            if (crc == want) return i;
            if (i >= r->block_len) break;
            crc = crc32c_extend(crc, r->block + i, 1);
        }
    }
    if (h->len <= r->block_len - payload) return payload + h->len;
    return 0;
}

/* Sets *found if a fragment with a good checksum exists after the damage:
 * first in the rest of the current block, stepping over fragments while
 * their lengths are plausible, starting at `next` (0: skip this part); then
 * at the start of every later block, which is always a fragment boundary.
 * Returns WEIR_OK or a read error. */
static int valid_fragment_follows(log_reader *r, size_t next, int *found) {
    *found = 0;
    while (next && next + LOG_HEADER_SIZE <= r->block_len) {
        if (fragment_is_valid(r->block + next, r->block_len - next)) {
            *found = 1;
            return WEIR_OK;
        }
        frag_header h = parse_header(r->block + next);
        if (header_is_zero(&h) || h.len > r->block_len - next - LOG_HEADER_SIZE) break;
        next += LOG_HEADER_SIZE + h.len;
    }
    /* The current block's contents are no longer needed: reuse the buffer. */
    for (uint64_t b = r->block_start + LOG_BLOCK_SIZE; b < r->file_size; b += LOG_BLOCK_SIZE) {
        size_t got;
        int rc = read_at(r, b, r->block, LOG_HEADER_SIZE, &got);
        if (rc != WEIR_OK) return rc;
        if (got < LOG_HEADER_SIZE) break;
        frag_header h = parse_header(r->block);
        uint64_t room = r->file_size - b < LOG_BLOCK_SIZE ? r->file_size - b : LOG_BLOCK_SIZE;
        if (!type_is_known(h.type) || h.len > room - LOG_HEADER_SIZE) continue;
        rc = read_at(r, b + LOG_HEADER_SIZE, r->block + LOG_HEADER_SIZE, h.len, &got);
        if (rc != WEIR_OK) return rc;
        if (got == h.len && fragment_is_valid(r->block, LOG_HEADER_SIZE + h.len)) {
            *found = 1;
            break;
        }
    }
    r->block_loaded = 0;
    return WEIR_OK;
}

/* Damage at file offset `off`: corruption if anything valid follows it,
 * otherwise a torn tail that ends the log. */
static int damaged(log_reader *r, uint64_t off, size_t next, const char *reason) {
    int found;
    int rc = valid_fragment_follows(r, next, &found);
    if (rc != WEIR_OK) return finish(r, rc);
    if (!found) return finish(r, WEIR_NOT_FOUND);
    weir_set_error(WEIR_CORRUPTION, "corrupted log record in %s at offset %llu: %s", r->file->path,
                   (unsigned long long)off, reason);
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

int log_reader_next(log_reader *r, buf *scratch, slice *record) {
    *record = slice_make(NULL, 0);
    if (r->final_status != WEIR_OK) {
        if (r->final_status == WEIR_NOT_FOUND) return WEIR_NOT_FOUND;
        return weir_error_raise(&r->final_error);
    }
    if (!r->block_loaded) {
        int rc = load_block(r, 0);
        if (rc != WEIR_OK) return finish(r, rc);
    }
    buf_clear(scratch);
    int in_record = 0;
    uint64_t record_start = 0;
    char reason[160];
    for (;;) {
        if (r->block_len - r->pos < LOG_HEADER_SIZE) {
            if (r->block_start + LOG_BLOCK_SIZE < r->file_size) {
                /* A block tail too short for a header is padding. */
                int rc = load_block(r, r->block_start + LOG_BLOCK_SIZE);
                if (rc != WEIR_OK) return finish(r, rc);
                continue;
            }
            /* End of file, possibly inside a header or a fragmented record:
             * either way nothing can follow, so it is a torn tail at worst. */
            return finish(r, WEIR_NOT_FOUND);
        }
        const char *p = r->block + r->pos;
        frag_header h = parse_header(p);
        uint64_t off = r->block_start + r->pos;
        size_t room = r->block_len - r->pos - LOG_HEADER_SIZE;

        if (header_is_zero(&h))
            return damaged(r, off, 0, "zero-filled region where a fragment header was expected");
        if (h.len > room) {
            int past_eof = r->block_len < LOG_BLOCK_SIZE &&
                           r->pos + LOG_HEADER_SIZE + h.len <= LOG_BLOCK_SIZE;
            snprintf(reason, sizeof reason, "fragment length %zu runs past the end of the %s", h.len,
                     past_eof ? "file" : "block");
            return damaged(r, off, next_after_damaged(r, r->pos, &h), reason);
        }
        if (!type_is_known(h.type)) {
            snprintf(reason, sizeof reason, "unknown fragment type %d", h.type);
            return damaged(r, off, next_after_damaged(r, r->pos, &h), reason);
        }
        if (crc32c_unmask(h.masked_crc) != fragment_crc(h.type, p + LOG_HEADER_SIZE, h.len)) {
            snprintf(reason, sizeof reason, "checksum mismatch in %s fragment of %zu bytes",
                     type_name(h.type), h.len);
            return damaged(r, off, next_after_damaged(r, r->pos, &h), reason);
        }

        /* A good fragment: check that it continues the chain. */
        size_t next = r->pos + LOG_HEADER_SIZE + h.len;
        if ((h.type == LOG_FULL || h.type == LOG_FIRST) && in_record) {
            /* A valid fragment follows the unfinished record, so this is
             * not a torn tail. */
            snprintf(reason, sizeof reason,
                     "fragmented record is missing its end; a new record starts at offset %llu",
                     (unsigned long long)off);
            weir_set_error(WEIR_CORRUPTION, "corrupted log record in %s at offset %llu: %s",
                           r->file->path, (unsigned long long)record_start, reason);
            return finish(r, WEIR_CORRUPTION);
        }
        if ((h.type == LOG_MIDDLE || h.type == LOG_LAST) && !in_record) {
            snprintf(reason, sizeof reason, "%s fragment without a preceding FIRST", type_name(h.type));
            return damaged(r, off, next, reason);
        }
        r->pos = next;
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
