/*
 * Unit tests for src/mqtt/topic.c: UTF-8 rules, topic name and filter
 * validity, and matching. Every input is copied into an exact-size heap
 * buffer so that ASan catches a read one byte too far.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/topic.h"

/* Run f over an exact-size heap copy of the n bytes at p. */
static bool on_copy(bool (*f)(const uint8_t *, size_t), const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    bool r;

    cr_assert_not_null(c);
    memcpy(c, p, n);
    r = f(c, n);
    free(c);
    return r;
}

#define UTF8(lit)   on_copy(mqtt_utf8_valid, lit, sizeof(lit) - 1)
#define NAME(lit)   on_copy(mqtt_topic_name_valid, lit, sizeof(lit) - 1)
#define FILTER(lit) on_copy(mqtt_topic_filter_valid, lit, sizeof(lit) - 1)

static bool match(const char *filter, const char *topic)
{
    size_t fl = strlen(filter), tl = strlen(topic);
    uint8_t *f = malloc(fl ? fl : 1), *t = malloc(tl ? tl : 1);
    bool r;

    cr_assert(f && t);
    memcpy(f, filter, fl);
    memcpy(t, topic, tl);
    cr_assert(mqtt_topic_filter_valid(f, fl), "bad test filter %s", filter);
    cr_assert(mqtt_topic_name_valid(t, tl), "bad test topic %s", topic);
    r = mqtt_topic_matches(f, fl, t, tl);
    free(f);
    free(t);
    return r;
}

/* ---- UTF-8 ---- */

Test(utf8, valid_sequences)
{
    cr_assert(UTF8(""));
    cr_assert(UTF8("plain ascii /+#"));
    cr_assert(UTF8("\x7f"));
    cr_assert(UTF8("\xc2\x80"));         /* U+0080, smallest 2-byte */
    cr_assert(UTF8("\xc3\xa9"));         /* U+00E9 */
    cr_assert(UTF8("\xdf\xbf"));         /* U+07FF */
    cr_assert(UTF8("\xe0\xa0\x80"));     /* U+0800, smallest 3-byte */
    cr_assert(UTF8("\xe2\x82\xac"));     /* U+20AC */
    cr_assert(UTF8("\xed\x9f\xbf"));     /* U+D7FF, just below surrogates */
    cr_assert(UTF8("\xee\x80\x80"));     /* U+E000, just above surrogates */
    cr_assert(UTF8("\xef\xbb\xbf"));     /* U+FEFF must pass, MQTT-1.5.3-3 */
    cr_assert(UTF8("\xef\xbf\xbf"));     /* U+FFFF: SHOULD NOT, still valid */
    cr_assert(UTF8("\xf0\x90\x80\x80")); /* U+10000, smallest 4-byte */
    cr_assert(UTF8("\xf0\x9f\x98\x80")); /* U+1F600 */
    cr_assert(UTF8("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the largest */
    cr_assert(UTF8("\x01\x1f"));         /* control chars: SHOULD NOT only */
    cr_assert(UTF8("a\xc3\xa9z\xf0\x9f\x98\x80!"));
}

/* MQTT-1.5.3-2: no U+0000, wherever it is. */
Test(utf8, mqtt_1_5_3_2_null_character)
{
    cr_assert_not(UTF8("\0"));
    cr_assert_not(UTF8("ab\0"));
    cr_assert_not(UTF8("\0ab"));
    cr_assert_not(UTF8("\xc0\x80")); /* the "modified UTF-8" null: overlong */
}

Test(utf8, overlong_encodings)
{
    cr_assert_not(UTF8("\xc0\xaf"));
    cr_assert_not(UTF8("\xc1\xbf"));
    cr_assert_not(UTF8("\xe0\x80\xaf"));
    cr_assert_not(UTF8("\xe0\x9f\xbf"));
    cr_assert_not(UTF8("\xf0\x80\x80\xaf"));
    cr_assert_not(UTF8("\xf0\x8f\xbf\xbf"));
}

/* MQTT-1.5.3-1: the surrogate range U+D800..U+DFFF is ill-formed. */
Test(utf8, mqtt_1_5_3_1_surrogates)
{
    cr_assert_not(UTF8("\xed\xa0\x80"));             /* U+D800 */
    cr_assert_not(UTF8("\xed\xad\xbf"));             /* U+DB7F */
    cr_assert_not(UTF8("\xed\xb0\x80"));             /* U+DC00 */
    cr_assert_not(UTF8("\xed\xbf\xbf"));             /* U+DFFF */
    cr_assert_not(UTF8("\xed\xa0\xbd\xed\xb8\x80")); /* CESU-8 pair */
}

Test(utf8, above_u10ffff)
{
    cr_assert_not(UTF8("\xf4\x90\x80\x80")); /* U+110000 */
    cr_assert_not(UTF8("\xf5\x80\x80\x80"));
    cr_assert_not(UTF8("\xf7\xbf\xbf\xbf"));
    cr_assert_not(UTF8("\xf8\x88\x80\x80\x80")); /* old 5-byte form */
    cr_assert_not(UTF8("\xfc\x84\x80\x80\x80\x80"));
    cr_assert_not(UTF8("\xfe"));
    cr_assert_not(UTF8("\xff"));
}

Test(utf8, truncated_sequences)
{
    cr_assert_not(UTF8("\xc3"));
    cr_assert_not(UTF8("\xe2\x82"));
    cr_assert_not(UTF8("\xe2"));
    cr_assert_not(UTF8("\xf0\x9f\x98"));
    cr_assert_not(UTF8("\xf0\x9f"));
    cr_assert_not(UTF8("\xf0"));
    cr_assert_not(UTF8("abc\xf0\x9f\x98"));
}

Test(utf8, bad_continuation_bytes)
{
    cr_assert_not(UTF8("\x80"));
    cr_assert_not(UTF8("\xbf"));
    cr_assert_not(UTF8("a\x80"));
    cr_assert_not(UTF8("\xc3\x41"));
    cr_assert_not(UTF8("\xc3\xc3\xa9"));
    cr_assert_not(UTF8("\xe2\x28\xa1"));
    cr_assert_not(UTF8("\xe2\x82\x28"));
    cr_assert_not(UTF8("\xf0\x9f\x28\x80"));
    cr_assert_not(UTF8("\xf0\x9f\x98\x28"));
}

/* ---- topic names ---- */

Test(topic_name, valid)
{
    cr_assert(NAME("a"));
    cr_assert(NAME("a/b"));
    cr_assert(NAME("/"));
    cr_assert(NAME("/finance"));
    cr_assert(NAME("a//b/"));
    cr_assert(NAME("$SYS/broker"));
    cr_assert(NAME("spaces are fine"));
    cr_assert(NAME("caf\xc3\xa9"));
}

/* MQTT-4.7.3-1: at least one character. */
Test(topic_name, mqtt_4_7_3_1_not_empty)
{
    cr_assert_not(NAME(""));
    cr_assert_not(mqtt_topic_name_valid(NULL, 0));
}

/* MQTT-3.3.2-2: no wildcard characters in a topic name. */
Test(topic_name, mqtt_3_3_2_2_no_wildcards)
{
    cr_assert_not(NAME("+"));
    cr_assert_not(NAME("#"));
    cr_assert_not(NAME("a/+/b"));
    cr_assert_not(NAME("a/#"));
    cr_assert_not(NAME("a+b"));
    cr_assert_not(NAME("a#"));
}

Test(topic_name, invalid_utf8)
{
    cr_assert_not(NAME("a/\xc3"));
    cr_assert_not(NAME("a\0b"));
    cr_assert_not(NAME("\xed\xa0\x80"));
}

Test(topic_name, length_bounds)
{
    uint8_t *b = malloc(65536);

    cr_assert_not_null(b);
    memset(b, 'x', 65536);
    cr_assert(on_copy(mqtt_topic_name_valid, b, 65535));
    cr_assert_not(on_copy(mqtt_topic_name_valid, b, 65536));
    cr_assert(on_copy(mqtt_topic_filter_valid, b, 65535));
    cr_assert_not(on_copy(mqtt_topic_filter_valid, b, 65536));
    free(b);
}

/* ---- topic filters ---- */

Test(topic_filter, valid)
{
    cr_assert(FILTER("a"));
    cr_assert(FILTER("#"));
    cr_assert(FILTER("+"));
    cr_assert(FILTER("/"));
    cr_assert(FILTER("+/+"));
    cr_assert(FILTER("/+"));
    cr_assert(FILTER("+/"));
    cr_assert(FILTER("a/+/b"));
    cr_assert(FILTER("a/#"));
    cr_assert(FILTER("/#"));
    cr_assert(FILTER("+/#"));
    cr_assert(FILTER("sport/tennis/#"));
    cr_assert(FILTER("sport/+/player1"));
    cr_assert(FILTER("$SYS/#"));
    cr_assert(FILTER("$share/g/a/+"));
}

Test(topic_filter, mqtt_4_7_3_1_not_empty)
{
    cr_assert_not(FILTER(""));
}

/* MQTT-4.7.1-2: '#' alone as the last level. */
Test(topic_filter, mqtt_4_7_1_2_multi_level_wildcard)
{
    cr_assert_not(FILTER("a/#/b"));
    cr_assert_not(FILTER("#/"));
    cr_assert_not(FILTER("#/a"));
    cr_assert_not(FILTER("a#"));
    cr_assert_not(FILTER("a/b#"));
    cr_assert_not(FILTER("a/#b"));
    cr_assert_not(FILTER("##"));
    cr_assert_not(FILTER("sport/tennis#"));
}

/* MQTT-4.7.1-3: '+' occupies a whole level. */
Test(topic_filter, mqtt_4_7_1_3_single_level_wildcard)
{
    cr_assert_not(FILTER("a+"));
    cr_assert_not(FILTER("+a"));
    cr_assert_not(FILTER("a/+b"));
    cr_assert_not(FILTER("a/b+/c"));
    cr_assert_not(FILTER("++"));
    cr_assert_not(FILTER("sport+"));
}

Test(topic_filter, invalid_utf8)
{
    cr_assert_not(FILTER("a/\xc3"));
    cr_assert_not(FILTER("+/\0"));
    cr_assert_not(FILTER("\xf4\x90\x80\x80/#"));
}

Test(topic_filter, has_wildcard)
{
    cr_assert(mqtt_topic_has_wildcard((const uint8_t *)"a/+", 3));
    cr_assert(mqtt_topic_has_wildcard((const uint8_t *)"#", 1));
    cr_assert(mqtt_topic_has_wildcard((const uint8_t *)"a/b#", 4));
    cr_assert_not(mqtt_topic_has_wildcard((const uint8_t *)"a/b", 3));
    cr_assert_not(mqtt_topic_has_wildcard((const uint8_t *)"", 0));
    /* Only the given length counts. */
    cr_assert_not(mqtt_topic_has_wildcard((const uint8_t *)"a/+", 2));
}

/* ---- matching ---- */

Test(topic_match, exact)
{
    cr_assert(match("a/b", "a/b"));
    cr_assert_not(match("a/b", "a/b/c"));
    cr_assert_not(match("a/b", "a"));
    cr_assert_not(match("a/b", "a/bc"));
    cr_assert_not(match("a/bc", "a/b"));
    cr_assert_not(match("a/b", "a/b/"));
    cr_assert_not(match("a/b/", "a/b"));
    cr_assert(match("/", "/"));
    cr_assert_not(match("/", "a"));
}

/* Topic levels are case sensitive (MQTT 4.7.3). */
Test(topic_match, case_sensitive)
{
    cr_assert_not(match("ACCOUNTS", "Accounts"));
    cr_assert(match("Accounts payable", "Accounts payable"));
}

/* The MQTT-4.7.1-2 examples for '#'. */
Test(topic_match, mqtt_4_7_1_2_multi_level_examples)
{
    cr_assert(match("sport/tennis/player1/#", "sport/tennis/player1"));
    cr_assert(match("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
    cr_assert(match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
    cr_assert_not(match("sport/tennis/player1/#", "sport/tennis/player2"));
    cr_assert_not(match("sport/tennis/player1/#", "sport/tennis"));
    cr_assert(match("sport/#", "sport"));
    cr_assert(match("sport/#", "sport/"));
    cr_assert_not(match("sport/#", "sports"));
    cr_assert(match("#", "a"));
    cr_assert(match("#", "a/b/c"));
    cr_assert(match("#", "/"));
    cr_assert(match("/#", "/"));
    cr_assert(match("/#", "/a/b"));
    cr_assert_not(match("/#", "a"));
}

/* The MQTT-4.7.1-3 examples for '+'. */
Test(topic_match, mqtt_4_7_1_3_single_level_examples)
{
    cr_assert(match("sport/tennis/+", "sport/tennis/player1"));
    cr_assert(match("sport/tennis/+", "sport/tennis/player2"));
    cr_assert_not(match("sport/tennis/+", "sport/tennis/player1/ranking"));
    cr_assert_not(match("sport/+", "sport"));
    cr_assert(match("sport/+", "sport/"));
    cr_assert(match("+", "a"));
    cr_assert_not(match("+", "a/b"));
    cr_assert(match("+/+", "/finance"));
    cr_assert(match("/+", "/finance"));
    cr_assert_not(match("+", "/finance"));
    cr_assert(match("+/+", "/"));
    cr_assert(match("a/+/c", "a//c"));
    cr_assert(match("+/tennis/#", "sport/tennis/player1"));
    cr_assert(match("+/+/+", "a/b/c"));
    cr_assert_not(match("+/+/+", "a/b"));
}

Test(topic_match, plus_then_hash)
{
    cr_assert(match("a/+/#", "a/b"));
    cr_assert(match("a/+/#", "a/b/c/d"));
    cr_assert_not(match("a/+/#", "a"));
    cr_assert(match("+/#", "a"));
    cr_assert(match("+/#", "/"));
}

/* MQTT-4.7.2-1: '$' topics are not matched by a leading wildcard. */
Test(topic_match, mqtt_4_7_2_1_dollar_topics)
{
    cr_assert_not(match("#", "$SYS"));
    cr_assert_not(match("#", "$SYS/monitor/Clients"));
    cr_assert_not(match("+/monitor/Clients", "$SYS/monitor/Clients"));
    cr_assert_not(match("+", "$SYS"));
    cr_assert_not(match("+/#", "$SYS/a"));
    cr_assert(match("$SYS/#", "$SYS/monitor/Clients"));
    cr_assert(match("$SYS/#", "$SYS"));
    cr_assert(match("$SYS/monitor/+", "$SYS/monitor/Clients"));
    cr_assert(match("$SYS/monitor/Clients", "$SYS/monitor/Clients"));
    /* Only the first character counts. */
    cr_assert(match("#", "a/$SYS"));
    cr_assert(match("+/+", "a/$b"));
}

static int share(const char *f, struct mqtt_share_spec *sp)
{
    return mqtt_share_parse((const uint8_t *)f, strlen(f), sp);
}

/* The parts of $share/GROUP/FILTER and $oshare/GROUP/FILTER are views into
 * the filter; anything else is a plain filter. */
Test(share_parse, kinds_and_parts)
{
    struct mqtt_share_spec sp = {0};
    cr_assert_eq(share("$share/g1/a/+", &sp), MQTT_SHARE_ROUND_ROBIN);
    cr_assert_eq(sp.kind, MQTT_SHARE_ROUND_ROBIN);
    cr_assert(sp.group_len == 2 && memcmp(sp.group, "g1", 2) == 0);
    cr_assert(sp.filter_len == 3 && memcmp(sp.filter, "a/+", 3) == 0);
    cr_assert_eq(share("$oshare/g/#", &sp), MQTT_SHARE_ORDERED);
    cr_assert(sp.filter_len == 1 && sp.filter[0] == '#');
    cr_assert_eq(share("a/b", &sp), MQTT_SHARE_NONE);
    cr_assert_eq(share("$SYS/#", &sp), MQTT_SHARE_NONE);
    cr_assert_eq(share("$shar", &sp), MQTT_SHARE_NONE);
}

/* MQTT-4.8.2-1: a share name of at least one character, then '/', then a
 * filter. MQTT-4.8.2-2: no '+' or '#' in the share name. */
Test(share_parse, mqtt_4_8_2_1_and_2_malformed)
{
    struct mqtt_share_spec sp;
    cr_assert_eq(share("$share//a", &sp), -1);
    cr_assert_eq(share("$share/g", &sp), -1);
    cr_assert_eq(share("$share/g/", &sp), -1);
    cr_assert_eq(share("$share/g+/a", &sp), -1);
    cr_assert_eq(share("$oshare/#/a", &sp), -1);
}
