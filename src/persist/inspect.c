/*
 * inspect: ringmqd --inspect (inspect.h). Reads a data directory through
 * the store's read-only replay (RLOG_READONLY: nothing is cut or removed)
 * and rebuilds its state with replay.h, only to count it: every session
 * and retained message handed back is counted and freed at once.
 *
 * Owns nothing past the call; one thread; writes to `out` only (the
 * store's own log lines still go to the logger).
 */
#include "persist/inspect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "persist/record.h"
#include "persist/replay.h"
#include "session/msg.h"
#include "session/session.h"
#include "session/store.h"
#include "store/log.h"

enum { PATH_LEN = 4096, NAME_LEN = 256 };

/* What one tenant holds, summed over the shards. */
struct tstat {
    char *name;
    size_t len;
    uint64_t sessions, subs, queued, qbytes, inflight, qos2, retained;
};

struct inspection {
    FILE *out;
    const char *dir;
    char gen[NAME_LEN];     /* the generation in force, "gen-NNNNNNNN" */
    char gen_dir[PATH_LEN]; /* dir/gen */
    struct replay_opts opts;
    struct replay *retained; /* every shard's retained records: their stamps order them */
    struct tstat *tenants;   /* indexed by the ids tenant_index gives */
    uint32_t ntenants, tenants_cap;
    uint64_t problems;
    int rc; /* the first failure */
};

/* One shard's log and what its records rebuild. */
struct shard_scan {
    struct inspection *in;
    uint32_t shard;
    char dir[PATH_LEN]; /* gen_dir/shard-NNNN */
    uint64_t *segs;     /* the segments' first sequence numbers, ascending */
    size_t nsegs;
    uint64_t bytes;
    uint64_t snap; /* the state is rebuilt from here: SNAPSHOT, or 1 */
    bool has_snap;
    struct replay *state;
    uint64_t records, applied, last_seq;
    uint32_t sessions;
    uint64_t bad_seq; /* the first record at odds with those before it, 0: none */
    char why[256];
};

__attribute__((format(printf, 3, 4))) static void problem(struct inspection *in, int rc,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", in->out);
    vfprintf(in->out, fmt, ap);
    fputc('\n', in->out);
    va_end(ap);
    in->problems++;
    if (in->rc == 0)
        in->rc = rc;
}

/* ---- reading the directory ---- */

/* A path into buf[PATH_LEN]: 0, or -ENAMETOOLONG (buf holds it cut). */
__attribute__((format(printf, 2, 3))) static int path_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, PATH_LEN, fmt, ap);
    va_end(ap);
    return n >= 0 && n < PATH_LEN ? 0 : -ENAMETOOLONG;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* name is prefix, the number printed %0*, then suffix, exactly as the
 * store names what it writes: 1 and *v; else 0. */
static int name_number(const char *name, const char *prefix, int width, const char *suffix,
                       uint64_t *v)
{
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || name[pl] < '0' || name[pl] > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(name + pl, &end, 10);
    if (errno || strcmp(end, suffix) != 0)
        return 0;
    char canon[NAME_LEN];
    snprintf(canon, sizeof(canon), "%s%0*llu%s", prefix, width, n, suffix);
    if (strcmp(canon, name) != 0)
        return 0;
    *v = n;
    return 1;
}

/* The numbers of dir's entries named as name_number says, ascending, in
 * *out (malloc'd; NULL when none, also when dir does not exist), and
 * their sizes summed in *bytes (may be NULL). 0 or -errno. */
static int list_numbered(const char *dir, const char *prefix, int width, const char *suffix,
                         uint64_t **out, size_t *n, uint64_t *bytes)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d))) {
        uint64_t v;
        if (!name_number(e->d_name, prefix, width, suffix, &v))
            continue;
        if (*n == cap) {
            uint64_t *p = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            *out = p;
        }
        (*out)[(*n)++] = v;
        if (bytes && fstatat(dirfd(d), e->d_name, &st, 0) == 0)
            *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n)
        qsort(*out, *n, sizeof(**out), cmp_u64);
    return 0;
}

/* A small text file, NUL-terminated, into buf: its length or -errno
 * (-EFBIG when it does not fit). */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    if ((size_t)n == size)
        return -EFBIG;
    buf[n] = '\0';
    return n;
}

/* A decimal number with at most a newline after it: 0 and *v, or -EBADMSG. */
static int parse_u64(const char *s, uint64_t *v)
{
    if (*s < '0' || *s > '9')
        return -EBADMSG;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || (strcmp(end, "") != 0 && strcmp(end, "\n") != 0))
        return -EBADMSG;
    *v = n;
    return 0;
}

/* ---- counting what a replay hands back ---- */

/* The sink has no argument of its own (it is the shard's side, given the
 * shard): the inspection whose replay_finish is running. */
static _Thread_local struct inspection *counting;

static int count_session(struct shard *s, uint16_t tenant, struct session_state *st)
{
    (void)s;
    struct tstat *t = &counting->tenants[tenant];
    t->sessions++;
    t->subs += st->nsubs;
    t->queued += st->qlen;
    t->qbytes += st->qbytes;
    t->inflight += st->ninfl;
    t->qos2 += st->nqos2;
    replay_state_fini(st);
    return 0;
}

static int count_retained(struct shard *s, uint16_t tenant, struct msg *m)
{
    (void)s;
    counting->tenants[tenant].retained++;
    msg_release(m);
    return 0;
}

static const struct store_sink count_sink = {count_session, count_retained};

/* Tenants are numbered in the order they are first named. */
static int tenant_index(void *ctx, const char *name, size_t len)
{
    struct inspection *in = ctx;
    for (uint32_t i = 0; i < in->ntenants; i++)
        if (in->tenants[i].len == len && memcmp(in->tenants[i].name, name, len) == 0)
            return (int)i;
    if (in->ntenants > UINT16_MAX)
        return -ENOSPC;
    if (in->ntenants == in->tenants_cap) {
        uint32_t cap = in->tenants_cap ? 2 * in->tenants_cap : 8;
        struct tstat *p = realloc(in->tenants, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        in->tenants = p;
        in->tenants_cap = cap;
    }
    struct tstat *t = &in->tenants[in->ntenants];
    *t = (struct tstat){.name = malloc(len + 1), .len = len};
    if (!t->name)
        return -ENOMEM;
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    return (int)in->ntenants++;
}

static int count_state(struct inspection *in, struct replay *r)
{
    counting = in;
    int rc = replay_finish(r, NULL, &count_sink, tenant_index, in);
    counting = NULL;
    return rc;
}

/* ---- one shard ---- */

/* For a report: a path cut short still names the place. */
static void seg_path(const struct shard_scan *sc, uint64_t first, char *buf)
{
    (void)path_fmt(buf, "%s/log-%020" PRIu64 ".rlog", sc->dir, first);
}

/* The segment holding record seq. */
static uint64_t seg_of(const struct shard_scan *sc, uint64_t seq)
{
    uint64_t first = sc->nsegs ? sc->segs[0] : 0;
    for (size_t i = 0; i < sc->nsegs && sc->segs[i] <= seq; i++)
        first = sc->segs[i];
    return first;
}

static int on_record(void *arg, const struct rlog_record *r)
{
    struct shard_scan *sc = arg;
    sc->records++;
    if (r->seq < sc->snap || sc->bad_seq)
        return 0; /* covered by the snapshot; or the story broke already */
    sc->applied++;
    int rc;
    if (r->type == RECORD_SNAP_BEGIN || r->type == RECORD_SNAP_END) {
        struct record rec; /* markers: no state, an empty body */
        rc = record_decode(r->format, r->type, r->payload, r->len, &rec);
        if (rc == -EBADMSG)
            snprintf(sc->why, sizeof(sc->why), "a snapshot marker with a body (%" PRIu32 " bytes)",
                     r->len);
    } else {
        bool retained = r->type == RECORD_RETAINED_PUT || r->type == RECORD_RETAINED_CLEAR;
        struct replay *to = retained ? sc->in->retained : sc->state;
        rc = replay_apply(to, r->format, r->type, r->payload, r->len);
        if (rc == -EBADMSG)
            snprintf(sc->why, sizeof(sc->why), "%s", replay_error(to));
    }
    if (rc == -EBADMSG) {
        sc->bad_seq = r->seq; /* reported after the replay; the checksums go on */
        return 0;
    }
    return rc;
}

/* SNAPSHOT, if any, into sc->snap. 0 or -errno (reported). */
static int snapshot_read(struct shard_scan *sc)
{
    char path[PATH_LEN], text[32];
    sc->snap = 1;
    ssize_t n = path_fmt(path, "%s/SNAPSHOT", sc->dir);
    if (n == 0)
        n = read_small(path, text, sizeof(text));
    if (n == -ENOENT)
        return 0;
    if (n < 0) {
        problem(sc->in, (int)n, "%s: cannot read: %s", path, strerror((int)-n));
        return (int)n;
    }
    if (parse_u64(text, &sc->snap) < 0 || sc->snap == 0) {
        problem(sc->in, -EBADMSG, "%s: not a record number", path);
        return -EBADMSG;
    }
    sc->has_snap = true;
    return 0;
}

static void report_torn(struct shard_scan *sc, const struct rlog_recovery *rec)
{
    char path[PATH_LEN];
    seg_path(sc, rec->torn_segment, path);
    if (rec->torn_offset == 0)
        fprintf(sc->in->out,
                "warning: %s: %" PRIu64 " bytes, shorter than its header: a torn creation "
                "(a crash; the broker removes it at start-up)\n",
                path, rec->torn_bytes);
    else
        fprintf(sc->in->out,
                "warning: %s: torn tail at offset %" PRIu64 ", %" PRIu64 " bytes (the last "
                "flush, cut short by a crash, was never acknowledged; the broker cuts it at "
                "start-up)\n",
                path, rec->torn_offset, rec->torn_bytes);
}

static void report_damage(struct shard_scan *sc, const struct rlog_recovery *rec, int rc)
{
    if (rec->bad_segment == 0) {
        problem(sc->in, rc, "%s: cannot read the log: %s", sc->dir, strerror(-rc));
        return;
    }
    char path[PATH_LEN];
    seg_path(sc, rec->bad_segment, path);
    const char *what = rc == -EPROTO            ? "not a ringmq log segment (unknown magic)"
                       : rc == -EPROTONOSUPPORT ? "a log format this build does not read"
                       : rec->bad_offset        ? "a frame or record whose checksum or sequence "
                                                  "number does not verify"
                                                : "an unusable file header, or records missing "
                                                  "before this file";
    problem(sc->in, rc, "%s: offset %" PRIu64 ": %s", path, rec->bad_offset, what);
}

/* Read the whole log, every checksum; rebuild the state from sc->snap. */
static void shard_replay(struct shard_scan *sc)
{
    struct inspection *in = sc->in;
    uint64_t from = sc->nsegs ? sc->segs[0] : 1;
    if (sc->has_snap && sc->snap < from)
        problem(in, -EBADMSG,
                "%s/SNAPSHOT: the snapshot starts at record %" PRIu64 ", the log at %" PRIu64
                ": records are missing",
                sc->dir, sc->snap, from);
    struct rlog_config cfg = {.dir = in->gen_dir, .shard = sc->shard};
    struct rlog_recovery rec;
    int rc = rlog_replay(&cfg, from, RLOG_READONLY, on_record, sc, &rec);
    sc->last_seq = rec.last_seq;
    if (rec.torn_segment)
        report_torn(sc, &rec);
    if (rc) {
        report_damage(sc, &rec, rc);
        return;
    }
    if (sc->has_snap && sc->snap > rec.last_seq + 1)
        problem(in, -EBADMSG,
                "%s/SNAPSHOT: the snapshot starts at record %" PRIu64
                ", after the log's last (%" PRIu64 ")",
                sc->dir, sc->snap, rec.last_seq);
    if (sc->bad_seq) {
        char path[PATH_LEN];
        seg_path(sc, seg_of(sc, sc->bad_seq), path);
        problem(in, -EBADMSG, "%s: record %" PRIu64 ": %s", path, sc->bad_seq, sc->why);
        return;
    }
    sc->sessions = replay_sessions(sc->state);
    rc = count_state(in, sc->state);
    if (rc < 0)
        problem(in, rc, "%s: counting the state: %s", sc->dir, strerror(-rc));
}

static void shard_report(const struct shard_scan *sc)
{
    FILE *out = sc->in->out;
    fprintf(out, "shard %" PRIu32 ": %zu segment%s, %" PRIu64 " bytes", sc->shard, sc->nsegs,
            sc->nsegs == 1 ? "" : "s", sc->bytes);
    if (sc->has_snap)
        fprintf(out, "; SNAPSHOT: from record %" PRIu64, sc->snap);
    else
        fprintf(out, "; no SNAPSHOT");
    if (sc->records)
        fprintf(out, "; records %" PRIu64 "..%" PRIu64 " (%" PRIu64 "), %" PRIu64 " replayed",
                sc->last_seq - sc->records + 1, sc->last_seq, sc->records, sc->applied);
    else
        fprintf(out, "; no records");
    fprintf(out, "; %" PRIu32 " session%s\n", sc->sessions, sc->sessions == 1 ? "" : "s");
}

static void shard_inspect(struct inspection *in, uint32_t shard)
{
    struct shard_scan sc = {.in = in, .shard = shard};
    int rc = path_fmt(sc.dir, "%s/shard-%04" PRIu32, in->gen_dir, shard);
    if (rc == 0)
        rc = list_numbered(sc.dir, "log-", 20, ".rlog", &sc.segs, &sc.nsegs, &sc.bytes);
    if (rc < 0) {
        problem(in, rc, "%s: cannot list: %s", sc.dir, strerror(-rc));
        return;
    }
    if (snapshot_read(&sc) == 0) {
        sc.state = replay_create(&in->opts);
        if (sc.state)
            shard_replay(&sc);
        else
            problem(in, -ENOMEM, "%s: out of memory", sc.dir);
    }
    shard_report(&sc);
    replay_destroy(sc.state);
    free(sc.segs);
}

/* ---- the directory ---- */

/* No CURRENT: no data when dir is missing or holds at most a LOCK (a
 * broker that never wrote); anything else is not what a broker leaves. */
static int no_current(struct inspection *in)
{
    DIR *d = opendir(in->dir);
    if (!d && errno == ENOENT) {
        fprintf(in->out, "%s: no data (no such directory)\n", in->dir);
        return 0;
    }
    if (!d) {
        problem(in, -errno, "%s: %s", in->dir, strerror(errno));
        return in->rc;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, "LOCK") == 0)
            continue;
        problem(in, -EBADMSG,
                "%s: no CURRENT, yet it holds %s: not a data directory, or one "
                "whose first start-up did not finish",
                in->dir, n);
        break;
    }
    closedir(d);
    if (in->rc == 0)
        fprintf(in->out, "%s: no data\n", in->dir);
    return in->rc;
}

/* CURRENT into in->gen and in->gen_dir: 0; 1 when there is none; else
 * -errno (reported). */
static int current_read(struct inspection *in)
{
    char path[PATH_LEN];
    ssize_t n = path_fmt(path, "%s/CURRENT", in->dir);
    if (n == 0)
        n = read_small(path, in->gen, sizeof(in->gen));
    if (n == -ENOENT || n == -ENOTDIR)
        return 1;
    if (n < 0) {
        problem(in, (int)n, "%s: cannot read: %s", path, strerror((int)-n));
        return (int)n;
    }
    if (n > 0 && in->gen[n - 1] == '\n')
        in->gen[n - 1] = '\0';
    uint64_t g;
    if (!name_number(in->gen, "gen-", 8, "", &g)) {
        problem(in, -EBADMSG, "%s: does not name a generation (gen-NNNNNNNN)", path);
        return -EBADMSG;
    }
    struct stat st;
    if (path_fmt(in->gen_dir, "%s/%s", in->dir, in->gen) < 0 || stat(in->gen_dir, &st) < 0 ||
        !S_ISDIR(st.st_mode)) {
        problem(in, -EBADMSG, "%s: names %s, which is not a directory", path, in->gen_dir);
        return -EBADMSG;
    }
    return 0;
}

/* What else dir holds: an older generation a start-up had not deleted
 * yet, an interrupted switch of CURRENT. Not a failure. */
static void others_note(struct inspection *in)
{
    DIR *d = opendir(in->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strcmp(n, ".") && strcmp(n, "..") && strcmp(n, "LOCK") && strcmp(n, "CURRENT") &&
            strcmp(n, in->gen))
            fprintf(in->out, "note: %s/%s: not part of the generation in force\n", in->dir, n);
    }
    closedir(d);
}

static int cmp_tenant(const void *a, const void *b)
{
    const struct tstat *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static void tenants_report(struct inspection *in)
{
    struct tstat all = {0};
    qsort(in->tenants, in->ntenants, sizeof(*in->tenants), cmp_tenant);
    for (uint32_t i = 0; i <= in->ntenants; i++) {
        const struct tstat *t = i < in->ntenants ? &in->tenants[i] : &all;
        if (i < in->ntenants)
            fprintf(in->out, "tenant %s:", t->name);
        else
            fprintf(in->out, "total, %" PRIu32 " tenant%s:", in->ntenants,
                    in->ntenants == 1 ? "" : "s");
        fprintf(in->out,
                " %" PRIu64 " sessions, %" PRIu64 " subscriptions, %" PRIu64
                " queued messages (%" PRIu64 " bytes), %" PRIu64 " in flight, %" PRIu64
                " QoS 2 ids awaiting PUBREL, %" PRIu64 " retained topics\n",
                t->sessions, t->subs, t->queued, t->qbytes, t->inflight, t->qos2, t->retained);
        all.sessions += t->sessions;
        all.subs += t->subs;
        all.queued += t->queued;
        all.qbytes += t->qbytes;
        all.inflight += t->inflight;
        all.qos2 += t->qos2;
        all.retained += t->retained;
    }
}

static void generation_inspect(struct inspection *in)
{
    fprintf(in->out, "%s: generation in force: %s\n", in->dir, in->gen);
    uint64_t *shards;
    size_t n;
    int rc = list_numbered(in->gen_dir, "shard-", 4, "", &shards, &n, NULL);
    if (rc < 0) {
        problem(in, rc, "%s: cannot list: %s", in->gen_dir, strerror(-rc));
        return;
    }
    if (n == 0)
        fprintf(in->out, "%s: no shard directory\n", in->gen_dir);
    for (size_t i = 0; i < n; i++) {
        if (shards[i] > UINT32_MAX)
            continue; /* not a name the store writes */
        shard_inspect(in, (uint32_t)shards[i]);
    }
    free(shards);
    rc = count_state(in, in->retained);
    if (rc < 0)
        problem(in, rc, "%s: counting the retained messages: %s", in->gen_dir, strerror(-rc));
    others_note(in);
    tenants_report(in);
}

int persist_inspect(const char *dir, FILE *out)
{
    struct inspection in = {.out = out, .dir = dir};
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    in.opts.mono_ms = clock_now_ms();
    in.opts.wall_ms = (uint64_t)wall.tv_sec * 1000u + (uint64_t)wall.tv_nsec / 1000000u;
    int rc = current_read(&in);
    if (rc == 1)
        return no_current(&in);
    if (rc < 0)
        return rc;
    in.retained = replay_create(&in.opts);
    if (!in.retained) {
        problem(&in, -ENOMEM, "out of memory");
        return in.rc;
    }
    generation_inspect(&in);
    replay_destroy(in.retained);
    for (uint32_t i = 0; i < in.ntenants; i++)
        free(in.tenants[i].name);
    free(in.tenants);
    if (in.problems)
        fprintf(out, "FAILED: %" PRIu64 " problem%s (above)\n", in.problems,
                in.problems == 1 ? "" : "s");
    else
        fprintf(out, "OK: every checksum verifies, the records tell a consistent story\n");
    return in.rc;
}
