/*
 * transport: the table of transport kinds by config's enum, and the
 * listeners' contexts.
 */
#include "net/transport.h"

#include <stdio.h>

#include "net/tls.h"
#include "net/ws.h"
#include "net/wss.h"

static const struct transport_kind kind_tcp = {
    .ops = &transport_tcp,
};

static const struct transport_kind *const kinds[CONFIG_TRANSPORT_COUNT] = {
    [CONFIG_TRANSPORT_TCP] = &kind_tcp,
    [CONFIG_TRANSPORT_WS] = &transport_kind_ws,
    [CONFIG_TRANSPORT_TLS] = &transport_kind_tls,
    [CONFIG_TRANSPORT_WSS] = &transport_kind_wss,
};

const struct transport_kind *transport_kind(enum config_transport t)
{
    return (unsigned)t < CONFIG_TRANSPORT_COUNT ? kinds[t] : &kind_tcp;
}

int transport_listener_create(const struct config *cfg, uint32_t li, struct transport_listener *out,
                              struct transport_fail *fail)
{
    const struct config_listener *cl = &cfg->listeners[li];
    out->kind = transport_kind((enum config_transport)cl->transport);
    out->ctx = NULL;
    int ret = out->kind->listener_create ? out->kind->listener_create(cl, &out->ctx, fail) : 0;
    if (ret == 0 && out->kind->listener_sni) {
        ret = out->kind->listener_sni(out->ctx, cfg, li, fail);
        if (ret < 0)
            out->kind->listener_destroy(out->ctx);
    }
    if (ret < 0)
        out->ctx = NULL;
    return ret;
}

void transport_fail_set(struct transport_fail *f, const char *key, const char *file,
                        const char *why)
{
    if (!f)
        return;
    snprintf(f->key, sizeof(f->key), "%s", key);
    snprintf(f->file, sizeof(f->file), "%s", file ? file : "");
    snprintf(f->why, sizeof(f->why), "%s", why);
}

int transport_listener_prepare(const struct config *cfg, uint32_t li, struct transport_listener *l,
                               struct transport_fail *fail)
{
    if (!l->kind || !l->kind->listener_prepare || !l->ctx)
        return 0;
    return l->kind->listener_prepare(l->ctx, cfg, li, fail);
}

void transport_listener_commit(struct transport_listener *l, bool serve)
{
    if (l->kind && l->kind->listener_commit && l->ctx)
        l->kind->listener_commit(l->ctx, serve);
}

void transport_listener_destroy(struct transport_listener *l)
{
    if (l->kind && l->kind->listener_destroy && l->ctx)
        l->kind->listener_destroy(l->ctx);
    l->ctx = NULL;
}

int transport_listeners_create(const struct config *cfg, struct transport_listener *out)
{
    for (uint32_t i = 0; i < cfg->nlisteners; i++) {
        struct transport_fail fail;
        int ret = transport_listener_create(cfg, i, &out[i], &fail);
        if (ret < 0) {
            transport_listeners_destroy(out, i);
            return ret;
        }
    }
    return 0;
}

void transport_listeners_destroy(struct transport_listener *ls, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        transport_listener_destroy(&ls[i]);
}
