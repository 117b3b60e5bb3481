/*
 * The index unit tests' shared helpers (see helpers.h). Assertions are
 * Criterion's, so a failure here fails the test that called the helper.
 */
#include "helpers.h"

#include <criterion/criterion.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

void hits_collect(void *value, void *arg)
{
    struct hits *h = arg;
    cr_assert_lt(h->n, HITS_MAX);
    h->v[h->n++] = (uintptr_t)value;
}

static int cmp_uintptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

void hits_sort(struct hits *h)
{
    qsort(h->v, h->n, sizeof(h->v[0]), cmp_uintptr);
}

void hits_expect(const struct hits *h, const char *key, const uintptr_t *expect, size_t n)
{
    cr_assert_eq(h->n, n, "%s: %zu hits, want %zu", key, h->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(h->v[i], expect[i], "%s: hit %zu is %lu, want %lu", key, i,
                     (unsigned long)h->v[i], (unsigned long)expect[i]);
}

bool ref_matches(const char *f, const char *t)
{
    /* MQTT-4.7.2-1 */
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    const char *fp = f, *tp = t;
    for (;;) {
        size_t fl = strcspn(fp, "/");
        if (fl == 1 && fp[0] == '#')
            return true;
        if (!tp)
            return false;
        size_t tl = strcspn(tp, "/");
        if (!(fl == 1 && fp[0] == '+') && (fl != tl || memcmp(fp, tp, fl) != 0))
            return false;
        bool fend = fp[fl] == '\0', tend = tp[tl] == '\0';
        if (fend && tend)
            return true;
        if (fend)
            return false;
        fp += fl + 1;
        tp = tend ? NULL : tp + tl + 1;
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void rng_seed(uint64_t seed)
{
    rng_state = seed;
}

uint32_t rng(uint32_t bound)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % bound;
}

static const char *const words[] = {"a", "b", "c", "", "$s", "dd", "a$"};
enum { WORDS = sizeof(words) / sizeof(words[0]) };

void gen_topic(char *buf, size_t cap)
{
    size_t depth = 1 + rng(5), n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < depth; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "/" : "", words[rng(WORDS)]);
}

void gen_filter(char *buf, size_t cap)
{
    size_t depth = 1 + rng(5), n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < depth; i++) {
        uint32_t r = rng(10);
        const char *w = r < 2 ? "+" : (r == 2 && i + 1 == depth) ? "#" : words[rng(WORDS)];
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "/" : "", w);
    }
}

size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

void free_counted(void *value, void *arg)
{
    (*(size_t *)arg)++;
    free(value);
}
