#!/bin/sh
# parser_bench.sh - run the parser benchmark (tests/bench/parser_bench.c):
# bare GMime against parser_message_parse() on the real-mail corpus and on
# synthetic 2 KB and 50 KB messages.  `make bench-parser` builds it and runs
# this from the project root; `make bench` runs it last.
#
# Environment: BUILD (or INTAKE_BUILD) = build tree (default build),
# BENCH_PARSER_SECONDS = minimum seconds per cell (default 2),
# BENCH_PARSER_DIRS = corpus directories (default ../shared/corpus/mail and
# tests/data/mail; missing ones are skipped).
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD_DIR=${INTAKE_BUILD:-${BUILD:-build}}
BIN="$BUILD_DIR/bench/parser_bench"
SECONDS_PER_CELL=${BENCH_PARSER_SECONDS:-2}
DIRS=${BENCH_PARSER_DIRS:-"../shared/corpus/mail tests/data/mail"}

[ -x "$BIN" ] || { echo "parser_bench: $BIN missing; run make bench-parser" >&2; exit 1; }

set --
for d in $DIRS; do
	if [ -d "$d" ]; then
		set -- "$@" "$d"
	else
		echo "parser_bench: $d missing, skipped"
	fi
done

echo "== parser: bare GMime against parser_message_parse()"
exec "$BIN" --seconds "$SECONDS_PER_CELL" \
	--lexicon conf/special-categories.txt "$@"
