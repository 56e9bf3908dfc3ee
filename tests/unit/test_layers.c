/*
** The module graph runs one way: a module includes only the public headers
** of modules on lower layers (docs/architecture.md draws it). This test
** reads every #include "mod/..." under src/ and fails on an edge that goes
** sideways or up, or on a module missing from the table, so a cycle cannot
** creep back in (tok and engine once included each other).
*/
#include "test.h"
#include "base/base.h"

#include <dirent.h>

/* The layers of docs/architecture.md, bottom up (ingest, store and ocr share one). */
static const struct { const char *mod; int layer; } layers[] = {
    {"base", 0},   {"gguf", 1},    {"vault", 1},    {"tok", 2},     {"grammar", 2}, {"engine", 3}, {"ingest", 4},
    {"store", 4},  {"ocr", 4},     {"search", 5},  {"rag", 6},     {"library", 7}, {"models", 8},
    {"watch", 8},  {"remote", 9}, {"server", 10}, {"cli", 11},
};

static int layer_of(const char *mod, size_t n)
{
    for (size_t i = 0; i < CN_ARRAY_LEN(layers); i++)
        if (strlen(layers[i].mod) == n && !strncmp(layers[i].mod, mod, n))
            return layers[i].layer;
    return -1;
}

TEST(layers_run_one_way)
{
    DIR *src = opendir("src");
    EXPECT(src != NULL);
    if (!src)
        return;
    struct dirent *m;
    int files = 0, edges = 0;
    while ((m = readdir(src))) {
        if (m->d_name[0] == '.')
            continue;
        int mine = layer_of(m->d_name, strlen(m->d_name));
        if (mine < 0) {
            test_fail_at(__FILE__, __LINE__, "src/%s: a module with no layer in this table",
                         m->d_name);
            continue;
        }
        char dir[512];
        snprintf(dir, sizeof dir, "src/%s", m->d_name);
        DIR *d = opendir(dir);
        struct dirent *f;
        while (d && (f = readdir(d))) {
            size_t fl = strlen(f->d_name);
            if (fl < 3 || (strcmp(f->d_name + fl - 2, ".c") && strcmp(f->d_name + fl - 2, ".h")))
                continue;
            char path[1024], *txt;
            size_t len;
            snprintf(path, sizeof path, "%s/%s", dir, f->d_name);
            if (cn_read_file(path, 16 << 20, &txt, &len, NULL) != CN_OK) {
                test_fail_at(__FILE__, __LINE__, "%s: cannot read", path);
                continue;
            }
            files++;
            for (char *p = txt; (p = strstr(p, "#include \"")); p++) {
                const char *inc = p + 10, *slash = strchr(inc, '/'), *q = strchr(inc, '"');
                if (!slash || !q || slash > q)
                    continue;
                int theirs = layer_of(inc, (size_t)(slash - inc));
                if (!strncmp(inc, m->d_name, (size_t)(slash - inc)) &&
                    strlen(m->d_name) == (size_t)(slash - inc))
                    continue; /* inside the module */
                edges++;
                if (theirs < 0 || theirs >= mine)
                    test_fail_at(__FILE__, __LINE__, "%s includes %.*s: %s", path,
                                 (int)(q - inc), inc,
                                 theirs < 0 ? "no such module"
                                            : "not a lower layer (the graph must run one way)");
                /* a module's _int.h is its own business */
                if (q - inc > 6 && !strncmp(q - 6, "_int.h", 6))
                    test_fail_at(__FILE__, __LINE__, "%s includes %.*s, another module's "
                                 "internal header", path, (int)(q - inc), inc);
            }
            free(txt);
        }
        if (d)
            closedir(d);
    }
    closedir(src);
    printf("     %d files, %d edges between modules\n", files, edges);
    EXPECT(files > 50);
    EXPECT(edges > 20);
}
