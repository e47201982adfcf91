import {X509Certificate, createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {ClusterContext, HostNode, HostStep} from '../context/index.js'
import {parseDuration} from '../config/definition.js'
import {HostError, UserError} from '../errors.js'

import type {StageContext, StageTaskWrapper} from '../sdk/index.js'
import {writeFileAtomic} from '../util/fs.js'
import {run} from '../util/run.js'
import {WaitTimeout} from '../util/wait.js'
import {
  type KubernetesArtifacts,
  KUBERNETES_BINARIES,
  fetchKubernetes,
  formatProgress,
  kubernetesArch,
  kubernetesCacheDir,
} from './artifacts.js'
import {exists} from '../util/fs.js'
import {mergeKubeconfig, removeKubeconfigContext} from './kubeconfig.js'
import {CNI_CONFLIST_PATH, renderCniConflist} from './cni.js'
import {renderInitConfig, renderJoinConfig} from './kubeadm-config.js'
import {kubeletSystemdFiles} from './kubelet-unit.js'
import {renderYaml} from './yaml.js'
import {versionTraits} from './versions.js'

/** Where the cached Kubernetes binaries and bundle images appear inside every node (read-only). */
export const NODE_BIN_DIR = '/opt/kube-spawn/kubernetes/bin'
export const NODE_IMAGES_DIR = '/opt/kube-spawn/images'
/** kubeadm init or join, whole; kubeadm's own control-plane wait (4 min in 1.20) is inside it. */
const KUBEADM_TIMEOUT_MS = 600_000
/** The controller manager allocates each node's pod CIDR soon after it registers (after a start, once the API is back). */
const POD_CIDR_TIMEOUT_MS = 120_000
const INIT_CONFIG = '/etc/kube-spawn/kubeadm-init.yaml'
const JOIN_CONFIG = '/etc/kube-spawn/kubeadm-join.yaml'
const ADMIN_CONF = 'admin.conf'
const ARTIFACTS = 'kubernetes-artifacts'

/** kubeadm 1.20 preflight runs crictl, which Debian lacks; then only that phase is skipped. */
const PREFLIGHT_WARNING =
  'crictl is not installed in the nodes, so kubeadm runs with --skip-phases=preflight (its other checks are skipped too)'

/**
 * An interrupted or failed first start can leave certificates, manifests, kubeconfigs and etcd data
 * behind; kubeadm init or join then half-reuses them. kubeadm reset needs crictl, which the nodes may
 * lack, and the node was rebooted (so no container of that run is left): removing the files is enough.
 */
const CLEAR_UNFINISHED_KUBEADM = `set -e
if [ -e /etc/kubernetes/pki ] || [ -e /etc/kubernetes/kubelet.conf ] || [ -e /var/lib/etcd/member ] || ls /etc/kubernetes/manifests/*.yaml >/dev/null 2>&1; then
  systemctl stop kubelet.service 2>/dev/null || true
  rm -rf /etc/kubernetes/pki /etc/kubernetes/manifests /etc/kubernetes/*.conf /var/lib/etcd /var/lib/kubelet/pki /var/lib/kubelet/config.yaml /var/lib/kubelet/kubeadm-flags.env
  echo cleared
fi`

const COREDNS_WARNING = 'CoreDNS is not in the offline bundle, so the cluster has no DNS (kubeadm addon/coredns skipped)'

function artifacts(ctx: StageContext): KubernetesArtifacts {
  const found = ctx.shared.get(ARTIFACTS) as KubernetesArtifacts | undefined
  if (!found) throw new Error('Kubernetes artifacts were not fetched before they were needed')
  return found
}

function controlPlane(ctx: ClusterContext): HostNode {
  return ctx.nodes.find((n) => n.role === 'control-plane')!
}

/** Fetches (or finds in the cache) and verifies the Kubernetes binaries, with a progress bar. */
export async function fetchArtifacts(ctx: StageContext, task: StageTaskWrapper): Promise<KubernetesArtifacts> {
  const fetched = await fetchKubernetes({
    source: ctx.cluster.kubernetes.source,
    version: ctx.cluster.kubernetesVersion,
    cacheDir: ctx.cacheDir,
    onProgress: (progress) => (task.output = formatProgress(progress)),
  })
  ctx.shared.set(ARTIFACTS, fetched)
  return fetched
}

/** Create: fetch and verify the binaries, so a bad source fails before any node exists. */
export const fetchKubernetesStep: HostStep = {
  title: 'Fetch and verify Kubernetes',
  task: async (ctx, task) => {
    await fetchArtifacts(ctx, task)
    task.title = `Fetch and verify Kubernetes ${ctx.cluster.kubernetesVersion} (${ctx.cluster.kubernetes.source})`
  },
}

export const installKubelet: HostStep = {
  title: 'Install the kubelet unit and the Kubernetes binaries in each node',
  task: async (ctx) => {
    const traits = versionTraits(ctx.cluster.kubernetesVersion)
    for (const node of ctx.nodes) {
      for (const file of kubeletSystemdFiles(ctx.runtime.service, traits)) await node.writeFile(file.path, file.content)
      for (const binary of KUBERNETES_BINARIES) await node.symlink(`/usr/local/bin/${binary}`, `${NODE_BIN_DIR}/${binary}`)
      if (artifacts(ctx).crictl) {
        await node.symlink('/usr/local/bin/crictl', `${NODE_BIN_DIR}/crictl`)
        await node.writeFile(
          '/etc/crictl.yaml',
          renderYaml([{'runtime-endpoint': ctx.runtime.criSocket, 'image-endpoint': ctx.runtime.criSocket}]),
        )
      }
    }
  },
}

export const mountKubernetesBinaries: HostStep = {
  title: 'Mount the Kubernetes binaries into each node',
  task: async (ctx, task) => {
    const found = await fetchArtifacts(ctx, task)
    for (const node of ctx.nodes) {
      node.addBindMount({src: found.binDir, dst: NODE_BIN_DIR, readOnly: true})
      if (found.images.length > 0) node.addBindMount({src: join(found.images[0], '..'), dst: NODE_IMAGES_DIR, readOnly: true})
    }
  },
}

export const clearUnfinishedKubeadm: HostStep = {
  title: 'Clear what an unfinished kubeadm run left in the nodes',
  skip: (ctx) => (ctx.cluster.state.initialized ? 'initialized at the first start' : false),
  task: async (ctx, task) => {
    const cleared = await Promise.all(ctx.nodes.map((node) => node.exec(['sh', '-c', CLEAR_UNFINISHED_KUBEADM])))
    const count = cleared.filter((r) => r.stdout.includes('cleared')).length
    task.title = count > 0 ? `Cleared an unfinished kubeadm run from ${count} node(s)` : 'No unfinished kubeadm run to clear'
  },
}

export const importBundleImages: HostStep = {
  title: 'Import the bundle images into every node',
  skip: (ctx) => (ctx.cluster.state.initialized ? 'the nodes have them from the first start' : false),
  task: async (ctx, task) => {
    const images = artifacts(ctx).images
    if (images.length === 0) {
      task.title = 'Import images: none in a release download; the runtime pulls them'
      return
    }
    let done = 0
    await Promise.all(
      ctx.nodes.map(async (node) => {
        for (const image of images) {
          const name = image.split('/').at(-1)!
          await node.exec([...ctx.runtime.imageImportCommand, `${NODE_IMAGES_DIR}/${name}`], {
            timeoutMs: 300_000 * ctx.host.timeoutScale,
          })
          task.output = `${++done}/${images.length * ctx.nodes.length} imported`
        }
      }),
    )
  },
}

export const kubeadmInitStep: HostStep = {
  title: 'kubeadm init on the control plane',
  skip: (ctx) => (ctx.cluster.state.initialized ? 'initialized at the first start; the etcd data is kept' : false),
  task: async (ctx, task) => kubeadmInit(ctx, task),
}

export const kubeadmJoinStep: HostStep = {
  title: 'kubeadm join the workers, in parallel, pinning the CA',
  skip: (ctx) =>
    ctx.cluster.state.initialized ? 'joined at the first start' : ctx.nodes.length < 2 ? 'a single-node cluster has no workers' : false,
  task: async (ctx, task) => kubeadmJoin(ctx, task),
}

export const configurePodNetworkStep: HostStep = {
  title: 'Configure the pod network (bridge CNI and routes between nodes)',
  skip: (ctx) => (ctx.cluster.cni === 'none' ? 'cni = "none": apply your own CNI' : false),
  task: async (ctx) => configurePodNetwork(ctx),
}

export const enableKubelet: HostStep = {
  title: 'Enable the kubelet in every node for later boots',
  task: async (ctx) => {
    await Promise.all(ctx.nodes.map((n) => n.exec(['systemctl', 'enable', 'kubelet.service'])))
    ctx.cluster.state.initialized = true
  },
}

export const waitUntilReady: HostStep = {
  title: 'Wait until every node is Ready',
  task: async (ctx, task) => waitForReady(ctx, ctx.startedAt, task),
}

export const writeKubeconfig: HostStep = {
  title: 'Write the kubeconfig',
  task: async (ctx, task) => {
    const adminConf = await readFile(join(ctx.clusterDir, ADMIN_CONF), 'utf8')
    const merged = await mergeKubeconfig({cluster: ctx.cluster.clusterName, adminConf, kubectl: artifacts(ctx).kubectl})
    task.title = `Wrote ${join(ctx.clusterDir, ADMIN_CONF)} and context ${merged.context} in ${merged.path}`
  },
}

/** Stop: the kubelet first, so it does not restart the containers the runtime then kills. */
export const stopKubelet: HostStep = {
  title: 'Stop the kubelet in every node',
  skip: (ctx) => (ctx.cluster.state.initialized ? false : 'Kubernetes was never set up'),
  task: async (ctx) => {
    await Promise.all(
      ctx.nodes.map(async (node) => {
        const running = await node.exec(['true'], {allowFailure: true}).then(
          () => true,
          () => false,
        )
        if (running) await node.exec(['systemctl', 'stop', 'kubelet.service'], {allowFailure: true, timeoutMs: 30_000})
      }),
    )
  },
}

/** destroy: the cluster's context in the user's kubeconfig, with the cluster's own kubectl from the cache (the host may have none). */
export const removeKubeconfigContextStep: HostStep = {
  title: 'Remove the kubeconfig context',
  task: async (ctx) => {
    const kubectl = join(kubernetesCacheDir(ctx.cacheDir, ctx.cluster.kubernetesVersion, kubernetesArch()), 'kubectl')
    await removeKubeconfigContext(ctx.cluster.clusterName, (await exists(kubectl)) ? kubectl : undefined)
  },
}

async function kubeadmInit(ctx: ClusterContext, task: StageTaskWrapper): Promise<void> {
  const cp = controlPlane(ctx)
  await cp.writeFile(
    INIT_CONFIG,
    renderInitConfig({cluster: ctx.cluster, node: {name: cp.name, ip: cp.ip, role: cp.role}, criSocket: ctx.runtime.criSocket}),
    0o600,
  )
  const skip = await skippedPhases(ctx, cp)
  task.output = `kubeadm init --skip-phases=${skip.join(',')}`
  await cp.exec(['kubeadm', 'init', `--config=${INIT_CONFIG}`, `--skip-phases=${skip.join(',')}`, '--skip-token-print'], {
    timeoutMs: KUBEADM_TIMEOUT_MS * ctx.host.timeoutScale,
    task,
    logFile: join(cp.dir, 'kubeadm-init.log'),
  })
  const adminConf = await cp.readFile('/etc/kubernetes/admin.conf')
  if (!adminConf)
    throw new HostError(`kubeadm init on ${cp.name} wrote no admin.conf`, {hint: `see kube-spawn exec ${cp.name} -- journalctl -u kubelet`})
  await writeFileAtomic(join(ctx.clusterDir, ADMIN_CONF), adminConf, 0o600)
}

/** Skips kubeadm's preflight only when crictl is missing, and CoreDNS only when its image is not available offline. */
async function skippedPhases(ctx: ClusterContext, node: HostNode): Promise<string[]> {
  const phases: string[] = []
  const crictl = await node.exec(['sh', '-c', 'command -v crictl'], {allowFailure: true})
  if (crictl.exitCode !== 0) {
    phases.push('preflight')
    if (!ctx.warnings.includes(PREFLIGHT_WARNING)) ctx.warn(PREFLIGHT_WARNING)
  }
  const images = artifacts(ctx).images
  if (images.length > 0 && !images.some((i) => /coredns/.test(i))) {
    phases.push('addon/coredns')
    if (!ctx.warnings.includes(COREDNS_WARNING)) ctx.warn(COREDNS_WARNING)
  }
  return phases
}

/** sha256 of the CA's SubjectPublicKeyInfo, as kubeadm's --discovery-token-ca-cert-hash wants it. */
export function caCertHash(caPem: string): string {
  const spki = new X509Certificate(caPem).publicKey.export({type: 'spki', format: 'der'})
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`
}

async function kubeadmJoin(ctx: ClusterContext, task: StageTaskWrapper): Promise<void> {
  const cp = controlPlane(ctx)
  const ca = await cp.readFile('/etc/kubernetes/pki/ca.crt')
  if (!ca) throw new UserError(`the control plane ${cp.name} has no CA certificate`, {hint: 'destroy and create the cluster again'})
  const hash = caCertHash(ca)
  const workers = ctx.nodes.filter((n) => n.role === 'worker')
  const skip = (await skippedPhases(ctx, workers[0])).filter((p) => p === 'preflight')
  let joined = 0
  await Promise.all(
    workers.map(async (node) => {
      // Without a static-pod dir the worker's kubelet logs an error every second.
      await node.exec(['mkdir', '-p', '/etc/kubernetes/manifests'])
      await node.writeFile(
        JOIN_CONFIG,
        renderJoinConfig({
          cluster: ctx.cluster,
          node: {name: node.name, ip: node.ip, role: node.role},
          controlPlaneIp: cp.ip,
          criSocket: ctx.runtime.criSocket,
          caCertHash: hash,
        }),
        0o600,
      )
      await node.exec(['kubeadm', 'join', `--config=${JOIN_CONFIG}`, ...(skip.length ? [`--skip-phases=${skip.join(',')}`] : [])], {
        timeoutMs: KUBEADM_TIMEOUT_MS * ctx.host.timeoutScale,
        logFile: join(node.dir, 'kubeadm-join.log'),
      })
      task.output = `${++joined}/${workers.length} joined`
    }),
  )
}

interface NodeObject {
  metadata: {name: string}
  spec: {podCIDR?: string}
  status: {conditions?: Array<{type: string; status: string; lastHeartbeatTime?: string; reason?: string; message?: string}>}
}

async function kubectl(ctx: StageContext, args: string[], timeoutMs = 20_000) {
  return run(
    [
      artifacts(ctx).kubectl,
      `--kubeconfig=${join(ctx.clusterDir, ADMIN_CONF)}`,
      `--request-timeout=${Math.ceil(timeoutMs / 1000)}s`,
      ...args,
    ],
    {
      timeoutMs: timeoutMs + 5000,
      allowFailure: true,
    },
  )
}

/** The nodes, or undefined while the API server does not answer. */
async function getNodes(ctx: StageContext): Promise<NodeObject[] | undefined> {
  const result = await kubectl(ctx, ['get', 'nodes', '-o', 'json'])
  if (result.exitCode !== 0) return undefined
  return (JSON.parse(result.stdout) as {items: NodeObject[]}).items
}

/** Each node bridges its pods on its own podCIDR; routes to the other nodes' podCIDRs go via their node IPs. */
async function configurePodNetwork(ctx: ClusterContext): Promise<void> {
  const timeoutMs = POD_CIDR_TIMEOUT_MS * ctx.host.timeoutScale
  let cidrs = new Map<string, string>()
  let apiAnswered = false
  await ctx
    .waitFor(
      async () => {
        const nodes = await getNodes(ctx)
        apiAnswered ||= nodes !== undefined
        cidrs = new Map((nodes ?? []).filter((n) => n.spec.podCIDR).map((n) => [n.metadata.name, n.spec.podCIDR!]))
        return ctx.nodes.every((n) => cidrs.has(n.name)) || undefined
      },
      {timeout: timeoutMs, interval: 1000, describe: 'a pod CIDR for every node'},
    )
    .catch((error: unknown) => (error instanceof WaitTimeout ? undefined : Promise.reject(error)))
  if (!apiAnswered) {
    throw new HostError(`the API server did not answer within ${Math.round(timeoutMs / 1000)} s`, {
      hint: 'see its logs: kube-spawn exec <control-plane> -- journalctl -u kubelet',
    })
  }
  const missing = ctx.nodes.filter((n) => !cidrs.has(n.name)).map((n) => n.name)
  if (missing.length > 0) {
    throw new HostError(`no pod CIDR was allocated to ${missing.join(', ')}`, {
      hint: 'check the controller manager: kube-spawn exec <control-plane> -- journalctl -u kubelet',
    })
  }
  await Promise.all(
    ctx.nodes.map(async (node) => {
      const routes = ctx.nodes.filter((o) => o !== node).map((o) => `${cidrs.get(o.name)} ${o.ip}`)
      await node.writeFile(CNI_CONFLIST_PATH, renderCniConflist(cidrs.get(node.name)!))
      await node.writeFile('/etc/kube-spawn/pod-routes', `${routes.join('\n')}\n`)
      await node.exec(['/usr/lib/kube-spawn/network-setup.sh'])
    }),
  )
  // The host reaches pods through the node that runs them.
  for (const node of ctx.nodes) await run(['ip', 'route', 'replace', cidrs.get(node.name)!, 'via', node.ip])
}

/** Ready by a heartbeat newer than this start: right after a restart the API still shows the old status. */
async function waitForReady(ctx: ClusterContext, startedAt: number, task: StageTaskWrapper): Promise<void> {
  const timeoutMs = parseDuration(ctx.cluster.runtimeConfig.timeout)! * ctx.host.timeoutScale
  const fresh = (n: NodeObject) => {
    const ready = n.status.conditions?.find((c) => c.type === 'Ready')
    // Heartbeats have second resolution; allow for the truncation.
    return ready?.status === 'True' && Date.parse(ready.lastHeartbeatTime ?? '') >= startedAt - 1000
  }
  let nodes: NodeObject[] = []
  const allReady = await ctx
    .waitFor(
      async () => {
        nodes = (await getNodes(ctx)) ?? []
        const ready = ctx.nodes.filter((n) => nodes.some((o) => o.metadata.name === n.name && fresh(o)))
        task.output = `${ready.length}/${ctx.nodes.length} Ready`
        return ready.length === ctx.nodes.length || undefined
      },
      {timeout: timeoutMs, interval: 1000, describe: 'every node to be Ready'},
    )
    .catch((error: unknown) => (error instanceof WaitTimeout ? false : Promise.reject(error)))
  if (allReady) return
  const reasons = await Promise.all(
    ctx.nodes
      .filter((n) => !nodes.some((o) => o.metadata.name === n.name && fresh(o)))
      .map(async (n) => {
        const condition = nodes.find((o) => o.metadata.name === n.name)?.status.conditions?.find((c) => c.type === 'Ready')
        const kubelet = await n.exec(['systemctl', 'is-active', 'kubelet'], {allowFailure: true}).catch(() => undefined)
        return `${n.name} (${condition ? `${condition.reason}: ${condition.message}` : 'not registered'}; kubelet ${kubelet?.stdout.trim() ?? 'unreachable'})`
      }),
  )
  const waited =
    ctx.host.timeoutScale === 1 ? ctx.cluster.runtimeConfig.timeout : `${ctx.cluster.runtimeConfig.timeout} × ${ctx.host.timeoutScale}`
  throw new HostError(`nodes not Ready after ${waited}: ${reasons.join('; ')}`, {
    hint: 'see kube-spawn exec NODE -- journalctl -u kubelet',
  })
}
