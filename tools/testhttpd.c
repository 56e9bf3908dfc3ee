/*
** testhttpd: a small HTTP/1.1 file server for the model manager's tests, on
** 127.0.0.1 only, that supports Range and injects faults on request.
**
**   testhttpd ROOT [--port N] [--log FILE]
**
** Prints "port N" on stdout once listening. Serves GET/HEAD for files under
** ROOT; every response closes its connection. Faults are chosen by leading
** path segments, so one server serves every case:
**
**   /dropfirst=N/F   the first request for F is cut after N body bytes
**   /drop=N/F        every response is cut after N body bytes
**   /norange/F       Range is ignored (200 with the whole file)
**   /status=C/F      answer with status C and no body
**   /loop/F          302 to itself, forever
**   /redirect/F      302 to /F
**   /tohttp/F        302 to http://example.com/F (must be refused)
**   /stall/F         read the request, never answer
**   /slow=B/F        at most B bytes per second
**   /fat302/F        302 to /F with an endless body (1 GB of zeros, sent
**                    until the client hangs up)
**   /shiftrange=N/F  a Range request is answered with the bytes N further
**                    on (a 206 whose Content-Range says so)
**
** --log FILE appends a line per request: "path start end sent".
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *root;
static FILE *log_file;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[256][512]; /* paths already cut once (dropfirst) */
static int n_seen;

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *extra)
{
    char h[1024];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n%s\r\n",
                     status, extra ? extra : "");
    send_all(fd, h, (size_t)n);
}

static bool first_time(const char *path)
{
    pthread_mutex_lock(&mu);
    bool first = true;
    for (int i = 0; i < n_seen; i++)
        if (!strcmp(seen[i], path))
            first = false;
    if (first && n_seen < 256)
        snprintf(seen[n_seen++], sizeof seen[0], "%s", path);
    pthread_mutex_unlock(&mu);
    return first;
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[8192];
    size_t got = 0;
    req[0] = 0; /* searched before the first read: a reused thread stack may hold the last request */
    while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = 0;
    }
    req[got] = 0;
    char method[16], path[4096];
    if (sscanf(req, "%15s %4095s", method, path) != 2) {
        close(fd);
        return NULL;
    }
    long long drop = -1, slow = 0, rstart = -1, rend = -1, shift = 0;
    bool norange = false, head = !strcmp(method, "HEAD");
    char *p = path;
    for (;;) { /* fault segments */
        long long v;
        int status;
        if (sscanf(p, "/dropfirst=%lld/", &v) == 1) {
            char *rest = strchr(p + 1, '/');
            if (first_time(rest))
                drop = v;
            p = rest;
        } else if (sscanf(p, "/drop=%lld/", &v) == 1) {
            drop = v;
            p = strchr(p + 1, '/');
        } else if (sscanf(p, "/shiftrange=%lld/", &v) == 1) {
            shift = v;
            p = strchr(p + 1, '/');
        } else if (sscanf(p, "/slow=%lld/", &v) == 1) {
            slow = v;
            p = strchr(p + 1, '/');
        } else if (!strncmp(p, "/norange/", 9)) {
            norange = true;
            p += 8;
        } else if (sscanf(p, "/status=%d/", &status) == 1) {
            reply(fd, status, NULL);
            close(fd);
            return NULL;
        } else if (!strncmp(p, "/loop/", 6) || !strncmp(p, "/redirect/", 10) ||
                   !strncmp(p, "/tohttp/", 8)) {
            /* loop: to itself; redirect: to the rest of the path; tohttp: off-machine */
            const char *rest = strchr(p + 1, '/');
            char loc[4200];
            snprintf(loc, sizeof loc, "Location: %s%s\r\n", p[1] == 't' ? "http://example.com" : "",
                     p[1] == 'l' ? path : rest);
            reply(fd, 302, loc);
            close(fd);
            return NULL;
        } else if (!strncmp(p, "/fat302/", 8)) {
            char h[4400], zeros[16384] = {0};
            int n = snprintf(h, sizeof h, "HTTP/1.1 302 Found\r\nLocation: %s\r\n"
                             "Content-Length: 1000000000\r\nConnection: close\r\n\r\n", p + 7);
            send_all(fd, h, (size_t)n);
            for (long long sent = 0; sent < 1000000000LL; sent += (long long)sizeof zeros)
                if (send(fd, zeros, sizeof zeros, MSG_NOSIGNAL) <= 0)
                    break;
            close(fd);
            return NULL;
        } else if (!strncmp(p, "/stall/", 7)) {
            sleep(3600);
            close(fd);
            return NULL;
        } else
            break;
    }
    if (strstr(p, "..")) {
        reply(fd, 403, NULL);
        close(fd);
        return NULL;
    }
    char file[8192];
    snprintf(file, sizeof file, "%s%s", root, p);
    int in = open(file, O_RDONLY);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        reply(fd, 404, NULL);
        if (in >= 0)
            close(in);
        close(fd);
        return NULL;
    }
    long long size = st.st_size;
    const char *r = strcasestr(req, "\r\nRange: bytes=");
    if (r && !norange) {
        rstart = strtoll(r + 15, NULL, 10);
        const char *dash = strchr(r + 15, '-');
        rend = dash && dash[1] >= '0' && dash[1] <= '9' ? strtoll(dash + 1, NULL, 10) : size - 1;
        if (rstart >= size || rend < rstart) {
            reply(fd, 416, NULL);
            close(in);
            close(fd);
            return NULL;
        }
        if (rend >= size)
            rend = size - 1;
        if (shift > 0 && rstart + shift < size) { /* the same length, further on */
            rstart += shift;
            rend = rend + shift < size ? rend + shift : size - 1;
        }
    }
    long long start = rstart >= 0 ? rstart : 0, end = rstart >= 0 ? rend : size - 1;
    char h[512];
    int n = rstart >= 0
                ? snprintf(h, sizeof h, "HTTP/1.1 206 Partial\r\nContent-Length: %lld\r\n"
                                        "Content-Range: bytes %lld-%lld/%lld\r\n"
                                        "Connection: close\r\n\r\n",
                           end - start + 1, start, end, size)
                : snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n"
                                        "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                           size);
    send_all(fd, h, (size_t)n);
    long long sent = 0, todo = head ? 0 : end - start + 1;
    char buf[16384];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (sent < todo) {
        size_t want = sizeof buf;
        if ((long long)want > todo - sent)
            want = (size_t)(todo - sent);
        if (drop >= 0 && sent + (long long)want > drop)
            want = (size_t)(drop - sent);
        if (slow > 0 && (long long)want > slow / 10 + 1)
            want = (size_t)(slow / 10 + 1);
        if (want == 0)
            break; /* the cut */
        ssize_t k = pread(in, buf, want, start + sent);
        if (k <= 0)
            break;
        ssize_t w = send(fd, buf, (size_t)k, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += w;
        if (slow > 0) { /* pace to slow bytes per second */
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            double el = (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
            double ahead = sent / (double)slow - el;
            if (ahead > 0)
                usleep((useconds_t)(ahead * 1e6));
        }
    }
    if (log_file) {
        pthread_mutex_lock(&mu);
        fprintf(log_file, "%s %lld %lld %lld\n", p, start, end, sent);
        fflush(log_file);
        pthread_mutex_unlock(&mu);
    }
    close(in);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, opt;
    static const struct option longs[] = {{"port", required_argument, NULL, 'p'},
                                          {"log", required_argument, NULL, 'l'}, {0}};
    while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 'l' && !(log_file = fopen(optarg, "a"))) {
            fprintf(stderr, "testhttpd: %s: %s\n", optarg, strerror(errno));
            return 1;
        } else if (opt != 'l')
            return fprintf(stderr, "usage: testhttpd ROOT [--port N] [--log FILE]\n"), 2;
    }
    if (optind == argc - 1)
        root = argv[optind];
    if (!root) {
        fprintf(stderr, "usage: testhttpd ROOT [--port N] [--log FILE]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) != 0) {
        perror("testhttpd");
        return 1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
}
