/*
 * persist/inspect: a data directory written through the log (store/log.h)
 * with records encoded by record.h, as a broker leaves it, then inspected
 * into a memory stream: the counts per tenant and per shard, the SNAPSHOT
 * start (what comes before it is checked, not counted), snapshot markers,
 * a retained topic put on one shard and cleared on another; a torn tail
 * reported with its file and offset and the file unchanged; a corrupt
 * record in the middle, and records at odds with each other, failing the
 * inspection with the file and the offset or record; no data.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "persist/inspect.h"
#include "persist/record.h"
#include "session/msg.h"
#include "session/session.h"
#include "store/log.h"
#include "tenant/tenant.h"

#define WALL_BASE 1700000000000ull
#define GEN       "gen-00000002"

static char dir[64];
static char gen_dir[128];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void dir_make(void)
{
    snprintf(dir, sizeof(dir), "/tmp/inspect-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(gen_dir, sizeof(gen_dir), "%s/" GEN, dir);
}

static void dir_remove(void)
{
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(inspect, .init = dir_make, .fini = dir_remove);

static void file_put(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static uint8_t *file_get(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return p;
}

static const char *seg(uint32_t shard)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/shard-%04" PRIu32 "/log-%020d.rlog", gen_dir, shard, 1);
    return path;
}

/* ---- a writer: record.h's encoders into one shard's log ---- */

struct wlog {
    struct rlog *log;
    uint8_t *scratch;
};

static uint8_t *w_reserve(void *ctx, size_t len)
{
    struct wlog *w = ctx;
    free(w->scratch);
    w->scratch = malloc(len ? len : 1);
    return w->scratch;
}

static void w_commit(void *ctx, uint8_t type, size_t len)
{
    struct wlog *w = ctx;
    cr_assert_eq(rlog_append(w->log, type, w->scratch, (uint32_t)len, NULL), 0);
}

/* Sessions numbered by the order they were first written (record.h). */
static uint32_t w_number(void *ctx, const struct tenant *t, const struct session_state *st)
{
    static const void *seen[64][2];
    static uint32_t n;
    (void)ctx;
    for (uint32_t i = 0; i < n; i++)
        if (seen[i][0] == t && seen[i][1] == st)
            return i + 1;
    cr_assert_lt(n, 64);
    seen[n][0] = t;
    seen[n++][1] = st;
    return n;
}

static struct wlog wlog;
static struct record_writer rw = {w_reserve, w_commit, &wlog, 1000, WALL_BASE, w_number};

static void shard_open(uint32_t shard)
{
    struct rlog_config cfg = {.dir = gen_dir, .shard = shard};
    cr_assert_eq(rlog_open(&cfg, NULL, &wlog.log), 0);
}

/* The turn so far, flushed: the segment's size after it. */
static size_t turn_end(uint32_t shard)
{
    cr_assert_eq(rlog_flush(wlog.log), 0);
    struct stat st;
    cr_assert_eq(stat(seg(shard), &st), 0);
    return (size_t)st.st_size;
}

static void shard_close(void)
{
    rlog_close(wlog.log);
    free(wlog.scratch);
    wlog = (struct wlog){0};
}

static void marker(uint8_t type)
{
    static const uint8_t none[1];
    cr_assert_eq(rlog_append(wlog.log, type, none, 0, NULL), 0);
}

static struct msg *msg_make(const char *topic, const char *payload, uint64_t stamp)
{
    struct msg_spec sp = {
        .topic = (const uint8_t *)topic,
        .topic_len = strlen(topic),
        .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload),
        .qos = 1,
        .retain = stamp != 0,
    };
    struct msg *m = msg_create(&sp);
    cr_assert_not_null(m);
    m->retain_stamp = stamp;
    return m;
}

static struct sess_sub *sub_make(const char *filter, uint8_t qos)
{
    size_t len = strlen(filter);
    struct sess_sub *s = calloc(1, sizeof(*s) + len);
    s->qos = qos;
    s->len = (uint16_t)len;
    memcpy(s->filter, filter, len);
    return s;
}

static struct tenant ta = {.name = "global", .name_len = 6}, tb = {.name = "t2", .name_len = 2};

static struct session_state session(const char *client_id)
{
    return (struct session_state){
        .client_id = (uint8_t *)client_id,
        .client_id_len = (uint16_t)strlen(client_id),
        .expiry_s = 3600,
    };
}

static size_t qbytes;  /* what global/dev-1 has queued */
static size_t ends[2]; /* shard 0's segment after turns 1 and 2 */

/* Shard 0: global/dev-1 with two subscriptions, three messages queued and
 * one sent on, one in flight, one inbound QoS 2 id; retained global r/1
 * and t2 r/2 (turn 1); then t2/c-2 (turn 2). */
static void shard0(void)
{
    shard_open(0);
    struct session_state dev = session("dev-1");
    cr_assert_eq(record_session_put(&rw, &ta, &dev), 0);
    struct sess_sub *subs[] = {sub_make("a/#", 1), sub_make("b/+", 2)};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(record_sub_put(&rw, &ta, &dev, subs[i]), 0);
        free(subs[i]);
    }
    struct msg *q[] = {msg_make("a/1", "one", 0), msg_make("a/2", "two!", 0),
                       msg_make("b/c", "three", 0)};
    for (int i = 0; i < 3; i++) {
        struct qentry e = {.m = q[i], .qos = 1};
        cr_assert_eq(record_queue_push(&rw, &ta, &dev, &e), 0);
    }
    cr_assert_eq(record_queue_pop(&rw, &ta, &dev), 0);
    qbytes = msg_size(q[1]) + msg_size(q[2]);
    struct inflight f = {.m = q[0], .pid = 7, .qos = 2, .state = INFL_WAIT_ACK};
    cr_assert_eq(record_infl_put(&rw, &ta, &dev, &f), 0);
    cr_assert_eq(record_pid(&rw, RECORD_QOS2_ADD, &ta, &dev, 9), 0);
    struct msg *r1 = msg_make("r/1", "x", 10), *r2 = msg_make("r/2", "y", 11);
    cr_assert_eq(record_retained(&rw, RECORD_RETAINED_PUT, &ta, r1), 0);
    cr_assert_eq(record_retained(&rw, RECORD_RETAINED_PUT, &tb, r2), 0);
    ends[0] = turn_end(0);
    struct session_state c2 = session("c-2");
    cr_assert_eq(record_session_put(&rw, &tb, &c2), 0);
    ends[1] = turn_end(0);
    shard_close();
    for (int i = 0; i < 3; i++)
        msg_release(q[i]);
    msg_release(r1);
    msg_release(r2);
}

/* Shard 1: t2/old with a queued message (turn 1), then a snapshot from
 * record 3: t2/dev-9 with a subscription, global r/1 cleared with a later
 * stamp than shard 0's put, t2 r/3 (turn 2). */
static void shard1(void)
{
    shard_open(1);
    struct session_state old = session("old");
    cr_assert_eq(record_session_put(&rw, &tb, &old), 0);
    struct msg *m = msg_make("o", "gone", 0);
    struct qentry e = {.m = m, .qos = 1};
    cr_assert_eq(record_queue_push(&rw, &tb, &old, &e), 0);
    turn_end(1);
    marker(RECORD_SNAP_BEGIN);
    struct session_state dev = session("dev-9");
    cr_assert_eq(record_session_put(&rw, &tb, &dev), 0);
    struct sess_sub *sub = sub_make("c", 0);
    cr_assert_eq(record_sub_put(&rw, &tb, &dev, sub), 0);
    free(sub);
    struct msg *clear = msg_make("r/1", "", 12), *r3 = msg_make("r/3", "z", 5);
    cr_assert_eq(record_retained(&rw, RECORD_RETAINED_CLEAR, &ta, clear), 0);
    cr_assert_eq(record_retained(&rw, RECORD_RETAINED_PUT, &tb, r3), 0);
    marker(RECORD_SNAP_END);
    turn_end(1);
    shard_close();
    char path[256];
    snprintf(path, sizeof(path), "%s/shard-0001/SNAPSHOT", gen_dir);
    file_put(path, "3\n", 2);
    msg_release(m);
    msg_release(clear);
    msg_release(r3);
}

static void build(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    file_put(path, GEN "\n", strlen(GEN) + 1);
    shard0();
    shard1();
}

/* persist_inspect(dir) into *text (the caller frees it); its result. */
static int inspect(char **text)
{
    size_t n;
    FILE *f = open_memstream(text, &n);
    cr_assert_not_null(f);
    int rc = persist_inspect(dir, f);
    fclose(f);
    return rc;
}

static void has(const char *text, const char *want)
{
    cr_assert_not_null(strstr(text, want), "\"%s\" not in:\n%s", want, text);
}

Test(inspect, counts_per_tenant_and_shard_from_the_snapshot_on)
{
    build();
    char *text, want[512];
    cr_assert_eq(inspect(&text), 0, "%s", text);
    has(text, "generation in force: " GEN);
    snprintf(want, sizeof(want),
             "tenant global: 1 sessions, 2 subscriptions, 2 queued messages (%zu bytes), 1 in "
             "flight, 1 QoS 2 ids awaiting PUBREL, 0 retained topics",
             qbytes);
    has(text, want);
    has(text, "tenant t2: 2 sessions, 1 subscriptions, 0 queued messages (0 bytes), 0 in flight, "
              "0 QoS 2 ids awaiting PUBREL, 2 retained topics");
    has(text, "total, 2 tenants: 3 sessions, 3 subscriptions, 2 queued");
    snprintf(want, sizeof(want),
             "shard 0: 1 segment, %zu bytes; no SNAPSHOT; records 1..12 (12), 12 replayed; "
             "2 sessions\n",
             ends[1]);
    has(text, want);
    has(text, "shard 1: 1 segment, ");
    has(text, "; SNAPSHOT: from record 3; records 1..8 (8), 6 replayed; 1 session\n");
    has(text, "OK: every checksum verifies");
    free(text);
}

Test(inspect, a_torn_tail_is_reported_and_the_file_is_unchanged)
{
    build();
    size_t size;
    uint8_t *p = file_get(seg(0), &size);
    cr_assert_eq(size, ends[1]);
    file_put(seg(0), p, size - 5); /* turn 2 cut short by a crash */
    char *text, want[512];
    cr_assert_eq(inspect(&text), 0, "a torn tail is no failure: %s", text);
    snprintf(want, sizeof(want), "warning: %s: torn tail at offset %zu, %zu bytes", seg(0), ends[0],
             size - 5 - ends[0]);
    has(text, want);
    has(text, "tenant t2: 1 sessions"); /* c-2 was in the torn turn */
    has(text, "OK: every checksum verifies");
    size_t after;
    uint8_t *q = file_get(seg(0), &after);
    cr_assert_eq(after, size - 5, "the torn tail was cut");
    cr_assert_eq(memcmp(p, q, after), 0);
    free(p);
    free(q);
    free(text);
}

Test(inspect, a_corrupt_record_in_the_middle_fails_naming_file_and_offset)
{
    build();
    size_t size;
    uint8_t *p = file_get(seg(0), &size);
    size_t frame1 = 40;         /* after the file header */
    p[frame1 + 32 + 4] ^= 0x04; /* inside the first record: a later turn follows */
    file_put(seg(0), p, size);
    char *text, want[512];
    cr_assert_eq(inspect(&text), -EBADMSG, "%s", text);
    /* One checksum covers the frame's records: the frame is named. */
    snprintf(want, sizeof(want), "error: %s: offset %zu: ", seg(0), frame1);
    has(text, want);
    has(text, "FAILED: 1 problem");
    size_t after;
    uint8_t *q = file_get(seg(0), &after);
    cr_assert(after == size && memcmp(p, q, size) == 0, "the file changed");
    free(p);
    free(q);
    free(text);
}

Test(inspect, records_at_odds_fail_naming_the_record)
{
    build();
    shard_open(2);
    struct session_state ghost = session("ghost");
    cr_assert_eq(record_pid(&rw, RECORD_QOS2_ADD, &ta, &ghost, 3), 0);
    turn_end(2);
    shard_close();
    char *text, want[512];
    cr_assert_eq(inspect(&text), -EBADMSG, "%s", text);
    snprintf(want, sizeof(want), "error: %s: record 1: ", seg(2));
    has(text, want);
    has(text, "never put");
    free(text);
}

Test(inspect, no_current_is_no_data_when_empty_and_an_error_otherwise)
{
    char *text;
    cr_assert_eq(inspect(&text), 0);
    has(text, "no data");
    free(text);
    char path[128];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    file_put(path, "", 0);
    cr_assert_eq(inspect(&text), 0, "a LOCK only: a broker that never wrote");
    has(text, "no data");
    free(text);
    cr_assert_eq(mkdir(gen_dir, 0755), 0);
    cr_assert_eq(inspect(&text), -EBADMSG);
    has(text, "no CURRENT, yet it holds " GEN);
    free(text);
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_eq(inspect(&text), 0, "a missing directory");
    has(text, "no data (no such directory)");
    free(text);
    cr_assert_eq(mkdir(dir, 0700), 0); /* for the fini */
}
