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

/* A child and its current key, cached so a step re-reads only the child
 * that moved: finding the smallest key then costs n-1 comparisons of
 * slices already at hand, not 2n indirect calls into every child (with a
 * memtable child that was a third of a forward scan's time). A child's
 * key stays valid until that child moves, which only this file does. */
typedef struct merge_child {
    iter *it;
    slice key;
    int valid;
} merge_child;

typedef struct merging_iter {
    iter base;
    merge_child *children;
    int n;
    int current;  /* index of the child at the merged position; -1: none */
    int forward;  /* direction of the last move */
} merging_iter;

static void refresh(merge_child *c) {
    c->valid = iter_valid(c->it);
    c->key = c->valid ? iter_key(c->it) : slice_make(NULL, 0);
}

static void refresh_all(merging_iter *m) {
    for (int i = 0; i < m->n; i++) refresh(&m->children[i]);
}

static void find_smallest(merging_iter *m) {
    int best = -1;
    for (int i = 0; i < m->n; i++) {
        const merge_child *c = &m->children[i];
        if (!c->valid) continue;
        if (best < 0 || ikey_compare(c->key, m->children[best].key) < 0) best = i;
    }
    m->current = best;
}

static void find_largest(merging_iter *m) {
    int best = -1;
    /* Internal keys are unique across children (a sequence number is
     * written once), so tie order does not matter here. */
    for (int i = 0; i < m->n; i++) {
        const merge_child *c = &m->children[i];
        if (!c->valid) continue;
        if (best < 0 || ikey_compare(c->key, m->children[best].key) > 0) best = i;
    }
    m->current = best;
}

static int mi_valid(const iter *it) { return ((const merging_iter *)it)->current >= 0; }

static void mi_seek_first(iter *it) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_seek_first(m->children[i].it);
    refresh_all(m);
    m->forward = 1;
    find_smallest(m);
}

static void mi_seek_last(iter *it) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_seek_last(m->children[i].it);
    refresh_all(m);
    m->forward = 0;
    find_largest(m);
}

static void mi_seek(iter *it, slice target) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_seek(m->children[i].it, target);
    refresh_all(m);
    m->forward = 1;
    find_smallest(m);
}

static void mi_next(iter *it) {
    merging_iter *m = (merging_iter *)it;
    if (m->current < 0) return;
    merge_child *cur = &m->children[m->current];
    if (!m->forward) {
        /* Put every other child on the first entry after key(). Internal
         * keys are unique, so "> key" is "seek(key), skip if equal". */
        slice key = cur->key;
        for (int i = 0; i < m->n; i++) {
            merge_child *c = &m->children[i];
            if (c == cur) continue;
            iter_seek(c->it, key);
            if (iter_valid(c->it) && ikey_compare(iter_key(c->it), key) == 0) iter_next(c->it);
            refresh(c);
        }
        m->forward = 1;
    }
    iter_next(cur->it);
    refresh(cur);
    find_smallest(m);
}

static void mi_prev(iter *it) {
    merging_iter *m = (merging_iter *)it;
    if (m->current < 0) return;
    merge_child *cur = &m->children[m->current];
    if (m->forward) {
        /* Put every other child on the last entry before key(). */
        slice key = cur->key;
        for (int i = 0; i < m->n; i++) {
            merge_child *c = &m->children[i];
            if (c == cur) continue;
            iter_seek(c->it, key);
            if (iter_valid(c->it)) iter_prev(c->it);
            else iter_seek_last(c->it);
            refresh(c);
        }
        m->forward = 0;
    }
    iter_prev(cur->it);
    refresh(cur);
    find_largest(m);
}

static slice mi_key(const iter *it) {
    const merging_iter *m = (const merging_iter *)it;
    return m->current >= 0 ? m->children[m->current].key : slice_make(NULL, 0);
}

static slice mi_value(const iter *it) {
    const merging_iter *m = (const merging_iter *)it;
    return m->current >= 0 ? iter_value(m->children[m->current].it) : slice_make(NULL, 0);
}

static int mi_status(const iter *it) {
    const merging_iter *m = (const merging_iter *)it;
    for (int i = 0; i < m->n; i++) {
        int rc = iter_status(m->children[i].it);
        if (rc != WEIR_OK) return rc;
    }
    return WEIR_OK;
}

static void mi_destroy(iter *it) {
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) iter_destroy(m->children[i].it);
    free(m->children);
    free(m);
}

static const struct iter_ops merging_iter_ops = {
    mi_valid, mi_seek_first, mi_seek_last, mi_seek, mi_next, mi_prev,
    mi_key,   mi_value,      mi_status,    mi_destroy,
};

iter *merging_iter_create(iter **children, int n) {
    merging_iter *m = calloc(1, sizeof *m);
    merge_child *kids = n ? calloc((size_t)n, sizeof *kids) : NULL;
    if (!m || (n && !kids)) {
        free(m);
        free(kids);
        for (int i = 0; i < n; i++) iter_destroy(children[i]);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        kids[i].it = children[i];
        refresh(&kids[i]);
    }
    m->base.ops = &merging_iter_ops;
    m->children = kids;
    m->n = n;
    m->current = -1;
    m->forward = 1;
    return &m->base;
}
