#!/bin/sh
# The relay against the hello ceiling, with the disk's reference, in one go: the fsync
# latency of the disk, then ROUNDS rounds of hello under wrk followed by a fresh relay for
# two 10 s windows (windows.sh), then the load generator against both (two rounds, a fresh
# relay each). Ends with each relay window's ratio to the hello run before it, and their
# median. hello must be listening on 127.0.0.1:9100 and port 9101 be free.
#
#   wire-relay/bench/ratio.sh WIRE_BIN LOADGEN_BIN [ROUNDS]
set -eu
bin=${1:?usage: ratio.sh WIRE_BIN LOADGEN_BIN [ROUNDS]}
loadgen=${2:?usage: ratio.sh WIRE_BIN LOADGEN_BIN [ROUNDS]}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
probe=$(mktemp)
data=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$probe" "$data" "$log"' EXIT

runs() {
  pid=
  trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
  "$loadgen" fsync --file "$probe" --seconds 5
  r=1
  while [ "$r" -le "$rounds" ]; do
    echo "round $r"
    s=$("$here/steal.sh")
    HELLO=1 "$here/wrk-append.sh" http://127.0.0.1:9100 1 10 64 2>&1 |
      awk '/Requests\/sec/ {print "hello req/s=" $2} $1=="99%" {print "hello p99=" $2}'
    "$here/steal.sh" "$s" | sed 's/^/hello /'
    "$here/windows.sh" "$bin" relay 2 10
    r=$((r + 1))
  done
  for r in 1 2; do
    "$loadgen" appends --url http://127.0.0.1:9100 --concurrency 64 --seconds 10 --hello | tail -1
    rm -rf "$data" && mkdir -p "$data"
    "$bin" relay-server --bind 127.0.0.1:9101 --data "$data" --ip-rate 0 --token-rate 0 --slots-per-hour 0 \
      --slot-max-events 100000000 --slot-max-bytes 100000000000 > /dev/null 2>&1 &
    pid=$!
    until curl -fsS http://127.0.0.1:9101/healthz > /dev/null 2>&1; do sleep 0.1; done
    "$loadgen" appends --url http://127.0.0.1:9101 --concurrency 64 --seconds 10 --slots 50 | tail -1
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
}

runs | tee "$log"
# Each relay figure over the hello figure measured just before it, then the median.
awk '
  function median(v, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  function report(name, v, n,   i, line) {
    if (n == 0) return
    for (i = 1; i <= n; i++) line = line sprintf(" %.3f", v[i])
    printf "%s relay/hello:%s median=%.3f\n", name, line, median(v, n)
  }
  /^hello req\/s=/ { split($2, f, "="); h = f[2] }
  /^relay window=/ { split($3, f, "="); if (h > 0) w[++nw] = f[2] / h }
  /"target":"hello"/ { match($0, /"per_sec":[0-9]+/); g = substr($0, RSTART + 10, RLENGTH - 10) }
  /"target":"relay"/ { match($0, /"per_sec":[0-9]+/); if (g > 0) l[++nl] = substr($0, RSTART + 10, RLENGTH - 10) / g }
  END { report("wrk", w, nw); report("loadgen", l, nl) }
' "$log"
