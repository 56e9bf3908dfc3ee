/*
** paths.c: the data directory and creating it. Documents' text lives there,
** so new directories are private to the user (0700).
*/
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cn_data_dir(char *buf, size_t cap, const char *override, cn_err *err)
{
    const char *home = getenv("HOME"), *xdg = getenv("XDG_DATA_HOME"), *env = getenv("CAIRN_HOME");
    int n;
    if (override && *override)
        n = snprintf(buf, cap, "%s", override);
    else if (env && *env)
        n = snprintf(buf, cap, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(buf, cap, "%s/cairn", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.local/share/cairn", home);
    else
        return cn_fail(err, CN_ENOTFOUND, "no data directory: set CAIRN_HOME or HOME");
    if (n < 0 || (size_t)n >= cap)
        return cn_fail(err, CN_EINVAL, "data directory path is too long");
    return CN_OK;
}

int cn_mkdirs(const char *path, cn_err *err)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return cn_fail(err, CN_EINVAL, "%s: path too long", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                return cn_fail(err, CN_EIO, "%s: cannot create directory: %s", p, strerror(errno));
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
                return cn_fail(err, CN_EIO, "%s: exists and is not a directory", p);
            *s = c;
            if (!c)
                break;
        }
    }
    return CN_OK;
}
