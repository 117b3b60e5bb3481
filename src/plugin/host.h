/*
 * plugin host: loads the plugins of include/ringmq/plugin.h, checks their
 * ABI, and turns their asynchronous calls into completion records that each
 * shard polls from its own port.
 *
 * Threads. plugin_host_create/destroy run on the main thread while no shard
 * runs plugin calls; plugin_host_reload and plugin_host_reconfigure* on the
 * thread that reloads, one reload at a time, while shards call plugins (the
 * plugins guard themselves, see the ABI; the host's own tables do not
 * change). A port belongs to one shard: only that shard calls plugin_port_*,
 * plugin_authenticate/auth_continue/check/settings on it. plugin_throttle and
 * plugin_event may be called by every shard at once (the host is read-only
 * after create). Plugins complete calls from any thread.
 *
 * Order of teardown: every port, then the host (plugins must not complete a
 * call after their fini returned).
 */
#ifndef RINGMQ_PLUGIN_HOST_H
#define RINGMQ_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq/plugin.h"

/* One [plugin.NAME] section: `name` is NAME, `path` the .so, `config` the
 * other keys (borrowed for plugin_host_create only). */
struct plugin_spec {
    const char *name;
    const char *path;
    const struct ringmq_kv *config;
    size_t n;
};

struct plugin_host;

/* Most plugins one process may hold loaded at once (all hosts together): the
 * log service has no context argument, so each loaded plugin gets one of a
 * fixed set of log functions that knows its name. */
#define PLUGIN_HOST_MAX_PLUGINS 32

/*
 * dlopen each .so (RTLD_NOW|RTLD_LOCAL), find RINGMQ_PLUGIN_ENTRY, check
 * RINGMQ_PLUGIN_ABI_OLDEST <= abi_version <= RINGMQ_PLUGIN_ABI_VERSION (an
 * older plugin is spoken to in its own version: nothing it lacks is read
 * from it, nothing it does not know is passed to it) and that the callbacks
 * required by its kinds are present (init, fini always; authenticate,
 * auth_continue, check for AUTH; throttle for THROTTLE; settings for
 * SETTINGS; event for EVENTS), at most one AUTH plugin overall and at most
 * PLUGIN_HOST_MAX_PLUGINS in the process, then call init, in the order of
 * `specs`. On any failure: -1 and one line in err naming the file and the
 * reason ("plugin auth (plugins/x.so): built for ABI 7, ringmqd speaks 2 to
 * 3"; "...: no symbol ringmq_plugin_entry: <dlerror>"; "...: init failed:
 * <the plugin's message>"); everything loaded so far is finalised and
 * closed. timeout_ms bounds every asynchronous call. n == 0 gives a host
 * without plugins.
 */
int plugin_host_create(const struct plugin_spec *specs, size_t n, uint32_t timeout_ms,
                       struct plugin_host **out, char *err, size_t errlen);

/* fini + dlclose every plugin, in reverse load order. NULL is a no-op. */
void plugin_host_destroy(struct plugin_host *h);

bool plugin_host_has_auth(const struct plugin_host *h);
bool plugin_host_has_throttle(const struct plugin_host *h);
/* True when an EVENTS plugin is loaded: callers skip building an event
 * (time, address text) otherwise. */
bool plugin_host_has_events(const struct plugin_host *h);

/* Every plugin's reload (SIGHUP), in load order; then the generation
 * changes, so that shards drop the verdicts they cached before it. */
void plugin_host_reload(struct plugin_host *h);

/* Whether plugin `name` is loaded and takes changed keys live (ABI 5
 * reconfigure): a reload reports its changed keys as in force rather than
 * as needing a restart. */
bool plugin_host_can_reconfigure(const struct plugin_host *h, const char *name);

/*
 * Live reload of plugin keys, step one of two. For each spec naming a
 * loaded plugin with the same path, whose keys differ from those in force
 * (as a set: order does not matter), and which has reconfigure: call it with
 * the spec's keys (borrowed for the call). Specs naming no loaded plugin,
 * another path, unchanged keys or a plugin without reconfigure are skipped
 * (a restart takes those). Returns how many plugins prepared new keys, then
 * awaiting plugin_host_reconfigure_finish; or -1 with err set, "plugin
 * NAME: <the plugin's message>" (or out of memory), after every plugin
 * prepared so far was told to discard: nothing changed. Calling it again
 * before finish is an error (-1).
 */
int plugin_host_reconfigure(struct plugin_host *h, const struct plugin_spec *specs, size_t n,
                            char *err, size_t errlen);

/* Step two: every plugin prepared by plugin_host_reconfigure puts its new
 * keys in force (apply) or discards them; with apply and at least one, the
 * generation changes as after a reload (cached verdicts are dropped). A
 * no-op without a prepared plugin. Cannot fail. */
void plugin_host_reconfigure_finish(struct plugin_host *h, bool apply);

/* How many reloads (and applied reconfigures) have completed (any thread;
 * an acquire load that pairs with the release in plugin_host_reload and
 * plugin_host_reconfigure_finish, so a shard that sees the new
 * generation also sees what the plugins' reload wrote). */
uint32_t plugin_host_generation(const struct plugin_host *h);

/*
 * One per shard: where that shard's completions arrive. `wake` (may be NULL)
 * is called from any thread, possibly the plugin's, possibly the shard's own
 * thread inside plugin_authenticate & co when the plugin completes
 * synchronously, after a completion was queued, so the shard can leave its
 * wait; the shard then polls. `wake` is never called once
 * plugin_port_destroy has returned. NULL on allocation failure.
 */
struct plugin_port;
struct plugin_port *plugin_port_create(struct plugin_host *h, void (*wake)(void *arg), void *arg);

/* Pending calls are abandoned safely: their results are dropped, and a later
 * complete() from a plugin thread touches no freed memory (the port's memory
 * lives until the last call referring to it is released). NULL is a no-op. */
void plugin_port_destroy(struct plugin_port *p);

/*
 * Start asynchronous calls. `cookie` is the caller's (returned in the
 * completion). 0, -ENOMEM, or -ENOSYS (no plugin of that kind; settings asks
 * the first SETTINGS plugin). The plugin may complete inside the callback
 * (synchronously) or later from any thread. Arguments are borrowed for the
 * call only.
 */
int plugin_authenticate(struct plugin_port *p, uint64_t cookie,
                        const struct ringmq_connect_info *info);
int plugin_auth_continue(struct plugin_port *p, uint64_t cookie,
                         const struct ringmq_auth_step *step);
int plugin_check(struct plugin_port *p, uint64_t cookie, const struct ringmq_check *check);
int plugin_settings(struct plugin_port *p, uint64_t cookie, const char *tenant);

/* A finished call: deep copies (all strings/bytes/kv arrays copied into
 * memory owned by the record; a byte string of length 0 has p == NULL, a
 * non-empty one is followed by a NUL that len does not count). A CHECK
 * answer holds only what the plugin's ABI lets it say: a verdict beyond
 * its version (or RINGMQ_GRANTED_PER_TOPIC without check_read) becomes
 * RINGMQ_CHECK_ERROR, and reason_code is 0 from an ABI 2 plugin. */
enum plugin_done_kind { PLUGIN_DONE_AUTH, PLUGIN_DONE_CHECK, PLUGIN_DONE_SETTINGS };
struct plugin_done {
    struct plugin_done *next;
    uint64_t cookie;
    enum plugin_done_kind kind;
    /* The host answered for a plugin that did not in time: for AUTH decision
     * = RINGMQ_AUTH_ERROR, for CHECK verdict = RINGMQ_CHECK_ERROR, for
     * SETTINGS found = false. (A plugin completing with a NULL result gets
     * the same answers with timed_out false.) */
    bool timed_out;
    union ringmq_result r; /* the deep copy */
};

/*
 * Completed and timed-out calls of this port, completed ones in completion
 * order then timed-out ones in deadline order, as a list the caller frees
 * with plugin_done_free (one by one). NULL when none. Only the port's shard
 * calls this. now_ms: the shard's clock (core/clock.h clock_now_ms(), the
 * clock the host uses for deadlines and gives plugins as now_ms).
 */
struct plugin_done *plugin_port_poll(struct plugin_port *p, uint64_t now_ms);
void plugin_done_free(struct plugin_done *d);

/* Earliest deadline of a pending call of this port that its plugin has not
 * answered yet, or 0 when none (so the shard can bound its wait; an answered
 * call's record arrives through `wake`). */
uint64_t plugin_port_next_deadline(const struct plugin_port *p);

/* Synchronous, any shard: every THROTTLE plugin must allow (true when there
 * are none); stops at the first refusal. */
bool plugin_throttle(struct plugin_host *h, const char *tenant, enum ringmq_resource r,
                     uint64_t current, uint64_t amount);

/* Whether the AUTH plugin answers RINGMQ_ACTION_RECEIVE checks (ABI 3
 * check_read): without it, RINGMQ_GRANTED_PER_TOPIC is a check error. */
bool plugin_host_has_check_read(const struct plugin_host *h);

/* Synchronous, any shard: the AUTH plugin's check_read. RINGMQ_GRANTED or
 * RINGMQ_DENIED (also for any other answer, and without check_read);
 * *cacheable as the plugin said. */
int plugin_check_read(struct plugin_host *h, const struct ringmq_check *check, bool *cacheable);

/* Every EVENTS plugin, in load order; `ev` is borrowed. A plugin built for
 * an older ABI is not sent events whose values it does not know (a drop
 * for RINGMQ_DROP_DENIED). */
void plugin_event(struct plugin_host *h, const struct ringmq_event *ev);

#endif
