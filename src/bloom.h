/*
 * bloom.h -- cache-local (blocked) bloom filters over user keys.
 *
 * A filter is an array of 64-byte lines followed by a 5-byte trailer
 * (fixed32 number of lines, 1 byte number of probes). A key's hash picks
 * one line and every probe for that key falls in that line, so a lookup
 * touches one cache line.
 */
#ifndef WEIR_BLOOM_H
#define WEIR_BLOOM_H

#include <stddef.h>
#include <stdint.h>

#include "coding.h"

/* 64-bit hash of a key, used for the filter (and nothing on disk depends on
 * anything else). Stable across platforms and versions. */
uint64_t bloom_hash(const void *key, size_t n);

typedef struct bloom_builder {
    int bits_per_key;
    uint64_t *hashes;
    size_t count;
    size_t cap;
} bloom_builder;

void bloom_builder_init(bloom_builder *b, int bits_per_key);
/* 0 on success, -1 if memory ran out. */
int bloom_builder_add(bloom_builder *b, uint64_t hash);
/* Append the filter for every hash added to `out` and reset the builder.
 * With no keys, appends a filter that matches nothing. -1 on OOM. */
int bloom_builder_finish(bloom_builder *b, buf *out);
void bloom_builder_free(bloom_builder *b);

/* 0 if the key with this hash is certainly absent, 1 if it may be present.
 * A malformed filter answers 1 (never a false negative, never a crash). */
int bloom_may_contain(const char *filter, size_t len, uint64_t hash);

#endif
