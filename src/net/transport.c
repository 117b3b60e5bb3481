/*
 * transport: the table of transport kinds by config's enum, and the
 * listeners' contexts.
 */
#include "net/transport.h"

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

int transport_listeners_create(const struct config *cfg, struct transport_listener *out)
{
    for (uint32_t i = 0; i < cfg->nlisteners; i++) {
        const struct config_listener *cl = &cfg->listeners[i];
        out[i].kind = transport_kind((enum config_transport)cl->transport);
        out[i].ctx = NULL;
        int ret = out[i].kind->listener_create ? out[i].kind->listener_create(cl, &out[i].ctx) : 0;
        if (ret == 0 && out[i].kind->listener_sni) {
            ret = out[i].kind->listener_sni(out[i].ctx, cfg, i);
            if (ret < 0)
                out[i].kind->listener_destroy(out[i].ctx);
        }
        if (ret < 0) {
            transport_listeners_destroy(out, i);
            return ret;
        }
    }
    return 0;
}

int transport_listeners_reload(const struct config *cfg, struct transport_listener *ls)
{
    int first = 0;
    for (uint32_t i = 0; i < cfg->nlisteners; i++) {
        if (!ls[i].kind || !ls[i].kind->listener_reload || !ls[i].ctx)
            continue;
        int ret = ls[i].kind->listener_reload(ls[i].ctx, cfg, i);
        if (ret < 0 && first == 0)
            first = ret;
    }
    return first;
}

void transport_listeners_destroy(struct transport_listener *ls, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ls[i].kind && ls[i].kind->listener_destroy && ls[i].ctx)
            ls[i].kind->listener_destroy(ls[i].ctx);
        ls[i].ctx = NULL;
    }
}
