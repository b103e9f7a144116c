/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as a peers document. Whatever passes
 * validation is handed to peer_map_to_shm() and read through, as the writer
 * would, so a map that lies about its own arrays shows up under ASan.
 *
 * The same bytes are parsed again under ztnad.conf's default pins (and
 * corp.example, the domain of a seed): a policy only ever takes away, so
 * whatever it lets through must pass without it too, and must keep to it.
 *
 * And by jansson, a second reading of the JSON: whatever ztna's reader
 * accepts must be JSON to jansson too, with the same peers under the same
 * names (ztna's reader is stricter in places, never looser).
 */

#include <arpa/inet.h>
#include <jansson.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "sources/peers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t read_map(const PeerMap *m) {
        volatile size_t sink = 0;
        ShmMap s;

        peer_map_to_shm(m, &s);
        sink += strlen(s.domain);
        for (size_t i = 0; i < s.n_peers; i++) {
                const ShmPeer *p = &s.peers[i];

                sink += strlen(p->name) + p->ttl + p->online;
                for (size_t j = 0; j < p->n_v4; j++)
                        sink += p->v4[j].s_addr;
                for (size_t j = 0; j < p->n_v6; j++)
                        sink += p->v6[j].s6_addr[15];
        }
        for (size_t i = 0; i < s.n_ranges; i++)
                sink += s.ranges[i].prefixlen;
        return sink;
}

/* Whether `bytes` lies in the prefix `p`. */
static bool inside(const ShmPrefix *p, int family, const uint8_t *bytes) {
        const uint8_t *pb = family == AF_INET ? (const uint8_t *) &p->addr.in : p->addr.in6.s6_addr;

        if (p->family != family)
                return false;
        for (unsigned bit = 0; bit < p->prefixlen; bit++)
                if ((pb[bit / 8] ^ bytes[bit / 8]) & (0x80u >> (bit % 8)))
                        return false;
        return true;
}

static bool allowed(const PeersPolicy *policy, int family, const uint8_t *bytes, unsigned prefixlen) {
        for (size_t i = 0; i < policy->n_allowed; i++)
                if (prefixlen >= policy->allowed[i].prefixlen && inside(&policy->allowed[i], family, bytes))
                        return true;
        return false;
}

static void check_policy(const PeersPolicy *policy, const PeerMap *m) {
        bool found = false;
        ShmMap s;

        peer_map_to_shm(m, &s);
        for (size_t i = 0; i < policy->n_domains; i++)
                found |= strcasecmp(s.domain, policy->domains[i]) == 0;
        if (!found)
                abort();
        for (size_t i = 0; i < s.n_peers; i++) {
                for (size_t j = 0; j < s.peers[i].n_v4; j++)
                        if (!allowed(policy, AF_INET, (const uint8_t *) &s.peers[i].v4[j], 32))
                                abort();
                for (size_t j = 0; j < s.peers[i].n_v6; j++)
                        if (!allowed(policy, AF_INET6, s.peers[i].v6[j].s6_addr, 128))
                                abort();
        }
        for (size_t i = 0; i < s.n_ranges; i++) {
                const ShmPrefix *r = &s.ranges[i];

                if (!allowed(policy, r->family,
                             r->family == AF_INET ? (const uint8_t *) &r->addr.in : r->addr.in6.s6_addr,
                             r->prefixlen))
                        abort();
        }
}

/* jansson reads the same document and the same peers from it. */
static void check_jansson(const uint8_t *data, size_t size, const PeerMap *m) {
        json_error_t jerr;
        json_t *root = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &jerr), *peers;
        ShmMap s;

        if (!root || !json_is_object(root))
                abort();
        peer_map_to_shm(m, &s);
        peers = json_object_get(root, "peers");
        if (!json_is_array(peers) || json_array_size(peers) != s.n_peers)
                abort();
        for (size_t i = 0; i < s.n_peers; i++) {
                const char *name = json_string_value(json_object_get(json_array_get(peers, i), "name"));

                if (!name || strcmp(name, s.peers[i].name) != 0)
                        abort();
        }
        json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const domains[] = { "yourorg.zt.net", "corp.example" };
        static ShmPrefix space[5];
        static PeersPolicy policy;
        PeerMap *m = NULL, *pinned = NULL;
        PeersError err;
        int r, rp;

        if (policy.n_allowed == 0) {
                static const struct {
                        int family;
                        const char *text;
                        unsigned len;
                } defaults[] = {
                        { AF_INET, "100.64.0.0", 10 }, { AF_INET, "10.0.0.0", 8 },   { AF_INET, "172.16.0.0", 12 },
                        { AF_INET, "192.168.0.0", 16 }, { AF_INET6, "fc00::", 7 },
                };

                for (size_t i = 0; i < 5; i++) {
                        space[i] = (ShmPrefix) { .family = defaults[i].family, .prefixlen = defaults[i].len };
                        if (inet_pton(defaults[i].family, defaults[i].text, &space[i].addr) != 1)
                                abort();
                }
                policy = (PeersPolicy) { .domains = domains, .n_domains = 2, .allowed = space, .n_allowed = 5 };
        }

        r = peers_parse((const char *) data, size, "fuzz", &m, &err);
        rp = peers_parse_policy((const char *) data, size, "fuzz", &policy, &pinned, &err);
        if (rp == 0 && r != 0)
                abort();
        if (r == 0) {
                (void) read_map(m);
                check_jansson(data, size, m);
        }
        if (rp == 0) {
                (void) read_map(pinned);
                check_policy(&policy, pinned);
        }
        peer_map_free(m);
        peer_map_free(pinned);
        return 0;
}
