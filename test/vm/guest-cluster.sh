#!/bin/bash
# Runs inside the test VM as root (scripts/test-vm --script test/vm/guest-cluster.sh): a 2-node isolated
# cluster (1 control plane + 1 worker) on a real systemd host with machined. Checks that both nodes are
# machined machines (list, shell, poweroff), that a pod on the worker is reached from a pod on the
# control plane, that stop and start keep the pod, and that destroy leaves no machine, unit, cgroup,
# bridge, rule, mount or directory. Prints each step's time; exits non-zero at the first failure.
set -euo pipefail
cd /opt/kube-spawn
export PATH="/opt/kube-spawn/.tools/node/node_modules/.bin:$PATH" KUBE_SPAWN_CACHE_DIR=/var/cache/kube-spawn-test CI=true
BUNDLE=/var/cache/kube-spawn-fixtures/kubernetes-v1.20.2
CLUSTER=vm
CP=ks-$CLUSTER-cp
W1=ks-$CLUSTER-w1
ks() { bin/kube-spawn "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
t0=$(date +%s)
step() { echo "== $1 ($(($(date +%s) - t0)) s)"; }

step "host: cgroup $(stat -fc %T /sys/fs/cgroup), PID 1 $(cat /proc/1/comm), systemd $(systemctl --version | head -n1), kernel $(uname -r)"
cat >/tmp/vm.toml <<TOML
cluster-name = "$CLUSTER"
nodes = 2

[kubernetes]
source = "$BUNDLE"

[network]
egress = false

[runtime-config]
timeout = "30m"
TOML

step "up"
ks up --config /tmp/vm.toml >/tmp/up.log 2>&1 || { tail -40 /tmp/up.log; fail "up"; }
step "up done"
# Outputs are captured before grep -q reads them: with pipefail, a writer cut off by grep fails the pipe.
status=$(ks status -c $CLUSTER)
[[ "$status" == *"backend machined"* ]] || fail "the nodes do not run on the machined backend: $status"
machinectl list --no-pager
for m in $CP $W1; do
  [[ "$(machinectl show "$m" --property=Unit --value)" == "kube-spawn-$m.service" ]] || fail "$m is not registered with machined"
done
[[ "$(machinectl shell $W1 /bin/sh -c 'hostname' 2>/dev/null | tr -d '\r' | tail -n1)" == "$W1" ]] || fail "machinectl shell $W1"

KUBECONFIG=$(ks kubeconfig -c $CLUSTER)
export KUBECONFIG
kubectl() { "$BUNDLE/bin/kubectl" --request-timeout=60s "$@"; }
kubectl get nodes -o wide
pod() { # pod NAME NODE COMMAND
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  nodeName: $2
  containers:
  - {name: main, image: docker.io/library/busybox:1.35, imagePullPolicy: Never, command: ["sh", "-c", "$3"]}
YAML
}
step "pods"
pod web $W1 'mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 8080 -h /www' | kubectl apply -f -
pod client $CP 'sleep 100000' | kubectl apply -f -
kubectl wait --for=condition=Ready pod/web pod/client --timeout=600s || { kubectl describe pods; fail "the pods did not run"; }
web_ip=$(kubectl get pod web -o jsonpath='{.status.podIP}')
reach() { [[ "$(kubectl exec client -- sh -c "timeout 10 wget -qO- http://$web_ip:8080/" 2>&1)" == *hello-from-web* ]]; }
reach || fail "the client pod on $CP does not reach the web pod on $W1 ($web_ip)"
step "pod-to-pod across nodes works"

step "stop"
ks stop -c $CLUSTER
[[ "$(machinectl list --no-pager)" != *"$CP"* ]] || fail "machined still lists $CP after stop"
step "start"
ks start -c $CLUSTER >/tmp/start.log 2>&1 || { tail -40 /tmp/start.log; fail "start"; }
kubectl wait --for=condition=Ready pod/web pod/client --timeout=600s || { kubectl describe pods; fail "the pods did not come back"; }
web_ip=$(kubectl get pod web -o jsonpath='{.status.podIP}')
reach || fail "pod-to-pod after start"
step "stop and start kept the pods"

running() { # running NODE: exits 0 while kube-spawn status says the node runs
  ks status -c $CLUSTER --json | node -e 'const s = JSON.parse(require("fs").readFileSync(0, "utf8")); process.exit(s.machines.find((m) => m.name === process.argv[1])?.running ? 0 : 1)' "$1"
}
machinectl poweroff $W1
for _ in $(seq 1 120); do running $W1 || break; sleep 1; done
! running $W1 || fail "machinectl poweroff $W1 did not stop it"
step "machinectl poweroff stopped $W1"

step "destroy"
ks destroy -c $CLUSTER
left=""
[[ -z "$(machinectl list --no-legend --no-pager)" ]] || left+=" machines"
[[ -z "$(systemctl list-units --all --no-legend 'kube-spawn-*')" ]] || left+=" units"
[[ -z "$(find /sys/fs/cgroup -name "*ks-$CLUSTER-*" 2>/dev/null)" ]] || left+=" cgroups"
! ip link show ks-$CLUSTER >/dev/null 2>&1 || left+=" bridge"
[[ "$(iptables-save)" != *"kube-spawn:$CLUSTER"* ]] || left+=" iptables"
! grep -q "/var/lib/kube-spawn/$CLUSTER" /proc/mounts || left+=" mounts"
[[ ! -e /var/lib/kube-spawn/$CLUSTER ]] || left+=" directory"
[[ -z "$left" ]] || fail "destroy left:$left"
step "destroy left nothing"
echo "PASS"
