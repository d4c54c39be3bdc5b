/*
 * memtable.h -- the in-memory write buffer: a skiplist of internal-key
 * entries in an arena. One writer at a time (the DB's write leader) calls
 * memtable_add; any number of readers call get and iterate concurrently,
 * without locks (nodes are published with release stores and read with
 * acquire loads; nothing is removed until the memtable is freed).
 *
 * Entry layout in the arena: varint32 ikey_len | ikey | varint32 vlen | value.
 */
#ifndef WEIR_MEMTABLE_H
#define WEIR_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "coding.h"
#include "dbformat.h"

typedef struct memtable memtable;

/* Reference count starts at 1. NULL if out of memory. */
memtable *memtable_create(void);
/* With a bloom filter of about filter_bytes over the user keys (see
 * memtable_may_contain); 0 makes none. */
memtable *memtable_create_with_filter(size_t filter_bytes);
/* 0 if the memtable certainly holds no entry for the key whose
 * bloom_hash is `hash`; 1 if it may (always 1 without a filter). */
int memtable_may_contain(const memtable *m, uint64_t hash);
void memtable_ref(memtable *m);
void memtable_unref(memtable *m); /* frees at zero */

/* Insert (user_key, seq, type) -> value. Single writer. An identical
 * (user_key, seq) must not be inserted twice. WEIR_NO_MEMORY on OOM. */
int memtable_add(memtable *m, uint64_t seq, int type, slice user_key, slice value);
/* Start loading the memory memtable_add of user_key will touch at random
 * (its bloom filter line and hash index slot), so a writer can issue it a
 * few entries ahead of the insert. Only a hint: changes nothing. */
void memtable_prefetch_key(const memtable *m, slice user_key);

/* Newest entry for user_key with sequence <= seq.
 * Returns 1 if one exists: *type is TYPE_VALUE (value points into the
 * arena, valid while the memtable is referenced) or TYPE_DELETION.
 * Returns 0 if the memtable has no entry for the key at that sequence. */
int memtable_get(memtable *m, slice user_key, uint64_t seq, int *type, slice *value);

/* Like memtable_get, for every entry type: the newest entry of user_key
 * with sequence <= seq, its type and sequence, and its value (for every
 * type but TYPE_DELETION). 1 if found. */
int memtable_get_entry(memtable *m, slice user_key, uint64_t seq, int *type, uint64_t *entry_seq,
                       slice *value);

/* memtable_get_entry for a key whose bloom_hash is `hash`, using the
 * filter and the hash index when the memtable has them. */
int memtable_lookup(memtable *m, slice user_key, uint64_t hash, uint64_t seq, int *type,
                    uint64_t *entry_seq, slice *value);

/* Call fn for each entry of user_key with sequence <= seq, newest first,
 * until fn returns 0 (a merge read walks its operands in one pass).
 * Returns the number of entries visited. */
int memtable_scan_key(memtable *m, slice user_key, uint64_t seq,
                      int (*fn)(void *arg, int type, uint64_t seq, slice value), void *arg);

/* Range tombstones live beside the skiplist, not in it, so point lookups
 * never mistake one for an entry of its start key. Newest first; the list
 * only grows (single writer, readers lock-free). */
typedef struct range_tomb {
    slice start;  /* inclusive */
    slice end;    /* exclusive */
    uint64_t seq;
    const struct range_tomb *next;
} range_tomb;

int memtable_add_range_tombstone(memtable *m, uint64_t seq, slice start, slice end);
const range_tomb *memtable_range_tombstones(const memtable *m);

/* Bytes of memory used (arena and search accelerators), readable from any
 * thread. */
size_t memtable_memory_usage(const memtable *m);
/* Entries inserted. */
uint64_t memtable_count(const memtable *m);

/* 1 if every level of the skiplist is in strictly ascending order and each
 * level is a subset of the one below, else 0. Walks the whole list: for
 * tests (an out-of-order upper level never changes results, only speed, so
 * nothing else would notice it). Not safe against a concurrent writer. */
int memtable_levels_ordered(const memtable *m);

/* Iterator over internal keys; holds a reference on m until destroyed.
 * NULL if out of memory. */
iter *memtable_iter_create(memtable *m);

#endif
