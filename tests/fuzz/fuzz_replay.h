/* fuzz_replay.h: replay a saved libFuzzer corpus through a fuzz entry point
** in the plain test build. Returns the number of files, or -1 if the
** directory does not exist. */
#ifndef CN_FUZZ_REPLAY_H
#define CN_FUZZ_REPLAY_H

#include "base/base.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static inline int fuzz_replay_dir(const char *dir, int (*one)(const uint8_t *, size_t))
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *data;
        size_t len;
        if (cn_read_file(path, (size_t)16 << 20, &data, &len, NULL) == CN_OK) {
            one((const uint8_t *)data, len);
            free(data);
            n++;
        }
    }
    closedir(d);
    return n;
}

#endif
