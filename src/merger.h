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

#endif
