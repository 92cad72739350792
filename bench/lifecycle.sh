#!/usr/bin/env bash
# Container lifecycle cost, berth-runtime vs runc vs crun, side by side in one
# run: `run` of a busybox `true` container, and create+start+delete. Prints
# hyperfine medians, the ratio berth/crun, and each runtime's peak RSS.
#
# Usage (as root): bench/lifecycle.sh [RUNS]   (default 50)
#
# crun 1.8 refuses this host's hybrid cgroup layout, so the whole comparison
# runs in a private mount namespace where /sys/fs/cgroup/unified is
# unmounted: every runtime sees the same (v1) layout.
set -euo pipefail
RUNS=${1:-50}
HERE=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${BERTH_BENCH_INNER:-}" ]]; then
  "$HERE/scripts/build-static.sh" -q -p berth-runtime-cli
  exec unshare -m env BERTH_BENCH_INNER=1 "$0" "$@"
fi
mount --make-rprivate /
umount /sys/fs/cgroup/unified 2>/dev/null || true

BERTH="$HERE/target/x86_64-unknown-linux-gnu/release/berth-runtime"
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'for rt in berth runc crun; do "${BIN[$rt]}" --root "$WORK/state-$rt" delete -f bench-$rt >/dev/null 2>&1 || true; done; rm -rf "$WORK"' EXIT
declare -A BIN=([berth]="$BERTH" [runc]="$(command -v runc)" [crun]="$(command -v crun)")

# A busybox bundle whose process is `true`.
mkdir -p "$WORK/bundle/rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$WORK/bundle/rootfs/bin/"
ln -s busybox "$WORK/bundle/rootfs/bin/true"
ln -s busybox "$WORK/bundle/rootfs/bin/sh"
(cd "$WORK/bundle" && "$BERTH" spec)
python3 - "$WORK/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["ociVersion"] = "1.0.2"  # crun 1.8 knows no later version
json.dump(c, open(p, "w"))
PY

cmds_run=() cmds_life=()
for rt in berth runc crun; do
  b=${BIN[$rt]} r="$WORK/state-$rt"
  cmds_run+=("$b --root $r run --bundle $WORK/bundle bench-$rt")
  cmds_life+=("$b --root $r create --bundle $WORK/bundle bench-$rt && $b --root $r start bench-$rt && $b --root $r delete -f bench-$rt")
done

echo "== run (busybox true), $RUNS runs each"
hyperfine -N -w 5 -r "$RUNS" --export-json "$WORK/run.json" -n berth -n runc -n crun "${cmds_run[@]}" >/dev/null
echo "== create + start + delete, $RUNS runs each"
hyperfine -w 5 -r "$RUNS" --export-json "$WORK/life.json" -n berth -n runc -n crun "${cmds_life[@]}" >/dev/null

# Peak RSS of one `run` of each runtime (GNU time's maximum resident set size).
for rt in berth runc crun; do
  /usr/bin/time -f "%M" -o "$WORK/rss-$rt" ${BIN[$rt]} --root "$WORK/state-$rt" run --bundle "$WORK/bundle" bench-$rt
done

python3 - "$WORK" <<'PY'
import json, sys, os
w = sys.argv[1]
def medians(f):
    return {r["command"]: r["median"] * 1000 for r in json.load(open(os.path.join(w, f)))["results"]}
run, life = medians("run.json"), medians("life.json")
rss = {rt: int(open(os.path.join(w, f"rss-{rt}")).read().split()[-1]) / 1024 for rt in ("berth", "runc", "crun")}
print(f"{'':8} {'run ms':>9} {'c+s+d ms':>9} {'peak RSS MiB':>13}")
for rt in ("berth", "runc", "crun"):
    print(f"{rt:8} {run[rt]:9.2f} {life[rt]:9.2f} {rss[rt]:13.2f}")
print(f"ratio berth/crun: run {run['berth']/run['crun']:.2f}, create+start+delete {life['berth']/life['crun']:.2f}, peak RSS {rss['berth']/rss['crun']:.2f}")
print(f"ratio berth/runc: run {run['berth']/run['runc']:.2f}, create+start+delete {life['berth']/life['runc']:.2f}, peak RSS {rss['berth']/rss['runc']:.2f}")
PY
