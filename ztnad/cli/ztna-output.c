/* SPDX-License-Identifier: MIT */
/*
 * ztna: what it prints. Every command's answer is one JSON value, printed
 * as one line of JSON (--json) or as indented text; a failure of ztna's
 * own is printed shaped like ztnad's refusals. Calls nothing else of ztna.
 */

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ztna-internal.h"
#include "common/time-util.h"

/* One line of JSON on stdout: ", " and ": " between items, as before. */
void ztna_print_json(const json_t *j) {
        char *text = json_dumps(j, JSON_ENCODE_ANY);

        if (!text) {
                fprintf(stderr, "ztna: out of memory\n");
                return;
        }
        puts(text);
        free(text);
}

void ztna_format_time(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, size, "never");
}

uint64_t ztna_age_sec(uint64_t then, uint64_t now) {
        /* The wall clock may step back; an age is never negative. */
        return now > then ? (now - then) / USEC_PER_SEC : 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);

        return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "last_success_usec" -> "last success". */
static void key_label(const char *key, char *buf, size_t size) {
        size_t n = strlen(key);

        if (has_suffix(key, "_usec"))
                n -= 5;
        if (n >= size)
                n = size - 1;
        for (size_t i = 0; i < n; i++)
                buf[i] = key[i] == '_' ? ' ' : key[i];
        buf[n] = '\0';
}

static void print_scalar(const char *key, const json_t *v) {
        char buf[64];

        if (key && has_suffix(key, "_usec") && (json_is_integer(v) || json_is_null(v))) {
                /* A wall-clock time in µs since the epoch (the protocol's
                 * convention), shown with its age. */
                uint64_t t = json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;

                ztna_format_time(t, buf, sizeof buf);
                if (t)
                        printf("%s (%" PRIu64 " s ago)", buf, ztna_age_sec(t, clock_now_usec(CLOCK_REALTIME)));
                else
                        fputs(buf, stdout);
                return;
        }
        if (key && has_suffix(key, "_in") && json_is_number(v)) {
                /* A delay in seconds ("next_attempt_in"). */
                printf("%.1f s", json_number_value(v));
                return;
        }
        switch (json_typeof(v)) {
        case JSON_STRING:
                fputs(json_string_value(v), stdout);
                break;
        case JSON_INTEGER:
                printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
                break;
        case JSON_REAL:
                printf("%g", json_real_value(v));
                break;
        case JSON_TRUE:
                fputs("yes", stdout);
                break;
        case JSON_FALSE:
                fputs("no", stdout);
                break;
        case JSON_NULL:
                fputs("none", stdout);
                break;
        default: {
                char *text = json_dumps(v, JSON_ENCODE_ANY);

                fputs(text ? text : "?", stdout);
                free(text);
        }
        }
}

static bool is_scalar_array(const json_t *v) {
        size_t i;
        json_t *item;

        json_array_foreach(v, i, item)
                if (json_is_object(item) || json_is_array(item))
                        return false;
        return true;
}

/* Starts a line at `indent`, or, for the first line of a list item, with
 * "- " just before it. */
static void line_start(int indent, bool *dash) {
        if (*dash) {
                printf("%*s- ", indent - 2, "");
                *dash = false;
        } else
                printf("%*s", indent, "");
}

static bool is_nested(const json_t *v) {
        return json_is_object(v) || (json_is_array(v) && !is_scalar_array(v));
}

/* Whatever ztnad's status holds, as indented "key: value" lines; a list of
 * objects (the sources) as "- " items. */
void ztna_print_object_text(const json_t *obj, int indent, bool dash) {
        const char *key;
        json_t *v;
        int width = 0;

        json_object_foreach((json_t *) obj, key, v) {
                char label[64];

                key_label(key, label, sizeof label);
                if (!is_nested(v) && (int) strlen(label) > width)
                        width = (int) strlen(label);
        }
        json_object_foreach((json_t *) obj, key, v) {
                char label[64];

                key_label(key, label, sizeof label);
                line_start(indent, &dash);
                if (json_is_object(v)) {
                        printf("%s:\n", label);
                        ztna_print_object_text(v, indent + 2, false);
                } else if (json_is_array(v) && !is_scalar_array(v)) {
                        size_t i;
                        json_t *item;

                        printf("%s:\n", label);
                        json_array_foreach(v, i, item) {
                                if (json_is_object(item))
                                        ztna_print_object_text(item, indent + 4, true);
                                else {
                                        printf("%*s- ", indent + 2, "");
                                        print_scalar(NULL, item);
                                        putchar('\n');
                                }
                        }
                } else {
                        printf("%s:%*s ", label, width - (int) strlen(label), "");
                        if (json_is_array(v)) {
                                size_t i;
                                json_t *item;

                                json_array_foreach(v, i, item) {
                                        fputs(i ? " " : "", stdout);
                                        print_scalar(NULL, item);
                                }
                        } else
                                print_scalar(key, v);
                        putchar('\n');
                }
        }
}

/* A failure of ztna's own, not a reply from ztnad: the message on stderr
 * and, with --json, an object shaped like a refusal
 * ({"ok": false, "code": CODE, "error": MESSAGE}), so that a script reads
 * exactly one JSON object whatever happened. Returns `exit_code`. */
__attribute__((format(printf, 4, 5)))
int ztna_failed(const Args *a, int exit_code, const char *code, const char *fmt, ...) {
        char msg[ERROR_MAX + 128];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "ztna: %s\n", msg);
        if (a->json) {
                json_t *j = json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "error", msg);

                if (j)
                        ztna_print_json(j);
                else
                        /* Out of memory: still one object, made by hand. */
                        printf("{\"ok\": false, \"code\": \"%s\", \"error\": \"out of memory\"}\n", code);
                json_decref(j);
        }
        return exit_code;
}
