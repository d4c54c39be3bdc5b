/*
 * cli.c -- the weir tool's shared plumbing (cli.h): messages, option
 * parsing, command-line keys and values, and opening the database.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const command *current_cmd;

const char *cmd_label(void) { return current_cmd ? current_cmd->name : "weir"; }

void errorf(const char *fmt, ...) {
    va_list ap;
    fflush(stdout); /* keep stdout and stderr in order on a terminal */
    fprintf(stderr, "weir: ");
    if (current_cmd) fprintf(stderr, "%s: ", cmd_label());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int fail_oom(void) {
    errorf("out of memory");
    return EXIT_FAIL;
}

static void print_usage_line(FILE *f) {
    const char *h = current_cmd->help;
    const char *nl = strchr(h, '\n');
    fprintf(f, "%.*s\n", (int)(nl ? nl - h : (ptrdiff_t)strlen(h)), h);
}

int usage_error(const char *fmt, ...) {
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

int parse_options(int argc, char **argv, const optdef *defs, int *npos, int *help) {
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

int print_help(void) {
    fputs(current_cmd->help, stdout);
    return EXIT_OK;
}

int parse_count(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out) {
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

/* Decode hex digits into out. -1 if s is not hex (odd length or a bad
 * digit), -2 if memory ran out. */
static int decode_hex(const char *s, bytes *out) {
    size_t n = strlen(s);
    bytes_clear(out);
    if (n % 2) return -1;
    if (bytes_reserve(out, n / 2 + 1) != 0) return -2;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit((unsigned char)s[i]), lo = hex_digit((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out->data[out->len++] = (char)(hi << 4 | lo);
    }
    return 0;
}

int arg_bytes(const char *what, const char *arg, int hex, bytes *out) {
    if (!hex) {
        /* Reserved even when empty: an empty key is "", not NULL. */
        if (bytes_reserve(out, 1) != 0 || bytes_set(out, arg, strlen(arg)) != 0) return fail_oom();
        return EXIT_OK;
    }
    int rc = decode_hex(arg, out);
    if (rc == -2) return fail_oom();
    if (rc == -1)
        return usage_error("%s '%s' is not hex (--hex wants an even number of digits 0-9a-f)",
                           what, arg);
    return EXIT_OK;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int open_db(const char *dir, enum open_mode mode, weir_db **db) {
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

int close_db(weir_db *db, int status) {
    if (!db) return status;
    if (weir_close(db) != WEIR_OK && status == EXIT_OK) {
        errorf("closing the database: %s", weir_errmsg());
        return EXIT_FAIL;
    }
    return status;
}
