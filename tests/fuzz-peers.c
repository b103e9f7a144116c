/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as a peers document. Whatever passes
 * validation is handed to peer_map_to_shm() and read through, as the writer
 * would, so a map that lies about its own arrays shows up under ASan.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../ztnad/peers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        PeerMap *m = NULL;
        PeersError err;
        ShmMap s;
        volatile size_t sink = 0;

        if (peers_parse((const char *) data, size, "fuzz", &m, &err) < 0)
                return 0;

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
        (void) sink;
        peer_map_free(m);
        return 0;
}
