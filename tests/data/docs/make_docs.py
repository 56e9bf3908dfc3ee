#!/usr/bin/env python3
"""Writes the small PDF and text fixtures of tests/unit/test_ingest.c.

The PDFs are written by hand (objects, a cross-reference table, a trailer)
with the standard Helvetica font, so that the text on each page is known
exactly. encrypted.pdf is made from simple.pdf by qpdf (used only here; the
output is committed). Run from the repository root:
    python3 tests/data/docs/make_docs.py
"""
import os, subprocess, zlib

OUT = os.path.dirname(os.path.abspath(__file__))


def esc(s):
    b = s.encode('cp1252')
    return b.replace(b'\\', b'\\\\').replace(b'(', b'\\(').replace(b')', b'\\)')


def pdf(objs, root=1, info=None, count_override=None):
    """objs: list of bytes (object bodies, numbered from 1)."""
    out = bytearray(b'%PDF-1.4\n%\xe2\xe3\xcf\xd3\n')
    offs = []
    for i, body in enumerate(objs, 1):
        offs.append(len(out))
        out += b'%d 0 obj\n' % i + body + b'\nendobj\n'
    x = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objs) + 1)
    for o in offs:
        out += b'%010d 00000 n \n' % o
    tr = b'<< /Size %d /Root %d 0 R' % (len(objs) + 1, root)
    if info:
        tr += b' /Info %d 0 R' % info
    out += b'trailer\n' + tr + b' >>\nstartxref\n%d\n%%%%EOF\n' % x
    return bytes(out)


def stream(data, compress=False):
    if compress:
        data = zlib.compress(data)
        return b'<< /Length %d /Filter /FlateDecode >>\nstream\n' % len(data) + data + b'\nendstream'
    return b'<< /Length %d >>\nstream\n' % len(data) + data + b'\nendstream'


def text_ops(items):
    """items: (x, y, size, text) -> content stream bytes."""
    ops = bytearray()
    for x, y, size, t in items:
        ops += b'BT /F1 %d Tf %d %d Td (' % (size, x, y) + esc(t) + b') Tj ET\n'
    return bytes(ops)


def doc(pages, title=None, kids_override=None, count_override=None):
    """pages: list of content stream bytes. Returns a PDF."""
    n = len(pages)
    # 1 catalog, 2 pages, 3 font, 4 info, then (page, content) pairs
    objs = [b'<< /Type /Catalog /Pages 2 0 R >>', None,
            b'<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>',
            b'<< /Title (' + esc(title or '') + b') /Producer (make_docs.py) >>']
    kids = []
    for i, content in enumerate(pages):
        pno = 5 + 2 * i
        kids.append(b'%d 0 R' % pno)
        objs.append(b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] '
                    b'/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>' % (pno + 1))
        objs.append(stream(content, compress=(i % 2 == 1)))
    objs[1] = (b'<< /Type /Pages /Kids [' + (kids_override or b' '.join(kids)) +
               b'] /Count %d >>' % (count_override if count_override is not None else n))
    return pdf(objs, info=4 if title else None)


HEADER = 'Cairn Field Guide'


def page(no, body):
    """A page with the running header, a page number footer and body lines
    (size, text) from the top."""
    items = [(72, 750, 9, HEADER), (300, 40, 9, str(no))]
    y = 690
    for size, t in body:
        if t:
            items.append((72, y, size, t))
        y -= size + 5 if t else 12
    return text_ops(items)


SIMPLE = [
    page(1, [(16, '1 Introduction'), (11, ''),
             (11, 'Cairn reads documents on your own machine. The quick brown fox'),
             (11, 'jumps over the lazy dog near the river bank. It builds an infor-'),
             (11, 'mation index that never leaves the computer.'), (11, ''),
             (11, 'Every answer cites the page it came from, so a person can check it.')]),
    page(2, [(16, '2 Storage'), (11, ''),
             (11, 'Passages are stored with their page numbers so that answers can cite'),
             (11, 'the page. The caf\u00e9 serves cr\u00e8me br\u00fbl\u00e9e on Fridays.'), (11, ''),
             (11, 'A well-known self-test runs at start-up and reports any damaged file.')]),
    page(3, [(16, '3 Searching'), (11, ''),
             (11, 'Keyword search ranks passages with BM25. Vector search compares'),
             (11, 'embeddings. The two lists are fused by reciprocal rank fusion.')]),
]


def columns():
    left = ['The left column starts here and', 'continues with a sentence that',
            'runs over several lines of text', 'until it reaches the end of the',
            'first column of this page.', '', 'A second paragraph in the left',
            'column talks about apples and', 'pears growing in the orchard.']
    right = ['The right column begins with a', 'different story about rivers',
             'that flow down to the sea and', 'carry boats full of cargo', 'to distant harbours.',
             '', 'Its second paragraph mentions', 'lighthouses guiding the ships',
             'safely into the bay at night.']
    items = []
    # the right column is written first: reading order must not follow the stream
    for i, t in enumerate(right):
        if t:
            items.append((320, 680 - 14 * i, 11, t))
    items.append((72, 730, 18, 'Two Column Layout Test'))
    for i, t in enumerate(left):
        if t:
            items.append((72, 680 - 14 * i, 11, t))
    items.append((72, 500, 11, 'A full-width closing line sits below both columns of the page.'))
    return text_ops(items)


def image_only():
    # a 2x2 grey image drawn over the page, no text at all
    return b'q 400 0 0 400 100 200 cm BI /W 2 /H 2 /CS /G /BPC 8 ID \x10\x80\x80\x10 EI Q\n'


def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def main():
    simple = doc(SIMPLE, title='Cairn Fixture')
    write('simple.pdf', simple)
    write('columns.pdf', doc([columns()]))
    write('image-only.pdf', doc([image_only(), image_only()]))
    write('truncated.pdf', simple[:len(simple) * 55 // 100])
    # a page tree whose only kid is the tree itself
    write('cyclic.pdf', doc([SIMPLE[0]], kids_override=b'2 0 R'))
    # a page tree that declares two billion pages
    write('two-billion.pdf', doc([SIMPLE[0]], count_override=2000000000))
    # %PDF- header, then nothing MuPDF can use
    write('damaged.pdf', b'%PDF-1.7\n' + bytes((i * 73 + 41) % 256 for i in range(3000)))
    write('garbage.pdf', bytes((i * 131 + 7) % 251 for i in range(4096)))
    write('html.pdf', b'<!DOCTYPE html>\n<html><head><title>Not a PDF</title></head>'
          b'<body><p>This is a web page saved with the wrong name.</p></body></html>\n')
    # encrypted with a user password (qpdf is only needed to regenerate this)
    try:
        subprocess.run(['qpdf', '--encrypt', 'secret', 'owner', '256', '--',
                        os.path.join(OUT, 'simple.pdf'), os.path.join(OUT, 'encrypted.pdf')],
                       check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print('qpdf not available, encrypted.pdf kept as is:', e)

    text = ('Plain text fixture.\n\nThe second paragraph has caf\u00e9 and na\u00efve words, '
            'and \u65e5\u672c\u8a9e too.\n')
    write('utf16le.txt', b'\xff\xfe' + text.encode('utf-16-le'))
    write('utf16be.txt', b'\xfe\xff' + text.encode('utf-16-be'))
    write('invalid-utf8.txt', b'Good start.\n\nBad bytes \xff\xfe here, a lone \xc3 and a '
          b'truncated \xe2\x82 sequence.\n')
    write('notes.md', '''---
layout: post
---
Intro line before any heading.

# Cairn *Markdown* Guide

Some **bold** text, a [link](https://example.org/x) and `inline code`.

## Install

```sh
make && make test
```

| key | value |
|-----|-------|
| one | two   |

![diagram](img.png) shows snake_case_names.
'''.encode())
    write('page.html', '''<!DOCTYPE html>
<html><head><title>Cairn &amp; HTML</title><style>p { color: red }</style>
<script>var hidden = "do not index";</script></head>
<body><h1>Heading One</h1><p>First paragraph with &eacute;l&egrave;ve and &lt;tags&gt;.</p>
<div>Second block<br>with a break.</div><ul><li>item one</li><li>item two</li></ul>
<pre>code  kept
  as is</pre><noscript>no script text</noscript></body></html>
'''.encode())


if __name__ == '__main__':
    main()
