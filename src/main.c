/*
 * ringmqd: command line, configuration, signals. Composes the layers and
 * owns nothing else: the broker runs in its shard threads while the main
 * thread waits for SIGINT/SIGTERM.
 *
 * Exit status: 0 after a clean shutdown, a valid --check-config or an
 * --inspect that found everything verifying, 1 when the configuration is
 * invalid, start-up failed or --inspect found a problem, 2 for usage
 * errors.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "broker/broker.h"
#include "config/config.h"
#include "config/report.h"
#include "core/log.h"
#include "core/notify.h"
#include "net/uring.h"
#include "persist/inspect.h"
#include "persist/persist.h"
#include "plugin/host.h"

#define RINGMQ_MAX_OVERRIDES 256

static void usage(FILE *f)
{
    fprintf(f, "usage: ringmqd -c FILE [--set section.key=value]... [--check-config]\n"
               "       ringmqd --inspect DIR\n"
               "       ringmqd --version | --help\n"
               "\n"
               "  -c, --config FILE   configuration file (see conf/ringmq.ini)\n"
               "  --set S.K=V         override key K of section S (repeatable),\n"
               "                      e.g. --set listener.default.port=0\n"
               "  --check-config      validate the configuration, load and initialise its\n"
               "                      plugins, and exit 0 or 1\n"
               "  --salvage           start from a damaged data directory ([persistence]):\n"
               "                      keep every record that is valid, log what is dropped\n"
               "  --inspect DIR       print what the data directory DIR holds and check\n"
               "                      every checksum, changing nothing; exit 0 when all\n"
               "                      verifies, else 1 (no broker starts, -c is ignored)\n"
               "  --version           print the version\n"
               "  --help              print this help\n");
}

/* The secure-by-default rule: without an auth plugin, a listener on a
 * non-loopback address needs allow_anonymous. 0, or -1 with why in err. */
static int anonymous_check(const struct config *cfg, bool auth, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < cfg->nlisteners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        if (!auth && !l->allow_anonymous && !addr_is_loopback(l->bind)) {
            snprintf(err, errlen,
                     "[listener.%s] bind = %s is not a loopback address and no auth plugin is "
                     "loaded: set allow_anonymous = true to accept anonymous clients there",
                     l->name, l->bind);
            return -1;
        }
    }
    return 0;
}

/* The [plugin.NAME] sections of cfg as the plugin host takes them, into
 * specs[cfg->nplugins]; they point into cfg and into one static array of
 * pairs, so only start-up and reloads (one at a time) call this. */
static void plugin_specs(const struct config *cfg, struct plugin_spec *specs)
{
    static struct ringmq_kv kv[CONFIG_MAX_PLUGINS][CONFIG_MAX_PLUGIN_KEYS];
    for (uint32_t i = 0; i < cfg->nplugins; i++) {
        const struct config_plugin *p = &cfg->plugins[i];
        for (uint32_t k = 0; k < p->nkv; k++)
            kv[i][k] = (struct ringmq_kv){p->kv[k].key, p->kv[k].value};
        specs[i] = (struct plugin_spec){p->name, p->path, kv[i], p->nkv};
    }
}

/* Load the [plugin.NAME] sections; then the secure-by-default rule, which
 * needs to know whether an auth plugin exists. */
static int load_plugins(const struct config *cfg, struct plugin_host **out)
{
    *out = NULL;
    if (cfg->nplugins) {
        struct plugin_spec specs[CONFIG_MAX_PLUGINS];
        plugin_specs(cfg, specs);
        char err[512];
        if (plugin_host_create(specs, cfg->nplugins, cfg->plugin_timeout_ms, out, err,
                               sizeof(err)) < 0) {
            log_err("%s", err);
            return -1;
        }
    }
    char err[512];
    if (anonymous_check(cfg, *out && plugin_host_has_auth(*out), err, sizeof(err)) < 0) {
        log_err("%s", err);
        plugin_host_destroy(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/*
 * The signals the main thread takes in sigwait: every one an operator may
 * send, so that none but SIGKILL ends the broker without a clean shutdown
 * (mosquitto's users send SIGUSR1 out of habit; a realtime signal or
 * SIGALRM would end the process by default). Left out: the faults a thread
 * raises itself (their default or a sanitizer's handler must run), SIGPIPE
 * (ignored: a write to a closed socket returns EPIPE), and those whose
 * default does not end the process (job control, SIGCHLD, SIGWINCH, SIGURG).
 */
static void operator_signals(sigset_t *set)
{
    static const int keep[] = {SIGSEGV, SIGBUS,  SIGILL,  SIGFPE,   SIGTRAP, SIGSYS,
                               SIGABRT, SIGPIPE, SIGCHLD, SIGWINCH, SIGURG,  SIGCONT,
                               SIGTSTP, SIGTTIN, SIGTTOU, SIGKILL,  SIGSTOP};
    sigfillset(set); /* glibc leaves out the signals it uses itself */
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        sigdelset(set, keep[i]);
}

/* Tell the service manager, if one listens (Type=notify). */
static void tell_manager(const char *state)
{
    int ret = notify_service(state);
    if (ret < 0)
        log_warn("cannot notify the service manager ($NOTIFY_SOCKET): %s", strerror(-ret));
}

/* Live reload: the file and --set overrides read at start, and every
 * configuration put in force since, kept until exit (a shard may still
 * read the one before for up to a tick, and listeners and their
 * connections keep the one they were opened from; they are a few
 * hundred KB). One reload at a time: SIGHUP's on the main thread, the
 * admin API's on its own (lock). */
struct config_gen {
    struct config_gen *prev;
    struct config cfg;
};
struct reload {
    const char *path;
    const char *const *overrides;
    size_t n;
    const struct config *cur;
    struct config_gen *gens;
    struct broker *b;
    struct plugin_host *plugins;
    pthread_mutex_t lock;
};

/* What one reload's config_reconcile callbacks share. */
struct reload_pass {
    struct config_report *rep;
    struct plugin_host *plugins;
};

/* Each difference into the log and the report. */
static void on_change(void *arg, const struct config_change *ch)
{
    struct reload_pass *ps = arg;
    if (!ch->live)
        log_warn("reload: [%s] %s %s: needs a restart, the running value stays", ch->section,
                 ch->key, ch->what);
    else if (ch->from && ch->to)
        log_info("reload: [%s] %s %s: %s -> %s", ch->section, ch->key, ch->what, ch->from, ch->to);
    else
        log_info("reload: [%s] %s %s", ch->section, ch->key, ch->what);
    config_report_change(ps->rep, ch);
}

/* Whether plugin `name` takes its changed keys live (config_reconcile). */
static bool plugin_live(void *arg, const char *name)
{
    const struct reload_pass *ps = arg;
    return ps->plugins && plugin_host_can_reconfigure(ps->plugins, name);
}

/* A reload refused: logged, into the report; nothing changed. */
static int refuse(struct config_report *rep, const char *path, const char *why)
{
    log_err("reload: %s; nothing changed", why);
    config_report_clear_changes(rep);
    config_report_error(rep, path, why);
    return -EINVAL;
}

/* Step one of the plugins' new keys (those config_reconcile left in next
 * as live): every plugin concerned checks and prepares them, none puts
 * them in force yet. 0, or -1 with the first refusal in err. */
static int plugins_prepare(struct plugin_host *h, const struct config *next, char *err,
                           size_t errlen)
{
    if (!h || !next->nplugins)
        return 0;
    struct plugin_spec specs[CONFIG_MAX_PLUGINS];
    plugin_specs(next, specs);
    return plugin_host_reconfigure(h, specs, next->nplugins, err, errlen) < 0 ? -1 : 0;
}

/* Each error of the file read again: logged, into the report. */
struct reload_errors {
    struct config_report *rep;
    const char *path;
};

static void on_error(void *arg, const char *text)
{
    struct reload_errors *e = arg;
    log_err("reload: %s", text);
    config_report_error(e->rep, e->path, text);
}

/* Each TLS file of the listeners that does not load (broker_file_error_fn):
 * logged as "FILE: reason", into the report. */
static void on_file_error(void *arg, const char *file, const char *message)
{
    struct config_report *rep = arg;
    log_err("reload: %s", message);
    config_report_error(rep, file, message);
}

/* Load the file again into *cfg, with every error of it in the report.
 * 0, -EINVAL (errors: nothing changed) or -ENOMEM. */
static int reload_load(struct reload *r, struct config *cfg, struct config_report *rep)
{
    struct reload_errors e = {rep, r->path};
    size_t nerrors = 0;
    int rc = config_load_all(cfg, r->path, r->overrides, r->n, on_error, &e, &nerrors);
    if (rc == -ENOMEM) {
        log_err("reload: out of memory; nothing changed");
        return rc;
    }
    if (rc < 0) {
        if (nerrors > CONFIG_MAX_ERRORS) {
            log_err("reload: %zu more errors (the first %d are listed)",
                    nerrors - CONFIG_MAX_ERRORS, CONFIG_MAX_ERRORS);
            rep->truncated = true;
        }
        log_err("reload: %zu error(s); nothing changed", nerrors);
        return rc;
    }
    char err[512];
    if (anonymous_check(cfg, r->plugins && plugin_host_has_auth(r->plugins), err, sizeof(err)) < 0)
        return refuse(rep, r->path, err);
    return 0;
}

/* Read the file again (with the same overrides) and put what changed in
 * force where it can change live; an invalid file, TLS files (the admin
 * API's, the listeners') that do not load, plugin keys a plugin refuses,
 * or listeners that cannot open, change nothing: the certificates and the
 * plugins' new keys are prepared first and put in force only with the
 * rest. 0, -EINVAL (refused) or -ENOMEM. */
static int reload_config(struct reload *r, struct config_report *rep)
{
    struct config_gen *g = malloc(sizeof(*g));
    char err[512];
    if (!g) {
        log_err("reload: out of memory; nothing changed");
        return -ENOMEM;
    }
    size_t live = 0;
    struct reload_pass ps = {rep, r->plugins};
    int rc = reload_load(r, &g->cfg, rep);
    if (rc < 0) {
        /* refused: the errors are in the report */
    } else if (broker_reload_admin_tls(r->b, err, sizeof(err)) < 0) {
        rc = refuse(rep, NULL, err);
    } else if (broker_reload_transports(r->b, &g->cfg, on_file_error, rep) < 0) {
        log_err("reload: TLS files of the listeners do not load; nothing changed");
        rc = -EINVAL;
    } else if (!(live = config_reconcile(r->cur, &g->cfg, on_change, plugin_live, &ps))) {
        log_info("reload: no change to put in force");
    } else if (plugins_prepare(r->plugins, &g->cfg, err, sizeof(err)) < 0) {
        rc = refuse(rep, NULL, err);
    } else if (broker_reload_config(r->b, &g->cfg, err, sizeof(err)) < 0) {
        if (r->plugins)
            plugin_host_reconfigure_finish(r->plugins, false);
        rc = refuse(rep, NULL, err);
    } else {
        if (r->plugins)
            plugin_host_reconfigure_finish(r->plugins, true);
        log_set_level(g->cfg.log_level);
        log_set_output(g->cfg.log_format, g->cfg.log_target);
        g->prev = r->gens;
        r->gens = g;
        r->cur = &g->cfg;
        log_info("reload: %zu change(s) in force", live);
    }
    /* The certificates read again (the admin API's, the listeners') are
     * served only by a reload that went through (one without changes
     * included). */
    broker_reload_admin_tls_commit(r->b, rc == 0);
    broker_reload_transports_commit(r->b, rc == 0);
    if (rc < 0 || !live)
        free(g);
    return rc;
}

/* The whole reload, SIGHUP's and the admin API's (broker_reload_fn): the
 * configuration with the TLS files (reload_config), the plugins' own
 * files. */
static int reload_run(void *arg, struct config_report *rep)
{
    struct reload *r = arg;
    pthread_mutex_lock(&r->lock);
    tell_manager("RELOADING=1");
    int rc = reload_config(r, rep);
    if (r->plugins)
        plugin_host_reload(r->plugins);
    tell_manager("READY=1");
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static void reload_fini(struct reload *r)
{
    while (r->gens) {
        struct config_gen *prev = r->gens->prev;
        free(r->gens);
        r->gens = prev;
    }
    pthread_mutex_destroy(&r->lock);
}

/* Serve operator signals until one asks to stop (INT, TERM, QUIT); returns
 * it. HUP: the configuration file is read again (what may change live is
 * put in force, listeners included), TLS listeners and plugins re-read
 * their files, connections stay. USR1: a status line. Any other: logged
 * and ignored (USR2 included: logs go to stderr, which the service
 * manager rotates). */
static int wait_for_stop(const sigset_t *set, struct broker *b, struct reload *r)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGINT || sig == SIGTERM || sig == SIGQUIT)
            return sig;
        if (sig == SIGHUP) {
            log_info("SIGHUP: reloading the configuration, TLS certificates and plugins");
            struct config_report rep;
            config_report_init(&rep);
            (void)reload_run(r, &rep); /* the outcome is in the log */
            config_report_fini(&rep);
        } else if (sig == SIGUSR1) {
            broker_log_status(b);
        } else {
            const char *name = sigabbrev_np(sig);
            if (name)
                log_info("SIG%s ignored (SIGINT, SIGTERM or SIGQUIT stop the broker)", name);
            else
                log_info("signal %d ignored (SIGINT, SIGTERM or SIGQUIT stop the broker)", sig);
        }
    }
}

/* --check-config: the file is valid; the admin API's token and TLS files
 * read and check; the plugins it names load and initialise with their
 * keys (then stop), so a wrong path or key shows before a restart. 0 or 1. */
static int check_config(const struct config *cfg, const char *path)
{
    char err[512];
    if (cfg->admin_enabled && admin_check(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringmqd: %s\n", err);
        return 1;
    }
    struct plugin_host *plugins = NULL;
    if (load_plugins(cfg, &plugins) < 0)
        return 1;
    plugin_host_destroy(plugins);
    printf("%s: configuration OK\n", path);
    return 0;
}

/* --inspect DIR: the report on stdout; the store's own log lines (the
 * same problems, as a start-up would log them) only for errors, on
 * stderr. 0 or 1. */
static int inspect(const char *dir)
{
    log_set_level(LOG_LEVEL_ERR);
    int rc = persist_inspect(dir, stdout);
    fflush(stdout);
    return rc == 0 ? 0 : 1;
}

/* Output buffers (a slow subscriber's unsent output, up to
 * max_client_output) come from the shards' malloc arenas, not from
 * mmap: while 1000 fresh subscribers' buffers filled, mmap, munmap and
 * the heap trim after every free (glibc's 128 KiB defaults) cost a page
 * fault per touched page and a TLB shootdown across the shards per
 * free, about 40% of the broker's time in that second (perf, issue 10).
 * Fixed thresholds also keep glibc from raising them on its own. The
 * memory still comes back: the heap gives its top back past 8 MiB, and
 * the shards ask malloc_trim for the rest once a burst is over
 * (serve.c). */
static void malloc_setup(void)
{
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
}

/* The command line. */
struct args {
    const char *path;
    const char *overrides[RINGMQ_MAX_OVERRIDES];
    size_t noverrides;
    bool check_only;
    bool salvage;
};

/* Read the command line into a: -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    const char *inspect_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if ((strcmp(o, "-c") == 0 || strcmp(o, "--config") == 0) && i + 1 < argc) {
            a->path = argv[++i];
        } else if (strcmp(o, "--set") == 0 && i + 1 < argc) {
            if (a->noverrides == RINGMQ_MAX_OVERRIDES) {
                fprintf(stderr, "ringmqd: too many --set options\n");
                return 2;
            }
            a->overrides[a->noverrides++] = argv[++i];
        } else if (strcmp(o, "--check-config") == 0) {
            a->check_only = true;
        } else if (strcmp(o, "--salvage") == 0) {
            a->salvage = true;
        } else if (strcmp(o, "--inspect") == 0 && i + 1 < argc) {
            inspect_dir = argv[++i];
        } else if (strcmp(o, "--version") == 0) {
            printf("ringmqd %s\n", RINGMQ_VERSION);
            return 0;
        } else if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ringmqd: unknown or incomplete option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (inspect_dir)
        return inspect(inspect_dir);
    if (!a->path) {
        fprintf(stderr, "ringmqd: no configuration file (-c FILE)\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Serve with cfg until a signal stops the broker: the exit status. */
static int serve(struct config *cfg, const struct args *a)
{
    /* Every thread started from here (shards, plugins, metrics) inherits
     * this mask; only the main thread takes signals, in sigwait. */
    sigset_t set;
    operator_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit reached is the store's EFBIG, which it reports and
     * survives (as a full disk), not the end of the process. */
    signal(SIGXFSZ, SIG_IGN);

    malloc_setup();
    log_info("ringmqd %s starting", RINGMQ_VERSION);
    struct plugin_host *plugins = NULL;
    if (load_plugins(cfg, &plugins) < 0)
        return 1;
    char err[512];
    struct persist *store = NULL;
    if (cfg->persist_enabled && !(store = persist_open(cfg, a->salvage, err, sizeof(err)))) {
        log_err("%s", err);
        plugin_host_destroy(plugins);
        return 1;
    }
    struct broker *b = NULL;
    if (broker_start(cfg, plugins, store ? persist_provider(store) : NULL, &b) < 0) {
        log_err("start-up failed");
        persist_close(store);
        plugin_host_destroy(plugins);
        return 1;
    }
    tell_manager("READY=1"); /* the listeners are open */
    struct reload r = {a->path, a->overrides, a->noverrides, cfg, NULL, b, plugins};
    pthread_mutex_init(&r.lock, NULL);
    broker_set_reload(b, reload_run, &r);
    int sig = wait_for_stop(&set, b, &r);
    log_info("SIG%s: shutting down", sigabbrev_np(sig));
    tell_manager("STOPPING=1");
    broker_stop(b);
    persist_close(store);
    reload_fini(&r);
    plugin_host_destroy(plugins);
    log_info("stopped");
    return 0;
}

static void print_error(void *arg, const char *text)
{
    (void)arg;
    fprintf(stderr, "ringmqd: %s\n", text);
}

/* The configuration at start-up (and for --check-config): every error of
 * it on stderr, one a line, then how many were not shown. 0 or -1. */
static int load_config(struct config *cfg, const struct args *a)
{
    size_t nerrors = 0;
    int rc =
        config_load_all(cfg, a->path, a->overrides, a->noverrides, print_error, NULL, &nerrors);
    if (rc == -ENOMEM)
        fprintf(stderr, "ringmqd: out of memory reading %s\n", a->path);
    else if (nerrors > CONFIG_MAX_ERRORS)
        fprintf(stderr, "ringmqd: %s: %zu more errors (the first %d are shown)\n", a->path,
                nerrors - CONFIG_MAX_ERRORS, CONFIG_MAX_ERRORS);
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    static struct args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    static struct config cfg;
    if (load_config(&cfg, &a) < 0)
        return 1;
    log_set_level(cfg.log_level);
    log_set_output(cfg.log_format, cfg.log_target);
    if (a.check_only)
        return check_config(&cfg, a.path);
    return serve(&cfg, &a);
}
