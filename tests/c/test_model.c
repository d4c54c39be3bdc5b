/*
 * test_model.c -- randomized model test: a long random sequence of writes,
 * reads, iterations, snapshots, flushes, compactions and reopens runs
 * against weir and against a trivially correct in-memory model, and every
 * read is compared.
 *
 * The key universe is fixed up front (about 20k variable-length keys with
 * shared prefixes, sorted), so the model is just one value slot per key
 * plus its expiry time; a snapshot's model is a copy of the slot arrays
 * with reference-counted values.
 *
 * Besides puts, deletes and batches the run makes range deletions (the
 * model clears the slots in the range), int64-add merges on a fixed set of
 * counter keys, and puts with a time-to-live on a clock the test advances
 * now and then (a slot whose expiry has passed reads as absent, in
 * snapshots too). Merges only target keys whose value is 8 bytes, or that
 * have none; a slot keeps the value they were merged onto (its base, which
 * may expire) and the sum of the operands since, and reads as base + sum
 * while the base lives and as the sum alone once it has expired.
 *
 * Environment:
 *   WEIR_MODEL_OPS  number of operations (default 1,000,000; 200,000 when
 *                   built with AddressSanitizer, which is ~5x slower)
 *   WEIR_TEST_SEED  replay a run (the seed is printed at the start)
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define MODEL_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MODEL_UNDER_ASAN 1
#endif
#endif
#ifndef MODEL_UNDER_ASAN
#define MODEL_UNDER_ASAN 0
#endif

#define DEFAULT_OPS 1000000
#define DEFAULT_OPS_ASAN 200000
#define TARGET_KEYS 20000
#define MAX_KEY_LEN 24
#define MAX_SNAPSHOTS 4

/* ---- values: immutable, reference counted ---------------------------------- */

typedef struct blob {
    int refs;
    uint32_t len;
    unsigned char data[];
} blob;

static blob *blob_new(test_rng *r, uint64_t op, size_t ki, uint32_t len) {
    blob *b = malloc(sizeof(blob) + len + 1);
    if (!b) abort();
    b->refs = 1;
    b->len = len;
    test_rng vr;
    test_rng_seed(&vr, test_rng_next(r) ^ op ^ ((uint64_t)ki << 32));
    char head[48];
    int hl = snprintf(head, sizeof head, "op%" PRIu64 "/k%zu|", op, ki);
    for (uint32_t i = 0; i < len; i++)
        b->data[i] = i < (uint32_t)hl ? (unsigned char)head[i] : (unsigned char)test_rng_next(&vr);
    return b;
}

static blob *blob_ref(blob *b) {
    if (b) b->refs++;
    return b;
}

static void blob_unref(blob *b) {
    if (b && --b->refs == 0) free(b);
}

/* A counter's value: the 8-byte little-endian int64. */
static blob *blob_i64(uint64_t x) {
    blob *b = malloc(sizeof(blob) + 8);
    if (!b) abort();
    b->refs = 1;
    b->len = 8;
    for (int i = 0; i < 8; i++) b->data[i] = (unsigned char)(x >> (8 * i));
    return b;
}

static uint64_t blob_u64(const blob *b) {
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | b->data[i];
    return x;
}

/* ---- the clock TTLs expire by --------------------------------------------- */

/* Milliseconds; only the test moves it. Background compactions read it. */
static _Atomic uint64_t g_now;

static uint64_t model_clock(void *arg) {
    (void)arg;
    return atomic_load(&g_now);
}

/* A model: per universe key a value slot, its expiry (0: none), and
 * whether int64 adds were merged onto it since it was written, with their
 * sum. */
typedef struct mstate {
    blob **vals;
    uint64_t *exps;
    unsigned char *has_ops;
    uint64_t *opsum;
} mstate;

static int alive(const blob *v, uint64_t exp) {
    return v && (exp == 0 || exp > atomic_load(&g_now));
}

/* Scratch values for seen() (allocated for the run). */
#define SCRATCH 8
static blob *g_scratch[SCRATCH];

/* The value a read of slot i sees now, or NULL: expired values read as
 * absent (also through snapshots: expiry is wall time), merged operands
 * fold onto the value while it lives. The result may be a scratch blob,
 * valid for the next few calls. */
static const blob *seen(const mstate *m, size_t i) {
    const blob *v = alive(m->vals[i], m->exps[i]) ? m->vals[i] : NULL;
    if (!m->has_ops[i]) return v;
    static unsigned next;
    blob *out = g_scratch[next++ % SCRATCH];
    uint64_t x = (v ? blob_u64(v) : 0) + m->opsum[i];
    for (int k = 0; k < 8; k++) out->data[k] = (unsigned char)(x >> (8 * k));
    return out;
}

/* ---- key universe ----------------------------------------------------------- */

typedef struct mkey {
    uint8_t len;
    unsigned char b[MAX_KEY_LEN];
} mkey;

static mkey *g_keys;
static size_t g_nkeys;

static int key_cmp(const void *a, size_t al, const void *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static int mkey_qsort_cmp(const void *a, const void *b) {
    const mkey *x = a, *y = b;
    return key_cmp(x->b, x->len, y->b, y->len);
}

/* Bytes keys are built from: a few letters plus the edge bytes 0x00, 0xff. */
static const unsigned char key_alphabet[] = {'a', 'b', 'c', 'k', 'x', 'y', 0x00, 0xff, '0', '1'};

static void random_key(test_rng *r, mkey *out, unsigned char stems[][MAX_KEY_LEN],
                       const uint8_t *stem_len, int nstems) {
    int s = (int)test_rng_uniform(r, (uint64_t)nstems);
    int len = 1 + (int)test_rng_uniform(r, MAX_KEY_LEN);
    if (test_rng_uniform(r, 3) == 0) len = 1 + (int)test_rng_uniform(r, 6); /* many short */
    int sl = stem_len[s] < len ? stem_len[s] : len;
    memcpy(out->b, stems[s], (size_t)sl);
    for (int i = sl; i < len; i++)
        out->b[i] = key_alphabet[test_rng_uniform(r, sizeof key_alphabet)];
    out->len = (uint8_t)len;
}

static void build_universe(test_rng *r) {
    enum { NSTEMS = 48 };
    unsigned char stems[NSTEMS][MAX_KEY_LEN];
    uint8_t stem_len[NSTEMS];
    for (int s = 0; s < NSTEMS; s++) {
        stem_len[s] = (uint8_t)test_rng_uniform(r, 13);
        for (int i = 0; i < stem_len[s]; i++)
            stems[s][i] = key_alphabet[test_rng_uniform(r, sizeof key_alphabet)];
    }
    size_t cap = TARGET_KEYS * 2;
    g_keys = malloc(cap * sizeof *g_keys);
    if (!g_keys) abort();
    g_nkeys = 0;
    while (g_nkeys < TARGET_KEYS) {
        size_t want = TARGET_KEYS - g_nkeys;
        for (size_t i = 0; i < want + want / 4 + 16 && g_nkeys < cap; i++)
            random_key(r, &g_keys[g_nkeys++], stems, stem_len, NSTEMS);
        qsort(g_keys, g_nkeys, sizeof *g_keys, mkey_qsort_cmp);
        size_t w = 0;
        for (size_t i = 0; i < g_nkeys; i++)
            if (w == 0 || mkey_qsort_cmp(&g_keys[w - 1], &g_keys[i]) != 0) g_keys[w++] = g_keys[i];
        g_nkeys = w;
        if (g_nkeys > TARGET_KEYS) g_nkeys = TARGET_KEYS; /* (drops the largest few) */
    }
}

/* First index with key >= (k, kl). */
static size_t lower_idx(const void *k, size_t kl) {
    size_t lo = 0, hi = g_nkeys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(g_keys[mid].b, g_keys[mid].len, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index with key > (k, kl). */
static size_t upper_idx(const void *k, size_t kl) {
    size_t lo = 0, hi = g_nkeys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(g_keys[mid].b, g_keys[mid].len, k, kl) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int has_prefix(const mkey *k, const unsigned char *p, size_t pl) {
    return k->len >= pl && (pl == 0 || memcmp(k->b, p, pl) == 0);
}

/* ---- the run's state -------------------------------------------------------- */

typedef struct live_snap {
    weir_snapshot *snap;
    mstate m; /* the model at the moment it was taken */
    uint64_t taken_at;
} live_snap;

typedef struct run {
    uint64_t seed;
    test_rng r;
    char dir[512];
    weir_options *opts;
    weir_db *db;
    blob **cur; /* the model: one slot per universe key, NULL = absent */
    uint64_t *exp; /* expiry of each slot's value (0: none) */
    unsigned char *has_ops; /* adds merged onto the slot's value since */
    uint64_t *opsum;        /* and their sum */
    mstate now;    /* {cur, exp, has_ops, opsum} */
    live_snap snaps[MAX_SNAPSHOTS];
    int nsnaps;
    uint64_t op; /* index of the operation running */
    const char *opname;
    int failed;
    uint64_t n_flush, n_compact, n_reopen, n_scan, n_snap, n_iter, n_get, n_write;
    uint64_t n_merge, n_merge_ttl_base, n_range_del, n_ttl, n_expired_reads;
    uint64_t e_flushes, e_compactions, e_moves; /* engine counters, summed over opens */
} run;

static void print_key(const char *label, const void *k, size_t kl) {
    const unsigned char *p = k;
    fprintf(stderr, "  %s (%zu bytes): \"", label, kl);
    for (size_t i = 0; i < kl && i < 64; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            fputc(p[i], stderr);
        else
            fprintf(stderr, "\\x%02x", p[i]);
    }
    fprintf(stderr, "%s\"\n", kl > 64 ? "..." : "");
}

/* Report the first mismatch with everything needed to replay it. */
static void mismatch(run *R, const char *what, const void *key, size_t kl, const blob *want,
                     int got_status, const void *got, size_t gotlen) {
    if (R->failed) return;
    R->failed = 1;
    fprintf(stderr,
            "\nMODEL MISMATCH at op %" PRIu64 " (%s): %s\n"
            "  seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64 " WEIR_MODEL_OPS=%" PRIu64
            ")\n",
            R->op, R->opname, what, R->seed, R->seed, R->op + 1);
    if (key) print_key("key     ", key, kl);
    if (want)
        print_key("expected", want->data, want->len);
    else
        fprintf(stderr, "  expected: absent\n");
    fprintf(stderr, "  got status %s", weir_status_name(got_status));
    if (got_status != WEIR_OK && got_status != WEIR_NOT_FOUND)
        fprintf(stderr, " (%s)", weir_errmsg());
    fprintf(stderr, "\n");
    if (got) print_key("got     ", got, gotlen);
}

static void fail_status(run *R, const char *call, int rc) {
    if (R->failed) return;
    R->failed = 1;
    fprintf(stderr,
            "\nop %" PRIu64 " (%s): %s returned %s: %s\n  seed=%" PRIu64
            " (replay with WEIR_TEST_SEED=%" PRIu64 ")\n",
            R->op, R->opname, call, weir_status_name(rc), weir_errmsg(), R->seed, R->seed);
}

/* A key to read or seek: mostly from the universe, sometimes arbitrary. */
static void pick_probe(run *R, unsigned char *buf, size_t *len) {
    uint64_t x = test_rng_uniform(&R->r, 10);
    if (x < 7) {
        const mkey *k = &g_keys[test_rng_uniform(&R->r, g_nkeys)];
        memcpy(buf, k->b, k->len);
        *len = k->len;
        if (x == 6 && *len > 1) (*len)--; /* a prefix of a real key */
    } else if (x < 9) {
        *len = (size_t)test_rng_uniform(&R->r, MAX_KEY_LEN + 1);
        for (size_t i = 0; i < *len; i++)
            buf[i] = key_alphabet[test_rng_uniform(&R->r, sizeof key_alphabet)];
    } else {
        *len = (size_t)test_rng_uniform(&R->r, 4);
        memset(buf, test_rng_uniform(&R->r, 2) ? 0xff : 0x00, *len);
    }
}

static uint32_t pick_value_len(run *R) {
    if (test_rng_uniform(&R->r, 200) == 0) return 5000 + (uint32_t)test_rng_uniform(&R->r, 45001);
    return (uint32_t)test_rng_uniform(&R->r, 201);
}

/* ---- model views for iteration ---------------------------------------------- */

typedef struct view {
    const mstate *m;
    size_t rb, re; /* visible index range [rb, re) */
} view;

static long view_next(const view *v, long i) {
    if (i < (long)v->rb) i = (long)v->rb;
    for (; i < (long)v->re; i++)
        if (seen(v->m, (size_t)i)) return i;
    return -1;
}

static long view_prev(const view *v, long i) {
    if (i >= (long)v->re) i = (long)v->re - 1;
    for (; i >= (long)v->rb; i--)
        if (seen(v->m, (size_t)i)) return i;
    return -1;
}

/* Compare the iterator's position with model index `want` (-1 = invalid). */
static void check_pos(run *R, weir_iter *it, const view *v, long want, const char *step) {
    if (R->failed) return;
    int valid = weir_iter_valid(it);
    if (want < 0) {
        if (valid) {
            size_t kl;
            const void *k = weir_iter_key(it, &kl);
            char what[128];
            snprintf(what, sizeof what, "iterator (%s) valid, model says no entry", step);
            mismatch(R, what, k, kl, NULL, WEIR_OK, NULL, 0);
        } else {
            int st = weir_iter_status(it);
            if (st != WEIR_OK) fail_status(R, "weir_iter_status", st);
        }
        return;
    }
    const mkey *mk = &g_keys[want];
    if (!valid) {
        char what[128];
        snprintf(what, sizeof what, "iterator (%s) invalid, model has an entry", step);
        mismatch(R, what, mk->b, mk->len, seen(v->m, (size_t)want), weir_iter_status(it), NULL, 0);
        return;
    }
    size_t kl = 0, vl = 0;
    const void *k = weir_iter_key(it, &kl);
    if (key_cmp(k, kl, mk->b, mk->len) != 0) {
        char what[160];
        snprintf(what, sizeof what, "iterator (%s) at wrong key; expected key shown as value",
                 step);
        blob *tmp = malloc(sizeof(blob) + mk->len);
        if (!tmp) abort();
        tmp->refs = 1;
        tmp->len = mk->len;
        memcpy(tmp->data, mk->b, mk->len);
        mismatch(R, what, k, kl, tmp, WEIR_OK, k, kl);
        free(tmp);
        return;
    }
    const void *val = weir_iter_value(it, &vl);
    const blob *b = seen(v->m, (size_t)want);
    if (vl != b->len || (vl && memcmp(val, b->data, vl) != 0)) {
        char what[128];
        snprintf(what, sizeof what, "iterator (%s) value differs", step);
        mismatch(R, what, k, kl, b, WEIR_OK, val, vl);
    }
}

/* Random seeks and a few steps in random directions. */
static void iterate_random(run *R, const mstate *vals, const weir_snapshot *snap, int bounded,
                           int backward_start) {
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.snapshot = snap;
    view v = {vals, 0, g_nkeys};
    unsigned char lo[MAX_KEY_LEN + 1], hi[MAX_KEY_LEN + 1], pfx[MAX_KEY_LEN + 1];
    size_t lol = 0, hil = 0, pfl = 0;
    if (bounded) {
        int kind = (int)test_rng_uniform(&R->r, 4); /* 0 lower, 1 upper, 2 both, 3 prefix */
        if (kind == 0 || kind == 2) {
            pick_probe(R, lo, &lol);
            ro.lower_bound = lo;
            ro.lower_bound_len = lol;
            v.rb = lower_idx(lo, lol);
        }
        if (kind == 1 || kind == 2) {
            pick_probe(R, hi, &hil);
            ro.upper_bound = hi;
            ro.upper_bound_len = hil;
            v.re = lower_idx(hi, hil);
        }
        if (kind == 3) {
            const mkey *k = &g_keys[test_rng_uniform(&R->r, g_nkeys)];
            pfl = 1 + (size_t)test_rng_uniform(&R->r, k->len < 4 ? k->len : 4);
            memcpy(pfx, k->b, pfl);
            ro.prefix = pfx;
            ro.prefix_len = pfl;
            size_t s = lower_idx(pfx, pfl), e = s, hi_i = g_nkeys;
            while (e < hi_i) { /* keys with the prefix are contiguous from s */
                size_t mid = e + (hi_i - e) / 2;
                if (has_prefix(&g_keys[mid], pfx, pfl))
                    e = mid + 1;
                else
                    hi_i = mid;
            }
            v.rb = s;
            v.re = e;
        }
        if (v.re < v.rb) v.re = v.rb;
    }
    weir_iter *it = NULL;
    int rc = weir_iter_create(R->db, &ro, &it);
    if (rc != WEIR_OK) {
        fail_status(R, "weir_iter_create", rc);
        return;
    }
    R->n_iter++;
    long pos;
    unsigned char t[MAX_KEY_LEN + 1];
    size_t tl;
    int how = (int)test_rng_uniform(&R->r, 10);
    if (how == 0) {
        weir_iter_seek_first(it);
        pos = view_next(&v, 0);
        check_pos(R, it, &v, pos, "seek_first");
    } else if (how == 1) {
        weir_iter_seek_last(it);
        pos = view_prev(&v, (long)g_nkeys - 1);
        check_pos(R, it, &v, pos, "seek_last");
    } else if (backward_start) {
        pick_probe(R, t, &tl);
        weir_iter_seek_for_prev(it, t, tl);
        pos = view_prev(&v, (long)upper_idx(t, tl) - 1);
        check_pos(R, it, &v, pos, "seek_for_prev");
    } else {
        pick_probe(R, t, &tl);
        weir_iter_seek(it, t, tl);
        pos = view_next(&v, (long)lower_idx(t, tl));
        check_pos(R, it, &v, pos, "seek");
    }
    int steps = 1 + (int)test_rng_uniform(&R->r, bounded ? 40 : 20);
    for (int s = 0; s < steps && pos >= 0 && !R->failed; s++) {
        /* Mostly keep the starting direction, sometimes switch. */
        int fwd = backward_start ? test_rng_uniform(&R->r, 5) == 0 : test_rng_uniform(&R->r, 5) != 0;
        if (fwd) {
            weir_iter_next(it);
            pos = view_next(&v, pos + 1);
            check_pos(R, it, &v, pos, "next");
        } else {
            weir_iter_prev(it);
            pos = view_prev(&v, pos - 1);
            check_pos(R, it, &v, pos, "prev");
        }
    }
    weir_iter_destroy(it);
}

/* Walk the whole store both ways through a snapshot (or the latest). */
static void full_scan(run *R, const mstate *vals, const weir_snapshot *snap) {
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.snapshot = snap;
    weir_iter *it = NULL;
    int rc = weir_iter_create(R->db, &ro, &it);
    if (rc != WEIR_OK) {
        fail_status(R, "weir_iter_create", rc);
        return;
    }
    view v = {vals, 0, g_nkeys};
    R->n_scan++;
    weir_iter_seek_first(it);
    long pos = view_next(&v, 0);
    check_pos(R, it, &v, pos, "scan seek_first");
    while (pos >= 0 && !R->failed) {
        weir_iter_next(it);
        pos = view_next(&v, pos + 1);
        check_pos(R, it, &v, pos, "scan next");
    }
    weir_iter_seek_last(it);
    pos = view_prev(&v, (long)g_nkeys - 1);
    check_pos(R, it, &v, pos, "scan seek_last");
    while (pos >= 0 && !R->failed) {
        weir_iter_prev(it);
        pos = view_prev(&v, pos - 1);
        check_pos(R, it, &v, pos, "scan prev");
    }
    weir_iter_destroy(it);
}

/* One point read of a random probe, checked against vals. */
static void get_random(run *R, const mstate *vals, const weir_snapshot *snap) {
    unsigned char k[MAX_KEY_LEN + 1];
    size_t kl;
    pick_probe(R, k, &kl);
    size_t i = lower_idx(k, kl);
    const blob *want = NULL;
    if (i < g_nkeys && key_cmp(g_keys[i].b, g_keys[i].len, k, kl) == 0) {
        want = seen(vals, i);
        if (!want && vals->vals[i]) R->n_expired_reads++;
    }
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.snapshot = snap;
    R->n_get++;
    if (test_rng_uniform(&R->r, 2) == 0) {
        unsigned char buf[256];
        size_t cap = test_rng_uniform(&R->r, 8) == 0 ? (size_t)test_rng_uniform(&R->r, 8) : sizeof buf;
        size_t vl = 0;
        int rc = weir_get(R->db, &ro, k, kl, buf, cap, &vl);
        if (want == NULL) {
            if (rc != WEIR_NOT_FOUND) mismatch(R, "weir_get", k, kl, NULL, rc, rc == WEIR_OK ? buf : NULL, vl);
            return;
        }
        if (want->len > cap) {
            if (rc != WEIR_BUFFER_TOO_SMALL || vl != want->len ||
                (cap && memcmp(buf, want->data, cap) != 0))
                mismatch(R, "weir_get (short buffer)", k, kl, want, rc, buf, vl < cap ? vl : cap);
            return;
        }
        if (rc != WEIR_OK || vl != want->len || (vl && memcmp(buf, want->data, vl) != 0))
            mismatch(R, "weir_get", k, kl, want, rc, rc == WEIR_OK ? buf : NULL, vl);
        return;
    }
    void *v = NULL;
    size_t vl = 0;
    int rc = weir_get_alloc(R->db, &ro, k, kl, &v, &vl);
    if (want == NULL) {
        if (rc != WEIR_NOT_FOUND) mismatch(R, "weir_get_alloc", k, kl, NULL, rc, rc == WEIR_OK ? v : NULL, vl);
    } else if (rc != WEIR_OK || v == NULL || vl != want->len ||
               (vl && memcmp(v, want->data, vl) != 0)) {
        mismatch(R, "weir_get_alloc", k, kl, want, rc, rc == WEIR_OK ? v : NULL, vl);
    }
    if (rc == WEIR_OK) weir_free(v);
}

static void multi_get_random(run *R, const mstate *vals, const weir_snapshot *snap) {
    enum { MAXN = 16 };
    unsigned char kb[MAXN][MAX_KEY_LEN + 1];
    const void *keys[MAXN];
    size_t klens[MAXN], vlens[MAXN];
    void *out[MAXN];
    int st[MAXN];
    size_t n = 1 + (size_t)test_rng_uniform(&R->r, MAXN);
    for (size_t i = 0; i < n; i++) {
        pick_probe(R, kb[i], &klens[i]);
        keys[i] = kb[i];
        out[i] = NULL;
        st[i] = -1;
    }
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.snapshot = snap;
    int rc = weir_multi_get(R->db, &ro, n, keys, klens, out, vlens, st);
    if (rc != WEIR_OK) {
        fail_status(R, "weir_multi_get", rc);
    } else {
        for (size_t i = 0; i < n && !R->failed; i++) {
            size_t j = lower_idx(kb[i], klens[i]);
            const blob *want = NULL;
            if (j < g_nkeys && key_cmp(g_keys[j].b, g_keys[j].len, kb[i], klens[i]) == 0)
                want = seen(vals, j);
            if (want == NULL) {
                if (st[i] != WEIR_NOT_FOUND || out[i] != NULL)
                    mismatch(R, "weir_multi_get", kb[i], klens[i], NULL, st[i], out[i], vlens[i]);
            } else if (st[i] != WEIR_OK || out[i] == NULL || vlens[i] != want->len ||
                       (want->len && memcmp(out[i], want->data, want->len) != 0)) {
                mismatch(R, "weir_multi_get", kb[i], klens[i], want, st[i],
                         st[i] == WEIR_OK ? out[i] : NULL, vlens[i]);
            }
        }
    }
    for (size_t i = 0; i < n; i++) weir_free(out[i]);
}

/* ---- writes ------------------------------------------------------------------- */

/* WEIR_MODEL_TRACE=<hex key>: print every write of that key with the op
 * index and the sequence number before it, to follow a failing key. */
static void trace_write(run *R, size_t i, const char *what) {
    static int init, tracing;
    static unsigned char want[MAX_KEY_LEN + 1];
    static size_t want_len;
    if (!init) {
        init = 1;
        const char *hex = getenv("WEIR_MODEL_TRACE");
        if (hex && *hex) {
            tracing = 1;
            for (; hex[0] && hex[1] && want_len < MAX_KEY_LEN; hex += 2) {
                unsigned v;
                sscanf(hex, "%2x", &v);
                want[want_len++] = (unsigned char)v;
            }
        }
    }
    if (!tracing || g_keys[i].len != want_len || memcmp(g_keys[i].b, want, want_len) != 0) return;
    char *seq = NULL;
    weir_property(R->db, "weir.last-sequence", &seq);
    printf("  trace: op %ld %s (last sequence before: %s)\n", (long)R->op, what, seq ? seq : "?");
    weir_free(seq);
}

/* Set slot i to b (owned) expiring at exp (0: never), with no merges. */
static void model_set(run *R, size_t i, blob *b, uint64_t exp) {
    blob_unref(R->cur[i]);
    R->cur[i] = b;
    R->exp[i] = b ? exp : 0;
    R->has_ops[i] = 0;
    R->opsum[i] = 0;
}

static void do_put(run *R) {
    size_t i = test_rng_uniform(&R->r, g_nkeys);
    blob *b = blob_new(&R->r, R->op, i, pick_value_len(R));
    trace_write(R, i, "put");
    int rc = weir_put(R->db, NULL, g_keys[i].b, g_keys[i].len, b->data, b->len);
    if (rc != WEIR_OK) {
        blob_unref(b);
        fail_status(R, "weir_put", rc);
        return;
    }
    R->n_write++;
    model_set(R, i, b, 0);
}

/* TTLs from 1 ms (gone at the next clock step) to a few seconds. */
static uint64_t pick_ttl(run *R) {
    return test_rng_uniform(&R->r, 4) == 0 ? 1 + test_rng_uniform(&R->r, 20)
                                            : 1 + test_rng_uniform(&R->r, 4000);
}

static void do_put_ttl(run *R) {
    size_t i = test_rng_uniform(&R->r, g_nkeys);
    blob *b = blob_new(&R->r, R->op, i, pick_value_len(R));
    uint64_t ttl = pick_ttl(R);
    trace_write(R, i, "put_ttl");
    int rc = weir_put_ttl(R->db, NULL, g_keys[i].b, g_keys[i].len, b->data, b->len, ttl);
    if (rc != WEIR_OK) {
        blob_unref(b);
        fail_status(R, "weir_put_ttl", rc);
        return;
    }
    R->n_write++;
    R->n_ttl++;
    model_set(R, i, b, atomic_load(&g_now) + ttl);
}

static void do_delete(run *R) {
    size_t i = test_rng_uniform(&R->r, g_nkeys);
    trace_write(R, i, "delete");
    int rc = weir_delete(R->db, NULL, g_keys[i].b, g_keys[i].len);
    if (rc != WEIR_OK) {
        fail_status(R, "weir_delete", rc);
        return;
    }
    R->n_write++;
    model_set(R, i, NULL, 0);
}

/* Counter keys: every 50th key of the universe. */
#define COUNTER_STRIDE 50
static size_t pick_counter(run *R) {
    size_t n = (g_nkeys + COUNTER_STRIDE - 1) / COUNTER_STRIDE;
    return test_rng_uniform(&R->r, n) * COUNTER_STRIDE;
}

static int64_t pick_delta(run *R) {
    uint64_t x = test_rng_uniform(&R->r, 100);
    if (x == 0) return INT64_MAX - (int64_t)test_rng_uniform(&R->r, 3); /* wraps */
    if (x == 1) return INT64_MIN + (int64_t)test_rng_uniform(&R->r, 3);
    return (int64_t)test_rng_uniform(&R->r, 2001) - 1000;
}

/* A slot's state. */
typedef struct slot {
    blob *val; /* a reference (or NULL) */
    uint64_t exp;
    int has_ops;
    uint64_t opsum;
} slot;

/* The slot after an int64 add of delta: 1 and *out if it can take one
 * (its live value, if any, is 8 bytes), else 0. An expired value is gone
 * for good: the adds fold onto nothing from then on. */
static int merge_slot(const slot *in, int64_t delta, slot *out) {
    int live = alive(in->val, in->exp);
    if (live && in->val->len != 8) return 0;
    out->val = live ? blob_ref(in->val) : NULL;
    out->exp = live ? in->exp : 0;
    out->has_ops = 1;
    out->opsum = (in->has_ops ? in->opsum : 0) + (uint64_t)delta;
    return 1;
}

static void model_set_slot(run *R, size_t i, const slot *s) {
    model_set(R, i, s->val, s->exp);
    R->has_ops[i] = (unsigned char)s->has_ops;
    R->opsum[i] = s->opsum;
}

static void do_merge(run *R) {
    size_t i = pick_counter(R);
    const mkey *k = &g_keys[i];
    int64_t delta = pick_delta(R);
    slot in = {R->cur[i], R->exp[i], R->has_ops[i], R->opsum[i]}, out;
    int rc;
    int reset = !merge_slot(&in, delta, &out);
    if (!reset && test_rng_uniform(&R->r, 20) == 0) {
        blob_unref(out.val);
        reset = 1;
    }
    if (reset) {
        /* Holds something else (or now and then anyway): make it a
         * counter again with a put, often one that expires (later adds
         * fold onto it only while it lives). */
        trace_write(R, i, "put (counter reset)");
        /* Long enough to see a few more adds (one per ~10k ops per key). */
        uint64_t ttl = test_rng_uniform(&R->r, 2) == 0 ? 1 + test_rng_uniform(&R->r, 100000) : 0;
        out = (slot){blob_i64((uint64_t)delta), ttl ? atomic_load(&g_now) + ttl : 0, 0, 0};
        rc = ttl ? weir_put_ttl(R->db, NULL, k->b, k->len, out.val->data, 8, ttl)
                 : weir_put(R->db, NULL, k->b, k->len, out.val->data, 8);
    } else {
        trace_write(R, i, "merge");
        rc = weir_add_int64(R->db, NULL, k->b, k->len, delta);
        R->n_merge++;
        if (out.val && out.exp) R->n_merge_ttl_base++;
    }
    if (rc != WEIR_OK) {
        blob_unref(out.val);
        fail_status(R, "weir_add_int64/weir_put", rc);
        return;
    }
    R->n_write++;
    model_set_slot(R, i, &out);
}

/* A range [lo, hi) of universe indexes and its byte bounds: mostly a
 * short run of keys, sometimes between arbitrary probes. */
static void pick_range(run *R, unsigned char *a, size_t *al, unsigned char *b, size_t *bl, size_t *lo,
                       size_t *hi) {
    if (test_rng_uniform(&R->r, 4) != 0) {
        size_t s = test_rng_uniform(&R->r, g_nkeys);
        size_t e = s + 1 + test_rng_uniform(&R->r, 40);
        memcpy(a, g_keys[s].b, g_keys[s].len);
        *al = g_keys[s].len;
        if (e < g_nkeys) {
            memcpy(b, g_keys[e].b, g_keys[e].len);
            *bl = g_keys[e].len;
        } else {
            memset(b, 0xff, MAX_KEY_LEN + 1); /* past every key */
            *bl = MAX_KEY_LEN + 1;
        }
    } else {
        pick_probe(R, a, al);
        pick_probe(R, b, bl);
        if (key_cmp(a, *al, b, *bl) > 0) {
            unsigned char t[MAX_KEY_LEN + 1];
            size_t tl = *al;
            memcpy(t, a, *al);
            memcpy(a, b, *bl);
            *al = *bl;
            memcpy(b, t, tl);
            *bl = tl;
        }
    }
    *lo = lower_idx(a, *al);
    *hi = lower_idx(b, *bl);
}

static void do_delete_range(run *R) {
    unsigned char a[MAX_KEY_LEN + 1], b[MAX_KEY_LEN + 1];
    size_t al, bl, lo, hi;
    pick_range(R, a, &al, b, &bl, &lo, &hi);
    for (size_t i = lo; i < hi; i++) trace_write(R, i, "delete_range");
    int rc = weir_delete_range(R->db, NULL, a, al, b, bl);
    if (rc != WEIR_OK) {
        fail_status(R, "weir_delete_range", rc);
        return;
    }
    R->n_write++;
    R->n_range_del++;
    for (size_t i = lo; i < hi; i++) model_set(R, i, NULL, 0);
}

static void do_advance_clock(run *R) {
    uint64_t x = test_rng_uniform(&R->r, 10);
    atomic_fetch_add(&g_now, x == 0 ? 1 + test_rng_uniform(&R->r, 10000) : 1 + test_rng_uniform(&R->r, 300));
}

/* One op of a batch, applied to the model once the write succeeds. */
enum { BOP_PUT, BOP_DELETE, BOP_PUT_TTL, BOP_MERGE, BOP_RANGE };
typedef struct batch_op {
    int kind;
    size_t idx;         /* BOP_RANGE: [idx, hi) */
    size_t hi;
    slot after;         /* the slot after the op (not for BOP_RANGE) */
} batch_op;

/* Slot i as ops[0..n) of the batch leave it (or the model's, if none
 * touches it); borrowed, not referenced. */
static slot batch_slot(const run *R, const batch_op *ops, int n, size_t i) {
    for (int j = n - 1; j >= 0; j--) {
        if (ops[j].kind == BOP_RANGE && i >= ops[j].idx && i < ops[j].hi) return (slot){NULL, 0, 0, 0};
        if (ops[j].kind != BOP_RANGE && ops[j].idx == i) return ops[j].after;
    }
    return (slot){R->cur[i], R->exp[i], R->has_ops[i], R->opsum[i]};
}

static void do_batch(run *R) {
    enum { MAXOPS = 20 };
    batch_op ops[MAXOPS];
    int n = 1 + (int)test_rng_uniform(&R->r, MAXOPS);
    weir_batch *b = weir_batch_create();
    if (!b) {
        fail_status(R, "weir_batch_create", WEIR_NO_MEMORY);
        return;
    }
    int rc = WEIR_OK;
    size_t counted = 0;
    for (int j = 0; j < n; j++) {
        batch_op *op = &ops[j];
        /* Keys repeat within a batch now and then: the later op must win. */
        op->idx = j > 0 && test_rng_uniform(&R->r, 6) == 0 ? ops[test_rng_uniform(&R->r, (uint64_t)j)].idx
                                                            : test_rng_uniform(&R->r, g_nkeys);
        op->after = (slot){NULL, 0, 0, 0};
        const mkey *k = &g_keys[op->idx];
        uint64_t x = test_rng_uniform(&R->r, 40);
        if (x < 10) {
            op->kind = BOP_DELETE;
            if (rc == WEIR_OK) rc = weir_batch_delete(b, k->b, k->len);
        } else if (x < 13) {
            op->kind = BOP_PUT_TTL;
            uint64_t ttl = pick_ttl(R);
            op->after.val = blob_new(&R->r, R->op, op->idx, pick_value_len(R));
            op->after.exp = atomic_load(&g_now) + ttl;
            if (rc == WEIR_OK)
                rc = weir_batch_put_ttl(b, k->b, k->len, op->after.val->data, op->after.val->len, ttl);
        } else if (x < 16) {
            op->kind = BOP_MERGE;
            op->idx = pick_counter(R);
            k = &g_keys[op->idx];
            int64_t delta = pick_delta(R);
            slot before = batch_slot(R, ops, j, op->idx);
            unsigned char d[8];
            for (int i = 0; i < 8; i++) d[i] = (unsigned char)((uint64_t)delta >> (8 * i));
            if (merge_slot(&before, delta, &op->after)) {
                if (rc == WEIR_OK) rc = weir_batch_merge(b, k->b, k->len, WEIR_MERGE_INT64_ADD, d, 8);
            } else {
                op->kind = BOP_PUT;
                op->after.val = blob_i64((uint64_t)delta);
                if (rc == WEIR_OK) rc = weir_batch_put(b, k->b, k->len, d, 8);
            }
        } else if (x == 16 && test_rng_uniform(&R->r, 4) == 0) {
            op->kind = BOP_RANGE;
            unsigned char lo[MAX_KEY_LEN + 1], hi[MAX_KEY_LEN + 1];
            size_t lol, hil;
            pick_range(R, lo, &lol, hi, &hil, &op->idx, &op->hi);
            if (rc == WEIR_OK) rc = weir_batch_delete_range(b, lo, lol, hi, hil);
            if (key_cmp(lo, lol, hi, hil) == 0) counted++; /* an empty range adds no op */
        } else {
            op->kind = BOP_PUT;
            op->after.val = blob_new(&R->r, R->op, op->idx, pick_value_len(R));
            if (rc == WEIR_OK) rc = weir_batch_put(b, k->b, k->len, op->after.val->data, op->after.val->len);
        }
        if (op->kind == BOP_RANGE) {
            for (size_t i = op->idx; i < op->hi; i++) trace_write(R, i, "delete_range in a batch");
        } else {
            trace_write(R, op->idx, j ? "in a batch (not first op)" : "in a batch (first op)");
        }
    }
    if (rc == WEIR_OK && weir_batch_count(b) + counted != (size_t)n) {
        fprintf(stderr, "weir_batch_count %zu, want %zu\n", weir_batch_count(b), (size_t)n - counted);
        rc = WEIR_INVALID;
    }
    if (rc == WEIR_OK) rc = weir_write(R->db, NULL, b);
    weir_batch_destroy(b);
    if (rc != WEIR_OK) fail_status(R, "weir_batch_*/weir_write", rc);
    for (int j = 0; j < n; j++) {
        batch_op *op = &ops[j];
        if (rc != WEIR_OK) {
            blob_unref(op->after.val);
        } else if (op->kind == BOP_RANGE) {
            for (size_t i = op->idx; i < op->hi; i++) model_set(R, i, NULL, 0);
        } else {
            model_set_slot(R, op->idx, &op->after);
        }
    }
    if (rc == WEIR_OK) R->n_write++;
}

/* ---- snapshots ---------------------------------------------------------------- */

static void snap_release(run *R, int i) {
    weir_snapshot_release(R->db, R->snaps[i].snap);
    for (size_t j = 0; j < g_nkeys; j++) blob_unref(R->snaps[i].m.vals[j]);
    free(R->snaps[i].m.vals);
    free(R->snaps[i].m.exps);
    free(R->snaps[i].m.has_ops);
    free(R->snaps[i].m.opsum);
    R->snaps[i] = R->snaps[--R->nsnaps];
}

static void snap_create(run *R) {
    if (R->nsnaps == MAX_SNAPSHOTS) snap_release(R, (int)test_rng_uniform(&R->r, MAX_SNAPSHOTS));
    live_snap *s = &R->snaps[R->nsnaps];
    int rc = weir_snapshot_create(R->db, &s->snap);
    if (rc != WEIR_OK) {
        fail_status(R, "weir_snapshot_create", rc);
        return;
    }
    s->m.vals = malloc(g_nkeys * sizeof *s->m.vals);
    s->m.exps = malloc(g_nkeys * sizeof *s->m.exps);
    s->m.has_ops = malloc(g_nkeys);
    s->m.opsum = malloc(g_nkeys * sizeof *s->m.opsum);
    if (!s->m.vals || !s->m.exps || !s->m.has_ops || !s->m.opsum) abort();
    for (size_t j = 0; j < g_nkeys; j++) s->m.vals[j] = blob_ref(R->cur[j]);
    memcpy(s->m.exps, R->exp, g_nkeys * sizeof *s->m.exps);
    memcpy(s->m.has_ops, R->has_ops, g_nkeys);
    memcpy(s->m.opsum, R->opsum, g_nkeys * sizeof *s->m.opsum);
    s->taken_at = R->op;
    R->nsnaps++;
    R->n_snap++;
}

static void release_all_snapshots(run *R) {
    while (R->nsnaps) snap_release(R, R->nsnaps - 1);
}

/* ---- maintenance ---------------------------------------------------------------- */

/* Engine counters restart with each open; add them up across reopens. */
static void accumulate_counters(run *R) {
    char *v = NULL;
    if (!R->db || weir_property(R->db, "weir.counters", &v) != WEIR_OK) return;
    for (char *line = strtok(v, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64];
        unsigned long long x;
        if (sscanf(line, "%63s %llu", name, &x) != 2) continue;
        if (strcmp(name, "flushes") == 0) R->e_flushes += x;
        if (strcmp(name, "compactions") == 0) R->e_compactions += x;
        if (strcmp(name, "trivial_moves") == 0) R->e_moves += x;
    }
    weir_free(v);
}

static void do_reopen(run *R) {
    release_all_snapshots(R);
    accumulate_counters(R);
    int rc = weir_close(R->db);
    R->db = NULL;
    if (rc != WEIR_OK) {
        fail_status(R, "weir_close", rc);
        return;
    }
    rc = weir_open(R->dir, R->opts, &R->db);
    if (rc != WEIR_OK) {
        fail_status(R, "weir_open (reopen)", rc);
        return;
    }
    R->n_reopen++;
}

static void do_compact_random(run *R) {
    unsigned char a[MAX_KEY_LEN + 1], b[MAX_KEY_LEN + 1];
    size_t al, bl;
    pick_probe(R, a, &al);
    pick_probe(R, b, &bl);
    if (key_cmp(a, al, b, bl) > 0) {
        unsigned char t[MAX_KEY_LEN + 1];
        size_t tl = al;
        memcpy(t, a, al);
        memcpy(a, b, bl);
        al = bl;
        memcpy(b, t, tl);
        bl = tl;
    }
    int shape = (int)test_rng_uniform(&R->r, 8);
    int rc = weir_compact_range(R->db, shape == 0 ? NULL : a, shape == 0 ? 0 : al,
                                shape == 1 ? NULL : b, shape == 1 ? 0 : bl);
    if (rc != WEIR_OK) fail_status(R, "weir_compact_range", rc);
    R->n_compact++;
}

static void print_engine_counters(weir_db *db) {
    char *v = NULL;
    if (weir_property(db, "weir.counters", &v) == WEIR_OK) {
        printf("  engine counters since the last open (flush/compaction/stall):");
        for (char *line = strtok(v, "\n"); line; line = strtok(NULL, "\n"))
            if (strstr(line, "flush") || strstr(line, "compact") || strstr(line, "stall") ||
                strstr(line, "slowdown") || strstr(line, "move"))
                printf(" [%s]", line);
        printf("\n");
        weir_free(v);
    }
    if (weir_property(db, "weir.level-summary", &v) == WEIR_OK) {
        printf("  level summary:\n%s%s", v, v[0] && v[strlen(v) - 1] != '\n' ? "\n" : "");
        weir_free(v);
    }
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the test ------------------------------------------------------------------- */

TEST(random_ops_match_model) {
    static run R; /* large; zeroed */
    memset(&R, 0, sizeof R);
    R.seed = test_seed_from_env();
    printf("seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64 ")\n", R.seed, R.seed);
    uint64_t nops = MODEL_UNDER_ASAN ? DEFAULT_OPS_ASAN : DEFAULT_OPS;
    const char *env_ops = getenv("WEIR_MODEL_OPS");
    if (env_ops && *env_ops) nops = strtoull(env_ops, NULL, 0);
    test_rng_seed(&R.r, R.seed);
    build_universe(&R.r);
    R.cur = calloc(g_nkeys, sizeof *R.cur);
    R.exp = calloc(g_nkeys, sizeof *R.exp);
    R.has_ops = calloc(g_nkeys, 1);
    R.opsum = calloc(g_nkeys, sizeof *R.opsum);
    CHECK(R.cur != NULL && R.exp != NULL && R.has_ops != NULL && R.opsum != NULL);
    R.now = (mstate){R.cur, R.exp, R.has_ops, R.opsum};
    for (int i = 0; i < SCRATCH; i++) g_scratch[i] = blob_i64(0);
    atomic_store(&g_now, 1700000000000ull); /* any start; TTLs are relative to it */

    /* Small sizes so flushes and compactions happen all the time. Block
     * size and bloom filters vary with the seed. */
    static const size_t block_sizes[] = {256, 1024, 4096};
    size_t block_size = block_sizes[test_rng_uniform(&R.r, 3)];
    int bloom = test_rng_uniform(&R.r, 3) == 0 ? 0 : 10;
    R.opts = weir_options_create();
    CHECK(R.opts != NULL);
    CHECK_OK(weir_options_set_write_buffer_size(R.opts, 256 * 1024));
    CHECK_OK(weir_options_set_target_file_size(R.opts, 128 * 1024));
    CHECK_OK(weir_options_set_max_bytes_for_level_base(R.opts, 512 * 1024));
    CHECK_OK(weir_options_set_level0_triggers(R.opts, 4, 12, 24));
    CHECK_OK(weir_options_set_block_size(R.opts, block_size));
    CHECK_OK(weir_options_set_bloom_bits_per_key(R.opts, bloom));
    CHECK_OK(weir_options_set_sync_mode(R.opts, WEIR_SYNC_NONE));
    CHECK_OK(weir_options_set_clock(R.opts, model_clock, NULL));
    printf("ops=%" PRIu64 "%s keys=%zu block_size=%zu bloom_bits=%d\n", nops,
           MODEL_UNDER_ASAN && !(env_ops && *env_ops) ? " (reduced: AddressSanitizer build)" : "",
           g_nkeys, block_size, bloom);
    fflush(stdout);

    test_tmpdir(R.dir, sizeof R.dir, "model");
    CHECK_OK(weir_open(R.dir, R.opts, &R.db));

    double t0 = now_sec();
    for (R.op = 0; R.op < nops && !R.failed; R.op++) {
        uint64_t x = test_rng_uniform(&R.r, 100000);
        if (x < 22000) {
            R.opname = "put";
            do_put(&R);
        } else if (x < 25000) {
            R.opname = "put_ttl";
            do_put_ttl(&R);
        } else if (x < 29000) {
            R.opname = "merge (int64 add)";
            do_merge(&R);
        } else if (x < 29040) {
            R.opname = "delete_range";
            do_delete_range(&R);
        } else if (x < 29600) {
            R.opname = "advance clock";
            do_advance_clock(&R);
        } else if (x < 36000) {
            R.opname = "delete";
            do_delete(&R);
        } else if (x < 42000) {
            R.opname = "batch";
            do_batch(&R);
        } else if (x < 70000) {
            R.opname = "get";
            get_random(&R, &R.now, NULL);
        } else if (x < 79000) {
            R.opname = "iterate forward";
            iterate_random(&R, &R.now, NULL, 0, 0);
        } else if (x < 85000) {
            R.opname = "iterate backward";
            iterate_random(&R, &R.now, NULL, 0, 1);
        } else if (x < 88000) {
            R.opname = "iterate bounded/prefix";
            iterate_random(&R, &R.now, NULL, 1, (int)test_rng_uniform(&R.r, 2));
        } else if (x < 90000) {
            R.opname = "multi_get";
            multi_get_random(&R, &R.now, NULL);
        } else if (x < 90300) {
            R.opname = "snapshot create";
            snap_create(&R);
        } else if (x < 90450) {
            R.opname = "snapshot release";
            if (R.nsnaps) snap_release(&R, (int)test_rng_uniform(&R.r, (uint64_t)R.nsnaps));
        } else if (x < 99990) {
            live_snap *s = R.nsnaps ? &R.snaps[test_rng_uniform(&R.r, (uint64_t)R.nsnaps)] : NULL;
            uint64_t y = test_rng_uniform(&R.r, 10);
            if (!s) {
                R.opname = "get";
                get_random(&R, &R.now, NULL);
            } else if (y < 5) {
                R.opname = "snapshot get";
                get_random(&R, &s->m, s->snap);
            } else if (y < 8) {
                R.opname = "snapshot iterate";
                iterate_random(&R, &s->m, s->snap, y == 7, (int)test_rng_uniform(&R.r, 2));
            } else {
                R.opname = "snapshot multi_get";
                multi_get_random(&R, &s->m, s->snap);
            }
        } else if (x < 99994) {
            R.opname = "flush";
            int rc = weir_flush(R.db);
            if (rc != WEIR_OK) fail_status(&R, "weir_flush", rc);
            R.n_flush++;
        } else if (x < 99998) {
            R.opname = "compact_range";
            do_compact_random(&R);
        } else {
            R.opname = "reopen";
            do_reopen(&R);
            if (!R.failed) {
                R.opname = "full scan after reopen";
                full_scan(&R, &R.now, NULL);
            }
        }
        if (!R.failed && R.op % 50000 == 49999) {
            R.opname = "periodic full scan";
            full_scan(&R, &R.now, NULL);
            for (int i = 0; i < R.nsnaps && !R.failed; i++) {
                R.opname = "periodic full scan of a snapshot";
                full_scan(&R, &R.snaps[i].m, R.snaps[i].snap);
            }
        }
        if (!R.failed && R.op % 100000 == 99999) {
            printf("  %" PRIu64 " ops, %.1f s (writes %" PRIu64 ", gets %" PRIu64
                   ", iterators %" PRIu64 ", reopens %" PRIu64 ")\n",
                   R.op + 1, now_sec() - t0, R.n_write, R.n_get, R.n_iter, R.n_reopen);
            fflush(stdout);
        }
    }
    if (!R.failed && R.db) {
        R.opname = "final full scan";
        full_scan(&R, &R.now, NULL);
    }
    if (!R.failed && R.db) {
        R.opname = "final reopen + scan";
        do_reopen(&R);
        if (!R.failed) full_scan(&R, &R.now, NULL);
    }
    printf("ran %" PRIu64 " ops in %.1f s: %" PRIu64 " writes, %" PRIu64 " gets, %" PRIu64
           " iterators, %" PRIu64 " full scans, %" PRIu64 " snapshots, %" PRIu64
           " explicit flushes, %" PRIu64 " explicit compactions, %" PRIu64 " reopens\n",
           R.op, now_sec() - t0, R.n_write, R.n_get, R.n_iter, R.n_scan, R.n_snap, R.n_flush,
           R.n_compact, R.n_reopen);
    printf("  %" PRIu64 " merges (%" PRIu64 " onto an expiring value), %" PRIu64 " range deletes, %" PRIu64
           " TTL puts, %" PRIu64 " gets of expired values\n",
           R.n_merge, R.n_merge_ttl_base, R.n_range_del, R.n_ttl, R.n_expired_reads);
    if (R.db) {
        print_engine_counters(R.db);
        accumulate_counters(&R);
    }
    printf("engine totals over all opens: %" PRIu64 " flushes, %" PRIu64 " compactions (%" PRIu64
           " trivial moves)\n",
           R.e_flushes, R.e_compactions, R.e_moves);
    if (R.failed) printf("FAILED: seed=%" PRIu64 " (replay with WEIR_TEST_SEED=%" PRIu64 ")\n", R.seed, R.seed);

    if (R.db) {
        release_all_snapshots(&R);
        int rc = weir_close(R.db);
        if (rc != WEIR_OK && !R.failed) fail_status(&R, "weir_close", rc);
    }
    weir_options_destroy(R.opts);
    for (size_t i = 0; i < g_nkeys; i++) blob_unref(R.cur[i]);
    free(R.cur);
    free(R.exp);
    free(R.has_ops);
    free(R.opsum);
    for (int i = 0; i < SCRATCH; i++) blob_unref(g_scratch[i]);
    free(g_keys);
    g_keys = NULL;
    if (!R.failed) test_rmtree(R.dir);
    else printf("store kept for inspection: %s\n", R.dir);
    CHECK(!R.failed);
}

static const test_case tests[] = {
    TEST_ENTRY(random_ops_match_model),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
