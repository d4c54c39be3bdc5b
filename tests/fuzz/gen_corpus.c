/*
 * gen_corpus.c -- writes the fuzzers' seed corpus (tests/fuzz/corpus/):
 * real logs, tables (plain, filtered, lz4, zstd), manifests, write batches
 * and codec samples made by the engine itself, so fuzzing starts from
 * valid structure. Each file of a harness that takes a mode byte is written
 * twice, with raw (0) and fixed-up (1) checksums.
 *
 * Usage: gen_corpus OUT_DIR
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "block.h"
#include "coding.h"
#include "dbformat.h"
#include "env.h"
#include "wal.h"
#include "weir.h"

static const char *out_dir;

static void put_file(const char *harness, const char *name, int mode, const void *d, size_t n) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", out_dir, harness);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (mode >= 0) fputc(mode, f);
    if (n) fwrite(d, 1, n, f);
    fclose(f);
}

static int read_all(const char *path, char **d, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *d = malloc((size_t)len + 1);
    *n = fread(*d, 1, (size_t)len, f);
    fclose(f);
    return 0;
}

/* A small store with every kind of entry, then its files. */
static void make_store(const char *dir, int codec, int bloom, const char *tag) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) exit(1);
    weir_options *o = weir_options_create();
    weir_options_set_block_size(o, 256);
    weir_options_set_bloom_bits_per_key(o, bloom);
    if (weir_compression_supported(codec)) weir_options_set_compression(o, codec);
    weir_db *db;
    if (weir_open(dir, o, &db) != WEIR_OK) exit(1);
    char k[32], v[200];
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        int vl = snprintf(v, sizeof v, "value-%d-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", i * 7);
        weir_put(db, NULL, k, strlen(k), v, (size_t)vl);
    }
    weir_delete(db, NULL, "key005", 6);
    weir_add_int64(db, NULL, "ctr", 3, 5);
    weir_list_append(db, NULL, "list", 4, "item", 4, 3);
    weir_put_ttl(db, NULL, "ttl", 3, "x", 1, 100000);
    weir_delete_range(db, NULL, "key010", 6, "key020", 6);
    weir_flush(db);
    weir_batch *b = weir_batch_create();
    weir_batch_put(b, "b1", 2, "v1", 2);
    weir_batch_delete(b, "b2", 2);
    weir_batch_merge(b, "ctr", 3, WEIR_MERGE_INT64_ADD, "\x01\0\0\0\0\0\0\0", 8);
    weir_batch_delete_range(b, "a", 1, "b", 1);
    weir_batch_put_ttl(b, "t", 1, "v", 1, 5000);
    weir_write(db, NULL, b);
    weir_batch_destroy(b);
    /* Leave the log unflushed but written: close syncs it. */
    weir_close(db);
    weir_options_destroy(o);

    DIR *dh = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dh))) {
        char path[1200], name[200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *d;
        size_t n;
        const char *harness = NULL;
        if (strstr(e->d_name, ".sst")) harness = "table";
        else if (strstr(e->d_name, ".log")) harness = "log_reader";
        else if (strstr(e->d_name, "MANIFEST-")) harness = "manifest";
        if (!harness || read_all(path, &d, &n) != 0) continue;
        for (int mode = 0; mode < 2; mode++) {
            snprintf(name, sizeof name, "%s-%s-%d", tag, e->d_name, mode);
            put_file(harness, name, mode, d, n);
        }
        if (!strcmp(harness, "manifest")) {
            /* The manifest's records are logs too. */
            snprintf(name, sizeof name, "%s-%s", tag, e->d_name);
            put_file("log_reader", name, 0, d, n);
        }
        if (!strcmp(harness, "log_reader")) {
            /* Each record is a batch. */
            log_reader *r;
            if (log_reader_open(env_posix(), path, &r) == WEIR_OK) {
                buf scratch = BUF_INIT;
                slice rec;
                int i = 0;
                while (log_reader_next(r, &scratch, &rec) == WEIR_OK) {
                    snprintf(name, sizeof name, "%s-%s-rec%d", tag, e->d_name, i++);
                    put_file("batch", name, -1, rec.data, rec.len);
                }
                buf_free(&scratch);
                log_reader_close(r);
            }
        }
        free(d);
    }
    closedir(dh);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/weir-gen-corpus-%d", (int)getpid());
    make_store(dir, WEIR_COMPRESSION_NONE, 10, "plain");
    make_store(dir, WEIR_COMPRESSION_NONE, 0, "nofilter");
    make_store(dir, WEIR_COMPRESSION_LZ4, 10, "lz4");
    make_store(dir, WEIR_COMPRESSION_ZSTD, 10, "zstd");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;

    /* Codec samples. */
    char v[64];
    char *p = encode_varint64(v, 300);
    put_file("keys", "varint300", -1, v, (size_t)(p - v));
    p = encode_varint64(v, UINT64_MAX);
    put_file("keys", "varintmax", -1, v, (size_t)(p - v));
    buf ik = BUF_INIT;
    ikey_append(&ik, slice_make("user", 4), 12345, TYPE_VALUE);
    put_file("keys", "ikey", -1, ik.data, ik.len);
    buf_free(&ik);
    put_file("keys", "log-name", -1, "000012.log", 10);
    put_file("keys", "manifest-name", -1, "MANIFEST-000004", 15);
    put_file("keys", "int64", -1, "\x02\x05\0\0\0\0\0\0\0", 9);
    put_file("keys", "list", -1, "\x09\x03\0\0\0\x04" "item" "\x03" "abc", 14);
    block_builder bb;
    block_builder_init(&bb, 4);
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof k, "blockkey%02d", i);
        block_builder_add(&bb, slice_make(k, strlen(k)), slice_make("val", 3));
    }
    slice blk = block_builder_finish(&bb);
    put_file("keys", "block", -1, blk.data, blk.len);
    block_builder_free(&bb);
    return 0;
}
