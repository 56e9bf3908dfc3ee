#!/usr/bin/env bash
# Reranker latency as `cairn search` pays it: one query against the 30
# passages keyword search returns for it from real documents (build/docs,
# fetched by tests/fetch_docs.sh), scored in one packed run, timed in process
# (tools/rerankbench.c: model loading not counted), median of 7 runs after a
# warm-up, 2 threads. Two models, both random weights -- speed only, their
# scores mean nothing:
#   - the tests' tiny reranker (128 wide, 2 layers, 2 heads, F16);
#   - the ms-marco-MiniLM-L-6-v2 shape (6 layers, 384 wide, 12 heads, n_ff
#     1536, vocab 30522 from the bge WordPiece vocabulary), F16 and Q8_0.
#   bash bench/rerank.sh [QUERY]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
DOCS=${CAIRN_DOCS:-build/docs}
QUERY=${1:-how do I change the output format of the results}
THREADS=2
RUNS=7
[ -n "$(ls "$DOCS"/*.pdf 2>/dev/null)" ] || bash tests/fetch_docs.sh "$DOCS" >/dev/null
VOCAB=tests/data/vocab/ggml-vocab-bert-bge.gguf
mkdir -p bench/models
declare -A args=(
    [tiny-rerank-f16]="--shape minilm --n-layer 2 --n-embd 128 --n-head 2 --n-head-kv 2 --n-ff 512 --type f16"
    [minilm-l6-rerank-f16]="--shape minilm --n-layer 6 --n-embd 384 --n-head 12 --n-head-kv 12 --n-ff 1536 --type f16"
    [minilm-l6-rerank-q8_0]="--shape minilm --n-layer 6 --n-embd 384 --n-head 12 --n-head-kv 12 --n-ff 1536 --type q8_0"
)
order=(tiny-rerank-f16 minilm-l6-rerank-f16 minilm-l6-rerank-q8_0)
for m in "${order[@]}"; do
    f=bench/models/$m.gguf
    # shellcheck disable=SC2086
    [ -f "$f" ] || "$B/mkmodel" ${args[$m]} --rerank --tokenizer "$VOCAB" -o "$f" >/dev/null
done

export CAIRN_HOME=$(mktemp -d)
trap 'rm -rf "$CAIRN_HOME"' EXIT
"$B/cairn" add "$DOCS" >/dev/null 2>&1
"$B/cairn" search --json --no-rerank -k 30 -- "$QUERY" 2>/dev/null |
    jq --arg q "$QUERY" '{query: $q, documents: [.[].text]}' > "$CAIRN_HOME/pairs.json"
n=$(jq '.documents | length' "$CAIRN_HOME/pairs.json")
chars=$(jq '[.documents[] | length] | add' "$CAIRN_HOME/pairs.json")
echo "query: \"$QUERY\"; $n passages from $DOCS ($chars characters)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo
printf '%-24s %7s %7s %7s %11s %9s %9s %11s\n' model threads pairs tokens "median ms" "best ms" "worst ms" "pairs/s"
for m in "${order[@]}"; do
    out=$("$B/rerankbench" -m "bench/models/$m.gguf" -t $THREADS -r $RUNS "$CAIRN_HOME/pairs.json")
    med=$(echo "$out" | jq .median_ms)
    printf '%-24s %7s %7s %7s %11s %9s %9s %11s\n' "$m" $THREADS "$(echo "$out" | jq .pairs)" \
        "$(echo "$out" | jq .tokens)" "$med" "$(echo "$out" | jq .best_ms)" \
        "$(echo "$out" | jq .worst_ms)" "$(awk -v n="$n" -v t="$med" 'BEGIN { printf "%.1f", n / t * 1000 }')"
done
echo
echo "random weights: speed only (the scores mean nothing); load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
