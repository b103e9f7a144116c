/* SPDX-License-Identifier: MIT */
/*
 * test-upstream: drives upstream.c on an sd-event loop for
 * tests/integration/test-upstream.sh and prints what came back.
 *
 *   test-upstream [OPTIONS] NAME[/TYPE]...
 *
 * Each NAME is asked (--repeat times), one after another or all at once
 * (--parallel). One line per answer on stdout:
 *
 *   answer I NAME rcode=R ede=E ms=T [addr=A,...] [count=N] [text="..."]
 *
 * then "summary ..." with the latency median, p99 and maximum, and one
 * "server ..." line per DoT server from upstream_get_status(). upstream.c
 * logs on stderr. --udp ADDR@PORT sends the same queries over plain UDP
 * straight to a server instead (one socket, one query at a time): the
 * baseline for latency figures. Exit 0 when every query got its callback
 * exactly once and no "error: ..." line was printed (a failure answered with
 * a response other than SERVFAIL), 1 otherwise.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "common/dns-wire.h"
#include "conf/config.h"
#include "upstream/upstream.h"
#include "common/time-util.h"

#define NAMES_MAX 64

typedef struct Harness {
        sd_event *event;
        Upstream *upstream;
        const char *names[NAMES_MAX];
        uint16_t types[NAMES_MAX];
        size_t n_names;
        unsigned repeat;
        bool parallel, edns;
        uint64_t interval_usec, wait_usec;
        unsigned total, sent, done;
        unsigned *calls;         /* callbacks per query: must end at 1 each */
        uint64_t *started;       /* per query, usec */
        uint64_t *latency;       /* per query, usec */
        unsigned n_servfail;
        unsigned n_errors; /* "error:" lines printed: the exit status is 1 */
        sd_event_source *next;
        /* --udp: plain UDP straight to a server, not through upstream.c: a
         * baseline for the latency figures. */
        int udp_fd;
        sd_event_source *udp_io;
        uint16_t udp_id;
        pid_t kill_pid;
        uint64_t kill_after_usec;
        sd_event_source *killer;
} Harness;

typedef struct Pending {
        Harness *h;
        unsigned index;
} Pending;

static uint64_t mono_usec(void) {
        return clock_now_usec(CLOCK_MONOTONIC);
}

static const char *rcode_name(unsigned r) {
        static const char *const names[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED" };

        return r < 6 ? names[r] : "OTHER";
}

static int parse_server(const char *arg, struct sockaddr_storage *ret, char *name, size_t name_size) {
        char host[128];
        const char *at = strchr(arg, '@'), *hash = strchr(arg, '#');
        struct sockaddr_in *in = (struct sockaddr_in *) ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        unsigned long port;
        char *end;

        if (!at || (size_t) (at - arg) >= sizeof host)
                return -EINVAL;
        memcpy(host, arg, (size_t) (at - arg));
        host[at - arg] = '\0';
        port = strtoul(at + 1, &end, 10);
        if (port == 0 || port > 65535 || (*end != '\0' && *end != '#'))
                return -EINVAL;
        memset(ret, 0, sizeof *ret);
        if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
        } else
                return -EINVAL;
        if (name) {
                name[0] = '\0';
                if (hash)
                        snprintf(name, name_size, "%s", hash + 1);
        }
        return 0;
}

static int build_query(const char *name, uint16_t type, bool edns, uint8_t *buf, size_t cap, size_t *ret_len) {
        DnsBuilder b;
        DnsName n;

        if (dns_name_from_text(name, &n) < 0)
                return -EINVAL;
        dns_builder_init(&b, buf, cap);
        dns_builder_header(&b, (uint16_t) arc4random(), DNS_FLAG_RD, 1, 0, 0, edns ? 1 : 0);
        dns_builder_name(&b, &n);
        dns_builder_u16(&b, type);
        dns_builder_u16(&b, DNS_CLASS_IN);
        if (edns)
                dns_builder_opt(&b, DNS_EDNS_UDP_SIZE, 0, false, -1, NULL);
        return dns_builder_finish(&b, ret_len);
}

static void print_answer(const Harness *h, unsigned i, const uint8_t *answer, size_t len, uint16_t rcode,
                         int ede_code, const char *ede_text) {
        const char *name = h->names[i % h->n_names];
        char addrs[1024] = "";
        size_t used = 0;
        unsigned count = 0;
        DnsMessage m;

        if (answer && ede_code < 0 && dns_message_parse(answer, len, &m) == 0) {
                DnsRRIter it;
                DnsRR rr;

                dns_rr_iter_init(&it, answer, len, &m);
                while (dns_rr_next(&it, &rr) > 0) {
                        char a[INET6_ADDRSTRLEN];

                        if (rr.section != DNS_SECTION_ANSWER)
                                continue;
                        count++;
                        if ((rr.type == DNS_TYPE_A && rr.rdlength == 4) ||
                            (rr.type == DNS_TYPE_AAAA && rr.rdlength == 16)) {
                                (void) inet_ntop(rr.type == DNS_TYPE_A ? AF_INET : AF_INET6, answer + rr.rdata_off, a,
                                                 sizeof a);
                                if (count <= 4 && used < sizeof addrs - 64)
                                        used += (size_t) snprintf(addrs + used, sizeof addrs - used, "%s%s",
                                                                  used ? "," : "", a);
                        }
                }
        }
        printf("answer %u %s rcode=%s ede=%d ms=%.3f", i, name, rcode_name(rcode), ede_code,
               (double) h->latency[i] / 1000.0);
        if (addrs[0])
                printf(" addr=%s", addrs);
        if (ede_code < 0)
                printf(" count=%u", count);
        if (ede_text)
                printf(" text=\"%s\"", ede_text);
        if (answer && len >= DNS_HEADER_SIZE)
                printf(" len=%zu", len);
        printf("\n");
        fflush(stdout);
}

static void send_one(Harness *h);

static void on_done(void *userdata, const uint8_t *answer, size_t len, uint16_t rcode, int ede_code,
                    const char *ede_text) {
        Pending *p = userdata;
        Harness *h = p->h;
        unsigned i = p->index;

        free(p);
        h->calls[i]++;
        h->latency[i] = mono_usec() - h->started[i];
        h->done++;
        if (rcode == DNS_RCODE_SERVFAIL)
                h->n_servfail++;
        if (answer && len >= DNS_HEADER_SIZE && ede_code >= 0 && (answer[DNS_OFF_FLAGS + 1] & DNS_RCODE_MASK) != 2) {
                printf("error: a failure whose response is not a SERVFAIL\n");
                h->n_errors++;
        }
        print_answer(h, i, answer, len, rcode, ede_code, ede_text);
        if (!h->parallel && h->sent < h->total) {
                if (h->interval_usec == 0)
                        send_one(h);
                else {
                        (void) sd_event_source_set_time_relative(h->next, h->interval_usec);
                        (void) sd_event_source_set_enabled(h->next, SD_EVENT_ONESHOT);
                }
        }
        if (h->done == h->total) {
                if (h->wait_usec == 0)
                        (void) sd_event_exit(h->event, 0);
                else {
                        (void) sd_event_source_set_time_relative(h->next, h->wait_usec);
                        (void) sd_event_source_set_enabled(h->next, SD_EVENT_ONESHOT);
                }
        }
}

static void send_one(Harness *h) {
        unsigned i = h->sent;
        uint8_t buf[512];
        size_t len;
        Pending *p;
        int r;

        r = build_query(h->names[i % h->n_names], h->types[i % h->n_names], h->edns, buf, sizeof buf, &len);
        p = malloc(sizeof *p);
        if (r < 0 || !p) {
                fprintf(stderr, "cannot build the query for %s\n", h->names[i % h->n_names]);
                exit(2);
        }
        *p = (Pending) { .h = h, .index = i };
        h->sent++;
        h->started[i] = mono_usec();
        if (h->udp_fd >= 0) {
                /* One at a time: the reply handler finds it by the ID. */
                h->udp_id = (uint16_t) (buf[DNS_OFF_ID] << 8 | buf[DNS_OFF_ID + 1]);
                (void) sd_event_source_set_userdata(h->udp_io, p);
                if (send(h->udp_fd, buf, len, 0) < 0) {
                        fprintf(stderr, "send: %s\n", strerror(errno));
                        exit(1);
                }
                return;
        }
        r = upstream_resolve(h->upstream, buf, len, on_done, p);
        if (r < 0) {
                fprintf(stderr, "upstream_resolve: %s\n", strerror(-r));
                exit(1);
        }
}

static int on_udp(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Pending *p = userdata;
        uint8_t buf[65536];
        ssize_t n;

        (void) s;
        (void) revents;
        n = recv(fd, buf, sizeof buf, 0);
        if (n < (ssize_t) DNS_HEADER_SIZE || !p || (uint16_t) (buf[0] << 8 | buf[1]) != p->h->udp_id)
                return 0;
        (void) sd_event_source_set_userdata(s, NULL);
        on_done(p, buf, (size_t) n, buf[DNS_OFF_FLAGS + 1] & DNS_RCODE_MASK, -1, NULL);
        return 0;
}

static int on_next(sd_event_source *s, uint64_t usec, void *userdata) {
        Harness *h = userdata;

        (void) s;
        (void) usec;
        if (h->done == h->total) {
                (void) sd_event_exit(h->event, 0);
                return 0;
        }
        send_one(h);
        return 0;
}

static int on_kill(sd_event_source *s, uint64_t usec, void *userdata) {
        Harness *h = userdata;

        (void) s;
        (void) usec;
        if (kill(h->kill_pid, SIGKILL) < 0)
                fprintf(stderr, "kill %d: %s\n", (int) h->kill_pid, strerror(errno));
        else
                printf("killed %d\n", (int) h->kill_pid);
        fflush(stdout);
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static void print_summary(const Harness *h) {
        uint64_t *sorted = calloc(h->total ? h->total : 1, sizeof *sorted);
        UpstreamStatus st;

        if (!sorted)
                return;
        memcpy(sorted, h->latency, h->total * sizeof *sorted);
        qsort(sorted, h->total, sizeof *sorted, cmp_u64);
        printf("summary sent=%u answered=%u servfail=%u median_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", h->sent, h->done,
               h->n_servfail, h->total ? (double) sorted[(h->total - 1) / 2] / 1000.0 : 0.0,
               h->total ? (double) sorted[(h->total * 99 + 99) / 100 - 1] / 1000.0 : 0.0,
               h->total ? (double) sorted[h->total - 1] / 1000.0 : 0.0);
        free(sorted);
        upstream_get_status(h->upstream, &st);
        for (size_t i = 0; i < st.n_servers; i++) {
                const UpstreamServerStatus *s = &st.servers[i];

                printf("server %zu %s state=%s connections=%" PRIu64 " resumed=%" PRIu64 " sent=%" PRIu64
                       " answers=%" PRIu64 " failures=%" PRIu64 " srtt_us=%" PRIu64 " last_error=\"%s\"\n",
                       i, s->address, upstream_server_state_to_string(s->state), s->n_connections, s->n_resumed,
                       s->n_sent, s->n_answers, s->n_failures, s->srtt_usec, s->last_error);
        }
        printf("status queries=%" PRIu64 " answered=%" PRIu64 " servfail=%" PRIu64 " fallback=%" PRIu64
               " pending=%u\n",
               st.n_queries, st.n_answered, st.n_servfail, st.n_fallback, st.pending);
}

static uint16_t parse_type(const char *t) {
        if (strcasecmp(t, "A") == 0)
                return DNS_TYPE_A;
        if (strcasecmp(t, "AAAA") == 0)
                return DNS_TYPE_AAAA;
        if (strcasecmp(t, "NS") == 0)
                return DNS_TYPE_NS;
        if (strcasecmp(t, "TXT") == 0)
                return DNS_TYPE_TXT;
        return (uint16_t) strtoul(t, NULL, 10);
}

int main(int argc, char **argv) {
        enum {
                OPT_CA = 0x100,
                OPT_PIN,
                OPT_TIMEOUT,
                OPT_IDLE,
                OPT_FALLBACK,
                OPT_ALLOW,
                OPT_REPEAT,
                OPT_PARALLEL,
                OPT_INTERVAL,
                OPT_WAIT,
                OPT_KILL,
                OPT_KILL_AFTER,
                OPT_NO_EDNS,
                OPT_UDP,
        };
        static const struct option options[] = {
                { "server", required_argument, NULL, 's' },
                { "ca", required_argument, NULL, OPT_CA },
                { "pin", required_argument, NULL, OPT_PIN },
                { "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
                { "idle-ms", required_argument, NULL, OPT_IDLE },
                { "fallback", required_argument, NULL, OPT_FALLBACK },
                { "allow-fallback", no_argument, NULL, OPT_ALLOW },
                { "repeat", required_argument, NULL, OPT_REPEAT },
                { "parallel", no_argument, NULL, OPT_PARALLEL },
                { "interval-ms", required_argument, NULL, OPT_INTERVAL },
                { "wait-ms", required_argument, NULL, OPT_WAIT },
                { "kill", required_argument, NULL, OPT_KILL },
                { "kill-after-ms", required_argument, NULL, OPT_KILL_AFTER },
                { "no-edns", no_argument, NULL, OPT_NO_EDNS },
                { "udp", required_argument, NULL, OPT_UDP },
                {},
        };
        static UpstreamServer servers[UPSTREAM_SERVERS_MAX];
        static struct sockaddr_storage fallback[UPSTREAM_FALLBACK_MAX];
        const char *pins[UPSTREAM_PINS_MAX];
        UpstreamConfig cfg = {};
        Harness h = { .repeat = 1, .edns = true, .udp_fd = -1 };
        struct sockaddr_storage udp_addr = {};
        bool udp = false;
        int c, r, ret = 1;

        /* T unless --timeout-ms: the upstream_timeout key's default, as
         * ztnad would pass it. */
        {
                _cleanup_config_ ZtnadConfig *d = NULL;

                if (config_defaults(&d) < 0)
                        return 1;
                cfg.timeout_usec = d->upstream_timeout_usec;
        }

        while ((c = getopt_long(argc, argv, "s:", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        if (cfg.n_servers == UPSTREAM_SERVERS_MAX ||
                            parse_server(optarg, &servers[cfg.n_servers].addr, servers[cfg.n_servers].tls_name,
                                         sizeof servers[cfg.n_servers].tls_name) < 0) {
                                fprintf(stderr, "bad server %s (ADDR@PORT[#NAME])\n", optarg);
                                return 2;
                        }
                        cfg.n_servers++;
                        break;
                case OPT_CA:
                        cfg.tls_ca_file = optarg;
                        break;
                case OPT_PIN:
                        if (cfg.n_spki_pins == UPSTREAM_PINS_MAX)
                                return 2;
                        pins[cfg.n_spki_pins++] = optarg;
                        break;
                case OPT_TIMEOUT:
                        cfg.timeout_usec = strtoull(optarg, NULL, 10) * 1000;
                        break;
                case OPT_IDLE:
                        cfg.idle_timeout_usec = strtoull(optarg, NULL, 10) * 1000;
                        break;
                case OPT_FALLBACK:
                        if (cfg.n_fallback == UPSTREAM_FALLBACK_MAX ||
                            parse_server(optarg, &fallback[cfg.n_fallback], NULL, 0) < 0) {
                                fprintf(stderr, "bad fallback server %s (ADDR@PORT)\n", optarg);
                                return 2;
                        }
                        cfg.n_fallback++;
                        break;
                case OPT_ALLOW:
                        cfg.allow_plaintext_fallback = true;
                        break;
                case OPT_REPEAT:
                        h.repeat = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case OPT_PARALLEL:
                        h.parallel = true;
                        break;
                case OPT_INTERVAL:
                        h.interval_usec = strtoull(optarg, NULL, 10) * 1000;
                        break;
                case OPT_WAIT:
                        h.wait_usec = strtoull(optarg, NULL, 10) * 1000;
                        break;
                case OPT_KILL:
                        h.kill_pid = (pid_t) strtol(optarg, NULL, 10);
                        break;
                case OPT_KILL_AFTER:
                        h.kill_after_usec = strtoull(optarg, NULL, 10) * 1000;
                        break;
                case OPT_NO_EDNS:
                        h.edns = false;
                        break;
                case OPT_UDP:
                        if (parse_server(optarg, &udp_addr, NULL, 0) < 0) {
                                fprintf(stderr, "bad address %s (ADDR@PORT)\n", optarg);
                                return 2;
                        }
                        udp = true;
                        break;
                default:
                        return 2;
                }
        for (; optind < argc && h.n_names < NAMES_MAX; optind++) {
                char *slash = strchr(argv[optind], '/');

                h.types[h.n_names] = DNS_TYPE_A;
                if (slash) {
                        *slash = '\0';
                        h.types[h.n_names] = parse_type(slash + 1);
                }
                h.names[h.n_names++] = argv[optind];
        }
        if (h.n_names == 0 || h.repeat == 0) {
                fprintf(stderr, "usage: test-upstream [OPTIONS] NAME[/TYPE]...\n");
                return 2;
        }
        cfg.servers = servers;
        cfg.spki_pins = pins;
        cfg.fallback = fallback;
        h.total = (unsigned) h.n_names * h.repeat;
        h.calls = calloc(h.total, sizeof *h.calls);
        h.started = calloc(h.total, sizeof *h.started);
        h.latency = calloc(h.total, sizeof *h.latency);
        if (!h.calls || !h.started || !h.latency)
                return 1;

        r = sd_event_new(&h.event);
        if (r < 0)
                return 1;
        r = upstream_new(h.event, &cfg, &h.upstream);
        if (r < 0) {
                fprintf(stderr, "upstream_new: %s\n", strerror(-r));
                return 1;
        }
        if (sd_event_add_time_relative(h.event, &h.next, CLOCK_MONOTONIC, 0, 1000, on_next, &h) < 0 ||
            sd_event_source_set_enabled(h.next, SD_EVENT_OFF) < 0)
                return 1;
        if (udp) {
                h.udp_fd = socket(udp_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (h.udp_fd < 0 ||
                    connect(h.udp_fd, (struct sockaddr *) &udp_addr,
                            udp_addr.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) <
                            0 ||
                    sd_event_add_io(h.event, &h.udp_io, h.udp_fd, EPOLLIN, on_udp, NULL) < 0)
                        return 1;
                h.parallel = false;
        }
        if (h.kill_pid > 0 &&
            sd_event_add_time_relative(h.event, &h.killer, CLOCK_MONOTONIC, h.kill_after_usec, 1, on_kill, &h) < 0)
                return 1;

        if (h.parallel)
                while (h.sent < h.total)
                        send_one(&h);
        else
                send_one(&h);

        r = sd_event_loop(h.event);
        print_summary(&h);
        ret = r < 0 || h.n_errors > 0 ? 1 : 0;
        for (unsigned i = 0; i < h.total; i++)
                if (h.calls[i] != 1) {
                        printf("error: query %u got %u callbacks\n", i, h.calls[i]);
                        ret = 1;
                }
        h.upstream = upstream_free(h.upstream);
        sd_event_source_disable_unref(h.next);
        sd_event_source_disable_unref(h.killer);
        sd_event_source_disable_unref(h.udp_io);
        if (h.udp_fd >= 0)
                close(h.udp_fd);
        sd_event_unref(h.event);
        free(h.calls);
        free(h.started);
        free(h.latency);
        return ret;
}
