/* net/tls_record: records written by one side read back by the other for
 * TLS 1.2 and 1.3 with AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305;
 * input split at every byte offset and fed a byte at a time; a flipped
 * byte anywhere, a replayed record and a wrong key rejected; TLS 1.3
 * padding and a record with no inner type; an oversized record; content
 * types a version does not allow. (Interoperation with real clients is in
 * tests/e2e/tls_test.c.) */
#include "net/tls_record.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct suite {
    bool tls13;
    enum tls_record_cipher cipher;
    size_t key_len;
};

static const struct suite suites[] = {
    {true, TLS_RECORD_AES_GCM, 16},           {true, TLS_RECORD_AES_GCM, 32},
    {true, TLS_RECORD_CHACHA20_POLY1305, 32}, {false, TLS_RECORD_AES_GCM, 16},
    {false, TLS_RECORD_AES_GCM, 32},          {false, TLS_RECORD_CHACHA20_POLY1305, 32},
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

static void keys_fill(struct tls_record_keys *k, uint8_t seed, uint64_t seq)
{
    for (unsigned i = 0; i < sizeof(k->key); i++)
        k->key[i] = (uint8_t)(seed + i * 7);
    for (unsigned i = 0; i < sizeof(k->iv); i++)
        k->iv[i] = (uint8_t)(seed * 3 + i);
    k->seq = seq;
}

/* A writer (the client: its wr) and a reader (the broker: the same keys
 * as its rd), starting at sequence number seq. */
static void pair_init(const struct suite *s, struct tls_record *w, struct tls_record *r,
                      uint64_t seq)
{
    struct tls_record_keys a, b;
    keys_fill(&a, 11, seq);
    keys_fill(&b, 99, 0);
    cr_assert_eq(tls_record_init(w, s->tls13, s->cipher, s->key_len, &b, &a), 0);
    cr_assert_eq(tls_record_init(r, s->tls13, s->cipher, s->key_len, &a, &b), 0);
}

static uint8_t out[TLS_RECORD_BODY_MAX];

/* Everything of in[0..len) read, records' content appended to got. The
 * number of records, or the first error. */
static int read_all(struct tls_record *r, const uint8_t *in, size_t len, uint8_t *got,
                    size_t *got_len)
{
    int records = 0;
    for (;;) {
        size_t n;
        uint8_t type;
        int rc = tls_record_read(r, &in, &len, out, &n, &type);
        if (rc <= 0)
            return rc < 0 ? rc : records;
        cr_assert_eq(type, TLS_RECORD_APPLICATION_DATA);
        memcpy(got + *got_len, out, n);
        *got_len += n;
        records++;
    }
}

/* Three records: 100 bytes, 16 KiB, 0 bytes. */
static size_t write_three(struct tls_record *w, uint8_t *wire, uint8_t *plain)
{
    for (size_t i = 0; i < 100 + TLS_RECORD_PLAIN_MAX; i++)
        plain[i] = (uint8_t)(i * 31 + 5);
    size_t at = 0;
    const size_t lens[] = {100, TLS_RECORD_PLAIN_MAX, 0};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        long n = tls_record_write(w, TLS_RECORD_APPLICATION_DATA, plain + off, lens[i], wire + at);
        cr_assert_gt(n, 0);
        cr_assert_leq((size_t)n, lens[i] + TLS_RECORD_OVERHEAD);
        at += (size_t)n;
        off += lens[i];
    }
    size_t per = tls_record_wire_size(w, 1) - 1; /* what a record adds */
    cr_assert_eq(at, 100 + TLS_RECORD_PLAIN_MAX + 3 * per);
    return at;
}

static uint8_t wire[3 * TLS_RECORD_OVERHEAD + TLS_RECORD_PLAIN_MAX + 200];
static uint8_t plain[TLS_RECORD_PLAIN_MAX + 200], got[TLS_RECORD_PLAIN_MAX + 200];

Test(tls_record, round_trip_for_every_version_and_cipher)
{
    for (unsigned i = 0; i < NSUITES; i++) {
        struct tls_record w, r;
        pair_init(&suites[i], &w, &r, i == 0 ? 0 : 1000 + i);
        size_t n = write_three(&w, wire, plain);
        size_t got_len = 0;
        cr_assert_eq(read_all(&r, wire, n, got, &got_len), 3, "suite %u", i);
        cr_assert_eq(got_len, 100 + TLS_RECORD_PLAIN_MAX);
        cr_assert_arr_eq(got, plain, got_len);
        cr_assert_eq(r.rd.seq, w.wr.seq, "both sides counted the records");
        cr_assert_null(r.part);
        tls_record_fini(&w);
        tls_record_fini(&r);
    }
}

Test(tls_record, input_split_at_every_byte_offset)
{
    for (unsigned i = 0; i < NSUITES; i++) {
        struct tls_record w, r;
        pair_init(&suites[i], &w, &r, 7);
        size_t n = write_three(&w, wire, plain);
        for (size_t k = 0; k <= n; k += (k < 300 || k > n - 300) ? 1 : 97) {
            struct tls_record_keys rd = r.rd;
            rd.seq = 7;
            cr_assert_eq(tls_record_init(&r, r.tls13, r.cipher, r.key_len, &rd, &r.wr), 0);
            size_t got_len = 0;
            int a = read_all(&r, wire, k, got, &got_len);
            int b = read_all(&r, wire + k, n - k, got, &got_len);
            cr_assert_eq(a + b, 3, "suite %u, split at %zu", i, k);
            cr_assert_eq(got_len, 100 + TLS_RECORD_PLAIN_MAX);
            cr_assert_arr_eq(got, plain, got_len);
            cr_assert_null(r.part, "a complete record is not kept");
        }
        tls_record_fini(&w);
        tls_record_fini(&r);
    }
}

Test(tls_record, input_a_byte_at_a_time)
{
    struct tls_record w, r;
    pair_init(&suites[2], &w, &r, 0);
    size_t n = write_three(&w, wire, plain);
    size_t got_len = 0;
    int records = 0;
    for (size_t k = 0; k < n; k++)
        records += read_all(&r, wire + k, 1, got, &got_len);
    cr_assert_eq(records, 3);
    cr_assert_arr_eq(got, plain, got_len);
    tls_record_fini(&w);
    tls_record_fini(&r);
}

Test(tls_record, a_flipped_byte_anywhere_is_rejected)
{
    for (unsigned i = 0; i < NSUITES; i++) {
        struct tls_record w, r;
        pair_init(&suites[i], &w, &r, 3);
        long n =
            tls_record_write(&w, TLS_RECORD_APPLICATION_DATA, (const uint8_t *)"hello", 5, wire);
        cr_assert_gt(n, 0);
        /* The header's length bytes change the record's extent: skip them. */
        for (long k = 0; k < n; k++) {
            if (k == 3 || k == 4)
                continue;
            uint8_t copy[64];
            memcpy(copy, wire, (size_t)n);
            copy[k] ^= 0x20;
            struct tls_record rr;
            struct tls_record_keys rd = r.rd;
            cr_assert_eq(tls_record_init(&rr, r.tls13, r.cipher, r.key_len, &rd, &r.wr), 0);
            size_t got_len = 0;
            int rc = read_all(&rr, copy, (size_t)n, got, &got_len);
            cr_assert(rc == -EBADMSG || (k < 3 && rc == -EPROTO), "suite %u, byte %ld: %d", i, k,
                      rc);
            tls_record_fini(&rr);
        }
        tls_record_fini(&w);
        tls_record_fini(&r);
    }
}

Test(tls_record, a_replayed_record_or_another_key_is_rejected)
{
    struct tls_record w, r;
    pair_init(&suites[0], &w, &r, 0);
    long n = tls_record_write(&w, TLS_RECORD_APPLICATION_DATA, (const uint8_t *)"once", 4, wire);
    size_t got_len = 0;
    cr_assert_eq(read_all(&r, wire, (size_t)n, got, &got_len), 1);
    cr_assert_eq(read_all(&r, wire, (size_t)n, got, &got_len), -EBADMSG, "replayed");
    struct tls_record_keys other = r.rd;
    other.key[5] ^= 1;
    other.seq = 0;
    cr_assert_eq(tls_record_init(&r, true, TLS_RECORD_AES_GCM, 16, &other, &w.wr), 0);
    cr_assert_eq(read_all(&r, wire, (size_t)n, got, &got_len), -EBADMSG, "another key");
    tls_record_fini(&w);
    tls_record_fini(&r);
}

/* RFC 8446 5.4: zeros after the inner type are padding; all zeros is no
 * type at all. Written as content ending in the type byte, with type 0. */
Test(tls_record, tls13_padding_is_removed_and_no_inner_type_refused)
{
    struct tls_record w, r;
    pair_init(&suites[1], &w, &r, 0);
    static const uint8_t padded[] = {'a', 'b', 'c', TLS_RECORD_ALERT, 0, 0, 0, 0, 0, 0};
    long n = tls_record_write(&w, 0, padded, sizeof(padded), wire);
    const uint8_t *in = wire;
    size_t len = (size_t)n, got_len;
    uint8_t type;
    cr_assert_eq(tls_record_read(&r, &in, &len, out, &got_len, &type), 1);
    cr_assert_eq(type, TLS_RECORD_ALERT);
    cr_assert_eq(got_len, 3);
    cr_assert_arr_eq(out, "abc", 3);
    static const uint8_t zeros[4] = {0};
    n = tls_record_write(&w, 0, zeros, sizeof(zeros), wire);
    in = wire;
    len = (size_t)n;
    cr_assert_eq(tls_record_read(&r, &in, &len, out, &got_len, &type), -EPROTO);
    tls_record_fini(&w);
    tls_record_fini(&r);
}

Test(tls_record, content_types_follow_the_version)
{
    struct tls_record w12, r12, w13, r13;
    pair_init(&suites[3], &w12, &r12, 0);
    pair_init(&suites[0], &w13, &r13, 0);
    /* TLS 1.2 carries an alert in an alert record; TLS 1.3 inside
     * application_data. */
    long n = tls_record_write(&w12, TLS_RECORD_ALERT, (const uint8_t *)"\x01\x00", 2, wire);
    cr_assert_eq(wire[0], TLS_RECORD_ALERT);
    const uint8_t *in = wire;
    size_t len = (size_t)n, got_len;
    uint8_t type;
    cr_assert_eq(tls_record_read(&r12, &in, &len, out, &got_len, &type), 1);
    cr_assert_eq(type, TLS_RECORD_ALERT);
    n = tls_record_write(&w13, TLS_RECORD_ALERT, (const uint8_t *)"\x01\x00", 2, wire);
    cr_assert_eq(wire[0], TLS_RECORD_APPLICATION_DATA);
    in = wire;
    len = (size_t)n;
    cr_assert_eq(tls_record_read(&r13, &in, &len, out, &got_len, &type), 1);
    cr_assert_eq(type, TLS_RECORD_ALERT);
    /* A change_cipher_spec (or a clear alert) after the handshake. */
    static const uint8_t ccs[] = {TLS_RECORD_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1};
    in = ccs;
    len = sizeof(ccs);
    cr_assert_eq(tls_record_read(&r13, &in, &len, out, &got_len, &type), -EPROTO);
    in = ccs;
    len = sizeof(ccs);
    cr_assert_eq(tls_record_read(&r12, &in, &len, out, &got_len, &type), -EPROTO);
    tls_record_fini(&w12);
    tls_record_fini(&r12);
    tls_record_fini(&w13);
    tls_record_fini(&r13);
}

Test(tls_record, a_record_over_the_limit_is_refused_from_its_header)
{
    struct tls_record w, r;
    pair_init(&suites[0], &w, &r, 0);
    uint8_t hdr[] = {TLS_RECORD_APPLICATION_DATA, 3, 3, 0, 0};
    size_t body = TLS_RECORD_BODY_MAX + 1;
    hdr[3] = (uint8_t)(body >> 8);
    hdr[4] = (uint8_t)body;
    const uint8_t *in = hdr;
    size_t len = sizeof(hdr), got_len;
    uint8_t type;
    cr_assert_eq(tls_record_read(&r, &in, &len, out, &got_len, &type), -EMSGSIZE);
    /* The same, its header in two parts. */
    in = hdr;
    len = 2;
    cr_assert_eq(tls_record_read(&r, &in, &len, out, &got_len, &type), 0);
    len = 3;
    cr_assert_eq(tls_record_read(&r, &in, &len, out, &got_len, &type), -EMSGSIZE);
    cr_assert_eq(
        tls_record_write(&w, TLS_RECORD_APPLICATION_DATA, plain, TLS_RECORD_PLAIN_MAX + 1, wire),
        -EINVAL);
    tls_record_fini(&w);
    tls_record_fini(&r);
    tls_record_thread_fini();
}

Test(tls_record, init_refuses_what_it_cannot_do)
{
    struct tls_record r;
    struct tls_record_keys k;
    keys_fill(&k, 1, 0);
    cr_assert_eq(tls_record_init(&r, true, TLS_RECORD_AES_GCM, 24, &k, &k), -EINVAL);
    cr_assert_eq(tls_record_init(&r, true, TLS_RECORD_CHACHA20_POLY1305, 16, &k, &k), -EINVAL);
    cr_assert_eq(tls_record_init(&r, false, 0, 16, &k, &k), -EINVAL);
}
