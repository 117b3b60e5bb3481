/*
 * wss: `ws` on `tls` (see wss.h): the stack's table, and its listener's
 * hooks, which make both layers' contexts from the one [listener.NAME].
 */
#include "net/wss.h"

#include "net/tls.h"
#include "net/transport_stack.h"
#include "net/ws.h"

/* Lowest first: TLS records carry the WebSocket frames. */
static const struct transport_kind *const layers[] = {&transport_kind_tls, &transport_kind_ws};

static const struct transport_ops wss_ops = {
    .name = "wss",
    .state_size = TRANSPORT_STACK_STATE + TLS_STATE_SIZE + WS_STATE_SIZE,
    .open = transport_stack_open,
    .input = transport_stack_input,
    .seal = transport_stack_seal,
    .export_size = transport_stack_export_size,
    .export_state = transport_stack_export,
    .import_state = transport_stack_import,
    .opening = transport_stack_opening,
    .info = transport_stack_info,
    .close = transport_stack_close,
};

static int wss_listener_create(const struct config_listener *cl, void **ctx,
                               struct transport_fail *fail)
{
    return transport_stack_listener_create(layers, sizeof(layers) / sizeof(layers[0]),
                                           wss_ops.state_size, cl, ctx, fail);
}

/* What wolfSSL and tls_record keep per thread (ws keeps nothing). */
static void wss_thread_fini(void)
{
    transport_kind_tls.thread_fini();
}

const struct transport_kind transport_kind_wss = {
    .ops = &wss_ops,
    .listener_create = wss_listener_create,
    .listener_sni = transport_stack_listener_sni,
    .listener_prepare = transport_stack_listener_prepare,
    .listener_commit = transport_stack_listener_commit,
    .listener_destroy = transport_stack_listener_destroy,
    .thread_fini = wss_thread_fini,
};
