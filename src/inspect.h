/*
 * inspect.h -- reading a table file and a log-format file (a write-ahead
 * log or a manifest) for display: a table's layout (footer, data blocks
 * with their codecs and index separator keys, key range) and its entries
 * in order; a log's records with their write batch ops or version edit
 * fields, and where a torn tail begins. Implemented in dump.c.
 *
 * Users: weir_check (inspect.c) walks every log through inspect_log_walk,
 * and the `weir` tool's dump-table and dump-log print what these hand
 * them. Internal (not in libweir's exported names). Everything here is in
 * plain C types, not the engine's structs, so the tool needs only this
 * header and weir.h. Errors are a weir status with the thread's message
 * (weir_errmsg) naming the file and the byte offset.
 */
#ifndef WEIR_INSPECT_H
#define WEIR_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "weir.h"

/* Bytes borrowed from the reader: valid during the callback that hands
 * them over, or until the structure holding them is freed. */
typedef struct inspect_bytes {
    const char *data;
    size_t len;
} inspect_bytes;

/* What a write did, as tables and logs store it. */
enum inspect_op_type {
    INSPECT_OP_DEL = 0,
    INSPECT_OP_PUT = 1,
    INSPECT_OP_MERGE = 2,     /* the value is a merge operand */
    INSPECT_OP_PUT_TTL = 3,   /* a put that expires at expiry_ms */
    INSPECT_OP_DEL_RANGE = 4  /* deletes [key, value) */
};

/* "PUT", "DEL", "MERGE", "PUT_TTL", "DEL_RANGE"; "UNKNOWN" otherwise. */
const char *inspect_op_name(int type);
/* "none", "lz4", "zstd" for WEIR_COMPRESSION_*; "unknown" otherwise. */
const char *inspect_codec_name(int codec);

/* One write: a table entry, or one op of a logged write batch. */
typedef struct inspect_op {
    uint64_t sequence;
    int type;            /* INSPECT_OP_* */
    inspect_bytes key;   /* the user key (a range deletion's start) */
    inspect_bytes value; /* PUT: the value; MERGE: the operand; PUT_TTL: the
                            value after its expiry; DEL_RANGE: the end key
                            (exclusive); DEL: empty */
    uint64_t expiry_ms;  /* PUT_TTL: when it expires, ms since the epoch */
    int malformed;       /* PUT_TTL whose stored value is shorter than its
                            expiry (only in a damaged table): value and
                            expiry_ms are not set */
} inspect_op;

/* Return WEIR_OK to go on; any other status (with weir_set_error's
 * message) stops the walk, which returns it. */
typedef int (*inspect_op_fn)(void *arg, const inspect_op *op);

/* An internal key as tables and manifests store it: a user key with the
 * sequence and type of the write it belongs to. */
typedef struct inspect_key {
    int valid;          /* 0: too short for its 8-byte tag, or an unknown
                           type; then user holds all the stored bytes */
    inspect_bytes user;
    uint64_t sequence;
    int type;           /* INSPECT_OP_* */
} inspect_key;

/* ---- tables ------------------------------------------------------------- */

typedef struct inspect_table inspect_table;

/* Open the table file at path: its size, footer, magic, and the index and
 * filter checksums are checked here (WEIR_CORRUPTION: "table PATH: ...").
 * A data block's checksum is checked when it is first read. */
int inspect_table_open(const char *path, inspect_table **out);
void inspect_table_close(inspect_table *t); /* NULL is fine */

/* Hand the table's first `limit` entries to fn in key order. *handed (may
 * be NULL) counts the entries fn was given. WEIR_CORRUPTION "PATH: entry N
 * has a malformed internal key" for an entry that cannot be shown; a
 * damaged block: "after N entries: <why>". */
int inspect_table_entries(inspect_table *t, uint64_t limit, inspect_op_fn fn, void *arg,
                          uint64_t *handed);

/* One data block, from the table's index. */
typedef struct inspect_block {
    uint64_t offset, size; /* in the file; size excludes the 5-byte trailer */
    int codec;             /* WEIR_COMPRESSION_*, or another byte if damaged */
    inspect_key last_key;  /* the index's separator: >= the block's last
                              key, < the next block's first */
} inspect_block;

/* A table's physical layout, read from its footer and index. */
typedef struct inspect_table_layout {
    uint64_t file_size;
    uint32_t format_version;
    uint64_t entries;
    size_t num_blocks;
    inspect_block *blocks;                     /* num_blocks of them, in file order */
    uint64_t block_bytes;                      /* sum of the data blocks' sizes */
    uint64_t smallest_block, largest_block;    /* sizes; 0 when num_blocks is 0 */
    uint64_t blocks_by_codec[3];               /* none, lz4, zstd */
    uint64_t filter_offset, filter_size;
    uint64_t index_offset, index_size;
    uint64_t footer_offset, footer_size;
    int empty;                                 /* no entries: first, last unset */
    inspect_key first, last;                   /* the table's key range */
    void *storage;                             /* owns the keys' bytes */
} inspect_table_layout;

/* Fill *out (free it with inspect_table_layout_free, also on failure).
 * Bounds are checked again because the file can change underneath. */
int inspect_table_layout_read(inspect_table *t, inspect_table_layout *out);
void inspect_table_layout_free(inspect_table_layout *l);

/* ---- log-format files ------------------------------------------------------ */

enum inspect_log_kind {
    INSPECT_LOG_WAL = 0,     /* records are write batches */
    INSPECT_LOG_MANIFEST = 1 /* records are version edits */
};

/* INSPECT_LOG_MANIFEST when the file name in path is a manifest's
 * (MANIFEST-NNNNNN), else INSPECT_LOG_WAL. */
int inspect_log_kind_of(const char *path);

typedef struct inspect_log_record {
    uint64_t offset;   /* where the record starts in the file */
    size_t size;       /* its bytes */
    /* Write-ahead logs only (0 in a manifest): */
    uint64_t sequence; /* of the batch's first op */
    uint32_t count;    /* ops in the batch */
    int synced;        /* the batch was written with WEIR_SYNC_FSYNC */
} inspect_log_record;

/* The parts of a version edit, handed over in this order. */
enum inspect_edit_kind {
    INSPECT_EDIT_LOG_NUMBER,              /* number: logs below it are in tables */
    INSPECT_EDIT_LOG_START,               /* sequence: the first write of that log */
    INSPECT_EDIT_CLEAN_CLOSE,             /* sequence: the last in the logs at
                                             close; number: the newest log (0: none) */
    INSPECT_EDIT_NEXT_FILE_NUMBER,        /* number */
    INSPECT_EDIT_LAST_SEQUENCE,           /* sequence */
    INSPECT_EDIT_DELETE_TABLE,            /* level, number */
    INSPECT_EDIT_ADD_TABLE,               /* level, number, size, entries, smallest, largest */
    INSPECT_EDIT_COMPACTION_POINTER,      /* level, smallest: where the next compaction starts */
    INSPECT_EDIT_ADD_RANGE_TOMBSTONE,     /* sequence, start, end: deletes [start, end) */
    INSPECT_EDIT_REMOVE_RANGE_TOMBSTONE   /* sequence: of a tombstone no longer needed */
};

typedef struct inspect_edit_field {
    int kind; /* INSPECT_EDIT_*; the comments there say which members are set */
    int level;
    uint64_t number, sequence, size, entries;
    inspect_key smallest, largest;
    inspect_bytes start, end;
} inspect_edit_field;

/* Callbacks of a walk; any may be NULL. Each returns WEIR_OK to go on, or
 * a status (with weir_set_error's message) that stops the walk. */
typedef struct inspect_log_visitor {
    int (*record)(void *arg, const inspect_log_record *rec); /* each record, first */
    inspect_op_fn op;                                         /* then each op (logs) */
    int (*edit_field)(void *arg, const inspect_edit_field *f); /* or each field (manifests) */
    void *arg;
} inspect_log_visitor;

typedef struct inspect_log_summary {
    uint64_t records;             /* whole records read */
    uint64_t ops;                 /* logs: the ops in them */
    uint64_t first_seq, last_seq; /* logs: the first and last op's sequence (ops > 0) */
    int synced;                   /* logs: some batch was written with fsync */
    uint64_t size;                /* bytes of the file as read */
    uint64_t valid_end;           /* offset just after the last whole record */
    uint64_t dropped;             /* bytes of torn tail from valid_end (0: none) */
} inspect_log_summary;

/* Read every record of the log-format file at path; each must decode as a
 * write batch (INSPECT_LOG_WAL) or a version edit (INSPECT_LOG_MANIFEST).
 * WEIR_OK when the file reads to its end, with a torn tail (damage that no
 * valid fragment follows) in s->dropped; WEIR_CORRUPTION for damage that
 * valid data follows, or a record that does not decode ("PATH: record at
 * offset O: ..."); a callback's status likewise. *s is filled as far as
 * the walk got. v may be NULL (a check of the file only). */
int inspect_log_walk(const char *path, int kind, const inspect_log_visitor *v, inspect_log_summary *s);

#endif
