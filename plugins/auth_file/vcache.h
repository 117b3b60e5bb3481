/*
 * vcache: a fixed-size table of recently *successful* password checks, so
 * that a client reconnecting with the credentials it used seconds ago does
 * not pay another PBKDF2. An entry is a keyed digest, never the password:
 *
 *     SHA-256(key || encoded hash from the password file || 0x00 || password)
 *
 * with `key` 32 random bytes drawn at create time (getrandom), plus an
 * expiry. Binding to the encoded hash (which holds salt and iterations)
 * means a changed password misses by construction. Safe from any thread.
 */
#ifndef RINGMQ_PLUGIN_VCACHE_H
#define RINGMQ_PLUGIN_VCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vcache;

/* A table of `entries` slots (at least 1) whose entries live `ttl_ms`
 * milliseconds (at least 1) after they were inserted. Returns 0 and *out,
 * -EINVAL for a zero argument, -ENOMEM, or -errno from getrandom. */
int vcache_create(size_t entries, uint64_t ttl_ms, struct vcache **out);

/* Wipe the key and every entry, then free. NULL is a no-op. No call on `c`
 * may be running or start. */
void vcache_destroy(struct vcache *c);

/* Whether `pw` was inserted for `encoded` (a NUL-terminated hash string, as
 * stored in the password file) and has not expired at `now_ms`. Both are
 * borrowed. The digest comparison takes the same time whatever matched. */
bool vcache_lookup(struct vcache *c, const char *encoded, const uint8_t *pw, size_t pw_len,
                   uint64_t now_ms);

/* Remember that `pw` verified against `encoded` at `now_ms`, evicting the
 * older entry of its set when both are in use. Call only after a successful
 * check: whatever is inserted is allowed without one until it expires. */
void vcache_insert(struct vcache *c, const char *encoded, const uint8_t *pw, size_t pw_len,
                   uint64_t now_ms);

/* Forget every entry (a reload). */
void vcache_clear(struct vcache *c);

#endif
