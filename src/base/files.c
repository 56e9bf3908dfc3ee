/*
** files.c: writing a file so that a crash, a full disk or a kill at any
** moment leaves either the old file or the new one (see base.h). Every
** place that replaces a file (manifests, download state, the catalog,
** copies of models) goes through here, so each gets the same four steps:
** temporary file, fsync, rename, fsync of the directory.
*/
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cn_fsync_parent(const char *path, cn_err *err)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return cn_fail(err, CN_EINVAL, "%.200s: path too long", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0; /* "/name": the root */
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cn_fail(err, CN_EIO, "%s: cannot open directory to sync it: %s", dir,
                       strerror(errno));
    /* some filesystems cannot sync a directory (EINVAL): nothing more to do */
    int rc = fsync(fd) != 0 && errno != EINVAL
                 ? cn_fail(err, CN_EIO, "%s: cannot sync directory: %s", dir, strerror(errno))
                 : CN_OK;
    close(fd);
    return rc;
}

int cn_atomic_open(cn_atomic_file *f, const char *path, int mode, cn_err *err)
{
    f->fd = -1;
    f->tmp[0] = 0;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return cn_fail(err, CN_EINVAL, "%.200s: path too long", path);
    /* a unique name: two writers of the same file never share a temporary */
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp-XXXXXX", path);
    f->fd = mkostemp(f->tmp, O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        f->tmp[0] = 0;
        return cn_fail(err, CN_EIO, "%s: cannot create a temporary file beside it: %s", path,
                       strerror(e));
    }
    if (fchmod(f->fd, (mode_t)mode) != 0) {
        int e = errno;
        cn_atomic_abort(f);
        return cn_fail(err, CN_EIO, "%s: cannot set permissions: %s", path, strerror(e));
    }
    return CN_OK;
}

int cn_atomic_write(cn_atomic_file *f, const void *p, size_t n, cn_err *err)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return cn_fail(err, CN_EIO, "%s: cannot write: %s", f->path,
                           w < 0 ? strerror(errno) : "no progress");
        c += w;
        n -= (size_t)w;
    }
    return CN_OK;
}

void cn_atomic_abort(cn_atomic_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->tmp[0])
        unlink(f->tmp);
    f->tmp[0] = 0;
}

int cn_atomic_commit(cn_atomic_file *f, cn_err *err)
{
    if (f->fd < 0 || !f->tmp[0])
        return cn_fail(err, CN_EINVAL, "%s: not open for an atomic write", f->path);
    int rc = CN_OK;
    /* the data first: a rename of a file whose blocks are not on disk can
    ** leave an empty file after a crash (ext4 delayed allocation) */
    if (fsync(f->fd) != 0)
        rc = cn_fail(err, CN_EIO, "%s: cannot sync: %s", f->path, strerror(errno));
    if (close(f->fd) != 0 && !rc)
        rc = cn_fail(err, CN_EIO, "%s: cannot write: %s", f->path, strerror(errno));
    f->fd = -1;
    if (!rc && rename(f->tmp, f->path) != 0)
        rc = cn_fail(err, CN_EIO, "%s: cannot replace: %s", f->path, strerror(errno));
    if (rc) {
        cn_atomic_abort(f);
        return rc;
    }
    f->tmp[0] = 0;
    return cn_fsync_parent(f->path, err);
}

int cn_write_atomic(const char *path, const void *data, size_t len, int mode, cn_err *err)
{
    cn_atomic_file f;
    int rc = cn_atomic_open(&f, path, mode, err);
    if (!rc)
        rc = cn_atomic_write(&f, data, len, err);
    if (!rc)
        return cn_atomic_commit(&f, err);
    cn_atomic_abort(&f);
    return rc;
}
