#!/usr/bin/env bash
# How long `cairn ask` keeps a user waiting, with a Llama-3.2-1B-shape model
# (random weights, Q4_K_M mix, made by tools/mkmodel with the Llama 3
# tokenizer of the tiny fixture model) and 4 retrieved passages, over the
# real PDFs of tests/fetch_docs.sh:
#   time to sources      Enter -> the "Sources:" block on screen (search only:
#                        the passages are shown before the model is read)
#   time to first token  Enter -> the first byte of the answer (search, model
#                        load, the prompt)
# both read off the command's stdout as a terminal would see it, from the
# moment the process is started; then prompt tokens and tokens/s from one
# `ask --json` run.
#   bash bench/ask.sh [RUNS]     (median of RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
RUNS=${1:-3}
DOCS=${CAIRN_DOCS:-build/docs}
FIX=${CAIRN_FIXTURES:-../shared/fixtures}
M=${ASK_MODEL:-bench/models/llama32-1b-q4_k_m.gguf}
Q="How are ghost variables declared in Why3?"
[ -n "$(ls "$DOCS"/*.pdf 2>/dev/null)" ] || bash tests/fetch_docs.sh "$DOCS" >/dev/null
mkdir -p bench/models
[ -f "$M" ] || "$B/mkmodel" --shape llama32-1b --type q4_k_m \
    --tokenizer "$FIX/models/tiny-llama-q8_0.gguf" -o "$M" >/dev/null
export CAIRN_HOME=$(mktemp -d)
trap 'rm -rf "$CAIRN_HOME"' EXIT
"$B/cairn" add "$DOCS" >/dev/null 2>&1
"$B/cairn" ask --json -k 4 -n 16 -m "$M" "$Q" 2>/dev/null >"$CAIRN_HOME/json"
python3 - "$B/cairn" "$M" "$Q" "$RUNS" "$CAIRN_HOME/json" <<'PY'
import json, os, statistics, subprocess, sys, time
cairn, model, q, runs, jf = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
t_src, t_first = [], []
for _ in range(runs):
    t0 = time.monotonic()
    p = subprocess.Popen([cairn, "ask", "-k", "4", "-n", "16", "-m", model, q],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    buf, ts, tf = b"", None, None
    while True:
        b = os.read(p.stdout.fileno(), 4096)
        if not b:
            break
        buf += b
        # the Sources block ends with its blank line; the answer follows it
        end = buf.find(b"\n\n") if buf.startswith(b"Sources:") else -1
        if ts is None and end >= 0:
            ts = time.monotonic() - t0
        if ts is not None and tf is None and len(buf) > end + 2:
            tf = time.monotonic() - t0
    p.wait()
    if ts is None or tf is None:
        sys.exit("bench/ask.sh: no Sources block then answer in the output:\n" + buf.decode(errors="replace"))
    t_src.append(ts); t_first.append(tf)
t = json.load(open(jf))["timings"]
print("\n`cairn ask`, %s, 4 passages (%d prompt tokens), median of %d runs:" %
      (os.path.basename(model)[:-5], t["prompt_tokens"], runs))
print("  time to sources      %.2f s" % statistics.median(t_src))
print("  time to first token  %.2f s (one --json run: search %.3f s, prompt %.2f s = %.1f tokens/s)" %
      (statistics.median(t_first), t["search_s"], t["prompt_s"], t["prompt_tokens"] / t["prompt_s"]))
print("  then %.1f tokens/s\n" % (t["answer_tokens"] / max(t["answer_s"], 1e-9)))
PY
