/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Untrusted text (a configuration value, a string from a peers document)
 * shown in a message: in double quotes, '"' and '\' escaped, bytes outside
 * printable ASCII as \xHH, so a value cannot forge a second log line or
 * reach a terminal as control bytes; cut with "..." so a megabyte string
 * does not become a megabyte message. The one quoting rule of the
 * configuration reader and the peers reader. Header-only, like log.h.
 */

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* A quoted value needs at least this much room: one escape, "...", the
 * two quotes and the NUL. */
#define QUOTE_SIZE_MIN 10u

/* `s` (`len` bytes) quoted into `buf` (`size` >= QUOTE_SIZE_MIN); returns buf. */
static inline const char *quote_text(char *buf, size_t size, const char *s, size_t len) {
        size_t o = 0;

        assert(size >= QUOTE_SIZE_MIN);
        buf[o++] = '"';
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                /* Room for the longest escape, then "...", '"' and NUL. */
                if (o + 4 + 5 > size) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char) c;
                } else if (c >= 0x20 && c < 0x7f)
                        buf[o++] = (char) c;
                else
                        o += (size_t) snprintf(buf + o, 5, "\\x%02x", c);
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}
