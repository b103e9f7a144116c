/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as the stub's reply that `ztna doctor`
 * reads (ztnad/cli/doctor-dns.c). The first bytes choose the expected record
 * (A or AAAA, its data) and the query ID; the rest is the reply. Nothing may
 * be read outside it; a reply judged to hold the record must be a NOERROR
 * response to that ID that contains the record's data, and the first
 * address read from it must be one it is judged to hold.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/doctor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t want[16];
        size_t alen;
        uint16_t qtype, id;
        int rcode;

        if (size < 19)
                return 0;
        alen = data[0] & 1 ? 16 : 4;
        qtype = alen == 16 ? 28 : 1;
        memcpy(want, data + 1, 16);
        id = (uint16_t) (data[17] << 8 | data[18]);
        data += 19;
        size -= 19;
        /* A copy of exactly `size` bytes: ASan catches a read past it. */
        uint8_t *m = size ? malloc(size) : NULL;
        if (size && !m)
                return 0;
        if (size)
                memcpy(m, data, size);
        bool has = doctor_dns_answer_has(m, size, id, qtype, want, alen, &rcode);
        if (has) {
                bool found = false;
                if (rcode != 0 || size < 12 || m[0] != (uint8_t) (id >> 8) || m[1] != (uint8_t) id)
                        abort();
                for (size_t i = 12; i + alen <= size && !found; i++)
                        found = memcmp(m + i, want, alen) == 0;
                if (!found)
                        abort();
        }
        uint8_t first[16];
        if (doctor_dns_first_address(m, size, id, qtype, first, &rcode)) {
                bool found = false;
                if (rcode != 0 || size < 12 || m[0] != (uint8_t) (id >> 8) || m[1] != (uint8_t) id)
                        abort();
                for (size_t i = 12; i + alen <= size && !found; i++)
                        found = memcmp(m + i, first, alen) == 0;
                if (!found)
                        abort();
                /* the first address is one the reply holds */
                if (!doctor_dns_answer_has(m, size, id, qtype, first, alen, &rcode))
                        abort();
        }
        free(m);
        return 0;
}
