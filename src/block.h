/*
 * block.h -- sorted key/value blocks, the unit of a table file.
 *
 * Entries: varint32 shared | varint32 unshared | varint32 vlen |
 *          key bytes after the shared prefix | value.
 * Every `restart_interval` entries a key is stored whole (shared = 0) and
 * its offset is recorded; the block ends with the restart offsets (fixed32
 * each) and their count (fixed32). Seeks binary-search the restarts, then
 * scan forward.
 *
 * A data block may also carry a hash index (bit 31 of the count set):
 *
 *   entries | restarts (fixed32 each) | buckets (1 byte each) |
 *   fixed16 bucket count | fixed32 restart count | 1 << 31
 *
 * Each bucket holds a hint: the restart interval where the first user key
 * hashed to it starts, or BLOCK_HASH_EMPTY when no key hashes there (the
 * key is not in the block). A point lookup reads one bucket instead of
 * binary-searching the restarts, which touched three or four scattered
 * entries of a block that is rarely in the CPU cache. Keys sharing a
 * bucket get the first one's interval, so a lookup checks the hint (the
 * interval starts at or before the target's user key, and the target
 * lies in it) and binary-searches when it does not: another key's hint
 * costs time, never a wrong answer (the block checksum covers the hints
 * themselves). Two buckets per entry make the hint right for about 80% of
 * keys. Only blocks of internal
 * keys carry one (the hash covers the user key, without its 8-byte tag).
 */
#ifndef WEIR_BLOCK_H
#define WEIR_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "coding.h"
#include "dbformat.h"

typedef struct block_builder {
    buf data;
    uint32_t *restarts;
    size_t num_restarts;
    size_t restarts_cap;
    int restart_interval;
    int counter;       /* entries since the last restart */
    buf last_key;
    int finished;
    int oom;           /* an allocation failed; finish reports it */
    int hash_index;    /* build the hash index (block_builder_init_hashed) */
    uint32_t *entry_hash;    /* per entry: user-key hash bits for the bucket */
    uint32_t *entry_restart; /* per entry: its restart interval */
    size_t num_entries, entries_cap;
} block_builder;

/* Bit 31 of a block's restart count: the block carries a hash index. */
#define BLOCK_HASHED_FLAG (UINT32_C(1) << 31)
#define BLOCK_HASH_EMPTY 0xff
/* Restart intervals a bucket can name (0..254). */
#define BLOCK_HASH_MAX_RESTARTS 255
#define BLOCK_HASH_BUCKETS(entries) ((entries) * 2 + 1)

void block_builder_init(block_builder *b, int restart_interval);
/* A builder of internal-key blocks with a hash index; add entries with
 * block_builder_add_hashed. */
void block_builder_init_hashed(block_builder *b, int restart_interval);
void block_builder_free(block_builder *b);
void block_builder_reset(block_builder *b);
/* Keys must be added in strictly increasing order (caller's comparator).
 * 0 on success, -1 on OOM. */
int block_builder_add(block_builder *b, slice key, slice value);
/* The same, for a hashed builder: key_hash is bloom_hash() of the key's
 * user part, the hash a point lookup brings. */
int block_builder_add_hashed(block_builder *b, slice key, slice value, uint64_t key_hash);
/* Size of the block if finished now. */
size_t block_builder_size_estimate(const block_builder *b);
static inline int block_builder_empty(const block_builder *b) { return b->data.len == 0; }
/* Append the restart array; the returned slice is valid until reset.
 * A slice with data NULL means OOM. */
slice block_builder_finish(block_builder *b);

/* A parsed block; `data` is borrowed (must outlive every iterator on it). */
typedef struct block {
    const char *data;
    size_t size;            /* bytes of entries + restart array */
    uint32_t restarts_off;  /* offset of the restart array */
    uint32_t num_restarts;
    const uint8_t *buckets; /* the hash index; NULL when the block has none */
    uint32_t num_buckets;
} block;

/* The bucket a user-key hash falls in: the top 32 bits scaled to n. */
static inline uint32_t block_hash_bucket(uint64_t key_hash, uint32_t n) {
    return (uint32_t)(((key_hash >> 32) * (uint64_t)n) >> 32);
}

/* Validate the restart array. WEIR_CORRUPTION (message: "bad block ...") if
 * it does not fit. */
int block_parse(block *b, const char *data, size_t size);

typedef int (*key_compare_fn)(slice a, slice b);

/* The entry stored at restart point i, which holds its key whole: key and
 * value point into the block. 0 if i or the entry is out of bounds or the
 * key is not whole. For indexes, where every entry is a restart. */
int block_restart_entry(const block *b, uint32_t i, slice *key, slice *value);

/* A block iterator that can live on the stack (used by point lookups). */
typedef struct block_iter {
    iter base;              /* so it can also be used through iter_ops */
    const block *blk;
    key_compare_fn cmp;
    uint32_t current;       /* offset of the current entry; == restarts_off when invalid */
    uint32_t next_offset;   /* offset just past the current entry */
    uint32_t restart_index; /* restart block containing current */
    buf key;                /* current key, reconstructed */
    slice value;
    int corrupt;            /* entry failed to decode */
    void (*cleanup)(void *);/* called on destroy (e.g. free/release block memory) */
    void *cleanup_arg;
    /* Added by the table layer: */
    uint32_t corrupt_offset;/* block offset of the entry that failed to decode */
    int oom;                /* rebuilding a key ran out of memory (WEIR_NO_MEMORY) */
    char *scratch;          /* caller memory the key starts in (never freed) */
    /* Backward steps: the entries of one restart interval, decoded once,
     * so each prev is a copy instead of a re-scan from the restart point. */
    struct block_prev_entry *pc;   /* entries of interval pc_restart */
    uint32_t pc_count, pc_cap;
    uint32_t pc_restart;           /* UINT32_MAX: nothing cached */
    const char *pc_data;           /* block the cache belongs to */
    buf pc_keys;                   /* the entries' full keys, back to back */
} block_iter;

void block_iter_init(block_iter *it, const block *blk, key_compare_fn cmp);
void block_iter_free(block_iter *it); /* frees the key buffer, runs cleanup */
/* Start over on another block, keeping the key and prev-cache memory (not
 * for iterators with a cleanup). Unpositioned, no error. */
void block_iter_rebind(block_iter *it, const block *blk);
/* Like block_iter_init, but keys of up to `cap` bytes are rebuilt in the
 * caller's `scratch` memory (e.g. a stack array), so a point lookup does not
 * allocate; longer keys move to the heap. block_iter_free is still needed. */
void block_iter_init_scratch(block_iter *it, const block *blk, key_compare_fn cmp,
                             char *scratch, size_t cap);
/* Positioning without going through the ops table (same as block_iter_ops). */
static inline int block_iter_valid(const block_iter *it) { return it->current < it->blk->restarts_off; }
void block_iter_seek_first(block_iter *it);
void block_iter_seek_last(block_iter *it);
void block_iter_seek(block_iter *it, slice target);
/* block_iter_seek for a point lookup of an internal key whose user part
 * hashes to key_hash: with a hash index, the bucket's hint names the
 * restart interval to scan (an empty bucket: the key is not in the block,
 * and only the last interval is scanned, for a target past the last key).
 * Lands on the first entry >= target, or on a later entry of another user
 * key when the target's user key is not in the block. */
void block_iter_seek_for_get(block_iter *it, slice target, uint64_t key_hash);
/* Exactly block_iter_seek (the first entry >= target), taking the hash
 * index's hint when the target's user key is in the block: a seek to an
 * existing key skips the binary search too. */
void block_iter_seek_hashed(block_iter *it, slice target, uint64_t key_hash);
/* Position on the entry at restart point i (its first entry), as if a seek
 * had landed there; invalid (corrupt) if i is out of bounds. */
void block_iter_seek_to_restart(block_iter *it, uint32_t i);
void block_iter_next(block_iter *it);
void block_iter_prev(block_iter *it);
static inline slice block_iter_key(const block_iter *it) { return buf_slice(&it->key); }
/* WEIR_OK, WEIR_CORRUPTION ("bad block entry at block offset N") or
 * WEIR_NO_MEMORY; sets the thread's message when not OK. */
int block_iter_status(const block_iter *it);
/* Heap-allocated iterator; destroy() runs cleanup(cleanup_arg) and frees.
 * blk is copied into the allocation. NULL on OOM (cleanup run then). */
iter *block_iter_create(const block *blk, key_compare_fn cmp,
                        void (*cleanup)(void *), void *cleanup_arg);

/* The iter_ops functions work on a block_iter passed as &it->base; their
 * destroy frees the allocation, so it is only for block_iter_create
 * iterators (release a stack one with block_iter_free). */
extern const struct iter_ops block_iter_ops;

#endif
