/* SPDX-License-Identifier: MIT */
/*
 * The stub layer of `ztna doctor`: does ztnad's DNS stub listen where
 * ztnad says, and answer the followed name with the store's address
 * over UDP and TCP. Its DNS client (a query, one bounded exchange, an
 * "ADDRESS:PORT" parsed) is also the agreement layer's and resolved's.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/doctor-internal.h"
#include "common/time-util.h"
#include "macro.h"

#define STUB_TIMEOUT_MS 1000 /* per query: the whole run stays bounded */

/* "127.0.0.53:53" / "[::1]:15353" into a socket address. */
int doctor_parse_addr_port(const char *text, struct sockaddr_storage *ss, socklen_t *len) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon = strrchr(text, ':');
        unsigned long port;
        char *end;

        if (!colon || (size_t) (colon - text) >= sizeof host)
                return -EINVAL;
        memcpy(host, text, (size_t) (colon - text));
        host[colon - text] = '\0';
        port = strtoul(colon + 1, &end, 10);
        if (*end || port == 0 || port > 65535)
                return -EINVAL;
        memset(ss, 0, sizeof *ss);
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
                host[strlen(host) - 1] = '\0';
                if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
                        return -EINVAL;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                *len = sizeof *in6;
        } else {
                struct sockaddr_in *in = (struct sockaddr_in *) ss;
                if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
                        return -EINVAL;
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
                *len = sizeof *in;
        }
        return 0;
}

/* A query for NAME (A, or AAAA for an IPv6 answer) into buf; its length. */
size_t doctor_dns_query(const char *name, uint16_t qtype, uint16_t id, uint8_t *buf, size_t size) {
        size_t n = 12, l;
        const char *p = name;

        memset(buf, 0, 12);
        buf[0] = (uint8_t) (id >> 8);
        buf[1] = (uint8_t) id;
        buf[2] = 0x01; /* RD */
        buf[5] = 1;    /* one question */
        while (*p) {
                const char *dot = strchr(p, '.');
                l = dot ? (size_t) (dot - p) : strlen(p);
                if (l == 0 || l > 63 || n + l + 6 > size)
                        return 0;
                buf[n++] = (uint8_t) l;
                memcpy(buf + n, p, l);
                n += l;
                p += l + (dot ? 1 : 0);
                if (!dot)
                        break;
        }
        buf[n++] = 0;
        buf[n++] = (uint8_t) (qtype >> 8);
        buf[n++] = (uint8_t) qtype;
        buf[n++] = 0;
        buf[n++] = 1; /* IN */
        return n;
}

/* One exchange over UDP or TCP with a deadline; the reply's length, or
 * -errno (-ETIMEDOUT when nothing came back in time). */
ssize_t doctor_dns_exchange(const struct sockaddr_storage *ss, socklen_t sl, bool tcp, const uint8_t *q,
                            size_t qlen, uint8_t *buf, size_t size, uint64_t timeout_usec) {
        _cleanup_close_ int fd = socket(ss->ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        uint64_t deadline = clock_now_usec(CLOCK_MONOTONIC) + timeout_usec;
        size_t got = 0, need = 0;
        uint8_t frame[2];

        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) ss, sl) < 0 && errno != EINPROGRESS)
                return -errno;
        for (bool sent = false;;) {
                uint64_t now = clock_now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = fd, .events = sent ? POLLIN : POLLOUT };
                if (now >= deadline)
                        return -ETIMEDOUT;
                int r = poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                if (!sent) {
                        ssize_t k;
                        if (tcp) {
                                uint8_t out[2 + 512];
                                out[0] = (uint8_t) (qlen >> 8);
                                out[1] = (uint8_t) qlen;
                                memcpy(out + 2, q, qlen);
                                k = send(fd, out, qlen + 2, MSG_NOSIGNAL);
                        } else
                                k = send(fd, q, qlen, 0);
                        if (k < 0)
                                return -errno;
                        sent = true;
                        continue;
                }
                if (!tcp) {
                        ssize_t k = recv(fd, buf, size, 0);
                        if (k < 0 && errno != EAGAIN)
                                return -errno;
                        if (k >= 0)
                                return k;
                        continue;
                }
                ssize_t k = need ? recv(fd, buf + got, need - got, 0) : recv(fd, frame + got, 2 - got, 0);
                if (k == 0)
                        return -ECONNRESET;
                if (k < 0) {
                        if (errno == EAGAIN)
                                continue;
                        return -errno;
                }
                got += (size_t) k;
                if (!need && got == 2) {
                        need = (size_t) (frame[0] << 8 | frame[1]);
                        got = 0;
                        if (need == 0 || need > size)
                                return -EBADMSG;
                } else if (need && got == need)
                        return (ssize_t) got;
        }
}

/* The port of the first "ADDRESS:PORT: error" in not_listening (53 when
 * there is none to read). */
static unsigned unbound_port(const json_t *unbound) {
        const char *e = json_string_value(json_array_get(unbound, 0)), *sep, *colon;
        char addr[80];

        if (!e || !(sep = strstr(e, ": ")) || (size_t) (sep - e) >= sizeof addr)
                return 53;
        memcpy(addr, e, (size_t) (sep - e));
        addr[sep - e] = '\0';
        colon = strrchr(addr, ':');
        unsigned long port = colon ? strtoul(colon + 1, NULL, 10) : 0;
        return port > 0 && port <= 65535 ? (unsigned) port : 53;
}

void doctor_check_stub(Doctor *d) {
        const json_t *dns, *listening, *unbound;
        const char *where;
        struct sockaddr_storage ss;
        socklen_t sl;
        uint8_t want[16], q[512], reply[4096];
        size_t alen, qlen;
        uint16_t qtype;
        Finding *f;

        if (d->cfg && !d->cfg->stub) {
                doctor_add(d, LAYER_STUB, LEVEL_OK, "stub-off",
                           "off (stub = no): programs that skip NSS are not served");
                return;
        }
        dns = d->status ? json_object_get(d->status, "dns") : NULL;
        if (!json_is_object(dns)) {
                doctor_add(d, LAYER_STUB, LEVEL_SKIP, "stub-unknown", "where the stub listens is unknown: ztnad does not answer");
                return;
        }
        listening = json_object_get(dns, "listening");
        unbound = json_object_get(dns, "not_listening");
        if (json_array_size(listening) == 0) {
                char *text = json_dumps(unbound, JSON_COMPACT);
                f = doctor_add(d, LAYER_STUB, LEVEL_FAIL, "stub-not-listening", "bound nowhere: %s",
                               text ? text : "no address");
                free(text);
                finding_why(f, "another program holds the stub's addresses, so programs that skip NSS (dig, static "
                               "binaries) get no answer from ztnad; it tries again by itself");
                finding_fix(f, "ss -lnp 'sport = :%u' (find the program on the port, stop it or move ztnad's listen "
                               "in ztnad.conf), then: systemctl reload ztnad",
                            unbound_port(unbound));
                return;
        }
        where = json_string_value(json_array_get(listening, 0));
        if (json_array_size(unbound) > 0) {
                char *text = json_dumps(unbound, JSON_COMPACT);
                f = doctor_add(d, LAYER_STUB, LEVEL_WARN, "stub-partly", "not listening on %s", text ? text : "?");
                free(text);
                finding_why(f, "some of the configured addresses are held by another program; the others serve");
                finding_fix(f, "ss -lnp (find the program), then: systemctl reload ztnad");
        }
        if (!where || doctor_parse_addr_port(where, &ss, &sl) < 0) {
                doctor_add(d, LAYER_STUB, LEVEL_SKIP, "stub-unknown", "cannot read the stub's address '%s'",
                           where ?: "?");
                return;
        }
        if (!d->name[0] || !d->name_answer[0]) {
                doctor_add(d, LAYER_STUB, LEVEL_OK, "stub-listening", "listening on %s (no tailnet name to ask)",
                           where);
                return;
        }
        if (inet_pton(AF_INET, d->name_answer, want) == 1)
                qtype = 1, alen = 4;
        else if (inet_pton(AF_INET6, d->name_answer, want) == 1)
                qtype = 28, alen = 16;
        else
                return;
        for (int tcp = 0; tcp <= 1; tcp++) {
                uint16_t id = (uint16_t) (clock_now_usec(CLOCK_MONOTONIC) ^ (uint64_t) getpid() ^ (unsigned) tcp);
                uint64_t t0 = clock_now_usec(CLOCK_MONOTONIC);
                ssize_t n;
                int rcode;

                qlen = doctor_dns_query(d->name, qtype, id, q, sizeof q);
                if (!qlen)
                        return;
                n = doctor_dns_exchange(&ss, sl, tcp, q, qlen, reply, sizeof reply, STUB_TIMEOUT_MS * USEC_PER_MSEC);
                if (n < 0) {
                        f = doctor_add(d, LAYER_STUB, LEVEL_FAIL, "stub-silent", "%s over %s: %s", where,
                                       tcp ? "TCP" : "UDP",
                                       n == -ETIMEDOUT ? "no answer within 1 s" : strerror((int) -n));
                        finding_why(f, "the stub does not answer at the address ztnad says it listens on; programs "
                                       "that skip NSS get no tailnet answers");
                        finding_fix(f, "systemctl restart ztnad "
                                       "(and journalctl -u ztnad for why it stopped answering)");
                        return;
                }
                if (!doctor_dns_answer_has(reply, (size_t) n, id, qtype, want, alen, &rcode)) {
                        f = doctor_add(d, LAYER_STUB, LEVEL_FAIL, "stub-wrong-answer",
                                       "%s over %s: %s is not answered with %s (rcode %d)", where, tcp ? "TCP" : "UDP",
                                       d->name, d->name_answer, rcode);
                        finding_why(f, "what answers at the stub's address is not ztnad's stub, "
                                       "or it serves another map");
                        finding_fix(f, "ss -lnp (who owns %s), then: systemctl restart ztnad", where);
                        return;
                }
                if (tcp)
                        doctor_add(d, LAYER_STUB, LEVEL_OK, "stub-answers",
                                   "%s answers %s -> %s over UDP and TCP (%.1f ms)",
                                   where, d->name, d->name_answer,
                                   (double) (clock_now_usec(CLOCK_MONOTONIC) - t0) / 1000.0);
        }
}
