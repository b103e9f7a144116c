/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inside `ztna`: what its files share. Calls go one way, each file
 * calling only files below it:
 *
 *     ztna.c                   main(): the options, the dispatch, the exit codes
 *       -> ztna-commands-*.c   a command each (status and dns list, dns query,
 *                              up/down/flush and peers push, doctor)
 *         -> ztna-control.c    ztnad's control socket, the client side
 *            ztna-store.c      the record store, read directly (--local)
 *           -> ztna-output.c   JSON and text output, ztna's own failures
 *
 * `ztna doctor` itself is doctor*.c (doctor.h); ztna-commands-doctor.c
 * only starts it.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* Exit codes: the same in --help and man/ztna.1. */
enum {
        EXIT_OK = 0,            /* dns query: found */
        EXIT_NOT_FOUND = 1,     /* dns query: no such peer or address */
        EXIT_USAGE = 2,
        EXIT_UNAVAILABLE = 3,   /* ztnad unreachable or busy; with --local, the store */
        EXIT_NOT_AUTHORISED = 4,
        EXIT_FAILED = 5,        /* a push rejected, or any other failure */
        /* doctor: 0 healthy, DOCTOR_EXIT_DEGRADED (6), DOCTOR_EXIT_BROKEN (7) */
};

/* The "code" of a --json failure found by ztna itself rather than refused
 * by ztnad (those carry ztnad's CONTROL_CODE_*). */
#define CLIENT_CODE_USAGE "usage"
#define CLIENT_CODE_UNREACHABLE "unreachable"     /* ztnad could not be asked */
#define CLIENT_CODE_STORE "store-unavailable"     /* --local: the store cannot be read */
#define CLIENT_CODE_FILE "cannot-read"            /* push: the document cannot be read */

/* The longest message a failure carries. */
#define ERROR_MAX 512

/* The options, as main() read them; every command takes them. */
typedef struct Args {
        const char *config; /* -c, NULL for the default path */
        const char *store;  /* --store, NULL for the reader's default */
        const char *socket; /* --socket, NULL for the default */
        bool json;
        bool local;
        bool timeout_set; /* -t given */
        uint64_t timeout_usec;
} Args;

/* A connection to ztnad's control socket (ztna-control.c); push sends two
 * requests on one. */
typedef struct Conn {
        int fd;
        uint64_t deadline; /* CLOCK_MONOTONIC µs */
        char *buf;         /* bytes read past the last reply */
        size_t len, size;
} Conn;

/* Builds a JSON answer from one snapshot; the snapshot is consistent only
 * if shm_snapshot_end() says so afterwards, so a builder only reads. */
typedef int (*StoreFunc)(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret);

/* ztna-output.c */
void ztna_print_json(const json_t *j);
void ztna_format_time(uint64_t usec, char *buf, size_t size);
uint64_t ztna_age_sec(uint64_t then, uint64_t now);
void ztna_print_object_text(const json_t *obj, int indent, bool dash);
__attribute__((format(printf, 4, 5)))
int ztna_failed(const Args *a, int exit_code, const char *code, const char *fmt, ...);

/* ztna-control.c */
const char *ztna_socket_path(const Args *a);
int ztna_conn_open(const Args *a, Conn *ret, char *err, size_t errlen);
int ztna_conn_call(Conn *c, const json_t *request, json_t **ret, char *err, size_t errlen);
void ztna_conn_done(Conn *c);
int ztna_daemon_call(const Args *a, const json_t *request, json_t **ret, char *err, size_t errlen);
int ztna_code_exit(const char *code);
int ztna_refused(const Args *a, json_t *reply);
int ztna_unreachable(const Args *a, const char *err);

/* ztna-store.c */
const char *ztna_store_display(const Args *a);
int ztna_store_read(const Args *a, StoreFunc func, const void *userdata, json_t **ret, char *err, size_t errlen);
int ztna_store_list(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret);
int ztna_store_query(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret);
int ztna_store_status(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret);

/* ztna-commands-status.c */
int ztna_cmd_status(const Args *a);
int ztna_cmd_list(const Args *a);

/* ztna-commands-query.c */
int ztna_cmd_query(const Args *a, const char *query);

/* ztna-commands-change.c */
int ztna_cmd_change(const Args *a, const char *command, const char *done);
int ztna_cmd_push(const Args *a, const char *path);

/* ztna-commands-doctor.c */
int ztna_cmd_doctor(const Args *a, const char *name);
