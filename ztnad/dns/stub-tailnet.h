/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The stub's answers for tailnet names, from the record store: A and AAAA
 * for a peer's short name and FQDN, PTR for its addresses, A and AAAA for
 * ANY, NOERROR with no records for other types (and for the tailnet domain
 * itself), NXDOMAIN for unknown names under the domain and unknown
 * addresses in the tailnet ranges. All authoritative (AA), no SOA. From
 * the persisted copy of the store (stale, docs/store-fallback.md) a peer
 * is answered with a TTL of at most SHM_STALE_TTL_MAX and an unknown name
 * is STUB_TAILNET_UNSURE rather than NXDOMAIN. Names
 * under the domain that the store's text lookup cannot take (escapes,
 * length) are still the tailnet's: NXDOMAIN, never forwarded.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/dns-wire.h"
#include "shm.h"

typedef enum StubTailnet {
        STUB_TAILNET_NO,     /* not the tailnet's (or no readable store): go on */
        STUB_TAILNET_ANSWER, /* buf holds the answer */
        STUB_TAILNET_DOWN,   /* the tailnet's, but the store says down */
        STUB_TAILNET_ERROR,  /* the tailnet's, but no consistent read or no room */
        STUB_TAILNET_NO_STORE, /* no readable store nor copy: nothing known */
        STUB_TAILNET_UNSURE, /* the tailnet's, not in the persisted copy (stale):
                              * the peer may exist */
} StubTailnet;

/* The answer to `q` (parsed from `query`) into buf: the query's ID and
 * question bytes, the records; the stub then fits it to the client with
 * dns_wire_adapt_answer(). `reader` may be NULL (then STUB_TAILNET_NO_STORE
 * for class IN). */
StubTailnet stub_tailnet_answer(ShmReader *reader, const uint8_t *query, const DnsMessage *q, uint8_t *buf,
                                size_t size, size_t *ret_len);

/* "4.3.2.1.in-addr.arpa" and the 32-nibble ip6.arpa name of one host
 * address (lower-case hex, as RFC 3596 2.5 writes it): 0 with the family
 * and the address (4 or 16 bytes), or -EINVAL for any other name. */
int stub_reverse_address(const DnsName *n, int *ret_family, uint8_t addr[16]);
