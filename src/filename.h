/*
 * filename.h -- names of the files in a DB directory.
 *   NNNNNN.log       write-ahead log
 *   NNNNNN.sst       table
 *   MANIFEST-NNNNNN  version edits
 *   CURRENT          name of the live manifest (replaced by rename)
 *   LOCK             held (fcntl lock) while the DB is open
 *   NNNNNN.dbtmp     temporary file (CURRENT being written)
 *   NNNNNN.log.unreplayed  a log recovery set aside: written after a hole a
 *                    power cut left in unsynced writes (see recovery.c);
 *                    never replayed, never deleted by weir except destroy
 */
#ifndef WEIR_FILENAME_H
#define WEIR_FILENAME_H

#include <stddef.h>
#include <stdint.h>

enum file_kind {
    FILE_LOG,
    FILE_TABLE,
    FILE_MANIFEST,
    FILE_CURRENT,
    FILE_LOCK,
    FILE_TEMP,
    FILE_UNREPLAYED_LOG,
    FILE_UNKNOWN
};

/* Each writes "<dir>/<name>" into out (size cap); returns out. Paths that
 * do not fit are truncated (cap is PATH_MAX-sized at every call site). */
char *log_file_path(char *out, size_t cap, const char *dir, uint64_t number);
char *table_file_path(char *out, size_t cap, const char *dir, uint64_t number);
char *manifest_file_path(char *out, size_t cap, const char *dir, uint64_t number);
char *temp_file_path(char *out, size_t cap, const char *dir, uint64_t number);
char *unreplayed_log_path(char *out, size_t cap, const char *dir, uint64_t number);
char *current_file_path(char *out, size_t cap, const char *dir);
char *lock_file_path(char *out, size_t cap, const char *dir);

/* Classify a directory entry name; *number set for numbered kinds. */
enum file_kind parse_file_name(const char *name, uint64_t *number);

#endif
