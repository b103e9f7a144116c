/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The plaintext fallback servers from a file in resolv.conf(5) format:
 * every "nameserver ADDRESS" line (IPv4, IPv6, IPv6 with %interface), in
 * order, port 53, duplicates once. Everything else in the file (search,
 * options, comments starting with '#' or ';') is ignored, and so is a line
 * glibc would not read either. Addresses in the exclusion list (ztnad's own
 * listen addresses, port included) are left out, so the fallback can never
 * be ztnad itself. When nothing is left, `defaults` is set and the caller
 * uses its own (ztnad: config_plaintext_fallback_defaults()).
 *
 * Library code: never logs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define RESOLVCONF_PATH "/etc/resolv.conf"
#define RESOLVCONF_SERVERS_MAX 16
#define RESOLVCONF_FILE_MAX (64u * 1024u)

typedef struct ResolvConfServers {
        struct sockaddr_storage addrs[RESOLVCONF_SERVERS_MAX];
        size_t n;
        size_t n_excluded;  /* nameserver lines left out as ours */
        bool defaults;      /* none found (n is 0): the caller's defaults apply */
} ResolvConfServers;

/* Always succeeds on text (returns 0). */
int resolvconf_parse(const char *text, size_t len, const struct sockaddr_storage *exclude, size_t n_exclude,
                     ResolvConfServers *ret);
/* A missing file: no servers, `defaults` set. Returns 0, or -errno when the file
 * exists but cannot be read (or is larger than RESOLVCONF_FILE_MAX: -EFBIG);
 * `ret` is not written then. */
int resolvconf_load(const char *path, const struct sockaddr_storage *exclude, size_t n_exclude,
                    ResolvConfServers *ret);
/* Whether two socket addresses are the same family, address, port (and
 * IPv6 scope). */
bool resolvconf_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
