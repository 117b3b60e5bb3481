/*
 * vcache: auth_file's cache of recently verified credentials (see vcache.h
 * for the entry format and why it is safe to keep).
 *
 * Owns the table and the random key. Shard threads look up, the plugin's
 * worker threads insert, the main thread clears (reload) and destroys
 * (fini): one mutex guards the slots, held only to compare or copy a
 * 32-byte digest or two; the SHA-256 itself is computed before locking.
 *
 * Layout: 2-way set associative. Slot pairs (2s, 2s + 1) form set s, chosen
 * by the digest's first bytes (keyed, so no client can aim two credentials
 * at one set); with an odd number of slots the last set has one way. Two
 * hot users that land in one set both stay, which a direct-mapped table
 * would not allow. A miss costs one PBKDF2, never a wrong verdict.
 *
 * Must not: store or log a password, cache a failure, or extend an entry's
 * life on a hit (the TTL counts from the last real verification).
 */
#include "vcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#define VCACHE_KEY_LEN    32u
#define VCACHE_DIGEST_LEN WC_SHA256_DIGEST_SIZE

struct vcache_entry {
    uint8_t digest[VCACHE_DIGEST_LEN];
    uint64_t expires_ms; /* 0: empty; in use while now_ms < expires_ms */
};

/* Invariants: n_sets == (n_entries + 1) / 2; set s holds the slots 2s and
 * 2s + 1 that are below n_entries; `key` never changes between create and
 * destroy, so it is read without the lock. */
struct vcache {
    pthread_mutex_t lock; /* guards slots[] */
    uint8_t key[VCACHE_KEY_LEN];
    uint64_t ttl_ms;
    size_t n_entries, n_sets;
    struct vcache_entry slots[];
};

int vcache_create(size_t entries, uint64_t ttl_ms, struct vcache **out)
{
    if (entries == 0 || ttl_ms == 0)
        return -EINVAL;
    if (entries > (SIZE_MAX - sizeof(struct vcache)) / sizeof(struct vcache_entry))
        return -ENOMEM;
    struct vcache *c = calloc(1, sizeof(*c) + entries * sizeof(c->slots[0]));
    if (!c)
        return -ENOMEM;
    /* getrandom may return fewer bytes than asked only past 256 bytes or on
     * a signal; loop anyway rather than trust a short key. */
    size_t got = 0;
    while (got < sizeof(c->key)) {
        ssize_t n = getrandom(c->key + got, sizeof(c->key) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            explicit_bzero(c->key, sizeof(c->key));
            free(c);
            return -e;
        }
        got += (size_t)n;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->ttl_ms = ttl_ms;
    c->n_entries = entries;
    c->n_sets = (entries + 1) / 2;
    *out = c;
    return 0;
}

void vcache_destroy(struct vcache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    /* Key and digests together would let a memory disclosure test
     * password guesses offline at SHA-256 speed: wipe both. */
    explicit_bzero(c, sizeof(*c) + c->n_entries * sizeof(c->slots[0]));
    free(c);
}

/* SHA-256(key || encoded || 0x00 || pw). The NUL separates the two
 * variable-length parts: no (hash, password) pair can be shifted into
 * another. Returns 0 or -EIO (wolfCrypt failed, or lengths it cannot take). */
static int vcache_digest(const struct vcache *c, const char *encoded, const uint8_t *pw,
                         size_t pw_len, uint8_t out[VCACHE_DIGEST_LEN])
{
    static const uint8_t zero = 0;
    size_t enc_len = strlen(encoded);
    if (enc_len > UINT32_MAX || pw_len > UINT32_MAX)
        return -EIO;
    wc_Sha256 sha;
    if (wc_InitSha256(&sha) != 0)
        return -EIO;
    int rc = wc_Sha256Update(&sha, c->key, sizeof(c->key));
    if (rc == 0)
        rc = wc_Sha256Update(&sha, (const uint8_t *)encoded, (word32)enc_len);
    if (rc == 0)
        rc = wc_Sha256Update(&sha, &zero, 1);
    if (rc == 0 && pw_len > 0)
        rc = wc_Sha256Update(&sha, pw, (word32)pw_len);
    if (rc == 0)
        rc = wc_Sha256Final(&sha, out);
    wc_Sha256Free(&sha);
    /* The state's buffer may still hold the tail of the password. */
    explicit_bzero(&sha, sizeof(sha));
    return rc == 0 ? 0 : -EIO;
}

/* First slot of the digest's set, and how many ways it has (1 or 2). */
static size_t vcache_set(const struct vcache *c, const uint8_t *digest, size_t *ways)
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    size_t first = (size_t)(h % c->n_sets) * 2;
    *ways = first + 1 < c->n_entries ? 2 : 1;
    return first;
}

/* 1 when equal, 0 when not, in the same time wherever they differ. */
static unsigned digest_equal(const uint8_t *a, const uint8_t *b)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < VCACHE_DIGEST_LEN; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return (unsigned)(1 & ((diff - 1u) >> 8));
}

bool vcache_lookup(struct vcache *c, const char *encoded, const uint8_t *pw, size_t pw_len,
                   uint64_t now_ms)
{
    uint8_t d[VCACHE_DIGEST_LEN];
    if (vcache_digest(c, encoded, pw, pw_len, d) != 0)
        return false; /* a miss: the caller does the full check */
    size_t ways;
    size_t first = vcache_set(c, d, &ways);
    unsigned hit = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t w = 0; w < ways; w++) {
        const struct vcache_entry *e = &c->slots[first + w];
        hit |= digest_equal(e->digest, d) & (unsigned)(now_ms < e->expires_ms);
    }
    pthread_mutex_unlock(&c->lock);
    explicit_bzero(d, sizeof(d));
    return hit != 0;
}

void vcache_insert(struct vcache *c, const char *encoded, const uint8_t *pw, size_t pw_len,
                   uint64_t now_ms)
{
    uint8_t d[VCACHE_DIGEST_LEN];
    if (vcache_digest(c, encoded, pw, pw_len, d) != 0)
        return; /* not remembered: the next CONNECT pays a PBKDF2 */
    size_t ways;
    size_t first = vcache_set(c, d, &ways);
    pthread_mutex_lock(&c->lock);
    /* The same credentials again (two CONNECTs verified side by side):
     * refresh that slot rather than fill the other way with a copy. Else
     * an empty or expired way, else the one that expires first, which with
     * one TTL for all is the older. */
    struct vcache_entry *victim = &c->slots[first];
    for (size_t w = 0; w < ways; w++) {
        struct vcache_entry *e = &c->slots[first + w];
        if (digest_equal(e->digest, d)) {
            victim = e;
            break;
        }
        if (e->expires_ms <= now_ms || e->expires_ms < victim->expires_ms)
            victim = e;
    }
    memcpy(victim->digest, d, sizeof(d));
    victim->expires_ms = now_ms + c->ttl_ms;
    pthread_mutex_unlock(&c->lock);
    explicit_bzero(d, sizeof(d));
}

void vcache_clear(struct vcache *c)
{
    pthread_mutex_lock(&c->lock);
    explicit_bzero(c->slots, c->n_entries * sizeof(c->slots[0]));
    pthread_mutex_unlock(&c->lock);
}
