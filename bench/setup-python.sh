#!/usr/bin/env bash
# Unpacks QEMU's Python package (qemu.qmp, qemu.machine) from Debian's QEMU source package into
# bench/.python (git-ignored), for the benchmark's Python baseline. Needs apt-get (as root: it
# fetches the bookworm source index into a private list directory, leaving the system's alone).
# Nothing of it is committed: the package is QEMU's, under its own licence.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="$here/.python"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
suite="${DEBIAN_SUITE:-bookworm}"
cat > "$work/src.sources" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
mkdir -p "$work/lists/partial" "$work/dl"
apt=(-o "Dir::Etc::sourcelist=$work/src.sources" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists"
  -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update -qq
(cd "$work/dl" && apt-get "${apt[@]}" source --download-only -qq qemu)
rm -rf "$target"
mkdir -p "$target"
tar -xJf "$work"/dl/qemu_*.orig.tar.xz -C "$work" --wildcards '*/python/qemu/qmp/*' '*/python/qemu/machine/*' \
  '*/python/qemu/utils/__init__.py'
cp -r "$work"/qemu-*/python/qemu "$target/"
python3 -c "import sys; sys.path.insert(0, '$target'); import qemu.machine, qemu.qmp" &&
  echo "QEMU's Python package is in $target"
