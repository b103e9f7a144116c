/* SPDX-License-Identifier: MIT */
/*
 * The DNS answers `ztna doctor` reads: the stub's and the system resolver's
 * replies to its query for the followed name. Whatever answers at the stub's address may send
 * anything; every offset is checked against the length (tests/fuzz/fuzz-doctor-dns.c).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cli/doctor.h"

/* Skips a (possibly compressed) name at *off; false when it runs out. */
static bool skip_name(const uint8_t *m, size_t len, size_t *off) {
        for (size_t guard = 0; *off < len && guard < 128; guard++) {
                uint8_t c = m[*off];
                if (c == 0) {
                        (*off)++;
                        return true;
                }
                if ((c & 0xc0) == 0xc0) {
                        *off += 2;
                        return *off <= len;
                }
                *off += 1u + c;
        }
        return false;
}

/* The answer records of a reply to ID: with `want`, whether one of
 * `qtype` holds it; without, the first of `qtype` with alen bytes of data,
 * copied to `out`. */
static bool walk_answers(const uint8_t *m, size_t len, uint16_t id, uint16_t qtype, size_t alen, const uint8_t *want,
                         uint8_t *out, int *rcode) {
        size_t off = 12;
        unsigned an;

        *rcode = -1;
        if (len < 12 || m[0] != (uint8_t) (id >> 8) || m[1] != (uint8_t) id || !(m[2] & 0x80))
                return false;
        *rcode = m[3] & 0x0f;
        an = (unsigned) m[6] << 8 | m[7];
        if (*rcode != 0 || m[4] != 0 || m[5] != 1 || !skip_name(m, len, &off) || (off += 4) > len)
                return false;
        for (unsigned i = 0; i < an; i++) {
                uint16_t type, rdlen;
                if (!skip_name(m, len, &off) || off + 10 > len)
                        return false;
                type = (uint16_t) (m[off] << 8 | m[off + 1]);
                rdlen = (uint16_t) (m[off + 8] << 8 | m[off + 9]);
                off += 10;
                if (off + rdlen > len)
                        return false;
                if (type == qtype && rdlen == alen && (!want || memcmp(m + off, want, alen) == 0)) {
                        if (out)
                                memcpy(out, m + off, alen);
                        return true;
                }
                off += rdlen;
        }
        return false;
}

bool doctor_dns_answer_has(const uint8_t *m, size_t len, uint16_t id, uint16_t qtype, const uint8_t *want,
                           size_t alen, int *rcode) {
        return walk_answers(m, len, id, qtype, alen, want, NULL, rcode);
}

bool doctor_dns_first_address(const uint8_t *m, size_t len, uint16_t id, uint16_t qtype, uint8_t *out,
                              int *rcode) {
        if (qtype != 1 && qtype != 28) {
                *rcode = -1;
                return false;
        }
        return walk_answers(m, len, id, qtype, qtype == 1 ? 4 : 16, NULL, out, rcode);
}
