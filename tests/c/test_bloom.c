/* test_bloom.c -- bloom_hash stability and quality; blocked bloom filter
 * correctness (no false negatives), false-positive rates, malformed input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bloom.h"
#include "testutil.h"

static size_t make_key(char *out, const char *prefix, uint64_t i) {
    return (size_t)snprintf(out, 64, "%s%llu", prefix, (unsigned long long)i);
}

TEST(hash_golden_values_are_stable) {
    /* These values are part of the on-disk format: a change here means
     * every existing filter silently stops matching. Never update them. */
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++) bytes[i] = (unsigned char)i;
    struct {
        const void *data;
        size_t len;
        uint64_t want;
    } cases[] = {
        {"", 0, UINT64_C(0x3f4d4ebd55ae3545)},
        {"a", 1, UINT64_C(0x2c6d920b7c80a501)},
        {"hello world", 11, UINT64_C(0xb182e9e1f0388481)},
        {"0123456789abcdef", 16, UINT64_C(0xcc6b24afc515e8c5)},
        {bytes, 7, UINT64_C(0xd15578e872ed64c7)},
        {bytes, 8, UINT64_C(0x36e48849fc633ff6)},
        {bytes, 23, UINT64_C(0xca1d81ed1b263479)},
        {bytes, 256, UINT64_C(0x463b0b968342275f)},
    };
    int mismatches = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t h = bloom_hash(cases[i].data, cases[i].len);
        if (h != cases[i].want) {
            fprintf(stderr, "case %zu: bloom_hash = UINT64_C(0x%016llx)\n", i,
                    (unsigned long long)h);
            mismatches++;
        }
    }
    CHECK_EQ_INT(mismatches, 0);
}

TEST(hash_ignores_alignment_and_sees_every_byte) {
    char buf[200];
    test_rng r;
    test_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)test_rng_next(&r);
    for (size_t len = 0; len <= 64; len++) {
        uint64_t h = bloom_hash(buf, len);
        char copy[80];
        for (size_t off = 1; off < 8; off++) {
            memcpy(copy + off, buf, len);
            CHECK(bloom_hash(copy + off, len) == h);
        }
        /* Changing any single byte changes the hash. */
        for (size_t k = 0; k < len; k++) {
            memcpy(copy, buf, len);
            copy[k] ^= 1;
            CHECK(bloom_hash(copy, len) != h);
        }
    }
    /* Runs of zero bytes of different lengths must not collide. */
    char zeros[64] = {0};
    for (size_t a = 0; a < 64; a++)
        for (size_t b = a + 1; b < 64; b++) CHECK(bloom_hash(zeros, a) != bloom_hash(zeros, b));
}

TEST(hash_avalanche) {
    /* Flipping one input bit should flip about half the output bits, in
     * both halves (the filter uses them separately). */
    test_rng r;
    test_rng_seed(&r, 11);
    const size_t lens[] = {4, 8, 13, 16, 24, 40};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t len = lens[li];
        double total_hi = 0, total_lo = 0;
        int trials = 0;
        for (int rep = 0; rep < 200; rep++) {
            unsigned char key[64];
            for (size_t i = 0; i < len; i++) key[i] = (unsigned char)test_rng_next(&r);
            uint64_t h0 = bloom_hash(key, len);
            for (size_t bit = 0; bit < len * 8; bit++) {
                key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                uint64_t d = h0 ^ bloom_hash(key, len);
                key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                total_hi += __builtin_popcountll(d >> 32);
                total_lo += __builtin_popcountll(d & 0xffffffffu);
                trials++;
            }
        }
        double mean_hi = total_hi / trials, mean_lo = total_lo / trials;
        if (mean_hi < 15.5 || mean_hi > 16.5 || mean_lo < 15.5 || mean_lo > 16.5)
            fprintf(stderr, "len %zu: mean flipped bits hi %.2f lo %.2f\n", len, mean_hi, mean_lo);
        CHECK(mean_hi > 15.5 && mean_hi < 16.5);
        CHECK(mean_lo > 15.5 && mean_lo < 16.5);
    }
}

TEST(hash_sequential_keys_spread_evenly) {
    /* Keys like "user123" differ in few bits; their hashes must still fill
     * 1024 buckets evenly (chi-square with 1023 degrees of freedom). */
    enum { BUCKETS = 1024, N = 200000 };
    static unsigned counts_hi[BUCKETS], counts_lo[BUCKETS];
    memset(counts_hi, 0, sizeof counts_hi);
    memset(counts_lo, 0, sizeof counts_lo);
    char key[64];
    for (uint64_t i = 0; i < N; i++) {
        size_t n = make_key(key, "user", i);
        uint64_t h = bloom_hash(key, n);
        counts_hi[h >> 54]++;
        counts_lo[(h >> 10) & (BUCKETS - 1)]++;
    }
    double expect = (double)N / BUCKETS, chi_hi = 0, chi_lo = 0;
    for (int b = 0; b < BUCKETS; b++) {
        chi_hi += (counts_hi[b] - expect) * (counts_hi[b] - expect) / expect;
        chi_lo += (counts_lo[b] - expect) * (counts_lo[b] - expect) / expect;
    }
    /* mean 1023, sd ~45: 1300 is > 6 sd */
    CHECK(chi_hi < 1300);
    CHECK(chi_lo < 1300);
}

/* Build a filter over keys prefix0..prefix(n-1). */
static int build_filter(buf *out, int bits_per_key, uint64_t n, const char *prefix) {
    bloom_builder b;
    bloom_builder_init(&b, bits_per_key);
    char key[64];
    for (uint64_t i = 0; i < n; i++) {
        size_t len = make_key(key, prefix, i);
        if (bloom_builder_add(&b, bloom_hash(key, len)) != 0) {
            bloom_builder_free(&b);
            return -1;
        }
    }
    int rc = bloom_builder_finish(&b, out);
    bloom_builder_free(&b);
    return rc;
}

static int probes_for_test(int bpk) {
    int k = (int)(bpk * 0.69 + 0.5);
    return k < 1 ? 1 : k > 12 ? 12 : k;
}

/* Measures the false-positive rate at bits_per_key against the standard
 * filter's theoretical rate; the ratio must stay under max_ratio. */
static void check_fp_rate(int bits_per_key, double max_ratio) {
    enum { KEYS = 100000, ABSENT = 1000000 };
    buf f = BUF_INIT;
    CHECK(build_filter(&f, bits_per_key, KEYS, "key") == 0);
    uint64_t lines = ((uint64_t)KEYS * bits_per_key + 511) / 512;
    CHECK_EQ_INT(f.len, lines * 64 + 5);
    CHECK_EQ_INT((unsigned char)f.data[f.len - 1], probes_for_test(bits_per_key));
    char key[64];
    for (uint64_t i = 0; i < KEYS; i++) {
        size_t n = make_key(key, "key", i);
        CHECK(bloom_may_contain(f.data, f.len, bloom_hash(key, n)) == 1);
    }
    uint64_t fp = 0;
    for (uint64_t i = 0; i < ABSENT; i++) {
        size_t n = make_key(key, "absent", i);
        fp += (uint64_t)bloom_may_contain(f.data, f.len, bloom_hash(key, n));
    }
    double rate = (double)fp / ABSENT;
    double k = probes_for_test(bits_per_key);
    double m = (double)lines * 512;
    double theory = pow(1 - exp(-k * KEYS / m), k);
    printf("     %2d bits/key, %d probes: fp rate %.6f, standard theory %.6f (ratio %.2f)\n",
           bits_per_key, (int)k, rate, theory, rate / theory);
    CHECK(rate < theory * max_ratio);
    CHECK(fp > 0); /* a filter matching nothing absent is suspicious too */
    buf_free(&f);
}

TEST(fp_rate_10_bits_within_2x_of_theory) { check_fp_rate(10, 2.0); }
TEST(fp_rate_1_bit) { check_fp_rate(1, 1.1); }
TEST(fp_rate_5_bits) { check_fp_rate(5, 1.3); }
/* A 512-bit line holds a Poisson number of keys; at 20 bits/key that
 * variance costs ~2.7x over an unblocked filter (computed model). */
TEST(fp_rate_20_bits) { check_fp_rate(20, 3.5); }

TEST(small_key_counts_have_no_false_negatives) {
    for (uint64_t n = 1; n <= 300; n = n < 10 ? n + 1 : n * 2) {
        buf f = BUF_INIT;
        CHECK(build_filter(&f, 10, n, "k") == 0);
        char key[64];
        for (uint64_t i = 0; i < n; i++) {
            size_t len = make_key(key, "k", i);
            CHECK(bloom_may_contain(f.data, f.len, bloom_hash(key, len)) == 1);
        }
        buf_free(&f);
    }
}

TEST(empty_filter_matches_nothing) {
    bloom_builder b;
    bloom_builder_init(&b, 10);
    buf f = BUF_INIT;
    CHECK(bloom_builder_finish(&b, &f) == 0);
    CHECK_EQ_INT(f.len, 5);
    for (uint64_t i = 0; i < 1000; i++)
        CHECK(bloom_may_contain(f.data, f.len, bloom_hash(&i, sizeof i)) == 0);
    bloom_builder_free(&b);
    buf_free(&f);
}

TEST(builder_appends_and_resets) {
    bloom_builder b;
    bloom_builder_init(&b, 10);
    buf out = BUF_INIT;
    CHECK(buf_append(&out, "hdr", 3) == 0);
    CHECK(bloom_builder_add(&b, bloom_hash("x", 1)) == 0);
    CHECK(bloom_builder_finish(&b, &out) == 0);
    size_t first_len = out.len - 3;
    CHECK_EQ_INT(first_len, 64 + 5);
    CHECK(memcmp(out.data, "hdr", 3) == 0);
    /* Builder is reset: second filter holds only "y". */
    CHECK(bloom_builder_add(&b, bloom_hash("y", 1)) == 0);
    CHECK(bloom_builder_finish(&b, &out) == 0);
    const char *f1 = out.data + 3, *f2 = out.data + 3 + first_len;
    size_t f2_len = out.len - 3 - first_len;
    CHECK(bloom_may_contain(f1, first_len, bloom_hash("x", 1)) == 1);
    CHECK(bloom_may_contain(f2, f2_len, bloom_hash("y", 1)) == 1);
    /* With one key in 512 bits, the other key is almost surely absent. */
    CHECK(bloom_may_contain(f2, f2_len, bloom_hash("x", 1)) == 0);
    bloom_builder_free(&b);
    bloom_builder_free(&b); /* idempotent */
    buf_free(&out);
}

TEST(nonpositive_bits_per_key_is_clamped) {
    buf f = BUF_INIT;
    CHECK(build_filter(&f, 0, 1000, "z") == 0);
    CHECK(f.len > 5);
    CHECK((unsigned char)f.data[f.len - 1] >= 1);
    char key[64];
    for (uint64_t i = 0; i < 1000; i++) {
        size_t n = make_key(key, "z", i);
        CHECK(bloom_may_contain(f.data, f.len, bloom_hash(key, n)) == 1);
    }
    buf_free(&f);
    CHECK(build_filter(&f, -5, 10, "z") == 0);
    CHECK(f.len == 64 + 5);
    buf_free(&f);
}

/* Copy into an exact-size heap block so ASan catches any overread. */
static int may_contain_exact(const void *filter, size_t len, uint64_t h) {
    char *copy = malloc(len ? len : 1);
    if (!copy) return -1;
    if (len) memcpy(copy, filter, len);
    int r = bloom_may_contain(copy, len, h);
    free(copy);
    return r;
}

TEST(malformed_filters_answer_maybe) {
    buf f = BUF_INIT;
    CHECK(build_filter(&f, 10, 100, "m") == 0);
    uint64_t absent = bloom_hash("definitely-absent", 17);
    /* pick an absent hash the real filter rejects */
    for (uint64_t i = 0; bloom_may_contain(f.data, f.len, absent); i++)
        absent = bloom_hash(&i, sizeof i);
    CHECK(bloom_may_contain(NULL, 0, absent) == 1);
    for (size_t len = 0; len < 5; len++) CHECK(may_contain_exact(f.data, len, absent) == 1);
    /* Truncated: line count no longer matches the length. */
    for (size_t cut = 1; cut < f.len - 5; cut += 7) {
        char *t = malloc(f.len - cut);
        CHECK(t != NULL);
        memcpy(t, f.data + cut, f.len - cut);
        CHECK(bloom_may_contain(t, f.len - cut, absent) == 1);
        free(t);
    }
    char *bad = malloc(f.len);
    CHECK(bad != NULL);
    /* probes 0 and probes beyond what any writer produces */
    memcpy(bad, f.data, f.len);
    bad[f.len - 1] = 0;
    CHECK(bloom_may_contain(bad, f.len, absent) == 1);
    bad[f.len - 1] = (char)200;
    CHECK(bloom_may_contain(bad, f.len, absent) == 1);
    /* line count claiming far more lines than there are bytes (incl. one
     * whose byte size overflows 32 bits) */
    memcpy(bad, f.data, f.len);
    encode_fixed32(bad + f.len - 5, 0xffffffffu);
    CHECK(bloom_may_contain(bad, f.len, absent) == 1);
    encode_fixed32(bad + f.len - 5, (uint32_t)((f.len - 5) / 64 + 1));
    CHECK(bloom_may_contain(bad, f.len, absent) == 1);
    /* zero lines but a body present */
    encode_fixed32(bad + f.len - 5, 0);
    CHECK(bloom_may_contain(bad, f.len, absent) == 1);
    free(bad);
    buf_free(&f);
}

TEST(random_garbage_never_crashes) {
    test_rng r;
    test_rng_seed(&r, 99);
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = (size_t)test_rng_uniform(&r, 400);
        char *g = malloc(len ? len : 1);
        CHECK(g != NULL);
        for (size_t i = 0; i < len; i++) g[i] = (char)test_rng_next(&r);
        /* Half the time make the trailer plausible so the probe path runs. */
        if (len >= 5 && (iter & 1)) {
            size_t lines = (len - 5) / 64;
            len = lines * 64 + 5;
            encode_fixed32(g + len - 5, (uint32_t)lines);
            g[len - 1] = (char)(1 + test_rng_uniform(&r, 12));
        }
        int rc = bloom_may_contain(g, len, test_rng_next(&r));
        CHECK(rc == 0 || rc == 1);
        free(g);
    }
}

static const test_case tests[] = {
    TEST_ENTRY(hash_golden_values_are_stable),
    TEST_ENTRY(hash_ignores_alignment_and_sees_every_byte),
    TEST_ENTRY(hash_avalanche),
    TEST_ENTRY(hash_sequential_keys_spread_evenly),
    TEST_ENTRY(fp_rate_10_bits_within_2x_of_theory),
    TEST_ENTRY(fp_rate_1_bit),
    TEST_ENTRY(fp_rate_5_bits),
    TEST_ENTRY(fp_rate_20_bits),
    TEST_ENTRY(small_key_counts_have_no_false_negatives),
    TEST_ENTRY(empty_filter_matches_nothing),
    TEST_ENTRY(builder_appends_and_resets),
    TEST_ENTRY(nonpositive_bits_per_key_is_clamped),
    TEST_ENTRY(malformed_filters_answer_maybe),
    TEST_ENTRY(random_garbage_never_crashes),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
