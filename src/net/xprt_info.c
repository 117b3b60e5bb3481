/*
 * xprt_info: packing a transport's view of the client into one block (see
 * xprt_info.h).
 */
#include "net/xprt_info.h"

#include <stdlib.h>
#include <string.h>

static size_t field_len(const char *s)
{
    return s ? strnlen(s, XPRT_INFO_FIELD_MAX) : 0;
}

/* Copy s (cut) to *w, NUL-terminated; where it now is, or NULL for NULL. */
static const char *put(char **w, const char *s)
{
    if (!s)
        return NULL;
    size_t n = field_len(s);
    char *at = *w;
    memcpy(at, s, n);
    at[n] = '\0';
    *w += n + 1;
    return at;
}

struct xprt_info *xprt_info_pack(const struct xprt_info_draft *d)
{
    const char *const one[] = {d->tls_version, d->cipher, d->sni, d->subject, d->cn, d->sha256};
    size_t n_sans = d->n_sans < XPRT_INFO_MAX_SANS ? d->n_sans : XPRT_INFO_MAX_SANS;
    size_t need = sizeof(struct xprt_info);
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++)
        need += one[i] ? field_len(one[i]) + 1 : 0;
    for (size_t i = 0; i < n_sans; i++)
        need += field_len(d->sans[i]) + 1;
    struct xprt_info *x = calloc(1, need);
    if (!x)
        return NULL;
    char *w = (char *)(x + 1);
    x->from_proxy = d->from_proxy;
    x->cert_verified = d->cert_verified;
    x->tls_version = put(&w, d->tls_version);
    x->cipher = put(&w, d->cipher);
    x->sni = put(&w, d->sni);
    x->subject = put(&w, d->subject);
    x->cn = put(&w, d->cn);
    x->sha256 = put(&w, d->sha256);
    for (size_t i = 0; i < n_sans; i++)
        if (d->sans[i])
            x->sans[x->n_sans++] = put(&w, d->sans[i]);
    return x;
}
