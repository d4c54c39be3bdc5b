/*
 * merger.h -- an iterator that merges n sorted internal iterators into one
 * sorted stream (ties broken by child order: children earlier in the array
 * are newer data and come first). Supports both directions.
 */
#ifndef WEIR_MERGER_H
#define WEIR_MERGER_H

#include "dbformat.h"

/* Takes ownership of the children (and of the array's contents, not the
 * array). NULL on OOM (children destroyed). n may be 0. */
iter *merging_iter_create(iter **children, int n);

/* The merger's state is visible so the user iterator (dbiter.c), which
 * reads the merged key and value for every entry it passes, reads them
 * with a load instead of a chain of indirect calls. Only merger.c writes
 * it.
 *
 * A child and its current key and value, cached so a step re-reads only
 * the child that moved: finding the smallest key then costs comparisons
 * of slices already at hand, not 2n indirect calls into every child. They
 * stay valid until that child moves, which only merger.c does. */
typedef struct merge_child {
    iter *it;
    slice key;
    slice value;
    int valid;
} merge_child;

typedef struct merging_iter {
    iter base;
    merge_child *children;
    int n;
    int current;  /* index of the child at the merged position; -1: none */
    int runner;   /* forward: the smallest other child; -1: none or unknown */
    int forward;  /* direction of the last move */
} merging_iter;

/* For an iterator made by merging_iter_create. */
static inline int merging_iter_valid(const iter *it) {
    return ((const merging_iter *)it)->current >= 0;
}
static inline slice merging_iter_key(const iter *it) {
    const merging_iter *m = (const merging_iter *)it;
    return m->children[m->current].key; /* only while valid */
}
static inline slice merging_iter_value(const iter *it) {
    const merging_iter *m = (const merging_iter *)it;
    return m->children[m->current].value; /* only while valid */
}
/* The same as iter_next, as a direct call. */
void merging_iter_next(iter *it);

#endif
