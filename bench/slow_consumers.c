/*
 * slow_consumers: issue 10 part 1's scenario. N subscribers that never read
 * their sockets subscribe to slow/t while one publisher floods it with QoS 0
 * messages; meanwhile an unrelated QoS 1 pair (pair/t, a publisher at a
 * fixed rate and a subscriber) shows whether the broker lets the slow
 * clients hurt everyone else, and the broker's VmRSS (--broker-pid, every
 * second) shows what they cost and whether it comes back after they leave.
 *
 * Phases: baseline (the pair alone), subscribe (the slow clients connect
 * and subscribe), flood, after (slow clients and flooder gone; the pair goes
 * on), then a bounded drain for the pair's last messages. One line per
 * second while it runs, then a summary per phase; --json writes both.
 *
 * Pair latency is measured from each message's *intended* send time
 * (publisher start + seq / rate, carried in the payload stamp), so a broker
 * that stops reading the publisher cannot hide the stall by slowing the
 * publisher down (coordinated omission). The summary attributes a message to
 * the phase its intended send time fell in; the per-second lines, printed
 * live, to the second it arrived, and "wait" is the age of the oldest pair
 * message sent and not yet received (a stall shows while it lasts).
 *
 * Threads: main (phases, per-second lines, RSS samples), the pair's
 * publisher, the pair's subscriber, and one thread that connects the slow
 * subscribers and then floods. Plain sockets (bench/mqc.h): handshakes
 * block with a 5 s timeout, everything after them polls with at most 100 ms
 * timeouts, so every loop sees its stop flag and the program ends by itself.
 * MQTT 3.1.1 through src/mqtt/codec.h. Loopback only.
 *
 * Exit status: 0 ok, 1 usage, 2 connection or protocol failure, 3 a pair
 * message lost.
 */
#include "hist.h"
#include "mqc.h"
#include "proc.h"
#include "stamp.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S      1000000000ull
#define NS_PER_MS     1000000ull
#define PAIR_PAYLOAD  64
#define SLOW_RCVBUF   4096
#define CONNECT_LIMIT (120 * NS_PER_S) /* the whole subscribe phase */
#define FLOOD_BATCH   32               /* PUBLISH packets per send() */
#define MAX_SECONDS   4096             /* per-second records kept for --json */

enum phase { PH_BASELINE, PH_SUBSCRIBE, PH_FLOOD, PH_AFTER, PH_COUNT };
static const char *const phase_names[PH_COUNT] = {"baseline", "subscribe", "flood", "after"};

struct opts {
    int port, slow, payload, broker_pid;
    double pair_rate, flood_rate; /* msg/s; flood_rate 0: as fast as the socket takes */
    double baseline_s, flood_s, after_s, drain_s;
    const char *slow_user, *slow_pass, *pair_user, *pair_pass, *json;
};

struct second {
    double t_s;
    enum phase phase;
    uint64_t n, p50, p99, max, wait; /* ns */
    long rss_kib;
    double cpu_pct; /* the broker's CPU time in the interval / its length; -1 unknown */
    uint64_t flood; /* flood messages sent in the interval */
};

struct run {
    struct opts o;
    struct timespec epoch;
    uint16_t tag; /* stamp run tag */
    /* Phase starts, ns since the epoch; UINT64_MAX until a phase starts. */
    _Atomic uint64_t phase_start[PH_COUNT];
    atomic_bool stop_send, stop_pair, stop_flood, slow_ready, flood_go;
    atomic_int failed; /* a connection or protocol failure was reported */
    /* The pair. */
    struct mqc_conn *pub, *sub;
    uint64_t pub_start, interval;      /* ns */
    _Atomic uint64_t sent, acked, low; /* low: lowest seq not yet received */
    pthread_mutex_t lock;              /* guards what follows, up to the flood */
    struct hist sec, phase[PH_COUNT];
    uint8_t *seen;
    size_t seen_cap;
    uint64_t received, dups;
    /* The slow subscribers and the flooder. */
    int *slow_fds;
    int slow_up, flood_fd;
    int slow_dropped; /* slow subscribers the broker had disconnected by the end of the flood */
    _Atomic uint64_t flood_sent;
    _Atomic uint64_t flood_lost_at; /* ns since the epoch the broker closed the flooder; 0 */
    uint64_t flood_total;           /* flood_sent once the flooder stopped */
    uint64_t close_ns;              /* how long stopping the flood and closing took */
    /* Main thread only. */
    struct second secs[MAX_SECONDS];
    int nsecs;
    long rss_before, rss_peak, rss_after;
    double cpu_prev; /* the broker's CPU seconds at cpu_prev_ns */
    uint64_t cpu_prev_ns, flood_prev;
    double self_user_s, self_sys_s; /* this process's CPU time, for the summary */
};

static uint64_t now_ns(const struct run *r)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)(t.tv_sec - r->epoch.tv_sec) * NS_PER_S + (uint64_t)t.tv_nsec -
           (uint64_t)r->epoch.tv_nsec;
}

static void sleep_until(const struct run *r, uint64_t t)
{
    uint64_t now = now_ns(r);
    if (t <= now)
        return;
    struct timespec d = {.tv_sec = (time_t)((t - now) / NS_PER_S),
                         .tv_nsec = (long)((t - now) % NS_PER_S)};
    nanosleep(&d, NULL);
}

static void fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("slow_consumers: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    atomic_store(&r->failed, 1);
}

/* ---- the pair ---- */

static uint64_t intended(const struct run *r, uint64_t seq)
{
    return r->pub_start + seq * r->interval;
}

static int on_puback(void *ctx, struct mqc_conn *c, const struct mqtt_frame *f, const uint8_t *body)
{
    struct run *r = ctx;
    (void)c;
    struct mqtt_ack a;
    if (f->type != MQTT_PUBACK ||
        mqtt_ack_decode(f->type, f->flags, body, f->body_len, MQTT_V311, &a) != MQTT_OK)
        return -EPROTO;
    atomic_fetch_add(&r->acked, 1);
    return 0;
}

/* Queue every message whose intended time has come (as many as fit). */
static void pair_queue_due(struct run *r, struct mqc_conn *c)
{
    uint8_t payload[PAIR_PAYLOAD] = {0}, topic[] = "pair/t";
    size_t size = mqtt_publish_size(MQTT_V311, sizeof(topic) - 1, sizeof(payload), 1);
    uint64_t seq = atomic_load(&r->sent), now = now_ns(r);
    while (intended(r, seq) <= now && mqc_room(c, size)) {
        struct stamp s = {.run = r->tag, .sent_ns = intended(r, seq), .seq = (uint32_t)seq};
        stamp_encode(payload, sizeof(payload), &s);
        c->out_len += mqtt_publish_encode(c->out + c->out_len, MQTT_V311, 1, false, false, topic,
                                          sizeof(topic) - 1, (uint16_t)(seq % 65535 + 1), payload,
                                          sizeof(payload));
        atomic_store(&r->sent, ++seq);
    }
}

static void *pair_pub_main(void *arg)
{
    struct run *r = arg;
    struct mqc_conn *c = r->pub;
    int rc = 0;
    while (rc == 0 && !atomic_load(&r->stop_pair)) {
        if (!atomic_load(&r->stop_send))
            pair_queue_due(r, c);
        rc = mqc_flush(c);
        uint64_t now = now_ns(r), next = intended(r, atomic_load(&r->sent));
        uint64_t wait = next > now ? next - now : 0;
        if (wait > 100 * NS_PER_MS || atomic_load(&r->stop_send))
            wait = 100 * NS_PER_MS;
        if (rc == 0)
            rc = mqc_wait(c, wait);
        if (rc == 0)
            rc = mqc_parse(c, on_puback, r);
    }
    if (rc < 0)
        fail(r, "pair publisher: %s", strerror(-rc));
    return NULL;
}

static enum phase phase_of(struct run *r, uint64_t t)
{
    enum phase p = PH_BASELINE;
    for (int i = 1; i < PH_COUNT; i++)
        if (atomic_load(&r->phase_start[i]) <= t)
            p = (enum phase)i;
    return p;
}

/* Count one arrival of seq (lock held). false for a duplicate. */
static bool seen_add(struct run *r, uint64_t seq)
{
    if (seq >= r->seen_cap) {
        size_t cap = r->seen_cap ? r->seen_cap : 4096;
        while (cap <= seq)
            cap *= 2;
        uint8_t *p = realloc(r->seen, cap);
        if (!p)
            abort(); /* a few KiB: the bench cannot go on without it */
        memset(p + r->seen_cap, 0, cap - r->seen_cap);
        r->seen = p;
        r->seen_cap = cap;
    }
    if (r->seen[seq])
        return false;
    r->seen[seq] = 1;
    uint64_t low = atomic_load(&r->low);
    while (low < r->seen_cap && r->seen[low])
        low++;
    atomic_store(&r->low, low);
    return true;
}

static int on_pair_publish(void *ctx, struct mqc_conn *c, const struct mqtt_frame *f,
                           const uint8_t *body)
{
    struct run *r = ctx;
    struct mqtt_publish p;
    struct stamp s;
    if (f->type != MQTT_PUBLISH ||
        mqtt_publish_decode(f->flags, body, f->body_len, MQTT_V311, &p) != MQTT_OK ||
        stamp_decode(p.payload.p, p.payload.len, r->tag, &s) != 0 || s.seq >= atomic_load(&r->sent))
        return -EPROTO;
    if (p.qos == 1) {
        if (!mqc_room(c, 4))
            return -ENOBUFS;
        c->out_len += mqtt_ack_encode(c->out + c->out_len, MQTT_PUBACK, MQTT_V311, p.packet_id, 0);
    }
    uint64_t now = now_ns(r), lat = now > s.sent_ns ? now - s.sent_ns : 0;
    enum phase ph = phase_of(r, s.sent_ns);
    pthread_mutex_lock(&r->lock);
    if (seen_add(r, s.seq)) {
        r->received++;
        hist_record(&r->sec, lat);
        hist_record(&r->phase[ph], lat);
    } else {
        r->dups++;
    }
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void *pair_sub_main(void *arg)
{
    struct run *r = arg;
    struct mqc_conn *c = r->sub;
    int rc = 0;
    while (rc == 0 && !atomic_load(&r->stop_pair)) {
        rc = mqc_wait(c, 100 * NS_PER_MS);
        if (rc == 0)
            rc = mqc_parse(c, on_pair_publish, r);
        if (rc == 0)
            rc = mqc_flush(c);
    }
    if (rc < 0)
        fail(r, "pair subscriber: %s", strerror(-rc));
    return NULL;
}

static struct mqc_conn *pair_open(struct run *r, const char *id, const char *topic)
{
    int fd = mqc_open(r->o.port, id, r->o.pair_user, r->o.pair_pass, 0, topic, 1);
    if (fd < 0) {
        fail(r, "%s: %s", id, strerror(-fd));
        return NULL;
    }
    struct mqc_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        fail(r, "%s: out of memory", id);
        return NULL;
    }
    c->fd = fd;
    return c;
}

/* ---- the slow subscribers and the flooder ---- */

/* Send QoS 0 PUBLISHes to slow/t as fast as the socket takes them (or at
 * --flood-rate) until stop_flood. A broker closing the flooder ends the
 * flood (noted, not a failure: a broker may refuse a flood). */
static void flood(struct run *r, int fd)
{
    static const uint8_t topic[] = "slow/t";
    size_t payload = (size_t)r->o.payload;
    size_t one = mqtt_publish_size(MQTT_V311, sizeof(topic) - 1, payload, 0);
    uint8_t *pl = calloc(1, payload), *batch = malloc(one * FLOOD_BATCH);
    if (!pl || !batch) {
        fail(r, "flooder: out of memory");
        goto out;
    }
    for (int i = 0; i < FLOOD_BATCH; i++)
        mqtt_publish_encode(batch + i * one, MQTT_V311, 0, false, false, topic, sizeof(topic) - 1,
                            0, pl, payload);
    uint64_t bytes = 0, start = now_ns(r);
    while (!atomic_load(&r->stop_flood)) {
        size_t off = bytes % (one * FLOOD_BATCH), len = one * FLOOD_BATCH - off;
        if (r->o.flood_rate > 0) {
            double due = r->o.flood_rate * (double)(now_ns(r) - start) / NS_PER_S;
            uint64_t allowed = (uint64_t)due * one;
            len = allowed > bytes ? (allowed - bytes < len ? allowed - bytes : len) : 0;
            if (!len) {
                struct timespec ms = {.tv_nsec = (long)NS_PER_MS};
                nanosleep(&ms, NULL);
                continue;
            }
        }
        ssize_t w = send(fd, batch + off, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            bytes += (uint64_t)w;
            atomic_store(&r->flood_sent, bytes / one);
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 100);
            continue;
        }
        atomic_store(&r->flood_lost_at, now_ns(r));
        fprintf(stderr, "slow_consumers: the broker closed the flooder (%s)\n",
                w < 0 ? strerror(errno) : "EOF");
        break;
    }
out:
    free(pl);
    free(batch);
}

static void *slow_main(void *arg)
{
    struct run *r = arg;
    const struct opts *o = &r->o;
    r->flood_fd = mqc_open(o->port, "sc-flood", o->slow_user, o->slow_pass, 0, NULL, 0);
    if (r->flood_fd < 0) {
        fail(r, "flooder: %s", strerror(-r->flood_fd));
        return NULL;
    }
    for (int i = 0; i < o->slow && !atomic_load(&r->stop_flood); i++) {
        char id[32];
        snprintf(id, sizeof(id), "sc-slow-%d", i);
        int fd = mqc_open(o->port, id, o->slow_user, o->slow_pass, SLOW_RCVBUF, "slow/t", 0);
        if (fd < 0) {
            fail(r, "slow subscriber %d: %s", i, strerror(-fd));
            return NULL;
        }
        r->slow_fds[r->slow_up++] = fd;
    }
    /* The main thread closes the subscribe phase before the flood starts,
     * so that no flood message is counted in it. */
    atomic_store(&r->slow_ready, true);
    while (!atomic_load(&r->flood_go) && !atomic_load(&r->stop_flood)) {
        struct timespec ms = {.tv_nsec = (long)NS_PER_MS};
        nanosleep(&ms, NULL);
    }
    if (!atomic_load(&r->stop_flood))
        flood(r, r->flood_fd);
    return NULL;
}

/* Every slow subscriber and the flooder close their sockets (unread input
 * and all: the kernel answers with a reset, as a vanished client would). */
static void slow_close(struct run *r)
{
    for (int i = 0; i < r->slow_up; i++) {
        /* A broker may disconnect a consumer that does not keep up; the
         * socket's TCP state tells without reading what is queued. */
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        if (getsockopt(r->slow_fds[i], IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
            ti.tcpi_state != TCP_ESTABLISHED)
            r->slow_dropped++;
        close(r->slow_fds[i]);
    }
    r->slow_up = 0;
    if (r->flood_fd >= 0)
        close(r->flood_fd);
    r->flood_fd = -1;
}

/* ---- reporting ---- */

static double ms(uint64_t ns)
{
    return (double)ns / NS_PER_MS;
}

static double mib(long kib)
{
    return kib < 0 ? -1 : (double)kib / 1024;
}

static long sample_rss(struct run *r)
{
    long kib = r->o.broker_pid ? proc_rss_kib(r->o.broker_pid) : -1;
    if (kib > r->rss_peak)
        r->rss_peak = kib;
    return kib;
}

/* The age of the oldest pair message sent and not yet received. */
static uint64_t oldest_wait(struct run *r, uint64_t now)
{
    uint64_t low = atomic_load(&r->low);
    if (low >= atomic_load(&r->sent) || intended(r, low) > now)
        return 0;
    return now - intended(r, low);
}

static double broker_cpu_pct(struct run *r)
{
    double t = proc_cpu_s(r->o.broker_pid);
    uint64_t now = now_ns(r);
    double pct = -1;
    if (t >= 0 && r->cpu_prev >= 0 && now > r->cpu_prev_ns)
        pct = 100.0 * (t - r->cpu_prev) / ((double)(now - r->cpu_prev_ns) / NS_PER_S);
    r->cpu_prev = t;
    r->cpu_prev_ns = now;
    return pct;
}

static void print_second(const struct second *s)
{
    char lat[96] = "p50        - p99        - max        -";
    if (s->n)
        snprintf(lat, sizeof(lat), "p50 %8.2f p99 %8.2f max %8.2f", ms(s->p50), ms(s->p99),
                 ms(s->max));
    printf("%6.1f %-9s n %4" PRIu64 " %s wait %8.1f ms | rss %7.1f MiB cpu %4.0f%% | "
           "flood %7" PRIu64 "\n",
           s->t_s, phase_names[s->phase], s->n, lat, ms(s->wait), mib(s->rss_kib), s->cpu_pct,
           s->flood);
    fflush(stdout);
}

/* One line per second (or the last part of a phase): the pair's latencies
 * of the messages that arrived in it, the broker's RSS and CPU use, the
 * flood messages sent in it. */
static void tick(struct run *r, enum phase ph)
{
    struct second s = {.t_s = (double)now_ns(r) / NS_PER_S, .phase = ph};
    pthread_mutex_lock(&r->lock);
    s.n = r->sec.count;
    s.p50 = hist_percentile(&r->sec, 50);
    s.p99 = hist_percentile(&r->sec, 99);
    s.max = r->sec.count ? r->sec.max : 0;
    hist_init(&r->sec);
    pthread_mutex_unlock(&r->lock);
    s.wait = oldest_wait(r, now_ns(r));
    s.rss_kib = sample_rss(r);
    s.cpu_pct = broker_cpu_pct(r);
    uint64_t f = atomic_load(&r->flood_sent);
    s.flood = f - r->flood_prev;
    r->flood_prev = f;
    print_second(&s);
    if (r->nsecs < MAX_SECONDS)
        r->secs[r->nsecs++] = s;
}

static void print_summary(struct run *r)
{
    printf("\nsummary: pair latency from the intended send time, by the phase it was sent in\n");
    printf("%-9s %7s %10s %10s %10s\n", "phase", "n", "p50 ms", "p99 ms", "max ms");
    for (int i = 0; i < PH_COUNT; i++) {
        const struct hist *h = &r->phase[i];
        printf("%-9s %7" PRIu64 " %10.2f %10.2f %10.2f\n", phase_names[i], h->count,
               ms(hist_percentile(h, 50)), ms(hist_percentile(h, 99)), ms(h->count ? h->max : 0));
    }
    printf("broker RSS: before %.1f MiB (end of baseline), peak %.1f MiB, after %.1f MiB "
           "(end of after phase)\n",
           mib(r->rss_before), mib(r->rss_peak), mib(r->rss_after));
    uint64_t sent = atomic_load(&r->sent), lost = sent - r->received;
    printf("pair: sent %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64 ", duplicates %" PRIu64
           ", unacknowledged %" PRIu64 "\n",
           sent, r->received, lost, r->dups, sent - atomic_load(&r->acked));
    uint64_t lost_at = atomic_load(&r->flood_lost_at);
    printf("flood: %" PRIu64 " messages of %d bytes to %d slow subscribers", r->flood_total,
           r->o.payload, r->o.slow);
    if (lost_at)
        printf(" (the broker closed the flooder %.1f s into the flood)",
               (double)(lost_at - atomic_load(&r->phase_start[PH_FLOOD])) / NS_PER_S);
    printf("; stopping it and closing the slow clients took %.0f ms\n", ms(r->close_ns));
    printf("slow subscribers the broker had disconnected by the end of the flood: %d\n",
           r->slow_dropped);
    printf("this tool's CPU time: user %.1f s, system %.1f s\n", r->self_user_s, r->self_sys_s);
}

static void json_phase(FILE *f, const char *name, const struct hist *h, bool last)
{
    fprintf(f,
            "    \"%s\": {\"n\": %" PRIu64 ", \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
            "\"max_ms\": %.3f}%s\n",
            name, h->count, ms(hist_percentile(h, 50)), ms(hist_percentile(h, 99)),
            ms(h->count ? h->max : 0), last ? "" : ",");
}

static int write_json(struct run *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    const struct opts *o = &r->o;
    fprintf(f,
            "{\n  \"options\": {\"slow\": %d, \"payload\": %d, \"pair_rate\": %.1f, "
            "\"flood_rate\": %.1f, \"baseline_s\": %.1f, \"flood_s\": %.1f, \"after_s\": %.1f, "
            "\"broker_pid\": %d},\n  \"seconds\": [\n",
            o->slow, o->payload, o->pair_rate, o->flood_rate, o->baseline_s, o->flood_s, o->after_s,
            o->broker_pid);
    for (int i = 0; i < r->nsecs; i++) {
        const struct second *s = &r->secs[i];
        fprintf(f,
                "    {\"t_s\": %.2f, \"phase\": \"%s\", \"n\": %" PRIu64 ", \"p50_ms\": %.3f, "
                "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"wait_ms\": %.1f, \"rss_mib\": %.1f, "
                "\"cpu_pct\": %.0f, \"flood\": %" PRIu64 "}%s\n",
                s->t_s, phase_names[s->phase], s->n, ms(s->p50), ms(s->p99), ms(s->max),
                ms(s->wait), mib(s->rss_kib), s->cpu_pct, s->flood, i + 1 < r->nsecs ? "," : "");
    }
    fprintf(f, "  ],\n  \"phases\": {\n");
    for (int i = 0; i < PH_COUNT; i++)
        json_phase(f, phase_names[i], &r->phase[i], i + 1 == PH_COUNT);
    uint64_t sent = atomic_load(&r->sent);
    uint64_t lost_at = atomic_load(&r->flood_lost_at);
    fprintf(f,
            "  },\n  \"rss_mib\": {\"before\": %.1f, \"peak\": %.1f, \"after\": %.1f},\n"
            "  \"pair\": {\"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"lost\": %" PRIu64
            ", \"duplicates\": %" PRIu64 ", \"unacknowledged\": %" PRIu64 "},\n"
            "  \"flood\": {\"sent\": %" PRIu64 ", \"closed_by_broker_after_s\": %.1f, "
            "\"slow_disconnected_by_broker\": %d},\n"
            "  \"bench_cpu_s\": {\"user\": %.2f, \"sys\": %.2f},\n  \"failed\": %s\n}\n",
            mib(r->rss_before), mib(r->rss_peak), mib(r->rss_after), sent, r->received,
            sent - r->received, r->dups, sent - atomic_load(&r->acked), r->flood_total,
            lost_at ? (double)(lost_at - atomic_load(&r->phase_start[PH_FLOOD])) / NS_PER_S : -1,
            r->slow_dropped, r->self_user_s, r->self_sys_s,
            atomic_load(&r->failed) ? "true" : "false");
    return fclose(f) == 0 ? 0 : -errno;
}

/* ---- phases ---- */

static uint64_t secs_ns(double s)
{
    return (uint64_t)(s * NS_PER_S);
}

/* Leave phase *ph (at its end, or when the slow clients are up) for the
 * next one; false at the end of the last. */
static bool next_phase(struct run *r, enum phase *ph, uint64_t *end)
{
    uint64_t now = now_ns(r);
    switch (*ph) {
    case PH_BASELINE:
        r->rss_before = sample_rss(r);
        atomic_store(&r->phase_start[PH_SUBSCRIBE], now);
        *end = now + CONNECT_LIMIT;
        break;
    case PH_SUBSCRIBE:
        if (!atomic_load(&r->slow_ready)) {
            fail(r, "the slow subscribers did not connect within %llu s",
                 (unsigned long long)(CONNECT_LIMIT / NS_PER_S));
            return false;
        }
        atomic_store(&r->phase_start[PH_FLOOD], now);
        atomic_store(&r->flood_go, true);
        *end = now + secs_ns(r->o.flood_s);
        break;
    case PH_FLOOD:
        /* The slow thread is joined and the sockets closed by the caller. */
        atomic_store(&r->phase_start[PH_AFTER], now);
        *end = now + secs_ns(r->o.after_s);
        break;
    default:
        r->rss_after = sample_rss(r);
        return false;
    }
    *ph = (enum phase)(*ph + 1);
    return true;
}

static void slow_stop(struct run *r, pthread_t *t, bool *started)
{
    atomic_store(&r->stop_flood, true);
    if (*started)
        pthread_join(*t, NULL);
    *started = false;
    r->flood_total = atomic_load(&r->flood_sent);
    slow_close(r);
}

/* Run baseline, subscribe, flood and after on the main thread, one line per
 * second (the grid restarts with each phase). 0, or -1 when a thread
 * reported a failure. */
static int run_phases(struct run *r)
{
    enum phase ph = PH_BASELINE;
    uint64_t end = r->pub_start + secs_ns(r->o.baseline_s), last_tick = r->pub_start;
    pthread_t slow;
    bool slow_started = false;
    atomic_store(&r->phase_start[PH_BASELINE], r->pub_start);
    broker_cpu_pct(r); /* the first interval's start */
    while (!atomic_load(&r->failed)) {
        uint64_t now = now_ns(r);
        bool phase_over = now >= end || (ph == PH_SUBSCRIBE && atomic_load(&r->slow_ready));
        /* A last partial second of a phase gets its own line unless it is a
         * sliver (whole-second phases end on the grid). */
        if (now >= last_tick + NS_PER_S || (phase_over && now >= last_tick + 50 * NS_PER_MS)) {
            tick(r, ph);
            last_tick = now;
        }
        if (phase_over) {
            if (ph == PH_FLOOD) {
                uint64_t t0 = now_ns(r);
                slow_stop(r, &slow, &slow_started);
                r->close_ns = now_ns(r) - t0;
            }
            enum phase was = ph;
            if (!next_phase(r, &ph, &end))
                break;
            if (was == PH_BASELINE) {
                if (pthread_create(&slow, NULL, slow_main, r) != 0) {
                    fail(r, "pthread_create failed");
                    break;
                }
                slow_started = true;
            }
            last_tick = now_ns(r);
            continue;
        }
        uint64_t wake = last_tick + NS_PER_S < end ? last_tick + NS_PER_S : end;
        if (ph == PH_SUBSCRIBE && wake > now + 10 * NS_PER_MS)
            wake = now + 10 * NS_PER_MS;
        sleep_until(r, wake);
    }
    slow_stop(r, &slow, &slow_started);
    return atomic_load(&r->failed) ? -1 : 0;
}

/* Wait (at most --drain seconds) for the pair's last messages and acks. */
static void drain(struct run *r)
{
    atomic_store(&r->stop_send, true);
    uint64_t end = now_ns(r) + secs_ns(r->o.drain_s);
    while (now_ns(r) < end && !atomic_load(&r->failed)) {
        uint64_t sent = atomic_load(&r->sent);
        if (atomic_load(&r->low) >= sent && atomic_load(&r->acked) >= sent)
            break;
        sleep_until(r, now_ns(r) + 10 * NS_PER_MS);
    }
}

/* ---- command line ---- */

static const char usage_text[] =
    "usage: slow_consumers -p PORT [options]\n"
    "  -p PORT               broker port on 127.0.0.1 (1883)\n"
    "  --slow N              subscribers on slow/t that never read (1000)\n"
    "  --payload BYTES       flood payload size (1024)\n"
    "  --flood-rate R        flood msg/s; 0 = as fast as the socket takes (0)\n"
    "  --pair-rate R         the QoS 1 pair's msg/s on pair/t (100)\n"
    "  --baseline S --flood S --after S   seconds per phase (10 each)\n"
    "  --drain S             at most this long for the pair's last messages (5)\n"
    "  --broker-pid PID      report the broker's VmRSS every second\n"
    "  --slow-user U --slow-pass P   credentials of the slow clients and the flooder\n"
    "  --pair-user U --pair-pass P   credentials of the pair\n"
    "  --json FILE           per-second figures and the summary as JSON\n"
    "exit status: 0 ok, 1 usage, 2 connection or protocol failure, 3 a pair message lost\n";

enum opt_kind { OPT_INT, OPT_DOUBLE, OPT_TEXT };

/* The long options: where each value goes in struct opts and its range. */
struct opt_def {
    const char *name;
    enum opt_kind kind;
    size_t offset;
    double lo, hi;
};

#define OPT(name, kind, field, lo, hi)                                                             \
    {                                                                                              \
        name, kind, offsetof(struct opts, field), lo, hi                                           \
    }
static const struct opt_def opt_defs[] = {
    OPT("port", OPT_INT, port, 1, 65535),
    OPT("slow", OPT_INT, slow, 0, 100000),
    OPT("payload", OPT_INT, payload, 0, 1 << 20),
    OPT("flood-rate", OPT_DOUBLE, flood_rate, 0, 1e9),
    OPT("pair-rate", OPT_DOUBLE, pair_rate, 0.1, 100000),
    OPT("baseline", OPT_DOUBLE, baseline_s, 0, 86400),
    OPT("flood", OPT_DOUBLE, flood_s, 0, 86400),
    OPT("after", OPT_DOUBLE, after_s, 0, 86400),
    OPT("drain", OPT_DOUBLE, drain_s, 0, 3600),
    OPT("broker-pid", OPT_INT, broker_pid, 1, 1 << 30),
    OPT("slow-user", OPT_TEXT, slow_user, 0, 0),
    OPT("slow-pass", OPT_TEXT, slow_pass, 0, 0),
    OPT("pair-user", OPT_TEXT, pair_user, 0, 0),
    OPT("pair-pass", OPT_TEXT, pair_pass, 0, 0),
    OPT("json", OPT_TEXT, json, 0, 0),
};
#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

static bool opt_set(const struct opt_def *d, const char *arg, struct opts *o)
{
    char *field = (char *)o + d->offset, *end;
    if (d->kind == OPT_TEXT) {
        memcpy(field, &arg, sizeof(arg));
        return true;
    }
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || v < d->lo || v > d->hi)
        return false;
    if (d->kind == OPT_INT && v != (int)v)
        return false;
    if (d->kind == OPT_INT)
        *(int *)(void *)field = (int)v;
    else
        *(double *)(void *)field = v;
    return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    struct option longs[N_OPTS + 2] = {{0}};
    for (size_t i = 0; i < N_OPTS; i++)
        longs[i] = (struct option){opt_defs[i].name, required_argument, NULL, (int)i};
    longs[N_OPTS] = (struct option){"help", no_argument, NULL, 'h'};
    *o = (struct opts){.port = 1883, .slow = 1000, .payload = 1024, .pair_rate = 100};
    o->baseline_s = o->flood_s = o->after_s = 10;
    o->drain_s = 5;
    int c;
    while ((c = getopt_long(argc, argv, "p:h", longs, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            exit(0);
        }
        const struct opt_def *d = c == 'p' ? &opt_defs[0] : NULL;
        if (c >= 0 && (size_t)c < N_OPTS)
            d = &opt_defs[c];
        if (!d) {
            fputs(usage_text, stderr);
            return -EINVAL;
        }
        if (!opt_set(d, optarg, o)) {
            fprintf(stderr, "slow_consumers: bad value for --%s: %s (%g..%g)\n", d->name, optarg,
                    d->lo, d->hi);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slow_consumers: unexpected argument %s\n%s", argv[optind], usage_text);
        return -EINVAL;
    }
    return 0;
}

/* ---- main ---- */

static struct run *run_create(const struct opts *o)
{
    struct run *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->slow_fds = calloc((size_t)o->slow + 1, sizeof(int));
    if (!r->slow_fds) {
        free(r);
        return NULL;
    }
    r->o = *o;
    clock_gettime(CLOCK_MONOTONIC, &r->epoch);
    r->tag = (uint16_t)(r->epoch.tv_nsec ^ getpid());
    for (int i = 0; i < PH_COUNT; i++) {
        atomic_init(&r->phase_start[i], UINT64_MAX);
        hist_init(&r->phase[i]);
    }
    hist_init(&r->sec);
    pthread_mutex_init(&r->lock, NULL);
    r->flood_fd = -1;
    r->rss_before = r->rss_peak = r->rss_after = -1;
    r->interval = (uint64_t)(NS_PER_S / o->pair_rate);
    return r;
}

static void run_destroy(struct run *r)
{
    if (r->pub)
        close(r->pub->fd);
    if (r->sub)
        close(r->sub->fd);
    free(r->pub);
    free(r->sub);
    free(r->seen);
    free(r->slow_fds);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The pair runs from before the baseline to the end of the drain. */
static int run_all(struct run *r)
{
    r->sub = pair_open(r, "sc-pair-sub", "pair/t");
    r->pub = r->sub ? pair_open(r, "sc-pair-pub", NULL) : NULL;
    if (!r->pub)
        return -1;
    r->pub_start = now_ns(r);
    pthread_t pub, sub;
    if (pthread_create(&sub, NULL, pair_sub_main, r) != 0) {
        fail(r, "pthread_create failed");
        return -1;
    }
    if (pthread_create(&pub, NULL, pair_pub_main, r) != 0) {
        fail(r, "pthread_create failed");
        atomic_store(&r->stop_pair, true);
        pthread_join(sub, NULL);
        return -1;
    }
    int rc = run_phases(r);
    drain(r);
    atomic_store(&r->stop_pair, true);
    pthread_join(pub, NULL);
    pthread_join(sub, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o) < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    struct run *r = run_create(&o);
    if (!r) {
        fprintf(stderr, "slow_consumers: out of memory\n");
        return 1;
    }
    printf("slow_consumers: %d slow subscribers, %d-byte flood, pair at %.0f msg/s QoS 1, "
           "phases %.1f/%.1f/%.1f s, broker pid %d\n",
           o.slow, o.payload, o.pair_rate, o.baseline_s, o.flood_s, o.after_s, o.broker_pid);
    int rc = run_all(r);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        r->self_user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
        r->self_sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    if (r->pub) /* the pair ran: there is something to report */
        print_summary(r);
    int json_rc = o.json ? write_json(r, o.json) : 0;
    if (json_rc < 0)
        fprintf(stderr, "slow_consumers: %s: %s\n", o.json, strerror(-json_rc));
    int status = 0;
    if (rc < 0 || atomic_load(&r->failed) || json_rc < 0)
        status = 2;
    else if (atomic_load(&r->sent) != r->received)
        status = 3;
    run_destroy(r);
    return status;
}
