#!/usr/bin/env bash
# Prepares this machine to build, run and test kube-spawn. Run as root on Debian 12, from anywhere:
#
#   sudo scripts/setup.sh
#
# 1. installs the Debian packages kube-spawn and its tests need (only the missing ones);
# 2. makes sure a Node.js new enough for the project is available, installing Node 22 from the npm
#    registry's `node` package into .tools/node (project-local) when the one on PATH is too old;
# 3. installs the npm dependencies (npm ci) and builds (npm run build).
#
# Idempotent: a second run finds everything in place and only rebuilds (a few seconds).
# The last line it prints is the PATH to use, e.g.  export PATH="/src/kube-spawn/.tools/node/node_modules/.bin:$PATH"
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
say() { echo "setup: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run me as root (apt-get, and the integration tests boot containers)" >&2
  exit 1
fi

# --- Debian packages ---------------------------------------------------------------------------------
# systemd-container: systemd-nspawn, machinectl.  debootstrap: builds the node base image.  iptables,
# iproute2: bridges and isolation rules.  util-linux: nsenter, findmnt, fallocate.  mount: mount,
# losetup (the storage-pool workaround and its test).  btrfs-progs: mkfs.btrfs, btrfs (storage pools).
# kmod: modprobe.  socat: the host binary workaround-socat puts into nodes (and its test).
# The Kubernetes fixture (../shared/fixtures/kubernetes/prepare-bundle) builds its images from xz-utils,
# python3, etcd-server, busybox-static and conntrack; installed here, so that the tests never run
# apt-get themselves.
# gnupg, gpgv: apt keys checked by fingerprint, and image-flatcar's signed DIGESTS (and the tests' own signing keys).
# bzip2, e2fsprogs (debugfs, mke2fs), fdisk (sfdisk): image-flatcar unpacks a disk image, and its test builds one.
# dpkg-dev, apt-utils: the tests' local apt repository (dpkg-scanpackages, apt-ftparchive) for runtime-crio.
# skopeo: the registry test pushes an image archive to a cluster's registry, as its docs tell users to.
# podman: the end-to-end test takes an image from the host's podman (load image); it needs no daemon.
PACKAGES=(systemd-container debootstrap iptables iproute2 util-linux mount btrfs-progs kmod socat ca-certificates
  xz-utils etcd-server busybox-static conntrack gnupg gpgv bzip2 e2fsprogs fdisk dpkg-dev apt-utils skopeo podman)
command -v python3 >/dev/null || PACKAGES+=(python3)
missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # apt-get update only when there are no package lists yet, or when the install fails on stale ones.
  if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
    say "apt-get update"
    apt-get update -q
  fi
  say "installing ${missing[*]}"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    say "install failed; apt-get update and retry"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  # etcd-server starts a host etcd where systemd runs; the fixture wants only the binary.
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
else
  say "Debian packages: all present (${PACKAGES[*]})"
fi

# --- Node.js -------------------------------------------------------------------------------------------
# package.json asks for >= 22.13, but the test scripts run .ts files directly with `node --test`,
# which needs type stripping on by default: Node 22.18 or later.
MIN_NODE=22.18.0
LOCAL_NODE_PREFIX="$REPO/.tools/node"
LOCAL_NODE_BIN="$LOCAL_NODE_PREFIX/node_modules/.bin"

version_ok() { # version_ok NODE_BINARY
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  v=${v#v}
  [[ "$(printf '%s\n%s\n' "$MIN_NODE" "$v" | sort -V | head -n1)" == "$MIN_NODE" ]]
}

NODE_BIN_DIR=""
if command -v node >/dev/null && version_ok "$(command -v node)"; then
  say "node $(node --version) on PATH is recent enough"
elif [[ -x "$LOCAL_NODE_BIN/node" ]] && version_ok "$LOCAL_NODE_BIN/node"; then
  NODE_BIN_DIR="$LOCAL_NODE_BIN"
  say "using project-local node $("$LOCAL_NODE_BIN/node" --version) in $LOCAL_NODE_BIN"
else
  say "node on PATH is $(node --version 2>/dev/null || echo missing); need >= $MIN_NODE"
  if ! command -v npm >/dev/null; then
    say "npm is missing; installing Debian's npm to fetch Node 22 with"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm; }
  fi
  say "npm install --prefix .tools/node node@22 (Node 22 from the npm registry)"
  mkdir -p "$LOCAL_NODE_PREFIX"
  npm install --prefix "$LOCAL_NODE_PREFIX" --no-audit --no-fund node@22
  version_ok "$LOCAL_NODE_BIN/node" || { echo "setup: $LOCAL_NODE_BIN/node is not >= $MIN_NODE" >&2; exit 1; }
  NODE_BIN_DIR="$LOCAL_NODE_BIN"
  say "installed node $("$LOCAL_NODE_BIN/node" --version) in $LOCAL_NODE_BIN"
fi
[[ -z "$NODE_BIN_DIR" ]] || export PATH="$NODE_BIN_DIR:$PATH"
command -v npm >/dev/null || { echo "setup: npm is needed for the dependencies" >&2; exit 1; }

# --- dependencies and build ----------------------------------------------------------------------------
# npm ci wipes node_modules; skip it when the lockfile and node are the ones it last ran with.
STAMP_FILE="$REPO/node_modules/.kube-spawn-setup"
if [[ -f package-lock.json ]]; then
  want="$(sha256sum package-lock.json package.json | sha256sum | cut -c1-16) $(node --version)"
  if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$want" ]]; then
    say "npm dependencies are installed (package-lock.json unchanged)"
  else
    say "npm ci"
    npm ci --no-audit --no-fund
    echo "$want" > "$STAMP_FILE"
  fi
else
  say "no package-lock.json: npm install"
  npm install --no-audit --no-fund
fi

say "npm run build"
npm run build

say "done. Use this PATH:"
if [[ -n "$NODE_BIN_DIR" ]]; then
  echo "export PATH=\"$NODE_BIN_DIR:\$PATH\""
else
  echo "export PATH=\"$(dirname "$(command -v node)"):\$PATH\""
fi
