/* SPDX-License-Identifier: MIT */
/*
 * The agreement layer of `ztna doctor`: the followed name's answers
 * side by side, as the store gives it, as getaddrinfo() gives every
 * program (in a child, killed at its timeout), as the stub gave it, and
 * as resolv.conf's first server answers a program that skips NSS.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/doctor-internal.h"
#include "common/time-util.h"

/* The agreement layer's lookups: each at most this, and none past the
 * run's budget (DOCTOR_BUDGET_USEC). */
#define AGREE_TIMEOUT_USEC (750 * 1000ULL)
#define AGREE_ADDRS_MAX 8

typedef struct Answers {
        size_t n;
        char addrs[AGREE_ADDRS_MAX][INET6_ADDRSTRLEN];
        char err[160]; /* why there is none */
        bool timed_out;
} Answers;

static uint64_t agree_timeout(const Doctor *d) {
        uint64_t used = clock_now_usec(CLOCK_MONOTONIC) - d->start_usec;
        uint64_t left = used < DOCTOR_BUDGET_USEC ? DOCTOR_BUDGET_USEC - used : 0;

        return DOCTOR_MIN(AGREE_TIMEOUT_USEC, left);
}

/* getaddrinfo(NAME) as any program calls it (nsswitch, nscd, every
 * module), in a child process so that a hung module or DNS server costs at
 * most the timeout: the child is killed then. */
static void nss_lookup(const char *name, uint64_t timeout_usec, Answers *a) {
        uint64_t deadline = clock_now_usec(CLOCK_MONOTONIC) + timeout_usec;
        char buf[2048];
        size_t got = 0;
        bool eof = false;
        int p[2];
        pid_t pid;

        *a = (Answers) {};
        if (timeout_usec == 0) {
                a->timed_out = true;
                snprintf(a->err, sizeof a->err, "not asked: the doctor's time ran out");
                return;
        }
        if (pipe2(p, O_CLOEXEC) < 0) {
                snprintf(a->err, sizeof a->err, "pipe: %s", strerror(errno));
                return;
        }
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                snprintf(a->err, sizeof a->err, "fork: %s", strerror(errno));
                close(p[0]);
                close(p[1]);
                return;
        }
        if (pid == 0) {
                struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
                char out[2048];
                size_t n = 0;
                int r;

                close(p[0]);
                r = getaddrinfo(name, NULL, &hints, &res);
                if (r != 0)
                        n = (size_t) snprintf(out, sizeof out, "E %s\n",
                                              r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
                else
                        for (struct addrinfo *ai = res; ai && n + INET6_ADDRSTRLEN + 4 < sizeof out; ai = ai->ai_next) {
                                char t[INET6_ADDRSTRLEN];
                                const void *ad = ai->ai_family == AF_INET
                                                         ? (const void *) &((struct sockaddr_in *) ai->ai_addr)->sin_addr
                                                         : (const void *) &((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr;

                                if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
                                    inet_ntop(ai->ai_family, ad, t, sizeof t))
                                        n += (size_t) snprintf(out + n, sizeof out - n, "A %s\n", t);
                        }
                if (n > sizeof out)
                        n = sizeof out;
                if (write(p[1], out, n) < 0)
                        _exit(1);
                _exit(0);
        }
        close(p[1]);
        while (!eof && got < sizeof buf - 1) {
                uint64_t now = clock_now_usec(CLOCK_MONOTONIC);
                struct pollfd pfd = { .fd = p[0], .events = POLLIN };
                ssize_t k;
                int r;

                if (now >= deadline)
                        break;
                r = poll(&pfd, 1, (int) ((deadline - now + 999) / 1000));
                if (r < 0 && errno != EINTR)
                        break;
                if (r <= 0)
                        continue;
                k = read(p[0], buf + got, sizeof buf - 1 - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        eof = true;
                else
                        got += (size_t) k;
        }
        close(p[0]);
        if (!eof) {
                kill(pid, SIGKILL);
                a->timed_out = true;
                snprintf(a->err, sizeof a->err, "no answer within %" PRIu64 " ms", timeout_usec / USEC_PER_MSEC);
        }
        (void) waitpid(pid, NULL, 0);
        if (!eof)
                return;
        buf[got] = '\0';
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
                bool seen = false;

                if (line[0] == 'E' && line[1] == ' ') {
                        snprintf(a->err, sizeof a->err, "%s", line + 2);
                        continue;
                }
                if (line[0] != 'A' || line[1] != ' ' || a->n >= AGREE_ADDRS_MAX)
                        continue;
                for (size_t i = 0; i < a->n && !seen; i++)
                        seen = strcmp(a->addrs[i], line + 2) == 0;
                if (!seen)
                        snprintf(a->addrs[a->n++], INET6_ADDRSTRLEN, "%s", line + 2);
        }
        if (a->n == 0 && !a->err[0])
                snprintf(a->err, sizeof a->err, "no address");
}

/* NAME's record of `family` asked of HOST:53 over UDP, as the system's
 * resolver sends it: 1 with its first address in `addr`, 0 answered
 * without one (*rcode), or -errno (-ETIMEDOUT: nothing came back). */
static int resolver_ask(const char *host, const char *name, int family, uint64_t timeout_usec, char *addr,
                        size_t size, int *rcode) {
        char where[INET6_ADDRSTRLEN + 16];
        struct sockaddr_storage ss;
        socklen_t sl;
        uint8_t q[512], reply[4096], got[16];
        uint16_t qtype = family == AF_INET6 ? 28 : 1;
        uint16_t id = (uint16_t) (clock_now_usec(CLOCK_MONOTONIC) ^ (uint64_t) getpid() ^ 0x5a5a);
        size_t qlen;
        ssize_t n;

        *rcode = -1;
        if (timeout_usec == 0)
                return -ETIMEDOUT;
        snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:53" : "%s:53", host);
        if (doctor_parse_addr_port(where, &ss, &sl) < 0)
                return -EINVAL;
        qlen = doctor_dns_query(name, qtype, id, q, sizeof q);
        if (!qlen)
                return -EINVAL;
        n = doctor_dns_exchange(&ss, sl, false, q, qlen, reply, sizeof reply, timeout_usec);
        if (n < 0)
                return (int) n;
        if (!doctor_dns_first_address(reply, (size_t) n, id, qtype, got, rcode))
                return *rcode < 0 ? -EBADMSG : 0;
        inet_ntop(family, got, addr, (socklen_t) size);
        return 1;
}

static const char *rcode_text(int rcode) {
        switch (rcode) {
        case 0:
                return "no address (NOERROR)";
        case 2:
                return "SERVFAIL";
        case 3:
                return "no such name (NXDOMAIN)";
        case 5:
                return "REFUSED";
        default:
                return "an error";
        }
}

/* The resolver's fix: whoever should point it at the stub does it again. */
static void resolver_fix(const Doctor *d, Finding *f, bool wrong_server) {
        if (strcmp(d->manager_mode, "resolved") == 0)
                finding_fix(f, "resolvectl status (the link with ~%s must list the stub's address), then: systemctl "
                               "reload ztnad",
                            d->domain);
        else if (d->manager_mode[0])
                finding_fix(f, "systemctl reload ztnad (the DNS manager points %s at the stub again)", d->resolv_path);
        else if (wrong_server) {
                char pattern[2 * sizeof d->resolv_ns0], *o = pattern;

                for (const char *c = d->resolv_ns0; *c; c++) {
                        if (*c == '.')
                                *o++ = '\\';
                        *o++ = *c;
                }
                *o = '\0';
                /* Without the server that answers wrongly; the DNS manager
                 * (manage = auto) then points the file at the stub. */
                finding_fix(f, "sed -i '/^nameserver %s$/d' %s && systemctl restart ztnad", pattern, d->resolv_path);
        } else
                finding_fix(f, "systemctl restart ztnad (its DNS manager, manage in ztnad.conf, points %s at the stub)",
                            d->resolv_path);
}

void doctor_check_agreement(Doctor *d) {
        char fqdn[sizeof d->name + 1 + sizeof d->domain], nss_text[3 * INET6_ADDRSTRLEN + 8] = "", said[TEXT_MAX / 2];
        char stub_text[TEXT_MAX / 2], res_text[TEXT_MAX / 2], res_addr[INET6_ADDRSTRLEN] = "";
        const char *want = d->name_answer;
        int family = strchr(want, ':') ? AF_INET6 : AF_INET, rcode = -1, r;
        bool nss_agrees = false, failed = false;
        const Finding *sf;
        Answers nss;
        Finding *f;

        if (!d->name[0] || !want[0]) {
                doctor_add(d, LAYER_AGREEMENT, LEVEL_SKIP, "agreement-unknown",
                           "nothing to compare: the store has no tailnet address%s%s", d->name[0] ? " for " : "",
                           d->name);
                return;
        }
        /* A single label is completed with the tailnet domain, as the
         * stub and resolved's search domain do. */
        snprintf(fqdn, sizeof fqdn, "%s%s%s", d->name, strchr(d->name, '.') ? "" : ".",
                 strchr(d->name, '.') ? "" : d->domain);

        /* The NSS path: what getaddrinfo() gives every program. */
        nss_lookup(fqdn, agree_timeout(d), &nss);
        for (size_t i = 0; i < nss.n; i++) {
                size_t l = strlen(nss_text);

                nss_agrees = nss_agrees || strcmp(nss.addrs[i], want) == 0;
                if (i < 3)
                        snprintf(nss_text + l, sizeof nss_text - l, "%s%s", i ? " " : "", nss.addrs[i]);
        }
        if (nss.timed_out) {
                f = doctor_add(d, LAYER_AGREEMENT, LEVEL_WARN, "agreement-nss-slow",
                               "getaddrinfo(%s): %s; the store says %s", fqdn, nss.err, want);
                finding_why(f, "a module or server glibc asks (ahead of ztna, or DNS when ztna is skipped) is slow: "
                               "programs wait on every lookup");
                finding_fix(f, "time getent ahosts %s (and see the nsswitch layer)", fqdn);
                failed = true;
        } else if (nss.n == 0) {
                f = doctor_add(d, LAYER_AGREEMENT, LEVEL_FAIL, "agreement-nss-fails",
                               "getaddrinfo says %s: %s; the store says %s", fqdn, nss.err, want);
                finding_why(f, "glibc's lookup does not reach ztna's answer: programs cannot resolve %s", fqdn);
                finding_fix(f, "getent ahosts %s (and see the nsswitch and caches layers)", fqdn);
                failed = true;
        } else if (!nss_agrees) {
                f = doctor_add(d, LAYER_AGREEMENT, LEVEL_FAIL, "agreement-nss-differs",
                               "getaddrinfo says %s, the store says %s", nss_text, want);
                finding_why(f, "a source glibc asks ahead of ztna answers %s differently (/etc/hosts, nscd's cache, a "
                               "module before ztna): programs connect to %s",
                            fqdn, nss.addrs[0]);
                finding_fix(f, "grep -i '%s' /etc/hosts (remove the stale line); nscd -i hosts; then: getent ahosts %s",
                            d->name, fqdn);
                failed = true;
        }
        snprintf(said, sizeof said, "%s %s", nss_agrees ? "getaddrinfo says" : "the store says", want);

        /* The stub: the stub layer asked it already. */
        if (d->cfg && !d->cfg->stub)
                snprintf(stub_text, sizeof stub_text, "the stub is off");
        else if ((sf = doctor_find_finding(d, LAYER_STUB, "stub-answers")))
                snprintf(stub_text, sizeof stub_text, "the stub says %s", want);
        else
                snprintf(stub_text, sizeof stub_text, "the stub: see its layer");

        /* The system's resolver: resolv.conf's first server, as a program
         * that skips NSS (dig, Go, musl) asks it. */
        if (!d->resolv_ns0[0]) {
                snprintf(res_text, sizeof res_text, "%.200s names no server",
                         d->resolv_path[0] ? d->resolv_path : "resolv.conf");
                r = -ENOENT;
        } else {
                r = resolver_ask(d->resolv_ns0, fqdn, family, agree_timeout(d), res_addr, sizeof res_addr, &rcode);
                if (r == 1)
                        snprintf(res_text, sizeof res_text, "the resolv.conf server %s says %s", d->resolv_ns0,
                                 res_addr);
                else if (r == 0)
                        snprintf(res_text, sizeof res_text, "the resolv.conf server %s answers %s", d->resolv_ns0,
                                 rcode_text(rcode));
                else
                        snprintf(res_text, sizeof res_text, "the resolv.conf server %s: %s", d->resolv_ns0,
                                 r == -ETIMEDOUT ? "no answer in time" : strerror(-r));
        }
        if (r == 1 && strcmp(res_addr, want) != 0) {
                f = doctor_add(d, LAYER_AGREEMENT, LEVEL_FAIL, "agreement-resolver-differs", "%s, %s: it is not routing %s to ztnad",
                               said, res_text, d->domain);
                finding_why(f, "programs that ask DNS directly (dig, Go and musl programs, containers) connect to %s, "
                               "not to the tailnet peer",
                            res_addr);
                resolver_fix(d, f, true);
                failed = true;
        } else if (r != 1 && r != -ENOENT && d->resolv_to_stub) {
                f = doctor_add(d, LAYER_AGREEMENT, LEVEL_FAIL,
                               r == 0 ? "agreement-resolver-no-answer" : "agreement-resolver-silent",
                               "%s, %s: it is not routing %s to ztnad", said, res_text, d->domain);
                finding_why(f, "resolv.conf is meant to reach the stub, but programs that ask DNS directly get no "
                               "tailnet answer");
                resolver_fix(d, f, false);
                failed = true;
        } else if (r != 1) {
                doctor_add(d, LAYER_AGREEMENT, LEVEL_OK, "agreement-resolver-not-routed",
                           "%s; %s; %s (not meant to reach ztnad: programs that skip NSS get no tailnet names)", said,
                           stub_text, res_text);
                return;
        }
        if (!failed)
                doctor_add(d, LAYER_AGREEMENT, LEVEL_OK, "agreement-ok", "%s: %s; %s; %s", fqdn, said, stub_text,
                           res_text);
}
