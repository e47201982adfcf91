/** kubeadm init on the control plane and join on the workers, and the clean-up of an unfinished run. */
import {X509Certificate, createHash, randomBytes} from 'node:crypto'
import {readFile, readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import type {ClusterContext, HostNode, HostStep} from '../context/index.js'
import {HostError, UserError, errorMessage} from '../errors.js'
import type {StageTaskWrapper} from '@kube-spawn/sdk'
import {writeFileAtomic} from '../util/fs.js'
import {ADMIN_CONF, kubeconfigCredentials} from './api.js'
import {artifacts} from './binaries.js'
import {resumedInit} from './init-resume.js'
import {CNI_CONF_DIR} from '../runtime/files.js'
import {
  KUBELET_CLIENT_PEM,
  initConfigForNode,
  kubernetesSettings,
  renderDiscoveryKubeconfig,
  renderInitConfig,
  renderJoinConfig,
  renderKubeletKubeconfig,
} from './kubeadm-config.js'
import {ETCD_PATCH_FILE, ETCD_SECCOMP_PROFILE, KUBELET_SECCOMP_ROOT, builtInPatches, etcdSeccompProfile} from './etcd.js'
import {type Dockershim, versionTraits} from './versions.js'
import {apiServerHost} from '../node/names.js'

/** kubeadm init or join, whole; kubeadm's own control-plane wait (4 min in 1.20) is inside it. */
const KUBEADM_TIMEOUT_MS = 600_000
export const INIT_CONFIG = '/etc/kube-spawn/kubeadm-init.yaml'
export const JOIN_CONFIG = '/etc/kube-spawn/kubeadm-join.yaml'
/** The cluster's CA and API server for kubeadm's file discovery. */
const DISCOVERY_CONFIG = '/etc/kube-spawn/discovery.conf'
/** Where kubeadm's patches (kubernetes.patches and kube-spawn's own) are written in each node. */
const PATCHES_DIR = '/etc/kube-spawn/patches'

/** kubeadm 1.20 preflight runs crictl, which Debian lacks; then only that phase is skipped. */
const PREFLIGHT_WARNING =
  'crictl is not installed in the nodes, so kubeadm runs with --skip-phases=preflight (its other checks are skipped too)'

/**
 * An interrupted or failed first start can leave certificates, manifests, kubeconfigs and etcd data
 * behind; kubeadm init or join then half-reuses them. kubeadm reset needs crictl (or docker's CLI for
 * dockershim) and a running runtime, and the node was rebooted (so no container of that run is left): removing the files is enough.
 */
const CLEAR_UNFINISHED_KUBEADM = `set -e
if [ -e /etc/kubernetes/pki ] || [ -e /etc/kubernetes/kubelet.conf ] || [ -e /var/lib/etcd/member ] || ls /etc/kubernetes/manifests/*.yaml >/dev/null 2>&1; then
  systemctl stop kubelet.service 2>/dev/null || true
  rm -rf /etc/kubernetes/pki /etc/kubernetes/manifests /etc/kubernetes/*.conf /var/lib/etcd /var/lib/kubelet/pki /var/lib/kubelet/config.yaml /var/lib/kubelet/kubeadm-flags.env
  echo cleared
fi`

const COREDNS_WARNING = 'CoreDNS is not in the offline bundle, so the cluster has no DNS (kubeadm addon/coredns skipped)'

/** Where the kubelet's dockershim finds the CNI plugins, when the runtime runs through it. */
function dockershimOf(ctx: ClusterContext): Dockershim | undefined {
  return ctx.runtime.kubelet === 'dockershim' ? {cniBinDir: ctx.runtime.cniBinDir, cniConfDir: CNI_CONF_DIR} : undefined
}

function controlPlane(ctx: ClusterContext): HostNode {
  return ctx.nodes.find((n) => n.role === 'control-plane')!
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

export const kubeadmInitStep: HostStep = {
  title: 'kubeadm init on the control plane',
  skip: (ctx) => (ctx.cluster.state.initialized ? 'initialized at the first start; the etcd data is kept' : false),
  task: async (ctx, task) => {
    const early = workers(ctx).length > 0 && controlPlanes(ctx).length === 1 ? beginWorkerJoins(ctx) : undefined
    try {
      await kubeadmInit(ctx, task)
      early?.initDone()
    } catch (error) {
      await early?.cancel()
      throw error
    }
  },
}

/** ctx.shared key: the workers' joins, begun while kubeadm init finishes (kubeadmJoinStep awaits them). */
const WORKER_JOINS = 'kube-spawn:worker-joins'

/**
 * Begins the workers' joins while kubeadm init runs, once it has written the CA (a join's discovery file
 * holds it). Their discovery waits 5 s, then asks for the cluster-info ConfigMap every 5 s until init has
 * published it, and by then everything else a join reads (kubeadm-config, the token, its RBAC) is in
 * place: so kubeadm's 5 s overlap init instead of following it.
 */
function beginWorkerJoins(ctx: ClusterContext): {initDone: () => void; cancel: () => Promise<void>} {
  const cp = controlPlane(ctx)
  const cancelled = new AbortController()
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, cancelled.signal]) : cancelled.signal
  let initEnded = false
  const joins = (async () => {
    // apiserver.crt is written after the CA: the CA is whole then (and surely once init has ended).
    while (!initEnded && !(await cp.readFile('/etc/kubernetes/pki/apiserver.crt'))) await sleep(250, undefined, {signal})
    const prepared = await joinPreparation(ctx)
    await Promise.all(workers(ctx).map((node) => joinNode(ctx, node, prepared, undefined, signal)))
  })()
  joins.catch(() => {}) // kubeadmJoinStep awaits it and reports its failure
  ctx.shared.set(WORKER_JOINS, joins)
  return {
    initDone: () => {
      initEnded = true
    },
    cancel: async () => {
      cancelled.abort()
      await joins.catch(() => {})
    },
  }
}

/** Stacked etcd grows one member at a time: the further control planes join one after the other (as kind's do). */
export const kubeadmJoinControlPlanesStep: HostStep = {
  title: 'kubeadm join the further control planes, one at a time, through the load balancer',
  skip: (ctx) =>
    ctx.cluster.state.initialized
      ? 'joined at the first start'
      : controlPlanes(ctx).length < 2
        ? 'the cluster has one control plane'
        : false,
  task: async (ctx, task) => {
    const certificateKey = ctx.shared.get(CERTIFICATE_KEY) as string | undefined
    if (!certificateKey) throw new HostError('kubeadm init ran without --upload-certs, so no control plane can join', {hint: 'start again'})
    const prepared = await joinPreparation(ctx)
    const others = controlPlanes(ctx).slice(1)
    for (const [index, node] of others.entries()) {
      task.output = `${node.name} joins (${index + 1}/${others.length})`
      await joinNode(ctx, node, prepared, certificateKey)
    }
  },
}

export const kubeadmJoinStep: HostStep = {
  title: 'kubeadm join the workers, in parallel, pinning the CA',
  skip: (ctx) =>
    ctx.cluster.state.initialized ? 'joined at the first start' : workers(ctx).length === 0 ? 'the cluster has no workers' : false,
  task: async (ctx, task) => kubeadmJoin(ctx, task),
}

/** Where kubeadm init leaves the key of the certificates it uploaded, for the control planes' joins of the same run. */
const CERTIFICATE_KEY = 'kube-spawn:certificate-key'
const controlPlanes = (ctx: ClusterContext) => ctx.nodes.filter((n) => n.role === 'control-plane')
const workers = (ctx: ClusterContext) => ctx.nodes.filter((n) => n.role === 'worker')

async function kubeadmInit(ctx: ClusterContext, task: StageTaskWrapper): Promise<void> {
  const cp = controlPlane(ctx)
  const endpoint = apiServerHost(ctx.cluster)
  // The shared CAs go to the other control planes through kubeadm's encrypted Secret, which lives 2 h; they join in this run.
  const certificateKey = controlPlanes(ctx).length > 1 ? randomBytes(32).toString('hex') : undefined
  if (certificateKey) ctx.shared.set(CERTIFICATE_KEY, certificateKey)
  await cp.writeFile(
    INIT_CONFIG,
    renderInitConfig({
      cluster: ctx.cluster,
      node: {name: cp.name, ip: cp.ip, role: cp.role},
      controlPlaneIp: endpoint.ip,
      ...(endpoint.name === cp.name ? {} : {controlPlaneName: endpoint.name}),
      ...(certificateKey ? {certificateKey} : {}),
      criSocket: ctx.runtime.criSocket,
      dockershim: dockershimOf(ctx),
    }),
    0o600,
  )
  const skip = await skippedPhases(ctx, cp)
  const patches = await writePatches(ctx, cp)
  const skipFlag = skip.length > 0 ? [`--skip-phases=${skip.join(',')}`] : []
  task.output = ['kubeadm init', ...skipFlag].join(' ')
  const upload = certificateKey ? ['--upload-certs'] : []
  await runInit(ctx, cp, ['kubeadm', 'init', `--config=${INIT_CONFIG}`, ...skipFlag, ...patches, ...upload, '--skip-token-print'], task)
  const adminConf = await cp.readFile('/etc/kubernetes/admin.conf')
  if (!adminConf)
    throw new HostError(`kubeadm init on ${cp.name} wrote no admin.conf`, {hint: `see kube-spawn exec ${cp.name} -- journalctl -u kubelet`})
  await writeFileAtomic(join(ctx.clusterDir, ADMIN_CONF), adminConf, 0o600)
}

/** How often kubeadm init runs again from a phase whose API write timed out (init-resume.ts). */
const INIT_RESUMES = 2

/** kubeadm init, run again from its failed phase when that failed for an API server that did not answer in time. */
async function runInit(ctx: ClusterContext, cp: HostNode, argv: string[], task: StageTaskWrapper): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const logFile = join(cp.dir, attempt === 0 ? 'kubeadm-init.log' : `kubeadm-init-${attempt}.log`)
    try {
      await cp.exec(argv, {timeoutMs: KUBEADM_TIMEOUT_MS * ctx.host.timeoutScale, task, logFile})
      return
    } catch (error) {
      const output = await readFile(logFile, 'utf8').catch(() => '')
      const resumed = attempt < INIT_RESUMES && !ctx.signal?.aborted ? resumedInit(argv, output) : undefined
      if (!resumed) throw error
      ctx.warn(
        `kubeadm init's phase ${resumed.phase} failed, the API server not answering in time (${resumed.reason}); it ran again from that phase`,
      )
      argv = resumed.argv
    }
  }
}

/**
 * Skips kubeadm's preflight only when crictl is missing, CoreDNS only when its image is not available
 * offline, and kube-proxy when kubernetes.kube-proxy-mode is "none".
 */
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
  if (kubernetesSettings(ctx.cluster).kubeProxyMode === 'none') phases.push('addon/kube-proxy')
  return phases
}

/**
 * Writes kubeadm's patches into the node afresh: the files of kubernetes.patches (a file removed on the
 * host is gone from the node too) and kube-spawn's own (etcd.ts), with etcd's seccomp profile on a control
 * plane. Returns kubeadm's flag for them, which this version names (--patches from 1.22).
 */
async function writePatches(ctx: ClusterContext, node: HostNode): Promise<string[]> {
  const dir = kubernetesSettings(ctx.cluster).patches
  const userFiles = dir === undefined ? [] : await patchFiles(dir)
  await node.exec(['sh', '-c', `rm -rf ${PATCHES_DIR} && mkdir -p ${PATCHES_DIR}`])
  for (const name of userFiles) await node.copyIn(join(dir!, name), `${PATCHES_DIR}/${name}`, 0o600)
  const own = builtInPatches(userFiles, {slowHost: ctx.host.timeoutScale > 1})
  for (const {name, content} of own) await node.writeFile(`${PATCHES_DIR}/${name}`, content, 0o600)
  // /var/lib/kubelet is bind-mounted in the node, so the profile is written from inside it.
  if (node.role === 'control-plane' && own.some(({name}) => name === ETCD_PATCH_FILE)) {
    const profile = `${KUBELET_SECCOMP_ROOT}/${ETCD_SECCOMP_PROFILE}`
    await node.exec(['sh', '-c', `mkdir -p "$(dirname ${profile})" && cat > ${profile}`], {input: etcdSeccompProfile})
  }
  if (userFiles.length === 0 && own.length === 0) return []
  return [`${versionTraits(ctx.cluster.kubernetesVersion).patchesFlag}=${PATCHES_DIR}`]
}

/** The files of kubernetes.patches (kubeadm reads only the files of the directory, not its subdirectories). */
async function patchFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((error: unknown) => {
    throw new UserError(`kubernetes.patches ${dir} cannot be read: ${errorMessage(error)}`, {
      hint: "restore the directory, or remove the key from the cluster's kspawn.toml",
    })
  })
  const files = await Promise.all(
    names.sort().map(async (name) => ((await stat(join(dir, name)).catch(() => undefined))?.isFile() ? name : undefined)),
  )
  return files.filter((name): name is string => name !== undefined)
}

/** sha256 of the CA's SubjectPublicKeyInfo, as kubeadm's --discovery-token-ca-cert-hash wants it. */
export function caCertHash(caPem: string): string {
  const spki = new X509Certificate(caPem).publicKey.export({type: 'spki', format: 'der'})
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`
}

interface JoinPreparation {
  caCertHash: string
  /** The discovery kubeconfig every joining node gets at DISCOVERY_CONFIG. */
  discovery: string
  skip: string[]
}

/** What every join needs: the CA's hash read from the first control plane, and the phases to skip. */
async function joinPreparation(ctx: ClusterContext): Promise<JoinPreparation> {
  const cp = controlPlane(ctx)
  const ca = await cp.readFile('/etc/kubernetes/pki/ca.crt')
  if (!ca) throw new UserError(`the control plane ${cp.name} has no CA certificate`, {hint: 'destroy and create the cluster again'})
  const joining = ctx.nodes.find((n) => n !== cp) ?? cp
  return {
    caCertHash: caCertHash(ca),
    discovery: renderDiscoveryKubeconfig(ctx.cluster, ca, apiServerHost(ctx.cluster).ip),
    skip: (await skippedPhases(ctx, joining)).filter((p) => p === 'preflight'),
  }
}

/** kubeadm join of one node, through the API server's endpoint (the load balancer with several control planes). */
async function joinNode(
  ctx: ClusterContext,
  node: HostNode,
  prepared: JoinPreparation,
  certificateKey?: string,
  signal?: AbortSignal,
): Promise<void> {
  // Without a static-pod dir the worker's kubelet logs an error every second.
  await node.exec(['mkdir', '-p', '/etc/kubernetes/manifests'], signal ? {signal} : {})
  await node.writeFile(DISCOVERY_CONFIG, prepared.discovery, 0o600)
  const worker = certificateKey === undefined
  if (worker) await issueKubeletCredentials(ctx, node, signal)
  await node.writeFile(
    JOIN_CONFIG,
    renderJoinConfig({
      cluster: ctx.cluster,
      node: {name: node.name, ip: node.ip, role: node.role},
      controlPlaneIp: apiServerHost(ctx.cluster).ip,
      criSocket: ctx.runtime.criSocket,
      dockershim: dockershimOf(ctx),
      caCertHash: prepared.caCertHash,
      discoveryFile: DISCOVERY_CONFIG,
      discoveryTimeoutSeconds: (KUBEADM_TIMEOUT_MS / 1000) * ctx.host.timeoutScale,
      ...(certificateKey ? {certificateKey} : {}),
      kubeletConfIssued: worker,
    }),
    0o600,
  )
  const patches = await writePatches(ctx, node)
  await node.exec(
    [
      'kubeadm',
      'join',
      `--config=${JOIN_CONFIG}`,
      ...(prepared.skip.length ? [`--skip-phases=${prepared.skip.join(',')}`] : []),
      ...patches,
    ],
    {
      timeoutMs: KUBEADM_TIMEOUT_MS * ctx.host.timeoutScale,
      logFile: join(node.dir, 'kubeadm-join.log'),
      ...(signal ? {signal} : {}),
    },
  )
}

/**
 * A worker's kubelet client certificate, issued before its join by kubeadm on the control plane (as kubeadm
 * init issues the control plane's own) and laid out as TLS bootstrap leaves it, so that the kubelet rotates it
 * as usual. Why: a kubelet that bootstraps opens its API connections before its certificate is signed and
 * keeps using them, anonymously, until its certificate check (every 10 s) replaces them; up to 10 s of a join.
 */
async function issueKubeletCredentials(ctx: ClusterContext, worker: HostNode, signal?: AbortSignal): Promise<void> {
  const cp = controlPlane(ctx)
  const initConfig = await cp.readFile(INIT_CONFIG)
  if (!initConfig) throw new HostError(`the control plane ${cp.name} has no ${INIT_CONFIG}`, {hint: 'destroy and create the cluster again'})
  const dir = `/etc/kube-spawn/kubelet-credentials-${worker.name}`
  const options = {timeoutMs: 60_000 * ctx.host.timeoutScale, ...(signal ? {signal} : {})}
  let issued: string | undefined
  try {
    await cp.writeFile(`${dir}/kubeadm.yaml`, initConfigForNode(initConfig, worker.name), 0o600)
    await cp.exec(['kubeadm', 'init', 'phase', 'kubeconfig', 'kubelet', `--config=${dir}/kubeadm.yaml`, `--kubeconfig-dir=${dir}`], options)
    issued = await cp.readFile(`${dir}/kubelet.conf`)
  } finally {
    await cp.exec(['rm', '-rf', dir], {allowFailure: true})
  }
  if (!issued) throw new HostError(`kubeadm on ${cp.name} issued no kubelet credentials for ${worker.name}`, {hint: 'start again'})
  const {ca, cert, key} = kubeconfigCredentials(issued)
  // The kubelet's certificate store names a pair by its time and points kubelet-client-current.pem at it.
  const stamp = new Date().toISOString().slice(0, 19).replaceAll(/[T:]/g, '-')
  const pem = `/var/lib/kubelet/pki/kubelet-client-${stamp}.pem`
  await worker.exec(['sh', '-c', `umask 077 && mkdir -p "\${1%/*}" && cat > "$1" && ln -sfn "$1" "$2"`, 'sh', pem, KUBELET_CLIENT_PEM], {
    ...options,
    input: cert + key,
  })
  await worker.writeFile('/etc/kubernetes/kubelet.conf', renderKubeletKubeconfig(ctx.cluster, ca, apiServerHost(ctx.cluster).ip), 0o600)
}

async function kubeadmJoin(ctx: ClusterContext, task: StageTaskWrapper): Promise<void> {
  const early = ctx.shared.get(WORKER_JOINS) as Promise<void> | undefined
  if (early) {
    task.output = 'begun while kubeadm init finished'
    return early
  }
  const prepared = await joinPreparation(ctx)
  const joining = workers(ctx)
  let joined = 0
  await Promise.all(
    joining.map(async (node) => {
      await joinNode(ctx, node, prepared)
      task.output = `${++joined}/${joining.length} joined`
    }),
  )
}
