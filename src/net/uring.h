/*
 * uring: io_uring set-up for one shard: the ring itself (with the best
 * flags the kernel accepts), its sparse fixed-file table, a provided-buffer
 * ring for multishot receives, and SO_REUSEPORT listening sockets.
 *
 * Everything here runs at start-up or shutdown; nothing is on the hot path
 * except the inline buffer recycling.
 */
#ifndef RINGMQ_NET_URING_H
#define RINGMQ_NET_URING_H

#include <liburing.h>
#include <stdint.h>

/*
 * Initialise `ring` with `entries` SQ entries, trying SINGLE_ISSUER +
 * DEFER_TASKRUN, then COOP_TASKRUN, then no flags; then register a sparse
 * table of `nfiles` fixed files. *mode names what was chosen (static string).
 * Must be called on the thread that will submit. Returns 0 or -errno.
 */
int uring_init(struct io_uring *ring, unsigned entries, unsigned nfiles, const char **mode);

/* A provided-buffer ring: `count` buffers of `size` bytes, group `bgid`. */
struct bufring {
    struct io_uring_buf_ring *br;
    uint8_t *base;
    uint32_t count;
    uint32_t size;
    uint16_t bgid;
    uint16_t pending; /* recycled since the last publish */
};

/* Map and register the ring (liburing 2.3 has no io_uring_setup_buf_ring)
 * and give it every buffer. count must be a power of two. 0 or -errno. */
int bufring_init(struct bufring *b, struct io_uring *ring, uint16_t bgid, uint32_t count,
                 uint32_t size);

/* Unregister and unmap. Safe on a zeroed struct. */
void bufring_fini(struct bufring *b, struct io_uring *ring);

static inline uint8_t *bufring_buf(const struct bufring *b, uint16_t bid)
{
    return b->base + (size_t)bid * b->size;
}

/* Give buffer `bid` back to the kernel (visible after bufring_publish). */
static inline void bufring_recycle(struct bufring *b, uint16_t bid)
{
    io_uring_buf_ring_add(b->br, bufring_buf(b, bid), b->size, bid,
                          io_uring_buf_ring_mask(b->count), b->pending);
    b->pending++;
}

/* Publish recycled buffers to the kernel (one store). */
static inline void bufring_publish(struct bufring *b)
{
    if (b->pending) {
        io_uring_buf_ring_advance(b->br, b->pending);
        b->pending = 0;
    }
}

/*
 * Open a TCP listening socket on `addr` (IPv4 or IPv6 literal) and `port`,
 * with SO_REUSEPORT (so each shard has its own), SO_REUSEADDR, TCP_NODELAY
 * and, when sndbuf > 0, SO_SNDBUF (both inherited by accepted sockets: our
 * sends are batched; sndbuf bounds what the kernel holds per connection).
 * *bound_port receives the port actually bound (for port 0).
 * Returns the fd or -errno.
 */
int listener_open(const char *addr, uint16_t port, int backlog, int sndbuf, uint16_t *bound_port);

/*
 * Check that no socket listens on `addr`:`port` yet (port > 0): bind a plain
 * socket there with SO_REUSEADDR but not SO_REUSEPORT, and close it. The
 * listeners' own SO_REUSEPORT would let a second broker of the same user join
 * the first's group and take a share of its connections without an error.
 * Returns 0, or -errno (-EADDRINUSE when something listens there).
 */
int listener_probe(const char *addr, uint16_t port);

/* True when addr (a literal) is a loopback address. */
int addr_is_loopback(const char *addr);

#endif
