#!/bin/sh
# rights_bench.sh - data-subject rights and retention at council size
# (issue 9): store_bench fills a store with one person's RIGHTS_BENCH_CASES
# cases (default 1,000) and rights_bench times their export (< 2 s) and
# erasure (< 1 s); store_bench fills another with RETENTION_BENCH_CASES
# cases (default 1,000,000, from 200,000 subjects) and rights_bench times a
# retention pass with RETENTION_BENCH_DUE percent of them due (default 10;
# < 60 s).  `make bench-rights` builds both and runs this from the project
# root; the large fill takes several minutes.
#
# Environment: BUILD (or INTAKE_BUILD) = build tree (default build);
# RIGHTS_BENCH_CASES, RETENTION_BENCH_CASES, RETENTION_BENCH_SUBJECTS,
# RETENTION_BENCH_DUE; TMPDIR.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD_DIR=${INTAKE_BUILD:-${BUILD:-build}}
FILL="$BUILD_DIR/bench/store_bench"
BIN="$BUILD_DIR/bench/rights_bench"
CASES=${RIGHTS_BENCH_CASES:-1000}
RCASES=${RETENTION_BENCH_CASES:-1000000}
RSUBJECTS=${RETENTION_BENCH_SUBJECTS:-200000}
DUE=${RETENTION_BENCH_DUE:-10}

for b in "$FILL" "$BIN"; do
	[ -x "$b" ] || { echo "rights_bench: $b missing; run make bench-rights" >&2; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rights-bench-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "== rights: export and erasure of one person with $CASES cases"
echo "  $(date -u '+%Y-%m-%d %H:%M:%SZ') on $(uname -n), $(nproc) CPUs;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir "$tmp/one"
"$FILL" --cases "$CASES" --subjects 1 --dir "$tmp/one" --lookups 10 \
	--pages 10 >"$tmp/fill-one.log" 2>&1 ||
	{ cat "$tmp/fill-one.log"; exit 1; }
"$BIN" export "$tmp/one" person-0@example.org || exit 1

echo "== retention: a pass over $RCASES cases ($RSUBJECTS subjects), $DUE% due"
mkdir "$tmp/many"
start=$(date +%s)
"$FILL" --cases "$RCASES" --subjects "$RSUBJECTS" --dir "$tmp/many" \
	--lookups 10 --pages 10 >"$tmp/fill-many.log" 2>&1 ||
	{ cat "$tmp/fill-many.log"; exit 1; }
echo "  (filled in $(( $(date +%s) - start )) s)"
"$BIN" retention "$tmp/many" "$DUE" || exit 1
echo "  (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
