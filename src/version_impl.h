/*
 * version_impl.h -- what the files behind the version set share and nobody
 * else needs: version_edit.c (file metadata, edits and their encoding),
 * version.c (versions: lookups, iterators, summaries), version_set.c
 * (building versions from edits, the manifest, recovery) and
 * compaction_pick.c (choosing what to compact). Not part of any API.
 */
#ifndef WEIR_VERSION_IMPL_H
#define WEIR_VERSION_IMPL_H

#include "version.h"

/* A compaction's output stops growing, and a move down is not trivial,
 * once it overlaps this many target-sized files of the level below the
 * output: otherwise the next compaction of that output would be huge. */
#define GRANDPARENT_OVERLAP_FACTOR 10

/* WEIR_NO_MEMORY with "out of memory <what>". */
int vset_oom(const char *what);
/* Grow a malloc'd array so it holds at least `need` elements; -1 on OOM. */
int vset_grow_array(void **arr, size_t *cap, size_t need, size_t elem);

static inline slice file_smallest(const file_meta *f) { return buf_slice(&f->smallest); }
static inline slice file_largest(const file_meta *f) { return buf_slice(&f->largest); }
static inline slice file_smallest_user(const file_meta *f) { return ikey_user(file_smallest(f)); }
static inline slice file_largest_user(const file_meta *f) { return ikey_user(file_largest(f)); }

void tomb_set_unref(tomb_set *t);
/* Copy a range tombstone into dst; -1 on OOM (dst left empty). */
int vtomb_copy(vtomb *dst, uint64_t seq, slice start, slice end);

/* version.c */
version *version_new(version_set *vs);
void version_free(version *v);
void version_compute_score(version *v);
/* Index of the first file of a sorted level whose largest key >= ikey
 * (user key only: find_file_user); n if none. */
int find_file(file_meta *const *files, int n, slice ikey);
int find_file_user(file_meta *const *files, int n, slice user);
int file_overlaps_user_range(const file_meta *f, const slice *smallest_user, const slice *largest_user);
uint64_t files_bytes(file_meta *const *files, int n);
double level_max_bytes(const vset_options *o, int level);
/* Append a key for messages: printable bytes as they are, others as \xNN,
 * cut after 48 bytes. Non-zero on OOM. */
int text_key(buf *b, slice key);
/* Compaction score of a level: >= 1 means it is due. */
double level_score(const version *v, int level);

#endif
