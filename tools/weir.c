/*
 * weir.c -- the `weir` command-line tool.
 *
 * It owns the shell-facing side of the engine: reading and writing keys,
 * scans, bulk loading CSV and JSON lines, statistics and manual compaction
 * through the public API, plus the offline inspection commands (check,
 * dump-table, dump-log) that read the files directly through the engine's
 * internal readers, so they still work on a database that no longer opens.
 *
 * Conventions: results go to stdout, messages to stderr as
 * "weir: <command>: <message>". Exit status 0 is success, 1 a failed
 * operation (engine error, key not found, bad input, corruption found) and
 * 2 a usage error (check also uses 2 when files could not be read at all).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "weir.h"

#include "batch.h"
#include "block.h"
#include "coding.h"
#include "dbformat.h"
#include "env.h"
#include "filename.h"
#include "sst.h"
#include "status.h"
#include "table_cache.h"
#include "version.h"
#include "wal.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTF_LIKE(a, b)
#endif

/* ======================================================================
 * Messages
 * ====================================================================== */

typedef struct command command;
static const command *current_cmd; /* NULL before a command is chosen */

static const char *cmd_label(void);

static void errorf(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void errorf(const char *fmt, ...) {
    va_list ap;
    fflush(stdout); /* keep stdout and stderr in order on a terminal */
    fprintf(stderr, "weir: ");
    if (current_cmd) fprintf(stderr, "%s: ", cmd_label());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int fail_oom(void) {
    errorf("out of memory");
    return EXIT_FAIL;
}

static int usage_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* ======================================================================
 * Byte formatting: text (escaped), hex, JSON
 * ====================================================================== */

typedef enum out_format { FMT_TEXT, FMT_HEX, FMT_JSON } out_format;

/* Length of the valid UTF-8 sequence at p (2..4 bytes) with its code point,
 * or 0 if the bytes there are not valid UTF-8 (overlong forms, surrogates
 * and code points past U+10FFFF are invalid). */
static size_t utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp) {
    unsigned char c = p[0];
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

static int utf8_valid(const char *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_sequence(p + i, n - i, &cp);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

/* Text form: printable ASCII and valid UTF-8 (minus C1 controls) as they
 * are; a backslash as \\, tab/newline/CR as \t \n \r, every other byte as
 * \xHH. The mapping is reversible, and the output never holds a tab or a
 * newline, so "key<TAB>value" lines stay unambiguous. */
static void write_text(FILE *f, const char *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len = 0;
        uint32_t cp;
        if (c >= 0x20 && c < 0x7f && c != '\\')
            len = 1;
        else if (c >= 0x80 && (len = utf8_sequence(p + i, n - i, &cp)) != 0 && cp < 0xa0)
            len = 0; /* C1 control characters would drive a terminal */
        if (len) {
            i += len;
            continue;
        }
        if (i > run) fwrite(p + run, 1, i - run, f);
        switch (c) {
        case '\\': fputs("\\\\", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        default: fprintf(f, "\\x%02x", c); break;
        }
        run = ++i;
    }
    if (n > run) fwrite(p + run, 1, n - run, f);
}

static void write_hex(FILE *f, const char *data, size_t n) {
    static const char digits[] = "0123456789abcdef";
    char out[512];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        out[o++] = digits[c >> 4];
        out[o++] = digits[c & 15];
        if (o == sizeof out) {
            fwrite(out, 1, o, f);
            o = 0;
        }
    }
    if (o) fwrite(out, 1, o, f);
}

/* A JSON string (the caller checked the bytes are valid UTF-8). Control
 * characters, including C1 ones, are escaped so a terminal shows them
 * harmlessly. */
static void write_json_string(FILE *f, const char *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t run = 0, i = 0;
    fputc('"', f);
    while (i < n) {
        unsigned char c = p[i];
        uint32_t cp = c;
        size_t len = 1;
        if (c >= 0x80) len = utf8_sequence(p + i, n - i, &cp);
        if (len == 0) len = 1, cp = c; /* not reached for valid input */
        if (cp >= 0x20 && cp != '"' && cp != '\\' && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0)) {
            i += len;
            continue;
        }
        if (i > run) fwrite(p + run, 1, i - run, f);
        switch (cp) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default: fprintf(f, "\\u%04x", (unsigned)cp); break;
        }
        i += len;
        run = i;
    }
    if (n > run) fwrite(p + run, 1, n - run, f);
    fputc('"', f);
}

/* "name":"text" when the bytes are UTF-8, else "name_hex":"hexdigits",
 * so binary keys survive JSON output without loss. */
static void write_json_member(FILE *f, const char *name, const char *data, size_t n) {
    if (utf8_valid(data, n)) {
        fprintf(f, "\"%s\":", name);
        write_json_string(f, data, n);
    } else {
        fprintf(f, "\"%s_hex\":\"", name);
        write_hex(f, data, n);
        fputc('"', f);
    }
}

static void write_bytes(FILE *f, out_format fmt, const char *data, size_t n) {
    if (fmt == FMT_HEX)
        write_hex(f, data, n);
    else
        write_text(f, data, n);
}

/* A short quoted form for messages: 'text', cut after 64 bytes. */
static void write_quoted(FILE *f, out_format fmt, slice s) {
    size_t n = s.len > 64 ? 64 : s.len;
    fputc('\'', f);
    write_bytes(f, fmt == FMT_HEX ? FMT_HEX : FMT_TEXT, s.data, n);
    fputs(s.len > n ? "...'" : "'", f);
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode hex digits into out. -1 if s is not hex (odd length or a bad
 * digit), -2 if memory ran out. */
static int decode_hex(const char *s, buf *out) {
    size_t n = strlen(s);
    buf_clear(out);
    if (n % 2) return -1;
    if (buf_reserve(out, n / 2 + 1) != 0) return -2;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit((unsigned char)s[i]), lo = hex_digit((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out->data[out->len++] = (char)(hi << 4 | lo);
    }
    return 0;
}

/* A key or value from the command line: the argument's bytes, or hex. */
static int arg_bytes(const char *what, const char *arg, int hex, buf *out) {
    if (!hex) {
        buf_clear(out);
        if (buf_reserve(out, 1) != 0 || buf_append(out, arg, strlen(arg)) != 0) return fail_oom();
        return EXIT_OK;
    }
    int rc = decode_hex(arg, out);
    if (rc == -2) return fail_oom();
    if (rc == -1)
        return usage_error("%s '%s' is not hex (--hex wants an even number of digits 0-9a-f)",
                           what, arg);
    return EXIT_OK;
}

/* ======================================================================
 * Command-line options
 * ====================================================================== */

enum { OPT_FLAG, OPT_VALUE };

typedef struct optdef {
    const char *name; /* long name without the dashes */
    int kind;
    void *dest;       /* int * for flags (set to 1), const char ** for values */
} optdef;

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *help; /* first line is the usage line */
};

static const char *cmd_label(void) { return current_cmd ? current_cmd->name : "weir"; }

static void print_usage_line(FILE *f) {
    const char *h = current_cmd->help;
    const char *nl = strchr(h, '\n');
    fprintf(f, "%.*s\n", (int)(nl ? nl - h : (ptrdiff_t)strlen(h)), h);
}

static int usage_error(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "weir: %s: ", cmd_label());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (current_cmd) {
        print_usage_line(stderr);
        fprintf(stderr, "Run 'weir %s --help' for details.\n", current_cmd->name);
    }
    return EXIT_USAGE;
}

/* Parse options anywhere among the arguments ("--" ends them). Positional
 * arguments are moved to the front of argv in order; *npos is their count.
 * Returns EXIT_OK, or EXIT_USAGE after printing why. *help is set by -h or
 * --help. */
static int parse_options(int argc, char **argv, const optdef *defs, int *npos, int *help) {
    int n = 0, only_positional = 0;
    *help = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] == '\0') {
            argv[n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = 1;
            continue;
        }
        if (a[1] != '-')
            return usage_error("unknown option %s (an argument that starts with '-' goes after "
                               "'--')",
                               a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const optdef *d = defs;
        while (d && d->name && !(strlen(d->name) == name_len && memcmp(d->name, name, name_len) == 0))
            d++;
        if (!d || !d->name) return usage_error("unknown option --%.*s", (int)name_len, name);
        if (d->kind == OPT_FLAG) {
            if (eq) return usage_error("option --%s takes no value", d->name);
            *(int *)d->dest = 1;
        } else if (eq) {
            *(const char **)d->dest = eq + 1;
        } else {
            if (i + 1 >= argc) return usage_error("option --%s needs a value", d->name);
            *(const char **)d->dest = argv[++i];
        }
    }
    *npos = n;
    return EXIT_OK;
}

static int print_help(void) {
    fputs(current_cmd->help, stdout);
    return EXIT_OK;
}

/* A decimal count in [min, max]. */
static int parse_count(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    char *end;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') goto bad;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) goto bad;
    *out = v;
    return EXIT_OK;
bad:
    return usage_error("--%s wants a whole number from %" PRIu64 " to %" PRIu64 ", not '%s'", opt,
                       min, max, s ? s : "");
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ======================================================================
 * Opening the database
 * ====================================================================== */

/* How a command opens the database. Read commands open it read-only:
 * they write nothing (not even recovery's tables), work on read-only media,
 * and share the database with other readers (a writer excludes them). */
enum open_mode { OPEN_READ, OPEN_WRITE, OPEN_CREATE };

static int open_db(const char *dir, enum open_mode mode, weir_db **db) {
    *db = NULL;
    struct stat st;
    int create = mode == OPEN_CREATE;
    if (!create) {
        if (stat(dir, &st) != 0) {
            errorf("no database at %s: %s", dir, strerror(errno));
            return EXIT_FAIL;
        }
        if (!S_ISDIR(st.st_mode)) {
            errorf("no database at %s: not a directory", dir);
            return EXIT_FAIL;
        }
    }
    weir_options *o = weir_options_create();
    if (!o) return fail_oom();
    weir_options_set_create_if_missing(o, create);
    weir_options_set_read_only(o, mode == OPEN_READ);
    int rc = weir_open(dir, o, db);
    weir_options_destroy(o);
    if (rc != WEIR_OK) {
        errorf("%s", weir_errmsg());
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Close db; a failure to close turns a success into a failure. */
static int close_db(weir_db *db, int status) {
    if (!db) return status;
    if (weir_close(db) != WEIR_OK && status == EXIT_OK) {
        errorf("closing the database: %s", weir_errmsg());
        return EXIT_FAIL;
    }
    return status;
}

/* ======================================================================
 * get / put / delete
 * ====================================================================== */

static const char help_get[] =
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

static int cmd_get(int argc, char **argv) {
    int hex = 0, raw = 0, help, npos;
    const optdef defs[] = {{"hex", OPT_FLAG, &hex}, {"raw", OPT_FLAG, &raw}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 2) return usage_error("expected DB_DIR and KEY");
    buf key = BUF_INIT;
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
            write_quoted(stderr, hex ? FMT_HEX : FMT_TEXT, buf_slice(&key));
            fputc('\n', stderr);
            rc = EXIT_FAIL;
        } else {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        }
    }
    buf_free(&key);
    return close_db(db, rc);
}

static const char help_put[] =
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

static int cmd_put(int argc, char **argv) {
    int hex = 0, sync = 0, help, npos;
    const optdef defs[] = {{"hex", OPT_FLAG, &hex}, {"sync", OPT_FLAG, &sync}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos < 3 || npos % 2 == 0) return usage_error("expected DB_DIR followed by KEY VALUE pairs");
    weir_batch *b = weir_batch_create();
    if (!b) return fail_oom();
    buf key = BUF_INIT, val = BUF_INIT;
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
    buf_free(&key);
    buf_free(&val);
    return close_db(db, rc);
}

static const char help_delete[] =
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

static int cmd_delete(int argc, char **argv) {
    int hex = 0, sync = 0, help, npos;
    const optdef defs[] = {{"hex", OPT_FLAG, &hex}, {"sync", OPT_FLAG, &sync}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos < 2) return usage_error("expected DB_DIR and at least one KEY");
    weir_batch *b = weir_batch_create();
    if (!b) return fail_oom();
    buf key = BUF_INIT;
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
    buf_free(&key);
    return close_db(db, rc);
}

/* ======================================================================
 * scan
 * ====================================================================== */

static const char help_scan[] =
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

static int cmd_scan(int argc, char **argv) {
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

    buf bp = BUF_INIT, bf = BUF_INIT, bt = BUF_INIT;
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
    buf_free(&bp);
    buf_free(&bf);
    buf_free(&bt);
    return close_db(db, rc);
}

/* ======================================================================
 * load: input reading, CSV, JSON lines
 * ====================================================================== */

#define INPUT_CHUNK (256 * 1024)

typedef struct input {
    FILE *f;
    const char *name;  /* for messages */
    char *buf;
    size_t pos, len;
    int eof;
    int read_errno;    /* set when reading failed */
    uint64_t consumed; /* bytes taken so far (for the progress bar) */
    uint64_t total;    /* file size when known, else 0 */
    uint64_t line;     /* line number of the next byte (1-based) */
} input;

static int in_fill(input *in) {
    if (in->eof) return 0;
    in->consumed += in->len;
    in->pos = in->len = 0;
    size_t got = fread(in->buf, 1, INPUT_CHUNK, in->f);
    if (got == 0) {
        in->eof = 1;
        if (ferror(in->f)) in->read_errno = errno ? errno : EIO;
        return 0;
    }
    in->len = got;
    return 1;
}

static inline int in_getc(input *in) {
    if (in->pos == in->len && !in_fill(in)) return EOF;
    int c = (unsigned char)in->buf[in->pos++];
    if (c == '\n') in->line++;
    return c;
}

static inline int in_peek(input *in) {
    if (in->pos == in->len && !in_fill(in)) return EOF;
    return (unsigned char)in->buf[in->pos];
}

static uint64_t in_offset(const input *in) { return in->consumed + in->pos; }

/* The next line without its newline (nor a CR before it) into line.
 * 1: a line, 0: end of input, -1: out of memory. */
static int in_line(input *in, buf *line) {
    buf_clear(line);
    int any = 0;
    for (;;) {
        if (in->pos == in->len && !in_fill(in)) break;
        any = 1;
        const char *start = in->buf + in->pos;
        const char *nl = memchr(start, '\n', in->len - in->pos);
        size_t n = nl ? (size_t)(nl - start) : in->len - in->pos;
        if (buf_append(line, start, n) != 0) return -1;
        in->pos += n;
        if (nl) {
            in->pos++;
            in->line++;
            break;
        }
    }
    if (!any) return 0;
    if (line->len && line->data[line->len - 1] == '\r') line->len--;
    return 1;
}

/* One CSV record: the bytes of all fields, and where each ends. */
typedef struct csv_record {
    buf data;
    size_t *ends;
    size_t nfields, cap;
} csv_record;

static slice csv_field(const csv_record *r, size_t i) {
    size_t start = i ? r->ends[i - 1] : 0;
    return slice_make(r->data.data + start, r->ends[i] - start);
}

static int csv_end_field(csv_record *r) {
    if (r->nfields == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        size_t *e = realloc(r->ends, cap * sizeof *e);
        if (!e) return -1;
        r->ends = e;
        r->cap = cap;
    }
    r->ends[r->nfields++] = r->data.len;
    return 0;
}

/* Read one record (RFC 4180: fields in double quotes may hold the
 * delimiter, newlines and "" for a quote; CRLF or LF ends a record; blank
 * lines are skipped). Returns 1 with *line set to the record's first line,
 * 0 at end of input, -1 with *err / *line set on a format error. */
static int csv_read(input *in, int delim, csv_record *r, uint64_t *line, const char **err) {
    for (;;) {
        r->nfields = 0;
        buf_clear(&r->data);
        int c = in_getc(in);
        if (c == EOF) return 0;
        *line = in->line - (c == '\n');
        int quoted_any = 0;
        for (;;) { /* one field per round; c is its first byte */
            if (c == '"') {
                uint64_t open_line = in->line;
                quoted_any = 1;
                for (;;) {
                    c = in_getc(in);
                    if (c == EOF) {
                        *line = open_line;
                        *err = "unterminated quoted field (its closing '\"' is missing)";
                        return -1;
                    }
                    if (c == '"') {
                        if (in_peek(in) != '"') break;
                        in_getc(in);
                    }
                    char ch = (char)c;
                    if (buf_append(&r->data, &ch, 1) != 0) goto oom;
                }
                c = in_getc(in);
                if (c == '\r' && in_peek(in) == '\n') c = in_getc(in);
                if (c != delim && c != '\n' && c != EOF) {
                    *line = in->line;
                    *err = "unexpected character after a closing quote (a quote inside a "
                           "quoted field is written \"\")";
                    return -1;
                }
            } else {
                while (c != delim && c != '\n' && c != EOF) {
                    if (c == '\r' && in_peek(in) == '\n') {
                        c = in_getc(in);
                        break;
                    }
                    char ch = (char)c;
                    if (buf_append(&r->data, &ch, 1) != 0) goto oom;
                    c = in_getc(in);
                }
            }
            if (csv_end_field(r) != 0) goto oom;
            if (c != delim) break;
            c = in_getc(in);
        }
        if (in->read_errno) return 0; /* the caller reports it */
        if (r->nfields == 1 && r->data.len == 0 && !quoted_any) continue; /* blank line */
        return 1;
    }
oom:
    *err = "out of memory";
    return -1;
}

/* ---- a minimal JSON reader: validates a line and picks top-level members */

enum { J_STRING, J_NUMBER, J_LITERAL, J_OBJECT, J_ARRAY };
#define JSON_MAX_DEPTH 256

typedef struct jparser {
    const char *p, *begin, *end;
    const char *err;
    size_t err_col;
} jparser;

typedef struct jfield {
    const char *name; /* member to pick, or NULL */
    int found;
    int type;
    slice raw;        /* the value's JSON text */
    buf decoded;      /* a string value, unescaped */
} jfield;

static int jfail(jparser *j, const char *msg) {
    if (!j->err) {
        j->err = msg;
        j->err_col = (size_t)(j->p - j->begin) + 1;
    }
    return -1;
}

static void jws(jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')) j->p++;
}

static int jhex4(jparser *j, uint32_t *v) {
    if (j->end - j->p < 4) return jfail(j, "\\u needs four hex digits");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit((unsigned char)j->p[i]);
        if (d < 0) return jfail(j, "\\u needs four hex digits");
        *v = *v << 4 | (uint32_t)d;
    }
    j->p += 4;
    return 0;
}

static int put_utf8(buf *out, uint32_t cp) {
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xc0 | cp >> 6);
        t[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xe0 | cp >> 12);
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        t[0] = (char)(0xf0 | cp >> 18);
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return buf_append(out, t, n);
}

/* A string at j->p (which is '"'); its unescaped bytes go to out if given. */
static int jstring(jparser *j, buf *out) {
    j->p++;
    for (;;) {
        if (j->p >= j->end) return jfail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c < 0x20) return jfail(j, "control character inside a string (it must be escaped)");
        if (c != '\\') {
            const char *s = j->p;
            while (j->p < j->end && *j->p != '"' && *j->p != '\\' && (unsigned char)*j->p >= 0x20)
                j->p++;
            /* JSON text is UTF-8 (RFC 8259): bytes that are not would be
             * stored as they are, a key or value no JSON reader can read
             * back. A run ends only at ASCII, so no sequence is split. */
            if (!utf8_valid(s, (size_t)(j->p - s))) {
                j->p = s;
                return jfail(j, "a string holds bytes that are not valid UTF-8");
            }
            if (out && buf_append(out, s, (size_t)(j->p - s)) != 0) return jfail(j, "out of memory");
            continue;
        }
        j->p++;
        if (j->p >= j->end) return jfail(j, "unterminated string");
        char e = *j->p++, ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (jhex4(j, &cp) != 0) return -1;
            if (cp >= 0xdc00 && cp <= 0xdfff) return jfail(j, "\\u escape is a lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                    return jfail(j, "\\u escape is a high surrogate without its low half");
                j->p += 2;
                if (jhex4(j, &lo) != 0) return -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return jfail(j, "\\u escape is a high surrogate without its low half");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (out && put_utf8(out, cp) != 0) return jfail(j, "out of memory");
            continue;
        }
        default:
            j->p--;
            return jfail(j, "invalid escape in a string");
        }
        if (out && buf_append(out, &ch, 1) != 0) return jfail(j, "out of memory");
    }
}

static int jdigits(jparser *j) {
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > s ? 0 : jfail(j, "invalid number");
}

static int jnumber(jparser *j) {
    if (*j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (jdigits(j) != 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (jdigits(j) != 0) return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (jdigits(j) != 0) return -1;
    }
    return 0;
}

static int jliteral(jparser *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return jfail(j, "unexpected character (expected a JSON value)");
    j->p += n;
    return 0;
}

static int jvalue(jparser *j, int depth, int *type);

/* An object or array at j->p; members of a top-level object (depth 0) are
 * matched against the fields. */
static int jcontainer(jparser *j, int depth, jfield *fields, int nfields, buf *name) {
    char close = *j->p == '{' ? '}' : ']';
    if (depth >= JSON_MAX_DEPTH) return jfail(j, "nesting too deep");
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        jws(j);
        int type;
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"') return jfail(j, "expected a member name in double quotes");
            if (name) buf_clear(name);
            if (jstring(j, name) != 0) return -1;
            jws(j);
            if (j->p >= j->end || *j->p != ':') return jfail(j, "expected ':' after a member name");
            j->p++;
            jws(j);
            int matched = 0;
            for (int i = 0; i < nfields && name; i++) {
                jfield *f = &fields[i];
                if (!f->name || strlen(f->name) != name->len ||
                    (name->len && memcmp(f->name, name->data, name->len) != 0))
                    continue;
                /* Two members of the same name: which one was meant is not
                 * known (readers disagree), so neither is taken. */
                if (f->found) return jfail(j, "a member the load uses appears twice in the object");
                if (!matched && j->p < j->end && *j->p == '"') {
                    /* Decode into the first matching field, copy to others. */
                    const char *start = j->p;
                    buf_clear(&f->decoded);
                    if (jstring(j, &f->decoded) != 0) return -1;
                    f->raw = slice_make(start, (size_t)(j->p - start));
                    f->type = J_STRING;
                } else if (!matched) {
                    const char *start = j->p;
                    if (jvalue(j, depth + 1, &f->type) != 0) return -1;
                    f->raw = slice_make(start, (size_t)(j->p - start));
                } else {
                    f->raw = fields[matched - 1].raw;
                    f->type = fields[matched - 1].type;
                    if (buf_set(&f->decoded, fields[matched - 1].decoded.data,
                                fields[matched - 1].decoded.len) != 0)
                        return jfail(j, "out of memory");
                }
                f->found = 1;
                matched = i + 1;
            }
            if (!matched && jvalue(j, depth + 1, &type) != 0) return -1;
        } else if (jvalue(j, depth + 1, &type) != 0) {
            return -1;
        }
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        return jfail(j, close == '}' ? "expected ',' or '}' in an object"
                                     : "expected ',' or ']' in an array");
    }
}

static int jvalue(jparser *j, int depth, int *type) {
    jws(j);
    if (j->p >= j->end) return jfail(j, "unexpected end of line (expected a JSON value)");
    switch (*j->p) {
    case '{': *type = J_OBJECT; return jcontainer(j, depth, NULL, 0, NULL);
    case '[': *type = J_ARRAY; return jcontainer(j, depth, NULL, 0, NULL);
    case '"': *type = J_STRING; return jstring(j, NULL);
    case 't': *type = J_LITERAL; return jliteral(j, "true");
    case 'f': *type = J_LITERAL; return jliteral(j, "false");
    case 'n': *type = J_LITERAL; return jliteral(j, "null");
    default:
        *type = J_NUMBER;
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) return jnumber(j);
        return jfail(j, "unexpected character (expected a JSON value)");
    }
}

/* Validate one line as a JSON object and pick the named top-level
 * members. 0 or -1 (j->err says why). */
static int json_pick(jparser *j, slice line, jfield *fields, int nfields, buf *name) {
    j->begin = j->p = line.data;
    j->end = line.data + line.len;
    j->err = NULL;
    for (int i = 0; i < nfields; i++) fields[i].found = 0;
    jws(j);
    if (j->p >= j->end || *j->p != '{') return jfail(j, "each line must hold one JSON object");
    if (jcontainer(j, 0, fields, nfields, name) != 0) return -1;
    jws(j);
    if (j->p != j->end) return jfail(j, "unexpected text after the JSON object");
    return 0;
}

/* ---- the progress bar ---- */

typedef struct progress {
    int enabled;
    double start, last_draw;
    uint64_t total_bytes;
} progress;

static void progress_draw(progress *pg, uint64_t records, uint64_t bytes) {
    double now = now_seconds();
    if (!pg->enabled || now - pg->last_draw < 0.1) return;
    pg->last_draw = now;
    double elapsed = now - pg->start;
    double rate = elapsed > 0 ? (double)records / elapsed : 0;
    if (pg->total_bytes) {
        enum { width = 30 };
        char bar[width + 1];
        uint64_t pct = bytes >= pg->total_bytes ? 100 : bytes * 100 / pg->total_bytes;
        int filled = (int)(pct * width / 100);
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %3" PRIu64 "%%  %" PRIu64 " records  %.0f records/s\033[K", bar, pct,
                records, rate);
    } else {
        fprintf(stderr, "\r%" PRIu64 " records  %.1f MB  %.0f records/s\033[K", records,
                (double)bytes / 1e6, rate);
    }
    fflush(stderr);
}

static void progress_clear(progress *pg) {
    if (pg->enabled && pg->last_draw > 0) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static const char help_load[] =
    "Usage: weir load [options] DB_DIR FILE|-\n"
    "\n"
    "Load key/value records from a CSV or JSON-lines file ('-' reads stdin).\n"
    "The database is created if DB_DIR does not hold one yet. Records are\n"
    "written in atomic batches; later records win over earlier ones for the\n"
    "same key.\n"
    "\n"
    "Options:\n"
    "  --format F          csv or jsonl. Default: from the extension (.csv, .tsv;\n"
    "                      .jsonl, .ndjson, .json), else guessed from the first byte\n"
    "  --batch-size N      records per atomic batch (default 1000)\n"
    "  --sync              fsync the write-ahead log after every batch\n"
    "CSV (RFC 4180: \"quoted\" fields may hold commas, newlines and \"\" quotes):\n"
    "  --header            the first record is a header row of column names\n"
    "  --key-column C      the key's column: a 1-based number or a header name\n"
    "                      (a name implies --header). Default: 1\n"
    "  --value-column C    the value's column, likewise. Default: 2\n"
    "  --delimiter D       field separator: one character, or 'tab' (default ',';\n"
    "                      tab for .tsv files)\n"
    "JSON lines (one JSON object per line; blank lines are skipped):\n"
    "  --key-field NAME    top-level member holding the key (default \"key\"); a\n"
    "                      string is stored unescaped, a number as its text\n"
    "  --value-field NAME  member holding the value: a string is stored\n"
    "                      unescaped, anything else as its JSON text. Default:\n"
    "                      the whole line is the value\n"
    "  -h, --help          show this help\n"
    "\n"
    "A line that cannot be parsed stops the load with its line number and exit\n"
    "status 1. Batches written before the bad line stay in the database; the\n"
    "batch that holds it is not written, so nothing of it is half-applied.\n"
    "\n"
    "On a terminal a progress bar is drawn on stderr. At the end one line is\n"
    "printed: loaded N records in S s (R records/s).\n"
    "\n"
    "Exit status: 0 loaded, 1 bad input or error, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir load ./db users.csv\n"
    "  weir load --header --key-column id --value-column name ./db users.csv\n"
    "  weir load --key-field id ./db events.jsonl\n"
    "  zcat events.jsonl.gz | weir load --format jsonl --key-field id ./db -\n";

typedef struct load_state {
    weir_db *db;
    weir_batch *batch;
    weir_writeopts wo;
    uint64_t batch_size;
    uint64_t written;  /* records in committed batches */
    uint64_t pending;  /* records in the current batch */
    progress pg;
    input *in;
} load_state;

static int load_add(load_state *ls, slice key, slice val, uint64_t line) {
    if (weir_batch_put(ls->batch, key.data, key.len, val.data, val.len) != WEIR_OK) {
        progress_clear(&ls->pg);
        errorf("%s:%" PRIu64 ": %s", ls->in->name, line, weir_errmsg());
        return EXIT_FAIL;
    }
    if (++ls->pending < ls->batch_size) {
        if ((ls->pending & 4095) == 0) progress_draw(&ls->pg, ls->written + ls->pending, in_offset(ls->in));
        return EXIT_OK;
    }
    if (weir_write(ls->db, &ls->wo, ls->batch) != WEIR_OK) {
        progress_clear(&ls->pg);
        errorf("writing a batch: %s", weir_errmsg());
        return EXIT_FAIL;
    }
    weir_batch_clear(ls->batch);
    ls->written += ls->pending;
    ls->pending = 0;
    progress_draw(&ls->pg, ls->written, in_offset(ls->in));
    return EXIT_OK;
}

static int load_bad_line(load_state *ls, uint64_t line, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int load_bad_line(load_state *ls, uint64_t line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    progress_clear(&ls->pg);
    errorf("%s:%" PRIu64 ": %s", ls->in->name, line, msg);
    errorf("stopped: %" PRIu64 " records of earlier batches were written; the batch in progress "
           "(%" PRIu64 " records before line %" PRIu64 ") was not",
           ls->written, ls->pending, line);
    return EXIT_FAIL;
}

/* A column spec: digits are a 1-based number, anything else a header name
 * (resolved later; *index stays SIZE_MAX). */
static int column_spec(const char *opt, const char *spec, size_t *index, int *needs_header) {
    *index = SIZE_MAX;
    if (!spec) return EXIT_OK;
    if (*spec && strspn(spec, "0123456789") == strlen(spec)) {
        uint64_t n;
        int rc = parse_count(opt, spec, 1, 1000000, &n);
        if (rc != EXIT_OK) return rc;
        *index = (size_t)(n - 1);
        return EXIT_OK;
    }
    *needs_header = 1;
    return EXIT_OK;
}

static int load_csv(load_state *ls, int delim, int header, const char *key_col, const char *val_col,
                    size_t key_idx, size_t val_idx) {
    input *in = ls->in;
    csv_record rec;
    memset(&rec, 0, sizeof rec);
    uint64_t line = 0;
    const char *err = NULL;
    int rc = EXIT_OK, got;
    int key_by_name = key_col && key_idx == SIZE_MAX, val_by_name = val_col && val_idx == SIZE_MAX;
    if (header) {
        got = csv_read(in, delim, &rec, &line, &err);
        if (got < 0) rc = load_bad_line(ls, line, "%s", err);
        else if (got == 0 && !in->read_errno) rc = load_bad_line(ls, 1, "the header row is missing");
        for (size_t i = 0; rc == EXIT_OK && got > 0 && i < rec.nfields; i++) {
            slice f = csv_field(&rec, i);
            if (key_by_name && key_idx == SIZE_MAX && strlen(key_col) == f.len && f.len &&
                memcmp(key_col, f.data, f.len) == 0)
                key_idx = i;
            if (val_by_name && val_idx == SIZE_MAX && strlen(val_col) == f.len && f.len &&
                memcmp(val_col, f.data, f.len) == 0)
                val_idx = i;
        }
        if (rc == EXIT_OK && got > 0 && key_by_name && key_idx == SIZE_MAX)
            rc = load_bad_line(ls, line, "the header has no column named '%s'", key_col);
        else if (rc == EXIT_OK && got > 0 && val_by_name && val_idx == SIZE_MAX)
            rc = load_bad_line(ls, line, "the header has no column named '%s'", val_col);
        if (rc == EXIT_OK && key_idx != SIZE_MAX && key_idx == val_idx)
            rc = load_bad_line(ls, line, "the key and value columns are the same column");
    }
    if (key_idx == SIZE_MAX) key_idx = 0;
    if (val_idx == SIZE_MAX) val_idx = 1;
    size_t need = (key_idx > val_idx ? key_idx : val_idx) + 1;
    while (rc == EXIT_OK && (got = csv_read(in, delim, &rec, &line, &err)) != 0) {
        if (got < 0) {
            rc = load_bad_line(ls, line, "%s", err);
            break;
        }
        if (rec.nfields < need) {
            rc = load_bad_line(ls, line, "the record has %zu field(s); the %s is in column %zu",
                               rec.nfields, rec.nfields <= key_idx ? "key" : "value",
                               (rec.nfields <= key_idx ? key_idx : val_idx) + 1);
            break;
        }
        rc = load_add(ls, csv_field(&rec, key_idx), csv_field(&rec, val_idx), line);
    }
    buf_free(&rec.data);
    free(rec.ends);
    return rc;
}

static int load_jsonl(load_state *ls, const char *key_field, const char *val_field) {
    input *in = ls->in;
    buf line = BUF_INIT, name = BUF_INIT;
    jfield fields[2];
    memset(fields, 0, sizeof fields);
    fields[0].name = key_field;
    fields[1].name = val_field;
    jparser j;
    int rc = EXIT_OK, got;
    while (rc == EXIT_OK) {
        uint64_t lineno = in->line;
        got = in_line(in, &line);
        if (got == 0) break;
        if (got < 0) {
            rc = fail_oom();
            break;
        }
        size_t k = 0;
        while (k < line.len && (line.data[k] == ' ' || line.data[k] == '\t')) k++;
        if (k == line.len) continue;
        if (json_pick(&j, buf_slice(&line), fields, val_field ? 2 : 1, &name) != 0) {
            rc = load_bad_line(ls, lineno, "column %zu: %s", j.err_col, j.err);
            break;
        }
        jfield *kf = &fields[0], *vf = &fields[1];
        if (!kf->found) {
            rc = load_bad_line(ls, lineno, "the object has no \"%s\" member (set --key-field)", key_field);
            break;
        }
        slice key;
        if (kf->type == J_STRING)
            key = buf_slice(&kf->decoded);
        else if (kf->type == J_NUMBER)
            key = kf->raw;
        else {
            rc = load_bad_line(ls, lineno, "member \"%s\" must be a string or a number to be a key",
                               key_field);
            break;
        }
        slice val = buf_slice(&line);
        if (val_field) {
            if (!vf->found) {
                rc = load_bad_line(ls, lineno, "the object has no \"%s\" member (set --value-field)",
                                   val_field);
                break;
            }
            val = vf->type == J_STRING ? buf_slice(&vf->decoded) : vf->raw;
        }
        rc = load_add(ls, key, val, lineno);
    }
    buf_free(&line);
    buf_free(&name);
    buf_free(&fields[0].decoded);
    buf_free(&fields[1].decoded);
    return rc;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmd_load(int argc, char **argv) {
    const char *format_s = NULL, *batch_s = NULL, *key_col = NULL, *val_col = NULL,
               *delim_s = NULL, *key_field = NULL, *val_field = NULL;
    int header = 0, sync = 0, help, npos;
    const optdef defs[] = {{"format", OPT_VALUE, &format_s},      {"batch-size", OPT_VALUE, &batch_s},
                           {"sync", OPT_FLAG, &sync},              {"header", OPT_FLAG, &header},
                           {"key-column", OPT_VALUE, &key_col},    {"value-column", OPT_VALUE, &val_col},
                           {"delimiter", OPT_VALUE, &delim_s},     {"key-field", OPT_VALUE, &key_field},
                           {"value-field", OPT_VALUE, &val_field}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 2) return usage_error("expected DB_DIR and FILE (or - for stdin)");
    const char *dir = argv[0], *file = argv[1];

    uint64_t batch_size = 1000;
    if (batch_s && (rc = parse_count("batch-size", batch_s, 1, 10000000, &batch_size)) != EXIT_OK)
        return rc;
    int jsonl = -1; /* unknown yet */
    if (format_s) {
        if (strcmp(format_s, "csv") == 0) jsonl = 0;
        else if (strcmp(format_s, "jsonl") == 0) jsonl = 1;
        else return usage_error("--format must be csv or jsonl, not '%s'", format_s);
    } else if (has_suffix(file, ".csv") || has_suffix(file, ".tsv")) {
        jsonl = 0;
    } else if (has_suffix(file, ".jsonl") || has_suffix(file, ".ndjson") || has_suffix(file, ".json")) {
        jsonl = 1;
    }
    int delim = has_suffix(file, ".tsv") ? '\t' : ',';
    if (delim_s) {
        if (strcmp(delim_s, "tab") == 0 || strcmp(delim_s, "\\t") == 0) delim = '\t';
        else if (strlen(delim_s) == 1 && delim_s[0] != '"' && delim_s[0] != '\n' && delim_s[0] != '\r')
            delim = (unsigned char)delim_s[0];
        else return usage_error("--delimiter must be one character (not a quote or newline) or 'tab'");
    }
    size_t key_idx, val_idx;
    int needs_header = 0;
    if ((rc = column_spec("key-column", key_col, &key_idx, &needs_header)) != EXIT_OK) return rc;
    if ((rc = column_spec("value-column", val_col, &val_idx, &needs_header)) != EXIT_OK) return rc;
    if (needs_header) header = 1;
    if (jsonl == 1 && (header || key_col || val_col || delim_s))
        return usage_error("--header, --key-column, --value-column and --delimiter are for CSV input");
    if (jsonl == 0 && (key_field || val_field))
        return usage_error("--key-field and --value-field are for JSON-lines input");
    if (key_idx != SIZE_MAX && key_idx == val_idx)
        return usage_error("the key and value columns must differ");

    input in;
    memset(&in, 0, sizeof in);
    in.line = 1;
    if (strcmp(file, "-") == 0) {
        in.f = stdin;
        in.name = "<stdin>";
    } else {
        in.f = fopen(file, "rb");
        in.name = file;
        if (!in.f) {
            errorf("cannot open %s: %s", file, strerror(errno));
            return EXIT_FAIL;
        }
    }
    struct stat st;
    if (fstat(fileno(in.f), &st) == 0 && S_ISREG(st.st_mode)) in.total = (uint64_t)st.st_size;
    in.buf = malloc(INPUT_CHUNK);
    if (!in.buf) {
        if (in.f != stdin) fclose(in.f);
        return fail_oom();
    }
    if (jsonl < 0) {
        /* Guess from the first byte that is not white space. */
        int c;
        jsonl = 0;
        while ((c = in_peek(&in)) != EOF && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) in_getc(&in);
        if (c == '{') jsonl = 1;
        if (jsonl && (header || key_col || val_col || delim_s)) jsonl = 0;
    }

    load_state ls;
    memset(&ls, 0, sizeof ls);
    ls.in = &in;
    ls.batch_size = batch_size;
    /* A clean close makes buffered writes durable, so each batch need not
     * wait for the OS unless --sync asks for fsync. */
    ls.wo.sync = sync ? WEIR_SYNC_FSYNC : WEIR_SYNC_NONE;
    ls.pg.enabled = isatty(STDERR_FILENO);
    ls.pg.total_bytes = in.total;
    ls.batch = weir_batch_create();
    if (!ls.batch) rc = fail_oom();
    if (rc == EXIT_OK) rc = open_db(dir, OPEN_CREATE, &ls.db);
    double start = now_seconds();
    ls.pg.start = start;
    if (rc == EXIT_OK) {
        if (jsonl)
            rc = load_jsonl(&ls, key_field ? key_field : "key", val_field);
        else
            rc = load_csv(&ls, delim, header, key_col, val_col, key_idx, val_idx);
    }
    if (rc == EXIT_OK && in.read_errno) {
        progress_clear(&ls.pg);
        errorf("reading %s: %s (the records read before it were not written)", in.name,
               strerror(in.read_errno));
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK && ls.pending) {
        if (weir_write(ls.db, &ls.wo, ls.batch) != WEIR_OK) {
            progress_clear(&ls.pg);
            errorf("writing a batch: %s", weir_errmsg());
            rc = EXIT_FAIL;
        } else {
            ls.written += ls.pending;
            ls.pending = 0;
        }
    }
    rc = close_db(ls.db, rc);
    progress_clear(&ls.pg);
    if (rc == EXIT_OK) {
        double secs = now_seconds() - start;
        printf("loaded %" PRIu64 " records in %.3f s (%.0f records/s)\n", ls.written, secs,
               secs > 0 ? (double)ls.written / secs : 0.0);
    }
    weir_batch_destroy(ls.batch);
    free(in.buf);
    if (in.f != stdin) fclose(in.f);
    return rc;
}

/* ======================================================================
 * stats / levels / compact
 * ====================================================================== */

static const char help_stats[] =
    "Usage: weir stats DB_DIR\n"
    "\n"
    "Print the engine's report of counters and level layout (the \"weir.stats\"\n"
    "property). Opening the database replays its write-ahead log first.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 usage error.\n"
    "\n"
    "Example:\n"
    "  weir stats ./db\n";

static const char help_levels[] =
    "Usage: weir levels DB_DIR\n"
    "\n"
    "Print files and bytes per level (\"weir.level-summary\"), then every table\n"
    "with its level, number, size, entry count and key range (\"weir.sstables\").\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 usage error.\n"
    "\n"
    "Example:\n"
    "  weir levels ./db\n";

static int print_property(weir_db *db, const char *name) {
    char *value = NULL;
    if (weir_property(db, name, &value) != WEIR_OK) {
        errorf("reading property %s: %s", name, weir_errmsg());
        return EXIT_FAIL;
    }
    size_t n = strlen(value);
    fputs(value, stdout);
    if (n && value[n - 1] != '\n') fputc('\n', stdout);
    weir_free(value);
    return EXIT_OK;
}

static int run_properties(int argc, char **argv, const char *const *names, int nnames) {
    int help, npos;
    const optdef defs[] = {{NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected DB_DIR");
    weir_db *db;
    rc = open_db(argv[0], OPEN_READ, &db);
    for (int i = 0; i < nnames && rc == EXIT_OK; i++) {
        if (i) fputc('\n', stdout);
        rc = print_property(db, names[i]);
    }
    return close_db(db, rc);
}

static int cmd_stats(int argc, char **argv) {
    static const char *const names[] = {"weir.stats"};
    return run_properties(argc, argv, names, 1);
}

static int cmd_levels(int argc, char **argv) {
    static const char *const names[] = {"weir.level-summary", "weir.sstables"};
    return run_properties(argc, argv, names, 2);
}

static const char help_compact[] =
    "Usage: weir compact [options] DB_DIR\n"
    "\n"
    "Flush the memtable, then compact every table overlapping the key range down\n"
    "the levels, and wait for it to finish. Prints the time taken and the level\n"
    "layout afterwards.\n"
    "\n"
    "Options:\n"
    "  --from K     first key of the range (inclusive; default: the first key)\n"
    "  --to K       last key of the range (inclusive, unlike scan's --to;\n"
    "               default: the last key)\n"
    "  --hex        K is given in hex\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir compact ./db\n"
    "  weir compact --from user: --to user:~ ./db\n";

static int cmd_compact(int argc, char **argv) {
    const char *from = NULL, *to = NULL;
    int hex = 0, help, npos;
    const optdef defs[] = {{"from", OPT_VALUE, &from}, {"to", OPT_VALUE, &to}, {"hex", OPT_FLAG, &hex},
                           {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected DB_DIR");
    buf bf = BUF_INIT, bt = BUF_INIT;
    if (from) rc = arg_bytes("--from", from, hex, &bf);
    if (rc == EXIT_OK && to) rc = arg_bytes("--to", to, hex, &bt);
    weir_db *db = NULL;
    if (rc == EXIT_OK) rc = open_db(argv[0], OPEN_WRITE, &db);
    if (rc == EXIT_OK) {
        out_format f = hex ? FMT_HEX : FMT_TEXT;
        fflush(stdout);
        fputs("compacting ", stderr);
        if (!from && !to) {
            fputs("all keys", stderr);
        } else {
            fputs("keys from ", stderr);
            if (from) write_quoted(stderr, f, buf_slice(&bf)); else fputs("the first", stderr);
            fputs(" to ", stderr);
            if (to) write_quoted(stderr, f, buf_slice(&bt)); else fputs("the last", stderr);
        }
        fputs(" ...\n", stderr);
        double start = now_seconds();
        if (weir_compact_range(db, from ? bf.data : NULL, bf.len, to ? bt.data : NULL, bt.len) != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        } else {
            printf("compacted in %.3f s\n", now_seconds() - start);
            rc = print_property(db, "weir.level-summary");
        }
    }
    buf_free(&bf);
    buf_free(&bt);
    return close_db(db, rc);
}

static const char help_checkpoint[] =
    "Usage: weir checkpoint DB_DIR TARGET_DIR\n"
    "\n"
    "Make a consistent, openable copy of the database in TARGET_DIR (which must\n"
    "not exist, or be empty). Tables are hard-linked (copied across file\n"
    "systems), so the copy is fast and small until the source compacts.\n"
    "The copy holds every write made before the command started.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Example:\n"
    "  weir checkpoint /var/lib/app/state /backups/state-2026-11-25\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 usage error.\n";

static int cmd_checkpoint(int argc, char **argv) {
    int help, npos;
    const optdef defs[] = {{NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 2) return usage_error("expected DB_DIR TARGET_DIR");
    weir_db *db = NULL;
    rc = open_db(argv[0], OPEN_WRITE, &db);
    if (rc == EXIT_OK) {
        double start = now_seconds();
        if (weir_checkpoint(db, argv[1]) != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        } else {
            printf("checkpoint of %s written to %s in %.3f s\n", argv[0], argv[1], now_seconds() - start);
        }
    }
    return close_db(db, rc);
}

/* ======================================================================
 * Offline inspection helpers
 * ====================================================================== */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Keys inside tables compare as internal keys; a key too short to hold a
 * tag (only in a damaged block) compares bytewise so nothing reads before
 * its start. */
static int table_key_cmp(slice a, slice b) {
    if (a.len < IKEY_TAG_SIZE || b.len < IKEY_TAG_SIZE) return slice_compare(a, b);
    return ikey_compare(a, b);
}

static const char *type_name(int type) {
    switch (type) {
    case TYPE_VALUE: return "PUT";
    case TYPE_DELETION: return "DEL";
    case TYPE_MERGE: return "MERGE";
    case TYPE_VALUE_TTL: return "PUT_TTL";
    case TYPE_RANGE_DELETION: return "DEL_RANGE";
    default: return "UNKNOWN";
    }
}

/* The columns after an op's type: PUT value | DEL (none) | MERGE operand |
 * PUT_TTL expiry-ms value | DEL_RANGE end-key (exclusive). */
static void write_op_tail(FILE *f, out_format fmt, int type, slice value) {
    if (type == TYPE_DELETION) return;
    if (type == TYPE_VALUE_TTL) {
        if (value.len < 8) {
            fputs("\t(malformed: shorter than its expiry)", f);
            return;
        }
        fprintf(f, "\t%" PRIu64, decode_fixed64(value.data));
        value = slice_make(value.data + 8, value.len - 8);
    }
    fputc('\t', f);
    write_bytes(f, fmt, value.data, value.len);
}

static const char *codec_label(int codec) {
    switch (codec) {
    case SST_COMPRESSION_NONE: return "none";
    case SST_COMPRESSION_LZ4: return "lz4";
    case SST_COMPRESSION_ZSTD: return "zstd";
    default: return "unknown";
    }
}

/* 'user key' @ seq TYPE */
static void write_ikey(FILE *f, out_format fmt, slice ikey) {
    slice user;
    uint64_t seq;
    int type;
    if (!ikey_parse(ikey, &user, &seq, &type)) {
        fputs("(malformed key ", f);
        write_quoted(f, FMT_HEX, ikey);
        fputc(')', f);
        return;
    }
    write_quoted(f, fmt, user);
    fprintf(f, " @ %" PRIu64 " %s", seq, type_name(type));
}

/* The physical layout of a table, read from its footer and index. */
typedef struct table_block {
    uint64_t offset, size;
    int codec;
} table_block;

typedef struct table_layout {
    uint64_t file_size;
    uint64_t filter_off, filter_size, index_off, index_size, entries;
    uint32_t version, flags;
    table_block *blocks;
    size_t nblocks;
    buf *last_keys; /* index separator of each block (only if asked) */
} table_layout;

static void table_layout_free(table_layout *t) {
    if (t->last_keys)
        for (size_t i = 0; i < t->nblocks; i++) buf_free(&t->last_keys[i]);
    free(t->last_keys);
    free(t->blocks);
    memset(t, 0, sizeof *t);
}

/* Read the footer and walk the index of a table that sst_reader_open has
 * already accepted (so its checksums are fine); bounds are still checked
 * because the file could change underneath. */
static int table_layout_read(weir_env *env, const char *path, uint64_t size, int want_keys,
                             table_layout *t) {
    memset(t, 0, sizeof *t);
    t->file_size = size;
    env_readable *file;
    int rc = env->ops->open_readable(env, path, &file);
    if (rc != WEIR_OK) return rc;
    env_mapping map = {NULL, 0};
    rc = env->ops->mmap(file, &map);
    if (rc != WEIR_OK) {
        env->ops->close_readable(file);
        return rc;
    }
    rc = WEIR_CORRUPTION;
    if (map.len < size || size < SST_FOOTER_SIZE) {
        weir_set_error(rc, "table %s: too short for a footer", path);
        goto out;
    }
    const char *f = map.base + size - SST_FOOTER_SIZE;
    t->filter_off = decode_fixed64(f);
    t->filter_size = decode_fixed64(f + 8);
    t->index_off = decode_fixed64(f + 16);
    t->index_size = decode_fixed64(f + 24);
    t->entries = decode_fixed64(f + 32);
    t->version = decode_fixed32(f + 40);
    t->flags = decode_fixed32(f + 44);
    if (t->index_off > size || t->index_size > size - t->index_off) {
        weir_set_error(rc, "table %s: index block outside the file", path);
        goto out;
    }
    block idx;
    if (block_parse(&idx, map.base + t->index_off, (size_t)t->index_size) != WEIR_OK) goto out;
    block_iter it;
    block_iter_init(&it, &idx, table_key_cmp);
    size_t cap = 0;
    rc = WEIR_OK;
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) {
        uint64_t off, bsize;
        uint32_t ordinal;
        const char *p = it.value.data, *end = p + it.value.len;
        if (!(p = decode_varint64(p, end, &off)) || !(p = decode_varint64(p, end, &bsize)) ||
            !(p = decode_varint32(p, end, &ordinal)) || off > size || bsize >= size - off) {
            rc = weir_set_error(WEIR_CORRUPTION, "table %s: bad block handle in the index", path);
            break;
        }
        if (t->nblocks == cap) {
            cap = cap ? cap * 2 : 64;
            table_block *nb = realloc(t->blocks, cap * sizeof *nb);
            buf *nk = want_keys ? realloc(t->last_keys, cap * sizeof *nk) : NULL;
            if (nb) t->blocks = nb;
            if (nk) t->last_keys = nk;
            if (!nb || (want_keys && !nk)) {
                rc = weir_set_error(WEIR_NO_MEMORY, "out of memory reading %s", path);
                break;
            }
        }
        table_block *b = &t->blocks[t->nblocks];
        b->offset = off;
        b->size = bsize;
        b->codec = (unsigned char)map.base[off + bsize];
        if (want_keys) {
            buf k = BUF_INIT;
            slice key = block_iter_key(&it);
            if (buf_set(&k, key.data, key.len) != 0) {
                rc = weir_set_error(WEIR_NO_MEMORY, "out of memory reading %s", path);
                break;
            }
            t->last_keys[t->nblocks] = k;
        }
        t->nblocks++;
    }
    if (rc == WEIR_OK && block_iter_status(&it) != WEIR_OK)
        rc = weir_wrap_error(WEIR_CORRUPTION, "table %s: index", path);
    block_iter_free(&it);
out:
    env->ops->munmap(file, &map);
    env->ops->close_readable(file);
    if (rc != WEIR_OK) table_layout_free(t);
    return rc;
}

/* First and last internal keys of a table (empty if it has no entries). */
static int table_key_range(sst_reader *r, buf *first, buf *last) {
    iter *it = sst_reader_iter(r, NULL, NULL);
    if (!it) return weir_set_error(WEIR_NO_MEMORY, "out of memory");
    buf_clear(first);
    buf_clear(last);
    int rc = WEIR_OK;
    iter_seek_first(it);
    if (iter_valid(it)) {
        slice k = iter_key(it);
        if (buf_set(first, k.data, k.len) != 0) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory");
        iter_seek_last(it);
        if (rc == WEIR_OK && iter_valid(it)) {
            k = iter_key(it);
            if (buf_set(last, k.data, k.len) != 0) rc = weir_set_error(WEIR_NO_MEMORY, "out of memory");
        }
    }
    if (rc == WEIR_OK) rc = iter_status(it);
    iter_destroy(it);
    return rc;
}

/* ======================================================================
 * check
 * ====================================================================== */

static const char help_check[] =
    "Usage: weir check DB_DIR\n"
    "\n"
    "Check every file of the database and its write history without changing\n"
    "anything (nothing is created, written, renamed or deleted):\n"
    "  CURRENT      must name a manifest that exists\n"
    "  MANIFEST-*   every record's checksum; every version edit must decode;\n"
    "               the live manifest must replay to a consistent version\n"
    "  *.sst        footer, index, filter and every data block's checksum, key\n"
    "               order, entry count; for tables the manifest lists, also\n"
    "               the size, entry count and key range it records. Tables\n"
    "               present but not listed are verified and reported as notes.\n"
    "  *.log        every record's checksum, and each record must decode as a\n"
    "               write batch\n"
    "  database     the sequence history across manifest and logs, as a\n"
    "               read-only recovery sees it: nothing missing, duplicated or\n"
    "               out of order, every file the history needs present\n"
    "\n"
    "Prints one line per file or finding:\n"
    "  OK <file> (...)      intact\n"
    "  NOTE <file>: ...     worth knowing, nothing lost (a leftover file)\n"
    "  WARN <file>: ...     a torn tail at the crash point, or a hole a power\n"
    "                       cut left in writes that were never fsync'd: only what\n"
    "                       the sync mode allows is dropped\n"
    "  DAMAGE <file>: ...   acknowledged writes are lost or would be changed;\n"
    "                       names the offset (run weir salvage to copy out what\n"
    "                       is intact)\n"
    "  ERROR <file>: ...    the file could not be read\n"
    "then a summary line.\n"
    "\n"
    "The history check takes a read lock: while another process has the\n"
    "database open for writing it is skipped (a NOTE says so). For a\n"
    "definitive answer, check a closed database.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 nothing lost (warnings allowed), 1 damage found, 2 usage\n"
    "error, or some file could not be read, or DB_DIR is not a database.\n"
    "\n"
    "Example:\n"
    "  weir check ./db || weir salvage ./db ./db-salvaged\n";

typedef struct report_counts {
    int lines, ok, notes, warns, damage, errors;
} report_counts;

static const char *const report_tags[] = {"OK", "NOTE", "WARN", "DAMAGE", "ERROR"};

static void print_report(void *arg, int level, const char *file, const char *message) {
    report_counts *c = arg;
    if (level < WEIR_REPORT_OK || level > WEIR_REPORT_ERROR) level = WEIR_REPORT_ERROR;
    if (level == WEIR_REPORT_OK) printf("OK %s (%s)\n", file, message);
    else printf("%s %s: %s\n", report_tags[level], file, message);
    fflush(stdout);
    c->lines++;
    int *counter[] = {&c->ok, &c->notes, &c->warns, &c->damage, &c->errors};
    (*counter[level])++;
}

static int cmd_check(int argc, char **argv) {
    int help, npos;
    const optdef defs[] = {{NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected DB_DIR");
    report_counts c;
    memset(&c, 0, sizeof c);
    int st = weir_check(argv[0], print_report, &c);
    if (c.lines)
        printf("%d finding(s): %d ok, %d note(s), %d warning(s), %d damaged, %d unreadable\n", c.lines,
               c.ok, c.notes, c.warns, c.damage, c.errors);
    if (st == WEIR_OK) return EXIT_OK;
    if (st == WEIR_CORRUPTION) {
        errorf("%s: damage found in %d place(s); first: %s", argv[0], c.damage, weir_errmsg());
        return EXIT_FAIL;
    }
    errorf("cannot check %s: %s", argv[0], weir_errmsg());
    return EXIT_USAGE;
}

/* ======================================================================
 * salvage
 * ====================================================================== */

static const char help_salvage[] =
    "Usage: weir salvage SRC_DIR DST_DIR\n"
    "\n"
    "Copy every record that can be proved intact out of a damaged database in\n"
    "SRC_DIR into a new database in DST_DIR (which must not exist, or be\n"
    "empty), for when weir check reports damage and there is no backup:\n"
    "  - the manifest says which tables are live, which range deletions apply\n"
    "    and which logs hold writes not yet in tables; damaged records of it\n"
    "    are skipped\n"
    "  - live tables (and tables newer than the manifest) are read block by\n"
    "    block: a block that fails its checksum is skipped\n"
    "  - logs are read record by record: a damaged record is skipped\n"
    "Entries keep their sequence numbers, so the newest intact version of each\n"
    "key wins. Tables the manifest no longer lists are not used (they could\n"
    "bring deleted keys back). SRC_DIR is never written (it is read-locked, so\n"
    "it must not be open for writing).\n"
    "\n"
    "Prints a line per source and per loss (file, byte offsets, key range or\n"
    "sequence range), as weir check does, then a summary.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 everything intact was copied and nothing was lost, 1 the\n"
    "copy was written but something could not be recovered (see the report),\n"
    "2 usage error or no copy could be made.\n"
    "\n"
    "Example:\n"
    "  weir salvage ./db ./db-salvaged && weir check ./db-salvaged\n";

static int cmd_salvage(int argc, char **argv) {
    int help, npos;
    const optdef defs[] = {{NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 2) return usage_error("expected SRC_DIR DST_DIR");
    report_counts c;
    memset(&c, 0, sizeof c);
    int st = weir_salvage(argv[0], argv[1], NULL, print_report, &c);
    if (st == WEIR_OK) {
        printf("salvaged %s into %s: nothing lost\n", argv[0], argv[1]);
        return EXIT_OK;
    }
    if (st == WEIR_CORRUPTION) {
        errorf("%s", weir_errmsg());
        return EXIT_FAIL;
    }
    errorf("cannot salvage %s: %s", argv[0], weir_errmsg());
    return EXIT_USAGE;
}

/* ======================================================================
 * dump-table
 * ====================================================================== */

static const char help_dump_table[] =
    "Usage: weir dump-table [options] FILE.sst\n"
    "\n"
    "Print a table's entries in order, one per line:\n"
    "  KEY<TAB>SEQUENCE<TAB>PUT<TAB>VALUE    or    KEY<TAB>SEQUENCE<TAB>DEL\n"
    "  (also MERGE<TAB>OPERAND, PUT_TTL<TAB>EXPIRY_MS<TAB>VALUE, and\n"
    "  DEL_RANGE<TAB>END for a range deletion whose KEY is its start)\n"
    "The table is read directly (no database is opened); checksums of the\n"
    "footer, index and filter are checked at open and of each data block as it\n"
    "is read.\n"
    "\n"
    "Options:\n"
    "  --stats      print the layout instead: entries, data blocks (count, sizes,\n"
    "               compression), filter and index blocks, footer, key range\n"
    "  --blocks     with --stats, also list every data block (offset, size,\n"
    "               compression, last key)\n"
    "  --limit N    print at most N entries\n"
    "  --hex        print keys and values in hex\n"
    "  -h, --help   show this help\n"
    "\n"
    "Offsets are bytes from the start of the file; sizes exclude each block's\n"
    "5-byte trailer (compression type and checksum).\n"
    "\n"
    "Exit status: 0 done, 1 unreadable or corrupt table, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir dump-table ./db/000007.sst | head\n"
    "  weir dump-table --stats --blocks ./db/000007.sst\n";

static void print_table_stats(const char *path, sst_reader *r, const table_layout *t, int blocks,
                              out_format fmt, slice first, slice last) {
    uint64_t total = 0, min = UINT64_MAX, max = 0, per_codec[3] = {0, 0, 0};
    for (size_t i = 0; i < t->nblocks; i++) {
        const table_block *b = &t->blocks[i];
        total += b->size;
        if (b->size < min) min = b->size;
        if (b->size > max) max = b->size;
        if (b->codec >= 0 && b->codec <= 2) per_codec[b->codec]++;
    }
    printf("table: %s\n", path);
    printf("file size: %" PRIu64 " bytes\n", t->file_size);
    printf("format version: %" PRIu32 "\n", t->version);
    printf("entries: %" PRIu64 "\n", sst_reader_num_entries(r));
    printf("data blocks: %zu, %" PRIu64 " bytes", t->nblocks, total);
    if (t->nblocks)
        printf(" (smallest %" PRIu64 ", largest %" PRIu64 ", average %" PRIu64 ")", min, max,
               total / t->nblocks);
    printf("\ncompression: none %" PRIu64 ", lz4 %" PRIu64 ", zstd %" PRIu64 " blocks\n", per_codec[0],
           per_codec[1], per_codec[2]);
    if (blocks) {
        for (size_t i = 0; i < t->nblocks; i++) {
            const table_block *b = &t->blocks[i];
            printf("data block %zu: offset %" PRIu64 ", %" PRIu64 " bytes, %s, last key ", i, b->offset,
                   b->size, codec_label(b->codec));
            write_ikey(stdout, fmt, buf_slice(&t->last_keys[i]));
            fputc('\n', stdout);
        }
    }
    printf("filter block: offset %" PRIu64 ", %" PRIu64 " bytes\n", t->filter_off, t->filter_size);
    printf("index block: offset %" PRIu64 ", %" PRIu64 " bytes\n", t->index_off, t->index_size);
    printf("footer: offset %" PRIu64 ", %d bytes\n", t->file_size - SST_FOOTER_SIZE, SST_FOOTER_SIZE);
    fputs("key range: ", stdout);
    if (first.len) {
        write_ikey(stdout, fmt, first);
        fputs(" .. ", stdout);
        write_ikey(stdout, fmt, last);
        fputc('\n', stdout);
    } else {
        fputs("(empty)\n", stdout);
    }
}

static int cmd_dump_table(int argc, char **argv) {
    const char *limit_s = NULL;
    int stats = 0, blocks = 0, hex = 0, help, npos;
    const optdef defs[] = {{"stats", OPT_FLAG, &stats}, {"blocks", OPT_FLAG, &blocks},
                           {"limit", OPT_VALUE, &limit_s}, {"hex", OPT_FLAG, &hex},
                           {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected one table file");
    if (blocks) stats = 1;
    uint64_t limit = UINT64_MAX;
    if (limit_s && (rc = parse_count("limit", limit_s, 0, UINT64_MAX, &limit)) != EXIT_OK) return rc;
    out_format fmt = hex ? FMT_HEX : FMT_TEXT;
    const char *path = argv[0];
    weir_env *env = env_posix();
    uint64_t size;
    sst_reader *r = NULL;
    if (env->ops->file_size(env, path, &size) != WEIR_OK ||
        sst_reader_open(env, path, size, &r) != WEIR_OK) {
        errorf("%s", weir_errmsg());
        return EXIT_FAIL;
    }
    if (stats) {
        table_layout t;
        buf first = BUF_INIT, last = BUF_INIT;
        if (table_layout_read(env, path, size, blocks, &t) != WEIR_OK ||
            table_key_range(r, &first, &last) != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        } else {
            print_table_stats(path, r, &t, blocks, fmt, buf_slice(&first), buf_slice(&last));
        }
        table_layout_free(&t);
        buf_free(&first);
        buf_free(&last);
        sst_reader_close(r);
        return rc;
    }
    iter *it = sst_reader_iter(r, NULL, NULL);
    if (!it) {
        sst_reader_close(r);
        return fail_oom();
    }
    uint64_t n = 0;
    for (iter_seek_first(it); n < limit && iter_valid(it); iter_next(it), n++) {
        slice ikey = iter_key(it), user;
        uint64_t seq;
        int type;
        if (!ikey_parse(ikey, &user, &seq, &type)) {
            errorf("%s: entry %" PRIu64 " has a malformed internal key", path, n);
            rc = EXIT_FAIL;
            break;
        }
        write_bytes(stdout, fmt, user.data, user.len);
        printf("\t%" PRIu64 "\t%s", seq, type_name(type));
        write_op_tail(stdout, fmt, type, iter_value(it));
        fputc('\n', stdout);
    }
    if (rc == EXIT_OK && iter_status(it) != WEIR_OK) {
        errorf("after %" PRIu64 " entries: %s", n, weir_errmsg());
        rc = EXIT_FAIL;
    }
    iter_destroy(it);
    sst_reader_close(r);
    return rc;
}

/* ======================================================================
 * dump-log
 * ====================================================================== */

static const char help_dump_log[] =
    "Usage: weir dump-log [options] FILE\n"
    "\n"
    "Print the records of a write-ahead log (NNNNNN.log) or of a manifest\n"
    "(MANIFEST-NNNNNN, chosen by the file name or --manifest).\n"
    "Log record:  record at offset O: sequence S, C ops, B bytes\n"
    "             then one line per op: <TAB>SEQ<TAB>PUT<TAB>KEY<TAB>VALUE\n"
    "                                or <TAB>SEQ<TAB>DEL<TAB>KEY\n"
    "             (other ops as in dump-table: MERGE, PUT_TTL, DEL_RANGE)\n"
    "Manifest:    record at offset O: version edit, then one line per field\n"
    "             (log number, next file number, last sequence, added and\n"
    "             deleted tables, compaction pointers)\n"
    "A summary line ends the output. A torn tail (damage at the end with no\n"
    "valid record anywhere after it) is reported on stderr as a warning;\n"
    "damage followed by valid data stops with an error naming the offset, as\n"
    "does a file with no valid record at all.\n"
    "\n"
    "Options:\n"
    "  --manifest   decode records as version edits whatever the file name\n"
    "  --no-ops     log records: print only each record's header line\n"
    "  --hex        print keys and values in hex\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 done (even with a torn tail), 1 unreadable or corrupt file\n"
    "(or no valid record at all), 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir dump-log ./db/000012.log\n"
    "  weir dump-log ./db/MANIFEST-000011\n";

typedef struct log_stats {
    uint64_t records, ops, first_seq, last_seq;
    uint64_t dropped, valid_end;
} log_stats;

/* Called with each whole record and the offset where it starts. */
typedef int (*record_fn)(void *arg, slice record, uint64_t offset, log_stats *st);

/* Read every record of a log-format file, handing each to fn. Returns
 * WEIR_OK (torn tail, if any, in st->dropped), the reader's error, or
 * fn's error wrapped with the record's offset. */
static int read_log(weir_env *env, const char *path, record_fn fn, void *arg, log_stats *st) {
    memset(st, 0, sizeof *st);
    log_reader *r;
    int rc = log_reader_open(env, path, &r);
    if (rc != WEIR_OK) return rc;
    buf scratch = BUF_INIT;
    for (;;) {
        slice rec;
        rc = log_reader_next(r, &scratch, &rec);
        if (rc == WEIR_NOT_FOUND) {
            rc = WEIR_OK;
            st->dropped = log_reader_dropped_bytes(r);
            st->valid_end = log_reader_valid_end(r);
            break;
        }
        if (rc != WEIR_OK) break;
        rc = fn(arg, rec, log_reader_record_offset(r), st);
        if (rc != WEIR_OK) {
            rc = weir_wrap_error(rc, "%s: record at offset %" PRIu64, path, log_reader_record_offset(r));
            break;
        }
        st->records++;
    }
    buf_free(&scratch);
    log_reader_close(r);
    return rc;
}

static int count_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    (void)type, (void)key, (void)value;
    log_stats *st = arg;
    if (st->ops == 0) st->first_seq = seq;
    st->last_seq = seq;
    st->ops++;
    return 0;
}

typedef struct dump_ctx {
    out_format fmt;
    int no_ops;
    log_stats *st;
} dump_ctx;

static int print_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    dump_ctx *d = arg;
    count_op(d->st, seq, type, key, value);
    if (d->no_ops) return 0;
    printf("\t%" PRIu64 "\t%s\t", seq, type_name(type));
    write_bytes(stdout, d->fmt, key.data, key.len);
    write_op_tail(stdout, d->fmt, type, value);
    fputc('\n', stdout);
    return 0;
}

typedef struct dump_reader {
    dump_ctx ctx;
    int manifest;
    version_edit edit;
} dump_reader;

static void print_edit(const version_edit *e, out_format fmt) {
    if (e->has_log_number) printf("\tlog number %" PRIu64 "\n", e->log_number);
    if (e->has_log_start) printf("\tlog start sequence %" PRIu64 "\n", e->log_start_sequence);
    if (e->has_clean_close)
        printf("\tclean close: logs end at sequence %" PRIu64 ", newest log %06" PRIu64 ".log\n",
               e->close_sequence, e->close_log_number);
    if (e->has_next_file_number) printf("\tnext file number %" PRIu64 "\n", e->next_file_number);
    if (e->has_last_sequence) printf("\tlast sequence %" PRIu64 "\n", e->last_sequence);
    for (size_t i = 0; i < e->num_deleted; i++)
        printf("\tdelete level %d table %06" PRIu64 ".sst\n", e->deleted[i].level, e->deleted[i].number);
    for (size_t i = 0; i < e->num_added; i++) {
        const file_meta *f = e->added[i].file;
        printf("\tadd level %d table %06" PRIu64 ".sst: %" PRIu64 " bytes, %" PRIu64 " entries, ",
               e->added[i].level, f->number, f->size, f->num_entries);
        write_ikey(stdout, fmt, buf_slice(&f->smallest));
        fputs(" .. ", stdout);
        write_ikey(stdout, fmt, buf_slice(&f->largest));
        fputc('\n', stdout);
    }
    for (size_t i = 0; i < e->num_pointers; i++) {
        printf("\tcompaction pointer level %d: ", e->pointers[i].level);
        write_ikey(stdout, fmt, buf_slice(&e->pointers[i].key));
        fputc('\n', stdout);
    }
    for (size_t i = 0; i < e->num_tombs_added; i++) {
        printf("\tadd range tombstone at sequence %" PRIu64 ": ", e->tombs_added[i].seq);
        write_bytes(stdout, fmt, e->tombs_added[i].start.data, e->tombs_added[i].start.len);
        fputs(" .. ", stdout);
        write_bytes(stdout, fmt, e->tombs_added[i].end.data, e->tombs_added[i].end.len);
        fputc('\n', stdout);
    }
    for (size_t i = 0; i < e->num_tombs_removed; i++)
        printf("\tremove range tombstone at sequence %" PRIu64 "\n", e->tombs_removed[i]);
}

static int dump_record(void *arg, slice record, uint64_t off, log_stats *st) {
    dump_reader *d = arg;
    if (d->manifest) {
        int rc = version_edit_decode(&d->edit, record);
        if (rc != WEIR_OK) return rc;
        printf("record at offset %" PRIu64 ": version edit, %zu bytes\n", off, record.len);
        print_edit(&d->edit, d->ctx.fmt);
        return WEIR_OK;
    }
    if (record.len < BATCH_HEADER_SIZE)
        return weir_set_error(WEIR_CORRUPTION, "write batch of %zu bytes is shorter than its header",
                              record.len);
    printf("record at offset %" PRIu64 ": sequence %" PRIu64 ", %" PRIu32 " ops, %zu bytes%s\n", off,
           batch_rep_sequence(record), batch_rep_count(record), record.len,
           batch_rep_synced(record) ? ", fsync'd" : "");
    d->ctx.st = st;
    return batch_rep_iterate(record, print_op, &d->ctx);
}

static int cmd_dump_log(int argc, char **argv) {
    int manifest = 0, no_ops = 0, hex = 0, help, npos;
    const optdef defs[] = {{"manifest", OPT_FLAG, &manifest}, {"no-ops", OPT_FLAG, &no_ops},
                           {"hex", OPT_FLAG, &hex}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected one log or manifest file");
    const char *path = argv[0];
    if (parse_file_name(base_name(path), NULL) == FILE_MANIFEST) manifest = 1;
    weir_env *env = env_posix();
    dump_reader d;
    memset(&d, 0, sizeof d);
    d.ctx.fmt = hex ? FMT_HEX : FMT_TEXT;
    d.ctx.no_ops = no_ops;
    d.manifest = manifest;
    version_edit_init(&d.edit);
    log_stats st;
    int s = read_log(env, path, dump_record, &d, &st);
    version_edit_free(&d.edit);
    if (s != WEIR_OK) {
        errorf("%s", weir_errmsg());
        return EXIT_FAIL;
    }
    if (manifest)
        printf("%" PRIu64 " records\n", st.records);
    else if (st.ops)
        printf("%" PRIu64 " records, %" PRIu64 " ops, sequences %" PRIu64 "..%" PRIu64 "\n", st.records,
               st.ops, st.first_seq, st.last_seq);
    else
        printf("%" PRIu64 " records, 0 ops\n", st.records);
    if (st.dropped && st.records == 0) {
        /* Nothing valid at all is no torn write: a crash can only cut the
         * end of a log, never leave it without its beginning. */
        errorf("%s: no valid record in %" PRIu64 " bytes: not a weir %s, or damaged from its start",
               path, st.dropped, manifest ? "manifest" : "log");
        return EXIT_FAIL;
    }
    if (st.dropped) {
        fflush(stdout);
        fprintf(stderr,
                "weir: dump-log: warning: torn tail: %" PRIu64 " bytes at offset %" PRIu64
                " hold no valid record and nothing valid follows them (an interrupted write at "
                "a crash; recovery drops it, unless the database was closed cleanly: see weir "
                "check)\n",
                st.dropped, st.valid_end);
    }
    return EXIT_OK;
}

/* ======================================================================
 * job: scaled-out jobs live in the Python package (weir.cluster), which
 * talks to Redis; the C tool hands the command to it rather than linking a
 * Redis client of its own.
 * ====================================================================== */

static const char help_job[] =
    "Usage: weir job status JOB [--redis URL] [--json] [--watch SECONDS]\n"
    "\n"
    "Inspect a scaled-out job (weir.cluster): its partitions, their owners and\n"
    "fencing tokens, committed events, lag, throughput, changelog length and\n"
    "snapshot, and the live workers. Workers are started with weir-worker.\n"
    "\n"
    "This runs 'python3 -m weir.cluster job ...' ($WEIR_PYTHON instead of\n"
    "python3 if set), so the weir Python package must be importable by it.\n"
    "\n"
    "Exit status: 0 shown, 1 an error (no such job, Redis unreachable, no\n"
    "Python to run), 2 usage error.\n"
    "\n"
    "Example:\n"
    "  weir job status fraud --redis redis://127.0.0.1:7000\n";

static int cmd_job(int argc, char **argv) {
    if (argc == 0) {
        fputs(help_job, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        fputs(help_job, stdout);
        return EXIT_OK;
    }
    const char *python = getenv("WEIR_PYTHON");
    if (!python || !*python) python = "python3";
    char **args = calloc((size_t)argc + 5, sizeof *args);
    if (!args) {
        errorf("out of memory");
        return EXIT_FAIL;
    }
    args[0] = (char *)python;
    args[1] = "-m";
    args[2] = "weir.cluster";
    args[3] = "job";
    for (int i = 0; i < argc; i++) args[4 + i] = argv[i];
    fflush(stdout);
    execvp(python, args);
    errorf("cannot run %s (set WEIR_PYTHON to a Python with the weir package): %s", python,
           strerror(errno));
    free(args);
    return EXIT_FAIL;
}

/* ======================================================================
 * main
 * ====================================================================== */

static int cmd_help(int argc, char **argv);

static const char help_help[] =
    "Usage: weir help [COMMAND]\n"
    "\n"
    "Show the list of commands, or one command's help (same as weir COMMAND --help).\n";

static const command commands[] = {
    {"get", cmd_get, "print the value of a key", help_get},
    {"put", cmd_put, "store one or more key/value pairs", help_put},
    {"delete", cmd_delete, "delete keys", help_delete},
    {"scan", cmd_scan, "print a range of entries (prefix, bounds, limit, reverse)", help_scan},
    {"load", cmd_load, "bulk-load a CSV or JSON-lines file", help_load},
    {"stats", cmd_stats, "print the engine's statistics report", help_stats},
    {"levels", cmd_levels, "print files and bytes per level and every table", help_levels},
    {"compact", cmd_compact, "compact a key range (or everything) and wait", help_compact},
    {"checkpoint", cmd_checkpoint, "make a consistent openable copy of the database", help_checkpoint},
    {"check", cmd_check, "verify every file and the write history; changes nothing", help_check},
    {"salvage", cmd_salvage, "copy what is intact out of a damaged database", help_salvage},
    {"dump-table", cmd_dump_table, "print a table file's entries or layout", help_dump_table},
    {"dump-log", cmd_dump_log, "print a write-ahead log's or manifest's records", help_dump_log},
    {"job", cmd_job, "inspect a scaled-out job (weir.cluster) in Redis", help_job},
    {"help", cmd_help, "show help for a command", help_help},
};
#define NUM_COMMANDS (sizeof commands / sizeof commands[0])

static void print_main_usage(FILE *f) {
    fprintf(f,
            "Usage: weir [--help] [--version] <command> [options] DB_DIR [args]\n"
            "\n"
            "weir is a crash-safe embedded key-value store; this tool reads, writes,\n"
            "loads and inspects a weir database directory.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "Run 'weir <command> --help' for a command's options and examples.\n"
            "\n"
            "Keys and values are text by default (taken literally; printed with \\\\,\n"
            "\\t, \\n, \\r and \\xHH escapes); --hex gives and prints them in hex.\n"
            "Messages go to stderr as \"weir: <command>: <message>\".\n"
            "\n"
            "Exit status: 0 success; 1 the operation failed (error, key not found, bad\n"
            "input, corruption found); 2 usage error (check: also unreadable files).\n");
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv) {
    int help, npos;
    const optdef defs[] = {{NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help || npos == 0) {
        if (help) return print_help();
        print_main_usage(stdout);
        return EXIT_OK;
    }
    if (npos > 1) return usage_error("expected at most one COMMAND");
    const command *c = find_command(argv[0]);
    if (!c) return usage_error("unknown command '%s'", argv[0]);
    fputs(c->help, stdout);
    return EXIT_OK;
}

int main(int argc, char **argv) {
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    if (isatty(STDOUT_FILENO)) setvbuf(stdout, NULL, _IOLBF, 0);
    int rc;
    if (argc < 2) {
        print_main_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_main_usage(stdout);
        rc = EXIT_OK;
    } else if (strcmp(name, "--version") == 0) {
        printf("%s\n", weir_build_info());
        rc = EXIT_OK;
    } else if (name[0] == '-') {
        fprintf(stderr, "weir: unknown option %s\nRun 'weir --help' for the list of commands.\n", name);
        return EXIT_USAGE;
    } else {
        current_cmd = find_command(name);
        if (!current_cmd) {
            fprintf(stderr, "weir: unknown command '%s'\nRun 'weir --help' for the list of commands.\n",
                    name);
            return EXIT_USAGE;
        }
        rc = current_cmd->run(argc - 2, argv + 2);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "weir: %s: writing the output failed: %s\n", cmd_label(), strerror(errno));
        if (rc == EXIT_OK) rc = EXIT_FAIL;
    }
    return rc;
}
