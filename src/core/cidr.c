/*
 * cidr: parsing address ranges and matching addresses against them (see
 * cidr.h). No allocation, no state.
 */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* "0".."max" in decimal, no sign, no leading zero; -1 otherwise. */
static int prefix_len(const char *s, size_t len, int max)
{
    if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

static void clear_host_bits(struct cidr *c)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned lo = i * 8;
        if (lo >= c->bits)
            c->addr[i] = 0;
        else if (lo + 8 > c->bits)
            c->addr[i] &= (uint8_t)(0xffu << (8 - (c->bits - lo)));
    }
}

int cidr_parse(struct cidr *c, const char *s, size_t len)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    char text[64];
    if (alen == 0 || alen >= sizeof(text))
        return -EINVAL;
    memcpy(text, s, alen);
    text[alen] = '\0';
    struct cidr r;
    int max;
    if (inet_pton(AF_INET, text, r.addr + 12) == 1) {
        memcpy(r.addr, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        max = 32;
    } else if (inet_pton(AF_INET6, text, r.addr) == 1) {
        max = 128;
    } else {
        return -EINVAL;
    }
    int n = max;
    if (slash) {
        n = prefix_len(slash + 1, len - alen - 1, max);
        if (n < 0)
            return -EINVAL;
    }
    r.bits = (uint8_t)(n + (128 - max));
    clear_host_bits(&r);
    *c = r;
    return 0;
}

bool cidr_contains(const struct cidr *c, const uint8_t addr[16])
{
    unsigned whole = c->bits / 8u, rest = c->bits % 8u;
    if (memcmp(c->addr, addr, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (addr[whole] & mask) == c->addr[whole];
}

bool cidr_any(const struct cidr *cs, size_t n, const uint8_t addr[16])
{
    for (size_t i = 0; i < n; i++)
        if (cidr_contains(&cs[i], addr))
            return true;
    return false;
}
