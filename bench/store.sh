#!/usr/bin/env bash
# Library store: writing documents, keyword search latency (p50/p99), storing
# and loading embeddings, on a synthetic library of 10 000 pages (30 000
# passages of ~670 bytes, Zipf-distributed pseudo-words), synchronous=FULL
# (what Cairn uses) and NORMAL for comparison. Numbers depend on the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
out=${TMPDIR:-/tmp}/cairn-storebench.db
for sync in full normal; do
    "$B/storebench" --pages 10000 --sync $sync -o "$out"
    echo
done
rm -f "$out" "$out-wal" "$out-shm"
