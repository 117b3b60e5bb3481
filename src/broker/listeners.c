/*
 * broker/listeners: the listener slots (listeners.h), main thread only.
 *
 * A slot, once published (its `open` and nslots stored with release), is
 * read by every shard; main writes a slot only before it publishes it,
 * and afterwards only clears `open`. Each shard's socket of a slot is
 * written into its listen_fds before the slot is published and closed by
 * that shard (shard.c), so no socket is closed under an accept in flight.
 * A closed slot is never reused: the streams accepted on it index the
 * shards' tables with its number, and its transport's context serves
 * them until exit.
 */
#include "broker/listeners.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "net/uring.h"

/*
 * listener_probe, again for up to LISTEN_WAIT_MS while the port is in use:
 * the sockets of a predecessor that was killed are closed only when the
 * kernel tears its rings down, after the process is gone (a restart by a
 * supervisor right after a crash would otherwise fail).
 */
#define LISTEN_WAIT_MS 3000u

static int probe(const char *bind, uint16_t port, bool patient)
{
    uint64_t until = clock_now_ms() + (patient ? LISTEN_WAIT_MS : 0);
    int ret;
    while ((ret = listener_probe(bind, port)) == -EADDRINUSE && clock_now_ms() < until)
        usleep(50 * 1000);
    return ret;
}

static void set_err(char *err, size_t errlen, const struct config_listener *l, int ret)
{
    snprintf(err, errlen, "listener %s: cannot listen on %s:%u: %s%s", l->name, l->bind, l->port,
             strerror(-ret), ret == -EADDRINUSE ? " (another process listens there)" : "");
}

/* Close the sockets of an unpublished slot li (none: no-op). */
static void sockets_close(struct broker *b, uint32_t li)
{
    for (uint32_t i = 0; i < b->nshards; i++) {
        if (b->shards[i]->listen_fds[li] > 0)
            close(b->shards[i]->listen_fds[li]);
        b->shards[i]->listen_fds[li] = -1;
    }
}

/* Fill slot li (not published) with listener ci of cfg: its transport and
 * one socket per shard. 0, or -errno with nothing left open and err set. */
static int slot_make(struct broker *b, const struct config *cfg, uint32_t ci, uint32_t li,
                     char *err, size_t errlen)
{
    struct listener_slot *ls = &b->lslots[li];
    const struct config_listener *l = &cfg->listeners[ci];
    ls->cfg = cfg;
    ls->ci = ci;
    struct transport_fail f = {0};
    int ret = transport_listener_create(cfg, ci, &ls->xprt, &f);
    if (ret < 0) {
        if (f.file[0])
            snprintf(err, errlen,
                     "listener %s: its transport cannot start: %s: %s ([listener.%s] %s)", l->name,
                     f.file, f.why, l->name, f.key);
        else if (f.why[0])
            snprintf(err, errlen, "listener %s: its transport cannot start: %s: %s", l->name, f.key,
                     f.why);
        else
            snprintf(err, errlen, "listener %s: its transport cannot start (%s)", l->name,
                     strerror(-ret));
        return ret;
    }
    uint16_t port = l->port;
    for (uint32_t i = 0; i < b->nshards; i++) {
        uint16_t bound = 0;
        int fd = listener_open(l->bind, port, (int)l->backlog, (int)l->send_buffer, &bound);
        if (fd < 0) {
            set_err(err, errlen, l, fd);
            sockets_close(b, li);
            transport_listener_destroy(&ls->xprt);
            return fd;
        }
        b->shards[i]->listen_fds[li] = fd;
        port = bound; /* port 0: every shard binds the port the first got */
    }
    ls->port = port;
    return 0;
}

static void slot_publish(struct broker *b, uint32_t li)
{
    atomic_store_explicit(&b->lslots[li].open, true, memory_order_release);
}

/* The room a connection has for its transport's state, in bytes. */
static size_t state_size(const struct config_listener *l)
{
    return transport_kind((enum config_transport)l->transport)->ops->state_size;
}

int listeners_open(struct broker *b)
{
    const struct config *cfg = b->cfg;
    char err[512];
    for (uint32_t li = 0; li < cfg->nlisteners; li++)
        if (state_size(&cfg->listeners[li]) > b->xstate)
            b->xstate = state_size(&cfg->listeners[li]);
    /* Every fixed port first, before any of ours listens: two of our own
     * listeners may share a port on different addresses (0.0.0.0 and
     * 127.0.0.1), which a probe after the first had opened would refuse. */
    for (uint32_t li = 0; li < cfg->nlisteners; li++) {
        const struct config_listener *l = &cfg->listeners[li];
        int ret = l->port ? probe(l->bind, l->port, true) : 0;
        if (ret < 0) {
            set_err(err, sizeof(err), l, ret);
            log_err("%s", err);
            return ret;
        }
    }
    for (uint32_t li = 0; li < cfg->nlisteners; li++) {
        int ret = slot_make(b, cfg, li, li, err, sizeof(err));
        if (ret < 0) {
            log_err("%s", err);
            return ret;
        }
        slot_publish(b, li);
        atomic_store_explicit(&b->nslots, li + 1, memory_order_release);
    }
    return 0;
}

static void log_listening(const struct broker *b, uint32_t li, const char *what)
{
    const struct config_listener *l = shard_listener(b, li);
    bool v6 = strchr(l->bind, ':') != NULL;
    log_info("%slistening on %s%s%s:%u (%s, %s)", what, v6 ? "[" : "", l->bind, v6 ? "]" : "",
             b->lslots[li].port, l->name, config_transport_name(l->transport));
}

void listeners_announce(const struct broker *b)
{
    uint32_t n = atomic_load_explicit(&b->nslots, memory_order_acquire);
    for (uint32_t li = 0; li < n; li++)
        if (atomic_load_explicit(&b->lslots[li].open, memory_order_acquire))
            log_listening(b, li, "");
}

/* The open slot whose listener is listener ni of next, unchanged; -1: none. */
static int slot_kept(const struct broker *b, uint32_t n, const struct config *next, uint32_t ni)
{
    for (uint32_t li = 0; li < n; li++) {
        const struct listener_slot *ls = &b->lslots[li];
        if (atomic_load_explicit(&ls->open, memory_order_relaxed) &&
            config_listener_same(ls->cfg, ls->ci, next, ni))
            return (int)li;
    }
    return -1;
}

/* Whether an open slot listens on `port` already (a listener replaced on
 * the same port: the probe would find our own socket). */
static bool port_ours(const struct broker *b, uint32_t n, uint16_t port)
{
    for (uint32_t li = 0; li < n; li++)
        if (atomic_load_explicit(&b->lslots[li].open, memory_order_relaxed) &&
            b->lslots[li].port == port)
            return true;
    return false;
}

/* Make a slot from n on for every listener of next that has none
 * (added[ni]); *made: how many. 0, or -errno with none left made. */
static int slots_make(struct broker *b, uint32_t n, const struct config *next, const bool *added,
                      uint32_t *made, char *err, size_t errlen)
{
    *made = 0;
    int ret = 0;
    for (uint32_t ni = 0; ni < next->nlisteners && ret == 0; ni++) {
        const struct config_listener *l = &next->listeners[ni];
        if (!added[ni])
            continue;
        if (n + *made == SHARD_MAX_LISTENERS) {
            snprintf(err, errlen,
                     "listener %s: no slot left (a broker opens at most %u listeners in its "
                     "life, reloads included): restart to add it",
                     l->name, SHARD_MAX_LISTENERS);
            ret = -ENOSPC;
        } else if (state_size(l) > b->xstate) {
            /* Every connection's room was sized at start, for the
             * transports the listeners had then. */
            snprintf(err, errlen,
                     "listener %s: transport = %s needs a restart (no listener had it, or one "
                     "as large, at start: connections have no room for its state)",
                     l->name, config_transport_name((enum config_transport)l->transport));
            ret = -ENOSPC;
        } else if (l->port && !port_ours(b, n, l->port) && (ret = probe(l->bind, l->port, false))) {
            set_err(err, errlen, l, ret);
        } else if ((ret = slot_make(b, next, ni, n + *made, err, errlen)) == 0) {
            (*made)++;
        }
    }
    if (ret < 0)
        for (uint32_t k = 0; k < *made; k++) {
            sockets_close(b, n + k);
            transport_listener_destroy(&b->lslots[n + k].xprt);
        }
    return ret;
}

int listeners_reload(struct broker *b, const struct config *next, char *err, size_t errlen)
{
    uint32_t n = atomic_load_explicit(&b->nslots, memory_order_relaxed);
    bool added[CONFIG_MAX_LISTENERS], kept[SHARD_MAX_LISTENERS] = {0};
    for (uint32_t ni = 0; ni < next->nlisteners; ni++) {
        int li = slot_kept(b, n, next, ni);
        added[ni] = li < 0;
        if (li >= 0)
            kept[li] = true;
    }
    uint32_t made;
    int ret = slots_make(b, n, next, added, &made, err, errlen);
    if (ret < 0)
        return ret;
    for (uint32_t li = 0; li < n; li++) {
        struct listener_slot *ls = &b->lslots[li];
        if (kept[li] || !atomic_load_explicit(&ls->open, memory_order_relaxed))
            continue;
        atomic_store_explicit(&ls->open, false, memory_order_release);
        const struct config_listener *l = shard_listener(b, li);
        log_info("listener %s: no longer accepting on %s:%u; its connections stay until they "
                 "leave",
                 l->name, l->bind, ls->port);
    }
    for (uint32_t k = 0; k < made; k++) {
        slot_publish(b, n + k);
        log_listening(b, n + k, "");
    }
    atomic_store_explicit(&b->nslots, n + made, memory_order_release);
    return 0;
}

/* Whether `next` keeps open slot li as it is. */
static bool slot_stays(const struct broker *b, uint32_t li, const struct config *next)
{
    const struct listener_slot *ls = &b->lslots[li];
    for (uint32_t ni = 0; ni < next->nlisteners; ni++)
        if (config_listener_same(ls->cfg, ls->ci, next, ni))
            return true;
    return false;
}

int listeners_prepare_files(struct broker *b, const struct config *next,
                            void (*on_error)(void *arg, const char *file, const char *message),
                            void *arg)
{
    uint32_t n = atomic_load_explicit(&b->nslots, memory_order_relaxed);
    int ret = 0;
    for (uint32_t li = 0; li < n; li++) {
        struct listener_slot *ls = &b->lslots[li];
        if (!atomic_load_explicit(&ls->open, memory_order_relaxed) || !slot_stays(b, li, next))
            continue;
        struct transport_fail f = {0};
        if (transport_listener_prepare(ls->cfg, ls->ci, &ls->xprt, &f) == 0)
            continue;
        const char *name = ls->cfg->listeners[ls->ci].name;
        char msg[sizeof(f) + CONFIG_NAME_MAX + 32];
        if (f.file[0])
            snprintf(msg, sizeof(msg), "%s: %s ([listener.%s] %s)", f.file, f.why, name, f.key);
        else
            snprintf(msg, sizeof(msg), "[listener.%s] %s: %s", name, f.key, f.why);
        on_error(arg, f.file[0] ? f.file : NULL, msg);
        ret = -EINVAL;
    }
    if (ret < 0)
        listeners_commit_files(b, false);
    return ret;
}

void listeners_commit_files(struct broker *b, bool serve)
{
    uint32_t n = atomic_load_explicit(&b->nslots, memory_order_relaxed);
    for (uint32_t li = 0; li < n; li++)
        transport_listener_commit(&b->lslots[li].xprt, serve);
}

void listeners_fini(struct broker *b)
{
    for (uint32_t li = 0; li < SHARD_MAX_LISTENERS; li++) {
        for (uint32_t i = 0; i < b->nshards; i++) {
            struct shard *s = b->shards[i];
            if (s && s->listen_fds[li] > 0)
                close(s->listen_fds[li]);
            if (s)
                s->listen_fds[li] = -1;
        }
        transport_listener_destroy(&b->lslots[li].xprt);
    }
    atomic_store_explicit(&b->nslots, 0, memory_order_relaxed);
}
