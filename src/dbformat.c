/*
 * dbformat.c -- building internal keys, and the always-empty iterator that
 * stands in for a source that failed to open so callers can treat errors
 * and data uniformly (see dbformat.h).
 */
#include "dbformat.h"

#include <stdlib.h>

#include "status.h"

int ikey_append(buf *b, slice user, uint64_t seq, int type) {
    if (buf_reserve(b, user.len + IKEY_TAG_SIZE) != 0) return -1;
    if (user.len) memcpy(b->data + b->len, user.data, user.len);
    encode_fixed64(b->data + b->len + user.len, pack_tag(seq, type));
    b->len += user.len + IKEY_TAG_SIZE;
    return 0;
}

typedef struct error_iter {
    iter base;
    weir_error err;
} error_iter;

static int error_iter_valid(const iter *it) {
    (void)it;
    return 0;
}

static void error_iter_seek_any(iter *it) { (void)it; }

static void error_iter_seek(iter *it, slice target) {
    (void)it;
    (void)target;
}

static slice error_iter_empty(const iter *it) {
    (void)it;
    return slice_make(NULL, 0);
}

static int error_iter_status(const iter *it) {
    const error_iter *e = (const error_iter *)it;
    if (e->err.code == WEIR_OK) return WEIR_OK;
    return weir_error_raise(&e->err);
}

static void error_iter_destroy(iter *it) { free(it); }

static const struct iter_ops error_iter_ops = {
    .valid = error_iter_valid,
    .seek_first = error_iter_seek_any,
    .seek_last = error_iter_seek_any,
    .seek = error_iter_seek,
    .next = error_iter_seek_any,
    .prev = error_iter_seek_any,
    .key = error_iter_empty,
    .value = error_iter_empty,
    .status = error_iter_status,
    .destroy = error_iter_destroy,
};

iter *iter_new_error(int code) {
    error_iter *e = malloc(sizeof *e);
    if (e == NULL) return NULL;
    e->base.ops = &error_iter_ops;
    if (code == WEIR_OK) {
        e->err.code = WEIR_OK;
        e->err.msg[0] = '\0';
    } else {
        weir_error_save(&e->err, code);
    }
    return &e->base;
}
