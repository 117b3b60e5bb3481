/*
 * What the index unit tests (trie_test.c, retain_test.c) share: keys and
 * values as literals, the hits a match reports, a reference matcher written
 * independently of both indexes, a deterministic generator of random topics
 * and filters, and the heap measurement the pruning tests use.
 */
#ifndef RINGMQ_TESTS_INDEX_HELPERS_H
#define RINGMQ_TESTS_INDEX_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A C string as the (bytes, length) pair the index takes. */
#define S(str) (const uint8_t *)(str), strlen(str)
/* A small integer as a stored value. */
#define V(i) ((void *)(uintptr_t)(i))

enum { HITS_MAX = 8192 };

/* The values one match reported, in the order of the callbacks. */
struct hits {
    size_t n;
    uintptr_t v[HITS_MAX];
};

/* The match callback: appends value to the struct hits at arg (asserts room). */
void hits_collect(void *value, void *arg);

/* Sort h's values ascending. */
void hits_sort(struct hits *h);

/* Assert that h (sorted) holds exactly expect[0..n) (sorted ascending), each
 * once; `key` (the topic or filter matched) names the failure. */
void hits_expect(const struct hits *h, const char *key, const uintptr_t *expect, size_t n);

/* hits_expect with the expected values listed (at least one). */
#define HITS_EXPECT(h, key, ...)                                                                   \
    do {                                                                                           \
        const uintptr_t want_[] = {__VA_ARGS__};                                                   \
        hits_expect(h, key, want_, sizeof(want_) / sizeof(want_[0]));                              \
    } while (0)

/* Whether filter matches topic: level by level on NUL-terminated strings,
 * with the '$' rule (MQTT-4.7.2-1). */
bool ref_matches(const char *filter, const char *topic);

/* The random generator (xorshift64*): seeded by each test that uses it, so a
 * failure reproduces whichever tests ran before it in the process. */
void rng_seed(uint64_t seed);
/* A number in [0, bound). */
uint32_t rng(uint32_t bound);

enum { RAND_TOPICS = 3000, RAND_FILTERS = 3000, NAME_CAP = 64 };

/* A random topic of 1 to 5 levels from a few words (some empty, some with
 * '$'), or a filter that also has '+' and a last '#', into buf[cap]. */
void gen_topic(char *buf, size_t cap);
void gen_filter(char *buf, size_t cap);

/* Bytes the allocator has handed out (mallinfo2). Does not move under ASan,
 * whose allocator is not glibc's: tests skip then. */
size_t heap_in_use(void);

/* A destroy callback: counts the values (arg: size_t *) and frees them. */
void free_counted(void *value, void *arg);

#endif
