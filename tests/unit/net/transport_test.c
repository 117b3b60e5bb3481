/* net/transport: the kinds by config name, and the listeners' contexts. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/config.h"
#include "net/transport.h"

Test(transport, every_config_transport_has_a_kind_with_ops)
{
    for (unsigned t = 0; t < CONFIG_TRANSPORT_COUNT; t++) {
        const struct transport_kind *k = transport_kind((enum config_transport)t);
        cr_assert_not_null(k, "%s", config_transport_name(t));
        cr_assert_not_null(k->ops, "%s", config_transport_name(t));
        cr_assert_str_eq(k->ops->name, config_transport_name(t));
    }
    cr_assert_eq(transport_kind(CONFIG_TRANSPORT_TCP)->ops, &transport_tcp);
}

Test(transport, tcp_listeners_share_no_context)
{
    struct config cfg;
    config_defaults(&cfg);
    cfg.nlisteners = 2;
    cfg.listeners[0].transport = CONFIG_TRANSPORT_TCP;
    cfg.listeners[1].transport = CONFIG_TRANSPORT_TCP;
    struct transport_listener ls[CONFIG_MAX_LISTENERS];
    memset(ls, 0xa5, sizeof(ls));
    cr_assert_eq(transport_listeners_create(&cfg, ls), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ls[i].kind, transport_kind(CONFIG_TRANSPORT_TCP));
        cr_assert_null(ls[i].ctx);
    }
    transport_listeners_destroy(ls, cfg.nlisteners);
}
