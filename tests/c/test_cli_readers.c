/* test_cli_readers.c -- the weir tool's input readers for `weir load`
 * (tools/json.c, tools/csv.c, tools/input.c), called directly: picked
 * members, every error message with its column, escapes and surrogates,
 * nesting depth, invalid UTF-8, a picked member named twice; CSV quoting,
 * line numbers, blank lines, CRLF, delimiters, and records that cross the
 * input's read pieces. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "input.h"
#include "json.h"
#include "testutil.h"

static int view_is(byte_view v, const char *s, size_t n) {
    return v.len == n && (n == 0 || memcmp(v.data, s, n) == 0);
}
#define VIEW_IS(v, lit) view_is((v), (lit), sizeof(lit) - 1)

/* ---- JSON lines ---------------------------------------------------------- */

/* Pick key and value from a line (NUL-free literal). */
typedef struct picked {
    json_member m[2];
    bytes scratch;
    json_error err;
    int rc;
} picked;

static void pick(picked *p, const char *line, size_t len, const char *key, const char *value) {
    memset(p, 0, sizeof *p);
    p->m[0].name = key;
    p->m[1].name = value;
    p->rc = json_pick(byte_view_of(line, len), p->m, 2, &p->scratch, &p->err);
}
#define PICK(p, lit, k, v) pick((p), (lit), sizeof(lit) - 1, (k), (v))

static void unpick(picked *p) {
    bytes_free(&p->m[0].decoded);
    bytes_free(&p->m[1].decoded);
    bytes_free(&p->scratch);
}

TEST(json_picks_top_level_members) {
    picked p;
    PICK(&p, "  {\"id\": 7, \"key\": \"e2\", \"nested\": {\"key\": [1, 2, {\"b\": null}]}, \"s\": true} ", "key",
         "nested");
    int ok = p.rc == 0 && p.m[0].found && p.m[0].type == JSON_STRING && VIEW_IS(p.m[0].raw, "\"e2\"") &&
             p.m[0].decoded.len == 2 && memcmp(p.m[0].decoded.data, "e2", 2) == 0 && p.m[1].found &&
             p.m[1].type == JSON_OBJECT && VIEW_IS(p.m[1].raw, "{\"key\": [1, 2, {\"b\": null}]}");
    unpick(&p);
    CHECK(ok);
    /* A number is kept as its text; a missing member is not found. */
    PICK(&p, "{\"key\":-12.5e+3,\"v\":[]}", "key", "value");
    ok = p.rc == 0 && p.m[0].found && p.m[0].type == JSON_NUMBER && VIEW_IS(p.m[0].raw, "-12.5e+3") &&
         !p.m[1].found;
    unpick(&p);
    CHECK(ok);
    /* Literals and arrays have their types; a member nested deeper with
     * the picked name does not count. */
    PICK(&p, "{\"a\":{\"key\":1},\"key\":null,\"value\":[1,\"x\"]}", "key", "value");
    ok = p.rc == 0 && p.m[0].type == JSON_LITERAL && VIEW_IS(p.m[0].raw, "null") && p.m[1].type == JSON_ARRAY &&
         VIEW_IS(p.m[1].raw, "[1,\"x\"]");
    unpick(&p);
    CHECK(ok);
    /* The same name picked twice: both get the value. */
    PICK(&p, "{\"k\":\"a\\tb\"}", "k", "k");
    ok = p.rc == 0 && p.m[0].found && p.m[1].found && p.m[1].type == JSON_STRING &&
         p.m[1].decoded.len == 3 && memcmp(p.m[1].decoded.data, "a\tb", 3) == 0 &&
         VIEW_IS(p.m[1].raw, "\"a\\tb\"");
    unpick(&p);
    CHECK(ok);
    /* A member not picked may be named twice. */
    PICK(&p, "{\"x\":1,\"x\":2,\"key\":\"a\"}", "key", NULL);
    ok = p.rc == 0 && p.m[0].found && !p.m[1].found;
    unpick(&p);
    CHECK(ok);
    /* Found flags are reset for every line. */
    memset(&p, 0, sizeof p);
    p.m[0].name = "key";
    int rc1 = json_pick(byte_view_of("{\"key\":1}", 9), p.m, 1, &p.scratch, &p.err);
    int rc2 = json_pick(byte_view_of("{\"other\":1}", 11), p.m, 1, &p.scratch, &p.err);
    ok = rc1 == 0 && rc2 == 0 && !p.m[0].found;
    unpick(&p);
    CHECK(ok);
}

TEST(json_escapes_and_surrogates_decode_to_utf8) {
    picked p;
    PICK(&p, "{\"key\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u0000.\"}", "key", NULL);
    static const char want[] = "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0.";
    int ok = p.rc == 0 && p.m[0].decoded.len == sizeof want - 1 &&
             memcmp(p.m[0].decoded.data, want, sizeof want - 1) == 0;
    unpick(&p);
    CHECK(ok);
    /* Raw UTF-8 of every length passes through unchanged. */
    PICK(&p, "{\"key\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", "key", NULL);
    ok = p.rc == 0 && view_is(bytes_view(&p.m[0].decoded), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14);
    unpick(&p);
    CHECK(ok);
    /* The highest code point, as a surrogate pair. */
    PICK(&p, "{\"key\":\"\\udbff\\udfff\"}", "key", NULL);
    ok = p.rc == 0 && view_is(bytes_view(&p.m[0].decoded), "\xf4\x8f\xbf\xbf", 4);
    unpick(&p);
    CHECK(ok);
}

/* Every refusal: the line, the message and the 1-based column. */
typedef struct refusal {
    const char *line;
    const char *message;
    size_t column;
} refusal;

static const refusal refusals[] = {
    {"", "each line must hold one JSON object", 1},
    {"  [\"key\"]", "each line must hold one JSON object", 3},
    {"\"key\"", "each line must hold one JSON object", 1},
    {"{\"key\":\"x\"} trailing", "unexpected text after the JSON object", 13},
    {"{\"key\":\"x\"}{}", "unexpected text after the JSON object", 12},
    {"{\"key\":\"abc", "unterminated string", 12},
    {"{\"key\":\"abc\\", "unterminated string", 13},
    {"{\"key\":\"a\tb\"}", "control character inside a string (it must be escaped)", 10},
    {"{\"key\":\"\\q\"}", "invalid escape in a string", 10},
    {"{\"key\":\"\\u12\"}", "\\u needs four hex digits", 11},
    {"{\"key\":\"\\u12g4\"}", "\\u needs four hex digits", 11},
    {"{\"key\":\"\\udc00\"}", "\\u escape is a lone low surrogate", 15},
    {"{\"key\":\"\\ud800\"}", "\\u escape is a high surrogate without its low half", 15},
    {"{\"key\":\"\\ud800\\u0041\"}", "\\u escape is a high surrogate without its low half", 21},
    {"{\"key\":\"\\ud800\\u00\"}", "\\u needs four hex digits", 17},
    {"{\"key\":-}", "invalid number", 9},
    {"{\"key\":1.}", "invalid number", 10},
    {"{\"key\":1e}", "invalid number", 10},
    {"{\"key\":1e+}", "invalid number", 11},
    {"{\"key\":01}", "expected ',' or '}' in an object", 9},
    {"{\"key\":+1}", "unexpected character (expected a JSON value)", 8},
    {"{\"key\":tru}", "unexpected character (expected a JSON value)", 8},
    {"{\"key\":nul", "unexpected character (expected a JSON value)", 8},
    {"{\"key\":}", "unexpected character (expected a JSON value)", 8},
    {"{\"key\":", "unexpected end of line (expected a JSON value)", 8},
    {"{\"key\":[1,]}", "unexpected character (expected a JSON value)", 11},
    {"{\"key\":\"x\",}", "expected a member name in double quotes", 12},
    {"{key:1}", "expected a member name in double quotes", 2},
    {"{\"key\" \"x\"}", "expected ':' after a member name", 8},
    {"{\"key\":\"x\" \"v\":1}", "expected ',' or '}' in an object", 12},
    {"{\"key\":\"x\"", "expected ',' or '}' in an object", 11},
    {"{\"key\":[1 2]}", "expected ',' or ']' in an array", 11},
    {"{\"key\":[1", "expected ',' or ']' in an array", 10},
    {"{\"key\":\"a\",\"key\":\"b\"}", "a member the load uses appears twice in the object", 18},
    {"{\"value\":1,\"key\":\"k\",\"value\":[2]}", "a member the load uses appears twice in the object", 30},
    {"{\"key\":\"ok\",\"other\":\"a\xff\"}", "a string holds bytes that are not valid UTF-8", 22},
    {"{\"key\":\"\xc0\x80\"}", "a string holds bytes that are not valid UTF-8", 9},         /* overlong */
    {"{\"key\":\"\xed\xa0\x80\"}", "a string holds bytes that are not valid UTF-8", 9},     /* a surrogate */
    {"{\"key\":\"\xf4\x90\x80\x80\"}", "a string holds bytes that are not valid UTF-8", 9}, /* > U+10FFFF */
    {"{\"key\":\"ab\xe2\x82\"}", "a string holds bytes that are not valid UTF-8", 9},       /* cut short */
    {"{\"key\":\"\\n\x80\"}", "a string holds bytes that are not valid UTF-8", 11},          /* after an escape */
    {"{\"k\":[\"\xfe\"]}", "a string holds bytes that are not valid UTF-8", 8},              /* nested */
    {"{\"\xff\":1}", "a string holds bytes that are not valid UTF-8", 3},                   /* a member name */
};

TEST(json_every_refusal_with_its_column) {
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        const refusal *r = &refusals[i];
        picked p;
        pick(&p, r->line, strlen(r->line), "key", "value");
        int ok = p.rc == -1 && p.err.message && strcmp(p.err.message, r->message) == 0 &&
                 p.err.column == r->column;
        if (!ok)
            fprintf(stderr, "line %s: rc %d, \"%s\" at column %zu; want \"%s\" at column %zu\n", r->line, p.rc,
                    p.err.message ? p.err.message : "(none)", p.err.column, r->message, r->column);
        unpick(&p);
        CHECK(ok);
    }
}

/* {"key":"x","d": then `depth` arrays, closed. */
static char *nested_line(int depth) {
    static const char head[] = "{\"key\":\"x\",\"d\":";
    size_t n = sizeof head - 1;
    char *s = malloc(n + 2 * (size_t)depth + 2);
    if (!s) abort();
    memcpy(s, head, n);
    for (int i = 0; i < depth; i++) s[n + (size_t)i] = '[';
    for (int i = 0; i < depth; i++) s[n + (size_t)depth + (size_t)i] = ']';
    s[n + 2 * (size_t)depth] = '}';
    s[n + 2 * (size_t)depth + 1] = '\0';
    return s;
}

TEST(json_nesting_deeper_than_the_limit_is_refused) {
    /* The line's object is level 0, so JSON_MAX_DEPTH - 1 arrays inside
     * it are the most allowed. */
    char *ok_line = nested_line(JSON_MAX_DEPTH - 1), *deep = nested_line(JSON_MAX_DEPTH);
    char *far = nested_line(100000); /* no stack overflow either */
    picked a, b, c;
    pick(&a, ok_line, strlen(ok_line), "key", "d");
    pick(&b, deep, strlen(deep), "key", "d");
    pick(&c, far, strlen(far), "key", "d");
    size_t first = strlen("{\"key\":\"x\",\"d\":") + 1;
    int ok_a = a.rc == 0 && a.m[1].type == JSON_ARRAY && a.m[1].raw.len == 2 * (JSON_MAX_DEPTH - 1);
    int ok_b = b.rc == -1 && strcmp(b.err.message, "nesting too deep") == 0 &&
               b.err.column == first + JSON_MAX_DEPTH - 1;
    int ok_c = c.rc == -1 && strcmp(c.err.message, "nesting too deep") == 0 && c.err.column == b.err.column;
    unpick(&a);
    unpick(&b);
    unpick(&c);
    free(ok_line);
    free(deep);
    free(far);
    CHECK(ok_a);
    CHECK(ok_b);
    CHECK(ok_c);
}

/* ---- input and CSV -------------------------------------------------------------- */

/* A FILE holding exactly these bytes. */
static FILE *file_of(const char *data, size_t n) {
    FILE *f = tmpfile();
    if (!f || fwrite(data, 1, n, f) != n || fseek(f, 0, SEEK_SET) != 0) abort();
    return f;
}

typedef struct csv_case {
    FILE *f;
    input in;
    csv_record rec;
} csv_case;

static void csv_open(csv_case *c, const char *data, size_t n, size_t chunk) {
    memset(c, 0, sizeof *c);
    c->f = file_of(data, n);
    if (input_init(&c->in, c->f, "test.csv", chunk) != 0) abort();
}

static void csv_close(csv_case *c) {
    csv_record_free(&c->rec);
    input_free(&c->in);
    fclose(c->f);
}

/* The records of data, as "line:field|field|...;" (fields shown as they
 * are), read in pieces of `chunk` bytes; or "line:ERR message". */
static void csv_render(const char *data, size_t n, int delim, size_t chunk, char *out, size_t cap) {
    csv_case c;
    csv_open(&c, data, n, chunk);
    size_t o = 0;
    out[0] = '\0';
    for (;;) {
        uint64_t line = 0;
        const char *err = NULL;
        int got = csv_read(&c.in, delim, &c.rec, &line, &err);
        if (got == 0) break;
        if (got < 0) {
            o += (size_t)snprintf(out + o, cap - o, "%llu:ERR %s;", (unsigned long long)line, err);
            break;
        }
        o += (size_t)snprintf(out + o, cap - o, "%llu:", (unsigned long long)line);
        for (size_t i = 0; i < c.rec.nfields && o < cap; i++) {
            byte_view f = csv_field(&c.rec, i);
            o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? "|" : "", (int)f.len, f.data ? f.data : "");
        }
        o += (size_t)snprintf(out + o, cap - o, ";");
        if (o >= cap) abort();
    }
    csv_close(&c);
}

typedef struct csv_expect {
    const char *data;
    int delim;
    const char *want;
} csv_expect;

static const csv_expect csv_cases[] = {
    {"a,b\nc,d\n", ',', "1:a|b;2:c|d;"},
    {"a,b", ',', "1:a|b;"},                                   /* no final newline */
    {"a,b\r\nc,d\r\n", ',', "1:a|b;2:c|d;"},                 /* CRLF */
    {"a\rb,c\n", ',', "1:a\rb|c;"},                          /* a lone CR is data */
    {"\n\na,b\n\n\nc\n", ',', "3:a|b;6:c;"},                 /* blank lines skipped */
    {"\"\"\n,\n", ',', "1:;2:|;"},                            /* "" is a record, not a blank line */
    {"\"a,b\",\"c\"\"d\"\n", ',', "1:a,b|c\"d;"},            /* delimiter and quote inside quotes */
    {"1,\"two\nlines\",x\n2,y\n", ',', "1:1|two\nlines|x;3:2|y;"}, /* a record over two lines */
    {"\"q\"\r\n\"r\"", ',', "1:q;2:r;"},                     /* CRLF and EOF after a closing quote */
    {",,\n", ',', "1:||;"},
    {"a;b,c\n", ';', "1:a|b,c;"},
    {"a\tb c\n", '\t', "1:a|b c;"},
    {"a,\"b\n", ',', "1:ERR unterminated quoted field (its closing '\"' is missing);"},
    {"x\ny\na,\"b\nc\nd", ',', "1:x;2:y;3:ERR unterminated quoted field (its closing '\"' is missing);"},
    {"ok\n\"b\"x,c\n", ',',
     "1:ok;2:ERR unexpected character after a closing quote (a quote inside a quoted field is written \"\");"},
    {"\"a\nb\"c\n", ',',
     "2:ERR unexpected character after a closing quote (a quote inside a quoted field is written \"\");"},
    {"a\"b,c\n", ',', "1:a\"b|c;"},                          /* a quote inside an unquoted field is data */
    {"", ',', ""},
};

TEST(csv_quoting_lines_and_errors) {
    char got[512];
    for (size_t i = 0; i < sizeof csv_cases / sizeof csv_cases[0]; i++) {
        const csv_expect *e = &csv_cases[i];
        /* The same answer whatever the read piece size. */
        static const size_t chunks[] = {INPUT_CHUNK, 1, 2, 3, 7};
        for (size_t j = 0; j < sizeof chunks / sizeof chunks[0]; j++) {
            csv_render(e->data, strlen(e->data), e->delim, chunks[j], got, sizeof got);
            int ok = strcmp(got, e->want) == 0;
            if (!ok) fprintf(stderr, "case %zu, chunk %zu: got [%s], want [%s]\n", i, chunks[j], got, e->want);
            CHECK(ok);
        }
    }
}

TEST(csv_fields_may_hold_any_byte) {
    static const char data[] = "\"a\0b\",\xff\xfe\n";
    csv_case c;
    csv_open(&c, data, sizeof data - 1, 2);
    uint64_t line = 0;
    const char *err = NULL;
    int got_rc = csv_read(&c.in, ',', &c.rec, &line, &err);
    int ok = got_rc == 1 && c.rec.nfields == 2 && view_is(csv_field(&c.rec, 0), "a\0b", 3) &&
             view_is(csv_field(&c.rec, 1), "\xff\xfe", 2);
    csv_close(&c);
    CHECK(ok);
}

TEST(csv_read_error_is_left_for_the_caller) {
    /* Reading a directory fails with EISDIR: the reader stops as at the
     * end, and says why in read_errno. */
    char dir[256];
    test_tmpdir(dir, sizeof dir, "cli_readers_dir");
    FILE *f = fopen(dir, "rb");
    int rc = -2, read_errno = 0;
    if (f) {
        input in;
        csv_record rec;
        memset(&rec, 0, sizeof rec);
        if (input_init(&in, f, dir, 0) != 0) abort();
        uint64_t line = 0;
        const char *err = NULL;
        rc = csv_read(&in, ',', &rec, &line, &err);
        read_errno = in.read_errno;
        csv_record_free(&rec);
        input_free(&in);
        fclose(f);
    }
    test_rmtree(dir);
    CHECK(f != NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(read_errno, EISDIR);
}

TEST(input_lines_offsets_and_size) {
    static const char data[] = "first\r\n\nthird line\nlast";
    FILE *f = file_of(data, sizeof data - 1);
    input in;
    CHECK_EQ_INT(input_init(&in, f, "x", 3), 0);
    bytes line = BYTES_INIT;
    char got[128] = "";
    size_t o = 0;
    int rc;
    uint64_t lines[8], n = 0;
    while (n < 8 && (lines[n] = in.line, rc = input_line(&in, &line)) == 1) {
        o += (size_t)snprintf(got + o, sizeof got - o, "[%.*s]", (int)line.len, line.data ? line.data : "");
        n++;
    }
    uint64_t total = in.total, offset = input_offset(&in);
    bytes_free(&line);
    input_free(&in);
    fclose(f);
    CHECK_EQ_INT(rc, 0);
    CHECK(strcmp(got, "[first][][third line][last]") == 0);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(lines[0], 1);
    CHECK_EQ_INT(lines[2], 3);
    CHECK_EQ_INT(lines[3], 4);
    CHECK_EQ_INT(total, sizeof data - 1);
    CHECK_EQ_INT(offset, sizeof data - 1);
}

/* ---- bytes ---------------------------------------------------------------------- */

TEST(bytes_buffer_and_utf8_checks) {
    bytes b = BYTES_INIT;
    CHECK_EQ_INT(bytes_append(&b, "hello", 5), 0);
    CHECK_EQ_INT(bytes_set(&b, b.data + 1, 3), 0); /* from inside itself */
    int ok = b.len == 3 && memcmp(b.data, "ell", 3) == 0;
    for (int i = 0; ok && i < 10000; i++) ok = bytes_append(&b, "0123456789", 10) == 0;
    ok = ok && b.len == 100003 && memcmp(b.data + 100003 - 10, "0123456789", 10) == 0;
    bytes_free(&b);
    CHECK(ok);
    CHECK(b.data == NULL && b.len == 0);
    CHECK(utf8_valid("", 0));
    CHECK(utf8_valid("plain ascii", 11));
    CHECK(utf8_valid("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 18));
    CHECK(!utf8_valid("\xc1\xbf", 2));             /* overlong 2-byte */
    CHECK(!utf8_valid("\xe0\x9f\xbf", 3));         /* overlong 3-byte */
    CHECK(!utf8_valid("\xf0\x8f\xbf\xbf", 4));     /* overlong 4-byte */
    CHECK(!utf8_valid("\xed\xbf\xbf", 3));         /* a surrogate */
    CHECK(!utf8_valid("\xf4\x90\x80\x80", 4));     /* past U+10FFFF */
    CHECK(!utf8_valid("\xe2\x82", 2));             /* cut short */
    CHECK(!utf8_valid("\x80", 1));                 /* a lone continuation byte */
    CHECK(!utf8_valid("\xe2\x28\xa1", 3));         /* a bad continuation byte */
    bytes u = BYTES_INIT;
    ok = utf8_append(&u, 0x41) == 0 && utf8_append(&u, 0x7ff) == 0 && utf8_append(&u, 0xffff) == 0 &&
         utf8_append(&u, 0x10ffff) == 0;
    ok = ok && view_is(bytes_view(&u), "A\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf", 10);
    bytes_free(&u);
    CHECK(ok);
    CHECK_EQ_INT(hex_digit('0'), 0);
    CHECK_EQ_INT(hex_digit('F'), 15);
    CHECK_EQ_INT(hex_digit('a'), 10);
    CHECK_EQ_INT(hex_digit('g'), -1);
}

static const test_case tests[] = {
    TEST_ENTRY(json_picks_top_level_members),
    TEST_ENTRY(json_escapes_and_surrogates_decode_to_utf8),
    TEST_ENTRY(json_every_refusal_with_its_column),
    TEST_ENTRY(json_nesting_deeper_than_the_limit_is_refused),
    TEST_ENTRY(csv_quoting_lines_and_errors),
    TEST_ENTRY(csv_fields_may_hold_any_byte),
    TEST_ENTRY(csv_read_error_is_left_for_the_caller),
    TEST_ENTRY(input_lines_offsets_and_size),
    TEST_ENTRY(bytes_buffer_and_utf8_checks),
    TEST_END,
};

int main(int argc, char **argv) { return test_main(argc, argv, tests); }
