/*
 * txn_bench.c -- weir-txn-bench: what transactions, merge operators and
 * range deletions cost next to the plain operations they replace.
 *
 *   txn      begin, get_for_update 1 key, put 1 key, commit (distinct keys,
 *            no contention) vs weir_get + a 1-put weir_write; and a blind
 *            begin + put + commit vs a 1-put weir_write; WEIR_SYNC_FLUSH
 *   incr     weir_add_int64 (a merge) vs weir_get + weir_put on 1,000 hot
 *            counters and on 1M cold ones (loaded into a table first), with
 *            WEIR_SYNC_NONE and with WEIR_SYNC_FLUSH; then the time to read
 *            every counter back
 *   delete   weir_delete_range over 1M keys vs 1M weir_delete calls; then a
 *            full scan, a full compaction, and a scan again
 *
 * Usage: weir-txn-bench [--dir DIR] [--scale F] [--reps N] [--only txn|incr|delete]
 * F scales every count (default 1); each figure is the median of N runs
 * (default 3). Only needs libweir.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "weir.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "weir-txn-bench: %s: %s: %s\n", what, weir_status_name(rc), weir_errmsg());
    exit(1);
}

#define TRY(what, expr)                  \
    do {                                 \
        int rc_ = (expr);                \
        if (rc_ != WEIR_OK) die(what, rc_); \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int make_key(char *out, uint64_t i) { return snprintf(out, 32, "key%013" PRIu64, i); }

static char g_dir[512];
static int g_run;

static weir_db *fresh_db_sync(char *path, size_t cap, int sync) {
    snprintf(path, cap, "%s/run%d", g_dir, g_run++);
    weir_destroy(path);
    weir_options *o = weir_options_create();
    if (!o) die("options", WEIR_NO_MEMORY);
    weir_options_set_sync_mode(o, sync);
    weir_db *db;
    TRY("open", weir_open(path, o, &db));
    weir_options_destroy(o);
    return db;
}

static weir_db *fresh_db(char *path, size_t cap) { return fresh_db_sync(path, cap, WEIR_SYNC_FLUSH); }

static void close_db(weir_db *db, const char *path) {
    TRY("close", weir_close(db));
    weir_destroy(path);
}

/* Load keys [0, n) with vlen-byte values in batches, then flush. */
static void load(weir_db *db, uint64_t n, size_t vlen) {
    weir_writeopts wo = {.sync = WEIR_SYNC_NONE};
    weir_batch *b = weir_batch_create();
    char key[32], val[256];
    memset(val, 'v', sizeof val);
    for (uint64_t i = 0; i < n; i++) {
        int kl = make_key(key, i);
        TRY("load", weir_batch_put(b, key, (size_t)kl, val, vlen));
        if (weir_batch_count(b) == 1000 || i + 1 == n) {
            TRY("load", weir_write(db, &wo, b));
            weir_batch_clear(b);
        }
    }
    weir_batch_destroy(b);
    TRY("flush", weir_flush(db));
}

static void row(const char *name, uint64_t ops, double secs, const char *note) {
    printf("  %-44s %10" PRIu64 " %10.3f %12.0f %9.2f  %s\n", name, ops, secs, ops / secs, secs * 1e6 / ops, note);
}

static void header(const char *title) {
    printf("\n%s\n  %-44s %10s %10s %12s %9s\n", title, "workload", "ops", "seconds", "ops/s", "us/op");
}

/* Median of the repetitions (each workload runs g_reps times, the two
 * sides interleaved, so a noisy moment on a shared machine does not decide
 * a comparison). */
static int g_reps = 3;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_REPS 15

/* ---- txn vs get + write ------------------------------------------------------- */

/* Seconds for n writes of distinct keys: read-modify-writes in
 * transactions (mode 0) or as weir_get + a one-put batch (1); blind puts in
 * transactions (2) or as one-put batches (3). */
static double run_txn(uint64_t n, int mode) {
    char path[600], key[32], val[100], got[256];
    memset(val, 'x', sizeof val);
    weir_db *db = fresh_db(path, sizeof path);
    load(db, n, sizeof val);
    weir_txnopts to = {.sync = WEIR_SYNC_FLUSH, .track_all_reads = 0};
    weir_writeopts wo = {.sync = WEIR_SYNC_FLUSH};
    weir_batch *b = weir_batch_create();
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        int kl = make_key(key, i);
        size_t vl;
        if (mode == 0) {
            weir_txn *t;
            void *v;
            TRY("txn begin", weir_txn_begin(db, &to, &t));
            TRY("txn get", weir_txn_get_for_update(t, key, (size_t)kl, &v, &vl));
            if (vl) val[0] = ((char *)v)[0];
            weir_free(v);
            TRY("txn put", weir_txn_put(t, key, (size_t)kl, val, sizeof val));
            TRY("txn commit", weir_txn_commit(t));
            weir_txn_destroy(t);
        } else if (mode == 2) {
            weir_txn *t;
            TRY("txn begin", weir_txn_begin(db, &to, &t));
            TRY("txn put", weir_txn_put(t, key, (size_t)kl, val, sizeof val));
            TRY("txn commit", weir_txn_commit(t));
            weir_txn_destroy(t);
        } else if (mode == 3) {
            weir_batch_clear(b);
            TRY("batch put", weir_batch_put(b, key, (size_t)kl, val, sizeof val));
            TRY("write", weir_write(db, &wo, b));
        } else {
            TRY("get", weir_get(db, NULL, key, (size_t)kl, got, sizeof got, &vl));
            if (vl) val[0] = got[0];
            weir_batch_clear(b);
            TRY("batch put", weir_batch_put(b, key, (size_t)kl, val, sizeof val));
            TRY("write", weir_write(db, &wo, b));
        }
    }
    double secs = now_s() - t0;
    weir_batch_destroy(b);
    close_db(db, path);
    return secs;
}

static void bench_txn(uint64_t n) {
    double t[4][MAX_REPS];
    for (int r = 0; r < g_reps; r++)
        for (int k = 0; k < 4; k++) {
            int mode = (r + k) % 4;
            t[mode][r] = run_txn(n, mode);
        }
    double tx = median(t[0], g_reps), plain = median(t[1], g_reps);
    double btx = median(t[2], g_reps), bplain = median(t[3], g_reps);
    header("uncontended transactions, 1 key each, 100-byte values, WEIR_SYNC_FLUSH");
    char note[80];
    snprintf(note, sizeof note, "rate %.0f%% of plain", 100 * plain / tx);
    row("txn: get_for_update + put + commit", n, tx, note);
    row("plain: weir_get + 1-put weir_write", n, plain, "");
    snprintf(note, sizeof note, "rate %.0f%% of batch", 100 * bplain / btx);
    row("txn: begin + put + commit (blind)", n, btx, note);
    row("batch: 1-put weir_write", n, bplain, "");
}

/* ---- incr: merge vs read-modify-write ------------------------------------------ */

#define COUNTERS 1000
#define COLD_COUNTERS 1000000

static int64_t read_i64(const char *v) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)(unsigned char)v[i] << (8 * i);
    return (int64_t)u;
}

/* n increments of random hot counters: mode 0 by merge, mode 1 by get +
 * put; then every counter read back (checked). */
static void run_incr(uint64_t n, int mode, int sync, uint64_t counters, double *issue, double *read) {
    char path[600], key[32];
    weir_db *db = fresh_db_sync(path, sizeof path, sync);
    if (counters > COUNTERS) {
        /* Cold counters: every one starts at 0 in a table, so a get must
         * look in the tables (through the block cache). */
        static const char zero[8] = {0};
        weir_writeopts lwo = {.sync = WEIR_SYNC_NONE};
        for (uint64_t c = 0; c < counters; c++) {
            int kl = make_key(key, c);
            TRY("load", weir_put(db, &lwo, key, (size_t)kl, zero, 8));
        }
        TRY("flush", weir_flush(db));
    }
    rng_state = 0x9e3779b97f4a7c15ull;
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        int kl = make_key(key, rng_next() % counters);
        if (mode == 0) {
            TRY("add_int64", weir_add_int64(db, NULL, key, (size_t)kl, 1));
        } else {
            char v[8];
            size_t vl;
            int rc = weir_get(db, NULL, key, (size_t)kl, v, sizeof v, &vl);
            if (rc != WEIR_OK && rc != WEIR_NOT_FOUND) die("get", rc);
            int64_t x = rc == WEIR_OK ? read_i64(v) + 1 : 1;
            for (int b = 0; b < 8; b++) v[b] = (char)((uint64_t)x >> (8 * b));
            TRY("put", weir_put(db, NULL, key, (size_t)kl, v, 8));
        }
    }
    *issue = now_s() - t0;
    /* Reading back folds each counter's operands (merge) or finds one
     * value (read-modify-write). */
    t0 = now_s();
    int64_t sum = 0;
    for (uint64_t c = 0; c < counters; c++) {
        int kl = make_key(key, c);
        char v[8];
        size_t vl;
        int rc = weir_get(db, NULL, key, (size_t)kl, v, sizeof v, &vl);
        if (rc == WEIR_OK) sum += read_i64(v);
        else if (rc != WEIR_NOT_FOUND) die("get", rc);
    }
    *read = now_s() - t0;
    if (sum != (int64_t)n) {
        fprintf(stderr, "weir-txn-bench: counters sum to %" PRId64 ", want %" PRIu64 "\n", sum, n);
        exit(1);
    }
    close_db(db, path);
}

static void bench_incr(uint64_t n, int sync, uint64_t counters) {
    double issue[2][MAX_REPS], read[2][MAX_REPS];
    for (int r = 0; r < g_reps; r++)
        for (int k = 0; k < 2; k++) {
            int mode = (r + k) % 2;
            run_incr(n, mode, sync, counters, &issue[mode][r], &read[mode][r]);
        }
    double im = median(issue[0], g_reps), ir = median(issue[1], g_reps);
    char title[120];
    snprintf(title, sizeof title, "incr on %" PRIu64 " %s counters, %s", counters,
             counters > COUNTERS ? "cold (in tables)" : "hot", sync == WEIR_SYNC_NONE ? "WEIR_SYNC_NONE" : "WEIR_SYNC_FLUSH");
    header(title);
    char note[64];
    snprintf(note, sizeof note, "merge is %.2fx faster", ir / im);
    row("merge: weir_add_int64", n, im, note);
    row("read-modify-write: weir_get + weir_put", n, ir, "");
    row("  then read all counters (merge)", counters, median(read[0], g_reps), "");
    row("  then read all counters (rmw)", counters, median(read[1], g_reps), "");
}

/* ---- delete_range vs deletes ---------------------------------------------------- */

static uint64_t scan_all(weir_db *db) {
    weir_iter *it;
    TRY("iter", weir_iter_create(db, NULL, &it));
    uint64_t n = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
    TRY("iter status", weir_iter_status(it));
    weir_iter_destroy(it);
    return n;
}

/* Delete all n loaded keys (mode 0: one range deletion, mode 1: one
 * weir_delete each); t = issue, scan, compact, scan again. */
static void run_delete(uint64_t n, int mode, double t[4]) {
    char path[600], key[32], end[32];
    weir_db *db = fresh_db(path, sizeof path);
    load(db, n, 16);
    double t0 = now_s();
    if (mode == 0) {
        int sl = make_key(key, 0), el = make_key(end, n);
        TRY("delete_range", weir_delete_range(db, NULL, key, (size_t)sl, end, (size_t)el));
    } else {
        for (uint64_t i = 0; i < n; i++) {
            int kl = make_key(key, i);
            TRY("delete", weir_delete(db, NULL, key, (size_t)kl));
        }
    }
    t[0] = now_s() - t0;
    t0 = now_s();
    uint64_t left = scan_all(db);
    t[1] = now_s() - t0;
    t0 = now_s();
    TRY("compact", weir_compact_range(db, NULL, 0, NULL, 0));
    t[2] = now_s() - t0;
    t0 = now_s();
    uint64_t left2 = scan_all(db);
    t[3] = now_s() - t0;
    if (left || left2) {
        fprintf(stderr, "weir-txn-bench: %" PRIu64 "/%" PRIu64 " keys survived the deletion\n", left, left2);
        exit(1);
    }
    close_db(db, path);
}

static void bench_delete(uint64_t n) {
    double t[2][4][MAX_REPS];
    for (int r = 0; r < g_reps; r++)
        for (int k = 0; k < 2; k++) {
            int mode = (r + k) % 2;
            double one[4];
            run_delete(n, mode, one);
            for (int j = 0; j < 4; j++) t[mode][j][r] = one[j];
        }
    header("delete every one of 1M keys (16-byte values, in tables), WEIR_SYNC_FLUSH");
    static const char *steps[4] = {"issue", "full scan after", "compact_range", "full scan after compaction"};
    for (int mode = 0; mode < 2; mode++) {
        for (int j = 0; j < 4; j++) {
            char name[80];
            snprintf(name, sizeof name, "%s: %s", mode == 0 ? "delete_range" : "weir_delete each", steps[j]);
            uint64_t ops = j == 0 && mode == 0 ? 1 : n;
            row(name, ops, median(t[mode][j], g_reps), j == 1 || j == 3 ? "(ops: keys skipped)" : "");
        }
    }
}

static uint64_t scaled(uint64_t n, double scale) {
    double x = (double)n * scale;
    return x < 1 ? 1 : (uint64_t)x;
}

int main(int argc, char **argv) {
    double scale = 1;
    const char *only = NULL;
    snprintf(g_dir, sizeof g_dir, "/tmp/weir-txn-bench-%d", (int)getpid());
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            snprintf(g_dir, sizeof g_dir, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            g_reps = atoi(argv[++i]);
            if (g_reps < 1) g_reps = 1;
            if (g_reps > MAX_REPS) g_reps = MAX_REPS;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
            if (strcmp(only, "txn") != 0 && strcmp(only, "incr") != 0 && strcmp(only, "delete") != 0) {
                fprintf(stderr, "%s: --only takes txn, incr or delete\n", argv[0]);
                return 2;
            }
        } else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = atof(argv[++i]);
            if (scale <= 0) scale = 1;
        } else {
            fprintf(stderr, "usage: %s [--dir DIR] [--scale F] [--reps N] [--only txn|incr|delete]\n",
                    argv[0]);
            return 2;
        }
    }
    printf("%s; directory %s, scale %.3g; median of %d runs\n", weir_build_info(), g_dir, scale, g_reps);
    if (mkdir(g_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "weir-txn-bench: mkdir %s: %s\n", g_dir, strerror(errno));
        return 1;
    }
    if (!only || strcmp(only, "txn") == 0) bench_txn(scaled(200000, scale));
    if (!only || strcmp(only, "incr") == 0) {
        bench_incr(scaled(1000000, scale), WEIR_SYNC_NONE, COUNTERS);
        bench_incr(scaled(1000000, scale), WEIR_SYNC_FLUSH, COUNTERS);
        bench_incr(scaled(1000000, scale), WEIR_SYNC_NONE, COLD_COUNTERS);
        bench_incr(scaled(1000000, scale), WEIR_SYNC_FLUSH, COLD_COUNTERS);
    }
    if (!only || strcmp(only, "delete") == 0) bench_delete(scaled(1000000, scale));
    rmdir(g_dir);
    return 0;
}
