/*
 * tls_keycheck: whether a private key file is the key of a certificate
 * file's first certificate (tls_peer.h). wolfSSL_CTX_check_private_key
 * compares only the key types in this wolfSSL (5.5, Debian): two P-256
 * keys always "match", and a listener would start or reload with a key
 * that no handshake can use. So the key signs a fixed message and the
 * certificate's public key verifies it, which holds for every key type.
 *
 * Runs where listener contexts are built: main at start-up, the reloading
 * thread (main for SIGHUP, the admin thread for the API). This Debian
 * wolfSSL caches fixed-point ECC tables per thread (FP_ECC): the ones the
 * check made are freed before it returns, as tls.c's shards do at exit.
 */
#include <stdbool.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "net/tls_peer.h"

/* sig[*len] of `msg` signed by the key in key_file; false when it cannot
 * be read or sign. */
static bool key_sign(const char *key_file, const unsigned char *msg, size_t n, unsigned char *sig,
                     size_t *len)
{
    WOLFSSL_BIO *bio = wolfSSL_BIO_new_file(key_file, "r");
    WOLFSSL_EVP_PKEY *key = bio ? wolfSSL_PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    WOLFSSL_EVP_MD_CTX *md = key ? wolfSSL_EVP_MD_CTX_new() : NULL;
    bool ok = md && wolfSSL_EVP_DigestSignInit(md, NULL, wolfSSL_EVP_sha256(), NULL, key) == 1 &&
              wolfSSL_EVP_DigestSignUpdate(md, msg, n) == 1 &&
              wolfSSL_EVP_DigestSignFinal(md, sig, len) == 1;
    wolfSSL_EVP_MD_CTX_free(md);
    wolfSSL_EVP_PKEY_free(key);
    wolfSSL_BIO_free(bio);
    return ok;
}

/* Whether the first certificate of cert_file verifies sig over msg. */
static bool cert_verifies(const char *cert_file, const unsigned char *msg, size_t n,
                          const unsigned char *sig, size_t len)
{
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert_file, WOLFSSL_FILETYPE_PEM);
    WOLFSSL_EVP_PKEY *pub = x ? wolfSSL_X509_get_pubkey(x) : NULL;
    WOLFSSL_EVP_MD_CTX *md = pub ? wolfSSL_EVP_MD_CTX_new() : NULL;
    bool ok = md && wolfSSL_EVP_DigestVerifyInit(md, NULL, wolfSSL_EVP_sha256(), NULL, pub) == 1 &&
              wolfSSL_EVP_DigestVerifyUpdate(md, msg, n) == 1 &&
              wolfSSL_EVP_DigestVerifyFinal(md, sig, len) == 1;
    wolfSSL_EVP_MD_CTX_free(md);
    wolfSSL_EVP_PKEY_free(pub);
    wolfSSL_X509_free(x);
    return ok;
}

bool tls_key_matches_cert(const char *cert_file, const char *key_file)
{
    static const unsigned char msg[] = "ringmq: is this key the certificate's?";
    unsigned char sig[1024]; /* an RSA-8192 signature at most */
    size_t len = sizeof(sig);
    bool ok = key_sign(key_file, msg, sizeof(msg), sig, &len) &&
              cert_verifies(cert_file, msg, sizeof(msg), sig, len);
    wc_ecc_fp_free();
    return ok;
}
