/*
 * wal.h -- the log format shared by the write-ahead log and the manifest.
 *
 * A log is a sequence of 32 KiB blocks. A record is split into fragments,
 * each with a 7-byte header: masked crc32c (4, over type byte + payload),
 * payload length (2, little-endian), type (1: FULL, FIRST, MIDDLE, LAST).
 * A fragment never straddles a block boundary; a block tail shorter than a
 * header is zero-filled.
 *
 * Recovery rule: a damaged or incomplete record at the very end of the log
 * (no fragment that checksums anywhere after it, at any byte offset) is a
 * torn write from a crash and is dropped; damage followed by any valid
 * fragment is corruption and is reported with the file name and byte
 * offset, never skipped. Only salvage (log_reader_set_salvage) steps over
 * damage, and it reports every byte range it steps over.
 */
#ifndef WEIR_WAL_H
#define WEIR_WAL_H

#include <stdint.h>

#include "coding.h"
#include "env.h"

#define LOG_BLOCK_SIZE 32768
#define LOG_HEADER_SIZE 7

enum log_record_type {
    LOG_ZERO = 0, /* preallocated / zero-filled space: treated as end */
    LOG_FULL = 1,
    LOG_FIRST = 2,
    LOG_MIDDLE = 3,
    LOG_LAST = 4
};

typedef struct log_writer {
    env_writable *file;
    uint32_t block_offset; /* bytes used in the current block */
} log_writer;

/* Create a new log file (truncating). */
int log_writer_open(weir_env *env, const char *path, log_writer **out);
/* Append one record (buffered; see log_writer_flush / log_writer_sync). */
int log_writer_add(log_writer *w, slice record);
int log_writer_flush(log_writer *w); /* to the OS */
/* Take back everything appended after the log was `size` bytes long (a
 * record boundary from log_writer_size): the record that failed to reach
 * the OS for want of space is then provably not in the log, and later
 * records follow the ones before it. Fails (and the log must be given up)
 * if the file cannot be cut back. */
int log_writer_rollback(log_writer *w, uint64_t size);
int log_writer_sync(log_writer *w);  /* to disk */
uint64_t log_writer_size(const log_writer *w);
/* Flush and close; w is freed even on error. NULL is fine. */
int log_writer_close(log_writer *w);

typedef struct log_reader log_reader;

int log_reader_open(weir_env *env, const char *path, log_reader **out);
/* Next whole record. WEIR_OK: *record is valid until the next call (it may
 * point into `scratch`). WEIR_NOT_FOUND: end of log (a torn tail, if any,
 * was dropped; see log_reader_dropped_bytes). WEIR_CORRUPTION: message names
 * the file and the offset of the damaged fragment. WEIR_IO_ERROR likewise. */
int log_reader_next(log_reader *r, buf *scratch, slice *record);
/* Offset of the first byte of the record last returned. */
uint64_t log_reader_record_offset(const log_reader *r);
/* Offset just after the last whole record returned (where a torn tail
 * begins); valid after WEIR_NOT_FOUND. */
uint64_t log_reader_valid_end(const log_reader *r);
/* Bytes of torn tail dropped (0 if the log ended cleanly). */
uint64_t log_reader_dropped_bytes(const log_reader *r);
/* Size of the file as read (it may have shrunk since open). */
uint64_t log_reader_file_size(const log_reader *r);

/* Salvage mode: instead of failing on damage, call fn with the damaged
 * byte range [start, end), whether a valid fragment follows (the range then
 * ends where it starts) and why, then read on from there. For `weir
 * salvage` only: recovery never uses it. */
typedef void (*log_salvage_fn)(void *arg, uint64_t start, uint64_t end, int valid_follows,
                               const char *reason);
void log_reader_set_salvage(log_reader *r, log_salvage_fn fn, void *arg);
/* Bytes stepped over in salvage mode. */
uint64_t log_reader_skipped_bytes(const log_reader *r);
void log_reader_close(log_reader *r);

#endif
