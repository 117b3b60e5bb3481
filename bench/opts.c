/*
 * opts: ringmq-bench's command line: a table of options (name, whether it
 * takes a value, a parser) filling struct bench_opts, then the checks that
 * need several options at once. Runs on the main thread before anything
 * starts; it only writes to the caller's struct and to stderr.
 */
#include "opts.h"

#include "mqtt/codec.h"
#include "stamp.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: ringmq-bench SCENARIO [options]\n"
    "scenarios:\n"
    "  conn     open --conns N connections at --conn-rate R/s, hold them idle\n"
    "  p2p      N publishers -> bench/i -> N subscribers (--clients N)\n"
    "  fanout   --pubs P -> bench/all -> --subs S\n"
    "  fanin    --pubs P -> bench/i -> --subs S on bench/+ (or --shared: $share/g/bench/+)\n"
    "  handshake --conns N connections, each connecting (TCP, TLS, WebSocket, CONNECT,\n"
    "           CONNACK), closing and connecting again: connections per second\n"
    "options:\n"
    "  -h, --host ADDR         broker address literal (127.0.0.1)\n"
    "  -p, --port PORT         broker port (1883)\n"
    "      --allow-remote      allow a non-loopback broker address\n"
    "  -t, --threads N         worker threads, one io_uring each (1)\n"
    "  -n, --clients N         p2p: publishers and subscribers each (100)\n"
    "      --pubs P --subs S   fanout/fanin sizes (fanout 1/1000, fanin 100/1)\n"
    "      --conns N           conn: connections (10000); handshake: at once (32)\n"
    "  -q, --qos Q[,Q...]      publisher i uses the (i mod n)-th QoS (0)\n"
    "      --sub-qos Q         QoS subscribers ask for (the highest of --qos)\n"
    "  -s, --payload BYTES     payload size, >= 16 (16)\n"
    "  -r, --rate R            per publisher msg/s; 0 = unlimited (0)\n"
    "  -w, --window N          messages in flight per publisher (64)\n"
    "  -d, --duration S        measured seconds (10)\n"
    "      --warmup S          seconds published before measuring (2)\n"
    "      --drain S           longest wait for messages in flight at the end (5)\n"
    "      --count N           stop each publisher after N messages (no limit)\n"
    "      --connect-timeout S longest wait for all connections (30)\n"
    "      --persistent        clean session / clean start off\n"
    "  -V, --mqtt-version V    3.1.1 or 5 (3.1.1)\n"
    "  -k, --keepalive S       keepalive seconds; PINGREQ at half (60)\n"
    "      --prefix T          topic prefix (bench)\n"
    "  -u, --username U  -P, --password P\n"
    "      --id-prefix S       client ids S-p0, S-s0, S-c0... (rb<pid>)\n"
    "      --shared            fanin through $share/GROUP/PREFIX/+\n"
    "      --group G           shared subscription group (g)\n"
    "      --conn-rate R       conn: connections per second, 0 = fast as possible (0)\n"
    "      --sources N         loopback source addresses 127.0.0.2.. (N conns / 10000 + 1)\n"
    "      --broker-pid PID    report the broker's resident memory (and per connection)\n"
    "      --json FILE         write the results as JSON\n"
    "      --quiet             no progress lines\n"
    "transport (plain TCP by default):\n"
    "      --tls               TLS (1.2 or 1.3, as the broker offers; wolfSSL)\n"
    "      --cafile F          verify the broker's certificate against F (PEM)\n"
    "      --cert F --key F    client certificate and key (PEM) for mutual TLS\n"
    "      --ws PATH           MQTT over WebSocket on PATH (with --tls: wss)\n"
    "      --tls-resume        resume each connection's previous TLS session\n";

void opts_usage(FILE *f)
{
    fputs(usage_text, f);
}

enum {
    O_ALLOW_REMOTE = 256,
    O_PUBS,
    O_SUBS,
    O_CONNS,
    O_SUB_QOS,
    O_WARMUP,
    O_DRAIN,
    O_COUNT,
    O_CONNECT_TIMEOUT,
    O_PERSISTENT,
    O_PREFIX,
    O_ID_PREFIX,
    O_SHARED,
    O_GROUP,
    O_CONN_RATE,
    O_SOURCES,
    O_BROKER_PID,
    O_JSON,
    O_QUIET,
    O_TLS,
    O_CAFILE,
    O_CERT,
    O_KEY,
    O_WS,
    O_TLS_RESUME,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"allow-remote", no_argument, NULL, O_ALLOW_REMOTE},
    {"threads", required_argument, NULL, 't'},
    {"clients", required_argument, NULL, 'n'},
    {"pubs", required_argument, NULL, O_PUBS},
    {"subs", required_argument, NULL, O_SUBS},
    {"conns", required_argument, NULL, O_CONNS},
    {"qos", required_argument, NULL, 'q'},
    {"sub-qos", required_argument, NULL, O_SUB_QOS},
    {"payload", required_argument, NULL, 's'},
    {"rate", required_argument, NULL, 'r'},
    {"window", required_argument, NULL, 'w'},
    {"duration", required_argument, NULL, 'd'},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"drain", required_argument, NULL, O_DRAIN},
    {"count", required_argument, NULL, O_COUNT},
    {"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
    {"persistent", no_argument, NULL, O_PERSISTENT},
    {"mqtt-version", required_argument, NULL, 'V'},
    {"keepalive", required_argument, NULL, 'k'},
    {"prefix", required_argument, NULL, O_PREFIX},
    {"username", required_argument, NULL, 'u'},
    {"password", required_argument, NULL, 'P'},
    {"id-prefix", required_argument, NULL, O_ID_PREFIX},
    {"shared", no_argument, NULL, O_SHARED},
    {"group", required_argument, NULL, O_GROUP},
    {"conn-rate", required_argument, NULL, O_CONN_RATE},
    {"sources", required_argument, NULL, O_SOURCES},
    {"broker-pid", required_argument, NULL, O_BROKER_PID},
    {"json", required_argument, NULL, O_JSON},
    {"quiet", no_argument, NULL, O_QUIET},
    {"tls", no_argument, NULL, O_TLS},
    {"cafile", required_argument, NULL, O_CAFILE},
    {"cert", required_argument, NULL, O_CERT},
    {"key", required_argument, NULL, O_KEY},
    {"ws", required_argument, NULL, O_WS},
    {"tls-resume", no_argument, NULL, O_TLS_RESUME},
    {NULL, 0, NULL, 0},
};

/* An unsigned integer in [lo, hi]; 0 or -EINVAL. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_qos_list(const char *s, struct bench_opts *o)
{
    o->nqos = 0;
    for (const char *p = s; *p;) {
        if (*p < '0' || *p > '2' || o->nqos == BENCH_MAX_QOS_LIST)
            return -EINVAL;
        o->qos[o->nqos++] = (uint8_t)(*p - '0');
        p++;
        if (*p == ',')
            p++;
        else if (*p)
            return -EINVAL;
    }
    return o->nqos ? 0 : -EINVAL;
}

static int parse_scenario(const char *s, enum scenario *out)
{
    static const char *const names[] = {"conn", "p2p", "fanout", "fanin", "handshake"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum scenario)i;
            return 0;
        }
    return -EINVAL;
}

const char *opts_scenario_name(enum scenario s)
{
    static const char *const names[] = {"conn", "p2p", "fanout", "fanin", "handshake"};
    return names[s];
}

/* The transport's options (xport.h); -EINVAL for an unknown option. */
static int parse_transport(int c, const char *arg, struct bench_opts *o)
{
    switch (c) {
    case O_TLS:
        o->tls = true;
        return 0;
    case O_CAFILE:
        o->cafile = arg;
        return 0;
    case O_CERT:
        o->cert = arg;
        return 0;
    case O_KEY:
        o->key = arg;
        return 0;
    case O_WS:
        /* An HTTP path: the request line breaks on a space or control byte. */
        o->ws_path = arg;
        if (arg[0] != '/')
            return -EINVAL;
        for (const char *p = arg; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return -EINVAL;
        return 0;
    case O_TLS_RESUME:
        o->tls_resume = true;
        return 0;
    default:
        return -EINVAL;
    }
}

/* Checks between the transport options. 0 or -EINVAL after a message. */
static int check_transport(const struct bench_opts *o)
{
    const char *why = NULL;
    if (!o->tls && (o->cafile || o->cert || o->key || o->tls_resume))
        why = "--cafile, --cert, --key and --tls-resume need --tls";
    else if (!o->cert != !o->key)
        why = "--cert and --key go together";
    if (!why)
        return 0;
    fprintf(stderr, "ringmq-bench: %s\n", why);
    return -EINVAL;
}

static int parse_one(int c, const char *arg, struct bench_opts *o, bool *pubs_set, bool *subs_set,
                     bool *subq_set)
{
    uint64_t u = 0; /* parse_u64 leaves it unset on error, where rc says so */
    int rc = 0;
    switch (c) {
    case 'h':
        o->host = arg;
        break;
    case 'p':
        rc = parse_u64(arg, 1, 65535, &u);
        o->port = (uint16_t)u;
        break;
    case O_ALLOW_REMOTE:
        o->allow_remote = true;
        break;
    case 't':
        rc = parse_u64(arg, 1, 256, &u);
        o->threads = (unsigned)u;
        break;
    case 'n':
        rc = parse_u64(arg, 1, 1000000, &u);
        o->pubs = o->subs = (uint32_t)u;
        *pubs_set = *subs_set = true;
        break;
    case O_PUBS:
        rc = parse_u64(arg, 1, 1000000, &u);
        o->pubs = (uint32_t)u;
        *pubs_set = true;
        break;
    case O_SUBS:
        rc = parse_u64(arg, 1, 1000000, &u);
        o->subs = (uint32_t)u;
        *subs_set = true;
        break;
    case O_CONNS:
        rc = parse_u64(arg, 1, 10000000, &u);
        o->conns = (uint32_t)u;
        break;
    case 'q':
        rc = parse_qos_list(arg, o);
        break;
    case O_SUB_QOS:
        rc = parse_u64(arg, 0, 2, &u);
        o->sub_qos = (uint8_t)u;
        *subq_set = true;
        break;
    case 's':
        rc = parse_u64(arg, STAMP_SIZE, 16 * 1024 * 1024, &u);
        o->payload = (uint32_t)u;
        break;
    case 'r':
        rc = parse_double(arg, 0, 1e9, &o->rate);
        break;
    case 'w':
        rc = parse_u64(arg, 1, 65535, &u);
        o->window = (uint32_t)u;
        break;
    case 'd':
        rc = parse_double(arg, 0.1, 86400, &o->duration);
        break;
    case O_WARMUP:
        rc = parse_double(arg, 0, 3600, &o->warmup);
        break;
    case O_DRAIN:
        rc = parse_double(arg, 0, 3600, &o->drain);
        break;
    case O_COUNT:
        rc = parse_u64(arg, 1, UINT32_MAX, &o->count);
        break;
    case O_CONNECT_TIMEOUT:
        rc = parse_double(arg, 0.1, 86400, &o->connect_timeout);
        break;
    case O_PERSISTENT:
        o->clean = false;
        break;
    case 'V':
        if (strcmp(arg, "3.1.1") == 0 || strcmp(arg, "4") == 0)
            o->version = MQTT_V311;
        else if (strcmp(arg, "5") == 0 || strcmp(arg, "5.0") == 0)
            o->version = MQTT_V5;
        else
            rc = -EINVAL;
        break;
    case 'k':
        rc = parse_u64(arg, 0, 65535, &u);
        o->keepalive = (uint16_t)u;
        break;
    case O_PREFIX:
        o->prefix = arg;
        rc = *arg && !strpbrk(arg, "+#") ? 0 : -EINVAL;
        break;
    case 'u':
        o->username = arg;
        break;
    case 'P':
        o->password = arg;
        break;
    case O_ID_PREFIX:
        o->id_prefix = arg;
        break;
    case O_SHARED:
        o->shared = true;
        break;
    case O_GROUP:
        o->group = arg;
        rc = *arg && !strpbrk(arg, "/+#") ? 0 : -EINVAL;
        break;
    case O_CONN_RATE:
        rc = parse_double(arg, 0, 1e7, &o->conn_rate);
        break;
    case O_SOURCES:
        rc = parse_u64(arg, 1, 253, &u);
        o->sources = (unsigned)u;
        break;
    case O_BROKER_PID:
        rc = parse_u64(arg, 1, 0x7fffffff, &u);
        o->broker_pid = (int)u;
        break;
    case O_JSON:
        o->json = arg;
        break;
    case O_QUIET:
        o->quiet = true;
        break;
    default:
        rc = parse_transport(c, arg, o);
    }
    return rc;
}

/* Publishers, subscribers and connections the scenario uses unless given.
 * 0 or -EINVAL after a message. */
static int scenario_sizes(struct bench_opts *o, bool pubs_set, bool subs_set)
{
    switch (o->scenario) {
    case SC_P2P:
        if (!pubs_set)
            o->pubs = o->subs = 100;
        if (o->pubs != o->subs) {
            fprintf(stderr, "ringmq-bench: p2p needs as many publishers as subscribers\n");
            return -EINVAL;
        }
        break;
    case SC_FANOUT:
        o->pubs = pubs_set ? o->pubs : 1;
        o->subs = subs_set ? o->subs : 1000;
        break;
    case SC_FANIN:
        o->pubs = pubs_set ? o->pubs : 100;
        o->subs = subs_set ? o->subs : 1;
        break;
    case SC_CONN:
    case SC_HANDSHAKE:
        o->pubs = o->subs = 0;
        break;
    }
    if (o->conns == 0)
        o->conns = o->scenario == SC_HANDSHAKE ? 32 : 10000;
    return 0;
}

int opts_parse(int argc, char **argv, struct bench_opts *o)
{
    static char id_prefix[32];
    snprintf(id_prefix, sizeof(id_prefix), "rb%d", (int)getpid());
    *o = (struct bench_opts){
        .host = "127.0.0.1",
        .port = 1883,
        .threads = 1,
        .conns = 0, /* set below: it depends on the scenario */
        .qos = {0},
        .nqos = 1,
        .payload = 16,
        .window = 64,
        .duration = 10,
        .warmup = 2,
        .drain = 5,
        .connect_timeout = 30,
        .clean = true,
        .version = MQTT_V311,
        .keepalive = 60,
        .prefix = "bench",
        .id_prefix = id_prefix,
        .group = "g",
    };
    if (argc < 2 || parse_scenario(argv[1], &o->scenario) != 0) {
        fprintf(stderr, "ringmq-bench: first argument must be a scenario\n");
        opts_usage(stderr);
        return -EINVAL;
    }
    bool pubs_set = false, subs_set = false, subq_set = false;
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h:p:t:n:q:s:r:w:d:V:k:u:P:", long_opts, NULL)) != -1) {
        if (c == '?' || parse_one(c, optarg, o, &pubs_set, &subs_set, &subq_set) != 0) {
            if (c != '?')
                fprintf(stderr, "ringmq-bench: bad value for option %s: '%s'\n", argv[optind - 1],
                        optarg ? optarg : "");
            return -EINVAL;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ringmq-bench: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (scenario_sizes(o, pubs_set, subs_set) != 0)
        return -EINVAL;
    if (check_transport(o) != 0)
        return -EINVAL;
    if (!subq_set) {
        o->sub_qos = 0;
        for (unsigned i = 0; i < o->nqos; i++)
            if (o->qos[i] > o->sub_qos)
                o->sub_qos = o->qos[i];
    }
    if (o->shared && o->scenario != SC_FANIN) {
        fprintf(stderr, "ringmq-bench: --shared applies to fanin only\n");
        return -EINVAL;
    }
    return 0;
}
