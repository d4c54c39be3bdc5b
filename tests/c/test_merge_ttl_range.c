/*
 * test_merge_ttl_range.c -- merge operators, time-to-live and range
 * deletions through the public API: point reads, iterators both ways,
 * snapshots, flushes, compactions (which fold operands, drop expired values
 * and covered data) and reopens. Expiry runs on a clock the test controls,
 * so nothing sleeps waiting for a TTL. One test also counts the range
 * tombstones the version holds, through the internal headers.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_impl.h" /* live_tombstones() only */
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

/* The DB's clock (read by background compactions too, hence atomic). */
static _Atomic uint64_t g_now_ms;

static uint64_t test_clock(void *arg) {
    (void)arg;
    return atomic_load(&g_now_ms);
}

static weir_options *opts_with_clock(void) {
    weir_options *o = weir_options_create();
    if (!o) abort();
    atomic_store(&g_now_ms, 1000000);
    weir_options_set_clock(o, test_clock, NULL);
    return o;
}

static void advance(uint64_t ms) { atomic_fetch_add(&g_now_ms, ms); }

static uint64_t prop_u64(weir_db *db, const char *name) {
    char *text = NULL;
    if (weir_property(db, name, &text) != WEIR_OK) return UINT64_MAX;
    uint64_t v = strtoull(text, NULL, 10);
    weir_free(text);
    return v;
}

/* Counter `name` of "weir.counters", or UINT64_MAX. */
static uint64_t counter(weir_db *db, const char *name) {
    char *text = NULL;
    if (weir_property(db, "weir.counters", &text) != WEIR_OK) return UINT64_MAX;
    uint64_t v = UINT64_MAX;
    size_t n = strlen(name);
    for (char *line = text; line && *line;) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            v = strtoull(line + n + 1, NULL, 10);
            break;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    weir_free(text);
    return v;
}

/* Sum of the entry counts "weir.sstables" lists. */
static uint64_t table_entries(weir_db *db) {
    char *text = NULL;
    if (weir_property(db, "weir.sstables", &text) != WEIR_OK) return UINT64_MAX;
    uint64_t sum = 0;
    for (char *p = text; (p = strstr(p, " bytes, ")) != NULL;) {
        p += strlen(" bytes, ");
        sum += strtoull(p, NULL, 10);
    }
    weir_free(text);
    return sum;
}

static int64_t dec_i64(const void *p) {
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return (int64_t)v;
}

static void enc_i64(void *p, int64_t x) {
    unsigned char *b = p;
    uint64_t v = (uint64_t)x;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static void enc_f64(void *p, double d) {
    uint64_t bits;
    memcpy(&bits, &d, 8);
    enc_i64(p, (int64_t)bits);
}

static double dec_f64(const void *p) {
    uint64_t bits = (uint64_t)dec_i64(p);
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static int put_s(weir_db *db, const char *k, const char *v) {
    return weir_put(db, NULL, k, strlen(k), v, strlen(v));
}

static int put_i64(weir_db *db, const char *k, int64_t x) {
    char b[8];
    enc_i64(b, x);
    return weir_put(db, NULL, k, strlen(k), b, 8);
}

static int add(weir_db *db, const char *k, int64_t d) { return weir_add_int64(db, NULL, k, strlen(k), d); }

static int merge_i64(weir_db *db, const char *k, int op, int64_t x) {
    char b[8];
    enc_i64(b, x);
    return weir_merge(db, NULL, k, strlen(k), op, b, 8);
}

static int merge_f64(weir_db *db, const char *k, int op, double x) {
    char b[8];
    enc_f64(b, x);
    return weir_merge(db, NULL, k, strlen(k), op, b, 8);
}

static int merge_s(weir_db *db, const char *k, int op, const char *v) {
    return weir_merge(db, NULL, k, strlen(k), op, v, strlen(v));
}

static int list_add(weir_db *db, const char *k, const char *item, uint32_t bound) {
    return weir_list_append(db, NULL, k, strlen(k), item, strlen(item), bound);
}

static weir_readopts at(const weir_snapshot *s) {
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.snapshot = s;
    return ro;
}

/* 1 if key reads as the string want (NULL: absent), else prints why. */
static int expect_s(weir_db *db, const weir_snapshot *snap, const char *k, const char *want, int line) {
    weir_readopts ro = at(snap);
    void *v = NULL;
    size_t vl = 0;
    int rc = weir_get_alloc(db, &ro, k, strlen(k), &v, &vl);
    int ok;
    if (!want) {
        ok = rc == WEIR_NOT_FOUND;
    } else {
        ok = rc == WEIR_OK && vl == strlen(want) && memcmp(v, want, vl) == 0;
    }
    if (!ok)
        fprintf(stderr, "line %d: key \"%s\": want %s%s%s, got %s \"%.*s\" (%s)\n", line, k,
                want ? "\"" : "", want ? want : "absent", want ? "\"" : "", weir_status_name(rc),
                rc == WEIR_OK ? (int)vl : 0, rc == WEIR_OK ? (const char *)v : "", weir_errmsg());
    weir_free(v);
    return ok;
}
#define EXPECT_S(db, snap, k, want) CHECK(expect_s(db, snap, k, want, __LINE__))

/* 1 if key reads as the 8-byte integer want. */
static int expect_i64(weir_db *db, const weir_snapshot *snap, const char *k, int64_t want, int line) {
    weir_readopts ro = at(snap);
    char b[16];
    size_t vl = 0;
    int rc = weir_get(db, &ro, k, strlen(k), b, sizeof b, &vl);
    if (rc == WEIR_OK && vl == 8 && dec_i64(b) == want) return 1;
    fprintf(stderr, "line %d: key \"%s\": want int64 %" PRId64 ", got %s len %zu value %" PRId64 " (%s)\n",
            line, k, want, weir_status_name(rc), vl, rc == WEIR_OK && vl == 8 ? dec_i64(b) : 0,
            weir_errmsg());
    return 0;
}
#define EXPECT_I64(db, snap, k, want) CHECK(expect_i64(db, snap, k, want, __LINE__))

static int expect_f64(weir_db *db, const char *k, double want, int line) {
    char b[16];
    size_t vl = 0;
    int rc = weir_get(db, NULL, k, strlen(k), b, sizeof b, &vl);
    if (rc == WEIR_OK && vl == 8 && memcmp(&(double){dec_f64(b)}, &want, 8) == 0) return 1;
    fprintf(stderr, "line %d: key \"%s\": want %.17g, got %s len %zu value %.17g\n", line, k, want,
            weir_status_name(rc), vl, rc == WEIR_OK && vl == 8 ? dec_f64(b) : NAN);
    return 0;
}
#define EXPECT_F64(db, k, want) CHECK(expect_f64(db, k, want, __LINE__))

static int expect_absent(weir_db *db, const weir_snapshot *snap, const char *k, int line) {
    return expect_s(db, snap, k, NULL, line);
}
#define EXPECT_ABSENT(db, snap, k) CHECK(expect_absent(db, snap, k, __LINE__))

/* Append "key=value;" for the iterator's entry to out. Values of exactly 8
 * bytes whose key starts with '#' print as int64; others as text. */
static void describe(weir_iter *it, char *out, size_t cap) {
    size_t kl, vl;
    const char *k = weir_iter_key(it, &kl);
    const char *v = weir_iter_value(it, &vl);
    size_t n = strlen(out);
    if (kl && k[0] == '#' && vl == 8)
        snprintf(out + n, cap - n, "%.*s=%" PRId64 ";", (int)kl, k, dec_i64(v));
    else
        snprintf(out + n, cap - n, "%.*s=%.*s;", (int)kl, k, (int)vl, v);
}

/* Scan with ro (NULL: latest, unbounded) forward (or backward) into out.
 * Returns the iterator's final status. */
static int scan(weir_db *db, const weir_readopts *ro, int backward, char *out, size_t cap) {
    out[0] = 0;
    weir_iter *it;
    int rc = weir_iter_create(db, ro, &it);
    if (rc != WEIR_OK) return rc;
    if (backward) {
        for (weir_iter_seek_last(it); weir_iter_valid(it); weir_iter_prev(it)) describe(it, out, cap);
    } else {
        for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) describe(it, out, cap);
    }
    rc = weir_iter_status(it);
    weir_iter_destroy(it);
    return rc;
}

/* Reverse the order of "a;b;c;" entries (to compare a backward scan). */
static void reverse_entries(const char *in, char *out, size_t cap) {
    out[0] = 0;
    size_t n = strlen(in);
    size_t end = n;
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && in[start - 1] != ';') start--;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%.*s", (int)(end - start), in + start);
        end = start;
    }
}

/* Forward and backward scans agree with each other and with want. */
static int expect_scan(weir_db *db, const weir_readopts *ro, const char *want, int line) {
    static char fwd[65536], bwd[65536], rev[65536];
    int rc = scan(db, ro, 0, fwd, sizeof fwd);
    int rc2 = scan(db, ro, 1, bwd, sizeof bwd);
    reverse_entries(bwd, rev, sizeof rev);
    if (rc == WEIR_OK && rc2 == WEIR_OK && strcmp(fwd, want) == 0 && strcmp(rev, want) == 0) return 1;
    fprintf(stderr, "line %d: scan\n  want     %s\n  forward  %s (%s)\n  backward %s (%s)\n", line, want,
            fwd, weir_status_name(rc), rev, weir_status_name(rc2));
    return 0;
}
#define EXPECT_SCAN(db, ro, want) CHECK(expect_scan(db, ro, want, __LINE__))

static void wait_level_files(weir_db *db, int level, uint64_t want) {
    char name[64];
    snprintf(name, sizeof name, "weir.num-files-at-level%d", level);
    for (int i = 0; i < 20000 && prop_u64(db, name) != want; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Put key -> val together with a 300 KiB neighbour in one table and let
 * background compaction move that table to level 2 (level 1's limit is
 * 256 KiB), so later compactions of levels 0 and 1 do not see the value. */
static int push_to_level2(weir_db *db, const char *key, const void *val, size_t vlen) {
    size_t big = 300 * 1024;
    char *filler = malloc(big);
    if (!filler) return WEIR_NO_MEMORY;
    memset(filler, 'f', big);
    char fkey[64];
    snprintf(fkey, sizeof fkey, "%s~filler", key);
    int rc = weir_put(db, NULL, key, strlen(key), val, vlen);
    if (rc == WEIR_OK) rc = weir_put(db, NULL, fkey, strlen(fkey), filler, big);
    free(filler);
    if (rc == WEIR_OK) rc = weir_compact_range(db, NULL, 0, NULL, 0);
    if (rc != WEIR_OK) return rc;
    wait_level_files(db, 2, 1);
    if (prop_u64(db, "weir.num-files-at-level2") != 1 || prop_u64(db, "weir.num-files-at-level1") != 0) {
        fprintf(stderr, "push_to_level2: the table did not reach level 2\n");
        return WEIR_INVALID;
    }
    return WEIR_OK;
}

/* Options under which push_to_level2 works: level 1 holds 256 KiB. */
static weir_options *opts_small_levels(void) {
    weir_options *o = weir_options_create();
    if (!o) abort();
    weir_options_set_max_bytes_for_level_base(o, 256 * 1024);
    return o;
}

/* ---- merge: int64 ----------------------------------------------------------- */

TEST(merge_int64_add_thousand) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    int64_t sum = 0;
    for (int i = 1; i <= 1000; i++) {
        int64_t d = (i % 3 == 0) ? -(int64_t)i * 7 : (int64_t)i;
        CHECK_OK(add(db, "#c", d));
        sum += d;
        if (i % 97 == 0) EXPECT_I64(db, NULL, "#c", sum);
        if (i == 400) CHECK_OK(weir_flush(db));
        if (i == 700) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    EXPECT_I64(db, NULL, "#c", sum);
    CHECK(sum < 0); /* the negative deltas dominate */
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_I64(db, NULL, "#c", sum);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_I64(db, NULL, "#c", sum);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(merge_int64_add_wraps_and_max_min) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(add(db, "#wrap", INT64_MAX));
    CHECK_OK(add(db, "#wrap", 1));
    EXPECT_I64(db, NULL, "#wrap", INT64_MIN);
    CHECK_OK(add(db, "#wrap", -1));
    EXPECT_I64(db, NULL, "#wrap", INT64_MAX);
    CHECK_OK(add(db, "#wrap", INT64_MIN));
    EXPECT_I64(db, NULL, "#wrap", -1);

    int64_t xs[] = {5, -3, 12, INT64_MIN, 7, INT64_MAX, 0};
    int64_t mx = xs[0], mn = xs[0];
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        CHECK_OK(merge_i64(db, "#max", WEIR_MERGE_INT64_MAX, xs[i]));
        CHECK_OK(merge_i64(db, "#min", WEIR_MERGE_INT64_MIN, xs[i]));
        if (xs[i] > mx) mx = xs[i];
        if (xs[i] < mn) mn = xs[i];
        EXPECT_I64(db, NULL, "#max", mx);
        EXPECT_I64(db, NULL, "#min", mn);
        if (i == 3) CHECK_OK(weir_flush(db));
    }
    /* Max/min over a plain base value. */
    CHECK_OK(put_i64(db, "#maxb", 100));
    CHECK_OK(merge_i64(db, "#maxb", WEIR_MERGE_INT64_MAX, 50));
    EXPECT_I64(db, NULL, "#maxb", 100);
    CHECK_OK(merge_i64(db, "#maxb", WEIR_MERGE_INT64_MAX, -500));
    CHECK_OK(merge_i64(db, "#maxb", WEIR_MERGE_INT64_MAX, 101));
    EXPECT_I64(db, NULL, "#maxb", 101);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_I64(db, NULL, "#wrap", -1);
    EXPECT_I64(db, NULL, "#max", INT64_MAX);
    EXPECT_I64(db, NULL, "#min", INT64_MIN);
    EXPECT_I64(db, NULL, "#maxb", 101);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- merge: float64 and bytes ---------------------------------------------- */

TEST(merge_float64_ops) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    double sum = 0, mx = -INFINITY, mn = INFINITY;
    for (int i = 0; i < 50; i++) {
        double x = (i % 2 ? -1.0 : 1.0) * (double)i * 0.25; /* exact in binary */
        CHECK_OK(merge_f64(db, "fadd", WEIR_MERGE_FLOAT64_ADD, x));
        CHECK_OK(merge_f64(db, "fmax", WEIR_MERGE_FLOAT64_MAX, x));
        CHECK_OK(merge_f64(db, "fmin", WEIR_MERGE_FLOAT64_MIN, x));
        sum += x;
        if (x > mx) mx = x;
        if (x < mn) mn = x;
        if (i == 20) CHECK_OK(weir_flush(db));
    }
    EXPECT_F64(db, "fadd", sum);
    EXPECT_F64(db, "fmax", mx);
    EXPECT_F64(db, "fmin", mn);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_F64(db, "fadd", sum);
    EXPECT_F64(db, "fmax", mx);
    EXPECT_F64(db, "fmin", mn);
    /* Onto a put base. */
    char b[8];
    enc_f64(b, 1.5);
    CHECK_OK(weir_put(db, NULL, "fb", 2, b, 8));
    CHECK_OK(merge_f64(db, "fb", WEIR_MERGE_FLOAT64_ADD, 2.25));
    EXPECT_F64(db, "fb", 3.75);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(merge_bytes_max_min) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    const char *xs[] = {"m", "ab", "", "b", "zz", "z", "ba"};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        CHECK_OK(merge_s(db, "bmax", WEIR_MERGE_BYTES_MAX, xs[i]));
        CHECK_OK(merge_s(db, "bmin", WEIR_MERGE_BYTES_MIN, xs[i]));
        if (i == 2) CHECK_OK(weir_flush(db));
    }
    EXPECT_S(db, NULL, "bmax", "zz");
    EXPECT_S(db, NULL, "bmin", "");
    /* Shorter sorts first on a common prefix; bytes compare unsigned. */
    CHECK_OK(put_s(db, "bm2", "abc"));
    CHECK_OK(merge_s(db, "bm2", WEIR_MERGE_BYTES_MAX, "ab"));
    EXPECT_S(db, NULL, "bm2", "abc");
    CHECK_OK(weir_merge(db, NULL, "bm2", 3, WEIR_MERGE_BYTES_MAX, "ab\xff", 3));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_S(db, NULL, "bmax", "zz");
    EXPECT_S(db, NULL, "bmin", "");
    EXPECT_S(db, NULL, "bm2", "ab\xff");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- merge: lists ------------------------------------------------------------ */

/* Decode a list value into "a,b,c" (or "<malformed>"). */
static void list_text(const void *v, size_t vl, char *out, size_t cap) {
    size_t off = 0, il, n = 0;
    const void *item;
    out[0] = 0;
    while (weir_list_next(v, vl, &off, &item, &il)) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%.*s", n++ ? "," : "", (int)il, (const char *)item);
    }
    if (off != vl) snprintf(out, cap, "<malformed>");
}

static int expect_list(weir_db *db, const weir_snapshot *snap, const char *k, const char *want, int line) {
    weir_readopts ro = at(snap);
    void *v = NULL;
    size_t vl = 0;
    int rc = weir_get_alloc(db, &ro, k, strlen(k), &v, &vl);
    char got[4096] = "";
    if (rc == WEIR_OK) list_text(v, vl, got, sizeof got);
    weir_free(v);
    if (rc == WEIR_OK && strcmp(got, want) == 0) return 1;
    fprintf(stderr, "line %d: list \"%s\": want [%s], got %s [%s] (%s)\n", line, k, want, weir_status_name(rc),
            got, weir_errmsg());
    return 0;
}
#define EXPECT_LIST(db, snap, k, want) CHECK(expect_list(db, snap, k, want, __LINE__))

TEST(merge_list_append_bounded) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(list_add(db, "L", "a", 3));
    EXPECT_LIST(db, NULL, "L", "a");
    CHECK_OK(list_add(db, "L", "b", 3));
    CHECK_OK(list_add(db, "L", "", 3)); /* empty items are items */
    EXPECT_LIST(db, NULL, "L", "a,b,");
    CHECK_OK(list_add(db, "L", "c", 3));
    EXPECT_LIST(db, NULL, "L", "b,,c");
    CHECK_OK(weir_flush(db));
    for (int i = 0; i < 10; i++) {
        char item[8];
        snprintf(item, sizeof item, "i%d", i);
        CHECK_OK(list_add(db, "L", item, 3));
    }
    EXPECT_LIST(db, NULL, "L", "i7,i8,i9");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_LIST(db, NULL, "L", "i7,i8,i9");
    /* A bigger bound lets the list grow again from what was kept. */
    CHECK_OK(list_add(db, "L", "x", 5));
    CHECK_OK(list_add(db, "L", "y", 5));
    CHECK_OK(list_add(db, "L", "z", 5));
    EXPECT_LIST(db, NULL, "L", "i8,i9,x,y,z");
    /* Bound 1 keeps only the newest. */
    CHECK_OK(list_add(db, "L", "only", 1));
    EXPECT_LIST(db, NULL, "L", "only");
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_LIST(db, NULL, "L", "only");
    /* Bounds out of range are refused at write time. */
    CHECK_STATUS(weir_list_append(db, NULL, "L", 1, "q", 1, 0), WEIR_INVALID);
    CHECK_STATUS(weir_list_append(db, NULL, "L", 1, "q", 1, 1000001), WEIR_INVALID);
    EXPECT_LIST(db, NULL, "L", "only");
    /* weir_list_next on edge inputs. */
    size_t off = 0, il;
    const void *item;
    CHECK(!weir_list_next(NULL, 0, &off, &item, &il));
    CHECK(!weir_list_next("", 0, &off, &item, &il));
    const unsigned char bad[] = {5, 'a'}; /* claims 5 bytes, holds 1 */
    off = 0;
    CHECK(!weir_list_next(bad, sizeof bad, &off, &item, &il));
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Operands whose bounds differ must not be combined as if the newest bound
 * applied to all of them: [big] + append(d, bound 1) + append(e, bound 5)
 * is [d, e], not [big, d, e]. The base sits in level 2 so the level-0
 * compaction sees the two operands without it. */
TEST(merge_list_mixed_bounds_survive_compaction) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    weir_options *o = opts_small_levels();
    CHECK_OK(weir_open(dir, o, &db));
    char base[16];
    base[0] = 3; /* one item, "big" */
    memcpy(base + 1, "big", 3);
    CHECK_OK(push_to_level2(db, "L", base, 4));
    EXPECT_LIST(db, NULL, "L", "big");
    CHECK_OK(list_add(db, "L", "d", 1));
    CHECK_OK(weir_flush(db));
    CHECK_OK(list_add(db, "L", "e", 5));
    CHECK_OK(weir_flush(db));
    EXPECT_LIST(db, NULL, "L", "d,e");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_LIST(db, NULL, "L", "d,e");
    /* Non-increasing bounds may be combined; the answer must not change. */
    CHECK_OK(list_add(db, "L", "f", 4));
    CHECK_OK(weir_flush(db));
    CHECK_OK(list_add(db, "L", "g", 2));
    CHECK_OK(weir_flush(db));
    EXPECT_LIST(db, NULL, "L", "f,g");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_LIST(db, NULL, "L", "f,g");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* Float addition is not associative: combining operands before they meet
 * their base would change the sum's rounding. 1e16 + 1 + 1 == 1e16 in
 * doubles, while 1e16 + (1 + 1) == 1e16 + 2. */
TEST(merge_float_add_not_reassociated_by_compaction) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    weir_options *o = opts_small_levels();
    CHECK_OK(weir_open(dir, o, &db));
    char b[8];
    enc_f64(b, 1e16);
    CHECK_OK(push_to_level2(db, "f", b, 8));
    CHECK_OK(merge_f64(db, "f", WEIR_MERGE_FLOAT64_ADD, 1.0));
    CHECK_OK(weir_flush(db));
    CHECK_OK(merge_f64(db, "f", WEIR_MERGE_FLOAT64_ADD, 1.0));
    CHECK_OK(weir_flush(db));
    double want = 1e16;
    want += 1.0;
    want += 1.0;
    EXPECT_F64(db, "f", want);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_F64(db, "f", want);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* ---- merge: bases, deletes, flush, compaction, reopen ---------------------- */

TEST(merge_bases_deletes_flush_reopen) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_write_buffer_size(o, 64 * 1024));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    /* A put as base. */
    CHECK_OK(put_i64(db, "#p", 100));
    CHECK_OK(add(db, "#p", 5));
    CHECK_OK(add(db, "#p", -2));
    EXPECT_I64(db, NULL, "#p", 103);
    /* A delete then merges: no base. */
    CHECK_OK(weir_delete(db, NULL, "#p", 2));
    EXPECT_ABSENT(db, NULL, "#p");
    CHECK_OK(add(db, "#p", 7));
    EXPECT_I64(db, NULL, "#p", 7);
    /* A put replaces the merged value outright. */
    CHECK_OK(add(db, "#q", 1));
    CHECK_OK(put_i64(db, "#q", 50));
    EXPECT_I64(db, NULL, "#q", 50);
    /* Operands spread over memtable, level 0 files and deeper levels. */
    int64_t want = 0;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 20; i++) {
            CHECK_OK(add(db, "#spread", round * 100 + i));
            want += round * 100 + i;
        }
        if (round % 2 == 0) CHECK_OK(weir_flush(db));
        if (round == 3) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
        EXPECT_I64(db, NULL, "#spread", want);
    }
    /* Lots of other data so automatic flushes and compactions run. */
    char key[32], val[100];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 5000; i++) {
        int kl = snprintf(key, sizeof key, "k%06d", i);
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, sizeof val));
        if (i % 50 == 0) {
            CHECK_OK(add(db, "#spread", i));
            want += i;
        }
    }
    EXPECT_I64(db, NULL, "#spread", want);
    EXPECT_I64(db, NULL, "#p", 7);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    EXPECT_I64(db, NULL, "#spread", want);
    EXPECT_I64(db, NULL, "#p", 7);
    EXPECT_I64(db, NULL, "#q", 50);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_I64(db, NULL, "#spread", want);
    EXPECT_I64(db, NULL, "#p", 7);
    EXPECT_I64(db, NULL, "#q", 50);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(merge_compaction_folds_operands) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    for (int k = 0; k < 10; k++) {
        char key[16];
        snprintf(key, sizeof key, "#k%d", k);
        for (int i = 0; i < 100; i++) CHECK_OK(add(db, key, k + i));
    }
    CHECK_OK(weir_flush(db));
    CHECK_EQ_INT(table_entries(db), 1000);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    /* One folded value per key now. */
    CHECK_EQ_INT(table_entries(db), 10);
    for (int k = 0; k < 10; k++) {
        char key[16];
        snprintf(key, sizeof key, "#k%d", k);
        EXPECT_I64(db, NULL, key, 100 * k + 4950);
    }
    CHECK(counter(db, "compaction_entries_dropped") >= 990);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Operands combined while their base lies deeper, then folded onto it. */
TEST(merge_partial_then_full_fold) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    weir_options *o = opts_small_levels();
    CHECK_OK(weir_open(dir, o, &db));
    char b[8];
    enc_i64(b, 1000);
    CHECK_OK(push_to_level2(db, "#deep", b, 8));
    int64_t want = 1000;
    for (int f = 0; f < 3; f++) {
        for (int i = 0; i < 30; i++) {
            CHECK_OK(add(db, "#deep", i - 10));
            want += i - 10;
        }
        CHECK_OK(weir_flush(db));
    }
    EXPECT_I64(db, NULL, "#deep", want);
    uint64_t before = table_entries(db);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_I64(db, NULL, "#deep", want);
    CHECK(table_entries(db) < before);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    EXPECT_I64(db, NULL, "#deep", want);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* ---- merge: iterators -------------------------------------------------------- */

TEST(merge_iterators_show_folded_values) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "a", "plain"));
    CHECK_OK(add(db, "#b", 1));
    CHECK_OK(add(db, "#b", 2));
    CHECK_OK(put_i64(db, "#c", 10));
    CHECK_OK(weir_flush(db));
    CHECK_OK(add(db, "#c", 5));
    CHECK_OK(add(db, "#d", 4));
    CHECK_OK(weir_delete(db, NULL, "#d", 2));
    CHECK_OK(add(db, "#e", 9));
    CHECK_OK(weir_delete(db, NULL, "#e", 2));
    CHECK_OK(add(db, "#e", 3));
    CHECK_OK(put_s(db, "z", "last"));
    const char *all = "#b=3;#c=15;#e=3;a=plain;z=last;";
    EXPECT_SCAN(db, NULL, all);
    /* Bounds and prefix. */
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.lower_bound = "#c";
    ro.lower_bound_len = 2;
    ro.upper_bound = "a";
    ro.upper_bound_len = 1;
    EXPECT_SCAN(db, &ro, "#c=15;#e=3;");
    memset(&ro, 0, sizeof ro);
    ro.prefix = "#";
    ro.prefix_len = 1;
    EXPECT_SCAN(db, &ro, "#b=3;#c=15;#e=3;");
    /* Seeks into merged keys, and direction changes around them. */
    weir_iter *it;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    char got[256] = "";
    weir_iter_seek(it, "#c", 2);
    CHECK(weir_iter_valid(it));
    describe(it, got, sizeof got); /* #c */
    weir_iter_next(it);
    describe(it, got, sizeof got); /* #e */
    weir_iter_prev(it);
    describe(it, got, sizeof got); /* #c */
    weir_iter_prev(it);
    describe(it, got, sizeof got); /* #b */
    weir_iter_next(it);
    describe(it, got, sizeof got); /* #c */
    weir_iter_seek_for_prev(it, "#d", 2);
    describe(it, got, sizeof got); /* #c */
    weir_iter_next(it);
    describe(it, got, sizeof got); /* #e */
    weir_iter_next(it);
    describe(it, got, sizeof got); /* a */
    weir_iter_prev(it);
    describe(it, got, sizeof got); /* #e */
    CHECK_OK(weir_iter_status(it));
    weir_iter_destroy(it);
    CHECK(strcmp(got, "#c=15;#e=3;#c=15;#b=3;#c=15;#c=15;#e=3;a=plain;#e=3;") == 0);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, all);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- merge: snapshots ---------------------------------------------------------- */

TEST(merge_snapshots_see_older_sums) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(add(db, "#s", 1));
    CHECK_OK(add(db, "#s", 2));
    weir_snapshot *s1, *s2;
    CHECK_OK(weir_snapshot_create(db, &s1));
    CHECK_OK(add(db, "#s", 10));
    CHECK_OK(weir_flush(db));
    CHECK_OK(add(db, "#s", 100));
    CHECK_OK(weir_snapshot_create(db, &s2));
    CHECK_OK(add(db, "#s", 1000));
    EXPECT_I64(db, s1, "#s", 3);
    EXPECT_I64(db, s2, "#s", 113);
    EXPECT_I64(db, NULL, "#s", 1113);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_I64(db, s1, "#s", 3);
    EXPECT_I64(db, s2, "#s", 113);
    EXPECT_I64(db, NULL, "#s", 1113);
    weir_readopts ro = at(s1);
    EXPECT_SCAN(db, &ro, "#s=3;");
    ro = at(s2);
    EXPECT_SCAN(db, &ro, "#s=113;");
    weir_snapshot_release(db, s1);
    CHECK_OK(add(db, "#s", 10000));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_I64(db, s2, "#s", 113);
    EXPECT_I64(db, NULL, "#s", 11113);
    weir_snapshot_release(db, s2);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_I64(db, NULL, "#s", 11113);
    CHECK_EQ_INT(table_entries(db), 1);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- merge: errors ------------------------------------------------------------- */

TEST(merge_type_mismatch_reported_on_read) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_s(db, "a", "1"));
    CHECK_OK(put_s(db, "badkey", "five!"));
    CHECK_OK(add(db, "badkey", 1));
    CHECK_OK(put_s(db, "c", "3"));
    for (int round = 0; round < 3; round++) {
        char buf[16];
        size_t vl;
        CHECK_STATUS(weir_get(db, NULL, "badkey", 6, buf, sizeof buf, &vl), WEIR_INVALID);
        CHECK(strstr(weir_errmsg(), "badkey") != NULL);
        void *v = (void *)1;
        CHECK_STATUS(weir_get_alloc(db, NULL, "badkey", 6, &v, &vl), WEIR_INVALID);
        CHECK(v == NULL);
        /* Other keys are unaffected. */
        EXPECT_S(db, NULL, "a", "1");
        EXPECT_S(db, NULL, "c", "3");
        /* multi_get: that key's status, the others found. */
        const void *keys[3] = {"a", "badkey", "c"};
        size_t kl[3] = {1, 6, 1}, vls[3];
        void *vals[3];
        int st[3];
        CHECK_STATUS(weir_multi_get(db, NULL, 3, keys, kl, vals, vls, st), WEIR_INVALID);
        CHECK_EQ_INT(st[0], WEIR_OK);
        CHECK_EQ_INT(st[1], WEIR_INVALID);
        CHECK_EQ_INT(st[2], WEIR_OK);
        for (int i = 0; i < 3; i++) weir_free(vals[i]);
        /* Iterators stop with the error, both ways. */
        for (int back = 0; back < 2; back++) {
            weir_iter *it;
            CHECK_OK(weir_iter_create(db, NULL, &it));
            int n = 0;
            if (back)
                for (weir_iter_seek_last(it); weir_iter_valid(it); weir_iter_prev(it)) n++;
            else
                for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
            CHECK_STATUS(weir_iter_status(it), WEIR_INVALID);
            CHECK(strstr(weir_errmsg(), "badkey") != NULL);
            CHECK_EQ_INT(n, 1); /* "a" (or "c" backward) came first */
            weir_iter_destroy(it);
        }
        if (round == 0) CHECK_OK(weir_flush(db));
        if (round == 1) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    /* A put repairs the key. */
    CHECK_OK(put_i64(db, "badkey", 4));
    CHECK_OK(add(db, "badkey", 1));
    EXPECT_I64(db, NULL, "badkey", 5);
    /* A list append onto something that is not a list. */
    CHECK_OK(put_s(db, "notlist", "\x05x"));
    CHECK_OK(list_add(db, "notlist", "y", 4));
    char buf[16];
    size_t vl;
    CHECK_STATUS(weir_get(db, NULL, "notlist", 7, buf, sizeof buf, &vl), WEIR_INVALID);
    CHECK(strstr(weir_errmsg(), "notlist") != NULL);
    /* A numeric merge onto a list made by another operator. */
    CHECK_OK(list_add(db, "mixed", "abcdefgh", 4));
    CHECK_OK(merge_i64(db, "mixed", WEIR_MERGE_INT64_MAX, 1));
    CHECK_STATUS(weir_get(db, NULL, "mixed", 5, buf, sizeof buf, &vl), WEIR_INVALID);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(merge_bad_operands_refused_at_write) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    uint64_t seq0 = prop_u64(db, "weir.last-sequence");
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, WEIR_MERGE_INT64_ADD, "1234567", 7), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, WEIR_MERGE_INT64_ADD, "123456789", 9), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, WEIR_MERGE_FLOAT64_MAX, "", 0), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, WEIR_MERGE_LIST_APPEND, "\x01\x00\x00", 3), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, WEIR_MERGE_LIST_APPEND, "\x00\x00\x00\x00", 4), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, 0, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, 50, "x", 1), WEIR_INVALID);  /* unknown built-in */
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, 127, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, 256, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, -1, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, 200, "x", 1), WEIR_INVALID); /* unregistered */
    CHECK_STATUS(weir_merge(db, NULL, NULL, 1, WEIR_MERGE_BYTES_MAX, "x", 1), WEIR_INVALID);
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, WEIR_MERGE_BYTES_MAX, NULL, 1), WEIR_INVALID);
    CHECK_STATUS(weir_merge(NULL, NULL, "k", 1, WEIR_MERGE_BYTES_MAX, "x", 1), WEIR_INVALID);
    /* A long bad operand goes through the heap path of the check. */
    char big[100] = {0};
    CHECK_STATUS(weir_merge(db, NULL, "k", 1, WEIR_MERGE_INT64_MIN, big, sizeof big), WEIR_INVALID);
    /* Empty operands are fine for bytes operators; empty keys too. */
    CHECK_OK(weir_merge(db, NULL, "", 0, WEIR_MERGE_BYTES_MAX, "", 0));
    EXPECT_S(db, NULL, "", "");
    CHECK_EQ_INT(prop_u64(db, "weir.last-sequence"), seq0 + 1);
    /* Batches check shapes as operands are added. */
    weir_batch *b = weir_batch_create();
    CHECK_STATUS(weir_batch_merge(b, "k", 1, WEIR_MERGE_INT64_ADD, "123", 3), WEIR_INVALID);
    CHECK_STATUS(weir_batch_merge(b, "k", 1, 77, "123", 3), WEIR_INVALID);
    CHECK_STATUS(weir_batch_merge(b, "k", 1, 0, "123", 3), WEIR_INVALID);
    CHECK_STATUS(weir_batch_merge(NULL, "k", 1, WEIR_MERGE_BYTES_MAX, "1", 1), WEIR_INVALID);
    CHECK_EQ_INT(weir_batch_count(b), 0);
    weir_batch_destroy(b);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* ---- merge: user operators ------------------------------------------------------ */

static _Atomic int concat_calls;

/* String concatenation with a '+' between the parts. */
static int concat_op(void *arg, const void *key, size_t klen, const void *existing, size_t elen,
                     const void *operand, size_t olen, void **result, size_t *rlen) {
    (void)key;
    (void)klen;
    atomic_fetch_add(&concat_calls, 1);
    if (arg != (void *)&concat_calls) return WEIR_CORRUPTION;
    size_t n = (existing ? elen + 1 : 0) + olen;
    char *r = malloc(n ? n : 1);
    if (!r) return WEIR_NO_MEMORY;
    size_t p = 0;
    if (existing) {
        memcpy(r, existing, elen);
        r[elen] = '+';
        p = elen + 1;
    }
    if (olen) memcpy(r + p, operand, olen);
    *result = r;
    *rlen = n;
    return WEIR_OK;
}

/* Fails on an operand "fail", else keeps the operand. */
static int picky_op(void *arg, const void *key, size_t klen, const void *existing, size_t elen,
                    const void *operand, size_t olen, void **result, size_t *rlen) {
    (void)arg;
    (void)key;
    (void)klen;
    (void)existing;
    (void)elen;
    if (olen == 4 && memcmp(operand, "fail", 4) == 0) return WEIR_NOT_SUPPORTED;
    *result = malloc(olen ? olen : 1);
    if (!*result) return WEIR_NO_MEMORY;
    memcpy(*result, operand, olen);
    *rlen = olen;
    return WEIR_OK;
}

TEST(merge_user_operator) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = weir_options_create();
    CHECK_STATUS(weir_options_set_merge_operator(o, 127, concat_op, NULL), WEIR_INVALID);
    CHECK_STATUS(weir_options_set_merge_operator(o, 256, concat_op, NULL), WEIR_INVALID);
    CHECK_OK(weir_options_set_merge_operator(o, 200, concat_op, (void *)&concat_calls));
    CHECK_OK(weir_options_set_merge_operator(o, 255, picky_op, NULL));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(merge_s(db, "u", 200, "a"));
    CHECK_OK(merge_s(db, "u", 200, "b"));
    EXPECT_S(db, NULL, "u", "a+b");
    CHECK_OK(put_s(db, "v", "base"));
    CHECK_OK(merge_s(db, "v", 200, "x"));
    CHECK_OK(weir_flush(db));
    CHECK_OK(merge_s(db, "v", 200, "y"));
    CHECK_OK(merge_s(db, "u", 200, "c"));
    EXPECT_S(db, NULL, "v", "base+x+y");
    EXPECT_S(db, NULL, "u", "a+b+c");
    EXPECT_SCAN(db, NULL, "u=a+b+c;v=base+x+y;");
    /* In a batch, with a put between merges of the same key. */
    weir_batch *b = weir_batch_create();
    CHECK_OK(weir_batch_merge(b, "w", 1, 200, "1", 1));
    CHECK_OK(weir_batch_put(b, "w", 1, "p", 1));
    CHECK_OK(weir_batch_merge(b, "w", 1, 200, "2", 1));
    CHECK_OK(weir_write(db, NULL, b));
    weir_batch_destroy(b);
    EXPECT_S(db, NULL, "w", "p+2");
    /* Compaction folds them (user operators are never combined without
     * their base, but the base is there). */
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "u=a+b+c;v=base+x+y;w=p+2;");
    CHECK_EQ_INT(table_entries(db), 3);
    /* An operator that fails: reads report its status, naming the key. */
    CHECK_OK(merge_s(db, "x", 255, "ok"));
    EXPECT_S(db, NULL, "x", "ok");
    CHECK_OK(merge_s(db, "x", 255, "fail"));
    char buf[16];
    size_t vl;
    CHECK_STATUS(weir_get(db, NULL, "x", 1, buf, sizeof buf, &vl), WEIR_NOT_SUPPORTED);
    CHECK(strstr(weir_errmsg(), "\"x\"") != NULL);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0)); /* leaves the failing fold alone */
    CHECK_STATUS(weir_get(db, NULL, "x", 1, buf, sizeof buf, &vl), WEIR_NOT_SUPPORTED);
    CHECK_OK(weir_delete(db, NULL, "x", 1));
    CHECK_OK(weir_close(db));
    /* Reopened without the operator: writes refused, reads of its operands
     * fail instead of guessing. */
    weir_options *plain = weir_options_create();
    CHECK_OK(weir_open(dir, plain, &db));
    CHECK_STATUS(merge_s(db, "u", 200, "d"), WEIR_INVALID);
    EXPECT_S(db, NULL, "u", "a+b+c"); /* folded by compaction: a plain value now */
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(merge_s(db, "u", 200, "d"));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, plain, &db));
    CHECK_STATUS(weir_get(db, NULL, "u", 1, buf, sizeof buf, &vl), WEIR_INVALID);
    CHECK(strstr(weir_errmsg(), "200") != NULL);
    CHECK_OK(weir_close(db));
    weir_options_destroy(plain);
    weir_options_destroy(o);
    CHECK(atomic_load(&concat_calls) > 0);
    test_rmtree(dir);
}

TEST(merge_unregistered_user_operator_refused) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_merge_operator(o, 130, concat_op, (void *)&concat_calls));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_STATUS(merge_s(db, "k", 131, "x"), WEIR_INVALID);
    CHECK(strstr(weir_errmsg(), "131") != NULL);
    uint64_t seq0 = prop_u64(db, "weir.last-sequence");
    /* The batch is refused whole: its put does not land either. */
    weir_batch *b = weir_batch_create();
    CHECK_OK(weir_batch_put(b, "p", 1, "1", 1));
    CHECK_OK(weir_batch_merge(b, "k", 1, 131, "x", 1)); /* checked at write */
    CHECK_STATUS(weir_write(db, NULL, b), WEIR_INVALID);
    CHECK(strstr(weir_errmsg(), "131") != NULL);
    EXPECT_ABSENT(db, NULL, "p");
    CHECK_EQ_INT(prop_u64(db, "weir.last-sequence"), seq0);
    weir_batch_clear(b);
    CHECK_OK(weir_batch_merge(b, "k", 1, 130, "x", 1));
    CHECK_OK(weir_write(db, NULL, b));
    EXPECT_S(db, NULL, "k", "x");
    weir_batch_destroy(b);
    /* Writes keep working after the refusal. */
    CHECK_OK(put_s(db, "p", "2"));
    EXPECT_S(db, NULL, "p", "2");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* A batch naming an unregistered operator fails by itself: writers whose
 * batches were grouped with it in one commit must not fail with it. */
typedef struct group_arg {
    weir_db *db;
    int id;
    _Atomic int *stop;
    int failures;
    int done;
} group_arg;

static void *good_writer(void *p) {
    group_arg *a = p;
    char key[32];
    for (int i = 0; i < 3000; i++) {
        int kl = snprintf(key, sizeof key, "g%d-%d", a->id, i);
        if (weir_put(a->db, NULL, key, (size_t)kl, "v", 1) != WEIR_OK) a->failures++;
        a->done++;
    }
    return NULL;
}

static void *bad_writer(void *p) {
    group_arg *a = p;
    weir_batch *b = weir_batch_create();
    weir_batch_put(b, "bad-put", 7, "x", 1);
    weir_batch_merge(b, "bad", 3, 250, "x", 1);
    while (!atomic_load(a->stop))
        if (weir_write(a->db, NULL, b) != WEIR_INVALID) a->failures++;
    weir_batch_destroy(b);
    return NULL;
}

TEST(merge_bad_batch_fails_alone_in_a_group) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_sync_mode(o, WEIR_SYNC_FLUSH));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    enum { GOOD = 4 };
    _Atomic int stop = 0;
    group_arg good[GOOD], bad = {db, 99, &stop, 0, 0};
    pthread_t tg[GOOD], tb;
    CHECK(pthread_create(&tb, NULL, bad_writer, &bad) == 0);
    for (int i = 0; i < GOOD; i++) {
        good[i] = (group_arg){db, i, &stop, 0, 0};
        CHECK(pthread_create(&tg[i], NULL, good_writer, &good[i]) == 0);
    }
    int failures = 0;
    for (int i = 0; i < GOOD; i++) {
        pthread_join(tg[i], NULL);
        failures += good[i].failures;
    }
    atomic_store(&stop, 1);
    pthread_join(tb, NULL);
    CHECK_EQ_INT(failures, 0);
    CHECK_EQ_INT(bad.failures, 0);
    EXPECT_ABSENT(db, NULL, "bad-put");
    EXPECT_S(db, NULL, "g3-2999", "v");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* Concurrent adds to shared counters lose nothing, while flushes and
 * compactions fold operands underneath. */
typedef struct adder_arg {
    weir_db *db;
    int id;
    int failures;
} adder_arg;

static void *adder(void *p) {
    adder_arg *a = p;
    char key[8];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "#c%d", i % 3);
        if (weir_add_int64(a->db, NULL, key, strlen(key), a->id + 1) != WEIR_OK) a->failures++;
    }
    return NULL;
}

TEST(merge_concurrent_adds) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_write_buffer_size(o, 64 * 1024));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    enum { THREADS = 4 };
    adder_arg args[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (adder_arg){db, i, 0};
        CHECK(pthread_create(&t[i], NULL, adder, &args[i]) == 0);
    }
    for (int i = 0; i < 5; i++) {
        CHECK_OK(weir_flush(db));
        CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failures += args[i].failures;
    }
    CHECK_EQ_INT(failures, 0);
    /* Each thread adds id+1 1000 times to each of the three counters. */
    EXPECT_I64(db, NULL, "#c0", 10000);
    EXPECT_I64(db, NULL, "#c1", 10000);
    EXPECT_I64(db, NULL, "#c2", 10000);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "#c0=10000;#c1=10000;#c2=10000;");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* ---- TTL ---------------------------------------------------------------------- */

TEST(ttl_visible_then_gone) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "a", "A"));
    CHECK_OK(weir_put_ttl(db, NULL, "b", 1, "B", 1, 1000));
    CHECK_OK(weir_put_ttl(db, NULL, "c", 1, "C", 1, 5000));
    CHECK_OK(put_s(db, "d", "D"));
    EXPECT_S(db, NULL, "b", "B");
    EXPECT_SCAN(db, NULL, "a=A;b=B;c=C;d=D;");
    advance(999);
    EXPECT_S(db, NULL, "b", "B");
    advance(1); /* expiry is inclusive: at now == expiry it is gone */
    EXPECT_ABSENT(db, NULL, "b");
    EXPECT_S(db, NULL, "c", "C");
    EXPECT_SCAN(db, NULL, "a=A;c=C;d=D;");
    /* Seeks land past it both ways. */
    weir_iter *it;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    weir_iter_seek(it, "b", 1);
    size_t kl;
    CHECK(weir_iter_valid(it) && memcmp(weir_iter_key(it, &kl), "c", 1) == 0);
    weir_iter_seek_for_prev(it, "b", 1);
    CHECK(weir_iter_valid(it) && memcmp(weir_iter_key(it, &kl), "a", 1) == 0);
    weir_iter_destroy(it);
    /* multi_get */
    const void *keys[4] = {"a", "b", "c", "d"};
    size_t kls[4] = {1, 1, 1, 1}, vls[4];
    void *vals[4];
    int st[4];
    CHECK_OK(weir_multi_get(db, NULL, 4, keys, kls, vals, vls, st));
    CHECK(st[0] == WEIR_OK && st[1] == WEIR_NOT_FOUND && st[2] == WEIR_OK && st[3] == WEIR_OK);
    CHECK(vals[1] == NULL);
    for (int i = 0; i < 4; i++) weir_free(vals[i]);
    /* An iterator judges expiry once, when it is created. */
    CHECK_OK(weir_iter_create(db, NULL, &it));
    advance(4000);
    EXPECT_ABSENT(db, NULL, "c");
    int n = 0;
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
    CHECK_EQ_INT(n, 3);
    weir_iter_destroy(it);
    EXPECT_SCAN(db, NULL, "a=A;d=D;");
    /* Expired in a table too. */
    CHECK_OK(weir_put_ttl(db, NULL, "e", 1, "E", 1, 10));
    CHECK_OK(weir_flush(db));
    EXPECT_S(db, NULL, "e", "E");
    advance(10);
    EXPECT_ABSENT(db, NULL, "e");
    /* Snapshots do not pin a value past its expiry (expiry is wall time). */
    CHECK_OK(weir_put_ttl(db, NULL, "f", 1, "F", 1, 10));
    weir_snapshot *s;
    CHECK_OK(weir_snapshot_create(db, &s));
    EXPECT_S(db, s, "f", "F");
    advance(10);
    EXPECT_ABSENT(db, s, "f");
    weir_snapshot_release(db, s);
    CHECK_STATUS(weir_put_ttl(db, NULL, "z", 1, "Z", 1, 0), WEIR_INVALID);
    CHECK_STATUS(weir_put_ttl(NULL, NULL, "z", 1, "Z", 1, 5), WEIR_INVALID);
    CHECK_STATUS(weir_put_ttl(db, NULL, NULL, 1, "Z", 1, 5), WEIR_INVALID);
    EXPECT_ABSENT(db, NULL, "z");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(ttl_expired_hides_older_value) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "k", "old"));
    CHECK_OK(put_s(db, "m", "old-m"));
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_put_ttl(db, NULL, "k", 1, "new", 3, 100));
    CHECK_OK(weir_put_ttl(db, NULL, "m", 1, "new-m", 5, 100));
    CHECK_OK(weir_flush(db));
    EXPECT_S(db, NULL, "k", "new");
    advance(100);
    EXPECT_ABSENT(db, NULL, "k");
    EXPECT_SCAN(db, NULL, "");
    /* Still hidden once compaction has rewritten things. */
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_ABSENT(db, NULL, "k");
    EXPECT_ABSENT(db, NULL, "m");
    EXPECT_SCAN(db, NULL, "");
    CHECK_EQ_INT(table_entries(db), 0);
    /* A plain put after it is visible again. */
    CHECK_OK(put_s(db, "k", "again"));
    EXPECT_S(db, NULL, "k", "again");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(ttl_default_and_batches) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    CHECK_OK(weir_options_set_default_ttl(o, 500));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "plain", "p"));
    CHECK_OK(weir_put_ttl(db, NULL, "long", 4, "l", 1, 5000));
    weir_batch *b = weir_batch_create();
    CHECK_OK(weir_batch_put(b, "bput", 4, "bp", 2));
    CHECK_OK(weir_batch_put_ttl(b, "bttl", 4, "bt", 2, 2000));
    CHECK_OK(weir_batch_delete(b, "nothing", 7));
    CHECK_STATUS(weir_batch_put_ttl(b, "zero", 4, "z", 1, 0), WEIR_INVALID);
    CHECK_EQ_INT(weir_batch_count(b), 3);
    CHECK_OK(weir_write(db, NULL, b));
    CHECK_OK(add(db, "#ctr", 3)); /* merges take no default TTL */
    EXPECT_SCAN(db, NULL, "#ctr=3;bput=bp;bttl=bt;long=l;plain=p;");
    advance(499);
    EXPECT_S(db, NULL, "plain", "p");
    advance(1);
    EXPECT_SCAN(db, NULL, "#ctr=3;bttl=bt;long=l;");
    /* The batch is unchanged by the write (relative TTLs stay relative):
     * writing it again gives fresh expiry times. */
    CHECK_OK(weir_write(db, NULL, b));
    EXPECT_SCAN(db, NULL, "#ctr=3;bput=bp;bttl=bt;long=l;");
    advance(1999);
    EXPECT_SCAN(db, NULL, "#ctr=3;bttl=bt;long=l;");
    advance(1);
    EXPECT_SCAN(db, NULL, "#ctr=3;long=l;");
    weir_batch_destroy(b);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(ttl_survives_reopen_with_absolute_expiry) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(weir_put_ttl(db, NULL, "t1", 2, "one", 3, 1000)); /* flushed to a table */
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_put_ttl(db, NULL, "t2", 2, "two", 3, 1000)); /* only in the log */
    CHECK_OK(weir_close(db));
    /* A reopen must not restart the TTL: it is absolute. */
    advance(600);
    CHECK_OK(weir_open(dir, o, &db));
    EXPECT_S(db, NULL, "t1", "one");
    EXPECT_S(db, NULL, "t2", "two");
    CHECK_OK(weir_close(db));
    advance(400);
    CHECK_OK(weir_open(dir, o, &db));
    EXPECT_ABSENT(db, NULL, "t1");
    EXPECT_ABSENT(db, NULL, "t2");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

TEST(ttl_compaction_drops_expired) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    char key[32], val[200];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < 2000; i++) {
        int kl = snprintf(key, sizeof key, "key%05d", i);
        if (i % 4 == 0)
            CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, sizeof val));
        else
            CHECK_OK(weir_put_ttl(db, NULL, key, (size_t)kl, val, sizeof val, 1000));
    }
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    uint64_t before = prop_u64(db, "weir.total-sst-bytes");
    /* Not yet expired: compaction keeps everything. */
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_EQ_INT(table_entries(db), 2000);
    advance(1000);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    uint64_t after = prop_u64(db, "weir.total-sst-bytes");
    CHECK(after < before / 2);
    CHECK_EQ_INT(table_entries(db), 500);
    int n = 0;
    weir_iter *it;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
    weir_iter_destroy(it);
    CHECK_EQ_INT(n, 500);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* An expired value over an older one, with a snapshot that predates the
 * expiring put: the snapshot still reads the older value, so compaction
 * must keep it. */
TEST(ttl_expired_over_snapshot_value) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(put_s(db, "k", "old"));
    weir_snapshot *s;
    CHECK_OK(weir_snapshot_create(db, &s));
    CHECK_OK(weir_put_ttl(db, NULL, "k", 1, "new", 3, 50));
    advance(100);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_ABSENT(db, NULL, "k");
    EXPECT_S(db, s, "k", "old");
    weir_snapshot_release(db, s);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_ABSENT(db, NULL, "k");
    CHECK_EQ_INT(table_entries(db), 0);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* Merges onto a value that later expires: while it lives they fold onto
 * it, after it expires onto nothing. Compaction folding the operands into
 * the live value must not make that value outlive its expiry. */
TEST(ttl_merge_onto_expiring_value) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    for (int compact = 0; compact < 2; compact++) {
        const char *k = compact ? "#c1" : "#c0";
        char b[8];
        enc_i64(b, 10);
        CHECK_OK(weir_put_ttl(db, NULL, k, 3, b, 8, 1000));
        CHECK_OK(add(db, k, 5));
        CHECK_OK(add(db, k, 1));
        EXPECT_I64(db, NULL, k, 16);
        if (compact) {
            CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
            EXPECT_I64(db, NULL, k, 16);
        }
    }
    advance(1000);
    EXPECT_I64(db, NULL, "#c0", 6);
    EXPECT_I64(db, NULL, "#c1", 6);
    EXPECT_SCAN(db, NULL, "#c0=6;#c1=6;");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "#c0=6;#c1=6;");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* ---- range deletes ------------------------------------------------------------- */

static int put_range(weir_db *db, char lo, char hi) {
    for (char c = lo; c <= hi; c++) {
        char k[2] = {c, 0}, v[3] = {'v', c, 0};
        int rc = put_s(db, k, v);
        if (rc != WEIR_OK) return rc;
    }
    return WEIR_OK;
}

TEST(range_delete_hides_keys) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_range(db, 'a', 'j'));
    CHECK_OK(put_s(db, "d0", "vd0"));
    CHECK_OK(weir_flush(db));
    CHECK_OK(put_s(db, "e0", "ve0")); /* in the memtable */
    CHECK_OK(weir_delete_range(db, NULL, "c", 1, "g", 1));
    for (int pass = 0; pass < 3; pass++) {
        EXPECT_S(db, NULL, "b", "vb");
        EXPECT_ABSENT(db, NULL, "c");
        EXPECT_ABSENT(db, NULL, "d0");
        EXPECT_ABSENT(db, NULL, "e0");
        EXPECT_ABSENT(db, NULL, "f");
        EXPECT_S(db, NULL, "g", "vg"); /* end is exclusive */
        EXPECT_SCAN(db, NULL, "a=va;b=vb;g=vg;h=vh;i=vi;j=vj;");
        weir_iter *it;
        size_t kl;
        CHECK_OK(weir_iter_create(db, NULL, &it));
        weir_iter_seek(it, "c", 1);
        CHECK(weir_iter_valid(it) && memcmp(weir_iter_key(it, &kl), "g", 1) == 0);
        weir_iter_prev(it);
        CHECK(weir_iter_valid(it) && memcmp(weir_iter_key(it, &kl), "b", 1) == 0);
        weir_iter_seek_for_prev(it, "f", 1);
        CHECK(weir_iter_valid(it) && memcmp(weir_iter_key(it, &kl), "b", 1) == 0);
        weir_iter_next(it);
        CHECK(weir_iter_valid(it) && memcmp(weir_iter_key(it, &kl), "g", 1) == 0);
        weir_iter_destroy(it);
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        ro.prefix = "d";
        ro.prefix_len = 1;
        EXPECT_SCAN(db, &ro, "");
        ro.prefix = "g";
        EXPECT_SCAN(db, &ro, "g=vg;");
        memset(&ro, 0, sizeof ro);
        ro.lower_bound = "b";
        ro.lower_bound_len = 1;
        ro.upper_bound = "h";
        ro.upper_bound_len = 1;
        EXPECT_SCAN(db, &ro, "b=vb;g=vg;");
        if (pass == 0) CHECK_OK(weir_flush(db));
        if (pass == 1) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    /* Writes after the range delete are visible. */
    CHECK_OK(put_s(db, "d", "new-d"));
    CHECK_OK(add(db, "#x", 1));
    CHECK_OK(weir_delete_range(db, NULL, "#", 1, "#y", 2)); /* also hides merges */
    CHECK_OK(add(db, "#x", 2));
    EXPECT_I64(db, NULL, "#x", 2);
    EXPECT_SCAN(db, NULL, "#x=2;a=va;b=vb;d=new-d;g=vg;h=vh;i=vi;j=vj;");
    /* An empty start covers from the first key. */
    CHECK_OK(weir_delete_range(db, NULL, "", 0, "b", 1));
    EXPECT_SCAN(db, NULL, "b=vb;d=new-d;g=vg;h=vh;i=vi;j=vj;");
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_SCAN(db, NULL, "b=vb;d=new-d;g=vg;h=vh;i=vi;j=vj;");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(range_delete_snapshots_keep_old_data) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_range(db, 'a', 'f'));
    weir_snapshot *s;
    CHECK_OK(weir_snapshot_create(db, &s));
    CHECK_OK(weir_delete_range(db, NULL, "b", 1, "e", 1));
    weir_readopts ro = at(s);
    const char *old = "a=va;b=vb;c=vc;d=vd;e=ve;f=vf;";
    for (int pass = 0; pass < 3; pass++) {
        EXPECT_S(db, s, "c", "vc");
        EXPECT_ABSENT(db, NULL, "c");
        EXPECT_SCAN(db, &ro, old);
        EXPECT_SCAN(db, NULL, "a=va;e=ve;f=vf;");
        if (pass == 0) CHECK_OK(weir_flush(db));
        if (pass == 1) CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    }
    CHECK_EQ_INT(table_entries(db), 6); /* the snapshot needs them all */
    weir_snapshot_release(db, s);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_EQ_INT(table_entries(db), 3);
    EXPECT_SCAN(db, NULL, "a=va;e=ve;f=vf;");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* A range tombstone written to the log but not yet flushed must come back
 * as a tombstone (not as an entry of its start key) when the log is
 * replayed; flushed ones come back from the manifest. */
TEST(range_delete_survives_reopen) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_range(db, 'a', 'h'));
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_delete_range(db, NULL, "b", 1, "d", 1)); /* log only */
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_ABSENT(db, NULL, "b");
    EXPECT_SCAN(db, NULL, "a=va;d=vd;e=ve;f=vf;g=vg;h=vh;");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "a=va;d=vd;e=ve;f=vf;g=vg;h=vh;");
    /* Flushed: the tombstone lives in the manifest. */
    CHECK_OK(weir_delete_range(db, NULL, "f", 1, "h", 1));
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_SCAN(db, NULL, "a=va;d=vd;e=ve;h=vh;");
    /* A memtable holding nothing but a tombstone, across two reopens. */
    CHECK_OK(weir_delete_range(db, NULL, "d", 1, "e", 1));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_SCAN(db, NULL, "a=va;e=ve;h=vh;");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "a=va;e=ve;h=vh;");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(range_delete_compaction_drops_covered) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    char key[32], val[200];
    memset(val, 'y', sizeof val);
    for (int i = 0; i < 3000; i++) {
        int kl = snprintf(key, sizeof key, "r%05d", i);
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, val, sizeof val));
    }
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    uint64_t before = prop_u64(db, "weir.total-sst-bytes");
    weir_snapshot *s;
    CHECK_OK(weir_snapshot_create(db, &s));
    CHECK_OK(weir_delete_range(db, NULL, "r00100", 6, "r02900", 6));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    /* The snapshot still needs the data. */
    CHECK(prop_u64(db, "weir.total-sst-bytes") >= before);
    weir_readopts ro = at(s);
    char got[256];
    size_t gl;
    CHECK_OK(weir_get(db, &ro, "r01000", 6, got, sizeof got, &gl));
    CHECK(gl == sizeof val && memcmp(got, val, gl) == 0);
    EXPECT_ABSENT(db, NULL, "r01000");
    weir_snapshot_release(db, s);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    uint64_t after = prop_u64(db, "weir.total-sst-bytes");
    CHECK(after < before / 5);
    CHECK_EQ_INT(table_entries(db), 200);
    int n = 0;
    weir_iter *it;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
    weir_iter_destroy(it);
    CHECK_EQ_INT(n, 200);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(range_delete_arguments) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_range(db, 'a', 'c'));
    uint64_t seq = prop_u64(db, "weir.last-sequence");
    CHECK_STATUS(weir_delete_range(db, NULL, "c", 1, "a", 1), WEIR_INVALID);
    CHECK_STATUS(weir_delete_range(db, NULL, "ab", 2, "a", 1), WEIR_INVALID);
    CHECK_STATUS(weir_delete_range(db, NULL, NULL, 1, "a", 1), WEIR_INVALID);
    CHECK_STATUS(weir_delete_range(NULL, NULL, "a", 1, "b", 1), WEIR_INVALID);
    CHECK_OK(weir_delete_range(db, NULL, "b", 1, "b", 1)); /* empty: nothing */
    CHECK_OK(weir_delete_range(db, NULL, "", 0, "", 0));
    CHECK_EQ_INT(prop_u64(db, "weir.last-sequence"), seq);
    EXPECT_SCAN(db, NULL, "a=va;b=vb;c=vc;");
    weir_batch *b = weir_batch_create();
    CHECK_STATUS(weir_batch_delete_range(b, "c", 1, "a", 1), WEIR_INVALID);
    CHECK_OK(weir_batch_delete_range(b, "b", 1, "b", 1));
    CHECK_EQ_INT(weir_batch_count(b), 0);
    CHECK_STATUS(weir_batch_delete_range(NULL, "a", 1, "b", 1), WEIR_INVALID);
    weir_batch_destroy(b);
    /* "a\0" is the successor of "a": [a, a\0) deletes exactly "a". */
    CHECK_OK(weir_delete_range(db, NULL, "a", 1, "a\0", 2));
    EXPECT_SCAN(db, NULL, "b=vb;c=vc;");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(range_delete_in_batch_order_matters) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_range(db, 'a', 'e'));
    weir_batch *b = weir_batch_create();
    CHECK_OK(weir_batch_put(b, "b", 1, "before", 6)); /* deleted by the range below */
    CHECK_OK(weir_batch_delete_range(b, "a", 1, "d", 1));
    CHECK_OK(weir_batch_put(b, "c", 1, "after", 5)); /* survives */
    CHECK_OK(weir_batch_merge(b, "#n", 2, WEIR_MERGE_INT64_ADD, "\x01\0\0\0\0\0\0\0", 8));
    CHECK_EQ_INT(weir_batch_count(b), 4);
    CHECK_OK(weir_write(db, NULL, b));
    weir_batch_destroy(b);
    const char *want = "#n=1;c=after;d=vd;e=ve;";
    EXPECT_SCAN(db, NULL, want);
    CHECK_OK(weir_flush(db));
    EXPECT_SCAN(db, NULL, want);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_SCAN(db, NULL, want);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, want);
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Same as above but the batch only reaches the log before a reopen. */
TEST(range_delete_in_batch_replayed) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_OK(put_range(db, 'a', 'e'));
    CHECK_OK(weir_flush(db));
    weir_batch *b = weir_batch_create();
    CHECK_OK(weir_batch_put(b, "b", 1, "before", 6));
    CHECK_OK(weir_batch_delete_range(b, "a", 1, "d", 1));
    CHECK_OK(weir_batch_put(b, "c", 1, "after", 5));
    CHECK_OK(weir_write(db, NULL, b));
    weir_batch_destroy(b);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    EXPECT_SCAN(db, NULL, "c=after;d=vd;e=ve;");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "c=after;d=vd;e=ve;");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

TEST(range_delete_million_keys_one_write) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = weir_options_create();
    CHECK_OK(weir_options_set_sync_mode(o, WEIR_SYNC_NONE));
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    const int n = 1000000;
    weir_batch *b = weir_batch_create();
    char key[16];
    for (int i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "m%07d", i);
        CHECK_OK(weir_batch_put(b, key, (size_t)kl, "v", 1));
        if (weir_batch_count(b) == 10000) {
            CHECK_OK(weir_write(db, NULL, b));
            weir_batch_clear(b);
        }
    }
    weir_batch_destroy(b);
    CHECK_OK(put_s(db, "a-before", "x"));
    CHECK_OK(put_s(db, "z-after", "x"));
    uint64_t writes = counter(db, "writes");
    CHECK_OK(weir_delete_range(db, NULL, "m", 1, "n", 1));
    CHECK_EQ_INT(counter(db, "writes"), writes + 1);
    EXPECT_SCAN(db, NULL, "a-before=x;z-after=x;");
    EXPECT_ABSENT(db, NULL, "m0500000");
    CHECK_OK(weir_delete_range(db, NULL, "a", 1, "zz", 2));
    EXPECT_SCAN(db, NULL, "");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "");
    CHECK_EQ_INT(table_entries(db), 0);
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

/* Range tombstones in the version (they are not in any table). */
static int live_tombstones(weir_db *db) {
    pthread_mutex_lock(&db->mu);
    const tomb_set *t = db->vs->current->tombs;
    int n = t ? t->n : 0;
    pthread_mutex_unlock(&db->mu);
    return n;
}

/* Tombstones every read has to check must not pile up once nothing is
 * left for them to delete; while a snapshot or an unrewritten table may
 * still need one, it stays. */
TEST(range_delete_tombstones_dropped_when_unneeded) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_db *db;
    CHECK_OK(weir_open(dir, NULL, &db));
    char key[32], end[32];
    for (int i = 0; i < 2000; i++) {
        int kl = snprintf(key, sizeof key, "t%05d", i);
        CHECK_OK(weir_put(db, NULL, key, (size_t)kl, "v", 1));
    }
    CHECK_OK(put_s(db, "zzz", "outside"));
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    weir_snapshot *s;
    CHECK_OK(weir_snapshot_create(db, &s));
    for (int i = 0; i < 2000; i += 20) {
        snprintf(key, sizeof key, "t%05d", i);
        snprintf(end, sizeof end, "t%05d", i + 10);
        CHECK_OK(weir_delete_range(db, NULL, key, strlen(key), end, strlen(end)));
    }
    CHECK_OK(weir_flush(db));
    CHECK_EQ_INT(live_tombstones(db), 100);
    /* While the snapshot that still reads what they delete lives,
     * compactions keep them. */
    CHECK_OK(put_s(db, "zzz", "again"));
    CHECK_OK(weir_compact_range(db, "zzz", 3, "zzz", 3));
    CHECK_EQ_INT(live_tombstones(db), 100);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_EQ_INT(live_tombstones(db), 100);
    EXPECT_S(db, s, "t00005", "v");
    weir_snapshot_release(db, s);
    /* Reopened, tables read from the manifest are not known to be clean. */
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_EQ_INT(live_tombstones(db), 100);
    EXPECT_ABSENT(db, NULL, "t00005");
    EXPECT_S(db, NULL, "t00015", "v");
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_EQ_INT(live_tombstones(db), 0);
    EXPECT_ABSENT(db, NULL, "t00005");
    EXPECT_S(db, NULL, "t00015", "v");
    CHECK_EQ_INT(table_entries(db), 1001);
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, NULL, &db));
    CHECK_EQ_INT(live_tombstones(db), 0);
    EXPECT_ABSENT(db, NULL, "t00005");
    int n = 0;
    weir_iter *it;
    CHECK_OK(weir_iter_create(db, NULL, &it));
    for (weir_iter_seek_first(it); weir_iter_valid(it); weir_iter_next(it)) n++;
    weir_iter_destroy(it);
    CHECK_EQ_INT(n, 1001);
    /* A tombstone over a range holding nothing goes with the next
     * compaction that rewrites anything. */
    CHECK_OK(weir_delete_range(db, NULL, "a", 1, "b", 1));
    CHECK_OK(put_s(db, "t00015", "w"));
    CHECK_OK(weir_flush(db));
    CHECK_EQ_INT(live_tombstones(db), 1);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    CHECK_EQ_INT(live_tombstones(db), 0);
    EXPECT_S(db, NULL, "t00015", "w");
    CHECK_OK(weir_close(db));
    test_rmtree(dir);
}

/* Range deletes, TTLs and merges over the same keys. */
TEST(range_delete_with_ttl_and_merges) {
    char dir[256];
    test_tmpdir(dir, sizeof dir, "mtr");
    weir_options *o = opts_with_clock();
    weir_db *db;
    CHECK_OK(weir_open(dir, o, &db));
    CHECK_OK(weir_put_ttl(db, NULL, "t", 1, "T", 1, 1000));
    CHECK_OK(add(db, "#m", 5));
    CHECK_OK(weir_flush(db));
    CHECK_OK(weir_delete_range(db, NULL, "#", 1, "u", 1));
    EXPECT_ABSENT(db, NULL, "t");
    EXPECT_ABSENT(db, NULL, "#m");
    CHECK_OK(weir_put_ttl(db, NULL, "t", 1, "T2", 2, 1000));
    CHECK_OK(add(db, "#m", 7));
    EXPECT_S(db, NULL, "t", "T2");
    EXPECT_I64(db, NULL, "#m", 7);
    CHECK_OK(weir_compact_range(db, NULL, 0, NULL, 0));
    EXPECT_SCAN(db, NULL, "#m=7;t=T2;");
    advance(1000);
    EXPECT_SCAN(db, NULL, "#m=7;");
    CHECK_OK(weir_close(db));
    CHECK_OK(weir_open(dir, o, &db));
    EXPECT_SCAN(db, NULL, "#m=7;");
    CHECK_OK(weir_close(db));
    weir_options_destroy(o);
    test_rmtree(dir);
}

static const test_case tests[] = {
    TEST_ENTRY(merge_int64_add_thousand),
    TEST_ENTRY(merge_int64_add_wraps_and_max_min),
    TEST_ENTRY(merge_float64_ops),
    TEST_ENTRY(merge_bytes_max_min),
    TEST_ENTRY(merge_list_append_bounded),
    TEST_ENTRY(merge_list_mixed_bounds_survive_compaction),
    TEST_ENTRY(merge_float_add_not_reassociated_by_compaction),
    TEST_ENTRY(merge_bases_deletes_flush_reopen),
    TEST_ENTRY(merge_compaction_folds_operands),
    TEST_ENTRY(merge_partial_then_full_fold),
    TEST_ENTRY(merge_iterators_show_folded_values),
    TEST_ENTRY(merge_snapshots_see_older_sums),
    TEST_ENTRY(merge_type_mismatch_reported_on_read),
    TEST_ENTRY(merge_bad_operands_refused_at_write),
    TEST_ENTRY(merge_user_operator),
    TEST_ENTRY(merge_unregistered_user_operator_refused),
    TEST_ENTRY(merge_bad_batch_fails_alone_in_a_group),
    TEST_ENTRY(merge_concurrent_adds),
    TEST_ENTRY(ttl_visible_then_gone),
    TEST_ENTRY(ttl_expired_hides_older_value),
    TEST_ENTRY(ttl_default_and_batches),
    TEST_ENTRY(ttl_survives_reopen_with_absolute_expiry),
    TEST_ENTRY(ttl_compaction_drops_expired),
    TEST_ENTRY(ttl_expired_over_snapshot_value),
    TEST_ENTRY(ttl_merge_onto_expiring_value),
    TEST_ENTRY(range_delete_hides_keys),
    TEST_ENTRY(range_delete_snapshots_keep_old_data),
    TEST_ENTRY(range_delete_survives_reopen),
    TEST_ENTRY(range_delete_compaction_drops_covered),
    TEST_ENTRY(range_delete_arguments),
    TEST_ENTRY(range_delete_in_batch_order_matters),
    TEST_ENTRY(range_delete_in_batch_replayed),
    TEST_ENTRY(range_delete_million_keys_one_write),
    TEST_ENTRY(range_delete_tombstones_dropped_when_unneeded),
    TEST_ENTRY(range_delete_with_ttl_and_merges),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
