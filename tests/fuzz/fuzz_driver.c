/*
 * fuzz_driver: a plain main() that runs LLVMFuzzerTestOneInput over a
 * deterministic corpus, so the fuzz target runs as an ordinary test (under
 * ASan/UBSan in CI) without libFuzzer.
 *
 * The corpus is a few valid packets of every type (3.1, 3.1.1 and 5.0,
 * some with v5 properties), every truncation of each, and then up to
 * DRIVER_ITERATIONS inputs mutated from them by a fixed-seed xorshift
 * generator: bit flips, interesting bytes, inserts, deletes, truncation,
 * splices and length fields overwritten, most of them re-framed with a
 * consistent remaining length so that the mutation reaches the decoders.
 * The same binary run on files (`codec_fuzz_driver crash-...`) replays
 * them instead, e.g. a crash found by the libFuzzer build (codec_fuzz.c).
 *
 * The run stops early after DRIVER_MAX_SECONDS so a slow sanitizer build
 * stays inside the test timeout; that bounds the work, it asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A target of something other than MQTT packets (proxy_fuzz.c: PROXY
 * protocol headers) brings its own corpus: it calls add for each seed
 * (at most MAX_SEEDS, 256 bytes each), which are then mutated as raw
 * bytes, never reframed as packets. */
void fuzz_target_seeds(void (*add)(const uint8_t *p, size_t n)) __attribute__((weak));

#define DRIVER_ITERATIONS  200000u
#define DRIVER_MAX_SECONDS 20.0
#define MAX_INPUT          1024
#define MAX_SEEDS          40

struct seed {
    uint8_t b[256];
    size_t len;
};

static struct seed seeds[MAX_SEEDS];
static size_t nseeds;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

/* Run one input from an exact-size heap buffer: ASan sees any overread. */
static void run_one(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);

    if (!c) {
        perror("malloc");
        exit(1);
    }
    if (n)
        memcpy(c, p, n);
    LLVMFuzzerTestOneInput(n ? c : NULL, n);
    free(c);
}

static void add_seed(const uint8_t *p, size_t n)
{
    if (nseeds == MAX_SEEDS || n > sizeof(seeds[0].b) || n == 0) {
        fprintf(stderr, "seed table too small\n");
        exit(1);
    }
    memcpy(seeds[nseeds].b, p, n);
    seeds[nseeds++].len = n;
}

#define ADD_BYTES(...)                                                                             \
    add_seed((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static void add_connect(uint8_t version, bool will, bool user, bool pass)
{
    uint8_t b[256];
    struct mqtt_connect_opts o = {
        .version = version,
        .clean_start = true,
        .keepalive = 30,
        .client_id = {(const uint8_t *)"client-1", 8},
        .will = will,
        .will_qos = will ? 1 : 0,
        .will_retain = will,
        .will_topic = {(const uint8_t *)"will/\xc3\xa9", 7},
        .will_payload = {(const uint8_t *)"bye", 3},
        .has_username = user,
        .username = {(const uint8_t *)"user", 4},
        .has_password = pass,
        .password = {(const uint8_t *)"\x00\xffpw", 4},
    };

    add_seed(b, mqtt_connect_encode(b, &o));
}

static void build_seeds(void)
{
    static const struct mqtt_bytes filters[] = {{(const uint8_t *)"a/+/c", 5},
                                                {(const uint8_t *)"sport/#", 7},
                                                {(const uint8_t *)"$SYS/x", 6}};
    static const uint8_t opts[] = {0x01, 0x02, 0x00};
    static const uint8_t codes[] = {0x00, 0x01, 0x80};
    uint8_t b[256];

    add_connect(MQTT_V31, false, false, false);
    add_connect(MQTT_V311, true, true, true);
    add_connect(MQTT_V5, true, false, true);
    for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
        add_seed(b, mqtt_publish_encode(b, v, 0, false, true, (const uint8_t *)"a/b", 3, 0,
                                        (const uint8_t *)"hello", 5));
        add_seed(b, mqtt_publish_encode(b, v, 2, true, false, (const uint8_t *)"x/y/z", 5, 0x0102,
                                        (const uint8_t *)"\x00\x01", 2));
        add_seed(b, mqtt_subscribe_encode(b, v, 7, filters, opts, 3, false));
        add_seed(b, mqtt_subscribe_encode(b, v, 8, filters, NULL, 2, true));
        add_seed(b, mqtt_suback_encode(b, MQTT_SUBACK, v, 7, codes, 3));
        add_seed(b, mqtt_ack_encode(b, MQTT_PUBREL, v, 0x0102, 0x92));
        add_seed(b, mqtt_connack_encode(b, v, true, 0));
        add_seed(b, mqtt_simple_encode(b, MQTT_DISCONNECT, v, 0x8E));
    }
    add_seed(b, mqtt_ack_encode(b, MQTT_PUBACK, MQTT_V311, 1, 0));
    add_seed(b, mqtt_ack_encode(b, MQTT_UNSUBACK, MQTT_V311, 1, 0));
    add_seed(b, mqtt_suback_encode(b, MQTT_UNSUBACK, MQTT_V5, 8, codes, 2));
    add_seed(b, mqtt_simple_encode(b, MQTT_PINGREQ, MQTT_V311, 0));
    /* v5 packets with properties, which the encoders never write. */
    ADD_BYTES(0x10, 0x1F, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x06, 0, 10, 5, 0x11, 0, 0, 0, 10, 0, 1, 'c',
              5, 0x18, 0, 0, 0, 5, 0, 1, 't', 0, 1, 'p');
    ADD_BYTES(0x32, 0x0C, 0, 3, 'a', '/', 'b', 0, 9, 3, 0x23, 0, 1, 'x');
    ADD_BYTES(0x40, 0x07, 0, 9, 0x10, 3, 0x1F, 0, 0);
    ADD_BYTES(0x82, 0x0A, 0, 9, 2, 0x0B, 0x7F, 0, 2, 'a', '+', 0x2D);
    ADD_BYTES(0x20, 0x06, 1, 0, 3, 0x21, 0, 10);
    ADD_BYTES(0xE0, 0x07, 0x8E, 5, 0x11, 0, 0, 0, 0);
    ADD_BYTES(0xF0, 0x02, 0x18, 0);
}

static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xC0, 0xC3,
                                      0xED, 0xF4, 0xFF, '+',  '#',  '/',  '$'};

static size_t mutate(uint8_t *b, size_t n)
{
    size_t rounds = 1 + rng_below(4);

    for (size_t r = 0; r < rounds; r++) {
        size_t i = rng_below(n);

        switch (rng_below(9)) {
        case 0:
            if (n)
                b[i] ^= (uint8_t)(1u << rng_below(8));
            break;
        case 1:
            if (n)
                b[i] = interesting[rng_below(sizeof(interesting))];
            break;
        case 2:
            if (n)
                b[i] = (uint8_t)rng();
            break;
        case 3: /* insert */
            if (n < MAX_INPUT) {
                memmove(b + i + 1, b + i, n - i);
                b[i] = (uint8_t)rng();
                n++;
            }
            break;
        case 4: /* delete */
            if (n) {
                memmove(b + i, b + i + 1, n - i - 1);
                n--;
            }
            break;
        case 5: /* truncate */
            n = rng_below(n + 1);
            break;
        case 6: /* a two-byte length field made small, large or off by one */
            if (n >= 2) {
                i = rng_below(n - 1);
                uint16_t v = (uint16_t)(b[i] << 8 | b[i + 1]);
                v = rng_below(2) ? (uint16_t)(v + rng_below(3) - 1) : (uint16_t)rng();
                b[i] = (uint8_t)(v >> 8);
                b[i + 1] = (uint8_t)v;
            }
            break;
        case 7: { /* splice in part of another seed */
            const struct seed *s = &seeds[rng_below(nseeds)];
            size_t from = rng_below(s->len), k = rng_below(s->len - from + 1);

            if (n + k <= MAX_INPUT) {
                memmove(b + i + k, b + i, n - i);
                memcpy(b + i, s->b + from, k);
                n += k;
            }
            break;
        }
        default: /* duplicate a slice */
            if (n) {
                size_t k = rng_below(n - i + 1);

                if (n + k <= MAX_INPUT) {
                    memmove(b + i + k, b + i, n - i);
                    n += k;
                }
            }
            break;
        }
    }
    return n;
}

/* A packet: `first`, a remaining length that fits, then the body. */
static size_t reframe(uint8_t *out, uint8_t first, const uint8_t *body, size_t n)
{
    out[0] = first;
    size_t h = 1 + mqtt_varint_encode(out + 1, (uint32_t)n);
    memcpy(out + h, body, n);
    return h + n;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_files(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        static uint8_t buf[1 << 20];
        FILE *f = fopen(argv[i], "rb");
        size_t n;

        if (!f) {
            perror(argv[i]);
            return 1;
        }
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        run_one(buf, n);
        printf("%s: ok (%zu bytes)\n", argv[i], n);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static uint8_t body[MAX_INPUT + 8], pkt[MAX_INPUT + 8];
    double start = now();
    unsigned long runs = 0;
    unsigned iter;

    if (argc > 1)
        return run_files(argc, argv);
    bool own = fuzz_target_seeds != NULL;
    if (own)
        fuzz_target_seeds(add_seed);
    else
        build_seeds();
    for (size_t s = 0; s < nseeds; s++)
        for (size_t k = 0; k <= seeds[s].len; k++, runs++)
            run_one(seeds[s].b, k);

    for (iter = 0; iter < DRIVER_ITERATIONS; iter++) {
        const struct seed *s = &seeds[rng_below(nseeds)];
        struct mqtt_frame f;
        size_t n;

        if ((iter & 1023) == 0 && now() - start > DRIVER_MAX_SECONDS)
            break;
        if (own || rng_below(4) == 0 || mqtt_frame_decode(s->b, s->len, 0, &f) != MQTT_OK) {
            /* Raw: header bytes mutate too. */
            memcpy(pkt, s->b, s->len);
            n = mutate(pkt, s->len);
        } else {
            /* Body only, then a consistent header around it. */
            uint8_t first = s->b[0];

            if (rng_below(8) == 0)
                first ^= (uint8_t)(1u << rng_below(8));
            memcpy(body, s->b + f.header_len, f.body_len);
            n = mutate(body, f.body_len);
            n = reframe(pkt, first, body, n);
        }
        run_one(pkt, n);
        runs++;
    }
    printf("fuzz driver: %zu seeds, %lu inputs, %u mutations, %.1f s\n", nseeds, runs, iter,
           now() - start);
    return 0;
}
