#!/bin/sh
# Runs inside the test VM as root (scripts/test-vm): says what kind of host this is, then brings a
# 1-node isolated cluster up from the offline bundle, shows it in machined, and destroys it.
set -eu
cd /opt/kube-spawn
export PATH="/opt/kube-spawn/.tools/node/node_modules/.bin:$PATH" KUBE_SPAWN_ARTIFACT_CACHE_DIR=/var/cache/kube-spawn-test CI=true
echo "host: cgroup $(stat -fc %T /sys/fs/cgroup), PID 1 $(cat /proc/1/comm), systemd $(systemctl is-system-running || true), kernel $(uname -r)"
cat >/tmp/vm.toml <<'TOML'
cluster-name = "vm"
nodes = 1

[kubernetes]
source = "/var/cache/kube-spawn-fixtures/kubernetes-v1.20.2"

[network]
egress = false

[runtime-config]
timeout = "20m"
TOML
started=$(date +%s)
bin/kube-spawn up --config /tmp/vm.toml
echo "up: $(($(date +%s) - started)) s"
machinectl list --no-pager
bin/kube-spawn status -c vm
bin/kube-spawn destroy -c vm
machinectl list --no-pager
