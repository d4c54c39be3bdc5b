/*
 * cmd_inspect.c -- the weir tool's inspection commands. check and salvage
 * print the findings of weir_check and weir_salvage (weir.h); dump-table
 * and dump-log print what inspect.h's readers hand them, so they work on
 * one file of a database that no longer opens.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"

/* ---- check / salvage ---- */

const char help_check[] =
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

int cmd_check(int argc, char **argv) {
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

const char help_salvage[] =
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

int cmd_salvage(int argc, char **argv) {
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

/* ---- what both dumps print ---- */

/* 'user key' @ seq TYPE */
static void write_ikey(FILE *f, out_format fmt, const inspect_key *k) {
    if (!k->valid) {
        fputs("(malformed key ", f);
        write_quoted(f, FMT_HEX, k->user.data, k->user.len);
        fputc(')', f);
        return;
    }
    write_quoted(f, fmt, k->user.data, k->user.len);
    fprintf(f, " @ %" PRIu64 " %s", k->sequence, inspect_op_name(k->type));
}

/* The columns after an op's type: PUT value | DEL (none) | MERGE operand |
 * PUT_TTL expiry-ms value | DEL_RANGE end-key (exclusive). */
static void write_op_tail(FILE *f, out_format fmt, const inspect_op *op) {
    if (op->type == INSPECT_OP_DEL) return;
    if (op->malformed) {
        fputs("\t(malformed: shorter than its expiry)", f);
        return;
    }
    if (op->type == INSPECT_OP_PUT_TTL) fprintf(f, "\t%" PRIu64, op->expiry_ms);
    fputc('\t', f);
    write_bytes(f, fmt, op->value.data, op->value.len);
}

/* ---- dump-table ---- */

const char help_dump_table[] =
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

static void print_table_stats(const char *path, const inspect_table_layout *t, int blocks, out_format fmt) {
    printf("table: %s\n", path);
    printf("file size: %" PRIu64 " bytes\n", t->file_size);
    printf("format version: %" PRIu32 "\n", t->format_version);
    printf("entries: %" PRIu64 "\n", t->entries);
    printf("data blocks: %zu, %" PRIu64 " bytes", t->num_blocks, t->block_bytes);
    if (t->num_blocks)
        printf(" (smallest %" PRIu64 ", largest %" PRIu64 ", average %" PRIu64 ")", t->smallest_block,
               t->largest_block, t->block_bytes / t->num_blocks);
    printf("\ncompression: none %" PRIu64 ", lz4 %" PRIu64 ", zstd %" PRIu64 " blocks\n",
           t->blocks_by_codec[0], t->blocks_by_codec[1], t->blocks_by_codec[2]);
    for (size_t i = 0; blocks && i < t->num_blocks; i++) {
        const inspect_block *b = &t->blocks[i];
        printf("data block %zu: offset %" PRIu64 ", %" PRIu64 " bytes, %s, last key ", i, b->offset, b->size,
               inspect_codec_name(b->codec));
        write_ikey(stdout, fmt, &b->last_key);
        fputc('\n', stdout);
    }
    printf("filter block: offset %" PRIu64 ", %" PRIu64 " bytes\n", t->filter_offset, t->filter_size);
    printf("index block: offset %" PRIu64 ", %" PRIu64 " bytes\n", t->index_offset, t->index_size);
    printf("footer: offset %" PRIu64 ", %" PRIu64 " bytes\n", t->footer_offset, t->footer_size);
    fputs("key range: ", stdout);
    if (!t->empty) {
        write_ikey(stdout, fmt, &t->first);
        fputs(" .. ", stdout);
        write_ikey(stdout, fmt, &t->last);
        fputc('\n', stdout);
    } else {
        fputs("(empty)\n", stdout);
    }
}

/* KEY<TAB>SEQ<TAB>TYPE, then the op's tail. */
static int print_entry(void *arg, const inspect_op *op) {
    out_format fmt = *(const out_format *)arg;
    write_bytes(stdout, fmt, op->key.data, op->key.len);
    printf("\t%" PRIu64 "\t%s", op->sequence, inspect_op_name(op->type));
    write_op_tail(stdout, fmt, op);
    fputc('\n', stdout);
    return WEIR_OK;
}

int cmd_dump_table(int argc, char **argv) {
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
    inspect_table *t;
    int st = inspect_table_open(path, &t);
    if (st == WEIR_OK && stats) {
        inspect_table_layout layout;
        st = inspect_table_layout_read(t, &layout);
        if (st == WEIR_OK) print_table_stats(path, &layout, blocks, fmt);
        inspect_table_layout_free(&layout);
    } else if (st == WEIR_OK) {
        st = inspect_table_entries(t, limit, print_entry, &fmt, NULL);
    }
    inspect_table_close(t);
    if (st != WEIR_OK) {
        errorf("%s", weir_errmsg());
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* ---- dump-log ---- */

const char help_dump_log[] =
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

typedef struct log_printer {
    out_format fmt;
} log_printer;

static int print_record(void *arg, const inspect_log_record *r) {
    (void)arg;
    printf("record at offset %" PRIu64 ": sequence %" PRIu64 ", %" PRIu32 " ops, %zu bytes%s\n", r->offset,
           r->sequence, r->count, r->size, r->synced ? ", fsync'd" : "");
    return WEIR_OK;
}

static int print_manifest_record(void *arg, const inspect_log_record *r) {
    (void)arg;
    printf("record at offset %" PRIu64 ": version edit, %zu bytes\n", r->offset, r->size);
    return WEIR_OK;
}

/* <TAB>SEQ<TAB>TYPE<TAB>KEY, then the op's tail. */
static int print_log_op(void *arg, const inspect_op *op) {
    const log_printer *p = arg;
    printf("\t%" PRIu64 "\t%s\t", op->sequence, inspect_op_name(op->type));
    write_bytes(stdout, p->fmt, op->key.data, op->key.len);
    write_op_tail(stdout, p->fmt, op);
    fputc('\n', stdout);
    return WEIR_OK;
}

static int print_edit_field(void *arg, const inspect_edit_field *f) {
    out_format fmt = ((const log_printer *)arg)->fmt;
    switch (f->kind) {
    case INSPECT_EDIT_LOG_NUMBER: printf("\tlog number %" PRIu64 "\n", f->number); break;
    case INSPECT_EDIT_LOG_START: printf("\tlog start sequence %" PRIu64 "\n", f->sequence); break;
    case INSPECT_EDIT_CLEAN_CLOSE:
        printf("\tclean close: logs end at sequence %" PRIu64 ", newest log %06" PRIu64 ".log\n",
               f->sequence, f->number);
        break;
    case INSPECT_EDIT_NEXT_FILE_NUMBER: printf("\tnext file number %" PRIu64 "\n", f->number); break;
    case INSPECT_EDIT_LAST_SEQUENCE: printf("\tlast sequence %" PRIu64 "\n", f->sequence); break;
    case INSPECT_EDIT_DELETE_TABLE:
        printf("\tdelete level %d table %06" PRIu64 ".sst\n", f->level, f->number);
        break;
    case INSPECT_EDIT_ADD_TABLE:
        printf("\tadd level %d table %06" PRIu64 ".sst: %" PRIu64 " bytes, %" PRIu64 " entries, ", f->level,
               f->number, f->size, f->entries);
        write_ikey(stdout, fmt, &f->smallest);
        fputs(" .. ", stdout);
        write_ikey(stdout, fmt, &f->largest);
        fputc('\n', stdout);
        break;
    case INSPECT_EDIT_COMPACTION_POINTER:
        printf("\tcompaction pointer level %d: ", f->level);
        write_ikey(stdout, fmt, &f->smallest);
        fputc('\n', stdout);
        break;
    case INSPECT_EDIT_ADD_RANGE_TOMBSTONE:
        printf("\tadd range tombstone at sequence %" PRIu64 ": ", f->sequence);
        write_bytes(stdout, fmt, f->start.data, f->start.len);
        fputs(" .. ", stdout);
        write_bytes(stdout, fmt, f->end.data, f->end.len);
        fputc('\n', stdout);
        break;
    case INSPECT_EDIT_REMOVE_RANGE_TOMBSTONE:
        printf("\tremove range tombstone at sequence %" PRIu64 "\n", f->sequence);
        break;
    default: break;
    }
    return WEIR_OK;
}

int cmd_dump_log(int argc, char **argv) {
    int manifest = 0, no_ops = 0, hex = 0, help, npos;
    const optdef defs[] = {{"manifest", OPT_FLAG, &manifest}, {"no-ops", OPT_FLAG, &no_ops},
                           {"hex", OPT_FLAG, &hex}, {NULL, 0, NULL}};
    int rc = parse_options(argc, argv, defs, &npos, &help);
    if (rc != EXIT_OK) return rc;
    if (help) return print_help();
    if (npos != 1) return usage_error("expected one log or manifest file");
    const char *path = argv[0];
    if (inspect_log_kind_of(path) == INSPECT_LOG_MANIFEST) manifest = 1;
    log_printer p = {hex ? FMT_HEX : FMT_TEXT};
    inspect_log_visitor v = {manifest ? print_manifest_record : print_record, no_ops ? NULL : print_log_op,
                             print_edit_field, &p};
    inspect_log_summary st;
    if (inspect_log_walk(path, manifest ? INSPECT_LOG_MANIFEST : INSPECT_LOG_WAL, &v, &st) != WEIR_OK) {
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
