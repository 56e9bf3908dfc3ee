#!/usr/bin/env bash
# tests/offline.sh CMD...: run CMD (a test suite) where nothing can leave
# the machine, with a remote engine configured that nobody consents to.
#
#   - a new network namespace (`unshare -n`, needs root) with only loopback
#     up: no route off the machine, which is checked before CMD runs;
#   - a listener on that loopback playing the remote (tests/server/countd.mjs),
#     and $CAIRN_CONFIG naming it as `remote.watch`, with its key in the
#     environment: every test that does not set a config of its own runs
#     with that remote configured (the node suites' servers too, through
#     $CAIRN_OFFLINE_CONFIG);
#   - after CMD: the listener must have seen zero connections (issue 17:
#     nothing leaves without consent). The remote tests that do send, with
#     --yes or a confirmed dialog, use their own config and listener.
#
# CI runs `make asan` this way; `make test-offline` runs `make test` so.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
    echo "usage: tests/offline.sh CMD... (e.g. make test)" >&2
    exit 2
fi
if [ -z "${CAIRN_IN_NETNS:-}" ]; then
    if ! unshare -n true 2>/dev/null; then
        echo "tests/offline.sh: cannot make a network namespace (\`unshare -n\` needs root)" >&2
        exit 2
    fi
    exec env CAIRN_IN_NETNS=1 unshare -n -- bash "$0" "$@"
fi

ip link set lo up
# nothing but loopback: no interface up besides lo, no route off the machine
if ip -o link show up | grep -v ': lo:' | grep -q .; then
    echo "tests/offline.sh: an interface besides lo is up in the namespace" >&2
    exit 2
fi
if ip route get 192.0.2.1 >/dev/null 2>&1; then
    echo "tests/offline.sh: a route off the machine exists in the namespace" >&2
    exit 2
fi
tmp=$(mktemp -d /tmp/cairn-offline.XXXXXX)
node tests/server/countd.mjs "$tmp/port" "$tmp/connections" &
countd=$!
trap 'kill $countd 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
# the listener counts: one connection made on purpose is seen, then forgotten
curl -s -o /dev/null "http://127.0.0.1:$port/v1/models" || true
if [ "$(grep -c '^[0-9]' "$tmp/connections" || true)" -ne 1 ]; then
    echo "tests/offline.sh: the counting listener did not see a connection made to it" >&2
    exit 2
fi
: > "$tmp/connections"
cat > "$tmp/config" <<CONF
# a remote configured, never consented to (tests/offline.sh)
remote.watch.base_url = http://127.0.0.1:$port/v1
remote.watch.model = bigger-model
remote.watch.api_key_env = CAIRN_OFFLINE_WATCH_KEY
CONF
export CAIRN_CONFIG="$tmp/config" CAIRN_OFFLINE_CONFIG="$tmp/config" CAIRN_OFFLINE_WATCH_KEY=offline-test-key
echo "tests/offline.sh: no network but loopback; remote.watch configured at 127.0.0.1:$port"
rc=0
"$@" || rc=$?
n=$(grep -c '^[0-9]' "$tmp/connections" || true)
echo "tests/offline.sh: the unconsented remote saw $n connections"
if [ "$n" -ne 0 ]; then
    sed 's/^/  /' "$tmp/connections" >&2
    echo "tests/offline.sh: a remote was called without consent" >&2
    exit 1
fi
exit $rc
