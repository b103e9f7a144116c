/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTPS control plane, as ztna uses it (docs/control-plane.md): one
 * endpoint, {control_url}/api/dns-management, POSTed JSON with a bearer
 * token. "list" answers the tailnet's peers document (ztnad/sources/peers.h),
 * "resolve" one peer's addresses.
 *
 * Every transfer verifies the server's certificate chain (against `ca_file`
 * when set, the system's store otherwise) and its host name, speaks TLS 1.2
 * or later, https only, follows no redirect, and stops reading a response
 * above CONTROLPLANE_RESPONSE_MAX.
 *
 * Two users: sync.c drives ControlPlaneRequest on its own sd-event loop
 * (libcurl's multi interface) and controlplane_resolve() blocks, for the
 * `ztna dns query` command, which must work while ztnad is stopped. Nothing
 * here logs: every failure comes back as a negative errno and a message.
 */

#include <curl/curl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "macro.h"
#include "sources/peers.h"
#include "shm-format.h"

#define CONTROLPLANE_API_PATH "/api/dns-management"
/* A list response is a peers document: the same bound as a peers file. */
#define CONTROLPLANE_RESPONSE_MAX PEERS_INPUT_MAX
/* A bearer token is a line of text; a JWT with many claims is a few KiB. */
#define CONTROLPLANE_TOKEN_MAX ((size_t) 16 << 10)
/* The ETag echoed back in If-None-Match; a longer one is not remembered. */
#define CONTROLPLANE_ETAG_MAX 255u
#define CONTROLPLANE_ERROR_MAX 512
#define CONTROLPLANE_TIMEOUT_USEC_DEFAULT (UINT64_C(20) * 1000000)
#define CONTROLPLANE_CONNECT_TIMEOUT_USEC_MAX (UINT64_C(10) * 1000000)
/* Addresses in one resolve answer; a peer has a handful. */
#define CONTROLPLANE_ADDRESSES_MAX 64u

typedef struct ControlPlaneConfig {
        const char *control_url; /* "https://login.example.com", no path needed */
        const char *org_id;
        const char *token_file;  /* the bearer token, surrounding whitespace ignored */
        const char *ca_file;     /* PEM CA bundle; NULL or "": the system's */
        uint64_t timeout_usec;   /* per transfer; 0: the default */
} ControlPlaneConfig;

typedef struct ControlPlaneAddress {
        int family; /* AF_INET or AF_INET6 */
        union {
                struct in_addr in;
                struct in6_addr in6;
        };
        char text[INET6_ADDRSTRLEN]; /* as inet_ntop() writes it */
} ControlPlaneAddress;

/* One allocation: free() it, or controlplane_answer_free(). */
typedef struct ControlPlaneAnswer {
        char name[SHM_LABEL_MAX + 1];  /* "Win-A" */
        char fqdn[SHM_DOMAIN_MAX + 1]; /* "Win-A.yourorg.zt.net", no final dot */
        size_t n_addresses;            /* may be 0 */
        ControlPlaneAddress addresses[];
} ControlPlaneAnswer;

/* The HTTP outcome of a finished transfer. Anything else is an error. */
enum {
        CONTROLPLANE_OK = 200,
        CONTROLPLANE_NOT_MODIFIED = 304,
};

/*
 * Checks `c` without touching the network: an https URL with a host, a
 * non-empty org_id, a token file. Writes the endpoint URL to *ret_url
 * (malloc'ed). Returns 0 or -EINVAL/-ENOMEM with a message in `err`.
 */
int controlplane_endpoint(const ControlPlaneConfig *c, char **ret_url, char *err, size_t errlen);

/*
 * Reads the bearer token: a regular file of at most CONTROLPLANE_TOKEN_MAX
 * bytes, surrounding whitespace trimmed, no control characters left (it
 * becomes an HTTP header). *ret_exposed is set when the file is readable by
 * others, which the caller warns about. Returns 0, -errno of open/read,
 * -EINVAL (empty, too long, control characters) with a message in `err`.
 */
int controlplane_read_token(const char *path, char **ret_token, bool *ret_exposed, char *err, size_t errlen);

/* A request body: {"action":"list","org_id":...}; `name` is only sent when
 * not NULL. Returns NULL when out of memory or a string is not UTF-8. */
char *controlplane_body(const char *action, const char *org_id, const char *name);

/*
 * One POST to the endpoint, ready for curl_easy_perform() or a multi handle:
 * the request owns its easy handle, headers, and response buffer.
 * `if_none_match` (may be NULL) is sent as If-None-Match. Returns 0 or
 * negative errno with a message in `err` (configuration, token file, libcurl
 * setup).
 */
typedef struct ControlPlaneRequest ControlPlaneRequest;

int controlplane_request_new(const ControlPlaneConfig *c, const char *body, const char *if_none_match,
                             ControlPlaneRequest **ret, bool *ret_token_exposed, char *err, size_t errlen);
ControlPlaneRequest *controlplane_request_free(ControlPlaneRequest *q); /* NULL-safe, returns NULL */
CURL *controlplane_request_handle(ControlPlaneRequest *q);

/*
 * Judges a finished transfer. Returns CONTROLPLANE_OK or
 * CONTROLPLANE_NOT_MODIFIED, 404 (left to the caller: a resolve's "not
 * found"), or a negative errno with a message in `err`:
 *   -EACCES       HTTP 401/403 ("control plane refused the token (HTTP 401)")
 *   -EPROTO       any other HTTP status (redirects included), a failed TLS
 *                 handshake
 *   -EPERM        the certificate or its host name is not trusted
 *   -EFBIG        response above CONTROLPLANE_RESPONSE_MAX
 *   -EHOSTUNREACH the host name does not resolve
 *   -ECONNREFUSED, -ETIMEDOUT, -ECONNRESET  transport
 *   -EINVAL       unusable ca_file
 *   -EIO          anything else libcurl reports
 */
int controlplane_request_finish(ControlPlaneRequest *q, CURLcode result, char *err, size_t errlen);

/* After controlplane_request_finish(): the body (NUL-terminated, `*ret_len`
 * bytes) and the ETag (NULL if none or unusable). Owned by the request. */
const char *controlplane_request_body(const ControlPlaneRequest *q, size_t *ret_len);
const char *controlplane_request_etag(const ControlPlaneRequest *q);

/*
 * Parses a resolve answer: {"name":..., "fqdn":..., "addresses":[...]}, or
 * {"error":"not found"}. `query` is the name asked for; the answer must be
 * for it (its short name or its FQDN, any case, one final dot allowed).
 * Returns 0, -ENOENT (not found), -EPROTO (another "error" from the
 * server), -EBADMSG (not a valid answer) or -ENOMEM, with a message in `err`.
 */
int controlplane_parse_answer(const char *body, size_t len, const char *query, ControlPlaneAnswer **ret,
                              char *err, size_t errlen);

/*
 * Asks the control plane for `name` and waits (at most the config's
 * timeout). Returns 0 with *ret set, -ENOENT only when the control plane
 * answered that it knows no such peer, -ENOKEY when the token file does not
 * exist, or the other errors of controlplane_endpoint(),
 * controlplane_read_token(), controlplane_request_finish() and
 * controlplane_parse_answer(), always with a message in `err`. On failure
 * *ret is left alone. A token file readable by others sets
 * *ret_token_exposed (may be NULL).
 */
int controlplane_resolve(const ControlPlaneConfig *c, const char *name, ControlPlaneAnswer **ret,
                         bool *ret_token_exposed, char *err, size_t errlen);

ControlPlaneAnswer *controlplane_answer_free(ControlPlaneAnswer *a); /* NULL-safe, returns NULL */

static inline void controlplane_answer_freep(ControlPlaneAnswer **a) {
        controlplane_answer_free(*a);
}
#define _cleanup_controlplane_answer_ _cleanup_(controlplane_answer_freep)
