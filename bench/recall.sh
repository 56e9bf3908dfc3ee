#!/usr/bin/env bash
# recall@K of `cairn search` on bench/questions.tsv over the real documents
# fetched by tests/fetch_docs.sh: a question counts as found when one of the
# top K passages is from its document and cites its page (or spans it).
#   bash bench/recall.sh [K] [-e EMBED.gguf]
#
# --qa runs the paraphrased set instead (bench/qa/, see its README):
# recall@1/@K, MRR and cited-page exactness per kind, for keyword, hybrid
# (-e) and reranked (--rerank "ARGS" for `cairn search`) search, and the top
# scores of the unanswerable questions; --distractors adds ~3,800 pages of
# documents no question is about. Documents: $CAIRN_QA_DOCS (build/qadocs).
#   bash bench/recall.sh --qa [--distractors] [-k 5] [-e EMBED.gguf] [--rerank ARGS] [-v]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--qa" ]; then
    shift
    QA_DOCS=${CAIRN_QA_DOCS:-build/qadocs}
    [ -n "$(ls "$QA_DOCS"/*.pdf 2>/dev/null)" ] || bash tests/fetch_docs.sh --qa "$QA_DOCS" >/dev/null
    exec python3 bench/qa/recall.py --docs "$QA_DOCS" "$@"
fi
K=${1:-5}
shift || true
B=${BUILD:-build}
DOCS=${CAIRN_DOCS:-build/docs}
[ -n "$(ls "$DOCS"/*.pdf 2>/dev/null)" ] || bash tests/fetch_docs.sh "$DOCS" >/dev/null
export CAIRN_HOME=$(mktemp -d)
trap 'rm -rf "$CAIRN_HOME"' EXIT
"$B/cairn" add "$DOCS" "$@" >/dev/null 2>&1
total=0; found=0
while IFS=$'\t' read -r doc page q; do
    case "$doc" in \#*|"") continue;; esac
    total=$((total + 1))
    out=$("$B/cairn" search --json -k "$K" "$@" -- "$q" 2>/dev/null)
    if echo "$out" | python3 -c '
import json, sys
doc, page = sys.argv[1], int(sys.argv[2])
hits = json.load(sys.stdin)
ok = any(h["path"].endswith("/" + doc) and (h["page"] == page or h["page_start"] <= page <= h["page_end"]) for h in hits)
sys.exit(0 if ok else 1)' "$doc" "$page"; then
        found=$((found + 1))
    else
        echo "missed: $doc p.$page: $q" >&2
    fi
done < bench/questions.tsv
echo "recall@$K: $found/$total"
