#!/usr/bin/env bash
# berth-net benchmark: iperf3 TCP throughput between two containers on one
# berth network, compared with
#   - the ceiling: two plain netns joined by a veth+bridge made by hand,
#   - podman's default network (netavark),
# plus throughput through a published port, and the time to set up and tear
# down one endpoint (berth vs the same steps done with ip(8)). Prints ratios.
#
# Needs root, iperf3, podman (optional: skipped if it cannot run), python3.
# Traffic stays between namespaces this script creates and the host's own
# bridges/loopback. Usage: bench/network.sh [SECONDS_PER_RUN] (default 5).
set -euo pipefail

DUR=${1:-5}
CHURN=${CHURN:-50}
PUB_PORT=${PUB_PORT:-15201}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[ "$(id -u)" = 0 ] || { echo "network.sh: needs root" >&2; exit 1; }
for t in iperf3 python3 nsenter ip; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done

echo "building netbench (release)..." >&2
cargo build -q --release -p berth-net --example netbench
NB=$CARGO_TARGET_DIR/release/examples/netbench

WORK=$(mktemp -d /tmp/berth-netbench.XXXXXX)
TAG=$$
HA=bnA$TAG HB=bnB$TAG HBR=bbh$TAG
PIDS=()
PODS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    "$NB" teardown "$WORK" >/dev/null 2>&1
    ip netns del "$HA" 2>/dev/null; ip netns del "$HB" 2>/dev/null; ip link del "$HBR" 2>/dev/null
    for c in "${PODS[@]}"; do podman rm -f -t0 "$c" >/dev/null 2>&1; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# iperf3 client JSON → Gbit/s received.
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }

# run_pair SERVER_PREFIX CLIENT_PREFIX TARGET_IP PORT: one-shot server, one client run.
run_pair() {
    local srv=$1 cli=$2 ip=$3 port=$4
    $srv iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local sp=$!
    PIDS+=("$sp")
    sleep 0.3
    timeout $((DUR + 20)) $cli iperf3 -c "$ip" -p "$port" -t "$DUR" -J | gbps
    wait "$sp" 2>/dev/null || true
}

# --- berth ---
eval "$("$NB" setup "$WORK" "$PUB_PORT")"
[ -n "${S1:-}" ] || { echo "netbench setup failed" >&2; exit 1; }
IN1="nsenter --net=$S1 --"
IN2="nsenter --net=$S2 --"
BERTH=$(run_pair "$IN2" "$IN1" "$IP2" 5201)
BERTH_PUB=$(run_pair "$IN2" "$IN1" "$GW" "$PUB_PORT")
BERTH_LO=$(run_pair "$IN2" "" 127.0.0.1 "$PUB_PORT")

# --- ceiling: by hand ---
ip netns add "$HA"; ip netns add "$HB"
ip link add "$HBR" type bridge; ip addr add 10.199.239.1/24 dev "$HBR"; ip link set "$HBR" up
i=0
for ns in "$HA" "$HB"; do
    i=$((i + 1))
    ip link add "vh$i$TAG" type veth peer name eth0 netns "$ns"
    ip link set "vh$i$TAG" master "$HBR" up
    ip -n "$ns" addr add "10.199.239.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up; ip -n "$ns" link set lo up
done
CEIL=$(run_pair "ip netns exec $HB" "ip netns exec $HA" 10.199.239.3 5201)

# --- podman default network ---
PODMAN=n/a
if command -v podman >/dev/null; then
    R=$WORK/rootfs; mkdir -p "$R/bin"; cp /bin/busybox "$R/bin/"; ln -sf busybox "$R/bin/sleep"
    P="podman --runtime runc --cgroup-manager cgroupfs"
    ok=1
    for c in bench-a-$TAG bench-b-$TAG; do
        PODS+=("$c")
        # runc + cgroupfs + explicit rlimits: what works on a hybrid-cgroup host
        $P run -d --name "$c" --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --rootfs "$R" /bin/sleep 600 >/dev/null || ok=0
    done
    if [ $ok = 1 ]; then
        PA=$(podman inspect -f '{{.State.Pid}}' "bench-a-$TAG")
        PB=$(podman inspect -f '{{.State.Pid}}' "bench-b-$TAG")
        IPB=$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "bench-b-$TAG")
        PODMAN=$(run_pair "nsenter -t $PB -n --" "nsenter -t $PA -n --" "$IPB" 5201)
    else
        echo "podman could not start a container here: skipped" >&2
    fi
fi

# --- endpoint setup / teardown ---
eval "$("$NB" churn "$WORK" "$CHURN")"
HAND=$(python3 - "$HA" "$HBR" "$CHURN" "$TAG" <<'EOF'
import subprocess, sys, time
ns, br, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
up = down = 0.0
for _ in range(n):
    t = time.perf_counter()
    for cmd in (f"ip link add vz{tag} type veth peer name eth1 netns {ns}", f"ip link set vz{tag} master {br} up",
                f"ip -n {ns} addr add 10.199.239.50/24 dev eth1", f"ip -n {ns} link set eth1 up"):
        subprocess.run(cmd.split(), check=True)
    up += time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(f"ip link del vz{tag}".split(), check=True)
    down += time.perf_counter() - t
print("%.3f %.3f" % (up * 1000 / n, down * 1000 / n))
EOF
)
HAND_UP=${HAND% *} HAND_DOWN=${HAND#* }

# Podman's cost of one endpoint: a `run --rm true` on its default network
# minus the same run with --network none (netavark's setup + teardown).
PODMAN_NET=n/a
if [ "$PODMAN" != n/a ]; then
    ln -sf busybox "$WORK/rootfs/bin/true"
    PODMAN_NET=$(python3 - "$CHURN" "$WORK/rootfs" <<'EOF2'
import statistics, subprocess, sys, time
n, rootfs = max(5, int(sys.argv[1]) // 4), sys.argv[2]
base = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "run", "--rm",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
def med(extra):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(base + extra + ["--rootfs", rootfs, "/bin/true"], check=True, stdout=subprocess.DEVNULL)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000
print("%.3f" % max(0.0, med([]) - med(["--network", "none"])))
EOF2
) || PODMAN_NET=n/a
fi

ratio() { python3 -c "import sys; a,b=sys.argv[1],sys.argv[2]; print('n/a' if 'n/a' in (a,b) or float(b)==0 else '%.2f' % (float(a)/float(b)))" "$1" "$2"; }
echo
echo "TCP throughput, ${DUR}s runs (Gbit/s)"
printf '  %-42s %8s\n' "berth: container → container" "$BERTH"
printf '  %-42s %8s\n' "ceiling: netns → netns, veth+bridge by hand" "$CEIL"
printf '  %-42s %8s\n' "podman default network" "$PODMAN"
printf '  %-42s %8s\n' "berth: container → published port (gw)" "$BERTH_PUB"
printf '  %-42s %8s\n' "berth: host 127.0.0.1 → published port" "$BERTH_LO"
echo "Ratios"
printf '  %-42s %8s\n' "berth / ceiling" "$(ratio "$BERTH" "$CEIL")"
printf '  %-42s %8s\n' "berth / podman" "$(ratio "$BERTH" "$PODMAN")"
printf '  %-42s %8s\n' "published (gw) / direct" "$(ratio "$BERTH_PUB" "$BERTH")"
printf '  %-42s %8s\n' "published (127.0.0.1) / direct" "$(ratio "$BERTH_LO" "$BERTH")"
echo "One endpoint, mean of $CHURN (ms)"
printf '  %-42s %8s\n' "berth attach (db + veth + addr + route)" "$SETUP_MS"
printf '  %-42s %8s\n' "berth detach" "$TEARDOWN_MS"
printf '  %-42s %8s\n' "by hand with ip(8): setup" "$HAND_UP"
printf '  %-42s %8s\n' "by hand with ip(8): teardown" "$HAND_DOWN"
printf '  %-42s %8s\n' "podman: endpoint setup + teardown (run delta)" "$PODMAN_NET"
printf '  %-42s %8s\n' "setup berth / by hand" "$(ratio "$SETUP_MS" "$HAND_UP")"
printf '  %-42s %8s\n' "teardown berth / by hand" "$(ratio "$TEARDOWN_MS" "$HAND_DOWN")"
BOTH=$(python3 -c "import sys; print(float(sys.argv[1]) + float(sys.argv[2]))" "$SETUP_MS" "$TEARDOWN_MS")
printf '  %-42s %8s\n' "setup+teardown berth / podman" "$(ratio "$BOTH" "$PODMAN_NET")"
