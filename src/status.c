/*
 * status.c -- thread-local error messages and status names (see status.h).
 */
#include "status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char tls_msg[1024];

const char *weir_errmsg(void) { return tls_msg[0] ? tls_msg : "no error"; }

int weir_set_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_msg, sizeof tls_msg, fmt, ap);
    va_end(ap);
    return code;
}

int weir_wrap_error(int code, const char *fmt, ...) {
    char prefix[512];
    char old[sizeof tls_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tls_msg, sizeof old);
    /* Build "<prefix>: <old>" by hand: it may be cut at the buffer end. */
    size_t pl = strnlen(prefix, sizeof prefix);
    if (pl > sizeof tls_msg - 3) pl = sizeof tls_msg - 3;
    memcpy(tls_msg, prefix, pl);
    memcpy(tls_msg + pl, ": ", 2);
    size_t room = sizeof tls_msg - pl - 3;
    size_t ol = strnlen(old, sizeof old);
    if (ol > room) ol = room;
    memcpy(tls_msg + pl + 2, old, ol);
    tls_msg[pl + 2 + ol] = '\0';
    return code;
}

int weir_set_errno(int err, const char *what, const char *path) {
    int code;
    switch (err) {
    case ENOSPC:
#ifdef EDQUOT
    case EDQUOT:
#endif
        code = WEIR_NO_SPACE;
        break;
    case ENOMEM:
        code = WEIR_NO_MEMORY;
        break;
    default:
        code = WEIR_IO_ERROR;
        break;
    }
    const char *hint = "";
    if (err == ENOSPC) hint = " (free some space: writes go on as soon as there is room)";
    else if (err == EACCES || err == EPERM) hint = " (check the permissions of the directory and its files)";
    return weir_set_error(code, "%s %s: %s%s", what, path ? path : "", strerror(err), hint);
}

/* Copy a NUL-terminated message, cutting it to fit. */
static void copy_message(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void weir_error_save(weir_error *e, int code) {
    e->code = code;
    copy_message(e->msg, sizeof e->msg, tls_msg);
}

int weir_error_raise(const weir_error *e) {
    copy_message(tls_msg, sizeof tls_msg, e->msg);
    return e->code;
}

const char *weir_status_name(int status) {
    switch (status) {
    case WEIR_OK: return "WEIR_OK";
    case WEIR_NOT_FOUND: return "WEIR_NOT_FOUND";
    case WEIR_CORRUPTION: return "WEIR_CORRUPTION";
    case WEIR_IO_ERROR: return "WEIR_IO_ERROR";
    case WEIR_BUSY: return "WEIR_BUSY";
    case WEIR_INVALID: return "WEIR_INVALID";
    case WEIR_NO_SPACE: return "WEIR_NO_SPACE";
    case WEIR_NO_MEMORY: return "WEIR_NO_MEMORY";
    case WEIR_BUFFER_TOO_SMALL: return "WEIR_BUFFER_TOO_SMALL";
    case WEIR_EXISTS: return "WEIR_EXISTS";
    case WEIR_NOT_SUPPORTED: return "WEIR_NOT_SUPPORTED";
    case WEIR_READ_ONLY: return "WEIR_READ_ONLY";
    case WEIR_CLOSED: return "WEIR_CLOSED";
    case WEIR_CONFLICT: return "WEIR_CONFLICT";
    case WEIR_INCOMPLETE: return "WEIR_INCOMPLETE";
    default: return "WEIR_UNKNOWN_STATUS";
    }
}

void weir_free(void *ptr) { free(ptr); }
