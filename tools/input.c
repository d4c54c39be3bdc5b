/*
 * input.c -- buffered reading of a load file with line numbers (input.h).
 */
#include "input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int input_init(input *in, FILE *f, const char *name, size_t chunk) {
    memset(in, 0, sizeof *in);
    in->f = f;
    in->name = name;
    in->chunk = chunk ? chunk : INPUT_CHUNK;
    in->line = 1;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) in->total = (uint64_t)st.st_size;
    in->buf = malloc(in->chunk);
    return in->buf ? 0 : -1;
}

void input_free(input *in) {
    free(in->buf);
    in->buf = NULL;
}

int input_fill(input *in) {
    if (in->eof) return 0;
    in->consumed += in->len;
    in->pos = in->len = 0;
    size_t got = fread(in->buf, 1, in->chunk, in->f);
    if (got == 0) {
        in->eof = 1;
        if (ferror(in->f)) in->read_errno = errno ? errno : EIO;
        return 0;
    }
    in->len = got;
    return 1;
}

int input_line(input *in, bytes *line) {
    bytes_clear(line);
    int any = 0;
    for (;;) {
        if (in->pos == in->len && !input_fill(in)) break;
        any = 1;
        const char *start = in->buf + in->pos;
        const char *nl = memchr(start, '\n', in->len - in->pos);
        size_t n = nl ? (size_t)(nl - start) : in->len - in->pos;
        if (bytes_append(line, start, n) != 0) return -1;
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
