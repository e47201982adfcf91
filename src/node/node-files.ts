import type {ClusterContext, HostNode} from '../context/index.js'
import {bridgeAddress} from './names.js'

/**
 * Small units injected into every node for what this kind of host lacks. Each is a oneshot that
 * runs before the runtime and the kubelet, and each reason is measured (docs/architecture.md).
 */
export const NODE_ENV_PATH = '/etc/kube-spawn/node.env'

/**
 * nspawn mounts the cgroup v1 hierarchies read-only and every node sees the host's. Remounting them
 * writable works for one node only; so each hierarchy is replaced by a bind mount of the node's own
 * subtree kube-spawn/<node>, the layout Docker used for cgroup v1.
 */
const CGROUP_SETUP = `#!/bin/sh
set -eu
. ${NODE_ENV_PATH}
SUB="kube-spawn/$NODE_NAME"
TMP=/run/kube-spawn-cgroot
[ -d /sys/fs/cgroup/memory ] || exit 0   # cgroup v2 hosts need none of this
mkdir -p "$TMP"
# Each cgroup v1 hierarchy's mount point and root, the topmost mount of each, read from mountinfo in one
# pass (a findmnt per hierarchy cost 2 s of every boot on a 2-core host).
awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) == "cgroup") root[$5] = $4 }
     END { for (m in root) if (m ~ "^/sys/fs/cgroup/[^/]+$") print m, root[m] }' /proc/self/mountinfo |
while read -r dir root; do
  [ -L "$dir" ] && continue
  name=\${dir##*/}
  [ "$root" = "/$SUB" ] && continue
  case "$name" in systemd) opt=none,name=systemd ;; *) opt=$name ;; esac
  mount -t cgroup -o "$opt" cgroup "$TMP"
  mkdir -p "$TMP/$SUB"
  case "$name" in *cpuset*)
    # A new cpuset cgroup has no cpus or mems unless its parent had clone_children set when it was
    # made, and the host's root has it off after a boot: runc then fails every container with "no
    # space left on device". Fill kube-spawn/ from the root and the node's own from kube-spawn/ (also
    # when an earlier run left them empty), and let the pods' cgroups below inherit.
    for cg in "$TMP/kube-spawn" "$TMP/$SUB"; do
      for f in cpuset.cpus cpuset.mems; do
        [ -n "$(cat "$cg/$f")" ] || cat "\${cg%/*}/$f" > "$cg/$f"
      done
      echo 1 > "$cg/cgroup.clone_children"
    done ;;
  esac
  while mountpoint -q "$dir"; do umount -l "$dir"; done
  mount --bind "$TMP/$SUB" "$dir"
  umount "$TMP"
done
rmdir "$TMP"
`

/** The node's static address on host0, its default route via the bridge, and routes to other nodes' pods. */
const NETWORK_SETUP = `#!/bin/sh
set -eu
. ${NODE_ENV_PATH}
ip link set lo up
ip addr replace "$NODE_IP/$NODE_PREFIX" dev host0
ip link set host0 up
ip route replace default via "$GATEWAY" dev host0
# A node is no cloud instance: the link-local metadata service answers at once as unreachable, so the
# kubelet's cloud probes fail in milliseconds (not after timeouts, 6 s of every kubelet start), and pods
# cannot borrow the host's cloud credentials.
ip route replace unreachable 169.254.169.254/32
echo 1 > /proc/sys/net/ipv4/ip_forward
for f in /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables; do
  [ -e "$f" ] && echo 1 > "$f"
done
if [ -f /etc/kube-spawn/pod-routes ]; then
  while read -r cidr via; do
    case "$cidr" in ''|'#'*) continue ;; esac
    ip route replace "$cidr" via "$via" dev host0
  done < /etc/kube-spawn/pod-routes
fi
`

const oneshot = (description: string, script: string, before: string, wantedBy: string) => `[Unit]
Description=kube-spawn: ${description}
DefaultDependencies=no
After=local-fs.target
Before=${before}
ConditionPathExists=${NODE_ENV_PATH}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${script}

[Install]
WantedBy=${wantedBy}
`

/** Units that fail or wait forever in a container. */
export const MASKED_UNITS = [
  // Kernel modules, hugetlbfs, debugfs and tracefs are the host's business: no work at every boot.
  'modprobe@.service',
  'dev-hugepages.mount',
  'sys-kernel-debug.mount',
  'sys-kernel-tracing.mount',
  'systemd-networkd-wait-online.service',
  'getty@.service',
  'console-getty.service',
  'systemd-timesyncd.service',
  'systemd-resolved.service',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'e2scrub_all.timer',
  'e2scrub_reap.service',
  'fstrim.timer',
]

export interface NodeFile {
  path: string
  content: string
  mode?: number
  /** A symlink instead of a file. */
  link?: string
}

/** Writes the files (or links) into the node, one after the other. */
export async function writeNodeFiles(node: HostNode, files: NodeFile[]): Promise<void> {
  for (const file of files) {
    if (file.link) await node.symlink(file.path, file.link)
    else await node.writeFile(file.path, file.content, file.mode)
  }
}

export function nodeFiles(ctx: ClusterContext, nodeIp: string, nodeName: string): NodeFile[] {
  const prefix = ctx.cluster.network.clusterSubnet!.split('/')[1]
  const unit = '/etc/systemd/system'
  return [
    {
      path: NODE_ENV_PATH,
      content: `NODE_NAME=${nodeName}\nNODE_IP=${nodeIp}\nNODE_PREFIX=${prefix}\nGATEWAY=${bridgeAddress(ctx.cluster)}\n`,
    },
    {path: '/usr/lib/kube-spawn/cgroup-setup.sh', content: CGROUP_SETUP, mode: 0o755},
    {path: '/usr/lib/kube-spawn/network-setup.sh', content: NETWORK_SETUP, mode: 0o755},
    {
      path: `${unit}/kube-spawn-cgroups.service`,
      content: oneshot('writable per-node cgroup v1 subtrees', '/usr/lib/kube-spawn/cgroup-setup.sh', 'sysinit.target', 'sysinit.target'),
    },
    {
      path: `${unit}/kube-spawn-network.service`,
      content: oneshot(
        'static node address on host0',
        '/usr/lib/kube-spawn/network-setup.sh',
        'network.target network-online.target',
        'multi-user.target network-online.target',
      ),
    },
    {path: `${unit}/sysinit.target.wants/kube-spawn-cgroups.service`, content: '', link: '../kube-spawn-cgroups.service'},
    {path: `${unit}/multi-user.target.wants/kube-spawn-network.service`, content: '', link: '../kube-spawn-network.service'},
    {path: `${unit}/network-online.target.wants/kube-spawn-network.service`, content: '', link: '../kube-spawn-network.service'},
    // Services of a running cluster hit systemd's 90 s stop default; bounded, a node powers off in seconds.
    {path: '/etc/systemd/system.conf.d/kube-spawn.conf', content: '[Manager]\nDefaultTimeoutStopSec=10s\nDefaultTimeoutStartSec=60s\n'},
    // kubelet's OOM watcher opens /dev/kmsg, which nspawn does not provide.
    {path: '/etc/tmpfiles.d/kube-spawn-kmsg.conf', content: 'L /dev/kmsg - - - - /dev/console\n'},
    ...MASKED_UNITS.map((name) => ({path: `${unit}/${name}`, content: '', link: '/dev/null'})),
  ]
}
