/*
** host.c: is a host name this machine's loopback interface. Pure string and
** inet_pton work (no resolver, no libcurl), so the server (Host headers, the
** bind address) and the model downloader (which URLs may use plain http,
** which redirects are refused) share one answer.
*/
#include "base/base.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool cn_host_is_loopback(const char *host)
{
    if (!host || !*host)
        return false;
    if (!strcasecmp(host, "localhost"))
        return true;
    struct in_addr a4;
    /* inet_pton takes exactly four decimal parts: "127.1", "0x7f.1",
    ** "2130706433" and "127.0.0.1.evil.com" are all refused here */
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    char v6[64];
    size_t n = strlen(host);
    if (host[0] == '[') { /* a URL's "[::1]" */
        if (n < 3 || host[n - 1] != ']' || n - 2 >= sizeof v6)
            return false;
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = 0;
    } else if (n < sizeof v6) {
        memcpy(v6, host, n + 1);
    } else {
        return false;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, v6, &a6) != 1)
        return false; /* a zone id ("::1%eth0") is refused too */
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return true;
    /* ::ffff:127.x.y.z reaches 127.x.y.z */
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}
