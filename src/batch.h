/*
 * batch.h -- the write batch representation, shared by weir_write, the
 * write-ahead log (a log record is exactly a batch) and recovery.
 *
 * rep := fixed64 first_sequence | fixed32 count | op*
 * op  := TYPE_VALUE    varint32 klen key varint32 vlen value
 *      | TYPE_DELETION varint32 klen key
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
};

static inline uint64_t batch_rep_sequence(slice rep) { return decode_fixed64(rep.data); }
static inline uint32_t batch_rep_count(slice rep) { return decode_fixed32(rep.data + 8); }
static inline void batch_rep_set_sequence(char *rep, uint64_t seq) { encode_fixed64(rep, seq); }

/* Called for each op in order with its sequence number. A non-zero return
 * stops the walk and is returned by batch_rep_iterate. */
typedef int (*batch_op_fn)(void *arg, uint64_t seq, int type, slice key, slice value);

/* Walk a batch representation. WEIR_CORRUPTION (message: what is wrong and
 * at which byte of the record) if it is malformed or its count is wrong. */
int batch_rep_iterate(slice rep, batch_op_fn fn, void *arg);

/* Append src's ops to dst's rep (header count updated). WEIR_NO_MEMORY on OOM. */
int batch_rep_append(buf *dst, slice src);

/* Initialise an empty rep in b (header only). -1 on OOM. */
int batch_rep_init(buf *b);

#endif
