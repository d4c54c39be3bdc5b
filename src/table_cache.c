/*
 * table_cache.c -- keeps table readers open between uses, by file number,
 * at most `capacity` of them in the cache (see table_cache.h).
 *
 * Each shard has a hash map and two lists: `idle` (only the cache holds the
 * entry; least recently used first, the eviction candidates) and `in_use`
 * (handles are out). A reader is closed when its entry has left the cache
 * and its last handle is released, always outside the shard lock so slow
 * munmap/close calls never block other lookups. Tables are opened outside
 * the lock too; two threads missing the same table may both open it, and
 * the loser closes its copy.
 */
#include "table_cache.h"

#include <limits.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "filename.h"
#include "status.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define MAX_SHARDS 16

typedef struct tc_shard tc_shard;

struct table_handle {
    uint64_t number;
    sst_reader *reader;
    int refs;            /* handles out, plus one while in the cache */
    int in_cache;
    table_handle *hash_next;
    table_handle *prev, *next; /* idle or in_use list, while in the cache */
    tc_shard *shard;
};

struct tc_shard {
    pthread_mutex_t mu;
    table_handle **buckets;
    size_t num_buckets;  /* power of two */
    size_t count;        /* entries in the cache */
    size_t capacity;
    table_handle idle;   /* list heads */
    table_handle in_use;
    table_cache *tc;
};

struct table_cache {
    weir_env *env;
    char *dbpath;
    struct block_cache *block_cache; /* handed to every reader opened */
    _Atomic uint64_t lookups;        /* point lookups that reached a table */
    _Atomic uint64_t bloom_useful;   /* ... that the filter answered "absent" */
    unsigned num_shards; /* power of two */
    size_t capacity;     /* max_open_files */
    atomic_int open_count;
    tc_shard shards[MAX_SHARDS];
};

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static tc_shard *shard_for(table_cache *tc, uint64_t hash) {
    return &tc->shards[(hash >> 56) & (tc->num_shards - 1)];
}

static void list_init(table_handle *head) { head->prev = head->next = head; }

static void list_remove(table_handle *h) {
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = NULL;
}

/* Append at the tail (most recently used end). */
static void list_append(table_handle *head, table_handle *h) {
    h->next = head;
    h->prev = head->prev;
    head->prev->next = h;
    head->prev = h;
}

static table_handle **bucket_of(tc_shard *s, uint64_t hash) {
    return &s->buckets[hash & (s->num_buckets - 1)];
}

static table_handle *lookup(tc_shard *s, uint64_t number, uint64_t hash) {
    for (table_handle *h = *bucket_of(s, hash); h; h = h->hash_next)
        if (h->number == number) return h;
    return NULL;
}

static void hash_remove(tc_shard *s, table_handle *h) {
    table_handle **pp = bucket_of(s, mix64(h->number));
    while (*pp != h) pp = &(*pp)->hash_next;
    *pp = h->hash_next;
    h->hash_next = NULL;
}

/* Double the buckets when the load passes 1; a failed resize only makes
 * chains longer, so it is ignored. */
static void maybe_grow(tc_shard *s) {
    if (s->count <= s->num_buckets) return;
    size_t n = s->num_buckets * 2;
    table_handle **nb = calloc(n, sizeof *nb);
    if (!nb) return;
    for (size_t i = 0; i < s->num_buckets; i++) {
        table_handle *h = s->buckets[i];
        while (h) {
            table_handle *next = h->hash_next;
            table_handle **b = &nb[mix64(h->number) & (n - 1)];
            h->hash_next = *b;
            *b = h;
            h = next;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->num_buckets = n;
}

static void close_entry(table_cache *tc, table_handle *h) {
    sst_reader_close(h->reader);
    free(h);
    atomic_fetch_sub_explicit(&tc->open_count, 1, memory_order_relaxed);
}

/* Take a reference (lock held). */
static void ref_locked(tc_shard *s, table_handle *h) {
    if (h->refs == 1 && h->in_cache) {
        list_remove(h);
        list_append(&s->in_use, h);
    }
    h->refs++;
}

/* Drop a reference (lock held); 1 if the caller must close the entry. */
static int unref_locked(tc_shard *s, table_handle *h) {
    h->refs--;
    if (h->refs == 0) return 1;
    if (h->refs == 1 && h->in_cache) {
        list_remove(h);
        list_append(&s->idle, h);
    }
    return 0;
}

/* Take h out of the cache (lock held); 1 if the caller must close it. */
static int drop_locked(tc_shard *s, table_handle *h) {
    hash_remove(s, h);
    list_remove(h);
    h->in_cache = 0;
    s->count--;
    return unref_locked(s, h);
}

table_cache *table_cache_create(weir_env *env, const char *dbpath, int capacity) {
    table_cache *tc = calloc(1, sizeof *tc);
    if (!tc) return NULL;
    size_t cap = capacity < 1 ? 1 : (size_t)capacity;
    tc->env = env;
    tc->capacity = cap;
    tc->dbpath = strdup(dbpath);
    /* Fewer shards than entries would let the total exceed the capacity. */
    tc->num_shards = MAX_SHARDS;
    while (tc->num_shards > cap) tc->num_shards /= 2;
    atomic_init(&tc->open_count, 0);
    unsigned made = 0;
    if (!tc->dbpath) goto fail;
    for (; made < tc->num_shards; made++) {
        tc_shard *s = &tc->shards[made];
        s->capacity = cap / tc->num_shards + (made < cap % tc->num_shards);
        s->num_buckets = 16;
        s->buckets = calloc(s->num_buckets, sizeof *s->buckets);
        if (!s->buckets) goto fail;
        if (pthread_mutex_init(&s->mu, NULL) != 0) {
            free(s->buckets);
            goto fail;
        }
        list_init(&s->idle);
        list_init(&s->in_use);
        s->tc = tc;
    }
    return tc;
fail:
    while (made-- > 0) {
        pthread_mutex_destroy(&tc->shards[made].mu);
        free(tc->shards[made].buckets);
    }
    free(tc->dbpath);
    free(tc);
    return NULL;
}

void table_cache_destroy(table_cache *tc) {
    if (!tc) return;
    for (unsigned i = 0; i < tc->num_shards; i++) {
        tc_shard *s = &tc->shards[i];
        for (size_t b = 0; b < s->num_buckets; b++) {
            table_handle *h = s->buckets[b];
            while (h) {
                table_handle *next = h->hash_next;
                close_entry(tc, h);
                h = next;
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(tc->dbpath);
    free(tc);
}

/* The table if the cache holds it open (referenced), else NULL. */
static table_handle *find_open(table_cache *tc, uint64_t file_number) {
    uint64_t hash = mix64(file_number);
    tc_shard *s = shard_for(tc, hash);
    pthread_mutex_lock(&s->mu);
    table_handle *h = lookup(s, file_number, hash);
    if (h) ref_locked(s, h);
    pthread_mutex_unlock(&s->mu);
    return h;
}

int table_cache_get(table_cache *tc, uint64_t file_number, uint64_t file_size,
                    table_handle **out) {
    *out = NULL;
    uint64_t hash = mix64(file_number);
    tc_shard *s = shard_for(tc, hash);

    pthread_mutex_lock(&s->mu);
    table_handle *h = lookup(s, file_number, hash);
    if (h) {
        ref_locked(s, h);
        pthread_mutex_unlock(&s->mu);
        *out = h;
        return WEIR_OK;
    }
    pthread_mutex_unlock(&s->mu);

    char path[PATH_MAX];
    table_file_path(path, sizeof path, tc->dbpath, file_number);
    sst_reader *reader;
    int rc = sst_reader_open(tc->env, path, file_size, &reader);
    if (rc != WEIR_OK) return rc;
    sst_reader_set_block_cache(reader, tc->block_cache);
    table_handle *fresh = calloc(1, sizeof *fresh);
    if (!fresh) {
        sst_reader_close(reader);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory caching table %s", path);
    }
    fresh->number = file_number;
    fresh->reader = reader;
    fresh->refs = 2;
    fresh->in_cache = 1;
    fresh->shard = s;
    atomic_fetch_add_explicit(&tc->open_count, 1, memory_order_relaxed);

    table_handle *victims = NULL;
    pthread_mutex_lock(&s->mu);
    h = lookup(s, file_number, hash);
    if (h) {
        /* Another thread opened it meanwhile: use theirs. */
        ref_locked(s, h);
        pthread_mutex_unlock(&s->mu);
        close_entry(tc, fresh);
        *out = h;
        return WEIR_OK;
    }
    table_handle **b = bucket_of(s, hash);
    fresh->hash_next = *b;
    *b = fresh;
    list_append(&s->in_use, fresh);
    s->count++;
    maybe_grow(s);
    while (s->count > s->capacity && s->idle.next != &s->idle) {
        table_handle *v = s->idle.next;
        if (drop_locked(s, v)) {
            v->hash_next = victims;
            victims = v;
        }
    }
    pthread_mutex_unlock(&s->mu);
    while (victims) {
        table_handle *next = victims->hash_next;
        close_entry(tc, victims);
        victims = next;
    }
    *out = fresh;
    return WEIR_OK;
}

sst_reader *table_handle_reader(table_handle *h) { return h->reader; }

void table_cache_release(table_cache *tc, table_handle *h) {
    if (!h) return;
    tc_shard *s = h->shard;
    pthread_mutex_lock(&s->mu);
    int dead = unref_locked(s, h);
    pthread_mutex_unlock(&s->mu);
    if (dead) close_entry(tc, h);
}

void table_cache_evict(table_cache *tc, uint64_t file_number) {
    uint64_t hash = mix64(file_number);
    tc_shard *s = shard_for(tc, hash);
    pthread_mutex_lock(&s->mu);
    table_handle *h = lookup(s, file_number, hash);
    int dead = h ? drop_locked(s, h) : 0;
    pthread_mutex_unlock(&s->mu);
    if (dead) close_entry(tc, h);
}

/* The lookup itself, on a handle the caller holds. */
static int lookup_in(table_cache *tc, table_handle *h, slice lookup_ikey, uint64_t hash,
                     unsigned flags, sst_get_fn fn, void *arg) {
    atomic_fetch_add_explicit(&tc->lookups, 1, memory_order_relaxed);
    if (!sst_reader_may_contain(h->reader, hash)) {
        atomic_fetch_add_explicit(&tc->bloom_useful, 1, memory_order_relaxed);
        return WEIR_OK;
    }
    return sst_reader_get_unfiltered(h->reader, lookup_ikey, hash, flags, fn, arg);
}

/* Lookup, then release the handle, keeping the lookup's error message
 * (releasing may close the table). */
static int lookup_and_release(table_cache *tc, table_handle *h, slice lookup_ikey, uint64_t hash,
                              unsigned flags, sst_get_fn fn, void *arg) {
    int rc = lookup_in(tc, h, lookup_ikey, hash, flags, fn, arg);
    if (rc == WEIR_OK) {
        table_cache_release(tc, h);
        return rc;
    }
    weir_error saved;
    weir_error_save(&saved, rc);
    table_cache_release(tc, h);
    return weir_error_raise(&saved);
}

int table_cache_get_entry(table_cache *tc, uint64_t file_number, uint64_t file_size,
                          slice lookup_ikey, uint64_t hash, sst_get_fn fn, void *arg) {
    table_handle *h = NULL;
    int rc = table_cache_get(tc, file_number, file_size, &h);
    if (rc != WEIR_OK) return rc;
    return lookup_and_release(tc, h, lookup_ikey, hash, 0, fn, arg);
}

/* The table's handle through a pin: the pinned one (no lock, nothing to
 * release) or one from the cache, which becomes the pin's while the cache
 * has room (*release = 0 then); otherwise the caller releases it. */
static int handle_via_pin(table_cache *tc, table_pin *pin, uint64_t file_number, uint64_t file_size,
                          unsigned flags, table_handle **out, int *release) {
    *release = 0;
    table_handle *h = atomic_load_explicit(&pin->handle, memory_order_acquire);
    if (h) {
        *out = h;
        return WEIR_OK;
    }
    if (flags & SST_READ_MEMORY_ONLY) {
        /* Opening a table reads its footer, index and filter. */
        if (!(h = find_open(tc, file_number)))
            return weir_set_error(WEIR_INCOMPLETE, "table %06" PRIu64 " is not open (memory_only)",
                                  file_number);
    } else {
        int rc = table_cache_get(tc, file_number, file_size, &h);
        if (rc != WEIR_OK) return rc;
    }
    table_handle *expected = NULL;
    if (!((size_t)table_cache_open_count(tc) <= tc->capacity / 4 * 3 &&
          atomic_compare_exchange_strong_explicit(&pin->handle, &expected, h, memory_order_acq_rel,
                                                  memory_order_acquire)))
        *release = 1;
    *out = h;
    return WEIR_OK;
}

int table_cache_get_entry_pinned(table_cache *tc, table_pin *pin, uint64_t file_number,
                                 uint64_t file_size, slice lookup_ikey, uint64_t hash,
                                 unsigned flags, sst_get_fn fn, void *arg) {
    table_handle *h = NULL;
    int release;
    int rc = handle_via_pin(tc, pin, file_number, file_size, flags, &h, &release);
    if (rc != WEIR_OK) return rc;
    if (release) return lookup_and_release(tc, h, lookup_ikey, hash, flags, fn, arg);
    return lookup_in(tc, h, lookup_ikey, hash, flags, fn, arg);
}

void table_pin_release(table_pin *pin) {
    table_handle *h = atomic_exchange_explicit(&pin->handle, NULL, memory_order_acq_rel);
    if (h) table_cache_release(h->shard->tc, h);
}

static void release_iter_handle(void *arg) {
    table_handle *h = arg;
    table_cache_release(h->shard->tc, h);
}

iter *table_cache_iter(table_cache *tc, uint64_t file_number, uint64_t file_size) {
    table_handle *h = NULL;
    int rc = table_cache_get(tc, file_number, file_size, &h);
    if (rc != WEIR_OK) return iter_new_error(rc);
    return sst_reader_iter(h->reader, release_iter_handle, h);
}

iter *table_cache_iter_pinned(table_cache *tc, table_pin *pin, uint64_t file_number,
                              uint64_t file_size, iter *reuse) {
    table_handle *h = NULL;
    int release;
    int rc = handle_via_pin(tc, pin, file_number, file_size, 0, &h, &release);
    if (rc != WEIR_OK) {
        iter_destroy(reuse);
        return iter_new_error(rc);
    }
    void (*cleanup)(void *) = release ? release_iter_handle : NULL;
    if (reuse && sst_reader_iter_retarget(reuse, h->reader, cleanup, h)) return reuse;
    iter_destroy(reuse);
    return sst_reader_iter(h->reader, cleanup, h);
}

int table_cache_open_count(table_cache *tc) {
    return atomic_load_explicit(&tc->open_count, memory_order_relaxed);
}

void table_cache_set_block_cache(table_cache *tc, struct block_cache *cache) {
    tc->block_cache = cache;
}

void table_cache_lookup_stats(table_cache *tc, uint64_t *lookups, uint64_t *bloom_useful) {
    *lookups = atomic_load_explicit(&tc->lookups, memory_order_relaxed);
    *bloom_useful = atomic_load_explicit(&tc->bloom_useful, memory_order_relaxed);
}
