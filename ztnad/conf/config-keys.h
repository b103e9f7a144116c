/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The shape of ztnad.conf's key table, for conf/config*.c and the tests
 * only: the rest of ztnad sees the parsed ZtnadConfig (config.h). The table
 * itself, one row per key, is config-keys.c's; config_keys points at it so
 * the reader (config.c) and a test can read the rows too (config-example.h
 * prints the shipped example from them).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum Section {
        SECTION_ZTNAD,
        SECTION_DNS,
        _SECTION_MAX,
} Section;

typedef enum KeyType {
        TYPE_PATH,     /* char *, absolute */
        TYPE_STRING,   /* char *, checked by Key.check */
        TYPE_URL,      /* char *, https:// */
        TYPE_DURATION, /* uint64_t microseconds in [min, max] */
        TYPE_SIZE,     /* uint64_t bytes in [min, max] */
        TYPE_BOOL,     /* bool */
        TYPE_ENUM,     /* an enum (int-sized), index into Key.choices */
        TYPE_LISTEN,   /* ConfigAddresses, loopback, no TLS name */
        TYPE_UPSTREAM, /* ConfigAddresses with TLS names */
        TYPE_PINS,     /* ConfigPins */
        TYPE_PATHS,    /* ConfigPaths */
        TYPE_DOMAINS,  /* ConfigNames */
        TYPE_PREFIXES, /* ConfigPrefixes */
        _TYPE_MAX,
} KeyType;

enum {
        KEY_OPTIONAL = 1 << 0, /* may be empty: NULL or an empty list */
        KEY_FILE = 1 << 1,     /* a path that names a file, not a directory */
};

typedef struct Key {
        const char *name;
        Section section;
        KeyType type;
        unsigned flags;
        size_t offset; /* of the field in ZtnadConfig */
        const char *def;
        uint64_t min, max;          /* TYPE_DURATION, TYPE_SIZE */
        const char *const *choices; /* TYPE_ENUM, NULL-terminated */
        /* A further check of a string or a path: false with the reason in
         * `why`, a phrase that follows the key's name. */
        bool (*check)(const char *value, char *why, size_t why_size);
        const char *description; /* one line, for the example file */
        unsigned apply; /* ConfigApply: what a running ztnad does when it changes */
} Key;

extern const Key *const config_keys; /* config_n_keys rows, in the order of the file */
extern const size_t config_n_keys;
extern const char *const *const config_section_names; /* by Section */
