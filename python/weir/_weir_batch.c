/*
 * _weir_batch.c -- the WriteBatch type: operations applied atomically.
 *
 * A WriteBatch collects puts, deletes, merges and range deletes in an
 * engine batch, with the GIL held (nothing touches disk until it is
 * written). It is written by DB.write(batch) or, when bound to a DB
 * (DB.write_batch() or WriteBatch(db)), by commit() and a clean exit of
 * its context manager. DB.put_many and DB.delete_many build their batch
 * with the helpers here too.
 */
#include "_weir_internal.h"

static PyObject *str_items; /* interned "items" */

/* ---- adding operations ------------------------------------------------------------- */

static int batch_add_put_ttl(weir_batch *b, PyObject *key, PyObject *value, uint64_t ttl_ms) {
    bufarg k, v;
    if (bufarg_get(key, &k, "key") < 0) return -1;
    if (bufarg_get(value, &v, "value") < 0) {
        bufarg_release(&k);
        return -1;
    }
    int rc = ttl_ms ? weir_batch_put_ttl(b, k.ptr, k.len, v.ptr, v.len, ttl_ms)
                    : weir_batch_put(b, k.ptr, k.len, v.ptr, v.len);
    if (rc != WEIR_OK) raise_status(rc);
    bufarg_release(&k);
    bufarg_release(&v);
    return rc == WEIR_OK ? 0 : -1;
}

static int batch_add_put(weir_batch *b, PyObject *key, PyObject *value) {
    return batch_add_put_ttl(b, key, value, 0);
}

int batch_add_delete(weir_batch *b, PyObject *key) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return -1;
    int rc = weir_batch_delete(b, k.ptr, k.len);
    if (rc != WEIR_OK) raise_status(rc);
    bufarg_release(&k);
    return rc == WEIR_OK ? 0 : -1;
}

/* Calls fn(b, key, value, ctx) for each pair of items: a dict, a mapping
 * (through its items()) or an iterable of pairs, each a 2-tuple or, unless
 * tuples_only, any other sequence of two. fn may run Python code that
 * changes items: the pair is held for the call, and a dict that changes
 * size raises as iterating it in Python would. The count, or -1 with an
 * exception. */
typedef int (*pair_fn)(weir_batch *b, PyObject *key, PyObject *value, void *ctx);

static Py_ssize_t for_each_pair(weir_batch *b, PyObject *items, const char *fname, int tuples_only,
                                pair_fn fn, void *ctx) {
    Py_ssize_t count = 0;
    if (PyDict_Check(items)) {
        Py_ssize_t pos = 0, size = PyDict_GET_SIZE(items);
        PyObject *k, *v;
        while (PyDict_Next(items, &pos, &k, &v)) {
            Py_INCREF(k);
            Py_INCREF(v);
            int ok = fn(b, k, v, ctx);
            Py_DECREF(k);
            Py_DECREF(v);
            if (ok < 0) return -1;
            if (PyDict_GET_SIZE(items) != size) {
                PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
                return -1;
            }
            count++;
        }
        return count;
    }
    PyObject *src = NULL;
    if (!PyList_Check(items) && !PyTuple_Check(items)) {
        /* A Mapping that is not a dict: iterate its items(). */
        PyObject *meth = PyObject_GetAttr(items, str_items);
        if (meth) {
            src = PyObject_CallNoArgs(meth);
            Py_DECREF(meth);
            if (!src) return -1;
        } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        } else {
            return -1;
        }
    }
    if (!src) src = Py_NewRef(items);
    PyObject *it = PyObject_GetIter(src);
    Py_DECREF(src);
    if (!it) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError,
                         "%s() expects a mapping or an iterable of (key, value) pairs, not %.100s", fname,
                         Py_TYPE(items)->tp_name);
        }
        return -1;
    }
    PyObject *pair;
    while ((pair = PyIter_Next(it))) {
        int ok;
        if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
            ok = fn(b, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1), ctx);
        } else {
            PyObject *fast = !tuples_only && PySequence_Check(pair) && !PyBytes_Check(pair) &&
                                     !PyUnicode_Check(pair)
                                 ? PySequence_Fast(pair, "")
                                 : NULL;
            if (!fast || PySequence_Fast_GET_SIZE(fast) != 2) {
                Py_XDECREF(fast);
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "%s() items must be (key, value) %s, not %.100s", fname,
                             tuples_only ? "tuples" : "pairs", Py_TYPE(pair)->tp_name);
                ok = -1;
            } else {
                ok = fn(b, PySequence_Fast_GET_ITEM(fast, 0), PySequence_Fast_GET_ITEM(fast, 1), ctx);
                Py_DECREF(fast);
            }
        }
        Py_DECREF(pair);
        if (ok < 0) {
            Py_DECREF(it);
            return -1;
        }
        count++;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return -1;
    return count;
}

static int add_put_pair(weir_batch *b, PyObject *key, PyObject *value, void *ctx) {
    (void)ctx;
    return batch_add_put(b, key, value);
}

Py_ssize_t batch_add_pairs(weir_batch *b, PyObject *items) {
    return for_each_pair(b, items, "put_many", 0, add_put_pair, NULL);
}

/* ---- encoding pairs in C ------------------------------------------------------------ */

typedef struct encoders {
    PyObject *value; /* encode_value(value, key) -> bytes */
    PyObject *key;   /* encode_key(key) -> bytes, or NULL */
} encoders;

/* The bytes of a key: encode_key(key), else a str as UTF-8 (no copy: CPython
 * keeps the UTF-8 of a str) or a bytes-like object as is. Only an exact str
 * is taken as text: a subclass may define its own __str__, so the caller
 * encodes it in Python. *owned gets a reference to release once k is used
 * (NULL if none). */
static int encoded_key(PyObject *key, PyObject *encode_key, bufarg *k, PyObject **owned) {
    *owned = NULL;
    k->has_view = 0;
    if (encode_key) {
        PyObject *r = PyObject_CallOneArg(encode_key, key);
        if (!r) return -1;
        if (!PyBytes_Check(r)) {
            PyErr_Format(PyExc_TypeError, "put_encoded(): encode_key must return bytes, not %.100s",
                         Py_TYPE(r)->tp_name);
            Py_DECREF(r);
            return -1;
        }
        *owned = r;
        k->ptr = PyBytes_AS_STRING(r);
        k->len = (size_t)PyBytes_GET_SIZE(r);
        return 0;
    }
    if (PyUnicode_CheckExact(key)) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(key, &n);
        if (!p) return -1;
        k->ptr = p;
        k->len = (size_t)n;
        return 0;
    }
    if (PyBytes_Check(key) || PyObject_CheckBuffer(key)) return bufarg_get(key, k, "key");
    PyErr_Format(PyExc_TypeError,
                 "put_encoded(): without encode_key a key must be str (not a subclass) or "
                 "bytes-like, not %.100s",
                 Py_TYPE(key)->tp_name);
    return -1;
}

static int add_encoded_pair(weir_batch *b, PyObject *key, PyObject *value, void *ctx) {
    const encoders *enc = ctx;
    PyObject *args[2] = {value, key};
    PyObject *ev = PyObject_Vectorcall(enc->value, args, 2, NULL);
    if (!ev) return -1;
    bufarg v;
    if (bufarg_get(ev, &v, "an encoded value (what encode_value returned)") < 0) {
        Py_DECREF(ev);
        return -1;
    }
    PyObject *owned;
    bufarg k;
    int rc = -1;
    if (encoded_key(key, enc->key, &k, &owned) == 0) {
        int st = weir_batch_put(b, k.ptr, k.len, v.ptr, v.len);
        if (st == WEIR_OK) rc = 0;
        else raise_status(st);
        bufarg_release(&k);
        Py_XDECREF(owned);
    }
    bufarg_release(&v);
    Py_DECREF(ev);
    return rc;
}

Py_ssize_t batch_add_encoded(weir_batch *b, PyObject *items, PyObject *encode_value,
                             PyObject *encode_key) {
    if (!PyCallable_Check(encode_value)) {
        PyErr_Format(PyExc_TypeError, "put_encoded(): encode_value must be callable, not %.100s",
                     Py_TYPE(encode_value)->tp_name);
        return -1;
    }
    if (encode_key == Py_None) encode_key = NULL;
    if (encode_key && !PyCallable_Check(encode_key)) {
        PyErr_Format(PyExc_TypeError, "put_encoded(): encode_key must be callable or None, not %.100s",
                     Py_TYPE(encode_key)->tp_name);
        return -1;
    }
    encoders enc = {encode_value, encode_key};
    return for_each_pair(b, items, "put_encoded", 1, add_encoded_pair, &enc);
}

/* ---- writing a batch ------------------------------------------------------------- */

PyObject *batch_new_bound(DBObject *db, weir_sync_mode sync) {
    BatchObject *b = PyObject_GC_New(BatchObject, &Batch_Type);
    if (!b) return NULL;
    b->db = NULL;
    b->busy = 0;
    b->sync = sync;
    b->batch = weir_batch_create();
    if (!b->batch) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    b->db = (DBObject *)Py_NewRef((PyObject *)db);
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

static const char batch_in_use[] =
    "the WriteBatch is in use: being written by another thread, or filled by put_encoded()";

PyObject *batch_commit_to(BatchObject *b, DBObject *db, weir_sync_mode sync) {
    if (b->busy) {
        PyErr_SetString(PyExc_RuntimeError, batch_in_use);
        return NULL;
    }
    b->busy = 1;
    PyObject *r = write_batch_to(db, b->batch, sync);
    b->busy = 0;
    return r;
}

/* ---- the type --------------------------------------------------------------------- */

SPEC(spec_batch_put, "put", 2, 2, "key", "value", "ttl");
SPEC(spec_batch_delete, "delete", 1, 1, "key");
SPEC(spec_batch_merge, "merge", 3, 3, "key", "op", "operand");
SPEC(spec_batch_incr, "incr", 2, 1, "key", "n");
SPEC(spec_batch_delete_range, "delete_range", 2, 2, "start", "end");
SPEC(spec_batch_put_encoded, "put_encoded", 2, 2, "items", "encode_value", "encode_key");

static argspec *const batch_specs[] = {&spec_batch_put,          &spec_batch_merge,
                                       &spec_batch_incr,         &spec_batch_delete_range,
                                       &spec_batch_delete,       &spec_batch_put_encoded};

static int Batch_traverse(BatchObject *b, visitproc visit, void *arg) {
    Py_VISIT(b->db);
    return 0;
}

static int Batch_clear(BatchObject *b) {
    Py_CLEAR(b->db);
    return 0;
}

static void Batch_dealloc(BatchObject *b) {
    PyObject_GC_UnTrack(b);
    Py_CLEAR(b->db);
    weir_batch_destroy(b->batch);
    PyObject_GC_Del(b);
}

static PyObject *Batch_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"db", "sync", NULL};
    PyObject *db = Py_None, *sync_arg = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$O:WriteBatch", kwlist, &db, &sync_arg)) return NULL;
    if (db != Py_None && !weir_is_db(db)) {
        PyErr_Format(PyExc_TypeError, "db must be a weir.DB or None, not %.100s", Py_TYPE(db)->tp_name);
        return NULL;
    }
    weir_sync_mode sync;
    if (parse_sync(sync_arg, &sync) < 0) return NULL;
    BatchObject *b = (BatchObject *)type->tp_alloc(type, 0);
    if (!b) return NULL;
    b->batch = weir_batch_create();
    if (!b->batch) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    b->db = db == Py_None ? NULL : (DBObject *)Py_NewRef(db);
    b->sync = sync;
    b->busy = 0;
    return (PyObject *)b;
}

static int batch_mutable(BatchObject *b) {
    if (b->busy) {
        PyErr_SetString(PyExc_RuntimeError, batch_in_use);
        return -1;
    }
    return 0;
}

static PyObject *Batch_put(BatchObject *b, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (nargs == 2 && !kwnames) {
        a[0] = args[0];
        a[1] = args[1];
        a[2] = NULL;
    } else if (bind_args(&spec_batch_put, args, nargs, kwnames, a) < 0) {
        return NULL;
    }
    uint64_t ttl_ms;
    if (parse_ttl(a[2], "ttl", &ttl_ms) < 0) return NULL;
    if (batch_mutable(b) < 0 || batch_add_put_ttl(b->batch, a[0], a[1], ttl_ms) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *batch_add_merge(BatchObject *b, PyObject *key, int op, const bufarg *operand) {
    bufarg k;
    if (batch_mutable(b) < 0 || bufarg_get(key, &k, "key") < 0) return NULL;
    int rc = weir_batch_merge(b->batch, k.ptr, k.len, op, operand->ptr, operand->len);
    if (rc != WEIR_OK) raise_status(rc);
    bufarg_release(&k);
    if (rc != WEIR_OK) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Batch_merge(BatchObject *b, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_batch_merge, args, nargs, kwnames, a) < 0) return NULL;
    int op;
    if (parse_merge_op(a[1], &op) < 0) return NULL;
    char num[8];
    bufarg o;
    if (merge_operand(op, a[2], num, &o) < 0) return NULL;
    PyObject *r = batch_add_merge(b, a[0], op, &o);
    bufarg_release(&o);
    return r;
}

static PyObject *Batch_incr(BatchObject *b, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_batch_incr, args, nargs, kwnames, a) < 0) return NULL;
    char num[8];
    bufarg o;
    if (incr_operand(a[1], num, &o) < 0) return NULL;
    return batch_add_merge(b, a[0], WEIR_MERGE_INT64_ADD, &o);
}

static PyObject *Batch_delete_range(BatchObject *b, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_batch_delete_range, args, nargs, kwnames, a) < 0) return NULL;
    if (batch_mutable(b) < 0) return NULL;
    bufarg lo, hi;
    if (bufarg_get(a[0], &lo, "start") < 0) return NULL;
    if (bufarg_get(a[1], &hi, "end") < 0) {
        bufarg_release(&lo);
        return NULL;
    }
    int rc = weir_batch_delete_range(b->batch, lo.ptr, lo.len, hi.ptr, hi.len);
    if (rc != WEIR_OK) raise_status(rc);
    bufarg_release(&lo);
    bufarg_release(&hi);
    if (rc != WEIR_OK) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Batch_delete(BatchObject *b, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[1];
    if (bind_args(&spec_batch_delete, args, nargs, kwnames, a) < 0) return NULL;
    if (batch_mutable(b) < 0 || batch_add_delete(b->batch, a[0]) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Batch_put_many(BatchObject *b, PyObject *items) {
    if (batch_mutable(b) < 0) return NULL;
    Py_ssize_t n = batch_add_pairs(b->batch, items);
    if (n < 0) return NULL;
    return PyLong_FromSsize_t(n);
}

static PyObject *Batch_put_encoded(BatchObject *b, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_batch_put_encoded, args, nargs, kwnames, a) < 0) return NULL;
    if (batch_mutable(b) < 0) return NULL;
    /* Encoding runs Python code, which could otherwise write or clear this
     * batch meanwhile. */
    b->busy = 1;
    Py_ssize_t n = batch_add_encoded(b->batch, a[0], a[1], a[2]);
    b->busy = 0;
    if (n < 0) return NULL;
    return PyLong_FromSsize_t(n);
}

static PyObject *Batch_clear_method(BatchObject *b, PyObject *u) {
    (void)u;
    if (batch_mutable(b) < 0) return NULL;
    weir_batch_clear(b->batch);
    Py_RETURN_NONE;
}

static PyObject *Batch_commit(BatchObject *b, PyObject *u) {
    (void)u;
    if (!b->db) return raise_fmt(WEIR_INVALID, "this WriteBatch is not bound to a DB; use DB.write(batch)");
    PyObject *r = batch_commit_to(b, b->db, b->sync);
    if (r) weir_batch_clear(b->batch);
    return r;
}

static PyObject *Batch_exit(BatchObject *b, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs >= 1 && args[0] != Py_None) {
        /* An exception left the block: nothing of the batch is applied. */
        if (!b->busy) weir_batch_clear(b->batch);
        Py_RETURN_FALSE;
    }
    if (b->db && weir_batch_count(b->batch) > 0) {
        PyObject *r = Batch_commit(b, NULL);
        if (!r) return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_FALSE;
}

static Py_ssize_t Batch_len(BatchObject *b) { return (Py_ssize_t)weir_batch_count(b->batch); }

static PyObject *Batch_get_nbytes(BatchObject *b, void *u) {
    (void)u;
    return PyLong_FromSize_t(weir_batch_bytes(b->batch));
}

static PyObject *Batch_get_db(BatchObject *b, void *u) {
    (void)u;
    return Py_NewRef(b->db ? (PyObject *)b->db : Py_None);
}

static PyObject *Batch_repr(BatchObject *b) {
    return PyUnicode_FromFormat("<weir.WriteBatch %zu ops, %zu bytes>", weir_batch_count(b->batch),
                                weir_batch_bytes(b->batch));
}

static PyMethodDef Batch_methods[] = {
    {"put", FASTKW(Batch_put),
     SIGNATURE("put($self, key, value, *, ttl=None)") "Add a put; ttl in seconds or a timedelta."},
    {"delete", FASTKW(Batch_delete), SIGNATURE("delete($self, key)") "Add a delete."},
    {"merge", FASTKW(Batch_merge),
     SIGNATURE("merge($self, key, op, operand)") "Add a merge with operator op."},
    {"incr", FASTKW(Batch_incr), SIGNATURE("incr($self, key, n=1)") "Add an int64 add of n."},
    {"delete_range", FASTKW(Batch_delete_range),
     SIGNATURE("delete_range($self, start, end)") "Add a delete of the keys in [start, end)."},
    {"put_many", (PyCFunction)Batch_put_many, METH_O,
     SIGNATURE("put_many($self, items, /)")
     "Add a put for each (key, value) of a mapping or an iterable of pairs; returns the count."},
    {"put_encoded", FASTKW(Batch_put_encoded),
     SIGNATURE("put_encoded($self, items, encode_value, *, encode_key=None)")
     "Add a put for each (key, value) of a mapping or an iterable of 2-tuples, encoded in this\n"
     "one call: the value as encode_value(value, key), the key as encode_key(key) or, when\n"
     "encode_key is None, a str (not a subclass) as UTF-8 and a bytes-like key as is.\n"
     "encode_value must return a bytes-like object, encode_key bytes.\n"
     "Returns the count; on an error the pairs before the failing one stay in the batch."},
    {"clear", (PyCFunction)Batch_clear_method, METH_NOARGS,
     SIGNATURE("clear($self, /)") "Drop every operation."},
    {"commit", (PyCFunction)Batch_commit, METH_NOARGS,
     SIGNATURE("commit($self, /)") "Apply the batch atomically to the bound DB, then clear it."},
    {"__enter__", (PyCFunction)enter_returns_self, METH_NOARGS, SIGNATURE("__enter__($self, /)")},
    {"__exit__", (PyCFunction)(void (*)(void))Batch_exit, METH_FASTCALL,
     SIGNATURE("__exit__($self, exc_type, exc, tb, /)")
     "Commit on a clean exit (if bound to a DB), discard on an exception."},
    {0},
};

static PyGetSetDef Batch_getset[] = {
    {"nbytes", (getter)Batch_get_nbytes, NULL, "encoded size of the batch in bytes", NULL},
    {"db", (getter)Batch_get_db, NULL, "the DB commit() writes to, or None", NULL},
    {0},
};

static PySequenceMethods Batch_as_sequence = {
    .sq_length = (lenfunc)Batch_len,
};

PyTypeObject Batch_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.WriteBatch",
    .tp_basicsize = sizeof(BatchObject),
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_repr = (reprfunc)Batch_repr,
    .tp_as_sequence = &Batch_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = SIGNATURE("WriteBatch(db=None, *, sync=None)")
              "Puts, deletes, merges and range deletes applied atomically. As a context manager (from\n"
              "DB.write_batch()) it commits on a clean exit and discards on an exception.",
    .tp_traverse = (traverseproc)Batch_traverse,
    .tp_clear = (inquiry)Batch_clear,
    .tp_methods = Batch_methods,
    .tp_getset = Batch_getset,
    .tp_new = Batch_new,
};

int weir_batch_init(PyObject *module) {
    if (!str_items && !(str_items = PyUnicode_InternFromString("items"))) return -1;
    if (argspecs_init(batch_specs, sizeof batch_specs / sizeof batch_specs[0]) < 0) return -1;
    if (PyType_Ready(&Batch_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "WriteBatch", (PyObject *)&Batch_Type);
}
