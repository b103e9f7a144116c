/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The threat blocklist: domain names read from one or more files, matched
 * by suffix (blocking "bad.example" blocks "x.bad.example" too). A name on
 * it is answered NXDOMAIN with Extended DNS Error 15 "Blocked" by the stub.
 *
 * Files hold one entry a line, in either of the two common forms:
 *
 *     # a comment (also after an entry)
 *     bad.example
 *     *.worse.example          (the same as worse.example: suffixes match anyway)
 *     0.0.0.0 ads.example ads2.example     (hosts-file style: an address, then names)
 *
 * Names are matched case-insensitively and kept lower-case without the
 * final dot. In hosts-file lines single-label names ("localhost",
 * "broadcasthost", "ip6-loopback") are host aliases, not domains, and are
 * skipped, as are names that are IPv4 addresses. The root (it would block
 * everything) and localhost names (RFC 6761 6.3) are never accepted. A line that is not an entry is
 * skipped and counted, so one typo in a downloaded list does not drop the
 * rest; blocklist_problem() names the first one for the log.
 *
 * A Blocklist is immutable once loaded: readers on any thread may use it
 * without locks. To reload, load a new one and swap it in (the stub does it
 * with RCU: stub_set_blocklist()); blocklist_changed() says whether any of
 * the files changed since the set was loaded.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/dns-wire.h"

#define BLOCKLIST_FILE_MAX ((size_t) 256 << 20) /* bytes per file */
#define BLOCKLIST_NAMES_MAX ((size_t) 8 << 20)  /* names in all */
#define BLOCKLIST_LINE_MAX 4096u
#define BLOCKLIST_PROBLEM_MAX 512u

typedef struct Blocklist Blocklist;

/* Reads every file into a new set. Returns 0, or a negative errno when a
 * file cannot be opened or read, is not a regular file, is too large, or the
 * lists together hold more than BLOCKLIST_NAMES_MAX names; then `err` (when
 * not NULL) says which file and why, and *ret is untouched. n_paths may be
 * 0: an empty set. */
int blocklist_load(const char *const *paths, size_t n_paths, Blocklist **ret, char *err, size_t errlen);
Blocklist *blocklist_free(Blocklist *bl); /* NULL-safe */

/* Whether `name` or any domain above it is on the list. NULL matches nothing. */
bool blocklist_match(const Blocklist *bl, const DnsName *name);

/* The distinct names on the list, sorted, lower-case, without the final
 * dot: blocklist_name() writes the i-th into buf and returns its length,
 * or -ERANGE past the end, -ENOBUFS when buf is too small
 * (DNS_NAME_TEXT_MAX always fits). */
size_t blocklist_size(const Blocklist *bl);
int blocklist_name(const Blocklist *bl, size_t i, char *buf, size_t size);

/* Lines skipped (neither an entry, a comment nor blank), and the first of
 * them as "path:line: reason" ("" when none). */
size_t blocklist_skipped(const Blocklist *bl);
const char *blocklist_problem(const Blocklist *bl);

/* Whether a file changed (inode, size or modification time, appeared or
 * vanished) since the set was loaded: time to load a new one. */
bool blocklist_changed(const Blocklist *bl);
