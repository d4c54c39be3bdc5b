/*
 * merge.h -- merge operators: read-modify-write done lazily.
 *
 * A merge operand is one operator byte followed by its payload. Operands
 * are stored as TYPE_MERGE entries and folded onto the key's older value
 * when it is read (and by compaction, which may also combine operands of
 * associative built-ins into one). The operator travels with each operand,
 * so one DB can hold counters, maxima and lists side by side.
 *
 * Built-in operators (WEIR_MERGE_* in weir.h):
 *   INT64_ADD / INT64_MAX / INT64_MIN    payload and value: 8-byte LE int64
 *   FLOAT64_ADD / FLOAT64_MAX / FLOAT64_MIN  payload and value: 8-byte LE double
 *   BYTES_MAX / BYTES_MIN                bytewise larger/smaller value wins
 *   LIST_APPEND   payload: fixed32 bound | items; value: items, where items
 *                 are (varint32 length, bytes)*, oldest first, keeping the
 *                 newest `bound` items
 * User operators have ids 128..255 and are registered in the options.
 */
#ifndef WEIR_MERGE_H
#define WEIR_MERGE_H

#include "coding.h"
#include "weir.h"

#define MERGE_USER_FIRST 128

typedef struct merge_user_op {
    weir_merge_fn fn;
    void *arg;
    int registered;
} merge_user_op;

/* Registered user operators, indexed by id - MERGE_USER_FIRST. */
typedef struct merge_registry {
    merge_user_op user[256 - MERGE_USER_FIRST];
} merge_registry;

/* Check an operand before it is written: a known operator and a payload of
 * the right shape. WEIR_INVALID with a message otherwise. */
int merge_check_operand(const merge_registry *reg, slice operand);

/* Fold operands (oldest first) onto base (has_base 0: the key had no
 * value) into out. WEIR_INVALID names the mismatch (e.g. an int64 add on a
 * value that is not 8 bytes). */
int merge_full(const merge_registry *reg, slice key, int has_base, slice base,
               const slice *operands, size_t n, buf *out);

/* Combine operands (oldest first) into one operand when the operator is an
 * associative built-in shared by all of them (the int64 and bytes
 * operators, and list appends whose bounds never grow; not the float
 * operators, whose results depend on grouping). 1 on success (out holds the
 * operand), 0 if they cannot be combined (keep them as they are). */
int merge_partial(const slice *operands, size_t n, buf *out);

#endif
