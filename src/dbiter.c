/*
 * dbiter.c -- the user-facing iterator. It merges the memtables and every
 * table level into one stream of internal keys and shows, for each user
 * key, the newest entry visible at the iterator's sequence number, hiding
 * older versions and deleted keys. Bounds and prefix mode are applied
 * here as a [lower, upper) range of user keys.
 *
 * Direction: moving forward, the internal iterator sits on the entry being
 * shown. Moving backward it sits just before every entry of the shown key,
 * so the key and value are kept in saved_key / saved_value.
 */
#include <stdlib.h>
#include <string.h>

#include "db_impl.h"
#include "merger.h"
#include "merge.h"

enum { DIR_FORWARD, DIR_REVERSE };

/* The internal iterator is always a merger (build_internal): read and step
 * it directly rather than through its ops table, once per entry passed. */
static inline int in_valid(const iter *in) { return merging_iter_valid(in); }
static inline slice in_key(const iter *in) { return merging_iter_key(in); }
static inline slice in_value(const iter *in) { return merging_iter_value(in); }
static inline void in_next(iter *in) { merging_iter_next(in); }

struct weir_iter {
    weir_db *db;
    read_state rs;
    iter *internal;
    uint64_t sequence;
    int direction;
    int valid;
    buf saved_key;   /* see top of file; also the key being skipped forward */
    buf saved_value;
    buf lower, upper;
    int has_lower, has_upper;
    buf target;      /* scratch for seek targets */
    int status;
    weir_error err;
    /* Forward direction, how the current entry is shown: */
    int ahead;       /* 1: a merge was folded; key/value are saved_*, and
                      * the internal iterator is past the key's operands */
    int ttl_value;   /* 1: the internal value starts with an 8-byte expiry */
    int has_tombs;   /* any range tombstone in the read state */
    uint64_t now_ms; /* TTL expiry is judged at this time (iterator start) */
    buf *ops;        /* merge operands being folded */
    size_t nops, capops;
    /* A transaction's writes (db_iter_create_overlay) carry sequence
     * numbers in [overlay_lo, overlay_hi], above every real one, so they
     * are newer than the snapshot; writes committed after the snapshot are
     * still hidden. Empty (lo > hi) for plain iterators. */
    uint64_t overlay_lo, overlay_hi;
    int fixed_view; /* made at a snapshot or by a transaction: no refresh */
};

static inline int visible(const weir_iter *it, uint64_t seq) {
    return seq <= it->sequence || (seq >= it->overlay_lo && seq <= it->overlay_hi);
}

static void set_status(weir_iter *it, int code) {
    if (it->status == WEIR_OK) {
        weir_error_save(&it->err, code);
        it->status = code;
    }
    it->valid = 0;
}

/* What an entry means to a reader at this iterator's time: expired values
 * and entries under a newer range tombstone read as deletions. */
static int effective_type_slow(const weir_iter *it, slice user, uint64_t seq, int type, slice value);
static inline int effective_type(const weir_iter *it, slice user, uint64_t seq, int type, slice value) {
    if (type == TYPE_VALUE && !it->has_tombs) return TYPE_VALUE; /* nearly every entry */
    return effective_type_slow(it, user, seq, type, value);
}

static int effective_type_slow(const weir_iter *it, slice user, uint64_t seq, int type, slice value) {
    if (type == TYPE_VALUE_TTL)
        type = value.len >= 8 && decode_fixed64(value.data) > it->now_ms ? TYPE_VALUE : TYPE_DELETION;
    if (type != TYPE_DELETION && it->has_tombs && db_covering_tombstone(&it->rs, user, it->sequence) > seq)
        type = TYPE_DELETION;
    return type;
}

static slice strip_ttl(int raw_type, slice value) {
    return raw_type == TYPE_VALUE_TTL ? slice_make(value.data + 8, value.len - 8) : value;
}

static int push_operand(weir_iter *it, slice v) {
    if (it->nops == it->capops) {
        size_t cap = it->capops ? it->capops * 2 : 8;
        buf *grown = realloc(it->ops, cap * sizeof *grown);
        if (!grown) return -1;
        for (size_t i = it->capops; i < cap; i++) grown[i] = (buf)BUF_INIT;
        it->ops = grown;
        it->capops = cap;
    }
    return buf_set(&it->ops[it->nops++], v.data, v.len);
}

/* Fold the operands (stored newest_first or oldest first) onto base into
 * saved_value. 0 on success; on failure the iterator stops with the error. */
static int fold_operands(weir_iter *it, int has_base, slice base, int newest_first) {
    slice *ops = malloc((it->nops ? it->nops : 1) * sizeof *ops);
    buf out = BUF_INIT;
    int rc;
    if (!ops) {
        rc = weir_set_error(WEIR_NO_MEMORY, "iterator: out of memory folding merge operands");
    } else {
        for (size_t i = 0; i < it->nops; i++)
            ops[i] = buf_slice(&it->ops[newest_first ? it->nops - 1 - i : i]);
        rc = merge_full(&it->db->opts.merge_ops, buf_slice(&it->saved_key), has_base, base, ops,
                        it->nops, &out);
    }
    free(ops);
    if (rc == WEIR_OK && buf_set(&it->saved_value, out.data ? out.data : "", out.len) != 0)
        rc = weir_set_error(WEIR_NO_MEMORY, "iterator: out of memory folding merge operands");
    buf_free(&out);
    it->nops = 0;
    if (rc != WEIR_OK) {
        set_status(it, rc);
        return -1;
    }
    return 0;
}

static void set_corrupt(weir_iter *it, const char *what) {
    if (it->status == WEIR_OK) {
        weir_set_error(WEIR_CORRUPTION, "iterator: %s", what);
        weir_error_save(&it->err, WEIR_CORRUPTION);
        it->status = WEIR_CORRUPTION;
    }
    it->valid = 0;
}

static inline int parse_current(weir_iter *it, slice *user, uint64_t *seq, int *type) {
    if (!ikey_parse(in_key(it->internal), user, seq, type)) {
        set_corrupt(it, "malformed internal key in a table or memtable");
        return 0;
    }
    return 1;
}

static int at_or_past_upper(const weir_iter *it, slice user) {
    return it->has_upper && slice_compare(user, buf_slice(&it->upper)) >= 0;
}

static int below_lower(const weir_iter *it, slice user) {
    return it->has_lower && slice_compare(user, buf_slice(&it->lower)) < 0;
}

static int save(buf *b, slice s, weir_iter *it);

/* Keep a copy of a user key (inside an internal key, so its 8-byte tag
 * follows it): keys of 8 to 16 bytes, the common case, are copied as one
 * fixed 16-byte move rather than through buf_set and memcpy, which were a
 * tenth of a forward step. */
static inline int save_user_key(weir_iter *it, slice user) {
    buf *b = &it->saved_key;
    if (user.len >= 8 && user.len <= 16 && b->cap >= 16) {
        memcpy(b->data, user.data, 16);
        b->len = user.len;
        return 0;
    }
    return save(b, user, it);
}

static int save(buf *b, slice s, weir_iter *it) {
    if (buf_set(b, s.data, s.len) != 0) {
        if (it->status == WEIR_OK) {
            weir_set_error(WEIR_NO_MEMORY, "iterator: out of memory saving a %zu-byte entry", s.len);
            weir_error_save(&it->err, WEIR_NO_MEMORY);
            it->status = WEIR_NO_MEMORY;
        }
        it->valid = 0;
        return -1;
    }
    return 0;
}

/* Forward, on a visible merge operand of saved_key's key: gather it and
 * the operands below it, stop at the base (left under the iterator for the
 * skip logic), fold into saved_value. */
static void fold_forward(weir_iter *it) {
    iter *in = it->internal;
    it->nops = 0;
    int has_base = 0;
    slice base = {NULL, 0};
    for (; in_valid(in); in_next(in)) {
        slice user;
        uint64_t seq;
        int type;
        if (!parse_current(it, &user, &seq, &type)) return;
        if (!slice_equal(user, buf_slice(&it->saved_key))) break;
        if (!visible(it, seq)) continue; /* committed after an overlay's snapshot */
        slice v = in_value(in);
        int eff = effective_type(it, user, seq, type, v);
        if (eff == TYPE_MERGE) {
            if (push_operand(it, v) != 0) {
                set_status(it, weir_set_error(WEIR_NO_MEMORY, "iterator: out of memory"));
                return;
            }
            continue;
        }
        if (eff == TYPE_VALUE) {
            has_base = 1;
            base = strip_ttl(type, v);
        }
        break;
    }
    if (fold_operands(it, has_base, base, 1) != 0) return;
    it->ahead = 1;
    it->valid = 1;
}

/* Forward: advance to the first visible entry whose user key is not hidden
 * (when skipping, keys <= saved_key are hidden). */
static void find_next_user_entry(weir_iter *it, int skipping) {
    iter *in = it->internal;
    it->ahead = 0;
    for (; in_valid(in); in_next(in)) {
        slice user;
        uint64_t seq;
        int type;
        if (!parse_current(it, &user, &seq, &type)) return;
        if (!visible(it, seq)) continue;
        if (at_or_past_upper(it, user)) break;
        if (skipping && slice_compare(user, buf_slice(&it->saved_key)) <= 0) continue;
        int eff = effective_type(it, user, seq, type, in_value(in));
        if (eff == TYPE_DELETION) {
            /* Hide every older entry of this key. */
            if (save_user_key(it, user) != 0) return;
            skipping = 1;
            continue;
        }
        if (eff == TYPE_MERGE) {
            if (save_user_key(it, user) != 0) return;
            fold_forward(it);
            return;
        }
        it->ttl_value = type == TYPE_VALUE_TTL;
        it->valid = 1;
        return;
    }
    it->valid = 0;
}

/* Backward: the internal iterator is at or before the last entry of the
 * wanted key; collect the newest visible entry of the previous user key. */
static void find_prev_user_entry(weir_iter *it) {
    iter *in = it->internal;
    int value_type = TYPE_DELETION;
    int has_base = 0; /* with merges: saved_value holds the base */
    it->nops = 0;
    while (in_valid(in)) {
        slice user;
        uint64_t seq;
        int type;
        if (!parse_current(it, &user, &seq, &type)) return;
        if (visible(it, seq)) {
            if (value_type != TYPE_DELETION && slice_compare(user, buf_slice(&it->saved_key)) < 0)
                break; /* reached an older key with a visible value saved */
            if (value_type == TYPE_DELETION && below_lower(it, user)) break;
            slice v = in_value(in);
            int eff = effective_type(it, user, seq, type, v);
            /* Entries of one key come oldest first here. */
            if (eff == TYPE_DELETION) {
                buf_clear(&it->saved_key);
                it->nops = 0;
                has_base = 0;
            } else if (eff == TYPE_VALUE) {
                if (save_user_key(it, user) != 0 || save(&it->saved_value, strip_ttl(type, v), it) != 0)
                    return;
                it->nops = 0;
                has_base = 1;
            } else {
                if (value_type == TYPE_DELETION) {
                    if (save_user_key(it, user) != 0) return;
                    has_base = 0;
                }
                if (push_operand(it, v) != 0) {
                    set_status(it, weir_set_error(WEIR_NO_MEMORY, "iterator: out of memory"));
                    return;
                }
            }
            value_type = eff;
        }
        iter_prev(in);
    }
    if (value_type == TYPE_DELETION || below_lower(it, buf_slice(&it->saved_key))) {
        it->valid = 0;
        it->direction = DIR_FORWARD;
        buf_clear(&it->saved_key);
        it->nops = 0;
        return;
    }
    if (value_type == TYPE_MERGE) {
        buf base = BUF_INIT;
        if (has_base && buf_set(&base, it->saved_value.data ? it->saved_value.data : "", it->saved_value.len) != 0) {
            set_status(it, weir_set_error(WEIR_NO_MEMORY, "iterator: out of memory"));
            return;
        }
        int failed = fold_operands(it, has_base, buf_slice(&base), 0);
        buf_free(&base);
        if (failed) return;
    }
    it->valid = 1;
}

/* Internal key (user, seq, type) in it->target; data NULL on OOM (the
 * iterator is then invalid with WEIR_NO_MEMORY). */
static slice make_target(weir_iter *it, slice user, uint64_t seq, int type) {
    buf_clear(&it->target);
    if (ikey_append(&it->target, user, seq, type) != 0) {
        if (it->status == WEIR_OK) {
            weir_set_error(WEIR_NO_MEMORY, "iterator: out of memory building a seek key");
            weir_error_save(&it->err, WEIR_NO_MEMORY);
            it->status = WEIR_NO_MEMORY;
        }
        it->valid = 0;
        return slice_make(NULL, 0);
    }
    return buf_slice(&it->target);
}

/* ---- public API ---------------------------------------------------------- */

/* An iterator inherited through fork() is dead in the child: it reports the
 * owner check's error and never moves (its DB's locks may be held by
 * threads the child does not have). 1 if it may be used. */
static int usable(weir_iter *it) {
    if (!db_forked_away(it->db)) return 1;
    if (it->status == WEIR_OK) {
        it->status = db_owner_check(it->db, "weir_iter");
        weir_error_save(&it->err, it->status);
    }
    it->valid = 0;
    return 0;
}

int weir_iter_valid(const weir_iter *it) { return it && it->valid; }

void weir_iter_seek_first(weir_iter *it) {
    if (!it || !usable(it)) return;
    it->direction = DIR_FORWARD;
    buf_clear(&it->saved_value);
    if (it->has_lower) {
        slice t = make_target(it, buf_slice(&it->lower), MAX_SEQUENCE, TYPE_FOR_SEEK);
        if (!t.data) return;
        iter_seek(it->internal, t);
    } else {
        iter_seek_first(it->internal);
    }
    find_next_user_entry(it, 0);
}

/* Position the internal iterator on the last entry before user key `limit`
 * (or the very last entry if limit is NULL), then find the previous user
 * entry from there. */
static void seek_before(weir_iter *it, const slice *limit, uint64_t seq, int type) {
    it->direction = DIR_REVERSE;
    buf_clear(&it->saved_value);
    buf_clear(&it->saved_key);
    if (limit) {
        slice t = make_target(it, *limit, seq, type);
        if (!t.data) return;
        iter_seek(it->internal, t);
        if (in_valid(it->internal)) iter_prev(it->internal);
        else iter_seek_last(it->internal);
    } else {
        iter_seek_last(it->internal);
    }
    find_prev_user_entry(it);
}

void weir_iter_seek_last(weir_iter *it) {
    if (!it || !usable(it)) return;
    if (it->has_upper) {
        slice up = buf_slice(&it->upper);
        seek_before(it, &up, MAX_SEQUENCE, TYPE_FOR_SEEK);
    } else {
        seek_before(it, NULL, 0, 0);
    }
}

/* Read-triggered compaction: one seek in SEEK_SAMPLE_PERIOD (per thread)
 * charges the version for all of them, so the read path touches a shared
 * counter only that often. */
#define SEEK_SAMPLE_PERIOD 16
static _Thread_local unsigned seek_sample_tick;

static void charge_seek(weir_iter *it, slice user_key) {
    weir_db *db = it->db;
    if (!db->opts.read_triggered_compaction || db->read_only) return;
    if (++seek_sample_tick % SEEK_SAMPLE_PERIOD != 0) return;
    if (!version_charge_seek(it->rs.v, user_key, SEEK_SAMPLE_PERIOD)) return;
    pthread_mutex_lock(&db->mu);
    pthread_cond_broadcast(&db->work_cv); /* the background thread picks it */
    pthread_mutex_unlock(&db->mu);
}

void weir_iter_seek(weir_iter *it, const void *key, size_t klen) {
    if (!it || !usable(it)) return;
    if (!key && klen) {
        it->valid = 0;
        return;
    }
    slice target = slice_make(key, klen);
    if (it->has_lower && slice_compare(target, buf_slice(&it->lower)) < 0) target = buf_slice(&it->lower);
    it->direction = DIR_FORWARD;
    buf_clear(&it->saved_value);
    if (at_or_past_upper(it, target)) {
        it->valid = 0;
        return;
    }
    uint64_t newest = it->overlay_lo <= it->overlay_hi ? it->overlay_hi : it->sequence;
    slice t = make_target(it, target, newest, TYPE_FOR_SEEK);
    if (!t.data) return;
    iter_seek(it->internal, t);
    find_next_user_entry(it, 0);
    charge_seek(it, target);
}

void weir_iter_seek_for_prev(weir_iter *it, const void *key, size_t klen) {
    if (!it || !usable(it)) return;
    if (!key && klen) {
        it->valid = 0;
        return;
    }
    slice target = slice_make(key, klen);
    if (at_or_past_upper(it, target)) {
        weir_iter_seek_last(it);
        return;
    }
    /* Sequence numbers start at 1, so (key, 0, deletion) sorts after every
     * entry of key and before every larger key. */
    seek_before(it, &target, 0, TYPE_DELETION);
    charge_seek(it, target);
}

void weir_iter_next(weir_iter *it) {
    if (!it || !it->valid || !usable(it)) return;
    iter *in = it->internal;
    if (it->direction == DIR_REVERSE) {
        it->direction = DIR_FORWARD;
        /* The internal iterator is before the current key's entries; step
         * into them; saved_key already names the key to skip. */
        if (!in_valid(in)) iter_seek_first(in);
        else in_next(in);
    } else if (it->ahead) {
        /* Already past the folded key's operands; saved_key names it. */
    } else {
        if (save_user_key(it, ikey_user(in_key(in))) != 0) return;
        in_next(in);
    }
    if (!in_valid(in)) {
        it->valid = 0;
        buf_clear(&it->saved_key);
        return;
    }
    find_next_user_entry(it, 1);
}

void weir_iter_prev(weir_iter *it) {
    if (!it || !it->valid || !usable(it)) return;
    iter *in = it->internal;
    if (it->direction == DIR_FORWARD) {
        /* Move before every entry of the current key. */
        if (it->ahead) {
            /* The internal iterator is past the folded key: come back. */
            it->ahead = 0;
            if (!in_valid(in)) iter_seek_last(in);
            while (in_valid(in) && slice_compare(ikey_user(in_key(in)), buf_slice(&it->saved_key)) >= 0)
                iter_prev(in);
        } else {
            if (save_user_key(it, ikey_user(in_key(in))) != 0) return;
            do {
                iter_prev(in);
            } while (in_valid(in) && slice_compare(ikey_user(in_key(in)), buf_slice(&it->saved_key)) >= 0);
        }
        if (!in_valid(in)) {
            it->valid = 0;
            buf_clear(&it->saved_key);
            buf_clear(&it->saved_value);
            return;
        }
        it->direction = DIR_REVERSE;
    }
    find_prev_user_entry(it);
}

const void *weir_iter_key(const weir_iter *it, size_t *len) {
    if (!it || !it->valid) {
        if (len) *len = 0;
        return NULL;
    }
    slice k = it->direction == DIR_FORWARD && !it->ahead ? ikey_user(in_key(it->internal))
                                                           : buf_slice(&it->saved_key);
    if (len) *len = k.len;
    return k.data ? k.data : "";
}

const void *weir_iter_value(const weir_iter *it, size_t *len) {
    if (!it || !it->valid) {
        if (len) *len = 0;
        return NULL;
    }
    slice v;
    if (it->direction == DIR_FORWARD && !it->ahead)
        v = strip_ttl(it->ttl_value ? TYPE_VALUE_TTL : TYPE_VALUE, in_value(it->internal));
    else
        v = buf_slice(&it->saved_value);
    if (len) *len = v.len;
    return v.data ? v.data : "";
}

int weir_iter_status(const weir_iter *it) {
    if (!it) return weir_set_error(WEIR_INVALID, "weir_iter_status: iterator is NULL");
    if (db_forked_away(it->db)) return db_owner_check(it->db, "weir_iter_status");
    if (it->status != WEIR_OK) return weir_error_raise(&it->err);
    return iter_status(it->internal);
}

void weir_iter_destroy(weir_iter *it) {
    if (!it) return;
    if (db_forked_away(it->db)) return; /* a dead copy: release nothing */
    atomic_fetch_sub(&it->db->live_iterators, 1);
    iter_destroy(it->internal);
    db_release_read_state(it->db, &it->rs);
    buf_free(&it->saved_key);
    buf_free(&it->saved_value);
    buf_free(&it->lower);
    buf_free(&it->upper);
    buf_free(&it->target);
    for (size_t i = 0; i < it->capops; i++) buf_free(&it->ops[i]);
    free(it->ops);
    free(it);
}

/* The smallest key greater than every key starting with prefix: drop
 * trailing 0xff bytes and increment the last. 0 if none exists (the prefix
 * is all 0xff, and every key >= it has it). */
static int prefix_successor(slice prefix, buf *out) {
    size_t n = prefix.len;
    while (n > 0 && (unsigned char)prefix.data[n - 1] == 0xff) n--;
    if (n == 0) return 0;
    if (buf_set(out, prefix.data, n) != 0) return -1;
    out->data[n - 1] = (char)((unsigned char)out->data[n - 1] + 1);
    return 1;
}

static int setup_bounds(weir_iter *it, const weir_readopts *ro) {
    if (!ro) return WEIR_OK;
    if ((!ro->lower_bound && ro->lower_bound_len) || (!ro->upper_bound && ro->upper_bound_len) ||
        (!ro->prefix && ro->prefix_len))
        return weir_set_error(WEIR_INVALID, "weir_iter_create: a bound or prefix is NULL with a non-zero length");
    if (ro->lower_bound) {
        if (buf_set(&it->lower, ro->lower_bound, ro->lower_bound_len) != 0) return WEIR_NO_MEMORY;
        it->has_lower = 1;
    }
    if (ro->upper_bound) {
        if (buf_set(&it->upper, ro->upper_bound, ro->upper_bound_len) != 0) return WEIR_NO_MEMORY;
        it->has_upper = 1;
    }
    if (ro->prefix) {
        slice p = slice_make(ro->prefix, ro->prefix_len);
        if (!it->has_lower || slice_compare(p, buf_slice(&it->lower)) > 0) {
            if (buf_set(&it->lower, p.data, p.len) != 0) return WEIR_NO_MEMORY;
            it->has_lower = 1;
        }
        buf succ = BUF_INIT;
        int r = prefix_successor(p, &succ);
        if (r < 0) return WEIR_NO_MEMORY;
        if (r > 0 && (!it->has_upper || slice_compare(buf_slice(&succ), buf_slice(&it->upper)) < 0)) {
            buf_free(&it->upper);
            it->upper = succ;
            it->has_upper = 1;
        } else {
            buf_free(&succ);
        }
    }
    return WEIR_OK;
}

/* The merged internal iterator over it->rs (and overlay, whose ownership
 * it takes, also on failure): it->internal. WEIR_NO_MEMORY with a message
 * on failure, it->internal then NULL. */
static int build_internal(weir_iter *it, iter *overlay) {
    iter **children = NULL;
    int n = 0;
    iter *m = memtable_iter_create(it->rs.mem);
    iter *im = it->rs.imm ? memtable_iter_create(it->rs.imm) : NULL;
    int rc = (!m || (it->rs.imm && !im)) ? WEIR_NO_MEMORY : WEIR_OK;
    if (rc == WEIR_OK) {
        children = malloc(sizeof *children * 3);
        if (!children) rc = WEIR_NO_MEMORY;
    }
    if (rc == WEIR_OK) {
        if (overlay) children[n++] = overlay;
        overlay = NULL;
        children[n++] = m;
        m = NULL;
        if (im) children[n++] = im;
        im = NULL;
        /* The version is referenced by rs, so its file lists are stable. */
        rc = version_add_iterators(it->rs.v, &children, &n);
    }
    it->internal = NULL;
    if (rc == WEIR_OK) {
        /* The merger owns the children now; the array is ours to free. */
        it->internal = merging_iter_create(children, n);
        free(children);
        children = NULL;
        n = 0;
        if (!it->internal) rc = WEIR_NO_MEMORY;
    }
    iter_destroy(overlay);
    iter_destroy(m);
    iter_destroy(im);
    if (children) {
        for (int i = 0; i < n; i++) iter_destroy(children[i]);
    }
    free(children);
    if (rc != WEIR_OK) return weir_set_error(WEIR_NO_MEMORY, "out of memory creating an iterator");
    return WEIR_OK;
}

static int iter_create(weir_db *db, const weir_readopts *ro, const weir_snapshot *snap,
                       iter *overlay, uint64_t overlay_lo, uint64_t overlay_hi, weir_iter **out) {
    if (ro) {
        int rrc = DB_CHECK_RESERVED("weir_iter_create", "weir_readopts", ro);
        if (rrc == WEIR_OK && ro->memory_only)
            rrc = weir_set_error(WEIR_INVALID, "weir_iter_create: memory_only applies to point reads "
                                 "(weir_get and friends), not to iterators");
        if (rrc != WEIR_OK) {
            iter_destroy(overlay);
            return rrc;
        }
    }
    weir_iter *it = calloc(1, sizeof *it);
    if (!it) {
        iter_destroy(overlay);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory creating an iterator");
    }
    int rc = setup_bounds(it, ro);
    if (rc != WEIR_OK) {
        iter_destroy(overlay);
        buf_free(&it->lower);
        buf_free(&it->upper);
        free(it);
        if (rc == WEIR_NO_MEMORY) return weir_set_error(rc, "out of memory creating an iterator");
        return rc;
    }
    it->db = db;
    it->fixed_view = snap != NULL || overlay != NULL;
    db_acquire_read_state(db, snap, &it->rs);
    it->sequence = it->rs.sequence;
    it->overlay_lo = overlay ? overlay_lo : UINT64_MAX;
    it->overlay_hi = overlay ? overlay_hi : 0;
    it->has_tombs = db_has_tombstones(&it->rs);
    it->now_ms = db_now_ms(db);
    rc = build_internal(it, overlay);
    if (rc != WEIR_OK) {
        db_release_read_state(db, &it->rs);
        buf_free(&it->lower);
        buf_free(&it->upper);
        free(it);
        return rc;
    }
    it->direction = DIR_FORWARD;
    atomic_fetch_add(&db->live_iterators, 1);
    *out = it;
    return WEIR_OK;
}

int weir_iter_refresh(weir_iter *it) {
    if (!it) return weir_set_error(WEIR_INVALID, "weir_iter_refresh: iterator is NULL");
    if (!usable(it)) return db_owner_check(it->db, "weir_iter_refresh");
    if (it->fixed_view)
        return weir_set_error(WEIR_INVALID, "weir_iter_refresh: the iterator reads a snapshot or a "
                              "transaction, which never change; create a new one instead");
    weir_db *db = it->db;
    read_state rs;
    db_acquire_read_state(db, NULL, &rs);
    if (rs.sv == it->rs.sv) {
        /* The same memtables and tables: the internal iterator stays; only
         * the sequence number the reader sees moves on. */
        it->rs.sequence = rs.sequence;
        db_release_read_state(db, &rs);
    } else {
        iter *old = it->internal;
        read_state old_rs = it->rs;
        it->rs = rs;
        int rc = build_internal(it, NULL);
        if (rc != WEIR_OK) {
            /* Keep the old view whole: the iterator still works. */
            db_release_read_state(db, &it->rs);
            it->rs = old_rs;
            it->internal = old;
            return rc;
        }
        iter_destroy(old);
        db_release_read_state(db, &old_rs);
    }
    it->sequence = it->rs.sequence;
    it->has_tombs = db_has_tombstones(&it->rs);
    it->now_ms = db_now_ms(db);
    it->status = WEIR_OK;
    it->valid = 0;
    it->ahead = 0;
    it->direction = DIR_FORWARD;
    buf_clear(&it->saved_key);
    buf_clear(&it->saved_value);
    for (size_t i = 0; i < it->nops; i++) buf_clear(&it->ops[i]);
    it->nops = 0;
    return WEIR_OK;
}

int weir_iter_create(weir_db *db, const weir_readopts *ro, weir_iter **out) {
    if (!out) return weir_set_error(WEIR_INVALID, "weir_iter_create: out is NULL");
    *out = NULL;
    CHECK_DB(db, "weir_iter_create");
    if (ro && ro->snapshot && ro->snapshot->db != db)
        return weir_set_error(WEIR_INVALID, "weir_iter_create: the snapshot belongs to another database");
    return iter_create(db, ro, ro ? ro->snapshot : NULL, NULL, 0, 0, out);
}

int db_iter_create_overlay(weir_db *db, const weir_readopts *ro, const weir_snapshot *snap,
                           iter *overlay, uint64_t overlay_lo, uint64_t overlay_hi,
                           weir_iter **out) {
    *out = NULL;
    return iter_create(db, ro, snap, overlay, overlay_lo, overlay_hi, out);
}
