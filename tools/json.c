/*
 * json.c -- the JSON-lines reader of `weir load` (json.h): a recursive
 * descent over one line that validates all of it and keeps only the
 * picked top-level members.
 */
#include "json.h"

#include <stdint.h>
#include <string.h>

typedef struct jparser {
    const char *p, *begin, *end;
    const char *err;
    size_t err_col;
} jparser;

static int jfail(jparser *j, const char *msg) {
    if (!j->err) {
        j->err = msg;
        j->err_col = (size_t)(j->p - j->begin) + 1;
    }
    return -1;
}

static void jws(jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')) j->p++;
}

static int jhex4(jparser *j, uint32_t *v) {
    if (j->end - j->p < 4) return jfail(j, "\\u needs four hex digits");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit((unsigned char)j->p[i]);
        if (d < 0) return jfail(j, "\\u needs four hex digits");
        *v = *v << 4 | (uint32_t)d;
    }
    j->p += 4;
    return 0;
}

/* A string at j->p (which is '"'); its unescaped bytes go to out if given. */
static int jstring(jparser *j, bytes *out) {
    j->p++;
    for (;;) {
        if (j->p >= j->end) return jfail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c < 0x20) return jfail(j, "control character inside a string (it must be escaped)");
        if (c != '\\') {
            const char *s = j->p;
            while (j->p < j->end && *j->p != '"' && *j->p != '\\' && (unsigned char)*j->p >= 0x20)
                j->p++;
            /* JSON text is UTF-8 (RFC 8259): bytes that are not would be
             * stored as they are, a key or value no JSON reader can read
             * back. A run ends only at ASCII, so no sequence is split. */
            if (!utf8_valid(s, (size_t)(j->p - s))) {
                j->p = s;
                return jfail(j, "a string holds bytes that are not valid UTF-8");
            }
            if (out && bytes_append(out, s, (size_t)(j->p - s)) != 0) return jfail(j, "out of memory");
            continue;
        }
        j->p++;
        if (j->p >= j->end) return jfail(j, "unterminated string");
        char e = *j->p++, ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (jhex4(j, &cp) != 0) return -1;
            if (cp >= 0xdc00 && cp <= 0xdfff) return jfail(j, "\\u escape is a lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                    return jfail(j, "\\u escape is a high surrogate without its low half");
                j->p += 2;
                if (jhex4(j, &lo) != 0) return -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return jfail(j, "\\u escape is a high surrogate without its low half");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (out && utf8_append(out, cp) != 0) return jfail(j, "out of memory");
            continue;
        }
        default:
            j->p--;
            return jfail(j, "invalid escape in a string");
        }
        if (out && bytes_append(out, &ch, 1) != 0) return jfail(j, "out of memory");
    }
}

static int jdigits(jparser *j) {
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > s ? 0 : jfail(j, "invalid number");
}

static int jnumber(jparser *j) {
    if (*j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (jdigits(j) != 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (jdigits(j) != 0) return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (jdigits(j) != 0) return -1;
    }
    return 0;
}

static int jliteral(jparser *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return jfail(j, "unexpected character (expected a JSON value)");
    j->p += n;
    return 0;
}

/* Any value at j->p (after white space); its JSON_* type into *type. */
static int jvalue(jparser *j, int depth, int *type);

/* An object or array at j->p; members of a top-level object (depth 0) are
 * matched against the fields. */
static int jcontainer(jparser *j, int depth, json_member *fields, int nfields, bytes *name) {
    char close = *j->p == '{' ? '}' : ']';
    if (depth >= JSON_MAX_DEPTH) return jfail(j, "nesting too deep");
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        jws(j);
        int type;
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"') return jfail(j, "expected a member name in double quotes");
            if (name) bytes_clear(name);
            if (jstring(j, name) != 0) return -1;
            jws(j);
            if (j->p >= j->end || *j->p != ':') return jfail(j, "expected ':' after a member name");
            j->p++;
            jws(j);
            int matched = 0;
            for (int i = 0; i < nfields && name; i++) {
                json_member *f = &fields[i];
                if (!f->name || strlen(f->name) != name->len ||
                    (name->len && memcmp(f->name, name->data, name->len) != 0))
                    continue;
                /* Two members of the same name: which one was meant is not
                 * known (readers disagree), so neither is taken. */
                if (f->found) return jfail(j, "a member the load uses appears twice in the object");
                if (!matched && j->p < j->end && *j->p == '"') {
                    /* Decode into the first matching field, copy to others. */
                    const char *start = j->p;
                    bytes_clear(&f->decoded);
                    if (jstring(j, &f->decoded) != 0) return -1;
                    f->raw = byte_view_of(start, (size_t)(j->p - start));
                    f->type = JSON_STRING;
                } else if (!matched) {
                    const char *start = j->p;
                    if (jvalue(j, depth + 1, &f->type) != 0) return -1;
                    f->raw = byte_view_of(start, (size_t)(j->p - start));
                } else {
                    f->raw = fields[matched - 1].raw;
                    f->type = fields[matched - 1].type;
                    if (bytes_set(&f->decoded, fields[matched - 1].decoded.data,
                                fields[matched - 1].decoded.len) != 0)
                        return jfail(j, "out of memory");
                }
                f->found = 1;
                matched = i + 1;
            }
            if (!matched && jvalue(j, depth + 1, &type) != 0) return -1;
        } else if (jvalue(j, depth + 1, &type) != 0) {
            return -1;
        }
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        return jfail(j, close == '}' ? "expected ',' or '}' in an object"
                                     : "expected ',' or ']' in an array");
    }
}

static int jvalue(jparser *j, int depth, int *type) {
    jws(j);
    if (j->p >= j->end) return jfail(j, "unexpected end of line (expected a JSON value)");
    switch (*j->p) {
    case '{': *type = JSON_OBJECT; return jcontainer(j, depth, NULL, 0, NULL);
    case '[': *type = JSON_ARRAY; return jcontainer(j, depth, NULL, 0, NULL);
    case '"': *type = JSON_STRING; return jstring(j, NULL);
    case 't': *type = JSON_LITERAL; return jliteral(j, "true");
    case 'f': *type = JSON_LITERAL; return jliteral(j, "false");
    case 'n': *type = JSON_LITERAL; return jliteral(j, "null");
    default:
        *type = JSON_NUMBER;
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) return jnumber(j);
        return jfail(j, "unexpected character (expected a JSON value)");
    }
}

int json_pick(byte_view line, json_member *members, int n, bytes *scratch, json_error *err) {
    jparser j;
    j.begin = j.p = line.data;
    j.end = line.data + line.len;
    j.err = NULL;
    j.err_col = 0;
    for (int i = 0; i < n; i++) members[i].found = 0;
    int rc = 0;
    jws(&j);
    if (j.p >= j.end || *j.p != '{') rc = jfail(&j, "each line must hold one JSON object");
    if (rc == 0) rc = jcontainer(&j, 0, members, n, scratch);
    if (rc == 0) {
        jws(&j);
        if (j.p != j.end) rc = jfail(&j, "unexpected text after the JSON object");
    }
    if (rc != 0) {
        err->message = j.err;
        err->column = j.err_col;
    }
    return rc;
}
