/*
 * config/reload: what changed between the configuration in force and a
 * newly loaded one, and what of it a running broker may take (see
 * config_reconcile in config.h).
 */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/parse.h"

struct diff {
    void (*fn)(void *arg, const struct config_change *ch);
    void *arg;
    size_t live;
};

static void report(struct diff *df, const char *section, const char *key, const char *what,
                   bool live)
{
    struct config_change ch = {.key = key, .what = what, .live = live};
    snprintf(ch.section, sizeof(ch.section), "%s", section);
    df->live += live;
    df->fn(df->arg, &ch);
}

/* What a running broker reads afresh: the limits and [mqtt] values each
 * new connection or packet is checked against, the log's level and form,
 * and tenant settings. The rest is read once, at start. */
static bool scope_live(enum config_scope scope)
{
    return scope == CONFIG_SCOPE_LIMITS || scope == CONFIG_SCOPE_LOG ||
           scope == CONFIG_SCOPE_MQTT || scope == CONFIG_SCOPE_TENANT;
}

/* The keys of one struct (`scope`'s directives at base a and b). With
 * `keep`, a difference is undone in b. Returns whether any differed. */
static bool diff_keys(struct diff *df, enum config_scope scope, const char *section, const char *a,
                      char *b, bool keep)
{
    size_t n;
    const struct directive *d = config_directives(&n);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (d[i].scope != scope || !d[i].size ||
            !memcmp(a + d[i].offset, b + d[i].offset, d[i].size))
            continue;
        any = true;
        report(df, section ? section : config_scope_name(scope), d[i].key, "changed", !keep);
        if (keep)
            memcpy(b + d[i].offset, a + d[i].offset, d[i].size);
    }
    return any;
}

static const struct config_listener *listener_named(const struct config *c, const char *name)
{
    for (uint32_t i = 0; i < c->nlisteners; i++)
        if (!strcmp(c->listeners[i].name, name))
            return &c->listeners[i];
    return NULL;
}

/* Listeners are opened at start: every difference is reported and the
 * listeners (with their SNI names) stay as they are. */
static void diff_listeners(struct diff *df, const struct config *cur, struct config *next)
{
    char section[CONFIG_TENANT_NAME_MAX + 16];
    bool any = false;
    for (uint32_t i = 0; i < next->nlisteners; i++) {
        const struct config_listener *l = &next->listeners[i];
        const struct config_listener *was = listener_named(cur, l->name);
        snprintf(section, sizeof(section), "listener.%s", l->name);
        if (!was) {
            report(df, section, "*", "added", false);
            any = true;
        } else {
            any |=
                diff_keys(df, CONFIG_SCOPE_LISTENER, section, (const char *)was, (char *)l, true);
        }
    }
    for (uint32_t i = 0; i < cur->nlisteners; i++)
        if (!listener_named(next, cur->listeners[i].name)) {
            snprintf(section, sizeof(section), "listener.%s", cur->listeners[i].name);
            report(df, section, "*", "removed", false);
            any = true;
        }
    if (cur->nsni != next->nsni || memcmp(cur->sni, next->sni, sizeof(cur->sni))) {
        report(df, "listener", "sni.*", "changed", false);
        any = true;
    }
    if (!any && (cur->nlisteners != next->nlisteners ||
                 memcmp(cur->listeners, next->listeners, sizeof(cur->listeners))))
        report(df, "listener", "*", "changed", false); /* their order */
    memcpy(next->listeners, cur->listeners, sizeof(next->listeners));
    next->nlisteners = cur->nlisteners;
    memcpy(next->sni, cur->sni, sizeof(next->sni));
    next->nsni = cur->nsni;
}

/* Plugins are loaded at start (they re-read their own files on SIGHUP):
 * a changed [plugin.NAME] is reported and stays as it is. */
static void diff_plugins(struct diff *df, const struct config *cur, struct config *next)
{
    char section[CONFIG_TENANT_NAME_MAX + 16];
    uint32_t n = cur->nplugins > next->nplugins ? cur->nplugins : next->nplugins;
    for (uint32_t i = 0; i < n; i++) {
        const struct config_plugin *a = i < cur->nplugins ? &cur->plugins[i] : NULL;
        const struct config_plugin *b = i < next->nplugins ? &next->plugins[i] : NULL;
        if (a && b && !memcmp(a, b, sizeof(*a)))
            continue;
        snprintf(section, sizeof(section), "plugin.%s", b ? b->name : a ? a->name : "");
        report(df, section, "*", !a ? "added" : !b ? "removed" : "changed", false);
    }
    memcpy(next->plugins, cur->plugins, sizeof(next->plugins));
    next->nplugins = cur->nplugins;
}

static const struct config_tenant *tenant_named(const struct config *c, const char *name)
{
    for (uint32_t i = 0; i < c->ntenants; i++)
        if (!strcmp(c->tenants[i].name, name))
            return &c->tenants[i];
    return NULL;
}

/* Tenant settings are taken live, sections added and removed included. */
static void diff_tenants(struct diff *df, const struct config *cur, struct config *next)
{
    char section[CONFIG_TENANT_NAME_MAX + 16];
    for (uint32_t i = 0; i < next->ntenants; i++) {
        const struct config_tenant *t = &next->tenants[i];
        const struct config_tenant *was = tenant_named(cur, t->name);
        snprintf(section, sizeof(section), "tenant.%s", t->name);
        if (!was)
            report(df, section, "*", "added", true);
        else
            diff_keys(df, CONFIG_SCOPE_TENANT, section, (const char *)&was->set, (char *)&t->set,
                      false);
    }
    for (uint32_t i = 0; i < cur->ntenants; i++)
        if (!tenant_named(next, cur->tenants[i].name)) {
            snprintf(section, sizeof(section), "tenant.%s", cur->tenants[i].name);
            report(df, section, "*", "removed", true);
        }
}

size_t config_reconcile(const struct config *cur, struct config *next,
                        void (*fn)(void *arg, const struct config_change *ch), void *arg)
{
    struct diff df = {fn, arg, 0};
    static const enum config_scope whole[] = {
        CONFIG_SCOPE_SERVER,  CONFIG_SCOPE_LIMITS, CONFIG_SCOPE_LOG,    CONFIG_SCOPE_MQTT,
        CONFIG_SCOPE_METRICS, CONFIG_SCOPE_ADMIN,  CONFIG_SCOPE_PERSIST};
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
        diff_keys(&df, whole[i], NULL, (const char *)cur, (char *)next, !scope_live(whole[i]));
    diff_listeners(&df, cur, next);
    diff_plugins(&df, cur, next);
    diff_tenants(&df, cur, next);
    return df.live;
}
