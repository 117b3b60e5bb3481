/*
 * idle_conns: open N idle MQTT 3.1.1 connections to a broker and report the
 * broker's resident memory per connection (VmRSS of --broker-pid, before
 * and after, divided by N).
 *
 * Plain blocking sockets spread over several child processes (each stays
 * under the per-process open-file limit) and several loopback source
 * addresses 127.0.0.2.. (so more than one address's ephemeral ports can be
 * used). Loopback only. Every child exits when the parent does.
 *
 *   idle_conns -p PORT -n 100000 --broker-pid PID [--per-proc 15000] [--hold S]
 */
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int open_one(int port, int src, int child, int i)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)src);
    /* Let connect() choose the port by the whole 4-tuple: binding port 0
     * first searches for a port free for every peer, which crawls once
     * tens of thousands are in use or in TIME_WAIT. */
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    char id[32];
    int idlen = snprintf(id, sizeof(id), "idle-%d-%d", child, i);
    /* CONNECT, MQTT 3.1.1, clean session, keepalive 0 (the test holds them
     * idle; a keepalive would need PINGREQs). */
    unsigned char pkt[64] = {
        0x10, (unsigned char)(12 + idlen), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0,
        0,    (unsigned char)idlen};
    memcpy(pkt + 14, id, (size_t)idlen);
    if (write(fd, pkt, 14 + (size_t)idlen) != 14 + idlen)
        goto fail;
    unsigned char ack[4];
    if (read(fd, ack, 4) != 4 || ack[0] != 0x20 || ack[3] != 0) {
        errno = EPROTO;
        goto fail;
    }
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

int main(int argc, char **argv)
{
    int port = 1883, n = 10000, per_proc = 15000, broker_pid = 0, hold = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-p"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--per-proc"))
            per_proc = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--broker-pid"))
            broker_pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hold"))
            hold = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    long before = broker_pid ? proc_rss_kib(broker_pid) : -1;
    int nproc = (n + per_proc - 1) / per_proc;
    int up[2];
    if (pipe(up) < 0)
        return 1;
    pid_t *kids = calloc((size_t)nproc, sizeof(*kids));
    if (!kids)
        return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int c = 0; c < nproc; c++) {
        int count = c == nproc - 1 ? n - c * per_proc : per_proc;
        pid_t pid = fork();
        kids[c] = pid;
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            close(up[0]);
            int ok = 0;
            for (int i = 0; i < count; i++) {
                /* 10000 connections per source address at most: connect()
                 * prefers even ephemeral ports, half the range. */
                int src = 2 + (c * per_proc + i) / 10000;
                int fd = open_one(port, src, c, i);
                if (fd < 0) {
                    fprintf(stderr, "child %d: connection %d: %s\n", c, i, strerror(-fd));
                    break;
                }
                ok++;
            }
            if (write(up[1], &ok, sizeof(ok)) != sizeof(ok))
                _exit(1);
            pause(); /* hold until the parent exits */
            _exit(0);
        }
    }
    close(up[1]);
    int total = 0, ok;
    for (int c = 0; c < nproc; c++)
        if (read(up[0], &ok, sizeof(ok)) == sizeof(ok))
            total += ok;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("connections: %d of %d in %.2f s (%.0f/s)\n", total, n, secs, total / secs);
    if (broker_pid) {
        long after = proc_rss_kib(broker_pid);
        printf("broker RSS: %ld KiB before, %ld KiB after, %.0f bytes per connection\n", before,
               after, total ? (after - before) * 1024.0 / total : 0.0);
    }
    fflush(stdout);
    if (hold)
        sleep((unsigned)hold);
    for (int c = 0; c < nproc; c++)
        if (kids[c] > 0)
            kill(kids[c], SIGTERM);
    free(kids);
    while (wait(NULL) > 0)
        ;
    return total == n ? 0 : 1;
}
