/*
 * proxy_fuzz: libFuzzer target for the PROXY protocol header parser
 * (src/net/proxy.c).
 *
 * One input is parsed with every accept mask (v1, v2, both), from an
 * exact-size heap copy so that ASan sees any read past the end, and the
 * answers are checked against the contract in proxy.h:
 *  - a header (rc > 0) is at most the input and at most PROXY_HEADER_MAX,
 *    parses the same from exactly its own bytes, its TLV values lie inside
 *    it, and no proper prefix of it is taken as a header; with both
 *    versions accepted the answer is the one its own version gives;
 *  - "need more" (0) asks for more than it has and at most
 *    PROXY_HEADER_MAX, and never comes for PROXY_HEADER_MAX bytes or more;
 *  - a refusal (< 0) is -EPROTO or -EMSGSIZE with a reason, and stays one
 *    when more bytes follow.
 * A broken invariant aborts with the line that failed.
 *
 * In CI, tests/fuzz/fuzz_driver.c runs it over the seeds below, every
 * truncation of each and mutations of them (meson test 'fuzz/proxy'). The
 * real libFuzzer binary:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/proxy_fuzz.c src/net/proxy.c src/net/peer.c -o proxy_fuzz
 *   mkdir -p corpus && ./proxy_fuzz -max_len=1100 corpus
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_target_seeds(void (*add)(const uint8_t *p, size_t n));

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int parse_copy(const uint8_t *data, size_t n, unsigned accept, struct proxy_header *h,
                      size_t *need, const char **why, uint8_t **copy)
{
    *copy = malloc(n ? n : 1);
    CHECK(*copy);
    if (n) /* data may be NULL for the empty input */
        memcpy(*copy, data, n);
    return proxy_parse(*copy, n, accept, h, need, why);
}

static void text_inside(struct proxy_text t, const uint8_t *buf, int rc)
{
    if (t.len)
        CHECK(t.p >= buf && t.p + t.len <= buf + rc);
}

static void check_header(const uint8_t *data, size_t size, unsigned accept, int rc,
                         const struct proxy_header *h, const uint8_t *buf)
{
    CHECK((size_t)rc <= size && (size_t)rc <= PROXY_HEADER_MAX);
    CHECK(h->version == 1 || h->version == 2);
    CHECK(accept & (h->version == 1 ? PROXY_ACCEPT_V1 : PROXY_ACCEPT_V2));
    text_inside(h->ssl_version, buf, rc);
    text_inside(h->ssl_cn, buf, rc);
    text_inside(h->authority, buf, rc);
    struct proxy_header again;
    size_t need;
    const char *why;
    uint8_t *c;
    CHECK(parse_copy(data, (size_t)rc, accept, &again, &need, &why, &c) == rc);
    CHECK(again.local == h->local && !memcmp(&again.src, &h->src, sizeof(h->src)));
    free(c);
    CHECK(parse_copy(data, (size_t)rc - 1, accept, &again, &need, &why, &c) <= 0);
    free(c);
    CHECK(parse_copy(data, (size_t)rc / 2, accept, &again, &need, &why, &c) <= 0);
    free(c);
}

static int one(const uint8_t *data, size_t size, unsigned accept)
{
    struct proxy_header h;
    size_t need;
    const char *why;
    uint8_t *buf;
    int rc = parse_copy(data, size, accept, &h, &need, &why, &buf);
    if (rc > 0) {
        check_header(data, size, accept, rc, &h, buf);
    } else if (rc == 0) {
        CHECK(need > size && need <= PROXY_HEADER_MAX && size < PROXY_HEADER_MAX);
    } else {
        CHECK((rc == -EPROTO || rc == -EMSGSIZE) && why && *why);
        if (size > 1) { /* refused at a prefix: refused with anything after */
            struct proxy_header h2;
            uint8_t *c;
            int r2 = parse_copy(data, size - 1, accept, &h2, &need, &why, &c);
            free(c);
            CHECK(r2 <= 0);
        }
    }
    free(buf);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int v1 = one(data, size, PROXY_ACCEPT_V1);
    int v2 = one(data, size, PROXY_ACCEPT_V2);
    int both = one(data, size, PROXY_ACCEPT_V1 | PROXY_ACCEPT_V2);
    /* The first byte picks the version: "any" answers as that version. */
    if (size && data[0] == 'P')
        CHECK(both == v1);
    if (size && data[0] == 0x0D)
        CHECK(both == v2);
    return 0;
}

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void add_v2(void (*add)(const uint8_t *, size_t), uint8_t vc, uint8_t fam,
                   const uint8_t *block, size_t n)
{
    uint8_t b[256];
    memcpy(b, sig, 12);
    b[12] = vc;
    b[13] = fam;
    b[14] = (uint8_t)(n >> 8);
    b[15] = (uint8_t)n;
    if (n) /* memcpy's source may not be NULL, even for 0 bytes */
        memcpy(b + 16, block, n);
    add(b, 16 + n);
}

void fuzz_target_seeds(void (*add)(const uint8_t *p, size_t n))
{
    static const char *v1[] = {
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n\x10\x0c",
        "PROXY TCP6 2001:db8::1 ::1 40000 1883\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
    };
    for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++)
        add((const uint8_t *)v1[i], strlen(v1[i]));
    static const uint8_t inet[] = {10, 1, 2, 3, 10, 0, 0, 1, 0x9c, 0x40, 0x07, 0x5b,
                                   /* AUTHORITY "host" */
                                   0x02, 0x00, 0x04, 'h', 'o', 's', 't',
                                   /* SSL: client 1, verify 0, VERSION, CN */
                                   0x20, 0x00, 0x14, 0x01, 0, 0, 0, 0, 0x21, 0x00, 0x03, 'T', 'L',
                                   'S', 0x22, 0x00, 0x03, 'd', 'e', 'v',
                                   /* CRC32C (wrong), UNIQUE_ID, NOOP */
                                   0x03, 0x00, 0x04, 1, 2, 3, 4, 0x05, 0x00, 0x02, 'i', 'd', 0x04,
                                   0x00, 0x00};
    add_v2(add, 0x21, 0x11, inet, sizeof(inet));
    add_v2(add, 0x21, 0x11, inet, 12);
    uint8_t in6[36 + 7] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1, [31] = 2, [32] = 1, [34] = 2};
    memcpy(in6 + 36, "\x02\x00\x04host", 7);
    add_v2(add, 0x21, 0x21, in6, sizeof(in6));
    add_v2(add, 0x20, 0x00, NULL, 0);
    add_v2(add, 0x20, 0x11, inet, sizeof(inet));
    uint8_t unix_block[216] = {'/', 't', 'm', 'p'};
    add_v2(add, 0x21, 0x31, unix_block, sizeof(unix_block));
    add_v2(add, 0x21, 0x12, inet, 12);
}
