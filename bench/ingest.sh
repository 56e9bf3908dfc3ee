#!/usr/bin/env bash
# Ingestion, keyword phase: `cairn add` (extract with MuPDF, chunk, write the
# pages, passages and FTS index in one transaction per document) against
# `pdftotext` (poppler; extraction only, to /dev/null) on the same real PDFs
# (tests/fetch_docs.sh). Pages per second, best of 3 runs per file.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
DOCS=${CAIRN_DOCS:-build/docs}
[ -n "$(ls "$DOCS"/*.pdf 2>/dev/null)" ] || bash tests/fetch_docs.sh "$DOCS" >/dev/null
if ! command -v pdftotext >/dev/null || ! command -v pdfinfo >/dev/null; then
    echo "ingest bench: pdftotext/pdfinfo not installed (apt-get install poppler-utils)" >&2
    exit 1
fi
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT

best() { # best wall time of 3 runs of "$@", in seconds
    local b=999999 t0 t1 d
    for _ in 1 2 3; do
        t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
        d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        b=$(awk -v a="$b" -v d="$d" 'BEGIN { print (d < a ? d : a) }')
    done
    echo "$b"
}
cairn_add() { rm -rf "$home/lib"; CAIRN_HOME="$home/lib" "$B/cairn" add "$1"; }

printf '\n%-22s %6s %16s %16s %7s\n' "document" pages "cairn add p/s" "pdftotext p/s" ratio
tp=0; tc=0; tx=0
for f in "$DOCS"/*.pdf; do
    pages=$(pdfinfo "$f" 2>/dev/null | awk '/^Pages:/ { print $2 }')
    c=$(best cairn_add "$f")
    x=$(best pdftotext "$f" /dev/null)
    tp=$((tp + pages)); tc=$(awk -v a="$tc" -v b="$c" 'BEGIN { print a + b }')
    tx=$(awk -v a="$tx" -v b="$x" 'BEGIN { print a + b }')
    awk -v n="$(basename "$f")" -v p="$pages" -v c="$c" -v x="$x" \
        'BEGIN { printf "%-22s %6d %16.0f %16.0f %6.2fx\n", n, p, p / c, p / x, x / c }'
done
awk -v p="$tp" -v c="$tc" -v x="$tx" \
    'BEGIN { printf "%-22s %6d %16.0f %16.0f %6.2fx\n\n", "all", p, p / c, p / x, x / c }'

# The other formats (issue 14): `cairn add` on the real files of
# tests/fetch_docs.sh and the generated RTF (tools/mkdocs), best of 3.
gen=$(mktemp -d)
trap 'rm -rf "$home" "$gen"' EXIT
"$B/mkdocs" "$gen" >/dev/null
printf '%-28s %6s %7s %10s %12s\n' "document" kind pages passages "cairn add p/s"
for f in "$DOCS"/*.docx "$DOCS"/*.pptx "$DOCS"/*.odt "$DOCS"/*.odp "$DOCS"/*.epub "$DOCS"/*.[1-9].gz \
    "$gen"/manual.rtf "$gen"/pumpctl.8; do
    [ -e "$f" ] || continue
    c=$(best cairn_add "$f")
    read -r kind pages passages < <(CAIRN_HOME="$home/lib" "$B/cairn" ls --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; print(d["kind"], d["pages"], d["passages"])')
    awk -v n="$(basename "$f")" -v k="$kind" -v p="$pages" -v s="$passages" -v c="$c" \
        'BEGIN { printf "%-28s %6s %7d %10d %12.0f\n", n, k, p, s, p / c }'
done

# OCR: pages of a real PDF rendered into image-only "scans" (tools/ocrbench:
# at 300 dpi clean, and at 150 dpi with grey noise), read back through
# lib_add + lib_ocr with 1 and 2 threads; character error rate against the
# PDF's own text layer. Not paper scans: an upper bound on quality.
echo
if "$B/ocrbench" --threads 1 --dpi 300 --noise 0 "$DOCS/camlidl.pdf" 2 >/dev/null 2>&1; then
    "$B/ocrbench" --threads 1,2 --dpi 300 --noise 0 "$DOCS/camlidl.pdf" 2 3 5 6
    echo
    "$B/ocrbench" --threads 1,2 --dpi 150 --noise 12 "$DOCS/camlidl.pdf" 2 3 5 6
else
    echo "OCR: not measured now (tesseract-ocr-eng not installed, or $DOCS/camlidl.pdf absent)"
fi
