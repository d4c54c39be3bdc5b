/*
 * bytes.c -- the weir tool's growable byte buffer and its UTF-8 and hex
 * digit checks (bytes.h).
 */
#include "bytes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int bytes_reserve(bytes *b, size_t extra) {
    if (extra <= b->cap - b->len) return 0;
    if (extra > SIZE_MAX / 2 - b->len || b->len > SIZE_MAX / 2) return -1;
    /* Doubling keeps appends amortised O(1). */
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int bytes_append(bytes *b, const void *data, size_t n) {
    if (n == 0) return 0;
    if (bytes_reserve(b, n) != 0) return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

int bytes_set(bytes *b, const void *data, size_t n) {
    /* A source inside b itself is at most b->len long, so it never needs
     * the buffer to grow; memmove covers the overlap. */
    if (n > b->cap && bytes_reserve(b, n - b->len) != 0) return -1;
    if (n) memmove(b->data, data, n);
    b->len = n;
    return 0;
}

void bytes_free(bytes *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

size_t utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp) {
    unsigned char c = p[0];
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

int utf8_valid(const char *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_sequence(p + i, n - i, &cp);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

int utf8_append(bytes *out, uint32_t cp) {
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xc0 | cp >> 6);
        t[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xe0 | cp >> 12);
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        t[0] = (char)(0xf0 | cp >> 18);
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return bytes_append(out, t, n);
}

int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
