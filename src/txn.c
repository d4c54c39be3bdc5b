/*
 * txn.c -- optimistic transactions (weir_txn_*, see weir.h).
 *
 * A transaction owns a snapshot taken at begin, a write batch holding every
 * write it makes, in order, and an index of the keys it touched: for each,
 * what its own writes say (the newest put or delete, then the merges made
 * after it) and, implicitly, that the key must be validated. Nothing is
 * locked while the transaction runs. Commit hands the batch to the write
 * path with a validation hook that runs in the write leader, where every
 * earlier write is applied and no later one can slip in: if any indexed key
 * has a write newer than the snapshot, the commit fails with WEIR_CONFLICT
 * and nothing is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "bloom.h"
#include "db_impl.h"
#include "dbformat.h"
#include "memtable.h"
#include "merge.h"

/* Sequence numbers the iterator overlay gives the transaction's ops: above
 * any the DB reaches (2^55 writes is a million years at a million writes a
 * second) and below MAX_SEQUENCE, so seeks at MAX_SEQUENCE still land
 * before them. */
#define OVERLAY_BASE (UINT64_C(1) << 55)

/* Up to this many keys the index is a linear scan over entries (compared
 * by hash first); beyond it a hash table is built. Most transactions touch
 * a handful of keys and never allocate the table. */
#define SMALL_INDEX 16

enum txn_state { TXN_ACTIVE, TXN_COMMITTED, TXN_COMMIT_FAILED, TXN_ROLLED_BACK };

/* The newest put or delete the transaction made to a key. */
enum key_write { KW_NONE, KW_DELETED, KW_PUT };

typedef struct txn_key {
    uint64_t hash;
    size_t key_off; /* in txn->keys */
    size_t klen;
    int write;          /* enum key_write */
    size_t val_off;     /* KW_PUT: the value, in the batch rep */
    size_t vlen;
    int32_t last_merge; /* newest merge made after `write`, in merges; -1 none */
    uint32_t nmerges;
} txn_key;

typedef struct txn_merge {
    size_t off, len; /* operand (operator byte + payload), in the batch rep */
    int32_t prev;    /* the key's previous merge, -1 none */
} txn_merge;

struct weir_txn {
    weir_db *db;
    weir_snapshot *snap;
    uint64_t begin_seq;
    weir_writeopts wo;
    int track_all_reads;
    int state;
    struct weir_batch batch;
    buf keys; /* key bytes of every index entry */
    txn_key *entries;
    size_t nentries, capentries;
    uint32_t *slots; /* open addressing, entry index + 1 (0: empty); NULL while small */
    size_t nslots;
    txn_merge *merges;
    size_t nmerges, capmerges;
    /* Built on the first weir_txn_iter_create and extended by later ones:
     * the batch's ops as internal keys at OVERLAY_BASE + op index. */
    memtable *overlay;
    uint32_t overlay_ops;
};

/* ---- state checks ---------------------------------------------------------- */

static int check_active(const weir_txn *t, const char *fn) {
    if (!t) return weir_set_error(WEIR_INVALID, "%s: transaction is NULL", fn);
    int owner = db_owner_check(t->db, fn);
    if (owner != WEIR_OK) return owner;
    switch (t->state) {
    case TXN_ACTIVE: return WEIR_OK;
    case TXN_COMMITTED:
        return weir_set_error(WEIR_INVALID, "%s: the transaction is already committed (begin a new one)", fn);
    case TXN_COMMIT_FAILED:
        return weir_set_error(WEIR_INVALID,
                              "%s: the transaction is already finished: its commit failed (begin a new one)", fn);
    default:
        return weir_set_error(WEIR_INVALID, "%s: the transaction is already rolled back (begin a new one)", fn);
    }
}

static int check_key(const char *fn, const void *key, size_t klen) {
    if (!key && klen) return weir_set_error(WEIR_INVALID, "%s: key is NULL but its length is %zu", fn, klen);
    if (klen > WEIR_MAX_KEY_SIZE)
        return weir_set_error(WEIR_INVALID, "%s: key of %zu bytes exceeds the limit of %u bytes", fn, klen,
                              WEIR_MAX_KEY_SIZE);
    return WEIR_OK;
}

static int check_value(const char *fn, const char *what, const void *val, size_t vlen) {
    if (!val && vlen) return weir_set_error(WEIR_INVALID, "%s: %s is NULL but its length is %zu", fn, what, vlen);
    if (vlen > WEIR_MAX_VALUE_SIZE)
        return weir_set_error(WEIR_INVALID, "%s: %s of %zu bytes exceeds the limit of %u bytes", fn, what, vlen,
                              WEIR_MAX_VALUE_SIZE);
    return WEIR_OK;
}

/* ---- the key index ------------------------------------------------------------ */

static slice entry_key(const weir_txn *t, const txn_key *e) {
    return slice_make(t->keys.data ? t->keys.data + e->key_off : "", e->klen);
}

static int entry_matches(const weir_txn *t, const txn_key *e, slice key, uint64_t hash) {
    return e->hash == hash && slice_equal(entry_key(t, e), key);
}

static long find_key(const weir_txn *t, slice key, uint64_t hash) {
    if (!t->slots) {
        for (size_t i = 0; i < t->nentries; i++)
            if (entry_matches(t, &t->entries[i], key, hash)) return (long)i;
        return -1;
    }
    size_t mask = t->nslots - 1;
    for (size_t s = hash & mask;; s = (s + 1) & mask) {
        uint32_t v = t->slots[s];
        if (v == 0) return -1;
        if (entry_matches(t, &t->entries[v - 1], key, hash)) return (long)(v - 1);
    }
}

static void slot_insert(uint32_t *slots, size_t nslots, uint64_t hash, uint32_t index) {
    size_t mask = nslots - 1;
    size_t s = hash & mask;
    while (slots[s]) s = (s + 1) & mask;
    slots[s] = index + 1;
}

/* Make room for one more entry (and its slot). -1 on OOM, nothing changed. */
static int reserve_entry(weir_txn *t) {
    if (t->nentries == t->capentries) {
        size_t cap = t->capentries ? t->capentries * 2 : 8;
        txn_key *grown = realloc(t->entries, cap * sizeof *grown);
        if (!grown) return -1;
        t->entries = grown;
        t->capentries = cap;
    }
    size_t want = t->nentries + 1;
    if (want <= SMALL_INDEX) return 0;
    if (t->slots && want * 2 <= t->nslots) return 0;
    /* Rebuild at under half full. */
    size_t nslots = t->nslots ? t->nslots * 2 : 64;
    while (want * 2 > nslots) nslots *= 2;
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < t->nentries; i++) slot_insert(slots, nslots, t->entries[i].hash, (uint32_t)i);
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return 0;
}

/* Add key to the index (it must not be there). Its index, or -1 on OOM. */
static long add_key(weir_txn *t, slice key, uint64_t hash) {
    if (t->nentries >= UINT32_MAX - 1 || reserve_entry(t) != 0) return -1;
    size_t off = t->keys.len;
    if (key.len && buf_append(&t->keys, key.data, key.len) != 0) return -1;
    txn_key *e = &t->entries[t->nentries];
    e->hash = hash;
    e->key_off = off;
    e->klen = key.len;
    e->write = KW_NONE;
    e->val_off = e->vlen = 0;
    e->last_merge = -1;
    e->nmerges = 0;
    if (t->slots) slot_insert(t->slots, t->nslots, hash, (uint32_t)t->nentries);
    return (long)t->nentries++;
}

/* Undo add_key of the newest entry. With linear probing the newest key's
 * slot can simply be emptied: no key placed earlier probed past it. */
static void drop_last_key(weir_txn *t) {
    txn_key *e = &t->entries[--t->nentries];
    t->keys.len = e->key_off;
    if (!t->slots) return;
    size_t mask = t->nslots - 1;
    for (size_t s = e->hash & mask;; s = (s + 1) & mask) {
        if (t->slots[s] == t->nentries + 1) {
            t->slots[s] = 0;
            return;
        }
    }
}

/* The key's entry, added if absent; *added says which. -1 on OOM. */
static long find_or_add(weir_txn *t, slice key, uint64_t hash, int *added) {
    long i = find_key(t, key, hash);
    *added = 0;
    if (i >= 0) return i;
    i = add_key(t, key, hash);
    if (i < 0) {
        weir_set_error(WEIR_NO_MEMORY, "transaction: out of memory indexing a %zu-byte key", key.len);
        return -1;
    }
    *added = 1;
    return i;
}

/* ---- begin / finish ----------------------------------------------------------- */

int weir_txn_begin(weir_db *db, const weir_txnopts *opts, weir_txn **out) {
    if (!out) return weir_set_error(WEIR_INVALID, "weir_txn_begin: out is NULL");
    *out = NULL;
    if (!db) return weir_set_error(WEIR_INVALID, "weir_txn_begin: db is NULL");
    int owner = db_owner_check(db, "weir_txn_begin");
    if (owner != WEIR_OK) return owner;
    if (db->read_only)
        return weir_set_error(WEIR_READ_ONLY, "weir_txn_begin: %s was opened read-only", db->path);
    if (opts) {
        int rrc = DB_CHECK_RESERVED("weir_txn_begin", "weir_txnopts", opts);
        if (rrc != WEIR_OK) return rrc;
    }
    weir_sync_mode sync = opts ? opts->sync : WEIR_SYNC_DEFAULT;
    if (sync < WEIR_SYNC_DEFAULT || sync > WEIR_SYNC_FSYNC)
        return weir_set_error(WEIR_INVALID, "weir_txn_begin: unknown sync mode %d", (int)sync);
    weir_txn *t = calloc(1, sizeof *t);
    if (!t || batch_rep_init(&t->batch.rep) != 0) {
        free(t);
        return weir_set_error(WEIR_NO_MEMORY, "weir_txn_begin: out of memory");
    }
    int rc = weir_snapshot_create(db, &t->snap);
    if (rc == WEIR_OK && weir_snapshot_sequence(t->snap) >= OVERLAY_BASE) {
        weir_snapshot_release(db, t->snap);
        rc = weir_set_error(WEIR_NOT_SUPPORTED, "weir_txn_begin: sequence numbers are exhausted");
    }
    if (rc != WEIR_OK) {
        buf_free(&t->batch.rep);
        free(t);
        return rc;
    }
    t->db = db;
    t->begin_seq = weir_snapshot_sequence(t->snap);
    t->wo.sync = sync;
    t->track_all_reads = opts ? opts->track_all_reads != 0 : 0;
    t->state = TXN_ACTIVE;
    atomic_fetch_add(&db->live_transactions, 1);
    *out = t;
    return WEIR_OK;
}

/* Release everything but the handle itself; later calls see `state`. */
static void finish(weir_txn *t, int state) {
    weir_snapshot_release(t->db, t->snap);
    t->snap = NULL;
    buf_free(&t->batch.rep);
    buf_free(&t->keys);
    free(t->entries);
    free(t->slots);
    free(t->merges);
    t->entries = NULL;
    t->slots = NULL;
    t->merges = NULL;
    t->nentries = t->capentries = t->nslots = t->nmerges = t->capmerges = 0;
    if (t->overlay) memtable_unref(t->overlay);
    t->overlay = NULL;
    t->state = state;
}

int weir_txn_rollback(weir_txn *t) {
    int rc = check_active(t, "weir_txn_rollback");
    if (rc != WEIR_OK) return rc;
    finish(t, TXN_ROLLED_BACK);
    return WEIR_OK;
}

void weir_txn_destroy(weir_txn *t) {
    if (!t) return;
    if (db_forked_away(t->db)) return; /* a dead copy: release nothing */
    if (t->state == TXN_ACTIVE) finish(t, TXN_ROLLED_BACK);
    atomic_fetch_sub(&t->db->live_transactions, 1);
    free(t);
}

/* ---- writes ------------------------------------------------------------------- */

static int batch_append(weir_txn *t, int type, const void *key, size_t klen, const void *val, size_t vlen,
                        int op) {
    switch (type) {
    case TYPE_VALUE: return weir_batch_put(&t->batch, key, klen, val, vlen);
    case TYPE_DELETION: return weir_batch_delete(&t->batch, key, klen);
    default: return weir_batch_merge(&t->batch, key, klen, op, val, vlen);
    }
}

/* Append one op to the batch and record it in the key's index entry.
 * Arguments are already checked. On failure nothing changes. */
static int txn_write(weir_txn *t, int type, const void *key, size_t klen, const void *val, size_t vlen, int op) {
    slice k = slice_make(key ? key : "", klen);
    uint64_t hash = bloom_hash(k.data, k.len);
    int added;
    long i = find_or_add(t, k, hash, &added);
    if (i < 0) return WEIR_NO_MEMORY;
    if (type == TYPE_MERGE && t->nmerges == t->capmerges) {
        size_t cap = t->capmerges ? t->capmerges * 2 : 8;
        txn_merge *grown = cap <= INT32_MAX ? realloc(t->merges, cap * sizeof *grown) : NULL;
        if (!grown) {
            if (added) drop_last_key(t);
            return weir_set_error(WEIR_NO_MEMORY, "weir_txn_merge: out of memory");
        }
        t->merges = grown;
        t->capmerges = cap;
    }
    int rc = batch_append(t, type, key, klen, val, vlen, op);
    if (rc != WEIR_OK) {
        if (added) drop_last_key(t);
        return rc;
    }
    txn_key *e = &t->entries[i];
    size_t end = t->batch.rep.len;
    if (type == TYPE_MERGE) {
        /* Stored operand = operator byte + payload, the op's last bytes. */
        txn_merge *m = &t->merges[t->nmerges];
        m->len = vlen + 1;
        m->off = end - m->len;
        m->prev = e->last_merge;
        e->last_merge = (int32_t)t->nmerges++;
        e->nmerges++;
    } else {
        e->write = type == TYPE_VALUE ? KW_PUT : KW_DELETED;
        e->val_off = end - vlen;
        e->vlen = type == TYPE_VALUE ? vlen : 0;
        e->last_merge = -1;
        e->nmerges = 0;
    }
    return WEIR_OK;
}

int weir_txn_put(weir_txn *t, const void *key, size_t klen, const void *val, size_t vlen) {
    int rc = check_active(t, "weir_txn_put");
    if (rc == WEIR_OK) rc = check_key("weir_txn_put", key, klen);
    if (rc == WEIR_OK) rc = check_value("weir_txn_put", "value", val, vlen);
    if (rc != WEIR_OK) return rc;
    return txn_write(t, TYPE_VALUE, key, klen, val, vlen, 0);
}

int weir_txn_delete(weir_txn *t, const void *key, size_t klen) {
    int rc = check_active(t, "weir_txn_delete");
    if (rc == WEIR_OK) rc = check_key("weir_txn_delete", key, klen);
    if (rc != WEIR_OK) return rc;
    return txn_write(t, TYPE_DELETION, key, klen, NULL, 0, 0);
}

int weir_txn_merge(weir_txn *t, const void *key, size_t klen, int op, const void *operand, size_t olen) {
    int rc = check_active(t, "weir_txn_merge");
    if (rc == WEIR_OK) rc = check_key("weir_txn_merge", key, klen);
    if (rc == WEIR_OK) rc = check_value("weir_txn_merge", "operand", operand, olen);
    if (rc != WEIR_OK) return rc;
    if (op < 1 || op > 255)
        return weir_set_error(WEIR_INVALID, "weir_txn_merge: operator %d is out of range [1, 255]", op);
    /* The batch checks operand shapes; only the DB knows which user
     * operators are registered, and an unregistered one would fail the
     * whole commit later. */
    if (op >= MERGE_USER_FIRST) {
        char opbyte = (char)op;
        rc = merge_check_operand(&t->db->opts.merge_ops, slice_make(&opbyte, 1));
        if (rc != WEIR_OK) return rc;
    }
    return txn_write(t, TYPE_MERGE, key, klen, operand, olen, op);
}

/* ---- reads -------------------------------------------------------------------- */

/* Hand out a copy of s as weir_get_alloc would (non-NULL even when empty). */
static int copy_out(slice s, void **val, size_t *vlen) {
    char *p = malloc(s.len ? s.len : 1);
    if (!p) return weir_set_error(WEIR_NO_MEMORY, "transaction read: out of memory copying a %zu-byte value", s.len);
    if (s.len) memcpy(p, s.data, s.len);
    *val = p;
    *vlen = s.len;
    return WEIR_OK;
}

/* The key's value as the transaction's own writes leave it, when they
 * decide it (e->write or merges present). */
static int read_own(weir_txn *t, const txn_key *e, void **val, size_t *vlen) {
    const char *rep = t->batch.rep.data;
    slice key = entry_key(t, e);
    if (e->nmerges == 0) {
        if (e->write == KW_DELETED) return WEIR_NOT_FOUND;
        return copy_out(slice_make(rep + e->val_off, e->vlen), val, vlen);
    }
    /* Merges: fold them (oldest first) over the put, the delete, or the
     * value at the snapshot. */
    void *snap_val = NULL;
    size_t snap_len = 0;
    int has_base = 0;
    slice base = {NULL, 0};
    int rc = WEIR_OK;
    if (e->write == KW_PUT) {
        has_base = 1;
        base = slice_make(rep + e->val_off, e->vlen);
    } else if (e->write == KW_NONE) {
        weir_readopts ro = {0};
        ro.snapshot = t->snap;
        rc = weir_get_alloc(t->db, &ro, key.data, key.len, &snap_val, &snap_len);
        if (rc == WEIR_OK) {
            has_base = 1;
            base = slice_make(snap_val, snap_len);
        } else if (rc == WEIR_NOT_FOUND) {
            rc = WEIR_OK;
        }
    }
    slice stack_ops[16];
    slice *ops = e->nmerges <= 16 ? stack_ops : malloc(e->nmerges * sizeof *ops);
    if (rc == WEIR_OK && !ops) rc = weir_set_error(WEIR_NO_MEMORY, "transaction read: out of memory");
    buf out = BUF_INIT;
    if (rc == WEIR_OK) {
        size_t n = e->nmerges;
        for (int32_t m = e->last_merge; m >= 0; m = t->merges[m].prev)
            ops[--n] = slice_make(rep + t->merges[m].off, t->merges[m].len);
        rc = merge_full(&t->db->opts.merge_ops, key, has_base, base, ops, e->nmerges, &out);
    }
    if (rc == WEIR_OK) {
        if (!out.data && buf_reserve(&out, 1) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "transaction read: out of memory");
        } else {
            *val = out.data; /* buf memory is malloc'd: the caller's weir_free releases it */
            *vlen = out.len;
            out.data = NULL;
        }
    }
    buf_free(&out);
    if (ops != stack_ops) free(ops);
    free(snap_val);
    return rc;
}

static int txn_read(weir_txn *t, const char *fn, int track, const void *key, size_t klen, void **val,
                    size_t *vlen) {
    if (!val || !vlen) return weir_set_error(WEIR_INVALID, "%s: val or vlen is NULL", fn);
    *val = NULL;
    *vlen = 0;
    int rc = check_active(t, fn);
    if (rc == WEIR_OK) rc = check_key(fn, key, klen);
    if (rc != WEIR_OK) return rc;
    slice k = slice_make(key ? key : "", klen);
    uint64_t hash = bloom_hash(k.data, k.len);
    long i;
    if (track || t->track_all_reads) {
        /* An absent key is tracked too: its creation by another commit
         * conflicts as much as a change would. */
        int added;
        i = find_or_add(t, k, hash, &added);
        if (i < 0) return WEIR_NO_MEMORY;
    } else {
        i = find_key(t, k, hash);
    }
    if (i >= 0) {
        const txn_key *e = &t->entries[i];
        if (e->write != KW_NONE || e->nmerges) return read_own(t, e, val, vlen);
    }
    weir_readopts ro = {0};
    ro.snapshot = t->snap;
    return weir_get_alloc(t->db, &ro, k.data, k.len, val, vlen);
}

int weir_txn_get(weir_txn *t, const void *key, size_t klen, void **val, size_t *vlen) {
    return txn_read(t, "weir_txn_get", 0, key, klen, val, vlen);
}

int weir_txn_get_for_update(weir_txn *t, const void *key, size_t klen, void **val, size_t *vlen) {
    return txn_read(t, "weir_txn_get_for_update", 1, key, klen, val, vlen);
}

/* ---- iterator ------------------------------------------------------------------ */

typedef struct overlay_ctx {
    memtable *mem;
    uint32_t skip; /* ops already in the overlay */
} overlay_ctx;

static int overlay_add(void *arg, uint64_t seq, int type, slice key, slice value) {
    overlay_ctx *ctx = arg;
    /* The batch header's sequence is 0, so seq is the op's index. */
    if (seq < ctx->skip) return 0;
    return memtable_add(ctx->mem, OVERLAY_BASE + seq, type, key, value);
}

int weir_txn_iter_create(weir_txn *t, const weir_readopts *ro, weir_iter **out) {
    if (!out) return weir_set_error(WEIR_INVALID, "weir_txn_iter_create: out is NULL");
    *out = NULL;
    int rc = check_active(t, "weir_txn_iter_create");
    if (rc != WEIR_OK) return rc;
    if (ro && ro->snapshot)
        return weir_set_error(WEIR_INVALID,
                              "weir_txn_iter_create: ro->snapshot must be NULL (the transaction reads at its own snapshot)");
    uint32_t count = batch_rep_count(buf_slice(&t->batch.rep));
    if (count == 0) return db_iter_create_overlay(t->db, ro, t->snap, NULL, 0, 0, out);
    if (!t->overlay) {
        t->overlay = memtable_create();
        if (!t->overlay) return weir_set_error(WEIR_NO_MEMORY, "weir_txn_iter_create: out of memory");
    }
    if (t->overlay_ops < count) {
        overlay_ctx ctx = {t->overlay, t->overlay_ops};
        rc = batch_rep_iterate(buf_slice(&t->batch.rep), overlay_add, &ctx);
        if (rc != WEIR_OK) {
            /* A partial overlay cannot be resumed; start over next time. */
            memtable_unref(t->overlay);
            t->overlay = NULL;
            t->overlay_ops = 0;
            return rc;
        }
        t->overlay_ops = count;
    }
    iter *ov = memtable_iter_create(t->overlay);
    if (!ov) return weir_set_error(WEIR_NO_MEMORY, "weir_txn_iter_create: out of memory");
    /* Iterators made later see ops added later; this one sees up to now. */
    return db_iter_create_overlay(t->db, ro, t->snap, ov, OVERLAY_BASE, OVERLAY_BASE + count - 1, out);
}

/* ---- commit ---------------------------------------------------------------------- */

/* Key bytes for a message: printable ASCII as is, others as \xNN, cut at
 * 64 bytes. */
static void describe_key(slice key, char *out, size_t cap) {
    size_t o = 0;
    size_t n = key.len < 64 ? key.len : 64;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)key.data[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (key.len > n && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Runs in the write leader with every earlier write applied. */
static int validate(weir_db *db, void *arg) {
    weir_txn *t = arg;
    /* Nothing committed since the snapshot: no key can have changed. This
     * spares the uncontended commit a lookup per key (often in the tables). */
    if (db_visible_sequence(db) == t->begin_seq) return WEIR_OK;
    for (size_t i = 0; i < t->nentries; i++) {
        slice key = entry_key(t, &t->entries[i]);
        uint64_t seq;
        int rc = db_latest_sequence(db, key, &seq);
        if (rc != WEIR_OK) return rc;
        if (seq > t->begin_seq) {
            char shown[64 * 4 + 8];
            describe_key(key, shown, sizeof shown);
            return weir_set_error(WEIR_CONFLICT,
                                  "transaction conflict on key \"%s\": changed by another commit after the "
                                  "transaction began (retry the transaction)",
                                  shown);
        }
    }
    return WEIR_OK;
}

int weir_txn_commit(weir_txn *t) {
    int rc = check_active(t, "weir_txn_commit");
    if (rc != WEIR_OK) return rc;
    /* A transaction that wrote nothing read one consistent snapshot: it
     * serializes at its begin and has nothing to apply. */
    if (batch_rep_count(buf_slice(&t->batch.rep)) > 0)
        rc = db_write_validated(t->db, &t->wo, &t->batch, validate, t);
    finish(t, rc == WEIR_OK ? TXN_COMMITTED : TXN_COMMIT_FAILED);
    return rc;
}
