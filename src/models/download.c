/*
** download.c: getting gigabytes onto the machine reliably (libcurl).
**
** The file is preallocated at its final size and cut into parts, each
** fetched with an HTTP Range request on its own connection (one part for
** small files). Progress per part lives in DEST.state, written after the
** data it describes has been synced, so a crash, kill -9 or reboot at any
** moment loses at most the bytes since the last save and the next run
** continues each part where it stopped. A part that stalls (no byte for
** stall_s seconds) or fails transiently is retried with exponential
** backoff, a bounded number of times; a server that ignores Range makes
** the download restart as one stream from byte 0.
**
** Security: TLS peers are always verified; plain http:// is accepted only
** for loopback addresses (tests, a local mirror), decided on the host as
** libcurl parses it (cn_host_is_loopback, the server's test too).
** Redirects are followed by hand, at most 10, and each target is checked
** before it is requested: from a remote server only to https:// on another
** machine (mdl_redirect_check).
*/
#include "models/models_int.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTS 16
#define MIN_PART_BYTES ((int64_t)32 << 20) /* smaller files: one connection */
#define SAVE_EVERY_S 1.0
#define MAX_REDIRECTS 10
#define MAX_REDIRECT_BODY ((int64_t)64 << 10)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* url's scheme and host as libcurl will use them (curl_free both). The
** host is libcurl's normalised form: "0x7f.1" and "2130706433" come back as
** "127.0.0.1", IPv6 in brackets, userinfo ("127.0.0.1@evil.com") stripped,
** so the decision is made on the address curl will actually connect to. */
static int url_parts(const char *url, char **scheme, char **host)
{
    pthread_once(&curl_once, curl_init);
    *scheme = *host = NULL;
    CURLU *u = curl_url();
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK;
    curl_url_cleanup(u);
    if (!ok) {
        curl_free(*scheme);
        curl_free(*host);
        *scheme = *host = NULL;
    }
    return ok ? CN_OK : CN_EINVAL;
}

/* Does a connection to host end on this machine: loopback, or the
** unspecified address (0.0.0.0 and :: connect to the local host on Linux). */
static bool points_here(const char *host)
{
    if (cn_host_is_loopback(host))
        return true;
    char v6[64];
    size_t n = strlen(host);
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return a4.s_addr == 0;
    if (n >= 2 && n - 2 < sizeof v6 && host[0] == '[' && host[n - 1] == ']') {
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = 0;
        return inet_pton(AF_INET6, v6, &a6) == 1 &&
               (IN6_IS_ADDR_UNSPECIFIED(&a6) ||
                (IN6_IS_ADDR_V4MAPPED(&a6) && !memcmp(a6.s6_addr + 12, "\0\0\0\0", 4)));
    }
    return false;
}

int mdl_url_check(const char *url, cn_err *err)
{
    char *scheme, *host;
    if (url_parts(url, &scheme, &host))
        return cn_fail(err, CN_EINVAL, "'%.200s' is not a valid URL", url);
    int rc = CN_OK;
    if (strcmp(scheme, "https") && strcmp(scheme, "http"))
        rc = cn_fail(err, CN_EINVAL, "'%.200s': only https:// URLs are accepted", url);
    else if (!strcmp(scheme, "http") && !cn_host_is_loopback(host))
        rc = cn_fail(err, CN_EINVAL, "'%.200s': plain http:// is refused (use https://; http is "
                     "allowed only for a mirror on this machine: 127.0.0.1, [::1], localhost)",
                     url);
    curl_free(scheme);
    curl_free(host);
    return rc;
}

int mdl_redirect_check(const char *origin, const char *target, cn_err *err)
{
    int rc = mdl_url_check(target, err);
    if (rc)
        return rc;
    char *oscheme, *ohost, *scheme, *host;
    if (url_parts(origin, &oscheme, &ohost))
        return cn_fail(err, CN_EINVAL, "'%.200s' is not a valid URL", origin);
    if (url_parts(target, &scheme, &host)) { /* parsed above: only out of memory */
        curl_free(oscheme);
        curl_free(ohost);
        return cn_fail(err, CN_ENOMEM, "out of memory");
    }
    /* a mirror on this machine may send the client anywhere it could have
    ** named itself; a remote server may not lead it onto plain http (a
    ** downgrade) or into this machine's own services */
    if (!cn_host_is_loopback(ohost)) {
        if (strcmp(scheme, "https"))
            rc = cn_fail(err, CN_EVERIFY, "'%.200s' redirects to plain http:// ('%.200s'): "
                         "refused", origin, target);
        else if (points_here(host))
            rc = cn_fail(err, CN_EVERIFY, "'%.200s' redirects to this machine ('%.200s'): "
                         "refused", origin, target);
    }
    curl_free(oscheme);
    curl_free(ohost);
    curl_free(scheme);
    curl_free(host);
    return rc;
}

/* Options every request shares. */
static void setup_handle(CURL *h, const char *url, int stall_s, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* redirects are followed by hand, each target checked before it is
    ** requested (mdl_url_check): curl never connects anywhere unchecked */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)stall_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)stall_s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cairn/0.1");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    errbuf[0] = 0;
}

/* A sentence for a failed transfer. */
static void describe(CURL *h, CURLcode cc, const char *errbuf, const char *url, char *out,
                     size_t cap)
{
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_HTTP_RETURNED_ERROR)
        snprintf(out, cap, "%.300s: the server answered HTTP %ld%s", url, status,
                 status == 404 ? " (not found)" : status >= 500 ? " (server error)" : "");
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, cap, "%.300s: no data received for too long (stalled)", url);
    else
        snprintf(out, cap, "%.300s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
}

/* Transient failures are retried; a 4xx (other than 408/429) or a refused
** redirect is final. */
static bool transient(CURL *h, CURLcode cc)
{
    if (cc == CURLE_HTTP_RETURNED_ERROR) {
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        return status >= 500 || status == 408 || status == 429;
    }
    return cc != CURLE_UNSUPPORTED_PROTOCOL && cc != CURLE_URL_MALFORMAT &&
           cc != CURLE_PEER_FAILED_VERIFICATION && cc != CURLE_SSL_CACERT_BADFILE &&
           cc != CURLE_WRITE_ERROR;
}

static int redirect_checked(const char *origin, const char *url, const char *loc, long status,
                            int *hops, char *next, size_t cap, cn_err *err);

/* After a transfer: a 3xx with a Location. Copies the target (resolved
** against the request URL by curl) into next, checked; returns 1 if there
** is one to follow, 0 if the response was not a redirect, or an error. */
static int redirect_target(CURL *h, const char *origin, const char *url, int *hops, char *next,
                           size_t cap, cn_err *err)
{
    long status = 0;
    char *loc = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 300 || status > 399)
        return 0;
    curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
    /* libcurl resolves Location only for a transfer that ended normally;
    ** for one whose body was cut short, resolve the header the same way */
    char *resolved = NULL;
    struct curl_header *hd;
    if (!loc && curl_easy_header(h, "Location", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK) {
        CURLU *u = curl_url();
        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_set(u, CURLUPART_URL, hd->value, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_URL, &resolved, 0) == CURLUE_OK)
            loc = resolved;
        curl_url_cleanup(u);
    }
    int rc = redirect_checked(origin, url, loc, status, hops, next, cap, err);
    curl_free(resolved);
    return rc;
}

/* The rest of redirect_target, for an absolute target loc (NULL: none). */
static int redirect_checked(const char *origin, const char *url, const char *loc, long status,
                            int *hops, char *next, size_t cap, cn_err *err)
{
    if (!loc)
        return cn_fail(err, CN_EIO, "%.300s: HTTP %ld without a Location", url, status);
    if (++*hops > MAX_REDIRECTS)
        return cn_fail(err, CN_EIO, "%.300s: more than %d redirects (a redirect loop?)", url,
                       MAX_REDIRECTS);
    if (mdl_redirect_check(origin, loc, NULL) != CN_OK)
        return cn_fail(err, CN_EIO, "%.300s: redirected to '%.300s', which is refused (only "
                       "https:// to another server; http:// or this machine only when the "
                       "download started on this machine)", url, loc);
    if (strlen(loc) >= cap)
        return cn_fail(err, CN_EIO, "%.300s: redirect target too long", url);
    memcpy(next, loc, strlen(loc) + 1);
    return 1;
}

static bool is_redirect(CURL *h)
{
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status >= 300 && status <= 399;
}

/* ---- small documents into memory ------------------------------------------ */

typedef struct fetch_sink {
    cn_buf *b;
    CURL *h;
    int64_t redirect_body; /* as in a part: a 3xx body is dropped, and cut if long */
    bool redirect_cut;
} fetch_sink;

static size_t to_buf(char *p, size_t sz, size_t n, void *ud)
{
    fetch_sink *f = ud;
    long status = 0;
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300 && status <= 399) {
        f->redirect_body += (int64_t)(sz * n);
        f->redirect_cut = f->redirect_body > MAX_REDIRECT_BODY;
        return f->redirect_cut ? 0 : sz * n;
    }
    return cn_buf_append(f->b, p, sz * n) == CN_OK ? sz * n : 0;
}

int mdl_fetch(const char *url, size_t max, char **out, size_t *len, cn_err *err)
{
    *out = NULL;
    int rc = mdl_url_check(url, err);
    if (rc)
        return rc;
    CURL *h = curl_easy_init();
    if (!h)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    char errbuf[CURL_ERROR_SIZE], msg[512], cur[4096];
    cn_buf b;
    cn_buf_init(&b, max);
    snprintf(cur, sizeof cur, "%s", url);
    for (int hops = 0;;) {
        b.len = 0;
        curl_easy_reset(h);
        setup_handle(h, cur, 30, errbuf);
        fetch_sink sink = {.b = &b, .h = h};
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_buf);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
        CURLcode cc = curl_easy_perform(h);
        if (cc == CURLE_WRITE_ERROR && sink.redirect_cut)
            cc = CURLE_OK; /* the status and Location are in: follow it below */
        if (cc == CURLE_WRITE_ERROR)
            rc = cn_fail(err, CN_ELIMIT, "%.300s: larger than %zu bytes", url, max);
        else if (cc != CURLE_OK) {
            describe(h, cc, errbuf, cur, msg, sizeof msg);
            rc = cn_fail(err, CN_EIO, "%s", msg);
        } else {
            int r = redirect_target(h, url, cur, &hops, cur, sizeof cur, err);
            if (r == 1)
                continue;
            rc = r;
        }
        break;
    }
    curl_easy_cleanup(h);
    if (rc) {
        cn_buf_free(&b);
        return rc;
    }
    if (cn_buf_append(&b, "", 1) != CN_OK) {
        cn_buf_free(&b);
        return cn_fail(err, CN_ELIMIT, "%.300s: larger than %zu bytes", url, max);
    }
    *out = b.data;
    *len = b.len - 1;
    return CN_OK;
}

int mdl_probe_size(const char *url, int64_t *size, cn_err *err)
{
    pthread_once(&curl_once, curl_init);
    *size = -1;
    int rc = mdl_url_check(url, err);
    if (rc)
        return rc;
    CURL *h = curl_easy_init();
    if (!h)
        return cn_fail(err, CN_ENOMEM, "out of memory");
    char errbuf[CURL_ERROR_SIZE], msg[512], cur[4096];
    snprintf(cur, sizeof cur, "%s", url);
    for (int hops = 0;;) {
        curl_easy_reset(h);
        setup_handle(h, cur, 30, errbuf);
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L); /* HEAD: the length, not the file */
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
        CURLcode cc = curl_easy_perform(h);
        if (cc != CURLE_OK) {
            describe(h, cc, errbuf, cur, msg, sizeof msg);
            rc = cn_fail(err, CN_EIO, "%s", msg);
            break;
        }
        int r = redirect_target(h, url, cur, &hops, cur, sizeof cur, err);
        if (r == 1)
            continue;
        if (r < 0) {
            rc = r;
            break;
        }
        curl_off_t len = -1;
        if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) != CURLE_OK || len <= 0)
            rc = cn_fail(err, CN_EIO, "%.300s: the server does not say how long the file is "
                         "(no Content-Length), and the catalog gives only an approximate size",
                         url);
        else
            *size = (int64_t)len;
        break;
    }
    curl_easy_cleanup(h);
    return rc;
}

/* ---- the resumable download ------------------------------------------------- */

typedef struct part {
    int64_t start, end, done;  /* bytes [start, end); done from start */
    CURL *h;
    int retries;
    double next_at;            /* waiting for a retry until then; 0: not waiting */
    bool finished;
    bool ranged;               /* this request asked for a Range */
    bool checked;              /* its response's status has been looked at */
    bool bad_range;            /* the server answered 200 to a Range request */
    int64_t wrong_size;        /* the server's length disagrees (bytes it offered), or 0 */
    int64_t file_size;         /* the whole file's size, as the catalog says */
    char wrong_range[96];      /* a 206 for other bytes than asked: its Content-Range */
    bool wrong_total;          /* ...of a file of another size */
    bool write_failed;
    int write_errno;
    int fd;
    int hops;                  /* redirects followed for this request */
    int64_t redirect_body;     /* bytes of a 3xx body seen (and dropped) */
    bool redirect_cut;         /* ...too many: the transfer was stopped */
    char url[4096];            /* where this request goes (after redirects) */
    char errbuf[CURL_ERROR_SIZE];
} part;

typedef struct dl {
    const char *url, *dest;
    int64_t size;
    int fd;
    part parts[MAX_PARTS];
    int n_parts;
} dl;

static int save_state(dl *d, cn_err *err)
{
    /* the data the state describes must be on disk first */
    if (fdatasync(d->fd) != 0)
        return cn_fail(err, CN_EIO, "%s: cannot sync: %s", d->dest, strerror(errno));
    json_t *o = json_object(), *ps = json_array();
    json_object_set_new(o, "url", json_string(d->url));
    json_object_set_new(o, "size", json_integer(d->size));
    for (int i = 0; i < d->n_parts; i++)
        json_array_append_new(ps, json_pack("[III]", (json_int_t)d->parts[i].start,
                                            (json_int_t)d->parts[i].end,
                                            (json_int_t)d->parts[i].done));
    json_object_set_new(o, "parts", ps);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s.state", d->dest);
    char *s = json_dumps(o, JSON_COMPACT);
    int rc = s ? cn_write_atomic(path, s, strlen(s), 0600, err)
               : cn_fail(err, CN_ENOMEM, "%s: out of memory", path);
    free(s);
    json_decref(o);
    return rc;
}

/* Resume from DEST.state if it describes this url and size; else 0 parts. */
static void load_state(dl *d)
{
    char path[PATH_MAX + 16], *text;
    size_t len;
    snprintf(path, sizeof path, "%s.state", d->dest);
    d->n_parts = 0;
    if (cn_read_file(path, 1 << 16, &text, &len, NULL) != CN_OK)
        return;
    json_t *o = json_loadb(text, len, 0, NULL);
    free(text);
    json_t *ps = json_object_get(o, "parts");
    struct stat st;
    bool ok = o && json_is_string(json_object_get(o, "url")) &&
              !strcmp(json_string_value(json_object_get(o, "url")), d->url) &&
              json_integer_value(json_object_get(o, "size")) == d->size && json_is_array(ps) &&
              json_array_size(ps) >= 1 && json_array_size(ps) <= MAX_PARTS &&
              stat(d->dest, &st) == 0 && st.st_size == d->size;
    int64_t expect = 0;
    for (size_t i = 0; ok && i < json_array_size(ps); i++) {
        json_int_t s, e, done;
        if (json_unpack(json_array_get(ps, i), "[III]", &s, &e, &done) != 0 || s != expect ||
            e <= s || e > d->size || done < 0 || done > e - s) {
            ok = false;
            break;
        }
        d->parts[i] = (part){.start = s, .end = e, .done = done, .fd = -1};
        expect = e;
    }
    d->n_parts = ok && expect == d->size ? (int)json_array_size(ps) : 0;
    json_decref(o);
}

static void fresh_parts(dl *d, int n, int64_t min_part)
{
    n = (int)CN_MAX(1, CN_MIN((int64_t)n, d->size / min_part));
    d->n_parts = n;
    for (int i = 0; i < n; i++)
        d->parts[i] = (part){.start = d->size * i / n, .end = d->size * (i + 1) / n, .fd = -1};
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    part *pt = ud;
    size_t len = sz * n;
    long status = 0;
    curl_easy_getinfo(pt->h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300 && status <= 399) {
        /* a redirect's body is never used: cut it short rather than read
        ** an endless one forever, then follow the Location */
        pt->redirect_body += (int64_t)len;
        if (pt->redirect_body > MAX_REDIRECT_BODY) {
            pt->redirect_cut = true;
            return 0;
        }
        return len;
    }
    if (!pt->checked) {
        pt->checked = true;
        /* a 200 to a ranged request is the whole file from byte 0 */
        if (status == 200 && pt->ranged) {
            pt->bad_range = true;
            return 0;
        }
        /* the bytes offered must be the ones asked for: a 206 for another range
        ** (a confused cache) would be written at the wrong offset and only
        ** found by the hash, after the whole download */
        struct curl_header *hd;
        long long a, b, total;
        if (status == 206 &&
            curl_easy_header(pt->h, "Content-Range", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK &&
            sscanf(hd->value, "bytes %lld-%lld/%lld", &a, &b, &total) == 3 &&
            (a != pt->start + pt->done || b >= pt->end || total != pt->file_size)) {
            snprintf(pt->wrong_range, sizeof pt->wrong_range, "%.80s", hd->value);
            pt->wrong_total = total != pt->file_size;
            return 0;
        }
        /* the length offered must be what was asked for (checked after the
        ** range, which names the problem better when both are off): a truncated or
        ** different file on the server fails here, before any byte lands */
        curl_off_t cl = -1;
        curl_easy_getinfo(pt->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl >= 0 && cl != pt->end - pt->start - pt->done) {
            pt->wrong_size = cl;
            return 0;
        }
    }
    if ((int64_t)len > pt->end - pt->start - pt->done) {
        pt->write_failed = true; /* more than asked for */
        pt->write_errno = EOVERFLOW;
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(pt->fd, p + off, len - off, pt->start + pt->done);
        if (w <= 0) {
            pt->write_failed = true;
            pt->write_errno = errno;
            return 0;
        }
        off += (size_t)w;
        pt->done += w;
    }
    return len;
}

/* Start (or restart) a part's request; a NULL url starts over from the
** download's own URL (a redirect target, e.g. a signed CDN link, may have
** expired by the time of a retry). */
static int start_part(dl *d, part *pt, CURLM *multi, const mdl_dl_opts *o, const char *url)
{
    pt->h = curl_easy_init();
    if (!pt->h)
        return CN_ENOMEM;
    if (!url) {
        pt->hops = 0;
        snprintf(pt->url, sizeof pt->url, "%s", d->url);
    } else if (url != pt->url) {
        snprintf(pt->url, sizeof pt->url, "%s", url);
    }
    pt->fd = d->fd;
    pt->bad_range = pt->write_failed = false;
    pt->wrong_size = 0;
    pt->wrong_range[0] = 0;
    pt->wrong_total = false;
    pt->redirect_body = 0;
    pt->redirect_cut = false;
    pt->file_size = d->size;
    setup_handle(pt->h, pt->url, o->stall_s, pt->errbuf);
    char range[64];
    bool whole = pt->start == 0 && pt->done == 0 && pt->end == d->size;
    snprintf(range, sizeof range, "%lld-%lld", (long long)(pt->start + pt->done),
             (long long)(pt->end - 1));
    pt->ranged = !whole;
    pt->checked = false;
    if (!whole)
        curl_easy_setopt(pt->h, CURLOPT_RANGE, range);
    curl_easy_setopt(pt->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(pt->h, CURLOPT_WRITEDATA, pt);
    curl_easy_setopt(pt->h, CURLOPT_PRIVATE, pt);
    if (o->max_rate > 0) /* the whole download's rate, shared by its parts */
        curl_easy_setopt(pt->h, CURLOPT_MAX_RECV_SPEED_LARGE,
                         (curl_off_t)CN_MAX(1024, o->max_rate / CN_MAX(1, d->n_parts)));
    curl_multi_add_handle(multi, pt->h);
    return CN_OK;
}

static void stop_part(part *pt, CURLM *multi)
{
    if (pt->h) {
        curl_multi_remove_handle(multi, pt->h);
        curl_easy_cleanup(pt->h);
        pt->h = NULL;
    }
}

static int64_t bytes_done(const dl *d)
{
    int64_t s = 0;
    for (int i = 0; i < d->n_parts; i++)
        s += d->parts[i].done;
    return s;
}

static int disk_reserve(dl *d, cn_err *err)
{
    int r = posix_fallocate(d->fd, 0, d->size);
    if (r == EOPNOTSUPP || r == EINVAL)
        r = ftruncate(d->fd, d->size) == 0 ? 0 : errno;
    if (r == ENOSPC)
        return cn_fail(err, CN_EIO, "%s: the disk is full: %lld bytes could not be reserved",
                       d->dest, (long long)d->size);
    if (r)
        return cn_fail(err, CN_EIO, "%s: cannot reserve %lld bytes: %s", d->dest,
                       (long long)d->size, strerror(r));
    return CN_OK;
}

int mdl_download(const char *url, int64_t size, const char *dest, const mdl_dl_opts *opts,
                 cn_err *err)
{
    pthread_once(&curl_once, curl_init);
    int rc = mdl_url_check(url, err);
    if (rc)
        return rc;
    mdl_dl_opts o = opts ? *opts : (mdl_dl_opts){0};
    o.parts = o.parts > 0 ? CN_MIN(o.parts, MAX_PARTS) : 4;
    o.stall_s = o.stall_s > 0 ? o.stall_s : 30;
    o.retries = o.retries > 0 ? o.retries : 5;
    o.retry_base_ms = o.retry_base_ms > 0 ? o.retry_base_ms : 1000;
    o.min_part = o.min_part > 0 ? o.min_part : MIN_PART_BYTES;
    dl d = {.url = url, .dest = dest, .size = size};
    load_state(&d);
    bool resumed = d.n_parts > 0;
    d.fd = open(dest, O_RDWR | O_CREAT | (resumed ? 0 : O_TRUNC), 0600);
    if (d.fd < 0)
        return cn_fail(err, CN_EIO, "%s: cannot create: %s", dest, strerror(errno));
    if (!resumed) {
        fresh_parts(&d, o.parts, o.min_part);
        if ((rc = disk_reserve(&d, err)) || (rc = save_state(&d, err))) {
            close(d.fd);
            unlink(dest);
            return rc;
        }
    }
    CURLM *multi = curl_multi_init();
    double t0 = cn_now(), last_save = t0, last_report = 0;
    int64_t start_bytes = bytes_done(&d);
    double rate = 0;
    const char *note = resumed && start_bytes ? "resuming" : NULL;
    char msg[600] = "";
    for (int i = 0; i < d.n_parts; i++)
        if (d.parts[i].done < d.parts[i].end - d.parts[i].start && !rc)
            rc = start_part(&d, &d.parts[i], multi, &o, NULL);
        else
            d.parts[i].finished = true;
    while (rc == CN_OK) {
        int running = 0, active = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            part *pt;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&pt);
            CURLcode cc = m->data.result;
            if ((cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && pt->redirect_cut)) &&
                is_redirect(pt->h)) {
                char next[4096];
                int r = redirect_target(pt->h, d.url, pt->url, &pt->hops, next, sizeof next,
                                        err);
                stop_part(pt, multi);
                if (r == 1)
                    rc = start_part(&d, pt, multi, &o, next);
                else
                    rc = r ? r : cn_fail(err, CN_EIO, "%.300s: bad redirect", pt->url);
                continue;
            }
            if (cc == CURLE_OK && pt->done == pt->end - pt->start) {
                pt->finished = true;
            } else if (pt->bad_range) {
                /* the server ignores Range: one stream from byte 0 */
                for (int i = 0; i < d.n_parts; i++)
                    stop_part(&d.parts[i], multi);
                pt = NULL;
                fresh_parts(&d, 1, o.min_part);
                note = "the server ignores Range requests: starting again from the beginning";
                if (!(rc = save_state(&d, err)))
                    rc = start_part(&d, &d.parts[0], multi, &o, NULL);
                break;
            } else if (pt->wrong_range[0]) {
                /* another range: what is on disk is good, kept for a later
                ** attempt; another size: not this file, nothing to keep */
                rc = cn_fail(err, pt->wrong_total ? CN_EVERIFY : CN_EIO,
                             "%.300s: asked for bytes %lld-%lld of %lld, the server sent '%s' "
                             "instead (%s)", pt->url, (long long)(pt->start + pt->done),
                             (long long)(pt->end - 1), (long long)d.size, pt->wrong_range,
                             pt->wrong_total ? "not the file the catalog lists"
                                             : "a broken server or cache");
            } else if (pt->wrong_size) {
                rc = cn_fail(err, CN_EVERIFY, "%.300s: the server offers %lld bytes where %lld "
                             "were expected: the file there is not the %lld-byte file the "
                             "catalog lists (truncated or replaced)", pt->url,
                             (long long)pt->wrong_size,
                             (long long)(pt->end - pt->start - pt->done), (long long)d.size);
            } else if (pt->write_failed) {
                rc = cn_fail(err, CN_EIO, "%s: %s", dest,
                             pt->write_errno == ENOSPC ? "the disk is full"
                             : pt->write_errno == EOVERFLOW
                                 ? "the server sent more bytes than the file's size"
                                 : strerror(pt->write_errno));
            } else {
                if (cc == CURLE_OK)
                    snprintf(msg, sizeof msg, "%.300s: the connection closed early", pt->url);
                else
                    describe(pt->h, cc, pt->errbuf, pt->url, msg, sizeof msg);
                if (!transient(pt->h, cc) || ++pt->retries > o.retries)
                    rc = cn_fail(err, CN_EIO, "%s%s", msg,
                                 transient(pt->h, cc) ? " (gave up after retries)" : "");
                else {
                    int backoff = o.retry_base_ms << CN_MIN(pt->retries - 1, 6);
                    pt->next_at = cn_now() + CN_MIN(backoff, 60000) / 1000.0;
                    note = "retrying after a network error";
                }
            }
            if (pt)
                stop_part(pt, multi);
        }
        double now = cn_now();
        bool all_done = true;
        for (int i = 0; i < d.n_parts && !rc; i++) {
            part *pt = &d.parts[i];
            if (pt->finished)
                continue;
            all_done = false;
            if (!pt->h && pt->next_at > 0 && now >= pt->next_at) {
                pt->next_at = 0;
                rc = start_part(&d, pt, multi, &o, NULL);
            }
            active += pt->h != NULL;
        }
        if (rc || all_done)
            break;
        if (o.cancel && __atomic_load_n(o.cancel, __ATOMIC_RELAXED)) { /* set by another thread */
            rc = cn_fail(err, CN_EIO, "interrupted: the %lld bytes received are kept; run the "
                         "same command to resume", (long long)bytes_done(&d));
            break;
        }
        if (now - last_save >= SAVE_EVERY_S) {
            rc = save_state(&d, err);
            last_save = now;
        }
        if (o.fn && (note || now - last_report >= 0.2)) {
            int64_t got = bytes_done(&d) - start_bytes;
            rate = got / CN_MAX(now - t0, 1e-3);
            mdl_progress p = {o.name, "download", bytes_done(&d), size, rate,
                              rate > 0 ? (size - bytes_done(&d)) / rate : -1, active, note};
            o.fn(o.ctx, &p);
            note = NULL;
            last_report = now;
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < d.n_parts; i++)
        stop_part(&d.parts[i], multi);
    curl_multi_cleanup(multi);
    int src = save_state(&d, rc ? NULL : err);
    if (!rc)
        rc = src;
    close(d.fd);
    if (rc && bytes_done(&d) == 0) {
        /* nothing arrived (a 404, a refused redirect, no network): no
        ** reserved space or state is left behind for a resume of nothing */
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s.state", dest);
        unlink(path);
        unlink(dest);
    }
    if (rc == CN_OK) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s.state", dest);
        unlink(path);
        if (o.fn) {
            double el = cn_now() - t0;
            mdl_progress p = {o.name, "download", size, size, (size - start_bytes) / CN_MAX(el, 1e-3),
                              0, 0, NULL};
            o.fn(o.ctx, &p);
        }
    }
    return rc;
}
