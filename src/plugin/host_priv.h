/*
 * host_priv: what host.c (loading) and port.c (asynchronous calls) share
 * inside the plugin layer. Not for other layers: they use host.h.
 */
#ifndef RINGMQ_PLUGIN_HOST_PRIV_H
#define RINGMQ_PLUGIN_HOST_PRIV_H

#include "plugin/host.h"

/* One loaded plugin. `host` is the service table this plugin was given: its
 * own copy, because `host.log` is the log function bound to this plugin's
 * name (log slot). */
struct plugin_loaded {
    char *name; /* [plugin.NAME] */
    char *path;
    void *dl;
    const struct ringmq_plugin *tab;
    void *state;
    struct ringmq_host host;
    int log_slot;
    /* tab->check_read for an ABI 3 plugin, else NULL (an older table ends
     * before that field). */
    void (*check_read)(void *state, const struct ringmq_check *check,
                       struct ringmq_check_result *out);
    /* tab->reconfigure and tab->reconfigure_commit for an ABI 5 plugin,
     * else NULL (both or neither: table_check). */
    int (*reconfigure)(void *state, const struct ringmq_kv *config, size_t n, void **next,
                       char *err, size_t errlen);
    void (*reconfigure_commit)(void *state, void *next, bool apply);
    /* The keys in force (init's, then each committed reconfigure's): one
     * block, the array followed by its strings (kv_copy). */
    struct ringmq_kv *config;
    size_t nconfig;
    /* Between plugin_host_reconfigure and plugin_host_reconfigure_finish:
     * a reconfigure that returned 0, what it built and the keys it took. */
    bool pending;
    void *next;
    struct ringmq_kv *next_config;
    size_t next_nconfig;
};

/* Read-only once plugin_host_create returned, except `generation`. */
struct plugin_host {
    struct plugin_loaded *v;
    size_t n;
    uint32_t timeout_ms;
    struct plugin_loaded *auth;     /* the AUTH plugin or NULL */
    struct plugin_loaded *settings; /* the first SETTINGS plugin or NULL */
    bool has_throttle;
    bool has_events;     /* an EVENTS plugin is loaded: worth building events */
    uint32_t generation; /* bumped by every reload (atomic) */
};

/* Whether pl's table was built for at least ABI version v: fields and
 * callbacks of a later version are not in it. */
static inline bool plugin_speaks(const struct plugin_loaded *pl, uint32_t v)
{
    return pl->tab->abi_version >= v;
}

/* A copy of n pairs in one malloc'd block (free() frees it all): NULL when
 * out of memory, or for n == 0 (then *ok stays true). reconf.c. */
struct ringmq_kv *plugin_kv_copy(const struct ringmq_kv *kv, size_t n, bool *ok);

/* host->complete, implemented by port.c. */
void plugin_call_complete(struct ringmq_call *call, const union ringmq_result *res);
bool plugin_call_abandoned(const struct ringmq_call *call);

#endif
