/*
 * csv.c -- the CSV reader of `weir load` (csv.h).
 */
#include "csv.h"

#include <stdlib.h>

byte_view csv_field(const csv_record *r, size_t i) {
    size_t start = i ? r->ends[i - 1] : 0;
    /* Only empty fields have been read when data is still NULL. */
    return byte_view_of(r->data.data ? r->data.data + start : NULL, r->ends[i] - start);
}

void csv_record_free(csv_record *r) {
    bytes_free(&r->data);
    free(r->ends);
    r->ends = NULL;
    r->nfields = r->cap = 0;
}

static int end_field(csv_record *r) {
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

int csv_read(input *in, int delim, csv_record *r, uint64_t *line, const char **err) {
    for (;;) {
        r->nfields = 0;
        bytes_clear(&r->data);
        int c = input_getc(in);
        if (c == EOF) return 0;
        *line = in->line - (c == '\n');
        int quoted_any = 0;
        for (;;) { /* one field per round; c is its first byte */
            if (c == '"') {
                uint64_t open_line = in->line;
                quoted_any = 1;
                for (;;) {
                    c = input_getc(in);
                    if (c == EOF) {
                        *line = open_line;
                        *err = "unterminated quoted field (its closing '\"' is missing)";
                        return -1;
                    }
                    if (c == '"') {
                        if (input_peek(in) != '"') break;
                        input_getc(in);
                    }
                    char ch = (char)c;
                    if (bytes_append(&r->data, &ch, 1) != 0) goto oom;
                }
                c = input_getc(in);
                if (c == '\r' && input_peek(in) == '\n') c = input_getc(in);
                if (c != delim && c != '\n' && c != EOF) {
                    *line = in->line;
                    *err = "unexpected character after a closing quote (a quote inside a "
                           "quoted field is written \"\")";
                    return -1;
                }
            } else {
                while (c != delim && c != '\n' && c != EOF) {
                    if (c == '\r' && input_peek(in) == '\n') {
                        c = input_getc(in);
                        break;
                    }
                    char ch = (char)c;
                    if (bytes_append(&r->data, &ch, 1) != 0) goto oom;
                    c = input_getc(in);
                }
            }
            if (end_field(r) != 0) goto oom;
            if (c != delim) break;
            c = input_getc(in);
        }
        if (in->read_errno) return 0; /* the caller reports it */
        if (r->nfields == 1 && r->data.len == 0 && !quoted_any) continue; /* blank line */
        return 1;
    }
oom:
    *err = "out of memory";
    return -1;
}
