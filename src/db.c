/*
 * db.c -- the DB handle: options, open and recovery, the write path (a
 * queue of writers where the front one commits the whole group to the log
 * and memtable), point reads, snapshots, memtable switches and flushes,
 * background threads, write stalls, properties and close.
 *
 * Locking: db->mu guards every field of weir_db that is not an atomic, the
 * version set, and version/file reference counts. It is never held during
 * log writes, table builds or compaction I/O. Memtable readers take no
 * lock: a reference is enough (see memtable.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
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

#ifndef WEIR_VERSION_STRING
#define WEIR_VERSION_STRING "0.1.0"
#endif

/* A group commit stops growing at this many bytes so one huge group does
 * not delay a small writer behind it for long. */
#define MAX_GROUP_BYTES (1u << 20)

const char *weir_version(void) { return WEIR_VERSION_STRING; }

static char build_info[160];
static pthread_once_t build_info_once = PTHREAD_ONCE_INIT;

static void fill_build_info(void) {
    snprintf(build_info, sizeof build_info, "weir %s (crc32c: %s; compression: %s)",
             WEIR_VERSION_STRING, crc32c_hardware() ? "sse4.2" : "software", codec_list());
}

const char *weir_build_info(void) {
    pthread_once(&build_info_once, fill_build_info);
    return build_info;
}

int weir_compression_supported(int codec) {
    return codec >= 0 && codec <= CODEC_MAX && codec_supported(codec);
}

/* ---- latency histograms --------------------------------------------------- */

static int hist_bucket(uint64_t nanos) {
    if (nanos < 2) return 0;
    int log = 63 - __builtin_clzll(nanos);
    /* Two bits below the leading one pick a quarter of the octave. */
    int frac = log >= 2 ? (int)((nanos >> (log - 2)) & 3) : (int)((nanos << (2 - log)) & 3);
    int b = log * 4 + frac;
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

static uint64_t hist_bucket_value(int b) {
    int log = b / 4, frac = b % 4;
    return ((UINT64_C(4) + (uint64_t)frac) << log) >> 2;
}

void hist_add(latency_hist *h, uint64_t nanos) {
    atomic_fetch_add_explicit(&h->buckets[hist_bucket(nanos)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_nanos, nanos, memory_order_relaxed);
}

uint64_t hist_percentile(latency_hist *h, double p) {
    uint64_t total = 0, counts[HIST_BUCKETS];
    for (int i = 0; i < HIST_BUCKETS; i++) {
        counts[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        total += counts[i];
    }
    if (total == 0) return 0;
    uint64_t want = (uint64_t)((double)total * p / 100.0);
    if (want >= total) want = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += counts[i];
        if (seen > want) return hist_bucket_value(i);
    }
    return hist_bucket_value(HIST_BUCKETS - 1);
}

/* Timing every call would cost two clock reads per microsecond-scale op;
 * one in 16 per thread gives the same percentiles at a sixteenth of it. */
static _Thread_local unsigned sample_tick;

static int sample_start(struct timespec *t) {
    if ((++sample_tick & 15) != 0) return 0;
    clock_gettime(CLOCK_MONOTONIC, t);
    return 1;
}

static void sample_end(latency_hist *h, const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t ns = (int64_t)(t1.tv_sec - t0->tv_sec) * 1000000000 + (t1.tv_nsec - t0->tv_nsec);
    hist_add(h, ns > 0 ? (uint64_t)ns : 0);
}


static uint64_t stat_add(_Atomic uint64_t *c, uint64_t n) {
    return atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t stat_get(_Atomic uint64_t *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- options ------------------------------------------------------------ */

weir_options *weir_options_create(void) {
    weir_options *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->create_if_missing = 1;
    o->error_if_exists = 0;
    o->write_buffer_size = 64u << 20;
    o->block_size = 4096;
    o->bloom_bits_per_key = 10;
    o->max_open_files = 1000;
    o->background_threads = 2;
    o->sync_mode = WEIR_SYNC_FLUSH;
    o->target_file_size = 64u << 20;
    o->max_bytes_for_level_base = 256u << 20;
    o->level0_compaction_trigger = 4;
    o->level0_slowdown_trigger = 20;
    o->level0_stop_trigger = 36;
    o->compression = WEIR_COMPRESSION_NONE;
    o->block_cache_size = 64u << 20;
    o->pending_compaction_soft = UINT64_C(64) << 30;
    o->pending_compaction_hard = UINT64_C(256) << 30;
    o->env = NULL;
    return o;
}

void weir_options_destroy(weir_options *o) { free(o); }

#define OPTS_CHECK(o, name)                                                   \
    do {                                                                      \
        if (!(o)) return weir_set_error(WEIR_INVALID, "%s: options is NULL", name); \
    } while (0)

static int range_error(const char *name, unsigned long long v, unsigned long long lo,
                       unsigned long long hi) {
    return weir_set_error(WEIR_INVALID, "%s: %llu is out of range [%llu, %llu]", name, v, lo, hi);
}

int weir_options_set_create_if_missing(weir_options *o, int yes) {
    OPTS_CHECK(o, "weir_options_set_create_if_missing");
    o->create_if_missing = yes != 0;
    return WEIR_OK;
}

int weir_options_set_error_if_exists(weir_options *o, int yes) {
    OPTS_CHECK(o, "weir_options_set_error_if_exists");
    o->error_if_exists = yes != 0;
    return WEIR_OK;
}

int weir_options_set_write_buffer_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_write_buffer_size");
    if (bytes < (64u << 10) || bytes > (UINT64_C(4) << 30))
        return range_error("write_buffer_size", bytes, 64u << 10, UINT64_C(4) << 30);
    o->write_buffer_size = bytes;
    return WEIR_OK;
}

int weir_options_set_block_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_block_size");
    if (bytes < 256 || bytes > (64u << 20)) return range_error("block_size", bytes, 256, 64u << 20);
    o->block_size = bytes;
    return WEIR_OK;
}

int weir_options_set_bloom_bits_per_key(weir_options *o, int bits) {
    OPTS_CHECK(o, "weir_options_set_bloom_bits_per_key");
    if (bits < 0 || bits > 64)
        return weir_set_error(WEIR_INVALID, "bloom_bits_per_key: %d is out of range [0, 64]", bits);
    o->bloom_bits_per_key = bits;
    return WEIR_OK;
}

int weir_options_set_max_open_files(weir_options *o, int n) {
    OPTS_CHECK(o, "weir_options_set_max_open_files");
    if (n < 16 || n > 1000000)
        return weir_set_error(WEIR_INVALID, "max_open_files: %d is out of range [16, 1000000]", n);
    o->max_open_files = n;
    return WEIR_OK;
}

int weir_options_set_background_threads(weir_options *o, int n) {
    OPTS_CHECK(o, "weir_options_set_background_threads");
    if (n < 1 || n > 32)
        return weir_set_error(WEIR_INVALID, "background_threads: %d is out of range [1, 32]", n);
    o->background_threads = n;
    return WEIR_OK;
}

int weir_options_set_sync_mode(weir_options *o, weir_sync_mode mode) {
    OPTS_CHECK(o, "weir_options_set_sync_mode");
    if (mode < WEIR_SYNC_NONE || mode > WEIR_SYNC_FSYNC)
        return weir_set_error(WEIR_INVALID,
                              "sync_mode: %d is not WEIR_SYNC_NONE, WEIR_SYNC_FLUSH or WEIR_SYNC_FSYNC",
                              (int)mode);
    o->sync_mode = mode;
    return WEIR_OK;
}

int weir_options_set_target_file_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_target_file_size");
    if (bytes < (64u << 10) || bytes > (UINT64_C(4) << 30))
        return range_error("target_file_size", bytes, 64u << 10, UINT64_C(4) << 30);
    o->target_file_size = bytes;
    return WEIR_OK;
}

int weir_options_set_max_bytes_for_level_base(weir_options *o, uint64_t bytes) {
    OPTS_CHECK(o, "weir_options_set_max_bytes_for_level_base");
    if (bytes < (256u << 10))
        return range_error("max_bytes_for_level_base", bytes, 256u << 10, UINT64_MAX);
    o->max_bytes_for_level_base = bytes;
    return WEIR_OK;
}

int weir_options_set_level0_triggers(weir_options *o, int compaction, int slowdown, int stop) {
    OPTS_CHECK(o, "weir_options_set_level0_triggers");
    if (compaction < 1 || slowdown < compaction || stop < slowdown || stop > 1000)
        return weir_set_error(WEIR_INVALID,
                              "level0 triggers %d/%d/%d must satisfy 1 <= compaction <= slowdown "
                              "<= stop <= 1000",
                              compaction, slowdown, stop);
    o->level0_compaction_trigger = compaction;
    o->level0_slowdown_trigger = slowdown;
    o->level0_stop_trigger = stop;
    return WEIR_OK;
}

int weir_options_set_compression(weir_options *o, int codec) {
    OPTS_CHECK(o, "weir_options_set_compression");
    if (codec < 0 || codec > CODEC_MAX)
        return weir_set_error(WEIR_INVALID, "compression: %d is not WEIR_COMPRESSION_NONE, _LZ4 or _ZSTD",
                              codec);
    if (!codec_supported(codec))
        return weir_set_error(WEIR_NOT_SUPPORTED,
                              "compression %s is not compiled into this build (compiled in: %s)",
                              codec_name(codec), codec_list());
    o->compression = codec;
    return WEIR_OK;
}

int weir_options_set_default_ttl(weir_options *o, uint64_t ttl_ms) {
    OPTS_CHECK(o, "weir_options_set_default_ttl");
    o->default_ttl_ms = ttl_ms;
    return WEIR_OK;
}

int weir_options_set_clock(weir_options *o, weir_clock_fn fn, void *arg) {
    OPTS_CHECK(o, "weir_options_set_clock");
    o->clock = fn;
    o->clock_arg = arg;
    return WEIR_OK;
}

int weir_options_set_merge_operator(weir_options *o, int id, weir_merge_fn fn, void *arg) {
    OPTS_CHECK(o, "weir_options_set_merge_operator");
    if (id < MERGE_USER_FIRST || id > 255)
        return weir_set_error(WEIR_INVALID, "user merge operator ids are %d..255, not %d",
                              MERGE_USER_FIRST, id);
    merge_user_op *u = &o->merge_ops.user[id - MERGE_USER_FIRST];
    u->fn = fn;
    u->arg = arg;
    u->registered = fn != NULL;
    return WEIR_OK;
}

uint64_t db_now_ms(const weir_db *db) {
    if (db->opts.clock) return db->opts.clock(db->opts.clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

int weir_options_set_block_cache_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_block_cache_size");
    o->block_cache_size = bytes;
    return WEIR_OK;
}

int weir_options_set_pending_compaction_limits(weir_options *o, uint64_t soft, uint64_t hard) {
    OPTS_CHECK(o, "weir_options_set_pending_compaction_limits");
    if (soft && hard && soft > hard)
        return weir_set_error(WEIR_INVALID,
                              "pending compaction limits: soft %" PRIu64 " is above hard %" PRIu64,
                              soft, hard);
    o->pending_compaction_soft = soft;
    o->pending_compaction_hard = hard;
    return WEIR_OK;
}

void weir_options_set_env(weir_options *o, weir_env *env) {
    if (o) o->env = env;
}

/* ---- small helpers ------------------------------------------------------ */

#define CHECK_DB(db, fn)                                                      \
    do {                                                                      \
        if (!(db)) return weir_set_error(WEIR_INVALID, "%s: db is NULL", fn); \
    } while (0)

static int check_key_arg(const char *fn, const void *key, size_t klen) {
    if (!key && klen) return weir_set_error(WEIR_INVALID, "%s: key is NULL but its length is %zu", fn, klen);
    if (klen > WEIR_MAX_KEY_SIZE)
        return weir_set_error(WEIR_INVALID, "%s: key of %zu bytes exceeds the limit of %u bytes", fn,
                              klen, WEIR_MAX_KEY_SIZE);
    return WEIR_OK;
}

void db_update_compaction_debt(weir_db *db) {
    version *v = db->vs->current;
    uint64_t debt = 0;
    if (v->num_files[0] >= db->opts.level0_compaction_trigger) debt += version_level_bytes(v, 0);
    uint64_t limit = db->opts.max_bytes_for_level_base;
    for (int level = 1; level < NUM_LEVELS - 1; level++, limit *= 10) {
        uint64_t bytes = version_level_bytes(v, level);
        /* Bytes over a level's limit must be rewritten into the next one. */
        if (bytes > limit) debt += bytes - limit;
    }
    db->pending_compaction_bytes = debt;
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
            rc = version_get_entry(rs.v, buf_slice(&ik), bloom_hash(key.data, key.len), latest_entry, &p);
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

void db_set_bg_error(weir_db *db, int code) {
    if (db->bg_error.code == WEIR_OK) {
        weir_error_save(&db->bg_error, code);
        pthread_cond_broadcast(&db->bg_cv);
    }
}

int db_add_pending_output(weir_db *db, uint64_t number) {
    if (db->num_pending == db->cap_pending) {
        size_t cap = db->cap_pending ? db->cap_pending * 2 : 8;
        uint64_t *p = realloc(db->pending_outputs, cap * sizeof *p);
        if (!p) return weir_set_error(WEIR_NO_MEMORY, "out of memory tracking new table files");
        db->pending_outputs = p;
        db->cap_pending = cap;
    }
    db->pending_outputs[db->num_pending++] = number;
    return WEIR_OK;
}

void db_remove_pending_output(weir_db *db, uint64_t number) {
    for (size_t i = 0; i < db->num_pending; i++) {
        if (db->pending_outputs[i] == number) {
            db->pending_outputs[i] = db->pending_outputs[--db->num_pending];
            return;
        }
    }
}

/* ---- obsolete files ------------------------------------------------------- */

typedef struct number_set {
    uint64_t *v;
    size_t n, cap;
    int oom;
} number_set;

static void number_set_add(void *arg, uint64_t number) {
    number_set *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *p = realloc(s->v, cap * sizeof *p);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = number;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int number_set_has(const number_set *s, uint64_t number) {
    return s->n && bsearch(&number, s->v, s->n, sizeof *s->v, cmp_u64) != NULL;
}

void db_delete_obsolete_files(weir_db *db) {
    /* After a background error the on-disk state may be ahead of what we
     * know; keep everything so nothing needed is lost. */
    if (db->bg_error.code != WEIR_OK) return;
    number_set live = {0};
    for (size_t i = 0; i < db->num_pending; i++) number_set_add(&live, db->pending_outputs[i]);
    vset_for_each_live_file(db->vs, number_set_add, &live);
    if (live.oom) {
        free(live.v);
        return;
    }
    if (live.n) qsort(live.v, live.n, sizeof *live.v, cmp_u64);

    env_dirent_list names = {0};
    if (db->env->ops->list_dir(db->env, db->path, &names) != WEIR_OK) {
        free(live.v);
        return;
    }
    char path[PATH_MAX];
    for (size_t i = 0; i < names.count; i++) {
        uint64_t number;
        enum file_kind kind = parse_file_name(names.names[i], &number);
        int keep = 1;
        switch (kind) {
        case FILE_LOG:
            keep = number >= db->vs->log_number || number == db->log_number;
            break;
        case FILE_MANIFEST:
            keep = number >= db->vs->manifest_file_number;
            break;
        case FILE_TABLE:
            keep = number_set_has(&live, number);
            break;
        case FILE_TEMP:
            keep = number_set_has(&live, number);
            break;
        default:
            keep = 1;
            break;
        }
        if (keep) continue;
        if (kind == FILE_TABLE) table_cache_evict(db->tc, number);
        snprintf(path, sizeof path, "%s/%s", db->path, names.names[i]);
        if (db->env->ops->remove_file(db->env, path) == WEIR_OK) stat_add(&db->stats.files_deleted, 1);
    }
    env_dirent_list_free(&names);
    free(live.v);
}

/* ---- building tables -------------------------------------------------------- */

int db_build_table(weir_db *db, iter *it, uint64_t number, file_meta **out) {
    char path[PATH_MAX];
    table_file_path(path, sizeof path, db->path, number);
    *out = NULL;
    sst_build_options so = {db->opts.block_size, 16, db->opts.bloom_bits_per_key, db->opts.compression};
    sst_builder *b;
    int rc = sst_builder_open(db->env, path, &so, &b);
    if (rc != WEIR_OK) return rc;
    buf smallest = BUF_INIT, largest = BUF_INIT;
    uint64_t min_seq = MAX_SEQUENCE;
    iter_seek_first(it);
    for (; iter_valid(it); iter_next(it)) {
        slice k = iter_key(it);
        if (k.len >= IKEY_TAG_SIZE && ikey_seq(k) < min_seq) min_seq = ikey_seq(k);
        if (smallest.len == 0 && buf_set(&smallest, k.data, k.len) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory building table %s", path);
            break;
        }
        rc = sst_builder_add(b, k, iter_value(it));
        if (rc != WEIR_OK) break;
        if (buf_set(&largest, k.data, k.len) != 0) {
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory building table %s", path);
            break;
        }
    }
    if (rc == WEIR_OK) rc = iter_status(it);
    uint64_t entries = sst_builder_num_entries(b);
    uint64_t size = 0;
    if (rc == WEIR_OK && entries > 0) {
        rc = sst_builder_finish(b, &size);
    } else {
        sst_builder_abandon(b);
    }
    if (rc == WEIR_OK && entries > 0) {
        /* The manifest will name this file: its directory entry must be
         * durable before that. */
        rc = db->env->ops->sync_dir(db->env, db->path);
    }
    if (rc == WEIR_OK && entries > 0) {
        /* Open it once: proves the file reads back and warms the cache. */
        table_handle *h;
        rc = table_cache_get(db->tc, number, size, &h);
        if (rc == WEIR_OK) table_cache_release(db->tc, h);
    }
    if (rc == WEIR_OK && entries > 0) {
        *out = file_meta_create(number, size, entries, buf_slice(&smallest), buf_slice(&largest));
        if (!*out) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory recording table %s", path);
        /* A tombstone no newer than every entry deletes none of them. */
        else (*out)->tombs_clean_seq = min_seq;
    }
    if (rc != WEIR_OK || entries == 0) db->env->ops->remove_file(db->env, path);
    buf_free(&smallest);
    buf_free(&largest);
    return rc;
}

/* Write memtable m to a new level-0 table and add it to edit (mutex held;
 * dropped during the build). The table stays a pending output, safe from
 * deletion, until the caller has installed the edit and calls
 * db_remove_pending_output(*number). */
static int write_level0_table(weir_db *db, memtable *m, version_edit *edit, uint64_t *number_out) {
    uint64_t number = vset_new_file_number(db->vs);
    *number_out = number;
    int rc = db_add_pending_output(db, number);
    if (rc != WEIR_OK) return rc;
    iter *it = memtable_iter_create(m);
    if (!it) {
        db_remove_pending_output(db, number);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory flushing the memtable");
    }
    file_meta *f = NULL;
    pthread_mutex_unlock(&db->mu);
    rc = db_build_table(db, it, number, &f);
    iter_destroy(it);
    pthread_mutex_lock(&db->mu);
    if (rc == WEIR_OK && f) {
        stat_add(&db->stats.flush_bytes_written, f->size);
        rc = version_edit_add_file(edit, 0, f);
        file_meta_unref(f);
    }
    /* The memtable's range tombstones move into the version with it. */
    for (const range_tomb *t = memtable_range_tombstones(m); t && rc == WEIR_OK; t = t->next)
        rc = version_edit_add_range_tombstone(edit, t->seq, t->start, t->end);
    return rc;
}

int db_flush_imm(weir_db *db) {
    if (!db->imm) return WEIR_OK;
    version_edit edit;
    version_edit_init(&edit);
    memtable *imm = db->imm;
    uint64_t number;
    int rc = write_level0_table(db, imm, &edit, &number);
    if (rc == WEIR_OK) {
        /* Logs before the active one hold nothing the tables lack now. */
        version_edit_set_log_number(&edit, db->log_number);
        rc = vset_log_and_apply(db->vs, &edit, &db->mu);
    }
    db_remove_pending_output(db, number);
    version_edit_free(&edit);
    if (rc == WEIR_OK) {
        db->imm = NULL;
        memtable_unref(imm);
        if (db->prev_log) { /* its records are in a table now */
            log_writer_close(db->prev_log);
            db->prev_log = NULL;
        }
        db_install_superversion(db);
        stat_add(&db->stats.flushes, 1);
        db_update_compaction_debt(db);
        db_delete_obsolete_files(db);
    } else {
        db_set_bg_error(db, rc);
    }
    pthread_cond_broadcast(&db->bg_cv);
    return rc;
}

/* ---- background threads --------------------------------------------------- */

static int manual_pending(weir_db *db) { return db->manual && !db->manual->done; }

static void run_manual_compaction(weir_db *db) {
    manual_compaction *m = db->manual;
    compaction *c = m->bottom ? vset_compact_range_bottom(db->vs, m->level, m->begin, m->end)
                              : vset_compact_range(db->vs, m->level, m->begin, m->end);
    int rc = WEIR_OK;
    if (c) rc = db_run_compaction(db, c);
    if (rc != WEIR_OK) weir_error_save(&m->err, rc);
    m->status = rc;
    m->done = 1;
}

static void *background_main(void *arg) {
    weir_db *db = arg;
    pthread_mutex_lock(&db->mu);
    while (!db->shutting_down) {
        if (db->bg_error.code != WEIR_OK) {
            /* Nothing more is written after a failure; finish manual
             * requests so their callers are not left waiting. */
            if (manual_pending(db)) {
                db->manual->status = weir_error_raise(&db->bg_error);
                weir_error_save(&db->manual->err, db->manual->status);
                db->manual->done = 1;
                pthread_cond_broadcast(&db->bg_cv);
                continue;
            }
            pthread_cond_wait(&db->work_cv, &db->mu);
            continue;
        }
        if (db->imm && !db->flush_running) {
            db->flush_running = 1;
            db_flush_imm(db);
            db->flush_running = 0;
            pthread_cond_broadcast(&db->bg_cv);
            pthread_cond_broadcast(&db->work_cv);
            continue;
        }
        if (!db->compaction_running && (manual_pending(db) || vset_needs_compaction(db->vs))) {
            db->compaction_running = 1;
            if (manual_pending(db)) {
                run_manual_compaction(db);
            } else {
                compaction *c = vset_pick_compaction(db->vs);
                if (c) {
                    int rc = db_run_compaction(db, c);
                    if (rc != WEIR_OK) db_set_bg_error(db, rc);
                } else {
                    /* Needed but nothing pickable (inputs busy): wait. */
                    db->compaction_running = 0;
                    pthread_cond_wait(&db->work_cv, &db->mu);
                    continue;
                }
            }
            db->compaction_running = 0;
            pthread_cond_broadcast(&db->bg_cv);
            pthread_cond_broadcast(&db->work_cv);
            continue;
        }
        pthread_cond_wait(&db->work_cv, &db->mu);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

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
            /* Compaction is far behind: hold every write until it catches up. */
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

typedef struct insert_ctx {
    memtable *mem;
} insert_ctx;

static int insert_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    insert_ctx *ctx = arg;
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

static int write_internal(weir_db *db, const weir_writeopts *wo, const weir_batch *batch) {
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
            batch_rep_set_sequence(rep_data, first_seq);
            memtable *mem = db->mem;
            log_writer *log = db->log;
            pthread_mutex_unlock(&db->mu);

            slice record = slice_make(rep_data, rep_len);
            rc = log_writer_add(log, record);
            if (rc == WEIR_OK && sync == WEIR_SYNC_FLUSH) rc = log_writer_flush(log);
            if (rc == WEIR_OK && sync == WEIR_SYNC_FSYNC) {
                rc = log_writer_sync(log);
                stat_add(&db->stats.wal_syncs, 1);
            }
            int logged = rc == WEIR_OK;
            if (logged) {
                insert_ctx ctx = {mem};
                rc = batch_rep_iterate(record, insert_op, &ctx);
            }
            if (single) memcpy(rep_data, saved_header, 8);
            stat_add(&db->stats.wal_bytes_written, rep_len);
            stat_add(&db->stats.user_bytes_written, rep_len - BATCH_HEADER_SIZE);
            stat_add(&db->stats.write_groups, 1);

            pthread_mutex_lock(&db->mu);
            if (rc == WEIR_OK) {
                db->vs->last_sequence = first_seq + count - 1;
                atomic_store_explicit(&db->visible_sequence, db->vs->last_sequence, memory_order_release);
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
    return write_internal(db, wo, b);
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
    int rc = write_internal(db, wo, &b);
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
    int rc = check_key_arg("weir_put", key, klen);
    if (rc == WEIR_OK) rc = check_value_arg("weir_put", val, vlen);
    if (rc != WEIR_OK) return rc;
    return write_single(db, wo, TYPE_VALUE, key, klen, NULL, 0, val, vlen);
}

int weir_put_ttl(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen,
                 const void *val, size_t vlen, uint64_t ttl_ms) {
    CHECK_DB(db, "weir_put_ttl");
    int rc = check_key_arg("weir_put_ttl", key, klen);
    if (rc == WEIR_OK) rc = check_value_arg("weir_put_ttl", val, vlen);
    if (rc != WEIR_OK) return rc;
    if (ttl_ms == 0) return weir_set_error(WEIR_INVALID, "weir_put_ttl: ttl_ms must be > 0");
    char ttl[8];
    encode_fixed64(ttl, ttl_ms);
    return write_single(db, wo, TYPE_VALUE_TTL, key, klen, ttl, 8, val, vlen);
}

int weir_delete(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen) {
    CHECK_DB(db, "weir_delete");
    int rc = check_key_arg("weir_delete", key, klen);
    if (rc != WEIR_OK) return rc;
    return write_single(db, wo, TYPE_DELETION, key, klen, NULL, 0, NULL, 0);
}

int weir_merge(weir_db *db, const weir_writeopts *wo, const void *key, size_t klen, int op,
               const void *operand, size_t olen) {
    CHECK_DB(db, "weir_merge");
    int rc = check_key_arg("weir_merge", key, klen);
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
    int rc = check_key_arg("weir_delete_range", start, slen);
    if (rc == WEIR_OK) rc = check_key_arg("weir_delete_range", end, elen);
    if (rc != WEIR_OK) return rc;
    int cmp = slice_compare(slice_make(start, slen), slice_make(end, elen));
    if (cmp > 0) return weir_set_error(WEIR_INVALID, "weir_delete_range: start is after end");
    if (cmp == 0) return WEIR_OK;
    return write_single(db, wo, TYPE_RANGE_DELETION, start, slen, NULL, 0, end, elen);
}

/* ---- reads ------------------------------------------------------------------ */

/* Drop a superversion whose count reached zero (mutex held). */
static void superversion_free(superversion *sv) {
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
    if (old && atomic_fetch_sub_explicit(&old->refs, 1, memory_order_acq_rel) == 1) superversion_free(old);
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
        superversion_free(sv);
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
static int get_from_state(weir_db *db, read_state *rs, slice key, value_sink *sink) {
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
            rc = version_get_entry(rs->v, lookup, hash, probe_entry, &p);
            if (rc == WEIR_NOT_FOUND) {
                /* No older entry: fold what was collected onto nothing. */
                rc = WEIR_OK;
                if (p.n) probe_finish(&p, 0, slice_make(NULL, 0));
                p.done = 1;
            }
        }
        if (!p.done) {
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

static int get_common(weir_db *db, const weir_readopts *ro, const void *key, size_t klen,
                      value_sink *sink, const char *fn) {
    CHECK_DB(db, fn);
    int rc = check_key_arg(fn, key, klen);
    if (rc != WEIR_OK) return rc;
    struct timespec t0;
    int timed = sample_start(&t0);
    read_state rs;
    db_acquire_read_state(db, ro ? ro->snapshot : NULL, &rs);
    rc = get_from_state(db, &rs, slice_make(key, klen), sink);
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
    for (size_t i = 0; i < n; i++) {
        vals[i] = NULL;
        vlens[i] = 0;
        statuses[i] = WEIR_NOT_FOUND;
        int rc = check_key_arg("weir_multi_get", keys[i], klens[i]);
        if (rc != WEIR_OK) return rc;
    }
    read_state rs;
    db_acquire_read_state(db, ro ? ro->snapshot : NULL, &rs);
    int first_error = WEIR_OK;
    weir_error err = {0, {0}};
    for (size_t i = 0; i < n; i++) {
        value_sink sink = {NULL, 0, 0, 1, NULL, 0, NULL, NULL};
        int rc = get_from_state(db, &rs, slice_make(keys[i], klens[i]), &sink);
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
    pthread_mutex_lock(&db->mu);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    db->num_snapshots--;
    pthread_mutex_unlock(&db->mu);
    free(s);
}

uint64_t weir_snapshot_sequence(const weir_snapshot *s) { return s ? s->sequence : 0; }

/* ---- flush and compaction requests ------------------------------------------- */

int weir_flush(weir_db *db) {
    CHECK_DB(db, "weir_flush");
    int rc = write_internal(db, NULL, NULL); /* switches the memtable */
    if (rc != WEIR_OK) return rc;
    pthread_mutex_lock(&db->mu);
    while (db->imm && db->bg_error.code == WEIR_OK) {
        pthread_cond_broadcast(&db->work_cv);
        pthread_cond_wait(&db->bg_cv, &db->mu);
    }
    if (rc == WEIR_OK && db->bg_error.code != WEIR_OK) rc = weir_error_raise(&db->bg_error);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* Run a manual compaction of one level through the background threads. */
static int compact_level(weir_db *db, int level, int bottom, const slice *begin, const slice *end) {
    manual_compaction m;
    memset(&m, 0, sizeof m);
    m.level = level;
    m.bottom = bottom;
    m.begin = begin;
    m.end = end;
    pthread_mutex_lock(&db->mu);
    while (db->manual && db->bg_error.code == WEIR_OK) pthread_cond_wait(&db->bg_cv, &db->mu);
    if (db->bg_error.code != WEIR_OK) {
        int rc = weir_error_raise(&db->bg_error);
        pthread_mutex_unlock(&db->mu);
        return rc;
    }
    db->manual = &m;
    pthread_cond_broadcast(&db->work_cv);
    while (!m.done) pthread_cond_wait(&db->bg_cv, &db->mu);
    db->manual = NULL;
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    if (m.status != WEIR_OK) weir_error_raise(&m.err);
    return m.status;
}

int weir_compact_range(weir_db *db, const void *start, size_t slen, const void *end, size_t elen) {
    CHECK_DB(db, "weir_compact_range");
    int rc = check_key_arg("weir_compact_range", start, slen);
    if (rc == WEIR_OK) rc = check_key_arg("weir_compact_range", end, elen);
    if (rc != WEIR_OK) return rc;
    rc = weir_flush(db);
    if (rc != WEIR_OK) return rc;

    buf bk = BUF_INIT, ek = BUF_INIT;
    slice bs, es;
    const slice *bp = NULL, *ep = NULL;
    if (start) {
        if (ikey_append(&bk, slice_make(start, slen), MAX_SEQUENCE, TYPE_FOR_SEEK) != 0) rc = WEIR_NO_MEMORY;
        bs = buf_slice(&bk);
        bp = &bs;
    }
    if (end) {
        if (ikey_append(&ek, slice_make(end, elen), 0, TYPE_DELETION) != 0) rc = WEIR_NO_MEMORY;
        es = buf_slice(&ek);
        ep = &es;
    }
    if (rc != WEIR_OK) {
        buf_free(&bk);
        buf_free(&ek);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory in weir_compact_range");
    }
    slice ub = bp ? ikey_user(*bp) : slice_make(NULL, 0);
    slice ue = ep ? ikey_user(*ep) : slice_make(NULL, 0);
    int max_level = 1;
    pthread_mutex_lock(&db->mu);
    for (int level = 1; level < NUM_LEVELS; level++)
        if (version_overlap_in_level(db->vs->current, level, bp ? &ub : NULL, ep ? &ue : NULL))
            max_level = level;
    pthread_mutex_unlock(&db->mu);
    /* The last step also rewrites the deepest level's files in the range
     * (see vset_compact_range_bottom), so expired values and data under
     * range tombstones are dropped wherever they sit. */
    for (int level = 0; level < max_level && rc == WEIR_OK; level++)
        rc = compact_level(db, level, level == max_level - 1, bp, ep);
    buf_free(&bk);
    buf_free(&ek);
    return rc;
}

/* ---- open and recovery ------------------------------------------------------- */

static int validate_options(const struct weir_options *o) {
    if (o->level0_compaction_trigger < 1 || o->level0_slowdown_trigger < o->level0_compaction_trigger ||
        o->level0_stop_trigger < o->level0_slowdown_trigger)
        return weir_set_error(WEIR_INVALID, "level0 triggers are inconsistent");
    return WEIR_OK;
}

typedef struct replay_ctx {
    weir_db *db;
    memtable *mem;
    uint64_t max_sequence;
} replay_ctx;

static int replay_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    replay_ctx *ctx = arg;
    if (seq > ctx->max_sequence) ctx->max_sequence = seq;
    /* Range tombstones go to the side list, as on the write path: in the
     * skiplist one would read as a value of its start key. */
    if (type == TYPE_RANGE_DELETION) return memtable_add_range_tombstone(ctx->mem, seq, key, value);
    return memtable_add(ctx->mem, seq, type, key, value);
}

/* Replay one log into memtables, flushing to level 0 whenever the memtable
 * fills (mutex held).
 *
 * *next_seq is the sequence the next record must start with (0: not known
 * yet, before the first record replayed). Writes are numbered without gaps
 * across a switch to a new log, so a first record that starts past it means
 * the end of the previous log was lost: a power cut kept part of the new
 * log (unsynced, as the OS wrote it out) but not the old log's unsynced
 * tail. Replaying the new log would apply later writes without earlier
 * ones, a state that never existed; the history is cut there instead, which
 * a power cut may do to unsynced writes (an fsync'd write in the new log
 * synced the old log first, so it never follows a hole). *hole is set and
 * the caller replays no further logs; they become obsolete. */
static int replay_log(weir_db *db, uint64_t number, version_edit *edit, uint64_t *max_seq,
                      uint64_t *next_seq, int *hole) {
    char path[PATH_MAX];
    log_file_path(path, sizeof path, db->path, number);
    log_reader *r;
    int rc = log_reader_open(db->env, path, &r);
    if (rc != WEIR_OK) return rc;
    buf scratch = BUF_INIT;
    slice record;
    replay_ctx ctx = {db, db->mem, *max_seq};
    int first = 1;
    while ((rc = log_reader_next(r, &scratch, &record)) == WEIR_OK) {
        if (record.len < BATCH_HEADER_SIZE) {
            rc = weir_set_error(WEIR_CORRUPTION, "log %s: record at offset %" PRIu64
                                " is too short to be a write batch (%zu bytes)",
                                path, log_reader_record_offset(r), record.len);
            break;
        }
        uint64_t seq = batch_rep_sequence(record);
        if (first && *next_seq != 0 && seq > *next_seq) {
            *hole = 1;
            stat_add(&db->stats.recovered_torn_bytes, record.len);
            break;
        }
        first = 0;
        *next_seq = seq + batch_rep_count(record);
        ctx.mem = db->mem;
        rc = batch_rep_iterate(record, replay_op, &ctx);
        if (rc != WEIR_OK) {
            rc = weir_wrap_error(rc, "log %s: record at offset %" PRIu64, path,
                                 log_reader_record_offset(r));
            break;
        }
        stat_add(&db->stats.recovered_records, 1);
        if (memtable_memory_usage(db->mem) >= db->opts.write_buffer_size) {
            memtable *full = db->mem;
            db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
            if (!db->mem) {
                db->mem = full;
                rc = weir_set_error(WEIR_NO_MEMORY, "out of memory during recovery");
                break;
            }
            uint64_t number;
            rc = write_level0_table(db, full, edit, &number);
            memtable_unref(full);
            if (rc != WEIR_OK) break;
        }
    }
    if (rc == WEIR_NOT_FOUND) {
        rc = WEIR_OK;
        stat_add(&db->stats.recovered_torn_bytes, log_reader_dropped_bytes(r));
    }
    *max_seq = ctx.max_sequence;
    buf_free(&scratch);
    log_reader_close(r);
    return rc;
}

static int recover(weir_db *db) {
    char path[PATH_MAX];
    weir_env *env = db->env;
    if (!db->opts.create_if_missing && !env->ops->file_exists(env, db->path))
        return weir_set_error(WEIR_INVALID,
                              "database directory %s does not exist (create_if_missing is off)",
                              db->path);
    int rc = env->ops->create_dir(env, db->path);
    if (rc != WEIR_OK) return rc;
    rc = env->ops->lock_file(env, lock_file_path(path, sizeof path, db->path), &db->lock_fd);
    if (rc != WEIR_OK) return rc;

    current_file_path(path, sizeof path, db->path);
    if (!env->ops->file_exists(env, path)) {
        /* No CURRENT: a new DB, unless store files say one was here. */
        env_dirent_list names = {0};
        rc = env->ops->list_dir(env, db->path, &names);
        if (rc != WEIR_OK) return rc;
        int has_store_files = 0;
        for (size_t i = 0; i < names.count; i++) {
            enum file_kind k = parse_file_name(names.names[i], NULL);
            /* A manifest alone is a creation that crashed before CURRENT
             * was renamed into place: no write can have been acknowledged
             * (open had not returned), so the store is started afresh.
             * Only logs and tables hold data. */
            if (k == FILE_LOG || k == FILE_TABLE) has_store_files = 1;
        }
        env_dirent_list_free(&names);
        if (has_store_files)
            return weir_set_error(WEIR_CORRUPTION,
                                  "%s holds weir table or log files but no CURRENT file; the "
                                  "database is damaged (restore CURRENT or a backup)",
                                  db->path);
        if (!db->opts.create_if_missing)
            return weir_set_error(WEIR_INVALID, "%s is not a weir database (create_if_missing is off)",
                                  db->path);
        rc = vset_create_new_db(db->vs);
        if (rc != WEIR_OK) return rc;
    } else if (db->opts.error_if_exists) {
        return weir_set_error(WEIR_EXISTS, "database %s already exists (error_if_exists is on)",
                              db->path);
    }

    rc = vset_recover(db->vs);
    if (rc != WEIR_OK) return rc;

    /* Every table the manifest lists must exist; logs at or after the
     * manifest's log number are replayed in order. */
    env_dirent_list names = {0};
    rc = env->ops->list_dir(env, db->path, &names);
    if (rc != WEIR_OK) return rc;
    uint64_t *logs = NULL;
    size_t nlogs = 0;
    for (size_t i = 0; i < names.count && rc == WEIR_OK; i++) {
        uint64_t number;
        enum file_kind k = parse_file_name(names.names[i], &number);
        if (k == FILE_LOG || k == FILE_TABLE || k == FILE_MANIFEST || k == FILE_TEMP)
            vset_mark_file_number_used(db->vs, number);
        if (k == FILE_LOG && number >= db->vs->log_number) {
            uint64_t *p = realloc(logs, (nlogs + 1) * sizeof *p);
            if (!p) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory listing logs");
            else {
                logs = p;
                logs[nlogs++] = number;
            }
        }
    }
    env_dirent_list_free(&names);
    version *cur = db->vs->current;
    for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++) {
        for (int i = 0; i < cur->num_files[level]; i++) {
            table_file_path(path, sizeof path, db->path, cur->files[level][i]->number);
            if (!env->ops->file_exists(env, path)) {
                rc = weir_set_error(WEIR_CORRUPTION,
                                    "table %s listed in the manifest is missing; the database is "
                                    "damaged",
                                    path);
                break;
            }
        }
    }
    /* Open every table once: a table this build cannot read (a codec not
     * compiled in, a damaged footer) fails the open now, not a read later.
     * The table cache keeps as many open as max_open_files allows. */
    for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++) {
        for (int i = 0; i < cur->num_files[level] && rc == WEIR_OK; i++) {
            table_handle *h;
            rc = table_cache_get(db->tc, cur->files[level][i]->number, cur->files[level][i]->size, &h);
            if (rc == WEIR_OK) table_cache_release(db->tc, h);
        }
    }
    if (rc != WEIR_OK) {
        free(logs);
        return rc;
    }
    if (nlogs) qsort(logs, nlogs, sizeof *logs, cmp_u64);

    version_edit edit;
    version_edit_init(&edit);
    uint64_t max_seq = db->vs->last_sequence;
    pthread_mutex_lock(&db->mu);
    uint64_t next_seq = 0;
    int hole = 0;
    for (size_t i = 0; i < nlogs && rc == WEIR_OK && !hole; i++)
        rc = replay_log(db, logs[i], &edit, &max_seq, &next_seq, &hole);
    free(logs);
    if (rc == WEIR_OK && memtable_count(db->mem) > 0) {
        memtable *full = db->mem;
        db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
        if (!db->mem) {
            db->mem = full;
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory during recovery");
        } else {
            uint64_t number;
            rc = write_level0_table(db, full, &edit, &number);
            memtable_unref(full);
        }
    }
    if (rc == WEIR_OK) {
        if (max_seq > db->vs->last_sequence) db->vs->last_sequence = max_seq;
        uint64_t number = vset_new_file_number(db->vs);
        rc = log_writer_open(env, log_file_path(path, sizeof path, db->path, number), &db->log);
        if (rc == WEIR_OK) {
            db->log_number = number;
            version_edit_set_log_number(&edit, number);
            rc = vset_log_and_apply(db->vs, &edit, &db->mu);
        }
        if (rc == WEIR_OK) {
            rc = env->ops->sync_dir(env, db->path);
        }
        /* Recovery's tables are installed (or abandoned) now. */
        db->num_pending = 0;
        if (rc == WEIR_OK) db_delete_obsolete_files(db);
        db_update_compaction_debt(db);
    }
    db->num_pending = 0;
    atomic_store_explicit(&db->visible_sequence, db->vs->last_sequence, memory_order_release);
    db_install_superversion(db);
    if (!db->sv) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", db->path);
    pthread_mutex_unlock(&db->mu);
    version_edit_free(&edit);
    return rc;
}

static void db_free(weir_db *db) {
    if (db->sv) superversion_free(db->sv); /* every reader is gone */
    if (db->prev_log) log_writer_close(db->prev_log);
    if (db->log) log_writer_close(db->log);
    if (db->mem) memtable_unref(db->mem);
    if (db->imm) memtable_unref(db->imm);
    if (db->vs) vset_destroy(db->vs);
    if (db->tc) table_cache_destroy(db->tc);
    block_cache_destroy(db->block_cache);
    if (db->lock_fd >= 0) db->env->ops->unlock_file(db->env, db->lock_fd);
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->sv_lock);
    pthread_cond_destroy(&db->bg_cv);
    pthread_cond_destroy(&db->work_cv);
    buf_free(&db->group_rep);
    free(db->pending_outputs);
    free(db->threads);
    free(db->path);
    free(db);
}

int weir_open(const char *path, const weir_options *opts, weir_db **out) {
    if (!out) return weir_set_error(WEIR_INVALID, "weir_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return weir_set_error(WEIR_INVALID, "weir_open: path is NULL or empty");
    if (strlen(path) > PATH_MAX - 64)
        return weir_set_error(WEIR_INVALID, "weir_open: path of %zu bytes is too long", strlen(path));

    weir_db *db = calloc(1, sizeof *db);
    if (!db) return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
    db->lock_fd = -1;
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->sv_lock, NULL);
    pthread_cond_init(&db->bg_cv, NULL);
    pthread_cond_init(&db->work_cv, NULL);
    db->snapshots.next = db->snapshots.prev = &db->snapshots;
    if (opts) {
        db->opts = *opts;
    } else {
        weir_options *d = weir_options_create();
        if (!d) {
            db_free(db);
            return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
        }
        db->opts = *d;
        weir_options_destroy(d);
    }
    int rc = validate_options(&db->opts);
    if (rc != WEIR_OK) {
        db_free(db);
        return rc;
    }
    db->env = db->opts.env ? db->opts.env : env_posix();
    db->path = strdup(path);
    /* Strip trailing slashes so file names and messages read cleanly. */
    if (db->path) {
        size_t n = strlen(db->path);
        while (n > 1 && db->path[n - 1] == '/') db->path[--n] = '\0';
    }
    db->tc = db->path ? table_cache_create(db->env, db->path, db->opts.max_open_files) : NULL;
    db->block_cache = block_cache_create(db->opts.block_cache_size);
    if (db->tc && db->block_cache) table_cache_set_block_cache(db->tc, db->block_cache);
    vset_options vo = {db->opts.max_bytes_for_level_base, db->opts.target_file_size,
                       db->opts.level0_compaction_trigger};
    db->vs = db->tc ? vset_create(db->env, db->path, db->tc, &vo) : NULL;
    db->mem = memtable_create_with_filter(db->opts.write_buffer_size / 32);
    if (!db->path || !db->tc || !db->vs || !db->mem || !db->block_cache) {
        db_free(db);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory opening %s", path);
    }

    rc = recover(db);
    if (rc != WEIR_OK) {
        db_free(db);
        return rc;
    }

    db->threads = calloc((size_t)db->opts.background_threads, sizeof *db->threads);
    if (!db->threads) {
        db_free(db);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory starting background threads");
    }
    for (int i = 0; i < db->opts.background_threads; i++) {
        if (pthread_create(&db->threads[i], NULL, background_main, db) != 0) {
            weir_close(db);
            return weir_set_error(WEIR_NO_MEMORY, "could not start background thread %d", i);
        }
        db->num_threads++;
    }
    pthread_mutex_lock(&db->mu);
    pthread_cond_broadcast(&db->work_cv);
    pthread_mutex_unlock(&db->mu);
    *out = db;
    return WEIR_OK;
}

int weir_close(weir_db *db) {
    if (!db) return WEIR_OK;
    /* Closing while other threads still use the handle is a caller bug
     * (as freeing any object in use is); background threads are ours. */
    pthread_mutex_lock(&db->mu);
    db->shutting_down = 1;
    pthread_cond_broadcast(&db->work_cv);
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    for (int i = 0; i < db->num_threads; i++) pthread_join(db->threads[i], NULL);

    int rc = WEIR_OK;
    weir_error err;
    if (db->bg_error.code != WEIR_OK) {
        rc = db->bg_error.code;
        err = db->bg_error;
    }
    if (db->prev_log && !db->prev_log_synced) {
        /* An unflushed imm's writes live only in the previous log. */
        int prc = log_writer_sync(db->prev_log);
        if (rc == WEIR_OK && prc != WEIR_OK) {
            rc = prc;
            weir_error_save(&err, rc);
        }
    }
    if (db->log) {
        /* A clean close makes every acknowledged write durable, whatever
         * sync mode it was written with. */
        int lrc = log_writer_sync(db->log);
        int crc = log_writer_close(db->log);
        db->log = NULL;
        if (rc == WEIR_OK && lrc != WEIR_OK) {
            rc = lrc;
            weir_error_save(&err, rc);
        } else if (rc == WEIR_OK && crc != WEIR_OK) {
            rc = crc;
            weir_error_save(&err, rc);
        }
    }
    db_free(db);
    if (rc != WEIR_OK) weir_error_raise(&err);
    return rc;
}

int weir_destroy(const char *path) {
    if (!path || !*path) return weir_set_error(WEIR_INVALID, "weir_destroy: path is NULL or empty");
    weir_env *env = env_posix();
    if (!env->ops->file_exists(env, path)) return WEIR_OK;
    char p[PATH_MAX];
    int lock_fd;
    int rc = env->ops->lock_file(env, lock_file_path(p, sizeof p, path), &lock_fd);
    if (rc != WEIR_OK) return rc;
    env_dirent_list names = {0};
    rc = env->ops->list_dir(env, path, &names);
    if (rc == WEIR_OK) {
        for (size_t i = 0; i < names.count; i++) {
            enum file_kind k = parse_file_name(names.names[i], NULL);
            if (k == FILE_UNKNOWN || k == FILE_LOCK) continue;
            snprintf(p, sizeof p, "%s/%s", path, names.names[i]);
            int r = env->ops->remove_file(env, p);
            if (r != WEIR_OK && rc == WEIR_OK) rc = r;
        }
        env_dirent_list_free(&names);
    }
    env->ops->unlock_file(env, lock_fd);
    env->ops->remove_file(env, lock_file_path(p, sizeof p, path));
    env->ops->remove_dir(env, path); /* fails harmlessly if other files remain */
    return rc;
}

/* ---- properties ------------------------------------------------------------ */

static char *dup_printf(const char *fmt, ...) WEIR_PRINTF(1, 2);
static char *dup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static char *counters_text(weir_db *db, uint64_t total_sst, uint64_t mem_bytes) {
    db_stats *s = &db->stats;
    block_cache_stats cs;
    block_cache_get_stats(db->block_cache, &cs);
    uint64_t lookups, bloom_useful;
    table_cache_lookup_stats(db->tc, &lookups, &bloom_useful);
    char *extra = dup_printf(
        "block_cache_capacity %" PRIu64 "\nblock_cache_usage %" PRIu64 "\nblock_cache_pinned %" PRIu64
        "\nblock_cache_entries %" PRIu64 "\nblock_cache_hits %" PRIu64 "\nblock_cache_misses %" PRIu64
        "\nblock_cache_evictions %" PRIu64 "\ntable_lookups %" PRIu64 "\nbloom_useful %" PRIu64
        "\nopen_tables %d\npending_compaction_bytes %" PRIu64 "\nstops %" PRIu64
        "\nget_count %" PRIu64 "\nget_p50_ns %" PRIu64 "\nget_p99_ns %" PRIu64
        "\nwrite_count %" PRIu64 "\nwrite_p50_ns %" PRIu64 "\nwrite_p99_ns %" PRIu64
        "\ncompression %s\n",
        cs.capacity, cs.usage, cs.pinned, cs.entries, cs.hits, cs.misses, cs.evictions, lookups,
        bloom_useful, table_cache_open_count(db->tc), db->pending_compaction_bytes,
        stat_get(&s->stops), stat_get(&s->get_latency.count) * 16,
        hist_percentile(&s->get_latency, 50), hist_percentile(&s->get_latency, 99),
        stat_get(&s->put_latency.count) * 16, hist_percentile(&s->put_latency, 50),
        hist_percentile(&s->put_latency, 99), codec_name(db->opts.compression));
    if (!extra) return NULL;
    uint64_t user = stat_get(&s->user_bytes_written);
    uint64_t disk = stat_get(&s->wal_bytes_written) + stat_get(&s->flush_bytes_written) +
                    stat_get(&s->compaction_bytes_written);
    double wamp = user ? (double)disk / (double)user : 0.0;
    char *text = dup_printf(
        "%suser_bytes_written %" PRIu64 "\nwal_bytes_written %" PRIu64 "\nwal_syncs %" PRIu64
        "\nwrites %" PRIu64 "\nwrite_groups %" PRIu64 "\nflushes %" PRIu64
        "\nflush_bytes_written %" PRIu64 "\ncompactions %" PRIu64 "\ntrivial_moves %" PRIu64
        "\ncompaction_bytes_read %" PRIu64 "\ncompaction_bytes_written %" PRIu64
        "\ncompaction_entries_dropped %" PRIu64 "\nwrite_amplification %.2f\nstall_micros %" PRIu64
        "\nslowdowns %" PRIu64 "\ngets %" PRIu64 "\nrecovered_records %" PRIu64
        "\nrecovered_torn_bytes %" PRIu64 "\nfiles_deleted %" PRIu64 "\ntotal_sst_bytes %" PRIu64
        "\nmemtable_bytes %" PRIu64 "\n",
        extra, user, stat_get(&s->wal_bytes_written), stat_get(&s->wal_syncs), stat_get(&s->writes),
        stat_get(&s->write_groups), stat_get(&s->flushes), stat_get(&s->flush_bytes_written),
        stat_get(&s->compactions), stat_get(&s->trivial_moves), stat_get(&s->compaction_bytes_read),
        stat_get(&s->compaction_bytes_written), stat_get(&s->compaction_entries_dropped), wamp,
        stat_get(&s->stall_micros), stat_get(&s->slowdowns), stat_get(&s->gets),
        stat_get(&s->recovered_records), stat_get(&s->recovered_torn_bytes),
        stat_get(&s->files_deleted), total_sst, mem_bytes);
    free(extra);
    return text;
}

int weir_property(weir_db *db, const char *name, char **value) {
    if (!value) return weir_set_error(WEIR_INVALID, "weir_property: value is NULL");
    *value = NULL;
    CHECK_DB(db, "weir_property");
    if (!name) return weir_set_error(WEIR_INVALID, "weir_property: name is NULL");
    char *s = NULL;
    int known = 1;
    pthread_mutex_lock(&db->mu);
    version *v = db->vs->current;
    uint64_t total_sst = 0;
    for (int l = 0; l < NUM_LEVELS; l++) total_sst += version_level_bytes(v, l);
    uint64_t mem_bytes = memtable_memory_usage(db->mem) + (db->imm ? memtable_memory_usage(db->imm) : 0);
    const char *lvl_prefix = "weir.num-files-at-level";
    if (strncmp(name, lvl_prefix, strlen(lvl_prefix)) == 0) {
        const char *num = name + strlen(lvl_prefix);
        char *endp;
        long level = strtol(num, &endp, 10);
        if (*num && !*endp && level >= 0 && level < NUM_LEVELS) s = dup_printf("%d", v->num_files[level]);
        else known = 0;
    } else if (strcmp(name, "weir.level-summary") == 0) {
        s = version_level_summary(v);
    } else if (strcmp(name, "weir.sstables") == 0) {
        s = version_table_list(v);
    } else if (strcmp(name, "weir.last-sequence") == 0) {
        s = dup_printf("%" PRIu64, db->vs->last_sequence);
    } else if (strcmp(name, "weir.memtable-bytes") == 0) {
        s = dup_printf("%" PRIu64, mem_bytes);
    } else if (strcmp(name, "weir.total-sst-bytes") == 0) {
        s = dup_printf("%" PRIu64, total_sst);
    } else if (strcmp(name, "weir.num-snapshots") == 0) {
        s = dup_printf("%d", db->num_snapshots);
    } else if (strcmp(name, "weir.background-error") == 0) {
        s = strdup(db->bg_error.code == WEIR_OK ? "" : db->bg_error.msg);
    } else if (strcmp(name, "weir.counters") == 0) {
        s = counters_text(db, total_sst, mem_bytes);
    } else if (strcmp(name, "weir.stats") == 0) {
        char *levels = version_level_summary(v);
        char *counters = counters_text(db, total_sst, mem_bytes);
        if (levels && counters)
            s = dup_printf("weir %s, %s\n** levels **\n%s** counters **\n%s", weir_version(), db->path,
                           levels, counters);
        free(levels);
        free(counters);
    } else {
        known = 0;
    }
    pthread_mutex_unlock(&db->mu);
    if (!known) return weir_set_error(WEIR_NOT_FOUND, "unknown property \"%s\"", name);
    if (!s) return weir_set_error(WEIR_NO_MEMORY, "out of memory reading property %s", name);
    *value = s;
    return WEIR_OK;
}
