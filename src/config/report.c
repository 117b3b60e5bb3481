/*
 * config/report: the outcome of one reload as data (report.h). Every entry
 * is malloc'd; out of memory loses the entry (marked `truncated`), never
 * the reload.
 */
#include "config/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_report_init(struct config_report *r)
{
    memset(r, 0, sizeof(*r));
}

/* Room for one more entry of size `size` in *v (n entries). */
static bool grow(void **v, size_t n, size_t size)
{
    if (n & (n - 1) || (n && n < 8)) /* not a power of two: room is left */
        return true;
    void *p = realloc(*v, (n < 8 ? 8 : n * 2) * size);
    if (!p)
        return false;
    *v = p;
    return true;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *key_text(const struct config_change *ch)
{
    char buf[sizeof(ch->section) + 80];
    if (!strcmp(ch->key, "*"))
        snprintf(buf, sizeof(buf), "%s", ch->section);
    else
        snprintf(buf, sizeof(buf), "%s.%s", ch->section, ch->key);
    return strdup(buf);
}

void config_report_change(struct config_report *r, const struct config_change *ch)
{
    char *key = key_text(ch);
    if (!key) {
        r->truncated = true;
        return;
    }
    if (!ch->live) {
        if (!grow((void **)&r->restart, r->nrestart, sizeof(*r->restart))) {
            free(key);
            r->truncated = true;
            return;
        }
        r->restart[r->nrestart++] = key;
        return;
    }
    struct config_report_change c = {key, ch->what, dup_or_null(ch->from), dup_or_null(ch->to)};
    if ((ch->from && !c.from) || (ch->to && !c.to) ||
        !grow((void **)&r->changed, r->nchanged, sizeof(*r->changed))) {
        free(c.key);
        free(c.from);
        free(c.to);
        r->truncated = true;
        return;
    }
    r->changed[r->nchanged++] = c;
}

/* text = "FILE:LINE: reason" or "FILE: reason" with FILE = path: the file,
 * the line (0: none) and where the reason starts; NULL when it is not. */
static const char *split_file(const char *path, const char *text, uint32_t *line)
{
    size_t n = path ? strlen(path) : 0;
    if (!n || strncmp(text, path, n) != 0 || text[n] != ':')
        return NULL;
    const char *p = text + n + 1;
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end != p && end[0] == ':' && end[1] == ' ' && v <= UINT32_MAX) {
        *line = (uint32_t)v;
        return end + 2;
    }
    *line = 0;
    return p[0] == ' ' ? p + 1 : p;
}

void config_report_error(struct config_report *r, const char *path, const char *text)
{
    struct config_report_error e = {0};
    const char *msg = split_file(path, text, &e.line);
    if (msg) {
        e.file = strdup(path);
    } else if (!strncmp(text, "--set ", 6) && strstr(text, ": ")) {
        const char *colon = strstr(text, ": ");
        e.file = strndup(text, (size_t)(colon - text));
        msg = colon + 2;
    } else {
        msg = text;
    }
    e.message = strdup(msg);
    if (!e.message || (msg != text && !e.file) ||
        !grow((void **)&r->errors, r->nerrors, sizeof(*r->errors))) {
        free(e.file);
        free(e.message);
        r->truncated = true;
        return;
    }
    r->errors[r->nerrors++] = e;
}

void config_report_clear_changes(struct config_report *r)
{
    for (size_t i = 0; i < r->nchanged; i++) {
        free(r->changed[i].key);
        free(r->changed[i].from);
        free(r->changed[i].to);
    }
    free(r->changed);
    r->changed = NULL;
    r->nchanged = 0;
    for (size_t i = 0; i < r->nrestart; i++)
        free(r->restart[i]);
    free(r->restart);
    r->restart = NULL;
    r->nrestart = 0;
}

void config_report_fini(struct config_report *r)
{
    config_report_clear_changes(r);
    for (size_t i = 0; i < r->nerrors; i++) {
        free(r->errors[i].file);
        free(r->errors[i].message);
    }
    free(r->errors);
    config_report_init(r);
}
