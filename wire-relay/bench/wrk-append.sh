#!/bin/sh
# Appends under wrk: allocates SLOTS slots on the relay at URL, then runs wrk with
# append.lua against it (or, with HELLO=1, the same bodies against the hello server at
# URL). Prints wrk's report with its latency distribution.
#
#   wire-relay/bench/wrk-append.sh URL [SLOTS] [SECONDS] [CONNECTIONS]
#   HELLO=1 wire-relay/bench/wrk-append.sh URL
set -eu
url=${1:?usage: wrk-append.sh URL [SLOTS] [SECONDS] [CONNECTIONS]}
slots=${2:-50}
seconds=${3:-20}
conns=${4:-64}
here=$(cd "$(dirname "$0")" && pwd)
list=$(mktemp)
trap 'rm -f "$list"' EXIT
if [ "${HELLO:-0}" = 1 ]; then
  echo "hello -" > "$list"
  wrk -t2 -c"$conns" -d"${seconds}s" --latency -s "$here/append.lua" "$url" -- "$list" hello
  exit
fi
i=0
while [ "$i" -lt "$slots" ]; do
  curl -fsS -w "\n" -X POST "$url/v1/slots" | sed -E 's/.*"slot":"([^"]+)".*"owner_token":"([^"]+)".*/\1 \2/' >> "$list"
  i=$((i + 1))
done
wrk -t2 -c"$conns" -d"${seconds}s" --latency -s "$here/append.lua" "$url" -- "$list"
