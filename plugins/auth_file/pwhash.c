/*
 * Password hashing shared by the auth_file plugin and tools/ringmq-passwd:
 * PBKDF2-HMAC-SHA256 (wolfCrypt wc_PBKDF2), a 16-byte salt from wolfCrypt's
 * DRBG, base64 written here (the format needs no line breaks and a decoder
 * that rejects anything unexpected), and a constant-time digest comparison.
 * Pure functions over caller buffers; safe on any thread (each call has its
 * own RNG and hashing state).
 */
#include "pwhash.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns the length written (without NUL) or 0 when `out` is too small. */
static size_t b64_encode(const uint8_t *in, size_t n, char *out, size_t out_len)
{
    size_t need = (n + 2) / 3 * 4;
    if (need + 1 > out_len)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* Decode exactly `len` characters of padded base64. Returns the number of
 * bytes written or -EINVAL. */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t out_len)
{
    if (len == 0 || len % 4 != 0)
        return -EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            /* '=' only in the last two places of the last quad. */
            if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || in[i + 3] == '=')) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = b64_value(c);
            if (v[k] < 0)
                return -EINVAL;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t bytes = 3 - (size_t)pad;
        if (o + bytes > out_len)
            return -EINVAL;
        out[o++] = (uint8_t)(w >> 16);
        if (bytes > 1)
            out[o++] = (uint8_t)(w >> 8);
        if (bytes > 2)
            out[o++] = (uint8_t)w;
    }
    return (int)o;
}

static int pbkdf2(const uint8_t *pw, size_t pw_len, const uint8_t *salt, size_t salt_len,
                  uint32_t iterations, uint8_t key[PWHASH_KEY_LEN])
{
    /* wolfCrypt takes int lengths; a password longer than that is not one. */
    if (pw_len > 65535 || salt_len > 256)
        return -EINVAL;
    /* wc_PBKDF2 rejects a NULL password even when its length is 0. */
    static const uint8_t empty[1];
    int rc = wc_PBKDF2(key, pw_len ? pw : empty, (int)pw_len, salt, (int)salt_len, (int)iterations,
                       (int)PWHASH_KEY_LEN, WC_SHA256);
    return rc == 0 ? 0 : -EIO;
}

int pwhash_encode_salted(const uint8_t *pw, size_t pw_len, uint32_t iterations, const uint8_t *salt,
                         size_t salt_len, char *out, size_t out_len)
{
    if (iterations < PWHASH_MIN_ITERATIONS || iterations > PWHASH_MAX_ITERATIONS || salt_len == 0 ||
        salt_len > 64)
        return -EINVAL;
    uint8_t key[PWHASH_KEY_LEN];
    int rc = pbkdf2(pw, pw_len, salt, salt_len, iterations, key);
    if (rc != 0)
        return rc;
    char salt_b64[96], key_b64[64];
    if (b64_encode(salt, salt_len, salt_b64, sizeof(salt_b64)) == 0 ||
        b64_encode(key, sizeof(key), key_b64, sizeof(key_b64)) == 0)
        return -EINVAL;
    int n = snprintf(out, out_len, PWHASH_PREFIX "%u$%s$%s", iterations, salt_b64, key_b64);
    return n > 0 && (size_t)n < out_len ? 0 : -EINVAL;
}

int pwhash_encode(const uint8_t *pw, size_t pw_len, uint32_t iterations, char *out, size_t out_len)
{
    uint8_t salt[PWHASH_SALT_LEN];
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0)
        return -EIO;
    int rc = wc_RNG_GenerateBlock(&rng, salt, sizeof(salt));
    wc_FreeRng(&rng);
    if (rc != 0)
        return -EIO;
    return pwhash_encode_salted(pw, pw_len, iterations, salt, sizeof(salt), out, out_len);
}

int pwhash_dummy(uint32_t iterations, char *out, size_t out_len)
{
    if (iterations < PWHASH_MIN_ITERATIONS || iterations > PWHASH_MAX_ITERATIONS)
        return -EINVAL;
    static const uint8_t zero[PWHASH_KEY_LEN];
    char salt_b64[PWHASH_SALT_LEN * 2], key_b64[PWHASH_KEY_LEN * 2];
    b64_encode(zero, PWHASH_SALT_LEN, salt_b64, sizeof(salt_b64));
    b64_encode(zero, PWHASH_KEY_LEN, key_b64, sizeof(key_b64));
    int n = snprintf(out, out_len, PWHASH_PREFIX "%u$%s$%s", iterations, salt_b64, key_b64);
    return n < 0 || (size_t)n >= out_len ? -EINVAL : 0;
}

/* Parses PREFIX ITERATIONS '$'; *rest points after the '$'. */
static long parse_iterations(const char *encoded, const char **rest)
{
    size_t plen = strlen(PWHASH_PREFIX);
    if (strncmp(encoded, PWHASH_PREFIX, plen) != 0)
        return -EINVAL;
    const char *p = encoded + plen;
    if (*p < '1' || *p > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long iterations = strtoul(p, &end, 10);
    if (errno != 0 || *end != '$' || iterations < PWHASH_MIN_ITERATIONS ||
        iterations > PWHASH_MAX_ITERATIONS)
        return -EINVAL;
    *rest = end + 1;
    return (long)iterations;
}

long pwhash_iterations(const char *encoded)
{
    const char *rest;
    return parse_iterations(encoded, &rest);
}

int pwhash_verify(const char *encoded, const uint8_t *pw, size_t pw_len)
{
    const char *salt_b64;
    long iterations = parse_iterations(encoded, &salt_b64);
    if (iterations < 0)
        return -EINVAL;
    const char *dollar = strchr(salt_b64, '$');
    if (!dollar)
        return -EINVAL;
    uint8_t salt[64];
    int salt_len = b64_decode(salt_b64, (size_t)(dollar - salt_b64), salt, sizeof(salt));
    if (salt_len <= 0)
        return -EINVAL;
    uint8_t want[PWHASH_KEY_LEN + 2];
    const char *key_b64 = dollar + 1;
    int key_len = b64_decode(key_b64, strlen(key_b64), want, sizeof(want));
    if (key_len != (int)PWHASH_KEY_LEN)
        return -EINVAL;

    uint8_t got[PWHASH_KEY_LEN];
    int rc = pbkdf2(pw, pw_len, salt, (size_t)salt_len, (uint32_t)iterations, got);
    if (rc != 0)
        return rc;
    /* Constant time: accumulate every difference, branch once at the end, so
     * the time taken says nothing about how many leading bytes matched. */
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < PWHASH_KEY_LEN; i++)
        diff |= (uint8_t)(got[i] ^ want[i]);
    return diff == 0 ? 1 : 0;
}

int pwline_field_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == ':' || *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

int pwline_split(char *line, struct pwline *out)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    const char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0' || *s == '#')
        return 1;
    char *f[4];
    f[0] = line;
    for (int i = 1; i < 4; i++) {
        char *c = strchr(f[i - 1], ':');
        if (!c)
            return -EINVAL;
        *c = '\0';
        f[i] = c + 1;
    }
    /* A hash never holds ':', so a fifth field means a broken line; a
     * certificate identity may (a subject DN, a fingerprint with colons). */
    const char *cred = f[3][0] == '!' ? f[3] + 1 : f[3];
    bool cert = strncmp(cred, PWLINE_CERT_PREFIX, strlen(PWLINE_CERT_PREFIX)) == 0;
    if ((!cert && strchr(f[3], ':')) || !*f[0] || !*f[1] || !*f[3])
        return -EINVAL;
    out->user = f[0];
    out->tenant = f[1];
    out->user_id = *f[2] ? f[2] : f[0];
    out->hash = f[3];
    return 0;
}
