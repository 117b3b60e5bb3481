/*
 * Unit tests for src/core/log.c through core/log.h: level names and the
 * level filter. (Criterion runs each test in its own process, so setting the
 * process-wide level here does not leak between tests.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

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

/* What one log call wrote to stderr (redirected to a temporary file). */
static char *capture(void (*write_lines)(void))
{
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    write_lines();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    static char out[8192];
    rewind(tmp);
    size_t n = fread(out, 1, sizeof(out) - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

static void json_client_line(void)
{
    log_set_output(LOG_FORMAT_JSON, LOG_TARGET_STDERR);
    log_set_thread_name("shard 3");
    log_set_client("acme", "dev\"1\\x", 7);
    log_write(LOG_LEVEL_WARN, "bad packet \"%s\"\n\t", "q");
}

Test(log, json_line_names_level_shard_tenant_client_and_escapes)
{
    const char *out = capture(json_client_line);
    cr_assert(strncmp(out, "{\"time\":\"", 9) == 0, "%s", out);
    cr_assert(strstr(out, "Z\",\"level\":\"warning\",\"thread\":\"shard 3\",\"shard\":3,"), "%s",
              out);
    cr_assert(strstr(out, "\"tenant\":\"acme\",\"client_id\":\"dev\\\"1\\\\x\""), "%s", out);
    cr_assert(strstr(out, "\"msg\":\"bad packet \\\"q\\\"\\u000a\\u0009\"}\n"), "%s", out);
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
}

static void json_long_line(void)
{
    log_set_output(LOG_FORMAT_JSON, LOG_TARGET_STDERR);
    log_set_client(NULL, NULL, 0);
    char big[3000];
    memset(big, '"', sizeof(big) - 1); /* each escapes to two bytes */
    big[sizeof(big) - 1] = '\0';
    log_write(LOG_LEVEL_INFO, "%s", big);
}

Test(log, json_line_cut_short_stays_one_valid_object)
{
    const char *out = capture(json_long_line);
    size_t len = strlen(out);
    cr_assert(len > 1000 && len <= 2048, "%zu", len);
    cr_assert(strcmp(out + len - 3, "\"}\n") == 0, "ends the string and the object: %s",
              out + len - 10);
    cr_assert_null(strstr(out, "tenant"), "no client set: no tenant field");
    /* An escape is never cut in half: the quote before "} is escaped. */
    cr_assert_eq(out[len - 4], '"');
    cr_assert_eq(out[len - 5], '\\');
}

static void text_line(void)
{
    log_set_output(LOG_FORMAT_TEXT, LOG_TARGET_STDERR);
    log_set_thread_name("main");
    log_set_client("acme", "dev1", 4);
    log_write(LOG_LEVEL_INFO, "listening on %s", "127.0.0.1:1883");
}

Test(log, text_line_is_unchanged)
{
    cr_assert_str_eq(capture(text_line), "info [main] listening on 127.0.0.1:1883\n");
}

/* [log] target = syslog: each line goes to syslog(3) with the priority of
 * its level, opened as "ringmqd" for the daemon facility, in the format
 * asked (text or JSON), and nothing to stderr. syslog and openlog are this
 * file's own (the core library, linked in statically, calls them). */
static int syslog_prio, openlog_facility, nsyslog;
static char syslog_line[2048], openlog_ident[32];

void openlog(const char *ident, int option, int facility)
{
    (void)option;
    snprintf(openlog_ident, sizeof(openlog_ident), "%s", ident);
    openlog_facility = facility;
}

void syslog(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(syslog_line, sizeof(syslog_line), fmt, ap);
    va_end(ap);
    syslog_prio = prio;
    nsyslog++;
}

static void warn_disk(void)
{
    log_write(LOG_LEVEL_WARN, "disk %d%% full", 93);
}

Test(log, syslog_target_gets_each_line_with_its_priority)
{
    log_set_output(LOG_FORMAT_TEXT, LOG_TARGET_SYSLOG);
    cr_assert_str_eq(openlog_ident, "ringmqd");
    cr_assert_eq(openlog_facility, LOG_DAEMON);
    char *err = capture(warn_disk);
    cr_assert_eq(nsyslog, 1);
    cr_assert_eq(syslog_prio, LOG_WARNING);
    cr_assert_str_eq(syslog_line, "warning [main] disk 93% full");
    cr_assert_str_eq(err, "", "nothing on stderr");
    log_write(LOG_LEVEL_ERR, "e");
    cr_assert_eq(syslog_prio, LOG_ERR);
    log_set_output(LOG_FORMAT_JSON, LOG_TARGET_SYSLOG);
    log_write(LOG_LEVEL_INFO, "j");
    cr_assert_eq(syslog_prio, LOG_INFO);
    cr_assert(strstr(syslog_line, "\"level\":\"info\"") && strstr(syslog_line, "\"msg\":\"j\""),
              "%s", syslog_line);
    cr_assert_eq(syslog_line[strlen(syslog_line) - 1], '}', "one object, no newline");
}
