/*
** The remote module's parts that need no server: endpoints read from and
** written to the settings file (other lines kept, odd lines ignored), keys
** from where the settings say (environment, file, desktop keyring) and
** never from argv, redaction, and the audit log's file. The consent and
** the client are tested end to end in tests/server/remote.test.mjs.
*/
#include "test.h"
#include "remote/remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char out_buf[1 << 16], err_buf[1 << 16];

static int sh(const char *fmt, ...)
{
    char setup[1200];
    snprintf(setup, sizeof setup, "export CAIRN_CONFIG=%s/rmt-config CAIRN_HOME=%s/rmt-home; "
                                  "CAIRN=%s; T=%s",
             test_tmpdir(), test_tmpdir(), test_cairn_bin(), test_tmpdir());
    va_list ap;
    va_start(ap, fmt);
    int rc = test_vshell(setup, out_buf, sizeof out_buf, err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return rc;
}

/* The suite's own $CAIRN_CONFIG, put back after each test here: the tests
** that follow in this process must not see these settings. */
static char saved_config[1024];
static bool saved, had_config;

static void restore_config(void)
{
    if (!saved)
        return;
    if (had_config)
        setenv("CAIRN_CONFIG", saved_config, 1);
    else
        unsetenv("CAIRN_CONFIG");
}

static void write_config(const char *text)
{
    if (!saved) {
        const char *c = getenv("CAIRN_CONFIG");
        had_config = c != NULL;
        snprintf(saved_config, sizeof saved_config, "%s", c ? c : "");
        saved = true;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/rmt-config", test_tmpdir());
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    setenv("CAIRN_CONFIG", path, 1);
}

TEST(remote_settings_read_write_keep_other_lines)
{
    write_config("# my settings\ncatalog_url = https://example.com/c.json\n"
                 "remote.gpu.base_url = https://gpu.example.com/v1\n"
                 "remote.gpu.model=llama-70b\n"
                 "  remote.gpu.api_key_env = GPU_KEY  \n"
                 "remote.bad name.model = x\n"
                 "remote..model = y\n"
                 "remote.h2.base_url = http://127.0.0.1:9/v1\nremote.h2.model = m\n"
                 "remote.h2.timeout = 7\n");
    rmt_endpoint e[RMT_MAX];
    cn_err err = {0};
    int n = rmt_list(e, RMT_MAX, &err);
    EXPECT_EQ_INT(n, 2);
    EXPECT_STR(e[0].name, "gpu");
    EXPECT_STR(e[0].model, "llama-70b");
    EXPECT_STR(e[0].api_key_env, "GPU_KEY");
    EXPECT_EQ_INT(e[1].timeout_s, 7);
    /* a new endpoint: the other lines stay as they were */
    rmt_endpoint add = {.timeout_s = 60};
    snprintf(add.name, sizeof add.name, "box");
    snprintf(add.base_url, sizeof add.base_url, "https://box.example.com/v1");
    snprintf(add.model, sizeof add.model, "m2");
    snprintf(add.api_key_file, sizeof add.api_key_file, "%s/rmt-key", test_tmpdir());
    EXPECT_EQ_INT(rmt_save(&add, &err), CN_OK);
    EXPECT_EQ_INT(sh("cat $CAIRN_CONFIG; stat -c %%a $CAIRN_CONFIG"), 0);
    EXPECT_CONTAINS(out_buf, "# my settings\ncatalog_url = https://example.com/c.json\n");
    EXPECT_CONTAINS(out_buf, "remote.box.api_key_file = ");
    EXPECT_CONTAINS(out_buf, "600\n");
    EXPECT_EQ_INT(rmt_list(e, RMT_MAX, &err), 3);
    /* replacing one, then removing it */
    snprintf(add.model, sizeof add.model, "m3");
    EXPECT_EQ_INT(rmt_save(&add, &err), CN_OK);
    rmt_endpoint got;
    EXPECT_EQ_INT(rmt_get("box", &got, &err), CN_OK);
    EXPECT_STR(got.model, "m3");
    EXPECT_EQ_INT(rmt_remove("box", &err), CN_OK);
    EXPECT_EQ_INT(rmt_get("box", &got, &err), CN_ENOTFOUND);
    EXPECT_CONTAINS(err.msg, "cairn remote add box");
    EXPECT_EQ_INT(rmt_list(e, RMT_MAX, &err), 2);
    /* refused: plain http elsewhere, a line break, a bad name */
    snprintf(add.base_url, sizeof add.base_url, "http://example.com/v1");
    EXPECT(rmt_save(&add, &err) != CN_OK);
    EXPECT_CONTAINS(err.msg, "plain http:// is refused");
    snprintf(add.base_url, sizeof add.base_url, "https://example.com/v1");
    snprintf(add.model, sizeof add.model, "m\nremote.box.base_url = http://evil");
    EXPECT(rmt_save(&add, &err) != CN_OK);
    snprintf(add.model, sizeof add.model, "m");
    snprintf(add.name, sizeof add.name, "a b");
    EXPECT(rmt_save(&add, &err) != CN_OK);
    EXPECT(!rmt_name_ok("") && !rmt_name_ok("x/y") && rmt_name_ok("gpu-2_b"));
    restore_config();
}

TEST(remote_keys_come_from_where_the_settings_say)
{
    write_config("");
    rmt_endpoint e = {.name = "k", .timeout_s = 60};
    char key[256];
    cn_err err = {0};
    EXPECT_EQ_INT(rmt_key(&e, key, sizeof key, &err), CN_OK);
    EXPECT_STR(key, "");
    snprintf(e.api_key_env, sizeof e.api_key_env, "CAIRN_TEST_RMT_KEY");
    unsetenv("CAIRN_TEST_RMT_KEY");
    EXPECT_EQ_INT(rmt_key(&e, key, sizeof key, &err), CN_ENOTFOUND);
    EXPECT_CONTAINS(err.msg, "$CAIRN_TEST_RMT_KEY, which is not set");
    setenv("CAIRN_TEST_RMT_KEY", "sk-env", 1);
    EXPECT_EQ_INT(rmt_key(&e, key, sizeof key, &err), CN_OK);
    EXPECT_STR(key, "sk-env");
    unsetenv("CAIRN_TEST_RMT_KEY");
    e.api_key_env[0] = 0;
    snprintf(e.api_key_file, sizeof e.api_key_file, "%s/rmt-keyfile", test_tmpdir());
    EXPECT(rmt_key(&e, key, sizeof key, &err) != CN_OK);
    EXPECT_CONTAINS(err.msg, "its key file");
    EXPECT_EQ_INT(sh("printf 'sk-file\\n' > $T/rmt-keyfile"), 0);
    EXPECT_EQ_INT(rmt_key(&e, key, sizeof key, &err), CN_OK);
    EXPECT_STR(key, "sk-file");
    /* the command line never takes a key */
    EXPECT_EQ_INT(sh("$CAIRN remote add x --url https://a.example/v1 --model m --api-key sk-1"), 2);
    EXPECT_CONTAINS(err_buf, "never given on the command line");
    /* a remote's answer cannot be held to a JSON shape: refused before anything */
    EXPECT_EQ_INT(sh("$CAIRN ask --remote x --json-output 'what is due?'"), 2);
    EXPECT_CONTAINS(err_buf, "cannot be held to a JSON shape");
}

/* Run cmd (no double quotes) in a D-Bus session with an unlocked keyring. */
static int in_keyring(const char *cmd)
{
    return sh("mkdir -p $T/rmt-kr && HOME=$T/rmt-kr dbus-run-session -- sh -c \"printf pw | "
              "gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; %s\"",
              cmd);
    restore_config();
}

TEST(remote_key_in_the_desktop_keyring)
{
    if (sh("command -v dbus-run-session && command -v gnome-keyring-daemon") != 0)
        SKIP("dbus-run-session or gnome-keyring-daemon is not installed (Debian: dbus, "
             "gnome-keyring)");
    write_config("");
    /* stored from stdin (no terminal), found again, gone with the remote */
    EXPECT_EQ_INT(in_keyring("printf 'sk-kr-1\\n' | $CAIRN remote add kr --url "
                             "http://127.0.0.1:9/v1 --model m --api-key-keyring && "
                             "$CAIRN doctor --network </dev/null"),
                  0);
    EXPECT_CONTAINS(out_buf, "remote kr");
    EXPECT_CONTAINS(out_buf, "does not answer"); /* port 9: the key was found, the host refused */
    EXPECT(strstr(out_buf, "keyring") == NULL);
    EXPECT_EQ_INT(sh("cat $CAIRN_CONFIG"), 0);
    EXPECT_CONTAINS(out_buf, "remote.kr.api_key_keyring = yes");
    EXPECT(strstr(out_buf, "sk-kr-1") == NULL); /* the key is not in the settings */
    EXPECT_EQ_INT(in_keyring("$CAIRN remote rm kr && printf 'remote.kr.base_url = "
                             "http://127.0.0.1:9/v1\\nremote.kr.model = m\\nremote.kr.api_key_"
                             "keyring = yes\\n' >> $CAIRN_CONFIG && $CAIRN doctor --network "
                             "</dev/null"),
                  0);
    EXPECT_CONTAINS(out_buf, "holds no key for it");
    /* no session at all: said */
    EXPECT_EQ_INT(sh("DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent $CAIRN doctor --network "
                     "</dev/null"),
                  0);
    EXPECT_CONTAINS(out_buf, "its key is in the desktop keyring");
    /* an empty key is refused */
    EXPECT_EQ_INT(in_keyring("printf '' | $CAIRN remote add kr2 --url http://127.0.0.1:9/v1 "
                             "--model m --api-key-keyring"),
                  1);
    EXPECT_CONTAINS(err_buf, "no key given");
    restore_config();
}

TEST(remote_redaction)
{
    write_config("redact = \\bAcme( Pumps)?\\b\nredact = \\d{4}-\\d{4}\n");
    rmt_redactor *r = NULL;
    cn_err err = {0};
    EXPECT_EQ_INT(rmt_redactor_load(&r, &err), CN_OK);
    EXPECT_EQ_INT(rmt_redactor_count(r), 2);
    int k = 0;
    char *t = rmt_redact(r, "Acme Pumps owes 1234-5678; acme too. Ünïcode Acme.", &k);
    EXPECT_STR(t, "[redacted] owes [redacted]; acme too. Ünïcode [redacted].");
    EXPECT_EQ_INT(k, 3);
    free(t);
    rmt_redactor_free(r);
    write_config("redact = ([\n");
    EXPECT(rmt_redactor_load(&r, &err) != CN_OK);
    EXPECT_CONTAINS(err.msg, "nothing is sent until it is fixed");
    write_config("");
    EXPECT_EQ_INT(rmt_redactor_load(&r, &err), CN_OK);
    t = rmt_redact(r, "as is", &k);
    EXPECT_STR(t, "as is");
    EXPECT_EQ_INT(k, 0);
    free(t);
    rmt_redactor_free(r);
    restore_config();
}

TEST(remote_audit_log_is_private_and_appends)
{
    char home[600];
    snprintf(home, sizeof home, "%s/rmt-audit", test_tmpdir());
    mkdir(home, 0700);
    cn_err err = {0};
    EXPECT_EQ_INT(rmt_audit(home, json_pack("{s:s, s:i}", "remote", "a", "bytes_sent", 10), &err),
                  CN_OK);
    EXPECT_EQ_INT(rmt_audit(home, json_pack("{s:s, s:i}", "remote", "b", "bytes_sent", 20), &err),
                  CN_OK);
    EXPECT_EQ_INT(sh("cat $T/rmt-audit/remote-audit.jsonl; stat -c %%a "
                     "$T/rmt-audit/remote-audit.jsonl"),
                  0);
    EXPECT_CONTAINS(out_buf, "\"remote\":\"a\",\"bytes_sent\":10}\n{\"time\":\"");
    EXPECT_CONTAINS(out_buf, "\"remote\":\"b\"");
    EXPECT_CONTAINS(out_buf, "\n600\n");
    restore_config();
}
