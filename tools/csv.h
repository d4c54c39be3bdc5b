/*
 * csv.h -- the weir tool's CSV reader (RFC 4180), for `weir load`: fields
 * in double quotes may hold the delimiter, newlines and "" for a quote;
 * CRLF or LF ends a record; blank lines are skipped.
 */
#ifndef WEIR_TOOL_CSV_H
#define WEIR_TOOL_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "input.h"

/* One record: the bytes of all its fields back to back, and where each
 * ends. All zero is an empty record; csv_record_free releases it. */
typedef struct csv_record {
    bytes data;
    size_t *ends;
    size_t nfields, cap;
} csv_record;

/* Field i (< nfields), valid until the next csv_read. */
byte_view csv_field(const csv_record *r, size_t i);
void csv_record_free(csv_record *r);

/* Read the next record, fields split at `delim`. 1: a record, with *line
 * the line it starts on; 0: end of input (or a read error, left in
 * in->read_errno for the caller); -1: a format error, *err says what
 * ("unterminated quoted field ...", "unexpected character after a closing
 * quote ...", or "out of memory") and *line where. */
int csv_read(input *in, int delim, csv_record *r, uint64_t *line, const char **err);

#endif
