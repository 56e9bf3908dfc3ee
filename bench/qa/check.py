#!/usr/bin/env python3
"""Check bench/qa/questions.tsv against the fetched documents.

    python3 bench/qa/check.py [--docs DIR] [--max-overlap 0.3] [-v] [TSV]

(a) every evidence snippet must be on its stated page: the page's text from
    `pdftotext -f N -l N` (poppler-utils) and the snippet are compared after
    NFKC (ligatures) and with all whitespace removed, since line breaks and
    the spacing of Japanese text differ between extractors;
(b) every question's word overlap with its evidence, |q & e| / |q| over
    stemmed content words (stop words of English, French, German and Spanish
    out; Japanese/Chinese runs as character bigrams), must be at most
    --max-overlap. The point is that questions are asked in other words than
    the page's, as users ask them.
Unanswerable questions (kind "unanswerable") have no document, page or
evidence. Prints the median overlap; exits 1 on any failure, 2 on usage.
Standard library only.
"""
import os, re, subprocess, sys, unicodedata

KINDS = {"fact", "number", "definition", "procedure", "table", "multi-hop",
         "non-English", "unanswerable"}

STOP = set("""
a an the and or but if then else of to in on at by for with from into onto as is are was were be been being
am do does did done have has had having while after before it its this that these those there here what which who whom whose
when where why how can could should would will shall may might must i you he she we they me my your our
their them us his her not no nor so than too very just about over under again also any all each both few
more most other some such only own same s t don doesn isn aren wasn weren one use used using get gets got
make makes need needs want wants way ways thing things tell give find know anything something else do
le la les un une des du de d l et ou en au aux ce ces cet cette qui que quoi dont où est sont être été
avec pour par sur dans pas ne plus se sa son ses leur leurs il elle ils elles on nous vous je tu y à
comment quel quelle quels quelles faut peut
der die das den dem des ein eine einer eines einem einen und oder in im ist sind war wie was wer wo mit
für von zu zum zur auf an am aus bei nicht kein keine es er sie wir ihr ich du man sich auch als ob wenn
welche welcher welches welchem welchen kann muss soll
el la los las un una unos unas y o de del al en es son que qué con por para se su sus lo le les no como
cómo cuál cuáles dónde cuando puede hay
""".split())

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")
HIRA = re.compile(r"^[\u3040-\u309f]+$")
WORD = re.compile(r"[^\W_]+", re.UNICODE)
SUFFIXES = sorted("""
ations ation ements ement ments ment ness ities ity ingly ing edly ed ies ive ively ives ful able ible
ally ly ers er est ions ion ungen ung heit keit lich ieren iert en ern es e s ción ciones mente idad
ando iendo ar ir os as ées ée és eur eurs euse ique iques er ez ait aient
""".split(), key=len, reverse=True)


def stem(w):
    for suf in SUFFIXES:
        if len(w) - len(suf) >= 3 and w.endswith(suf):
            return w[: -len(suf)]
    return w


def terms(text):
    text = unicodedata.normalize("NFKC", text).lower()
    out = set()
    for run in CJK.findall(text):
        for i in range(len(run) - 1):
            bg = run[i:i + 2]
            if not HIRA.match(bg):
                out.add(bg)
        if len(run) == 1 and not HIRA.match(run):
            out.add(run)
    for w in WORD.findall(CJK.sub(" ", text)):
        if w in STOP or (len(w) < 2 and not w.isdigit()):
            continue
        out.add(stem(w))
    return out


def overlap(q, e):
    qt = terms(q)
    return len(qt & terms(e)) / len(qt) if qt else 0.0


def squash(s):
    s = unicodedata.normalize("NFKC", s)
    s = s.replace("\u00ad", "")  # soft hyphen
    return re.sub(r"\s+", "", s)


_pages = {}


def page_text(path, n):
    key = (path, n)
    if key not in _pages:
        r = subprocess.run(["pdftotext", "-q", "-f", str(n), "-l", str(n), path, "-"],
                           capture_output=True)
        _pages[key] = r.stdout.decode("utf-8", "replace") if r.returncode == 0 else None
    return _pages[key]


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 6:
                rows.append((ln, None, "expected 6 tab-separated fields, got %d" % len(cols)))
                continue
            rows.append((ln, cols, None))
    return rows


def main(argv):
    import argparse
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv", nargs="?", default=os.path.join(here, "questions.tsv"))
    ap.add_argument("--docs", default=os.environ.get("CAIRN_QA_DOCS", "build/qadocs"))
    ap.add_argument("--max-overlap", type=float, default=0.3)
    ap.add_argument("-v", action="store_true", help="print every question's overlap")
    a = ap.parse_args(argv)
    if subprocess.run(["sh", "-c", "command -v pdftotext"], capture_output=True).returncode:
        print("check: pdftotext not found (apt-get install poppler-utils)", file=sys.stderr)
        return 2
    fails, ovs, ids, docs = 0, [], set(), set()
    kinds = {}
    for ln, cols, err in load(a.tsv):
        if err:
            print("%s:%d: %s" % (a.tsv, ln, err)); fails += 1; continue
        qid, doc, page, kind, q, ev = cols
        where = "%s:%d (%s)" % (a.tsv, ln, qid)
        if qid in ids:
            print("%s: duplicate id" % where); fails += 1
        ids.add(qid)
        if kind not in KINDS:
            print("%s: unknown kind %r" % (where, kind)); fails += 1; continue
        kinds[kind] = kinds.get(kind, 0) + 1
        if not q.strip():
            print("%s: empty question" % where); fails += 1; continue
        if kind == "unanswerable":
            if doc or page or ev:
                print("%s: an unanswerable question has no document, page or evidence" % where); fails += 1
            continue
        if not doc or not page.isdigit() or int(page) < 1 or not ev.strip():
            print("%s: needs a document, a page >= 1 and evidence" % where); fails += 1; continue
        docs.add(doc)
        path = os.path.join(a.docs, doc)
        if not os.path.exists(path):
            print("%s: document %s not found (bash tests/fetch_docs.sh --qa %s)" % (where, path, a.docs)); fails += 1; continue
        text = page_text(path, int(page))
        if text is None:
            print("%s: pdftotext cannot read page %s of %s" % (where, page, doc)); fails += 1
        elif squash(ev) not in squash(text):
            print("%s: evidence not on %s p.%s: %r" % (where, doc, page, ev)); fails += 1
        ov = overlap(q, ev)
        ovs.append(ov)
        if a.v:
            print("%.2f %s %s" % (ov, qid, q))
        if ov > a.max_overlap:
            print("%s: overlap %.2f > %.2f: %r shares %s with its evidence" % (
                where, ov, a.max_overlap, q, sorted(terms(q) & terms(ev)))); fails += 1
    n = sum(kinds.values())
    ovs.sort()
    med = ovs[len(ovs) // 2] if len(ovs) % 2 else (sum(ovs[len(ovs) // 2 - 1:len(ovs) // 2 + 1]) / 2 if ovs else 0)
    print("check: %d questions over %d documents; kinds: %s" % (
        n, len(docs), ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    print("check: median overlap %.3f (max allowed %.2f); %d failure(s)" % (med, a.max_overlap, fails))
    return 1 if fails or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
