#!/usr/bin/env bash
# Engine speed, side by side: prompt processing (pp128, pp512; pp2048 and
# pp4096 with LONG=1) and generation (tg64) in tokens/s on the shapes of
# Llama 3.2 1B (Q4_K_M mix and Q8_0) and Qwen 2.5 0.5B (Q4_K_M mix) with
# random weights, for Cairn (`cairn bench`) and, when given, llama.cpp's and
# ik_llama.cpp's `llama-bench` on the same files in the same run; the
# machine's memory bandwidth (tools/membw, STREAM-style) and generation as a
# share of the bandwidth limit (read bandwidth / bytes of weights per token).
#
#   bash bench/engine.sh                        Cairn alone: no ratio is printed
#   LLAMA_BENCH=/work/ref-llama/build/bin/llama-bench \
#   IK_BENCH=/work/ref-ik/build/bin/llama-bench bash bench/engine.sh
#                                               Cairn, llama.cpp, ik_llama.cpp
#   REPS=5      rounds (default 3); each figure is the median of the rounds
#   THREADS="1 2"  thread counts (default 2)
#   LONG=1      also pp2048 and pp4096 (several more minutes per model)
#   MLOCK=0     do not lock Cairn's weights in memory
#
# A ratio is only printed between figures measured by this script in this
# run: the engines take turns (round r runs Cairn, then llama.cpp, then
# ik_llama.cpp, for each test), so a busy neighbour hits all of them alike.
# Without LLAMA_BENCH the comparison columns say "not measured now"; no
# figure of another day is kept here. Build the references outside this repo
# (llama.cpp b4747 and ik_llama.cpp, Release, GGML_NATIVE=ON, target
# llama-bench).
#
# Every engine has its weights in memory: Cairn --mlock (this machine's
# kernel reclaims idle page-cache pages, so an mmap'd model partly falls out
# of memory between runs and generation would time the disk); llama-bench
# -mmp 0 (the file is read into allocated memory); ik_llama.cpp also -rtr 1
# (weights repacked at load into its row-interleaved layouts). Each engine
# keeps its own default flash-attention setting (llama.cpp off,
# ik_llama.cpp on) and its own warm-up. One llama-bench process per engine,
# model, test and round (-r 1), so rounds interleave; its JSON output
# (-o json, field avg_ts) is read.
#
# Context: the shapes' training contexts (131072 tokens for Llama 3.2 1B,
# 32768 for Qwen 2.5 0.5B) hold pp4096; both benches size their context to
# the test.
#
# Models are generated once by tools/mkmodel into bench/models/ (git-ignored).
# Numbers are only worth reading on an otherwise idle machine: the script
# prints the load average it started and ended with.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
LONG=${LONG:-0}
LLAMA_BENCH=${LLAMA_BENCH:-}
IK_BENCH=${IK_BENCH:-}
T=../shared/fixtures/models
[ -d "$T" ] || T=/work/shared/fixtures/models
mkdir -p bench/models

for x in "$LLAMA_BENCH" "$IK_BENCH"; do
    if [ -n "$x" ] && [ ! -x "$x" ]; then
        echo "engine.sh: $x: not an executable llama-bench" >&2
        exit 2
    fi
done
if [ -n "$IK_BENCH" ] && [ -z "$LLAMA_BENCH" ]; then
    echo "engine.sh: IK_BENCH needs LLAMA_BENCH too (ratios are to llama.cpp)" >&2
    exit 2
fi

make_model() { # shape type tokenizer-model
    local f=bench/models/$1-$2.gguf
    [ -f "$f" ] || "$B/mkmodel" --shape "$1" --type "$2" --tokenizer "$T/$3" -o "$f" >/dev/null
}
make_model llama32-1b q4_k_m tiny-llama-q8_0.gguf
make_model llama32-1b q8_0 tiny-llama-q8_0.gguf
make_model qwen25-05b q4_k_m tiny-qwen2-f32.gguf
MODELS=(llama32-1b-q4_k_m llama32-1b-q8_0 qwen25-05b-q4_k_m)

TESTS=(pp128 pp512 tg64)
[ "$LONG" = 1 ] && TESTS+=(pp2048 pp4096)
ENGINES=(cairn)
[ -n "$LLAMA_BENCH" ] && ENGINES+=(llama)
[ -n "$IK_BENCH" ] && ENGINES+=(ik)
declare -A NAME=([cairn]=Cairn [llama]=llama.cpp [ik]="ik_llama.cpp -rtr")

LOCK=()
if [ "${MLOCK:-1}" = 1 ]; then
    if "$B/cairn" bench -m bench/models/qwen25-05b-q4_k_m.gguf -p 0 -n 1 -r 1 --mlock >/dev/null 2>&1; then
        LOCK=(--mlock)
    else
        echo "note: cannot lock the models in memory (ulimit -l); timing without --mlock"
    fi
fi

ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT

field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }
# pp512 -> "512 0", tg64 -> "0 64": prompt and generated tokens of a test
tokens() { case $1 in pp*) echo "${1#pp} 0" ;; tg*) echo "0 ${1#tg}" ;; esac; }

declare -A BYTES VERSION

# One measurement: engine model test threads; sets V to its tokens/s (not a
# function printing it: a $(...) subshell would lose BYTES and VERSION).
measure() {
    local e=$1 f=bench/models/$2.gguf p n out
    read -r p n <<<"$(tokens "$3")"
    if [ "$e" = cairn ]; then
        if ! out=$("$B/cairn" bench -m "$f" -p "$p" -n "$n" -r 1 -t "$4" "${LOCK[@]}" --json 2>"$ERR"); then
            echo "engine.sh: cairn bench failed on $2 $3:" >&2
            cat "$ERR" >&2
            return 1
        fi
        BYTES[$2]=$(echo "$out" | field bytes_per_token)
        if [ "$p" -gt 0 ]; then V=$(echo "$out" | field pp_tps); else V=$(echo "$out" | field tg_tps); fi
        return 0
    fi
    local bin=$LLAMA_BENCH extra=()
    if [ "$e" = ik ]; then bin=$IK_BENCH extra=(-rtr 1); fi
    if ! out=$("$bin" -m "$f" -p "$p" -n "$n" -r 1 -t "$4" -mmp 0 "${extra[@]}" -o json 2>"$ERR"); then
        echo "engine.sh: ${NAME[$e]} ($bin) failed on $2 $3:" >&2
        tail -n 20 "$ERR" >&2
        return 1
    fi
    if [ -z "${VERSION[$e]:-}" ]; then
        VERSION[$e]="build_commit $(echo "$out" | sed -nE 's/^ *"build_commit": *"([^"]*)",?$/\1/p'),"
        VERSION[$e]+=" build_number $(echo "$out" | sed -nE 's/^ *"build_number": *([0-9]+),?$/\1/p')"
    fi
    V=$(echo "$out" | sed -nE 's/^ *"avg_ts": *([0-9.eE+-]+),?$/\1/p')
    if [ "$(echo "$V" | wc -w)" != 1 ]; then
        echo "engine.sh: ${NAME[$e]} on $2 $3: expected one avg_ts in its JSON, got:" >&2
        echo "$out" >&2
        return 1
    fi
}

# the values of a space-separated list, one a line, in increasing order
sorted() { tr -s ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g; }
median() { sorted "$1" | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { sorted "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 }
    END { if (NR > 1) printf " (%.1f-%.1f)", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "engines: Cairn ($B/cairn, weights ${LOCK[*]:-not locked})"
[ -n "$LLAMA_BENCH" ] && echo "         llama.cpp $LLAMA_BENCH (-mmp 0)"
[ -n "$IK_BENCH" ] && echo "         ik_llama.cpp $IK_BENCH (-mmp 0 -rtr 1)"
declare -A BW
for th in $THREADS; do
    j=$("$B/membw" -t "$th" --json)
    BW[$th]=$(echo "$j" | field read_gbs)
    echo "memory bandwidth, $th thread(s), start: read ${BW[$th]} GB/s, triad $(echo "$j" | field triad_gbs) GB/s"
done

# res[engine model test threads] = the rounds' t/s, space-separated
declare -A RES
for th in $THREADS; do
    for m in "${MODELS[@]}"; do
        for ((r = 1; r <= REPS; r++)); do
            for t in "${TESTS[@]}"; do
                line="round $r, $th thread(s), $m $t:"
                for e in "${ENGINES[@]}"; do
                    measure "$e" "$m" "$t" "$th"
                    RES[$e,$m,$t,$th]+=" $V"
                    line+=" ${NAME[$e]} $(printf %.1f "$V"),"
                done
                echo "${line%,}; load average $(cut -d' ' -f1 /proc/loadavg)"
            done
        done
    done
done

for th in $THREADS; do
    j=$("$B/membw" -t "$th" --json)
    end=$(echo "$j" | field read_gbs)
    echo "memory bandwidth, $th thread(s), end: read $end GB/s, triad $(echo "$j" | field triad_gbs) GB/s"
    BW[$th]=$(awk -v a="${BW[$th]}" -v b="$end" 'BEGIN { printf "%.1f", (a + b) / 2 }')
done
for e in llama ik; do
    [ -n "${VERSION[$e]:-}" ] && echo "${NAME[$e]}: ${VERSION[$e]}"
done

NM="not measured now"
cell() { # engine model test threads -> "median (min-max)" or NM
    local v=${RES[$1,$2,$3,$4]:-}
    if [ -z "$v" ]; then echo "$NM"; else echo "$(median "$v")$(spread "$v")"; fi
}
rcell() { # engine-a engine-b model test threads -> median a / median b
    local a=${RES[$1,$3,$4,$5]:-} b=${RES[$2,$3,$4,$5]:-}
    if [ -z "$a" ] || [ -z "$b" ]; then echo "$NM"; else ratio "$(median "$a")" "$(median "$b")"; fi
}

echo
echo "| model | threads | test | Cairn t/s | llama.cpp t/s | ik_llama.cpp -rtr t/s | Cairn / llama.cpp | ik / llama.cpp |"
echo "|---|---|---|---|---|---|---|---|"
for th in $THREADS; do
    for m in "${MODELS[@]}"; do
        for t in "${TESTS[@]}"; do
            echo "| $m | $th | $t | $(cell cairn "$m" "$t" "$th") | $(cell llama "$m" "$t" "$th") |" \
                "$(cell ik "$m" "$t" "$th") | $(rcell cairn llama "$m" "$t" "$th") |" \
                "$(rcell ik llama "$m" "$t" "$th") |"
        done
    done
done

echo
echo "| model | threads | bytes/token | bw limit t/s | tg64 % of limit: Cairn | llama.cpp | ik_llama.cpp -rtr |"
echo "|---|---|---|---|---|---|---|"
for th in $THREADS; do
    for m in "${MODELS[@]}"; do
        limit=$(awk -v g="${BW[$th]}" -v b="${BYTES[$m]}" 'BEGIN { printf "%.1f", g * 1e9 / b }')
        row="| $m | $th | $(awk -v b="${BYTES[$m]}" 'BEGIN { printf "%.0f MB", b / 1e6 }') | $limit |"
        for e in cairn llama ik; do
            v=${RES[$e,$m,tg64,$th]:-}
            if [ -z "$v" ]; then row+=" $NM |"; else
                row+=" $(awk -v t="$(median "$v")" -v l="$limit" 'BEGIN { printf "%.0f %%", 100 * t / l }') |"
            fi
        done
        echo "$row"
    done
done

if [ "$LONG" = 1 ]; then
    echo
    echo "| model | threads | pp2048 / pp512: Cairn | llama.cpp | ik | pp4096 / pp512: Cairn | llama.cpp | ik |"
    echo "|---|---|---|---|---|---|---|---|"
    for th in $THREADS; do
        for m in "${MODELS[@]}"; do
            row="| $m | $th |"
            for t in pp2048 pp4096; do
                for e in cairn llama ik; do
                    v=${RES[$e,$m,$t,$th]:-} b=${RES[$e,$m,pp512,$th]:-}
                    if [ -z "$v" ]; then row+=" $NM |"; else
                        row+=" $(awk -v a="$(median "$v")" -v b="$(median "$b")" 'BEGIN { printf "%.0f %%", 100 * a / b }') |"
                    fi
                done
            done
            echo "$row"
        done
    done
fi

echo
echo "t/s: median of $REPS interleaved round(s) (min-max over the rounds), one process per engine, test and round;"
echo "ratios only between engines measured in this run. bw limit = mean of the start and end membw read"
echo "bandwidth / bytes of weights read per token (tokens embedding excluded unless it is the output matrix)."
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
