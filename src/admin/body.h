/*
 * body: the JSON bodies of the admin API's writes, parsed and checked
 * before the broker is asked: POST .../publish (a message and its MQTT
 * 5.0 properties) and POST .../sessions/{id}/subscriptions (a filter and
 * its subscription options). Pure over the bytes given (jansson parses):
 * no I/O, no logging; any thread, no state.
 *
 * Every refusal says why in words for a 400 answer, naming the field and,
 * where there is one, the MQTT rule (MQTT-3.3.2-14 ...). What needs the
 * broker (topic names and filters in full, the tenant's settings, the
 * property block as MQTT encodes it) is checked there.
 */
#ifndef RINGMQ_ADMIN_BODY_H
#define RINGMQ_ADMIN_BODY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "admin/admin.h"

/* A parsed POST .../publish body: p borrows from the rest, which the
 * body owns until admin_publish_body_fini. */
struct admin_publish_body {
    struct admin_publish p;
    json_t *json;
    uint8_t *payload_buf;     /* payload_base64 decoded */
    uint8_t *correlation_buf; /* correlation_data decoded */
    struct admin_user_prop *users;
};

/*
 * Parse body[0..len) (a JSON object; fields in docs/admin-api.md) into
 * *out. 0; -EINVAL with why[0..cap) saying what is wrong (out then holds
 * nothing to free beyond what fini frees); -ENOMEM. Call
 * admin_publish_body_fini in every case.
 */
int admin_publish_parse(const char *body, size_t len, struct admin_publish_body *out, char *why,
                        size_t cap);
void admin_publish_body_fini(struct admin_publish_body *b);

/* A parsed POST .../subscriptions body: a borrows from json. */
struct admin_sub_body {
    struct admin_sub_add a;
    json_t *json;
};

/* As admin_publish_parse, for {filter, qos, no_local, retain_as_published,
 * retain_handling, subscription_identifier}. */
int admin_sub_parse(const char *body, size_t len, struct admin_sub_body *out, char *why,
                    size_t cap);
void admin_sub_body_fini(struct admin_sub_body *b);

#endif
