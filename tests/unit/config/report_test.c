/* config/report: a reload's outcome as data; errors split into file,
 * line and reason as config_load writes them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/report.h"

Test(report, error_of_the_file_has_file_and_line)
{
    struct config_report r;
    config_report_init(&r);
    config_report_error(&r, "/etc/ringmq.ini",
                        "/etc/ringmq.ini:12: [limits] max_client_id_len: expected an integer");
    cr_assert_eq(r.nerrors, 1);
    cr_assert_str_eq(r.errors[0].file, "/etc/ringmq.ini");
    cr_assert_eq(r.errors[0].line, 12);
    cr_assert_str_eq(r.errors[0].message, "[limits] max_client_id_len: expected an integer");
    config_report_fini(&r);
    cr_assert_eq(r.nerrors, 0);
}

Test(report, error_of_the_whole_file_an_override_or_none)
{
    struct config_report r;
    config_report_init(&r);
    config_report_error(&r, "/x.ini", "/x.ini: no [listener.NAME] section");
    config_report_error(&r, "/x.ini", "--set limits.max_connections=z: expected an integer");
    config_report_error(&r, NULL, "listener a: cannot listen on 127.0.0.1:1: Permission denied");
    config_report_error(&r, "/x.ini", "/x.ini.bak:3: not this file");
    cr_assert_eq(r.nerrors, 4);
    cr_assert_str_eq(r.errors[0].file, "/x.ini");
    cr_assert_eq(r.errors[0].line, 0);
    cr_assert_str_eq(r.errors[0].message, "no [listener.NAME] section");
    cr_assert_str_eq(r.errors[1].file, "--set limits.max_connections=z");
    cr_assert_str_eq(r.errors[1].message, "expected an integer");
    cr_assert_null(r.errors[2].file);
    cr_assert_str_eq(r.errors[2].message,
                     "listener a: cannot listen on 127.0.0.1:1: Permission denied");
    cr_assert_null(r.errors[3].file, "a longer name that starts with the path is another file");
    config_report_fini(&r);
}

Test(report, changes_live_and_restart)
{
    struct config_report r;
    config_report_init(&r);
    for (int i = 0; i < 20; i++) { /* past the first growth */
        struct config_change ch = {
            .key = "port", .what = "changed", .from = "1", .to = "2", .live = true};
        snprintf(ch.section, sizeof(ch.section), "listener.l%d", i);
        config_report_change(&r, &ch);
    }
    struct config_change added = {
        .section = "listener.new", .key = "*", .what = "added", .live = true};
    config_report_change(&r, &added);
    struct config_change restart = {.section = "server", .key = "shards", .what = "changed"};
    config_report_change(&r, &restart);
    cr_assert_eq(r.nchanged, 21);
    cr_assert_str_eq(r.changed[19].key, "listener.l19.port");
    cr_assert_str_eq(r.changed[19].from, "1");
    cr_assert_str_eq(r.changed[19].to, "2");
    cr_assert_str_eq(r.changed[20].key, "listener.new");
    cr_assert_str_eq(r.changed[20].what, "added");
    cr_assert_null(r.changed[20].from);
    cr_assert_eq(r.nrestart, 1);
    cr_assert_str_eq(r.restart[0], "server.shards");
    config_report_clear_changes(&r);
    cr_assert_eq(r.nchanged + r.nrestart, 0);
    config_report_fini(&r);
}
