/*
 * clash_app.c -- an application that happens to use, for its own
 * functions, names that weir's engine uses internally. Linked statically
 * against libweir.a it must build, call its own functions, and still use
 * weir (tests/packaging/static_clash.sh).
 */
#include <stdio.h>
#include <string.h>

#include "weir.h"

/* Same names as weir's internals, different meaning and signatures. */
int encode_varint32(int x) { return x * 3; }
unsigned crc32c_extend(unsigned a, unsigned b) { return a ^ b; }
const char *arena_alloc(void) { return "the application's arena_alloc"; }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: clash_app DB_PATH\n");
        return 2;
    }
    if (encode_varint32(7) != 21 || crc32c_extend(5, 3) != 6 ||
        strcmp(arena_alloc(), "the application's arena_alloc") != 0) {
        fprintf(stderr, "clash_app: its own functions were replaced\n");
        return 1;
    }
    weir_db *db;
    if (weir_open(argv[1], NULL, &db) != WEIR_OK) {
        fprintf(stderr, "clash_app: open: %s\n", weir_errmsg());
        return 1;
    }
    char val[16];
    size_t len = 0;
    int rc = weir_put(db, NULL, "k", 1, "value", 5);
    if (rc == WEIR_OK) rc = weir_get(db, NULL, "k", 1, val, sizeof val, &len);
    if (rc != WEIR_OK || len != 5 || memcmp(val, "value", 5) != 0) {
        fprintf(stderr, "clash_app: put/get: %s\n", weir_errmsg());
        weir_close(db);
        return 1;
    }
    if (weir_close(db) != WEIR_OK) return 1;
    printf("clash_app: own encode_varint32/crc32c_extend/arena_alloc and weir %s both work\n",
           weir_version());
    return 0;
}
