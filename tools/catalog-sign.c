/*
** catalog-sign: make and check the ed25519 signatures Cairn requires of an
** updated model catalog (see docs/models.md, "Signing a catalog").
**
**   catalog-sign keygen SECRET_FILE        new key pair: the secret goes to
**                                          SECRET_FILE (0600), the public key
**                                          (hex) to stdout
**   catalog-sign sign SECRET_FILE CATALOG  writes CATALOG.sig (hex signature)
**   catalog-sign verify PUBLIC_HEX CATALOG checks CATALOG.sig (exit 0 if good)
**
** The secret key never enters the repository: the maintainers keep it
** offline. A mirror (an organisation's own server) makes its own pair and
** users trust it with `cairn models update --catalog-url URL --catalog-key HEX`.
*/
#include "models/models.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void)
{
    fprintf(stderr, "usage: catalog-sign keygen SECRET_FILE\n"
                    "       catalog-sign sign SECRET_FILE CATALOG.json\n"
                    "       catalog-sign verify PUBLIC_HEX CATALOG.json\n");
    return 2;
}

static int keygen(const char *path)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char hex[2 * crypto_sign_SECRETKEYBYTES + 1];
    crypto_sign_keypair(pk, sk);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    sodium_bin2hex(hex, sizeof hex, sk, sizeof sk);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    if (write(fd, hex, n) != (ssize_t)n || fsync(fd) != 0) {
        perror(path);
        close(fd);
        return 1;
    }
    close(fd);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(hex, sizeof hex);
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    printf("%s\n", hex);
    return 0;
}

static int sign(const char *key_path, const char *catalog)
{
    char *key_hex, *text;
    size_t klen, len;
    cn_err err = {0};
    unsigned char sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
    if (cn_read_file(key_path, 4096, &key_hex, &klen, &err) ||
        cn_read_file(catalog, (size_t)64 << 20, &text, &len, &err)) {
        fprintf(stderr, "catalog-sign: %s\n", err.msg);
        return 1;
    }
    size_t bin_len = 0;
    if (sodium_hex2bin(sk, sizeof sk, key_hex, klen, " \r\n", &bin_len, NULL) != 0 ||
        bin_len != sizeof sk) {
        fprintf(stderr, "catalog-sign: %s: not a secret key from `catalog-sign keygen`\n",
                key_path);
        return 1;
    }
    /* refuse to sign what Cairn would refuse to load */
    mdl_catalog *c;
    if (mdl_catalog_parse(text, len, catalog, &c, &err)) {
        fprintf(stderr, "catalog-sign: %s\n", err.msg);
        return 1;
    }
    mdl_catalog_free(c);
    crypto_sign_detached(sig, NULL, (const unsigned char *)text, len, sk);
    sodium_memzero(sk, sizeof sk);
    char hex[2 * crypto_sign_BYTES + 1], out[4096];
    sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
    snprintf(out, sizeof out, "%s.sig", catalog);
    char line[sizeof hex + 1];
    snprintf(line, sizeof line, "%s\n", hex);
    if (cn_write_atomic(out, line, strlen(line), 0644, &err)) {
        fprintf(stderr, "catalog-sign: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s\n", out);
    free(key_hex);
    free(text);
    return 0;
}

static int verify(const char *pub_hex, const char *catalog)
{
    char *text, *sig, spath[4096];
    size_t len, slen;
    cn_err err = {0};
    snprintf(spath, sizeof spath, "%s.sig", catalog);
    if (cn_read_file(catalog, (size_t)64 << 20, &text, &len, &err) ||
        cn_read_file(spath, 4096, &sig, &slen, &err) ||
        mdl_signature_check(text, len, sig, pub_hex, catalog, &err)) {
        fprintf(stderr, "catalog-sign: %s\n", err.msg);
        return 1;
    }
    printf("%s: good signature\n", catalog);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "catalog-sign: libsodium failed to initialise\n");
        return 1;
    }
    if (argc == 3 && !strcmp(argv[1], "keygen"))
        return keygen(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "sign"))
        return sign(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "verify"))
        return verify(argv[2], argv[3]);
    return usage();
}
