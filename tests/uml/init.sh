#!/bin/sh
# PID 1 of the user-mode-linux guest that runs berth's cgroup suite on a
# cgroup-v2-only kernel (see run.sh). The host's / is the guest's root
# (hostfs, read-write), so everything the guest creates goes to tmpfs
# mounts (/tmp, /run) or to the guest's own cgroupfs.
#
# The kernel passes unknown NAME=value boot parameters to init as
# environment: BERTH_UML_CMD names the bash script to run.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
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
