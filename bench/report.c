/*
 * report: merges the workers' statistics, decides whether the run passed
 * the correctness checks, and prints the closing table and the JSON file.
 * Main thread only, after every worker has been joined.
 */
#include "report.h"

#include "mqtt/codec.h"
#include "opts.h"
#include "xport.h"

#include <errno.h>
#include <string.h>

void report_init(struct results *r)
{
    memset(r, 0, sizeof(*r));
    hist_init(&r->st.lat);
    hist_init(&r->st.lat_co);
    hist_init(&r->st.connack);
    r->broker_rss_before_kib = r->broker_rss_after_kib = -1;
    r->broker_cpu_s = -1;
    r->slab_before_kib = r->slab_after_kib = -1;
}

void report_merge(struct results *r, const struct wstats *s)
{
    struct wstats *d = &r->st;
    hist_merge(&d->lat, &s->lat);
    hist_merge(&d->lat_co, &s->lat_co);
    hist_merge(&d->connack, &s->connack);
    for (int q = 0; q < 3; q++) {
        d->sent[q] += s->sent[q];
        d->recv[q] += s->recv[q];
        d->dup[q] += s->dup[q];
        d->ooo[q] += s->ooo[q];
        d->old[q] += s->old[q];
    }
    d->sent_all += s->sent_all;
    d->recv_all += s->recv_all;
    d->foreign += s->foreign;
    d->wrong_qos += s->wrong_qos;
    d->conn_failed += s->conn_failed;
    d->refused += s->refused;
    d->closed += s->closed;
    d->proto_err += s->proto_err;
    d->ack_err += s->ack_err;
    d->conns_up += s->conns_up;
    d->written_off += s->written_off;
    d->handshakes += s->handshakes;
    d->resumed += s->resumed;
    if (s->first_up_ns && (!d->first_up_ns || s->first_up_ns < d->first_up_ns))
        d->first_up_ns = s->first_up_ns;
    if (s->last_up_ns > d->last_up_ns)
        d->last_up_ns = s->last_up_ns;
}

static uint64_t errors_of(const struct wstats *s)
{
    return s->conn_failed + s->refused + s->closed + s->proto_err + s->ack_err + s->wrong_qos;
}

void report_finish(struct results *r, const struct run *run)
{
    struct wstats *s = &r->st;
    /* The handshake scenario brings each connection up again and again. */
    r->ok = errors_of(s) == 0 && s->conns_up >= r->conns_target;
    for (int q = 0; q < 3; q++) {
        r->expected[q] = s->sent[q] * run->fan;
        r->lost[q] = r->expected[q] > s->recv[q] ? r->expected[q] - s->recv[q] : 0;
        /* Deliveries beyond what was sent (possible only when members of a
         * shared group each got the same message) are duplicates too. */
        if (s->recv[q] > r->expected[q])
            s->dup[q] += s->recv[q] - r->expected[q];
        if (q >= 1 && (r->lost[q] || s->old[q]))
            r->ok = false;
        if (q == 2 && s->dup[q])
            r->ok = false;
    }
}

static double per_s(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void print_hist(FILE *f, const char *name, const struct hist *h)
{
    if (h->count == 0) {
        fprintf(f, "  %-22s (none)\n", name);
        return;
    }
    fprintf(f, "  %-22s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %10llu\n", name,
            us(hist_percentile(h, 50)), us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
            us(hist_percentile(h, 99.9)), us(h->max), hist_mean(h) / 1000.0,
            (unsigned long long)h->count);
}

static void print_qos_list(FILE *f, const struct bench_opts *o)
{
    for (unsigned i = 0; i < o->nqos; i++)
        fprintf(f, "%s%u", i ? "," : "", o->qos[i]);
}

static void print_handshakes(FILE *f, const struct bench_opts *o, const struct results *r)
{
    fprintf(f, "  %u connections at a time, each closed at its CONNACK and opened again%s\n",
            o->conns, o->tls_resume ? ", TLS sessions resumed" : "");
    fprintf(f, "  measured %.2f s after %.1f s warm-up\n", r->measured_s, o->warmup);
    fprintf(f, "\n  connections up (handshakes) %llu, %.0f/s, TLS sessions resumed %llu\n",
            (unsigned long long)r->st.handshakes, per_s(r->st.handshakes, r->measured_s),
            (unsigned long long)r->st.resumed);
}

void report_print(FILE *f, const struct run *run, const struct results *r)
{
    const struct bench_opts *o = run->o;
    const struct wstats *s = &r->st;
    fprintf(f, "\nringmq-bench %s against %s:%u, MQTT %s, %u thread(s), ring %s\n",
            opts_scenario_name(o->scenario), o->host, o->port,
            o->version == MQTT_V5 ? "5.0" : "3.1.1", o->threads, r->ring_mode);
    fprintf(f, "  transport %s%s%s\n", xport_name(run->xp), o->ws_path ? " on " : "",
            o->ws_path ? o->ws_path : "");
    if (o->scenario == SC_CONN) {
        fprintf(f, "  connections %u, %.0f/s asked (%s), %u source address(es), keepalive %u s\n",
                o->conns, o->conn_rate, o->conn_rate > 0 ? "paced" : "unpaced", run->sources,
                o->keepalive);
    } else if (o->scenario == SC_HANDSHAKE) {
        print_handshakes(f, o, r);
    } else {
        fprintf(f, "  publishers %u, subscribers %u%s, qos ", run->npub, run->nsub,
                o->shared ? " (shared group)" : "");
        print_qos_list(f, o);
        fprintf(f, " (subscribers ask %u), payload %u B, ", o->sub_qos, o->payload);
        if (o->rate > 0)
            fprintf(f, "%.1f msg/s per publisher (%.0f total)", o->rate, o->rate * run->npub);
        else
            fprintf(f, "unlimited, window %u", o->window);
        fprintf(f, ", %s session\n", o->clean ? "clean" : "persistent");
        fprintf(f, "  measured %.2f s after %.1f s warm-up%s\n", r->measured_s, o->warmup,
                r->complete ? "" : "; drain ended before every message arrived");
        fprintf(f, "\n  %-6s %12s %12s %12s %12s %10s %8s %8s %8s\n", "qos", "sent", "expected",
                "received", "recv msg/s", "lost", "dup", "ooo", "old");
        for (int q = 0; q < 3; q++) {
            if (!s->sent[q] && !s->recv[q])
                continue;
            fprintf(f, "  %-6d %12llu %12llu %12llu %12.0f %10llu %8llu %8llu %8llu\n", q,
                    (unsigned long long)s->sent[q], (unsigned long long)r->expected[q],
                    (unsigned long long)s->recv[q], per_s(s->recv[q], r->measured_s),
                    (unsigned long long)r->lost[q], (unsigned long long)s->dup[q],
                    (unsigned long long)s->ooo[q], (unsigned long long)s->old[q]);
        }
        uint64_t sent = s->sent[0] + s->sent[1] + s->sent[2];
        uint64_t recv = s->recv[0] + s->recv[1] + s->recv[2];
        fprintf(f, "  %-6s %12llu %12s %12llu %12.0f   (sent %.0f msg/s)\n", "all",
                (unsigned long long)sent, "", (unsigned long long)recv, per_s(recv, r->measured_s),
                per_s(sent, r->measured_s));
    }
    fprintf(f, "\n  %-22s %9s %9s %9s %9s %9s %9s %10s\n", "latency (us)", "p50", "p90", "p99",
            "p99.9", "max", "mean", "count");
    if (o->scenario != SC_CONN && o->scenario != SC_HANDSHAKE) {
        print_hist(f, "end-to-end", &s->lat);
        if (run->interval_ns)
            print_hist(f, "end-to-end, CO-corr.", &s->lat_co);
    }
    print_hist(f, "connect to CONNACK", &s->connack);
    double conn_secs = (double)(s->last_up_ns - s->first_up_ns) / 1e9;
    fprintf(f, "\n  connections: %llu/%llu up", (unsigned long long)s->conns_up,
            (unsigned long long)r->conns_target);
    if (o->scenario == SC_CONN && conn_secs > 0)
        fprintf(f, " (%.0f CONNACKs/s)", (double)s->conns_up / conn_secs);
    fprintf(f, "; failed %llu, refused %llu, closed %llu, protocol errors %llu\n",
            (unsigned long long)s->conn_failed, (unsigned long long)s->refused,
            (unsigned long long)s->closed, (unsigned long long)s->proto_err);
    if (s->foreign || s->wrong_qos || s->ack_err || s->written_off)
        fprintf(f,
                "  foreign payloads %llu, wrong QoS %llu, bad acks %llu, window credits written "
                "off after stalls %llu\n",
                (unsigned long long)s->foreign, (unsigned long long)s->wrong_qos,
                (unsigned long long)s->ack_err, (unsigned long long)s->written_off);
    fprintf(f,
            "  bench: cpu %.0f%% of one core while measuring (user %.2f s, sys %.2f s), "
            "rss %ld KiB (peak %ld KiB)\n",
            r->cpu_pct, r->cpu_user_s, r->cpu_sys_s, r->bench_rss_kib, r->bench_hwm_kib);
    if (r->broker_rss_before_kib >= 0 && r->broker_rss_after_kib >= 0) {
        long d = r->broker_rss_after_kib - r->broker_rss_before_kib;
        fprintf(f, "  broker pid %d: rss %ld -> %ld KiB", o->broker_pid, r->broker_rss_before_kib,
                r->broker_rss_after_kib);
        if (s->conns_up)
            fprintf(f, ", %.0f bytes per connection", (double)d * 1024 / (double)s->conns_up);
        fputc('\n', f);
    }
    uint64_t received = s->recv[0] + s->recv[1] + s->recv[2];
    if (r->broker_cpu_s >= 0 && received)
        fprintf(f, "  broker cpu while measuring: %.2f s, %.3f us per message received\n",
                r->broker_cpu_s, r->broker_cpu_s * 1e6 / (double)received);
    if (r->broker_cpu_s >= 0 && s->handshakes)
        fprintf(f, "  broker cpu while measuring: %.2f s, %.1f us per connection (handshake)\n",
                r->broker_cpu_s, r->broker_cpu_s * 1e6 / (double)s->handshakes);
    if (r->slab_before_kib >= 0 && r->slab_after_kib >= 0 && s->conns_up && o->scenario == SC_CONN)
        fprintf(f, "  kernel slab: %+ld KiB, %.0f bytes per connection (both ends)\n",
                r->slab_after_kib - r->slab_before_kib,
                (double)(r->slab_after_kib - r->slab_before_kib) * 1024 / (double)s->conns_up);
    fprintf(f, "  result: %s\n", r->ok ? "OK" : "FAILED (see counts above)");
}

/* The transport and the handshake scenario's figures. */
static void json_transport(FILE *f, const struct run *run, const struct results *r)
{
    const struct wstats *s = &r->st;
    fprintf(f, "  \"transport\": \"%s\",\n", xport_name(run->xp));
    fprintf(f, "  \"handshakes\": %llu,\n  \"handshakes_per_s\": %.1f,\n  \"resumed\": %llu,\n",
            (unsigned long long)s->handshakes, per_s(s->handshakes, r->measured_s),
            (unsigned long long)s->resumed);
    fprintf(f, "  \"broker_cpu_us_per_handshake\": %.1f,\n",
            r->broker_cpu_s >= 0 && s->handshakes ? r->broker_cpu_s * 1e6 / (double)s->handshakes
                                                  : -1.0);
}

static void json_hist(FILE *f, const char *name, const struct hist *h, bool last)
{
    fprintf(f,
            "  \"%s\": {\"count\": %llu, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
            "\"p999\": %.1f, \"max\": %.1f, \"mean\": %.1f}%s\n",
            name, (unsigned long long)h->count, us(hist_percentile(h, 50)),
            us(hist_percentile(h, 90)), us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)),
            us(h->count ? h->max : 0), hist_mean(h) / 1000.0, last ? "" : ",");
}

/* Strings from the command line, escaped for JSON. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

int report_json(const char *path, const struct run *run, const struct results *r)
{
    const struct bench_opts *o = run->o;
    const struct wstats *s = &r->st;
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    uint64_t sent = s->sent[0] + s->sent[1] + s->sent[2];
    uint64_t recv = s->recv[0] + s->recv[1] + s->recv[2];
    fprintf(f, "{\n  \"scenario\": \"%s\",\n  \"host\": ", opts_scenario_name(o->scenario));
    json_str(f, o->host);
    fprintf(f, ",\n  \"port\": %u,\n  \"mqtt_version\": \"%s\",\n  \"threads\": %u,\n", o->port,
            o->version == MQTT_V5 ? "5.0" : "3.1.1", o->threads);
    fprintf(f, "  \"publishers\": %u,\n  \"subscribers\": %u,\n  \"shared\": %s,\n", run->npub,
            run->nsub, o->shared ? "true" : "false");
    fprintf(f, "  \"qos\": [");
    for (unsigned i = 0; i < o->nqos; i++)
        fprintf(f, "%s%u", i ? ", " : "", o->qos[i]);
    fprintf(f, "],\n  \"sub_qos\": %u,\n  \"payload\": %u,\n  \"rate_per_publisher\": %.3f,\n",
            o->sub_qos, o->payload, o->rate);
    fprintf(f, "  \"window\": %u,\n  \"clean\": %s,\n  \"warmup_s\": %.3f,\n", o->window,
            o->clean ? "true" : "false", o->warmup);
    fprintf(f, "  \"measured_s\": %.3f,\n  \"sent\": %llu,\n  \"received\": %llu,\n", r->measured_s,
            (unsigned long long)sent, (unsigned long long)recv);
    fprintf(f, "  \"sent_per_s\": %.1f,\n  \"received_per_s\": %.1f,\n", per_s(sent, r->measured_s),
            per_s(recv, r->measured_s));
    json_transport(f, run, r);
    fprintf(f, "  \"per_qos\": {");
    bool first = true;
    for (int q = 0; q < 3; q++) {
        if (!s->sent[q] && !s->recv[q])
            continue;
        fprintf(f,
                "%s\n    \"%d\": {\"sent\": %llu, \"expected\": %llu, \"received\": %llu, "
                "\"lost\": %llu, \"duplicate\": %llu, \"out_of_order\": %llu, \"old\": %llu}",
                first ? "" : ",", q, (unsigned long long)s->sent[q],
                (unsigned long long)r->expected[q], (unsigned long long)s->recv[q],
                (unsigned long long)r->lost[q], (unsigned long long)s->dup[q],
                (unsigned long long)s->ooo[q], (unsigned long long)s->old[q]);
        first = false;
    }
    fprintf(f, "\n  },\n");
    json_hist(f, "latency_us", &s->lat, false);
    if (run->interval_ns)
        json_hist(f, "latency_corrected_us", &s->lat_co, false);
    json_hist(f, "connack_us", &s->connack, false);
    double conn_secs = (double)(s->last_up_ns - s->first_up_ns) / 1e9;
    fprintf(f,
            "  \"connections\": {\"target\": %llu, \"up\": %llu, \"failed\": %llu, "
            "\"refused\": %llu, \"closed\": %llu, \"protocol_errors\": %llu, "
            "\"connack_per_s\": %.1f},\n",
            (unsigned long long)r->conns_target, (unsigned long long)s->conns_up,
            (unsigned long long)s->conn_failed, (unsigned long long)s->refused,
            (unsigned long long)s->closed, (unsigned long long)s->proto_err,
            conn_secs > 0 ? (double)s->conns_up / conn_secs : 0.0);
    fprintf(f,
            "  \"errors\": {\"foreign\": %llu, \"wrong_qos\": %llu, \"bad_acks\": %llu, "
            "\"window_written_off\": %llu},\n",
            (unsigned long long)s->foreign, (unsigned long long)s->wrong_qos,
            (unsigned long long)s->ack_err, (unsigned long long)s->written_off);
    fprintf(f,
            "  \"bench\": {\"cpu_pct\": %.1f, \"user_s\": %.3f, \"sys_s\": %.3f, "
            "\"rss_kib\": %ld, \"hwm_kib\": %ld, \"ring_mode\": \"%s\"},\n",
            r->cpu_pct, r->cpu_user_s, r->cpu_sys_s, r->bench_rss_kib, r->bench_hwm_kib,
            r->ring_mode);
    double per_conn = -1;
    if (r->broker_rss_before_kib >= 0 && r->broker_rss_after_kib >= 0 && s->conns_up)
        per_conn = (double)(r->broker_rss_after_kib - r->broker_rss_before_kib) * 1024 /
                   (double)s->conns_up;
    double per_msg = r->broker_cpu_s >= 0 && recv ? r->broker_cpu_s * 1e6 / (double)recv : -1;
    fprintf(f,
            "  \"broker\": {\"pid\": %d, \"rss_before_kib\": %ld, \"rss_after_kib\": %ld, "
            "\"bytes_per_conn\": %.1f, \"cpu_s\": %.3f, \"cpu_us_per_msg\": %.4f},\n",
            o->broker_pid, r->broker_rss_before_kib, r->broker_rss_after_kib, per_conn,
            r->broker_cpu_s, per_msg);
    fprintf(f, "  \"kernel_slab_delta_kib\": %ld,\n",
            r->slab_before_kib >= 0 && r->slab_after_kib >= 0
                ? r->slab_after_kib - r->slab_before_kib
                : 0);
    fprintf(f, "  \"complete\": %s,\n  \"ok\": %s\n}\n", r->complete ? "true" : "false",
            r->ok ? "true" : "false");
    if (fclose(f) != 0)
        return -errno;
    return 0;
}
