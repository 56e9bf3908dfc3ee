/*
** cmd_crypt.c: `cairn init`, `cairn encrypt`, `cairn decrypt` and `cairn
** key`: an encrypted library and its ways to unlock (docs/encryption.md).
**
** Every command takes --key-file FILE (main.c takes it off the command line
** before the command sees it: cli_key_file); a passphrase comes from
** $CAIRN_PASSPHRASE or is asked on the terminal with echo off.
*/
#include "cli/cli.h"
#include "library/library.h"
#include "vault/vault.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

const char *cli_key_file;

/* Read a line from the terminal with echo off: 0, or -1 with no terminal. */
int cli_ask_secret(void *ctx, const char *question, char *out, size_t cap)
{
    (void)ctx;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct termios old, quiet;
    bool have = tcgetattr(fd, &old) == 0;
    if (!have) {
        close(fd);
        return -1;
    }
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    (void)!write(fd, question, strlen(question));
    tcsetattr(fd, TCSANOW, &quiet); /* keeps what was typed ahead */
    size_t n = 0;
    char c;
    while (n + 1 < cap && read(fd, &c, 1) == 1 && c != '\n')
        out[n++] = c;
    out[n] = 0;
    tcsetattr(fd, TCSANOW, &old);
    (void)!write(fd, "\n", 1);
    close(fd);
    return 0;
}

void cli_setup_unlock(void)
{
    lib_unlock u = {.key_file = cli_key_file, .prompt = cli_ask_secret};
    lib_set_unlock(&u);
}

/* A new passphrase: $CAIRN_PASSPHRASE, or asked twice. 0, 1 (failed, said),
** or -1 (no way to ask). */
/* A new passphrase asked twice on the terminal: 0, 1 (refused, said), or
** -1 (no terminal). */
static int ask_new_passphrase(char *out, size_t cap)
{
    char again[1024];
    if (cli_ask_secret(NULL, "New passphrase for the library: ", out, cap) != 0)
        return -1;
    int r = 0;
    if (strlen(out) < 8) {
        fprintf(stderr, "cairn: a passphrase needs at least 8 characters\n");
        r = 1;
    } else if (cli_ask_secret(NULL, "The same passphrase again: ", again, sizeof again) != 0 ||
               strcmp(out, again) != 0) {
        fprintf(stderr, "cairn: the two passphrases differ\n");
        r = 1;
    }
    sodium_memzero(again, sizeof again);
    if (r)
        sodium_memzero(out, cap);
    return r;
}

/* A new passphrase: $CAIRN_PASSPHRASE, or asked twice. */
static int new_passphrase(char *out, size_t cap)
{
    const char *env = getenv("CAIRN_PASSPHRASE");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    return ask_new_passphrase(out, cap);
}

typedef struct crypt_args {
    const char *home;
    bool encrypt, passphrase, no_passphrase, keyring;
    const char *new_key_file;
    char **rest;
    int n_rest;
} crypt_args;

enum { O_HOME = 1000, O_ENCRYPT, O_PASSPHRASE, O_NO_PASS, O_NEW_KEY, O_KEYRING };

static int parse(const char *cmd, int argc, char **argv, crypt_args *a, const char *help)
{
    static const struct option longopts[] = {
        {"home", required_argument, NULL, O_HOME},
        {"encrypt", no_argument, NULL, O_ENCRYPT},
        {"passphrase", no_argument, NULL, O_PASSPHRASE},
        {"no-passphrase", no_argument, NULL, O_NO_PASS},
        {"new-key-file", required_argument, NULL, O_NEW_KEY},
        {"keyring", no_argument, NULL, O_KEYRING},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    int c;
    while ((c = cli_getopt(cmd, argc, argv, "h", longopts)) != -1) {
        switch (c) {
        case O_HOME: a->home = optarg; break;
        case O_ENCRYPT: a->encrypt = true; break;
        case O_PASSPHRASE: a->passphrase = true; break;
        case O_NO_PASS: a->no_passphrase = true; break;
        case O_NEW_KEY: a->new_key_file = optarg; break;
        case O_KEYRING: a->keyring = true; break;
        case 'h': printf("%s", help); return -1;
        default: return 2;
        }
    }
    a->rest = argv + optind;
    a->n_rest = argc - optind;
    return 0;
}

#define PARSE(cmd, help)                                                                           \
    crypt_args a;                                                                                  \
    int prc_ = parse(cmd, argc, argv, &a, help);                                                   \
    if (prc_)                                                                                      \
        return prc_ < 0 ? 0 : prc_;

static const char enroll_help[] =
    "ways to unlock (one or more):\n"
    "  --key-file FILE       a key file (32 random bytes in hex); made, mode 0600, if\n"
    "                        it does not exist. For servers and scripts: keep it off\n"
    "                        the disk it protects (a USB key, a secrets mount)\n"
    "  --new-key-file FILE   make a new key file (refuses to overwrite one)\n"
    "  --passphrase          a passphrase (Argon2id, ~0.5 s to try one here): asked\n"
    "                        twice on the terminal, or taken from $CAIRN_PASSPHRASE\n"
    "                        (weaker: the environment of a process can be read by\n"
    "                        the same user). The default when no key file or keyring\n"
    "                        is given.\n"
    "  --keyring             the desktop keyring (GNOME Keyring, KWallet: the Secret\n"
    "                        Service): a logged-in user is not asked. Add a passphrase\n"
    "                        or key file too, for when the keyring is not there.\n";

/* The ways to unlock a command enrolls, from its options; pass holds the
** passphrase. 0, or an exit status after saying why. */
static int ways(const char *cmd, const crypt_args *a, lib_enroll *e, char *pass, size_t cap)
{
    memset(e, 0, sizeof *e);
    struct stat st;
    if (cli_key_file) {
        if (stat(cli_key_file, &st) == 0)
            e->key_file = cli_key_file;
        else
            e->new_key_file = cli_key_file;
    }
    if (a->new_key_file) {
        if (e->new_key_file)
            return cli_usage(cmd, "--key-file names a file that does not exist: it is made; "
                                  "--new-key-file too is one too many");
        e->new_key_file = a->new_key_file;
    }
    e->keyring = a->keyring;
    bool want_pass =
        a->passphrase || (!e->key_file && !e->new_key_file && !a->keyring && !a->no_passphrase);
    if (want_pass) {
        int r = new_passphrase(pass, cap);
        if (r < 0)
            return cli_usage(cmd, "no terminal to ask a passphrase on: set $CAIRN_PASSPHRASE, or "
                                  "use --key-file FILE");
        if (r > 0)
            return 1;
        e->passphrase = pass;
    }
    if (!e->passphrase && !e->key_file && !e->new_key_file && !e->keyring)
        return cli_usage(cmd, "no way to unlock the library: --passphrase, --key-file FILE or "
                              "--keyring");
    return 0;
}

static void said_ways(const lib_enroll *e)
{
    if (e->keyring)
        printf("  unlock with: the desktop keyring\n");
    if (e->passphrase)
        printf("  unlock with: the passphrase\n");
    if (e->key_file)
        printf("  unlock with: the key file %s\n", e->key_file);
    if (e->new_key_file)
        printf("  unlock with: the new key file %s (keep a copy somewhere safe: without a way "
               "to unlock, the library is lost)\n",
               e->new_key_file);
}

int cmd_init(int argc, char **argv)
{
    char help[2048];
    snprintf(help, sizeof help,
             "usage: cairn init [--encrypt [ways to unlock]] [--home DIR]\n\n"
             "Create an empty library in the data directory (default $CAIRN_HOME, else\n"
             "~/.local/share/cairn). With --encrypt, every page of it, its write-ahead log\n"
             "and uploaded copies are encrypted on disk (XChaCha20-Poly1305) under a random\n"
             "key, itself locked by each way to unlock.\n\n%s",
             enroll_help);
    PARSE("init", help);
    if (a.n_rest)
        return cli_usage("init", "unexpected argument '%s'", a.rest[0]);
    cn_err err = {0};
    if (!a.encrypt) {
        if (a.passphrase || a.new_key_file || a.keyring)
            return cli_usage("init", "--passphrase, --new-key-file and --keyring go with --encrypt");
        lib *l;
        cli_setup_unlock();
        if (lib_open(&l, a.home, &err))
            return cli_error(&err);
        printf("library ready in %s (%s)\n", lib_home(l),
               lib_encrypted(l, NULL) ? "encrypted" : "not encrypted");
        lib_close(l);
        return 0;
    }
    char pass[1024] = {0}, home[4096];
    lib_enroll e;
    int r = ways("init", &a, &e, pass, sizeof pass);
    if (!r && lib_init_encrypted(a.home, &e, home, sizeof home, &err))
        r = cli_error(&err);
    if (!r) {
        printf("encrypted library ready in %s\n", home);
        said_ways(&e);
    }
    sodium_memzero(pass, sizeof pass);
    return r;
}

int cmd_encrypt(int argc, char **argv)
{
    char help[2048];
    snprintf(help, sizeof help,
             "usage: cairn encrypt [ways to unlock] [--home DIR]\n\n"
             "Encrypt the existing library: an encrypted copy is written beside it and\n"
             "checked (every table's rows, the keyword index), then swapped in; the old\n"
             "plaintext file is overwritten with zeros. Stop `cairn serve` first. On an SSD\n"
             "or a copy-on-write filesystem old blocks may survive the overwrite: see\n"
             "docs/encryption.md.\n\n%s",
             enroll_help);
    PARSE("encrypt", help);
    if (a.n_rest)
        return cli_usage("encrypt", "unexpected argument '%s'", a.rest[0]);
    char pass[1024] = {0};
    lib_enroll e;
    int r = ways("encrypt", &a, &e, pass, sizeof pass);
    cn_err err = {0};
    if (!r) {
        double t0 = cn_now();
        if (lib_encrypt(a.home, &e, &err))
            r = cli_error(&err);
        else {
            printf("library encrypted in %.1f s\n", cn_now() - t0);
            said_ways(&e);
        }
    }
    sodium_memzero(pass, sizeof pass);
    return r;
}

int cmd_decrypt(int argc, char **argv)
{
    PARSE("decrypt", "usage: cairn decrypt [--key-file FILE] [--home DIR]\n\n"
                     "Turn an encrypted library back into a plain one (a checked copy swapped\n"
                     "in). Unlocks with --key-file, $CAIRN_KEY_FILE, $CAIRN_PASSPHRASE or a\n"
                     "passphrase asked on the terminal. Stop `cairn serve` first.\n");
    if (a.n_rest)
        return cli_usage("decrypt", "unexpected argument '%s'", a.rest[0]);
    cli_setup_unlock();
    cn_err err = {0};
    double t0 = cn_now();
    if (lib_decrypt(a.home, &err))
        return cli_error(&err);
    printf("library decrypted in %.1f s: its text is readable on disk again\n", cn_now() - t0);
    return 0;
}

static void print_entry(void *ctx, int i, const char *kind, const char *label)
{
    (void)ctx;
    printf("%d  %-10s  %s\n", i + 1, kind, label);
}

int cmd_key(int argc, char **argv)
{
    char help[2048];
    snprintf(help, sizeof help,
             "usage: cairn key list|add|remove N|passwd [options]\n\n"
             "The ways to unlock an encrypted library. Each one wraps the same data key:\n"
             "adding, removing or changing one never re-encrypts the library.\n"
             "  list         the ways, numbered\n"
             "  add          enroll another (--passphrase, --new-key-file FILE or\n"
             "               --keyring); the library is unlocked first (--key-file,\n"
             "               $CAIRN_KEY_FILE, $CAIRN_PASSPHRASE, the keyring or the\n"
             "               terminal)\n"
             "  remove N     take way N out (not the last one)\n"
             "  passwd       change a passphrase (the old one, then the new one twice)\n\n"
             "options:\n"
             "  --passphrase          add: a passphrase\n"
             "  --new-key-file FILE   add: a new key file\n"
             "  --keyring             add: the desktop keyring (Secret Service)\n"
             "  --home DIR            data directory\n");
    PARSE("key", help);
    if (a.n_rest < 1)
        return cli_usage("key", "say list, add, remove N or passwd");
    const char *op = a.rest[0];
    cn_err err = {0};
    cli_setup_unlock();
    if (!strcmp(op, "list")) {
        if (lib_key_list(a.home, print_entry, NULL, &err) < 0)
            return cli_error(&err);
        return 0;
    }
    if (!strcmp(op, "add")) {
        if (!a.passphrase && !a.new_key_file && !a.keyring)
            return cli_usage("key", "add: --passphrase, --new-key-file FILE or --keyring");
        char pass[1024] = {0};
        lib_enroll e = {.new_key_file = a.new_key_file, .keyring = a.keyring};
        int r = 0;
        if (a.passphrase) {
            /* $CAIRN_PASSPHRASE unlocks; the new one is asked */
            int q = ask_new_passphrase(pass, sizeof pass);
            if (q < 0)
                return cli_usage("key", "add --passphrase needs a terminal to ask on");
            if (q > 0)
                return 1;
            e.passphrase = pass;
        }
        if (lib_key_add(a.home, &e, &err))
            r = cli_error(&err);
        else
            said_ways(&e);
        sodium_memzero(pass, sizeof pass);
        return r;
    }
    if (!strcmp(op, "remove")) {
        long n;
        if (a.n_rest != 2 || !cli_int(a.rest[1], 1, VAULT_MAX_ENTRIES, &n))
            return cli_usage("key", "remove N: N from `cairn key list`");
        if (lib_key_remove(a.home, (int)n - 1, &err))
            return cli_error(&err);
        printf("way %ld removed\n", n);
        return 0;
    }
    if (!strcmp(op, "passwd")) {
        char old[1024] = {0}, fresh[1024] = {0};
        const char *env = getenv("CAIRN_PASSPHRASE");
        int r = 0;
        if (env && *env)
            snprintf(old, sizeof old, "%s", env);
        else if (cli_ask_secret(NULL, "Current passphrase: ", old, sizeof old) != 0)
            return cli_usage("key", "passwd needs a terminal (or $CAIRN_PASSPHRASE for the old "
                                    "one and $CAIRN_NEW_PASSPHRASE for the new)");
        const char *nenv = getenv("CAIRN_NEW_PASSPHRASE");
        if (nenv && *nenv)
            snprintf(fresh, sizeof fresh, "%s", nenv);
        else {
            unsetenv("CAIRN_PASSPHRASE");
            r = new_passphrase(fresh, sizeof fresh);
            if (r < 0)
                r = cli_usage("key", "passwd: no terminal for the new passphrase "
                                     "($CAIRN_NEW_PASSPHRASE)");
        }
        if (!r && lib_key_passwd(a.home, old, fresh, NULL, &err))
            r = cli_error(&err);
        if (!r)
            printf("passphrase changed (the library's data key is the same, rewrapped)\n");
        sodium_memzero(old, sizeof old);
        sodium_memzero(fresh, sizeof fresh);
        return r;
    }
    return cli_usage("key", "unknown '%s': list, add, remove N or passwd", op);
}
