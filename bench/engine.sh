#!/usr/bin/env bash
# Engine speed: prompt processing (pp128, pp512) and generation (tg64) in
# tokens/s on the shapes of Llama 3.2 1B (Q4_K_M mix and Q8_0) and Qwen 2.5
# 0.5B (Q4_K_M mix) with random weights, 1 and 2 threads, median of 3 runs
# (cairn bench); the machine's memory bandwidth (tools/membw, STREAM-style);
# generation as a share of the bandwidth limit (read bandwidth / bytes of
# weights per token); and the ratio to llama.cpp b4747 measured on this
# machine on the same shapes (the figures of the engine speed issue).
#
#   bash bench/engine.sh            all of it (about ten minutes)
#   REPS=5 bash bench/engine.sh     more runs per figure
#
# Models are generated once by tools/mkmodel into bench/models/ (git-ignored).
# Numbers are only worth reading on an otherwise idle machine: the script
# prints the load average it started with.
#
# The weights are locked in memory (--mlock; MLOCK=0 to not): this machine's
# kernel reclaims page-cache pages that sit idle (DAMON), so between runs part
# of a model falls out of memory and generation would time the disk instead
# of the engine. Where locking is not allowed (ulimit -l), the script goes on
# without it and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
REPS=${REPS:-3}
T=../shared/fixtures/models
[ -d "$T" ] || T=/work/shared/fixtures/models
mkdir -p bench/models

make_model() { # shape type tokenizer-model
    local f=bench/models/$1-$2.gguf
    [ -f "$f" ] || "$B/mkmodel" --shape "$1" --type "$2" --tokenizer "$T/$3" -o "$f" >/dev/null
}
make_model llama32-1b q4_k_m tiny-llama-q8_0.gguf
make_model llama32-1b q8_0 tiny-llama-q8_0.gguf
make_model qwen25-05b q4_k_m tiny-qwen2-f32.gguf

# llama.cpp b4747 (llama-bench, GGML_NATIVE=ON), this machine: pp128 pp512 tg64
declare -A ref=(
    [llama32-1b-q4_k_m-1]="25.7 23.5 13.6" [llama32-1b-q4_k_m-2]="42.4 43.2 22.1"
    [llama32-1b-q8_0-1]="30.5 28.7 9.0" [llama32-1b-q8_0-2]="53.2 51.9 16.6"
    [qwen25-05b-q4_k_m-1]="54.9 48.4 23.5" [qwen25-05b-q4_k_m-2]="112.2 90.1 36.4"
)

LOCK=()
if [ "${MLOCK:-1}" = 1 ]; then
    if "$B/cairn" bench -m bench/models/qwen25-05b-q4_k_m.gguf -p 0 -n 1 -r 1 --mlock >/dev/null 2>&1; then
        LOCK=(--mlock)
    else
        echo "note: cannot lock the models in memory (ulimit -l); timing without --mlock"
    fi
fi

field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A bw
for th in 1 2; do
    j=$("$B/membw" -t $th --json)
    bw[$th]=$(echo "$j" | field read_gbs)
    echo "memory bandwidth, $th thread(s): read ${bw[$th]} GB/s, triad $(echo "$j" | field triad_gbs) GB/s"
done

printf '\n| %-18s | %s | %-16s | %-16s | %-16s | %-9s | %s |\n' model threads \
    "pp128 t/s (x)" "pp512 t/s (x)" "tg64 t/s (x)" "bw limit" "tg % of limit"
echo "|---|---|---|---|---|---|---|"
for m in llama32-1b-q4_k_m llama32-1b-q8_0 qwen25-05b-q4_k_m; do
    f=bench/models/$m.gguf
    for th in 1 2; do
        a=$("$B/cairn" bench -m "$f" -p 128 -n 64 -r "$REPS" -t $th "${LOCK[@]}" --json)
        b=$("$B/cairn" bench -m "$f" -p 512 -n 0 -r "$REPS" -t $th "${LOCK[@]}" --json)
        pp128=$(echo "$a" | field pp_tps)
        tg=$(echo "$a" | field tg_tps)
        pp512=$(echo "$b" | field pp_tps)
        bytes=$(echo "$a" | field bytes_per_token)
        read -r r128 r512 rtg <<<"${ref[$m-$th]}"
        limit=$(awk -v g="${bw[$th]}" -v b="$bytes" 'BEGIN { printf "%.1f", g * 1e9 / b }')
        share=$(awk -v t="$tg" -v l="$limit" 'BEGIN { printf "%.0f %%", 100 * t / l }')
        printf '| %-18s | %7d | %6.1f (%s) | %6.1f (%s) | %6.1f (%s) | %5s t/s | %s |\n' \
            "$m" $th "$pp128" "$(ratio "$pp128" "$r128")" "$pp512" "$(ratio "$pp512" "$r512")" \
            "$tg" "$(ratio "$tg" "$rtg")" "$limit" "$share"
    done
done
echo
echo "t/s: median of $REPS runs (cairn bench); (x) = cairn / llama.cpp b4747 on this machine"
echo "bw limit = membw read bandwidth / bytes of weights read per token; weights ${LOCK[*]:-not locked}"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
