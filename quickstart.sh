#!/usr/bin/env bash
# berth on a fresh Debian machine, offline: install what is needed (apt),
# build berth, make a busybox image from Debian's busybox-static, run it.
# Run as root. BERTH_ROOT picks a separate instance (default /var/lib/berth).
set -euo pipefail
cd "$(dirname "$0")"

./.ci/deps
if ! command -v cargo >/dev/null; then
  echo "quickstart: cargo is needed (rustup or Debian's cargo)" >&2
  exit 1
fi
cargo build --release -p berth-cli -p berth-runtime-cli
BIN=${CARGO_TARGET_DIR:-target}/release
berth() { "$BIN/berth" "$@"; }

# A busybox root filesystem: the static binary, one link per applet,
# /etc/passwd and /etc/group, the usual mount points.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,var,run}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/busybox.tar" .

berth import "$work/busybox.tar" busybox
berth run --rm busybox echo hello
