/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as the record store, read through the
 * NSS entry points a process would call. The first input byte picks how
 * the rest is used:
 *   even: the rest is the whole file, with magic, version, header size and
 *         file size made right so the fuzzer gets past the first checks;
 *   odd:  the rest is a list of (uint32 offset, uint8 value) patches
 *         applied to a valid store, to reach deep into descriptors,
 *         indexes and records.
 * Its second bit picks the file: clear, the store itself; set, the
 * persisted copy (docs/store-fallback.md) with the store missing, so the
 * reader takes the copy's path (one region named twice) and the patches
 * start from a copy ztnad would save.
 * Whatever the bytes, every call must return without a fault or a hang.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <nss.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm-format.h"
#include "shm.h"

enum nss_status _nss_ztna_gethostbyname4_r(const char *name, struct gaih_addrtuple **pat, char *buffer,
                                           size_t buflen, int *errnop, int *h_errnop, int32_t *ttlp);
enum nss_status _nss_ztna_gethostbyname3_r(const char *name, int af, struct hostent *result, char *buffer,
                                           size_t buflen, int *errnop, int *h_errnop, int32_t *ttlp,
                                           char **canonp);
enum nss_status _nss_ztna_gethostbyaddr2_r(const void *addr, socklen_t len, int af, struct hostent *result,
                                           char *buffer, size_t buflen, int *errnop, int *h_errnop,
                                           int32_t *ttlp);
enum nss_status _nss_ztna_sethostent(int stayopen);
enum nss_status _nss_ztna_gethostent_r(struct hostent *result, char *buffer, size_t buflen, int *errnop,
                                       int *h_errnop);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char store_path[256];
static char copy_path[256];
static char missing_path[256];
static char tmp_path[256];
static uint8_t *valid, *valid_copy;
static size_t valid_len, valid_copy_len;

static void publish_valid(void) {
        static const char *names[] = { "Win-A", "Linux-C", "v4only", "v6only", "empty" };
        struct in_addr v4[3];
        struct in6_addr v6[3];
        ShmPrefix ranges[2] = { { .family = AF_INET, .prefixlen = 10 }, { .family = AF_INET6, .prefixlen = 48 } };
        ShmPeer peers[5];
        ShmWriter *w;

        inet_pton(AF_INET, "100.64.0.1", &v4[0]);
        inet_pton(AF_INET, "100.64.0.3", &v4[1]);
        inet_pton(AF_INET, "100.64.0.4", &v4[2]);
        inet_pton(AF_INET6, "fd7a:115c:a1e0::1", &v6[0]);
        inet_pton(AF_INET6, "fd7a:115c:a1e0::3", &v6[1]);
        inet_pton(AF_INET6, "fd7a:115c:a1e0::5", &v6[2]);
        inet_pton(AF_INET, "100.64.0.0", &ranges[0].addr.in);
        inet_pton(AF_INET6, "fd7a:115c:a1e0::", &ranges[1].addr.in6);
        peers[0] = (ShmPeer) { .name = names[0], .ttl = 60, .online = true, .n_v4 = 1, .v4 = &v4[0], .n_v6 = 1, .v6 = &v6[0] };
        peers[1] = (ShmPeer) { .name = names[1], .ttl = 60, .online = true, .n_v4 = 1, .v4 = &v4[1], .n_v6 = 1, .v6 = &v6[1] };
        peers[2] = (ShmPeer) { .name = names[2], .ttl = 60, .n_v4 = 1, .v4 = &v4[2] };
        peers[3] = (ShmPeer) { .name = names[3], .ttl = 60, .n_v6 = 1, .v6 = &v6[2] };
        peers[4] = (ShmPeer) { .name = names[4], .ttl = 60 };
        static const char *const blocked[] = { "bad.example", "evil.test" };
        ShmMap map = { .domain = "yourorg.zt.net", .n_ranges = 2, .ranges = ranges, .n_peers = 5, .peers = peers,
                       .n_blocked = 2, .blocked = blocked };

        void *img;
        if (shm_writer_open(store_path, &w) < 0 || shm_writer_publish(w, &map, true) < 0 ||
            shm_writer_export(w, &img, &valid_copy_len) < 0)
                abort();
        valid_copy = img;
        shm_writer_close(w);

        FILE *f = fopen(store_path, "rb");
        if (!f || fseek(f, 0, SEEK_END) < 0)
                abort();
        valid_len = (size_t) ftell(f);
        valid = malloc(valid_len);
        rewind(f);
        if (!valid || fread(valid, 1, valid_len, f) != valid_len)
                abort();
        fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void) argc;
        (void) argv;
        char dir[] = "/dev/shm/ztna-fuzz-XXXXXX";
        if (!mkdtemp(dir) || chmod(dir, 0755) < 0)
                abort();
        snprintf(store_path, sizeof(store_path), "%s/records", dir);
        snprintf(copy_path, sizeof(copy_path), "%s/copy", dir);
        snprintf(missing_path, sizeof(missing_path), "%s/missing", dir);
        snprintf(tmp_path, sizeof(tmp_path), "%s/records.new", dir);
        setenv(SHM_ENV_FALLBACK, copy_path, 1);
        publish_valid();
        return 0;
}

static void write_store(const char *path, const uint8_t *p, size_t n) {
        int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || (n && write(fd, p, n) != (ssize_t) n) || close(fd) < 0 || rename(tmp_path, path) < 0)
                abort();
}

static void query_all(void) {
        static const char *names[] = { "Win-A", "win-a.yourorg.zt.net.", "v4only", "v6only", "empty",
                                       "nobody.yourorg.zt.net", "example.com", "a.b.yourorg.zt.net",
                                       "x.bad.example" };
        static const uint8_t addrs4[][4] = { { 100, 64, 0, 1 }, { 100, 64, 9, 9 }, { 10, 0, 0, 1 } };
        char buf[4096];
        int err, herr;
        int32_t ttl;
        struct hostent he;

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                struct gaih_addrtuple *pat = NULL;
                char *canon;
                _nss_ztna_gethostbyname4_r(names[i], &pat, buf, sizeof(buf), &err, &herr, &ttl);
                _nss_ztna_gethostbyname3_r(names[i], AF_INET6, &he, buf, sizeof(buf), &err, &herr, &ttl, &canon);
                _nss_ztna_gethostbyname3_r(names[i], AF_INET, &he, buf, 64, &err, &herr, &ttl, &canon);
        }
        for (size_t i = 0; i < sizeof(addrs4) / sizeof(addrs4[0]); i++)
                _nss_ztna_gethostbyaddr2_r(addrs4[i], 4, AF_INET, &he, buf, sizeof(buf), &err, &herr, &ttl);
        struct in6_addr a6;
        inet_pton(AF_INET6, "fd7a:115c:a1e0::1", &a6);
        _nss_ztna_gethostbyaddr2_r(&a6, 16, AF_INET6, &he, buf, sizeof(buf), &err, &herr, &ttl);

        _nss_ztna_sethostent(0);
        /* Enumeration must end by itself; the bound only turns a hang into
         * a finding. */
        for (unsigned i = 0; _nss_ztna_gethostent_r(&he, buf, sizeof(buf), &err, &herr) == NSS_STATUS_SUCCESS; i++)
                if (i > 1000000)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        bool copy = data[0] & 2;
        const char *path = copy ? copy_path : store_path;
        const uint8_t *base = copy ? valid_copy : valid;
        size_t base_len = copy ? valid_copy_len : valid_len;
        /* The copy is read only while the store is missing. */
        setenv(SHM_ENV_PATH, copy ? missing_path : store_path, 1);
        if (!(data[0] & 1)) {
                size_t n = size - 1 < SHM_HEADER_SIZE ? SHM_HEADER_SIZE : size - 1;
                uint8_t *p = calloc(1, n);
                if (!p)
                        abort();
                memcpy(p, data + 1, size - 1);
                ShmWireHeader *h = (ShmWireHeader *) p;
                h->magic = SHM_MAGIC;
                h->version = SHM_VERSION;
                h->header_size = SHM_HEADER_SIZE;
                h->file_size = n;
                write_store(path, p, n);
                free(p);
        } else {
                uint8_t *p = malloc(base_len);
                if (!p)
                        abort();
                memcpy(p, base, base_len);
                for (size_t i = 1; i + 5 <= size; i += 5) {
                        uint32_t off;
                        memcpy(&off, data + i, 4);
                        /* Most patches aim at the header and the small
                         * sections at the start of each region. */
                        off %= (off & 0x80000000u) ? (uint32_t) base_len : 2 * SHM_HEADER_SIZE;
                        if (off >= SHM_HEADER_SIZE && (data[i] & 1))
                                off = SHM_HEADER_SIZE + (off - SHM_HEADER_SIZE) % 512;
                        if (off < base_len)
                                p[off] = data[i + 4];
                }
                write_store(path, p, base_len);
                free(p);
        }
        shm_reader_forget(shm_reader_default());
        query_all();
        return 0;
}
