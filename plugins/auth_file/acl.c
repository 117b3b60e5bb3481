/*
 * ACL file parsing and topic checks for the auth_file plugin. Owns the rule
 * tables of one ACL file version; built by acl_load (on the thread calling
 * init or reload), then read concurrently by shard threads without locks.
 * Checks allocate only when a substituted rule does not fit a stack buffer.
 */
#include "acl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/strmap.h"

enum {
    ACL_READ = 1u << 0,
    ACL_WRITE = 1u << 1,
    ACL_DENY = 1u << 2,
};

struct acl_rule {
    char *filter;
    size_t len;
    unsigned access;
    bool subst; /* holds %u or %c */
};

struct acl_rules {
    struct acl_rule *v;
    size_t n, cap;
};

struct acl_user {
    char *user_id;
    struct acl_rules rules;
};

struct acl_tenant {
    char *name;
    struct acl_rules all; /* everyone in the tenant */
    struct strmap users;  /* user id -> struct acl_user */
    struct acl_user **user_list;
    size_t n_users, cap_users;
};

struct acl {
    struct strmap tenants; /* name -> struct acl_tenant */
    struct acl_tenant **list;
    size_t n, cap;
};

/* ---- MQTT filter matching ---- */

/* Step to the next level of s[0..n): levels are separated by '/', and "a/"
 * has two levels, "a" and "". *pos > n once every level was returned. */
static bool level_next(const char *s, size_t n, size_t *pos, const char **lv, size_t *lv_len)
{
    if (*pos > n)
        return false;
    const char *start = s + *pos;
    const char *slash = memchr(start, '/', n - *pos);
    size_t len = slash ? (size_t)(slash - start) : n - *pos;
    *lv = start;
    *lv_len = len;
    *pos += len + 1;
    return true;
}

static bool level_is(const char *lv, size_t len, char c)
{
    return len == 1 && lv[0] == c;
}

bool acl_filter_covers(const char *rule, size_t rule_len, const char *filter, size_t filter_len)
{
    size_t rp = 0, fp = 0;
    bool first = true;
    for (;;) {
        const char *rl = NULL, *fl = NULL;
        size_t rn = 0, fn = 0;
        bool rh = level_next(rule, rule_len, &rp, &rl, &rn);
        bool fh = level_next(filter, filter_len, &fp, &fl, &fn);
        if (!rh)
            return !fh;
        if (level_is(rl, rn, '#')) {
            /* MQTT-4.7.2-1: a rule starting with a wildcard does not match
             * topics starting with '$'. "a/#" also matches "a" itself
             * (MQTT-4.7.1-2), hence no need for a level in filter. */
            return !(first && fh && fn > 0 && fl[0] == '$');
        }
        if (!fh)
            return false;
        if (level_is(rl, rn, '+')) {
            /* '+' covers exactly one level: not a multi-level '#'. */
            if (level_is(fl, fn, '#'))
                return false;
            if (first && fn > 0 && fl[0] == '$') /* MQTT-4.7.2-1 */
                return false;
        } else if (rn != fn || memcmp(rl, fl, rn) != 0) {
            /* Also refuses '+' / '#' in filter against a literal level. */
            return false;
        }
        first = false;
    }
}

static bool dollar_level(const char *lv, size_t len)
{
    return len > 0 && lv[0] == '$';
}

bool acl_filters_intersect(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t ap = 0, bp = 0;
    bool first = true;
    for (;;) {
        const char *al = NULL, *bl = NULL;
        size_t an = 0, bn = 0;
        bool ah = level_next(a, a_len, &ap, &al, &an);
        bool bh = level_next(b, b_len, &bp, &bl, &bn);
        if (!ah && !bh)
            return true;
        if (ah && level_is(al, an, '#'))
            return !(first && bh && dollar_level(bl, bn)); /* MQTT-4.7.2-1 */
        if (bh && level_is(bl, bn, '#'))
            return !(first && ah && dollar_level(al, an));
        if (!ah || !bh)
            return false;
        bool aw = level_is(al, an, '+'), bw = level_is(bl, bn, '+');
        if (aw || bw) {
            if (first && ((aw && dollar_level(bl, bn)) || (bw && dollar_level(al, an))))
                return false;
        } else if (an != bn || memcmp(al, bl, an) != 0) {
            return false;
        }
        first = false;
    }
}

/* ---- parsing ---- */

static void acl_rules_free(struct acl_rules *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].filter);
    free(r->v);
}

void acl_destroy(struct acl *acl)
{
    if (!acl)
        return;
    for (size_t i = 0; i < acl->n; i++) {
        struct acl_tenant *t = acl->list[i];
        for (size_t j = 0; j < t->n_users; j++) {
            acl_rules_free(&t->user_list[j]->rules);
            free(t->user_list[j]->user_id);
            free(t->user_list[j]);
        }
        free(t->user_list);
        strmap_fini(&t->users);
        acl_rules_free(&t->all);
        free(t->name);
        free(t);
    }
    free(acl->list);
    strmap_fini(&acl->tenants);
    free(acl);
}

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(*v, c * elem);
    if (!p)
        return -ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Split off the first word of *s (space separated); *s moves past it. */
static char *word(char **s)
{
    char *w = *s;
    char *e = w + strcspn(w, " \t");
    if (*e) {
        *e++ = '\0';
        while (*e == ' ' || *e == '\t')
            e++;
    }
    *s = e;
    return w;
}

/* A valid MQTT filter: non-empty, '+' and '#' only as whole levels, '#' only
 * last (MQTT-4.7.1-1, MQTT-4.7.1-2, MQTT-4.7.1-3). */
static bool filter_valid(const char *f)
{
    size_t n = strlen(f);
    if (n == 0)
        return false;
    size_t pos = 0;
    const char *lv;
    size_t len;
    while (level_next(f, n, &pos, &lv, &len)) {
        bool last = pos > n;
        for (size_t i = 0; i < len; i++)
            if ((lv[i] == '+' || lv[i] == '#') && len != 1)
                return false;
        if (level_is(lv, len, '#') && !last)
            return false;
    }
    return true;
}

static int parse_access(const char *w, unsigned *out)
{
    if (strcmp(w, "read") == 0)
        *out = ACL_READ;
    else if (strcmp(w, "write") == 0)
        *out = ACL_WRITE;
    else if (strcmp(w, "readwrite") == 0)
        *out = ACL_READ | ACL_WRITE;
    else if (strcmp(w, "deny") == 0)
        *out = ACL_DENY;
    else
        return -EINVAL;
    return 0;
}

static int rules_add(struct acl_rules *r, unsigned access, const char *filter)
{
    int rc = grow((void **)&r->v, &r->cap, r->n, sizeof(*r->v));
    if (rc != 0)
        return rc;
    char *f = strdup(filter);
    if (!f)
        return -ENOMEM;
    r->v[r->n++] = (struct acl_rule){
        .filter = f,
        .len = strlen(f),
        .access = access,
        .subst = strstr(f, "%u") || strstr(f, "%c"),
    };
    return 0;
}

static struct acl_tenant *tenant_get(struct acl *acl, const char *name)
{
    struct acl_tenant *t = strmap_get(&acl->tenants, name, strlen(name));
    if (t)
        return t; /* a second section of the same tenant adds to it */
    if (grow((void **)&acl->list, &acl->cap, acl->n, sizeof(*acl->list)) != 0)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = strdup(name);
    strmap_init(&t->users);
    if (!t->name || strmap_put(&acl->tenants, t->name, strlen(t->name), t) != 0) {
        free(t->name);
        free(t);
        return NULL;
    }
    acl->list[acl->n++] = t;
    return t;
}

static struct acl_user *user_get(struct acl_tenant *t, const char *id)
{
    struct acl_user *u = strmap_get(&t->users, id, strlen(id));
    if (u)
        return u;
    if (grow((void **)&t->user_list, &t->cap_users, t->n_users, sizeof(*t->user_list)) != 0)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->user_id = strdup(id);
    if (!u->user_id || strmap_put(&t->users, u->user_id, strlen(u->user_id), u) != 0) {
        free(u->user_id);
        free(u);
        return NULL;
    }
    t->user_list[t->n_users++] = u;
    return u;
}

/* One line; `t` and `u` are the current section and user block. Returns 0
 * or -EINVAL / -ENOMEM with a message (without location) in err. */
static int parse_line(struct acl *acl, char *line, struct acl_tenant **t, struct acl_user **u,
                      char *err, size_t errlen)
{
    if (line[0] == '[') {
        size_t n = strlen(line);
        if (n < 3 || line[n - 1] != ']') {
            snprintf(err, errlen, "bad section header");
            return -EINVAL;
        }
        line[n - 1] = '\0';
        char *rest = trim(line + 1);
        char *kw = word(&rest);
        if (strcmp(kw, "tenant") != 0 || !*rest || strpbrk(rest, " \t")) {
            snprintf(err, errlen, "expected [tenant NAME]");
            return -EINVAL;
        }
        *t = tenant_get(acl, rest);
        *u = NULL;
        return *t ? 0 : -ENOMEM;
    }
    char *rest = line;
    char *kw = word(&rest);
    if (!*t) {
        snprintf(err, errlen, "'%s' outside a [tenant NAME] section", kw);
        return -EINVAL;
    }
    if (strcmp(kw, "user") == 0) {
        if (!*rest || strpbrk(rest, " \t")) {
            snprintf(err, errlen, "expected: user USER_ID");
            return -EINVAL;
        }
        *u = user_get(*t, rest);
        return *u ? 0 : -ENOMEM;
    }
    bool pattern = strcmp(kw, "pattern") == 0;
    if (!pattern && strcmp(kw, "topic") != 0) {
        snprintf(err, errlen, "unknown keyword '%s'", kw);
        return -EINVAL;
    }
    unsigned access;
    if (parse_access(word(&rest), &access) != 0) {
        snprintf(err, errlen, "expected read, write, readwrite or deny after '%s'", kw);
        return -EINVAL;
    }
    if (!filter_valid(rest)) {
        snprintf(err, errlen, "not a valid topic filter: '%s'", rest);
        return -EINVAL;
    }
    /* `pattern` is for everyone in the tenant wherever it appears; `topic`
     * is for the current user block, or everyone before the first one. */
    struct acl_rules *r = (pattern || !*u) ? &(*t)->all : &(*u)->rules;
    return rules_add(r, access, rest);
}

int acl_load(const char *path, struct acl **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct acl *acl = calloc(1, sizeof(*acl));
    if (!acl) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    strmap_init(&acl->tenants);
    struct acl_tenant *t = NULL;
    struct acl_user *u = NULL;
    char *buf = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    while (getline(&buf, &cap, f) >= 0) {
        lineno++;
        char *line = trim(buf);
        if (!*line || line[0] == '#')
            continue;
        char msg[200];
        rc = parse_line(acl, line, &t, &u, msg, sizeof(msg));
        if (rc != 0) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, rc == -ENOMEM ? "out of memory" : msg);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: read error", path);
    }
    free(buf);
    fclose(f);
    if (rc != 0) {
        acl_destroy(acl);
        return rc;
    }
    *out = acl;
    return 0;
}

/* ---- checks ---- */

/* A value substituted into a rule must stay one literal level: a client id
 * "+" must not turn "devices/%c/status" into a wildcard. */
static bool subst_value_ok(const uint8_t *v, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (v[i] == '/' || v[i] == '+' || v[i] == '#' || v[i] == '\0')
            return false;
    return true;
}

struct acl_subject {
    const uint8_t *user_id;
    size_t user_id_len;
    bool user_ok;
    const uint8_t *client_id;
    size_t client_id_len;
    bool client_ok;
};

/* How a rule is compared with a topic or filter. */
enum rule_test {
    RULE_COVERS,     /* every topic the filter matches, the rule matches too */
    RULE_INTERSECTS, /* some topic matched by the filter is matched by the rule */
};

/* Does rule `r` (with %u / %c substituted) pass `test` against the topic
 * or filter? A rule whose substitution is impossible does not. */
static bool rule_matches(const struct acl_rule *r, const struct acl_subject *s, enum rule_test test,
                         const char *topic, size_t topic_len)
{
    /* Out of memory for a long substitution: fail closed, which is for a
     * deny rule to apply and a grant not to. */
    bool fail_closed = (r->access & ACL_DENY) != 0;
    const char *f = r->filter;
    size_t n = r->len;
    char stack[256];
    char *heap = NULL;
    if (r->subst) {
        size_t need = 0;
        for (size_t i = 0; i < r->len; i++) {
            /* First in the rule, a value starting with '$' would turn
             * "%c/#" into "$share/G/#" (every message of the tenant) or
             * "$SYS/#" (MQTT-4.7.2-1 keeps those apart on purpose). */
            if (r->filter[i] == '%' && i + 1 < r->len && r->filter[i + 1] == 'u') {
                if (!s->user_ok || (i == 0 && s->user_id[0] == '$'))
                    return false;
                need += s->user_id_len;
                i++;
            } else if (r->filter[i] == '%' && i + 1 < r->len && r->filter[i + 1] == 'c') {
                if (!s->client_ok || (i == 0 && s->client_id[0] == '$'))
                    return false;
                need += s->client_id_len;
                i++;
            } else {
                need++;
            }
        }
        char *out = stack;
        if (need > sizeof(stack)) {
            heap = malloc(need);
            if (!heap)
                return fail_closed;
            out = heap;
        }
        size_t o = 0;
        for (size_t i = 0; i < r->len; i++) {
            const uint8_t *v = NULL;
            size_t vl = 0;
            if (r->filter[i] == '%' && i + 1 < r->len && r->filter[i + 1] == 'u') {
                v = s->user_id, vl = s->user_id_len;
            } else if (r->filter[i] == '%' && i + 1 < r->len && r->filter[i + 1] == 'c') {
                v = s->client_id, vl = s->client_id_len;
            } else {
                out[o++] = r->filter[i];
                continue;
            }
            memcpy(out + o, v, vl);
            o += vl;
            i++;
        }
        f = out;
        n = o;
    }
    bool m = test == RULE_INTERSECTS ? acl_filters_intersect(f, n, topic, topic_len)
                                     : acl_filter_covers(f, n, topic, topic_len);
    free(heap);
    return m;
}

static bool rules_match(const struct acl_rules *r, const struct acl_subject *s, unsigned want,
                        enum rule_test test, const char *topic, size_t topic_len)
{
    for (size_t i = 0; i < r->n; i++)
        if ((r->v[i].access & want) && rule_matches(&r->v[i], s, test, topic, topic_len))
            return true;
    return false;
}

/* The filter inside "$share/GROUP/FILTER" or "$oshare/GROUP/FILTER": the
 * topics such a subscription delivers. False for any other filter. */
static bool shared_inner(const char *f, size_t n, const char **inner, size_t *inner_len)
{
    size_t pre;
    if (n > 7 && memcmp(f, "$share/", 7) == 0)
        pre = 7;
    else if (n > 8 && memcmp(f, "$oshare/", 8) == 0)
        pre = 8;
    else
        return false;
    const char *slash = memchr(f + pre, '/', n - pre);
    if (!slash || (size_t)(slash + 1 - f) >= n)
        return false;
    *inner = slash + 1;
    *inner_len = n - (size_t)(slash + 1 - f);
    return true;
}

/* The rules that apply to one client: its tenant's, and its user block's. */
struct acl_scope {
    const struct acl_tenant *t;
    const struct acl_user *u; /* NULL: no block for this user id */
    struct acl_subject s;
};

/* False for a tenant without a section (it gets nothing). */
static bool scope_of(const struct acl *acl, const char *tenant, const char *user_id,
                     const uint8_t *client_id, size_t client_id_len, struct acl_scope *sc)
{
    sc->t = strmap_get(&acl->tenants, tenant, strlen(tenant));
    if (!sc->t)
        return false;
    sc->u = user_id ? strmap_get(&sc->t->users, user_id, strlen(user_id)) : NULL;
    sc->s = (struct acl_subject){
        .user_id = (const uint8_t *)user_id,
        .user_id_len = user_id ? strlen(user_id) : 0,
        .client_id = client_id,
        .client_id_len = client_id_len,
    };
    sc->s.user_ok = user_id && subst_value_ok(sc->s.user_id, sc->s.user_id_len);
    sc->s.client_ok = subst_value_ok(client_id, client_id_len);
    return true;
}

static bool scope_match(const struct acl_scope *sc, unsigned want, enum rule_test test,
                        const char *topic, size_t len)
{
    return rules_match(&sc->t->all, &sc->s, want, test, topic, len) ||
           (sc->u && rules_match(&sc->u->rules, &sc->s, want, test, topic, len));
}

bool acl_may_publish(const struct acl *acl, const char *tenant, const char *user_id,
                     const uint8_t *client_id, size_t client_id_len, const uint8_t *topic,
                     size_t topic_len)
{
    struct acl_scope sc;
    if (!scope_of(acl, tenant, user_id, client_id, client_id_len, &sc))
        return false;
    const char *tp = (const char *)topic;
    /* A deny rule wins over every grant, wherever it is written. */
    return !scope_match(&sc, ACL_DENY, RULE_COVERS, tp, topic_len) &&
           scope_match(&sc, ACL_WRITE, RULE_COVERS, tp, topic_len);
}

bool acl_may_read(const struct acl *acl, const char *tenant, const char *user_id,
                  const uint8_t *client_id, size_t client_id_len, const uint8_t *topic,
                  size_t topic_len)
{
    struct acl_scope sc;
    if (!scope_of(acl, tenant, user_id, client_id, client_id_len, &sc))
        return false;
    /* Grants were judged on the filter when the client subscribed; only
     * the deny rules are asked about each topic. */
    return !scope_match(&sc, ACL_DENY, RULE_COVERS, (const char *)topic, topic_len);
}

enum acl_sub acl_may_subscribe(const struct acl *acl, const char *tenant, const char *user_id,
                               const uint8_t *client_id, size_t client_id_len,
                               const uint8_t *filter, size_t filter_len)
{
    struct acl_scope sc;
    if (!scope_of(acl, tenant, user_id, client_id, client_id_len, &sc))
        return ACL_SUB_DENIED;
    const char *f = (const char *)filter;
    /* A shared subscription delivers its inner filter's topics: a deny on
     * those applies to it too, whatever grants "$share/..." itself. */
    const char *in = f;
    size_t in_len = filter_len;
    bool shared = shared_inner(f, filter_len, &in, &in_len);
    /* Refused when one deny rule covers every topic the filter can match
     * (several rules covering it only together are not looked for: the
     * subscription is then granted per topic and delivers nothing), or
     * when no read rule covers the filter as written. */
    if (scope_match(&sc, ACL_DENY, RULE_COVERS, f, filter_len) ||
        (shared && scope_match(&sc, ACL_DENY, RULE_COVERS, in, in_len)) ||
        !scope_match(&sc, ACL_READ, RULE_COVERS, f, filter_len))
        return ACL_SUB_DENIED;
    /* A deny rule that overlaps it without covering it: every topic
     * delivered through it is checked (acl_may_read). */
    if (scope_match(&sc, ACL_DENY, RULE_INTERSECTS, f, filter_len) ||
        (shared && scope_match(&sc, ACL_DENY, RULE_INTERSECTS, in, in_len)))
        return ACL_SUB_PER_TOPIC;
    return ACL_SUB_GRANTED;
}
