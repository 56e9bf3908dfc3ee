/*
** hw.c: what this machine can run. Memory from /proc/meminfo, cores from
** the base layer, SIMD from CPUID, free disk where the models live; a model
** fits when its catalog RAM figure leaves room for the rest of the system.
*/
#include "models/models_int.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int64_t meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    int64_t v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* The widest vector extension the CPU has and the OS saves (XCR0). */
static const char *simd_level(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return "none";
    bool sse4 = c & (1u << 19), osxsave = c & (1u << 27);
    unsigned xcr0 = 0;
    if (osxsave) {
        unsigned hi;
        __asm__ volatile("xgetbv" : "=a"(xcr0), "=d"(hi) : "c"(0));
    }
    bool os_avx = (xcr0 & 6) == 6, os_avx512 = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        b = 0;
    if (os_avx512 && (b & (1u << 16)))
        return "avx512";
    if (os_avx && (b & (1u << 5)))
        return "avx2";
    return sse4 ? "sse4" : "none";
}

int64_t (*mdl_free_bytes_hook)(const char *dir);

int64_t mdl_free_bytes(const char *path)
{
    if (mdl_free_bytes_hook)
        return mdl_free_bytes_hook(path);
    struct statvfs vs;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s", path);
    /* the folder may not exist yet: the nearest existing parent */
    for (;;) {
        if (statvfs(dir, &vs) == 0)
            return (int64_t)vs.f_bavail * (int64_t)vs.f_frsize;
        char *slash = strrchr(dir, '/');
        if (!slash)
            return -1;
        if (slash == dir) {
            if (!dir[1])
                return -1;
            dir[1] = 0;
        } else {
            *slash = 0;
        }
    }
}

void mdl_hw_detect(const char *home, mdl_hw *hw)
{
    memset(hw, 0, sizeof *hw);
    hw->ram_total = meminfo("MemTotal");
    hw->ram_avail = meminfo("MemAvailable");
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/models", home);
    hw->disk_free = mdl_free_bytes(dir);
    hw->cores = cn_physical_cores();
    hw->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    hw->simd = simd_level();
}

const char *mdl_fit(const mdl_entry *e, const mdl_hw *hw)
{
    int64_t need = e->ram_mb << 20;
    if (hw->disk_free >= 0 && hw->disk_free < e->size)
        return "too big";
    if (hw->ram_total > 0 && need > hw->ram_total - ((int64_t)1 << 30))
        return "too big"; /* the system needs its own gigabyte */
    if (hw->ram_avail > 0 && need > hw->ram_avail)
        return "tight";
    return "fits";
}

/*
** Chat: the largest model that fits in available memory, held back by the
** CPU: generation speed is memory bandwidth over model size and a small
** machine cannot stream 5 GB per token at conversation speed. 2 cores or
** fewer: at most ~1.5B parameters; 4: ~3B; more: any. No AVX2: the scalar
** path is several times slower, so one tier down. Embeddings: the default
** tier unless memory is very short.
*/
const mdl_entry *mdl_recommend(const mdl_catalog *c, const mdl_hw *hw, const char *role,
                               char *why, size_t cap)
{
    double max_b = hw->cores <= 2 ? 1.6 : hw->cores <= 4 ? 3.5 : 9;
    if (strcmp(hw->simd, "avx2") && strcmp(hw->simd, "avx512"))
        max_b = max_b > 3.5 ? 3.5 : 1.6;
    const mdl_entry *best = NULL;
    for (int i = 0; i < c->n; i++) {
        const mdl_entry *e = &c->models[i];
        if (strcmp(e->role, role) || strcmp(mdl_fit(e, hw), "fits"))
            continue;
        if (!strcmp(role, "chat")) {
            /* licences with non-commercial terms are not recommended by default */
            if (e->params_b > max_b || strstr(e->license, "Research"))
                continue;
            /* prefer the larger model; between equals, the one listed first */
            if (!best || e->params_b > best->params_b + 0.2)
                best = e;
        } else if (!best || (!strcmp(e->tier, "fast") && strcmp(best->tier, "fast"))) {
            best = e;
        }
    }
    double avail_gb = hw->ram_avail / 1e9;
    if (!best)
        snprintf(why, cap, "no %s model in the catalog fits this machine (%.1f GB of memory "
                 "available, %.1f GB of disk free)", role, avail_gb, hw->disk_free / 1e9);
    else if (!strcmp(role, "chat"))
        snprintf(why, cap, "%d core%s with %s and %.1f GB of memory available: %s (%.2g B "
                 "parameters, needs %.1f GB) answers at a useful speed here",
                 hw->cores, hw->cores == 1 ? "" : "s", hw->simd, avail_gb, best->name,
                 best->params_b, best->ram_mb / 1024.0);
    else
        snprintf(why, cap, "%s", best->description);
    return best;
}

/* ---- memory speed ---------------------------------------------------------------- */

typedef struct bw_part {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_part;

static void *bw_read(void *arg)
{
    bw_part *b = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= b->n; i += 4)
        s0 += b->p[i], s1 += b->p[i + 1], s2 += b->p[i + 2], s3 += b->p[i + 3];
    b->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/*
** Bytes per second this machine reads from memory with up to 4 threads: a
** token of a language model reads all of its weights, so this over the
** file's size is what generation can reach at best. 256 MB read 3 times
** (about a tenth of a second); 0 if it cannot be measured.
*/
double mdl_hw_bandwidth(void)
{
    size_t bytes = (size_t)256 << 20, n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(bytes);
    if (!buf)
        return 0;
    for (size_t i = 0; i < n; i++) /* touched, so the pages exist */
        buf[i] = i;
    int k = CN_MAX(1, CN_MIN(4, cn_physical_cores()));
    double best = 0;
    for (int round = 0; round < 3; round++) {
        bw_part parts[4];
        pthread_t th[4];
        double t0 = cn_now();
        int started = 0;
        for (int t = 0; t < k; t++) {
            parts[t] = (bw_part){buf + n / k * t, n / k, 0};
            if (pthread_create(&th[t], NULL, bw_read, &parts[t]) == 0)
                started++;
            else
                bw_read(&parts[t]);
        }
        for (int t = 0; t < started; t++)
            pthread_join(th[t], NULL);
        double dt = cn_now() - t0;
        volatile uint64_t keep = parts[0].sum; /* the reads are not optimised away */
        (void)keep;
        if (dt > 0)
            best = CN_MAX(best, (double)bytes / dt);
    }
    free(buf);
    return best;
}
