/*
 * recover: the data directory and the start-up (persist.h): the lock,
 * the generations, the check of every log before a shard starts, and each
 * shard's load: replay every log of the generation in force, keep what is
 * homed here, write it as the first records of the next generation, and,
 * once every shard has, make that generation the one in force.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/u64set.h"
#include "persist/persist.h"
#include "persist/pshard.h"
#include "persist/replay.h"
#include "session/msg.h"
#include "shard/shard.h"

/* ---- the directory ---- */

/* mkdir -p. 0 or -errno. */
static int make_dirs(const char *path)
{
    char buf[CONFIG_PATH_MAX + 64];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *q = buf + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(buf, 0750) < 0 && errno != EEXIST)
            return -errno;
        *q = '/';
    }
    return mkdir(buf, 0750) < 0 && errno != EEXIST ? -errno : 0;
}

/* rm -r of a generation: its shard directories and their files. */
static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[CONFIG_PATH_MAX + 320];
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            if (e->d_type == DT_DIR)
                remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* The generation CURRENT names (0: no CURRENT). -EBADMSG when unreadable. */
static int read_current(const char *dir, uint32_t *gen)
{
    char path[CONFIG_PATH_MAX + 16], line[64] = "";
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    FILE *f = fopen(path, "re");
    *gen = 0;
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    bool ok = fgets(line, sizeof(line), f) && sscanf(line, "gen-%" SCNu32, gen) == 1 && *gen;
    fclose(f);
    return ok ? 0 : -EBADMSG;
}

int persist_write_file(const char *dir, const char *name, const char *text)
{
    char tmp[CONFIG_PATH_MAX + 80], path[CONFIG_PATH_MAX + 80];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    ssize_t n = (ssize_t)strlen(text);
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    int rc = ok ? 0 : -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    return rc ? rc : sync_dir(dir);
}

/* CURRENT names `gen`. */
static int write_current(const char *dir, uint32_t gen)
{
    char line[32];
    snprintf(line, sizeof(line), "gen-%08" PRIu32 "\n", gen);
    return persist_write_file(dir, "CURRENT", line);
}

/* Remove every generation but `keep`, and a CURRENT.tmp: what a crash in
 * the middle of a start-up left. */
static void remove_stale(const char *dir, uint32_t keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint32_t g;
        char path[CONFIG_PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (sscanf(e->d_name, "gen-%" SCNu32, &g) == 1 && g != keep) {
            log_info("store: removing %s, left by a start-up that did not finish", path);
            remove_tree(path);
        } else if (strcmp(e->d_name, "CURRENT.tmp") == 0) {
            unlink(path);
        }
    }
    closedir(d);
}

/* How many shards wrote generation dir: one more than the highest
 * shard-NNNN in it. */
static uint32_t count_shards(const char *dir)
{
    DIR *d = opendir(dir);
    uint32_t n = 0, i;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (sscanf(e->d_name, "shard-%" SCNu32, &i) == 1 && i + 1 > n)
            n = i + 1;
    closedir(d);
    return n;
}

/* Where shard i's replay of dir starts: its SNAPSHOT file (a compaction
 * snapshot's first record), else 1. */
static uint64_t replay_from(const char *dir, uint32_t i)
{
    char path[CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/shard-%04" PRIu32 "/SNAPSHOT", dir, i);
    FILE *f = fopen(path, "re");
    uint64_t from = 1;
    if (f) {
        if (fscanf(f, "%" SCNu64, &from) != 1 || from == 0)
            from = 1;
        fclose(f);
    }
    return from;
}

/* Every log of the generation in force, checked before any shard reads
 * it (a torn tail is cut here, once). 0, or -errno with err set. */
static int check_logs(struct persist *p, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < p->old_shards; i++) {
        struct rlog_config c = {.dir = p->old_dir, .shard = i};
        struct rlog_recovery rec;
        int rc = rlog_replay(&c, replay_from(p->old_dir, i), p->salvage ? RLOG_SALVAGE : 0, NULL,
                             NULL, &rec);
        if (rc < 0) {
            snprintf(err, errlen,
                     "store: %s/shard-%04" PRIu32 ": %s (the log says where; "
                     "ringmqd --salvage keeps every record that is valid)",
                     p->old_dir, i, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static int lock_dir(struct persist *p, char *err, size_t errlen)
{
    const char *dir = p->cfg->persist_dir;
    char path[CONFIG_PATH_MAX + 16];
    int rc = make_dirs(dir);
    if (rc < 0) {
        snprintf(err, errlen, "store: cannot create %s: %s", dir, strerror(-rc));
        return rc;
    }
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (p->lock_fd < 0 || flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        snprintf(err, errlen, "store: %s: %s", path,
                 rc == -EWOULDBLOCK ? "another ringmqd uses this directory" : strerror(-rc));
        return rc;
    }
    return 0;
}

static void *shard_ctx(void *arg, uint32_t shard, uint32_t nshards);

struct persist *persist_open(const struct config *cfg, bool salvage, char *err, size_t errlen)
{
    struct persist *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "store: out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->salvage = salvage;
    p->lock_fd = -1;
    p->provider = (struct store_provider){&persist_store_ops, shard_ctx, p};
    const char *dir = cfg->persist_dir;
    int rc = lock_dir(p, err, errlen);
    if (rc == 0 && (rc = read_current(dir, &p->old_gen)) < 0)
        snprintf(err, errlen, "store: %s/CURRENT: %s", dir,
                 rc == -EBADMSG ? "not a generation name" : strerror(-rc));
    if (rc == 0) {
        remove_stale(dir, p->old_gen);
        if (p->old_gen) {
            snprintf(p->old_dir, sizeof(p->old_dir), "%s/gen-%08" PRIu32, dir, p->old_gen);
            p->old_shards = count_shards(p->old_dir);
        }
        snprintf(p->new_dir, sizeof(p->new_dir), "%s/gen-%08" PRIu32, dir, p->old_gen + 1);
        rc = check_logs(p, err, errlen);
    }
    if (rc < 0) {
        persist_close(p);
        return NULL;
    }
    return p;
}

const struct store_provider *persist_provider(struct persist *p)
{
    return &p->provider;
}

void persist_close(struct persist *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nshards; i++) {
        if (p->shards[i])
            rlog_close(p->shards[i]->log); /* a shard that never ran */
        free(p->shards[i]);
    }
    free(p->shards);
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    free(p);
}

static void *shard_ctx(void *arg, uint32_t shard, uint32_t nshards)
{
    struct persist *p = arg;
    if (!p->shards) {
        p->shards = calloc(nshards, sizeof(*p->shards));
        if (!p->shards)
            return NULL;
        p->nshards = nshards;
        atomic_store(&p->loading, nshards);
    }
    struct pshard *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    p->shards[shard] = ps;
    ps->p = p;
    ps->id = shard;
    ps->gated = p->cfg->persist_fsync == PERSIST_FSYNC_ALWAYS;
    ps->mark = 1;
    ps->qos0 = true; /* a queue holds no QoS 0 (session_deliver_shared): all of it is kept */
    pshard_writer_init(ps);
    return ps;
}

/* ---- one shard's load ---- */

struct load {
    struct pshard *ps;
    struct shard *s;
    struct replay *r;
    const struct store_sink *sink; /* the broker's */
    uint32_t log;                  /* whose log is being read */
    /* The last session key seen and whether it is homed here. */
    uint8_t key[CONFIG_TENANT_NAME_MAX + 256];
    size_t tenant_len, id_len;
    bool key_mine;
    struct u64set nos;           /* the log's session numbers: homed here (1) or not (0) */
    uint32_t sessions, retained; /* what the replay rebuilt */
};

static int intern(struct shard *s, const uint8_t *name, size_t len)
{
    char buf[CONFIG_TENANT_NAME_MAX + 1];
    if (len >= sizeof(buf) || memchr(name, 0, len))
        return -EBADMSG;
    memcpy(buf, name, len);
    buf[len] = '\0';
    return tenant_dir_intern(&s->broker->tenants, buf);
}

static int tenant_of(void *ctx, const char *name, size_t len)
{
    struct load *l = ctx;
    return intern(l->s, (const uint8_t *)name, len);
}

/* Whether the session named tenant/client id is homed on this shard now:
 * 1 or 0 (remembered for the next record of the same key), or -errno. */
static int key_homed(struct load *l, const uint8_t *tenant, size_t tlen, const uint8_t *id,
                     size_t idlen)
{
    if (tlen == l->tenant_len && idlen == l->id_len && memcmp(l->key, tenant, tlen) == 0 &&
        memcmp(l->key + tlen, id, idlen) == 0)
        return l->key_mine;
    int t = intern(l->s, tenant, tlen);
    if (t < 0)
        return t == -EBADMSG ? 1 : t;
    bool mine = shard_home(l->s->broker, (uint16_t)t, id, idlen) == l->s->id;
    if (tlen + idlen <= sizeof(l->key)) {
        memcpy(l->key, tenant, tlen);
        memcpy(l->key + tlen, id, idlen);
        l->tenant_len = tlen;
        l->id_len = idlen;
        l->key_mine = mine;
    }
    return mine;
}

/* Whether the session a record names is homed on this shard now: 1, 0, or
 * 1 for a record that cannot say (the replay reports it). In format 2 a
 * put says it for its number, which the records after it name. */
static int homed_here(struct load *l, const struct rlog_record *rec)
{
    struct record k;
    if (record_session_of(rec->format, rec->type, rec->payload, rec->len, &k) < 0)
        return 1;
    if (k.tenant) {
        int mine = key_homed(l, k.tenant, k.tenant_len, k.client_id, k.client_id_len);
        if (mine < 0 || !k.no)
            return mine;
        uint64_t *v = u64set_find(&l->nos, k.no);
        if (v)
            *v = (uint64_t)mine;
        else if (u64set_put(&l->nos, k.no, (uint64_t)mine) < 0)
            return -ENOMEM;
        return mine;
    }
    uint64_t *v = u64set_find(&l->nos, k.no);
    return v ? (int)*v : 1;
}

static int on_record(void *arg, const struct rlog_record *rec)
{
    struct load *l = arg;
    int mine;
    if (rec->type == RECORD_SNAP_BEGIN || rec->type == RECORD_SNAP_END)
        return 0;
    if (rec->type == RECORD_RETAINED_PUT || rec->type == RECORD_RETAINED_CLEAR)
        mine = l->s->id == 0; /* shard 0 keeps every retained message */
    else if (rec->type == RECORD_INGRESS_PUT || rec->type == RECORD_INGRESS_DEL)
        mine = 1; /* every shard keeps every key: subscribers may have moved */
    else
        mine = homed_here(l, rec);
    if (mine <= 0)
        return mine;
    int rc = replay_apply(l->r, rec->format, rec->type, rec->payload, rec->len);
    if (rc < 0)
        log_err("store: %s/shard-%04" PRIu32 ": record %" PRIu64 ": %s", l->ps->p->old_dir, l->log,
                rec->seq, rc == -EBADMSG ? replay_error(l->r) : strerror(-rc));
    return rc;
}

/* The broker's sinks, with each retained message written to the new log
 * (a session writes itself: its first put, persist.c). */
static int sink_session(struct shard *s, uint16_t tenant, struct session_state *st)
{
    struct pshard *ps = s->store_ctx;
    return ps->sink->session(s, tenant, st);
}

static int sink_retained(struct shard *s, uint16_t tenant, struct msg *m)
{
    struct pshard *ps = s->store_ctx;
    msg_acquire(m);
    int rc = ps->sink->retained(s, tenant, m);
    if (rc == 0 && s->tenants[tenant])
        rc = record_retained(&ps->w, RECORD_RETAINED_PUT, s->tenants[tenant], m);
    msg_release(m);
    return rc;
}

static int sink_ingress(struct shard *s, uint64_t key)
{
    struct pshard *ps = s->store_ctx;
    int rc = ps->sink->ingress(s, key);
    return rc ? rc : record_ingress(&ps->w, RECORD_INGRESS_PUT, key);
}

static const struct store_sink wrapped_sink = {sink_session, sink_retained, sink_ingress};

/* Replay every log of the generation in force into l->r, keeping what is
 * this shard's, and hand it on. 0 or -errno. */
static int replay_old(struct load *l)
{
    struct persist *p = l->ps->p;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < p->old_shards; i++) {
        struct rlog_config c = {.dir = p->old_dir, .shard = i};
        struct rlog_recovery rec;
        l->log = i;
        replay_next_log(l->r);
        u64set_fini(&l->nos);
        rc = rlog_replay(&c, replay_from(p->old_dir, i), p->salvage ? RLOG_SALVAGE : 0, on_record,
                         l, &rec);
    }
    u64set_fini(&l->nos);
    l->sessions = replay_sessions(l->r);
    l->retained = replay_retained(l->r);
    if (rc == 0)
        rc = replay_finish(l->r, l->s, &wrapped_sink, tenant_of, l);
    return rc;
}

/* The last shard to finish loading makes the new generation the one in
 * force, unless one failed; the old one goes. */
static void load_done(struct persist *p, bool ok)
{
    if (!ok)
        atomic_store(&p->load_failed, true);
    if (atomic_fetch_sub(&p->loading, 1) != 1 || atomic_load(&p->load_failed))
        return;
    int rc = write_current(p->cfg->persist_dir, p->old_gen + 1);
    if (rc < 0) {
        log_err("store: cannot write %s/CURRENT: %s", p->cfg->persist_dir, strerror(-rc));
        return;
    }
    if (p->old_gen)
        remove_tree(p->old_dir);
}

static uint64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int pshard_load(void *ctx, struct shard *s, const struct store_sink *sink)
{
    struct pshard *ps = ctx;
    struct persist *p = ps->p;
    uint64_t t0 = clock_now_ms();
    struct rlog_config c = {.dir = p->new_dir, .shard = ps->id};
    ps->w.mono_ms = s->now_ms;
    ps->w.wall_ms = wall_now_ms();
    /* fsync = always: output leaves only once what it depends on is on
     * disk (net/stream.h, "Durable output"). */
    s->streams.gated = ps->gated;
    int rc = rlog_open(&c, NULL, &ps->log);
    struct load *l = rc == 0 ? calloc(1, sizeof(*l)) : NULL;
    if (rc == 0 && !l)
        rc = -ENOMEM;
    if (rc == 0) {
        rlog_uring_init(&ps->u, ps->log);
        ps->u.no_sync = p->cfg->persist_fsync == PERSIST_FSYNC_NEVER;
        struct replay_opts o = {s->now_ms, ps->w.wall_ms, p->salvage};
        *l = (struct load){.ps = ps, .s = s, .r = replay_create(&o), .sink = sink};
        ps->sink = sink;
        rc = !l->r ? -ENOMEM : p->old_gen ? replay_old(l) : 0;
    }
    uint32_t sessions = l ? l->sessions : 0, retained = l ? l->retained : 0;
    if (l) {
        replay_destroy(l->r);
        free(l);
    }
    ps->sink = NULL;
    if (rc == 0)
        rc = rlog_flush(ps->log);
    if (rc == 0)
        ps->covered_seq = rlog_last_seq(ps->log);
    /* What was just written is a snapshot: the log grows from here. */
    ps->snap_bytes = atomic_load_explicit(&ps->bytes, memory_order_relaxed);
    if (rc == 0)
        log_info("store: shard %u: %" PRIu32 " sessions, %" PRIu32 " retained messages from %s"
                 " in %" PRIu64 " ms",
                 s->id, sessions, retained, p->old_gen ? p->old_dir : "an empty directory",
                 clock_now_ms() - t0);
    else
        log_err("store: shard %u: loading failed: %s", s->id, strerror(-rc));
    load_done(p, rc == 0);
    return rc;
}
