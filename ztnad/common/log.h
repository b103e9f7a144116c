/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * ztnad's log lines on stderr, one write per line: log_line() with an
 * sd-daemon prefix (SD_ERR...), log_line_errno() the same for a failure
 * (the error's text in the line, the error returned), log_line_priority()
 * with a syslog priority for the parts' log hooks (stub.h, control-protocol.h).
 * Every part logs through these; the parts that take a log hook instead
 * (stub, control socket) fall back on them or are wired to them by the
 * daemon.
 *
 * Under systemd stderr is a stream into the journal, which takes an
 * sd-daemon "<N>" prefix (SD_ERR...) as the line's priority. Anywhere else
 * (a terminal, `ztnad --check-config`, a file, a pipe) that prefix is
 * noise, so it is written only while stderr is the journal's stream.
 * systemd says which stream that is: JOURNAL_STREAM holds its
 * "DEVICE:INODE" (systemd.exec(5)). A child whose stderr was redirected
 * still inherits the variable, so it is compared with stderr itself, not
 * merely looked for.
 *
 * Header-only so every part that logs (daemon, stub, upstream, sync) and
 * their test programs use it without another object to link; each file
 * decides once, on its first line.
 */

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static inline bool log_stderr_is_journal(void) {
        /* -1: not decided yet; the answer is the same in every thread. */
        static _Atomic int journal = -1;
        int v = atomic_load_explicit(&journal, memory_order_relaxed);

        if (v < 0) {
                const char *e = getenv("JOURNAL_STREAM");
                unsigned long long dev, ino;
                struct stat st;
                int end = 0;

                v = e && sscanf(e, "%llu:%llu%n", &dev, &ino, &end) == 2 && e[end] == '\0' &&
                    fstat(STDERR_FILENO, &st) == 0 && (unsigned long long) st.st_dev == dev &&
                    (unsigned long long) st.st_ino == ino;
                atomic_store_explicit(&journal, v, memory_order_relaxed);
        }
        return v;
}

/* `prefix` is an SD_* string ("<3>"); `line` has no newline. */
static inline void log_emit(const char *prefix, const char *line) {
        if (log_stderr_is_journal())
                fprintf(stderr, "%s%s\n", prefix, line);
        else
                fprintf(stderr, "%s\n", line);
}

/* One formatted line (cut at 1023 bytes) at `priority`, an SD_* string. */
__attribute__((format(printf, 2, 3))) static inline void log_line(const char *priority, const char *fmt, ...) {
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        log_emit(priority, line);
}

/* A failure's line, in the spirit of systemd's log_error_errno(): `fmt`
 * is formatted with errno set to -r, so its `%m` (glibc's printf
 * extension) writes the error's text, strerror(-r), where the line wants
 * it: "cannot create %s: %m". Otherwise as log_line(). Returns r, which
 * must be negative (a -errno), so a caller that fails because of it writes
 *
 *     return log_line_errno(SD_ERR, r, "cannot listen on %s: %m", path);
 *
 * errno is as it was on return. */
__attribute__((format(printf, 3, 4))) static inline int log_line_errno(const char *priority, int r, const char *fmt,
                                                                       ...) {
        int saved_errno = errno;
        char line[1024];
        va_list ap;

        assert(r < 0);
        errno = -r;
        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        log_emit(priority, line);
        errno = saved_errno;
        return r;
}

/* One line at a syslog priority (LOG_ERR...); out of range logs as info. */
static inline void log_line_priority(int priority, const char *message) {
        static const char *const prefixes[] = { SD_EMERG, SD_ALERT, SD_CRIT, SD_ERR,
                                                SD_WARNING, SD_NOTICE, SD_INFO, SD_DEBUG };
        log_emit(prefixes[priority >= 0 && priority < 8 ? priority : 6], message);
}
