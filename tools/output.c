/*
 * output.c -- how the weir tool prints keys and values (cli.h): escaped
 * text, hex, and JSON strings.
 */
#include <stdint.h>

#include "cli.h"

void write_text(FILE *f, const char *data, size_t n) {
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

void write_hex(FILE *f, const char *data, size_t n) {
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

void write_json_member(FILE *f, const char *name, const char *data, size_t n) {
    if (utf8_valid(data, n)) {
        fprintf(f, "\"%s\":", name);
        write_json_string(f, data, n);
    } else {
        fprintf(f, "\"%s_hex\":\"", name);
        write_hex(f, data, n);
        fputc('"', f);
    }
}

void write_bytes(FILE *f, out_format fmt, const char *data, size_t n) {
    if (fmt == FMT_HEX)
        write_hex(f, data, n);
    else
        write_text(f, data, n);
}

void write_quoted(FILE *f, out_format fmt, const char *data, size_t len) {
    size_t n = len > 64 ? 64 : len;
    fputc('\'', f);
    write_bytes(f, fmt == FMT_HEX ? FMT_HEX : FMT_TEXT, data, n);
    fputs(len > n ? "...'" : "'", f);
}
