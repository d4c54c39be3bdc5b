/*
 * cache.c -- see cache.h. Sixteen shards, each a mutex, a chained hash
 * table and an LRU list of unreferenced entries; the key hash picks the
 * shard so threads reading different blocks rarely meet on a lock.
 */
#include "cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define CACHE_SHARDS 16

struct cache_handle {
    uint64_t id;
    uint64_t offset;
    uint64_t hash;
    void *data;
    size_t size;
    int refs;                 /* users, not counting the table's own */
    int in_table;             /* still findable (not replaced/evicted) */
    struct cache_handle *hnext;
    struct cache_handle *lru_prev, *lru_next; /* linked only when refs == 0 */
};

typedef struct cache_shard {
    pthread_mutex_t mu;
    cache_handle **buckets;
    size_t num_buckets;
    size_t entries;
    size_t usage;
    size_t pinned;
    size_t capacity;
    cache_handle lru;         /* list head: lru.lru_next is the oldest */
    uint64_t hits, misses, inserts, evictions;
} cache_shard;

struct block_cache {
    cache_shard shards[CACHE_SHARDS];
    _Atomic uint64_t next_id;
    size_t capacity;
};

static uint64_t key_hash(uint64_t id, uint64_t offset) {
    uint64_t h = id * 0x9E3779B97F4A7C15ull ^ offset;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

block_cache *block_cache_create(size_t capacity_bytes) {
    block_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->capacity = capacity_bytes;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->capacity = capacity_bytes / CACHE_SHARDS;
        s->lru.lru_next = s->lru.lru_prev = &s->lru;
        s->num_buckets = 64;
        s->buckets = calloc(s->num_buckets, sizeof *s->buckets);
        if (!s->buckets) {
            block_cache_destroy(c);
            return NULL;
        }
    }
    atomic_init(&c->next_id, 1);
    return c;
}

void block_cache_destroy(block_cache *c) {
    if (!c) return;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        for (size_t b = 0; s->buckets && b < s->num_buckets; b++) {
            cache_handle *e = s->buckets[b];
            while (e) {
                cache_handle *next = e->hnext;
                free(e->data);
                free(e);
                e = next;
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

uint64_t block_cache_new_id(block_cache *c) {
    return atomic_fetch_add_explicit(&c->next_id, 1, memory_order_relaxed);
}

static cache_shard *shard_of(block_cache *c, uint64_t hash) {
    return &c->shards[hash >> 60];
}

static void lru_unlink(cache_handle *e) {
    e->lru_prev->lru_next = e->lru_next;
    e->lru_next->lru_prev = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_append(cache_shard *s, cache_handle *e) {
    e->lru_next = &s->lru;
    e->lru_prev = s->lru.lru_prev;
    e->lru_prev->lru_next = e;
    s->lru.lru_prev = e;
}

static cache_handle **find_slot(cache_shard *s, uint64_t hash, uint64_t id, uint64_t offset) {
    cache_handle **slot = &s->buckets[hash & (s->num_buckets - 1)];
    while (*slot && ((*slot)->id != id || (*slot)->offset != offset)) slot = &(*slot)->hnext;
    return slot;
}

/* Take e out of the hash table (shard lock held). */
static void table_remove(cache_shard *s, cache_handle *e) {
    cache_handle **slot = find_slot(s, e->hash, e->id, e->offset);
    if (*slot == e) *slot = e->hnext;
    e->in_table = 0;
    s->entries--;
}

static void free_entry(cache_shard *s, cache_handle *e) {
    s->usage -= e->size;
    free(e->data);
    free(e);
}

static void grow_table(cache_shard *s) {
    size_t n = s->num_buckets * 2;
    cache_handle **b = calloc(n, sizeof *b);
    if (!b) return; /* a longer chain is only slower */
    for (size_t i = 0; i < s->num_buckets; i++) {
        cache_handle *e = s->buckets[i];
        while (e) {
            cache_handle *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->num_buckets = n;
}

static void evict(cache_shard *s) {
    while (s->usage > s->capacity && s->lru.lru_next != &s->lru) {
        cache_handle *old = s->lru.lru_next;
        lru_unlink(old);
        table_remove(s, old);
        free_entry(s, old);
        s->evictions++;
    }
}

cache_handle *block_cache_lookup(block_cache *c, uint64_t id, uint64_t offset) {
    uint64_t hash = key_hash(id, offset);
    cache_shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->mu);
    cache_handle *e = *find_slot(s, hash, id, offset);
    if (e) {
        if (e->refs++ == 0) {
            lru_unlink(e);
            s->pinned += e->size;
        }
        s->hits++;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

cache_handle *block_cache_insert(block_cache *c, uint64_t id, uint64_t offset, void *data,
                                 size_t size) {
    cache_handle *e = calloc(1, sizeof *e);
    if (!e) {
        free(data);
        return NULL;
    }
    e->id = id;
    e->offset = offset;
    e->hash = key_hash(id, offset);
    e->data = data;
    e->size = size;
    e->refs = 1;
    cache_shard *s = shard_of(c, e->hash);
    pthread_mutex_lock(&s->mu);
    cache_handle **slot = find_slot(s, e->hash, id, offset);
    if (*slot) {
        /* Another reader inserted the same block first: replace it; its
         * users keep their copy until they release it. */
        cache_handle *old = *slot;
        *slot = old->hnext;
        old->in_table = 0;
        s->entries--;
        if (old->refs == 0) {
            lru_unlink(old);
            free_entry(s, old);
        }
    }
    e->in_table = 1;
    e->hnext = s->buckets[e->hash & (s->num_buckets - 1)];
    s->buckets[e->hash & (s->num_buckets - 1)] = e;
    s->entries++;
    s->usage += size;
    s->pinned += size;
    s->inserts++;
    if (s->entries > s->num_buckets) grow_table(s);
    evict(s);
    pthread_mutex_unlock(&s->mu);
    return e;
}

const void *cache_handle_data(const cache_handle *h) { return h->data; }
size_t cache_handle_size(const cache_handle *h) { return h->size; }

void block_cache_release(block_cache *c, cache_handle *e) {
    if (!e) return;
    cache_shard *s = shard_of(c, e->hash);
    pthread_mutex_lock(&s->mu);
    if (--e->refs == 0) {
        s->pinned -= e->size;
        if (e->in_table) {
            lru_append(s, e);
            evict(s);
        } else {
            free_entry(s, e);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void block_cache_get_stats(block_cache *c, block_cache_stats *out) {
    block_cache_stats t = {0};
    t.capacity = c->capacity;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        t.usage += s->usage;
        t.pinned += s->pinned;
        t.entries += s->entries;
        t.hits += s->hits;
        t.misses += s->misses;
        t.inserts += s->inserts;
        t.evictions += s->evictions;
        pthread_mutex_unlock(&s->mu);
    }
    *out = t;
}
