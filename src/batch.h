/*
 * batch.h -- the write batch representation, shared by weir_write, the
 * write-ahead log (a log record is exactly a batch) and recovery.
 *
 * rep := fixed64 first_sequence | fixed32 count | op*
 * op  := TYPE_DELETION varint32 klen key
 *      | type varint32 klen key varint32 vlen value   (every other type)
 * TYPE_VALUE_TTL values start with a fixed64 expiry in ms since the epoch;
 * in a batch the caller built, that field holds the TTL relative to the
 * write instead, and the write path makes it absolute (batch_rep_resolve).
 * TYPE_RANGE_DELETION: key = start, value = end. TYPE_MERGE: value = operand.
 * The i-th op gets sequence first_sequence + i.
 */
#ifndef WEIR_BATCH_H
#define WEIR_BATCH_H

#include <stdint.h>

#include "coding.h"
#include "weir.h"

#define BATCH_HEADER_SIZE 12

struct weir_batch {
    buf rep; /* always at least BATCH_HEADER_SIZE bytes once created */
    uint32_t relative_ttls; /* TTL ops whose expiry is still relative */
    uint32_t user_merges;   /* merges with user operators (checked at write) */
};

/* Append src's ops to dst (header count updated), turning relative TTLs
 * into expiry times (now_ms + ttl) and, when default_ttl_ms > 0, plain
 * puts into expiring ones. WEIR_NO_MEMORY / WEIR_CORRUPTION. */
int batch_rep_resolve(buf *dst, slice src, uint64_t now_ms, uint64_t default_ttl_ms);

/* Bit 63 of the sequence field of a logged record (sequences use 56 bits):
 * the write asked for an fsync (WEIR_SYNC_FSYNC), and every earlier log was
 * made durable before it was written. Recovery uses it to tell a hole a
 * power cut may leave in unsynced writes from damage: nothing synced can
 * follow such a hole. Never set in a batch a caller holds. */
#define BATCH_SEQ_SYNCED (UINT64_C(1) << 63)

static inline uint64_t batch_rep_sequence(slice rep) { return decode_fixed64(rep.data) & ~BATCH_SEQ_SYNCED; }
static inline int batch_rep_synced(slice rep) { return (decode_fixed64(rep.data) & BATCH_SEQ_SYNCED) != 0; }
/* The sequence field exactly as stored (flag bits included). */
static inline uint64_t batch_rep_sequence_field(slice rep) { return decode_fixed64(rep.data); }
static inline uint32_t batch_rep_count(slice rep) { return decode_fixed32(rep.data + 8); }
static inline void batch_rep_set_sequence(char *rep, uint64_t seq) { encode_fixed64(rep, seq); }

/* Called for each op in order with its sequence number. A non-zero return
 * stops the walk and is returned by batch_rep_iterate. */
typedef int (*batch_op_fn)(void *arg, uint64_t seq, int type, slice key, slice value);

/* Walk a batch representation (fn NULL: only validate it). WEIR_CORRUPTION
 * (message: what is wrong and at which byte of the record) if it is
 * malformed or its count is wrong. */
int batch_rep_iterate(slice rep, batch_op_fn fn, void *arg);

/* For reading ahead of batch_rep_iterate: the key of the op at *p (a
 * position inside a rep's body, which ends at limit), advancing *p past
 * the op. 0 at the end or at anything malformed (batch_rep_iterate is what
 * reports damage). Start at rep.data + BATCH_HEADER_SIZE. */
int batch_rep_next_key(const char **p, const char *limit, slice *key);

/* Append src's ops to dst's rep (header count updated). WEIR_NO_MEMORY on OOM. */
int batch_rep_append(buf *dst, slice src);

/* Initialise an empty rep in b (header only). -1 on OOM. */
int batch_rep_init(buf *b);

#endif
