/*
 * e2e certs: the openssl CLI makes the TLS tests' certificates (certs.h).
 */
#include "certs.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char prelude[] =
    "set -e; k='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext\n"
    "ca_new() { openssl req -x509 $k -keyout $1.key -out $1.crt -days 2 -subj /CN=$2; }\n"
    "sign() { openssl req $k -keyout $1.key -out $1.csr -subj /CN=$1;"
    " openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial -out $1.crt"
    " -days $3 $4; }\n";

void certs_make(char *dir, size_t cap, const char *tag, const char *script)
{
    cr_assert_lt((size_t)snprintf(dir, cap, "/tmp/ringmq-%s-XXXXXX", tag), cap);
    cr_assert(mkdtemp(dir), "mkdtemp %s", dir);
    size_t len = strlen(prelude) + strlen(script) + 2 * strlen(dir) + 64;
    char *cmd = malloc(len);
    cr_assert_not_null(cmd);
    snprintf(cmd, len, "( cd '%s' && %s%s ) >'%s/openssl.log' 2>&1", dir, prelude, script, dir);
    int rc = system(cmd);
    free(cmd);
    cr_assert(rc == 0, "openssl could not make the test certificates (see %s/openssl.log)", dir);
}

void certs_remove(const char *dir)
{
    char cmd[128];
    if (!dir[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}
