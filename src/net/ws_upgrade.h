/*
 * ws_upgrade: the HTTP/1.1 Upgrade request that opens a WebSocket
 * (RFC 6455 section 4.2), read with Debian's http-parser (nodejs
 * http_parser 2.9, a push parser: bytes may arrive in any pieces), and the
 * answer to it: 101 with the accept key (SHA-1 and base64 from wolfCrypt),
 * or an error status.
 *
 * The request is held only while it is read (at most WS_UPGRADE_MAX
 * bytes, the whole header block); the caller frees it once answered. No
 * I/O, no logging: the transport (ws.c) writes the answer.
 */
#ifndef RINGMQ_NET_WS_UPGRADE_H
#define RINGMQ_NET_WS_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

/* The largest header block read (request line included): beyond, 431. */
#define WS_UPGRADE_MAX 8192u

/* Room for any answer ws_upgrade_answer writes. */
#define WS_UPGRADE_ANSWER_MAX 256u

/* What a listener accepts (borrowed from its configuration). */
struct ws_upgrade_policy {
    const char *path;    /* the request's path must be this ("/mqtt") */
    const char *origins; /* comma list of allowed Origin values; "": any */
};

struct ws_upgrade; /* the request being read (opaque) */

enum {
    WS_UPGRADE_MORE = 0, /* the header block is not complete yet */
    WS_UPGRADE_DONE = 1, /* it is: answer it */
};

/*
 * Read `len` more bytes of the request into *u (created on first use,
 * grown as needed: *u may move). WS_UPGRADE_MORE; WS_UPGRADE_DONE with
 * *used set to the bytes of this call's data that belong to the request
 * (what follows is WebSocket frames); or an HTTP error status (400, 431)
 * to answer with ws_upgrade_error, or -ENOMEM.
 */
int ws_upgrade_feed(struct ws_upgrade **u, const uint8_t *data, size_t len, size_t *used);

/*
 * Check a complete request against the policy and write the answer to out
 * (WS_UPGRADE_ANSWER_MAX bytes), its length to *outlen. Returns 101 (the
 * connection is a WebSocket now) or the error status written (400, 403,
 * 404, 405, 426), after which the connection is closed.
 */
int ws_upgrade_answer(const struct ws_upgrade *u, const struct ws_upgrade_policy *p, char *out,
                      size_t *outlen);

/* Write the answer for error `status` (with Connection: close) to out
 * (WS_UPGRADE_ANSWER_MAX bytes); its length. */
size_t ws_upgrade_error(int status, char *out);

/* Free the request (NULL: nothing). */
void ws_upgrade_destroy(struct ws_upgrade *u);

/* The Sec-WebSocket-Accept value for a 24-character key: 28 characters
 * and a terminator written to out. 0 or -EINVAL. */
int ws_accept_key(const char *key, size_t keylen, char out[29]);

#endif
