/*
 * status.h -- internal error reporting.
 *
 * Every failing path records a human-readable message in a thread-local
 * buffer (read back by weir_errmsg()) and returns a WEIR_* status, so the
 * message travels with the status without allocations on the error path.
 */
#ifndef WEIR_STATUS_H
#define WEIR_STATUS_H

#include "weir.h"

#if defined(__GNUC__)
#define WEIR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define WEIR_PRINTF(a, b)
#endif

/* Record the message for `code` and return `code`. */
int weir_set_error(int code, const char *fmt, ...) WEIR_PRINTF(2, 3);

/* Map an errno value to a WEIR_* status (ENOSPC -> WEIR_NO_SPACE, ENOMEM ->
 * WEIR_NO_MEMORY, EAGAIN/EWOULDBLOCK on a lock -> WEIR_BUSY, else
 * WEIR_IO_ERROR) and record "<what> <path>: <strerror>". */
int weir_set_errno(int err, const char *what, const char *path);

/* Prepend context to the current thread's message ("<ctx>: <old message>")
 * and return `code`; used when an inner layer failed and an outer one knows
 * more (e.g. which file). */
int weir_wrap_error(int code, const char *fmt, ...) WEIR_PRINTF(2, 3);

/* Copy of the calling thread's current message (the thread-local buffer). */
const char *weir_errmsg(void);

/* A saved error, for objects that must report a failure later (iterators,
 * the background error of a DB). */
typedef struct weir_error {
    int code;
    char msg[512];
} weir_error;

/* Save the calling thread's current message with `code` into e. */
void weir_error_save(weir_error *e, int code);
/* Re-raise a saved error in the calling thread; returns e->code. */
int weir_error_raise(const weir_error *e);

#endif
