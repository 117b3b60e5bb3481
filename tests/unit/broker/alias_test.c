/*
 * broker/alias: the topic alias tables of one MQTT 5.0 connection (MQTT 5.0
 * section 3.3.2.3.4), through the header.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/alias.h"

static struct conn_v5 *v5(uint16_t max_in, uint16_t max_out)
{
    struct conn_v5 *v = calloc(1, sizeof(*v));
    cr_assert_not_null(v);
    v->alias_max_in = max_in;
    v->alias_max_out = max_out;
    return v;
}

static const uint8_t *T(const char *s)
{
    return (const uint8_t *)s;
}

/* MQTT-3.3.2-12: every alias from 1 to the maximum we announced is
 * accepted; an alias the client set maps to its topic until the client sets
 * it again; one it never set is unknown. */
Test(alias, inbound_set_get_and_replace_MQTT_3_3_2_12)
{
    struct conn_v5 *v = v5(10, 0);
    size_t len = 0;
    cr_assert_null(alias_in_get(v, 1, &len), "nothing set yet: no table");
    cr_assert_eq(alias_in_set(v, 1, T("a/b"), 3), 0);
    const uint8_t *t = alias_in_get(v, 1, &len);
    cr_assert(t && len == 3 && memcmp(t, "a/b", 3) == 0);
    cr_assert_null(alias_in_get(v, 2, &len), "another alias stays unknown");
    cr_assert_eq(alias_in_set(v, 1, T("c/dd"), 4), 0);
    t = alias_in_get(v, 1, &len);
    cr_assert(t && len == 4 && memcmp(t, "c/dd", 4) == 0, "set again: the new topic");
    cr_assert_eq(alias_in_set(v, 10, T("z"), 1), 0, "the maximum alias is valid");
    cr_assert_null(alias_in_get(v, 11, &len), "past the maximum: never known");
    conn_v5_destroy(v);
}

Test(alias, outbound_assigns_once_per_topic_up_to_the_clients_maximum)
{
    struct conn_v5 *v = v5(0, 3);
    bool known = true;
    cr_assert_eq(alias_out_get(v, T("t/1"), 3, &known), 1);
    cr_assert(!known, "a new alias: the topic must be sent with it");
    cr_assert_eq(alias_out_get(v, T("t/2"), 3, &known), 2);
    cr_assert_eq(alias_out_get(v, T("t/1"), 3, &known), 1);
    cr_assert(known, "the client has it: the topic may be sent empty");
    cr_assert_eq(alias_out_get(v, T("t/3"), 3, &known), 3);
    /* MQTT-3.3.2-11: never more than the client's Topic Alias Maximum. */
    cr_assert_eq(alias_out_get(v, T("t/4"), 3, &known), 0);
    cr_assert(!known);
    cr_assert_eq(alias_out_get(v, T("t/3"), 3, &known), 3, "full: known ones still map");
    cr_assert(known);
    conn_v5_destroy(v);
}

/* MQTT-3.3.2-11: a client whose Topic Alias Maximum is 0 is sent none. */
Test(alias, outbound_none_when_the_client_allows_none_MQTT_3_3_2_11)
{
    struct conn_v5 *v = v5(0, 0);
    bool known = true;
    cr_assert_eq(alias_out_get(v, T("t"), 1, &known), 0);
    cr_assert(!known);
    cr_assert_null(v->alias_out, "no table for a client without aliases");
    conn_v5_destroy(v);
}

Test(alias, outbound_undo_takes_back_only_the_newest)
{
    struct conn_v5 *v = v5(0, 8);
    bool known;
    cr_assert_eq(alias_out_get(v, T("a"), 1, &known), 1);
    cr_assert_eq(alias_out_get(v, T("b"), 1, &known), 2);
    alias_out_undo(v, 1, T("a"), 1); /* not the newest: kept */
    cr_assert_eq(alias_out_get(v, T("a"), 1, &known), 1);
    cr_assert(known);
    alias_out_undo(v, 2, T("b"), 1);
    cr_assert_eq(v->alias_used_out, 1);
    /* The client never saw alias 2: the next topic gets it, and "b" is new. */
    cr_assert_eq(alias_out_get(v, T("c"), 1, &known), 2);
    cr_assert(!known);
    cr_assert_eq(alias_out_get(v, T("b"), 1, &known), 3);
    cr_assert(!known);
    conn_v5_destroy(v);
}

/* Many topics: the open-addressing table finds each one again after
 * collisions, at the largest alias count we hand out. */
Test(alias, outbound_table_holds_the_limit)
{
    struct conn_v5 *v = v5(0, ALIAS_OUT_LIMIT);
    char topic[32];
    bool known;
    for (unsigned i = 0; i < ALIAS_OUT_LIMIT; i++) {
        int n = snprintf(topic, sizeof(topic), "dev/%u/state", i);
        cr_assert_eq(alias_out_get(v, T(topic), (size_t)n, &known), i + 1);
        cr_assert(!known);
    }
    for (unsigned i = 0; i < ALIAS_OUT_LIMIT; i++) {
        int n = snprintf(topic, sizeof(topic), "dev/%u/state", i);
        cr_assert_eq(alias_out_get(v, T(topic), (size_t)n, &known), i + 1);
        cr_assert(known, "%s", topic);
    }
    cr_assert_eq(alias_out_get(v, T("one/more"), 8, &known), 0);
    conn_v5_destroy(v);
}
