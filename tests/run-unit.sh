#!/bin/sh
# run-unit.sh BUILD [COUNTS] - run every Check unit suite built in BUILD/tests.
# Check prints "NN%: Checks: N, Failures: F, Errors: E" per suite; this adds
# them up, prints "N passed, N failed" and writes "passed failed 0" to
# COUNTS if given.  Exits non-zero if any suite failed.
set -u
build=$1
counts=${2:-}
total=0; bad=0; status=0
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *.o|*.d) continue ;; esac
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out" | grep -v '^Running suite' | sed "s|^|$(basename "$t"): |" | tail -n 20
	line=$(printf '%s\n' "$out" | grep -E 'Checks: [0-9]+' | tail -n 1)
	n=$(printf '%s' "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
	f=$(printf '%s' "$line" | sed -n 's/.*Failures: \([0-9]*\).*/\1/p')
	e=$(printf '%s' "$line" | sed -n 's/.*Errors: \([0-9]*\).*/\1/p')
	if [ -z "$n" ]; then
		echo "$(basename "$t"): no Check summary (exit $rc)"; bad=$((bad + 1)); status=1; continue
	fi
	total=$((total + n)); bad=$((bad + f + e))
	[ "$rc" -eq 0 ] || status=1
done
passed=$((total - bad))
echo "unit ($build): $passed passed, $bad failed"
[ -n "$counts" ] && echo "$passed $bad 0" > "$counts"
[ "$total" -gt 0 ] || { echo "no unit tests ran"; exit 1; }
exit $status
