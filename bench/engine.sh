#!/usr/bin/env bash
# berth vs Podman, side by side, offline (run as root, after a release build):
#   1. `run --rm busybox true`: berth, podman (crun/runc default), and
#      podman driving berth's runtime (`--runtime berth-runtime`);
#   2. RSS of an idle detached container's monitor: berth-monitor vs conmon.
# Prints ratios; the goal is berth under a third of podman's time.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
BERTH=$BIN/berth
RUNTIME=$(realpath "$BIN/berth-runtime")
RUNS=${RUNS:-20}
NET=${NET:-none}
# Podman's default crun refuses hybrid cgroup hosts; runc works everywhere.
PODMAN_RUNTIME=${PODMAN_RUNTIME:-runc}
# Podman asks for RLIMIT_NOFILE/NPROC of 1048576, above many hosts' hard
# limits; give it ones every host allows (berth uses the caller's).
PODMAN_ULIMITS="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
for t in "$BERTH" "$RUNTIME" podman hyperfine; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (cargo build --release; .ci/deps)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
export BERTH_ROOT=$work/berth
P=(podman --root "$work/podman" --runroot "$work/podrun" --cgroup-manager cgroupfs --events-backend none)
cleanup() {
  "$BERTH" rm -f $("$BERTH" ps -aq) >/dev/null 2>&1 || true
  "${P[@]}" rm -af >/dev/null 2>&1 || true
  "$BERTH" system check -q >/dev/null 2>&1 || true
  umount -R "$work/podman/overlay" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# One busybox rootfs tarball for both engines.
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/busybox.tar" .
if "$BERTH" import --help >/dev/null 2>&1; then
  "$BERTH" import "$work/busybox.tar" busybox >/dev/null
else
  "$BERTH" __import-rootfs "$work/busybox.tar" busybox >/dev/null
fi
"${P[@]}" import "$work/busybox.tar" localhost/busybox >/dev/null

echo "== run --rm busybox true (network: $NET, $RUNS runs each)"
hyperfine -N -w 3 -r "$RUNS" --export-json "$work/times.json" \
  -n berth "$BERTH run --rm --network $NET busybox true" \
  -n podman "${P[*]} --runtime $PODMAN_RUNTIME run --rm --network $NET $PODMAN_ULIMITS localhost/busybox true" \
  -n podman+berth-runtime "${P[*]} --runtime $RUNTIME run --rm --network $NET $PODMAN_ULIMITS localhost/busybox true"

echo "== idle detached container: monitor RSS"
"$BERTH" run -d --name idle --network none busybox sleep 1000 >/dev/null
init=$("$BERTH" inspect -f '{{.State.Pid}}' idle)
mon=$(awk '{print $4}' "/proc/$init/stat")
berth_rss=$(awk '/VmRSS/ {print $2}' "/proc/$mon/status")
berth_pss=$(awk '/^Pss:/ {print $2}' "/proc/$mon/smaps_rollup")
"${P[@]}" --runtime "$PODMAN_RUNTIME" run -d --name idle --network none $PODMAN_ULIMITS localhost/busybox sleep 1000 >/dev/null
conmon=$("${P[@]}" inspect -f '{{.State.ConmonPid}}' idle)
conmon_rss=$(awk '/VmRSS/ {print $2}' "/proc/$conmon/status")
conmon_pss=$(awk '/^Pss:/ {print $2}' "/proc/$conmon/smaps_rollup")
echo "berth-monitor RSS: ${berth_rss} kB (PSS ${berth_pss} kB)   conmon RSS: ${conmon_rss} kB (PSS ${conmon_pss} kB)"

python3 - "$work/times.json" "$berth_rss" "$conmon_rss" "$PODMAN_RUNTIME" "$berth_pss" "$conmon_pss" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
b, p, pb = r["berth"], r["podman"], r["podman+berth-runtime"]
print(f"berth {b*1000:.1f} ms, podman ({sys.argv[4]}) {p*1000:.1f} ms, podman+berth-runtime {pb*1000:.1f} ms")
print(f"ratio berth/podman: {b/p:.3f} (goal < 0.333)")
print(f"ratio berth/(podman+berth-runtime): {b/pb:.3f}")
print(f"ratio berth-monitor RSS / conmon RSS: {int(sys.argv[2])/int(sys.argv[3]):.2f}")
print(f"ratio berth-monitor PSS / conmon PSS: {int(sys.argv[5])/int(sys.argv[6]):.2f}")
PY
