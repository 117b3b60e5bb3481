/*
 * What the persist tests share: a record_writer into a growing byte array
 * that frames each record ([type u8][length u32 LE][body]), numbering each
 * session state it is told about by the order it first saw it (1, 2, ...),
 * and a walk over that array. Each body is written in a heap block of
 * exactly the reserved size, so that ASan catches an encoder writing past
 * what it reserved, then appended.
 */
#ifndef RINGMQ_TESTS_PERSIST_RECORDS_H
#define RINGMQ_TESTS_PERSIST_RECORDS_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "persist/record.h"

#define FRAME 5 /* type, length */

struct buf {
    uint8_t *p;
    size_t n, cap;
    size_t records;
    size_t last;   /* the last record's offset */
    uint8_t *body; /* reserved, not committed yet */
    size_t body_len;
    const void *numbered[1024][2]; /* (tenant, session state), by number - 1 */
    uint32_t nnumbered;
};

/* A session's number in this buffer's log (record_writer.number). */
static inline uint32_t buf_number(void *ctx, const struct tenant *t, const struct session_state *st)
{
    struct buf *b = ctx;
    for (uint32_t i = 0; i < b->nnumbered; i++)
        if (b->numbered[i][0] == t && b->numbered[i][1] == st)
            return i + 1;
    cr_assert_lt(b->nnumbered, 1024);
    b->numbered[b->nnumbered][0] = t;
    b->numbered[b->nnumbered++][1] = st;
    return b->nnumbered;
}

static inline uint8_t *buf_reserve(void *ctx, size_t len)
{
    struct buf *b = ctx;
    cr_assert_null(b->body, "reserved twice without a commit");
    b->body = malloc(len ? len : 1);
    cr_assert_not_null(b->body);
    b->body_len = len;
    return b->body;
}

static inline void buf_commit(void *ctx, uint8_t type, size_t len)
{
    struct buf *b = ctx;
    cr_assert_not_null(b->body, "a commit without a reserve");
    cr_assert_eq(len, b->body_len, "committed %zu bytes of %zu reserved", len, b->body_len);
    if (b->n + FRAME + len > b->cap) {
        b->cap = (b->n + FRAME + len) * 2;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    b->p[b->n] = type;
    for (int i = 0; i < 4; i++)
        b->p[b->n + 1 + i] = (uint8_t)(len >> (8 * i));
    memcpy(b->p + b->n + FRAME, b->body, len);
    free(b->body);
    b->body = NULL;
    b->last = b->n;
    b->n += FRAME + len;
    b->records++;
}

/* The last record, `more` bytes longer and of `type` (as rlog_extend):
 * where the caller writes those bytes. */
static inline uint8_t *buf_extend_last(struct buf *b, uint8_t type, size_t more)
{
    cr_assert(b->records > 0 && !b->body);
    if (b->n + more > b->cap) {
        b->cap = (b->n + more) * 2;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    size_t len = b->n - b->last - FRAME + more;
    b->p[b->last] = type;
    for (int i = 0; i < 4; i++)
        b->p[b->last + 1 + i] = (uint8_t)(len >> (8 * i));
    b->n += more;
    return b->p + b->n - more;
}

static inline void buf_fini(struct buf *b)
{
    free(b->p);
    free(b->body);
    memset(b, 0, sizeof(*b));
}

static inline struct record_writer buf_writer(struct buf *b, uint64_t mono_ms, uint64_t wall_ms)
{
    return (struct record_writer){buf_reserve, buf_commit, b, mono_ms, wall_ms, buf_number};
}

/* The record at *off (advanced past it): false at the end. */
static inline bool buf_next(const struct buf *b, size_t *off, uint8_t *type, const uint8_t **body,
                            size_t *len)
{
    if (*off >= b->n)
        return false;
    cr_assert_leq(*off + FRAME, b->n);
    const uint8_t *h = b->p + *off;
    *type = h[0];
    *len = (size_t)h[1] | (size_t)h[2] << 8 | (size_t)h[3] << 16 | (size_t)h[4] << 24;
    *body = h + FRAME;
    *off += FRAME + *len;
    cr_assert_leq(*off, b->n);
    return true;
}

#endif
