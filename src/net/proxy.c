/*
 * proxy: the PROXY protocol v1 (text) and v2 (binary) header parser (see
 * proxy.h). Each check cites the specification's rule in words; nothing
 * here keeps state between calls.
 */
#include "net/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

/* The only ways out with an error: *why set, one code. */
static int refuse(const char **why, const char *reason)
{
    *why = reason;
    return -EPROTO;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc;
}

uint32_t proxy_crc32c(const uint8_t *p, size_t n)
{
    return ~crc32c_update(0xFFFFFFFFu, p, n);
}

/* ---- version 1 ------------------------------------------------------- */

/* "exactly 4 integers in the range [0..255] ... separated by exactly one
 * dot", no heading zeroes. */
static bool v1_ipv4(const uint8_t *s, size_t n, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0 && (i >= n || s[i++] != '.'))
            return false;
        size_t start = i;
        unsigned v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0'))
            return false;
        out[part] = (uint8_t)v;
    }
    return i == n;
}

/* Groups of hex digits and colons (one "::" at most, which inet_pton
 * checks); the dotted IPv4 tail inet_pton would also take is not the
 * format the specification gives. */
static bool v1_ipv6(const uint8_t *s, size_t n, uint8_t out[16])
{
    char text[40];
    if (n == 0 || n >= sizeof(text))
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex && c != ':')
            return false;
    }
    memcpy(text, s, n);
    text[n] = '\0';
    return inet_pton(AF_INET6, text, out) == 1;
}

static bool v1_addr(const uint8_t *s, size_t n, bool v6, struct net_peer *p)
{
    if (v6)
        return v1_ipv6(s, n, p->addr);
    p->addr[10] = p->addr[11] = 0xff; /* v4-mapped, as net/peer.h keeps IPv4 */
    return v1_ipv4(s, n, p->addr + 12);
}

/* "[0..65535] inclusive", decimal, no heading zeroes. */
static bool v1_port(const uint8_t *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Split s into exactly `want` fields separated by exactly one space. */
static bool v1_split(const uint8_t *s, size_t n, struct proxy_text *f, int want)
{
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ')
            continue;
        if (i == start || k == want)
            return false; /* an empty field (two spaces), or too many */
        f[k].p = s + start;
        f[k].len = (uint16_t)(i - start);
        k++;
        start = i + 1;
    }
    return k == want;
}

/* What follows "PROXY " up to the CRLF (n bytes). */
static int v1_fields(const uint8_t *s, size_t n, struct proxy_header *h, const char **why)
{
    static const char unknown[] = "UNKNOWN";
    const size_t ul = sizeof(unknown) - 1;
    /* "the receiver must ignore anything presented before the CRLF". */
    if (n >= ul && memcmp(s, unknown, ul) == 0 && (n == ul || s[ul] == ' ')) {
        h->local = true;
        return 0;
    }
    if (n < 5 || memcmp(s, "TCP", 3) != 0 || (s[3] != '4' && s[3] != '6') || s[4] != ' ')
        return refuse(why, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    bool v6 = s[3] == '6';
    struct proxy_text f[4];
    if (!v1_split(s + 5, n - 5, f, 4))
        return refuse(why, "v1: expected source, destination and two ports, one space apart");
    if (!v1_addr(f[0].p, f[0].len, v6, &h->src) || !v1_addr(f[1].p, f[1].len, v6, &h->dst))
        return refuse(why, v6 ? "v1: bad TCP6 address" : "v1: bad TCP4 address");
    if (!v1_port(f[2].p, f[2].len, &h->src.port) || !v1_port(f[3].p, f[3].len, &h->dst.port))
        return refuse(why, "v1: bad port");
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, struct proxy_header *h, size_t *need,
                    const char **why)
{
    if (memcmp(buf, v1_sig, min_size(len, V1_SIG_LEN)) != 0)
        return refuse(why, "not a PROXY protocol header");
    size_t n = min_size(len, PROXY_V1_MAX);
    const uint8_t *cr = memchr(buf, '\r', n);
    size_t line = cr ? (size_t)(cr - buf) : n;
    /* "must not tolerate a single CR or LF character to end the line". */
    if (memchr(buf, '\n', line))
        return refuse(why, "v1: LF without CR");
    if (line + 2 > PROXY_V1_MAX)
        return refuse(why, "v1: no CRLF in the first 107 bytes");
    if (!cr || line + 1 == len) {
        *need = cr ? line + 2 : len + 1;
        return 0;
    }
    if (cr[1] != '\n')
        return refuse(why, "v1: CR without LF");
    if (line < V1_SIG_LEN)
        return refuse(why, "not a PROXY protocol header");
    h->version = 1;
    int rc = v1_fields(buf + V1_SIG_LEN, line - V1_SIG_LEN, h, why);
    return rc < 0 ? rc : (int)(line + 2);
}

/* ---- version 2 ------------------------------------------------------- */

/* The next TLV of p[0..*n) into *type / *val, advancing; 1 when there was
 * one, 0 at the end, -EPROTO when it does not fit what is left. */
static int tlv_next(const uint8_t **p, size_t *n, uint8_t *type, struct proxy_text *val,
                    const char **why)
{
    if (*n == 0)
        return 0;
    if (*n < 3)
        return refuse(why, "v2: truncated TLV");
    size_t vlen = be16(*p + 1);
    if (vlen > *n - 3)
        return refuse(why, "v2: TLV longer than the header");
    *type = (*p)[0];
    val->p = *p + 3;
    val->len = (uint16_t)vlen;
    *p += 3 + vlen;
    *n -= 3 + vlen;
    return 1;
}

/* Keep a TLV's value; the same one twice would leave it ambiguous. */
static int keep_once(struct proxy_text *slot, struct proxy_text val, const char **why)
{
    if (slot->p)
        return refuse(why, "v2: repeated TLV");
    *slot = val;
    return 0;
}

/* PP2_TYPE_SSL: client (1), verify (4), then sub-TLVs. */
static int v2_ssl(struct proxy_text v, struct proxy_header *h, const char **why)
{
    if (h->ssl)
        return refuse(why, "v2: repeated TLV");
    if (v.len < 5)
        return refuse(why, "v2: SSL TLV shorter than 5 bytes");
    h->ssl = true;
    h->ssl_client = v.p[0];
    h->ssl_verify = be32(v.p + 1);
    const uint8_t *p = v.p + 5;
    size_t n = v.len - 5u;
    uint8_t type;
    struct proxy_text sub;
    int rc;
    while ((rc = tlv_next(&p, &n, &type, &sub, why)) > 0) {
        if (type == PROXY_SUBTLV_SSL_VERSION)
            rc = keep_once(&h->ssl_version, sub, why);
        else if (type == PROXY_SUBTLV_SSL_CN)
            rc = keep_once(&h->ssl_cn, sub, why);
        if (rc < 0)
            return rc;
    }
    return rc;
}

/* PP2_TYPE_CRC32C: "replace the 32 bits of the checksum field ... with
 * all '0's and calculate a CRC32c checksum value of the whole PROXY
 * header"; a mismatch makes the connection invalid. */
static int v2_crc(const uint8_t *hdr, size_t total, struct proxy_text v, const char **why)
{
    static const uint8_t zero[4];
    if (v.len != 4)
        return refuse(why, "v2: CRC32C TLV is not 4 bytes");
    size_t at = (size_t)(v.p - hdr);
    uint32_t crc = crc32c_update(0xFFFFFFFFu, hdr, at);
    crc = crc32c_update(crc, zero, 4);
    crc = ~crc32c_update(crc, hdr + at + 4, total - at - 4);
    return crc == be32(v.p) ? 0 : refuse(why, "v2: CRC32C mismatch");
}

/* The TLVs after the addresses, up to the header's end. */
static int v2_tlvs(const uint8_t *hdr, size_t total, size_t off, struct proxy_header *h,
                   const char **why)
{
    const uint8_t *p = hdr + off;
    size_t n = total - off;
    uint8_t type;
    struct proxy_text v;
    int rc;
    while ((rc = tlv_next(&p, &n, &type, &v, why)) > 0) {
        if (type == PROXY_TLV_AUTHORITY)
            rc = keep_once(&h->authority, v, why);
        else if (type == PROXY_TLV_SSL)
            rc = v2_ssl(v, h, why);
        else if (type == PROXY_TLV_CRC32C)
            rc = v2_crc(hdr, total, v, why);
        else if (type == PROXY_TLV_UNIQUE_ID && v.len > 128)
            rc = refuse(why, "v2: UNIQUE_ID TLV longer than 128 bytes");
        if (rc < 0)
            return rc;
    }
    return rc;
}

/* The address block's length for family/protocol byte `fam`, whether the
 * addresses are taken (TCP over IPv4 or IPv6), or -1 for a byte the
 * specification does not define ("must be rejected as invalid"). */
static int v2_family(uint8_t fam, bool *take)
{
    *take = fam == 0x11 || fam == 0x21;
    switch (fam) {
    case 0x00:
        return 0; /* UNSPEC */
    case 0x11:
    case 0x12:
        return 12; /* IPv4: 2 x 4 + 2 x 2 */
    case 0x21:
    case 0x22:
        return 36; /* IPv6: 2 x 16 + 2 x 2 */
    case 0x31:
    case 0x32:
        return 216; /* UNIX: 2 x 108 */
    default:
        return -1;
    }
}

static void v2_addrs(const uint8_t *a, uint8_t fam, struct proxy_header *h)
{
    if (fam == 0x11) {
        h->src.addr[10] = h->src.addr[11] = 0xff;
        h->dst.addr[10] = h->dst.addr[11] = 0xff;
        memcpy(h->src.addr + 12, a, 4);
        memcpy(h->dst.addr + 12, a + 4, 4);
        h->src.port = be16(a + 8);
        h->dst.port = be16(a + 10);
    } else {
        memcpy(h->src.addr, a, 16);
        memcpy(h->dst.addr, a + 16, 16);
        h->src.port = be16(a + 32);
        h->dst.port = be16(a + 34);
    }
}

/* The 16-byte fixed part, checked as far as it has arrived (len bytes):
 * a wrong byte is refused without waiting for the rest. */
static int v2_fixed(const uint8_t *buf, size_t len, const char **why)
{
    if (memcmp(buf, v2_sig, min_size(len, sizeof(v2_sig))) != 0)
        return refuse(why, "not a PROXY protocol header");
    /* "the receiver must only accept" version 2; commands other than
     * LOCAL and PROXY: "receivers must drop connections". */
    if (len > 12 && (buf[12] >> 4) != 2)
        return refuse(why, "v2: version is not 2");
    if (len > 12 && (buf[12] & 0x0f) > 1)
        return refuse(why, "v2: command is neither LOCAL nor PROXY");
    bool take;
    /* LOCAL: "discard the protocol block including the family". */
    if (len > 13 && (buf[12] & 0x0f) == 1 && v2_family(buf[13], &take) < 0)
        return refuse(why, "v2: unknown address family or protocol");
    return 0;
}

static int parse_v2(const uint8_t *buf, size_t len, struct proxy_header *h, size_t *need,
                    const char **why)
{
    int rc = v2_fixed(buf, len, why);
    if (rc < 0)
        return rc;
    if (len < 16) {
        *need = 16;
        return 0;
    }
    size_t block = be16(buf + 14);
    if (block > PROXY_V2_MAX_BLOCK) {
        *why = "v2: header longer than this broker takes (1040 bytes)";
        return -EMSGSIZE;
    }
    size_t total = 16 + block;
    if (len < total) {
        *need = total;
        return 0;
    }
    h->version = 2;
    bool take = false;
    int alen = v2_family(buf[13], &take);
    bool proxy = (buf[12] & 0x0f) == 1;
    h->local = !(proxy && take);
    if (!proxy && (alen < 0 || (size_t)alen > block))
        return (int)total; /* LOCAL: the block is discarded, whatever it holds */
    if ((size_t)alen > block)
        return refuse(why, "v2: address block shorter than its family's addresses");
    if (!h->local)
        v2_addrs(buf + 16, buf[13], h);
    rc = v2_tlvs(buf, total, 16 + (size_t)alen, h, why);
    return rc < 0 ? rc : (int)total;
}

/* ---- either ---------------------------------------------------------- */

int proxy_parse(const uint8_t *buf, size_t len, unsigned accept, struct proxy_header *h,
                size_t *need, const char **why)
{
    memset(h, 0, sizeof(*h));
    *need = 0;
    *why = NULL;
    if (len == 0) {
        *need = 1;
        return 0;
    }
    /* The two signatures differ from their first byte ("PROXY" / CR). */
    if ((accept & PROXY_ACCEPT_V2) && buf[0] == v2_sig[0])
        return parse_v2(buf, len, h, need, why);
    if ((accept & PROXY_ACCEPT_V1) && buf[0] == (uint8_t)v1_sig[0])
        return parse_v1(buf, len, h, need, why);
    if (accept == PROXY_ACCEPT_V1)
        return refuse(why, "not a PROXY protocol v1 header");
    if (accept == PROXY_ACCEPT_V2)
        return refuse(why, "not a PROXY protocol v2 header");
    return refuse(why, "not a PROXY protocol header");
}
