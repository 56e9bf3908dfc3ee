#!/usr/bin/env python3
"""Recall of `cairn search` on the paraphrased set bench/qa/questions.tsv.

    python3 bench/qa/recall.py [--docs DIR] [--distractors] [-k 5]
                               [-e EMBED.gguf] [--rerank ARGS] [--bin build/cairn]

(run through `bash bench/recall.sh --qa ...`). Builds a library in a
temporary home from the documents the questions name (fetched by
`bash tests/fetch_docs.sh --qa DIR`); --distractors also adds every other
document in DIR and DIR/distractors/. Then one `cairn search --json -k K`
per question, for each configuration: keyword (no embedding model), hybrid
(-e), reranked (-e plus the --rerank arguments, passed to search as they
are). A question is found at rank r when the r-th passage is from its
document and its page range covers the answer page; "exact" counts the
found ones whose cited page is the answer page itself. Unanswerable
questions are not in the recall; their top scores are printed beside the
answerable ones' so a refusal threshold can be judged.
Standard library only.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))


def load(path):
    qs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            qid, doc, page, kind, q, ev = line.split("\t")
            qs.append(dict(id=qid, doc=doc, page=int(page) if page else 0, kind=kind, q=q))
    return qs


def run(cmd, env):
    r = subprocess.run(cmd, capture_output=True, env=env)
    if r.returncode != 0:
        sys.exit("recall: %s failed (%d): %s" % (" ".join(cmd[:3]), r.returncode,
                                                 r.stderr.decode("utf-8", "replace")[-500:]))
    return r.stdout.decode("utf-8", "replace")


def rank_of(hits, q):
    for i, h in enumerate(hits, 1):
        if os.path.basename(h.get("path", "")) != q["doc"]:
            continue
        if h.get("page") == q["page"] or h.get("page_start", 0) <= q["page"] <= h.get("page_end", -1):
            return i, h.get("page") == q["page"]
    return 0, False


def quart(xs):
    if not xs:
        return "-"
    xs = sorted(xs)
    pick = lambda f: xs[min(len(xs) - 1, int(f * (len(xs) - 1) + 0.5))]
    return "min %.2f  p25 %.2f  median %.2f  p75 %.2f  max %.2f" % (
        xs[0], pick(.25), pick(.5), pick(.75), xs[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsv", default=os.path.join(here, "questions.tsv"))
    ap.add_argument("--docs", default=os.environ.get("CAIRN_QA_DOCS", "build/qadocs"))
    ap.add_argument("--distractors", action="store_true")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("-e", dest="embed")
    ap.add_argument("--rerank", help="extra `cairn search` arguments that turn the reranker on")
    ap.add_argument("--bin", default=os.path.join(os.environ.get("BUILD", "build"), "cairn"))
    ap.add_argument("-v", action="store_true", help="list the missed questions")
    a = ap.parse_args()

    qs = load(a.tsv)
    docs = sorted({q["doc"] for q in qs if q["doc"]})
    missing = [d for d in docs if not os.path.exists(os.path.join(a.docs, d))]
    if missing:
        sys.exit("recall: not in %s: %s (bash tests/fetch_docs.sh --qa %s)" % (a.docs, " ".join(missing), a.docs))
    paths = [os.path.join(a.docs, d) for d in docs]
    if a.distractors:
        others = [os.path.join(a.docs, f) for f in sorted(os.listdir(a.docs))
                  if f.endswith(".pdf") and f not in docs]
        dd = os.path.join(a.docs, "distractors")
        if os.path.isdir(dd):
            others.append(dd)
        paths += others
    env = dict(os.environ)
    env.pop("CAIRN_EMBED_MODEL", None)
    env.pop("CAIRN_CHAT_MODEL", None)
    home = tempfile.mkdtemp(prefix="cairn-qa-")
    env["CAIRN_HOME"] = home
    try:
        add = [a.bin, "add"] + (["-e", a.embed] if a.embed else []) + ["--"] + paths
        run(add, env)
        ls = json.loads(run([a.bin, "ls", "--json"], env))
        pages = sum(d.get("pages", 0) for d in ls) if isinstance(ls, list) else 0
        print("library: %d documents, %s pages%s; %d questions (%d unanswerable); k=%d" % (
            len(ls) if isinstance(ls, list) else -1, pages or "?",
            " (with distractors)" if a.distractors else "", len(qs),
            sum(q["kind"] == "unanswerable" for q in qs), a.k))
        if a.embed:
            print("hybrid uses %s (a random-weight test model measures the machinery, not retrieval)" % os.path.basename(a.embed))
        if a.rerank:
            print("reranked adds: %s" % a.rerank)
        configs = [("keyword", [])]
        configs.append(("hybrid", ["-e", a.embed]) if a.embed else ("hybrid", None))
        if a.rerank:
            configs.append(("reranked", (["-e", a.embed] if a.embed else []) + a.rerank.split()))
        else:
            configs.append(("reranked", None))
        kinds = sorted({q["kind"] for q in qs if q["kind"] != "unanswerable"})
        print("%-9s %-12s %4s %6s %6s %6s %6s" % ("search", "kind", "n", "R@1", "R@" + str(a.k), "MRR", "exact"))
        for name, extra in configs:
            if extra is None:
                why = "no embedding model given (-e)" if name == "hybrid" else "no reranker given (--rerank ARGS)"
                print("%-9s not measured: %s" % (name, why))
                continue
            res, top_ans, top_un = {}, [], []
            for q in qs:
                out = run([a.bin, "search", "--json", "-k", str(a.k)] + extra + ["--", q["q"]], env)
                hits = json.loads(out) if out.strip() else []
                top = hits[0].get("score", 0.0) if hits else 0.0
                if q["kind"] == "unanswerable":
                    top_un.append(top)
                    continue
                top_ans.append(top)
                r, exact = rank_of(hits, q)
                res[q["id"]] = (q["kind"], r, exact)
                if a.v and r == 0:
                    print("  missed %s %s p.%d: %s" % (q["id"], q["doc"], q["page"], q["q"]))
            for kind in kinds + ["overall"]:
                rows = [v for v in res.values() if kind == "overall" or v[0] == kind]
                if not rows:
                    continue
                n = len(rows)
                r1 = sum(1 for _, r, _ in rows if r == 1) / n
                rk = sum(1 for _, r, _ in rows if r) / n
                mrr = sum(1.0 / r for _, r, _ in rows if r) / n
                found = [e for _, r, e in rows if r]
                ex = sum(found) / len(found) if found else 0.0
                print("%-9s %-12s %4d %6.3f %6.3f %6.3f %6.3f" % (name, kind, n, r1, rk, mrr, ex))
            print("%-9s top score, answerable:   %s" % (name, quart(top_ans)))
            print("%-9s top score, unanswerable: %s" % (name, quart(top_un)))
            # "not found in your documents": what `cairn ask` decides (no model
            # installed, so nothing is generated), on both kinds of question
            refused = {True: 0, False: 0}
            total = {True: 0, False: 0}
            for q in qs:
                out = run([a.bin, "ask", "--json"] + extra + ["--", q["q"]], env)
                un = q["kind"] == "unanswerable"
                total[un] += 1
                refused[un] += json.loads(out).get("mode") == "not_found"
            print("%-9s not found: unanswerable refused %d/%d; answerable refused %d/%d (false refusals)" % (
                name, refused[True], total[True], refused[False], total[False]))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
