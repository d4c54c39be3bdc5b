/*
 * db_write.c -- the write path: a FIFO queue of writers where the front one
 * (the leader) commits the whole group as one log record, inserts it into
 * the memtable and publishes the new sequence number; memtable switches,
 * write stalls, and the return from a full disk.
 *
 * Locking: db->mu guards the queue; it is dropped while the leader writes
 * the log and the memtable.
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

/* A group commit stops growing at this many bytes so one huge group does
 * not delay a small writer behind it for long. */
#define MAX_GROUP_BYTES (1u << 20)

/* ---- write path ----------------------------------------------------------- */

/* Switch to a fresh memtable and log (mutex held). */
static int switch_memtable(weir_db *db) {
    /* The old log's buffer goes to the OS now; its fsync is left for the
     * first fsync'd write into the new log (see prev_log in write_queued),
     * so workloads that never fsync pay nothing for it. */
    if (db->log) {
        int frc = log_writer_flush(db->log);
        if (frc != WEIR_OK) {
            db_set_bg_error(db, frc);
            return frc;
        }
    }
    uint64_t number = vset_new_file_number(db->vs);
    char path[PATH_MAX];
    log_file_path(path, sizeof path, db->path, number);
    memtable *fresh = memtable_create_with_filter(db->opts.write_buffer_size / 32);
    if (!fresh) return weir_set_error(WEIR_NO_MEMORY, "out of memory creating a memtable");
    log_writer *lw;
    int rc = log_writer_open(db->env, path, &lw);
    if (rc != WEIR_OK) {
        memtable_unref(fresh);
        return rc;
    }
    /* A write synced to the new log must not vanish with its directory
     * entry after a power cut. */
    rc = db->env->ops->sync_dir(db->env, db->path);
    if (rc != WEIR_OK) {
        log_writer_close(lw);
        db->env->ops->remove_file(db->env, path);
        memtable_unref(fresh);
        return rc;
    }
    /* The old log's records are all in imm. It stays open until imm is in
     * a table: a power cut must never keep a later fsync'd write of the new
     * log and lose an earlier write of the old one, a state that never
     * existed, so an fsync'd write syncs it first. */
    if (db->prev_log) log_writer_close(db->prev_log); /* imm was empty: none */
    db->prev_log = db->log;
    db->prev_log_synced = 0;
    db->log = lw;
    db->log_number = number;
    /* Sequences retired by a failed write before a resume end the old
     * history: the new log starts after them (recovery checks it). */
    db->log_start_seq = db->vs->last_sequence + 1;
    if (db->logged_sequence < db->log_start_seq - 1) db->logged_sequence = db->log_start_seq - 1;
    db->imm = db->mem;
    db->mem = fresh;
    db_install_superversion(db);
    pthread_cond_broadcast(&db->work_cv);
    return WEIR_OK;
}

/* After WEIR_NO_SPACE, how long writers wait between attempts to resume. */
#define RESUME_INTERVAL_MICROS 100000

/* Come back from a full disk (mutex held, by the write leader, while the
 * error keeps background work parked): abandon the log that failed (its
 * torn tail is never completed), flush everything acknowledged into new
 * tables under a fresh log and a fresh manifest, and only then clear the
 * error and let obsolete files go. A failed write's record may be in the
 * abandoned log, so its sequence numbers were already retired by
 * write_queued. Any failure leaves the error in place, with the new cause. */
static int try_resume(weir_db *db) {
    uint64_t now = db->env->ops->now_micros(db->env);
    if (now < db->resume_after_micros) return WEIR_NO_SPACE;
    db->resume_after_micros = now + RESUME_INTERVAL_MICROS;
    while ((db->flush_running || db->compaction_running) && !db->shutting_down)
        pthread_cond_wait(&db->bg_cv, &db->mu);
    if (db->shutting_down) return weir_set_error(WEIR_CLOSED, "the database is closing");
    vset_drop_manifest(db->vs);
    db->flush_running = 1;
    int rc = db->imm ? db_flush_imm(db) : WEIR_OK;
    if (rc == WEIR_OK) {
        if (db->log) {
            env_discard_buffer(db->log->file);
            log_writer_close(db->log);
            db->log = NULL;
        }
        rc = switch_memtable(db);
    }
    if (rc == WEIR_OK) rc = db_flush_imm(db);
    db->flush_running = 0;
    if (rc != WEIR_OK) {
        weir_error_save(&db->bg_error, rc);
        pthread_cond_broadcast(&db->bg_cv);
        return rc;
    }
    db->bg_error.code = WEIR_OK;
    db->bg_error.msg[0] = '\0';
    db_delete_obsolete_files(db);
    pthread_cond_broadcast(&db->work_cv);
    pthread_cond_broadcast(&db->bg_cv);
    return WEIR_OK;
}

/* A write needs a flush (is_flush) or compaction that last ran out of disk
 * space: wait for its next attempt (at most SPACE_RETRY_MICROS away, then
 * the attempt itself) rather than fail at once, so writes resume as soon as
 * space is back. WEIR_OK: it went through, make room again; else
 * WEIR_NO_SPACE saying why. Mutex held. */
static int wait_for_space_retry(weir_db *db, int is_flush) {
    uint64_t *failures = is_flush ? &db->flush_failures : &db->compaction_failures;
    uint64_t before = *failures;
    while (*failures == before && db->bg_error.code == WEIR_OK && !db->shutting_down &&
           (is_flush ? db->imm != NULL : db->compaction_no_space.code != WEIR_OK)) {
        pthread_cond_broadcast(&db->work_cv);
        pthread_cond_wait(&db->bg_cv, &db->mu);
    }
    if (*failures == before) return WEIR_OK;
    weir_error_raise(is_flush ? &db->flush_no_space : &db->compaction_no_space);
    return weir_wrap_error(WEIR_NO_SPACE,
                           "the write was not applied: the memtable is full and its flush (or a "
                           "compaction it waits for) ran out of disk space; it is retried every "
                           "%d ms and writes resume once space is freed",
                           SPACE_RETRY_MICROS / 1000);
}

/* Make sure the memtable has room, stalling writers while background work
 * catches up (mutex held; may wait on bg_cv). force: switch even if there
 * is room (weir_flush). */
static int make_room_for_write(weir_db *db, int force) {
    int allow_delay = !force;
    for (;;) {
        if (db->bg_error.code != WEIR_OK) {
            /* A full disk is the one failure writes come back from. */
            if (db->bg_error.code == WEIR_NO_SPACE && try_resume(db) == WEIR_OK) continue;
            int code = weir_error_raise(&db->bg_error);
            return weir_wrap_error(code == WEIR_NO_SPACE ? WEIR_NO_SPACE : WEIR_READ_ONLY,
                                   "writes are stopped after a background error");
        }
        if (db->shutting_down) return weir_set_error(WEIR_CLOSED, "the database is closing");
        int l0 = db->vs->current->num_files[0];
        uint64_t debt = db->pending_compaction_bytes;
        int debt_slow = db->opts.pending_compaction_soft && debt >= db->opts.pending_compaction_soft;
        int debt_stop = db->opts.pending_compaction_hard && debt >= db->opts.pending_compaction_hard;
        if (allow_delay && (l0 >= db->opts.level0_slowdown_trigger || debt_slow)) {
            /* Give compaction a little time per write rather than one long
             * stop later. */
            pthread_mutex_unlock(&db->mu);
            db->env->ops->sleep_micros(db->env, 1000);
            stat_add(&db->stats.stall_micros, 1000);
            stat_add(&db->stats.slowdowns, 1);
            pthread_mutex_lock(&db->mu);
            allow_delay = 0;
            continue;
        }
        if (debt_stop) {
            /* Compaction is far behind: hold every write until it catches
             * up, unless it cannot for want of disk space. */
            if (db->compaction_no_space.code != WEIR_OK) {
                int rc = wait_for_space_retry(db, 0);
                if (rc != WEIR_OK) return rc;
                continue;
            }
            stat_add(&db->stats.stops, 1);
            uint64_t t0 = db->env->ops->now_micros(db->env);
            pthread_cond_broadcast(&db->work_cv);
            pthread_cond_wait(&db->bg_cv, &db->mu);
            uint64_t t1 = db->env->ops->now_micros(db->env);
            stat_add(&db->stats.stall_micros, t1 > t0 ? t1 - t0 : 0);
            continue;
        }
        if (!force && memtable_memory_usage(db->mem) < db->opts.write_buffer_size) return WEIR_OK;
        if (force && memtable_count(db->mem) == 0) return WEIR_OK;
        if (db->imm || l0 >= db->opts.level0_stop_trigger) {
            /* Waiting would take a flush or compaction that keeps failing
             * for want of space: say so now instead of hanging. */
            if ((db->imm && db->flush_no_space.code != WEIR_OK) ||
                (!db->imm && db->compaction_no_space.code != WEIR_OK)) {
                int rc = wait_for_space_retry(db, db->imm != NULL);
                if (rc != WEIR_OK) return rc;
                continue;
            }
            if (!db->imm) stat_add(&db->stats.stops, 1);
            uint64_t t0 = db->env->ops->now_micros(db->env);
            pthread_cond_broadcast(&db->work_cv);
            pthread_cond_wait(&db->bg_cv, &db->mu);
            uint64_t t1 = db->env->ops->now_micros(db->env);
            stat_add(&db->stats.stall_micros, t1 > t0 ? t1 - t0 : 0);
            continue;
        }
        return switch_memtable(db);
    }
}

/* Inserting a batch, the memtable's bloom line and hash slot of each key
 * are random memory: two cache misses a key, most of a sorted batch's
 * insert time. A second cursor runs INSERT_LOOKAHEAD ops ahead of the
 * inserts and asks for that memory early, so the misses overlap. */
#define INSERT_LOOKAHEAD 8

typedef struct insert_ctx {
    memtable *mem;
    const char *ahead; /* the next op to prefetch for; NULL: none left */
    const char *limit;
} insert_ctx;

/* Prefetch for the op under the lookahead cursor and move it on. */
static void prefetch_ahead(insert_ctx *ctx) {
    slice key;
    if (ctx->ahead && batch_rep_next_key(&ctx->ahead, ctx->limit, &key)) memtable_prefetch_key(ctx->mem, key);
    else ctx->ahead = NULL;
}

static void insert_ctx_init(insert_ctx *ctx, memtable *mem, slice record) {
    ctx->mem = mem;
    ctx->limit = record.data + record.len;
    /* One op needs no lookahead. */
    ctx->ahead = batch_rep_count(record) >= 2 ? record.data + BATCH_HEADER_SIZE : NULL;
    for (int i = 0; i < INSERT_LOOKAHEAD && ctx->ahead; i++) prefetch_ahead(ctx);
}

static int insert_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    insert_ctx *ctx = arg;
    if (ctx->ahead) prefetch_ahead(ctx);
    if (type == TYPE_RANGE_DELETION) return memtable_add_range_tombstone(ctx->mem, seq, key, value);
    return memtable_add(ctx->mem, seq, type, key, value);
}

typedef struct check_ctx {
    const merge_registry *reg;
} check_ctx;

/* User merge operators must be registered before their operands are
 * logged: an unreadable operand would fail every later read of the key. */
static int check_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    (void)seq;
    (void)key;
    check_ctx *ctx = arg;
    if (type == TYPE_MERGE) return merge_check_operand(ctx->reg, value);
    return WEIR_OK;
}

static int write_queued(weir_db *db, const weir_writeopts *wo, const weir_batch *batch,
                        db_validate_fn validate, void *validate_arg);

/* Undo the append of a record that failed with WEIR_NO_SPACE (leader only,
 * no mutex). WEIR_OK: the log no longer holds any of it, and the thread's
 * message says the write was not applied. Otherwise the log must be given
 * up; the original error stays the message. */
static int take_back_record(log_writer *log, uint64_t size_before) {
    weir_error cause;
    weir_error_save(&cause, WEIR_NO_SPACE);
    int rc = log_writer_rollback(log, size_before);
    weir_error_raise(&cause);
    if (rc != WEIR_OK) return rc;
    return weir_wrap_error(WEIR_OK, "the write was not applied (nothing of it is in the log)");
}

int db_write_internal(weir_db *db, const weir_writeopts *wo, const weir_batch *batch) {
    struct timespec t0;
    int timed = batch && sample_start(&t0);
    int rc = write_queued(db, wo, batch, NULL, NULL);
    if (timed) sample_end(&db->stats.put_latency, &t0);
    return rc;
}

int db_write_validated(weir_db *db, const weir_writeopts *wo, const weir_batch *b,
                       db_validate_fn validate, void *arg) {
    return write_queued(db, wo, b, validate, arg);
}

static int write_queued(weir_db *db, const weir_writeopts *wo, const weir_batch *batch,
                        db_validate_fn validate, void *validate_arg) {
    db_writer w;
    w.batch = batch;
    w.validate = validate;
    w.validate_arg = validate_arg;
    if (db->read_only)
        return weir_set_error(WEIR_READ_ONLY, "%s was opened read-only: writes, flushes and "
                              "compactions are refused", db->path);
    if (wo) {
        int rrc = DB_CHECK_RESERVED("write", "weir_writeopts", wo);
        if (rrc != WEIR_OK) return rrc;
    }
    w.sync = (wo && wo->sync != WEIR_SYNC_DEFAULT) ? wo->sync : db->opts.sync_mode;
    if (w.sync < WEIR_SYNC_NONE || w.sync > WEIR_SYNC_FSYNC)
        return weir_set_error(WEIR_INVALID, "write options: unknown sync mode %d", (int)w.sync);
    /* User merge operands must name a registered operator. This is checked
     * here, per writer, not by the leader: a failure there would fail every
     * batch grouped with the bad one. The registry is fixed at open. */
    if (batch && batch->user_merges) {
        check_ctx cc = {&db->opts.merge_ops};
        int rc = batch_rep_iterate(buf_slice(&batch->rep), check_op, &cc);
        if (rc != WEIR_OK) return rc;
    }
    w.done = 0;
    w.status = WEIR_OK;
    w.next = NULL;
    pthread_cond_init(&w.cv, NULL);

    pthread_mutex_lock(&db->mu);
    if (db->writers_tail) db->writers_tail->next = &w;
    else db->writers_head = &w;
    db->writers_tail = &w;
    while (!w.done && db->writers_head != &w) pthread_cond_wait(&w.cv, &db->mu);
    if (w.done) {
        pthread_mutex_unlock(&db->mu);
        pthread_cond_destroy(&w.cv);
        if (w.status != WEIR_OK) weir_error_raise(&w.err);
        return w.status;
    }

    /* This thread leads: commit itself and as many followers as fit. */
    int rc = make_room_for_write(db, batch == NULL);
    if (rc == WEIR_OK && validate) {
        /* Every earlier write is applied and later ones wait behind us, so
         * the check sees exactly the state this batch will follow. */
        pthread_mutex_unlock(&db->mu);
        rc = validate(db, validate_arg);
        pthread_mutex_lock(&db->mu);
    }
    db_writer *last = &w;
    uint64_t first_seq = db->vs->last_sequence + 1;
    uint64_t count = 0;
    weir_sync_mode sync = w.sync;
    if (rc == WEIR_OK && batch) {
        slice rep = buf_slice(&batch->rep);
        /* A lone batch with nothing to rewrite is logged as it is; groups
         * and batches with TTLs are copied into group_rep. */
        const weir_batch *single = batch;
        size_t group_bytes = rep.len;
        count = batch_rep_count(rep);
        uint64_t now_ms = 0;
        int have_now = 0;
        for (db_writer *f = &w; f && rc == WEIR_OK; f = f->next) {
            if (f != &w) {
                /* Followers with no stronger sync need than ours; a
                 * validated write is always alone. */
                if (!f->batch || f->sync > w.sync || validate || f->validate) break;
                if (group_bytes + f->batch->rep.len > MAX_GROUP_BYTES) break;
                group_bytes += f->batch->rep.len;
                count += batch_rep_count(buf_slice(&f->batch->rep));
                last = f;
            }
            /* Relative TTLs become expiry times here, in the leader, so the
             * log holds absolute times and a replay never extends a TTL. */
            int resolve = f->batch->relative_ttls > 0 || db->opts.default_ttl_ms > 0;
            if (f == &w && !resolve) continue; /* maybe a lone batch */
            if (single) {
                if (batch_rep_init(&db->group_rep) != 0) {
                    rc = weir_set_error(WEIR_NO_MEMORY, "out of memory grouping writes");
                    break;
                }
                if (f != &w) rc = batch_rep_append(&db->group_rep, rep);
                single = NULL;
                if (rc != WEIR_OK) break;
            }
            if (resolve && !have_now) {
                now_ms = db_now_ms(db);
                have_now = 1;
            }
            slice frep = buf_slice(&f->batch->rep);
            rc = resolve ? batch_rep_resolve(&db->group_rep, frep, now_ms, db->opts.default_ttl_ms)
                         : batch_rep_append(&db->group_rep, frep);
        }
        if (rc == WEIR_OK && count > 0 && sync == WEIR_SYNC_FSYNC && db->prev_log &&
            !db->prev_log_synced) {
            /* Earlier writes still only in the previous log become durable
             * before this one can (see switch_memtable); once per log. */
            rc = log_writer_sync(db->prev_log);
            if (rc == WEIR_OK) db->prev_log_synced = 1;
            else db_set_bg_error(db, rc);
        }
        if (rc == WEIR_OK && count > 0) {
            char *rep_data = single ? single->rep.data : db->group_rep.data;
            size_t rep_len = single ? single->rep.len : db->group_rep.len;
            /* The header sequence is written into the caller's batch only
             * for the log record: batches are otherwise left untouched. */
            char saved_header[8];
            memcpy(saved_header, rep_data, 8);
            batch_rep_set_sequence(rep_data, first_seq | (sync == WEIR_SYNC_FSYNC ? BATCH_SEQ_SYNCED : 0));
            memtable *mem = db->mem;
            log_writer *log = db->log;
            pthread_mutex_unlock(&db->mu);

            slice record = slice_make(rep_data, rep_len);
            uint64_t log_size_before = log_writer_size(log);
            rc = log_writer_add(log, record);
            if (rc == WEIR_OK && sync == WEIR_SYNC_FLUSH) rc = log_writer_flush(log);
            if (rc == WEIR_OK && sync == WEIR_SYNC_FSYNC) {
                rc = log_writer_sync(log);
                stat_add(&db->stats.wal_syncs, 1);
            }
            int logged = rc == WEIR_OK;
            /* Out of space before the record reached the disk: cut the log
             * back to before it. The log then provably does not hold it, so
             * the write simply fails and the next one tries again. */
            int taken_back = !logged && rc == WEIR_NO_SPACE && !log->file->broken &&
                             take_back_record(log, log_size_before) == WEIR_OK;
            if (logged) {
                insert_ctx ctx;
                insert_ctx_init(&ctx, mem, record);
                rc = batch_rep_iterate(record, insert_op, &ctx);
            }
            if (single) memcpy(rep_data, saved_header, 8);
            if (!taken_back) {
                stat_add(&db->stats.wal_bytes_written, rep_len);
                stat_add(&db->stats.user_bytes_written, rep_len - BATCH_HEADER_SIZE);
                stat_add(&db->stats.write_groups, 1);
            }

            pthread_mutex_lock(&db->mu);
            if (rc == WEIR_OK) {
                db->vs->last_sequence = first_seq + count - 1;
                db->logged_sequence = db->vs->last_sequence;
                atomic_store_explicit(&db->visible_sequence, db->vs->last_sequence, memory_order_release);
            } else if (taken_back) {
                stat_add(&db->stats.writes_refused_no_space, 1);
            } else {
                /* A log write that failed (or a memtable insert after a
                 * logged record) leaves the log and memory disagreeing:
                 * stop writes rather than risk acknowledging lost data. */
                db_set_bg_error(db, rc);
                /* The record may be in the log all the same (a failed
                 * fsync, a short write completed later): its sequence
                 * numbers are used up, so a write after try_resume can
                 * never reuse them for something else. (A logged record
                 * whose memtable insert failed keeps them hidden: that
                 * error is final.) */
                if (!logged) db->vs->last_sequence = first_seq + count - 1;
                if (!logged) weir_error_raise(&db->bg_error);
            }
        }
    }

    /* Wake the group, then hand leadership on. */
    weir_error err;
    if (rc != WEIR_OK) weir_error_save(&err, rc);
    for (;;) {
        db_writer *f = db->writers_head;
        db->writers_head = f->next;
        if (!db->writers_head) db->writers_tail = NULL;
        if (f != &w) {
            f->status = rc;
            if (rc != WEIR_OK) f->err = err;
            f->done = 1;
            pthread_cond_signal(&f->cv);
        }
        if (f == last) break;
    }
    if (db->writers_head) pthread_cond_signal(&db->writers_head->cv);
    stat_add(&db->stats.writes, 1);
    pthread_mutex_unlock(&db->mu);
    pthread_cond_destroy(&w.cv);
    if (rc != WEIR_OK) weir_error_raise(&err);
    return rc;
}

int weir_write(weir_db *db, const weir_writeopts *wo, const weir_batch *b) {
    CHECK_DB(db, "weir_write");
    if (!b) return weir_set_error(WEIR_INVALID, "weir_write: batch is NULL");
    if (weir_batch_count(b) == 0) return WEIR_OK;
    return db_write_internal(db, wo, b);
}

/* A one-op batch on the stack avoids a heap allocation for small writes.
 * The value is prefix (e.g. a merge operator byte or a TTL) + val. */
static int write_single(weir_db *db, const weir_writeopts *wo, int type, const void *key,
                        size_t klen, const void *prefix, size_t plen, const void *val,
                        size_t vlen) {
    char stack[512];
    size_t need = BATCH_HEADER_SIZE + 1 + 5 + klen + 5 + plen + vlen;
    weir_batch b;
    b.rep.data = need <= sizeof stack ? stack : malloc(need);
    if (!b.rep.data) return weir_set_error(WEIR_NO_MEMORY, "out of memory for a %zu-byte write", need);
    b.rep.cap = need <= sizeof stack ? sizeof stack : need;
    b.relative_ttls = type == TYPE_VALUE_TTL;
    b.user_merges = type == TYPE_MERGE && plen && (unsigned char)((const char *)prefix)[0] >= MERGE_USER_FIRST;
    char *p = b.rep.data;
    memset(p, 0, BATCH_HEADER_SIZE);
    encode_fixed32(p + 8, 1);
    p += BATCH_HEADER_SIZE;
    *p++ = (char)type;
    p = encode_varint32(p, (uint32_t)klen);
    if (klen) memcpy(p, key, klen);
    p += klen;
    if (type != TYPE_DELETION) {
        p = encode_varint32(p, (uint32_t)(plen + vlen));
        if (plen) memcpy(p, prefix, plen);
        p += plen;
        if (vlen) memcpy(p, val, vlen);
        p += vlen;
    }
    b.rep.len = (size_t)(p - b.rep.data);
    int rc = db_write_internal(db, wo, &b);
    if (b.rep.data != stack) free(b.rep.data);
    return rc;
}

static int check_value_arg(const char *fn, const void *val, size_t vlen) {
    if (!val && vlen) return weir_set_error(WEIR_INVALID, "%s: value is NULL but its length is %zu", fn, vlen);
    if (vlen > WEIR_MAX_VALUE_SIZE)
        return weir_set_error(WEIR_INVALID, "%s: value of %zu bytes exceeds the limit of %u bytes", fn,
                              vlen, WEIR_MAX_VALUE_SIZE);
    return WEIR_OK;
}

int weir_put(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen,
             const void *val, size_t vlen) {
    CHECK_DB(db, "weir_put");
    int rc = db_check_key_arg("weir_put", key, klen);
    if (rc == WEIR_OK) rc = check_value_arg("weir_put", val, vlen);
    if (rc != WEIR_OK) return rc;
    return write_single(db, wo, TYPE_VALUE, key, klen, NULL, 0, val, vlen);
}

int weir_put_ttl(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen,
                 const void *val, size_t vlen, uint64_t ttl_ms) {
    CHECK_DB(db, "weir_put_ttl");
    int rc = db_check_key_arg("weir_put_ttl", key, klen);
    if (rc == WEIR_OK) rc = check_value_arg("weir_put_ttl", val, vlen);
    if (rc != WEIR_OK) return rc;
    if (ttl_ms == 0) return weir_set_error(WEIR_INVALID, "weir_put_ttl: ttl_ms must be > 0");
    char ttl[8];
    encode_fixed64(ttl, ttl_ms);
    return write_single(db, wo, TYPE_VALUE_TTL, key, klen, ttl, 8, val, vlen);
}

int weir_delete(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen) {
    CHECK_DB(db, "weir_delete");
    int rc = db_check_key_arg("weir_delete", key, klen);
    if (rc != WEIR_OK) return rc;
    return write_single(db, wo, TYPE_DELETION, key, klen, NULL, 0, NULL, 0);
}

int weir_merge(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen, int op,
               const void *operand, size_t olen) {
    CHECK_DB(db, "weir_merge");
    int rc = db_check_key_arg("weir_merge", key, klen);
    if (rc == WEIR_OK) rc = check_value_arg("weir_merge", operand, olen);
    if (rc != WEIR_OK) return rc;
    if (op < 1 || op > 255) return weir_set_error(WEIR_INVALID, "weir_merge: operator %d is out of range [1, 255]", op);
    char opbyte = (char)op;
    /* Check the shape before logging: a bad operand would poison the key. */
    char small[16];
    if (olen <= sizeof small - 1) {
        small[0] = opbyte;
        if (olen) memcpy(small + 1, operand, olen);
        rc = merge_check_operand(&db->opts.merge_ops, slice_make(small, olen + 1));
    } else {
        buf whole = BUF_INIT;
        if (buf_append(&whole, &opbyte, 1) != 0 || buf_append(&whole, operand, olen) != 0) {
            buf_free(&whole);
            return weir_set_error(WEIR_NO_MEMORY, "out of memory checking a merge operand");
        }
        rc = merge_check_operand(&db->opts.merge_ops, buf_slice(&whole));
        buf_free(&whole);
    }
    if (rc != WEIR_OK) return rc;
    return write_single(db, wo, TYPE_MERGE, key, klen, &opbyte, 1, operand, olen);
}

int weir_add_int64(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen, int64_t delta) {
    char operand[8];
    encode_fixed64(operand, (uint64_t)delta);
    return weir_merge(db, wo, key, klen, WEIR_MERGE_INT64_ADD, operand, 8);
}

int weir_list_append(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen,
                     const void *item, size_t ilen, uint32_t max_items) {
    if (!item && ilen) return weir_set_error(WEIR_INVALID, "weir_list_append: item is NULL but its length is %zu", ilen);
    if (ilen > WEIR_MAX_VALUE_SIZE - 16)
        return weir_set_error(WEIR_INVALID, "weir_list_append: item of %zu bytes is too large", ilen);
    buf operand = BUF_INIT;
    int failed = buf_put_fixed32(&operand, max_items) || buf_put_length_prefixed(&operand, slice_make(item ? item : "", ilen));
    int rc = failed ? weir_set_error(WEIR_NO_MEMORY, "out of memory building a list operand")
                    : weir_merge(db, wo, key, klen, WEIR_MERGE_LIST_APPEND, operand.data, operand.len);
    buf_free(&operand);
    return rc;
}

int weir_delete_range(weir_db *db, const weir_writeopts *wo, const void *start, size_t slen,
                      const void *end, size_t elen) {
    CHECK_DB(db, "weir_delete_range");
    int rc = db_check_key_arg("weir_delete_range", start, slen);
    if (rc == WEIR_OK) rc = db_check_key_arg("weir_delete_range", end, elen);
    if (rc != WEIR_OK) return rc;
    int cmp = slice_compare(slice_make(start, slen), slice_make(end, elen));
    if (cmp > 0) return weir_set_error(WEIR_INVALID, "weir_delete_range: start is after end");
    if (cmp == 0) return WEIR_OK;
    return write_single(db, wo, TYPE_RANGE_DELETION, start, slen, NULL, 0, end, elen);
}


