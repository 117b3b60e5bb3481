/*
 * Unit tests for src/core/log.c through core/log.h: level names and the
 * level filter. (Criterion runs each test in its own process, so setting the
 * process-wide level here does not leak between tests.)
 */
#include <criterion/criterion.h>

#include <errno.h>

#include "core/log.h"

Test(log, parse_level_accepts_each_documented_name)
{
    static const struct {
        const char *name;
        enum log_level level;
    } cases[] = {
        {"error", LOG_LEVEL_ERR},
        {"warning", LOG_LEVEL_WARN},
        {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Start from a different level so a no-op parse cannot pass. */
        enum log_level out = cases[i].level == LOG_LEVEL_DEBUG ? LOG_LEVEL_ERR : LOG_LEVEL_DEBUG;
        cr_assert_eq(log_parse_level(cases[i].name, &out), 0, "%s", cases[i].name);
        cr_assert_eq(out, cases[i].level, "%s", cases[i].name);
    }
}

Test(log, parse_level_rejects_other_strings_and_leaves_out_alone)
{
    static const char *const bad[] = {
        "", "err", "warn", "inf", "debu", "debugs", "info ", " info", "trace", "none", "3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum log_level out = LOG_LEVEL_WARN;
        cr_assert_eq(log_parse_level(bad[i], &out), -EINVAL, "\"%s\" accepted", bad[i]);
        cr_assert_eq(out, LOG_LEVEL_WARN, "\"%s\" changed out on failure", bad[i]);
    }
}

Test(log, enabled_follows_set_level)
{
    static const enum log_level levels[] = {LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO,
                                            LOG_LEVEL_DEBUG};
    for (size_t set = 0; set < 4; set++) {
        log_set_level(levels[set]);
        for (size_t q = 0; q < 4; q++) {
            bool want = q <= set; /* more severe or equal is written */
            cr_assert_eq(log_enabled(levels[q]), want, "level %zu set, query %zu", set, q);
        }
    }
}

Test(log, errors_are_always_enabled)
{
    log_set_level(LOG_LEVEL_ERR);
    cr_assert(log_enabled(LOG_LEVEL_ERR));
    cr_assert_not(log_enabled(LOG_LEVEL_WARN));
    cr_assert_not(log_enabled(LOG_LEVEL_DEBUG));
}

Test(log, parsed_level_drives_the_filter)
{
    enum log_level lvl;
    cr_assert_eq(log_parse_level("warning", &lvl), 0);
    log_set_level(lvl);
    cr_assert(log_enabled(LOG_LEVEL_WARN));
    cr_assert_not(log_enabled(LOG_LEVEL_INFO));
}
