/*
 * admin/tls: reads the admin API's PEM files and checks them with GnuTLS
 * (tls.h), and checks a caller's certificate on its session. GnuTLS here,
 * not wolfSSL as on the MQTT listeners: libmicrohttpd runs the handshake
 * with it, so its verdict on a file is the one that counts. Owns the PEM
 * copies until admin_tls_fini, and the generations of served credentials
 * (struct admin_tls_creds) until admin_tls_creds_free_all. Main thread or
 * the reloading one (load, publish), admin thread (handshakes, peer
 * check); logs nothing.
 */
#include "admin/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* The whole file at `path` as a NUL-terminated string into *out; 0 or
 * -errno with "admin: KEY PATH: reason" in err. A NUL inside is refused:
 * libmicrohttpd measures the text with strlen. */
static int pem_read(const char *key, const char *path, char **out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "admin: %s %s: %s", key, path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    int rc = -EINVAL;
    char *buf = NULL;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > (off_t)ADMIN_TLS_FILE_MAX) {
        snprintf(err, errlen, "admin: %s %s: not a PEM file of 1 byte to %u KiB", key, path,
                 ADMIN_TLS_FILE_MAX / 1024);
        goto out;
    }
    size_t n = (size_t)st.st_size, got = 0;
    if (!(buf = malloc(n + 1))) {
        rc = -ENOMEM;
        snprintf(err, errlen, "admin: %s %s: out of memory", key, path);
        goto out;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            snprintf(err, errlen, "admin: %s %s: %s", key, path,
                     r < 0 ? strerror(-rc) : "shorter than its size");
            goto out;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        snprintf(err, errlen, "admin: %s %s: not a PEM file (a NUL byte inside)", key, path);
        goto out;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static gnutls_datum_t datum(const char *pem)
{
    return (gnutls_datum_t){(unsigned char *)pem, (unsigned int)strlen(pem)};
}

/* The certificate and the key each parse, and the key is the
 * certificate's; the CA file holds at least one certificate. */
static int pem_check(const struct admin_tls *t, const struct config *cfg, char *err, size_t errlen)
{
    gnutls_datum_t cert = datum(t->cert), key = datum(t->key);
    gnutls_x509_crt_t *crts = NULL;
    unsigned int ncrts = 0;
    int g = gnutls_x509_crt_list_import2(&crts, &ncrts, &cert, GNUTLS_X509_FMT_PEM, 0);
    for (unsigned int i = 0; g >= 0 && i < ncrts; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (g < 0) {
        snprintf(err, errlen, "admin: tls_cert %s: no PEM certificate (%s)", cfg->admin_tls_cert,
                 gnutls_strerror(g));
        return -EINVAL;
    }
    gnutls_x509_privkey_t pk;
    if ((g = gnutls_x509_privkey_init(&pk)) == 0) {
        g = gnutls_x509_privkey_import2(pk, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
        gnutls_x509_privkey_deinit(pk);
    }
    if (g < 0) {
        snprintf(err, errlen, "admin: tls_key %s: no unencrypted PEM private key (%s)",
                 cfg->admin_tls_key, gnutls_strerror(g));
        return -EINVAL;
    }
    gnutls_certificate_credentials_t cred;
    if ((g = gnutls_certificate_allocate_credentials(&cred)) < 0) {
        snprintf(err, errlen, "admin: TLS: %s", gnutls_strerror(g));
        return -ENOMEM;
    }
    int rc = 0;
    g = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (g == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
        snprintf(err, errlen, "admin: tls_key %s is not the key of tls_cert %s", cfg->admin_tls_key,
                 cfg->admin_tls_cert);
        rc = -EINVAL;
    } else if (g < 0) {
        snprintf(err, errlen, "admin: tls_cert %s with tls_key %s: %s", cfg->admin_tls_cert,
                 cfg->admin_tls_key, gnutls_strerror(g));
        rc = -EINVAL;
    } else if (t->client_ca) {
        gnutls_datum_t ca = datum(t->client_ca);
        g = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (g <= 0) {
            snprintf(err, errlen, "admin: tls_client_ca %s: no PEM certificate%s%s",
                     cfg->admin_tls_client_ca, g < 0 ? ": " : "", g < 0 ? gnutls_strerror(g) : "");
            rc = -EINVAL;
        }
    }
    gnutls_certificate_free_credentials(cred);
    return rc;
}

int admin_tls_load(struct admin_tls *t, const struct config *cfg, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (!cfg->admin_tls_cert[0])
        return 0;
    int rc = pem_read("tls_cert", cfg->admin_tls_cert, &t->cert, err, errlen);
    if (rc == 0)
        rc = pem_read("tls_key", cfg->admin_tls_key, &t->key, err, errlen);
    if (rc == 0 && cfg->admin_tls_client_ca[0])
        rc = pem_read("tls_client_ca", cfg->admin_tls_client_ca, &t->client_ca, err, errlen);
    if (rc == 0)
        rc = pem_check(t, cfg, err, errlen);
    if (rc < 0)
        admin_tls_fini(t);
    return rc;
}

void admin_tls_fini(struct admin_tls *t)
{
    free(t->cert);
    /* The key is a secret: not left in freed memory. */
    if (t->key)
        explicit_bzero(t->key, strlen(t->key));
    free(t->key);
    free(t->client_ca);
    memset(t, 0, sizeof(*t));
}

/* ---- served credentials, one generation per load ----------------------- */

/* The longest certificate chain tls_cert may hold, and a caller may show. */
#define ADMIN_TLS_CHAIN_MAX 16

struct admin_tls_creds {
    struct admin_tls_creds *older; /* published before: kept until free_all */
    gnutls_pcert_st pcerts[ADMIN_TLS_CHAIN_MAX];
    unsigned int npcerts;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t trust; /* NULL: no tls_client_ca */
};

/*
 * The generation new handshakes get, and every one published (a handshake
 * on the admin thread may hold an older one while a reload publishes).
 * File-scope because GnuTLS's certificate callback has no argument: one
 * admin API per process. Written by one thread at a time (start, the
 * reload lock, stop after the daemon is gone).
 */
static _Atomic(struct admin_tls_creds *) serving;
static struct admin_tls_creds *published;

void admin_tls_creds_destroy(struct admin_tls_creds *c)
{
    if (!c)
        return;
    for (unsigned int i = 0; i < c->npcerts; i++)
        gnutls_pcert_deinit(&c->pcerts[i]);
    if (c->key)
        gnutls_privkey_deinit(c->key);
    if (c->trust)
        gnutls_x509_trust_list_deinit(c->trust, 1);
    free(c);
}

/* The chain and key of t (checked by admin_tls_load) into c. */
static int creds_chain(struct admin_tls_creds *c, const struct admin_tls *t,
                       const struct config *cfg, char *err, size_t errlen)
{
    gnutls_datum_t cert = datum(t->cert), key = datum(t->key);
    c->npcerts = ADMIN_TLS_CHAIN_MAX;
    /* Sorted, as GnuTLS's own loading of a key and chain does. */
    int g = gnutls_pcert_list_import_x509_raw(c->pcerts, &c->npcerts, &cert, GNUTLS_X509_FMT_PEM,
                                              GNUTLS_X509_CRT_LIST_SORT);
    if (g < 0) {
        c->npcerts = 0;
        snprintf(err, errlen, "admin: tls_cert %s: %s (a chain of at most %d certificates)",
                 cfg->admin_tls_cert, gnutls_strerror(g), ADMIN_TLS_CHAIN_MAX);
        return -EINVAL;
    }
    if ((g = gnutls_privkey_init(&c->key)) == 0)
        g = gnutls_privkey_import_x509_raw(c->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (g < 0) {
        snprintf(err, errlen, "admin: tls_key %s: %s", cfg->admin_tls_key, gnutls_strerror(g));
        return -EINVAL;
    }
    return 0;
}

int admin_tls_creds_create(const struct admin_tls *t, const struct config *cfg,
                           struct admin_tls_creds **out, char *err, size_t errlen)
{
    *out = NULL;
    struct admin_tls_creds *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "admin: TLS: out of memory");
        return -ENOMEM;
    }
    int rc = creds_chain(c, t, cfg, err, errlen);
    if (rc == 0 && t->client_ca) {
        gnutls_datum_t ca = datum(t->client_ca);
        int g = gnutls_x509_trust_list_init(&c->trust, 0);
        if (g == 0)
            g = gnutls_x509_trust_list_add_trust_mem(c->trust, &ca, NULL, GNUTLS_X509_FMT_PEM, 0,
                                                     0);
        if (g <= 0) {
            snprintf(err, errlen, "admin: tls_client_ca %s: no PEM certificate%s%s",
                     cfg->admin_tls_client_ca, g < 0 ? ": " : "", g < 0 ? gnutls_strerror(g) : "");
            rc = -EINVAL;
        }
    }
    if (rc < 0) {
        admin_tls_creds_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

void admin_tls_creds_publish(struct admin_tls_creds *c)
{
    c->older = published;
    published = c;
    atomic_store_explicit(&serving, c, memory_order_release);
}

void admin_tls_creds_free_all(void)
{
    atomic_store_explicit(&serving, NULL, memory_order_release);
    while (published) {
        struct admin_tls_creds *older = published->older;
        admin_tls_creds_destroy(published);
        published = older;
    }
}

/* GnuTLS asks for the server's certificate in each handshake: the
 * generation published last. GnuTLS neither frees nor changes them. */
static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session, (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    struct admin_tls_creds *c = atomic_load_explicit(&serving, memory_order_acquire);
    if (!c)
        return -1;
    *pcert = c->pcerts;
    *pcert_length = c->npcerts;
    *pkey = c->key;
    return 0;
}

void *admin_tls_cert_callback(void)
{
    /* MHD takes the function through a void * option value. */
    gnutls_certificate_retrieve_function2 *fn = retrieve;
    void *p;
    memcpy(&p, &fn, sizeof(p));
    return p;
}

/* The status of the peer's chain (DER, n certificates) against trust. */
static int chain_verify(gnutls_x509_trust_list_t trust, const gnutls_datum_t *der, unsigned int n,
                        unsigned int *status)
{
    gnutls_x509_crt_t crts[ADMIN_TLS_CHAIN_MAX];
    unsigned int ok = 0;
    int g = 0;
    if (n > ADMIN_TLS_CHAIN_MAX)
        n = ADMIN_TLS_CHAIN_MAX; /* the rest could only be more intermediates */
    for (unsigned int i = 0; i < n && g == 0; i++) {
        if ((g = gnutls_x509_crt_init(&crts[i])) < 0)
            break;
        ok++;
        g = gnutls_x509_crt_import(crts[i], &der[i], GNUTLS_X509_FMT_DER);
    }
    if (g == 0)
        g = gnutls_x509_trust_list_verify_crt2(trust, crts, ok, NULL, 0, 0, status, NULL);
    for (unsigned int i = 0; i < ok; i++)
        gnutls_x509_crt_deinit(crts[i]);
    return g;
}

bool admin_tls_peer_check(void *session, char *why, size_t whylen)
{
    gnutls_session_t s = session;
    struct admin_tls_creds *c = atomic_load_explicit(&serving, memory_order_acquire);
    unsigned int status = 0, n = 0;
    const gnutls_datum_t *der = gnutls_certificate_get_peers(s, &n);
    if (!der || n == 0) {
        snprintf(why, whylen, "a client certificate is required");
        return false;
    }
    int g = c && c->trust ? chain_verify(c->trust, der, n, &status) : GNUTLS_E_INTERNAL_ERROR;
    if (g < 0) {
        snprintf(why, whylen, "the client certificate could not be checked: %s",
                 gnutls_strerror(g));
        return false;
    }
    if (status == 0)
        return true;
    gnutls_datum_t out = {NULL, 0};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0 &&
        out.data)
        snprintf(why, whylen, "the client certificate is not trusted: %s", (char *)out.data);
    else
        snprintf(why, whylen, "the client certificate is not trusted");
    gnutls_free(out.data);
    return false;
}
