/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "siphash.h"

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND(v0, v1, v2, v3)            \
        do {                                \
                v0 += v1;                   \
                v1 = ROTL(v1, 13);          \
                v1 ^= v0;                   \
                v0 = ROTL(v0, 32);          \
                v2 += v3;                   \
                v3 = ROTL(v3, 16);          \
                v3 ^= v2;                   \
                v0 += v3;                   \
                v3 = ROTL(v3, 21);          \
                v3 ^= v0;                   \
                v2 += v1;                   \
                v1 = ROTL(v1, 17);          \
                v1 ^= v2;                   \
                v2 = ROTL(v2, 32);          \
        } while (0)

static inline uint8_t fold_byte(uint8_t c, int fold) {
        return (fold && c >= 'A' && c <= 'Z') ? (uint8_t) (c + 32) : c;
}

uint64_t siphash13(const uint64_t key[2], const void *data, size_t len, int fold) {
        const uint8_t *p = data;
        uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ key[0];
        uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ key[1];
        uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ key[0];
        uint64_t v3 = UINT64_C(0x7465646279746573) ^ key[1];
        uint64_t b = (uint64_t) len << 56;
        size_t i = 0;

        /* Message words are read little-endian, byte by byte: the input may
         * be unaligned and the result must not depend on the host. */
        for (; i + 8 <= len; i += 8) {
                uint64_t m = 0;
                if (!fold)
                        memcpy(&m, p + i, 8); /* little-endian hosts only, as the store */
                else
                        for (unsigned k = 0; k < 8; k++)
                                m |= (uint64_t) fold_byte(p[i + k], fold) << (8 * k);
                v3 ^= m;
                SIPROUND(v0, v1, v2, v3);
                v0 ^= m;
        }
        for (unsigned k = 0; i + k < len; k++)
                b |= (uint64_t) fold_byte(p[i + k], fold) << (8 * k);

        v3 ^= b;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= b;
        v2 ^= 0xff;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        return v0 ^ v1 ^ v2 ^ v3;
}
