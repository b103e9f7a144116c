/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Whether a name is a public suffix ("com", "co.uk", "github.io"): a name
 * under which anyone may register, so that no tailnet can own it. Asked of
 * the tailnet domain in ztnad.conf and in every peers document, because a
 * map for "co.uk" would answer, for every process on the machine, names
 * that belong to others.
 *
 * The list is Debian's publicsuffix package (/usr/share/publicsuffix), read
 * through libpsl, or the copy built into libpsl when that one is newer. It
 * is loaded on first use and kept.
 */

#include <stddef.h>

/* `name` (`len` bytes, any case, no final dot): 1 when it is a public
 * suffix (ICANN or private section of the list, wildcards and exceptions
 * applied), 0 when not, -ENOMEM or -ENOENT when no list could be loaded;
 * then the caller refuses the name: a name not known to be safe is not. */
int public_suffix_check(const char *name, size_t len);
