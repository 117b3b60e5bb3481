/*
 * config/reload: what changed between the configuration in force and a
 * newly loaded one, and what of it a running broker may take (see
 * config_reconcile in config.h), each difference with its old and new
 * value as text.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/parse.h"

struct diff {
    void (*fn)(void *arg, const struct config_change *ch);
    void *arg;
    size_t live;
};

static void report_values(struct diff *df, const char *section, const char *key, const char *what,
                          bool live, const char *from, const char *to)
{
    struct config_change ch = {.key = key, .what = what, .live = live, .from = from, .to = to};
    snprintf(ch.section, sizeof(ch.section), "%s", section);
    df->live += live;
    df->fn(df->arg, &ch);
}

static void report(struct diff *df, const char *section, const char *key, const char *what,
                   bool live)
{
    report_values(df, section, key, what, live, NULL, NULL);
}

static const char *level_name(unsigned v)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    return v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

/* A directive's value at `field` as the file would write it, into out;
 * false for the kinds of value that have no short text (lists of
 * addresses, CPU sets, enums of their own): the change is then reported
 * without its values. */
static bool value_text(const struct directive *d, const char *field, char *out, size_t len)
{
    uint32_t u32;
    uint64_t u64;
    uint16_t u16;
    bool b;
    if (d->parse == parse_u32 || d->parse == parse_pow2_u32 || d->parse == parse_shards) {
        memcpy(&u32, field, sizeof(u32));
        snprintf(out, len, "%" PRIu32, u32);
    } else if (d->parse == parse_u64) {
        memcpy(&u64, field, sizeof(u64));
        snprintf(out, len, "%" PRIu64, u64);
    } else if (d->parse == parse_port) {
        memcpy(&u16, field, sizeof(u16));
        snprintf(out, len, "%u", u16);
    } else if (d->parse == parse_bool) {
        memcpy(&b, field, sizeof(b));
        snprintf(out, len, "%s", b ? "true" : "false");
    } else if (d->parse == parse_string || d->parse == parse_address ||
               d->parse == parse_http_path) {
        snprintf(out, len, "%.*s", (int)strnlen(field, d->size), field);
    } else if (d->parse == parse_transport) {
        snprintf(out, len, "%s", config_transport_name((enum config_transport)(uint8_t)*field));
    } else if (d->parse == parse_log_level) {
        enum log_level lv;
        memcpy(&lv, field, sizeof(lv));
        snprintf(out, len, "%s", level_name((unsigned)lv));
    } else {
        return false;
    }
    return true;
}

/* One key that differs, with its values. */
static void report_key(struct diff *df, const char *section, const struct directive *d,
                       const char *a, const char *b, bool live)
{
    char from[CONFIG_VALUE_TEXT_MAX], to[CONFIG_VALUE_TEXT_MAX];
    bool text = value_text(d, a, from, sizeof(from)) && value_text(d, b, to, sizeof(to));
    report_values(df, section, d->key, "changed", live, text ? from : NULL, text ? to : NULL);
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
        report_key(df, section ? section : config_scope_name(scope), &d[i], a + d[i].offset,
                   b + d[i].offset, !keep);
        if (keep)
            memcpy(b + d[i].offset, a + d[i].offset, d[i].size);
    }
    return any;
}

static int listener_index(const struct config *c, const char *name)
{
    for (uint32_t i = 0; i < c->nlisteners; i++)
        if (!strcmp(c->listeners[i].name, name))
            return (int)i;
    return -1;
}

/* The sni.* entries of listener ai of a and bi of b are the same, in order. */
static bool sni_same(const struct config *a, uint32_t ai, const struct config *b, uint32_t bi)
{
    uint32_t i = 0, j = 0;
    for (;;) {
        while (i < a->nsni && a->sni[i].listener != ai)
            i++;
        while (j < b->nsni && b->sni[j].listener != bi)
            j++;
        if (i == a->nsni || j == b->nsni)
            return i == a->nsni && j == b->nsni;
        const struct config_sni *x = &a->sni[i++], *y = &b->sni[j++];
        if (strcmp(x->host, y->host) || strcmp(x->cert, y->cert) || strcmp(x->key, y->key) ||
            strcmp(x->tenant, y->tenant))
            return false;
    }
}

bool config_listener_same(const struct config *a, uint32_t ai, const struct config *b, uint32_t bi)
{
    size_t n;
    const struct directive *d = config_directives(&n);
    const char *x = (const char *)&a->listeners[ai], *y = (const char *)&b->listeners[bi];
    if (strcmp(a->listeners[ai].name, b->listeners[bi].name))
        return false;
    for (size_t i = 0; i < n; i++)
        if (d[i].scope == CONFIG_SCOPE_LISTENER && d[i].size &&
            memcmp(x + d[i].offset, y + d[i].offset, d[i].size))
            return false;
    return sni_same(a, ai, b, bi);
}

/* Listeners change live: one added starts accepting, one removed stops
 * (its connections stay), one changed is replaced (broker/listeners.c). */
static void diff_listeners(struct diff *df, const struct config *cur, struct config *next)
{
    char section[CONFIG_TENANT_NAME_MAX + 16];
    for (uint32_t i = 0; i < next->nlisteners; i++) {
        const struct config_listener *l = &next->listeners[i];
        int was = listener_index(cur, l->name);
        snprintf(section, sizeof(section), "listener.%s", l->name);
        if (was < 0) {
            report(df, section, "*", "added", true);
            continue;
        }
        diff_keys(df, CONFIG_SCOPE_LISTENER, section, (const char *)&cur->listeners[was], (char *)l,
                  false);
        if (!sni_same(cur, (uint32_t)was, next, i))
            report(df, section, "sni.*", "changed", true);
    }
    for (uint32_t i = 0; i < cur->nlisteners; i++)
        if (listener_index(next, cur->listeners[i].name) < 0) {
            snprintf(section, sizeof(section), "listener.%s", cur->listeners[i].name);
            report(df, section, "*", "removed", true);
        }
}

/* The value of `key` in plugin p, or NULL. */
static const char *plugin_value(const struct config_plugin *p, const char *key)
{
    for (uint32_t k = 0; k < p->nkv; k++)
        if (!strcmp(p->kv[k].key, key))
            return p->kv[k].value;
    return NULL;
}

/* Each key of a plugin section that b adds, changes or drops against a,
 * without values (a plugin's keys may be secrets). Returns how many. */
static size_t diff_plugin_keys(struct diff *df, const char *section, const struct config_plugin *a,
                               const struct config_plugin *b, bool live)
{
    size_t n = 0;
    for (uint32_t k = 0; k < b->nkv; k++) {
        const char *was = plugin_value(a, b->kv[k].key);
        if (was && !strcmp(was, b->kv[k].value))
            continue;
        report(df, section, b->kv[k].key, was ? "changed" : "added", live);
        n++;
    }
    for (uint32_t k = 0; k < a->nkv; k++)
        if (!plugin_value(b, a->kv[k].key)) {
            report(df, section, a->kv[k].key, "removed", live);
            n++;
        }
    return n;
}

/* Plugins are loaded at start: a plugin added or removed, or one whose
 * name or path changed, is reported as a whole section and stays as it
 * is. Within a section kept, changed keys are live when the plugin takes
 * them (plugin_live: its ABI 5 reconfigure, put in force by the caller
 * from next); otherwise they are reported too and the section stays. */
static void diff_plugins(struct diff *df, const struct config *cur, struct config *next,
                         bool (*plugin_live)(void *arg, const char *name), void *arg)
{
    char section[CONFIG_TENANT_NAME_MAX + 16];
    uint32_t n = cur->nplugins > next->nplugins ? cur->nplugins : next->nplugins;
    for (uint32_t i = 0; i < n; i++) {
        const struct config_plugin *a = i < cur->nplugins ? &cur->plugins[i] : NULL;
        struct config_plugin *b = i < next->nplugins ? &next->plugins[i] : NULL;
        if (a && b && !memcmp(a, b, sizeof(*a)))
            continue;
        snprintf(section, sizeof(section), "plugin.%s", b ? b->name : a ? a->name : "");
        if (a && b && !strcmp(a->name, b->name) && !strcmp(a->path, b->path)) {
            bool live = plugin_live && plugin_live(arg, a->name);
            if (diff_plugin_keys(df, section, a, b, live) && live)
                continue; /* next keeps the new keys */
        } else {
            report(df, section, "*", !a ? "added" : !b ? "removed" : "changed", false);
        }
        if (a && b)
            *b = *a;
    }
    if (next->nplugins > cur->nplugins)
        memset(&next->plugins[cur->nplugins], 0,
               (next->nplugins - cur->nplugins) * sizeof(next->plugins[0]));
    for (uint32_t i = next->nplugins; i < cur->nplugins; i++)
        next->plugins[i] = cur->plugins[i];
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
                        void (*fn)(void *arg, const struct config_change *ch),
                        bool (*plugin_live)(void *arg, const char *name), void *arg)
{
    struct diff df = {fn, arg, 0};
    static const enum config_scope whole[] = {
        CONFIG_SCOPE_SERVER,  CONFIG_SCOPE_LIMITS, CONFIG_SCOPE_LOG,    CONFIG_SCOPE_MQTT,
        CONFIG_SCOPE_METRICS, CONFIG_SCOPE_ADMIN,  CONFIG_SCOPE_PERSIST};
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
        diff_keys(&df, whole[i], NULL, (const char *)cur, (char *)next, !scope_live(whole[i]));
    diff_listeners(&df, cur, next);
    diff_plugins(&df, cur, next, plugin_live, arg);
    diff_tenants(&df, cur, next);
    return df.live;
}
