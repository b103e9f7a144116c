/* SPDX-License-Identifier: MIT */
/*
 * The DNS state file between ztnad and its root helper (dns-state.h), and
 * the reverse zones of the tailnet ranges.
 *
 * The parser accepts one spelling of everything: each address, port and
 * prefix must read back as it is written (inet_ntop's form, no leading
 * zeros), so there is no second way to say a thing for a hostile writer to
 * explore.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/read-file.h"
#include "common/write-file.h"
#include "common/inet-util.h"
#include "hostdns/dns-state.h"
#include "macro.h"

/* Accounts below this uid are system accounts (Debian's SYS_UID_MAX + 1). */
#define SYSTEM_UID_LIMIT 1000u
#define PORT_TEXT_MAX 5u
#define LABEL_MAX 63u

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t why_size, const char *fmt, ...) {
        if (why && why_size > 0) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, why_size, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

bool dns_state_server_usable(const DnsStateServer *s) {
        if (s->port == 0)
                return false;
        if (s->family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&s->addr.in6);
        return s->family == AF_INET && (ntohl(s->addr.in.s_addr) >> 24) == 127;
}

bool dns_state_server_resolved_ok(const DnsStateServer *s) {
        uint32_t a = s->family == AF_INET ? ntohl(s->addr.in.s_addr) : 0;
        return dns_state_server_usable(s) && a != 0x7f000035u && a != 0x7f000036u;
}

int dns_state_server_text(const DnsStateServer *s, char *buf, size_t size) {
        return inet_host_port(s->family, &s->addr, s->port, buf, size);
}

/* A domain as the store holds it: lower-case letters, digits and '-',
 * labels of 1 to 63 not starting or ending with '-', no final dot. */
static bool domain_valid(const char *s, size_t len) {
        size_t label = 0;

        if (len == 0 || len > DNS_STATE_DOMAIN_MAX)
                return false;
        for (size_t i = 0; i <= len; i++) {
                if (i == len || s[i] == '.') {
                        if (label == 0 || label > LABEL_MAX || s[i - label] == '-' || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
                label++;
        }
        return true;
}

static bool prefix_canonical(const ShmPrefix *p) {
        const uint8_t *b = p->family == AF_INET ? (const uint8_t *) &p->addr.in : p->addr.in6.s6_addr;
        unsigned bits = p->family == AF_INET ? 32 : 128;

        if (p->prefixlen > bits)
                return false;
        for (unsigned i = p->prefixlen; i < bits; i++)
                if (b[i / 8] & (0x80u >> (i % 8)))
                        return false;
        return true;
}

/* Digits without a leading zero, 1 to 65535 (`max`), the whole of s. */
static bool number_parse(const char *s, size_t len, unsigned max, unsigned *ret) {
        unsigned v = 0;

        if (len == 0 || len > PORT_TEXT_MAX || (len > 1 && s[0] == '0'))
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        if (v > max)
                return false;
        *ret = v;
        return true;
}

/* An address in inet_ntop()'s form exactly. */
static bool address_parse(const char *s, size_t len, int *ret_family, void *ret_addr) {
        char text[INET6_ADDRSTRLEN], back[INET6_ADDRSTRLEN];
        int family;

        if (len == 0 || len >= sizeof text)
                return false;
        memcpy(text, s, len);
        text[len] = '\0';
        family = memchr(text, ':', len) ? AF_INET6 : AF_INET;
        if (inet_pton(family, text, ret_addr) != 1 || !inet_ntop(family, ret_addr, back, sizeof back) ||
            strcmp(text, back) != 0)
                return false;
        *ret_family = family;
        return true;
}

static int parse_server(const char *v, size_t len, DnsState *st, unsigned line, char *why, size_t why_size) {
        const char *sp = memchr(v, ' ', len);
        DnsStateServer s = { 0 };
        unsigned port;

        if (st->n_servers >= DNS_STATE_SERVERS_MAX)
                return fail(why, why_size, "line %u: more than %u servers", line, DNS_STATE_SERVERS_MAX);
        if (!sp || !address_parse(v, (size_t) (sp - v), &s.family, &s.addr))
                return fail(why, why_size, "line %u: expected 'server ADDRESS PORT'", line);
        if (!number_parse(sp + 1, len - (size_t) (sp + 1 - v), 65535, &port) || port == 0)
                return fail(why, why_size, "line %u: the port is not a number from 1 to 65535", line);
        s.port = (uint16_t) port;
        if (!dns_state_server_usable(&s))
                return fail(why, why_size, "line %u: a server must be a loopback address", line);
        for (size_t i = 0; i < st->n_servers; i++)
                if (st->servers[i].family == s.family && st->servers[i].port == s.port &&
                    memcmp(&st->servers[i].addr, &s.addr, s.family == AF_INET ? 4 : 16) == 0)
                        return fail(why, why_size, "line %u: the server is listed twice", line);
        st->servers[st->n_servers++] = s;
        return 0;
}

static int parse_range(const char *v, size_t len, DnsState *st, unsigned line, char *why, size_t why_size) {
        const char *slash = memchr(v, '/', len);
        ShmPrefix p = { 0 };
        unsigned bits;

        if (st->n_ranges >= DNS_STATE_RANGES_MAX)
                return fail(why, why_size, "line %u: more than %u ranges", line, DNS_STATE_RANGES_MAX);
        if (!slash || !address_parse(v, (size_t) (slash - v), &p.family, &p.addr) ||
            !number_parse(slash + 1, len - (size_t) (slash + 1 - v), p.family == AF_INET ? 32 : 128, &bits))
                return fail(why, why_size, "line %u: expected 'range ADDRESS/LENGTH'", line);
        p.prefixlen = bits;
        if (!prefix_canonical(&p))
                return fail(why, why_size, "line %u: the range has host bits set", line);
        for (size_t i = 0; i < st->n_ranges; i++)
                if (st->ranges[i].family == p.family && st->ranges[i].prefixlen == p.prefixlen &&
                    memcmp(&st->ranges[i].addr, &p.addr, p.family == AF_INET ? 4 : 16) == 0)
                        return fail(why, why_size, "line %u: the range is listed twice", line);
        st->ranges[st->n_ranges++] = p;
        return 0;
}

int dns_state_parse(const char *data, size_t len, DnsState *ret, char *why, size_t why_size) {
        DnsState st = { 0 };
        size_t magic_len = strlen(DNS_STATE_MAGIC);
        unsigned line = 1, stage = 0, at;
        int r;

        if (len > DNS_STATE_SIZE_MAX)
                return fail(why, why_size, "larger than %u bytes", DNS_STATE_SIZE_MAX);
        if (len < magic_len + 1 || memcmp(data, DNS_STATE_MAGIC, magic_len) != 0 || data[magic_len] != '\n')
                return fail(why, why_size, "line 1: not '" DNS_STATE_MAGIC "'");
        if (data[len - 1] != '\n')
                return fail(why, why_size, "the last line does not end with a newline");

        for (size_t off = magic_len + 1; off < len;) {
                const char *s = data + off, *nl = memchr(s, '\n', len - off), *sp, *v;
                size_t n = (size_t) (nl - s), key_len, v_len;

                line++;
                off += n + 1;
                if (memchr(s, '\0', n))
                        return fail(why, why_size, "line %u: contains a NUL byte", line);
                sp = memchr(s, ' ', n);
                if (!sp || sp == s || sp + 1 == s + n)
                        return fail(why, why_size, "line %u: expected 'KEY VALUE'", line);
                key_len = (size_t) (sp - s);
                v = sp + 1;
                v_len = n - key_len - 1;
                /* In the order the writer uses: servers, domain, ranges. */
                if (key_len == 6 && memcmp(s, "server", 6) == 0)
                        at = 0;
                else if (key_len == 6 && memcmp(s, "domain", 6) == 0)
                        at = 1;
                else if (key_len == 5 && memcmp(s, "range", 5) == 0)
                        at = 2;
                else
                        return fail(why, why_size, "line %u: unknown key", line);
                if (at < stage)
                        return fail(why, why_size, "line %u: out of order (servers, then domain, then ranges)",
                                    line);
                stage = at;
                if (at == 0)
                        r = parse_server(v, v_len, &st, line, why, why_size);
                else if (at == 2)
                        r = parse_range(v, v_len, &st, line, why, why_size);
                else {
                        if (st.domain[0])
                                return fail(why, why_size, "line %u: a second domain", line);
                        if (!domain_valid(v, v_len))
                                return fail(why, why_size, "line %u: not a lower-case domain name", line);
                        memcpy(st.domain, v, v_len);
                        st.domain[v_len] = '\0';
                        r = 0;
                }
                if (r < 0)
                        return r;
        }
        *ret = st;
        return 0;
}

int dns_state_format(const DnsState *s, char *buf, size_t size) {
        size_t o = 0;
        int n;

#define OUT(...)                                                                 \
        do {                                                                     \
                n = snprintf(buf + o, o < size ? size - o : 0, __VA_ARGS__);     \
                if (n < 0)                                                       \
                        return -EINVAL;                                          \
                o += (size_t) n;                                                 \
        } while (0)

        if (s->n_servers > DNS_STATE_SERVERS_MAX || s->n_ranges > DNS_STATE_RANGES_MAX ||
            (s->domain[0] && !domain_valid(s->domain, strlen(s->domain))))
                return -EINVAL;
        OUT("%s\n", DNS_STATE_MAGIC);
        for (size_t i = 0; i < s->n_servers; i++) {
                char host[INET6_ADDRSTRLEN];

                if (!dns_state_server_usable(&s->servers[i]) ||
                    !inet_ntop(s->servers[i].family, &s->servers[i].addr, host, sizeof host))
                        return -EINVAL;
                OUT("server %s %u\n", host, s->servers[i].port);
        }
        if (s->domain[0])
                OUT("domain %s\n", s->domain);
        for (size_t i = 0; i < s->n_ranges; i++) {
                char host[INET6_ADDRSTRLEN];

                if ((s->ranges[i].family != AF_INET && s->ranges[i].family != AF_INET6) ||
                    !prefix_canonical(&s->ranges[i]) ||
                    !inet_ntop(s->ranges[i].family, &s->ranges[i].addr, host, sizeof host))
                        return -EINVAL;
                OUT("range %s/%u\n", host, s->ranges[i].prefixlen);
        }
#undef OUT
        if (o >= size || o > DNS_STATE_SIZE_MAX)
                return -ENOBUFS;
        return (int) o;
}

int dns_state_write(const char *path, const DnsState *s) {
        char text[DNS_STATE_SIZE_MAX + 1];
        int len = dns_state_format(s, text, sizeof text);

        if (len < 0)
                return len;
        /* On /run: no flush, a reboot starts it over anyway. */
        return write_file_atomic(path, ".", text, (size_t) len, 0644, 0);
}

int dns_state_read(const char *path, DnsState *ret, char *why, size_t why_size) {
        _cleanup_free_ char *dir = strdup(path), *data = NULL;
        _cleanup_close_ int dfd = -1;
        struct stat st, dst;
        ReadFileStep step;
        size_t len;
        char *slash;
        int r;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                return -EINVAL;
        if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fstat(dfd, &dst) < 0)
                return -errno;
        if (dst.st_uid >= SYSTEM_UID_LIMIT || (dst.st_mode & S_IWOTH)) {
                fail(why, why_size, "%s is owned by uid %u or writable by others", dir, (unsigned) dst.st_uid);
                return -EPERM;
        }
        /* From the directory just checked, never through a symbolic link;
         * a FIFO does not block (the shared reader's O_NONBLOCK). */
        r = read_regular_file_at(dfd, strrchr(path, '/') + 1, DNS_STATE_SIZE_MAX, READ_FILE_NOFOLLOW, &data,
                                 &len, &st, &step);
        if (r < 0 && (step == READ_FILE_OPEN || step == READ_FILE_STAT))
                return r;
        /* From here `st` is the file's, whether or not it was read: who may
         * have written it is judged before anything else about it. */
        if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
            (st.st_uid != 0 && st.st_uid != dst.st_uid)) {
                fail(why, why_size, "%s is not a regular file with one link, owned by root or %s's owner and "
                     "writable by its owner only", path, dir);
                return -EPERM;
        }
        if (r == -EFBIG)
                return fail(why, why_size, "%s: larger than %u bytes", path, DNS_STATE_SIZE_MAX);
        if (r < 0)
                return r;
        return dns_state_parse(data, len, ret, why, why_size);
}

/* ---- reverse zones ---- */

int dns_reverse_zones(const ShmPrefix *p, char (*zones)[DNS_REVERSE_ZONE_MAX], size_t max) {
        const uint8_t *b;
        unsigned unit, digits, spare;
        size_t n;

        if (p->family == AF_INET) {
                b = (const uint8_t *) &p->addr.in;
                unit = 8;
        } else if (p->family == AF_INET6) {
                b = p->addr.in6.s6_addr;
                unit = 4;
        } else
                return -EINVAL;
        if (!prefix_canonical(p))
                return -EINVAL;
        /* Whole units (octets or nibbles) at or above the prefix length;
         * the bits between the prefix and that boundary take every value. */
        digits = (p->prefixlen + unit - 1) / unit;
        spare = digits * unit - p->prefixlen;
        n = (size_t) 1 << spare;

        for (size_t k = 0; k < n && k < max; k++) {
                char *z = zones[k];
                size_t o = 0;

                /* The least significant unit first (RFC 1035 3.5, RFC 3596 2.5). */
                for (unsigned d = digits; d-- > 0;) {
                        unsigned v;

                        if (unit == 8)
                                v = b[d];
                        else
                                v = (b[d / 2] >> (d % 2 ? 0 : 4)) & 0xfu;
                        if (d == digits - 1)
                                v |= (unsigned) k; /* the spare low bits of the last unit */
                        o += (size_t) snprintf(z + o, DNS_REVERSE_ZONE_MAX - o, unit == 8 ? "%u." : "%x.", v);
                }
                snprintf(z + o, DNS_REVERSE_ZONE_MAX - o, "%s", unit == 8 ? "in-addr.arpa" : "ip6.arpa");
        }
        return (int) n;
}
