#!/bin/sh
# CPU time the hypervisor gave to other guests (steal), as a share of all CPU time since a
# sample: on a shared VM a window with steal ran slower for reasons outside what it
# measured, so every window's figure carries it.
#
#   s=$(wire-relay/bench/steal.sh)      # a sample
#   wire-relay/bench/steal.sh "$s"      # steal=1.3% since it
set -eu
now=$(awk '$1 == "cpu" {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
if [ $# -eq 0 ]; then
  echo "$now"
  exit
fi
echo "$1 $now" | awk '{d = $4 - $2; printf "steal=%.1f%%\n", (d > 0) ? 100 * ($3 - $1) / d : 0}'
