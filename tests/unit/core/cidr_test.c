/* core/cidr: parsing IPv4 and IPv6 ranges (prefix bounds, host bits,
 * malformed text) and matching v4-mapped and IPv6 addresses, at and
 * around the prefix boundary. */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

/* addr as net/peer.h stores it: IPv4 v4-mapped. */
static void addr_of(const char *text, uint8_t out[16])
{
    memset(out, 0, 16);
    if (inet_pton(AF_INET, text, out + 12) == 1) {
        out[10] = out[11] = 0xff;
        return;
    }
    cr_assert_eq(inet_pton(AF_INET6, text, out), 1, "%s", text);
}

static bool in(const char *range, const char *addr)
{
    struct cidr c;
    cr_assert_eq(cidr_parse(&c, range, strlen(range)), 0, "%s", range);
    uint8_t a[16];
    addr_of(addr, a);
    return cidr_contains(&c, a);
}

Test(cidr, ipv4_ranges)
{
    cr_assert(in("10.0.0.0/8", "10.255.1.2"));
    cr_assert_not(in("10.0.0.0/8", "11.0.0.0"));
    cr_assert(in("192.168.1.128/25", "192.168.1.255"));
    cr_assert_not(in("192.168.1.128/25", "192.168.1.127"));
    cr_assert(in("127.0.0.1", "127.0.0.1"));
    cr_assert_not(in("127.0.0.1", "127.0.0.2"));
    cr_assert(in("127.0.0.1/32", "127.0.0.1"));
    cr_assert(in("0.0.0.0/0", "1.2.3.4"));
    /* An IPv4 range is its v4-mapped range: never a native IPv6 address. */
    cr_assert_not(in("0.0.0.0/0", "::1"));
    cr_assert_not(in("0.0.0.0/0", "2001:db8::1"));
}

Test(cidr, ipv6_ranges)
{
    cr_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
    cr_assert_not(in("2001:db8::/32", "2001:db9::1"));
    cr_assert(in("::1", "::1"));
    cr_assert_not(in("::1", "::2"));
    cr_assert(in("fe80::/10", "febf::1"));
    cr_assert_not(in("fe80::/10", "fec0::1"));
    cr_assert(in("::/0", "1.2.3.4"));
    cr_assert(in("::ffff:10.0.0.0/104", "10.9.8.7"));
}

Test(cidr, host_bits_past_the_prefix_are_cleared)
{
    struct cidr c;
    cr_assert_eq(cidr_parse(&c, "10.1.2.3/8", 10), 0);
    cr_assert_eq(c.bits, 96 + 8);
    static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0};
    cr_assert_arr_eq(c.addr, want, 16);
    cr_assert(in("10.1.2.3/8", "10.200.0.1"));
    cr_assert(in("2001:db8::1/127", "2001:db8::0"));
}

Test(cidr, only_len_bytes_are_read)
{
    struct cidr c;
    const char *s = "10.0.0.0/8,192.168.0.0/16";
    cr_assert_eq(cidr_parse(&c, s, 10), 0);
    cr_assert_eq(c.bits, 104);
}

Test(cidr, malformed_is_einval)
{
    static const char *bad[] = {"",
                                "/8",
                                "10.0.0.0/",
                                "10.0.0.0/33",
                                "10.0.0.0/08",
                                "10.0.0.0/-1",
                                "10.0.0.0/8x",
                                "2001:db8::/129",
                                "10.0.0",
                                "host.example",
                                "10.0.0.0/8/8",
                                "1.2.3.4 ",
                                "010.0.0.0",
                                "::1/1000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cidr c = {.bits = 7};
        cr_assert_eq(cidr_parse(&c, bad[i], strlen(bad[i])), -EINVAL, "'%s'", bad[i]);
        cr_assert_eq(c.bits, 7, "'%s' wrote *c", bad[i]);
    }
}

Test(cidr, any_of_a_list)
{
    struct cidr cs[2];
    cr_assert_eq(cidr_parse(&cs[0], "10.0.0.0/8", 10), 0);
    cr_assert_eq(cidr_parse(&cs[1], "::1", 3), 0);
    uint8_t a[16];
    addr_of("::1", a);
    cr_assert(cidr_any(cs, 2, a));
    addr_of("10.3.3.3", a);
    cr_assert(cidr_any(cs, 2, a));
    addr_of("127.0.0.1", a);
    cr_assert_not(cidr_any(cs, 2, a));
    cr_assert_not(cidr_any(cs, 0, a));
}
