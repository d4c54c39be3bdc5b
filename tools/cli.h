/*
 * cli.h -- what the weir tool's command files share: exit statuses, the
 * command table's entry, messages, option parsing, the formatting of keys
 * and values, and opening a database. The commands themselves live one
 * group a file: cmd_data.c (get, put, delete, scan), cmd_load.c (load),
 * cmd_admin.c (stats, levels, compact, checkpoint, job) and cmd_inspect.c
 * (check, salvage, dump-table, dump-log); weir.c holds main and the
 * command table.
 *
 * Conventions: results go to stdout, messages to stderr as
 * "weir: <command>: <message>". Exit status 0 is success, 1 a failed
 * operation (engine error, key not found, bad input, corruption found) and
 * 2 a usage error (check also uses 2 when files could not be read at all).
 */
#ifndef WEIR_TOOL_CLI_H
#define WEIR_TOOL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "bytes.h"
#include "weir.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTF_LIKE(a, b)
#endif

/* ---- commands (weir.c's table) ---- */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv: what follows the command's name */
    const char *summary;
    const char *help; /* first line is the usage line */
} command;

extern const command *current_cmd; /* NULL before a command is chosen */
/* The current command's name, or "weir". */
const char *cmd_label(void);

int cmd_get(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_levels(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_salvage(int argc, char **argv);
int cmd_dump_table(int argc, char **argv);
int cmd_dump_log(int argc, char **argv);

extern const char help_get[], help_put[], help_delete[], help_scan[], help_load[], help_stats[],
    help_levels[], help_compact[], help_checkpoint[], help_job[], help_check[], help_salvage[],
    help_dump_table[], help_dump_log[];

/* ---- messages (cli.c) ---- */

/* "weir: <command>: <message>" on stderr, after flushing stdout. */
void errorf(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* errorf("out of memory"); returns EXIT_FAIL. */
int fail_oom(void);
/* The message, the command's usage line and where to find help; returns
 * EXIT_USAGE. */
int usage_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* ---- options (cli.c) ---- */

enum { OPT_FLAG, OPT_VALUE };

typedef struct optdef {
    const char *name; /* long name without the dashes; NULL ends a list */
    int kind;         /* OPT_FLAG or OPT_VALUE */
    void *dest;       /* int * for flags (set to 1), const char ** for values */
} optdef;

/* Parse options anywhere among the arguments ("--" ends them). Positional
 * arguments are moved to the front of argv in order; *npos is their count.
 * Returns EXIT_OK, or EXIT_USAGE after printing why. *help is set by -h or
 * --help. */
int parse_options(int argc, char **argv, const optdef *defs, int *npos, int *help);
/* Print the current command's help to stdout; returns EXIT_OK. */
int print_help(void);
/* A decimal count in [min, max] given to option --opt; EXIT_OK or a usage
 * error. */
int parse_count(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A key or value from the command line: the argument's bytes, or hex.
 * `what` names it in the message when it is not hex. */
int arg_bytes(const char *what, const char *arg, int hex, bytes *out);
/* Seconds on a monotonic clock. */
double now_seconds(void);

/* ---- key and value output (output.c) ---- */

typedef enum out_format { FMT_TEXT, FMT_HEX, FMT_JSON } out_format;

/* Text form: printable ASCII and valid UTF-8 (minus C1 controls) as they
 * are; a backslash as \\, tab/newline/CR as \t \n \r, every other byte as
 * \xHH. The mapping is reversible, and the output never holds a tab or a
 * newline, so "key<TAB>value" lines stay unambiguous. */
void write_text(FILE *f, const char *data, size_t n);
void write_hex(FILE *f, const char *data, size_t n);
/* FMT_HEX: hex; otherwise text. */
void write_bytes(FILE *f, out_format fmt, const char *data, size_t n);
/* A short quoted form for messages: 'text', cut after 64 bytes. */
void write_quoted(FILE *f, out_format fmt, const char *data, size_t n);
/* "name":"text" when the bytes are UTF-8, else "name_hex":"hexdigits",
 * so binary keys survive JSON output without loss. */
void write_json_member(FILE *f, const char *name, const char *data, size_t n);

/* ---- the database (cli.c) ---- */

/* How a command opens the database. Read commands open it read-only:
 * they write nothing (not even recovery's tables), work on read-only media,
 * and share the database with other readers (a writer excludes them). */
enum open_mode { OPEN_READ, OPEN_WRITE, OPEN_CREATE };

/* EXIT_OK with *db open, or EXIT_FAIL after saying why. */
int open_db(const char *dir, enum open_mode mode, weir_db **db);
/* Close db (NULL is fine); a failure to close turns a success into a
 * failure. Returns the resulting status. */
int close_db(weir_db *db, int status);

#endif
