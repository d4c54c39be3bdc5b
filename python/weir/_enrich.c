/*
 * weir._enrich -- the hash index behind weir.materialize.DimensionTable.
 *
 * A KeyIndex maps a dimension table's key (int64, or a string/binary value)
 * to the row that holds its current version. Rows are numbered in the order
 * they were appended; an upsert of a key that is already present points the
 * key at the new row (the old row becomes garbage the Python layer compacts
 * away), a delete unlinks the key.
 *
 * Keys and probe batches arrive as Arrow arrays through the Arrow C Data
 * Interface (__arrow_c_array__ capsules), so no Arrow library is linked:
 * the structs below are the interface's ABI, fixed by its specification.
 * probe() turns a batch's key column into the take-vector of dimension
 * rows (int32, invalid where a left join misses) and, for fixed-width
 * dimension columns without nulls, gathers their values directly; the GIL
 * is released for those loops.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so deletes never lengthen later probes).
 *   int64 keys:   12-byte slots {int64 key, uint32 row}, key inline so a
 *                 probe touches one cache line.
 *   string keys:  8-byte slots {uint32 hash tag, uint32 row}; the key bytes
 *                 live in an arena indexed by row (Arrow-style offsets), so
 *                 a slot is compared by tag first and by bytes only when
 *                 the tags agree.
 * The table grows (doubling) before it is 3/4 full.
 *
 * Concurrency: every mutation holds the GIL *and* a write lock; probe()
 * holds a read lock with the GIL released. Lookups from Python (find,
 * __contains__) hold the GIL, which no mutation can run without.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arrow_abi.h"

/* An array exported by its producer; `owner` keeps the capsules (and with
 * them the producer's buffers) alive until release_imported(). */
typedef struct {
    PyObject *owner;
    struct ArrowSchema *schema;
    struct ArrowArray *array;
} Imported;

static void release_imported(Imported *im) {
    Py_CLEAR(im->owner);
    im->schema = NULL;
    im->array = NULL;
}

static int import_array(PyObject *obj, Imported *im, const char *what) {
    im->owner = NULL;
    im->schema = NULL;
    im->array = NULL;
    PyObject *pair = PyObject_CallMethod(obj, "__arrow_c_array__", NULL);
    if (pair == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s must be an Arrow array (an object with __arrow_c_array__), not %.100s",
                         what, Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        Py_DECREF(pair);
        PyErr_Format(PyExc_TypeError, "%s: __arrow_c_array__ did not return a pair", what);
        return -1;
    }
    struct ArrowSchema *schema =
        PyCapsule_GetPointer(PyTuple_GET_ITEM(pair, 0), "arrow_schema");
    struct ArrowArray *array = schema == NULL
                                   ? NULL
                                   : PyCapsule_GetPointer(PyTuple_GET_ITEM(pair, 1), "arrow_array");
    if (schema == NULL || array == NULL) {
        Py_DECREF(pair);
        return -1;
    }
    if (schema->release == NULL || array->release == NULL) {
        Py_DECREF(pair);
        PyErr_Format(PyExc_ValueError, "%s: the Arrow array was already released", what);
        return -1;
    }
    im->owner = pair;
    im->schema = schema;
    im->array = array;
    return 0;
}

static inline int bit_is_set(const uint8_t *bits, int64_t i) {
    return (bits[i >> 3] >> (i & 7)) & 1;
}

/* ---- Hashing ------------------------------------------------------------- */

#define ROW_EMPTY UINT32_MAX
#define MAX_ROWS ((uint64_t)UINT32_MAX - 1)

static inline uint64_t load_u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t load_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Folds a 128-bit product: the multiply spreads every input bit over the
 * high half, the xor brings it back into the low half. */
static inline uint64_t fold_mul(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

#define K0 0xa0761d6478bd642fULL
#define K1 0xe7037ed1a0b428dbULL
#define K2 0x8ebc6af09c88c6e3ULL
#define K3 0x589965cc75374cc3ULL

static inline uint64_t hash_int64(int64_t key) {
    /* Fibonacci hashing on a pre-folded key: the caller takes the high bits,
     * which depend on every bit of the key; sequential keys spread evenly. */
    uint64_t x = (uint64_t)key;
    x ^= x >> 32;
    return x * 0x9E3779B97F4A7C15ULL;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = K0 ^ ((uint64_t)n * K1);
    size_t left = n;
    while (left >= 16) {
        h = fold_mul(load_u64(p) ^ K1 ^ h, load_u64(p + 8) ^ K2);
        p += 16;
        left -= 16;
    }
    /* The last 0-15 bytes, read with fixed-size loads (overlapping when
     * the tail is shorter than the load) instead of a variable memcpy;
     * the length, mixed in above, tells overlapping tails apart. */
    uint64_t a, b;
    if (left >= 8) {
        a = load_u64(p);
        b = load_u64(p + left - 8);
    } else if (left >= 4) {
        a = load_u32(p);
        b = load_u32(p + left - 4);
    } else if (left > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[left >> 1] << 8) | p[left - 1];
        b = 0;
    } else {
        a = b = 0;
    }
    h = fold_mul(a ^ K1 ^ h, b ^ K3);
    return fold_mul(h ^ K2, K3 ^ (uint64_t)n);
}

/* Equality of two n-byte keys; short keys without a call to memcmp. */
static inline int same_bytes(const unsigned char *x, const unsigned char *y, uint64_t n) {
    if (n >= 8 && n <= 16)
        return load_u64(x) == load_u64(y) && load_u64(x + n - 8) == load_u64(y + n - 8);
    if (n >= 4 && n < 8)
        return load_u32(x) == load_u32(y) && load_u32(x + n - 4) == load_u32(y + n - 4);
    return memcmp(x, y, n) == 0;
}

/* ---- The index object ----------------------------------------------------- */

enum { KIND_NONE = 0, KIND_INT64 = 1, KIND_STRING = 2 };

typedef struct {
    PyObject_HEAD
    int kind;
    int binary; /* string kind: keys are bytes (Arrow binary), not text */
    uint64_t cap;    /* slots; a power of two, or 0 */
    int shift;       /* 64 - log2(cap) */
    uint64_t count;  /* live keys */
    uint64_t n_rows; /* rows appended (live or not) */
    unsigned char *islots; /* int64: cap * 12 bytes */
    uint64_t *sslots;      /* string: (tag << 32) | row */
    /* string keys by row: bytes of row r are arena[offs[r] .. offs[r+1]) */
    uint64_t *offs;
    uint64_t offs_cap;
    unsigned char *arena;
    uint64_t arena_len, arena_cap;
    pthread_rwlock_t lock;
    int lock_ready;
} KeyIndex;

#define ISLOT_SIZE 12

static inline int64_t islot_key(const unsigned char *s) {
    int64_t k;
    memcpy(&k, s, 8);
    return k;
}
static inline uint32_t islot_row(const unsigned char *s) {
    uint32_t r;
    memcpy(&r, s + 8, 4);
    return r;
}
static inline void islot_set(unsigned char *s, int64_t key, uint32_t row) {
    memcpy(s, &key, 8);
    memcpy(s + 8, &row, 4);
}

static inline const unsigned char *row_key(const KeyIndex *ix, uint32_t row, uint64_t *len) {
    *len = ix->offs[row + 1] - ix->offs[row];
    return ix->arena + ix->offs[row];
}

/* Row of `key`, or ROW_EMPTY. */
static inline uint32_t find_int(const KeyIndex *ix, int64_t key) {
    if (ix->cap == 0)
        return ROW_EMPTY;
    uint64_t mask = ix->cap - 1;
    uint64_t i = hash_int64(key) >> ix->shift;
    for (;;) {
        const unsigned char *s = ix->islots + i * ISLOT_SIZE;
        uint32_t row = islot_row(s);
        if (row == ROW_EMPTY)
            return ROW_EMPTY;
        if (islot_key(s) == key)
            return row;
        i = (i + 1) & mask;
    }
}

static inline uint32_t find_str(const KeyIndex *ix, const unsigned char *p, uint64_t n,
                                uint64_t h) {
    if (ix->cap == 0)
        return ROW_EMPTY;
    uint64_t mask = ix->cap - 1;
    uint64_t i = h >> ix->shift;
    uint32_t tag = (uint32_t)h;
    for (;;) {
        uint64_t s = ix->sslots[i];
        uint32_t row = (uint32_t)s;
        if (row == ROW_EMPTY)
            return ROW_EMPTY;
        if ((uint32_t)(s >> 32) == tag) {
            uint64_t len;
            const unsigned char *k = row_key(ix, row, &len);
            if (len == n && same_bytes(k, p, n))
                return row;
        }
        i = (i + 1) & mask;
    }
}

static int kind_of_format(const char *fmt) {
    if (strcmp(fmt, "l") == 0)
        return KIND_INT64;
    if (strcmp(fmt, "u") == 0 || strcmp(fmt, "U") == 0 || strcmp(fmt, "z") == 0 ||
        strcmp(fmt, "Z") == 0)
        return KIND_STRING;
    return KIND_NONE;
}

static const char *kind_name(int kind) {
    return kind == KIND_INT64 ? "int64" : kind == KIND_STRING ? "string" : "unset";
}

/* String value i of an Arrow utf8/binary ("u"/"z", 32-bit offsets) or
 * large ("U"/"Z", 64-bit offsets) array. */
typedef struct {
    const uint8_t *valid;
    const int32_t *off32;
    const int64_t *off64;
    const unsigned char *data;
    int64_t offset;
} StrView;

static inline const unsigned char *str_at(const StrView *v, int64_t i, uint64_t *len) {
    int64_t j = i + v->offset;
    if (v->off32 != NULL) {
        *len = (uint64_t)(v->off32[j + 1] - v->off32[j]);
        return v->data + v->off32[j];
    }
    *len = (uint64_t)(v->off64[j + 1] - v->off64[j]);
    return v->data + v->off64[j];
}

static void str_view(const Imported *im, StrView *v) {
    const char *fmt = im->schema->format;
    int large = fmt[0] == 'U' || fmt[0] == 'Z';
    v->valid = im->array->buffers[0];
    v->off32 = large ? NULL : im->array->buffers[1];
    v->off64 = large ? im->array->buffers[1] : NULL;
    v->data = im->array->buffers[2];
    v->offset = im->array->offset;
    if (v->data == NULL)
        v->data = (const unsigned char *)""; /* all values empty */
}

/* Checks an imported key array: its type matches the index (setting the
 * index's kind on first use when `adopt`), no children, buffers present. */
static int check_keys(KeyIndex *ix, const Imported *im, int adopt) {
    int kind = kind_of_format(im->schema->format);
    if (kind == KIND_NONE) {
        PyErr_Format(PyExc_TypeError,
                     "key column has Arrow format '%s'; the index takes int64 or "
                     "string/binary keys",
                     im->schema->format);
        return -1;
    }
    if (ix->kind == KIND_NONE && adopt) {
        ix->kind = kind;
        ix->binary = im->schema->format[0] == 'z' || im->schema->format[0] == 'Z';
    } else if (kind != ix->kind) {
        PyErr_Format(PyExc_TypeError, "key column is %s but the index holds %s keys",
                     kind_name(kind), kind_name(ix->kind));
        return -1;
    }
    int64_t need = kind == KIND_INT64 ? 2 : 3;
    if (im->array->n_buffers != need) {
        PyErr_Format(PyExc_ValueError, "key array has %lld buffers, expected %lld",
                     (long long)im->array->n_buffers, (long long)need);
        return -1;
    }
    if (im->array->length > 0 && im->array->buffers[1] == NULL) {
        PyErr_SetString(PyExc_ValueError, "key array has no data buffer");
        return -1;
    }
    return 0;
}

static int64_t first_null(const Imported *im) {
    const uint8_t *valid = im->array->buffers[0];
    if (im->array->null_count == 0 || valid == NULL)
        return -1;
    for (int64_t i = 0; i < im->array->length; i++)
        if (!bit_is_set(valid, i + im->array->offset))
            return i;
    return -1;
}

/* ---- Locking ---------------------------------------------------------------- */

static void lock_write(KeyIndex *ix) {
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_wrlock(&ix->lock);
    Py_END_ALLOW_THREADS
}

static void unlock(KeyIndex *ix) { pthread_rwlock_unlock(&ix->lock); }

/* ---- Growth and insertion (caller holds the write lock) -------------------- */

/* Slot tables beyond a few MB are read at random by every probe: on 2 MiB
 * pages they cost one TLB entry per 2 MiB instead of per 4 KiB. */
static void *slots_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < 2 * huge)
        return malloc(bytes);
    void *p;
    size_t rounded = (bytes + huge - 1) & ~(huge - 1);
    if (posix_memalign(&p, huge, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

static int rehash_to(KeyIndex *ix, uint64_t new_cap) {
    int bits = 0;
    while (((uint64_t)1 << bits) < new_cap)
        bits++;
    if (ix->kind == KIND_INT64) {
        unsigned char *slots = slots_alloc(new_cap * ISLOT_SIZE);
        if (slots == NULL)
            return -1;
        for (uint64_t i = 0; i < new_cap; i++)
            islot_set(slots + i * ISLOT_SIZE, 0, ROW_EMPTY);
        uint64_t mask = new_cap - 1;
        for (uint64_t i = 0; i < ix->cap; i++) {
            const unsigned char *s = ix->islots + i * ISLOT_SIZE;
            uint32_t row = islot_row(s);
            if (row == ROW_EMPTY)
                continue;
            int64_t key = islot_key(s);
            uint64_t j = hash_int64(key) >> (64 - bits);
            while (islot_row(slots + j * ISLOT_SIZE) != ROW_EMPTY)
                j = (j + 1) & mask;
            islot_set(slots + j * ISLOT_SIZE, key, row);
        }
        free(ix->islots);
        ix->islots = slots;
    } else {
        uint64_t *slots = slots_alloc(new_cap * sizeof(uint64_t));
        if (slots == NULL)
            return -1;
        for (uint64_t i = 0; i < new_cap; i++)
            slots[i] = UINT64_MAX;
        uint64_t mask = new_cap - 1;
        for (uint64_t i = 0; i < ix->cap; i++) {
            uint64_t s = ix->sslots[i];
            uint32_t row = (uint32_t)s;
            if (row == ROW_EMPTY)
                continue;
            uint64_t len;
            const unsigned char *k = row_key(ix, row, &len);
            uint64_t h = hash_bytes(k, len);
            uint64_t j = h >> (64 - bits);
            while ((uint32_t)slots[j] != ROW_EMPTY)
                j = (j + 1) & mask;
            slots[j] = s;
        }
        free(ix->sslots);
        ix->sslots = slots;
    }
    ix->cap = new_cap;
    ix->shift = 64 - bits;
    return 0;
}

/* Makes room for `more` new keys at a load factor of at most 3/4. */
static int reserve_keys(KeyIndex *ix, uint64_t more) {
    uint64_t want = ix->count + more;
    uint64_t cap = ix->cap ? ix->cap : 16;
    while (want > cap / 4 * 3)
        cap *= 2;
    if (cap == ix->cap)
        return 0;
    return rehash_to(ix, cap);
}

/* realloc for arrays that may grow large: big ones move to huge pages. */
static void *grow_alloc(void *old, size_t old_bytes, size_t new_bytes) {
    if (new_bytes < ((size_t)4 << 20))
        return realloc(old, new_bytes);
    void *p = slots_alloc(new_bytes);
    if (p == NULL)
        return NULL;
    if (old != NULL && old_bytes)
        memcpy(p, old, old_bytes);
    free(old);
    return p;
}

static int reserve_rows(KeyIndex *ix, uint64_t rows, uint64_t bytes) {
    if (ix->kind != KIND_STRING)
        return 0;
    /* Grow by half (amortized appends) or to the exact need, whichever is
     * larger: a bulk load then fits without slack. */
    uint64_t need = ix->n_rows + rows + 1;
    if (need > ix->offs_cap) {
        uint64_t cap = ix->offs_cap + ix->offs_cap / 2;
        if (cap < need)
            cap = need;
        uint64_t *offs = grow_alloc(ix->offs, ix->offs ? (ix->n_rows + 1) * sizeof(uint64_t) : 0,
                                    cap * sizeof(uint64_t));
        if (offs == NULL)
            return -1;
        if (ix->offs == NULL)
            offs[0] = 0;
        ix->offs = offs;
        ix->offs_cap = cap;
    }
    if (ix->arena == NULL || ix->arena_len + bytes > ix->arena_cap) {
        uint64_t cap = ix->arena_cap + ix->arena_cap / 2;
        if (cap < ix->arena_len + bytes)
            cap = ix->arena_len + bytes;
        if (cap < 16) /* never NULL, even when every key is empty */
            cap = 16;
        unsigned char *arena = grow_alloc(ix->arena, ix->arena_len, cap);
        if (arena == NULL)
            return -1;
        ix->arena = arena;
        ix->arena_cap = cap;
    }
    return 0;
}

/* Points `key` at `row`; returns 1 if the key was already present. Room
 * must have been reserved. */
static int upsert_int(KeyIndex *ix, int64_t key, uint32_t row) {
    uint64_t mask = ix->cap - 1;
    uint64_t i = hash_int64(key) >> ix->shift;
    for (;;) {
        unsigned char *s = ix->islots + i * ISLOT_SIZE;
        uint32_t r = islot_row(s);
        if (r == ROW_EMPTY) {
            islot_set(s, key, row);
            ix->count++;
            return 0;
        }
        if (islot_key(s) == key) {
            islot_set(s, key, row);
            return 1;
        }
        i = (i + 1) & mask;
    }
}

/* The row's bytes must already be in the arena. */
static int upsert_str(KeyIndex *ix, uint32_t row) {
    uint64_t n;
    const unsigned char *p = row_key(ix, row, &n);
    uint64_t h = hash_bytes(p, n);
    uint64_t mask = ix->cap - 1;
    uint64_t i = h >> ix->shift;
    uint32_t tag = (uint32_t)h;
    uint64_t slot = ((uint64_t)tag << 32) | row;
    for (;;) {
        uint64_t s = ix->sslots[i];
        uint32_t r = (uint32_t)s;
        if (r == ROW_EMPTY) {
            ix->sslots[i] = slot;
            ix->count++;
            return 0;
        }
        if ((uint32_t)(s >> 32) == tag) {
            uint64_t len;
            const unsigned char *k = row_key(ix, r, &len);
            if (len == n && same_bytes(k, p, n)) {
                ix->sslots[i] = slot;
                return 1;
            }
        }
        i = (i + 1) & mask;
    }
}

static inline uint64_t home_of_slot(const KeyIndex *ix, uint64_t i) {
    if (ix->kind == KIND_INT64)
        return hash_int64(islot_key(ix->islots + i * ISLOT_SIZE)) >> ix->shift;
    uint64_t len;
    const unsigned char *k = row_key(ix, (uint32_t)ix->sslots[i], &len);
    return hash_bytes(k, len) >> ix->shift;
}

static inline int slot_empty(const KeyIndex *ix, uint64_t i) {
    if (ix->kind == KIND_INT64)
        return islot_row(ix->islots + i * ISLOT_SIZE) == ROW_EMPTY;
    return (uint32_t)ix->sslots[i] == ROW_EMPTY;
}

static inline void move_slot(KeyIndex *ix, uint64_t to, uint64_t from) {
    if (ix->kind == KIND_INT64)
        memcpy(ix->islots + to * ISLOT_SIZE, ix->islots + from * ISLOT_SIZE, ISLOT_SIZE);
    else
        ix->sslots[to] = ix->sslots[from];
}

static inline void clear_slot(KeyIndex *ix, uint64_t i) {
    if (ix->kind == KIND_INT64)
        islot_set(ix->islots + i * ISLOT_SIZE, 0, ROW_EMPTY);
    else
        ix->sslots[i] = UINT64_MAX;
}

/* Empties slot i and shifts later members of its cluster back so that
 * every key stays reachable from its home slot without tombstones. */
static void remove_slot(KeyIndex *ix, uint64_t i) {
    uint64_t mask = ix->cap - 1;
    uint64_t hole = i;
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (slot_empty(ix, j))
            break;
        uint64_t home = home_of_slot(ix, j);
        /* j may fill the hole when its home is not cyclically in (hole, j]. */
        int in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_between) {
            move_slot(ix, hole, j);
            hole = j;
        }
    }
    clear_slot(ix, hole);
    ix->count--;
}

static int remove_int(KeyIndex *ix, int64_t key) {
    if (ix->cap == 0)
        return 0;
    uint64_t mask = ix->cap - 1;
    uint64_t i = hash_int64(key) >> ix->shift;
    for (;;) {
        const unsigned char *s = ix->islots + i * ISLOT_SIZE;
        if (islot_row(s) == ROW_EMPTY)
            return 0;
        if (islot_key(s) == key) {
            remove_slot(ix, i);
            return 1;
        }
        i = (i + 1) & mask;
    }
}

static int remove_str(KeyIndex *ix, const unsigned char *p, uint64_t n) {
    if (ix->cap == 0)
        return 0;
    uint64_t h = hash_bytes(p, n);
    uint64_t mask = ix->cap - 1;
    uint64_t i = h >> ix->shift;
    uint32_t tag = (uint32_t)h;
    for (;;) {
        uint64_t s = ix->sslots[i];
        uint32_t r = (uint32_t)s;
        if (r == ROW_EMPTY)
            return 0;
        if ((uint32_t)(s >> 32) == tag) {
            uint64_t len;
            const unsigned char *k = row_key(ix, r, &len);
            if (len == n && same_bytes(k, p, n)) {
                remove_slot(ix, i);
                return 1;
            }
        }
        i = (i + 1) & mask;
    }
}

static void free_storage(KeyIndex *ix) {
    free(ix->islots);
    free(ix->sslots);
    free(ix->offs);
    free(ix->arena);
    ix->islots = NULL;
    ix->sslots = NULL;
    ix->offs = NULL;
    ix->arena = NULL;
    ix->cap = ix->count = ix->n_rows = 0;
    ix->offs_cap = ix->arena_len = ix->arena_cap = 0;
    ix->shift = 64;
    ix->kind = KIND_NONE;
    ix->binary = 0;
}

/* ---- Python-level key conversion ----------------------------------------- */

/* 1: converted; 0: the object cannot be a key of this index (not found);
 * -1: error set. */
static int py_int_key(PyObject *obj, int64_t *out) {
    if (!PyLong_Check(obj)) {
        if (!PyIndex_Check(obj))
            return 0;
        PyObject *i = PyNumber_Index(obj);
        if (i == NULL)
            return -1;
        int r = py_int_key(i, out);
        Py_DECREF(i);
        return r;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow)
        return 0;
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)v;
    return 1;
}

static int py_str_key(const KeyIndex *ix, PyObject *obj, const unsigned char **p,
                      Py_ssize_t *n) {
    if (!ix->binary && PyUnicode_Check(obj)) {
        const char *s = PyUnicode_AsUTF8AndSize(obj, n);
        if (s == NULL)
            return -1;
        *p = (const unsigned char *)s;
        return 1;
    }
    if (ix->binary && PyBytes_Check(obj)) {
        *p = (const unsigned char *)PyBytes_AS_STRING(obj);
        *n = PyBytes_GET_SIZE(obj);
        return 1;
    }
    return 0;
}

/* Row of a Python key, ROW_EMPTY when absent; -2 on error. */
static int64_t find_py(KeyIndex *ix, PyObject *key) {
    if (ix->kind == KIND_INT64) {
        int64_t k;
        int r = py_int_key(key, &k);
        if (r <= 0)
            return r < 0 ? -2 : (int64_t)ROW_EMPTY;
        return find_int(ix, k);
    }
    if (ix->kind == KIND_STRING) {
        const unsigned char *p;
        Py_ssize_t n;
        int r = py_str_key(ix, key, &p, &n);
        if (r <= 0)
            return r < 0 ? -2 : (int64_t)ROW_EMPTY;
        return find_str(ix, p, (uint64_t)n, hash_bytes(p, (uint64_t)n));
    }
    return ROW_EMPTY;
}

/* ---- Methods ------------------------------------------------------------ */

static PyObject *KeyIndex_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args;
    (void)kwds;
    KeyIndex *ix = (KeyIndex *)type->tp_alloc(type, 0);
    if (ix == NULL)
        return NULL;
    if (pthread_rwlock_init(&ix->lock, NULL) != 0) {
        Py_DECREF(ix);
        PyErr_SetString(PyExc_OSError, "cannot create the index lock");
        return NULL;
    }
    ix->lock_ready = 1;
    return (PyObject *)ix;
}


static void KeyIndex_dealloc(KeyIndex *ix) {
    free_storage(ix);
    if (ix->lock_ready)
        pthread_rwlock_destroy(&ix->lock);
    Py_TYPE(ix)->tp_free((PyObject *)ix);
}

static Py_ssize_t KeyIndex_len(KeyIndex *ix) { return (Py_ssize_t)ix->count; }

static int KeyIndex_contains(KeyIndex *ix, PyObject *key) {
    int64_t r = find_py(ix, key);
    if (r == -2)
        return -1;
    return r != ROW_EMPTY;
}

static PyObject *KeyIndex_find(KeyIndex *ix, PyObject *key) {
    int64_t r = find_py(ix, key);
    if (r == -2)
        return NULL;
    return PyLong_FromLongLong(r == ROW_EMPTY ? -1 : r);
}

static PyObject *KeyIndex_clear(KeyIndex *ix, PyObject *unused) {
    (void)unused;
    lock_write(ix);
    free_storage(ix);
    unlock(ix);
    Py_RETURN_NONE;
}

/* Numbers the keys' rows from ix->n_rows on; a key already present (or
 * repeated later in `im`) points at its last row. Null keys are refused
 * before anything changes. The caller holds the write lock (or owns `ix`). */
static int append_keys(KeyIndex *ix, const Imported *im, uint64_t *first_out,
                       uint64_t *replaced_out) {
    if (check_keys(ix, im, 1) < 0)
        return -1;
    int64_t nul = first_null(im);
    if (nul >= 0) {
        PyErr_Format(PyExc_ValueError, "null key at position %lld", (long long)nul);
        return -1;
    }
    uint64_t n = (uint64_t)im->array->length;
    if (ix->n_rows + n > MAX_ROWS) {
        PyErr_Format(PyExc_OverflowError, "an index holds at most %llu rows",
                     (unsigned long long)MAX_ROWS);
        return -1;
    }
    StrView sv;
    memset(&sv, 0, sizeof sv);
    uint64_t bytes = 0;
    if (ix->kind == KIND_STRING) {
        str_view(im, &sv);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t len;
            (void)str_at(&sv, (int64_t)i, &len);
            bytes += len;
        }
    }
    if (reserve_keys(ix, n) < 0 || reserve_rows(ix, n, bytes) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    uint64_t first = ix->n_rows, replaced = 0;
    if (ix->kind == KIND_INT64) {
        const int64_t *keys = (const int64_t *)im->array->buffers[1] + im->array->offset;
        for (uint64_t i = 0; i < n; i++)
            replaced += (uint64_t)upsert_int(ix, keys[i], (uint32_t)(first + i));
    } else {
        for (uint64_t i = 0; i < n; i++) {
            uint64_t len;
            const unsigned char *p = str_at(&sv, (int64_t)i, &len);
            uint64_t row = first + i;
            if (len)
                memcpy(ix->arena + ix->arena_len, p, len);
            ix->arena_len += len;
            ix->offs[row + 1] = ix->arena_len;
            replaced += (uint64_t)upsert_str(ix, (uint32_t)row);
        }
    }
    ix->n_rows += n;
    *first_out = first;
    *replaced_out = replaced;
    return 0;
}

/* append(keys) -> (first_row, replaced). */
static PyObject *KeyIndex_append(KeyIndex *ix, PyObject *arr) {
    Imported im;
    if (import_array(arr, &im, "keys") < 0)
        return NULL;
    PyObject *result = NULL;
    lock_write(ix);
    int had_kind = ix->kind != KIND_NONE;
    uint64_t first, replaced;
    if (append_keys(ix, &im, &first, &replaced) == 0)
        result = Py_BuildValue("(KK)", (unsigned long long)first, (unsigned long long)replaced);
    else if (!had_kind && ix->n_rows == 0)
        ix->kind = KIND_NONE;
    unlock(ix);
    release_imported(&im);
    return result;
}

/* Moves the storage (not the lock or the object header) of `from` into `to`. */
static void move_storage(KeyIndex *to, KeyIndex *from) {
    to->kind = from->kind;
    to->binary = from->binary;
    to->cap = from->cap;
    to->shift = from->shift;
    to->count = from->count;
    to->n_rows = from->n_rows;
    to->islots = from->islots;
    to->sslots = from->sslots;
    to->offs = from->offs;
    to->offs_cap = from->offs_cap;
    to->arena = from->arena;
    to->arena_len = from->arena_len;
    to->arena_cap = from->arena_cap;
}

/* reset(keys) -> (0, replaced): replaces the whole index with one numbering
 * `keys` from row 0, built aside and swapped in at once, so a concurrent
 * lookup sees the old index or the new one, never a partial one. */
static PyObject *KeyIndex_reset(KeyIndex *ix, PyObject *arr) {
    Imported im;
    if (import_array(arr, &im, "keys") < 0)
        return NULL;
    KeyIndex fresh, old;
    memset(&fresh, 0, sizeof fresh);
    memset(&old, 0, sizeof old);
    fresh.shift = 64;
    fresh.kind = ix->kind;
    fresh.binary = ix->binary;
    uint64_t first, replaced;
    if (append_keys(&fresh, &im, &first, &replaced) < 0) {
        free_storage(&fresh);
        release_imported(&im);
        return NULL;
    }
    lock_write(ix);
    move_storage(&old, ix);
    move_storage(ix, &fresh);
    unlock(ix);
    free_storage(&old);
    release_imported(&im);
    return Py_BuildValue("(KK)", (unsigned long long)first, (unsigned long long)replaced);
}

/* remove(keys) -> how many were present. */
static PyObject *KeyIndex_remove(KeyIndex *ix, PyObject *arr) {
    Imported im;
    if (import_array(arr, &im, "keys") < 0)
        return NULL;
    PyObject *result = NULL;
    lock_write(ix);
    if (ix->kind == KIND_NONE) {
        result = PyLong_FromLong(0);
        goto done;
    }
    if (check_keys(ix, &im, 0) < 0)
        goto done;
    int64_t nul = first_null(&im);
    if (nul >= 0) {
        PyErr_Format(PyExc_ValueError, "null key at position %lld", (long long)nul);
        goto done;
    }
    uint64_t n = (uint64_t)im.array->length, removed = 0;
    if (ix->kind == KIND_INT64) {
        const int64_t *keys = (const int64_t *)im.array->buffers[1] + im.array->offset;
        for (uint64_t i = 0; i < n; i++)
            removed += (uint64_t)remove_int(ix, keys[i]);
    } else {
        StrView sv;
        memset(&sv, 0, sizeof sv);
        str_view(&im, &sv);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t len;
            const unsigned char *p = str_at(&sv, (int64_t)i, &len);
            removed += (uint64_t)remove_str(ix, p, len);
        }
    }
    result = PyLong_FromUnsignedLongLong(removed);
done:
    unlock(ix);
    release_imported(&im);
    return result;
}

/* live_bitmap() -> bytearray: an Arrow validity-style bitmap over the
 * n_rows rows, bit r set when row r is the current row of some key. */
static PyObject *KeyIndex_live_bitmap(KeyIndex *ix, PyObject *unused) {
    (void)unused;
    Py_ssize_t nbytes = (Py_ssize_t)((ix->n_rows + 7) / 8);
    PyObject *out = PyByteArray_FromStringAndSize(NULL, nbytes);
    if (out == NULL)
        return NULL;
    uint8_t *bits = (uint8_t *)PyByteArray_AS_STRING(out);
    memset(bits, 0, (size_t)nbytes);
    for (uint64_t i = 0; i < ix->cap; i++) {
        uint32_t row = ix->kind == KIND_INT64 ? islot_row(ix->islots + i * ISLOT_SIZE)
                                              : (uint32_t)ix->sslots[i];
        if (row != ROW_EMPTY)
            bits[row >> 3] |= (uint8_t)(1u << (row & 7));
    }
    return out;
}

/* ---- Output buffers ------------------------------------------------------ */

/* A writable buffer-protocol object for probe() outputs. Large ones are
 * 2 MiB-aligned and advised to use transparent huge pages: a 10M-row probe
 * writes hundreds of MB of fresh memory, and first-touch page faults at
 * 4 KiB granularity otherwise cost as much as the join itself. */
typedef struct {
    PyObject_HEAD
    unsigned char *data;
    Py_ssize_t size;
    size_t cap; /* bytes allocated; a multiple of HUGE_ALIGN for big buffers */
    Py_ssize_t exports;
} OutBuffer;

static PyTypeObject OutBufferType;

#define HUGE_ALIGN ((size_t)2 << 20)

/* Big buffers freed by Arrow are kept for the next probe (as Arrow's own
 * allocators keep memory): fresh pages cost a kernel fault and zeroing
 * each, which for a stream of large joins costs as much as the join.
 * Bounded in count and bytes; touched only with the GIL held. */
#define POOL_SLOTS 16
#define POOL_MAX_BYTES ((size_t)512 << 20)
static struct {
    void *p;
    size_t cap;
} pool[POOL_SLOTS];
static size_t pool_bytes;

static void *pool_take(size_t rounded, size_t *cap) {
    int best = -1;
    for (int i = 0; i < POOL_SLOTS; i++)
        if (pool[i].p != NULL && pool[i].cap >= rounded && pool[i].cap <= 2 * rounded &&
            (best < 0 || pool[i].cap < pool[best].cap))
            best = i;
    if (best < 0)
        return NULL;
    void *p = pool[best].p;
    *cap = pool[best].cap;
    pool_bytes -= pool[best].cap;
    pool[best].p = NULL;
    return p;
}

static int pool_put(void *p, size_t cap) {
    if (pool_bytes + cap > POOL_MAX_BYTES)
        return 0;
    for (int i = 0; i < POOL_SLOTS; i++)
        if (pool[i].p == NULL) {
            pool[i].p = p;
            pool[i].cap = cap;
            pool_bytes += cap;
            return 1;
        }
    return 0;
}

static OutBuffer *outbuf_new(Py_ssize_t size) {
    OutBuffer *b = PyObject_New(OutBuffer, &OutBufferType);
    if (b == NULL)
        return NULL;
    b->size = size;
    b->exports = 0;
    size_t bytes = size > 0 ? (size_t)size : 1;
    void *p = NULL;
    if (bytes >= 2 * HUGE_ALIGN) {
        size_t rounded = (bytes + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
        b->cap = rounded;
        p = pool_take(rounded, &b->cap);
        if (p == NULL) {
            if (posix_memalign(&p, HUGE_ALIGN, rounded) != 0)
                p = NULL;
#ifdef MADV_HUGEPAGE
            else
                (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
        }
    } else {
        b->cap = bytes;
        if (posix_memalign(&p, 64, bytes) != 0)
            p = NULL;
    }
    if (p == NULL) {
        b->data = NULL;
        Py_DECREF(b);
        PyErr_NoMemory();
        return NULL;
    }
    b->data = p;
    return b;
}

static void outbuf_dealloc(OutBuffer *b) {
    if (b->data != NULL && !(b->cap >= 2 * HUGE_ALIGN && pool_put(b->data, b->cap)))
        free(b->data);
    PyObject_Free(b);
}

static int outbuf_getbuffer(OutBuffer *b, Py_buffer *view, int flags) {
    if (PyBuffer_FillInfo(view, (PyObject *)b, b->data, b->size, 0, flags) < 0)
        return -1;
    b->exports++;
    return 0;
}

static void outbuf_releasebuffer(OutBuffer *b, Py_buffer *view) {
    (void)view;
    b->exports--;
}

static Py_ssize_t outbuf_len(OutBuffer *b) { return b->size; }

static PyBufferProcs OutBuffer_as_buffer = {
    .bf_getbuffer = (getbufferproc)outbuf_getbuffer,
    .bf_releasebuffer = (releasebufferproc)outbuf_releasebuffer,
};

static PySequenceMethods OutBuffer_as_sequence = {
    .sq_length = (lenfunc)outbuf_len,
};

static PyTypeObject OutBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "weir._enrich.OutBuffer",
    .tp_doc = "A probe() output buffer (buffer protocol; len() is its size in bytes).",
    .tp_basicsize = sizeof(OutBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)outbuf_dealloc,
    .tp_as_buffer = &OutBuffer_as_buffer,
    .tp_as_sequence = &OutBuffer_as_sequence,
};

/* ---- probe ----------------------------------------------------------------- */

typedef struct {
    Imported im;
    const unsigned char *src; /* first value (offset applied) */
    int width;
    OutBuffer *out;
} Gather;

#define PREFETCH_AHEAD 16
/* Rows are probed in blocks that fit L1 alongside the gathered values;
 * a multiple of 8 keeps validity bytes whole. */
#define PROBE_BLOCK 1024

/* rows[i] = dimension row of probe key start+i (i < cnt), ROW_EMPTY on a
 * miss or a null key. */
static void lookup_range(const KeyIndex *ix, const Imported *keys, const StrView *sv,
                         int64_t start, int64_t cnt, uint32_t *rows) {
    const uint8_t *valid = keys->array->null_count ? keys->array->buffers[0] : NULL;
    int64_t off = keys->array->offset;
    if (ix->count == 0) {
        for (int64_t i = 0; i < cnt; i++)
            rows[i] = ROW_EMPTY;
        return;
    }
    if (ix->kind == KIND_INT64) {
        const int64_t *k = (const int64_t *)keys->array->buffers[1] + off + start;
        /* Beyond the caches, prefetching the home slot a few rows ahead
         * overlaps the memory latency of consecutive probes. */
        if (ix->cap * ISLOT_SIZE > ((uint64_t)1 << 20)) {
            for (int64_t i = 0; i < cnt; i++) {
                if (i + PREFETCH_AHEAD < cnt)
                    __builtin_prefetch(ix->islots + (hash_int64(k[i + PREFETCH_AHEAD]) >> ix->shift) *
                                                        ISLOT_SIZE);
                rows[i] = find_int(ix, k[i]);
            }
        } else {
            for (int64_t i = 0; i < cnt; i++)
                rows[i] = find_int(ix, k[i]);
        }
    } else {
        int far = ix->cap * sizeof(uint64_t) > ((uint64_t)1 << 20);
        /* Hash a window ahead so the slot fetch is in flight by the time
         * the row is compared. */
        uint64_t ring[PREFETCH_AHEAD];
        int64_t pre = cnt < PREFETCH_AHEAD ? cnt : PREFETCH_AHEAD;
        for (int64_t i = 0; i < pre; i++) {
            uint64_t len;
            const unsigned char *p = str_at(sv, start + i, &len);
            ring[i] = hash_bytes(p, len);
        }
        for (int64_t i = 0; i < cnt; i++) {
            uint64_t h = ring[i % PREFETCH_AHEAD];
            if (far) {
                /* A three-stage pipeline over the cache misses of one
                 * probe: the home slot (16 rows ahead), the candidate
                 * row's key offsets (8 ahead, once the slot has arrived),
                 * then its key bytes (4 ahead). */
                if (i + PREFETCH_AHEAD / 2 < cnt) {
                    uint64_t hs = ring[(i + PREFETCH_AHEAD / 2) % PREFETCH_AHEAD];
                    uint32_t r = (uint32_t)ix->sslots[hs >> ix->shift];
                    if (r != ROW_EMPTY)
                        __builtin_prefetch(&ix->offs[r]);
                }
                if (i + PREFETCH_AHEAD / 4 < cnt) {
                    uint64_t hs = ring[(i + PREFETCH_AHEAD / 4) % PREFETCH_AHEAD];
                    uint64_t slot = ix->sslots[hs >> ix->shift];
                    uint32_t r = (uint32_t)slot;
                    if (r != ROW_EMPTY && (uint32_t)(slot >> 32) == (uint32_t)hs)
                        __builtin_prefetch(ix->arena + ix->offs[r]);
                }
            }
            if (i + PREFETCH_AHEAD < cnt) {
                uint64_t len;
                const unsigned char *p = str_at(sv, start + i + PREFETCH_AHEAD, &len);
                uint64_t h2 = hash_bytes(p, len);
                ring[i % PREFETCH_AHEAD] = h2;
                if (far)
                    __builtin_prefetch(&ix->sslots[h2 >> ix->shift]);
            }
            uint64_t len;
            const unsigned char *p = str_at(sv, start + i, &len);
            rows[i] = find_str(ix, p, len, h);
        }
    }
    if (valid != NULL)
        for (int64_t i = 0; i < cnt; i++)
            if (!bit_is_set(valid, off + start + i))
                rows[i] = ROW_EMPTY;
}

static void gather_fixed(const Gather *g, const int32_t *take, int64_t m, unsigned char *dst) {
    switch (g->width) {
    case 8: {
        const uint64_t *s = (const uint64_t *)g->src;
        uint64_t *d = (uint64_t *)dst;
        for (int64_t i = 0; i < m; i++)
            d[i] = s[take[i]];
        break;
    }
    case 4: {
        const uint32_t *s = (const uint32_t *)g->src;
        uint32_t *d = (uint32_t *)dst;
        for (int64_t i = 0; i < m; i++)
            d[i] = s[take[i]];
        break;
    }
    case 2: {
        const uint16_t *s = (const uint16_t *)g->src;
        uint16_t *d = (uint16_t *)dst;
        for (int64_t i = 0; i < m; i++)
            d[i] = s[take[i]];
        break;
    }
    default: {
        const uint8_t *s = g->src;
        uint8_t *d = dst;
        for (int64_t i = 0; i < m; i++)
            d[i] = s[take[i]];
        break;
    }
    }
}

/* One slice [start, end) of a probe. Left joins write output row i at i;
 * inner joins compact into the front of the slice (from `start`) and
 * report how many rows they kept in `m`. */
typedef struct {
    const KeyIndex *ix;
    const Imported *keys;
    const StrView *sv;
    Gather *gs;
    Py_ssize_t ng;
    int inner, empty_dim;
    int32_t *take;
    uint8_t *valid;
    int32_t *sel;
    int64_t start, end;
    int64_t misses, m;
} ProbeJob;

#define MAX_PROBE_THREADS 8

static void run_probe(ProbeJob *job) {
    uint32_t rows[PROBE_BLOCK];
    int32_t tk_local[PROBE_BLOCK];
    int64_t misses = 0, m = 0;
    for (int64_t start = job->start; start < job->end; start += PROBE_BLOCK) {
        int64_t cnt = job->end - start < PROBE_BLOCK ? job->end - start : PROBE_BLOCK;
        lookup_range(job->ix, job->keys, job->sv, start, cnt, rows);
        int32_t *tk;
        int64_t out_at, out_cnt;
        if (!job->inner) {
            tk = job->take ? job->take + start : tk_local;
            uint8_t *valid = job->valid;
            int64_t i = 0;
            for (; i + 8 <= cnt; i += 8) {
                uint8_t byte = 0;
                for (int j = 0; j < 8; j++) {
                    uint32_t r = rows[i + j];
                    int hit = r != ROW_EMPTY;
                    byte |= (uint8_t)(hit << j);
                    tk[i + j] = hit ? (int32_t)r : 0;
                }
                misses += 8 - __builtin_popcount(byte);
                valid[(start + i) >> 3] = byte;
            }
            if (i < cnt) { /* the last, partial byte */
                uint8_t byte = 0;
                for (int j = 0; i + j < cnt; j++) {
                    uint32_t r = rows[i + j];
                    int hit = r != ROW_EMPTY;
                    byte |= (uint8_t)(hit << j);
                    tk[i + j] = hit ? (int32_t)r : 0;
                    misses += !hit;
                }
                valid[(start + i) >> 3] = byte;
            }
            out_at = start;
            out_cnt = cnt;
        } else {
            int64_t base = job->start + m;
            tk = job->take + base;
            int32_t *sel = job->sel + base;
            int64_t k = 0;
            for (int64_t i = 0; i < cnt; i++) {
                uint32_t r = rows[i];
                sel[k] = (int32_t)(start + i);
                tk[k] = (int32_t)r;
                k += r != ROW_EMPTY;
            }
            out_at = base;
            out_cnt = k;
            m += k;
        }
        for (Py_ssize_t g = 0; g < job->ng; g++) {
            unsigned char *dst = job->gs[g].out->data + out_at * job->gs[g].width;
            if (job->empty_dim) /* every row missed; nothing to read */
                memset(dst, 0, (size_t)(out_cnt * job->gs[g].width));
            else
                gather_fixed(&job->gs[g], tk, out_cnt, dst);
        }
    }
    job->misses = misses;
    job->m = m;
}

static void *probe_thread(void *arg) {
    run_probe(arg);
    return NULL;
}

/*
 * probe(keys, inner, gather=(), need_take=True, threads=1)
 *     -> (take, validity, misses, selection, gathered)
 *
 * `threads` slices of the batch are probed in parallel (threads of our
 * own, started here; the caller's read lock covers them all).
 *
 *   take       buffer of int32 dimension rows, one per output row (0 where
 *              a left join misses); None when need_take is false
 *   validity   left join with misses: bitmap, bit i clear on a miss;
 *              otherwise None
 *   misses     probe rows without a match (null keys included)
 *   selection  inner join that dropped rows: buffer of int32 probe row
 *              numbers kept; otherwise None
 *   gathered   one buffer per `gather` array: its values taken by the
 *              join (each a fixed-width Arrow array without nulls, of the
 *              dimension's full length)
 * Buffers are OutBuffer objects (buffer protocol) sized to the output.
 */
static PyObject *KeyIndex_probe(KeyIndex *ix, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"keys", "inner", "gather", "need_take", "threads", NULL};
    PyObject *keys_obj, *gather_obj = NULL;
    int inner = 0, need_take = 1, threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Op|Opi:probe", kwlist, &keys_obj, &inner,
                                     &gather_obj, &need_take, &threads))
        return NULL;
    if (threads < 1 || threads > MAX_PROBE_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads must be between 1 and %d", MAX_PROBE_THREADS);
        return NULL;
    }
    PyObject *gseq = gather_obj == NULL || gather_obj == Py_None
                         ? PyTuple_New(0)
                         : PySequence_Fast(gather_obj, "gather must be a sequence");
    if (gseq == NULL)
        return NULL;
    if (inner)
        need_take = 1;

    Imported keys;
    if (import_array(keys_obj, &keys, "keys") < 0) {
        Py_DECREF(gseq);
        return NULL;
    }
    Py_ssize_t ng = PySequence_Fast_GET_SIZE(gseq);
    Gather *gs = PyMem_Calloc((size_t)(ng ? ng : 1), sizeof(Gather));
    OutBuffer *take_out = NULL, *valid_out = NULL, *sel_out = NULL;
    PyObject *result = NULL;
    if (gs == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (ix->kind == KIND_NONE) {
        PyErr_SetString(PyExc_ValueError, "the index is empty and has no key type yet");
        goto fail;
    }
    if (check_keys(ix, &keys, 0) < 0)
        goto fail;
    int64_t n = keys.array->length;
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a probe batch holds at most 2**31-1 rows");
        goto fail;
    }
    for (Py_ssize_t g = 0; g < ng; g++) {
        Gather *gt = &gs[g];
        if (import_array(PySequence_Fast_GET_ITEM(gseq, g), &gt->im, "gather array") < 0)
            goto fail;
        const char *fmt = gt->im.schema->format;
        int width = 0;
        switch (fmt[0]) {
        case 'c': case 'C': width = 1; break;
        case 's': case 'S': case 'e': width = 2; break;
        case 'i': case 'I': case 'f': width = 4; break;
        case 'l': case 'L': case 'g': width = 8; break;
        default: break;
        }
        if (fmt[0] == '\0' || fmt[1] != '\0')
            width = 0;
        if (width == 0 || gt->im.array->n_buffers != 2 || gt->im.array->null_count != 0 ||
            gt->im.array->n_children != 0) {
            PyErr_Format(PyExc_TypeError,
                         "gather array %zd must be a fixed-width numeric array without nulls "
                         "(format '%s')",
                         g, fmt);
            goto fail;
        }
        if ((uint64_t)gt->im.array->length != ix->n_rows) {
            PyErr_Format(PyExc_ValueError,
                         "gather array %zd has %lld rows but the index numbers %llu", g,
                         (long long)gt->im.array->length, (unsigned long long)ix->n_rows);
            goto fail;
        }
        if (gt->im.array->buffers[1] == NULL && ix->n_rows > 0) {
            PyErr_Format(PyExc_ValueError, "gather array %zd has no data buffer", g);
            goto fail;
        }
        gt->width = width;
        gt->src = (const unsigned char *)gt->im.array->buffers[1] +
                  (size_t)gt->im.array->offset * (size_t)width;
        gt->out = outbuf_new((Py_ssize_t)(n * width));
        if (gt->out == NULL)
            goto fail;
    }
    if (need_take && (take_out = outbuf_new((Py_ssize_t)(n * 4))) == NULL)
        goto fail;
    if (!inner && (valid_out = outbuf_new((Py_ssize_t)((n + 7) / 8))) == NULL)
        goto fail;
    if (inner && (sel_out = outbuf_new((Py_ssize_t)(n * 4))) == NULL)
        goto fail;

    StrView sv;
    memset(&sv, 0, sizeof sv);
    if (ix->kind == KIND_STRING)
        str_view(&keys, &sv);
    int32_t *take = take_out ? (int32_t *)take_out->data : NULL;
    uint8_t *valid = valid_out ? valid_out->data : NULL;
    int32_t *sel = sel_out ? (int32_t *)sel_out->data : NULL;
    int64_t misses = 0, m = 0;
    int empty_dim = ix->n_rows == 0;

    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_rdlock(&ix->lock);
    /* Split at block boundaries (so validity bytes never straddle jobs). */
    int64_t per = (n + threads - 1) / threads;
    per = (per + PROBE_BLOCK - 1) / PROBE_BLOCK * PROBE_BLOCK;
    ProbeJob jobs[MAX_PROBE_THREADS];
    pthread_t tids[MAX_PROBE_THREADS];
    int started[MAX_PROBE_THREADS] = {0};
    int njobs = 0;
    for (int64_t at = 0; at < n || njobs == 0; at += per) {
        ProbeJob *j = &jobs[njobs++];
        j->ix = ix;
        j->keys = &keys;
        j->sv = &sv;
        j->gs = gs;
        j->ng = ng;
        j->inner = inner;
        j->empty_dim = empty_dim;
        j->take = take;
        j->valid = valid;
        j->sel = sel;
        j->start = at;
        j->end = at + per < n ? at + per : n;
        j->misses = j->m = 0;
        if (njobs == MAX_PROBE_THREADS)
            break;
    }
    for (int t = 1; t < njobs; t++)
        started[t] = pthread_create(&tids[t], NULL, probe_thread, &jobs[t]) == 0;
    run_probe(&jobs[0]);
    for (int t = 1; t < njobs; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_probe(&jobs[t]); /* no thread to be had: do it here */
    }
    if (!inner) {
        for (int t = 0; t < njobs; t++)
            misses += jobs[t].misses;
        m = n;
    } else {
        /* Each job compacted its output into the front of its own range;
         * close the gaps. */
        m = jobs[0].m;
        for (int t = 1; t < njobs; t++) {
            ProbeJob *j = &jobs[t];
            if (j->m && m != j->start) {
                memmove(take + m, take + j->start, (size_t)j->m * 4);
                memmove(sel + m, sel + j->start, (size_t)j->m * 4);
                for (Py_ssize_t g = 0; g < ng; g++)
                    memmove(gs[g].out->data + m * gs[g].width,
                            gs[g].out->data + j->start * gs[g].width,
                            (size_t)(j->m * gs[g].width));
            }
            m += j->m;
        }
        misses = n - m;
    }
    pthread_rwlock_unlock(&ix->lock);
    Py_END_ALLOW_THREADS

    /* Sizes now say how much of each buffer is output. */
    if (take_out)
        take_out->size = (Py_ssize_t)(m * 4);
    if (sel_out)
        sel_out->size = (Py_ssize_t)(m * 4);
    for (Py_ssize_t g = 0; g < ng; g++)
        gs[g].out->size = (Py_ssize_t)(m * gs[g].width);
    if (inner && misses == 0)
        Py_CLEAR(sel_out);
    if (!inner && misses == 0)
        Py_CLEAR(valid_out);
    PyObject *gathered = PyTuple_New(ng);
    if (gathered == NULL)
        goto fail;
    for (Py_ssize_t g = 0; g < ng; g++) {
        PyTuple_SET_ITEM(gathered, g, (PyObject *)gs[g].out);
        gs[g].out = NULL;
    }
    result = Py_BuildValue("(OOLON)", take_out ? (PyObject *)take_out : Py_None,
                           valid_out ? (PyObject *)valid_out : Py_None, (long long)misses,
                           sel_out ? (PyObject *)sel_out : Py_None, gathered);
fail:
    Py_XDECREF(take_out);
    Py_XDECREF(valid_out);
    Py_XDECREF(sel_out);
    if (gs != NULL) {
        for (Py_ssize_t g = 0; g < ng; g++) {
            Py_XDECREF(gs[g].out);
            release_imported(&gs[g].im);
        }
        PyMem_Free(gs);
    }
    release_imported(&keys);
    Py_DECREF(gseq);
    return result;
}


static PyObject *KeyIndex_get_kind(KeyIndex *ix, void *closure) {
    (void)closure;
    if (ix->kind == KIND_NONE)
        Py_RETURN_NONE;
    return PyUnicode_FromString(kind_name(ix->kind));
}

static PyObject *KeyIndex_get_nbytes(KeyIndex *ix, void *closure) {
    (void)closure;
    uint64_t bytes = ix->kind == KIND_INT64 ? ix->cap * ISLOT_SIZE : ix->cap * sizeof(uint64_t);
    bytes += ix->offs_cap * sizeof(uint64_t) + ix->arena_cap;
    return PyLong_FromUnsignedLongLong(bytes);
}

static PyObject *KeyIndex_get_n_rows(KeyIndex *ix, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(ix->n_rows);
}

static PyObject *KeyIndex_get_capacity(KeyIndex *ix, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(ix->cap);
}

static PyMethodDef KeyIndex_methods[] = {
    {"_find", (PyCFunction)KeyIndex_find, METH_O,
     "_find(key) -> row of key, or -1 when absent (or of the wrong type)."},
    {"_append", (PyCFunction)KeyIndex_append, METH_O,
     "_append(keys) -> (first_row, replaced): number the keys' rows from n_rows on."},
    {"_reset", (PyCFunction)KeyIndex_reset, METH_O,
     "_reset(keys) -> (0, replaced): swap in an index numbering just these keys."},
    {"_remove", (PyCFunction)KeyIndex_remove, METH_O,
     "_remove(keys) -> how many of the keys were present."},
    {"_clear", (PyCFunction)KeyIndex_clear, METH_NOARGS, "_clear(): drop every key and row."},
    {"_live_bitmap", (PyCFunction)KeyIndex_live_bitmap, METH_NOARGS,
     "_live_bitmap() -> bytearray bitmap of the rows some key points at."},
    {"_probe", (PyCFunction)(void (*)(void))KeyIndex_probe, METH_VARARGS | METH_KEYWORDS,
     "_probe(keys, inner, gather=(), need_take=True, threads=1) -> (take, validity, misses, "
     "selection, gathered)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef KeyIndex_getset[] = {
    {"_key_kind", (getter)KeyIndex_get_kind, NULL, "'int64', 'string' or None.", NULL},
    {"index_nbytes", (getter)KeyIndex_get_nbytes, NULL,
     "Bytes the hash index has allocated (slots, key offsets and key bytes).", NULL},
    {"_n_rows", (getter)KeyIndex_get_n_rows, NULL, "Rows numbered so far, live or not.", NULL},
    {"_capacity", (getter)KeyIndex_get_capacity, NULL, "Hash slots allocated.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods KeyIndex_as_sequence = {
    .sq_length = (lenfunc)KeyIndex_len,
    .sq_contains = (objobjproc)KeyIndex_contains,
};

static PyTypeObject KeyIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "weir._enrich.KeyIndex",
    .tp_doc = "Open-addressing hash index from int64 or string keys to row numbers.",
    .tp_basicsize = sizeof(KeyIndex),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = KeyIndex_new,
    .tp_dealloc = (destructor)KeyIndex_dealloc,
    .tp_methods = KeyIndex_methods,
    .tp_getset = KeyIndex_getset,
    .tp_as_sequence = &KeyIndex_as_sequence,
};

static struct PyModuleDef enrich_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "weir._enrich",
    .m_doc = "The hash index and join probe behind weir.materialize.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__enrich(void) {
    if (PyType_Ready(&KeyIndexType) < 0 || PyType_Ready(&OutBufferType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&enrich_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&KeyIndexType);
    if (PyModule_AddObject(m, "KeyIndex", (PyObject *)&KeyIndexType) < 0) {
        Py_DECREF(&KeyIndexType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
