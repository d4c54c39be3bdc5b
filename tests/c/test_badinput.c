/*
 * test_badinput.c -- bad arguments, bad paths and damaged files, through
 * the public API only.
 *
 * weir.h promises that no call aborts on bad input: NULL handles, NULL
 * pointers with a non-zero length and oversized keys/values come back as
 * WEIR_INVALID with a message; damaged files come back as WEIR_CORRUPTION
 * naming the file (and, for logs, the offset), never as silently wrong
 * data. Each case here checks the exact documented status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------ */

#define CHECK_INVALID(expr)                                                                  \
    do {                                                                                     \
        int ci_rc_ = (expr);                                                                 \
        if (ci_rc_ != WEIR_INVALID) {                                                        \
            fprintf(stderr, "%s:%d: %s returned %s, want WEIR_INVALID (%s)\n", __FILE__,     \
                    __LINE__, #expr, weir_status_name(ci_rc_), weir_errmsg());               \
            test_failed = 1;                                                                 \
            return;                                                                          \
        }                                                                                    \
        if (weir_errmsg() == NULL || weir_errmsg()[0] == 0) {                                \
            fprintf(stderr, "%s:%d: %s gave WEIR_INVALID with an empty message\n", __FILE__, \
                    __LINE__, #expr);                                                        \
            test_failed = 1;                                                                 \
            return;                                                                          \
        }                                                                                    \
    } while (0)

#define CHECK_MSG_HAS(needle)                                                              \
    do {                                                                                   \
        if (!strstr(weir_errmsg(), (needle))) {                                            \
            fprintf(stderr, "%s:%d: message \"%s\" does not mention \"%s\"\n", __FILE__,   \
                    __LINE__, weir_errmsg(), (needle));                                    \
            test_failed = 1;                                                               \
            return;                                                                        \
        }                                                                                  \
    } while (0)

/* Path of the file ending in `suffix` with the highest number (or, with
 * largest=1, the biggest one). Returns 1 if one was found. */
static int find_file(const char *dir, const char *suffix, int largest, char *out, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    unsigned long long best = 0;
    int found = 0;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl <= sl || strcmp(e->d_name + nl - sl, suffix) != 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unsigned long long score;
        if (largest) {
            struct stat st;
            if (stat(p, &st) != 0) continue;
            score = (unsigned long long)st.st_size;
        } else {
            score = strtoull(e->d_name, NULL, 10);
        }
        if (!found || score > best) {
            best = score;
            found = 1;
            snprintf(out, cap, "%s", p);
        }
    }
    closedir(d);
    return found;
}

static int flip_byte(const char *path, size_t off) { return test_xor_byte(path, off, 0x5a); }

/* Fragments of a log-format file (wal.h: 32 KiB blocks, 7-byte headers:
 * crc32c(4) length(2, little-endian) type(1)). */
typedef struct frag {
    size_t off, len;
    int type;
} frag;

static size_t parse_log(const unsigned char *d, size_t n, frag *out, size_t max) {
    size_t off = 0, count = 0;
    while (off + 7 <= n && count < max) {
        size_t left = 32768 - off % 32768;
        if (left < 7) {
            off += left;
            continue;
        }
        size_t len = (size_t)d[off + 4] | (size_t)d[off + 5] << 8;
        int type = d[off + 6];
        if (type == 0 && len == 0) {
            off += left; /* zero-filled block tail */
            continue;
        }
        if (off + 7 + len > n) break;
        out[count].off = off;
        out[count].len = len;
        out[count].type = type;
        count++;
        off += 7 + len;
    }
    return count;
}

/* Does the message contain a decimal number in [lo, hi]? */
static int msg_has_number_in(const char *msg, unsigned long long lo, unsigned long long hi) {
    for (const char *p = msg; *p; p++) {
        if (*p < '0' || *p > '9' || (p > msg && p[-1] >= '0' && p[-1] <= '9')) continue;
        unsigned long long v = strtoull(p, NULL, 10);
        if (v >= lo && v <= hi) return 1;
    }
    return 0;
}

static int put_s(weir_db *db, const char *k, const char *v) {
    return weir_put(db, NULL, k, strlen(k), v, strlen(v));
}

static size_t tval(char *out, int i) {
    int n = snprintf(out, 160, "value-%d-", i);
    memset(out + n, 'a' + i % 26, 100);
    return (size_t)n + 100;
}

/* ---- NULL handles and pointers ---------------------------------------------------- */

TEST(null_db_handle) {
    char buf[16];
    size_t vl = 0;
    void *v = NULL;
    weir_snapshot *s = NULL;
    weir_iter *it = NULL;
    char *prop = NULL;
    const void *keys[1] = {"k"};
    size_t klens[1] = {1}, vlens[1];
    void *vals[1] = {NULL};
    int st[1];
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    CHECK_OK(weir_batch_put(b, "k", 1, "v", 1));
    CHECK_OK(weir_close(NULL)); /* "NULL is fine" */
    CHECK_INVALID(weir_put(NULL, NULL, "k", 1, "v", 1));
    CHECK_INVALID(weir_delete(NULL, NULL, "k", 1));
    CHECK_INVALID(weir_write(NULL, NULL, b));
    CHECK_INVALID(weir_snapshot_create(NULL, &s));
    CHECK_INVALID(weir_get(NULL, NULL, "k", 1, buf, sizeof buf, &vl));
    CHECK_INVALID(weir_get_alloc(NULL, NULL, "k", 1, &v, &vl));
    CHECK_INVALID(weir_multi_get(NULL, NULL, 1, keys, klens, vals, vlens, st));
    CHECK_INVALID(weir_iter_create(NULL, NULL, &it));
    CHECK_INVALID(weir_flush(NULL));
    CHECK_INVALID(weir_compact_range(NULL, NULL, 0, NULL, 0));
    CHECK_INVALID(weir_property(NULL, "weir.stats", &prop));
    CHECK_INVALID(weir_destroy(NULL));
    weir_db *db = (weir_db *)1;
    CHECK_INVALID(weir_open(NULL, NULL, &db));
    CHECK(db == NULL);
    weir_snapshot_release(NULL, NULL);
    weir_batch_destroy(b);
}

TEST(null_small_handles) {
    /* Options, batches, snapshots and iterators: NULL never crashes. */
    weir_options_destroy(NULL);
    CHECK_INVALID(weir_options_set_create_if_missing(NULL, 1));
    CHECK_INVALID(weir_options_set_error_if_exists(NULL, 1));
    CHECK_INVALID(weir_options_set_write_buffer_size(NULL, 1 << 20));
    CHECK_INVALID(weir_options_set_block_size(NULL, 4096));
    CHECK_INVALID(weir_options_set_bloom_bits_per_key(NULL, 10));
    CHECK_INVALID(weir_options_set_max_open_files(NULL, 100));
    CHECK_INVALID(weir_options_set_background_threads(NULL, 2));
    CHECK_INVALID(weir_options_set_sync_mode(NULL, WEIR_SYNC_FLUSH));
    CHECK_INVALID(weir_options_set_target_file_size(NULL, 1 << 20));
    CHECK_INVALID(weir_options_set_max_bytes_for_level_base(NULL, 1 << 20));
    CHECK_INVALID(weir_options_set_level0_triggers(NULL, 4, 20, 36));

    CHECK_INVALID(weir_batch_put(NULL, "k", 1, "v", 1));
    CHECK_INVALID(weir_batch_delete(NULL, "k", 1));
    weir_batch_clear(NULL);
    CHECK_EQ_INT(weir_batch_count(NULL), 0);
    CHECK_EQ_INT(weir_batch_bytes(NULL), 0);
    weir_batch_destroy(NULL);

    CHECK_EQ_INT(weir_snapshot_sequence(NULL), 0);

    CHECK(!weir_iter_valid(NULL));
    weir_iter_seek_first(NULL);
    weir_iter_seek_last(NULL);
    weir_iter_seek(NULL, "k", 1);
    weir_iter_seek_for_prev(NULL, "k", 1);
    weir_iter_next(NULL);
    weir_iter_prev(NULL);
    size_t len = 77;
    CHECK(weir_iter_key(NULL, &len) == NULL);
    CHECK(weir_iter_value(NULL, &len) == NULL);
    CHECK_INVALID(weir_iter_status(NULL));
    weir_iter_destroy(NULL);
    weir_free(NULL);
    CHECK(weir_status_name(-1) != NULL);
    CHECK(weir_status_name(12345) != NULL);
}

TEST(null_pointers_with_length) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "bad-nullptr");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "k", "value"));
    char buf[16];
    size_t vl = 0;
    void *v = NULL;
    CHECK_INVALID(weir_put(db, NULL, NULL, 1, "v", 1));
    CHECK_INVALID(weir_put(db, NULL, "k", 1, NULL, 1));
    CHECK_INVALID(weir_delete(db, NULL, NULL, 3));
    CHECK_INVALID(weir_get(db, NULL, NULL, 1, buf, sizeof buf, &vl));
    CHECK_INVALID(weir_get(db, NULL, "k", 1, NULL, 10, &vl)); /* buf NULL, cap > 0 */
    CHECK_INVALID(weir_get_alloc(db, NULL, NULL, 2, &v, &vl));
    CHECK_INVALID(weir_property(db, NULL, (char **)&v));
    weir_batch *b = weir_batch_create();
    CHECK(b != NULL);
    CHECK_INVALID(weir_batch_put(b, NULL, 1, "v", 1));
    CHECK_INVALID(weir_batch_put(b, "k", 1, NULL, 1));
    CHECK_INVALID(weir_batch_delete(b, NULL, 1));
    CHECK_EQ_INT(weir_batch_count(b), 0); /* refused ops were not added */
    CHECK_INVALID(weir_write(db, NULL, NULL));
    weir_batch_destroy(b);
    /* multi_get with a NULL key of non-zero length. */
    const void *keys[2] = {"k", NULL};
    size_t klens[2] = {1, 4}, vlens[2];
    void *vals[2] = {NULL, NULL};
    int st[2] = {-1, -1};
    CHECK_INVALID(weir_multi_get(db, NULL, 2, keys, klens, vals, vlens, st));
    weir_free(vals[0]);
    weir_free(vals[1]);
    /* NULL with zero length is just the empty key / empty value. */
    CHECK_OK(weir_put(db, NULL, NULL, 0, NULL, 0));
    vl = 99;
    CHECK_OK(weir_get(db, NULL, NULL, 0, NULL, 0, &vl));
    CHECK_EQ_INT(vl, 0);
    CHECK_OK(weir_delete(db, NULL, NULL, 0));
    CHECK_STATUS(weir_get(db, NULL, "", 0, NULL, 0, &vl), WEIR_NOT_FOUND);
    /* compact_range / iterator bounds: NULL means unbounded per weir.h,
     * so a NULL with a length may be taken as unbounded or refused, but
     * must not be dereferenced. */
    int rc = weir_compact_range(db, NULL, 3, NULL, 5);
    CHECK(rc == WEIR_OK || rc == WEIR_INVALID);
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.lower_bound_len = 3;
    ro.upper_bound_len = 3;
    ro.prefix_len = 2;
    weir_iter *it = NULL;
    rc = weir_iter_create(db, &ro, &it);
    CHECK(rc == WEIR_OK || rc == WEIR_INVALID);
    if (rc == WEIR_OK) {
        weir_iter_seek_first(it);
        CHECK(weir_iter_valid(it));
        weir_iter_seek(it, NULL, 3); /* void: must simply not crash */
        weir_iter_seek_for_prev(it, NULL, 3);
        weir_iter_seek(it, NULL, 0);
        weir_iter_destroy(it);
    }
    /* Nothing above disturbed the store. */
    vl = 0;
    CHECK_OK(weir_get(db, NULL, "k", 1, buf, sizeof buf, &vl));
    CHECK(vl == 5 && memcmp(buf, "value", 5) == 0);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(null_out_pointers) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "bad-nullout");
    CHECK_INVALID(weir_open(dir, NULL, NULL));
    /* The refused open left no lock behind. */
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "k", "v"));
    char buf[8];
    size_t vl = 0;
    void *v = NULL;
    CHECK_INVALID(weir_get(db, NULL, "k", 1, buf, sizeof buf, NULL));
    CHECK_INVALID(weir_get_alloc(db, NULL, "k", 1, NULL, &vl));
    CHECK_INVALID(weir_get_alloc(db, NULL, "k", 1, &v, NULL));
    CHECK_INVALID(weir_snapshot_create(db, NULL));
    CHECK_INVALID(weir_iter_create(db, NULL, NULL));
    CHECK_INVALID(weir_property(db, "weir.stats", NULL));
    const void *keys[1] = {"k"};
    size_t klens[1] = {1}, vlens[1];
    void *vals[1] = {NULL};
    int st[1];
    CHECK_INVALID(weir_multi_get(db, NULL, 1, NULL, klens, vals, vlens, st));
    CHECK_INVALID(weir_multi_get(db, NULL, 1, keys, NULL, vals, vlens, st));
    CHECK_INVALID(weir_multi_get(db, NULL, 1, keys, klens, NULL, vlens, st));
    CHECK_INVALID(weir_multi_get(db, NULL, 1, keys, klens, vals, NULL, st));
    CHECK_INVALID(weir_multi_get(db, NULL, 1, keys, klens, vals, vlens, NULL));
    weir_snapshot_release(db, NULL);
    CHECK_OK(weir_close(db));
    CHECK_INVALID(weir_destroy(NULL));
    test_rmtree(dir);
}

/* ---- size limits ------------------------------------------------------------------ */

TEST(oversized_key_and_value) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "bad-size");
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, NULL, &db));
    size_t kmax = WEIR_MAX_KEY_SIZE;
    char *bigkey = calloc(1, kmax + 1);
    CHECK(bigkey != NULL);
    CHECK_INVALID(weir_put(db, NULL, bigkey, kmax + 1, "v", 1));
    CHECK_INVALID(weir_delete(db, NULL, bigkey, kmax + 1));
    free(bigkey);
    /* A value one byte over the limit, in real (untouched, lazily mapped)
     * memory, so the only thing wrong is the length. */
    size_t vmax = WEIR_MAX_VALUE_SIZE;
    size_t maplen = vmax + 4096;
    void *big = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(big != MAP_FAILED);
    int rc = weir_put(db, NULL, "k", 1, big, vmax + 1);
    int rc2 = WEIR_INVALID;
    weir_batch *b = weir_batch_create();
    if (b) {
        rc2 = weir_batch_put(b, "k", 1, big, vmax + 1);
        if (rc2 == WEIR_OK) rc2 = weir_write(db, NULL, b);
        weir_batch_destroy(b);
    }
    munmap(big, maplen);
    CHECK_EQ_INT(rc, WEIR_INVALID);
    CHECK_EQ_INT(rc2, WEIR_INVALID);
    size_t vl = 0;
    CHECK_STATUS(weir_get(db, NULL, "k", 1, NULL, 0, &vl), WEIR_NOT_FOUND);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- options ---------------------------------------------------------------------- */

TEST(options_out_of_range) {
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    CHECK_INVALID(weir_options_set_write_buffer_size(o, 64 * 1024 - 1));
    CHECK_INVALID(weir_options_set_write_buffer_size(o, 0));
    CHECK_OK(weir_options_set_write_buffer_size(o, 64 * 1024));
#if SIZE_MAX > 0xffffffffu
    CHECK_OK(weir_options_set_write_buffer_size(o, (size_t)4 << 30));
    CHECK_INVALID(weir_options_set_write_buffer_size(o, ((size_t)4 << 30) + 1));
    CHECK_OK(weir_options_set_target_file_size(o, (size_t)4 << 30));
    CHECK_INVALID(weir_options_set_target_file_size(o, ((size_t)4 << 30) + 1));
#endif
    CHECK_INVALID(weir_options_set_block_size(o, 255));
    CHECK_OK(weir_options_set_block_size(o, 256));
    CHECK_OK(weir_options_set_block_size(o, 64u << 20));
    CHECK_INVALID(weir_options_set_block_size(o, (64u << 20) + 1));
    CHECK_INVALID(weir_options_set_bloom_bits_per_key(o, -1));
    CHECK_INVALID(weir_options_set_bloom_bits_per_key(o, 65));
    CHECK_OK(weir_options_set_bloom_bits_per_key(o, 0));
    CHECK_OK(weir_options_set_bloom_bits_per_key(o, 64));
    CHECK_INVALID(weir_options_set_max_open_files(o, 15));
    CHECK_INVALID(weir_options_set_max_open_files(o, -5));
    CHECK_INVALID(weir_options_set_max_open_files(o, 1000001));
    CHECK_OK(weir_options_set_max_open_files(o, 16));
    CHECK_OK(weir_options_set_max_open_files(o, 1000000));
    CHECK_INVALID(weir_options_set_background_threads(o, 0));
    CHECK_INVALID(weir_options_set_background_threads(o, 33));
    CHECK_OK(weir_options_set_background_threads(o, 1));
    CHECK_OK(weir_options_set_background_threads(o, 32));
    CHECK_INVALID(weir_options_set_sync_mode(o, (weir_sync_mode)7));
    CHECK_INVALID(weir_options_set_sync_mode(o, (weir_sync_mode)-1));
    CHECK_OK(weir_options_set_sync_mode(o, WEIR_SYNC_NONE));
    CHECK_OK(weir_options_set_sync_mode(o, WEIR_SYNC_FLUSH));
    CHECK_OK(weir_options_set_sync_mode(o, WEIR_SYNC_FSYNC));
    CHECK_INVALID(weir_options_set_target_file_size(o, 64 * 1024 - 1));
    CHECK_OK(weir_options_set_target_file_size(o, 64 * 1024));
    CHECK_INVALID(weir_options_set_max_bytes_for_level_base(o, 256 * 1024 - 1));
    CHECK_INVALID(weir_options_set_max_bytes_for_level_base(o, 0));
    CHECK_OK(weir_options_set_max_bytes_for_level_base(o, 256 * 1024));
    CHECK_OK(weir_options_set_max_bytes_for_level_base(o, UINT64_C(1) << 40));
    CHECK_INVALID(weir_options_set_level0_triggers(o, 0, 1, 1));
    CHECK_INVALID(weir_options_set_level0_triggers(o, 3, 2, 5));
    CHECK_INVALID(weir_options_set_level0_triggers(o, 2, 3, 2));
    CHECK_INVALID(weir_options_set_level0_triggers(o, -1, 3, 4));
    CHECK_OK(weir_options_set_level0_triggers(o, 1, 1, 1));
    CHECK_OK(weir_options_set_level0_triggers(o, 4, 20, 36));
    weir_options_destroy(o);
}

/* A refused setter leaves the option as it was: with a 64 KiB write buffer
 * (then a refused 4 GiB + 1), 4 MiB of writes must flush by themselves. */
TEST(refused_option_unchanged) {
#if SIZE_MAX > 0xffffffffu
    char dir[512];
    test_tmpdir(dir, sizeof dir, "bad-optkeep");
    weir_options *o = weir_options_create();
    CHECK(o != NULL);
    CHECK_OK(weir_options_set_write_buffer_size(o, 64 * 1024));
    CHECK_INVALID(weir_options_set_write_buffer_size(o, ((size_t)4 << 30) + 1));
    CHECK_INVALID(weir_options_set_level0_triggers(o, 5, 4, 3));
    weir_db *db = NULL;
    CHECK_OK(weir_open(dir, o, &db));
    char k[32], v[1024];
    memset(v, 'x', sizeof v);
    for (int i = 0; i < 4096; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        CHECK_OK(weir_put(db, NULL, k, strlen(k), v, sizeof v));
    }
    unsigned long long sst = 0;
    for (int tries = 0; tries < 200 && sst == 0; tries++) {
        char *p = NULL;
        CHECK_OK(weir_property(db, "weir.total-sst-bytes", &p));
        sst = strtoull(p, NULL, 10);
        weir_free(p);
        if (sst == 0) usleep(50000);
    }
    if (sst == 0) fprintf(stderr, "no table written after 4 MiB with a 64 KiB write buffer\n");
    CHECK(sst > 0);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
#endif
}

/* ---- bad paths -------------------------------------------------------------------- */

TEST(path_is_regular_file) {
    char base[512], file[600], under[700];
    test_tmpdir(base, sizeof base, "bad-path");
    snprintf(file, sizeof file, "%s/plain", base);
    CHECK(test_write_file(file, "not a db", 8) == 0);
    weir_db *db = (weir_db *)1;
    CHECK_INVALID(weir_open(file, NULL, &db));
    CHECK(db == NULL);
    CHECK_MSG_HAS(file);
    CHECK_EQ_INT(test_file_size(file), 8); /* untouched */
    /* A path below a regular file (ENOTDIR). */
    snprintf(under, sizeof under, "%s/sub", file);
    db = (weir_db *)1;
    int rc = weir_open(under, NULL, &db);
    if (rc == WEIR_OK) weir_close(db);
    CHECK(rc != WEIR_OK);
    CHECK(db == NULL);
    CHECK_MSG_HAS(file);
    printf("  open under a regular file: %s: %s\n", weir_status_name(rc), weir_errmsg());
    /* weir_destroy on a non-store path must not delete it. */
    weir_destroy(file);
    CHECK_EQ_INT(test_file_size(file), 8);
    test_rmtree(base);
}

TEST(directory_without_permission) {
    char base[512], dir[600], sub[700];
    test_tmpdir(base, sizeof base, "bad-perm");
    snprintf(dir, sizeof dir, "%s/locked", base);
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(chmod(dir, 0) == 0);
    snprintf(sub, sizeof sub, "%s/db", dir);
    weir_db *db = NULL;
    if (geteuid() == 0) {
        /* root ignores permission bits: opening must simply work. */
        printf("  running as root: permission bits do not apply; checking root behaviour\n");
        int rc = weir_open(dir, NULL, &db);
        chmod(dir, 0755);
        CHECK_STATUS(rc, WEIR_OK);
        CHECK_OK(put_s(db, "k", "v"));
        CHECK_OK(weir_flush(db));
        CHECK_OK(weir_close(db));
        CHECK_OK(weir_open(dir, NULL, &db));
        char buf[4];
        size_t vl = 0;
        CHECK_OK(weir_get(db, NULL, "k", 1, buf, sizeof buf, &vl));
        CHECK(vl == 1 && buf[0] == 'v');
        CHECK_OK(weir_close(db));
    } else {
        db = (weir_db *)1;
        int rc = weir_open(dir, NULL, &db);
        int rc2 = weir_open(sub, NULL, &db);
        chmod(dir, 0755);
        CHECK_EQ_INT(rc, WEIR_IO_ERROR);
        CHECK_EQ_INT(rc2, WEIR_IO_ERROR);
        CHECK(db == NULL);
        CHECK_MSG_HAS(dir);
    }
    test_rmtree(base);
}

TEST(second_open_busy_then_reopen) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "bad-busy");
    weir_db *db = NULL, *db2 = (weir_db *)1;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_STATUS(weir_open(dir, NULL, &db2), WEIR_BUSY);
    CHECK(db2 == NULL);
    CHECK_MSG_HAS(dir);
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    char buf[4];
    size_t vl;
    CHECK_OK(weir_get(db, NULL, "a", 1, buf, sizeof buf, &vl));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* weir_errmsg is per thread: another thread's failure does not replace it. */
static pthread_barrier_t g_barrier;
static char g_busy_dir[512];
static char g_thread_msg[512];
static int g_thread_rc;

static void *errmsg_thread(void *arg) {
    (void)arg;
    weir_db *db = NULL;
    g_thread_rc = weir_open(g_busy_dir, NULL, &db);
    pthread_barrier_wait(&g_barrier); /* 1: both threads have failed */
    pthread_barrier_wait(&g_barrier); /* 2: main has read its message */
    snprintf(g_thread_msg, sizeof g_thread_msg, "%s", weir_errmsg());
    if (g_thread_rc == WEIR_OK) weir_close(db);
    return NULL;
}

TEST(errmsg_is_per_thread) {
    test_tmpdir(g_busy_dir, sizeof g_busy_dir, "bad-tls");
    weir_db *db = NULL;
    CHECK_OK(weir_open(g_busy_dir, NULL, &db));
    CHECK(pthread_barrier_init(&g_barrier, NULL, 2) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, errmsg_thread, NULL) == 0);
    int rc = weir_put(db, NULL, NULL, 5, "v", 1);
    char before[512], after[512];
    snprintf(before, sizeof before, "%s", weir_errmsg());
    pthread_barrier_wait(&g_barrier);
    snprintf(after, sizeof after, "%s", weir_errmsg());
    pthread_barrier_wait(&g_barrier);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&g_barrier);
    CHECK_OK(weir_close(db));
    CHECK_EQ_INT(rc, WEIR_INVALID);
    CHECK_EQ_INT(g_thread_rc, WEIR_BUSY);
    if (strcmp(before, after) != 0 || before[0] == 0)
        fprintf(stderr, "main thread message changed: \"%s\" -> \"%s\"\n", before, after);
    CHECK(before[0] != 0 && strcmp(before, after) == 0);
    if (!strstr(g_thread_msg, g_busy_dir) || strcmp(g_thread_msg, before) == 0)
        fprintf(stderr, "other thread's message: \"%s\"\n", g_thread_msg);
    CHECK(strstr(g_thread_msg, g_busy_dir) != NULL);
    CHECK(strcmp(g_thread_msg, before) != 0);
    test_rmtree(g_busy_dir);
}

/* ---- damaged files ------------------------------------------------------------------ */

/* A store with 3000 keys in one flushed table (no live log data). */
static int make_table_store(const char *dir) {
    weir_options *o = weir_options_create();
    if (!o) return WEIR_NO_MEMORY;
    weir_options_set_block_size(o, 1024);
    weir_db *db = NULL;
    int rc = weir_open(dir, o, &db);
    weir_options_destroy(o);
    if (rc != WEIR_OK) return rc;
    char k[32], v[160];
    for (int i = 0; i < 3000 && rc == WEIR_OK; i++) {
        snprintf(k, sizeof k, "t%05d", i);
        rc = weir_put(db, NULL, k, strlen(k), v, tval(v, i));
    }
    if (rc == WEIR_OK) rc = weir_flush(db);
    int rc2 = weir_close(db);
    return rc != WEIR_OK ? rc : rc2;
}

/* Reads every key: each must be correct or WEIR_CORRUPTION naming `name`.
 * Returns the number of corruption reports, or -1 on a wrong answer. */
static int read_all_checked(weir_db *db, const char *name, int *iter_corrupt) {
    char k[32], want[160];
    int corrupt = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "t%05d", i);
        size_t wl = tval(want, i);
        void *v = NULL;
        size_t vl = 0;
        int rc = weir_get_alloc(db, NULL, k, strlen(k), &v, &vl);
        if (rc == WEIR_OK) {
            int same = vl == wl && memcmp(v, want, wl) == 0;
            weir_free(v);
            if (!same) {
                fprintf(stderr, "  %s: WRONG VALUE returned silently\n", k);
                return -1;
            }
        } else if (rc == WEIR_CORRUPTION) {
            if (!strstr(weir_errmsg(), name)) {
                fprintf(stderr, "  %s: corruption message does not name %s: %s\n", k, name,
                        weir_errmsg());
                return -1;
            }
            corrupt++;
        } else {
            fprintf(stderr, "  %s: %s (%s): want the value or WEIR_CORRUPTION\n", k,
                    weir_status_name(rc), weir_errmsg());
            return -1;
        }
    }
    /* The iterator: correct entries in order until it stops with an error. */
    weir_iter *it = NULL;
    int rc = weir_iter_create(db, NULL, &it);
    if (rc != WEIR_OK) {
        if (rc == WEIR_CORRUPTION && strstr(weir_errmsg(), name)) {
            *iter_corrupt = 1;
            return corrupt;
        }
        fprintf(stderr, "  weir_iter_create: %s (%s)\n", weir_status_name(rc), weir_errmsg());
        return -1;
    }
    int expect = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) {
        size_t kl, vl;
        const char *gk = weir_iter_key(it, &kl);
        const char *gv = weir_iter_value(it, &vl);
        /* Entries may be skipped (a damaged block) but never invented. */
        int idx = -1;
        if (kl == 6 && gk[0] == 't') {
            idx = 0;
            for (int d = 1; d < 6; d++)
                idx = gk[d] >= '0' && gk[d] <= '9' && idx >= 0 ? idx * 10 + (gk[d] - '0') : -1;
        }
        if (idx < expect || idx >= 3000) {
            fprintf(stderr, "  iterator returned unexpected key \"%.*s\"\n", (int)kl, gk);
            weir_iter_destroy(it);
            return -1;
        }
        size_t wl = tval(want, idx);
        if (vl != wl || memcmp(gv, want, wl) != 0) {
            fprintf(stderr, "  iterator: WRONG VALUE for \"%.*s\"\n", (int)kl, gk);
            weir_iter_destroy(it);
            return -1;
        }
        expect = idx + 1;
    }
    rc = weir_iter_status(it);
    if (rc == WEIR_CORRUPTION) {
        if (!strstr(weir_errmsg(), name)) {
            fprintf(stderr, "  iterator corruption message does not name %s: %s\n", name,
                    weir_errmsg());
            weir_iter_destroy(it);
            return -1;
        }
        *iter_corrupt = 1;
    } else if (rc != WEIR_OK) {
        fprintf(stderr, "  iterator status %s (%s)\n", weir_status_name(rc), weir_errmsg());
        weir_iter_destroy(it);
        return -1;
    } else if (expect != 3000) {
        fprintf(stderr, "  iterator ended at t%05d with status OK: entries silently lost\n", expect);
        weir_iter_destroy(it);
        return -1;
    }
    weir_iter_destroy(it);
    return corrupt;
}

TEST(corrupt_table_file) {
    char pristine[512];
    test_tmpdir(pristine, sizeof pristine, "bad-sst-src");
    CHECK_OK(make_table_store(pristine));
    char sst[1024];
    CHECK(find_file(pristine, ".sst", 1, sst, sizeof sst));
    long size = test_file_size(sst);
    CHECK(size > 4096);
    char name[1024];
    snprintf(name, sizeof name, "%s", test_base_name(sst));
    /* Middle first; then data-block start, quarter points, near the end
     * (index/filter) and inside the footer's checksummed part. */
    long offsets[] = {size / 2, 3, size / 4, (size * 3) / 4, size - 200, size - 40};
    for (size_t t = 0; t < sizeof offsets / sizeof *offsets; t++) {
        char dir[512], path[1600];
        test_tmpdir(dir, sizeof dir, "bad-sst");
        CHECK(test_copy_dir(pristine, dir) == 0);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        CHECK(flip_byte(path, (size_t)offsets[t]) == 0);
        weir_db *db = NULL;
        int rc = weir_open(dir, NULL, &db);
        if (rc != WEIR_OK) {
            /* Detected at open: acceptable, if it is named. */
            if (rc != WEIR_CORRUPTION || !strstr(weir_errmsg(), name)) {
                fprintf(stderr, "flip at %ld of %ld: open gave %s (%s)\n", offsets[t], size,
                        weir_status_name(rc), weir_errmsg());
                CHECK(0);
            }
            printf("  flip at %ld/%ld: detected at open: %s\n", offsets[t], size, weir_errmsg());
            test_rmtree(dir);
            continue;
        }
        int iter_corrupt = 0;
        int n = read_all_checked(db, name, &iter_corrupt);
        CHECK_OK(weir_close(db));
        if (n < 0) fprintf(stderr, "flip at byte %ld of %ld (%s)\n", offsets[t], size, path);
        CHECK(n >= 0);
        if (n == 0 || !iter_corrupt) {
            fprintf(stderr,
                    "flip at byte %ld of %ld: damage not reported (%d gets reported corruption, "
                    "iterator %s)\n",
                    offsets[t], size, n, iter_corrupt ? "did" : "did not");
            CHECK(0);
        }
        printf("  flip at %ld/%ld: %d of 3000 gets report corruption, iterator stops\n", offsets[t],
               size, n);
        test_rmtree(dir);
    }
    test_rmtree(pristine);
}

/* A store whose current manifest has several records: one per flush. */
static int make_manifest_store(const char *dir) {
    weir_db *db = NULL;
    int rc = weir_open(dir, NULL, &db);
    if (rc != WEIR_OK) return rc;
    rc = weir_close(db); /* and reopen, so the live manifest is not the first */
    if (rc != WEIR_OK) return rc;
    rc = weir_open(dir, NULL, &db);
    if (rc != WEIR_OK) return rc;
    char k[32], v[160];
    for (int round = 0; round < 8 && rc == WEIR_OK; round++) {
        for (int i = round; i < 3000 && rc == WEIR_OK; i += 8) {
            snprintf(k, sizeof k, "t%05d", i);
            rc = weir_put(db, NULL, k, strlen(k), v, tval(v, i));
        }
        if (rc == WEIR_OK) rc = weir_flush(db);
    }
    int rc2 = weir_close(db);
    return rc != WEIR_OK ? rc : rc2;
}

static int current_manifest(const char *dir, char *out, size_t cap) {
    char p[1024];
    snprintf(p, sizeof p, "%s/CURRENT", dir);
    unsigned char *d;
    size_t n;
    if (test_read_file(p, &d, &n) != 0) return 0;
    while (n && (d[n - 1] == '\n' || d[n - 1] == '\r')) n--;
    int ok = n > 0 && n < 200;
    if (ok) snprintf(out, cap, "%.*s", (int)n, (const char *)d);
    free(d);
    return ok;
}

TEST(corrupt_manifest) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "bad-manifest");
    CHECK_OK(make_manifest_store(dir));
    char mname[256], mpath[1024];
    CHECK(current_manifest(dir, mname, sizeof mname));
    snprintf(mpath, sizeof mpath, "%s/%s", dir, mname);
    unsigned char *orig;
    size_t olen;
    CHECK(test_read_file(mpath, &orig, &olen) == 0);
    frag fr[256];
    size_t nf = parse_log(orig, olen, fr, 256);
    size_t off = olen / 2;
    if (nf >= 3) {
        size_t i = nf / 2;
        off = fr[i].off + 7 + fr[i].len / 2;
    }
    printf("  %s: %zu bytes, %zu records, flipping byte %zu\n", mname, olen, nf, off);
    CHECK(nf >= 3);
    CHECK(flip_byte(mpath, off) == 0);
    weir_db *db = (weir_db *)1;
    int rc = weir_open(dir, NULL, &db);
    if (rc == WEIR_OK) weir_close(db);
    CHECK_EQ_INT(rc, WEIR_CORRUPTION);
    CHECK(db == NULL);
    CHECK_MSG_HAS(mname);
    /* Put the manifest back: the failed open changed nothing and left no
     * lock, so everything is there. */
    CHECK(test_write_file(mpath, orig, olen) == 0);
    free(orig);
    CHECK_OK(weir_open(dir, NULL, &db));
    int dummy = 0;
    CHECK_EQ_INT(read_all_checked(db, "-", &dummy), 0);
    CHECK_OK(put_s(db, "after", "ok"));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(bad_current_file) {
    char pristine[512];
    test_tmpdir(pristine, sizeof pristine, "bad-current-src");
    CHECK_OK(make_manifest_store(pristine));
    char mname[256];
    CHECK(current_manifest(pristine, mname, sizeof mname));
    char truncated[300];
    snprintf(truncated, sizeof truncated, "%.*s\n", (int)strlen(mname) - 1, mname);
    struct {
        const char *what;
        const char *content;
        size_t len;
    } cases[] = {
        {"truncated manifest name", truncated, strlen(truncated)},
        {"garbage", "\x01\x02garbage\xff\xfe\n", 12},
        {"empty", "", 0},
        {"no newline, junk name", "MANIFEST-zzzz", 13},
        {"path outside the store", "../../../../etc/passwd\n", 23},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char dir[512], cur[1024];
        test_tmpdir(dir, sizeof dir, "bad-current");
        CHECK(test_copy_dir(pristine, dir) == 0);
        snprintf(cur, sizeof cur, "%s/CURRENT", dir);
        CHECK(test_write_file(cur, cases[c].content, cases[c].len) == 0);
        weir_db *db = (weir_db *)1;
        int rc = weir_open(dir, NULL, &db);
        if (rc == WEIR_OK) weir_close(db);
        if (rc != WEIR_CORRUPTION) {
            fprintf(stderr, "CURRENT %s: open gave %s (%s), want WEIR_CORRUPTION\n", cases[c].what,
                    weir_status_name(rc), weir_errmsg());
            CHECK(0);
        }
        CHECK(db == NULL);
        if (!strstr(weir_errmsg(), "CURRENT") && !strstr(weir_errmsg(), "MANIFEST")) {
            fprintf(stderr, "CURRENT %s: message names neither CURRENT nor the manifest: %s\n",
                    cases[c].what, weir_errmsg());
            CHECK(0);
        }
        printf("  CURRENT %s: %s\n", cases[c].what, weir_errmsg());
        test_rmtree(dir);
    }
    test_rmtree(pristine);
}

/* A store whose 3000 keys live only in the log: a child writes them with
 * WEIR_SYNC_FLUSH and exits without closing. */
static int make_log_store(const char *dir) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        weir_options *o = weir_options_create();
        if (!o) _exit(2);
        weir_options_set_sync_mode(o, WEIR_SYNC_FLUSH);
        weir_db *db = NULL;
        if (weir_open(dir, o, &db) != WEIR_OK) _exit(3);
        char k[32], v[160];
        for (int i = 0; i < 3000; i++) {
            snprintf(k, sizeof k, "t%05d", i);
            if (weir_put(db, NULL, k, strlen(k), v, tval(v, i)) != WEIR_OK) _exit(4);
        }
        _exit(0); /* no close: the data is only in the log */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Expect keys [0, upto) with their values and [upto, 3000) absent. */
static int check_prefix_present(weir_db *db, int upto) {
    char k[32], want[160];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "t%05d", i);
        size_t wl = tval(want, i);
        void *v = NULL;
        size_t vl = 0;
        int rc = weir_get_alloc(db, NULL, k, strlen(k), &v, &vl);
        int ok = i < upto ? rc == WEIR_OK && vl == wl && memcmp(v, want, wl) == 0
                          : rc == WEIR_NOT_FOUND;
        if (rc == WEIR_OK) weir_free(v);
        if (!ok) {
            fprintf(stderr, "  %s: %s, want %s\n", k, weir_status_name(rc),
                    i < upto ? "its value" : "absent");
            return 0;
        }
    }
    return 1;
}

TEST(corrupt_log_middle) {
    char dir[512];
    test_tmpdir(dir, sizeof dir, "bad-log-mid");
    CHECK(make_log_store(dir) == 0);
    char log[1024];
    CHECK(find_file(dir, ".log", 0, log, sizeof log));
    unsigned char *orig;
    size_t olen;
    CHECK(test_read_file(log, &orig, &olen) == 0);
    static frag fr[8192];
    size_t nf = parse_log(orig, olen, fr, 8192);
    printf("  %s: %zu bytes, %zu fragments\n", test_base_name(log), olen, nf);
    CHECK(nf >= 100);
    size_t i = nf / 2;
    while (i < nf && fr[i].type != 1) i++; /* a whole (FULL) record */
    CHECK(i < nf - 10);
    size_t flip = fr[i].off + 7 + fr[i].len / 2;
    CHECK(flip_byte(log, flip) == 0);
    weir_db *db = (weir_db *)1;
    int rc = weir_open(dir, NULL, &db);
    if (rc == WEIR_OK) weir_close(db);
    CHECK_EQ_INT(rc, WEIR_CORRUPTION);
    CHECK(db == NULL);
    CHECK_MSG_HAS(test_base_name(log));
    if (!msg_has_number_in(weir_errmsg(), fr[i].off - fr[i].off % 32768, flip)) {
        fprintf(stderr, "message gives no offset in [%zu, %zu] (record at %zu): %s\n",
                fr[i].off - fr[i].off % 32768, flip, fr[i].off, weir_errmsg());
        CHECK(0);
    }
    printf("  %s\n", weir_errmsg());
    /* Opening again still refuses (the failed open did not "repair" it). */
    rc = weir_open(dir, NULL, &db);
    if (rc == WEIR_OK) weir_close(db);
    CHECK_EQ_INT(rc, WEIR_CORRUPTION);
    /* With the log restored, everything is there. */
    CHECK(test_write_file(log, orig, olen) == 0);
    free(orig);
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK(check_prefix_present(db, 3000));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(log_torn_tail) {
    char pristine[512];
    test_tmpdir(pristine, sizeof pristine, "bad-log-src");
    CHECK(make_log_store(pristine) == 0);
    char log[1024];
    CHECK(find_file(pristine, ".log", 0, log, sizeof log));
    char lname[1024];
    snprintf(lname, sizeof lname, "%s", test_base_name(log));
    unsigned char *orig;
    size_t olen;
    CHECK(test_read_file(log, &orig, &olen) == 0);
    static frag fr[8192];
    size_t nf = parse_log(orig, olen, fr, 8192);
    CHECK(nf >= 100);
    size_t last = fr[nf - 1].off;
    size_t last_mid = last + 7 + fr[nf - 1].len / 2; /* a byte of the last payload */
    /* Variants: cut 3 bytes off; cut inside the last header; damage the
     * last record's payload; zero-filled space after the last record. */
    for (int variant = 0; variant < 4; variant++) {
        char dir[512], path[1600];
        test_tmpdir(dir, sizeof dir, "bad-log-tail");
        CHECK(test_copy_dir(pristine, dir) == 0);
        snprintf(path, sizeof path, "%s/%s", dir, lname);
        int upto = 2999;
        if (variant == 0) {
            CHECK(truncate(path, (off_t)(olen - 3)) == 0);
        } else if (variant == 1) {
            CHECK(truncate(path, (off_t)(last + 3)) == 0);
        } else if (variant == 2) {
            CHECK(flip_byte(path, last_mid) == 0);
        } else {
            unsigned char *z = calloc(1, 5000);
            CHECK(z != NULL);
            FILE *f = fopen(path, "ab");
            CHECK(f != NULL);
            fwrite(z, 1, 5000, f);
            fclose(f);
            free(z);
            upto = 3000;
        }
        weir_db *db = NULL;
        int rc = weir_open(dir, NULL, &db);
        if (rc != WEIR_OK) fprintf(stderr, "torn-tail variant %d: %s\n", variant, weir_errmsg());
        CHECK_STATUS(rc, WEIR_OK);
        if (!check_prefix_present(db, upto)) {
            fprintf(stderr, "torn-tail variant %d\n", variant);
            weir_close(db);
            CHECK(0);
        }
        /* Recovery builds on recovery: write more, reopen twice. */
        CHECK_OK(put_s(db, "after-tear", "yes"));
        CHECK_OK(weir_close(db));
        for (int again = 0; again < 2; again++) {
            rc = weir_open(dir, NULL, &db);
            if (rc != WEIR_OK)
                fprintf(stderr, "torn-tail variant %d, reopen %d: %s\n", variant, again, weir_errmsg());
            CHECK_STATUS(rc, WEIR_OK);
            CHECK(check_prefix_present(db, upto));
            char buf[8];
            size_t vl = 0;
            CHECK_OK(weir_get(db, NULL, "after-tear", 10, buf, sizeof buf, &vl));
            CHECK(vl == 3 && memcmp(buf, "yes", 3) == 0);
            CHECK_OK(weir_close(db));
        }
        test_rmtree(dir);
    }
    free(orig);
    test_rmtree(pristine);
}

static const test_case tests[] = {
    TEST_ENTRY(null_db_handle),
    TEST_ENTRY(null_small_handles),
    TEST_ENTRY(null_pointers_with_length),
    TEST_ENTRY(null_out_pointers),
    TEST_ENTRY(oversized_key_and_value),
    TEST_ENTRY(options_out_of_range),
    TEST_ENTRY(refused_option_unchanged),
    TEST_ENTRY(path_is_regular_file),
    TEST_ENTRY(directory_without_permission),
    TEST_ENTRY(second_open_busy_then_reopen),
    TEST_ENTRY(errmsg_is_per_thread),
    TEST_ENTRY(corrupt_table_file),
    TEST_ENTRY(corrupt_manifest),
    TEST_ENTRY(bad_current_file),
    TEST_ENTRY(corrupt_log_middle),
    TEST_ENTRY(log_torn_tail),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
