/*
 * test_progress.c -- following long operations while they run.
 *
 * weir_compact_range_progress: the steps of a compaction over several
 * levels are reported in order, each with fixed totals and a count that
 * only grows to its total; a slow step is reported while it runs; a step
 * that fails gets no report of completion; and a callback that tries to
 * compact or close the DB it is reporting on is refused instead of
 * deadlocking or freeing the handle under the call.
 *
 * "weir.num-entries-active-memtable": read from another thread, it follows
 * a large batch being applied, and starts again at 0 after a flush.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_impl.h"
#include "env_fault.h"
#include "testutil.h"

#define MAX_REPORTS 4096

typedef struct recorder {
    weir_compact_progress reports[MAX_REPORTS];
    int n;
    int overflow;
    /* Optional actions from inside the callback (the first call only). */
    weir_db *db;
    int try_compact, try_close;
    int compact_rc, close_rc;
    char compact_msg[512], close_msg[512];
} recorder;

static void record(void *arg, const weir_compact_progress *p) {
    recorder *r = arg;
    if (r->n < MAX_REPORTS) r->reports[r->n] = *p;
    else r->overflow = 1;
    if (r->n == 0 && r->try_compact) {
        r->compact_rc = weir_compact_range(r->db, NULL, 0, NULL, 0);
        snprintf(r->compact_msg, sizeof r->compact_msg, "%s", weir_errmsg());
    }
    if (r->n == 0 && r->try_close) {
        r->close_rc = weir_close(r->db);
        snprintf(r->close_msg, sizeof r->close_msg, "%s", weir_errmsg());
    }
    r->n++;
}

/* The invariants weir.h promises for a successful call; 0 if they hold,
 * else a message on stderr and -1. */
static int check_reports(const recorder *r) {
    if (r->n == 0 || r->overflow) {
        fprintf(stderr, "     %d reports (overflow %d)\n", r->n, r->overflow);
        return -1;
    }
    int steps = r->reports[0].steps, step = 0;
    double last_fraction = -1;
    for (int i = 0; i < r->n; i++) {
        const weir_compact_progress *p = &r->reports[i];
        const weir_compact_progress *prev = i ? &r->reports[i - 1] : NULL;
        int bad = p->steps != steps || p->step < 1 || p->step > steps || p->level != p->step - 1 ||
                  p->entries_done > p->entries_total;
        for (size_t w = 0; w < sizeof p->reserved / sizeof p->reserved[0]; w++) bad |= p->reserved[w] != 0;
        if (p->step != step) {
            /* A new step: the next one, and the one before ended complete. */
            bad |= p->step != step + 1;
            bad |= prev && prev->entries_done != prev->entries_total;
            step = p->step;
        } else {
            bad |= p->input_bytes != prev->input_bytes || p->entries_total != prev->entries_total ||
                   p->entries_done < prev->entries_done;
        }
        double within = p->entries_total ? (double)p->entries_done / (double)p->entries_total : 1.0;
        double fraction = (p->step - 1 + within) / steps;
        bad |= fraction < last_fraction;
        last_fraction = fraction;
        if (bad) {
            fprintf(stderr, "     report %d breaks the rules: step %d/%d level %d, %llu of %llu entries, %llu bytes\n",
                    i, p->step, p->steps, p->level, (unsigned long long)p->entries_done,
                    (unsigned long long)p->entries_total, (unsigned long long)p->input_bytes);
            return -1;
        }
    }
    const weir_compact_progress *last = &r->reports[r->n - 1];
    if (last->step != steps || last->entries_done != last->entries_total) {
        fprintf(stderr, "     the last report is step %d of %d, %llu of %llu entries\n", last->step, steps,
                (unsigned long long)last->entries_done, (unsigned long long)last->entries_total);
        return -1;
    }
    return 0;
}

static int files_at_level(weir_db *db, int level) {
    char name[64], *v = NULL;
    snprintf(name, sizeof name, "weir.num-files-at-level%d", level);
    if (weir_property(db, name, &v) != WEIR_OK) return -1;
    int n = atoi(v);
    weir_free(v);
    return n;
}

static int deepest_level(weir_db *db) {
    int deepest = -1;
    for (int level = 0; level < 7; level++)
        if (files_at_level(db, level) > 0) deepest = level;
    return deepest;
}

static void key_of(char *k, size_t cap, int i) { snprintf(k, cap, "key-%08d", i); }

/* 2 MB spread by background compactions over levels 1 and 2 (level 1
 * holds at most 256 KiB), gathered into level 2 by a full compaction; then
 * a few new keys in the memtable. A full compaction of that is two steps:
 * level 0 (the flushed memtable) into 1, then 1 into 2. */
static weir_db *open_two_level_db(const char *dir) {
    weir_options *o = weir_options_create();
    weir_options_set_write_buffer_size(o, 64 << 10);
    weir_options_set_target_file_size(o, 64 << 10);
    weir_options_set_max_bytes_for_level_base(o, 256 << 10);
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    if (rc != WEIR_OK) return NULL;
    char k[32], v[200];
    memset(v, 'v', sizeof v);
    for (int i = 0; i < 10000 && rc == WEIR_OK; i++) {
        key_of(k, sizeof k, i);
        rc = weir_put(db, NULL, k, strlen(k), v, sizeof v);
    }
    if (rc == WEIR_OK) rc = weir_compact_range(db, NULL, 0, NULL, 0);
    for (int i = 0; i < 10000 && rc == WEIR_OK; i += 100) {
        key_of(k, sizeof k, i);
        rc = weir_put(db, NULL, k, strlen(k), "new", 3);
    }
    if (rc != WEIR_OK) {
        weir_close(db);
        return NULL;
    }
    return db;
}

TEST(each_step_is_reported_in_order_and_ends_complete) {
    char dir[4096];
    test_tmpdir(dir, sizeof dir, "cprog");
    weir_db *db = open_two_level_db(dir);
    CHECK(db != NULL);
    int deepest = deepest_level(db);
    CHECK(deepest >= 2);
    recorder *r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    CHECK_OK(weir_compact_range_progress(db, NULL, 0, NULL, 0, record, r));
    int ok = check_reports(r) == 0;
    int steps = r->reports[0].steps;
    uint64_t last_total = r->reports[r->n - 1].entries_total;
    uint64_t last_bytes = r->reports[r->n - 1].input_bytes;
    fprintf(stderr, "     %d reports over %d steps; the last step merged %llu entries (%llu bytes)\n", r->n,
            steps, (unsigned long long)last_total, (unsigned long long)last_bytes);
    free(r);
    CHECK(ok);
    /* One step per level down to the deepest, which now holds every key;
     * the last step read all 10,000 keys plus the 100 new versions. */
    CHECK_EQ_INT(steps, deepest);
    CHECK_EQ_INT(deepest_level(db), deepest);
    CHECK_EQ_INT(files_at_level(db, 0), 0);
    CHECK(last_total >= 10100);
    CHECK(last_bytes > 2000000);
    char got[256];
    size_t n;
    CHECK_OK(weir_get(db, NULL, "key-00000100", 12, got, sizeof got, &n));
    CHECK(n == 3 && memcmp(got, "new", 3) == 0);
    CHECK_OK(weir_get(db, NULL, "key-00000101", 12, got, sizeof got, &n));
    CHECK_EQ_INT(n, 200);

    /* A bounded range: the same rules, over the levels holding it. */
    r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    CHECK_OK(weir_compact_range_progress(db, "key-00001000", 12, "key-00002000", 12, record, r));
    ok = check_reports(r) == 0;
    free(r);
    CHECK(ok);

    /* NULL fn is plain weir_compact_range. */
    CHECK_OK(weir_compact_range_progress(db, NULL, 0, NULL, 0, NULL, NULL));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* A user merge operator that takes its time, so compaction (which folds
 * operands into their base values) runs long enough to be seen midway. */
static int slow_append(void *arg, const void *key, size_t klen, const void *existing, size_t elen,
                       const void *operand, size_t olen, void **result, size_t *rlen) {
    (void)arg;
    (void)key;
    (void)klen;
    char *out = malloc(elen + olen + 1);
    if (!out) return WEIR_NO_MEMORY;
    if (elen) memcpy(out, existing, elen);
    memcpy(out + elen, operand, olen);
    *result = out;
    *rlen = elen + olen;
    struct timespec pause = {0, 200000}; /* 0.2 ms */
    nanosleep(&pause, NULL);
    return WEIR_OK;
}

TEST(a_long_step_is_reported_while_it_runs) {
    char dir[4096];
    test_tmpdir(dir, sizeof dir, "cprog");
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    CHECK_OK(weir_options_set_merge_operator(o, 130, slow_append, NULL));
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    CHECK_OK(rc);
    char k[32];
    enum { KEYS = 3000 }; /* about 0.6 s of merging at 0.2 ms a key */
    for (int i = 0; i < KEYS; i++) {
        key_of(k, sizeof k, i);
        CHECK_OK(weir_put(db, NULL, k, strlen(k), "base", 4));
    }
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    for (int i = 0; i < KEYS; i++) {
        key_of(k, sizeof k, i);
        CHECK_OK(weir_merge(db, NULL, k, strlen(k), 130, "+op", 3));
    }
    recorder *r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    CHECK_OK(weir_compact_range_progress(db, NULL, 0, NULL, 0, record, r));
    int ok = check_reports(r) == 0;
    int midway = 0;
    for (int i = 0; i < r->n; i++)
        midway += r->reports[i].entries_done > 0 && r->reports[i].entries_done < r->reports[i].entries_total;
    int steps = r->reports[0].steps;
    uint64_t total = r->reports[r->n - 1].entries_total;
    fprintf(stderr, "     %d reports, %d of them midway through the step\n", r->n, midway);
    free(r);
    CHECK(ok);
    CHECK_EQ_INT(steps, 1);
    CHECK_EQ_INT(total, 2 * KEYS); /* the bases and the operands */
    CHECK(midway >= 1);
    /* The operands were folded by the compaction, not left for reads. */
    char got[32];
    size_t n;
    CHECK_OK(weir_get(db, NULL, "key-00000007", 12, got, sizeof got, &n));
    CHECK(n == 7 && memcmp(got, "base+op", 7) == 0);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(a_failed_step_is_not_reported_complete) {
    char dir[4096];
    test_tmpdir(dir, sizeof dir, "cprog");
    fault_env *fe = fault_env_create(NULL);
    CHECK(fe != NULL);
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    weir_options_set_env(o, fault_env_env(fe));
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    CHECK_OK(rc);
    char k[32];
    for (int i = 0; i < 2000; i++) {
        key_of(k, sizeof k, i);
        CHECK_OK(weir_put(db, NULL, k, strlen(k), "first", 5));
    }
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    for (int i = 0; i < 2000; i++) {
        key_of(k, sizeof k, i);
        CHECK_OK(weir_put(db, NULL, k, strlen(k), "second", 6));
    }
    /* The call's flush creates the first table; the compaction's output
     * is the second, and cannot be created. */
    fault_rule rule = {.ops = FAULT_BIT(FAULT_OP_CREATE), .path_part = ".sst", .nth = 2,
                       .action = FAULT_FAIL, .err = EIO};
    CHECK(fault_env_set_rule(fe, &rule) == 0);
    recorder *r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    rc = weir_compact_range_progress(db, NULL, 0, NULL, 0, record, r);
    fault_env_clear_rule(fe);
    int complete = 0;
    for (int i = 0; i < r->n; i++) complete += r->reports[i].entries_done == r->reports[i].entries_total;
    int n = r->n;
    free(r);
    CHECK_STATUS(rc, WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), ".sst") != NULL);
    fprintf(stderr, "     failed with \"%s\" after %d report(s)\n", weir_errmsg(), n);
    CHECK_EQ_INT(complete, 0);
    /* Nothing was lost, and the same call succeeds now. */
    char got[16];
    size_t vl;
    CHECK_OK(weir_get(db, NULL, "key-00000042", 12, got, sizeof got, &vl));
    CHECK(vl == 6 && memcmp(got, "second", 6) == 0);
    r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    CHECK_OK(weir_compact_range_progress(db, NULL, 0, NULL, 0, record, r));
    int ok = check_reports(r) == 0;
    free(r);
    CHECK(ok);
    CHECK_OK(weir_close(db));
    fault_env_destroy(fe);
    test_rmtree(dir);
}

TEST(the_callback_cannot_compact_or_close_its_db) {
    char dir[4096];
    test_tmpdir(dir, sizeof dir, "cprog");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(weir_put(db, NULL, "a", 1, "1", 1));
    recorder *r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    r->db = db;
    r->try_compact = 1;
    r->try_close = 1;
    int rc = weir_compact_range_progress(db, NULL, 0, NULL, 0, record, r);
    int compact_rc = r->compact_rc, close_rc = r->close_rc;
    int compact_said = strstr(r->compact_msg, "progress callback") != NULL;
    int close_said = strstr(r->close_msg, "progress callback") != NULL;
    free(r);
    CHECK_OK(rc);
    CHECK_STATUS(compact_rc, WEIR_BUSY);
    CHECK_STATUS(close_rc, WEIR_BUSY);
    CHECK(compact_said && close_said);
    /* The handle is still open and whole; outside a callback both work. */
    char v[4];
    size_t vl;
    CHECK_OK(weir_get(db, NULL, "a", 1, v, sizeof v, &vl));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

static int active_entries(weir_db *db, uint64_t *out) {
    char *v = NULL;
    if (weir_property(db, "weir.num-entries-active-memtable", &v) != WEIR_OK) return -1;
    char *end;
    *out = strtoull(v, &end, 10);
    int bad = end == v || *end != 0;
    weir_free(v);
    return bad ? -1 : 0;
}

typedef struct big_write {
    weir_db *db;
    weir_batch *batch;
    int rc;
    atomic_int done;
} big_write;

static void *write_batch_thread(void *arg) {
    big_write *w = arg;
    w->rc = weir_write(w->db, NULL, w->batch);
    atomic_store(&w->done, 1);
    return NULL;
}

TEST(a_large_write_can_be_followed_from_another_thread) {
    char dir[4096];
    test_tmpdir(dir, sizeof dir, "wprog");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(weir_put(db, NULL, "before", 6, "1", 1));
    uint64_t base = 0;
    CHECK(active_entries(db, &base) == 0);
    CHECK_EQ_INT(base, 1);
    enum { N = 400000 };
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    char k[32];
    test_rng rng;
    test_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        /* Random order: the slow way to fill a memtable. */
        snprintf(k, sizeof k, "k%016llx", (unsigned long long)test_rng_next(&rng));
        CHECK_OK(weir_batch_put(b, k, strlen(k), "v", 1));
    }
    big_write w = {db, b, -1, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, write_batch_thread, &w) == 0);
    uint64_t last = base, midway = 0, reads = 0;
    int backwards = 0, failed = 0;
    while (!atomic_load(&w.done)) {
        uint64_t now;
        if (active_entries(db, &now) != 0) failed = 1;
        reads++;
        if (now < last) backwards = 1;
        if (now > base && now < base + N) midway++;
        last = now;
        struct timespec pause = {0, 100000}; /* 0.1 ms: leave the DB's mutex alone */
        nanosleep(&pause, NULL);
    }
    pthread_join(t, NULL);
    weir_batch_destroy(b);
    fprintf(stderr, "     %llu reads during the write, %llu of them midway\n", (unsigned long long)reads,
            (unsigned long long)midway);
    CHECK_OK(w.rc);
    CHECK(!failed && !backwards);
    CHECK(midway > 0);
    uint64_t after = 0;
    CHECK(active_entries(db, &after) == 0);
    CHECK_EQ_INT(after, base + N);
    CHECK_OK(weir_flush(db));
    CHECK(active_entries(db, &after) == 0);
    CHECK_EQ_INT(after, 0);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

static const test_case tests[] = {
    TEST_ENTRY(each_step_is_reported_in_order_and_ends_complete),
    TEST_ENTRY(a_long_step_is_reported_while_it_runs),
    TEST_ENTRY(a_failed_step_is_not_reported_complete),
    TEST_ENTRY(the_callback_cannot_compact_or_close_its_db),
    TEST_ENTRY(a_large_write_can_be_followed_from_another_thread),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
