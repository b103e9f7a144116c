/* SPDX-License-Identifier: MIT */
/*
 * The DNS stub's listening sockets, the cold path: binding every listen
 * address (port 53, or the fallback port when it is taken), taking over
 * socket-activated sockets and those inherited from the stub before a
 * reload, and what the daemon reads of them (the addresses bound, those
 * that could not be, duplicates for the fd store).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/inet-util.h"
#include "macro.h"
#include "dns/stub-internal.h"

/* ---- addresses ---- */

static uint16_t address_port(const StubAddress *a) {
        if (a->sa.ss_family == AF_INET)
                return ntohs(((const struct sockaddr_in *) (const void *) &a->sa)->sin_port);
        return ntohs(((const struct sockaddr_in6 *) (const void *) &a->sa)->sin6_port);
}

static void address_set_port(StubAddress *a, uint16_t port) {
        if (a->sa.ss_family == AF_INET)
                ((struct sockaddr_in *) (void *) &a->sa)->sin_port = htons(port);
        else
                ((struct sockaddr_in6 *) (void *) &a->sa)->sin6_port = htons(port);
}

int stub_address_text(const StubAddress *a, char *buf, size_t size) {
        return sockaddr_host_port(&a->sa, buf, size);
}

size_t stub_n_addresses(const Stub *s) {
        return s ? s->n_addresses : 0;
}

const StubAddress *stub_address(const Stub *s, size_t i) {
        return s && i < s->n_addresses ? &s->addresses[i] : NULL;
}

/* ---- sockets ---- */

static int open_socket(const StubAddress *a, bool tcp, int *ret) {
        _cleanup_close_ int fd = -1;
        int one = 1;

        fd = socket(a->sa.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* One socket per worker on the same address; the kernel spreads
         * datagrams and connections over them. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
                return -errno;
        if (a->sa.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
                return -errno;
        if (tcp) {
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (bind(fd, (const struct sockaddr *) &a->sa, a->len) < 0)
                return -errno;
        if (tcp && listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

/* Binds UDP and TCP for worker 0 on `a`, or nothing. */
static int bind_pair(const StubAddress *a, int *ret_udp, int *ret_tcp) {
        _cleanup_close_ int udp = -1;
        int r = open_socket(a, false, &udp);
        if (r < 0)
                return r;
        r = open_socket(a, true, ret_tcp);
        if (r < 0)
                return r;
        *ret_udp = TAKE_FD(udp);
        return 0;
}

static bool address_equal(const StubAddress *a, const StubAddress *b) {
        return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
}

/* Takes `fd` into the Stub's table: it is the Stub's to close from here
 * on, whatever else fails. */
static int stub_own(Stub *s, int fd, bool tcp, const StubAddress *want) {
        StubSocket *t = realloc(s->socks, (s->n_socks + 1) * sizeof *t);
        if (!t) {
                safe_close(fd);
                return -ENOMEM;
        }
        s->socks = t;
        s->socks[s->n_socks++] = (StubSocket) { .fd = fd, .tcp = tcp, .want = *want };
        return 0;
}

static int worker_add_listener(Worker *w, int fd, bool tcp) {
        Listener *l = realloc(w->listeners, (w->n_listeners + 1) * sizeof *l);
        if (!l)
                return -ENOMEM;
        w->listeners = l;
        w->listeners[w->n_listeners++] = (Listener) { .fd = fd, .tcp = tcp, .worker = w };
        return 0;
}

/* Owned by the Stub and watched by worker k. */
static int stub_add_socket(Stub *s, unsigned k, int fd, bool tcp, const StubAddress *want) {
        int r = stub_own(s, fd, tcp, want);
        if (r < 0)
                return r;
        return worker_add_listener(&s->workers[k % s->n_workers], fd, tcp);
}

/* Binds UDP and TCP on `want`, or on the fallback port when port 53 is
 * taken; the address bound goes to *ret_bound. */
static int bind_want(Stub *s, const StubAddress *want, StubAddress *ret_bound, int *ret_udp, int *ret_tcp) {
        StubAddress a = *want;
        int r = bind_pair(&a, ret_udp, ret_tcp);

        if ((r == -EADDRINUSE || r == -EACCES) && address_port(&a) == STUB_DEFAULT_PORT) {
                if (s)
                        stub_log(s, LOG_WARNING, STUB_LOG_HIGH_PORT);
                address_set_port(&a, s ? s->config.fallback_port : STUB_FALLBACK_PORT);
                r = bind_pair(&a, ret_udp, ret_tcp);
        }
        if (r >= 0)
                *ret_bound = a;
        return r;
}

int stub_try_bind(const StubAddress *want, uint16_t fallback_port) {
        StubAddress a = *want;
        int udp = -1, tcp = -1, r;

        r = bind_pair(&a, &udp, &tcp);
        if ((r == -EADDRINUSE || r == -EACCES) && address_port(&a) == STUB_DEFAULT_PORT) {
                address_set_port(&a, fallback_port ? fallback_port : STUB_FALLBACK_PORT);
                r = bind_pair(&a, &udp, &tcp);
        }
        safe_close(udp);
        safe_close(tcp);
        return r < 0 ? r : 0;
}

/* Every worker gets a UDP and a TCP socket on `want`: the inherited ones
 * bound for it first (each keeps its queued queries), then new ones on
 * the same address (SO_REUSEPORT) for workers still without. An address
 * that cannot be bound at all is recorded in s->unbound, not an error. */
static int listen_on(Stub *s, const StubAddress *want, StubSocket *inherit, size_t n_inherit) {
        StubAddress bound = { .len = 0 };
        unsigned n_udp = 0, n_tcp = 0;
        char text[64];
        int r;

        for (size_t i = 0; i < n_inherit; i++) {
                StubSocket *in = &inherit[i];
                StubAddress a = { .len = sizeof a.sa };

                if (in->fd < 0 || !address_equal(&in->want, want))
                        continue;
                if (getsockname(in->fd, (struct sockaddr *) &a.sa, &a.len) < 0 ||
                    !stub_is_loopback((const struct sockaddr *) &a.sa) || (bound.len > 0 && !address_equal(&a, &bound)))
                        continue; /* closed with the unused ones */
                bound = a;
                int fd = TAKE_FD(in->fd);
                r = stub_add_socket(s, in->tcp ? n_tcp++ : n_udp++, fd, in->tcp, want);
                if (r < 0)
                        return r;
        }
        if (bound.len == 0) {
                int udp = -1, tcp = -1;
                r = bind_want(s, want, &bound, &udp, &tcp);
                if (r < 0) {
                        (void) stub_address_text(want, text, sizeof text);
                        stub_log(s, LOG_ERR, "cannot listen on %s: %s", text, strerror(-r));
                        s->unbound[s->n_unbound++] = (StubUnbound) { .want = *want, .error = -r };
                        return 0;
                }
                r = stub_add_socket(s, n_udp++, udp, false, want);
                if (r < 0) {
                        safe_close(tcp);
                        return r;
                }
                r = stub_add_socket(s, n_tcp++, tcp, true, want);
                if (r < 0)
                        return r;
        }
        s->addresses[s->n_addresses++] = bound;

        /* One socket of each per worker: the kernel spreads queries over
         * them. A worker without is only a lost share of the load. */
        while (n_udp < s->n_workers || n_tcp < s->n_workers) {
                bool tcp = n_tcp < n_udp;
                int fd = -1;
                r = open_socket(&bound, tcp, &fd);
                if (r < 0) {
                        (void) stub_address_text(&bound, text, sizeof text);
                        stub_log(s, LOG_WARNING, "cannot open another socket on %s: %s", text, strerror(-r));
                        break;
                }
                r = stub_add_socket(s, tcp ? n_tcp++ : n_udp++, fd, tcp, want);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every listen address, from inherited sockets or bound anew; inherited
 * sockets for no listen address are closed. */
int stub_bind_all(Stub *s, const StubConfig *config, StubSocket *inherit, size_t n_inherit) {
        StubAddress def = { .len = sizeof(struct sockaddr_in) };
        const StubAddress *listen = config->listen;
        size_t n_listen = config->n_listen;
        int r;

        if (n_listen == 0) {
                struct sockaddr_in *in = (struct sockaddr_in *) (void *) &def.sa;
                in->sin_family = AF_INET;
                in->sin_port = htons(STUB_DEFAULT_PORT);
                inet_pton(AF_INET, STUB_DEFAULT_ADDRESS, &in->sin_addr);
                listen = &def;
                n_listen = 1;
        }
        if (n_listen > STUB_ADDRESSES_MAX)
                return -E2BIG;

        for (size_t i = 0; i < n_listen; i++) {
                const StubAddress *a = &listen[i];
                bool dup = false;

                if ((a->sa.ss_family != AF_INET && a->sa.ss_family != AF_INET6) ||
                    !stub_is_loopback((const struct sockaddr *) &a->sa)) {
                        stub_log(s, LOG_ERR, "refusing to listen on a non-loopback address");
                        return -EADDRNOTAVAIL;
                }
                for (size_t k = 0; k < i; k++)
                        dup = dup || address_equal(&listen[k], a);
                if (dup)
                        continue;
                r = listen_on(s, a, inherit, n_inherit);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Takes over activated sockets: every worker watches each. */
int stub_adopt_fds(Stub *s, const StubConfig *config) {
        size_t first = s->n_socks;

        s->activated = true;
        for (size_t i = 0; i < config->n_fds; i++) {
                int fd = config->fds[i], type = 0;
                socklen_t tl = sizeof type;
                StubAddress a = { .len = sizeof a.sa };
                int r = 0;

                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
                    getsockname(fd, (struct sockaddr *) &a.sa, &a.len) < 0)
                        r = -errno;
                if (r >= 0)
                        r = stub_own(s, fd, type == SOCK_STREAM, &a);
                else
                        safe_close(fd);
                if (r < 0) {
                        for (size_t k = i + 1; k < config->n_fds; k++)
                                safe_close(config->fds[k]);
                        return r;
                }
        }
        for (size_t i = first; i < s->n_socks; i++) {
                int fd = s->socks[i].fd, type = 0;
                socklen_t tl = sizeof type;
                const StubAddress *a = &s->socks[i].want;

                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
                        return -errno;
                if (type != SOCK_DGRAM && type != SOCK_STREAM) {
                        stub_log(s, LOG_ERR, "socket-activated fd %d is neither UDP nor TCP", fd);
                        return -EINVAL;
                }
                if (!stub_is_loopback((const struct sockaddr *) &a->sa)) {
                        stub_log(s, LOG_ERR, "socket-activated fd %d is not on a loopback address", fd);
                        return -EADDRNOTAVAIL;
                }
                int flags = fcntl(fd, F_GETFL);
                if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                        return -errno;
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);

                bool known = false;
                for (size_t k = 0; k < s->n_addresses; k++)
                        known = known || address_equal(&s->addresses[k], a);
                if (!known && s->n_addresses < STUB_ADDRESSES_MAX)
                        s->addresses[s->n_addresses++] = *a;

                for (unsigned k = 0; k < s->n_workers; k++) {
                        int r = worker_add_listener(&s->workers[k], fd, type == SOCK_STREAM);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int stub_sockets(const Stub *s, StubSocket **ret, size_t *ret_n) {
        StubSocket *t = calloc(s->n_socks ? s->n_socks : 1, sizeof *t);
        size_t n = 0;

        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_socks; i++) {
                int fd = fcntl(s->socks[i].fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0) {
                        int r = -errno;
                        while (n > 0)
                                safe_close(t[--n].fd);
                        free(t);
                        return r;
                }
                t[n] = s->socks[i];
                t[n++].fd = fd;
        }
        *ret = t;
        *ret_n = n;
        return 0;
}

size_t stub_n_unbound(const Stub *s) {
        return s ? s->n_unbound : 0;
}

const StubUnbound *stub_unbound(const Stub *s, size_t i) {
        return s && i < s->n_unbound ? &s->unbound[i] : NULL;
}

int stub_activated_fds(int **ret_fds) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(0, &names);
        int *fds = NULL, found = 0;

        if (n <= 0) {
                *ret_fds = NULL;
                return n;
        }
        fds = calloc((size_t) n, sizeof *fds);
        if (!fds) {
                for (int i = 0; i < n; i++)
                        free(names[i]);
                free(names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                if (names && names[i] && strcmp(names[i], "stub") == 0)
                        fds[found++] = SD_LISTEN_FDS_START + i;
                if (names)
                        free(names[i]);
        }
        free(names);
        *ret_fds = fds;
        return found;
}

