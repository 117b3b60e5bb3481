/*
 * config/report: what one live reload did, kept for its caller (the admin
 * API answers with it): the changes put in force, the keys that need a
 * restart (kept as they run), and the errors that refused the whole
 * reload. Filled on the thread that reloads; plain heap data, no locks.
 */
#ifndef RINGMQ_CONFIG_REPORT_H
#define RINGMQ_CONFIG_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* One change in force: `key` is "section.key", or "section" for a whole
 * section; `what` "changed", "added" or "removed"; from/to the values as
 * text (NULL: none, see struct config_change). Strings owned by the report. */
struct config_report_change {
    char *key;
    const char *what; /* static */
    char *from, *to;
};

/* One reason the reload was refused: the file and line when the reason
 * is in the file (file NULL: none; line 0: the whole file, an override
 * or the running broker), and the reason. */
struct config_report_error {
    char *file;
    uint32_t line;
    char *message;
};

struct config_report {
    struct config_report_change *changed;
    size_t nchanged;
    char **restart; /* keys as in changed[].key */
    size_t nrestart;
    struct config_report_error *errors;
    size_t nerrors;
    bool truncated; /* out of memory: some entries are missing (the log has them) */
};

/* An empty report. */
void config_report_init(struct config_report *r);

/* Add ch: to `changed` when live, else to `restart`. */
void config_report_change(struct config_report *r, const struct config_change *ch);

/* Add an error from its one-line text: config_load's "FILE:LINE: reason"
 * (FILE being `path`), "--set ARG: reason" (file "--set ARG"), or any
 * other text (no file). path may be NULL. */
void config_report_error(struct config_report *r, const char *path, const char *text);

/* Forget the changes (a reload that failed after the diff changed nothing). */
void config_report_clear_changes(struct config_report *r);

/* Free what the report holds; it is empty again. */
void config_report_fini(struct config_report *r);

#endif
