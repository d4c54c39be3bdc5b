/* test_sst.c -- table files (sst_build.c, sst_read.c): round trips of 0 to
 * 100k entries through the iterator (both directions), seeks and point
 * lookups; the bloom filter; and damaged files (data, index, filter,
 * footer, magic, version, compression type, truncation) that must fail with
 * the right status and a message naming the file and an offset. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block.h"
#include "bloom.h"
#include "cache.h"
#include "compress.h"
#include "crc32c.h"
#include "sst.h"
#include "status.h"
#include "testutil.h"

/* Round-trip tests run once per codec: these say which, and whether the
 * reader keeps decompressed blocks in a cache. */
static int build_compression = SST_COMPRESSION_NONE;
static block_cache *read_cache = NULL;

/* ---- the entries a table holds ----------------------------------------- */

typedef struct entries {
    buf *keys;  /* internal keys, increasing */
    buf *vals;
    int n;
} entries;

static void user_key(char *out, size_t cap, int number) { snprintf(out, cap, "key%09d", number); }

/* n entries: user keys with even numbers (odd ones are absent); every fifth
 * user key has three versions; every eleventh entry is a deletion. Value
 * sizes vary from 0 to a few hundred bytes with an occasional 5000. */
static void make_entries(entries *e, int n) {
    e->keys = calloc((size_t)n + 1, sizeof *e->keys);
    e->vals = calloc((size_t)n + 1, sizeof *e->vals);
    e->n = n;
    int g = 0, i = 0;
    char uk[32];
    while (i < n) {
        int versions = (g % 5 == 0) ? 3 : 1;
        for (int v = 0; v < versions && i < n; v++, i++) {
            user_key(uk, sizeof uk, 2 * g);
            uint64_t seq = (uint64_t)g * 3 + (uint64_t)(versions - v);
            int type = (i % 11 == 10) ? TYPE_DELETION : TYPE_VALUE;
            ikey_append(&e->keys[i], slice_make(uk, strlen(uk)), seq, type);
            size_t len = type == TYPE_DELETION ? 0 : (i % 997 == 5) ? 5000 : (size_t)((i * 7919) % 200);
            buf_reserve(&e->vals[i], len + 1);
            for (size_t j = 0; j < len; j++) e->vals[i].data[j] = (char)('A' + (i + (int)j) % 50);
            e->vals[i].len = len;
        }
        g++;
    }
}

static void free_entries(entries *e) {
    for (int i = 0; i < e->n; i++) {
        buf_free(&e->keys[i]);
        buf_free(&e->vals[i]);
    }
    free(e->keys);
    free(e->vals);
}

static int build(const char *path, const entries *e, size_t block_size, int bloom_bits,
                 uint64_t *file_size) {
    sst_build_options o = {block_size, 16, bloom_bits, build_compression};
    sst_builder *b;
    int rc = sst_builder_open(env_posix(), path, &o, &b);
    if (rc != WEIR_OK) return rc;
    for (int i = 0; i < e->n; i++) {
        rc = sst_builder_add(b, buf_slice(&e->keys[i]), buf_slice(&e->vals[i]));
        if (rc != WEIR_OK) {
            sst_builder_abandon(b);
            return rc;
        }
    }
    if (sst_builder_num_entries(b) != (uint64_t)e->n) {
        sst_builder_abandon(b);
        return WEIR_INVALID;
    }
    return sst_builder_finish(b, file_size);
}

/* ---- lookups ----------------------------------------------------------- */

typedef struct got {
    int calls;
    buf key, val;
} got;

static void on_get(void *arg, slice ikey, slice value) {
    got *g = arg;
    g->calls++;
    buf_set(&g->key, ikey.data, ikey.len);
    buf_set(&g->val, value.data, value.len);
}

static int lookup(sst_reader *r, int user_number, uint64_t seq, got *g) {
    char uk[32];
    user_key(uk, sizeof uk, user_number);
    buf k = BUF_INIT;
    ikey_append(&k, slice_make(uk, strlen(uk)), seq, TYPE_FOR_SEEK);
    g->calls = 0;
    int rc = sst_reader_get(r, buf_slice(&k), bloom_hash(uk, strlen(uk)), on_get, g);
    buf_free(&k);
    return rc;
}

static void got_free(got *g) {
    buf_free(&g->key);
    buf_free(&g->val);
}

static int at(const iter *it, const entries *e, int i) {
    return iter_valid(it) && slice_equal(iter_key(it), buf_slice(&e->keys[i])) &&
           slice_equal(iter_value(it), buf_slice(&e->vals[i]));
}

static int mentions(const char *msg, const char *a, const char *b) {
    return strstr(msg, a) != NULL && (!b || strstr(msg, b) != NULL);
}

/* ---- file surgery ------------------------------------------------------ */

static char *slurp(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (fread(p, 1, (size_t)len, f) != (size_t)len) len = 0;
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void spill(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void xor_byte(const char *path, uint64_t off, unsigned char mask) {
    size_t n = 0;
    char *d = slurp(path, &n);
    d[off] ^= (char)mask;
    spill(path, d, n);
    free(d);
}

typedef struct footer {
    uint64_t filter_off, filter_size, index_off, index_size, entries;
} footer;

static footer read_footer(const char *data, size_t n) {
    const char *f = data + n - SST_FOOTER_SIZE;
    footer ft = {decode_fixed64(f), decode_fixed64(f + 8), decode_fixed64(f + 16),
                 decode_fixed64(f + 24), decode_fixed64(f + 32)};
    return ft;
}

static void reseal_footer(char *data, size_t n) {
    char *f = data + n - SST_FOOTER_SIZE;
    encode_fixed32(f + 48, crc32c_mask(crc32c_value(f, 48)));
}

/* ---- round trips ------------------------------------------------------- */

static void check_round_trip(int n, size_t block_size, int bloom_bits, int seek_stride) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entries e;
    make_entries(&e, n);
    uint64_t size = 0;
    CHECK_OK(build(path, &e, block_size, bloom_bits, &size));
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_size, size);

    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    sst_reader_set_block_cache(r, read_cache);
    CHECK_EQ_INT(sst_reader_num_entries(r), n);
    if (n > 2000) CHECK(sst_reader_num_blocks(r) > 10);
    CHECK_OK(sst_reader_verify(r));

    iter *it = sst_reader_iter(r, NULL, NULL);
    CHECK(it);
    int i = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it), i++) CHECK(at(it, &e, i));
    CHECK_OK(iter_status(it));
    CHECK_EQ_INT(i, n);
    i = n - 1;
    for (iter_seek_last(it); iter_valid(it); iter_prev(it), i--) CHECK(at(it, &e, i));
    CHECK_OK(iter_status(it));
    CHECK_EQ_INT(i, -1);

    /* Seek to entries and to the gaps before them; step both ways. */
    char uk[32];
    buf target = BUF_INIT;
    for (int j = 0; j < n; j += seek_stride) {
        iter_seek(it, buf_slice(&e.keys[j]));
        CHECK(at(it, &e, j));
        iter_prev(it);
        if (j > 0) {
            CHECK(at(it, &e, j - 1));
            iter_next(it);
            CHECK(at(it, &e, j));
        } else {
            CHECK(!iter_valid(it));
        }
        /* The absent odd user key just below: lands on the first version
         * of this key, if j is one. */
        slice u = ikey_user(buf_slice(&e.keys[j]));
        int number = atoi(u.data + 3);
        user_key(uk, sizeof uk, number - 1);
        buf_clear(&target);
        ikey_append(&target, slice_make(uk, strlen(uk)), MAX_SEQUENCE, TYPE_FOR_SEEK);
        iter_seek(it, buf_slice(&target));
        CHECK(iter_valid(it));
        CHECK(slice_equal(ikey_user(iter_key(it)), u));
    }
    if (n > 0) {
        user_key(uk, sizeof uk, 2 * n + 10);
        buf_clear(&target);
        ikey_append(&target, slice_make(uk, strlen(uk)), 0, TYPE_DELETION);
        iter_seek(it, buf_slice(&target));
        CHECK(!iter_valid(it));
        CHECK_OK(iter_status(it));
    }
    buf_free(&target);
    iter_destroy(it);

    /* Point lookups: newest version at MAX_SEQUENCE, each version at its
     * own sequence, absent keys never produce that user key. */
    got g = {0, BUF_INIT, BUF_INIT};
    for (int j = 0; j < n; j += seek_stride) {
        slice k = buf_slice(&e.keys[j]);
        slice u = ikey_user(k);
        int number = atoi(u.data + 3);
        CHECK_OK(lookup(r, number, ikey_seq(k), &g));
        CHECK_EQ_INT(g.calls, 1);
        CHECK(slice_equal(buf_slice(&g.key), k));
        CHECK(slice_equal(buf_slice(&g.val), buf_slice(&e.vals[j])));
        CHECK_OK(lookup(r, number, MAX_SEQUENCE, &g));
        CHECK_EQ_INT(g.calls, 1);
        CHECK(slice_equal(ikey_user(buf_slice(&g.key)), u));
        CHECK(j == 0 || !slice_equal(ikey_user(buf_slice(&e.keys[j - 1])), u) ||
              ikey_seq(buf_slice(&g.key)) > ikey_seq(k));
        CHECK_OK(lookup(r, number + 1, MAX_SEQUENCE, &g));
        CHECK(g.calls == 0 || !slice_equal(ikey_user(buf_slice(&g.key)), u));
    }
    got_free(&g);
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

TEST(empty_table) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entries e;
    make_entries(&e, 0);
    uint64_t size;
    CHECK_OK(build(path, &e, 4096, 10, &size));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    CHECK_EQ_INT(sst_reader_num_entries(r), 0);
    CHECK_EQ_INT(sst_reader_num_blocks(r), 0);
    CHECK_OK(sst_reader_verify(r));
    iter *it = sst_reader_iter(r, NULL, NULL);
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    iter_seek_last(it);
    CHECK(!iter_valid(it));
    iter_seek(it, slice_make("anything", 8));
    CHECK(!iter_valid(it));
    CHECK_OK(iter_status(it));
    iter_destroy(it);
    got g = {0, BUF_INIT, BUF_INIT};
    CHECK_OK(lookup(r, 2, MAX_SEQUENCE, &g));
    CHECK_EQ_INT(g.calls, 0);
    CHECK_EQ_INT(sst_reader_approximate_offset(r, slice_make("somekey-tagtag", 14)), 0);
    got_free(&g);
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

TEST(single_entry_table) {
    check_round_trip(1, 4096, 10, 1);
    /* Lookups before and after the one key. */
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entries e;
    make_entries(&e, 1);
    uint64_t size;
    CHECK_OK(build(path, &e, 4096, 0, &size));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    got g = {0, BUF_INIT, BUF_INIT};
    CHECK_OK(lookup(r, 0, 0, &g)); /* older than the entry: nothing after it */
    CHECK_EQ_INT(g.calls, 0);
    CHECK_OK(lookup(r, 1, MAX_SEQUENCE, &g));
    CHECK_EQ_INT(g.calls, 0);
    got_free(&g);
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

TEST(ten_entries) { check_round_trip(10, 4096, 10, 1); }

TEST(many_small_blocks) { check_round_trip(5000, 256, 10, 1); }

TEST(tiny_blocks_one_entry_each) { check_round_trip(300, 1, 10, 1); }

TEST(hundred_thousand_entries) { check_round_trip(100000, 4096, 10, 13); }

TEST(no_bloom_filter) { check_round_trip(3000, 1024, 0, 1); }

/* Same entries, same answers, whatever the codec; compressed tables are
 * smaller and say which codec they use. */
static void compressed_round_trip(int codec) {
    CHECK(codec_supported(codec));
    build_compression = codec;
    check_round_trip(20000, 4096, 10, 7);
    read_cache = block_cache_create(64 * 1024); /* small: forces evictions */
    check_round_trip(20000, 4096, 10, 7);
    block_cache_stats st;
    block_cache_get_stats(read_cache, &st);
    block_cache_destroy(read_cache);
    read_cache = NULL;
    build_compression = SST_COMPRESSION_NONE;
    CHECK(st.misses > 0 && st.hits > 0 && st.evictions > 0);
    CHECK(st.usage <= 64 * 1024);

    /* The codec is recorded in the footer, and the file shrinks. */
    char dir[256], path[512];
    test_tmpdir(dir, sizeof dir, "sst-codec");
    entries e;
    make_entries(&e, 5000);
    uint64_t plain_size, packed_size;
    snprintf(path, sizeof path, "%s/plain.sst", dir);
    CHECK_OK(build(path, &e, 4096, 10, &plain_size));
    build_compression = codec;
    snprintf(path, sizeof path, "%s/packed.sst", dir);
    int rc = build(path, &e, 4096, 10, &packed_size);
    build_compression = SST_COMPRESSION_NONE;
    CHECK_OK(rc);
    CHECK(packed_size < plain_size);
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, packed_size, &r));
    CHECK(sst_reader_codecs(r) == (UINT32_C(1) << codec));
    CHECK_OK(sst_reader_verify(r));
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

TEST(lz4_round_trip) { compressed_round_trip(SST_COMPRESSION_LZ4); }
TEST(zstd_round_trip) { compressed_round_trip(SST_COMPRESSION_ZSTD); }

TEST(builder_rejects_bad_keys) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    sst_build_options o = {4096, 16, 10, SST_COMPRESSION_NONE};
    sst_builder *b;
    CHECK_OK(sst_builder_open(env_posix(), path, &o, &b));
    buf k1 = BUF_INIT, k2 = BUF_INIT;
    ikey_append(&k1, slice_make("b", 1), 5, TYPE_VALUE);
    ikey_append(&k2, slice_make("a", 1), 9, TYPE_VALUE);
    CHECK_OK(sst_builder_add(b, buf_slice(&k1), slice_make("v", 1)));
    CHECK_STATUS(sst_builder_add(b, buf_slice(&k1), slice_make("v", 1)), WEIR_INVALID);
    CHECK_STATUS(sst_builder_add(b, buf_slice(&k2), slice_make("v", 1)), WEIR_INVALID);
    CHECK(mentions(weir_errmsg(), path, "out of order"));
    CHECK_STATUS(sst_builder_add(b, slice_make("short", 5), slice_make("v", 1)), WEIR_INVALID);
    /* Same user key, older sequence: fine. */
    buf_clear(&k2);
    ikey_append(&k2, slice_make("b", 1), 4, TYPE_DELETION);
    CHECK_OK(sst_builder_add(b, buf_slice(&k2), slice_make("", 0)));
    CHECK_EQ_INT(sst_builder_num_entries(b), 2);
    CHECK(sst_builder_file_size(b) > 0);
    uint64_t size;
    CHECK_OK(sst_builder_finish(b, &size));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    CHECK_EQ_INT(sst_reader_num_entries(r), 2);
    sst_reader_close(r);
    /* Abandon leaves nothing open. */
    CHECK_OK(sst_builder_open(env_posix(), path, &o, &b));
    CHECK_OK(sst_builder_add(b, buf_slice(&k1), slice_make("v", 1)));
    sst_builder_abandon(b);
    buf_free(&k1);
    buf_free(&k2);
    test_rmtree(dir);
}

TEST(builder_open_fails_in_missing_directory) {
    sst_build_options o = {4096, 16, 10, SST_COMPRESSION_NONE};
    sst_builder *b = (sst_builder *)1;
    CHECK(sst_builder_open(env_posix(), "/nonexistent-weir-dir/x/000001.sst", &o, &b) != WEIR_OK);
    CHECK(b == NULL);
    sst_reader *r = (sst_reader *)1;
    CHECK(sst_reader_open(env_posix(), "/nonexistent-weir-dir/000001.sst", 100, &r) != WEIR_OK);
    CHECK(r == NULL);
}

/* Many versions of one user key spanning blocks: separators must keep the
 * sequence order right. Also user keys made of 0xff bytes. */
TEST(versions_spanning_blocks_and_ff_keys) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entries e;
    int n = 0;
    e.keys = calloc(3000, sizeof *e.keys);
    e.vals = calloc(3000, sizeof *e.vals);
    for (int v = 1000; v >= 1; v--, n++) {
        ikey_append(&e.keys[n], slice_make("hot", 3), (uint64_t)v, TYPE_VALUE);
        buf_put_fixed32(&e.vals[n], (uint32_t)v);
    }
    const char *ff[] = {"\xfe\xff\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff\xff"};
    for (int i = 0; i < 5; i++, n++) {
        ikey_append(&e.keys[n], slice_make(ff[i], i == 2 ? 2 : strlen(ff[i])), 1, TYPE_VALUE);
        buf_put_fixed32(&e.vals[n], (uint32_t)i);
    }
    e.n = n;
    uint64_t size;
    CHECK_OK(build(path, &e, 128, 10, &size));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    CHECK(sst_reader_num_blocks(r) > 20);
    CHECK_OK(sst_reader_verify(r));
    got g = {0, BUF_INIT, BUF_INIT};
    buf k = BUF_INIT;
    uint64_t h = bloom_hash("hot", 3);
    for (uint64_t seq = 1; seq <= 1005; seq++) {
        buf_clear(&k);
        ikey_append(&k, slice_make("hot", 3), seq, TYPE_FOR_SEEK);
        g.calls = 0;
        CHECK_OK(sst_reader_get(r, buf_slice(&k), h, on_get, &g));
        CHECK_EQ_INT(g.calls, 1);
        uint64_t want = seq > 1000 ? 1000 : seq;
        CHECK_EQ_INT(ikey_seq(buf_slice(&g.key)), want);
        CHECK_EQ_INT(decode_fixed32(g.val.data), want);
    }
    /* Seek to sequence 0 of "hot": first entry past all its versions. */
    buf_clear(&k);
    ikey_append(&k, slice_make("hot", 3), 0, TYPE_DELETION);
    g.calls = 0;
    CHECK_OK(sst_reader_get(r, buf_slice(&k), h, on_get, &g));
    CHECK_EQ_INT(g.calls, 1);
    CHECK(slice_equal(ikey_user(buf_slice(&g.key)), slice_make(ff[0], 3)));
    iter *it = sst_reader_iter(r, NULL, NULL);
    int i = n - 1;
    for (iter_seek_last(it); iter_valid(it); iter_prev(it), i--) CHECK(at(it, &e, i));
    CHECK_EQ_INT(i, -1);
    for (i = 0; i < n; i++) {
        iter_seek(it, buf_slice(&e.keys[i]));
        CHECK(at(it, &e, i));
    }
    iter_destroy(it);
    buf_free(&k);
    got_free(&g);
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

/* A separator may sort after its block's last key; a target in that gap
 * belongs to the next block's first entry, for get and for seek. */
TEST(target_between_last_key_and_separator) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entries e;
    e.keys = calloc(2, sizeof *e.keys);
    e.vals = calloc(2, sizeof *e.vals);
    e.n = 2;
    ikey_append(&e.keys[0], slice_make("abc", 3), 5, TYPE_VALUE); /* separator "ac" */
    ikey_append(&e.keys[1], slice_make("b", 1), 5, TYPE_VALUE);
    buf_set(&e.vals[0], "1", 1);
    buf_set(&e.vals[1], "2", 1);
    uint64_t size;
    CHECK_OK(build(path, &e, 1, 0, &size));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    CHECK_EQ_INT(sst_reader_num_blocks(r), 2);
    buf k = BUF_INIT;
    ikey_append(&k, slice_make("abc", 3), 4, TYPE_FOR_SEEK);
    got g = {0, BUF_INIT, BUF_INIT};
    CHECK_OK(sst_reader_get(r, buf_slice(&k), bloom_hash("abc", 3), on_get, &g));
    CHECK_EQ_INT(g.calls, 1);
    CHECK(slice_equal(buf_slice(&g.key), buf_slice(&e.keys[1])));
    iter *it = sst_reader_iter(r, NULL, NULL);
    iter_seek(it, buf_slice(&k));
    CHECK(at(it, &e, 1));
    iter_prev(it);
    CHECK(at(it, &e, 0));
    iter_destroy(it);
    buf_free(&k);
    got_free(&g);
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

/* ---- a table assembled by hand, straight from the layout in sst.h ---- */

static void put_block(buf *file, slice contents, uint64_t *off) {
    *off = file->len;
    buf_append(file, contents.data, contents.len);
    char t[SST_TRAILER_SIZE];
    t[0] = SST_COMPRESSION_NONE;
    encode_fixed32(t + 1, crc32c_mask(crc32c_extend(crc32c_value(contents.data, contents.len), t, 1)));
    buf_append(file, t, sizeof t);
}

static void add_ikey(block_builder *b, const char *user, uint64_t seq, const char *value) {
    buf k = BUF_INIT;
    ikey_append(&k, slice_make(user, strlen(user)), seq, TYPE_VALUE);
    block_builder_add(b, buf_slice(&k), slice_make(value, strlen(value)));
    buf_free(&k);
}

static void add_index(block_builder *ix, const char *user, uint64_t seq, uint64_t off, uint64_t size,
                      uint32_t ordinal) {
    buf k = BUF_INIT, v = BUF_INIT;
    /* The same tag as the data entries: index key == the block's last key. */
    ikey_append(&k, slice_make(user, strlen(user)), seq, TYPE_VALUE);
    buf_put_varint64(&v, off);
    buf_put_varint64(&v, size);
    buf_put_varint32(&v, ordinal);
    block_builder_add(ix, buf_slice(&k), buf_slice(&v));
    buf_free(&k);
    buf_free(&v);
}

/* Data blocks [a b] [] [c]: the reader must read the documented layout and
 * step over an empty block in both directions, in seeks and in lookups.
 * Written as format version 1 (blocks without a hash index), which every
 * later build still reads. */
TEST(hand_assembled_table_with_empty_block) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000009.sst", dir);
    buf file = BUF_INIT;
    block_builder b, ix;
    block_builder_init(&b, 16);
    block_builder_init(&ix, 1);
    uint64_t off[3], size[3];
    add_ikey(&b, "a", 1, "va");
    add_ikey(&b, "b", 1, "vb");
    slice s = block_builder_finish(&b);
    size[0] = s.len;
    put_block(&file, s, &off[0]);
    block_builder_reset(&b);
    s = block_builder_finish(&b);
    size[1] = s.len;
    put_block(&file, s, &off[1]);
    block_builder_reset(&b);
    add_ikey(&b, "c", 1, "vc");
    s = block_builder_finish(&b);
    size[2] = s.len;
    put_block(&file, s, &off[2]);
    add_index(&ix, "b", 1, off[0], size[0], 0);
    add_index(&ix, "bb", MAX_SEQUENCE, off[1], size[1], 1);
    add_index(&ix, "c", 1, off[2], size[2], 2);
    uint64_t filter_off, index_off;
    put_block(&file, slice_make("", 0), &filter_off);
    s = block_builder_finish(&ix);
    put_block(&file, s, &index_off);
    char f[SST_FOOTER_SIZE];
    encode_fixed64(f, filter_off);
    encode_fixed64(f + 8, 0);
    encode_fixed64(f + 16, index_off);
    encode_fixed64(f + 24, s.len);
    encode_fixed64(f + 32, 3);
    encode_fixed32(f + 40, SST_OLDEST_FORMAT_VERSION);
    encode_fixed32(f + 44, 0);
    encode_fixed32(f + 48, crc32c_mask(crc32c_value(f, 48)));
    encode_fixed32(f + 52, 0);
    encode_fixed64(f + 56, SST_MAGIC);
    buf_append(&file, f, sizeof f);
    spill(path, file.data, file.len);
    block_builder_free(&b);
    block_builder_free(&ix);

    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, file.len, &r));
    CHECK_EQ_INT(sst_reader_num_blocks(r), 3);
    CHECK_EQ_INT(sst_reader_num_entries(r), 3);
    CHECK_OK(sst_reader_verify(r));
    iter *it = sst_reader_iter(r, NULL, NULL);
    const char *want = "abc";
    int i = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it), i++)
        CHECK(iter_key(it).data[0] == want[i] && iter_value(it).data[1] == want[i]);
    CHECK_EQ_INT(i, 3);
    for (iter_seek_last(it); iter_valid(it); iter_prev(it)) i--;
    CHECK_EQ_INT(i, 0);
    buf k = BUF_INIT;
    ikey_append(&k, slice_make("ba", 2), MAX_SEQUENCE, TYPE_FOR_SEEK);
    iter_seek(it, buf_slice(&k));
    CHECK(iter_valid(it) && iter_key(it).data[0] == 'c');
    iter_prev(it);
    CHECK(iter_valid(it) && iter_key(it).data[0] == 'b');
    CHECK_OK(iter_status(it));
    iter_destroy(it);
    got g = {0, BUF_INIT, BUF_INIT};
    CHECK_OK(sst_reader_get(r, buf_slice(&k), 0, on_get, &g));
    CHECK_EQ_INT(g.calls, 1);
    CHECK(g.key.data[0] == 'c');
    sst_reader_close(r);

    /* Same file claiming 4 entries: only verify can tell. */
    encode_fixed64(file.data + file.len - SST_FOOTER_SIZE + 32, 4);
    reseal_footer(file.data, file.len);
    spill(path, file.data, file.len);
    CHECK_OK(sst_reader_open(env_posix(), path, file.len, &r));
    CHECK_STATUS(sst_reader_verify(r), WEIR_CORRUPTION);
    CHECK(mentions(weir_errmsg(), path, "entries"));
    sst_reader_close(r);

    /* An index whose ordinals skip a number is rejected at open. */
    block_builder_init(&ix, 1);
    add_index(&ix, "b", 1, off[0], size[0], 0);
    add_index(&ix, "c", 1, off[2], size[2], 2);
    s = block_builder_finish(&ix);
    file.len = index_off;
    put_block(&file, s, &index_off);
    encode_fixed64(f + 24, s.len);
    encode_fixed32(f + 48, crc32c_mask(crc32c_value(f, 48)));
    buf_append(&file, f, sizeof f);
    spill(path, file.data, file.len);
    block_builder_free(&ix);
    CHECK_STATUS(sst_reader_open(env_posix(), path, file.len, &r), WEIR_CORRUPTION);
    CHECK(mentions(weir_errmsg(), path, "bad block handle"));

    got_free(&g);
    buf_free(&k);
    buf_free(&file);
    test_rmtree(dir);
}

TEST(bloom_filter_skips_absent_keys) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entries e;
    make_entries(&e, 10000);
    uint64_t size;
    CHECK_OK(build(path, &e, 4096, 10, &size));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    char uk[32];
    int maybe = 0, absent = 0;
    for (int i = 0; i < e.n; i++) {
        slice u = ikey_user(buf_slice(&e.keys[i]));
        CHECK(sst_reader_may_contain(r, bloom_hash(u.data, u.len))); /* no false negatives */
    }
    got g = {0, BUF_INIT, BUF_INIT};
    for (int i = 0; i < 10000; i++) {
        user_key(uk, sizeof uk, 2 * i + 1);
        uint64_t h = bloom_hash(uk, strlen(uk));
        if (sst_reader_may_contain(r, h)) {
            maybe++;
        } else {
            absent++;
            /* The filter answers alone: not even a callback with a neighbour. */
            CHECK_OK(lookup(r, 2 * i + 1, MAX_SEQUENCE, &g));
            CHECK_EQ_INT(g.calls, 0);
        }
    }
    /* 10 bits/key: ~1% false positives; allow plenty of slack. */
    CHECK(maybe < 500);
    CHECK(absent > 9500);
    sst_reader_close(r);

    /* Without a filter everything "may" be there and lookups still work. */
    CHECK_OK(build(path, &e, 4096, 0, &size));
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    for (int i = 0; i < 100; i++) {
        user_key(uk, sizeof uk, 2 * i + 1);
        CHECK(sst_reader_may_contain(r, bloom_hash(uk, strlen(uk))));
    }
    CHECK_OK(lookup(r, 2 * 7 + 1, MAX_SEQUENCE, &g));
    CHECK_EQ_INT(g.calls, 1); /* lands on the next user key */
    size_t n = 0;
    char *d = slurp(path, &n);
    CHECK_EQ_INT(read_footer(d, n).filter_size, 0);
    free(d);
    got_free(&g);
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

TEST(approximate_offsets_increase) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entries e;
    make_entries(&e, 5000);
    uint64_t size;
    CHECK_OK(build(path, &e, 1024, 10, &size));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), path, size, &r));
    uint64_t prev = 0;
    CHECK_EQ_INT(sst_reader_approximate_offset(r, buf_slice(&e.keys[0])), 0);
    for (int i = 0; i < e.n; i += 50) {
        uint64_t off = sst_reader_approximate_offset(r, buf_slice(&e.keys[i]));
        CHECK(off >= prev);
        CHECK(off < size);
        prev = off;
    }
    CHECK(prev > size / 2);
    buf k = BUF_INIT;
    ikey_append(&k, slice_make("zzz", 3), 1, TYPE_VALUE);
    uint64_t end = sst_reader_approximate_offset(r, buf_slice(&k));
    CHECK(end > prev && end < size);
    buf_free(&k);
    sst_reader_close(r);
    free_entries(&e);
    test_rmtree(dir);
}

/* ---- damaged files ----------------------------------------------------- */

typedef struct damaged {
    char dir[256];
    char path[300];
    entries e;
    uint64_t size;
    footer ft;
} damaged;

/* value_cap: trim values (SIZE_MAX keeps them) to make a small file. */
static int setup_damaged(damaged *d, int n, size_t block_size, size_t value_cap) {
    test_tmpdir(d->dir, sizeof d->dir, "sst");
    snprintf(d->path, sizeof d->path, "%s/000007.sst", d->dir);
    make_entries(&d->e, n);
    for (int i = 0; i < n; i++)
        if (d->e.vals[i].len > value_cap) d->e.vals[i].len = value_cap;
    if (build(d->path, &d->e, block_size, 10, &d->size) != WEIR_OK) return 0;
    size_t len = 0;
    char *data = slurp(d->path, &len);
    d->ft = read_footer(data, len);
    free(data);
    return 1;
}

static void teardown_damaged(damaged *d) {
    free_entries(&d->e);
    test_rmtree(d->dir);
}

/* Offset of data block `ordinal` (walks the index through an iterator-free
 * path: block sizes come from the index values). */
static uint64_t data_block_offset(damaged *d, sst_reader *r, int ordinal) {
    /* Every key of block k maps to block k's offset. */
    (void)d;
    uint64_t seen = 0, last = UINT64_MAX;
    int k = -1;
    iter *it = sst_reader_iter(r, NULL, NULL);
    for (iter_seek_first(it); iter_valid(it); iter_next(it)) {
        uint64_t off = sst_reader_approximate_offset(r, iter_key(it));
        if (off != last) {
            k++;
            last = off;
            if (k == ordinal) {
                seen = off;
                break;
            }
        }
    }
    iter_destroy(it);
    return seen;
}

TEST(flipped_data_byte_is_corruption_with_file_and_offset) {
    damaged d;
    CHECK(setup_damaged(&d, 2000, 1024, SIZE_MAX));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), d.path, d.size, &r));
    uint64_t b3 = data_block_offset(&d, r, 3);
    CHECK(b3 > 0);
    sst_reader_close(r);
    xor_byte(d.path, b3 + 20, 0x10);

    /* Open is cheap: it does not read data blocks. */
    CHECK_OK(sst_reader_open(env_posix(), d.path, d.size, &r));
    char off[32];
    snprintf(off, sizeof off, "offset %llu", (unsigned long long)b3);

    iter *it = sst_reader_iter(r, NULL, NULL);
    int seen = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it)) seen++;
    CHECK(seen > 0 && seen < d.e.n);
    CHECK_STATUS(iter_status(it), WEIR_CORRUPTION);
    CHECK(mentions(weir_errmsg(), d.path, off));
    /* Sticky: a later seek does not pretend all is well. */
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    CHECK_STATUS(iter_status(it), WEIR_CORRUPTION);
    iter_destroy(it);

    /* Backwards reaches it too. */
    it = sst_reader_iter(r, NULL, NULL);
    for (iter_seek_last(it); iter_valid(it); iter_prev(it)) {
    }
    CHECK_STATUS(iter_status(it), WEIR_CORRUPTION);
    iter_destroy(it);

    /* A lookup in the damaged block. */
    got g = {0, BUF_INIT, BUF_INIT};
    int hit = 0;
    for (int i = 0; i < d.e.n && !hit; i++) {
        slice k = buf_slice(&d.e.keys[i]);
        if (sst_reader_approximate_offset(r, k) != b3) continue;
        slice u = ikey_user(k);
        int rc = lookup(r, atoi(u.data + 3), MAX_SEQUENCE, &g);
        CHECK_EQ_INT(rc, WEIR_CORRUPTION);
        CHECK(mentions(weir_errmsg(), d.path, off));
        hit = 1;
    }
    CHECK(hit);
    /* Other blocks still answer. */
    CHECK_OK(lookup(r, 0, MAX_SEQUENCE, &g));
    CHECK_EQ_INT(g.calls, 1);

    CHECK_STATUS(sst_reader_verify(r), WEIR_CORRUPTION);
    CHECK(mentions(weir_errmsg(), d.path, off));
    got_free(&g);
    sst_reader_close(r);
    teardown_damaged(&d);
}

static void expect_open_fails(damaged *d, int code, const char *what) {
    sst_reader *r = (sst_reader *)1;
    CHECK_STATUS(sst_reader_open(env_posix(), d->path, d->size, &r), code);
    CHECK(r == NULL);
    CHECK(mentions(weir_errmsg(), d->path, "offset"));
    if (what) CHECK(mentions(weir_errmsg(), what, NULL));
}

TEST(flipped_index_byte_fails_open) {
    damaged d;
    CHECK(setup_damaged(&d, 2000, 1024, SIZE_MAX));
    xor_byte(d.path, d.ft.index_off + 7, 0x01);
    char off[40];
    snprintf(off, sizeof off, "index block at offset %llu", (unsigned long long)d.ft.index_off);
    expect_open_fails(&d, WEIR_CORRUPTION, off);
    teardown_damaged(&d);
}

TEST(flipped_filter_byte_fails_open) {
    damaged d;
    CHECK(setup_damaged(&d, 2000, 1024, SIZE_MAX));
    xor_byte(d.path, d.ft.filter_off + 3, 0x40);
    char off[40];
    snprintf(off, sizeof off, "filter block at offset %llu", (unsigned long long)d.ft.filter_off);
    expect_open_fails(&d, WEIR_CORRUPTION, off);
    teardown_damaged(&d);
}

TEST(flipped_footer_and_magic_fail_open) {
    damaged d;
    CHECK(setup_damaged(&d, 500, 1024, SIZE_MAX));
    /* Every byte of the footer matters. */
    for (uint64_t i = d.size - SST_FOOTER_SIZE; i < d.size; i++) {
        xor_byte(d.path, i, 0x02);
        expect_open_fails(&d, WEIR_CORRUPTION, i >= d.size - 8 ? "magic" : "footer");
        xor_byte(d.path, i, 0x02);
    }
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), d.path, d.size, &r));
    sst_reader_close(r);
    teardown_damaged(&d);
}

TEST(unknown_version_is_not_supported) {
    damaged d;
    CHECK(setup_damaged(&d, 100, 1024, SIZE_MAX));
    size_t n = 0;
    char *data = slurp(d.path, &n);
    encode_fixed32(data + n - SST_FOOTER_SIZE + 40, SST_FORMAT_VERSION + 1);
    reseal_footer(data, n);
    spill(d.path, data, n);
    expect_open_fails(&d, WEIR_NOT_SUPPORTED, "version 3");
    encode_fixed32(data + n - SST_FOOTER_SIZE + 40, 0);
    reseal_footer(data, n);
    spill(d.path, data, n);
    expect_open_fails(&d, WEIR_NOT_SUPPORTED, "version 0");
    /* A footer with valid checksum but handles outside the file. */
    encode_fixed32(data + n - SST_FOOTER_SIZE + 40, SST_FORMAT_VERSION);
    encode_fixed64(data + n - SST_FOOTER_SIZE + 16, n);
    reseal_footer(data, n);
    spill(d.path, data, n);
    expect_open_fails(&d, WEIR_CORRUPTION, "bad block handles");
    /* Index overlapping the footer. */
    footer ft = read_footer(data, n);
    encode_fixed64(data + n - SST_FOOTER_SIZE + 16, d.ft.index_off);
    encode_fixed64(data + n - SST_FOOTER_SIZE + 24, ft.index_size + 10);
    reseal_footer(data, n);
    spill(d.path, data, n);
    expect_open_fails(&d, WEIR_CORRUPTION, "bad block handles");
    free(data);
    teardown_damaged(&d);
}

TEST(unknown_compression_is_not_supported) {
    damaged d;
    CHECK(setup_damaged(&d, 500, 1024, SIZE_MAX));
    sst_reader *r;
    CHECK_OK(sst_reader_open(env_posix(), d.path, d.size, &r));
    uint64_t b1 = data_block_offset(&d, r, 1);
    sst_reader_close(r);
    CHECK(b1 > SST_TRAILER_SIZE);
    /* Block 0 ends where block 1 starts: its trailer is the 5 bytes before. */
    uint64_t b0_size = b1 - SST_TRAILER_SIZE;
    size_t n = 0;
    char *data = slurp(d.path, &n);
    data[b0_size] = 7;
    uint32_t crc = crc32c_extend(crc32c_value(data, b0_size), data + b0_size, 1);
    encode_fixed32(data + b0_size + 1, crc32c_mask(crc));
    spill(d.path, data, n);
    free(data);
    CHECK_OK(sst_reader_open(env_posix(), d.path, d.size, &r));
    got g = {0, BUF_INIT, BUF_INIT};
    CHECK_STATUS(lookup(r, 0, MAX_SEQUENCE, &g), WEIR_NOT_SUPPORTED);
    CHECK(mentions(weir_errmsg(), d.path, "offset 0"));
    CHECK(mentions(weir_errmsg(), "compression type 7", NULL));
    iter *it = sst_reader_iter(r, NULL, NULL);
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    CHECK_STATUS(iter_status(it), WEIR_NOT_SUPPORTED);
    iter_destroy(it);
    got_free(&g);
    sst_reader_close(r);
    teardown_damaged(&d);
}

TEST(truncated_file) {
    damaged d;
    CHECK(setup_damaged(&d, 500, 1024, SIZE_MAX));
    CHECK(truncate(d.path, (off_t)d.size - 10) == 0);
    /* The manifest's size is larger than the file. */
    sst_reader *r;
    CHECK_STATUS(sst_reader_open(env_posix(), d.path, d.size, &r), WEIR_CORRUPTION);
    CHECK(mentions(weir_errmsg(), d.path, "truncated"));
    /* Opened at its new size: the footer is gone. */
    CHECK_STATUS(sst_reader_open(env_posix(), d.path, d.size - 10, &r), WEIR_CORRUPTION);
    CHECK(mentions(weir_errmsg(), d.path, "magic"));
    CHECK(truncate(d.path, 10) == 0);
    CHECK_STATUS(sst_reader_open(env_posix(), d.path, 10, &r), WEIR_CORRUPTION);
    CHECK(mentions(weir_errmsg(), d.path, "too short"));
    CHECK(truncate(d.path, 0) == 0);
    CHECK_STATUS(sst_reader_open(env_posix(), d.path, 0, &r), WEIR_CORRUPTION);
    teardown_damaged(&d);
}

/* Flip every byte of a small table in turn: whatever happens, open,
 * iteration, lookups and verify must return (ASan checks the reads). */
TEST(every_flipped_byte_is_handled) {
    damaged d;
    CHECK(setup_damaged(&d, 60, 256, 24));
    size_t n = 0;
    char *orig = slurp(d.path, &n);
    CHECK(n > 1000 && n < 4000);
    int open_failures = 0, read_failures = 0;
    got g = {0, BUF_INIT, BUF_INIT};
    for (size_t pos = 0; pos < n; pos++) {
        orig[pos] ^= 0x21;
        spill(d.path, orig, n);
        orig[pos] ^= 0x21;
        sst_reader *r;
        if (sst_reader_open(env_posix(), d.path, n, &r) != WEIR_OK) {
            open_failures++;
            continue;
        }
        int bad = 0;
        iter *it = sst_reader_iter(r, NULL, NULL);
        int count = 0;
        for (iter_seek_first(it); iter_valid(it); iter_next(it)) count++;
        if (iter_status(it) != WEIR_OK) bad = 1;
        for (iter_seek_last(it); iter_valid(it); iter_prev(it)) {
        }
        iter_destroy(it);
        for (int i = 0; i < 130; i += 3) {
            if (lookup(r, i, MAX_SEQUENCE, &g) != WEIR_OK) bad = 1;
        }
        if (sst_reader_verify(r) != WEIR_OK) bad = 1;
        read_failures += bad;
        sst_reader_close(r);
    }
    /* Everything outside the data blocks is checked at open; every data
     * byte is covered by a checksum. */
    CHECK_EQ_INT(open_failures + read_failures, n);
    got_free(&g);
    free(orig);
    teardown_damaged(&d);
}

static const test_case tests[] = {
    TEST_ENTRY(empty_table),
    TEST_ENTRY(single_entry_table),
    TEST_ENTRY(ten_entries),
    TEST_ENTRY(many_small_blocks),
    TEST_ENTRY(tiny_blocks_one_entry_each),
    TEST_ENTRY(hundred_thousand_entries),
    TEST_ENTRY(no_bloom_filter),
    TEST_ENTRY(lz4_round_trip),
    TEST_ENTRY(zstd_round_trip),
    TEST_ENTRY(builder_rejects_bad_keys),
    TEST_ENTRY(builder_open_fails_in_missing_directory),
    TEST_ENTRY(versions_spanning_blocks_and_ff_keys),
    TEST_ENTRY(target_between_last_key_and_separator),
    TEST_ENTRY(hand_assembled_table_with_empty_block),
    TEST_ENTRY(bloom_filter_skips_absent_keys),
    TEST_ENTRY(approximate_offsets_increase),
    TEST_ENTRY(flipped_data_byte_is_corruption_with_file_and_offset),
    TEST_ENTRY(flipped_index_byte_fails_open),
    TEST_ENTRY(flipped_filter_byte_fails_open),
    TEST_ENTRY(flipped_footer_and_magic_fail_open),
    TEST_ENTRY(unknown_version_is_not_supported),
    TEST_ENTRY(unknown_compression_is_not_supported),
    TEST_ENTRY(truncated_file),
    TEST_ENTRY(every_flipped_byte_is_handled),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
