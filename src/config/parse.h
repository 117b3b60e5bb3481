/*
 * config/parse: the value parsers of the directive table, one per kind of
 * value (integers in ranges, booleans, ports, addresses, names from a
 * list, address ranges), and the directive itself. Internal to the config
 * room: config.c holds the table and the file's reading.
 *
 * Each parser reads `value` into `field` (the directive's slot); on failure
 * it returns -EINVAL and writes the reason (without the "[section] key: "
 * prefix) to why.
 */
#ifndef RINGMQ_CONFIG_PARSE_H
#define RINGMQ_CONFIG_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Which struct a directive's offset points into, and which section it is in. */
enum config_scope {
    CONFIG_SCOPE_NONE,     /* before the first [section] */
    CONFIG_SCOPE_SERVER,   /* [server] -> struct config */
    CONFIG_SCOPE_LISTENER, /* [listener.NAME] -> struct config_listener */
    CONFIG_SCOPE_LIMITS,   /* [limits] -> struct config */
    CONFIG_SCOPE_LOG,      /* [log] -> struct config */
    CONFIG_SCOPE_MQTT,     /* [mqtt] -> struct config */
    CONFIG_SCOPE_METRICS,  /* [metrics] -> struct config */
    CONFIG_SCOPE_ADMIN,    /* [admin] -> struct config */
    CONFIG_SCOPE_PERSIST,  /* [persistence] -> struct config */
    CONFIG_SCOPE_TENANT,   /* [tenant.ID] -> struct tenant_settings */
    CONFIG_SCOPE_PLUGIN,   /* [plugin.NAME] -> struct config_plugin (free keys) */
};

struct directive;

/*
 * Parse `value` into `field` (the directive's slot). On failure return
 * -EINVAL and write the reason (without the "[section] key: " prefix) to why.
 */
typedef int (*directive_parse_fn)(const struct directive *d, const char *value, void *field,
                                  char *why, size_t whylen);

struct directive {
    enum config_scope scope;
    const char *key;
    directive_parse_fn parse;
    size_t offset;
    uint64_t min, max; /* integers: inclusive bounds; strings: max is the field size */
    size_t size;       /* of the field (a reload compares fields byte for byte) */
};

/* The section name of a scope with one section ("server", "limits", ...);
 * NULL for listeners, tenants and plugins (one section each). */
const char *config_scope_name(enum config_scope scope);

/* Every key the broker knows (config.c's table), for reload.c. */
const struct directive *config_directives(size_t *n);

int parse_u32(const struct directive *d, const char *value, void *field, char *why, size_t whylen);
int parse_u64(const struct directive *d, const char *value, void *field, char *why, size_t whylen);
int parse_bool(const struct directive *d, const char *value, void *field, char *why, size_t whylen);
int parse_shards(const struct directive *d, const char *value, void *field, char *why,
                 size_t whylen);
int parse_affinity(const struct directive *d, const char *value, void *field, char *why,
                   size_t whylen);
int parse_port(const struct directive *d, const char *value, void *field, char *why, size_t whylen);
int parse_log_level(const struct directive *d, const char *value, void *field, char *why,
                    size_t whylen);
int parse_address(const struct directive *d, const char *value, void *field, char *why,
                  size_t whylen);
int parse_pow2_u32(const struct directive *d, const char *value, void *field, char *why,
                   size_t whylen);
int parse_http_path(const struct directive *d, const char *value, void *field, char *why,
                    size_t whylen);
int parse_string(const struct directive *d, const char *value, void *field, char *why,
                 size_t whylen);
int parse_queue_drop(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen);
int parse_versions(const struct directive *d, const char *value, void *field, char *why,
                   size_t whylen);
int parse_transport(const struct directive *d, const char *value, void *field, char *why,
                    size_t whylen);
int parse_log_format(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen);
int parse_log_target(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen);
int parse_fsync(const struct directive *d, const char *value, void *field, char *why,
                size_t whylen);
int parse_proxy(const struct directive *d, const char *value, void *field, char *why,
                size_t whylen);
int parse_cidrs(const struct directive *d, const char *value, void *field, char *why,
                size_t whylen);
int parse_tls_verify(const struct directive *d, const char *value, void *field, char *why,
                     size_t whylen);
int parse_tls_version(const struct directive *d, const char *value, void *field, char *why,
                      size_t whylen);

#endif
