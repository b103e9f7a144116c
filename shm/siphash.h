/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 (Aumasson & Bernstein, "SipHash: a fast short-input PRF"),
 * keyed with 128 bits. The store's indexes are keyed so that a peer list
 * chosen by somebody else cannot be arranged into long probe chains.
 * `fold` lower-cases ASCII letters while hashing, so names hash the same
 * whatever their case. */
uint64_t siphash13(const uint64_t key[2], const void *data, size_t len, int fold);
