/*
 * _weir_iter.c -- the iterator types: Iterator (a cursor) and RangeIterator.
 *
 * Both wrap an engine iterator over a read_source (a DB, a snapshot of it,
 * or, for a RangeIterator, a transaction) and sit on their DB's list of
 * dependants (a transaction's range iterators on the transaction's own
 * list), so close() of either invalidates them. The cursor calls the
 * engine once per step; the RangeIterator behind keys()/values()/items()
 * copies entries out in growing chunks (1, 2, 4 .. CHUNK_MAX) so a short
 * scan stays cheap and a long one crosses into C rarely.
 */
#include "_weir_internal.h"

#include <stdlib.h>
#include <string.h>

static void iter_invalidate(PyObject *o);
static void range_invalidate(PyObject *o);

/* ---- construction ------------------------------------------------------------------ */

/* Create an engine iterator over [start, stop) within prefix, reading src
 * (a transaction source the caller has checked is active and not busy). */
static weir_iter *open_engine_iter(const read_source *src, PyObject *prefix, PyObject *start,
                                   PyObject *stop) {
    DBObject *self = src->db;
    SnapshotObject *snap = src->snap;
    TxnObject *txn = src->txn;
    bufarg p, lo, hi;
    if (bufarg_opt(prefix, &p, "prefix") < 0) return NULL;
    if (bufarg_opt(start, &lo, "start") < 0) {
        bufarg_release(&p);
        return NULL;
    }
    if (bufarg_opt(stop, &hi, "stop") < 0) {
        bufarg_release(&p);
        bufarg_release(&lo);
        return NULL;
    }
    weir_iter *it = NULL;
    /* Checked here, after the buffers: exporting one may run Python code. */
    if ((!txn || txn_check(txn) == 0) && db_enter(self) == 0) {
        weir_readopts ro;
        memset(&ro, 0, sizeof ro);
        if (snap) {
            ro.snapshot = snap->snap;
            snap->uses++;
        }
        /* An empty bytes gives a NULL-free pointer: "" bounds are real. */
        ro.prefix = p.ptr;
        ro.prefix_len = p.len;
        ro.lower_bound = lo.ptr;
        ro.lower_bound_len = lo.len;
        ro.upper_bound = hi.ptr;
        ro.upper_bound_len = hi.len;
        weir_db *db = self->db;
        weir_txn *tx = txn ? txn->txn : NULL;
        int rc;
        if (txn) txn->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        rc = tx ? weir_txn_iter_create(tx, &ro, &it) : weir_iter_create(db, &ro, &it);
        Py_END_ALLOW_THREADS
        if (txn) txn->busy = 0;
        if (snap) snap->uses--;
        db_leave(self);
        if (rc != WEIR_OK) {
            raise_status(rc);
            it = NULL;
        }
    }
    bufarg_release(&p);
    bufarg_release(&lo);
    bufarg_release(&hi);
    return it;
}

PyObject *make_range(const read_source *src, int mode, PyObject *const *a) {
    /* a: prefix, start, stop, reverse */
    DBObject *self = src->db;
    TxnObject *txn = src->txn;
    int reverse = 0;
    if (a[3] && (reverse = PyObject_IsTrue(a[3])) < 0) return NULL;
    weir_iter *it = open_engine_iter(src, a[0], a[1], a[2]);
    if (!it) return NULL;
    RangeIterObject *r = PyObject_GC_New(RangeIterObject, &RangeIter_Type);
    if (!r) {
        weir_iter_destroy(it);
        return NULL;
    }
    r->db = (DBObject *)Py_NewRef((PyObject *)self);
    r->iter = it;
    r->busy = 0;
    r->invalidated = INV_NONE;
    r->txn = txn ? (TxnObject *)Py_NewRef((PyObject *)txn) : NULL;
    r->mode = mode;
    r->reverse = reverse;
    r->positioned = 0;
    r->at_end = 0;
    r->err = WEIR_OK;
    r->errmsg = NULL;
    r->want = 1;
    r->n = r->pos = 0;
    r->buf = NULL;
    r->cap = 0;
    if (txn) {
        /* dep_link wants a DB; splice into the transaction's list by hand. */
        r->node.owner = (PyObject *)r;
        r->node.invalidate = range_invalidate;
        r->node.next = txn->iters.next;
        r->node.prev = &txn->iters;
        txn->iters.next->prev = &r->node;
        txn->iters.next = &r->node;
    } else {
        dep_link(self, &r->node, (PyObject *)r, range_invalidate);
    }
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

PyObject *make_cursor(const read_source *src, PyObject *const *a) {
    DBObject *self = src->db;
    weir_iter *it = open_engine_iter(src, a[0], a[1], a[2]);
    if (!it) return NULL;
    IterObject *c = PyObject_GC_New(IterObject, &Iter_Type);
    if (!c) {
        weir_iter_destroy(it);
        return NULL;
    }
    c->db = (DBObject *)Py_NewRef((PyObject *)self);
    c->iter = it;
    c->busy = 0;
    c->invalidated = 0;
    dep_link(self, &c->node, (PyObject *)c, iter_invalidate);
    PyObject_GC_Track(c);
    return (PyObject *)c;
}

/* ---- iterators: shared -------------------------------------------------------- */

static void iter_drop_engine(IterObject *c) {
    if (c->iter) {
        weir_iter_destroy(c->iter);
        c->iter = NULL;
    }
    dep_unlink(&c->node);
}

static void iter_invalidate(PyObject *o) {
    IterObject *c = (IterObject *)o;
    if (c->iter) c->invalidated = 1;
    iter_drop_engine(c);
}

static int Iter_traverse(IterObject *c, visitproc visit, void *arg) {
    Py_VISIT(c->db);
    return 0;
}

static int Iter_clear(IterObject *c) {
    iter_drop_engine(c);
    Py_CLEAR(c->db);
    return 0;
}

static void Iter_dealloc(IterObject *c) {
    PyObject_GC_UnTrack(c);
    Iter_clear(c);
    PyObject_GC_Del(c);
}

static PyObject *raise_invalidated(IterObject *c) {
    if (c->invalidated == INV_TXN_FINISHED)
        return raise_fmt(WEIR_INVALID, "the iterator's transaction is finished (committed or rolled back)");
    return raise_fmt(WEIR_CLOSED, "the iterator's DB was closed");
}

/* Can the iterator run an engine call now? */
static int iter_usable(IterObject *c) {
    if (!c->iter) {
        if (c->invalidated) raise_invalidated(c);
        else raise_fmt(WEIR_CLOSED, "the iterator is closed");
        return -1;
    }
    if (c->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the iterator is in use by another thread");
        return -1;
    }
    return db_enter(c->db);
}

/* ---- Iterator (cursor) --------------------------------------------------------- */

enum { OP_FIRST, OP_LAST, OP_SEEK, OP_SEEK_PREV, OP_NEXT, OP_PREV };

static PyObject *cursor_op(IterObject *c, int op, PyObject *key) {
    bufarg k = {NULL, 0, 0, {0}};
    if (key && bufarg_get(key, &k, "key") < 0) return NULL;
    if (iter_usable(c) < 0) {
        bufarg_release(&k);
        return NULL;
    }
    weir_iter *it = c->iter;
    int valid, rc = WEIR_OK;
    c->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    switch (op) {
    case OP_FIRST: weir_iter_seek_first(it); break;
    case OP_LAST: weir_iter_seek_last(it); break;
    case OP_SEEK: weir_iter_seek(it, k.ptr, k.len); break;
    case OP_SEEK_PREV: weir_iter_seek_for_prev(it, k.ptr, k.len); break;
    case OP_NEXT: weir_iter_next(it); break;
    default: weir_iter_prev(it); break;
    }
    valid = weir_iter_valid(it);
    if (!valid) rc = weir_iter_status(it);
    Py_END_ALLOW_THREADS
    c->busy = 0;
    db_leave(c->db);
    bufarg_release(&k);
    if (rc != WEIR_OK) return raise_status(rc);
    return PyBool_FromLong(valid);
}

static PyObject *Iter_seek(IterObject *c, PyObject *key) { return cursor_op(c, OP_SEEK, key); }
static PyObject *Iter_seek_for_prev(IterObject *c, PyObject *key) { return cursor_op(c, OP_SEEK_PREV, key); }
static PyObject *Iter_seek_to_first(IterObject *c, PyObject *u) {
    (void)u;
    return cursor_op(c, OP_FIRST, NULL);
}
static PyObject *Iter_seek_to_last(IterObject *c, PyObject *u) {
    (void)u;
    return cursor_op(c, OP_LAST, NULL);
}
static PyObject *Iter_next(IterObject *c, PyObject *u) {
    (void)u;
    return cursor_op(c, OP_NEXT, NULL);
}
static PyObject *Iter_prev(IterObject *c, PyObject *u) {
    (void)u;
    return cursor_op(c, OP_PREV, NULL);
}

static int cursor_readable(IterObject *c) {
    if (!c->iter) {
        if (c->invalidated) raise_invalidated(c);
        else raise_fmt(WEIR_CLOSED, "the iterator is closed");
        return -1;
    }
    if (c->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the iterator is in use by another thread");
        return -1;
    }
    return 0;
}

static PyObject *Iter_get_valid(IterObject *c, void *u) {
    (void)u;
    if (cursor_readable(c) < 0) return NULL;
    return PyBool_FromLong(weir_iter_valid(c->iter));
}

static PyObject *Iter_get_key(IterObject *c, void *u) {
    (void)u;
    if (cursor_readable(c) < 0) return NULL;
    if (!weir_iter_valid(c->iter)) Py_RETURN_NONE;
    size_t n;
    const void *p = weir_iter_key(c->iter, &n);
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
}

static PyObject *Iter_get_value(IterObject *c, void *u) {
    (void)u;
    if (cursor_readable(c) < 0) return NULL;
    if (!weir_iter_valid(c->iter)) Py_RETURN_NONE;
    size_t n;
    const void *p = weir_iter_value(c->iter, &n);
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
}

static PyObject *Iter_get_closed(IterObject *c, void *u) {
    (void)u;
    return PyBool_FromLong(c->iter == NULL);
}

static PyObject *Iter_close(IterObject *c, PyObject *u) {
    (void)u;
    if (c->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the iterator is in use by another thread");
        return NULL;
    }
    iter_drop_engine(c);
    Py_RETURN_NONE;
}

static PyObject *Iter_exit(IterObject *c, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    PyObject *r = Iter_close(c, NULL);
    if (!r) return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *Iter_repr(IterObject *c) {
    if (!c->iter) return PyUnicode_FromString("<weir.Iterator closed>");
    if (c->busy || !weir_iter_valid(c->iter)) return PyUnicode_FromString("<weir.Iterator not valid>");
    size_t n;
    const void *p = weir_iter_key(c->iter, &n);
    PyObject *k = PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
    if (!k) return NULL;
    PyObject *r = PyUnicode_FromFormat("<weir.Iterator at %R>", k);
    Py_DECREF(k);
    return r;
}

static PyMethodDef Iter_methods[] = {
    {"seek", (PyCFunction)Iter_seek, METH_O,
     SIGNATURE("seek($self, key, /)") "Move to the first key >= key; returns valid."},
    {"seek_for_prev", (PyCFunction)Iter_seek_for_prev, METH_O,
     SIGNATURE("seek_for_prev($self, key, /)") "Move to the last key <= key; returns valid."},
    {"seek_to_first", (PyCFunction)Iter_seek_to_first, METH_NOARGS,
     SIGNATURE("seek_to_first($self, /)") "Move to the first key; returns valid."},
    {"seek_to_last", (PyCFunction)Iter_seek_to_last, METH_NOARGS,
     SIGNATURE("seek_to_last($self, /)") "Move to the last key; returns valid."},
    {"next", (PyCFunction)Iter_next, METH_NOARGS,
     SIGNATURE("next($self, /)") "Step forward; returns valid."},
    {"prev", (PyCFunction)Iter_prev, METH_NOARGS,
     SIGNATURE("prev($self, /)") "Step back; returns valid."},
    {"close", (PyCFunction)Iter_close, METH_NOARGS,
     SIGNATURE("close($self, /)") "Free the engine iterator; idempotent."},
    {"__enter__", (PyCFunction)enter_returns_self, METH_NOARGS, SIGNATURE("__enter__($self, /)")},
    {"__exit__", (PyCFunction)(void (*)(void))Iter_exit, METH_FASTCALL,
     SIGNATURE("__exit__($self, exc_type, exc, tb, /)") "Close the iterator."},
    {0},
};

static PyGetSetDef Iter_getset[] = {
    {"valid", (getter)Iter_get_valid, NULL, "True while positioned on an entry", NULL},
    {"key", (getter)Iter_get_key, NULL, "current key (bytes), or None when not valid", NULL},
    {"value", (getter)Iter_get_value, NULL, "current value (bytes), or None when not valid", NULL},
    {"closed", (getter)Iter_get_closed, NULL, "True once closed or invalidated", NULL},
    {0},
};

PyTypeObject Iter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.Iterator",
    .tp_basicsize = sizeof(IterObject),
    .tp_dealloc = (destructor)Iter_dealloc,
    .tp_repr = (reprfunc)Iter_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A low-level cursor over one point in time (from DB.iterator()). It starts\n"
              "unpositioned; the seek and step methods return whether it is valid.\n"
              "Not thread-safe: use one per thread.",
    .tp_traverse = (traverseproc)Iter_traverse,
    .tp_clear = (inquiry)Iter_clear,
    .tp_methods = Iter_methods,
    .tp_getset = Iter_getset,
};

/* ---- RangeIterator ---------------------------------------------------------- */

static void range_discard(RangeIterObject *r) {
    r->n = r->pos = 0;
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    free(r->errmsg);
    r->errmsg = NULL;
    r->err = WEIR_OK;
}

void range_invalidate_as(RangeIterObject *r, int why) {
    if (r->iter) r->invalidated = why;
    iter_drop_engine((IterObject *)r);
    range_discard(r);
}

static void range_invalidate(PyObject *o) { range_invalidate_as((RangeIterObject *)o, INV_DB_CLOSED); }

static int Range_traverse(RangeIterObject *r, visitproc visit, void *arg) {
    Py_VISIT(r->db);
    Py_VISIT(r->txn);
    return 0;
}

static int Range_clear(RangeIterObject *r) {
    iter_drop_engine((IterObject *)r);
    range_discard(r);
    Py_CLEAR(r->txn);
    Py_CLEAR(r->db);
    return 0;
}

static void Range_dealloc(RangeIterObject *r) {
    PyObject_GC_UnTrack(r);
    Range_clear(r);
    PyObject_GC_Del(r);
}

/* Copy up to r->want entries (and CHUNK_BYTES) out of the engine iterator.
 * Runs without the GIL, on memory only this iterator owns. */
static void range_fill(RangeIterObject *r) {
    weir_iter *it = r->iter;
    if (!r->positioned) {
        if (r->reverse) weir_iter_seek_last(it);
        else weir_iter_seek_first(it);
        r->positioned = 1;
    }
    size_t used = 0;
    int n = 0;
    while (n < r->want && used < CHUNK_BYTES && weir_iter_valid(it)) {
        size_t kl = 0, vl = 0;
        const void *k = NULL, *v = NULL;
        if (r->mode != MODE_VALUES) k = weir_iter_key(it, &kl);
        if (r->mode != MODE_KEYS) v = weir_iter_value(it, &vl);
        size_t need = used + kl + vl;
        if (need > r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            if (cap < need) cap = need;
            char *p = realloc(r->buf, cap);
            if (!p) {
                r->err = WEIR_NO_MEMORY;
                break;
            }
            r->buf = p;
            r->cap = cap;
        }
        if (kl) memcpy(r->buf + used, k, kl);
        if (vl) memcpy(r->buf + used + kl, v, vl);
        r->ents[n].koff = used;
        r->ents[n].klen = kl;
        r->ents[n].voff = used + kl;
        r->ents[n].vlen = vl;
        used = need;
        n++;
        if (r->reverse) weir_iter_prev(it);
        else weir_iter_next(it);
    }
    r->n = n;
    r->pos = 0;
    if (r->err == WEIR_OK && !weir_iter_valid(it)) {
        r->at_end = 1;
        int rc = weir_iter_status(it);
        if (rc != WEIR_OK) {
            r->err = rc;
            r->errmsg = strdup(weir_errmsg());
        }
    }
}

static PyObject *range_item(RangeIterObject *r, int i) {
    chunk_entry *e = &r->ents[i];
    if (r->mode == MODE_KEYS) return PyBytes_FromStringAndSize(r->buf + e->koff, (Py_ssize_t)e->klen);
    if (r->mode == MODE_VALUES) return PyBytes_FromStringAndSize(r->buf + e->voff, (Py_ssize_t)e->vlen);
    PyObject *k = PyBytes_FromStringAndSize(r->buf + e->koff, (Py_ssize_t)e->klen);
    if (!k) return NULL;
    PyObject *v = PyBytes_FromStringAndSize(r->buf + e->voff, (Py_ssize_t)e->vlen);
    if (!v) {
        Py_DECREF(k);
        return NULL;
    }
    PyObject *t = PyTuple_New(2);
    if (!t) {
        Py_DECREF(k);
        Py_DECREF(v);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, k);
    PyTuple_SET_ITEM(t, 1, v);
    return t;
}

/* The buffer is drained: raise the error that ended iteration, or stop. */
static PyObject *range_finish(RangeIterObject *r) {
    if (r->err != WEIR_OK) {
        int rc = r->err;
        const char *m = r->errmsg ? r->errmsg : weir_status_name(rc);
        PyObject *msg = PyUnicode_DecodeUTF8(m, (Py_ssize_t)strlen(m), "backslashreplace");
        range_discard(r);
        return raise_with(rc, msg);
    }
    return NULL;
}

static PyObject *Range_next(RangeIterObject *r) {
    if (r->pos < r->n) return range_item(r, r->pos++);
    if (r->invalidated) return raise_invalidated((IterObject *)r);
    if (r->at_end || r->err != WEIR_OK) return range_finish(r);
    if (!r->iter) return NULL; /* closed by the user: just stop */
    if (iter_usable((IterObject *)r) < 0) return NULL;
    if (r->txn && r->txn->busy) {
        /* Its overlay belongs to the transaction, which another thread is
         * using right now. */
        db_leave(r->db);
        PyErr_SetString(PyExc_RuntimeError, "the transaction is in use by another thread");
        return NULL;
    }
    r->busy = 1;
    if (r->txn) r->txn->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    range_fill(r);
    Py_END_ALLOW_THREADS
    if (r->txn) r->txn->busy = 0;
    r->busy = 0;
    db_leave(r->db);
    if (r->want < CHUNK_MAX) r->want *= 2;
    /* Let go of the engine's memtables and tables as soon as we can. */
    if (r->at_end || r->err != WEIR_OK) iter_drop_engine((IterObject *)r);
    if (r->pos < r->n) {
        PyObject *item = range_item(r, r->pos++);
        if (r->pos == r->n && r->cap > 1024 * 1024) {
            /* Do not keep a huge buffer around after a large value. */
            free(r->buf);
            r->buf = NULL;
            r->cap = 0;
            r->n = r->pos = 0;
        }
        return item;
    }
    return range_finish(r);
}

static PyObject *Range_close(RangeIterObject *r, PyObject *u) {
    (void)u;
    if (r->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the iterator is in use by another thread");
        return NULL;
    }
    iter_drop_engine((IterObject *)r);
    range_discard(r);
    r->at_end = 1;
    Py_RETURN_NONE;
}

static PyObject *Range_exit(RangeIterObject *r, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    PyObject *res = Range_close(r, NULL);
    if (!res) return NULL;
    Py_DECREF(res);
    Py_RETURN_FALSE;
}

static PyMethodDef Range_methods[] = {
    {"close", (PyCFunction)Range_close, METH_NOARGS,
     SIGNATURE("close($self, /)") "Stop early and free the engine iterator and the buffer."},
    {"__enter__", (PyCFunction)enter_returns_self, METH_NOARGS, SIGNATURE("__enter__($self, /)")},
    {"__exit__", (PyCFunction)(void (*)(void))Range_exit, METH_FASTCALL,
     SIGNATURE("__exit__($self, exc_type, exc, tb, /)") "Close the iterator."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     SIGNATURE("__class_getitem__($type, item, /)") "RangeIterator[bytes] and the like (PEP 585)."},
    {0},
};

PyTypeObject RangeIter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.RangeIterator",
    .tp_basicsize = sizeof(RangeIterObject),
    .tp_dealloc = (destructor)Range_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Iterator returned by keys(), values() and items(): reads one point in time and\n"
              "fetches entries lazily in small chunks.",
    .tp_traverse = (traverseproc)Range_traverse,
    .tp_clear = (inquiry)Range_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Range_next,
    .tp_methods = Range_methods,
};

int weir_iter_init(PyObject *module) {
    if (PyType_Ready(&Iter_Type) < 0 || PyType_Ready(&RangeIter_Type) < 0) return -1;
    if (PyModule_AddObjectRef(module, "Iterator", (PyObject *)&Iter_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "RangeIterator", (PyObject *)&RangeIter_Type);
}
