/*
 * corrupt_campaign.c -- damage a DB's files in every way a disk, a person
 * or a broken copy can, and check each outcome against the acknowledged
 * history (docs/RELIABILITY.md, "The corruption campaign").
 *
 * Templates: a DB written through a known history of batches (puts,
 * deletes, range deletes, int64 counters), with several tables, a
 * multi-record manifest and two logs, made with each compression setting,
 * once closed cleanly and once as a crash image (a copy taken while it was
 * open, every write handed to the OS, nothing closed). Each mutation copies
 * one template, damages one file (bit and byte flips, zeroed ranges,
 * truncation anywhere and at record boundaries, appended bytes, deletion,
 * a duplicate under another number, two files swapped, a file replaced by
 * its stale earlier version), opens the copy (read-write or read-only, in
 * turn), reads everything and classifies the outcome:
 *
 *   error at open / error at read  a status with a message naming a file
 *   right data                     exactly the acknowledged final state
 *   allowed prefix                 a crash image whose newest logs lost
 *                                  their end: exactly the state after the
 *                                  last intact record before the damage
 *                                  (the torn-tail rule; the power-cut hole
 *                                  rule for an older log)
 *   SILENTLY WRONG                 anything else: the campaign fails
 *
 * Every tenth mutation also runs weir_check on the damaged copy, which must
 * not call a store healthy that open refused as corrupt.
 *
 *   corrupt_campaign [--mutations N] [--seed S] [--table]
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db_impl.h"
#include "env_fault.h"
#include "filename.h"
#include "wal.h"
#include "weir.h"

/* ---- small utilities ------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }

static void die(const char *what) {
    fprintf(stderr, "corrupt_campaign: %s: %s\n", what, weir_errmsg());
    exit(2);
}

static int read_file(const char *path, unsigned char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(n > 0 ? (size_t)n : 1);
    if (!d) abort();
    size_t got = n > 0 ? fread(d, 1, (size_t)n, f) : 0;
    fclose(f);
    *data = d;
    *len = got;
    return 0;
}

static int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    return fclose(f) == 0 && put == len ? 0 : -1;
}

static void rmtree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1200];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void copy_dir(const char *src, const char *dst) {
    mkdir(dst, 0755);
    DIR *d = opendir(src);
    struct dirent *e;
    char a[1200], b[1200];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        unsigned char *data;
        size_t len;
        if (read_file(a, &data, &len) == 0) {
            write_file(b, data, len);
            free(data);
        }
    }
    if (d) closedir(d);
}

/* ---- the model ------------------------------------------------------------------- */

#define NKEYS 300
#define NCOUNTERS 20
#define MAX_OPS 40000

enum { OP_PUT, OP_DEL, OP_RANGE, OP_ADD };

typedef struct op {
    uint64_t seq;
    int kind;
    int key, key2;   /* key index; key2: range end (exclusive) */
    int64_t delta;
    unsigned char vlen;
    char value[128];
} op;

/* Keys sort as "c.." counters then "k.." plain keys. */
static void key_name(int key, char *out) {
    if (key >= NKEYS) snprintf(out, 16, "c%03d", key - NKEYS);
    else snprintf(out, 16, "k%04d", key);
}

typedef struct state {
    int present[NKEYS + NCOUNTERS];
    unsigned char vlen[NKEYS + NCOUNTERS];
    char value[NKEYS + NCOUNTERS][128];
    int64_t counter[NKEYS + NCOUNTERS];
} state;

/* The state after every op with a sequence <= upto. */
static void state_at(const op *ops, size_t nops, uint64_t upto, state *s) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < nops && ops[i].seq <= upto; i++) {
        const op *o = &ops[i];
        switch (o->kind) {
        case OP_PUT:
            s->present[o->key] = 1;
            s->vlen[o->key] = o->vlen;
            memcpy(s->value[o->key], o->value, o->vlen);
            break;
        case OP_DEL: s->present[o->key] = 0; break;
        case OP_ADD:
            if (!s->present[o->key]) s->counter[o->key] = 0;
            s->present[o->key] = 1;
            s->counter[o->key] += o->delta;
            break;
        case OP_RANGE: {
            char lo[16], hi[16], k[16];
            snprintf(lo, sizeof lo, "k%04d", o->key);
            snprintf(hi, sizeof hi, "k%04d", o->key2);
            for (int i2 = 0; i2 < NKEYS + NCOUNTERS; i2++) {
                key_name(i2, k);
                if (strcmp(k, lo) >= 0 && strcmp(k, hi) < 0) s->present[i2] = 0;
            }
            break;
        }
        }
    }
}

/* The DB's visible state. WEIR_OK, or the read error. */
static int visible_state(weir_db *db, state *s) {
    memset(s, 0, sizeof *s);
    weir_iter *it;
    int rc = weir_iter_create(db, NULL, &it);
    if (rc != WEIR_OK) return rc;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
        size_t kl, vl;
        const char *k = weir_iter_key(it, &kl);
        const char *v = weir_iter_value(it, &vl);
        char name[16];
        if (kl >= sizeof name) continue;
        memcpy(name, k, kl);
        name[kl] = '\0';
        int idx = -1;
        if (name[0] == 'k') idx = atoi(name + 1);
        else if (name[0] == 'c') idx = NKEYS + atoi(name + 1);
        if (idx < 0 || idx >= NKEYS + NCOUNTERS) {
            s->present[0] = 2; /* a key that was never written: never equal */
            continue;
        }
        s->present[idx] = 1;
        if (idx >= NKEYS) {
            if (vl == 8) memcpy(&s->counter[idx], v, 8);
            else s->counter[idx] = INT64_MIN;
        } else {
            s->vlen[idx] = (unsigned char)(vl < 128 ? vl : 127);
            memcpy(s->value[idx], v, s->vlen[idx]);
        }
    }
    rc = weir_iter_status(it);
    weir_iter_destroy(it);
    return rc;
}

static int same_state(const state *a, const state *b) {
    for (int i = 0; i < NKEYS + NCOUNTERS; i++) {
        if (a->present[i] != b->present[i]) return 0;
        if (!a->present[i]) continue;
        if (i >= NKEYS) {
            if (a->counter[i] != b->counter[i]) return 0;
        } else if (a->vlen[i] != b->vlen[i] || memcmp(a->value[i], b->value[i], a->vlen[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* ---- templates -------------------------------------------------------------------- */

typedef struct log_record {
    uint64_t start, end;        /* byte range in its log */
    uint64_t first_seq, last_seq;
} log_record;

typedef struct log_info {
    uint64_t number;
    log_record *recs;
    size_t nrecs;
} log_info;

typedef struct template {
    char dir[600];       /* the DB files */
    char stale[600];     /* the same DB earlier in its history */
    const char *name;
    int crashed;
    op *ops;
    size_t nops;
    uint64_t last_seq;
    state final;
    log_info logs[8];
    int nlogs;
} template;

static void write_batch(weir_db *db, template *t, int nops_in_batch) {
    weir_batch *b = weir_batch_create();
    for (int i = 0; i < nops_in_batch && t->nops < MAX_OPS; i++) {
        op *o = &t->ops[t->nops];
        memset(o, 0, sizeof *o);
        uint64_t r = below(100);
        char k[16], k2[16];
        if (r < 15) {
            o->kind = OP_ADD;
            o->key = NKEYS + (int)below(NCOUNTERS);
            o->delta = (int64_t)below(1000) - 300;
            key_name(o->key, k);
            weir_batch_merge(b, k, strlen(k), WEIR_MERGE_INT64_ADD, &o->delta, 8);
        } else if (r < 30) {
            o->kind = OP_DEL;
            o->key = (int)below(NKEYS);
            key_name(o->key, k);
            weir_batch_delete(b, k, strlen(k));
        } else if (r < 32) {
            /* [k<key>, k<key2>): key2 may be NKEYS, past every plain key. */
            o->kind = OP_RANGE;
            o->key = (int)below(NKEYS);
            o->key2 = o->key + 1 + (int)below(20);
            if (o->key2 > NKEYS) o->key2 = NKEYS;
            snprintf(k, sizeof k, "k%04d", o->key);
            snprintf(k2, sizeof k2, "k%04d", o->key2);
            weir_batch_delete_range(b, k, strlen(k), k2, strlen(k2));
        } else {
            o->kind = OP_PUT;
            o->key = (int)below(NKEYS);
            o->vlen = (unsigned char)(1 + below(120));
            for (int j = 0; j < o->vlen; j++) o->value[j] = (char)('a' + below(26));
            key_name(o->key, k);
            weir_batch_put(b, k, strlen(k), o->value, o->vlen);
        }
        t->nops++;
        o->seq = ++t->last_seq;
    }
    if (weir_write(db, NULL, b) != WEIR_OK) die("writing a template batch");
    weir_batch_destroy(b);
}

static void record_logs(template *t) {
    DIR *d = opendir(t->dir);
    struct dirent *e;
    t->nlogs = 0;
    while (d && (e = readdir(d)) != NULL && t->nlogs < 8) {
        uint64_t n;
        if (parse_file_name(e->d_name, &n) != FILE_LOG) continue;
        log_info *li = &t->logs[t->nlogs++];
        li->number = n;
        li->recs = NULL;
        li->nrecs = 0;
        char path[1200];
        log_file_path(path, sizeof path, t->dir, n);
        log_reader *r;
        if (log_reader_open(env_posix(), path, &r) != WEIR_OK) continue;
        buf scratch = BUF_INIT;
        slice rec;
        size_t cap = 0;
        while (log_reader_next(r, &scratch, &rec) == WEIR_OK) {
            if (li->nrecs == cap) {
                cap = cap ? cap * 2 : 64;
                li->recs = realloc(li->recs, cap * sizeof *li->recs);
            }
            log_record *lr = &li->recs[li->nrecs++];
            lr->start = log_reader_record_offset(r);
            lr->end = log_reader_valid_end(r);
            lr->first_seq = decode_fixed64(rec.data) & ((UINT64_C(1) << 56) - 1);
            lr->last_seq = lr->first_seq + decode_fixed32(rec.data + 8) - 1;
        }
        buf_free(&scratch);
        log_reader_close(r);
    }
    if (d) closedir(d);
}

static void build_template(template *t, const char *base, const char *name, int codec, int crashed) {
    t->name = name;
    t->crashed = crashed;
    t->ops = calloc(MAX_OPS, sizeof *t->ops);
    snprintf(t->dir, sizeof t->dir, "%s/%s", base, name);
    snprintf(t->stale, sizeof t->stale, "%s/%s-stale", base, name);
    char live[700];
    snprintf(live, sizeof live, "%s/%s-live", base, name);
    fault_env *fe = fault_env_create(NULL);
    weir_options *o = weir_options_create();
    weir_options_set_env(o, fault_env_env(fe));
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_options_set_target_file_size(o, 64 * 1024);
    weir_options_set_max_bytes_for_level_base(o, 256 * 1024);
    weir_options_set_compression(o, codec);
    weir_db *db;
    if (weir_open(live, o, &db) != WEIR_OK) die("opening a template");
    /* Phase 1: enough history for tables on two levels and a manifest of
     * many records; flushes along the way. */
    for (int i = 0; i < 900; i++) {
        write_batch(db, t, 1 + (int)below(6));
        if (i % 300 == 299 && weir_flush(db) != WEIR_OK) die("flushing a template");
    }
    if (weir_compact_range(db, NULL, 0, NULL, 0) != WEIR_OK) die("compacting a template");
    for (int i = 0; i < 200; i++) write_batch(db, t, 1 + (int)below(6));
    if (weir_flush(db) != WEIR_OK) die("flushing a template");
    /* The stale copy: the DB as it was a while ago (files of the same
     * names with older contents). */
    copy_dir(live, t->stale);
    /* Phase 2: from now on no table can be created, so the memtable that
     * fills keeps its log: two logs, and no background work changes files
     * while the crash image is copied. */
    fault_rule r = {FAULT_BIT(FAULT_OP_CREATE), ".sst", 1, FAULT_FAIL, ENOSPC, 1};
    fault_env_set_rule(fe, &r);
    int logs = 0;
    for (int i = 0; i < 3000 && logs < 2; i++) {
        write_batch(db, t, 1 + (int)below(6));
        DIR *d = opendir(live);
        struct dirent *e;
        logs = 0;
        while (d && (e = readdir(d)) != NULL) logs += parse_file_name(e->d_name, NULL) == FILE_LOG;
        if (d) closedir(d);
    }
    for (int i = 0; i < 40; i++) write_batch(db, t, 1 + (int)below(6));
    char *seq = NULL;
    weir_property(db, "weir.last-sequence", &seq);
    if (!seq || strtoull(seq, NULL, 10) != t->last_seq) {
        fprintf(stderr, "corrupt_campaign: sequence bookkeeping is off (%s vs %" PRIu64 ")\n",
                seq ? seq : "?", t->last_seq);
        exit(2);
    }
    weir_free(seq);
    if (crashed) copy_dir(live, t->dir);
    fault_env_clear_rule(fe);
    if (weir_close(db) != WEIR_OK) die("closing a template");
    if (!crashed) copy_dir(live, t->dir);
    weir_options_destroy(o);
    fault_env_destroy(fe);
    rmtree(live);
    state_at(t->ops, t->nops, t->last_seq, &t->final);
    record_logs(t);
}

/* ---- mutations -------------------------------------------------------------------- */

enum {
    M_BITFLIP, M_BYTE, M_ZERO, M_TRUNC, M_TRUNC_RECORD, M_APPEND, M_DELETE, M_DUPLICATE, M_SWAP,
    M_STALE, M_KINDS
};
static const char *const mutation_names[M_KINDS] = {
    "bit flip",   "byte set",  "zeroed range", "truncation",         "truncation at a record",
    "appended",   "deleted",   "duplicated",   "swapped with another", "replaced by a stale copy"};

enum { T_CURRENT, T_MANIFEST, T_LOG, T_TABLE, T_LOCK, T_TYPES };
static const char *const type_names[T_TYPES] = {"CURRENT", "MANIFEST", "log", "table", "LOCK"};

enum { O_ERROR_OPEN, O_ERROR_READ, O_RIGHT, O_PREFIX, O_WRONG, O_OUTCOMES };
static const char *const outcome_names[O_OUTCOMES] = {"clean error at open", "clean error at read",
                                                      "right data", "allowed prefix",
                                                      "SILENTLY WRONG"};

typedef struct mutation {
    int kind, type;
    char file[64];
    uint64_t number;     /* of a log */
    uint64_t from, to;   /* damaged byte range of the file (to: exclusive; UINT64_MAX: to its end) */
    int prefix_ok;       /* a crash image's log damaged with nothing intact after */
    uint64_t prefix_seq; /* then: the state it may hold */
} mutation;

static int type_of(const char *name) {
    switch (parse_file_name(name, NULL)) {
    case FILE_CURRENT: return T_CURRENT;
    case FILE_MANIFEST: return T_MANIFEST;
    case FILE_LOG: return T_LOG;
    case FILE_TABLE: return T_TABLE;
    case FILE_LOCK: return T_LOCK;
    default: return -1;
    }
}

/* Files of the copy, by type. */
static int pick_file(const char *dir, int type, char *out) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char names[64][64];
    int n = 0;
    while (d && (e = readdir(d)) != NULL && n < 64)
        if (type_of(e->d_name) == type) snprintf(names[n++], 64, "%s", e->d_name);
    if (d) closedir(d);
    if (!n) return 0;
    snprintf(out, 64, "%s", names[below((uint64_t)n)]);
    return 1;
}

static const log_info *find_log(const template *t, uint64_t number) {
    for (int i = 0; i < t->nlogs; i++)
        if (t->logs[i].number == number) return &t->logs[i];
    return NULL;
}

/* The torn-tail and hole rules: a crash image's log damaged in [from, to)
 * may come back as the state after its last record wholly before `from`,
 * provided no record of it lies wholly after the damage (that would be
 * damage followed by valid data: corruption). */
static void allowed_prefix(const template *t, mutation *m) {
    m->prefix_ok = 0;
    if (!t->crashed || m->type != T_LOG) return;
    const log_info *li = find_log(t, m->number);
    if (!li || li->nrecs == 0) return;
    uint64_t before = li->recs[0].first_seq - 1;
    for (size_t i = 0; i < li->nrecs; i++) {
        if (li->recs[i].end <= m->from) before = li->recs[i].last_seq;
        else if (li->recs[i].start >= m->to) return; /* intact data after the damage */
    }
    m->prefix_ok = 1;
    m->prefix_seq = before;
}

static int apply_mutation(const template *t, const char *dir, mutation *m) {
    char path[1200], other[1200];
    static const int weights[T_TYPES] = {1, 3, 4, 4, 1};
    int total = 0, roll;
    for (int i = 0; i < T_TYPES; i++) total += weights[i];
    roll = (int)below((uint64_t)total);
    for (m->type = 0; roll >= weights[m->type]; m->type++) roll -= weights[m->type];
    if (!pick_file(dir, m->type, m->file)) return 0;
    parse_file_name(m->file, &m->number);
    m->kind = (int)below(M_KINDS);
    snprintf(path, sizeof path, "%s/%s", dir, m->file);
    unsigned char *d;
    size_t len;
    if (read_file(path, &d, &len) != 0) return 0;
    m->from = 0;
    m->to = UINT64_MAX;
    int ok = 1;
    switch (m->kind) {
    case M_BITFLIP:
    case M_BYTE:
        if (!len) { ok = 0; break; }
        m->from = below(len);
        m->to = m->from + 1;
        if (m->kind == M_BITFLIP) d[m->from] ^= (unsigned char)(1u << below(8));
        else d[m->from] = (unsigned char)(d[m->from] ^ (1 + below(255)));
        write_file(path, d, len);
        break;
    case M_ZERO: {
        if (!len) { ok = 0; break; }
        m->from = below(len);
        size_t n = 1 + below(4096);
        if (m->from + n > len) n = len - m->from;
        memset(d + m->from, 0, n);
        m->to = m->from + n;
        write_file(path, d, len);
        break;
    }
    case M_TRUNC:
        m->from = below(len + 1);
        write_file(path, d, m->from);
        break;
    case M_TRUNC_RECORD: {
        /* At the start of a record of a log or manifest, else anywhere. */
        uint64_t at = below(len + 1);
        if (m->type == T_LOG || m->type == T_MANIFEST) {
            log_reader *r;
            if (log_reader_open(env_posix(), path, &r) == WEIR_OK) {
                buf scratch = BUF_INIT;
                slice rec;
                uint64_t starts[4096];
                size_t n = 0;
                while (n < 4096 && log_reader_next(r, &scratch, &rec) == WEIR_OK)
                    starts[n++] = log_reader_record_offset(r);
                if (n) at = starts[below(n)];
                buf_free(&scratch);
                log_reader_close(r);
            }
        }
        m->from = at;
        write_file(path, d, at);
        break;
    }
    case M_APPEND: {
        size_t n = 1 + below(100);
        unsigned char *g = malloc(len + n);
        memcpy(g, d, len);
        for (size_t i = 0; i < n; i++) g[len + i] = (unsigned char)rnd();
        m->from = len;
        write_file(path, g, len + n);
        free(g);
        break;
    }
    case M_DELETE:
        unlink(path);
        break;
    case M_DUPLICATE: {
        /* The same bytes under another number of the same kind. */
        uint64_t n2 = m->number + 1 + below(3);
        if (m->type == T_LOG) log_file_path(other, sizeof other, dir, n2);
        else if (m->type == T_TABLE) table_file_path(other, sizeof other, dir, n2);
        else if (m->type == T_MANIFEST) manifest_file_path(other, sizeof other, dir, n2);
        else { ok = 0; break; }
        if (access(other, F_OK) == 0) { ok = 0; break; }
        write_file(other, d, len);
        m->from = m->to = UINT64_MAX; /* the original is intact */
        break;
    }
    case M_SWAP: {
        char name2[64];
        if (!pick_file(dir, m->type, name2) || strcmp(name2, m->file) == 0) { ok = 0; break; }
        snprintf(other, sizeof other, "%s/%s", dir, name2);
        unsigned char *d2;
        size_t len2;
        if (read_file(other, &d2, &len2) != 0) { ok = 0; break; }
        write_file(path, d2, len2);
        write_file(other, d, len);
        free(d2);
        break;
    }
    case M_STALE: {
        snprintf(other, sizeof other, "%s/%s", t->stale, m->file);
        unsigned char *d2;
        size_t len2;
        if (read_file(other, &d2, &len2) != 0) { ok = 0; break; }
        if (len2 == len && memcmp(d, d2, len) == 0) { free(d2); ok = 0; break; }
        size_t first_diff = 0;
        while (first_diff < len && first_diff < len2 && d[first_diff] == d2[first_diff]) first_diff++;
        m->from = first_diff;
        write_file(path, d2, len2);
        free(d2);
        break;
    }
    }
    free(d);
    if (ok && m->type == T_LOG && m->kind != M_DUPLICATE && m->kind != M_SWAP) allowed_prefix(t, m);
    else m->prefix_ok = 0;
    return ok;
}

/* A clean error names a file of the store (or the store's directory). */
static int names_a_file(const char *msg, const char *dir) {
    return strstr(msg, ".log") || strstr(msg, ".sst") || strstr(msg, "MANIFEST-") ||
           strstr(msg, "CURRENT") || strstr(msg, dir);
}

/* ---- the run ------------------------------------------------------------------------ */

typedef struct tally {
    uint64_t by_type[T_TYPES][O_OUTCOMES];
    uint64_t by_kind[M_KINDS][O_OUTCOMES];
    uint64_t total[O_OUTCOMES];
    uint64_t checks, check_disagreements, unnamed_errors;
} tally;

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "corrupt_campaign: a mutation hung (over 60 s)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

int main(int argc, char **argv) {
    uint64_t mutations = 1000, seed = (uint64_t)time(NULL);
    int table = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) mutations = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--table") == 0) table = 1;
        else {
            fprintf(stderr, "usage: corrupt_campaign [--mutations N] [--seed S] [--table]\n");
            return 2;
        }
    }
    rng_state = seed;
    signal(SIGALRM, on_alarm);
    char base[512];
    snprintf(base, sizeof base, "%s/weir-corrupt-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(base)) die("mkdtemp");
    static const struct { const char *name; int codec; } codecs[] = {
        {"none", WEIR_COMPRESSION_NONE}, {"lz4", WEIR_COMPRESSION_LZ4}, {"zstd", WEIR_COMPRESSION_ZSTD}};
    template templates[6];
    int ntemplates = 0;
    char name[64];
    static char names[6][64];
    for (size_t c = 0; c < 3; c++) {
        if (!weir_compression_supported(codecs[c].codec)) {
            fprintf(stderr, "corrupt_campaign: this build lacks %s compression\n", codecs[c].name);
            return 2;
        }
        for (int crashed = 0; crashed < 2; crashed++) {
            snprintf(name, sizeof name, "%s-%s", codecs[c].name, crashed ? "crashed" : "closed");
            snprintf(names[ntemplates], 64, "%s", name);
            build_template(&templates[ntemplates], base, names[ntemplates], codecs[c].codec, crashed);
            ntemplates++;
        }
    }
    printf("corrupt_campaign: seed %" PRIu64 ", %" PRIu64 " mutations over %d templates (%zu ops, %d logs each on average)\n",
           seed, mutations, ntemplates, templates[0].nops, templates[0].nlogs);
    fflush(stdout);

    tally t;
    memset(&t, 0, sizeof t);
    char work[700];
    snprintf(work, sizeof work, "%s/work", base);
    state got, want;
    uint64_t done = 0;
    while (done < mutations) {
        template *tp = &templates[below((uint64_t)ntemplates)];
        rmtree(work);
        copy_dir(tp->dir, work);
        mutation m;
        memset(&m, 0, sizeof m);
        if (!apply_mutation(tp, work, &m)) continue;
        alarm(60);
        int read_only = (int)(done & 1);
        weir_options *o = weir_options_create();
        weir_options_set_read_only(o, read_only);
        weir_options_set_create_if_missing(o, 0);
        weir_db *db = NULL;
        int rc = weir_open(work, o, &db);
        weir_options_destroy(o);
        int outcome;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", weir_errmsg());
        if (rc != WEIR_OK) {
            outcome = O_ERROR_OPEN;
        } else {
            rc = visible_state(db, &got);
            snprintf(msg, sizeof msg, "%s", weir_errmsg());
            weir_close(db);
            if (rc != WEIR_OK) {
                outcome = O_ERROR_READ;
            } else if (same_state(&got, &tp->final)) {
                outcome = O_RIGHT;
            } else if (m.prefix_ok && (state_at(tp->ops, tp->nops, m.prefix_seq, &want), same_state(&got, &want))) {
                outcome = O_PREFIX;
            } else {
                outcome = O_WRONG;
            }
        }
        if ((outcome == O_ERROR_OPEN || outcome == O_ERROR_READ) && !names_a_file(msg, work)) {
            t.unnamed_errors++;
            fprintf(stderr, "error that names no file: %s (%s %s of %s in %s)\n", msg,
                    mutation_names[m.kind], type_names[m.type], m.file, tp->name);
        }
        if (outcome == O_WRONG)
            fprintf(stderr, "SILENTLY WRONG: %s of %s (%s, bytes %" PRIu64 "..%" PRIu64 ") in %s, %s open\n",
                    mutation_names[m.kind], m.file, type_names[m.type], m.from, m.to, tp->name,
                    read_only ? "read-only" : "read-write");
        if (done % 10 == 0) {
            /* check never calls healthy what open refused as corrupt. */
            int crc = weir_check(work, NULL, NULL);
            t.checks++;
            if (outcome == O_ERROR_OPEN && rc == WEIR_CORRUPTION && crc == WEIR_OK) {
                t.check_disagreements++;
                fprintf(stderr, "check says OK where open said: %s\n", msg);
            }
        }
        alarm(0);
        t.by_type[m.type][outcome]++;
        t.by_kind[m.kind][outcome]++;
        t.total[outcome]++;
        done++;
        if (done % 10000 == 0) {
            printf("  %" PRIu64 " mutations, %" PRIu64 " silently wrong so far\n", done, t.total[O_WRONG]);
            fflush(stdout);
        }
    }
    for (int i = 0; i < ntemplates; i++) {
        rmtree(templates[i].dir);
        rmtree(templates[i].stale);
        for (int j = 0; j < templates[i].nlogs; j++) free(templates[i].logs[j].recs);
        free(templates[i].ops);
    }
    rmtree(work);
    rmdir(base);

    printf("%" PRIu64 " mutations:", done);
    for (int o2 = 0; o2 < O_OUTCOMES; o2++) printf(" %s %" PRIu64 ";", outcome_names[o2], t.total[o2]);
    printf(" weir check run %" PRIu64 " times, disagreed %" PRIu64 "; errors naming no file %" PRIu64 "\n",
           t.checks, t.check_disagreements, t.unnamed_errors);
    if (table) {
        printf("\n| file | mutations | clean error at open | clean error at read | right data | allowed prefix | silently wrong |\n");
        printf("|---|---:|---:|---:|---:|---:|---:|\n");
        for (int ty = 0; ty < T_TYPES; ty++) {
            uint64_t sum = 0;
            for (int o2 = 0; o2 < O_OUTCOMES; o2++) sum += t.by_type[ty][o2];
            printf("| %s | %" PRIu64, type_names[ty], sum);
            for (int o2 = 0; o2 < O_OUTCOMES; o2++) printf(" | %" PRIu64, t.by_type[ty][o2]);
            printf(" |\n");
        }
        printf("\n| mutation | mutations | clean error at open | clean error at read | right data | allowed prefix | silently wrong |\n");
        printf("|---|---:|---:|---:|---:|---:|---:|\n");
        for (int k = 0; k < M_KINDS; k++) {
            uint64_t sum = 0;
            for (int o2 = 0; o2 < O_OUTCOMES; o2++) sum += t.by_kind[k][o2];
            printf("| %s | %" PRIu64, mutation_names[k], sum);
            for (int o2 = 0; o2 < O_OUTCOMES; o2++) printf(" | %" PRIu64, t.by_kind[k][o2]);
            printf(" |\n");
        }
    }
    return t.total[O_WRONG] || t.check_disagreements || t.unnamed_errors ? 1 : 0;
}
