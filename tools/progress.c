/*
 * progress.c -- the weir tool's progress display (progress.h).
 */
#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

progress_mode progress_choose(int on, int off) {
    if (off) return PROGRESS_OFF;
    const char *term = getenv("TERM");
    int terminal = isatty(STDERR_FILENO) && !(term && strcmp(term, "dumb") == 0);
    if (terminal) return PROGRESS_BAR;
    return on ? PROGRESS_LINES : PROGRESS_OFF;
}

void progress_start(progress *pg, progress_mode mode) {
    memset(pg, 0, sizeof *pg);
    pg->mode = mode;
    pg->start = now_seconds();
}

void progress_show(progress *pg, double fraction, int milestone, const char *fmt, ...) {
    if (pg->mode == PROGRESS_OFF) return;
    double now = now_seconds();
    double min_gap = pg->mode == PROGRESS_BAR ? 0.1 : 1.0;
    if (!milestone && pg->last_draw > 0 && now - pg->last_draw < min_gap) return;
    pg->last_draw = now;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (fraction > 1) fraction = 1;
    int pct = fraction >= 0 ? (int)(fraction * 100) : -1;
    fflush(stdout); /* keep stdout and stderr in order on a terminal */
    if (pg->mode == PROGRESS_BAR) {
        if (pct >= 0) {
            enum { width = 30 };
            char bar[width + 1];
            int filled = (int)(fraction * width);
            for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
            bar[width] = '\0';
            fprintf(stderr, "\r[%s] %3d%%  %s\033[K", bar, pct, text);
        } else {
            fprintf(stderr, "\r%s\033[K", text);
        }
        pg->on_screen = 1;
    } else if (pct >= 0) {
        fprintf(stderr, "weir: %s: %3d%% %s\n", cmd_label(), pct, text);
    } else {
        fprintf(stderr, "weir: %s: %s\n", cmd_label(), text);
    }
    fflush(stderr);
}

void progress_clear(progress *pg) {
    if (pg->mode == PROGRESS_BAR && pg->on_screen) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        pg->on_screen = 0;
    }
}

const char *progress_bytes(char *buf, unsigned long cap, unsigned long long bytes) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, cap, "%llu B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}
