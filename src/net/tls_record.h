/*
 * tls_record: the TLS record layer of a connection whose handshake is
 * done, for the AEAD ciphers (AES-128-GCM, AES-256-GCM,
 * ChaCha20-Poly1305), on wolfCrypt: TLS 1.3 (RFC 8446 section 5) and
 * TLS 1.2 (RFC 5246 section 6.2 with RFC 5288 AES-GCM and RFC 7905
 * ChaCha20-Poly1305).
 *
 * Why it exists: wolfSSL keeps some 56 KB per WOLFSSL for the whole life
 * of a connection. The tls transport lets wolfSSL do the handshake, takes
 * the traffic keys, frees the WOLFSSL and reads and writes records here
 * with about 130 bytes of state (struct tls_record).
 *
 * Pure functions over bytes and keys: no I/O, no logging. Records that
 * arrive in part are kept (malloc'd) only until they are complete. The
 * AES key schedules are not kept per connection (1.1 KB each in this
 * wolfSSL): each thread has a small cache of them, found by key. One
 * thread uses a struct tls_record at a time; it may move to another.
 */
#ifndef RINGMQ_NET_TLS_RECORD_H
#define RINGMQ_NET_TLS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_RECORD_HEADER    5u
#define TLS_RECORD_PLAIN_MAX (1u << 14)
/* A record's body at most (RFC 8446 5.2; TLS 1.2 AEAD records are
 * smaller). */
#define TLS_RECORD_BODY_MAX ((1u << 14) + 256u)
/* What one record adds to its plaintext at most: header, TLS 1.2's
 * explicit nonce (TLS 1.3's inner type is smaller), tag. */
#define TLS_RECORD_OVERHEAD (TLS_RECORD_HEADER + 8u + 16u)

/* Content types (RFC 8446 B.1). */
enum tls_record_type {
    TLS_RECORD_CHANGE_CIPHER_SPEC = 20,
    TLS_RECORD_ALERT = 21,
    TLS_RECORD_HANDSHAKE = 22,
    TLS_RECORD_APPLICATION_DATA = 23,
};

enum tls_record_cipher {
    TLS_RECORD_AES_GCM = 1,
    TLS_RECORD_CHACHA20_POLY1305,
};

/* One direction's traffic keys. iv: TLS 1.3 and ChaCha20-Poly1305 the
 * 12-byte IV the nonce is made of; TLS 1.2 AES-GCM the 4-byte salt in
 * front. seq: the next record's sequence number. */
struct tls_record_keys {
    uint8_t key[32];
    uint8_t iv[12];
    uint64_t seq;
};

/* A connection's record layer: public so that its user can place it
 * (and read tls13); its fields change only through these functions. */
struct tls_record {
    struct tls_record_keys rd, wr; /* the client's (read) and ours (write) */
    uint8_t *part;                 /* a record received in part, else NULL */
    uint16_t part_len, part_cap;
    uint8_t cipher; /* enum tls_record_cipher */
    uint8_t key_len;
    bool tls13;
};

/* Set r up (zeroed first) for version 1.3 (tls13) or 1.2, cipher and a
 * key of key_len bytes (16 or 32 for AES-GCM, 32 for ChaCha20-Poly1305);
 * the keys are copied. 0, or -EINVAL for a combination it cannot do. */
int tls_record_init(struct tls_record *r, bool tls13, enum tls_record_cipher cipher, size_t key_len,
                    const struct tls_record_keys *rd, const struct tls_record_keys *wr);

/* Free what r holds (a partial record) and wipe its keys. */
void tls_record_fini(struct tls_record *r);

/*
 * The next record of the input (*data, *len; advanced past what is used),
 * decrypted into out (TLS_RECORD_BODY_MAX bytes): 1 with its content type
 * in *type and *out_len bytes of content (TLS 1.3: the inner type and the
 * padding removed); 0 when the input is used up, a record begun being
 * kept in r until the rest comes; or -EPROTO (a record type not allowed
 * here, a bad version, no inner type: unexpected_message), -EMSGSIZE
 * (record_overflow), -EBADMSG (it does not authenticate: bad_record_mac),
 * -ENOMEM.
 */
int tls_record_read(struct tls_record *r, const uint8_t **data, size_t *len, uint8_t *out,
                    size_t *out_len, uint8_t *type);

/* One record of `type` holding in[0..len) (len <= TLS_RECORD_PLAIN_MAX),
 * written to out (room for len + TLS_RECORD_OVERHEAD; out may not overlap
 * in): its length, or -ENOMEM / -EOVERFLOW (the sequence numbers are used
 * up) / -EINVAL. */
long tls_record_write(struct tls_record *r, uint8_t type, const uint8_t *in, size_t len,
                      uint8_t *out);

/* The bytes `len` bytes of content take as records of at most
 * TLS_RECORD_PLAIN_MAX each (tls_record_write, one after another). */
size_t tls_record_wire_size(const struct tls_record *r, size_t len);

/* The calling thread ends: free its cache of AES key schedules.
 * Idempotent. */
void tls_record_thread_fini(void);

#endif
