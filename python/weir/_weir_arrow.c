/*
 * _weir_arrow.c -- DB.scan_arrow, DB.put_arrow, DB.put_batch, DB.get_batch.
 *
 * Arrow data crosses the boundary through the Arrow C Data Interface and
 * the C Stream Interface (the structs below are the ABI those specifications
 * define), wrapped in PyCapsules as the Arrow PyCapsule interface asks. No
 * Arrow library is linked: scan_arrow builds its record batches by hand,
 * put_arrow reads the producer's buffers directly.
 *
 * scan_arrow. The DB's engine iterator is created when scan_arrow is called
 * (so the stream reads that point in time) and belongs to a scan_state that
 * sits on the DB's list of dependants, exactly like a RangeIterator: closing
 * the DB destroys the engine iterator first, and the stream then reports an
 * error instead of touching a freed handle. Consumers call the stream's
 * callbacks from any thread, with or without the GIL, so get_next takes the
 * GIL (PyGILState_Ensure) to count itself in flight on the DB and releases
 * it while it walks the engine and fills the buffers.
 *
 * Each batch holds at most batch_size rows and at most SCAN_BATCH_BYTES of
 * keys and of values, so 32-bit binary offsets never overflow (one value
 * is at most 1 GiB, under INT32_MAX); large=True gives 64-bit offsets
 * (large_binary) instead.
 *
 * put_arrow. Every row of the input is encoded into one engine write batch
 * before anything is written, and the batch is written with one call: bad
 * input (a missing column, a type it cannot encode, a null key) raises
 * before the DB is touched, and a crash leaves all rows or none. With a
 * progress callback, encoding reports after each slice of rows and the
 * write runs on a thread of its own while this one reports how far it has
 * got (see "put_arrow: progress" below).
 */
#include "_weir_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arrow_abi.h"

/* Soft cap on the key bytes, and on the value bytes, of one scan batch. */
#define SCAN_BATCH_BYTES ((size_t)64 << 20)
#define SCAN_DEFAULT_ROWS 65536

/* ---- scan_arrow: the exported schema --------------------------------------- */

typedef struct schema_priv {
    struct ArrowSchema *child_ptrs[2];
    struct ArrowSchema children[2];
} schema_priv;

static void child_schema_release(struct ArrowSchema *s) { s->release = NULL; }

static void schema_release(struct ArrowSchema *s) {
    schema_priv *p = s->private_data;
    for (int i = 0; i < 2; i++)
        if (p->children[i].release) p->children[i].release(&p->children[i]);
    free(p);
    s->release = NULL;
}

/* struct<key: binary not null, value: binary not null>; 0 or ENOMEM. */
static int make_kv_schema(struct ArrowSchema *out, int large) {
    schema_priv *p = calloc(1, sizeof *p);
    if (!p) return ENOMEM;
    static const char *const names[2] = {"key", "value"};
    for (int i = 0; i < 2; i++) {
        struct ArrowSchema *c = &p->children[i];
        c->format = large ? "Z" : "z";
        c->name = names[i];
        c->release = child_schema_release;
        p->child_ptrs[i] = c;
    }
    memset(out, 0, sizeof *out);
    out->format = "+s";
    out->name = "";
    out->n_children = 2;
    out->children = p->child_ptrs;
    out->release = schema_release;
    out->private_data = p;
    return 0;
}

/* ---- scan_arrow: the exported arrays --------------------------------------- */

typedef struct column_buf {
    char *offsets; /* int32 or int64, rows + 1 of them */
    char *data;
    size_t data_len, data_cap;
} column_buf;

typedef struct column_priv {
    const void *buffers[3];
    char *offsets;
    char *data;
} column_priv;

typedef struct batch_priv {
    struct ArrowArray *child_ptrs[2];
    struct ArrowArray children[2];
    const void *buffers[1];
} batch_priv;

static void column_release(struct ArrowArray *a) {
    column_priv *p = a->private_data;
    free(p->offsets);
    free(p->data);
    free(p);
    a->release = NULL;
}

/* A consumer may move a child out and release it on its own, which leaves
 * our copy's release NULL: only release what is still ours. */
static void batch_release(struct ArrowArray *a) {
    batch_priv *p = a->private_data;
    for (int i = 0; i < 2; i++)
        if (p->children[i].release) p->children[i].release(&p->children[i]);
    free(p);
    a->release = NULL;
}

static int column_append(column_buf *c, int large, int64_t row, const void *src, size_t len) {
    if (c->data_len + len > c->data_cap) {
        size_t cap = c->data_cap ? c->data_cap : 4096;
        while (cap < c->data_len + len) cap *= 2;
        char *d = realloc(c->data, cap);
        if (!d) return ENOMEM;
        c->data = d;
        c->data_cap = cap;
    }
    if (len) memcpy(c->data + c->data_len, src, len);
    c->data_len += len;
    if (large) ((int64_t *)c->offsets)[row + 1] = (int64_t)c->data_len;
    else ((int32_t *)c->offsets)[row + 1] = (int32_t)c->data_len;
    return 0;
}

static void column_free(column_buf *c) {
    free(c->offsets);
    free(c->data);
    c->offsets = c->data = NULL;
}

/* Wrap filled columns as a struct array; takes the buffers (also on error). */
static int make_kv_array(struct ArrowArray *out, column_buf cols[2], int64_t rows) {
    batch_priv *bp = calloc(1, sizeof *bp);
    column_priv *cp[2] = {calloc(1, sizeof(column_priv)), calloc(1, sizeof(column_priv))};
    if (!bp || !cp[0] || !cp[1]) {
        free(bp);
        free(cp[0]);
        free(cp[1]);
        column_free(&cols[0]);
        column_free(&cols[1]);
        return ENOMEM;
    }
    for (int i = 0; i < 2; i++) {
        struct ArrowArray *c = &bp->children[i];
        cp[i]->offsets = cols[i].offsets;
        cp[i]->data = cols[i].data;
        cp[i]->buffers[0] = NULL; /* no nulls: no validity bitmap */
        cp[i]->buffers[1] = cols[i].offsets;
        cp[i]->buffers[2] = cols[i].data;
        c->length = rows;
        c->n_buffers = 3;
        c->buffers = cp[i]->buffers;
        c->release = column_release;
        c->private_data = cp[i];
        bp->child_ptrs[i] = c;
        cols[i].offsets = cols[i].data = NULL;
    }
    memset(out, 0, sizeof *out);
    bp->buffers[0] = NULL;
    out->length = rows;
    out->n_buffers = 1;
    out->buffers = bp->buffers;
    out->n_children = 2;
    out->children = bp->child_ptrs;
    out->release = batch_release;
    out->private_data = bp;
    return 0;
}

/* ---- scan_arrow: the Python object and its streams --------------------------- */

/* What scan_arrow returns. It holds a weir snapshot taken at the call, so
 * every stream exported from it (DuckDB, for one, asks for a stream once
 * for the schema and again for the data) reads the same point in time. */
typedef struct ArrowScanObject {
    PyObject_HEAD
    dep node;             /* on the DB's dependants while `snap` lives */
    DBObject *db;
    weir_snapshot *snap;  /* NULL once closed, or the DB was closed */
    PyObject *prefix, *start, *stop; /* bytes or NULL */
    int64_t batch_size;
    int large;
    int db_closed;
    Py_ssize_t exports;
} ArrowScanObject;

static PyTypeObject ArrowScan_Type;

typedef struct scan_state {
    dep node;               /* on the DB's dependants while `it` lives */
    ArrowScanObject *scan;  /* strong reference: keeps the snapshot alive */
    weir_iter *it;          /* NULL once exhausted or invalidated */
    int positioned;
    int done;               /* the end was reached and reported */
    int db_closed;          /* the DB was closed under the stream */
    size_t hint[2];         /* key and value bytes of the last batch */
    char errmsg[512];
} scan_state;

/* Called by DB.close (GIL held, nothing in flight). The dep's owner is the
 * scan_state itself, not a Python object: the stream outlives the Python
 * objects it came from. */
static void stream_invalidate(PyObject *owner) {
    scan_state *st = (scan_state *)(void *)owner;
    if (st->it) {
        weir_iter_destroy(st->it);
        st->it = NULL;
        if (!st->done) st->db_closed = 1;
    }
}

static void scan_release_snapshot(ArrowScanObject *self) {
    dep_unlink(&self->node);
    if (self->snap) {
        if (self->db->db) weir_snapshot_release(self->db->db, self->snap);
        self->snap = NULL;
    }
}

static void scan_invalidate(PyObject *owner) {
    ArrowScanObject *self = (ArrowScanObject *)owner;
    if (self->snap) self->db_closed = 1;
    scan_release_snapshot(self);
}

/* GIL held. */
static void scan_state_free(scan_state *st) {
    if (!st) return;
    dep_unlink(&st->node);
    if (st->it) {
        weir_iter_destroy(st->it);
        st->it = NULL;
    }
    Py_CLEAR(st->scan);
    free(st);
}

/* Fill one batch; runs without the GIL. 0 with out->release NULL at the
 * end, an errno value with st->errmsg on failure. */
static int scan_fill(scan_state *st, int64_t cap, int large, struct ArrowArray *out) {
    weir_iter *it = st->it;
    if (!st->positioned) {
        weir_iter_seek_first(it);
        st->positioned = 1;
    }
    size_t width = large ? 8 : 4;
    column_buf cols[2];
    memset(cols, 0, sizeof cols);
    int64_t rows = 0;
    for (int i = 0; i < 2; i++) {
        cols[i].offsets = calloc((size_t)cap + 1, width);
        if (!cols[i].offsets) {
            column_free(&cols[0]);
            column_free(&cols[1]);
            snprintf(st->errmsg, sizeof st->errmsg, "out of memory for an Arrow batch");
            return ENOMEM;
        }
    }
    /* Start at the previous batch's size: growing by doubling copies the
     * data and faults in fresh pages several times over. */
    for (int i = 0; i < 2; i++) {
        if (st->hint[i] && (cols[i].data = malloc(st->hint[i]))) cols[i].data_cap = st->hint[i];
    }
    while (rows < cap && weir_iter_valid(it)) {
        size_t klen, vlen;
        const void *k = weir_iter_key(it, &klen);
        const void *v = weir_iter_value(it, &vlen);
        if (rows > 0 && !large &&
            (cols[0].data_len + klen > SCAN_BATCH_BYTES || cols[1].data_len + vlen > SCAN_BATCH_BYTES))
            break; /* the next batch starts with this row */
        if (column_append(&cols[0], large, rows, k, klen) || column_append(&cols[1], large, rows, v, vlen)) {
            column_free(&cols[0]);
            column_free(&cols[1]);
            snprintf(st->errmsg, sizeof st->errmsg, "out of memory for an Arrow batch");
            return ENOMEM;
        }
        rows++;
        weir_iter_next(it);
    }
    int rc = weir_iter_status(it);
    if (rc != WEIR_OK) {
        const char *m = weir_errmsg();
        snprintf(st->errmsg, sizeof st->errmsg, "scan_arrow: %s", m && *m ? m : weir_status_name(rc));
        column_free(&cols[0]);
        column_free(&cols[1]);
        return EIO;
    }
    if (rows == 0) {
        column_free(&cols[0]);
        column_free(&cols[1]);
        out->release = NULL;
        return 0;
    }
    st->hint[0] = cols[0].data_len;
    st->hint[1] = cols[1].data_len;
    if (make_kv_array(out, cols, rows)) {
        snprintf(st->errmsg, sizeof st->errmsg, "out of memory for an Arrow batch");
        return ENOMEM;
    }
    return 0;
}

static int stream_get_schema(struct ArrowArrayStream *s, struct ArrowSchema *out) {
    scan_state *st = s->private_data;
    int rc = make_kv_schema(out, st->scan->large);
    if (rc) snprintf(st->errmsg, sizeof st->errmsg, "out of memory for an Arrow schema");
    return rc;
}

static int stream_get_next(struct ArrowArrayStream *s, struct ArrowArray *out) {
    scan_state *st = s->private_data;
    memset(out, 0, sizeof *out);
    if (st->done) return 0;
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc;
    DBObject *db = st->scan->db;
    if (!st->it) {
        snprintf(st->errmsg, sizeof st->errmsg,
                 "scan_arrow: the DB was closed while its Arrow stream was being read");
        rc = EIO;
    } else if (db_enter(db) < 0) {
        PyErr_Clear();
        snprintf(st->errmsg, sizeof st->errmsg, "scan_arrow: the DB is closed");
        rc = EIO;
    } else {
        int64_t cap = st->scan->batch_size;
        int large = st->scan->large;
        Py_BEGIN_ALLOW_THREADS
        rc = scan_fill(st, cap, large, out);
        Py_END_ALLOW_THREADS
        db_leave(db);
        if (rc == 0 && !out->release) {
            /* The end: give the engine iterator (and the files it pins) back now. */
            st->done = 1;
            dep_unlink(&st->node);
            weir_iter_destroy(st->it);
            st->it = NULL;
        }
    }
    PyGILState_Release(gil);
    return rc;
}

static const char *stream_last_error(struct ArrowArrayStream *s) {
    scan_state *st = s->private_data;
    return st->errmsg[0] ? st->errmsg : NULL;
}

static void stream_release(struct ArrowArrayStream *s) {
    PyGILState_STATE gil = PyGILState_Ensure();
    scan_state_free(s->private_data);
    PyGILState_Release(gil);
    s->release = NULL;
}

static void stream_capsule_destructor(PyObject *capsule) {
    struct ArrowArrayStream *s = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (!s) {
        PyErr_WriteUnraisable(capsule);
        return;
    }
    if (s->release) s->release(s);
    free(s);
}

static const char *bytes_or_null(PyObject *b, size_t *len) {
    if (!b) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)PyBytes_GET_SIZE(b);
    return PyBytes_AS_STRING(b);
}

static PyObject *ArrowScan_arrow_c_stream(ArrowScanObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"requested_schema", NULL};
    PyObject *requested = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__arrow_c_stream__", kwlist, &requested))
        return NULL;
    /* requested_schema is a hint the interface lets a producer ignore; the
     * schema is always struct<key, value>. */
    if (!self->snap) {
        if (self->db_closed || !self->db->db) return raise_closed(self->db);
        return raise_fmt(WEIR_CLOSED, "this scan_arrow stream was closed");
    }
    scan_state *st = calloc(1, sizeof *st);
    struct ArrowArrayStream *s = calloc(1, sizeof *s);
    if (!st || !s) {
        free(st);
        free(s);
        return PyErr_NoMemory();
    }
    if (db_enter(self->db) < 0) {
        free(st);
        free(s);
        return NULL;
    }
    weir_readopts ro;
    memset(&ro, 0, sizeof ro);
    ro.snapshot = self->snap;
    ro.prefix = bytes_or_null(self->prefix, &ro.prefix_len);
    ro.lower_bound = bytes_or_null(self->start, &ro.lower_bound_len);
    ro.upper_bound = bytes_or_null(self->stop, &ro.upper_bound_len);
    weir_db *db = self->db->db;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_iter_create(db, &ro, &st->it);
    Py_END_ALLOW_THREADS
    db_leave(self->db);
    if (rc != WEIR_OK) {
        free(st);
        free(s);
        return raise_status(rc);
    }
    st->scan = (ArrowScanObject *)Py_NewRef((PyObject *)self);
    dep_link(self->db, &st->node, (PyObject *)(void *)st, stream_invalidate);
    s->get_schema = stream_get_schema;
    s->get_next = stream_get_next;
    s->get_last_error = stream_last_error;
    s->release = stream_release;
    s->private_data = st;
    PyObject *cap = PyCapsule_New(s, "arrow_array_stream", stream_capsule_destructor);
    if (!cap) {
        stream_release(s);
        free(s);
        return NULL;
    }
    self->exports++;
    return cap;
}

static PyObject *ArrowScan_close(ArrowScanObject *self, PyObject *unused) {
    (void)unused;
    scan_release_snapshot(self);
    Py_RETURN_NONE;
}

static PyObject *ArrowScan_exit(ArrowScanObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    scan_release_snapshot(self);
    Py_RETURN_FALSE;
}

static PyObject *ArrowScan_get_closed(ArrowScanObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->snap == NULL);
}

static void ArrowScan_dealloc(ArrowScanObject *self) {
    scan_release_snapshot(self);
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->start);
    Py_CLEAR(self->stop);
    Py_CLEAR(self->db);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef ArrowScan_methods[] = {
    {"__arrow_c_stream__", (PyCFunction)(void (*)(void))ArrowScan_arrow_c_stream,
     METH_VARARGS | METH_KEYWORDS,
     SIGNATURE("__arrow_c_stream__($self, requested_schema=None)")
     "A PyCapsule of an ArrowArrayStream over the scan."},
    {"close", (PyCFunction)ArrowScan_close, METH_NOARGS,
     SIGNATURE("close($self, /)") "Release the snapshot (streams already exported read on)."},
    {"__enter__", (PyCFunction)enter_returns_self, METH_NOARGS, SIGNATURE("__enter__($self, /)")},
    {"__exit__", (PyCFunction)(void (*)(void))ArrowScan_exit, METH_FASTCALL,
     SIGNATURE("__exit__($self, exc_type, exc, tb, /)") "Release the snapshot."},
    {0},
};

static PyGetSetDef ArrowScan_getset[] = {
    {"closed", (getter)ArrowScan_get_closed, NULL,
     "True once close() was called or the DB was closed", NULL},
    {0},
};

static PyTypeObject ArrowScan_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.ArrowScan",
    .tp_basicsize = sizeof(ArrowScanObject),
    .tp_dealloc = (destructor)ArrowScan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What DB.scan_arrow() returns: an Arrow PyCapsule stream producer.\n\n"
              "Pass it to pyarrow.RecordBatchReader.from_stream(), pyarrow.table(),\n"
              "polars.DataFrame() or duckdb. Each stream it exports reads the DB as it\n"
              "was when scan_arrow() was called (a snapshot it holds until close()).",
    .tp_methods = ArrowScan_methods,
    .tp_getset = ArrowScan_getset,
};

SPEC(spec_scan_arrow, "scan_arrow", 0, 0, "prefix", "start", "stop", "batch_size", "large");
/* data is required; put_arrow checks it itself, with its own message. */
SPEC(spec_put_arrow, "put_arrow", 1, 0, "data", "key", "value_columns", "key_prefix", "sync", "progress");

PyObject *DB_scan_arrow(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[5];
    if (bind_args(&spec_scan_arrow, args, nargs, kwnames, a) < 0) return NULL;
    int64_t batch_size = SCAN_DEFAULT_ROWS;
    if (a[3] && a[3] != Py_None) {
        if (!PyLong_Check(a[3]) || PyBool_Check(a[3])) {
            PyErr_Format(PyExc_TypeError, "batch_size must be an int, not %.100s", Py_TYPE(a[3])->tp_name);
            return NULL;
        }
        long long n = PyLong_AsLongLong(a[3]);
        if (n == -1 && PyErr_Occurred()) return NULL;
        if (n < 1 || n > (1LL << 30))
            return raise_fmt(WEIR_INVALID, "batch_size must be between 1 and 2**30, not %lld", n);
        batch_size = (int64_t)n;
    }
    int large = 0;
    if (a[4] && (large = PyObject_IsTrue(a[4])) < 0) return NULL;

    bufarg bounds[3];
    static const char *const what[3] = {"prefix", "start", "stop"};
    PyObject *copies[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        if (bufarg_opt(a[i], &bounds[i], what[i]) < 0) goto fail;
        if (bounds[i].ptr) {
            copies[i] = PyBytes_FromStringAndSize(bounds[i].ptr, (Py_ssize_t)bounds[i].len);
            bufarg_release(&bounds[i]);
            if (!copies[i]) goto fail;
        }
    }
    if (db_enter(self) < 0) goto fail;
    weir_db *db = self->db;
    weir_snapshot *snap = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = weir_snapshot_create(db, &snap);
    Py_END_ALLOW_THREADS
    db_leave(self);
    if (rc != WEIR_OK) {
        raise_status(rc);
        goto fail;
    }
    ArrowScanObject *obj = PyObject_New(ArrowScanObject, &ArrowScan_Type);
    if (!obj) {
        weir_snapshot_release(db, snap);
        goto fail;
    }
    obj->db = (DBObject *)Py_NewRef((PyObject *)self);
    obj->snap = snap;
    obj->prefix = copies[0];
    obj->start = copies[1];
    obj->stop = copies[2];
    obj->batch_size = batch_size;
    obj->large = large;
    obj->db_closed = 0;
    obj->exports = 0;
    obj->node.next = obj->node.prev = NULL;
    dep_link(self, &obj->node, (PyObject *)obj, scan_invalidate);
    return (PyObject *)obj;
fail:
    for (int i = 0; i < 3; i++) Py_XDECREF(copies[i]);
    return NULL;
}

/* ---- put_arrow ---------------------------------------------------------------- */

/* What a column's Arrow format string allows. */
enum {
    K_UNSUPPORTED,
    K_BINARY,  /* z, u: int32 offsets */
    K_LBINARY, /* Z, U: int64 offsets */
    K_VIEW,    /* vz, vu: 16-byte views into variadic buffers */
    K_INT,     /* c s i l */
    K_UINT,    /* C S I L */
    K_F32,
    K_F64,
    K_BOOL
};

typedef struct colspec {
    int kind;
    int is_str; /* u / U: strings (msgpack str rather than bin) */
    int width;  /* bytes per value of K_INT / K_UINT */
    int index;  /* child index in the struct */
    const char *name;
    size_t name_len;
} colspec;

static void classify(const char *fmt, colspec *c) {
    c->kind = K_UNSUPPORTED;
    c->is_str = 0;
    c->width = 0;
    if (fmt && (!strcmp(fmt, "vz") || !strcmp(fmt, "vu"))) {
        c->kind = K_VIEW;
        c->is_str = fmt[1] == 'u';
        return;
    }
    if (!fmt || !fmt[0] || fmt[1]) return; /* the other formats we take are one character */
    switch (fmt[0]) {
    case 'z': c->kind = K_BINARY; break;
    case 'u': c->kind = K_BINARY; c->is_str = 1; break;
    case 'Z': c->kind = K_LBINARY; break;
    case 'U': c->kind = K_LBINARY; c->is_str = 1; break;
    case 'c': c->kind = K_INT; c->width = 1; break;
    case 's': c->kind = K_INT; c->width = 2; break;
    case 'i': c->kind = K_INT; c->width = 4; break;
    case 'l': c->kind = K_INT; c->width = 8; break;
    case 'C': c->kind = K_UINT; c->width = 1; break;
    case 'S': c->kind = K_UINT; c->width = 2; break;
    case 'I': c->kind = K_UINT; c->width = 4; break;
    case 'L': c->kind = K_UINT; c->width = 8; break;
    case 'f': c->kind = K_F32; break;
    case 'g': c->kind = K_F64; break;
    case 'b': c->kind = K_BOOL; break;
    default: break;
    }
}

static const char *describe_format(const char *fmt) {
    if (!fmt) return "unknown";
    if (!strcmp(fmt, "e")) return "float16";
    if (!strcmp(fmt, "n")) return "null";
    if (!strncmp(fmt, "ts", 2)) return "timestamp";
    if (!strncmp(fmt, "td", 2)) return "date";
    if (!strncmp(fmt, "tt", 2)) return "time";
    if (!strncmp(fmt, "tD", 2)) return "duration";
    if (!strncmp(fmt, "d:", 2)) return "decimal";
    if (!strncmp(fmt, "w:", 2)) return "fixed_size_binary";
    if (!strcmp(fmt, "+l") || !strcmp(fmt, "+L")) return "list";
    if (!strcmp(fmt, "+s")) return "struct";
    if (!strcmp(fmt, "+m")) return "map";
    return "an unsupported type";
}

/* One input batch: its struct array and the row offset it starts at. */
typedef struct put_plan {
    colspec key;
    colspec *vals;
    int nvals;
    int raw;            /* value_columns was one column name: store it as is */
    const char *prefix; /* key_prefix */
    size_t prefix_len;
    weir_batch *batch;
    char *kbuf, *vbuf;
    size_t kcap, vcap;
    int64_t rows_done;
    /* first failure, reported with the GIL once encoding stops */
    int err_kind; /* 0 none, 1 null key, 2 null raw value, 3 engine, 4 no memory, 5 shape */
    int64_t err_row;
    const char *err_col;
    int err_status;
    char err_msg[256];
} put_plan;

static inline int bit_set(const uint8_t *bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

static inline int is_null(const struct ArrowArray *a, int64_t i) {
    const uint8_t *valid = a->n_buffers > 0 ? a->buffers[0] : NULL;
    if (!valid || a->null_count == 0) return 0;
    return !bit_set(valid, a->offset + i);
}

static int reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *b = realloc(*buf, c);
    if (!b) return -1;
    *buf = b;
    *cap = c;
    return 0;
}

/* The bytes of row i of a binary/string column. */
static inline const char *bin_at(const struct ArrowArray *a, int kind, int64_t i, size_t *len) {
    int64_t j = a->offset + i;
    if (kind == K_VIEW) {
        /* A view: int32 length, then the bytes inline if they fit in 12,
         * else a 4-byte prefix, the data buffer's index and the offset in it. */
        const char *v = (const char *)a->buffers[1] + 16 * j;
        int32_t n, buf, off;
        memcpy(&n, v, 4);
        *len = (size_t)n;
        if (n <= 12) return v + 4;
        memcpy(&buf, v + 8, 4);
        memcpy(&off, v + 12, 4);
        return (const char *)a->buffers[2 + buf] + off;
    }
    const char *data = a->buffers[2];
    if (kind == K_BINARY) {
        const int32_t *off = a->buffers[1];
        *len = (size_t)(off[j + 1] - off[j]);
        return data ? data + off[j] : "";
    }
    const int64_t *off = a->buffers[1];
    *len = (size_t)(off[j + 1] - off[j]);
    return data ? data + off[j] : "";
}

static inline int64_t int_at(const struct ArrowArray *a, int width, int64_t i) {
    int64_t j = a->offset + i;
    switch (width) {
    case 1: return ((const int8_t *)a->buffers[1])[j];
    case 2: return ((const int16_t *)a->buffers[1])[j];
    case 4: return ((const int32_t *)a->buffers[1])[j];
    default: return ((const int64_t *)a->buffers[1])[j];
    }
}

static inline uint64_t uint_at(const struct ArrowArray *a, int width, int64_t i) {
    int64_t j = a->offset + i;
    switch (width) {
    case 1: return ((const uint8_t *)a->buffers[1])[j];
    case 2: return ((const uint16_t *)a->buffers[1])[j];
    case 4: return ((const uint32_t *)a->buffers[1])[j];
    default: return ((const uint64_t *)a->buffers[1])[j];
    }
}

static inline void put_be(char *p, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

/* ---- a minimal msgpack writer (the documented multi-column value format) -- */

typedef struct mp {
    char **buf;
    size_t *cap;
    size_t len;
    int oom;
} mp;

static void mp_raw(mp *m, const void *src, size_t n) {
    if (m->oom) return;
    if (reserve(m->buf, m->cap, m->len + n) < 0) {
        m->oom = 1;
        return;
    }
    memcpy(*m->buf + m->len, src, n);
    m->len += n;
}

static void mp_head(mp *m, uint8_t tag, uint64_t v, int n) {
    char h[9];
    h[0] = (char)tag;
    put_be(h + 1, v, n);
    mp_raw(m, h, (size_t)n + 1);
}

static void mp_uint(mp *m, uint64_t v) {
    if (v < 128) mp_head(m, (uint8_t)v, 0, 0);
    else if (v <= 0xff) mp_head(m, 0xcc, v, 1);
    else if (v <= 0xffff) mp_head(m, 0xcd, v, 2);
    else if (v <= 0xffffffffu) mp_head(m, 0xce, v, 4);
    else mp_head(m, 0xcf, v, 8);
}

static void mp_int(mp *m, int64_t v) {
    if (v >= 0) mp_uint(m, (uint64_t)v);
    else if (v >= -32) mp_head(m, (uint8_t)(int8_t)v, 0, 0);
    else if (v >= INT8_MIN) mp_head(m, 0xd0, (uint8_t)(int8_t)v, 1);
    else if (v >= INT16_MIN) mp_head(m, 0xd1, (uint16_t)(int16_t)v, 2);
    else if (v >= INT32_MIN) mp_head(m, 0xd2, (uint32_t)(int32_t)v, 4);
    else mp_head(m, 0xd3, (uint64_t)v, 8);
}

static void mp_str(mp *m, const char *s, size_t n) {
    if (n < 32) mp_head(m, (uint8_t)(0xa0 | n), 0, 0);
    else if (n <= 0xff) mp_head(m, 0xd9, n, 1);
    else if (n <= 0xffff) mp_head(m, 0xda, n, 2);
    else mp_head(m, 0xdb, n, 4);
    mp_raw(m, s, n);
}

static void mp_bin(mp *m, const char *s, size_t n) {
    if (n <= 0xff) mp_head(m, 0xc4, n, 1);
    else if (n <= 0xffff) mp_head(m, 0xc5, n, 2);
    else mp_head(m, 0xc6, n, 4);
    mp_raw(m, s, n);
}

static void mp_value(mp *m, const colspec *c, const struct ArrowArray *a, int64_t i) {
    if (is_null(a, i)) {
        mp_head(m, 0xc0, 0, 0);
        return;
    }
    switch (c->kind) {
    case K_BINARY:
    case K_LBINARY:
    case K_VIEW: {
        size_t n;
        const char *s = bin_at(a, c->kind, i, &n);
        if (c->is_str) mp_str(m, s, n);
        else mp_bin(m, s, n);
        break;
    }
    case K_INT: mp_int(m, int_at(a, c->width, i)); break;
    case K_UINT: mp_uint(m, uint_at(a, c->width, i)); break;
    case K_F32: {
        float f = ((const float *)a->buffers[1])[a->offset + i];
        uint32_t u;
        memcpy(&u, &f, 4);
        mp_head(m, 0xca, u, 4);
        break;
    }
    case K_F64: {
        double d = ((const double *)a->buffers[1])[a->offset + i];
        uint64_t u;
        memcpy(&u, &d, 8);
        mp_head(m, 0xcb, u, 8);
        break;
    }
    case K_BOOL: {
        const uint8_t *bits = a->buffers[1];
        mp_head(m, bit_set(bits, a->offset + i) ? 0xc3 : 0xc2, 0, 0);
        break;
    }
    default: break;
    }
}

/* Views point into variadic buffers by index and offset, numbers a
 * producer could get wrong; check them before any is followed. The last
 * buffer of a view array holds the variadic buffers' sizes. */
static int check_views(put_plan *pl, const colspec *c, const struct ArrowArray *a, int64_t n) {
    int64_t nvar = a->n_buffers - 3;
    const int64_t *sizes = nvar >= 0 ? a->buffers[a->n_buffers - 1] : NULL;
    for (int64_t i = 0; i < n; i++) {
        if (is_null(a, i)) continue;
        const char *v = (const char *)a->buffers[1] + 16 * (a->offset + i);
        int32_t len, buf, off;
        memcpy(&len, v, 4);
        if (len <= 12 && len >= 0) continue;
        memcpy(&buf, v + 8, 4);
        memcpy(&off, v + 12, 4);
        if (len < 0 || buf < 0 || buf >= nvar || off < 0 || !sizes || (int64_t)off + len > sizes[buf]) {
            snprintf(pl->err_msg, sizeof pl->err_msg,
                     "column '%s' has a malformed string/binary view at row %lld",
                     c->name, (long long)(pl->rows_done + i));
            pl->err_kind = 5;
            return -1;
        }
    }
    return 0;
}

/* Encode rows [begin, begin + n) of one struct array into plan->batch;
 * runs without the GIL. 0, or -1 with plan->err_* set. */
static int encode_rows(put_plan *pl, const struct ArrowArray *top, int64_t begin, int64_t n) {
    const struct ArrowArray *karr = top->children[pl->key.index];
    /* A struct's own offset, and the first row of this slice, shift its
     * children; fold both into views. */
    struct ArrowArray kview = *karr;
    kview.offset += top->offset + begin;
    struct ArrowArray vviews[64];
    struct ArrowArray *vv = pl->nvals <= 64 ? vviews : malloc(sizeof(struct ArrowArray) * (size_t)pl->nvals);
    if (!vv) {
        pl->err_kind = 4;
        return -1;
    }
    int rc = 0;
    for (int c = 0; c < pl->nvals; c++) {
        vv[c] = *top->children[pl->vals[c].index];
        vv[c].offset += top->offset + begin;
        if (pl->vals[c].kind == K_VIEW && check_views(pl, &pl->vals[c], &vv[c], n) < 0) rc = -1;
    }
    if (pl->key.kind == K_VIEW && check_views(pl, &pl->key, &kview, n) < 0) rc = -1;
    if (rc < 0) {
        if (vv != vviews) free(vv);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        if (is_null(&kview, i)) {
            pl->err_kind = 1;
            pl->err_row = pl->rows_done + i;
            pl->err_col = pl->key.name;
            rc = -1;
            break;
        }
        /* the key */
        size_t klen;
        if (pl->key.kind == K_BINARY || pl->key.kind == K_LBINARY || pl->key.kind == K_VIEW) {
            const char *k = bin_at(&kview, pl->key.kind, i, &klen);
            if (reserve(&pl->kbuf, &pl->kcap, pl->prefix_len + klen) < 0) goto oom;
            memcpy(pl->kbuf + pl->prefix_len, k, klen);
        } else {
            klen = 8;
            if (reserve(&pl->kbuf, &pl->kcap, pl->prefix_len + 8) < 0) goto oom;
            uint64_t u = pl->key.kind == K_INT ? (uint64_t)int_at(&kview, pl->key.width, i) ^ (1ULL << 63)
                                               : uint_at(&kview, pl->key.width, i);
            put_be(pl->kbuf + pl->prefix_len, u, 8);
        }
        if (pl->prefix_len) memcpy(pl->kbuf, pl->prefix, pl->prefix_len);
        /* the value */
        const char *val;
        size_t vlen;
        if (pl->raw) {
            if (is_null(&vv[0], i)) {
                pl->err_kind = 2;
                pl->err_row = pl->rows_done + i;
                pl->err_col = pl->vals[0].name;
                rc = -1;
                break;
            }
            val = bin_at(&vv[0], pl->vals[0].kind, i, &vlen);
        } else {
            mp m = {&pl->vbuf, &pl->vcap, 0, 0};
            if (pl->nvals < 16) mp_head(&m, (uint8_t)(0x80 | pl->nvals), 0, 0);
            else mp_head(&m, 0xde, (uint64_t)pl->nvals, 2);
            for (int c = 0; c < pl->nvals; c++) {
                mp_str(&m, pl->vals[c].name, pl->vals[c].name_len);
                mp_value(&m, &pl->vals[c], &vv[c], i);
            }
            if (m.oom) goto oom;
            val = pl->vbuf ? pl->vbuf : "";
            vlen = m.len;
        }
        int st = weir_batch_put(pl->batch, pl->kbuf, pl->prefix_len + klen, val, vlen);
        if (st != WEIR_OK) {
            const char *msg = weir_errmsg();
            pl->err_kind = 3;
            pl->err_status = st;
            pl->err_row = pl->rows_done + i;
            snprintf(pl->err_msg, sizeof pl->err_msg, "%s", msg && *msg ? msg : weir_status_name(st));
            rc = -1;
            break;
        }
        continue;
    oom:
        pl->err_kind = 4;
        rc = -1;
        break;
    }
    if (vv != vviews) free(vv);
    if (rc == 0) pl->rows_done += n;
    return rc;
}

static PyObject *raise_plan_error(put_plan *pl) {
    switch (pl->err_kind) {
    case 1:
        return raise_fmt(WEIR_INVALID, "put_arrow: key column '%s' is null at row %lld; nothing was written",
                         pl->err_col, (long long)pl->err_row);
    case 2:
        return raise_fmt(WEIR_INVALID,
                         "put_arrow: value column '%s' is null at row %lld (a raw value column cannot hold "
                         "nulls; pass value_columns as a list to store nulls); nothing was written",
                         pl->err_col, (long long)pl->err_row);
    case 3:
        return raise_fmt(pl->err_status, "put_arrow: row %lld: %s; nothing was written",
                         (long long)pl->err_row, pl->err_msg);
    case 4: return PyErr_NoMemory();
    default: return raise_fmt(WEIR_INVALID, "put_arrow: %s", pl->err_msg);
    }
}

/* ---- put_arrow: progress -------------------------------------------------------
 * Rows are encoded in slices of PUT_SLICE_ROWS with the GIL released; between
 * slices the GIL is taken back to call the progress callback:
 * progress("encode", rows, total) after each slice (an exception from it
 * stops the load before anything is written). Applying the one write batch to the memtable is most of a
 * large load's time (for a million random keys, seconds against a tenth of a
 * second of encoding), so with a callback the write runs on a thread of its
 * own while this one reports progress("write", applied, rows) every
 * PUT_WRITE_REPORT_NS, following the engine's "weir.num-entries-active-memtable"
 * property; then progress("done", rows, rows). */
#define PUT_SLICE_ROWS 65536
#define PUT_WRITE_REPORT_NS 100000000L

typedef struct put_progress {
    PyObject *fn;        /* the callback, or NULL */
    PyObject *total;     /* rows expected: an int, or None when not known */
} put_progress;

/* Call the callback for `stage` (GIL held); 0, or -1 with its exception. */
static int progress_call(put_progress *pp, const char *stage, int64_t rows, PyObject *total) {
    if (!pp->fn) return 0;
    PyObject *r = PyObject_CallFunction(pp->fn, "sLO", stage, (long long)rows, total);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

static int progress_call_rows(put_progress *pp, const char *stage, int64_t rows) {
    if (!pp->fn) return 0;
    PyObject *n = PyLong_FromLongLong((long long)rows);
    if (!n) return -1;
    int rc = progress_call(pp, stage, rows, n);
    Py_DECREF(n);
    return rc;
}

/* The callback put_arrow reports to: None/False none, True weir's own bar on
 * stderr (which draws only on a terminal), or a callable. 0 or -1. */
static int progress_open(put_progress *pp, PyObject *arg, PyObject *data) {
    memset(pp, 0, sizeof *pp);
    if (!arg || arg == Py_None || arg == Py_False) return 0;
    if (arg == Py_True) {
        PyObject *mod = PyImport_ImportModule("weir._arrow");
        if (!mod) return -1;
        pp->fn = PyObject_CallMethod(mod, "terminal_progress", NULL);
        Py_DECREF(mod);
        if (!pp->fn) return -1;
        if (pp->fn == Py_None) Py_CLEAR(pp->fn); /* not a terminal: nothing to draw */
    } else if (PyCallable_Check(arg)) {
        pp->fn = Py_NewRef(arg);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "put_arrow: progress must be True, False, None or a callable "
                     "progress(stage, rows_done, rows_total), not %.100s",
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    if (!pp->fn) return 0;
    /* The expected row count, when the data knows its length (a pyarrow
     * Table or RecordBatch, a polars or pandas DataFrame). */
    Py_ssize_t n = PyObject_HasAttrString(data, "__len__") ? PyObject_Length(data) : -1;
    if (n < 0) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
            PyErr_Clear();
        }
        pp->total = Py_NewRef(Py_None);
    } else if (!(pp->total = PyLong_FromSsize_t(n))) {
        return -1;
    }
    return 0;
}

static void progress_close(put_progress *pp) {
    Py_CLEAR(pp->fn);
    Py_CLEAR(pp->total);
}

/* An exception set aside while other work finishes, then raised again. */
typedef struct saved_error {
    PyObject *type, *value, *traceback; /* type NULL: none */
} saved_error;

static void error_save(saved_error *e) {
#if PY_VERSION_HEX >= 0x030C0000
    e->value = PyErr_GetRaisedException();
    e->type = e->value ? Py_NewRef(Py_TYPE(e->value)) : NULL;
    e->traceback = NULL;
#else
    PyErr_Fetch(&e->type, &e->value, &e->traceback);
#endif
}

/* Raise it again (the reference moves to the interpreter). */
static void error_restore(saved_error *e) {
#if PY_VERSION_HEX >= 0x030C0000
    Py_CLEAR(e->type);
    PyErr_SetRaisedException(e->value);
#else
    PyErr_Restore(e->type, e->value, e->traceback);
    e->type = NULL;
#endif
    e->value = e->traceback = NULL;
}

static void error_drop(saved_error *e) {
    Py_CLEAR(e->type);
    Py_CLEAR(e->value);
    Py_CLEAR(e->traceback);
}

/* A weir_write running on a thread of its own. The write owns the DB's
 * in-flight count the caller took: the writing thread gives it back (with
 * the GIL) the moment the engine call ends, as a plain call would. So a
 * callback that closes the DB (from this thread or another) waits only for
 * the write, never for the call that is running the callback. */
typedef struct followed_write {
    DBObject *owner;
    weir_db *db;
    weir_writeopts wo;
    const weir_batch *batch;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;    /* under mu; until it is set the DB stays open */
    int status;
    char msg[512]; /* the writing thread's weir_errmsg() on failure */
} followed_write;

static void *followed_write_main(void *arg) {
    followed_write *w = arg;
    int rc = weir_write(w->db, &w->wo, w->batch);
    pthread_mutex_lock(&w->mu);
    w->status = rc;
    if (rc != WEIR_OK) snprintf(w->msg, sizeof w->msg, "%s", weir_errmsg());
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    PyGILState_STATE gil = PyGILState_Ensure();
    db_leave(w->owner);
    PyGILState_Release(gil);
    return NULL;
}

static int active_memtable_entries(weir_db *db, uint64_t *out) {
    char *v = NULL;
    if (weir_property(db, "weir.num-entries-active-memtable", &v) != WEIR_OK) return -1;
    *out = strtoull(v, NULL, 10);
    weir_free(v);
    return 0;
}

/* Write the batch of `rows` entries while reporting how many of them the
 * memtable has taken (GIL held on entry and exit; released while waiting).
 * The caller has counted the write in flight (db_enter); this gives the
 * count back, so the caller must not (nor touch the engine handle after).
 * Entries written by other threads meanwhile count too, so the figure is
 * clamped to rows and never goes down. A write that switches to a fresh
 * memtable first (the old one was full) starts the count again from 0.
 * Returns the write's status, with its message in *msg. The first
 * exception the callback raises stops the reports; it is kept in
 * *cb_error (the write goes on: it cannot be taken back halfway). */
static int write_reporting(DBObject *owner, const weir_writeopts *wo, const weir_batch *batch, int64_t rows,
                           put_progress *pp, char *msg, size_t msg_cap, saved_error *cb_error) {
    weir_db *db = owner->db;
    followed_write w;
    memset(&w, 0, sizeof w);
    w.owner = owner;
    w.db = db;
    w.wo = *wo;
    w.batch = batch;
    memset(cb_error, 0, sizeof *cb_error);
    uint64_t base = 0;
    int counting = active_memtable_entries(db, &base) == 0;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_t thread;
    int started = pthread_create(&thread, NULL, followed_write_main, &w) == 0;
    int64_t reported = 0;
    if (!started) {
        /* No thread to spare: write here, with only the reports around it. */
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = weir_write(db, wo, batch);
        Py_END_ALLOW_THREADS
        w.status = rc;
        if (rc != WEIR_OK) snprintf(w.msg, sizeof w.msg, "%s", weir_errmsg());
        w.done = 1;
        db_leave(owner);
    }
    while (started) {
        int done;
        uint64_t now = 0;
        int have = 0;
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&w.mu);
        if (!w.done) {
            struct timespec at;
            clock_gettime(CLOCK_REALTIME, &at);
            at.tv_nsec += PUT_WRITE_REPORT_NS;
            if (at.tv_nsec >= 1000000000L) {
                at.tv_sec++;
                at.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w.cv, &w.mu, &at);
        }
        done = w.done;
        /* Read while holding mu: the write cannot finish, so the DB cannot
         * be closed, under the read. */
        if (!done && counting) have = active_memtable_entries(db, &now) == 0;
        pthread_mutex_unlock(&w.mu);
        Py_END_ALLOW_THREADS
        if (done) break;
        if (!have || cb_error->type) continue;
        if (now < base) base = 0; /* a fresh memtable took the write */
        int64_t applied = (int64_t)(now - base) < rows ? (int64_t)(now - base) : rows;
        if (applied < reported) applied = reported;
        reported = applied;
        if (progress_call(pp, "write", applied, pp->total) < 0) error_save(cb_error);
    }
    if (started) {
        Py_BEGIN_ALLOW_THREADS
        pthread_join(thread, NULL);
        Py_END_ALLOW_THREADS
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    snprintf(msg, msg_cap, "%s", w.msg);
    return w.status;
}

/* Check one struct array against the schema's shape before reading it. */
static int check_shape(put_plan *pl, const struct ArrowArray *a, int64_t ncols) {
    if (a->n_children != ncols || !a->children) {
        snprintf(pl->err_msg, sizeof pl->err_msg, "a batch has %lld columns where the schema has %lld",
                 (long long)a->n_children, (long long)ncols);
        pl->err_kind = 5;
        return -1;
    }
    if (a->null_count != 0 && a->n_buffers > 0 && a->buffers[0]) {
        snprintf(pl->err_msg, sizeof pl->err_msg, "the rows of a batch are null (a null struct row)");
        pl->err_kind = 5;
        return -1;
    }
    return 0;
}

/* Encode every row of one struct array, a slice at a time (see above).
 * 0, or -1 with an exception set. */
static int encode_array(put_plan *pl, const struct ArrowArray *a, int64_t ncols, put_progress *pp) {
    if (check_shape(pl, a, ncols) < 0) {
        raise_plan_error(pl);
        return -1;
    }
    for (int64_t begin = 0; begin < a->length;) {
        int64_t n = a->length - begin < PUT_SLICE_ROWS ? a->length - begin : PUT_SLICE_ROWS;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = encode_rows(pl, a, begin, n);
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            raise_plan_error(pl);
            return -1;
        }
        begin += n;
        if (progress_call(pp, "encode", pl->rows_done, pp->total) < 0) return -1;
    }
    return 0;
}

/* The column names (from the schema), for error messages. */
static PyObject *column_list(const struct ArrowSchema *s) {
    PyObject *out = PyUnicode_FromString("");
    for (int64_t i = 0; out && i < s->n_children; i++) {
        PyObject *next = PyUnicode_FromFormat(i ? "%U, '%s'" : "%U'%s'", out,
                                              s->children[i]->name ? s->children[i]->name : "");
        Py_SETREF(out, next);
    }
    return out;
}

static int find_column(const struct ArrowSchema *s, const char *name) {
    for (int64_t i = 0; i < s->n_children; i++)
        if (s->children[i]->name && !strcmp(s->children[i]->name, name)) return (int)i;
    return -1;
}

/* Build the plan from the schema and the arguments; -1 with an exception. */
static int make_plan(put_plan *pl, const struct ArrowSchema *schema, PyObject *key_obj,
                     PyObject *value_columns) {
    if (!schema->format || strcmp(schema->format, "+s") != 0) {
        raise_fmt(WEIR_INVALID, "put_arrow: the data is not a table of columns (Arrow format '%s'); pass a "
                                "record batch, a table or a stream of record batches",
                  schema->format ? schema->format : "");
        return -1;
    }
    if (schema->n_children > INT32_MAX) return -1;
    const char *kname = PyUnicode_AsUTF8(key_obj);
    if (!kname) return -1;
    int ki = find_column(schema, kname);
    if (ki < 0) {
        PyObject *cols = column_list(schema);
        if (cols) {
            raise_fmt(WEIR_INVALID, "put_arrow: no key column '%s' in the data; its columns are %U", kname,
                      cols);
            Py_DECREF(cols);
        }
        return -1;
    }
    pl->key.index = ki;
    pl->key.name = schema->children[ki]->name;
    pl->key.name_len = strlen(pl->key.name);
    classify(schema->children[ki]->format, &pl->key);
    if (schema->children[ki]->dictionary) {
        /* The format of a dictionary column is its index type: reading it as
         * such would store the indices, silently. */
        PyErr_Format(PyExc_TypeError,
                     "put_arrow: key column '%s' is dictionary-encoded; decode it first "
                     "(e.g. pyarrow.compute.cast or dictionary_decode)",
                     kname);
        return -1;
    }
    if (pl->key.kind != K_BINARY && pl->key.kind != K_LBINARY && pl->key.kind != K_VIEW &&
        pl->key.kind != K_INT && pl->key.kind != K_UINT) {
        const char *f = schema->children[ki]->format;
        PyErr_Format(PyExc_TypeError,
                     "put_arrow: key column '%s' has Arrow type %s (format '%s'); keys must be binary, "
                     "string or integer columns",
                     kname, pl->key.kind == K_UNSUPPORTED ? describe_format(f) : "float/bool", f ? f : "");
        return -1;
    }

    /* The value columns: one name (raw), a list (msgpack map), or None (every other column). */
    PyObject *names = NULL;
    if (!value_columns || value_columns == Py_None) {
        names = PyList_New(0);
        if (!names) return -1;
        for (int64_t i = 0; i < schema->n_children; i++) {
            if (i == ki) continue;
            PyObject *s = PyUnicode_FromString(schema->children[i]->name ? schema->children[i]->name : "");
            if (!s || PyList_Append(names, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(names);
                return -1;
            }
            Py_DECREF(s);
        }
        if (PyList_GET_SIZE(names) == 0) {
            Py_DECREF(names);
            raise_fmt(WEIR_INVALID, "put_arrow: the data has no column besides the key '%s' to store as the "
                                    "value", kname);
            return -1;
        }
    } else if (PyUnicode_Check(value_columns)) {
        pl->raw = 1;
        names = PyList_New(1);
        if (!names) return -1;
        PyList_SET_ITEM(names, 0, Py_NewRef(value_columns));
    } else {
        names = PySequence_List(value_columns);
        if (!names) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "put_arrow: value_columns must be a column name, a list of names or None, not %.100s",
                         Py_TYPE(value_columns)->tp_name);
            return -1;
        }
        if (PyList_GET_SIZE(names) == 0) {
            Py_DECREF(names);
            raise_fmt(WEIR_INVALID, "put_arrow: value_columns is empty");
            return -1;
        }
    }
    Py_ssize_t nv = PyList_GET_SIZE(names);
    if (nv > 0xffff) {
        Py_DECREF(names);
        raise_fmt(WEIR_INVALID, "put_arrow: at most 65535 value columns");
        return -1;
    }
    pl->vals = calloc((size_t)nv, sizeof(colspec));
    if (!pl->vals) {
        Py_DECREF(names);
        PyErr_NoMemory();
        return -1;
    }
    pl->nvals = (int)nv;
    for (Py_ssize_t c = 0; c < nv; c++) {
        PyObject *nm = PyList_GET_ITEM(names, c);
        if (!PyUnicode_Check(nm)) {
            PyErr_Format(PyExc_TypeError, "put_arrow: value column names must be str, not %.100s",
                         Py_TYPE(nm)->tp_name);
            Py_DECREF(names);
            return -1;
        }
        const char *vn = PyUnicode_AsUTF8(nm);
        if (!vn) {
            Py_DECREF(names);
            return -1;
        }
        int vi = find_column(schema, vn);
        if (vi < 0) {
            PyObject *cols = column_list(schema);
            if (cols) {
                raise_fmt(WEIR_INVALID, "put_arrow: no value column '%s' in the data; its columns are %U", vn,
                          cols);
                Py_DECREF(cols);
            }
            Py_DECREF(names);
            return -1;
        }
        colspec *cs = &pl->vals[c];
        cs->index = vi;
        cs->name = schema->children[vi]->name;
        cs->name_len = strlen(cs->name);
        const char *f = schema->children[vi]->format;
        classify(f, cs);
        if (schema->children[vi]->dictionary) {
            PyErr_Format(PyExc_TypeError,
                         "put_arrow: value column '%s' is dictionary-encoded; decode it first "
                         "(e.g. pyarrow.compute.cast or dictionary_decode)",
                         vn);
            Py_DECREF(names);
            return -1;
        }
        if (cs->kind == K_UNSUPPORTED) {
            PyErr_Format(PyExc_TypeError,
                         "put_arrow: value column '%s' has Arrow type %s (format '%s'); supported: binary, "
                         "string, integers, float32/64 and bool (cast it first)",
                         vn, describe_format(f), f ? f : "");
            Py_DECREF(names);
            return -1;
        }
        if (pl->raw && cs->kind != K_BINARY && cs->kind != K_LBINARY && cs->kind != K_VIEW) {
            PyErr_Format(PyExc_TypeError,
                         "put_arrow: value column '%s' has format '%s', but a single value column is stored "
                         "raw and must be binary or string; pass value_columns=['%s'] to store it as a "
                         "msgpack map",
                         vn, f ? f : "", vn);
            Py_DECREF(names);
            return -1;
        }
    }
    Py_DECREF(names);
    return 0;
}

/* getattr that returns 0 with *out NULL when the attribute is absent
 * (PyObject_GetOptionalAttrString is 3.13+). */
static int optional_attr(PyObject *o, const char *name, PyObject **out) {
    *out = PyObject_GetAttrString(o, name);
    if (*out) return 0;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 0;
}

/* Where the rows come from: an ArrowArrayStream, or one schema + array. */
typedef struct arrow_source {
    PyObject *capsules[2];
    struct ArrowArrayStream *stream;
    struct ArrowSchema own_schema; /* from the stream; released by us */
    struct ArrowSchema *schema;
    struct ArrowArray *array; /* __arrow_c_array__: owned by its capsule */
    int done;
} arrow_source;

static int source_open(arrow_source *src, PyObject *data) {
    memset(src, 0, sizeof *src);
    PyObject *meth = NULL;
    if (optional_attr(data, "__arrow_c_stream__", &meth) < 0) return -1;
    if (meth) {
        PyObject *cap = PyObject_CallNoArgs(meth);
        Py_DECREF(meth);
        if (!cap) return -1;
        src->capsules[0] = cap;
        src->stream = PyCapsule_GetPointer(cap, "arrow_array_stream");
        if (!src->stream) return -1;
        if (!src->stream->release) {
            raise_fmt(WEIR_INVALID, "put_arrow: the Arrow stream was already released");
            return -1;
        }
        int rc;
        struct ArrowArrayStream *s = src->stream;
        Py_BEGIN_ALLOW_THREADS
        rc = s->get_schema(s, &src->own_schema);
        Py_END_ALLOW_THREADS
        if (rc) {
            const char *m = s->get_last_error(s);
            raise_fmt(WEIR_INVALID, "put_arrow: reading the stream's schema failed: %s", m ? m : strerror(rc));
            return -1;
        }
        src->schema = &src->own_schema;
        return 0;
    }
    if (optional_attr(data, "__arrow_c_array__", &meth) < 0) return -1;
    if (meth) {
        PyObject *pair = PyObject_CallNoArgs(meth);
        Py_DECREF(meth);
        if (!pair) return -1;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_TypeError, "put_arrow: __arrow_c_array__ did not return (schema, array)");
            return -1;
        }
        src->capsules[0] = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
        src->capsules[1] = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        Py_DECREF(pair);
        src->schema = PyCapsule_GetPointer(src->capsules[0], "arrow_schema");
        if (!src->schema) return -1;
        src->array = PyCapsule_GetPointer(src->capsules[1], "arrow_array");
        if (!src->array) return -1;
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "put_arrow needs Arrow data: a record batch, table or stream (an object with "
                 "__arrow_c_stream__ or __arrow_c_array__), not %.100s",
                 Py_TYPE(data)->tp_name);
    return -1;
}

static void source_close(arrow_source *src) {
    if (src->own_schema.release) src->own_schema.release(&src->own_schema);
    Py_CLEAR(src->capsules[0]);
    Py_CLEAR(src->capsules[1]);
}

PyObject *DB_put_arrow(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[6];
    if (bind_args(&spec_put_arrow, args, nargs, kwnames, a) < 0) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "put_arrow() missing required argument 'data'");
        return NULL;
    }
    PyObject *key_obj = a[1] ? a[1] : NULL;
    if (key_obj && !PyUnicode_Check(key_obj)) {
        PyErr_Format(PyExc_TypeError, "put_arrow: key must be a column name (str), not %.100s",
                     Py_TYPE(key_obj)->tp_name);
        return NULL;
    }
    weir_sync_mode sync;
    if (parse_sync(a[4], &sync) < 0) return NULL;
    if (!self->db || self->closing) return raise_closed(self);

    PyObject *default_key = NULL;
    if (!key_obj && !(key_obj = default_key = PyUnicode_FromString("key"))) return NULL;

    PyObject *result = NULL;
    bufarg prefix = {0};
    arrow_source src;
    memset(&src, 0, sizeof src);
    put_plan pl;
    memset(&pl, 0, sizeof pl);
    put_progress pp;
    memset(&pp, 0, sizeof pp);
    if (bufarg_opt(a[3], &prefix, "key_prefix") < 0) goto done;
    if (progress_open(&pp, a[5], a[0]) < 0) goto done;
    pl.prefix = prefix.ptr;
    pl.prefix_len = prefix.len;
    if (source_open(&src, a[0]) < 0) goto done;
    if (make_plan(&pl, src.schema, key_obj, a[2]) < 0) goto done;
    if (!(pl.batch = weir_batch_create())) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t ncols = src.schema->n_children;
    if (src.array) {
        if (!src.array->release) {
            raise_fmt(WEIR_INVALID, "put_arrow: the Arrow array was already released");
            goto done;
        }
        /* One array knows its length exactly. */
        Py_XSETREF(pp.total, PyLong_FromLongLong((long long)src.array->length));
        if (!pp.total) goto done;
        if (encode_array(&pl, src.array, ncols, &pp) < 0) goto done;
    } else {
        struct ArrowArrayStream *s = src.stream;
        for (;;) {
            struct ArrowArray arr;
            memset(&arr, 0, sizeof arr);
            int rc;
            Py_BEGIN_ALLOW_THREADS
            rc = s->get_next(s, &arr);
            Py_END_ALLOW_THREADS
            if (rc) {
                const char *m = s->get_last_error(s);
                raise_fmt(WEIR_INVALID, "put_arrow: reading the Arrow stream failed: %s; nothing was written",
                          m ? m : strerror(rc));
                goto done;
            }
            if (!arr.release) break;
            rc = encode_array(&pl, &arr, ncols, &pp);
            arr.release(&arr);
            if (rc < 0) goto done;
        }
    }
    /* From here on the write's total is the rows encoded. */
    if (pp.fn) {
        Py_XSETREF(pp.total, PyLong_FromLongLong((long long)pl.rows_done));
        if (!pp.total) goto done;
    }
    if (progress_call(&pp, "write", 0, pp.total) < 0) goto done;
    if (pl.rows_done > 0) {
        if (db_enter(self) < 0) goto done;
        weir_writeopts wo = {.sync = sync};
        weir_db *db = self->db;
        int rc;
        if (!pp.fn) {
            Py_BEGIN_ALLOW_THREADS
            rc = weir_write(db, &wo, pl.batch);
            Py_END_ALLOW_THREADS
            db_leave(self);
            if (rc != WEIR_OK) {
                raise_status(rc);
                goto done;
            }
        } else {
            char msg[512];
            saved_error cb_error;
            /* Gives the in-flight count back itself (see followed_write). */
            rc = write_reporting(self, &wo, pl.batch, pl.rows_done, &pp, msg, sizeof msg, &cb_error);
            if (rc != WEIR_OK) {
                /* The engine's failure is the one to report; the callback's
                 * exception, if any, goes with it. */
                error_drop(&cb_error);
                raise_fmt(rc, "%s", msg[0] ? msg : weir_status_name(rc));
                goto done;
            }
            if (cb_error.type) {
                /* Written: the caller still hears of the callback's failure. */
                error_restore(&cb_error);
                goto done;
            }
        }
    }
    /* The rows are written; an exception from the callback still
     * propagates, so the caller hears of it (docs/PYTHON.md says so). */
    if (progress_call_rows(&pp, "done", pl.rows_done) < 0) goto done;
    result = PyLong_FromLongLong((long long)pl.rows_done);
done:
    progress_close(&pp);
    if (pl.batch) weir_batch_destroy(pl.batch);
    free(pl.vals);
    free(pl.kbuf);
    free(pl.vbuf);
    source_close(&src);
    bufarg_release(&prefix);
    Py_XDECREF(default_key);
    return result;
}

/* ---- put_batch / get_batch: Arrow IPC, encoded by pyarrow (weir/_arrow.py) -- */

static PyObject *call_helper(const char *fname, DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    PyObject *mod = PyImport_ImportModule("weir._arrow");
    if (!mod) return NULL;
    PyObject *fn = PyObject_GetAttrString(mod, fname);
    Py_DECREF(mod);
    if (!fn) return NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *stack[16];
    if (nargs + nkw + 1 > (Py_ssize_t)(sizeof stack / sizeof stack[0])) {
        Py_DECREF(fn);
        PyErr_Format(PyExc_TypeError, "%s() got too many arguments", fname);
        return NULL;
    }
    stack[0] = (PyObject *)self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++) stack[i + 1] = args[i];
    PyObject *r = PyObject_Vectorcall(fn, stack, (size_t)(nargs + 1), kwnames);
    Py_DECREF(fn);
    return r;
}

PyObject *DB_put_batch(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return call_helper("put_batch", self, args, nargs, kwnames);
}

PyObject *DB_get_batch(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return call_helper("get_batch", self, args, nargs, kwnames);
}

int weir_arrow_init(PyObject *module) {
    static argspec *const specs[] = {&spec_scan_arrow, &spec_put_arrow};
    if (argspecs_init(specs, sizeof specs / sizeof specs[0]) < 0) return -1;
    if (PyType_Ready(&ArrowScan_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "ArrowScan", (PyObject *)&ArrowScan_Type);
}
