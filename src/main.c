/*
 * ringmqd: command line, configuration, signals. Composes the layers and
 * owns nothing else: the broker runs in its shard threads while the main
 * thread waits for SIGINT/SIGTERM.
 *
 * Exit status: 0 after a clean shutdown or a valid --check-config, 1 when
 * the configuration is invalid or start-up failed, 2 for usage errors.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "config/config.h"
#include "core/log.h"

#define RINGMQ_MAX_OVERRIDES 256

static void usage(FILE *f)
{
    fprintf(f, "usage: ringmqd -c FILE [--set section.key=value]... [--check-config]\n"
               "       ringmqd --version | --help\n"
               "\n"
               "  -c, --config FILE   configuration file (see conf/ringmq.ini)\n"
               "  --set S.K=V         override key K of section S (repeatable),\n"
               "                      e.g. --set listener.default.port=0\n"
               "  --check-config      validate the configuration and exit 0 or 1\n"
               "  --version           print the version\n"
               "  --help              print this help\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    const char *overrides[RINGMQ_MAX_OVERRIDES];
    size_t noverrides = 0;
    int check_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(a, "--set") == 0 && i + 1 < argc) {
            if (noverrides == RINGMQ_MAX_OVERRIDES) {
                fprintf(stderr, "ringmqd: too many --set options\n");
                return 2;
            }
            overrides[noverrides++] = argv[++i];
        } else if (strcmp(a, "--check-config") == 0) {
            check_only = 1;
        } else if (strcmp(a, "--version") == 0) {
            printf("ringmqd %s\n", RINGMQ_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ringmqd: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "ringmqd: no configuration file (-c FILE)\n");
        usage(stderr);
        return 2;
    }

    static struct config cfg;
    char err[512];
    if (config_load(&cfg, path, overrides, noverrides, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringmqd: %s\n", err);
        return 1;
    }
    if (check_only) {
        printf("%s: configuration OK\n", path);
        return 0;
    }
    log_set_level(cfg.log_level);

    /* Shard threads inherit this mask; only the main thread takes signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_info("ringmqd %s starting", RINGMQ_VERSION);
    struct broker *b = NULL;
    if (broker_start(&cfg, &b) < 0) {
        log_err("start-up failed");
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    broker_stop(b);
    log_info("stopped");
    return 0;
}
