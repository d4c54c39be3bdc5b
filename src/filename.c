/* filename.c -- see filename.h. */
#include "filename.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *log_file_path(char *out, size_t cap, const char *dir, uint64_t number) {
    snprintf(out, cap, "%s/%06" PRIu64 ".log", dir, number);
    return out;
}

char *table_file_path(char *out, size_t cap, const char *dir, uint64_t number) {
    snprintf(out, cap, "%s/%06" PRIu64 ".sst", dir, number);
    return out;
}

char *manifest_file_path(char *out, size_t cap, const char *dir, uint64_t number) {
    snprintf(out, cap, "%s/MANIFEST-%06" PRIu64, dir, number);
    return out;
}

char *temp_file_path(char *out, size_t cap, const char *dir, uint64_t number) {
    snprintf(out, cap, "%s/%06" PRIu64 ".dbtmp", dir, number);
    return out;
}

char *unreplayed_log_path(char *out, size_t cap, const char *dir, uint64_t number) {
    snprintf(out, cap, "%s/%06" PRIu64 ".log.unreplayed", dir, number);
    return out;
}

char *current_file_path(char *out, size_t cap, const char *dir) {
    snprintf(out, cap, "%s/CURRENT", dir);
    return out;
}

char *lock_file_path(char *out, size_t cap, const char *dir) {
    snprintf(out, cap, "%s/LOCK", dir);
    return out;
}

/* Parse all-digit text into *number; 0 if it is not a plain decimal. */
static int parse_number(const char *s, size_t n, uint64_t *number) {
    if (n == 0 || n > 19) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *number = v;
    return 1;
}

static int has_suffix(const char *name, size_t len, const char *suffix) {
    size_t sl = strlen(suffix);
    return len > sl && memcmp(name + len - sl, suffix, sl) == 0;
}

enum file_kind parse_file_name(const char *name, uint64_t *number) {
    size_t len = strlen(name);
    uint64_t dummy;
    if (!number) number = &dummy;
    if (strcmp(name, "CURRENT") == 0) return FILE_CURRENT;
    if (strcmp(name, "LOCK") == 0) return FILE_LOCK;
    if (strncmp(name, "MANIFEST-", 9) == 0)
        return parse_number(name + 9, len - 9, number) ? FILE_MANIFEST : FILE_UNKNOWN;
    if (has_suffix(name, len, ".log.unreplayed"))
        return parse_number(name, len - 15, number) ? FILE_UNREPLAYED_LOG : FILE_UNKNOWN;
    if (has_suffix(name, len, ".log"))
        return parse_number(name, len - 4, number) ? FILE_LOG : FILE_UNKNOWN;
    if (has_suffix(name, len, ".sst"))
        return parse_number(name, len - 4, number) ? FILE_TABLE : FILE_UNKNOWN;
    if (has_suffix(name, len, ".dbtmp"))
        return parse_number(name, len - 6, number) ? FILE_TEMP : FILE_UNKNOWN;
    return FILE_UNKNOWN;
}
