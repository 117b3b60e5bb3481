/*
 * format: the log's bytes on disk, internal to the store room (log.c writes
 * them, log_replay.c reads them). Every integer is little-endian.
 *
 *   dir/shard-NNNN/log-<first seq, 20 digits>.rlog   one segment
 *
 * A segment: a file header, then frames. A frame is one flush (one loop
 * turn): a frame header, then its records, back to back.
 *
 *   file header (40 B): magic "RINGMQLG" | version u16 | flags u16 (0) |
 *       shard u32 | first_seq u64 | seed u64 | XXH3-64 of the 32 bytes before
 *   frame header (24 B): XXH3-64(seed ^ FMT_FRAME_SALT) of the next 16 B |
 *       len u32 (bytes of records after this header) | count u32 |
 *       first_seq u64
 *   record (24 B + len): XXH3-64(seed) of the next 16 B and the payload |
 *       len u32 | type u8 | flags u8 (0) | reserved u16 (0) | seq u64 | payload
 *
 * Sequence numbers start at 1 and go up by one per record across frames and
 * segments; a segment's name and header carry its first. The seed is drawn
 * at random when the shard's first segment is created and copied into each
 * later one: a checksum over bytes a client chose (a payload holding what
 * looks like a frame) cannot be forged without it.
 *
 * Magic and version stay where they are in every later version, so that a
 * newer file is recognised as newer before anything else is read.
 */
#ifndef RINGMQ_STORE_FORMAT_H
#define RINGMQ_STORE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#define FMT_MAGIC "RINGMQLG"
enum {
    FMT_VERSION = 1,
    FMT_FILE_HDR = 40,
    FMT_FRAME_HDR = 24,
    FMT_REC_HDR = 24,
    FMT_SUM = 8, /* the checksum opens every header */
};
#define FMT_FRAME_SALT                                                                             \
    0x6672616d65686472ull /* frame headers and records never verify as each other */

/* A frame's length is a u32; a turn larger than this is cut into frames. */
#define FMT_FRAME_MAX (1ull << 30)

static inline void fmt_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void fmt_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void fmt_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t fmt_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t fmt_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline uint64_t fmt_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A decoded file header. */
struct fmt_file {
    uint16_t version;
    uint32_t shard;
    uint64_t first_seq;
    uint64_t seed;
};

static inline void fmt_file_encode(uint8_t h[FMT_FILE_HDR], uint32_t shard, uint64_t first_seq,
                                   uint64_t seed)
{
    memcpy(h, FMT_MAGIC, 8);
    fmt_put16(h + 8, FMT_VERSION);
    fmt_put16(h + 10, 0);
    fmt_put32(h + 12, shard);
    fmt_put64(h + 16, first_seq);
    fmt_put64(h + 24, seed);
    fmt_put64(h + 32, XXH3_64bits(h, 32));
}

/* The frame header at h, its records' bytes counted in len. */
static inline void fmt_frame_seal(uint8_t *h, uint32_t len, uint32_t count, uint64_t first_seq,
                                  uint64_t seed)
{
    fmt_put32(h + 8, len);
    fmt_put32(h + 12, count);
    fmt_put64(h + 16, first_seq);
    fmt_put64(h, XXH3_64bits_withSeed(h + FMT_SUM, FMT_FRAME_HDR - FMT_SUM, seed ^ FMT_FRAME_SALT));
}

static inline bool fmt_frame_verifies(const uint8_t *h, uint64_t seed)
{
    return fmt_get64(h) ==
           XXH3_64bits_withSeed(h + FMT_SUM, FMT_FRAME_HDR - FMT_SUM, seed ^ FMT_FRAME_SALT);
}

/* The record header at h; its payload follows and is already in place. */
static inline void fmt_record_seal(uint8_t *h, uint32_t len, uint8_t type, uint64_t seq,
                                   uint64_t seed)
{
    fmt_put32(h + 8, len);
    h[12] = type;
    h[13] = 0;
    fmt_put16(h + 14, 0);
    fmt_put64(h + 16, seq);
    fmt_put64(h, XXH3_64bits_withSeed(h + FMT_SUM, FMT_REC_HDR - FMT_SUM + (size_t)len, seed));
}

/* The record at h, with `avail` bytes readable from h, verifies. */
static inline bool fmt_record_verifies(const uint8_t *h, size_t avail, uint64_t seed)
{
    if (avail < FMT_REC_HDR)
        return false;
    uint32_t len = fmt_get32(h + 8);
    if (len > avail - FMT_REC_HDR)
        return false;
    return fmt_get64(h) ==
           XXH3_64bits_withSeed(h + FMT_SUM, FMT_REC_HDR - FMT_SUM + (size_t)len, seed);
}

/* "DIR/shard-NNNN" and "DIR/shard-NNNN/log-<20 digits>.rlog" into buf;
 * 0 or -ENAMETOOLONG. */
int fmt_shard_dir(char *buf, size_t size, const char *dir, uint32_t shard);
int fmt_segment_path(char *buf, size_t size, const char *dir, uint32_t shard, uint64_t first_seq);

/*
 * The first sequence numbers of the shard's segments, ascending, in a
 * malloc'd array (*out, *n; NULL and 0 when none, also when the directory
 * does not exist). Names that are not "log-<digits>.rlog" are ignored.
 * 0 or -errno.
 */
int fmt_list_segments(const char *dir, uint32_t shard, uint64_t **out, size_t *n);

#endif
