import type {KubeSpawnHook, NodeHandle, RuntimeProvider, StageContext, StageTask} from 'kube-spawn/sdk'

export const containerd: RuntimeProvider = {
  name: 'containerd',
  description: 'containerd with runc and the CNI plugins, from the base image’s packages',
  packages: ['containerd', 'runc', 'containernetworking-plugins'],
  dataDir: '/var/lib/containerd',
  criSocket: 'unix:///run/containerd/containerd.sock',
  service: 'containerd.service',
  imageImportCommand: ['ctr', '--namespace', 'k8s.io', 'images', 'import'],
  readinessCommand: ['ctr', 'version'],
}

/** containerd's config for a node: cgroup driver and sandbox image follow the cluster. */
export function containerdConfig(ctx: Pick<StageContext, 'host' | 'kubernetes'>): string {
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
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`
}

/** Ordered after the node's cgroup and network units; a bounded stop keeps power-off quick. */
export const CONTAINERD_DROP_IN = `[Unit]
After=kube-spawn-cgroups.service kube-spawn-network.service
Wants=kube-spawn-cgroups.service

[Service]
TimeoutStopSec=10s
`

/** Kills every container, so that stopping containerd does not wait for shims. containerd removes the
 * exited tasks itself (a `tasks delete` would race it), so this waits for the task list to empty. */
const KILL_CONTAINERS = `for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s KILL "$t" 2>/dev/null; done
for i in $(seq 1 50); do [ -z "$(ctr -n k8s.io tasks ls -q 2>/dev/null)" ] && break; sleep 0.1; done`

const forEachNode = (ctx: StageContext, work: (node: NodeHandle) => Promise<unknown>) => Promise.all(ctx.nodes.map(work))

async function waitReady(ctx: StageContext, node: NodeHandle): Promise<void> {
  let last = ''
  try {
    await ctx.waitFor(
      async () => {
        const result = await node.exec(containerd.readinessCommand, {allowFailure: true, timeoutMs: 10_000})
        last = (result.stderr || result.stdout).trim()
        return result.exitCode === 0 ? true : undefined
      },
      {timeout: 60_000 * ctx.host.timeoutScale, interval: 200, describe: `containerd in ${node.name} to answer`},
    )
  } catch (error) {
    throw last && error instanceof Error && error.name === 'WaitTimeout' ? new Error(`${error.message}: ${last}`) : error
  }
}

async function isRunning(node: NodeHandle): Promise<boolean> {
  return node.exec(['true'], {allowFailure: true}).then(
    (r) => r.exitCode === 0,
    () => false,
  )
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({runtimes: [containerd]})

export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage, ctx}) => {
  if (ctx.runtime.name !== containerd.name) return []
  const byStage: Partial<Record<typeof stage, StageTask[]>> = {
    'prepare-node': [
      {
        title: 'Write containerd’s config into each node',
        task: async (c) => {
          await forEachNode(c, async (node) => {
            await node.writeFile('/etc/containerd/config.toml', containerdConfig(c))
            await node.writeFile('/etc/systemd/system/containerd.service.d/10-kube-spawn.conf', CONTAINERD_DROP_IN)
          })
        },
      },
    ],
    'post-boot': [
      {
        title: 'Wait until containerd answers in every node',
        task: async (c) => {
          await forEachNode(c, (node) => waitReady(c, node))
        },
      },
    ],
    stop: [
      {
        title: 'Kill the containers and stop containerd',
        task: async (c) => {
          await forEachNode(c, async (node) => {
            if (!(await isRunning(node))) return
            await node.exec(['sh', '-c', KILL_CONTAINERS], {allowFailure: true, timeoutMs: 30_000})
            await node.exec(['systemctl', 'stop', containerd.service], {allowFailure: true, timeoutMs: 30_000})
          })
        },
      },
    ],
  }
  return byStage[stage] ?? []
}
