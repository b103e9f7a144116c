/* SPDX-License-Identifier: MIT */
/*
 * Part of the system-dns layer of `ztna doctor`: when resolv.conf
 * points at systemd-resolved, does resolved route the tailnet domain
 * to where ztnad's stub listens. resolved's domains and servers are
 * read over D-Bus within the doctor's time budget.
 */

#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "cli/doctor-internal.h"
#include "common/inet-util.h"
#include "common/time-util.h"
#include "macro.h"

#define RESOLVED_BUS_USEC (1000 * 1000ULL)
#define RESOLVED_ITEMS_MAX 512 /* a /10 alone is 64 reverse zones */

typedef struct ResolvedServer {
        int ifindex; /* 0: global (resolved.conf and its drop-ins) */
        int family;
        uint8_t addr[16];
        uint16_t port; /* 0: 53 */
} ResolvedServer;

typedef struct ResolvedDomain {
        int ifindex;
        char name[256];
} ResolvedDomain;

typedef struct ResolvedView {
        size_t n_servers, n_domains;
        ResolvedServer servers[RESOLVED_ITEMS_MAX];
        ResolvedDomain domains[RESOLVED_ITEMS_MAX];
} ResolvedView;

static void bus_unrefp(sd_bus **b) {
        sd_bus_flush_close_unref(*b);
}

static void bus_message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}

#define RESOLVE_BUS "org.freedesktop.resolve1"
#define RESOLVE_BUS_PATH "/org/freedesktop/resolve1"

/* Appends the servers of a DNSEx property: a(iiayqs) on the Manager (with
 * each server's ifindex; only the global ones, ifindex 0, are taken from
 * it), a(iayqs) on a link object (`ifindex` given). */
static int read_servers(sd_bus_message *m, bool manager, int ifindex, ResolvedView *v) {
        const char *sig = manager ? "iiayqs" : "iayqs";
        int r;

        if ((r = sd_bus_message_enter_container(m, 'a', manager ? "(iiayqs)" : "(iayqs)")) < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'r', sig)) > 0) {
                ResolvedServer s = { .ifindex = ifindex };
                const void *a;
                size_t alen;
                const char *sni;

                if ((manager && (r = sd_bus_message_read(m, "i", &s.ifindex)) < 0) ||
                    (r = sd_bus_message_read(m, "i", &s.family)) < 0 ||
                    (r = sd_bus_message_read_array(m, 'y', &a, &alen)) < 0 ||
                    (r = sd_bus_message_read(m, "qs", &s.port, &sni)) < 0 ||
                    (r = sd_bus_message_exit_container(m)) < 0)
                        return r;
                if (manager && s.ifindex != 0)
                        continue;
                if (((s.family == AF_INET && alen == 4) || (s.family == AF_INET6 && alen == 16)) &&
                    v->n_servers < RESOLVED_ITEMS_MAX) {
                        memcpy(s.addr, a, alen);
                        v->servers[v->n_servers++] = s;
                }
        }
        return r;
}

/* Gives the next bus call what is left until `deadline`; true. */
static bool bus_time_left(sd_bus *bus, uint64_t deadline) {
        uint64_t now = clock_now_usec(CLOCK_MONOTONIC);

        (void) sd_bus_set_method_call_timeout(bus, now < deadline ? deadline - now : 1);
        return true;
}

/* resolved's routing state: every domain of every link and the global
 * ones (Manager.Domains a(isb)), the global servers (Manager.DNSEx) and
 * each link's with a domain (GetLink, then the link's DNSEx). */
static int resolved_read(uint64_t timeout_usec, ResolvedView *v, char *err, size_t errlen) {
        _cleanup_(bus_unrefp) sd_bus *bus = NULL;
        _cleanup_(bus_message_unrefp) sd_bus_message *dns = NULL, *doms = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int links[16], n_links = 0;
        uint64_t deadline = clock_now_usec(CLOCK_MONOTONIC) + timeout_usec;
        int r;

        v->n_servers = v->n_domains = 0;
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                snprintf(err, errlen, "no system bus: %s", strerror(-r));
                return r;
        }
        /* One deadline for every call: each is given what is left. */
        bus_time_left(bus, deadline);
        r = sd_bus_get_property(bus, RESOLVE_BUS, RESOLVE_BUS_PATH, "org.freedesktop.resolve1.Manager", "Domains", &e,
                                &doms, "a(isb)");
        if (r >= 0) {
                bus_time_left(bus, deadline);
                r = sd_bus_get_property(bus, RESOLVE_BUS, RESOLVE_BUS_PATH, "org.freedesktop.resolve1.Manager",
                                        "DNSEx", &e, &dns, "a(iiayqs)");
        }
        if (r < 0)
                goto bus_error;
        if ((r = sd_bus_message_enter_container(doms, 'a', "(isb)")) < 0)
                goto bad;
        for (;;) {
                int ifindex, route_only;
                const char *name;
                bool seen = false;

                r = sd_bus_message_read(doms, "(isb)", &ifindex, &name, &route_only);
                if (r <= 0)
                        break;
                if (v->n_domains < RESOLVED_ITEMS_MAX) {
                        v->domains[v->n_domains].ifindex = ifindex;
                        snprintf(v->domains[v->n_domains].name, sizeof v->domains[0].name, "%s", name);
                        v->n_domains++;
                }
                for (int i = 0; i < n_links && !seen; i++)
                        seen = links[i] == ifindex;
                if (!seen && ifindex > 0 && n_links < (int) ELEMENTSOF(links))
                        links[n_links++] = ifindex;
        }
        if (r < 0 || (r = read_servers(dns, true, 0, v)) < 0)
                goto bad;
        for (int i = 0; i < n_links; i++) {
                _cleanup_(bus_message_unrefp) sd_bus_message *reply = NULL, *ldns = NULL;
                const char *path;

                bus_time_left(bus, deadline);
                r = sd_bus_call_method(bus, RESOLVE_BUS, RESOLVE_BUS_PATH, "org.freedesktop.resolve1.Manager",
                                       "GetLink", &e, &reply, "i", links[i]);
                if (r >= 0 && (r = sd_bus_message_read(reply, "o", &path)) >= 0 && bus_time_left(bus, deadline))
                        r = sd_bus_get_property(bus, RESOLVE_BUS, path, "org.freedesktop.resolve1.Link", "DNSEx", &e,
                                                &ldns, "a(iayqs)");
                if (r < 0)
                        goto bus_error;
                if ((r = read_servers(ldns, false, links[i], v)) < 0)
                        goto bad;
        }
        return 0;
bus_error:
        snprintf(err, errlen, "%s", e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        return r;
bad:
        snprintf(err, errlen, "cannot read resolved's reply: %s", strerror(-r));
        return r;
}

/* How well resolved's domain `dom` matches `name`: its label count plus
 * one (the longest suffix wins; "." matches every name with 1), 0 for no
 * match. */
static size_t domain_match(const char *dom, const char *name) {
        char a[256], b[256];
        size_t la, lb, labels = 1;

        snprintf(a, sizeof a, "%s", dom);
        snprintf(b, sizeof b, "%s", name);
        la = strlen(a);
        lb = strlen(b);
        while (la > 0 && a[la - 1] == '.')
                a[--la] = '\0';
        while (lb > 0 && b[lb - 1] == '.')
                b[--lb] = '\0';
        if (la == 0)
                return 1;
        if (la > lb || strcasecmp(b + lb - la, a) != 0 || (lb > la && b[lb - la - 1] != '.'))
                return 0;
        for (size_t i = 0; i < la; i++)
                labels += a[i] == '.';
        return labels + 1;
}

static void server_text(const ResolvedServer *s, char *buf, size_t size) {
        (void) inet_host_port(s->family, s->addr, s->port ? s->port : 53, buf, size);
}

static void link_text(int ifindex, char *buf, size_t size) {
        char name[IF_NAMESIZE + 1];

        if (ifindex == 0)
                snprintf(buf, size, "resolved's global settings");
        else if (if_indextoname((unsigned) ifindex, name))
                snprintf(buf, size, "link %s", name);
        else
                snprintf(buf, size, "link %d", ifindex);
}

/* resolv.conf points at resolved: does resolved send the tailnet domain
 * to where the stub actually listens? */
void doctor_check_resolved(Doctor *d, const char *shown) {
        const json_t *dns = d->status ? json_object_get(d->status, "dns") : NULL;
        const json_t *listening = dns ? json_object_get(dns, "listening") : NULL;
        char err[256], where[96], first[160] = "", stub_where[160] = "", wrong[160] = "";
        size_t best = 0, i;
        bool routed_to_stub = false;
        ResolvedView *v;
        Finding *f;
        json_t *l;
        uint64_t used = clock_now_usec(CLOCK_MONOTONIC) - d->start_usec;
        uint64_t timeout = used < DOCTOR_BUDGET_USEC ? DOCTOR_MIN(RESOLVED_BUS_USEC, DOCTOR_BUDGET_USEC - used) : 0;

        if (!d->domain[0] || json_array_size(listening) == 0) {
                doctor_add(d, LAYER_SYSDNS, LEVEL_SKIP, "resolved-routing-unknown",
                           "%s (resolved's stub); where the stub listens is unknown: resolved's route is not judged",
                           shown);
                return;
        }
        v = calloc(1, sizeof *v);
        if (!v)
                return;
        if (timeout == 0 || resolved_read(timeout, v, err, sizeof err) < 0) {
                f = doctor_add(d, LAYER_SYSDNS, LEVEL_FAIL, "resolved-unreachable",
                               "%s (resolved's stub); resolved does not answer on D-Bus: %s", shown,
                               timeout ? err : "the doctor's time ran out");
                finding_why(f, "resolv.conf sends every query to resolved, and resolved is not running or is stuck: "
                               "programs that ask DNS directly get no answer");
                finding_fix(f, "systemctl restart systemd-resolved && systemctl reload ztnad");
                free(v);
                return;
        }
        for (i = 0; i < v->n_domains; i++) {
                size_t m = domain_match(v->domains[i].name, d->domain);
                if (m > best)
                        best = m;
        }
        /* The servers of every scope with the best match, against each
         * address the stub listens on. */
        for (i = 0; best && i < v->n_domains; i++) {
                if (domain_match(v->domains[i].name, d->domain) != best)
                        continue;
                for (size_t k = 0; k < v->n_servers; k++) {
                        const ResolvedServer *s = &v->servers[k];
                        char text[64], tl[64];
                        size_t j;

                        if (s->ifindex != v->domains[i].ifindex)
                                continue;
                        server_text(s, text, sizeof text);
                        link_text(s->ifindex, tl, sizeof tl);
                        if (!first[0])
                                snprintf(first, sizeof first, "%s (%s)", text, tl);
                        json_array_foreach (listening, j, l) {
                                struct sockaddr_storage ss;
                                socklen_t sl;
                                const char *lt = json_string_value(l);
                                const uint8_t *la;
                                unsigned lport;

                                if (!lt || doctor_parse_addr_port(lt, &ss, &sl) < 0 || ss.ss_family != s->family)
                                        continue;
                                if (ss.ss_family == AF_INET) {
                                        la = (const uint8_t *) &((struct sockaddr_in *) &ss)->sin_addr;
                                        lport = ntohs(((struct sockaddr_in *) &ss)->sin_port);
                                } else {
                                        la = (const uint8_t *) &((struct sockaddr_in6 *) &ss)->sin6_addr;
                                        lport = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
                                }
                                if (memcmp(la, s->addr, s->family == AF_INET ? 4 : 16) != 0)
                                        continue;
                                if (lport == (s->port ? s->port : 53u)) {
                                        routed_to_stub = true;
                                        snprintf(stub_where, sizeof stub_where, "%s (%s)", text, tl);
                                } else if (!wrong[0]) {
                                        snprintf(wrong, sizeof wrong, "%s (%s)", text, tl);
                                        snprintf(where, sizeof where, "%s", lt);
                                }
                        }
                }
        }
        if (routed_to_stub)
                doctor_add(d, LAYER_SYSDNS, LEVEL_OK, "resolved-routes-stub",
                           "%s (resolved's stub); resolved routes %s to %s, where the stub listens", shown, d->domain,
                           stub_where);
        else if (wrong[0]) {
                const char *colon = strrchr(where, ':');

                f = doctor_add(d, LAYER_SYSDNS, LEVEL_FAIL, "resolved-wrong-port",
                               "%s (resolved's stub); resolved routes %s to %s but the stub listens on %s", shown,
                               d->domain, wrong, colon ? colon : where);
                finding_why(f, "resolved sends tailnet names to a port where ztnad is not: they fail (or reach another "
                               "program there)");
                finding_fix(f, "systemctl reload ztnad (the DNS manager gives resolved the stub's actual port again)");
        } else {
                char stub[160] = "";

                json_array_foreach (listening, i, l) {
                        size_t have = strlen(stub);
                        if (json_string_value(l))
                                snprintf(stub + have, sizeof stub - have, "%s%s", have ? ", " : "",
                                         json_string_value(l));
                }
                f = doctor_add(d, LAYER_SYSDNS, LEVEL_FAIL, "resolved-not-routing",
                               "%s (resolved's stub); resolved is not routing %s to ztnad: "
                               "%s%s%s (the stub listens on %s)",
                               shown, d->domain, first[0] ? "it sends it to " : "no link has ~",
                               first[0] ? first : d->domain, first[0] ? "" : " with the stub's address", stub);
                finding_why(f, "resolved sends tailnet names to other servers (the uplink's): they leak, and get "
                               "NXDOMAIN or a public answer");
                finding_fix(f, "systemctl reload ztnad (the DNS manager sets resolved's route for %s again)",
                            d->domain);
        }
        free(v);
}
