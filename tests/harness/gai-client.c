/* SPDX-License-Identifier: MIT */
/*
 * gai-client: resolves through the real glibc getaddrinfo()/getnameinfo(),
 * for the integration tests.
 *
 *     gai-client [-f inet|inet6|unspec] [-c] NAME
 *             one line a result, "inet 100.64.0.1" or "inet6 fd7a::1";
 *             with -c (AI_CANONNAME) first "canonname NAME"
 *     gai-client -r ADDRESS
 *             getnameinfo(NI_NAMEREQD): "name NAME"
 *
 * A failure prints the EAI_* name and gai_strerror() on stderr and exits
 * with a code of its own (below), so a script can tell "no such name" from
 * "try again" from "no address of that family".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
        EXIT_NONAME = 2,
        EXIT_AGAIN = 3,
        EXIT_FAIL = 4,
        EXIT_NODATA = 5,
        EXIT_ADDRFAMILY = 6,
        EXIT_SYSTEM = 7,
        EXIT_OTHER = 8,
        EXIT_USAGE = 64,
};

static const struct {
        int eai;
        const char *name;
        int exit_code;
} gai_errors[] = {
        { EAI_NONAME, "EAI_NONAME", EXIT_NONAME },
        { EAI_AGAIN, "EAI_AGAIN", EXIT_AGAIN },
        { EAI_FAIL, "EAI_FAIL", EXIT_FAIL },
        { EAI_NODATA, "EAI_NODATA", EXIT_NODATA },
        { EAI_ADDRFAMILY, "EAI_ADDRFAMILY", EXIT_ADDRFAMILY },
        { EAI_SYSTEM, "EAI_SYSTEM", EXIT_SYSTEM },
};

static int report_error(const char *what, int eai) {
        const char *name = "EAI_OTHER";
        int code = EXIT_OTHER;
        for (size_t i = 0; i < sizeof(gai_errors) / sizeof(gai_errors[0]); i++)
                if (gai_errors[i].eai == eai) {
                        name = gai_errors[i].name;
                        code = gai_errors[i].exit_code;
                }
        if (eai == EAI_SYSTEM)
                fprintf(stderr, "gai-client: %s: %s (%s: %m)\n", what, name, gai_strerror(eai));
        else
                fprintf(stderr, "gai-client: %s: %s (%s)\n", what, name, gai_strerror(eai));
        return code;
}

static int usage(void) {
        fprintf(stderr, "usage: gai-client [-f inet|inet6|unspec] [-c] NAME\n"
                        "       gai-client -r ADDRESS\n");
        return EXIT_USAGE;
}

static int forward(const char *name, int family, bool canon) {
        struct addrinfo hints = {
                .ai_family = family,
                /* One result an address instead of one a socket type. */
                .ai_socktype = SOCK_STREAM,
                .ai_flags = canon ? AI_CANONNAME : 0,
        };
        struct addrinfo *res = NULL;

        int eai = getaddrinfo(name, NULL, &hints, &res);
        if (eai != 0)
                return report_error(name, eai);

        if (canon && res->ai_canonname)
                printf("canonname %s\n", res->ai_canonname);
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                char text[INET6_ADDRSTRLEN];
                const void *a;
                if (ai->ai_family == AF_INET)
                        a = &((const struct sockaddr_in *) ai->ai_addr)->sin_addr;
                else if (ai->ai_family == AF_INET6)
                        a = &((const struct sockaddr_in6 *) ai->ai_addr)->sin6_addr;
                else {
                        printf("family%d ?\n", ai->ai_family);
                        continue;
                }
                if (!inet_ntop(ai->ai_family, a, text, sizeof(text))) {
                        freeaddrinfo(res);
                        fprintf(stderr, "gai-client: inet_ntop: %m\n");
                        return EXIT_OTHER;
                }
                printf("%s %s\n", ai->ai_family == AF_INET ? "inet" : "inet6", text);
        }
        freeaddrinfo(res);
        return fflush(stdout) == 0 ? 0 : EXIT_OTHER;
}

static int reverse(const char *text) {
        struct sockaddr_storage ss = {};
        socklen_t len;
        struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

        if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                len = sizeof(*sin);
        } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                len = sizeof(*sin6);
        } else {
                fprintf(stderr, "gai-client: %s: not a numeric address\n", text);
                return EXIT_USAGE;
        }

        char host[NI_MAXHOST];
        int eai = getnameinfo((struct sockaddr *) &ss, len, host, sizeof(host), NULL, 0, NI_NAMEREQD);
        if (eai != 0)
                return report_error(text, eai);
        printf("name %s\n", host);
        return fflush(stdout) == 0 ? 0 : EXIT_OTHER;
}

int main(int argc, char **argv) {
        int family = AF_UNSPEC, opt;
        bool canon = false;
        const char *rev = NULL;

        while ((opt = getopt(argc, argv, "f:cr:")) != -1) {
                switch (opt) {
                case 'f':
                        if (strcmp(optarg, "inet") == 0)
                                family = AF_INET;
                        else if (strcmp(optarg, "inet6") == 0)
                                family = AF_INET6;
                        else if (strcmp(optarg, "unspec") == 0)
                                family = AF_UNSPEC;
                        else
                                return usage();
                        break;
                case 'c':
                        canon = true;
                        break;
                case 'r':
                        rev = optarg;
                        break;
                default:
                        return usage();
                }
        }
        if (rev)
                return optind == argc ? reverse(rev) : usage();
        if (argc - optind != 1)
                return usage();
        return forward(argv[optind], family, canon);
}
