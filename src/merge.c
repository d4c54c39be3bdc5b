/*
 * merge.c -- the built-in merge operators and the fold that applies a
 * key's operands to its base value (see merge.h for the encodings).
 */
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define LIST_MAX_BOUND 1000000u

static int is_numeric(int op) { return op >= WEIR_MERGE_INT64_ADD && op <= WEIR_MERGE_FLOAT64_MIN; }

static const char *op_name(int op) {
    switch (op) {
    case WEIR_MERGE_INT64_ADD: return "int64 add";
    case WEIR_MERGE_INT64_MAX: return "int64 max";
    case WEIR_MERGE_INT64_MIN: return "int64 min";
    case WEIR_MERGE_FLOAT64_ADD: return "float64 add";
    case WEIR_MERGE_FLOAT64_MAX: return "float64 max";
    case WEIR_MERGE_FLOAT64_MIN: return "float64 min";
    case WEIR_MERGE_BYTES_MAX: return "bytes max";
    case WEIR_MERGE_BYTES_MIN: return "bytes min";
    case WEIR_MERGE_LIST_APPEND: return "list append";
    default: return "user operator";
    }
}

int merge_check_operand(const merge_registry *reg, slice operand) {
    if (operand.len < 1) return weir_set_error(WEIR_INVALID, "merge operand is empty");
    int op = (unsigned char)operand.data[0];
    size_t plen = operand.len - 1;
    if (is_numeric(op)) {
        if (plen != 8)
            return weir_set_error(WEIR_INVALID, "%s operand must be 8 bytes, not %zu", op_name(op), plen);
        return WEIR_OK;
    }
    if (op == WEIR_MERGE_BYTES_MAX || op == WEIR_MERGE_BYTES_MIN) return WEIR_OK;
    if (op == WEIR_MERGE_LIST_APPEND) {
        if (plen < 4) return weir_set_error(WEIR_INVALID, "list append operand is too short");
        uint32_t bound = decode_fixed32(operand.data + 1);
        if (bound < 1 || bound > LIST_MAX_BOUND)
            return weir_set_error(WEIR_INVALID, "list bound %u is out of range [1, %u]", bound,
                                  LIST_MAX_BOUND);
        return WEIR_OK;
    }
    if (op >= MERGE_USER_FIRST) {
        if (reg && !reg->user[op - MERGE_USER_FIRST].registered)
            return weir_set_error(WEIR_INVALID, "merge operator %d is not registered "
                                                "(weir_options_set_merge_operator)", op);
        return WEIR_OK;
    }
    return weir_set_error(WEIR_INVALID, "unknown merge operator %d", op);
}

/* ---- numeric ----------------------------------------------------------- */

static int64_t get_i64(const char *p) { return (int64_t)decode_fixed64(p); }

static double get_f64(const char *p) {
    uint64_t bits = decode_fixed64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void put_f64(char *p, double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    encode_fixed64(p, bits);
}

/* Apply one numeric operand payload to acc (8 bytes, in place). */
static void numeric_apply(int op, char *acc, const char *payload) {
    switch (op) {
    case WEIR_MERGE_INT64_ADD:
        /* Wrap around like unsigned arithmetic instead of overflowing. */
        encode_fixed64(acc, decode_fixed64(acc) + decode_fixed64(payload));
        break;
    case WEIR_MERGE_INT64_MAX:
        if (get_i64(payload) > get_i64(acc)) memcpy(acc, payload, 8);
        break;
    case WEIR_MERGE_INT64_MIN:
        if (get_i64(payload) < get_i64(acc)) memcpy(acc, payload, 8);
        break;
    case WEIR_MERGE_FLOAT64_ADD:
        put_f64(acc, get_f64(acc) + get_f64(payload));
        break;
    case WEIR_MERGE_FLOAT64_MAX:
        if (get_f64(payload) > get_f64(acc)) memcpy(acc, payload, 8);
        break;
    case WEIR_MERGE_FLOAT64_MIN:
        if (get_f64(payload) < get_f64(acc)) memcpy(acc, payload, 8);
        break;
    }
}

/* ---- lists ------------------------------------------------------------- */

int weir_list_next(const void *value, size_t vlen, size_t *offset, const void **item, size_t *ilen) {
    if (!value || !offset || *offset >= vlen) return 0;
    const char *base = value;
    slice s;
    const char *p = decode_length_prefixed(base + *offset, base + vlen, &s);
    if (!p) return 0;
    *item = s.data;
    *ilen = s.len;
    *offset = (size_t)(p - base);
    return 1;
}

/* Count items of an encoded item sequence; -1 if malformed. */
static long list_count(slice items) {
    long n = 0;
    size_t off = 0;
    const void *it;
    size_t il;
    while (off < items.len) {
        if (!weir_list_next(items.data, items.len, &off, &it, &il)) return -1;
        n++;
    }
    return n;
}

/* Append `items` to out (a list) and keep only the newest `bound` items. */
static int list_append_bounded(buf *out, slice items, uint32_t bound) {
    if (buf_append(out, items.data, items.len) != 0) return -1;
    long n = list_count(buf_slice(out));
    if (n < 0) return -2;
    size_t off = 0;
    const void *it;
    size_t il;
    for (long drop = n - (long)bound; drop > 0; drop--) weir_list_next(out->data, out->len, &off, &it, &il);
    if (off) {
        memmove(out->data, out->data + off, out->len - off);
        out->len -= off;
    }
    return 0;
}

/* ---- the fold ---------------------------------------------------------- */

static int mismatch(slice key, int op, const char *what) {
    return weir_set_error(WEIR_INVALID, "merge on key \"%.*s\" (%zu bytes): %s operator %s",
                          (int)(key.len > 64 ? 64 : key.len), key.data, key.len, op_name(op), what);
}

int merge_full(const merge_registry *reg, slice key, int has_base, slice base, const slice *operands,
               size_t n, buf *out) {
    buf_clear(out);
    if (has_base && buf_set(out, base.data, base.len) != 0)
        return weir_set_error(WEIR_NO_MEMORY, "out of memory folding merge operands");
    int have = has_base;
    for (size_t i = 0; i < n; i++) {
        slice operand = operands[i];
        int rc = merge_check_operand(reg, operand);
        if (rc != WEIR_OK) return weir_wrap_error(rc, "merge on key \"%.*s\"", (int)(key.len > 64 ? 64 : key.len), key.data);
        int op = (unsigned char)operand.data[0];
        slice payload = slice_make(operand.data + 1, operand.len - 1);
        if (is_numeric(op)) {
            if (!have) {
                if (buf_set(out, payload.data, 8) != 0) return WEIR_NO_MEMORY;
            } else {
                if (out->len != 8) {
                    char why[96];
                    snprintf(why, sizeof why, "needs an 8-byte value but the key holds %zu bytes", out->len);
                    return mismatch(key, op, why);
                }
                numeric_apply(op, out->data, payload.data);
            }
        } else if (op == WEIR_MERGE_BYTES_MAX || op == WEIR_MERGE_BYTES_MIN) {
            int cmp = have ? slice_compare(payload, buf_slice(out)) : 0;
            if (!have || (op == WEIR_MERGE_BYTES_MAX ? cmp > 0 : cmp < 0))
                if (buf_set(out, payload.data, payload.len) != 0) return WEIR_NO_MEMORY;
        } else if (op == WEIR_MERGE_LIST_APPEND) {
            uint32_t bound = decode_fixed32(payload.data);
            slice items = slice_make(payload.data + 4, payload.len - 4);
            if (!have) buf_clear(out);
            else if (list_count(buf_slice(out)) < 0)
                return mismatch(key, op, "found a value that is not a list");
            int r = list_append_bounded(out, items, bound);
            if (r == -1) return weir_set_error(WEIR_NO_MEMORY, "out of memory folding a list");
            if (r == -2) return mismatch(key, op, "found a malformed list operand");
        } else {
            const merge_user_op *u = &reg->user[op - MERGE_USER_FIRST];
            void *result = NULL;
            size_t rlen = 0;
            weir_set_error(WEIR_INVALID, "user merge operator %d failed", op);
            rc = u->fn(u->arg, key.data, key.len, have ? out->data : NULL, have ? out->len : 0,
                       payload.data, payload.len, &result, &rlen);
            if (rc != WEIR_OK) {
                free(result);
                return weir_wrap_error(rc == WEIR_OK ? WEIR_INVALID : rc, "merge on key \"%.*s\"",
                                       (int)(key.len > 64 ? 64 : key.len), key.data);
            }
            int failed = buf_set(out, result ? result : "", result ? rlen : 0) != 0;
            free(result);
            if (failed) return weir_set_error(WEIR_NO_MEMORY, "out of memory folding merge operands");
        }
        have = 1;
    }
    return WEIR_OK;
}

int merge_partial(const slice *operands, size_t n, buf *out) {
    if (n == 0 || operands[0].len < 1) return 0;
    int op = (unsigned char)operands[0].data[0];
    if (op >= MERGE_USER_FIRST) return 0; /* associativity is not promised */
    /* Float addition rounds differently once regrouped ((b + x) + y is not
     * b + (x + y)), and NaN makes float max/min order-dependent: combining
     * them here would let a compaction change what reads return. */
    if (op >= WEIR_MERGE_FLOAT64_ADD && op <= WEIR_MERGE_FLOAT64_MIN) return 0;
    for (size_t i = 0; i < n; i++) {
        if (merge_check_operand(NULL, operands[i]) != WEIR_OK || (unsigned char)operands[i].data[0] != op)
            return 0;
        /* Trimming a list to bound b and then to a bound <= b is the same
         * as trimming once to the smaller bound, so operands combine only
         * while bounds never grow: a larger newer bound would resurrect
         * items of the base that an older, smaller bound had dropped. */
        if (op == WEIR_MERGE_LIST_APPEND && i > 0 &&
            decode_fixed32(operands[i].data + 1) > decode_fixed32(operands[i - 1].data + 1))
            return 0;
    }
    buf_clear(out);
    char opbyte = (char)op;
    if (buf_append(out, &opbyte, 1) != 0) return 0;
    if (op == WEIR_MERGE_LIST_APPEND) {
        /* The newest operand's bound applies to the combined items. */
        uint32_t bound = decode_fixed32(operands[n - 1].data + 1);
        char b4[4];
        encode_fixed32(b4, bound);
        if (buf_append(out, b4, 4) != 0) return 0;
        buf items = BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            slice payload = slice_make(operands[i].data + 5, operands[i].len - 5);
            if (list_append_bounded(&items, payload, bound) != 0) {
                buf_free(&items);
                return 0;
            }
        }
        int failed = buf_append(out, items.data ? items.data : "", items.len) != 0;
        buf_free(&items);
        return !failed;
    }
    /* Numeric and bytes operators: the fold of the operands is itself a
     * valid operand payload. */
    buf acc = BUF_INIT;
    int rc = merge_full(NULL, slice_make("", 0), 0, slice_make(NULL, 0), operands, n, &acc);
    int ok = rc == WEIR_OK && buf_append(out, acc.data ? acc.data : "", acc.len) == 0;
    buf_free(&acc);
    return ok;
}
