/*
 * _weir.c -- the CPython extension over libweir's public C API (weir.h).
 *
 * It owns the Python objects DB, WriteBatch, Snapshot, Iterator (a cursor),
 * RangeIterator (what keys()/values()/items() return) and Transaction, the
 * mapping of weir status codes to exception classes, and nothing else: no
 * codecs, no store logic. Keys and values are any contiguous buffer; bytes
 * take a pointer fast path, everything else goes through Py_buffer.
 *
 * Threading. Every engine call that can touch disk or wait on a lock runs
 * with the GIL released. A DB counts the calls it has in flight without the
 * GIL; close() marks the DB closing (new calls raise ClosedError), waits for
 * that count to reach zero, invalidates the iterators, snapshots and
 * transactions still bound to it (a transaction first drops the iterators
 * over it), and only then closes the engine handle, so no call ever runs
 * against a freed handle. The counters and the lists of dependants are only
 * touched with the GIL held, which serialises them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weir.h"
#include "_weir_internal.h"

/* ---- exceptions ------------------------------------------------------------ */

static PyObject *Error;
static PyObject *CorruptionError;
static PyObject *StorageIOError;
static PyObject *NoSpaceError;
static PyObject *ReadOnlyError;
static PyObject *BusyError;
static PyObject *InvalidArgumentError;
static PyObject *ClosedError;
static PyObject *ConflictError;

static PyObject *str_status; /* interned "status" */
static PyObject *str_errno;  /* interned "errno" */
static PyObject *str_items;  /* interned "items" */
static PyObject *str_total_seconds; /* interned "total_seconds" */

static PyObject *exception_for(int status) {
    switch (status) {
    case WEIR_CORRUPTION: return CorruptionError;
    case WEIR_IO_ERROR: return StorageIOError;
    case WEIR_READ_ONLY: return ReadOnlyError;
    case WEIR_NO_SPACE: return NoSpaceError;
    case WEIR_BUSY: return BusyError;
    case WEIR_INVALID: return InvalidArgumentError;
    /* Both come from options the caller chose (error_if_exists, a
     * compression codec this build lacks), so they are argument errors. */
    case WEIR_EXISTS: return InvalidArgumentError;
    case WEIR_NOT_SUPPORTED: return InvalidArgumentError;
    case WEIR_CLOSED: return ClosedError;
    case WEIR_CONFLICT: return ConflictError;
    default: return Error;
    }
}

/* Raise the exception class of `status` with message `msg` (a str, stolen)
 * and .status set to the C status name. Always returns NULL. */
static PyObject *raise_with(int status, PyObject *msg) {
    if (!msg) return NULL;
    if (status == WEIR_NO_MEMORY) {
        PyErr_SetObject(PyExc_MemoryError, msg);
        Py_DECREF(msg);
        return NULL;
    }
    PyObject *type = exception_for(status);
    PyObject *exc = PyObject_CallOneArg(type, msg);
    Py_DECREF(msg);
    if (!exc) return NULL;
    PyObject *name = PyUnicode_FromString(weir_status_name(status));
    if (!name || PyObject_SetAttr(exc, str_status, name) < 0) {
        Py_XDECREF(name);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(name);
    if (status == WEIR_NO_SPACE) {
        PyObject *e = PyLong_FromLong(ENOSPC);
        if (!e || PyObject_SetAttr(exc, str_errno, e) < 0) {
            Py_XDECREF(e);
            Py_DECREF(exc);
            return NULL;
        }
        Py_DECREF(e);
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* Raise for a failed engine call. Must run in the thread that made the
 * call, before any other weir call in it: the message is thread-local. */
PyObject *raise_status(int status) {
    const char *m = weir_errmsg();
    if (!m || !*m) m = weir_status_name(status);
    /* Messages may quote key bytes; never fail on invalid UTF-8. */
    return raise_with(status, PyUnicode_DecodeUTF8(m, (Py_ssize_t)strlen(m), "backslashreplace"));
}

PyObject *raise_fmt(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    return raise_with(status, msg);
}

/* ---- fast argument binding ------------------------------------------------- */

/* A method's parameters: the first `npos` may be passed by position, the
 * rest only by keyword; the first `nreq` are required. The names are
 * interned at import so the usual keyword lookup is a pointer compare. */
typedef struct argspec {
    const char *fname;
    const char *const *names;
    int npos;
    int nreq;
    int n;
    PyObject **keys;
} argspec;

#define MAX_PARAMS 16

static int argspec_init(argspec *sp) {
    int n = 0;
    while (sp->names[n]) n++;
    sp->n = n;
    sp->keys = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    if (!sp->keys) return -1;
    for (int i = 0; i < n; i++) {
        sp->keys[i] = PyUnicode_InternFromString(sp->names[i]);
        if (!sp->keys[i]) return -1;
    }
    return 0;
}

/* Fill out[0..sp->n) from a vectorcall; absent parameters are NULL. */
static int bind_args(const argspec *sp, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                     PyObject **out) {
    if (nargs > sp->npos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional argument%s (%zd given)",
                     sp->fname, sp->npos, sp->npos == 1 ? "" : "s", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < sp->n; i++) out[i] = i < nargs ? args[i] : NULL;
    if (kwnames) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t j = 0; j < nkw; j++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, j);
            int idx = -1;
            for (int i = 0; i < sp->n && idx < 0; i++)
                if (sp->keys[i] == name) idx = i;
            for (int i = 0; i < sp->n && idx < 0; i++)
                if (PyUnicode_Compare(sp->keys[i], name) == 0) idx = i;
            if (idx < 0) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", sp->fname,
                             name);
                return -1;
            }
            if (out[idx]) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", sp->fname,
                             sp->names[idx]);
                return -1;
            }
            out[idx] = args[nargs + j];
        }
    }
    for (int i = 0; i < sp->nreq; i++) {
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %d)", sp->fname,
                         sp->names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

#define SPEC(var, fname, npos, nreq, ...)                                 \
    static const char *const var##_names[] = {__VA_ARGS__, NULL};        \
    static argspec var = {fname, var##_names, npos, nreq, 0, NULL}

SPEC(spec_get, "get", 2, 1, "key", "default", "snapshot");
SPEC(spec_put, "put", 2, 2, "key", "value", "sync", "ttl");
SPEC(spec_delete, "delete", 1, 1, "key", "sync");
SPEC(spec_get_many, "get_many", 1, 1, "keys", "snapshot");
SPEC(spec_put_many, "put_many", 1, 1, "items", "sync");
SPEC(spec_delete_many, "delete_many", 1, 1, "keys", "sync");
SPEC(spec_write_batch, "write_batch", 0, 0, "sync");
SPEC(spec_write, "write", 1, 1, "batch", "sync");
SPEC(spec_range, "items", 0, 0, "prefix", "start", "stop", "reverse", "snapshot");
SPEC(spec_iterator, "iterator", 0, 0, "prefix", "start", "stop", "snapshot");
SPEC(spec_compact, "compact", 2, 0, "start", "stop");
SPEC(spec_snap_get, "get", 2, 1, "key", "default");
SPEC(spec_snap_get_many, "get_many", 1, 1, "keys");
SPEC(spec_snap_range, "items", 0, 0, "prefix", "start", "stop", "reverse");
SPEC(spec_snap_iterator, "iterator", 0, 0, "prefix", "start", "stop");
SPEC(spec_batch_put, "put", 2, 2, "key", "value", "ttl");
SPEC(spec_batch_delete, "delete", 1, 1, "key");
SPEC(spec_merge, "merge", 3, 3, "key", "op", "operand", "sync");
SPEC(spec_incr, "incr", 2, 1, "key", "n", "sync");
SPEC(spec_add_float, "add_float", 2, 2, "key", "x", "sync");
SPEC(spec_list_append, "list_append", 2, 2, "key", "item", "max_items", "sync");
SPEC(spec_get_int, "get_int", 2, 1, "key", "default", "snapshot");
SPEC(spec_get_float, "get_float", 2, 1, "key", "default", "snapshot");
SPEC(spec_get_list, "get_list", 1, 1, "key", "snapshot");
SPEC(spec_delete_range, "delete_range", 2, 2, "start", "end", "sync");
SPEC(spec_delete_prefix, "delete_prefix", 1, 1, "prefix", "sync");
SPEC(spec_transaction, "transaction", 0, 0, "sync", "track_all_reads");
SPEC(spec_batch_merge, "merge", 3, 3, "key", "op", "operand");
SPEC(spec_batch_incr, "incr", 2, 1, "key", "n");
SPEC(spec_batch_delete_range, "delete_range", 2, 2, "start", "end");
SPEC(spec_txn_get, "get", 2, 1, "key", "default", "for_update");
SPEC(spec_txn_get_for_update, "get_for_update", 2, 1, "key", "default");
SPEC(spec_txn_put, "put", 2, 2, "key", "value");
SPEC(spec_txn_delete, "delete", 1, 1, "key");
SPEC(spec_txn_merge, "merge", 3, 3, "key", "op", "operand");
SPEC(spec_txn_incr, "incr", 2, 1, "key", "n");

static argspec *all_specs[] = {&spec_get,          &spec_put,         &spec_delete,
                               &spec_get_many,     &spec_put_many,    &spec_delete_many,
                               &spec_write_batch,  &spec_write,       &spec_range,
                               &spec_iterator,     &spec_compact,     &spec_snap_get,
                               &spec_snap_get_many, &spec_snap_range, &spec_snap_iterator,
                               &spec_batch_put,    &spec_batch_delete, &spec_merge,
                               &spec_incr,         &spec_add_float,   &spec_list_append,
                               &spec_get_int,      &spec_get_float,   &spec_get_list,
                               &spec_delete_range, &spec_delete_prefix, &spec_transaction,
                               &spec_batch_merge,  &spec_batch_incr,  &spec_batch_delete_range,
                               &spec_txn_get,      &spec_txn_get_for_update, &spec_txn_put,
                               &spec_txn_delete,   &spec_txn_merge,   &spec_txn_incr};

/* ---- byte arguments -------------------------------------------------------- */

static int bufarg_slow(PyObject *o, bufarg *b, const char *what) {
    if (!PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like (bytes, bytearray or memoryview), not %.100s",
                     what, Py_TYPE(o)->tp_name);
        return -1;
    }
    /* Holding the export keeps a bytearray from being resized while the
     * engine reads it without the GIL. */
    if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) < 0) return -1;
    b->has_view = 1;
    b->ptr = b->view.buf;
    b->len = (size_t)b->view.len;
    return 0;
}

static inline int bufarg_get(PyObject *o, bufarg *b, const char *what) {
    b->has_view = 0;
    if (PyBytes_Check(o)) {
        b->ptr = PyBytes_AS_STRING(o);
        b->len = (size_t)PyBytes_GET_SIZE(o);
        return 0;
    }
    return bufarg_slow(o, b, what);
}

/* None (or absent) leaves ptr NULL: "no bound". */
int bufarg_opt(PyObject *o, bufarg *b, const char *what) {
    b->has_view = 0;
    b->ptr = NULL;
    b->len = 0;
    if (!o || o == Py_None) return 0;
    return bufarg_get(o, b, what);
}

/* ---- shared helpers ------------------------------------------------------- */

int parse_sync(PyObject *o, weir_sync_mode *mode) {
    *mode = WEIR_SYNC_DEFAULT;
    if (!o || o == Py_None) return 0;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "sync must be 'none', 'flush', 'fsync' or None, not %.100s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    if (PyUnicode_CompareWithASCIIString(o, "none") == 0) *mode = WEIR_SYNC_NONE;
    else if (PyUnicode_CompareWithASCIIString(o, "flush") == 0) *mode = WEIR_SYNC_FLUSH;
    else if (PyUnicode_CompareWithASCIIString(o, "fsync") == 0) *mode = WEIR_SYNC_FSYNC;
    else {
        raise_fmt(WEIR_INVALID, "sync must be 'none', 'flush' or 'fsync', not %R", o);
        return -1;
    }
    return 0;
}

/* Seconds (an int, a float or a datetime.timedelta) to whole milliseconds,
 * rounded to nearest but at least 1, since the engine reads 0 as "no TTL".
 * Returns 0 if None/absent, 1 with *ms set, -1 with an exception. */
static int parse_ttl(PyObject *o, const char *name, uint64_t *ms) {
    *ms = 0;
    if (!o || o == Py_None) return 0;
    double secs;
    if (PyFloat_Check(o) || (PyLong_Check(o) && !PyBool_Check(o))) {
        secs = PyFloat_AsDouble(o);
        if (secs == -1.0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
            PyErr_Clear();
            secs = HUGE_VAL;
        }
    } else {
        PyObject *meth = PyObject_GetAttr(o, str_total_seconds);
        if (!meth) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s must be seconds as an int, float or timedelta, or None, not %.100s", name,
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        PyObject *f = PyObject_CallNoArgs(meth);
        Py_DECREF(meth);
        if (!f) return -1;
        secs = PyFloat_AsDouble(f);
        Py_DECREF(f);
        if (secs == -1.0 && PyErr_Occurred()) return -1;
    }
    /* 1e15 s is some 30 million years: past it, now + ttl could wrap. */
    if (!(secs > 0.0) || !(secs < 1e15)) {
        raise_fmt(WEIR_INVALID, "%s=%R must be a positive, finite number of seconds", name, o);
        return -1;
    }
    uint64_t v = (uint64_t)(secs * 1000.0 + 0.5);
    *ms = v ? v : 1;
    return 1;
}

static void put_le64(char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (char)(v >> (8 * i));
}

static uint64_t get_le64(const char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | (unsigned char)p[i];
    return v;
}

static const struct {
    const char *name;
    int id;
} merge_op_names[] = {
    {"int64_add", WEIR_MERGE_INT64_ADD},     {"int64_max", WEIR_MERGE_INT64_MAX},
    {"int64_min", WEIR_MERGE_INT64_MIN},     {"float64_add", WEIR_MERGE_FLOAT64_ADD},
    {"float64_max", WEIR_MERGE_FLOAT64_MAX}, {"float64_min", WEIR_MERGE_FLOAT64_MIN},
    {"bytes_max", WEIR_MERGE_BYTES_MAX},     {"bytes_min", WEIR_MERGE_BYTES_MIN},
    {"list_append", WEIR_MERGE_LIST_APPEND},
};

/* A merge operator given by name or by numeric id. */
static int parse_merge_op(PyObject *o, int *op) {
    if (PyUnicode_Check(o)) {
        for (size_t i = 0; i < sizeof merge_op_names / sizeof merge_op_names[0]; i++) {
            if (PyUnicode_CompareWithASCIIString(o, merge_op_names[i].name) == 0) {
                *op = merge_op_names[i].id;
                return 0;
            }
        }
        raise_fmt(WEIR_INVALID,
                  "unknown merge operator %R (expected int64_add, int64_max, int64_min, float64_add, "
                  "float64_max, float64_min, bytes_max, bytes_min, list_append or an id 1..255)",
                  o);
        return -1;
    }
    if (PyLong_Check(o) && !PyBool_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (overflow || v < 1 || v > 255) {
            raise_fmt(WEIR_INVALID, "merge operator id %R is out of range [1, 255]", o);
            return -1;
        }
        *op = (int)v;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "merge operator must be a name (str) or an id (int), not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
}

static int pack_int64(PyObject *o, const char *what, char out[8]) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow) {
        raise_fmt(WEIR_INVALID, "%s %R does not fit in a signed 64-bit integer", what, o);
        return -1;
    }
    put_le64(out, (uint64_t)v);
    return 0;
}

static int pack_float64(PyObject *o, const char *what, char out[8]) {
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {
        /* CPython's own message ("must be real number, not str") does not
         * say which argument was wrong. */
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a float or an int, not %.100s", what,
                         Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    put_le64(out, bits);
    return 0;
}

/* The operand of merge(op, operand): an int for the int64 operators and a
 * float (or int) for the float64 ones are packed into num[] as 8-byte
 * little-endian values; anything else must be bytes-like and is passed as
 * the raw payload (the engine checks its shape). */
static int merge_operand(int op, PyObject *o, char num[8], bufarg *b) {
    b->has_view = 0;
    int int_op = op >= WEIR_MERGE_INT64_ADD && op <= WEIR_MERGE_INT64_MIN;
    int float_op = op >= WEIR_MERGE_FLOAT64_ADD && op <= WEIR_MERGE_FLOAT64_MIN;
    if ((int_op && PyLong_Check(o)) || (float_op && (PyFloat_Check(o) || PyLong_Check(o)))) {
        if ((int_op ? pack_int64(o, "operand", num) : pack_float64(o, "operand", num)) < 0) return -1;
        b->ptr = num;
        b->len = 8;
        return 0;
    }
    if (int_op && PyFloat_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "an int64 merge operand must be an int or 8 bytes, not float");
        return -1;
    }
    return bufarg_get(o, b, "operand");
}

/* Sleep a little with the GIL released; used while waiting for calls in
 * flight, which are short (one engine call each). */
static void nap(long *ns) {
    struct timespec ts = {0, *ns};
    Py_BEGIN_ALLOW_THREADS
    nanosleep(&ts, NULL);
    Py_END_ALLOW_THREADS
    if (*ns < 1000000) *ns *= 2;
}

/* ---- objects --------------------------------------------------------------- */

/* dep and DBObject are in _weir_internal.h (shared with _weir_arrow.c). */

typedef struct SnapshotObject {
    PyObject_HEAD
    dep node;
    DBObject *db;
    weir_snapshot *snap;  /* NULL once released */
    Py_ssize_t uses;      /* calls in flight reading through it */
    uint64_t sequence;
} SnapshotObject;

enum { MODE_KEYS, MODE_VALUES, MODE_ITEMS };

#define CHUNK_MAX 64
#define CHUNK_BYTES (256 * 1024)

typedef struct chunk_entry {
    size_t koff, klen, voff, vlen;
} chunk_entry;

/* Fields shared by the cursor and the range iterator. */
#define ITER_HEAD          \
    PyObject_HEAD          \
    dep node;              \
    DBObject *db;          \
    weir_iter *iter;       \
    int busy;              \
    int invalidated;

typedef struct IterObject {
    ITER_HEAD
} IterObject;

/* Why an iterator lost its engine iterator (IterObject.invalidated). */
enum { INV_NONE = 0, INV_DB_CLOSED = 1, INV_TXN_FINISHED = 2 };

enum { TXN_ACTIVE, TXN_COMMITTED, TXN_FAILED, TXN_ROLLED_BACK, TXN_CLOSED };

/* A transaction sits on its DB's list of dependants; the range iterators
 * over it sit on its own list instead, because the engine wants them
 * destroyed before the transaction finishes. */
typedef struct TxnObject {
    PyObject_HEAD
    dep node;
    DBObject *db;
    weir_txn *txn; /* NULL once finished or invalidated */
    int state;
    int busy;      /* an engine call on it runs without the GIL */
    dep iters;     /* sentinel */
} TxnObject;

typedef struct RangeIterObject {
    ITER_HEAD
    TxnObject *txn; /* NULL unless it reads through a transaction */
    int mode;
    int reverse;
    int positioned;
    int at_end;     /* the engine iterator ran out (it is then destroyed) */
    int err;        /* status that ended iteration early, raised after the buffer */
    char *errmsg;
    int want;       /* entries to fetch next time: 1, 2, 4 .. CHUNK_MAX */
    int n, pos;
    char *buf;
    size_t cap;
    chunk_entry ents[CHUNK_MAX];
} RangeIterObject;

typedef struct BatchObject {
    PyObject_HEAD
    weir_batch *batch;
    DBObject *db;   /* NULL: not bound; write with DB.write() */
    weir_sync_mode sync;
    int busy;
} BatchObject;

static PyTypeObject DB_Type;
static PyTypeObject Snapshot_Type;
static PyTypeObject Iter_Type;
static PyTypeObject RangeIter_Type;
static PyTypeObject Batch_Type;
static PyTypeObject Txn_Type;

void dep_link(DBObject *db, dep *d, PyObject *owner, void (*inv)(PyObject *)) {
    d->owner = owner;
    d->invalidate = inv;
    d->next = db->deps.next;
    d->prev = &db->deps;
    db->deps.next->prev = d;
    db->deps.next = d;
}

void dep_unlink(dep *d) {
    if (!d->next) return;
    d->prev->next = d->next;
    d->next->prev = d->prev;
    d->next = d->prev = NULL;
}

PyObject *raise_closed(DBObject *self) {
    return raise_fmt(WEIR_CLOSED, "the DB at %R is closed", self->path ? self->path : Py_None);
}

int weir_is_db(PyObject *o) { return PyObject_TypeCheck(o, &DB_Type); }

/* Check a snapshot= argument; NULL/None means none. */
static int check_snapshot(DBObject *self, PyObject *o, SnapshotObject **out) {
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

/* ---- reads ------------------------------------------------------------------ */

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

/* Look `key` up. Returns a new bytes, or NULL with *found = 0 and no
 * exception when absent, or NULL with an exception. */
static PyObject *db_lookup(DBObject *self, PyObject *key, SnapshotObject *snap, int *found) {
    bufarg k;
    *found = 0;
    if (bufarg_get(key, &k, "key") < 0) return NULL;
    if (db_enter(self) < 0) {
        bufarg_release(&k);
        return NULL;
    }
    weir_readopts ro, *rop = NULL;
    if (snap) {
        memset(&ro, 0, sizeof ro);
        ro.snapshot = snap->snap;
        rop = &ro;
        snap->uses++;
    }
    char stack[GET_STACK];
    get_sink s = {stack, sizeof stack, 0, NULL, 0};
    weir_db *db = self->db;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_get_with(db, rop, k.ptr, k.len, get_sink_fn, &s);
    Py_END_ALLOW_THREADS
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

static int db_has(DBObject *self, PyObject *key, SnapshotObject *snap) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return -1;
    if (db_enter(self) < 0) {
        bufarg_release(&k);
        return -1;
    }
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
    rc = weir_get_with(db, rop, k.ptr, k.len, ignore_value_fn, NULL);
    Py_END_ALLOW_THREADS
    if (snap) snap->uses--;
    db_leave(self);
    int result = rc == WEIR_OK ? 1 : rc == WEIR_NOT_FOUND ? 0 : -1;
    if (result < 0) raise_status(rc);
    bufarg_release(&k);
    return result;
}

static PyObject *get_common(DBObject *self, PyObject *key, PyObject *dflt, SnapshotObject *snap) {
    int found;
    PyObject *r = db_lookup(self, key, snap, &found);
    if (r || found || PyErr_Occurred()) return r;
    if (!dflt) dflt = Py_None;
    return Py_NewRef(dflt);
}

static PyObject *get_many_common(DBObject *self, PyObject *keys, SnapshotObject *snap) {
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

/* ---- writes ----------------------------------------------------------------- */

static PyObject *write_batch_to(DBObject *self, weir_batch *b, weir_sync_mode sync) {
    if (db_enter(self) < 0) return NULL;
    weir_writeopts wo = {.sync = sync};
    weir_db *db = self->db;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_write(db, sync == WEIR_SYNC_DEFAULT ? NULL : &wo, b);
    Py_END_ALLOW_THREADS
    db_leave(self);
    if (rc != WEIR_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

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

static int batch_add_delete(weir_batch *b, PyObject *key) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return -1;
    int rc = weir_batch_delete(b, k.ptr, k.len);
    if (rc != WEIR_OK) raise_status(rc);
    bufarg_release(&k);
    return rc == WEIR_OK ? 0 : -1;
}

/* Add every (key, value) of a dict, a mapping or an iterable of pairs. */
static Py_ssize_t batch_add_pairs(weir_batch *b, PyObject *items) {
    Py_ssize_t count = 0;
    if (PyDict_Check(items)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(items, &pos, &k, &v)) {
            if (batch_add_put(b, k, v) < 0) return -1;
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
                         "put_many() expects a mapping or an iterable of (key, value) pairs, not %.100s",
                         Py_TYPE(items)->tp_name);
        }
        return -1;
    }
    PyObject *pair;
    while ((pair = PyIter_Next(it))) {
        int ok;
        if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
            ok = batch_add_put(b, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1));
        } else {
            PyObject *fast = PySequence_Check(pair) && !PyBytes_Check(pair) && !PyUnicode_Check(pair)
                                 ? PySequence_Fast(pair, "")
                                 : NULL;
            if (!fast || PySequence_Fast_GET_SIZE(fast) != 2) {
                Py_XDECREF(fast);
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "put_many() items must be (key, value) pairs, not %.100s",
                             Py_TYPE(pair)->tp_name);
                ok = -1;
            } else {
                ok = batch_add_put(b, PySequence_Fast_GET_ITEM(fast, 0), PySequence_Fast_GET_ITEM(fast, 1));
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

/* ---- snapshots and iterators: construction ----------------------------------- */

static void snapshot_invalidate(PyObject *o);
static void iter_invalidate(PyObject *o);
static void range_invalidate(PyObject *o);

static PyObject *make_snapshot(DBObject *self) {
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

static int txn_check(TxnObject *t);

/* Create an engine iterator over [start, stop) within prefix, reading the
 * DB, a snapshot of it, or a transaction (which the caller has checked is
 * active and not busy). */
static weir_iter *open_engine_iter(DBObject *self, PyObject *prefix, PyObject *start, PyObject *stop,
                                   SnapshotObject *snap, TxnObject *txn) {
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

static PyObject *make_range(DBObject *self, int mode, PyObject *const *a, SnapshotObject *snap,
                            TxnObject *txn) {
    /* a: prefix, start, stop, reverse */
    int reverse = 0;
    if (a[3] && (reverse = PyObject_IsTrue(a[3])) < 0) return NULL;
    weir_iter *it = open_engine_iter(self, a[0], a[1], a[2], snap, txn);
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

static PyObject *make_cursor(DBObject *self, PyObject *const *a, SnapshotObject *snap) {
    weir_iter *it = open_engine_iter(self, a[0], a[1], a[2], snap, NULL);
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

/* ---- DB ------------------------------------------------------------------------ */

static PyObject *DB_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args;
    (void)kwds;
    DBObject *self = (DBObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->db = NULL;
    self->path = NULL;
    self->inflight = 0;
    self->closing = 0;
    self->deps.next = self->deps.prev = &self->deps;
    self->deps.owner = NULL;
    self->deps.invalidate = NULL;
    self->weakreflist = NULL;
    return (PyObject *)self;
}

/* Integer option: 0 if None/absent, 1 with *out set, -1 on error. */
static int opt_u64(PyObject *o, const char *name, unsigned long long *out) {
    if (!o || o == Py_None) return 0;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int or None, not %.100s", name, Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = PyLong_AsUnsignedLongLong(o);
    if (*out == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
        raise_fmt(WEIR_INVALID, "%s=%R is out of range", name, o);
        return -1;
    }
    return 1;
}

static int opt_int(PyObject *o, const char *name, int *out) {
    unsigned long long v = 0;
    int r = opt_u64(o, name, &v);
    if (r <= 0) return r;
    if (v > 0x7fffffffULL) {
        raise_fmt(WEIR_INVALID, "%s=%R is out of range", name, o);
        return -1;
    }
    *out = (int)v;
    return 1;
}

static int apply_options(weir_options *o, PyObject **v) {
    /* Order matches the keyword list in DB_init. */
    unsigned long long u;
    int i, r;
    int rc = WEIR_OK;
#define SIZE_OPT(idx, name, setter)                                    \
    if ((r = opt_u64(v[idx], name, &u)) < 0) return -1;                \
    if (r && (rc = setter(o, (size_t)u)) != WEIR_OK) goto fail;
    SIZE_OPT(0, "write_buffer_size", weir_options_set_write_buffer_size)
    SIZE_OPT(1, "block_size", weir_options_set_block_size)
    if ((r = opt_int(v[2], "bloom_bits_per_key", &i)) < 0) return -1;
    if (r && (rc = weir_options_set_bloom_bits_per_key(o, i)) != WEIR_OK) goto fail;
    if ((r = opt_int(v[3], "max_open_files", &i)) < 0) return -1;
    if (r && (rc = weir_options_set_max_open_files(o, i)) != WEIR_OK) goto fail;
    if ((r = opt_int(v[4], "background_threads", &i)) < 0) return -1;
    if (r && (rc = weir_options_set_background_threads(o, i)) != WEIR_OK) goto fail;
    weir_sync_mode mode;
    if (parse_sync(v[5], &mode) < 0) return -1;
    if (mode != WEIR_SYNC_DEFAULT && (rc = weir_options_set_sync_mode(o, mode)) != WEIR_OK) goto fail;
    SIZE_OPT(6, "target_file_size", weir_options_set_target_file_size)
    if ((r = opt_u64(v[7], "max_bytes_for_level_base", &u)) < 0) return -1;
    if (r && (rc = weir_options_set_max_bytes_for_level_base(o, (uint64_t)u)) != WEIR_OK) goto fail;
    if (v[8] && v[8] != Py_None) {
        int t[3];
        PyObject *fast = PySequence_Check(v[8]) ? PySequence_Fast(v[8], "") : NULL;
        if (!fast || PySequence_Fast_GET_SIZE(fast) != 3) {
            Py_XDECREF(fast);
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError,
                            "level0_triggers must be a (compaction, slowdown, stop) tuple of ints");
            return -1;
        }
        for (int k = 0; k < 3; k++) {
            if (opt_int(PySequence_Fast_GET_ITEM(fast, k), "level0_triggers", &t[k]) <= 0) {
                Py_DECREF(fast);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "level0_triggers must be a tuple of three ints");
                return -1;
            }
        }
        Py_DECREF(fast);
        if ((rc = weir_options_set_level0_triggers(o, t[0], t[1], t[2])) != WEIR_OK) goto fail;
    }
    if (v[9] && v[9] != Py_None) {
        int codec;
        if (!PyUnicode_Check(v[9])) {
            PyErr_Format(PyExc_TypeError, "compression must be 'none', 'lz4', 'zstd' or None, not %.100s",
                         Py_TYPE(v[9])->tp_name);
            return -1;
        }
        if (PyUnicode_CompareWithASCIIString(v[9], "none") == 0) codec = WEIR_COMPRESSION_NONE;
        else if (PyUnicode_CompareWithASCIIString(v[9], "lz4") == 0) codec = WEIR_COMPRESSION_LZ4;
        else if (PyUnicode_CompareWithASCIIString(v[9], "zstd") == 0) codec = WEIR_COMPRESSION_ZSTD;
        else {
            raise_fmt(WEIR_INVALID, "compression must be 'none', 'lz4' or 'zstd', not %R", v[9]);
            return -1;
        }
        if ((rc = weir_options_set_compression(o, codec)) != WEIR_OK) goto fail;
    }
    SIZE_OPT(10, "block_cache_size", weir_options_set_block_cache_size)
#undef SIZE_OPT
    uint64_t ttl_ms;
    if ((r = parse_ttl(v[11], "default_ttl", &ttl_ms)) < 0) return -1;
    if (r && (rc = weir_options_set_default_ttl(o, ttl_ms)) != WEIR_OK) goto fail;
    return 0;
fail:
    raise_status(rc);
    return -1;
}

static int DB_init(DBObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"path",
                             "create_if_missing",
                             "error_if_exists",
                             "read_only",
                             "write_buffer_size",
                             "block_size",
                             "bloom_bits_per_key",
                             "max_open_files",
                             "background_threads",
                             "sync",
                             "target_file_size",
                             "max_bytes_for_level_base",
                             "level0_triggers",
                             "compression",
                             "block_cache_size",
                             "default_ttl",
                             NULL};
    PyObject *path_arg;
    int create_if_missing = 1, error_if_exists = 0, read_only = 0;
    PyObject *v[12] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$pppOOOOOOOOOOOO:DB", kwlist, &path_arg,
                                     &create_if_missing, &error_if_exists, &read_only, &v[0], &v[1],
                                     &v[2], &v[3],
                                     &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]))
        return -1;
    if (self->db || self->closing) {
        PyErr_SetString(PyExc_RuntimeError, "DB.__init__() called on an open DB");
        return -1;
    }
    PyObject *fspath = PyOS_FSPath(path_arg);
    if (!fspath) return -1;
    PyObject *encoded = NULL;
    PyObject *decoded = NULL;
    if (PyBytes_Check(fspath)) {
        encoded = Py_NewRef(fspath);
        decoded = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(fspath), PyBytes_GET_SIZE(fspath));
    } else {
        decoded = Py_NewRef(fspath);
        if (!PyUnicode_FSConverter(fspath, &encoded)) encoded = NULL;
    }
    Py_DECREF(fspath);
    if (!encoded || !decoded) {
        Py_XDECREF(encoded);
        Py_XDECREF(decoded);
        return -1;
    }
    weir_options *o = weir_options_create();
    if (!o) {
        Py_DECREF(encoded);
        Py_DECREF(decoded);
        PyErr_NoMemory();
        return -1;
    }
    int rc = weir_options_set_create_if_missing(o, create_if_missing && !read_only);
    if (rc == WEIR_OK) rc = weir_options_set_error_if_exists(o, error_if_exists);
    if (rc == WEIR_OK) rc = weir_options_set_read_only(o, read_only);
    if (rc != WEIR_OK) raise_status(rc);
    if (rc != WEIR_OK || apply_options(o, v) < 0) {
        weir_options_destroy(o);
        Py_DECREF(encoded);
        Py_DECREF(decoded);
        return -1;
    }
    weir_db *db = NULL;
    const char *cpath = PyBytes_AS_STRING(encoded);
    Py_BEGIN_ALLOW_THREADS
    rc = weir_open(cpath, o, &db);
    Py_END_ALLOW_THREADS
    weir_options_destroy(o);
    if (rc != WEIR_OK) {
        raise_status(rc);
        Py_DECREF(encoded);
        Py_DECREF(decoded);
        return -1;
    }
    Py_DECREF(encoded);
    Py_XDECREF(self->path);
    self->path = decoded;
    self->db = db;
    self->owner_pid = (long)getpid();
    return 0;
}

/* Close and wait; see the top of the file. Returns 0 or -1 with an
 * exception. */
static int db_close(DBObject *self) {
    if (!self->db) return 0;
    if ((long)getpid() != self->owner_pid) {
        /* A copy inherited through fork(): the parent's threads and calls
         * in flight do not exist here, so nothing may be waited for or
         * released (weir_close on it returns at once and frees nothing).
         * The parent's handle and files are untouched. */
        weir_close(self->db);
        self->db = NULL;
        return 0;
    }
    if (self->closing) {
        /* Another thread is closing: return once it has. */
        long ns = 20000;
        while (self->db) nap(&ns);
        return 0;
    }
    self->closing = 1;
    long ns = 10000;
    while (self->inflight > 0) nap(&ns);
    while (self->deps.next != &self->deps) {
        dep *d = self->deps.next;
        dep_unlink(d);
        d->invalidate(d->owner);
    }
    weir_db *db = self->db;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_close(db);
    Py_END_ALLOW_THREADS
    self->db = NULL;
    self->closing = 0;
    if (rc != WEIR_OK) {
        raise_status(rc);
        return -1;
    }
    return 0;
}

static void DB_dealloc(DBObject *self) {
    if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
    if (self->db) {
        /* Dependants hold references, so none is left, and nothing is in
         * flight on an object nobody references. */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *exc = PyErr_GetRaisedException();
        if (db_close(self) < 0) PyErr_WriteUnraisable((PyObject *)self);
        PyErr_SetRaisedException(exc);
#else
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (db_close(self) < 0) PyErr_WriteUnraisable((PyObject *)self);
        PyErr_Restore(et, ev, tb);
#endif
    }
    Py_CLEAR(self->path);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *DB_get(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (!kwnames && (nargs == 1 || nargs == 2))
        return get_common(self, args[0], nargs == 2 ? args[1] : NULL, NULL);
    PyObject *a[3];
    if (bind_args(&spec_get, args, nargs, kwnames, a) < 0) return NULL;
    SnapshotObject *snap;
    if (check_snapshot(self, a[2], &snap) < 0) return NULL;
    return get_common(self, a[0], a[1], snap);
}

/* ttl_ms 0: the DB's default TTL, if any. */
static PyObject *put_common(DBObject *self, PyObject *key, PyObject *value, weir_sync_mode sync,
                            uint64_t ttl_ms) {
    bufarg k, v;
    if (bufarg_get(key, &k, "key") < 0) return NULL;
    if (bufarg_get(value, &v, "value") < 0) {
        bufarg_release(&k);
        return NULL;
    }
    PyObject *result = NULL;
    if (db_enter(self) == 0) {
        weir_writeopts wo = {.sync = sync};
        weir_db *db = self->db;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        const weir_writeopts *wop = sync == WEIR_SYNC_DEFAULT ? NULL : &wo;
        rc = ttl_ms ? weir_put_ttl(db, wop, k.ptr, k.len, v.ptr, v.len, ttl_ms)
                    : weir_put(db, wop, k.ptr, k.len, v.ptr, v.len);
        Py_END_ALLOW_THREADS
        db_leave(self);
        if (rc == WEIR_OK) result = Py_NewRef(Py_None);
        else raise_status(rc);
    }
    bufarg_release(&k);
    bufarg_release(&v);
    return result;
}

static PyObject *DB_put(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs == 2 && !kwnames) return put_common(self, args[0], args[1], WEIR_SYNC_DEFAULT, 0);
    PyObject *a[4];
    if (bind_args(&spec_put, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    if (parse_sync(a[2], &sync) < 0) return NULL;
    uint64_t ttl_ms;
    if (parse_ttl(a[3], "ttl", &ttl_ms) < 0) return NULL;
    return put_common(self, a[0], a[1], sync, ttl_ms);
}

static PyObject *delete_common(DBObject *self, PyObject *key, weir_sync_mode sync) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return NULL;
    PyObject *result = NULL;
    if (db_enter(self) == 0) {
        weir_writeopts wo = {.sync = sync};
        weir_db *db = self->db;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = weir_delete(db, sync == WEIR_SYNC_DEFAULT ? NULL : &wo, k.ptr, k.len);
        Py_END_ALLOW_THREADS
        db_leave(self);
        if (rc == WEIR_OK) result = Py_NewRef(Py_None);
        else raise_status(rc);
    }
    bufarg_release(&k);
    return result;
}

static PyObject *DB_delete(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs == 1 && !kwnames) return delete_common(self, args[0], WEIR_SYNC_DEFAULT);
    PyObject *a[2];
    if (bind_args(&spec_delete, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    if (parse_sync(a[1], &sync) < 0) return NULL;
    return delete_common(self, a[0], sync);
}

static PyObject *DB_get_many(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_get_many, args, nargs, kwnames, a) < 0) return NULL;
    SnapshotObject *snap;
    if (check_snapshot(self, a[1], &snap) < 0) return NULL;
    return get_many_common(self, a[0], snap);
}

static PyObject *DB_put_many(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_put_many, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    if (parse_sync(a[1], &sync) < 0) return NULL;
    if (!self->db || self->closing) return raise_closed(self);
    weir_batch *b = weir_batch_create();
    if (!b) return PyErr_NoMemory();
    Py_ssize_t n = batch_add_pairs(b, a[0]);
    PyObject *r = NULL;
    if (n > 0) r = write_batch_to(self, b, sync);
    else if (n == 0) r = Py_NewRef(Py_None);
    weir_batch_destroy(b);
    if (!r) return NULL;
    Py_DECREF(r);
    return PyLong_FromSsize_t(n);
}

static PyObject *DB_delete_many(DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_delete_many, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    if (parse_sync(a[1], &sync) < 0) return NULL;
    if (!self->db || self->closing) return raise_closed(self);
    PyObject *it = PyObject_GetIter(a[0]);
    if (!it) return NULL;
    weir_batch *b = weir_batch_create();
    if (!b) {
        Py_DECREF(it);
        return PyErr_NoMemory();
    }
    Py_ssize_t n = 0;
    PyObject *k;
    while ((k = PyIter_Next(it))) {
        int ok = batch_add_delete(b, k);
        Py_DECREF(k);
        if (ok < 0) break;
        n++;
    }
    Py_DECREF(it);
    PyObject *r = NULL;
    if (!PyErr_Occurred()) r = n ? write_batch_to(self, b, sync) : Py_NewRef(Py_None);
    weir_batch_destroy(b);
    if (!r) return NULL;
    Py_DECREF(r);
    return PyLong_FromSsize_t(n);
}

static PyObject *DB_write_batch(DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    PyObject *a[1];
    if (bind_args(&spec_write_batch, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    if (parse_sync(a[0], &sync) < 0) return NULL;
    if (!self->db || self->closing) return raise_closed(self);
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
    b->db = (DBObject *)Py_NewRef((PyObject *)self);
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

static PyObject *batch_commit_to(BatchObject *b, DBObject *db, weir_sync_mode sync) {
    if (b->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the WriteBatch is being written by another thread");
        return NULL;
    }
    b->busy = 1;
    PyObject *r = write_batch_to(db, b->batch, sync);
    b->busy = 0;
    return r;
}

static PyObject *DB_write(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_write, args, nargs, kwnames, a) < 0) return NULL;
    if (!PyObject_TypeCheck(a[0], &Batch_Type)) {
        PyErr_Format(PyExc_TypeError, "write() expects a weir.WriteBatch, not %.100s",
                     Py_TYPE(a[0])->tp_name);
        return NULL;
    }
    weir_sync_mode sync;
    if (parse_sync(a[1], &sync) < 0) return NULL;
    BatchObject *b = (BatchObject *)a[0];
    if (sync == WEIR_SYNC_DEFAULT) sync = b->sync;
    return batch_commit_to(b, self, sync);
}

static PyObject *range_method(DBObject *self, int mode, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    PyObject *a[5];
    if (bind_args(&spec_range, args, nargs, kwnames, a) < 0) return NULL;
    SnapshotObject *snap;
    if (check_snapshot(self, a[4], &snap) < 0) return NULL;
    return make_range(self, mode, a, snap, NULL);
}

static PyObject *DB_keys(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return range_method(self, MODE_KEYS, args, nargs, kwnames);
}

static PyObject *DB_values(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return range_method(self, MODE_VALUES, args, nargs, kwnames);
}

static PyObject *DB_items(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return range_method(self, MODE_ITEMS, args, nargs, kwnames);
}

static PyObject *DB_iter(DBObject *self) {
    PyObject *a[4] = {NULL, NULL, NULL, NULL};
    return make_range(self, MODE_KEYS, a, NULL, NULL);
}

static PyObject *DB_iterator(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[4];
    if (bind_args(&spec_iterator, args, nargs, kwnames, a) < 0) return NULL;
    SnapshotObject *snap;
    if (check_snapshot(self, a[3], &snap) < 0) return NULL;
    return make_cursor(self, a, snap);
}

static PyObject *DB_snapshot(DBObject *self, PyObject *unused) {
    (void)unused;
    return make_snapshot(self);
}

static PyObject *DB_flush(DBObject *self, PyObject *unused) {
    (void)unused;
    if (db_enter(self) < 0) return NULL;
    weir_db *db = self->db;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_flush(db);
    Py_END_ALLOW_THREADS
    db_leave(self);
    if (rc != WEIR_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

static PyObject *DB_compact(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_compact, args, nargs, kwnames, a) < 0) return NULL;
    bufarg lo, hi;
    if (bufarg_opt(a[0], &lo, "start") < 0) return NULL;
    if (bufarg_opt(a[1], &hi, "stop") < 0) {
        bufarg_release(&lo);
        return NULL;
    }
    PyObject *r = NULL;
    if (db_enter(self) == 0) {
        weir_db *db = self->db;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = weir_compact_range(db, lo.ptr, lo.len, hi.ptr, hi.len);
        Py_END_ALLOW_THREADS
        db_leave(self);
        if (rc == WEIR_OK) r = Py_NewRef(Py_None);
        else raise_status(rc);
    }
    bufarg_release(&lo);
    bufarg_release(&hi);
    return r;
}

/* ---- merges, typed values, range deletes, checkpoints ---------------------------- */

enum { W_MERGE, W_LIST_APPEND, W_DELETE_RANGE };

/* One engine write: a is the key (the start for W_DELETE_RANGE), b the
 * operand, the item or the end. */
static PyObject *write_one(DBObject *self, int kind, const bufarg *a, const bufarg *b, int op,
                           uint32_t max_items, weir_sync_mode sync) {
    if (db_enter(self) < 0) return NULL;
    weir_writeopts wo = {.sync = sync};
    const weir_writeopts *wop = sync == WEIR_SYNC_DEFAULT ? NULL : &wo;
    weir_db *db = self->db;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    switch (kind) {
    case W_MERGE: rc = weir_merge(db, wop, a->ptr, a->len, op, b->ptr, b->len); break;
    case W_LIST_APPEND: rc = weir_list_append(db, wop, a->ptr, a->len, b->ptr, b->len, max_items); break;
    default: rc = weir_delete_range(db, wop, a->ptr, a->len, b->ptr, b->len); break;
    }
    Py_END_ALLOW_THREADS
    db_leave(self);
    if (rc != WEIR_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

static PyObject *merge_packed(DBObject *self, PyObject *key, int op, const bufarg *operand,
                              weir_sync_mode sync) {
    bufarg k;
    if (bufarg_get(key, &k, "key") < 0) return NULL;
    PyObject *r = write_one(self, W_MERGE, &k, operand, op, 0, sync);
    bufarg_release(&k);
    return r;
}

static PyObject *DB_merge(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[4];
    if (bind_args(&spec_merge, args, nargs, kwnames, a) < 0) return NULL;
    int op;
    weir_sync_mode sync;
    if (parse_merge_op(a[1], &op) < 0 || parse_sync(a[3], &sync) < 0) return NULL;
    char num[8];
    bufarg o;
    if (merge_operand(op, a[2], num, &o) < 0) return NULL;
    PyObject *r = merge_packed(self, a[0], op, &o, sync);
    bufarg_release(&o);
    return r;
}

/* n of incr(): an int, 1 when absent. */
static int incr_operand(PyObject *n, char num[8], bufarg *b) {
    b->has_view = 0;
    b->ptr = num;
    b->len = 8;
    if (!n) {
        put_le64(num, 1);
        return 0;
    }
    if (!PyLong_Check(n)) {
        PyErr_Format(PyExc_TypeError, "incr() n must be an int, not %.100s", Py_TYPE(n)->tp_name);
        return -1;
    }
    return pack_int64(n, "incr() n", num);
}

static PyObject *DB_incr(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_incr, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    char num[8];
    bufarg o;
    if (parse_sync(a[2], &sync) < 0 || incr_operand(a[1], num, &o) < 0) return NULL;
    return merge_packed(self, a[0], WEIR_MERGE_INT64_ADD, &o, sync);
}

static PyObject *DB_add_float(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_add_float, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    char num[8];
    if (parse_sync(a[2], &sync) < 0 || pack_float64(a[1], "add_float() x", num) < 0) return NULL;
    bufarg o = {num, 8, 0, {0}};
    return merge_packed(self, a[0], WEIR_MERGE_FLOAT64_ADD, &o, sync);
}

static PyObject *DB_list_append(DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    PyObject *a[4];
    if (bind_args(&spec_list_append, args, nargs, kwnames, a) < 0) return NULL;
    if (!a[2]) {
        PyErr_SetString(PyExc_TypeError, "list_append() missing required keyword argument 'max_items'");
        return NULL;
    }
    unsigned long long bound = 0;
    weir_sync_mode sync;
    if (opt_u64(a[2], "max_items", &bound) < 0 || parse_sync(a[3], &sync) < 0) return NULL;
    if (bound < 1 || bound > 1000000) return raise_fmt(WEIR_INVALID, "max_items=%R is out of range [1, 1000000]", a[2]);
    bufarg k, item;
    if (bufarg_get(a[0], &k, "key") < 0) return NULL;
    if (bufarg_get(a[1], &item, "item") < 0) {
        bufarg_release(&k);
        return NULL;
    }
    PyObject *r = write_one(self, W_LIST_APPEND, &k, &item, 0, (uint32_t)bound, sync);
    bufarg_release(&k);
    bufarg_release(&item);
    return r;
}

enum { AS_INT, AS_FLOAT, AS_LIST };

/* A stored value as an int64, a float64 or a list; steals raw. */
static PyObject *decode_typed(PyObject *key, PyObject *raw, int as) {
    const char *p = PyBytes_AS_STRING(raw);
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    PyObject *r = NULL;
    if (as == AS_LIST) {
        r = PyList_New(0);
        size_t off = 0, ilen;
        const void *item;
        while (r && weir_list_next(p, (size_t)n, &off, &item, &ilen)) {
            PyObject *b = PyBytes_FromStringAndSize(item, (Py_ssize_t)ilen);
            if (!b || PyList_Append(r, b) < 0) Py_CLEAR(r);
            Py_XDECREF(b);
        }
        if (r && off != (size_t)n) {
            Py_CLEAR(r);
            raise_fmt(WEIR_INVALID, "get_list(): the value of key %R is not a list (malformed at byte %zu of %zd)",
                      key, off, n);
        }
    } else if (n != 8) {
        raise_fmt(WEIR_INVALID, "%s: the value of key %R is %zd bytes, not an 8-byte little-endian %s",
                  as == AS_INT ? "get_int()" : "get_float()", key, n, as == AS_INT ? "int64" : "float64");
    } else if (as == AS_INT) {
        r = PyLong_FromLongLong((long long)get_le64(p));
    } else {
        uint64_t bits = get_le64(p);
        double d;
        memcpy(&d, &bits, sizeof d);
        r = PyFloat_FromDouble(d);
    }
    Py_DECREF(raw);
    return r;
}

static PyObject *get_typed(DBObject *self, const argspec *sp, int as, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(sp, args, nargs, kwnames, a) < 0) return NULL;
    PyObject *dflt = as == AS_LIST ? NULL : a[1];
    SnapshotObject *snap;
    if (check_snapshot(self, as == AS_LIST ? a[1] : a[2], &snap) < 0) return NULL;
    int found;
    PyObject *raw = db_lookup(self, a[0], snap, &found);
    if (raw) return decode_typed(a[0], raw, as);
    if (found || PyErr_Occurred()) return NULL;
    if (dflt) return Py_NewRef(dflt);
    if (as == AS_INT) return PyLong_FromLong(0);
    if (as == AS_FLOAT) return PyFloat_FromDouble(0.0);
    return PyList_New(0);
}

static PyObject *DB_get_int(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return get_typed(self, &spec_get_int, AS_INT, args, nargs, kwnames);
}

static PyObject *DB_get_float(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return get_typed(self, &spec_get_float, AS_FLOAT, args, nargs, kwnames);
}

static PyObject *DB_get_list(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return get_typed(self, &spec_get_list, AS_LIST, args, nargs, kwnames);
}

static PyObject *DB_delete_range(DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_delete_range, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    if (parse_sync(a[2], &sync) < 0) return NULL;
    bufarg lo, hi;
    if (bufarg_get(a[0], &lo, "start") < 0) return NULL;
    if (bufarg_get(a[1], &hi, "end") < 0) {
        bufarg_release(&lo);
        return NULL;
    }
    PyObject *r = write_one(self, W_DELETE_RANGE, &lo, &hi, 0, 0, sync);
    bufarg_release(&lo);
    bufarg_release(&hi);
    return r;
}

/* Runs without the GIL. A prefix p of n 0xff bytes (n may be 0) has no
 * successor to end a range with, so one batch deletes [p, p + 0xff) by
 * range and, one by one, the keys that start with p + 0xff, as an iterator
 * sees them. `end` has room for n + 1 bytes. Returns a status, or -1 when
 * out of memory. */
static int delete_ff_prefix(weir_db *db, const weir_writeopts *wo, const char *p, size_t n, char *end) {
    weir_batch *b = weir_batch_create();
    if (!b) return -1;
    int rc;
    if (n >= WEIR_MAX_KEY_SIZE) {
        rc = weir_batch_delete(b, p, n); /* no longer key can exist */
    } else {
        if (n) memcpy(end, p, n);
        end[n] = (char)0xff;
        rc = weir_batch_delete_range(b, p, n, end, n + 1);
        weir_iter *it = NULL;
        if (rc == WEIR_OK) {
            weir_readopts ro;
            memset(&ro, 0, sizeof ro);
            ro.prefix = end;
            ro.prefix_len = n + 1;
            rc = weir_iter_create(db, &ro, &it);
        }
        if (rc == WEIR_OK) {
            for (weir_iter_seek_first(it); rc == WEIR_OK && weir_iter_valid(it); weir_iter_next(it)) {
                size_t kl;
                const void *k = weir_iter_key(it, &kl);
                rc = weir_batch_delete(b, k, kl);
            }
            if (rc == WEIR_OK) rc = weir_iter_status(it);
            weir_iter_destroy(it);
        }
    }
    if (rc == WEIR_OK) rc = weir_write(db, wo, b);
    weir_batch_destroy(b);
    return rc;
}

static PyObject *DB_delete_prefix(DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_delete_prefix, args, nargs, kwnames, a) < 0) return NULL;
    weir_sync_mode sync;
    if (parse_sync(a[1], &sync) < 0) return NULL;
    bufarg p;
    if (bufarg_get(a[0], &p, "prefix") < 0) return NULL;
    if (p.len > WEIR_MAX_KEY_SIZE) {
        bufarg_release(&p);
        return raise_fmt(WEIR_INVALID, "delete_prefix(): a prefix of %zu bytes is longer than any key (%u)",
                         p.len, WEIR_MAX_KEY_SIZE);
    }
    /* The successor of p: drop its trailing 0xff bytes, add one to the last. */
    size_t m = p.len;
    while (m > 0 && (unsigned char)p.ptr[m - 1] == 0xff) m--;
    char *end = PyMem_Malloc(m ? m : p.len + 1);
    if (!end) {
        bufarg_release(&p);
        return PyErr_NoMemory();
    }
    PyObject *r = NULL;
    if (m) {
        memcpy(end, p.ptr, m);
        end[m - 1] = (char)((unsigned char)end[m - 1] + 1);
        bufarg hi = {end, m, 0, {0}};
        r = write_one(self, W_DELETE_RANGE, &p, &hi, 0, 0, sync);
    } else if (db_enter(self) == 0) {
        weir_writeopts wo = {.sync = sync};
        weir_db *db = self->db;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = delete_ff_prefix(db, sync == WEIR_SYNC_DEFAULT ? NULL : &wo, p.ptr, p.len, end);
        Py_END_ALLOW_THREADS
        db_leave(self);
        if (rc == WEIR_OK) r = Py_NewRef(Py_None);
        else if (rc < 0) PyErr_NoMemory();
        else raise_status(rc);
    }
    PyMem_Free(end);
    bufarg_release(&p);
    return r;
}

static PyObject *DB_checkpoint(DBObject *self, PyObject *path_arg) {
    PyObject *encoded;
    if (!PyUnicode_FSConverter(path_arg, &encoded)) return NULL;
    if (db_enter(self) < 0) {
        Py_DECREF(encoded);
        return NULL;
    }
    weir_db *db = self->db;
    const char *dir = PyBytes_AS_STRING(encoded);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_checkpoint(db, dir);
    Py_END_ALLOW_THREADS
    db_leave(self);
    Py_DECREF(encoded);
    if (rc != WEIR_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

static void txn_invalidate(PyObject *o);

static PyObject *DB_transaction(DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_transaction, args, nargs, kwnames, a) < 0) return NULL;
    weir_txnopts opts;
    memset(&opts, 0, sizeof opts);
    if (parse_sync(a[0], &opts.sync) < 0) return NULL;
    if (a[1] && (opts.track_all_reads = PyObject_IsTrue(a[1])) < 0) return NULL;
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
    rc = weir_txn_begin(db, &opts, &x);
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

/* Read a property: new str, or NULL with *known = 0 and no exception if
 * the engine does not know the name. */
static PyObject *read_property(DBObject *self, const char *name, int *known) {
    *known = 1;
    if (db_enter(self) < 0) return NULL;
    weir_db *db = self->db;
    char *value = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_property(db, name, &value);
    Py_END_ALLOW_THREADS
    db_leave(self);
    if (rc == WEIR_NOT_FOUND) {
        *known = 0;
        return NULL;
    }
    if (rc != WEIR_OK) return raise_status(rc);
    PyObject *s = PyUnicode_DecodeUTF8(value, (Py_ssize_t)strlen(value), "backslashreplace");
    weir_free(value);
    return s;
}

static PyObject *DB_property(DBObject *self, PyObject *name) {
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "property() name must be str, not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *cname = PyUnicode_AsUTF8AndSize(name, &len);
    if (!cname) return NULL;
    if ((size_t)len != strlen(cname)) {
        /* The engine takes a C string: a NUL would silently cut the name. */
        PyErr_SetString(PyExc_ValueError, "property() name must not contain a NUL character");
        return NULL;
    }
    int known;
    PyObject *r = read_property(self, cname, &known);
    if (r || known) return r;
    Py_RETURN_NONE;
}

/* "name value" -> int, float or str. */
static PyObject *parse_scalar(PyObject *text) {
    PyObject *v = PyLong_FromUnicodeObject(text, 10);
    if (v) return v;
    PyErr_Clear();
    v = PyFloat_FromString(text);
    if (v) return v;
    PyErr_Clear();
    return Py_NewRef(text);
}

static int parse_counters(PyObject *dict, PyObject *text) {
    PyObject *lines = PyUnicode_Splitlines(text, 0);
    if (!lines) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lines); i++) {
        PyObject *parts = PyUnicode_Split(PyList_GET_ITEM(lines, i), NULL, 1);
        if (!parts) goto fail;
        if (PyList_GET_SIZE(parts) == 2) {
            PyObject *v = parse_scalar(PyList_GET_ITEM(parts, 1));
            if (!v || PyDict_SetItem(dict, PyList_GET_ITEM(parts, 0), v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(parts);
                goto fail;
            }
            Py_DECREF(v);
        }
        Py_DECREF(parts);
    }
    Py_DECREF(lines);
    return 0;
fail:
    Py_DECREF(lines);
    return -1;
}

static PyObject *parse_levels(const char *text) {
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    const char *p = text;
    while (p && *p) {
        int level, files;
        unsigned long long bytes;
        if (sscanf(p, "level %d: %d files, %llu bytes", &level, &files, &bytes) == 3) {
            PyObject *d = Py_BuildValue("{s:i,s:i,s:K}", "level", level, "files", files, "bytes", bytes);
            if (!d || PyList_Append(list, d) < 0) {
                Py_XDECREF(d);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(d);
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return list;
}

static PyObject *DB_stats(DBObject *self, PyObject *unused) {
    (void)unused;
    int known;
    PyObject *counters = read_property(self, "weir.counters", &known);
    if (!counters) return known ? NULL : raise_fmt(WEIR_NOT_SUPPORTED, "the engine has no weir.counters");
    PyObject *summary = read_property(self, "weir.level-summary", &known);
    if (!summary && known) {
        Py_DECREF(counters);
        return NULL;
    }
    PyObject *d = PyDict_New();
    if (!d) goto fail;
    if (parse_counters(d, counters) < 0) goto fail;
    PyObject *levels = parse_levels(summary ? PyUnicode_AsUTF8(summary) : "");
    if (!levels) goto fail;
    int bad = PyDict_SetItemString(d, "levels", levels);
    Py_DECREF(levels);
    if (bad < 0 || PyDict_SetItemString(d, "path", self->path) < 0) goto fail;
    Py_DECREF(counters);
    Py_XDECREF(summary);
    return d;
fail:
    Py_XDECREF(d);
    Py_DECREF(counters);
    Py_XDECREF(summary);
    return NULL;
}

static PyObject *DB_close(DBObject *self, PyObject *unused) {
    (void)unused;
    if (db_close(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *DB_enter(DBObject *self, PyObject *unused) {
    (void)unused;
    if (!self->db || self->closing) return raise_closed(self);
    return Py_NewRef((PyObject *)self);
}

static PyObject *DB_exit(DBObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (db_close(self) < 0) return NULL;
    Py_RETURN_FALSE;
}

static PyObject *DB_repr(DBObject *self) {
    return PyUnicode_FromFormat("<weir.DB %R%s>", self->path ? self->path : Py_None,
                                self->db ? "" : " closed");
}

static PyObject *DB_get_closed(DBObject *self, void *unused) {
    (void)unused;
    return PyBool_FromLong(self->db == NULL || self->closing);
}

static PyObject *DB_get_path(DBObject *self, void *unused) {
    (void)unused;
    return Py_NewRef(self->path ? self->path : Py_None);
}

static PyObject *DB_subscript(DBObject *self, PyObject *key) {
    int found;
    PyObject *r = db_lookup(self, key, NULL, &found);
    if (r || found || PyErr_Occurred()) return r;
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

static int DB_ass_subscript(DBObject *self, PyObject *key, PyObject *value) {
    PyObject *r = value ? put_common(self, key, value, WEIR_SYNC_DEFAULT, 0)
                        : delete_common(self, key, WEIR_SYNC_DEFAULT);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

static int DB_contains(DBObject *self, PyObject *key) { return db_has(self, key, NULL); }

#define FASTKW(fn) (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef DB_methods[] = {
    {"get", FASTKW(DB_get), "get(key, default=None, *, snapshot=None) -> bytes | default"},
    {"put", FASTKW(DB_put), "put(key, value, *, sync=None) -> None"},
    {"delete", FASTKW(DB_delete), "delete(key, *, sync=None) -> None; an absent key is fine"},
    {"get_many", FASTKW(DB_get_many),
     "get_many(keys, *, snapshot=None) -> list[bytes | None], read at one point in time"},
    {"put_many", FASTKW(DB_put_many),
     "put_many(mapping_or_pairs, *, sync=None) -> int; one atomic batch, returns the count"},
    {"delete_many", FASTKW(DB_delete_many), "delete_many(keys, *, sync=None) -> int; one atomic batch"},
    {"write_batch", FASTKW(DB_write_batch),
     "write_batch(*, sync=None) -> WriteBatch; a context manager that commits on clean exit"},
    {"write", FASTKW(DB_write), "write(batch, *, sync=None) -> None; the batch is left unchanged"},
    {"keys", FASTKW(DB_keys),
     "keys(*, prefix=None, start=None, stop=None, reverse=False, snapshot=None) -> RangeIterator"},
    {"values", FASTKW(DB_values),
     "values(*, prefix=None, start=None, stop=None, reverse=False, snapshot=None) -> RangeIterator"},
    {"items", FASTKW(DB_items),
     "items(*, prefix=None, start=None, stop=None, reverse=False, snapshot=None) -> RangeIterator"},
    {"iterator", FASTKW(DB_iterator),
     "iterator(*, prefix=None, start=None, stop=None, snapshot=None) -> Iterator (unpositioned cursor)"},
    {"merge", FASTKW(DB_merge),
     "merge(key, op, operand, *, sync=None) -> None; op is a name like 'int64_add' or an id"},
    {"incr", FASTKW(DB_incr), "incr(key, n=1, *, sync=None) -> None; int64 add"},
    {"add_float", FASTKW(DB_add_float), "add_float(key, x, *, sync=None) -> None; float64 add"},
    {"list_append", FASTKW(DB_list_append),
     "list_append(key, item, *, max_items, sync=None) -> None; keeps the newest max_items"},
    {"get_int", FASTKW(DB_get_int), "get_int(key, default=0, *, snapshot=None) -> int | default"},
    {"get_float", FASTKW(DB_get_float),
     "get_float(key, default=0.0, *, snapshot=None) -> float | default"},
    {"get_list", FASTKW(DB_get_list), "get_list(key, *, snapshot=None) -> list[bytes]"},
    {"delete_range", FASTKW(DB_delete_range),
     "delete_range(start, end, *, sync=None) -> None; every key in [start, end), one write"},
    {"delete_prefix", FASTKW(DB_delete_prefix),
     "delete_prefix(prefix, *, sync=None) -> None; every key starting with prefix"},
    {"checkpoint", (PyCFunction)DB_checkpoint, METH_O,
     "checkpoint(path) -> None; an openable copy in path (absent or empty)"},
    {"transaction", FASTKW(DB_transaction),
     "transaction(*, sync=None, track_all_reads=False) -> Transaction (optimistic)"},
    {"snapshot", (PyCFunction)DB_snapshot, METH_NOARGS, "snapshot() -> Snapshot of the current state"},
    {"flush", (PyCFunction)DB_flush, METH_NOARGS, "flush() -> None; write the memtable to a table"},
    {"compact", FASTKW(DB_compact), "compact(start=None, stop=None) -> None; compact the key range"},
    {"stats", (PyCFunction)DB_stats, METH_NOARGS, "stats() -> dict of counters, levels and path"},
    {"property", (PyCFunction)DB_property, METH_O, "property(name) -> str | None"},
    {"close", (PyCFunction)DB_close, METH_NOARGS,
     "close() -> None; idempotent; invalidates iterators, snapshots and transactions"},
    {"__enter__", (PyCFunction)DB_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))DB_exit, METH_FASTCALL, NULL},
    WEIR_ARROW_DB_METHODS
    {0},
};

static PyGetSetDef DB_getset[] = {
    {"closed", (getter)DB_get_closed, NULL, "True once close() has begun", NULL},
    {"path", (getter)DB_get_path, NULL, "the directory of the store", NULL},
    {0},
};

static PyMappingMethods DB_as_mapping = {
    .mp_subscript = (binaryfunc)DB_subscript,
    .mp_ass_subscript = (objobjargproc)DB_ass_subscript,
};

static PySequenceMethods DB_as_sequence = {
    .sq_contains = (objobjproc)DB_contains,
};

static PyTypeObject DB_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.DB",
    .tp_basicsize = sizeof(DBObject),
    .tp_dealloc = (destructor)DB_dealloc,
    .tp_repr = (reprfunc)DB_repr,
    .tp_as_sequence = &DB_as_sequence,
    .tp_as_mapping = &DB_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "DB(path, *, create_if_missing=True, error_if_exists=False, read_only=False,\n"
              "   write_buffer_size=None, block_size=None, bloom_bits_per_key=None, max_open_files=None,\n"
              "   background_threads=None, sync='flush', target_file_size=None,\n"
              "   max_bytes_for_level_base=None, level0_triggers=None, compression=None,\n"
              "   block_cache_size=None, default_ttl=None)\n\n"
              "An open weir store. Keys and values are bytes-like; a missing key is not an\n"
              "error. Use as a context manager to close it. read_only=True writes, renames\n"
              "and deletes nothing (it works on read-only media) and shares the store with\n"
              "other read-only handles; a handle belongs to the process that opened it (in\n"
              "a forked child it raises InvalidArgumentError; open a new one there).",
    .tp_weaklistoffset = offsetof(DBObject, weakreflist),
    .tp_iter = (getiterfunc)DB_iter,
    .tp_methods = DB_methods,
    .tp_getset = DB_getset,
    .tp_init = (initproc)DB_init,
    .tp_new = DB_new,
};

/* ---- Snapshot ------------------------------------------------------------------ */

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

static int snapshot_usable(SnapshotObject *s) {
    if (!s->db || !s->snap) {
        raise_fmt(WEIR_CLOSED, "the snapshot has been released");
        return -1;
    }
    return 0;
}

static PyObject *Snapshot_get(SnapshotObject *s, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_snap_get, args, nargs, kwnames, a) < 0) return NULL;
    if (snapshot_usable(s) < 0) return NULL;
    return get_common(s->db, a[0], a[1], s);
}

static PyObject *Snapshot_get_many(SnapshotObject *s, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
    PyObject *a[1];
    if (bind_args(&spec_snap_get_many, args, nargs, kwnames, a) < 0) return NULL;
    if (snapshot_usable(s) < 0) return NULL;
    return get_many_common(s->db, a[0], s);
}

static PyObject *snap_range(SnapshotObject *s, int mode, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames) {
    PyObject *a[4];
    if (bind_args(&spec_snap_range, args, nargs, kwnames, a) < 0) return NULL;
    if (snapshot_usable(s) < 0) return NULL;
    return make_range(s->db, mode, a, s, NULL);
}

static PyObject *Snapshot_keys(SnapshotObject *s, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    return snap_range(s, MODE_KEYS, args, nargs, kwnames);
}

static PyObject *Snapshot_values(SnapshotObject *s, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
    return snap_range(s, MODE_VALUES, args, nargs, kwnames);
}

static PyObject *Snapshot_items(SnapshotObject *s, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    return snap_range(s, MODE_ITEMS, args, nargs, kwnames);
}

static PyObject *Snapshot_iter(SnapshotObject *s) {
    if (snapshot_usable(s) < 0) return NULL;
    PyObject *a[4] = {NULL, NULL, NULL, NULL};
    return make_range(s->db, MODE_KEYS, a, s, NULL);
}

static PyObject *Snapshot_iterator(SnapshotObject *s, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_snap_iterator, args, nargs, kwnames, a) < 0) return NULL;
    if (snapshot_usable(s) < 0) return NULL;
    return make_cursor(s->db, a, s);
}

static PyObject *Snapshot_subscript(SnapshotObject *s, PyObject *key) {
    if (snapshot_usable(s) < 0) return NULL;
    int found;
    PyObject *r = db_lookup(s->db, key, s, &found);
    if (r || found || PyErr_Occurred()) return r;
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

static int Snapshot_contains(SnapshotObject *s, PyObject *key) {
    if (snapshot_usable(s) < 0) return -1;
    return db_has(s->db, key, s);
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
    {"get", FASTKW(Snapshot_get), "get(key, default=None) -> bytes | default, as of the snapshot"},
    {"get_many", FASTKW(Snapshot_get_many), "get_many(keys) -> list[bytes | None]"},
    {"keys", FASTKW(Snapshot_keys), "keys(*, prefix=None, start=None, stop=None, reverse=False)"},
    {"values", FASTKW(Snapshot_values), "values(*, prefix=None, start=None, stop=None, reverse=False)"},
    {"items", FASTKW(Snapshot_items), "items(*, prefix=None, start=None, stop=None, reverse=False)"},
    {"iterator", FASTKW(Snapshot_iterator), "iterator(*, prefix=None, start=None, stop=None) -> Iterator"},
    {"release", (PyCFunction)Snapshot_release, METH_NOARGS, "release() -> None; idempotent"},
    {"close", (PyCFunction)Snapshot_release, METH_NOARGS, "close() -> None; same as release()"},
    {"__enter__", (PyCFunction)Snapshot_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Snapshot_exit, METH_FASTCALL, NULL},
    {0},
};

static PyGetSetDef Snapshot_getset[] = {
    {"released", (getter)Snapshot_get_released, NULL, "True once released", NULL},
    {"sequence", (getter)Snapshot_get_sequence, NULL, "the sequence number the snapshot reads at", NULL},
    {"db", (getter)Snapshot_get_db, NULL, "the DB the snapshot belongs to", NULL},
    {0},
};

static PyMappingMethods Snapshot_as_mapping = {
    .mp_subscript = (binaryfunc)Snapshot_subscript,
};

static PySequenceMethods Snapshot_as_sequence = {
    .sq_contains = (objobjproc)Snapshot_contains,
};

static PyTypeObject Snapshot_Type = {
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
    .tp_iter = (getiterfunc)Snapshot_iter,
    .tp_methods = Snapshot_methods,
    .tp_getset = Snapshot_getset,
};

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

static PyObject *Iter_enter(IterObject *c, PyObject *u) {
    (void)u;
    return Py_NewRef((PyObject *)c);
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
    {"seek", (PyCFunction)Iter_seek, METH_O, "seek(key) -> bool; first key >= key"},
    {"seek_for_prev", (PyCFunction)Iter_seek_for_prev, METH_O, "seek_for_prev(key) -> bool; last key <= key"},
    {"seek_to_first", (PyCFunction)Iter_seek_to_first, METH_NOARGS, "seek_to_first() -> bool"},
    {"seek_to_last", (PyCFunction)Iter_seek_to_last, METH_NOARGS, "seek_to_last() -> bool"},
    {"next", (PyCFunction)Iter_next, METH_NOARGS, "next() -> bool; step forward, return valid"},
    {"prev", (PyCFunction)Iter_prev, METH_NOARGS, "prev() -> bool; step back, return valid"},
    {"close", (PyCFunction)Iter_close, METH_NOARGS, "close() -> None; idempotent"},
    {"__enter__", (PyCFunction)Iter_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Iter_exit, METH_FASTCALL, NULL},
    {0},
};

static PyGetSetDef Iter_getset[] = {
    {"valid", (getter)Iter_get_valid, NULL, "True while positioned on an entry", NULL},
    {"key", (getter)Iter_get_key, NULL, "current key (bytes), or None when not valid", NULL},
    {"value", (getter)Iter_get_value, NULL, "current value (bytes), or None when not valid", NULL},
    {"closed", (getter)Iter_get_closed, NULL, "True once closed or invalidated", NULL},
    {0},
};

static PyTypeObject Iter_Type = {
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

static void range_invalidate_as(RangeIterObject *r, int why) {
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

static PyObject *Range_enter(RangeIterObject *r, PyObject *u) {
    (void)u;
    return Py_NewRef((PyObject *)r);
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
    {"close", (PyCFunction)Range_close, METH_NOARGS, "close() -> None; stop early and free resources"},
    {"__enter__", (PyCFunction)Range_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Range_exit, METH_FASTCALL, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, NULL},
    {0},
};

static PyTypeObject RangeIter_Type = {
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

/* ---- WriteBatch --------------------------------------------------------------- */

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
    if (db != Py_None && !PyObject_TypeCheck(db, &DB_Type)) {
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
        PyErr_SetString(PyExc_RuntimeError, "the WriteBatch is being written by another thread");
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

static PyObject *Batch_enter(BatchObject *b, PyObject *u) {
    (void)u;
    return Py_NewRef((PyObject *)b);
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
    {"put", FASTKW(Batch_put), "put(key, value, *, ttl=None) -> None; ttl in seconds"},
    {"delete", FASTKW(Batch_delete), "delete(key) -> None"},
    {"merge", FASTKW(Batch_merge), "merge(key, op, operand) -> None"},
    {"incr", FASTKW(Batch_incr), "incr(key, n=1) -> None; int64 add"},
    {"delete_range", FASTKW(Batch_delete_range), "delete_range(start, end) -> None; keys in [start, end)"},
    {"put_many", (PyCFunction)Batch_put_many, METH_O, "put_many(mapping_or_pairs) -> int"},
    {"clear", (PyCFunction)Batch_clear_method, METH_NOARGS, "clear() -> None; drop every operation"},
    {"commit", (PyCFunction)Batch_commit, METH_NOARGS,
     "commit() -> None; apply atomically to the bound DB, then clear"},
    {"__enter__", (PyCFunction)Batch_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Batch_exit, METH_FASTCALL, NULL},
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

static PyTypeObject Batch_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.WriteBatch",
    .tp_basicsize = sizeof(BatchObject),
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_repr = (reprfunc)Batch_repr,
    .tp_as_sequence = &Batch_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "WriteBatch(db=None, *, sync=None)\n\n"
              "Puts, deletes, merges and range deletes applied atomically. As a context manager (from\n"
              "DB.write_batch()) it commits on a clean exit and discards on an exception.",
    .tp_traverse = (traverseproc)Batch_traverse,
    .tp_clear = (inquiry)Batch_clear,
    .tp_methods = Batch_methods,
    .tp_getset = Batch_getset,
    .tp_new = Batch_new,
};

/* ---- Transaction ----------------------------------------------------------------- */

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

/* Can the transaction take a call now? */
static int txn_check(TxnObject *t) {
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

/* Read key through the transaction: new bytes, or NULL with *found = 0
 * and no exception when absent, or NULL with an exception. */
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

static PyObject *txn_get_common(TxnObject *t, PyObject *key, PyObject *dflt, int for_update) {
    int found;
    PyObject *r = txn_lookup(t, key, for_update, &found);
    if (r || found || PyErr_Occurred()) return r;
    return Py_NewRef(dflt ? dflt : Py_None);
}

static PyObject *Txn_get(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (bind_args(&spec_txn_get, args, nargs, kwnames, a) < 0) return NULL;
    int for_update = 0;
    if (a[2] && (for_update = PyObject_IsTrue(a[2])) < 0) return NULL;
    return txn_get_common(t, a[0], a[1], for_update);
}

static PyObject *Txn_get_for_update(TxnObject *t, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_txn_get_for_update, args, nargs, kwnames, a) < 0) return NULL;
    return txn_get_common(t, a[0], a[1], 1);
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

static PyObject *txn_range(TxnObject *t, int mode, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    PyObject *a[4];
    if (bind_args(&spec_snap_range, args, nargs, kwnames, a) < 0) return NULL;
    if (txn_check(t) < 0) return NULL;
    return make_range(t->db, mode, a, NULL, t);
}

static PyObject *Txn_keys(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return txn_range(t, MODE_KEYS, args, nargs, kwnames);
}

static PyObject *Txn_values(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return txn_range(t, MODE_VALUES, args, nargs, kwnames);
}

static PyObject *Txn_items(TxnObject *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return txn_range(t, MODE_ITEMS, args, nargs, kwnames);
}

static PyObject *Txn_iter(TxnObject *t) { return txn_range(t, MODE_KEYS, NULL, 0, NULL); }

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

static PyObject *Txn_subscript(TxnObject *t, PyObject *key) {
    int found;
    PyObject *r = txn_lookup(t, key, 0, &found);
    if (r || found || PyErr_Occurred()) return r;
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

static int Txn_ass_subscript(TxnObject *t, PyObject *key, PyObject *value) {
    return value ? txn_put(t, key, value) : txn_delete(t, key);
}

static int Txn_contains(TxnObject *t, PyObject *key) {
    int found;
    PyObject *r = txn_lookup(t, key, 0, &found);
    if (r) {
        Py_DECREF(r);
        return 1;
    }
    return PyErr_Occurred() ? -1 : 0;
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
    {"get", FASTKW(Txn_get),
     "get(key, default=None, *, for_update=False) -> bytes | default; own writes first"},
    {"get_for_update", FASTKW(Txn_get_for_update),
     "get_for_update(key, default=None) -> bytes | default; commit fails if key changes meanwhile"},
    {"put", FASTKW(Txn_put), "put(key, value) -> None; buffered until commit"},
    {"delete", FASTKW(Txn_delete), "delete(key) -> None; buffered until commit"},
    {"merge", FASTKW(Txn_merge), "merge(key, op, operand) -> None; buffered until commit"},
    {"incr", FASTKW(Txn_incr), "incr(key, n=1) -> None; int64 add, buffered until commit"},
    {"keys", FASTKW(Txn_keys), "keys(*, prefix=None, start=None, stop=None, reverse=False)"},
    {"values", FASTKW(Txn_values), "values(*, prefix=None, start=None, stop=None, reverse=False)"},
    {"items", FASTKW(Txn_items), "items(*, prefix=None, start=None, stop=None, reverse=False)"},
    {"commit", (PyCFunction)Txn_commit, METH_NOARGS,
     "commit() -> None; raises ConflictError (nothing written) if a key it read or wrote changed"},
    {"rollback", (PyCFunction)Txn_rollback, METH_NOARGS,
     "rollback() -> None; discard the writes; does nothing once finished"},
    {"__enter__", (PyCFunction)Txn_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Txn_exit, METH_FASTCALL, NULL},
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
    .mp_subscript = (binaryfunc)Txn_subscript,
    .mp_ass_subscript = (objobjargproc)Txn_ass_subscript,
};

static PySequenceMethods Txn_as_sequence = {
    .sq_contains = (objobjproc)Txn_contains,
};

static PyTypeObject Txn_Type = {
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
    .tp_iter = (getiterfunc)Txn_iter,
    .tp_methods = Txn_methods,
    .tp_getset = Txn_getset,
};

/* ---- module --------------------------------------------------------------------- */

static PyObject *mod_destroy(PyObject *m, PyObject *path_arg) {
    (void)m;
    PyObject *encoded;
    if (!PyUnicode_FSConverter(path_arg, &encoded)) return NULL;
    const char *p = PyBytes_AS_STRING(encoded);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_destroy(p);
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    if (rc != WEIR_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

/* ---- check and salvage ---------------------------------------------------------- */

/* Findings gathered without the GIL (the engine reports from its own
 * call stack), turned into Python objects afterwards. */
typedef struct finding {
    int level;
    char *file;
    char *message;
} finding;

typedef struct finding_list {
    finding *v;
    size_t n, cap;
    int oom;
} finding_list;

static void collect_finding(void *arg, int level, const char *file, const char *message) {
    finding_list *l = arg;
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        finding *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    finding *f = &l->v[l->n];
    f->level = level;
    f->file = strdup(file ? file : "");
    f->message = strdup(message ? message : "");
    if (!f->file || !f->message) {
        free(f->file);
        free(f->message);
        l->oom = 1;
        return;
    }
    l->n++;
}

static void findings_free(finding_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].file);
        free(l->v[i].message);
    }
    free(l->v);
}

/* (status name, message, [(level, file, message), ...]); raises for any
 * status but OK and CORRUPTION (which the report describes). */
static PyObject *report_result(int rc, const char *msg, finding_list *l) {
    if (l->oom) {
        findings_free(l);
        return PyErr_NoMemory();
    }
    if (rc != WEIR_OK && rc != WEIR_CORRUPTION) {
        findings_free(l);
        return raise_with(rc, PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace"));
    }
    PyObject *list = PyList_New((Py_ssize_t)l->n);
    for (size_t i = 0; list && i < l->n; i++) {
        PyObject *t = Py_BuildValue("(iss)", l->v[i].level, l->v[i].file, l->v[i].message);
        if (!t) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    findings_free(l);
    if (!list) return NULL;
    return Py_BuildValue("(sN)", rc == WEIR_OK ? "" : msg, list);
}

static PyObject *mod_check(PyObject *m, PyObject *path_arg) {
    (void)m;
    PyObject *encoded;
    if (!PyUnicode_FSConverter(path_arg, &encoded)) return NULL;
    finding_list l = {0};
    int rc;
    char msg[1024];
    Py_BEGIN_ALLOW_THREADS
    rc = weir_check(PyBytes_AS_STRING(encoded), collect_finding, &l);
    snprintf(msg, sizeof msg, "%s", weir_errmsg());
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    return report_result(rc, msg, &l);
}

static PyObject *mod_salvage(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *src_arg, *dst_arg, *src, *dst;
    if (!PyArg_ParseTuple(args, "OO:salvage", &src_arg, &dst_arg)) return NULL;
    if (!PyUnicode_FSConverter(src_arg, &src)) return NULL;
    if (!PyUnicode_FSConverter(dst_arg, &dst)) {
        Py_DECREF(src);
        return NULL;
    }
    finding_list l = {0};
    int rc;
    char msg[1024];
    Py_BEGIN_ALLOW_THREADS
    rc = weir_salvage(PyBytes_AS_STRING(src), PyBytes_AS_STRING(dst), NULL, collect_finding, &l);
    snprintf(msg, sizeof msg, "%s", weir_errmsg());
    Py_END_ALLOW_THREADS
    Py_DECREF(src);
    Py_DECREF(dst);
    return report_result(rc, msg, &l);
}

static PyObject *mod_build_info(PyObject *m, PyObject *u) {
    (void)m;
    (void)u;
    return PyUnicode_FromString(weir_build_info());
}

static PyObject *mod_compression_supported(PyObject *m, PyObject *name) {
    (void)m;
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "codec name must be str, not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    int codec;
    if (PyUnicode_CompareWithASCIIString(name, "none") == 0) codec = WEIR_COMPRESSION_NONE;
    else if (PyUnicode_CompareWithASCIIString(name, "lz4") == 0) codec = WEIR_COMPRESSION_LZ4;
    else if (PyUnicode_CompareWithASCIIString(name, "zstd") == 0) codec = WEIR_COMPRESSION_ZSTD;
    else Py_RETURN_FALSE;
    return PyBool_FromLong(weir_compression_supported(codec));
}

static PyMethodDef module_methods[] = {
    {"destroy", (PyCFunction)mod_destroy, METH_O, "destroy(path) -> None; delete a closed store"},
    {"build_info", (PyCFunction)mod_build_info, METH_NOARGS, "build_info() -> str"},
    {"_check", (PyCFunction)mod_check, METH_O,
     "_check(path) -> (first damage message or '', [(level, file, message), ...]); see weir.check"},
    {"_salvage", (PyCFunction)mod_salvage, METH_VARARGS,
     "_salvage(src, dst) -> (summary of losses or '', [(level, file, message), ...]); see weir.salvage"},
    {"compression_supported", (PyCFunction)mod_compression_supported, METH_O,
     "compression_supported(name) -> bool for 'none', 'lz4' or 'zstd'"},
    {0},
};

static struct PyModuleDef weir_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "weir._weir",
    .m_doc = "C extension of weir: the DB and its batches, snapshots, iterators and transactions.",
    .m_size = -1,
    .m_methods = module_methods,
};

static PyObject *new_error(PyObject *m, const char *name, const char *doc, PyObject *bases) {
    char full[64];
    snprintf(full, sizeof full, "weir.%s", name);
    PyObject *e = PyErr_NewExceptionWithDoc(full, doc, bases, NULL);
    if (!e) return NULL;
    if (PyModule_AddObjectRef(m, name, e) < 0) {
        Py_DECREF(e);
        return NULL;
    }
    return e;
}

static PyObject *new_error2(PyObject *m, const char *name, const char *doc, PyObject *a, PyObject *b) {
    PyObject *bases = PyTuple_Pack(2, a, b);
    if (!bases) return NULL;
    PyObject *e = new_error(m, name, doc, bases);
    Py_DECREF(bases);
    return e;
}

PyMODINIT_FUNC PyInit__weir(void) {
    for (size_t i = 0; i < sizeof all_specs / sizeof all_specs[0]; i++) {
        if (!all_specs[i]->keys && argspec_init(all_specs[i]) < 0) return NULL;
    }
    if (!str_status && !(str_status = PyUnicode_InternFromString("status"))) return NULL;
    if (!str_errno && !(str_errno = PyUnicode_InternFromString("errno"))) return NULL;
    if (!str_items && !(str_items = PyUnicode_InternFromString("items"))) return NULL;
    if (!str_total_seconds && !(str_total_seconds = PyUnicode_InternFromString("total_seconds")))
        return NULL;

    PyTypeObject *types[] = {&DB_Type, &Snapshot_Type, &Iter_Type, &RangeIter_Type, &Batch_Type,
                             &Txn_Type};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0) return NULL;

    PyObject *m = PyModule_Create(&weir_module);
    if (!m) return NULL;

    PyObject *dict = PyDict_New();
    if (!dict || PyDict_SetItemString(dict, "status", Py_None) < 0) goto fail;
    Error = PyErr_NewExceptionWithDoc(
        "weir.Error",
        "Base class of weir's errors. str(e) is the engine's message; e.status is the\n"
        "C status name, e.g. 'WEIR_CORRUPTION'.",
        PyExc_Exception, dict);
    Py_CLEAR(dict);
    if (!Error || PyModule_AddObjectRef(m, "Error", Error) < 0) goto fail;
    if (!(CorruptionError = new_error(m, "CorruptionError",
                                      "A checksum or format check failed; the message names the file "
                                      "and offset.",
                                      Error)))
        goto fail;
    if (!(StorageIOError = new_error2(m, "StorageIOError",
                                      "The operating system refused a file operation, or a background "
                                      "error stopped writes.",
                                      Error, PyExc_OSError)))
        goto fail;
    if (!(NoSpaceError = new_error(m, "NoSpaceError", "The file system is full (errno ENOSPC).",
                                   StorageIOError)))
        goto fail;
    if (!(ReadOnlyError = new_error(m, "ReadOnlyError",
                                    "A write, flush or compaction on a DB opened read_only=True, or "
                                    "after a background error stopped writes.",
                                    StorageIOError)))
        goto fail;
    if (!(BusyError = new_error(m, "BusyError",
                                "The store is locked by another open DB, in this or another process.",
                                Error)))
        goto fail;
    if (!(InvalidArgumentError = new_error2(m, "InvalidArgumentError",
                                            "A bad argument or option (e.g. a key over 1 MiB, a path "
                                            "that is a file).",
                                            Error, PyExc_ValueError)))
        goto fail;
    if (!(ClosedError = new_error(m, "ClosedError",
                                  "The DB, iterator or snapshot was closed or released.", Error)))
        goto fail;
    if (!(ConflictError = new_error(m, "ConflictError",
                                    "A transaction's commit lost to a concurrent commit; nothing was "
                                    "written. Run the transaction again (see weir.retry).",
                                    Error)))
        goto fail;

    struct {
        const char *name;
        PyTypeObject *type;
    } exported[] = {{"DB", &DB_Type},
                    {"Snapshot", &Snapshot_Type},
                    {"Iterator", &Iter_Type},
                    {"RangeIterator", &RangeIter_Type},
                    {"WriteBatch", &Batch_Type},
                    {"Transaction", &Txn_Type}};
    for (size_t i = 0; i < sizeof exported / sizeof exported[0]; i++)
        if (PyModule_AddObjectRef(m, exported[i].name, (PyObject *)exported[i].type) < 0) goto fail;

    if (PyModule_AddStringConstant(m, "__version__", weir_version()) < 0 ||
        PyModule_AddStringConstant(m, "ENGINE_VERSION", weir_version()) < 0 ||
        PyModule_AddIntConstant(m, "MAX_KEY_SIZE", (long)WEIR_MAX_KEY_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MAX_VALUE_SIZE", (long)WEIR_MAX_VALUE_SIZE) < 0)
        goto fail;
    if (weir_arrow_init(m) < 0) goto fail;
    return m;
fail:
    Py_XDECREF(dict);
    Py_DECREF(m);
    return NULL;
}
