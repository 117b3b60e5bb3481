/*
 * Fake plugin host for tests/plugins (see fake_host.h). complete() and log()
 * run on any thread; everything they record is guarded by `mu`. The tests'
 * assertions run on the test's own thread only (Criterion's asserts are not
 * meant for other threads), so nothing here asserts inside complete().
 */
#include "fake_host.h"

#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fake_result fake_last;
int fake_log_lines;
char fake_last_log[512];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER; /* a completion, or one held */

/* Call handles are addresses of these slots, so complete() can tell a
 * tracked call from any other pointer a test passed. */
static struct slot {
    struct fake_call_rec rec;
    bool hold;
    pthread_t holder;
    atomic_bool abandoned; /* read by plugin threads outside `mu` */
} slots[FAKE_MAX_CALLS];
static int total; /* completions recorded, tracked or not */
static int held;  /* complete() calls waiting at the gate now */
static bool gate_open;
/* Added to the monotonic clock: plugin threads read it outside `mu`. */
static atomic_uint_fast64_t clock_offset_ms;

static void fake_log(enum ringmq_log_level level, const char *fmt, ...)
{
    char line[sizeof(fake_last_log)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "[plugin %d] %s\n", (int)level, line);
    pthread_mutex_lock(&mu);
    fake_log_lines++;
    memcpy(fake_last_log, line, sizeof(line));
    pthread_mutex_unlock(&mu);
}

static uint64_t fake_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
           atomic_load(&clock_offset_ms);
}

void fake_clock_advance_ms(uint64_t ms)
{
    atomic_fetch_add(&clock_offset_ms, ms);
}

static void copy_str(char *dst, size_t cap, bool *has, const char *s)
{
    *has = s != NULL;
    snprintf(dst, cap, "%s", s ? s : "");
}

/* Records both union members: the test knows which call it made. The
 * check member overlaps the auth one, so only read what matches the call. */
static struct slot *slot_of(const struct ringmq_call *call)
{
    uintptr_t a = (uintptr_t)call, base = (uintptr_t)slots;
    if (a < base || a >= base + sizeof(slots) || (a - base) % sizeof(slots[0]) != 0)
        return NULL;
    return &slots[(a - base) / sizeof(slots[0])];
}

static void fake_complete(struct ringmq_call *call, const union ringmq_result *res)
{
    struct slot *s = slot_of(call);
    pthread_mutex_lock(&mu);
    if (s && s->hold && !pthread_equal(s->holder, pthread_self())) {
        /* Before recording: while held, the call reads as not answered, and
         * the strings in `res` are copied only once the gate opens (a plugin
         * that freed them meanwhile shows up under ASan). */
        held++;
        pthread_cond_broadcast(&changed);
        while (!gate_open)
            pthread_cond_wait(&changed, &mu);
        held--;
    }
    total++;
    fake_last.completions++;
    fake_last.call = call;
    fake_last.decision = res->auth.decision;
    copy_str(fake_last.tenant, sizeof(fake_last.tenant), &fake_last.has_tenant, res->auth.tenant);
    copy_str(fake_last.user_id, sizeof(fake_last.user_id), &fake_last.has_user_id,
             res->auth.user_id);
    copy_str(fake_last.reason, sizeof(fake_last.reason), &fake_last.has_reason, res->auth.reason);
    fake_last.verdict = res->check.verdict;
    fake_last.cacheable = res->check.cacheable;
    if (s) {
        struct fake_call_rec *r = &s->rec;
        r->completions++;
        r->thread = pthread_self();
        r->decision = res->auth.decision;
        copy_str(r->tenant, sizeof(r->tenant), &r->has_tenant, res->auth.tenant);
        copy_str(r->user_id, sizeof(r->user_id), &r->has_user_id, res->auth.user_id);
        copy_str(r->reason, sizeof(r->reason), &r->has_reason, res->auth.reason);
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mu);
}

static bool fake_call_abandoned(const struct ringmq_call *call)
{
    struct slot *s = slot_of(call);
    return s && atomic_load(&s->abandoned);
}

const struct ringmq_host fake_host = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .log = fake_log,
    .now_ms = fake_now_ms,
    .complete = fake_complete,
    .call_abandoned = fake_call_abandoned,
};

void fake_abandon(int i)
{
    struct slot *s = slot_of(fake_call(i));
    cr_assert_not_null(s);
    atomic_store(&s->abandoned, true);
}

/* ---- tracked calls ---- */

static struct timespec wait_deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30; /* generous: PBKDF2 under ASan on a loaded CI machine */
    return ts;
}

void fake_reset(void)
{
    pthread_mutex_lock(&mu);
    memset(slots, 0, sizeof(slots));
    memset(&fake_last, 0, sizeof(fake_last));
    fake_last_log[0] = 0;
    total = 0;
    held = 0;
    gate_open = false;
    pthread_mutex_unlock(&mu);
    atomic_store(&clock_offset_ms, 0);
}

struct ringmq_call *fake_call(int i)
{
    cr_assert(i >= 0 && i < FAKE_MAX_CALLS, "call %d out of range", i);
    return (struct ringmq_call *)&slots[i];
}

struct fake_call_rec fake_call_get(int i)
{
    cr_assert(i >= 0 && i < FAKE_MAX_CALLS, "call %d out of range", i);
    pthread_mutex_lock(&mu);
    struct fake_call_rec r = slots[i].rec;
    pthread_mutex_unlock(&mu);
    return r;
}

struct fake_call_rec fake_wait_call(int i)
{
    cr_assert(i >= 0 && i < FAKE_MAX_CALLS, "call %d out of range", i);
    struct timespec ts = wait_deadline();
    int rc = 0;
    pthread_mutex_lock(&mu);
    while (slots[i].rec.completions == 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&changed, &mu, &ts);
    struct fake_call_rec r = slots[i].rec;
    pthread_mutex_unlock(&mu);
    cr_assert_gt(r.completions, 0, "call %d never completed", i);
    return r;
}

int fake_completions(void)
{
    pthread_mutex_lock(&mu);
    int n = total;
    pthread_mutex_unlock(&mu);
    return n;
}

void fake_wait_completions(int n)
{
    struct timespec ts = wait_deadline();
    int rc = 0;
    pthread_mutex_lock(&mu);
    while (total < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&changed, &mu, &ts);
    int got = total;
    pthread_mutex_unlock(&mu);
    cr_assert_geq(got, n, "%d completions, expected %d", got, n);
}

void fake_hold(int i)
{
    cr_assert(i >= 0 && i < FAKE_MAX_CALLS, "call %d out of range", i);
    pthread_mutex_lock(&mu);
    slots[i].hold = true;
    slots[i].holder = pthread_self();
    pthread_mutex_unlock(&mu);
}

void fake_wait_held(int n)
{
    struct timespec ts = wait_deadline();
    int rc = 0;
    pthread_mutex_lock(&mu);
    while (held < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&changed, &mu, &ts);
    int got = held;
    pthread_mutex_unlock(&mu);
    cr_assert_geq(got, n, "%d completions held, expected %d", got, n);
}

void fake_open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = true;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mu);
}

/* Defined by LeakSanitizer when the test is built with it, else NULL. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

void fake_assert_no_leaks(void)
{
    if (__lsan_do_recoverable_leak_check)
        cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (above)");
}

const struct ringmq_plugin *fake_load(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "dlopen %s: %s", path, dlerror());
    ringmq_plugin_entry_fn entry = (ringmq_plugin_entry_fn)dlsym(h, RINGMQ_PLUGIN_ENTRY);
    cr_assert_not_null(entry, "%s: no %s", path, RINGMQ_PLUGIN_ENTRY);
    const struct ringmq_plugin *p = entry();
    cr_assert_not_null(p);
    cr_assert_eq(p->abi_version, RINGMQ_PLUGIN_ABI_VERSION);
    cr_assert_not_null(p->name);
    cr_assert_not_null(p->init);
    cr_assert_not_null(p->fini);
    if (p->kinds & RINGMQ_KIND_AUTH) {
        cr_assert_not_null(p->authenticate);
        cr_assert_not_null(p->auth_continue);
        cr_assert_not_null(p->check);
    }
    if (p->kinds & RINGMQ_KIND_THROTTLE)
        cr_assert_not_null(p->throttle);
    if (p->kinds & RINGMQ_KIND_EVENTS)
        cr_assert_not_null(p->event);
    /* Deliberately never dlclose'd: the test process ends soon. */
    return p;
}

int fake_init(const struct ringmq_plugin *p, const struct ringmq_kv *kv, size_t n, void **state,
              char *err, size_t errlen)
{
    err[0] = '\0';
    *state = NULL;
    return p->init(&fake_host, kv, n, state, err, errlen);
}

static char dir[64];

const char *fake_dir(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/ringmq-plugin-test-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    return dir;
}

const char *fake_path(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", fake_dir(), name);
    return buf;
}

void fake_write_file(const char *path, const char *content)
{
    /* Written beside and renamed, as ringmq-passwd does, so a reload test
     * reads either version whole. */
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f, "%s", tmp);
    cr_assert_eq(fputs(content, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, path), 0);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void fake_cleanup(void)
{
    if (dir[0])
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}
