/* SPDX-License-Identifier: MIT */
/*
 * `ztna doctor [NAME]`: checks each layer a lookup travels, in its order,
 * prints one line per layer (ok / warn / FAIL and what was measured), and
 * ends with the first failing layer, why, and the command that fixes it
 * (docs/doctor.md, ztna(1)).
 *
 * This file is the driver: it loads the configuration, asks ztnad for its
 * status, runs the layers (each in a file of its own, doctor-internal.h),
 * keeps their findings, judges across layers and prints the report, as
 * text or JSON, with the exit code.
 *
 * Every check is bounded (no check waits longer than its own timeout) and
 * runs unprivileged where it can; what needs root and was not checked is
 * said, never counted as healthy or as failed.
 *
 * The layers run in lookup order but are judged together: the store a
 * stopped ztnad left behind still answers, so with ztnad down the store is
 * not what failed, and a store never published because ztnad cannot start
 * takes the daemon's fix.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/doctor-internal.h"
#include "common/inet-util.h"
#include "common/read-file.h"
#include "common/time-util.h"
#include "macro.h"

#define STUB_TIMEOUT_MS 1000 /* per query: the whole run stays bounded */
/* The agreement layer's lookups: each at most this, and none past the
 * run's budget (DOCTOR_BUDGET_USEC). */
#define AGREE_TIMEOUT_USEC (750 * 1000ULL)
#define AGREE_ADDRS_MAX 8

/* ---- findings ---- */

static const char *const level_text[] = {
        [LEVEL_OK] = "ok",
        [LEVEL_SKIP] = "skip",
        [LEVEL_WARN] = "warn",
        [LEVEL_FAIL] = "FAIL",
};

static const char *const level_json[] = {
        [LEVEL_OK] = "ok",
        [LEVEL_SKIP] = "skip",
        [LEVEL_WARN] = "warn",
        [LEVEL_FAIL] = "fail",
};

static const char *const layer_names[_LAYER_MAX] = {
        [LAYER_NSSWITCH] = "nsswitch",
        [LAYER_STORE] = "store",
        [LAYER_DAEMON] = "daemon",
        [LAYER_SYSDNS] = "system-dns",
        [LAYER_STUB] = "stub",
        [LAYER_UPSTREAM] = "upstream",
        [LAYER_CACHES] = "caches",
        [LAYER_AGREEMENT] = "agreement",
};

Finding *doctor_add(Doctor *d, LayerId l, Level level, const char *id, const char *fmt, ...) {
        static Finding spare;
        Layer *layer = &d->layers[l];
        Finding *f;
        va_list ap;

        if (layer->n >= FINDINGS_MAX) {
                spare = (Finding) {};
                return &spare;
        }
        f = &layer->findings[layer->n++];
        *f = (Finding) { .level = level };
        snprintf(f->id, sizeof f->id, "%s", id);
        va_start(ap, fmt);
        vsnprintf(f->measured, sizeof f->measured, fmt, ap);
        va_end(ap);
        return f;
}

void finding_why(Finding *f, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(f->why, sizeof f->why, fmt, ap);
        va_end(ap);
}

void finding_fix(Finding *f, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(f->fix, sizeof f->fix, fmt, ap);
        va_end(ap);
}

static Level layer_level(const Layer *l) {
        Level worst = LEVEL_OK;

        for (size_t i = 0; i < l->n; i++)
                if (l->findings[i].level > worst)
                        worst = l->findings[i].level;
        return worst;
}

/* The finding a layer's line shows: its worst, the first of those. */
static const Finding *layer_headline(const Layer *l) {
        Level worst = layer_level(l);

        for (size_t i = 0; i < l->n; i++)
                if (l->findings[i].level == worst)
                        return &l->findings[i];
        return NULL;
}

static const Finding *layer_failure(const Doctor *d, LayerId id) {
        const Layer *l = &d->layers[id];

        for (size_t i = 0; i < l->n; i++)
                if (l->findings[i].level == LEVEL_FAIL)
                        return &l->findings[i];
        return NULL;
}

/* "systemctl VERB ztnad": the unit is what runs ztnad on an installed
 * system (tests stand a shell function in for systemctl). */
void doctor_restart_command(const Doctor *d, const char *verb, char *buf, size_t size) {
        (void) d;
        snprintf(buf, size, "systemctl %s ztnad", verb);
}

bool doctor_daemon_reachable(const Doctor *d) {
        return d->status != NULL;
}

const Finding *doctor_find_finding(const Doctor *d, LayerId l, const char *id) {
        for (size_t i = 0; i < d->layers[l].n; i++)
                if (strcmp(d->layers[l].findings[i].id, id) == 0)
                        return &d->layers[l].findings[i];
        return NULL;
}

/* ---- helpers the layers share ---- */

/* A bug fixed by the shared reader: a file over NSS_FILE_MAX was cut at
 * the cap and the cut text checked; it is now refused (-EFBIG). */
int doctor_read_file(const char *path, char **ret, size_t *ret_len) {
        return read_regular_file(path, NSS_FILE_MAX, 0, ret, ret_len, NULL, NULL);
}

/* The next line of `data` from *i into `line` (cut to fit, no newline);
 * *i moves past it. */
void doctor_next_line(const char *data, size_t len, size_t *i, char *line, size_t size) {
        size_t j = 0;

        while (*i < len && data[*i] != '\n') {
                if (j + 1 < size)
                        line[j++] = data[*i];
                (*i)++;
        }
        (*i)++;
        line[j] = '\0';
}

/* ---- upstream: each DoT server as the stub would reach it ---- */

/* Each server gets at most this; all of them together at most
 * UPSTREAM_BUDGET_USEC, so black-holed servers keep the run under 5 s. */
#define UPSTREAM_SERVER_USEC (1000 * 1000ULL)
#define UPSTREAM_BUDGET_USEC (2000 * 1000ULL)

typedef enum UpstreamProbe {
        PROBE_OK,
        PROBE_NO_TCP,     /* no connection before the deadline */
        PROBE_REFUSED,    /* refused or unreachable at once */
        PROBE_TLS,        /* the handshake failed or timed out */
        PROBE_NOT_YET,    /* certificate not yet valid: the clock */
        PROBE_EXPIRED,    /* certificate expired */
        PROBE_NAME,       /* certificate for another name */
        PROBE_UNTRUSTED,  /* chain does not verify */
        PROBE_PIN,        /* verifies, but matches no SPKI pin */
} UpstreamProbe;

/* Waits for `events` on fd until `deadline` (CLOCK_MONOTONIC usec). */
static bool wait_fd(int fd, short events, uint64_t deadline) {
        for (;;) {
                uint64_t now = clock_now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = fd, .events = events };
                int n;

                if (now >= deadline)
                        return false;
                n = poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                if (n > 0)
                        return true;
                if (n < 0 && errno != EINTR)
                        return false;
        }
}

static bool spki_pinned(const ZtnadConfig *cfg, X509 *cert) {
        X509_PUBKEY *key = X509_get_X509_PUBKEY(cert);
        unsigned char *der = NULL;
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        bool found = false;
        int n;

        if (!key || (n = i2d_X509_PUBKEY(key, &der)) <= 0)
                return false;
        if (EVP_Digest(der, (size_t) n, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == CONFIG_SHA256_SIZE)
                for (size_t i = 0; i < cfg->spki_pins.n && !found; i++)
                        found = memcmp(md, cfg->spki_pins.items[i].sha256, CONFIG_SHA256_SIZE) == 0;
        OPENSSL_free(der);
        return found;
}

static UpstreamProbe probe_upstream(const ZtnadConfig *cfg, SSL_CTX *ctx, const ConfigAddress *a, uint64_t deadline,
                                    double *rtt_ms, char *detail, size_t size) {
        _cleanup_close_ int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        uint64_t t0 = clock_now_usec(CLOCK_MONOTONIC);
        UpstreamProbe ret = PROBE_OK;
        int err = 0;
        socklen_t el = sizeof err;
        SSL *ssl;
        long v;

        detail[0] = '\0';
        if (fd < 0) {
                snprintf(detail, size, "socket: %s", strerror(errno));
                return PROBE_REFUSED;
        }
        if (connect(fd, (const struct sockaddr *) &a->sa, a->sa_len) < 0 && errno != EINPROGRESS) {
                snprintf(detail, size, "%s", strerror(errno));
                return PROBE_REFUSED;
        }
        if (!wait_fd(fd, POLLOUT, deadline)) {
                snprintf(detail, size, "no TCP connection in %" PRIu64 " ms",
                         (clock_now_usec(CLOCK_MONOTONIC) - t0) / 1000);
                return PROBE_NO_TCP;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
                snprintf(detail, size, "%s", strerror(err ?: errno));
                return PROBE_REFUSED;
        }
        *rtt_ms = (double) (clock_now_usec(CLOCK_MONOTONIC) - t0) / 1000.0;

        ssl = SSL_new(ctx);
        if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, a->tls_name) != 1 ||
            SSL_set1_host(ssl, a->tls_name) != 1) {
                SSL_free(ssl);
                snprintf(detail, size, "cannot set up TLS");
                return PROBE_TLS;
        }
        /* Verified, but the handshake goes on whatever the result, so the
         * reason (the clock, the name, the chain) can be told apart. */
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        for (;;) {
                int r = SSL_connect(ssl), e;

                if (r == 1)
                        break;
                e = SSL_get_error(ssl, r);
                if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
                    wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
                        continue;
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                        snprintf(detail, size, "no TLS handshake before the deadline");
                else {
                        unsigned long ec = ERR_get_error();
                        snprintf(detail, size, "TLS handshake failed: %s",
                                 ec ? ERR_reason_error_string(ec) ?: "?" : "connection closed");
                }
                ERR_clear_error();
                SSL_free(ssl);
                return PROBE_TLS;
        }
        v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
                snprintf(detail, size, "%s", X509_verify_cert_error_string(v));
        switch (v) {
        case X509_V_OK:
                break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
                ret = PROBE_NOT_YET;
                break;
        case X509_V_ERR_CERT_HAS_EXPIRED:
                ret = PROBE_EXPIRED;
                break;
        case X509_V_ERR_HOSTNAME_MISMATCH: {
                X509 *leaf = SSL_get0_peer_certificate(ssl);
                char subject[200] = "?";
                if (leaf)
                        X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
                snprintf(detail, size, "the certificate (%s) is not for %s", subject, a->tls_name);
                ret = PROBE_NAME;
                break;
        }
        default:
                ret = PROBE_UNTRUSTED;
        }
        if (ret == PROBE_OK && cfg->spki_pins.n > 0) {
                STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
                bool pinned = false;
                for (int i = 0; chain && i < sk_X509_num(chain) && !pinned; i++)
                        pinned = spki_pinned(cfg, sk_X509_value(chain, i));
                if (!pinned) {
                        snprintf(detail, size, "no certificate of the chain matches one of the %zu SPKI pins",
                                 cfg->spki_pins.n);
                        ret = PROBE_PIN;
                }
        }
        (void) SSL_shutdown(ssl);
        SSL_free(ssl);
        return ret;
}

/* ztnad's own view of the server ("up", "failed: ..."), from its status. */
static void upstream_health(const Doctor *d, const char *addr, char *buf, size_t size) {
        const json_t *list = d->status ? json_object_get(json_object_get(d->status, "dns"), "upstream") : NULL;
        size_t i;
        json_t *s;

        snprintf(buf, size, "ztnad: unknown");
        json_array_foreach (list, i, s) {
                const char *a = json_string_value(json_object_get(s, "address"));
                const char *err = json_string_value(json_object_get(s, "last_error"));
                if (a && strcmp(a, addr) == 0) {
                        snprintf(buf, size, "ztnad: %s%s%s",
                                 json_string_value(json_object_get(s, "state")) ?: "?", err ? ", last error: " : "",
                                 err ?: "");
                        return;
                }
        }
}

void doctor_check_upstream(Doctor *d) {
        uint64_t budget_end = clock_now_usec(CLOCK_MONOTONIC) + UPSTREAM_BUDGET_USEC;
        const ZtnadConfig *cfg = d->cfg;
        UpstreamProbe res[16];
        char details[16][TEXT_MAX];
        double rtt[16] = { 0 };
        size_t n, n_ok = 0;
        SSL_CTX *ctx;

        if (!cfg) {
                doctor_add(d, LAYER_UPSTREAM, LEVEL_SKIP, "upstream-unknown", "the configuration cannot be read");
                return;
        }
        if (!cfg->stub || cfg->upstream.n == 0) {
                doctor_add(d, LAYER_UPSTREAM, LEVEL_OK, "upstream-off", "the stub is off: no upstream is used");
                return;
        }
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
            (cfg->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL)
                              : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
                Finding *f = doctor_add(d, LAYER_UPSTREAM, LEVEL_FAIL, "upstream-ca",
                                        "cannot load the CAs (%s)", cfg->tls_ca_file ?: "the system's");
                finding_why(f, "no upstream certificate can be verified");
                finding_fix(f, "check tls_ca_file in %s", d->config_path);
                SSL_CTX_free(ctx);
                ERR_clear_error();
                return;
        }
        n = DOCTOR_MIN(cfg->upstream.n, ELEMENTSOF(res));
        for (size_t i = 0; i < n; i++) {
                uint64_t now = clock_now_usec(CLOCK_MONOTONIC), deadline = DOCTOR_MIN(now + UPSTREAM_SERVER_USEC, budget_end);

                if (now >= budget_end) {
                        res[i] = PROBE_NO_TCP;
                        snprintf(details[i], sizeof details[i], "not tried: the doctor's time for upstreams ran out");
                        continue;
                }
                res[i] = probe_upstream(cfg, ctx, &cfg->upstream.items[i], deadline, &rtt[i], details[i],
                                        sizeof details[i]);
                n_ok += res[i] == PROBE_OK;
        }
        SSL_CTX_free(ctx);

        for (size_t i = 0; i < n; i++) {
                const ConfigAddress *a = &cfg->upstream.items[i];
                char addr[80], health[TEXT_MAX / 2];
                /* Every server failing breaks every public name; one of
                 * several is a warning. The clock is a failure either way. */
                Level bad = n_ok == 0 || res[i] == PROBE_NOT_YET ? LEVEL_FAIL : LEVEL_WARN;
                Finding *f;

                (void) inet_host_port(a->sa.ss_family, sockaddr_ip(&a->sa), a->port, addr, sizeof addr);
                upstream_health(d, addr, health, sizeof health);
                switch (res[i]) {
                case PROBE_OK:
                        doctor_add(d, LAYER_UPSTREAM, LEVEL_OK, "upstream-ok",
                                   "%s#%s: TLS, chain and name verified%s, TCP %.1f ms; %s", addr, a->tls_name,
                                   cfg->spki_pins.n ? ", pinned" : "", rtt[i], health);
                        break;
                case PROBE_NO_TCP:
                case PROBE_REFUSED:
                        f = doctor_add(d, LAYER_UPSTREAM, bad, "upstream-unreachable", "%s#%s: %s; %s", addr,
                                       a->tls_name, details[i], health);
                        finding_why(f, res[i] == PROBE_NO_TCP ? "nothing answers on the port: a firewall drops it or "
                                                                "the route is gone"
                                                               : "the connection is refused or unroutable");
                        finding_fix(f, "check the route and firewall to %s (nc -vz %.*s %u), or change upstream in %s",
                                    addr, (int) (strrchr(addr, ':') - addr), addr, a->port, d->config_path);
                        break;
                case PROBE_TLS:
                        f = doctor_add(d, LAYER_UPSTREAM, bad, "upstream-tls-failed", "%s#%s: %s; %s", addr,
                                       a->tls_name, details[i], health);
                        finding_why(f, "the port answers, but not with TLS the stub can use (not a DoT server?)");
                        finding_fix(f, "openssl s_client -connect %s -servername %s (see what answers), or change "
                                       "upstream in %s",
                                    addr, a->tls_name, d->config_path);
                        break;
                case PROBE_NOT_YET: {
                        char nowtext[40];
                        time_t t = time(NULL);
                        struct tm tm;
                        strftime(nowtext, sizeof nowtext, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
                        f = doctor_add(d, LAYER_UPSTREAM, LEVEL_FAIL, "upstream-clock",
                                       "%s#%s: certificate not yet valid at this system's time %s; %s", addr,
                                       a->tls_name, nowtext, health);
                        finding_why(f, "the system clock is behind: no certificate verifies until it is set");
                        finding_fix(f, "timedatectl set-ntp true (or set the clock: date -u -s ...); check with date "
                                       "-u");
                        break;
                }
                case PROBE_EXPIRED:
                        f = doctor_add(d, LAYER_UPSTREAM, bad, "upstream-cert-expired",
                                       "%s#%s: certificate has expired; %s", addr, a->tls_name, health);
                        finding_why(f, "the server's certificate expired (or this system's clock is far ahead: check "
                                       "date -u)");
                        finding_fix(f, "if date -u is right, the server must renew its certificate; until then change "
                                       "upstream in %s",
                                    d->config_path);
                        break;
                case PROBE_NAME:
                        f = doctor_add(d, LAYER_UPSTREAM, bad, "upstream-cert-name", "%s#%s: %s; %s", addr, a->tls_name,
                                       details[i], health);
                        finding_why(f, "the server's certificate is for another name: the stub refuses it");
                        finding_fix(f, "correct the name after '#' in the upstream line of %s to the one the server's "
                                       "certificate carries, then: systemctl reload ztnad",
                                    d->config_path);
                        break;
                case PROBE_UNTRUSTED:
                        f = doctor_add(d, LAYER_UPSTREAM, bad, "upstream-cert-untrusted", "%s#%s: %s; %s", addr,
                                       a->tls_name, details[i], health);
                        finding_why(f, "no trusted CA vouches for the server's certificate");
                        finding_fix(f, "set tls_ca_file in %s to the CA that signed it, then: systemctl reload ztnad",
                                    d->config_path);
                        break;
                case PROBE_PIN:
                        f = doctor_add(d, LAYER_UPSTREAM, bad, "upstream-pin-mismatch", "%s#%s: %s; %s", addr,
                                       a->tls_name, details[i], health);
                        finding_why(f, "the server's key changed, or the pin is wrong: the stub refuses it");
                        finding_fix(f, "check the key (openssl s_client -connect %s), then correct spki_pins in %s "
                                       "and: systemctl reload ztnad",
                                    addr, d->config_path);
                        break;
                }
        }
        doctor_add(d, LAYER_UPSTREAM, LEVEL_OK, cfg->allow_plaintext_fallback ? "plaintext-fallback-on" : "plaintext-fallback-off",
                   cfg->allow_plaintext_fallback
                           ? (n_ok == 0 ? "plaintext fallback on: with no TLS server working, queries go out "
                                          "unencrypted now"
                                        : "plaintext fallback on: used only when every TLS server fails")
                           : "plaintext fallback off: with every TLS server failing, public names fail (SERVFAIL)");
}

/* ---- caches in the way ---- */

#define NSCD_CONF "/etc/nscd.conf"
#define NSCD_SOCKET "/var/run/nscd/socket" /* glibc's _PATH_NSCDSOCKET */

/* Whether nscd.conf (`len` bytes of `data`) enables the hosts cache: the
 * last "enable-cache hosts yes|no" line wins; without one nscd does not
 * cache hosts. */
static bool nscd_conf_caches_hosts(const char *data, size_t len) {
        bool on = false;
        size_t i = 0;

        while (i < len) {
                char line[256], a[32], b[32], c[32];

                doctor_next_line(data, len, &i, line, sizeof line);
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                if (sscanf(line, "%31s %31s %31s", a, b, c) == 3 && strcmp(a, "enable-cache") == 0 &&
                    strcmp(b, "hosts") == 0)
                        on = strcmp(c, "yes") == 0;
        }
        return on;
}

/* Whether a program accepts connections on nscd's socket: glibc's lookups
 * then ask it before any NSS module. */
static bool nscd_running(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = NSCD_SOCKET };
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        return fd >= 0 && connect(fd, (const struct sockaddr *) &sa, sizeof sa) == 0;
}

void doctor_check_caches(Doctor *d) {
        _cleanup_free_ char *conf = NULL;
        size_t len = 0;
        bool running = nscd_running();
        Finding *f;

        if (running && doctor_read_file(NSCD_CONF, &conf, &len) >= 0 && nscd_conf_caches_hosts(conf, len)) {
                f = doctor_add(d, LAYER_CACHES, LEVEL_WARN, "nscd-hosts-cache",
                               "nscd is running and caches hosts (" NSCD_CONF ": enable-cache hosts yes)");
                finding_why(f, "glibc asks nscd before ztna: a peer's changed or removed address is answered stale "
                               "until nscd's positive-time-to-live passes");
                finding_fix(f, "sed -i 's/^\\([[:space:]]*enable-cache[[:space:]]\\{1,\\}hosts[[:space:]]\\{1,\\}\\)yes/\\1no/' "
                               NSCD_CONF " && systemctl restart nscd");
        } else if (running)
                doctor_add(d, LAYER_CACHES, LEVEL_OK, "nscd-no-hosts", "nscd is running without a hosts cache");
        else
                doctor_add(d, LAYER_CACHES, LEVEL_OK, "nscd-off", "no nscd on " NSCD_SOCKET);
        if (d->cfg && d->cfg->stub)
                doctor_add(d, LAYER_CACHES, LEVEL_OK, d->cfg->serve_stale ? "serve-stale-on" : "serve-stale-off",
                           d->cfg->serve_stale ? "the stub serves stale answers when every upstream fails"
                                               : "the stub serves no stale answers");
}

/* ---- the stub ---- */

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
                        finding_fix(f, "systemctl restart ztnad (and journalctl -u ztnad for why it stopped "
                                       "answering)");
                        return;
                }
                if (!doctor_dns_answer_has(reply, (size_t) n, id, qtype, want, alen, &rcode)) {
                        f = doctor_add(d, LAYER_STUB, LEVEL_FAIL, "stub-wrong-answer",
                                       "%s over %s: %s is not answered with %s (rcode %d)", where, tcp ? "TCP" : "UDP",
                                       d->name, d->name_answer, rcode);
                        finding_why(f, "what answers at the stub's address is not ztnad's stub, or it serves another "
                                       "map");
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

/* ---- agreement: the answers of each path side by side ---- */

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

/* ---- judging across layers ---- */

/* A store that is missing because ztnad cannot run takes ztnad's fix. */
static void cross_link(Doctor *d) {
        Layer *s = &d->layers[LAYER_STORE];
        const Finding *df = layer_failure(d, LAYER_DAEMON);

        if (!df)
                return;
        for (size_t i = 0; i < s->n; i++) {
                Finding *f = &s->findings[i];

                if (strcmp(f->id, "store-missing") == 0) {
                        snprintf(f->fix, sizeof f->fix, "%s", df->fix);
                        snprintf(f->why + strlen(f->why), sizeof f->why - strlen(f->why),
                                 " (ztnad: %s)", df->measured);
                }
        }
}

/* ---- output ---- */

static json_t *finding_json(const Finding *f) {
        return json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "id", f->id, "status", level_json[f->level], "measured",
                         f->measured, "why", f->why[0] ? f->why : NULL, "fix", f->fix[0] ? f->fix : NULL);
}

static int report(Doctor *d) {
        const Finding *first = NULL;
        LayerId first_layer = _LAYER_MAX;
        Level overall = LEVEL_OK;
        uint64_t elapsed_ms = (clock_now_usec(CLOCK_MONOTONIC) - d->start_usec) / USEC_PER_MSEC;
        int ret;

        /* The first failure in lookup order, else the first warning. */
        for (Level want = LEVEL_FAIL; want >= LEVEL_WARN && !first; want--)
                for (LayerId l = 0; l < _LAYER_MAX && !first; l++)
                        for (size_t i = 0; i < d->layers[l].n; i++)
                                if (d->layers[l].findings[i].level == want) {
                                        first = &d->layers[l].findings[i];
                                        first_layer = l;
                                        break;
                                }
        for (LayerId l = 0; l < _LAYER_MAX; l++)
                if (layer_level(&d->layers[l]) > overall)
                        overall = layer_level(&d->layers[l]);
        ret = overall == LEVEL_FAIL ? DOCTOR_EXIT_BROKEN : overall == LEVEL_WARN ? DOCTOR_EXIT_DEGRADED : DOCTOR_EXIT_HEALTHY;
        const char *verdict = ret == DOCTOR_EXIT_BROKEN ? "broken" : ret == DOCTOR_EXIT_DEGRADED ? "degraded" : "healthy";

        if (d->o->json) {
                json_t *out = json_object(), *layers = json_array();

                for (LayerId l = 0; l < _LAYER_MAX; l++) {
                        json_t *findings = json_array();

                        for (size_t i = 0; i < d->layers[l].n; i++)
                                json_array_append_new(findings, finding_json(&d->layers[l].findings[i]));
                        json_array_append_new(layers, json_pack("{s:s, s:s, s:o}", "layer", layer_names[l], "status",
                                                                level_json[layer_level(&d->layers[l])], "findings",
                                                                findings));
                }
                json_object_set_new(out, "status", json_string(verdict));
                json_object_set_new(out, "exit", json_integer(ret));
                json_object_set_new(out, "name", d->o->name ? json_string(d->o->name) : json_null());
                json_object_set_new(out, "layers", layers);
                if (first) {
                        json_t *ff = finding_json(first);

                        json_object_set_new(ff, "layer", json_string(layer_names[first_layer]));
                        json_object_set_new(out, "first", ff);
                } else
                        json_object_set_new(out, "first", json_null());
                json_object_set_new(out, "elapsed_ms", json_integer((json_int_t) elapsed_ms));
                {
                        char *text = json_dumps(out, JSON_ENCODE_ANY);

                        if (text)
                                puts(text);
                        free(text);
                }
                json_decref(out);
                return ret;
        }

        for (LayerId l = 0; l < _LAYER_MAX; l++) {
                const Layer *layer = &d->layers[l];
                const Finding *h = layer_headline(layer);

                if (!h)
                        continue;
                printf("%-4s  %-9s %s\n", level_text[h->level], layer_names[l], h->measured);
                for (size_t i = 0; i < layer->n; i++) {
                        const Finding *f = &layer->findings[i];

                        if (f != h && f->level != LEVEL_OK)
                                printf("%-4s  %-9s %s\n", level_text[f->level], "", f->measured);
                }
        }
        if (first) {
                printf("\n%s: %s: %s\n", verdict, layer_names[first_layer], first->why);
                if (first->fix[0])
                        printf("fix: %s\n", first->fix);
        } else
                printf("\nhealthy: every layer checked is ok (%" PRIu64 " ms)\n", elapsed_ms);
        return ret;
}

/* ---- the run ---- */

static void find_store_path(Doctor *d) {
        const char *e;

        /* The path every process's module reads: what lookups see. */
        if (d->o->store)
                snprintf(d->store_path, sizeof d->store_path, "%s", d->o->store);
        else if ((e = secure_getenv(SHM_ENV_PATH)) && e[0] == '/')
                snprintf(d->store_path, sizeof d->store_path, "%s", e);
        else
                snprintf(d->store_path, sizeof d->store_path, "%s", SHM_DEFAULT_PATH);
}

int doctor_run(const DoctorOptions *o) {
        Doctor d = { .o = o, .start_usec = clock_now_usec(CLOCK_MONOTONIC) };
        json_t *reply = NULL;
        int r;

        d.config_path = o->config ? o->config : CONFIG_DEFAULT_PATH;
        d.config_r = config_load(o->config, &d.cfg, &d.cerr);
        find_store_path(&d);

        r = o->daemon_call(o->userdata, "status", &reply, d.daemon_err, sizeof d.daemon_err);
        if (r >= 0 && json_is_true(json_object_get(reply, "ok")))
                d.status = reply;
        else {
                if (r >= 0)
                        snprintf(d.daemon_err, sizeof d.daemon_err, "%s",
                                 json_string_value(json_object_get(reply, "error")) ?: "refused");
                json_decref(reply);
        }

        /* The store first: its domain tells the nsswitch check whether the
         * tailnet is under .local. Reported in lookup order all the same. */
        doctor_check_store(&d);
        doctor_check_nsswitch(&d);
        doctor_check_daemon(&d);
        doctor_check_system_dns(&d);
        doctor_check_stub(&d);
        doctor_check_upstream(&d);
        doctor_check_caches(&d);
        doctor_check_agreement(&d);
        cross_link(&d);

        r = report(&d);
        json_decref(d.status);
        config_free(d.cfg);
        return r;
}
