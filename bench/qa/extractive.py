#!/usr/bin/env python3
"""How often the extractive answer (no language model) holds the evidence.

    python3 bench/qa/extractive.py [--docs DIR] [-k 4] [--bin build/cairn] [--bin OTHER ...]

For each answerable question of bench/qa/questions.tsv, `cairn ask --json`
(no chat model: the extractive answer) over a library of the documents the
questions name; a question counts when its evidence snippet, whitespace and
case ignored, stands in the answer's text. Each --bin is measured on the same
library (built once, by the first), so an old and a new binary compare in
one run. Also prints how often the retrieved passages themselves held the
snippet (the ceiling for an extractive answer), and the answer's length.
Standard library only.
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))


def norm(s):
    return re.sub(r"\s+", "", s).lower()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", default="build/qadocs")
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("--bin", action="append")
    a = ap.parse_args()
    bins = a.bin or ["build/cairn"]
    qs = []
    with open(os.path.join(here, "questions.tsv"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                qid, doc, page, kind, q, ev = line.split("\t")
                if page:
                    qs.append((qid, doc, kind, q, ev))
    docs = sorted({os.path.join(a.docs, d) for _, d, _, _, _ in qs})
    missing = [d for d in docs if not os.path.exists(d)]
    if missing:
        sys.exit("extractive: missing %s (bash tests/fetch_docs.sh --qa %s)" % (missing[0], a.docs))
    home = tempfile.mkdtemp(prefix="cairn-qa-ex-")
    env = dict(os.environ, CAIRN_HOME=home)
    env.pop("CAIRN_CHAT_MODEL", None)
    env.pop("CAIRN_EMBED_MODEL", None)
    try:
        subprocess.run([bins[0], "add"] + docs, env=env, check=True, capture_output=True)
        print("extractive answers, %d answerable questions, -k %d, %d documents" %
              (len(qs), a.k, len(docs)))
        for b in bins:
            hit = ceiling = 0
            lens = []
            for qid, doc, kind, q, ev in qs:
                r = subprocess.run([b, "ask", "--json", "-k", str(a.k), "--", q], env=env,
                                   capture_output=True)
                if r.returncode != 0:
                    sys.exit("extractive: %s ask failed on %s: %s" %
                             (b, qid, r.stderr.decode("utf-8", "replace")[-300:]))
                try:
                    o = json.loads(r.stdout)
                except ValueError:  # an older cairn printed plain text when nothing matched
                    o = {}
                ans = o.get("answer", "")
                lens.append(len(ans))
                e = norm(ev)
                hit += e in norm(ans)
                srcs = "".join(s.get("text", "") for s in o.get("sources", []))
                ceiling += e in norm(srcs)
            print("  %-40s evidence in the answer %3d/%d (%.3f); in the passages %3d/%d; "
                  "answer length median %d chars" %
                  (b, hit, len(qs), hit / len(qs), ceiling, len(qs), statistics.median(lens)))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
