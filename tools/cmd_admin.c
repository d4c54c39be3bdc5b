/*
 * cmd_admin.c -- the weir tool's administration commands: stats and
 * levels (the engine's properties), compact, checkpoint, and job, which
 * hands a scaled-out job's status to the Python package.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"

/* ---- stats / levels / compact / checkpoint ---- */

const char help_stats[] =
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

const char help_levels[] =
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

int cmd_stats(int argc, char **argv) {
    static const char *const names[] = {"weir.stats"};
    return run_properties(argc, argv, names, 1);
}

int cmd_levels(int argc, char **argv) {
    static const char *const names[] = {"weir.level-summary", "weir.sstables"};
    return run_properties(argc, argv, names, 2);
}

const char help_compact[] =
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
    "  --progress   report progress on stderr even when it is not a terminal\n"
    "               (plain lines: each step's start and end, and one a second)\n"
    "  --no-progress  no progress bar, even on a terminal\n"
    "  -h, --help   show this help\n"
    "\n"
    "The range is compacted one level at a time: step 1 merges level 0 into\n"
    "level 1, step 2 level 1 into level 2, down to the deepest level holding\n"
    "keys in the range. On a terminal (TERM other than dumb) a progress bar on\n"
    "stderr shows the step and how much of its input has been merged.\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  weir compact ./db\n"
    "  weir compact --from user: --to user:~ ./db\n"
    "  weir compact --progress ./db 2>>compact.log\n";

typedef struct compact_display {
    progress pg;
    int last_step; /* a new step is worth a line of its own */
} compact_display;

/* weir_compact_range_progress's reports, shown as one fraction of the
 * whole call (steps weigh the same) and the step's merged bytes. */
static void show_compact_progress(void *arg, const weir_compact_progress *p) {
    compact_display *d = arg;
    double within = p->entries_total ? (double)p->entries_done / (double)p->entries_total : 1.0;
    double fraction = ((double)(p->step - 1) + within) / (double)p->steps;
    /* The bytes merged, estimated from the entries (tables record both). */
    uint64_t done_bytes = (uint64_t)((double)p->input_bytes * within);
    char done_s[32], total_s[32];
    int step_end = p->entries_done == p->entries_total;
    int step_start = p->step != d->last_step;
    d->last_step = p->step;
    progress_show(&d->pg, fraction, step_start || step_end, "step %d of %d (level %d -> %d): %s of %s merged",
                  p->step, p->steps, p->level, p->level + 1,
                  progress_bytes(done_s, sizeof done_s, done_bytes),
                  progress_bytes(total_s, sizeof total_s, p->input_bytes));
}

int cmd_compact(int argc, char **argv) {
    const char *from = NULL, *to = NULL;
    int hex = 0, progress_on = 0, progress_off = 0, help, npos;
    const optdef defs[] = {{"from", OPT_VALUE, &from},
                           {"to", OPT_VALUE, &to},
                           {"hex", OPT_FLAG, &hex},
                           {"progress", OPT_FLAG, &progress_on},
                           {"no-progress", OPT_FLAG, &progress_off},
                           {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected DB_DIR");
    bytes bf = BYTES_INIT, bt = BYTES_INIT;
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
            if (from) write_quoted(stderr, f, bf.data, bf.len); else fputs("the first", stderr);
            fputs(" to ", stderr);
            if (to) write_quoted(stderr, f, bt.data, bt.len); else fputs("the last", stderr);
        }
        fputs(" ...\n", stderr);
        double start = now_seconds();
        compact_display d = {.last_step = 0};
        progress_start(&d.pg, progress_choose(progress_on, progress_off));
        int status = weir_compact_range_progress(db, from ? bf.data : NULL, bf.len, to ? bt.data : NULL,
                                                 bt.len, d.pg.mode != PROGRESS_OFF ? show_compact_progress : NULL,
                                                 &d);
        progress_clear(&d.pg);
        if (status != WEIR_OK) {
            errorf("%s", weir_errmsg());
            rc = EXIT_FAIL;
        } else {
            printf("compacted in %.3f s\n", now_seconds() - start);
            rc = print_property(db, "weir.level-summary");
        }
    }
    bytes_free(&bf);
    bytes_free(&bt);
    return close_db(db, rc);
}

const char help_checkpoint[] =
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

int cmd_checkpoint(int argc, char **argv) {
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

/* ---- job: scaled-out jobs live in the Python package (weir.cluster),
 * which talks to Redis; the C tool hands the command to it rather than
 * linking a Redis client of its own. ---- */

const char help_job[] =
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

int cmd_job(int argc, char **argv) {
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
