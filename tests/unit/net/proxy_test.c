/* net/proxy: the PROXY protocol header parser. v1 TCP4, TCP6 and UNKNOWN
 * (the longest lines too); v2 INET, INET6, LOCAL, the families that fall
 * back to the connection's own address, TLVs (SSL with its sub-TLVs,
 * AUTHORITY, CRC32C, UNIQUE_ID, unknown ones); every valid header split at
 * every byte; every malformed one refused, and never taken as valid at any
 * prefix. Inputs are copied into exact-size heap buffers so that ASan sees
 * a read past what was received. */
#include "net/proxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ANY (PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2)

static int parse_n(const uint8_t *b, size_t n, unsigned accept, struct proxy_header *h,
                   size_t *need, const char **why)
{
    uint8_t *c = malloc(n ? n : 1);
    cr_assert_not_null(c);
    memcpy(c, b, n);
    int rc = proxy_parse(c, n, accept, h, need, why);
    /* Borrowed TLV values point into c: move them to b. */
    struct proxy_text *t[] = {&h->ssl_version, &h->ssl_cn, &h->authority};
    for (size_t i = 0; i < 3; i++)
        if (t[i]->p)
            t[i]->p = b + (t[i]->p - c);
    free(c);
    return rc;
}

/* Every proper prefix of a valid header asks for more (and never for more
 * than the header has, once it knows); the whole header, alone or followed
 * by the connection's first bytes, parses to the same length. */
static void parse_valid(const uint8_t *b, size_t n, unsigned accept, struct proxy_header *h)
{
    size_t need;
    const char *why;
    for (size_t k = 0; k < n; k++) {
        int rc = parse_n(b, k, accept, h, &need, &why);
        cr_assert_eq(rc, 0, "prefix %zu of %zu: rc %d (%s)", k, n, rc, why ? why : "");
        cr_assert(need > k && need <= n, "prefix %zu of %zu: need %zu", k, n, need);
    }
    uint8_t more[PROXY_HEADER_MAX + 8];
    memcpy(more, b, n);
    memcpy(more + n, "\x10\x0c\x00\x04MQTT", 8); /* a CONNECT's first bytes */
    cr_assert_eq(parse_n(more, n + 8, accept, h, &need, &why), (int)n);
    int rc = parse_n(b, n, accept, h, &need, &why);
    cr_assert_eq(rc, (int)n, "rc %d (%s)", rc, why ? why : "");
}

/* Refused at full length, and no prefix is taken as a whole header; once
 * refused, every longer prefix is too (the connection can be closed at the
 * first byte that cannot belong to a header). */
static void parse_bad(const uint8_t *b, size_t n, unsigned accept, int want)
{
    struct proxy_header h;
    size_t need;
    const char *why = NULL;
    bool refused = false;
    for (size_t k = 0; k <= n; k++) {
        int rc = parse_n(b, k, accept, &h, &need, &why);
        cr_assert(rc <= 0, "prefix %zu of %zu of a bad header accepted (%d)", k, n, rc);
        if (refused)
            cr_assert(rc < 0, "prefix %zu: refused before, not now", k);
        if (rc < 0) {
            cr_assert_not_null(why);
            refused = true;
        }
    }
    int rc = parse_n(b, n, accept, &h, &need, &why);
    cr_assert_eq(rc, want, "rc %d, want %d", rc, want);
}

static void v1_valid(const char *line, struct proxy_header *h)
{
    parse_valid((const uint8_t *)line, strlen(line), PROXY_ACCEPT_V1, h);
    parse_valid((const uint8_t *)line, strlen(line), ANY, h);
    cr_assert_eq(h->version, 1);
}

static void peer_is(const struct net_peer *p, const char *addr, uint16_t port)
{
    char text[NET_PEER_STRLEN];
    cr_assert_eq(net_peer_format(p, text, sizeof(text)), 0);
    cr_assert_str_eq(text, addr);
    cr_assert_eq(p->port, port);
}

Test(proxy, v1_tcp4)
{
    struct proxy_header h;
    v1_valid("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", &h);
    cr_assert_not(h.local);
    peer_is(&h.src, "192.168.0.1", 56324);
    peer_is(&h.dst, "192.168.0.11", 443);
    v1_valid("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", &h);
    peer_is(&h.src, "255.255.255.255", 65535);
}

Test(proxy, v1_tcp6)
{
    struct proxy_header h;
    v1_valid("PROXY TCP6 2001:db8::1 ::1 40000 1883\r\n", &h);
    cr_assert_not(h.local);
    peer_is(&h.src, "2001:db8::1", 40000);
    peer_is(&h.dst, "::1", 1883);
    /* The longest TCP6 line: 104 bytes. */
    const char *max = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n";
    cr_assert_eq(strlen(max), 104);
    v1_valid(max, &h);
    peer_is(&h.src, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
}

Test(proxy, v1_unknown_keeps_the_connection_address)
{
    struct proxy_header h;
    v1_valid("PROXY UNKNOWN\r\n", &h);
    cr_assert(h.local);
    /* "the receiver must ignore anything presented before the CRLF": the
     * worst case is 107 bytes. */
    const char *max = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    cr_assert_eq(strlen(max), PROXY_V1_MAX);
    v1_valid(max, &h);
    cr_assert(h.local);
    v1_valid("PROXY UNKNOWN whatever\r\n", &h);
}

Test(proxy, v1_malformed)
{
    static const char *bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",         /* LF without CR */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",        /* CR without LF */
        "PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",      /* LF inside */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",       /* protocol */
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",       /* case */
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",      /* two spaces */
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",      /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",      /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",     /* a field too many */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",         /* a field short */
        "PROXY TCP4\r\n",                           /* no fields */
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",      /* heading zero */
        "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",     /* > 255 */
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",         /* 3 parts */
        "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",     /* 5 parts */
        "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",        /* empty part */
        "PROXY TCP4 ::1 ::1 1 2\r\n",               /* IPv6 as TCP4 */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",       /* IPv4 as TCP6 */
        "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",    /* dotted tail */
        "PROXY TCP6 1:::2 ::1 1 2\r\n",             /* bad IPv6 */
        "PROXY TCP6 ::g ::1 1 2\r\n",               /* bad IPv6 */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",   /* port > 65535 */
        "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",     /* heading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",      /* sign */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n",      /* junk */
        "PROXY UNKNOWNX\r\n",                       /* not UNKNOWN */
        "PROXY\r\n",                                /* nothing */
        "PROXY \r\n",                               /* nothing */
        "PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n",       /* signature */
        "GET /mqtt HTTP/1.1\r\n",                   /* not a header */
        "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00", /* an MQTT CONNECT */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_log_info("case %zu: %s", i, bad[i]);
        parse_bad((const uint8_t *)bad[i], strlen(bad[i]), ANY, -EPROTO);
    }
}

Test(proxy, v1_line_past_107_bytes_is_refused)
{
    /* 108 bytes: the CRLF comes one byte too late. */
    char line[200] = "PROXY UNKNOWN ";
    while (strlen(line) < 106)
        strcat(line, "x");
    strcat(line, "\r\n");
    cr_assert_eq(strlen(line), 108);
    parse_bad((const uint8_t *)line, strlen(line), ANY, -EPROTO);
    /* And without any CR, refused once 107 bytes are in. */
    memset(line + 14, 'x', sizeof(line) - 14);
    struct proxy_header h;
    size_t need;
    const char *why;
    cr_assert_eq(parse_n((uint8_t *)line, 105, ANY, &h, &need, &why), 0);
    cr_assert_eq(parse_n((uint8_t *)line, PROXY_V1_MAX, ANY, &h, &need, &why), -EPROTO);
}

/* ---- v2 ---- */

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

struct v2 {
    uint8_t b[PROXY_HEADER_MAX + 64];
    size_t len;
};

/* The fixed part; the block length follows what v2_add appends. */
static void v2_init(struct v2 *v, uint8_t ver_cmd, uint8_t fam)
{
    memcpy(v->b, sig, 12);
    v->b[12] = ver_cmd;
    v->b[13] = fam;
    v->len = 16;
    v->b[14] = v->b[15] = 0;
}

static void v2_add(struct v2 *v, const void *p, size_t n)
{
    cr_assert(v->len + n <= sizeof(v->b));
    memcpy(v->b + v->len, p, n);
    v->len += n;
    size_t block = v->len - 16;
    v->b[14] = (uint8_t)(block >> 8);
    v->b[15] = (uint8_t)block;
}

static void v2_tlv(struct v2 *v, uint8_t type, const void *p, size_t n)
{
    uint8_t t[3] = {type, (uint8_t)(n >> 8), (uint8_t)n};
    v2_add(v, t, 3);
    v2_add(v, p, n);
}

static void v2_inet(struct v2 *v, const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
    uint8_t a[12];
    inet_pton(AF_INET, src, a);
    inet_pton(AF_INET, dst, a + 4);
    a[8] = (uint8_t)(sport >> 8), a[9] = (uint8_t)sport;
    a[10] = (uint8_t)(dport >> 8), a[11] = (uint8_t)dport;
    v2_add(v, a, sizeof(a));
}

static void v2_inet6(struct v2 *v, const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
    uint8_t a[36];
    inet_pton(AF_INET6, src, a);
    inet_pton(AF_INET6, dst, a + 16);
    a[32] = (uint8_t)(sport >> 8), a[33] = (uint8_t)sport;
    a[34] = (uint8_t)(dport >> 8), a[35] = (uint8_t)dport;
    v2_add(v, a, sizeof(a));
}

static void v2_valid(const struct v2 *v, struct proxy_header *h)
{
    parse_valid(v->b, v->len, PROXY_ACCEPT_V2, h);
    parse_valid(v->b, v->len, ANY, h);
    cr_assert_eq(h->version, 2);
}

static bool text_is(struct proxy_text t, const char *s)
{
    return t.len == strlen(s) && t.p && memcmp(t.p, s, t.len) == 0;
}

Test(proxy, v2_inet)
{
    struct v2 v;
    v2_init(&v, 0x21, 0x11);
    v2_inet(&v, "10.1.2.3", 40000, "10.0.0.1", 1883);
    struct proxy_header h;
    v2_valid(&v, &h);
    cr_assert_not(h.local);
    peer_is(&h.src, "10.1.2.3", 40000);
    peer_is(&h.dst, "10.0.0.1", 1883);
    cr_assert_not(h.ssl);
    cr_assert_eq(h.authority.len, 0);
}

Test(proxy, v2_inet6_with_tlvs)
{
    struct v2 v;
    v2_init(&v, 0x21, 0x21);
    v2_inet6(&v, "2001:db8::7", 50000, "2001:db8::1", 8883);
    v2_tlv(&v, PROXY_TLV_NOOP, "", 0);
    v2_tlv(&v, PROXY_TLV_AUTHORITY, "acme.mqtt.example.com", 21);
    uint8_t ssl[64] = {PROXY_CLIENT_SSL | PROXY_CLIENT_CERT_CONN, 0, 0, 0, 0};
    size_t n = 5;
    const char *ver = "TLSv1.3", *cn = "device-42", *cipher = "TLS_AES_128_GCM_SHA256";
    ssl[n++] = PROXY_SUBTLV_SSL_VERSION, ssl[n++] = 0, ssl[n++] = 7;
    memcpy(ssl + n, ver, 7), n += 7;
    ssl[n++] = PROXY_SUBTLV_SSL_CIPHER, ssl[n++] = 0, ssl[n++] = 22;
    memcpy(ssl + n, cipher, 22), n += 22;
    ssl[n++] = PROXY_SUBTLV_SSL_CN, ssl[n++] = 0, ssl[n++] = 9;
    memcpy(ssl + n, cn, 9), n += 9;
    v2_tlv(&v, PROXY_TLV_SSL, ssl, n);
    v2_tlv(&v, PROXY_TLV_UNIQUE_ID, "0123456789abcdef", 16);
    v2_tlv(&v, 0xE0, "custom", 6); /* application range: skipped */
    struct proxy_header h;
    v2_valid(&v, &h);
    cr_assert_not(h.local);
    peer_is(&h.src, "2001:db8::7", 50000);
    peer_is(&h.dst, "2001:db8::1", 8883);
    cr_assert(text_is(h.authority, "acme.mqtt.example.com"));
    cr_assert(h.ssl);
    cr_assert_eq(h.ssl_client, PROXY_CLIENT_SSL | PROXY_CLIENT_CERT_CONN);
    cr_assert_eq(h.ssl_verify, 0);
    cr_assert(text_is(h.ssl_version, "TLSv1.3"));
    cr_assert(text_is(h.ssl_cn, "device-42"));
}

Test(proxy, v2_ssl_verify_is_big_endian)
{
    struct v2 v;
    v2_init(&v, 0x21, 0x11);
    v2_inet(&v, "10.1.2.3", 1, "10.0.0.1", 2);
    uint8_t ssl[5] = {PROXY_CLIENT_SSL, 0, 0, 0x01, 0x02};
    v2_tlv(&v, PROXY_TLV_SSL, ssl, 5);
    struct proxy_header h;
    v2_valid(&v, &h);
    cr_assert_eq(h.ssl_verify, 0x0102);
    cr_assert_eq(h.ssl_version.len, 0);
}

Test(proxy, v2_local_keeps_the_connection_address)
{
    struct v2 v;
    struct proxy_header h;
    v2_init(&v, 0x20, 0x00); /* a health check: LOCAL, UNSPEC, no block */
    v2_valid(&v, &h);
    cr_assert(h.local);
    /* "must not assume zero is presented for LOCAL connections": the
     * addresses are skipped, the TLVs still read. */
    v2_init(&v, 0x20, 0x11);
    v2_inet(&v, "10.1.2.3", 40000, "10.0.0.1", 1883);
    v2_tlv(&v, PROXY_TLV_AUTHORITY, "lb.example", 10);
    v2_valid(&v, &h);
    cr_assert(h.local);
    cr_assert(text_is(h.authority, "lb.example"));
    static const uint8_t zero[16];
    cr_assert_arr_eq(h.src.addr, zero, 16);
    /* LOCAL with a family byte of no meaning: the block is discarded. */
    v2_init(&v, 0x20, 0x99);
    v2_add(&v, "abc", 3);
    v2_valid(&v, &h);
    cr_assert(h.local);
}

Test(proxy, v2_families_without_addresses_fall_back)
{
    /* UNSPEC, UDP and UNIX: "falls back to the UNSPEC mode". */
    static const struct {
        uint8_t fam;
        size_t alen;
    } f[] = {{0x00, 0}, {0x12, 12}, {0x22, 36}, {0x31, 216}, {0x32, 216}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        struct v2 v;
        v2_init(&v, 0x21, f[i].fam);
        uint8_t a[216];
        memset(a, 0x41, sizeof(a));
        v2_add(&v, a, f[i].alen);
        v2_tlv(&v, PROXY_TLV_AUTHORITY, "x", 1);
        struct proxy_header h;
        v2_valid(&v, &h);
        cr_assert(h.local, "family 0x%02x", f[i].fam);
        cr_assert(text_is(h.authority, "x"), "family 0x%02x", f[i].fam);
    }
}

Test(proxy, crc32c_check_value)
{
    /* The CRC-32C check value (RFC 3720 B.4 / the usual "123456789"). */
    cr_assert_eq(proxy_crc32c((const uint8_t *)"123456789", 9), 0xE3069283u);
}

/* A header with a CRC32C TLV whose value is the CRC of the header with
 * the value zeroed, plus `flip` (0: right). */
static void v2_with_crc(struct v2 *v, uint32_t flip)
{
    v2_init(v, 0x21, 0x11);
    v2_inet(v, "10.1.2.3", 40000, "10.0.0.1", 1883);
    v2_tlv(v, PROXY_TLV_CRC32C, "\0\0\0\0", 4);
    v2_tlv(v, PROXY_TLV_AUTHORITY, "host", 4);
    uint32_t crc = proxy_crc32c(v->b, v->len) ^ flip;
    uint8_t *at = v->b + 16 + 12 + 3;
    at[0] = (uint8_t)(crc >> 24), at[1] = (uint8_t)(crc >> 16);
    at[2] = (uint8_t)(crc >> 8), at[3] = (uint8_t)crc;
}

Test(proxy, v2_crc32c)
{
    struct v2 v;
    struct proxy_header h;
    v2_with_crc(&v, 0);
    v2_valid(&v, &h);
    v2_with_crc(&v, 1);
    parse_bad(v.b, v.len, ANY, -EPROTO);
}

/* A valid INET header, then `edit` breaks it. */
static void v2_bad(void (*edit)(struct v2 *), int want)
{
    struct v2 v;
    v2_init(&v, 0x21, 0x11);
    v2_inet(&v, "10.1.2.3", 40000, "10.0.0.1", 1883);
    edit(&v);
    parse_bad(v.b, v.len, ANY, want);
}

static void bad_sig(struct v2 *v)
{
    v->b[4] = 0x01;
}
static void bad_version1(struct v2 *v)
{
    v->b[12] = 0x11;
}
static void bad_version3(struct v2 *v)
{
    v->b[12] = 0x31;
}
static void bad_command(struct v2 *v)
{
    v->b[12] = 0x22;
}
static void bad_family(struct v2 *v)
{
    v->b[13] = 0x41;
}
static void bad_protocol(struct v2 *v)
{
    v->b[13] = 0x13;
}
static void block_short_of_addresses(struct v2 *v)
{
    v->len = 16 + 8;
    v->b[15] = 8;
}
static void tlv_truncated(struct v2 *v)
{
    v2_add(v, "\x02\x00", 2); /* 2 bytes where a TLV needs 3 */
}
static void tlv_past_the_end(struct v2 *v)
{
    v2_tlv(v, PROXY_TLV_AUTHORITY, "abcd", 4);
    v->b[16 + 12 + 2] = 5; /* says 5, 4 follow */
}
static void ssl_too_short(struct v2 *v)
{
    v2_tlv(v, PROXY_TLV_SSL, "\x01\0\0\0", 4);
}
static void ssl_sub_past_the_end(struct v2 *v)
{
    v2_tlv(v, PROXY_TLV_SSL,
           "\x01\0\0\0\0\x22\x00\x09"
           "abc",
           11);
}
static void authority_twice(struct v2 *v)
{
    v2_tlv(v, PROXY_TLV_AUTHORITY, "a", 1);
    v2_tlv(v, PROXY_TLV_AUTHORITY, "b", 1);
}
static void ssl_twice(struct v2 *v)
{
    v2_tlv(v, PROXY_TLV_SSL, "\x01\0\0\0\0", 5);
    v2_tlv(v, PROXY_TLV_SSL, "\x01\0\0\0\0", 5);
}
static void unique_id_too_long(struct v2 *v)
{
    uint8_t id[129] = {0};
    v2_tlv(v, PROXY_TLV_UNIQUE_ID, id, sizeof(id));
}
static void crc_wrong_size(struct v2 *v)
{
    v2_tlv(v, PROXY_TLV_CRC32C, "\0\0\0", 3);
}
static void block_too_large(struct v2 *v)
{
    uint8_t pad[PROXY_V2_MAX_BLOCK] = {0};
    v2_tlv(v, PROXY_TLV_NOOP, pad, PROXY_V2_MAX_BLOCK - 12 - 3 + 1);
}

Test(proxy, v2_malformed)
{
    v2_bad(bad_sig, -EPROTO);
    v2_bad(bad_version1, -EPROTO);
    v2_bad(bad_version3, -EPROTO);
    v2_bad(bad_command, -EPROTO);
    v2_bad(bad_family, -EPROTO);
    v2_bad(bad_protocol, -EPROTO);
    v2_bad(block_short_of_addresses, -EPROTO);
    v2_bad(tlv_truncated, -EPROTO);
    v2_bad(tlv_past_the_end, -EPROTO);
    v2_bad(ssl_too_short, -EPROTO);
    v2_bad(ssl_sub_past_the_end, -EPROTO);
    v2_bad(authority_twice, -EPROTO);
    v2_bad(ssl_twice, -EPROTO);
    v2_bad(unique_id_too_long, -EPROTO);
    v2_bad(crc_wrong_size, -EPROTO);
    v2_bad(block_too_large, -EMSGSIZE);
}

Test(proxy, v2_largest_block_is_taken)
{
    struct v2 v;
    v2_init(&v, 0x21, 0x11);
    v2_inet(&v, "10.1.2.3", 1, "10.0.0.1", 2);
    uint8_t pad[PROXY_V2_MAX_BLOCK] = {0};
    v2_tlv(&v, PROXY_TLV_NOOP, pad, PROXY_V2_MAX_BLOCK - 12 - 3);
    cr_assert_eq(v.len, PROXY_HEADER_MAX);
    struct proxy_header h;
    v2_valid(&v, &h);
}

Test(proxy, v2_refused_at_the_first_wrong_byte)
{
    struct proxy_header h;
    size_t need;
    const char *why;
    /* An unknown command is refused at byte 13, without waiting for 16. */
    uint8_t b[13];
    memcpy(b, sig, 12);
    b[12] = 0x2f;
    cr_assert_eq(parse_n(b, 13, ANY, &h, &need, &why), -EPROTO);
    /* A too large block at byte 16, without waiting for the block. */
    uint8_t f[16];
    memcpy(f, sig, 12);
    f[12] = 0x21, f[13] = 0x11, f[14] = 0xff, f[15] = 0xff;
    cr_assert_eq(parse_n(f, 16, ANY, &h, &need, &why), -EMSGSIZE);
    /* The length is known from byte 16. */
    f[14] = 0, f[15] = 12;
    cr_assert_eq(parse_n(f, 16, ANY, &h, &need, &why), 0);
    cr_assert_eq(need, 28);
}

Test(proxy, only_the_versions_asked_for)
{
    const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    parse_bad((const uint8_t *)v1, strlen(v1), PROXY_ACCEPT_V2, -EPROTO);
    struct v2 v;
    v2_init(&v, 0x21, 0x11);
    v2_inet(&v, "10.1.2.3", 1, "10.0.0.1", 2);
    parse_bad(v.b, v.len, PROXY_ACCEPT_V1, -EPROTO);
}
