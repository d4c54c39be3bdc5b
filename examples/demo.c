/*
 * demo.c -- weir's interim demo (`make demo`): load a generated stream of
 * card transactions through the C API in atomic batches, then answer a few
 * questions with point reads and prefix scans, reopen the store to show
 * the data survived, and print the engine's statistics.
 *
 *   weir-demo [--dir DIR] [--num N] [--users U]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weir.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "weir-demo: %s failed: %s (%s)\n", what, weir_errmsg(), weir_status_name(rc));
    exit(1);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: weir-demo [--dir DIR] [--num N] [--users U]\n"
            "  Loads N generated card transactions for U users into a weir store in DIR\n"
            "  (default ./weir-demo-db, recreated), then queries it and prints stats.\n"
            "  Defaults: N=1000000, U=10000.\n");
}

static const char *merchants[] = {"Coffee Shop", "Gas Station", "Grocery", "Electronics",
                                  "Jewelry Store", "Restaurant", "Car Dealer", "Pharmacy"};

/* Deterministic amounts: mostly small, a few large (the fraud job's input). */
static uint64_t rng_state = 42;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv) {
    const char *dir = "weir-demo-db";
    long num = 1000000, users = 10000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--num") && i + 1 < argc) {
            num = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--users") && i + 1 < argc) {
            users = atol(argv[++i]);
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (num <= 0 || users <= 0) {
        usage(stderr);
        return 2;
    }
    int tty = isatty(STDOUT_FILENO);
    printf("weir %s demo: %ld transactions over %ld users into %s\n", weir_version(), num, users, dir);

    int rc = weir_destroy(dir);
    if (rc != WEIR_OK) die("weir_destroy", rc);
    weir_options *opts = weir_options_create();
    weir_db *db;
    if ((rc = weir_open(dir, opts, &db)) != WEIR_OK) die("weir_open", rc);

    /* Load in atomic batches of 1000, keys "txn/<user>/<seq>". */
    weir_batch *batch = weir_batch_create();
    double t0 = now_seconds();
    long *per_user = calloc((size_t)users, sizeof *per_user);
    char key[64], val[128];
    for (long i = 0; i < num; i++) {
        long user = (long)(rng() % (uint64_t)users);
        long cents = (long)(rng() % 10000);
        if (rng() % 1000 == 0) cents *= 500; /* the rare very large purchase */
        const char *merchant = merchants[rng() % 8];
        int kl = snprintf(key, sizeof key, "txn/%06ld/%08ld", user, per_user[user]++);
        int vl = snprintf(val, sizeof val, "{\"id\":\"T%08ld\",\"amount\":%ld.%02ld,\"merchant\":\"%s\"}",
                          i, cents / 100, cents % 100, merchant);
        if ((rc = weir_batch_put(batch, key, (size_t)kl, val, (size_t)vl)) != WEIR_OK) die("weir_batch_put", rc);
        if (weir_batch_count(batch) == 1000 || i == num - 1) {
            if ((rc = weir_write(db, NULL, batch)) != WEIR_OK) die("weir_write", rc);
            weir_batch_clear(batch);
        }
        if (tty && (i % 50000 == 0 || i == num - 1)) {
            double pct = 100.0 * (double)(i + 1) / (double)num;
            int bars = (int)(pct / 2.5);
            printf("\r  loading [%-40.*s] %5.1f%%", bars, "########################################", pct);
            fflush(stdout);
        }
    }
    double load_s = now_seconds() - t0;
    if (tty) printf("\n");
    printf("loaded %ld transactions in %.2f s (%.0f writes/s, batches of 1000)\n", num, load_s,
           (double)num / load_s);

    /* Point reads of random existing keys. */
    long reads = num < 200000 ? num : 200000, found = 0;
    t0 = now_seconds();
    char vbuf[256];
    for (long i = 0; i < reads; i++) {
        long user = (long)(rng() % (uint64_t)users);
        if (per_user[user] == 0) continue;
        int kl = snprintf(key, sizeof key, "txn/%06ld/%08ld", user, (long)(rng() % (uint64_t)per_user[user]));
        size_t vlen;
        rc = weir_get(db, NULL, key, (size_t)kl, vbuf, sizeof vbuf, &vlen);
        if (rc == WEIR_OK) found++;
        else die("weir_get", rc);
    }
    double read_s = now_seconds() - t0;
    printf("read %ld random transactions in %.2f s (%.0f reads/s), all found: %s\n", reads, read_s,
           (double)found / read_s, found == reads ? "yes" : "NO");

    /* Prefix scan: one user's history, total spent, largest purchase. */
    long who = 42 % users;
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "txn/%06ld/", who);
    weir_readopts ro = {0};
    ro.prefix = prefix;
    ro.prefix_len = (size_t)pl;
    weir_iter *it;
    if ((rc = weir_iter_create(db, &ro, &it)) != WEIR_OK) die("weir_iter_create", rc);
    long count = 0;
    double total = 0, largest = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
        size_t vl;
        const char *v = weir_iter_value(it, &vl);
        const char *a = memmem(v, vl, "\"amount\":", 9);
        double amount = a ? atof(a + 9) : 0;
        total += amount;
        if (amount > largest) largest = amount;
        count++;
    }
    if ((rc = weir_iter_status(it)) != WEIR_OK) die("iteration", rc);
    /* The newest transaction is the last key with the prefix. */
    weir_iter_seek_last(it);
    size_t lk = 0;
    const char *last_key = weir_iter_valid(it) ? weir_iter_key(it, &lk) : "";
    printf("user %06ld: %ld transactions, total %.2f, largest %.2f, newest key %.*s\n", who, count,
           total, largest, (int)lk, last_key);
    weir_iter_destroy(it);

    /* Full scan throughput. */
    if ((rc = weir_iter_create(db, NULL, &it)) != WEIR_OK) die("weir_iter_create", rc);
    t0 = now_seconds();
    long scanned = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) scanned++;
    double scan_s = now_seconds() - t0;
    weir_iter_destroy(it);
    printf("scanned %ld keys in order in %.2f s (%.0f keys/s)\n", scanned, scan_s, (double)scanned / scan_s);

    /* Flush, compact, reopen: the data is still all there. */
    t0 = now_seconds();
    if ((rc = weir_compact_range(db, NULL, 0, NULL, 0)) != WEIR_OK) die("weir_compact_range", rc);
    printf("flushed and compacted in %.2f s\n", now_seconds() - t0);
    char *summary;
    if ((rc = weir_property(db, "weir.level-summary", &summary)) != WEIR_OK) die("weir_property", rc);
    printf("levels:\n%s", summary);
    weir_free(summary);
    if ((rc = weir_close(db)) != WEIR_OK) die("weir_close", rc);

    t0 = now_seconds();
    if ((rc = weir_open(dir, opts, &db)) != WEIR_OK) die("weir_open (reopen)", rc);
    printf("reopened in %.3f s\n", now_seconds() - t0);
    if ((rc = weir_iter_create(db, NULL, &it)) != WEIR_OK) die("weir_iter_create", rc);
    long after = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) after++;
    weir_iter_destroy(it);
    printf("after reopen: %ld keys (%s)\n", after, after == scanned ? "matches" : "MISMATCH");
    char *counters;
    if ((rc = weir_property(db, "weir.counters", &counters)) == WEIR_OK) {
        printf("counters after reopen:\n%s", counters);
        weir_free(counters);
    }
    weir_close(db);
    weir_options_destroy(opts);
    weir_batch_destroy(batch);
    free(per_user);
    return (found == reads && after == scanned && scanned == num) ? 0 : 1;
}
