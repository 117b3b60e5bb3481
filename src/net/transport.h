/*
 * transport: what a listener can speak (`transport =` in its
 * [listener.NAME]), and what its streams share.
 *
 * Each kind pairs the per-stream `struct transport_ops` (stream.h) with
 * the listener's side: a context built once from the listener's
 * configuration before any shard starts (certificates, keys, options),
 * shared read-only by every shard's streams of that listener (a stream
 * reaches it with stream_xprt_ctx), its files re-read on reload in two
 * steps (prepare, then commit or drop with the rest of the reload), freed
 * at exit (a listener a reload removes keeps it for its open streams).
 *
 * Adding a transport: a file in src/net with its transport_ops and kind,
 * a name in config's enum config_transport, and its row in transport.c.
 * Nothing above the stream changes.
 */
#ifndef RINGMQ_NET_TRANSPORT_H
#define RINGMQ_NET_TRANSPORT_H

#include "config/config.h"
#include "net/stream.h"

/* Why a listener's file did not load: the key that names it ("tls_cert",
 * "sni.HOST.key"), the file, and the reason ("not a PEM private key").
 * file is empty when no one file is to blame (out of memory, a setting
 * wolfSSL refused). */
struct transport_fail {
    char key[CONFIG_SNI_HOST_MAX + 16];
    char file[CONFIG_PATH_MAX];
    char why[1024];
};

/* Fill *f (NULL: nothing) with key, file (NULL: none) and why. */
void transport_fail_set(struct transport_fail *f, const char *key, const char *file,
                        const char *why);

struct transport_kind {
    const struct transport_ops *ops;
    /* Build the listener's shared context from its configuration (NULL
     * hook: none). 0 or -errno, having logged why with the listener's
     * name and said it in *fail; the broker does not start (a reload
     * that adds it is refused). */
    int (*listener_create)(const struct config_listener *cl, void **ctx,
                           struct transport_fail *fail);
    /* Then the certificates it shows by server name (cfg->sni entries of
     * listener li): NULL hook, none. 0 or -errno, having logged why and
     * said it in *fail. */
    int (*listener_sni)(void *ctx, const struct config *cfg, uint32_t li,
                        struct transport_fail *fail);
    /* Reload, first step (main thread, shards running): read listener
     * li's files again into what is not served yet, checking them as a
     * start would. 0; or -errno with nothing pending, *fail saying which
     * file and why (not logged: the reload does). NULL: no files. */
    int (*listener_prepare)(void *ctx, const struct config *cfg, uint32_t li,
                            struct transport_fail *fail);
    /* Reload, second step: serve what listener_prepare read to streams
     * that start afterwards (serve; those open or opening keep what they
     * started with), or drop it (the reload was refused). Nothing
     * pending: no-op. NULL when listener_prepare is. */
    void (*listener_commit)(void *ctx, bool serve);
    /* Free the context once no stream uses it (at exit). */
    void (*listener_destroy)(void *ctx);
    /* A thread that ran streams of this kind is ending: free what the
     * library keeps per thread. NULL: nothing. Idempotent. */
    void (*thread_fini)(void);
};

/* The kind of transport t (never NULL for t < CONFIG_TRANSPORT_COUNT). */
const struct transport_kind *transport_kind(enum config_transport t);

/* A listener's transport: its kind and its context. */
struct transport_listener {
    const struct transport_kind *kind;
    void *ctx;
};

/* Set up the context of listener li of cfg into *out. 0, or -errno with
 * nothing left made (the reason logged, and in *fail). */
int transport_listener_create(const struct config *cfg, uint32_t li, struct transport_listener *out,
                              struct transport_fail *fail);

/* Reload (main thread, shards running), first step: read the files of
 * listener li of cfg, whose context *l is, again without serving them.
 * 0, or -errno with *fail saying why and nothing pending. */
int transport_listener_prepare(const struct config *cfg, uint32_t li, struct transport_listener *l,
                               struct transport_fail *fail);

/* Second step: serve what transport_listener_prepare read (serve) or
 * drop it. Nothing pending: no-op. */
void transport_listener_commit(struct transport_listener *l, bool serve);

/* Destroy what transport_listener_create made (none: no-op). */
void transport_listener_destroy(struct transport_listener *l);

/* Set up the context of every listener of cfg into out[] (cfg->nlisteners
 * entries). 0, or -errno with those already made destroyed again. */
int transport_listeners_create(const struct config *cfg, struct transport_listener *out);

/* Destroy what transport_listeners_create made. */
void transport_listeners_destroy(struct transport_listener *ls, uint32_t n);

#endif
