/* testutil.c -- see testutil.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int test_failed;

int test_main(int argc, char **argv, const test_case *tests) {
    int passed = 0, failed = 0;
    for (const test_case *t = tests; t->name; t++) {
        if (argc > 1) {
            int wanted = 0;
            for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], t->name) == 0) wanted = 1;
            if (!wanted) continue;
        }
        test_failed = 0;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        t->fn();
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        if (test_failed) {
            failed++;
            printf("FAIL %s (%.0f ms)\n", t->name, ms);
        } else {
            passed++;
            printf("ok   %s (%.0f ms)\n", t->name, ms);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

void test_tmpdir(char *out, size_t cap, const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(out, cap, "%s/weir-%s-XXXXXX", base, tag);
    if (!mkdtemp(out)) {
        fprintf(stderr, "mkdtemp %s: %s\n", out, strerror(errno));
        abort();
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void test_rmtree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

void test_rng_seed(test_rng *r, uint64_t seed) { r->s = seed ? seed : 0x9E3779B97F4A7C15ull; }

uint64_t test_rng_next(test_rng *r) {
    /* splitmix64 step: good enough statistical quality for tests. */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t test_rng_uniform(test_rng *r, uint64_t n) { return n ? test_rng_next(r) % n : 0; }

uint64_t test_seed_from_env(void) {
    const char *s = getenv("WEIR_TEST_SEED");
    if (s && *s) return strtoull(s, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
}

/* ---- files ---- */

int test_read_file(const char *path, unsigned char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    unsigned char *d = malloc(cap);
    if (!d) abort();
    for (;;) {
        if (n == cap) {
            cap *= 2;
            d = realloc(d, cap);
            if (!d) abort();
        }
        size_t got = fread(d + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    *data = d;
    *len = n;
    return 0;
}

int test_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int rc = fclose(f);
    return put == len && rc == 0 ? 0 : -1;
}

int test_copy_dir(const char *src, const char *dst) {
    DIR *d = opendir(src);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(a, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        unsigned char *data;
        size_t len;
        if (test_read_file(a, &data, &len) != 0) {
            rc = -1;
            continue;
        }
        if (test_write_file(b, data, len) != 0) rc = -1;
        free(data);
    }
    closedir(d);
    return rc;
}

int test_xor_byte(const char *path, size_t off, unsigned char mask) {
    unsigned char *d;
    size_t n;
    if (test_read_file(path, &d, &n) != 0) return -1;
    if (off >= n) {
        free(d);
        return -1;
    }
    d[off] ^= mask;
    int rc = test_write_file(path, d, n);
    free(d);
    return rc;
}

long test_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

const char *test_base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}
