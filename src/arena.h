/*
 * arena.h -- bump allocator for the memtable: many small allocations freed
 * all at once. Allocation is single-threaded (the memtable's one writer);
 * arena_memory_usage may be read from any thread.
 */
#ifndef WEIR_ARENA_H
#define WEIR_ARENA_H

#include <stddef.h>

typedef struct arena arena;

/* block_size: bytes per underlying malloc (allocations larger than a
 * quarter of it get their own block). NULL if out of memory. */
arena *arena_create(size_t block_size);
void arena_destroy(arena *a);

/* NULL if out of memory. */
void *arena_alloc(arena *a, size_t n);
/* Aligned to alignof(max_align_t) (at least 8). NULL if out of memory. */
void *arena_alloc_aligned(arena *a, size_t n);

/* Bytes malloc'd so far (approximate, relaxed atomic read). */
size_t arena_memory_usage(const arena *a);

#endif
