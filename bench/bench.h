/*
 * bench: the shared state of one ringmq-bench run: options, the run control
 * block main and the worker threads share, and each worker's statistics.
 *
 * Ownership: main fills `struct bench_opts` and `struct run` before starting
 * the workers and only changes the run's atomics afterwards. A worker owns
 * its `struct worker` (ring, connections, statistics); main reads the
 * progress atomics while it runs and everything else after joining it.
 */
#ifndef RINGMQ_BENCH_BENCH_H
#define RINGMQ_BENCH_BENCH_H

#include "hist.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum scenario {
    SC_CONN = 0,
    SC_P2P,
    SC_FANOUT,
    SC_FANIN,
    SC_HANDSHAKE, /* connections opened, connected (CONNACK) and closed in a loop */
};

#define BENCH_MAX_QOS_LIST 8

struct bench_opts {
    enum scenario scenario;
    const char *host;
    uint16_t port;
    bool allow_remote;
    unsigned threads;
    uint32_t pubs, subs;             /* p2p: pubs == subs */
    uint32_t conns;                  /* conn scenario */
    uint8_t qos[BENCH_MAX_QOS_LIST]; /* publisher i uses qos[i % nqos] */
    unsigned nqos;
    uint8_t sub_qos; /* requested by subscribers (default: the highest of qos) */
    uint32_t payload;
    double rate; /* per publisher, msg/s; 0 = unlimited */
    uint32_t window;
    double duration, warmup, drain, connect_timeout; /* seconds */
    uint64_t count;                                  /* per publisher, 0 = no limit */
    bool clean;
    uint8_t version; /* MQTT_V311 or MQTT_V5 */
    uint16_t keepalive;
    const char *prefix;
    const char *username, *password;
    const char *id_prefix;
    bool shared;
    const char *group;
    double conn_rate; /* conn scenario: connections per second, 0 = as fast as possible */
    unsigned sources; /* loopback source addresses 127.0.0.2.. (0 = automatic) */
    int broker_pid;
    const char *json;
    bool quiet;
    /* Transport (xport.h): TLS, WebSocket on ws_path, or both. */
    bool tls, tls_resume;
    const char *cafile, *cert, *key, *ws_path;
};

enum phase {
    PH_CONNECT = 0, /* opening connections, subscribing */
    PH_RUN,         /* publishing (warm-up, then measurement) or holding idle */
    PH_DRAIN,       /* publishers stopped; waiting for what is in flight */
    PH_STOP,        /* disconnect and leave */
};

struct xport_ctx;

struct run {
    const struct bench_opts *o;
    struct xport_ctx *xp; /* NULL: plain TCP; read-only while workers run */
    struct sockaddr_storage target;
    socklen_t target_len;
    bool bind_sources;
    unsigned sources;
    uint16_t tag;   /* stamp run tag */
    uint64_t epoch; /* CLOCK_MONOTONIC ns; stamps and times below are relative to it */
    uint32_t npub, nsub;
    uint64_t fan;         /* deliveries expected per published message */
    uint64_t interval_ns; /* per publisher; 0 = unlimited */
    /* Per publisher: deliveries of its messages counted so far by every
     * receiver (first arrivals only). Unlimited runs keep at most `window`
     * messages per publisher between send and the last subscriber's
     * receipt, so that no broker queue overflows because of the generator. */
    _Atomic uint64_t *delivered;
    /* Set by main before it stores PH_RUN (release); read after (acquire). */
    uint64_t t_start, t_measure, t_end;
    _Atomic int phase;
};

/* Statistics of one worker, merged by main. Message counts are by the QoS
 * of delivery and include only messages sent inside the measurement window. */
struct wstats {
    struct hist lat;     /* receive time - send time */
    struct hist lat_co;  /* receive time - intended send time (fixed rates only) */
    struct hist connack; /* CONNACK time - socket creation */
    uint64_t sent[3], recv[3], dup[3], ooo[3], old[3];
    uint64_t sent_all, recv_all; /* warm-up and drain included */
    uint64_t foreign;            /* payloads without this run's stamp */
    uint64_t wrong_qos;          /* delivered at another QoS than expected */
    uint64_t conn_failed, refused, closed, proto_err, ack_err;
    uint64_t conns_up;
    uint64_t written_off;             /* window credits given up after a stall (losses) */
    uint64_t first_up_ns, last_up_ns; /* first and last CONNACK */
    /* handshake scenario: connections up (CONNACK) inside the window, and
     * how many of them resumed a TLS session */
    uint64_t handshakes, resumed;
};

struct bconn;

struct worker {
    unsigned id;
    struct run *run;
    struct bconn *conns;
    uint32_t nconns;
    struct wstats st;
    const char *ring_mode;
    int rc; /* 0, or -errno when the worker could not start */
    pthread_t thread;
    /* Progress, written by the worker once per loop turn, read by main. */
    _Atomic uint64_t p_sent, p_recv, p_up, p_err, p_inflight, p_delivered;
    _Atomic uint64_t p_expected;
    _Atomic bool p_ready, p_drained, p_done;
    void *priv; /* engine state */
};

/* Give worker w (id, run set) its share of the connections: global
 * connection k goes to worker k % threads; publishers come first, then
 * subscribers. 0 or -ENOMEM. engine_release frees them (after the join). */
int engine_assign(struct worker *w);
void engine_release(struct worker *w);

/* Worker thread body (engine.c). arg: struct worker *. */
void *engine_worker_main(void *arg);

/* Nanoseconds since the run's epoch. */
uint64_t bench_now(const struct run *r);

#endif
