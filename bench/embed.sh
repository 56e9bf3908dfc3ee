#!/usr/bin/env bash
# Embedding throughput: chunks of 256 tokens per second on the all-MiniLM-L6-v2
# shape (6 layers, 384 wide, 12 heads, n_ff 1536, vocab 30522), F16 and Q8_0,
# 1 and 2 threads, beside llama.cpp b4747 measured on this machine with the
# same files (64 chunks of 256 tokens, one sequence per batch, median of 5).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
mkdir -p bench/models
for t in f16 q8_0; do
    f=bench/models/minilm-$t.gguf
    [ -f "$f" ] || "$B/mkmodel" --shape minilm --type $t \
        --tokenizer tests/data/vocab/ggml-vocab-bert-bge.gguf -o "$f" >/dev/null
done

# llama.cpp's figures from the embeddings issue (chunks/s)
declare -A ref=([f16-1]=6.7 [f16-2]=9.8 [q8_0-1]=5.7 [q8_0-2]=10.3)

printf '\n%-22s %7s %14s %14s %12s %8s\n' "model" threads "cairn packed" "cairn 1/batch" "llama.cpp" ratio
for t in f16 q8_0; do
    for th in 1 2; do
        out=$("$B/cairn" embed -m bench/models/minilm-$t.gguf --bench --json -t $th)
        packed=$(echo "$out" | sed -E 's/.*"chunks_per_s": ([0-9.]+).*/\1/')
        single=$(echo "$out" | sed -E 's/.*"chunks_per_s_one_per_batch": ([0-9.]+).*/\1/')
        r=${ref[$t-$th]}
        ratio=$(awk -v a="$packed" -v b="$r" 'BEGIN { printf "%.2fx", a / b }')
        printf '%-22s %7d %14s %14s %12s %8s\n' "minilm $t" $th "$packed" "$single" "$r" "$ratio"
    done
done
echo
echo "chunks/s of 256 tokens; ratio = cairn packed / llama.cpp (one sequence per batch)"
