/*
** zipw.h: a minimal ZIP writer for test fixtures (Word, OpenDocument, EPUB
** files built in memory by the tests, and hostile ZIPs). Entries are stored
** or deflated (zlib, raw deflate as ZIP wants); no ZIP64, no encryption.
** Header-only: the tests and tools/mkdocs.c include it.
*/
#ifndef CN_TEST_ZIPW_H
#define CN_TEST_ZIPW_H

#include "base/base.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct zipw {
    cn_buf out, cd; /* file so far; central directory */
    int n;
} zipw;

static inline void zipw_init(zipw *z)
{
    cn_buf_init(&z->out, (size_t)1 << 30);
    cn_buf_init(&z->cd, (size_t)1 << 30);
    z->n = 0;
}

static inline void zipw_u16(cn_buf *b, unsigned v)
{
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    cn_buf_append(b, c, 2);
}

static inline void zipw_u32(cn_buf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    cn_buf_append(b, c, 4);
}

/* Add an entry; deflate when compress is true. claimed_size, when not 0,
** is written as the uncompressed size instead of the real one (a lie). */
static inline void zipw_add_ex(zipw *z, const char *name, const void *data, size_t len,
                               bool compress, uint32_t claimed_size)
{
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)data, (uInt)len);
    unsigned char *cdata = (unsigned char *)data;
    size_t clen = len;
    unsigned char *tmp = NULL;
    if (compress) {
        z_stream s;
        memset(&s, 0, sizeof s);
        deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
        size_t cap = deflateBound(&s, (uLong)len) + 16;
        tmp = cn_malloc(cap);
        s.next_in = (Bytef *)data;
        s.avail_in = (uInt)len;
        s.next_out = tmp;
        s.avail_out = (uInt)cap;
        deflate(&s, Z_FINISH);
        clen = cap - s.avail_out;
        deflateEnd(&s);
        cdata = tmp;
    }
    uint32_t off = (uint32_t)z->out.len;
    size_t nl = strlen(name);
    uint32_t usize = claimed_size ? claimed_size : (uint32_t)len;
    zipw_u32(&z->out, 0x04034b50);
    zipw_u16(&z->out, 20);
    zipw_u16(&z->out, 0);
    zipw_u16(&z->out, compress ? 8 : 0);
    zipw_u16(&z->out, 0);
    zipw_u16(&z->out, 0x21);
    zipw_u32(&z->out, crc);
    zipw_u32(&z->out, (uint32_t)clen);
    zipw_u32(&z->out, usize);
    zipw_u16(&z->out, (unsigned)nl);
    zipw_u16(&z->out, 0);
    cn_buf_append(&z->out, name, nl);
    cn_buf_append(&z->out, cdata, clen);
    zipw_u32(&z->cd, 0x02014b50);
    zipw_u16(&z->cd, 20);
    zipw_u16(&z->cd, 20);
    zipw_u16(&z->cd, 0);
    zipw_u16(&z->cd, compress ? 8 : 0);
    zipw_u16(&z->cd, 0);
    zipw_u16(&z->cd, 0x21);
    zipw_u32(&z->cd, crc);
    zipw_u32(&z->cd, (uint32_t)clen);
    zipw_u32(&z->cd, usize);
    zipw_u16(&z->cd, (unsigned)nl);
    zipw_u16(&z->cd, 0);
    zipw_u16(&z->cd, 0);
    zipw_u16(&z->cd, 0);
    zipw_u16(&z->cd, 0);
    zipw_u32(&z->cd, 0);
    zipw_u32(&z->cd, off);
    cn_buf_append(&z->cd, name, nl);
    z->n++;
    free(tmp);
}

/* zipw_add stores entries uncompressed while this is set (fuzzer seeds:
** mutations then land in the XML, not in deflate's bit stream). */
static bool zipw_store_only;

static inline void zipw_add(zipw *z, const char *name, const char *text)
{
    zipw_add_ex(z, name, text, strlen(text), !zipw_store_only, 0);
}

/* Finish: the whole file in *data (malloc'd, the caller frees), its size. */
static inline size_t zipw_finish(zipw *z, char **data)
{
    uint32_t cd_off = (uint32_t)z->out.len;
    cn_buf_append(&z->out, z->cd.data, z->cd.len);
    zipw_u32(&z->out, 0x06054b50);
    zipw_u16(&z->out, 0);
    zipw_u16(&z->out, 0);
    zipw_u16(&z->out, (unsigned)z->n);
    zipw_u16(&z->out, (unsigned)z->n);
    zipw_u32(&z->out, (uint32_t)z->cd.len);
    zipw_u32(&z->out, cd_off);
    zipw_u16(&z->out, 0);
    cn_buf_free(&z->cd);
    *data = z->out.data;
    return z->out.len;
}

#endif
