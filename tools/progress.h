/*
 * progress.h -- how the weir tool shows a long command's progress on
 * stderr (load, compact). On a terminal: one line redrawn in place, at
 * most ten times a second, erased when the command ends. Asked for with
 * --progress when stderr is not a terminal (a log file, a pipe): plain
 * lines, at most one a second plus the ones a command marks as
 * milestones, with no control characters. Otherwise nothing.
 */
#ifndef WEIR_TOOL_PROGRESS_H
#define WEIR_TOOL_PROGRESS_H

typedef enum progress_mode { PROGRESS_OFF, PROGRESS_BAR, PROGRESS_LINES } progress_mode;

/* The mode for a command given --progress (on), --no-progress (off) or
 * neither: a bar when stderr is a terminal and TERM is not "dumb", lines
 * when --progress asks for it elsewhere, otherwise off (also when both
 * flags are given: off wins). */
progress_mode progress_choose(int on, int off);

typedef struct progress {
    progress_mode mode;
    double start;     /* now_seconds() when the command's work began */
    double last_draw; /* 0: nothing drawn yet */
    int on_screen;    /* PROGRESS_BAR: a bar line is showing */
} progress;

void progress_start(progress *pg, progress_mode mode);

/* Show `fraction` (0..1, clamped; negative: not known) and the text of
 * fmt. Redraws are rate-limited (see above) unless `milestone` is set.
 * Bar: "[####......]  45%  text"; lines: "weir: CMD: 45% text". */
void progress_show(progress *pg, double fraction, int milestone, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Erase the bar (before any other output on stderr, and at the end). */
void progress_clear(progress *pg);

/* "512 B", "1.5 KiB", "2.2 MiB", "3.0 GiB" into buf. */
const char *progress_bytes(char *buf, unsigned long cap, unsigned long long bytes);

#endif
