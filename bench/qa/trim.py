#!/usr/bin/env python3
"""Does an answer's evidence survive passage trimming, and what does it save?

    python3 bench/qa/trim.py [--docs DIR] [--home LIBRARY_HOME] [--bin build/cairn]
                             [--tool build/trimbench] [--vocab VOCAB.gguf]
                             [--budgets 256,384,...] [--context 1]

(run through `bash bench/trim.sh`). Over a library of the documents that
bench/qa/questions.tsv names (built in a temporary home unless --home gives
one), for each answerable question:

- survival: the passage of the answer page whose text holds the evidence
  snippet (else the one holding the longest piece of it) is put first among
  the question's own top passages (`cairn search -k 4`, 3 of them besides
  it), the four are trimmed against the question exactly as `cairn ask`
  trims them (build/trimbench calls the same rag_trim), and the snippet is
  looked for in what is left of the first. Text is compared NFKC, lower
  case, all white space removed (as check.py compares). "whole": the
  snippet stands entire in the trimmed passage (of the questions whose
  snippet stands entire in a passage at all); "partial": the longest piece
  of the snippet left, as a share of the longest piece there was.
- reduction: the tokens (VOCAB's tokenizer, default the Llama 3 BPE
  vocabulary of the tests) of the top 4 passages `cairn search -k 4` returns,
  whole and trimmed, and of the whole grounded prompt (system message, Llama
  3 template, passages, question).

One row per trimming setting: fill (the passage's share filled with the
units nearest the matching ones) or not (matching units and their context
only), and the budget (tokens for the four passages' text together); "head"
rows trim with no question terms, so each passage keeps its opening: the
baseline term matching has to beat. "in top4": of the questions whose
evidence was in one of the 4 passages the prompt is built from, how many
still hold it after the trim (the case that decides an answer).
Standard library only.
"""
import argparse, difflib, json, os, re, shutil, sqlite3, statistics, subprocess, sys, tempfile
import unicodedata

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def norm(s):
    s = unicodedata.normalize("NFKC", s).replace("\u00ad", "").lower()
    return re.sub(r"\s+", "", s)


def longest(a, b):
    """Length of the longest common substring of a and b."""
    if not a or not b:
        return 0
    m = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return m.find_longest_match(0, len(a), 0, len(b)).size


def run(cmd, env, inp=None):
    r = subprocess.run(cmd, input=inp, capture_output=True, env=env)
    if r.returncode != 0:
        sys.exit("trim: %s failed (%d): %s" % (" ".join(cmd[:3]), r.returncode,
                                               r.stderr.decode("utf-8", "replace")[-500:]))
    return r.stdout.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsv", default=os.path.join(here, "questions.tsv"))
    ap.add_argument("--docs", default=os.environ.get("CAIRN_QA_DOCS", "build/qadocs"))
    ap.add_argument("--home", help="an existing library of the documents (else one is built)")
    ap.add_argument("--bin", default=os.path.join(os.environ.get("BUILD", "build"), "cairn"))
    ap.add_argument("--tool", default=os.path.join(os.environ.get("BUILD", "build"), "trimbench"))
    ap.add_argument("--vocab", default=os.path.join(root, "tests/data/vocab/ggml-vocab-llama-bpe.gguf"))
    ap.add_argument("--budgets", default="256,384,512,640,768,1024")
    ap.add_argument("--context", type=int, default=1)
    ap.add_argument("-v", action="store_true", help="list the questions whose evidence is cut")
    a = ap.parse_args()

    qs = []
    with open(a.tsv, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                qid, doc, page, kind, q, ev = line.split("\t")
                if page:
                    qs.append(dict(id=qid, doc=doc, page=int(page), kind=kind, q=q, ev=ev))
    env = dict(os.environ)
    for k in ("CAIRN_EMBED_MODEL", "CAIRN_CHAT_MODEL"):
        env.pop(k, None)
    home = a.home or tempfile.mkdtemp(prefix="cairn-qa-trim-")
    env["CAIRN_HOME"] = home
    try:
        if not a.home:
            docs = sorted({os.path.join(a.docs, q["doc"]) for q in qs})
            missing = [d for d in docs if not os.path.exists(d)]
            if missing:
                sys.exit("trim: missing %s (bash tests/fetch_docs.sh --qa %s)" % (missing[0], a.docs))
            run([a.bin, "add", "--"] + docs, env)
        db = sqlite3.connect(os.path.join(home, "library.db"))
        ids = {os.path.basename(p): i for i, p in db.execute("SELECT id, path FROM documents")}
        cases = []
        n_whole = 0
        for q in qs:
            e = norm(q["ev"])
            rows = db.execute("SELECT text FROM passages WHERE doc_id = ? AND page_start <= ? "
                              "AND page_end >= ? ORDER BY id", (ids.get(q["doc"], -1), q["page"], q["page"]))
            best, best_l = None, -1
            for (t,) in rows:
                l = len(e) if e in norm(t) else longest(e, norm(t))
                if l > best_l:
                    best, best_l = t, l
            if best is None:
                print("  %s: no passage of %s p.%d" % (q["id"], q["doc"], q["page"]))
                continue
            top = json.loads(run([a.bin, "search", "--json", "-k", "4", "--", q["q"]], env) or "[]")
            top = [h["text"] for h in top]
            whole = best_l == len(e)
            n_whole += whole
            cases.append(dict(q=q, e=e, ev_passage=best, before_l=best_l, whole=whole, top=top))
        print("%d answerable questions; the evidence stands whole in a passage of its page for %d, "
              "in part for %d (MuPDF and pdftotext read some pages differently)" %
              (len(cases), n_whole, len(cases) - n_whole))
        print("budget: tokens for the 4 passages' text together; tokens: %s" % os.path.basename(a.vocab))
        print("%-5s %6s  %-16s %-14s %-7s %-24s %-24s" % ("fill", "budget", "survival whole", "partial (mean)", "in top4",
                                                      "passage tokens (4 top)", "prompt tokens (Llama 3)"))
        settings = [(True, None)] + [(f, int(b)) for f in (True, False, "head") for b in a.budgets.split(",")]
        n_found = sum(1 for c in cases if c["whole"] and any(c["e"] in norm(t) for t in c["top"]))
        for fill, budget in settings:
            lines = []
            for c in cases:
                ps = [c["ev_passage"]] + [t for t in c["top"] if t != c["ev_passage"]][:3]
                # "head": no question terms to go by, so each passage keeps its
                # opening: the baseline a term-matched trim has to beat
                o = dict(budget=budget or 0, fill=fill is not False, context=a.context)
                if fill == "head":
                    o["trim_q"] = ""
                lines.append(json.dumps(dict(q=c["q"]["q"], passages=ps, **o)))
                lines.append(json.dumps(dict(q=c["q"]["q"], passages=c["top"] or [""], **o)))
            out = run([a.tool, a.vocab], env, ("\n".join(lines) + "\n").encode()).splitlines()
            surv = part = found = 0
            parts = []
            pb = pa = tb = ta = 0
            for i, c in enumerate(cases):
                s = json.loads(out[2 * i])
                r = json.loads(out[2 * i + 1])
                kept = norm(s["texts"][0])
                if c["whole"]:
                    ok = c["e"] in kept
                    surv += ok
                    # the cases that matter to an answer: the evidence was in
                    # the prompt (a top-4 passage) before the trim
                    for t0, t1 in zip(c["top"], r["texts"]):
                        if c["e"] in norm(t0):
                            found += c["e"] in norm(t1)
                            break
                    if not ok and a.v and budget:
                        print("    cut %s: %s" % (c["q"]["id"], c["q"]["q"]))
                lk = len(c["e"]) if c["e"] in kept else longest(c["e"], kept)
                parts.append(lk / c["before_l"] if c["before_l"] else 1.0)
                if c["top"]:
                    tb += sum(r["before"])
                    ta += sum(r["after"])
                    pb += r["prompt_before"]
                    pa += r["prompt_after"]
            label = "whole passages" if budget is None else "%d" % budget
            # the prompt trimmed for "head" is not measured (trimbench
            # prompts with the question's own trim)
            prompt = "-" if fill == "head" else "%6d -> %6d (-%4.1f %%)" % (
                pb, pa, 100.0 * (1 - pa / max(pb, 1)))
            print("%-5s %6s  %3d/%d %6.1f %%   %6.1f %%   %2d/%d   %6d -> %6d (-%4.1f %%)  %s" % (
                "-" if budget is None else {True: "yes", False: "no", "head": "head"}[fill], label, surv, n_whole,
                100.0 * surv / max(n_whole, 1), 100.0 * statistics.mean(parts), found, n_found, tb, ta,
                100.0 * (1 - ta / max(tb, 1)), prompt))
    finally:
        if not a.home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
