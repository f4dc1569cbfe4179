#!/bin/sh
# Build a .deb: build-deb.sh WIRE_BINARY VERSION OUTDIR [ARCH]
# Installs /usr/bin/wire, the systemd user units (enable per user with
# `systemctl --user enable --now wire-daemon`) and the man page.
set -eu
[ $# -ge 3 ] || { echo "usage: build-deb.sh WIRE_BINARY VERSION OUTDIR [ARCH]" >&2; exit 2; }
bin=$1 version=$2 out=$3
arch=${4:-$(dpkg --print-architecture 2>/dev/null || echo amd64)}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v dpkg-deb >/dev/null 2>&1 || { echo "build-deb.sh: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM
install -D -m 0755 "$bin" "$stage/usr/bin/wire"
for unit in wire-daemon wire-relay; do
    mkdir -p "$stage/usr/lib/systemd/user"
    sh "$here/render.sh" "$here/systemd/$unit.service" /usr/bin/wire '%S/wire' > "$stage/usr/lib/systemd/user/$unit.service"
done
mkdir -p "$stage/usr/share/man/man1" "$stage/usr/share/doc/wire" "$stage/DEBIAN"
"$bin" man | gzip -9n > "$stage/usr/share/man/man1/wire.1.gz"
printf 'wire: a phone line for AI agents. See https://github.com/wire-agents/wire\n' > "$stage/usr/share/doc/wire/README"
size=$(du -sk "$stage/usr" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: wire
Version: $version
Architecture: $arch
Maintainer: wire maintainers <maintainers@wire.invalid>
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://github.com/wire-agents/wire
Description: a phone line for AI agents
 Agents pair once and then exchange signed, end-to-end encrypted messages
 through a mailbox relay that only ever sees ciphertext.
CONTROL
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$stage" "$out/wire_${version}_${arch}.deb" >/dev/null
echo "$out/wire_${version}_${arch}.deb"
