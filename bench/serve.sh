#!/usr/bin/env bash
# cairn serve: search requests per second over HTTP (wrk, 2 threads, 32
# connections, 10 s) on a small library (the test PDFs), keyword search, no
# model loaded: the cost of the HTTP layer, the library handle pool and
# FTS5 together. Baseline: none yet (first figures). Needs wrk (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
command -v wrk >/dev/null || { echo "bench/serve.sh: wrk is not installed (apt-get install wrk)"; exit 0; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$B/cairn" add --home "$dir/home" tests/data/docs/simple.pdf tests/data/docs/columns.pdf \
    tests/data/docs/notes.md tests/data/docs/page.html 2>/dev/null
"$B/cairn" serve --home "$dir/home" --port 0 --port-file "$dir/port" --quiet 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(cat "$dir/port")
cat >"$dir/search.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"query": "reciprocal rank fusion", "k": 5}'
wrk.headers["Content-Type"] = "application/json"
LUA
echo "search over HTTP: POST /api/library/search, 2 threads, 32 connections, 10 s"
wrk -t2 -c32 -d10s -s "$dir/search.lua" "http://127.0.0.1:$port/api/library/search" |
    grep -E "Requests/sec|Latency|requests in|Non-2xx"
