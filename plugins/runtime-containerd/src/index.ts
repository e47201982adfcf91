/**
 * containerd as the nodes' container runtime, as a declaration: the host installs its config, waits for
 * it after boot and stops it in order (docs/plugins.md#runtimes).
 */
import type {FileContext, KubeSpawnHook, RuntimeProvider} from '@kube-spawn/sdk'

/** containerd's config for a node: cgroup driver, sandbox image and CNI directories follow the cluster. */
export function containerdConfig(ctx: Pick<FileContext, 'host' | 'kubernetes' | 'cni'>): string {
  return `# Written by kube-spawn (runtime-containerd).
version = 2
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${ctx.kubernetes.sandboxImage}"
  # runc cannot lower oom_score_adj without CAP_SYS_RESOURCE.
  restrict_oom_score_adj = ${!ctx.host.capSysResource}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = ${ctx.kubernetes.cgroupDriver === 'systemd'}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${ctx.cni.binDir}"
    conf_dir = "${ctx.cni.confDir}"
  # Registry hosts, one directory each (the cluster's registry, when it has one).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${CERTS_D}"
`
}

export const CERTS_D = '/etc/containerd/certs.d'

/**
 * The cluster's registry over plain HTTP, by its address, and by localhost:PORT, the name the host pushes
 * to (as kind's local registry does), so that an image pushed as localhost:5000/app runs as that name.
 */
export function registryHostsFiles(registry: {address: string; port: number}): Array<{path: string; content: string}> {
  const hosts = `# Written by kube-spawn (runtime-containerd).
server = "http://${registry.address}"

[host."http://${registry.address}"]
  capabilities = ["pull", "resolve"]
`
  return [registry.address, `localhost:${registry.port}`].map((name) => ({path: `${CERTS_D}/${name}/hosts.toml`, content: hosts}))
}

/**
 * Kills every container, so that stopping containerd does not wait for shims. containerd removes the
 * exited tasks itself (a `tasks delete` would race it), so this waits for the task list to empty.
 */
// One kill of every task's main process (its container's PID 1, whose end ends the container): a ctr
// per task, even in parallel, took 0.8 s on a control plane.
const KILL_CONTAINERS = `pids=$(ctr -n k8s.io tasks ls 2>/dev/null | awk 'NR > 1 && $3 != "STOPPED" { print $2 }')
[ -z "$pids" ] || kill -KILL $pids 2>/dev/null
for i in $(seq 1 50); do [ -z "$(ctr -n k8s.io tasks ls -q 2>/dev/null)" ] && break; sleep 0.1; done`

/**
 * Flatcar's containerd unit reads its config from $CONTAINERD_CONFIG (/usr/share/containerd/config.toml,
 * read-only /usr); this points it at kube-spawn's. Harmless where the unit does not use the variable.
 */
export const FLATCAR_CONFIG_DROP_IN = `# Written by kube-spawn (runtime-containerd).
[Service]
Environment=CONTAINERD_CONFIG=/etc/containerd/config.toml
`

export const containerd: RuntimeProvider = {
  name: 'containerd',
  description: 'containerd with runc and the CNI plugins, from the base image’s packages (Debian) or the image’s own binaries (Flatcar)',
  // Flatcar has no package manager: containerd, runc and the CNI plugins must be in the image (/usr, /opt/cni/bin).
  packages: {debian: {names: ['containerd', 'runc', 'containernetworking-plugins']}, flatcar: {names: []}},
  files: [{path: '/etc/containerd/config.toml', content: containerdConfig}],
  configuresRegistry: true,
  commands: ['containerd', 'ctr', 'runc'],
  dataDirs: ['/var/lib/containerd'],
  criSocket: 'unix:///run/containerd/containerd.sock',
  cgroupDrivers: ['systemd', 'cgroupfs'],
  cniBinDir: '/usr/lib/cni',
  imageImportCommand: ['ctr', '--namespace', 'k8s.io', 'images', 'import'],
  // Content blobs and committed snapshots are never written again; the bolt databases are (one per snapshotter that has one).
  imageStore: {
    dir: '/var/lib/containerd',
    rewrittenFiles: [
      'io.containerd.metadata.v1.bolt/meta.db',
      'io.containerd.snapshotter.v1.overlayfs/metadata.db',
      'io.containerd.snapshotter.v1.native/metadata.db',
      'io.containerd.snapshotter.v1.btrfs/metadata.db',
      'io.containerd.snapshotter.v1.blockfile/metadata.db',
    ],
    // The server's UUID (introspection): each node's containerd makes its own.
    instanceFiles: ['io.containerd.grpc.v1.introspection/uuid'],
  },
  services: ['containerd.service'],
  readinessCommand: ['ctr', 'version'],
  stopContainersCommand: ['sh', '-c', KILL_CONTAINERS],
  // containerd's CRI port-forward needs no socat since 1.4.0 (containerd/cri#1470); workaround-socat reads this.
  needsSocat: {package: 'containerd', belowVersion: '1.4'},
  // On Flatcar the CNI plugins live in /opt/cni/bin (/usr is the image's, read-only), and the unit needs telling where the config is.
  // With a registry, its hosts.toml files join the config.
  variant: (query) => {
    const flatcar = query.family === 'flatcar'
    return {
      ...(flatcar ? {cniBinDir: '/opt/cni/bin'} : {}),
      files: [
        {path: '/etc/containerd/config.toml', content: containerdConfig},
        ...(flatcar ? [{path: '/etc/systemd/system/containerd.service.d/20-kube-spawn-config.conf', content: FLATCAR_CONFIG_DROP_IN}] : []),
        ...(query.registry ? registryHostsFiles(query.registry) : []),
      ],
    }
  },
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({runtimes: [containerd]})
