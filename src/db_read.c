/*
 * db_read.c -- the read path: the superversion readers pin instead of
 * taking the DB mutex, point lookups (memtables, then tables, folding merge
 * operands and honouring range tombstones and TTLs), multi-get, and
 * snapshots.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "bloom.h"
#include "cache.h"
#include "compress.h"
#include "crc32c.h"
#include "db_impl.h"
#include "filename.h"
#include "sst.h"

int db_has_tombstones(const read_state *rs) {
    return memtable_range_tombstones(rs->mem) || (rs->imm && memtable_range_tombstones(rs->imm)) ||
           (rs->v->tombs && rs->v->tombs->n > 0);
}

static int key_in_range(slice key, slice start, slice end) {
    return slice_compare(key, start) >= 0 && slice_compare(key, end) < 0;
}

uint64_t db_covering_tombstone(const read_state *rs, slice key, uint64_t max_seq) {
    uint64_t best = 0;
    memtable *mems[2] = {rs->mem, rs->imm};
    for (int i = 0; i < 2; i++) {
        if (!mems[i]) continue;
        for (const range_tomb *t = memtable_range_tombstones(mems[i]); t; t = t->next)
            if (t->seq <= max_seq && t->seq > best && key_in_range(key, t->start, t->end)) best = t->seq;
    }
    const tomb_set *ts = rs->v->tombs;
    for (int i = 0; ts && i < ts->n; i++) {
        const vtomb *t = &ts->v[i];
        if (t->seq <= max_seq && t->seq > best &&
            key_in_range(key, buf_slice(&t->start), buf_slice(&t->end)))
            best = t->seq;
    }
    return best;
}


typedef struct latest_probe {
    int found;
    uint64_t seq;
} latest_probe;

static void latest_entry(void *arg, int type, uint64_t seq, slice value) {
    (void)type;
    (void)value;
    latest_probe *p = arg;
    p->found = 1;
    p->seq = seq;
}

int db_latest_sequence(weir_db *db, slice key, uint64_t *seq) {
    read_state rs;
    db_acquire_read_state(db, NULL, &rs);
    uint64_t best = db_has_tombstones(&rs) ? db_covering_tombstone(&rs, key, MAX_SEQUENCE) : 0;
    int type;
    uint64_t s = 0;
    slice v;
    int rc = WEIR_OK;
    if (memtable_get_entry(rs.mem, key, MAX_SEQUENCE, &type, &s, &v) ||
        (rs.imm && memtable_get_entry(rs.imm, key, MAX_SEQUENCE, &type, &s, &v))) {
        if (s > best) best = s;
    } else {
        buf ik = BUF_INIT;
        if (ikey_append(&ik, key, MAX_SEQUENCE, TYPE_FOR_SEEK) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory checking a key");
        } else {
            latest_probe p = {0, 0};
            rc = version_get_entry(rs.v, buf_slice(&ik), bloom_hash(key.data, key.len), 0, latest_entry, &p);
            if (rc == WEIR_NOT_FOUND) rc = WEIR_OK;
            if (p.found && p.seq > best) best = p.seq;
        }
        buf_free(&ik);
    }
    db_release_read_state(db, &rs);
    *seq = best;
    return rc;
}

uint64_t db_visible_sequence(weir_db *db) {
    return atomic_load_explicit(&db->visible_sequence, memory_order_acquire);
}

uint64_t db_smallest_snapshot(weir_db *db) {
    if (db->snapshots.next != &db->snapshots) return db->snapshots.next->sequence;
    return db->vs->last_sequence;
}


/* ---- reads ------------------------------------------------------------------ */

/* Drop a superversion whose count reached zero (mutex held). */
void db_superversion_free(superversion *sv) {
    memtable_unref(sv->mem);
    if (sv->imm) memtable_unref(sv->imm);
    version_unref(sv->v);
    free(sv);
}

void db_install_superversion(weir_db *db) {
    superversion *sv = malloc(sizeof *sv);
    if (!sv) {
        /* Readers keep the previous one; it stays correct until a file it
         * names is deleted, which its version reference prevents. The next
         * install tries again. */
        return;
    }
    atomic_init(&sv->refs, 1);
    sv->mem = db->mem;
    memtable_ref(sv->mem);
    sv->imm = db->imm;
    if (sv->imm) memtable_ref(sv->imm);
    sv->v = db->vs->current;
    version_ref(sv->v);
    pthread_mutex_lock(&db->sv_lock);
    superversion *old = db->sv;
    db->sv = sv;
    pthread_mutex_unlock(&db->sv_lock);
    if (old && atomic_fetch_sub_explicit(&old->refs, 1, memory_order_acq_rel) == 1) db_superversion_free(old);
}

void db_acquire_read_state(weir_db *db, const weir_snapshot *snap, read_state *rs) {
    /* The sequence first: whatever superversion comes next holds every
     * write up to it (writes are applied before they are published). */
    rs->sequence = snap ? snap->sequence
                        : atomic_load_explicit(&db->visible_sequence, memory_order_acquire);
    pthread_mutex_lock(&db->sv_lock);
    superversion *sv = db->sv;
    atomic_fetch_add_explicit(&sv->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&db->sv_lock);
    rs->sv = sv;
    rs->mem = sv->mem;
    rs->imm = sv->imm;
    rs->v = sv->v;
}

void db_release_read_state(weir_db *db, read_state *rs) {
    superversion *sv = rs->sv;
    if (atomic_fetch_sub_explicit(&sv->refs, 1, memory_order_acq_rel) == 1) {
        /* Only the last reader of a replaced superversion gets here. */
        pthread_mutex_lock(&db->mu);
        db_superversion_free(sv);
        pthread_mutex_unlock(&db->mu);
    }
}

/* Where a found value goes: a caller buffer, or a fresh allocation. */
typedef struct value_sink {
    void *buf;
    size_t cap;
    size_t len;
    int alloc;     /* copy into a malloc'd block */
    void *allocated;
    int oom;
    weir_value_fn fn; /* or hand the pinned value to a callback */
    void *fn_arg;
} value_sink;

static void sink_value(void *arg, slice v) {
    value_sink *s = arg;
    s->len = v.len;
    if (s->fn) {
        s->fn(s->fn_arg, v.len ? v.data : "", v.len);
    } else if (s->alloc) {
        s->allocated = malloc(v.len ? v.len : 1);
        if (!s->allocated) {
            s->oom = 1;
            return;
        }
        if (v.len) memcpy(s->allocated, v.data, v.len);
    } else if (s->cap) {
        memcpy(s->buf, v.data, v.len < s->cap ? v.len : s->cap);
    }
}

/* Look key up in rs; WEIR_OK (value delivered to sink), WEIR_NOT_FOUND or an
 * error. */
/* A point lookup walks the key's entries newest first: usually the first
 * one settles it (a value or a deletion); merge operands are collected
 * until a base value, a deletion or the end, then folded. */
typedef struct probe {
    weir_db *db;
    slice key;
    value_sink *sink;
    uint64_t cover;      /* newest range tombstone covering the key, or 0 */
    int done;            /* the answer is known */
    int status;          /* WEIR_OK (delivered), WEIR_NOT_FOUND or an error */
    uint64_t next_seq;   /* after a merge operand: continue below this */
    buf *operands;       /* copies, newest first */
    size_t n, cap;
    int have_now;
    uint64_t now_ms;
} probe;

/* Fold the collected operands onto base (or none) and deliver. */
static void probe_finish(probe *p, int has_base, slice base) {
    slice *ops = malloc((p->n ? p->n : 1) * sizeof *ops);
    buf out = BUF_INIT;
    if (!ops) {
        p->status = weir_set_error(WEIR_NO_MEMORY, "out of memory folding merge operands");
    } else {
        for (size_t i = 0; i < p->n; i++) ops[i] = buf_slice(&p->operands[p->n - 1 - i]);
        p->status = merge_full(&p->db->opts.merge_ops, p->key, has_base, base, ops, p->n, &out);
        if (p->status == WEIR_OK) sink_value(p->sink, buf_slice(&out));
    }
    free(ops);
    buf_free(&out);
    p->done = 1;
}

static void probe_entry(void *arg, int type, uint64_t seq, slice value) {
    probe *p = arg;
    if (seq < p->cover) type = TYPE_DELETION; /* hidden by a range tombstone */
    if (type == TYPE_VALUE_TTL) {
        if (value.len < 8) {
            /* Only a damaged table holds one; never read past it. */
            p->status = weir_set_error(WEIR_CORRUPTION, "key \"%.*s\": a TTL value of %zu bytes is shorter "
                                       "than its 8-byte expiry", (int)(p->key.len > 64 ? 64 : p->key.len),
                                       p->key.data, value.len);
            p->done = 1;
            return;
        }
        if (!p->have_now) {
            p->now_ms = db_now_ms(p->db);
            p->have_now = 1;
        }
        if (decode_fixed64(value.data) <= p->now_ms) {
            type = TYPE_DELETION; /* expired: gone, and hides what is older */
        } else {
            type = TYPE_VALUE;
            value = slice_make(value.data + 8, value.len - 8);
        }
    }
    if (type == TYPE_MERGE) {
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 8;
            buf *grown = realloc(p->operands, cap * sizeof *grown);
            if (!grown) {
                p->status = weir_set_error(WEIR_NO_MEMORY, "out of memory collecting merge operands");
                p->done = 1;
                return;
            }
            p->operands = grown;
            p->cap = cap;
        }
        p->operands[p->n] = (buf)BUF_INIT;
        if (buf_set(&p->operands[p->n], value.data, value.len) != 0) {
            p->status = weir_set_error(WEIR_NO_MEMORY, "out of memory collecting merge operands");
            p->done = 1;
            return;
        }
        p->n++;
        p->next_seq = seq - 1;
        return;
    }
    if (type == TYPE_VALUE) {
        if (p->n == 0) {
            sink_value(p->sink, value); /* the common case: no copy */
            p->status = WEIR_OK;
            p->done = 1;
        } else {
            probe_finish(p, 1, value);
        }
        return;
    }
    /* A deletion (or expiry): the key has no value below here. */
    if (p->n == 0) {
        p->status = WEIR_NOT_FOUND;
        p->done = 1;
    } else {
        probe_finish(p, 0, slice_make(NULL, 0));
    }
}

static int probe_scan_entry(void *arg, int type, uint64_t seq, slice value) {
    probe *p = arg;
    probe_entry(p, type, seq, value);
    return !p->done;
}

/* Look key up in rs; WEIR_OK (value delivered to sink), WEIR_NOT_FOUND or an
 * error. */
static int get_from_state(weir_db *db, read_state *rs, slice key, unsigned flags, value_sink *sink) {
    char stack[256];
    size_t ilen = key.len + IKEY_TAG_SIZE;
    char *ik = ilen <= sizeof stack ? stack : malloc(ilen);
    if (!ik) return weir_set_error(WEIR_NO_MEMORY, "out of memory for a %zu-byte key lookup", key.len);
    if (key.len) memcpy(ik, key.data, key.len);
    slice lookup = slice_make(ik, ilen);
    uint64_t hash = bloom_hash(key.data, key.len);

    probe p = {0};
    p.db = db;
    p.key = key;
    p.sink = sink;
    p.status = WEIR_NOT_FOUND;
    p.cover = db_has_tombstones(rs) ? db_covering_tombstone(rs, key, rs->sequence) : 0;
    uint64_t max_seq = rs->sequence;
    int rc = WEIR_OK;
    while (!p.done && rc == WEIR_OK) {
        int type;
        uint64_t seq;
        slice v;
        p.next_seq = 0;
        memtable *m = NULL;
        if (memtable_lookup(rs->mem, key, hash, max_seq, &type, &seq, &v)) m = rs->mem;
        else if (rs->imm && memtable_lookup(rs->imm, key, hash, max_seq, &type, &seq, &v)) m = rs->imm;
        if (m) {
            probe_entry(&p, type, seq, v);
            /* Merge operands: take the older entries of this memtable in
             * one walk rather than one search each. */
            if (!p.done && p.next_seq) memtable_scan_key(m, key, p.next_seq, probe_scan_entry, &p);
        } else {
            encode_fixed64(ik + key.len, pack_tag(max_seq, TYPE_FOR_SEEK));
            rc = version_get_entry(rs->v, lookup, hash, flags, probe_entry, &p);
            if (rc == WEIR_NOT_FOUND) {
                /* No older entry: fold what was collected onto nothing. */
                rc = WEIR_OK;
                if (p.n) probe_finish(&p, 0, slice_make(NULL, 0));
                p.done = 1;
            }
        }
        /* After a failed table read (an error, or WEIR_INCOMPLETE under
         * memory_only) nothing is folded or delivered: the collected
         * operands may lack their base. */
        if (!p.done && rc == WEIR_OK) {
            if (p.next_seq == 0) {
                if (p.n) probe_finish(&p, 0, slice_make(NULL, 0));
                p.done = 1;
            }
            max_seq = p.next_seq;
        }
    }
    for (size_t i = 0; i < p.n; i++) buf_free(&p.operands[i]);
    free(p.operands);
    if (ik != stack) free(ik);
    if (rc == WEIR_OK) rc = p.status;
    if (rc == WEIR_OK && sink->oom)
        rc = weir_set_error(WEIR_NO_MEMORY, "out of memory copying a %zu-byte value", sink->len);
    return rc;
}

/* The table-read flags a point read's options ask for. */
static unsigned read_flags(const weir_readopts *ro) {
    return ro && ro->memory_only ? SST_READ_MEMORY_ONLY : 0;
}

static int get_common(weir_db *db, const weir_readopts *ro, const void *key, size_t klen,
                      value_sink *sink, const char *fn) {
    CHECK_DB(db, fn);
    int rc = db_check_key_arg(fn, key, klen);
    if (rc == WEIR_OK && ro) rc = DB_CHECK_RESERVED(fn, "weir_readopts", ro);
    if (rc != WEIR_OK) return rc;
    struct timespec t0;
    int timed = sample_start(&t0);
    read_state rs;
    db_acquire_read_state(db, ro ? ro->snapshot : NULL, &rs);
    rc = get_from_state(db, &rs, slice_make(key, klen), read_flags(ro), sink);
    db_release_read_state(db, &rs);
    stat_add(&db->stats.gets, 1);
    if (timed) sample_end(&db->stats.get_latency, &t0);
    return rc;
}

int weir_get(weir_db *db, const weir_readopts *ro, const void *key, size_t klen, void *buf,
             size_t cap, size_t *vlen) {
    if (!vlen) return weir_set_error(WEIR_INVALID, "weir_get: vlen is NULL");
    if (!buf && cap) return weir_set_error(WEIR_INVALID, "weir_get: buf is NULL but cap is %zu", cap);
    value_sink sink = {buf, cap, 0, 0, NULL, 0, NULL, NULL};
    int rc = get_common(db, ro, key, klen, &sink, "weir_get");
    if (rc != WEIR_OK) return rc;
    *vlen = sink.len;
    if (sink.len > cap)
        return weir_set_error(WEIR_BUFFER_TOO_SMALL,
                              "weir_get: value is %zu bytes but the buffer holds %zu", sink.len, cap);
    return WEIR_OK;
}

int weir_get_alloc(weir_db *db, const weir_readopts *ro, const void *key, size_t klen, void **val,
                   size_t *vlen) {
    if (!val || !vlen) return weir_set_error(WEIR_INVALID, "weir_get_alloc: val or vlen is NULL");
    *val = NULL;
    *vlen = 0;
    value_sink sink = {NULL, 0, 0, 1, NULL, 0, NULL, NULL};
    int rc = get_common(db, ro, key, klen, &sink, "weir_get_alloc");
    if (rc != WEIR_OK) {
        free(sink.allocated);
        return rc;
    }
    *val = sink.allocated;
    *vlen = sink.len;
    return WEIR_OK;
}

int weir_get_with(weir_db *db, const weir_readopts *ro, const void *key, size_t klen,
                  weir_value_fn fn, void *arg) {
    if (!fn) return weir_set_error(WEIR_INVALID, "weir_get_with: fn is NULL");
    value_sink sink = {0};
    sink.fn = fn;
    sink.fn_arg = arg;
    return get_common(db, ro, key, klen, &sink, "weir_get_with");
}

int weir_multi_get(weir_db *db, const weir_readopts *ro, size_t n, const void *const *keys,
                   const size_t *klens, void **vals, size_t *vlens, int *statuses) {
    CHECK_DB(db, "weir_multi_get");
    if (n && (!keys || !klens || !vals || !vlens || !statuses))
        return weir_set_error(WEIR_INVALID, "weir_multi_get: an array argument is NULL");
    if (ro) {
        int rrc = DB_CHECK_RESERVED("weir_multi_get", "weir_readopts", ro);
        if (rrc != WEIR_OK) return rrc;
    }
    for (size_t i = 0; i < n; i++) {
        vals[i] = NULL;
        vlens[i] = 0;
        statuses[i] = WEIR_NOT_FOUND;
        int rc = db_check_key_arg("weir_multi_get", keys[i], klens[i]);
        if (rc != WEIR_OK) return rc;
    }
    read_state rs;
    db_acquire_read_state(db, ro ? ro->snapshot : NULL, &rs);
    int first_error = WEIR_OK;
    weir_error err = {0, {0}};
    for (size_t i = 0; i < n; i++) {
        value_sink sink = {NULL, 0, 0, 1, NULL, 0, NULL, NULL};
        int rc = get_from_state(db, &rs, slice_make(keys[i], klens[i]), read_flags(ro), &sink);
        statuses[i] = rc;
        if (rc == WEIR_OK) {
            vals[i] = sink.allocated;
            vlens[i] = sink.len;
        } else {
            free(sink.allocated);
            if (rc != WEIR_NOT_FOUND && first_error == WEIR_OK) {
                first_error = rc;
                weir_error_save(&err, rc);
            }
        }
    }
    db_release_read_state(db, &rs);
    stat_add(&db->stats.gets, n);
    if (first_error != WEIR_OK) weir_error_raise(&err);
    return first_error;
}

/* ---- snapshots ---------------------------------------------------------------- */

int weir_snapshot_create(weir_db *db, weir_snapshot **out) {
    if (!out) return weir_set_error(WEIR_INVALID, "weir_snapshot_create: out is NULL");
    *out = NULL;
    CHECK_DB(db, "weir_snapshot_create");
    weir_snapshot *s = malloc(sizeof *s);
    if (!s) return weir_set_error(WEIR_NO_MEMORY, "out of memory creating a snapshot");
    pthread_mutex_lock(&db->mu);
    s->db = db;
    s->sequence = db->vs->last_sequence;
    s->next = &db->snapshots;
    s->prev = db->snapshots.prev;
    s->prev->next = s;
    db->snapshots.prev = s;
    db->num_snapshots++;
    pthread_mutex_unlock(&db->mu);
    *out = s;
    return WEIR_OK;
}

void weir_snapshot_release(weir_db *db, weir_snapshot *s) {
    if (!db || !s) return;
    /* A snapshot of another DB is not this one's to release (its count
     * would go wrong); in a forked child nothing may be touched. */
    if (s->db != db || db_forked_away(db)) return;
    pthread_mutex_lock(&db->mu);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    db->num_snapshots--;
    pthread_mutex_unlock(&db->mu);
    free(s);
}

uint64_t weir_snapshot_sequence(const weir_snapshot *s) { return s ? s->sequence : 0; }


