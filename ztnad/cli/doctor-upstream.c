/* SPDX-License-Identifier: MIT */
/*
 * The upstream layer of `ztna doctor`: each DNS-over-TLS server of
 * ztnad.conf reached as the stub would reach it (TCP, the TLS
 * handshake, the chain, the name and the SPKI pins), with the reason
 * told apart when it fails, beside ztnad's own view of the server.
 */

#include <errno.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cli/doctor-internal.h"
#include "common/inet-util.h"
#include "common/time-util.h"
#include "macro.h"

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
                        finding_fix(f, "timedatectl set-ntp true (or set the clock: date -u -s ...); "
                                       "check with date -u");
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
