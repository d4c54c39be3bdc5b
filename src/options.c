/*
 * options.c -- weir_options: defaults, the range-checked setters, and the
 * consistency check run at open. Nothing here touches a DB.
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

/* ---- options ------------------------------------------------------------ */

weir_options *weir_options_create(void) {
    weir_options *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->create_if_missing = 1;
    o->error_if_exists = 0;
    o->write_buffer_size = 64u << 20;
    o->block_size = 4096;
    o->read_triggered_compaction = 1;
    o->bloom_bits_per_key = 10;
    o->max_open_files = 1000;
    o->background_threads = 2;
    o->sync_mode = WEIR_SYNC_FLUSH;
    o->target_file_size = 64u << 20;
    o->max_bytes_for_level_base = 256u << 20;
    o->level0_compaction_trigger = 4;
    o->level0_slowdown_trigger = 20;
    o->level0_stop_trigger = 36;
    o->compression = WEIR_COMPRESSION_NONE;
    o->block_cache_size = 64u << 20;
    o->pending_compaction_soft = UINT64_C(64) << 30;
    o->pending_compaction_hard = UINT64_C(256) << 30;
    o->env = NULL;
    return o;
}

void weir_options_destroy(weir_options *o) { free(o); }

#define OPTS_CHECK(o, name)                                                   \
    do {                                                                      \
        if (!(o)) return weir_set_error(WEIR_INVALID, "%s: options is NULL", name); \
    } while (0)

static int range_error(const char *name, unsigned long long v, unsigned long long lo,
                       unsigned long long hi) {
    return weir_set_error(WEIR_INVALID, "%s: %llu is out of range [%llu, %llu]", name, v, lo, hi);
}

int weir_options_set_create_if_missing(weir_options *o, int yes) {
    OPTS_CHECK(o, "weir_options_set_create_if_missing");
    o->create_if_missing = yes != 0;
    return WEIR_OK;
}

int weir_options_set_error_if_exists(weir_options *o, int yes) {
    OPTS_CHECK(o, "weir_options_set_error_if_exists");
    o->error_if_exists = yes != 0;
    return WEIR_OK;
}

int weir_options_set_read_only(weir_options *o, int yes) {
    OPTS_CHECK(o, "weir_options_set_read_only");
    o->read_only = yes != 0;
    return WEIR_OK;
}

int weir_options_set_read_triggered_compaction(weir_options *o, int yes) {
    OPTS_CHECK(o, "weir_options_set_read_triggered_compaction");
    o->read_triggered_compaction = yes != 0;
    return WEIR_OK;
}

int weir_options_set_write_buffer_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_write_buffer_size");
    if (bytes < (64u << 10) || bytes > (UINT64_C(4) << 30))
        return range_error("write_buffer_size", bytes, 64u << 10, UINT64_C(4) << 30);
    o->write_buffer_size = bytes;
    return WEIR_OK;
}

int weir_options_set_block_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_block_size");
    if (bytes < 256 || bytes > (64u << 20)) return range_error("block_size", bytes, 256, 64u << 20);
    o->block_size = bytes;
    return WEIR_OK;
}

int weir_options_set_bloom_bits_per_key(weir_options *o, int bits) {
    OPTS_CHECK(o, "weir_options_set_bloom_bits_per_key");
    if (bits < 0 || bits > 64)
        return weir_set_error(WEIR_INVALID, "bloom_bits_per_key: %d is out of range [0, 64]", bits);
    o->bloom_bits_per_key = bits;
    return WEIR_OK;
}

int weir_options_set_max_open_files(weir_options *o, int n) {
    OPTS_CHECK(o, "weir_options_set_max_open_files");
    if (n < 16 || n > 1000000)
        return weir_set_error(WEIR_INVALID, "max_open_files: %d is out of range [16, 1000000]", n);
    o->max_open_files = n;
    return WEIR_OK;
}

int weir_options_set_background_threads(weir_options *o, int n) {
    OPTS_CHECK(o, "weir_options_set_background_threads");
    if (n < 1 || n > 32)
        return weir_set_error(WEIR_INVALID, "background_threads: %d is out of range [1, 32]", n);
    o->background_threads = n;
    return WEIR_OK;
}

int weir_options_set_sync_mode(weir_options *o, weir_sync_mode mode) {
    OPTS_CHECK(o, "weir_options_set_sync_mode");
    if (mode < WEIR_SYNC_NONE || mode > WEIR_SYNC_FSYNC)
        return weir_set_error(WEIR_INVALID,
                              "sync_mode: %d is not WEIR_SYNC_NONE, WEIR_SYNC_FLUSH or WEIR_SYNC_FSYNC",
                              (int)mode);
    o->sync_mode = mode;
    return WEIR_OK;
}

int weir_options_set_target_file_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_target_file_size");
    if (bytes < (64u << 10) || bytes > (UINT64_C(4) << 30))
        return range_error("target_file_size", bytes, 64u << 10, UINT64_C(4) << 30);
    o->target_file_size = bytes;
    return WEIR_OK;
}

int weir_options_set_max_bytes_for_level_base(weir_options *o, uint64_t bytes) {
    OPTS_CHECK(o, "weir_options_set_max_bytes_for_level_base");
    if (bytes < (256u << 10))
        return range_error("max_bytes_for_level_base", bytes, 256u << 10, UINT64_MAX);
    o->max_bytes_for_level_base = bytes;
    return WEIR_OK;
}

int weir_options_set_level0_triggers(weir_options *o, int compaction, int slowdown, int stop) {
    OPTS_CHECK(o, "weir_options_set_level0_triggers");
    if (compaction < 1 || slowdown < compaction || stop < slowdown || stop > 1000)
        return weir_set_error(WEIR_INVALID,
                              "level0 triggers %d/%d/%d must satisfy 1 <= compaction <= slowdown "
                              "<= stop <= 1000",
                              compaction, slowdown, stop);
    o->level0_compaction_trigger = compaction;
    o->level0_slowdown_trigger = slowdown;
    o->level0_stop_trigger = stop;
    return WEIR_OK;
}

int weir_options_set_compression(weir_options *o, int codec) {
    OPTS_CHECK(o, "weir_options_set_compression");
    if (codec < 0 || codec > CODEC_MAX)
        return weir_set_error(WEIR_INVALID, "compression: %d is not WEIR_COMPRESSION_NONE, _LZ4 or _ZSTD",
                              codec);
    if (!codec_supported(codec))
        return weir_set_error(WEIR_NOT_SUPPORTED,
                              "compression %s is not compiled into this build (compiled in: %s)",
                              codec_name(codec), codec_list());
    o->compression = codec;
    return WEIR_OK;
}

int weir_options_set_default_ttl(weir_options *o, uint64_t ttl_ms) {
    OPTS_CHECK(o, "weir_options_set_default_ttl");
    o->default_ttl_ms = ttl_ms;
    return WEIR_OK;
}

int weir_options_set_clock(weir_options *o, weir_clock_fn fn, void *arg) {
    OPTS_CHECK(o, "weir_options_set_clock");
    o->clock = fn;
    o->clock_arg = arg;
    return WEIR_OK;
}

int weir_options_set_merge_operator(weir_options *o, int id, weir_merge_fn fn, void *arg) {
    OPTS_CHECK(o, "weir_options_set_merge_operator");
    if (id < MERGE_USER_FIRST || id > 255)
        return weir_set_error(WEIR_INVALID, "user merge operator ids are %d..255, not %d",
                              MERGE_USER_FIRST, id);
    merge_user_op *u = &o->merge_ops.user[id - MERGE_USER_FIRST];
    u->fn = fn;
    u->arg = arg;
    u->registered = fn != NULL;
    return WEIR_OK;
}


int weir_options_set_block_cache_size(weir_options *o, size_t bytes) {
    OPTS_CHECK(o, "weir_options_set_block_cache_size");
    o->block_cache_size = bytes;
    return WEIR_OK;
}

int weir_options_set_pending_compaction_limits(weir_options *o, uint64_t soft, uint64_t hard) {
    OPTS_CHECK(o, "weir_options_set_pending_compaction_limits");
    if (soft && hard && soft > hard)
        return weir_set_error(WEIR_INVALID,
                              "pending compaction limits: soft %" PRIu64 " is above hard %" PRIu64,
                              soft, hard);
    o->pending_compaction_soft = soft;
    o->pending_compaction_hard = hard;
    return WEIR_OK;
}

void weir_options_set_env(weir_options *o, weir_env *env) {
    if (o) o->env = env;
}


int db_validate_options(const struct weir_options *o) {
    if (o->level0_compaction_trigger < 1 || o->level0_slowdown_trigger < o->level0_compaction_trigger ||
        o->level0_stop_trigger < o->level0_slowdown_trigger)
        return weir_set_error(WEIR_INVALID, "level0 triggers are inconsistent");
    return WEIR_OK;
}


