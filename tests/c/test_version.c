/* test_version.c -- version edits (encoding, corrupt input), the manifest
 * (replay, rollover, torn tails, damage, missing files, failed writes),
 * building versions (overlap checks), compaction picking, and lookups and
 * iterators over real tables. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bloom.h"
#include "dbformat.h"
#include "env.h"
#include "filename.h"
#include "merger.h"
#include "sst.h"
#include "status.h"
#include "table_cache.h"
#include "testutil.h"
#include "version.h"
#include "wal.h"

/* ---- helpers -------------------------------------------------------------- */

static const vset_options test_opts = {1000, 100, 4};

/* An internal key in a static rotating buffer (enough for one call's
 * arguments). */
static slice ik(const char *user, uint64_t seq, int type) {
    static buf ring[8];
    static int next;
    buf *b = &ring[next++ & 7];
    buf_clear(b);
    if (ikey_append(b, slice_make(user, strlen(user)), seq, type) != 0) abort();
    return buf_slice(b);
}

static file_meta *mkfile(uint64_t number, uint64_t size, const char *smallest, const char *largest) {
    file_meta *f = file_meta_create(number, size, 10, ik(smallest, 100, TYPE_VALUE),
                                    ik(largest, 50, TYPE_VALUE));
    if (!f) abort();
    return f;
}

/* Add one file in its own edit. */
static int add_file(version_set *vs, pthread_mutex_t *mu, int level, uint64_t number, uint64_t size,
                    const char *smallest, const char *largest) {
    version_edit e;
    version_edit_init(&e);
    file_meta *f = mkfile(number, size, smallest, largest);
    vset_mark_file_number_used(vs, number);
    int rc = version_edit_add_file(&e, level, f);
    file_meta_unref(f);
    if (rc == WEIR_OK) rc = vset_log_and_apply(vs, &e, mu);
    version_edit_free(&e);
    return rc;
}

static int delete_file(version_set *vs, pthread_mutex_t *mu, int level, uint64_t number) {
    version_edit e;
    version_edit_init(&e);
    int rc = version_edit_delete_file(&e, level, number);
    if (rc == WEIR_OK) rc = vset_log_and_apply(vs, &e, mu);
    version_edit_free(&e);
    return rc;
}

static int has_text(const char *s, const char *needle) { return s && strstr(s, needle) != NULL; }

static uint64_t file_size_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int count_manifests(const char *dir) {
    env_dirent_list l = {0};
    if (env_posix()->ops->list_dir(env_posix(), dir, &l) != WEIR_OK) return -1;
    int n = 0;
    for (size_t i = 0; i < l.count; i++) {
        uint64_t num;
        if (parse_file_name(l.names[i], &num) == FILE_MANIFEST) n++;
    }
    env_dirent_list_free(&l);
    return n;
}

/* A fresh DB directory with a version set recovered from a new manifest. */
static version_set *open_new(char *dir, size_t cap, const char *tag, table_cache *tc) {
    test_tmpdir(dir, cap, tag);
    version_set *vs = vset_create(env_posix(), dir, tc, &test_opts);
    if (!vs) return NULL;
    if (vset_create_new_db(vs) != WEIR_OK || vset_recover(vs) != WEIR_OK) {
        vset_destroy(vs);
        return NULL;
    }
    return vs;
}

static version_set *reopen(const char *dir, int *rc) {
    version_set *vs = vset_create(env_posix(), dir, NULL, &test_opts);
    if (!vs) abort();
    *rc = vset_recover(vs);
    return vs;
}

static int level_has(const version *v, int level, uint64_t number) {
    for (int i = 0; i < v->num_files[level]; i++)
        if (v->files[level][i]->number == number) return 1;
    return 0;
}

/* ---- version edits -------------------------------------------------------- */

static void fill_edit(version_edit *e) {
    version_edit_set_log_number(e, 17);
    version_edit_set_next_file_number(e, 99);
    version_edit_set_last_sequence(e, 123456789);
    version_edit_set_compact_pointer(e, 2, ik("pointer", 7, TYPE_VALUE));
    version_edit_delete_file(e, 1, 40);
    version_edit_delete_file(e, 6, UINT64_C(1) << 40);
    file_meta *f = file_meta_create(41, 1u << 20, 777, ik("apple", 9, TYPE_VALUE), ik("zebra", 3, TYPE_DELETION));
    version_edit_add_file(e, 3, f);
    file_meta_unref(f);
    f = file_meta_create(42, 0, 0, ik("", 1, TYPE_VALUE), ik("", 1, TYPE_VALUE));
    version_edit_add_file(e, 0, f);
    file_meta_unref(f);
}

TEST(edit_round_trip_keeps_every_field) {
    version_edit e, d;
    version_edit_init(&e);
    version_edit_init(&d);
    fill_edit(&e);
    buf enc = BUF_INIT, enc2 = BUF_INIT;
    CHECK_OK(version_edit_encode(&e, &enc));
    CHECK_OK(version_edit_decode(&d, buf_slice(&enc)));
    CHECK(d.has_log_number && d.log_number == 17);
    CHECK(d.has_next_file_number && d.next_file_number == 99);
    CHECK(d.has_last_sequence && d.last_sequence == 123456789);
    CHECK_EQ_INT(d.num_pointers, 1);
    CHECK_EQ_INT(d.pointers[0].level, 2);
    CHECK(slice_equal(buf_slice(&d.pointers[0].key), ik("pointer", 7, TYPE_VALUE)));
    CHECK_EQ_INT(d.num_deleted, 2);
    CHECK(d.deleted[1].level == 6 && d.deleted[1].number == (UINT64_C(1) << 40));
    CHECK_EQ_INT(d.num_added, 2);
    CHECK_EQ_INT(d.added[0].level, 3);
    CHECK_EQ_INT(d.added[0].file->number, 41);
    CHECK_EQ_INT(d.added[0].file->size, 1u << 20);
    CHECK_EQ_INT(d.added[0].file->num_entries, 777);
    CHECK_EQ_INT(d.added[0].file->refs, 1);
    CHECK(slice_equal(buf_slice(&d.added[0].file->largest), ik("zebra", 3, TYPE_DELETION)));
    CHECK_OK(version_edit_encode(&d, &enc2));
    CHECK(slice_equal(buf_slice(&enc), buf_slice(&enc2)));
    /* Decoding into a used edit replaces its contents. */
    CHECK_OK(version_edit_decode(&d, slice_make("", 0)));
    CHECK(!d.has_log_number && d.num_added == 0 && d.num_deleted == 0);
    version_edit_free(&e);
    version_edit_free(&d);
    buf_free(&enc);
    buf_free(&enc2);
}

TEST(edit_decode_of_every_truncation_is_clean) {
    version_edit e, d;
    version_edit_init(&e);
    version_edit_init(&d);
    fill_edit(&e);
    buf enc = BUF_INIT, again = BUF_INIT;
    CHECK_OK(version_edit_encode(&e, &enc));
    int corrupt = 0;
    for (size_t n = 0; n < enc.len; n++) {
        /* A copy of exactly n bytes so ASan catches any read past the end. */
        char *copy = malloc(n ? n : 1);
        memcpy(copy, enc.data, n);
        int rc = version_edit_decode(&d, slice_make(copy, n));
        if (rc == WEIR_OK) {
            /* Only a cut between fields decodes, and then to that prefix. */
            buf_clear(&again);
            CHECK_OK(version_edit_encode(&d, &again));
            CHECK(again.len == n && (n == 0 || memcmp(again.data, enc.data, n) == 0));
        } else {
            CHECK_STATUS(rc, WEIR_CORRUPTION);
            CHECK(has_text(weir_errmsg(), "version edit"));
            CHECK(has_text(weir_errmsg(), "byte"));
            CHECK(d.num_added == 0 && d.num_deleted == 0);
            corrupt++;
        }
        free(copy);
    }
    CHECK(corrupt > (int)enc.len / 2);
    /* Cut inside the last field's key: the message names that field. */
    CHECK_STATUS(version_edit_decode(&d, slice_make(enc.data, enc.len - 3)), WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "largest key"));
    version_edit_free(&e);
    version_edit_free(&d);
    buf_free(&enc);
    buf_free(&again);
}

TEST(edit_decode_survives_byte_flips) {
    version_edit e, d;
    version_edit_init(&e);
    version_edit_init(&d);
    fill_edit(&e);
    buf enc = BUF_INIT;
    CHECK_OK(version_edit_encode(&e, &enc));
    static const unsigned char patterns[] = {0x00, 0xff, 0x80, 0x7f, 0x01, 0x06, 0x3f};
    int rejected = 0;
    for (size_t i = 0; i < enc.len; i++) {
        for (size_t p = 0; p < sizeof patterns + 1; p++) {
            char *copy = malloc(enc.len);
            memcpy(copy, enc.data, enc.len);
            copy[i] = p < sizeof patterns ? (char)patterns[p] : (char)(copy[i] ^ 0x55);
            int rc = version_edit_decode(&d, slice_make(copy, enc.len));
            CHECK(rc == WEIR_OK || rc == WEIR_CORRUPTION);
            if (rc == WEIR_CORRUPTION) rejected++;
            /* Whatever decodes must re-encode without trouble. */
            buf tmp = BUF_INIT;
            CHECK_OK(version_edit_encode(&d, &tmp));
            buf_free(&tmp);
            free(copy);
        }
    }
    CHECK(rejected > 0);
    version_edit_free(&e);
    version_edit_free(&d);
    buf_free(&enc);
}

TEST(edit_decode_rejects_unknown_tags_and_bad_fields) {
    version_edit d;
    version_edit_init(&d);
    buf b = BUF_INIT;
    buf_put_varint32(&b, 1);
    buf_put_varint64(&b, 5);
    buf_put_varint32(&b, 77); /* from a newer format */
    buf_put_varint64(&b, 5);
    CHECK_STATUS(version_edit_decode(&d, buf_slice(&b)), WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "unknown field tag 77"));
    CHECK(has_text(weir_errmsg(), "byte 2"));
    CHECK(!d.has_log_number);

    buf_clear(&b); /* level out of range */
    buf_put_varint32(&b, 5);
    buf_put_varint32(&b, NUM_LEVELS);
    buf_put_varint64(&b, 3);
    CHECK_STATUS(version_edit_decode(&d, buf_slice(&b)), WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "deleted file level"));

    buf_clear(&b); /* a key too short to be an internal key */
    buf_put_varint32(&b, 4);
    buf_put_varint32(&b, 1);
    buf_put_length_prefixed(&b, slice_make("short", 5));
    CHECK_STATUS(version_edit_decode(&d, buf_slice(&b)), WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "compact pointer key"));

    buf_clear(&b); /* smallest > largest */
    buf_put_varint32(&b, 6);
    buf_put_varint32(&b, 1);
    buf_put_varint64(&b, 9);
    buf_put_varint64(&b, 100);
    buf_put_varint64(&b, 1);
    buf_put_length_prefixed(&b, ik("z", 1, TYPE_VALUE));
    buf_put_length_prefixed(&b, ik("a", 1, TYPE_VALUE));
    CHECK_STATUS(version_edit_decode(&d, buf_slice(&b)), WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "key range"));

    buf_clear(&b); /* key with an unknown value type */
    buf_put_varint32(&b, 4);
    buf_put_varint32(&b, 1);
    buf_put_length_prefixed(&b, ik("k", 1, 9));
    CHECK_STATUS(version_edit_decode(&d, buf_slice(&b)), WEIR_CORRUPTION);

    buf_clear(&b); /* tag 0 is never written */
    buf_put_varint32(&b, 0);
    CHECK_STATUS(version_edit_decode(&d, buf_slice(&b)), WEIR_CORRUPTION);
    buf_free(&b);
    version_edit_free(&d);
}

/* ---- the manifest --------------------------------------------------------- */

TEST(new_db_recovers_empty) {
    char dir[PATH_MAX], path[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-new", NULL);
    CHECK(vs);
    CHECK(env_posix()->ops->file_exists(env_posix(), manifest_file_path(path, sizeof path, dir, 1)));
    buf cur = BUF_INIT;
    CHECK_OK(env_read_file(env_posix(), current_file_path(path, sizeof path, dir), &cur));
    CHECK(cur.len == 16 && memcmp(cur.data, "MANIFEST-000001\n", 16) == 0);
    buf_free(&cur);
    CHECK_EQ_INT(vs->manifest_file_number, 1);
    CHECK(vs->next_file_number >= 2);
    for (int l = 0; l < NUM_LEVELS; l++) CHECK_EQ_INT(vs->current->num_files[l], 0);
    CHECK(!vset_needs_compaction(vs));
    CHECK(vset_pick_compaction(vs) == NULL);
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(manifest_replay_restores_levels) {
    char dir[PATH_MAX];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    version_set *vs = open_new(dir, sizeof dir, "ver-replay", NULL);
    CHECK(vs);
    pthread_mutex_lock(&mu);
    CHECK_OK(add_file(vs, &mu, 0, 10, 100, "a", "m"));
    CHECK_OK(add_file(vs, &mu, 0, 11, 200, "c", "z"));
    CHECK_OK(add_file(vs, &mu, 1, 12, 300, "a", "f"));
    CHECK_OK(add_file(vs, &mu, 1, 13, 400, "g", "k"));
    CHECK_OK(add_file(vs, &mu, 2, 14, 500, "b", "y"));
    CHECK_OK(delete_file(vs, &mu, 0, 10));
    /* A compaction-like edit: deletes, adds, a pointer and a log number. */
    version_edit e;
    version_edit_init(&e);
    version_edit_delete_file(&e, 1, 13);
    file_meta *f = mkfile(15, 450, "g", "h");
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    f = mkfile(16, 50, "i", "k");
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    version_edit_set_compact_pointer(&e, 1, ik("k", 50, TYPE_VALUE));
    version_edit_set_log_number(&e, 9);
    vset_mark_file_number_used(vs, 16);
    vs->last_sequence = 4242;
    CHECK_OK(vset_log_and_apply(vs, &e, &mu));
    CHECK(e.has_next_file_number && e.next_file_number == vs->next_file_number);
    CHECK(e.has_last_sequence && e.last_sequence == 4242);
    version_edit_free(&e);
    pthread_mutex_unlock(&mu);

    version *v = vs->current;
    CHECK_EQ_INT(v->num_files[0], 1);
    CHECK_EQ_INT(v->num_files[1], 3);
    CHECK_EQ_INT(v->files[1][0]->number, 12);
    CHECK_EQ_INT(v->files[1][1]->number, 15);
    CHECK_EQ_INT(v->files[1][2]->number, 16);
    char *before = version_table_list(v);
    char *summary = version_level_summary(v);
    CHECK(before && summary);
    CHECK(has_text(summary, "level 1: 3 files, 800 bytes"));
    CHECK(has_text(before, "000015.sst"));
    uint64_t next = vs->next_file_number;
    uint64_t manifest = vs->manifest_file_number;
    CHECK(manifest > 1); /* the first apply after recovery rolled it */
    CHECK_EQ_INT(count_manifests(dir), 1);
    vset_destroy(vs);

    int rc;
    vs = reopen(dir, &rc);
    CHECK_OK(rc);
    char *after = version_table_list(vs->current);
    CHECK(after && strcmp(before, after) == 0);
    CHECK_EQ_INT(vs->log_number, 9);
    CHECK_EQ_INT(vs->last_sequence, 4242);
    CHECK(vs->next_file_number >= next);
    CHECK(vs->next_file_number > manifest);
    CHECK(slice_equal(buf_slice(&vs->compact_pointer[1]), ik("k", 50, TYPE_VALUE)));
    CHECK(vs->manifest == NULL);

    /* The next apply writes a fresh manifest and removes the old one. */
    pthread_mutex_lock(&mu);
    CHECK_OK(add_file(vs, &mu, 3, 30, 1, "x", "y"));
    pthread_mutex_unlock(&mu);
    CHECK(vs->manifest_file_number != manifest);
    CHECK_EQ_INT(count_manifests(dir), 1);
    vset_destroy(vs);
    vs = reopen(dir, &rc);
    CHECK_OK(rc);
    CHECK(level_has(vs->current, 3, 30) && level_has(vs->current, 1, 16));
    CHECK_EQ_INT(vs->last_sequence, 4242);
    vset_destroy(vs);
    free(before);
    free(after);
    free(summary);
    test_rmtree(dir);
}

TEST(manifest_rolls_over_past_limit) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-roll", NULL);
    CHECK(vs);
    /* Huge keys make each edit several MiB, so the limit is reached with
     * a handful of applies. */
    size_t big = 4u << 20;
    char *ka = malloc(big + 1), *kb = malloc(big + 1);
    memset(ka, 'a', big);
    memset(kb, 'b', big);
    ka[big] = kb[big] = '\0';
    uint64_t first_manifest = 0;
    int rolled = 0;
    for (uint64_t i = 0; i < 12 && !rolled; i++) {
        uint64_t n = 100 + i;
        CHECK_OK(add_file(vs, NULL, 0, n, 1, ka, kb));
        if (i == 0) first_manifest = vs->manifest_file_number;
        else if (vs->manifest_file_number != first_manifest) rolled = 1;
        CHECK_OK(delete_file(vs, NULL, 0, n));
    }
    CHECK(rolled);
    CHECK_EQ_INT(count_manifests(dir), 1);
    char path[PATH_MAX];
    CHECK(file_size_of(manifest_file_path(path, sizeof path, dir, vs->manifest_file_number)) <
          MANIFEST_ROLL_BYTES / 2);
    CHECK_OK(add_file(vs, NULL, 4, 500, 7, "k", "l"));
    vset_destroy(vs);
    int rc;
    vs = reopen(dir, &rc);
    CHECK_OK(rc);
    CHECK_EQ_INT(vs->current->num_files[0], 0);
    CHECK(level_has(vs->current, 4, 500));
    vset_destroy(vs);
    free(ka);
    free(kb);
    test_rmtree(dir);
}

TEST(torn_manifest_tail_recovers_earlier_state) {
    char dir[PATH_MAX], path[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-torn", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 0, 10, 100, "a", "b"));
    CHECK_OK(add_file(vs, NULL, 0, 11, 100, "c", "d"));
    manifest_file_path(path, sizeof path, dir, vs->manifest_file_number);
    uint64_t before = file_size_of(path);
    CHECK_OK(add_file(vs, NULL, 0, 12, 100, "e", "f"));
    uint64_t after = file_size_of(path);
    CHECK(after > before + 8);
    vset_destroy(vs);
    /* Cut the last record at several places (shrinking only, so no zero
     * fill appears): always the earlier state. */
    for (uint64_t cut = after - 1; cut > before; cut = cut > 5 ? cut - 5 : 0) {
        CHECK(truncate(path, (off_t)cut) == 0);
        int rc;
        vs = reopen(dir, &rc);
        CHECK_OK(rc);
        CHECK_EQ_INT(vs->current->num_files[0], 2);
        CHECK(!level_has(vs->current, 0, 12));
        vset_destroy(vs);
    }
    test_rmtree(dir);
}

TEST(corrupt_manifest_record_names_file_and_offset) {
    char dir[PATH_MAX], path[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-bad", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 0, 10, 100, "a", "b"));
    CHECK_OK(add_file(vs, NULL, 0, 11, 100, "c", "d"));
    CHECK_OK(add_file(vs, NULL, 0, 12, 100, "e", "f"));
    manifest_file_path(path, sizeof path, dir, vs->manifest_file_number);
    vset_destroy(vs);
    /* Damage the first record's payload; valid records follow it. */
    FILE *fp = fopen(path, "r+b");
    CHECK(fp);
    CHECK(fseek(fp, LOG_HEADER_SIZE + 2, SEEK_SET) == 0);
    int c = fgetc(fp);
    CHECK(fseek(fp, LOG_HEADER_SIZE + 2, SEEK_SET) == 0);
    fputc(c ^ 0x20, fp);
    fclose(fp);
    int rc;
    vs = reopen(dir, &rc);
    CHECK_STATUS(rc, WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "MANIFEST-"));
    CHECK(has_text(weir_errmsg(), "offset"));
    vset_destroy(vs);
    test_rmtree(dir);
}

/* A manifest whose records are intact logs but hold a bad edit. */
TEST(undecodable_manifest_edit_is_corruption_with_offset) {
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "ver-badedit");
    version_edit e;
    version_edit_init(&e);
    version_edit_set_log_number(&e, 0);
    version_edit_set_next_file_number(&e, 5);
    version_edit_set_last_sequence(&e, 0);
    buf rec = BUF_INIT;
    CHECK_OK(version_edit_encode(&e, &rec));
    version_edit_free(&e);
    log_writer *w;
    CHECK_OK(log_writer_open(env_posix(), manifest_file_path(path, sizeof path, dir, 3), &w));
    CHECK_OK(log_writer_add(w, buf_slice(&rec)));
    uint64_t bad_offset = log_writer_size(w);
    CHECK_OK(log_writer_add(w, slice_make("\x63\x01\x02", 3)));
    CHECK_OK(log_writer_add(w, buf_slice(&rec)));
    CHECK_OK(log_writer_close(w));
    buf_free(&rec);
    CHECK_OK(env_write_file_synced(env_posix(), current_file_path(path, sizeof path, dir),
                                   "MANIFEST-000003\n", 16));
    int rc;
    version_set *vs = reopen(dir, &rc);
    CHECK_STATUS(rc, WEIR_CORRUPTION);
    char want[64];
    snprintf(want, sizeof want, "offset %llu", (unsigned long long)bad_offset);
    CHECK(has_text(weir_errmsg(), want));
    CHECK(has_text(weir_errmsg(), "MANIFEST-000003"));
    CHECK(has_text(weir_errmsg(), "unknown field tag 99"));
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(missing_current_or_manifest_is_corruption) {
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "ver-missing");
    int rc;
    version_set *vs = reopen(dir, &rc);
    CHECK_STATUS(rc, WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "CURRENT"));
    CHECK(has_text(weir_errmsg(), "may not be a weir database"));
    vset_destroy(vs);

    CHECK_OK(env_write_file_synced(env_posix(), current_file_path(path, sizeof path, dir),
                                   "MANIFEST-000007\n", 16));
    vs = reopen(dir, &rc);
    CHECK_STATUS(rc, WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "MANIFEST-000007"));
    CHECK(has_text(weir_errmsg(), "missing"));
    vset_destroy(vs);

    const char *bad[] = {"", "MANIFEST-000007", "garbage\n", "MANIFEST-\n", "MANIFEST-12x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_OK(env_write_file_synced(env_posix(), path, bad[i], strlen(bad[i])));
        vs = reopen(dir, &rc);
        CHECK_STATUS(rc, WEIR_CORRUPTION);
        CHECK(has_text(weir_errmsg(), "CURRENT"));
        vset_destroy(vs);
    }

    /* An empty manifest lacks the required fields. */
    CHECK_OK(env_write_file_synced(env_posix(), manifest_file_path(path, sizeof path, dir, 7), "", 0));
    CHECK_OK(env_write_file_synced(env_posix(), current_file_path(path, sizeof path, dir),
                                   "MANIFEST-000007\n", 16));
    vs = reopen(dir, &rc);
    CHECK_STATUS(rc, WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "next file number"));
    vset_destroy(vs);
    test_rmtree(dir);
}

/* ---- failed manifest writes ----------------------------------------------- */

/* Fault injection: a copy of the POSIX env whose chosen operations fail. */
static struct weir_env_ops fault_ops;
static weir_env fault_env;
static int fail_sync, fail_rename, fail_new_writable;

static int faulty_sync(env_writable *f) {
    if (fail_sync) return weir_set_error(WEIR_IO_ERROR, "sync %s: injected failure", f->path);
    return env_posix()->ops->sync(f);
}

static int faulty_rename(weir_env *env, const char *from, const char *to) {
    (void)env;
    if (fail_rename) return weir_set_error(WEIR_IO_ERROR, "rename %s: injected failure", from);
    return env_posix()->ops->rename_file(env_posix(), from, to);
}

static int faulty_new_writable(weir_env *env, const char *path, env_writable **out) {
    (void)env;
    if (fail_new_writable) return weir_set_error(WEIR_NO_SPACE, "create %s: injected ENOSPC", path);
    return env_posix()->ops->new_writable(&fault_env, path, out);
}

static weir_env *faulty_env(void) {
    fault_ops = *env_posix()->ops;
    fault_ops.sync = faulty_sync;
    fault_ops.rename_file = faulty_rename;
    fault_ops.new_writable = faulty_new_writable;
    fault_env.ops = &fault_ops;
    fault_env.state = NULL;
    fail_sync = fail_rename = fail_new_writable = 0;
    return &fault_env;
}

TEST(failed_manifest_write_installs_nothing) {
    char dir[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "ver-fail");
    version_set *vs = vset_create(faulty_env(), dir, NULL, &test_opts);
    CHECK(vs);
    CHECK_OK(vset_create_new_db(vs));
    CHECK_OK(vset_recover(vs));
    CHECK_OK(add_file(vs, NULL, 0, 10, 100, "a", "b"));
    version *before = vs->current;

    fail_sync = 1; /* appending to the existing manifest fails */
    CHECK_STATUS(add_file(vs, NULL, 0, 11, 100, "c", "d"), WEIR_IO_ERROR);
    CHECK(has_text(weir_errmsg(), "injected"));
    CHECK(vs->current == before && !level_has(vs->current, 0, 11));
    CHECK(vs->manifest == NULL);
    CHECK(!vs->manifest_busy);

    fail_sync = 0; /* the next apply starts a fresh manifest... */
    fail_rename = 1; /* ...but cannot switch CURRENT to it */
    uint64_t old_manifest = vs->manifest_file_number;
    CHECK_STATUS(add_file(vs, NULL, 0, 12, 100, "e", "f"), WEIR_IO_ERROR);
    CHECK(vs->current == before);
    CHECK_EQ_INT(vs->manifest_file_number, old_manifest);
    CHECK_EQ_INT(count_manifests(dir), 1); /* the half-made one is gone */

    fail_rename = 0;
    fail_new_writable = 1;
    CHECK_STATUS(add_file(vs, NULL, 0, 13, 100, "g", "h"), WEIR_NO_SPACE);
    CHECK_EQ_INT(count_manifests(dir), 1);
    fail_new_writable = 0;

    CHECK_OK(add_file(vs, NULL, 0, 14, 100, "i", "j"));
    CHECK(vs->manifest_file_number != old_manifest);
    CHECK_EQ_INT(count_manifests(dir), 1);
    vset_destroy(vs);

    int rc;
    vs = reopen(dir, &rc);
    CHECK_OK(rc);
    CHECK(level_has(vs->current, 0, 10) && level_has(vs->current, 0, 14));
    CHECK_EQ_INT(vs->current->num_files[0], 2);
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(create_new_db_failure_leaves_no_manifest) {
    char dir[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "ver-newfail");
    version_set *vs = vset_create(faulty_env(), dir, NULL, &test_opts);
    CHECK(vs);
    fail_rename = 1;
    CHECK_STATUS(vset_create_new_db(vs), WEIR_IO_ERROR);
    CHECK_EQ_INT(count_manifests(dir), 0);
    char path[PATH_MAX];
    CHECK(!env_posix()->ops->file_exists(env_posix(), current_file_path(path, sizeof path, dir)));
    CHECK(!env_posix()->ops->file_exists(env_posix(), temp_file_path(path, sizeof path, dir, 1)));
    vset_destroy(vs);
    test_rmtree(dir);
}

/* ---- building versions ---------------------------------------------------- */

TEST(overlapping_files_in_sorted_level_are_rejected) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-overlap", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 1, 10, 100, "c", "f"));
    version *before = vs->current;
    CHECK_STATUS(add_file(vs, NULL, 1, 11, 100, "e", "h"), WEIR_CORRUPTION);
    CHECK(has_text(weir_errmsg(), "overlap"));
    CHECK(has_text(weir_errmsg(), "000010.sst"));
    CHECK(vs->current == before);
    CHECK_STATUS(add_file(vs, NULL, 1, 12, 100, "a", "z"), WEIR_CORRUPTION);
    /* Level 0 may overlap. */
    CHECK_OK(add_file(vs, NULL, 0, 13, 100, "a", "z"));
    CHECK_OK(add_file(vs, NULL, 0, 14, 100, "b", "y"));
    /* Touching user keys are fine at level 1 when the internal keys are
     * ordered (largest "f"@50 sorts before smallest "f"@40). */
    version_edit e;
    version_edit_init(&e);
    file_meta *f = file_meta_create(15, 1, 1, ik("f", 40, TYPE_VALUE), ik("g", 1, TYPE_VALUE));
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    CHECK_OK(vset_log_and_apply(vs, &e, NULL));
    version_edit_free(&e);
    /* Replacing a file in one edit: delete and add at the same level. */
    version_edit_init(&e);
    version_edit_delete_file(&e, 1, 10);
    f = mkfile(16, 100, "d", "e");
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    CHECK_OK(vset_log_and_apply(vs, &e, NULL));
    version_edit_free(&e);
    version *v = vs->current;
    CHECK_EQ_INT(v->num_files[1], 2);
    CHECK_EQ_INT(v->files[1][0]->number, 16);
    CHECK_EQ_INT(v->files[1][1]->number, 15);
    CHECK_EQ_INT(v->files[0][0]->number, 13);
    CHECK_EQ_INT(v->files[0][1]->number, 14);
    /* A trivial move: same number, next level. */
    version_edit_init(&e);
    version_edit_delete_file(&e, 1, 15);
    f = v->files[1][1];
    version_edit_add_file(&e, 2, f);
    CHECK_OK(vset_log_and_apply(vs, &e, NULL));
    version_edit_free(&e);
    CHECK(!level_has(vs->current, 1, 15) && level_has(vs->current, 2, 15));
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(overlap_in_level_queries) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-ovq", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 0, 10, 100, "m", "p"));
    CHECK_OK(add_file(vs, NULL, 1, 11, 100, "c", "f"));
    CHECK_OK(add_file(vs, NULL, 1, 12, 100, "k", "n"));
    version *v = vs->current;
    slice a = slice_make("a", 1), b = slice_make("b", 1), c = slice_make("c", 1), g = slice_make("g", 1),
          j = slice_make("j", 1), n = slice_make("n", 1), o = slice_make("o", 1), z = slice_make("z", 1);
    CHECK(!version_overlap_in_level(v, 1, &a, &b));
    CHECK(version_overlap_in_level(v, 1, &a, &c));
    CHECK(!version_overlap_in_level(v, 1, &g, &j));
    CHECK(version_overlap_in_level(v, 1, &n, &z));
    CHECK(!version_overlap_in_level(v, 1, &o, &z));
    CHECK(version_overlap_in_level(v, 1, NULL, &c));
    CHECK(!version_overlap_in_level(v, 1, NULL, &b));
    CHECK(version_overlap_in_level(v, 1, &j, NULL));
    CHECK(!version_overlap_in_level(v, 1, &o, NULL));
    CHECK(version_overlap_in_level(v, 1, NULL, NULL));
    CHECK(version_overlap_in_level(v, 0, &o, &z));
    CHECK(!version_overlap_in_level(v, 0, &a, &j));
    CHECK(!version_overlap_in_level(v, 2, NULL, NULL));
    CHECK_EQ_INT(version_level_bytes(v, 1), 200);
    vset_destroy(vs);
    test_rmtree(dir);
}

static void collect_number(void *arg, uint64_t number) {
    uint64_t *seen = arg;
    if (number < 64) *seen |= UINT64_C(1) << number;
}

TEST(live_files_include_older_referenced_versions) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-live", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 0, 10, 100, "a", "b"));
    version *old = vs->current;
    version_ref(old);
    CHECK_OK(delete_file(vs, NULL, 0, 10));
    CHECK_OK(add_file(vs, NULL, 0, 11, 100, "a", "b"));
    uint64_t seen = 0;
    vset_for_each_live_file(vs, collect_number, &seen);
    CHECK(seen == ((UINT64_C(1) << 10) | (UINT64_C(1) << 11)));
    version_unref(old);
    seen = 0;
    vset_for_each_live_file(vs, collect_number, &seen);
    CHECK(seen == (UINT64_C(1) << 11));
    vset_destroy(vs);
    test_rmtree(dir);
}

typedef struct apply_thread_arg {
    version_set *vs;
    pthread_mutex_t *mu;
    uint64_t first;
    int rc;
} apply_thread_arg;

static void *apply_thread(void *p) {
    apply_thread_arg *a = p;
    pthread_mutex_lock(a->mu);
    for (uint64_t i = 0; i < 20 && a->rc == WEIR_OK; i++)
        a->rc = add_file(a->vs, a->mu, 0, a->first + i, 1, "k", "k");
    pthread_mutex_unlock(a->mu);
    return NULL;
}

TEST(concurrent_log_and_apply_is_serialised) {
    char dir[PATH_MAX];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    version_set *vs = open_new(dir, sizeof dir, "ver-conc", NULL);
    CHECK(vs);
    vset_mark_file_number_used(vs, 1000);
    apply_thread_arg a[3] = {{vs, &mu, 100, 0}, {vs, &mu, 200, 0}, {vs, &mu, 300, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, apply_thread, &a[i]);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++) CHECK_OK(a[i].rc);
    CHECK_EQ_INT(vs->current->num_files[0], 60);
    vset_destroy(vs);
    int rc;
    vs = reopen(dir, &rc);
    CHECK_OK(rc);
    CHECK_EQ_INT(vs->current->num_files[0], 60);
    for (int i = 1; i < 60; i++)
        CHECK(vs->current->files[0][i - 1]->number < vs->current->files[0][i]->number);
    vset_destroy(vs);
    test_rmtree(dir);
}

/* ---- compaction picking --------------------------------------------------- */

TEST(scores_follow_level_sizes) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-score", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 0, 10, 1, "a", "b"));
    CHECK_OK(add_file(vs, NULL, 0, 11, 1, "a", "b"));
    CHECK(vs->current->compaction_level == 0);
    CHECK(vs->current->compaction_score == 0.5);
    CHECK(!vset_needs_compaction(vs));
    CHECK_OK(add_file(vs, NULL, 2, 12, 15000, "a", "b")); /* limit 10000 */
    CHECK_EQ_INT(vs->current->compaction_level, 2);
    CHECK(vs->current->compaction_score == 1.5);
    CHECK(vset_needs_compaction(vs));
    CHECK_OK(add_file(vs, NULL, 1, 13, 2000, "a", "b")); /* limit 1000 */
    CHECK_EQ_INT(vs->current->compaction_level, 1);
    CHECK(vs->current->compaction_score == 2.0);
    /* The last level never scores, however big. */
    CHECK_OK(delete_file(vs, NULL, 1, 13));
    CHECK_OK(delete_file(vs, NULL, 2, 12));
    CHECK_OK(add_file(vs, NULL, NUM_LEVELS - 1, 14, UINT64_C(1) << 50, "a", "b"));
    CHECK(!vset_needs_compaction(vs));
    CHECK(vset_pick_compaction(vs) == NULL);
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(level0_compaction_takes_overlapping_files) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-pick0", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 0, 10, 10, "a", "c"));
    CHECK_OK(add_file(vs, NULL, 0, 11, 10, "b", "e"));
    CHECK_OK(add_file(vs, NULL, 0, 12, 10, "x", "z"));
    CHECK_OK(add_file(vs, NULL, 0, 13, 10, "d", "f")); /* overlaps 11 only */
    CHECK_OK(add_file(vs, NULL, 1, 20, 10, "a", "a"));
    CHECK_OK(add_file(vs, NULL, 1, 21, 10, "e", "g"));
    CHECK_OK(add_file(vs, NULL, 1, 22, 10, "h", "w"));
    CHECK_OK(add_file(vs, NULL, 2, 30, 10, "f", "i"));
    CHECK_OK(add_file(vs, NULL, 2, 31, 10, "y", "z"));
    CHECK(vset_needs_compaction(vs));
    compaction *c = vset_pick_compaction(vs);
    CHECK(c);
    CHECK_EQ_INT(c->level, 0);
    /* File 10 first (no pointer yet), closed over 11 and then 13. */
    CHECK_EQ_INT(c->num_inputs[0], 3);
    CHECK_EQ_INT(c->inputs[0][0]->number, 10);
    CHECK_EQ_INT(c->inputs[0][1]->number, 11);
    CHECK_EQ_INT(c->inputs[0][2]->number, 13);
    CHECK_EQ_INT(c->num_inputs[1], 2);
    CHECK_EQ_INT(c->inputs[1][0]->number, 20);
    CHECK_EQ_INT(c->inputs[1][1]->number, 21);
    CHECK_EQ_INT(c->num_grandparents, 1);
    CHECK_EQ_INT(c->grandparents[0]->number, 30);
    CHECK(c->inputs[0][0]->being_compacted && c->inputs[1][1]->being_compacted);
    CHECK(!vs->current->files[0][2]->being_compacted); /* file 12 */
    CHECK(c->input_version == vs->current);
    CHECK_EQ_INT(c->edit.num_pointers, 1);
    CHECK(slice_equal(buf_slice(&c->edit.pointers[0].key), ik("f", 50, TYPE_VALUE)));
    CHECK(!compaction_is_trivial_move(c));

    /* While it runs, file 12 (x..z) overlaps nothing busy: it goes alone,
     * past the pointer, as a trivial move. */
    compaction *c2 = vset_pick_compaction(vs);
    CHECK(c2);
    CHECK_EQ_INT(c2->level, 0);
    CHECK_EQ_INT(c2->num_inputs[0], 1);
    CHECK_EQ_INT(c2->inputs[0][0]->number, 12);
    CHECK_EQ_INT(c2->num_inputs[1], 0);
    CHECK(compaction_is_trivial_move(c2));
    /* Everything at level 0 is busy now. */
    CHECK(vset_pick_compaction(vs) == NULL);

    /* Apply the first compaction: inputs deleted, one output added. */
    CHECK_OK(compaction_add_input_deletions(c));
    CHECK_EQ_INT(c->edit.num_deleted, 5);
    file_meta *out = mkfile(40, 30, "a", "g");
    CHECK_OK(version_edit_add_file(&c->edit, 1, out));
    file_meta_unref(out);
    CHECK_OK(vset_log_and_apply(vs, &c->edit, NULL));
    compaction_free(c);
    CHECK_EQ_INT(vs->current->num_files[0], 1);
    CHECK_EQ_INT(vs->current->num_files[1], 2);
    compaction_free(c2);
    CHECK(!vs->current->files[0][0]->being_compacted);
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(busy_next_level_skips_compaction) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-busy", NULL);
    CHECK(vs);
    for (uint64_t i = 0; i < 4; i++) CHECK_OK(add_file(vs, NULL, 0, 10 + i, 10, "c", "d"));
    CHECK_OK(add_file(vs, NULL, 1, 20, 10, "a", "e"));
    vs->current->files[1][0]->being_compacted = 1;
    CHECK(vset_pick_compaction(vs) == NULL);
    vs->current->files[1][0]->being_compacted = 0;
    compaction *c = vset_pick_compaction(vs);
    CHECK(c && c->num_inputs[0] == 4 && c->num_inputs[1] == 1);
    compaction_free(c);
    for (int i = 0; i < 4; i++) CHECK(!vs->current->files[0][i]->being_compacted);
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(sorted_level_compaction_round_robins) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-rr", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 1, 10, 400, "a", "b"));
    CHECK_OK(add_file(vs, NULL, 1, 11, 400, "c", "d"));
    CHECK_OK(add_file(vs, NULL, 1, 12, 400, "e", "f"));
    CHECK_OK(add_file(vs, NULL, 2, 20, 50, "d", "e"));
    compaction *c = vset_pick_compaction(vs);
    CHECK(c && c->level == 1 && c->num_inputs[0] == 1);
    CHECK_EQ_INT(c->inputs[0][0]->number, 10);
    CHECK_EQ_INT(c->num_inputs[1], 0);
    CHECK(compaction_is_trivial_move(c));
    compaction_free(c);
    c = vset_pick_compaction(vs);
    CHECK(c && c->inputs[0][0]->number == 11);
    CHECK_EQ_INT(c->num_inputs[1], 1);
    CHECK_EQ_INT(c->inputs[1][0]->number, 20);
    CHECK(!compaction_is_trivial_move(c));
    /* A second pick while 11 runs takes 12 -- but 12's level-2 overlap
     * (20) is busy, so nothing else is possible. */
    CHECK(vset_pick_compaction(vs) == NULL);
    compaction_free(c);
    c = vset_pick_compaction(vs);
    CHECK(c && c->inputs[0][0]->number == 12);
    compaction_free(c);
    c = vset_pick_compaction(vs); /* wraps around */
    CHECK(c && c->inputs[0][0]->number == 10);
    compaction_free(c);

    /* The pointer is persisted with the compaction's edit. */
    c = vset_pick_compaction(vs);
    CHECK(c && c->inputs[0][0]->number == 11);
    CHECK_OK(compaction_add_input_deletions(c));
    CHECK_OK(vset_log_and_apply(vs, &c->edit, NULL));
    compaction_free(c);
    vset_destroy(vs);
    int rc;
    vs = reopen(dir, &rc);
    CHECK_OK(rc);
    CHECK(slice_equal(buf_slice(&vs->compact_pointer[1]), ik("d", 50, TYPE_VALUE)));
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(inputs_include_files_sharing_a_boundary_user_key) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-bound", NULL);
    CHECK(vs);
    /* Each file ends with a newer version of the key the next one starts
     * with ("k"@50 / "k"@40, "m"@50 / "m"@40). Moving 10 down without the
     * whole chain would put a newer version below an older one. */
    version_edit e;
    version_edit_init(&e);
    file_meta *f = file_meta_create(10, 800, 1, ik("a", 9, TYPE_VALUE), ik("k", 50, TYPE_VALUE));
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    f = file_meta_create(11, 800, 1, ik("k", 40, TYPE_VALUE), ik("m", 50, TYPE_VALUE));
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    f = file_meta_create(12, 800, 1, ik("m", 40, TYPE_VALUE), ik("n", 9, TYPE_VALUE));
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    f = file_meta_create(13, 800, 1, ik("p", 9, TYPE_VALUE), ik("q", 9, TYPE_VALUE));
    version_edit_add_file(&e, 1, f);
    file_meta_unref(f);
    vset_mark_file_number_used(vs, 13);
    CHECK_OK(vset_log_and_apply(vs, &e, NULL));
    version_edit_free(&e);
    compaction *c = vset_pick_compaction(vs);
    CHECK(c);
    CHECK_EQ_INT(c->num_inputs[0], 3);
    CHECK_EQ_INT(c->inputs[0][0]->number, 10);
    CHECK_EQ_INT(c->inputs[0][1]->number, 11);
    CHECK_EQ_INT(c->inputs[0][2]->number, 12);
    compaction_free(c);
    /* A manual compaction of just "a" takes the same chain. */
    buf lo = BUF_INIT, hi = BUF_INIT;
    ikey_append(&lo, slice_make("a", 1), MAX_SEQUENCE, TYPE_FOR_SEEK);
    ikey_append(&hi, slice_make("a", 1), 0, TYPE_DELETION);
    slice sl = buf_slice(&lo), sh = buf_slice(&hi);
    c = vset_compact_range(vs, 1, &sl, &sh);
    CHECK(c);
    CHECK_EQ_INT(c->num_inputs[0], 3);
    compaction_free(c);
    buf_free(&lo);
    buf_free(&hi);
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(compact_range_selects_overlapping_files) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-range", NULL);
    CHECK(vs);
    CHECK_OK(add_file(vs, NULL, 1, 10, 1, "a", "b"));
    CHECK_OK(add_file(vs, NULL, 1, 11, 1, "c", "d"));
    CHECK_OK(add_file(vs, NULL, 1, 12, 1, "e", "f"));
    CHECK_OK(add_file(vs, NULL, 2, 20, 1, "a", "c"));
    buf lo = BUF_INIT, hi = BUF_INIT;
    ikey_append(&lo, slice_make("bb", 2), MAX_SEQUENCE, TYPE_FOR_SEEK);
    ikey_append(&hi, slice_make("e", 1), 0, TYPE_DELETION);
    slice sl = buf_slice(&lo), sh = buf_slice(&hi);
    compaction *c = vset_compact_range(vs, 1, &sl, &sh);
    CHECK(c);
    CHECK_EQ_INT(c->num_inputs[0], 2);
    CHECK_EQ_INT(c->inputs[0][0]->number, 11);
    CHECK_EQ_INT(c->inputs[0][1]->number, 12);
    CHECK_EQ_INT(c->num_inputs[1], 1);
    /* Overlapping inputs are busy now. */
    CHECK(vset_compact_range(vs, 1, NULL, NULL) == NULL);
    compaction_free(c);
    c = vset_compact_range(vs, 1, NULL, NULL);
    CHECK(c && c->num_inputs[0] == 3);
    compaction_free(c);
    CHECK(vset_compact_range(vs, 3, NULL, NULL) == NULL); /* nothing there */
    CHECK(vset_compact_range(vs, NUM_LEVELS - 1, NULL, NULL) == NULL);
    buf_free(&lo);
    buf_free(&hi);
    vset_destroy(vs);
    test_rmtree(dir);
}

TEST(grandparent_overlap_cuts_outputs_and_blocks_trivial_moves) {
    char dir[PATH_MAX];
    version_set *vs = open_new(dir, sizeof dir, "ver-gp", NULL);
    CHECK(vs);
    /* target_file_size 100: a cut after > 1000 bytes of grandparents. */
    CHECK_OK(add_file(vs, NULL, 1, 10, 5000, "a", "z"));
    const char *gp[][2] = {{"b", "c"}, {"d", "e"}, {"f", "g"}, {"h", "i"}, {"j", "k"}};
    for (int i = 0; i < 5; i++) CHECK_OK(add_file(vs, NULL, 3, 20 + (uint64_t)i, 600, gp[i][0], gp[i][1]));
    compaction *c = vset_pick_compaction(vs);
    CHECK(c && c->level == 1);
    CHECK_EQ_INT(c->num_grandparents, 5);
    CHECK(!compaction_is_trivial_move(c)); /* 3000 bytes > 1000 */
    CHECK(!compaction_should_stop_before(c, ik("a", 5, TYPE_VALUE)));
    CHECK(!compaction_should_stop_before(c, ik("d", 5, TYPE_VALUE))); /* passed b..c: 600 */
    CHECK(compaction_should_stop_before(c, ik("f", 5, TYPE_VALUE)));  /* +d..e: 1200 */
    CHECK(!compaction_should_stop_before(c, ik("g", 5, TYPE_VALUE))); /* reset */
    CHECK(!compaction_should_stop_before(c, ik("h", 5, TYPE_VALUE))); /* 600 */
    CHECK(compaction_should_stop_before(c, ik("z", 5, TYPE_VALUE)));  /* 1800 */
    compaction_free(c);

    /* Grandparents before the first key do not count against the first
     * output file. */
    c = vset_pick_compaction(vs);
    CHECK(c);
    CHECK(!compaction_should_stop_before(c, ik("h", 5, TYPE_VALUE)));

    /* Base level: keys inside a level-3 file are not at their base. */
    CHECK(compaction_is_base_level_for_key(c, slice_make("a", 1)));
    CHECK(!compaction_is_base_level_for_key(c, slice_make("b", 1)));
    CHECK(compaction_is_base_level_for_key(c, slice_make("cc", 2)));
    CHECK(!compaction_is_base_level_for_key(c, slice_make("k", 1)));
    CHECK(compaction_is_base_level_for_key(c, slice_make("x", 1)));
    compaction_free(c);
    vset_destroy(vs);
    test_rmtree(dir);
}

/* ---- lookups and iterators over real tables ------------------------------- */

typedef struct table_entry {
    const char *user;
    uint64_t seq;
    int type;
    const char *value;
} table_entry;

static int build_table(version_set *vs, int level, uint64_t number, const table_entry *ents, int n) {
    char path[PATH_MAX];
    sst_build_options o = {256, 4, 10, SST_COMPRESSION_NONE};
    sst_builder *b;
    int rc = sst_builder_open(env_posix(), table_file_path(path, sizeof path, vs->dbpath, number), &o, &b);
    if (rc != WEIR_OK) return rc;
    buf k = BUF_INIT;
    for (int i = 0; i < n && rc == WEIR_OK; i++) {
        buf_clear(&k);
        ikey_append(&k, slice_make(ents[i].user, strlen(ents[i].user)), ents[i].seq, ents[i].type);
        rc = sst_builder_add(b, buf_slice(&k), slice_make(ents[i].value, strlen(ents[i].value)));
    }
    uint64_t size = 0;
    if (rc != WEIR_OK) {
        sst_builder_abandon(b);
        buf_free(&k);
        return rc;
    }
    rc = sst_builder_finish(b, &size);
    if (rc != WEIR_OK) {
        buf_free(&k);
        return rc;
    }
    buf lo = BUF_INIT;
    ikey_append(&lo, slice_make(ents[0].user, strlen(ents[0].user)), ents[0].seq, ents[0].type);
    buf_clear(&k);
    ikey_append(&k, slice_make(ents[n - 1].user, strlen(ents[n - 1].user)), ents[n - 1].seq,
                ents[n - 1].type);
    file_meta *f = file_meta_create(number, size, (uint64_t)n, buf_slice(&lo), buf_slice(&k));
    buf_free(&lo);
    buf_free(&k);
    version_edit e;
    version_edit_init(&e);
    vset_mark_file_number_used(vs, number);
    rc = version_edit_add_file(&e, level, f);
    file_meta_unref(f);
    if (rc == WEIR_OK) rc = vset_log_and_apply(vs, &e, NULL);
    version_edit_free(&e);
    return rc;
}

typedef struct got_value {
    char data[64];
    int calls;
} got_value;

static void save_value(void *arg, slice value) {
    got_value *g = arg;
    snprintf(g->data, sizeof g->data, "%.*s", (int)value.len, value.data);
    g->calls++;
}

static int lookup(version *v, const char *user, uint64_t seq, int *type, got_value *g) {
    buf k = BUF_INIT;
    ikey_append(&k, slice_make(user, strlen(user)), seq, TYPE_FOR_SEEK);
    memset(g, 0, sizeof *g);
    int rc = version_get(v, buf_slice(&k), bloom_hash(user, strlen(user)), type, save_value, g);
    buf_free(&k);
    return rc;
}

/* Tables: level 0 #20 (newest), #21 is newer still; level 1 #10..#12;
 * level 2 #5. */
static version_set *open_with_tables(char *dir, size_t cap, table_cache **tc_out) {
    test_tmpdir(dir, cap, "ver-tables");
    table_cache *tc = table_cache_create(env_posix(), dir, 16);
    if (!tc) abort();
    version_set *vs = vset_create(env_posix(), dir, tc, &test_opts);
    if (!vs || vset_create_new_db(vs) != WEIR_OK || vset_recover(vs) != WEIR_OK) abort();
    static const table_entry l2[] = {{"apple", 1, TYPE_VALUE, "a2"}, {"kiwi", 2, TYPE_VALUE, "k2"},
                                     {"zoo", 3, TYPE_VALUE, "z2"}};
    static const table_entry l1a[] = {{"b", 10, TYPE_VALUE, "b1"}, {"c", 11, TYPE_VALUE, "c1"}};
    static const table_entry l1b[] = {{"d", 12, TYPE_VALUE, "d1"}, {"kiwi", 13, TYPE_DELETION, ""}};
    static const table_entry l1c[] = {{"m", 14, TYPE_VALUE, "m1"}, {"n", 15, TYPE_VALUE, "n1"}};
    static const table_entry l0a[] = {{"c", 20, TYPE_VALUE, "c0-old"}, {"m", 21, TYPE_VALUE, "m0"}};
    static const table_entry l0b[] = {{"c", 30, TYPE_VALUE, "c0-new"}, {"c", 25, TYPE_VALUE, "c0-mid"},
                                      {"d", 31, TYPE_DELETION, ""}};
    if (build_table(vs, 2, 5, l2, 3) != WEIR_OK || build_table(vs, 1, 10, l1a, 2) != WEIR_OK ||
        build_table(vs, 1, 11, l1b, 2) != WEIR_OK || build_table(vs, 1, 12, l1c, 2) != WEIR_OK ||
        build_table(vs, 0, 20, l0a, 2) != WEIR_OK || build_table(vs, 0, 21, l0b, 3) != WEIR_OK) {
        fprintf(stderr, "building tables: %s\n", weir_errmsg());
        abort();
    }
    *tc_out = tc;
    return vs;
}

static void close_with_tables(version_set *vs, table_cache *tc, const char *dir) {
    vset_destroy(vs);
    table_cache_destroy(tc);
    test_rmtree(dir);
}

TEST(version_get_searches_newest_first) {
    char dir[PATH_MAX];
    table_cache *tc;
    version_set *vs = open_with_tables(dir, sizeof dir, &tc);
    version *v = vs->current;
    int type;
    got_value g;
    CHECK_OK(lookup(v, "c", 100, &type, &g));
    CHECK(type == TYPE_VALUE && strcmp(g.data, "c0-new") == 0 && g.calls == 1);
    CHECK_OK(lookup(v, "c", 27, &type, &g));
    CHECK(strcmp(g.data, "c0-mid") == 0);
    CHECK_OK(lookup(v, "c", 22, &type, &g)); /* older level-0 file */
    CHECK(strcmp(g.data, "c0-old") == 0);
    CHECK_OK(lookup(v, "c", 12, &type, &g)); /* level 1 */
    CHECK(strcmp(g.data, "c1") == 0);
    CHECK_STATUS(lookup(v, "c", 5, &type, &g), WEIR_NOT_FOUND);
    CHECK_OK(lookup(v, "d", 100, &type, &g));
    CHECK(type == TYPE_DELETION && g.calls == 0);
    CHECK_OK(lookup(v, "d", 30, &type, &g));
    CHECK(type == TYPE_VALUE && strcmp(g.data, "d1") == 0);
    CHECK_OK(lookup(v, "kiwi", 100, &type, &g)); /* a level-1 tombstone hides level 2 */
    CHECK(type == TYPE_DELETION);
    CHECK_OK(lookup(v, "kiwi", 5, &type, &g));
    CHECK(type == TYPE_VALUE && strcmp(g.data, "k2") == 0);
    CHECK_OK(lookup(v, "zoo", 100, &type, &g));
    CHECK(strcmp(g.data, "z2") == 0);
    CHECK_OK(lookup(v, "m", 100, &type, &g));
    CHECK(strcmp(g.data, "m0") == 0);
    CHECK_OK(lookup(v, "n", 100, &type, &g));
    CHECK(strcmp(g.data, "n1") == 0);
    CHECK_STATUS(lookup(v, "a", 100, &type, &g), WEIR_NOT_FOUND);
    CHECK_STATUS(lookup(v, "l", 100, &type, &g), WEIR_NOT_FOUND);
    CHECK_STATUS(lookup(v, "zzz", 100, &type, &g), WEIR_NOT_FOUND);
    close_with_tables(vs, tc, dir);
}

TEST(version_get_reports_damaged_tables) {
    char dir[PATH_MAX], path[PATH_MAX];
    table_cache *tc;
    version_set *vs = open_with_tables(dir, sizeof dir, &tc);
    /* Truncate a table the cache has not opened: its footer is gone. */
    CHECK(truncate(table_file_path(path, sizeof path, dir, 12), 10) == 0);
    int type;
    got_value g;
    int rc = lookup(vs->current, "n", 100, &type, &g);
    CHECK(rc != WEIR_OK && rc != WEIR_NOT_FOUND);
    CHECK(has_text(weir_errmsg(), "000012.sst"));
    CHECK_OK(lookup(vs->current, "b", 100, &type, &g)); /* others still work */
    close_with_tables(vs, tc, dir);
}

TEST(level_iter_walks_both_ways_and_seeks) {
    char dir[PATH_MAX];
    table_cache *tc;
    version_set *vs = open_with_tables(dir, sizeof dir, &tc);
    version *v = vs->current;
    iter *it = level_iter_create(tc, v->files[1], v->num_files[1]);
    CHECK(it);
    CHECK(!iter_valid(it));
    const char *fwd[] = {"b", "c", "d", "kiwi", "m", "n"};
    int i = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it), i++) {
        CHECK(i < 6);
        slice u = ikey_user(iter_key(it));
        CHECK(slice_equal(u, slice_make(fwd[i], strlen(fwd[i]))));
    }
    CHECK_EQ_INT(i, 6);
    CHECK_OK(iter_status(it));
    for (iter_seek_last(it); iter_valid(it); iter_prev(it)) {
        i--;
        CHECK(slice_equal(ikey_user(iter_key(it)), slice_make(fwd[i], strlen(fwd[i]))));
    }
    CHECK_EQ_INT(i, 0);
    iter_seek(it, ik("e", MAX_SEQUENCE, TYPE_FOR_SEEK));
    CHECK(iter_valid(it) && slice_equal(ikey_user(iter_key(it)), slice_make("kiwi", 4)));
    iter_seek(it, ik("kiwi", 1, TYPE_FOR_SEEK)); /* past kiwi@13: next file */
    CHECK(iter_valid(it) && slice_equal(ikey_user(iter_key(it)), slice_make("m", 1)));
    iter_prev(it);
    CHECK(iter_valid(it) && slice_equal(ikey_user(iter_key(it)), slice_make("kiwi", 4)));
    CHECK(slice_equal(iter_value(it), slice_make("", 0)));
    iter_seek(it, ik("a", MAX_SEQUENCE, TYPE_FOR_SEEK));
    CHECK(iter_valid(it) && slice_equal(ikey_user(iter_key(it)), slice_make("b", 1)));
    CHECK(slice_equal(iter_value(it), slice_make("b1", 2)));
    iter_seek(it, ik("o", MAX_SEQUENCE, TYPE_FOR_SEEK));
    CHECK(!iter_valid(it));
    CHECK_OK(iter_status(it));
    iter_destroy(it);

    it = level_iter_create(tc, NULL, 0);
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    iter_seek_last(it);
    CHECK(!iter_valid(it));
    iter_seek(it, ik("a", 1, TYPE_VALUE));
    CHECK(!iter_valid(it));
    CHECK_OK(iter_status(it));
    iter_destroy(it);
    close_with_tables(vs, tc, dir);
}

TEST(level_iter_stops_on_damaged_table) {
    char dir[PATH_MAX], path[PATH_MAX];
    table_cache *tc;
    version_set *vs = open_with_tables(dir, sizeof dir, &tc);
    CHECK(truncate(table_file_path(path, sizeof path, dir, 11), 10) == 0);
    version *v = vs->current;
    iter *it = level_iter_create(tc, v->files[1], v->num_files[1]);
    int n = 0;
    for (iter_seek_first(it); iter_valid(it); iter_next(it)) n++;
    CHECK_EQ_INT(n, 2); /* file 10 only */
    int rc = iter_status(it);
    CHECK(rc != WEIR_OK);
    CHECK(has_text(weir_errmsg(), "000011.sst"));
    iter_destroy(it);
    close_with_tables(vs, tc, dir);
}

static int count_entries(iter *it) {
    int n = 0;
    buf last = BUF_INIT;
    for (iter_seek_first(it); iter_valid(it); iter_next(it)) {
        if (n > 0 && ikey_compare(buf_slice(&last), iter_key(it)) >= 0) n = -1000;
        buf_set(&last, iter_key(it).data, iter_key(it).len);
        n++;
    }
    buf_free(&last);
    return n;
}

TEST(version_iterators_cover_every_table) {
    char dir[PATH_MAX];
    table_cache *tc;
    version_set *vs = open_with_tables(dir, sizeof dir, &tc);
    iter **list = NULL;
    int n = 0;
    CHECK_OK(version_add_iterators(vs->current, &list, &n));
    CHECK_EQ_INT(n, 2 + 2); /* two level-0 files, levels 1 and 2 */
    iter *m = merging_iter_create(list, n);
    free(list);
    CHECK(m);
    CHECK_EQ_INT(count_entries(m), 3 + 6 + 5);
    CHECK_OK(iter_status(m));
    iter_destroy(m);

    /* Compaction inputs: level 0 into level 1. */
    compaction *c = vset_compact_range(vs, 0, NULL, NULL);
    CHECK(c && c->num_inputs[0] == 2 && c->num_inputs[1] == 3);
    iter *in = compaction_input_iter(c);
    CHECK(in);
    CHECK_EQ_INT(count_entries(in), 5 + 6);
    CHECK_OK(iter_status(in));
    iter_destroy(in);
    compaction_free(c);
    c = vset_compact_range(vs, 1, NULL, NULL);
    CHECK(c && c->num_inputs[0] == 3 && c->num_inputs[1] == 1);
    in = compaction_input_iter(c);
    CHECK_EQ_INT(count_entries(in), 6 + 3);
    iter_destroy(in);
    compaction_free(c);
    close_with_tables(vs, tc, dir);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        TEST_ENTRY(edit_round_trip_keeps_every_field),
        TEST_ENTRY(edit_decode_of_every_truncation_is_clean),
        TEST_ENTRY(edit_decode_survives_byte_flips),
        TEST_ENTRY(edit_decode_rejects_unknown_tags_and_bad_fields),
        TEST_ENTRY(new_db_recovers_empty),
        TEST_ENTRY(manifest_replay_restores_levels),
        TEST_ENTRY(manifest_rolls_over_past_limit),
        TEST_ENTRY(torn_manifest_tail_recovers_earlier_state),
        TEST_ENTRY(corrupt_manifest_record_names_file_and_offset),
        TEST_ENTRY(undecodable_manifest_edit_is_corruption_with_offset),
        TEST_ENTRY(missing_current_or_manifest_is_corruption),
        TEST_ENTRY(failed_manifest_write_installs_nothing),
        TEST_ENTRY(create_new_db_failure_leaves_no_manifest),
        TEST_ENTRY(overlapping_files_in_sorted_level_are_rejected),
        TEST_ENTRY(overlap_in_level_queries),
        TEST_ENTRY(live_files_include_older_referenced_versions),
        TEST_ENTRY(concurrent_log_and_apply_is_serialised),
        TEST_ENTRY(scores_follow_level_sizes),
        TEST_ENTRY(level0_compaction_takes_overlapping_files),
        TEST_ENTRY(busy_next_level_skips_compaction),
        TEST_ENTRY(sorted_level_compaction_round_robins),
        TEST_ENTRY(inputs_include_files_sharing_a_boundary_user_key),
        TEST_ENTRY(compact_range_selects_overlapping_files),
        TEST_ENTRY(grandparent_overlap_cuts_outputs_and_blocks_trivial_moves),
        TEST_ENTRY(version_get_searches_newest_first),
        TEST_ENTRY(version_get_reports_damaged_tables),
        TEST_ENTRY(level_iter_walks_both_ways_and_seeks),
        TEST_ENTRY(level_iter_stops_on_damaged_table),
        TEST_ENTRY(version_iterators_cover_every_table),
        TEST_END,
    };
    return test_main(argc, argv, tests);
}
