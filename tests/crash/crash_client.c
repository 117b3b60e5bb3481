/* crash_client: the publisher and the subscriber of the crash test
 * (tests/crash/crash_test.sh), one process per role, MQTT 3.1.1 over plain TCP
 * on 127.0.0.1, clean session 0, fixed client ids. Each runs until it is told
 * to stop or its deadline passes, and reconnects whenever the broker goes away
 * (it is killed with SIGKILL and restarted on the same port and data dir).
 *
 *   crash_client pub PORT QOS ACKED_FILE RATE DEADLINE_S
 *     publishes "seq" payloads 1, 2, 3... on crash/seq at QOS (1 or 2), at most
 *     RATE a second with at most WINDOW unacknowledged; appends to ACKED_FILE
 *     every seq the broker acknowledged: PUBACK for QoS 1, PUBREC for QoS 2
 *     (where the broker makes its promise; PUBCOMP is not waited for). After a
 *     reconnection it resends what is unacknowledged, in order, PUBLISH with DUP
 *     or PUBREL (MQTT-4.4.0-1). SIGUSR1: publish nothing new, finish what is in
 *     flight, DISCONNECT, print "published N" and exit 0.
 *   crash_client sub PORT RECV_FILE READY_FILE DEADLINE_S
 *     subscribes to crash/seq at QoS 2 until one SUBACK grants it,
 *     and never again: after a restart the subscription must have survived.
 *     Creates READY_FILE at that SUBACK. Appends every delivered seq to RECV_FILE
 *     before acknowledging it, and the lines "# connect N sp=S" per CONNACK
 *     (S: session present), "# subscribe" per SUBSCRIBE sent and "# suback".
 *     Exits 0 on SIGTERM.
 *
 * Why not libmosquitto: as a QoS 2 receiver libmosquitto 2.0.11 queues a
 * second copy of a PUBLISH whose packet id it already holds (a resend with
 * DUP, which a restarted broker legitimately sends when it had not yet made
 * the PUBREC durable); the next PUBREL for that id then delivers the stale
 * copy again, a duplicate the broker did not cause. This client keeps the ids
 * awaiting PUBREL and acknowledges a resent PUBLISH without delivering it
 * (MQTT-4.3.3-2), and it can count a QoS 2 message as acknowledged at PUBREC,
 * which libmosquitto does not report.
 *
 * Records are written with write(2) on O_APPEND: the broker is what gets
 * killed, not these processes, so what write returned is in the file. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOPIC        "crash/seq"
#define WINDOW       16
#define KEEPALIVE_S  30
#define RETRY_MS     20
#define IO_TIMEOUT_S 2
/* A connection the dying broker's listener accepted is never answered. */
#define CONNACK_TIMEOUT_MS 5000

enum role { ROLE_PUB, ROLE_SUB };

enum slot_state { SLOT_FREE, SLOT_WAIT_ACK, SLOT_WAIT_COMP };

/* One unacknowledged message of the publisher. WAIT_ACK: PUBLISH sent, PUBACK
 * (QoS 1) or PUBREC (QoS 2) awaited; WAIT_COMP: PUBREL sent, PUBCOMP awaited. */
struct slot {
    uint64_t seq;
    uint16_t id;
    enum slot_state state;
};

struct client {
    enum role role;
    int port;
    int qos;
    int fd;             /* -1 while disconnected */
    int out;            /* the acked or received file */
    const char *ready;  /* sub: the file created at SUBACK */
    long long deadline; /* ms, monotonic */
    long long last_ping;
    long long connected_at;
    unsigned connects;
    bool session_up; /* CONNACK received on this connection */
    /* pub */
    long rate;
    long long started;
    uint64_t next_seq; /* last seq published */
    uint16_t next_id;
    struct slot slots[WINDOW];
    /* sub */
    bool subscribed;
    uint8_t held[65536 / 8]; /* QoS 2 ids that got PUBREC and await PUBREL */
    /* the input being parsed */
    uint8_t in[1 << 16];
    size_t in_len;
};

static volatile sig_atomic_t finishing, terminated;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        finishing = 1;
    else
        terminated = 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "crash_client: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void append_line(struct client *c, const char *line)
{
    size_t len = strlen(line);
    if (write(c->out, line, len) != (ssize_t)len)
        die("write");
}

static void record_seq(struct client *c, uint64_t seq)
{
    char line[32];
    snprintf(line, sizeof(line), "%llu\n", (unsigned long long)seq);
    append_line(c, line);
}

static void disconnect(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_len = 0;
    c->session_up = false;
}

/* Sends one whole packet; a failure means the broker went away. */
static bool send_bytes(struct client *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            disconnect(c);
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

enum { PAD_MAX = 1024 };

/* Fixed header + remaining length, then `body`. */
static bool send_packet(struct client *c, uint8_t type, const uint8_t *body, size_t len)
{
    uint8_t p[8 + 64 + PAD_MAX];
    size_t n = 0;
    p[n++] = type;
    size_t rem = len;
    do {
        uint8_t b = rem % 128;
        rem /= 128;
        p[n++] = (uint8_t)(b | (rem ? 0x80 : 0));
    } while (rem);
    if (len > sizeof(p) - n)
        return false;
    if (len)
        memcpy(p + n, body, len);
    return send_bytes(c, p, n + len);
}

static bool send_id_packet(struct client *c, uint8_t type, uint16_t id)
{
    uint8_t body[2] = {(uint8_t)(id >> 8), (uint8_t)id};
    return send_packet(c, type, body, 2);
}

static size_t put_string(uint8_t *p, const char *s)
{
    size_t len = strlen(s);
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    memcpy(p + 2, s, len);
    return 2 + len;
}

static bool send_connect(struct client *c)
{
    uint8_t body[64];
    size_t n = put_string(body, "MQTT");
    body[n++] = 4;    /* protocol level: 3.1.1 */
    body[n++] = 0x00; /* clean session 0, no will, no credentials */
    body[n++] = 0;
    body[n++] = KEEPALIVE_S;
    n += put_string(body + n, c->role == ROLE_PUB ? "crash-pub" : "crash-sub");
    return send_packet(c, 0x10, body, n);
}

/* Spaces after the sequence number (CRASH_PAD, at most PAD_MAX): bigger
 * messages, so that the broker's log grows enough for its snapshots. */
static size_t pad(void)
{
    const char *v = getenv("CRASH_PAD");
    size_t n = v ? (size_t)strtoul(v, NULL, 10) : 0;
    return n < PAD_MAX ? n : PAD_MAX;
}

static bool send_publish(struct client *c, const struct slot *s, bool dup)
{
    uint8_t body[64 + PAD_MAX];
    size_t n = put_string(body, TOPIC);
    body[n++] = (uint8_t)(s->id >> 8);
    body[n++] = (uint8_t)s->id;
    n += (size_t)snprintf((char *)body + n, 32, "%llu", (unsigned long long)s->seq);
    size_t k = pad();
    memset(body + n, ' ', k);
    n += k;
    uint8_t type = (uint8_t)(0x30 | (dup ? 0x08 : 0) | (c->qos << 1));
    return send_packet(c, type, body, n);
}

static bool send_subscribe(struct client *c)
{
    append_line(c, "# subscribe\n");
    uint8_t body[32] = {0, 1};
    size_t n = 2 + put_string(body + 2, TOPIC);
    body[n++] = 2;
    return send_packet(c, 0x82, body, n);
}

/* TCP connect and CONNECT; false while the broker is down. */
static bool try_connect(struct client *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)c->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        disconnect(c);
        return false;
    }
    c->last_ping = c->connected_at = now_ms();
    return send_connect(c);
}

static struct slot *slot_by_id(struct client *c, uint16_t id, enum slot_state state)
{
    for (int i = 0; i < WINDOW; i++)
        if (c->slots[i].state == state && c->slots[i].id == id)
            return &c->slots[i];
    return NULL;
}

static int slots_busy(const struct client *c)
{
    int n = 0;
    for (int i = 0; i < WINDOW; i++)
        n += c->slots[i].state != SLOT_FREE;
    return n;
}

/* The next packet id in use by no slot (ids wrap after 65535, never 0). */
static uint16_t take_id(struct client *c)
{
    for (;;) {
        c->next_id = (uint16_t)(c->next_id + 1);
        if (c->next_id == 0)
            continue;
        bool used = false;
        for (int i = 0; i < WINDOW; i++)
            used |= c->slots[i].state != SLOT_FREE && c->slots[i].id == c->next_id;
        if (!used)
            return c->next_id;
    }
}

/* After CONNACK: everything unacknowledged again, oldest first (MQTT-4.4.0-1). */
static void pub_resend(struct client *c)
{
    uint64_t done = 0;
    for (;;) {
        struct slot *oldest = NULL;
        for (int i = 0; i < WINDOW; i++) {
            struct slot *s = &c->slots[i];
            if (s->state != SLOT_FREE && s->seq > done && (!oldest || s->seq < oldest->seq))
                oldest = s;
        }
        if (!oldest)
            return;
        done = oldest->seq;
        bool ok = oldest->state == SLOT_WAIT_ACK ? send_publish(c, oldest, true)
                                                 : send_id_packet(c, 0x62, oldest->id);
        if (!ok)
            return;
    }
}

/* New messages, within the window and the rate. */
static void pub_fill(struct client *c)
{
    long long allowed = (now_ms() - c->started) * c->rate / 1000;
    while (c->fd >= 0 && !finishing && (long long)c->next_seq < allowed) {
        struct slot *s = NULL;
        for (int i = 0; i < WINDOW && !s; i++)
            if (c->slots[i].state == SLOT_FREE)
                s = &c->slots[i];
        if (!s)
            return;
        s->id = take_id(c);
        s->seq = ++c->next_seq;
        s->state = SLOT_WAIT_ACK;
        send_publish(c, s, false);
    }
}

static void pub_packet(struct client *c, uint8_t type, uint16_t id)
{
    struct slot *s;
    switch (type >> 4) {
    case 4: /* PUBACK */
        if (c->qos == 1 && (s = slot_by_id(c, id, SLOT_WAIT_ACK))) {
            record_seq(c, s->seq);
            s->state = SLOT_FREE;
        }
        break;
    case 5: /* PUBREC: the promise; then PUBREL (again, if it is a resent PUBREC) */
        if ((s = slot_by_id(c, id, SLOT_WAIT_ACK))) {
            record_seq(c, s->seq);
            s->state = SLOT_WAIT_COMP;
        }
        if (slot_by_id(c, id, SLOT_WAIT_COMP))
            send_id_packet(c, 0x62, id);
        break;
    case 7: /* PUBCOMP */
        if ((s = slot_by_id(c, id, SLOT_WAIT_COMP)))
            s->state = SLOT_FREE;
        break;
    }
}

static bool held(const struct client *c, uint16_t id)
{
    return c->held[id / 8] & (1u << (id % 8));
}

static void set_held(struct client *c, uint16_t id, bool on)
{
    if (on)
        c->held[id / 8] |= (uint8_t)(1u << (id % 8));
    else
        c->held[id / 8] &= (uint8_t) ~(1u << (id % 8));
}

static void sub_publish(struct client *c, uint8_t type, const uint8_t *body, size_t len)
{
    int qos = (type >> 1) & 3;
    if (len < 2)
        return;
    size_t tlen = (size_t)body[0] << 8 | body[1];
    size_t at = 2 + tlen;
    uint16_t id = 0;
    if (at > len)
        return;
    if (qos > 0) {
        if (at + 2 > len)
            return;
        id = (uint16_t)(body[at] << 8 | body[at + 1]);
        at += 2;
    }
    char digits[32];
    size_t dlen = len - at < sizeof(digits) - 1 ? len - at : sizeof(digits) - 1;
    memcpy(digits, body + at, dlen);
    digits[dlen] = '\0';
    uint64_t seq = strtoull(digits, NULL, 10);
    /* QoS 2, method B: delivered once, at the first PUBLISH; a resend of an
     * id awaiting PUBREL is acknowledged, not delivered (MQTT-4.3.3-2). */
    if (qos < 2 || !held(c, id)) {
        record_seq(c, seq);
    } else {
        /* Without DUP: the broker reused an id before its PUBCOMP (3.1.1
         * section 2.3.1), and this message is lost; said for the diagnosis. */
        char line[96];
        snprintf(line, sizeof(line), "# held id=%u dup=%d seq=%llu\n", id, (type >> 3) & 1,
                 (unsigned long long)seq);
        append_line(c, line);
    }
    if (qos == 1)
        send_id_packet(c, 0x40, id);
    if (qos == 2) {
        set_held(c, id, true);
        send_id_packet(c, 0x50, id);
    }
}

static void on_connack(struct client *c, const uint8_t *body, size_t len)
{
    if (len < 2 || body[1] != 0) {
        fprintf(stderr, "crash_client: CONNACK refused (%d)\n", len < 2 ? -1 : body[1]);
        disconnect(c);
        return;
    }
    bool present = body[0] & 1;
    c->connects++;
    c->session_up = true;
    if (c->role == ROLE_PUB) {
        pub_resend(c);
        return;
    }
    char line[64];
    snprintf(line, sizeof(line), "# connect %u sp=%d\n", c->connects, present);
    append_line(c, line);
    /* Without a session the ids held for it are meaningless. */
    if (!present)
        memset(c->held, 0, sizeof(c->held));
    /* Subscribe until one SUBACK grants it, then never again. */
    if (!c->subscribed)
        send_subscribe(c);
}

static void on_suback(struct client *c, const uint8_t *body, size_t len)
{
    if (len < 3 || body[2] > 2) {
        fprintf(stderr, "crash_client: SUBACK refused\n");
        exit(2);
    }
    c->subscribed = true;
    append_line(c, "# suback\n");
    int fd = open(c->ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        die(c->ready);
    close(fd);
}

static void dispatch(struct client *c, uint8_t type, const uint8_t *body, size_t len)
{
    uint16_t id = len >= 2 ? (uint16_t)(body[0] << 8 | body[1]) : 0;
    switch (type >> 4) {
    case 2:
        on_connack(c, body, len);
        break;
    case 3:
        if (c->role == ROLE_SUB)
            sub_publish(c, type, body, len);
        break;
    case 6: /* PUBREL */
        set_held(c, id, false);
        send_id_packet(c, 0x70, id);
        break;
    case 9:
        on_suback(c, body, len);
        break;
    case 4:
    case 5:
    case 7:
        if (c->role == ROLE_PUB)
            pub_packet(c, type, id);
        break;
    }
}

/* Parses every whole packet in the input buffer. */
static void parse_input(struct client *c)
{
    size_t at = 0;
    while (c->fd >= 0) {
        size_t rem = 0, hdr = 1;
        unsigned shift = 0;
        bool whole = false;
        while (at + hdr < c->in_len && hdr <= 4) {
            uint8_t b = c->in[at + hdr++];
            rem |= (size_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80)) {
                whole = true;
                break;
            }
        }
        if (!whole || at + hdr + rem > c->in_len)
            break;
        dispatch(c, c->in[at], c->in + at + hdr, rem);
        at += hdr + rem;
    }
    if (c->fd < 0)
        return;
    memmove(c->in, c->in + at, c->in_len - at);
    c->in_len -= at;
}

static void read_input(struct client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 10) <= 0)
        return;
    ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    if (r <= 0) {
        if (r == 0 || errno != EINTR)
            disconnect(c);
        return;
    }
    c->in_len += (size_t)r;
    parse_input(c);
}

static void usage(void)
{
    fprintf(stderr, "usage: crash_client pub PORT QOS ACKED_FILE RATE DEADLINE_S\n"
                    "       crash_client sub PORT RECV_FILE READY_FILE DEADLINE_S\n");
    exit(2);
}

static void parse_args(struct client *c, int argc, char **argv)
{
    if (argc != 7 && argc != 6)
        usage();
    c->role = strcmp(argv[1], "pub") == 0 ? ROLE_PUB : ROLE_SUB;
    if (c->role == ROLE_SUB && strcmp(argv[1], "sub") != 0)
        usage();
    if (argc != (c->role == ROLE_PUB ? 7 : 6))
        usage();
    c->port = atoi(argv[2]);
    const char *out = argv[c->role == ROLE_PUB ? 4 : 3];
    if (c->role == ROLE_PUB) {
        c->qos = atoi(argv[3]);
        c->rate = atol(argv[5]);
        if (c->qos < 1 || c->qos > 2 || c->rate <= 0)
            usage();
    } else {
        c->ready = argv[4];
    }
    c->deadline = now_ms() + 1000LL * atol(argv[argc - 1]);
    c->out = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (c->out < 0)
        die(out);
}

static bool done(const struct client *c)
{
    if (c->role == ROLE_PUB)
        return finishing && slots_busy(c) == 0;
    return terminated;
}

int main(int argc, char **argv)
{
    static struct client c = {.fd = -1};
    parse_args(&c, argc, argv);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    c.started = now_ms();
    while (!done(&c) && !(terminated && c.role == ROLE_PUB)) {
        if (now_ms() > c.deadline) {
            fprintf(stderr, "crash_client %s: deadline passed\n", argv[1]);
            return 1;
        }
        if (c.fd < 0 && !try_connect(&c)) {
            usleep(RETRY_MS * 1000);
            continue;
        }
        if (!c.session_up && now_ms() - c.connected_at > CONNACK_TIMEOUT_MS) {
            disconnect(&c);
            continue;
        }
        if (now_ms() - c.last_ping > KEEPALIVE_S * 1000 / 3) {
            c.last_ping = now_ms();
            send_packet(&c, 0xc0, NULL, 0);
        }
        if (c.role == ROLE_PUB && c.session_up)
            pub_fill(&c);
        if (c.fd >= 0)
            read_input(&c);
    }
    if (c.role == ROLE_PUB) {
        if (c.fd >= 0)
            send_packet(&c, 0xe0, NULL, 0);
        printf("published %llu\n", (unsigned long long)c.next_seq);
    }
    disconnect(&c);
    return 0;
}
