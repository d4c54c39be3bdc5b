/*
 * _weir_args.c -- turning the extension's Python arguments into C values.
 *
 * It owns the vectorcall argument binder every method uses (bind_args over
 * an argspec), bytes-like arguments (bufarg), and the parsers of the
 * arguments several types share: sync=, ttl=, integer options, merge
 * operators and their operands. Each parser raises a TypeError or an
 * InvalidArgumentError that names the argument.
 */
#include "_weir_internal.h"

#include <math.h>
#include <string.h>

static PyObject *str_total_seconds; /* interned "total_seconds" */

int weir_args_init(void) {
    if (!str_total_seconds && !(str_total_seconds = PyUnicode_InternFromString("total_seconds")))
        return -1;
    return 0;
}

/* ---- argument binding --------------------------------------------------------- */

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

int argspecs_init(argspec *const *specs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!specs[i]->keys && argspec_init(specs[i]) < 0) return -1;
    return 0;
}

int bind_args(const argspec *sp, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
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

/* ---- byte arguments -------------------------------------------------------- */

int bufarg_slow(PyObject *o, bufarg *b, const char *what) {
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

int bufarg_opt(PyObject *o, bufarg *b, const char *what) {
    b->has_view = 0;
    b->ptr = NULL;
    b->len = 0;
    if (!o || o == Py_None) return 0;
    return bufarg_get(o, b, what);
}

/* ---- sync=, ttl=, integer options ------------------------------------------- */

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

/* Rounded to nearest but at least 1 ms, since the engine reads 0 as "no
 * TTL". */
int parse_ttl(PyObject *o, const char *name, uint64_t *ms) {
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

int opt_u64(PyObject *o, const char *name, unsigned long long *out) {
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

int opt_int(PyObject *o, const char *name, int *out) {
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

/* ---- merge operators and operands -------------------------------------------- */

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

int parse_merge_op(PyObject *o, int *op) {
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

int pack_int64(PyObject *o, const char *what, char out[8]) {
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

int pack_float64(PyObject *o, const char *what, char out[8]) {
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

/* An int for the int64 operators and a float (or int) for the float64
 * ones are packed into num[] as 8-byte little-endian values; anything else
 * must be bytes-like and is passed as the raw payload (the engine checks
 * its shape). */
int merge_operand(int op, PyObject *o, char num[8], bufarg *b) {
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

int incr_operand(PyObject *n, char num[8], bufarg *b) {
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
