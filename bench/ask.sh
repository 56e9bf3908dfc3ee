#!/usr/bin/env bash
# Time to first token of `cairn ask` with a Llama-3.2-1B-shape model (random
# weights, Q4_K_M mix, made by tools/mkmodel with the Llama 3 tokenizer of the
# tiny fixture model) and 4 retrieved passages, over the real PDFs of
# tests/fetch_docs.sh. Time to first token = search + model load + prompt.
#   bash bench/ask.sh [RUNS]     (median of RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
RUNS=${1:-3}
DOCS=${CAIRN_DOCS:-build/docs}
FIX=${CAIRN_FIXTURES:-../shared/fixtures}
M=${ASK_MODEL:-bench/models/llama32-1b-q4_k_m.gguf}
[ -n "$(ls "$DOCS"/*.pdf 2>/dev/null)" ] || bash tests/fetch_docs.sh "$DOCS" >/dev/null
mkdir -p bench/models
[ -f "$M" ] || "$B/mkmodel" --shape llama32-1b --type q4_k_m \
    --tokenizer "$FIX/models/tiny-llama-q8_0.gguf" -o "$M" >/dev/null
export CAIRN_HOME=$(mktemp -d)
trap 'rm -rf "$CAIRN_HOME"' EXIT
"$B/cairn" add "$DOCS" >/dev/null 2>&1
cat /dev/null > "$CAIRN_HOME/runs"
for _ in $(seq "$RUNS"); do
    "$B/cairn" ask --json -k 4 -n 16 -m "$M" "How are ghost variables declared in Why3?" \
        2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin)["timings"]
print(t["first_token_s"], t["search_s"], t["prompt_tokens"], t["prompt_s"],
      t["answer_tokens"] / max(t["answer_s"], 1e-9))' >> "$CAIRN_HOME/runs"
done
sort -n "$CAIRN_HOME/runs" | awk -v r="$RUNS" -v m="$(basename "$M" .gguf)" '
    NR == int((r + 1) / 2) {
        printf "\n`cairn ask`, %s, 4 passages (%d prompt tokens), median of %d:\n", m, $3, r
        printf "  time to first token %.2f s (search %.3f s, prompt %.2f s = %.1f tokens/s), then %.1f tokens/s\n\n",
               $1, $2, $4, $3 / $4, $5
    }'
