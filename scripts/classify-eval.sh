#!/bin/sh
# classify-eval.sh - the issue 5 figures of docs/classifier.md ("The
# example conf, measured"): the whole decision (rules and both models of
# conf/) on text the models were not trained on.
#
#   sh scripts/classify-eval.sh [BUILD]        (default build/)
#
# 1. departments: ../shared/corpus/labelled/newport-departments.csv;
# 2. kinds: ../shared/corpus/labelled/airline-kinds.csv (service-request
#    counted as enquiry);
# 3. FOI and SAR: tests/data/foi-sar/requests.csv, the whole set, then the
#    even data rows (counting from 0: held out from rule tuning) and the odd
#    ones (the rules were tuned on these);
# 4. FOI and SAR: tests/data/foi-sar/heldout.csv, a fresh set written
#    before the second round of tuning; never tuned on until 2026-11-27,
#    when three general pattern fixes were taken from its misses;
# 5. FOI and SAR: tests/data/foi-sar/heldout2.csv, a second set written
#    blind to the rules and the training data; tuned on since 2026-11-27;
# 6. FOI and SAR: tests/data/foi-sar/heldout3.csv, a third set written
#    blind; its odd data rows tuned on since 2026-11-27, its even rows
#    (printed on their own) held out until the sixth session, which tuned
#    one rule on them.
# 7. FOI and SAR: tests/data/foi-sar/heldout4.csv, a fourth set written
#    blind (2026-11-27); its odd rows tuned on (sixth, seventh and eighth
#    sessions), its even rows held out; whole and even rows.
# 8. FOI and SAR: tests/data/foi-sar/heldout5.csv, a fifth set written
#    blind (2026-11-27, seventh session); its odd rows tuned on since the
#    eighth session, its even rows held out; whole and even rows.
# 9. FOI and SAR: tests/data/foi-sar/heldout6.csv, a sixth set written
#    blind (2026-11-27, eighth session); measured blind once, then (eighth
#    session, second round) its ODD data rows were tuned on (rules), and
#    in the ninth session ALL its rows (rules): no half of it is held out
#    any more; neither half is kind training data; whole and even rows.
# Since the eighth session (2026-11-27) the kind model is trained on the
# foi-request and sar rows of every set in 3-8 (never heldout6.csv)
# (Makefile, models; scripts/kind-training.py), so their figures are
# in-sample for the kind model: the "held out" rows of 3-8 below are held
# out from rule tuning only.  In the ninth session the misses of ALL rows
# of every set here (the even halves of requests.csv, heldout3.csv,
# heldout4.csv, heldout5.csv and heldout6.csv included) were read and
# rules written from them: no set or half here is held out from rule
# tuning any more, and every figure below is in-sample for the rules (the
# "even rows" lines are kept so the figures stay comparable).
# 10. FOI and SAR: tests/data/foi-sar/heldout7.csv, a seventh set written
#    blind (2026-11-27); measured blind once with the ninth session's rules
#    (FOI 0.924 / 0.915, SAR 0.920 / 1.000), then in the tenth round ALL its
#    rows were read and rules written from the classes of its misses: it is
#    tuned on (rules), not kind training data; whole set only.
# 11. FOI and SAR: tests/data/foi-sar/heldout8.csv, an eighth set written
#    blind (2026-11-27); measured blind once with the tenth round's rules
#    (FOI 0.928 / 0.972, SAR 0.899 / 1.000), then in the eleventh round ALL
#    its rows were read and rules written from the classes of its misses,
#    each checked on every other set: it is tuned on (rules), not kind
#    training data; whole set only.
# 12. FOI and SAR: tests/data/foi-sar/heldout9.csv, a ninth set written
#    blind (2026-11-27); measured blind twice, with the rules before and
#    after the eleventh round (FOI 0.945 / 0.972; SAR 0.886 / 0.975, then
#    0.897 / 0.975), then in the twelfth round ALL its rows were read and
#    rules written from the classes of its false SARs, each checked on
#    every other set: it is tuned on (rules), not kind training data;
#    whole set only.
# 13. FOI and SAR: tests/data/foi-sar/heldout10.csv, a tenth set written
#    blind (2026-11-27); measured blind with the rules before and after
#    the twelfth round (FOI 0.955 / 0.991; SAR 0.897 / 0.975 both times),
#    then in the thirteenth round ALL its rows were read and rules written
#    from the classes of its false SARs (a present ask for the writer's
#    data: rights requests, earlier requests and questions about asking
#    without one), each checked on every other set: it is tuned on
#    (rules), not kind training data; whole set only.
# 14. FOI and SAR: tests/data/foi-sar/heldout11.csv, an eleventh set
#    written blind (2026-11-27); measured blind with the rules before and
#    after the thirteenth round (FOI 0.945 / 0.972, SAR 0.929 / 0.988 both
#    times). Nobody has read its rows or tuned anything on it: the one set
#    here whose figures are out of sample for the rules (and the kind
#    model); whole set only.  A round that reads it must say so here and
#    write a new blind set first.
# The labelled sets in ../shared are read only here; they are never copied.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
ctl="$build/intakectl -c conf/intake.conf rules test"
corpus=../shared/corpus/labelled
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

macro() { grep -E '^(rows|macro-F1 \(gold)'; }
# half IN OUT PART: the header and the data rows whose index (counting
# from 0) is even (PART 0) or odd (PART 1)
half() {
  python3 - "$1" "$2" "$3" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f, lineterminator="\r\n")
    w.writerow(rows[0])
    w.writerows(r for i, r in enumerate(rows[1:]) if i % 2 == int(sys.argv[3]))
EOF
}
foisar() { grep -E '^(rows|class|(sar|foi-request) +[01][.][0-9]{3} )'; }
# foi CSV TITLE: FOI and SAR precision and recall of the whole decision
foi() {
  echo "== $2"
  # shellcheck disable=SC2086
  $ctl --label kind --csv "$1" $other | foisar
}
# foi_even CSV TITLE EVEN_TITLE: the set, then its even rows
foi_even() {
  half "$1" "$tmp/even.csv" 0
  foi "$1" "$2"
  foi "$tmp/even.csv" "$3"
}
other="--map enquiry=other --map complaint=other --map compliment=other
       --map service-request=other --map rights-request=other
       --map auto-reply=other"

if [ -r "$corpus/newport-departments.csv" ]; then
  echo "== departments: newport-departments.csv"
  $ctl --label department --csv "$corpus/newport-departments.csv" | macro
  echo "== kinds: airline-kinds.csv (service-request=enquiry)"
  $ctl --label kind --map service-request=enquiry \
    --csv "$corpus/airline-kinds.csv" | macro
else
  echo "($corpus not found: departments and kinds skipped)"
fi

half tests/data/foi-sar/requests.csv "$tmp/odd.csv" 1
foi_even tests/data/foi-sar/requests.csv \
  "FOI and SAR: tests/data/foi-sar/requests.csv (precision, recall)" \
  "even rows (held out from rule tuning until the ninth session)"
foi "$tmp/odd.csv" "odd rows (the rules were tuned on these)"
foi tests/data/foi-sar/heldout.csv \
  "held-out set: tests/data/foi-sar/heldout.csv (tuned on since 2026-11-27)"
foi tests/data/foi-sar/heldout2.csv \
  "second set: tests/data/foi-sar/heldout2.csv (tuned on since 2026-11-27)"
foi_even tests/data/foi-sar/heldout3.csv \
  "third set: tests/data/foi-sar/heldout3.csv (odd rows tuned on)" \
  "its even rows (held out until the sixth session; all rows tuned on since the ninth)"
foi_even tests/data/foi-sar/heldout4.csv \
  "fourth set: tests/data/foi-sar/heldout4.csv (written blind; odd rows tuned on, all rows since the ninth session)" \
  "its even rows (tuned on since the ninth session; the kind model is trained on them)"
foi_even tests/data/foi-sar/heldout5.csv \
  "fifth set: tests/data/foi-sar/heldout5.csv (written blind; odd rows tuned on, all rows since the ninth session)" \
  "its even rows (tuned on since the ninth session; the kind model is trained on them)"
foi_even tests/data/foi-sar/heldout6.csv \
  "sixth set: tests/data/foi-sar/heldout6.csv (written blind; all rows tuned on since the ninth session)" \
  "its even rows (tuned on since the ninth session; not kind training data)"
foi tests/data/foi-sar/heldout7.csv \
  "seventh set: tests/data/foi-sar/heldout7.csv (written blind; measured once, then all rows tuned on in the tenth round; not kind training data)"
foi tests/data/foi-sar/heldout8.csv \
  "eighth set: tests/data/foi-sar/heldout8.csv (written blind; measured once, then all rows tuned on in the eleventh round; not kind training data)"
foi tests/data/foi-sar/heldout9.csv \
  "ninth set: tests/data/foi-sar/heldout9.csv (written blind; measured twice, then all rows tuned on in the twelfth round; not kind training data)"
foi tests/data/foi-sar/heldout10.csv \
  "tenth set: tests/data/foi-sar/heldout10.csv (written blind; measured twice, then all rows tuned on in the thirteenth round; not kind training data)"
foi tests/data/foi-sar/heldout11.csv \
  "eleventh set: tests/data/foi-sar/heldout11.csv (written blind; measured, never read or tuned on)"
