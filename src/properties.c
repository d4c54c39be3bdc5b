/*
 * properties.c -- weir_property: engine counters, latency histograms and
 * the human-readable summaries behind `weir stats` and `weir levels`.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "bloom.h"
#include "cache.h"
#include "compress.h"
#include "crc32c.h"
#include "db_impl.h"
#include "filename.h"
#include "sst.h"

/* ---- latency histograms --------------------------------------------------- */

static int hist_bucket(uint64_t nanos) {
    if (nanos < 2) return 0;
    int log = 63 - __builtin_clzll(nanos);
    /* Two bits below the leading one pick a quarter of the octave. */
    int frac = log >= 2 ? (int)((nanos >> (log - 2)) & 3) : (int)((nanos << (2 - log)) & 3);
    int b = log * 4 + frac;
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

static uint64_t hist_bucket_value(int b) {
    int log = b / 4, frac = b % 4;
    return ((UINT64_C(4) + (uint64_t)frac) << log) >> 2;
}

void hist_add(latency_hist *h, uint64_t nanos) {
    atomic_fetch_add_explicit(&h->buckets[hist_bucket(nanos)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_nanos, nanos, memory_order_relaxed);
}

uint64_t hist_percentile(latency_hist *h, double p) {
    uint64_t total = 0, counts[HIST_BUCKETS];
    for (int i = 0; i < HIST_BUCKETS; i++) {
        counts[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        total += counts[i];
    }
    if (total == 0) return 0;
    uint64_t want = (uint64_t)((double)total * p / 100.0);
    if (want >= total) want = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += counts[i];
        if (seen > want) return hist_bucket_value(i);
    }
    return hist_bucket_value(HIST_BUCKETS - 1);
}


/* ---- properties ------------------------------------------------------------ */

static char *dup_printf(const char *fmt, ...) WEIR_PRINTF(1, 2);
static char *dup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static char *counters_text(weir_db *db, uint64_t total_sst, uint64_t mem_bytes) {
    db_stats *s = &db->stats;
    block_cache_stats cs;
    block_cache_get_stats(db->block_cache, &cs);
    uint64_t lookups, bloom_useful;
    table_cache_lookup_stats(db->tc, &lookups, &bloom_useful);
    char *extra = dup_printf(
        "block_cache_capacity %" PRIu64 "\nblock_cache_usage %" PRIu64 "\nblock_cache_pinned %" PRIu64
        "\nblock_cache_entries %" PRIu64 "\nblock_cache_hits %" PRIu64 "\nblock_cache_misses %" PRIu64
        "\nblock_cache_evictions %" PRIu64 "\ntable_lookups %" PRIu64 "\nbloom_useful %" PRIu64
        "\nopen_tables %d\npending_compaction_bytes %" PRIu64 "\nstops %" PRIu64
        "\nget_count %" PRIu64 "\nget_p50_ns %" PRIu64 "\nget_p99_ns %" PRIu64
        "\nwrite_count %" PRIu64 "\nwrite_p50_ns %" PRIu64 "\nwrite_p99_ns %" PRIu64
        "\ncompression %s\n",
        cs.capacity, cs.usage, cs.pinned, cs.entries, cs.hits, cs.misses, cs.evictions, lookups,
        bloom_useful, table_cache_open_count(db->tc), db->pending_compaction_bytes,
        stat_get(&s->stops), stat_get(&s->get_latency.count) * 16,
        hist_percentile(&s->get_latency, 50), hist_percentile(&s->get_latency, 99),
        stat_get(&s->put_latency.count) * 16, hist_percentile(&s->put_latency, 50),
        hist_percentile(&s->put_latency, 99), codec_name(db->opts.compression));
    if (!extra) return NULL;
    uint64_t user = stat_get(&s->user_bytes_written);
    uint64_t disk = stat_get(&s->wal_bytes_written) + stat_get(&s->flush_bytes_written) +
                    stat_get(&s->compaction_bytes_written);
    double wamp = user ? (double)disk / (double)user : 0.0;
    char *text = dup_printf(
        "%suser_bytes_written %" PRIu64 "\nwal_bytes_written %" PRIu64 "\nwal_syncs %" PRIu64
        "\nwrites %" PRIu64 "\nwrite_groups %" PRIu64 "\nflushes %" PRIu64
        "\nflush_bytes_written %" PRIu64 "\ncompactions %" PRIu64 "\ntrivial_moves %" PRIu64
        "\nread_triggered_compactions %" PRIu64
        "\ncompaction_bytes_read %" PRIu64 "\ncompaction_bytes_written %" PRIu64
        "\ncompaction_entries_dropped %" PRIu64 "\nwrite_amplification %.2f\nstall_micros %" PRIu64
        "\nslowdowns %" PRIu64 "\ngets %" PRIu64 "\nrecovered_records %" PRIu64
        "\nrecovered_torn_bytes %" PRIu64 "\nfiles_deleted %" PRIu64
        "\nwrites_refused_no_space %" PRIu64 "\nbackground_no_space %" PRIu64 "\ntotal_sst_bytes %" PRIu64
        "\nmemtable_bytes %" PRIu64 "\n",
        extra, user, stat_get(&s->wal_bytes_written), stat_get(&s->wal_syncs), stat_get(&s->writes),
        stat_get(&s->write_groups), stat_get(&s->flushes), stat_get(&s->flush_bytes_written),
        stat_get(&s->compactions), stat_get(&s->trivial_moves),
        stat_get(&s->read_triggered_compactions), stat_get(&s->compaction_bytes_read),
        stat_get(&s->compaction_bytes_written), stat_get(&s->compaction_entries_dropped), wamp,
        stat_get(&s->stall_micros), stat_get(&s->slowdowns), stat_get(&s->gets),
        stat_get(&s->recovered_records), stat_get(&s->recovered_torn_bytes),
        stat_get(&s->files_deleted), stat_get(&s->writes_refused_no_space),
        stat_get(&s->background_no_space), total_sst, mem_bytes);
    free(extra);
    return text;
}

int weir_property(weir_db *db, const char *name, char **value) {
    if (!value) return weir_set_error(WEIR_INVALID, "weir_property: value is NULL");
    *value = NULL;
    CHECK_DB(db, "weir_property");
    if (!name) return weir_set_error(WEIR_INVALID, "weir_property: name is NULL");
    char *s = NULL;
    int known = 1;
    pthread_mutex_lock(&db->mu);
    version *v = db->vs->current;
    uint64_t total_sst = 0;
    for (int l = 0; l < NUM_LEVELS; l++) total_sst += version_level_bytes(v, l);
    uint64_t mem_bytes = memtable_memory_usage(db->mem) + (db->imm ? memtable_memory_usage(db->imm) : 0);
    const char *lvl_prefix = "weir.num-files-at-level";
    if (strncmp(name, lvl_prefix, strlen(lvl_prefix)) == 0) {
        const char *num = name + strlen(lvl_prefix);
        char *endp;
        long level = strtol(num, &endp, 10);
        if (*num && !*endp && level >= 0 && level < NUM_LEVELS) s = dup_printf("%d", v->num_files[level]);
        else known = 0;
    } else if (strcmp(name, "weir.level-summary") == 0) {
        s = version_level_summary(v);
    } else if (strcmp(name, "weir.sstables") == 0) {
        s = version_table_list(v);
    } else if (strcmp(name, "weir.last-sequence") == 0) {
        s = dup_printf("%" PRIu64, db->vs->last_sequence);
    } else if (strcmp(name, "weir.memtable-bytes") == 0) {
        s = dup_printf("%" PRIu64, mem_bytes);
    } else if (strcmp(name, "weir.num-entries-active-memtable") == 0) {
        s = dup_printf("%" PRIu64, memtable_count(db->mem));
    } else if (strcmp(name, "weir.total-sst-bytes") == 0) {
        s = dup_printf("%" PRIu64, total_sst);
    } else if (strcmp(name, "weir.num-snapshots") == 0) {
        s = dup_printf("%d", db->num_snapshots);
    } else if (strcmp(name, "weir.background-error") == 0) {
        s = strdup(db->bg_error.code == WEIR_OK ? "" : db->bg_error.msg);
    } else if (strcmp(name, "weir.recovery") == 0) {
        s = strdup(db->recovery_note);
    } else if (strcmp(name, "weir.counters") == 0) {
        s = counters_text(db, total_sst, mem_bytes);
    } else if (strcmp(name, "weir.stats") == 0) {
        char *levels = version_level_summary(v);
        char *counters = counters_text(db, total_sst, mem_bytes);
        if (levels && counters)
            s = dup_printf("weir %s, %s\n** levels **\n%s** counters **\n%s", weir_version(), db->path,
                           levels, counters);
        free(levels);
        free(counters);
    } else {
        known = 0;
    }
    pthread_mutex_unlock(&db->mu);
    if (!known) return weir_set_error(WEIR_NOT_FOUND, "unknown property \"%s\"", name);
    if (!s) return weir_set_error(WEIR_NO_MEMORY, "out of memory reading property %s", name);
    *value = s;
    return WEIR_OK;
}

