/*
 * dbformat.h -- internal keys and the internal iterator interface.
 *
 * An internal key is the user key followed by an 8-byte little-endian tag,
 * tag = (sequence << 8) | type. Internal keys sort by user key ascending,
 * then tag descending, so the newest version of a key comes first and a
 * seek to (key, seq, TYPE_FOR_SEEK) lands on the newest version visible at
 * sequence seq.
 */
#ifndef WEIR_DBFORMAT_H
#define WEIR_DBFORMAT_H

#include <stdint.h>

#include "coding.h"

enum value_type {
    TYPE_DELETION = 0,
    TYPE_VALUE = 1,
    TYPE_MERGE = 2,        /* value is a merge operand (merge.h) */
    TYPE_VALUE_TTL = 3,    /* value is fixed64 expiry (ms since epoch) | data */
    TYPE_RANGE_DELETION = 4, /* key is the range start, value the end (exclusive) */
    TYPE_MAX_VALID = 4
};
/* Sorts first among entries with equal user key and sequence. */
#define TYPE_FOR_SEEK TYPE_MAX_VALID

#define MAX_SEQUENCE ((UINT64_C(1) << 56) - 1)
#define IKEY_TAG_SIZE 8

static inline uint64_t pack_tag(uint64_t seq, int type) { return (seq << 8) | (uint64_t)type; }

static inline slice ikey_user(slice ikey) { return slice_make(ikey.data, ikey.len - IKEY_TAG_SIZE); }
static inline uint64_t ikey_tag(slice ikey) { return decode_fixed64(ikey.data + ikey.len - IKEY_TAG_SIZE); }
static inline uint64_t ikey_seq(slice ikey) { return ikey_tag(ikey) >> 8; }
static inline int ikey_type(slice ikey) { return (int)(ikey_tag(ikey) & 0xff); }

/* 1 if ikey is well formed (long enough, known type), filling the parts. */
static inline int ikey_parse(slice ikey, slice *user, uint64_t *seq, int *type) {
    if (ikey.len < IKEY_TAG_SIZE) return 0;
    uint64_t tag = ikey_tag(ikey);
    if ((tag & 0xff) > TYPE_MAX_VALID) return 0;
    if (user) *user = ikey_user(ikey);
    if (seq) *seq = tag >> 8;
    if (type) *type = (int)(tag & 0xff);
    return 1;
}

/* Internal key order (see top of file). Both must be >= 8 bytes. */
static inline int ikey_compare(slice a, slice b) {
    int r = slice_compare(ikey_user(a), ikey_user(b));
    if (r == 0) {
        uint64_t ta = ikey_tag(a), tb = ikey_tag(b);
        r = (ta > tb) ? -1 : (ta < tb);
    }
    return r;
}

/* Append user key + tag to b; -1 on OOM. */
int ikey_append(buf *b, slice user, uint64_t seq, int type);

/* ---- internal iterators ---------------------------------------------------
 * Iterators over internal keys (memtables, blocks, tables, levels, merges).
 * key() returns an internal key; key()/value() stay valid until the
 * iterator moves. status() returns WEIR_OK or the error that stopped it; on
 * error it also re-raises the error message into the calling thread. */
typedef struct iter iter;

struct iter_ops {
    int (*valid)(const iter *it);
    void (*seek_first)(iter *it);
    void (*seek_last)(iter *it);
    void (*seek)(iter *it, slice target); /* first entry >= target */
    void (*next)(iter *it);
    void (*prev)(iter *it);
    slice (*key)(const iter *it);
    slice (*value)(const iter *it);
    int (*status)(const iter *it);
    void (*destroy)(iter *it);
};

struct iter {
    const struct iter_ops *ops;
};

static inline int iter_valid(const iter *it) { return it->ops->valid(it); }
static inline void iter_seek_first(iter *it) { it->ops->seek_first(it); }
static inline void iter_seek_last(iter *it) { it->ops->seek_last(it); }
static inline void iter_seek(iter *it, slice t) { it->ops->seek(it, t); }
static inline void iter_next(iter *it) { it->ops->next(it); }
static inline void iter_prev(iter *it) { it->ops->prev(it); }
static inline slice iter_key(const iter *it) { return it->ops->key(it); }
static inline slice iter_value(const iter *it) { return it->ops->value(it); }
static inline int iter_status(const iter *it) { return it->ops->status(it); }
static inline void iter_destroy(iter *it) { if (it) it->ops->destroy(it); }

/* An iterator that is never valid and reports `code` with the calling
 * thread's current message (code WEIR_OK: simply empty). NULL on OOM. */
iter *iter_new_error(int code);

#endif
