/*
 * block.c -- building, validating and iterating sorted key/value blocks
 * (format in block.h). Owns prefix compression with restart points and the
 * block iterator used for both data and index blocks.
 *
 * The iterator treats the block as hostile input: every length is checked
 * against the entry region before it is used, so a damaged block can make
 * the iterator stop with corrupt=1, never make it read outside the block.
 */
#include "block.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

/* ---- builder ----------------------------------------------------------- */

void block_builder_init(block_builder *b, int restart_interval) {
    memset(b, 0, sizeof *b);
    b->restart_interval = restart_interval < 1 ? 1 : restart_interval;
}

void block_builder_init_hashed(block_builder *b, int restart_interval) {
    block_builder_init(b, restart_interval);
    b->hash_index = 1;
}

void block_builder_free(block_builder *b) {
    buf_free(&b->data);
    buf_free(&b->last_key);
    free(b->restarts);
    free(b->entry_hash);
    free(b->entry_restart);
    b->restarts = NULL;
    b->entry_hash = b->entry_restart = NULL;
    b->num_restarts = b->restarts_cap = 0;
    b->num_entries = b->entries_cap = 0;
}

void block_builder_reset(block_builder *b) {
    buf_clear(&b->data);
    buf_clear(&b->last_key);
    b->num_restarts = 0;
    b->num_entries = 0;
    b->counter = 0;
    b->finished = 0;
    b->oom = 0;
}

static size_t common_prefix(slice a, slice b) {
    size_t n = a.len < b.len ? a.len : b.len;
    size_t i = 0;
    while (i < n && a.data[i] == b.data[i]) i++;
    return i;
}

int block_builder_add_hashed(block_builder *b, slice key, slice value, uint64_t key_hash) {
    if (b->oom || b->finished) return -1;
    if (b->num_entries == b->entries_cap) {
        size_t cap = b->entries_cap ? b->entries_cap * 2 : 64;
        uint32_t *h = realloc(b->entry_hash, cap * sizeof *h);
        if (h) b->entry_hash = h;
        uint32_t *r = h ? realloc(b->entry_restart, cap * sizeof *r) : NULL;
        if (r) b->entry_restart = r;
        if (!h || !r) {
            b->oom = 1;
            return -1;
        }
        b->entries_cap = cap;
    }
    if (block_builder_add(b, key, value) != 0) return -1;
    b->entry_hash[b->num_entries] = (uint32_t)(key_hash >> 32);
    b->entry_restart[b->num_entries] = (uint32_t)b->num_restarts - 1;
    b->num_entries++;
    return 0;
}

/* The hash index fits: restart numbers fit a byte, bucket count 16 bits. */
static int hash_index_fits(const block_builder *b) {
    return b->hash_index && b->num_entries > 0 && b->num_restarts <= BLOCK_HASH_MAX_RESTARTS &&
           BLOCK_HASH_BUCKETS(b->num_entries) <= UINT16_MAX;
}

static size_t hash_index_size(const block_builder *b) {
    return hash_index_fits(b) ? BLOCK_HASH_BUCKETS(b->num_entries) + 2 : 0;
}

int block_builder_add(block_builder *b, slice key, slice value) {
    if (b->oom || b->finished) return -1;
    int restart = b->num_restarts == 0 || b->counter >= b->restart_interval;
    size_t shared = restart ? 0 : common_prefix(buf_slice(&b->last_key), key);
    size_t unshared = key.len - shared;

    /* Offsets inside a block are 32-bit; refuse an entry that would push the
     * finished block past that rather than write a block nobody can read. */
    uint64_t after = (uint64_t)b->data.len + 3 * VARINT32_MAX_BYTES + unshared + value.len +
                     4 * ((uint64_t)b->num_restarts + 2);
    if (after > UINT32_MAX || key.len > UINT32_MAX || value.len > UINT32_MAX) {
        b->oom = 1;
        return -1;
    }

    /* Reserve everything first so a failure leaves the block unchanged. */
    if (restart && b->num_restarts == b->restarts_cap) {
        size_t cap = b->restarts_cap ? b->restarts_cap * 2 : 16;
        uint32_t *r = realloc(b->restarts, cap * sizeof *r);
        if (!r) goto oom;
        b->restarts = r;
        b->restarts_cap = cap;
    }
    if (buf_reserve(&b->data, 3 * VARINT32_MAX_BYTES + unshared + value.len) != 0) goto oom;
    if (key.len > b->last_key.len && buf_reserve(&b->last_key, key.len - b->last_key.len) != 0)
        goto oom;

    if (restart) {
        b->restarts[b->num_restarts++] = (uint32_t)b->data.len;
        b->counter = 0;
    }
    char *p = b->data.data + b->data.len;
    p = encode_varint32(p, (uint32_t)shared);
    p = encode_varint32(p, (uint32_t)unshared);
    p = encode_varint32(p, (uint32_t)value.len);
    if (unshared) memcpy(p, key.data + shared, unshared);
    p += unshared;
    if (value.len) memcpy(p, value.data, value.len);
    p += value.len;
    b->data.len = (size_t)(p - b->data.data);

    if (unshared) memcpy(b->last_key.data + shared, key.data + shared, unshared);
    b->last_key.len = key.len;
    b->counter++;
    return 0;
oom:
    b->oom = 1;
    return -1;
}

size_t block_builder_size_estimate(const block_builder *b) {
    return b->data.len + 4 * b->num_restarts + 4 + hash_index_size(b);
}

/* Fill the buckets: each holds the interval of the first key hashed to it
 * (keys come in order, so a key's versions count from its first). */
static void put_hash_index(block_builder *b) {
    uint32_t n = (uint32_t)BLOCK_HASH_BUCKETS(b->num_entries);
    uint8_t *buckets = (uint8_t *)b->data.data + b->data.len;
    memset(buckets, BLOCK_HASH_EMPTY, n);
    for (size_t i = 0; i < b->num_entries; i++) {
        uint8_t *slot = &buckets[block_hash_bucket((uint64_t)b->entry_hash[i] << 32, n)];
        uint8_t restart = (uint8_t)b->entry_restart[i];
        if (*slot == BLOCK_HASH_EMPTY) *slot = restart;
    }
    b->data.len += n;
    char count[2] = {(char)(n & 0xff), (char)(n >> 8)};
    memcpy(b->data.data + b->data.len, count, 2);
    b->data.len += 2;
}

slice block_builder_finish(block_builder *b) {
    if (b->oom || buf_reserve(&b->data, 4 * b->num_restarts + 4 + hash_index_size(b)) != 0) {
        b->oom = 1;
        return slice_make(NULL, 0);
    }
    if (!b->finished) {
        int hashed = hash_index_fits(b);
        for (size_t i = 0; i < b->num_restarts; i++) buf_put_fixed32(&b->data, b->restarts[i]);
        if (hashed) put_hash_index(b);
        buf_put_fixed32(&b->data, (uint32_t)b->num_restarts | (hashed ? BLOCK_HASHED_FLAG : 0));
        b->finished = 1;
    }
    return buf_slice(&b->data);
}

/* ---- parse ------------------------------------------------------------- */

int block_parse(block *b, const char *data, size_t size) {
    if (size < 4 || size > UINT32_MAX)
        return weir_set_error(WEIR_CORRUPTION, "bad block: size %zu is out of range", size);
    uint32_t num = decode_fixed32(data + size - 4);
    const uint8_t *buckets = NULL;
    uint32_t num_buckets = 0;
    size_t tail = 4; /* bytes after the restart array */
    if (num & BLOCK_HASHED_FLAG) {
        num &= ~BLOCK_HASHED_FLAG;
        if (size < 6)
            return weir_set_error(WEIR_CORRUPTION, "bad block: %zu bytes hold no hash index", size);
        num_buckets = (uint32_t)(unsigned char)data[size - 6] | (uint32_t)(unsigned char)data[size - 5] << 8;
        if (num_buckets == 0 || num == 0 || num > BLOCK_HASH_MAX_RESTARTS || num_buckets > size - 6)
            return weir_set_error(WEIR_CORRUPTION,
                                  "bad block: a hash index of %u buckets over %u restart points "
                                  "does not fit in %zu bytes", num_buckets, num, size);
        tail = 6 + num_buckets;
        buckets = (const uint8_t *)data + size - tail;
    }
    if (num > (size - tail) / 4)
        return weir_set_error(WEIR_CORRUPTION,
                              "bad block: %u restart points do not fit in %zu bytes", num, size);
    uint32_t restarts_off = (uint32_t)(size - tail - 4 * (size_t)num);
    if (restarts_off == 0) {
        num = 0; /* no entries: whatever the restart array says is moot */
    } else {
        if (num == 0)
            return weir_set_error(WEIR_CORRUPTION,
                                  "bad block: %u bytes of entries but no restart point",
                                  restarts_off);
        uint32_t first = decode_fixed32(data + restarts_off);
        uint32_t last = decode_fixed32(data + restarts_off + 4 * (num - 1));
        if (first != 0 || last >= restarts_off)
            return weir_set_error(WEIR_CORRUPTION,
                                  "bad block: restart points [%u..%u] outside entries [0, %u)",
                                  first, last, restarts_off);
    }
    if (buckets && restarts_off == 0)
        return weir_set_error(WEIR_CORRUPTION, "bad block: a hash index over no entries");
    b->data = data;
    b->size = size;
    b->restarts_off = restarts_off;
    b->num_restarts = num;
    b->buckets = buckets;
    b->num_buckets = num_buckets;
    return WEIR_OK;
}

/* ---- iterator ---------------------------------------------------------- */

static inline uint32_t restart_point(const block *b, uint32_t i) {
    return decode_fixed32(b->data + b->restarts_off + 4 * (size_t)i);
}

/* Decode an entry header at p (entries end at limit). Returns the start of
 * the key delta, or NULL if the header or the lengths it claims do not fit. */
static inline const char *decode_entry(const char *p, const char *limit, uint32_t *shared,
                                       uint32_t *unshared, uint32_t *vlen) {
    if (limit - p < 3) return NULL;
    const unsigned char *u = (const unsigned char *)p;
    if ((u[0] | u[1] | u[2]) < 128) {
        /* Common case: all three lengths fit in one byte each. */
        *shared = u[0];
        *unshared = u[1];
        *vlen = u[2];
        p += 3;
    } else {
        if (!(p = decode_varint32(p, limit, shared))) return NULL;
        if (!(p = decode_varint32(p, limit, unshared))) return NULL;
        if (!(p = decode_varint32(p, limit, vlen))) return NULL;
    }
    if ((uint64_t)(limit - p) < (uint64_t)*unshared + *vlen) return NULL;
    return p;
}

static void make_invalid(block_iter *it) {
    it->current = it->blk->restarts_off;
    it->restart_index = it->blk->num_restarts;
    it->key.len = 0;
    it->value = slice_make(NULL, 0);
}

static void mark_corrupt(block_iter *it, uint32_t offset) {
    it->corrupt = 1;
    it->corrupt_offset = offset;
    make_invalid(it);
}

static inline int dead(const block_iter *it) { return it->corrupt || it->oom; }

/* Grow the key buffer to hold need bytes, keeping its first `shared`. */
static int key_grow(block_iter *it, uint32_t shared, size_t need) {
    size_t cap = it->key.cap * 2;
    if (cap < need) cap = need;
    if (cap < 64) cap = 64;
    char *p;
    if (it->key.data == it->scratch) {
        p = malloc(cap);
        if (p && shared) memcpy(p, it->key.data, shared);
    } else {
        p = realloc(it->key.data, cap);
    }
    if (!p) return 0;
    it->key.data = p;
    it->key.cap = cap;
    return 1;
}

/* Make the key shared bytes of the current key plus n bytes at delta
 * (readable up to end). A short delta, the common case, is copied as one
 * fixed 16 bytes when source and buffer have room: two moves instead of a
 * call into memcpy, which was a fifth of decoding an entry. */
static inline int key_assign(block_iter *it, uint32_t shared, const char *delta, uint32_t n,
                             const char *end) {
    size_t need = (size_t)shared + n;
    if (need > it->key.cap && !key_grow(it, shared, need)) return 0;
    if (n) { /* an empty key may have no buffer yet: no pointer arithmetic on it */
        char *dst = it->key.data + shared;
        if (n <= 16 && shared + 16 <= it->key.cap && end - delta >= 16) memcpy(dst, delta, 16);
        else memcpy(dst, delta, n);
    }
    it->key.len = need;
    return 1;
}

/* Decode the entry at next_offset and make it current; 0 when there is none
 * (end of entries, corruption, or no memory), leaving the iterator invalid. */
static inline int parse_next(block_iter *it) {
    const block *b = it->blk;
    uint32_t off = it->next_offset;
    if (off >= b->restarts_off) {
        make_invalid(it);
        return 0;
    }
    uint32_t shared, unshared, vlen;
    const char *p = decode_entry(b->data + off, b->data + b->restarts_off, &shared, &unshared, &vlen);
    if (!p || shared > it->key.len) {
        mark_corrupt(it, off);
        return 0;
    }
    if (!key_assign(it, shared, p, unshared, b->data + b->size)) {
        it->oom = 1;
        make_invalid(it);
        return 0;
    }
    it->current = off;
    it->value = slice_make(p + unshared, vlen);
    it->next_offset = (uint32_t)(p + unshared + vlen - b->data);
    while (it->restart_index + 1 < b->num_restarts && restart_point(b, it->restart_index + 1) <= off)
        it->restart_index++;
    return 1;
}

static int seek_to_restart(block_iter *it, uint32_t index) {
    uint32_t off = restart_point(it->blk, index);
    if (off >= it->blk->restarts_off) {
        mark_corrupt(it, it->blk->restarts_off + 4 * index);
        return 0;
    }
    it->key.len = 0;
    it->restart_index = index;
    it->next_offset = off;
    return 1;
}

struct block_prev_entry {
    uint32_t current, next_offset;
    uint32_t key_off, key_len; /* in pc_keys */
    uint32_t value_off, value_len; /* block offsets */
};

void block_iter_init_scratch(block_iter *it, const block *blk, key_compare_fn cmp, char *scratch,
                             size_t cap) {
    memset(it, 0, sizeof *it);
    it->pc_restart = UINT32_MAX;
    it->base.ops = &block_iter_ops;
    it->blk = blk;
    it->cmp = cmp;
    if (scratch && cap) {
        it->scratch = scratch;
        it->key.data = scratch;
        it->key.cap = cap;
    }
    make_invalid(it);
}

void block_iter_init(block_iter *it, const block *blk, key_compare_fn cmp) {
    block_iter_init_scratch(it, blk, cmp, NULL, 0);
}

void block_iter_rebind(block_iter *it, const block *blk) {
    it->blk = blk;
    it->corrupt = 0;
    it->oom = 0;
    it->corrupt_offset = 0;
    it->pc_restart = UINT32_MAX;
    it->pc_count = 0;
    it->pc_data = NULL;
    make_invalid(it);
}

void block_iter_free(block_iter *it) {
    free(it->pc);
    it->pc = NULL;
    it->pc_count = it->pc_cap = 0;
    it->pc_restart = UINT32_MAX;
    buf_free(&it->pc_keys);
    if (it->key.data != it->scratch) free(it->key.data);
    /* Capacity 0 makes any later key move to the heap, never back into a
     * scratch area whose size is no longer known. */
    it->key.data = it->scratch;
    it->key.len = 0;
    it->key.cap = 0;
    if (it->cleanup) {
        void (*fn)(void *) = it->cleanup;
        it->cleanup = NULL;
        fn(it->cleanup_arg);
    }
}


void block_iter_seek_first(block_iter *it) {
    if (dead(it)) return;
    if (it->blk->num_restarts == 0) {
        make_invalid(it);
        return;
    }
    if (seek_to_restart(it, 0)) parse_next(it);
}

void block_iter_seek_last(block_iter *it) {
    if (dead(it)) return;
    const block *b = it->blk;
    if (b->num_restarts == 0) {
        make_invalid(it);
        return;
    }
    if (!seek_to_restart(it, b->num_restarts - 1)) return;
    do {
        if (!parse_next(it)) return;
    } while (it->next_offset < b->restarts_off);
}

int block_restart_entry(const block *b, uint32_t i, slice *key, slice *value) {
    if (i >= b->num_restarts) return 0;
    uint32_t off = restart_point(b, i);
    if (off >= b->restarts_off) return 0;
    uint32_t shared, unshared, vlen;
    const char *p = decode_entry(b->data + off, b->data + b->restarts_off, &shared, &unshared, &vlen);
    if (!p || shared != 0) return 0;
    *key = slice_make(p, unshared);
    *value = slice_make(p + unshared, vlen);
    return 1;
}

void block_iter_seek_to_restart(block_iter *it, uint32_t i) {
    if (dead(it)) return;
    if (i >= it->blk->num_restarts) {
        mark_corrupt(it, it->blk->restarts_off);
        return;
    }
    if (seek_to_restart(it, i)) parse_next(it);
}

/* Seek among restart intervals [left, right]: the answer (first entry >=
 * target) is known to lie in them or just after right's interval, and
 * every entry before left's interval is < target. */
static void seek_in(block_iter *it, slice target, uint32_t left, uint32_t right) {
    const block *b = it->blk;
    const char *limit = b->data + b->restarts_off;
    /* Find the last restart whose key is < target; entries before it are
     * all smaller, so the scan can start there. */
    while (left < right) {
        uint32_t mid = left + (right - left + 1) / 2;
        uint32_t off = restart_point(b, mid);
        if (off >= b->restarts_off) {
            mark_corrupt(it, b->restarts_off + 4 * mid);
            return;
        }
        uint32_t shared, unshared, vlen;
        const char *p = decode_entry(b->data + off, limit, &shared, &unshared, &vlen);
        if (!p || shared != 0) {
            mark_corrupt(it, off);
            return;
        }
        if (it->cmp(slice_make(p, unshared), target) < 0)
            left = mid;
        else
            right = mid - 1;
    }
    if (!seek_to_restart(it, left)) return;
    while (parse_next(it)) {
        if (it->cmp(buf_slice(&it->key), target) >= 0) return;
    }
}

void block_iter_seek(block_iter *it, slice target) {
    if (dead(it)) return;
    if (it->blk->num_restarts == 0) {
        make_invalid(it);
        return;
    }
    seek_in(it, target, 0, it->blk->num_restarts - 1);
}

/* The internal-key order, inline: blocks with a hash index hold internal
 * keys. Keys of a damaged block may be shorter than a tag; those compare
 * bytewise, as the table layer's comparator does. */
static inline int ikey_order(slice a, slice b) {
    if (a.len < IKEY_TAG_SIZE || b.len < IKEY_TAG_SIZE) return slice_compare(a, b);
    return ikey_compare(a, b);
}

/* A seek through the hash index. `exact`: a seek's answer is needed even
 * when the target's user key is absent, so an empty bucket falls back to
 * the binary search; a point lookup (not exact) takes any later key then. */
static void seek_hashed(block_iter *it, slice target, uint64_t key_hash, int exact) {
    if (dead(it)) return;
    const block *b = it->blk;
    if (!b->buckets) {
        block_iter_seek(it, target);
        return;
    }
    uint32_t hint = b->buckets[block_hash_bucket(key_hash, b->num_buckets)];
    uint32_t last = b->num_restarts - 1;
    /* Empty: the key is not here. The last interval still answers a target
     * past the block's last key (a separator may exceed it), which must
     * leave the iterator invalid so the lookup goes on to the next block. */
    int absent = hint == BLOCK_HASH_EMPTY;
    if (absent && exact) {
        block_iter_seek(it, target);
        return;
    }
    if (absent) hint = last;
    if (hint > last) {
        mark_corrupt(it, b->restarts_off);
        return;
    }
    if (!seek_to_restart(it, hint) || !parse_next(it)) return;
    /* The hinted interval starts with the target's user key (its newest
     * version: the builder hints at the interval where a key starts), or
     * with a smaller one: scan. A larger one means the hint was another
     * key's: search before it. */
    slice first = buf_slice(&it->key);
    if (!absent && first.len >= IKEY_TAG_SIZE && target.len >= IKEY_TAG_SIZE &&
        slice_compare(ikey_user(first), ikey_user(target)) > 0) {
        if (hint == 0) return; /* the first entry is the answer */
        seek_in(it, target, 0, hint - 1);
        return;
    }
    do {
        if (ikey_order(buf_slice(&it->key), target) >= 0) return;
        if (!absent && it->restart_index != hint) {
            /* Past the hinted interval: the answer lies beyond it. */
            seek_in(it, target, it->restart_index, last);
            return;
        }
    } while (parse_next(it));
}

void block_iter_seek_for_get(block_iter *it, slice target, uint64_t key_hash) {
    seek_hashed(it, target, key_hash, 0);
}

void block_iter_seek_hashed(block_iter *it, slice target, uint64_t key_hash) {
    seek_hashed(it, target, key_hash, 1);
}

void block_iter_next(block_iter *it) {
    if (!block_iter_valid(it)) return;
    parse_next(it);
}

/* Decode every entry of restart interval `index` into the prev cache.
 * 0 on failure (the iterator is then dead). */
static int fill_prev_cache(block_iter *it, uint32_t index) {
    const block *b = it->blk;
    it->pc_restart = UINT32_MAX;
    it->pc_count = 0;
    buf_clear(&it->pc_keys);
    if (!seek_to_restart(it, index)) return 0;
    uint32_t end = index + 1 < b->num_restarts ? restart_point(b, index + 1) : b->restarts_off;
    do {
        if (!parse_next(it)) return 0;
        if (it->pc_count == it->pc_cap) {
            uint32_t cap = it->pc_cap ? it->pc_cap * 2 : 32;
            struct block_prev_entry *grown = realloc(it->pc, cap * sizeof *grown);
            if (!grown) {
                it->oom = 1;
                make_invalid(it);
                return 0;
            }
            it->pc = grown;
            it->pc_cap = cap;
        }
        struct block_prev_entry *e = &it->pc[it->pc_count++];
        e->current = it->current;
        e->next_offset = it->next_offset;
        e->key_off = (uint32_t)it->pc_keys.len;
        e->key_len = (uint32_t)it->key.len;
        e->value_off = (uint32_t)(it->value.data - b->data);
        e->value_len = (uint32_t)it->value.len;
        if (buf_append(&it->pc_keys, it->key.data, it->key.len) != 0) {
            it->oom = 1;
            make_invalid(it);
            return 0;
        }
    } while (it->next_offset < end);
    it->pc_restart = index;
    it->pc_data = b->data;
    /* A reverse scan reads the interval before this one next. The CPU's
     * own prefetcher follows ascending addresses well but not this
     * backward walk, and the first touch of each interval was two thirds
     * of a backward step's time: start loading it now. */
    if (index > 0) {
        uint32_t from = restart_point(b, index - 1), to = restart_point(b, index);
        if (from < to && to <= b->restarts_off)
            for (uint32_t off = from; off < to; off += 64) __builtin_prefetch(b->data + off);
    }
    return 1;
}

/* Make cached entry i current. */
static int use_prev_entry(block_iter *it, uint32_t i) {
    const struct block_prev_entry *e = &it->pc[i];
    it->key.len = 0;
    /* Empty keys leave pc_keys unallocated, and NULL + 0 is undefined. */
    const char *k = e->key_len ? it->pc_keys.data + e->key_off : "";
    if (!key_assign(it, 0, k, e->key_len, k + e->key_len)) {
        it->oom = 1;
        make_invalid(it);
        return 0;
    }
    it->current = e->current;
    it->next_offset = e->next_offset;
    it->restart_index = it->pc_restart;
    it->value = slice_make(it->blk->data + e->value_off, e->value_len);
    return 1;
}

void block_iter_prev(block_iter *it) {
    if (!block_iter_valid(it)) return;
    const block *b = it->blk;
    uint32_t original = it->current;
    if (it->pc_restart != UINT32_MAX && it->pc_data == b->data && it->pc_restart == it->restart_index) {
        /* Within the cached interval: step to the previous cached entry. */
        for (uint32_t i = it->pc_count; i-- > 1;) {
            if (it->pc[i].current == original) {
                use_prev_entry(it, i - 1);
                return;
            }
        }
    }
    uint32_t index = it->restart_index;
    if (index >= b->num_restarts) index = b->num_restarts - 1;
    /* Back up to the restart point that starts before the current entry. */
    while (restart_point(b, index) >= original) {
        if (index == 0) {
            make_invalid(it);
            return;
        }
        index--;
    }
    /* Cache the interval, then take its last entry before `original`. */
    if (!fill_prev_cache(it, index)) return;
    uint32_t i = it->pc_count;
    while (i > 0 && it->pc[i - 1].current >= original) i--;
    if (i == 0) {
        /* The restart array lies about entry boundaries: re-scan plainly. */
        mark_corrupt(it, original);
        return;
    }
    use_prev_entry(it, i - 1);
}

int block_iter_status(const block_iter *it) {
    if (it->corrupt)
        return weir_set_error(WEIR_CORRUPTION, "bad block entry at block offset %u",
                              it->corrupt_offset);
    if (it->oom) return weir_set_error(WEIR_NO_MEMORY, "out of memory rebuilding a block key");
    return WEIR_OK;
}

/* ---- iter_ops glue ----------------------------------------------------- */

typedef struct block_iter_heap {
    block_iter it;
    block blk; /* the iterator's own copy, so callers need not keep theirs */
} block_iter_heap;

static int ops_valid(const iter *it) { return block_iter_valid((const block_iter *)it); }
static void ops_seek_first(iter *it) { block_iter_seek_first((block_iter *)it); }
static void ops_seek_last(iter *it) { block_iter_seek_last((block_iter *)it); }
static void ops_seek(iter *it, slice target) { block_iter_seek((block_iter *)it, target); }
static void ops_next(iter *it) { block_iter_next((block_iter *)it); }
static void ops_prev(iter *it) { block_iter_prev((block_iter *)it); }
static slice ops_key(const iter *it) { return buf_slice(&((const block_iter *)it)->key); }
static slice ops_value(const iter *it) { return ((const block_iter *)it)->value; }
static int ops_status(const iter *it) { return block_iter_status((const block_iter *)it); }

/* Only heap iterators (block_iter_create) are destroyed through the ops;
 * a stack iterator is released with block_iter_free. */
static void ops_destroy(iter *it) {
    block_iter_heap *h = (block_iter_heap *)it;
    block_iter_free(&h->it);
    free(h);
}

const struct iter_ops block_iter_ops = {
    ops_valid, ops_seek_first, ops_seek_last, ops_seek, ops_next,
    ops_prev,  ops_key,        ops_value,     ops_status, ops_destroy,
};

iter *block_iter_create(const block *blk, key_compare_fn cmp, void (*cleanup)(void *),
                        void *cleanup_arg) {
    block_iter_heap *h = malloc(sizeof *h);
    if (!h) {
        if (cleanup) cleanup(cleanup_arg);
        return NULL;
    }
    h->blk = *blk;
    block_iter_init(&h->it, &h->blk, cmp);
    h->it.cleanup = cleanup;
    h->it.cleanup_arg = cleanup_arg;
    return &h->it.base;
}
