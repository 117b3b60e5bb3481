/*
 * mqc: the small MQTT 3.1.1 client of bench/slow_consumers (see mqc.h).
 * Blocking handshakes bounded by socket timeouts, then non-blocking sends
 * and ppoll-bounded reads. Any thread, one per connection.
 */
#include "mqc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S     1000000000ull
#define IO_TIMEOUT_S 5

int mqc_write_full(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t got = recv(fd, p, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -ECONNRESET;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Read exactly one packet, no byte of the next (a slow subscriber must leave
 * what follows its SUBACK unread). The body goes to body[cap]. */
static int read_packet(int fd, struct mqtt_frame *f, uint8_t *body, size_t cap)
{
    uint8_t hdr[5];
    size_t len = 0;
    for (;;) {
        int rc = read_full(fd, hdr + len, 1);
        if (rc < 0)
            return rc;
        len++;
        rc = mqtt_frame_decode(hdr, len, 0, f);
        if (rc == MQTT_OK)
            break;
        if (rc != MQTT_INCOMPLETE || len == sizeof(hdr))
            return -EPROTO;
    }
    if (f->body_len > cap)
        return -EMSGSIZE;
    return read_full(fd, body, f->body_len);
}

static int tcp_connect(int port, int rcvbuf, bool nodelay)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    int one = 1;
    /* SO_RCVBUF before connect(): the window it implies is announced in
     * the SYN, so a later change would not shrink it. */
    if ((rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0) ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        (nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0))
        goto fail;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

static struct mqtt_bytes text(const char *s)
{
    return (struct mqtt_bytes){.p = (const uint8_t *)s, .len = s ? strlen(s) : 0};
}

static int handshake_connect(int fd, const char *id, const char *user, const char *pass)
{
    struct mqtt_connect_opts co = {
        .version = MQTT_V311, .clean_start = true, .client_id = text(id)};
    if (user) {
        co.has_username = true;
        co.username = text(user);
        co.has_password = pass != NULL;
        co.password = text(pass);
    }
    uint8_t pkt[1024], body[64];
    size_t n = mqtt_connect_size(&co);
    if (!n || n > sizeof(pkt))
        return -EINVAL;
    int rc = mqc_write_full(fd, pkt, mqtt_connect_encode(pkt, &co));
    struct mqtt_frame f;
    struct mqtt_connack ca;
    if (rc == 0)
        rc = read_packet(fd, &f, body, sizeof(body));
    if (rc < 0)
        return rc;
    if (f.type != MQTT_CONNACK || mqtt_connack_decode(body, f.body_len, MQTT_V311, &ca) != MQTT_OK)
        return -EPROTO;
    return ca.code == MQTT_CONNACK_ACCEPTED ? 0 : -EACCES;
}

static int handshake_subscribe(int fd, const char *topic, uint8_t qos)
{
    struct mqtt_bytes filter = text(topic);
    uint8_t pkt[256], body[64];
    if (mqtt_subscribe_size(MQTT_V311, &filter, 1, false) > sizeof(pkt))
        return -EINVAL;
    size_t n = mqtt_subscribe_encode(pkt, MQTT_V311, 1, &filter, &qos, 1, false);
    int rc = mqc_write_full(fd, pkt, n);
    struct mqtt_frame f;
    struct mqtt_suback sa;
    if (rc == 0)
        rc = read_packet(fd, &f, body, sizeof(body));
    if (rc < 0)
        return rc;
    if (f.type != MQTT_SUBACK || mqtt_suback_decode(MQTT_SUBACK, body, f.body_len, MQTT_V311, &sa))
        return -EPROTO;
    return sa.codes.len == 1 && sa.codes.p[0] <= qos ? 0 : -EACCES;
}

int mqc_open(int port, const char *id, const char *user, const char *pass, int rcvbuf,
             const char *topic, uint8_t qos)
{
    int fd = tcp_connect(port, rcvbuf, rcvbuf == 0);
    if (fd < 0)
        return fd;
    int rc = handshake_connect(fd, id, user, pass);
    if (rc == 0 && topic)
        rc = handshake_subscribe(fd, topic, qos);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int mqc_flush(struct mqc_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EAGAIN ? 0 : -errno;
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

bool mqc_room(struct mqc_conn *c, size_t n)
{
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return MQC_OUT_CAP - c->out_len >= n;
}

int mqc_wait(struct mqc_conn *c, uint64_t timeout_ns)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (c->out_len > c->out_off)
        p.events |= POLLOUT;
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / NS_PER_S),
                          .tv_nsec = (long)(timeout_ns % NS_PER_S)};
    int n = ppoll(&p, 1, &ts, NULL);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (p.revents & POLLOUT) {
        int rc = mqc_flush(c);
        if (rc < 0)
            return rc;
    }
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
        return 0;
    if (c->in_len == MQC_IN_CAP)
        return -EMSGSIZE;
    ssize_t got = recv(c->fd, c->in + c->in_len, MQC_IN_CAP - c->in_len, MSG_DONTWAIT);
    if (got == 0)
        return -ECONNRESET;
    if (got < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    c->in_len += (size_t)got;
    return 0;
}

int mqc_parse(struct mqc_conn *c, mqc_packet_fn fn, void *ctx)
{
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && off < c->in_len) {
        struct mqtt_frame f;
        int d = mqtt_frame_decode(c->in + off, c->in_len - off, MQC_IN_CAP, &f);
        if (d == MQTT_INCOMPLETE || (d == MQTT_OK && f.total_len > c->in_len - off))
            break;
        if (d != MQTT_OK)
            return -EPROTO;
        rc = fn(ctx, c, &f, c->in + off + f.header_len);
        off += f.total_len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return rc;
}
