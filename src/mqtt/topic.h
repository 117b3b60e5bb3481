/*
 * topic: MQTT string, topic name and topic filter rules, and matching.
 * Pure functions, no allocation.
 */
#ifndef RINGMQ_MQTT_TOPIC_H
#define RINGMQ_MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates U+D800..DFFF,
 * nothing above U+10FFFF) with no U+0000 (MQTT-1.5.3-1, MQTT-1.5.3-2). */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);

/* A topic name: 1..65535 bytes, valid UTF-8, no '+' or '#' (MQTT-3.3.2-2,
 * MQTT-4.7.3-1). */
bool mqtt_topic_name_valid(const uint8_t *s, size_t len);

/* A topic filter: 1..65535 bytes, valid UTF-8; '#' only as the whole last
 * level (MQTT-4.7.1-2); '+' only as a whole level (MQTT-4.7.1-3). */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len);

/* True when `filter` (valid) matches `topic` (valid name). A topic starting
 * with '$' is not matched by a filter whose first level is '+' or '#'
 * (MQTT-4.7.2-1). "a/#" matches "a" (MQTT-4.7.1-2 example). */
bool mqtt_topic_matches(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen);

/* True when the filter contains '+' or '#'. */
bool mqtt_topic_has_wildcard(const uint8_t *s, size_t len);

/* Shared subscriptions: $share/GROUP/FILTER (MQTT 5.0 4.8.2, also offered
 * to 3.1.1 clients) and ringmq's ordered share $oshare/GROUP/FILTER. */
enum mqtt_share_kind {
    MQTT_SHARE_NONE = 0,
    MQTT_SHARE_ROUND_ROBIN = 1, /* $share/ */
    MQTT_SHARE_ORDERED = 2,     /* $oshare/ */
};

/* A shared subscription's parts: views into the whole filter. */
struct mqtt_share_spec {
    uint8_t kind; /* enum mqtt_share_kind */
    const uint8_t *group;
    size_t group_len;
    const uint8_t *filter;
    size_t filter_len;
};

/*
 * Split `f` (a valid topic filter). Returns MQTT_SHARE_NONE for a plain filter,
 * the kind with *out filled for a well-formed shared one, or -1 for a
 * malformed one: an empty share name, or one with '+' or '#' (MQTT-4.8.2-1,
 * MQTT-4.8.2-2), or nothing after it.
 */
int mqtt_share_parse(const uint8_t *f, size_t len, struct mqtt_share_spec *out);

#endif
