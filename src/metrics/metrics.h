/*
 * metrics: the Prometheus text exposition format (version 0.0.4) and the
 * HTTP listener that serves it.
 *
 * The broker owns the numbers; this layer only formats them. On every scrape
 * the server calls the broker's collector on the HTTP thread, the collector
 * reads the shard-local counters (see metrics/counters.h) and writes samples
 * through metrics_write(); the text goes back as the response body. Nothing
 * here runs on a shard thread or touches broker state by itself.
 */
#ifndef RINGMQ_METRICS_METRICS_H
#define RINGMQ_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* A sink the broker's collector writes samples into while a scrape runs. */
struct metrics_writer;

/*
 * One sample: name (e.g. "ringmq_messages_in_total"), HELP text and TYPE
 * ("counter" or "gauge") are emitted once per name (the first time the name
 * appears in a scrape), then `name{label1="v1",...} value`. Labels are given
 * as NULL-terminated arrays of key/value strings; values are escaped per the
 * Prometheus text format (\\, \", \n), and a byte that is not well-formed
 * UTF-8 (in a label value or HELP) becomes the text \xNN. Samples with the
 * same name must be written consecutively (the caller guarantees it).
 *
 * All strings are borrowed for the duration of the call. label_keys may be
 * NULL (no labels); label_values must then be NULL or empty too. help may be
 * NULL (no HELP line). type must be one of "counter", "gauge", "untyped",
 * "summary", "histogram", or NULL (no TYPE line). Values: NaN and +/-Inf are
 * written as "NaN", "+Inf", "-Inf"; finite values in the shortest form that
 * reads back to the same double.
 *
 * A sample that would make the exposition unparsable is skipped and logged
 * (rate-limited): a metric name outside [a-zA-Z_:][a-zA-Z0-9_:]*, a label
 * name outside [a-zA-Z_][a-zA-Z0-9_]* or starting with "__", a label key
 * without a value, an unknown type. Out of memory marks the writer failed:
 * the scrape then answers 500 and metrics_render() returns NULL.
 */
void metrics_write(struct metrics_writer *w, const char *name, const char *help, const char *type,
                   const char *const *label_keys, const char *const *label_values, double value);

/*
 * The broker's collector: called on the HTTP thread for every GET /metrics;
 * it reads shard-local counters (plain loads, summed) and writes samples.
 * The server calls it from one thread only, never twice at the same time.
 */
typedef void (*metrics_collect_fn)(struct metrics_writer *w, void *arg);

struct metrics_server;

/*
 * Start an HTTP server (libmicrohttpd, its own internal thread,
 * MHD_USE_INTERNAL_POLLING_THREAD) on bind:port (IPv4 or IPv6 literal; port
 * 0 picks one, *bound_port returns it). GET /metrics answers
 * "text/plain; version=0.0.4" with what collect wrote; GET / answers a
 * one-line index; anything else 404; methods other than GET 405. Returns
 * NULL with a message in err on failure.
 *
 * bind may carry IPv6 brackets ("[::1]"). bound_port may be NULL; err may be
 * NULL when errlen is 0. arg is borrowed and must outlive the server.
 */
struct metrics_server *metrics_server_start(const char *bind, uint16_t port,
                                            metrics_collect_fn collect, void *arg,
                                            uint16_t *bound_port, char *err, size_t errlen);

/*
 * Stop the server: waits for a running scrape to finish and joins the HTTP
 * thread, so collect is not running and will not run once this returns.
 * NULL is a no-op.
 */
void metrics_server_stop(struct metrics_server *s);

/*
 * For tests and $SYS: run collect into a malloc'd NUL-terminated buffer (the
 * exposition text). *len (when len is not NULL) gets its length without the
 * NUL. The caller owns the buffer and frees it with free(). Returns NULL when
 * memory ran out.
 */
char *metrics_render(metrics_collect_fn collect, void *arg, size_t *len);

#endif
