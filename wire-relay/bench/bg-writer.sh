#!/bin/sh
# A background writer that fsyncs: 64 MiB written and fsynced, over and over, on the disk
# under test, until killed.
while :; do dd if=/dev/zero of="${1:-/tmp/bench-bg}" bs=1M count=64 conv=fsync status=none; done
