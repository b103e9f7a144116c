/* SPDX-License-Identifier: MIT */
/*
 * `ztna doctor`: the findings every layer adds (doctor_add, then
 * finding_why and finding_fix) and the small helpers the layers share.
 * It calls no layer and not the driver (doctor.c), so the layers and the
 * driver both depend on it and never on each other through it.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/doctor-internal.h"
#include "common/read-file.h"

/* ---- findings ---- */

Finding *doctor_add(Doctor *d, LayerId l, Level level, const char *id, const char *fmt, ...) {
        static Finding spare;
        Layer *layer = &d->layers[l];
        Finding *f;
        va_list ap;

        if (layer->n >= FINDINGS_MAX) {
                spare = (Finding) {};
                return &spare;
        }
        f = &layer->findings[layer->n++];
        *f = (Finding) { .level = level };
        snprintf(f->id, sizeof f->id, "%s", id);
        va_start(ap, fmt);
        vsnprintf(f->measured, sizeof f->measured, fmt, ap);
        va_end(ap);
        return f;
}

void finding_why(Finding *f, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(f->why, sizeof f->why, fmt, ap);
        va_end(ap);
}

void finding_fix(Finding *f, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(f->fix, sizeof f->fix, fmt, ap);
        va_end(ap);
}

/* "systemctl VERB ztnad": the unit is what runs ztnad on an installed
 * system (tests stand a shell function in for systemctl). */
void doctor_restart_command(const Doctor *d, const char *verb, char *buf, size_t size) {
        (void) d;
        snprintf(buf, size, "systemctl %s ztnad", verb);
}

bool doctor_daemon_reachable(const Doctor *d) {
        return d->status != NULL;
}

const Finding *doctor_find_finding(const Doctor *d, LayerId l, const char *id) {
        for (size_t i = 0; i < d->layers[l].n; i++)
                if (strcmp(d->layers[l].findings[i].id, id) == 0)
                        return &d->layers[l].findings[i];
        return NULL;
}

/* ---- helpers the layers share ---- */

/* A bug fixed by the shared reader: a file over NSS_FILE_MAX was cut at
 * the cap and the cut text checked; it is now refused (-EFBIG). */
int doctor_read_file(const char *path, char **ret, size_t *ret_len) {
        return read_regular_file(path, NSS_FILE_MAX, 0, ret, ret_len, NULL, NULL);
}

/* The next line of `data` from *i into `line` (cut to fit, no newline);
 * *i moves past it. */
void doctor_next_line(const char *data, size_t len, size_t *i, char *line, size_t size) {
        size_t j = 0;

        while (*i < len && data[*i] != '\n') {
                if (j + 1 < size)
                        line[j++] = data[*i];
                (*i)++;
        }
        (*i)++;
        line[j] = '\0';
}
