/* The store on a full disk (issue 13): the data directory lives on a
 * tmpfs of 256 KiB which a file fills. New durable work is then refused
 * with the MQTT outcome for it (PUBACK 0x97, CONNACK 0x97) or, for what was
 * in flight when the write failed, by closing the connection: never a
 * PUBACK 0x00 for a message the disk does not hold. The metrics say so;
 * once the file is gone the broker takes durable work again, and after a
 * restart every message it acknowledged is there. Needs mount(2) for the
 * tmpfs (root where tmpfs mounts are allowed): skipped otherwise. ringmqd
 * only. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "harness.h"
#include "harness_v5.h"

static struct broker b;
static struct pkt p;
static struct v5_pkt pk;
static char mnt[64];

/* A 256 KiB tmpfs at mnt; false (errno set) when it cannot be mounted. */
static bool mount_small(void)
{
    snprintf(mnt, sizeof(mnt), "/tmp/ringmq-full-XXXXXX");
    if (!mkdtemp(mnt))
        return false;
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k") == 0)
        return true;
    int e = errno;
    rmdir(mnt);
    mnt[0] = '\0';
    errno = e;
    return false;
}

/* After the test, passed or not (an assertion ends it early). */
static void unmount_small(void)
{
    if (!mnt[0])
        return;
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    mnt[0] = '\0';
}

/* Take every free byte of the tmpfs with a file. */
static void fill(void)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/filler", mnt);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    static char block[4096];
    while (write(fd, block, sizeof(block)) > 0) {
    }
    close(fd);
}

static void unfill(void)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/filler", mnt);
    cr_assert(unlink(path) == 0);
}

/* ringmq_store_<name>{shard=...} summed over the shards (4 at most). */
static long store_metric(const char *name)
{
    char *body = metrics_scrape(broker_metrics_port(&b));
    long sum = 0;
    for (int i = 0; i < 4; i++) {
        char key[96];
        snprintf(key, sizeof(key), "ringmq_store_%s{shard=\"%d\"}", name, i);
        long v = metrics_sample(body, key);
        if (v > 0)
            sum += v;
    }
    free(body);
    return sum;
}

static int open_keeper(bool clean)
{
    struct props pr;
    props_init(&pr);
    props_u32(&pr, P_SESSION_EXPIRY, 600);
    struct raw_connect o = {.flags = -1, .clean = clean, .keepalive = 60, .id = "keeper"};
    int fd = v5_connect(&b, &o, &pr, NULL, &pk);
    cr_assert(pk.type == T_CONNACK && pk.reason == 0);
    return fd;
}

/* Publish "m<i>" at QoS 1 on a connection of its own: 0x00 acknowledged,
 * another code refused, -1 the connection closed unanswered. */
static int publish_one(int i)
{
    int fd = v5_open(&b, "pub", NULL);
    /* 1 KiB each: 40 of them cannot all fit in what the log's last page
     * had left when the filler took the rest (a record is ~40 bytes plus
     * its payload). */
    static char payload[1024];
    memset(payload, ' ', sizeof(payload));
    int k = snprintf(payload, sizeof(payload), "m%d", i);
    payload[k] = ' ';
    pkt_publish5(&p, "full/t", payload, sizeof(payload), 1, false, (uint16_t)(i + 1), NULL);
    cr_assert(raw_send_pkt(fd, &p) == 0);
    int n = v5_read(fd, &pk, E2E_WAIT_MS);
    int outcome = n > 0 && pk.type == T_PUBACK ? pk.reason : -1;
    close(fd);
    return outcome;
}

/* While the disk is full: refusals, and what was acknowledged. The first
 * refusal may be a closed connection (its PUBLISH was taken, and the write
 * it waited for failed); once a shard knows its log cannot be written,
 * every later publish is answered PUBACK 0x97 at once, on every shard
 * (MQTT 5.0 3.4.2.1: 0x97 Quota exceeded / implementation specific), also
 * where the subscriber's shard is not the publisher's. */
static int while_full(bool *acked, int n)
{
    int refused = 0;
    for (int i = 0; i < n; i++) {
        int r = publish_one(i);
        acked[i] = r == 0x00;
        if (refused)
            cr_assert_eq(r, 0x97, "publish %d after a refusal: %d, not PUBACK 0x97", i, r);
        refused += r != 0x00;
    }
    return refused;
}

Test(diskfull, durable_work_refused_while_full_and_taken_again, .fini = unmount_small)
{
    if (e2e_mosquitto())
        cr_skip_test("ringmqd only");
    if (!mount_small())
        cr_skip_test("cannot mount a tmpfs here (%s)", strerror(errno));
    char set_dir[96];
    snprintf(set_dir, sizeof(set_dir), "persistence.dir=%s/data", mnt);
    broker_start(&b, "persistence.enabled=true", set_dir, "metrics.enabled=true", "metrics.port=0",
                 NULL);
    int keeper = open_keeper(true);
    v5_subscribe(keeper, 1, "full/#", 1, NULL, 1);
    v5_disconnect(keeper, 0, NULL); /* offline: the messages queue, on disk */
    fill();
    enum { N = 40 };
    bool acked[N];
    int refused = while_full(acked, N);
    cr_assert(refused > 0, "every publish acknowledged on a full disk");
    cr_assert(store_metric("failing") >= 1, "ringmq_store_failing not set");
    cr_assert(store_metric("errors_total") >= 1);
    {
        /* A new kept session is refused (5.0: 0x97) on whichever shard is
         * its home: every shard's log is on the full disk. */
        struct props pr;
        props_init(&pr);
        props_u32(&pr, P_SESSION_EXPIRY, 600);
        struct raw_connect o = {.flags = -1, .clean = true, .keepalive = 60, .id = "new"};
        int fd = v5_connect(&b, &o, &pr, NULL, &pk);
        cr_assert(pk.type == T_CONNACK && pk.reason == 0x97, "CONNACK %#x", pk.reason);
        close(fd);
    }
    unfill();
    /* Space is back: within the retry (100 ms) and a few turns, durable
     * work is taken again. */
    int r = 0x97;
    for (int i = 0; i < 50 && r != 0x00; i++) {
        r = publish_one(N);
        if (r != 0x00)
            usleep(100 * 1000);
    }
    cr_assert_eq(r, 0x00, "still refused once space came back");
    cr_assert_eq(store_metric("failing"), 0);
    broker_stop(&b);

    /* Every message acknowledged while the disk was full (and the one after)
     * is there after a restart. */
    broker_start(&b, "persistence.enabled=true", set_dir, NULL);
    keeper = open_keeper(false);
    cr_assert(pk.session_present, "MQTT-3.2.2-2: the session is kept");
    bool got[N + 1] = {false};
    while (v5_read(keeper, &pk, E2E_ABSENT_MS * 3) > 0) {
        if (pk.type != T_PUBLISH)
            continue;
        char text[16] = "";
        memcpy(text, pk.payload, pk.len < sizeof(text) - 1 ? pk.len : sizeof(text) - 1);
        int i = -1;
        if (sscanf(text, "m%d", &i) == 1 && i >= 0 && i <= N)
            got[i] = true;
        if (pk.qos) {
            pkt_ack5(&p, 0x40, pk.mid, 0, NULL);
            cr_assert(raw_send_pkt(keeper, &p) == 0);
        }
    }
    for (int i = 0; i < N; i++)
        cr_assert(!acked[i] || got[i], "m%d acknowledged on a full disk, then lost", i);
    cr_assert(got[N], "the message acknowledged after space came back is lost");
    close(keeper);
    broker_stop(&b);
}
