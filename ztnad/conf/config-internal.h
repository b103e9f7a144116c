/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What crosses files inside ztnad.conf's code, nowhere else. Calls go one
 * way: config.c (the file) -> config-keys.c (the key table) and
 * config-types.c (the value types and the text helpers); config-keys.c ->
 * config-types.c (its checks write their reasons with config_why_set());
 * config-types.c calls neither.
 */

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/time-util.h"
#include "conf/config.h"
#include "conf/config-keys.h"

/* The rows of the key table (config-keys.c holds it to this count): the
 * reader keeps one line number per key. */
#define CONFIG_N_KEYS 27u

#define WHY_MAX 384u
#define SHOW_MAX 80u /* a value quoted in a message, cut short with "..." */

#define USEC_PER_MIN (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MIN)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)
#define KIB UINT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

/* "[" INET6_ADDRSTRLEN "]:65535#" and a TLS name. */
#define ADDRESS_TEXT_MAX (INET6_ADDRSTRLEN + 9 + CONFIG_TLS_NAME_MAX)

/* Each parser reads `value` (NUL-terminated, unquoted, trimmed) into
 * `field`, which is zero on entry and is freed with the configuration
 * whatever happens. Returns 0, -EBADMSG with the reason in `why` (a phrase
 * that follows "key 'K': "), or -ENOMEM. */
typedef int (*ParseFn)(const Key *k, const char *value, void *field, char *why, size_t why_size);

/* config-types.c: the text helpers. */
bool config_is_blank(char c);
const char *config_show(char buf[static SHOW_MAX], const char *s, size_t len);
const char *config_show_str(char buf[static SHOW_MAX], const char *s);
__attribute__((format(printf, 3, 4)))
bool config_why_set(char *why, size_t why_size, const char *fmt, ...);
bool config_ascii_equal_n(const char *a, size_t len, const char *b);

/* config-types.c: the types, by KeyType. */
extern const ParseFn config_parsers[_TYPE_MAX];
bool config_address_same(const ConfigAddress *a, const ConfigAddress *b);
const char *config_address_format(const ConfigAddress *a, char buf[static ADDRESS_TEXT_MAX]);
void config_value_print(const Key *k, const void *field, FILE *f);
bool config_value_equal(const Key *k, const void *a, const void *b);
void config_value_free(const Key *k, void *field);
bool config_value_empty(const Key *k, const void *field);
