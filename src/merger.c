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

static void refresh(merge_child *c) {
    c->valid = iter_valid(c->it);
    if (c->valid) {
        c->key = iter_key(c->it);
        c->value = iter_value(c->it);
    } else {
        c->key = c->value = slice_make(NULL, 0);
    }
}

static void refresh_all(merging_iter *m) {
    for (int i = 0; i < m->n; i++) refresh(&m->children[i]);
}

/* The smallest child becomes current, the next smallest the runner-up:
 * a forward step then usually needs one comparison, against the runner,
 * to know the child that moved is still the smallest. */
static void find_smallest(merging_iter *m) {
    int best = -1, second = -1;
    for (int i = 0; i < m->n; i++) {
        const merge_child *c = &m->children[i];
        if (!c->valid) continue;
        if (best < 0 || ikey_compare(c->key, m->children[best].key) < 0) {
            second = best;
            best = i;
        } else if (second < 0 || ikey_compare(c->key, m->children[second].key) < 0) {
            second = i;
        }
    }
    m->current = best;
    m->runner = second;
}

static void find_largest(merging_iter *m) {
    int best = -1;
    m->runner = -1;
    /* Internal keys are unique across children (a sequence number is
     * written once), so tie order does not matter here. */
    for (int i = 0; i < m->n; i++) {
        const merge_child *c = &m->children[i];
        if (!c->valid) continue;
        if (best < 0 || ikey_compare(c->key, m->children[best].key) > 0) best = i;
    }
    m->current = best;
}

static int mi_valid(const iter *it) { return merging_iter_valid(it); }

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

void merging_iter_next(iter *it) {
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
        m->runner = -1;
    }
    iter_next(cur->it);
    refresh(cur);
    /* Still below the runner-up (keys are unique, so no tie to order):
     * still the smallest. */
    if (cur->valid && m->runner >= 0 && ikey_compare(cur->key, m->children[m->runner].key) < 0) return;
    if (cur->valid && m->n == 1) return;
    find_smallest(m);
}

static void mi_next(iter *it) { merging_iter_next(it); }

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
    return merging_iter_valid(it) ? merging_iter_key(it) : slice_make(NULL, 0);
}

static slice mi_value(const iter *it) {
    return merging_iter_valid(it) ? merging_iter_value(it) : slice_make(NULL, 0);
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
    m->runner = -1;
    m->forward = 1;
    return &m->base;
}
