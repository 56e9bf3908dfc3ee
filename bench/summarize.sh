#!/usr/bin/env bash
# Summaries (issue 16): pages per minute for `cairn summarize` on the Llama
# 3.2 1B shape (Q4_K_M mix, random weights: each call writes its whole
# allowance, so this is the slow case) with Llama 3's vocabulary, over a
# generated 24-page manual (about 330 words a page); then the same command
# again (every step found in the library), and the extractive summary.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
THREADS=${THREADS:-2}
PAGES=${PAGES:-24}
LENGTH=${LENGTH:-medium}
M=bench/models/llama32-1b-bpe-q4_k_m.gguf
mkdir -p bench/models
[ -f "$M" ] || "$B/mkmodel" --shape llama32-1b --type q4_k_m \
    --tokenizer tests/data/vocab/ggml-vocab-llama-bpe.gguf -o "$M" >/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export CAIRN_HOME=$T/home CAIRN_CHAT_MODEL=
python3 - "$T/manual.txt" "$PAGES" <<'PY'
import random, sys
random.seed(7)
nouns = "pump valve seal bearing impeller motor gauge filter pipe flange gasket coupling shaft housing sensor relay".split()
verbs = "inspect replace tighten clean check lubricate calibrate record drain test".split()
adj = "worn loose damaged clogged noisy hot leaking corroded".split()
def sentence():
    n1, n2 = random.sample(nouns, 2)
    return random.choice([
        f"The operator must {random.choice(verbs)} the {n1} before the {n2} is started.",
        f"A {random.choice(adj)} {n1} shows that the {n2} needs attention within {random.randint(2, 90)} days.",
        f"Every {random.randint(100, 5000)} hours, {random.choice(verbs)} the {n1} and note the reading of the {n2}.",
        f"If the {n1} is {random.choice(adj)}, stop the unit and {random.choice(verbs)} the {n2} at once.",
    ])
pages = []
for p in range(int(sys.argv[2])):
    paras = [" ".join(sentence() for _ in range(6)) for _ in range(4)]
    pages.append(f"Section {p + 1}\n\n" + "\n\n".join(paras))
open(sys.argv[1], "w").write("\f".join(pages))
PY
"$B/cairn" add "$T/manual.txt" >/dev/null 2>&1
words=$(wc -w < "$T/manual.txt")
run() { "$B/cairn" summarize --json -t "$THREADS" --length "$LENGTH" "$@" "$T/manual.txt" 2>/dev/null; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
echo "summarize, $PAGES pages ($words words), --length $LENGTH, $THREADS threads:"
first=$(run -m "$M")
s=$(echo "$first" | field seconds); steps=$(echo "$first" | field steps)
awk -v s="$s" -v p="$PAGES" -v n="$steps" 'BEGIN {
    printf "  1B Q4_K_M shape     %7.1f s, %d model calls: %.1f pages per minute\n", s, n, p / s * 60 }'
again=$(run -m "$M")
awk -v s="$(echo "$again" | field seconds)" -v c="$(echo "$again" | field cached)" 'BEGIN {
    printf "  again (resumed)     %7.2f s, %d calls found in the library\n", s, c }'
ex=$(run --extractive)
awk -v s="$(echo "$ex" | field seconds)" -v p="$PAGES" 'BEGIN {
    printf "  extractive          %7.3f s: %.0f pages per minute\n", s, p / s * 60 }'
