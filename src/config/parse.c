/*
 * config/parse: the directive table's value parsers (parse.h).
 */
#include "config/parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- value parsers ---------------------------------------------------- */

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow. */
static int parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        unsigned digit = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return -ERANGE;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

static int parse_ranged(const struct directive *d, const char *value, uint64_t *out, char *why,
                        size_t whylen, const char *what)
{
    uint64_t v;
    if (parse_uint(value, &v) < 0 || v < d->min || v > d->max) {
        snprintf(why, whylen, "expected %s %llu..%llu, got '%s'", what, (unsigned long long)d->min,
                 (unsigned long long)d->max, value);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int parse_u32(const struct directive *d, const char *value, void *field, char *why, size_t whylen)
{
    uint64_t v;
    if (parse_ranged(d, value, &v, why, whylen, "an integer") < 0)
        return -EINVAL;
    *(uint32_t *)field = (uint32_t)v;
    return 0;
}

int parse_u64(const struct directive *d, const char *value, void *field, char *why, size_t whylen)
{
    uint64_t v;
    if (parse_ranged(d, value, &v, why, whylen, "an integer") < 0)
        return -EINVAL;
    *(uint64_t *)field = v;
    return 0;
}

/* Provided-buffer rings must have a power-of-two number of entries. */
int parse_pow2_u32(const struct directive *d, const char *value, void *field, char *why,
                   size_t whylen)
{
    uint64_t v;
    if (parse_ranged(d, value, &v, why, whylen, "a power of two") < 0)
        return -EINVAL;
    if ((v & (v - 1)) != 0) {
        snprintf(why, whylen, "expected a power of two %llu..%llu, got '%s'",
                 (unsigned long long)d->min, (unsigned long long)d->max, value);
        return -EINVAL;
    }
    *(uint32_t *)field = (uint32_t)v;
    return 0;
}

int parse_port(const struct directive *d, const char *value, void *field, char *why, size_t whylen)
{
    uint64_t v;
    if (parse_ranged(d, value, &v, why, whylen, "a port") < 0)
        return -EINVAL;
    *(uint16_t *)field = (uint16_t)v;
    return 0;
}

/* "auto" is stored as 0; main resolves it to the online CPU count. */
int parse_shards(const struct directive *d, const char *value, void *field, char *why,
                 size_t whylen)
{
    uint64_t v = 0;
    if (strcmp(value, "auto") != 0 &&
        parse_ranged(d, value, &v, why, whylen, "auto or an integer") < 0)
        return -EINVAL;
    *(uint32_t *)field = (uint32_t)v;
    return 0;
}

int parse_affinity(const struct directive *d, const char *value, void *field, char *why,
                   size_t whylen)
{
    (void)d;
    return affinity_parse(value, field, why, whylen);
}

int parse_bool(const struct directive *d, const char *value, void *field, char *why, size_t whylen)
{
    static const char *const truthy[] = {"true", "yes", "on", "1"};
    static const char *const falsy[] = {"false", "no", "off", "0"};
    (void)d;
    for (size_t i = 0; i < ARRAY_LEN(truthy); i++) {
        if (strcasecmp(value, truthy[i]) == 0) {
            *(bool *)field = true;
            return 0;
        }
        if (strcasecmp(value, falsy[i]) == 0) {
            *(bool *)field = false;
            return 0;
        }
    }
    snprintf(why, whylen, "expected true/false, yes/no, on/off or 1/0, got '%s'", value);
    return -EINVAL;
}

int parse_log_level(const struct directive *d, const char *value, void *field, char *why,
                    size_t whylen)
{
    (void)d;
    if (log_parse_level(value, (enum log_level *)field) < 0) {
        snprintf(why, whylen, "expected error, warning, info or debug, got '%s'", value);
        return -EINVAL;
    }
    return 0;
}

/* Which message a full session queue drops: "newest" (the one arriving) or
 * "oldest" (the head of the queue, making room). */
int parse_queue_drop(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen)
{
    (void)d;
    if (strcmp(value, "newest") == 0 || strcmp(value, "oldest") == 0) {
        *(bool *)field = value[0] == 'o';
        return 0;
    }
    snprintf(why, whylen, "expected newest or oldest, got '%s'", value);
    return -EINVAL;
}

int parse_log_format(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen)
{
    (void)d;
    if (strcmp(value, "text") == 0 || strcmp(value, "json") == 0) {
        *(enum log_format *)field = value[0] == 'j' ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
        return 0;
    }
    snprintf(why, whylen, "expected text or json, got '%s'", value);
    return -EINVAL;
}

int parse_log_target(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen)
{
    (void)d;
    if (strcmp(value, "stderr") == 0 || strcmp(value, "syslog") == 0) {
        *(enum log_target *)field = value[1] == 'y' ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR;
        return 0;
    }
    snprintf(why, whylen, "expected stderr or syslog, got '%s'", value);
    return -EINVAL;
}

static const char *const transport_names[CONFIG_TRANSPORT_COUNT] = {
    [CONFIG_TRANSPORT_TCP] = "tcp",
    [CONFIG_TRANSPORT_WS] = "ws",
    [CONFIG_TRANSPORT_TLS] = "tls",
    [CONFIG_TRANSPORT_WSS] = "wss",
};

static const bool transport_on_tls[CONFIG_TRANSPORT_COUNT] = {
    [CONFIG_TRANSPORT_TLS] = true,
    [CONFIG_TRANSPORT_WSS] = true,
};

const char *config_transport_name(enum config_transport t)
{
    return (unsigned)t < CONFIG_TRANSPORT_COUNT ? transport_names[t] : "?";
}

bool config_transport_tls(enum config_transport t)
{
    return (unsigned)t < CONFIG_TRANSPORT_COUNT && transport_on_tls[t];
}

int parse_transport(const struct directive *d, const char *value, void *field, char *why,
                    size_t whylen)
{
    (void)d;
    for (unsigned t = 0; t < CONFIG_TRANSPORT_COUNT; t++)
        if (strcmp(value, transport_names[t]) == 0) {
            *(uint8_t *)field = (uint8_t)t;
            return 0;
        }
    snprintf(why, whylen, "expected tcp, tls, ws or wss, got '%s'", value);
    return -EINVAL;
}

int parse_tls_verify(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen)
{
    static const char *const names[] = {
        [CONFIG_TLS_VERIFY_NONE] = "none",
        [CONFIG_TLS_VERIFY_OPTIONAL] = "optional",
        [CONFIG_TLS_VERIFY_REQUIRED] = "required",
    };
    (void)d;
    for (unsigned v = 0; v < ARRAY_LEN(names); v++)
        if (strcmp(value, names[v]) == 0) {
            *(uint8_t *)field = (uint8_t)v;
            return 0;
        }
    snprintf(why, whylen, "expected none, optional or required, got '%s'", value);
    return -EINVAL;
}

/* TLS 1.0 and 1.1 are never offered (RFC 8996 deprecates them). */
int parse_tls_version(const struct directive *d, const char *value, void *field, char *why,
                      size_t whylen)
{
    (void)d;
    if (strcmp(value, "1.2") == 0 || strcmp(value, "1.3") == 0) {
        *(uint8_t *)field = (uint8_t)(value[2] == '2' ? 12 : 13);
        return 0;
    }
    snprintf(why, whylen, "expected 1.2 or 1.3 (TLS 1.0 and 1.1 are not supported), got '%s'",
             value);
    return -EINVAL;
}

int parse_proxy(const struct directive *d, const char *value, void *field, char *why, size_t whylen)
{
    (void)d;
    static const char *const names[] = {
        [CONFIG_PROXY_OFF] = "off",
        [CONFIG_PROXY_V1] = "v1",
        [CONFIG_PROXY_V2] = "v2",
        [CONFIG_PROXY_ANY] = "any",
    };
    for (unsigned i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(value, names[i]) == 0) {
            *(uint8_t *)field = (uint8_t)i;
            return 0;
        }
    snprintf(why, whylen, "expected off, v1, v2 or any, got '%s'", value);
    return -EINVAL;
}

/* "10.0.0.0/8, 2001:db8::/32, 127.0.0.1": ranges separated by commas
 * and/or spaces; empty is an empty list. Parsed in place, like
 * parse_versions, so that nothing past a cut goes unchecked. */
int parse_cidrs(const struct directive *d, const char *value, void *field, char *why, size_t whylen)
{
    (void)d;
    struct config_cidrs list = {.n = 0};
    for (const char *p = value + strspn(value, ", "); *p; p += strspn(p, ", ")) {
        size_t n = strcspn(p, ", ");
        if (list.n == CONFIG_MAX_CIDRS) {
            snprintf(why, whylen, "more than %d address ranges", CONFIG_MAX_CIDRS);
            return -EINVAL;
        }
        if (cidr_parse(&list.v[list.n], p, n) < 0) {
            snprintf(why, whylen, "expected address ranges such as 10.0.0.0/8 or ::1, got '%.*s'",
                     (int)(n < 100 ? n : 100), p);
            return -EINVAL;
        }
        list.n++;
        p += n;
    }
    *(struct config_cidrs *)field = list;
    return 0;
}

/* A string that must fit its char[d->max] field, terminator included, and
 * hold at least d->min bytes (1: the key may not be left empty). */
int parse_string(const struct directive *d, const char *value, void *field, char *why,
                 size_t whylen)
{
    size_t len = strlen(value);
    if (len < d->min) {
        snprintf(why, whylen, "expected %llu..%llu bytes, got '%s'", (unsigned long long)d->min,
                 (unsigned long long)(d->max - 1), value);
        return -EINVAL;
    }
    if (len >= d->max) {
        snprintf(why, whylen, "value longer than %llu bytes", (unsigned long long)(d->max - 1));
        return -EINVAL;
    }
    memcpy(field, value, len + 1);
    return 0;
}

/* An HTTP path a request can name (RFC 9112's origin-form): it starts with
 * '/' and holds no space, control character, query or fragment; another
 * would answer every Upgrade with 404. */
int parse_http_path(const struct directive *d, const char *value, void *field, char *why,
                    size_t whylen)
{
    bool ok = value[0] == '/';
    for (const char *c = value; ok && *c; c++)
        ok = (unsigned char)*c > 0x20 && *c != 0x7f && *c != '?' && *c != '#';
    if (!ok) {
        snprintf(why, whylen, "expected a path such as /mqtt, got '%s'", value);
        return -EINVAL;
    }
    return parse_string(d, value, field, why, whylen);
}

/* "3.1,3.1.1,5" (any order, at least one) -> bits (1 << protocol level).
 * Tokens are compared in place: a copy into a fixed buffer would cut a long
 * value and let whatever followed the cut pass unchecked. */
int parse_versions(const struct directive *d, const char *value, void *field, char *why,
                   size_t whylen)
{
    (void)d;
    uint32_t bits = 0;
    for (const char *p = value; *p;) {
        size_t n = strcspn(p, ", ");
        if (n == 3 && strncmp(p, "3.1", n) == 0)
            bits |= 1u << 3;
        else if (n == 5 && strncmp(p, "3.1.1", n) == 0)
            bits |= 1u << 4;
        else if ((n == 1 && p[0] == '5') || (n == 3 && strncmp(p, "5.0", n) == 0))
            bits |= 1u << 5;
        else if (n != 0) {
            bits = 0;
            break;
        }
        p += n;
        p += strspn(p, ", ");
    }
    if (!bits) {
        snprintf(why, whylen, "expected a list of 3.1, 3.1.1, 5, got '%s'", value);
        return -EINVAL;
    }
    *(uint32_t *)field = bits;
    return 0;
}

/* Only literals: resolving names at start-up would make binding depend on DNS. */
int parse_address(const struct directive *d, const char *value, void *field, char *why,
                  size_t whylen)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1) {
        snprintf(why, whylen, "expected an IPv4 or IPv6 address literal, got '%s'", value);
        return -EINVAL;
    }
    return parse_string(d, value, field, why, whylen);
}

int parse_fsync(const struct directive *d, const char *value, void *field, char *why, size_t whylen)
{
    static const char *const names[] = {"always", "interval", "never"};
    (void)d;
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(value, names[i]) == 0) {
            *(enum persist_fsync *)field = (enum persist_fsync)i;
            return 0;
        }
    snprintf(why, whylen, "expected always, interval or never, got '%s'", value);
    return -EINVAL;
}
