/* End-to-end test harness: starts a real broker (ringmqd, or Debian's mosquitto as
 * a reference) on an ephemeral loopback port, and drives it with two kinds of
 * client: synchronous wrappers over libmosquitto for well-behaved traffic, and raw
 * sockets with a tiny packet builder for exact bytes and bad input.
 *
 * Every wait is bounded (condition variables or poll with a deadline); nothing
 * sleeps and hopes. Failures are reported through Criterion asserts, so these
 * functions are for use inside Criterion tests only (the test's own process). */
#ifndef RINGMQ_E2E_HARNESS_H
#define RINGMQ_E2E_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Default bound for "this must happen" waits (a message, an ack, a close). */
#define E2E_WAIT_MS 5000
/* Window used only where a test must show that something does NOT happen. */
#define E2E_ABSENT_MS 300

/* ---- broker ---------------------------------------------------------------- */

struct broker {
    pid_t pid;      /* 0 when not running */
    int port;       /* loopback TCP port the broker listens on */
    bool mosquitto; /* reference broker instead of ringmqd */
    char dir[64];   /* private temp dir: broker.log (stderr+stdout), mosquitto.conf */
};

/* Starts the broker chosen by RINGMQ_E2E_BROKER ("ringmqd", the default, or
 * "mosquitto") with the extra settings given as "section.key=value" strings,
 * NULL-terminated. Returns once it accepts connections; fails the test otherwise
 * (the broker's log is printed). */
void broker_start(struct broker *b, ...) __attribute__((sentinel));

/* SIGTERMs the broker and waits (bounded) for it. A non-zero exit status or death
 * by a signal fails the test, with the broker's log printed: under ASan this is how
 * a leak in the broker becomes a test failure. */
void broker_stop(struct broker *b);

/* SIGKILLs the broker (a crash: nothing flushed, no shutdown) and reaps it;
 * never fails the test. Removes b->dir as broker_stop does; a data directory
 * the broker was given (persistence.dir) stays for the next start. */
void broker_kill(struct broker *b);

/* A data directory for a broker that outlives its starts (persistence.dir
 * lives outside b->dir, which a stop removes): mkdtemp under /tmp into out
 * (cap >= 64). e2e_data_dir_remove deletes it and everything under it;
 * an empty string is a no-op, and out is emptied. */
void e2e_data_dir_create(char *out, size_t cap);
void e2e_data_dir_remove(char *dir);

/* Lines of the broker's log containing needle. */
int broker_log_count(const struct broker *b, const char *needle);
/* Waits (bounded) until the log has at least count such lines; fails the test
 * otherwise. For what the broker only reports in its log (a reload). */
void broker_wait_log(const struct broker *b, const char *needle, int count);
/* The port of the broker's nth listener (1: the first "listening on" line
 * of its log, in file order), waiting (bounded) for it. ringmqd only. */
int broker_listener_port(const struct broker *b, int nth);

/* b as a client of its listener on `port` sees it (the same broker). */
struct broker broker_on_port(const struct broker *b, int port);

/* Whether 127.0.0.1:port takes a TCP connection now (something listens). */
bool port_accepts(int port);

/* Whether 127.0.0.1:port refuses connections within E2E_WAIT_MS: a listener
 * removed by a reload closes on each shard's next tick. */
bool port_refuses_soon(int port);

/* Write $RINGMQ_CONF's text with `tail` appended (sections of its own, as
 * "[listener.x]\nport = 0\n") to path[cap], a mkstemp file made on the
 * first call (path[0] empty): a configuration a test rewrites before a
 * reload. The caller unlinks it. */
void e2e_conf_write(char *path, size_t cap, const char *tail);

/* The metrics listener's port, from "metrics on http://127.0.0.1:PORT/metrics"
 * in the log (start the broker with metrics.enabled=true, metrics.port=0). */
int broker_metrics_port(const struct broker *b);
/* The admin API's port, from "admin API on http[s]://127.0.0.1:PORT/" in
 * the log, waiting (bounded) for that line (start the broker with
 * admin.enabled=true, admin.port=0). */
int broker_admin_port(const struct broker *b, bool https);
/* GET /metrics over loopback; asserts 200 and returns the malloc'd response. */
char *metrics_scrape(int port);
/* The value of the sample whose line starts with `prefix` (labels included,
 * up to the space before the value), or -1 when there is none. */
long metrics_sample(const char *body, const char *prefix);

/* The broker's resident memory in KiB (VmRSS of /proc/PID/status). */
long broker_rss_kib(const struct broker *b);

/* Criterion suite .fini: kills (SIGKILL) any broker a failed test left running. */
void e2e_fini(void);

/* ---- libmosquitto clients ----------------------------------------------------- */

struct client;

struct client_opts {
    const char *id; /* NULL: a random id (only with clean = true) */
    bool clean;
    int keepalive;           /* seconds; 0 -> 60 */
    int protocol;            /* MQTT_PROTOCOL_V31, _V311 or _V5; 0 -> 3.1.1 */
    uint32_t session_expiry; /* 5.0: Session Expiry Interval in CONNECT (s); 0: none */
    const char *will_topic;
    const char *will_payload;
    int will_qos;
    bool will_retain;
    const char *username;
    const char *password;
    /* TLS (a broker listener with transport = tls): the CA file to verify
     * the broker with turns it on; a client certificate and key (PEM) are
     * optional; tls_version ("tlsv1.2", "tlsv1.3"; NULL: any: libmosquitto
     * reads it as a minimum) and ALPN (NULL: none offered); tls_ssl_ctx an
     * OpenSSL SSL_CTX the client starts from (libmosquitto takes it and
     * adds the above, but cannot verify the broker then; NULL: its own). */
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    const char *tls_version;
    const char *tls_alpn;
    void *tls_ssl_ctx;
};

/* A received message (owned by the caller; free with msg_free). */
struct msg {
    char *topic;
    uint8_t *payload;
    int len;
    int qos;
    bool retain;
    /* 5.0: the PUBLISH's properties as libmosquitto decoded them (a copy,
     * read with mosquitto_property_read_*, freed by msg_free); NULL: none
     * (and always for 3.1/3.1.1). */
    struct mqtt5__property *props;
};

/* Connects; returns the CONNACK return code (0 accepted, 1..5 refused), or -errno
 * when the connection failed or closed without CONNACK (-ETIMEDOUT on no answer).
 * *out gets the client in every case; destroy it with client_destroy. */
int client_connect_rc(const struct broker *b, const struct client_opts *o, struct client **out);
/* Connects and asserts CONNACK 0. */
struct client *client_connect(const struct broker *b, const struct client_opts *o);
/* Shorthand: 3.1.1, keepalive 60, no will. */
struct client *client_open(const struct broker *b, const char *id, bool clean);
/* Session present flag of the CONNACK. */
bool client_session_present(struct client *c);

/* SUBSCRIBE one filter, wait for SUBACK; returns the granted QoS (or 0x80). */
int client_subscribe(struct client *c, const char *filter, int qos);
/* SUBSCRIBE n filters in one packet (same requested QoS); fills granted[n]. */
void client_subscribe_many(struct client *c, int n, const char *const *filters, int qos,
                           int *granted);
/* UNSUBSCRIBE, wait for UNSUBACK. */
void client_unsubscribe(struct client *c, const char *filter);

/* PUBLISH and wait until the flow completes (QoS 0: written; 1: PUBACK; 2: PUBCOMP). */
void client_publish(struct client *c, const char *topic, const void *payload, int len, int qos,
                    bool retain);
/* PUBLISH without waiting; client_wait_published waits until `count` publishes
 * of this client have completed in total. */
void client_publish_async(struct client *c, const char *topic, const void *payload, int len,
                          int qos, bool retain);
void client_wait_published(struct client *c, int count);

/* Next received message; 0, or -ETIMEDOUT after timeout_ms. */
int client_wait_message(struct client *c, struct msg *m, int timeout_ms);
/* Waits for a message and asserts its topic and payload (a string); returns its QoS
 * and retain flag through the optional pointers. */
void client_expect_message(struct client *c, const char *topic, const char *payload, int *qos,
                           bool *retain);
/* True when no message arrives within ms (use only to show absence). */
bool client_no_message(struct client *c, int ms);
/* Waits until the broker has closed this client's connection; 0 or -ETIMEDOUT. */
int client_wait_closed(struct client *c, int timeout_ms);
/* A 5.0 client (protocol MQTT_PROTOCOL_V5): waits until libmosquitto's 5.0
 * disconnect callback ran and returns its reason code (the broker's
 * DISCONNECT reason, or libmosquitto's error for a bare close), or
 * -ETIMEDOUT. */
int client_wait_v5_disconnect(struct client *c, int timeout_ms);

/* Sends DISCONNECT, waits for the close, frees the client. */
void client_disconnect(struct client *c);
/* Closes the socket without DISCONNECT (an unclean close) and frees the client. */
void client_destroy(struct client *c);
void msg_free(struct msg *m);

/* ---- raw sockets and packet builder --------------------------------------- */

/* A packet under construction: first byte, then the variable header and payload. */
struct pkt {
    uint8_t first;
    size_t len;
    uint8_t body[70000];
};

void pkt_init(struct pkt *p, uint8_t first);
void pkt_u8(struct pkt *p, uint8_t v);
void pkt_u16(struct pkt *p, uint16_t v);
/* A length-prefixed string / binary field. */
void pkt_str(struct pkt *p, const char *s);
void pkt_bin(struct pkt *p, const void *data, size_t len);
/* Bytes without a length prefix. */
void pkt_raw(struct pkt *p, const void *data, size_t len);
/* Encodes fixed header + body into out (cap >= p->len + 5); returns the length. */
size_t pkt_encode(const struct pkt *p, uint8_t *out);

/* CONNECT fields for raw clients. flags < 0: computed from the fields below. */
struct raw_connect {
    const char *proto_name; /* NULL -> "MQTT" */
    int level;              /* 0 -> 4 */
    int flags;              /* < 0 computed; otherwise sent as is */
    bool clean;
    int keepalive;
    const char *id; /* NULL -> "" */
    const char *will_topic;
    const char *will_payload;
    int will_qos;
    bool will_retain;
    const char *username;
    const char *password;
};
void pkt_connect(struct pkt *p, const struct raw_connect *o);
void pkt_publish(struct pkt *p, const char *topic, const void *payload, size_t len, int qos,
                 bool retain, bool dup, uint16_t mid);
void pkt_subscribe(struct pkt *p, uint16_t mid, const char *filter, int qos);
/* PUBACK/PUBREC/PUBREL/PUBCOMP style: first byte + packet id. */
void pkt_ack(struct pkt *p, uint8_t first, uint16_t mid);

/* TCP connection to the broker (TCP_NODELAY on); asserts success. */
int raw_open(const struct broker *b);
/* Sends all bytes; 0 or -errno (never raises SIGPIPE). */
int raw_send(int fd, const void *buf, size_t len);
int raw_send_pkt(int fd, const struct pkt *p);
/* Reads exactly one MQTT packet into buf (fixed header included). Returns its
 * length, 0 when the peer closed, -ETIMEDOUT, -EMSGSIZE, or -errno. */
int raw_read_packet(int fd, uint8_t *buf, size_t cap, int timeout_ms);
/* Reads and discards until the peer closes; 0 when closed, -ETIMEDOUT. */
int raw_wait_close(int fd, int timeout_ms);
/* Connect + CONNECT + CONNACK. Returns the fd; *rc and *session_present get the
 * CONNACK fields (the test fails if no CONNACK arrives). */
int raw_mqtt_connect(const struct broker *b, const struct raw_connect *o, int *rc,
                     bool *session_present);
/* Like raw_mqtt_connect but asserts CONNACK 0. */
int raw_mqtt_open(const struct broker *b, const struct raw_connect *o);
/* SUBSCRIBE one filter and assert the SUBACK grants `qos`. */
void raw_subscribe(int fd, uint16_t mid, const char *filter, int qos);

/* A received PUBLISH, decoded. */
struct raw_publish {
    int qos;
    bool dup;
    bool retain;
    uint16_t mid;
    char topic[256];
    uint8_t payload[4097]; /* NUL-terminated for convenience */
    size_t len;
};
/* Reads one packet, asserts it is a PUBLISH, decodes it. */
void raw_expect_publish(int fd, struct raw_publish *out);
/* Reads one packet and asserts it equals the 4 bytes first, 2, mid. */
void raw_expect_ack(int fd, uint8_t first, uint16_t mid);

#endif
