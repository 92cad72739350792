#!/usr/bin/env bash
# Boots Debian's user-mode-linux kernel (a cgroup-v2-only Linux 6.1 running
# as a process) and runs one command inside it as root, with
# BERTH_IN_UML=1 in its environment. Prints the guest console (CRLF line
# ends) and exits with the command's exit status.
#
#   tests/uml/run.sh COMMAND [ARGS...]
#
# e.g. tests/uml/run.sh "$(ls -t target/debug/deps/real-* | head -1)" suite_
# Env: LINUX_UML (default /usr/bin/linux.uml), BERTH_UML_MEM (default 1G),
# BERTH_UML_TIMEOUT seconds (default 600).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
uml="${LINUX_UML:-/usr/bin/linux.uml}"
[[ -x "$uml" ]] || { echo "run.sh: $uml missing (apt-get install user-mode-linux)" >&2; exit 2; }
(($#)) || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
# Not under /tmp or /run: the guest mounts tmpfs over those.
work="$(mktemp -d -p /var/tmp berth-uml.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# A checkout or target dir under /tmp or /run (CI may clone there) is
# bound back by the guest over its tmpfs, at the same path: the top-level
# directory of the working directory and of the command.
mkdir "$work/host-tmp" "$work/host-run"
for p in "$PWD" "$(dirname "$(realpath "$1")")"; do
    case "$p" in
        /tmp/?*|/run/?*) echo "$p" | cut -d/ -f1-3 ;;
    esac
done | sort -u > "$work/keep"
{
    echo 'export BERTH_IN_UML=1 RUST_BACKTRACE=1'
    echo "cd $(printf '%q' "$PWD")"
    printf '%q ' "$@"
    echo
} > "$work/cmd"
out="$work/console"
# UML keeps guest memory in a file under TMPDIR; stdin is the console input.
timeout "${BERTH_UML_TIMEOUT:-600}" "$uml" mem="${BERTH_UML_MEM:-1G}" root=/dev/root rootfstype=hostfs rootflags=/ rw \
    init="$here/init.sh" con0=fd:0,fd:1 con=null cgroup_no_v1=all quiet \
    BERTH_UML_CMD="$work/cmd" </dev/null 2>&1 | tee "$out" || true
rc="$(tr -d '\r' < "$out" | sed -n 's/^BERTH_UML_EXIT=\([0-9]*\)$/\1/p' | tail -1)"
if [[ -z "$rc" ]]; then
    echo "run.sh: the guest did not report an exit status (crash or timeout)" >&2
    exit 3
fi
exit "$rc"
