/*
 * _weir_db.c -- the DB type: an open store.
 *
 * It owns opening (the keyword options), the close protocol (wait for the
 * calls in flight, invalidate the dependants, close the engine handle; see
 * _weir_internal.h), the single-key and batched writes, merges and typed
 * values, range and prefix deletes, checkpoints, the factories of
 * snapshots, write batches and transactions, and the properties and
 * stats(). Its reads (get, get_many, keys/values/items, iterator, [], in)
 * are the shared ones of _weir_read.c; its Arrow methods are in
 * _weir_arrow.c.
 */
#include "_weir_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

SPEC(spec_put, "put", 2, 2, "key", "value", "sync", "ttl");
SPEC(spec_delete, "delete", 1, 1, "key", "sync");
SPEC(spec_put_many, "put_many", 1, 1, "items", "sync");
SPEC(spec_delete_many, "delete_many", 1, 1, "keys", "sync");
SPEC(spec_write_batch, "write_batch", 0, 0, "sync");
SPEC(spec_write, "write", 1, 1, "batch", "sync");
SPEC(spec_compact, "compact", 2, 0, "start", "stop");
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

static argspec *const db_specs[] = {
    &spec_put,          &spec_delete,       &spec_put_many,    &spec_delete_many, &spec_write_batch,
    &spec_write,        &spec_compact,      &spec_merge,       &spec_incr,        &spec_add_float,
    &spec_list_append,  &spec_get_int,      &spec_get_float,   &spec_get_list,    &spec_delete_range,
    &spec_delete_prefix, &spec_transaction,
};

/* ---- dependants and calls in flight ------------------------------------------------ */

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

void nap(long *ns) {
    struct timespec ts = {0, *ns};
    Py_BEGIN_ALLOW_THREADS
    nanosleep(&ts, NULL);
    Py_END_ALLOW_THREADS
    if (*ns < 1000000) *ns *= 2;
}

PyObject *write_batch_to(DBObject *self, weir_batch *b, weir_sync_mode sync) {
    if (db_enter(self) < 0) return NULL;
    weir_writeopts wo = {.sync = sync};
    PyThreadState *ts = write_releases_gil(self, sync, weir_batch_bytes(b)) ? PyEval_SaveThread() : NULL;
    int rc = weir_write(self->db, sync == WEIR_SYNC_DEFAULT ? NULL : &wo, b);
    if (ts) PyEval_RestoreThread(ts);
    db_leave(self);
    if (rc != WEIR_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

/* ---- open and close ---------------------------------------------------------------- */

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
    self->default_sync = WEIR_SYNC_FLUSH;
    return (PyObject *)self;
}

/* *sync gets the sync= option (WEIR_SYNC_DEFAULT when not given). */
static int apply_options(weir_options *o, PyObject **v, weir_sync_mode *sync) {
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
    *sync = mode;
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
                             "read_triggered_compaction",
                             NULL};
    PyObject *path_arg;
    int create_if_missing = 1, error_if_exists = 0, read_only = 0, read_triggered = 1;
    PyObject *v[12] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$pppOOOOOOOOOOOOp:DB", kwlist, &path_arg,
                                     &create_if_missing, &error_if_exists, &read_only, &v[0], &v[1],
                                     &v[2], &v[3],
                                     &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
                                     &read_triggered))
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
    if (rc == WEIR_OK) rc = weir_options_set_read_triggered_compaction(o, read_triggered);
    if (rc != WEIR_OK) raise_status(rc);
    weir_sync_mode sync = WEIR_SYNC_DEFAULT;
    if (rc != WEIR_OK || apply_options(o, v, &sync) < 0) {
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
    /* The engine's own default is WEIR_SYNC_FLUSH (weir.h). */
    self->default_sync = sync == WEIR_SYNC_DEFAULT ? WEIR_SYNC_FLUSH : sync;
    return 0;
}

/* Close and wait; see _weir_internal.h. Returns 0 or -1 with an
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

/* ---- writes ------------------------------------------------------------------------ */

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
        const weir_writeopts *wop = sync == WEIR_SYNC_DEFAULT ? NULL : &wo;
        weir_db *db = self->db;
        PyThreadState *ts = write_releases_gil(self, sync, k.len + v.len) ? PyEval_SaveThread() : NULL;
        int rc = ttl_ms ? weir_put_ttl(db, wop, k.ptr, k.len, v.ptr, v.len, ttl_ms)
                        : weir_put(db, wop, k.ptr, k.len, v.ptr, v.len);
        if (ts) PyEval_RestoreThread(ts);
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
        PyThreadState *ts = write_releases_gil(self, sync, k.len) ? PyEval_SaveThread() : NULL;
        int rc = weir_delete(self->db, sync == WEIR_SYNC_DEFAULT ? NULL : &wo, k.ptr, k.len);
        if (ts) PyEval_RestoreThread(ts);
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
    return batch_new_bound(self, sync);
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
    read_source src = {self, snap, NULL};
    int found;
    PyObject *raw = read_lookup(&src, a[0], 0, &found);
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

static PyObject *DB_transaction(DBObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    PyObject *a[2];
    if (bind_args(&spec_transaction, args, nargs, kwnames, a) < 0) return NULL;
    weir_txnopts opts;
    memset(&opts, 0, sizeof opts);
    if (parse_sync(a[0], &opts.sync) < 0) return NULL;
    if (a[1] && (opts.track_all_reads = PyObject_IsTrue(a[1])) < 0) return NULL;
    return txn_begin(self, &opts);
}

/* ---- properties and stats ------------------------------------------------------------ */

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

/* ---- the type ------------------------------------------------------------------------ */

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

static int DB_ass_subscript(DBObject *self, PyObject *key, PyObject *value) {
    PyObject *r = value ? put_common(self, key, value, WEIR_SYNC_DEFAULT, 0)
                        : delete_common(self, key, WEIR_SYNC_DEFAULT);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

static PyMethodDef DB_methods[] = {
    {"get", FASTKW(read_get),
     SIGNATURE("get($self, key, default=None, *, snapshot=None)")
     "The value of key (bytes), or default if it is absent."},
    {"put", FASTKW(DB_put),
     SIGNATURE("put($self, key, value, *, sync=None, ttl=None)")
     "Store value under key; ttl (seconds or a timedelta) makes it expire."},
    {"delete", FASTKW(DB_delete),
     SIGNATURE("delete($self, key, *, sync=None)") "Delete key; an absent key is fine."},
    {"get_many", FASTKW(read_get_many),
     SIGNATURE("get_many($self, keys, *, snapshot=None)")
     "The values of keys (None where absent), read at one point in time."},
    {"put_many", FASTKW(DB_put_many),
     SIGNATURE("put_many($self, items, *, sync=None)")
     "Store a mapping or an iterable of (key, value) pairs in one atomic batch; returns the\n"
     "count."},
    {"delete_many", FASTKW(DB_delete_many),
     SIGNATURE("delete_many($self, keys, *, sync=None)")
     "Delete keys in one atomic batch; returns the count."},
    {"write_batch", FASTKW(DB_write_batch),
     SIGNATURE("write_batch($self, *, sync=None)")
     "A WriteBatch bound to this DB: a context manager that commits on a clean exit."},
    {"write", FASTKW(DB_write),
     SIGNATURE("write($self, batch, *, sync=None)")
     "Apply a WriteBatch atomically; the batch is left unchanged."},
    {"keys", FASTKW(read_keys),
     SIGNATURE("keys($self, *, prefix=None, start=None, stop=None, reverse=False, snapshot=None)")
     "A RangeIterator over the keys in [start, stop) that start with prefix."},
    {"values", FASTKW(read_values),
     SIGNATURE("values($self, *, prefix=None, start=None, stop=None, reverse=False, snapshot=None)")
     "A RangeIterator over the values of the keys in [start, stop) that start with prefix."},
    {"items", FASTKW(read_items),
     SIGNATURE("items($self, *, prefix=None, start=None, stop=None, reverse=False, snapshot=None)")
     "A RangeIterator over the (key, value) pairs in [start, stop) that start with prefix."},
    {"iterator", FASTKW(read_iterator),
     SIGNATURE("iterator($self, *, prefix=None, start=None, stop=None, snapshot=None)")
     "An unpositioned Iterator (a cursor) over one point in time."},
    {"merge", FASTKW(DB_merge),
     SIGNATURE("merge($self, key, op, operand, *, sync=None)")
     "Apply merge operator op (a name like 'int64_add', or an id) with operand to key."},
    {"incr", FASTKW(DB_incr),
     SIGNATURE("incr($self, key, n=1, *, sync=None)") "Add n to the int64 at key."},
    {"add_float", FASTKW(DB_add_float),
     SIGNATURE("add_float($self, key, x, *, sync=None)") "Add x to the float64 at key."},
    {"list_append", FASTKW(DB_list_append),
     SIGNATURE("list_append($self, key, item, *, max_items, sync=None)")
     "Append item to the list at key, keeping the newest max_items."},
    {"get_int", FASTKW(DB_get_int),
     SIGNATURE("get_int($self, key, default=0, *, snapshot=None)")
     "The int64 at key, or default if it is absent."},
    {"get_float", FASTKW(DB_get_float),
     SIGNATURE("get_float($self, key, default=0.0, *, snapshot=None)")
     "The float64 at key, or default if it is absent."},
    {"get_list", FASTKW(DB_get_list),
     SIGNATURE("get_list($self, key, *, snapshot=None)")
     "The list at key (list[bytes]), empty if it is absent."},
    {"delete_range", FASTKW(DB_delete_range),
     SIGNATURE("delete_range($self, start, end, *, sync=None)")
     "Delete every key in [start, end) in one write."},
    {"delete_prefix", FASTKW(DB_delete_prefix),
     SIGNATURE("delete_prefix($self, prefix, *, sync=None)")
     "Delete every key that starts with prefix."},
    {"checkpoint", (PyCFunction)DB_checkpoint, METH_O,
     SIGNATURE("checkpoint($self, path, /)")
     "Make an openable copy of the DB in path, which must be absent or empty."},
    {"transaction", FASTKW(DB_transaction),
     SIGNATURE("transaction($self, *, sync=None, track_all_reads=False)")
     "Begin an optimistic Transaction."},
    {"snapshot", (PyCFunction)DB_snapshot, METH_NOARGS,
     SIGNATURE("snapshot($self, /)") "A Snapshot of the current state."},
    {"flush", (PyCFunction)DB_flush, METH_NOARGS,
     SIGNATURE("flush($self, /)") "Write the memtable to a table."},
    {"compact", FASTKW(DB_compact),
     SIGNATURE("compact($self, start=None, stop=None)")
     "Compact the key range [start, stop) (None: unbounded)."},
    {"stats", (PyCFunction)DB_stats, METH_NOARGS,
     SIGNATURE("stats($self, /)") "A dict of the engine's counters, the levels and the path."},
    {"property", (PyCFunction)DB_property, METH_O,
     SIGNATURE("property($self, name, /)") "The engine property name (str), or None if unknown."},
    {"close", (PyCFunction)DB_close, METH_NOARGS,
     SIGNATURE("close($self, /)")
     "Close the DB; idempotent. Invalidates its iterators, snapshots and transactions."},
    {"__enter__", (PyCFunction)DB_enter, METH_NOARGS, SIGNATURE("__enter__($self, /)")},
    {"__exit__", (PyCFunction)(void (*)(void))DB_exit, METH_FASTCALL,
     SIGNATURE("__exit__($self, exc_type, exc, tb, /)") "Close the DB."},
    WEIR_ARROW_DB_METHODS
    {0},
};

static PyGetSetDef DB_getset[] = {
    {"closed", (getter)DB_get_closed, NULL, "True once close() has begun", NULL},
    {"path", (getter)DB_get_path, NULL, "the directory of the store", NULL},
    {0},
};

static PyMappingMethods DB_as_mapping = {
    .mp_subscript = read_subscript,
    .mp_ass_subscript = (objobjargproc)DB_ass_subscript,
};

static PySequenceMethods DB_as_sequence = {
    .sq_contains = read_contains,
};

PyTypeObject DB_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weir.DB",
    .tp_basicsize = sizeof(DBObject),
    .tp_dealloc = (destructor)DB_dealloc,
    .tp_repr = (reprfunc)DB_repr,
    .tp_as_sequence = &DB_as_sequence,
    .tp_as_mapping = &DB_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = SIGNATURE("DB(path, *, create_if_missing=True, error_if_exists=False, read_only=False,\n"
                        "   write_buffer_size=None, block_size=None, bloom_bits_per_key=None,\n"
                        "   max_open_files=None, background_threads=None, sync='flush',\n"
                        "   target_file_size=None, max_bytes_for_level_base=None,\n"
                        "   level0_triggers=None, compression=None, block_cache_size=None,\n"
                        "   default_ttl=None, read_triggered_compaction=True)")
              "An open weir store. Keys and values are bytes-like; a missing key is not an\n"
              "error. Use as a context manager to close it. read_only=True writes, renames\n"
              "and deletes nothing (it works on read-only media) and shares the store with\n"
              "other read-only handles; a handle belongs to the process that opened it (in\n"
              "a forked child it raises InvalidArgumentError; open a new one there).\n"
              "read_triggered_compaction=False stops iterator seeks that pay for overlapping\n"
              "sorted runs from getting those runs compacted together.",
    .tp_weaklistoffset = offsetof(DBObject, weakreflist),
    .tp_iter = read_iter,
    .tp_methods = DB_methods,
    .tp_getset = DB_getset,
    .tp_init = (initproc)DB_init,
    .tp_new = DB_new,
};

int weir_db_init(PyObject *module) {
    if (argspecs_init(db_specs, sizeof db_specs / sizeof db_specs[0]) < 0) return -1;
    if (PyType_Ready(&DB_Type) < 0) return -1;
    return PyModule_AddObjectRef(module, "DB", (PyObject *)&DB_Type);
}
