#!/usr/bin/env bash
# Arrival-to-return latency of wire_wait (docs/BENCHMARKS.md, "wire_wait latency").
# Usage: wire-mcp/bench/wait-latency.sh [ROUNDS]   (needs the venv .ci/test makes)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-200}"
python="${WIRE_TEST_PYTHON:-$PWD/target/test-deps/venv/bin/python}"
cargo build -q --release -p wire-cli
wire="$PWD/target/release/wire"
dir="$(mktemp -d)"
trap 'kill "$relay" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$wire" relay-server --json --bind 127.0.0.1:0 --data "$dir/relay" >"$dir/announce" 2>"$dir/relay.log" &
relay=$!
until [ -s "$dir/announce" ]; do sleep 0.05; done
addr="$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$dir/announce")"
export WIRE_DAEMON_DIR="$dir/daemon" WIRE_SESSIONS_DIR="$dir/sessions" HOME="$dir"
WIRE_HOME="$dir/a" "$wire" init --relay "$addr" --json >/dev/null
WIRE_HOME="$dir/b" "$wire" init --relay "$addr" --json >/dev/null
url="$(WIRE_HOME="$dir/a" "$wire" invite --json | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')"
WIRE_HOME="$dir/b" "$wire" accept "$url" --json >/dev/null
WIRE_HOME="$dir/a" "$wire" pull --json >/dev/null
WIRE_HOME="$dir/b" "$wire" pull --json >/dev/null
b_nick="$(WIRE_HOME="$dir/b" "$wire" whoami --json | sed -n 's/.*"nickname":"\([^"]*\)".*/\1/p')"
a_did="$(WIRE_HOME="$dir/a" "$wire" whoami --json | sed -n 's/.*"did":"\([^"]*\)".*/\1/p')"
"$python" wire-mcp/bench/wait_latency.py "$wire" "$dir/a" "$dir/b" "$b_nick" "$a_did" "$rounds"
