/*
 * persist_fill: the client side of bench/persist_recovery.sh (issue 13's
 * recovery target). Three commands against a broker on 127.0.0.1:PORT,
 * MQTT 3.1.1 through src/mqtt/codec.h:
 *
 *   fill    N persistent sessions (client id PREFIX-s, clean session 0), each
 *           subscribing at QoS 1 to its own SUBS topics PREFIX/s/0..SUBS-1
 *           and disconnecting; then one clean-session publisher sends M QoS 1
 *           messages, message j to PREFIX/(j mod N)/((j / N) mod SUBS), so
 *           they queue for the offline sessions (M / N each: mind the
 *           broker's limits.max_queued_messages). Sessions are made in
 *           batches of --batch connections, whose CONNECT and SUBSCRIBE all
 *           go out before any answer is read, so a broker that syncs per
 *           loop turn groups them; no more than a batch of descriptors is
 *           open at once (the process limit here is 20,000).
 *   ready   connect (clean session) until a CONNACK comes, every 2 ms, up to
 *           --timeout seconds; prints "ready_ns T", T the CLOCK_REALTIME of
 *           the CONNACK (the script subtracts the time it started the broker).
 *   check   reconnect --sample sessions spread over the N (clean session 0):
 *           each must find its session present and receive exactly the
 *           messages queued for it (the payload carries j: j mod N must be
 *           the session and the topic j's), then one new message it
 *           publishes to its own last topic must come back to it (its
 *           subscriptions survived).
 *
 * One thread; blocking sockets with --timeout receive/send timeouts, except
 * the publisher (bench/mqc.h: non-blocking, a window of --window unacknowledged
 * messages). Connections come from 127.0.0.2.. (--sources) so that 100,000
 * short connections do not exhaust one address's ports.
 *
 * Exit status: 0 ok; 1 usage; 2 a connection or protocol failure; 3 check
 * found a session, message or subscription missing or wrong.
 */
#include "mqc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S   1000000000ull
#define READ_CAP   65536
#define MAGIC      "pfill-j:"
#define MAGIC_LEN  8
#define PROBE_J    UINT64_MAX /* the payload's j of a check's own message */
#define MAX_SUBS   64
#define PACKET_CAP 8192

struct opts {
    int port;
    unsigned sessions, subs, msgs, batch, window, sample, payload, sources;
    unsigned timeout_s;
    const char *prefix;
};

/* Input of one blocking connection: bytes received and not yet parsed. */
struct reader {
    int fd;
    size_t off, len;
    uint8_t buf[READ_CAP];
};

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static double since_s(uint64_t t0)
{
    return (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
}

/* A blocking TCP connection to 127.0.0.1:port from 127.0.0.(2 + src), with
 * the receive and send timeouts; the fd or -errno. */
static int tcp_open(const struct opts *o, unsigned src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = o->timeout_s};
    int one = 1;
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + src % o->sources);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The port is chosen by connect() on the whole 4-tuple, not by bind(). */
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* The next whole packet of r's connection (reading as needed); *body is
 * valid until the next call. 0, -EAGAIN on the receive timeout, -ECONNRESET
 * when the broker closed, -EPROTO for bytes that are not MQTT. */
static int reader_next(struct reader *r, struct mqtt_frame *f, const uint8_t **body)
{
    if (r->off) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    for (;;) {
        int d = mqtt_frame_decode(r->buf, r->len, READ_CAP, f);
        if (d == MQTT_OK && f->total_len <= r->len) {
            *body = r->buf + f->header_len;
            r->off = f->total_len;
            return 0;
        }
        if (d != MQTT_OK && d != MQTT_INCOMPLETE)
            return -EPROTO;
        ssize_t got = recv(r->fd, r->buf + r->len, READ_CAP - r->len, 0);
        if (got == 0)
            return -ECONNRESET;
        if (got < 0 && errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        if (got > 0)
            r->len += (size_t)got;
    }
}

static struct mqtt_bytes text(const char *s)
{
    return (struct mqtt_bytes){.p = (const uint8_t *)s, .len = strlen(s)};
}

/* CONNECT as id with the given clean session flag, at out; its length. */
static size_t put_connect(uint8_t *out, const char *id, bool clean)
{
    struct mqtt_connect_opts co = {
        .version = MQTT_V311, .clean_start = clean, .client_id = text(id)};
    return mqtt_connect_encode(out, &co);
}

/* Read the CONNACK: 0 with *present set, -EACCES refused, or -errno. */
static int expect_connack(struct reader *r, bool *present)
{
    struct mqtt_frame f;
    const uint8_t *body;
    struct mqtt_connack ca;
    int rc = reader_next(r, &f, &body);
    if (rc < 0)
        return rc;
    if (f.type != MQTT_CONNACK || mqtt_connack_decode(body, f.body_len, MQTT_V311, &ca))
        return -EPROTO;
    *present = ca.session_present;
    return ca.code == MQTT_CONNACK_ACCEPTED ? 0 : -EACCES;
}

/* Session s's CONNECT and SUBSCRIBE to its SUBS topics, at out; the length. */
static size_t put_session(const struct opts *o, unsigned s, uint8_t *out)
{
    char id[128], topics[MAX_SUBS][128];
    struct mqtt_bytes filters[MAX_SUBS];
    uint8_t qos[MAX_SUBS];
    snprintf(id, sizeof(id), "%s-%u", o->prefix, s);
    size_t n = put_connect(out, id, false);
    for (unsigned k = 0; k < o->subs; k++) {
        snprintf(topics[k], sizeof(topics[k]), "%s/%u/%u", o->prefix, s, k);
        filters[k] = text(topics[k]);
        qos[k] = 1;
    }
    return n + mqtt_subscribe_encode(out + n, MQTT_V311, 1, filters, qos, o->subs, false);
}

/* Read session fd's CONNACK and SUBACK, then DISCONNECT and close it. */
static int finish_session(const struct opts *o, struct reader *r)
{
    struct mqtt_frame f;
    const uint8_t *body;
    struct mqtt_suback sa;
    bool present;
    r->off = r->len = 0;
    int rc = expect_connack(r, &present);
    if (rc == 0)
        rc = reader_next(r, &f, &body);
    if (rc == 0 && (f.type != MQTT_SUBACK ||
                    mqtt_suback_decode(MQTT_SUBACK, body, f.body_len, MQTT_V311, &sa) ||
                    sa.codes.len != o->subs))
        rc = -EPROTO;
    for (size_t k = 0; rc == 0 && k < sa.codes.len; k++)
        if (sa.codes.p[k] > 1)
            rc = -EACCES;
    uint8_t disc[4];
    if (rc == 0)
        rc = mqc_write_full(r->fd, disc, mqtt_simple_encode(disc, MQTT_DISCONNECT, MQTT_V311, 0));
    close(r->fd);
    return rc;
}

/* Sessions [first, first + n): every CONNECT and SUBSCRIBE sent, then every
 * answer read. */
static int make_batch(const struct opts *o, unsigned first, unsigned n, int *fds, struct reader *r)
{
    uint8_t pkt[PACKET_CAP];
    int rc = 0;
    unsigned opened = 0;
    for (; opened < n; opened++) {
        fds[opened] = tcp_open(o, first + opened);
        if (fds[opened] < 0) {
            rc = fds[opened];
            break;
        }
        rc = mqc_write_full(fds[opened], pkt, put_session(o, first + opened, pkt));
        if (rc < 0) {
            opened++;
            break;
        }
    }
    for (unsigned i = 0; i < opened; i++) {
        r->fd = fds[i];
        int err = rc < 0 ? (close(fds[i]), 0) : finish_session(o, r);
        if (err < 0 && rc == 0) {
            fprintf(stderr, "session %u: %s\n", first + i, strerror(-err));
            rc = err;
        }
    }
    return rc;
}

static int make_sessions(const struct opts *o)
{
    int *fds = calloc(o->batch, sizeof(*fds));
    struct reader *r = malloc(sizeof(*r));
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    int rc = fds && r ? 0 : -ENOMEM;
    for (unsigned s = 0; rc == 0 && s < o->sessions; s += o->batch) {
        unsigned n = o->sessions - s < o->batch ? o->sessions - s : o->batch;
        rc = make_batch(o, s, n, fds, r);
    }
    double dt = since_s(t0);
    if (rc == 0)
        printf("sessions %u with %u subscriptions each in %.2f s (%.0f/s)\n", o->sessions, o->subs,
               dt, o->sessions / dt);
    free(fds);
    free(r);
    return rc;
}

/* Message j's topic and payload (MAGIC, j in 8 bytes, zero padding). */
static void message_of(const struct opts *o, uint64_t j, char *topic, size_t cap, uint8_t *payload)
{
    unsigned s = (unsigned)(j % o->sessions);
    unsigned k = (unsigned)(j / o->sessions % o->subs);
    snprintf(topic, cap, "%s/%u/%u", o->prefix, s, k);
    memset(payload, 0, o->payload);
    memcpy(payload, MAGIC, MAGIC_LEN);
    for (int b = 0; b < 8; b++)
        payload[MAGIC_LEN + b] = (uint8_t)(j >> (56 - 8 * b));
}

/* The j a payload carries, or -1 when it is not one of ours. */
static int j_of(struct mqtt_bytes payload, uint64_t *j)
{
    if (payload.len < MAGIC_LEN + 8 || memcmp(payload.p, MAGIC, MAGIC_LEN))
        return -1;
    *j = 0;
    for (int b = 0; b < 8; b++)
        *j = *j << 8 | payload.p[MAGIC_LEN + b];
    return 0;
}

/* The publisher's state: packet ids in use, counts. */
struct pub {
    const struct opts *o;
    uint64_t sent, acked;
    unsigned inflight;
    uint16_t next_id;
    uint8_t used[65536 / 8];
};

static int on_puback(void *ctx, struct mqc_conn *c, const struct mqtt_frame *f, const uint8_t *body)
{
    (void)c;
    struct pub *p = ctx;
    struct mqtt_ack a;
    if (f->type != MQTT_PUBACK ||
        mqtt_ack_decode(f->type, f->flags, body, f->body_len, MQTT_V311, &a) ||
        !(p->used[a.packet_id / 8] & (1u << (a.packet_id % 8))))
        return -EPROTO;
    p->used[a.packet_id / 8] &= (uint8_t) ~(1u << (a.packet_id % 8));
    p->inflight--;
    p->acked++;
    return 0;
}

/* Queue PUBLISHes while the window and the output buffer allow. */
static void publish_more(struct pub *p, struct mqc_conn *c)
{
    const struct opts *o = p->o;
    char topic[128];
    uint8_t payload[PACKET_CAP];
    while (p->sent < o->msgs && p->inflight < o->window) {
        message_of(o, p->sent, topic, sizeof(topic), payload);
        size_t need = mqtt_publish_size(MQTT_V311, strlen(topic), o->payload, 1);
        if (!mqc_room(c, need))
            return;
        while (!p->next_id || p->used[p->next_id / 8] & (1u << (p->next_id % 8)))
            p->next_id++;
        p->used[p->next_id / 8] |= (uint8_t)(1u << (p->next_id % 8));
        c->out_len += mqtt_publish_encode(c->out + c->out_len, MQTT_V311, 1, false, false,
                                          (const uint8_t *)topic, strlen(topic), p->next_id++,
                                          payload, o->payload);
        p->inflight++;
        p->sent++;
    }
}

static int publish_all(const struct opts *o)
{
    struct mqc_conn *c = malloc(sizeof(*c));
    struct pub *p = calloc(1, sizeof(*p));
    char id[128];
    snprintf(id, sizeof(id), "%s-publisher", o->prefix);
    int rc = c && p ? mqc_open(o->port, id, NULL, NULL, 0, NULL, 0) : -ENOMEM;
    if (rc < 0)
        goto out;
    c->fd = rc;
    c->in_len = c->out_off = c->out_len = 0;
    p->o = o;
    uint64_t t0 = now_ns(CLOCK_MONOTONIC), last_ack = t0;
    rc = 0;
    while (rc == 0 && p->acked < o->msgs) {
        uint64_t before = p->acked;
        publish_more(p, c);
        rc = mqc_flush(c);
        if (rc == 0)
            rc = mqc_wait(c, NS_PER_S / 10);
        if (rc == 0)
            rc = mqc_parse(c, on_puback, p);
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (p->acked != before)
            last_ack = now;
        else if (now - last_ack > o->timeout_s * NS_PER_S)
            rc = -ETIMEDOUT;
    }
    double dt = since_s(t0);
    if (rc == 0)
        printf("published %u QoS 1 messages of %u B in %.2f s (%.0f msg/s)\n", o->msgs, o->payload,
               dt, o->msgs / dt);
    else
        fprintf(stderr, "publisher: %s after %" PRIu64 " acknowledged\n", strerror(-rc), p->acked);
    close(c->fd);
out:
    free(c);
    free(p);
    return rc;
}

static int cmd_fill(const struct opts *o)
{
    int rc = make_sessions(o);
    if (rc == 0)
        rc = publish_all(o);
    if (rc < 0)
        fprintf(stderr, "fill: %s\n", strerror(-rc));
    return rc < 0 ? 2 : 0;
}

static int cmd_ready(const struct opts *o)
{
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    struct reader *r = malloc(sizeof(*r));
    uint8_t pkt[256];
    char id[128];
    snprintf(id, sizeof(id), "%s-ready", o->prefix);
    while (r && since_s(t0) < o->timeout_s) {
        bool present;
        r->off = r->len = 0;
        r->fd = tcp_open(o, 0);
        if (r->fd >= 0 && mqc_write_full(r->fd, pkt, put_connect(pkt, id, true)) == 0 &&
            expect_connack(r, &present) == 0) {
            printf("ready_ns %" PRIu64 "\n", now_ns(CLOCK_REALTIME));
            close(r->fd);
            free(r);
            return 0;
        }
        if (r->fd >= 0)
            close(r->fd);
        nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
    }
    free(r);
    fprintf(stderr, "ready: no CONNACK within %u s\n", o->timeout_s);
    return 2;
}

/* What check found, summed over the sample. */
struct tally {
    unsigned sessions, present, probes, failed;
    uint64_t expected, received, wrong, extra;
};

/* How many of the M messages are queued for session s. */
static uint64_t queued_for(const struct opts *o, unsigned s)
{
    return o->msgs / o->sessions + (s < o->msgs % o->sessions ? 1 : 0);
}

enum got { GOT_OURS, GOT_WRONG, GOT_PROBE };

/* Acknowledge one PUBLISH received by session s and say what it was: one
 * of the messages queued for s (the payload's j is s's, on j's topic),
 * something else, or s's own probe. 0 or -errno. */
static int on_check_publish(const struct opts *o, unsigned s, struct reader *r,
                            const struct mqtt_frame *f, const uint8_t *body, enum got *got)
{
    struct mqtt_publish pub;
    char topic[128];
    uint64_t j;
    if (mqtt_publish_decode(f->flags, body, f->body_len, MQTT_V311, &pub))
        return -EPROTO;
    *got = GOT_WRONG;
    if (j_of(pub.payload, &j) == 0 && j == PROBE_J) {
        *got = GOT_PROBE;
    } else if (j_of(pub.payload, &j) == 0 && j % o->sessions == s) {
        snprintf(topic, sizeof(topic), "%s/%u/%u", o->prefix, s,
                 (unsigned)(j / o->sessions % o->subs));
        if (pub.topic.len == strlen(topic) && !memcmp(pub.topic.p, topic, pub.topic.len))
            *got = GOT_OURS;
    }
    uint8_t ack[4];
    if (pub.qos == 0)
        return 0;
    return mqc_write_full(r->fd, ack,
                          mqtt_ack_encode(ack, MQTT_PUBACK, MQTT_V311, pub.packet_id, 0));
}

/* Publish session s's probe to its own last topic (payload j = PROBE_J). */
static int send_probe(const struct opts *o, unsigned s, struct reader *r)
{
    uint8_t payload[PACKET_CAP], out[PACKET_CAP + 256];
    char topic[128];
    message_of(o, s + (uint64_t)(o->subs - 1) * o->sessions, topic, sizeof(topic), payload);
    memset(payload + MAGIC_LEN, 0xff, 8);
    size_t n = mqtt_publish_encode(out, MQTT_V311, 1, false, false, (const uint8_t *)topic,
                                   strlen(topic), 1, payload, o->payload);
    return mqc_write_full(r->fd, out, n);
}

/* Session s's queued messages, then its probe, which must come back after
 * them (delivery is in order, so it also fences off late extras). Returns 0
 * or -errno; counts in t. */
static int drain_session(const struct opts *o, unsigned s, struct reader *r, struct tally *t)
{
    uint64_t want = queued_for(o, s), ours = 0;
    bool probe_sent = false;
    enum got got = GOT_OURS;
    int rc = 0;
    while (rc == 0 && got != GOT_PROBE) {
        if (!probe_sent && ours >= want) {
            rc = send_probe(o, s, r);
            probe_sent = true;
        }
        struct mqtt_frame f;
        const uint8_t *body;
        if (rc == 0)
            rc = reader_next(r, &f, &body);
        if (rc == 0 && f.type == MQTT_PUBLISH)
            rc = on_check_publish(o, s, r, &f, body, &got);
        else if (rc == 0 && f.type != MQTT_PUBACK)
            rc = -EPROTO;
        if (rc == 0 && f.type == MQTT_PUBLISH) {
            ours += got == GOT_OURS;
            t->wrong += got == GOT_WRONG;
        }
    }
    t->probes += got == GOT_PROBE;
    t->received += ours < want ? ours : want;
    t->extra += ours > want ? ours - want : 0;
    return rc;
}

static int check_session(const struct opts *o, unsigned s, struct reader *r, struct tally *t)
{
    uint8_t pkt[256];
    char id[128];
    bool present = false;
    snprintf(id, sizeof(id), "%s-%u", o->prefix, s);
    r->off = r->len = 0;
    r->fd = tcp_open(o, s);
    if (r->fd < 0)
        return r->fd;
    t->sessions++;
    t->expected += queued_for(o, s);
    int rc = mqc_write_full(r->fd, pkt, put_connect(pkt, id, false));
    if (rc == 0)
        rc = expect_connack(r, &present);
    if (rc == 0 && present)
        t->present++;
    if (rc == 0 && present)
        rc = drain_session(o, s, r, t);
    if (rc == 0)
        rc = mqc_write_full(r->fd, pkt, mqtt_simple_encode(pkt, MQTT_DISCONNECT, MQTT_V311, 0));
    close(r->fd);
    if (rc < 0 || !present)
        fprintf(stderr, "session %u: %s\n", s, rc < 0 ? strerror(-rc) : "not present");
    return rc;
}

static int cmd_check(const struct opts *o)
{
    struct tally t = {0};
    struct reader *r = malloc(sizeof(*r));
    unsigned n = o->sample < o->sessions ? o->sample : o->sessions;
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    for (unsigned i = 0; r && i < n; i++)
        if (check_session(o, (unsigned)((uint64_t)i * o->sessions / n), r, &t) < 0)
            t.failed++;
    free(r);
    printf("check %u sessions in %.2f s: present %u, messages %" PRIu64 "/%" PRIu64
           ", wrong %" PRIu64 ", extra %" PRIu64 ", subscriptions answered %u, failed %u\n",
           t.sessions, since_s(t0), t.present, t.received, t.expected, t.wrong, t.extra, t.probes,
           t.failed);
    bool ok = t.sessions == n && t.present == n && t.received == t.expected && !t.wrong &&
              t.probes == n && !t.failed;
    return ok ? 0 : 3;
}

static const char usage[] =
    "usage: persist_fill fill|ready|check -p PORT [options]\n"
    "  -n, --sessions N   persistent sessions (100000)\n"
    "      --subs K       subscriptions per session, 1..64 (10)\n"
    "  -m, --messages M   QoS 1 messages published, M/N queued per session (1000000)\n"
    "  -s, --payload B    payload bytes, 16..4096 (16)\n"
    "      --batch B      sessions made at once (1000)\n"
    "  -w, --window W     publisher's unacknowledged messages (256)\n"
    "      --sample S     check: sessions checked, spread over the N (100)\n"
    "      --prefix P     client ids P-s, topics P/s/k (pf)\n"
    "      --sources S    loopback source addresses 127.0.0.2.. (8)\n"
    "      --timeout T    seconds: I/O timeouts; ready: the longest wait (30)\n";

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"port", required_argument, NULL, 'p'},
                                          {"sessions", required_argument, NULL, 'n'},
                                          {"subs", required_argument, NULL, 'k'},
                                          {"messages", required_argument, NULL, 'm'},
                                          {"payload", required_argument, NULL, 's'},
                                          {"batch", required_argument, NULL, 'b'},
                                          {"window", required_argument, NULL, 'w'},
                                          {"sample", required_argument, NULL, 'S'},
                                          {"prefix", required_argument, NULL, 'P'},
                                          {"sources", required_argument, NULL, 'a'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"help", no_argument, NULL, 'h'},
                                          {0}};
    *o = (struct opts){.sessions = 100000,
                       .subs = 10,
                       .msgs = 1000000,
                       .batch = 1000,
                       .window = 256,
                       .sample = 100,
                       .payload = 16,
                       .sources = 8,
                       .timeout_s = 30,
                       .prefix = "pf"};
    int c;
    while ((c = getopt_long(argc, argv, "p:n:m:s:w:", longs, NULL)) != -1) {
        unsigned long v = optarg ? strtoul(optarg, NULL, 10) : 0;
        switch (c) {
        case 'p':
            o->port = (int)v;
            break;
        case 'n':
            o->sessions = (unsigned)v;
            break;
        case 'k':
            o->subs = (unsigned)v;
            break;
        case 'm':
            o->msgs = (unsigned)v;
            break;
        case 's':
            o->payload = (unsigned)v;
            break;
        case 'b':
            o->batch = (unsigned)v;
            break;
        case 'w':
            o->window = (unsigned)v;
            break;
        case 'S':
            o->sample = (unsigned)v;
            break;
        case 'P':
            o->prefix = optarg;
            break;
        case 'a':
            o->sources = (unsigned)v;
            break;
        case 't':
            o->timeout_s = (unsigned)v;
            break;
        default:
            return -1;
        }
    }
    bool ok = o->port > 0 && o->port < 65536 && o->sessions && o->subs && o->subs <= MAX_SUBS &&
              o->payload >= 16 && o->payload <= 4096 && o->batch && o->window &&
              o->window < 65535 && o->sources && o->sources <= 250 && o->timeout_s &&
              strlen(o->prefix) < 64 && optind == argc;
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (argc < 2 || parse_opts(argc - 1, argv + 1, &o) < 0) {
        fputs(usage, stderr);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(argv[1], "fill"))
        return cmd_fill(&o);
    if (!strcmp(argv[1], "ready"))
        return cmd_ready(&o);
    if (!strcmp(argv[1], "check"))
        return cmd_check(&o);
    fputs(usage, stderr);
    return 1;
}
