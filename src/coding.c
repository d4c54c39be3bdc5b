/*
 * coding.c -- varint encoding/decoding and the growable byte buffer used to
 * assemble every on-disk record (see coding.h). Decoders take an explicit
 * limit so corrupt input can never make them read past the end of a block.
 */
#include "coding.h"

#include <stdlib.h>

char *encode_varint32(char *dst, uint32_t v) {
    unsigned char *p = (unsigned char *)dst;
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return (char *)p;
}

char *encode_varint64(char *dst, uint64_t v) {
    unsigned char *p = (unsigned char *)dst;
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return (char *)p;
}

int varint_length(uint64_t v) {
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

const char *decode_varint32(const char *p, const char *limit, uint32_t *v) {
    /* Single-byte values dominate (lengths of short keys), so test that first. */
    if (p < limit && (*(const unsigned char *)p & 0x80) == 0) {
        *v = *(const unsigned char *)p;
        return p + 1;
    }
    uint32_t result = 0;
    for (unsigned shift = 0; shift <= 28 && p < limit; shift += 7) {
        uint32_t byte = *(const unsigned char *)p++;
        if (shift == 28 && byte > 0x0f) return NULL; /* would overflow 32 bits */
        result |= (byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *v = result;
            return p;
        }
    }
    return NULL;
}

const char *decode_varint64(const char *p, const char *limit, uint64_t *v) {
    if (p < limit && (*(const unsigned char *)p & 0x80) == 0) {
        *v = *(const unsigned char *)p;
        return p + 1;
    }
    uint64_t result = 0;
    for (unsigned shift = 0; shift <= 63 && p < limit; shift += 7) {
        uint64_t byte = *(const unsigned char *)p++;
        if (shift == 63 && byte > 0x01) return NULL; /* would overflow 64 bits */
        result |= (byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *v = result;
            return p;
        }
    }
    return NULL;
}

const char *decode_length_prefixed(const char *p, const char *limit, slice *out) {
    uint32_t len;
    p = decode_varint32(p, limit, &len);
    if (p == NULL || (size_t)(limit - p) < len) return NULL;
    *out = slice_make(p, len);
    return p + len;
}

/* ---- buf ---- */

void buf_free(buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int buf_reserve(buf *b, size_t extra) {
    if (extra <= b->cap - b->len) return 0;
    if (extra > SIZE_MAX - b->len) return -1;
    size_t need = b->len + extra;
    /* Doubling keeps appends amortised O(1); start at 64 so tiny buffers do
     * not realloc on every early append. */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *data, size_t n) {
    if (n == 0) return 0;
    if (buf_reserve(b, n) != 0) return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

int buf_set(buf *b, const void *data, size_t n) {
    /* A source inside b itself is at most b->len long, so it never needs the
     * buffer to grow; memmove covers the overlap. */
    if (n > b->cap && buf_reserve(b, n - b->len) != 0) return -1;
    if (n) memmove(b->data, data, n);
    b->len = n;
    return 0;
}

int buf_put_fixed32(buf *b, uint32_t v) {
    if (buf_reserve(b, 4) != 0) return -1;
    encode_fixed32(b->data + b->len, v);
    b->len += 4;
    return 0;
}

int buf_put_fixed64(buf *b, uint64_t v) {
    if (buf_reserve(b, 8) != 0) return -1;
    encode_fixed64(b->data + b->len, v);
    b->len += 8;
    return 0;
}

int buf_put_varint32(buf *b, uint32_t v) {
    if (buf_reserve(b, VARINT32_MAX_BYTES) != 0) return -1;
    b->len = (size_t)(encode_varint32(b->data + b->len, v) - b->data);
    return 0;
}

int buf_put_varint64(buf *b, uint64_t v) {
    if (buf_reserve(b, VARINT64_MAX_BYTES) != 0) return -1;
    b->len = (size_t)(encode_varint64(b->data + b->len, v) - b->data);
    return 0;
}

int buf_put_length_prefixed(buf *b, slice s) {
    if (s.len > UINT32_MAX) return -1;
    if (buf_reserve(b, VARINT32_MAX_BYTES + s.len) != 0) return -1;
    char *p = encode_varint32(b->data + b->len, (uint32_t)s.len);
    if (s.len) memcpy(p, s.data, s.len);
    b->len = (size_t)(p - b->data) + s.len;
    return 0;
}
