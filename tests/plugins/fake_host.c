/*
 * Fake plugin host for tests/plugins (see fake_host.h). Single-threaded.
 */
#include "fake_host.h"

#include <criterion/criterion.h>

#include <dlfcn.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fake_result fake_last;
int fake_log_lines;

static void fake_log(enum ringmq_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[plugin %d] ", (int)level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fake_log_lines++;
}

static uint64_t fake_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void copy_str(char *dst, size_t cap, bool *has, const char *s)
{
    *has = s != NULL;
    snprintf(dst, cap, "%s", s ? s : "");
}

/* Records both union members: the test knows which call it made. The
 * check member overlaps the auth one, so only read what matches the call. */
static void fake_complete(struct ringmq_call *call, const union ringmq_result *res)
{
    fake_last.completions++;
    fake_last.call = call;
    fake_last.decision = res->auth.decision;
    copy_str(fake_last.tenant, sizeof(fake_last.tenant), &fake_last.has_tenant, res->auth.tenant);
    copy_str(fake_last.user_id, sizeof(fake_last.user_id), &fake_last.has_user_id,
             res->auth.user_id);
    fake_last.verdict = res->check.verdict;
    fake_last.cacheable = res->check.cacheable;
}

const struct ringmq_host fake_host = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .log = fake_log,
    .now_ms = fake_now_ms,
    .complete = fake_complete,
};

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
