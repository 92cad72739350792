#!/usr/bin/env bash
# Builds berth's release binaries statically linked and not position-
# independent (glibc and libseccomp from Debian's -dev packages): no dynamic
# loader, no relocations to apply at start-up. For berth-runtime this cuts
# peak RSS by about a quarter and start-up time noticeably; see
# docs/runtime.md. Output: target/x86_64-unknown-linux-gnu/release/.
#
# Usage: scripts/build-static.sh [cargo build args, e.g. -p berth-runtime-cli]
set -euo pipefail
cd "$(dirname "$0")/.."
# An explicit --target keeps these flags off build scripts and proc-macros,
# which must stay dynamic.
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
RUSTFLAGS="-C relocation-model=static -C target-feature=+crt-static" \
  exec cargo build --release --target x86_64-unknown-linux-gnu "$@"
