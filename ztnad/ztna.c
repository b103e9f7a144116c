/* SPDX-License-Identifier: MIT */
/*
 * ztna: the tailnet as the store holds it. Reads the record store directly
 * (no daemon socket yet), so it answers with exactly what every process on
 * the machine resolves, and works while ztnad is stopped.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "version.h"

enum {
        EXIT_FOUND = 0,
        EXIT_NOT_FOUND = 1,
        EXIT_USAGE = 2,
        EXIT_UNAVAILABLE = 3,
};

/* A snapshot torn by a concurrent publish is thrown away and read again;
 * publishes are rare, so a few tries are plenty. */
#define SNAPSHOT_TRIES 5

typedef struct Args {
        const char *store; /* --store, NULL for the reader's default */
        bool json;
} Args;

/* Writes whatever a command found into `out` (stdout) and `err` (stderr)
 * while the snapshot is held; both are printed only if the snapshot turns
 * out consistent. Returns the exit status. */
typedef int (*SnapshotFunc)(const ShmSnapshot *s, const Args *a, FILE *out, FILE *err, const void *userdata);

static const char *store_display(const Args *a) {
        const char *p;

        /* The reader's own choice, spelled out for messages. */
        if (a->store)
                return a->store;
        p = secure_getenv(SHM_ENV_PATH);
        return p && p[0] ? p : SHM_DEFAULT_PATH;
}

static void json_string(FILE *f, const char *s, size_t len) {
        fputc('"', f);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20 || c >= 0x7f)
                        /* Store names are LDH; anything else is shown, not
                         * trusted to be UTF-8. */
                        fprintf(f, "\\u%04x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

static void json_cstring(FILE *f, const char *s) {
        json_string(f, s, strlen(s));
}

/* "Win-A.yourorg.zt.net": the record's short name and the store's domain. */
static void print_fqdn(FILE *f, const ShmSnapshot *s, const ShmRecordView *v, bool json) {
        char buf[SHM_LABEL_MAX + 1 + SHM_DOMAIN_MAX + 1];
        int n = snprintf(buf, sizeof buf, "%.*s.%.*s", (int) v->name_len, v->name, (int) s->domain_len, s->domain);

        if (n < 0)
                return;
        if (json)
                json_string(f, buf, strlen(buf));
        else
                fputs(buf, f);
}

/* Every address of the record, IPv4 first, each preceded by `sep` (or as a
 * JSON array). */
static void print_addresses(FILE *f, const ShmRecordView *v, bool json, const char *sep) {
        char text[INET6_ADDRSTRLEN];
        bool first = true;

        if (json)
                fputc('[', f);
        for (size_t i = 0; i < v->n_v4 + v->n_v6; i++) {
                bool v4 = i < v->n_v4;
                const uint8_t *a = v4 ? v->v4 + i * 4 : v->v6 + (i - v->n_v4) * 16;

                if (!inet_ntop(v4 ? AF_INET : AF_INET6, a, text, sizeof text))
                        continue;
                if (json) {
                        fputs(first ? "" : ", ", f);
                        json_cstring(f, text);
                } else
                        fprintf(f, "%s%s", sep, text);
                first = false;
        }
        if (json)
                fputc(']', f);
}

static void print_record_json(FILE *f, const ShmSnapshot *s, const ShmRecordView *v) {
        fputs("{\"name\": ", f);
        json_string(f, v->name, v->name_len);
        fputs(", \"fqdn\": ", f);
        print_fqdn(f, s, v, true);
        fprintf(f, ", \"online\": %s, \"ttl\": %" PRIu32 ", \"addresses\": ", v->online ? "true" : "false", v->ttl);
        print_addresses(f, v, true, NULL);
        fputc('}', f);
}

static void reader_freep(ShmReader **r) {
        shm_reader_free(*r);
}

static int run_snapshot(const Args *a, SnapshotFunc func, const void *userdata) {
        _cleanup_(reader_freep) ShmReader *r = NULL;
        int ret;

        ret = shm_reader_new(a->store, &r);
        if (ret < 0) {
                fprintf(stderr, "ztna: cannot read the store %s: %s\n", store_display(a), strerror(-ret));
                return EXIT_UNAVAILABLE;
        }

        for (int tries = 0; tries < SNAPSHOT_TRIES; tries++) {
                _cleanup_free_ char *out_buf = NULL, *err_buf = NULL;
                size_t out_len = 0, err_len = 0;
                FILE *out, *err;
                ShmSnapshot s;
                bool consistent, closed;

                ret = shm_snapshot_begin(r, &s);
                if (ret == -EAGAIN)
                        continue;
                if (ret < 0) {
                        fprintf(stderr, "ztna: store %s is unavailable: %s\n", store_display(a), strerror(-ret));
                        return EXIT_UNAVAILABLE;
                }

                out = open_memstream(&out_buf, &out_len);
                err = open_memstream(&err_buf, &err_len);
                if (!out || !err) {
                        if (out)
                                fclose(out);
                        (void) shm_snapshot_end(&s);
                        fprintf(stderr, "ztna: out of memory\n");
                        return EXIT_UNAVAILABLE;
                }
                ret = func(&s, a, out, err, userdata);
                consistent = shm_snapshot_end(&s);
                closed = fclose(out) == 0;
                closed = fclose(err) == 0 && closed;
                if (!closed) {
                        fprintf(stderr, "ztna: out of memory\n");
                        return EXIT_UNAVAILABLE;
                }
                if (!consistent)
                        continue;

                fwrite(out_buf, 1, out_len, stdout);
                fwrite(err_buf, 1, err_len, stderr);
                if (fflush(stdout) != 0) {
                        fprintf(stderr, "ztna: cannot write the output: %s\n", strerror(errno));
                        return EXIT_UNAVAILABLE;
                }
                return ret;
        }
        fprintf(stderr, "ztna: store %s changed during every one of %d reads\n", store_display(a), SNAPSHOT_TRIES);
        return EXIT_UNAVAILABLE;
}

static int do_list(const ShmSnapshot *s, const Args *a, FILE *out, FILE *err, const void *userdata) {
        ShmRecordView v;

        (void) userdata;
        if (a->json) {
                fputs("{\"domain\": ", out);
                json_string(out, s->domain, s->domain_len);
                fputs(", \"peers\": [", out);
        }
        for (uint32_t i = 0; i < s->n_records; i++) {
                if (!shm_snapshot_record(s, i, &v)) {
                        fprintf(err, "ztna: record %" PRIu32 " is damaged; skipped\n", i);
                        continue;
                }
                if (a->json) {
                        fputs(i ? ", " : "", out);
                        print_record_json(out, s, &v);
                } else {
                        print_fqdn(out, s, &v, false);
                        print_addresses(out, &v, false, " ");
                        fputc('\n', out);
                }
        }
        if (a->json)
                fputs("]}\n", out);
        return EXIT_FOUND;
}

static int do_query(const ShmSnapshot *s, const Args *a, FILE *out, FILE *err, const void *userdata) {
        const char *q = userdata;
        union {
                struct in_addr in;
                struct in6_addr in6;
        } addr;
        int family = 0;
        ShmRecordView v;
        ShmClass c;

        if (inet_pton(AF_INET, q, &addr.in) == 1)
                family = AF_INET;
        else if (inet_pton(AF_INET6, q, &addr.in6) == 1)
                family = AF_INET6;
        c = family ? shm_snapshot_lookup_addr(s, family, &addr, &v) : shm_snapshot_lookup_name(s, q, &v);

        if (c != SHM_FOUND) {
                if (a->json) {
                        fputs("{\"query\": ", out);
                        json_cstring(out, q);
                        fputs(", \"found\": false}\n", out);
                }
                fprintf(err, "ztna: %s: %s\n", q,
                        c == SHM_UNKNOWN ? "no such peer in the tailnet" : "not a tailnet name or address");
                return EXIT_NOT_FOUND;
        }

        if (shm_snapshot_down(s))
                fprintf(err, "ztna: note: the store is marked down; lookups of tailnet names fail until it is up\n");

        if (a->json) {
                fputs("{\"query\": ", out);
                json_cstring(out, q);
                fputs(", \"found\": true, \"peer\": ", out);
                print_record_json(out, s, &v);
                fputs("}\n", out);
        } else if (family) {
                fprintf(out, "%s -> ", q);
                print_fqdn(out, s, &v, false);
                fputc('\n', out);
        } else if (v.n_v4 + v.n_v6 == 0) {
                print_fqdn(err, s, &v, false);
                fputs(" has no addresses\n", err);
        } else {
                char text[INET6_ADDRSTRLEN];

                /* One line per address, the form the earlier client printed. */
                for (size_t i = 0; i < v.n_v4 + v.n_v6; i++) {
                        bool v4 = i < v.n_v4;
                        const uint8_t *b = v4 ? v.v4 + i * 4 : v.v6 + (i - v.n_v4) * 16;

                        if (!inet_ntop(v4 ? AF_INET : AF_INET6, b, text, sizeof text))
                                continue;
                        print_fqdn(out, s, &v, false);
                        fprintf(out, " -> %s\n", text);
                }
        }
        return EXIT_FOUND;
}

static void format_time(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, size, "never");
}

static uint64_t age_usec(uint64_t then, uint64_t now) {
        /* The wall clock may step back; an age is never negative. */
        return now > then ? now - then : 0;
}

static int do_status(const ShmSnapshot *s, const Args *a, FILE *out, FILE *err, const void *userdata) {
        const ShmWireRange *ranges = s->ranges;
        struct timespec ts;
        uint64_t now;
        char published[64];

        (void) err;
        (void) userdata;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
        format_time(s->published_usec, published, sizeof published);

        if (a->json) {
                fputs("{\"store\": ", out);
                json_cstring(out, store_display(a));
                fprintf(out, ", \"state\": \"%s\", \"generation\": %" PRIu64 ", \"domain\": ",
                        shm_snapshot_down(s) ? "down" : "up", s->generation);
                json_string(out, s->domain, s->domain_len);
                fputs(", \"ranges\": [", out);
        } else {
                fprintf(out, "store:      %s\n", store_display(a));
                fprintf(out, "state:      %s\n", shm_snapshot_down(s) ? "down" : "up");
                fprintf(out, "generation: %" PRIu64 "\n", s->generation);
                fprintf(out, "domain:     %.*s\n", (int) s->domain_len, s->domain);
                fputs("ranges:    ", out);
        }
        for (uint32_t i = 0; i < s->n_ranges; i++) {
                char text[INET6_ADDRSTRLEN], prefix[INET6_ADDRSTRLEN + 8];
                uint8_t family = ranges[i].family;

                if ((family != 4 && family != 6) ||
                    !inet_ntop(family == 4 ? AF_INET : AF_INET6, ranges[i].addr, text, sizeof text))
                        continue;
                snprintf(prefix, sizeof prefix, "%s/%u", text, ranges[i].prefixlen);
                if (a->json) {
                        fputs(i ? ", " : "", out);
                        json_cstring(out, prefix);
                } else
                        fprintf(out, " %s", prefix);
        }

        if (a->json) {
                fprintf(out,
                        "], \"records\": %" PRIu32 ", \"published\": \"%s\", \"published_usec\": %" PRIu64
                        ", \"heartbeat_usec\": %" PRIu64 ", \"heartbeat_age_sec\": %" PRIu64
                        ", \"file_size\": %" PRIu64 "}\n",
                        s->n_records, published, s->published_usec, s->heartbeat_usec,
                        age_usec(s->heartbeat_usec, now) / 1000000, s->file_size);
        } else {
                fprintf(out, "\nrecords:    %" PRIu32 "\n", s->n_records);
                fprintf(out, "published:  %s (%" PRIu64 " s ago)\n", published,
                        age_usec(s->published_usec, now) / 1000000);
                fprintf(out, "heartbeat:  %" PRIu64 " s ago\n", age_usec(s->heartbeat_usec, now) / 1000000);
                fprintf(out, "file size:  %" PRIu64 " bytes\n", s->file_size);
        }
        return EXIT_FOUND;
}

static void help(void) {
        printf("Usage: ztna [OPTIONS] COMMAND\n"
               "\n"
               "Shows the tailnet as the record store holds it: what every program on this\n"
               "machine resolves.\n"
               "\n"
               "Commands:\n"
               "  status              the store: state, generation, records, publish time,\n"
               "                      heartbeat age, size\n"
               "  dns list            every peer with its addresses\n"
               "  dns query NAME      a peer's addresses (NAME: Win-A or win-a.yourorg.zt.net),\n"
               "                      or the peer holding an address\n"
               "\n"
               "Options:\n"
               "  -s, --store PATH    the record store (default: $" SHM_ENV_PATH " for tests, else\n"
               "                      " SHM_DEFAULT_PATH ")\n"
               "  -j, --json          print JSON\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n"
               "\n"
               "Exit status:\n"
               "  0  success (dns query: found)\n"
               "  1  dns query: no such peer or address\n"
               "  2  usage error\n"
               "  3  the store is missing, untrusted or unreadable\n");
}

static int usage_error(const char *msg) {
        fprintf(stderr, "ztna: %s. Try 'ztna --help'.\n", msg);
        return EXIT_USAGE;
}

int main(int argc, char **argv) {
        enum { OPT_VERSION = 0x100 };
        static const struct option options[] = {
                { "store", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        Args a = {};
        char **cmd;
        int n, c;

        while ((c = getopt_long(argc, argv, "s:jh", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        a.store = optarg;
                        break;
                case 'j':
                        a.json = true;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case OPT_VERSION:
                        printf("ztna " ZTNA_VERSION "\n");
                        return EXIT_SUCCESS;
                default:
                        return usage_error("unknown option");
                }

        cmd = argv + optind;
        n = argc - optind;
        if (n == 0)
                return usage_error("missing command");
        if (strcmp(cmd[0], "status") == 0) {
                if (n != 1)
                        return usage_error("status takes no arguments");
                return run_snapshot(&a, do_status, NULL);
        }
        if (strcmp(cmd[0], "dns") == 0) {
                if (n >= 2 && strcmp(cmd[1], "list") == 0) {
                        if (n != 2)
                                return usage_error("dns list takes no arguments");
                        return run_snapshot(&a, do_list, NULL);
                }
                if (n >= 2 && strcmp(cmd[1], "query") == 0) {
                        if (n != 3)
                                return usage_error("dns query takes one NAME");
                        return run_snapshot(&a, do_query, cmd[2]);
                }
                return usage_error("dns needs 'list' or 'query NAME'");
        }
        return usage_error("unknown command");
}
