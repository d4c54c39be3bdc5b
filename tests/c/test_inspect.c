/* test_inspect.c -- inspect.h, the readers behind weir_check, dump-table
 * and dump-log, called directly: a table's entries (every op type, limit,
 * a stop from the callback, a malformed key, a damaged block) and layout
 * (blocks, separators, footer, key range), and a log's records and ops or
 * a manifest's version edit fields, with a torn tail, damage, short and
 * undecodable records. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "coding.h"
#include "dbformat.h"
#include "env.h"
#include "inspect.h"
#include "sst.h"
#include "status.h"
#include "testutil.h"
#include "version.h"
#include "wal.h"

static int bytes_is(inspect_bytes b, const char *s) {
    return b.len == strlen(s) && (b.len == 0 || memcmp(b.data, s, b.len) == 0);
}

/* Bytewise order, as user keys sort. */
static int compare_bytes(inspect_bytes a, const char *b, size_t blen) {
    size_t n = a.len < blen ? a.len : blen;
    int cmp = n ? memcmp(a.data, b, n) : 0;
    return cmp ? cmp : (a.len > blen) - (a.len < blen);
}

/* ---- names ---------------------------------------------------------------- */

TEST(op_and_codec_names) {
    CHECK(strcmp(inspect_op_name(INSPECT_OP_PUT), "PUT") == 0);
    CHECK(strcmp(inspect_op_name(INSPECT_OP_DEL), "DEL") == 0);
    CHECK(strcmp(inspect_op_name(INSPECT_OP_MERGE), "MERGE") == 0);
    CHECK(strcmp(inspect_op_name(INSPECT_OP_PUT_TTL), "PUT_TTL") == 0);
    CHECK(strcmp(inspect_op_name(INSPECT_OP_DEL_RANGE), "DEL_RANGE") == 0);
    CHECK(strcmp(inspect_op_name(5), "UNKNOWN") == 0);
    CHECK(strcmp(inspect_op_name(-1), "UNKNOWN") == 0);
    CHECK(strcmp(inspect_codec_name(WEIR_COMPRESSION_NONE), "none") == 0);
    CHECK(strcmp(inspect_codec_name(WEIR_COMPRESSION_LZ4), "lz4") == 0);
    CHECK(strcmp(inspect_codec_name(WEIR_COMPRESSION_ZSTD), "zstd") == 0);
    CHECK(strcmp(inspect_codec_name(3), "unknown") == 0);
}

TEST(log_kind_from_the_file_name) {
    CHECK_EQ_INT(inspect_log_kind_of("MANIFEST-000003"), INSPECT_LOG_MANIFEST);
    CHECK_EQ_INT(inspect_log_kind_of("/some/db/MANIFEST-000012"), INSPECT_LOG_MANIFEST);
    CHECK_EQ_INT(inspect_log_kind_of("/some/db/000012.log"), INSPECT_LOG_WAL);
    CHECK_EQ_INT(inspect_log_kind_of("copy-of-MANIFEST-000003"), INSPECT_LOG_WAL);
    CHECK_EQ_INT(inspect_log_kind_of("MANIFEST-"), INSPECT_LOG_WAL);
    CHECK_EQ_INT(inspect_log_kind_of("/some/MANIFEST-000003/000004.log"), INSPECT_LOG_WAL);
}

/* ---- tables ---------------------------------------------------------------- */

/* Entries of the test table: user key, sequence, type, value. */
typedef struct entry {
    char key[32];
    uint64_t seq;
    int type;
    buf value;
} entry;

#define NUM_ENTRIES 400

static void make_entries(entry *e) {
    for (int i = 0; i < NUM_ENTRIES; i++) {
        snprintf(e[i].key, sizeof e[i].key, "key%05d", i);
        e[i].seq = (uint64_t)(1000 + i);
        e[i].type = i % 5; /* DEL, PUT, MERGE, PUT_TTL, DEL_RANGE in turn */
        buf v = BUF_INIT;
        if (e[i].type == TYPE_VALUE_TTL) buf_put_fixed64(&v, UINT64_C(1700000000000) + (uint64_t)i);
        if (e[i].type == TYPE_RANGE_DELETION) {
            char end[32];
            snprintf(end, sizeof end, "key%05d~", i);
            buf_append(&v, end, strlen(end));
        } else if (e[i].type != TYPE_DELETION) {
            char val[64];
            snprintf(val, sizeof val, "value %d with some padding", i);
            buf_append(&v, val, strlen(val));
        }
        e[i].value = v;
    }
}

static void free_entries(entry *e) {
    for (int i = 0; i < NUM_ENTRIES; i++) buf_free(&e[i].value);
}

/* Build a table of n entries (with small blocks) at path; its size in *size. */
static int build_table(const char *path, const entry *e, int n, uint64_t *size) {
    sst_build_options o = {512, 16, 10, SST_COMPRESSION_NONE};
    sst_builder *b;
    int rc = sst_builder_open(env_posix(), path, &o, &b);
    if (rc != WEIR_OK) return rc;
    buf k = BUF_INIT;
    for (int i = 0; i < n && rc == WEIR_OK; i++) {
        buf_clear(&k);
        ikey_append(&k, slice_make(e[i].key, strlen(e[i].key)), e[i].seq, e[i].type);
        rc = sst_builder_add(b, buf_slice(&k), buf_slice(&e[i].value));
    }
    buf_free(&k);
    if (rc != WEIR_OK) {
        sst_builder_abandon(b);
        return rc;
    }
    return sst_builder_finish(b, size);
}

typedef struct collected {
    const entry *want;
    uint64_t seen;
    uint64_t stop_after; /* return WEIR_BUSY once this many were seen */
    int mismatch;        /* index + 1 of the first entry that differed */
} collected;

static int check_entry(void *arg, const inspect_op *op) {
    collected *c = arg;
    const entry *w = &c->want[c->seen];
    int ok = bytes_is(op->key, w->key) && op->sequence == w->seq && op->type == w->type && !op->malformed;
    slice v = buf_slice(&w->value);
    if (w->type == TYPE_VALUE_TTL) {
        ok = ok && op->expiry_ms == decode_fixed64(v.data);
        v = slice_make(v.data + 8, v.len - 8);
    } else {
        ok = ok && op->expiry_ms == 0;
    }
    ok = ok && op->value.len == v.len && (v.len == 0 || memcmp(op->value.data, v.data, v.len) == 0);
    if (!ok && !c->mismatch) c->mismatch = (int)c->seen + 1;
    c->seen++;
    if (c->stop_after && c->seen == c->stop_after) return weir_set_error(WEIR_BUSY, "stopped by the test");
    return WEIR_OK;
}

TEST(table_entries_every_op_type_in_order) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_entries");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    static entry e[NUM_ENTRIES];
    make_entries(e);
    uint64_t size;
    CHECK_OK(build_table(path, e, NUM_ENTRIES, &size));
    inspect_table *t;
    CHECK_OK(inspect_table_open(path, &t));
    collected c = {e, 0, 0, 0};
    uint64_t handed = 99;
    int rc = inspect_table_entries(t, UINT64_MAX, check_entry, &c, &handed);
    collected lim = {e, 0, 0, 0};
    uint64_t handed_lim = 0;
    int rc_lim = inspect_table_entries(t, 7, check_entry, &lim, &handed_lim);
    collected stop = {e, 0, 3, 0};
    uint64_t handed_stop = 0;
    int rc_stop = inspect_table_entries(t, UINT64_MAX, check_entry, &stop, &handed_stop);
    char stop_msg[256];
    snprintf(stop_msg, sizeof stop_msg, "%s", weir_errmsg());
    collected none = {e, 0, 0, 0};
    uint64_t handed_none = 99;
    int rc_none = inspect_table_entries(t, 0, check_entry, &none, &handed_none);
    inspect_table_close(t);
    free_entries(e);
    test_rmtree(dir);
    CHECK_OK(rc);
    CHECK_EQ_INT(c.mismatch, 0);
    CHECK_EQ_INT(c.seen, NUM_ENTRIES);
    CHECK_EQ_INT(handed, NUM_ENTRIES);
    CHECK_OK(rc_lim);
    CHECK_EQ_INT(lim.seen, 7);
    CHECK_EQ_INT(handed_lim, 7);
    CHECK_EQ_INT(lim.mismatch, 0);
    CHECK_EQ_INT(rc_stop, WEIR_BUSY);
    CHECK_EQ_INT(handed_stop, 3);
    CHECK(strcmp(stop_msg, "stopped by the test") == 0);
    CHECK_OK(rc_none);
    CHECK_EQ_INT(handed_none, 0);
    CHECK_EQ_INT(none.seen, 0);
}

static int count_op(void *arg, const inspect_op *op) {
    (void)op;
    ++*(uint64_t *)arg;
    return WEIR_OK;
}

typedef struct first_op {
    inspect_op op;
    char key[64], value[64];
    int n;
} first_op;

static int keep_first_op(void *arg, const inspect_op *op) {
    first_op *f = arg;
    if (f->n++ == 0) {
        f->op = *op;
        snprintf(f->key, sizeof f->key, "%.*s", (int)op->key.len, op->key.data);
        snprintf(f->value, sizeof f->value, "%.*s", (int)op->value.len, op->value.data);
    }
    return WEIR_OK;
}

TEST(table_ttl_value_shorter_than_its_expiry_is_marked_malformed) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_badttl");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entry e[1];
    memset(e, 0, sizeof e);
    strcpy(e[0].key, "short");
    e[0].seq = 5;
    e[0].type = TYPE_VALUE_TTL;
    buf_append(&e[0].value, "1234567", 7);
    uint64_t size;
    int rc = build_table(path, e, 1, &size);
    buf_free(&e[0].value);
    CHECK_OK(rc);
    inspect_table *t;
    CHECK_OK(inspect_table_open(path, &t));
    first_op f;
    memset(&f, 0, sizeof f);
    rc = inspect_table_entries(t, UINT64_MAX, keep_first_op, &f, NULL);
    inspect_table_close(t);
    test_rmtree(dir);
    CHECK_OK(rc);
    CHECK_EQ_INT(f.n, 1);
    CHECK(f.op.malformed);
    CHECK_EQ_INT(f.op.type, INSPECT_OP_PUT_TTL);
    CHECK(strcmp(f.key, "short") == 0);
    CHECK_EQ_INT(f.op.value.len, 0);
}

TEST(table_entry_with_an_unknown_type_is_a_malformed_key) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_badkey");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    entry e[2];
    memset(e, 0, sizeof e);
    strcpy(e[0].key, "a");
    e[0].seq = 1;
    e[0].type = TYPE_VALUE;
    strcpy(e[1].key, "b");
    e[1].seq = 2;
    e[1].type = 9; /* no such type */
    uint64_t size;
    CHECK_OK(build_table(path, e, 2, &size));
    inspect_table *t;
    CHECK_OK(inspect_table_open(path, &t));
    uint64_t ops = 0, handed = 0;
    int rc = inspect_table_entries(t, UINT64_MAX, count_op, &ops, &handed);
    char want[400];
    snprintf(want, sizeof want, "%s: entry 1 has a malformed internal key", path);
    int msg_ok = strcmp(weir_errmsg(), want) == 0;
    inspect_table_layout l;
    int lrc = inspect_table_layout_read(t, &l);
    int last_invalid = lrc == WEIR_OK && !l.empty && !l.last.valid && l.last.user.len == 1 + 8 &&
                       l.first.valid && bytes_is(l.first.user, "a") && l.first.sequence == 1 &&
                       l.first.type == INSPECT_OP_PUT;
    inspect_table_layout_free(&l);
    inspect_table_close(t);
    test_rmtree(dir);
    CHECK_EQ_INT(rc, WEIR_CORRUPTION);
    CHECK(msg_ok);
    CHECK_EQ_INT(ops, 1);
    CHECK_EQ_INT(handed, 1);
    CHECK_OK(lrc);
    CHECK(last_invalid);
}

TEST(table_layout_blocks_separators_footer_and_key_range) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_layout");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    static entry e[NUM_ENTRIES];
    make_entries(e);
    uint64_t size;
    int rc = build_table(path, e, NUM_ENTRIES, &size);
    if (rc != WEIR_OK) free_entries(e);
    CHECK_OK(rc);
    inspect_table *t;
    CHECK_OK(inspect_table_open(path, &t));
    inspect_table_layout l;
    rc = inspect_table_layout_read(t, &l);
    inspect_table_close(t); /* the layout owns what it points to */
    int ok = rc == WEIR_OK;
    /* Blocks tile the data region: each starts after the previous one's
     * 5-byte trailer; the filter follows the last one. */
    uint64_t at = 0, total = 0, smallest = UINT64_MAX, largest = 0;
    for (size_t i = 0; ok && i < l.num_blocks; i++) {
        const inspect_block *b = &l.blocks[i];
        ok = b->offset == at && b->codec == WEIR_COMPRESSION_NONE && b->last_key.valid;
        at = b->offset + b->size + SST_TRAILER_SIZE;
        total += b->size;
        if (b->size < smallest) smallest = b->size;
        if (b->size > largest) largest = b->size;
        /* A separator is >= the block's last key: never below the previous
         * separator, and for the last block >= the last entry. */
        if (ok && i > 0) {
            const inspect_key *p = &l.blocks[i - 1].last_key;
            ok = compare_bytes(p->user, b->last_key.user.data, b->last_key.user.len) <= 0;
        }
    }
    const entry *last = &e[NUM_ENTRIES - 1];
    int range_ok = !l.empty && l.first.valid && bytes_is(l.first.user, e[0].key) &&
                   l.first.sequence == e[0].seq && l.first.type == e[0].type && l.last.valid &&
                   bytes_is(l.last.user, last->key) && l.last.sequence == last->seq && l.last.type == last->type;
    const inspect_key *sep = l.num_blocks ? &l.blocks[l.num_blocks - 1].last_key : NULL;
    int last_sep_ok = sep && compare_bytes(sep->user, last->key, strlen(last->key)) >= 0;
    free_entries(e);
    test_rmtree(dir);
    CHECK(ok);
    CHECK_EQ_INT(l.file_size, size);
    CHECK_EQ_INT(l.format_version, SST_FORMAT_VERSION);
    CHECK_EQ_INT(l.entries, NUM_ENTRIES);
    CHECK(l.num_blocks > 10); /* 512-byte blocks */
    CHECK_EQ_INT(l.block_bytes, total);
    CHECK_EQ_INT(l.smallest_block, smallest);
    CHECK_EQ_INT(l.largest_block, largest);
    CHECK_EQ_INT(l.blocks_by_codec[0], l.num_blocks);
    CHECK_EQ_INT(l.blocks_by_codec[1] + l.blocks_by_codec[2], 0);
    CHECK_EQ_INT(l.filter_offset, at);
    CHECK(l.filter_size > 0);
    CHECK_EQ_INT(l.index_offset, l.filter_offset + l.filter_size + SST_TRAILER_SIZE);
    CHECK_EQ_INT(l.footer_offset, l.index_offset + l.index_size + SST_TRAILER_SIZE);
    CHECK_EQ_INT(l.footer_offset, size - SST_FOOTER_SIZE);
    CHECK_EQ_INT(l.footer_size, SST_FOOTER_SIZE);
    CHECK(range_ok);
    CHECK(last_sep_ok);
    inspect_table_layout_free(&l);
    CHECK(l.blocks == NULL && l.storage == NULL && l.num_blocks == 0);
}

TEST(table_layout_of_an_empty_table) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_empty");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    uint64_t size;
    CHECK_OK(build_table(path, NULL, 0, &size));
    inspect_table *t;
    CHECK_OK(inspect_table_open(path, &t));
    inspect_table_layout l;
    int rc = inspect_table_layout_read(t, &l);
    uint64_t ops = 0;
    int erc = inspect_table_entries(t, UINT64_MAX, count_op, &ops, NULL);
    inspect_table_close(t);
    test_rmtree(dir);
    CHECK_OK(rc);
    CHECK_OK(erc);
    CHECK_EQ_INT(ops, 0);
    CHECK(l.empty);
    CHECK_EQ_INT(l.entries, 0);
    CHECK_EQ_INT(l.num_blocks, 0);
    CHECK_EQ_INT(l.smallest_block, 0);
    CHECK_EQ_INT(l.largest_block, 0);
    CHECK_EQ_INT(l.footer_offset, size - SST_FOOTER_SIZE);
    inspect_table_layout_free(&l);
}

TEST(table_damage_in_a_data_block_stops_after_the_intact_entries) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_damage");
    snprintf(path, sizeof path, "%s/000001.sst", dir);
    static entry e[NUM_ENTRIES];
    make_entries(e);
    uint64_t size;
    int rc = build_table(path, e, NUM_ENTRIES, &size);
    free_entries(e);
    CHECK_OK(rc);
    /* Find block 2 and count the entries before it. */
    inspect_table *t;
    CHECK_OK(inspect_table_open(path, &t));
    inspect_table_layout l;
    CHECK_OK(inspect_table_layout_read(t, &l));
    uint64_t block2 = l.blocks[2].offset;
    uint64_t before = 0;
    for (int i = 0; i < NUM_ENTRIES; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%05d", i);
        if (compare_bytes(l.blocks[1].last_key.user, k, strlen(k)) >= 0) before++;
    }
    inspect_table_layout_free(&l);
    inspect_table_close(t);
    CHECK_EQ_INT(test_xor_byte(path, (size_t)block2 + 3, 0x40), 0);
    /* Data blocks are checked when read, not at open. */
    CHECK_OK(inspect_table_open(path, &t));
    uint64_t ops = 0, handed = 0;
    rc = inspect_table_entries(t, UINT64_MAX, count_op, &ops, &handed);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "after %" PRIu64 " entries: ", before);
    int msg_ok = strncmp(weir_errmsg(), prefix, strlen(prefix)) == 0 && strstr(weir_errmsg(), path) != NULL;
    inspect_table_close(t);
    /* The footer's checksum fails at open, naming the table. */
    CHECK_EQ_INT(test_xor_byte(path, (size_t)(size - SST_FOOTER_SIZE + 2), 0x01), 0);
    int orc = inspect_table_open(path, &t);
    char want[400];
    snprintf(want, sizeof want, "table %s", path);
    int open_msg_ok = strstr(weir_errmsg(), want) != NULL;
    snprintf(want, sizeof want, "%s/missing.sst", dir);
    inspect_table *missing = (inspect_table *)1;
    int mrc = inspect_table_open(want, &missing);
    test_rmtree(dir);
    CHECK_EQ_INT(rc, WEIR_CORRUPTION);
    CHECK(msg_ok);
    CHECK_EQ_INT(ops, before);
    CHECK_EQ_INT(handed, before);
    CHECK_EQ_INT(orc, WEIR_CORRUPTION);
    CHECK(open_msg_ok);
    CHECK(mrc != WEIR_OK);
    CHECK(missing == NULL);
}

/* ---- write-ahead logs ---------------------------------------------------------- */

typedef struct seen_log {
    int records, ops, fields;
    inspect_log_record rec[8];
    inspect_op op[16];
    char keys[16][32], values[16][32];
    inspect_edit_field field[32];
    int stop_at_record; /* 1-based; 0: never */
} seen_log;

static int on_record(void *arg, const inspect_log_record *r) {
    seen_log *s = arg;
    if (s->records < 8) s->rec[s->records] = *r;
    s->records++;
    if (s->stop_at_record == s->records) return weir_set_error(WEIR_BUSY, "stopped by the test");
    return WEIR_OK;
}

static int on_op(void *arg, const inspect_op *op) {
    seen_log *s = arg;
    if (s->ops < 16) {
        s->op[s->ops] = *op;
        snprintf(s->keys[s->ops], sizeof s->keys[0], "%.*s", (int)op->key.len, op->key.data);
        snprintf(s->values[s->ops], sizeof s->values[0], "%.*s", (int)op->value.len, op->value.data);
    }
    s->ops++;
    return WEIR_OK;
}

static int on_field(void *arg, const inspect_edit_field *f) {
    seen_log *s = arg;
    if (s->fields < 32) s->field[s->fields] = *f;
    s->fields++;
    return WEIR_OK;
}

/* Append batch b to the log as one record at sequence seq. */
static int log_batch(log_writer *w, weir_batch *b, uint64_t seq, int synced) {
    buf rep = BUF_INIT;
    int rc = batch_rep_init(&rep) != 0 ? WEIR_NO_MEMORY : WEIR_OK;
    /* TTLs become absolute as on the write path: now = 1000 ms. */
    if (rc == WEIR_OK) rc = batch_rep_resolve(&rep, buf_slice(&b->rep), 1000, 0);
    if (rc == WEIR_OK) {
        batch_rep_set_sequence(rep.data, seq | (synced ? BATCH_SEQ_SYNCED : 0));
        rc = log_writer_add(w, buf_slice(&rep));
    }
    buf_free(&rep);
    return rc;
}

/* A log of three records: an empty batch at 10, five ops at 10 (fsync'd),
 * one op at 15. */
static int write_test_wal(const char *path, uint64_t *ends) {
    log_writer *w;
    int rc = log_writer_open(env_posix(), path, &w);
    if (rc != WEIR_OK) return rc;
    weir_batch *empty = weir_batch_create(), *b = weir_batch_create(), *one = weir_batch_create();
    if (!empty || !b || !one) rc = WEIR_NO_MEMORY;
    int64_t five = 5;
    if (rc == WEIR_OK) rc = weir_batch_put(b, "k1", 2, "v1", 2);
    if (rc == WEIR_OK) rc = weir_batch_delete(b, "k2", 2);
    if (rc == WEIR_OK) rc = weir_batch_merge(b, "n", 1, WEIR_MERGE_INT64_ADD, &five, 8);
    if (rc == WEIR_OK) rc = weir_batch_put_ttl(b, "t", 1, "tv", 2, 500);
    if (rc == WEIR_OK) rc = weir_batch_delete_range(b, "a", 1, "c", 1);
    if (rc == WEIR_OK) rc = weir_batch_put(one, "last", 4, "", 0);
    if (rc == WEIR_OK) rc = log_batch(w, empty, 10, 0);
    if (rc == WEIR_OK) ends[0] = log_writer_size(w);
    if (rc == WEIR_OK) rc = log_batch(w, b, 10, 1);
    if (rc == WEIR_OK) ends[1] = log_writer_size(w);
    if (rc == WEIR_OK) rc = log_batch(w, one, 15, 0);
    if (rc == WEIR_OK) ends[2] = log_writer_size(w);
    weir_batch_destroy(empty);
    weir_batch_destroy(b);
    weir_batch_destroy(one);
    int rc2 = log_writer_close(w);
    return rc == WEIR_OK ? rc2 : rc;
}

TEST(log_records_and_ops_with_the_fsync_flag) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_wal");
    snprintf(path, sizeof path, "%s/000004.log", dir);
    uint64_t ends[3];
    CHECK_OK(write_test_wal(path, ends));
    static seen_log s;
    memset(&s, 0, sizeof s);
    inspect_log_visitor v = {on_record, on_op, on_field, &s};
    inspect_log_summary sum;
    int rc = inspect_log_walk(path, INSPECT_LOG_WAL, &v, &sum);
    inspect_log_summary plain;
    int prc = inspect_log_walk(path, INSPECT_LOG_WAL, NULL, &plain);
    test_rmtree(dir);
    CHECK_OK(rc);
    CHECK_EQ_INT(s.records, 3);
    CHECK_EQ_INT(s.fields, 0);
    CHECK_EQ_INT(s.rec[0].offset, 0);
    CHECK_EQ_INT(s.rec[0].count, 0);
    CHECK_EQ_INT(s.rec[0].size, BATCH_HEADER_SIZE);
    CHECK_EQ_INT(s.rec[1].offset, ends[0]);
    CHECK_EQ_INT(s.rec[1].sequence, 10);
    CHECK_EQ_INT(s.rec[1].count, 5);
    CHECK_EQ_INT(s.rec[1].synced, 1);
    CHECK_EQ_INT(s.rec[1].size, ends[1] - ends[0] - LOG_HEADER_SIZE);
    CHECK_EQ_INT(s.rec[2].offset, ends[1]);
    CHECK_EQ_INT(s.rec[2].sequence, 15);
    CHECK_EQ_INT(s.rec[2].synced, 0);
    CHECK_EQ_INT(s.ops, 6);
    CHECK_EQ_INT(s.op[0].type, INSPECT_OP_PUT);
    CHECK_EQ_INT(s.op[0].sequence, 10);
    CHECK(strcmp(s.keys[0], "k1") == 0 && strcmp(s.values[0], "v1") == 0);
    CHECK_EQ_INT(s.op[1].type, INSPECT_OP_DEL);
    CHECK_EQ_INT(s.op[1].sequence, 11);
    CHECK(strcmp(s.keys[1], "k2") == 0 && s.op[1].value.len == 0);
    CHECK_EQ_INT(s.op[2].type, INSPECT_OP_MERGE);
    CHECK_EQ_INT(s.op[2].value.len, 9); /* operator id + int64 */
    CHECK_EQ_INT(s.op[3].type, INSPECT_OP_PUT_TTL);
    CHECK_EQ_INT(s.op[3].expiry_ms, 1500);
    CHECK(!s.op[3].malformed);
    CHECK(strcmp(s.keys[3], "t") == 0 && strcmp(s.values[3], "tv") == 0);
    CHECK_EQ_INT(s.op[4].type, INSPECT_OP_DEL_RANGE);
    CHECK(strcmp(s.keys[4], "a") == 0 && strcmp(s.values[4], "c") == 0);
    CHECK_EQ_INT(s.op[5].sequence, 15);
    CHECK(strcmp(s.keys[5], "last") == 0);
    CHECK_EQ_INT(sum.records, 3);
    CHECK_EQ_INT(sum.ops, 6);
    CHECK_EQ_INT(sum.first_seq, 10); /* the first op's, past the empty batch */
    CHECK_EQ_INT(sum.last_seq, 15);
    CHECK_EQ_INT(sum.synced, 1);
    CHECK_EQ_INT(sum.dropped, 0);
    CHECK_EQ_INT(sum.valid_end, ends[2]);
    CHECK_EQ_INT(sum.size, ends[2]);
    CHECK_OK(prc);
    CHECK(memcmp(&plain, &sum, sizeof sum) == 0);
}

TEST(log_torn_tail_is_dropped_and_reported) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_torn");
    snprintf(path, sizeof path, "%s/000004.log", dir);
    uint64_t ends[3];
    CHECK_OK(write_test_wal(path, ends));
    CHECK_EQ_INT(truncate(path, (off_t)(ends[2] - 3)), 0);
    inspect_log_summary sum;
    int rc = inspect_log_walk(path, INSPECT_LOG_WAL, NULL, &sum);
    test_rmtree(dir);
    CHECK_OK(rc);
    CHECK_EQ_INT(sum.records, 2);
    CHECK_EQ_INT(sum.ops, 5);
    CHECK_EQ_INT(sum.last_seq, 14);
    CHECK_EQ_INT(sum.valid_end, ends[1]);
    CHECK_EQ_INT(sum.dropped, ends[2] - 3 - ends[1]);
    CHECK_EQ_INT(sum.size, ends[2] - 3);
}

TEST(log_damage_followed_by_valid_records_is_corruption) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_logdamage");
    snprintf(path, sizeof path, "%s/000004.log", dir);
    uint64_t ends[3];
    CHECK_OK(write_test_wal(path, ends));
    CHECK_EQ_INT(test_xor_byte(path, (size_t)ends[0] + LOG_HEADER_SIZE + 2, 0x10), 0);
    static seen_log s;
    memset(&s, 0, sizeof s);
    inspect_log_visitor v = {on_record, on_op, NULL, &s};
    inspect_log_summary sum;
    int rc = inspect_log_walk(path, INSPECT_LOG_WAL, &v, &sum);
    char want[64];
    snprintf(want, sizeof want, "at offset %" PRIu64, ends[0]);
    int msg_ok = strstr(weir_errmsg(), path) != NULL && strstr(weir_errmsg(), want) != NULL;
    test_rmtree(dir);
    CHECK_EQ_INT(rc, WEIR_CORRUPTION);
    CHECK(msg_ok);
    CHECK_EQ_INT(s.records, 1); /* the intact record before it was handed over */
    CHECK_EQ_INT(sum.records, 1);
}

/* A log holding the given records, each as is. */
static int write_raw_log(const char *path, const slice *records, int n) {
    log_writer *w;
    int rc = log_writer_open(env_posix(), path, &w);
    if (rc != WEIR_OK) return rc;
    for (int i = 0; i < n && rc == WEIR_OK; i++) rc = log_writer_add(w, records[i]);
    int rc2 = log_writer_close(w);
    return rc == WEIR_OK ? rc2 : rc;
}

TEST(log_record_too_short_or_undecodable_names_its_offset) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_shortrec");
    snprintf(path, sizeof path, "%s/000004.log", dir);
    /* A 5-byte record: no batch header. */
    slice recs[2] = {slice_make("\0\0\0\0\0\0\0\0\0\0\0\0", 12), slice_make("short", 5)};
    CHECK_OK(write_raw_log(path, recs, 2));
    inspect_log_summary sum;
    int rc = inspect_log_walk(path, INSPECT_LOG_WAL, NULL, &sum);
    char want[400];
    snprintf(want, sizeof want, "%s: record at offset %d is too short to be a write batch (5 bytes)", path,
             LOG_HEADER_SIZE + 12);
    int short_ok = strcmp(weir_errmsg(), want) == 0;
    /* A header that promises 2 ops and holds none. */
    char bad[BATCH_HEADER_SIZE] = {0};
    encode_fixed64(bad, 7);
    encode_fixed32(bad + 8, 2);
    recs[1] = slice_make(bad, sizeof bad);
    CHECK_OK(write_raw_log(path, recs, 2));
    int crc = inspect_log_walk(path, INSPECT_LOG_WAL, NULL, &sum);
    snprintf(want, sizeof want, "%s: record at offset %d: write batch holds 0 ops but its count says 2", path,
             LOG_HEADER_SIZE + 12);
    int count_ok = strcmp(weir_errmsg(), want) == 0;
    /* Read as a manifest, the same bytes are no version edit. */
    int mrc = inspect_log_walk(path, INSPECT_LOG_MANIFEST, NULL, &sum);
    snprintf(want, sizeof want, "%s: record at offset 0: ", path);
    int edit_ok = strncmp(weir_errmsg(), want, strlen(want)) == 0;
    test_rmtree(dir);
    CHECK_EQ_INT(rc, WEIR_CORRUPTION);
    CHECK(short_ok);
    CHECK_EQ_INT(crc, WEIR_CORRUPTION);
    CHECK(count_ok);
    CHECK_EQ_INT(mrc, WEIR_CORRUPTION);
    CHECK(edit_ok);
}

TEST(log_callback_status_stops_the_walk_at_its_record) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_stop");
    snprintf(path, sizeof path, "%s/000004.log", dir);
    uint64_t ends[3];
    CHECK_OK(write_test_wal(path, ends));
    static seen_log s;
    memset(&s, 0, sizeof s);
    s.stop_at_record = 2;
    inspect_log_visitor v = {on_record, on_op, NULL, &s};
    inspect_log_summary sum;
    int rc = inspect_log_walk(path, INSPECT_LOG_WAL, &v, &sum);
    char want[400];
    snprintf(want, sizeof want, "%s: record at offset %" PRIu64 ": stopped by the test", path, ends[0]);
    int msg_ok = strcmp(weir_errmsg(), want) == 0;
    inspect_log_summary missing;
    snprintf(want, sizeof want, "%s/000099.log", dir);
    int mrc = inspect_log_walk(want, INSPECT_LOG_WAL, NULL, &missing);
    test_rmtree(dir);
    CHECK_EQ_INT(rc, WEIR_BUSY);
    CHECK(msg_ok);
    CHECK_EQ_INT(s.records, 2);
    CHECK_EQ_INT(s.ops, 0); /* stopped before the second record's ops */
    CHECK_EQ_INT(sum.records, 1);
    CHECK(mrc != WEIR_OK);
}

/* ---- manifests ------------------------------------------------------------------- */

static int add_edit(log_writer *w, const version_edit *e) {
    buf rec = BUF_INIT;
    int rc = version_edit_encode(e, &rec);
    if (rc == WEIR_OK) rc = log_writer_add(w, buf_slice(&rec));
    buf_free(&rec);
    return rc;
}

TEST(manifest_edit_fields_in_order) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_manifest");
    snprintf(path, sizeof path, "%s/MANIFEST-000002", dir);
    log_writer *w;
    CHECK_OK(log_writer_open(env_posix(), path, &w));
    version_edit e;
    version_edit_init(&e);
    version_edit_set_log(&e, 4, 100);
    version_edit_set_next_file_number(&e, 9);
    version_edit_set_last_sequence(&e, 120);
    version_edit_delete_file(&e, 0, 5);
    buf lo = BUF_INIT, hi = BUF_INIT, ptr = BUF_INIT;
    ikey_append(&lo, slice_make("apple", 5), 101, TYPE_VALUE);
    ikey_append(&hi, slice_make("pear", 4), 119, TYPE_DELETION);
    ikey_append(&ptr, slice_make("m", 1), 110, TYPE_VALUE);
    file_meta *f = file_meta_create(7, 4096, 33, buf_slice(&lo), buf_slice(&hi));
    int rc = f ? version_edit_add_file(&e, 1, f) : WEIR_NO_MEMORY;
    file_meta_unref(f);
    if (rc == WEIR_OK) rc = version_edit_set_compact_pointer(&e, 1, buf_slice(&ptr));
    if (rc == WEIR_OK) rc = version_edit_add_range_tombstone(&e, 115, slice_make("b", 1), slice_make("d", 1));
    if (rc == WEIR_OK) rc = version_edit_remove_range_tombstone(&e, 90);
    if (rc == WEIR_OK) rc = add_edit(w, &e);
    version_edit_free(&e);
    version_edit_init(&e);
    version_edit_set_clean_close(&e, 120, 4);
    if (rc == WEIR_OK) rc = add_edit(w, &e);
    version_edit_free(&e);
    buf_free(&lo);
    buf_free(&hi);
    buf_free(&ptr);
    int crc = log_writer_close(w);
    CHECK_OK(rc);
    CHECK_OK(crc);
    static seen_log s;
    memset(&s, 0, sizeof s);
    inspect_log_visitor v = {on_record, on_op, on_field, &s};
    inspect_log_summary sum;
    rc = inspect_log_walk(path, inspect_log_kind_of(path), &v, &sum);
    test_rmtree(dir);
    CHECK_OK(rc);
    CHECK_EQ_INT(sum.records, 2);
    CHECK_EQ_INT(sum.ops, 0);
    CHECK_EQ_INT(s.records, 2);
    CHECK_EQ_INT(s.rec[0].offset, 0);
    CHECK_EQ_INT(s.rec[0].count, 0);
    CHECK_EQ_INT(s.ops, 0);
    static const int kinds[] = {INSPECT_EDIT_LOG_NUMBER, INSPECT_EDIT_LOG_START, INSPECT_EDIT_NEXT_FILE_NUMBER,
                                INSPECT_EDIT_LAST_SEQUENCE, INSPECT_EDIT_DELETE_TABLE, INSPECT_EDIT_ADD_TABLE,
                                INSPECT_EDIT_COMPACTION_POINTER, INSPECT_EDIT_ADD_RANGE_TOMBSTONE,
                                INSPECT_EDIT_REMOVE_RANGE_TOMBSTONE, INSPECT_EDIT_CLEAN_CLOSE};
    CHECK_EQ_INT(s.fields, 10);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(s.field[i].kind, kinds[i]);
    CHECK_EQ_INT(s.field[0].number, 4);
    CHECK_EQ_INT(s.field[1].sequence, 100);
    CHECK_EQ_INT(s.field[2].number, 9);
    CHECK_EQ_INT(s.field[3].sequence, 120);
    CHECK_EQ_INT(s.field[4].level, 0);
    CHECK_EQ_INT(s.field[4].number, 5);
    const inspect_edit_field *add = &s.field[5];
    CHECK_EQ_INT(add->level, 1);
    CHECK_EQ_INT(add->number, 7);
    CHECK_EQ_INT(add->size, 4096);
    CHECK_EQ_INT(add->entries, 33);
    CHECK_EQ_INT(s.field[6].level, 1);
    CHECK_EQ_INT(s.field[7].sequence, 115);
    CHECK_EQ_INT(s.field[8].sequence, 90);
    CHECK_EQ_INT(s.field[9].sequence, 120);
    CHECK_EQ_INT(s.field[9].number, 4);
}

/* The keys of an edit field are valid during the callback only: look at
 * them there. */
typedef struct edit_keys {
    int ok, seen;
} edit_keys;

static int check_edit_keys(void *arg, const inspect_edit_field *f) {
    edit_keys *k = arg;
    k->seen++;
    if (f->kind == INSPECT_EDIT_ADD_TABLE)
        k->ok += f->smallest.valid && bytes_is(f->smallest.user, "apple") && f->smallest.sequence == 101 &&
                 f->smallest.type == INSPECT_OP_PUT && f->largest.valid && bytes_is(f->largest.user, "pear") &&
                 f->largest.sequence == 119 && f->largest.type == INSPECT_OP_DEL;
    if (f->kind == INSPECT_EDIT_COMPACTION_POINTER)
        k->ok += f->smallest.valid && bytes_is(f->smallest.user, "m") && f->smallest.sequence == 110;
    if (f->kind == INSPECT_EDIT_ADD_RANGE_TOMBSTONE) k->ok += bytes_is(f->start, "b") && bytes_is(f->end, "d");
    return WEIR_OK;
}

TEST(manifest_edit_keys_and_ranges) {
    char dir[256], path[300];
    test_tmpdir(dir, sizeof dir, "inspect_manifest_keys");
    snprintf(path, sizeof path, "%s/MANIFEST-000002", dir);
    log_writer *w;
    CHECK_OK(log_writer_open(env_posix(), path, &w));
    version_edit e;
    version_edit_init(&e);
    buf lo = BUF_INIT, hi = BUF_INIT, ptr = BUF_INIT;
    ikey_append(&lo, slice_make("apple", 5), 101, TYPE_VALUE);
    ikey_append(&hi, slice_make("pear", 4), 119, TYPE_DELETION);
    ikey_append(&ptr, slice_make("m", 1), 110, TYPE_VALUE);
    file_meta *f = file_meta_create(7, 4096, 33, buf_slice(&lo), buf_slice(&hi));
    int rc = f ? version_edit_add_file(&e, 1, f) : WEIR_NO_MEMORY;
    file_meta_unref(f);
    if (rc == WEIR_OK) rc = version_edit_set_compact_pointer(&e, 1, buf_slice(&ptr));
    if (rc == WEIR_OK) rc = version_edit_add_range_tombstone(&e, 115, slice_make("b", 1), slice_make("d", 1));
    if (rc == WEIR_OK) rc = add_edit(w, &e);
    version_edit_free(&e);
    buf_free(&lo);
    buf_free(&hi);
    buf_free(&ptr);
    int crc = log_writer_close(w);
    CHECK_OK(rc);
    CHECK_OK(crc);
    edit_keys k = {0, 0};
    inspect_log_visitor v = {NULL, NULL, check_edit_keys, &k};
    inspect_log_summary sum;
    rc = inspect_log_walk(path, INSPECT_LOG_MANIFEST, &v, &sum);
    test_rmtree(dir);
    CHECK_OK(rc);
    CHECK_EQ_INT(k.seen, 3);
    CHECK_EQ_INT(k.ok, 3);
}

static const test_case tests[] = {
    TEST_ENTRY(op_and_codec_names),
    TEST_ENTRY(log_kind_from_the_file_name),
    TEST_ENTRY(table_entries_every_op_type_in_order),
    TEST_ENTRY(table_ttl_value_shorter_than_its_expiry_is_marked_malformed),
    TEST_ENTRY(table_entry_with_an_unknown_type_is_a_malformed_key),
    TEST_ENTRY(table_layout_blocks_separators_footer_and_key_range),
    TEST_ENTRY(table_layout_of_an_empty_table),
    TEST_ENTRY(table_damage_in_a_data_block_stops_after_the_intact_entries),
    TEST_ENTRY(log_records_and_ops_with_the_fsync_flag),
    TEST_ENTRY(log_torn_tail_is_dropped_and_reported),
    TEST_ENTRY(log_damage_followed_by_valid_records_is_corruption),
    TEST_ENTRY(log_record_too_short_or_undecodable_names_its_offset),
    TEST_ENTRY(log_callback_status_stops_the_walk_at_its_record),
    TEST_ENTRY(manifest_edit_fields_in_order),
    TEST_ENTRY(manifest_edit_keys_and_ranges),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
