#!/usr/bin/env bash
# Passage trimming on the paraphrased set (bench/qa/, see its README): does
# each answer's evidence survive the trim `cairn ask` applies to the
# passages, and how many prompt tokens does it save, per budget.
#   bash bench/trim.sh [--budgets 256,512,...] [--home LIBRARY_HOME] [-v]
# Documents: $CAIRN_QA_DOCS (build/qadocs; fetched if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
QA_DOCS=${CAIRN_QA_DOCS:-build/qadocs}
[ -n "$(ls "$QA_DOCS"/*.pdf 2>/dev/null)" ] || bash tests/fetch_docs.sh --qa "$QA_DOCS" >/dev/null
B=${BUILD:-build}
[ -x "$B/trimbench" ] || make -s BUILD="$B" "$B/trimbench"
exec python3 bench/qa/trim.py --docs "$QA_DOCS" --bin "$B/cairn" --tool "$B/trimbench" "$@"
