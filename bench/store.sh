#!/usr/bin/env bash
# Library store: writing documents, keyword search latency (p50/p99), storing
# and loading embeddings, on a synthetic library of 10 000 pages (30 000
# passages of ~670 bytes, Zipf-distributed pseudo-words), synchronous=FULL
# (what Cairn uses) and NORMAL for comparison. Numbers depend on the disk.
#
# Then the cost of encryption at rest (issue 15): the same library plain and
# encrypted, in interleaved rounds of this one run (ROUNDS, default 2; the
# best of each kept), side by side with the ratio. Goal: at most 15 % slower.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
out=${TMPDIR:-/tmp}/cairn-storebench.db
ROUNDS=${ROUNDS:-2}
clean() { rm -f "$out" "$out-wal" "$out-shm"; }
if [ "${ONLY_ENCRYPTION:-0}" != 1 ]; then
    for sync in full normal; do
        "$B/storebench" --pages 10000 --sync $sync -o "$out"
        echo
    done
fi

log=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
    for mode in plain encrypted; do
        flag=; [ $mode = encrypted ] && flag=--encrypt
        clean
        "$B/storebench" --pages 10000 --sync full $flag -o "$out" | sed "s/^/$mode /" >> "$log"
    done
done
clean
echo "encryption at rest: 10 000 pages, synchronous=FULL, best of $ROUNDS interleaved rounds"
awk '
function keep(mode, key, v, higher) {
    k = mode SUBSEP key
    if (!(k in best) || (higher ? v > best[k] : v < best[k])) best[k] = v
}
{
    mode = $1
    if ($2 == "store_put_document") keep(mode, "ingest (pages/s)", $5, 1)
    if ($2 == "keyword" && match($0, /p50 +[0-9.]+/)) {
        v = substr($0, RSTART + 4, RLENGTH - 4) + 0
        keep(mode, $0 ~ /AND hits/ ? "keyword search p50, AND (ms)" : "keyword search p50, OR (ms)", v, 0)
    }
    if ($2 == "store_put_embeddings") keep(mode, "store vectors (vectors/s)", $3, 1)
    if ($2 == "store_load_embeddings" && $3 == "(reopened)") keep(mode, "vector load, reopened (s)", $4, 0)
}
END {
    n = split("ingest (pages/s)|keyword search p50, AND (ms)|keyword search p50, OR (ms)|store vectors (vectors/s)|vector load, reopened (s)", keys, "|")
    printf "| %-30s | %10s | %10s | %-16s |\n", "measure", "plain", "encrypted", "encrypted costs"
    printf "|%s|%s|%s|%s|\n", "--------------------------------", "------------", "------------", "------------------"
    for (i = 1; i <= n; i++) {
        p = best["plain" SUBSEP keys[i]]; e = best["encrypted" SUBSEP keys[i]]
        rate = keys[i] ~ /\/s\)/
        cost = rate ? (p / e - 1) * 100 : (e / p - 1) * 100
        printf "| %-30s | %10s | %10s | %+15.1f%% |\n", keys[i], p, e, cost
    }
}' "$log"
rm -f "$log"
