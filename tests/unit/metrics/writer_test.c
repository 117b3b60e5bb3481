/*
 * Unit tests for src/metrics/metrics.c through metrics/metrics.h: the
 * Prometheus text format written by metrics_write() and handed back by
 * metrics_render(): HELP/TYPE once per name, label and HELP escaping, value
 * formatting, samples refused because they would break the exposition.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

typedef void (*body_fn)(struct metrics_writer *w);

static void run_body(struct metrics_writer *w, void *arg)
{
    ((body_fn)arg)(w);
}

/* Render through a body function and compare with the exact text. */
static void expect_render(body_fn body, const char *want)
{
    size_t len = 12345;
    char *got = metrics_render(run_body, (void *)body, &len);
    cr_assert_not_null(got);
    cr_assert_eq(len, strlen(got));
    cr_assert_str_eq(got, want);
    free(got);
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void empty_body(struct metrics_writer *w)
{
    (void)w;
}

Test(metrics_render, empty_collector_gives_empty_string)
{
    expect_render(empty_body, "");
    size_t len = 99;
    char *got = metrics_render(NULL, NULL, &len);
    cr_assert_not_null(got, "a NULL collector renders nothing, not NULL");
    cr_assert_eq(len, 0);
    cr_assert_str_eq(got, "");
    free(got);
    got = metrics_render(run_body, (void *)empty_body, NULL);
    cr_assert_not_null(got, "len may be NULL");
    free(got);
}

static void one_plain(struct metrics_writer *w)
{
    metrics_write(w, "ringmq_up", "Broker is up.", "gauge", NULL, NULL, 1);
}

Test(metrics_write, plain_sample_has_help_type_and_value)
{
    expect_render(one_plain, "# HELP ringmq_up Broker is up.\n"
                             "# TYPE ringmq_up gauge\n"
                             "ringmq_up 1\n");
}

static void same_name_twice(struct metrics_writer *w)
{
    const char *keys[] = {"tenant", "qos", NULL};
    const char *a[] = {"a", "0", NULL};
    const char *b[] = {"b", "1", NULL};
    const char *other_keys[] = {"tenant", NULL};
    metrics_write(w, "m_total", "Help m.", "counter", keys, a, 3);
    metrics_write(w, "m_total", "Help m.", "counter", keys, b, 4);
    metrics_write(w, "g", "Help g.", "gauge", other_keys, a, 5);
}

Test(metrics_write, help_and_type_once_per_name)
{
    expect_render(same_name_twice, "# HELP m_total Help m.\n"
                                   "# TYPE m_total counter\n"
                                   "m_total{tenant=\"a\",qos=\"0\"} 3\n"
                                   "m_total{tenant=\"b\",qos=\"1\"} 4\n"
                                   "# HELP g Help g.\n"
                                   "# TYPE g gauge\n"
                                   "g{tenant=\"a\"} 5\n");
}

static void non_consecutive(struct metrics_writer *w)
{
    metrics_write(w, "x", "X.", "gauge", NULL, NULL, 1);
    metrics_write(w, "y", "Y.", "gauge", NULL, NULL, 2);
    metrics_write(w, "x", "X.", "gauge", NULL, NULL, 3);
}

/* The caller broke the "consecutive" rule: at least never a second TYPE line. */
Test(metrics_write, name_coming_back_gets_no_second_help)
{
    char *got = metrics_render(run_body, (void *)non_consecutive, NULL);
    cr_assert_not_null(got);
    cr_assert_eq(count_substr(got, "# HELP x "), 1);
    cr_assert_eq(count_substr(got, "# TYPE x "), 1);
    cr_assert_not_null(strstr(got, "\nx 3\n"));
    free(got);
}

static void escapes(struct metrics_writer *w)
{
    const char *keys[] = {"tenant", NULL};
    const char *vals[] = {"a\\b\"c\nd", NULL};
    metrics_write(w, "e", "back\\slash \"q\"\nnext", "gauge", keys, vals, 1);
}

Test(metrics_write, label_values_and_help_are_escaped)
{
    /* Label values escape \ " and newline; HELP escapes \ and newline only. */
    expect_render(escapes, "# HELP e back\\\\slash \"q\"\\nnext\n"
                           "# TYPE e gauge\n"
                           "e{tenant=\"a\\\\b\\\"c\\nd\"} 1\n");
}

static void empty_label_value(struct metrics_writer *w)
{
    const char *keys[] = {"tenant", NULL};
    const char *vals[] = {"", NULL};
    const char *no_keys[] = {NULL};
    metrics_write(w, "e", NULL, NULL, keys, vals, 0);
    metrics_write(w, "e", NULL, NULL, no_keys, no_keys, 0);
}

Test(metrics_write, null_help_and_type_and_empty_labels)
{
    expect_render(empty_label_value, "e{tenant=\"\"} 0\n"
                                     "e 0\n");
}

static void values(struct metrics_writer *w)
{
    const double v[] = {
        0,   42,       -3,       1.5, 0.1, 9007199254740992.0, 1e300, 18446744073709551615.0,
        NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        metrics_write(w, "v", NULL, "untyped", NULL, NULL, v[i]);
}

Test(metrics_write, values_are_shortest_exact_and_special)
{
    expect_render(values, "# TYPE v untyped\n"
                          "v 0\n"
                          "v 42\n"
                          "v -3\n"
                          "v 1.5\n"
                          "v 0.1\n"
                          "v 9007199254740992\n"
                          "v 1e+300\n"
                          "v 1.8446744073709552e+19\n"
                          "v NaN\n"
                          "v +Inf\n"
                          "v -Inf\n");
}

static void invalid(struct metrics_writer *w)
{
    const char *k_ok[] = {"k", NULL};
    const char *v_ok[] = {"v", NULL};
    const char *k_digit[] = {"1k", NULL};
    const char *k_dash[] = {"a-b", NULL};
    const char *k_colon[] = {"a:b", NULL};
    const char *k_reserved[] = {"__name__", NULL};
    const char *k_two[] = {"k", "j", NULL};
    const char *v_one[] = {"v", NULL};
    metrics_write(w, NULL, NULL, "gauge", NULL, NULL, 1);
    metrics_write(w, "", NULL, "gauge", NULL, NULL, 1);
    metrics_write(w, "1abc", NULL, "gauge", NULL, NULL, 1);
    metrics_write(w, "a-b", NULL, "gauge", NULL, NULL, 1);
    metrics_write(w, "a b", NULL, "gauge", NULL, NULL, 1);
    metrics_write(w, "bad_type", NULL, "Counter", NULL, NULL, 1);
    metrics_write(w, "bad_label", NULL, "gauge", k_digit, v_ok, 1);
    metrics_write(w, "bad_label", NULL, "gauge", k_dash, v_ok, 1);
    metrics_write(w, "bad_label", NULL, "gauge", k_colon, v_ok, 1);
    metrics_write(w, "bad_label", NULL, "gauge", k_reserved, v_ok, 1);
    metrics_write(w, "bad_label", NULL, "gauge", k_ok, NULL, 1);
    metrics_write(w, "bad_label", NULL, "gauge", k_two, v_one, 1);
    metrics_write(w, "bad_label", NULL, "gauge", NULL, v_one, 1);
    /* Boundaries that are valid: colons in metric names, _ first, digits after. */
    metrics_write(w, "ns:sub_2", NULL, "gauge", k_ok, v_ok, 7);
    metrics_write(w, "_x", NULL, "summary", NULL, NULL, 8);
}

Test(metrics_write, samples_that_would_break_the_format_are_skipped)
{
    expect_render(invalid, "# TYPE ns:sub_2 gauge\n"
                           "ns:sub_2{k=\"v\"} 7\n"
                           "# TYPE _x summary\n"
                           "_x 8\n");
}

static void many(struct metrics_writer *w)
{
    const char *keys[] = {"i", NULL};
    for (int i = 0; i < 100000; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%d", i);
        const char *vals[] = {num, NULL};
        metrics_write(w, "many", "Many.", "gauge", keys, vals, i);
    }
}

Test(metrics_render, large_output_grows_and_stays_whole)
{
    size_t len = 0;
    char *got = metrics_render(run_body, (void *)many, &len);
    cr_assert_not_null(got);
    cr_assert_eq(len, strlen(got));
    /* Count by hand: strstr per line is quadratic under ASan's interceptor. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += got[i] == '\n';
    cr_assert_eq(lines, 100000 + 2);
    cr_assert_not_null(strstr(got, "many{i=\"0\"} 0\n"));
    cr_assert_not_null(strstr(got, "many{i=\"99999\"} 99999\n"));
    cr_assert_eq(got[len - 1], '\n');
    free(got);
}

static void bad_utf8(struct metrics_writer *w)
{
    const char *keys[] = {"tenant", NULL};
    /* Valid 2-, 3- and 4-byte sequences pass; a stray continuation byte, a
     * 0xFF, an overlong '/', a surrogate, a sequence cut short and one past
     * U+10FFFF are each written as \xNN (its backslash escaped). */
    const char *ok[] = {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL};
    const char *bad[] = {"a\x80"
                         "b\xff"
                         "c\xc0\xaf"
                         "d\xed\xa0\x80"
                         "e\xe2\x82"
                         "f\xf4\x90\x80\x80",
                         NULL};
    metrics_write(w, "u", "Help \xff.", "gauge", keys, ok, 1);
    metrics_write(w, "u", NULL, NULL, keys, bad, 2);
}

Test(metrics_write, invalid_utf8_is_escaped_not_copied)
{
    /* Found in review: a tenant id that was not UTF-8 (an auth plugin may
     * name any bytes) was copied as is, and Prometheus rejects the whole
     * scrape on an invalid UTF-8 label value. */
    expect_render(bad_utf8, "# HELP u Help \\\\xff.\n"
                            "# TYPE u gauge\n"
                            "u{tenant=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"} 1\n"
                            "u{tenant=\"a\\\\x80b\\\\xffc\\\\xc0\\\\xafd\\\\xed\\\\xa0\\\\x80"
                            "e\\\\xe2\\\\x82f\\\\xf4\\\\x90\\\\x80\\\\x80\"} 2\n");
}
