/*
 * compaction.c -- runs one compaction picked by version.c: merges the
 * input tables, drops versions no snapshot can see and tombstones nothing
 * below can need, writes output tables of the target size, and installs
 * the result in one version edit. Trivial moves (one file that overlaps
 * nothing below) are a manifest edit only.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "db_impl.h"
#include "merge.h"
#include "filename.h"
#include "sst.h"

typedef struct output_file {
    uint64_t number;
    uint64_t size;
    uint64_t entries;
    uint64_t min_seq; /* of its entries */
    buf smallest, largest;
} output_file;

typedef struct compaction_state {
    weir_db *db;
    compaction *c;
    uint64_t smallest_snapshot;
    uint64_t now_ms;      /* TTL expiry is judged at this time */
    output_file *outputs;
    size_t num_outputs, cap_outputs;
    sst_builder *builder; /* open output, or NULL */
    char path[PATH_MAX];
    uint64_t consumed;              /* input entries stepped past */
    _Atomic uint64_t *progress;     /* where `consumed` is published, or NULL */
} compaction_state;

/* Step the input past one entry, counting it for the progress report. */
static void next_input(compaction_state *cs, iter *input) {
    cs->consumed++;
    iter_next(input);
}

/* Start a new output table (takes the mutex briefly for a file number). */
static int open_output(compaction_state *cs) {
    weir_db *db = cs->db;
    if (cs->num_outputs == cs->cap_outputs) {
        size_t cap = cs->cap_outputs ? cs->cap_outputs * 2 : 4;
        output_file *p = realloc(cs->outputs, cap * sizeof *p);
        if (!p) return weir_set_error(WEIR_NO_MEMORY, "out of memory during compaction");
        cs->outputs = p;
        cs->cap_outputs = cap;
    }
    pthread_mutex_lock(&db->mu);
    uint64_t number = vset_new_file_number(db->vs);
    int rc = db_add_pending_output(db, number);
    pthread_mutex_unlock(&db->mu);
    if (rc != WEIR_OK) return rc;
    output_file *o = &cs->outputs[cs->num_outputs++];
    o->number = number;
    o->size = 0;
    o->entries = 0;
    o->min_seq = MAX_SEQUENCE;
    o->smallest = (buf)BUF_INIT;
    o->largest = (buf)BUF_INIT;
    sst_build_options so = {db->opts.block_size, SST_RESTART_INTERVAL, db->opts.bloom_bits_per_key, db->opts.compression};
    table_file_path(cs->path, sizeof cs->path, db->path, number);
    return sst_builder_open(db->env, cs->path, &so, &cs->builder);
}

static int finish_output(compaction_state *cs) {
    output_file *o = &cs->outputs[cs->num_outputs - 1];
    o->entries = sst_builder_num_entries(cs->builder);
    int rc = sst_builder_finish(cs->builder, &o->size);
    cs->builder = NULL;
    if (rc == WEIR_OK) {
        table_handle *h;
        rc = table_cache_get(cs->db->tc, o->number, o->size, &h);
        if (rc == WEIR_OK) table_cache_release(cs->db->tc, h);
    }
    if (rc == WEIR_OK) stat_add(&cs->db->stats.compaction_bytes_written, o->size);
    return rc;
}

static int add_entry(compaction_state *cs, slice key, slice value) {
    if (!cs->builder) {
        int rc = open_output(cs);
        if (rc != WEIR_OK) return rc;
    }
    output_file *o = &cs->outputs[cs->num_outputs - 1];
    if (o->smallest.len == 0 && buf_set(&o->smallest, key.data, key.len) != 0)
        return weir_set_error(WEIR_NO_MEMORY, "out of memory during compaction");
    if (buf_set(&o->largest, key.data, key.len) != 0)
        return weir_set_error(WEIR_NO_MEMORY, "out of memory during compaction");
    if (ikey_seq(key) < o->min_seq) o->min_seq = ikey_seq(key);
    int rc = sst_builder_add(cs->builder, key, value);
    if (rc == WEIR_OK && sst_builder_file_size(cs->builder) >= cs->c->max_output_file_size)
        rc = finish_output(cs);
    return rc;
}

/* 1 if a range tombstone of the input version, visible to every reader,
 * deletes the entry (user, seq). */
static int covered_for_all(const compaction_state *cs, slice user, uint64_t seq) {
    const tomb_set *t = cs->c->input_version->tombs;
    for (int i = 0; t && i < t->n; i++) {
        const vtomb *v = &t->v[i];
        if (v->seq > seq && v->seq <= cs->smallest_snapshot &&
            slice_compare(user, buf_slice(&v->start)) >= 0 && slice_compare(user, buf_slice(&v->end)) < 0)
            return 1;
    }
    return 0;
}

/* Outputs hold nothing that a tombstone of the input version visible to
 * every reader deletes (merge_inputs drops it), nor anything older than
 * their oldest entry: the highest tombstone sequence they are clean for. */
static uint64_t output_clean_seq(const compaction_state *cs, const output_file *o) {
    const tomb_set *t = cs->c->input_version->tombs;
    uint64_t newest = t && t->n ? t->v[t->n - 1].seq : 0; /* the set is sorted by seq */
    uint64_t dropped = newest < cs->smallest_snapshot ? newest : cs->smallest_snapshot;
    return dropped > o->min_seq ? dropped : o->min_seq;
}

/* Range tombstones in the version are only read, never compacted, so
 * without this they would pile up forever and every read would check them
 * all. A tombstone can go once no table can hold an entry it deletes: each
 * table overlapping its range is clean for it (file_meta.tombs_clean_seq),
 * counting this compaction's outputs in and its inputs out. Memtables only
 * hold entries newer than any tombstone in the version. (Mutex held.) */
static int is_input(const compaction *c, const file_meta *f) {
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < c->num_inputs[which]; i++)
            if (c->inputs[which][i] == f) return 1;
    return 0;
}

static int drop_dead_tombstones(compaction_state *cs) {
    compaction *c = cs->c;
    const version *v = cs->db->vs->current;
    const tomb_set *t = v->tombs;
    int rc = WEIR_OK;
    for (int i = 0; t && i < t->n && rc == WEIR_OK; i++) {
        const vtomb *tb = &t->v[i];
        slice start = buf_slice(&tb->start), end = buf_slice(&tb->end);
        if (tb->seq > cs->smallest_snapshot) break; /* sorted: the rest are newer */
        int needed = 0;
        for (int level = 0; level < NUM_LEVELS && !needed; level++) {
            for (int j = 0; j < v->num_files[level] && !needed; j++) {
                const file_meta *f = v->files[level][j];
                if (slice_compare(ikey_user(buf_slice(&f->smallest)), end) >= 0) {
                    if (level > 0) break; /* sorted by smallest key */
                    continue;
                }
                needed = f->tombs_clean_seq < tb->seq &&
                         slice_compare(ikey_user(buf_slice(&f->largest)), start) >= 0 && !is_input(c, f);
            }
        }
        for (size_t j = 0; j < c->edit.num_added && !needed; j++) {
            const file_meta *f = c->edit.added[j].file;
            needed = f->tombs_clean_seq < tb->seq &&
                     slice_compare(ikey_user(buf_slice(&f->smallest)), end) < 0 &&
                     slice_compare(ikey_user(buf_slice(&f->largest)), start) >= 0;
        }
        if (!needed) rc = version_edit_remove_range_tombstone(&c->edit, tb->seq);
    }
    return rc;
}

/* An expired value reads as a deletion for everyone (expiry is wall-clock
 * time, not a sequence number), so compaction treats it as one. */
static int expired(const compaction_state *cs, int type, slice value) {
    return type == TYPE_VALUE_TTL && value.len >= 8 && decode_fixed64(value.data) <= cs->now_ms;
}

/* Emit (user, seq, type) -> value. */
static int emit(compaction_state *cs, slice user, uint64_t seq, int type, slice value) {
    buf k = BUF_INIT;
    if (ikey_append(&k, user, seq, type) != 0) return weir_set_error(WEIR_NO_MEMORY, "out of memory during compaction");
    int rc = add_entry(cs, buf_slice(&k), value);
    buf_free(&k);
    return rc;
}

typedef struct operand_list {
    buf *vals;  /* operands, newest first */
    uint64_t *seqs;
    size_t n, cap;
} operand_list;

static int operands_push(operand_list *l, uint64_t seq, slice v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        buf *nv = realloc(l->vals, cap * sizeof *nv);
        if (!nv) return -1;
        l->vals = nv;
        uint64_t *ns = realloc(l->seqs, cap * sizeof *ns);
        if (!ns) return -1;
        l->seqs = ns;
        l->cap = cap;
    }
    l->vals[l->n] = (buf)BUF_INIT;
    if (buf_set(&l->vals[l->n], v.data, v.len) != 0) return -1;
    l->seqs[l->n++] = seq;
    return 0;
}

static void operands_free(operand_list *l) {
    for (size_t i = 0; i < l->n; i++) buf_free(&l->vals[i]);
    free(l->vals);
    free(l->seqs);
}

/* The input is on a merge operand every reader sees. Gather the key's
 * operands below it and, if this compaction finds the key's base (or
 * knows nothing lies below), fold them into a plain value; otherwise
 * combine associative built-ins into one operand. The input is left on the
 * first entry not consumed. */
static int fold_merges(compaction_state *cs, iter *input, slice user_in, int *keep_base) {
    operand_list ops = {0};
    buf user = BUF_INIT, base = BUF_INIT, out = BUF_INIT;
    int rc = WEIR_OK;
    int base_state = 0; /* 0 unknown, 1 a value, 2 nothing (deleted), 3 a live TTL value */
    int base_is_entry = 0; /* the base is the entry under the iterator */
    *keep_base = 0;
    if (buf_set(&user, user_in.data, user_in.len) != 0) rc = WEIR_NO_MEMORY;
    while (rc == WEIR_OK && iter_valid(input)) {
        slice k = iter_key(input), u;
        uint64_t seq;
        int type;
        if (!ikey_parse(k, &u, &seq, &type) || !slice_equal(u, buf_slice(&user))) break;
        slice v = iter_value(input);
        if (type == TYPE_MERGE && !covered_for_all(cs, u, seq)) {
            if (operands_push(&ops, seq, v) != 0) rc = WEIR_NO_MEMORY;
            next_input(cs, input);
            continue;
        }
        if (type == TYPE_VALUE_TTL && !expired(cs, type, v) && !covered_for_all(cs, u, seq)) {
            /* Reads fold the operands onto this value until it expires and
             * onto nothing after: folding it in now would make the result
             * outlive the expiry. It stays below the operands. */
            base_state = 3;
        } else if (type == TYPE_VALUE && !covered_for_all(cs, u, seq)) {
            if (buf_set(&base, v.data ? v.data : "", v.len) != 0) rc = WEIR_NO_MEMORY;
            base_state = 1;
        } else {
            base_state = 2; /* deletion, expiry, or under a range tombstone */
        }
        /* Entries below the base are shadowed; the caller drops them. */
        base_is_entry = 1;
        break;
    }
    if (rc == WEIR_NO_MEMORY) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory folding merges");
    if (rc == WEIR_OK && base_state == 0 && compaction_is_base_level_for_key(cs->c, buf_slice(&user)))
        base_state = 2;
    slice *oldest_first = ops.n ? malloc(ops.n * sizeof *oldest_first) : NULL;
    if (rc == WEIR_OK && ops.n && !oldest_first) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory folding merges");
    for (size_t i = 0; rc == WEIR_OK && i < ops.n; i++) oldest_first[i] = buf_slice(&ops.vals[ops.n - 1 - i]);
    int folded = 0, base_consumed = 0;
    if (rc == WEIR_OK && (base_state == 1 || base_state == 2)) {
        if (merge_full(&cs->db->opts.merge_ops, buf_slice(&user), base_state == 1, buf_slice(&base),
                       oldest_first, ops.n, &out) == WEIR_OK) {
            rc = emit(cs, buf_slice(&user), ops.seqs[0], TYPE_VALUE, buf_slice(&out));
            folded = 1;
            base_consumed = base_is_entry;
        }
        /* A fold that fails (a type mismatch) is left for reads to report. */
    } else if (rc == WEIR_OK && ops.n > 1 && merge_partial(oldest_first, ops.n, &out)) {
        rc = emit(cs, buf_slice(&user), ops.seqs[0], TYPE_MERGE, buf_slice(&out));
        folded = 1;
    }
    if (rc == WEIR_OK && !folded) {
        for (size_t i = 0; i < ops.n && rc == WEIR_OK; i++)
            rc = emit(cs, buf_slice(&user), ops.seqs[i], TYPE_MERGE, buf_slice(&ops.vals[i]));
    }
    /* A base not folded in is still under the iterator and must be kept
     * as it is. */
    *keep_base = base_is_entry && !base_consumed;
    if (base_consumed) next_input(cs, input); /* folded in: skip it */
    if (folded == 1) stat_add(&cs->db->stats.compaction_entries_dropped, ops.n ? ops.n - 1 : 0);
    free(oldest_first);
    operands_free(&ops);
    buf_free(&user);
    buf_free(&base);
    buf_free(&out);
    return rc;
}

/* The merge loop; runs without the mutex. */
static int merge_inputs(compaction_state *cs, iter *input) {
    weir_db *db = cs->db;
    compaction *c = cs->c;
    buf current_user = BUF_INIT;
    int has_current = 0;
    uint64_t last_seq_for_key = MAX_SEQUENCE;
    int rc = WEIR_OK;
    uint64_t n = 0;
    iter_seek_first(input);
    while (iter_valid(input) && rc == WEIR_OK) {
        if ((++n & 1023) == 0 && cs->progress)
            atomic_store_explicit(cs->progress, cs->consumed, memory_order_relaxed);
        /* With one background thread the flush waits for us: do it here
         * so writers are not stalled for the whole compaction. */
        if ((n & 1023) == 0 && db->opts.background_threads == 1) {
            pthread_mutex_lock(&db->mu);
            if (db->imm && !db->flush_running) {
                db->flush_running = 1;
                rc = db_flush_imm(db);
                db->flush_running = 0;
            }
            int stop = db->shutting_down;
            pthread_mutex_unlock(&db->mu);
            if (rc != WEIR_OK) break;
            if (stop) {
                rc = weir_set_error(WEIR_CLOSED, "compaction stopped: the database is closing");
                break;
            }
        }
        slice key = iter_key(input);
        if (cs->builder && compaction_should_stop_before(c, key)) {
            rc = finish_output(cs);
            if (rc != WEIR_OK) break;
        }
        slice user;
        uint64_t seq;
        int type;
        if (!ikey_parse(key, &user, &seq, &type) || type == TYPE_RANGE_DELETION) {
            rc = weir_set_error(WEIR_CORRUPTION,
                                "compaction at level %d found a malformed internal key (%zu bytes)",
                                c->level, key.len);
            break;
        }
        if (!has_current || !slice_equal(user, buf_slice(&current_user))) {
            if (buf_set(&current_user, user.data, user.len) != 0) {
                rc = weir_set_error(WEIR_NO_MEMORY, "out of memory during compaction");
                break;
            }
            has_current = 1;
            last_seq_for_key = MAX_SEQUENCE;
        }
        slice value = iter_value(input);
        int is_expired = expired(cs, type, value);
        int drop = 0;
        if (last_seq_for_key <= cs->smallest_snapshot) {
            /* A newer entry for this key is visible to every snapshot. */
            drop = 1;
        } else if (covered_for_all(cs, user, seq)) {
            /* Under a range tombstone every reader sees (which stays). */
            drop = 1;
        } else if ((type == TYPE_DELETION || is_expired) && seq <= cs->smallest_snapshot &&
                   compaction_is_base_level_for_key(c, user)) {
            /* Nothing older below to hide, and every reader sees the
             * deletion: the tombstone itself can go. */
            drop = 1;
        }
        last_seq_for_key = seq;
        if (drop) {
            stat_add(&db->stats.compaction_entries_dropped, 1);
            next_input(cs, input);
            continue;
        }
        if (type == TYPE_MERGE && seq <= cs->smallest_snapshot) {
            int keep_base;
            rc = fold_merges(cs, input, user, &keep_base);
            /* Unfolded operands need their base kept for reads to fold. */
            if (keep_base) last_seq_for_key = MAX_SEQUENCE;
            continue;
        }
        if (is_expired) {
            /* Keep only what it still does: hide older versions. */
            rc = emit(cs, user, seq, TYPE_DELETION, slice_make(NULL, 0));
        } else {
            rc = add_entry(cs, key, value);
        }
        next_input(cs, input);
    }
    if (rc == WEIR_OK) rc = iter_status(input);
    if (rc == WEIR_OK && cs->builder) rc = finish_output(cs);
    if (cs->progress) atomic_store_explicit(cs->progress, cs->consumed, memory_order_relaxed);
    buf_free(&current_user);
    return rc;
}

int db_run_compaction(weir_db *db, compaction *c, _Atomic uint64_t *entries_done) {
    int rc;
    if (!c->rewrite && compaction_is_trivial_move(c)) {
        file_meta *f = c->inputs[0][0];
        rc = version_edit_delete_file(&c->edit, c->level, f->number);
        if (rc == WEIR_OK) rc = version_edit_add_file(&c->edit, c->level + 1, f);
        if (rc == WEIR_OK) rc = vset_log_and_apply(db->vs, &c->edit, &db->mu);
        if (rc == WEIR_OK) {
            /* The same file_meta lives on one level down, where it is
             * overlapped differently: its seek allowance starts again. */
            atomic_store_explicit(&f->seek_allowance, file_seek_allowance(f->size), memory_order_relaxed);
            stat_add(&db->stats.trivial_moves, 1);
            if (c->read_triggered) stat_add(&db->stats.read_triggered_compactions, 1);
            db_update_compaction_debt(db);
            db_install_superversion(db);
        }
        compaction_free(c);
        return rc;
    }

    int c_read_triggered = c->read_triggered; /* c is freed before the stats */
    compaction_state cs = {0};
    cs.db = db;
    cs.c = c;
    cs.progress = entries_done;
    cs.smallest_snapshot = db_smallest_snapshot(db);
    cs.now_ms = db_now_ms(db);
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < c->num_inputs[which]; i++)
            stat_add(&db->stats.compaction_bytes_read, c->inputs[which][i]->size);

    iter *input = compaction_input_iter(c);
    pthread_mutex_unlock(&db->mu);
    if (!input) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory starting a compaction");
    else rc = merge_inputs(&cs, input);
    iter_destroy(input);
    if (cs.builder) {
        sst_builder_abandon(cs.builder);
        cs.builder = NULL;
    }
    /* Output tables must have durable directory entries before the
     * manifest names them. */
    if (rc == WEIR_OK && cs.num_outputs > 0) rc = db->env->ops->sync_dir(db->env, db->path);
    pthread_mutex_lock(&db->mu);

    if (rc == WEIR_OK) rc = compaction_add_input_deletions(c);
    for (size_t i = 0; i < cs.num_outputs && rc == WEIR_OK; i++) {
        output_file *o = &cs.outputs[i];
        if (o->entries == 0) continue;
        file_meta *f = file_meta_create(o->number, o->size, o->entries, buf_slice(&o->smallest),
                                        buf_slice(&o->largest));
        if (!f) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory installing a compaction");
            break;
        }
        f->tombs_clean_seq = output_clean_seq(&cs, o);
        rc = version_edit_add_file(&c->edit, c->level + 1, f);
        file_meta_unref(f);
    }
    if (rc == WEIR_OK) rc = drop_dead_tombstones(&cs);
    if (rc == WEIR_OK) {
        /* A failed manifest write (say its fsync) may still have put the
         * edit on disk, naming the outputs and dropping the inputs: both
         * must stay until a later manifest settles it. The version set
         * marks the manifest uncertain, which freezes file deletion until a
         * new manifest is written; the caller decides whether the failure
         * stops the DB (WEIR_NO_SPACE does not). */
        rc = vset_log_and_apply(db->vs, &c->edit, &db->mu);
    }
    for (size_t i = 0; i < cs.num_outputs; i++) {
        db_remove_pending_output(db, cs.outputs[i].number);
        buf_free(&cs.outputs[i].smallest);
        buf_free(&cs.outputs[i].largest);
    }
    free(cs.outputs);
    compaction_free(c);
    if (rc == WEIR_OK) {
        stat_add(&db->stats.compactions, 1);
        if (c_read_triggered) stat_add(&db->stats.read_triggered_compactions, 1);
        db_update_compaction_debt(db);
        db_install_superversion(db);
    }
    /* On failure the outputs are not in any version and are removed here
     * too (unless a background error or an uncertain manifest froze file
     * deletion). */
    db_delete_obsolete_files(db);
    return rc == WEIR_CLOSED ? WEIR_OK : rc;
}
