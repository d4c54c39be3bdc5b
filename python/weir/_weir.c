/*
 * _weir.c -- the CPython extension over libweir's public C API (weir.h):
 * the module weir._weir.
 *
 * This file owns the module: the exception classes and the mapping of weir
 * status codes to them, the module functions (destroy, build_info,
 * compression_supported, and the check and salvage that weir.check and
 * weir.salvage wrap) and PyInit__weir, which asks each type's file to ready
 * its type. The types live one to a file (see _weir_internal.h for the map
 * and the threading rules they share). The extension holds no codecs and
 * no store logic; keys and values are any contiguous buffer.
 */
#include "_weir_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

PyObject *raise_with(int status, PyObject *msg) {
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

PyObject *enter_returns_self(PyObject *self, PyObject *unused) {
    (void)unused;
    return Py_NewRef(self);
}

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

PyObject *raise_closed(DBObject *self) {
    return raise_fmt(WEIR_CLOSED, "the DB at %R is closed", self->path ? self->path : Py_None);
}

/* ---- module functions ------------------------------------------------------------ */

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

/* check and salvage. Findings are gathered without the GIL (the engine
 * reports from its own call stack), turned into Python objects afterwards. */
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
    {"destroy", (PyCFunction)mod_destroy, METH_O,
     SIGNATURE("destroy($module, path, /)") "Delete a closed store and its directory."},
    {"build_info", (PyCFunction)mod_build_info, METH_NOARGS,
     SIGNATURE("build_info($module, /)")
     "The engine's version, CRC32C implementation and compression codecs (weir.build_info adds\n"
     "a warning when a codec is missing)."},
    {"_check", (PyCFunction)mod_check, METH_O,
     SIGNATURE("_check($module, path, /)")
     "(first damage message or '', [(level, file, message), ...]); see weir.check."},
    {"_salvage", (PyCFunction)mod_salvage, METH_VARARGS,
     SIGNATURE("_salvage($module, src, dst, /)")
     "(summary of losses or '', [(level, file, message), ...]); see weir.salvage."},
    {"compression_supported", (PyCFunction)mod_compression_supported, METH_O,
     SIGNATURE("compression_supported($module, name, /)")
     "Whether this build can read and write the codec 'none', 'lz4' or 'zstd'."},
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

static int add_errors(PyObject *m) {
    PyObject *dict = PyDict_New();
    if (!dict || PyDict_SetItemString(dict, "status", Py_None) < 0) {
        Py_XDECREF(dict);
        return -1;
    }
    Error = PyErr_NewExceptionWithDoc(
        "weir.Error",
        "Base class of weir's errors. str(e) is the engine's message; e.status is the\n"
        "C status name, e.g. 'WEIR_CORRUPTION'.",
        PyExc_Exception, dict);
    Py_DECREF(dict);
    if (!Error || PyModule_AddObjectRef(m, "Error", Error) < 0) return -1;
    if (!(CorruptionError = new_error(m, "CorruptionError",
                                      "A checksum or format check failed; the message names the file "
                                      "and offset.",
                                      Error)))
        return -1;
    if (!(StorageIOError = new_error2(m, "StorageIOError",
                                      "The operating system refused a file operation, or a background "
                                      "error stopped writes.",
                                      Error, PyExc_OSError)))
        return -1;
    if (!(NoSpaceError = new_error(m, "NoSpaceError", "The file system is full (errno ENOSPC).",
                                   StorageIOError)))
        return -1;
    if (!(ReadOnlyError = new_error(m, "ReadOnlyError",
                                    "A write, flush or compaction on a DB opened read_only=True, or "
                                    "after a background error stopped writes.",
                                    StorageIOError)))
        return -1;
    if (!(BusyError = new_error(m, "BusyError",
                                "The store is locked by another open DB, in this or another process.",
                                Error)))
        return -1;
    if (!(InvalidArgumentError = new_error2(m, "InvalidArgumentError",
                                            "A bad argument or option (e.g. a key over 1 MiB, a path "
                                            "that is a file).",
                                            Error, PyExc_ValueError)))
        return -1;
    if (!(ClosedError = new_error(m, "ClosedError",
                                  "The DB, iterator or snapshot was closed or released.", Error)))
        return -1;
    if (!(ConflictError = new_error(m, "ConflictError",
                                    "A transaction's commit lost to a concurrent commit; nothing was "
                                    "written. Run the transaction again (see weir.retry).",
                                    Error)))
        return -1;
    return 0;
}

PyMODINIT_FUNC PyInit__weir(void) {
    if (!str_status && !(str_status = PyUnicode_InternFromString("status"))) return NULL;
    if (!str_errno && !(str_errno = PyUnicode_InternFromString("errno"))) return NULL;
    if (weir_args_init() < 0 || weir_read_init() < 0) return NULL;

    PyObject *m = PyModule_Create(&weir_module);
    if (!m) return NULL;
    if (add_errors(m) < 0) goto fail;
    /* Each adds its type (DB, Snapshot, Iterator and RangeIterator,
     * WriteBatch, Transaction, ArrowScan) under its public name. */
    if (weir_db_init(m) < 0 || weir_snapshot_init(m) < 0 || weir_iter_init(m) < 0 ||
        weir_batch_init(m) < 0 || weir_txn_init(m) < 0 || weir_arrow_init(m) < 0)
        goto fail;
    if (PyModule_AddStringConstant(m, "__version__", weir_version()) < 0 ||
        PyModule_AddStringConstant(m, "ENGINE_VERSION", weir_version()) < 0 ||
        PyModule_AddIntConstant(m, "MAX_KEY_SIZE", (long)WEIR_MAX_KEY_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MAX_VALUE_SIZE", (long)WEIR_MAX_VALUE_SIZE) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
