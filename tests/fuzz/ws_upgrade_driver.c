/*
 * ws_upgrade_driver: a plain main() that runs the Upgrade reader's fuzz
 * target (ws_upgrade_fuzz.c) over a deterministic corpus, as an ordinary
 * test under the sanitizers, without libFuzzer.
 *
 * The corpus is a few Upgrade requests (good ones, each refusal, a header
 * block near and over the 8 KiB bound), every truncation of each, then
 * inputs mutated from them by a fixed-seed xorshift generator: bit flips,
 * bytes and HTTP tokens inserted, deletes, truncation, lines duplicated.
 * Each input's first byte decides how it is cut into receives. With file
 * arguments it replays those files instead (a crash from libFuzzer).
 *
 * Bounded by DRIVER_ITERATIONS and DRIVER_MAX_SECONDS (a slow sanitizer
 * build stays inside the test timeout); the bound asserts nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DRIVER_ITERATIONS  300000u
#define DRIVER_MAX_SECONDS 20.0
#define MAX_INPUT          10000

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

#define REQ_HEAD "GET /mqtt HTTP/1.1\r\nHost: h\r\n"
#define REQ_WS                                                                                     \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                                                \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

static const char *const seeds[] = {
    REQ_HEAD REQ_WS "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    REQ_HEAD REQ_WS "Sec-WebSocket-Protocol: chat, mqttv3.1\r\nOrigin: http://a.example\r\n\r\n",
    REQ_HEAD REQ_WS "Sec-WebSocket-Protocol: mqtt\r\nOrigin: https://evil.example\r\n\r\n\x82\x80",
    "GET /other HTTP/1.1\r\n" REQ_WS "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    REQ_HEAD REQ_WS "\r\n",
    "POST /mqtt HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    "GET /mqtt HTTP/1.0\r\n\r\n",
    REQ_HEAD "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key:\r\n\r\n",
    REQ_HEAD "Sec-WebSocket-Key: a\r\nSec-WebSocket-Key: b\r\nSec-WebSocket-Version: 8\r\n\r\n",
    "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
};

static const char *const tokens[] = {
    "\r\n",
    "\r\n\r\n",
    ":",
    ", ",
    " ",
    "\t",
    "Upgrade",
    "websocket",
    "Connection: upgrade\r\n",
    "Sec-WebSocket-Protocol: mqtt\r\n",
    "==",
    "13",
    "?",
    "/mqtt",
    "\0",
    "\xff",
    "HTTP/1.1",
    "Origin: http://a.example\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Content-Length: 99\r\n",
};

static void run(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1); /* exact size: ASan sees an overread */
    if (!c)
        abort();
    memcpy(c, p, n);
    LLVMFuzzerTestOneInput(c, n);
    free(c);
}

static void insert(uint8_t *b, size_t *n, const void *what, size_t k)
{
    if (*n + k > MAX_INPUT)
        return;
    size_t at = 1 + below(*n);
    memmove(b + at + k, b + at, *n - at);
    memcpy(b + at, what, k);
    *n += k;
}

static void mutate(uint8_t *b, size_t *n)
{
    for (int m = 0, count = 1 + (int)below(4); m < count; m++) {
        switch (below(6)) {
        case 0:
            b[below(*n)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: {
            uint8_t c = (uint8_t)rng();
            insert(b, n, &c, 1);
            break;
        }
        case 2: {
            const char *t = tokens[below(sizeof(tokens) / sizeof(tokens[0]))];
            insert(b, n, t, t[0] ? strlen(t) : 1);
            break;
        }
        case 3:
            if (*n > 2) {
                size_t at = 1 + below(*n - 1), k = 1 + below(*n - at);
                memmove(b + at, b + at + k, *n - at - k);
                *n -= k;
            }
            break;
        case 4:
            *n = 1 + below(*n);
            break;
        default: { /* a run of filler: the header bound */
            static uint8_t fill[4096];
            memset(fill, 'a' + (int)below(26), sizeof(fill));
            insert(b, n, fill, below(sizeof(fill)));
            break;
        }
        }
    }
}

static int replay(int argc, char **argv)
{
    static uint8_t b[1 << 20];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        size_t n = fread(b, 1, sizeof(b), f);
        fclose(f);
        run(b, n);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return replay(argc, argv);
    static uint8_t b[MAX_INPUT + 1];
    size_t nseeds = sizeof(seeds) / sizeof(seeds[0]);
    unsigned long runs = 0;
    for (size_t s = 0; s < nseeds; s++) {
        size_t len = strlen(seeds[s]);
        for (size_t k = 0; k <= len; k++, runs++) {
            b[0] = (uint8_t)(k * 31 + 1); /* vary the cut */
            memcpy(b + 1, seeds[s], k);
            run(b, k + 1);
        }
    }
    clock_t start = clock();
    unsigned iter = 0;
    for (; iter < DRIVER_ITERATIONS; iter++, runs++) {
        if ((iter & 255) == 0 && (double)(clock() - start) / CLOCKS_PER_SEC > DRIVER_MAX_SECONDS)
            break;
        const char *s = seeds[below(nseeds)];
        size_t n = strlen(s) + 1;
        b[0] = (uint8_t)rng();
        memcpy(b + 1, s, n - 1);
        mutate(b, &n);
        run(b, n);
    }
    printf("ws_upgrade fuzz driver: %zu seeds, %lu inputs, %u mutations, %.1f s\n", nseeds, runs,
           iter, (double)(clock() - start) / CLOCKS_PER_SEC);
    return 0;
}
