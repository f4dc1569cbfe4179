#!/bin/sh
# A relay from a fresh data directory under wrk, in consecutive windows (the first is the
# fresh relay, later ones the settled one): one line per window with wrk's appends/s, p50
# and p99, the size of the WAL file after it and the window's CPU steal (steal.sh).
#
#   wire-relay/bench/windows.sh WIRE_BIN LABEL [WINDOWS] [SECONDS]
set -eu
bin=$1; label=$2; windows=${3:-3}; secs=${4:-10}
here=$(cd "$(dirname "$0")" && pwd)
data=/tmp/bench-data-$label
rm -rf "$data"
"$bin" relay-server --bind 127.0.0.1:9101 --data "$data" --ip-rate 0 --token-rate 0 --slots-per-hour 0 \
  --slot-max-events 100000000 --slot-max-bytes 100000000000 > "/tmp/bench-relay-$label.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
until curl -fsS http://127.0.0.1:9101/healthz > /dev/null 2>&1; do sleep 0.1; done
w=1
while [ "$w" -le "$windows" ]; do
  s=$("$here/steal.sh")
  out=$("$here/wrk-append.sh" http://127.0.0.1:9101 50 "$secs" 64 2>&1)
  st=$("$here/steal.sh" "$s")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  wal=$(stat -c %s "$data/relay.sqlite3-wal" 2>/dev/null || echo 0)
  echo "$label window=$w appends/s=$rps p50=$p50 p99=$p99 wal_bytes=$wal $st"
  w=$((w + 1))
done
