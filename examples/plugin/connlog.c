/*
 * connlog: an example ringmq plugin built outside the source tree, against
 * the installed header only:
 *
 *   cc -shared -fPIC -o connlog.so connlog.c $(pkg-config --cflags ringmq-plugin)
 *
 * It appends one line per connection ("TENANT CLIENT_ID ADDRESS") to the
 * file its `file` key names. Configure it with:
 *
 *   [plugin.connlog]
 *   path = /path/to/connlog.so
 *   file = /var/log/ringmq/connections.log
 *
 * Events are called on the shards and must not block: a real plugin would
 * hand them to a thread of its own; this one writes a line with one
 * write(2) on a file opened O_APPEND, which is what an example may do.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringmq/plugin.h>

struct connlog {
    int fd;
};

static int connlog_init(const struct ringmq_host *host, const struct ringmq_kv *config, size_t n,
                        void **state, char *err, size_t errlen)
{
    (void)host;
    const char *file = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(config[i].key, "file") == 0)
            file = config[i].value;
    if (!file) {
        snprintf(err, errlen, "connlog: set file = PATH");
        return -1;
    }
    struct connlog *c = malloc(sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "connlog: out of memory");
        return -1;
    }
    c->fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (c->fd < 0) {
        snprintf(err, errlen, "connlog: cannot open %s", file);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static void connlog_fini(void *state)
{
    struct connlog *c = state;
    close(c->fd);
    free(c);
}

static void connlog_event(void *state, const struct ringmq_event *ev)
{
    struct connlog *c = state;
    if (ev->type != RINGMQ_EV_CONNECTED)
        return;
    char line[512];
    int len = snprintf(line, sizeof(line), "%s %.*s %s\n", ev->tenant, (int)ev->client_id.len,
                       (const char *)ev->client_id.p, ev->remote_addr ? ev->remote_addr : "-");
    if (len > 0 && (size_t)len < sizeof(line) && write(c->fd, line, (size_t)len) < 0)
        return; /* an example: nowhere better to report it */
}

static const struct ringmq_plugin connlog = {
    .abi_version = RINGMQ_PLUGIN_ABI_VERSION,
    .name = "connlog",
    .kinds = RINGMQ_KIND_EVENTS,
    .init = connlog_init,
    .fini = connlog_fini,
    .event = connlog_event,
};

__attribute__((visibility("default"))) const struct ringmq_plugin *ringmq_plugin_entry(void)
{
    return &connlog;
}
