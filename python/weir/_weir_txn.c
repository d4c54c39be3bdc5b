/*
 * _weir_txn.c -- the Transaction type: an optimistic transaction.
 *
 * It owns a transaction's life (DB.transaction() begins one; commit(),
 * rollback(), the context manager, the DB's close() or garbage collection
 * ends it, after dropping the range iterators over it, which the engine
 * wants gone first) and its writes, which only append to the
 * transaction's buffer and so run with the GIL held. Its reads are the
 * shared ones of _weir_read.c (get_for_update is get with for_update).
 */
#include "_weir_internal.h"

SPEC(spec_txn_get_for_update, "get_for_update", 2, 1, "key", "default");
SPEC(spec_txn_put, "put", 2, 2, "key", "value");
SPEC(spec_txn_delete, "delete", 1, 1, "key");
SPEC(spec_txn_merge, "merge", 3, 3, "key", "op", "operand");
SPEC(spec_txn_incr, "incr", 2, 1, "key", "n");

static argspec *const txn_specs[] = {&spec_txn_get_for_update, &spec_txn_put, &spec_txn_delete,
                                     &spec_txn_merge, &spec_txn_incr};

static void txn_invalidate(PyObject *o);

PyObject *txn_begin(DBObject *self, const weir_txnopts *opts) {
    /* Allocate first: nothing may run Python code (and so maybe close the
     * DB) between the begin and linking the transaction to the DB. */
    TxnObject *t = PyObject_GC_New(TxnObject, &Txn_Type);
    if (!t) return NULL;
    t->db = NULL;
    t->txn = NULL;
    t->state = TXN_ROLLED_BACK;
    t->busy = 0;
    t->node.next = t->node.prev = NULL;
    t->iters.next = t->iters.prev = &t->iters;
    t->iters.owner = NULL;
    t->iters.invalidate = NULL;
    if (db_enter(self) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    weir_db *db = self->db;
    weir_txn *x = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_txn_begin(db, opts, &x);
    Py_END_ALLOW_THREADS
    db_leave(self);
    if (rc != WEIR_OK) {
        raise_status(rc);
        Py_DECREF(t);
        return NULL;
    }
    t->db = (DBObject *)Py_NewRef((PyObject *)self);
    t->txn = x;
    t->state = TXN_ACTIVE;
    dep_link(self, &t->node, (PyObject *)t, txn_invalidate);
    PyObject_GC_Track(t);
    return (PyObject *)t;
}

/* Destroy the engine iterators over the transaction; the engine wants them
 * gone before the transaction finishes. */
static void txn_drop_iters(TxnObject *t, int why) {
    while (t->iters.next != &t->iters) range_invalidate_as((RangeIterObject *)t->iters.next->owner, why);
}

static void txn_release(TxnObject *t, int why) {
    txn_drop_iters(t, why);
    if (t->txn) {
        /* An active transaction is rolled back by this. */
        weir_txn_destroy(t->txn);
        t->txn = NULL;
    }
    dep_unlink(&t->node);
}

/* The DB is closing (its list has already let go of us). */
static void txn_invalidate(PyObject *o) {
    TxnObject *t = (TxnObject *)o;
    if (t->state == TXN_ACTIVE) t->state = TXN_CLOSED;
    txn_release(t, INV_DB_CLOSED);
}

int txn_check(TxnObject *t) {
    if (!t->txn) {
        switch (t->state) {
        case TXN_CLOSED: raise_fmt(WEIR_CLOSED, "the transaction's DB was closed"); break;
        case TXN_COMMITTED: raise_fmt(WEIR_INVALID, "the transaction is already committed; begin a new one"); break;
        case TXN_FAILED: raise_fmt(WEIR_INVALID, "the transaction's commit failed; begin a new one"); break;
        default: raise_fmt(WEIR_INVALID, "the transaction is rolled back; begin a new one"); break;
        }
        return -1;
    }
    if (t->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the transaction is in use by another thread");
        return -1;
    }
    if (t->db->closing) {
        raise_closed(t->db);
        return -1;
    }
    return 0;
}

static int Txn_traverse(TxnObject *t, visitproc visit, void *arg) {
    Py_VISIT(t->db);
    return 0;
}

static int Txn_clear(TxnObject *t) {
    if (t->state == TXN_ACTIVE) t->state = TXN_ROLLED_BACK;
    txn_release(t, INV_TXN_FINISHED);
    Py_CLEAR(t->db);
    return 0;
}

static void Txn_dealloc(TxnObject *t) {
    PyObject_GC_UnTrack(t);
    Txn_clear(t);
    PyObject_GC_Del(t);
}

static PyObject *Txn_get_for_update(TxnObject *t, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_txn_get_for_update, args, nargs, kwnames, a) < 0) return NULL;
    read_source src = {t->db, NULL, t};
    return read_value_or(&src, a[0], a[1], 1);
}

/* The writes only append to the transaction's buffer (no disk, no lock),
 * so they run with the GIL held. */
static int txn_put(TxnObject *t, PyObject *key, PyObject *value) {
    bufarg k, v;
    if (bufarg_get(key, &k, "key") < 0) return -1;
    if (bufarg_get(value, &v, "value") < 0) {
        bufarg_release(&k);
        return -1;
    }
    int rc = txn_check(t) < 0 ? -1 : weir_txn_put(t->txn, k.ptr, k.len, v.ptr, v.len);
    if (rc > 0) raise_status(rc);
    bufarg_release(&k);
    bufarg_release(&v);
    return rc == WEIR_OK ? 0 : -1;
}

static int txn_delete(TxnObject *t, PyObject *key) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return -1;
    int rc = txn_check(t) < 0 ? -1 : weir_txn_delete(t->txn, k.ptr, k.len);
    if (rc > 0) raise_status(rc);
    bufarg_release(&k);
    return rc == WEIR_OK ? 0 : -1;
}

static PyObject *txn_merge(TxnObject *t, PyObject *key, int op, const bufarg *operand) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return NULL;
    int rc = txn_check(t) < 0 ? -1 : weir_txn_merge(t->txn, k.ptr, k.len, op, operand->ptr, operand->len);
    if (rc > 0) raise_status(rc);
    bufarg_release(&k);
    if (rc != WEIR_OK) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Txn_put(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_txn_put, args, nargs, kwnames, a) < 0) return NULL;
    if (txn_put(t, a[0], a[1]) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Txn_delete(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[1];
    if (bind_args(&spec_txn_delete, args, nargs, kwnames, a) < 0) return NULL;
    if (txn_delete(t, a[0]) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Txn_merge(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_txn_merge, args, nargs, kwnames, a) < 0) return NULL;
    int op;
    if (parse_merge_op(a[1], &op) < 0) return NULL;
    char num[8];
    bufarg o;
    if (merge_operand(op, a[2], num, &o) < 0) return NULL;
    PyObject *r = txn_merge(t, a[0], op, &o);
    bufarg_release(&o);
    return r;
}

static PyObject *Txn_incr(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_txn_incr, args, nargs, kwnames, a) < 0) return NULL;
    char num[8];
    bufarg o;
    if (incr_operand(a[1], num, &o) < 0) return NULL;
    return txn_merge(t, a[0], WEIR_MERGE_INT64_ADD, &o);
}

static PyObject *Txn_commit(TxnObject *t, PyObject *u) {
    (void)u;
    if (txn_check(t) < 0 || db_enter(t->db) < 0) return NULL;
    txn_drop_iters(t, INV_TXN_FINISHED);
    weir_txn *x = t->txn;
    int rc;
    t->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_txn_commit(x);
    Py_END_ALLOW_THREADS
    t->busy = 0;
    db_leave(t->db);
    t->state = rc == WEIR_OK ? TXN_COMMITTED : TXN_FAILED;
    /* Raise before txn_release: the message is the engine's latest. */
    PyObject *r = rc == WEIR_OK ? Py_NewRef(Py_None) : raise_status(rc);
    txn_release(t, INV_TXN_FINISHED);
    return r;
}

static PyObject *Txn_rollback(TxnObject *t, PyObject *u) {
    (void)u;
    /* Finished already (or its DB closed): nothing is left to discard. */
    if (!t->txn) Py_RETURN_NONE;
    if (t->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the transaction is in use by another thread");
        return NULL;
    }
    t->state = TXN_ROLLED_BACK;
    txn_release(t, INV_TXN_FINISHED);
    Py_RETURN_NONE;
}

static PyObject *Txn_enter(TxnObject *t, PyObject *u) {
    (void)u;
    if (txn_check(t) < 0) return NULL;
    return Py_NewRef((PyObject *)t);
}

static PyObject *Txn_exit(TxnObject *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs >= 1 && args[0] != Py_None) {
        PyObject *r = Txn_rollback(t, NULL);
        if (!r) return NULL;
        Py_DECREF(r);
        Py_RETURN_FALSE;
    }
    /* A clean exit must not pass silently over writes the close discarded. */
    if (t->state == TXN_CLOSED) return raise_fmt(WEIR_CLOSED, "the transaction's DB was closed before it committed");
    if (t->txn) {
        PyObject *r = Txn_commit(t, NULL);
        if (!r) return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_FALSE;
}

static int Txn_ass_subscript(TxnObject *t, PyObject *key, PyObject *value) {
    return value ? txn_put(t, key, value) : txn_delete(t, key);
}

static PyObject *Txn_get_committed(TxnObject *t, void *u) {
    (void)u;
    return PyBool_FromLong(t->state == TXN_COMMITTED);
}

static PyObject *Txn_get_finished(TxnObject *t, void *u) {
    (void)u;
    return PyBool_FromLong(t->txn == NULL);
}

static PyObject *Txn_get_db(TxnObject *t, void *u) {
    (void)u;
    return Py_NewRef(t->db ? (PyObject *)t->db : Py_None);
}

static PyObject *Txn_repr(TxnObject *t) {
    static const char *const names[] = {"active", "committed", "commit failed", "rolled back",
                                        "DB closed"};
    return PyUnicode_FromFormat("<weir.Transaction %s>", names[t->state]);
}

static PyMethodDef Txn_methods[] = {
    {"get", FASTKW(read_get),
     SIGNATURE("get($self, key, default=None, *, for_update=False)")
     "The value of key (bytes), its own writes first, or default if it is absent."},
    {"get_for_update", FASTKW(Txn_get_for_update),
     SIGNATURE("get_for_update($self, key, default=None)")
     "get(), and commit() fails if another commit changes key meanwhile."},
    {"put", FASTKW(Txn_put), SIGNATURE("put($self, key, value)") "Buffer a put until commit."},
    {"delete", FASTKW(Txn_delete), SIGNATURE("delete($self, key)") "Buffer a delete until commit."},
    {"merge", FASTKW(Txn_merge),
     SIGNATURE("merge($self, key, op, operand)") "Buffer a merge until commit."},
    {"incr", FASTKW(Txn_incr),
     SIGNATURE("incr($self, key, n=1)") "Buffer an int64 add of n until commit."},
    {"keys", FASTKW(read_keys),
     SIGNATURE("keys($self, *, prefix=None, start=None, stop=None, reverse=False)")
     "A RangeIterator over the keys in [start, stop) that start with prefix, own writes included."},
    {"values", FASTKW(read_values),
     SIGNATURE("values($self, *, prefix=None, start=None, stop=None, reverse=False)")
     "A RangeIterator over the values of the keys in [start, stop) that start with prefix."},
    {"items", FASTKW(read_items),
     SIGNATURE("items($self, *, prefix=None, start=None, stop=None, reverse=False)")
     "A RangeIterator over the (key, value) pairs in [start, stop) that start with prefix."},
    {"commit", (PyCFunction)Txn_commit, METH_NOARGS,
     SIGNATURE("commit($self, /)")
     "Write the buffered writes atomically; raises ConflictError (nothing written) if a key it\n"
     "wrote or read for update changed meanwhile."},
    {"rollback", (PyCFunction)Txn_rollback, METH_NOARGS,
     SIGNATURE("rollback($self, /)") "Discard the writes; does nothing once finished."},
    {"__enter__", (PyCFunction)Txn_enter, METH_NOARGS, SIGNATURE("__enter__($self, /)")},
    {"__exit__", (PyCFunction)(void (*)(void))Txn_exit, METH_FASTCALL,
     SIGNATURE("__exit__($self, exc_type, exc, tb, /)")
     "Commit on a clean exit, roll back on an exception."},
    {0},
};

static PyGetSetDef Txn_getset[] = {
    {"committed", (getter)Txn_get_committed, NULL, "True once commit() succeeded", NULL},
    {"finished", (getter)Txn_get_finished, NULL,
     "True once committed, rolled back, failed to commit, or invalidated by DB.close()", NULL},
    {"db", (getter)Txn_get_db, NULL, "the DB the transaction belongs to", NULL},
    {0},
};

static PyMappingMethods Txn_as_mapping = {
    .mp_subscript = read_subscript,
    .mp_ass_subscript = (objobjargproc)Txn_ass_subscript,
};

static PySequenceMethods Txn_as_sequence = {
    .sq_contains = read_contains,
};

PyTypeObject Txn_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.Transaction",
    .tp_basicsize = sizeof(TxnObject),
    .tp_dealloc = (destructor)Txn_dealloc,
    .tp_repr = (reprfunc)Txn_repr,
    .tp_as_sequence = &Txn_as_sequence,
    .tp_as_mapping = &Txn_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An optimistic transaction (from DB.transaction()). It reads the DB as of its\n"
              "start plus its own writes, buffers writes until commit(), and commit() raises\n"
              "ConflictError, writing nothing, if another commit changed a key it wrote or\n"
              "read with get_for_update() meanwhile. As a context manager it commits on a\n"
              "clean exit and rolls back on an exception. Use it from one thread at a time.",
    .tp_traverse = (traverseproc)Txn_traverse,
    .tp_clear = (inquiry)Txn_clear,
    .tp_iter = read_iter,
    .tp_methods = Txn_methods,
    .tp_getset = Txn_getset,
};

int weir_txn_init(PyObject *module) {
    if (argspecs_init(txn_specs, sizeof txn_specs / sizeof txn_specs[0]) < 0) return -1;
    if (PyType_Ready(&Txn_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "Transaction", (PyObject *)&Txn_Type);
}
