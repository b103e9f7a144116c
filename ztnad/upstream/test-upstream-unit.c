/* SPDX-License-Identifier: MIT */
/*
 * The upstream resolver's parts that need no DoT server: RFC 8467 padding
 * of every shape of query, SPKI pin syntax, configuration checks, queries
 * refused up front, a query to a closed port answered with a SERVFAIL and
 * an EDE (once, never from inside upstream_resolve()), a server in back-off
 * failing the next query at once, queries outstanding at upstream_free()
 * still answered; and resolv.conf parsing for the plaintext fallback.
 * tests/integration/test-upstream.sh covers the rest against unbound.
 */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dns-wire.h"
#include "conf/config.h"
#include "upstream/resolvconf.h"
#include "dns/stub.h"
#include "upstream/connection.h" /* upstream_pin_decode() */
#include "upstream/upstream.h"
#include "common/time-util.h"

static size_t make_query(uint8_t *buf, size_t cap, const char *name, uint16_t type, bool opt, bool do_bit) {
        DnsBuilder b;
        DnsName n;
        size_t len;

        ck_assert_int_eq(dns_name_from_text(name, &n), 0);
        dns_builder_init(&b, buf, cap);
        dns_builder_header(&b, 0x1234, DNS_FLAG_RD, 1, 0, 0, opt ? 1 : 0);
        dns_builder_name(&b, &n);
        dns_builder_u16(&b, type);
        dns_builder_u16(&b, DNS_CLASS_IN);
        if (opt)
                dns_builder_opt(&b, 1232, 0, do_bit, -1, NULL);
        ck_assert_int_eq(dns_builder_finish(&b, &len), 0);
        return len;
}

/* The OPT record's options: whether a padding option and a cookie are
 * there, and the padding's length. */
static void opt_options(const uint8_t *msg, size_t len, int *ret_pad, bool *ret_cookie, uint16_t *ret_flags) {
        DnsMessage m;
        DnsRRIter it;
        DnsRR rr;
        int found = 0;

        ck_assert_int_eq(dns_message_parse(msg, len, &m), 0);
        ck_assert(m.edns.present);
        *ret_pad = -1;
        *ret_cookie = false;
        *ret_flags = m.edns.flags;
        dns_rr_iter_init(&it, msg, len, &m);
        while (dns_rr_next(&it, &rr) > 0) {
                DnsCursor c;

                if (rr.type != DNS_TYPE_OPT)
                        continue;
                found++;
                dns_cursor_init(&c, msg, rr.end);
                dns_cursor_seek(&c, rr.rdata_off);
                while (dns_cursor_left(&c) > 0) {
                        uint16_t code = dns_cursor_u16(&c), olen = dns_cursor_u16(&c);
                        const uint8_t *p = dns_cursor_bytes(&c, olen);

                        ck_assert_int_eq(dns_cursor_error(&c), 0);
                        if (code == DNS_EDNS_OPT_PADDING) {
                                ck_assert_int_eq(*ret_pad, -1); /* only one */
                                *ret_pad = olen;
                                for (unsigned i = 0; i < olen; i++)
                                        ck_assert_int_eq(p[i], 0);
                        }
                        if (code == DNS_EDNS_OPT_COOKIE)
                                *ret_cookie = true;
                }
        }
        ck_assert_int_eq(found, 1);
}

/* A query as upstream_resolve() pads it: parsed first (garbage is
 * -EBADMSG there), then upstream_pad_query(). */
static int pad_query(const uint8_t *msg, size_t len, uint8_t **ret, size_t *ret_len) {
        DnsMessage m;

        if (dns_message_parse(msg, len, &m) < 0)
                return -EBADMSG;
        return upstream_pad_query(msg, len, &m, ret, ret_len);
}

START_TEST(test_pad_without_opt) {
        uint8_t q[512], *out = NULL;
        size_t len = make_query(q, sizeof q, "www.example.test", DNS_TYPE_A, false, false), olen;
        bool cookie;
        uint16_t flags;
        int pad;

        ck_assert_int_eq(pad_query(q, len, &out, &olen), 0);
        ck_assert_uint_eq(olen % PADDING_BLOCK, 0);
        ck_assert_uint_eq(olen, 128);
        /* Header (but ARCOUNT) and question unchanged. */
        ck_assert_mem_eq(out, q, DNS_OFF_ARCOUNT);
        ck_assert_mem_eq(out + DNS_HEADER_SIZE, q + DNS_HEADER_SIZE, len - DNS_HEADER_SIZE);
        ck_assert_uint_eq(out[DNS_OFF_ARCOUNT + 1], 1);
        opt_options(out, olen, &pad, &cookie, &flags);
        ck_assert_int_ge(pad, 0);
        free(out);
}
END_TEST

START_TEST(test_pad_keeps_opt) {
        uint8_t q[512], *out = NULL;
        size_t len, olen;
        bool cookie;
        uint16_t flags;
        int pad;

        /* With DO and a client cookie (8 bytes) already in the OPT. */
        len = make_query(q, sizeof q, "example.test", DNS_TYPE_AAAA, true, true);
        q[len - 2] = 0;
        q[len - 1] = 12; /* RDLENGTH */
        memcpy(q + len, "\x00\x0a\x00\x08" "abcdefgh", 12);
        len += 12;
        ck_assert_int_eq(pad_query(q, len, &out, &olen), 0);
        ck_assert_uint_eq(olen % PADDING_BLOCK, 0);
        opt_options(out, olen, &pad, &cookie, &flags);
        ck_assert(cookie);
        ck_assert(flags & DNS_EDNS_FLAG_DO);
        ck_assert_int_ge(pad, 0);
        ck_assert_uint_eq(out[DNS_OFF_ARCOUNT + 1], 1);
        free(out);
}
END_TEST

START_TEST(test_pad_replaces_padding) {
        uint8_t q[512], *out = NULL, *again = NULL;
        size_t len, olen, alen;
        bool cookie;
        uint16_t flags;
        int pad;

        /* A client's own padding of 3 bytes: replaced, not added to. */
        len = make_query(q, sizeof q, "a.test", DNS_TYPE_A, true, false);
        q[len - 1] = 7;
        memcpy(q + len, "\x00\x0c\x00\x03\x00\x00\x00", 7);
        len += 7;
        ck_assert_int_eq(pad_query(q, len, &out, &olen), 0);
        ck_assert_uint_eq(olen % PADDING_BLOCK, 0);
        opt_options(out, olen, &pad, &cookie, &flags);
        ck_assert(!cookie);
        /* Padding a padded query changes nothing. */
        ck_assert_int_eq(pad_query(out, olen, &again, &alen), 0);
        ck_assert_uint_eq(alen, olen);
        ck_assert_mem_eq(again, out, olen);
        free(out);
        free(again);
}
END_TEST

START_TEST(test_pad_boundaries) {
        /* Names of every length up to the longest: always a multiple of
         * the block, never a byte more than a block of padding. */
        char name[300];
        uint8_t q[600], *out;
        size_t len, olen;

        for (unsigned labels = 1; labels <= 127; labels++) {
                size_t pos = 0;

                for (unsigned i = 0; i < labels; i++) {
                        name[pos++] = 'a';
                        if (i + 1 < labels)
                                name[pos++] = '.';
                }
                name[pos] = '\0';
                len = make_query(q, sizeof q, name, DNS_TYPE_A, _i & 1, false);
                out = NULL;
                ck_assert_int_eq(pad_query(q, len, &out, &olen), 0);
                ck_assert_uint_eq(olen % PADDING_BLOCK, 0);
                ck_assert_uint_lt(olen - len, PADDING_BLOCK + DNS_OPT_SIZE + EDNS_OPTION_HEADER_SIZE);
                free(out);
        }
}
END_TEST

START_TEST(test_pad_rejects_garbage) {
        uint8_t q[512], *out = NULL;
        size_t len = make_query(q, sizeof q, "a.test", DNS_TYPE_A, false, false), olen;

        q[len++] = 0xff; /* a trailing byte */
        ck_assert_int_eq(pad_query(q, len, &out, &olen), -EBADMSG);
        ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_pins) {
        uint8_t pin[32];

        /* sha256 of "" in base64: a well-formed pin. */
        ck_assert_int_eq(upstream_pin_decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", pin), 0);
        ck_assert_uint_eq(pin[0], 0xe3);
        ck_assert_uint_eq(pin[31], 0x55);
        ck_assert_int_eq(upstream_pin_decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", pin), -EINVAL);
        ck_assert_int_eq(upstream_pin_decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU==", pin), -EINVAL);
        ck_assert_int_eq(upstream_pin_decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hS!FU=", pin), -EINVAL);
        ck_assert_int_eq(upstream_pin_decode("", pin), -EINVAL);
}
END_TEST

static void loopback(struct sockaddr_storage *a, uint16_t port) {
        struct sockaddr_in *in = (struct sockaddr_in *) a;

        memset(a, 0, sizeof *a);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* A port nothing listens on: bound, never listened to, closed on exit. */
static int closed_port(uint16_t *ret) {
        struct sockaddr_storage a;
        socklen_t l = sizeof a;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        loopback(&a, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(struct sockaddr_in)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &l), 0);
        *ret = ntohs(((struct sockaddr_in *) &a)->sin_port);
        return fd;
}

/* T as ztnad passes it: the upstream_timeout key's default (the key table
 * is the one place it is written; test-config checks its value). */
static uint64_t default_timeout(void) {
        _cleanup_config_ ZtnadConfig *d = NULL;

        ck_assert_int_eq(config_defaults(&d), 0);
        ck_assert_uint_gt(d->upstream_timeout_usec, 0);
        return d->upstream_timeout_usec;
}

START_TEST(test_config_checks) {
        sd_event *e = NULL;
        Upstream *u = NULL;
        UpstreamServer s = {};
        const char *bad_pin[] = { "not a pin" };
        UpstreamConfig c = { .servers = &s, .n_servers = 1, .timeout_usec = default_timeout() };

        ck_assert_int_ge(sd_event_new(&e), 0);
        /* No family. */
        ck_assert_int_eq(upstream_new(e, &c, &u), -EINVAL);
        loopback(&s.addr, 0);
        ck_assert_int_eq(upstream_new(e, &c, &u), -EINVAL); /* no port */
        loopback(&s.addr, 853);
        c.spki_pins = bad_pin;
        c.n_spki_pins = 1;
        ck_assert_int_eq(upstream_new(e, &c, &u), -EINVAL);
        c.n_spki_pins = 0;
        c.tls_ca_file = "/nonexistent/ca.pem";
        ck_assert_int_eq(upstream_new(e, &c, &u), -EIO);
        ck_assert_ptr_null(u);
        c.tls_ca_file = NULL;
        c.n_servers = UPSTREAM_SERVERS_MAX + 1;
        ck_assert_int_eq(upstream_new(e, &c, &u), -EINVAL);
        /* No server: the defaults are the configuration's, never this
         * module's own (test-config checks the key table's). */
        c = (UpstreamConfig) { .timeout_usec = default_timeout() };
        ck_assert_int_eq(upstream_new(e, &c, &u), -EINVAL);
        ck_assert_ptr_null(u);
        /* No T: its default too is the configuration's. */
        c = (UpstreamConfig) { .servers = &s, .n_servers = 1 };
        ck_assert_int_eq(upstream_new(e, &c, &u), -EINVAL);
        ck_assert_ptr_null(u);
        /* The plaintext fallback allowed with no plaintext server. */
        c = (UpstreamConfig) { .servers = &s, .n_servers = 1, .timeout_usec = default_timeout(),
                               .allow_plaintext_fallback = true };
        ck_assert_int_eq(upstream_new(e, &c, &u), -EINVAL);
        ck_assert_ptr_null(u);
        c.allow_plaintext_fallback = false;
        ck_assert_int_eq(upstream_new(e, &c, &u), 0);
        {
                UpstreamStatus st;

                upstream_get_status(u, &st);
                ck_assert_uint_eq(st.n_servers, 1);
                ck_assert_str_eq(st.servers[0].address, "127.0.0.1:853");
                ck_assert_int_eq(st.servers[0].state, UPSTREAM_SERVER_UNKNOWN);
                ck_assert(!st.allow_plaintext_fallback);
        }
        u = upstream_free(u);
        sd_event_unref(e);
}
END_TEST

typedef struct Result {
        unsigned calls;
        uint16_t rcode, id;
        int ede;
        char text[300];
        bool servfail_wire;
} Result;

static void on_result(void *userdata, const uint8_t *answer, size_t len, uint16_t rcode, int ede_code,
                      const char *ede_text) {
        Result *r = userdata;
        DnsMessage m;

        r->calls++;
        r->rcode = rcode;
        r->ede = ede_code;
        snprintf(r->text, sizeof r->text, "%s", ede_text ? ede_text : "");
        if (answer && dns_message_parse(answer, len, &m) == 0) {
                r->servfail_wire = m.rcode == DNS_RCODE_SERVFAIL && (m.flags & DNS_FLAG_QR);
                r->id = m.id;
                if (m.edns.present)
                        ck_assert_int_eq(m.edns.ede_code, ede_code);
        }
}

START_TEST(test_refused_and_backoff) {
        sd_event *e = NULL;
        Upstream *u = NULL;
        UpstreamServer s = {};
        UpstreamConfig c = { .servers = &s, .n_servers = 1, .timeout_usec = 2 * USEC_PER_SEC };
        uint8_t q[512];
        size_t len = make_query(q, sizeof q, "www.example.test", DNS_TYPE_A, true, false);
        Result r1 = {}, r2 = {};
        UpstreamStatus st;
        uint16_t port;
        int fd = closed_port(&port);

        loopback(&s.addr, port);
        strcpy(s.tls_name, "dns.test");
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(upstream_new(e, &c, &u), 0);
        ck_assert(upstream_is_idle(u));
        ck_assert_int_eq(upstream_resolve(u, q, len, on_result, &r1), 0);
        ck_assert(!upstream_is_idle(u)); /* a query in flight */
        ck_assert_uint_eq(r1.calls, 0); /* never from inside */
        while (r1.calls == 0)
                ck_assert_int_ge(sd_event_run(e, UINT64_MAX), 0);
        ck_assert_uint_eq(r1.calls, 1);
        ck_assert_uint_eq(r1.rcode, DNS_RCODE_SERVFAIL);
        ck_assert_int_eq(r1.ede, DNS_EDE_NO_REACHABLE_AUTHORITY);
        ck_assert_msg(strstr(r1.text, "Connection refused"), "%s", r1.text);
        ck_assert(r1.servfail_wire);
        ck_assert_uint_eq(r1.id, 0x1234);
        /* Answered, but a probe of the failed server is due: its state
         * can still change without a query. */
        ck_assert(!upstream_is_idle(u));

        /* In back-off: the next query fails at once, with the reason. */
        upstream_get_status(u, &st);
        ck_assert_int_eq(st.servers[0].state, UPSTREAM_SERVER_FAILED);
        ck_assert_uint_eq(st.servers[0].consecutive_failures, 1);
        ck_assert_uint_gt(st.servers[0].backoff_until_usec, 0);
        ck_assert_uint_eq(st.servers[0].n_connections, 1);
        ck_assert_int_eq(upstream_resolve(u, q, len, on_result, &r2), 0);
        ck_assert_uint_eq(r2.calls, 0);
        for (int i = 0; i < 10 && r2.calls == 0; i++)
                ck_assert_int_ge(sd_event_run(e, 0), 0);
        ck_assert_uint_eq(r2.calls, 1);
        ck_assert_int_eq(r2.ede, DNS_EDE_NO_REACHABLE_AUTHORITY);
        ck_assert_msg(strstr(r2.text, "next try in"), "%s", r2.text);
        upstream_get_status(u, &st);
        ck_assert_uint_eq(st.servers[0].n_connections, 1); /* not tried again */
        ck_assert_uint_eq(st.n_servfail, 2);

        u = upstream_free(u);
        sd_event_unref(e);
        close(fd);
}
END_TEST

START_TEST(test_bad_queries_refused) {
        sd_event *e = NULL;
        Upstream *u = NULL;
        UpstreamServer s = {};
        UpstreamConfig c = { .servers = &s, .n_servers = 1, .timeout_usec = default_timeout() };
        uint8_t q[512];
        size_t len = make_query(q, sizeof q, "a.test", DNS_TYPE_A, false, false);
        Result r = {};

        loopback(&s.addr, 853);
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(upstream_new(e, &c, &u), 0);
        ck_assert_int_eq(upstream_resolve(u, q, DNS_HEADER_SIZE - 1, on_result, &r), -EBADMSG);
        ck_assert_int_eq(upstream_resolve(u, q, len - 1, on_result, &r), -EBADMSG);
        q[DNS_OFF_FLAGS] |= DNS_FLAG_QR >> 8;
        ck_assert_int_eq(upstream_resolve(u, q, len, on_result, &r), -EBADMSG); /* a response */
        q[DNS_OFF_FLAGS] &= (uint8_t) ~(DNS_FLAG_QR >> 8);
        q[DNS_OFF_QDCOUNT + 1] = 0;
        ck_assert_int_eq(upstream_resolve(u, q, len, on_result, &r), -EBADMSG); /* no question */
        ck_assert_uint_eq(r.calls, 0);
        u = upstream_free(u);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_free_answers_pending) {
        sd_event *e = NULL;
        Upstream *u = NULL;
        UpstreamServer s = {};
        UpstreamConfig c = { .servers = &s, .n_servers = 1, .timeout_usec = default_timeout() };
        uint8_t q[512];
        size_t len = make_query(q, sizeof q, "a.test", DNS_TYPE_A, false, false);
        Result r[3] = {};

        /* A listener that never accepts: the connection stays opening. */
        uint16_t port;
        int fd = closed_port(&port);

        ck_assert_int_eq(listen(fd, 1), 0);
        loopback(&s.addr, port);
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(upstream_new(e, &c, &u), 0);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(upstream_resolve(u, q, len, on_result, &r[i]), 0);
        ck_assert_int_ge(sd_event_run(e, 10000), 0);
        u = upstream_free(u);
        for (int i = 0; i < 3; i++) {
                ck_assert_uint_eq(r[i].calls, 1);
                ck_assert_int_eq(r[i].ede, DNS_EDE_OTHER);
                ck_assert(r[i].servfail_wire);
        }
        sd_event_unref(e);
        close(fd);
}
END_TEST

static uint64_t mono_usec(void) {
        return clock_now_usec(CLOCK_MONOTONIC);
}

/* The bound the stub's deadline is derived from (timeouts.h): the formula,
 * then a real upstream with every server silent, small T, finishing after
 * using its servers' time but within the bound it reports. */
START_TEST(test_max_duration) {
        enum { N_DOT = 3, N_PLAIN = 2 };
        const uint64_t t = 200 * USEC_PER_MSEC;
        UpstreamServer s[N_DOT] = {};
        struct sockaddr_storage plain[N_PLAIN];
        UpstreamConfig c = { .servers = s, .n_servers = N_DOT, .timeout_usec = t };
        int dot_fd[N_DOT], plain_fd[N_PLAIN];
        sd_event *e = NULL;
        Upstream *u = NULL;
        uint8_t q[512];
        size_t len = make_query(q, sizeof q, "slow.example.test", DNS_TYPE_A, false, false);
        Result r = {};
        uint64_t t0, took;

        /* one attempt per server, one more for a dropped connection */
        ck_assert_uint_eq(upstream_max_duration_usec(&c), (N_DOT + 1) * t);
        c.allow_plaintext_fallback = true;
        c.fallback = plain;
        c.n_fallback = N_PLAIN;
        /* and UDP, then TCP, per plaintext server */
        ck_assert_uint_eq(upstream_max_duration_usec(&c), (N_DOT + 1 + 2 * N_PLAIN) * t);
        /* the configuration's default T and default servers: two (and
         * their two plain ones) */
        const uint64_t def = default_timeout();
        ck_assert_uint_eq(upstream_max_duration_usec(&(UpstreamConfig) { .n_servers = 2, .timeout_usec = def }),
                          3 * def);
        ck_assert_uint_eq(upstream_max_duration_usec(&(UpstreamConfig) { .n_servers = 2,
                                                                         .timeout_usec = def,
                                                                         .allow_plaintext_fallback = true,
                                                                         .n_fallback = 2 }),
                          7 * def);
        /* upstream_timeout's largest value, one server: far past the 10 s a
         * fixed stub deadline gave */
        ck_assert_uint_gt(upstream_max_duration_usec(&(UpstreamConfig) { .n_servers = 1,
                                                                          .timeout_usec = 60 * USEC_PER_SEC }),
                          STUB_DEFAULT_FORWARD_TIMEOUT_USEC);

        /* DoT servers that complete TCP (the kernel's backlog) and never
         * answer the TLS handshake; plain servers that never read. */
        for (int i = 0; i < N_DOT; i++) {
                uint16_t port;

                dot_fd[i] = closed_port(&port);
                ck_assert_int_eq(listen(dot_fd[i], 8), 0);
                loopback(&s[i].addr, port);
                strcpy(s[i].tls_name, "dns.test");
        }
        for (int i = 0; i < N_PLAIN; i++) {
                socklen_t l = sizeof plain[i];

                plain_fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(plain_fd[i], 0);
                loopback(&plain[i], 0);
                ck_assert_int_eq(bind(plain_fd[i], (struct sockaddr *) &plain[i], sizeof(struct sockaddr_in)), 0);
                ck_assert_int_eq(getsockname(plain_fd[i], (struct sockaddr *) &plain[i], &l), 0);
        }
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(upstream_new(e, &c, &u), 0);
        t0 = mono_usec();
        ck_assert_int_eq(upstream_resolve(u, q, len, on_result, &r), 0);
        while (r.calls == 0)
                ck_assert_int_ge(sd_event_run(e, UINT64_MAX), 0);
        took = mono_usec() - t0;
        ck_assert_uint_eq(r.rcode, DNS_RCODE_SERVFAIL);
        ck_assert_msg(strstr(r.text, "plaintext"), "%s", r.text);
        /* The DoT servers for at least T (hedged, they overlap), then each
         * plain server for T: loose below, the bound above. */
        ck_assert_msg(took >= (1 + N_PLAIN) * t - t / 2, "took %" PRIu64 " us", took);
        ck_assert_msg(took <= upstream_max_duration_usec(&c), "took %" PRIu64 " us, bound %" PRIu64, took,
                      upstream_max_duration_usec(&c));

        u = upstream_free(u);
        sd_event_unref(e);
        for (int i = 0; i < N_DOT; i++)
                close(dot_fd[i]);
        for (int i = 0; i < N_PLAIN; i++)
                close(plain_fd[i]);
}
END_TEST

/* ---- resolv.conf ---- */

static const char *addr_text(const struct sockaddr_storage *a, char *buf, size_t len) {
        char host[INET6_ADDRSTRLEN];

        if (a->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) a;

                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
        } else {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) a;

                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                snprintf(buf, len, "[%s%%%u]:%u", host, in6->sin6_scope_id, ntohs(in6->sin6_port));
        }
        return buf;
}

START_TEST(test_resolvconf_typical) {
        static const char text[] = "# written by a DHCP client\n"
                                   "search example.org\n"
                                   "nameserver 192.0.2.53\n"
                                   "nameserver\t2001:db8::53   # second\n"
                                   "options edns0 trust-ad\n"
                                   "nameserver 192.0.2.53\n"       /* again: once */
                                   "; nameserver 192.0.2.99\n"     /* a comment */
                                   "  nameserver 192.0.2.98\n"     /* not at the start */
                                   "nameservers 192.0.2.97\n"      /* another keyword */
                                   "nameserver 0.0.0.0\n"          /* this host */
                                   "nameserver not-an-address\n"
                                   "nameserver 192.0.2.54;x\n"
                                   "nameserver fe80::1%1\r\n"
                                   "nameserver 192.0.2.55";        /* no newline */
        ResolvConfServers r;
        char b[80];

        ck_assert_int_eq(resolvconf_parse(text, strlen(text), NULL, 0, &r), 0);
        ck_assert(!r.defaults);
        ck_assert_uint_eq(r.n, 5);
        ck_assert_str_eq(addr_text(&r.addrs[0], b, sizeof b), "192.0.2.53:53");
        ck_assert_str_eq(addr_text(&r.addrs[1], b, sizeof b), "[2001:db8::53%0]:53");
        ck_assert_str_eq(addr_text(&r.addrs[2], b, sizeof b), "192.0.2.54:53");
        ck_assert_str_eq(addr_text(&r.addrs[3], b, sizeof b), "[fe80::1%1]:53");
        ck_assert_str_eq(addr_text(&r.addrs[4], b, sizeof b), "192.0.2.55:53");
}
END_TEST

START_TEST(test_resolvconf_excludes_ourselves) {
        static const char text[] = "nameserver 127.0.0.53\nnameserver 127.0.0.1\n";
        struct sockaddr_storage ours[2];
        ResolvConfServers r;
        char b[80];

        loopback(&ours[0], 53);
        ((struct sockaddr_in *) &ours[0])->sin_addr.s_addr = htonl(0x7f000035); /* 127.0.0.53:53 */
        loopback(&ours[1], 15353);
        ck_assert_int_eq(resolvconf_parse(text, strlen(text), ours, 2, &r), 0);
        ck_assert_uint_eq(r.n, 1);
        ck_assert_uint_eq(r.n_excluded, 1);
        ck_assert_str_eq(addr_text(&r.addrs[0], b, sizeof b), "127.0.0.1:53");
        /* Only ourselves: the defaults, never us. */
        ck_assert_int_eq(resolvconf_parse(text, 22, ours, 1, &r), 0);
        ck_assert(r.defaults);
        ck_assert_uint_eq(r.n, 0);
}
END_TEST

START_TEST(test_resolvconf_limits) {
        char text[2048];
        size_t pos = 0;
        ResolvConfServers r;
        char b[80];

        for (int i = 1; i <= RESOLVCONF_SERVERS_MAX + 4; i++)
                pos += (size_t) snprintf(text + pos, sizeof text - pos, "nameserver 192.0.2.%d\n", i);
        ck_assert_int_eq(resolvconf_parse(text, pos, NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n, RESOLVCONF_SERVERS_MAX);
        ck_assert_str_eq(addr_text(&r.addrs[RESOLVCONF_SERVERS_MAX - 1], b, sizeof b), "192.0.2.16:53");
        /* Empty, NUL bytes, a keyword alone. */
        ck_assert_int_eq(resolvconf_parse("", 0, NULL, 0, &r), 0);
        ck_assert(r.defaults);
        ck_assert_int_eq(resolvconf_parse("nameserver\n", 11, NULL, 0, &r), 0);
        ck_assert(r.defaults);
        ck_assert_int_eq(resolvconf_parse("nameserver 192.0.2.1\0junk\n", 26, NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n, 1);
}
END_TEST

START_TEST(test_resolvconf_load) {
        char path[] = "/tmp/test-resolvconf-XXXXXX";
        ResolvConfServers r;
        int fd = mkstemp(path);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "nameserver 192.0.2.7\n", 21), 21);
        close(fd);
        ck_assert_int_eq(resolvconf_load(path, NULL, 0, &r), 0);
        ck_assert_uint_eq(r.n, 1);
        ck_assert(!r.defaults);
        unlink(path);
        ck_assert_int_eq(resolvconf_load(path, NULL, 0, &r), 0);
        ck_assert(r.defaults);
        ck_assert_int_eq(resolvconf_load("/", NULL, 0, &r), -EINVAL);
        /* a FIFO nobody writes: refused at once, not waited on */
        ck_assert_int_eq(mkfifo(path, 0644), 0);
        ck_assert_int_eq(resolvconf_load(path, NULL, 0, &r), -EINVAL);
        unlink(path);
}
END_TEST

static Suite *upstream_suite(void) {
        Suite *s = suite_create("upstream");
        TCase *tc = tcase_create("padding");

        tcase_add_test(tc, test_pad_without_opt);
        tcase_add_test(tc, test_pad_keeps_opt);
        tcase_add_test(tc, test_pad_replaces_padding);
        tcase_add_loop_test(tc, test_pad_boundaries, 0, 2);
        tcase_add_test(tc, test_pad_rejects_garbage);
        suite_add_tcase(s, tc);

        tc = tcase_create("upstream");
        tcase_add_test(tc, test_pins);
        tcase_add_test(tc, test_config_checks);
        tcase_add_test(tc, test_refused_and_backoff);
        tcase_add_test(tc, test_bad_queries_refused);
        tcase_add_test(tc, test_free_answers_pending);
        tcase_add_test(tc, test_max_duration);
        tcase_set_timeout(tc, 30);
        suite_add_tcase(s, tc);

        tc = tcase_create("resolvconf");
        tcase_add_test(tc, test_resolvconf_typical);
        tcase_add_test(tc, test_resolvconf_excludes_ourselves);
        tcase_add_test(tc, test_resolvconf_limits);
        tcase_add_test(tc, test_resolvconf_load);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(upstream_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
