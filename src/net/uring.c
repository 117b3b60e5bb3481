/*
 * uring: ring, fixed-file table, provided buffers and listening sockets for
 * one shard. Called by the shard's own thread at start-up and shutdown.
 */
#include "net/uring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

int uring_init(struct io_uring *ring, unsigned entries, unsigned nfiles, const char **mode)
{
    static const struct {
        unsigned flags;
        const char *name;
    } tries[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single-issuer+defer-taskrun"},
        {IORING_SETUP_COOP_TASKRUN, "coop-taskrun"},
        {0, "plain"},
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = tries[i].flags | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4;
        ret = io_uring_queue_init_params(entries, ring, &p);
        if (ret == -EINVAL) {
            /* SUBMIT_ALL (5.18) may be what the kernel lacks: try without. */
            p.flags &= ~IORING_SETUP_SUBMIT_ALL;
            ret = io_uring_queue_init_params(entries, ring, &p);
        }
        if (ret == 0) {
            *mode = tries[i].name;
            break;
        }
    }
    if (ret < 0)
        return ret;
    ret = io_uring_register_files_sparse(ring, nfiles);
    if (ret < 0) {
        io_uring_queue_exit(ring);
        return ret;
    }
    return 0;
}

int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid, uint32_t count,
                 uint32_t size)
{
    memset(b, 0, sizeof(*b));
    if (count == 0 || (count & (count - 1)) != 0 || count > 32768)
        return -EINVAL;
    size_t ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    uint8_t *base = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (base == MAP_FAILED) {
        int err = -errno;
        munmap(mem, ring_bytes);
        return err;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)mem;
    reg.ring_entries = count;
    reg.bgid = bgid;
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        munmap(base, (size_t)count * size);
        munmap(mem, ring_bytes);
        return ret;
    }
    b->br = mem;
    b->base = base;
    b->count = count;
    b->size = size;
    b->bgid = bgid;
    io_uring_buf_ring_init(b->br);
    for (uint32_t i = 0; i < count; i++)
        bufring_recycle(b, (uint16_t)i);
    bufring_publish(b);
    return 0;
}

void bufring_fini(struct bufring *b, struct io_uring *ring)
{
    if (!b->br)
        return;
    io_uring_unregister_buf_ring(ring, b->bgid);
    munmap(b->base, (size_t)b->count * b->size);
    munmap(b->br, (size_t)b->count * sizeof(struct io_uring_buf));
    memset(b, 0, sizeof(*b));
}

int addr_is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

/* Fill ss from an IPv4 or IPv6 literal; returns its length or 0. */
static socklen_t listener_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        return sizeof(*s4);
    }
    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        return sizeof(*s6);
    }
    return 0;
}

int listener_probe(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t slen = listener_addr(addr, port, &ss);
    if (slen == 0)
        return -EINVAL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, ret = 0;
    /* SO_REUSEADDR: connections of a previous run in TIME_WAIT are no
     * conflict; a listening socket still is. V6ONLY as the listener has it. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (struct sockaddr *)&ss, slen) < 0)
        ret = -errno;
    close(fd);
    return ret;
}

int listener_open(const char *addr, uint16_t port, int backlog, int sndbuf, uint16_t *bound_port)
{
    struct sockaddr_storage ss;
    socklen_t slen = listener_addr(addr, port, &ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (slen == 0)
        return -EINVAL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        goto fail;
    if (ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, backlog) < 0)
        goto fail;
    slen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) < 0)
        goto fail;
    *bound_port = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}
