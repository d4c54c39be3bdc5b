/*
 * _weir_snapshot.c -- the Snapshot type: a consistent point-in-time view.
 *
 * It owns a snapshot's life: DB.snapshot() makes one, release() (or the
 * context manager, or the DB's close(), or garbage collection) gives it
 * back to the engine once the reads in flight through it are done. Its
 * reads are the shared ones of _weir_read.c; a DB read's snapshot=
 * argument is checked here (check_snapshot).
 */
#include "_weir_internal.h"

#include <unistd.h>

static void snapshot_invalidate(PyObject *o);

PyObject *make_snapshot(DBObject *self) {
    if (db_enter(self) < 0) return NULL;
    weir_db *db = self->db;
    weir_snapshot *snap = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_snapshot_create(db, &snap);
    Py_END_ALLOW_THREADS
    db_leave(self);
    if (rc != WEIR_OK) return raise_status(rc);
    SnapshotObject *s = PyObject_GC_New(SnapshotObject, &Snapshot_Type);
    if (!s) {
        weir_snapshot_release(db, snap);
        return NULL;
    }
    s->db = (DBObject *)Py_NewRef((PyObject *)self);
    s->snap = snap;
    s->uses = 0;
    s->sequence = weir_snapshot_sequence(snap);
    dep_link(self, &s->node, (PyObject *)s, snapshot_invalidate);
    PyObject_GC_Track(s);
    return (PyObject *)s;
}

int check_snapshot(DBObject *self, PyObject *o, SnapshotObject **out) {
    *out = NULL;
    if (!o || o == Py_None) return 0;
    if (!PyObject_TypeCheck(o, &Snapshot_Type)) {
        PyErr_Format(PyExc_TypeError, "snapshot must be a weir.Snapshot or None, not %.100s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    SnapshotObject *s = (SnapshotObject *)o;
    if (s->db != self) {
        raise_fmt(WEIR_INVALID, "the snapshot belongs to another DB");
        return -1;
    }
    if (!s->snap) {
        raise_fmt(WEIR_CLOSED, "the snapshot has been released");
        return -1;
    }
    *out = s;
    return 0;
}

static void snapshot_invalidate(PyObject *o) {
    SnapshotObject *s = (SnapshotObject *)o;
    if (s->snap) {
        weir_snapshot_release(s->db->db, s->snap);
        s->snap = NULL;
    }
}

static int snapshot_release(SnapshotObject *s) {
    if (!s->snap) return 0;
    if ((long)getpid() != s->db->owner_pid) { /* inherited through fork(): see db_close */
        s->snap = NULL;
        return 0;
    }
    long ns = 10000;
    while (s->uses > 0) nap(&ns);
    if (!s->snap) return 0; /* released by a racing close() */
    dep_unlink(&s->node);
    snapshot_invalidate((PyObject *)s);
    return 0;
}

static int Snapshot_traverse(SnapshotObject *s, visitproc visit, void *arg) {
    Py_VISIT(s->db);
    return 0;
}

static int Snapshot_clear(SnapshotObject *s) {
    if (s->db) {
        snapshot_release(s);
        Py_CLEAR(s->db);
    }
    return 0;
}

static void Snapshot_dealloc(SnapshotObject *s) {
    PyObject_GC_UnTrack(s);
    Snapshot_clear(s);
    PyObject_GC_Del(s);
}

int snapshot_usable(SnapshotObject *s) {
    if (!s->db || !s->snap) {
        raise_fmt(WEIR_CLOSED, "the snapshot has been released");
        return -1;
    }
    return 0;
}

static PyObject *Snapshot_release(SnapshotObject *s, PyObject *unused) {
    (void)unused;
    snapshot_release(s);
    Py_RETURN_NONE;
}

static PyObject *Snapshot_enter(SnapshotObject *s, PyObject *unused) {
    (void)unused;
    if (snapshot_usable(s) < 0) return NULL;
    return Py_NewRef((PyObject *)s);
}

static PyObject *Snapshot_exit(SnapshotObject *s, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    snapshot_release(s);
    Py_RETURN_FALSE;
}

static PyObject *Snapshot_get_released(SnapshotObject *s, void *unused) {
    (void)unused;
    return PyBool_FromLong(s->snap == NULL);
}

static PyObject *Snapshot_get_sequence(SnapshotObject *s, void *unused) {
    (void)unused;
    return PyLong_FromUnsignedLongLong(s->sequence);
}

static PyObject *Snapshot_get_db(SnapshotObject *s, void *unused) {
    (void)unused;
    return Py_NewRef(s->db ? (PyObject *)s->db : Py_None);
}

static PyObject *Snapshot_repr(SnapshotObject *s) {
    return PyUnicode_FromFormat("<weir.Snapshot seq=%llu%s>", (unsigned long long)s->sequence,
                                s->snap ? "" : " released");
}

static PyMethodDef Snapshot_methods[] = {
    {"get", FASTKW(read_get),
     SIGNATURE("get($self, key, default=None)")
     "The value of key (bytes) as of the snapshot, or default if it was absent."},
    {"get_many", FASTKW(read_get_many),
     SIGNATURE("get_many($self, keys)") "The values of keys (None where absent) as of the snapshot."},
    {"keys", FASTKW(read_keys),
     SIGNATURE("keys($self, *, prefix=None, start=None, stop=None, reverse=False)")
     "A RangeIterator over the keys in [start, stop) that start with prefix."},
    {"values", FASTKW(read_values),
     SIGNATURE("values($self, *, prefix=None, start=None, stop=None, reverse=False)")
     "A RangeIterator over the values of the keys in [start, stop) that start with prefix."},
    {"items", FASTKW(read_items),
     SIGNATURE("items($self, *, prefix=None, start=None, stop=None, reverse=False)")
     "A RangeIterator over the (key, value) pairs in [start, stop) that start with prefix."},
    {"iterator", FASTKW(read_iterator),
     SIGNATURE("iterator($self, *, prefix=None, start=None, stop=None)")
     "An unpositioned Iterator (a cursor) over the snapshot."},
    {"release", (PyCFunction)Snapshot_release, METH_NOARGS,
     SIGNATURE("release($self, /)") "Give the snapshot back to the engine; idempotent."},
    {"close", (PyCFunction)Snapshot_release, METH_NOARGS,
     SIGNATURE("close($self, /)") "The same as release()."},
    {"__enter__", (PyCFunction)Snapshot_enter, METH_NOARGS, SIGNATURE("__enter__($self, /)")},
    {"__exit__", (PyCFunction)(void (*)(void))Snapshot_exit, METH_FASTCALL,
     SIGNATURE("__exit__($self, exc_type, exc, tb, /)") "Release the snapshot."},
    {0},
};

static PyGetSetDef Snapshot_getset[] = {
    {"released", (getter)Snapshot_get_released, NULL, "True once released", NULL},
    {"sequence", (getter)Snapshot_get_sequence, NULL, "the sequence number the snapshot reads at", NULL},
    {"db", (getter)Snapshot_get_db, NULL, "the DB the snapshot belongs to", NULL},
    {0},
};

static PyMappingMethods Snapshot_as_mapping = {
    .mp_subscript = read_subscript,
};

static PySequenceMethods Snapshot_as_sequence = {
    .sq_contains = read_contains,
};

PyTypeObject Snapshot_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.Snapshot",
    .tp_basicsize = sizeof(SnapshotObject),
    .tp_dealloc = (destructor)Snapshot_dealloc,
    .tp_repr = (reprfunc)Snapshot_repr,
    .tp_as_sequence = &Snapshot_as_sequence,
    .tp_as_mapping = &Snapshot_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A consistent point-in-time view of a DB (from DB.snapshot()). Release it, or use it\n"
              "as a context manager, so compaction can drop the old versions it pins.",
    .tp_traverse = (traverseproc)Snapshot_traverse,
    .tp_clear = (inquiry)Snapshot_clear,
    .tp_iter = read_iter,
    .tp_methods = Snapshot_methods,
    .tp_getset = Snapshot_getset,
};

int weir_snapshot_init(PyObject *module) {
    if (PyType_Ready(&Snapshot_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "Snapshot", (PyObject *)&Snapshot_Type);
}
