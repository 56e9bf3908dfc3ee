/*
** config.c: the user's settings file, simple `key = value` lines ('#'
** starts a comment): $CAIRN_CONFIG, else $XDG_CONFIG_HOME/cairn/config,
** else ~/.config/cairn/config. A missing file means defaults.
*/
#include "base/base.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cn_config_path(char *buf, size_t cap)
{
    const char *env = getenv("CAIRN_CONFIG"), *xdg = getenv("XDG_CONFIG_HOME"),
               *home = getenv("HOME");
    int n;
    if (env && *env)
        n = snprintf(buf, cap, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(buf, cap, "%s/cairn/config", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.config/cairn/config", home);
    else
        return CN_ENOTFOUND;
    return n < 0 || (size_t)n >= cap ? CN_EINVAL : CN_OK;
}

int cn_config_each(const char *key, int (*fn)(void *ctx, const char *value), void *ctx)
{
    char path[4096], line[4096];
    if (cn_config_path(path, sizeof path) != CN_OK)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int stop = 0;
    size_t kl = strlen(key);
    while (!stop && fgets(line, sizeof line, f)) {
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || strncmp(p, key, kl))
            continue;
        p += kl;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p++ != '=')
            continue;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strlen(p);
        while (n && isspace((unsigned char)p[n - 1]))
            p[--n] = 0;
        stop = fn(ctx, p);
    }
    fclose(f);
    return stop;
}

typedef struct first_value {
    char *out;
    size_t cap;
    bool found;
} first_value;

static int take_first(void *ctx, const char *value)
{
    first_value *fv = ctx;
    if (strlen(value) >= fv->cap)
        return 0; /* too long for the caller: as if absent (a later line may fit) */
    strcpy(fv->out, value);
    fv->found = true;
    return 1;
}

bool cn_config_get(const char *key, char *out, size_t cap)
{
    first_value fv = {out, cap, false};
    cn_config_each(key, take_first, &fv);
    return fv.found;
}

/* Is line a `key = ...` line of key (spaces around allowed)? */
static bool line_of(const char *line, size_t n, const char *key)
{
    size_t kl = strlen(key), i = 0;
    while (i < n && isspace((unsigned char)line[i]))
        i++;
    if (n - i < kl || strncmp(line + i, key, kl))
        return false;
    i += kl;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < n && line[i] == '=';
}

int cn_config_set(const char *key, const char *value, cn_err *err)
{
    if (!*key || strpbrk(key, "=\n\r \t#") || (value && strpbrk(value, "\n\r")))
        return cn_fail(err, CN_EINVAL, "a setting's name is one word and no value holds a line "
                                       "break");
    char path[4096];
    if (cn_config_path(path, sizeof path) != CN_OK)
        return cn_fail(err, CN_ENOTFOUND, "no settings file: set $CAIRN_CONFIG or $HOME");
    char *text = NULL;
    size_t len = 0;
    int rc = cn_read_file(path, (size_t)1 << 20, &text, &len, err);
    if (rc && rc != CN_ENOTFOUND)
        return rc;
    cn_buf b;
    cn_buf_init(&b, (size_t)2 << 20);
    /* every other line as it was (comments too); the key's own, replaced */
    for (char *p = text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (line_of(p, n, key))
            continue;
        cn_buf_append(&b, p, n);
        cn_buf_append(&b, "\n", 1);
    }
    free(text);
    if (value)
        cn_buf_printf(&b, "%s = %s\n", key, value);
    rc = cn_config_write(b.data ? b.data : "", b.len, err);
    cn_buf_free(&b);
    return rc;
}

int cn_config_write(const char *text, size_t len, cn_err *err)
{
    char path[4096], dir[4096];
    if (cn_config_path(path, sizeof path) != CN_OK)
        return cn_fail(err, CN_ENOTFOUND, "no settings file: set $CAIRN_CONFIG or $HOME");
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    int rc = CN_OK;
    if (slash && slash != dir) {
        *slash = 0;
        rc = cn_mkdirs(dir, err);
    }
    return rc ? rc : cn_write_atomic(path, text, len, 0600, err);
}
