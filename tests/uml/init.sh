#!/bin/sh
# PID 1 of the user-mode-linux guest that runs berth's cgroup suite on a
# cgroup-v2-only kernel (see run.sh). The host's / is the guest's root
# (hostfs, read-write), so everything the guest creates goes to tmpfs
# mounts (/tmp, /run) or to the guest's own cgroupfs — except under the
# host paths run.sh asks to keep (a checkout under /tmp).
#
# The kernel passes unknown NAME=value boot parameters to init as
# environment: BERTH_UML_CMD names the bash script to run.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
# run.sh's work dir (on the host's disk) holds the command, the list of
# host paths under /tmp and /run to keep, and two mount points for the
# host's /tmp and /run before the guest's tmpfs mounts hide them.
work="$(dirname "$BERTH_UML_CMD")"
mount --bind /tmp "$work/host-tmp"
mount --bind /run "$work/host-run"
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
while read -r keep; do
    case "$keep" in
        /tmp/*) src="$work/host-tmp/${keep#/tmp/}" ;;
        /run/*) src="$work/host-run/${keep#/run/}" ;;
        *) continue ;;
    esac
    mkdir -p "$keep" && mount --bind "$src" "$keep"
done < "$work/keep"
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# Delegate every controller the kernel has to child cgroups.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control
done
echo "BERTH_UML_KERNEL=$(uname -r) controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
if [ -n "$BERTH_UML_CMD" ] && [ -f "$BERTH_UML_CMD" ]; then
    bash "$BERTH_UML_CMD"
    rc=$?
else
    echo "BERTH_UML_CMD not set or missing: $BERTH_UML_CMD"
    rc=127
fi
echo "BERTH_UML_EXIT=$rc"
halt -f
