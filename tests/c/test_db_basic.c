/*
 * test_db_basic.c -- integration tests of the public API (weir.h only):
 * open/close/reopen, the open flags and the directory lock (in this process
 * and from another one), point reads and writes, batches, key and value
 * size limits, snapshots, every iterator mode, flush, compaction,
 * properties and weir_destroy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

static int put_s(weir_db *db, const char *k, const char *v) {
    return weir_put(db, NULL, k, strlen(k), v, strlen(v));
}

static int del_s(weir_db *db, const char *k) { return weir_delete(db, NULL, k, strlen(k)); }

static void print_bytes(const char *label, const void *p, size_t n) {
    const unsigned char *b = p;
    fprintf(stderr, "%s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n && i < 64; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\')
            fputc(b[i], stderr);
        else
            fprintf(stderr, "\\x%02x", b[i]);
    }
    fprintf(stderr, "%s\"\n", n > 64 ? "..." : "");
}

/* 1 if `key` reads as `want` (want NULL: absent) through weir_get_alloc;
 * otherwise prints what was read and returns 0. */
static int expect_bin(weir_db *db, const weir_readopts *ro, const void *key, size_t klen,
                      const void *want, size_t wlen, int line) {
    void *v = NULL;
    size_t vl = 0;
    int rc = weir_get_alloc(db, ro, key, klen, &v, &vl);
    int ok;
    if (want == NULL) {
        ok = rc == WEIR_NOT_FOUND;
    } else {
        ok = rc == WEIR_OK && vl == wlen && (wlen == 0 || memcmp(v, want, wlen) == 0);
    }
    if (!ok) {
        fprintf(stderr, "line %d: read mismatch: status %s (%s)\n", line, weir_status_name(rc),
                rc == WEIR_OK || rc == WEIR_NOT_FOUND ? "" : weir_errmsg());
        print_bytes("  key     ", key, klen);
        if (want)
            print_bytes("  expected", want, wlen);
        else
            fprintf(stderr, "  expected: absent\n");
        if (rc == WEIR_OK) print_bytes("  got     ", v, vl);
    }
    if (rc == WEIR_OK) weir_free(v);
    return ok;
}

/* String form of expect_bin; want NULL means absent. */
static int expect_str(weir_db *db, const weir_readopts *ro, const char *key, const char *want,
                      int line) {
    return expect_bin(db, ro, key, strlen(key), want, want ? strlen(want) : 0, line);
}

#define EXPECT_STR(db, ro, k, v) CHECK(expect_str((db), (ro), (k), (v), __LINE__))

/* Walk from the current position (forward or backward) and return the keys
 * joined by ',' (malloc'd), with "=value" appended when with_values. */
static char *iter_walk(weir_iter *it, int forward, int with_values) {
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    if (!out) abort();
    out[0] = 0;
    for (; weir_iter_valid(it); forward ? weir_iter_next(it) : weir_iter_prev(it)) {
        size_t kl = 0, vl = 0;
        const char *k = weir_iter_key(it, &kl);
        const char *v = with_values ? weir_iter_value(it, &vl) : NULL;
        while (len + kl + vl + 4 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            if (!out) abort();
        }
        if (len) out[len++] = ',';
        memcpy(out + len, k, kl);
        len += kl;
        if (with_values) {
            out[len++] = '=';
            memcpy(out + len, v, vl);
            len += vl;
        }
        out[len] = 0;
    }
    return out;
}

/* Compare and free a walk result. */
static int walk_is(char *got, const char *want, int line) {
    int ok = strcmp(got, want) == 0;
    if (!ok) fprintf(stderr, "line %d: iteration\n  got:  [%s]\n  want: [%s]\n", line, got, want);
    free(got);
    return ok;
}

#define CHECK_WALK(it, fwd, vals, want) CHECK(walk_is(iter_walk((it), (fwd), (vals)), (want), __LINE__))

/* 1 if the iterator is valid at `want` (NULL: must be invalid). */
static int at_key(weir_iter *it, const char *want, int line) {
    if (!want) {
        if (!weir_iter_valid(it)) return 1;
        size_t kl;
        const void *k = weir_iter_key(it, &kl);
        fprintf(stderr, "line %d: iterator should be invalid\n", line);
        print_bytes("  at", k, kl);
        return 0;
    }
    if (!weir_iter_valid(it)) {
        fprintf(stderr, "line %d: iterator invalid, want \"%s\" (status %s)\n", line, want,
                weir_status_name(weir_iter_status(it)));
        return 0;
    }
    size_t kl;
    const void *k = weir_iter_key(it, &kl);
    if (kl != strlen(want) || memcmp(k, want, kl) != 0) {
        fprintf(stderr, "line %d: iterator position mismatch, want \"%s\"\n", line, want);
        print_bytes("  at", k, kl);
        return 0;
    }
    return 1;
}

#define CHECK_AT(it, want) CHECK(at_key((it), (want), __LINE__))

/* Read an integer property; returns 1 on success. */
static int prop_u64(weir_db *db, const char *name, uint64_t *out) {
    char *v = NULL;
    int rc = weir_property(db, name, &v);
    if (rc != WEIR_OK) {
        fprintf(stderr, "property %s: %s (%s)\n", name, weir_status_name(rc), weir_errmsg());
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    int ok = end != v && errno == 0;
    while (ok && *end == ' ') end++;
    if (ok && *end != 0 && *end != '\n') ok = 0;
    if (!ok) fprintf(stderr, "property %s: not a number: \"%s\"\n", name, v);
    *out = x;
    weir_free(v);
    return ok;
}

static weir_options *small_opts(void) {
    weir_options *o = weir_options_create();
    if (!o) abort();
    weir_options_set_write_buffer_size(o, 64 * 1024);
    weir_options_set_target_file_size(o, 64 * 1024);
    weir_options_set_max_bytes_for_level_base(o, 256 * 1024);
    return o;
}

static void fill_pattern(unsigned char *p, size_t n, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = test_rng_next(&r);
        memcpy(p + i, &x, 8);
    }
    for (; i < n; i++) p[i] = (unsigned char)test_rng_next(&r);
}

/* ---- open / close / flags ------------------------------------------------- */

TEST(reopen_persists) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-reopen");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK(db != NULL);
    char k[32], v[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "val%d", i * 7);
        CHECK_OK(put_s(db, k, v));
    }
    CHECK_OK(weir_close(db));
    db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "val%d", i * 7);
        EXPECT_STR(db, NULL, k, v);
    }
    /* Deletes and overwrites survive a reopen too. */
    for (int i = 0; i < 1000; i += 3) {
        snprintf(k, sizeof k, "key%05d", i);
        CHECK_OK(del_s(db, k));
    }
    CHECK_OK(put_s(db, "key00001", "overwritten"));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "val%d", i * 7);
        if (i % 3 == 0)
            EXPECT_STR(db, NULL, k, NULL);
        else if (i == 1)
            EXPECT_STR(db, NULL, k, "overwritten");
        else
            EXPECT_STR(db, NULL, k, v);
    }
    /* A third generation: flush, write more, reopen. */
    CHECK_OK(weir_flush(db));
    CHECK_OK(put_s(db, "after-flush", "x"));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "after-flush", "x");
    EXPECT_STR(db, NULL, "key00001", "overwritten");
    EXPECT_STR(db, NULL, "key00003", NULL);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(reopen_many_logs_small_buffer) {
    /* Many memtable switches with no explicit flush, then recovery. */
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-logs");
    weir_options *o = small_opts();
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    char k[32], v[200];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "k%06d", (i * 7919) % 5000);
        memset(v, 'a' + i % 26, sizeof v);
        snprintf(v, 20, "v%d", i);
        CHECK_OK(weir_put(db, NULL, k, strlen(k), v, sizeof v));
    }
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "k%06d", (i * 7919) % 5000);
        memset(v, 'a' + i % 26, sizeof v);
        snprintf(v, 20, "v%d", i);
        CHECK(expect_bin(db, NULL, k, strlen(k), v, sizeof v, __LINE__));
    }
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(create_if_missing_off_missing_dir) {
    char base[512], dir[600];
    test_tmpdir(base, sizeof base, "basic-missing");
    snprintf(dir, sizeof dir, "%s/not-there", base);
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    CHECK_OK(weir_options_set_create_if_missing(o, 0));
    weir_db *db = (weir_db *)1;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    if (rc == WEIR_OK) weir_close(db);
    CHECK(rc != WEIR_OK);
    CHECK(db == NULL);
    if (!strstr(weir_errmsg(), dir)) {
        fprintf(stderr, "message does not name %s: %s (%s)\n", dir, weir_errmsg(),
                weir_status_name(rc));
        CHECK(0);
    }
    printf("  create_if_missing=0: %s: %s\n", weir_status_name(rc), weir_errmsg());
    struct stat st;
    CHECK(stat(dir, &st) != 0); /* nothing was created */
    test_rmtree(base);
}

TEST(error_if_exists) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-exists");
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    CHECK_OK(weir_options_set_error_if_exists(o, 1));
    weir_db *db = NULL;
    /* An empty directory holds no store yet: allowed. */
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(weir_close(db));
    db = (weir_db *)1;
    CHECK_STATUS(weir_open(dir, o, &db), WEIR_EXISTS);
    CHECK(db == NULL);
    CHECK(strstr(weir_errmsg(), dir) != NULL);
    weir_options_destroy(o);
    /* The failed open left the store intact and unlocked. */
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "a", "1");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(open_existing_empty_dir) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-empty");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "nothing", NULL);
    weir_iter *it = NULL;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    weir_iter_seek_first(it);
    CHECK(!weir_iter_valid(it));
    weir_iter_seek_last(it);
    CHECK(!weir_iter_valid(it));
    CHECK_OK(weir_iter_status(it));
    weir_iter_destroy(it);
    /* Flushing and compacting an empty store are no-ops, not errors. */
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_OK(weir_close(db));
    /* A nested directory that does not exist yet is created. */
    char nested[600];
    snprintf(nested, sizeof nested, "%s/sub", dir);
    CHECK_OK(weir_open(nested, NULL, &db));
    CHECK_OK(put_s(db, "x", "y"));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(nested, NULL, &db));
    EXPECT_STR(db, NULL, "x", "y");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(second_open_same_process_busy) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-busy");
    weir_db *db = NULL, *db2 = (weir_db *)1;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "k", "v"));
    CHECK_STATUS(weir_open(dir, NULL, &db2), WEIR_BUSY);
    CHECK(db2 == NULL);
    if (!strstr(weir_errmsg(), dir)) {
        fprintf(stderr, "BUSY message does not name %s: %s\n", dir, weir_errmsg());
        CHECK(0);
    }
    /* The same directory spelled differently is still the same directory. */
    char alias[600];
    snprintf(alias, sizeof alias, "%s/./", dir);
    db2 = (weir_db *)1;
    CHECK_STATUS(weir_open(alias, NULL, &db2), WEIR_BUSY);
    CHECK(db2 == NULL);
    /* The failed opens did not disturb the open handle. */
    EXPECT_STR(db, NULL, "k", "v");
    CHECK_OK(put_s(db, "k2", "v2"));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "k2", "v2");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Child side of the cross-process lock test. It is forked before the parent
 * opens anything, so it inherits no engine state: the lock it meets is the
 * file lock, not an in-process table. Exit code 0 = all as expected. */
static void busy_child(const char *dir, int rfd, int wfd) {
    char c;
    if (read(rfd, &c, 1) != 1) _exit(90);
    weir_db *db = NULL;
    int rc = weir_open(dir, NULL, &db);
    int code = 0;
    if (rc != WEIR_BUSY) {
        fprintf(stderr, "child: open of a locked dir returned %s (%s), want WEIR_BUSY\n",
                weir_status_name(rc), weir_errmsg());
        code = 10 + rc;
    } else if (db != NULL) {
        code = 30;
    } else if (!strstr(weir_errmsg(), dir)) {
        fprintf(stderr, "child: BUSY message does not name the dir: %s\n", weir_errmsg());
        code = 31;
    }
    if (rc == WEIR_OK) weir_close(db);
    c = (char)code;
    if (write(wfd, &c, 1) != 1) _exit(91);
    /* Wait for the parent to close; then the open must succeed here. */
    if (read(rfd, &c, 1) != 1) _exit(92);
    db = NULL;
    rc = weir_open(dir, NULL, &db);
    if (rc != WEIR_OK) {
        fprintf(stderr, "child: open after parent closed: %s (%s)\n", weir_status_name(rc),
                weir_errmsg());
        _exit(code ? code : 40 + rc);
    }
    if (weir_put(db, NULL, "from-child", 10, "hello", 5) != WEIR_OK) code = code ? code : 60;
    if (weir_close(db) != WEIR_OK) code = code ? code : 61;
    _exit(code);
}

TEST(second_open_other_process_busy) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-busyproc");
    int p2c[2], c2p[2];
    CHECK(pipe(p2c) == 0);
    CHECK(pipe(c2p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p2c[1]);
        close(c2p[0]);
        busy_child(dir, p2c[0], c2p[1]);
    }
    close(p2c[0]);
    close(c2p[1]);
    weir_db *db = NULL;
    int rc = weir_open(dir, NULL, &db);
    char c = 'o', result = 99;
    int ok_open = rc == WEIR_OK;
    if (ok_open) {
        ok_open = put_s(db, "from-parent", "p") == WEIR_OK;
        if (write(p2c[1], &c, 1) != 1) ok_open = 0;
        if (read(c2p[0], &result, 1) != 1) result = 98;
        weir_close(db);
    }
    c = 'c';
    if (write(p2c[1], &c, 1) != 1) {
    }
    close(p2c[1]);
    close(c2p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_EQ_INT(rc, WEIR_OK);
    CHECK(ok_open);
    CHECK_EQ_INT(result, 0);
    CHECK(WIFEXITED(st));
    CHECK_EQ_INT(WEXITSTATUS(st), 0);
    /* Both processes' writes are there. */
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "from-parent", "p");
    EXPECT_STR(db, NULL, "from-child", "hello");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- point reads and writes ---------------------------------------------- */

TEST(put_get_delete) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-pgd");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "a", NULL);
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(put_s(db, "b", "2"));
    EXPECT_STR(db, NULL, "a", "1");
    EXPECT_STR(db, NULL, "b", "2");
    CHECK_OK(put_s(db, "a", "one"));
    EXPECT_STR(db, NULL, "a", "one");
    CHECK_OK(del_s(db, "a"));
    EXPECT_STR(db, NULL, "a", NULL);
    CHECK_OK(del_s(db, "a"));          /* deleting twice */
    CHECK_OK(del_s(db, "never-there")); /* deleting an absent key */
    EXPECT_STR(db, NULL, "never-there", NULL);
    CHECK_OK(put_s(db, "a", "again"));
    EXPECT_STR(db, NULL, "a", "again");
    /* Binary keys and values, embedded NULs, prefixes of each other. */
    const char k1[] = {'x', 0, 'y'}, k2[] = {'x', 0}, k3[] = {'x'};
    const char v1[] = {0, 0, 1, (char)0xff};
    CHECK_OK(weir_put(db, NULL, k1, 3, v1, 4));
    CHECK_OK(weir_put(db, NULL, k2, 2, "two", 3));
    CHECK_OK(weir_put(db, NULL, k3, 1, "one", 3));
    CHECK(expect_bin(db, NULL, k1, 3, v1, 4, __LINE__));
    CHECK(expect_bin(db, NULL, k2, 2, "two", 3, __LINE__));
    CHECK(expect_bin(db, NULL, k3, 1, "one", 3, __LINE__));
    /* Every write-option sync mode works. */
    weir_writeopts wo;
    memset(&wo, 0, sizeof wo);
    weir_sync_mode modes[] = {WEIR_SYNC_DEFAULT, WEIR_SYNC_NONE, WEIR_SYNC_FLUSH, WEIR_SYNC_FSYNC};
    for (int i = 0; i < 4; i++) {
        wo.sync = modes[i];
        char k[16];
        snprintf(k, sizeof k, "sync%d", i);
        CHECK_OK(weir_put(db, &wo, k, strlen(k), "s", 1));
        CHECK_OK(weir_delete(db, &wo, "b", 1));
    }
    EXPECT_STR(db, NULL, "sync3", "s");
    EXPECT_STR(db, NULL, "b", NULL);
    /* Same answers from a table as from the memtable. */
    CHECK_OK(weir_flush(db));
    EXPECT_STR(db, NULL, "a", "again");
    EXPECT_STR(db, NULL, "b", NULL);
    CHECK(expect_bin(db, NULL, k1, 3, v1, 4, __LINE__));
    CHECK(expect_bin(db, NULL, k2, 2, "two", 3, __LINE__));
    /* A delete in the memtable hides a value in a table. */
    CHECK_OK(del_s(db, "a"));
    EXPECT_STR(db, NULL, "a", NULL);
    CHECK_OK(weir_flush(db));
    EXPECT_STR(db, NULL, "a", NULL);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_STR(db, NULL, "a", NULL);
    CHECK(expect_bin(db, NULL, k3, 1, "one", 3, __LINE__));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(get_buffer_too_small) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-buf");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "k", "hello world"));
    CHECK_OK(put_s(db, "empty", ""));
    for (int round = 0; round < 2; round++) {
        char buf[32];
        size_t vl = 12345;
        memset(buf, '#', sizeof buf);
        CHECK_STATUS(weir_get(db, NULL, "k", 1, buf, 5, &vl), WEIR_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(vl, 11);
        CHECK(memcmp(buf, "hello", 5) == 0);
        CHECK(buf[5] == '#'); /* nothing written past cap */
        vl = 12345;
        CHECK_STATUS(weir_get(db, NULL, "k", 1, NULL, 0, &vl), WEIR_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(vl, 11);
        vl = 0;
        CHECK_STATUS(weir_get(db, NULL, "k", 1, buf, 10, &vl), WEIR_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(vl, 11);
        vl = 0;
        memset(buf, '#', sizeof buf);
        CHECK_OK(weir_get(db, NULL, "k", 1, buf, 11, &vl)); /* exact fit */
        CHECK_EQ_INT(vl, 11);
        CHECK(memcmp(buf, "hello world", 11) == 0);
        CHECK(buf[11] == '#');
        vl = 0;
        CHECK_OK(weir_get(db, NULL, "k", 1, buf, sizeof buf, &vl));
        CHECK_EQ_INT(vl, 11);
        vl = 77;
        CHECK_OK(weir_get(db, NULL, "empty", 5, NULL, 0, &vl));
        CHECK_EQ_INT(vl, 0);
        CHECK_STATUS(weir_get(db, NULL, "nope", 4, buf, sizeof buf, &vl), WEIR_NOT_FOUND);
        CHECK_OK(weir_flush(db)); /* second round reads from a table */
    }
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

static void count_calls(void *arg, const void *val, size_t vlen) {
    (void)val;
    (void)vlen;
    ++*(int *)arg;
}

/* memory_only point reads answer from what weir already holds in memory
 * and say WEIR_INCOMPLETE, reading nothing, when they would have to open a
 * table or read a block for the first time. */
TEST(memory_only_reads) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-memonly");
    weir_options *o = small_opts();
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    char k[32], v[128];
    memset(v, 'v', sizeof v);
    char base8[8] = {40, 0, 0, 0, 0, 0, 0, 0}; /* int64 40 under key-00510 */
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "key-%05d", i);
        if (i == 510) CHECK_OK(weir_put(db, NULL, k, strlen(k), base8, sizeof base8));
        else CHECK_OK(weir_put(db, NULL, k, strlen(k), v, sizeof v));
    }
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "in-memtable", "m"));
    weir_readopts mem = {.memory_only = 1};
    char buf[256];
    size_t vl = 0;
    /* The memtable answers at once. */
    CHECK_OK(weir_get(db, &mem, "in-memtable", 11, buf, sizeof buf, &vl));
    CHECK(vl == 1 && buf[0] == 'm');
    /* A table key after reopening (recovery reads only each table's first
     * and last blocks): nothing read yet, nothing delivered. */
    int calls = 0;
    CHECK_STATUS(weir_get_with(db, &mem, "key-00500", 9, count_calls, &calls), WEIR_INCOMPLETE);
    CHECK(strstr(weir_errmsg(), "memory_only") != NULL);
    CHECK_EQ_INT(calls, 0);
    /* Merge operands in the memtable over a base in an unread block: the
     * operands must not be folded onto nothing and handed over before the
     * read turns out incomplete (a callback that builds an object leaked
     * it, and was shown a value that never existed). */
    CHECK_OK(weir_add_int64(db, NULL, "key-00510", 9, 2));
    calls = 0;
    CHECK_STATUS(weir_get_with(db, &mem, "key-00510", 9, count_calls, &calls), WEIR_INCOMPLETE);
    CHECK_EQ_INT(calls, 0);
    CHECK_OK(weir_get(db, NULL, "key-00510", 9, buf, sizeof buf, &vl));
    CHECK(vl == 8 && buf[0] == 42);
    /* A plain read brings the block in; then memory_only answers. */
    CHECK_OK(weir_get(db, NULL, "key-00500", 9, buf, sizeof buf, &vl));
    CHECK_OK(weir_get_with(db, &mem, "key-00500", 9, count_calls, &calls));
    CHECK_EQ_INT(calls, 1);
    CHECK_OK(weir_get(db, &mem, "key-00501", 9, buf, sizeof buf, &vl)); /* same block */
    CHECK_EQ_INT(vl, sizeof v);
    /* A key in a block never read is still incomplete; a key the bloom
     * filter rules out is simply absent. */
    CHECK_STATUS(weir_get(db, &mem, "key-01500", 9, buf, sizeof buf, &vl), WEIR_INCOMPLETE);
    int absent = 0;
    for (int i = 0; i < 50 && !absent; i++) {
        snprintf(k, sizeof k, "nope-%d", i);
        absent = weir_get(db, &mem, k, strlen(k), buf, sizeof buf, &vl) == WEIR_NOT_FOUND;
    }
    CHECK(absent);
    /* multi_get: per-key statuses. */
    const void *keys[3] = {"key-00502", "key-01501", "in-memtable"};
    size_t klens[3] = {9, 9, 11};
    void *vals[3];
    size_t vlens[3];
    int st[3];
    CHECK_STATUS(weir_multi_get(db, &mem, 3, keys, klens, vals, vlens, st), WEIR_INCOMPLETE);
    CHECK_EQ_INT(st[0], WEIR_OK);
    CHECK_EQ_INT(st[1], WEIR_INCOMPLETE);
    CHECK_EQ_INT(st[2], WEIR_OK);
    for (int i = 0; i < 3; i++) weir_free(vals[i]);
    /* Iterators cannot honour it. */
    weir_iter *it = NULL;
    CHECK_STATUS(weir_iter_create(db, &mem, &it), WEIR_INVALID);
    CHECK(it == NULL);
    CHECK(strcmp(weir_status_name(WEIR_INCOMPLETE), "WEIR_INCOMPLETE") == 0);
    CHECK_OK(weir_close(db));
    /* More tables than max_open_files: a table the cache closed again is
     * not reopened by a memory_only read. */
    CHECK_OK(weir_destroy(dir));
    CHECK_OK(weir_options_set_max_open_files(o, 16));
    CHECK_OK(weir_open(dir, o, &db));
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "key-%05d", i);
        CHECK_OK(weir_put(db, NULL, k, strlen(k), v, sizeof v));
    }
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    int not_open = 0;
    for (int i = 0; i < 20000 && !not_open; i += 97) {
        snprintf(k, sizeof k, "key-%05d", i);
        int rc = weir_get(db, &mem, k, strlen(k), buf, sizeof buf, &vl);
        if (rc == WEIR_INCOMPLETE && strstr(weir_errmsg(), "is not open")) not_open = 1;
        else CHECK(rc == WEIR_OK || rc == WEIR_INCOMPLETE);
        CHECK_OK(weir_get(db, NULL, k, strlen(k), buf, sizeof buf, &vl));
    }
    CHECK(not_open);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(get_alloc_values) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-alloc");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "k", "value"));
    CHECK_OK(weir_put(db, NULL, "z", 1, NULL, 0));
    CHECK_OK(weir_put(db, NULL, "z2", 2, "ignored", 0));
    for (int round = 0; round < 2; round++) {
        void *v = NULL;
        size_t vl = 99;
        CHECK_OK(weir_get_alloc(db, NULL, "z", 1, &v, &vl));
        CHECK(v != NULL);
        CHECK_EQ_INT(vl, 0);
        weir_free(v);
        v = NULL;
        vl = 99;
        CHECK_OK(weir_get_alloc(db, NULL, "z2", 2, &v, &vl));
        CHECK(v != NULL);
        CHECK_EQ_INT(vl, 0);
        weir_free(v);
        v = NULL;
        CHECK_OK(weir_get_alloc(db, NULL, "k", 1, &v, &vl));
        CHECK(v != NULL && vl == 5 && memcmp(v, "value", 5) == 0);
        weir_free(v);
        v = NULL;
        CHECK_STATUS(weir_get_alloc(db, NULL, "missing", 7, &v, &vl), WEIR_NOT_FOUND);
        CHECK_OK(weir_flush(db));
    }
    weir_free(NULL);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(multi_get_mixed) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-mget");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    char keys[20][16];
    const void *kp[20];
    size_t kl[20];
    for (int i = 0; i < 20; i++) {
        snprintf(keys[i], sizeof keys[i], "mk%02d", i % 17); /* some duplicates */
        kp[i] = keys[i];
        kl[i] = strlen(keys[i]);
    }
    for (int i = 0; i < 17; i += 2) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        CHECK_OK(put_s(db, keys[i], i == 4 ? "" : v));
    }
    CHECK_OK(weir_flush(db));
    CHECK_OK(put_s(db, "mk06", "newer")); /* one in the memtable over a table */
    CHECK_OK(del_s(db, "mk08"));          /* one deleted over a table */
    for (int round = 0; round < 2; round++) {
        void *vals[20];
        size_t vlens[20];
        int st[20];
        for (int i = 0; i < 20; i++) {
            vals[i] = (void *)1;
            st[i] = -1;
        }
        CHECK_OK(weir_multi_get(db, NULL, 20, kp, kl, vals, vlens, st));
        for (int i = 0; i < 20; i++) {
            int j = i % 17;
            if (j % 2 == 1 || j == 8) {
                CHECK_EQ_INT(st[i], WEIR_NOT_FOUND);
                CHECK(vals[i] == NULL);
                continue;
            }
            CHECK_EQ_INT(st[i], WEIR_OK);
            CHECK(vals[i] != NULL);
            char want[16];
            snprintf(want, sizeof want, "v%d", j);
            const char *w = j == 4 ? "" : j == 6 ? "newer" : want;
            if (vlens[i] != strlen(w) || memcmp(vals[i], w, vlens[i]) != 0) {
                fprintf(stderr, "multi_get[%d] %s: want %s\n", i, keys[i], w);
                CHECK(0);
            }
        }
        for (int i = 0; i < 20; i++) weir_free(vals[i]);
        CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    /* n = 0 is a no-op. */
    CHECK_OK(weir_multi_get(db, NULL, 0, NULL, NULL, NULL, NULL, NULL));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- batches --------------------------------------------------------------- */

TEST(batch_semantics) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-batch");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "pre", "existing"));
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    CHECK_EQ_INT(weir_batch_count(b), 0);
    size_t empty_bytes = weir_batch_bytes(b);
    CHECK_OK(weir_batch_put(b, "a", 1, "1", 1));
    CHECK_OK(weir_batch_put(b, "b", 1, "2", 1));
    CHECK_OK(weir_batch_delete(b, "a", 1));  /* later delete wins */
    CHECK_OK(weir_batch_put(b, "c", 1, "3", 1));
    CHECK_OK(weir_batch_put(b, "c", 1, "4", 1)); /* later put wins */
    CHECK_OK(weir_batch_delete(b, "d", 1));
    CHECK_OK(weir_batch_put(b, "d", 1, "5", 1)); /* put after delete wins */
    CHECK_OK(weir_batch_delete(b, "pre", 3));
    CHECK_EQ_INT(weir_batch_count(b), 8);
    size_t bytes = weir_batch_bytes(b);
    CHECK(bytes > empty_bytes);
    CHECK(bytes >= empty_bytes + 8 * 2); /* every op carries its key at least */
    CHECK_OK(weir_write(db, NULL, b));
    CHECK_EQ_INT(weir_batch_count(b), 8); /* unchanged by the write */
    CHECK_EQ_INT(weir_batch_bytes(b), bytes);
    EXPECT_STR(db, NULL, "a", NULL);
    EXPECT_STR(db, NULL, "b", "2");
    EXPECT_STR(db, NULL, "c", "4");
    EXPECT_STR(db, NULL, "d", "5");
    EXPECT_STR(db, NULL, "pre", NULL);
    /* Written a second time: it applies again over newer writes. */
    CHECK_OK(put_s(db, "c", "newer"));
    CHECK_OK(put_s(db, "a", "back"));
    CHECK_OK(weir_write(db, NULL, b));
    EXPECT_STR(db, NULL, "c", "4");
    EXPECT_STR(db, NULL, "a", NULL);
    /* Clear empties it; an empty batch writes fine. */
    weir_batch_clear(b);
    CHECK_EQ_INT(weir_batch_count(b), 0);
    CHECK_EQ_INT(weir_batch_bytes(b), empty_bytes);
    CHECK_OK(weir_write(db, NULL, b));
    CHECK_OK(weir_batch_put(b, "after-clear", 11, "x", 1));
    CHECK_EQ_INT(weir_batch_count(b), 1);
    weir_writeopts wo = {.sync = WEIR_SYNC_FSYNC};
    CHECK_OK(weir_write(db, &wo, b));
    EXPECT_STR(db, NULL, "after-clear", "x");
    EXPECT_STR(db, NULL, "b", "2");
    /* A large batch (many ops, spans several log blocks) survives reopen. */
    weir_batch_clear(b);
    char k[32], v[100];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "big%05d", i);
        memset(v, 'q', sizeof v);
        CHECK_OK(weir_batch_put(b, k, strlen(k), v, sizeof v));
    }
    CHECK_EQ_INT(weir_batch_count(b), 3000);
    CHECK_OK(weir_write(db, NULL, b));
    weir_batch_destroy(b);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "a", NULL);
    EXPECT_STR(db, NULL, "c", "4");
    EXPECT_STR(db, NULL, "pre", NULL);
    EXPECT_STR(db, NULL, "after-clear", "x");
    memset(v, 'q', sizeof v);
    for (int i = 0; i < 3000; i += 97) {
        snprintf(k, sizeof k, "big%05d", i);
        CHECK(expect_bin(db, NULL, k, strlen(k), v, sizeof v, __LINE__));
    }
    CHECK_OK(weir_close(db));
    weir_batch_destroy(NULL);
    test_rmtree(dir);
}

/* ---- key and value sizes --------------------------------------------------- */

TEST(empty_key) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-emptykey");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(weir_put(db, NULL, "", 0, "empty-key-value", 15));
    CHECK_OK(put_s(db, "a", "1"));
    CHECK(expect_bin(db, NULL, "", 0, "empty-key-value", 15, __LINE__));
    CHECK(expect_bin(db, NULL, NULL, 0, "empty-key-value", 15, __LINE__));
    weir_iter *it = NULL;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    weir_iter_seek_first(it);
    CHECK_AT(it, ""); /* the empty key sorts first */
    weir_iter_next(it);
    CHECK_AT(it, "a");
    weir_iter_prev(it);
    CHECK_AT(it, "");
    weir_iter_prev(it);
    CHECK_AT(it, NULL);
    weir_iter_seek(it, "", 0);
    CHECK_AT(it, "");
    weir_iter_seek_for_prev(it, "", 0);
    CHECK_AT(it, "");
    weir_iter_destroy(it);
    CHECK_OK(weir_flush(db));
    CHECK(expect_bin(db, NULL, "", 0, "empty-key-value", 15, __LINE__));
    CHECK_OK(weir_delete(db, NULL, "", 0));
    CHECK(expect_bin(db, NULL, "", 0, NULL, 0, __LINE__));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK(expect_bin(db, NULL, "", 0, NULL, 0, __LINE__));
    EXPECT_STR(db, NULL, "a", "1");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(max_key_size) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-maxkey");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    size_t n = WEIR_MAX_KEY_SIZE;
    unsigned char *big = malloc(n + 1);
    CHECK(big != NULL);
    fill_pattern(big, n + 1, 42);
    big[0] = 'm';
    CHECK_OK(weir_put(db, NULL, big, n, "max", 3));
    CHECK_OK(put_s(db, "a", "before"));
    CHECK_OK(put_s(db, "z", "after"));
    CHECK(expect_bin(db, NULL, big, n, "max", 3, __LINE__));
    /* One byte too long: refused by every write path. */
    CHECK_STATUS(weir_put(db, NULL, big, n + 1, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_delete(db, NULL, big, n + 1), WEIR_INVALID);
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    int rc = weir_batch_put(b, big, n + 1, "x", 1);
    if (rc == WEIR_OK) {
        CHECK_STATUS(weir_write(db, NULL, b), WEIR_INVALID);
    } else {
        CHECK_EQ_INT(rc, WEIR_INVALID);
    }
    weir_batch_clear(b);
    rc = weir_batch_delete(b, big, n + 1);
    if (rc == WEIR_OK) {
        CHECK_STATUS(weir_write(db, NULL, b), WEIR_INVALID);
    } else {
        CHECK_EQ_INT(rc, WEIR_INVALID);
    }
    weir_batch_destroy(b);
    CHECK(expect_bin(db, NULL, big, n, "max", 3, __LINE__));
    /* The max key through an iterator, a table, and a reopen. */
    for (int round = 0; round < 3; round++) {
        weir_iter *it = NULL;
        CHECK_OK(weir_iter_create(db, NULL, &it));
        weir_iter_seek(it, "b", 1);
        CHECK(weir_iter_valid(it));
        size_t kl = 0;
        const void *k = weir_iter_key(it, &kl);
        CHECK(kl == n && memcmp(k, big, n) == 0);
        weir_iter_next(it);
        CHECK_AT(it, "z");
        weir_iter_prev(it);
        k = weir_iter_key(it, &kl);
        CHECK(weir_iter_valid(it) && kl == n && memcmp(k, big, n) == 0);
        weir_iter_destroy(it);
        CHECK(expect_bin(db, NULL, big, n, "max", 3, __LINE__));
        EXPECT_STR(db, NULL, "a", "before");
        EXPECT_STR(db, NULL, "z", "after");
        if (round == 0) CHECK_OK(weir_flush(db));
        if (round == 1) {
            CHECK_OK(weir_close(db));
            CHECK_OK(weir_open(dir, NULL, &db));
        }
    }
    free(big);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(large_values) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-bigval");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    size_t n = 16u << 20;
    unsigned char *v1 = malloc(n), *v2 = malloc(n + 3);
    CHECK(v1 && v2);
    fill_pattern(v1, n, 1);
    fill_pattern(v2, n + 3, 2);
    CHECK_OK(weir_put(db, NULL, "big1", 4, v1, n));
    CHECK_OK(put_s(db, "small", "s"));
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    CHECK_OK(weir_batch_put(b, "big2", 4, v2, n + 3));
    CHECK_OK(weir_write(db, NULL, b));
    weir_batch_destroy(b);
    for (int round = 0; round < 3; round++) {
        CHECK(expect_bin(db, NULL, "big1", 4, v1, n, __LINE__));
        CHECK(expect_bin(db, NULL, "big2", 4, v2, n + 3, __LINE__));
        EXPECT_STR(db, NULL, "small", "s");
        size_t vl = 0;
        unsigned char tiny[8];
        CHECK_STATUS(weir_get(db, NULL, "big1", 4, tiny, sizeof tiny, &vl), WEIR_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(vl, n);
        CHECK(memcmp(tiny, v1, sizeof tiny) == 0);
        weir_iter *it = NULL;
        CHECK_OK(weir_iter_create(db, NULL, &it));
        weir_iter_seek_first(it);
        CHECK_AT(it, "big1");
        const void *p = weir_iter_value(it, &vl);
        CHECK(vl == n && memcmp(p, v1, n) == 0);
        weir_iter_next(it);
        CHECK_AT(it, "big2");
        p = weir_iter_value(it, &vl);
        CHECK(vl == n + 3 && memcmp(p, v2, n + 3) == 0);
        weir_iter_destroy(it);
        if (round == 0) CHECK_OK(weir_flush(db));
        if (round == 1) {
            CHECK_OK(weir_close(db));
            CHECK_OK(weir_open(dir, NULL, &db));
        }
    }
    free(v1);
    free(v2);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- snapshots ------------------------------------------------------------- */

TEST(snapshot_isolation) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-snap");
    weir_options *o = small_opts();
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(put_s(db, "c", "c-old"));
    CHECK_OK(put_s(db, "d", "d-old"));
    CHECK_OK(weir_flush(db));
    CHECK_OK(put_s(db, "d", "d-mid"));
    weir_snapshot *s = NULL;
    CHECK_OK(weir_snapshot_create(db, &s));
    CHECK(s != NULL);
    uint64_t seq1 = weir_snapshot_sequence(s);
    uint64_t last = 0;
    CHECK(prop_u64(db, "weir.last-sequence", &last));
    CHECK_EQ_INT(seq1, last);
    uint64_t nsnap = 0;
    CHECK(prop_u64(db, "weir.num-snapshots", &nsnap));
    CHECK_EQ_INT(nsnap, 1);

    CHECK_OK(put_s(db, "a", "2"));
    CHECK_OK(put_s(db, "b", "new"));
    CHECK_OK(del_s(db, "c"));
    CHECK_OK(put_s(db, "d", "d-new"));
    weir_snapshot *s2 = NULL;
    CHECK_OK(weir_snapshot_create(db, &s2));
    CHECK(weir_snapshot_sequence(s2) > seq1);
    CHECK_OK(put_s(db, "a", "3"));
    weir_readopts ro, ro2;
    memset(&ro, 0, sizeof ro);
    memset(&ro2, 0, sizeof ro2);
    ro.snapshot = s;
    ro2.snapshot = s2;
    /* Churn enough to force flushes and compactions underneath. */
    char k[32], v[64];
    for (int i = 0; i < 4000; i++) {
        snprintf(k, sizeof k, "fill%05d", i % 500);
        snprintf(v, sizeof v, "%d-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
        CHECK_OK(put_s(db, k, v));
        if (i % 700 == 0) {
            CHECK_OK(put_s(db, "a", v));
            CHECK_OK(del_s(db, "d"));
        }
    }
    for (int phase = 0; phase < 3; phase++) {
        EXPECT_STR(db, &ro, "a", "1");
        EXPECT_STR(db, &ro, "b", NULL);
        EXPECT_STR(db, &ro, "c", "c-old");
        EXPECT_STR(db, &ro, "d", "d-mid");
        EXPECT_STR(db, &ro, "fill00001", NULL);
        EXPECT_STR(db, &ro2, "a", "2");
        EXPECT_STR(db, &ro2, "b", "new");
        EXPECT_STR(db, &ro2, "c", NULL);
        EXPECT_STR(db, &ro2, "d", "d-new");
        EXPECT_STR(db, NULL, "d", NULL);
        EXPECT_STR(db, NULL, "c", NULL);
        /* weir_get and multi_get honour the snapshot too. */
        char buf[16];
        size_t vl = 0;
        CHECK_OK(weir_get(db, &ro, "a", 1, buf, sizeof buf, &vl));
        CHECK(vl == 1 && buf[0] == '1');
        const void *mk[3] = {"a", "b", "c"};
        size_t mkl[3] = {1, 1, 1};
        void *mv[3];
        size_t mvl[3];
        int mst[3];
        CHECK_OK(weir_multi_get(db, &ro, 3, mk, mkl, mv, mvl, mst));
        CHECK(mst[0] == WEIR_OK && mvl[0] == 1 && memcmp(mv[0], "1", 1) == 0);
        CHECK(mst[1] == WEIR_NOT_FOUND && mv[1] == NULL);
        CHECK(mst[2] == WEIR_OK && mvl[2] == 5 && memcmp(mv[2], "c-old", 5) == 0);
        weir_free(mv[0]);
        weir_free(mv[2]);
        /* Iterator over the snapshot: exactly the state at that time. */
        weir_iter *it = NULL;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        weir_iter_seek_first(it);
        CHECK_WALK(it, 1, 1, "a=1,c=c-old,d=d-mid");
        weir_iter_seek_last(it);
        CHECK_WALK(it, 0, 1, "d=d-mid,c=c-old,a=1");
        CHECK_OK(weir_iter_status(it));
        weir_iter_destroy(it);
        if (phase == 0) CHECK_OK(weir_flush(db));
        if (phase == 1) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    weir_snapshot_release(db, s2);
    weir_snapshot_release(db, s);
    CHECK(prop_u64(db, "weir.num-snapshots", &nsnap));
    CHECK_EQ_INT(nsnap, 0);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_STR(db, NULL, "c", NULL);
    EXPECT_STR(db, NULL, "b", "new");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* ---- iterators ------------------------------------------------------------- */

/* Keys "k000", "k002", ..., "k098" with value = number. */
static int fill_even(weir_db *db) {
    char k[16], v[16];
    for (int i = 0; i < 100; i += 2) {
        snprintf(k, sizeof k, "k%03d", i);
        snprintf(v, sizeof v, "%d", i);
        int rc = put_s(db, k, v);
        if (rc != WEIR_OK) return rc;
    }
    return WEIR_OK;
}

static char *even_list(int from, int to, int step) {
    char *out = calloc(1, 1024);
    if (!out) abort();
    for (int i = from; step > 0 ? i <= to : i >= to; i += step) {
        if (*out) strcat(out, ",");
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        strcat(out, k);
    }
    return out;
}

TEST(iterator_positioning) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-iter");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(fill_even(db));
    for (int round = 0; round < 3; round++) {
        weir_iter *it = NULL;
        CHECK_OK(weir_iter_create(db, NULL, &it));
        CHECK(!weir_iter_valid(it)); /* starts unpositioned */
        weir_iter_seek_first(it);
        CHECK_AT(it, "k000");
        size_t vl = 0;
        const char *v = weir_iter_value(it, &vl);
        CHECK(vl == 1 && v[0] == '0');
        weir_iter_seek_last(it);
        CHECK_AT(it, "k098");
        weir_iter_seek(it, "k001", 4);
        CHECK_AT(it, "k002");
        weir_iter_seek(it, "k002", 4);
        CHECK_AT(it, "k002");
        weir_iter_seek(it, "k", 1);
        CHECK_AT(it, "k000");
        weir_iter_seek(it, "k0985", 5);
        CHECK_AT(it, NULL);
        weir_iter_seek(it, "z", 1);
        CHECK_AT(it, NULL);
        weir_iter_seek_for_prev(it, "k001", 4);
        CHECK_AT(it, "k000");
        weir_iter_seek_for_prev(it, "k002", 4);
        CHECK_AT(it, "k002");
        weir_iter_seek_for_prev(it, "k0025", 5);
        CHECK_AT(it, "k002");
        weir_iter_seek_for_prev(it, "a", 1);
        CHECK_AT(it, NULL);
        weir_iter_seek_for_prev(it, "zzz", 3);
        CHECK_AT(it, "k098");
        /* Direction switches. */
        weir_iter_seek(it, "k010", 4);
        weir_iter_next(it);
        CHECK_AT(it, "k012");
        weir_iter_prev(it);
        CHECK_AT(it, "k010");
        weir_iter_prev(it);
        CHECK_AT(it, "k008");
        weir_iter_next(it);
        CHECK_AT(it, "k010");
        weir_iter_next(it);
        weir_iter_prev(it);
        weir_iter_prev(it);
        weir_iter_next(it);
        CHECK_AT(it, "k010");
        weir_iter_seek_for_prev(it, "k0111", 5);
        CHECK_AT(it, "k010");
        weir_iter_next(it);
        CHECK_AT(it, "k012");
        weir_iter_seek_last(it);
        weir_iter_prev(it);
        CHECK_AT(it, "k096");
        weir_iter_next(it);
        CHECK_AT(it, "k098");
        weir_iter_next(it);
        CHECK_AT(it, NULL);
        weir_iter_seek_first(it);
        weir_iter_prev(it);
        CHECK_AT(it, NULL);
        /* Full walks. */
        char *want = even_list(0, 98, 2);
        weir_iter_seek_first(it);
        CHECK(walk_is(iter_walk(it, 1, 0), want, __LINE__));
        free(want);
        want = even_list(98, 0, -2);
        weir_iter_seek_last(it);
        CHECK(walk_is(iter_walk(it, 0, 0), want, __LINE__));
        free(want);
        CHECK_OK(weir_iter_status(it));
        weir_iter_destroy(it);
        if (round == 0) CHECK_OK(weir_flush(db));
        if (round == 1) {
            /* Split across sources: odd keys in the memtable, evens in a table. */
            char k[16];
            for (int i = 1; i < 100; i += 2) {
                snprintf(k, sizeof k, "k%03d", i);
                CHECK_OK(put_s(db, k, "odd"));
            }
            for (int i = 1; i < 100; i += 2) {
                snprintf(k, sizeof k, "k%03d", i);
                CHECK_OK(del_s(db, k));
            }
        }
    }
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* A random walk of seeks and steps over data spread across the memtable,
 * level 0 and deeper levels, with overwrites and deletes, against a sorted
 * array. Stresses the merging iterator's direction switches. */
TEST(iterator_random_walk_layers) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-walk");
    weir_options *o = small_opts();
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    enum { NK = 2000 };
    static int val[NK]; /* -1 absent, else the value number */
    test_rng r;
    test_rng_seed(&r, 20240601);
    for (int i = 0; i < NK; i++) val[i] = -1;
    char k[16], v[64];
    for (int phase = 0; phase < 4; phase++) {
        for (int n = 0; n < 1500; n++) {
            int i = (int)test_rng_uniform(&r, NK);
            if (test_rng_uniform(&r, 4) == 0) {
                snprintf(k, sizeof k, "w%05d", i * 3);
                CHECK_OK(del_s(db, k));
                val[i] = -1;
            } else {
                int x = (int)test_rng_uniform(&r, 1000000);
                snprintf(k, sizeof k, "w%05d", i * 3);
                snprintf(v, sizeof v, "%d-%040d", x, i);
                CHECK_OK(put_s(db, k, v));
                val[i] = x;
            }
        }
        if (phase == 0) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
        if (phase == 1 || phase == 2) CHECK_OK(weir_flush(db));
    }
    weir_iter *it = NULL;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    int pos = -1; /* model position: index into key space, -1 invalid */
    for (int step = 0; step < 20000; step++) {
        int op = (int)test_rng_uniform(&r, 10);
        if (pos < 0 && op >= 4) op = (int)test_rng_uniform(&r, 4);
        if (op == 0) {
            weir_iter_seek_first(it);
            for (pos = 0; pos < NK && val[pos] < 0; pos++) {
            }
            if (pos == NK) pos = -1;
        } else if (op == 1) {
            weir_iter_seek_last(it);
            for (pos = NK - 1; pos >= 0 && val[pos] < 0; pos--) {
            }
        } else if (op == 2) {
            int t = (int)test_rng_uniform(&r, NK * 3 + 3);
            snprintf(k, sizeof k, "w%05d", t);
            weir_iter_seek(it, k, strlen(k));
            for (pos = (t + 2) / 3; pos < NK && val[pos] < 0; pos++) {
            }
            if (pos >= NK) pos = -1;
        } else if (op == 3) {
            int t = (int)test_rng_uniform(&r, NK * 3 + 3);
            snprintf(k, sizeof k, "w%05d", t);
            weir_iter_seek_for_prev(it, k, strlen(k));
            pos = t / 3;
            if (pos >= NK) pos = NK - 1;
            for (; pos >= 0 && val[pos] < 0; pos--) {
            }
        } else if (op < 7) {
            weir_iter_next(it);
            for (pos++; pos < NK && val[pos] < 0; pos++) {
            }
            if (pos >= NK) pos = -1;
        } else {
            weir_iter_prev(it);
            for (pos--; pos >= 0 && val[pos] < 0; pos--) {
            }
        }
        if (pos < 0) {
            if (weir_iter_valid(it)) {
                fprintf(stderr, "step %d op %d: iterator valid, model says end\n", step, op);
                CHECK(0);
            }
            continue;
        }
        snprintf(k, sizeof k, "w%05d", pos * 3);
        if (!at_key(it, k, __LINE__)) {
            fprintf(stderr, "step %d op %d\n", step, op);
            CHECK(0);
        }
        size_t vl = 0;
        const char *gv = weir_iter_value(it, &vl);
        snprintf(v, sizeof v, "%d-%040d", val[pos], pos);
        if (vl != strlen(v) || memcmp(gv, v, vl) != 0) {
            fprintf(stderr, "step %d: value mismatch at %s\n", step, k);
            CHECK(0);
        }
    }
    CHECK_OK(weir_iter_status(it));
    weir_iter_destroy(it);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(iterator_bounds) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-bounds");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(fill_even(db));
    for (int round = 0; round < 2; round++) {
        char lo[8] = "k020", hi[8] = "k040";
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        ro.lower_bound = lo;
        ro.lower_bound_len = 4;
        ro.upper_bound = hi;
        ro.upper_bound_len = 4;
        weir_iter *it = NULL;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        memcpy(lo, "k000", 4); /* bounds were copied at creation */
        memcpy(hi, "k099", 4);
        weir_iter_seek_first(it);
        CHECK_AT(it, "k020");
        char *want = even_list(20, 38, 2);
        CHECK(walk_is(iter_walk(it, 1, 0), want, __LINE__));
        free(want);
        weir_iter_seek_last(it);
        CHECK_AT(it, "k038");
        want = even_list(38, 20, -2);
        CHECK(walk_is(iter_walk(it, 0, 0), want, __LINE__));
        free(want);
        weir_iter_seek(it, "k000", 4);
        CHECK_AT(it, "k020");
        weir_iter_seek(it, "k039", 4);
        CHECK_AT(it, NULL);
        weir_iter_seek(it, "k050", 4);
        CHECK_AT(it, NULL);
        weir_iter_seek_for_prev(it, "k099", 4);
        CHECK_AT(it, "k038");
        weir_iter_seek_for_prev(it, "k040", 4); /* upper bound is exclusive */
        CHECK_AT(it, "k038");
        weir_iter_seek_for_prev(it, "k010", 4);
        CHECK_AT(it, NULL);
        weir_iter_seek(it, "k020", 4);
        weir_iter_prev(it);
        CHECK_AT(it, NULL);
        weir_iter_seek_for_prev(it, "k038", 4);
        weir_iter_next(it);
        CHECK_AT(it, NULL);
        weir_iter_destroy(it);

        /* Only a lower bound / only an upper bound. */
        memset(&ro, 0, sizeof ro);
        ro.lower_bound = "k0955";
        ro.lower_bound_len = 5;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        weir_iter_seek_first(it);
        CHECK_WALK(it, 1, 0, "k096,k098");
        weir_iter_seek_last(it);
        CHECK_WALK(it, 0, 0, "k098,k096");
        weir_iter_destroy(it);
        memset(&ro, 0, sizeof ro);
        ro.upper_bound = "k004";
        ro.upper_bound_len = 4;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        weir_iter_seek_last(it);
        CHECK_WALK(it, 0, 0, "k002,k000");
        weir_iter_seek(it, "k003", 4);
        CHECK_AT(it, NULL);
        weir_iter_destroy(it);
        /* Empty range: lower == upper. */
        memset(&ro, 0, sizeof ro);
        ro.lower_bound = "k010";
        ro.lower_bound_len = 4;
        ro.upper_bound = "k010";
        ro.upper_bound_len = 4;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        weir_iter_seek_first(it);
        CHECK_AT(it, NULL);
        weir_iter_seek_last(it);
        CHECK_AT(it, NULL);
        weir_iter_destroy(it);
        CHECK_OK(weir_flush(db));
    }
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(iterator_prefix_mode) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-prefix");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    const char *keys[] = {"a", "a1", "aa", "ab", "ab1", "ab2", "abc", "abzz", "ac", "ac1", "b", "b1"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) CHECK_OK(put_s(db, keys[i], keys[i]));
    /* Keys of all-0xff bytes: the prefix has no successor. */
    CHECK_OK(weir_put(db, NULL, "\xff\xfe", 2, "fe", 2));
    CHECK_OK(weir_put(db, NULL, "\xff\xff", 2, "ff", 2));
    CHECK_OK(weir_put(db, NULL, "\xff\xff\x01", 3, "ff01", 4));
    CHECK_OK(weir_put(db, NULL, "\xff\xff\xff", 3, "ffff", 4));
    for (int round = 0; round < 3; round++) {
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        char pfx[4] = "ab";
        ro.prefix = pfx;
        ro.prefix_len = 2;
        weir_iter *it = NULL;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        pfx[0] = 'z'; /* copied at creation */
        weir_iter_seek_first(it);
        CHECK_WALK(it, 1, 1, "ab=ab,ab1=ab1,ab2=ab2,abc=abc,abzz=abzz");
        weir_iter_seek_last(it);
        CHECK_AT(it, "abzz");
        CHECK_WALK(it, 0, 0, "abzz,abc,ab2,ab1,ab");
        weir_iter_seek(it, "a", 1);
        CHECK_AT(it, "ab");
        weir_iter_seek(it, "ab15", 4);
        CHECK_AT(it, "ab2");
        weir_iter_seek(it, "ac", 2);
        CHECK_AT(it, NULL);
        weir_iter_seek(it, "abzzz", 5);
        CHECK_AT(it, NULL);
        weir_iter_seek_for_prev(it, "ac", 2);
        CHECK_AT(it, "abzz");
        weir_iter_seek_for_prev(it, "zzz", 3);
        CHECK_AT(it, "abzz");
        weir_iter_seek_for_prev(it, "aa", 2);
        CHECK_AT(it, NULL);
        weir_iter_seek_for_prev(it, "abb", 3);
        CHECK_AT(it, "ab2");
        weir_iter_seek(it, "ab", 2);
        weir_iter_prev(it);
        CHECK_AT(it, NULL);
        weir_iter_seek_last(it);
        weir_iter_next(it);
        CHECK_AT(it, NULL);
        CHECK_OK(weir_iter_status(it));
        weir_iter_destroy(it);

        /* Prefix matching nothing. */
        ro.prefix = "abd";
        ro.prefix_len = 3;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        weir_iter_seek_first(it);
        CHECK_AT(it, NULL);
        weir_iter_seek_last(it);
        CHECK_AT(it, NULL);
        weir_iter_seek(it, "abc", 3);
        CHECK_AT(it, NULL);
        weir_iter_seek_for_prev(it, "abz", 3);
        CHECK_AT(it, NULL);
        weir_iter_destroy(it);

        /* 0xff prefix: seek_last must land on the last key with it. */
        ro.prefix = "\xff\xff";
        ro.prefix_len = 2;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        weir_iter_seek_last(it);
        CHECK_AT(it, "\xff\xff\xff");
        weir_iter_prev(it);
        CHECK_AT(it, "\xff\xff\x01");
        weir_iter_prev(it);
        CHECK_AT(it, "\xff\xff");
        weir_iter_prev(it);
        CHECK_AT(it, NULL);
        weir_iter_seek_first(it);
        CHECK_AT(it, "\xff\xff");
        weir_iter_destroy(it);

        /* Prefix plus bounds: the intersection. */
        memset(&ro, 0, sizeof ro);
        ro.prefix = "ab";
        ro.prefix_len = 2;
        ro.lower_bound = "ab1";
        ro.lower_bound_len = 3;
        ro.upper_bound = "abc";
        ro.upper_bound_len = 3;
        CHECK_OK(weir_iter_create(db, &ro, &it));
        weir_iter_seek_first(it);
        CHECK_WALK(it, 1, 0, "ab1,ab2");
        weir_iter_seek_last(it);
        CHECK_WALK(it, 0, 0, "ab2,ab1");
        weir_iter_destroy(it);
        if (round == 0) {
            CHECK_OK(weir_flush(db));
            /* A newer delete and insert in the memtable over the table. */
            CHECK_OK(del_s(db, "abzz"));
            CHECK_OK(put_s(db, "abzz", "abzz"));
        }
        if (round == 1) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(iterator_point_in_time) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-pit");
    weir_options *o = small_opts();
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "k1", "1"));
    CHECK_OK(put_s(db, "k3", "3"));
    CHECK_OK(put_s(db, "k5", "5"));
    weir_iter *it = NULL;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    CHECK_OK(put_s(db, "k2", "2"));
    CHECK_OK(put_s(db, "k1", "one"));
    CHECK_OK(del_s(db, "k3"));
    CHECK_OK(put_s(db, "k6", "6"));
    weir_iter_seek_first(it);
    CHECK_WALK(it, 1, 1, "k1=1,k3=3,k5=5");
    /* Flushes and compactions under a live iterator change nothing. */
    char k[32], v[128];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "k4-%05d", i % 700);
        memset(v, 'v', sizeof v);
        CHECK_OK(weir_put(db, NULL, k, strlen(k), v, sizeof v));
    }
    CHECK_OK(weir_flush(db));
    CHECK_OK(del_s(db, "k5"));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    weir_iter_seek_last(it);
    CHECK_WALK(it, 0, 1, "k5=5,k3=3,k1=1");
    weir_iter_seek(it, "k2", 2);
    CHECK_AT(it, "k3");
    CHECK_OK(weir_iter_status(it));
    weir_iter_destroy(it);
    /* A new iterator sees the new state. */
    CHECK_OK(weir_iter_create(db, NULL, &it));
    weir_iter_seek(it, "k1", 2);
    CHECK_AT(it, "k1");
    weir_iter_next(it);
    CHECK_AT(it, "k2");
    weir_iter_seek(it, "k5", 2);
    CHECK_AT(it, "k6");
    weir_iter_destroy(it);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* weir_iter_refresh moves an iterator to the latest state: cheaply when
 * only writes happened, by rebuilding when a flush or compaction swapped
 * the tables. Bounds survive; the position does not. */
TEST(iterator_refresh) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-refresh");
    weir_options *o = small_opts();
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "a", "0"));
    CHECK_OK(put_s(db, "k1", "1"));
    CHECK_OK(put_s(db, "k3", "3"));
    CHECK_OK(put_s(db, "z", "0"));
    weir_readopts ro = {.lower_bound = "k", .lower_bound_len = 1,
                        .upper_bound = "l", .upper_bound_len = 1};
    weir_iter *it = NULL;
    CHECK_OK(weir_iter_create(db, &ro, &it));
    CHECK_OK(put_s(db, "k2", "2"));
    weir_iter_seek_first(it);
    CHECK_WALK(it, 1, 1, "k1=1,k3=3");
    /* Writes into the same memtable: the refreshed view has them. */
    CHECK_OK(weir_iter_refresh(it));
    CHECK(!weir_iter_valid(it));
    weir_iter_seek_last(it);
    CHECK_WALK(it, 0, 1, "k3=3,k2=2,k1=1");
    /* A flush, a delete, a compaction: the tables change under it. */
    CHECK_OK(weir_flush(db));
    CHECK_OK(del_s(db, "k1"));
    CHECK_OK(put_s(db, "k4", "4"));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_OK(put_s(db, "k5", "5"));
    weir_iter_seek_first(it);
    CHECK_WALK(it, 1, 1, "k1=1,k2=2,k3=3");
    CHECK_OK(weir_iter_refresh(it));
    weir_iter_seek(it, "k", 1);
    CHECK_WALK(it, 1, 1, "k2=2,k3=3,k4=4,k5=5");
    CHECK_OK(weir_iter_status(it));
    /* Many refreshes across many flushes hold no old state alive: each
     * sees exactly the writes before it. */
    char k[32], v[64];
    memset(v, 'v', sizeof v);
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 200; i++) {
            snprintf(k, sizeof k, "k6-%03d-%03d", round, i);
            CHECK_OK(weir_put(db, NULL, k, strlen(k), v, sizeof v));
        }
        CHECK_OK(weir_iter_refresh(it));
        snprintf(k, sizeof k, "k6-%03d-199", round);
        weir_iter_seek(it, k, strlen(k));
        CHECK_AT(it, k);
        weir_iter_next(it);
        CHECK(!weir_iter_valid(it));
    }
    /* A live refreshed iterator still holds the store open. */
    CHECK_STATUS(weir_close(db), WEIR_BUSY);
    weir_iter_destroy(it);
    /* An iterator at a snapshot sees one state forever. */
    weir_snapshot *snap = NULL;
    CHECK_OK(weir_snapshot_create(db, &snap));
    weir_readopts at = {.snapshot = snap};
    CHECK_OK(weir_iter_create(db, &at, &it));
    CHECK_STATUS(weir_iter_refresh(it), WEIR_INVALID);
    weir_iter_seek(it, "k2", 2);
    CHECK_AT(it, "k2");
    weir_iter_destroy(it);
    weir_snapshot_release(db, snap);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(iterator_over_snapshot) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-itersnap");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(put_s(db, "b", "2"));
    weir_snapshot *s = NULL;
    CHECK_OK(weir_snapshot_create(db, &s));
    CHECK_OK(put_s(db, "a", "x"));
    CHECK_OK(del_s(db, "b"));
    CHECK_OK(put_s(db, "c", "3"));
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.snapshot = s;
    weir_iter *it = NULL;
    /* Created after the writes, reading the snapshot's time. */
    CHECK_OK(weir_iter_create(db, &ro, &it));
    CHECK_OK(put_s(db, "d", "4"));
    weir_iter_seek_first(it);
    CHECK_WALK(it, 1, 1, "a=1,b=2");
    weir_iter_destroy(it);
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_OK(weir_iter_create(db, &ro, &it));
    weir_iter_seek_last(it);
    CHECK_WALK(it, 0, 1, "b=2,a=1");
    weir_iter_destroy(it);
    CHECK_OK(weir_iter_create(db, NULL, &it));
    weir_iter_seek_first(it);
    CHECK_WALK(it, 1, 1, "a=x,c=3,d=4");
    weir_iter_destroy(it);
    weir_snapshot_release(db, s);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- maintenance and properties ------------------------------------------- */

TEST(flush_and_compact_range) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-compact");
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    /* Keep background compaction out of the way so the counts are ours. */
    CHECK_OK(weir_options_set_level0_triggers(o, 20, 30, 40));
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    char k[32], v[64];
    for (int gen = 0; gen < 4; gen++) {
        for (int i = 0; i < 2000; i++) {
            snprintf(k, sizeof k, "c%05d", (i * 13 + gen) % 2000);
            snprintf(v, sizeof v, "gen%d-%d", gen, i);
            CHECK_OK(put_s(db, k, v));
        }
        CHECK_OK(weir_flush(db));
        uint64_t l0 = 0;
        CHECK(prop_u64(db, "weir.num-files-at-level0", &l0));
        CHECK_EQ_INT(l0, (uint64_t)gen + 1);
    }
    uint64_t mem = 0, sst = 0;
    CHECK(prop_u64(db, "weir.total-sst-bytes", &sst));
    CHECK(sst > 0);
    CHECK(prop_u64(db, "weir.memtable-bytes", &mem));
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "c%05d", i);
        CHECK_OK(del_s(db, k));
    }
    /* A partial range first: the rest stays readable. */
    CHECK_OK(weir_compact_range(db, "c00500", 6, "c00999", 6));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    uint64_t l0 = 99;
    CHECK(prop_u64(db, "weir.num-files-at-level0", &l0));
    CHECK_EQ_INT(l0, 0);
    /* Generation 3 wrote key (j*13+3) % 2000 with value "gen3-<j>". */
    static int src_of[2000];
    for (int j = 0; j < 2000; j++) src_of[(j * 13 + 3) % 2000] = j;
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "c%05d", i);
        snprintf(v, sizeof v, "gen3-%d", src_of[i]);
        if (i < 100)
            EXPECT_STR(db, NULL, k, NULL);
        else
            EXPECT_STR(db, NULL, k, v);
    }
    /* Deeper levels got the data. */
    uint64_t deeper = 0;
    for (int lvl = 1; lvl < 7; lvl++) {
        char name[64];
        uint64_t n = 0;
        snprintf(name, sizeof name, "weir.num-files-at-level%d", lvl);
        CHECK(prop_u64(db, name, &n));
        deeper += n;
    }
    CHECK(deeper > 0);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    EXPECT_STR(db, NULL, "c00050", NULL);
    snprintf(v, sizeof v, "gen3-%d", src_of[1999]);
    EXPECT_STR(db, NULL, "c01999", v);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(properties) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "basic-props");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    uint64_t seq0 = 0, seq1 = 0;
    CHECK(prop_u64(db, "weir.last-sequence", &seq0));
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(put_s(db, "b", "2"));
    CHECK(prop_u64(db, "weir.last-sequence", &seq1));
    CHECK_EQ_INT(seq1, seq0 + 2);
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    CHECK_OK(weir_batch_put(b, "c", 1, "3", 1));
    CHECK_OK(weir_batch_delete(b, "a", 1));
    CHECK_OK(weir_write(db, NULL, b));
    weir_batch_destroy(b);
    CHECK(prop_u64(db, "weir.last-sequence", &seq1));
    CHECK_EQ_INT(seq1, seq0 + 4); /* one sequence number per batch op */
    uint64_t mem = 0;
    CHECK(prop_u64(db, "weir.memtable-bytes", &mem));
    CHECK(mem > 0);
    CHECK_OK(weir_flush(db));
    const char *names[] = {"weir.num-files-at-level0", "weir.num-files-at-level1",
                           "weir.num-files-at-level6", "weir.level-summary",
                           "weir.sstables", "weir.stats", "weir.last-sequence",
                           "weir.memtable-bytes", "weir.total-sst-bytes",
                           "weir.num-snapshots", "weir.background-error", "weir.counters"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *v = NULL;
        int rc = weir_property(db, names[i], &v);
        if (rc != WEIR_OK) {
            fprintf(stderr, "property %s: %s (%s)\n", names[i], weir_status_name(rc),
                    weir_errmsg());
            CHECK(0);
        }
        CHECK(v != NULL);
        int empty_ok = strcmp(names[i], "weir.background-error") == 0;
        if (empty_ok) {
            if (v[0] != 0) fprintf(stderr, "background-error: \"%s\"\n", v);
            CHECK(v[0] == 0);
        } else {
            CHECK(strlen(v) > 0);
        }
        weir_free(v);
    }
    uint64_t x = 0;
    CHECK(prop_u64(db, "weir.num-files-at-level0", &x));
    CHECK_EQ_INT(x, 1);
    CHECK(prop_u64(db, "weir.total-sst-bytes", &x));
    CHECK(x > 0);
    CHECK(prop_u64(db, "weir.num-snapshots", &x));
    CHECK_EQ_INT(x, 0);
    /* "weir.sstables" lists the one table; counters are "name value" lines. */
    char *v = NULL;
    CHECK_OK(weir_property(db, "weir.counters", &v));
    int lines = 0, bad = 0;
    for (char *line = v; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 0) {
            lines++;
            const char *sp = memchr(line, ' ', len);
            if (!sp || sp == line || sp + 1 >= line + len) bad++;
        }
        line += len + (nl ? 1 : 0);
    }
    if (bad || lines == 0) fprintf(stderr, "weir.counters:\n%s\n", v);
    weir_free(v);
    CHECK(lines > 0 && bad == 0);
    /* Unknown names. */
    const char *unknown[] = {"weir.no-such-thing", "", "weir.", "leveldb.stats", "weir.stats2",
                             "weir.num-files-at-level", "weir.num-files-at-levelx",
                             "weir.num-files-at-level99"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        v = (char *)1;
        int rc = weir_property(db, unknown[i], &v);
        if (rc != WEIR_NOT_FOUND) {
            fprintf(stderr, "property \"%s\": %s, want WEIR_NOT_FOUND\n", unknown[i],
                    weir_status_name(rc));
            if (rc == WEIR_OK) weir_free(v);
            CHECK(0);
        }
    }
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(version_and_status_names) {
    const char *v = weir_version();
    CHECK(v != NULL && strlen(v) > 0);
    CHECK(v[0] >= '0' && v[0] <= '9');
    CHECK(strcmp(weir_status_name(WEIR_OK), "WEIR_OK") == 0);
    CHECK(strcmp(weir_status_name(WEIR_CORRUPTION), "WEIR_CORRUPTION") == 0);
    CHECK(strcmp(weir_status_name(WEIR_BUSY), "WEIR_BUSY") == 0);
    CHECK(strcmp(weir_status_name(WEIR_CLOSED), "WEIR_CLOSED") == 0);
    for (int s = -3; s < 40; s++) CHECK(weir_status_name(s) != NULL);
    CHECK(weir_errmsg() != NULL);
}

TEST(destroy_store) {
    char base[512], dir[600];
    test_tmpdir(base, sizeof base, "basic-destroy");
    snprintf(dir, sizeof dir, "%s/db", base);
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(weir_flush(db));
    CHECK_OK(put_s(db, "b", "2"));
    /* Destroying an open store must not pull files from under it. */
    int rc = weir_destroy(dir);
    if (rc == WEIR_OK) {
        fprintf(stderr, "weir_destroy of an open store returned WEIR_OK\n");
        weir_close(db);
        CHECK(0);
    }
    EXPECT_STR(db, NULL, "a", "1");
    CHECK_OK(weir_close(db));
    /* A foreign file in the directory is left alone. */
    char foreign[700];
    snprintf(foreign, sizeof foreign, "%s/notes.txt", dir);
    FILE *f = fopen(foreign, "w");
    CHECK(f != NULL);
    fputs("keep me", f);
    fclose(f);
    CHECK_OK(weir_destroy(dir));
    struct stat st;
    CHECK(stat(foreign, &st) == 0);
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    CHECK_OK(weir_options_set_create_if_missing(o, 0));
    db = NULL;
    rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    if (rc == WEIR_OK) {
        weir_close(db);
        fprintf(stderr, "store still opens after weir_destroy\n");
        CHECK(0);
    }
    /* weir never creates a store among the user's files... */
    CHECK_STATUS(weir_open(dir, NULL, &db), WEIR_INVALID);
    CHECK(strstr(weir_errmsg(), "not empty") != NULL);
    /* ...but a fresh store in the emptied directory starts empty. */
    CHECK(unlink(foreign) == 0);
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_STR(db, NULL, "a", NULL);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_destroy(dir));
    test_rmtree(base);
}

static const test_case tests[] = {
    TEST_ENTRY(reopen_persists),
    TEST_ENTRY(reopen_many_logs_small_buffer),
    TEST_ENTRY(create_if_missing_off_missing_dir),
    TEST_ENTRY(error_if_exists),
    TEST_ENTRY(open_existing_empty_dir),
    TEST_ENTRY(second_open_same_process_busy),
    TEST_ENTRY(second_open_other_process_busy),
    TEST_ENTRY(put_get_delete),
    TEST_ENTRY(get_buffer_too_small),
    TEST_ENTRY(get_alloc_values),
    TEST_ENTRY(memory_only_reads),
    TEST_ENTRY(multi_get_mixed),
    TEST_ENTRY(batch_semantics),
    TEST_ENTRY(empty_key),
    TEST_ENTRY(max_key_size),
    TEST_ENTRY(large_values),
    TEST_ENTRY(snapshot_isolation),
    TEST_ENTRY(iterator_positioning),
    TEST_ENTRY(iterator_random_walk_layers),
    TEST_ENTRY(iterator_bounds),
    TEST_ENTRY(iterator_prefix_mode),
    TEST_ENTRY(iterator_point_in_time),
    TEST_ENTRY(iterator_over_snapshot),
    TEST_ENTRY(iterator_refresh),
    TEST_ENTRY(flush_and_compact_range),
    TEST_ENTRY(properties),
    TEST_ENTRY(version_and_status_names),
    TEST_ENTRY(destroy_store),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
