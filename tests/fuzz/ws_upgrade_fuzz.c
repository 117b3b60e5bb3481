/*
 * ws_upgrade_fuzz: libFuzzer target for the WebSocket Upgrade request
 * reader (src/net/ws_upgrade.c: http-parser's callbacks, the header
 * checks, the answer).
 *
 * The first input byte picks how the rest is cut into pieces (the reader
 * is fed as receives arrive: one byte at a time, or in chunks); the rest is
 * the request. The same request is also read in one piece, and both reads
 * must agree: same outcome (more / answered / error status), same bytes
 * used by the request. Every answer must be well formed: a status line
 * with that status, CRLF CRLF at its end, within WS_UPGRADE_ANSWER_MAX, a
 * 28-character accept key in a 101. A broken invariant aborts.
 *
 * In CI, ws_upgrade_driver.c runs it over a fixed corpus (meson test
 * 'fuzz/ws_upgrade'). The real libFuzzer binary:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *       tests/fuzz/ws_upgrade_fuzz.c src/net/ws_upgrade.c -lhttp_parser -lwolfssl \
 *       -o ws_upgrade_fuzz
 *   mkdir -p corpus && ./ws_upgrade_fuzz -max_len=10000 corpus
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_upgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct outcome {
    int rc;      /* WS_UPGRADE_MORE, an error status, or the answer's status */
    size_t used; /* bytes of the input the request took (answered only) */
};

static const struct ws_upgrade_policy policy = {
    .path = "/mqtt",
    .origins = "http://a.example, https://b.example:8443",
};

static void check_answer(const char *ans, size_t n, int status)
{
    char line[32];
    CHECK(n > 0 && n < WS_UPGRADE_ANSWER_MAX);
    snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    CHECK(strncmp(ans, line, strlen(line)) == 0);
    CHECK(n >= 4 && memcmp(ans + n - 4, "\r\n\r\n", 4) == 0);
    if (status == 101) {
        const char *k = strstr(ans, "Sec-WebSocket-Accept: ");
        CHECK(k && k + 22 + 28 + 2 <= ans + n);
        CHECK(k[22 + 28] == '\r');
    } else {
        CHECK(strstr(ans, "\r\nConnection: close\r\n") != NULL);
    }
}

/* Read `len` bytes in pieces of the sizes `cut` gives (0: one piece). */
static struct outcome read_request(const uint8_t *req, size_t len, uint8_t cut)
{
    struct ws_upgrade *u = NULL;
    struct outcome o = {WS_UPGRADE_MORE, 0};
    size_t off = 0;
    while (off < len && o.rc == WS_UPGRADE_MORE) {
        size_t piece = cut ? (size_t)(cut & 0x0f) + 1 + (cut >> 4) * 97u : len;
        if (piece > len - off)
            piece = len - off;
        size_t used = 0;
        int rc = ws_upgrade_feed(&u, req + off, piece, &used);
        CHECK(rc != -ENOMEM);
        if (rc == WS_UPGRADE_DONE) {
            CHECK(used <= piece);
            o.used = off + used;
            char ans[WS_UPGRADE_ANSWER_MAX];
            size_t n = 0;
            o.rc = ws_upgrade_answer(u, &policy, ans, &n);
            CHECK(o.rc == 101 || o.rc == 400 || o.rc == 403 || o.rc == 404 || o.rc == 405 ||
                  o.rc == 426);
            check_answer(ans, n, o.rc);
        } else if (rc != WS_UPGRADE_MORE) {
            CHECK(rc == 400 || rc == 431);
            o.rc = rc;
            char ans[WS_UPGRADE_ANSWER_MAX];
            check_answer(ans, ws_upgrade_error(rc, ans), rc);
        }
        off += piece;
    }
    ws_upgrade_destroy(u);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cut = data[0] ? data[0] : 1;
    struct outcome whole = read_request(data + 1, size - 1, 0);
    struct outcome pieces = read_request(data + 1, size - 1, cut);
    /* A push parser: how the bytes arrive changes nothing. */
    CHECK(whole.rc == pieces.rc);
    if (whole.rc == 101)
        CHECK(whole.used == pieces.used);
    return 0;
}
