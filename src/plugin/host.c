/*
 * host: loads the plugins listed in the configuration (dlopen), checks that
 * each speaks our ABI and has the callbacks its kinds require, initialises
 * them, and fans the synchronous calls (throttle, event, reload) out to them.
 * The asynchronous calls live in port.c.
 *
 * Owns the dl handles and each plugin's state until plugin_host_destroy.
 * Create and destroy run on the main thread, reload on the thread that
 * reloads (reconfigure lives in reconf.c); throttle and event run
 * on every shard at once and only read the host.
 */
#include "plugin/host_priv.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

/* ---- log service ----
 *
 * host->log has no context argument, yet its lines must name the plugin, and
 * plugins log from their own threads too (so a thread-local "current plugin"
 * would not do). Each loaded plugin therefore gets one of a fixed set of log
 * functions, each bound to a slot that holds the plugin's name. */

static pthread_mutex_t log_slots_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *log_slots[PLUGIN_HOST_MAX_PLUGINS]; /* name, or NULL: free */

__attribute__((format(printf, 3, 0))) static void plugin_vlog(int slot, enum ringmq_log_level level,
                                                              const char *fmt, va_list ap)
{
    /* A plugin may pass anything: clamp to the levels we know. */
    enum log_level lv = level <= RINGMQ_LOG_DEBUG ? (enum log_level)level : LOG_LEVEL_DEBUG;
    if (!log_enabled(lv) || fmt == NULL)
        return;
    char msg[896];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* The slot is written before init and cleared after fini: no lock. */
    const char *name = log_slots[slot] != NULL ? log_slots[slot] : "?";
    log_write(lv, "plugin %s: %s", name, msg);
}

#define LOG_SLOT_FN(i)                                                                             \
    __attribute__((format(printf, 2, 3))) static void log_slot_##i(enum ringmq_log_level level,    \
                                                                   const char *fmt, ...)           \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        plugin_vlog(i, level, fmt, ap);                                                            \
        va_end(ap);                                                                                \
    }
LOG_SLOT_FN(0)
LOG_SLOT_FN(1)
LOG_SLOT_FN(2)
LOG_SLOT_FN(3)
LOG_SLOT_FN(4)
LOG_SLOT_FN(5)
LOG_SLOT_FN(6)
LOG_SLOT_FN(7)
LOG_SLOT_FN(8)
LOG_SLOT_FN(9)
LOG_SLOT_FN(10)
LOG_SLOT_FN(11)
LOG_SLOT_FN(12)
LOG_SLOT_FN(13)
LOG_SLOT_FN(14)
LOG_SLOT_FN(15)
LOG_SLOT_FN(16)
LOG_SLOT_FN(17)
LOG_SLOT_FN(18)
LOG_SLOT_FN(19)
LOG_SLOT_FN(20)
LOG_SLOT_FN(21)
LOG_SLOT_FN(22)
LOG_SLOT_FN(23)
LOG_SLOT_FN(24)
LOG_SLOT_FN(25)
LOG_SLOT_FN(26)
LOG_SLOT_FN(27)
LOG_SLOT_FN(28)
LOG_SLOT_FN(29)
LOG_SLOT_FN(30)
LOG_SLOT_FN(31)

typedef void (*plugin_log_fn)(enum ringmq_log_level level, const char *fmt, ...);
static const plugin_log_fn log_slot_fns[PLUGIN_HOST_MAX_PLUGINS] = {
    log_slot_0,  log_slot_1,  log_slot_2,  log_slot_3,  log_slot_4,  log_slot_5,  log_slot_6,
    log_slot_7,  log_slot_8,  log_slot_9,  log_slot_10, log_slot_11, log_slot_12, log_slot_13,
    log_slot_14, log_slot_15, log_slot_16, log_slot_17, log_slot_18, log_slot_19, log_slot_20,
    log_slot_21, log_slot_22, log_slot_23, log_slot_24, log_slot_25, log_slot_26, log_slot_27,
    log_slot_28, log_slot_29, log_slot_30, log_slot_31,
};

static int log_slot_acquire(const char *name)
{
    int slot = -1;
    pthread_mutex_lock(&log_slots_mu);
    for (int i = 0; i < PLUGIN_HOST_MAX_PLUGINS; i++) {
        if (log_slots[i] == NULL) {
            log_slots[i] = name;
            slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&log_slots_mu);
    return slot;
}

static void log_slot_release(int slot)
{
    pthread_mutex_lock(&log_slots_mu);
    log_slots[slot] = NULL;
    pthread_mutex_unlock(&log_slots_mu);
}

/* host->now_ms: the shards' clock, so a plugin's times and the host's
 * deadlines compare. */
static uint64_t host_now_ms(void)
{
    return clock_now_ms();
}

/* ---- loading ---- */

static void loaded_fini(struct plugin_loaded *pl)
{
    if (pl->tab != NULL)
        pl->tab->fini(pl->state);
    if (pl->dl != NULL)
        dlclose(pl->dl);
    if (pl->log_slot >= 0)
        log_slot_release(pl->log_slot);
    free(pl->config);
    free(pl->name);
    free(pl->path);
}

/* The first callback a kind requires that the table lacks, or NULL. */
static const char *missing_callback(const struct ringmq_plugin *t)
{
    if (t->init == NULL)
        return "init";
    if (t->fini == NULL)
        return "fini";
    if (t->kinds & RINGMQ_KIND_AUTH) {
        if (t->authenticate == NULL)
            return "authenticate";
        if (t->auth_continue == NULL)
            return "auth_continue";
        if (t->check == NULL)
            return "check";
    }
    if ((t->kinds & RINGMQ_KIND_THROTTLE) && t->throttle == NULL)
        return "throttle";
    if ((t->kinds & RINGMQ_KIND_SETTINGS) && t->settings == NULL)
        return "settings";
    if ((t->kinds & RINGMQ_KIND_EVENTS) && t->event == NULL)
        return "event";
    /* ABI 5: the two steps of a live reconfigure come together. */
    if (t->abi_version >= 5 && (t->reconfigure == NULL) != (t->reconfigure_commit == NULL))
        return t->reconfigure == NULL ? "reconfigure" : "reconfigure_commit";
    return NULL;
}

static const char *kind_needing(const char *callback)
{
    if (strcmp(callback, "authenticate") == 0 || strcmp(callback, "auth_continue") == 0 ||
        strcmp(callback, "check") == 0)
        return "auth";
    if (strcmp(callback, "throttle") == 0)
        return "throttle";
    if (strcmp(callback, "settings") == 0)
        return "settings";
    if (strcmp(callback, "event") == 0)
        return "events";
    return NULL;
}

#ifndef RINGMQ_PLUGIN_DIR
#define RINGMQ_PLUGIN_DIR "/usr/local/lib/ringmq/plugins"
#endif

/* A path with a slash is used as it is (relative to the working
 * directory); a bare file name is one of the installed plugins, in
 * $RINGMQ_PLUGIN_DIR when set (a staged install), else the directory
 * `meson install` puts them in. False when it does not fit. */
static bool resolve_path(const char *path, char *out, size_t outlen)
{
    if (strchr(path, '/'))
        return (size_t)snprintf(out, outlen, "%s", path) < outlen;
    const char *dir = getenv("RINGMQ_PLUGIN_DIR");
    if (!dir || !dir[0])
        dir = RINGMQ_PLUGIN_DIR;
    return (size_t)snprintf(out, outlen, "%s/%s", dir, path) < outlen;
}

/* Open the plugin's library and ask its entry point for the table. Returns
 * the table, or NULL with err set; pl->name, pl->path and pl->dl hold what
 * loaded_fini must undo. */
static const struct ringmq_plugin *load_table(const struct plugin_spec *s, struct plugin_loaded *pl,
                                              char *err, size_t errlen)
{
    const char *name = s->name != NULL ? s->name : "?";
    const char *path = s->path != NULL ? s->path : "";
    pl->name = strdup(name);
    pl->path = strdup(path);
    if (pl->name == NULL || pl->path == NULL) {
        snprintf(err, errlen, "plugin %s (%s): out of memory", name, path);
        return NULL;
    }
    if (s->path == NULL || s->path[0] == '\0') {
        snprintf(err, errlen, "plugin %s: no path", name);
        return NULL;
    }
    char where[PATH_MAX];
    if (!resolve_path(path, where, sizeof(where))) {
        snprintf(err, errlen, "plugin %s (%s): path too long", name, path);
        return NULL;
    }
    dlerror();
    pl->dl = dlopen(where, RTLD_NOW | RTLD_LOCAL);
    if (pl->dl == NULL) {
        const char *why = dlerror();
        snprintf(err, errlen, "plugin %s (%s): cannot load: %s", name, path,
                 why != NULL ? why : "unknown error");
        return NULL;
    }
    dlerror();
    void *sym = dlsym(pl->dl, RINGMQ_PLUGIN_ENTRY);
    if (sym == NULL) {
        const char *why = dlerror();
        snprintf(err, errlen, "plugin %s (%s): no symbol %s: %s", name, path, RINGMQ_PLUGIN_ENTRY,
                 why != NULL ? why : "symbol is NULL");
        return NULL;
    }
    ringmq_plugin_entry_fn entry;
    /* POSIX dlsym returns functions as void *; the copy avoids the ISO C
     * object-to-function pointer cast warning. */
    memcpy(&entry, &sym, sizeof(entry));
    const struct ringmq_plugin *t = entry();
    if (t == NULL)
        snprintf(err, errlen, "plugin %s (%s): %s returned no table", name, path,
                 RINGMQ_PLUGIN_ENTRY);
    return t;
}

/* Whether the host can take table t of plugin pl: an ABI it speaks, the
 * callbacks its kinds require, at most one auth provider. 0, or -1 with err
 * set. */
static int table_check(const struct plugin_host *h, const struct plugin_loaded *pl,
                       const struct ringmq_plugin *t, char *err, size_t errlen)
{
    /* Checked before anything else in the table is read: another ABI may
     * lay the table out differently. Older ABIs we still speak have a
     * prefix of today's table (see plugin.h, Versioning). */
    if (t->abi_version < RINGMQ_PLUGIN_ABI_OLDEST || t->abi_version > RINGMQ_PLUGIN_ABI_VERSION) {
        snprintf(err, errlen, "plugin %s (%s): built for ABI %u, ringmqd speaks %u to %u", pl->name,
                 pl->path, (unsigned)t->abi_version, (unsigned)RINGMQ_PLUGIN_ABI_OLDEST,
                 (unsigned)RINGMQ_PLUGIN_ABI_VERSION);
        return -1;
    }
    const char *missing = missing_callback(t);
    if (missing != NULL) {
        const char *kind = kind_needing(missing);
        if (kind != NULL)
            snprintf(err, errlen, "plugin %s (%s): kind %s requires callback %s, missing", pl->name,
                     pl->path, kind, missing);
        else
            snprintf(err, errlen, "plugin %s (%s): required callback %s missing", pl->name,
                     pl->path, missing);
        return -1;
    }
    if ((t->kinds & RINGMQ_KIND_AUTH) && h->auth != NULL) {
        snprintf(err, errlen,
                 "plugin %s (%s): a second auth plugin (%s is already the auth provider)", pl->name,
                 pl->path, h->auth->name);
        return -1;
    }
    return 0;
}

/* Give the plugin its log slot and service table and run its init. On
 * success pl->tab and pl->state are set (from then on loaded_fini calls its
 * fini); on failure -1 with err set, and pl->tab stays NULL, so its fini is
 * not called for an init that failed. */
static int table_init(const struct plugin_spec *s, struct plugin_loaded *pl,
                      const struct ringmq_plugin *t, char *err, size_t errlen)
{
    pl->log_slot = log_slot_acquire(pl->name);
    if (pl->log_slot < 0) {
        snprintf(err, errlen, "plugin %s (%s): too many plugins loaded (at most %d)", pl->name,
                 pl->path, PLUGIN_HOST_MAX_PLUGINS);
        return -1;
    }
    pl->host = (struct ringmq_host){
        .abi_version = t->abi_version,
        .log = log_slot_fns[pl->log_slot],
        .now_ms = host_now_ms,
        .complete = plugin_call_complete,
        .call_abandoned = plugin_call_abandoned,
    };
    size_t n = s->config != NULL ? s->n : 0;
    bool ok = true;
    pl->config = plugin_kv_copy(s->config, n, &ok);
    if (!ok) {
        snprintf(err, errlen, "plugin %s (%s): out of memory", pl->name, pl->path);
        return -1;
    }
    pl->nconfig = n;
    char perr[512] = "";
    void *state = NULL;
    if (t->init(&pl->host, s->config, n, &state, perr, sizeof(perr)) != 0) {
        perr[sizeof(perr) - 1] = '\0';
        snprintf(err, errlen, "plugin %s (%s): init failed: %s", pl->name, pl->path,
                 perr[0] != '\0' ? perr : "(no message)");
        return -1;
    }
    pl->tab = t;
    pl->state = state;
    if (plugin_speaks(pl, 3))
        pl->check_read = t->check_read;
    if (plugin_speaks(pl, 5)) {
        pl->reconfigure = t->reconfigure;
        pl->reconfigure_commit = t->reconfigure_commit;
    }
    return 0;
}

/* The roles a live plugin takes in the host: auth provider, settings
 * provider (the first one wins), throttle and event fan-out. */
static void host_register(struct plugin_host *h, struct plugin_loaded *pl)
{
    uint32_t kinds = pl->tab->kinds;
    if (kinds & RINGMQ_KIND_AUTH)
        h->auth = pl;
    if ((kinds & RINGMQ_KIND_SETTINGS) && h->settings == NULL)
        h->settings = pl;
    if (kinds & RINGMQ_KIND_THROTTLE)
        h->has_throttle = true;
    if (kinds & RINGMQ_KIND_EVENTS)
        h->has_events = true;
}

/*
 * Load, check and init one plugin into *pl (zeroed by the caller, log_slot
 * -1). On failure: -1, err set, and *pl holds what must be undone by
 * loaded_fini (the init is undone by not setting pl->tab before it succeeded).
 */
static int load_one(struct plugin_host *h, const struct plugin_spec *s, struct plugin_loaded *pl,
                    char *err, size_t errlen)
{
    const struct ringmq_plugin *t = load_table(s, pl, err, errlen);
    if (t == NULL || table_check(h, pl, t, err, errlen) != 0 ||
        table_init(s, pl, t, err, errlen) != 0)
        return -1;
    host_register(h, pl);
    return 0;
}

int plugin_host_create(const struct plugin_spec *specs, size_t n, uint32_t timeout_ms,
                       struct plugin_host **out, char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    *out = NULL;
    struct plugin_host *h = calloc(1, sizeof(*h));
    if (h == NULL || (n > 0 && (h->v = calloc(n, sizeof(*h->v))) == NULL)) {
        snprintf(err, errlen, "plugins: out of memory");
        free(h);
        return -1;
    }
    h->timeout_ms = timeout_ms;
    for (size_t i = 0; i < n; i++) {
        h->v[i].log_slot = -1;
        if (load_one(h, &specs[i], &h->v[i], err, errlen) != 0) {
            /* This one's partial load, then everything before it, newest
             * first. */
            loaded_fini(&h->v[i]);
            h->n = i;
            plugin_host_destroy(h);
            return -1;
        }
        h->n = i + 1;
    }
    *out = h;
    return 0;
}

void plugin_host_destroy(struct plugin_host *h)
{
    if (h == NULL)
        return;
    plugin_host_reconfigure_finish(h, false); /* a reload cut short: nothing kept */
    for (size_t i = h->n; i-- > 0;)
        loaded_fini(&h->v[i]);
    free(h->v);
    free(h);
}

bool plugin_host_has_auth(const struct plugin_host *h)
{
    return h->auth != NULL;
}

bool plugin_host_has_throttle(const struct plugin_host *h)
{
    return h->has_throttle;
}

bool plugin_host_has_events(const struct plugin_host *h)
{
    return h->has_events;
}

void plugin_host_reload(struct plugin_host *h)
{
    for (size_t i = 0; i < h->n; i++) {
        if (h->v[i].tab->reload != NULL)
            h->v[i].tab->reload(h->v[i].state);
    }
    __atomic_add_fetch(&h->generation, 1, __ATOMIC_RELEASE);
}

uint32_t plugin_host_generation(const struct plugin_host *h)
{
    return __atomic_load_n(&h->generation, __ATOMIC_ACQUIRE);
}

bool plugin_throttle(struct plugin_host *h, const char *tenant, enum ringmq_resource r,
                     uint64_t current, uint64_t amount)
{
    if (!h->has_throttle)
        return true;
    for (size_t i = 0; i < h->n; i++) {
        const struct plugin_loaded *pl = &h->v[i];
        if ((pl->tab->kinds & RINGMQ_KIND_THROTTLE) &&
            !pl->tab->throttle(pl->state, tenant, r, current, amount))
            return false;
    }
    return true;
}

bool plugin_host_has_check_read(const struct plugin_host *h)
{
    return h->auth != NULL && h->auth->check_read != NULL;
}

int plugin_check_read(struct plugin_host *h, const struct ringmq_check *check, bool *cacheable)
{
    *cacheable = false;
    const struct plugin_loaded *pl = h->auth;
    if (pl == NULL || pl->check_read == NULL)
        return RINGMQ_DENIED;
    struct ringmq_check_result out;
    memset(&out, 0, sizeof(out));
    pl->check_read(pl->state, check, &out);
    *cacheable = out.cacheable;
    /* Fail closed: only an explicit grant lets a message through. */
    return out.verdict == RINGMQ_GRANTED ? RINGMQ_GRANTED : RINGMQ_DENIED;
}

/* Whether an event means something to a plugin built for an older ABI: a
 * value added later (a drop reason) is not in its enum, so a plugin that
 * indexes a table with it would read past the end. */
static bool event_known_to(const struct plugin_loaded *pl, const struct ringmq_event *ev)
{
    if (ev->type == RINGMQ_EV_MESSAGE_DROPPED && ev->reason >= RINGMQ_DROP_DENIED)
        return plugin_speaks(pl, 3);
    return true;
}

void plugin_event(struct plugin_host *h, const struct ringmq_event *ev)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct plugin_loaded *pl = &h->v[i];
        if ((pl->tab->kinds & RINGMQ_KIND_EVENTS) && event_known_to(pl, ev))
            pl->tab->event(pl->state, ev);
    }
}
