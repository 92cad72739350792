#!/usr/bin/env bash
# Image benchmarks: berth side by side with podman / skopeo+umoci, in one run.
#
#   1. pull + unpack of a large image from Debian's docker-registry on
#      127.0.0.1: berth pull vs podman pull vs skopeo copy + umoci unpack.
#      There is no internet here, so instead of a debootstrapped Debian
#      minbase the image is built locally from this host's files
#      (busybox + /usr/bin + /usr/sbin + /usr/share/doc + /etc, 4 layers,
#      several hundred MB) and pushed to the local registry by berth.
#   2. a fully cached rebuild: berth build vs podman build (same context,
#      same Containerfile, each warmed by one build first).
#   3. commit of a container with a 100 MB change: berth (store API through
#      crates/image/examples/commit_bench, the container's write simulated
#      through the mounted snapshot) vs podman commit.
#
# Needs root. Usage: bench/image.sh  (RUNS=3 by default). Prints medians and
# berth/peer ratios (< 1 means berth is faster).
set -euo pipefail

RUNS=${RUNS:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-imagecli}
cargo build --release -q -p berth-cli --manifest-path "$HERE/Cargo.toml"
cargo build --release -q -p berth-image --example commit_bench --manifest-path "$HERE/Cargo.toml"
BERTH="$CARGO_TARGET_DIR/release/berth"
COMMIT="$CARGO_TARGET_DIR/release/examples/commit_bench"

W=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
REG_PID=
cleanup() {
    local rc=$?
    if [ -n "$REG_PID" ]; then
        kill "$REG_PID" 2>/dev/null || true
        wait "$REG_PID" 2>/dev/null || true
    fi
    for d in "$W"/podman*; do
        [ -d "$d" ] && pod "$d" system reset -f >/dev/null 2>&1 || true
    done
    rm -rf "$W"
    exit "$rc"
}
trap cleanup EXIT

# podman with private storage (runc and the ulimits this host needs).
pod() {
    local d=$1; shift
    podman --root "$d/storage" --runroot "$d/run" --runtime runc \
        --cgroup-manager cgroupfs --events-backend none "$@"
}
PODRUN=(--network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# time_runs NAME PREPARE COMMAND: runs PREPARE (untimed) then COMMAND, RUNS times.
time_runs() {
    local name=$1 prep=$2 cmd=$3 t0 t1
    for _ in $(seq "$RUNS"); do
        bash -c "$prep" >/dev/null 2>&1
        t0=$(date +%s.%N)
        bash -c "$cmd" >/dev/null 2>"$W/err" || { echo "$name failed:"; cat "$W/err"; exit 1; }
        t1=$(date +%s.%N)
        echo "$t1 - $t0" | bc
    done | median > "$W/t.$name"
    printf '  %-28s %8.3f s\n' "$name" "$(cat "$W/t.$name")"
}
ratio() { printf '  berth / %-20s %8.2f\n' "$2" "$(echo "$(cat "$W/t.$1") / $(cat "$W/t.$2")" | bc -l)"; }

# ---------------------------------------------------------------- registry
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $W/registry}}
http: {addr: 127.0.0.1:$PORT}
EOF
/usr/bin/docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
REG=127.0.0.1:$PORT

# ---------------------------------------------------------------- the big image
echo "== building the test image from host files"
CTX=$W/bigctx
mkdir -p "$CTX/bb/bin" "$CTX/etc"
cp /bin/busybox "$CTX/bb/bin/busybox"
ln -s busybox "$CTX/bb/bin/sh"
cp -a /usr/bin "$CTX/usr-bin"
cp -a /usr/sbin "$CTX/usr-sbin"
cp -a /usr/share/doc "$CTX/doc"
cp -a /etc/. "$CTX/etc/" 2>/dev/null || true
cat > "$CTX/Containerfile" <<'EOF'
FROM scratch
COPY bb/ /
COPY etc/ /etc/
COPY usr-bin/ /usr/bin/
COPY usr-sbin/ /usr/sbin/
COPY doc/ /usr/share/doc/
CMD ["/bin/sh"]
EOF
SEED=$W/seed
"$BERTH" --root "$SEED" build -q -t "$REG/bench/big:1" "$CTX" >/dev/null
"$BERTH" --root "$SEED" push -q "$REG/bench/big:1" >/dev/null
SIZE=$("$BERTH" --root "$SEED" images --format '{{.Size}}' "$REG/bench/big")
echo "  image $REG/bench/big:1: $SIZE compressed, $(du -sh "$CTX" | cut -f1) unpacked, 5 layers"

echo "== 1. pull + unpack ($RUNS runs, median)"
time_runs berth-pull "rm -rf $W/p-berth" \
    "$BERTH --root $W/p-berth pull -q $REG/bench/big:1"
time_runs podman-pull "podman --root $W/podman-p/storage --runroot $W/podman-p/run system reset -f; rm -rf $W/podman-p" \
    "podman --root $W/podman-p/storage --runroot $W/podman-p/run pull -q --tls-verify=false $REG/bench/big:1"
time_runs skopeo+umoci "rm -rf $W/oci $W/bundle" \
    "skopeo copy -q --src-tls-verify=false docker://$REG/bench/big:1 oci:$W/oci:big && umoci unpack --image $W/oci:big $W/bundle"
ratio berth-pull podman-pull
ratio berth-pull skopeo+umoci
rm -rf "$W/oci" "$W/bundle"

# ---------------------------------------------------------------- cached rebuild
echo "== 2. fully cached rebuild ($RUNS runs, median)"
RCTX=$W/rctx
mkdir -p "$RCTX"
cp -a /usr/share/doc "$RCTX/doc"
cp -a /usr/share/perl5 "$RCTX/perl5" 2>/dev/null || mkdir -p "$RCTX/perl5"
cat > "$RCTX/Containerfile" <<'EOF'
FROM localhost/bench/base:1
ENV MODE=bench
WORKDIR /app
COPY doc/ /app/doc/
RUN find /app/doc -type f | wc -l > /app/count
COPY perl5/ /app/perl5/
RUN ls /app > /app/listing
CMD ["sh"]
EOF
RB=$W/r-berth
mkdir -p "$W/bbroot/bin" "$W/bbroot/etc"
cp /bin/busybox "$W/bbroot/bin/"
for a in sh find wc ls cat; do ln -sf busybox "$W/bbroot/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$W/bbroot/etc/passwd"
tar -C "$W/bbroot" -cf "$W/bb.tar" .
"$BERTH" --root "$RB" import "$W/bb.tar" localhost/bench/base:1 >/dev/null
"$BERTH" --root "$RB" save -o "$W/base.tar" localhost/bench/base:1
PR=$W/podman-r
pod "$PR" load -q -i "$W/base.tar" >/dev/null
"$BERTH" --root "$RB" build -q "$RCTX" >/dev/null
pod "$PR" build -q "${PODRUN[@]}" "$RCTX" >/dev/null
time_runs berth-rebuild true "$BERTH --root $RB build -q $RCTX"
time_runs podman-rebuild true \
    "podman --root $PR/storage --runroot $PR/run --runtime runc --cgroup-manager cgroupfs --events-backend none build -q ${PODRUN[*]} $RCTX"
ratio berth-rebuild podman-rebuild

# ---------------------------------------------------------------- commit
echo "== 3. commit of a container with a 100 MB change ($RUNS runs, median)"
for i in $(seq "$RUNS"); do "$COMMIT" "$RB" localhost/bench/base:1 100 | cut -d' ' -f1; done \
    | median > "$W/t.berth-commit"
printf '  %-28s %8.3f s\n' berth-commit "$(cat "$W/t.berth-commit")"
for i in $(seq "$RUNS"); do
    pod "$PR" rm -f c$i >/dev/null 2>&1 || true
    pod "$PR" run "${PODRUN[@]}" --name c$i localhost/bench/base:1 \
        sh -c 'head -c 104857600 /dev/urandom > /big.bin' >/dev/null
    t0=$(date +%s.%N)
    pod "$PR" commit -q c$i >/dev/null
    t1=$(date +%s.%N)
    pod "$PR" rm -f c$i >/dev/null
    echo "$t1 - $t0" | bc
done | median > "$W/t.podman-commit"
printf '  %-28s %8.3f s\n' podman-commit "$(cat "$W/t.podman-commit")"
ratio berth-commit podman-commit
