/*
 * A fake ringmq host for the plugin tests: loads a plugin .so with dlopen
 * exactly as ringmqd does (entry symbol, ABI version, kinds), offers the
 * host services (log, now_ms, complete) and records what complete() got,
 * copying the borrowed strings.
 */
#ifndef RINGMQ_TESTS_FAKE_HOST_H
#define RINGMQ_TESTS_FAKE_HOST_H

#include <ringmq/plugin.h>

struct fake_result {
    int completions; /* how many times complete() was called */
    struct ringmq_call *call;
    enum ringmq_auth_decision decision;
    char tenant[128];  /* "" for NULL */
    char user_id[128]; /* "" for NULL */
    bool has_tenant, has_user_id;
    enum ringmq_verdict verdict;
    bool cacheable;
};

extern const struct ringmq_host fake_host;
extern struct fake_result fake_last;
extern int fake_log_lines; /* log() calls so far */

/* dlopen `path` and return its table, asserting the ABI version. */
const struct ringmq_plugin *fake_load(const char *path);

/* init with `n` key/value pairs: returns init's result, err filled. */
int fake_init(const struct ringmq_plugin *p, const struct ringmq_kv *kv, size_t n, void **state,
              char *err, size_t errlen);

/* A scratch directory for the test's files; fake_path joins a name. */
const char *fake_dir(void);
const char *fake_path(const char *name, char *buf, size_t len);
void fake_write_file(const char *path, const char *content);

/* Remove the scratch directory and everything in it (a suite's .fini). */
void fake_cleanup(void);

#endif
