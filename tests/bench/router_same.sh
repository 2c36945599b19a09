#!/bin/sh
# router_same.sh - write every routing decision of a build to OUT/, so two
# builds can be compared byte for byte (diff -r OUT1 OUT2): for changes
# to router/ that must not change a decision (docs/performance.md,
# "Routing").
#
#   sh tests/bench/router_same.sh OUT [BUILD [EXTRA.csv | DIR ...]]
#
# BUILD (default build/) needs bench/router_dump and intakectl (make
# build/bench/router_dump all).  OUT/ gets
#   decisions.txt  router_dump over the training file, every FOI/SAR set
#                  and the EXTRA CSV files (tests/bench/router_texts.py
#                  makes hostile ones): every field, scores as %.17g
#   tokens.txt     the classifier's tokens of the same texts
#   ctl.txt        intakectl rules test --json of every message under
#                  tests/data/mail, ../shared/corpus/mail and the extra
#                  directories' *.eml
#   eval.txt       scripts/classify-eval.sh
set -e
out=$1
build=${2:-build}
[ -n "$out" ] || { echo "usage: $0 OUT [BUILD [EXTRA...]]" >&2; exit 2; }
shift
[ $# -gt 0 ] && shift
mkdir -p "$out"
csvs="conf/training/council-messages.csv $(ls tests/data/foi-sar/*.csv)"
dirs=""
for x in "$@"; do
  if [ -d "$x" ]; then dirs="$dirs $x"; else csvs="$csvs $x"; fi
done
# shellcheck disable=SC2086
"$build/bench/router_dump" $csvs > "$out/decisions.txt"
# shellcheck disable=SC2086
"$build/bench/router_dump" --tokens $csvs > "$out/tokens.txt"
{
  find tests/data/mail ../shared/corpus/mail -type f | sort
  for d in $dirs; do find "$d" -name '*.eml' | sort; done
} | xargs -d '\n' -n 200 "$build/intakectl" -c conf/intake.conf rules test \
    --json > "$out/ctl.txt" 2>&1 || true
sh scripts/classify-eval.sh "$build" > "$out/eval.txt" 2>&1
echo "router_same: $(wc -l < "$out/decisions.txt") decisions," \
  "$(wc -l < "$out/tokens.txt") texts tokenized," \
  "$(grep -c '"queue"' "$out/ctl.txt") messages, in $out"
