/*
 * bytes.h -- the weir tool's byte strings: a growable buffer, a borrowed
 * view, and the byte-level checks (UTF-8, hex digits) that its input
 * readers and its output formatting share.
 *
 * The tool is a front end over weir.h, so it keeps these few lines of its
 * own rather than reach into the engine's internal buffer type.
 */
#ifndef WEIR_TOOL_BYTES_H
#define WEIR_TOOL_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Bytes owned by someone else, valid as long as they say. */
typedef struct byte_view {
    const char *data;
    size_t len;
} byte_view;

static inline byte_view byte_view_of(const char *data, size_t len) {
    byte_view v = {data, len};
    return v;
}

/* A growable buffer; all zero (BYTES_INIT) is an empty one. */
typedef struct bytes {
    char *data;
    size_t len, cap;
} bytes;

#define BYTES_INIT {NULL, 0, 0}

/* Room for `extra` more bytes; 0, or -1 when memory runs out. */
int bytes_reserve(bytes *b, size_t extra);
/* Append n bytes; 0, or -1 when memory runs out (b is unchanged then). */
int bytes_append(bytes *b, const void *data, size_t n);
/* Replace the contents; 0 or -1 as for bytes_append. */
int bytes_set(bytes *b, const void *data, size_t n);
static inline void bytes_clear(bytes *b) { b->len = 0; }
static inline byte_view bytes_view(const bytes *b) { return byte_view_of(b->data, b->len); }
void bytes_free(bytes *b);

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at p (n bytes
 * available) with its code point in *cp, or 0 if the bytes there are not
 * valid UTF-8 (overlong forms, surrogates and code points past U+10FFFF
 * are not). */
size_t utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp);
/* 1 if the n bytes are valid UTF-8, else 0. */
int utf8_valid(const char *data, size_t n);
/* Append code point cp (at most U+10FFFF) as UTF-8; 0 or -1 (memory). */
int utf8_append(bytes *out, uint32_t cp);

/* The value of a hex digit (either case), or -1. */
int hex_digit(int c);

#endif
