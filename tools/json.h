/*
 * json.h -- the weir tool's JSON-lines reader, for `weir load`: it checks
 * that a line is one JSON object (RFC 8259, UTF-8) and picks the named
 * members of its top level, a string member unescaped. It is a validator
 * and picker, not a document model: nothing else of the line is kept.
 *
 * Refused, with the 1-based byte column where the problem starts: any
 * syntax error, nesting deeper than JSON_MAX_DEPTH, bytes that are not
 * UTF-8 inside a string, a lone or unpaired surrogate escape, and a picked
 * member named twice (readers disagree on which one counts, so neither is
 * taken).
 */
#ifndef WEIR_TOOL_JSON_H
#define WEIR_TOOL_JSON_H

#include <stddef.h>

#include "bytes.h"

#define JSON_MAX_DEPTH 256

enum json_type { JSON_STRING, JSON_NUMBER, JSON_LITERAL, JSON_OBJECT, JSON_ARRAY };

/* A member to pick. Set name (NULL: matches nothing); json_pick sets the
 * rest. Free `decoded` with bytes_free when done. */
typedef struct json_member {
    const char *name;
    int found;       /* the object has it */
    int type;        /* JSON_*, when found */
    byte_view raw;   /* the value's JSON text, inside the line */
    bytes decoded;   /* a JSON_STRING's value, unescaped */
} json_member;

/* Why a line was refused: a message (a string constant; "out of memory"
 * too) and the 1-based byte column where the problem starts. */
typedef struct json_error {
    const char *message;
    size_t column;
} json_error;

/* Check that `line` holds one JSON object (white space around it allowed)
 * and fill the n members. 0, or -1 with *err set. `scratch` is a buffer
 * the caller keeps across lines (for member names). Several members may
 * have the same name: each gets the value. */
int json_pick(byte_view line, json_member *members, int n, bytes *scratch, json_error *err);

#endif
