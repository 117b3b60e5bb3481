/*
 * format: where the segments are (names, listing) and the plain-syscall
 * rlog_io. No state; any thread.
 */
#include "store/format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/log.h"

static int io_open(void *ctx, const char *path, int flags, mode_t mode)
{
    (void)ctx;
    int fd = open(path, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

static int io_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t io_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx;
    ssize_t n;
    do
        n = pread(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t io_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    (void)ctx;
    ssize_t n;
    do
        n = pwrite(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int io_sync(void *ctx, int fd)
{
    (void)ctx;
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int io_ftruncate(void *ctx, int fd, off_t len)
{
    (void)ctx;
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

const struct rlog_io rlog_io_sync = {
    .open = io_open,
    .close = io_close,
    .pread = io_pread,
    .pwrite = io_pwrite,
    .sync = io_sync,
    .ftruncate = io_ftruncate,
};

int fmt_shard_dir(char *buf, size_t size, const char *dir, uint32_t shard)
{
    int n = snprintf(buf, size, "%s/shard-%04" PRIu32, dir, shard);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int fmt_segment_path(char *buf, size_t size, const char *dir, uint32_t shard, uint64_t first_seq)
{
    int n = snprintf(buf, size, "%s/shard-%04" PRIu32 "/log-%020" PRIu64 ".rlog", dir, shard,
                     first_seq);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* "log-<20 digits>.rlog" → its number; false for any other name. */
static bool segment_name(const char *name, uint64_t *seq)
{
    if (strlen(name) != 4 + 20 + 5 || memcmp(name, "log-", 4) != 0 ||
        memcmp(name + 24, ".rlog", 5) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *seq = v;
    return v != 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int fmt_list_segments(const char *dir, uint32_t shard, uint64_t **out, size_t *n)
{
    char path[4096];
    *out = NULL;
    *n = 0;
    int rc = fmt_shard_dir(path, sizeof(path), dir, shard);
    if (rc < 0)
        return rc;
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *e;
    rc = 0;
    while ((e = readdir(d))) {
        uint64_t seq;
        if (!segment_name(e->d_name, &seq))
            continue;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[len++] = seq;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (len)
        qsort(v, len, sizeof(*v), cmp_u64);
    *out = v;
    *n = len;
    return 0;
}
