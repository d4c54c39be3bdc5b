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
#include "filename.h"
#include "sst.h"

static void stat_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

typedef struct output_file {
    uint64_t number;
    uint64_t size;
    uint64_t entries;
    buf smallest, largest;
} output_file;

typedef struct compaction_state {
    weir_db *db;
    compaction *c;
    uint64_t smallest_snapshot;
    output_file *outputs;
    size_t num_outputs, cap_outputs;
    sst_builder *builder; /* open output, or NULL */
    char path[PATH_MAX];
} compaction_state;

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
    o->smallest = (buf)BUF_INIT;
    o->largest = (buf)BUF_INIT;
    sst_build_options so = {db->opts.block_size, 16, db->opts.bloom_bits_per_key, db->opts.compression};
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
    int rc = sst_builder_add(cs->builder, key, value);
    if (rc == WEIR_OK && sst_builder_file_size(cs->builder) >= cs->c->max_output_file_size)
        rc = finish_output(cs);
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
    for (iter_seek_first(input); iter_valid(input) && rc == WEIR_OK; iter_next(input)) {
        /* With one background thread the flush waits for us: do it here
         * so writers are not stalled for the whole compaction. */
        if ((++n & 1023) == 0 && db->num_threads == 1) {
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
        if (!ikey_parse(key, &user, &seq, &type)) {
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
        int drop = 0;
        if (last_seq_for_key <= cs->smallest_snapshot) {
            /* A newer entry for this key is visible to every snapshot. */
            drop = 1;
        } else if (type == TYPE_DELETION && seq <= cs->smallest_snapshot &&
                   compaction_is_base_level_for_key(c, user)) {
            /* Nothing older below to hide, and every reader sees the
             * deletion: the tombstone itself can go. */
            drop = 1;
        }
        last_seq_for_key = seq;
        if (drop) {
            stat_add(&db->stats.compaction_entries_dropped, 1);
            continue;
        }
        rc = add_entry(cs, key, iter_value(input));
    }
    if (rc == WEIR_OK) rc = iter_status(input);
    if (rc == WEIR_OK && cs->builder) rc = finish_output(cs);
    buf_free(&current_user);
    return rc;
}

int db_run_compaction(weir_db *db, compaction *c) {
    int rc;
    if (compaction_is_trivial_move(c)) {
        file_meta *f = c->inputs[0][0];
        rc = version_edit_delete_file(&c->edit, c->level, f->number);
        if (rc == WEIR_OK) rc = version_edit_add_file(&c->edit, c->level + 1, f);
        if (rc == WEIR_OK) rc = vset_log_and_apply(db->vs, &c->edit, &db->mu);
        if (rc == WEIR_OK) {
            stat_add(&db->stats.trivial_moves, 1);
            db_update_compaction_debt(db);
        }
        compaction_free(c);
        return rc;
    }

    compaction_state cs = {0};
    cs.db = db;
    cs.c = c;
    cs.smallest_snapshot = db_smallest_snapshot(db);
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
        rc = version_edit_add_file(&c->edit, c->level + 1, f);
        file_meta_unref(f);
    }
    if (rc == WEIR_OK) rc = vset_log_and_apply(db->vs, &c->edit, &db->mu);
    for (size_t i = 0; i < cs.num_outputs; i++) {
        db_remove_pending_output(db, cs.outputs[i].number);
        buf_free(&cs.outputs[i].smallest);
        buf_free(&cs.outputs[i].largest);
    }
    free(cs.outputs);
    compaction_free(c);
    if (rc == WEIR_OK) {
        stat_add(&db->stats.compactions, 1);
        db_update_compaction_debt(db);
    }
    /* On failure the outputs are not in any version and are removed here
     * too (unless a background error froze file deletion). */
    db_delete_obsolete_files(db);
    return rc == WEIR_CLOSED ? WEIR_OK : rc;
}
