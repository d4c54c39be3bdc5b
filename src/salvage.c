/*
 * salvage.c -- weir_salvage: copy every record that can be proved intact
 * out of a damaged DB into a new one, and say exactly what could not be
 * (the role of SQLite's .recover and RocksDB's RepairDB). The source is
 * only read.
 *
 * Sources, each trusted only as far as its own checksums go:
 *   - the manifest CURRENT names (or, when CURRENT is unusable, the newest
 *     manifest that replays), read record by record with damaged records
 *     skipped: it says which tables are live, which range tombstones apply
 *     and which logs hold writes not yet in tables;
 *   - the live tables, and tables newer than the manifest (numbered at or
 *     past its next file number: a flush or compaction whose manifest
 *     record was lost), block by block: a block that fails its checksum is
 *     skipped and reported with its key range; a table whose footer or
 *     index is damaged is lost whole;
 *   - the logs from the manifest's log number on, record by record.
 * Never used: tables the manifest no longer lists (a compaction replaced
 * them, possibly dropping a tombstone that hid their keys, so they could
 * bring deleted keys back), and logs recovery set aside.
 *
 * Every entry keeps its sequence number, so merging all sources by
 * internal key gives each key's history in order and the newest intact
 * version wins; range tombstones keep theirs too. The result is written as
 * sorted tables on the last level under a fresh manifest sealed as closed
 * cleanly with no logs, then opened read-only to prove it.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "db_impl.h"
#include "filename.h"
#include "merger.h"
#include "sst.h"

typedef struct salvager {
    weir_env *env;
    const char *src, *dst;
    weir_report_fn fn;
    void *arg;
    int losses;           /* findings that lost data */
    /* The manifest. */
    int have_manifest;
    version_set *vs;
    table_cache *tc;
    /* Current source file (for the callbacks). */
    char file[64];
    /* Log salvage: the damage waiting for the next intact record, which
     * says where the lost sequences end. */
    int pending_log_damage;
    uint64_t pending_from, pending_to, prev_end_seq;
    char pending_reason[300];
    uint64_t lost_blocks, lost_block_bytes;
    /* Output. */
    memtable *logged;     /* every intact log record */
    uint64_t max_seq;
    uint64_t entries_in, entries_out, duplicates;
} salvager;

static void say(salvager *s, int level, const char *file, const char *fmt, ...) WEIR_PRINTF(4, 5);
static void say(salvager *s, int level, const char *file, const char *fmt, ...) {
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level >= WEIR_REPORT_DAMAGE) s->losses++;
    if (s->fn) s->fn(s->arg, level, file, msg);
}

/* Keys in messages: printable bytes as they are, others as \xNN, cut. */
static void describe_key(char *out, size_t cap, slice key) {
    size_t n = 0;
    for (size_t i = 0; i < key.len && n + 5 < cap; i++) {
        unsigned char c = (unsigned char)key.data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') out[n++] = (char)c;
        else n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
        if (i == 60 && key.len > 64) {
            n += (size_t)snprintf(out + n, cap - n, "...");
            break;
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* ---- the manifest ------------------------------------------------------------- */

static void manifest_damage(void *arg, uint64_t start, uint64_t end, int follows, const char *reason) {
    salvager *s = arg;
    (void)follows;
    say(s, WEIR_REPORT_DAMAGE, s->file,
        "bytes %" PRIu64 "..%" PRIu64 " skipped (%s): the table changes recorded there are lost, so "
        "tables they added may be missing and tables they removed may still be used",
        start, end, reason);
}

static void manifest_bad_edit(void *arg, uint64_t offset, const char *reason) {
    salvager *s = arg;
    say(s, WEIR_REPORT_DAMAGE, s->file, "record at offset %" PRIu64 " skipped: %s", offset, reason);
}

/* The newest manifest number in src, 0 if none. */
static uint64_t newest_manifest(salvager *s) {
    env_dirent_list names = {0};
    uint64_t best = 0;
    if (s->env->ops->list_dir(s->env, s->src, &names) != WEIR_OK) return 0;
    for (size_t i = 0; i < names.count; i++) {
        uint64_t n;
        if (parse_file_name(names.names[i], &n) == FILE_MANIFEST && n > best) best = n;
    }
    env_dirent_list_free(&names);
    return best;
}

static int read_current(salvager *s, uint64_t *number) {
    char path[PATH_MAX];
    buf contents = BUF_INIT;
    current_file_path(path, sizeof path, s->src);
    int rc = env_read_file(s->env, path, &contents);
    int ok = rc == WEIR_OK && contents.len >= 2 && contents.len < 64 &&
             contents.data[contents.len - 1] == '\n';
    if (ok) {
        char name[64];
        memcpy(name, contents.data, contents.len - 1);
        name[contents.len - 1] = '\0';
        ok = strlen(name) == contents.len - 1 && parse_file_name(name, number) == FILE_MANIFEST;
    }
    buf_free(&contents);
    return ok;
}

static int load_manifest(salvager *s) {
    s->tc = table_cache_create(s->env, s->src, 64);
    vset_options vo = {UINT64_C(256) << 20, UINT64_C(64) << 20, 4};
    s->vs = s->tc ? vset_create(s->env, s->src, s->tc, &vo) : NULL;
    if (!s->vs) return weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging %s", s->src);
    uint64_t number = 0;
    if (!read_current(s, &number)) {
        number = newest_manifest(s);
        say(s, WEIR_REPORT_WARN, "CURRENT",
            "missing or unreadable; using the newest manifest found%s",
            number ? "" : " (there is none)");
    }
    if (number == 0) return WEIR_OK;
    snprintf(s->file, sizeof s->file, "MANIFEST-%06" PRIu64, number);
    vset_salvage_fn hooks = {manifest_damage, manifest_bad_edit};
    int rc = vset_recover_manifest(s->vs, number, &hooks, s);
    if (rc == WEIR_NO_MEMORY) return rc;
    if (rc != WEIR_OK) {
        say(s, WEIR_REPORT_DAMAGE, s->file,
            "cannot be replayed (%s): which tables are live is unknown, so every table is used "
            "(keys deleted by a compaction that dropped their tombstone may come back)",
            weir_errmsg());
        return WEIR_OK;
    }
    s->have_manifest = 1;
    say(s, WEIR_REPORT_OK, s->file,
        "%" PRIu64 " record(s) replayed: log number %" PRIu64 ", next file %" PRIu64 ", last "
        "sequence %" PRIu64,
        s->vs->recovered.records, s->vs->log_number, s->vs->recovered.next_file, s->vs->last_sequence);
    if (s->vs->last_sequence > s->max_seq) s->max_seq = s->vs->last_sequence;
    return WEIR_OK;
}

static const file_meta *live_table(const salvager *s, uint64_t number, int *level) {
    if (!s->have_manifest) return NULL;
    const version *v = s->vs->current;
    for (int l = 0; l < NUM_LEVELS; l++)
        for (int i = 0; i < v->num_files[l]; i++)
            if (v->files[l][i]->number == number) {
                *level = l;
                return v->files[l][i];
            }
    return NULL;
}

/* ---- tables --------------------------------------------------------------------- */

/* An intact table's iterator holds the table open through its cache
 * handle, released when the iterator is destroyed; damage found while the
 * merge reads it is reported under its name. */
typedef struct held_table {
    salvager *s;
    table_cache *tc;
    table_handle *h;
    char name[32];
} held_table;

static void release_held(void *arg) {
    held_table *t = arg;
    table_cache_release(t->tc, t->h);
    free(t);
}

static void table_damage(void *arg, uint64_t offset, uint64_t size, slice lower, slice upper,
                         const char *reason) {
    held_table *t = arg;
    salvager *s = t->s;
    char lo[200], hi[200];
    if (lower.len >= IKEY_TAG_SIZE) describe_key(lo, sizeof lo, ikey_user(lower));
    if (upper.len >= IKEY_TAG_SIZE) describe_key(hi, sizeof hi, ikey_user(upper));
    s->lost_blocks++;
    s->lost_block_bytes += size;
    say(s, WEIR_REPORT_DAMAGE, t->name,
        "data block at offset %" PRIu64 "%s lost (%s): keys after \"%s\" up to \"%s\" that no other "
        "source holds are gone",
        offset, size ? "" : " (partly)", reason, lower.len >= IKEY_TAG_SIZE ? lo : "(start)",
        upper.len >= IKEY_TAG_SIZE ? hi : "?");
}

/* Decide whether a table is used, open it and return its salvaging
 * iterator in *out (NULL: not used, or lost whole: reported). */
static int open_table(salvager *s, uint64_t number, iter **out) {
    *out = NULL;
    char path[PATH_MAX];
    table_file_path(path, sizeof path, s->src, number);
    snprintf(s->file, sizeof s->file, "%06" PRIu64 ".sst", number);
    int level = -1;
    const file_meta *meta = live_table(s, number, &level);
    if (s->have_manifest && !meta && number < s->vs->recovered.next_file) {
        say(s, WEIR_REPORT_NOTE, s->file,
            "not used: the manifest no longer lists it (obsolete; it could bring deleted keys back)");
        return WEIR_OK;
    }
    uint64_t size;
    int rc = s->env->ops->file_size(s->env, path, &size);
    table_handle *h = NULL;
    if (rc == WEIR_OK) rc = table_cache_get(s->tc, number, size, &h);
    if (rc == WEIR_NO_MEMORY) return rc;
    if (rc != WEIR_OK) {
        char lo[200] = "", hi[200] = "";
        if (meta) {
            describe_key(lo, sizeof lo, ikey_user(buf_slice(&meta->smallest)));
            describe_key(hi, sizeof hi, ikey_user(buf_slice(&meta->largest)));
        }
        if (meta)
            say(s, WEIR_REPORT_DAMAGE, s->file,
                "lost whole (%s): its %" PRIu64 " entries on level %d, keys \"%s\" .. \"%s\", are gone "
                "unless another source holds them",
                weir_errmsg(), meta->num_entries, level, lo, hi);
        else
            say(s, WEIR_REPORT_DAMAGE, s->file, "lost whole (%s)", weir_errmsg());
        return WEIR_OK;
    }
    held_table *held = malloc(sizeof *held);
    if (!held) {
        table_cache_release(s->tc, h);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging %s", path);
    }
    held->s = s;
    held->tc = s->tc;
    held->h = h;
    snprintf(held->name, sizeof held->name, "%s", s->file);
    /* release_held runs when the iterator goes, and on failure here. */
    iter *it = sst_reader_salvage_iter(table_handle_reader(h), table_damage, held, release_held, held);
    if (!it) return weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging %s", path);
    if (meta)
        say(s, WEIR_REPORT_NOTE, s->file, "used: level %d, %" PRIu64 " entries", level, meta->num_entries);
    else
        say(s, WEIR_REPORT_NOTE, s->file,
            "used: %s, %" PRIu64 " entries", s->have_manifest ? "newer than the manifest (a flush or "
            "compaction whose record was lost)" : "no manifest to say otherwise",
            sst_reader_num_entries(table_handle_reader(h)));
    *out = it;
    return WEIR_OK;
}

/* ---- logs ------------------------------------------------------------------------ */

static void flush_pending(salvager *s, uint64_t next_seq) {
    if (!s->pending_log_damage) return;
    s->pending_log_damage = 0;
    if (next_seq > s->prev_end_seq + 1 && s->prev_end_seq)
        say(s, WEIR_REPORT_DAMAGE, s->file,
            "bytes %" PRIu64 "..%" PRIu64 " skipped (%s): writes with sequences %" PRIu64 "..%" PRIu64
            " are lost",
            s->pending_from, s->pending_to, s->pending_reason, s->prev_end_seq + 1, next_seq - 1);
    else if (next_seq)
        say(s, WEIR_REPORT_DAMAGE, s->file,
            "bytes %" PRIu64 "..%" PRIu64 " skipped (%s): the writes there, before sequence %" PRIu64
            ", are lost",
            s->pending_from, s->pending_to, s->pending_reason, next_seq);
    else if (s->prev_end_seq)
        say(s, WEIR_REPORT_DAMAGE, s->file,
            "bytes %" PRIu64 "..%" PRIu64 " skipped (%s): the writes there, after sequence %" PRIu64
            ", are lost (a torn tail if the database crashed there)",
            s->pending_from, s->pending_to, s->pending_reason, s->prev_end_seq);
    else
        say(s, WEIR_REPORT_DAMAGE, s->file,
            "bytes %" PRIu64 "..%" PRIu64 " skipped (%s): the writes stored there are lost",
            s->pending_from, s->pending_to, s->pending_reason);
}

static void log_damage(void *arg, uint64_t start, uint64_t end, int follows, const char *reason) {
    salvager *s = arg;
    (void)follows;
    if (s->pending_log_damage && s->pending_to == start) { /* one contiguous loss */
        s->pending_to = end;
        return;
    }
    flush_pending(s, 0);
    s->pending_log_damage = 1;
    s->pending_from = start;
    s->pending_to = end;
    snprintf(s->pending_reason, sizeof s->pending_reason, "%s", reason);
}

static int add_logged(void *arg, uint64_t seq, int type, slice key, slice value) {
    salvager *s = arg;
    if (seq > s->max_seq) s->max_seq = seq;
    if (type == TYPE_RANGE_DELETION) return memtable_add_range_tombstone(s->logged, seq, key, value);
    return memtable_add(s->logged, seq, type, key, value);
}

static int salvage_log(salvager *s, uint64_t number) {
    char path[PATH_MAX];
    log_file_path(path, sizeof path, s->src, number);
    snprintf(s->file, sizeof s->file, "%06" PRIu64 ".log", number);
    log_reader *r;
    int rc = log_reader_open(s->env, path, &r);
    if (rc != WEIR_OK) {
        say(s, WEIR_REPORT_DAMAGE, s->file, "cannot be read: %s", weir_errmsg());
        return rc == WEIR_NO_MEMORY ? rc : WEIR_OK;
    }
    log_reader_set_salvage(r, log_damage, s);
    buf scratch = BUF_INIT;
    slice rec;
    uint64_t records = 0, writes = 0, first = 0, last = 0;
    while ((rc = log_reader_next(r, &scratch, &rec)) == WEIR_OK) {
        uint64_t off = log_reader_record_offset(r);
        uint64_t seq = rec.len >= BATCH_HEADER_SIZE ? batch_rep_sequence(rec) : 0;
        uint64_t n = rec.len >= BATCH_HEADER_SIZE ? batch_rep_count(rec) : 0;
        /* A record that checksums but does not decode is skipped whole: a
         * batch is applied completely or not at all. */
        int valid = rec.len >= BATCH_HEADER_SIZE && seq > 0 && n > 0 && seq + n - 1 <= MAX_SEQUENCE &&
                    batch_rep_iterate(rec, NULL, NULL) == WEIR_OK;
        if (!valid) {
            log_damage(s, off, log_reader_valid_end(r), 1, "a record that does not decode as a write batch");
            continue;
        }
        flush_pending(s, seq);
        rc = batch_rep_iterate(rec, add_logged, s);
        if (rc != WEIR_OK) break;
        if (!records) first = seq;
        last = seq + n - 1;
        s->prev_end_seq = last;
        records++;
        writes += n;
        s->entries_in += n;
    }
    if (rc == WEIR_NOT_FOUND) rc = WEIR_OK;
    flush_pending(s, 0);
    buf_free(&scratch);
    log_reader_close(r);
    if (rc != WEIR_OK) return rc;
    if (records)
        say(s, WEIR_REPORT_NOTE, s->file, "used: %" PRIu64 " intact record(s), %" PRIu64
            " write(s), sequences %" PRIu64 "..%" PRIu64, records, writes, first, last);
    else
        say(s, WEIR_REPORT_NOTE, s->file, "no intact record");
    return WEIR_OK;
}

/* ---- the output ------------------------------------------------------------------ */

typedef struct output {
    salvager *s;
    const weir_options *opts;
    version_edit *edit;
    version_set *vs;
    sst_builder *b;
    uint64_t number;
    buf smallest, largest;
    uint64_t min_seq;
    uint64_t target;
} output;

static int finish_output(output *o) {
    if (!o->b) return WEIR_OK;
    uint64_t entries = sst_builder_num_entries(o->b), size = 0;
    int rc = sst_builder_finish(o->b, &size);
    o->b = NULL;
    if (rc != WEIR_OK) return rc;
    file_meta *f = file_meta_create(o->number, size, entries, buf_slice(&o->smallest), buf_slice(&o->largest));
    if (!f) return weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
    rc = version_edit_add_file(o->edit, NUM_LEVELS - 1, f);
    file_meta_unref(f);
    o->s->entries_out += entries;
    return rc;
}

static int add_output(output *o, slice ikey, slice value) {
    int rc;
    if (!o->b) {
        char path[PATH_MAX];
        o->number = vset_new_file_number(o->vs);
        table_file_path(path, sizeof path, o->s->dst, o->number);
        sst_build_options so = {o->opts ? o->opts->block_size : 4096, SST_RESTART_INTERVAL,
                                o->opts ? o->opts->bloom_bits_per_key : 10,
                                o->opts ? o->opts->compression : 0};
        rc = sst_builder_open(o->s->env, path, &so, &o->b);
        if (rc != WEIR_OK) return rc;
        if (buf_set(&o->smallest, ikey.data, ikey.len) != 0) return weir_set_error(WEIR_NO_MEMORY, "out of memory");
    }
    rc = sst_builder_add(o->b, ikey, value);
    if (rc == WEIR_OK && buf_set(&o->largest, ikey.data, ikey.len) != 0)
        rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
    return rc;
}

/* Merge every source into sorted tables. */
static int write_tables(salvager *s, output *o, iter *merged) {
    int rc = WEIR_OK;
    buf prev = BUF_INIT;
    for (iter_seek_first(merged); iter_valid(merged) && rc == WEIR_OK; iter_next(merged)) {
        slice k = iter_key(merged);
        if (k.len < IKEY_TAG_SIZE) continue;
        if (prev.len && ikey_compare(k, buf_slice(&prev)) == 0) {
            s->duplicates++; /* the same write from a table and a log */
            continue;
        }
        /* Files of one level never split a user key's versions. */
        if (o->b && sst_builder_file_size(o->b) >= o->target && prev.len &&
            slice_compare(ikey_user(k), ikey_user(buf_slice(&prev))) != 0)
            rc = finish_output(o);
        if (rc == WEIR_OK) rc = add_output(o, k, iter_value(merged));
        if (rc == WEIR_OK && buf_set(&prev, k.data, k.len) != 0)
            rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
        if (ikey_seq(k) > s->max_seq) s->max_seq = ikey_seq(k);
    }
    if (rc == WEIR_OK) rc = iter_status(merged);
    if (rc == WEIR_OK) rc = finish_output(o);
    if (o->b) sst_builder_abandon(o->b);
    o->b = NULL;
    buf_free(&prev);
    return rc;
}

/* dst must not exist or be empty. */
static int prepare_dst(salvager *s) {
    env_dirent_list names = {0};
    if (s->env->ops->file_exists(s->env, s->dst)) {
        int rc = s->env->ops->list_dir(s->env, s->dst, &names);
        if (rc != WEIR_OK) return rc;
        size_t n = names.count;
        env_dirent_list_free(&names);
        if (n) return weir_set_error(WEIR_EXISTS, "salvage target %s is not empty (choose a new path)", s->dst);
    }
    return s->env->ops->create_dir(s->env, s->dst);
}

int weir_salvage(const char *src, const char *dst, const weir_options *opts, weir_report_fn fn, void *arg) {
    if (!src || !*src || !dst || !*dst)
        return weir_set_error(WEIR_INVALID, "weir_salvage: src and dst must be non-empty paths");
    if (strlen(src) > PATH_MAX - 64 || strlen(dst) > PATH_MAX - 64)
        return weir_set_error(WEIR_INVALID, "weir_salvage: path too long");
    salvager s;
    memset(&s, 0, sizeof s);
    s.env = env_posix();
    s.src = src;
    s.dst = dst;
    s.fn = fn;
    s.arg = arg;
    if (!s.env->ops->file_exists(s.env, src))
        return weir_set_error(WEIR_INVALID, "weir_salvage: %s does not exist", src);
    char path[PATH_MAX];
    /* A read lock: no writer changes src while it is read (none can start). */
    int lock_fd = -1;
    int rc = s.env->ops->lock_file_shared(s.env, lock_file_path(path, sizeof path, src), &lock_fd);
    if (rc != WEIR_OK) return rc;
    rc = prepare_dst(&s);
    if (rc == WEIR_OK) rc = load_manifest(&s);
    s.logged = rc == WEIR_OK ? memtable_create_with_filter(0) : NULL;
    if (rc == WEIR_OK && !s.logged) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");

    /* The sources, newest first so ties (none, after deduplication) are
     * stable: the logs' memtable, then tables by descending number. */
    iter **children = NULL;
    int nchildren = 0;
    env_dirent_list names = {0};
    if (rc == WEIR_OK) rc = s.env->ops->list_dir(s.env, src, &names);
    uint64_t *tables = NULL, *logs = NULL;
    size_t ntables = 0, nlogs = 0;
    if (rc == WEIR_OK) {
        tables = calloc(names.count + 1, sizeof *tables);
        logs = calloc(names.count + 1, sizeof *logs);
        if (!tables || !logs) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
    }
    for (size_t i = 0; i < names.count && rc == WEIR_OK; i++) {
        uint64_t n;
        enum file_kind k = parse_file_name(names.names[i], &n);
        if (k == FILE_TABLE) tables[ntables++] = n;
        else if (k == FILE_LOG) logs[nlogs++] = n;
        else if (k == FILE_UNREPLAYED_LOG)
            say(&s, WEIR_REPORT_NOTE, names.names[i], "not used: set aside by recovery (never fsync'd "
                "writes after a power cut's hole)");
    }
    env_dirent_list_free(&names);
    /* Ascending numbers: logs in write order. */
    for (size_t i = 1; i < nlogs; i++)
        for (size_t j = i; j > 0 && logs[j - 1] > logs[j]; j--) {
            uint64_t t = logs[j];
            logs[j] = logs[j - 1];
            logs[j - 1] = t;
        }
    for (size_t i = 0; i < nlogs && rc == WEIR_OK; i++) {
        if (s.have_manifest && logs[i] < s.vs->log_number) {
            snprintf(s.file, sizeof s.file, "%06" PRIu64 ".log", logs[i]);
            say(&s, WEIR_REPORT_NOTE, s.file, "not used: its writes are already in tables (obsolete)");
            continue;
        }
        rc = salvage_log(&s, logs[i]);
    }
    if (rc == WEIR_OK) {
        children = calloc(ntables + 1, sizeof *children);
        if (!children) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
    }
    if (rc == WEIR_OK) {
        children[nchildren] = memtable_iter_create(s.logged);
        if (!children[nchildren]) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
        else nchildren++;
    }
    for (size_t i = ntables; i-- > 0 && rc == WEIR_OK;) {
        iter *it;
        rc = open_table(&s, tables[i], &it);
        if (rc == WEIR_OK && it) children[nchildren++] = it;
    }
    /* Live tables the directory does not hold. */
    if (rc == WEIR_OK && s.have_manifest) {
        const version *v = s.vs->current;
        for (int l = 0; l < NUM_LEVELS; l++)
            for (int i = 0; i < v->num_files[l]; i++) {
                int present = 0;
                for (size_t j = 0; j < ntables && !present; j++) present = tables[j] == v->files[l][i]->number;
                if (present) continue;
                char lo[200], hi[200], name[64];
                describe_key(lo, sizeof lo, ikey_user(buf_slice(&v->files[l][i]->smallest)));
                describe_key(hi, sizeof hi, ikey_user(buf_slice(&v->files[l][i]->largest)));
                snprintf(name, sizeof name, "%06" PRIu64 ".sst", v->files[l][i]->number);
                say(&s, WEIR_REPORT_DAMAGE, name,
                    "missing (level %d, %" PRIu64 " entries): keys \"%s\" .. \"%s\" that no other "
                    "source holds are gone", l, v->files[l][i]->num_entries, lo, hi);
            }
    }

    /* Write the new DB. */
    table_cache *out_tc = NULL;
    version_set *out_vs = NULL;
    version_edit edit;
    version_edit_init(&edit);
    iter *merged = NULL;
    if (rc == WEIR_OK) {
        merged = merging_iter_create(children, nchildren);
        nchildren = 0; /* owned by the merge now, also on failure */
        if (!merged) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
    }
    if (rc == WEIR_OK) {
        out_tc = table_cache_create(s.env, dst, 64);
        vset_options vo = {UINT64_C(256) << 20, UINT64_C(64) << 20, 4};
        out_vs = out_tc ? vset_create(s.env, dst, out_tc, &vo) : NULL;
        if (!out_vs) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
    }
    if (rc == WEIR_OK) rc = vset_create_new_db(out_vs);
    output o;
    memset(&o, 0, sizeof o);
    o.s = &s;
    o.opts = opts;
    o.edit = &edit;
    o.vs = out_vs;
    o.target = opts ? opts->target_file_size : UINT64_C(64) << 20;
    if (rc == WEIR_OK) rc = write_tables(&s, &o, merged);
    buf_free(&o.smallest);
    buf_free(&o.largest);
    if (merged) iter_destroy(merged);
    /* Range tombstones: the manifest's and the logs'. */
    uint64_t tombs = 0;
    if (rc == WEIR_OK && s.have_manifest && s.vs->current->tombs) {
        const tomb_set *t = s.vs->current->tombs;
        for (int i = 0; i < t->n && rc == WEIR_OK; i++, tombs++) {
            rc = version_edit_add_range_tombstone(&edit, t->v[i].seq, buf_slice(&t->v[i].start),
                                                  buf_slice(&t->v[i].end));
            if (t->v[i].seq > s.max_seq) s.max_seq = t->v[i].seq;
        }
    }
    for (const range_tomb *t = s.logged ? memtable_range_tombstones(s.logged) : NULL; t && rc == WEIR_OK;
         t = t->next, tombs++)
        rc = version_edit_add_range_tombstone(&edit, t->seq, t->start, t->end);
    if (rc == WEIR_OK) {
        out_vs->last_sequence = s.max_seq;
        uint64_t no_log = vset_new_file_number(out_vs);
        version_edit_set_log(&edit, no_log, s.max_seq + 1);
        rc = vset_log_and_apply(out_vs, &edit, NULL);
    }
    if (rc == WEIR_OK) {
        version_edit seal;
        version_edit_init(&seal);
        version_edit_set_clean_close(&seal, s.max_seq, 0);
        rc = vset_log_and_apply(out_vs, &seal, NULL);
        version_edit_free(&seal);
    }
    version_edit_free(&edit);
    if (out_vs) vset_destroy(out_vs);
    if (out_tc) table_cache_destroy(out_tc);
    for (int i = 0; i < nchildren; i++) iter_destroy(children[i]);
    free(children);
    free(tables);
    free(logs);
    if (s.logged) memtable_unref(s.logged);
    if (s.vs) vset_destroy(s.vs);
    if (s.tc) table_cache_destroy(s.tc);
    s.env->ops->unlock_file(s.env, lock_fd);
    if (rc != WEIR_OK) return rc;

    /* Prove the result opens and holds what was written. */
    weir_options *ro = weir_options_create();
    weir_db *check = NULL;
    if (ro) {
        weir_options_set_read_only(ro, 1);
        weir_options_set_create_if_missing(ro, 0);
        rc = weir_open(dst, ro, &check);
        weir_options_destroy(ro);
    } else {
        rc = weir_set_error(WEIR_NO_MEMORY, "out of memory salvaging");
    }
    if (rc != WEIR_OK) return weir_wrap_error(rc, "the salvaged database %s does not open", dst);
    weir_close(check);
    say(&s, s.losses ? WEIR_REPORT_WARN : WEIR_REPORT_OK, "database",
        "%" PRIu64 " entries written to %s (%" PRIu64 " duplicate(s) merged), %" PRIu64
        " range tombstone(s), sequences up to %" PRIu64 "; %d loss(es) reported above",
        s.entries_out, dst, s.duplicates, tombs, s.max_seq, s.losses);
    if (s.losses)
        return weir_set_error(WEIR_CORRUPTION,
                              "salvaged %" PRIu64 " entries from %s into %s, but %d part(s) could not "
                              "be recovered (see the report)",
                              s.entries_out, src, dst, s.losses);
    return WEIR_OK;
}
