#!/bin/sh
# check.sh - what `make check` runs, in order:
#   1. build (normal flags) and run the Check unit suites;
#   2. build again with ASan+UBSan (build-asan/) and run the unit suites;
#   3. run the integration tests (real clients against a private intaked on
#      loopback) with the ASan+UBSan binaries, failing on any sanitizer
#      report in the daemon's log.
# The last line is "N passed, N failed, N skipped" over all of it.
set -u
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

step() { printf '\n== %s\n' "$*"; }

step "build"
make -j"$jobs" --no-print-directory all build-tests >/dev/null || exit 1
step "unit tests"
sh tests/run-unit.sh build "$tmp/unit" || status=1

step "build with ASan+UBSan"
make -j"$jobs" --no-print-directory BUILD=build-asan SAN=1 all build-tests >/dev/null || exit 1
step "unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1 sh tests/run-unit.sh build-asan "$tmp/asan" || status=1

step "integration tests (ASan+UBSan binaries)"
INTAKE_BUILD=build-asan python3 tests/run-integration.py --counts "$tmp/integ" || status=1

p=0; f=0; s=0
for c in "$tmp"/unit "$tmp"/asan "$tmp"/integ; do
	[ -f "$c" ] || { f=$((f + 1)); continue; }
	read a b d < "$c"
	p=$((p + a)); f=$((f + b)); s=$((s + d))
done
echo
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] || status=1
exit $status
