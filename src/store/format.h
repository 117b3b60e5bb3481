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
 *   frame header (32 B): XXH3-64(seed ^ FMT_FRAME_SALT) of the next 24 B |
 *       XXH3-64(seed) of the records' bytes | len u32 (bytes of records
 *       after this header) | count u32 | first_seq u64
 *   record (2..6 B + len): type u8 | len varint (LEB128, at most 5 bytes) |
 *       payload; its sequence number is the frame's first_seq + its index
 *
 * One checksum covers a frame's records: a frame is written, and read
 * back, whole (a turn is all or nothing on disk), so a checksum per record
 * would only cost (it was 31 ns and 16 bytes per record in version 1).
 *
 * Version 1 (read, never written; a start-up rewrites everything it
 * recovers into a new generation in the current version):
 *   frame header (24 B): XXH3-64(seed ^ FMT_FRAME_SALT) of the next 16 B |
 *       len u32 | count u32 | first_seq u64
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
    FMT_VERSION = 3,        /* 2 and 3 frame alike; their record bodies differ (persist/record.h) */
    FMT_VERSION_OLDEST = 1, /* the oldest this build reads */
    FMT_FILE_HDR = 40,
    FMT_FRAME_HDR = 32,
    FMT_REC_HDR_MAX = 6, /* type and a 5-byte length */
    FMT_SUM = 8,         /* the checksum opens every header */
    /* Version 1 */
    FMT1_FRAME_HDR = 24,
    FMT1_REC_HDR = 24,
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

/* Bytes of a record header for a payload of len bytes. */
static inline size_t fmt_rec_hdr(uint32_t len)
{
    size_t n = 2;
    while (len >= 0x80) {
        len >>= 7;
        n++;
    }
    return n;
}

/* Write the record header (type, then len as LEB128) at h; returns the
 * payload's place (h + fmt_rec_hdr(len)). */
static inline uint8_t *fmt_rec_put(uint8_t *h, uint8_t type, uint32_t len)
{
    *h++ = type;
    while (len >= 0x80) {
        *h++ = (uint8_t)(len | 0x80);
        len >>= 7;
    }
    *h++ = (uint8_t)len;
    return h;
}

/* Read the record header at h with `avail` bytes readable: its header's
 * size (2..6), or 0 when it is cut short or its length is not the
 * shortest encoding of a u32. */
static inline size_t fmt_rec_get(const uint8_t *h, size_t avail, uint8_t *type, uint32_t *len)
{
    if (avail < 2)
        return 0;
    *type = h[0];
    uint64_t v = 0;
    for (size_t i = 1; i < avail && i < FMT_REC_HDR_MAX; i++) {
        v |= (uint64_t)(h[i] & 0x7f) << (7 * (i - 1));
        if (!(h[i] & 0x80)) {
            if (v > UINT32_MAX || (i > 1 && h[i] == 0))
                return 0;
            *len = (uint32_t)v;
            return i + 1;
        }
    }
    return 0;
}

/* Seal the frame header at h; its `len` bytes of records follow it. */
static inline void fmt_frame_seal(uint8_t *h, uint32_t len, uint32_t count, uint64_t first_seq,
                                  uint64_t seed)
{
    fmt_put64(h + 8, XXH3_64bits_withSeed(h + FMT_FRAME_HDR, len, seed));
    fmt_put32(h + 16, len);
    fmt_put32(h + 20, count);
    fmt_put64(h + 24, first_seq);
    fmt_put64(h, XXH3_64bits_withSeed(h + FMT_SUM, FMT_FRAME_HDR - FMT_SUM, seed ^ FMT_FRAME_SALT));
}

/* The frame header at h verifies (its records are checked apart). */
static inline bool fmt_frame_verifies(const uint8_t *h, uint64_t seed)
{
    return fmt_get64(h) ==
           XXH3_64bits_withSeed(h + FMT_SUM, FMT_FRAME_HDR - FMT_SUM, seed ^ FMT_FRAME_SALT);
}

/* The records of the frame at h (its header verified, its len bytes of
 * records readable) are the ones it was sealed with. */
static inline bool fmt_frame_body_verifies(const uint8_t *h, uint64_t seed)
{
    return fmt_get64(h + 8) == XXH3_64bits_withSeed(h + FMT_FRAME_HDR, fmt_get32(h + 16), seed);
}

static inline uint32_t fmt_frame_len(const uint8_t *h)
{
    return fmt_get32(h + 16);
}

static inline uint32_t fmt_frame_count(const uint8_t *h)
{
    return fmt_get32(h + 20);
}

static inline uint64_t fmt_frame_first(const uint8_t *h)
{
    return fmt_get64(h + 24);
}

/* Version 1: a frame header and a record verify. */
static inline bool fmt1_frame_verifies(const uint8_t *h, uint64_t seed)
{
    return fmt_get64(h) ==
           XXH3_64bits_withSeed(h + FMT_SUM, FMT1_FRAME_HDR - FMT_SUM, seed ^ FMT_FRAME_SALT);
}

static inline bool fmt1_record_verifies(const uint8_t *h, size_t avail, uint64_t seed)
{
    if (avail < FMT1_REC_HDR)
        return false;
    uint32_t len = fmt_get32(h + 8);
    if (len > avail - FMT1_REC_HDR)
        return false;
    return fmt_get64(h) ==
           XXH3_64bits_withSeed(h + FMT_SUM, FMT1_REC_HDR - FMT_SUM + (size_t)len, seed);
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
