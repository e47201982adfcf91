/**
 * kube-spawn-plugin-__NAME__: a container runtime for kube-spawn's nodes, as a declaration. The host
 * installs its packages into the image, writes its files into every node, starts its services, waits
 * for it after boot and stops it in order; the plugin itself runs no tasks.
 *
 * As generated, the runtime "__NAME__" is containerd with runc and the CNI plugins from Debian's
 * packages. Change the packages, files and commands to your runtime's. Use it in a cluster
 * definition (kspawn.toml) with:
 *
 *     container-runtime = "__NAME__"
 *
 * Only types are imported from '@kube-spawn/sdk' here; it stays a dependency (bundled into the
 * package's tarball) for the helpers a runtime may come to need.
 */
import type {FileContext, KubeSpawnHook, RuntimeProvider} from '@kube-spawn/sdk'

/** The runtime's name: what container-runtime in kspawn.toml selects. */
export const NAME = '__NAME__'

export const CONFIG_PATH = '/etc/containerd/config.toml'

/** The runtime's config for one node, rendered by the host at prepare-node: cgroup driver, sandbox image and CNI dirs follow the cluster. */
export function runtimeConfig(ctx: Pick<FileContext, 'host' | 'kubernetes' | 'cni'>): string {
  return `# Written by kube-spawn (kube-spawn-plugin-${NAME}).
version = 2

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
`
}

export const runtime: RuntimeProvider = {
  name: NAME,
  description: `containerd with runc and the CNI plugins, configured by kube-spawn-plugin-${NAME}`,
  // Per image family: the packages the base image must contain (and, optionally, the apt sources they come from).
  packages: {debian: {names: ['containerd', 'runc', 'containernetworking-plugins']}},
  files: [{path: CONFIG_PATH, content: runtimeConfig}],
  commands: ['containerd', 'ctr', 'runc'],
  dataDirs: ['/var/lib/containerd'],
  criSocket: 'unix:///run/containerd/containerd.sock',
  cgroupDrivers: ['systemd', 'cgroupfs'],
  cniBinDir: '/usr/lib/cni',
  imageImportCommand: ['ctr', '--namespace', 'k8s.io', 'images', 'import'],
  services: ['containerd.service'],
  readinessCommand: ['ctr', 'version'],
  stopContainersCommand: ['sh', '-c', 'for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s KILL "$t"; done'],
  // containerd forwards ports natively from 1.4 on; below that the kubelet's port-forward needs socat.
  needsSocat: {package: 'containerd', belowVersion: '1.4'},
  supports: {images: ['debian']},
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({runtimes: [runtime]})
