/*
 * test_api_contract.c -- every public C function, called with invalid
 * arguments, table-driven: each case asserts the exact status and that
 * weir_errmsg() names what was wrong, and the process must stay healthy
 * (ASan/UBSan clean, the DB still works afterwards, nothing leaks). A
 * second test reads include/weir.h and fails if a WEIR_API function has no
 * case, so a new function cannot ship untested.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "status.h"
#include "testutil.h"

enum { STATUS, RESULT }; /* STATUS: a weir status code; RESULT: 0 means fine */

typedef struct api_case {
    const char *fn;
    const char *what;
    int (*call)(void);
    int kind;
    int want;
    const char *msg_part; /* for a failing STATUS: weir_errmsg() contains it */
} api_case;

static char g_base[PATH_MAX], g_dir[PATH_MAX + 8], g_dir2[PATH_MAX + 8], g_file[PATH_MAX + 8],
    g_missing[PATH_MAX + 16], g_ckpt[PATH_MAX + 8], g_closed[PATH_MAX + 8];
static weir_options *g_opts;
static weir_db *g_db;
static weir_batch *g_batch;
static weir_snapshot *g_snap;
static weir_iter *g_iter;
static weir_txn *g_txn, *g_txn_done;
static char *g_big;

static int user_merge(void *arg, const void *key, size_t klen, const void *existing, size_t elen,
                      const void *operand, size_t olen, void **result, size_t *rlen) {
    (void)arg, (void)key, (void)klen, (void)existing, (void)elen;
    *result = malloc(olen ? olen : 1);
    if (!*result) return WEIR_NO_MEMORY;
    memcpy(*result, operand, olen);
    *rlen = olen;
    return WEIR_OK;
}

/* weir_options_set_create_if_missing: NULL options */
static int case_000(void) { return weir_options_set_create_if_missing(NULL, 1); }

/* weir_options_set_error_if_exists: NULL options */
static int case_001(void) { return weir_options_set_error_if_exists(NULL, 1); }

/* weir_options_set_write_buffer_size: below 64 KiB */
static int case_002(void) { return weir_options_set_write_buffer_size(g_opts, 1024); }

/* weir_options_set_write_buffer_size: NULL options */
static int case_003(void) { return weir_options_set_write_buffer_size(NULL, 1 << 20); }

/* weir_options_set_block_size: below 256 B */
static int case_004(void) { return weir_options_set_block_size(g_opts, 100); }

/* weir_options_set_block_size: above 64 MiB */
static int case_005(void) { return weir_options_set_block_size(g_opts, (size_t)1 << 30); }

/* weir_options_set_bloom_bits_per_key: negative */
static int case_006(void) { return weir_options_set_bloom_bits_per_key(g_opts, -1); }

/* weir_options_set_bloom_bits_per_key: above 64 */
static int case_007(void) { return weir_options_set_bloom_bits_per_key(g_opts, 65); }

/* weir_options_set_max_open_files: below 16 */
static int case_008(void) { return weir_options_set_max_open_files(g_opts, 3); }

/* weir_options_set_background_threads: zero */
static int case_009(void) { return weir_options_set_background_threads(g_opts, 0); }

/* weir_options_set_background_threads: above 32 */
static int case_010(void) { return weir_options_set_background_threads(g_opts, 33); }

/* weir_options_set_sync_mode: unknown mode */
static int case_011(void) { return weir_options_set_sync_mode(g_opts, (weir_sync_mode)42); }

/* weir_options_set_target_file_size: below 64 KiB */
static int case_012(void) { return weir_options_set_target_file_size(g_opts, 10); }

/* weir_options_set_max_bytes_for_level_base: below 256 KiB */
static int case_013(void) { return weir_options_set_max_bytes_for_level_base(g_opts, 1000); }

/* weir_options_set_level0_triggers: slowdown < trigger */
static int case_014(void) { return weir_options_set_level0_triggers(g_opts, 8, 4, 20); }

/* weir_options_set_level0_triggers: zero trigger */
static int case_015(void) { return weir_options_set_level0_triggers(g_opts, 0, 4, 20); }

/* weir_options_set_compression: unknown codec */
static int case_016(void) { return weir_options_set_compression(g_opts, 77); }

/* weir_options_set_block_cache_size: NULL options */
static int case_017(void) { return weir_options_set_block_cache_size(NULL, 1); }

/* weir_options_set_pending_compaction_limits: soft > hard */
static int case_018(void) { return weir_options_set_pending_compaction_limits(g_opts, 100, 10); }

/* weir_options_set_default_ttl: NULL options */
static int case_019(void) { return weir_options_set_default_ttl(NULL, 5); }

/* weir_options_set_clock: NULL options */
static int case_020(void) { return weir_options_set_clock(NULL, NULL, NULL); }

/* weir_options_set_merge_operator: built-in id */
static int case_021(void) { return weir_options_set_merge_operator(g_opts, WEIR_MERGE_INT64_ADD, user_merge, NULL); }

/* weir_options_set_merge_operator: id above 255 */
static int case_022(void) { return weir_options_set_merge_operator(g_opts, 256, user_merge, NULL); }

/* weir_compression_supported: unknown codec */
static int case_023(void) { return weir_compression_supported(99); }

/* weir_open: NULL path */
static int case_024(void) { weir_db *d = NULL; int rc = weir_open(NULL, NULL, &d); return d ? 999 : rc; }

/* weir_open: empty path */
static int case_025(void) { weir_db *d = NULL; int rc = weir_open("", NULL, &d); return d ? 999 : rc; }

/* weir_open: NULL out */
static int case_026(void) { return weir_open(g_dir2, NULL, NULL); }

/* weir_open: path is a file */
static int case_027(void) { weir_db *d = NULL; int rc = weir_open(g_file, NULL, &d); return d ? 999 : rc; }

/* weir_open: missing, create_if_missing off */
static int case_028(void) { weir_db *d = NULL; weir_options *o = weir_options_create(); weir_options_set_create_if_missing(o, 0); int rc = weir_open(g_missing, o, &d); weir_options_destroy(o); return d ? 999 : rc; }

/* weir_open: exists, error_if_exists on */
static int case_029(void) { weir_db *d = NULL; weir_options *o = weir_options_create(); weir_options_set_error_if_exists(o, 1); int rc = weir_open(g_closed, o, &d); weir_options_destroy(o); return d ? 999 : rc; }

/* weir_open: already open */
static int case_030(void) { weir_db *d = NULL; int rc = weir_open(g_dir, NULL, &d); return d ? 999 : rc; }

/* weir_destroy: NULL path */
static int case_031(void) { return weir_destroy(NULL); }

/* weir_destroy: open database */
static int case_032(void) { return weir_destroy(g_dir); }

/* weir_put: NULL db */
static int case_033(void) { return weir_put(NULL, NULL, "k", 1, "v", 1); }

/* weir_put: NULL key with a length */
static int case_034(void) { return weir_put(g_db, NULL, NULL, 3, "v", 1); }

/* weir_put: NULL value with a length */
static int case_035(void) { return weir_put(g_db, NULL, "k", 1, NULL, 3); }

/* weir_put: key over the limit */
static int case_036(void) { return weir_put(g_db, NULL, g_big, (size_t)WEIR_MAX_KEY_SIZE + 1, "v", 1); }

/* weir_put: unknown sync mode */
static int case_037(void) { weir_writeopts wo = {.sync = (weir_sync_mode)9}; return weir_put(g_db, &wo, "k", 1, "v", 1); }

/* weir_delete: NULL db */
static int case_038(void) { return weir_delete(NULL, NULL, "k", 1); }

/* weir_delete: NULL key with a length */
static int case_039(void) { return weir_delete(g_db, NULL, NULL, 1); }

/* weir_put_ttl: zero TTL */
static int case_040(void) { return weir_put_ttl(g_db, NULL, "k", 1, "v", 1, 0); }

/* weir_put_ttl: NULL db */
static int case_041(void) { return weir_put_ttl(NULL, NULL, "k", 1, "v", 1, 10); }

/* weir_merge: unknown operator */
static int case_042(void) { return weir_merge(g_db, NULL, "k", 1, 99, "x", 1); }

/* weir_merge: unregistered user operator */
static int case_043(void) { return weir_merge(g_db, NULL, "k", 1, 200, "x", 1); }

/* weir_merge: int64 operand of 5 bytes */
static int case_044(void) { return weir_merge(g_db, NULL, "k", 1, WEIR_MERGE_INT64_ADD, "12345", 5); }

/* weir_merge: NULL db */
static int case_045(void) { return weir_merge(NULL, NULL, "k", 1, WEIR_MERGE_INT64_ADD, "12345678", 8); }

/* weir_add_int64: NULL db */
static int case_046(void) { return weir_add_int64(NULL, NULL, "k", 1, 1); }

/* weir_list_append: bound of 0 */
static int case_047(void) { return weir_list_append(g_db, NULL, "l", 1, "i", 1, 0); }

/* weir_list_append: bound over 1000000 */
static int case_048(void) { return weir_list_append(g_db, NULL, "l", 1, "i", 1, 1000001); }

/* weir_list_next: NULL value */
static int case_049(void) { size_t off = 0; const void *it; size_t il; return weir_list_next(NULL, 5, &off, &it, &il); }

/* weir_list_next: offset past the end */
static int case_050(void) { size_t off = 99; const void *it; size_t il; return weir_list_next("\x01" "a", 2, &off, &it, &il); }

/* weir_delete_range: start > end */
static int case_051(void) { return weir_delete_range(g_db, NULL, "z", 1, "a", 1); }

/* weir_delete_range: NULL db */
static int case_052(void) { return weir_delete_range(NULL, NULL, "a", 1, "z", 1); }

/* weir_batch_put: NULL batch */
static int case_053(void) { return weir_batch_put(NULL, "k", 1, "v", 1); }

/* weir_batch_put: NULL key with a length */
static int case_054(void) { return weir_batch_put(g_batch, NULL, 1, "v", 1); }

/* weir_batch_delete: NULL batch */
static int case_055(void) { return weir_batch_delete(NULL, "k", 1); }

/* weir_batch_put_ttl: zero TTL */
static int case_056(void) { return weir_batch_put_ttl(g_batch, "k", 1, "v", 1, 0); }

/* weir_batch_merge: unknown operator */
static int case_057(void) { return weir_batch_merge(g_batch, "k", 1, 0, "x", 1); }

/* weir_batch_delete_range: start > end */
static int case_058(void) { return weir_batch_delete_range(g_batch, "z", 1, "a", 1); }

/* weir_batch_count: NULL batch */
static int case_059(void) { return (int)weir_batch_count(NULL); }

/* weir_batch_bytes: NULL batch */
static int case_060(void) { return (int)weir_batch_bytes(NULL); }

/* weir_write: NULL db */
static int case_061(void) { return weir_write(NULL, NULL, g_batch); }

/* weir_write: NULL batch */
static int case_062(void) { return weir_write(g_db, NULL, NULL); }

/* weir_snapshot_create: NULL db */
static int case_063(void) { weir_snapshot *s = NULL; return weir_snapshot_create(NULL, &s); }

/* weir_snapshot_create: NULL out */
static int case_064(void) { return weir_snapshot_create(g_db, NULL); }

/* weir_snapshot_sequence: NULL snapshot */
static int case_065(void) { return (int)weir_snapshot_sequence(NULL); }

/* weir_get: NULL db */
static int case_066(void) { size_t vl; char b[8]; return weir_get(NULL, NULL, "k", 1, b, sizeof b, &vl); }

/* weir_get: NULL key with a length */
static int case_067(void) { size_t vl; char b[8]; return weir_get(g_db, NULL, NULL, 2, b, sizeof b, &vl); }

/* weir_get: NULL vlen */
static int case_068(void) { char b[8]; return weir_get(g_db, NULL, "k", 1, b, sizeof b, NULL); }

/* weir_get: NULL buffer with a capacity */
static int case_069(void) { size_t vl; return weir_get(g_db, NULL, "k", 1, NULL, 8, &vl); }

/* weir_get_alloc: NULL val */
static int case_070(void) { size_t vl; return weir_get_alloc(g_db, NULL, "k", 1, NULL, &vl); }

/* weir_get_alloc: NULL db */
static int case_071(void) { void *v; size_t vl; return weir_get_alloc(NULL, NULL, "k", 1, &v, &vl); }

/* weir_get_with: NULL callback */
static int case_072(void) { return weir_get_with(g_db, NULL, "k", 1, NULL, NULL); }

/* weir_multi_get: NULL keys with n > 0 */
static int case_073(void) { void *v[2]; size_t vl[2]; int st[2]; size_t kl[2] = {1, 1}; return weir_multi_get(g_db, NULL, 2, NULL, kl, v, vl, st); }

/* weir_multi_get: NULL db */
static int case_074(void) { const void *k[1] = {"k"}; void *v[1]; size_t vl[1], kl[1] = {1}; int st[1]; return weir_multi_get(NULL, NULL, 1, k, kl, v, vl, st); }

/* weir_iter_create: NULL db */
static int case_075(void) { weir_iter *it = NULL; return weir_iter_create(NULL, NULL, &it); }

/* weir_iter_create: NULL out */
static int case_076(void) { return weir_iter_create(g_db, NULL, NULL); }

/* weir_iter_create: NULL bound with a length */
static int case_077(void) { weir_readopts ro; memset(&ro, 0, sizeof ro); ro.lower_bound_len = 3; weir_iter *it = NULL; int rc = weir_iter_create(g_db, &ro, &it); weir_iter_destroy(it); return rc; }

/* weir_iter_valid: NULL iterator */
static int case_078(void) { return weir_iter_valid(NULL); }

/* weir_iter_key: NULL iterator */
static int case_079(void) { size_t l = 5; return weir_iter_key(NULL, &l) != NULL; }

/* weir_iter_value: NULL iterator */
static int case_080(void) { size_t l = 5; return weir_iter_value(NULL, &l) != NULL; }

/* weir_iter_key: unpositioned iterator */
static int case_081(void) { size_t l = 5; return weir_iter_key(g_iter, &l) != NULL; }

/* weir_iter_status: NULL iterator */
static int case_082(void) { return weir_iter_status(NULL); }

/* weir_flush: NULL db */
static int case_083(void) { return weir_flush(NULL); }

/* weir_compact_range: NULL db */
static int case_084(void) { return weir_compact_range(NULL, NULL, 0, NULL, 0); }

/* weir_compact_range: NULL start with a length */
static int case_085(void) { return weir_compact_range(g_db, NULL, 4, NULL, 0); }

/* weir_checkpoint: NULL db */
static int case_086(void) { return weir_checkpoint(NULL, g_ckpt); }

/* weir_checkpoint: NULL directory */
static int case_087(void) { return weir_checkpoint(g_db, NULL); }

/* weir_checkpoint: non-empty directory */
static int case_088(void) { return weir_checkpoint(g_db, g_dir); }

/* weir_txn_begin: NULL db */
static int case_089(void) { weir_txn *t = NULL; return weir_txn_begin(NULL, NULL, &t); }

/* weir_txn_begin: NULL out */
static int case_090(void) { return weir_txn_begin(g_db, NULL, NULL); }

/* weir_txn_get: NULL transaction */
static int case_091(void) { void *v; size_t vl; return weir_txn_get(NULL, "k", 1, &v, &vl); }

/* weir_txn_get_for_update: NULL transaction */
static int case_092(void) { void *v; size_t vl; return weir_txn_get_for_update(NULL, "k", 1, &v, &vl); }

/* weir_txn_put: NULL transaction */
static int case_093(void) { return weir_txn_put(NULL, "k", 1, "v", 1); }

/* weir_txn_put: finished transaction */
static int case_094(void) { return weir_txn_put(g_txn_done, "k", 1, "v", 1); }

/* weir_txn_delete: NULL transaction */
static int case_095(void) { return weir_txn_delete(NULL, "k", 1); }

/* weir_txn_merge: unknown operator */
static int case_096(void) { return weir_txn_merge(g_txn, "k", 1, 0, "x", 1); }

/* weir_txn_iter_create: snapshot in read options */
static int case_097(void) { weir_readopts ro; memset(&ro, 0, sizeof ro); ro.snapshot = g_snap; weir_iter *it = NULL; int rc = weir_txn_iter_create(g_txn, &ro, &it); weir_iter_destroy(it); return rc; }

/* weir_txn_commit: NULL transaction */
static int case_098(void) { return weir_txn_commit(NULL); }

/* weir_txn_commit: finished transaction */
static int case_099(void) { return weir_txn_commit(g_txn_done); }

/* weir_txn_rollback: NULL transaction */
static int case_100(void) { return weir_txn_rollback(NULL); }

/* weir_property: NULL db */
static int case_101(void) { char *v = NULL; return weir_property(NULL, "weir.stats", &v); }

/* weir_property: NULL name */
static int case_102(void) { char *v = NULL; return weir_property(g_db, NULL, &v); }

/* weir_property: NULL value */
static int case_103(void) { return weir_property(g_db, "weir.stats", NULL); }

/* weir_property: unknown name */
static int case_104(void) { char *v = NULL; int rc = weir_property(g_db, "weir.no-such", &v); weir_free(v); return rc; }

/* weir_status_name: unknown status */
static int case_105(void) { return strlen(weir_status_name(-7)) == 0 || strlen(weir_status_name(1000)) == 0; }

/* weir_errmsg: never NULL */
static int case_106(void) { return weir_errmsg() == NULL; }

/* weir_version: non-empty */
static int case_107(void) { return !weir_version() || !*weir_version(); }

/* weir_build_info: names the version */
static int case_108(void) { return !strstr(weir_build_info(), weir_version()); }

/* weir_free: NULL */
static int case_109(void) { weir_free(NULL); return 0; }

/* weir_options_create: usable */
static int case_110(void) { weir_options *o = weir_options_create(); int bad = o == NULL; weir_options_destroy(o); return bad; }

/* weir_options_destroy: NULL */
static int case_111(void) { weir_options_destroy(NULL); return 0; }

/* weir_close: NULL */
static int case_112(void) { return weir_close(NULL); }

/* weir_batch_create: usable */
static int case_113(void) { weir_batch *b = weir_batch_create(); int bad = b == NULL || weir_batch_count(b) != 0; weir_batch_destroy(b); return bad; }

/* weir_batch_destroy: NULL */
static int case_114(void) { weir_batch_destroy(NULL); return 0; }

/* weir_batch_clear: NULL */
static int case_115(void) { weir_batch_clear(NULL); return 0; }

/* weir_snapshot_release: NULL snapshot */
static int case_116(void) { weir_snapshot_release(g_db, NULL); weir_snapshot_release(NULL, NULL); return 0; }

/* weir_iter_destroy: NULL */
static int case_117(void) { weir_iter_destroy(NULL); return 0; }

/* weir_iter_seek_first: NULL */
static int case_118(void) { weir_iter_seek_first(NULL); weir_iter_seek_last(NULL); return 0; }

/* weir_iter_seek_last: NULL */
static int case_119(void) { weir_iter_seek_last(NULL); return 0; }

/* weir_iter_seek: NULL iterator, NULL key */
static int case_120(void) { weir_iter_seek(NULL, NULL, 4); weir_iter_seek(g_iter, NULL, 4); return weir_iter_valid(g_iter); }

/* weir_iter_seek_for_prev: NULL iterator, NULL key */
static int case_121(void) { weir_iter_seek_for_prev(NULL, NULL, 4); weir_iter_seek_for_prev(g_iter, NULL, 4); return weir_iter_valid(g_iter); }

/* weir_iter_next: NULL and unpositioned */
static int case_122(void) { weir_iter_next(NULL); weir_iter_next(g_iter); return 0; }

/* weir_iter_prev: NULL and unpositioned */
static int case_123(void) { weir_iter_prev(NULL); weir_iter_prev(g_iter); return 0; }

/* weir_txn_destroy: NULL */
static int case_124(void) { weir_txn_destroy(NULL); return 0; }

/* weir_options_set_read_only: NULL options */
static int case_125(void) { return weir_options_set_read_only(NULL, 1); }

/* weir_check: NULL path */
static int case_126(void) { return weir_check(NULL, NULL, NULL); }

/* weir_check: a file, not a directory */
static int case_127(void) { return weir_check(g_file, NULL, NULL); }

/* weir_check: a directory that holds no database */
static int case_128(void) { return weir_check(g_base, NULL, NULL); }

/* weir_salvage: NULL destination */
static int case_129(void) { return weir_salvage(g_closed, NULL, NULL, NULL, NULL); }

/* weir_salvage: missing source */
static int case_130(void) { return weir_salvage(g_missing, g_ckpt, NULL, NULL, NULL); }

/* weir_salvage: non-empty destination */
static int case_131(void) { return weir_salvage(g_closed, g_dir, NULL, NULL, NULL); }

/* weir_compact_range: start after end */
static int case_132(void) { return weir_compact_range(g_db, "z", 1, "a", 1); }

/* weir_close: an iterator, a snapshot and transactions are still live */
static int case_133(void) { return weir_close(g_db); }

/* weir_open: a non-empty directory that holds no database */
static int case_134(void) { weir_db *d = NULL; int rc = weir_open(g_base, NULL, &d); return d ? 999 : rc; }

/* weir_snapshot_release: a snapshot of another DB is ignored */
static int case_135(void) {
    weir_db *other = NULL;
    char *before = NULL;
    weir_property(g_db, "weir.num-snapshots", &before);
    if (weir_open(g_dir2, NULL, &other) != WEIR_OK) return 998;
    weir_snapshot_release(other, g_snap); /* not other's: must not count */
    char *n = NULL;
    weir_property(other, "weir.num-snapshots", &n);
    int bad = !n || strcmp(n, "0") != 0;
    weir_free(n);
    weir_close(other);
    n = NULL;
    weir_property(g_db, "weir.num-snapshots", &n);
    bad |= !n || !before || strcmp(n, before) != 0;
    weir_free(n);
    weir_free(before);
    return bad;
}

/* weir_iter_create: a snapshot of another DB */
static int case_136(void) {
    weir_db *other = NULL;
    if (weir_open(g_dir2, NULL, &other) != WEIR_OK) return 998;
    weir_readopts ro = {0};
    ro.snapshot = g_snap;
    weir_iter *it = NULL;
    int rc = weir_iter_create(other, &ro, &it);
    weir_iter_destroy(it);
    weir_close(other);
    return it ? 999 : rc;
}

/* weir_put: a reserved word of the write options is set */
static int case_137(void) {
    weir_writeopts wo = {.sync = WEIR_SYNC_DEFAULT};
    wo.reserved[2] = 1;
    return weir_put(g_db, &wo, "k", 1, "v", 1);
}

/* weir_get: a reserved word of the read options is set */
static int case_138(void) {
    weir_readopts ro = {0};
    ro.reserved[0] = 7;
    char v[8];
    size_t vl;
    return weir_get(g_db, &ro, "k", 1, v, sizeof v, &vl);
}

/* weir_txn_begin: a reserved word of the transaction options is set */
static int case_139(void) {
    weir_txnopts to = {.sync = WEIR_SYNC_DEFAULT};
    to.reserved[1] = 1;
    weir_txn *t = NULL;
    int rc = weir_txn_begin(g_db, &to, &t);
    weir_txn_destroy(t);
    return t ? 999 : rc;
}

/* weir_iter_refresh: NULL iterator */
static int case_140(void) { return weir_iter_refresh(NULL); }

/* weir_iter_refresh: an iterator at a snapshot never moves */
static int case_141(void) {
    weir_readopts ro = {.snapshot = g_snap};
    weir_iter *it = NULL;
    int rc = weir_iter_create(g_db, &ro, &it);
    if (rc == WEIR_OK) rc = weir_iter_refresh(it);
    weir_iter_destroy(it);
    return rc;
}

/* weir_iter_create: memory_only is for point reads */
static int case_142(void) {
    weir_readopts ro = {.memory_only = 1};
    weir_iter *it = NULL;
    int rc = weir_iter_create(g_db, &ro, &it);
    weir_iter_destroy(it);
    return it ? 999 : rc;
}

/* weir_multi_get: a reserved word of the read options is set */
static int case_143(void) {
    weir_readopts ro = {.reserved = {0, 0, 7}};
    const void *keys[1] = {"k"};
    size_t klens[1] = {1}, vlens[1];
    void *vals[1];
    int st[1];
    return weir_multi_get(g_db, &ro, 1, keys, klens, vals, vlens, st);
}

/* weir_compact_range_progress: NULL db */
static int case_144(void) { return weir_compact_range_progress(NULL, NULL, 0, NULL, 0, NULL, NULL); }

/* weir_compact_range_progress: start after end */
static int case_145(void) { return weir_compact_range_progress(g_db, "z", 1, "a", 1, NULL, NULL); }

/* weir_compact_range_progress: the callback asks for another compaction
 * of the same DB (it would wait for the call that is waiting for it) */
static int g_nested_rc = -1;
static void nested_compact(void *arg, const weir_compact_progress *p) {
    (void)p;
    if (g_nested_rc == -1) g_nested_rc = weir_compact_range((weir_db *)arg, NULL, 0, NULL, 0);
}
static int case_146(void) {
    g_nested_rc = -1;
    int rc = weir_compact_range_progress(g_db, NULL, 0, NULL, 0, nested_compact, g_db);
    return rc != WEIR_OK ? 999 : g_nested_rc; /* errmsg: the nested call's */
}

/* weir_options_set_read_triggered_compaction: NULL options */
static int case_147(void) { return weir_options_set_read_triggered_compaction(NULL, 1); }

static const api_case cases[] = {
    {"weir_options_set_create_if_missing", "NULL options", case_000, STATUS, WEIR_INVALID, "weir_options"},
    {"weir_options_set_error_if_exists", "NULL options", case_001, STATUS, WEIR_INVALID, "weir_options"},
    {"weir_options_set_write_buffer_size", "below 64 KiB", case_002, STATUS, WEIR_INVALID, "write_buffer_size"},
    {"weir_options_set_write_buffer_size", "NULL options", case_003, STATUS, WEIR_INVALID, "weir_options"},
    {"weir_options_set_block_size", "below 256 B", case_004, STATUS, WEIR_INVALID, "block_size"},
    {"weir_options_set_block_size", "above 64 MiB", case_005, STATUS, WEIR_INVALID, "block_size"},
    {"weir_options_set_bloom_bits_per_key", "negative", case_006, STATUS, WEIR_INVALID, "bloom"},
    {"weir_options_set_bloom_bits_per_key", "above 64", case_007, STATUS, WEIR_INVALID, "bloom"},
    {"weir_options_set_max_open_files", "below 16", case_008, STATUS, WEIR_INVALID, "max_open_files"},
    {"weir_options_set_background_threads", "zero", case_009, STATUS, WEIR_INVALID, "background_threads"},
    {"weir_options_set_background_threads", "above 32", case_010, STATUS, WEIR_INVALID, "background_threads"},
    {"weir_options_set_sync_mode", "unknown mode", case_011, STATUS, WEIR_INVALID, "sync"},
    {"weir_options_set_target_file_size", "below 64 KiB", case_012, STATUS, WEIR_INVALID, "target_file_size"},
    {"weir_options_set_max_bytes_for_level_base", "below 256 KiB", case_013, STATUS, WEIR_INVALID, "max_bytes_for_level_base"},
    {"weir_options_set_level0_triggers", "slowdown < trigger", case_014, STATUS, WEIR_INVALID, "level0"},
    {"weir_options_set_level0_triggers", "zero trigger", case_015, STATUS, WEIR_INVALID, "level0"},
    {"weir_options_set_compression", "unknown codec", case_016, STATUS, WEIR_INVALID, "compression"},
    {"weir_options_set_block_cache_size", "NULL options", case_017, STATUS, WEIR_INVALID, "weir_options"},
    {"weir_options_set_pending_compaction_limits", "soft > hard", case_018, STATUS, WEIR_INVALID, "pending"},
    {"weir_options_set_default_ttl", "NULL options", case_019, STATUS, WEIR_INVALID, "weir_options"},
    {"weir_options_set_clock", "NULL options", case_020, STATUS, WEIR_INVALID, "weir_options"},
    {"weir_options_set_merge_operator", "built-in id", case_021, STATUS, WEIR_INVALID, "merge"},
    {"weir_options_set_merge_operator", "id above 255", case_022, STATUS, WEIR_INVALID, "merge"},
    {"weir_compression_supported", "unknown codec", case_023, RESULT, 0, ""},
    {"weir_open", "NULL path", case_024, STATUS, WEIR_INVALID, "weir_open"},
    {"weir_open", "empty path", case_025, STATUS, WEIR_INVALID, "weir_open"},
    {"weir_open", "NULL out", case_026, STATUS, WEIR_INVALID, "weir_open"},
    {"weir_open", "path is a file", case_027, STATUS, WEIR_INVALID, "not a directory"},
    {"weir_open", "missing, create_if_missing off", case_028, STATUS, WEIR_INVALID, "create_if_missing"},
    {"weir_open", "exists, error_if_exists on", case_029, STATUS, WEIR_EXISTS, "error_if_exists"},
    {"weir_open", "already open", case_030, STATUS, WEIR_BUSY, "already open"},
    {"weir_destroy", "NULL path", case_031, STATUS, WEIR_INVALID, "weir_destroy"},
    {"weir_destroy", "open database", case_032, STATUS, WEIR_BUSY, "already open"},
    {"weir_put", "NULL db", case_033, STATUS, WEIR_INVALID, "weir_put"},
    {"weir_put", "NULL key with a length", case_034, STATUS, WEIR_INVALID, "key is NULL"},
    {"weir_put", "NULL value with a length", case_035, STATUS, WEIR_INVALID, "value is NULL"},
    {"weir_put", "key over the limit", case_036, STATUS, WEIR_INVALID, "exceeds"},
    {"weir_put", "unknown sync mode", case_037, STATUS, WEIR_INVALID, "sync mode"},
    {"weir_delete", "NULL db", case_038, STATUS, WEIR_INVALID, "weir_delete"},
    {"weir_delete", "NULL key with a length", case_039, STATUS, WEIR_INVALID, "key is NULL"},
    {"weir_put_ttl", "zero TTL", case_040, STATUS, WEIR_INVALID, "ttl"},
    {"weir_put_ttl", "NULL db", case_041, STATUS, WEIR_INVALID, "weir_put_ttl"},
    {"weir_merge", "unknown operator", case_042, STATUS, WEIR_INVALID, "operator"},
    {"weir_merge", "unregistered user operator", case_043, STATUS, WEIR_INVALID, "operator"},
    {"weir_merge", "int64 operand of 5 bytes", case_044, STATUS, WEIR_INVALID, "8"},
    {"weir_merge", "NULL db", case_045, STATUS, WEIR_INVALID, "weir_merge"},
    {"weir_add_int64", "NULL db", case_046, STATUS, WEIR_INVALID, "db is NULL"},
    {"weir_list_append", "bound of 0", case_047, STATUS, WEIR_INVALID, "list bound"},
    {"weir_list_append", "bound over 1000000", case_048, STATUS, WEIR_INVALID, "list bound"},
    {"weir_list_next", "NULL value", case_049, RESULT, 0, ""},
    {"weir_list_next", "offset past the end", case_050, RESULT, 0, ""},
    {"weir_delete_range", "start > end", case_051, STATUS, WEIR_INVALID, "start"},
    {"weir_delete_range", "NULL db", case_052, STATUS, WEIR_INVALID, "weir_delete_range"},
    {"weir_batch_put", "NULL batch", case_053, STATUS, WEIR_INVALID, "weir_batch_put"},
    {"weir_batch_put", "NULL key with a length", case_054, STATUS, WEIR_INVALID, "key is NULL"},
    {"weir_batch_delete", "NULL batch", case_055, STATUS, WEIR_INVALID, "weir_batch_delete"},
    {"weir_batch_put_ttl", "zero TTL", case_056, STATUS, WEIR_INVALID, "ttl"},
    {"weir_batch_merge", "unknown operator", case_057, STATUS, WEIR_INVALID, "operator"},
    {"weir_batch_delete_range", "start > end", case_058, STATUS, WEIR_INVALID, "start"},
    {"weir_batch_count", "NULL batch", case_059, RESULT, 0, ""},
    {"weir_batch_bytes", "NULL batch", case_060, RESULT, 0, ""},
    {"weir_write", "NULL db", case_061, STATUS, WEIR_INVALID, "weir_write"},
    {"weir_write", "NULL batch", case_062, STATUS, WEIR_INVALID, "batch is NULL"},
    {"weir_snapshot_create", "NULL db", case_063, STATUS, WEIR_INVALID, "weir_snapshot_create"},
    {"weir_snapshot_create", "NULL out", case_064, STATUS, WEIR_INVALID, "weir_snapshot_create"},
    {"weir_snapshot_sequence", "NULL snapshot", case_065, RESULT, 0, ""},
    {"weir_get", "NULL db", case_066, STATUS, WEIR_INVALID, "weir_get"},
    {"weir_get", "NULL key with a length", case_067, STATUS, WEIR_INVALID, "key is NULL"},
    {"weir_get", "NULL vlen", case_068, STATUS, WEIR_INVALID, "weir_get"},
    {"weir_get", "NULL buffer with a capacity", case_069, STATUS, WEIR_INVALID, "weir_get"},
    {"weir_get_alloc", "NULL val", case_070, STATUS, WEIR_INVALID, "weir_get_alloc"},
    {"weir_get_alloc", "NULL db", case_071, STATUS, WEIR_INVALID, "weir_get_alloc"},
    {"weir_get_with", "NULL callback", case_072, STATUS, WEIR_INVALID, "weir_get_with"},
    {"weir_multi_get", "NULL keys with n > 0", case_073, STATUS, WEIR_INVALID, "weir_multi_get"},
    {"weir_multi_get", "NULL db", case_074, STATUS, WEIR_INVALID, "weir_multi_get"},
    {"weir_iter_create", "NULL db", case_075, STATUS, WEIR_INVALID, "weir_iter_create"},
    {"weir_iter_create", "NULL out", case_076, STATUS, WEIR_INVALID, "weir_iter_create"},
    {"weir_iter_create", "NULL bound with a length", case_077, STATUS, WEIR_INVALID, "bound"},
    {"weir_iter_valid", "NULL iterator", case_078, RESULT, 0, ""},
    {"weir_iter_key", "NULL iterator", case_079, RESULT, 0, ""},
    {"weir_iter_value", "NULL iterator", case_080, RESULT, 0, ""},
    {"weir_iter_key", "unpositioned iterator", case_081, RESULT, 0, ""},
    {"weir_iter_status", "NULL iterator", case_082, STATUS, WEIR_INVALID, "iterator is NULL"},
    {"weir_flush", "NULL db", case_083, STATUS, WEIR_INVALID, "weir_flush"},
    {"weir_compact_range", "NULL db", case_084, STATUS, WEIR_INVALID, "weir_compact_range"},
    {"weir_compact_range", "NULL start with a length", case_085, STATUS, WEIR_INVALID, "key is NULL"},
    {"weir_checkpoint", "NULL db", case_086, STATUS, WEIR_INVALID, "weir_checkpoint"},
    {"weir_checkpoint", "NULL directory", case_087, STATUS, WEIR_INVALID, "weir_checkpoint"},
    {"weir_checkpoint", "non-empty directory", case_088, STATUS, WEIR_EXISTS, "not empty"},
    {"weir_txn_begin", "NULL db", case_089, STATUS, WEIR_INVALID, "weir_txn_begin"},
    {"weir_txn_begin", "NULL out", case_090, STATUS, WEIR_INVALID, "weir_txn_begin"},
    {"weir_txn_get", "NULL transaction", case_091, STATUS, WEIR_INVALID, "weir_txn_get"},
    {"weir_txn_get_for_update", "NULL transaction", case_092, STATUS, WEIR_INVALID, "weir_txn_get_for_update"},
    {"weir_txn_put", "NULL transaction", case_093, STATUS, WEIR_INVALID, "weir_txn_put"},
    {"weir_txn_put", "finished transaction", case_094, STATUS, WEIR_INVALID, "already committed"},
    {"weir_txn_delete", "NULL transaction", case_095, STATUS, WEIR_INVALID, "weir_txn_delete"},
    {"weir_txn_merge", "unknown operator", case_096, STATUS, WEIR_INVALID, "operator"},
    {"weir_txn_iter_create", "snapshot in read options", case_097, STATUS, WEIR_INVALID, "snapshot"},
    {"weir_txn_commit", "NULL transaction", case_098, STATUS, WEIR_INVALID, "weir_txn_commit"},
    {"weir_txn_commit", "finished transaction", case_099, STATUS, WEIR_INVALID, "already committed"},
    {"weir_txn_rollback", "NULL transaction", case_100, STATUS, WEIR_INVALID, "weir_txn_rollback"},
    {"weir_property", "NULL db", case_101, STATUS, WEIR_INVALID, "weir_property"},
    {"weir_property", "NULL name", case_102, STATUS, WEIR_INVALID, "weir_property"},
    {"weir_property", "NULL value", case_103, STATUS, WEIR_INVALID, "weir_property"},
    {"weir_property", "unknown name", case_104, STATUS, WEIR_NOT_FOUND, "weir.no-such"},
    {"weir_status_name", "unknown status", case_105, RESULT, 0, ""},
    {"weir_errmsg", "never NULL", case_106, RESULT, 0, ""},
    {"weir_version", "non-empty", case_107, RESULT, 0, ""},
    {"weir_build_info", "names the version", case_108, RESULT, 0, ""},
    {"weir_free", "NULL", case_109, RESULT, 0, ""},
    {"weir_options_create", "usable", case_110, RESULT, 0, ""},
    {"weir_options_destroy", "NULL", case_111, RESULT, 0, ""},
    {"weir_close", "NULL", case_112, STATUS, WEIR_OK, ""},
    {"weir_batch_create", "usable", case_113, RESULT, 0, ""},
    {"weir_batch_destroy", "NULL", case_114, RESULT, 0, ""},
    {"weir_batch_clear", "NULL", case_115, RESULT, 0, ""},
    {"weir_snapshot_release", "NULL snapshot", case_116, RESULT, 0, ""},
    {"weir_iter_destroy", "NULL", case_117, RESULT, 0, ""},
    {"weir_iter_seek_first", "NULL", case_118, RESULT, 0, ""},
    {"weir_iter_seek_last", "NULL", case_119, RESULT, 0, ""},
    {"weir_iter_seek", "NULL iterator, NULL key", case_120, RESULT, 0, ""},
    {"weir_iter_seek_for_prev", "NULL iterator, NULL key", case_121, RESULT, 0, ""},
    {"weir_iter_next", "NULL and unpositioned", case_122, RESULT, 0, ""},
    {"weir_iter_prev", "NULL and unpositioned", case_123, RESULT, 0, ""},
    {"weir_txn_destroy", "NULL", case_124, RESULT, 0, ""},
    {"weir_options_set_read_only", "NULL options", case_125, STATUS, WEIR_INVALID, "weir_options"},
    {"weir_check", "NULL path", case_126, STATUS, WEIR_INVALID, "weir_check"},
    {"weir_check", "not a directory", case_127, STATUS, WEIR_INVALID, "not a directory"},
    {"weir_check", "no database there", case_128, STATUS, WEIR_INVALID, "not a weir database"},
    {"weir_salvage", "NULL destination", case_129, STATUS, WEIR_INVALID, "weir_salvage"},
    {"weir_salvage", "missing source", case_130, STATUS, WEIR_INVALID, "does not exist"},
    {"weir_salvage", "non-empty destination", case_131, STATUS, WEIR_EXISTS, "not empty"},
    {"weir_compact_range", "start after end", case_132, STATUS, WEIR_INVALID, "start is after end"},
    {"weir_close", "live iterator, snapshot, transactions", case_133, STATUS, WEIR_BUSY, "still has 1 iterator"},
    {"weir_open", "non-empty directory without a database", case_134, STATUS, WEIR_INVALID, "not empty"},
    {"weir_snapshot_release", "a snapshot of another DB", case_135, RESULT, 0, ""},
    {"weir_iter_create", "a snapshot of another DB", case_136, STATUS, WEIR_INVALID, "another database"},
    {"weir_put", "reserved write option set", case_137, STATUS, WEIR_INVALID, "weir_writeopts.reserved[2]"},
    {"weir_get", "reserved read option set", case_138, STATUS, WEIR_INVALID, "weir_readopts.reserved[0]"},
    {"weir_txn_begin", "reserved transaction option set", case_139, STATUS, WEIR_INVALID, "weir_txnopts.reserved[1]"},
    {"weir_iter_refresh", "NULL iterator", case_140, STATUS, WEIR_INVALID, "NULL"},
    {"weir_iter_refresh", "iterator at a snapshot", case_141, STATUS, WEIR_INVALID, "snapshot"},
    {"weir_iter_create", "memory_only", case_142, STATUS, WEIR_INVALID, "memory_only"},
    {"weir_multi_get", "reserved read option set", case_143, STATUS, WEIR_INVALID, "weir_readopts.reserved[2]"},
    {"weir_compact_range_progress", "NULL db", case_144, STATUS, WEIR_INVALID, "weir_compact_range_progress"},
    {"weir_compact_range_progress", "start after end", case_145, STATUS, WEIR_INVALID, "start is after end"},
    {"weir_compact_range_progress", "compaction from its own callback", case_146, STATUS, WEIR_BUSY,
     "progress callback"},
    {"weir_options_set_read_triggered_compaction", "NULL options", case_147, STATUS, WEIR_INVALID,
     "weir_options"},
};

#define NCASES (sizeof cases / sizeof cases[0])

static int setup(void) {
    test_tmpdir(g_base, sizeof g_base, "api");
    snprintf(g_dir, sizeof g_dir, "%s/db", g_base);
    snprintf(g_dir2, sizeof g_dir2, "%s/db2", g_base);
    snprintf(g_file, sizeof g_file, "%s/file", g_base);
    snprintf(g_missing, sizeof g_missing, "%s/missing/db", g_base);
    snprintf(g_ckpt, sizeof g_ckpt, "%s/ckpt", g_base);
    snprintf(g_closed, sizeof g_closed, "%s/closed", g_base);
    weir_db *c;
    if (weir_open(g_closed, NULL, &c) != WEIR_OK || weir_close(c) != WEIR_OK) return -1;
    FILE *f = fopen(g_file, "w");
    if (!f) return -1;
    fputs("not a database", f);
    fclose(f);
    g_big = calloc(1, (size_t)WEIR_MAX_KEY_SIZE + 2);
    g_opts = weir_options_create();
    g_batch = weir_batch_create();
    if (!g_big || !g_opts || !g_batch) return -1;
    if (weir_open(g_dir, NULL, &g_db) != WEIR_OK) return -1;
    if (weir_put(g_db, NULL, "k", 1, "v", 1) != WEIR_OK) return -1;
    if (weir_snapshot_create(g_db, &g_snap) != WEIR_OK) return -1;
    if (weir_iter_create(g_db, NULL, &g_iter) != WEIR_OK) return -1;
    if (weir_txn_begin(g_db, NULL, &g_txn) != WEIR_OK) return -1;
    if (weir_txn_begin(g_db, NULL, &g_txn_done) != WEIR_OK) return -1;
    if (weir_txn_commit(g_txn_done) != WEIR_OK) return -1;
    return 0;
}

static void teardown(void) {
    weir_txn_destroy(g_txn);
    weir_txn_destroy(g_txn_done);
    weir_iter_destroy(g_iter);
    weir_snapshot_release(g_db, g_snap);
    weir_close(g_db);
    weir_batch_destroy(g_batch);
    weir_options_destroy(g_opts);
    free(g_big);
    test_rmtree(g_base);
}

TEST(every_case_fails_cleanly) {
    CHECK(setup() == 0);
    int failures = 0;
    for (size_t i = 0; i < NCASES; i++) {
        const api_case *c = &cases[i];
        weir_set_error(WEIR_OK, "(no message)");
        int got = c->call();
        const char *msg = weir_errmsg();
        int bad = got != c->want;
        if (!bad && c->kind == STATUS && got != WEIR_OK && c->msg_part[0] && !strstr(msg, c->msg_part))
            bad = 1;
        if (bad) {
            failures++;
            if (c->kind == STATUS)
                fprintf(stderr, "%s (%s): got %s \"%s\", want %s with \"%s\"\n", c->fn, c->what,
                        weir_status_name(got), msg, weir_status_name(c->want), c->msg_part);
            else
                fprintf(stderr, "%s (%s): got %d, want %d\n", c->fn, c->what, got, c->want);
        }
    }
    /* Still healthy: the same handles work. */
    char v[8];
    size_t vl;
    int rc = weir_put(g_db, NULL, "k2", 2, "v2", 2);
    if (rc == WEIR_OK) rc = weir_get(g_db, NULL, "k2", 2, v, sizeof v, &vl);
    if (rc == WEIR_OK) rc = weir_flush(g_db);
    if (rc == WEIR_OK) rc = weir_batch_put(g_batch, "b", 1, "c", 1);
    if (rc == WEIR_OK) rc = weir_write(g_db, NULL, g_batch);
    if (rc == WEIR_OK) rc = weir_txn_put(g_txn, "t", 1, "u", 1);
    if (rc == WEIR_OK) rc = weir_txn_commit(g_txn);
    teardown();
    fprintf(stderr, "     %zu cases, %d wrong\n", NCASES, failures);
    CHECK_OK(rc);
    CHECK_EQ_INT(failures, 0);
}

/* Every WEIR_API function in the public header has at least one case. */
TEST(every_public_function_has_a_case) {
    char path[PATH_MAX];
    const char *src = __FILE__;
    const char *cut = strstr(src, "tests/c/");
    if (!cut) {
        fprintf(stderr, "     skipped: cannot locate include/weir.h from %s\n", src);
        return;
    }
    snprintf(path, sizeof path, "%.*sinclude/weir.h", (int)(cut - src), src);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char line[1024];
    int missing = 0, functions = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "WEIR_API", 8) != 0) continue;
        char *paren = strchr(line, '(');
        if (!paren) continue;
        char *end = paren;
        while (end > line && (end[-1] == ' ')) end--;
        char *start = end;
        while (start > line && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
                                (start[-1] >= '0' && start[-1] <= '9')))
            start--;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(end - start), start);
        functions++;
        int found = 0;
        for (size_t i = 0; i < NCASES && !found; i++) found = strcmp(cases[i].fn, name) == 0;
        if (!found) {
            fprintf(stderr, "no bad-argument case for %s\n", name);
            missing++;
        }
    }
    fclose(f);
    fprintf(stderr, "     %d public functions, all covered\n", functions - missing);
    CHECK(functions > 50);
    CHECK_EQ_INT(missing, 0);
}

static const test_case tests[] = {
    TEST_ENTRY(every_case_fails_cleanly),
    TEST_ENTRY(every_public_function_has_a_case),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
