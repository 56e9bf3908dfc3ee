#!/usr/bin/env bash
# Constrained decoding (issue 16): what a JSON schema costs per generated
# token on the Llama 3.2 1B shape (Q4_K_M mix, random weights) with Llama 3's
# 128k-token vocabulary, with and without the schema, in interleaved rounds
# of one run (ROUNDS, default 2; best of each kept); then the mask alone
# (tools/maskbench) walking a JSON document token by token. Goal: the mask
# costs at most 5 % of a decode step.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
M=bench/models/llama32-1b-bpe-q4_k_m.gguf
S=bench/grammar/person.schema.json
mkdir -p bench/models
[ -f "$M" ] || "$B/mkmodel" --shape llama32-1b --type q4_k_m \
    --tokenizer tests/data/vocab/ggml-vocab-llama-bpe.gguf -o "$M" >/dev/null
run() { # extra args...; prints ms per generated token
    "$B/cairn" generate -m "$M" -p "Describe the pump in the manual." -n 96 --temp 0 -t "$THREADS" \
        --ctx 512 "$@" 2>&1 >/dev/null | sed -n 's/.*generated: \([0-9]*\) tokens, \([0-9.]*\) t\/s.*/\2/p' |
        awk '{ printf "%.2f\n", 1000 / $1 }'
}
free_ms=99999; schema_ms=99999
for r in $(seq 1 "$ROUNDS"); do
    a=$(run); b=$(run --schema "$S")
    free_ms=$(awk -v x="$a" -v y="$free_ms" 'BEGIN { print (x < y ? x : y) }')
    schema_ms=$(awk -v x="$b" -v y="$schema_ms" 'BEGIN { print (x < y ? x : y) }')
done
echo "generation, 1B Q4_K_M shape, 128k vocabulary, $THREADS threads, best of $ROUNDS interleaved rounds:"
awk -v f="$free_ms" -v s="$schema_ms" 'BEGIN {
    printf "  free text      %7.2f ms per token\n  under a schema %7.2f ms per token (%+.1f %%)\n", f, s, (s / f - 1) * 100 }'
# the direct measure: time in masks over time generating, from one run
line=$("$B/cairn" generate -m "$M" -p "Describe the pump in the manual." -n 96 --temp 0 -t "$THREADS" \
    --ctx 512 --schema "$S" 2>&1 >/dev/null)
echo "$line" | awk '
    /generated:/ { for (i = 1; i <= NF; i++) if ($i == "generated:") { n = $(i + 1); tps = $(i + 3) } }
    /^grammar:/ { masked = $2; each = $10; sub(/\(/, "", each) }
    END { step = 1000 / tps; printf "  %d of %d tokens needed the whole mask, %.1f ms each: %.1f %% of the time generating\n", masked, n, each, masked * each / (n * step) * 100 }'
echo "the mask alone, walking a JSON document of the schema:"
"$B/maskbench" tests/data/vocab/ggml-vocab-llama-bpe.gguf "$S" \
    '{"name": "Ann Lee", "age": 41, "summary": "The centrifugal pump must be primed before the first start; open the bleed valve until water flows, then close it and check the seal every 2000 hours.", "tags": ["pump", "maintenance", "safety"]}' |
    sed 's/^/  /'
