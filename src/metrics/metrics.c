/*
 * metrics: the exposition writer, the Prometheus text format 0.0.4 built into
 * one growing buffer, and metrics_render() which runs a collector into it.
 *
 * Owns the buffer and the list of metric names seen in this scrape (to write
 * HELP and TYPE once per name). Runs on whichever thread renders: the HTTP
 * thread for a scrape, the caller's for metrics_render(); a writer is never
 * shared between threads. It only formats what the collector hands it and
 * never reads broker state.
 */
#include "metrics/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/vec.h"

struct metrics_writer {
    char *buf; /* NUL-terminated whenever len > 0 or cap > 0 */
    size_t len;
    size_t cap;
    bool failed; /* out of memory: the output is incomplete */
    /*
     * Names already given their HELP/TYPE lines. The caller writes one
     * family's samples together, so the last name is the hit almost every
     * time; the list only matters for a name that comes back later.
     */
    char **names;
    uint32_t nnames;
    uint32_t names_cap;
};

/* Make room for `more` bytes plus a NUL. */
static bool writer_reserve(struct metrics_writer *w, size_t more)
{
    if (w->failed)
        return false;
    if (w->cap - w->len > more)
        return true;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap - w->len <= more) {
        if (cap > SIZE_MAX / 2) {
            w->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *buf = realloc(w->buf, cap);
    if (!buf) {
        w->failed = true;
        return false;
    }
    w->buf = buf;
    w->cap = cap;
    return true;
}

static void writer_put(struct metrics_writer *w, const char *s, size_t n)
{
    if (!writer_reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void writer_puts(struct metrics_writer *w, const char *s)
{
    writer_put(w, s, strlen(s));
}

/*
 * Length of the well-formed UTF-8 sequence at s (1..4), or 0 when s does not
 * start one: a stray continuation byte, C0/C1/F5..FF, an overlong form, a
 * surrogate, past U+10FFFF or cut short (the Unicode table of well-formed
 * byte sequences). Prometheus refuses a whole scrape over one such label.
 */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (n == 0)
        return 0;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/*
 * Copy s, escaping backslash and newline always and the double quote only in
 * label values: HELP text keeps its quotes as they are (text format 0.0.4).
 * A byte that is not part of well-formed UTF-8 is written as the text \xNN
 * (tenant ids come from plugins and may be any bytes).
 */
static void writer_put_escaped(struct metrics_writer *w, const char *s, bool quote)
{
    const char *run = s;
    while (*s) {
        char hex[8];
        const char *esc = NULL;
        size_t n = utf8_len((const unsigned char *)s);
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        else if (n == 0) {
            snprintf(hex, sizeof(hex), "\\\\x%02x", (unsigned)(unsigned char)*s);
            esc = hex;
        }
        if (!esc) {
            s += n;
            continue;
        }
        writer_put(w, run, (size_t)(s - run));
        writer_puts(w, esc);
        s++;
        run = s;
    }
    writer_put(w, run, (size_t)(s - run));
}

/*
 * Shortest of %.15g / %.17g that reads back to the same double, so integers
 * up to 2^53 print as integers and 0.1 prints as 0.1. Relies on the "C"
 * locale's decimal point, which ringmqd never changes (no setlocale()).
 */
static void writer_put_value(struct metrics_writer *w, double v)
{
    char tmp[40];
    if (isnan(v)) {
        writer_puts(w, "NaN");
        return;
    }
    if (isinf(v)) {
        writer_puts(w, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int n = snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    writer_put(w, tmp, (size_t)n);
}

static bool name_char_ok(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon;
    return !first && c >= '0' && c <= '9';
}

/* Metric names may hold colons, label names may not. */
static bool name_valid(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++)
        if (!name_char_ok(s[i], i == 0, colon))
            return false;
    return true;
}

static bool type_valid(const char *type)
{
    static const char *const types[] = {"counter", "gauge", "untyped", "summary", "histogram"};
    if (!type)
        return true;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

/* Returns the reason the labels cannot be written, or NULL when they can. */
static const char *labels_check(const char *const *keys, const char *const *values)
{
    if (!keys)
        return values && values[0] ? "label values without keys" : NULL;
    for (size_t i = 0; keys[i]; i++) {
        if (!name_valid(keys[i], false) || strncmp(keys[i], "__", 2) == 0)
            return "invalid label name";
        if (!values || !values[i])
            return "label key without a value";
    }
    return NULL;
}

/*
 * True the first time `name` is seen in this scrape (and remembers it).
 * Out of memory answers true: a duplicate HELP line is better than none.
 */
static bool writer_first_sight(struct metrics_writer *w, const char *name)
{
    if (w->nnames && strcmp(w->names[w->nnames - 1], name) == 0)
        return false;
    for (size_t i = 0; i + 1 < w->nnames; i++) {
        if (strcmp(w->names[i], name) == 0) {
            log_ratelimited(LOG_LEVEL_WARN,
                            "metrics: samples of %s are not consecutive; the scrape is malformed",
                            name);
            return false;
        }
    }
    if (w->nnames == w->names_cap) {
        char **names = vec_grow(w->names, &w->names_cap, sizeof(*names), 32);
        if (!names) {
            w->failed = true;
            return true;
        }
        w->names = names;
    }
    char *copy = strdup(name);
    if (!copy) {
        w->failed = true;
        return true;
    }
    w->names[w->nnames++] = copy;
    return true;
}

void metrics_write(struct metrics_writer *w, const char *name, const char *help, const char *type,
                   const char *const *label_keys, const char *const *label_values, double value)
{
    const char *why = NULL;
    if (!name_valid(name, true))
        why = "invalid metric name";
    else if (!type_valid(type))
        why = "unknown type";
    else
        why = labels_check(label_keys, label_values);
    if (why) {
        log_ratelimited(LOG_LEVEL_WARN, "metrics: sample %s skipped: %s", name ? name : "(null)",
                        why);
        return;
    }
    if (writer_first_sight(w, name)) {
        if (help) {
            writer_puts(w, "# HELP ");
            writer_puts(w, name);
            writer_puts(w, " ");
            writer_put_escaped(w, help, false);
            writer_puts(w, "\n");
        }
        if (type) {
            writer_puts(w, "# TYPE ");
            writer_puts(w, name);
            writer_puts(w, " ");
            writer_puts(w, type);
            writer_puts(w, "\n");
        }
    }
    writer_puts(w, name);
    if (label_keys && label_keys[0]) {
        writer_puts(w, "{");
        for (size_t i = 0; label_keys[i]; i++) {
            if (i)
                writer_puts(w, ",");
            writer_puts(w, label_keys[i]);
            writer_puts(w, "=\"");
            writer_put_escaped(w, label_values[i], true);
            writer_puts(w, "\"");
        }
        writer_puts(w, "}");
    }
    writer_puts(w, " ");
    writer_put_value(w, value);
    writer_puts(w, "\n");
}

static void writer_destroy(struct metrics_writer *w)
{
    for (size_t i = 0; i < w->nnames; i++)
        free(w->names[i]);
    free(w->names);
    free(w->buf);
    free(w);
}

char *metrics_render(metrics_collect_fn collect, void *arg, size_t *len)
{
    struct metrics_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    if (collect)
        collect(w, arg);
    writer_put(w, "", 0); /* nothing written still hands back "" */
    char *out = NULL;
    if (!w->failed) {
        out = w->buf;
        if (len)
            *len = w->len;
        w->buf = NULL;
    }
    writer_destroy(w);
    return out;
}
