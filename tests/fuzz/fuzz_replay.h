/* fuzz_replay.h: what the fuzz targets share. CHECK(cond, fmt, ...) aborts
** under libFuzzer (so the input is saved) and records a test failure in the
** plain test build; fuzz_replay_dir() replays a saved corpus through a fuzz
** entry point there. */
#ifndef CN_FUZZ_REPLAY_H
#define CN_FUZZ_REPLAY_H

#include "base/base.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef CAIRN_LIBFUZZER
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#else
#include "test.h"
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                         \
    } while (0)
#endif

/* Returns the number of files replayed, or -1 if the directory does not exist. */

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
