#!/usr/bin/env bash
# fetch_docs.sh [--qa] DIR: download a handful of real PDFs, written by others and
# shipped in Debian documentation packages, into DIR (a cache: files already
# there are kept). The ingest integration tests read DIR from $CAIRN_DOCS:
#
#     bash tests/fetch_docs.sh build/docs && CAIRN_DOCS=build/docs make test
#
# Needs no root: `apt-get download` fetches the .deb into the current
# directory and `dpkg -x` unpacks it. Without a network (or without apt)
# it says so and exits 0; the tests then report themselves skipped.
#
# The documents, chosen to differ:
#   why3-manual.pdf        why3-doc-pdf        long manual (184 pages, Sphinx/LaTeX)
#   siscone-refman.pdf     siscone-doc-pdf     337-page Doxygen reference (gzipped in the package)
#   amc-fr.pdf, amc-ja.pdf auto-multiple-choice-doc-pdf  French and Japanese manuals
#   camlidl.pdf            camlidl-doc         a short paper-like manual (1990s LaTeX)
#   octave-refcard.pdf     octave-doc          three-column reference card (landscape A4)
# and documents of the other formats Cairn reads (issue 14), written by others:
#   officer-example.docx   r-cran-officer      Word file made in French Word ("Titre1" styles)
#   officer-example.pptx   r-cran-officer      PowerPoint slides
#   officer-table.docx     r-cran-officer      Word tables with merged cells (gzipped in the package)
#   relatorio-*.odt/.odp   python3-relatorio   OpenDocument templates with tables, and slides
#   live-manual-en.epub    live-manual-epub    a 49-chapter manual whose spine points into chapters
#   live-manual-fr.epub    live-manual-epub    the same in French
#   ls.1.gz                coreutils           a man page, gzipped as /usr/share/man has it
# (no Debian package within reach ships a real .rtf document: RTF is tested on
# the generated ones of tests/unit/docgen.h)
#
# With --qa it also fetches the documents of the paraphrased question set
# (bench/qa/questions.tsv, run by `bash bench/recall.sh --qa`): the six above
# plus twenty more and ten distractors, about 85 MB of packages. They are kept apart (QA_DOCS) so
# the ingest tests' set stays those six; give --qa its own DIR.
set -u
QA=0
if [ "${1:-}" = "--qa" ]; then QA=1; shift; fi
DIR=${1:?usage: fetch_docs.sh [--qa] DIR}
mkdir -p "$DIR" || exit 1
DIR=$(cd "$DIR" && pwd)

# name  package  path inside the package
DOCS="
why3-manual.pdf why3-doc-pdf usr/share/doc/why3-doc-pdf/manual.pdf
siscone-refman.pdf siscone-doc-pdf usr/share/doc/siscone-doc-pdf/pdf/refman.pdf.gz
amc-fr.pdf auto-multiple-choice-doc-pdf usr/share/doc/auto-multiple-choice/auto-multiple-choice.fr.pdf
amc-ja.pdf auto-multiple-choice-doc-pdf usr/share/doc/auto-multiple-choice/auto-multiple-choice.ja.pdf
camlidl.pdf camlidl-doc usr/share/doc/camlidl/camlidl-1.04.doc.pdf
octave-refcard.pdf octave-doc usr/share/doc/octave/refcard-a4.pdf
officer-example.docx r-cran-officer usr/lib/R/site-library/officer/doc_examples/example.docx
officer-example.pptx r-cran-officer usr/lib/R/site-library/officer/doc_examples/example.pptx
officer-table.docx r-cran-officer usr/share/doc/r-cran-officer/tests/testthat/docs_dir/table-complex.docx.gz
relatorio-complicated.odt python3-relatorio usr/share/doc/python3-relatorio/examples/complicated.odt
relatorio-presentation.odp python3-relatorio usr/share/doc/python3-relatorio/examples/presentation.odp
live-manual-en.epub live-manual-epub usr/share/doc/live-manual/epub/live-manual.en.epub
live-manual-fr.epub live-manual-epub usr/share/doc/live-manual/epub/live-manual.fr.epub
ls.1.gz coreutils usr/share/man/man1/ls.1.gz
"

# The question set's other documents: reference cards with tables, long
# manuals, FAQs, and French, German, Spanish and Japanese translations.
QA_DOCS="
refcard-en.pdf debian-refcard usr/share/doc/debian-refcard/refcard-en-a4.pdf.gz
refcard-de.pdf debian-refcard usr/share/doc/debian-refcard/refcard-de-a4.pdf.gz
refcard-es.pdf debian-refcard usr/share/doc/debian-refcard/refcard-es-a4.pdf.gz
maint-guide-fr.pdf maint-guide-fr usr/share/doc/maint-guide-fr/maint-guide.fr.pdf
maint-guide-de.pdf maint-guide-de usr/share/doc/maint-guide-de/maint-guide.de.pdf
maint-guide-es.pdf maint-guide-es usr/share/doc/maint-guide-es/maint-guide.es.pdf
maint-guide-ja.pdf maint-guide-ja usr/share/doc/maint-guide-ja/maint-guide.ja.pdf
debian-reference-fr.pdf debian-reference-fr usr/share/debian-reference/debian-reference.fr.pdf
developers-reference-de.pdf developers-reference-de usr/share/developers-reference/de/developers-reference.pdf
debian-faq.pdf debian-faq usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz
bashref.pdf bash-doc usr/share/doc/bash/bashref.pdf
zsh.pdf zsh-doc usr/share/doc/zsh-common/zsh.pdf
gnuplot.pdf gnuplot-doc usr/share/doc/gnuplot/gnuplot.pdf
gprolog.pdf gprolog-doc usr/share/doc/gprolog-doc/gprolog.pdf
R-intro.pdf r-doc-pdf usr/share/R/doc/manual/R-intro.pdf
R-data.pdf r-doc-pdf usr/share/R/doc/manual/R-data.pdf
R-FAQ.pdf r-doc-pdf usr/share/R/doc/manual/R-FAQ.pdf
octave.pdf octave-doc usr/share/doc/octave/octave.pdf
sbcl.pdf sbcl-doc usr/share/doc/sbcl/sbcl.pdf.gz
docbook-xsl-reference.pdf docbook-xsl-doc-pdf usr/share/doc/docbook-xsl-doc-pdf/doc/reference.pdf.gz
"
# Distractors for `bench/recall.sh --qa --distractors`: documents no question
# is about, in DIR/distractors/ (R's 2,400-page reference among them, about 3,800 pages), so
# the questions' pages compete with a few thousand others.
QA_DISTRACTORS="
distractors/R-refman.pdf r-doc-pdf usr/share/R/doc/manual/refman.pdf
distractors/R-exts.pdf r-doc-pdf usr/share/R/doc/manual/R-exts.pdf
distractors/R-admin.pdf r-doc-pdf usr/share/R/doc/manual/R-admin.pdf
distractors/R-lang.pdf r-doc-pdf usr/share/R/doc/manual/R-lang.pdf
distractors/liboctave.pdf octave-doc usr/share/doc/octave/liboctave.pdf
distractors/sbcl-internals.pdf sbcl-doc usr/share/doc/sbcl/sbcl-internals.pdf.gz
distractors/debian-reference-de.pdf debian-reference-de usr/share/debian-reference/debian-reference.de.pdf
distractors/debian-reference-es.pdf debian-reference-es usr/share/debian-reference/debian-reference.es.pdf
distractors/debian-reference-ja.pdf debian-reference-ja usr/share/debian-reference/debian-reference.ja.pdf
distractors/developers-reference-fr.pdf developers-reference-fr usr/share/developers-reference/fr/developers-reference.pdf
"
[ "$QA" = 1 ] && DOCS="$DOCS$QA_DOCS$QA_DISTRACTORS"

if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    echo "fetch_docs: apt-get/dpkg not available; skipping (integration tests will skip)"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "$DOCS" | while read -r name pkg path; do
    [ -n "$name" ] || continue
    if [ -s "$DIR/$name" ]; then
        continue
    fi
    deb=$(ls "$work"/"${pkg}"_*.deb 2>/dev/null | head -1)
    if [ -z "$deb" ]; then
        if ! (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1); then
            echo "fetch_docs: cannot download $pkg (no network or no package lists?); skipping it"
            continue
        fi
        deb=$(ls "$work"/"${pkg}"_*.deb 2>/dev/null | head -1)
    fi
    [ -n "$deb" ] || continue
    mkdir -p "$work/x-$pkg"
    dpkg -x "$deb" "$work/x-$pkg" || continue
    src="$work/x-$pkg/$path"
    if [ ! -e "$src" ]; then
        echo "fetch_docs: $pkg has no $path; skipping it"
        continue
    fi
    mkdir -p "$(dirname "$DIR/$name")" || continue
    case "$name:$path" in
    *.gz:*.gz) cp "$src" "$DIR/$name.tmp" ;; # kept compressed: the reader unpacks it
    *:*.gz) gzip -dc "$src" >"$DIR/$name.tmp" ;;
    *) cp "$src" "$DIR/$name.tmp" ;;
    esac && mv "$DIR/$name.tmp" "$DIR/$name" && echo "fetch_docs: $name ($pkg)"
done
n=$(ls "$DIR" "$DIR"/distractors 2>/dev/null | grep -c '\.')
echo "fetch_docs: $n documents in $DIR"
exit 0
