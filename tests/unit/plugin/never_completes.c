/*
 * Test plugin: an auth and settings provider that keeps every call and
 * answers none of them, until the test calls never_completes_finish_all()
 * (found with dlsym), which completes them all from a thread of the plugin:
 * a late answer the host must ignore without touching freed memory. fini
 * completes what is left, also late.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);
int never_completes_finish_all(void);
int never_completes_abandoned(void);

struct kept {
    struct kept *next;
    struct ringmq_call *call;
};

/* Plugin-wide: the test reaches it without a state pointer. */
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kept *kept_head;
static const struct ringmq_host *kept_host;

static void keep(struct ringmq_call *call)
{
    struct kept *k = malloc(sizeof(*k));
    if (k == NULL)
        abort();
    k->call = call;
    pthread_mutex_lock(&kept_mu);
    k->next = kept_head;
    kept_head = k;
    pthread_mutex_unlock(&kept_mu);
}

/* Complete every kept call with an allowed answer whose strings are freed
 * right after. Returns how many. */
static int finish_kept(void)
{
    pthread_mutex_lock(&kept_mu);
    struct kept *k = kept_head;
    kept_head = NULL;
    pthread_mutex_unlock(&kept_mu);
    int count = 0;
    while (k != NULL) {
        struct kept *next = k->next;
        char *tenant = strdup("late");
        union ringmq_result r = {0};
        r.auth.decision = RINGMQ_AUTH_ALLOW;
        r.auth.tenant = tenant;
        kept_host->complete(k->call, &r);
        free(tenant);
        free(k);
        k = next;
        count++;
    }
    return count;
}

/* How many kept calls the host says it no longer waits for, asked from a
 * thread of the plugin (host->call_abandoned may be called from any). */
static void *count_abandoned(void *arg)
{
    int n = 0;
    pthread_mutex_lock(&kept_mu);
    for (struct kept *k = kept_head; k != NULL; k = k->next)
        n += kept_host->call_abandoned(k->call);
    pthread_mutex_unlock(&kept_mu);
    *(int *)arg = n;
    return NULL;
}

int never_completes_abandoned(void)
{
    pthread_t t;
    int count = -1;
    if (pthread_create(&t, NULL, count_abandoned, &count) != 0)
        return -1;
    pthread_join(t, NULL);
    return count;
}

static void *finisher(void *arg)
{
    *(int *)arg = finish_kept();
    return NULL;
}

int never_completes_finish_all(void)
{
    pthread_t t;
    int count = -1;
    if (pthread_create(&t, NULL, finisher, &count) != 0)
        return -1;
    pthread_join(t, NULL);
    return count;
}

static int nc_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    (void)config, (void)n, (void)err, (void)errlen;
    kept_host = host;
    *state = NULL;
    return 0;
}

static void nc_fini(void *state)
{
    (void)state;
    finish_kept();
}

static void nc_authenticate(void *state, struct ringmq_call *call,
                            const struct ringmq_connect_info *info)
{
    (void)state, (void)info;
    keep(call);
}

static void nc_auth_continue(void *state, struct ringmq_call *call,
                             const struct ringmq_auth_step *step)
{
    (void)state, (void)step;
    keep(call);
}

static void nc_check(void *state, struct ringmq_call *call, const struct ringmq_check *check)
{
    (void)state, (void)check;
    keep(call);
}

static void nc_settings(void *state, struct ringmq_call *call, const char *tenant)
{
    (void)state, (void)tenant;
    keep(call);
}

static const struct ringmq_plugin table = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "never_completes",
    .kinds = RINGMQ_KIND_AUTH | RINGMQ_KIND_SETTINGS,
    .init = nc_init,
    .fini = nc_fini,
    .authenticate = nc_authenticate,
    .auth_continue = nc_auth_continue,
    .check = nc_check,
    .settings = nc_settings,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
