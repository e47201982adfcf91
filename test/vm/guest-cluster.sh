#!/bin/bash
# Runs inside the test VM as root (scripts/test-vm, its default script): a 2-node isolated cluster (1
# control plane + 1 worker) of Debian $KUBE_SPAWN_VM_SUITE nodes (default bookworm) on a real systemd
# host with machined. Checks that both nodes are machined machines (list, shell, poweroff), that exec
# runs inside the node's unit, that a pod on the worker is reached from a pod on the control plane,
# that stop and start keep the pods, and that destroy leaves no machine, unit, cgroup, bridge, rule,
# mount or directory. Prints each step's time and kube-spawn's stage times; exits non-zero at the
# first failure. kube-spawn's own waits are not raised here: it scales them under emulation itself.
set -euo pipefail
cd /opt/kube-spawn
export PATH="/opt/kube-spawn/.tools/node/node_modules/.bin:$PATH" KUBE_SPAWN_ARTIFACT_CACHE_DIR=/var/cache/kube-spawn-test CI=true
BUNDLE=/var/cache/kube-spawn-fixtures/kubernetes-v1.20.2
CLUSTER=vm
SUITE=${KUBE_SPAWN_VM_SUITE:-bookworm}
CP=ks-$CLUSTER-cp
W1=ks-$CLUSTER-w1
ks() { bin/kube-spawn "$@"; }
fail() {
  echo "FAIL: $*"
  # What kube-spawn saved, for scripts/test-vm --keep; and the kubelets' last words, for CI's log.
  if [[ -n "${KUBE_SPAWN_VM_SHARE:-}" && -d /var/lib/kube-spawn/$CLUSTER/logs ]]; then
    cp -a /var/lib/kube-spawn/$CLUSTER/logs "$KUBE_SPAWN_VM_SHARE/kube-spawn-logs" || true
  fi
  for node in $CP $W1; do
    echo "-- $node: journalctl -u kubelet (last 25 lines)"
    timeout 60 bin/kube-spawn exec $node -- journalctl -u kubelet -n 25 --no-pager 2>&1 || true
  done
  exit 1
}
t0=$(date +%s)
step() { echo "== $1 ($(($(date +%s) - t0)) s)"; }

step "host: cgroup $(stat -fc %T /sys/fs/cgroup), PID 1 $(cat /proc/1/comm), systemd $(systemctl --version | head -n1), kernel $(uname -r)"
# A fresh host: nothing has loaded overlay or br_netfilter yet; kube-spawn loads them itself.
for module in overlay br_netfilter; do
  ! grep -qw "^$module" /proc/modules || fail "$module is loaded before kube-spawn ran: the guest is not fresh"
done
ks host || fail "kube-spawn host finds a problem"
cat >/tmp/vm.toml <<TOML
cluster-name = "$CLUSTER"
nodes = 2

[kubernetes]
source = "$BUNDLE"

[network]
egress = false

[plugin-config.image-debian]
suite = "$SUITE"
TOML

step "up"
ks up --config /tmp/vm.toml >/tmp/up.log 2>&1 || { tail -40 /tmp/up.log; fail "up"; }
step "up done"
for module in overlay br_netfilter; do grep -qw "^$module" /proc/modules || fail "kube-spawn did not load $module"; done
echo "kube-spawn's stages:"
grep -E '^✔ [a-z-]+ \[' /tmp/up.log | sed 's/^/  /'
grep -F 'Checked the host' /tmp/up.log | sed 's/^/  /'
# Outputs are captured before grep -q reads them: with pipefail, a writer cut off by grep fails the pipe.
status=$(ks status -c $CLUSTER)
[[ "$status" == *"backend machined"* ]] || fail "the nodes do not run on the machined backend: $status"
machinectl list --no-pager
for m in $CP $W1; do
  [[ "$(machinectl show "$m" --property=Unit --value)" == "kube-spawn-$m.service" ]] || fail "$m is not registered with machined"
done
[[ "$(machinectl shell $W1 /bin/sh -c 'hostname' 2>/dev/null | tr -d '\r' | tail -n1)" == "$W1" ]] || fail "machinectl shell $W1"
node_systemd=$(ks exec -c $CLUSTER $CP -- systemctl --version)
node_systemd=${node_systemd%%$'\n'*}
echo "node $CP: $node_systemd, $(ks exec -c $CLUSTER $CP -- sh -c '. /etc/os-release; echo $PRETTY_NAME'), $(ks exec -c $CLUSTER $CP -- containerd --version)"
case "$SUITE" in trixie) [[ "$node_systemd" == "systemd 257"* ]] || fail "a trixie node should run systemd 257: $node_systemd" ;; esac
rc=0
ks exec -c $CLUSTER $W1 -- sh -c 'exit 7' || rc=$?
[[ $rc == 7 ]] || fail "exec should pass the exit code 7 through, got $rc"
ks exec -c $CLUSTER $W1 -- sleep 4242 &
exec_pid=""
exec_cli=$!
# Under emulation the CLI alone takes about 15 s to start.
for _ in $(seq 1 240); do
  exec_pid=$(pgrep -f '^(/usr/bin/)?sleep 4242$' || true) # systemd runs it as /usr/bin/sleep
  [[ -n "$exec_pid" ]] && break
  kill -0 "$exec_cli" 2>/dev/null || fail "kube-spawn exec of the sleep ended early"
  sleep 0.5
done
[[ -n "$exec_pid" ]] || fail "the exec'd sleep did not start within 120 s"
exec_cgroup=$(cat /proc/"$exec_pid"/cgroup)
kill "$exec_pid"
wait || true
# The node's unit on cgroup v2; on cgroup v1 the node's own subtree kube-spawn/<node> (docs/nodes.md).
[[ "$exec_cgroup" == *"/kube-spawn-$W1.service/"*run-*.service* || "$exec_cgroup" == *"/kube-spawn/$W1/"*run-*.service* ]] ||
  fail "kube-spawn exec ran outside the node's cgroup: $exec_cgroup"
echo "exec runs in the node's cgroup: $exec_cgroup"
kubelet_pid=$(pgrep -f -n '/kubelet .*--node-ip=10' | head -n1 || true)
[[ -z "$kubelet_pid" ]] || echo "a kubelet's cgroup: $(cat /proc/"$kubelet_pid"/cgroup); kubepods at: $(find /sys/fs/cgroup -maxdepth 6 -type d -name kubepods 2>/dev/null | head -n2 | tr '\n' ' ')"

KUBECONFIG=$(ks kubeconfig -c $CLUSTER)
export KUBECONFIG
kubectl() { "$BUNDLE/bin/kubectl" --request-timeout=60s "$@"; }

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
# Under full emulation the kubelet may restart a slow API server (its liveness probe fails): wait until it
# answers again, and show the control plane's containers when it does not.
api_ready() {
  local waited=0
  for _ in $(seq 1 60); do
    kubectl get --raw /readyz >/dev/null 2>&1 && { ((waited == 0)) || echo "the API server answers again after ${waited} s"; return 0; }
    ((waited > 0)) || { echo "the API server does not answer; waiting (control plane as it is now:)"; control_plane_logs; }
    sleep 5
    waited=$((waited + 5))
  done
  control_plane_logs
  fail "the API server did not answer within 300 s"
}
control_plane_logs() {
  ks exec -c $CLUSTER $CP -- ctr -n k8s.io tasks ls 2>&1 | tail -20 || true
  ks exec -c $CLUSTER $CP -- sh -c 'for f in /var/log/pods/kube-system_kube-apiserver*/*/*.log /var/log/pods/kube-system_etcd*/*/*.log; do echo "--- $f"; tail -n 15 "$f"; done' 2>&1 | cut -c1-300 || true
  ks exec -c $CLUSTER $CP -- journalctl -u kubelet --no-pager -n 40 2>&1 | cut -c1-300 || true
}
apply_pod() { # apply_pod NAME NODE COMMAND: retried once the API server answers again
  for _ in 1 2 3; do
    pod "$@" | kubectl apply -f - && return 0
    api_ready
  done
  fail "kubectl apply of pod $1 failed three times"
}
api_ready
kubectl get nodes -o wide
step "pods"
apply_pod web $W1 'mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 8080 -h /www'
apply_pod client $CP 'sleep 100000'
kubectl wait --for=condition=Ready pod/web pod/client --timeout=600s || { kubectl describe pods; fail "the pods did not run"; }
web_ip=$(kubectl get pod web -o jsonpath='{.status.podIP}')
# kubectl exec goes through the API server and the kubelet, which the emulated guest can keep waiting: the last answer is kept.
reach() {
  reach_output=$(kubectl exec client -- sh -c "timeout 10 wget -qO- http://$web_ip:8080/" 2>&1)
  [[ "$reach_output" == *hello-from-web* ]]
}
reached=false
for _ in 1 2 3; do
  if reach; then reached=true; break; fi
  api_ready
done
$reached || fail "the client pod on $CP does not reach the web pod on $W1 ($web_ip) in three tries; the last said: $reach_output"
web_uid=$(kubectl get pod web -o jsonpath='{.metadata.uid}')
step "pod-to-pod across nodes works"

step "stop"
ks stop -c $CLUSTER
[[ "$(machinectl list --no-pager)" != *"$CP"* ]] || fail "machined still lists $CP after stop"
step "start"
ks start -c $CLUSTER >/tmp/start.log 2>&1 || { tail -40 /tmp/start.log; fail "start"; }
# The pods' Ready conditions read right after start are the ones from before the stop (no controller
# ran while the cluster was stopped), and the sandbox gets a new IP: poll with the pod's current IP.
[[ "$(kubectl get pod web -o jsonpath='{.metadata.uid}')" == "$web_uid" ]] || fail "the web pod is not the same object after start"
reached=false
for _ in $(seq 1 60); do
  web_ip=$(kubectl get pod web -o jsonpath='{.status.podIP}' 2>/dev/null || true)
  if [[ -n "$web_ip" ]] && reach; then reached=true; break; fi
  sleep 5
done
$reached || { kubectl get pods -o wide; kubectl describe pods | tail -40; fail "pod-to-pod after start (web at ${web_ip:-no IP})"; }
step "stop and start kept the pods (web $web_ip)"

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
units=$(systemctl list-units --all --no-legend "kube-spawn-ks-$CLUSTER-*") # the nodes' units, not this test's runner
[[ -z "$units" ]] || left+=" units ($units)"
[[ -z "$(find /sys/fs/cgroup -name "*ks-$CLUSTER-*" 2>/dev/null)" ]] || left+=" cgroups"
! ip link show ks-$CLUSTER >/dev/null 2>&1 || left+=" bridge"
[[ "$(iptables-save)" != *"kube-spawn:$CLUSTER"* ]] || left+=" iptables"
! grep -q "/var/lib/kube-spawn/$CLUSTER" /proc/mounts || left+=" mounts"
[[ ! -e /var/lib/kube-spawn/$CLUSTER ]] || left+=" directory"
[[ -z "$left" ]] || fail "destroy left:$left"
step "destroy left nothing"
echo "PASS"
