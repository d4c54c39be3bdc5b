/*
 * consumer.c -- a C program built against an *installed* weir, through
 * pkg-config and through find_package(weir) (tests/packaging/
 * install_consumer.sh). It checks the header and the library agree on the
 * version, then writes and reads back one key with each codec compiled in.
 */
#include <stdio.h>
#include <string.h>

#include <weir.h>

#if !defined(WEIR_VERSION_NUMBER) || WEIR_VERSION_NUMBER < 100
#error "weir.h lacks the version macros"
#endif

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: consumer DIR\n");
        return 2;
    }
    if (strcmp(weir_version(), WEIR_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header %s, library %s\n", WEIR_VERSION_STRING, weir_version());
        return 1;
    }
    const int codecs[] = {WEIR_COMPRESSION_NONE, WEIR_COMPRESSION_LZ4, WEIR_COMPRESSION_ZSTD};
    int used = 0;
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        if (!weir_compression_supported(codecs[i])) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/db-%d", argv[1], codecs[i]);
        weir_options *o = weir_options_create();
        weir_db *db = NULL;
        int rc = o ? weir_options_set_compression(o, codecs[i]) : WEIR_NO_MEMORY;
        if (rc == WEIR_OK) rc = weir_open(path, o, &db);
        weir_options_destroy(o);
        char val[32];
        size_t len = 0;
        if (rc == WEIR_OK) rc = weir_put(db, NULL, "key", 3, "installed", 9);
        if (rc == WEIR_OK) rc = weir_flush(db);
        if (rc == WEIR_OK) rc = weir_get(db, NULL, "key", 3, val, sizeof val, &len);
        if (rc != WEIR_OK || len != 9 || memcmp(val, "installed", 9) != 0) {
            fprintf(stderr, "consumer: codec %d: %s\n", codecs[i], weir_errmsg());
            if (db) weir_close(db);
            return 1;
        }
        if (weir_close(db) != WEIR_OK) return 1;
        used++;
    }
    printf("consumer: weir %s (%s), %d codecs round-tripped\n", weir_version(), weir_build_info(), used);
    return 0;
}
