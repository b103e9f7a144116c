/* SPDX-License-Identifier: MIT */
/*
 * resolv.conf(5) reading for the plaintext fallback (resolvconf.h). The
 * format is line based: a keyword, white space, a value; glibc takes
 * "nameserver" lines in order and ignores what it cannot parse, and so do
 * we (with no limit of three: the fallback tries them in order anyway).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "upstream/resolvconf.h"
#include "common/read-file.h"

#define DNS_PORT 53
#define ADDRESS_TEXT_MAX 128


static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

bool resolvconf_sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET) {
                const struct sockaddr_in *x = (const struct sockaddr_in *) a, *y = (const struct sockaddr_in *) b;

                return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        }
        if (a->ss_family == AF_INET6) {
                const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) a, *y = (const struct sockaddr_in6 *) b;

                return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
                       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
        }
        return false;
}

/* "ADDRESS" or "IPV6%IFACE" to a socket address on port 53. */
static int parse_address(const char *text, size_t len, struct sockaddr_storage *ret) {
        char buf[ADDRESS_TEXT_MAX];
        struct sockaddr_in *in = (struct sockaddr_in *) ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        char *pct;

        if (len == 0 || len >= sizeof buf)
                return -EINVAL;
        memcpy(buf, text, len);
        buf[len] = '\0';
        memset(ret, 0, sizeof *ret);
        if (inet_pton(AF_INET, buf, &in->sin_addr) == 1) {
                /* 0.0.0.0 is glibc's "this host"; nothing sensible to us. */
                if (in->sin_addr.s_addr == htonl(INADDR_ANY))
                        return -EINVAL;
                in->sin_family = AF_INET;
                in->sin_port = htons(DNS_PORT);
                return 0;
        }
        pct = strchr(buf, '%');
        if (pct)
                *pct = '\0';
        if (inet_pton(AF_INET6, buf, &in6->sin6_addr) != 1 || IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
                return -EINVAL;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(DNS_PORT);
        if (pct) {
                char *end;
                unsigned long idx;

                if (pct[1] == '\0')
                        return -EINVAL;
                idx = if_nametoindex(pct + 1);
                if (idx == 0) {
                        idx = strtoul(pct + 1, &end, 10);
                        if (*end != '\0' || idx == 0 || idx > UINT32_MAX)
                                return -EINVAL;
                }
                in6->sin6_scope_id = (uint32_t) idx;
        }
        return 0;
}

static void add_server(ResolvConfServers *r, const struct sockaddr_storage *a, const struct sockaddr_storage *exclude,
                       size_t n_exclude) {
        for (size_t i = 0; i < n_exclude; i++)
                if (resolvconf_sockaddr_equal(a, &exclude[i])) {
                        r->n_excluded++;
                        return;
                }
        for (size_t i = 0; i < r->n; i++)
                if (resolvconf_sockaddr_equal(a, &r->addrs[i]))
                        return;
        if (r->n < RESOLVCONF_SERVERS_MAX)
                r->addrs[r->n++] = *a;
}

int resolvconf_parse(const char *text, size_t len, const struct sockaddr_storage *exclude, size_t n_exclude,
                     ResolvConfServers *ret) {
        static const char keyword[] = "nameserver";
        ResolvConfServers r = {};
        size_t pos = 0;

        while (pos < len) {
                size_t eol = pos, p, start;
                struct sockaddr_storage a;

                while (eol < len && text[eol] != '\n')
                        eol++;
                p = pos;
                pos = eol + 1;
                /* The keyword starts the line, as glibc wants it. */
                if (eol - p < sizeof keyword || memcmp(text + p, keyword, sizeof keyword - 1) != 0 ||
                    !is_blank(text[p + sizeof keyword - 1]))
                        continue;
                p += sizeof keyword - 1;
                while (p < eol && is_blank(text[p]))
                        p++;
                start = p;
                while (p < eol && !is_blank(text[p]) && text[p] != '#' && text[p] != ';' && text[p] != '\0')
                        p++;
                if (parse_address(text + start, p - start, &a) == 0)
                        add_server(&r, &a, exclude, n_exclude);
        }
        /* None: the caller's defaults apply (ztnad's come from the
         * configuration's key table). */
        if (r.n == 0)
                r.defaults = true;
        *ret = r;
        return 0;
}

int resolvconf_load(const char *path, const struct sockaddr_storage *exclude, size_t n_exclude,
                    ResolvConfServers *ret) {
        _cleanup_free_ char *buf = NULL;
        ReadFileStep step;
        size_t len;
        int r;

        r = read_regular_file(path, RESOLVCONF_FILE_MAX, 0, &buf, &len, NULL, &step);
        if (r == -ENOENT && step == READ_FILE_OPEN)
                return resolvconf_parse("", 0, exclude, n_exclude, ret);
        if (r < 0)
                return r;
        return resolvconf_parse(buf, len, exclude, n_exclude, ret);
}
