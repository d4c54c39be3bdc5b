/*
 * weir.c -- the `weir` command-line tool: main, the command table and
 * help. The tool is a front end: it parses arguments and prints, over the
 * public API (weir.h) and, for the dump commands, the engine's inspection
 * readers (inspect.h). cli.h says where each command lives and the
 * conventions every command follows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

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
