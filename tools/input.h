/*
 * input.h -- the weir tool's buffered reading of a load file (or stdin)
 * with the line number and byte offset its messages and progress bar
 * need. The CSV and JSON-lines readers read through it.
 */
#ifndef WEIR_TOOL_INPUT_H
#define WEIR_TOOL_INPUT_H

#include <stdint.h>
#include <stdio.h>

#include "bytes.h"

#define INPUT_CHUNK (256 * 1024)

typedef struct input {
    FILE *f;
    const char *name;  /* for messages */
    char *buf;
    size_t chunk;      /* bytes read at a time */
    size_t pos, len;
    int eof;
    int read_errno;    /* set when reading failed: the data ends early */
    uint64_t consumed; /* bytes taken before buf (for the progress bar) */
    uint64_t total;    /* file size when f is a regular file, else 0 */
    uint64_t line;     /* line number of the next byte (1-based) */
} input;

/* Read f (not closed by input_free) in pieces of `chunk` bytes
 * (INPUT_CHUNK; tests use small ones to cross piece boundaries). 0, or -1
 * when memory runs out. */
int input_init(input *in, FILE *f, const char *name, size_t chunk);
void input_free(input *in);

/* Read the next piece; 0 at end of input or on a read error. */
int input_fill(input *in);

/* The next byte (EOF at the end), counting lines. */
static inline int input_getc(input *in) {
    if (in->pos == in->len && !input_fill(in)) return EOF;
    int c = (unsigned char)in->buf[in->pos++];
    if (c == '\n') in->line++;
    return c;
}

/* The next byte without taking it (EOF at the end). */
static inline int input_peek(input *in) {
    if (in->pos == in->len && !input_fill(in)) return EOF;
    return (unsigned char)in->buf[in->pos];
}

/* Bytes taken so far. */
static inline uint64_t input_offset(const input *in) { return in->consumed + in->pos; }

/* The next line without its newline (nor a CR before it) into line.
 * 1: a line, 0: end of input, -1: out of memory. */
int input_line(input *in, bytes *line);

#endif
