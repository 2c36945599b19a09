#!/bin/sh
# store_bench.sh - run the case store benchmark (tests/bench/store_bench.c):
# fill a fresh store with 1,000,000 cases from 200,000 data subjects, then
# time subject lookup by address and a queue page of 50, and weigh the
# database.  `make bench-store` builds it and runs this from the project
# root; `make bench` runs it last.  The full fill takes several minutes.
#
# Environment: BUILD (or INTAKE_BUILD) = build tree (default build),
# STORE_BENCH_CASES (default 1000000), STORE_BENCH_SUBJECTS (default
# 200000), STORE_BENCH_DIR (keep the store there instead of a temporary
# directory under TMPDIR, which is removed), STORE_BENCH_ARGS (more
# arguments, e.g. --inflight 1024).
# shellcheck disable=SC2086
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD_DIR=${INTAKE_BUILD:-${BUILD:-build}}
BIN="$BUILD_DIR/bench/store_bench"
CASES=${STORE_BENCH_CASES:-1000000}
SUBJECTS=${STORE_BENCH_SUBJECTS:-200000}

[ -x "$BIN" ] || { echo "store_bench: $BIN missing; run make bench-store" >&2; exit 1; }

echo "== case store: $CASES cases from $SUBJECTS subjects"
echo "  $(date -u '+%Y-%m-%d %H:%M:%SZ') on $(uname -n), $(nproc) CPUs;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$CASES" -ge 1000000 ] && [ "$SUBJECTS" -ge 200000 ] ||
	echo "  WARNING: below the 1,000,000 cases / 200,000 subjects issue 4 asks for"
set -- --cases "$CASES" --subjects "$SUBJECTS"
[ -n "${STORE_BENCH_DIR:-}" ] && set -- "$@" --dir "$STORE_BENCH_DIR"
"$BIN" "$@" ${STORE_BENCH_ARGS:-}
rc=$?
echo "  (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
exit $rc
