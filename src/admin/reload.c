/*
 * admin reload: POST /api/v1/reload, the reload SIGHUP makes, done on the
 * admin thread while the request waits (the broker serializes it with
 * SIGHUP's), answered with what it did: 200 {"changed": [...],
 * "restart_required": [...], "errors": []}, or 422 with the errors when
 * the configuration was refused (nothing changed). docs/admin-api.md.
 */
#include <errno.h>
#include <string.h>

#include "admin/http.h"
#include "core/log.h"

/* A string, or null for none and for bytes that are not UTF-8 (a value
 * or a reason may quote the file's own bytes). */
static json_t *str_or_null(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;
    return j ? j : json_null();
}

static json_t *changed_json(const struct config_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->nchanged; i++) {
        const struct config_report_change *ch = &r->changed[i];
        if (json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:o}", "key", ch->key, "what",
                                               ch->what, "from", str_or_null(ch->from), "to",
                                               str_or_null(ch->to))) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *restart_json(const struct config_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->nrestart; i++)
        if (json_array_append_new(a, json_string(r->restart[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *errors_json(const struct config_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->nerrors; i++) {
        const struct config_report_error *e = &r->errors[i];
        if (json_array_append_new(a, json_pack("{s:o,s:I,s:o}", "file", str_or_null(e->file),
                                               "line", (json_int_t)e->line, "message",
                                               str_or_null(e->message))) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* The answer's body, NULL when out of memory. */
static json_t *report_json(const struct config_report *r)
{
    return json_pack("{s:o*,s:o*,s:o*,s:b}", "changed", changed_json(r), "restart_required",
                     restart_json(r), "errors", errors_json(r), "truncated", r->truncated);
}

enum MHD_Result http_reload(const struct admin_ops *ops, void *arg, struct MHD_Connection *conn,
                            const struct caller *c, const char *method, const char *url)
{
    enum MHD_Result ret;
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return http_reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                "POST a reload");
    if (!http_may_write(conn, c, method, url, &ret))
        return ret;
    if (c->token && c->token->ntenants)
        return http_refuse(conn, c, MHD_HTTP_FORBIDDEN, "forbidden",
                           "the configuration is the whole broker's: a token of every tenant "
                           "may reload it",
                           method, url);
    log_info("admin: reload (from %s)", c->peer);
    struct config_report r;
    config_report_init(&r);
    int err = ops->reload(arg, &r);
    if (err < 0 && err != -EINVAL) {
        config_report_fini(&r);
        if (err == -EAGAIN)
            return http_reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                    "the broker is not ready to reload yet");
        return http_reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", strerror(-err));
    }
    json_t *body = report_json(&r);
    config_report_fini(&r);
    return http_reply_json(conn, err ? MHD_HTTP_UNPROCESSABLE_CONTENT : MHD_HTTP_OK, body);
}
