/*
 * bloom.c -- the key hash and the cache-local bloom filter stored in every
 * table (see bloom.h for the format).
 *
 * The upper 32 bits of a key's hash choose one 64-byte line; the lower 32
 * bits seed the probe sequence inside it, re-mixed by an odd multiplier per
 * probe with the top 9 bits naming the bit. A lookup thus costs one cache
 * miss however many probes there are, at the price of a slightly higher
 * false-positive rate than an unblocked filter (about 1.2x at 10 bits/key).
 *
 * The hash is part of the on-disk format: it must not change, and it reads
 * bytes little-endian explicitly so every platform agrees.
 */
#include "bloom.h"

#include <stdlib.h>

#define BLOOM_LINE_BYTES 64
#define BLOOM_LINE_BITS (BLOOM_LINE_BYTES * 8)
#define BLOOM_TRAILER 5
#define BLOOM_MAX_PROBES 12
/* Highest probe count a reader accepts; larger means a newer format (or
 * garbage), answered conservatively. */
#define BLOOM_READER_MAX_PROBES 30

/* ---- hash ---- */

#define HASH_P1 UINT64_C(0x9E3779B97F4A7C15)
#define HASH_P2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define HASH_P3 UINT64_C(0x165667B19E3779F9)
#define HASH_P4 UINT64_C(0xD6E8FEB86659FD93)
#define HASH_SEED UINT64_C(0x5745495242534545) /* arbitrary, fixed forever */

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t load_le64(const unsigned char *p) {
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

/* Spread a word over all 64 bits before it meets the state, so that input
 * words differing in few bits still disturb the state widely. */
static inline uint64_t hash_word(uint64_t w) {
    w *= HASH_P2;
    w = rotl64(w, 31);
    return w * HASH_P1;
}

uint64_t bloom_hash(const void *key, size_t n) {
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = HASH_SEED ^ ((uint64_t)n * HASH_P3);
    while (n >= 16) {
        /* Two words per round: their multiplies are independent, which
         * keeps the pipeline busy on longer keys. */
        uint64_t a = hash_word(load_le64(p));
        uint64_t b = hash_word(load_le64(p + 8));
        h = rotl64(h ^ a, 27) * HASH_P1 + HASH_P4;
        h = rotl64(h ^ b, 27) * HASH_P1 + HASH_P4;
        p += 16;
        n -= 16;
    }
    if (n >= 8) {
        h = rotl64(h ^ hash_word(load_le64(p)), 27) * HASH_P1 + HASH_P4;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
        /* The length was folded in at the start, so tails with trailing
         * zero bytes still differ from shorter tails. */
        h = rotl64(h ^ hash_word(w ^ HASH_P3), 29) * HASH_P2 + HASH_P4;
    }
    /* Final avalanche (xor-shift-multiply) so every output bit depends on
     * every input bit: the filter uses the top and bottom halves apart. */
    h ^= h >> 33;
    h *= UINT64_C(0xFF51AFD7ED558CCD);
    h ^= h >> 29;
    h *= UINT64_C(0xC4CEB9FE1A85EC53);
    h ^= h >> 32;
    return h;
}

/* ---- filter ---- */

static int probes_for(int bits_per_key) {
    /* k = bits * ln 2 minimises the false-positive rate of a standard filter;
     * beyond 12 the gain in a 512-bit line is nil and each probe costs. */
    int k = (int)(bits_per_key * 0.69 + 0.5);
    if (k < 1) k = 1;
    if (k > BLOOM_MAX_PROBES) k = BLOOM_MAX_PROBES;
    return k;
}

/* Map a 32-bit value uniformly onto [0, n) without a division. */
static inline uint32_t fast_range32(uint32_t x, uint32_t n) {
    return (uint32_t)(((uint64_t)x * n) >> 32);
}

#define PROBE_MULT 0x9E3779B9u /* odd, so each step is a bijection */

void bloom_builder_init(bloom_builder *b, int bits_per_key) {
    b->bits_per_key = bits_per_key < 1 ? 1 : bits_per_key;
    b->hashes = NULL;
    b->count = 0;
    b->cap = 0;
}

int bloom_builder_add(bloom_builder *b, uint64_t hash) {
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        if (cap > SIZE_MAX / sizeof(uint64_t)) return -1;
        uint64_t *h = realloc(b->hashes, cap * sizeof *h);
        if (h == NULL) return -1;
        b->hashes = h;
        b->cap = cap;
    }
    b->hashes[b->count++] = hash;
    return 0;
}

int bloom_builder_finish(bloom_builder *b, buf *out) {
    uint64_t lines64 = 0;
    if (b->count > 0) {
        uint64_t bits = (uint64_t)b->count * (uint64_t)b->bits_per_key;
        lines64 = (bits + BLOOM_LINE_BITS - 1) / BLOOM_LINE_BITS;
        if (lines64 > UINT32_MAX) lines64 = UINT32_MAX;
    }
    uint32_t lines = (uint32_t)lines64;
    int probes = probes_for(b->bits_per_key);
    if (lines64 > (SIZE_MAX - BLOOM_TRAILER) / BLOOM_LINE_BYTES) return -1;
    size_t body = (size_t)lines * BLOOM_LINE_BYTES;
    if (buf_reserve(out, body + BLOOM_TRAILER) != 0) return -1;

    unsigned char *data = (unsigned char *)out->data + out->len;
    memset(data, 0, body);
    for (size_t i = 0; i < b->count; i++) {
        uint64_t h = b->hashes[i];
        unsigned char *line = data + (size_t)fast_range32((uint32_t)(h >> 32), lines) * BLOOM_LINE_BYTES;
        uint32_t g = (uint32_t)h;
        for (int k = 0; k < probes; k++) {
            uint32_t bit = g >> 23; /* top 9 bits: 0..511 */
            line[bit >> 3] |= (unsigned char)(1u << (bit & 7));
            g *= PROBE_MULT;
        }
    }
    encode_fixed32((char *)data + body, lines);
    data[body + 4] = (unsigned char)probes;
    out->len += body + BLOOM_TRAILER;
    b->count = 0;
    return 0;
}

void bloom_builder_free(bloom_builder *b) {
    free(b->hashes);
    b->hashes = NULL;
    b->count = 0;
    b->cap = 0;
}

int bloom_may_contain(const char *filter, size_t len, uint64_t hash) {
    if (filter == NULL || len < BLOOM_TRAILER) return 1;
    size_t body = len - BLOOM_TRAILER;
    uint32_t lines = decode_fixed32(filter + body);
    int probes = (unsigned char)filter[body + 4];
    if (probes < 1 || probes > BLOOM_READER_MAX_PROBES) return 1;
    if ((uint64_t)lines * BLOOM_LINE_BYTES != (uint64_t)body) return 1;
    if (lines == 0) return 0; /* the filter of an empty key set */
    const unsigned char *line =
        (const unsigned char *)filter +
        (size_t)fast_range32((uint32_t)(hash >> 32), lines) * BLOOM_LINE_BYTES;
    uint32_t g = (uint32_t)hash;
    for (int k = 0; k < probes; k++) {
        uint32_t bit = g >> 23;
        if ((line[bit >> 3] & (1u << (bit & 7))) == 0) return 0;
        g *= PROBE_MULT;
    }
    return 1;
}
