/*
 * broker: the running broker as main sees it: a set of shards built from
 * one configuration. Everything else in src/broker is internal.
 */
#ifndef RINGMQ_BROKER_BROKER_H
#define RINGMQ_BROKER_BROKER_H

#include "config/config.h"
#include "config/report.h"

struct broker;

struct plugin_host;
struct store_provider;

/*
 * Open every listener (one SO_REUSEPORT socket per shard per listener),
 * start one thread per shard, and return once every shard accepts.
 * Logs "listening on HOST:PORT" per listener. `cfg` and `plugins` (may be
 * NULL) are borrowed and must outlive the broker, as must `store` (NULL:
 * memory only; session/store.h), whose contexts each shard's start loads
 * from. Returns 0 or -errno (with the reason logged).
 */
int broker_start(const struct config *cfg, struct plugin_host *plugins,
                 const struct store_provider *store, struct broker **out);

/* Log one line (info) of what the broker holds now: uptime, connections,
 * sessions, subscriptions, retained messages, messages in and out, resident
 * memory, and each shard's connections and messages in. For SIGUSR1; any
 * thread (plain loads of the shards' counters, which may lag a little). */
void broker_log_status(struct broker *b);

/* One file of a reload that does not load: the file (NULL when no one
 * file is to blame) and "FILE: reason ([listener.NAME] KEY)". */
typedef void (*broker_file_error_fn)(void *arg, const char *file, const char *message);

/* Live reload, before anything changes (main's reload path, shards
 * running): the files the transports of the listeners that `next` keeps
 * load (TLS certificates, keys, CAs, CRLs, SNI certificates) read and
 * checked again, not served yet; listeners `next` adds or changes are
 * built by broker_reload_config. 0; or -EINVAL, each file that did not
 * load given to on_error: the reload must then change nothing, and the
 * listeners keep serving what they served. */
int broker_reload_transports(struct broker *b, const struct config *next,
                             broker_file_error_fn on_error, void *arg);

/* Serve what broker_reload_transports read to connections that start
 * afterwards (serve: the reload went through; open ones are untouched)
 * or drop it (it was refused). Nothing read: no-op. */
void broker_reload_transports_commit(struct broker *b, bool serve);

/* Live reload, before anything changes: the admin API's TLS files
 * ([admin] tls_cert, tls_key, tls_client_ca, as the broker started with
 * them) read and checked again (admin_server_tls_reload). 0, or -errno
 * with err naming the file: the reload must then change nothing, and the
 * API keeps serving what it served. No admin API, or no HTTPS: 0. */
int broker_reload_admin_tls(struct broker *b, char *err, size_t errlen);

/* Serve what broker_reload_admin_tls read to new admin connections
 * (serve: the reload went through) or drop it (it was refused). */
void broker_reload_admin_tls_commit(struct broker *b, bool serve);

/* Put `next` in force (live reload; one at a time, on main's reload
 * path): its listeners first (broker/listeners.h: added ones open,
 * removed ones stop accepting, their connections stay; on failure
 * nothing changed, err says why and -errno is returned); then each shard
 * takes it on its next tick (within SHARD_TICK_MS), with the tenants'
 * settings; new connections and packets are checked against it, open
 * connections keep what they were granted. `next` must have been
 * reconciled with the configuration in force (config_reconcile: what
 * needs a restart is as it was) and must outlive the broker. 0 or -errno. */
int broker_reload_config(struct broker *b, const struct config *next, char *err, size_t errlen);

/* The whole reload (what SIGHUP does), filling *out: main's, which
 * serializes it with SIGHUP's. 0, or -EINVAL when the configuration was
 * refused (out->errors say why; nothing changed). */
typedef int (*broker_reload_fn)(void *arg, struct config_report *out);

/* Let the admin API's POST /api/v1/reload run fn(arg) (on the admin
 * thread). Main, once, right after broker_start (a request that comes in
 * between waits for it, broker_reload). */
void broker_set_reload(struct broker *b, broker_reload_fn fn, void *arg);

/* Run the reload set by broker_set_reload: fn's result, or -EAGAIN when
 * none is set within 5 s (the listeners say "listening" before main can
 * set it). Any thread but main. */
int broker_reload(struct broker *b, struct config_report *out);

/* Ask every shard to stop, wait for the threads and free everything.
 * Wills are published only when cfg->wills_on_shutdown is set. */
void broker_stop(struct broker *b);

#endif
