/*
 * cmd_load.c -- `weir load`: bulk-load a CSV or JSON-lines file in atomic
 * batches, with a progress bar on a terminal. The formats are read by
 * csv.c and json.c; this file turns their records into batches and their
 * errors into messages that name the line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "input.h"
#include "json.h"
#include "progress.h"

/* What the progress display says: records so far and their rate, and
 * how far through the file (unknown when reading a pipe). */
static void load_progress(progress *pg, uint64_t total_bytes, uint64_t records, uint64_t bytes) {
    double elapsed = now_seconds() - pg->start;
    double rate = elapsed > 0 ? (double)records / elapsed : 0;
    char size[32];
    if (total_bytes)
        progress_show(pg, (double)bytes / (double)total_bytes, 0, "%" PRIu64 " records  %.0f records/s",
                      records, rate);
    else
        progress_show(pg, -1, 0, "%" PRIu64 " records  %s read  %.0f records/s", records,
                      progress_bytes(size, sizeof size, bytes), rate);
}

const char help_load[] =
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
    "  --progress          report progress on stderr even when it is not a terminal\n"
    "                      (plain lines, one a second)\n"
    "  --no-progress       no progress bar, even on a terminal\n"
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
    "On a terminal (TERM other than dumb) a progress bar is drawn on stderr and\n"
    "erased at the end. At the end one line is\n"
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
    uint64_t total_bytes; /* of the input file; 0 when not known (a pipe) */
    input *in;
} load_state;

static int load_add(load_state *ls, byte_view key, byte_view val, uint64_t line) {
    if (weir_batch_put(ls->batch, key.data, key.len, val.data, val.len) != WEIR_OK) {
        progress_clear(&ls->pg);
        errorf("%s:%" PRIu64 ": %s", ls->in->name, line, weir_errmsg());
        return EXIT_FAIL;
    }
    if (++ls->pending < ls->batch_size) {
        if ((ls->pending & 4095) == 0) load_progress(&ls->pg, ls->total_bytes, ls->written + ls->pending, input_offset(ls->in));
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
    load_progress(&ls->pg, ls->total_bytes, ls->written, input_offset(ls->in));
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
            byte_view f = csv_field(&rec, i);
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
    csv_record_free(&rec);
    return rc;
}

static int load_jsonl(load_state *ls, const char *key_field, const char *val_field) {
    input *in = ls->in;
    bytes line = BYTES_INIT, name = BYTES_INIT;
    json_member fields[2];
    memset(fields, 0, sizeof fields);
    fields[0].name = key_field;
    fields[1].name = val_field;
    json_error err;
    int rc = EXIT_OK, got;
    while (rc == EXIT_OK) {
        uint64_t lineno = in->line;
        got = input_line(in, &line);
        if (got == 0) break;
        if (got < 0) {
            rc = fail_oom();
            break;
        }
        size_t k = 0;
        while (k < line.len && (line.data[k] == ' ' || line.data[k] == '\t')) k++;
        if (k == line.len) continue;
        if (json_pick(bytes_view(&line), fields, val_field ? 2 : 1, &name, &err) != 0) {
            rc = load_bad_line(ls, lineno, "column %zu: %s", err.column, err.message);
            break;
        }
        json_member *kf = &fields[0], *vf = &fields[1];
        if (!kf->found) {
            rc = load_bad_line(ls, lineno, "the object has no \"%s\" member (set --key-field)", key_field);
            break;
        }
        byte_view key;
        if (kf->type == JSON_STRING)
            key = bytes_view(&kf->decoded);
        else if (kf->type == JSON_NUMBER)
            key = kf->raw;
        else {
            rc = load_bad_line(ls, lineno, "member \"%s\" must be a string or a number to be a key",
                               key_field);
            break;
        }
        byte_view val = bytes_view(&line);
        if (val_field) {
            if (!vf->found) {
                rc = load_bad_line(ls, lineno, "the object has no \"%s\" member (set --value-field)",
                                   val_field);
                break;
            }
            val = vf->type == JSON_STRING ? bytes_view(&vf->decoded) : vf->raw;
        }
        rc = load_add(ls, key, val, lineno);
    }
    bytes_free(&line);
    bytes_free(&name);
    bytes_free(&fields[0].decoded);
    bytes_free(&fields[1].decoded);
    return rc;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int cmd_load(int argc, char **argv) {
    const char *format_s = NULL, *batch_s = NULL, *key_col = NULL, *val_col = NULL,
               *delim_s = NULL, *key_field = NULL, *val_field = NULL;
    int header = 0, sync = 0, progress_on = 0, progress_off = 0, help, npos;
    const optdef defs[] = {{"format", OPT_VALUE, &format_s},      {"batch-size", OPT_VALUE, &batch_s},
                           {"sync", OPT_FLAG, &sync},              {"header", OPT_FLAG, &header},
                           {"key-column", OPT_VALUE, &key_col},    {"value-column", OPT_VALUE, &val_col},
                           {"delimiter", OPT_VALUE, &delim_s},     {"key-field", OPT_VALUE, &key_field},
                           {"value-field", OPT_VALUE, &val_field}, {"progress", OPT_FLAG, &progress_on},
                           {"no-progress", OPT_FLAG, &progress_off}, {NULL, 0, NULL}};
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

    int from_stdin = strcmp(file, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(file, "rb");
    if (!f) {
        errorf("cannot open %s: %s", file, strerror(errno));
        return EXIT_FAIL;
    }
    input in;
    if (input_init(&in, f, from_stdin ? "<stdin>" : file, INPUT_CHUNK) != 0) {
        input_free(&in);
        if (!from_stdin) fclose(f);
        return fail_oom();
    }
    if (jsonl < 0) {
        /* Guess from the first byte that is not white space. */
        int c;
        jsonl = 0;
        while ((c = input_peek(&in)) != EOF && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) input_getc(&in);
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
    ls.total_bytes = in.total;
    ls.batch = weir_batch_create();
    if (!ls.batch) rc = fail_oom();
    if (rc == EXIT_OK) rc = open_db(dir, OPEN_CREATE, &ls.db);
    double start = now_seconds();
    progress_start(&ls.pg, progress_choose(progress_on, progress_off));
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
    input_free(&in);
    if (!from_stdin) fclose(f);
    return rc;
}
