/*
 * weir_bench.c -- weir-bench: the same workloads on weir, RocksDB, LevelDB
 * and LMDB in one run, with identical settings, printed side by side.
 *
 * This file owns the workloads, the key and value generators, latency
 * histograms, the per-engine child processes (so peak RSS and I/O counters
 * are per engine) and the Markdown / JSON output. The engines are reached
 * only through the adapters in bench/engines/ (see bench/engine.h).
 *
 * How the figures are made (docs/BENCHMARKS.md repeats this for readers):
 *   - keys are 16 bytes, zero-padded decimal of an even number (2*i for
 *     key i of --num), so a "missing" key (2*i+1) sorts between present
 *     ones and only a bloom filter or a search can rule it out;
 *   - values are --value-size bytes cut from a 1 MiB buffer of random
 *     printable bytes in which each 100-byte piece is 50 random bytes
 *     repeated (db_bench's "compressible to 50%"); no engine compresses;
 *   - every workload draws its keys from its own fixed seed, so each engine
 *     sees the same sequence of operations;
 *   - every 16th operation is timed with CLOCK_MONOTONIC into a
 *     log-bucketed histogram (p50 / p99); ops/s is operations over the wall
 *     time of the whole loop;
 *   - each engine runs in its own forked child; afterwards the parent calls
 *     sync() so that one engine's dirty pages are not written back during
 *     the next one's run. OS caches are not dropped (that needs root).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

/* ---- workloads ----------------------------------------------------------- */

/* In the order they run and are printed. The read workloads that pick
 * random keys (readrandom, readmissing, seekrandom, readwhilewriting) come
 * twice: keys drawn uniformly, then from a scrambled zipfian (--dist). */
enum {
    WL_FILLSEQ,
    WL_FILLRANDOM,
    WL_OVERWRITE,
    WL_FILLBATCH,
    WL_READRANDOM,
    WL_READRANDOM_Z,
    WL_READMISSING,
    WL_READMISSING_Z,
    WL_READSEQ,
    WL_READREVERSE,
    WL_SEEKRANDOM,
    WL_SEEKRANDOM_Z,
    WL_READWHILEWRITING,
    WL_READWHILEWRITING_Z,
    WL_COUNT
};

typedef struct wl_def {
    const char *name;  /* as printed, and the key of its JSON results       */
    const char *base;  /* the name --workloads selects it by                */
    int keyed;         /* a read workload that picks random keys            */
    int zipfian;       /* ... and picks them from the scrambled zipfian     */
    int seed_id;       /* its fixed random stream; the uniform workloads
                        * keep the ids they had before the zipfian ones were
                        * added, so their key sequences are unchanged       */
    const char *help;
} wl_def;

static const wl_def wl_defs[WL_COUNT] = {
    {"fillseq", "fillseq", 0, 0, 0, "N puts in key order into a fresh DB"},
    {"fillrandom", "fillrandom", 0, 0, 1,
     "N puts of every key once, in random order, into a fresh DB"},
    {"overwrite", "overwrite", 0, 0, 2,
     "N puts of uniformly random existing keys (on the fillrandom DB)"},
    {"fillbatch", "fillbatch", 0, 0, 3,
     "N puts in key order into a fresh DB, in atomic batches of 100"},
    {"readrandom", "readrandom", 1, 0, 4, "N gets of uniformly random existing keys"},
    {"readrandom (zipfian)", "readrandom", 1, 1, 10,
     "N gets of existing keys, zipfian (theta 0.99, scrambled)"},
    {"readmissing", "readmissing", 1, 0, 5,
     "N gets of absent keys that sort between existing ones"},
    {"readmissing (zipfian)", "readmissing", 1, 1, 11,
     "N gets of absent keys next to zipfian-chosen existing ones"},
    {"readseq", "readseq", 0, 0, 6, "one iterator from the first key to the last (N nexts)"},
    {"readreverse", "readreverse", 0, 0, 7,
     "one iterator from the last key to the first (N prevs)"},
    {"seekrandom", "seekrandom", 1, 0, 8,
     "N times: iterator on the latest state, seek to a random existing key, 10 nexts"},
    {"seekrandom (zipfian)", "seekrandom", 1, 1, 12,
     "as seekrandom, the sought keys zipfian"},
    {"readwhilewriting", "readwhilewriting", 1, 0, 9,
     "N random gets (measured) while one thread overwrites random keys"},
    {"readwhilewriting (zipfian)", "readwhilewriting", 1, 1, 13,
     "as readwhilewriting, the gets zipfian (the writer stays uniform)"},
};

/* --dist: which key choices the keyed read workloads run with. */
enum { DIST_UNIFORM = 1, DIST_ZIPFIAN = 2, DIST_BOTH = 3 };
static const char *const dist_names[4] = {"", "uniform", "zipfian", "both"};

#define ENGINE_COUNT 5
static const bench_engine_ops *const all_engines[ENGINE_COUNT] = {
    &bench_engine_weir, &bench_engine_rocksdb, &bench_engine_rocksdb_tuned, &bench_engine_leveldb,
    &bench_engine_lmdb};

#define KEY_SIZE 16
#define BATCH_SIZE 100
#define SEEK_NEXTS 10
#define SAMPLE_MASK 15u /* time every 16th operation */
#define SEED 0x5eed5eedULL
#define MAX_REPEAT 9

/* ---- results (sent from the child to the parent through a pipe) --------- */

typedef struct wl_result {
    int ran;
    int check_failed;        /* the engine returned wrong data           */
    uint64_t ops;            /* operations (keys for fillbatch)          */
    double seconds;
    double ops_per_sec;
    double p50_us, p99_us;   /* per op; per batch of 100 for fillbatch   */
    double writer_ops_per_sec; /* readwhilewriting: the background writer  */
    double mono_start, mono_end; /* CLOCK_MONOTONIC seconds, to line up with
                                  * `perf record -k CLOCK_MONOTONIC` samples */
    int nruns;                   /* with --repeat: every run's ops/s; the    */
    double runs_ops[MAX_REPEAT]; /* figures above are the median run's       */
    char note[160];          /* sanity check summary                      */
} wl_result;

typedef struct engine_result {
    int ran, ok;
    char error[BENCH_ERR_LEN];
    char version[64];
    wl_result wl[WL_COUNT];
    uint64_t user_bytes;     /* key + value bytes of every put            */
    uint64_t wchar_bytes;    /* /proc/self/io wchar delta: write() bytes  */
    uint64_t disk_write_bytes; /* /proc/self/io write_bytes delta: bytes of
                                * page-cache pages newly dirtied, i.e. what
                                * writeback will send to the device        */
    uint64_t cancelled_bytes;  /* cancelled_write_bytes delta: dirty pages
                                * of files deleted or truncated first      */
    double write_amp;        /* wchar_bytes / user_bytes                  */
    double device_write_amp; /* (disk_write - cancelled) / user_bytes     */
    uint64_t space_bytes;    /* allocated bytes of the main DB after close */
    uint64_t maxrss_kb;      /* peak RSS of the engine's child process    */
    uint64_t rss_anon_kb, rss_file_kb; /* before the main DB was closed   */
    double settle_seconds;   /* background work after the loads, total    */
    double total_seconds;
    double loadavg_end;      /* 1-minute load average when the run ended   */
    int nruns;
    double runs_loadavg[MAX_REPEAT];
    char describe[12288];    /* the engine's own stats, truncated         */
} engine_result;

/* ---- run configuration ------------------------------------------------- */

typedef struct zipf_gen zipf_gen;

typedef struct run_config {
    bench_config cfg;
    char db_base[4096];
    const char *json_path;
    int engine_on[ENGINE_COUNT];
    int wl_on[WL_COUNT];
    int keep;
    int repeat;
    int dist;              /* DIST_UNIFORM | DIST_ZIPFIAN                */
    const zipf_gen *zipf;  /* the zipfian over cfg.num keys, set up once */
} run_config;

/* ---- small utilities ---------------------------------------------------- */

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

/* splitmix64: small, fast, and good enough to pick keys. */
typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(rng *r, uint64_t n) {
    /* Lemire's multiply-shift: unbiased enough for n far below 2^64. */
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* A workload's fixed random stream: its seed id (wl_defs[].seed_id) and a
 * stream number (0 for its own keys, 1 for a background writer's). */
static rng rng_for(int seed_id, uint64_t stream) {
    rng r = {SEED ^ ((uint64_t)seed_id << 32) ^ (stream * 0x9e3779b97f4a7c15ull)};
    rng_next(&r);
    return r;
}

/* splitmix64's finalizer: a bijective 64-bit mix. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- key choice: pseudo-random permutations and the zipfian ------------- */

/* A pseudo-random bijection of [0, n): a 4-round Feistel network over the
 * smallest even number of bits that covers n, with cycle walking (values
 * at or above n are permuted again until they land below n, which keeps
 * the map a bijection of [0, n)). The domain is under 4n, so a walk takes
 * under 4 rounds of the network on average. Used to scramble zipfian ranks
 * over the key space and as fillrandom's key order (no table in memory, so
 * the order costs nothing in the engines' peak RSS). */
typedef struct permuter {
    uint64_t n, mask;
    int half_bits;
    uint64_t key[4];
} permuter;

static void permuter_init(permuter *p, uint64_t n, uint64_t seed) {
    p->n = n;
    int bits = 2;
    while (bits < 64 && (1ull << bits) < n) bits += 2;
    p->half_bits = bits / 2;
    p->mask = (1ull << p->half_bits) - 1;
    rng r = {seed};
    for (int i = 0; i < 4; i++) p->key[i] = rng_next(&r);
}

static inline uint64_t permute(const permuter *p, uint64_t x) {
    do {
        uint64_t left = x >> p->half_bits, right = x & p->mask;
        for (int i = 0; i < 4; i++) {
            uint64_t t = left ^ (mix64(right ^ p->key[i]) & p->mask);
            left = right;
            right = t;
        }
        x = (left << p->half_bits) | right;
    } while (x >= p->n);
    return x;
}

/* The zipfian of YCSB (Gray et al., "Quickly Generating Billion-Record
 * Synthetic Databases", SIGMOD 1994): rank r (0 = hottest) of n is drawn
 * with probability close to (r+1)^-theta / zeta(n, theta); ranks 0 and 1
 * are exact, the rest come from Gray's closed-form inverse (its CDF is
 * within about 1.1 points of the exact one for 1M and 10M keys, theta
 * 0.99). The rank is then scrambled over the key space by a permutation,
 * as YCSB's ScrambledZipfianGenerator hashes it, so the hot keys are spread
 * over the whole key range (and over every table) instead of being the
 * first keys; unlike YCSB's hash modulo n, a permutation maps no two ranks
 * to one key, so the key frequencies are exactly the rank frequencies. */
#define ZIPF_THETA 0.99

/* zeta(n, theta) = sum of i^-theta for i = 1..n: the first exact_terms
 * terms summed exactly (smallest first, so the rounding of the large
 * partial sums does not swallow them), the rest by Euler-Maclaurin (the
 * integral plus the end corrections up to the first derivative; the next
 * term is below 1e-20 of the sum once exact_terms is 10^7). */
#define ZETA_EXACT_TERMS 10000000ull

static double zeta(uint64_t n, double theta, uint64_t exact_terms) {
    uint64_t m = n < exact_terms ? n : exact_terms;
    double sum = 0.0;
    for (uint64_t i = m; i >= 1; i--) sum += pow((double)i, -theta);
    if (m == n) return sum;
    double a = (double)m, b = (double)n;
    double integral = (pow(b, 1.0 - theta) - pow(a, 1.0 - theta)) / (1.0 - theta);
    double ends = (pow(b, -theta) - pow(a, -theta)) / 2.0;
    double slopes = theta * (pow(a, -theta - 1.0) - pow(b, -theta - 1.0)) / 12.0;
    return sum + integral + ends + slopes;
}

struct zipf_gen {
    uint64_t n;
    double theta, alpha, zetan, eta, rank1_bound;
    permuter scramble;
};

static void zipf_init(zipf_gen *z, uint64_t n, double theta) {
    z->n = n;
    z->theta = theta;
    z->alpha = 1.0 / (1.0 - theta);
    double zetan = zeta(n, theta, ZETA_EXACT_TERMS);
    z->zetan = zetan;
    double zeta2 = 1.0 + pow(2.0, -theta);
    z->rank1_bound = zeta2;
    z->eta = n > 2 ? (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / zetan) : 0.0;
    permuter_init(&z->scramble, n, SEED ^ 0x7a1bf1a5c3a3b1edull);
}

/* The unscrambled rank: 0 is the most frequent. */
static inline uint64_t zipf_rank(const zipf_gen *z, rng *r) {
    double u = (double)(rng_next(r) >> 11) * 0x1.0p-53; /* [0, 1) */
    double uz = u * z->zetan;
    if (uz < 1.0 || z->n == 1) return 0;
    if (uz < z->rank1_bound || z->n == 2) return 1;
    uint64_t rank = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
    return rank < z->n ? rank : z->n - 1;
}

static inline uint64_t zipf_key(const zipf_gen *z, rng *r) {
    return permute(&z->scramble, zipf_rank(z, r));
}

/* Where a workload's keys come from: uniform over [0, n), or the zipfian. */
typedef struct key_chooser {
    rng r;
    uint64_t n;
    const zipf_gen *zipf; /* NULL: uniform */
} key_chooser;

static key_chooser chooser_for(const run_config *rc, int wl, uint64_t stream) {
    key_chooser c = {rng_for(wl_defs[wl].seed_id, stream), rc->cfg.num,
                     wl_defs[wl].zipfian ? rc->zipf : NULL};
    return c;
}

static inline uint64_t choose_key(key_chooser *c) {
    return c->zipf ? zipf_key(c->zipf, &c->r) : rng_below(&c->r, c->n);
}

/* Key i of the key space is the decimal of 2*i (+1 for a missing key). */
static inline void make_key(char *dst, uint64_t n) {
    for (int i = KEY_SIZE - 1; i >= 0; i--) {
        dst[i] = (char)('0' + n % 10);
        n /= 10;
    }
}

static inline uint64_t parse_key(const char *k, size_t len) {
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) n = n * 10 + (uint64_t)(k[i] - '0');
    return n;
}

/* The value source: a buffer of half-compressible bytes that values are
 * cut from in turn, like db_bench's RandomGenerator. */
typedef struct value_gen {
    char *buf;
    size_t len, pos, vsize;
} value_gen;

static int value_gen_init(value_gen *g, size_t vsize, uint64_t seed) {
    g->len = (size_t)1 << 20;
    if (g->len < vsize * 4) g->len = vsize * 4;
    g->buf = malloc(g->len);
    if (!g->buf) return -1;
    rng r = {seed};
    for (size_t piece = 0; piece < g->len; piece += 100) {
        size_t n = g->len - piece < 100 ? g->len - piece : 100;
        for (size_t i = 0; i < n; i++)
            g->buf[piece + i] = i < 50 ? (char)(' ' + rng_below(&r, 95)) : g->buf[piece + i - 50];
    }
    g->pos = 0;
    g->vsize = vsize;
    return 0;
}

static inline const char *value_next(value_gen *g) {
    if (g->pos + g->vsize > g->len) g->pos = 0;
    const char *v = g->buf + g->pos;
    g->pos += g->vsize;
    return v;
}

static void value_gen_free(value_gen *g) { free(g->buf); }

/* ---- latency histogram --------------------------------------------------- */

/* Values below 64 ns get a bucket each; above, each power of two is split
 * into 32 buckets, so a bucket is at most ~3% wide. */
#define HIST_SUB 32
#define HIST_BUCKETS (60 * HIST_SUB)

typedef struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t n, min, max;
} hist;

static void hist_init(hist *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static inline void hist_add(hist *h, uint64_t v) {
    size_t idx;
    if (v < 2 * HIST_SUB) {
        idx = (size_t)v;
    } else {
        int msb = 63 - __builtin_clzll(v);
        int shift = msb - 5;
        idx = (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
    }
    if (idx >= HIST_BUCKETS) idx = HIST_BUCKETS - 1;
    h->count[idx]++;
    h->n++;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

static double hist_percentile(const hist *h, double p) {
    if (h->n == 0) return 0.0;
    double target = p / 100.0 * (double)h->n;
    uint64_t cum = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (!h->count[i]) continue;
        if ((double)(cum + h->count[i]) >= target) {
            double low, width;
            if (i < 2 * HIST_SUB) {
                low = (double)i;
                width = 1.0;
            } else {
                int shift = (int)(i / HIST_SUB) - 1;
                low = (double)((uint64_t)(i % HIST_SUB + HIST_SUB) << shift);
                width = (double)(1ull << shift);
            }
            double frac = (target - (double)cum) / (double)h->count[i];
            double v = low + width * frac;
            if (v < (double)h->min) v = (double)h->min;
            if (v > (double)h->max) v = (double)h->max;
            return v;
        }
        cum += h->count[i];
    }
    return (double)h->max;
}

/* ---- /proc and file system helpers ------------------------------------ */

static int proc_io3(uint64_t *wchar, uint64_t *write_bytes, uint64_t *cancelled) {
    FILE *f = fopen("/proc/self/io", "r");
    if (!f) return -1;
    char line[128];
    *wchar = *write_bytes = *cancelled = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "wchar: %llu", &v) == 1) *wchar = v;
        else if (sscanf(line, "write_bytes: %llu", &v) == 1) *write_bytes = v;
        else if (sscanf(line, "cancelled_write_bytes: %llu", &v) == 1) *cancelled = v;
    }
    fclose(f);
    return 0;
}

static int proc_io(uint64_t *wchar, uint64_t *write_bytes) {
    uint64_t cancelled;
    return proc_io3(wchar, write_bytes, &cancelled);
}

static uint64_t proc_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t n = strlen(field);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtoull(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static double loadavg1(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double v = 0.0;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1) v = 0.0;
        fclose(f);
    }
    return v;
}

static uint64_t du_total;

static int du_visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)path, (void)type, (void)ftw;
    du_total += (uint64_t)st->st_blocks * 512u;
    return 0;
}

/* Allocated bytes under dir, as du(1) counts them (sparse files count what
 * they occupy, not their length). */
static uint64_t dir_usage(const char *dir) {
    du_total = 0;
    if (nftw(dir, du_visit, 16, FTW_PHYS) != 0) return 0;
    return du_total;
}

static int rm_visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int remove_tree(const char *dir) {
    struct stat st;
    if (lstat(dir, &st) != 0) return errno == ENOENT ? 0 : -1;
    return nftw(dir, rm_visit, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_dirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Wait until the process has written nothing for a second: the engine's
 * background flushes and compactions are done. Returns how long they went
 * on. /proc/self/io covers every thread of the process. */
static double settle(void) {
    uint64_t last, wb;
    if (proc_io(&last, &wb) != 0) return 0.0;
    double start = now_sec(), quiet_since = start;
    for (;;) {
        usleep(50 * 1000);
        uint64_t w;
        proc_io(&w, &wb);
        double t = now_sec();
        if (w != last) {
            last = w;
            quiet_since = t;
        } else if (t - quiet_since >= 1.0) {
            break;
        }
        if (t - start > 900.0) break;
    }
    return quiet_since - start;
}

/* ---- the child: one engine, every selected workload ------------------- */

typedef struct engine_run {
    const bench_engine_ops *e;
    const run_config *rc;
    engine_result *res;
    char err[BENCH_ERR_LEN];
    value_gen vg;
} engine_run;

/* secs: the time the clock ran (the engine calls, see KEY_CHUNK);
 * wall_start: when the workload began, for the perf window. */
static void finish_wl(wl_result *r, uint64_t ops, double secs, double wall_start, const hist *h) {
    r->ran = 1;
    r->ops = ops;
    r->seconds = secs;
    r->mono_end = now_sec();
    r->mono_start = wall_start;
    r->ops_per_sec = secs > 0 ? (double)ops / secs : 0.0;
    r->p50_us = hist_percentile(h, 50.0) / 1000.0;
    r->p99_us = hist_percentile(h, 99.0) / 1000.0;
}

static void report_wl(const engine_run *er, int wl) {
    const wl_result *r = &er->res->wl[wl];
    progress("[%s] %-16s %12.0f ops/s  p50 %8.2f us  p99 %8.2f us  %s%s\n", er->e->name,
             wl_defs[wl].name, r->ops_per_sec, r->p50_us, r->p99_us, r->note,
             r->check_failed ? "  CHECK FAILED" : "");
}

static int open_db(engine_run *er, const char *dir, void **db) {
    if (remove_tree(dir) != 0 || make_dirs(dir) != 0) {
        snprintf(er->err, sizeof er->err, "cannot prepare %s: %s", dir, strerror(errno));
        return -1;
    }
    return er->e->open(dir, &er->rc->cfg, db, er->err);
}

/* Keys are chosen and formatted KEY_CHUNK at a time before the clock runs,
 * and the clock runs only over the loop of engine calls that uses them:
 * picking a zipfian key (a pow() and a permutation) costs 40 to 80 ns,
 * as much as a whole read on the fastest engines, and would otherwise
 * count as the engine's time. The chunk's keys (16 KiB) stay in L1/L2. */
#define KEY_CHUNK 1024

/* Puts every key in key order, or every key once in the order of a
 * permutation, or N uniformly random keys, one write at a time. */
enum fill_order { FILL_SEQ, FILL_PERMUTATION, FILL_UNIFORM };

static int fill(engine_run *er, void *db, int wl, enum fill_order order, const permuter *perm,
                int timed) {
    const bench_config *cfg = &er->rc->cfg;
    uint64_t n = cfg->num;
    rng r = rng_for(wl_defs[wl].seed_id, 0);
    hist *h = malloc(sizeof *h);
    char *keys = malloc((size_t)KEY_CHUNK * KEY_SIZE);
    if (!h || !keys) {
        free(h);
        free(keys);
        snprintf(er->err, sizeof er->err, "out of memory");
        return -1;
    }
    hist_init(h);
    double t0 = now_sec(), busy = 0.0;
    for (uint64_t i = 0; i < n;) {
        size_t m = n - i < KEY_CHUNK ? (size_t)(n - i) : KEY_CHUNK;
        for (size_t j = 0; j < m; j++) {
            uint64_t k = order == FILL_SEQ           ? i + j
                         : order == FILL_PERMUTATION ? permute(perm, i + j)
                                                     : rng_below(&r, n);
            make_key(keys + j * KEY_SIZE, 2 * k);
        }
        double c0 = now_sec();
        for (size_t j = 0; j < m; j++, i++) {
            const char *v = value_next(&er->vg);
            int sample = (i & SAMPLE_MASK) == 0;
            uint64_t s0 = sample ? now_ns() : 0;
            if (er->e->put(db, keys + j * KEY_SIZE, KEY_SIZE, v, cfg->value_size, er->err) != 0) {
                free(h);
                free(keys);
                return -1;
            }
            if (sample) hist_add(h, now_ns() - s0);
        }
        busy += now_sec() - c0;
    }
    er->res->user_bytes += n * (KEY_SIZE + cfg->value_size);
    if (timed) {
        finish_wl(&er->res->wl[wl], n, busy, t0, h);
        snprintf(er->res->wl[wl].note, sizeof er->res->wl[wl].note, "%" PRIu64 " puts", n);
    }
    free(h);
    free(keys);
    return 0;
}

static int fill_batch(engine_run *er, void *db) {
    const bench_config *cfg = &er->rc->cfg;
    uint64_t n = cfg->num;
    hist *h = malloc(sizeof *h);
    char *keys = malloc((size_t)BATCH_SIZE * KEY_SIZE);
    if (!h || !keys) {
        free(h);
        free(keys);
        snprintf(er->err, sizeof er->err, "out of memory");
        return -1;
    }
    hist_init(h);
    bench_kv kvs[BATCH_SIZE];
    uint64_t batches = 0, busy_ns = 0;
    double t0 = now_sec();
    for (uint64_t i = 0; i < n; i += BATCH_SIZE) {
        size_t m = n - i < BATCH_SIZE ? (size_t)(n - i) : BATCH_SIZE;
        for (size_t j = 0; j < m; j++) {
            make_key(keys + j * KEY_SIZE, 2 * (i + j));
            kvs[j].key = keys + j * KEY_SIZE;
            kvs[j].klen = KEY_SIZE;
            kvs[j].val = value_next(&er->vg);
            kvs[j].vlen = cfg->value_size;
        }
        uint64_t s0 = now_ns();
        if (er->e->write_batch(db, kvs, m, er->err) != 0) {
            free(h);
            free(keys);
            return -1;
        }
        uint64_t took = now_ns() - s0;
        hist_add(h, took);
        busy_ns += took;
        batches++;
    }
    er->res->user_bytes += n * (KEY_SIZE + cfg->value_size);
    wl_result *r = &er->res->wl[WL_FILLBATCH];
    /* The clock runs over the write_batch calls only (see KEY_CHUNK). */
    finish_wl(r, n, (double)busy_ns * 1e-9, t0, h);
    snprintf(r->note, sizeof r->note, "%" PRIu64 " batches of <= %d; latency per batch", batches,
             BATCH_SIZE);
    free(h);
    free(keys);
    return 0;
}

static int read_random(engine_run *er, void *reader, int wl, int missing) {
    const bench_config *cfg = &er->rc->cfg;
    uint64_t n = cfg->num, found = 0, bad_len = 0;
    key_chooser chooser = chooser_for(er->rc, wl, 0);
    hist *h = malloc(sizeof *h);
    size_t cap = cfg->value_size + 64;
    char *buf = malloc(cap);
    char *keys = malloc((size_t)KEY_CHUNK * KEY_SIZE);
    if (!h || !buf || !keys) {
        free(h);
        free(buf);
        free(keys);
        snprintf(er->err, sizeof er->err, "out of memory");
        return -1;
    }
    hist_init(h);
    int failed = 0;
    double t0 = now_sec(), busy = 0.0;
    for (uint64_t i = 0; i < n && !failed;) {
        size_t m = n - i < KEY_CHUNK ? (size_t)(n - i) : KEY_CHUNK;
        for (size_t j = 0; j < m; j++)
            make_key(keys + j * KEY_SIZE, 2 * choose_key(&chooser) + (missing ? 1 : 0));
        double c0 = now_sec();
        for (size_t j = 0; j < m; j++, i++) {
            int sample = (i & SAMPLE_MASK) == 0;
            uint64_t s0 = sample ? now_ns() : 0;
            size_t vlen = 0;
            int rc = er->e->get(reader, keys + j * KEY_SIZE, KEY_SIZE, buf, cap, &vlen, er->err);
            if (sample) hist_add(h, now_ns() - s0);
            if (rc < 0) {
                failed = 1;
                break;
            }
            found += (uint64_t)rc;
            bad_len += rc == 1 && vlen != cfg->value_size;
        }
        busy += now_sec() - c0;
    }
    free(buf);
    free(keys);
    if (failed) {
        free(h);
        return -1;
    }
    wl_result *res = &er->res->wl[wl];
    finish_wl(res, n, busy, t0, h);
    uint64_t want = missing ? 0 : n;
    res->check_failed = found != want || bad_len != 0;
    snprintf(res->note, sizeof res->note, "found %" PRIu64 "/%" PRIu64 "%s", found, n,
             bad_len ? ", wrong value lengths" : "");
    free(h);
    return 0;
}

/* Walks the whole DB forwards or backwards with one iterator. */
static int read_scan(engine_run *er, void *reader, int wl, int reverse) {
    const bench_engine_ops *e = er->e;
    const bench_config *cfg = &er->rc->cfg;
    hist *h = malloc(sizeof *h);
    if (!h) {
        snprintf(er->err, sizeof er->err, "out of memory");
        return -1;
    }
    hist_init(h);
    uint64_t count = 0, out_of_order = 0, bad_len = 0, prev = 0;
    unsigned sink = 0;
    double t0 = now_sec();
    void *it = e->iter_open(reader, er->err);
    if (!it) {
        free(h);
        return -1;
    }
    uint64_t s0 = now_ns();
    if (reverse) e->iter_seek_last(it);
    else e->iter_seek_first(it);
    hist_add(h, now_ns() - s0);
    while (e->iter_valid(it)) {
        size_t kl, vl;
        const char *k = e->iter_key(it, &kl);
        const char *v = e->iter_value(it, &vl);
        sink += (unsigned char)v[0];
        uint64_t kn = parse_key(k, kl);
        if (count > 0 && (reverse ? kn >= prev : kn <= prev)) out_of_order++;
        bad_len += kl != KEY_SIZE || vl != cfg->value_size;
        prev = kn;
        count++;
        int sample = (count & SAMPLE_MASK) == 0;
        s0 = sample ? now_ns() : 0;
        if (reverse) e->iter_prev(it);
        else e->iter_next(it);
        if (sample) hist_add(h, now_ns() - s0);
    }
    int st = e->iter_status(it, er->err);
    e->iter_close(it);
    double secs = now_sec() - t0;
    if (st != 0) {
        free(h);
        return -1;
    }
    wl_result *res = &er->res->wl[wl];
    finish_wl(res, count, secs, t0, h);
    res->check_failed = count != cfg->num || out_of_order || bad_len;
    snprintf(res->note, sizeof res->note, "%" PRIu64 "/%" PRIu64 " keys%s%s (sink %u)", count,
             cfg->num, out_of_order ? ", OUT OF ORDER" : "", bad_len ? ", bad lengths" : "",
             sink & 0xff);
    free(h);
    return 0;
}

static int seek_random(engine_run *er, void *reader, int wl) {
    const bench_engine_ops *e = er->e;
    const bench_config *cfg = &er->rc->cfg;
    uint64_t n = cfg->num, exact = 0, nexts = 0, want_nexts = 0;
    key_chooser chooser = chooser_for(er->rc, wl, 0);
    hist *h = malloc(sizeof *h);
    char *keys = malloc((size_t)KEY_CHUNK * KEY_SIZE);
    if (!h || !keys) {
        free(h);
        free(keys);
        snprintf(er->err, sizeof er->err, "out of memory");
        return -1;
    }
    hist_init(h);
    unsigned sink = 0;
    int failed = 0;
    double t0 = now_sec(), busy = 0.0;
    for (uint64_t i = 0; i < n && !failed;) {
        size_t m = n - i < KEY_CHUNK ? (size_t)(n - i) : KEY_CHUNK;
        for (size_t j = 0; j < m; j++) {
            uint64_t k = choose_key(&chooser);
            make_key(keys + j * KEY_SIZE, 2 * k);
            /* Fewer than SEEK_NEXTS keys follow the last few. */
            want_nexts += n - 1 - k < SEEK_NEXTS ? n - 1 - k : SEEK_NEXTS;
        }
        double c0 = now_sec();
        for (size_t j = 0; j < m; j++, i++) {
            const char *key = keys + j * KEY_SIZE;
            int sample = (i & SAMPLE_MASK) == 0;
            uint64_t s0 = sample ? now_ns() : 0;
            void *it = e->iter_open(reader, er->err);
            if (!it) {
                failed = 1;
                break;
            }
            e->iter_seek(it, key, KEY_SIZE);
            if (e->iter_valid(it)) {
                size_t kl, vl;
                const char *fk = e->iter_key(it, &kl);
                sink += (unsigned char)((const char *)e->iter_value(it, &vl))[0];
                exact += kl == KEY_SIZE && memcmp(fk, key, KEY_SIZE) == 0;
                for (int step = 0; step < SEEK_NEXTS; step++) {
                    e->iter_next(it);
                    if (!e->iter_valid(it)) break;
                    e->iter_key(it, &kl);
                    sink += (unsigned char)((const char *)e->iter_value(it, &vl))[0];
                    nexts++;
                }
            }
            int st = e->iter_status(it, er->err);
            e->iter_close(it);
            if (sample) hist_add(h, now_ns() - s0);
            if (st != 0) {
                failed = 1;
                break;
            }
        }
        busy += now_sec() - c0;
    }
    free(keys);
    if (failed) {
        free(h);
        return -1;
    }
    wl_result *res = &er->res->wl[wl];
    finish_wl(res, n, busy, t0, h);
    res->check_failed = exact != n || nexts != want_nexts;
    snprintf(res->note, sizeof res->note,
             "seeks found %" PRIu64 "/%" PRIu64 ", nexts %" PRIu64 "/%" PRIu64 " (sink %u)", exact,
             n, nexts, want_nexts, sink & 0xff);
    free(h);
    return 0;
}

typedef struct writer_arg {
    engine_run *er;
    void *db;
    int wl;
    atomic_int stop;
    uint64_t writes;
    int failed;
    char err[BENCH_ERR_LEN];
} writer_arg;

static void *writer_main(void *p) {
    writer_arg *w = p;
    const bench_config *cfg = &w->er->rc->cfg;
    /* The writer overwrites uniformly random keys in both variants, so the
     * two differ only in the measured reader's keys. */
    rng r = rng_for(wl_defs[w->wl].seed_id, 1);
    value_gen vg;
    if (value_gen_init(&vg, cfg->value_size, SEED + 1) != 0) {
        w->failed = 1;
        snprintf(w->err, sizeof w->err, "out of memory");
        return NULL;
    }
    char key[KEY_SIZE];
    while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
        make_key(key, 2 * rng_below(&r, cfg->num));
        if (w->er->e->put(w->db, key, KEY_SIZE, value_next(&vg), cfg->value_size, w->err) != 0) {
            w->failed = 1;
            break;
        }
        w->writes++;
    }
    value_gen_free(&vg);
    return NULL;
}

static int read_while_writing(engine_run *er, void *db, void *reader, int wl) {
    writer_arg w;
    memset(&w, 0, sizeof w);
    w.er = er;
    w.db = db;
    w.wl = wl;
    atomic_init(&w.stop, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, writer_main, &w) != 0) {
        snprintf(er->err, sizeof er->err, "pthread_create failed");
        return -1;
    }
    double t0 = now_sec();
    int rc = read_random(er, reader, wl, 0);
    double secs = now_sec() - t0;
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    er->res->user_bytes += w.writes * (KEY_SIZE + er->rc->cfg.value_size);
    if (rc != 0) return -1;
    if (w.failed) {
        snprintf(er->err, sizeof er->err, "writer: %s", w.err);
        return -1;
    }
    wl_result *res = &er->res->wl[wl];
    res->writer_ops_per_sec = secs > 0 ? (double)w.writes / secs : 0.0;
    size_t len = strlen(res->note);
    snprintf(res->note + len, sizeof res->note - len, "; writer %.0f puts/s",
             res->writer_ops_per_sec);
    return 0;
}

static int close_db(engine_run *er, void *db, int settle_first) {
    if (settle_first) er->res->settle_seconds += settle();
    return er->e->close(db, er->err);
}

static int any_of(const run_config *rc, int from, int to) {
    for (int w = from; w <= to; w++)
        if (rc->wl_on[w]) return 1;
    return 0;
}

/* Runs every selected workload in db_bench's order, except that fillbatch
 * runs before fillrandom so that overwrite and the reads use the fillrandom
 * DB without reopening it. Returns -1 with er->err set on failure. */
static int run_engine(engine_run *er) {
    const run_config *rc = er->rc;
    const bench_engine_ops *e = er->e;
    engine_result *res = er->res;
    char base[4096], dir[4200];
    snprintf(base, sizeof base, "%s/%s", rc->db_base, e->name);
    if (make_dirs(base) != 0) {
        snprintf(er->err, sizeof er->err, "cannot create %s: %s", base, strerror(errno));
        return -1;
    }
    if (value_gen_init(&er->vg, rc->cfg.value_size, SEED) != 0) {
        snprintf(er->err, sizeof er->err, "out of memory");
        return -1;
    }
    void *db = NULL;

    if (rc->wl_on[WL_FILLSEQ]) {
        snprintf(dir, sizeof dir, "%s/fillseq", base);
        progress("[%s] fillseq ...\n", e->name);
        if (open_db(er, dir, &db) != 0) return -1;
        if (fill(er, db, WL_FILLSEQ, FILL_SEQ, NULL, 1) != 0) return -1;
        report_wl(er, WL_FILLSEQ);
        if (close_db(er, db, 1) != 0) return -1;
        if (!rc->keep) remove_tree(dir);
    }
    if (rc->wl_on[WL_FILLBATCH]) {
        snprintf(dir, sizeof dir, "%s/fillbatch", base);
        progress("[%s] fillbatch ...\n", e->name);
        if (open_db(er, dir, &db) != 0) return -1;
        if (fill_batch(er, db) != 0) return -1;
        report_wl(er, WL_FILLBATCH);
        if (close_db(er, db, 1) != 0) return -1;
        if (!rc->keep) remove_tree(dir);
    }
    if (!any_of(rc, WL_FILLRANDOM, WL_OVERWRITE) && !any_of(rc, WL_READRANDOM, WL_COUNT - 1))
        return 0;

    snprintf(dir, sizeof dir, "%s/main", base);
    if (open_db(er, dir, &db) != 0) return -1;
    /* fillrandom's order: every key once, in the order of a fixed
     * pseudo-random permutation (the same for every engine). */
    permuter perm;
    permuter_init(&perm, rc->cfg.num, SEED ^ 0xf111a7d0f111a7d0ull);
    progress("[%s] %s ...\n", e->name, rc->wl_on[WL_FILLRANDOM] ? "fillrandom" : "load (untimed)");
    int frc = fill(er, db, WL_FILLRANDOM, FILL_PERMUTATION, &perm, rc->wl_on[WL_FILLRANDOM]);
    if (frc != 0) return -1;
    if (rc->wl_on[WL_FILLRANDOM]) report_wl(er, WL_FILLRANDOM);
    if (rc->wl_on[WL_OVERWRITE]) {
        progress("[%s] overwrite ...\n", e->name);
        if (fill(er, db, WL_OVERWRITE, FILL_UNIFORM, NULL, 1) != 0) return -1;
        report_wl(er, WL_OVERWRITE);
    }
    if (any_of(rc, WL_READRANDOM, WL_COUNT - 1)) {
        progress("[%s] waiting for background work to finish ...\n", e->name);
        double s = settle();
        res->settle_seconds += s;
        progress("[%s] background work went on for %.1f s\n", e->name, s);
        void *reader = e->reader_open(db, er->err);
        if (!reader) return -1;
        for (int wl = WL_READRANDOM; wl < WL_COUNT; wl++) {
            if (!rc->wl_on[wl]) continue;
            progress("[%s] %s ...\n", e->name, wl_defs[wl].name);
            int r;
            switch (wl) {
            case WL_READRANDOM:
            case WL_READRANDOM_Z: r = read_random(er, reader, wl, 0); break;
            case WL_READMISSING:
            case WL_READMISSING_Z: r = read_random(er, reader, wl, 1); break;
            case WL_READSEQ: r = read_scan(er, reader, wl, 0); break;
            case WL_READREVERSE: r = read_scan(er, reader, wl, 1); break;
            case WL_SEEKRANDOM:
            case WL_SEEKRANDOM_Z: r = seek_random(er, reader, wl); break;
            default: r = read_while_writing(er, db, reader, wl); break;
            }
            if (r != 0) {
                e->reader_close(reader);
                return -1;
            }
            report_wl(er, wl);
        }
        e->reader_close(reader);
    }
    char *d = e->describe ? e->describe(db) : NULL;
    if (d) {
        snprintf(res->describe, sizeof res->describe, "%s", d);
        free(d);
    }
    res->rss_anon_kb = proc_status_kb("RssAnon");
    res->rss_file_kb = proc_status_kb("RssFile");
    if (close_db(er, db, 1) != 0) return -1;
    res->space_bytes = dir_usage(dir);
    if (!rc->keep) remove_tree(dir);
    return 0;
}

static void child_main(const bench_engine_ops *e, const run_config *rc, int fd) {
    engine_result *res = calloc(1, sizeof *res);
    if (!res) _exit(3);
    res->ran = 1;
    snprintf(res->version, sizeof res->version, "%s", e->version());
    engine_run er;
    memset(&er, 0, sizeof er);
    er.e = e;
    er.rc = rc;
    er.res = res;
    uint64_t w0 = 0, b0 = 0, c0 = 0, w1 = 0, b1 = 0, c1 = 0;
    proc_io3(&w0, &b0, &c0);
    double t0 = now_sec();
    res->ok = run_engine(&er) == 0;
    res->total_seconds = now_sec() - t0;
    if (!res->ok) {
        snprintf(res->error, sizeof res->error, "%s", er.err);
        progress("[%s] FAILED: %s\n", e->name, er.err);
    }
    proc_io3(&w1, &b1, &c1);
    res->wchar_bytes = w1 - w0;
    res->disk_write_bytes = b1 - b0;
    res->cancelled_bytes = c1 - c0;
    res->write_amp = res->user_bytes ? (double)res->wchar_bytes / (double)res->user_bytes : 0.0;
    uint64_t dev = res->disk_write_bytes > res->cancelled_bytes
                       ? res->disk_write_bytes - res->cancelled_bytes
                       : 0;
    res->device_write_amp = res->user_bytes ? (double)dev / (double)res->user_bytes : 0.0;
    res->maxrss_kb = proc_status_kb("VmHWM");
    res->loadavg_end = loadavg1();
    value_gen_free(&er.vg);
    const char *p = (const char *)res;
    size_t left = sizeof *res;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(4);
        p += n;
        left -= (size_t)n;
    }
    close(fd);
    free(res);
    _exit(0);
}

static void run_engine_in_child(const bench_engine_ops *e, const run_config *rc,
                                engine_result *res) {
    memset(res, 0, sizeof *res);
    res->ran = 1;
    snprintf(res->version, sizeof res->version, "%s", e->version());
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(res->error, sizeof res->error, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(res->error, sizeof res->error, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(e, rc, fds[1]);
    }
    close(fds[1]);
    char *p = (char *)res;
    size_t got = 0;
    while (got < sizeof *res) {
        ssize_t n = read(fds[0], p + got, sizeof *res - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    if (got != sizeof *res) {
        memset(res, 0, sizeof *res);
        res->ran = 1;
        snprintf(res->version, sizeof res->version, "%s", e->version());
        if (WIFSIGNALED(status))
            snprintf(res->error, sizeof res->error, "child killed by signal %d (%s)",
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(res->error, sizeof res->error, "child exited with status %d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        progress("[%s] FAILED: %s\n", e->name, res->error);
    }
    if (ru.ru_maxrss > 0) res->maxrss_kb = (uint64_t)ru.ru_maxrss;
}

/* ---- repeated runs -------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(n - 1) / 2];
}

/* Folds an engine's repeated runs into one result: per workload the run
 * with the median throughput (its latencies with it), per resource figure
 * the median. A failed run fails the engine. */
static void aggregate(engine_result *runs, int n, engine_result *out) {
    for (int r = 0; r < n; r++) {
        if (!runs[r].ok) {
            *out = runs[r];
            return;
        }
    }
    *out = runs[0];
    out->nruns = n;
    double v[MAX_REPEAT];
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!runs[0].wl[wl].ran) continue;
        for (int r = 0; r < n; r++) v[r] = runs[r].wl[wl].ops_per_sec;
        double med = median(v, n);
        int pick = 0;
        for (int r = 0; r < n; r++)
            if (runs[r].wl[wl].ops_per_sec == med) pick = r;
        out->wl[wl] = runs[pick].wl[wl];
        out->wl[wl].nruns = n;
        for (int r = 0; r < n; r++) {
            out->wl[wl].runs_ops[r] = runs[r].wl[wl].ops_per_sec;
            out->wl[wl].check_failed |= runs[r].wl[wl].check_failed;
        }
    }
#define MEDIAN_OF(field, type)                                          \
    do {                                                                \
        for (int r = 0; r < n; r++) v[r] = (double)runs[r].field;       \
        out->field = (type)median(v, n);                                \
    } while (0)
    MEDIAN_OF(write_amp, double);
    MEDIAN_OF(device_write_amp, double);
    MEDIAN_OF(cancelled_bytes, uint64_t);
    MEDIAN_OF(space_bytes, uint64_t);
    MEDIAN_OF(maxrss_kb, uint64_t);
    MEDIAN_OF(rss_anon_kb, uint64_t);
    MEDIAN_OF(rss_file_kb, uint64_t);
    MEDIAN_OF(settle_seconds, double);
    MEDIAN_OF(total_seconds, double);
    MEDIAN_OF(user_bytes, uint64_t);
    MEDIAN_OF(wchar_bytes, uint64_t);
    MEDIAN_OF(disk_write_bytes, uint64_t);
#undef MEDIAN_OF
    for (int r = 0; r < n; r++) out->runs_loadavg[r] = runs[r].loadavg_end;
}

/* ---- output -------------------------------------------------------------- */

static void fmt_thousands(char *out, size_t cap, double v) {
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        out[o++] = digits[i];
        size_t rest = n - 1 - i;
        if (rest > 0 && rest % 3 == 0 && o + 2 < cap) out[o++] = ',';
    }
    out[o] = '\0';
}

static void fmt_us(char *out, size_t cap, double us) {
    if (us < 10) snprintf(out, cap, "%.2f", us);
    else if (us < 100) snprintf(out, cap, "%.1f", us);
    else snprintf(out, cap, "%.0f", us);
}

static int usable(const engine_result *r, int wl) { return r->ok && r->wl[wl].ran; }

/* Best peer (not weir) for a workload by throughput; -1 if none. */
static int best_peer(const run_config *rc, const engine_result *res, int wl) {
    int best = -1;
    for (int i = 1; i < ENGINE_COUNT; i++) {
        if (!rc->engine_on[i] || !usable(&res[i], wl)) continue;
        if (best < 0 || res[i].wl[wl].ops_per_sec > res[best].wl[wl].ops_per_sec) best = i;
    }
    return best;
}

static void print_tables(FILE *out, const run_config *rc, const engine_result *res) {
    fprintf(out, "### Throughput (operations per second, higher is better)\n\n| workload |");
    for (int i = 0; i < ENGINE_COUNT; i++)
        if (rc->engine_on[i]) fprintf(out, " %s |", all_engines[i]->name);
    fprintf(out, " weir / best peer |\n|---|");
    for (int i = 0; i < ENGINE_COUNT; i++)
        if (rc->engine_on[i]) fprintf(out, "---:|");
    fprintf(out, "---:|\n");
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!rc->wl_on[wl]) continue;
        fprintf(out, "| %s |", wl_defs[wl].name);
        for (int i = 0; i < ENGINE_COUNT; i++) {
            if (!rc->engine_on[i]) continue;
            if (!usable(&res[i], wl)) {
                fprintf(out, " error |");
                continue;
            }
            char buf[48];
            fmt_thousands(buf, sizeof buf, res[i].wl[wl].ops_per_sec);
            fprintf(out, " %s%s |", buf, res[i].wl[wl].check_failed ? " (check failed)" : "");
        }
        int b = best_peer(rc, res, wl);
        if (rc->engine_on[0] && usable(&res[0], wl) && b >= 0 && res[b].wl[wl].ops_per_sec > 0)
            fprintf(out, " %.2f (vs %s) |\n",
                    res[0].wl[wl].ops_per_sec / res[b].wl[wl].ops_per_sec, all_engines[b]->name);
        else
            fprintf(out, " - |\n");
    }
    static const int rww[2] = {WL_READWHILEWRITING, WL_READWHILEWRITING_Z};
    for (int v = 0; v < 2; v++) {
        int wl = rww[v];
        if (!rc->wl_on[wl]) continue;
        /* The writer shares the CPUs with the measured reader: a faster
         * writer leaves the reader less, so its rate belongs beside it. */
        fprintf(out, "| (%s: the writer's puts/s) |", wl_defs[wl].name);
        for (int i = 0; i < ENGINE_COUNT; i++) {
            if (!rc->engine_on[i]) continue;
            if (!usable(&res[i], wl)) {
                fprintf(out, " error |");
                continue;
            }
            char buf[48];
            fmt_thousands(buf, sizeof buf, res[i].wl[wl].writer_ops_per_sec);
            fprintf(out, " %s |", buf);
        }
        fprintf(out, " - |\n");
    }

    fprintf(out, "\n### Latency p50 / p99 (microseconds per operation, lower is better)\n\n"
                 "| workload |");
    for (int i = 0; i < ENGINE_COUNT; i++)
        if (rc->engine_on[i]) fprintf(out, " %s |", all_engines[i]->name);
    fprintf(out, "\n|---|");
    for (int i = 0; i < ENGINE_COUNT; i++)
        if (rc->engine_on[i]) fprintf(out, "---:|");
    fprintf(out, "\n");
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!rc->wl_on[wl]) continue;
        fprintf(out, "| %s%s |", wl_defs[wl].name, wl == WL_FILLBATCH ? " (per batch of 100)" : "");
        for (int i = 0; i < ENGINE_COUNT; i++) {
            if (!rc->engine_on[i]) continue;
            if (!usable(&res[i], wl)) {
                fprintf(out, " error |");
                continue;
            }
            char a[24], b[24];
            fmt_us(a, sizeof a, res[i].wl[wl].p50_us);
            fmt_us(b, sizeof b, res[i].wl[wl].p99_us);
            fprintf(out, " %s / %s |", a, b);
        }
        fprintf(out, "\n");
    }

    fprintf(out, "\n### Resources over the whole run (lower is better)\n\n| metric |");
    for (int i = 0; i < ENGINE_COUNT; i++)
        if (rc->engine_on[i]) fprintf(out, " %s |", all_engines[i]->name);
    fprintf(out, " best peer / weir |\n|---|");
    for (int i = 0; i < ENGINE_COUNT; i++)
        if (rc->engine_on[i]) fprintf(out, "---:|");
    fprintf(out, "---:|\n");
    static const char *const metric_names[] = {
        "write amplification: write() bytes / user bytes",
        "write amplification: page-cache bytes dirtied / user bytes",
        "space on disk of the main DB after close (MiB)",
        "peak RSS (MiB)",
        "background work after loads (s, not a ratio)",
    };
    for (int m = 0; m < 5; m++) {
        fprintf(out, "| %s |", metric_names[m]);
        double weir_v = -1, best = -1;
        int best_i = -1;
        for (int i = 0; i < ENGINE_COUNT; i++) {
            if (!rc->engine_on[i]) continue;
            if (!res[i].ok) {
                fprintf(out, " error |");
                continue;
            }
            double v = m == 0   ? res[i].write_amp
                       : m == 1 ? res[i].device_write_amp
                       : m == 2 ? (double)res[i].space_bytes / 1048576.0
                       : m == 3 ? (double)res[i].maxrss_kb / 1024.0
                                : res[i].settle_seconds;
            fprintf(out, m <= 1 ? " %.2f |" : " %.1f |", v);
            if (i == 0) weir_v = v;
            else if (best_i < 0 || v < best) best = v, best_i = i;
        }
        if (m < 4 && weir_v > 0 && best_i >= 0)
            fprintf(out, " %.2f (vs %s) |\n", best / weir_v, all_engines[best_i]->name);
        else
            fprintf(out, " - |\n");
    }
    int any_error = 0;
    for (int i = 0; i < ENGINE_COUNT; i++)
        if (rc->engine_on[i] && !res[i].ok) any_error = 1;
    if (any_error) {
        fprintf(out, "\nErrors:\n");
        for (int i = 0; i < ENGINE_COUNT; i++)
            if (rc->engine_on[i] && !res[i].ok)
                fprintf(out, "- %s: %s\n", all_engines[i]->name, res[i].error);
    }
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void read_first_line_value(const char *path, const char *key, char *out, size_t cap) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) != 0) continue;
        char *p = strchr(line, ':');
        if (!p) continue;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        p[strcspn(p, "\n")] = '\0';
        snprintf(out, cap, "%s", p);
        break;
    }
    fclose(f);
}

static const char *fs_name(long type) {
    switch ((unsigned long)type) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    case 0x2fc12fc1: return "zfs";
    case 0xF2F52010: return "f2fs";
    default: return "other";
    }
}

static int write_json(const char *path, const run_config *rc, const engine_result *res) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    struct utsname un;
    uname(&un);
    char cpu[256], mem[64];
    read_first_line_value("/proc/cpuinfo", "model name", cpu, sizeof cpu);
    read_first_line_value("/proc/meminfo", "MemTotal", mem, sizeof mem);
    struct statfs sfs;
    const char *fs = statfs(rc->db_base, &sfs) == 0 ? fs_name((long)sfs.f_type) : "unknown";
    time_t t = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));

    fprintf(f, "{\n  \"date\": \"%s\",\n  \"machine\": {\"nproc\": %ld, \"cpu\": ", when,
            sysconf(_SC_NPROCESSORS_ONLN));
    json_str(f, cpu);
    fprintf(f, ", \"memory\": ");
    json_str(f, mem);
    fprintf(f, ", \"kernel\": ");
    json_str(f, un.release);
    fprintf(f, ", \"compiler\": ");
    json_str(f, "gcc " __VERSION__);
    fprintf(f, ", \"db_dir\": ");
    json_str(f, rc->db_base);
    fprintf(f, ", \"db_fs\": ");
    json_str(f, fs);
    fprintf(f, "},\n  \"settings\": {\"num\": %" PRIu64 ", \"key_size\": %d, \"value_size\": %zu, "
               "\"write_buffer_size\": %zu, \"cache_size\": %zu, \"bloom_bits\": %d, "
               "\"batch_size\": %d, \"seek_nexts\": %d, \"latency_sampling\": \"every %uth op\", "
               "\"compression\": \"none\", \"values\": \"50%% compressible (db_bench style)\", "
               "\"repeat\": %d, \"key_distribution\": \"%s\", \"zipf_theta\": %.2f, "
               "\"zipf_zeta\": %.6f, \"zipf_scrambled\": true},\n",
            rc->cfg.num, KEY_SIZE, rc->cfg.value_size, rc->cfg.write_buffer_size,
            rc->cfg.cache_size, rc->cfg.bloom_bits, BATCH_SIZE, SEEK_NEXTS, SAMPLE_MASK + 1,
            rc->repeat, dist_names[rc->dist], ZIPF_THETA, rc->zipf ? rc->zipf->zetan : 0.0);
    fprintf(f, "  \"workloads\": [");
    int first = 1;
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!rc->wl_on[wl]) continue;
        fprintf(f, "%s{\"name\": \"%s\", \"base\": \"%s\", \"distribution\": %s, "
                   "\"description\": ",
                first ? "" : ", ", wl_defs[wl].name, wl_defs[wl].base,
                !wl_defs[wl].keyed ? "null" : wl_defs[wl].zipfian ? "\"zipfian\"" : "\"uniform\"");
        json_str(f, wl_defs[wl].help);
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "],\n  \"engines\": [\n");
    first = 1;
    for (int i = 0; i < ENGINE_COUNT; i++) {
        if (!rc->engine_on[i]) continue;
        const engine_result *r = &res[i];
        fprintf(f, "%s    {\"name\": \"%s\", \"version\": ", first ? "" : ",\n",
                all_engines[i]->name);
        json_str(f, r->version);
        fprintf(f, ", \"settings\": ");
        json_str(f, all_engines[i]->settings());
        fprintf(f, ", \"ok\": %s, \"error\": ", r->ok ? "true" : "false");
        json_str(f, r->error);
        fprintf(f,
                ",\n     \"user_bytes\": %" PRIu64 ", \"write_syscall_bytes\": %" PRIu64
                ", \"dirtied_bytes\": %" PRIu64 ", \"cancelled_write_bytes\": %" PRIu64
                ", \"write_amplification\": %.4f, \"device_write_amplification\": %.4f"
                ", \"space_bytes\": %" PRIu64 ", \"peak_rss_kb\": %" PRIu64
                ", \"rss_anon_kb_at_end\": %" PRIu64 ", \"rss_file_kb_at_end\": %" PRIu64
                ", \"settle_seconds\": %.2f, \"total_seconds\": %.2f,\n     \"results\": {",
                r->user_bytes, r->wchar_bytes, r->disk_write_bytes, r->cancelled_bytes,
                r->write_amp, r->device_write_amp, r->space_bytes,
                r->maxrss_kb, r->rss_anon_kb, r->rss_file_kb, r->settle_seconds, r->total_seconds);
        int wfirst = 1;
        for (int wl = 0; wl < WL_COUNT; wl++) {
            if (!r->wl[wl].ran) continue;
            const wl_result *w = &r->wl[wl];
            fprintf(f,
                    "%s\n       \"%s\": {\"ops\": %" PRIu64 ", \"seconds\": %.4f, "
                    "\"ops_per_sec\": %.1f, \"p50_us\": %.3f, \"p99_us\": %.3f, "
                    "\"mono_start\": %.6f, \"mono_end\": %.6f, \"check_failed\": %s, \"note\": ",
                    wfirst ? "" : ",", wl_defs[wl].name, w->ops, w->seconds, w->ops_per_sec,
                    w->p50_us, w->p99_us, w->mono_start, w->mono_end, w->check_failed ? "true" : "false");
            json_str(f, w->note);
            if (wl == WL_READWHILEWRITING || wl == WL_READWHILEWRITING_Z)
                fprintf(f, ", \"writer_ops_per_sec\": %.1f", w->writer_ops_per_sec);
            fprintf(f, ", \"ops_per_sec_runs\": [");
            for (int k = 0; k < w->nruns; k++) fprintf(f, "%s%.1f", k ? ", " : "", w->runs_ops[k]);
            fprintf(f, "]");
            fprintf(f, "}");
            wfirst = 0;
        }
        fprintf(f, "},\n     \"loadavg_at_end_of_each_run\": [");
        for (int k = 0; k < r->nruns; k++) fprintf(f, "%s%.2f", k ? ", " : "", r->runs_loadavg[k]);
        fprintf(f, "],\n     \"engine_stats\": ");
        json_str(f, r->describe);
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "\n  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- command line -------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: weir-bench [options]\n"
            "Runs the same workloads on weir, RocksDB (default options and tuned for\n"
            "reads), LevelDB and LMDB, one engine after the other (each in its own child\n"
            "process), and prints Markdown tables with each engine's figures and weir's\n"
            "ratio to the best peer. Progress goes to stderr, the tables to stdout.\n\n"
            "  --num N            keys per workload [1000000]\n"
            "  --value-size N     value bytes [100]; keys are always 16 bytes\n"
            "  --engines LIST     comma list of weir,rocksdb,rocksdb-tuned,leveldb,lmdb [all]\n"
            "  --workloads LIST   comma list of workloads [all]\n"
            "  --dist D           key choice of readrandom, readmissing, seekrandom and\n"
            "                     readwhilewriting: uniform, zipfian (theta %.2f, scrambled)\n"
            "                     or both (each runs once per distribution) [both]\n"
            "  --db DIR           scratch directory; each engine uses DIR/<engine>/ and\n"
            "                     deletes what it made there [/tmp/weir-bench]\n"
            "  --json FILE        also write machine-readable results to FILE\n"
            "  --repeat N         run every engine N times (rounds in rotating order) and\n"
            "                     report each workload's median run [1]\n"
            "  --keep             keep the databases after the run\n"
            "  --self-check       check the key generators (permutations, zipfian) and exit\n"
            "  --help             this text\n\n"
            "Every engine: 64 MiB write buffer, 64 MiB block cache, 10-bit bloom filters,\n"
            "no compression, write-ahead log without fsync (LMDB: MDB_NOSYNC, no log).\n"
            "Before it starts, weir-bench checks that DIR's file system has room for the\n"
            "largest database of the run.\n\n"
            "Workloads (--workloads takes the names without \"(zipfian)\"):\n",
            ZIPF_THETA);
    for (int wl = 0; wl < WL_COUNT; wl++)
        fprintf(f, "  %-27s %s\n", wl_defs[wl].name, wl_defs[wl].help);
}

static int parse_list(const char *arg, const char *const *names, int count, int *on,
                      const char *what) {
    memset(on, 0, sizeof(int) * (size_t)count);
    char *copy = strdup(arg), *save = NULL;
    if (!copy) return -1;
    int any = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        int found = 0;
        for (int i = 0; i < count; i++) {
            if (strcmp(tok, names[i]) == 0) {
                on[i] = 1;
                found = any = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "weir-bench: unknown %s \"%s\" (see --help)\n", what, tok);
            free(copy);
            return -1;
        }
    }
    free(copy);
    if (!any) fprintf(stderr, "weir-bench: empty %s list\n", what);
    return any ? 0 : -1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out, const char *what) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
        fprintf(stderr, "weir-bench: %s must be an integer in %" PRIu64 "..%" PRIu64 ", not %s\n",
                what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- --self-check: the key generators ---------------------------------- */

static int check_failures;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s ", ok ? "ok  " : "FAIL");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (!ok) check_failures++;
}

/* P(rank <= r) for the generator above: Gray's inverse solved for u. */
static double zipf_cdf(const zipf_gen *z, uint64_t r) {
    if (r + 1 >= z->n) return 1.0;
    if (r == 0) return 1.0 / z->zetan;
    double low = z->rank1_bound / z->zetan;
    if (r == 1) return low;
    double u = (pow((double)(r + 1) / (double)z->n, 1.0 / z->alpha) - 1.0 + z->eta) / z->eta;
    return u < low ? low : u > 1.0 ? 1.0 : u;
}

/* Checks what the figures depend on: permutations are bijections, the
 * zipfian draws ranks with the frequencies of its formula and spreads the
 * hot keys, every draw is a key of the run, and a seed always gives the
 * same keys. Deterministic (fixed seeds), well under a second. */
static int self_check(void) {
    fprintf(stderr, "weir-bench --self-check\n");
    static const uint64_t perm_sizes[] = {1, 2, 3, 4, 5, 16, 17, 1000, 65537, 1000003};
    for (size_t k = 0; k < sizeof perm_sizes / sizeof perm_sizes[0]; k++) {
        uint64_t n = perm_sizes[k], bad = 0;
        unsigned char *seen = calloc((size_t)n, 1);
        if (!seen) return 1;
        permuter p;
        permuter_init(&p, n, SEED + k);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t x = permute(&p, i);
            if (x >= n || seen[x]) bad++;
            else seen[x] = 1;
        }
        free(seen);
        check(bad == 0, "permutation of [0, %" PRIu64 ") is a bijection (%" PRIu64 " collisions)",
              n, bad);
    }

    double z1 = zeta(1, ZIPF_THETA, ZETA_EXACT_TERMS), z2 = zeta(2, ZIPF_THETA, ZETA_EXACT_TERMS);
    check(z1 == 1.0 && fabs(z2 - (1.0 + pow(2.0, -ZIPF_THETA))) < 1e-15,
          "zeta(1) = 1, zeta(2) = 1 + 2^-theta");
    double exact = zeta(3000000, ZIPF_THETA, 3000000), approx = zeta(3000000, ZIPF_THETA, 1000);
    check(fabs(approx - exact) / exact < 1e-10,
          "zeta(3M) by Euler-Maclaurin after 1000 terms matches the exact sum (%.3g relative)",
          fabs(approx - exact) / exact);

    /* Rank frequencies against the formula's CDF: within 5 standard
     * deviations of a binomial count. */
    {
        static zipf_gen z;
        zipf_init(&z, 1000, ZIPF_THETA);
        enum { DRAWS = 4000000 };
        static uint64_t hits[1000];
        memset(hits, 0, sizeof hits);
        rng r = rng_for(99, 0);
        for (int i = 0; i < DRAWS; i++) hits[zipf_rank(&z, &r)]++;
        static const uint64_t ranks[] = {0, 1, 2, 9, 99, 499, 998};
        uint64_t below = 0, next = 0;
        for (size_t k = 0; k < sizeof ranks / sizeof ranks[0]; k++) {
            for (; next <= ranks[k]; next++) below += hits[next];
            double p = zipf_cdf(&z, ranks[k]), got = (double)below / DRAWS;
            double sigma = sqrt(p * (1.0 - p) / DRAWS);
            check(fabs(got - p) <= 5.0 * sigma + 1e-12,
                  "n=1000: P(rank <= %" PRIu64 ") drawn %.5f, formula %.5f", ranks[k], got, p);
        }
        check(fabs(1.0 / z.zetan - 0.12938) < 1e-4, "n=1000: the hottest rank's share is 1/zeta "
              "= %.5f (0.12938 by an independent sum)", 1.0 / z.zetan);
    }

    /* At a benchmark's size: keys in range, the hottest key's share, the
     * hot keys spread over the key space, and fixed seeds. */
    {
        enum { N = 10000000, DRAWS = 1000000, SLICES = 64 };
        static zipf_gen z;
        zipf_init(&z, N, ZIPF_THETA);
        run_config rc;
        memset(&rc, 0, sizeof rc);
        rc.cfg.num = N;
        rc.zipf = &z;
        key_chooser a = chooser_for(&rc, WL_READRANDOM_Z, 0);
        key_chooser b = chooser_for(&rc, WL_READRANDOM_Z, 0);
        key_chooser other = chooser_for(&rc, WL_SEEKRANDOM_Z, 0);
        uint64_t hottest = permute(&z.scramble, 0), hot = 0, out = 0, differ = 0, same_other = 0;
        for (int i = 0; i < DRAWS; i++) {
            uint64_t k = choose_key(&a);
            out += k >= N;
            hot += k == hottest;
            differ += k != choose_key(&b);
            same_other += k == choose_key(&other);
        }
        double p = 1.0 / z.zetan, got = (double)hot / DRAWS, sigma = sqrt(p * (1 - p) / DRAWS);
        check(out == 0, "n=10M: every key drawn is below n (%" PRIu64 " out of range)", out);
        check(fabs(got - p) <= 5 * sigma,
              "n=10M: the hottest key (key %" PRIu64 ") drew %.4f of the reads, 1/zeta = %.4f",
              hottest, got, p);
        check(differ == 0, "the same workload seed gives the same keys");
        check(same_other < DRAWS / 4, "another workload's seed gives other keys (%" PRIu64
              " of %d equal)", same_other, DRAWS);
        int slice_hit[SLICES] = {0}, slices = 0;
        for (uint64_t rank = 0; rank < SLICES; rank++) {
            int sl = (int)(permute(&z.scramble, rank) / (N / SLICES + 1));
            if (!slice_hit[sl]++) slices++;
        }
        /* A random placement of 64 keys into 64 slices covers about 40. */
        check(slices >= 30, "n=10M: the 64 hottest keys fall in %d of %d equal slices of the key "
              "space", slices, SLICES);
        key_chooser u = chooser_for(&rc, WL_READRANDOM, 0);
        check(u.zipf == NULL, "readrandom (uniform) draws no zipfian keys");
    }
    fprintf(stderr, "weir-bench --self-check: %s\n", check_failures ? "FAILED" : "all passed");
    return check_failures ? 1 : 0;
}

/* Bytes the run needs free under --db: without --keep, one database at a
 * time exists, the largest being the main one (fillrandom + overwrite +
 * readwhilewriting), which takes up to about 2.5x the bytes put while
 * compactions are behind (LMDB: about 1.6x); 4x plus 512 MiB of logs and
 * slack covers it. With --keep, every engine keeps three databases. */
static uint64_t space_needed(const run_config *rc) {
    uint64_t user = rc->cfg.num * (uint64_t)(KEY_SIZE + rc->cfg.value_size);
    uint64_t engines = 0;
    for (int i = 0; i < ENGINE_COUNT; i++) engines += rc->engine_on[i] != 0;
    uint64_t dbs = rc->keep ? engines * 7 : 4;
    return dbs * user + (512ull << 20);
}

int main(int argc, char **argv) {
    static run_config rc;
    rc.cfg.num = 1000000;
    rc.cfg.key_size = KEY_SIZE;
    rc.cfg.value_size = 100;
    rc.cfg.write_buffer_size = 64u << 20;
    rc.cfg.cache_size = 64u << 20;
    rc.cfg.bloom_bits = 10;
    rc.repeat = 1;
    rc.dist = DIST_BOTH;
    int run_self_check = 0;
    snprintf(rc.db_base, sizeof rc.db_base, "/tmp/weir-bench");
    for (int i = 0; i < ENGINE_COUNT; i++) rc.engine_on[i] = 1;
    for (int i = 0; i < WL_COUNT; i++) rc.wl_on[i] = 1;

    static const struct option longopts[] = {
        {"num", required_argument, NULL, 'n'},       {"value-size", required_argument, NULL, 'v'},
        {"engines", required_argument, NULL, 'e'},   {"workloads", required_argument, NULL, 'w'},
        {"db", required_argument, NULL, 'd'},        {"json", required_argument, NULL, 'j'},
        {"keep", no_argument, NULL, 'k'},            {"help", no_argument, NULL, 'h'},
        {"repeat", required_argument, NULL, 'r'},    {"dist", required_argument, NULL, 'D'},
        {"self-check", no_argument, NULL, 'S'},
        {NULL, 0, NULL, 0}};
    const char *engine_names[ENGINE_COUNT];
    for (int i = 0; i < ENGINE_COUNT; i++) engine_names[i] = all_engines[i]->name;
    /* --workloads names a read workload once for both of its variants. */
    const char *wl_base_names[WL_COUNT];
    for (int i = 0; i < WL_COUNT; i++) wl_base_names[i] = wl_defs[i].base;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_u64(optarg, 1, 1000000000000ull, &v, "--num") != 0) return 2;
            rc.cfg.num = v;
            break;
        case 'v':
            if (parse_u64(optarg, 1, 1u << 20, &v, "--value-size") != 0) return 2;
            rc.cfg.value_size = (size_t)v;
            break;
        case 'e':
            if (parse_list(optarg, engine_names, ENGINE_COUNT, rc.engine_on, "engine") != 0)
                return 2;
            break;
        case 'w':
            if (parse_list(optarg, wl_base_names, WL_COUNT, rc.wl_on, "workload") != 0) return 2;
            break;
        case 'd':
            if (strlen(optarg) == 0 || strlen(optarg) > 3000) {
                fprintf(stderr, "weir-bench: --db needs a directory path (at most 3000 bytes)\n");
                return 2;
            }
            snprintf(rc.db_base, sizeof rc.db_base, "%s", optarg);
            break;
        case 'j': rc.json_path = optarg; break;
        case 'k': rc.keep = 1; break;
        case 'r':
            if (parse_u64(optarg, 1, MAX_REPEAT, &v, "--repeat") != 0) return 2;
            rc.repeat = (int)v;
            break;
        case 'D':
            rc.dist = 0;
            for (int d = DIST_UNIFORM; d <= DIST_BOTH; d++)
                if (strcmp(optarg, dist_names[d]) == 0) rc.dist = d;
            if (!rc.dist) {
                fprintf(stderr, "weir-bench: --dist must be uniform, zipfian or both, not %s\n",
                        optarg);
                return 2;
            }
            break;
        case 'S': run_self_check = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weir-bench: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return 2;
    }
    if (run_self_check) return self_check();
    /* The keyed read workloads run once per distribution asked for. */
    int any_zipfian = 0;
    for (int wl = 0; wl < WL_COUNT; wl++) {
        if (!wl_defs[wl].keyed) continue;
        if (!(rc.dist & (wl_defs[wl].zipfian ? DIST_ZIPFIAN : DIST_UNIFORM))) rc.wl_on[wl] = 0;
        any_zipfian |= rc.wl_on[wl] && wl_defs[wl].zipfian;
    }
    if (make_dirs(rc.db_base) != 0) {
        fprintf(stderr, "weir-bench: cannot create %s: %s\n", rc.db_base, strerror(errno));
        return 1;
    }
    struct statvfs vfs;
    if (statvfs(rc.db_base, &vfs) != 0) {
        fprintf(stderr, "weir-bench: cannot read the free space of %s: %s\n", rc.db_base,
                strerror(errno));
        return 1;
    }
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize, need = space_needed(&rc);
    if (free_bytes < need) {
        fprintf(stderr,
                "weir-bench: %" PRIu64 " keys need about %.1f GiB free under %s%s, and it has "
                "%.1f GiB; free some space or point --db at a larger file system\n",
                rc.cfg.num, (double)need / (1ull << 30), rc.db_base,
                rc.keep ? " with --keep" : "", (double)free_bytes / (1ull << 30));
        return 1;
    }

    progress("weir-bench: %" PRIu64 " keys, 16-byte keys, %zu-byte values, db under %s "
             "(%.1f GiB free), key choice of the random reads: %s\n",
             rc.cfg.num, rc.cfg.value_size, rc.db_base, (double)free_bytes / (1ull << 30),
             dist_names[rc.dist]);
    static zipf_gen zipf;
    if (any_zipfian) {
        double t = now_sec();
        zipf_init(&zipf, rc.cfg.num, ZIPF_THETA);
        rc.zipf = &zipf;
        progress("weir-bench: zipfian over %" PRIu64 " keys, theta %.2f: the hottest key draws "
                 "%.2f%% of the reads (constants computed in %.1f s)\n",
                 rc.cfg.num, ZIPF_THETA, 100.0 / zipf.zetan, now_sec() - t);
    }
    static engine_result runs[ENGINE_COUNT][MAX_REPEAT];
    static engine_result res[ENGINE_COUNT];
    int failures = 0;
    /* Rounds rotate the engine order, so a burst of load from elsewhere on
     * the machine does not always land on the same engine. */
    for (int round = 0; round < rc.repeat; round++) {
        for (int k = 0; k < ENGINE_COUNT; k++) {
            int i = (k + round) % ENGINE_COUNT;
            if (!rc.engine_on[i]) continue;
            engine_result *er = &runs[i][round];
            progress("== %s %s (round %d of %d)\n", all_engines[i]->name,
                     all_engines[i]->version(), round + 1, rc.repeat);
            run_engine_in_child(all_engines[i], &rc, er);
            /* Write back this engine's dirty pages now rather than during
             * the next engine's run. */
            sync();
            if (er->ok)
                progress("[%s] done in %.1f s: write amplification %.2f, peak RSS %.1f MiB, "
                         "%.1f MiB on disk, load average %.2f\n",
                         all_engines[i]->name, er->total_seconds, er->write_amp,
                         (double)er->maxrss_kb / 1024.0, (double)er->space_bytes / 1048576.0,
                         er->loadavg_end);
        }
    }
    for (int i = 0; i < ENGINE_COUNT; i++) {
        if (!rc.engine_on[i]) continue;
        aggregate(runs[i], rc.repeat, &res[i]);
        if (!res[i].ok) failures++;
    }

    printf("weir-bench: %" PRIu64 " keys of 16 bytes, %zu-byte values; 64 MiB write buffer, "
           "64 MiB cache, 10-bit bloom filters, no compression, WAL without fsync; random reads "
           "%s%s. weir / best peer: against the fastest of the other engines, the tuned RocksDB "
           "included.\n\n",
           rc.cfg.num, rc.cfg.value_size,
           rc.dist == DIST_BOTH      ? "uniform and zipfian (theta 0.99, scrambled)"
           : rc.dist == DIST_ZIPFIAN ? "zipfian (theta 0.99, scrambled)"
                                     : "uniform",
           rc.repeat > 1 ? "; median of the rounds" : "");
    print_tables(stdout, &rc, res);
    int checks_failed = 0;
    for (int i = 0; i < ENGINE_COUNT; i++)
        for (int wl = 0; wl < WL_COUNT; wl++)
            if (rc.engine_on[i] && res[i].wl[wl].check_failed) {
                fprintf(stderr, "weir-bench: %s %s returned wrong data: %s\n",
                        all_engines[i]->name, wl_defs[wl].name, res[i].wl[wl].note);
                checks_failed++;
            }
    if (rc.json_path && write_json(rc.json_path, &rc, res) != 0) {
        fprintf(stderr, "weir-bench: cannot write %s: %s\n", rc.json_path, strerror(errno));
        return 1;
    }
    return failures || checks_failed ? 1 : 0;
}
