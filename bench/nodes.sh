#!/usr/bin/env bash
# Node benchmarks: prints figures, asserts nothing. Run as root after scripts/setup.sh:
#
#   bench/nodes.sh [--skip-cold] [--sizes "1 3 5"]
#
#   - base image: `create` with a throwaway (empty) cache, which builds the Debian image with
#     debootstrap, against `create` with the shared cache, where the image is reused;
#   - boot: for each N, `create` then `start --skip-cluster-init` of an N-node cluster, and the time
#     until every node's systemd runs (start returns then);
#   - disk: what each node adds on the host after boot (du -x of its directory: own layer, work dir
#     and the runtime/kubelet data dirs; the shared base image is not counted).
#
# Every cluster is isolated (egress = false) and named kst-<id>b*, in state roots
# /tmp/kube-spawn-test-<id>-bench-*; the exit trap removes them all (test/integration/cleanup.sh).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZES="1 3 5"
COLD=1
while (($#)); do
  case "$1" in
    --skip-cold) COLD=0 ;;
    --sizes) SIZES="$2"; shift ;;
    *) echo "usage: $0 [--skip-cold] [--sizes \"1 3 5\"]" >&2; exit 2 ;;
  esac
  shift
done

[[ $(id -u) -eq 0 ]] || { echo "bench: run me as root" >&2; exit 1; }
[[ -x "$REPO/.tools/node/node_modules/.bin/node" ]] && export PATH="$REPO/.tools/node/node_modules/.bin:$PATH"
command -v node >/dev/null || { echo "bench: no node on PATH (run scripts/setup.sh)" >&2; exit 1; }

ID="${KST_RUN_ID:-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}"
SHARED_CACHE="${KUBE_SPAWN_TEST_CACHE_DIR:-/var/cache/kube-spawn-test}"
WORK=$(mktemp -d "/tmp/kube-spawn-test-$ID-bench-XXXXXX")

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for d in "$WORK"/root*/kst-*/; do
    [[ -d "$d" ]] && run_cli destroy --dir "${d%/kst-*/}" -c "$(basename "$d")" >/dev/null 2>&1 || true
  done
  bash "$REPO/test/integration/cleanup.sh" "kst-$ID" "$WORK" >/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The offline Kubernetes bundle: create fetches kubeadm, kubelet and kubectl from it (no download).
PREPARE="${KUBE_SPAWN_SHARED_DIR:-$REPO/../shared}/fixtures/kubernetes/prepare-bundle"
BUNDLE=$("$PREPARE" | tail -n1)

run_cli() { CI=true node "$REPO/bin/run.js" "$@"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

definition() { # definition NAME NODES -> path of an isolated definition
  local file="$WORK/$1.toml"
  cat > "$file" <<EOF
cluster-name = "$1"
nodes = $2

[network]
egress = false

[kubernetes]
source = "$BUNDLE"
EOF
  echo "$file"
}

echo "kube-spawn node benchmarks on $(nproc) cores, $(uname -r), node $(node --version)"
echo

# --- base image --------------------------------------------------------------------------------------
echo "== base image (create of a 1-node cluster)"
if ((COLD)); then
  name="kst-${ID}bc"
  cold_cache="$WORK/cold-cache"
  t=$(now)
  out=$(KUBE_SPAWN_ARTIFACT_CACHE_DIR="$cold_cache" run_cli create --dir "$WORK/root-cold" --config "$(definition "$name" 1)" 2>&1) ||
    { echo "$out" | tail -20; exit 1; }
  total=$(elapsed "$t")
  built=$(echo "$out" | grep -o 'base image [^ ]* in [0-9]* s' | tail -n1 || true)
  echo "cold (empty cache, debootstrap):  ${total} s for create${built:+; $built}"
  echo "image size: $(du -sh "$cold_cache/images" | cut -f1)"
  KUBE_SPAWN_ARTIFACT_CACHE_DIR="$cold_cache" run_cli destroy --dir "$WORK/root-cold" -c "$name" >/dev/null
  rm -rf "$cold_cache"
fi
# Warm the shared cache if it is empty, so that the next figure is the cached one.
name="kst-${ID}bw"
KUBE_SPAWN_ARTIFACT_CACHE_DIR="$SHARED_CACHE" run_cli create --dir "$WORK/root-warm" --config "$(definition "$name" 1)" >/dev/null
KUBE_SPAWN_ARTIFACT_CACHE_DIR="$SHARED_CACHE" run_cli destroy --dir "$WORK/root-warm" -c "$name" >/dev/null
name="kst-${ID}bh"
t=$(now)
KUBE_SPAWN_ARTIFACT_CACHE_DIR="$SHARED_CACHE" run_cli create --dir "$WORK/root-hot" --config "$(definition "$name" 1)" >/dev/null
echo "cached (shared cache):            $(elapsed "$t") s for create"
KUBE_SPAWN_ARTIFACT_CACHE_DIR="$SHARED_CACHE" run_cli destroy --dir "$WORK/root-hot" -c "$name" >/dev/null
echo

# --- boot and disk -----------------------------------------------------------------------------------
echo "== boot (isolated, --skip-cluster-init; the image is cached)"
printf '%-6s %-10s %-10s %-10s %-10s %s\n' NODES CREATE START STOP DESTROY "DISK PER NODE (MiB, du -x after boot)"
for n in $SIZES; do
  name="kst-${ID}b$n"
  root="$WORK/root-$n"
  export KUBE_SPAWN_ARTIFACT_CACHE_DIR="$SHARED_CACHE"
  t=$(now)
  run_cli create --dir "$root" --config "$(definition "$name" "$n")" >/dev/null
  create_s=$(elapsed "$t")
  t=$(now)
  run_cli start --skip-cluster-init --dir "$root" -c "$name" >/dev/null
  start_s=$(elapsed "$t")
  disk=()
  for node in "$root/$name/nodes"/*/; do
    # -x: the merged root is an overlay mount (another file system) and is not counted
    disk+=("$(du -sx --block-size=1M "$node" | cut -f1)")
  done
  t=$(now)
  run_cli stop --dir "$root" -c "$name" >/dev/null
  stop_s=$(elapsed "$t")
  t=$(now)
  run_cli destroy --dir "$root" -c "$name" >/dev/null
  destroy_s=$(elapsed "$t")
  unset KUBE_SPAWN_ARTIFACT_CACHE_DIR
  printf '%-6s %-10s %-10s %-10s %-10s %s\n' "$n" "${create_s} s" "${start_s} s" "${stop_s} s" "${destroy_s} s" "${disk[*]}"
done
echo
echo "base image in the shared cache: $(du -sh "$SHARED_CACHE/images" | cut -f1) ($SHARED_CACHE/images)"
