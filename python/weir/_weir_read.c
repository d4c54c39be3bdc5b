/*
 * _weir_read.c -- the read API of DB, Snapshot and Transaction, written once.
 *
 * A read_source says what a read reads: the DB's latest state, a snapshot
 * of it, or a transaction (its start plus its own writes). get, get_many,
 * keys/values/items, iterator, [], `in` and iter() are implemented here
 * once over a read_source, and the functions below are the methods in the
 * method tables of all three types. The types differ only in parameters:
 * a DB's reads take snapshot=, a Snapshot's do not, a Transaction's get
 * takes for_update=. So each method binds the argument list of the type it
 * is called on, resolves the source (checking that a snapshot is not
 * released, that snapshot= belongs to this DB), and runs the one
 * implementation. A transaction is checked where the engine call starts
 * (after the key is converted), since converting a buffer may run Python
 * code that finishes it.
 *
 * The DB's get stays on a fast path: positional arguments skip the binder.
 */
#include "_weir_internal.h"

#include <stdlib.h>
#include <string.h>

/* Which type a read method was called on. Snapshot and Transaction cannot
 * be subclassed; DB can, so anything else is a DB. */
enum { ON_DB, ON_SNAPSHOT, ON_TXN, N_KINDS };

static inline int reader_kind(PyObject *self) {
    if (Py_IS_TYPE(self, &DB_Type)) return ON_DB;
    if (Py_IS_TYPE(self, &Snapshot_Type)) return ON_SNAPSHOT;
    if (Py_IS_TYPE(self, &Txn_Type)) return ON_TXN;
    return ON_DB;
}

/* The parameters of each read method on each type (NULL: the type has no
 * such method). The range specs are named "items" for keys() and values()
 * too. */
SPEC(spec_db_get, "get", 2, 1, "key", "default", "snapshot");
SPEC(spec_snap_get, "get", 2, 1, "key", "default");
SPEC(spec_txn_get, "get", 2, 1, "key", "default", "for_update");
SPEC(spec_db_get_many, "get_many", 1, 1, "keys", "snapshot");
SPEC(spec_snap_get_many, "get_many", 1, 1, "keys");
SPEC(spec_db_range, "items", 0, 0, "prefix", "start", "stop", "reverse", "snapshot");
SPEC(spec_range, "items", 0, 0, "prefix", "start", "stop", "reverse");
SPEC(spec_db_iterator, "iterator", 0, 0, "prefix", "start", "stop", "snapshot");
SPEC(spec_snap_iterator, "iterator", 0, 0, "prefix", "start", "stop");

static argspec *const read_specs[] = {
    &spec_db_get,      &spec_snap_get,      &spec_txn_get,       &spec_db_get_many, &spec_snap_get_many,
    &spec_db_range,    &spec_range,         &spec_db_iterator,   &spec_snap_iterator,
};

/* Indexed by reader kind. */
static argspec *const get_specs[N_KINDS] = {&spec_db_get, &spec_snap_get, &spec_txn_get};
static argspec *const get_many_specs[N_KINDS] = {&spec_db_get_many, &spec_snap_get_many, NULL};
static argspec *const range_specs[N_KINDS] = {&spec_db_range, &spec_range, &spec_range};
static argspec *const iterator_specs[N_KINDS] = {&spec_db_iterator, &spec_snap_iterator, NULL};

int weir_read_init(void) { return argspecs_init(read_specs, sizeof read_specs / sizeof read_specs[0]); }

/* The source of a read on self. snapshot_arg is a DB read's snapshot=
 * argument (NULL otherwise). -1 with an exception if a snapshot is
 * released or does not fit; a transaction is checked later (see the top). */
static inline int resolve(PyObject *self, int kind, PyObject *snapshot_arg, read_source *src) {
    src->txn = NULL;
    src->snap = NULL;
    if (kind == ON_SNAPSHOT) {
        SnapshotObject *s = (SnapshotObject *)self;
        if (snapshot_usable(s) < 0) return -1;
        src->db = s->db;
        src->snap = s;
        return 0;
    }
    if (kind == ON_TXN) {
        src->txn = (TxnObject *)self;
        src->db = src->txn->db;
        return 0;
    }
    src->db = (DBObject *)self;
    if (!snapshot_arg || snapshot_arg == Py_None) return 0;
    return check_snapshot(src->db, snapshot_arg, &src->snap);
}

/* ---- point reads ------------------------------------------------------------------ */

#define GET_STACK 4096

typedef struct get_sink {
    char *dst;
    size_t cap;
    size_t len;
    char *heap;
    int oom;
} get_sink;

/* Runs inside the engine without the GIL, so it cannot make a bytes
 * object: small values go to the caller's stack, large ones to malloc. */
static void get_sink_fn(void *arg, const void *val, size_t vlen) {
    get_sink *s = arg;
    s->len = vlen;
    if (vlen <= s->cap) {
        if (vlen) memcpy(s->dst, val, vlen);
        return;
    }
    s->heap = malloc(vlen);
    if (!s->heap) {
        s->oom = 1;
        return;
    }
    memcpy(s->heap, val, vlen);
}

static void ignore_value_fn(void *arg, const void *val, size_t vlen) {
    (void)arg;
    (void)val;
    (void)vlen;
}

/* With the GIL held: the value becomes the result at once. */
static void make_bytes_fn(void *arg, const void *val, size_t vlen) {
    *(PyObject **)arg = PyBytes_FromStringAndSize(val, (Py_ssize_t)vlen);
}

/* Look key up in the DB, at its latest state or at snap.
 *
 * First with memory_only and the GIL held: when the memtables or a block
 * already read answer (nearly every read of a working set in memory), the
 * value is copied once, into the bytes object, and the GIL is never
 * dropped; releasing and retaking it cost ~420 instructions, an eighth of
 * a get. Only a read that must go to the table files (WEIR_INCOMPLETE)
 * drops the GIL, so a read from disk never stalls other threads. */
static PyObject *db_lookup(DBObject *self, PyObject *key, SnapshotObject *snap, int *found) {
    bufarg k;
    *found = 0;
    if (bufarg_get(key, &k, "key") < 0) return NULL;
    if (db_enter(self) < 0) {
        bufarg_release(&k);
        return NULL;
    }
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    if (snap) {
        ro.snapshot = snap->snap;
        snap->uses++;
    }
    weir_db *db = self->db;
    ro.memory_only = 1;
    PyObject *value = NULL;
    int rc = weir_get_with(db, &ro, k.ptr, k.len, make_bytes_fn, &value);
    if (rc == WEIR_OK) {
        if (snap) snap->uses--;
        db_leave(self);
        bufarg_release(&k);
        *found = 1;
        return value; /* NULL with MemoryError set if the bytes could not be made */
    }
    Py_CLEAR(value); /* weir_get_with calls fn only for WEIR_OK; never leak if not */
    ro.memory_only = 0;
    char stack[GET_STACK];
    get_sink s = {stack, sizeof stack, 0, NULL, 0};
    if (rc == WEIR_INCOMPLETE) {
        Py_BEGIN_ALLOW_THREADS
        rc = weir_get_with(db, &ro, k.ptr, k.len, get_sink_fn, &s);
        Py_END_ALLOW_THREADS
    }
    if (snap) snap->uses--;
    db_leave(self);
    if (rc == WEIR_OK) {
        bufarg_release(&k);
        *found = 1;
        if (s.oom) return PyErr_NoMemory();
        if (s.heap) {
            PyObject *r = PyBytes_FromStringAndSize(s.heap, (Py_ssize_t)s.len);
            free(s.heap);
            return r;
        }
        return PyBytes_FromStringAndSize(stack, (Py_ssize_t)s.len);
    }
    if (rc == WEIR_NOT_FOUND) {
        bufarg_release(&k);
        return NULL;
    }
    raise_status(rc);
    bufarg_release(&k);
    return NULL;
}

/* `in` on the DB: the lookup without copying the value out. */
static int db_has(DBObject *self, PyObject *key, SnapshotObject *snap) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return -1;
    if (db_enter(self) < 0) {
        bufarg_release(&k);
        return -1;
    }
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    if (snap) {
        ro.snapshot = snap->snap;
        snap->uses++;
    }
    weir_db *db = self->db;
    /* As db_lookup: the GIL is dropped only for a read from the files. */
    ro.memory_only = 1;
    int rc = weir_get_with(db, &ro, k.ptr, k.len, ignore_value_fn, NULL);
    if (rc == WEIR_INCOMPLETE) {
        ro.memory_only = 0;
        Py_BEGIN_ALLOW_THREADS
        rc = weir_get_with(db, &ro, k.ptr, k.len, ignore_value_fn, NULL);
        Py_END_ALLOW_THREADS
    }
    if (snap) snap->uses--;
    db_leave(self);
    int result = rc == WEIR_OK ? 1 : rc == WEIR_NOT_FOUND ? 0 : -1;
    if (result < 0) raise_status(rc);
    bufarg_release(&k);
    return result;
}

/* The lookup of a transaction: its own writes first, then the DB as of its
 * start. The engine allocates the value. */
static PyObject *txn_lookup(TxnObject *t, PyObject *key, int for_update, int *found) {
    *found = 0;
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return NULL;
    if (txn_check(t) < 0 || db_enter(t->db) < 0) {
        bufarg_release(&k);
        return NULL;
    }
    weir_txn *x = t->txn;
    void *val = NULL;
    size_t vlen = 0;
    int rc;
    t->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = for_update ? weir_txn_get_for_update(x, k.ptr, k.len, &val, &vlen)
                    : weir_txn_get(x, k.ptr, k.len, &val, &vlen);
    Py_END_ALLOW_THREADS
    t->busy = 0;
    db_leave(t->db);
    PyObject *r = NULL;
    if (rc == WEIR_OK) {
        *found = 1;
        r = PyBytes_FromStringAndSize(val, (Py_ssize_t)vlen);
        weir_free(val);
    } else if (rc != WEIR_NOT_FOUND) {
        raise_status(rc);
    }
    bufarg_release(&k);
    return r;
}

PyObject *read_lookup(const read_source *src, PyObject *key, int for_update, int *found) {
    if (src->txn) return txn_lookup(src->txn, key, for_update, found);
    return db_lookup(src->db, key, src->snap, found);
}

static int read_has(const read_source *src, PyObject *key) {
    if (!src->txn) return db_has(src->db, key, src->snap);
    int found;
    PyObject *r = txn_lookup(src->txn, key, 0, &found);
    if (r) {
        Py_DECREF(r);
        return 1;
    }
    return PyErr_Occurred() ? -1 : 0;
}

PyObject *read_value_or(const read_source *src, PyObject *key, PyObject *dflt, int for_update) {
    int found;
    PyObject *r = read_lookup(src, key, for_update, &found);
    if (r || found || PyErr_Occurred()) return r;
    return Py_NewRef(dflt ? dflt : Py_None);
}

/* get(key, default=None, *, snapshot=None) on a DB, get(key, default=None)
 * on a Snapshot, get(key, default=None, *, for_update=False) on a
 * Transaction. */
PyObject *read_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    int kind = reader_kind(self);
    read_source src;
    if (kind == ON_DB && !kwnames && (nargs == 1 || nargs == 2)) {
        src.db = (DBObject *)self;
        src.snap = NULL;
        src.txn = NULL;
        return read_value_or(&src, args[0], nargs == 2 ? args[1] : NULL, 0);
    }
    PyObject *a[3];
    if (bind_args(get_specs[kind], args, nargs, kwnames, a) < 0) return NULL;
    int for_update = 0;
    PyObject *snapshot_arg = NULL;
    if (kind == ON_TXN) {
        if (a[2] && (for_update = PyObject_IsTrue(a[2])) < 0) return NULL;
    } else if (kind == ON_DB) {
        snapshot_arg = a[2];
    }
    if (resolve(self, kind, snapshot_arg, &src) < 0) return NULL;
    return read_value_or(&src, a[0], a[1], for_update);
}

PyObject *read_subscript(PyObject *self, PyObject *key) {
    read_source src;
    if (resolve(self, reader_kind(self), NULL, &src) < 0) return NULL;
    int found;
    PyObject *r = read_lookup(&src, key, 0, &found);
    if (r || found || PyErr_Occurred()) return r;
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

int read_contains(PyObject *self, PyObject *key) {
    read_source src;
    if (resolve(self, reader_kind(self), NULL, &src) < 0) return -1;
    return read_has(&src, key);
}

/* ---- get_many ---------------------------------------------------------------------- */

/* One engine call for every key, at one point in time. A DB or a snapshot
 * only: a Transaction has no get_many. */
static PyObject *get_many_at(DBObject *self, PyObject *keys, SnapshotObject *snap) {
    PyObject *seq = PySequence_Fast(keys, "get_many() expects an iterable of keys");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *result = NULL, *owned = NULL;
    const void **kp = NULL;
    size_t *kl = NULL, *vl = NULL;
    void **vals = NULL;
    int *st = NULL;
    if (n == 0) {
        Py_DECREF(seq);
        if (!self->db || self->closing) return raise_closed(self);
        return PyList_New(0);
    }
    kp = PyMem_Malloc((size_t)n * sizeof *kp);
    kl = PyMem_Malloc((size_t)n * sizeof *kl);
    vl = PyMem_Malloc((size_t)n * sizeof *vl);
    vals = PyMem_Calloc((size_t)n, sizeof *vals);
    st = PyMem_Malloc((size_t)n * sizeof *st);
    if (!kp || !kl || !vl || !vals || !st) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = items[i];
        if (!PyBytes_Check(k)) {
            /* Other buffers are copied to bytes, which then stay put for
             * the GIL-free lookup. */
            if (!PyObject_CheckBuffer(k)) {
                PyErr_Format(PyExc_TypeError,
                             "key must be bytes-like (bytes, bytearray or memoryview), not %.100s",
                             Py_TYPE(k)->tp_name);
                goto done;
            }
            if (!owned && !(owned = PyList_New(0))) goto done;
            PyObject *copy = PyBytes_FromObject(k);
            if (!copy) goto done;
            int app = PyList_Append(owned, copy);
            Py_DECREF(copy);
            if (app < 0) goto done;
            k = copy;
        }
        kp[i] = PyBytes_AS_STRING(k);
        kl[i] = (size_t)PyBytes_GET_SIZE(k);
    }
    if (db_enter(self) < 0) goto done;
    weir_readopts ro, *rop = NULL;
    if (snap) {
        memset(&ro, 0, sizeof ro);
        ro.snapshot = snap->snap;
        rop = &ro;
        snap->uses++;
    }
    weir_db *db = self->db;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_multi_get(db, rop, (size_t)n, kp, kl, vals, vl, st);
    Py_END_ALLOW_THREADS
    if (snap) snap->uses--;
    db_leave(self);
    if (rc != WEIR_OK) {
        raise_status(rc);
        goto done;
    }
    result = PyList_New(n);
    if (!result) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v;
        if (st[i] == WEIR_OK) {
            v = PyBytes_FromStringAndSize(vals[i], (Py_ssize_t)vl[i]);
            if (!v) {
                Py_CLEAR(result);
                goto done;
            }
        } else {
            v = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(result, i, v);
    }
done:
    if (vals) {
        for (Py_ssize_t i = 0; i < n; i++) weir_free(vals[i]);
    }
    PyMem_Free(kp);
    PyMem_Free(kl);
    PyMem_Free(vl);
    PyMem_Free(vals);
    PyMem_Free(st);
    Py_XDECREF(owned);
    Py_DECREF(seq);
    return result;
}

PyObject *read_get_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    int kind = reader_kind(self);
    PyObject *a[2];
    read_source src;
    if (bind_args(get_many_specs[kind], args, nargs, kwnames, a) < 0) return NULL;
    if (resolve(self, kind, kind == ON_DB ? a[1] : NULL, &src) < 0) return NULL;
    return get_many_at(src.db, a[0], src.snap);
}

/* ---- ranges and cursors ---------------------------------------------------------- */

/* keys(), values(), items() and iter(): a RangeIterator. */
static PyObject *read_range(PyObject *self, int mode, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames) {
    int kind = reader_kind(self);
    PyObject *a[5] = {NULL, NULL, NULL, NULL, NULL};
    read_source src;
    if (bind_args(range_specs[kind], args, nargs, kwnames, a) < 0) return NULL;
    if (resolve(self, kind, a[4], &src) < 0) return NULL;
    if (src.txn && txn_check(src.txn) < 0) return NULL;
    return make_range(&src, mode, a);
}

PyObject *read_keys(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return read_range(self, MODE_KEYS, args, nargs, kwnames);
}

PyObject *read_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return read_range(self, MODE_VALUES, args, nargs, kwnames);
}

PyObject *read_items(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return read_range(self, MODE_ITEMS, args, nargs, kwnames);
}

PyObject *read_iter(PyObject *self) { return read_range(self, MODE_KEYS, NULL, 0, NULL); }

/* iterator(): a cursor. A DB or a snapshot only. */
PyObject *read_iterator(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    int kind = reader_kind(self);
    PyObject *a[4];
    read_source src;
    if (bind_args(iterator_specs[kind], args, nargs, kwnames, a) < 0) return NULL;
    if (resolve(self, kind, kind == ON_DB ? a[3] : NULL, &src) < 0) return NULL;
    return make_cursor(&src, a);
}
