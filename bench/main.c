/*
 * ringmq-bench: an MQTT load generator (issue #3). main composes: it parses
 * the options, checks the target, starts one worker thread per --threads,
 * moves the run through its phases (connect, warm-up + measurement, drain,
 * stop), prints a progress line every second on stderr, and reports.
 *
 * The main thread never touches a connection; it only reads the workers'
 * progress atomics and writes the run's phase. Every phase has a deadline,
 * so a run stops by itself whatever the broker does.
 *
 * Exit status: 0 the run completed and passed its checks; 1 bad usage or
 * start-up failure; 2 connections failed or protocol errors; 3 a QoS 1/2
 * message was lost (or a QoS 2 message duplicated).
 */
#include "bench.h"
#include "opts.h"
#include "proc.h"
#include "report.h"
#include "xport.h"

#include "core/log.h"
#include "net/uring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS  20000000ull
#define STALL_NS 1000000000ull

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static double cpu_secs(const struct rusage *ru, bool user)
{
    const struct timeval *tv = user ? &ru->ru_utime : &ru->ru_stime;
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static int resolve_target(const struct bench_opts *o, struct run *r)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)&r->target;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&r->target;
    memset(&r->target, 0, sizeof(r->target));
    if (inet_pton(AF_INET, o->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(o->port);
        r->target_len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, o->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(o->port);
        r->target_len = sizeof(*a6);
    } else {
        fprintf(stderr, "ringmq-bench: --host must be an IPv4 or IPv6 address literal\n");
        return -EINVAL;
    }
    bool loopback = addr_is_loopback(o->host);
    if (!loopback && !o->allow_remote) {
        fprintf(stderr,
                "ringmq-bench: %s is not a loopback address; a load generator pointed "
                "at another host needs --allow-remote\n",
                o->host);
        return -EPERM;
    }
    /* Spreading over 127.0.0.2.. only works towards a loopback IPv4 peer. */
    r->bind_sources = loopback && r->target.ss_family == AF_INET;
    return 0;
}

struct totals {
    uint64_t sent, recv, up, err, inflight, delivered, expected;
    unsigned ready, drained, done;
};

static void sum_workers(struct worker *w, unsigned n, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < n; i++) {
        /* The flags first (acquire): a worker stores p_expected before
         * p_drained, so p_expected read after a true p_drained is final.
         * Read before it, a stale 0 with a fresh "drained" ended the drain
         * at once and wrote off whatever was still in flight as lost. */
        t->ready += atomic_load_explicit(&w[i].p_ready, memory_order_acquire);
        t->drained += atomic_load_explicit(&w[i].p_drained, memory_order_acquire);
        t->done += atomic_load_explicit(&w[i].p_done, memory_order_acquire);
        t->sent += atomic_load_explicit(&w[i].p_sent, memory_order_relaxed);
        t->recv += atomic_load_explicit(&w[i].p_recv, memory_order_relaxed);
        t->up += atomic_load_explicit(&w[i].p_up, memory_order_relaxed);
        t->err += atomic_load_explicit(&w[i].p_err, memory_order_relaxed);
        t->inflight += atomic_load_explicit(&w[i].p_inflight, memory_order_relaxed);
        t->delivered += atomic_load_explicit(&w[i].p_delivered, memory_order_relaxed);
        t->expected += atomic_load_explicit(&w[i].p_expected, memory_order_relaxed);
    }
}

struct control {
    struct run *run;
    struct worker *w;
    unsigned n;
    uint64_t conns;
    uint64_t last_print;
    struct totals prev;
    uint64_t prev_at;
};

static const char *phase_name(int p, const struct run *r, uint64_t now)
{
    switch (p) {
    case PH_CONNECT:
        return "connect";
    case PH_RUN:
        if (r->o->scenario == SC_CONN)
            return "hold";
        return now < r->t_measure ? "warm-up" : "measure";
    case PH_DRAIN:
        return "drain";
    default:
        return "stop";
    }
}

/* Sample the workers; print a progress line once a second. */
static void tick(struct control *c, struct totals *t)
{
    uint64_t now = bench_now(c->run);
    sum_workers(c->w, c->n, t);
    if (now - c->last_print < 1000000000ull)
        return;
    double dt = (double)(now - c->prev_at) / 1e9;
    if (!c->run->o->quiet)
        fprintf(stderr,
                "[%6.1fs] %-7s conns %llu/%llu  sent %9.0f/s  recv %9.0f/s  inflight %llu  "
                "errors %llu\n",
                (double)now / 1e9, phase_name(atomic_load(&c->run->phase), c->run, now),
                (unsigned long long)t->up, (unsigned long long)c->conns,
                (double)(t->sent - c->prev.sent) / dt, (double)(t->recv - c->prev.recv) / dt,
                (unsigned long long)t->inflight, (unsigned long long)t->err);
    c->prev = *t;
    c->prev_at = now;
    c->last_print = now;
}

static void set_phase(struct run *r, enum phase p)
{
    atomic_store_explicit(&r->phase, p, memory_order_release);
}

/* Runs the phases; fills what only main can measure into res. */
static void control(struct control *c, struct results *res)
{
    struct run *r = c->run;
    const struct bench_opts *o = r->o;
    struct totals t;
    struct rusage ru0, ru1;
    uint64_t deadline = bench_now(r) + (uint64_t)(o->connect_timeout * 1e9);
    if (o->scenario == SC_CONN && o->conn_rate > 0)
        deadline += (uint64_t)((double)o->conns / o->conn_rate * 1e9);
    do {
        sleep_ns(TICK_NS);
        tick(c, &t);
    } while (t.ready < c->n && bench_now(r) < deadline && !g_interrupted);
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t m0 = bench_now(r), m1;
    if (t.ready < c->n || t.up < c->conns) {
        fprintf(stderr, "ringmq-bench: %llu of %llu connections up; stopping\n",
                (unsigned long long)t.up, (unsigned long long)c->conns);
        m1 = m0;
    } else if (o->scenario == SC_CONN) {
        res->broker_rss_after_kib = proc_rss_kib(o->broker_pid);
        res->slab_after_kib = proc_kib("/proc/meminfo", "Slab");
        set_phase(r, PH_RUN);
        uint64_t end = bench_now(r) + (uint64_t)(o->duration * 1e9);
        while (bench_now(r) < end && !g_interrupted) {
            sleep_ns(TICK_NS);
            tick(c, &t);
        }
        m1 = bench_now(r);
        /* Settled figure: after holding, keepalives included. */
        long rss = proc_rss_kib(o->broker_pid);
        if (rss > res->broker_rss_after_kib)
            res->broker_rss_after_kib = rss;
    } else {
        r->t_start = bench_now(r) + 1000000;
        r->t_measure = r->t_start + (uint64_t)(o->warmup * 1e9);
        r->t_end = r->t_measure + (uint64_t)(o->duration * 1e9);
        set_phase(r, PH_RUN);
        bool measuring = false;
        double broker0 = -1;
        uint64_t all = o->count ? o->count * r->npub : 0;
        for (;;) {
            /* Wake at t_measure and t_end themselves, not at the next tick
             * after them: the CPU figures are sampled there. */
            uint64_t now = bench_now(r);
            uint64_t next = measuring ? r->t_end : r->t_measure;
            uint64_t left = next > now ? next - now : 0;
            sleep_ns(left < TICK_NS ? left : TICK_NS);
            tick(c, &t);
            now = bench_now(r);
            if (!measuring && now >= r->t_measure) {
                getrusage(RUSAGE_SELF, &ru0);
                broker0 = proc_cpu_s(o->broker_pid);
                m0 = now;
                measuring = true;
            }
            if (now >= r->t_end || g_interrupted || (all && t.sent >= all))
                break;
        }
        m1 = bench_now(r);
        getrusage(RUSAGE_SELF, &ru1);
        double broker1 = proc_cpu_s(o->broker_pid);
        if (measuring && broker0 >= 0 && broker1 >= 0)
            res->broker_cpu_s = broker1 - broker0;
        /* Our CPU over the span it was sampled; rates over the window
         * itself, [t_measure, t_end), cut short by --count or a signal:
         * the counts are of messages sent inside it (the first tick after
         * t_measure came up to a tick late and shortened it, inflating
         * every rate; a run stopped in the warm-up wrapped below zero). */
        res->cpu_user_s = cpu_secs(&ru1, true) - cpu_secs(&ru0, true);
        res->cpu_sys_s = cpu_secs(&ru1, false) - cpu_secs(&ru0, false);
        res->cpu_pct = measuring && m1 > m0
                           ? 100.0 * (res->cpu_user_s + res->cpu_sys_s) / ((double)(m1 - m0) / 1e9)
                           : 0;
        if (!measuring)
            res->cpu_user_s = res->cpu_sys_s = 0;
        if (m1 > r->t_end)
            m1 = r->t_end;
        m0 = r->t_measure;
        if (m1 < m0)
            m1 = m0;
        set_phase(r, PH_DRAIN);
        uint64_t drain_end = bench_now(r) + (uint64_t)(o->drain * 1e9);
        uint64_t progress_at = bench_now(r);
        struct totals last = t;
        while (bench_now(r) < drain_end && !g_interrupted) {
            sleep_ns(TICK_NS);
            tick(c, &t);
            if (t.drained == c->n && t.delivered >= t.expected && t.inflight == 0) {
                res->complete = true;
                break;
            }
            if (t.recv != last.recv || t.inflight != last.inflight)
                progress_at = bench_now(r);
            else if (bench_now(r) - progress_at > STALL_NS)
                break; /* nothing moves any more: what is missing is lost */
            last = t;
        }
        res->measured_s = (double)(m1 - m0) / 1e9;
        res->broker_rss_after_kib = proc_rss_kib(o->broker_pid);
        set_phase(r, PH_STOP);
        return;
    }
    getrusage(RUSAGE_SELF, &ru1);
    res->measured_s = (double)(m1 - m0) / 1e9;
    res->cpu_user_s = cpu_secs(&ru1, true) - cpu_secs(&ru0, true);
    res->cpu_sys_s = cpu_secs(&ru1, false) - cpu_secs(&ru0, false);
    res->cpu_pct =
        res->measured_s > 0 ? 100.0 * (res->cpu_user_s + res->cpu_sys_s) / res->measured_s : 0;
    set_phase(r, PH_STOP);
}

/* The run's transport context (NULL for plain TCP). 0 or -errno. */
static int transport_create(const struct bench_opts *o, struct run *r)
{
    struct xport_opts xo = {
        .tls = o->tls,
        .cafile = o->cafile,
        .cert = o->cert,
        .key = o->key,
        .ws_path = o->ws_path,
        .host = o->host,
        .port = o->port,
        .resume = o->tls_resume,
    };
    return xport_ctx_create(&xo, &r->xp);
}

static unsigned auto_sources(uint64_t conns)
{
    /* connect() takes even ephemeral ports first (half the range, about
     * 14,000 here): beyond that per source address the kernel's port search
     * slows to a crawl and shows up as CONNACK latency that is not the
     * broker's. */
    uint64_t n = conns / 10000 + 1;
    return n > 253 ? 253 : (unsigned)n;
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    if (opts_parse(argc, argv, &o) != 0)
        return 1;
    struct run *r = calloc(1, sizeof(*r));
    struct results *res = malloc(sizeof(*res));
    if (!r || !res) {
        fprintf(stderr, "ringmq-bench: out of memory\n");
        return 1;
    }
    r->o = &o;
    if (resolve_target(&o, r) != 0)
        return 1;
    r->npub = o.pubs;
    r->nsub = o.subs;
    uint64_t conns =
        o.scenario == SC_CONN || o.scenario == SC_HANDSHAKE ? o.conns : (uint64_t)o.pubs + o.subs;
    r->sources = o.sources ? o.sources : auto_sources(conns);
    r->fan = o.scenario == SC_P2P ? 1 : o.scenario == SC_FANIN && o.shared ? 1 : o.subs;
    if (transport_create(&o, r) != 0)
        return 1;
    r->interval_ns = o.rate > 0 ? (uint64_t)(1e9 / o.rate) : 0;
    if (o.rate > 0 && r->interval_ns == 0)
        r->interval_ns = 1;
    r->delivered = calloc(o.pubs + 1, sizeof(*r->delivered));
    if (!r->delivered)
        return 1;
    if (getrandom(&r->tag, sizeof(r->tag), 0) != sizeof(r->tag))
        r->tag = (uint16_t)(getpid() ^ time(NULL));

    /* A ring's fixed-file table is capped by RLIMIT_NOFILE. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    uint64_t per_worker = (conns + o.threads - 1) / o.threads;
    if (rl.rlim_cur != RLIM_INFINITY && per_worker + 64 > rl.rlim_cur) {
        fprintf(stderr,
                "ringmq-bench: %llu connections per thread exceed what one ring's fixed-file "
                "table may hold here (RLIMIT_NOFILE %llu); use --threads %llu or more\n",
                (unsigned long long)per_worker, (unsigned long long)rl.rlim_cur,
                (unsigned long long)((conns + rl.rlim_cur - 65) / (rl.rlim_cur - 64)));
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    report_init(res);
    res->conns_target = conns;
    res->broker_rss_before_kib = proc_rss_kib(o.broker_pid);
    res->slab_before_kib = proc_kib("/proc/meminfo", "Slab");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->epoch = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    atomic_store(&r->phase, PH_CONNECT);

    struct worker *w = calloc(o.threads, sizeof(*w));
    if (!w)
        return 1;
    unsigned started = 0;
    for (unsigned i = 0; i < o.threads; i++) {
        w[i].id = i;
        w[i].run = r;
        if (engine_assign(&w[i]) != 0 ||
            pthread_create(&w[i].thread, NULL, engine_worker_main, &w[i]) != 0) {
            fprintf(stderr, "ringmq-bench: cannot start worker %u\n", i);
            break;
        }
        started++;
    }
    struct control c = {.run = r, .w = w, .n = started, .conns = conns};
    if (started == o.threads)
        control(&c, res);
    set_phase(r, PH_STOP);
    int start_err = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].rc)
            start_err = w[i].rc;
        report_merge(res, &w[i].st);
        res->ring_mode = w[i].ring_mode;
        engine_release(&w[i]);
    }
    if (!res->ring_mode)
        res->ring_mode = "none";
    res->bench_rss_kib = proc_kib("/proc/self/status", "VmRSS");
    res->bench_hwm_kib = proc_kib("/proc/self/status", "VmHWM");
    report_finish(res, r);
    if (start_err || started < o.threads)
        res->ok = false;
    report_print(stdout, r, res);
    fflush(stdout);
    if (o.json && report_json(o.json, r, res) != 0)
        fprintf(stderr, "ringmq-bench: cannot write %s: %s\n", o.json, strerror(errno));
    int rc = 0;
    if (start_err || started < o.threads)
        rc = 1;
    else if (res->st.conns_up < conns || res->st.conn_failed || res->st.refused || res->st.closed ||
             res->st.proto_err || res->st.ack_err || res->st.wrong_qos)
        rc = 2;
    else if (!res->ok)
        rc = 3;
    free(w);
    xport_ctx_destroy(r->xp);
    free(r->delivered);
    free(r);
    free(res);
    return rc;
}
