/*
 * compaction_pick.c -- what to compact next: the level with the highest
 * score, a round-robin file of it and every overlapping file below, grown
 * while that stays cheap; manual range compactions; and the questions a
 * running compaction asks (is this the base level for a key, should the
 * output be cut here).
 *
 * Runs under the DB mutex.
 */
#include "version.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filename.h"
#include "merger.h"
#include "status.h"
#include "version_impl.h"

/* ---- compaction picking ----------------------------------------------------- */

typedef struct file_list {
    file_meta **v;
    size_t n, cap;
} file_list;

static int file_list_push(file_list *l, file_meta *f) {
    if (vset_grow_array((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) return -1;
    l->v[l->n++] = f;
    return 0;
}

/* Files of `level` overlapping user keys [begin, end] (NULL: open). With
 * `close_range`, the range grows to cover every file taken until no other
 * file of the level overlaps it, so the set never splits the versions of a
 * user key between files that move and files that stay. Level 0 always
 * closes the range: its files overlap each other. */
static int get_overlapping(const version *v, int level, const slice *begin, const slice *end,
                           int close_range, file_list *out) {
    slice lo, hi;
    if (begin) lo = *begin;
    if (end) hi = *end;
    const slice *b = begin ? &lo : NULL, *e = end ? &hi : NULL;
    file_meta *const *files = v->files[level];
    int n = v->num_files[level];
    if (level == 0) close_range = 1;
    int start = 0;
    if (level > 0 && b) start = find_file_user(files, n, *b);
    out->n = 0;
    for (int i = start; i < n;) {
        file_meta *f = files[i++];
        slice fs = file_smallest_user(f), fl = file_largest_user(f);
        if (e && slice_compare(fs, *e) > 0) {
            if (level > 0) break; /* sorted: nothing further overlaps */
            continue;
        }
        if (b && slice_compare(fl, *b) < 0) continue;
        if (file_list_push(out, f) != 0) return vset_oom("picking a compaction");
        if (!close_range) continue;
        if (b && slice_compare(fs, *b) < 0) {
            lo = fs;
            out->n = 0;
            i = 0;
        } else if (e && slice_compare(fl, *e) > 0) {
            hi = fl;
            out->n = 0;
            i = level > 0 && b ? find_file_user(files, n, *b) : 0;
        }
    }
    return WEIR_OK;
}

static int any_being_compacted(file_meta *const *files, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (files[i]->being_compacted) return 1;
    return 0;
}

/* Smallest and largest internal keys over one or two file sets. */
static void key_range(file_meta *const *a, size_t na, file_meta *const *b, size_t nb, slice *smallest,
                      slice *largest) {
    int first = 1;
    for (int pass = 0; pass < 2; pass++) {
        file_meta *const *files = pass ? b : a;
        size_t n = pass ? nb : na;
        for (size_t i = 0; i < n; i++) {
            slice s = file_smallest(files[i]), l = file_largest(files[i]);
            if (first || ikey_compare(s, *smallest) < 0) *smallest = s;
            if (first || ikey_compare(l, *largest) > 0) *largest = l;
            first = 0;
        }
    }
}

/* Hand a list's array over to a compaction. */
static int list_to_array(file_list *l, file_meta ***arr, int *n) {
    *arr = l->v;
    *n = (int)l->n;
    l->v = NULL;
    l->n = l->cap = 0;
    return WEIR_OK;
}

static void compaction_free_partial(compaction *c) {
    if (!c) return;
    free(c->inputs[0]);
    free(c->inputs[1]);
    free(c->grandparents);
    version_edit_free(&c->edit);
    if (c->input_version) version_unref(c->input_version);
    free(c);
}

/* User-key range a manual compaction asked for (NULL ends: open). */
typedef struct user_range {
    const slice *begin, *end;
} user_range;

/* Given the level-L inputs, add level L+1 and the grandparents, and make
 * the compaction. With `widen`, level L+1 inputs also cover that range,
 * and level L may have no inputs. NULL (with *rc WEIR_OK) if a needed file
 * is already being compacted, or nothing is to be compacted. Takes over
 * `in0`. */
static compaction *setup_compaction(version_set *vs, int level, file_list *in0, const user_range *widen,
                                    int *rc) {
    version *v = vs->current;
    file_list in1 = {0}, gp = {0};
    compaction *c = NULL;
    *rc = WEIR_OK;
    if ((in0->n == 0 && !widen) || any_being_compacted(in0->v, in0->n)) goto out;

    slice smallest = {NULL, 0}, largest = {NULL, 0}, us = {NULL, 0}, ul = {NULL, 0};
    const slice *pb = &us, *pe = &ul;
    if (in0->n > 0) {
        key_range(in0->v, in0->n, NULL, 0, &smallest, &largest);
        us = ikey_user(smallest);
        ul = ikey_user(largest);
    }
    if (widen) {
        if (!widen->begin) pb = NULL;
        else if (in0->n == 0 || slice_compare(*widen->begin, us) < 0) us = *widen->begin;
        if (!widen->end) pe = NULL;
        else if (in0->n == 0 || slice_compare(*widen->end, ul) > 0) ul = *widen->end;
    }
    /* Close the range at level+1 too: a file there may end with the newer
     * versions of a user key whose older versions start the next file.
     * Taking one without the other would let the compaction drop a
     * tombstone (nothing below it "has" the key) while the older value
     * stays behind in the untaken file, at the same level. */
    *rc = get_overlapping(v, level + 1, pb, pe, 1, &in1);
    if (*rc != WEIR_OK || any_being_compacted(in1.v, in1.n) || in0->n + in1.n == 0) goto out;

    if (level + 2 < NUM_LEVELS) {
        slice all_s = {NULL, 0}, all_l = {NULL, 0};
        key_range(in0->v, in0->n, in1.v, in1.n, &all_s, &all_l);
        slice gs = ikey_user(all_s), gl = ikey_user(all_l);
        *rc = get_overlapping(v, level + 2, &gs, &gl, 0, &gp);
        if (*rc != WEIR_OK) goto out;
    }

    c = calloc(1, sizeof *c);
    if (!c) {
        *rc = vset_oom("picking a compaction");
        goto out;
    }
    version_edit_init(&c->edit);
    c->level = level;
    c->max_output_file_size = vs->opts.target_file_size;
    c->rewrite = widen != NULL;
    if (in0->n > 0) {
        *rc = version_edit_set_compact_pointer(&c->edit, level, largest);
        if (*rc == WEIR_OK &&
            buf_set(&vs->compact_pointer[level], largest.data, largest.len) != 0)
            *rc = vset_oom("picking a compaction");
    }
    if (*rc != WEIR_OK) {
        compaction_free_partial(c);
        c = NULL;
        goto out;
    }
    list_to_array(in0, &c->inputs[0], &c->num_inputs[0]);
    list_to_array(&in1, &c->inputs[1], &c->num_inputs[1]);
    list_to_array(&gp, &c->grandparents, &c->num_grandparents);
    c->input_version = v;
    version_ref(v);
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < c->num_inputs[which]; i++) c->inputs[which][i]->being_compacted = 1;
out:
    free(in0->v);
    in0->v = NULL;
    in0->n = in0->cap = 0;
    free(in1.v);
    free(gp.v);
    return c;
}

/* Level-L inputs of a scored compaction: the first file past the level's
 * round-robin pointer that is not being compacted, then its overlaps. */
static int pick_level_inputs(version_set *vs, int level, file_list *in0) {
    const version *v = vs->current;
    file_meta *const *files = v->files[level];
    int n = v->num_files[level];
    const buf *ptr = &vs->compact_pointer[level];
    file_meta *chosen = NULL;
    for (int i = 0; i < n && !chosen; i++) {
        if (files[i]->being_compacted) continue;
        if (ptr->len >= IKEY_TAG_SIZE && ikey_compare(file_largest(files[i]), buf_slice(ptr)) <= 0)
            continue;
        chosen = files[i];
    }
    for (int i = 0; i < n && !chosen; i++) /* wrap around */
        if (!files[i]->being_compacted) chosen = files[i];
    in0->n = 0;
    if (!chosen) return WEIR_OK;
    slice us = file_smallest_user(chosen), ul = file_largest_user(chosen);
    return get_overlapping(v, level, &us, &ul, 1, in0);
}

/* The current version's seek victim (version_charge_seek), if it names a
 * file that can move down; NULL otherwise. */
static file_meta *seek_victim(const version *v, int *level) {
    uint64_t victim = atomic_load_explicit(&v->seek_victim, memory_order_relaxed);
    if (victim == 0) return NULL;
    *level = (int)((victim - 1) >> 32);
    int index = (int)(uint32_t)(victim - 1);
    if (*level >= NUM_LEVELS - 1 || index >= v->num_files[*level]) return NULL;
    return v->files[*level][index];
}

/* Reads asked for it: compact the seek victim (and, at level 0, every file
 * overlapping it) into the next level. Only when no level is over its
 * size, so read-triggered work never delays what writes need. */
static compaction *pick_seek_compaction(version_set *vs) {
    int level;
    file_meta *f = seek_victim(vs->current, &level);
    if (!f || f->being_compacted) return NULL;
    file_list in0 = {0};
    slice us = file_smallest_user(f), ul = file_largest_user(f);
    int rc = get_overlapping(vs->current, level, &us, &ul, 1, &in0);
    compaction *c = rc == WEIR_OK ? setup_compaction(vs, level, &in0, NULL, &rc) : NULL;
    free(in0.v);
    if (c) c->read_triggered = 1;
    return c;
}

compaction *vset_pick_compaction(version_set *vs) {
    version *v = vs->current;
    double scores[NUM_LEVELS];
    int order[NUM_LEVELS], n = 0;
    for (int level = 0; level < NUM_LEVELS - 1; level++) {
        scores[level] = level_score(v, level);
        if (scores[level] < 1.0) continue;
        int j = n++;
        while (j > 0 && scores[order[j - 1]] < scores[level]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = level;
    }
    for (int k = 0; k < n; k++) {
        int level = order[k], rc;
        file_list in0 = {0};
        rc = pick_level_inputs(vs, level, &in0);
        compaction *c = rc == WEIR_OK ? setup_compaction(vs, level, &in0, NULL, &rc) : NULL;
        free(in0.v);
        if (c || rc != WEIR_OK) return c;
    }
    return pick_seek_compaction(vs);
}

compaction *vset_compact_range(version_set *vs, int level, const slice *begin, const slice *end) {
    if (level < 0 || level >= NUM_LEVELS - 1) {
        weir_set_error(WEIR_INVALID, "cannot compact level %d (levels 0..%d)", level, NUM_LEVELS - 2);
        return NULL;
    }
    if ((begin && begin->len < IKEY_TAG_SIZE) || (end && end->len < IKEY_TAG_SIZE)) {
        weir_set_error(WEIR_INVALID, "compact range bounds must be internal keys");
        return NULL;
    }
    slice ub, ue;
    if (begin) ub = ikey_user(*begin);
    if (end) ue = ikey_user(*end);
    file_list in0 = {0};
    int rc = get_overlapping(vs->current, level, begin ? &ub : NULL, end ? &ue : NULL, 1, &in0);
    if (rc != WEIR_OK || in0.n == 0) {
        free(in0.v);
        return NULL;
    }
    compaction *c = setup_compaction(vs, level, &in0, NULL, &rc);
    free(in0.v);
    if (!c && rc == WEIR_OK)
        weir_set_error(WEIR_BUSY, "level %d: files in the range are already being compacted", level);
    return c;
}

compaction *vset_compact_range_bottom(version_set *vs, int level, const slice *begin, const slice *end) {
    if (level < 0 || level >= NUM_LEVELS - 1) {
        weir_set_error(WEIR_INVALID, "cannot compact level %d (levels 0..%d)", level, NUM_LEVELS - 2);
        return NULL;
    }
    if ((begin && begin->len < IKEY_TAG_SIZE) || (end && end->len < IKEY_TAG_SIZE)) {
        weir_set_error(WEIR_INVALID, "compact range bounds must be internal keys");
        return NULL;
    }
    slice ub, ue;
    if (begin) ub = ikey_user(*begin);
    if (end) ue = ikey_user(*end);
    user_range want = {begin ? &ub : NULL, end ? &ue : NULL};
    file_list in0 = {0};
    int rc = get_overlapping(vs->current, level, want.begin, want.end, 1, &in0);
    compaction *c = rc == WEIR_OK ? setup_compaction(vs, level, &in0, &want, &rc) : NULL;
    free(in0.v);
    return c;
}

int compaction_is_trivial_move(const compaction *c) {
    return c->num_inputs[0] == 1 && c->num_inputs[1] == 0 &&
           files_bytes(c->grandparents, c->num_grandparents) <=
               (uint64_t)GRANDPARENT_OVERLAP_FACTOR * c->max_output_file_size;
}

int compaction_add_input_deletions(compaction *c) {
    for (int which = 0; which < 2; which++) {
        for (int i = 0; i < c->num_inputs[which]; i++) {
            int rc = version_edit_delete_file(&c->edit, c->level + which, c->inputs[which][i]->number);
            if (rc != WEIR_OK) return rc;
        }
    }
    return WEIR_OK;
}

int compaction_is_base_level_for_key(compaction *c, slice user_key) {
    const version *v = c->input_version;
    for (int level = c->level + 2; level < NUM_LEVELS; level++) {
        file_meta *const *files = v->files[level];
        int n = v->num_files[level];
        /* Keys arrive in increasing order, so each level's cursor only
         * moves forward. */
        while (c->level_ptrs[level] < n) {
            const file_meta *f = files[c->level_ptrs[level]];
            if (slice_compare(user_key, file_largest_user(f)) <= 0) {
                if (slice_compare(user_key, file_smallest_user(f)) >= 0) return 0;
                break;
            }
            c->level_ptrs[level]++;
        }
    }
    return 1;
}

int compaction_should_stop_before(compaction *c, slice ikey) {
    while (c->grandparent_index < c->num_grandparents &&
           ikey_compare(ikey, file_largest(c->grandparents[c->grandparent_index])) > 0) {
        if (c->seen_key) c->overlapped_bytes += c->grandparents[c->grandparent_index]->size;
        c->grandparent_index++;
    }
    c->seen_key = 1;
    if (c->overlapped_bytes > (uint64_t)GRANDPARENT_OVERLAP_FACTOR * c->max_output_file_size) {
        c->overlapped_bytes = 0;
        return 1;
    }
    return 0;
}

iter *compaction_input_iter(compaction *c) {
    table_cache *tc = c->input_version->vset->tc;
    int cap = (c->level == 0 ? c->num_inputs[0] : 1) + 1;
    iter **children = malloc((size_t)cap * sizeof *children);
    if (!children) return NULL;
    int n = 0;
    if (c->level == 0) {
        for (int i = c->num_inputs[0] - 1; i >= 0; i--) { /* newest first */
            const file_meta *f = c->inputs[0][i];
            if (!(children[n] = table_cache_iter(tc, f->number, f->size))) goto fail;
            n++;
        }
    } else if (c->num_inputs[0] > 0) {
        if (!(children[n] = level_iter_create(tc, c->inputs[0], c->num_inputs[0]))) goto fail;
        n++;
    }
    if (c->num_inputs[1] > 0) {
        if (!(children[n] = level_iter_create(tc, c->inputs[1], c->num_inputs[1]))) goto fail;
        n++;
    }
    iter *merged = merging_iter_create(children, n);
    free(children);
    return merged;
fail:
    for (int i = 0; i < n; i++) iter_destroy(children[i]);
    free(children);
    return NULL;
}

void compaction_free(compaction *c) {
    if (!c) return;
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < c->num_inputs[which]; i++) c->inputs[which][i]->being_compacted = 0;
    compaction_free_partial(c);
}

int vset_needs_compaction(const version_set *vs) {
    int level;
    return vs->current &&
           (vs->current->compaction_score >= 1.0 || seek_victim(vs->current, &level) != NULL);
}


