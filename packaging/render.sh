#!/bin/sh
# Render a template: render.sh TEMPLATE WIRE_BIN WIRE_STATE [RELAY_BIND] > OUTPUT
set -eu
[ $# -ge 3 ] || { echo "usage: render.sh TEMPLATE WIRE_BIN WIRE_STATE [RELAY_BIND]" >&2; exit 2; }
sed -e "s|@WIRE_BIN@|$2|g" -e "s|@WIRE_STATE@|$3|g" -e "s|@RELAY_BIND@|${4:-127.0.0.1:8771}|g" "$1"
