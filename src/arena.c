/*
 * arena.c -- the memtable's bump allocator (see arena.h). Memory comes in
 * blocks of block_size bytes kept on a singly linked list and freed together
 * by arena_destroy; nothing is ever freed individually. Large requests get
 * their own exact-size block so they do not waste the tail of the current
 * one. The running total is an atomic so flush scheduling on other threads
 * can read it without a lock.
 */
#include "arena.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define ARENA_ALIGN (alignof(max_align_t) > 8 ? alignof(max_align_t) : 8)
#define ARENA_MIN_BLOCK 256
#define ARENA_DEFAULT_BLOCK 4096

/* Header at the start of every block; the union keeps the payload after it
 * maximally aligned. */
typedef union arena_block {
    union arena_block *next;
    max_align_t align;
} arena_block;

struct arena {
    char *ptr;          /* next free byte in the current block */
    size_t remaining;   /* bytes left after ptr in the current block */
    size_t block_size;
    arena_block *blocks;
    _Atomic size_t usage;
};

arena *arena_create(size_t block_size) {
    arena *a = malloc(sizeof *a);
    if (a == NULL) return NULL;
    if (block_size == 0) block_size = ARENA_DEFAULT_BLOCK;
    if (block_size < ARENA_MIN_BLOCK) block_size = ARENA_MIN_BLOCK;
    a->ptr = NULL;
    a->remaining = 0;
    a->block_size = block_size;
    a->blocks = NULL;
    atomic_init(&a->usage, sizeof *a);
    return a;
}

void arena_destroy(arena *a) {
    if (a == NULL) return;
    arena_block *b = a->blocks;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

/* A new block with `bytes` of payload, linked in; NULL if out of memory. */
static char *arena_new_block(arena *a, size_t bytes) {
    if (bytes > SIZE_MAX - sizeof(arena_block)) return NULL;
    arena_block *b = malloc(sizeof(arena_block) + bytes);
    if (b == NULL) return NULL;
    b->next = a->blocks;
    a->blocks = b;
    size_t now = atomic_load_explicit(&a->usage, memory_order_relaxed);
    atomic_store_explicit(&a->usage, now + sizeof(arena_block) + bytes, memory_order_relaxed);
    return (char *)(b + 1);
}

/* Slow path: the current block cannot hold n bytes (with padding). */
static void *arena_alloc_fallback(arena *a, size_t n) {
    if (n > a->block_size / 4) {
        /* Big enough that starting a fresh block would waste the current
         * block's tail; give it its own block and keep bumping the old one. */
        return arena_new_block(a, n);
    }
    char *p = arena_new_block(a, a->block_size);
    if (p == NULL) return NULL;
    a->ptr = p + n;
    a->remaining = a->block_size - n;
    return p;
}

void *arena_alloc(arena *a, size_t n) {
    if (n == 0) n = 1; /* distinct, valid pointers even for empty requests */
    if (n <= a->remaining) {
        char *p = a->ptr;
        a->ptr += n;
        a->remaining -= n;
        return p;
    }
    return arena_alloc_fallback(a, n);
}

void *arena_alloc_aligned(arena *a, size_t n) {
    if (n == 0) n = 1;
    size_t pad = (size_t)(-(uintptr_t)a->ptr & (ARENA_ALIGN - 1));
    if (a->remaining >= pad && n <= a->remaining - pad) {
        char *p = a->ptr + pad;
        a->ptr = p + n;
        a->remaining -= pad + n;
        return p;
    }
    /* Block payloads start maximally aligned, so the fallback needs no pad. */
    return arena_alloc_fallback(a, n);
}

size_t arena_memory_usage(const arena *a) {
    return atomic_load_explicit(&((arena *)a)->usage, memory_order_relaxed);
}
