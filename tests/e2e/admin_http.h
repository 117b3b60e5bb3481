/* End-to-end tests of the admin API, the part its test files share: the
 * token file an operator would make with ringmq-passwd token (four tokens:
 * admin-token, an admin of every tenant; acme-reader, a reader of acme;
 * any-reader, a reader of every tenant; acme-admin, an admin of acme), the
 * API's port from the broker's log, and HTTP/1.0 requests over a loopback
 * socket, read until the server closes. Every wait is bounded; failures
 * are Criterion asserts. */
#ifndef RINGMQ_E2E_ADMIN_HTTP_H
#define RINGMQ_E2E_ADMIN_HTTP_H

#include <jansson.h>

#include "harness.h"

/* Skip the test against mosquitto: the admin API is ringmq's. */
void admin_skip_mosquitto(void);

/* A new token file of the four tokens at path[cap] ("/tmp/ringmq-admin-..."),
 * and the setting that names it ("admin.token_file=PATH") into set[set_cap]. */
void admin_tokens_make(char *path, size_t cap, char *set, size_t set_cap);

/* METHOD PATH with `token` (NULL: no Authorization) and `out` (NULL: no
 * body) of out_len bytes; the status, and the answer's body into body[cap]. */
int admin_http_send(const struct broker *b, const char *method, const char *path, const char *token,
                    const char *out, size_t out_len, char *body, size_t cap);

/* GET `path` with `token`, asserting `status`; the body parsed (NULL for a
 * body that is not JSON). */
json_t *admin_get_json(const struct broker *b, const char *path, const char *token, int status);

/* METHOD `path` with `token` and the JSON text `json` (NULL: no body),
 * asserting `status`; the answer parsed (NULL when it is not JSON). */
json_t *admin_call_json(const struct broker *b, const char *method, const char *path,
                        const char *token, const char *json, int status);

/* Whether MQTT filter f matches topic t, written apart from the broker's
 * code: '+' one level, '#' the rest and the parent level ("s/#" matches
 * "s", MQTT-4.7.1-2), no '$' topic under a first-level wildcard
 * (MQTT-4.7.2-1). */
bool admin_ref_matches(const char *f, const char *t);

#endif
