/*
 * cmd_data.c -- the weir tool's data commands: get, put, delete and scan,
 * all through the public API.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

/* ---- get / put / delete ---- */

const char help_get[] =
    "Usage: weir get [options] DB_DIR KEY\n"
    "\n"
    "Print the value stored under KEY, followed by a newline.\n"
    "\n"
    "Options:\n"
    "  --hex        KEY is given in hex, and the value is printed in hex\n"
    "  --raw        print the value's bytes exactly: no escaping, no newline\n"
    "  -h, --help   show this help\n"
    "\n"
    "Text output is escaped so that it is unambiguous: a backslash prints as \\\\,\n"
    "tab, newline and carriage return as \\t \\n \\r, and other control bytes and\n"
    "bytes that are not valid UTF-8 as \\xHH. KEY is taken literally (no escapes);\n"
    "use --hex for binary keys. A KEY that starts with '-' goes after '--'.\n"
    "\n"
    "Exit status: 0 found, 1 not found or an error, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir get ./db user:1\n"
    "  weir get --hex ./db 75736572003a31\n"
    "  weir get --raw ./db photo:7 > photo.jpg\n"
    "  weir get ./db -- -negative-key\n";

int cmd_get(int argc, char **argv) {
    int hex = 0, raw = 0, help, npos;
    const optdef defs[] = {{"hex", OPT_FLAG, &hex}, {"raw", OPT_FLAG, &raw}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 2) return usage_error("expected DB_DIR and KEY");
    bytes key = BYTES_INIT;
    rc = arg_bytes("KEY", argv[1], hex, &key);
    weir_db *db = NULL;
    if (rc == EXIT_OK) rc = open_db(argv[0], OPEN_READ, &db);
    if (rc == EXIT_OK) {
        void *val = NULL;
        size_t vlen = 0;
        int s = weir_get_alloc(db, NULL, key.data, key.len, &val, &vlen);
        if (s == WEIR_OK) {
            if (raw) {
                fwrite(val, 1, vlen, stdout);
            } else {
                write_bytes(stdout, hex ? FMT_HEX : FMT_TEXT, val, vlen);
                fputc('\n', stdout);
            }
            weir_free(val);
        } else if (s == WEIR_NOT_FOUND) {
            fflush(stdout);
            fputs("weir: get: key not found: ", stderr);
            write_quoted(stderr, hex ? FMT_HEX : FMT_TEXT, key.data, key.len);
            fputc('\n', stderr);
            rc = EXIT_FAIL;
        } else {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        }
    }
    bytes_free(&key);
    return close_db(db, rc);
}

const char help_put[] =
    "Usage: weir put [options] DB_DIR KEY VALUE [KEY VALUE]...\n"
    "\n"
    "Store VALUE under KEY. Several pairs are written as one atomic batch.\n"
    "The database is created if DB_DIR does not hold one yet.\n"
    "\n"
    "Options:\n"
    "  --hex        keys and values are given in hex\n"
    "  --sync       fsync the write-ahead log before returning (survives power loss)\n"
    "  -h, --help   show this help\n"
    "\n"
    "Arguments are taken literally (no escapes); use --hex for binary data. An\n"
    "argument that starts with '-' goes after '--'.\n"
    "\n"
    "Exit status: 0 written, 1 error, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir put ./db user:1 '{\"name\":\"Alice\"}'\n"
    "  weir put ./db a 1 b 2 c 3\n"
    "  weir put --hex ./db 00ff 68656c6c6f\n";

int cmd_put(int argc, char **argv) {
    int hex = 0, sync = 0, help, npos;
    const optdef defs[] = {{"hex", OPT_FLAG, &hex}, {"sync", OPT_FLAG, &sync}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos < 3 || npos % 2 == 0) return usage_error("expected DB_DIR followed by KEY VALUE pairs");
    weir_batch *b = weir_batch_create();
    if (!b) return fail_oom();
    bytes key = BYTES_INIT, val = BYTES_INIT;
    for (int i = 1; i + 1 < npos && rc == EXIT_OK; i += 2) {
        rc = arg_bytes("KEY", argv[i], hex, &key);
        if (rc == EXIT_OK) rc = arg_bytes("VALUE", argv[i + 1], hex, &val);
        if (rc == EXIT_OK && weir_batch_put(b, key.data, key.len, val.data, val.len) != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        }
    }
    weir_db *db = NULL;
    if (rc == EXIT_OK) rc = open_db(argv[0], OPEN_CREATE, &db);
    if (rc == EXIT_OK) {
        weir_writeopts wo = {.sync = sync ? WEIR_SYNC_FSYNC : WEIR_SYNC_DEFAULT};
        if (weir_write(db, &wo, b) != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        }
    }
    weir_batch_destroy(b);
    bytes_free(&key);
    bytes_free(&val);
    return close_db(db, rc);
}

const char help_delete[] =
    "Usage: weir delete [options] DB_DIR KEY...\n"
    "\n"
    "Delete each KEY (one atomic batch). Deleting an absent key is not an error.\n"
    "\n"
    "Options:\n"
    "  --hex        keys are given in hex\n"
    "  --sync       fsync the write-ahead log before returning\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 done, 1 error (e.g. no database at DB_DIR), 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir delete ./db user:1\n"
    "  weir delete --hex ./db 00ff 0100\n";

int cmd_delete(int argc, char **argv) {
    int hex = 0, sync = 0, help, npos;
    const optdef defs[] = {{"hex", OPT_FLAG, &hex}, {"sync", OPT_FLAG, &sync}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos < 2) return usage_error("expected DB_DIR and at least one KEY");
    weir_batch *b = weir_batch_create();
    if (!b) return fail_oom();
    bytes key = BYTES_INIT;
    for (int i = 1; i < npos && rc == EXIT_OK; i++) {
        rc = arg_bytes("KEY", argv[i], hex, &key);
        if (rc == EXIT_OK && weir_batch_delete(b, key.data, key.len) != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        }
    }
    weir_db *db = NULL;
    if (rc == EXIT_OK) rc = open_db(argv[0], OPEN_WRITE, &db);
    if (rc == EXIT_OK) {
        weir_writeopts wo = {.sync = sync ? WEIR_SYNC_FSYNC : WEIR_SYNC_DEFAULT};
        if (weir_write(db, &wo, b) != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        }
    }
    weir_batch_destroy(b);
    bytes_free(&key);
    return close_db(db, rc);
}

/* ---- scan ---- */

const char help_scan[] =
    "Usage: weir scan [options] DB_DIR\n"
    "\n"
    "Print entries in key order, one per line: KEY<TAB>VALUE.\n"
    "\n"
    "Options:\n"
    "  --prefix P         only keys that start with P\n"
    "  --from K           start at the first key >= K (inclusive)\n"
    "  --to K             stop before K (exclusive)\n"
    "  --limit N          print at most N entries\n"
    "  --reverse          iterate from the last key backwards (same range)\n"
    "  --keys-only        print keys only\n"
    "  --count            print only the number of entries in the range\n"
    "  --format F         text (default), hex, or json (one object per line:\n"
    "                     {\"key\":...,\"value\":...}; bytes that are not UTF-8\n"
    "                     come as \"key_hex\" / \"value_hex\" instead)\n"
    "  --hex              P and K are given in hex, and output defaults to hex\n"
    "  -h, --help         show this help\n"
    "\n"
    "Bounds combine: --prefix, --from and --to all restrict the same range, and\n"
    "--reverse walks it from its end. Text output is escaped (\\\\, \\t, \\n, \\r,\n"
    "\\xHH) so that a line always splits at its single tab.\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir scan ./db\n"
    "  weir scan --prefix user: --limit 10 ./db\n"
    "  weir scan --from b --to d --reverse ./db\n"
    "  weir scan --format json --keys-only ./db\n";

int cmd_scan(int argc, char **argv) {
    const char *prefix = NULL, *from = NULL, *to = NULL, *limit_s = NULL, *format_s = NULL;
    int reverse = 0, keys_only = 0, count_only = 0, hex = 0, help, npos;
    const optdef defs[] = {{"prefix", OPT_VALUE, &prefix},    {"from", OPT_VALUE, &from},
                           {"to", OPT_VALUE, &to},            {"limit", OPT_VALUE, &limit_s},
                           {"format", OPT_VALUE, &format_s},  {"reverse", OPT_FLAG, &reverse},
                           {"keys-only", OPT_FLAG, &keys_only}, {"count", OPT_FLAG, &count_only},
                           {"hex", OPT_FLAG, &hex},           {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected DB_DIR");
    out_format fmt = hex ? FMT_HEX : FMT_TEXT;
    if (format_s) {
        if (strcmp(format_s, "text") == 0) fmt = FMT_TEXT;
        else if (strcmp(format_s, "hex") == 0) fmt = FMT_HEX;
        else if (strcmp(format_s, "json") == 0) fmt = FMT_JSON;
        else return usage_error("--format must be text, hex or json, not '%s'", format_s);
    }
    uint64_t limit = UINT64_MAX;
    if (limit_s && (rc = parse_count("limit", limit_s, 0, UINT64_MAX, &limit)) != EXIT_OK) return rc;

    bytes bp = BYTES_INIT, bf = BYTES_INIT, bt = BYTES_INIT;
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    if (prefix && (rc = arg_bytes("--prefix", prefix, hex, &bp)) == EXIT_OK) {
        ro.prefix = bp.data;
        ro.prefix_len = bp.len;
    }
    if (rc == EXIT_OK && from && (rc = arg_bytes("--from", from, hex, &bf)) == EXIT_OK) {
        ro.lower_bound = bf.data;
        ro.lower_bound_len = bf.len;
    }
    if (rc == EXIT_OK && to && (rc = arg_bytes("--to", to, hex, &bt)) == EXIT_OK) {
        ro.upper_bound = bt.data;
        ro.upper_bound_len = bt.len;
    }
    weir_db *db = NULL;
    weir_iter *it = NULL;
    if (rc == EXIT_OK) rc = open_db(argv[0], OPEN_READ, &db);
    if (rc == EXIT_OK && weir_iter_create(db, &ro, &it) != WEIR_OK) {
        errorf("%s", weir_errmsg());
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK) {
        uint64_t n = 0;
        if (reverse)
            weir_iter_seek_last(it);
        else
            weir_iter_seek_first(it);
        for (; n < limit && weir_iter_valid(it); reverse ? weir_iter_prev(it) : weir_iter_next(it)) {
            n++;
            if (count_only) continue;
            size_t kl, vl = 0;
            const char *k = weir_iter_key(it, &kl);
            const char *v = keys_only ? NULL : weir_iter_value(it, &vl);
            if (fmt == FMT_JSON) {
                fputc('{', stdout);
                write_json_member(stdout, "key", k, kl);
                if (!keys_only) {
                    fputc(',', stdout);
                    write_json_member(stdout, "value", v, vl);
                }
                fputs("}\n", stdout);
            } else {
                write_bytes(stdout, fmt, k, kl);
                if (!keys_only) {
                    fputc('\t', stdout);
                    write_bytes(stdout, fmt, v, vl);
                }
                fputc('\n', stdout);
            }
        }
        if (weir_iter_status(it) != WEIR_OK) {
            errorf("scan stopped after %" PRIu64 " entries: %s", n, weir_errmsg());
            rc = EXIT_FAIL;
        } else if (count_only) {
            printf("%" PRIu64 "\n", n);
        }
    }
    weir_iter_destroy(it);
    bytes_free(&bp);
    bytes_free(&bf);
    bytes_free(&bt);
    return close_db(db, rc);
}
