#!/bin/sh
# http_bench.sh - web form submissions per second with wrk at 50
# connections, next to GET /healthz (the HTTP ceiling) in the same run
# (issue 7).  `make bench-http`; HTTP_BENCH_SECONDS (default 10).
#
# Every submission wrk counts as 2xx was answered 201 only after its spool
# row and case reference were committed (synchronous=FULL); the script
# checks afterwards that the database holds as many form messages as wrk
# saw 201s.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${INTAKE_BUILD:-${BUILD:-build}}
SECS=${HTTP_BENCH_SECONDS:-10}
DIR=$(mktemp -d /tmp/intake-http-bench.XXXXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$DIR/conf" "$DIR/var"
cp -R "$ROOT/conf/." "$DIR/conf/"
sed -i -e "s/^listen = 127.0.0.1:2525/listen = 127.0.0.1:$SPORT/" \
       -e "s/^listen = 127.0.0.1:8080/listen = 127.0.0.1:$PORT/" \
       -e "s/^form_rate = .*/form_rate = 100000/" "$DIR/conf/intake.conf"
chmod 644 "$DIR/conf/intake.conf"
"$ROOT/$BUILD_DIR/intakectl" -c "$DIR/conf/intake.conf" keygen >/dev/null
"$ROOT/$BUILD_DIR/intaked" -c "$DIR/conf/intake.conf" >"$DIR/log" 2>&1 &
PID=$!
for i in $(seq 100); do
	curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
	sleep 0.1
done

echo "== HTTP: web form submissions with wrk, 50 connections, ${SECS}s each"
ceiling=$(wrk -t2 -c50 -d"${SECS}s" "http://127.0.0.1:$PORT/healthz" | awk '/Requests\/sec/ {print $2}')
echo "  ceiling: GET /healthz: $ceiling req/s"

ORIGIN="http://127.0.0.1:$PORT"
cat >"$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Origin"] = "$ORIGIN"
wrk.body = "name=Jo+Bloggs&email=jo%40example.org&subject=Pothole&message=" .. string.rep("There+is+a+deep+pothole+outside+number+4+Mill+Lane.+", 30)
done = function(summary, latency, requests)
  io.write(string.format("  latency p50 %.1f ms p99 %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
out=$(wrk -t2 -c50 -d"${SECS}s" -s "$DIR/post.lua" "http://127.0.0.1:$PORT/forms/contact")
echo "$out" | grep -E "latency p|Requests/sec|requests in|Non-2xx"
rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
total=$(echo "$out" | awk '/requests in/ {print $1}')
bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
ok=$((total - ${bad:-0}))
sleep 1
stored=$(python3 - "$DIR/var/intake.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=30)
print(db.execute("SELECT (SELECT count(*) FROM spool WHERE source='form')"
                 " + (SELECT count(*) FROM messages WHERE source='form')"
                 " + 0").fetchone()[0])
PY
)
echo "  201 answered: ${ok:-0}; form messages in the database: $stored"
python3 - "$rate" "$ceiling" <<'PY'
import sys
r, c = float(sys.argv[1]), float(sys.argv[2])
print("HTTP forms, 50 connections: %.0f submissions/s against %.0f req/s"
      " GET /healthz in the same run = %.1f%% (target >= 30%%: %s)"
      % (r, c, 100 * r / c, "PASS" if r >= 0.3 * c else "MISS"))
PY
