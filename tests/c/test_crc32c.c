/* test_crc32c.c -- CRC-32C known vectors, software vs hardware agreement,
 * chaining via crc32c_extend, masking. */
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "testutil.h"

static void check_vectors(uint32_t (*fn)(uint32_t, const void *, size_t), int *ok) {
    unsigned char buf[32];
    *ok = 0;
    if (fn(0, "123456789", 9) != 0xE3069283u) return;
    memset(buf, 0, sizeof buf);
    if (fn(0, buf, 32) != 0x8A9136AAu) return;
    memset(buf, 0xff, sizeof buf);
    if (fn(0, buf, 32) != 0x62A8AB43u) return;
    for (int i = 0; i < 32; i++) buf[i] = (unsigned char)i;
    if (fn(0, buf, 32) != 0x46DD794Eu) return;
    for (int i = 0; i < 32; i++) buf[i] = (unsigned char)(31 - i);
    if (fn(0, buf, 32) != 0x113FDB5Cu) return;
    *ok = 1;
}

TEST(known_vectors_dispatched) {
    int ok;
    check_vectors(crc32c_extend, &ok);
    CHECK(ok);
    CHECK_EQ_INT(crc32c_value("123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(crc32c_value("", 0), 0);
    CHECK_EQ_INT(crc32c_value(NULL, 0), 0);
    CHECK_EQ_INT(crc32c_value("a", 1), 0xC1D04330u);
}

TEST(known_vectors_software) {
    int ok;
    check_vectors(crc32c_extend_software, &ok);
    CHECK(ok);
}

TEST(hardware_path_selected_when_cpu_has_it) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(WEIR_CRC32C_NO_HW)
    __builtin_cpu_init();
    CHECK_EQ_INT(crc32c_hardware(), __builtin_cpu_supports("sse4.2") ? 1 : 0);
    printf("     crc32c hardware path: %s\n", crc32c_hardware() ? "sse4.2" : "software");
#else
    CHECK_EQ_INT(crc32c_hardware(), 0);
#endif
}

/* Bitwise reference, independent of either table-driven implementation. */
static uint32_t crc_reference(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

TEST(hardware_and_software_agree_on_random_data) {
    uint64_t seed = test_seed_from_env();
    printf("     seed %llu\n", (unsigned long long)seed);
    test_rng r;
    test_rng_seed(&r, seed);
    enum { MAX = 3 * 2048 * 3 + 3 * 256 * 2 + 64 };
    unsigned char *data = malloc(MAX + 16);
    CHECK(data != NULL);
    for (size_t i = 0; i < MAX + 16; i++) data[i] = (unsigned char)test_rng_next(&r);
    /* Every length around the interleave thresholds, at every alignment. */
    static const size_t edges[] = {0,    1,    7,    8,    9,    767,  768,  769,   1535,
                                   1536, 1537, 6143, 6144, 6145, 6151, 12288, 12289, 13824};
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
        for (size_t off = 0; off < 16; off++) {
            size_t n = edges[e];
            if (n + off > MAX + 16) continue;
            uint32_t sw = crc32c_extend_software(0, data + off, n);
            CHECK_EQ_INT(crc32c_extend(0, data + off, n), sw);
        }
    for (int iter = 0; iter < 2000; iter++) {
        size_t off = (size_t)test_rng_uniform(&r, 16);
        size_t n = (size_t)test_rng_uniform(&r, MAX);
        uint32_t init = (uint32_t)test_rng_next(&r);
        uint32_t sw = crc32c_extend_software(init, data + off, n);
        uint32_t hw = crc32c_extend(init, data + off, n);
        if (sw != hw)
            fprintf(stderr, "mismatch n=%zu off=%zu init=%08x sw=%08x hw=%08x\n", n, off, init, sw,
                    hw);
        CHECK_EQ_INT(hw, sw);
        if (iter % 50 == 0) CHECK_EQ_INT(crc_reference(init, data + off, n), sw);
    }
    free(data);
}

TEST(extend_composes) {
    test_rng r;
    test_rng_seed(&r, 7);
    unsigned char data[20000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)test_rng_next(&r);
    uint32_t whole = crc32c_value(data, sizeof data);
    for (int iter = 0; iter < 500; iter++) {
        size_t a = (size_t)test_rng_uniform(&r, sizeof data + 1);
        size_t b = a + (size_t)test_rng_uniform(&r, sizeof data - a + 1);
        uint32_t c = crc32c_extend(0, data, a);
        c = crc32c_extend(c, data + a, b - a);
        c = crc32c_extend(c, data + b, sizeof data - b);
        CHECK_EQ_INT(c, whole);
        uint32_t s = crc32c_extend_software(0, data, a);
        s = crc32c_extend_software(s, data + a, sizeof data - a);
        CHECK_EQ_INT(s, whole);
    }
    CHECK_EQ_INT(crc32c_extend(crc32c_value("hello ", 6), "world", 5),
                 crc32c_value("hello world", 11));
}

TEST(different_data_gives_different_crc) {
    CHECK(crc32c_value("a", 1) != crc32c_value("foo", 3));
    CHECK(crc32c_value("a", 1) != crc32c_value("b", 1));
    unsigned char z[64] = {0};
    CHECK(crc32c_value(z, 63) != crc32c_value(z, 64));
    /* Single bit flips anywhere in a long buffer are always detected. */
    unsigned char big[10000];
    memset(big, 0x5a, sizeof big);
    uint32_t base = crc32c_value(big, sizeof big);
    for (size_t i = 0; i < sizeof big; i += 997) {
        big[i] ^= 0x10;
        CHECK(crc32c_value(big, sizeof big) != base);
        big[i] ^= 0x10;
    }
}

TEST(mask_round_trips_and_changes_value) {
    uint32_t vals[] = {0, 1, 0xE3069283u, 0xffffffffu, 0xa282ead8u};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint32_t m = crc32c_mask(vals[i]);
        CHECK(m != vals[i]);
        CHECK(crc32c_mask(m) != m);
        CHECK_EQ_INT(crc32c_unmask(m), vals[i]);
        CHECK_EQ_INT(crc32c_unmask(crc32c_unmask(crc32c_mask(crc32c_mask(vals[i])))), vals[i]);
    }
}

static const test_case tests[] = {
    TEST_ENTRY(known_vectors_dispatched),
    TEST_ENTRY(known_vectors_software),
    TEST_ENTRY(hardware_path_selected_when_cpu_has_it),
    TEST_ENTRY(hardware_and_software_agree_on_random_data),
    TEST_ENTRY(extend_composes),
    TEST_ENTRY(different_data_gives_different_crc),
    TEST_ENTRY(mask_round_trips_and_changes_value),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
