/*
 * ws_upgrade: the WebSocket opening handshake, server side (RFC 6455
 * 4.2.1, 4.2.2; MQTT 5.0 section 6). http_parser tokenizes the request;
 * its callbacks record where each header's name and value lie in the
 * request's own buffer, and each header is judged once complete. Runs on
 * the shard that owns the connection; keeps nothing after the answer.
 */
#include "net/ws_upgrade.h"

#include <errno.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>

#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/sha.h>

/* Where a piece of the request lies in buf. */
struct span {
    uint16_t off, len;
};

struct ws_upgrade {
    http_parser parser;
    uint32_t len, cap; /* bytes in buf, its size */
    struct span url, field, value;
    struct span key, version, origin;
    bool in_value;     /* the current header's value is being read */
    bool done;         /* the header block ended */
    bool upgrade_ws;   /* Upgrade: names websocket */
    bool conn_upgrade; /* Connection: names upgrade */
    bool proto_mqtt;   /* Sec-WebSocket-Protocol: offers mqtt */
    bool proto_mqtt31; /* ... or mqttv3.1 (MQTT 3.1 clients) */
    bool duplicate;    /* a header that must appear once appeared twice */
    uint8_t buf[];
};

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static struct ws_upgrade *of(http_parser *p)
{
    return (struct ws_upgrade *)p; /* the parser is its first member */
}

static bool span_is(const struct ws_upgrade *u, struct span s, const char *name)
{
    return strlen(name) == s.len && strncasecmp((const char *)u->buf + s.off, name, s.len) == 0;
}

/* Whether the comma list in span s holds token `tok` (case-insensitive
 * when `nocase`: Connection and Upgrade tokens are; subprotocol names are
 * not, RFC 6455 4.1). */
static bool list_has(const struct ws_upgrade *u, struct span s, const char *tok, bool nocase)
{
    const char *p = (const char *)u->buf + s.off, *end = p + s.len;
    size_t tl = strlen(tok);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *t = p;
        while (p < end && *p != ',')
            p++;
        const char *te = p;
        while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - t) == tl &&
            (nocase ? strncasecmp(t, tok, tl) == 0 : strncmp(t, tok, tl) == 0))
            return true;
    }
    return false;
}

/* A header that must appear at most once: its value, or `duplicate`. */
static void once(struct ws_upgrade *u, struct span *slot)
{
    if (slot->len || slot->off)
        u->duplicate = true;
    *slot = u->value;
}

/* The current header is complete: keep what the answer needs. */
static void header_done(struct ws_upgrade *u)
{
    struct span v = u->value;
    if (span_is(u, u->field, "upgrade"))
        u->upgrade_ws |= list_has(u, v, "websocket", true);
    else if (span_is(u, u->field, "connection"))
        u->conn_upgrade |= list_has(u, v, "upgrade", true);
    else if (span_is(u, u->field, "sec-websocket-protocol")) {
        u->proto_mqtt |= list_has(u, v, "mqtt", false);
        u->proto_mqtt31 |= list_has(u, v, "mqttv3.1", false);
    } else if (span_is(u, u->field, "sec-websocket-key"))
        once(u, &u->key);
    else if (span_is(u, u->field, "sec-websocket-version"))
        once(u, &u->version);
    else if (span_is(u, u->field, "origin"))
        once(u, &u->origin);
    u->field = u->value = (struct span){0, 0};
    u->in_value = false;
}

static uint16_t off_in(struct ws_upgrade *u, const char *at)
{
    return (uint16_t)((const uint8_t *)at - u->buf);
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct ws_upgrade *u = of(p);
    if (!u->url.len)
        u->url.off = off_in(u, at);
    u->url.len = (uint16_t)(u->url.len + n);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    struct ws_upgrade *u = of(p);
    /* A name after a value starts a new header (http_parser calls
     * on_header_value for an empty value too, with 0 bytes). */
    if (u->in_value)
        header_done(u);
    if (!u->field.len)
        u->field.off = off_in(u, at);
    u->field.len = (uint16_t)(u->field.len + n);
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    struct ws_upgrade *u = of(p);
    if (!u->in_value) {
        u->value = (struct span){off_in(u, at), 0};
        u->in_value = true;
    }
    u->value.len = (uint16_t)(u->value.len + n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct ws_upgrade *u = of(p);
    if (u->in_value)
        header_done(u);
    u->done = true;
    return 2; /* no body: what follows is another protocol (http_parser.h) */
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

/* Room for `more` bytes in *u (created on first use). */
static int grow(struct ws_upgrade **u, size_t more)
{
    struct ws_upgrade *w = *u;
    size_t have = w ? w->len : 0, cap = w ? w->cap : 0;
    if (have + more <= cap)
        return 0;
    size_t ncap = cap ? cap : 1024;
    while (ncap < have + more && ncap < WS_UPGRADE_MAX)
        ncap *= 2;
    if (ncap > WS_UPGRADE_MAX)
        ncap = WS_UPGRADE_MAX;
    struct ws_upgrade *nw = realloc(w, sizeof(*nw) + ncap);
    if (!nw)
        return -ENOMEM;
    if (!w) {
        memset(nw, 0, sizeof(*nw));
        http_parser_init(&nw->parser, HTTP_REQUEST);
    }
    nw->cap = (uint32_t)ncap;
    *u = nw;
    return 0;
}

int ws_upgrade_feed(struct ws_upgrade **u, const uint8_t *data, size_t len, size_t *used)
{
    size_t room = WS_UPGRADE_MAX - (*u ? (*u)->len : 0);
    size_t take = len < room ? len : room;
    if (grow(u, take) < 0)
        return -ENOMEM;
    struct ws_upgrade *w = *u;
    memcpy(w->buf + w->len, data, take);
    size_t n = http_parser_execute(&w->parser, &settings, (const char *)w->buf + w->len, take);
    w->len += (uint32_t)take;
    if (w->done) {
        *used = n;
        return WS_UPGRADE_DONE;
    }
    if (HTTP_PARSER_ERRNO(&w->parser) != HPE_OK || n != take)
        return 400;
    return take < len || w->len == WS_UPGRADE_MAX ? 431 : WS_UPGRADE_MORE;
}

void ws_upgrade_destroy(struct ws_upgrade *u)
{
    free(u);
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* RFC 6455 4.2.1: the key is 16 random bytes in base64 (24 characters,
 * the last two "=="). */
static bool key_valid(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(k[i]))
            return false;
    return true;
}

int ws_accept_key(const char *key, size_t keylen, char out[29])
{
    if (!key_valid(key, keylen))
        return -EINVAL;
    byte in[24 + sizeof(WS_GUID) - 1], digest[WC_SHA_DIGEST_SIZE];
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
    wc_Sha sha;
    int rc = wc_InitSha(&sha);
    if (rc == 0)
        rc = wc_ShaUpdate(&sha, in, sizeof(in));
    if (rc == 0)
        rc = wc_ShaFinal(&sha, digest);
    wc_ShaFree(&sha);
    word32 outlen = 29;
    if (rc != 0 || Base64_Encode_NoNl(digest, sizeof(digest), (byte *)out, &outlen) != 0 ||
        outlen != 28)
        return -EINVAL;
    out[28] = '\0';
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Bad Request";
    }
}

size_t ws_upgrade_error(int status, char *out)
{
    /* 426: RFC 6455 4.4, the versions the server speaks. */
    int n = snprintf(out, WS_UPGRADE_ANSWER_MAX,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n%s\r\n", status,
                     reason(status),
                     status == 426   ? "Sec-WebSocket-Version: 13\r\n"
                     : status == 405 ? "Allow: GET\r\n"
                                     : "");
    return n > 0 ? (size_t)n : 0;
}

/* The path of the request target (before any query) is p->path. */
static bool path_ok(const struct ws_upgrade *u, const struct ws_upgrade_policy *p)
{
    const char *t = (const char *)u->buf + u->url.off;
    size_t n = 0;
    while (n < u->url.len && t[n] != '?')
        n++;
    return strlen(p->path) == n && memcmp(t, p->path, n) == 0;
}

/* No Origin (not a browser) or one the listener allows. */
static bool origin_ok(const struct ws_upgrade *u, const struct ws_upgrade_policy *p)
{
    if (!p->origins[0] || !u->origin.len)
        return true;
    const char *o = (const char *)u->buf + u->origin.off;
    size_t on = u->origin.len;
    while (on && (o[on - 1] == ' ' || o[on - 1] == '\t'))
        on--;
    for (const char *q = p->origins; *q;) {
        q += strspn(q, " ,");
        size_t n = strcspn(q, ",");
        size_t tn = n;
        while (tn && q[tn - 1] == ' ')
            tn--;
        if (tn && tn == on && strncasecmp(q, o, on) == 0)
            return true;
        q += n;
    }
    return false;
}

/* The status the request deserves: 0 when it opens a WebSocket. */
static int judge(const struct ws_upgrade *u, const struct ws_upgrade_policy *p)
{
    const http_parser *hp = &u->parser;
    if (hp->method != HTTP_GET)
        return 405;
    if (hp->http_major != 1 || hp->http_minor < 1)
        return 400; /* RFC 6455 4.1: HTTP/1.1 or higher */
    if (!path_ok(u, p))
        return 404;
    if (!u->upgrade_ws || !u->conn_upgrade || u->duplicate || !u->key.len)
        return 400;
    if (!span_is(u, u->version, "13"))
        return 426;
    if (!key_valid((const char *)u->buf + u->key.off, u->key.len))
        return 400;
    if (!origin_ok(u, p))
        return 403;
    if (!u->proto_mqtt && !u->proto_mqtt31)
        return 400; /* MQTT-6.0.0-3: the client offers mqtt */
    return 0;
}

int ws_upgrade_answer(const struct ws_upgrade *u, const struct ws_upgrade_policy *p, char *out,
                      size_t *outlen)
{
    int status = judge(u, p);
    char accept[29];
    if (!status && ws_accept_key((const char *)u->buf + u->key.off, u->key.len, accept) < 0)
        status = 400;
    if (status) {
        *outlen = ws_upgrade_error(status, out);
        return status;
    }
    /* MQTT-6.0.0-4: the subprotocol chosen is mqtt (mqttv3.1 only for a
     * client that offers nothing else). */
    int n = snprintf(out, WS_UPGRADE_ANSWER_MAX,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n\r\n",
                     accept, u->proto_mqtt ? "mqtt" : "mqttv3.1");
    *outlen = n > 0 ? (size_t)n : 0;
    return 101;
}
