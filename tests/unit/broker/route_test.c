/*
 * route: what one shard sends to another when it routes a publish. Shard 0
 * is real but has no loop; shard 1 exists only as the ring from 0 to 1,
 * which the test reads as shard 1 would (a fake cross-shard peer). Shard 1's
 * interest arrives as the messages shard 1 would send.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "broker/route.h"
#include "broker/shard.h"
#include "config/config.h"
#include "core/spsc.h"
#include "session/msg.h"
#include "shard/xshard.h"
#include "tenant/tenant.h"

#define RING_SLOTS 16u

static struct config cfg;
static struct broker broker;
static struct shard s0, s1;
static struct shard *shards[2] = {&s0, &s1};
static struct tenant *t;
static struct spsc *to1;

static void setup(void)
{
    const char *over[] = {"listener.default.port=0", "server.shards=2"};
    char err[256];
    cr_assert_eq(config_load(&cfg, NULL, over, 2, err, sizeof(err)), 0, "%s", err);
    broker = (struct broker){.cfg = &cfg, .hooks = &serve_hooks, .nshards = 2, .shards = shards};
    s0 = (struct shard){
        .id = 0, .broker = &broker, .cfg = &cfg, .hooks = &serve_hooks, .now_ms = 1000000};
    s1 = (struct shard){.id = 1, .broker = &broker, .cfg = &cfg, .hooks = &serve_hooks};
    cr_assert_eq(route_init(&s0), 0);
    s0.tenants = calloc(TENANT_MAX, sizeof(*s0.tenants));
    /* Shard 1 is only a ring: no tenants of its own. */
    broker.tenant_shards = (struct tenant_shards){.tables = {s0.tenants, NULL}, .n = 2};
    t = tenant_create(0, "global", config_tenant_settings(&cfg, "global"));
    cr_assert(s0.tenants && t);
    s0.tenants[0] = t;
    to1 = spsc_create(sizeof(struct xmsg), RING_SLOTS);
    cr_assert_not_null(to1);
    s0.out[1] = to1;
}

/* The next message shard 1 would read, or type 0 when none. */
static struct xmsg next_to1(void)
{
    spsc_publish(to1);
    struct xmsg *x = spsc_front(to1);
    if (!x)
        return (struct xmsg){0};
    struct xmsg copy = *x;
    spsc_pop(to1);
    return copy;
}

static void drain_to1(void)
{
    for (struct xmsg x = next_to1(); x.type; x = next_to1())
        shard_xmsg_discard(&x);
}

static void teardown(void)
{
    drain_to1();
    xshard_fini(&s0);
    spsc_destroy(to1);
    route_tenant_fini(&s0, t);
    route_fini(&s0);
    tenant_destroy(t);
    free(s0.tenants);
}

TestSuite(route, .init = setup, .fini = teardown);

static struct msg *msg_new(const char *topic, uint8_t qos, bool retain)
{
    struct msg_spec sp = {.topic = (const uint8_t *)topic,
                          .topic_len = strlen(topic),
                          .payload = (const uint8_t *)"x",
                          .payload_len = 1,
                          .qos = qos,
                          .retain = retain};
    struct msg *m = msg_create(&sp);
    cr_assert_not_null(m);
    return m;
}

/* Shard 1 tells shard 0 it has (or no longer has) a subscriber of f. */
static void interest_from1(enum xmsg_type type, const char *f, uint64_t token)
{
    struct xfilter *xf = malloc(sizeof(*xf) + strlen(f));
    cr_assert_not_null(xf);
    xf->len = (uint16_t)strlen(f);
    memcpy(xf->data, f, xf->len);
    struct xmsg x = {.type = (uint8_t)type, .src = 1, .tenant = 0, .p = xf, .token = token};
    route_on_xmsg(&s0, &x);
}

/* route_publish takes the publisher's reference. */
static void publish(const char *topic, uint8_t qos, bool retain)
{
    route_publish(&s0, t, msg_new(topic, qos, retain));
}

Test(route, no_interest_nothing_crosses)
{
    publish("a/b", 1, false);
    cr_assert_eq(next_to1().type, 0, "no shard has a subscriber: nothing is sent");
}

Test(route, interest_is_acknowledged_and_publishes_follow_it)
{
    interest_from1(XMSG_INTEREST_ADD, "a/+", 77);
    struct xmsg ack = next_to1();
    cr_assert_eq(ack.type, XMSG_ACK, "the SUBACK on shard 1 waits for this");
    cr_assert_eq(ack.token, 77);
    publish("a/b", 1, false);
    struct xmsg x = next_to1();
    cr_assert_eq(x.type, XMSG_PUBLISH);
    cr_assert_eq(x.tenant, 0);
    const struct msg *m = x.p;
    cr_assert_eq(m->topic_len, 3);
    cr_assert_arr_eq(msg_topic(m), "a/b", 3);
    shard_xmsg_discard(&x); /* the reference given with it */
    cr_assert_eq(next_to1().type, 0, "once per target shard");
    publish("c", 1, false);
    cr_assert_eq(next_to1().type, 0, "a topic the filter does not match");
    interest_from1(XMSG_INTEREST_DEL, "a/+", 0);
    publish("a/b", 1, false);
    cr_assert_eq(next_to1().type, 0, "interest withdrawn: nothing more is sent");
}

Test(route, retained_update_reaches_every_shard)
{
    publish("r/1", 0, true);
    struct xmsg x = next_to1();
    cr_assert_eq(x.type, XMSG_RETAIN, "every shard keeps a replica, interested or not");
    shard_xmsg_discard(&x);
}

Test(route, qos0_to_a_shard_behind_is_shed_at_the_source)
{
    interest_from1(XMSG_INTEREST_ADD, "#", 1);
    /* Fill the ring and start an overflow queue behind it. */
    for (uint32_t i = 0; i <= RING_SLOTS; i++)
        publish("a", 1, false);
    cr_assert_gt(s0.overflow[1].len, 0);
    uint32_t queued = s0.overflow[1].len;
    publish("a", 0, false);
    cr_assert_eq(s0.overflow[1].len, queued + 1, "not behind yet: QoS 0 waits in order");
    s0.now_ms += SHARD_BEHIND_MS;
    publish("a", 0, false);
    cr_assert_eq(s0.overflow[1].len, queued + 1, "behind: QoS 0 is dropped here");
    publish("a", 1, false);
    cr_assert_eq(s0.overflow[1].len, queued + 2, "QoS 1 is never dropped for it");
}
