/*
 * Password hashes for auth_file and ringmq-passwd (one file compiled into
 * both): salted PBKDF2-HMAC-SHA256 from wolfCrypt, stored as
 *
 *     $pbkdf2-sha256$ITERATIONS$SALT_B64$HASH_B64
 *
 * (standard base64 alphabet with '=' padding; none of its characters is ':'
 * or '$'), and the password-file line `username:tenant:user_id:HASH`.
 */
#ifndef RINGMQ_PLUGIN_PWHASH_H
#define RINGMQ_PLUGIN_PWHASH_H

#include <stddef.h>
#include <stdint.h>

#define PWHASH_PREFIX             "$pbkdf2-sha256$"
#define PWHASH_MIN_ITERATIONS     10000u
#define PWHASH_DEFAULT_ITERATIONS 50000u
#define PWHASH_MAX_ITERATIONS     10000000u
#define PWHASH_SALT_LEN           16u
#define PWHASH_KEY_LEN            32u
/* Enough for any encoding pwhash_encode writes, NUL included. */
#define PWHASH_ENCODED_MAX 128u

/* Hash `pw` with a fresh random salt and `iterations` rounds into `out` (NUL
 * terminated). Returns 0, -EINVAL (iterations out of range, out too small)
 * or -EIO (wolfCrypt failed). */
int pwhash_encode(const uint8_t *pw, size_t pw_len, uint32_t iterations, char *out, size_t out_len);

/* Hash `pw` with the given salt (exposed for tests and pwhash_encode).
 * Returns 0 or -EINVAL / -EIO. */
int pwhash_encode_salted(const uint8_t *pw, size_t pw_len, uint32_t iterations, const uint8_t *salt,
                         size_t salt_len, char *out, size_t out_len);

/* Check `pw` against an encoding written by pwhash_encode. Returns 1 when it
 * matches, 0 when it does not, -EINVAL when `encoded` is malformed (or names
 * fewer than PWHASH_MIN_ITERATIONS rounds), -EIO when wolfCrypt failed. The
 * digest comparison takes the same time wherever the first difference is. */
int pwhash_verify(const char *encoded, const uint8_t *pw, size_t pw_len);

/* A well-formed encoding of `iterations` rounds with an all-zero salt and
 * key, written without hashing: checking any password against it costs what
 * checking a real one of that many rounds costs (no password is known to
 * match it, and auth_file refuses unknown users whatever the result).
 * Returns 0 or -EINVAL (iterations out of range, out too small). */
int pwhash_dummy(uint32_t iterations, char *out, size_t out_len);

/* The number of rounds an encoding names, or -EINVAL when it does not start
 * with PWHASH_PREFIX and a round count within the accepted range. */
long pwhash_iterations(const char *encoded);

/* A password-file line may name a client certificate instead of a
 * password hash: `user:tenant:user_id:$x509-sha256$HEX` (the certificate's
 * SHA-256, 64 hex digits, colons allowed), `$x509-subject$SUBJECT` (as
 * "/O=Acme/CN=dev-1") or `$x509-cn$CN`. No hash starts so. */
#define PWLINE_CERT_PREFIX "$x509-"

/* The fields of one password-file line, pointing into the caller's buffer. */
struct pwline {
    char *user;
    char *tenant;
    char *user_id; /* empty in the file: the same as user */
    char *hash;
};

/* Split `line` (modified in place: ':' and a trailing "\n" / "\r\n" become
 * NUL) into its four fields. Returns 0, 1 for a blank or '#' comment line
 * (nothing to do), or -EINVAL when a field is missing or user / tenant is
 * empty. */
int pwline_split(char *line, struct pwline *out);

/* Whether `s` may be stored in a field of the password file: non-empty, no
 * ':', no control characters (newlines included). */
int pwline_field_ok(const char *s);

#endif
