/*
 * testutil.h -- a minimal test harness for weir's C tests.
 *
 *   TEST(name) { CHECK(x); CHECK_OK(weir_put(...)); ... }
 *   int main(int argc, char **argv) { return test_main(argc, argv, tests); }
 *
 * A failed CHECK prints file:line, the expression and (for status checks)
 * weir_errmsg(), marks the test failed and returns from it. Each binary
 * ends with "N passed, N failed".
 */
#ifndef WEIR_TESTUTIL_H
#define WEIR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "weir.h"

typedef void (*test_fn)(void);

typedef struct test_case {
    const char *name;
    test_fn fn;
} test_case;

extern int test_failed; /* set by CHECK failures in the running test */

#define TEST(name) static void name(void)
#define TEST_ENTRY(name) {#name, name}
#define TEST_END {NULL, NULL}

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            test_failed = 1;                                                 \
            return;                                                          \
        }                                                                    \
    } while (0)

#define CHECK_STATUS(expr, want)                                               \
    do {                                                                       \
        int check_rc_ = (expr);                                                \
        if (check_rc_ != (want)) {                                             \
            fprintf(stderr, "%s:%d: %s returned %s, want %s (%s)\n", __FILE__, \
                    __LINE__, #expr, weir_status_name(check_rc_),              \
                    weir_status_name(want), weir_errmsg());                    \
            test_failed = 1;                                                   \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, WEIR_OK)

#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);          \
        if (check_a_ != check_b_) {                                              \
            fprintf(stderr, "%s:%d: %s == %lld, want %s == %lld\n", __FILE__,    \
                    __LINE__, #a, check_a_, #b, check_b_);                       \
            test_failed = 1;                                                     \
            return;                                                              \
        }                                                                        \
    } while (0)

/* Run every test (or those named on the command line); returns the exit
 * status (0 if all passed). Prints "N passed, N failed". */
int test_main(int argc, char **argv, const test_case *tests);

/* Make a fresh empty directory for a test under $TMPDIR (or /tmp) and copy
 * its path into out. Aborts the process if it cannot. */
void test_tmpdir(char *out, size_t cap, const char *tag);
/* rm -rf path (best effort). */
void test_rmtree(const char *path);

/* Deterministic PRNG (xorshift-style) so failing runs can be replayed. */
typedef struct test_rng {
    uint64_t s;
} test_rng;
void test_rng_seed(test_rng *r, uint64_t seed);
uint64_t test_rng_next(test_rng *r);
/* Uniform in [0, n). */
uint64_t test_rng_uniform(test_rng *r, uint64_t n);

/* Seed from $WEIR_TEST_SEED if set, else from time; printed by the caller. */
uint64_t test_seed_from_env(void);

/* ---- files (the damage tests and the corruption campaign) ---- */

/* Read a whole file into a malloc'd buffer; 0 on success. */
int test_read_file(const char *path, unsigned char **data, size_t *len);
/* Create or replace a file with exactly these bytes; 0 on success. */
int test_write_file(const char *path, const void *data, size_t len);
/* Copy every regular file of src (flat) into dst, which must exist. */
int test_copy_dir(const char *src, const char *dst);
/* XOR the byte at off with mask; 0 on success (-1 past the end). */
int test_xor_byte(const char *path, size_t off, unsigned char mask);
/* Size of a file, -1 if it cannot be stat'ed. */
long test_file_size(const char *path);
/* The last path component. */
const char *test_base_name(const char *path);

#endif
