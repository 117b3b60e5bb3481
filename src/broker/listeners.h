/*
 * broker/listeners: the listener slots of struct broker (shard/shard.h),
 * on the main thread: opened at start, added and closed by a live reload,
 * their files re-read, freed at exit. Each shard arms and cancels its own
 * accepts (shard_listeners_sync) and closes its own sockets of a closed
 * slot; main never closes a socket a shard may have an accept on.
 */
#ifndef RINGMQ_BROKER_LISTENERS_H
#define RINGMQ_BROKER_LISTENERS_H

#include <stddef.h>

#include "config/config.h"
#include "shard/shard.h"

/* Start-up, shards created and not yet running: a slot for each listener
 * of b->cfg, in file order, with its transport and one SO_REUSEPORT socket
 * per shard (a fixed port busy is waited for a little: a predecessor's
 * sockets close after it is gone). 0 or -errno (logged). */
int listeners_open(struct broker *b);

/* "listening on HOST:PORT" for every open slot (start-up). */
void listeners_announce(const struct broker *b);

/*
 * Live reload (main thread, shards running): each open slot whose
 * listener `next` has unchanged (config_listener_same) stays as it is;
 * every other closes (its connections stay until they leave); each
 * listener of `next` without a slot gets a new one, which every shard
 * takes on its next tick. Everything new is made before anything changes:
 * on failure (a port in use, a certificate that does not load, no slot
 * left) nothing changed and err says why. `next` must outlive the broker.
 * 0 or -errno.
 */
int listeners_reload(struct broker *b, const struct config *next, char *err, size_t errlen);

/* Live reload, first step (before listeners_reload): read the files of
 * every open slot's transport that `next` keeps (TLS certificates, keys,
 * CAs, CRLs, SNI) again and check them, serving nothing new yet. Each
 * that fails goes to on_error(arg, file or NULL, "FILE: reason
 * ([listener.NAME] KEY)"). 0; or -EINVAL with nothing left pending. */
int listeners_prepare_files(struct broker *b, const struct config *next,
                            void (*on_error)(void *arg, const char *file, const char *message),
                            void *arg);

/* Second step: serve what listeners_prepare_files read to the slots'
 * new connections (serve: the reload went through) or drop it. */
void listeners_commit_files(struct broker *b, bool serve);

/* At exit, the shards joined: close what sockets are left and free the
 * transports' contexts. */
void listeners_fini(struct broker *b);

#endif
