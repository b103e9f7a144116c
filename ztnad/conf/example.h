/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* examples/tailnet.json, built in by tests/tools/embed.sh: what ztnad publishes
 * when it is given no peers file, so a first run resolves something. */
extern const unsigned char ztna_example_tailnet[];
extern const size_t ztna_example_tailnet_len;
