/*
 * inspect.c -- weir_check: every file of a DB and its write history
 * checked without changing anything, each finding reported through a
 * callback (the `weir check` command is a thin front end over it).
 *
 * Per file: CURRENT must name a manifest that exists; every manifest record
 * must checksum and decode, and the live one must replay to a consistent
 * version; every table block must checksum and its keys be in order, and a
 * listed table must have the size, entry count and key range the manifest
 * recorded; every log record must checksum and decode as a write batch.
 * Then the history: a read-only recovery applies the recovery rules
 * (recovery.c) across manifest and logs, which no per-file look can.
 * Logs and manifests are read with inspect_log_walk (dump.c), the walker
 * the `weir dump-log` command prints from.
 *
 * Levels (weir.h): a torn tail at the crash point, or a hole a power cut
 * left in unsynced writes, is WARN (only what the sync mode allows is
 * dropped); anything that loses or changes acknowledged data is DAMAGE.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db_impl.h"
#include "filename.h"
#include "inspect.h"
#include "sst.h"

typedef struct live_table {
    uint64_t number, size, entries;
    int level;
    buf smallest, largest;
} live_table;

typedef struct checker {
    weir_env *env;
    const char *dir;
    weir_report_fn fn;
    void *arg;
    int damage, errors;
    weir_error first_damage;
    /* From the live manifest, when it replays. */
    int have_live, sealed;
    uint64_t log_number, next_file, last_sequence;
    live_table *tables;
    size_t ntables;
} checker;

static void report(checker *c, int level, const char *file, const char *fmt, ...) WEIR_PRINTF(4, 5);
static void report(checker *c, int level, const char *file, const char *fmt, ...) {
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level == WEIR_REPORT_DAMAGE && c->damage++ == 0) {
        weir_set_error(WEIR_CORRUPTION, "%s: %s", file, msg);
        weir_error_save(&c->first_damage, WEIR_CORRUPTION);
    }
    if (level == WEIR_REPORT_ERROR) c->errors++;
    if (c->fn) c->fn(c->arg, level, file, msg);
}

/* An engine failure on a file: damage, or a failure to read it. */
static void report_failure(checker *c, const char *file, int rc) {
    report(c, rc == WEIR_CORRUPTION ? WEIR_REPORT_DAMAGE : WEIR_REPORT_ERROR, file, "%s",
           weir_errmsg());
}

typedef struct number_list {
    uint64_t *v;
    size_t n, cap;
} number_list;

static int add_number(number_list *l, uint64_t x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return weir_set_error(WEIR_NO_MEMORY, "out of memory listing files");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return WEIR_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void sort_numbers(number_list *l) {
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_u64);
}

/* ---- manifests ---------------------------------------------------------------- */

/* Replay the live manifest the way recovery does; remember its tables. */
static int load_live_version(checker *c) {
    table_cache *tc = table_cache_create(c->env, c->dir, 16);
    if (!tc) return weir_set_error(WEIR_NO_MEMORY, "out of memory");
    vset_options vo = {UINT64_C(256) << 20, UINT64_C(64) << 20, 4};
    version_set *vs = vset_create(c->env, c->dir, tc, &vo);
    if (!vs) {
        table_cache_destroy(tc);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory");
    }
    int rc = vset_recover(vs);
    if (rc == WEIR_OK) {
        version *v = vs->current;
        size_t n = 0;
        for (int level = 0; level < NUM_LEVELS; level++) n += (size_t)v->num_files[level];
        c->tables = calloc(n ? n : 1, sizeof *c->tables);
        if (!c->tables) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory");
        for (int level = 0; level < NUM_LEVELS && rc == WEIR_OK; level++) {
            for (int i = 0; i < v->num_files[level] && rc == WEIR_OK; i++) {
                file_meta *f = v->files[level][i];
                live_table *t = &c->tables[c->ntables++];
                t->number = f->number;
                t->size = f->size;
                t->entries = f->num_entries;
                t->level = level;
                if (buf_set(&t->smallest, f->smallest.data, f->smallest.len) != 0 ||
                    buf_set(&t->largest, f->largest.data, f->largest.len) != 0)
                    rc = weir_set_error(WEIR_NO_MEMORY, "out of memory");
            }
        }
        c->have_live = rc == WEIR_OK;
        c->sealed = vs->recovered.clean_close;
        c->log_number = vs->log_number;
        c->next_file = vs->recovered.next_file;
        c->last_sequence = vs->last_sequence;
    }
    vset_destroy(vs);
    table_cache_destroy(tc);
    return rc;
}

static void check_manifest(checker *c, const char *name, const char *path, int live) {
    inspect_log_summary s;
    int rc = inspect_log_walk(path, INSPECT_LOG_MANIFEST, NULL, &s);
    if (rc != WEIR_OK) {
        report_failure(c, name, rc);
        return;
    }
    if (!live) {
        report(c, WEIR_REPORT_NOTE, name,
               "not named by CURRENT (left by a crash while switching manifests; unused): %" PRIu64
               " record(s)",
               s.records);
        return;
    }
    rc = load_live_version(c);
    if (rc != WEIR_OK) {
        if (s.dropped) weir_wrap_error(rc, "after dropping a damaged or incomplete last record");
        report_failure(c, name, rc);
        return;
    }
    char details[300];
    snprintf(details, sizeof details,
             "live; %" PRIu64 " record(s), %zu table(s), log number %" PRIu64 ", last sequence %" PRIu64
             "%s",
             s.records, c->ntables, c->log_number, c->last_sequence,
             c->sealed ? ", closed cleanly" : ", not closed cleanly");
    if (s.dropped)
        report(c, WEIR_REPORT_WARN, name,
               "torn tail: %" PRIu64 " bytes at offset %" PRIu64 " dropped (an interrupted manifest "
               "write; the history check below tells whether anything depended on it); %s",
               s.dropped, s.valid_end, details);
    else
        report(c, WEIR_REPORT_OK, name, "%s", details);
}

/* ---- tables --------------------------------------------------------------------- */

static const live_table *find_live(const checker *c, uint64_t number) {
    for (size_t i = 0; i < c->ntables; i++)
        if (c->tables[i].number == number) return &c->tables[i];
    return NULL;
}

static int key_range(sst_reader *r, buf *first, buf *last) {
    iter *it = sst_reader_iter(r, NULL, NULL);
    if (!it) return weir_set_error(WEIR_NO_MEMORY, "out of memory");
    int rc = WEIR_OK;
    iter_seek_first(it);
    if (iter_valid(it) && buf_set(first, iter_key(it).data, iter_key(it).len) != 0) rc = WEIR_NO_MEMORY;
    iter_seek_last(it);
    if (rc == WEIR_OK && iter_valid(it) && buf_set(last, iter_key(it).data, iter_key(it).len) != 0)
        rc = WEIR_NO_MEMORY;
    if (rc == WEIR_OK) rc = iter_status(it);
    else rc = weir_set_error(WEIR_NO_MEMORY, "out of memory");
    iter_destroy(it);
    return rc;
}

static void check_table(checker *c, const char *name, const char *path, uint64_t number) {
    const live_table *meta = find_live(c, number);
    /* A table nothing uses: its damage loses nothing. */
    int bad = meta ? WEIR_REPORT_DAMAGE : WEIR_REPORT_NOTE;
    const char *unused = !c->have_live ? "no readable manifest to compare it with"
                         : number >= c->next_file
                             ? "not in the manifest, newer than it: the output of a flush or compaction "
                               "whose manifest record was never written (kept; weir salvage uses it)"
                             : "not in the manifest: an obsolete leftover (unused; deleted by the next "
                               "read-write open)";
    uint64_t size;
    int rc = c->env->ops->file_size(c->env, path, &size);
    if (rc != WEIR_OK) {
        report_failure(c, name, rc);
        return;
    }
    if (meta && size != meta->size) {
        report(c, bad, name, "%" PRIu64 " bytes but the manifest recorded %" PRIu64
               " (a truncated, extended or swapped file)", size, meta->size);
        return;
    }
    sst_reader *r;
    rc = sst_reader_open(c->env, path, size, &r);
    if (rc == WEIR_OK) {
        rc = sst_reader_verify(r);
        if (rc != WEIR_OK) sst_reader_close(r);
    }
    if (rc != WEIR_OK) {
        if (meta || rc != WEIR_CORRUPTION) report_failure(c, name, rc);
        else report(c, WEIR_REPORT_NOTE, name, "%s; %s", weir_errmsg(), unused);
        return;
    }
    uint64_t entries = sst_reader_num_entries(r), blocks = sst_reader_num_blocks(r);
    if (meta && entries != meta->entries) {
        report(c, bad, name, "holds %" PRIu64 " entries but the manifest recorded %" PRIu64
               " (a swapped or replaced file)", entries, meta->entries);
    } else if (meta) {
        buf first = BUF_INIT, last = BUF_INIT;
        rc = key_range(r, &first, &last);
        if (rc != WEIR_OK)
            report_failure(c, name, rc);
        else if (!slice_equal(buf_slice(&first), buf_slice(&meta->smallest)) ||
                 !slice_equal(buf_slice(&last), buf_slice(&meta->largest)))
            report(c, bad, name, "its key range differs from the one the manifest recorded (a swapped or "
                   "replaced file)");
        else
            report(c, WEIR_REPORT_OK, name,
                   "level %d, %" PRIu64 " entries, %" PRIu64 " data blocks, %" PRIu64 " bytes",
                   meta->level, entries, blocks, size);
        buf_free(&first);
        buf_free(&last);
    } else {
        report(c, WEIR_REPORT_NOTE, name, "%" PRIu64 " entries, %" PRIu64 " data blocks, %" PRIu64
               " bytes, intact; %s", entries, blocks, size, unused);
    }
    sst_reader_close(r);
}

/* ---- logs ------------------------------------------------------------------------ */

static void check_log(checker *c, const char *name, const char *path, uint64_t number, int newest) {
    inspect_log_summary s;
    int rc = inspect_log_walk(path, INSPECT_LOG_WAL, NULL, &s);
    if (rc != WEIR_OK) {
        report_failure(c, name, rc);
        return;
    }
    int obsolete = c->have_live && number < c->log_number;
    char details[300];
    if (s.ops)
        snprintf(details, sizeof details,
                 "%" PRIu64 " record(s), %" PRIu64 " write(s), sequences %" PRIu64 "..%" PRIu64 "%s",
                 s.records, s.ops, s.first_seq, s.last_seq,
                 obsolete ? "; already in tables (obsolete)" : "");
    else
        snprintf(details, sizeof details, "%" PRIu64 " record(s)%s", s.records,
                 obsolete ? "; obsolete" : "");
    if (!s.dropped) {
        report(c, obsolete ? WEIR_REPORT_NOTE : WEIR_REPORT_OK, name, "%s", details);
        return;
    }
    int all_zero_or_partial = s.records > 0 || s.size - s.valid_end < LOG_BLOCK_SIZE;
    if (obsolete)
        report(c, WEIR_REPORT_NOTE, name, "damaged or incomplete end (%" PRIu64 " bytes at offset %" PRIu64
               "), in a log whose writes are already in tables; %s", s.dropped, s.valid_end, details);
    else if (c->sealed)
        report(c, WEIR_REPORT_DAMAGE, name,
               "%" PRIu64 " bytes at offset %" PRIu64 " are damaged or incomplete, but the database "
               "was closed cleanly, so this is no torn write: writes stored there are lost; %s",
               s.dropped, s.valid_end, details);
    else if (!all_zero_or_partial)
        report(c, WEIR_REPORT_DAMAGE, name,
               "no valid record at all in %" PRIu64 " bytes: this is not a weir log, or it is damaged "
               "from its start", s.size);
    else
        report(c, WEIR_REPORT_WARN, name,
               "torn tail: %" PRIu64 " bytes at offset %" PRIu64 " dropped (%s; nothing valid follows "
               "in this log); %s",
               s.dropped, s.valid_end,
               newest ? "an interrupted write at the crash point, never acknowledged as durable"
                      : "the history check below tells whether a later log depends on it",
               details);
}

/* ---- the history -------------------------------------------------------------------- */

static void check_history(checker *c) {
    weir_options *o = weir_options_create();
    if (!o) {
        report(c, WEIR_REPORT_ERROR, "database", "out of memory");
        return;
    }
    weir_options_set_read_only(o, 1);
    weir_options_set_create_if_missing(o, 0);
    weir_db *db = NULL;
    int rc = weir_open(c->dir, o, &db);
    weir_options_destroy(o);
    if (rc == WEIR_BUSY) {
        report(c, WEIR_REPORT_NOTE, "database",
               "open for writing by another process, so the history across files was not checked "
               "(run weir check on a closed database for a definitive answer)");
        return;
    }
    if (rc != WEIR_OK) {
        report(c, rc == WEIR_CORRUPTION ? WEIR_REPORT_DAMAGE : WEIR_REPORT_ERROR, "database",
               "recovery refuses it: %s", weir_errmsg());
        return;
    }
    char *note = NULL;
    weir_property(db, "weir.recovery", &note);
    const char *text = note ? note : "";
    int dropped = strstr(text, "torn tail") || strstr(text, "history cut");
    report(c, dropped ? WEIR_REPORT_WARN : WEIR_REPORT_OK, "database",
           "history consistent, recovery would serve it: %s", text);
    weir_free(note);
    weir_close(db);
}

/* ---- weir_check --------------------------------------------------------------------- */

static void check_current(checker *c, const number_list *manifests, uint64_t *live, int *have_live_name) {
    char path[PATH_MAX];
    buf contents = BUF_INIT;
    current_file_path(path, sizeof path, c->dir);
    *have_live_name = 0;
    int rc = env_read_file(c->env, path, &contents);
    if (rc != WEIR_OK) {
        report_failure(c, "CURRENT", rc);
        buf_free(&contents);
        return;
    }
    char name[64];
    size_t len = contents.len;
    int ok = len >= 2 && len < sizeof name && contents.data[len - 1] == '\n';
    if (ok) {
        memcpy(name, contents.data, len - 1);
        name[len - 1] = '\0';
        ok = strlen(name) == len - 1 && parse_file_name(name, live) == FILE_MANIFEST;
    }
    buf_free(&contents);
    int exists = 0;
    for (size_t i = 0; ok && i < manifests->n; i++) exists |= manifests->v[i] == *live;
    if (!ok)
        report(c, WEIR_REPORT_DAMAGE, "CURRENT",
               "does not name a manifest (expected \"MANIFEST-NNNNNN\" and a newline, %zu bytes found)",
               len);
    else if (!exists)
        report(c, WEIR_REPORT_DAMAGE, "CURRENT", "names %s, which does not exist", name);
    else {
        *have_live_name = 1;
        report(c, WEIR_REPORT_OK, "CURRENT", "names %s", name);
    }
}

int weir_check(const char *path, weir_report_fn fn, void *arg) {
    if (!path || !*path) return weir_set_error(WEIR_INVALID, "weir_check: path is NULL or empty");
    struct stat st;
    if (stat(path, &st) != 0) return weir_set_errno(errno, "weir_check: cannot read", path);
    if (!S_ISDIR(st.st_mode)) return weir_set_error(WEIR_INVALID, "weir_check: %s is not a directory", path);
    checker c;
    memset(&c, 0, sizeof c);
    c.env = env_posix();
    c.dir = path;
    c.fn = fn;
    c.arg = arg;
    env_dirent_list names = {0};
    int rc = c.env->ops->list_dir(c.env, path, &names);
    if (rc != WEIR_OK) return rc;
    number_list logs = {0}, tables = {0}, manifests = {0}, set_aside = {0};
    int has_current = 0;
    for (size_t i = 0; i < names.count && rc == WEIR_OK; i++) {
        uint64_t number = 0;
        switch (parse_file_name(names.names[i], &number)) {
        case FILE_LOG: rc = add_number(&logs, number); break;
        case FILE_TABLE: rc = add_number(&tables, number); break;
        case FILE_MANIFEST: rc = add_number(&manifests, number); break;
        case FILE_UNREPLAYED_LOG: rc = add_number(&set_aside, number); break;
        case FILE_CURRENT: has_current = 1; break;
        case FILE_UNKNOWN:
            report(&c, WEIR_REPORT_NOTE, names.names[i], "not a weir file (left alone)");
            break;
        default: break; /* LOCK, temporary files */
        }
    }
    env_dirent_list_free(&names);
    sort_numbers(&logs);
    sort_numbers(&tables);
    sort_numbers(&manifests);
    sort_numbers(&set_aside);
    if (rc == WEIR_OK && !has_current && !logs.n && !tables.n && !manifests.n)
        rc = weir_set_error(WEIR_INVALID, "%s is not a weir database (no CURRENT, manifest, table or log "
                            "file)", path);
    if (rc == WEIR_OK) {
        char fpath[PATH_MAX];
        uint64_t live = 0;
        int have_live_name = 0;
        if (has_current)
            check_current(&c, &manifests, &live, &have_live_name);
        else
            report(&c, WEIR_REPORT_DAMAGE, "CURRENT", "missing, but %s holds weir files", path);
        for (size_t i = 0; i < manifests.n; i++) {
            manifest_file_path(fpath, sizeof fpath, path, manifests.v[i]);
            check_manifest(&c, strrchr(fpath, '/') + 1, fpath, have_live_name && manifests.v[i] == live);
        }
        /* Tables the manifest lists that are not there. */
        for (size_t i = 0; i < c.ntables; i++) {
            int present = 0;
            for (size_t j = 0; j < tables.n && !present; j++) present = tables.v[j] == c.tables[i].number;
            if (present) continue;
            table_file_path(fpath, sizeof fpath, path, c.tables[i].number);
            report(&c, WEIR_REPORT_DAMAGE, strrchr(fpath, '/') + 1,
                   "listed in the manifest (level %d, %" PRIu64 " bytes) but missing", c.tables[i].level,
                   c.tables[i].size);
        }
        for (size_t i = 0; i < tables.n; i++) {
            table_file_path(fpath, sizeof fpath, path, tables.v[i]);
            check_table(&c, strrchr(fpath, '/') + 1, fpath, tables.v[i]);
        }
        for (size_t i = 0; i < logs.n; i++) {
            log_file_path(fpath, sizeof fpath, path, logs.v[i]);
            check_log(&c, strrchr(fpath, '/') + 1, fpath, logs.v[i], i + 1 == logs.n);
        }
        for (size_t i = 0; i < set_aside.n; i++) {
            unreplayed_log_path(fpath, sizeof fpath, path, set_aside.v[i]);
            report(&c, WEIR_REPORT_NOTE, strrchr(fpath, '/') + 1,
                   "set aside by recovery: written after a hole a power cut left in unsynced writes, "
                   "so never replayed (remove it when you no longer need it)");
        }
        if (has_current) check_history(&c);
    }
    for (size_t i = 0; i < c.ntables; i++) {
        buf_free(&c.tables[i].smallest);
        buf_free(&c.tables[i].largest);
    }
    free(c.tables);
    free(logs.v);
    free(tables.v);
    free(manifests.v);
    free(set_aside.v);
    if (rc != WEIR_OK) return rc;
    if (c.damage) return weir_error_raise(&c.first_damage);
    if (c.errors)
        return weir_set_error(WEIR_IO_ERROR, "%s: %d file(s) could not be read", path, c.errors);
    return WEIR_OK;
}
