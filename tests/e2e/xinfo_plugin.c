/* An auth plugin for the e2e tests that records what the broker told it of
 * each CONNECT's transport (ABI 4): one line per CONNECT appended to the
 * file named by its `record` key,
 *   id=ID transport=T version=V cipher=C sni=S proxy=0|1 verified=0|1
 *   subject=SUBJ cn=CN sha256=HEX san=A,B,...
 * ("-" for NULL), written before the call is completed, so it is there
 * once the client has its CONNACK. Every client is allowed, into the
 * tenant named by its user name (none: "global"); every check granted. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringmq/plugin.h"

static const struct ringmq_host *host;
static char record[512];

static int xi_init(const struct ringmq_host *h, const struct ringmq_kv *config, size_t n,
                   void **state, char *err, size_t errlen)
{
    host = h;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(config[i].key, "record"))
            snprintf(record, sizeof(record), "%s", config[i].value);
    if (!record[0]) {
        snprintf(err, errlen, "record is required");
        return -1;
    }
    *state = NULL;
    return 0;
}

static void xi_fini(void *state)
{
    (void)state;
}

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

static void xi_authenticate(void *state, struct ringmq_call *call,
                            const struct ringmq_connect_info *in)
{
    (void)state;
    char san[1024] = "";
    for (size_t i = 0; i < in->n_client_cert_san; i++)
        snprintf(san + strlen(san), sizeof(san) - strlen(san), "%s%s", i ? "," : "",
                 in->client_cert_san[i]);
    char line[4096];
    int n =
        snprintf(line, sizeof(line),
                 "id=%.*s transport=%s version=%s cipher=%s sni=%s proxy=%d verified=%d "
                 "subject=%s cn=%s sha256=%s san=%s\n",
                 (int)in->client_id.len, (const char *)in->client_id.p, or_dash(in->transport),
                 or_dash(in->tls_version), or_dash(in->tls_cipher), or_dash(in->tls_sni),
                 in->tls_from_proxy, in->client_cert_verified, or_dash(in->client_cert_subject),
                 or_dash(in->client_cert_cn), or_dash(in->client_cert_sha256), san[0] ? san : "-");
    int fd = open(record, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) != n)
            host->log(RINGMQ_LOG_ERR, "cannot write %s", record);
        close(fd);
    }
    char tenant[128] = "";
    if (in->has_username)
        snprintf(tenant, sizeof(tenant), "%.*s", (int)in->username.len,
                 (const char *)in->username.p);
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_ALLOW;
    r.auth.tenant = tenant[0] ? tenant : NULL;
    host->complete(call, &r);
}

static void xi_auth_continue(void *state, struct ringmq_call *call,
                             const struct ringmq_auth_step *step)
{
    (void)state;
    (void)step;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.auth.decision = RINGMQ_AUTH_BAD_METHOD;
    host->complete(call, &r);
}

static void xi_check(void *state, struct ringmq_call *call, const struct ringmq_check *c)
{
    (void)state;
    (void)c;
    union ringmq_result r;
    memset(&r, 0, sizeof(r));
    r.check.verdict = RINGMQ_GRANTED;
    r.check.cacheable = true;
    host->complete(call, &r);
}

static const struct ringmq_plugin xi_plugin = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "xinfo",
    .kinds = RINGMQ_KIND_AUTH,
    .init = xi_init,
    .fini = xi_fini,
    .authenticate = xi_authenticate,
    .auth_continue = xi_auth_continue,
    .check = xi_check,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void);

const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &xi_plugin;
}
