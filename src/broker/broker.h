/*
 * broker: the running broker as main sees it: a set of shards built from
 * one configuration. Everything else in src/broker is internal.
 */
#ifndef RINGMQ_BROKER_BROKER_H
#define RINGMQ_BROKER_BROKER_H

#include "config/config.h"

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

/* Re-read the files the listeners' transports load (TLS certificates,
 * keys, CAs, CRLs, SNI certificates) while the shards run: connections
 * that start afterwards use them, open ones are untouched. A listener
 * whose files do not load keeps its previous ones (logged, naming the
 * file). Main thread (SIGHUP). 0, or -errno when some listener failed. */
int broker_reload_transports(struct broker *b);

/* Put `next` in force (live reload, main thread): each shard takes it on
 * its next tick (within SHARD_TICK_MS), with the tenants' settings; new
 * connections and packets are checked against it, open connections keep
 * what they were granted. `next` must have been reconciled with the
 * configuration in force (config_reconcile: what needs a restart is as
 * it was) and must outlive the broker. */
void broker_reload_config(struct broker *b, const struct config *next);

/* Ask every shard to stop, wait for the threads and free everything.
 * Wills are published only when cfg->wills_on_shutdown is set. */
void broker_stop(struct broker *b);

#endif
