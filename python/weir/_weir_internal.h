/*
 * _weir_internal.h -- what the files of the _weir extension share.
 *
 * _weir.c owns the DB object and its lifecycle (see the top of that file);
 * _weir_arrow.c adds the Arrow methods of DB. Everything here has hidden
 * visibility (the extension is built with -fvisibility=hidden), so only
 * PyInit__weir is exported.
 */
#ifndef WEIR_PY_INTERNAL_H
#define WEIR_PY_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "weir.h"

/* Iterators and snapshots bound to a DB sit on its list, so close() can
 * invalidate them before the engine handle goes away. */
typedef struct dep {
    struct dep *prev, *next;
    PyObject *owner;
    void (*invalidate)(PyObject *owner);
} dep;

typedef struct DBObject {
    PyObject_HEAD
    weir_db *db;
    PyObject *path;       /* str */
    Py_ssize_t inflight;  /* engine calls running without the GIL */
    int closing;
    long owner_pid;       /* the process that opened it (see db_close: fork) */
    dep deps;             /* sentinel */
    PyObject *weakreflist;
} DBObject;

/* A bytes-like argument: a pointer and length, holding a buffer export when
 * the object is not bytes. */
typedef struct bufarg {
    const char *ptr;
    size_t len;
    int has_view;
    Py_buffer view;
} bufarg;

PyObject *raise_status(int status);
PyObject *raise_fmt(int status, const char *fmt, ...);
PyObject *raise_closed(DBObject *self);
void dep_link(DBObject *db, dep *d, PyObject *owner, void (*inv)(PyObject *));
void dep_unlink(dep *d);
int bufarg_opt(PyObject *o, bufarg *b, const char *what);
int parse_sync(PyObject *o, weir_sync_mode *mode);
int weir_is_db(PyObject *o);

static inline void bufarg_release(bufarg *b) {
    if (b->has_view) {
        PyBuffer_Release(&b->view);
        b->has_view = 0;
    }
}

/* Count an engine call about to run without the GIL; -1 (ClosedError set)
 * if the DB is closed or closing. Call with the GIL held. */
static inline int db_enter(DBObject *self) {
    if (!self->db || self->closing) {
        raise_closed(self);
        return -1;
    }
    self->inflight++;
    return 0;
}

static inline void db_leave(DBObject *self) { self->inflight--; }

/* ---- _weir_arrow.c ---------------------------------------------------------- */

int weir_arrow_init(PyObject *module);
PyObject *DB_scan_arrow(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *DB_put_arrow(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *DB_put_batch(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *DB_get_batch(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

#define WEIR_ARROW_DB_METHODS                                                                      \
    {"scan_arrow", (PyCFunction)(void (*)(void))DB_scan_arrow, METH_FASTCALL | METH_KEYWORDS,      \
     "scan_arrow(*, prefix=None, start=None, stop=None, batch_size=65536, snapshot=None)"          \
     " -> ArrowScan; an Arrow stream (__arrow_c_stream__) of key/value binary columns"},           \
        {"put_arrow", (PyCFunction)(void (*)(void))DB_put_arrow, METH_FASTCALL | METH_KEYWORDS,    \
         "put_arrow(data, *, key='key', value_columns=None, key_prefix=b'', sync=None) -> int;"    \
         " bulk-load Arrow rows in one atomic batch"},                                             \
        {"put_batch", (PyCFunction)(void (*)(void))DB_put_batch, METH_FASTCALL | METH_KEYWORDS,    \
         "put_batch(key, batch, *, sync=None) -> None; store a record batch as Arrow IPC"},        \
        {"get_batch", (PyCFunction)(void (*)(void))DB_get_batch, METH_FASTCALL | METH_KEYWORDS,    \
         "get_batch(key, *, snapshot=None) -> pyarrow.RecordBatch | None"},

#endif
