/*
 * topic: the MQTT rules for strings, topic names and topic filters, and the
 * match of one filter against one topic name.
 *
 * Pure functions over borrowed bytes: no allocation, no I/O, no logging, no
 * state, so any thread may call them. The topic index (src/index) does its
 * own level-by-level walk; mqtt_topic_matches() is the reference it is
 * tested against and what code without an index (retained scans) uses.
 */
#include "mqtt/topic.h"

#include <string.h>

#define TOPIC_MAX_LEN 65535u

/*
 * RFC 3629 well-formedness, written as explicit ranges for the second byte
 * because those ranges are exactly where overlongs (E0 80..9F, F0 80..8F),
 * surrogates (ED A0..BF) and code points above U+10FFFF (F4 90..BF, F5..FF)
 * are excluded. U+0000 is well-formed UTF-8 but forbidden in MQTT strings.
 */
bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i];
        uint8_t lo = 0x80, hi = 0xBF;
        size_t n;

        if (c == 0x00) /* MQTT-1.5.3-2 */
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { /* C0, C1 would be overlong */
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong below U+0800 */
            else if (c == 0xED)
                hi = 0x9F; /* MQTT-1.5.3-1: no surrogates U+D800..DFFF */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong below U+10000 */
            else if (c == 0xF4)
                hi = 0x8F; /* nothing above U+10FFFF */
        } else {
            return false; /* stray continuation, C0/C1, F5..FF */
        }
        if (len - i - 1 < n)
            return false; /* truncated sequence */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

bool mqtt_topic_has_wildcard(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '+' || s[i] == '#')
            return true;
    return false;
}

bool mqtt_topic_name_valid(const uint8_t *s, size_t len)
{
    /* MQTT-4.7.3-1: at least one character; the 16-bit length bounds it. */
    if (len == 0 || len > TOPIC_MAX_LEN)
        return false;
    if (mqtt_topic_has_wildcard(s, len)) /* MQTT-3.3.2-2 */
        return false;
    return mqtt_utf8_valid(s, len);
}

bool mqtt_topic_filter_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || len > TOPIC_MAX_LEN) /* MQTT-4.7.3-1 */
        return false;
    for (size_t i = 0; i < len; i++) {
        bool level_start = i == 0 || s[i - 1] == '/';
        bool level_end = i + 1 == len || s[i + 1] == '/';

        if (s[i] == '#' && !(level_start && i + 1 == len)) /* MQTT-4.7.1-2 */
            return false;
        if (s[i] == '+' && !(level_start && level_end)) /* MQTT-4.7.1-3 */
            return false;
    }
    return mqtt_utf8_valid(s, len);
}

/* End of the level starting at `i`: the index of the next '/' or `len`. */
static size_t level_end(const uint8_t *s, size_t len, size_t i)
{
    const uint8_t *slash;

    if (i >= len) /* also keeps a NULL empty topic away from memchr */
        return len;
    slash = memchr(s + i, '/', len - i);
    return slash ? (size_t)(slash - s) : len;
}

bool mqtt_topic_matches(const uint8_t *filter, size_t flen, const uint8_t *topic, size_t tlen)
{
    size_t f = 0, t = 0;

    if (flen == 0)
        return false;
    /* MQTT-4.7.2-1: "$SYS/x" is only reached by a filter naming "$" first. */
    if (tlen > 0 && topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;

    for (;;) {
        size_t fe = level_end(filter, flen, f);
        size_t te = level_end(topic, tlen, t);

        /* A valid filter has '#' only as its whole last level. */
        if (fe - f == 1 && filter[f] == '#')
            return true;
        /* '+' matches any one level, the empty one included. */
        if (!(fe - f == 1 && filter[f] == '+')) {
            if (fe - f != te - t || (fe > f && memcmp(filter + f, topic + t, fe - f) != 0))
                return false;
        }
        if (fe == flen && te == tlen)
            return true;
        if (fe == flen)
            return false; /* the topic has more levels */
        if (te == tlen) {
            /* "sport/#" matches "sport": the '#' stands for the parent too. */
            return flen - fe == 2 && filter[fe + 1] == '#';
        }
        f = fe + 1;
        t = te + 1;
    }
}

int mqtt_share_parse(const uint8_t *f, size_t len, struct mqtt_share_spec *out)
{
    static const char share[] = "$share/", oshare[] = "$oshare/";
    size_t pre;
    uint8_t kind;
    if (len >= 7 && memcmp(f, share, 7) == 0) {
        pre = 7;
        kind = MQTT_SHARE_ROUND_ROBIN;
    } else if (len >= 8 && memcmp(f, oshare, 8) == 0) {
        pre = 8;
        kind = MQTT_SHARE_ORDERED;
    } else {
        return MQTT_SHARE_NONE;
    }
    const uint8_t *g = f + pre;
    const uint8_t *slash = memchr(g, '/', len - pre);
    if (!slash || slash == g || (size_t)(slash - f) + 1 >= len)
        return -1; /* MQTT-4.8.2-1: a name, then '/', then a filter */
    for (const uint8_t *p = g; p < slash; p++)
        if (*p == '+' || *p == '#')
            return -1; /* MQTT-4.8.2-2 */
    out->kind = kind;
    out->group = g;
    out->group_len = (size_t)(slash - g);
    out->filter = slash + 1;
    out->filter_len = len - (size_t)(slash + 1 - f);
    return kind;
}
