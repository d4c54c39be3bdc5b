/*
 * coding.h -- byte slices, a growable buffer, and the fixed-width
 * (little-endian) and varint encodings used by every on-disk format.
 */
#ifndef WEIR_CODING_H
#define WEIR_CODING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct slice {
    const char *data;
    size_t len;
} slice;

static inline slice slice_make(const void *data, size_t len) {
    slice s = {(const char *)data, len};
    return s;
}

/* Bytewise order: memcmp, then the shorter slice first. */
static inline uint64_t load_be64(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline int slice_compare(slice a, slice b) {
    size_t n = a.len < b.len ? a.len : b.len;
    /* Keys are mostly short: compare the first 32 bytes as big-endian
     * words inline (two loads and a compare each) rather than call memcmp,
     * which dominated point lookups with 16-byte keys. */
    size_t i = 0;
    for (; i + 8 <= n && i < 32; i += 8) {
        uint64_t x = load_be64(a.data + i), y = load_be64(b.data + i);
        if (x != y) return x < y ? -1 : 1;
    }
    int r = i < n ? memcmp(a.data + i, b.data + i, n - i) : 0;
    if (r == 0) r = (a.len < b.len) ? -1 : (a.len > b.len);
    return r;
}

static inline int slice_equal(slice a, slice b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static inline int slice_starts_with(slice s, slice prefix) {
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.data, prefix.data, prefix.len) == 0);
}

/* ---- fixed-width little-endian ---- */

static inline void encode_fixed32(char *dst, uint32_t v) {
    unsigned char *p = (unsigned char *)dst;
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void encode_fixed64(char *dst, uint64_t v) {
    encode_fixed32(dst, (uint32_t)v);
    encode_fixed32(dst + 4, (uint32_t)(v >> 32));
}

static inline uint32_t decode_fixed32(const char *src) {
    const unsigned char *p = (const unsigned char *)src;
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t decode_fixed64(const char *src) {
    return (uint64_t)decode_fixed32(src) | ((uint64_t)decode_fixed32(src + 4) << 32);
}

/* ---- varints (7 bits a byte, low group first, high bit = more) ---- */

#define VARINT32_MAX_BYTES 5
#define VARINT64_MAX_BYTES 10

/* Write v at dst; return the byte after it. */
char *encode_varint32(char *dst, uint32_t v);
char *encode_varint64(char *dst, uint64_t v);
int varint_length(uint64_t v);

/* Decode from [p, limit). Return the byte after the varint, or NULL if it
 * is truncated or longer than the type allows (never reads past limit). */
const char *decode_varint32(const char *p, const char *limit, uint32_t *v);
const char *decode_varint64(const char *p, const char *limit, uint64_t *v);

/* Decode a varint32 length followed by that many bytes from [p, limit). */
const char *decode_length_prefixed(const char *p, const char *limit, slice *out);

/* ---- growable byte buffer ---- */

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf;

#define BUF_INIT {NULL, 0, 0}

void buf_free(buf *b);
static inline void buf_clear(buf *b) { b->len = 0; }
static inline slice buf_slice(const buf *b) { return slice_make(b->data, b->len); }
/* Each returns 0 on success, -1 if memory ran out (b unchanged then). */
int buf_reserve(buf *b, size_t extra);
int buf_append(buf *b, const void *data, size_t n);
int buf_set(buf *b, const void *data, size_t n); /* replace contents */
int buf_put_fixed32(buf *b, uint32_t v);
int buf_put_fixed64(buf *b, uint64_t v);
int buf_put_varint32(buf *b, uint32_t v);
int buf_put_varint64(buf *b, uint64_t v);
int buf_put_length_prefixed(buf *b, slice s); /* varint32 len + bytes */

#endif
