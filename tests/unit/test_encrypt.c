/*
** test_encrypt.c: an encrypted library end to end through the `cairn`
** binary (issue 15). No text of the documents or of the questions anywhere
** under the data directory; a wrong or missing key fails clearly and writes
** nothing; a damaged page is an error naming the file; encrypt then decrypt
** gives back the same documents, passages, keyword hits and vectors; the
** ways to unlock can be added, listed, removed and changed; a conversion
** killed at any moment leaves a library that opens.
*/
#include "test.h"
#include "library/library.h"
#include "store/store.h"
#include "vault/vault.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out_buf[1 << 20], err_buf[1 << 16];

/* The shell of these tests: never the suite's own $CAIRN_ENCRYPT. */
static int sh(const char *fmt, ...)
{
    char setup[1600];
    const char *t = test_tmpdir();
    snprintf(setup, sizeof setup,
             "unset CAIRN_ENCRYPT CAIRN_KEY_FILE CAIRN_PASSPHRASE; export CAIRN_HOME=%s/ehome; "
             "CAIRN=%s; D=%s/edocs; K=%s/lib.key; P=%s/phome",
             t, test_cairn_bin(), t, t, t);
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *questions[] = {
    "how often must the impeller seal be changed",
    "what pressure may the vessel reach at most",
    "which gloves protect against the transformer",
    "how fast does the cooling tower fan turn",
};

/* Documents with text of every kind the library keeps: plain text,
** Markdown, HTML, and the PDFs of tests/data. */
static void make_docs(void)
{
    sh("rm -rf $D $CAIRN_HOME $P $K && mkdir -p $D && "
       "for i in $(seq 1 40); do for j in $(seq 1 12); do echo \"Maintenance note $i.$j: "
       "replace the impeller seal of pump P$((i*7+j)) after $((i*j*13)) operating hours; the "
       "relief valve V$((i+j)) opens at $((i+j)).$((j%%10)) bar and the zirconium gasket "
       "Q$((i*31+j*17)) is torqued to $((i*3+j)) newton metres.\"; echo; done > $D/note$i.txt; "
       "done && "
       "printf '# Safety rules\\n\\nAlways wear insulated gloves near the transformer. The "
       "maximum operating pressure is 16 bar.\\n' > $D/safety.md && "
       "printf '<html><body><p>The cooling tower fan runs at 450 rpm behind the "
       "quarantined xylophone depot.</p></body></html>' > $D/plant.html && "
       "cp %s %s $D/",
       test_data("docs/simple.pdf"), test_data("docs/columns.pdf"));
}

/* Distinctive 8-byte strings of the passages of the library at home (no
** space-only or digit-only runs), at most cap, and the questions'. */
static int sample_strings(const char *home, char (*out)[9], int cap)
{
    lib *l;
    cn_err err = {0};
    if (lib_open(&l, home, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return 0;
    }
    cn_arena a;
    cn_arena_init(&a, (size_t)1 << 26);
    store_passage ps[64];
    int n = 0, got = 0;
    int64_t after = 0;
    while (got < cap && store_passages_without_embedding(lib_store(l), "none", after, 64, &a, ps,
                                                         &n, &err) > 0) {
        for (int i = 0; i < n && got < cap; i++) {
            for (size_t o = 0; o + 8 <= ps[i].len && got < cap; o += 23) {
                const char *s = ps[i].text + o;
                int letters = 0;
                for (int k = 0; k < 8; k++)
                    letters += (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z');
                if (letters < 5 || memchr(s, '\n', 8))
                    continue;
                memcpy(out[got], s, 8);
                out[got][8] = 0;
                got++;
            }
        }
        after = ps[n - 1].id;
    }
    cn_arena_free(&a);
    lib_close(l);
    for (size_t q = 0; q < CN_ARRAY_LEN(questions) && got < cap; q++)
        for (size_t o = 0; o + 8 <= strlen(questions[q]) && got < cap; o += 4) {
            memcpy(out[got], questions[q] + o, 8);
            out[got++][8] = 0;
        }
    return got;
}

static size_t slurp_file(const char *path, unsigned char **out)
{
    char *d = NULL;
    size_t n = 0;
    if (cn_read_file(path, (size_t)1 << 30, &d, &n, NULL) != CN_OK)
        d = NULL, n = 0;
    *out = (unsigned char *)d;
    return n;
}

/* Every regular file under dir, recursively: how many of the strings occur
** in any (each counted once); *bytes gets the bytes scanned. */
static void scan_dir(const char *dir, char (*s)[9], int n, bool *seen, int64_t *bytes, int *files)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            scan_dir(p, s, n, seen, bytes, files);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        unsigned char *b;
        size_t len = slurp_file(p, &b);
        *bytes += (int64_t)len;
        ++*files;
        for (int i = 0; i < n; i++)
            if (!seen[i] && len >= 8 && memmem(b, len, s[i], 8))
                seen[i] = true;
        free(b);
    }
    closedir(d);
}

static int count_seen(const char *dir, char (*s)[9], int n, int64_t *bytes, int *files)
{
    bool *seen = calloc((size_t)n, 1);
    *bytes = 0, *files = 0;
    scan_dir(dir, s, n, seen, bytes, files);
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += seen[i];
    free(seen);
    return hits;
}

TEST(encrypt_no_plaintext_at_rest)
{
    make_docs();
    /* the same documents in a plain library: where the strings come from,
    ** and proof that the scan finds them when they are there */
    EXPECT_EQ_INT(sh("CAIRN_HOME=$P $CAIRN add $D"), 0);
    char plain[700], home[700];
    snprintf(plain, sizeof plain, "%s/phome", test_tmpdir());
    snprintf(home, sizeof home, "%s/ehome", test_tmpdir());
    static char strs[4000][9];
    int n = sample_strings(plain, strs, 4000);
    EXPECT(n >= 1000);

    EXPECT_EQ_INT(sh("$CAIRN init --encrypt --key-file $K"), 0);
    EXPECT_CONTAINS(out_buf, "encrypted library ready");
    EXPECT_EQ_INT(sh("$CAIRN add --key-file $K $D"), 0);
    for (size_t q = 0; q < CN_ARRAY_LEN(questions); q++) {
        EXPECT_EQ_INT(sh("$CAIRN search --key-file $K '%s'", questions[q]), 0);
        EXPECT_EQ_INT(sh("CAIRN_KEY_FILE=$K $CAIRN ask '%s'", questions[q]), 0);
    }
    EXPECT_EQ_INT(sh("CAIRN_KEY_FILE=$K $CAIRN search --json 'zirconium gasket Q265'"), 0);
    EXPECT_CONTAINS(out_buf, "note");
    EXPECT_EQ_INT(sh("CAIRN_KEY_FILE=$K $CAIRN doctor"), 0);
    EXPECT_CONTAINS(out_buf, "encrypted        yes");
    EXPECT_CONTAINS(out_buf, "unlocked with key file");

    int64_t bytes;
    int files;
    int in_plain = count_seen(plain, strs, n, &bytes, &files);
    EXPECT(in_plain >= n * 9 / 10); /* the scan works (the questions are not there) */

    /* and with a WAL full of fresh pages: a library still open */
    char *saved = getenv("CAIRN_KEY_FILE") ? strdup(getenv("CAIRN_KEY_FILE")) : NULL;
    char kf[700];
    snprintf(kf, sizeof kf, "%s/lib.key", test_tmpdir());
    setenv("CAIRN_KEY_FILE", kf, 1);
    lib *l = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(lib_open(&l, home, &err), CN_OK);
    if (l) {
        char d2[700];
        snprintf(d2, sizeof d2, "%s/edocs", test_tmpdir());
        sh("for f in $D/note*.txt; do sed 's/Maintenance/Servicing/' $f > $f.2.txt; done");
        const char *paths[] = {d2};
        lib_add_stats st = {0};
        EXPECT_EQ_INT(lib_add(l, paths, 1, false, NULL, NULL, &st, &err), CN_OK);
        EXPECT(st.added >= 40);
        char wal[800];
        snprintf(wal, sizeof wal, "%s/library.db-wal", home);
        struct stat ws;
        EXPECT(stat(wal, &ws) == 0 && ws.st_size > 100000);
        int hits = count_seen(home, strs, n, &bytes, &files);
        EXPECT_EQ_INT(hits, 0);
        EXPECT(files >= 3); /* the database, its WAL and the envelope at least */
        lib_close(l);
    }
    if (saved) /* the suite's own, under make test-encrypted */
        setenv("CAIRN_KEY_FILE", saved, 1);
    else
        unsetenv("CAIRN_KEY_FILE");
    free(saved);
    EXPECT_EQ_INT(count_seen(home, strs, n, &bytes, &files), 0);
    EXPECT(bytes > 500000);
}

/* BLAKE2b of a file, or zeros if absent. */
static void file_hash(const char *path, unsigned char h[32])
{
    unsigned char *b;
    size_t n = slurp_file(path, &b);
    crypto_generichash(h, 32, b, n, NULL, 0);
    free(b);
}

TEST(encrypt_wrong_or_missing_key_fails_and_writes_nothing)
{
    make_docs();
    EXPECT_EQ_INT(sh("CAIRN_PASSPHRASE='correct horse battery' $CAIRN init --encrypt --passphrase "
                     "--key-file $K"),
                  0);
    EXPECT_EQ_INT(sh("CAIRN_PASSPHRASE='correct horse battery' $CAIRN add $D/safety.md"), 0);
    char db[700], keys[700], wal[720];
    snprintf(db, sizeof db, "%s/ehome/library.db", test_tmpdir());
    snprintf(keys, sizeof keys, "%s/ehome/library.keys", test_tmpdir());
    snprintf(wal, sizeof wal, "%s-wal", db);
    unsigned char h0[32], k0[32], h1[32], k1[32];
    file_hash(db, h0);
    file_hash(keys, k0);

    /* no key at all, without a terminal */
    EXPECT_EQ_INT(sh("$CAIRN search gloves < /dev/null"), 1);
    EXPECT_CONTAINS(err_buf, "the library is encrypted; give its key file with --key-file");
    EXPECT_EQ_INT(sh("CAIRN_PASSPHRASE='correct horse batterY' $CAIRN search gloves"), 1);
    EXPECT_CONTAINS(err_buf, "wrong passphrase");
    EXPECT_EQ_INT(sh("$CAIRN init --encrypt --new-key-file $K.other --no-passphrase --home "
                     "$P && $CAIRN search --key-file $K.other gloves"),
                  1);
    EXPECT_CONTAINS(err_buf, "wrong key file");
    EXPECT_EQ_INT(sh("$CAIRN search --key-file $K.missing gloves"), 1);
    EXPECT_CONTAINS(err_buf, "lib.key.missing");
    EXPECT_EQ_INT(sh("CAIRN_PASSPHRASE=nope $CAIRN add $D/plant.html"), 1);
    file_hash(db, h1);
    file_hash(keys, k1);
    EXPECT(memcmp(h0, h1, 32) == 0 && memcmp(k0, k1, 32) == 0);
    struct stat st;
    EXPECT(stat(wal, &st) != 0);

    EXPECT_EQ_INT(sh("CAIRN_PASSPHRASE='correct horse battery' $CAIRN search --json gloves"), 0);
    EXPECT_CONTAINS(out_buf, "safety.md");

    /* a damaged page: an error naming the file, never an answer */
    int fd = open(db, O_RDWR);
    unsigned char c = 0;
    EXPECT(pread(fd, &c, 1, 4096 + 2000) == 1);
    c ^= 0x10;
    EXPECT(pwrite(fd, &c, 1, 4096 + 2000) == 1);
    close(fd);
    int rc = sh("CAIRN_PASSPHRASE='correct horse battery' $CAIRN search --json gloves; "
                "CAIRN_PASSPHRASE='correct horse battery' $CAIRN doctor");
    EXPECT(rc == 1);
    EXPECT_CONTAINS(err_buf, "library.db: page 2 fails authentication");
    EXPECT(strstr(out_buf, "safety.md") == NULL);
}

/* Every row of every table of the plain library at path, hashed row by row
** and sorted: equal digests mean equal contents. */
static void table_digest(const char *path, const char *table, unsigned char h[32])
{
    sqlite3 *db = NULL;
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    char *sql = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY rowid", table);
    sqlite3_stmt *st = NULL;
    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, 32);
    int rows = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const void *b = sqlite3_column_blob(st, i);
                int n = sqlite3_column_bytes(st, i);
                crypto_generichash_update(&s, (const unsigned char *)&n, sizeof n);
                if (b)
                    crypto_generichash_update(&s, b, (unsigned long long)n);
            }
            rows++;
        }
    else
        test_fail_at(__FILE__, __LINE__, "%s: %s", table, sqlite3_errmsg(db));
    crypto_generichash_update(&s, (const unsigned char *)&rows, sizeof rows);
    crypto_generichash_final(&s, h, 32);
    sqlite3_finalize(st);
    sqlite3_free(sql);
    sqlite3_close(db);
}

TEST(encrypt_then_decrypt_gives_back_the_same_library)
{
    make_docs();
    const char *bert = test_tiny_bert();
    if (!bert)
        return;
    EXPECT_EQ_INT(sh("$CAIRN add $D && $CAIRN index -e %s", bert), 0);
    EXPECT_EQ_INT(sh("$CAIRN search --json -k 8 -e %s 'impeller seal hours' > $D.s0 && "
                     "$CAIRN search --json -k 8 'relief valve bar' >> $D.s0 && "
                     "cp $CAIRN_HOME/library.db $D.orig.db",
                     bert),
                  0);
    const char *tables[] = {"documents", "pages", "passages", "embeddings"};
    unsigned char before[4][32], after[4][32];
    char orig[700], db[700];
    snprintf(orig, sizeof orig, "%s/edocs.orig.db", test_tmpdir());
    snprintf(db, sizeof db, "%s/ehome/library.db", test_tmpdir());
    for (int i = 0; i < 4; i++)
        table_digest(orig, tables[i], before[i]);

    EXPECT_EQ_INT(sh("$CAIRN encrypt --key-file $K"), 0);
    EXPECT_CONTAINS(out_buf, "library encrypted");
    EXPECT_EQ_INT(sh("$CAIRN search gloves"), 1); /* no key given now */
    EXPECT_EQ_INT(sh("$CAIRN search --key-file $K --json -k 8 -e %s 'impeller seal hours' > "
                     "$D.s1 && $CAIRN search --key-file $K --json -k 8 'relief valve "
                     "bar' >> $D.s1 && cmp $D.s0 $D.s1",
                     bert),
                  0);
    EXPECT_EQ_INT(sh("ls $CAIRN_HOME"), 0);
    EXPECT(strstr(out_buf, "encrypting") == NULL && strstr(out_buf, "keys.new") == NULL);
    EXPECT_EQ_INT(sh("$CAIRN encrypt --key-file $K"), 1);
    EXPECT_CONTAINS(err_buf, "encrypted already");

    EXPECT_EQ_INT(sh("$CAIRN decrypt --key-file $K"), 0);
    EXPECT_EQ_INT(sh("ls $CAIRN_HOME"), 0);
    EXPECT(strstr(out_buf, "library.keys") == NULL);
    EXPECT_EQ_INT(sh("$CAIRN search --json -k 8 -e %s 'impeller seal hours' > $D.s2 && "
                     "$CAIRN search --json -k 8 'relief valve bar' >> $D.s2 && "
                     "cmp $D.s0 $D.s2",
                     bert),
                  0);
    for (int i = 0; i < 4; i++) {
        table_digest(db, tables[i], after[i]);
        if (memcmp(before[i], after[i], 32) != 0)
            test_fail_at(__FILE__, __LINE__, "table %s differs after the round trip", tables[i]);
    }
}

static void count_way(void *ctx, int i, const char *kind, const char *label)
{
    (void)i, (void)kind, (void)label;
    ++*(int *)ctx;
}

TEST(encrypt_ways_to_unlock_and_a_killed_conversion)
{
    make_docs();
    EXPECT_EQ_INT(sh("$CAIRN init --encrypt --key-file $K"), 0);
    EXPECT_EQ_INT(sh("$CAIRN add --key-file $K $D/safety.md"), 0);
    EXPECT_EQ_INT(sh("$CAIRN key list"), 0);
    EXPECT_CONTAINS(out_buf, "1  keyfile");
    /* adding a way needs the library unlocked */
    EXPECT_EQ_INT(sh("$CAIRN key add --new-key-file $K.2 < /dev/null"), 1);
    EXPECT_EQ_INT(sh("$CAIRN key add --key-file $K --new-key-file $K.2"), 0);
    EXPECT_EQ_INT(sh("$CAIRN search --key-file $K.2 --json gloves"), 0);
    EXPECT_CONTAINS(out_buf, "safety.md");
    EXPECT_EQ_INT(sh("$CAIRN key remove 1 --key-file $K.2 && $CAIRN key list"), 0);
    EXPECT(strstr(out_buf, "2  ") == NULL);
    EXPECT_EQ_INT(sh("$CAIRN search --key-file $K gloves"), 1);
    EXPECT_CONTAINS(err_buf, "wrong key file");
    EXPECT_EQ_INT(sh("$CAIRN key remove 1 --key-file $K.2"), 1);
    EXPECT_CONTAINS(err_buf, "only way to unlock");
    char home[700];
    snprintf(home, sizeof home, "%s/ehome", test_tmpdir());
    int n = 0;
    cn_err err = {0};
    EXPECT_EQ_INT(lib_key_list(home, count_way, &n, &err), 1);
    EXPECT_EQ_INT(n, 1);

    /* kill -9 at random moments of encrypt and decrypt: whatever the moment,
    ** the library opens (plain or encrypted) with all its documents */
    EXPECT_EQ_INT(sh("$CAIRN decrypt --key-file $K.2 && $CAIRN add $D"), 0);
    int states[2] = {0, 0};
    for (int k = 0; k < 12; k++) {
        unsigned delay = 2000 + randombytes_uniform(150000);
        sh("(if [ -e $CAIRN_HOME/library.keys ]; then exec $CAIRN decrypt --key-file $K.c; "
           "else rm -f $K.c; exec $CAIRN encrypt --key-file $K.c; fi) >/dev/null 2>&1 & pid=$!; "
           "sleep %u.%06u; kill -9 $pid 2>/dev/null; wait $pid; true",
           delay / 1000000, delay % 1000000);
        /* the key file of an interrupted encrypt may or may not be there;
        ** a decrypt cut between its two renames leaves library.keys.old,
        ** which the next open puts back: the library is encrypted still */
        int rc = sh("if [ -e $CAIRN_HOME/library.keys.new ] || [ -e $CAIRN_HOME/library.keys ] "
                    "|| [ -e $CAIRN_HOME/library.keys.old ]; "
                    "then $CAIRN ls --json --key-file $K.c; else $CAIRN ls --json; fi");
        if (rc != 0) {
            /* an encrypt killed before its key file was written: the
            ** library must still be the plain one */
            rc = sh("$CAIRN ls --json");
        }
        if (rc != 0 || !strstr(out_buf, "note40.txt"))
            test_fail_at(__FILE__, __LINE__, "kill %d after %u us: the library does not open "
                         "whole: %s", k, delay, err_buf);
        states[sh("test -e $CAIRN_HOME/library.keys") == 0]++;
        sh("ls $CAIRN_HOME");
        if (strstr(out_buf, ".encrypting") || strstr(out_buf, ".decrypting"))
            test_fail_at(__FILE__, __LINE__, "kill %d: a half-made copy was left: %s", k,
                         out_buf);
    }
    fprintf(stderr, "  after 12 kills: %d times plain, %d times encrypted\n", states[0], states[1]);
}

/* make test-encrypted ($CAIRN_ENCRYPT=1) really runs the suite on encrypted
** libraries, and make test on plain ones. */
TEST(encrypt_suite_mode_is_what_it_says)
{
    const char *mode = getenv("CAIRN_ENCRYPT");
    bool enc = mode && !strcmp(mode, "1");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "export CAIRN_HOME=%s/mode-home; %s add %s >/dev/null && %s doctor",
             test_tmpdir(), test_cairn_bin(), test_data("docs/notes.md"), test_cairn_bin());
    EXPECT_EQ_INT(test_shell(cmd, out_buf, sizeof out_buf, err_buf, sizeof err_buf), 0);
    EXPECT_CONTAINS(out_buf, enc ? "encrypted        yes" : "encrypted        no");
}

/* Run cmd (no double quotes in it) in a D-Bus session with an unlocked
** GNOME keyring whose files live in $T/HOMEDIR. */
static int in_keyring(const char *homedir, const char *cmd)
{
    return sh("mkdir -p %s/%s && HOME=%s/%s dbus-run-session -- sh -c \"printf pw | "
              "gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; %s\"",
              test_tmpdir(), homedir, test_tmpdir(), homedir, cmd);
}

TEST(encrypt_desktop_keyring_unlocks_without_a_question)
{
    if (sh("command -v dbus-run-session && command -v gnome-keyring-daemon") != 0) {
        SKIP("dbus-run-session or gnome-keyring-daemon is not installed (Debian: dbus, "
             "gnome-keyring)");
    }
    make_docs();
    EXPECT_EQ_INT(in_keyring("kr1", "$CAIRN init --encrypt --keyring"), 0);
    EXPECT_CONTAINS(out_buf, "unlock with: the desktop keyring");
    EXPECT_EQ_INT(in_keyring("kr1", "$CAIRN add $D/safety.md </dev/null && $CAIRN search --json "
                                    "gloves </dev/null && $CAIRN doctor </dev/null"),
                  0);
    EXPECT_CONTAINS(out_buf, "safety.md");
    EXPECT_CONTAINS(out_buf, "unlocked with the desktop keyring");
    EXPECT_EQ_INT(sh("$CAIRN key list"), 0);
    EXPECT_CONTAINS(out_buf, "keyring     desktop keyring");

    char db[700];
    unsigned char h0[32], h1[32];
    snprintf(db, sizeof db, "%s/ehome/library.db", test_tmpdir());
    file_hash(db, h0);
    /* no session to ask: said, exit 1 */
    EXPECT_EQ_INT(sh("env -u DBUS_SESSION_BUS_ADDRESS -u DISPLAY $CAIRN search gloves </dev/null"),
                  1);
    EXPECT_CONTAINS(err_buf, "no desktop keyring to ask");
    /* another user's keyring: it holds no key for this library */
    EXPECT_EQ_INT(in_keyring("kr2", "$CAIRN search gloves </dev/null"), 1);
    EXPECT_CONTAINS(err_buf, "the desktop keyring holds no key for this library");
    file_hash(db, h1);
    EXPECT(memcmp(h0, h1, 32) == 0);

    /* a key file as well; the keyring way removed takes its secret along */
    EXPECT_EQ_INT(in_keyring("kr1", "$CAIRN key add --new-key-file $K </dev/null && $CAIRN key "
                                    "remove 1 --key-file $K && $CAIRN key list"),
                  0);
    EXPECT(strstr(out_buf, "keyring") == NULL);
    EXPECT_EQ_INT(sh("$CAIRN search --json --key-file $K gloves"), 0);
    EXPECT_CONTAINS(out_buf, "safety.md");
    EXPECT_EQ_INT(in_keyring("kr1", "$CAIRN search gloves </dev/null"), 1);
    EXPECT_CONTAINS(err_buf, "the library is encrypted; give its key file");
}
