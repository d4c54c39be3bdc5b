/*
 * memtable.c -- the in-memory write buffer (see memtable.h): a skiplist of
 * internal-key entries living in an arena. One writer inserts; readers walk
 * the list concurrently without locks because a node is fully built before
 * a release store links it in, readers follow links with acquire loads, and
 * nothing is ever unlinked or freed until the last reference goes away.
 *
 * Node layout (one arena allocation per entry):
 *
 *     link[h-1] ... link[1] link[0] | back | entry bytes
 *                           ^ node pointer
 *
 * A node pointer addresses its level-0 link; higher levels sit just below
 * it and the entry (varint32 ikey_len | ikey | varint32 vlen | value)
 * follows directly, so the link a search follows and the key it compares
 * usually share one cache line and no per-node key pointer is stored.
 *
 * `back` is the level-0 link the other way, to the node before (the head
 * for the first node). A step back is then one load instead of a search
 * through nodes scattered over the arena: on a 64 MiB memtable that search
 * was a fifth of a reverse scan's time, nearly all of it cache misses. It
 * costs 8 bytes an entry. The writer sets it after the forward link; a
 * reader walking back may still see the older predecessor and pass over a
 * node being inserted, which is newer than any sequence number the reader
 * can see (sequences are published only after the insert completes).
 */
#include "memtable.h"

#include "bloom.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "status.h"

/* Branching factor 2 (2 links per node on average). Measured against 4 and
 * 3 on 1M random keys it gives ~30% faster gets and inserts: a search makes
 * fewer sideways steps on the bottom levels, whose nodes are the ones that
 * miss the CPU cache, at the cost of ~7% more memory. 24 levels keep
 * searches logarithmic up to ~16M entries per memtable. */
#define SKIP_MAX_HEIGHT 24
#define MEMTABLE_ARENA_BLOCK (16 * 1024)

typedef struct skip_node skip_node; /* never defined: only addressed */
typedef _Atomic(skip_node *) skip_link;

struct memtable {
    /* Read by every search. */
    skip_node *head;
    arena *arena;
    _Atomic int max_height; /* levels in use; only grows */
    /* Written on every insert or iterator creation: kept off the cache line
     * that readers load on each search. */
    char pad[64];
    _Atomic int refs;
    _Atomic uint64_t count;
    uint64_t rng; /* writer-only PRNG state for node heights */
    /* Writer-only "finger": splice[l] is the last node before the newest
     * insert's key on level l (the new node itself on its own levels).
     * Keys written in ascending order (sequential loads, the sorted keys
     * of a batch) then start their search next to the previous insert
     * instead of at the head. */
    skip_node *splice[SKIP_MAX_HEIGHT];
    int splice_levels; /* splice[l] brackets the newest key for l below this */
    /* The search accelerator (see skip_accel): the newest one, read by
     * every search; the writer rebuilds it as the list grows. Older ones
     * stay allocated, because a reader may still be searching them, until
     * the memtable goes away. */
    _Atomic(const struct skip_accel *) accel;
    uint64_t tall_since_accel; /* writer-only: level-ACCEL_LEVEL nodes not in it */
    _Atomic size_t accel_bytes;
    /* Writer-only: the next accelerator while it is being filled, a few
     * nodes an insert, and the next node of level ACCEL_LEVEL to add. */
    struct skip_accel *building;
    skip_node *build_cursor;
    _Atomic(const range_tomb *) tombs; /* newest first */
    /* Optional bloom filter of the user keys, so a point lookup of a key
     * the memtable does not hold (most lookups, once data is in tables)
     * costs one cache line instead of a skiplist search. 512-bit lines;
     * bits are only ever set, with relaxed atomics, before the entry they
     * describe is published. */
    _Atomic uint64_t *bloom;
    size_t bloom_lines; /* 0: no filter */
    /* Optional hash index: user key -> its newest node, so the common
     * lookup (the newest version of a key) costs a probe or two instead of
     * a skiplist search. Open addressing, written only by the writer after
     * the node is published; a key that finds no free slot within
     * INDEX_PROBES turns the index "full" and later lookups of keys not in
     * it fall back to the skiplist. */
    _Atomic(uintptr_t) *index; /* tagged node pointers, see INDEX_TAG_SHIFT */
    size_t index_mask;  /* slots - 1; index NULL when there is none */
    _Atomic int index_full;
    /* Set once a node's address cannot carry a tag (see INDEX_TAG_SHIFT):
     * the index is then stale for that key and is not read. */
    _Atomic int index_off;
};

#define INDEX_PROBES 16

#define BLOOM_WORDS_PER_LINE 8
#define BLOOM_PROBES 6

static void bloom_bits(const memtable *m, uint64_t hash, size_t *line, uint32_t *h, uint32_t *delta) {
    *line = (size_t)((hash >> 32) % m->bloom_lines) * BLOOM_WORDS_PER_LINE;
    *h = (uint32_t)hash;
    *delta = (*h >> 17) | (*h << 15); /* double hashing within the line */
}

/* Writer only. Only the one writer sets bits, so a relaxed load and store
 * do what an atomic OR would without its locked instruction, which was a
 * fifth of a sorted batch's insert; readers still see whole words. */
static void bloom_add(memtable *m, uint64_t hash) {
    size_t line;
    uint32_t h, delta;
    bloom_bits(m, hash, &line, &h, &delta);
    uint64_t words[BLOOM_WORDS_PER_LINE];
    for (int w = 0; w < BLOOM_WORDS_PER_LINE; w++)
        words[w] = atomic_load_explicit(&m->bloom[line + (size_t)w], memory_order_relaxed);
    for (int i = 0; i < BLOOM_PROBES; i++, h += delta) {
        uint32_t bit = h & 511;
        words[bit / 64] |= UINT64_C(1) << (bit % 64);
    }
    for (int w = 0; w < BLOOM_WORDS_PER_LINE; w++)
        atomic_store_explicit(&m->bloom[line + (size_t)w], words[w], memory_order_relaxed);
}

void memtable_prefetch_key(const memtable *m, slice user_key) {
    if (m->bloom_lines == 0) return;
    uint64_t hash = bloom_hash(user_key.data, user_key.len);
    size_t line;
    uint32_t h, delta;
    bloom_bits(m, hash, &line, &h, &delta);
    __builtin_prefetch(&m->bloom[line], 1);
    if (m->index) __builtin_prefetch(&m->index[hash & m->index_mask], 1);
}

int memtable_may_contain(const memtable *m, uint64_t hash) {
    if (m->bloom_lines == 0) return 1;
    size_t line;
    uint32_t h, delta;
    bloom_bits(m, hash, &line, &h, &delta);
    for (int i = 0; i < BLOOM_PROBES; i++, h += delta) {
        uint32_t bit = h & 511;
        if (!(atomic_load_explicit(&m->bloom[line + bit / 64], memory_order_relaxed) & (UINT64_C(1) << (bit % 64))))
            return 0;
    }
    return 1;
}

/* A search key split once into parts so comparisons never re-decode it. */
typedef struct lookup_key {
    const char *user;
    size_t user_len;
    uint64_t tag;
    uint64_t prefix;  /* bytes 0..7, see user_prefix_from_entry */
    uint64_t prefix2; /* bytes 8..15 the same way (0 for keys of 8 bytes or fewer) */
} lookup_key;

/* The search accelerator: a sorted array of every node that has a link on
 * level ACCEL_LEVEL (one node in 2^ACCEL_LEVEL), with the first 16 bytes
 * of each user key as two big-endian words beside it. A search first
 * binary-searches those words, which sit together in a few hundred KiB,
 * for the last such node before its key, then walks the skiplist down
 * from that node's level ACCEL_LEVEL. The levels above, which the search
 * would otherwise descend one scattered node at a time, are skipped: on a
 * full 64 MiB memtable that was ~20 nodes, most of them cache misses.
 *
 * The array is a snapshot. Nodes inserted after it was built are still
 * found, because the walk from the array's node follows live links on
 * level ACCEL_LEVEL, and new tall nodes only lengthen that walk; the writer
 * builds a new array once they reach half the old one's size. It builds it
 * ACCEL_BUILD_STEP nodes per insert, walking level ACCEL_LEVEL while the
 * list grows, rather than all at once: the walk is a cache miss a node, and
 * done in one insert it stalled that insert for ~6 ms on a full memtable.
 * The walk meets the nodes in order (nodes are only ever added), so the
 * array comes out sorted whatever was inserted meanwhile. */
#define ACCEL_LEVEL 3
#define ACCEL_MIN_NODES 32
#define ACCEL_BUILD_STEP 2

#define ACCEL_GROUP 16

typedef struct skip_accel {
    size_t n;
    size_t cap;   /* room for nodes (the writer fills it before publishing) */
    size_t bytes; /* of the allocation, counted in accel_bytes */
    const struct skip_accel *older; /* freed with the memtable */
    skip_node **nodes;              /* n, ascending */
    uint64_t *group_words;          /* the words of every ACCEL_GROUPth node */
    uint64_t words[];               /* 2n: prefix, prefix2 of nodes[i] */
} skip_accel;

static inline skip_link *node_link(skip_node *n, int level) {
    return (skip_link *)(void *)n - level;
}

static inline skip_link *node_back(skip_node *n) { return (skip_link *)(void *)n + 1; }

static inline const char *node_entry(const skip_node *n) {
    return (const char *)n + 2 * sizeof(skip_link);
}

static inline skip_node *link_load(skip_node *n, int level) {
    return atomic_load_explicit(node_link(n, level), memory_order_acquire);
}

static inline skip_node *back_load(skip_node *n) {
    return atomic_load_explicit(node_back(n), memory_order_acquire);
}

/* Arena entries were written by us, so the varint needs no bounds checks. */
static inline const char *entry_varint32(const char *p, uint32_t *v) {
    uint32_t b = (unsigned char)*p;
    if (b < 0x80) {
        *v = b;
        return p + 1;
    }
    uint32_t result = b & 0x7f;
    for (int shift = 7; shift <= 28; shift += 7) {
        b = (unsigned char)*++p;
        result |= (b & 0x7f) << shift;
        if (b < 0x80) break;
    }
    *v = result;
    return p + 1;
}

/* The first 8 bytes of a user key as a big-endian number, zero-padded:
 * comparing two of these orders keys by their first 8 bytes in one step. */
static inline uint64_t user_prefix_from_entry(const char *user, size_t len) {
    /* An entry's user key is followed by its 8-byte tag, so reading 8 bytes
     * is always in bounds; bytes past the key are masked off. */
    uint64_t v;
    memcpy(&v, user, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    if (len < 8) v = len ? v & (~UINT64_C(0) << (64 - 8 * len)) : 0;
    return v;
}

static inline uint64_t user_prefix_from_buffer(const char *user, size_t len) {
    unsigned char tmp[8] = {0};
    if (len >= 8) return user_prefix_from_entry(user, 8);
    if (len) memcpy(tmp, user, len);
    return user_prefix_from_entry((const char *)tmp, 8);
}

/* <0, 0, >0 as the entry's internal key sorts before, equal to, or after k.
 * The first 16 bytes of the user keys compare as two big-endian words:
 * keys that share a long prefix (zero-padded counters, "user:" and a
 * number) tie on the first word, and the second then decides without a
 * memcmp call. */
static inline int entry_compare(const char *entry, const lookup_key *k) {
    uint32_t ikey_len;
    const char *user = entry_varint32(entry, &ikey_len);
    size_t user_len = ikey_len - IKEY_TAG_SIZE;
    uint64_t prefix = user_prefix_from_entry(user, user_len);
    if (prefix != k->prefix) return prefix < k->prefix ? -1 : 1;
    /* Equal words: if either key ends within them it is a prefix of the
     * other (the bytes past its end were masked to zero and matched the
     * other key's), so only the lengths remain to compare. */
    if (user_len > 8 && k->user_len > 8) {
        /* In bounds: the 8-byte tag follows the user key. */
        uint64_t prefix2 = user_prefix_from_entry(user + 8, user_len - 8);
        if (prefix2 != k->prefix2) return prefix2 < k->prefix2 ? -1 : 1;
        if (user_len > 16 && k->user_len > 16) {
            size_t n = user_len < k->user_len ? user_len : k->user_len;
            int r = memcmp(user + 16, k->user + 16, n - 16);
            if (r) return r;
        }
    }
    if (user_len != k->user_len) return user_len < k->user_len ? -1 : 1;
    uint64_t tag = decode_fixed64(user + user_len);
    return tag > k->tag ? -1 : (tag < k->tag);
}

static inline slice entry_ikey(const char *entry) {
    uint32_t ikey_len;
    const char *p = entry_varint32(entry, &ikey_len);
    return slice_make(p, ikey_len);
}

static inline slice entry_value(const char *entry) {
    uint32_t ikey_len, vlen;
    const char *p = entry_varint32(entry, &ikey_len);
    p = entry_varint32(p + ikey_len, &vlen);
    return slice_make(p, vlen);
}

static inline lookup_key make_lookup(const char *user, size_t user_len, uint64_t tag) {
    lookup_key k = {user, user_len, tag, user_prefix_from_buffer(user, user_len),
                    user_len > 8 ? user_prefix_from_buffer(user + 8, user_len - 8) : 0};
    return k;
}

static lookup_key lookup_from_ikey(slice ikey) {
    /* A target too short to be an internal key is taken as a bare user key,
     * which sorts before every version of that key. */
    if (ikey.len < IKEY_TAG_SIZE) return make_lookup(ikey.data, ikey.len, UINT64_MAX);
    size_t user_len = ikey.len - IKEY_TAG_SIZE;
    return make_lookup(ikey.data, user_len, decode_fixed64(ikey.data + user_len));
}

static lookup_key lookup_from_entry(const char *entry) {
    return lookup_from_ikey(entry_ikey(entry));
}

/* The user-key words of an entry, as make_lookup computes them. */
static inline void entry_words(const char *entry, uint64_t *prefix, uint64_t *prefix2) {
    uint32_t ikey_len;
    const char *user = entry_varint32(entry, &ikey_len);
    size_t user_len = ikey_len - IKEY_TAG_SIZE;
    *prefix = user_prefix_from_entry(user, user_len);
    *prefix2 = user_len > 8 ? user_prefix_from_entry(user + 8, user_len - 8) : 0;
}

/* 1 if the words w of accelerator node i sort before k. Two keys whose
 * first 16 bytes differ as words are ordered by those words: where either
 * key is 8 bytes or shorter its second word is 0, and it is then a prefix
 * of any key with equal first word and a nonzero second. Equal words need
 * the node itself. */
static inline int accel_less(const skip_accel *a, const uint64_t *w, size_t i, const lookup_key *k) {
    if (w[0] != k->prefix) return w[0] < k->prefix;
    if (w[1] != k->prefix2) return w[1] < k->prefix2;
    return entry_compare(node_entry(a->nodes[i]), k) < 0;
}

/* How many of the accelerator's nodes sort before k. A binary search of
 * the group words (every ACCEL_GROUPth node's, n bytes in all, which stay
 * in the CPU cache between searches) picks a group; its words, 256 bytes
 * side by side, are fetched at once and scanned. */
static size_t accel_rank(const skip_accel *a, const lookup_key *k) {
    size_t lo = 0, len = (a->n + ACCEL_GROUP - 1) / ACCEL_GROUP;
    while (len > 0) {
        size_t half = len / 2;
        if (accel_less(a, a->group_words + 2 * (lo + half), (lo + half) * ACCEL_GROUP, k)) {
            lo += half + 1;
            len -= half + 1;
        } else {
            len = half;
        }
    }
    if (lo == 0) return 0; /* even the first node is not before k */
    /* Node (lo-1)*G is before k and node lo*G (if any) is not. */
    size_t i = (lo - 1) * ACCEL_GROUP + 1;
    size_t end = lo * ACCEL_GROUP < a->n ? lo * ACCEL_GROUP : a->n;
    const uint64_t *w = a->words + 2 * i;
    for (size_t b = 0; b < 2 * (end - i) * sizeof *w; b += 64) __builtin_prefetch((const char *)w + b);
    while (i < end && accel_less(a, w, i, k)) {
        i++;
        w += 2;
    }
    return i;
}

/* The skiplist search from node x (< k) down from `level`: returns the
 * first node >= k. known_bigger, if not NULL, is a node known to be >= k,
 * so meeting it needs no compare. If prev is given, prev[l] is set to the
 * last node < k on every level l <= `level`. */
static skip_node *descend(skip_node *x, int level, skip_node *known_bigger, const lookup_key *k,
                          skip_node **prev) {
    for (;;) {
        skip_node *next = link_load(x, level);
        if (next != NULL && next != known_bigger) {
            if (level > 0) {
                /* If next turns out >= k we descend from x, so start fetching
                 * the node below while next's key is being compared. */
                skip_node *below = atomic_load_explicit(node_link(x, level - 1), memory_order_relaxed);
                if (below != next && below != NULL) __builtin_prefetch(below);
            }
            if (entry_compare(node_entry(next), k) < 0) {
                x = next;
                continue;
            }
        }
        if (prev) prev[level] = x;
        if (level == 0) return next;
        known_bigger = next;
        level--;
    }
}

/* Where the accelerator puts k: the last node of level ACCEL_LEVEL before
 * k that it knows (the head if none), and the first at or after k. */
static skip_node *accel_start(const memtable *m, const skip_accel *a, const lookup_key *k,
                              skip_node **known_bigger) {
    size_t i = accel_rank(a, k);
    *known_bigger = i < a->n ? a->nodes[i] : NULL;
    return i ? a->nodes[i - 1] : m->head;
}

/* First node >= k, or NULL (readers; the writer uses find_insert_position). */
static skip_node *find_greater_or_equal(const memtable *m, const lookup_key *k) {
    const skip_accel *a = atomic_load_explicit(&((memtable *)m)->accel, memory_order_acquire);
    if (a != NULL) {
        skip_node *known_bigger;
        skip_node *x = accel_start(m, a, k, &known_bigger);
        return descend(x, ACCEL_LEVEL, known_bigger, k, NULL);
    }
    int level = atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
    return descend(m->head, level, NULL, k, NULL);
}

static skip_node *find_last(const memtable *m) {
    skip_node *x = m->head;
    int level = atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
    for (;;) {
        skip_node *next = link_load(x, level);
        if (next != NULL) {
            x = next;
            continue;
        }
        if (level == 0) return x == m->head ? NULL : x;
        level--;
    }
}

/* Writer only: prev[l] = the last node < k for the levels a node of height
 * `need` links into, found the cheapest way that is exact:
 *
 * - From the splice of the previous insert, when k sorts after it. The
 *   splice's nodes ascend as the levels descend and each brackets the
 *   previous key exactly, so if k lies between splice[L] and its successor
 *   on level L, it does so on every level above L too (their successors
 *   are level-L nodes at or after that successor); only levels L and below
 *   need searching. Keys written in ascending order (sequential loads, the
 *   sorted keys of a batch) take this path.
 * - From the accelerator, for a node no taller than ACCEL_LEVEL + 1.
 * - From the head.
 *
 * *valid gets the number of levels, from 0, whose prev is exact (at least
 * `need`, or every level in use); the return value is the highest level
 * whose prev may differ from the splice. */
static int find_insert_position(memtable *m, const lookup_key *k, skip_node **prev, int need, int *valid) {
    int top = atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
    int usable = m->splice_levels < top + 1 ? m->splice_levels : top + 1;
    skip_node *base = m->splice[0];
    if (need <= usable && (base == m->head || entry_compare(node_entry(base), k) < 0)) {
        /* Climb to the lowest level whose successor is not before k. */
        int level = 0;
        for (;;) {
            skip_node *next = link_load(m->splice[level], level);
            if (next == NULL || entry_compare(node_entry(next), k) >= 0) break;
            if (level == usable - 1) {
                /* The top level in use can be walked onward from the
                 * splice; a lower one may be long: search instead. */
                if (level < top) level = -1;
                break;
            }
            level++;
        }
        if (level >= 0) {
            for (int l = usable - 1; l > level; l--) prev[l] = m->splice[l];
            descend(m->splice[level], level, NULL, k, prev);
            *valid = m->splice_levels;
            return level;
        }
    }
    const skip_accel *a = atomic_load_explicit(&m->accel, memory_order_relaxed);
    if (a != NULL && need <= ACCEL_LEVEL + 1) {
        skip_node *known_bigger;
        skip_node *x = accel_start(m, a, k, &known_bigger);
        descend(x, ACCEL_LEVEL, known_bigger, k, prev);
        *valid = ACCEL_LEVEL + 1;
        return ACCEL_LEVEL;
    }
    descend(m->head, top, NULL, k, prev);
    *valid = SKIP_MAX_HEIGHT;
    return top;
}

/* An empty accelerator with room for cap nodes, in one allocation; NULL if
 * out of memory. Counted in the memtable's memory use until it is freed. */
static skip_accel *accel_alloc(memtable *m, size_t cap, const skip_accel *older) {
    size_t groups = (cap + ACCEL_GROUP - 1) / ACCEL_GROUP;
    size_t bytes = sizeof(skip_accel) + (2 * cap + 2 * groups) * sizeof(uint64_t) + cap * sizeof(skip_node *);
    skip_accel *a = malloc(bytes);
    if (a == NULL) return NULL;
    a->n = 0;
    a->cap = cap;
    a->bytes = bytes;
    a->older = older;
    a->group_words = a->words + 2 * cap;
    a->nodes = (skip_node **)(void *)(a->group_words + 2 * groups);
    atomic_fetch_add_explicit(&m->accel_bytes, bytes, memory_order_relaxed);
    return a;
}

/* Writer only: start filling a new accelerator, sized for every node now
 * on level ACCEL_LEVEL and a few more: the walk also meets those inserted
 * ahead of it meanwhile (about 1 in 16 more in an ascending load, where
 * every insert lands ahead). A failed allocation keeps the old one
 * (searches stay exact, only slower). */
static void accel_build_start(memtable *m) {
    const skip_accel *old = atomic_load_explicit(&m->accel, memory_order_relaxed);
    size_t cap = (old ? old->n : 0) + m->tall_since_accel;
    m->tall_since_accel = 0;
    m->building = accel_alloc(m, cap + cap / 16 + ACCEL_MIN_NODES, old);
    m->build_cursor = link_load(m->head, ACCEL_LEVEL);
}

/* Writer only: add the next few nodes to the accelerator being filled;
 * publish it when the walk reaches the end of the level. */
static void accel_build_step(memtable *m) {
    skip_accel *a = m->building;
    skip_node *x = m->build_cursor;
    for (int step = 0; step < ACCEL_BUILD_STEP && x != NULL; step++) {
        if (a->n == a->cap) {
            /* The list outgrew the estimate: move to a quarter more room
             * (no reader sees this array yet); without memory, give up. */
            skip_accel *bigger = accel_alloc(m, a->n + a->n / 4 + ACCEL_MIN_NODES, a->older);
            if (bigger != NULL) {
                memcpy(bigger->words, a->words, 2 * a->n * sizeof *a->words);
                memcpy(bigger->nodes, a->nodes, a->n * sizeof *a->nodes);
                bigger->n = a->n;
            }
            atomic_fetch_sub_explicit(&m->accel_bytes, a->bytes, memory_order_relaxed);
            free(a);
            m->building = a = bigger;
            if (a == NULL) return;
        }
        a->nodes[a->n] = x;
        entry_words(node_entry(x), &a->words[2 * a->n], &a->words[2 * a->n + 1]);
        a->n++;
        x = link_load(x, ACCEL_LEVEL);
    }
    m->build_cursor = x;
    if (x != NULL) {
        __builtin_prefetch(x); /* the next insert's step finds it loaded */
        return;
    }
    for (size_t g = 0; g * ACCEL_GROUP < a->n; g++) {
        a->group_words[2 * g] = a->words[2 * g * ACCEL_GROUP];
        a->group_words[2 * g + 1] = a->words[2 * g * ACCEL_GROUP + 1];
    }
    m->building = NULL;
    atomic_store_explicit(&m->accel, a, memory_order_release);
}

/* Height h with probability (1/2)^h, capped. */
static int random_height(memtable *m) {
    uint64_t x = m->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    m->rng = x;
    int h = 1;
    uint64_t bits = x >> 32; /* the high half mixes best */
    while (h < SKIP_MAX_HEIGHT && (bits & 1) == 0) {
        h++;
        bits >>= 1;
    }
    return h;
}

memtable *memtable_create(void) { return memtable_create_with_filter(0); }

memtable *memtable_create_with_filter(size_t filter_bytes) {
    memtable *m = malloc(sizeof *m);
    if (m == NULL) return NULL;
    m->bloom = NULL;
    m->index = NULL;
    m->index_mask = 0;
    atomic_init(&m->index_full, 0);
    atomic_init(&m->index_off, 0);
    m->bloom_lines = filter_bytes / (BLOOM_WORDS_PER_LINE * 8);
    if (m->bloom_lines) {
        m->bloom = calloc(m->bloom_lines * BLOOM_WORDS_PER_LINE, sizeof *m->bloom);
        /* One 8-byte slot per two filter bytes (the DB sizes the filter at
         * 1/32 of the write buffer): a slot per 64 bytes of buffer, so the
         * index costs 1/8 of the buffer and stays under half full for
         * entries of 128+ bytes; with smaller entries it fills up and the
         * rest fall back to the skiplist. */
        size_t slots = 1;
        while (slots < filter_bytes / 2) slots <<= 1;
        m->index = calloc(slots, sizeof *m->index);
        m->index_mask = slots - 1;
        if (!m->bloom || !m->index) {
            free(m->bloom);
            free(m->index);
            free(m);
            return NULL;
        }
    }
    m->arena = arena_create(MEMTABLE_ARENA_BLOCK);
    if (m->arena == NULL) {
        free(m->bloom);
        free(m->index);
        free(m);
        return NULL;
    }
    char *mem = arena_alloc_aligned(m->arena, (SKIP_MAX_HEIGHT + 1) * sizeof(skip_link));
    if (mem == NULL) {
        arena_destroy(m->arena);
        free(m->bloom);
        free(m->index);
        free(m);
        return NULL;
    }
    m->head = (skip_node *)(void *)(mem + (SKIP_MAX_HEIGHT - 1) * sizeof(skip_link));
    for (int i = 0; i < SKIP_MAX_HEIGHT; i++) atomic_init(node_link(m->head, i), NULL);
    atomic_init(node_back(m->head), NULL);
    atomic_init(&m->max_height, 1);
    atomic_init(&m->refs, 1);
    atomic_init(&m->count, 0);
    atomic_init(&m->tombs, NULL);
    m->rng = 0x2545F4914F6CDD1Dull;
    for (int i = 0; i < SKIP_MAX_HEIGHT; i++) m->splice[i] = m->head;
    m->splice_levels = SKIP_MAX_HEIGHT;
    atomic_init(&m->accel, NULL);
    m->tall_since_accel = 0;
    atomic_init(&m->accel_bytes, 0);
    m->building = NULL;
    m->build_cursor = NULL;
    return m;
}

void memtable_ref(memtable *m) { atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); }

void memtable_unref(memtable *m) {
    if (m == NULL) return;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        const skip_accel *a = atomic_load_explicit(&m->accel, memory_order_relaxed);
        while (a != NULL) {
            const skip_accel *older = a->older;
            free((void *)a);
            a = older;
        }
        free(m->building);
        arena_destroy(m->arena);
        free(m->bloom);
        free(m->index);
        free(m);
    }
}

/* 1 if node holds user key `key`; *tag gets its tag. */
static int node_has_key(const skip_node *node, slice key, uint64_t *tag) {
    uint32_t ikey_len;
    const char *user = entry_varint32(node_entry(node), &ikey_len);
    size_t user_len = ikey_len - IKEY_TAG_SIZE;
    if (user_len != key.len || (user_len && memcmp(user, key.data, user_len) != 0)) return 0;
    *tag = decode_fixed64(user + user_len);
    return 1;
}

/* A slot holds a node pointer with the top 16 bits of its key's hash in
 * the pointer's unused top 16 bits (user-space pointers on x86-64 and
 * arm64 have them zero). A probe passing another key's slot then compares
 * the tags instead of loading that node, a cache miss per collision that
 * was a twelfth of a sorted batch's insert. A node whose address does use
 * those bits (a tagged-pointer allocator, a 57-bit address space) cannot be
 * indexed, and the index would then name an older version of its key:
 * index_put turns the index off for the memtable's life (before the
 * write's sequence is published), and lookups use the skiplist. */
#define INDEX_TAG_SHIFT 48
#define INDEX_ADDR_MASK ((UINT64_C(1) << INDEX_TAG_SHIFT) - 1)

static inline skip_node *slot_node(uintptr_t slot) {
    return (skip_node *)(uintptr_t)((uint64_t)slot & INDEX_ADDR_MASK);
}

/* 0 if the slot certainly holds another key than the one hashed to hash. */
static inline int slot_may_match(uintptr_t slot, uint64_t hash) {
    return (uint64_t)slot >> INDEX_TAG_SHIFT == hash >> INDEX_TAG_SHIFT;
}

static void index_put(memtable *m, uint64_t hash, slice key, skip_node *node, uint64_t seq) {
    if ((uint64_t)(uintptr_t)node & ~INDEX_ADDR_MASK) {
        atomic_store_explicit(&m->index_off, 1, memory_order_release);
        return;
    }
    uintptr_t tagged = (uintptr_t)((uint64_t)(uintptr_t)node | (hash >> INDEX_TAG_SHIFT << INDEX_TAG_SHIFT));
    for (size_t i = 0; i < INDEX_PROBES; i++) {
        _Atomic(uintptr_t) *slot = &m->index[(hash + i) & m->index_mask];
        uintptr_t cur = atomic_load_explicit(slot, memory_order_relaxed);
        uint64_t tag;
        if (cur == 0 || (slot_may_match(cur, hash) && node_has_key(slot_node(cur), key, &tag))) {
            if (cur == 0 || (tag >> 8) < seq)
                atomic_store_explicit(slot, tagged, memory_order_release);
            return;
        }
    }
    atomic_store_explicit(&m->index_full, 1, memory_order_release);
}

/* The key's newest node if the index knows it: 1 found, 0 certainly
 * absent, -1 unknown (use the skiplist). */
static int index_get(const memtable *m, uint64_t hash, slice key, skip_node **node, uint64_t *tag) {
    for (size_t i = 0; i < INDEX_PROBES; i++) {
        uintptr_t cur = atomic_load_explicit(&m->index[(hash + i) & m->index_mask], memory_order_acquire);
        if (cur == 0) break;
        if (slot_may_match(cur, hash) && node_has_key(slot_node(cur), key, tag)) {
            *node = slot_node(cur);
            return 1;
        }
    }
    /* Checked after the probe: a key that missed its slot was inserted
     * after index_full became visible. */
    return atomic_load_explicit(&((memtable *)m)->index_full, memory_order_acquire) ? -1 : 0;
}

int memtable_add(memtable *m, uint64_t seq, int type, slice user_key, slice value) {
    if (user_key.len > UINT32_MAX - IKEY_TAG_SIZE || value.len > UINT32_MAX)
        return weir_set_error(WEIR_INVALID, "memtable: key (%zu bytes) or value (%zu bytes) too large",
                              user_key.len, value.len);
    if (seq > MAX_SEQUENCE || type < 0 || type > TYPE_MAX_VALID)
        return weir_set_error(WEIR_INVALID, "memtable: bad sequence %llu or type %d",
                              (unsigned long long)seq, type);

    uint32_t ikey_len = (uint32_t)(user_key.len + IKEY_TAG_SIZE);
    uint32_t vlen = (uint32_t)value.len;
    size_t entry_len = (size_t)varint_length(ikey_len) + ikey_len + (size_t)varint_length(vlen) + vlen;
    int height = random_height(m);
    size_t links = ((size_t)height + 1) * sizeof(skip_link); /* + back */
    /* Links need only pointer alignment, not the arena's max_align_t:
     * keeping every size a multiple of 8 keeps bump allocations 8-aligned
     * and saves ~7% memory (and cache) over arena_alloc_aligned. */
    size_t total = (links + entry_len + 7) & ~(size_t)7;
    char *mem = arena_alloc(m->arena, total);
    if (mem != NULL && ((uintptr_t)mem & 7) != 0) mem = arena_alloc_aligned(m->arena, total);
    if (mem == NULL)
        return weir_set_error(WEIR_NO_MEMORY, "memtable: out of memory for a %zu-byte entry", entry_len);

    skip_node *node = (skip_node *)(void *)(mem + links - 2 * sizeof(skip_link));
    char *p = (char *)node_entry(node);
    p = encode_varint32(p, ikey_len);
    if (user_key.len) memcpy(p, user_key.data, user_key.len);
    p += user_key.len;
    uint64_t tag = pack_tag(seq, type);
    encode_fixed64(p, tag);
    p += IKEY_TAG_SIZE;
    p = encode_varint32(p, vlen);
    if (vlen) memcpy(p, value.data, vlen);

    uint64_t hash = m->bloom_lines ? bloom_hash(user_key.data, user_key.len) : 0;
    if (m->bloom_lines) bloom_add(m, hash);
    lookup_key k = make_lookup(user_key.data, user_key.len, tag);
    skip_node *prev[SKIP_MAX_HEIGHT];
    int valid;
    int searched = find_insert_position(m, &k, prev, height, &valid);
    int cur_height = atomic_load_explicit(&m->max_height, memory_order_relaxed);
    if (height > cur_height) {
        for (int i = cur_height; i < height; i++) prev[i] = m->head;
        /* Relaxed is enough: a reader that sees the new height before the
         * node simply finds NULL head links on the new levels and descends. */
        atomic_store_explicit(&m->max_height, height, memory_order_relaxed);
    }
    atomic_store_explicit(node_back(node), prev[0], memory_order_relaxed);
    for (int i = 0; i < height; i++) {
        /* The node is private until the release store below, so its own
         * link can be set relaxed; the release publishes it and the entry. */
        skip_node *next = atomic_load_explicit(node_link(prev[i], i), memory_order_relaxed);
        atomic_store_explicit(node_link(node, i), next, memory_order_relaxed);
        atomic_store_explicit(node_link(prev[i], i), node, memory_order_release);
        /* Its successor points back at it only once it is reachable
         * forward (see the top of the file for what a reader walking back
         * may see then). */
        if (i == 0 && next != NULL) atomic_store_explicit(node_back(next), node, memory_order_release);
    }
    /* prev[] now covers every level in use (new levels start at head). */
    int levels = height > cur_height ? height : cur_height;
    /* Above the levels searched and the node's height, the splice is
     * unchanged: sequential inserts touch only the bottom few levels (this
     * loop over every level was a third of a sorted batch's insert). */
    int changed = searched + 1 > height ? searched + 1 : height;
    if (changed > levels) changed = levels;
    for (int i = 0; i < changed; i++) m->splice[i] = i < height ? node : prev[i];
    m->splice_levels = valid;
    if (m->building) {
        accel_build_step(m);
    } else if (height > ACCEL_LEVEL) {
        const skip_accel *a = atomic_load_explicit(&m->accel, memory_order_relaxed);
        size_t due = a && a->n / 2 > ACCEL_MIN_NODES ? a->n / 2 : ACCEL_MIN_NODES;
        if (++m->tall_since_accel >= due) accel_build_start(m);
    }
    if (m->index) index_put(m, hash, user_key, node, seq);
    uint64_t n = atomic_load_explicit(&m->count, memory_order_relaxed);
    atomic_store_explicit(&m->count, n + 1, memory_order_relaxed);
    return WEIR_OK;
}

int memtable_lookup(memtable *m, slice user_key, uint64_t hash, uint64_t seq, int *type,
                    uint64_t *entry_seq, slice *value) {
    if (!memtable_may_contain(m, hash)) return 0;
    if (m->index && !atomic_load_explicit(&m->index_off, memory_order_acquire)) {
        skip_node *node;
        uint64_t tag;
        int r = index_get(m, hash, user_key, &node, &tag);
        if (r == 0) return 0;
        if (r == 1 && (tag >> 8) <= seq) {
            /* The newest version is visible at seq: it is the answer. */
            uint32_t ikey_len, vlen;
            const char *user = entry_varint32(node_entry(node), &ikey_len);
            int t = (int)(tag & 0xff);
            *type = t;
            if (entry_seq) *entry_seq = tag >> 8;
            *value = t != TYPE_DELETION ? slice_make(entry_varint32(user + ikey_len, &vlen), 0) : slice_make(NULL, 0);
            if (t != TYPE_DELETION) value->len = vlen;
            return 1;
        }
    }
    return memtable_get_entry(m, user_key, seq, type, entry_seq, value);
}

int memtable_get_entry(memtable *m, slice user_key, uint64_t seq, int *type, uint64_t *entry_seq,
                       slice *value) {
    if (seq > MAX_SEQUENCE) seq = MAX_SEQUENCE;
    lookup_key k = make_lookup(user_key.data, user_key.len, pack_tag(seq, TYPE_FOR_SEEK));
    skip_node *node = find_greater_or_equal(m, &k);
    if (node == NULL) return 0;
    uint32_t ikey_len;
    const char *user = entry_varint32(node_entry(node), &ikey_len);
    size_t user_len = ikey_len - IKEY_TAG_SIZE;
    if (user_len != user_key.len || (user_len && memcmp(user, user_key.data, user_len) != 0)) return 0;
    uint64_t tag = decode_fixed64(user + user_len);
    int t = (int)(tag & 0xff);
    *type = t;
    if (entry_seq) *entry_seq = tag >> 8;
    if (t != TYPE_DELETION) {
        uint32_t vlen;
        const char *v = entry_varint32(user + ikey_len, &vlen);
        *value = slice_make(v, vlen);
    } else {
        *value = slice_make(NULL, 0);
    }
    return 1;
}

int memtable_get(memtable *m, slice user_key, uint64_t seq, int *type, slice *value) {
    int found = memtable_get_entry(m, user_key, seq, type, NULL, value);
    if (found && *type != TYPE_VALUE) *value = slice_make(NULL, 0);
    return found;
}

int memtable_scan_key(memtable *m, slice user_key, uint64_t seq,
                      int (*fn)(void *arg, int type, uint64_t seq, slice value), void *arg) {
    if (seq > MAX_SEQUENCE) seq = MAX_SEQUENCE;
    lookup_key k = make_lookup(user_key.data, user_key.len, pack_tag(seq, TYPE_FOR_SEEK));
    int visited = 0;
    uint64_t tag;
    for (skip_node *node = find_greater_or_equal(m, &k); node && node_has_key(node, user_key, &tag);
         node = link_load(node, 0)) {
        uint32_t ikey_len, vlen;
        const char *user = entry_varint32(node_entry(node), &ikey_len);
        int t = (int)(tag & 0xff);
        slice value = {NULL, 0};
        if (t != TYPE_DELETION) {
            const char *v = entry_varint32(user + ikey_len, &vlen);
            value = slice_make(v, vlen);
        }
        visited++;
        if (!fn(arg, t, tag >> 8, value)) break;
    }
    return visited;
}

int memtable_add_range_tombstone(memtable *m, uint64_t seq, slice start, slice end) {
    range_tomb *t = arena_alloc_aligned(m->arena, sizeof *t);
    char *keys = arena_alloc(m->arena, start.len + end.len + 1);
    if (!t || !keys) return weir_set_error(WEIR_NO_MEMORY, "memtable: out of memory for a range tombstone");
    if (start.len) memcpy(keys, start.data, start.len);
    if (end.len) memcpy(keys + start.len, end.data, end.len);
    t->start = slice_make(keys, start.len);
    t->end = slice_make(keys + start.len, end.len);
    t->seq = seq;
    t->next = atomic_load_explicit(&m->tombs, memory_order_relaxed);
    /* Publish only once the tombstone is whole. */
    atomic_store_explicit(&m->tombs, t, memory_order_release);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    return WEIR_OK;
}

const range_tomb *memtable_range_tombstones(const memtable *m) {
    return atomic_load_explicit(&((memtable *)m)->tombs, memory_order_acquire);
}

size_t memtable_memory_usage(const memtable *m) {
    return arena_memory_usage(m->arena) +
           atomic_load_explicit(&((memtable *)m)->accel_bytes, memory_order_relaxed);
}

uint64_t memtable_count(const memtable *m) {
    return atomic_load_explicit(&((memtable *)m)->count, memory_order_relaxed);
}

/* ---- iterator ------------------------------------------------------------ */

int memtable_levels_ordered(const memtable *m) {
    int height = atomic_load_explicit(&m->max_height, memory_order_relaxed);
    for (int level = 0; level < height; level++) {
        skip_node *below = level ? link_load(m->head, level - 1) : NULL;
        skip_node *prev = NULL;
        for (skip_node *x = link_load(m->head, level); x != NULL; x = link_load(x, level)) {
            if (prev) {
                lookup_key k = lookup_from_entry(node_entry(x));
                if (entry_compare(node_entry(prev), &k) >= 0) return 0;
            }
            if (level) { /* x must appear on the level below, after prev */
                while (below != NULL && below != x) below = link_load(below, level - 1);
                if (below == NULL) return 0;
            } else if (back_load(x) != (prev ? prev : m->head)) {
                return 0; /* level 0's back links mirror its forward links */
            }
            prev = x;
        }
    }
    return 1;
}

typedef struct memtable_iter {
    iter base;
    memtable *m;
    skip_node *node; /* NULL: not valid */
} memtable_iter;

/* Start loading the node an iterator will most likely read next: a merge
 * steps the memtable only now and then, between steps of the tables, so
 * the miss overlaps with their work instead of stalling the next step. */
static inline void prefetch_node(const skip_node *n) {
    if (n == NULL) return;
    /* Its links, and the rest of a key of up to ~40 bytes, which starts
     * 16 bytes in and so often crosses into the next cache line. */
    __builtin_prefetch(n);
    __builtin_prefetch((const char *)n + 56);
}

static int mi_valid(const iter *it) { return ((const memtable_iter *)it)->node != NULL; }

static void mi_seek_first(iter *it) {
    memtable_iter *mi = (memtable_iter *)it;
    mi->node = link_load(mi->m->head, 0);
    if (mi->node) prefetch_node(link_load(mi->node, 0));
}

static void mi_seek_last(iter *it) {
    memtable_iter *mi = (memtable_iter *)it;
    mi->node = find_last(mi->m);
    if (mi->node) prefetch_node(back_load(mi->node));
}

static void mi_seek(iter *it, slice target) {
    memtable_iter *mi = (memtable_iter *)it;
    lookup_key k = lookup_from_ikey(target);
    mi->node = find_greater_or_equal(mi->m, &k);
    if (mi->node) prefetch_node(link_load(mi->node, 0));
}

static void mi_next(iter *it) {
    memtable_iter *mi = (memtable_iter *)it;
    if (mi->node == NULL) return;
    mi->node = link_load(mi->node, 0);
    if (mi->node) prefetch_node(link_load(mi->node, 0));
}

static void mi_prev(iter *it) {
    memtable_iter *mi = (memtable_iter *)it;
    if (mi->node == NULL) return;
    skip_node *p = back_load(mi->node);
    if (p == mi->m->head) {
        mi->node = NULL;
        return;
    }
    mi->node = p;
    prefetch_node(back_load(p));
}

static slice mi_key(const iter *it) {
    const memtable_iter *mi = (const memtable_iter *)it;
    if (mi->node == NULL) return slice_make(NULL, 0);
    return entry_ikey(node_entry(mi->node));
}

static slice mi_value(const iter *it) {
    const memtable_iter *mi = (const memtable_iter *)it;
    if (mi->node == NULL) return slice_make(NULL, 0);
    return entry_value(node_entry(mi->node));
}

static int mi_status(const iter *it) {
    (void)it;
    return WEIR_OK;
}

static void mi_destroy(iter *it) {
    memtable_iter *mi = (memtable_iter *)it;
    memtable_unref(mi->m);
    free(mi);
}

static const struct iter_ops memtable_iter_ops = {
    mi_valid, mi_seek_first, mi_seek_last, mi_seek, mi_next,
    mi_prev,  mi_key,        mi_value,     mi_status, mi_destroy,
};

iter *memtable_iter_create(memtable *m) {
    memtable_iter *mi = malloc(sizeof *mi);
    if (mi == NULL) {
        weir_set_error(WEIR_NO_MEMORY, "memtable iterator: out of memory");
        return NULL;
    }
    mi->base.ops = &memtable_iter_ops;
    mi->m = m;
    mi->node = NULL;
    memtable_ref(m);
    return &mi->base;
}
