/* test_checkpoint.c -- weir_checkpoint: consistent, openable copies made
 * while writes go on, and its failure cases. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static int count_keys(weir_db *db) {
    weir_iter *it;
    if (weir_iter_create(db, NULL, &it) != WEIR_OK) return -1;
    int n = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
    weir_iter_destroy(it);
    return n;
}

TEST(checkpoint_holds_every_write_and_opens) {
    char dir[256], cp[300];
    test_tmpdir(dir, sizeof dir, "cp-src");
    snprintf(cp, sizeof cp, "%s-copy", dir);
    weir_options *o = weir_options_create();
    weir_options_set_write_buffer_size(o, 128 * 1024);
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    char key[32], val[64];
    for (int i = 0; i < 20000; i++) {
        int kl = snprintf(key, sizeof key, "k%06d", i);
        int vl = snprintf(val, sizeof val, "value-%d", i);
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, (size_t)vl));
    }
    CHECK_OK(weir_delete(db, NULL, "k000007", 7));
    CHECK_OK(weir_checkpoint(db, cp));
    /* Writes after the checkpoint stay out of it. */
    CHECK_OK(weir_put(db, NULL, "later", 5, "x", 1));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_OK(weir_close(db));
    /* The source's compaction deleted its old tables; the copy keeps its
     * own links. */
    weir_db *copy;
    CHECK_OK(weir_open(cp, o, &copy));
    CHECK_EQ_INT(count_keys(copy), 19999);
    size_t vl;
    CHECK_STATUS(weir_get(copy, NULL, "later", 5, val, sizeof val, &vl), WEIR_NOT_FOUND);
    CHECK_STATUS(weir_get(copy, NULL, "k000007", 7, val, sizeof val, &vl), WEIR_NOT_FOUND);
    CHECK_OK(weir_get(copy, NULL, "k019999", 7, val, sizeof val, &vl));
    CHECK(vl == 11 && memcmp(val, "value-19999", 11) == 0);
    /* The copy is a full DB: it takes writes. */
    CHECK_OK(weir_put(copy, NULL, "new", 3, "y", 1));
    CHECK_OK(weir_close(copy));
    weir_options_destroy(o);
    test_rmtree(dir);
    test_rmtree(cp);
}

TEST(checkpoint_of_empty_db) {
    char dir[256], cp[300];
    test_tmpdir(dir, sizeof dir, "cp-empty");
    snprintf(cp, sizeof cp, "%s/inner-copy", dir);
    char src[300];
    snprintf(src, sizeof src, "%s/db", dir);
    weir_db *db, *copy;
    CHECK_OK(weir_open(src, NULL, &db));
    CHECK_OK(weir_checkpoint(db, cp));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(cp, NULL, &copy));
    CHECK_EQ_INT(count_keys(copy), 0);
    CHECK_OK(weir_close(copy));
    test_rmtree(dir);
}

TEST(bad_targets_are_refused) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "cp-bad");
    char src[300];
    snprintf(src, sizeof src, "%s/db", dir);
    weir_db *db;
    CHECK_OK(weir_open(src, NULL, &db));
    CHECK_OK(weir_put(db, NULL, "a", 1, "b", 1));
    /* The DB's own directory is not empty. */
    CHECK_STATUS(weir_checkpoint(db, src), WEIR_EXISTS);
    CHECK(strstr(weir_errmsg(), "not empty") != NULL);
    /* A regular file. */
    snprintf(path, sizeof path, "%s/plain", dir);
    FILE *f = fopen(path, "w");
    fputs("x", f);
    fclose(f);
    int rc = weir_checkpoint(db, path);
    CHECK(rc != WEIR_OK);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    /* Under a regular file. */
    snprintf(path, sizeof path, "%s/plain/sub", dir);
    CHECK(weir_checkpoint(db, path) != WEIR_OK);
    CHECK_STATUS(weir_checkpoint(db, NULL), WEIR_INVALID);
    CHECK_STATUS(weir_checkpoint(db, ""), WEIR_INVALID);
    CHECK_STATUS(weir_checkpoint(NULL, path), WEIR_INVALID);
    /* The DB is unharmed. */
    size_t vl;
    char v[8];
    CHECK_OK(weir_get(db, NULL, "a", 1, v, sizeof v, &vl));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* A writer updates 16 keys per batch to one counter value; a checkpoint
 * taken meanwhile shows all 16 equal (one point in time) and at least the
 * counter acknowledged before the call. */
typedef struct writer_ctx {
    weir_db *db;
    atomic_int stop;
    atomic_long acked;
} writer_ctx;

static void *writer_main(void *arg) {
    writer_ctx *w = arg;
    weir_batch *b = weir_batch_create();
    char key[16], val[32];
    for (long c = 1; !atomic_load(&w->stop); c++) {
        weir_batch_clear(b);
        for (int j = 0; j < 16; j++) {
            int kl = snprintf(key, sizeof key, "c%02d", j);
            int vl = snprintf(val, sizeof val, "%ld", c);
            weir_batch_put(b, key, (size_t)kl, val, (size_t)vl);
        }
        if (weir_write(w->db, NULL, b) != WEIR_OK) break;
        atomic_store(&w->acked, c);
    }
    weir_batch_destroy(b);
    return NULL;
}

TEST(checkpoint_while_writing_is_consistent) {
    char dir[256], cp[300];
    test_tmpdir(dir, sizeof dir, "cp-live");
    weir_options *o = weir_options_create();
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    writer_ctx w = {db, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, writer_main, &w);
    for (int round = 0; round < 8; round++) {
        usleep(20000);
        long before = atomic_load(&w.acked);
        snprintf(cp, sizeof cp, "%s-copy%d", dir, round);
        CHECK_OK(weir_checkpoint(db, cp));
        weir_db *copy;
        CHECK_OK(weir_open(cp, o, &copy));
        long first = -1;
        for (int j = 0; j < 16; j++) {
            char key[16], val[32];
            size_t vl;
            int kl = snprintf(key, sizeof key, "c%02d", j);
            int rc = weir_get(copy, NULL, key, (size_t)kl, val, sizeof val - 1, &vl);
            if (before == 0 && rc == WEIR_NOT_FOUND) continue;
            CHECK_OK(rc);
            val[vl] = 0;
            long c = atol(val);
            if (first < 0) first = c;
            CHECK_EQ_INT(c, first);
        }
        CHECK(first >= before);
        CHECK_OK(weir_close(copy));
        test_rmtree(cp);
    }
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* After a crash (SIGKILL of a writer process), recovery then checkpoint
 * gives a copy equal to the recovered DB. */
TEST(checkpoint_after_crash) {
    char dir[256], cp[300];
    test_tmpdir(dir, sizeof dir, "cp-crash");
    snprintf(cp, sizeof cp, "%s-copy", dir);
    pid_t pid = fork();
    if (pid == 0) {
        weir_options *o = weir_options_create();
        weir_options_set_write_buffer_size(o, 64 * 1024);
        weir_db *db;
        if (weir_open(dir, o, &db) != WEIR_OK) _exit(3);
        char key[32];
        for (long i = 0;; i++) {
            int kl = snprintf(key, sizeof key, "k%08ld", i % 50000);
            weir_put(db, NULL, key, (size_t)kl, key, (size_t)kl);
        }
    }
    usleep(300000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    weir_db *db, *copy;
    CHECK_OK(weir_open(dir, NULL, &db));
    int n = count_keys(db);
    CHECK(n > 0);
    CHECK_OK(weir_checkpoint(db, cp));
    CHECK_OK(weir_open(cp, NULL, &copy));
    CHECK_EQ_INT(count_keys(copy), n);
    CHECK_OK(weir_close(copy));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
    test_rmtree(cp);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        TEST_ENTRY(checkpoint_holds_every_write_and_opens),
        TEST_ENTRY(checkpoint_of_empty_db),
        TEST_ENTRY(bad_targets_are_refused),
        TEST_ENTRY(checkpoint_while_writing_is_consistent),
        TEST_ENTRY(checkpoint_after_crash),
        TEST_END,
    };
    return test_main(argc, argv, tests);
}
