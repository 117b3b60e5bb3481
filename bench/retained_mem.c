/*
 * retained_mem: what one retained message costs a broker in resident
 * memory. Publishes N retained QoS 1 messages, each on its own topic of a
 * chosen shape, and reports the broker's VmRSS growth per message.
 *
 * Each topic is "<i>/" and one long level of 'x' up to --topic-bytes, or
 * with --levels L, "<i>/a/a/..." of L levels. One MQTT 3.1.1 connection,
 * blocking socket, loopback only. The second measurement follows a
 * SUBACK: ringmqd answers one only after every shard has handled what was
 * sent to it before, so every shard's replica holds the messages by then.
 * Over a limit a 3.1.1 retained PUBLISH is delivered but not retained,
 * silently: ask the broker how many it holds (SIGUSR1's status line, as
 * bench/retained_mem.sh does).
 *
 *   retained_mem -p PORT --broker-pid PID [-n 1000] [--topic-bytes 61440]
 *                [--levels L] [--payload 1]
 */
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n, int timeout_ms)
{
    while (n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, timeout_ms) != 1)
            return -1;
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One packet: its first byte in *type, its body in body (cap bytes at
 * most) and its length in *len. -1 on close, timeout or a larger body. */
static int read_packet(int fd, uint8_t *type, uint8_t *body, size_t cap, size_t *len,
                       int timeout_ms)
{
    uint8_t b;
    if (read_all(fd, type, 1, timeout_ms) < 0)
        return -1;
    size_t n = 0;
    for (int shift = 0; shift < 28; shift += 7) {
        if (read_all(fd, &b, 1, timeout_ms) < 0)
            return -1;
        n |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    *len = n;
    return n <= cap ? read_all(fd, body, n, timeout_ms) : -1;
}

/* Fixed header `first` and the body into out; returns the length. */
static size_t frame(uint8_t *out, uint8_t first, const uint8_t *body, size_t len)
{
    size_t i = 0;
    out[i++] = first;
    size_t n = len;
    do {
        uint8_t d = n & 0x7f;
        n >>= 7;
        out[i++] = (uint8_t)(d | (n ? 0x80 : 0));
    } while (n);
    memcpy(out + i, body, len);
    return i + len;
}

static int connect_broker(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    static const uint8_t body[] = {0, 4, 'M', 'Q', 'T', 'T', 4,   0x02,
                                   0, 0, 0,   4,   'r', 'm', 'e', 'm'};
    uint8_t pkt[64], type, ack[8];
    size_t len;
    if (write_all(fd, pkt, frame(pkt, 0x10, body, sizeof(body))) < 0 ||
        read_packet(fd, &type, ack, sizeof(ack), &len, 5000) < 0 || type != 0x20 || len != 2 ||
        ack[1] != 0) {
        fprintf(stderr, "no CONNACK 0\n");
        exit(1);
    }
    return fd;
}

/* Topic i: "<i>/" then one long level of 'x', or levels of "a". */
static size_t make_topic(uint8_t *t, int i, size_t bytes, int levels)
{
    size_t n = (size_t)snprintf((char *)t, 32, "%d", i);
    if (levels > 1) {
        for (int l = 1; l < levels; l++) {
            t[n++] = '/';
            t[n++] = 'a';
        }
        return n;
    }
    if (n < bytes)
        t[n++] = '/';
    while (n < bytes)
        t[n++] = 'x';
    return n;
}

int main(int argc, char **argv)
{
    int port = 1883, n = 1000, pid = 0, levels = 0, payload = 1;
    size_t bytes = 61440;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "-p"))
            port = atoi(v);
        else if (!strcmp(a, "-n"))
            n = atoi(v);
        else if (!strcmp(a, "--broker-pid"))
            pid = atoi(v);
        else if (!strcmp(a, "--topic-bytes"))
            bytes = (size_t)atol(v);
        else if (!strcmp(a, "--levels"))
            levels = atoi(v);
        else if (!strcmp(a, "--payload"))
            payload = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (!pid || n < 1 || bytes > 65000 || levels > 30000 || payload < 1 || payload > 4096) {
        fprintf(stderr, "usage: retained_mem -p PORT --broker-pid PID [-n N] [--topic-bytes B] "
                        "[--levels L] [--payload P]\n");
        return 2;
    }
    static uint8_t topic[65536], body[70000], pkt[70016], in[16];
    int fd = connect_broker(port);
    long before = proc_rss_kib(pid);
    size_t tlen = 0;
    for (int i = 0; i < n; i++) {
        tlen = make_topic(topic, i, bytes, levels);
        uint16_t mid = (uint16_t)(i % 65535 + 1);
        size_t k = 0;
        body[k++] = (uint8_t)(tlen >> 8);
        body[k++] = (uint8_t)tlen;
        memcpy(body + k, topic, tlen);
        k += tlen;
        body[k++] = (uint8_t)(mid >> 8);
        body[k++] = (uint8_t)mid;
        memset(body + k, 'p', (size_t)payload);
        k += (size_t)payload;
        uint8_t type;
        size_t len;
        if (write_all(fd, pkt, frame(pkt, 0x33, body, k)) < 0 ||
            read_packet(fd, &type, in, sizeof(in), &len, 5000) < 0 || type != 0x40) {
            fprintf(stderr, "message %d: no PUBACK (closed?)\n", i);
            return 1;
        }
    }
    /* The barrier: a SUBACK comes once every shard has caught up. */
    static const uint8_t none[] = {0, 1, 0, 5, 'n', 'o', 'n', 'e', '/', 0};
    uint8_t type;
    size_t len;
    if (write_all(fd, pkt, frame(pkt, 0x82, none, sizeof(none))) < 0 ||
        read_packet(fd, &type, in, sizeof(in), &len, 5000) < 0 || type != 0x90) {
        fprintf(stderr, "no SUBACK\n");
        return 1;
    }
    long after = proc_rss_kib(pid);
    printf("%d retained messages, topic %zu bytes in %d levels, payload %d bytes\n", n, tlen,
           levels > 1 ? levels : 2, payload);
    printf("broker RSS: %ld KiB before, %ld KiB after, %.0f bytes per message\n", before, after,
           (after - before) * 1024.0 / n);
    close(fd);
    return 0;
}
