/* test_wal.c -- the log format: round trips across block boundaries, and
 * recovery's split between a torn tail (dropped) and corruption (reported
 * with file and offset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "env.h"
#include "status.h"
#include "testutil.h"
#include "wal.h"

/* Record i of a test log: `len` bytes that depend on i and the position. */
static void fill_record(buf *b, size_t i, size_t len) {
    buf_clear(b);
    if (buf_reserve(b, len) != 0) abort();
    for (size_t j = 0; j < len; j++) b->data[j] = (char)(i * 131 + j * 7 + (j >> 8));
    b->len = len;
}

typedef struct test_log {
    char dir[256];
    char path[300];
    size_t n;
    size_t *sizes;
    uint64_t *offsets; /* record start */
    uint64_t *ends;    /* just after the record's last fragment */
    uint64_t file_size;
} test_log;

/* Write records of the given sizes; remember where each one lands. */
static int write_test_log(test_log *t, const char *tag, const size_t *sizes, size_t n) {
    test_tmpdir(t->dir, sizeof t->dir, tag);
    snprintf(t->path, sizeof t->path, "%s/000001.log", t->dir);
    t->n = n;
    t->sizes = malloc((n ? n : 1) * sizeof *t->sizes);
    t->offsets = malloc((n ? n : 1) * sizeof *t->offsets);
    t->ends = malloc((n ? n : 1) * sizeof *t->ends);
    if (!t->sizes || !t->offsets || !t->ends) abort();
    log_writer *w;
    int rc = log_writer_open(env_posix(), t->path, &w);
    if (rc != WEIR_OK) return rc;
    buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        t->sizes[i] = sizes[i];
        /* A record starts at the next header, after any block padding. */
        uint64_t at = log_writer_size(w);
        if (LOG_BLOCK_SIZE - at % LOG_BLOCK_SIZE < LOG_HEADER_SIZE) at += LOG_BLOCK_SIZE - at % LOG_BLOCK_SIZE;
        t->offsets[i] = at;
        fill_record(&b, i, sizes[i]);
        rc = log_writer_add(w, buf_slice(&b));
        if (rc != WEIR_OK) break;
        t->ends[i] = log_writer_size(w);
    }
    buf_free(&b);
    int rc2 = log_writer_close(w);
    if (rc == WEIR_OK) rc = rc2;
    t->file_size = n ? t->ends[n - 1] : 0;
    return rc;
}

static void free_test_log(test_log *t) {
    test_rmtree(t->dir);
    free(t->sizes);
    free(t->offsets);
    free(t->ends);
}

static uint64_t file_size_of(const char *path) {
    uint64_t size = 0;
    if (env_posix()->ops->file_size(env_posix(), path, &size) != WEIR_OK) abort();
    return size;
}

static void xor_byte(const char *path, uint64_t off, unsigned char mask) {
    FILE *f = fopen(path, "r+b");
    if (!f) abort();
    if (fseek(f, (long)off, SEEK_SET) != 0) abort();
    int c = fgetc(f);
    if (c == EOF) abort();
    if (fseek(f, (long)off, SEEK_SET) != 0) abort();
    fputc(c ^ mask, f);
    fclose(f);
}

static void append_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "ab");
    if (!f || fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

static void copy_range(const char *from, const char *to, uint64_t off, uint64_t len) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) abort();
    if (fseek(in, (long)off, SEEK_SET) != 0) abort();
    char tmp[4096];
    while (len > 0) {
        size_t n = len < sizeof tmp ? (size_t)len : sizeof tmp;
        if (fread(tmp, 1, n, in) != n || fwrite(tmp, 1, n, out) != n) abort();
        len -= n;
    }
    fclose(in);
    fclose(out);
}

typedef struct read_result {
    size_t records;      /* whole records returned, each checked */
    int mismatch;        /* a returned record differed from what was written */
    int status;          /* the status that ended the read */
    char msg[600];
    uint64_t valid_end;
    uint64_t dropped;
} read_result;

/* Read the whole log, checking record i against what write_test_log wrote
 * (records beyond t->n count as mismatches). */
static int read_log(const test_log *t, const char *path, read_result *res) {
    memset(res, 0, sizeof *res);
    log_reader *r;
    int rc = log_reader_open(env_posix(), path, &r);
    if (rc != WEIR_OK) return rc;
    buf scratch = BUF_INIT, want = BUF_INIT;
    slice rec;
    while ((rc = log_reader_next(r, &scratch, &rec)) == WEIR_OK) {
        size_t i = res->records++;
        if (i >= t->n) {
            res->mismatch = 1;
            continue;
        }
        fill_record(&want, i, t->sizes[i]);
        if (!slice_equal(rec, buf_slice(&want)) || log_reader_record_offset(r) != t->offsets[i] ||
            log_reader_valid_end(r) != t->ends[i])
            res->mismatch = 1;
    }
    res->status = rc;
    snprintf(res->msg, sizeof res->msg, "%s", weir_errmsg());
    res->valid_end = log_reader_valid_end(r);
    res->dropped = log_reader_dropped_bytes(r);
    /* The end is sticky. */
    if (log_reader_next(r, &scratch, &rec) != rc) res->mismatch = 1;
    log_reader_close(r);
    buf_free(&scratch);
    buf_free(&want);
    return WEIR_OK;
}

/* Records ending at or before `cut`. */
static size_t complete_before(const test_log *t, uint64_t cut) {
    size_t k = 0;
    while (k < t->n && t->ends[k] <= cut) k++;
    return k;
}

/* ---- round trips ---------------------------------------------------------- */

TEST(round_trip_sizes_across_blocks) {
    const size_t B = LOG_BLOCK_SIZE, H = LOG_HEADER_SIZE;
    size_t sizes[] = {
        B - H,          /* fills block 0 exactly */
        B - 2 * H - 3,  /* leaves a 3-byte tail: padding */
        B - 2 * H,      /* leaves exactly a header: a zero-length FIRST */
        0, 1, 2, 6, 7, 8, 100,
        B, B + 1, 3 * B, /* spans 2 and 4 blocks */
        100000,
        1u << 20,
        0,
        12345,
    };
    size_t n = sizeof sizes / sizeof sizes[0];
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-rt", sizes, n));
    CHECK_EQ_INT(file_size_of(t.path), t.file_size);
    CHECK_EQ_INT(t.ends[0], B);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, n);
    CHECK(!res.mismatch);
    CHECK_EQ_INT(res.valid_end, t.file_size);
    CHECK_EQ_INT(res.dropped, 0);
    free_test_log(&t);
}

TEST(round_trip_many_small_records) {
    enum { N = 20000 };
    size_t *sizes = malloc(N * sizeof *sizes);
    CHECK(sizes != NULL);
    test_rng rng;
    test_rng_seed(&rng, 42);
    for (size_t i = 0; i < N; i++) sizes[i] = (size_t)test_rng_uniform(&rng, i % 100 == 0 ? 5000 : 200);
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-many", sizes, N));
    free(sizes);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, N);
    CHECK(!res.mismatch);
    CHECK_EQ_INT(res.dropped, 0);
    free_test_log(&t);
}

TEST(writer_flush_sync_and_size) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "wal-sync");
    snprintf(path, sizeof path, "%s/x.log", dir);
    log_writer *w;
    CHECK_OK(log_writer_open(env_posix(), path, &w));
    CHECK_EQ_INT(log_writer_size(w), 0);
    CHECK_OK(log_writer_add(w, slice_make("hello", 5)));
    CHECK_EQ_INT(log_writer_size(w), 5 + LOG_HEADER_SIZE);
    CHECK_OK(log_writer_flush(w));
    CHECK_EQ_INT(file_size_of(path), 5 + LOG_HEADER_SIZE);
    CHECK_OK(log_writer_add(w, slice_make(NULL, 0)));
    CHECK_OK(log_writer_sync(w));
    CHECK_EQ_INT(file_size_of(path), 5 + 2 * LOG_HEADER_SIZE);
    CHECK_OK(log_writer_close(w));
    CHECK_OK(log_writer_close(NULL));
    /* The bytes are the documented format. */
    buf data = BUF_INIT;
    CHECK_OK(env_read_file(env_posix(), path, &data));
    CHECK_EQ_INT(data.len, 19);
    CHECK_EQ_INT((unsigned char)data.data[4], 5);
    CHECK_EQ_INT((unsigned char)data.data[5], 0);
    CHECK_EQ_INT((unsigned char)data.data[6], LOG_FULL);
    unsigned char typed[6] = {LOG_FULL, 'h', 'e', 'l', 'l', 'o'};
    CHECK_EQ_INT(decode_fixed32(data.data), crc32c_mask(crc32c_value(typed, 6)));
    buf_free(&data);
    /* Creating a log where it cannot be created fails with the path. */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.log", dir);
    w = (log_writer *)1;
    CHECK(log_writer_open(env_posix(), bad, &w) != WEIR_OK);
    CHECK(w == NULL);
    CHECK(strstr(weir_errmsg(), "no/such/dir") != NULL);
    test_rmtree(dir);
}

TEST(empty_and_missing_files) {
    size_t none[1] = {0};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-empty", none, 0));
    CHECK_EQ_INT(file_size_of(t.path), 0);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, 0);
    CHECK_EQ_INT(res.valid_end, 0);
    CHECK_EQ_INT(res.dropped, 0);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing.log", t.dir);
    log_reader *r = (log_reader *)1;
    CHECK(log_reader_open(env_posix(), missing, &r) != WEIR_OK);
    CHECK(r == NULL);
    CHECK(strstr(weir_errmsg(), "missing.log") != NULL);
    log_reader_close(NULL);
    free_test_log(&t);
}

/* ---- torn tails ----------------------------------------------------------- */

/* Cut the log at `cut` bytes and check that exactly the records wholly
 * before the cut come back, then a clean end. Returns 0 on success. */
static int check_cut(const test_log *t, const char *path, uint64_t cut) {
    if (env_posix()->ops->truncate_file(env_posix(), path, cut) != WEIR_OK) return -1;
    read_result res;
    if (read_log(t, path, &res) != WEIR_OK) return -1;
    size_t k = complete_before(t, cut);
    uint64_t end = k ? t->ends[k - 1] : 0;
    if (res.status != WEIR_NOT_FOUND || res.records != k || res.mismatch || res.valid_end != end ||
        res.dropped != cut - end) {
        fprintf(stderr, "cut at %llu: %s, %zu records (want %zu), mismatch %d, valid_end %llu, dropped %llu: %s\n",
                (unsigned long long)cut, weir_status_name(res.status), res.records, k, res.mismatch,
                (unsigned long long)res.valid_end, (unsigned long long)res.dropped, res.msg);
        return -1;
    }
    return 0;
}

TEST(truncation_at_every_offset) {
    size_t sizes[] = {10, 0, 50, 200, 1, 30, 7, 500, 3};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-cut", sizes, sizeof sizes / sizeof sizes[0]));
    for (uint64_t cut = t.file_size + 1; cut-- > 0;) CHECK(check_cut(&t, t.path, cut) == 0);
    free_test_log(&t);
}

TEST(truncation_of_multi_block_records) {
    const size_t B = LOG_BLOCK_SIZE;
    size_t sizes[] = {100, 40000, 5, 70000, 10, B - 100, 0, 3 * B + 17, 20};
    size_t n = sizeof sizes / sizeof sizes[0];
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-cutmb", sizes, n));
    /* Every byte near record, fragment and block boundaries, and a stride
     * through the rest, cutting from the end so each cut is a truncate. */
    uint64_t size = t.file_size;
    char *interesting = calloc((size_t)size + 1, 1);
    CHECK(interesting != NULL);
    for (uint64_t b = 0; b <= size; b += LOG_BLOCK_SIZE)
        for (uint64_t d = 0; d < 20; d++) {
            if (b + d <= size) interesting[b + d] = 1;
            if (b >= d) interesting[b - d] = 1;
        }
    for (size_t i = 0; i < n; i++)
        for (uint64_t d = 0; d < 12; d++) {
            if (t.offsets[i] + d <= size) interesting[t.offsets[i] + d] = 1;
            if (t.ends[i] >= d) interesting[t.ends[i] - d] = 1;
        }
    for (uint64_t cut = size + 1; cut-- > 0;) {
        if (!interesting[cut] && cut % 211 != 0) continue;
        if (check_cut(&t, t.path, cut) != 0) {
            free(interesting);
            CHECK(!"cut failed");
        }
    }
    free(interesting);
    free_test_log(&t);
}

TEST(zero_filled_tail_is_a_clean_end) {
    size_t sizes[] = {10, 40000, 20};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-zero", sizes, 3));
    char *zeros = calloc(65536, 1);
    CHECK(zeros != NULL);
    append_bytes(t.path, zeros, 65536);
    free(zeros);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, 3);
    CHECK(!res.mismatch);
    CHECK_EQ_INT(res.valid_end, t.file_size);
    CHECK_EQ_INT(res.dropped, 65536);
    /* A file that is nothing but zeros (preallocated, never written). */
    CHECK_OK(env_posix()->ops->truncate_file(env_posix(), t.path, 0));
    CHECK_OK(env_posix()->ops->truncate_file(env_posix(), t.path, 100000));
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, 0);
    CHECK_EQ_INT(res.dropped, 100000);
    free_test_log(&t);
}

TEST(garbage_tail_is_dropped) {
    size_t sizes[] = {10, 300, 20};
    size_t garbage_sizes[] = {1, 6, 7, 8, 500, 40000, 100000};
    test_rng rng;
    test_rng_seed(&rng, 7);
    for (size_t g = 0; g < sizeof garbage_sizes / sizeof garbage_sizes[0]; g++) {
        test_log t;
        CHECK_OK(write_test_log(&t, "wal-garbage", sizes, 3));
        size_t n = garbage_sizes[g];
        char *junk = malloc(n);
        CHECK(junk != NULL);
        for (size_t i = 0; i < n; i++) junk[i] = (char)test_rng_next(&rng);
        append_bytes(t.path, junk, n);
        free(junk);
        read_result res;
        CHECK_OK(read_log(&t, t.path, &res));
        CHECK_STATUS(res.status, WEIR_NOT_FOUND);
        CHECK_EQ_INT(res.records, 3);
        CHECK(!res.mismatch);
        CHECK_EQ_INT(res.dropped, n);
        free_test_log(&t);
    }
}

/* Flip every byte of the last record (header and payload): always a torn
 * tail, never corruption, and the records before it survive. */
TEST(damaged_last_record_is_a_torn_tail) {
    size_t sizes[] = {30, 0, 40, 60};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-lastflip", sizes, 4));
    const unsigned char masks[] = {0x01, 0x80, 0xff};
    for (uint64_t off = t.offsets[3]; off < t.ends[3]; off++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            xor_byte(t.path, off, masks[m]);
            read_result res;
            CHECK_OK(read_log(&t, t.path, &res));
            if (res.status != WEIR_NOT_FOUND || res.records != 3 || res.mismatch)
                fprintf(stderr, "flip at %llu mask %02x: %s (%s), %zu records\n", (unsigned long long)off,
                        masks[m], weir_status_name(res.status), res.msg, res.records);
            CHECK_STATUS(res.status, WEIR_NOT_FOUND);
            CHECK_EQ_INT(res.records, 3);
            CHECK(!res.mismatch);
            CHECK_EQ_INT(res.valid_end, t.ends[2]);
            CHECK_EQ_INT(res.dropped, t.ends[3] - t.ends[2]);
            xor_byte(t.path, off, masks[m]);
        }
    }
    free_test_log(&t);
}

/* ---- corruption ------------------------------------------------------------ */

static int expect_corruption_at(const test_log *t, size_t good_records, uint64_t offset, const char *what) {
    read_result res;
    if (read_log(t, t->path, &res) != WEIR_OK) return -1;
    char want[64];
    snprintf(want, sizeof want, "at offset %llu:", (unsigned long long)offset);
    if (res.status != WEIR_CORRUPTION || res.records != good_records || res.mismatch ||
        strstr(res.msg, t->path) == NULL || strstr(res.msg, want) == NULL ||
        strstr(res.msg, "corrupted log record in") == NULL) {
        fprintf(stderr, "%s: %s, %zu records (want %zu), mismatch %d: %s (want offset %llu)\n", what,
                weir_status_name(res.status), res.records, good_records, res.mismatch, res.msg,
                (unsigned long long)offset);
        return -1;
    }
    return 0;
}

/* Flip every byte of a middle record, header included: with a valid
 * record after it, each flip is corruption at that record's offset. */
TEST(damaged_middle_record_is_corruption) {
    size_t sizes[] = {30, 0, 300, 60, 5};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-midflip", sizes, 5));
    const unsigned char masks[] = {0x01, 0x80, 0xff};
    char what[64];
    for (uint64_t off = t.offsets[2]; off < t.ends[2]; off++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            xor_byte(t.path, off, masks[m]);
            snprintf(what, sizeof what, "flip at %llu mask %02x", (unsigned long long)off, masks[m]);
            CHECK(expect_corruption_at(&t, 2, t.offsets[2], what) == 0);
            xor_byte(t.path, off, masks[m]);
        }
    }
    /* The message also says what was wrong. */
    xor_byte(t.path, t.offsets[2] + LOG_HEADER_SIZE + 10, 0x20);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK(strstr(res.msg, "checksum mismatch") != NULL);
    /* A later call still reports it (the error is sticky). */
    log_reader *r;
    CHECK_OK(log_reader_open(env_posix(), t.path, &r));
    buf scratch = BUF_INIT;
    slice rec;
    CHECK_OK(log_reader_next(r, &scratch, &rec));
    CHECK_OK(log_reader_next(r, &scratch, &rec));
    CHECK_STATUS(log_reader_next(r, &scratch, &rec), WEIR_CORRUPTION);
    weir_set_error(WEIR_OK, "something else");
    CHECK_STATUS(log_reader_next(r, &scratch, &rec), WEIR_CORRUPTION);
    CHECK(strstr(weir_errmsg(), "checksum mismatch") != NULL);
    log_reader_close(r);
    buf_free(&scratch);
    free_test_log(&t);
}

TEST(damaged_header_length_field) {
    const size_t B = LOG_BLOCK_SIZE;
    size_t sizes[] = {100, 200, 300, 50000, 400};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-len", sizes, 5));
    /* Length of record 1 (in block 0, valid records after it in the same
     * block): shorter, longer, and far past the block. */
    uint64_t len_lo = t.offsets[1] + 4, len_hi = t.offsets[1] + 5;
    xor_byte(t.path, len_lo, 0x01);
    CHECK(expect_corruption_at(&t, 1, t.offsets[1], "length +1") == 0);
    xor_byte(t.path, len_lo, 0x01);
    xor_byte(t.path, len_lo, 0x80);
    CHECK(expect_corruption_at(&t, 1, t.offsets[1], "length +128") == 0);
    xor_byte(t.path, len_lo, 0x80);
    xor_byte(t.path, len_hi, 0x80);
    CHECK(expect_corruption_at(&t, 1, t.offsets[1], "length +32768") == 0);
    xor_byte(t.path, len_hi, 0x80);
    /* Length of the FIRST fragment of the record spanning blocks 0 and 1. */
    xor_byte(t.path, t.offsets[3] + 4, 0x04);
    CHECK(expect_corruption_at(&t, 3, t.offsets[3], "spanning record") == 0);
    xor_byte(t.path, t.offsets[3] + 4, 0x04);
    /* Length of its LAST fragment, at the start of block 1. */
    xor_byte(t.path, B + 4, 0x10);
    CHECK(expect_corruption_at(&t, 3, B, "LAST fragment") == 0);
    xor_byte(t.path, B + 4, 0x10);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, 5);
    free_test_log(&t);
}

TEST(damage_in_spanning_record_with_later_blocks) {
    const size_t B = LOG_BLOCK_SIZE;
    size_t sizes[] = {10, 3 * B, 10};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-span", sizes, 3));
    /* In the FIRST fragment's payload: the next block start is valid. */
    xor_byte(t.path, t.offsets[1] + 1000, 0x40);
    CHECK(expect_corruption_at(&t, 1, t.offsets[1], "FIRST payload") == 0);
    xor_byte(t.path, t.offsets[1] + 1000, 0x40);
    /* In a MIDDLE fragment: reported at that fragment (block 2). */
    xor_byte(t.path, 2 * B + 500, 0x40);
    CHECK(expect_corruption_at(&t, 1, 2 * B, "MIDDLE payload") == 0);
    xor_byte(t.path, 2 * B + 500, 0x40);
    /* The record is the last but one: damaging the final record is torn. */
    xor_byte(t.path, t.offsets[2] + 8, 0x40);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, 2);
    free_test_log(&t);
}

TEST(zeroed_region_before_valid_data_is_corruption) {
    size_t sizes[] = {100, 100, 40000, 100};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-hole", sizes, 4));
    /* A lost page: bytes of block 0 from record 1 on read back as zeros,
     * while block 1 still holds valid fragments. */
    FILE *f = fopen(t.path, "r+b");
    CHECK(f != NULL);
    CHECK(fseek(f, (long)t.offsets[1], SEEK_SET) == 0);
    for (uint64_t i = t.offsets[1]; i < LOG_BLOCK_SIZE; i++) fputc(0, f);
    fclose(f);
    CHECK(expect_corruption_at(&t, 1, t.offsets[1], "zeroed page") == 0);
    free_test_log(&t);
}

TEST(broken_fragment_chains) {
    const size_t B = LOG_BLOCK_SIZE;
    size_t sizes[] = {3 * B, 10};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-chain", sizes, 2));
    test_log t2 = t;
    snprintf(t2.path, sizeof t2.path, "%.256s/chain.log", t.dir);
    const char *path2 = t2.path;
    t2.n = 0; /* any record returned is a mismatch */

    /* Starts with a MIDDLE (valid checksum, no FIRST) and valid fragments
     * follow: corruption at offset 0. */
    copy_range(t.path, path2, B, t.file_size - B);
    CHECK(expect_corruption_at(&t2, 0, 0, "orphan MIDDLE") == 0);
    read_result res;
    CHECK_OK(read_log(&t2, path2, &res));
    CHECK(strstr(res.msg, "MIDDLE fragment without a preceding FIRST") != NULL);

    /* Only an orphan LAST with nothing after it: the fragment is intact,
     * so what is missing is the start of its record, which no crash can
     * take: corruption, not a torn tail. */
    copy_range(t.path, path2, 3 * B, t.ends[0] - 3 * B);
    CHECK(expect_corruption_at(&t2, 0, 0, "orphan LAST") == 0);

    /* A FIRST whose record never ends, then a new record: corruption at
     * the unfinished record. Block 0 of the big record + the small one
     * moved to a block boundary. */
    copy_range(t.path, path2, 0, B);
    size_t small = (size_t)(t.file_size - t.offsets[1]);
    char *tail = malloc(small);
    CHECK(tail != NULL);
    FILE *f = fopen(t.path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, (long)t.offsets[1], SEEK_SET) == 0);
    CHECK(fread(tail, 1, small, f) == small);
    fclose(f);
    append_bytes(path2, tail, small);
    free(tail);
    CHECK(expect_corruption_at(&t2, 0, 0, "unterminated FIRST") == 0);
    CHECK_OK(read_log(&t2, path2, &res));
    CHECK(strstr(res.msg, "missing its end") != NULL);

    /* The same FIRST cut off by the end of the file is a torn tail. */
    copy_range(t.path, path2, 0, 2 * B);
    CHECK_OK(read_log(&t2, path2, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.dropped, 2 * B);
    free_test_log(&t);
}

TEST(unknown_fragment_type_with_valid_checksum) {
    /* A fragment of type 9 with a correct checksum (e.g. from a newer
     * format) followed by a valid record is corruption, not a skip. */
    size_t sizes[] = {20, 20};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-type", sizes, 2));
    FILE *f = fopen(t.path, "r+b");
    CHECK(f != NULL);
    unsigned char payload[20];
    CHECK(fseek(f, (long)(t.offsets[0] + LOG_HEADER_SIZE), SEEK_SET) == 0);
    CHECK(fread(payload, 1, 20, f) == 20);
    unsigned char type = 9;
    char crc[4];
    encode_fixed32(crc, crc32c_mask(crc32c_extend(crc32c_value(&type, 1), payload, 20)));
    CHECK(fseek(f, (long)t.offsets[0], SEEK_SET) == 0);
    CHECK(fwrite(crc, 1, 4, f) == 4);
    CHECK(fseek(f, (long)t.offsets[0] + 6, SEEK_SET) == 0);
    fputc(type, f);
    fclose(f);
    CHECK(expect_corruption_at(&t, 0, 0, "type 9") == 0);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK(strstr(res.msg, "unknown fragment type 9") != NULL);
    free_test_log(&t);
}

/* The finding that started the stricter rule: one zeroed fragment header
 * in the middle of the last block used to end the log there, dropping
 * every valid record after it in that block. */
TEST(zeroed_header_mid_block_is_corruption) {
    size_t sizes[100];
    for (size_t i = 0; i < 100; i++) sizes[i] = 60;
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-zhdr", sizes, 100));
    uint64_t at = t.offsets[50];
    FILE *f = fopen(t.path, "r+b");
    CHECK(f != NULL);
    CHECK(fseek(f, (long)at, SEEK_SET) == 0);
    for (int i = 0; i < LOG_HEADER_SIZE; i++) fputc(0, f);
    fclose(f);
    CHECK(expect_corruption_at(&t, 50, at, "zeroed header") == 0);
    read_result res;
    CHECK_OK(read_log(&t, t.path, &res));
    CHECK(strstr(res.msg, "a valid record follows") != NULL);
    free_test_log(&t);
}

/* A valid fragment at any byte offset after the damage counts, not only
 * at block starts or where the damaged header's length points. */
TEST(valid_fragment_at_odd_offset_after_damage) {
    size_t sizes[] = {100, 100, 100};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-odd", sizes, 3));
    /* Damage record 1's length so it claims to run to the block end, and
     * its type so no chain can be followed: record 2 is only found by a
     * byte-by-byte scan. */
    xor_byte(t.path, t.offsets[1] + 5, 0x40);
    xor_byte(t.path, t.offsets[1] + 6, 0x20);
    CHECK(expect_corruption_at(&t, 1, t.offsets[1], "odd offset") == 0);
    free_test_log(&t);
}

/* A file of random bytes holds no valid fragment: the reader ends at once
 * with everything counted as dropped, never as records. */
TEST(random_file_has_no_records) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "wal-rand");
    snprintf(path, sizeof path, "%s/000001.log", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 100 * 1024; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        fputc((int)(x & 0xff), f);
    }
    fclose(f);
    test_log t = {0};
    read_result res;
    CHECK_OK(read_log(&t, path, &res));
    CHECK_STATUS(res.status, WEIR_NOT_FOUND);
    CHECK_EQ_INT(res.records, 0);
    CHECK_EQ_INT(res.dropped, 100 * 1024);
    test_rmtree(dir);
}

typedef struct salvage_log {
    int calls;
    uint64_t start[8], end[8];
    int follows[8];
} salvage_log;

static void note_skip(void *arg, uint64_t start, uint64_t end, int follows, const char *reason) {
    (void)reason;
    salvage_log *s = arg;
    if (s->calls > 0 && s->end[s->calls - 1] == start) { /* contiguous: one lost range */
        s->end[s->calls - 1] = end;
        s->follows[s->calls - 1] = follows;
        return;
    }
    if (s->calls < 8) {
        s->start[s->calls] = start;
        s->end[s->calls] = end;
        s->follows[s->calls] = follows;
    }
    s->calls++;
}

/* Salvage mode steps over damage, reports exactly the lost byte ranges,
 * and returns every intact record on either side, including those of a
 * record spanning blocks. */
TEST(salvage_mode_skips_damage_and_reports_it) {
    const size_t B = LOG_BLOCK_SIZE;
    size_t sizes[] = {100, 100, 2 * B, 100, 100, 100};
    test_log t;
    CHECK_OK(write_test_log(&t, "wal-salv", sizes, 6));
    xor_byte(t.path, t.offsets[1] + 20, 0x01);     /* record 1: bad checksum */
    xor_byte(t.path, t.offsets[2] + B + 100, 0x01); /* record 2: a MIDDLE fragment */
    xor_byte(t.path, t.offsets[5] + 9, 0x01);      /* the last record */
    log_reader *r;
    CHECK_OK(log_reader_open(env_posix(), t.path, &r));
    salvage_log sl = {0};
    log_reader_set_salvage(r, note_skip, &sl);
    buf scratch = BUF_INIT, want = BUF_INIT;
    slice rec;
    size_t got[6];
    size_t n = 0;
    int rc;
    while ((rc = log_reader_next(r, &scratch, &rec)) == WEIR_OK) {
        for (size_t i = 0; i < 6; i++) {
            fill_record(&want, i, sizes[i]);
            if (slice_equal(rec, buf_slice(&want)) && n < 6) got[n++] = i;
        }
    }
    CHECK_STATUS(rc, WEIR_NOT_FOUND);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(got[0], 0);
    CHECK_EQ_INT(got[1], 3);
    CHECK_EQ_INT(got[2], 4);
    /* Records 1 and 2 are adjacent, so they make one lost range. */
    CHECK_EQ_INT(sl.calls, 2);
    CHECK_EQ_INT(sl.start[0], t.offsets[1]);
    CHECK_EQ_INT(sl.end[0], t.offsets[3]);
    CHECK(sl.follows[0]);
    CHECK_EQ_INT(sl.start[1], t.offsets[5]);
    CHECK_EQ_INT(sl.end[1], t.file_size);
    CHECK(!sl.follows[1]);
    CHECK_EQ_INT(log_reader_skipped_bytes(r),
                 (t.offsets[3] - t.offsets[1]) + (t.file_size - t.offsets[5]));
    log_reader_close(r);
    buf_free(&scratch);
    buf_free(&want);
    free_test_log(&t);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        TEST_ENTRY(round_trip_sizes_across_blocks),
        TEST_ENTRY(round_trip_many_small_records),
        TEST_ENTRY(writer_flush_sync_and_size),
        TEST_ENTRY(empty_and_missing_files),
        TEST_ENTRY(truncation_at_every_offset),
        TEST_ENTRY(truncation_of_multi_block_records),
        TEST_ENTRY(zero_filled_tail_is_a_clean_end),
        TEST_ENTRY(garbage_tail_is_dropped),
        TEST_ENTRY(damaged_last_record_is_a_torn_tail),
        TEST_ENTRY(damaged_middle_record_is_corruption),
        TEST_ENTRY(damaged_header_length_field),
        TEST_ENTRY(damage_in_spanning_record_with_later_blocks),
        TEST_ENTRY(zeroed_region_before_valid_data_is_corruption),
        TEST_ENTRY(broken_fragment_chains),
        TEST_ENTRY(unknown_fragment_type_with_valid_checksum),
        TEST_ENTRY(zeroed_header_mid_block_is_corruption),
        TEST_ENTRY(valid_fragment_at_odd_offset_after_damage),
        TEST_ENTRY(random_file_has_no_records),
        TEST_ENTRY(salvage_mode_skips_damage_and_reports_it),
        TEST_END,
    };
    return test_main(argc, argv, tests);
}
