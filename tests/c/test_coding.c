/* test_coding.c -- varints, fixed-width ints, length-prefixed slices, buf;
 * internal keys and the error iterator (dbformat.c). */
#include <stdlib.h>
#include <string.h>

#include "coding.h"
#include "dbformat.h"
#include "status.h"
#include "testutil.h"

/* Let a huge malloc fail with NULL under ASan (instead of aborting) so the
 * out-of-memory path of buf_reserve can be exercised. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

TEST(fixed_width_is_little_endian) {
    char b[8];
    encode_fixed32(b, 0x04030201u);
    CHECK(memcmp(b, "\x01\x02\x03\x04", 4) == 0);
    CHECK_EQ_INT(decode_fixed32(b), 0x04030201u);
    encode_fixed64(b, UINT64_C(0x0807060504030201));
    CHECK(memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    CHECK(decode_fixed64(b) == UINT64_C(0x0807060504030201));
    encode_fixed64(b, UINT64_MAX);
    CHECK(decode_fixed64(b) == UINT64_MAX);
}

TEST(varint32_round_trip_all_lengths) {
    uint32_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384, (1u << 21) - 1, 1u << 21,
                       (1u << 28) - 1, 1u << 28, UINT32_MAX - 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char b[VARINT32_MAX_BYTES];
        char *end = encode_varint32(b, vals[i]);
        CHECK_EQ_INT(end - b, varint_length(vals[i]));
        uint32_t got = 0;
        const char *p = decode_varint32(b, end, &got);
        CHECK(p == end);
        CHECK_EQ_INT(got, vals[i]);
        /* Every strict prefix is truncated. */
        for (char *lim = b; lim < end; lim++) CHECK(decode_varint32(b, lim, &got) == NULL);
    }
    char b[5];
    CHECK_EQ_INT(encode_varint32(b, 127) - b, 1);
    CHECK_EQ_INT(encode_varint32(b, 128) - b, 2);
    CHECK_EQ_INT(encode_varint32(b, UINT32_MAX) - b, 5);
}

TEST(varint64_round_trip_every_bit_width) {
    test_rng r;
    test_rng_seed(&r, 42);
    for (int bits = 0; bits <= 64; bits++) {
        for (int rep = 0; rep < 20; rep++) {
            uint64_t v = bits == 0 ? 0 : test_rng_next(&r) >> (64 - bits);
            if (bits > 0) v |= UINT64_C(1) << (bits - 1);
            char b[VARINT64_MAX_BYTES];
            char *end = encode_varint64(b, v);
            CHECK_EQ_INT(end - b, varint_length(v));
            uint64_t got = 0;
            CHECK(decode_varint64(b, end, &got) == end);
            CHECK(got == v);
            if (end - b > 1) CHECK(decode_varint64(b, end - 1, &got) == NULL);
        }
    }
    CHECK_EQ_INT(varint_length(UINT64_MAX), 10);
    CHECK_EQ_INT(varint_length(0), 1);
}

TEST(varint_stream_of_many_values) {
    buf b = BUF_INIT;
    for (uint32_t i = 0; i < 100000; i += 7) CHECK(buf_put_varint32(&b, i * 2654435761u) == 0);
    const char *p = b.data, *lim = b.data + b.len;
    for (uint32_t i = 0; i < 100000; i += 7) {
        uint32_t v;
        p = decode_varint32(p, lim, &v);
        CHECK(p != NULL);
        CHECK_EQ_INT(v, i * 2654435761u);
    }
    CHECK(p == lim);
    buf_free(&b);
}

TEST(varint_overflow_and_overlong_rejected) {
    uint32_t v32;
    uint64_t v64;
    /* 5th byte of a varint32 may only carry 4 bits. */
    const char too_big32[] = "\xff\xff\xff\xff\x1f";
    CHECK(decode_varint32(too_big32, too_big32 + 5, &v32) == NULL);
    const char max32[] = "\xff\xff\xff\xff\x0f";
    CHECK(decode_varint32(max32, max32 + 5, &v32) == max32 + 5);
    CHECK_EQ_INT(v32, UINT32_MAX);
    /* Six continuation bytes: longer than any varint32. */
    const char six[] = "\x80\x80\x80\x80\x80\x00";
    CHECK(decode_varint32(six, six + 6, &v32) == NULL);
    /* 10th byte of a varint64 may only be 0 or 1. */
    const char too_big64[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02";
    CHECK(decode_varint64(too_big64, too_big64 + 10, &v64) == NULL);
    const char max64[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
    CHECK(decode_varint64(max64, max64 + 10, &v64) == max64 + 10);
    CHECK(v64 == UINT64_MAX);
    const char eleven[] = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00";
    CHECK(decode_varint64(eleven, eleven + 11, &v64) == NULL);
    /* Empty input. */
    CHECK(decode_varint32(six, six, &v32) == NULL);
    CHECK(decode_varint64(six, six, &v64) == NULL);
}

TEST(varint_decoders_never_read_past_limit) {
    /* Exact-size heap copies so ASan flags any overrun. */
    const char cont[] = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80";
    for (size_t n = 0; n <= 10; n++) {
        char *p = malloc(n ? n : 1);
        CHECK(p != NULL);
        memcpy(p, cont, n);
        uint32_t v32;
        uint64_t v64;
        slice s;
        CHECK(decode_varint32(p, p + n, &v32) == NULL);
        CHECK(decode_varint64(p, p + n, &v64) == NULL);
        CHECK(decode_length_prefixed(p, p + n, &s) == NULL);
        free(p);
    }
}

TEST(length_prefixed_round_trip_and_truncation) {
    buf b = BUF_INIT;
    CHECK(buf_put_length_prefixed(&b, slice_make("", 0)) == 0);
    CHECK(buf_put_length_prefixed(&b, slice_make("hello", 5)) == 0);
    char big[300];
    memset(big, 'x', sizeof big);
    CHECK(buf_put_length_prefixed(&b, slice_make(big, sizeof big)) == 0);
    const char *p = b.data, *lim = b.data + b.len;
    slice s;
    p = decode_length_prefixed(p, lim, &s);
    CHECK(p && s.len == 0);
    p = decode_length_prefixed(p, lim, &s);
    CHECK(p && slice_equal(s, slice_make("hello", 5)));
    p = decode_length_prefixed(p, lim, &s);
    CHECK(p == lim && s.len == 300 && memcmp(s.data, big, 300) == 0);
    /* A length pointing past the end is rejected, not trusted. */
    const char *last = b.data + 1 + 6; /* start of the 300-byte record */
    CHECK(decode_length_prefixed(last, lim - 1, &s) == NULL);
    const char lie[] = "\x05" "abc";
    CHECK(decode_length_prefixed(lie, lie + 4, &s) == NULL);
    buf_free(&b);
}

TEST(slice_helpers_order_bytewise) {
    CHECK(slice_compare(slice_make("a", 1), slice_make("b", 1)) < 0);
    CHECK(slice_compare(slice_make("ab", 2), slice_make("a", 1)) > 0);
    CHECK(slice_compare(slice_make("", 0), slice_make("", 0)) == 0);
    CHECK(slice_compare(slice_make("\xff", 1), slice_make("\x01", 1)) > 0);
    CHECK(slice_equal(slice_make(NULL, 0), slice_make("", 0)));
    CHECK(slice_starts_with(slice_make("abc", 3), slice_make("ab", 2)));
    CHECK(!slice_starts_with(slice_make("a", 1), slice_make("ab", 2)));
}

TEST(buf_grows_geometrically) {
    buf b = BUF_INIT;
    int reallocs = 0;
    size_t last_cap = 0;
    for (int i = 0; i < 1000000; i++) {
        char c = (char)i;
        CHECK(buf_append(&b, &c, 1) == 0);
        if (b.cap != last_cap) {
            reallocs++;
            last_cap = b.cap;
        }
    }
    CHECK_EQ_INT(b.len, 1000000);
    CHECK(reallocs < 30);
    for (int i = 0; i < 1000000; i += 9973) CHECK(b.data[i] == (char)i);
    buf_clear(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.cap >= 1000000);
    buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    buf_free(&b); /* idempotent */
}

TEST(buf_reserve_failure_leaves_buffer_unchanged) {
    buf b = BUF_INIT;
    CHECK(buf_append(&b, "abc", 3) == 0);
    char *data = b.data;
    size_t cap = b.cap;
    CHECK(buf_reserve(&b, SIZE_MAX) == -1);
    CHECK(buf_reserve(&b, SIZE_MAX - 2) == -1);
    CHECK(buf_reserve(&b, SIZE_MAX / 2) == -1); /* allocation must fail */
    CHECK(b.data == data && b.cap == cap && b.len == 3);
    CHECK(memcmp(b.data, "abc", 3) == 0);
    CHECK(buf_reserve(&b, 0) == 0);
    CHECK(buf_append(&b, NULL, 0) == 0);
    CHECK_EQ_INT(b.len, 3);
    buf_free(&b);
}

TEST(buf_set_replaces_and_handles_self_overlap) {
    buf b = BUF_INIT;
    CHECK(buf_set(&b, "hello world", 11) == 0);
    CHECK(b.len == 11 && memcmp(b.data, "hello world", 11) == 0);
    CHECK(buf_set(&b, b.data + 6, 5) == 0);
    CHECK(b.len == 5 && memcmp(b.data, "world", 5) == 0);
    CHECK(buf_set(&b, "", 0) == 0);
    CHECK_EQ_INT(b.len, 0);
    char big[1000];
    memset(big, 'q', sizeof big);
    CHECK(buf_set(&b, big, sizeof big) == 0);
    CHECK(b.len == 1000 && b.data[999] == 'q');
    buf_free(&b);
}

TEST(buf_put_fixed_and_varint) {
    buf b = BUF_INIT;
    CHECK(buf_put_fixed32(&b, 0xdeadbeefu) == 0);
    CHECK(buf_put_fixed64(&b, UINT64_C(0x0123456789abcdef)) == 0);
    CHECK(buf_put_varint32(&b, 300) == 0);
    CHECK(buf_put_varint64(&b, UINT64_MAX) == 0);
    CHECK_EQ_INT(b.len, 4 + 8 + 2 + 10);
    CHECK_EQ_INT(decode_fixed32(b.data), 0xdeadbeefu);
    CHECK(decode_fixed64(b.data + 4) == UINT64_C(0x0123456789abcdef));
    uint32_t v32;
    uint64_t v64;
    const char *p = decode_varint32(b.data + 12, b.data + b.len, &v32);
    CHECK(p && v32 == 300);
    p = decode_varint64(p, b.data + b.len, &v64);
    CHECK(p == b.data + b.len && v64 == UINT64_MAX);
    slice s = buf_slice(&b);
    CHECK(s.data == b.data && s.len == b.len);
    buf_free(&b);
}

/* ---- internal keys and the error iterator (dbformat.c) ---- */

TEST(ikey_append_and_parse) {
    buf b = BUF_INIT;
    CHECK(ikey_append(&b, slice_make("user", 4), 12345, TYPE_VALUE) == 0);
    CHECK_EQ_INT(b.len, 4 + IKEY_TAG_SIZE);
    slice user;
    uint64_t seq;
    int type;
    CHECK(ikey_parse(buf_slice(&b), &user, &seq, &type));
    CHECK(slice_equal(user, slice_make("user", 4)));
    CHECK(seq == 12345 && type == TYPE_VALUE);
    /* appends after existing bytes, empty user key allowed */
    CHECK(ikey_append(&b, slice_make(NULL, 0), MAX_SEQUENCE, TYPE_DELETION) == 0);
    slice second = slice_make(b.data + 12, b.len - 12);
    CHECK(ikey_parse(second, &user, &seq, &type));
    CHECK(user.len == 0 && seq == MAX_SEQUENCE && type == TYPE_DELETION);
    /* malformed: too short, unknown type */
    CHECK(!ikey_parse(slice_make("1234567", 7), NULL, NULL, NULL));
    buf_clear(&b);
    CHECK(ikey_append(&b, slice_make("k", 1), 1, 7) == 0);
    CHECK(!ikey_parse(buf_slice(&b), NULL, NULL, NULL));
    buf_free(&b);
}

TEST(ikey_order_user_asc_then_seq_desc) {
    buf a = BUF_INIT, c = BUF_INIT;
    CHECK(ikey_append(&a, slice_make("a", 1), 5, TYPE_VALUE) == 0);
    CHECK(ikey_append(&c, slice_make("a", 1), 9, TYPE_VALUE) == 0);
    CHECK(ikey_compare(buf_slice(&c), buf_slice(&a)) < 0); /* newer first */
    buf_clear(&c);
    CHECK(ikey_append(&c, slice_make("b", 1), 1, TYPE_VALUE) == 0);
    CHECK(ikey_compare(buf_slice(&a), buf_slice(&c)) < 0);
    buf_clear(&c);
    CHECK(ikey_append(&c, slice_make("a", 1), 5, TYPE_DELETION) == 0);
    CHECK(ikey_compare(buf_slice(&a), buf_slice(&c)) < 0); /* same seq: higher type first */
    CHECK(ikey_compare(buf_slice(&a), buf_slice(&a)) == 0);
    buf_free(&a);
    buf_free(&c);
}

TEST(error_iter_ok_is_empty) {
    iter *it = iter_new_error(WEIR_OK);
    CHECK(it != NULL);
    CHECK(!iter_valid(it));
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    iter_seek_last(it);
    iter_seek(it, slice_make("x", 1));
    iter_next(it);
    iter_prev(it);
    CHECK(!iter_valid(it));
    CHECK_EQ_INT(iter_key(it).len, 0);
    CHECK_EQ_INT(iter_value(it).len, 0);
    CHECK_OK(iter_status(it));
    iter_destroy(it);
    iter_destroy(NULL);
}

TEST(error_iter_reraises_saved_message) {
    weir_set_error(WEIR_CORRUPTION, "bad block in /db/000012.sst at offset 4096");
    iter *it = iter_new_error(WEIR_CORRUPTION);
    CHECK(it != NULL);
    weir_set_error(WEIR_IO_ERROR, "something else entirely");
    CHECK(!iter_valid(it));
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    CHECK_EQ_INT(iter_status(it), WEIR_CORRUPTION);
    CHECK(strcmp(weir_errmsg(), "bad block in /db/000012.sst at offset 4096") == 0);
    weir_set_error(WEIR_IO_ERROR, "overwritten again");
    CHECK_EQ_INT(iter_status(it), WEIR_CORRUPTION);
    CHECK(strstr(weir_errmsg(), "000012.sst") != NULL);
    iter_destroy(it);
}

static const test_case tests[] = {
    TEST_ENTRY(fixed_width_is_little_endian),
    TEST_ENTRY(varint32_round_trip_all_lengths),
    TEST_ENTRY(varint64_round_trip_every_bit_width),
    TEST_ENTRY(varint_stream_of_many_values),
    TEST_ENTRY(varint_overflow_and_overlong_rejected),
    TEST_ENTRY(varint_decoders_never_read_past_limit),
    TEST_ENTRY(length_prefixed_round_trip_and_truncation),
    TEST_ENTRY(slice_helpers_order_bytewise),
    TEST_ENTRY(buf_grows_geometrically),
    TEST_ENTRY(buf_reserve_failure_leaves_buffer_unchanged),
    TEST_ENTRY(buf_set_replaces_and_handles_self_overlap),
    TEST_ENTRY(buf_put_fixed_and_varint),
    TEST_ENTRY(ikey_append_and_parse),
    TEST_ENTRY(ikey_order_user_asc_then_seq_desc),
    TEST_ENTRY(error_iter_ok_is_empty),
    TEST_ENTRY(error_iter_reraises_saved_message),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
