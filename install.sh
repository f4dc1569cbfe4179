#!/bin/sh
# Install wire.
#
# From a source checkout (this script next to Cargo.toml), it builds and installs with
# cargo. Anywhere else it downloads the release archive for this platform from
# WIRE_RELEASE_BASE (or --base-url), checks it against the published SHA-256, and installs
# the binary into PREFIX/bin.
#
#   sh install.sh [--prefix DIR] [--base-url URL] [--version V] [--from-source] [--debug]
#
# Running it again replaces the installed binary with the same or a newer one.
set -eu

prefix="${WIRE_PREFIX:-$HOME/.local}"
base_url="${WIRE_RELEASE_BASE:-https://github.com/wire-agents/wire/releases/download}"
version="${WIRE_VERSION:-latest}"
from_source=""
profile_flag=""

die() {
    printf 'install.sh: error: %s\n' "$1" >&2
    exit 1
}

say() {
    printf '%s\n' "$1" >&2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
        --base-url) [ $# -ge 2 ] || die "--base-url needs a URL"; base_url="$2"; shift 2 ;;
        --version) [ $# -ge 2 ] || die "--version needs a version"; version="$2"; shift 2 ;;
        --from-source) from_source=1; shift ;;
        --debug) profile_flag="--debug"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$prefix/bin" || die "cannot create $prefix/bin; choose another --prefix"

if [ -n "$from_source" ] || { [ -f "$here/Cargo.toml" ] && [ -d "$here/wire-cli" ]; }; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust from https://rustup.rs, or run this script outside a source checkout to download a release"
    say "building wire from $here (this takes a few minutes the first time)"
    # shellcheck disable=SC2086 # an empty profile flag must vanish
    cargo install --locked --force $profile_flag --path "$here/wire-cli" --root "$prefix" \
        || die "cargo install failed (see the messages above)"
else
    os=$(uname -s)
    arch=$(uname -m)
    case "$os" in
        Linux) os=unknown-linux-gnu ;;
        Darwin) os=apple-darwin ;;
        *) die "unsupported system '$os'; build from source with cargo (https://rustup.rs)" ;;
    esac
    case "$arch" in
        x86_64|amd64) arch=x86_64 ;;
        arm64|aarch64) arch=aarch64 ;;
        *) die "unsupported processor '$arch'; build from source with cargo" ;;
    esac
    target="$arch-$os"
    archive="wire-$target.tar.gz"
    command -v curl >/dev/null 2>&1 || die "curl not found; install curl or build from source"
    tmp=$(mktemp -d) || die "cannot create a temporary directory"
    trap 'rm -rf "$tmp"' EXIT INT TERM
    say "downloading $archive ($version) from $base_url"
    curl -fsSL "$base_url/$version/$archive" -o "$tmp/$archive" || die "download of $base_url/$version/$archive failed"
    curl -fsSL "$base_url/$version/SHA256SUMS" -o "$tmp/SHA256SUMS" || die "download of the checksums failed"
    expected=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$tmp/SHA256SUMS")
    [ -n "$expected" ] || die "SHA256SUMS has no entry for $archive"
    if command -v sha256sum >/dev/null 2>&1; then
        actual=$(sha256sum "$tmp/$archive" | awk '{ print $1 }')
    else
        actual=$(shasum -a 256 "$tmp/$archive" | awk '{ print $1 }')
    fi
    [ "$actual" = "$expected" ] || die "checksum mismatch for $archive (expected $expected, got $actual); not installing"
    tar -xzf "$tmp/$archive" -C "$tmp" || die "the archive is damaged"
    [ -f "$tmp/wire" ] || die "the archive holds no 'wire' binary"
    install -m 0755 "$tmp/wire" "$prefix/bin/wire" || die "cannot write $prefix/bin/wire"
fi

say "installed $("$prefix/bin/wire" --version) to $prefix/bin/wire"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) say "add $prefix/bin to your PATH" ;;
esac
say "next: 'wire demo' to see it work; 'wire setup --apply' to give Claude Code and Cursor the wire tools;"
say "      then 'wire up <relay>' and 'wire invite', or 'wire service install --local-relay' for same-machine sessions"
say "      (docs: README.md, AGENT.md)"
