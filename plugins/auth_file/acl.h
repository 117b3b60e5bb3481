/*
 * ACL file of the auth_file plugin: per-tenant rules granting read / write /
 * readwrite or denying topic filters, with %u (user id) and %c (client id)
 * substitution, matched with MQTT wildcard semantics. The format is described
 * in plugins/auth_file/README.md. An acl is built once by acl_load and then
 * only read: checks from several threads need no lock.
 */
#ifndef RINGMQ_PLUGIN_ACL_H
#define RINGMQ_PLUGIN_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;

/* Parse the ACL file at `path`. Returns 0 and sets *out (free with
 * acl_destroy), or -errno with a message naming the file and line in err. */
int acl_load(const char *path, struct acl **out, char *err, size_t errlen);

void acl_destroy(struct acl *acl);

/* In the checks below, a tenant without a section gets nothing, and user_id
 * may be NULL (anonymous: rules with %u do not apply). */

/* May this client publish to `topic`? A `write` rule must match it and no
 * `deny` rule may. */
bool acl_may_publish(const struct acl *acl, const char *tenant, const char *user_id,
                     const uint8_t *client_id, size_t client_id_len, const uint8_t *topic,
                     size_t topic_len);

enum acl_sub {
    ACL_SUB_DENIED = 0,
    ACL_SUB_GRANTED = 1,
    ACL_SUB_PER_TOPIC = 2, /* granted; each delivered topic needs acl_may_read */
};

/* May this client subscribe to `filter`? Denied when no `read` rule covers
 * it (every topic it matches) or one `deny` rule covers it (for a shared
 * subscription, also its inner filter); granted per topic when a `deny`
 * rule overlaps it without covering it; else granted. */
enum acl_sub acl_may_subscribe(const struct acl *acl, const char *tenant, const char *user_id,
                               const uint8_t *client_id, size_t client_id_len,
                               const uint8_t *filter, size_t filter_len);

/* May this client receive a message on `topic` through a subscription
 * granted per topic? True unless a `deny` rule matches the topic. */
bool acl_may_read(const struct acl *acl, const char *tenant, const char *user_id,
                  const uint8_t *client_id, size_t client_id_len, const uint8_t *topic,
                  size_t topic_len);

/* MQTT matching helpers, exposed for the plugin's tests through the ABI only
 * indirectly; declared here because acl.c and auth_file.c share them. */

/* Whether every topic matched by `filter` is matched by `rule` (a topic name
 * is a filter without wildcards). */
bool acl_filter_covers(const char *rule, size_t rule_len, const char *filter, size_t filter_len);

/* Whether some topic is matched by both filters. */
bool acl_filters_intersect(const char *a, size_t a_len, const char *b, size_t b_len);

#endif
