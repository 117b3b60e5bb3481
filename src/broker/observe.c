/*
 * observe: metrics, $SYS and events (see observe.h).
 *
 * Counters live in each shard's struct tenant and are only ever written by
 * that shard. Readers (the metrics thread, shard 0 for $SYS) sum them with
 * plain loads: a sum may be a few increments behind, never torn (aligned
 * 64-bit loads). Retained counts are the same replica on every shard, so
 * only shard 0's are reported.
 */
#include "broker/observe.h"

#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "broker/conn.h"
#include "broker/route.h"
#include "broker/shard.h"
#include "core/clock.h"
#include "core/log.h"
#include "metrics/counters.h"
#include "metrics/metrics.h"
#include "plugin/host.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"
#include "tenant/usage.h"

/* Sum tenant `id` over every shard. False when no shard has seen it. */
/* The durable store's counters, per shard (none without a store). */
static void collect_store(struct metrics_writer *w, const struct broker *b)
{
    static const struct {
        const char *name, *help, *type;
    } m[] = {
        {"ringmq_store_records_total", "Records written to the shard's log.", "counter"},
        {"ringmq_store_bytes_total", "Bytes of records written to the shard's log.", "counter"},
        {"ringmq_store_fsyncs_total", "Log writes made durable (fdatasync completed).", "counter"},
        {"ringmq_store_errors_total", "Log writes or syncs that failed (a full disk, EIO).",
         "counter"},
        {"ringmq_store_failing",
         "1 while the shard's log cannot be written: durable work is "
         "refused.",
         "gauge"},
    };
    static const char *const keys[] = {"shard", NULL};
    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        for (uint32_t i = 0; i < b->nshards; i++) {
            const struct shard *s = b->shards[i];
            if (!s->store || !s->store->counters)
                return;
            struct store_counters c = {0};
            s->store->counters(s->store_ctx, &c);
            const uint64_t v[] = {c.records, c.bytes, c.fsyncs, c.errors, c.failing};
            char id[16];
            snprintf(id, sizeof(id), "%u", i);
            const char *vals[] = {id, NULL};
            metrics_write(w, m[k].name, i ? NULL : m[k].help, i ? NULL : m[k].type, keys, vals,
                          (double)v[k]);
        }
    }
}

/* What the admin API's answers took each shard (broker/control.c): none
 * without the API. A page's answer is bounded ([admin] page_budget); the
 * longest shows it. */
static void collect_admin(struct metrics_writer *w, const struct broker *b)
{
    static const struct {
        const char *name, *help, *type;
    } m[] = {
        {"ringmq_admin_answers_total", "Admin API requests this shard answered.", "counter"},
        {"ringmq_admin_answer_seconds_total",
         "Time this shard's loop spent answering admin API requests.", "counter"},
        {"ringmq_admin_answer_seconds_max",
         "The longest one admin API answer held this shard's loop, since start.", "gauge"},
    };
    static const char *const keys[] = {"shard", NULL};
    if (!b->cfg->admin_enabled)
        return;
    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        for (uint32_t i = 0; i < b->nshards; i++) {
            const struct shard *s = b->shards[i];
            const double v[] = {
                (double)atomic_load_explicit(&s->admin_answers, memory_order_relaxed),
                (double)atomic_load_explicit(&s->admin_answer_us, memory_order_relaxed) / 1e6,
                (double)atomic_load_explicit(&s->admin_answer_max_us, memory_order_relaxed) / 1e6,
            };
            char id[16];
            snprintf(id, sizeof(id), "%u", i);
            const char *vals[] = {id, NULL};
            metrics_write(w, m[k].name, i ? NULL : m[k].help, i ? NULL : m[k].type, keys, vals,
                          v[k]);
        }
    }
}

void observe_collect(struct metrics_writer *w, void *arg)
{
    struct broker *b = arg;
    uint32_t n = tenant_dir_count(&b->tenants);
    const char **names = calloc(n ? n : 1, sizeof(*names));
    struct tenant_counters *sums = calloc(n ? n : 1, sizeof(*sums));
    if (!names || !sums) {
        free(names);
        free(sums);
        return;
    }
    size_t k = 0;
    for (uint32_t id = 0; id < n && id < TENANT_MAX; id++) {
        if (!tenant_sum(&b->tenant_shards, (uint16_t)id, &sums[k]))
            continue;
        const char *name = tenant_dir_name(&b->tenants, (uint16_t)id);
        if (name)
            names[k++] = name;
    }
    metrics_write(w, "ringmq_shards", "Shards (threads with an io_uring) running.", "gauge", NULL,
                  NULL, (double)b->nshards);
    metrics_write(w, "ringmq_uptime_seconds", "Seconds since the broker started.", "gauge", NULL,
                  NULL, (double)(clock_now_ms() - b->started_ms) / 1000.0);
    metrics_write(w, "ringmq_pending_closed_total",
                  "Connections closed before their CONNECT to stay within "
                  "limits.max_pending_connections (oldest first).",
                  "counter", NULL, NULL,
                  (double)atomic_load_explicit(&b->pending_evicted, memory_order_relaxed));
    collect_store(w, b);
    collect_admin(w, b);
    metrics_write_tenants(w, names, sums, k);
    free(names);
    free(sums);
}

/* Shard i's counters summed over every tenant it has seen. */
static void shard_sum(struct broker *b, uint32_t i, uint32_t ntenants, struct tenant_counters *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (uint32_t id = 0; id < ntenants && id < TENANT_MAX; id++) {
        struct tenant *t = __atomic_load_n(&b->shards[i]->tenants[id], __ATOMIC_ACQUIRE);
        if (t)
            tenant_counters_add(sum, &t->ctr);
    }
}

/* Resident memory in KiB from /proc/self/statm, 0 if unreadable. */
static uint64_t rss_kib(void)
{
    unsigned long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (uint64_t)resident * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024) : 0;
}

void broker_log_status(struct broker *b)
{
    uint32_t ntenants = tenant_dir_count(&b->tenants);
    struct tenant_counters all, one;
    uint64_t msgs_in = 0, msgs_out = 0, retained = 0;
    char shards[512];
    size_t len = 0;
    memset(&all, 0, sizeof(all));
    shards[0] = '\0';
    for (uint32_t i = 0; i < b->nshards; i++) {
        shard_sum(b, i, ntenants, &one);
        uint64_t in = one.msgs_in[0] + one.msgs_in[1] + one.msgs_in[2];
        if (i == 0)
            retained = one.retained; /* the same replica on every shard */
        tenant_counters_add(&all, &one);
        int n = snprintf(shards + len, sizeof(shards) - len, "%s%u: %llu/%llu", i ? ", " : "", i,
                         (unsigned long long)one.connections, (unsigned long long)in);
        if (n > 0 && (size_t)n < sizeof(shards) - len)
            len += (size_t)n;
    }
    for (int q = 0; q < 3; q++) {
        msgs_in += all.msgs_in[q];
        msgs_out += all.msgs_out[q];
    }
    log_info("status: up %llu s, %u tenant%s, %llu connections, %llu sessions, %llu "
             "subscriptions, %llu retained, messages in %llu out %llu, rss %llu KiB; "
             "per shard connections/messages in: %s",
             (unsigned long long)((clock_now_ms() - b->started_ms) / 1000), ntenants,
             ntenants == 1 ? "" : "s", (unsigned long long)all.connections,
             (unsigned long long)all.sessions, (unsigned long long)all.subscriptions,
             (unsigned long long)retained, (unsigned long long)msgs_in,
             (unsigned long long)msgs_out, (unsigned long long)rss_kib(), shards);
}

static void sys_publish(struct shard *s, struct tenant *t, const char *topic, uint64_t value)
{
    char payload[32];
    int n = snprintf(payload, sizeof(payload), "%llu", (unsigned long long)value);
    struct msg_spec sp = {
        .topic = (const uint8_t *)topic,
        .topic_len = strlen(topic),
        .payload = (const uint8_t *)payload,
        .payload_len = (size_t)n,
        .retain = 1,
    };
    struct msg *m = msg_create(&sp);
    if (m)
        route_publish(s, t, m);
}

/* A tenant name as one topic level: bytes other than ASCII letters, digits
 * and "-._~" become %XX, so that a name from a plugin holding '/', '+',
 * '#' or bytes that are not UTF-8 still makes a valid, unambiguous topic.
 * False when it does not fit `cap`. */
static bool sys_level(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (o + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}

void observe_sys_tick(struct shard *s)
{
    static _Thread_local uint64_t next_ms;
    const struct config *cfg = s->cfg;
    if (!cfg->sys_topics || s->id != 0 || s->now_ms < next_ms)
        return;
    next_ms = s->now_ms + (uint64_t)cfg->sys_interval * 1000u;
    int id = tenant_dir_intern(&s->broker->tenants, cfg->sys_tenant);
    struct tenant *sys = id >= 0 ? shard_tenant(s, (uint16_t)id) : NULL;
    if (!sys)
        return;
    struct broker *b = s->broker;
    uint32_t n = tenant_dir_count(&b->tenants);
    struct tenant_counters all, one;
    memset(&all, 0, sizeof(all));
    char name[768], topic[sizeof(name) + 64];
    for (uint32_t i = 0; i < n && i < TENANT_MAX; i++) {
        if (!tenant_sum(&b->tenant_shards, (uint16_t)i, &one))
            continue;
        tenant_counters_add(&all, &one);
        const char *raw = tenant_dir_name(&b->tenants, (uint16_t)i);
        if (!raw || !sys_level(raw, name, sizeof(name)))
            continue; /* a name too long for a topic: in the metrics only */
        snprintf(topic, sizeof(topic), "$SYS/broker/tenants/%s/clients/connected", name);
        sys_publish(s, sys, topic, one.connections);
        snprintf(topic, sizeof(topic), "$SYS/broker/tenants/%s/messages/received", name);
        sys_publish(s, sys, topic, one.msgs_in[0] + one.msgs_in[1] + one.msgs_in[2]);
        snprintf(topic, sizeof(topic), "$SYS/broker/tenants/%s/messages/sent", name);
        sys_publish(s, sys, topic, one.msgs_out[0] + one.msgs_out[1] + one.msgs_out[2]);
    }
    sys_publish(s, sys, "$SYS/broker/uptime", (s->now_ms - b->started_ms) / 1000u);
    sys_publish(s, sys, "$SYS/broker/clients/connected", all.connections);
    sys_publish(s, sys, "$SYS/broker/subscriptions/count", all.subscriptions);
    sys_publish(s, sys, "$SYS/broker/messages/received",
                all.msgs_in[0] + all.msgs_in[1] + all.msgs_in[2]);
    sys_publish(s, sys, "$SYS/broker/messages/sent",
                all.msgs_out[0] + all.msgs_out[1] + all.msgs_out[2]);
    sys_publish(s, sys, "$SYS/broker/retained messages/count", all.retained);
}

void observe_event(struct shard *s, enum ringmq_event_type type, const struct tenant *t,
                   const struct session *ss, uint32_t reason, enum ringmq_resource resource,
                   const uint8_t *topic, size_t topic_len)
{
    struct plugin_host *h = s->broker->plugins;
    /* Without a collector nothing is built: the address text below costs an
     * inet_ntop per event. */
    if (!h || !plugin_host_has_events(h))
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    const struct conn *c = ss ? conn_of_session(ss) : NULL;
    char addr[NET_PEER_STRLEN];
    bool has_addr = c && net_peer_format(&c->st.peer, addr, sizeof(addr)) == 0;
    struct ringmq_event ev = {
        .type = type,
        .time_ms = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u,
        .tenant = t ? t->name : "global",
        .user_id = c && c->auth ? c->auth->user_id : NULL,
        .client_id = {ss ? ss->st.client_id : NULL, ss ? ss->st.client_id_len : 0},
        .remote_addr = has_addr ? addr : NULL,
        .reason = reason,
        .resource = resource,
        .topic = {topic, topic_len},
        .shard = s->id,
        .transport = c ? stream_xprt_name(&s->streams, (struct stream *)&c->st) : NULL,
    };
    plugin_event(h, &ev);
}

void observe_drop(struct shard *s, struct tenant *t, const struct session *ss,
                  enum ringmq_drop_reason why, const struct msg *m, uint64_t n)
{
    t->ctr.dropped[why] += n;
    observe_event(s, RINGMQ_EV_MESSAGE_DROPPED, t, ss, why, 0, m ? msg_topic(m) : NULL,
                  m ? m->topic_len : 0);
}

bool observe_throttle(struct shard *s, struct tenant *t, enum ringmq_resource r, uint64_t amount,
                      const struct session *ss)
{
    struct plugin_host *h = s->broker->plugins;
    bool plugin = h && plugin_host_has_throttle(h);
    /* The tenant's own limits hold with or without a quota plugin: without
     * them, clients could pile up offline sessions (each kept up to
     * max_session_expiry) and retained messages until memory runs out. */
    uint64_t limit = tenant_limit(t->set, r);
    if (!plugin && !limit)
        return true;
    uint64_t current = tenant_usage(t, r, s->now_ms, &s->broker->tenant_shards, s->id);
    if (limit && (current >= limit || amount > limit - current)) {
        t->ctr.throttled++;
        observe_event(s, RINGMQ_EV_THROTTLED, t, ss, 0, r, NULL, 0);
        return false;
    }
    if (!plugin)
        return true;
    if (plugin_throttle(h, t->name, r, current, amount)) {
        if (r == RINGMQ_RES_BYTES_IN_RATE || r == RINGMQ_RES_BYTES_OUT_RATE)
            tenant_rate_add(t, tenant_rate_of(r), s->now_ms, amount); /* granted: now used */
        return true;
    }
    t->ctr.throttled++;
    observe_event(s, RINGMQ_EV_THROTTLED, t, ss, 0, r, NULL, 0);
    return false;
}
