/*
 * batch.c -- weir_batch_* and the batch encoding (see batch.h).
 */
#include "batch.h"

#include <stdlib.h>

#include "dbformat.h"
#include "merge.h"
#include "status.h"

int batch_rep_init(buf *b) {
    buf_clear(b);
    char header[BATCH_HEADER_SIZE] = {0};
    return buf_append(b, header, sizeof header);
}

weir_batch *weir_batch_create(void) {
    weir_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    if (batch_rep_init(&b->rep) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

void weir_batch_destroy(weir_batch *b) {
    if (!b) return;
    buf_free(&b->rep);
    free(b);
}

void weir_batch_clear(weir_batch *b) {
    if (!b) return;
    batch_rep_init(&b->rep); /* header fits in the existing buffer */
    b->relative_ttls = 0;
    b->user_merges = 0;
}

size_t weir_batch_count(const weir_batch *b) {
    return b ? batch_rep_count(buf_slice(&b->rep)) : 0;
}

size_t weir_batch_bytes(const weir_batch *b) { return b ? b->rep.len : 0; }

static int check_key(const void *key, size_t klen) {
    if (!key && klen) return weir_set_error(WEIR_INVALID, "key is NULL but its length is %zu", klen);
    if (klen > WEIR_MAX_KEY_SIZE)
        return weir_set_error(WEIR_INVALID, "key of %zu bytes exceeds the limit of %u bytes",
                              klen, WEIR_MAX_KEY_SIZE);
    return WEIR_OK;
}

static int check_value(const void *val, size_t vlen) {
    if (!val && vlen) return weir_set_error(WEIR_INVALID, "value is NULL but its length is %zu", vlen);
    if (vlen > WEIR_MAX_VALUE_SIZE)
        return weir_set_error(WEIR_INVALID, "value of %zu bytes exceeds the limit of %u bytes",
                              vlen, WEIR_MAX_VALUE_SIZE);
    return WEIR_OK;
}

/* Append one op; on OOM the rep is rolled back to where it was. */
static int append_op(weir_batch *b, int type, const void *key, size_t klen, const void *val,
                     size_t vlen) {
    size_t old_len = b->rep.len;
    char type_byte = (char)type;
    int failed = buf_append(&b->rep, &type_byte, 1) ||
                 buf_put_length_prefixed(&b->rep, slice_make(key, klen));
    if (!failed && type != TYPE_DELETION) failed = buf_put_length_prefixed(&b->rep, slice_make(val, vlen));
    if (failed) {
        b->rep.len = old_len;
        return weir_set_error(WEIR_NO_MEMORY, "out of memory growing a write batch to %zu bytes",
                              old_len + klen + vlen);
    }
    encode_fixed32(b->rep.data + 8, batch_rep_count(buf_slice(&b->rep)) + 1);
    return WEIR_OK;
}

int weir_batch_put(weir_batch *b, const void *key, size_t klen, const void *val, size_t vlen) {
    if (!b) return weir_set_error(WEIR_INVALID, "weir_batch_put: batch is NULL");
    int rc = check_key(key, klen);
    if (rc == WEIR_OK) rc = check_value(val, vlen);
    if (rc != WEIR_OK) return rc;
    return append_op(b, TYPE_VALUE, key, klen, val, vlen);
}

int weir_batch_delete(weir_batch *b, const void *key, size_t klen) {
    if (!b) return weir_set_error(WEIR_INVALID, "weir_batch_delete: batch is NULL");
    int rc = check_key(key, klen);
    if (rc != WEIR_OK) return rc;
    return append_op(b, TYPE_DELETION, key, klen, NULL, 0);
}

/* Decode the op at p (p < limit): its type, key and value (empty for a
 * deletion). Returns the position past it, or NULL if the type is unknown
 * (*type then says which) or the op runs past limit. */
static const char *decode_op(const char *p, const char *limit, int *type, slice *key, slice *value) {
    *type = (unsigned char)*p++;
    *value = slice_make(NULL, 0);
    if (*type > TYPE_MAX_VALID) return NULL;
    p = decode_length_prefixed(p, limit, key);
    if (p && *type != TYPE_DELETION) p = decode_length_prefixed(p, limit, value);
    return p;
}

int batch_rep_iterate(slice rep, batch_op_fn fn, void *arg) {
    if (rep.len < BATCH_HEADER_SIZE)
        return weir_set_error(WEIR_CORRUPTION, "write batch of %zu bytes is shorter than its header",
                              rep.len);
    uint64_t seq = batch_rep_sequence(rep);
    uint32_t expected = batch_rep_count(rep);
    uint32_t found = 0;
    const char *p = rep.data + BATCH_HEADER_SIZE;
    const char *limit = rep.data + rep.len;
    while (p < limit) {
        size_t op_offset = (size_t)(p - rep.data);
        int type;
        slice key, value;
        p = decode_op(p, limit, &type, &key, &value);
        if (type > TYPE_MAX_VALID)
            return weir_set_error(WEIR_CORRUPTION, "write batch op at byte %zu has unknown type %d",
                                  op_offset, type);
        if (p && type == TYPE_VALUE_TTL && value.len < 8)
            return weir_set_error(WEIR_CORRUPTION, "write batch op at byte %zu: TTL value shorter than its expiry",
                                  op_offset);
        if (!p)
            return weir_set_error(WEIR_CORRUPTION, "write batch op at byte %zu is truncated",
                                  op_offset);
        if (found == expected)
            return weir_set_error(WEIR_CORRUPTION, "write batch holds more ops than its count %u",
                                  expected);
        if (fn) {
            int rc = fn(arg, seq + found, type, key, value);
            if (rc != 0) return rc;
        }
        found++;
    }
    if (found != expected)
        return weir_set_error(WEIR_CORRUPTION, "write batch holds %u ops but its count says %u",
                              found, expected);
    return WEIR_OK;
}

int batch_rep_next_key(const char **p, const char *limit, slice *key) {
    if (*p == NULL || *p >= limit) return 0;
    int type;
    slice value;
    const char *next = decode_op(*p, limit, &type, key, &value);
    if (!next) return 0;
    *p = next;
    return 1;
}

int weir_batch_put_ttl(weir_batch *b, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms) {
    if (!b) return weir_set_error(WEIR_INVALID, "weir_batch_put_ttl: batch is NULL");
    if (ttl_ms == 0) return weir_set_error(WEIR_INVALID, "weir_batch_put_ttl: ttl_ms must be > 0");
    int rc = check_key(key, klen);
    if (rc == WEIR_OK) rc = check_value(val, vlen);
    if (rc != WEIR_OK) return rc;
    buf v = BUF_INIT;
    if (buf_put_fixed64(&v, ttl_ms) != 0 || buf_append(&v, val ? val : "", vlen) != 0) {
        buf_free(&v);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory growing a write batch");
    }
    rc = append_op(b, TYPE_VALUE_TTL, key, klen, v.data, v.len);
    buf_free(&v);
    if (rc == WEIR_OK) b->relative_ttls++;
    return rc;
}

int weir_batch_merge(weir_batch *b, const void *key, size_t klen, int op, const void *operand,
                     size_t olen) {
    if (!b) return weir_set_error(WEIR_INVALID, "weir_batch_merge: batch is NULL");
    int rc = check_key(key, klen);
    if (rc == WEIR_OK) rc = check_value(operand, olen);
    if (rc != WEIR_OK) return rc;
    if (op < 1 || op > 255) return weir_set_error(WEIR_INVALID, "merge operator %d is out of range [1, 255]", op);
    buf v = BUF_INIT;
    char opbyte = (char)op;
    if (buf_append(&v, &opbyte, 1) != 0 || buf_append(&v, operand ? operand : "", olen) != 0) {
        buf_free(&v);
        return weir_set_error(WEIR_NO_MEMORY, "out of memory growing a write batch");
    }
    /* User operators are checked against the DB's registry at write time. */
    rc = merge_check_operand(NULL, buf_slice(&v));
    if (rc == WEIR_OK) rc = append_op(b, TYPE_MERGE, key, klen, v.data, v.len);
    buf_free(&v);
    if (rc == WEIR_OK && op >= MERGE_USER_FIRST) b->user_merges++;
    return rc;
}

int weir_batch_delete_range(weir_batch *b, const void *start, size_t slen, const void *end,
                            size_t elen) {
    if (!b) return weir_set_error(WEIR_INVALID, "weir_batch_delete_range: batch is NULL");
    int rc = check_key(start, slen);
    if (rc == WEIR_OK) rc = check_key(end, elen);
    if (rc != WEIR_OK) return rc;
    int cmp = slice_compare(slice_make(start, slen), slice_make(end, elen));
    if (cmp > 0) return weir_set_error(WEIR_INVALID, "delete_range: start is after end");
    if (cmp == 0) return WEIR_OK; /* an empty range deletes nothing */
    return append_op(b, TYPE_RANGE_DELETION, start, slen, end, elen);
}

typedef struct resolve_ctx {
    buf *dst;
    uint64_t now_ms, default_ttl_ms;
    uint32_t count;
} resolve_ctx;

static int resolve_op(void *arg, uint64_t seq, int type, slice key, slice value) {
    (void)seq;
    resolve_ctx *ctx = arg;
    buf *d = ctx->dst;
    char t = (char)type;
    uint64_t ttl = 0;
    if (type == TYPE_VALUE_TTL) {
        ttl = decode_fixed64(value.data);
        value = slice_make(value.data + 8, value.len - 8);
    } else if (type == TYPE_VALUE && ctx->default_ttl_ms) {
        ttl = ctx->default_ttl_ms;
        t = (char)TYPE_VALUE_TTL;
    }
    int failed = buf_append(d, &t, 1) || buf_put_length_prefixed(d, key);
    if (!failed && t == (char)TYPE_VALUE_TTL) {
        /* Saturate instead of wrapping for absurd TTLs. */
        uint64_t expiry = ttl > UINT64_MAX - ctx->now_ms ? UINT64_MAX : ctx->now_ms + ttl;
        failed = buf_put_varint32(d, (uint32_t)(value.len + 8)) || buf_put_fixed64(d, expiry) ||
                 buf_append(d, value.data ? value.data : "", value.len);
    } else if (!failed && type != TYPE_DELETION) {
        failed = buf_put_length_prefixed(d, value);
    }
    if (failed) return weir_set_error(WEIR_NO_MEMORY, "out of memory resolving TTLs in a batch");
    ctx->count++;
    return 0;
}

int batch_rep_resolve(buf *dst, slice src, uint64_t now_ms, uint64_t default_ttl_ms) {
    resolve_ctx ctx = {dst, now_ms, default_ttl_ms, 0};
    size_t start_len = dst->len;
    int rc = batch_rep_iterate(src, resolve_op, &ctx);
    if (rc != WEIR_OK) {
        dst->len = start_len;
        return rc;
    }
    encode_fixed32(dst->data + 8, batch_rep_count(buf_slice(dst)) + ctx.count);
    return WEIR_OK;
}

int batch_rep_append(buf *dst, slice src) {
    if (buf_append(dst, src.data + BATCH_HEADER_SIZE, src.len - BATCH_HEADER_SIZE) != 0)
        return weir_set_error(WEIR_NO_MEMORY, "out of memory merging write batches");
    encode_fixed32(dst->data + 8, batch_rep_count(buf_slice(dst)) + batch_rep_count(src));
    return WEIR_OK;
}
