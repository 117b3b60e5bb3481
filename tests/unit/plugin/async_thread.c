/*
 * Test plugin: an auth provider that answers from its own thread, as
 * auth_http will. Callbacks queue a job and return; the worker completes it,
 * then scribbles over and frees everything it passed to complete(), so a host
 * that kept a pointer reads freed memory (ASan).
 *
 * Config: probe, id.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "ringmq/plugin.h"

const struct ringmq_plugin *ringmq_plugin_entry(void);

struct job {
    struct job *next;
    struct ringmq_call *call;
    bool check;
    char *text; /* username or topic */
};

struct async_state {
    const struct ringmq_host *host;
    struct test_probe *probe;
    char id[32];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, **tail;
    bool stop;
};

static char *heap_printf(const char *fmt, const char *arg)
{
    size_t len = strlen(fmt) + strlen(arg) + 1;
    char *s = malloc(len);
    if (s != NULL)
        snprintf(s, len, fmt, arg);
    return s;
}

static void scrub_free(char *s)
{
    if (s != NULL)
        memset(s, 'X', strlen(s));
    free(s);
}

static void run_job(struct async_state *s, struct job *j)
{
    union ringmq_result r = {0};
    if (j->check) {
        r.check.verdict = RINGMQ_GRANTED;
        s->host->complete(j->call, &r);
        return;
    }
    char *tenant = heap_printf("async-%s", j->text);
    char *user = heap_printf("user-%s", j->text);
    char *key = heap_printf("%s", "plan");
    char *value = heap_printf("%s", "gold");
    struct ringmq_kv *attrs = malloc(sizeof(*attrs));
    if (attrs != NULL)
        *attrs = (struct ringmq_kv){key, value};
    r.auth = (struct ringmq_auth_result){
        .decision = RINGMQ_AUTH_ALLOW,
        .tenant = tenant,
        .user_id = user,
        .attributes = attrs,
        .n_attributes = attrs != NULL ? 1 : 0,
    };
    s->host->complete(j->call, &r);
    scrub_free(tenant);
    scrub_free(user);
    scrub_free(key);
    scrub_free(value);
    free(attrs);
}

static void *worker(void *arg)
{
    struct async_state *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->head == NULL && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->head == NULL)
            break;
        struct job *j = s->head;
        s->head = j->next;
        if (s->head == NULL)
            s->tail = &s->head;
        pthread_mutex_unlock(&s->mu);
        run_job(s, j);
        scrub_free(j->text);
        free(j);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void enqueue(struct async_state *s, struct ringmq_call *call, bool check,
                    struct ringmq_bytes text)
{
    struct job *j = calloc(1, sizeof(*j));
    char *copy = j != NULL ? malloc(text.len + 1) : NULL;
    if (copy == NULL) {
        free(j);
        s->host->complete(call, NULL);
        return;
    }
    if (text.len > 0)
        memcpy(copy, text.p, text.len);
    copy[text.len] = '\0';
    j->call = call;
    j->check = check;
    j->text = copy;
    pthread_mutex_lock(&s->mu);
    *s->tail = j;
    s->tail = &j->next;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int at_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    struct async_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *id = probe_config(config, n, "id");
    s->host = host;
    s->probe = probe_from_config(config, n);
    snprintf(s->id, sizeof(s->id), "%s", id != NULL ? id : "async");
    s->tail = &s->head;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        snprintf(err, errlen, "cannot start the worker thread");
        free(s);
        return -1;
    }
    probe_trace(s->probe, "init", s->id);
    *state = s;
    return 0;
}

static void at_fini(void *state)
{
    struct async_state *s = state;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    probe_trace(s->probe, "fini", s->id);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void at_authenticate(void *state, struct ringmq_call *call,
                            const struct ringmq_connect_info *info)
{
    enqueue(state, call, false, info->username);
}

static void at_auth_continue(void *state, struct ringmq_call *call,
                             const struct ringmq_auth_step *step)
{
    enqueue(state, call, false, step->auth_data);
}

static void at_check(void *state, struct ringmq_call *call, const struct ringmq_check *check)
{
    enqueue(state, call, true, check->topic);
}

static const struct ringmq_plugin table = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "async_thread",
    .kinds = RINGMQ_KIND_AUTH,
    .init = at_init,
    .fini = at_fini,
    .authenticate = at_authenticate,
    .auth_continue = at_auth_continue,
    .check = at_check,
};

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &table;
}
