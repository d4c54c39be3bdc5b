/*
 * _weir_internal.h -- what the files of the _weir extension share.
 *
 * The extension is cut by concept, one Python type a file:
 *   _weir.c           the module: exceptions, module functions, PyInit__weir
 *   _weir_args.c      argument binding and conversion (bytes-like, sync=,
 *                     ttl=, merge operators and operands)
 *   _weir_db.c        DB: open, options, close, writes, merges, properties
 *   _weir_read.c      the read API of DB, Snapshot and Transaction, written
 *                     once over a read_source
 *   _weir_snapshot.c  Snapshot
 *   _weir_iter.c      Iterator (a cursor) and RangeIterator
 *   _weir_batch.c     WriteBatch
 *   _weir_txn.c       Transaction
 *   _weir_arrow.c     the Arrow methods of DB and ArrowScan
 * Everything here has hidden visibility (the extension is built with
 * -fvisibility=hidden and a version script), so only PyInit__weir is
 * exported.
 *
 * Threading. Every engine call that can touch disk or wait on a lock runs
 * with the GIL released, except point reads that memory answers and small
 * writes that do not fsync (see WRITE_GIL_BYTES), where the release costs
 * more than the call. A DB counts the calls it has in flight without the
 * GIL; close() marks the DB closing (new calls raise ClosedError), waits for
 * that count to reach zero, invalidates the iterators, snapshots and
 * transactions still bound to it (a transaction first drops the iterators
 * over it), and only then closes the engine handle, so no call ever runs
 * against a freed handle. The counters and the lists of dependants are only
 * touched with the GIL held, which serialises them.
 */
#ifndef WEIR_PY_INTERNAL_H
#define WEIR_PY_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "weir.h"

/* ---- objects ------------------------------------------------------------------- */

/* Iterators, snapshots and transactions bound to a DB sit on its list, so
 * close() can invalidate them before the engine handle goes away. */
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
    weir_sync_mode default_sync; /* what WEIR_SYNC_DEFAULT means for its writes */
    dep deps;             /* sentinel */
    PyObject *weakreflist;
} DBObject;

typedef struct SnapshotObject {
    PyObject_HEAD
    dep node;
    DBObject *db;
    weir_snapshot *snap;  /* NULL once released */
    Py_ssize_t uses;      /* calls in flight reading through it */
    uint64_t sequence;
} SnapshotObject;

/* What a RangeIterator yields. */
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

extern PyTypeObject DB_Type;
extern PyTypeObject Snapshot_Type;
extern PyTypeObject Iter_Type;
extern PyTypeObject RangeIter_Type;
extern PyTypeObject Batch_Type;
extern PyTypeObject Txn_Type;

static inline int weir_is_db(PyObject *o) { return PyObject_TypeCheck(o, &DB_Type); }

/* Each file readies its types and adds them (and its interned names) to
 * the module; PyInit__weir calls these in turn. 0, or -1 with an
 * exception. */
int weir_args_init(void);
int weir_db_init(PyObject *module);
int weir_read_init(void);
int weir_snapshot_init(PyObject *module);
int weir_iter_init(PyObject *module);
int weir_batch_init(PyObject *module);
int weir_txn_init(PyObject *module);
int weir_arrow_init(PyObject *module);

/* A method table entry for a METH_FASTCALL | METH_KEYWORDS function. */
#define FASTKW(fn) (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS

/* The start of a docstring that carries the method's signature, so that
 * inspect.signature() works: "name($self, key, /, *, sync=None)". The
 * parameter lists follow _weir.pyi (tests/python/test_signatures.py checks
 * every public callable against it). */
#define SIGNATURE(text) text "\n--\n\n"

/* ---- exceptions (_weir.c) ---------------------------------------------------- */

/* Raise the exception class of `status` with message `msg` (a str, stolen;
 * NULL passes an error through) and .status set to the C status name.
 * Always returns NULL. */
PyObject *raise_with(int status, PyObject *msg);
/* Raise for a failed engine call. Must run in the thread that made the
 * call, before any other weir call in it: the message is thread-local. */
PyObject *raise_status(int status);
PyObject *raise_fmt(int status, const char *fmt, ...);
PyObject *raise_closed(DBObject *self);
/* __enter__ of the types whose with-block needs no check on entry. */
PyObject *enter_returns_self(PyObject *self, PyObject *unused);

/* ---- arguments (_weir_args.c) ----------------------------------------------- */

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

#define SPEC(var, fname, npos, nreq, ...)                                 \
    static const char *const var##_names[] = {__VA_ARGS__, NULL};        \
    static argspec var = {fname, var##_names, npos, nreq, 0, NULL}

/* Intern the names of each spec (once; later calls do nothing). */
int argspecs_init(argspec *const *specs, size_t n);
/* Fill out[0..sp->n) from a vectorcall; absent parameters are NULL. */
int bind_args(const argspec *sp, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              PyObject **out);

/* A bytes-like argument: a pointer and length, holding a buffer export when
 * the object is not bytes. */
typedef struct bufarg {
    const char *ptr;
    size_t len;
    int has_view;
    Py_buffer view;
} bufarg;

int bufarg_slow(PyObject *o, bufarg *b, const char *what);

/* bytes take a pointer fast path (inlined into the hot methods); other
 * buffers are exported and held until bufarg_release. */
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
int bufarg_opt(PyObject *o, bufarg *b, const char *what);

static inline void bufarg_release(bufarg *b) {
    if (b->has_view) {
        PyBuffer_Release(&b->view);
        b->has_view = 0;
    }
}

int parse_sync(PyObject *o, weir_sync_mode *mode);
/* Seconds (an int, a float or a datetime.timedelta) to whole milliseconds,
 * at least 1. Returns 0 if None/absent, 1 with *ms set, -1 with an
 * exception. */
int parse_ttl(PyObject *o, const char *name, uint64_t *ms);
/* An unsigned integer option: 0 if None/absent, 1 with *out set, -1 on
 * error. */
int opt_u64(PyObject *o, const char *name, unsigned long long *out);
int opt_int(PyObject *o, const char *name, int *out);
/* A merge operator given by name or by numeric id. */
int parse_merge_op(PyObject *o, int *op);
int pack_int64(PyObject *o, const char *what, char out[8]);
int pack_float64(PyObject *o, const char *what, char out[8]);
/* The operand of merge(op, operand), packed into num[] when it is a
 * number, else the bytes-like payload. */
int merge_operand(int op, PyObject *o, char num[8], bufarg *b);
/* n of incr(): an int, 1 when absent. */
int incr_operand(PyObject *n, char num[8], bufarg *b);

static inline void put_le64(char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (char)(v >> (8 * i));
}

static inline uint64_t get_le64(const char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | (unsigned char)p[i];
    return v;
}

/* ---- DB (_weir_db.c) --------------------------------------------------------- */

void dep_link(DBObject *db, dep *d, PyObject *owner, void (*inv)(PyObject *));
void dep_unlink(dep *d);

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

/* Engine writes of fewer bytes than this that do not fsync keep the GIL:
 * releasing and retaking it costs some 400 instructions (a tenth of a
 * small put) and lets another thread take the interpreter for up to a
 * switch interval, for a write that takes a microsecond or two. Nothing an
 * engine write waits for (the writer queue's leader, the background work a
 * stalled write waits on) needs the GIL, so holding it cannot deadlock;
 * during a write stall the other Python threads wait too. */
#define WRITE_GIL_BYTES ((size_t)64 * 1024)

/* Whether a write of `bytes` bytes with `sync` should release the GIL. */
static inline int write_releases_gil(const DBObject *self, weir_sync_mode sync, size_t bytes) {
    if (sync == WEIR_SYNC_DEFAULT) sync = self->default_sync;
    return sync == WEIR_SYNC_FSYNC || bytes >= WRITE_GIL_BYTES;
}

/* Sleep a little with the GIL released, doubling *ns up to 1 ms; used while
 * waiting for calls in flight, which are short (one engine call each). */
void nap(long *ns);

/* Write b to the DB (no-op options when sync is WEIR_SYNC_DEFAULT). */
PyObject *write_batch_to(DBObject *self, weir_batch *b, weir_sync_mode sync);

/* ---- reads (_weir_read.c) ---------------------------------------------------- */

/* What a read reads from: the DB's latest state (snap and txn NULL), a
 * snapshot of it, or a transaction (its start plus its own writes). */
typedef struct read_source {
    DBObject *db;
    SnapshotObject *snap;
    TxnObject *txn;
} read_source;

/* Look key up. Returns a new bytes, or NULL with *found = 0 and no
 * exception when absent, or NULL with an exception. for_update applies to
 * a transaction only. */
PyObject *read_lookup(const read_source *src, PyObject *key, int for_update, int *found);
/* The value of key, or dflt (None when NULL) if absent. */
PyObject *read_value_or(const read_source *src, PyObject *key, PyObject *dflt, int for_update);

/* The read methods, one implementation in the method tables of DB,
 * Snapshot and Transaction; self is one of the three. */
PyObject *read_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *read_get_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *read_keys(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *read_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *read_items(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *read_iterator(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *read_iter(PyObject *self);                 /* tp_iter: the keys */
PyObject *read_subscript(PyObject *self, PyObject *key); /* [key], KeyError if absent */
int read_contains(PyObject *self, PyObject *key);    /* key in x */

/* ---- Snapshot (_weir_snapshot.c) --------------------------------------------- */

PyObject *make_snapshot(DBObject *db);
/* Check a snapshot= argument of a read on db; NULL/None gives *out NULL. */
int check_snapshot(DBObject *db, PyObject *o, SnapshotObject **out);
/* -1 with ClosedError if the snapshot has been released. */
int snapshot_usable(SnapshotObject *s);

/* ---- iterators (_weir_iter.c) ------------------------------------------------- */

/* A RangeIterator or a cursor over src; a holds the prefix, start and stop
 * arguments (and, for a range, reverse). A transaction source must have
 * passed txn_check. */
PyObject *make_range(const read_source *src, int mode, PyObject *const *a);
PyObject *make_cursor(const read_source *src, PyObject *const *a);
/* Drop a range iterator's engine iterator and buffer; why is an INV_*. */
void range_invalidate_as(RangeIterObject *r, int why);

/* ---- WriteBatch (_weir_batch.c) ----------------------------------------------- */

/* A WriteBatch bound to db (DB.write_batch()). */
PyObject *batch_new_bound(DBObject *db, weir_sync_mode sync);
/* Write a WriteBatch to db, leaving it unchanged. */
PyObject *batch_commit_to(BatchObject *b, DBObject *db, weir_sync_mode sync);
/* Add every (key, value) of a dict, a mapping or an iterable of pairs;
 * the count, or -1 with an exception. */
Py_ssize_t batch_add_pairs(weir_batch *b, PyObject *items);
/* Add a put for each (key, value) of a dict, a mapping or an iterable of
 * 2-tuples, encoding each value with encode_value(value, key) and each key
 * with encode_key(key) (NULL: a str as UTF-8, a bytes-like object as is);
 * the count, or -1 with an exception (the pairs before the failing one
 * stay in b). */
Py_ssize_t batch_add_encoded(weir_batch *b, PyObject *items, PyObject *encode_value,
                             PyObject *encode_key);
int batch_add_delete(weir_batch *b, PyObject *key);

/* ---- Transaction (_weir_txn.c) ------------------------------------------------ */

PyObject *txn_begin(DBObject *db, const weir_txnopts *opts);
/* Can the transaction take a call now? -1 with an exception if not. */
int txn_check(TxnObject *t);

/* ---- _weir_arrow.c -------------------------------------------------------------- */

PyObject *DB_scan_arrow(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *DB_put_arrow(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *DB_put_batch(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *DB_get_batch(DBObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

#define WEIR_ARROW_DB_METHODS                                                                      \
    {"scan_arrow", FASTKW(DB_scan_arrow),                                                          \
     SIGNATURE("scan_arrow($self, *, prefix=None, start=None, stop=None, batch_size=65536, "       \
               "large=False)")                                                                     \
     "An Arrow stream (an ArrowScan with __arrow_c_stream__) of struct<key: binary, value:\n"      \
     "binary> rows in key order, read at one point in time. large=True gives large_binary\n"       \
     "columns."},                                                                                  \
        {"put_arrow", FASTKW(DB_put_arrow),                                                        \
         SIGNATURE("put_arrow($self, data, *, key='key', value_columns=None, key_prefix=b'', "     \
                   "sync=None, progress=None)")                                                    \
         "Bulk-load the rows of an Arrow record batch, table or stream in one atomic batch;\n"     \
         "returns the number of rows. progress=True draws a bar on a terminal; a callable\n"      \
         "is called as progress(stage, rows_done, rows_total)."},                                  \
        {"put_batch", FASTKW(DB_put_batch),                                                        \
         SIGNATURE("put_batch($self, key, batch, *, sync=None)")                                   \
         "Store a record batch (or a table, combined into one) as Arrow IPC."},                    \
        {"get_batch", FASTKW(DB_get_batch),                                                        \
         SIGNATURE("get_batch($self, key, *, snapshot=None)")                                      \
         "The pyarrow.RecordBatch stored by put_batch(), or None if absent."},

#endif
