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
