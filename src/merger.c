/*
 * merger.c -- merging iterator over sorted internal iterators.
 *
 * The number of children is small (memtables, level-0 files, one per
 * deeper level), so the smallest/largest child is found by a linear scan
 * rather than a heap: fewer branches and no bookkeeping on every step.
 * When the direction changes, every child other than the current one is
 * repositioned around the current key, as the newest-first tie order must
 * hold in both directions.
 */
#include "merger.h"

#include <stdlib.h>

#include "status.h"

typedef struct merging_iter {
    iter base;
    iter **children;
    int n;
    iter *current;
    int forward; /* direction of the last move */
} merging_iter;

static void find_smallest(merging_iter *m) {
    iter *best = NULL;
    for (int i = 0; i < m->n; i++) {
        iter *c = m->children[i];
        if (!iter_valid(c)) continue;
        if (!best || ikey_compare(iter_key(c), iter_key(best)) < 0) best = c;
    }
    m->current = best;
}

static void find_largest(merging_iter *m) {
    iter *best = NULL;
    /* Internal keys are unique across children (a sequence number is
     * written once), so tie order does not matter here. */
    for (int i = 0; i < m->n; i++) {
        iter *c = m->children[i];
        if (!iter_valid(c)) continue;
        if (!best || ikey_compare(iter_key(c), iter_key(best)) > 0) best = c;
    }
    m->current = best;
}

static int mi_valid(const iter *it) { return ((const merging_iter *)it)->current != NULL; }

static void mi_seek_first(iter *it) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_seek_first(m->children[i]);
    m->forward = 1;
    find_smallest(m);
}

static void mi_seek_last(iter *it) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_seek_last(m->children[i]);
    m->forward = 0;
    find_largest(m);
}

static void mi_seek(iter *it, slice target) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_seek(m->children[i], target);
    m->forward = 1;
    find_smallest(m);
}

static void mi_next(iter *it) {
    merging_iter *m = (merging_iter *)it;
    if (!m->current) return;
    if (!m->forward) {
        /* Put every other child on the first entry after key(). Internal
         * keys are unique, so "> key" is "seek(key), skip if equal". */
        slice key = iter_key(m->current);
        for (int i = 0; i < m->n; i++) {
            iter *c = m->children[i];
            if (c == m->current) continue;
            iter_seek(c, key);
            if (iter_valid(c) && ikey_compare(iter_key(c), key) == 0) iter_next(c);
        }
        m->forward = 1;
    }
    iter_next(m->current);
    find_smallest(m);
}

static void mi_prev(iter *it) {
    merging_iter *m = (merging_iter *)it;
    if (!m->current) return;
    if (m->forward) {
        /* Put every other child on the last entry before key(). */
        slice key = iter_key(m->current);
        for (int i = 0; i < m->n; i++) {
            iter *c = m->children[i];
            if (c == m->current) continue;
            iter_seek(c, key);
            if (iter_valid(c)) iter_prev(c);
            else iter_seek_last(c);
        }
        m->forward = 0;
    }
    iter_prev(m->current);
    find_largest(m);
}

static slice mi_key(const iter *it) { return iter_key(((const merging_iter *)it)->current); }
static slice mi_value(const iter *it) { return iter_value(((const merging_iter *)it)->current); }

static int mi_status(const iter *it) {
    const merging_iter *m = (const merging_iter *)it;
    for (int i = 0; i < m->n; i++) {
        int rc = iter_status(m->children[i]);
        if (rc != WEIR_OK) return rc;
    }
    return WEIR_OK;
}

static void mi_destroy(iter *it) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_destroy(m->children[i]);
    free(m->children);
    free(m);
}

static const struct iter_ops merging_iter_ops = {
    mi_valid, mi_seek_first, mi_seek_last, mi_seek, mi_next, mi_prev,
    mi_key,   mi_value,      mi_status,    mi_destroy,
};

iter *merging_iter_create(iter **children, int n) {
    merging_iter *m = calloc(1, sizeof *m);
    iter **copy = n ? malloc(sizeof *copy * (size_t)n) : NULL;
    if (!m || (n && !copy)) {
        free(m);
        free(copy);
        for (int i = 0; i < n; i++) iter_destroy(children[i]);
        return NULL;
    }
    for (int i = 0; i < n; i++) copy[i] = children[i];
    m->base.ops = &merging_iter_ops;
    m->children = copy;
    m->n = n;
    m->forward = 1;
    return &m->base;
}
